/* distill/opts_check.c: the numeric distillation options must be finite and in a sane range
 * (apd__distill_check_numbers, called by validate() in distill.c).
 *
 * Why: the options were only checked for ">= 0", so an infinite learning rate or a momentum
 * of 1e30 drove the synthetic images to NaN and the run still wrote a file (all pixels 0 or
 * 255) and succeeded. The bounds are wide (a factor of about 1e4 or more above every default
 * and every setting in the papers) so that they only catch typos and overflows; momenta must
 * be below 1 (SGD with momentum >= 1 diverges) and temperatures above 0 (they divide).
 * Batch sizes are bounded too: their buffers are allocated at the size asked for before any
 * class is looked at, so --batch-real 4294967295 failed as "out of memory".
 */
#include <math.h>

#include "common/internal.h"
#include "distill/distill_internal.h"

/* 2^20 images per batch: 3x32x32 floats make 12 GiB of real-batch buffers already. */
#define APD__DISTILL_MAX_BATCH (1u << 20)

typedef struct num_rule {
    const char *name; /* the CLI option */
    double v, lo, hi;
    int lo_open, hi_open; /* 1: the bound itself is outside */
} num_rule;

apd_status apd__distill_check_numbers(const apd_distill_opts *o, apd_err *err)
{
    const num_rule r[] = {
        {"--lr-img", o->lr_img, 0, 1e6, 0, 0},
        {"--momentum-img", o->momentum_img, 0, 1, 0, 1},
        {"--lr-palette", o->lr_palette, 0, 1e6, 0, 0},
        {"--momentum-palette", o->momentum_palette, 0, 1, 0, 1},
        {"--wd-palette", o->wd_palette, 0, 1, 0, 1},
        {"--w-max", o->w_max, 0, 1e6, 0, 0},
        {"--w-balance", o->w_balance, 0, 1e6, 0, 0},
        {"--w-align", o->w_align, 0, 1e6, 0, 0},
        {"--w-conf", o->w_conf, 0, 1e6, 0, 0},
        {"--align-ratio", o->align_ratio, 0, 1, 1, 0},
        {"--task-scale", o->task_scale, 0, 1e6, 0, 0},
        {"--temp-start", o->temp_start, 0, 1e6, 1, 0},
        {"--temp-end", o->temp_end, 0, 1e6, 1, 0},
        {"--select-lr", o->select_lr, 0, 1e6, 0, 0},
        {"--select-momentum", o->select_momentum, 0, 1, 0, 1},
        {"--select-wd", o->select_wd, 0, 1, 0, 1},
        {"--gc-lambda", o->gc_lambda, 0, 1e6, 0, 0},
        {"--ce-weight", apd_distill_ce_weight_in_effect(o), 0, 1e6, 0, 0},
    };
    const struct {
        const char *name;
        uint32_t v;
    } b[] = {{"--batch-real", o->batch_real},
             {"--select-batch", o->select_batch},
             {"--net-pool-batch", o->net_pool_batch}};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++)
        if (b[i].v > APD__DISTILL_MAX_BATCH)
            return apd__err_set(err, APD_EINVAL, "distill: %s %u is out of range (at most %u)", b[i].name,
                                b[i].v, APD__DISTILL_MAX_BATCH);
    for (size_t i = 0; i < sizeof r / sizeof *r; i++) {
        double v = r[i].v;
        int ok = isfinite(v) && (r[i].lo_open ? v > r[i].lo : v >= r[i].lo) &&
                 (r[i].hi_open ? v < r[i].hi : v <= r[i].hi);
        if (!ok)
            return apd__err_set(err, isfinite(v) ? APD_EINVAL : APD_ENUMERIC,
                                "distill: %s %g is outside %c%g, %g%c", r[i].name, v, r[i].lo_open ? '(' : '[',
                                r[i].lo, r[i].hi, r[i].hi_open ? ')' : ']');
    }
    return APD_OK;
}
