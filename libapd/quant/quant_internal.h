/* quant/quant_internal.h: shared machinery of the quantizers (not installed).
 *
 * Every quantizer works on the image's colour histogram (apd__qhist): the distinct colours,
 * how many pixels have each, and for every pixel the id of its distinct colour. Quantizers
 * compute a palette and a palette index per distinct colour; the per-pixel index map is then
 * one table look-up per pixel. For 32x32 images that makes everything O(distinct colours).
 */
#ifndef APD_QUANT_INTERNAL_H
#define APD_QUANT_INTERNAL_H

#include <stdint.h>

#include "apd/quant.h"

typedef struct apd__qhist {
    uint32_t c;         /* 1 or 3 */
    uint32_t npix;      /* h*w */
    uint32_t n;         /* number of distinct colours */
    uint8_t (*col)[3];  /* n colours; grey uses col[i][0] only (col[i][1..2] = col[i][0]) */
    uint32_t *count;    /* n pixel counts */
    uint32_t *pix;      /* npix: distinct-colour id of each pixel (row-major) */
    void *mem_;         /* one allocation behind everything above */
} apd__qhist;

/* Build the histogram of a CHW image. Grey colours are listed in increasing value; RGB
 * colours in order of first appearance. @return APD_OK or APD_ENOMEM. */
apd_status apd__qhist_build(apd__qhist *hh, const uint8_t *img, uint32_t c, uint32_t npix);
void apd__qhist_free(apd__qhist *hh);

/* Squared L2 distance between two colours of c channels. */
static inline uint32_t apd__qdist(const uint8_t *a, const uint8_t *b, uint32_t c)
{
    uint32_t d = 0;
    for (uint32_t i = 0; i < c; i++) {
        int t = (int)a[i] - (int)b[i];
        d += (uint32_t)(t * t);
    }
    return d;
}

/* A palette laid out for fast distance evaluation: channel-major int32, padded to a multiple
 * of APD__QB entries with far-away colours, so the distance loop runs in fixed-size blocks
 * that the compiler vectorises even at -O2. */
#define APD__QB 16
typedef struct apd__qpal {
    int32_t v[3][APD_MAX_COLORS];
    uint32_t k, kpad, c;
} apd__qpal;

static inline void apd__qpal_set(apd__qpal *p, const uint8_t *palette, uint32_t k, uint32_t c)
{
    p->k = k;
    p->c = c;
    p->kpad = (k + APD__QB - 1) / APD__QB * APD__QB;
    for (uint32_t ch = 0; ch < 3; ch++)
        for (uint32_t j = 0; j < p->kpad; j++)
            p->v[ch][j] = j < k ? (ch < c ? palette[j * c + ch] : 0) : 0x4000;
}

/* d[j] = squared distance from col to entry j, for j < kpad (padding entries are huge). */
static inline void apd__qpal_dists(const apd__qpal *p, const uint8_t *col, uint32_t *restrict d)
{
    const int32_t *restrict v0 = p->v[0], *restrict v1 = p->v[1], *restrict v2 = p->v[2];
    const uint32_t kpad = p->kpad;
    if (p->c == 3) {
        const int32_t r = col[0], g = col[1], b = col[2];
        for (size_t j0 = 0; j0 < kpad; j0 += APD__QB)
            for (int t = 0; t < APD__QB; t++) {
                int32_t er = r - v0[j0 + t], eg = g - v1[j0 + t], eb = b - v2[j0 + t];
                d[j0 + t] = (uint32_t)(er * er + eg * eg + eb * eb);
            }
    } else {
        const int32_t y = col[0];
        for (size_t j0 = 0; j0 < kpad; j0 += APD__QB)
            for (int t = 0; t < APD__QB; t++) {
                int32_t e = y - v0[j0 + t];
                d[j0 + t] = (uint32_t)(e * e);
            }
    }
}

/* Smallest value of d[0..kpad). */
static inline uint32_t apd__qmin(const uint32_t *d, uint32_t kpad)
{
    uint32_t m[APD__QB];
    for (uint32_t j = 0; j < APD__QB; j++) m[j] = d[j];
    for (size_t j0 = APD__QB; j0 < kpad; j0 += APD__QB)
        for (int t = 0; t < APD__QB; t++) m[t] = d[j0 + t] < m[t] ? d[j0 + t] : m[t];
    uint32_t best = m[0];
    for (uint32_t j = 1; j < APD__QB; j++) best = m[j] < best ? m[j] : best;
    return best;
}

/* Nearest palette entry to each distinct colour (ties: lowest index) into map[n]. */
void apd__qnearest(const apd__qhist *hh, const uint8_t *palette, uint32_t k, uint32_t *map);

/* Median cut (Pillow-exact). palette: k*c bytes written for entries < *k_used;
 * map[n]: palette index of each distinct colour. */
apd_status apd__median_cut(const apd__qhist *hh, uint32_t k, uint8_t *palette, uint32_t *k_used,
                           uint32_t *map);
apd_status apd__octree(const apd__qhist *hh, uint32_t k, uint8_t *palette, uint32_t *k_used,
                       uint32_t *map);
/* Lloyd refinement in place of a palette + assignment (e.g. from median cut). */
apd_status apd__kmeans_refine(const apd__qhist *hh, uint32_t k_used, uint8_t *palette,
                              uint32_t *map, uint32_t max_iter);

#endif
