/* quant/quant.c: the public quantizer entry points (apd/quant.h), the colour histogram
 * every quantizer starts from, and nearest-colour mapping.
 *
 * Histogram: grey images use a 256-bin count; RGB images a linear-probing hash table keyed
 * by the 24-bit colour (table size a power of two >= 2 * pixels, capped at 2^25 since there
 * are at most 2^24 colours). Per pixel we store the distinct-colour id so that mapping the
 * whole image is one look-up per pixel after the quantizer has labelled each distinct colour.
 */
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "quant/quant_internal.h"

static uint32_t next_pow2(uint64_t v)
{
    uint32_t p = 64;
    while (p < v && p < (1u << 25)) p <<= 1;
    return p;
}

apd_status apd__qhist_build(apd__qhist *hh, const uint8_t *img, uint32_t c, uint32_t npix)
{
    memset(hh, 0, sizeof *hh);
    hh->c = c;
    hh->npix = npix;
    /* at most min(npix, 2^24) distinct colours; grey at most 256 */
    uint64_t maxn = c == 1 ? (npix < 256 ? npix : 256) : (npix < (1u << 24) ? npix : (1u << 24));
    size_t bytes = (size_t)maxn * (3 + 4) + (size_t)npix * 4 + 16;
    uint8_t *mem = malloc(bytes);
    if (!mem) return APD_ENOMEM;
    hh->mem_ = mem;
    hh->count = (uint32_t *)mem;
    hh->pix = hh->count + maxn;
    hh->col = (uint8_t(*)[3])(void *)(hh->pix + npix);

    if (c == 1) {
        uint32_t hist[256] = {0}, id[256];
        for (uint32_t p = 0; p < npix; p++) hist[img[p]]++;
        uint32_t n = 0;
        for (uint32_t v = 0; v < 256; v++) {
            if (!hist[v]) continue;
            id[v] = n;
            hh->count[n] = hist[v];
            hh->col[n][0] = hh->col[n][1] = hh->col[n][2] = (uint8_t)v;
            n++;
        }
        for (uint32_t p = 0; p < npix; p++) hh->pix[p] = id[img[p]];
        hh->n = n;
        return APD_OK;
    }

    uint32_t tsize = next_pow2((uint64_t)npix * 2);
    uint32_t bits = 0;
    while ((1u << bits) < tsize) bits++;
    /* slot: key+1 (0 = empty) and id, interleaved */
    uint32_t *tab = calloc((size_t)tsize * 2, sizeof(uint32_t));
    if (!tab) {
        apd__qhist_free(hh);
        return APD_ENOMEM;
    }
    const uint8_t *R = img, *G = img + npix, *B = img + 2 * (size_t)npix;
    uint32_t n = 0, mask = tsize - 1;
    for (uint32_t p = 0; p < npix; p++) {
        uint32_t key = ((uint32_t)R[p] << 16) | ((uint32_t)G[p] << 8) | B[p];
        uint32_t s = (key * 0x9E3779B1u) >> (32 - bits);
        for (;;) {
            uint32_t *slot = tab + 2 * (size_t)s;
            if (slot[0] == key + 1) {
                hh->count[slot[1]]++;
                hh->pix[p] = slot[1];
                break;
            }
            if (slot[0] == 0) {
                slot[0] = key + 1;
                slot[1] = n;
                hh->count[n] = 1;
                hh->col[n][0] = R[p];
                hh->col[n][1] = G[p];
                hh->col[n][2] = B[p];
                hh->pix[p] = n;
                n++;
                break;
            }
            s = (s + 1) & mask;
        }
    }
    free(tab);
    hh->n = n;
    return APD_OK;
}

void apd__qhist_free(apd__qhist *hh)
{
    if (!hh) return;
    free(hh->mem_);
    memset(hh, 0, sizeof *hh);
}

void apd__qnearest(const apd__qhist *hh, const uint8_t *palette, uint32_t k, uint32_t *map)
{
    apd__qpal qp;
    uint32_t d[APD_MAX_COLORS];
    apd__qpal_set(&qp, palette, k, hh->c);
    for (uint32_t i = 0; i < hh->n; i++) {
        apd__qpal_dists(&qp, hh->col[i], d);
        uint32_t m = apd__qmin(d, qp.kpad), j = 0;
        while (d[j] != m) j++;
        map[i] = j;
    }
}

static apd_status check_args(const uint8_t *img, uint32_t c, uint32_t h, uint32_t w,
                             uint32_t k, uint32_t *npix)
{
    if (!img || (c != 1 && c != 3) || h == 0 || w == 0 || k == 0 || k > APD_MAX_COLORS)
        return APD_EINVAL;
    uint64_t np = (uint64_t)h * w;
    if (np > UINT32_MAX / 4) return APD_EOVERFLOW;
    *npix = (uint32_t)np;
    return APD_OK;
}

apd_status apd_quantize_image(apd_quantizer q, const uint8_t *img, uint32_t c, uint32_t h,
                              uint32_t w, uint32_t k, uint64_t seed, uint8_t *palette,
                              uint8_t *indices, uint32_t *k_used)
{
    uint32_t npix;
    (void)seed;
    if (!palette || !indices || !k_used) return APD_EINVAL;
    if (q != APD_QUANT_MEDIAN_CUT && q != APD_QUANT_OCTREE && q != APD_QUANT_KMEANS)
        return APD_EINVAL;
    APD_TRY(check_args(img, c, h, w, k, &npix));

    apd__qhist hh;
    APD_TRY(apd__qhist_build(&hh, img, c, npix));
    uint32_t *map = malloc((size_t)hh.n * sizeof(uint32_t));
    if (!map) {
        apd__qhist_free(&hh);
        return APD_ENOMEM;
    }
    memset(palette, 0, (size_t)k * c);
    uint32_t used = 0;
    apd_status s;
    if (q == APD_QUANT_OCTREE) {
        s = apd__octree(&hh, k, palette, &used, map);
    } else {
        s = apd__median_cut(&hh, k, palette, &used, map);
        if (s == APD_OK && q == APD_QUANT_KMEANS)
            s = apd__kmeans_refine(&hh, used, palette, map, 32);
    }
    if (s == APD_OK) {
        for (uint32_t p = 0; p < npix; p++) indices[p] = (uint8_t)map[hh.pix[p]];
        *k_used = used;
    }
    free(map);
    apd__qhist_free(&hh);
    return s;
}

apd_status apd_quantize_map(const uint8_t *img, uint32_t c, uint32_t h, uint32_t w,
                            const uint8_t *palette, uint32_t k, uint8_t *indices)
{
    uint32_t npix;
    if (!palette || !indices) return APD_EINVAL;
    APD_TRY(check_args(img, c, h, w, k, &npix));
    if (c == 1) {
        /* 256-entry table: nearest entry of every grey value */
        uint8_t lut[256];
        for (uint32_t v = 0; v < 256; v++) {
            uint32_t best = 0, bd = UINT32_MAX;
            for (uint32_t j = 0; j < k; j++) {
                int t = (int)v - (int)palette[j];
                uint32_t d = (uint32_t)(t * t);
                if (d < bd) {
                    bd = d;
                    best = j;
                }
            }
            lut[v] = (uint8_t)best;
        }
        for (uint32_t p = 0; p < npix; p++) indices[p] = lut[img[p]];
        return APD_OK;
    }
    apd__qhist hh;
    APD_TRY(apd__qhist_build(&hh, img, c, npix));
    uint32_t *map = malloc((size_t)hh.n * sizeof(uint32_t) + 1);
    if (!map) {
        apd__qhist_free(&hh);
        return APD_ENOMEM;
    }
    apd__qnearest(&hh, palette, k, map);
    for (uint32_t p = 0; p < npix; p++) indices[p] = (uint8_t)map[hh.pix[p]];
    free(map);
    apd__qhist_free(&hh);
    return APD_OK;
}

uint64_t apd_quantize_sse(const uint8_t *img, uint32_t c, uint32_t h, uint32_t w,
                          const uint8_t *palette, const uint8_t *indices)
{
    uint64_t sse = 0;
    size_t npix = (size_t)h * w;
    for (uint32_t ch = 0; ch < c; ch++)
        for (size_t p = 0; p < npix; p++) {
            int d = (int)img[ch * npix + p] - (int)palette[(size_t)indices[p] * c + ch];
            sse += (uint64_t)(d * d);
        }
    return sse;
}

apd_status apd_quantizer_from_name(const char *name, apd_quantizer *out)
{
    if (!name || !out) return APD_EINVAL;
    if (!strcmp(name, "median-cut") || !strcmp(name, "mediancut") || !strcmp(name, "median_cut"))
        *out = APD_QUANT_MEDIAN_CUT;
    else if (!strcmp(name, "octree"))
        *out = APD_QUANT_OCTREE;
    else if (!strcmp(name, "kmeans") || !strcmp(name, "k-means"))
        *out = APD_QUANT_KMEANS;
    else
        return APD_EINVAL;
    return APD_OK;
}

const char *apd_quantizer_name(apd_quantizer q)
{
    switch (q) {
    case APD_QUANT_MEDIAN_CUT: return "median-cut";
    case APD_QUANT_OCTREE: return "octree";
    case APD_QUANT_KMEANS: return "kmeans";
    }
    return "unknown";
}
