/* distill/palette_net.c: the AutoPalette palette network (per-pixel MLP C -> hidden -> ReLU
 * -> K, softmax over K) with the soft per-image palette, its backward pass (docs/method.md
 * 2.4), the hard quantization left in the workspace, and the network's SGD.
 *
 * Contract: see apd/palette.h. Every product is one cblas_sgemm per image over its P pixels
 * (row-major, channels/units as rows, pixels as columns, so the NCHW input needs no
 * transposition). The hidden activations (hidden x P per image, 1 MiB for a 32x32 image) are
 * recomputed in backward instead of stored: that costs C*hidden MACs per pixel against the
 * hidden*K of the second layer, and keeps the workspace at ~4K bytes per pixel.
 *
 * Why the workspace keeps m and not z: softmax backward only needs m, and the soft palette
 * backward needs m, pal and den.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apd/palette.h"
#include "common/internal.h"
#include "common/rng.h"
#include "distill/palette_internal.h"

#define PAL_EPS 1e-8f
#define RNG_STREAM_INIT 0x70616C2D696E6974ull /* "pal-init" */

/* ---- network ------------------------------------------------------------------------------ */

static void net_views(apd_palette_net *n)
{
    size_t o1 = (size_t)n->hidden * n->c, o2 = o1 + n->hidden;
    n->w1 = n->params; n->b1 = n->params + o1; n->w2 = n->params + o2;
    n->dw1 = n->grads; n->db1 = n->grads + o1; n->dw2 = n->grads + o2;
}

apd_status apd_palette_net_init(apd_palette_net *net, uint32_t c, uint32_t k, uint32_t hidden, uint64_t seed)
{
    APD_RETURN_IF(!net, APD_EINVAL);
    memset(net, 0, sizeof *net);
    APD_RETURN_IF(c < 1 || c > 4 || k < 2 || k > APD_MAX_COLORS || hidden < 1 || hidden > (1u << 16),
                  APD_EINVAL);
    net->c = c; net->k = k; net->hidden = hidden;
    net->n_params = (size_t)hidden * c + hidden + (size_t)k * hidden;
    net->params = calloc(net->n_params, sizeof(float));
    net->grads = calloc(net->n_params, sizeof(float));
    net->mom = calloc(net->n_params, sizeof(float));
    if (!net->params || !net->grads || !net->mom) {
        apd_palette_net_free(net);
        return APD_ENOMEM;
    }
    net_views(net);
    apd__rng r;
    apd__rng_seed(&r, seed, RNG_STREAM_INIT);
    /* PyTorch Conv2d default: kaiming_uniform(a = sqrt(5)) for the weight gives bound
     * 1/sqrt(fan_in); the bias uses the same bound. */
    float b1 = 1.0f / sqrtf((float)c), b2 = 1.0f / sqrtf((float)hidden);
    for (size_t i = 0; i < (size_t)hidden * c; i++) net->w1[i] = apd__rng_range(&r, -b1, b1);
    for (size_t i = 0; i < hidden; i++) net->b1[i] = apd__rng_range(&r, -b1, b1);
    for (size_t i = 0; i < (size_t)k * hidden; i++) net->w2[i] = apd__rng_range(&r, -b2, b2);
    return APD_OK;
}

void apd_palette_net_free(apd_palette_net *net)
{
    if (!net) return;
    free(net->params);
    free(net->grads);
    free(net->mom);
    memset(net, 0, sizeof *net);
}

void apd_palette_net_zero_grad(apd_palette_net *net)
{
    if (net && net->grads) memset(net->grads, 0, net->n_params * sizeof(float));
}

void apd_palette_sgd_opts_default(apd_palette_sgd_opts *o)
{
    if (!o) return;
    o->lr = 0.05f;
    o->momentum = 0.5f;
    o->weight_decay = 5e-4f;
}

void apd_palette_net_step(apd_palette_net *net, const apd_palette_sgd_opts *sgd)
{
    if (!net || !net->params || !sgd) return;
    apd_sgd_update(net->params, net->mom, net->grads, net->n_params, sgd->lr, sgd->momentum,
                   sgd->weight_decay, !net->mom_init);
    net->mom_init = 1;
}

/* ---- workspace ---------------------------------------------------------------------------- */

/* Per-thread scratch. small: colA [max_p], colB [max_p], ones [max_p], dpal [c*k], e [c*k],
 * r [k], ysoft [c*max_p], gu [c*max_p] (dL/du of the IMAGE_NORM input, backward only). */
struct apd__palette_scratch {
    float *h, *dh, *g, *dz, *small;
};

static size_t small_len(uint32_t c, uint32_t k, uint32_t max_p)
{
    return 3 * (size_t)max_p + 2 * (size_t)c * k + k + 2 * (size_t)c * max_p;
}

static void scratch_free(apd__palette_scratch *s, uint32_t n)
{
    if (!s) return;
    for (uint32_t t = 0; t < n; t++) {
        free(s[t].h); free(s[t].dh); free(s[t].g); free(s[t].dz); free(s[t].small);
    }
    free(s);
}

static apd__palette_scratch *scratch_alloc(uint32_t n, uint32_t c, uint32_t k, uint32_t hidden, uint32_t max_p)
{
    apd__palette_scratch *s = calloc(n, sizeof *s);
    if (!s) return NULL;
    size_t hp = (size_t)hidden * max_p, kp = (size_t)k * max_p;
    for (uint32_t t = 0; t < n; t++) {
        s[t].h = malloc(hp * sizeof(float));
        s[t].dh = malloc(hp * sizeof(float));
        s[t].g = malloc(kp * sizeof(float));
        s[t].dz = malloc(kp * sizeof(float));
        s[t].small = calloc(small_len(c, k, max_p), sizeof(float));
        if (!s[t].h || !s[t].dh || !s[t].g || !s[t].dz || !s[t].small) {
            scratch_free(s, n);
            return NULL;
        }
    }
    return s;
}

float *apd__palette_ysoft_scratch(const apd_palette_ws *ws)
{
    return ws->scr[0].small + 3 * (size_t)ws->max_p + 2 * (size_t)ws->c * ws->k + ws->k;
}

apd_status apd_palette_ws_create(apd_palette_ws **out, uint32_t c, uint32_t k, uint32_t hidden, uint32_t max_b,
                                 uint32_t max_p)
{
    APD_RETURN_IF(!out, APD_EINVAL);
    *out = NULL;
    APD_RETURN_IF(c < 1 || c > 4 || k < 2 || k > APD_MAX_COLORS || hidden < 1 || max_b < 1 || max_p < 1,
                  APD_EINVAL);
    size_t bkp, bp, hp;
    APD_RETURN_IF(!apd__mul3_ok(max_b, k, max_p, &bkp), APD_EOVERFLOW);
    APD_RETURN_IF(!apd__mul_ok(max_b, max_p, &bp), APD_EOVERFLOW);
    APD_RETURN_IF(!apd__mul_ok(hidden, max_p, &hp), APD_EOVERFLOW);
    APD_RETURN_IF(bkp > SIZE_MAX / sizeof(float) || hp > SIZE_MAX / sizeof(float), APD_EOVERFLOW);
    apd_palette_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return APD_ENOMEM;
    ws->c = c; ws->k = k; ws->hidden = hidden; ws->max_b = max_b; ws->max_p = max_p;
    ws->temperature = 1.0f;
    size_t bck = (size_t)max_b * c * k;
    ws->m = malloc(bkp * sizeof(float));
    ws->pal = calloc(bck, sizeof(float));
    ws->hpal = calloc(bck, sizeof(float));
    ws->den = calloc((size_t)max_b * k, sizeof(float));
    ws->idx = calloc(bp, 1);
    ws->count = calloc((size_t)max_b * k, sizeof(uint32_t));
    ws->n_scr = 1;
    ws->scr = scratch_alloc(1, c, k, hidden, max_p);
    if (!ws->m || !ws->pal || !ws->hpal || !ws->den || !ws->idx || !ws->count || !ws->scr) {
        apd_palette_ws_free(ws);
        return APD_ENOMEM;
    }
    *out = ws;
    return APD_OK;
}

void apd_palette_ws_free(apd_palette_ws *ws)
{
    if (!ws) return;
    free(ws->m); free(ws->pal); free(ws->hpal); free(ws->den); free(ws->idx); free(ws->count);
    scratch_free(ws->scr, ws->n_scr);
    free(ws->gbuf); free(ws->s_dm); free(ws->u); free(ws->istd);
    free(ws);
}

apd_status apd_palette_ws_get_view(const apd_palette_ws *ws, apd_palette_ws_view *out)
{
    APD_RETURN_IF(!ws || !out, APD_EINVAL);
    memset(out, 0, sizeof *out);
    out->c = ws->c;
    out->k = ws->k;
    if (ws->b == 0) return APD_OK;
    out->b = ws->b;
    out->p = ws->p;
    out->m = ws->m;
    out->pal = ws->pal;
    out->den = ws->den;
    out->hpal = ws->hpal;
    out->idx = ws->idx;
    out->count = ws->count;
    return APD_OK;
}

apd_status apd_palette_ws_set_pool(apd_palette_ws *ws, apd_pool *pool)
{
    APD_RETURN_IF(!ws, APD_EINVAL);
    uint32_t n = apd_pool_threads(pool);
    if (n > ws->n_scr) {
        apd__palette_scratch *s = scratch_alloc(n, ws->c, ws->k, ws->hidden, ws->max_p);
        if (!s) return APD_ENOMEM;
        scratch_free(ws->scr, ws->n_scr);
        ws->scr = s;
        ws->n_scr = n;
    }
    ws->pool = pool;
    return APD_OK;
}

/* ---- forward ------------------------------------------------------------------------------ */

void apd_palette_image_norm(float *u, float *istd, const float *x, uint32_t c, uint32_t p)
{
    if (!u || !x || c == 0 || p == 0) return;
    for (uint32_t ch = 0; ch < c; ch++) {
        const float *xc = x + (size_t)ch * p;
        float *uc = u + (size_t)ch * p;
        double sum = 0.0, sq = 0.0;
        for (uint32_t q = 0; q < p; q++) sum += xc[q];
        double mu = sum / p;
        for (uint32_t q = 0; q < p; q++) sq += ((double)xc[q] - mu) * ((double)xc[q] - mu);
        double r = 1.0 / sqrt(sq / p + (double)APD_PALETTE_NORM_EPS);
        for (uint32_t q = 0; q < p; q++) uc[q] = (float)(((double)xc[q] - mu) * r);
        if (istd) istd[ch] = (float)r;
    }
}

/* dx (C, P) += the backward of apd_palette_image_norm for g = dL/du (C, P):
 * dx = r (g - mean(g) - u mean(g u)) per channel. */
static void image_norm_back(float *dx, const float *g, const float *u, const float *istd, uint32_t c, uint32_t p)
{
    for (uint32_t ch = 0; ch < c; ch++) {
        const float *gc = g + (size_t)ch * p, *uc = u + (size_t)ch * p;
        float *dc = dx + (size_t)ch * p;
        double sg = 0.0, sgu = 0.0;
        for (uint32_t q = 0; q < p; q++) {
            sg += gc[q];
            sgu += (double)gc[q] * uc[q];
        }
        float mg = (float)(sg / p), mgu = (float)(sgu / p), r = istd[ch];
        for (uint32_t q = 0; q < p; q++) dc[q] += r * (gc[q] - mg - uc[q] * mgu);
    }
}

/* hs (hidden, P) = relu(W1 x + b1) for one image x (C, P). C <= 4, so this is a fused
 * elementwise pass rather than a GEMM with an inner dimension of 3 (which would also need a
 * separate bias fill and ReLU pass over the hidden x P output). */
APD__VCLONES static void hidden_forward(float *restrict hs, const apd_palette_net *net, const float *restrict x, uint32_t p)
{
    uint32_t hd = net->hidden, c = net->c;
    const float *x0 = x, *x1 = x + p, *x2 = x + 2 * (size_t)p;
    for (uint32_t j = 0; j < hd; j++) {
        const float *wj = net->w1 + (size_t)j * c;
        float bj = net->b1[j];
        float *restrict row = hs + (size_t)j * p;
        uint32_t q = 0;
        if (c == 1) {
            float w0 = wj[0];
            apd__vf vb = apd__vsplat(bj), v0 = apd__vsplat(w0);
            for (; q + APD__VW <= p; q += APD__VW) {
                apd__vf v = vb + v0 * apd__vld(x0 + q);
                apd__vst(row + q, apd__vmask_pos(v, v));
            }
            for (; q < p; q++) {
                float v = bj + w0 * x0[q];
                row[q] = v > 0.0f ? v : 0.0f;
            }
        } else if (c == 3) {
            float w0 = wj[0], w1 = wj[1], w2 = wj[2];
            apd__vf vb = apd__vsplat(bj), v0 = apd__vsplat(w0), v1 = apd__vsplat(w1), v2 = apd__vsplat(w2);
            for (; q + APD__VW <= p; q += APD__VW) {
                apd__vf v = vb + v0 * apd__vld(x0 + q) + v1 * apd__vld(x1 + q) + v2 * apd__vld(x2 + q);
                apd__vst(row + q, apd__vmask_pos(v, v));
            }
            for (; q < p; q++) {
                float v = bj + w0 * x0[q] + w1 * x1[q] + w2 * x2[q];
                row[q] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (; q < p; q++) {
                float v = bj;
                for (uint32_t ch = 0; ch < c; ch++) v += wj[ch] * x[(size_t)ch * p + q];
                row[q] = v > 0.0f ? v : 0.0f;
            }
        }
    }
}

/* In place: columns of z (K, P) -> softmax(z / T). Returns 0 if a logit is not finite. */
APD__VCLONES static int softmax_cols(float *z, uint32_t k, uint32_t p, float inv_t, float *colmax, float *colsum)
{
    memcpy(colmax, z, (size_t)p * sizeof(float));
    for (uint32_t j = 1; j < k; j++) {
        const float *row = z + (size_t)j * p;
        uint32_t q = 0;
        for (; q + APD__VW <= p; q += APD__VW)
            apd__vst(colmax + q, apd__vmax(apd__vld(row + q), apd__vld(colmax + q)));
        for (; q < p; q++) colmax[q] = row[q] > colmax[q] ? row[q] : colmax[q];
    }
    for (uint32_t q = 0; q < p; q++) {
        if (!isfinite(colmax[q])) return 0;
        colsum[q] = 0.0f;
    }
    apd__vf vt = apd__vsplat(inv_t);
    for (uint32_t j = 0; j < k; j++) {
        float *row = z + (size_t)j * p;
        uint32_t q = 0;
        for (; q + APD__VW <= p; q += APD__VW) {
            apd__vf e = apd__vexp((apd__vld(row + q) - apd__vld(colmax + q)) * vt);
            apd__vst(row + q, e);
            apd__vst(colsum + q, apd__vld(colsum + q) + e);
        }
        for (; q < p; q++) {
            float e = expf((row[q] - colmax[q]) * inv_t);
            row[q] = e;
            colsum[q] += e;
        }
    }
    for (uint32_t q = 0; q < p; q++) {
        if (!(colsum[q] >= 1.0f) || !isfinite(colsum[q])) return 0; /* a NaN logit (max skips NaN) */
        colsum[q] = 1.0f / colsum[q];
    }
    for (uint32_t j = 0; j < k; j++) {
        float *row = z + (size_t)j * p;
        uint32_t q = 0;
        for (; q + APD__VW <= p; q += APD__VW) apd__vst(row + q, apd__vld(row + q) * apd__vld(colsum + q));
        for (; q < p; q++) row[q] *= colsum[q];
    }
    return 1;
}

/* Argmax map (first maximum), bucket counts and hard palette (bucket means) of one image. */
APD__VCLONES static void hard_quant(uint8_t *idx, uint32_t *count, float *hpal, const float *m, const float *x, uint32_t c,
                       uint32_t k, uint32_t p, float *restrict best, float *restrict bidx)
{
    /* running max and its index (as float, exact for k <= 256) per pixel; strict > keeps
     * the first maximum */
    memcpy(best, m, (size_t)p * sizeof(float));
    memset(bidx, 0, (size_t)p * sizeof(float));
    for (uint32_t j = 1; j < k; j++) {
        const float *row = m + (size_t)j * p;
        apd__vf vj = apd__vsplat((float)j);
        uint32_t q = 0;
        for (; q + APD__VW <= p; q += APD__VW) {
            apd__vf r = apd__vld(row + q), bv = apd__vld(best + q), bi = apd__vld(bidx + q);
            apd__vi gt = r > bv;
            apd__vst(best + q, (apd__vf)(((apd__vi)r & gt) | ((apd__vi)bv & ~gt)));
            apd__vst(bidx + q, (apd__vf)(((apd__vi)vj & gt) | ((apd__vi)bi & ~gt)));
        }
        for (; q < p; q++)
            if (row[q] > best[q]) {
                best[q] = row[q];
                bidx[q] = (float)j;
            }
    }
    for (uint32_t q = 0; q < p; q++) idx[q] = (uint8_t)bidx[q];
    double acc[4 * APD_MAX_COLORS];
    memset(acc, 0, sizeof(double) * c * k);
    memset(count, 0, sizeof(uint32_t) * k);
    for (uint32_t q = 0; q < p; q++) {
        uint32_t j = idx[q];
        count[j]++;
        for (uint32_t ch = 0; ch < c; ch++) acc[ch * k + j] += x[(size_t)ch * p + q];
    }
    for (uint32_t ch = 0; ch < c; ch++)
        for (uint32_t j = 0; j < k; j++)
            hpal[ch * k + j] = count[j] ? (float)(acc[ch * k + j] / count[j]) : 0.0f;
}

typedef struct {
    const apd_palette_net *net;
    apd_palette_ws *ws;
    float *y;
    const float *x;
    uint32_t p;
    apd_palette_fwd_opts o;
    uint8_t *bad; /* per image: non-finite logits */
} fwd_ctx;

static void forward_image(void *vctx, uint32_t i, uint32_t thread)
{
    fwd_ctx *cx = vctx;
    const apd_palette_net *net = cx->net;
    apd_palette_ws *ws = cx->ws;
    apd__palette_scratch *sc = &ws->scr[thread];
    uint32_t c = net->c, k = net->k, p = cx->p;
    float *colA = sc->small, *colB = colA + ws->max_p;
    const float *xi = cx->x + (size_t)i * c * p;
    float *mi = ws->m + (size_t)i * k * p;
    float *pal = ws->pal + (size_t)i * c * k, *den = ws->den + (size_t)i * k;
    const float *in = xi; /* what the network sees; the palettes below use xi */
    if (net->input == APD_PALETTE_INPUT_IMAGE_NORM) {
        float *ui = ws->u + (size_t)i * c * p;
        apd_palette_image_norm(ui, ws->istd + (size_t)i * c, xi, c, p);
        in = ui;
    }
    hidden_forward(sc->h, net, in, p);
    /* z (K, P) = W2 (K, hidden) . h (hidden, P) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k, (int)p, (int)net->hidden, 1.0f, net->w2,
                (int)net->hidden, sc->h, (int)p, 0.0f, mi, (int)p);
    if (!softmax_cols(mi, k, p, 1.0f / cx->o.temperature, colA, colB)) {
        cx->bad[i] = 1;
        return;
    }
    /* den (K) = m (K, P) . 1 + 1e-8 */
    float *ones = colB;
    for (uint32_t q = 0; q < p; q++) ones[q] = 1.0f;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)k, (int)p, 1.0f, mi, (int)p, ones, 1, 0.0f, den, 1);
    for (uint32_t j = 0; j < k; j++) den[j] += PAL_EPS;
    /* pal (C, K) = x (C, P) . m^T (P, K), then / den */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c, (int)k, (int)p, 1.0f, xi, (int)p, mi, (int)p, 0.0f,
                pal, (int)k);
    for (uint32_t ch = 0; ch < c; ch++)
        for (uint32_t j = 0; j < k; j++) pal[ch * k + j] /= den[j];
    hard_quant(ws->idx + (size_t)i * p, ws->count + (size_t)i * k, ws->hpal + (size_t)i * c * k, mi, xi, c, k, p,
               colA, colB);
    if (!cx->y) return;
    float *yi = cx->y + (size_t)i * c * p;
    if (cx->o.straight_through) {
        const uint8_t *ix = ws->idx + (size_t)i * p;
        const float *hp = ws->hpal + (size_t)i * c * k;
        for (uint32_t ch = 0; ch < c; ch++)
            for (uint32_t q = 0; q < p; q++) yi[(size_t)ch * p + q] = hp[ch * k + ix[q]];
    } else {
        /* y (C, P) = pal (C, K) . m (K, P) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c, (int)p, (int)k, 1.0f, pal, (int)k, mi,
                    (int)p, 0.0f, yi, (int)p);
    }
}

void apd_palette_fwd_opts_default(apd_palette_fwd_opts *o)
{
    if (!o) return;
    o->temperature = 1.0f;
    o->straight_through = 0;
}

apd_status apd_palette_forward(const apd_palette_net *net, apd_palette_ws *ws, float *y, const float *x,
                               uint32_t b, uint32_t h, uint32_t w, const apd_palette_fwd_opts *opts)
{
    APD_RETURN_IF(!net || !ws || !x || !net->params, APD_EINVAL);
    apd_palette_fwd_opts o;
    if (opts)
        o = *opts;
    else
        apd_palette_fwd_opts_default(&o);
    APD_RETURN_IF(!(o.temperature > 0.0f) || !isfinite(o.temperature), APD_EINVAL);
    APD_RETURN_IF(net->input != APD_PALETTE_INPUT_ABSOLUTE && net->input != APD_PALETTE_INPUT_IMAGE_NORM,
                  APD_EINVAL);
    uint64_t p64 = (uint64_t)h * w;
    APD_RETURN_IF(net->c != ws->c || net->k != ws->k || net->hidden != ws->hidden, APD_ESHAPE);
    APD_RETURN_IF(b < 1 || b > ws->max_b || p64 < 1 || p64 > ws->max_p, APD_ESHAPE);
    ws->b = 0; /* invalid until complete */
    if (net->input == APD_PALETTE_INPUT_IMAGE_NORM && !ws->u) {
        size_t nu;
        APD_RETURN_IF(!apd__mul3_ok(ws->max_b, ws->c, ws->max_p, &nu) || nu > SIZE_MAX / sizeof(float),
                      APD_EOVERFLOW);
        ws->u = malloc(nu * sizeof(float));
        ws->istd = malloc((size_t)ws->max_b * ws->c * sizeof(float));
        if (!ws->u || !ws->istd) {
            free(ws->u); free(ws->istd);
            ws->u = ws->istd = NULL;
            return APD_ENOMEM;
        }
    }
    uint8_t *bad = calloc(b, 1);
    if (!bad) return APD_ENOMEM;
    fwd_ctx cx = {net, ws, y, x, (uint32_t)p64, o, bad};
    apd_pool_run(ws->pool, b, forward_image, &cx);
    int any_bad = 0;
    for (uint32_t i = 0; i < b; i++) any_bad |= bad[i];
    free(bad);
    if (any_bad) return APD_ENUMERIC;
    ws->b = b;
    ws->p = (uint32_t)p64;
    ws->temperature = o.temperature;
    ws->straight_through = o.straight_through;
    ws->input = net->input;
    return APD_OK;
}

/* ---- backward ----------------------------------------------------------------------------- */

/* In place: g (K, P) = dL/dm  ->  dL/dz = m (g - sum_k m g) / T. */
APD__VCLONES static void softmax_back(float *restrict g, const float *restrict m, uint32_t k, uint32_t p, float inv_t,
                         float *restrict col)
{
    memset(col, 0, (size_t)p * sizeof(float));
    for (uint32_t j = 0; j < k; j++) {
        const float *mr = m + (size_t)j * p, *gr = g + (size_t)j * p;
        uint32_t q = 0;
        for (; q + APD__VW <= p; q += APD__VW)
            apd__vst(col + q, apd__vld(col + q) + apd__vld(mr + q) * apd__vld(gr + q));
        for (; q < p; q++) col[q] += mr[q] * gr[q];
    }
    apd__vf vt = apd__vsplat(inv_t);
    for (uint32_t j = 0; j < k; j++) {
        const float *mr = m + (size_t)j * p;
        float *gr = g + (size_t)j * p;
        uint32_t q = 0;
        for (; q + APD__VW <= p; q += APD__VW)
            apd__vst(gr + q, apd__vld(mr + q) * (apd__vld(gr + q) - apd__vld(col + q)) * vt);
        for (; q < p; q++) gr[q] = mr[q] * (gr[q] - col[q]) * inv_t;
    }
}

/* dh (hidden, P) = (W2^T dz) masked by h > 0. */
APD__VCLONES static void hidden_back(float *restrict dh, const apd_palette_net *net, const float *dz, const float *restrict hs,
                        uint32_t p)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)net->hidden, (int)p, (int)net->k, 1.0f, net->w2,
                (int)net->hidden, dz, (int)p, 0.0f, dh, (int)p);
    size_t n = (size_t)net->hidden * p, i = 0;
    for (; i + APD__VW <= n; i += APD__VW) apd__vst(dh + i, apd__vmask_pos(apd__vld(dh + i), apd__vld(hs + i)));
    for (; i < n; i++) dh[i] = hs[i] > 0.0f ? dh[i] : 0.0f;
}

typedef struct {
    const apd_palette_net *net;
    const apd_palette_ws *ws;
    float *dx;
    const float *dy, *dm, *x;
    uint32_t b;
    float s;
} bwd_ctx;

/* Backward of image i; parameter gradients accumulate into g (n_params, net's layout). */
static void backward_image(const bwd_ctx *cx, uint32_t i, apd__palette_scratch *sc, float *grad)
{
    const apd_palette_net *net = cx->net;
    const apd_palette_ws *ws = cx->ws;
    uint32_t c = net->c, k = net->k, p = ws->p, hd = net->hidden;
    float inv_t = 1.0f / ws->temperature, s = cx->s;
    float *gw1 = grad, *gb1 = grad + (size_t)hd * c, *gw2 = gb1 + hd;
    float *col = sc->small, *ones = col + 2 * (size_t)ws->max_p;
    float *dpal = ones + ws->max_p, *e = dpal + (size_t)c * k, *r = e + (size_t)c * k;
    for (uint32_t q = 0; q < p; q++) ones[q] = 1.0f;
    const float *xi = cx->x + (size_t)i * c * p;
    const float *mi = ws->m + (size_t)i * k * p;
    const float *pal = ws->pal + (size_t)i * c * k, *den = ws->den + (size_t)i * k;
    float *dxi = cx->dx ? cx->dx + (size_t)i * c * p : NULL;
    float *gt = sc->g, *gc = sc->dz;
    const float *dy = cx->dy, *dm = cx->dm;
    /* the network's input (the forward's), and dL/du scratch when it is normalised */
    const float *in = xi, *ui = NULL, *istd = NULL;
    if (ws->input == APD_PALETTE_INPUT_IMAGE_NORM) {
        in = ui = ws->u + (size_t)i * c * p;
        istd = ws->istd + (size_t)i * c;
    }
    hidden_forward(sc->h, net, in, p);

    if (dy) {
        const float *gi = dy + (size_t)i * c * p;
        /* dpal (C, K) = dy (C, P) . m^T;  e = dpal / den;  r_k = sum_c e_ck pal_ck */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c, (int)k, (int)p, 1.0f, gi, (int)p, mi, (int)p,
                    0.0f, dpal, (int)k);
        for (uint32_t j = 0; j < k; j++) r[j] = 0.0f;
        for (uint32_t ch = 0; ch < c; ch++)
            for (uint32_t j = 0; j < k; j++) {
                e[ch * k + j] = dpal[ch * k + j] / den[j];
                r[j] += e[ch * k + j] * pal[ch * k + j];
            }
        /* g (K, P) = pal^T dy + e^T x - r */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)p, (int)c, 1.0f, pal, (int)k, gi, (int)p,
                    0.0f, gt, (int)p);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)p, (int)c, 1.0f, e, (int)k, xi, (int)p,
                    1.0f, gt, (int)p);
        for (uint32_t j = 0; j < k; j++) {
            float *row = gt + (size_t)j * p;
            for (uint32_t q = 0; q < p; q++) row[q] -= r[j];
        }
        /* dx through the palette: e (C, K) . m (K, P) */
        if (dxi)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c, (int)p, (int)k, 1.0f, e, (int)k, mi,
                        (int)p, 1.0f, dxi, (int)p);
        softmax_back(gt, mi, k, p, inv_t, col);
    }
    if (dm) {
        memcpy(gc, dm + (size_t)i * k * p, (size_t)k * p * sizeof(float));
        softmax_back(gc, mi, k, p, inv_t, col);
    }

    /* dzp: gradient for the parameters (scaled by alpha); x sees the unscaled sum */
    const float *dzp;
    float alpha;
    int separate_x = 0;
    if (dy && dm) {
        size_t n = (size_t)k * p;
        if (s == 1.0f || !dxi) {
            for (size_t t = 0; t < n; t++) gt[t] = s * gt[t] + gc[t];
        } else {
            for (size_t t = 0; t < n; t++) {
                float a = gt[t], bb = gc[t];
                gt[t] = s * a + bb;
                gc[t] = a + bb;
            }
            separate_x = 1;
        }
        dzp = gt;
        alpha = 1.0f;
    } else if (dy) {
        dzp = gt;
        alpha = s;
    } else {
        dzp = gc;
        alpha = 1.0f;
    }
    /* dW2 (K, hidden) += alpha dz (K, P) . h^T (P, hidden) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)k, (int)hd, (int)p, alpha, dzp, (int)p, sc->h, (int)p,
                1.0f, gw2, (int)hd);
    hidden_back(sc->dh, net, dzp, sc->h, p);
    /* dW1 (hidden, C) += alpha dh (hidden, P) . x^T (P, C);  db1 += alpha dh . 1 */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)hd, (int)c, (int)p, alpha, sc->dh, (int)p, in, (int)p,
                1.0f, gw1, (int)c);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)hd, (int)p, alpha, sc->dh, (int)p, ones, 1, 1.0f, gb1, 1);
    if (dxi) {
        /* dh above came from the unscaled dz unless both inputs were mixed with s != 1 */
        if (separate_x) hidden_back(sc->dh, net, gc, sc->h, p);
        /* dx (C, P) += W1^T (C, hidden) . dh (hidden, P), through the normalisation if any */
        if (ui) {
            float *gu = r + k + (size_t)c * ws->max_p; /* after ysoft in small */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)c, (int)p, (int)hd, 1.0f, net->w1, (int)c,
                        sc->dh, (int)p, 0.0f, gu, (int)p);
            image_norm_back(dxi, gu, ui, istd, c, p);
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)c, (int)p, (int)hd, 1.0f, net->w1, (int)c,
                        sc->dh, (int)p, 1.0f, dxi, (int)p);
        }
    }
}

static void backward_group(void *vctx, uint32_t g, uint32_t thread)
{
    const bwd_ctx *cx = vctx;
    float *grad = cx->ws->gbuf + (size_t)g * cx->net->n_params;
    memset(grad, 0, cx->net->n_params * sizeof(float));
    uint32_t i0 = g * APD_PALETTE_GROUP, i1 = i0 + APD_PALETTE_GROUP < cx->b ? i0 + APD_PALETTE_GROUP : cx->b;
    for (uint32_t i = i0; i < i1; i++) backward_image(cx, i, &cx->ws->scr[thread], grad);
}

apd_status apd_palette_backward(apd_palette_net *net, apd_palette_ws *ws, float *dx, const float *dy,
                                const float *dm, const float *x, uint32_t b, uint32_t h, uint32_t w,
                                float param_scale)
{
    APD_RETURN_IF(!net || !ws || !x || !net->params, APD_EINVAL);
    APD_RETURN_IF(!dy && !dm, APD_EINVAL);
    APD_RETURN_IF(net->c != ws->c || net->k != ws->k || net->hidden != ws->hidden, APD_ESHAPE);
    APD_RETURN_IF(ws->b == 0 || b != ws->b || (uint64_t)h * w != ws->p || net->input != ws->input, APD_ESHAPE);
    uint32_t ng = (b + APD_PALETTE_GROUP - 1) / APD_PALETTE_GROUP;
    size_t need = (size_t)ng * net->n_params;
    if (ws->gbuf_len < need) {
        float *gb = realloc(ws->gbuf, need * sizeof(float));
        if (!gb) return APD_ENOMEM;
        ws->gbuf = gb;
        ws->gbuf_len = need;
    }
    bwd_ctx cx = {net, ws, dx, dy, dm, x, b, param_scale};
    apd_pool_run(ws->pool, ng, backward_group, &cx);
    /* sum the group partials in a fixed order: independent of the thread count */
    for (uint32_t g = 0; g < ng; g++) {
        const float *gp = ws->gbuf + (size_t)g * net->n_params;
        for (size_t t = 0; t < net->n_params; t++) net->grads[t] += gp[t];
    }
    return APD_OK;
}

float apd_palette_temperature(float t0, float t1, uint64_t step, uint64_t n_steps)
{
    if (n_steps == 0 || step >= n_steps) return t1;
    double f = (double)step / (double)n_steps;
    return (float)(t0 * pow((double)t1 / t0, f));
}
