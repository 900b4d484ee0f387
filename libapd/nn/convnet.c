/* nn/convnet.c: the ConvNet of the dataset-distillation literature (ConvNetD3 and its
 * width/depth variants) with fused, batch-parallel forward and backward. See apd/nn.h.
 *
 * Per block l: conv3x3 (im2col + sgemm) -> instance norm -> ReLU -> avgpool 2x2.
 * Only the conv output (with bias) and the per-plane mean/rstd are stored; norm, ReLU and
 * pooling are fused into one pass per (image, channel) plane forward and one backward, and
 * recomputed there, which is where PyTorch spends ~40% of its step.
 *
 * Arenas (allocated once in create, sized for max_batch):
 *   params / grads      [num_params]                    parameter order of apd/nn.h
 *   acts                x0 [N,C,H,W] (copy of the input, needed for conv0's dW)
 *                       conv_l [N,Wd,Hc_l,Wc_l], mean_l/rstd_l [N,Wd], pooled_l [N,Wd,Hp_l,Wp_l]
 *                       (pooled_{L-1} is the embed), logits [N,K]
 *                       dpooled_l [N,Wd,Hp_l,Wp_l] (gradient w.r.t. pooled_l)
 *   per thread          col [Kmax * cols], dC [Wd * cols], pgrad [num_params],
 *                       dCT [cols * Wd] and wT_l [k_l * Wd] (weight gradients by apd__gemm_f32_add)
 *
 * Threading: the batch is split into T contiguous slices (T = pool threads); each thread
 * runs all layers on its slice with single-threaded sgemm (no barrier between layers), and
 * per-thread parameter gradients are added to the gradient arena in thread order.
 * Small planes (conv3: 8x8) are grouped g images per GEMM so the GEMM has >= ~256 columns.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "common/internal.h"
#include "common/rng.h"
#include "nn/nn_internal.h"

#define MAX_DEPTH 8
#define GEMM_MIN_COLS 256

typedef struct layer {
    size_t ci, h, w, pad;     /* conv input */
    size_t hc, wc, p;         /* conv output, p = hc * wc */
    size_t hp, wp;            /* pooled output */
    size_t k;                 /* ci * 9 */
    size_t g;                 /* images per GEMM */
    size_t w_off, b_off, gamma_off, beta_off; /* into params; gamma/beta only with norm */
    size_t wt_off;            /* this layer's transposed weight-gradient sums in net->wt[thread] */
    float *conv, *mean, *rstd, *pooled, *dpooled; /* activation views */
} layer;

struct apd_convnet {
    apd_convnet_opts cfg;
    size_t L, T, width, K, embed;
    layer ly[MAX_DEPTH];
    size_t fc_w_off, fc_b_off, n_params;
    size_t n_tensors;
    char names[2 * MAX_DEPTH * 2 + 2][48];
    size_t t_off[2 * MAX_DEPTH * 2 + 2], t_size[2 * MAX_DEPTH * 2 + 2];
    uint32_t t_ndim[2 * MAX_DEPTH * 2 + 2], t_dims[2 * MAX_DEPTH * 2 + 2][4];
    float *params, *grads;
    float *acts;      /* one block for all activations */
    float *x0, *logits;
    float *scratch;   /* one block for all per-thread scratch */
    float **col, **dc, **pgrad;
    float **dct, **wt; /* per thread: dC transposed, and the weight gradients transposed [k][Wd] */
    uint16_t *bf16;   /* bf16 weights per layer + per-thread packed columns (AVX512_BF16 CPUs only) */
    uint16_t *wbf[MAX_DEPTH], **bcol;
    size_t bytes;
    size_t last_n;
    int have_forward;
    double prof_conv[MAX_DEPTH]; /* thread 0's forward conv seconds per layer (apd__convnet_prof) */
    size_t prof_imgs;
};

/* ---- planning ------------------------------------------------------------------------- */

static void add_tensor(apd_convnet *net, const char *name, size_t off, uint32_t ndim, uint32_t d0,
                       uint32_t d1, uint32_t d2, uint32_t d3)
{
    size_t i = net->n_tensors++;
    snprintf(net->names[i], sizeof net->names[i], "%.23s", name);
    net->t_off[i] = off;
    net->t_ndim[i] = ndim;
    net->t_dims[i][0] = d0;
    net->t_dims[i][1] = d1;
    net->t_dims[i][2] = d2;
    net->t_dims[i][3] = d3;
    size_t s = 1;
    for (uint32_t j = 0; j < ndim; j++) s *= net->t_dims[i][j];
    net->t_size[i] = s;
}

void apd_convnet_opts_default(apd_convnet_opts *cfg, uint32_t c, uint32_t h, uint32_t w,
                                uint32_t n_classes)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->c = c;
    cfg->h = h;
    cfg->w = w;
    cfg->width = 128;
    cfg->depth = apd_convnet_default_depth(h, w);
    cfg->norm = APD_NORM_INSTANCE;
    cfg->n_classes = n_classes;
    cfg->pad1 = APD_CONVNET_PAD_AUTO;
    cfg->max_batch = 256;
    cfg->pool = NULL;
}

uint32_t apd_convnet_default_depth(uint32_t h, uint32_t w)
{
    uint32_t side = h > w ? h : w, d = 3;
    while (d < MAX_DEPTH && (side >> d) > 4) d++;
    return d;
}

/* Adds n floats to *total, checking overflow; returns the offset. */
static int reserve(size_t *total, size_t n, size_t *off)
{
    *off = *total;
    return apd__add_ok(*total, n, total);
}

/* Layer shapes and the parameter layout (named tensors, in PyTorch state_dict order). */
static apd_status plan_params(apd_convnet *net, size_t pad1)
{
    const apd_convnet_opts *cfg = &net->cfg;
    size_t ci = cfg->c, h = cfg->h, w = cfg->w;
    size_t total = 0;
    for (size_t l = 0; l < net->L; l++) {
        layer *y = &net->ly[l];
        y->ci = ci;
        y->h = h;
        y->w = w;
        y->pad = l == 0 ? pad1 : 1;
        if (h + 2 * y->pad < 3 || w + 2 * y->pad < 3) return APD_ESHAPE;
        y->hc = h + 2 * y->pad - 2;
        y->wc = w + 2 * y->pad - 2;
        if (y->hc % 2 || y->wc % 2) return APD_ESHAPE;
        y->p = y->hc * y->wc;
        y->hp = y->hc / 2;
        y->wp = y->wc / 2;
        y->k = ci * 9;
        y->g = y->p >= GEMM_MIN_COLS ? 1 : (GEMM_MIN_COLS + y->p - 1) / y->p;
        char nm[48];
        if (!reserve(&total, net->width * y->k, &y->w_off)) return APD_EOVERFLOW;
        snprintf(nm, sizeof nm, "conv%zu.weight", l);
        add_tensor(net, nm, y->w_off, 4, (uint32_t)net->width, (uint32_t)ci, 3, 3);
        if (!reserve(&total, net->width, &y->b_off)) return APD_EOVERFLOW;
        snprintf(nm, sizeof nm, "conv%zu.bias", l);
        add_tensor(net, nm, y->b_off, 1, (uint32_t)net->width, 0, 0, 0);
        if (cfg->norm == APD_NORM_INSTANCE) {
            if (!reserve(&total, net->width, &y->gamma_off)) return APD_EOVERFLOW;
            snprintf(nm, sizeof nm, "norm%zu.weight", l);
            add_tensor(net, nm, y->gamma_off, 1, (uint32_t)net->width, 0, 0, 0);
            if (!reserve(&total, net->width, &y->beta_off)) return APD_EOVERFLOW;
            snprintf(nm, sizeof nm, "norm%zu.bias", l);
            add_tensor(net, nm, y->beta_off, 1, (uint32_t)net->width, 0, 0, 0);
        }
        if (y->hp == 0 || y->wp == 0) return APD_ESHAPE;
        ci = net->width;
        h = y->hp;
        w = y->wp;
    }
    net->embed = net->width * h * w;
    if (!reserve(&total, net->K * net->embed, &net->fc_w_off)) return APD_EOVERFLOW;
    add_tensor(net, "classifier.weight", net->fc_w_off, 2, (uint32_t)net->K, (uint32_t)net->embed, 0, 0);
    if (!reserve(&total, net->K, &net->fc_b_off)) return APD_EOVERFLOW;
    add_tensor(net, "classifier.bias", net->fc_b_off, 1, (uint32_t)net->K, 0, 0, 0);
    net->n_params = total;
    return APD_OK;
}

/* The parameter, gradient, activation (max_batch images) and per-thread scratch arenas, and
 * the views into them. */
static apd_status plan_arenas(apd_convnet *net)
{
    const apd_convnet_opts *cfg = &net->cfg;
    size_t N = cfg->max_batch, a = 0, sz;
    size_t o_x0 = 0, o_logits = 0, o_conv[MAX_DEPTH] = {0}, o_mean[MAX_DEPTH] = {0}, o_rstd[MAX_DEPTH] = {0},
        o_pool[MAX_DEPTH] = {0}, o_dpool[MAX_DEPTH] = {0};
    int ok = apd__mul3_ok(N, cfg->c, (size_t)cfg->h * cfg->w, &sz) && reserve(&a, sz, &o_x0);
    ok = ok && apd__mul_ok(N, net->K, &sz) && reserve(&a, sz, &o_logits);
    size_t col_max = 0, dc_max = 0;
    for (size_t l = 0; ok && l < net->L; l++) {
        layer *y = &net->ly[l];
        ok = ok && apd__mul3_ok(N, net->width, y->p, &sz) && reserve(&a, sz, &o_conv[l]);
        ok = ok && apd__mul_ok(N, net->width, &sz) && reserve(&a, sz, &o_mean[l]) &&
             reserve(&a, sz, &o_rstd[l]);
        ok = ok && apd__mul3_ok(N, net->width, y->hp * y->wp, &sz) && reserve(&a, sz, &o_pool[l]) &&
             reserve(&a, sz, &o_dpool[l]);
        size_t cols = y->g * y->p;
        if (y->k * cols > col_max) col_max = y->k * cols;
        if (net->width * cols > dc_max) dc_max = net->width * cols;
    }
    size_t wt_sum = 0;
    for (size_t l = 0; ok && l < net->L; l++) {
        net->ly[l].wt_off = wt_sum;
        ok = apd__mul_ok(net->ly[l].k, net->width, &sz) && apd__add_ok(wt_sum, sz, &wt_sum);
    }
    if (!ok) return APD_EOVERFLOW;
    size_t per_thread = col_max + dc_max + net->n_params, scr;
    ok = apd__add_ok(per_thread, dc_max, &per_thread) && apd__add_ok(per_thread, wt_sum, &per_thread);
    if (!ok) return APD_EOVERFLOW;
    if (!apd__mul_ok(per_thread, net->T, &scr)) return APD_EOVERFLOW;

    net->params = calloc(net->n_params, sizeof(float));
    net->grads = calloc(net->n_params, sizeof(float));
    net->acts = calloc(a, sizeof(float));
    net->scratch = calloc(scr, sizeof(float));
    net->col = calloc(net->T, sizeof(float *));
    net->dc = calloc(net->T, sizeof(float *));
    net->pgrad = calloc(net->T, sizeof(float *));
    net->dct = calloc(net->T, sizeof(float *));
    net->wt = calloc(net->T, sizeof(float *));
    if (!net->params || !net->grads || !net->acts || !net->scratch || !net->col || !net->dc || !net->pgrad ||
        !net->dct || !net->wt)
        return APD_ENOMEM;
    net->bytes = (2 * net->n_params + a + scr) * sizeof(float);
    if (apd__bf16_cpu()) {
        /* no-gradient bf16 forwards: packed weights per layer, packed im2col per thread */
        size_t wsum = 0, bmax = 0, off[MAX_DEPTH] = {0}, tot;
        for (size_t l = 0; l < net->L; l++) {
            off[l] = wsum;
            wsum += apd__bf16_a_elems(net->width, net->ly[l].k);
            size_t be = apd__bf16_b_elems(net->ly[l].k, net->ly[l].g * net->ly[l].p);
            if (be > bmax) bmax = be;
        }
        if (!apd__mul_ok(bmax, net->T, &tot) || !apd__add_ok(tot, wsum, &tot)) return APD_EOVERFLOW;
        net->bf16 = malloc(tot * sizeof(uint16_t));
        net->bcol = calloc(net->T, sizeof(uint16_t *));
        if (!net->bf16 || !net->bcol) return APD_ENOMEM;
        for (size_t l = 0; l < net->L; l++) net->wbf[l] = net->bf16 + off[l];
        for (size_t t = 0; t < net->T; t++) net->bcol[t] = net->bf16 + wsum + t * bmax;
        net->bytes += tot * sizeof(uint16_t);
    }
    net->x0 = net->acts + o_x0;
    net->logits = net->acts + o_logits;
    for (size_t l = 0; l < net->L; l++) {
        layer *y = &net->ly[l];
        y->conv = net->acts + o_conv[l];
        y->mean = net->acts + o_mean[l];
        y->rstd = net->acts + o_rstd[l];
        y->pooled = net->acts + o_pool[l];
        y->dpooled = net->acts + o_dpool[l];
    }
    for (size_t t = 0; t < net->T; t++) {
        float *base = net->scratch + t * per_thread;
        net->col[t] = base;
        net->dc[t] = base + col_max;
        net->pgrad[t] = base + col_max + dc_max;
        net->dct[t] = net->pgrad[t] + net->n_params;
        net->wt[t] = net->dct[t] + dc_max;
    }
    return APD_OK;
}

apd_status apd_convnet_create(apd_convnet **out, const apd_convnet_opts *cfg)
{
    APD_RETURN_IF(out == NULL, APD_EINVAL);
    *out = NULL;
    APD_RETURN_IF(cfg == NULL || cfg->c == 0 || cfg->h == 0 || cfg->w == 0 || cfg->width == 0 ||
                      cfg->depth == 0 || cfg->n_classes == 0 || cfg->max_batch == 0,
                  APD_EINVAL);
    APD_RETURN_IF(cfg->depth > MAX_DEPTH || cfg->width > 65536 || cfg->c > 65536 ||
                      cfg->h > 65536 || cfg->w > 65536 || cfg->n_classes > (1u << 24),
                  APD_ELIMIT);
    APD_RETURN_IF(cfg->norm != APD_NORM_NONE && cfg->norm != APD_NORM_INSTANCE, APD_EINVAL);
    apd__blas_init();
    apd_convnet *net = calloc(1, sizeof *net);
    APD_RETURN_IF(net == NULL, APD_ENOMEM);
    net->cfg = *cfg;
    size_t pad1 = cfg->pad1;
    if (cfg->pad1 == APD_CONVNET_PAD_AUTO) pad1 = (cfg->h == 28 && cfg->w == 28) ? 3 : 1;
    net->cfg.pad1 = (uint32_t)pad1;
    net->L = cfg->depth;
    net->T = apd_pool_threads(cfg->pool);
    net->width = cfg->width;
    net->K = cfg->n_classes;
    apd_status st = plan_params(net, pad1);
    if (st == APD_OK) st = plan_arenas(net);
    if (st != APD_OK) {
        apd_convnet_free(net);
        return st;
    }
    *out = net;
    return APD_OK;
}

void apd_convnet_free(apd_convnet *net)
{
    if (net == NULL) return;
    free(net->params);
    free(net->grads);
    free(net->acts);
    free(net->scratch);
    free(net->col);
    free(net->dc);
    free(net->pgrad);
    free(net->dct);
    free(net->wt);
    free(net->bf16);
    free(net->bcol);
    free(net);
}

const apd_convnet_opts *apd_convnet_get_opts(const apd_convnet *net) { return &net->cfg; }
size_t apd_convnet_num_params(const apd_convnet *net) { return net->n_params; }
float *apd_convnet_params(apd_convnet *net) { return net->params; }
float *apd_convnet_grads(apd_convnet *net) { return net->grads; }
size_t apd_convnet_embed_dim(const apd_convnet *net) { return net->embed; }
size_t apd_convnet_memory_bytes(const apd_convnet *net) { return net->bytes; }
size_t apd_convnet_num_tensors(const apd_convnet *net) { return net->n_tensors; }

void apd_convnet_zero_grad(apd_convnet *net)
{
    memset(net->grads, 0, net->n_params * sizeof(float));
}

apd_status apd_convnet_tensor(apd_convnet *net, size_t i, apd_tensor_view *out)
{
    APD_RETURN_IF(net == NULL || out == NULL || i >= net->n_tensors, APD_EINVAL);
    out->name = net->names[i];
    out->data = net->params + net->t_off[i];
    out->grad = net->grads + net->t_off[i];
    out->size = net->t_size[i];
    out->ndim = net->t_ndim[i];
    memcpy(out->dims, net->t_dims[i], sizeof out->dims);
    return APD_OK;
}

/* ---- init ------------------------------------------------------------------------------ */

static void uniform_fill(float *p, size_t n, float bound, apd__rng *rng)
{
    for (size_t i = 0; i < n; i++) p[i] = apd__rng_range(rng, -bound, bound);
}

static void init_from(apd_convnet *net, apd__rng *rng)
{
    for (size_t l = 0; l < net->L; l++) {
        layer *y = &net->ly[l];
        float bound = 1.0f / sqrtf((float)y->k);
        uniform_fill(net->params + y->w_off, net->width * y->k, bound, rng);
        uniform_fill(net->params + y->b_off, net->width, bound, rng);
        if (net->cfg.norm == APD_NORM_INSTANCE)
            for (size_t c = 0; c < net->width; c++) {
                net->params[y->gamma_off + c] = 1.0f;
                net->params[y->beta_off + c] = 0.0f;
            }
    }
    float bound = 1.0f / sqrtf((float)net->embed);
    uniform_fill(net->params + net->fc_w_off, net->K * net->embed, bound, rng);
    uniform_fill(net->params + net->fc_b_off, net->K, bound, rng);
}

void apd_convnet_init(apd_convnet *net, uint64_t seed, uint64_t stream)
{
    if (!net) return;
    apd__rng r;
    apd__rng_seed(&r, seed, stream);
    init_from(net, &r);
}

/* ---- fused plane kernels --------------------------------------------------------------- */

/* Forward of one (image, channel) plane: c[P] += bias (in place, kept for backward), then
 * instance norm (if norm) -> ReLU -> 2x2 average pool into y[P/4]. */
__attribute__((unused)) static void plane_forward(float *restrict c, float *restrict y, float *mean_out, float *rstd_out,
                          float bias, float gamma, float beta, int norm, size_t hc, size_t wc)
{
    size_t P = hc * wc, wp = wc / 2;
    /* y = a * (c - m) + beta: subtracting the mean first (rather than a * c + (beta - a m))
     * avoids cancellation when the plane's spread is small against its mean. */
    float a = 1.0f, m = 0.0f;
    if (norm) {
        double s = 0.0;
        for (size_t i = 0; i < P; i++) {
            c[i] += bias;
            s += c[i];
        }
        m = (float)(s / (double)P);
        double v = 0.0;
        for (size_t i = 0; i < P; i++) {
            float d = c[i] - m;
            v += d * d;
        }
        float r = (float)(1.0 / sqrt(v / (double)P + APD_NN_NORM_EPS));
        *mean_out = m;
        *rstd_out = r;
        a = gamma * r;
    } else {
        beta = 0.0f;
        for (size_t i = 0; i < P; i++) c[i] += bias;
    }
    for (size_t oy = 0; oy < hc / 2; oy++) {
        const float *r0 = c + 2 * oy * wc, *r1 = r0 + wc;
        float *yo = y + oy * wp;
        for (size_t ox = 0; ox < wp; ox++) {
            float v00 = fmaxf(a * (r0[2 * ox] - m) + beta, 0.0f);
            float v01 = fmaxf(a * (r0[2 * ox + 1] - m) + beta, 0.0f);
            float v10 = fmaxf(a * (r1[2 * ox] - m) + beta, 0.0f);
            float v11 = fmaxf(a * (r1[2 * ox + 1] - m) + beta, 0.0f);
            yo[ox] = 0.25f * ((v00 + v01) + (v10 + v11));
        }
    }
}

/* Backward of one plane: from dy[P/4] (gradient of the pooled output) to dc[P] (gradient
 * of the conv output, overwritten), accumulating d gamma / d beta into *dg / *dbt. */
__attribute__((unused)) static void plane_backward(float *restrict dc, const float *restrict c, const float *restrict dy,
                           float m, float r, float gamma, float beta, int norm, size_t hc,
                           size_t wc, float *dg, float *dbt)
{
    size_t P = hc * wc, wp = wc / 2;
    float a = norm ? gamma * r : 1.0f;
    if (!norm) {
        m = 0.0f;
        beta = 0.0f;
    }
    /* pass 1: dc = relu'(.) * pool'(dy) (the ReLU test exactly as in plane_forward) */
    for (size_t yy = 0; yy < hc; yy++) {
        const float *cr = c + yy * wc, *dyr = dy + (yy / 2) * wp;
        float *dr = dc + yy * wc;
        for (size_t x = 0; x < wc; x++)
            dr[x] = (a * (cr[x] - m) + beta > 0.0f) ? 0.25f * dyr[x / 2] : 0.0f;
    }
    if (!norm) return;
    float sdy = 0.0f, sdyx = 0.0f;
    for (size_t i = 0; i < P; i++) {
        sdy += dc[i];
        sdyx += dc[i] * (c[i] - m);
    }
    sdyx *= r;
    *dg += sdyx;
    *dbt += sdy;
    float gr = gamma * r, k1 = gamma * r * sdy / (float)P, k2 = gamma * r * r * sdyx / (float)P;
    /* dc = r (g dy - g sdy / P - xhat g sdyx / P), xhat = (c - m) r */
    for (size_t i = 0; i < P; i++) dc[i] = gr * dc[i] - k1 - (c[i] - m) * k2;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* Compiled for AVX-512 whatever the build's -march; used only when the CPU has it (apd__cpu_avx512f). */
#pragma GCC push_options
#pragma GCC target("avx512f")
#include <immintrin.h>
/* AVX-512 versions of the two plane kernels (same arithmetic, 16 lanes; sums in 16 float
 * lanes combined in double). Any even wc works: rows go in chunks of 32 (forward pooling)
 * or 16 (backward) columns with masked loads and stores for the tail. */
static inline __mmask16 lanes(size_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

static double hsum_d(__m512 v)
{
    float t[16];
    _mm512_storeu_ps(t, v);
    double s = 0.0;
    for (int i = 0; i < 16; i++) s += t[i];
    return s;
}

static void plane_forward_v(float *restrict c, float *restrict y, float *mean_out, float *rstd_out,
                            float bias, float gamma, float beta, int norm, size_t hc, size_t wc)
{
    size_t P = hc * wc, wp = wc / 2;
    __m512 vb = _mm512_set1_ps(bias);
    float a = 1.0f, m = 0.0f;
    if (norm) {
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        size_t i = 0;
        for (; i + 32 <= P; i += 32) {
            __m512 x0 = _mm512_add_ps(_mm512_loadu_ps(c + i), vb);
            __m512 x1 = _mm512_add_ps(_mm512_loadu_ps(c + i + 16), vb);
            _mm512_storeu_ps(c + i, x0);
            _mm512_storeu_ps(c + i + 16, x1);
            s0 = _mm512_add_ps(s0, x0);
            s1 = _mm512_add_ps(s1, x1);
        }
        for (; i < P; i += 16) {
            __mmask16 k = lanes(P - i);
            __m512 x0 = _mm512_add_ps(_mm512_maskz_loadu_ps(k, c + i), vb);
            _mm512_mask_storeu_ps(c + i, k, x0);
            s0 = _mm512_add_ps(s0, _mm512_maskz_mov_ps(k, x0));
        }
        m = (float)(hsum_d(_mm512_add_ps(s0, s1)) / (double)P);
        __m512 vm = _mm512_set1_ps(m);
        s0 = _mm512_setzero_ps();
        s1 = _mm512_setzero_ps();
        for (i = 0; i + 32 <= P; i += 32) {
            __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(c + i), vm);
            __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(c + i + 16), vm);
            s0 = _mm512_fmadd_ps(d0, d0, s0);
            s1 = _mm512_fmadd_ps(d1, d1, s1);
        }
        for (; i < P; i += 16) {
            __mmask16 k = lanes(P - i);
            __m512 d0 = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, c + i), vm);
            s0 = _mm512_fmadd_ps(d0, d0, s0);
        }
        double v = hsum_d(_mm512_add_ps(s0, s1));
        float r = (float)(1.0 / sqrt(v / (double)P + APD_NN_NORM_EPS));
        *mean_out = m;
        *rstd_out = r;
        a = gamma * r;
    } else {
        beta = 0.0f;
        for (size_t i = 0; i < P; i += 16) {
            __mmask16 k = lanes(P - i);
            _mm512_mask_storeu_ps(c + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, c + i), vb));
        }
    }
    const __m512 va = _mm512_set1_ps(a), vm = _mm512_set1_ps(m), vbeta = _mm512_set1_ps(beta);
    const __m512 zero = _mm512_setzero_ps(), q = _mm512_set1_ps(0.25f);
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (size_t oy = 0; oy < hc / 2; oy++) {
        const float *r0 = c + 2 * oy * wc, *r1 = r0 + wc;
        float *yo = y + oy * wp;
        for (size_t x = 0; x < wc; x += 32) {
            size_t n = wc - x < 32 ? wc - x : 32;
            __mmask16 klo = lanes(n), khi = lanes(n > 16 ? n - 16 : 0);
            __m512 a0 = _mm512_maskz_loadu_ps(klo, r0 + x), a1 = _mm512_maskz_loadu_ps(khi, r0 + x + 16);
            __m512 b0 = _mm512_maskz_loadu_ps(klo, r1 + x), b1 = _mm512_maskz_loadu_ps(khi, r1 + x + 16);
            a0 = _mm512_max_ps(_mm512_fmadd_ps(va, _mm512_sub_ps(a0, vm), vbeta), zero);
            a1 = _mm512_max_ps(_mm512_fmadd_ps(va, _mm512_sub_ps(a1, vm), vbeta), zero);
            b0 = _mm512_max_ps(_mm512_fmadd_ps(va, _mm512_sub_ps(b0, vm), vbeta), zero);
            b1 = _mm512_max_ps(_mm512_fmadd_ps(va, _mm512_sub_ps(b1, vm), vbeta), zero);
            /* same association as the scalar kernel: (v00 + v01) + (v10 + v11) */
            __m512 top = _mm512_add_ps(_mm512_permutex2var_ps(a0, ev, a1), _mm512_permutex2var_ps(a0, od, a1));
            __m512 bot = _mm512_add_ps(_mm512_permutex2var_ps(b0, ev, b1), _mm512_permutex2var_ps(b0, od, b1));
            _mm512_mask_storeu_ps(yo + x / 2, lanes(n / 2), _mm512_mul_ps(q, _mm512_add_ps(top, bot)));
        }
    }
}

static void plane_backward_v(float *restrict dc, const float *restrict c, const float *restrict dy,
                             float m, float r, float gamma, float beta, int norm, size_t hc,
                             size_t wc, float *dg, float *dbt)
{
    size_t P = hc * wc, wp = wc / 2;
    float a = norm ? gamma * r : 1.0f;
    if (!norm) {
        m = 0.0f;
        beta = 0.0f;
    }
    const __m512 va = _mm512_set1_ps(a), vm = _mm512_set1_ps(m), vbeta = _mm512_set1_ps(beta);
    const __m512 zero = _mm512_setzero_ps(), q = _mm512_set1_ps(0.25f);
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    __m512 sdy = zero, sdyx = zero;
    for (size_t yy = 0; yy < hc; yy++) {
        const float *cr = c + yy * wc, *dyr = dy + (yy / 2) * wp;
        float *dr = dc + yy * wc;
        for (size_t x = 0; x < wc; x += 16) {
            size_t n = wc - x < 16 ? wc - x : 16;
            __mmask16 k = lanes(n);
            __m512 cv = _mm512_maskz_loadu_ps(k, cr + x);
            __m512 d = _mm512_sub_ps(cv, vm);
            __mmask16 pos = _mm512_mask_cmp_ps_mask(k, _mm512_fmadd_ps(va, d, vbeta), zero, _CMP_GT_OQ);
            __m512 up = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(lanes(n / 2), dyr + x / 2));
            __m512 g = _mm512_maskz_mul_ps(pos, q, up);
            _mm512_mask_storeu_ps(dr + x, k, g);
            sdy = _mm512_add_ps(sdy, g);
            sdyx = _mm512_fmadd_ps(g, d, sdyx);
        }
    }
    if (!norm) return;
    float fsdy = (float)hsum_d(sdy), fsdyx = (float)hsum_d(sdyx) * r;
    *dg += fsdyx;
    *dbt += fsdy;
    float gr = gamma * r, k1 = gamma * r * fsdy / (float)P, k2 = gamma * r * r * fsdyx / (float)P;
    const __m512 vgr = _mm512_set1_ps(gr), vk1 = _mm512_set1_ps(k1), vk2 = _mm512_set1_ps(k2);
    for (size_t i = 0; i < P; i += 16) {
        __mmask16 k = lanes(P - i);
        __m512 cv = _mm512_maskz_loadu_ps(k, c + i), dv = _mm512_maskz_loadu_ps(k, dc + i);
        /* dc = gr dc - k1 - (c - m) k2 */
        __m512 o = _mm512_fnmadd_ps(_mm512_sub_ps(cv, vm), vk2, _mm512_fmsub_ps(vgr, dv, vk1));
        _mm512_mask_storeu_ps(dc + i, k, o);
    }
}

/* Direct 3x3 convolution for conv1 (few input channels). With K = Ci * 9 = 9 or 27 the
 * im2col GEMM runs at 15-30% of sgemm speed (tiny K, packing overhead); this kernel keeps
 * 8 output channels x 32 columns in 16 registers and streams the padded input from L1.
 * xp: the input zero-padded to [Ci][Hc + 2][Wc + 2]; out: [Co][Hc][Wc] without bias.
 * Requires Wc % 32 == 0 and Co % 8 == 0 (direct_ok). */
static int direct_ok(const layer *y, size_t Co)
{
    return y->ci <= 3 && y->wc % 32 == 0 && Co % 8 == 0;
}

static void pad_input(float *restrict xp, const float *restrict in, size_t Ci, size_t H, size_t W,
                      size_t pad)
{
    size_t Hq = H + 2 * pad, Wq = W + 2 * pad;
    memset(xp, 0, Ci * Hq * Wq * sizeof(float));
    for (size_t ci = 0; ci < Ci; ci++)
        for (size_t yy = 0; yy < H; yy++)
            memcpy(xp + (ci * Hq + yy + pad) * Wq + pad, in + (ci * H + yy) * W, W * sizeof(float));
}

static void conv3_direct_fwd(float *restrict out, const float *restrict xp, const float *restrict w,
                             size_t Ci, size_t Co, size_t Hc, size_t Wc)
{
    size_t Hq = Hc + 2, Wq = Wc + 2, K = Ci * 9;
    for (size_t cb = 0; cb < Co; cb += 8)
        for (size_t yy = 0; yy < Hc; yy++)
            for (size_t x = 0; x < Wc; x += 32) {
                __m512 a[8][2];
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) a[j][0] = a[j][1] = _mm512_setzero_ps();
                for (size_t ci = 0; ci < Ci; ci++)
                    for (size_t ky = 0; ky < 3; ky++)
#pragma GCC unroll 3
                        for (size_t kx = 0; kx < 3; kx++) {
                            const float *src = xp + (ci * Hq + yy + ky) * Wq + x + kx;
                            __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
                            const float *wp = w + cb * K + ci * 9 + ky * 3 + kx;
#pragma GCC unroll 8
                            for (int j = 0; j < 8; j++) {
                                __m512 wv = _mm512_set1_ps(wp[j * K]);
                                a[j][0] = _mm512_fmadd_ps(wv, v0, a[j][0]);
                                a[j][1] = _mm512_fmadd_ps(wv, v1, a[j][1]);
                            }
                        }
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    float *o = out + ((cb + j) * Hc + yy) * Wc + x;
                    _mm512_storeu_ps(o, a[j][0]);
                    _mm512_storeu_ps(o + 16, a[j][1]);
                }
            }
}

/* dw[co, ci, ky, kx] += sum_{y,x} dC[co, y, x] * xp[ci, y + ky, x + kx] for CI = 1 or 3:
 * CI * 9 accumulators (<= 27 registers) per output channel. dC rows are `ld` apart. */
static inline __attribute__((always_inline)) void conv3_direct_dw_ci(
    float *restrict dw, const float *restrict dC, size_t ld, const float *restrict xp, size_t Co,
    size_t Hc, size_t Wc, const size_t CI)
{
    size_t Hq = Hc + 2, Wq = Wc + 2;
    for (size_t co = 0; co < Co; co++) {
        __m512 acc[27];
#pragma GCC unroll 27
        for (size_t t = 0; t < CI * 9; t++) acc[t] = _mm512_setzero_ps();
        const float *d = dC + co * ld;
        for (size_t yy = 0; yy < Hc; yy++)
            for (size_t x = 0; x < Wc; x += 16) {
                __m512 dv = _mm512_loadu_ps(d + yy * Wc + x);
#pragma GCC unroll 27
                for (size_t t = 0; t < CI * 9; t++) {
                    size_t ci = t / 9, ky = (t % 9) / 3, kx = t % 3;
                    acc[t] = _mm512_fmadd_ps(dv, _mm512_loadu_ps(xp + (ci * Hq + yy + ky) * Wq + x + kx),
                                             acc[t]);
                }
            }
#pragma GCC unroll 27
        for (size_t t = 0; t < CI * 9; t++) dw[co * CI * 9 + t] += _mm512_reduce_add_ps(acc[t]);
    }
}

static void conv3_direct_dw(float *dw, const float *dC, size_t ld, const float *xp, size_t Ci,
                            size_t Co, size_t Hc, size_t Wc)
{
    if (Ci == 1)
        conv3_direct_dw_ci(dw, dC, ld, xp, Co, Hc, Wc, 1);
    else if (Ci == 2)
        conv3_direct_dw_ci(dw, dC, ld, xp, Co, Hc, Wc, 2);
    else
        conv3_direct_dw_ci(dw, dC, ld, xp, Co, Hc, Wc, 3);
}
#define HAVE_DIRECT 1
static float sum_floats_v(const float *x, size_t n)
{
    __m512 a = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(lanes(n - i), x + i));
    return (float)hsum_d(a);
}
#pragma GCC pop_options
#else
#define HAVE_DIRECT 0
#define plane_forward_v plane_forward
#define plane_backward_v plane_backward
#define sum_floats_v sum_floats_s
#define direct_ok(y, Co) ((void)(y), (void)(Co), 0)
#endif
static float sum_floats_s(const float *x, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}
static float sum_floats(const float *x, size_t n)
{
    return apd__cpu_avx512f() ? sum_floats_v(x, n) : sum_floats_s(x, n);
}
#define PLANE_FORWARD(...) (apd__cpu_avx512f() ? plane_forward_v(__VA_ARGS__) : plane_forward(__VA_ARGS__))
#define PLANE_BACKWARD(...) (apd__cpu_avx512f() ? plane_backward_v(__VA_ARGS__) : plane_backward(__VA_ARGS__))

/* ---- forward / backward over a batch slice -------------------------------------------- */

typedef struct job {
    apd_convnet *net;
    size_t n;
    float *logits_out, *embed_out; /* forward */
    float *dx;                     /* backward */
    const float *dlogits, *dembed;
    int param_grads;
    int bf16;    /* forward: im2col GEMMs in bf16 (net->wbf packed) */
    int own_f32; /* float32 conv GEMMs (forward, input gradient) by apd__gemm_f32, not OpenBLAS */
    int nograd;  /* forward: no backward follows, so the conv outputs are not kept: each group's
                    planes are normalised and pooled from the thread's scratch (same arithmetic,
                    same bits), never written to (or faulted into) the batch-sized y->conv */
} job;

static void slice_of(size_t n, size_t T, size_t t, size_t *i0, size_t *i1)
{
    *i0 = n * t / T;
    *i1 = n * (t + 1) / T;
}

static void forward_task(void *ctx, uint32_t task, uint32_t thread)
{
    job *jb = ctx;
    apd_convnet *net = jb->net;
    size_t i0, i1;
    slice_of(jb->n, net->T, task, &i0, &i1);
    if (i0 == i1) return;
    float *col = net->col[thread], *tmp = net->dc[thread];
    const float *P = net->params;
    int norm = net->cfg.norm == APD_NORM_INSTANCE, keep = !jb->nograd;
    size_t Co = net->width;
    const float *in = net->x0;
    for (size_t l = 0; l < net->L; l++) {
        layer *y = &net->ly[l];
        size_t in_sz = y->ci * y->h * y->w, p = y->p, pp = y->hp * y->wp;
        int direct = apd__cpu_avx512f() && direct_ok(y, Co);
        for (size_t i = i0; i < i1; i += y->g) {
            size_t gi = i1 - i < y->g ? i1 - i : y->g, ld = gi * p;
            float *dst = gi == 1 && keep ? y->conv + i * Co * p : tmp;
            double t0 = thread == 0 ? apd__now() : 0.0;
#if HAVE_DIRECT
            if (direct) {
                /* 8 output channels at a time, each block normalised/pooled right away while
                 * its planes are still in cache (conv1's output is 512 KB per image, too big
                 * to read back from L2 after the whole image). */
                for (size_t j = 0; j < gi; j++) {
                    pad_input(col, in + (i + j) * in_sz, y->ci, y->h, y->w, y->pad);
                    for (size_t cb = 0; cb < Co; cb += 8) {
                        /* without a backward the 8 planes live in the scratch only (32 KB at
                           32 px, in L1/L2) instead of the batch-sized arena */
                        float *blk = keep ? y->conv + ((i + j) * Co + cb) * p : tmp;
                        if (thread == 0) net->prof_conv[l] -= apd__now();
                        conv3_direct_fwd(blk, col, P + y->w_off + cb * y->k, y->ci, 8, y->hc, y->wc);
                        if (thread == 0) net->prof_conv[l] += apd__now();
                        for (size_t co = cb; co < cb + 8; co++) {
                            size_t nc = (i + j) * Co + co;
                            PLANE_FORWARD(blk + (co - cb) * p, y->pooled + nc * pp, y->mean + nc,
                                          y->rstd + nc, P[y->b_off + co],
                                          norm ? P[y->gamma_off + co] : 1.0f,
                                          norm ? P[y->beta_off + co] : 0.0f, norm, y->hc, y->wc);
                        }
                    }
                }
                continue;
            } else
#endif
            {
                if (jb->bf16) {
                    /* im2col straight into bf16 pairs: no float column matrix to write and re-read */
                    for (size_t j = 0; j < gi; j++)
                        apd__bf16_im2col_pack(net->bcol[thread], ld, j * p, in + (i + j) * in_sz, y->ci, y->h,
                                              y->w, 3, y->pad, y->hc, y->wc, col);
                    apd__bf16_gemm(dst, ld, net->wbf[l], net->bcol[thread], Co, ld, y->k);
                } else {
                    for (size_t j = 0; j < gi; j++)
                        apd__im2col(col + j * p, ld, in + (i + j) * in_sz, y->ci, y->h, y->w, 3, y->pad,
                                    y->hc, y->wc);
                    if (jb->own_f32)
                        apd__gemm_f32(dst, ld, P + y->w_off, y->k, 1, col, ld, Co, ld, y->k);
                    else
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Co, (int)ld, (int)y->k,
                                    1.0f, P + y->w_off, (int)y->k, col, (int)ld, 0.0f, dst, (int)ld);
                }
            }
            if (thread == 0) net->prof_conv[l] += apd__now() - t0;
            if (gi > 1 && dst == tmp && keep) /* regroup: backward reads the planes per image */
                for (size_t co = 0; co < Co; co++)
                    for (size_t j = 0; j < gi; j++)
                        memcpy(y->conv + ((i + j) * Co + co) * p, tmp + co * ld + j * p,
                               p * sizeof(float));
            for (size_t j = 0; j < gi; j++)
                for (size_t co = 0; co < Co; co++) {
                    size_t nc = (i + j) * Co + co;
                    PLANE_FORWARD(keep ? y->conv + nc * p : tmp + co * ld + j * p, y->pooled + nc * pp,
                                  y->mean + nc, y->rstd + nc,
                                  P[y->b_off + co], norm ? P[y->gamma_off + co] : 1.0f,
                                  norm ? P[y->beta_off + co] : 0.0f, norm, y->hc, y->wc);
                }
        }
        in = y->pooled;
    }
    if (thread == 0) net->prof_imgs += i1 - i0;
    const float *emb = net->ly[net->L - 1].pooled + i0 * net->embed;
    if (jb->embed_out)
        memcpy(jb->embed_out + i0 * net->embed, emb, (i1 - i0) * net->embed * sizeof(float));
    if (jb->logits_out) {
        apd_linear_forward(net->logits + i0 * net->K, emb, P + net->fc_w_off, P + net->fc_b_off,
                           i1 - i0, net->embed, net->K);
        memcpy(jb->logits_out + i0 * net->K, net->logits + i0 * net->K,
               (i1 - i0) * net->K * sizeof(float));
    }
}

/* dst [n][m] = src [m][n] (src rows n floats apart), in 32 x 32 blocks so both sides stay in
 * few cache lines per block */
static void transpose(float *restrict dst, const float *restrict src, size_t m, size_t n)
{
    for (size_t i0 = 0; i0 < m; i0 += 32)
        for (size_t j0 = 0; j0 < n; j0 += 32) {
            size_t i1 = i0 + 32 < m ? i0 + 32 : m, j1 = j0 + 32 < n ? j0 + 32 : n;
            for (size_t i = i0; i < i1; i++)
                for (size_t j = j0; j < j1; j++) dst[j * m + i] = src[i * n + j];
        }
}

static void backward_task(void *ctx, uint32_t task, uint32_t thread)
{
    job *jb = ctx;
    apd_convnet *net = jb->net;
    size_t i0, i1;
    slice_of(jb->n, net->T, task, &i0, &i1);
    float *col = net->col[thread], *dC = net->dc[thread], *G = net->pgrad[thread];
    int norm = net->cfg.norm == APD_NORM_INSTANCE, pg = jb->param_grads;
    if (pg) memset(G, 0, net->n_params * sizeof(float)); /* also for an empty slice (n < T) */
    if (i0 == i1) return;
    size_t ns = i1 - i0, Co = net->width, E = net->embed;
    const float *P = net->params;

    /* classifier */
    layer *last = &net->ly[net->L - 1];
    float *demb = last->dpooled + i0 * E;
    if (jb->dembed)
        memcpy(demb, jb->dembed + i0 * E, ns * E * sizeof(float));
    else
        memset(demb, 0, ns * E * sizeof(float));
    if (jb->dlogits)
        apd_linear_backward(demb, pg ? G + net->fc_w_off : NULL, pg ? G + net->fc_b_off : NULL,
                            jb->dlogits + i0 * net->K, last->pooled + i0 * E, P + net->fc_w_off,
                            ns, E, net->K);

    for (size_t l = net->L; l-- > 0;) {
        layer *y = &net->ly[l];
        const float *in = l == 0 ? net->x0 : net->ly[l - 1].pooled;
        float *din = l == 0 ? jb->dx : net->ly[l - 1].dpooled;
        size_t in_sz = y->ci * y->h * y->w, p = y->p, pp = y->hp * y->wp;
        if (din == NULL && !pg) break; /* nothing left to compute below this layer */
        if (l > 0) memset(din + i0 * in_sz, 0, ns * in_sz * sizeof(float));
        /* dW of this layer: conv1's direct kernel, else our GEMM kernel (wt_dw), else OpenBLAS */
        int direct = apd__cpu_avx512f() && direct_ok(y, Co), wt_dw = pg && jb->own_f32 && !direct;
        if (wt_dw) memset(net->wt[thread] + y->wt_off, 0, y->k * Co * sizeof(float));
        for (size_t i = i0; i < i1; i += y->g) {
            size_t gi = i1 - i < y->g ? i1 - i : y->g, ld = gi * p;
            for (size_t j = 0; j < gi; j++)
                for (size_t co = 0; co < Co; co++) {
                    size_t nc = (i + j) * Co + co;
                    float dgam = 0.0f, dbet = 0.0f;
                    PLANE_BACKWARD(dC + co * ld + j * p, y->conv + nc * p, y->dpooled + nc * pp,
                                   norm ? y->mean[nc] : 0.0f, norm ? y->rstd[nc] : 1.0f,
                                   norm ? P[y->gamma_off + co] : 1.0f,
                                   norm ? P[y->beta_off + co] : 0.0f, norm, y->hc, y->wc, &dgam,
                                   &dbet);
                    if (pg && norm) {
                        G[y->gamma_off + co] += dgam;
                        G[y->beta_off + co] += dbet;
                    }
                }
            if (pg) {
                for (size_t co = 0; co < Co; co++) {
                    G[y->b_off + co] += sum_floats(dC + co * ld, ld);
                }
#if HAVE_DIRECT
                if (direct) {
                    for (size_t j = 0; j < gi; j++) {
                        pad_input(col, in + (i + j) * in_sz, y->ci, y->h, y->w, y->pad);
                        conv3_direct_dw(G + y->w_off, dC + j * p, ld, col, y->ci, Co, y->hc, y->wc);
                    }
                } else
#endif
                {
                    for (size_t j = 0; j < gi; j++)
                        apd__im2col(col + j * p, ld, in + (i + j) * in_sz, y->ci, y->h, y->w, 3,
                                    y->pad, y->hc, y->wc);
                    if (wt_dw) {
                        /* dW^T [k][Co] += col [k][ld] x dC^T [ld][Co]: the NT product as an NN
                           one on our kernel, with the small operand (dC) transposed, not the
                           im2col matrix; added to G once per layer below */
                        float *dct = net->dct[thread];
                        transpose(dct, dC, Co, ld);
                        apd__gemm_f32_add(net->wt[thread] + y->wt_off, Co, col, ld, 1, dct, Co, y->k, Co, ld);
                    } else {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Co, (int)y->k, (int)ld, 1.0f, dC,
                                    (int)ld, col, (int)ld, 1.0f, G + y->w_off, (int)y->k);
                    }
                }
            }
            if (din) {
                if (jb->own_f32) /* col = W^T dC: W read with row stride 1 and column stride k */
                    apd__gemm_f32(col, ld, P + y->w_off, 1, y->k, dC, ld, y->k, ld, Co);
                else
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)y->k, (int)ld, (int)Co,
                                1.0f, P + y->w_off, (int)y->k, dC, (int)ld, 0.0f, col, (int)ld);
                for (size_t j = 0; j < gi; j++)
                    apd__col2im_add(din + (i + j) * in_sz, col + j * p, ld, y->ci, y->h, y->w, 3,
                                    y->pad, y->hc, y->wc);
            }
        }
        if (wt_dw) { /* G [Co][k] += (dW^T)^T */
            const float *wt = net->wt[thread] + y->wt_off;
            float *gw = G + y->w_off;
            for (size_t co = 0; co < Co; co++)
                for (size_t r = 0; r < y->k; r++) gw[co * y->k + r] += wt[r * Co + co];
        }
    }
}

/* nograd: no backward will follow (apd_convnet_forward_nograd*), so the conv outputs need
   not be kept; the logits and embeddings are the same bits either way. */
static apd_status forward_run(apd_convnet *net, float *logits, float *embed, const float *x, size_t n,
                              unsigned flags, int nograd)
{
    APD_RETURN_IF(net == NULL || x == NULL || n == 0 || n > net->cfg.max_batch, APD_EINVAL);
    memcpy(net->x0, x, n * net->cfg.c * net->cfg.h * net->cfg.w * sizeof(float));
    job jb = {.net = net, .n = n, .logits_out = logits, .embed_out = embed, .own_f32 = apd__gemm_f32_ok(),
              .nograd = nograd};
    if ((flags & APD_NN_FWD_BF16) && net->bf16 && apd_nn_bf16_enabled()) {
        jb.bf16 = 1;
        for (size_t l = 0; l < net->L; l++)
            apd__bf16_pack_a(net->wbf[l], net->params + net->ly[l].w_off, net->ly[l].k, net->width,
                             net->ly[l].k);
    }
    apd_pool_run(net->cfg.pool, (uint32_t)net->T, forward_task, &jb);
    net->last_n = n;
    net->have_forward = !jb.bf16 && !nograd; /* no backward through reduced-precision activations */
    return APD_OK;
}

apd_status apd_convnet_forward_ex(apd_convnet *net, float *logits, float *embed, const float *x,
                                  size_t n, unsigned flags)
{
    return forward_run(net, logits, embed, x, n, flags, 0);
}

apd_status apd_convnet_forward(apd_convnet *net, float *logits, float *embed, const float *x,
                               size_t n)
{
    return apd_convnet_forward_ex(net, logits, embed, x, n, 0);
}

apd_status apd_convnet_backward(apd_convnet *net, float *dx, const float *dlogits,
                                const float *dembed, size_t n, unsigned flags)
{
    APD_RETURN_IF(net == NULL || (dlogits == NULL && dembed == NULL), APD_EINVAL);
    APD_RETURN_IF(!net->have_forward, APD_EBADSTATE);
    APD_RETURN_IF(n != net->last_n, APD_EINVAL);
    int pg = (flags & APD_NN_PARAM_GRADS) != 0;
    if (dx == NULL && !pg) return APD_OK;
    job jb = {.net = net, .n = n, .dx = dx, .dlogits = dlogits, .dembed = dembed, .param_grads = pg,
              .own_f32 = apd__gemm_f32_ok()};
    apd_pool_run(net->cfg.pool, (uint32_t)net->T, backward_task, &jb);
    if (pg)
        for (size_t t = 0; t < net->T; t++) {
            const float *G = net->pgrad[t];
            for (size_t i = 0; i < net->n_params; i++) net->grads[i] += G[i];
        }
    return APD_OK;
}

void apd__convnet_prof(apd_convnet *net, double *conv_seconds, size_t *imgs, size_t *flops_per_img,
                       int reset)
{
    for (size_t l = 0; l < net->L; l++) {
        if (conv_seconds) conv_seconds[l] = net->prof_conv[l];
        if (flops_per_img) flops_per_img[l] = 2 * net->width * net->ly[l].p * net->ly[l].k;
        if (reset) net->prof_conv[l] = 0.0;
    }
    if (imgs) *imgs = net->prof_imgs;
    if (reset) net->prof_imgs = 0;
}

/* ---- unfused reference ----------------------------------------------------------------- */

apd_status apd_convnet_forward_ref(apd_convnet *net, float *logits, float *embed, const float *x,
                                   size_t n)
{
    APD_RETURN_IF(net == NULL || x == NULL || n == 0, APD_EINVAL);
    size_t big = n * net->cfg.c * net->cfg.h * net->cfg.w;
    for (size_t l = 0; l < net->L; l++)
        if (n * net->width * net->ly[l].p > big) big = n * net->width * net->ly[l].p;
    float *a = malloc(big * sizeof(float)), *b = malloc(big * sizeof(float));
    float *mean = malloc(n * net->width * sizeof(float)), *rstd = malloc(n * net->width * sizeof(float));
    if (!a || !b || !mean || !rstd) {
        free(a); free(b); free(mean); free(rstd);
        return APD_ENOMEM;
    }
    memcpy(a, x, n * net->cfg.c * net->cfg.h * net->cfg.w * sizeof(float));
    const float *P = net->params;
    for (size_t l = 0; l < net->L; l++) {
        layer *y = &net->ly[l];
        apd_conv2d_forward_ref(b, a, P + y->w_off, P + y->b_off, n, y->ci, y->h, y->w, net->width,
                               3, y->pad);
        if (net->cfg.norm == APD_NORM_INSTANCE)
            apd_instnorm_forward(b, mean, rstd, b, P + y->gamma_off, P + y->beta_off, n, net->width,
                                 y->p);
        apd_relu_forward(b, b, n * net->width * y->p);
        apd_avgpool2_forward(a, b, n * net->width, y->hc, y->wc);
    }
    if (embed) memcpy(embed, a, n * net->embed * sizeof(float));
    if (logits) {
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < net->K; k++) {
                double s = P[net->fc_b_off + k];
                for (size_t e = 0; e < net->embed; e++)
                    s += (double)a[i * net->embed + e] * P[net->fc_w_off + k * net->embed + e];
                logits[i * net->K + k] = (float)s;
            }
    }
    free(a); free(b); free(mean); free(rstd);
    return APD_OK;
}

/* ---- memory planning and inference in chunks -------------------------------------------- */

/* Two throw-away nets (max_batch 1 and 2) rather than a second copy of plan_arenas' sums: the
 * figures follow whatever the arenas hold. calloc'd pages that are never touched cost no RAM. */
apd_status apd_convnet_plan_bytes(const apd_convnet_opts *cfg, size_t *fixed_bytes, size_t *bytes_per_image)
{
    APD_RETURN_IF(cfg == NULL, APD_EINVAL);
    apd_convnet_opts c = *cfg;
    apd_convnet *a = NULL, *b = NULL;
    c.max_batch = 1;
    apd_status st = apd_convnet_create(&a, &c);
    c.max_batch = 2;
    if (st == APD_OK) st = apd_convnet_create(&b, &c);
    if (st == APD_OK) {
        size_t per = b->bytes - a->bytes;
        if (fixed_bytes) *fixed_bytes = a->bytes - per;
        if (bytes_per_image) *bytes_per_image = per;
    }
    apd_convnet_free(a);
    apd_convnet_free(b);
    return st;
}

uint32_t apd_convnet_batch_for_budget(const apd_convnet_opts *cfg, size_t budget_bytes, uint32_t want)
{
    size_t per;
    if (want == 0 || apd_convnet_plan_bytes(cfg, NULL, &per) != APD_OK || per == 0) return 0;
    size_t fit = budget_bytes / per;
    if (fit < 1) fit = 1;
    return fit < want ? (uint32_t)fit : want;
}

apd_status apd_convnet_forward_nograd_ex(apd_convnet *net, float *logits, float *embed, const float *x, size_t n,
                                         unsigned flags)
{
    APD_RETURN_IF(net == NULL || x == NULL || n == 0, APD_EINVAL);
    const size_t mb = net->cfg.max_batch, img = (size_t)net->cfg.c * net->cfg.h * net->cfg.w;
    for (size_t i = 0; i < n; i += mb) {
        size_t m = n - i < mb ? n - i : mb;
        APD_TRY(forward_run(net, logits ? logits + i * net->K : NULL, embed ? embed + i * net->embed : NULL,
                            x + i * img, m, flags, 1));
    }
    net->have_forward = 0;
    return APD_OK;
}

apd_status apd_convnet_forward_nograd(apd_convnet *net, float *logits, float *embed, const float *x, size_t n)
{
    return apd_convnet_forward_nograd_ex(net, logits, embed, x, n, 0);
}
