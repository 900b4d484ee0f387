/* loader/source_reader.c: apd_loader_open — the loader's record source over an apd_reader.
 *
 * Records are decoded by apd_reader_decode (the reader's VBMI kernel unpacks the bit-packed
 * indices and looks up the palette in one pass); float32 CHW output goes through
 * apd_reader_decode_f32 (same checks, the palette normalised once per record and gathered
 * by the same unpack, no uint8 intermediate; bit-identical to decoding to uint8 and
 * converting). The loader decodes its batches through rd_decode_batch (the reader's batch
 * calls: index-coded records eight at a time, in lockstep). rd_prefetch lets the loader
 * prefetch upcoming (shuffled) records. The path
 * through apd_reader_record (palette + separately unpacked indices, then the same kernels at
 * 8 bits per index) is kept for sources that set use_records; bench/loader measured it
 * slower on files because of the separate unpack.
 *
 * Error messages name file, record, chunk key and slot (apd_reader_locate) plus the status.
 * The reader's own last-error text is per handle and not safe to read while other threads
 * decode, so it is only appended when one thread decodes (threads == 1 and prefetch == 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "loader/loader_internal.h"

#include "apd/format.h"

typedef struct rd_ctx {
    apd_reader *r;
    int single; /* one decoding thread: the reader's errmsg may be read */
    uint32_t n_classes;
    char path[256];
} rd_ctx;

static void rd_msg(rd_ctx *x, uint64_t i, apd_status st, char *msg, size_t len)
{
    uint64_t chunk = 0;
    uint32_t slot = 0;
    char where[96] = "";
    if (apd_reader_locate(x->r, i, &chunk, &slot) == APD_OK)
        snprintf(where, sizeof where, " (chunk key %016llx, slot %u)", (unsigned long long)chunk,
                 slot);
    const char *detail = x->single ? apd_reader_errmsg(x->r) : NULL;
    if (detail && detail[0]) /* the reader's message names file, record, key and reason */
        snprintf(msg, len, "%s", detail);
    else
        snprintf(msg, len, "%s: record %llu%s: %s", x->path, (unsigned long long)i, where,
                 apd_strerror(st));
}

static apd_status rd_label(void *ctx, uint64_t i, uint32_t *label, char *msg, size_t len)
{
    rd_ctx *x = ctx;
    apd_status st = apd_reader_label(x->r, i, label);
    if (st != APD_OK) rd_msg(x, i, st, msg, len);
    return st;
}

static apd_status rd_decode(void *ctx, uint64_t i, int chw, uint8_t *out, size_t out_len,
                            uint32_t *label, char *msg, size_t len)
{
    rd_ctx *x = ctx;
    apd_status st = apd_reader_decode(x->r, i, chw ? APD_LAYOUT_CHW : APD_LAYOUT_HWC, out,
                                      out_len, label);
    if (st != APD_OK) rd_msg(x, i, st, msg, len);
    return st;
}

static apd_status rd_decode_f32(void *ctx, uint64_t i, const float *mean, const float *std,
                                float *out, size_t out_len, uint32_t *label, char *msg, size_t len)
{
    rd_ctx *x = ctx;
    apd_status st = apd_reader_decode_f32(x->r, i, APD_LAYOUT_CHW, mean, std, out, out_len, label);
    if (st != APD_OK) rd_msg(x, i, st, msg, len);
    return st;
}

static void rd_decode_batch(void *ctx, const uint64_t *ids, uint32_t n, int mode, const float *mean,
                            const float *std, void *out, size_t stride, uint32_t *labels, apd_status *st)
{
    rd_ctx *x = ctx;
    if (mode == 2)
        apd_reader_decode_f32_batch(x->r, ids, n, APD_LAYOUT_CHW, mean, std, out, stride / sizeof(float),
                                    labels, st);
    else
        apd_reader_decode_batch(x->r, ids, n, mode ? APD_LAYOUT_CHW : APD_LAYOUT_HWC, out, stride, labels, st);
}

static void rd_prefetch(void *ctx, uint64_t i, int stage)
{
    apd_reader_prefetch(((rd_ctx *)ctx)->r, i, stage);
}

static apd_status rd_record(void *ctx, uint64_t i, uint8_t *pal, uint32_t *k, uint8_t *idx,
                            uint32_t *label, char *msg, size_t len)
{
    rd_ctx *x = ctx;
    apd_status st = apd_reader_record(x->r, i, pal, k, idx, label);
    if (st != APD_OK) rd_msg(x, i, st, msg, len);
    return st;
}

static apd_status rd_soft(void *ctx, uint64_t i, float *out, char *msg, size_t len)
{
    rd_ctx *x = ctx;
    apd_status st = apd_reader_soft_label(x->r, i, out, x->n_classes, NULL);
    if (st != APD_OK) rd_msg(x, i, st, msg, len);
    return st;
}

static void rd_close(void *ctx)
{
    rd_ctx *x = ctx;
    if (!x) return;
    apd_reader_close(x->r);
    free(x);
}

apd_status apd_loader_open(apd_loader **out, const char *path, const apd_loader_opts *o,
                           apd_err *err)
{
    if (out) *out = NULL;
    if (!out || !path) return apd__err_set(err, APD_EINVAL, "apd_loader_open: NULL argument");
    rd_ctx *x = calloc(1, sizeof *x);
    if (!x) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    snprintf(x->path, sizeof x->path, "%s", path);
    apd_status st = apd_reader_open(&x->r, path, NULL, err);
    if (st != APD_OK) {
        free(x);
        return st;
    }
    apd_file_info fi;
    st = apd_reader_info(x->r, &fi);
    if (st != APD_OK) {
        apd__err_set(err, st, "%s: %s", path, apd_reader_errmsg(x->r));
        rd_close(x);
        return st;
    }
    x->single = !o || ((o->threads <= 1) && o->prefetch == 0);
    apd__loader_source s;
    memset(&s, 0, sizeof s);
    s.ctx = x;
    s.n_records = fi.n_records;
    s.c = fi.c;
    s.h = fi.h;
    s.w = fi.w;
    s.n_classes = fi.n_classes;
    s.palette = fi.kind == APD_KIND_PALETTE;
    for (int ch = 0; ch < 3; ch++) {
        s.mean[ch] = fi.mean[ch];
        s.std[ch] = fi.std[ch];
    }
    s.label = rd_label;
    s.decode = rd_decode;
    s.decode_f32 = rd_decode_f32;
    s.decode_batch = rd_decode_batch;
    s.prefetch = rd_prefetch;
    s.record = s.palette ? rd_record : NULL;
    x->n_classes = fi.n_classes;
    s.soft = fi.n_classes ? rd_soft : NULL;
    s.has_soft = (uint32_t)fi.has_soft_labels;
    s.close = rd_close;
    return apd__loader_open_source(out, &s, path, o, err); /* closes x on failure */
}
