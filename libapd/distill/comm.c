/* distill/comm.c: class-parallel runs (apd_distill_comm in apd/distill.h).
 *
 * Several processes run the same distillation; each owns a contiguous block of the classes
 * (rank r: classes [r*C/size, (r+1)*C/size)) and computes only their per-class work. What
 * the classes share goes through the caller's exchange callback, which knows the transport
 * (apd-convert uses MPI); the library itself links no transport. Every helper here is a
 * collective: all ranks call it in the same order with the same sizes. With no comm (or
 * size 1) each helper is a no-op, so the single-process path runs the same code.
 *
 * Failures: a rank that fails still takes part in the next agreement (apd__dcomm_agree),
 * so the others learn of it there and stop with its message instead of waiting forever.
 */
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "distill/distill_internal.h"

void apd__dcomm_range(uint32_t n_classes, uint32_t rank, uint32_t size, uint32_t *lo, uint32_t *hi)
{
    if (size == 0) size = 1;
    *lo = (uint32_t)((uint64_t)rank * n_classes / size);
    *hi = (uint32_t)((uint64_t)(rank + 1) * n_classes / size);
}

static int split(const apd_distill_ctx *x) { return x->comm && x->size > 1; }

apd_status apd__dcomm_exchange(const apd_distill_ctx *x, void *buf, const uint64_t *offsets, apd_err *err)
{
    if (!split(x)) return APD_OK;
    if (x->comm->exchange(x->comm->user, buf, offsets) != 0)
        return apd__err_set(err, APD_EIO, "distill: rank %u: exchange between the processes failed", x->rank);
    return APD_OK;
}

/* The message every rank reports: the local one, or the first failing rank's. */
typedef struct agree_slot {
    int32_t code;
    char msg[sizeof(((apd_err *)0)->msg)];
} agree_slot;

apd_status apd__dcomm_agree(const apd_distill_ctx *x, apd_status st, apd_err *err)
{
    if (!split(x)) return st;
    agree_slot *all = calloc(x->size, sizeof *all);
    uint64_t *off = malloc(((size_t)x->size + 1) * sizeof *off);
    if (!all || !off) {
        /* cannot take part: the exchange would fail on the other ranks as well */
        free(all);
        free(off);
        return apd__err_set(err, APD_ENOMEM, "distill: rank %u: out of memory", x->rank);
    }
    for (uint32_t r = 0; r <= x->size; r++) off[r] = (uint64_t)r * sizeof *all;
    all[x->rank].code = (int32_t)st;
    if (st != APD_OK && err) memcpy(all[x->rank].msg, err->msg, sizeof all->msg);
    all[x->rank].msg[sizeof all->msg - 1] = 0;
    apd_status out = apd__dcomm_exchange(x, all, off, err);
    for (uint32_t r = 0; r < x->size && out == APD_OK; r++) {
        if (all[r].code == APD_OK) continue;
        out = (apd_status)all[r].code;
        if (r != x->rank) {
            all[r].msg[sizeof all->msg - 1] = 0;
            apd__err_set(err, out, "%s (rank %u)", all[r].msg, r);
        }
    }
    if (out == APD_OK && st != APD_OK) out = st;
    free(all);
    free(off);
    return out;
}

apd_status apd__dcomm_classes(const apd_distill_ctx *x, void *buf, size_t unit, apd_err *err)
{
    if (!split(x)) return APD_OK;
    uint64_t *off = malloc(((size_t)x->size + 1) * sizeof *off);
    if (!off) return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    for (uint32_t r = 0; r < x->size; r++) {
        uint32_t lo, hi;
        apd__dcomm_range(x->n_classes, r, x->size, &lo, &hi);
        off[r] = (uint64_t)lo * unit;
    }
    off[x->size] = (uint64_t)x->n_classes * unit;
    apd_status st = apd__dcomm_exchange(x, buf, off, err);
    free(off);
    return st;
}

apd_status apd__dcomm_bcast0(const apd_distill_ctx *x, void *buf, size_t n, apd_err *err)
{
    if (!split(x)) return APD_OK;
    uint64_t *off = malloc(((size_t)x->size + 1) * sizeof *off);
    if (!off) return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    off[0] = 0;
    for (uint32_t r = 1; r <= x->size; r++) off[r] = n;
    apd_status st = apd__dcomm_exchange(x, buf, off, err);
    free(off);
    return st;
}
