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
