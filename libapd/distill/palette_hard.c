/* distill/palette_hard.c: what the palette network's output becomes on disk, and how a run
 * is watched: the 8-bit palette record of an image (argmax map + bucket-mean palette), its
 * decode, the median-cut targets of La (the same 8-bit conversion), and the monitoring
 * figures (colours used at argmax, soft-vs-hard gap) that reveal palette collapse.
 *
 * Contract: see apd/palette.h.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "apd/palette.h"
#include "common/internal.h"
#include "distill/palette_internal.h"

#include "apd/quant.h"

apd_status apd_palette_hard(uint8_t *palette, uint8_t *indices, uint32_t *k_used, const apd_palette_ws *ws,
                            uint32_t i, const float *mean, const float *std)
{
    APD_RETURN_IF(!palette || !indices || !ws || !mean || !std, APD_EINVAL);
    APD_RETURN_IF(ws->b == 0 || i >= ws->b, APD_EINVAL);
    uint32_t c = ws->c, k = ws->k, p = ws->p;
    const float *hp = ws->hpal + (size_t)i * c * k;
    const uint32_t *cnt = ws->count + (size_t)i * k;
    uint32_t used = 0;
    for (uint32_t j = 0; j < k; j++) {
        used += cnt[j] > 0;
        for (uint32_t ch = 0; ch < c; ch++)
            palette[(size_t)j * c + ch] = cnt[j] ? apd__pal_to_u8(hp[ch * k + j], mean[ch], std[ch]) : 0;
    }
    memcpy(indices, ws->idx + (size_t)i * p, p);
    if (k_used) *k_used = used;
    return APD_OK;
}

void apd_palette_decode(float *out, const uint8_t *palette, const uint8_t *indices, uint32_t c, uint32_t p,
                        const float *mean, const float *std)
{
    if (!out || !palette || !indices || !mean || !std) return;
    for (uint32_t ch = 0; ch < c; ch++) {
        float lut[256];
        for (uint32_t v = 0; v < 256; v++) lut[v] = apd__pal_from_u8((uint8_t)v, mean[ch], std[ch]);
        float *o = out + (size_t)ch * p;
        for (uint32_t q = 0; q < p; q++) o[q] = lut[palette[(size_t)indices[q] * c + ch]];
    }
}

typedef struct {
    uint8_t *out;
    const float *x;
    uint32_t c, h, w, k;
    const float *mean, *std;
    uint8_t *img;      /* per thread c*h*w */
    apd_status *st;    /* per image */
} tgt_ctx;

static void target_image(void *vctx, uint32_t i, uint32_t thread)
{
    tgt_ctx *cx = vctx;
    size_t p = (size_t)cx->h * cx->w;
    uint8_t *img = cx->img + (size_t)thread * cx->c * p, pal[4 * APD_MAX_COLORS];
    const float *xi = cx->x + (size_t)i * cx->c * p;
    for (uint32_t ch = 0; ch < cx->c; ch++)
        for (size_t q = 0; q < p; q++) img[ch * p + q] = apd__pal_to_u8(xi[ch * p + q], cx->mean[ch], cx->std[ch]);
    uint32_t used = 0;
    cx->st[i] = apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, cx->c, cx->h, cx->w, cx->k, 0, pal,
                                   cx->out + (size_t)i * p, &used);
}

apd_status apd__palette_la_targets_pool(apd_pool *pool, uint8_t *out, const float *x, uint32_t b, uint32_t c,
                                        uint32_t h, uint32_t w, uint32_t k, const float *mean, const float *std)
{
    APD_RETURN_IF(!out || !x || !mean || !std || b == 0 || h == 0 || w == 0, APD_EINVAL);
    APD_RETURN_IF(k < 1 || k > APD_MAX_COLORS || (c != 1 && c != 3), APD_EINVAL);
    uint32_t nt = apd_pool_threads(pool);
    size_t p = (size_t)h * w;
    uint8_t *img = malloc((size_t)nt * c * p);
    apd_status *st = malloc((size_t)b * sizeof(apd_status));
    if (!img || !st) {
        free(img);
        free(st);
        return APD_ENOMEM;
    }
    tgt_ctx cx = {out, x, c, h, w, k, mean, std, img, st};
    apd_pool_run(pool, b, target_image, &cx);
    apd_status r = APD_OK;
    for (uint32_t i = 0; i < b && r == APD_OK; i++) r = st[i];
    free(img);
    free(st);
    return r;
}

apd_status apd_palette_la_targets(uint8_t *out, const float *x, uint32_t b, uint32_t c, uint32_t h, uint32_t w,
                                  uint32_t k, const float *mean, const float *std)
{
    return apd__palette_la_targets_pool(NULL, out, x, b, c, h, w, k, mean, std);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

apd_status apd_palette_stats_compute(apd_palette_stats *out, uint32_t *colors, const apd_palette_ws *ws,
                                     const float *x)
{
    APD_RETURN_IF(!out || !ws || !x, APD_EINVAL);
    memset(out, 0, sizeof *out);
    APD_RETURN_IF(ws->b == 0, APD_EINVAL);
    uint32_t b = ws->b, c = ws->c, k = ws->k, p = ws->p;
    uint32_t *cols = malloc((size_t)b * sizeof(uint32_t));
    if (!cols) return APD_ENOMEM;
    float *ys = apd__palette_ysoft_scratch(ws);
    double gap = 0.0, soft = 0.0, hard = 0.0, maxp = 0.0;
    uint64_t csum = 0;
    out->colors_min = UINT32_MAX;
    for (uint32_t i = 0; i < b; i++) {
        const float *xi = x + (size_t)i * c * p, *mi = ws->m + (size_t)i * k * p;
        const float *pal = ws->pal + (size_t)i * c * k, *hp = ws->hpal + (size_t)i * c * k;
        const uint8_t *ix = ws->idx + (size_t)i * p;
        const uint32_t *cnt = ws->count + (size_t)i * k;
        uint32_t used = 0;
        for (uint32_t j = 0; j < k; j++) used += cnt[j] > 0;
        cols[i] = used;
        csum += used;
        if (used < out->colors_min) out->colors_min = used;
        if (used > out->colors_max) out->colors_max = used;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c, (int)p, (int)k, 1.0f, pal, (int)k, mi,
                    (int)p, 0.0f, ys, (int)p);
        for (uint32_t ch = 0; ch < c; ch++)
            for (uint32_t q = 0; q < p; q++) {
                double xs = xi[(size_t)ch * p + q], s = ys[(size_t)ch * p + q], hv = hp[ch * k + ix[q]];
                gap += (s - hv) * (s - hv);
                soft += (s - xs) * (s - xs);
                hard += (hv - xs) * (hv - xs);
            }
        for (uint32_t q = 0; q < p; q++) maxp += mi[(size_t)ix[q] * p + q];
    }
    double n = (double)b * c * p;
    out->gap_mse = gap / n;
    out->soft_mse = soft / n;
    out->hard_mse = hard / n;
    out->max_prob_mean = maxp / ((double)b * p);
    out->colors_mean = (double)csum / b;
    if (colors) memcpy(colors, cols, (size_t)b * sizeof(uint32_t));
    qsort(cols, b, sizeof(uint32_t), cmp_u32);
    out->colors_median = (b % 2) ? cols[b / 2] : 0.5 * ((double)cols[b / 2 - 1] + cols[b / 2]);
    free(cols);
    return APD_OK;
}
