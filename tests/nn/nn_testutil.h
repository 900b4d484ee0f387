/* nn_testutil.h: small helpers shared by the NN tests: seeded random tensors, error
 * metrics (max abs / max rel with an absolute floor) and the golden-file reader.
 *
 * Golden file layout (written by tests/nn/gen_golden.py, little-endian):
 *   magic "APDGOLD1" (8 bytes), u32 version (1), u32 n_tensors,
 *   then per tensor: u32 name_len, name bytes (no NUL), u32 ndim, u32 dims[ndim],
 *   float32 data[prod(dims)] (a scalar has ndim 0 and one value).
 */
#ifndef APD_NN_TESTUTIL_H
#define APD_NN_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

static inline float *tu_rand(size_t n, apd__rng *r, float lo, float hi)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = apd__rng_range(r, lo, hi);
    return p;
}

static inline float *tu_zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* Max of |a-b| / (|b| + floor): relative error with an absolute floor for tiny values. */
static inline double tu_max_rel(const float *a, const float *b, size_t n, double floor_)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (fabs((double)b[i]) + floor_);
        if (!(e <= m)) m = e; /* NaN propagates as "infinitely bad" */
    }
    return m;
}

static inline double tu_max_abs(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= m)) m = e;
    }
    return m;
}

static inline double tu_max_absval(const float *a, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* Max relative error of `got` against `ref` with an absolute floor of 1% of ref's scale:
 * max_i |got_i - ref_i| / (|ref_i| + 0.01 * max_j |ref_j|). The floor keeps entries that are
 * zero up to round-off (post-ReLU activations, cancelling sums) from turning float32
 * round-off (~1e-6 of the scale for 1152-term conv sums) into large "relative" errors. */
static inline double tu_err(const float *got, const float *ref, size_t n)
{
    double scale = tu_max_absval(ref, n);
    if (scale == 0.0) scale = 1.0;
    return tu_max_rel(got, ref, n, 1e-2 * scale);
}

typedef struct tu_tensor {
    char name[64];
    uint32_t ndim, dims[8];
    size_t n;
    float *data;
} tu_tensor;

typedef struct tu_golden {
    uint32_t count;
    tu_tensor t[64];
} tu_golden;

static inline uint32_t tu_rd32(FILE *f, int *ok)
{
    uint8_t b[4];
    if (fread(b, 1, 4, f) != 4) { *ok = 0; return 0; }
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

/* Returns 0 on success; prints the reason otherwise. */
static inline int tu_golden_load(tu_golden *g, const char *path)
{
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "%s: cannot open\n", path); return -1; }
    char magic[8];
    int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, "APDGOLD1", 8) == 0;
    uint32_t ver = tu_rd32(f, &ok), cnt = tu_rd32(f, &ok);
    if (!ok || ver != 1 || cnt > 64) { fprintf(stderr, "%s: bad header\n", path); fclose(f); return -1; }
    for (uint32_t i = 0; i < cnt && ok; i++) {
        tu_tensor *t = &g->t[i];
        uint32_t nl = tu_rd32(f, &ok);
        if (!ok || nl >= sizeof t->name || fread(t->name, 1, nl, f) != nl) { ok = 0; break; }
        t->name[nl] = 0;
        t->ndim = tu_rd32(f, &ok);
        if (t->ndim > 8) { ok = 0; break; }
        t->n = 1;
        for (uint32_t d = 0; d < t->ndim; d++) { t->dims[d] = tu_rd32(f, &ok); t->n *= t->dims[d]; }
        if (!ok || t->n > (1u << 28)) { ok = 0; break; }
        t->data = malloc(t->n * sizeof(float));
        uint8_t *raw = malloc(t->n * 4);
        if (!t->data || !raw || fread(raw, 4, t->n, f) != t->n) { free(raw); ok = 0; break; }
        for (size_t k = 0; k < t->n; k++) {
            uint32_t u = (uint32_t)raw[4 * k] | ((uint32_t)raw[4 * k + 1] << 8) |
                         ((uint32_t)raw[4 * k + 2] << 16) | ((uint32_t)raw[4 * k + 3] << 24);
            memcpy(&t->data[k], &u, 4);
        }
        free(raw);
        g->count = i + 1;
    }
    fclose(f);
    if (!ok) fprintf(stderr, "%s: truncated or malformed\n", path);
    return ok ? 0 : -1;
}

static inline const tu_tensor *tu_get(const tu_golden *g, const char *name)
{
    for (uint32_t i = 0; i < g->count; i++)
        if (strcmp(g->t[i].name, name) == 0) return &g->t[i];
    fprintf(stderr, "golden tensor %s missing\n", name);
    return NULL;
}

static inline void tu_golden_free(tu_golden *g)
{
    for (uint32_t i = 0; i < g->count; i++) free(g->t[i].data);
    g->count = 0;
}

#endif
