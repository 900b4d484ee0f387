/* apd/budget.h: storage-budget rules for colour-reduced synthetic sets (docs/method.md
 * choice 6 and section 5): how many K-colour images per class fit the budget of IPC
 * full-colour images of the same size.
 *
 *   bits   (default) count the real bytes of one palette record: palette K*C bytes + packed
 *          indices ceil(H*W*bits/8), bits = max(1, ceil(log2 K)); budget = IPC*C*H*W bytes;
 *          images per class = max(1, floor(budget / bytes_per_image)).
 *          Policy: floor, never more than the budget, except that at least one image per
 *          class is kept (when a single palette image costs more than the whole budget,
 *          e.g. 28x28x1 at K = 256 with IPC 1: 1040 > 784 B); `over_budget` then says so.
 *          Record framing (label, header, checksum, LMDB pages) is not counted: apd-info
 *          reports the file's real bytes next to these figures.
 *   paper  the paper's rule IPC * 2^(8 - ceil(log2 K)) (palette not counted).
 *   images IPC images per class (the paper's ablation setting).
 *   bytes  count the bytes the writer really stores: per class, the stored records (record
 *          header, source id and the body as written: plain, zstd or format 1.1 entropy-coded,
 *          palette included) plus an equal share ceil(shared / n_classes) of the file's shared
 *          coding tables (index model, zstd dictionary); budget = IPC*C*H*W bytes per class.
 *          Images per class = max(1, floor((budget - share) / stored bytes per image)), the
 *          stored bytes per image measured by coding images with the real writer
 *          (apd_budget_measured; distillation measures, then trims until the written records
 *          fit, docs/distill.md). apd_budget_compute cannot apply it without a measurement.
 *
 * Example (32x32x3, K = 64, IPC 10): bits: 192 + 768 = 960 B per image, budget 30720 B,
 * floor(32) = 32 images per class; paper: 40; images: 10.
 *
 *     apd_budget bd;
 *     if (apd_budget_compute(&bd, APD_BUDGET_BITS, 10, 64, 3, 32, 32) == APD_OK)
 *         printf("%llu images/class\n", (unsigned long long)bd.images_per_class);
 *
 * Pure functions; thread-safe.
 */
#ifndef APD_BUDGET_H
#define APD_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum apd_budget_rule {
    APD_BUDGET_BITS = 0,
    APD_BUDGET_PAPER = 1,
    APD_BUDGET_IMAGES = 2,
    APD_BUDGET_BYTES = 3
} apd_budget_rule;

typedef struct apd_budget {
    apd_budget_rule rule;
    uint32_t ipc, k, c, h, w;
    uint32_t index_bits;        /* max(1, ceil(log2 k)) */
    uint64_t palette_bytes;     /* k*c */
    uint64_t index_bytes;       /* ceil(h*w*index_bits/8) */
    uint64_t bytes_per_image;   /* palette_bytes + index_bytes; bytes rule: the measured stored
                                   bytes per image (rounded up) */
    uint64_t full_image_bytes;  /* c*h*w */
    uint64_t budget_bytes;      /* per class: ipc * full_image_bytes */
    uint64_t images_per_class;  /* from the rule */
    uint64_t shared_bytes;      /* bytes rule: the class's share of the shared tables (else 0) */
    uint64_t used_bytes;        /* per class: images_per_class * bytes_per_image + shared_bytes */
    int over_budget;            /* used_bytes > budget_bytes */
} apd_budget;

/* Fill *out for the rule. ipc >= 1, k in 2..APD_MAX_COLORS, c,h,w >= 1.
 * @return APD_OK; APD_EINVAL (NULL out, a value out of range, unknown rule, or
 *         APD_BUDGET_BYTES, which needs apd_budget_measured; *out zeroed);
 *         APD_EOVERFLOW (the byte counts overflow size_t). */
APD_API apd_status apd_budget_compute(apd_budget *out, apd_budget_rule rule, uint32_t ipc, uint32_t k,
                                      uint32_t c, uint32_t h, uint32_t w);
/* The bytes rule from a measurement: stored_bytes stored bytes for n_images images of one
 * class (records as the writer stores them) and shared_bytes, that class's share of the
 * file's shared tables. bytes_per_image = ceil(stored_bytes / n_images); images_per_class =
 * max(1, floor((budget_bytes - shared_bytes) / bytes_per_image)) (1 and over_budget when the
 * share alone exceeds the budget); index_bits, palette_bytes and index_bytes are the plain
 * 1.0 figures, for reference. Arguments as apd_budget_compute, n_images >= 1,
 * stored_bytes >= 1.
 * @return APD_OK; APD_EINVAL (*out zeroed); APD_EOVERFLOW. */
APD_API apd_status apd_budget_measured(apd_budget *out, uint32_t ipc, uint32_t k, uint32_t c, uint32_t h,
                                       uint32_t w, uint64_t n_images, uint64_t stored_bytes,
                                       uint64_t shared_bytes);
/* "bits" | "paper" | "images" | "bytes". @return APD_OK; APD_EINVAL (NULL or unknown name;
 * *out untouched). */
APD_API apd_status apd_budget_rule_from_name(const char *name, apd_budget_rule *out);
/* Static name of a rule ("unknown" otherwise). */
APD_API const char *apd_budget_rule_name(apd_budget_rule rule);
/* The "budget" provenance value as one-line JSON:
 * {"rule":"bits","ipc":10,"k":64,"c":3,"h":32,"w":32,"index_bits":6,"palette_bytes":192,
 *  "index_bytes":768,"bytes_per_image":960,"full_image_bytes":3072,"budget_bytes":30720,
 *  "images_per_class":32,"used_bytes":30720,"over_budget":false}
 * (the bytes rule adds "shared_bytes" before "used_bytes").
 * Writes at most len bytes including the NUL.
 * @return APD_OK; APD_EINVAL (NULL b or buf, len 0); APD_EBUFSIZE (does not fit; buf holds
 *         a truncated, NUL-terminated prefix). */
APD_API apd_status apd_budget_json(const apd_budget *b, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
