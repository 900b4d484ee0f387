/* mem_source.h: an in-memory record source for the loader tests (no files needed).
 * Record i: label i % n_classes, k = 1 + (i * 7) % kmax colours, palette and indices derived
 * from i by a fixed hash, so any test can recompute the expected pixels of any record. */
#ifndef APD_TEST_MEM_SOURCE_H
#define APD_TEST_MEM_SOURCE_H
#include <stdint.h>
#include "loader/loader_internal.h"

typedef struct mem_src {
    uint64_t n;
    uint32_t c, h, w, n_classes, kmax;
    int palette;            /* 0: serve as direct records */
    const uint8_t *corrupt; /* n flags or NULL */
} mem_src;

/* Expected record: palette (APD_MAX_COLORS*c), k, indices (h*w), label. */
void mem_record(const mem_src *m, uint64_t i, uint8_t *pal, uint32_t *k, uint8_t *idx, uint32_t *label);
/* Expected uint8 CHW pixels. */
void mem_pixels_chw(const mem_src *m, uint64_t i, uint8_t *out);
/* A source over m (m must outlive the loader). */
apd__loader_source mem_source(mem_src *m);
#endif
