/* distill/dm.c: the distribution-matching loop (docs/method.md 8.1) and its AutoPalette
 * variant (sections 2-3), with checkpoint/resume and run monitoring.
 *
 * One iteration `it`:
 *   1. a fresh ConvNet (depth by resolution: D3 at 32 px, D4 at 64, D5 at 128; or opts.depth),
 *      randomly initialised from (seed, it), frozen;
 *   2. per class: a real batch (batch_real images drawn without replacement from (seed, it,
 *      class)), the class's synthetic images (autopalette: through the palette network, soft
 *      per-image palette), ONE Siamese DSA draw from (seed, it, class) applied to both, the
 *      embeddings (2048-d at those sizes), loss_c = ||mean e_real - mean e_syn||^2, and its backward to the
 *      synthetic pixels (and, autopalette, to the palette network: section 3.3);
 *   3. loss = sum_c loss_c (no division by the number of classes); SGD step on the pixels
 *      (PyTorch semantics, lr_img, momentum_img);
 *   4. autopalette: the colour losses (Lm, Lb, La, Lconf) on a detached random subset of
 *      color_subset synthetic images (drawn from (seed, it) before the pixel step) add to
 *      the palette gradients; one palette SGD step.
 * Collapse remedies (opts.remedy) hook in: warm-up before the loop, a scale on the task
 * gradient reaching the palette network, a temperature schedule, a straight-through forward.
 *
 * Determinism and resume: every draw derives from (seed, iteration, class) by stream, never
 * from a running generator, so the state of a run after iteration i is exactly: the
 * synthetic pixels, their momentum, the palette network and its momentum, the iteration,
 * and the loss of iteration 0 (for the stats). A checkpoint stores exactly that (plus a
 * fingerprint of the options and data that must match on resume), written to PATH.tmp and
 * renamed, so a crash never leaves a torn checkpoint.
 *
 * Output: dm -> direct-colour records (un-normalise, round, clamp), or classical-quantizer
 * palette records if opts.quantizer >= 0; autopalette -> the hard quantization (argmax map
 * + per-image mean palette), indices compacted to the colours used.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

#include "apd/dsa.h"
#include "apd/format.h"
#include "apd/nn.h"
#include "apd/palette.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "distill/distill_internal.h"

/* stream tags for apd__rng_seed(seed, stream) */
#define ST_NET (1ull << 56)
#define ST_REAL (2ull << 56)
#define ST_DSA (3ull << 56)
#define ST_SUBSET (4ull << 56)
#define ST_EVAL (7ull << 56)
#define ST_EVALREAL (8ull << 56)
#define ST_TEACHER (13ull << 56) /* netpool.c has 9..12 */
#define APD_KMEANS_INIT_ITERS 25 /* Lloyd steps of the palette k-means init (remedy kmeans-init) */

static uint64_t stream_ic(uint64_t tag, uint64_t it, uint32_t cls)
{
    return tag | (it << 16) | cls;
}

/* ---- state ------------------------------------------------------------------------------ */

typedef struct dm_state {
    apd_distill_ctx *x;
    const apd_distill_opts *o;
    uint64_t ipc, N;
    size_t img;         /* c*h*w */
    uint32_t D;         /* embed dim */
    int palette;        /* autopalette, palette network */
    int stored;         /* autopalette, palette mode stored: the loss sees the quantized images */
    apd_quantizer qz;   /* stored: the per-image quantizer */
    uint8_t *qscr;      /* stored: per pool thread, an 8-bit image, a palette and an index map */
    size_t qscr_unit;
    float lut[3][256];  /* uint8 -> normalised float per channel */
    float *syn;         /* [N, img] synthetic pixels, normalised */
    float *mom;         /* [N, img] pixel momentum */
    int mom_init;
    float *grad;        /* [N, img] */
    /* real images: ids from the source's per-class index, decoded on demand */
    uint64_t *scratch_idx; /* [max(largest class, N)] */
    uint8_t *img8;         /* [img] one decoded real image */
    /* network and buffers */
    apd_pool *pool;
    apd_convnet *net;
    uint32_t max_batch;
    float *real_f, *real_aug, *emb_r, *mean_r, *mean_s;
    float *syn_q, *syn_aug, *emb_s, *d_emb, *d_aug, *d_q;
    /* palette */
    apd_palette_net pnet;
    apd_palette_ws *ws, *wsc;
    float *x_sub;
    uint32_t n_sub;
    apd_palette_color_opts cc;
    apd_palette_sgd_opts psgd;
    /* per-class figures of an iteration (loss, palette gradient), xc_unit floats a class;
     * and, class-parallel, each class's process and the colour-subset packing */
    float *xc;
    size_t xc_unit;
    uint32_t *cls_owner;
    float *x_pack;
    uint32_t *sub_pos;
    uint64_t *sub_off;
    /* opts.net_pool: the queue of partly trained networks (netpool.c) */
    apd__netpool npool;
    int use_pool;
    /* opts.ce_weight: the trained network of the class-aware term and its logit buffers */
    apd_convnet *teacher;
    float *t_logits, *t_dl; /* [max_batch, classes] */
    float ce_w;             /* the weight in effect (apd_distill_ce_weight_in_effect); 0 = off */
    uint32_t ce_steps;      /* the teacher's SGD steps in effect */
    double teacher_xent;    /* mean cross-entropy of its training steps */
    double xent0;           /* its mean cross-entropy of the initial images */
    /* stats */
    double loss_first;
    uint64_t start_iter;
    unsigned csr_saved; /* MXCSR of the calling thread before the run (restored at the end) */
} dm_state;

static void state_free(dm_state *s)
{
    free(s->syn);
    free(s->mom);
    free(s->grad);
    free(s->scratch_idx);
    free(s->img8);
    apd_convnet_free(s->net);
    apd_convnet_free(s->teacher);
    free(s->t_logits);
    free(s->t_dl);
    apd_pool_free(s->pool);
    free(s->real_f);
    free(s->real_aug);
    free(s->emb_r);
    free(s->mean_r);
    free(s->mean_s);
    free(s->syn_q);
    free(s->syn_aug);
    free(s->emb_s);
    free(s->d_emb);
    free(s->d_aug);
    free(s->d_q);
    apd_palette_net_free(&s->pnet);
    apd_palette_ws_free(s->ws);
    apd_palette_ws_free(s->wsc);
    free(s->x_sub);
    free(s->qscr);
    free(s->xc);
    free(s->cls_owner);
    free(s->x_pack);
    free(s->sub_pos);
    free(s->sub_off);
    apd__netpool_free(&s->npool);
}

static void *xmalloc(size_t a, size_t b, int *fail)
{
    size_t n;
    if (!apd__mul_ok(a, b, &n) || n == 0) {
        *fail = 1;
        return NULL;
    }
    void *p = malloc(n);
    if (!p) *fail = 1;
    return p;
}

static void to_float(const dm_state *s, float *dst, const uint8_t *src)
{
    apd__lut_image(dst, src, (const float(*)[256])s->lut, s->x->c, (size_t)s->x->h * s->x->w);
}

static uint8_t to_u8(float v, float mean, float std)
{
    float u = (v * std + mean) * 255.0f;
    if (!(u > 0)) return 0; /* also NaN */
    if (u >= 255) return 255;
    return (uint8_t)lrintf(u);
}

/* ---- the real batch ---------------------------------------------------------------------- */

/* Fill s->real_f with *b = min(batch_real, n_c) images of class cls drawn without
 * replacement from (seed, stream): a partial shuffle of the class's ids (ascending), each
 * drawn image decoded from the source as it is drawn. APD_OK or the source's read error. */
static apd_status real_batch(dm_state *s, uint32_t cls, uint64_t stream, uint32_t *b, apd_err *err)
{
    apd_distill_source *src = s->x->src;
    uint64_t n = src->cls_off[cls + 1] - src->cls_off[cls];
    *b = s->o->batch_real < n ? s->o->batch_real : (uint32_t)n;
    memcpy(s->scratch_idx, src->cls_ids + src->cls_off[cls], (size_t)n * sizeof *s->scratch_idx);
    apd__rng r;
    apd__rng_seed(&r, s->x->seed, stream);
    for (uint32_t t = 0; t < *b; t++) {
        uint64_t j = t + apd__rng_below(&r, n - t);
        uint64_t tmp = s->scratch_idx[t];
        s->scratch_idx[t] = s->scratch_idx[j];
        s->scratch_idx[j] = tmp;
        const uint8_t *im;
        APD_TRY(apd__dsrc_image(src, s->scratch_idx[t], s->img8, &im, err));
        to_float(s, s->real_f + (size_t)t * s->img, im);
    }
    return APD_OK;
}

/* ---- one iteration ------------------------------------------------------------------------ */

typedef struct iter_out {
    double loss;
    uint32_t net_age;  /* net_pool: SGD steps of the iteration's network */
    double pool_xent;  /* net_pool: mean cross-entropy of the iteration's training steps */
    apd_palette_losses pl;
    apd_palette_stats ps;
} iter_out;

static float temperature_at(const dm_state *s, uint64_t it)
{
    if (!(s->o->remedy & APD_REMEDY_TEMPERATURE)) return 1.0f;
    return apd_palette_temperature(s->o->temp_start, s->o->temp_end, it, s->o->iters);
}

/* The embeddings s->emb_s of the n augmented synthetic images s->syn_aug. When n fits the
 * net's batch (max_batch, planned from APD_CONVNET_ACT_BUDGET) the activations are kept for
 * syn_backward; otherwise syn_backward recomputes them chunk by chunk. */
static apd_status syn_forward(dm_state *s, uint32_t n)
{
    if (n <= s->max_batch) return apd_convnet_forward(s->net, NULL, s->emb_s, s->syn_aug, n);
    return apd_convnet_forward_nograd(s->net, NULL, s->emb_s, s->syn_aug, n);
}

/* s->d_aug += d loss / d syn_aug from s->d_emb (frozen net). The loss depends on the images
 * only through their mean embedding, so each image's gradient needs only its own forward:
 * chunks of max_batch give the same result as one pass. */
static apd_status syn_backward(dm_state *s, uint32_t n)
{
    if (n <= s->max_batch) return apd_convnet_backward(s->net, s->d_aug, NULL, s->d_emb, n, 0);
    for (uint32_t i = 0; i < n; i += s->max_batch) {
        uint32_t m = n - i < s->max_batch ? n - i : s->max_batch;
        APD_TRY(apd_convnet_forward(s->net, NULL, NULL, s->syn_aug + (size_t)i * s->img, m));
        APD_TRY(apd_convnet_backward(s->net, s->d_aug + (size_t)i * s->img, NULL, s->d_emb + (size_t)i * s->D, m, 0));
    }
    return APD_OK;
}

/* What an 8-bit record can hold of channel ch, in normalised units: [(0 - mean) / std,
 * (1 - mean) / std]. */
static void record_range(const apd_distill_ctx *x, uint32_t ch, float *lo, float *hi)
{
    *lo = -x->mean[ch] / x->std[ch];
    *hi = (1.0f - x->mean[ch]) / x->std[ch];
}

static inline float clamp_to(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Project n images (normalised floats) onto what an 8-bit record can hold. */
static void clamp_pixels(const dm_state *s, float *xs, uint64_t n)
{
    const apd_distill_ctx *x = s->x;
    size_t p = (size_t)x->h * x->w;
    for (uint32_t ch = 0; ch < x->c; ch++) {
        float lo, hi;
        record_range(x, ch, &lo, &hi);
        for (uint64_t i = 0; i < n; i++) {
            float *v = xs + i * s->img + ch * p;
            for (size_t q = 0; q < p; q++) v[q] = clamp_to(v[q], lo, hi);
        }
    }
}

/* ---- palette mode stored: the images the loss sees are the images stored ------------------ */

/* --loss-range float / anneal: q (n images, the stored ones) += wt x what storage clips off
 * the float images xs (x - clip(x)); with wt = 1 the loss sees a pixel beyond the 8-bit range
 * at its float value, with wt = 0 at its stored one. */
static void add_overshoot(const dm_state *s, const float *xs, float *q, uint64_t n, float wt)
{
    const apd_distill_ctx *x = s->x;
    size_t p = (size_t)x->h * x->w;
    for (uint32_t ch = 0; ch < x->c; ch++) {
        float lo, hi;
        record_range(x, ch, &lo, &hi);
        for (uint64_t i = 0; i < n; i++) {
            const float *v = xs + i * s->img + ch * p;
            float *o = q + i * s->img + ch * p;
            for (size_t j = 0; j < p; j++) o[j] += wt * (v[j] - clamp_to(v[j], lo, hi));
        }
    }
}

/* One synthetic image (normalised floats, CHW) -> the 8-bit pixels a record stores. */
static void syn_to_u8(const apd_distill_ctx *x, const float *xi, uint8_t *u8)
{
    size_t p = (size_t)x->h * x->w;
    for (uint32_t ch = 0; ch < x->c; ch++)
        for (size_t q = 0; q < p; q++) u8[ch * p + q] = to_u8(xi[ch * p + q], x->mean[ch], x->std[ch]);
}

/* One palette record (palette + index map) -> its image, normalised floats (CHW). */
static void palette_to_float(const dm_state *s, const uint8_t *pal, const uint8_t *idx, float *o)
{
    const apd_distill_ctx *x = s->x;
    size_t p = (size_t)x->h * x->w;
    for (uint32_t ch = 0; ch < x->c; ch++)
        for (size_t q = 0; q < p; q++) o[ch * p + q] = s->lut[ch][pal[idx[q] * x->c + ch]];
}

/* One synthetic image (normalised floats) -> its palette record: 8-bit pixels (the rounding
 * of the output records), the quantizer at K colours with the record's seed, indices
 * compacted later. The same function makes the loss's images and the stored records. */
static apd_status quantize_syn(const dm_state *s, const float *xi, uint64_t i, uint8_t *u8, uint8_t *pal,
                               uint8_t *idx, uint32_t *k_used)
{
    const apd_distill_ctx *x = s->x;
    syn_to_u8(x, xi, u8);
    memset(pal, 0, (size_t)x->k * x->c);
    return apd_quantize_image(s->qz, u8, x->c, x->h, x->w, x->k, apd__mix64(x->seed ^ i), pal, idx, k_used);
}

typedef struct qloop_ctx {
    const dm_state *s;
    const float *xs; /* the class's synthetic images */
    float *out;      /* their quantized images, normalised */
    uint64_t first;  /* global index of xs[0] */
    apd_status *st;  /* per image */
} qloop_ctx;

static void qloop_image(void *vctx, uint32_t t, uint32_t thread)
{
    const qloop_ctx *cx = vctx;
    const dm_state *s = cx->s;
    const apd_distill_ctx *x = s->x;
    uint8_t *u8 = s->qscr + (size_t)thread * s->qscr_unit, *pal = u8 + s->img, *idx = pal + (size_t)x->k * x->c;
    uint32_t used;
    cx->st[t] = quantize_syn(s, cx->xs + (size_t)t * s->img, cx->first + t, u8, pal, idx, &used);
    if (cx->st[t] == APD_OK) palette_to_float(s, pal, idx, cx->out + (size_t)t * s->img);
}

/* s->syn_q = the stored images of class cls's synthetic images xs (decoded to floats). */
static apd_status quantize_class(dm_state *s, const float *xs, uint32_t cls, apd_err *err)
{
    apd_status st[1024], *stp = s->ipc <= 1024 ? st : malloc((size_t)s->ipc * sizeof *stp);
    if (!stp) return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    qloop_ctx cx = {s, xs, s->syn_q, (uint64_t)cls * s->ipc, stp};
    apd_pool_run(s->pool, (uint32_t)s->ipc, qloop_image, &cx);
    apd_status bad = APD_OK;
    uint32_t t_bad = 0;
    for (uint32_t t = 0; t < s->ipc && bad == APD_OK; t++)
        if (stp[t] != APD_OK) {
            bad = stp[t];
            t_bad = t;
        }
    if (stp != st) free(stp);
    if (bad != APD_OK)
        return apd__err_set(err, bad, "distill: quantizing synthetic image %llu failed (%s)",
                            (unsigned long long)cls * s->ipc + t_bad, apd_strerror(bad));
    return APD_OK;
}

/* Settings of one iteration shared by its class steps. */
typedef struct iter_cfg {
    uint64_t it;
    apd_palette_fwd_opts fo;
    apd_dsa_opts dcfg;
    float pscale;
    float anneal; /* stored: the share of the stored images in what the loss sees (1: all) */
    float overshoot; /* stored: the weight of x - clip(x) in what the loss sees (--loss-range) */
} iter_cfg;

/* The DM loss of class cls and its backward: the class's pixel gradients into s->grad and,
 * autopalette, its palette-network gradient; both figures into the class's slot of s->xc
 * (loss, then the gradient). The network of the iteration is initialised. */
/* Softmax cross-entropy of n rows of logits for class cls: the sum into *sum (NULL: not
 * computed) and, if dl, d (scale x sum) / d logits into dl. */
static void xent_rows(const float *logits, float *dl, uint32_t n, uint32_t K, uint32_t cls, float scale, double *sum)
{
    for (uint32_t i = 0; i < n; i++) {
        const float *lg = logits + (size_t)i * K;
        float mx = lg[0];
        for (uint32_t k = 1; k < K; k++) mx = lg[k] > mx ? lg[k] : mx;
        double z = 0;
        for (uint32_t k = 0; k < K; k++) z += exp((double)lg[k] - mx);
        if (sum) *sum += log(z) - ((double)lg[cls] - mx);
        if (dl)
            for (uint32_t k = 0; k < K; k++)
                dl[(size_t)i * K + k] = scale * (float)(exp((double)lg[k] - mx) / z - (k == cls ? 1.0 : 0.0));
    }
}

/* opts.ce_weight: s->d_aug += d (ce_weight x mean cross-entropy of class cls) / d syn_aug under
 * the teacher. Each image's term depends on its own logits only, so chunks of max_batch give
 * the same result as one pass. */
static apd_status class_aware_backward(dm_state *s, uint32_t cls, uint32_t n)
{
    uint32_t K = s->x->n_classes, mb = s->max_batch ? s->max_batch : 1;
    float scale = s->ce_w / (float)n;
    for (uint32_t i = 0; i < n; i += mb) {
        uint32_t m = n - i < mb ? n - i : mb;
        APD_TRY(apd_convnet_forward(s->teacher, s->t_logits, NULL, s->syn_aug + (size_t)i * s->img, m));
        xent_rows(s->t_logits, s->t_dl, m, K, cls, scale, NULL);
        APD_TRY(apd_convnet_backward(s->teacher, s->d_aug + (size_t)i * s->img, s->t_dl, NULL, m, 0));
    }
    return APD_OK;
}

/* The teacher's mean cross-entropy of all N images imgs ([N, img], normalised; image i is of
 * class i / ipc), no augmentation: every process computes every class. */
static apd_status teacher_xent(dm_state *s, const float *imgs, double *out)
{
    uint32_t K = s->x->n_classes, mb = s->max_batch ? s->max_batch : 1;
    double sum = 0;
    for (uint64_t cls = 0; cls < K; cls++)
        for (uint64_t i = 0; i < s->ipc; i += mb) {
            uint32_t m = (uint32_t)(s->ipc - i < mb ? s->ipc - i : mb);
            APD_TRY(apd_convnet_forward_nograd(s->teacher, s->t_logits, NULL, imgs + (cls * s->ipc + i) * s->img, m));
            xent_rows(s->t_logits, NULL, m, K, (uint32_t)cls, 0.0f, &sum);
        }
    *out = sum / (double)s->N;
    return APD_OK;
}

static apd_status class_step(dm_state *s, const iter_cfg *ic, uint32_t cls, apd_err *err)
{
    apd_distill_ctx *x = s->x;
    size_t img = s->img;
    uint32_t ipc = (uint32_t)s->ipc;
    uint64_t it = ic->it;
    apd_status st;
    uint32_t b;
    APD_TRY(real_batch(s, cls, stream_ic(ST_REAL, it, cls), &b, err));
    apd_dsa_sample smp;
    apd_dsa_params dp;
    st = apd_dsa_draw(&dp, &smp, 1, &ic->dcfg, APD_DSA_SIAMESE, x->seed, stream_ic(ST_DSA, it, cls), b, x->h, x->w);
    if (st != APD_OK) return apd__err_set(err, st, "distill: DSA draw failed");
    /* real side: forward only */
    APD_TRY(apd_dsa_forward(s->real_aug, s->real_f, &dp, b, x->c, x->h, x->w));
    /* no gradient flows through the real side: bf16 GEMMs where the CPU has them */
    APD_TRY(apd_convnet_forward_nograd_ex(s->net, NULL, s->emb_r, s->real_aug, b, APD_NN_FWD_BF16));
    apd_mean_rows_forward(s->mean_r, s->emb_r, b, s->D);
    /* synthetic side */
    float *xs = s->syn + (size_t)cls * ipc * img;
    const float *q = xs;
    if (s->stored) {
        /* forward: what will be stored; backward: straight through to the pixels */
        APD_TRY(quantize_class(s, xs, cls, err));
        q = s->syn_q;
        if (ic->overshoot > 0.0f) add_overshoot(s, xs, s->syn_q, ipc, ic->overshoot);
        if (ic->anneal < 1.0f) { /* --anneal: part float, part stored */
            float a = ic->anneal;
            for (size_t j = 0; j < (size_t)ipc * img; j++) s->syn_q[j] = a * s->syn_q[j] + (1.0f - a) * xs[j];
        }
    } else if (s->palette) {
        st = apd_palette_forward(&s->pnet, s->ws, s->syn_q, xs, ipc, x->h, x->w, &ic->fo);
        if (st != APD_OK)
            return apd__err_set(err, st, "distill: palette forward failed at iteration %llu (%s)",
                                (unsigned long long)it, apd_strerror(st));
        q = s->syn_q;
    }
    APD_TRY(apd_dsa_forward(s->syn_aug, q, &dp, ipc, x->c, x->h, x->w));
    APD_TRY(syn_forward(s, ipc));
    apd_mean_rows_forward(s->mean_s, s->emb_s, ipc, s->D);
    float *slot = s->xc + (size_t)cls * s->xc_unit;
    apd_sqdist_forward(&slot[0], s->mean_r, s->mean_s, s->D);
    /* backward: d mean_s = -2 (mean_r - mean_s); d e_s[i] = d mean_s / ipc */
    float *dmean = s->mean_r; /* reuse: mean_r no longer needed after this */
    for (uint32_t d = 0; d < s->D; d++) dmean[d] = -2.0f * (s->mean_r[d] - s->mean_s[d]);
    memset(s->d_emb, 0, (size_t)ipc * s->D * sizeof(float));
    apd_mean_rows_backward(s->d_emb, dmean, ipc, s->D);
    memset(s->d_aug, 0, (size_t)ipc * img * sizeof(float));
    APD_TRY(syn_backward(s, ipc));
    if (s->teacher) APD_TRY(class_aware_backward(s, cls, ipc));
    float *gs = s->grad + (size_t)cls * ipc * img;
    if (!s->palette) return apd_dsa_backward(gs, s->d_aug, &dp, ipc, x->c, x->h, x->w);
    memset(s->d_q, 0, (size_t)ipc * img * sizeof(float));
    APD_TRY(apd_dsa_backward(s->d_q, s->d_aug, &dp, ipc, x->c, x->h, x->w));
    /* this class's palette gradient alone; the classes' gradients are summed in class order
     * afterwards (the same sum whichever process computed each class) */
    apd_palette_net_zero_grad(&s->pnet);
    st = apd_palette_backward(&s->pnet, s->ws, gs, s->d_q, NULL, xs, ipc, x->h, x->w, ic->pscale);
    if (st != APD_OK) return apd__err_set(err, st, "distill: palette backward failed");
    memcpy(slot + 1, s->pnet.grads, s->pnet.n_params * sizeof(float));
    return APD_OK;
}

/* Every rank's status, then every class's slot of buf (unit bytes each) on every rank. */
static apd_status gather_classes(dm_state *s, void *buf, size_t unit, apd_status st, apd_err *err)
{
    APD_TRY(apd__dcomm_agree(s->x, st, err));
    return apd__dcomm_classes(s->x, buf, unit, err);
}

/* The colour-loss subset: a detached copy of n_sub synthetic images drawn from (seed, it),
 * taken before the pixel step. In a class-parallel run each rank copies the images of its
 * classes, packed rank by rank, and the exchange completes the subset everywhere. */
static apd_status take_subset(dm_state *s, uint64_t it, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    size_t img = s->img;
    apd__rng r;
    apd__rng_seed(&r, x->seed, ST_SUBSET | it);
    uint64_t *perm = s->scratch_idx; /* N <= scratch size (checked at setup) */
    for (uint32_t i = 0; i < s->N; i++) perm[i] = i;
    for (uint32_t t = 0; t < s->n_sub; t++) {
        uint64_t j = t + apd__rng_below(&r, s->N - t);
        uint64_t tmp = perm[t];
        perm[t] = perm[j];
        perm[j] = tmp;
    }
    if (x->size == 1) {
        for (uint32_t t = 0; t < s->n_sub; t++)
            memcpy(s->x_sub + (size_t)t * img, s->syn + (size_t)perm[t] * img, img * sizeof(float));
        return APD_OK;
    }
    /* packed position of subset image t: after every image of lower ranks, then in t order */
    for (uint32_t q = 0; q <= x->size; q++) s->sub_off[q] = 0;
    for (uint32_t t = 0; t < s->n_sub; t++) s->sub_off[s->cls_owner[perm[t] / s->ipc] + 1]++;
    for (uint32_t q = 0; q < x->size; q++) s->sub_off[q + 1] += s->sub_off[q];
    for (uint32_t t = 0; t < s->n_sub; t++) {
        uint32_t q = s->cls_owner[perm[t] / s->ipc];
        s->sub_pos[t] = (uint32_t)s->sub_off[q]++;
    }
    for (uint32_t q = x->size; q > 0; q--) s->sub_off[q] = s->sub_off[q - 1];
    s->sub_off[0] = 0;
    for (uint32_t t = 0; t < s->n_sub; t++)
        if (s->cls_owner[perm[t] / s->ipc] == x->rank)
            memcpy(s->x_pack + (size_t)s->sub_pos[t] * img, s->syn + (size_t)perm[t] * img, img * sizeof(float));
    for (uint32_t q = 0; q <= x->size; q++) s->sub_off[q] *= img * sizeof(float);
    APD_TRY(apd__dcomm_exchange(x, s->x_pack, s->sub_off, err));
    for (uint32_t t = 0; t < s->n_sub; t++)
        memcpy(s->x_sub + (size_t)t * img, s->x_pack + (size_t)s->sub_pos[t] * img, img * sizeof(float));
    return APD_OK;
}

static apd_status iteration(dm_state *s, uint64_t it, iter_out *out, apd_err *err)
{
    const apd_distill_opts *o = s->o;
    apd_distill_ctx *x = s->x;
    size_t img = s->img, cls_floats = (size_t)s->ipc * img;
    apd_status st = APD_OK;

    if (s->use_pool) APD_TRY(apd__netpool_net(&s->npool, s->net, x->seed, it, &out->net_age));
    else apd_convnet_init(s->net, apd__mix64(x->seed ^ (ST_NET | it)), 0);
    memset(s->grad + x->cls_lo * cls_floats, 0, (x->cls_hi - x->cls_lo) * cls_floats * sizeof(float));
    iter_cfg ic;
    ic.it = it;
    apd_palette_fwd_opts_default(&ic.fo);
    ic.fo.temperature = temperature_at(s, it);
    ic.fo.straight_through = (o->remedy & APD_REMEDY_STRAIGHT) ? 1 : 0;
    ic.pscale = (o->remedy & APD_REMEDY_TASK_SCALE) ? o->task_scale : 1.0f;
    ic.anneal = 1.0f;
    /* the weight of x - clip(x) in what the loss sees (docs/distill.md, --loss-range) */
    switch (apd__distill_loss_range(o)) {
    case APD_LOSS_RANGE_FLOAT: ic.overshoot = 1.0f; break;
    case APD_LOSS_RANGE_ANNEAL: ic.overshoot = (float)(1.0 - (double)(it + 1) / (double)o->iters); break;
    default: ic.overshoot = 0.0f; break;
    }
    if (o->anneal > 0.0f) {
        double a = (double)(it + 1) / ((double)o->anneal * o->iters);
        ic.anneal = a < 1.0 ? (float)a : 1.0f;
    }
    apd_dsa_opts_default(&ic.dcfg);
    ic.dcfg.strategy = o->dsa_strategy;
    ic.dcfg.align_corners = o->dsa_align_corners;

    for (uint32_t cls = x->cls_lo; cls < x->cls_hi && st == APD_OK; cls++) st = class_step(s, &ic, cls, err);
    APD_TRY(gather_classes(s, s->xc, s->xc_unit * sizeof(float), st, err));
    double loss = 0;
    for (uint32_t cls = 0; cls < x->n_classes; cls++) loss += s->xc[(size_t)cls * s->xc_unit];
    if (!isfinite(loss))
        return apd__err_set(err, APD_ENUMERIC, "distill: DM loss is not finite at iteration %llu",
                            (unsigned long long)it);
    out->loss = loss;

    if (s->palette) {
        apd_palette_net_zero_grad(&s->pnet);
        float *g = s->pnet.grads;
        for (uint32_t cls = 0; cls < x->n_classes; cls++) {
            const float *gc = s->xc + (size_t)cls * s->xc_unit + 1;
            for (size_t i = 0; i < s->pnet.n_params; i++) g[i] += gc[i];
        }
        APD_TRY(take_subset(s, it, err));
    }

    /* pixel SGD (PyTorch semantics, no weight decay) on this process's classes */
    apd_sgd_update(s->syn + x->cls_lo * cls_floats, s->mom + x->cls_lo * cls_floats,
                   s->grad + x->cls_lo * cls_floats, (x->cls_hi - x->cls_lo) * cls_floats, x->lr_img_used,
                   o->momentum_img, 0.0f, !s->mom_init);
    s->mom_init = 1;
    if (apd__distill_pixel_range(o) == APD_PIXELS_CLAMP)
        clamp_pixels(s, s->syn + x->cls_lo * cls_floats, (x->cls_hi - x->cls_lo) * s->ipc);

    if (s->palette) {
        s->cc.fwd.temperature = ic.fo.temperature;
        st = apd_palette_color_step(&s->pnet, s->wsc, &out->pl, s->x_sub, s->n_sub, x->h, x->w, &s->cc,
                                    apd__mix64(x->seed ^ 0x636f6c6f72ull), it);
        if (st != APD_OK) return apd__err_set(err, st, "distill: colour losses failed (%s)", apd_strerror(st));
        apd_palette_stats_compute(&out->ps, NULL, s->wsc, s->x_sub);
        apd_palette_net_step(&s->pnet, &s->psgd);
    }
    if (s->use_pool) {
        /* every process trains the same queue (nothing in it depends on the classes); the
         * agreement keeps the processes in step if one of them fails */
        st = apd__netpool_train(&s->npool, x->src, (const float(*)[256])s->lut, x->seed, it, &out->pool_xent, err);
        APD_TRY(apd__dcomm_agree(x, st, err));
    }
    return APD_OK;
}

/* ---- evaluation loss (fixed nets, no augmentation) ----------------------------------------- */

/* DM loss of images `imgs` ([N, img], normalised) against fixed real batches with
 * n_nets fixed networks, no DSA: comparable across the run (the training loss uses a fresh
 * network and a fresh augmentation every iteration and is noisy). Each process computes its
 * classes; the sum runs over nets, then classes, in that order everywhere. st_in: a failure
 * of the caller on this process, reported to the others here (nothing is computed). */
static apd_status eval_loss(dm_state *s, const float *imgs, uint32_t n_nets, double *out, apd_status st_in,
                            apd_err *err)
{
    apd_distill_ctx *x = s->x;
    apd_status st = st_in;
    float *lc = st == APD_OK ? malloc((size_t)x->n_classes * n_nets * sizeof *lc) : NULL;
    if (st == APD_OK && !lc) st = apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    for (uint32_t k = 0; k < n_nets && st == APD_OK; k++) {
        apd_convnet_init(s->net, apd__mix64(x->seed ^ (ST_EVAL | k)), 0);
        for (uint32_t cls = x->cls_lo; cls < x->cls_hi && st == APD_OK; cls++) {
            uint32_t b;
            st = real_batch(s, cls, stream_ic(ST_EVALREAL, k, cls), &b, err);
            if (st != APD_OK) break;
            st = apd_convnet_forward_nograd(s->net, NULL, s->emb_r, s->real_f, b);
            if (st != APD_OK) break;
            apd_mean_rows_forward(s->mean_r, s->emb_r, b, s->D);
            st = apd_convnet_forward_nograd(s->net, NULL, s->emb_s, imgs + (size_t)cls * s->ipc * s->img, (uint32_t)s->ipc);
            if (st != APD_OK) break;
            apd_mean_rows_forward(s->mean_s, s->emb_s, s->ipc, s->D);
            apd_sqdist_forward(&lc[(size_t)cls * n_nets + k], s->mean_r, s->mean_s, s->D);
        }
    }
    if (st != APD_OK && st != st_in && err && err->code != st)
        apd__err_set(err, st, "distill: evaluation loss: %s", apd_strerror(st));
    st = gather_classes(s, lc, n_nets * sizeof *lc, st, err);
    double total = 0;
    for (uint32_t k = 0; k < n_nets && st == APD_OK; k++)
        for (uint32_t cls = 0; cls < x->n_classes; cls++) total += lc[(size_t)cls * n_nets + k];
    free(lc);
    *out = total / n_nets;
    return st;
}

/* ---- checkpoint ----------------------------------------------------------------------------- */

#define CKPT_MAGIC "APDCKPT2"
#define CKPT_PARTS 9 /* at most: loss, ids, pixels, momenta, palette net x2, queue x3 */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Fingerprint of everything that must match for a resume to reach the same bytes. */
static uint64_t fingerprint(const dm_state *s, const uint64_t *src)
{
    const apd_distill_opts *o = s->o;
    apd_distill_opts c = *o;
    c.checkpoint_every = 0;
    c.checkpoint_path = NULL;
    c.resume_path = NULL;
    c.log_every = 0;
    c.stop_after = 0;
    uint64_t h = 0xcbf29ce484222325ull;
    /* hash field by field (no padding bytes) */
    h = fnv(h, &c.method, sizeof c.method);
    h = fnv(h, &s->x->init, sizeof s->x->init);
    h = fnv(h, &c.ipc, sizeof c.ipc);
    h = fnv(h, &c.colors, sizeof c.colors);
    h = fnv(h, &c.budget, sizeof c.budget);
    h = fnv(h, &c.quantizer, sizeof c.quantizer);
    h = fnv(h, &c.iters, sizeof c.iters);
    h = fnv(h, &c.batch_real, sizeof c.batch_real);
    float fl[] = {c.lr_img, c.momentum_img, c.lr_palette, c.momentum_palette, c.wd_palette, c.w_max,
                  c.w_balance, c.w_align, c.w_conf, c.align_ratio, c.task_scale, c.temp_start,
                  c.temp_end};
    h = fnv(h, fl, sizeof fl);
    uint32_t u[] = {(uint32_t)c.palette_mode, (uint32_t)apd__distill_lr_rule(&c),
                    (uint32_t)apd__distill_pixel_range(&c), c.color_subset, c.remedy, c.warmup_steps, c.dsa_strategy, (uint32_t)c.dsa_align_corners,
                    s->x->threads, s->x->depth, s->max_batch};
    h = fnv(h, u, sizeof u);
    /* hashed only when not the default, so checkpoints of absolute-input runs stay valid */
    if (c.palette_input != APD_PALETTE_INPUT_ABSOLUTE) {
        uint32_t pin = (uint32_t)c.palette_input;
        h = fnv(h, &pin, sizeof pin);
    }
    h = fnv(h, &c.seed, sizeof c.seed);
    if (c.net_pool) { /* hashed only when on: checkpoints without the queue keep their fingerprint */
        uint32_t np[] = {c.net_pool, c.net_pool_every, c.net_pool_steps, c.net_pool_batch};
        h = fnv(h, np, sizeof np);
    }
    if (c.anneal > 0.0f) h = fnv(h, &c.anneal, sizeof c.anneal); /* hashed only when on, likewise */
    if (s->ce_w > 0.0f) { /* likewise: the values in effect, so an explicit 10 and 300 hash as the default */
        h = fnv(h, &s->ce_w, sizeof s->ce_w);
        h = fnv(h, &s->ce_steps, sizeof s->ce_steps);
    }
    if (apd__distill_stored(&c) && apd__distill_loss_range(&c) != APD_LOSS_RANGE_STORED) {
        uint32_t lr = (uint32_t)apd__distill_loss_range(&c); /* later rules: older checkpoints are refused */
        h = fnv(h, &lr, sizeof lr);
    }
    char hex[17];
    apd_distill_source_hash(s->x->src, hex);
    h = fnv(h, hex, 16);
    h = fnv(h, src, (size_t)s->N * sizeof *src);
    return h;
}

static int wr(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n; }
static int rd(FILE *f, void *p, size_t n) { return n == 0 || fread(p, 1, n, f) == n; }

/* Checkpoint file (host byte order for the tensors; read back only by the same build):
 *    0  8  magic "APDCKPT2"          8  8  fingerprint of options and data (must match)
 *   16  8  next iteration           24  8  N synthetic images   32  8  floats per image
 *   40  4  pixel momentum started   44  4  palette-net params   48  4  its momentum started
 *   52  8  seed                     60  4  CRC-32C of bytes [0, 60) and of everything after 64
 *   64  8  loss of iteration 0 (double), then N source ids (u64), N*img pixels, N*img pixel
 *          momenta (float), for autopalette the palette-net params and their momenta, and
 *          with opts.net_pool the network queue: networks pushed and each slot's SGD steps
 *          (u64 x (1 + net_pool)), each slot's params, each slot's momenta (float x
 *          net_pool x params each); nothing after that.
 * The CRC makes a damaged checkpoint an error instead of a silently different resumed run;
 * "APDCKPT1" files (no CRC) are refused with a message. */
typedef struct ckpt_part {
    void *p;
    size_t n;
} ckpt_part;

static size_t ckpt_parts(dm_state *s, uint64_t *src, double *lf, ckpt_part out[CKPT_PARTS])
{
    size_t k = 0, img = (size_t)s->N * s->img * sizeof(float);
    out[k++] = (ckpt_part){lf, sizeof *lf};
    out[k++] = (ckpt_part){src, (size_t)s->N * sizeof *src};
    out[k++] = (ckpt_part){s->syn, img};
    out[k++] = (ckpt_part){s->mom, img};
    if (s->palette) {
        out[k++] = (ckpt_part){s->pnet.params, s->pnet.n_params * sizeof(float)};
        out[k++] = (ckpt_part){s->pnet.mom, s->pnet.n_params * sizeof(float)};
    }
    if (s->use_pool) {
        void *p[3];
        size_t n[3];
        size_t m = apd__netpool_parts(&s->npool, p, n);
        for (size_t i = 0; i < m; i++) out[k++] = (ckpt_part){p[i], n[i]};
    }
    return k;
}

static apd_status ckpt_save(const dm_state *s, const uint64_t *src, uint64_t next_iter, apd_err *err)
{
    const char *path = s->o->checkpoint_path;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return apd__err_set(err, APD_ENOMEM, "checkpoint: out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        apd_status st = apd__err_sys(err, errno, tmp, "open checkpoint");
        free(tmp);
        return st;
    }
    uint8_t hdr[64] = {0};
    memcpy(hdr, CKPT_MAGIC, 8);
    apd__st64(hdr + 8, fingerprint(s, src));
    apd__st64(hdr + 16, next_iter);
    apd__st64(hdr + 24, s->N);
    apd__st64(hdr + 32, s->img);
    apd__st32(hdr + 40, (uint32_t)s->mom_init);
    apd__st32(hdr + 44, s->palette ? (uint32_t)s->pnet.n_params : 0);
    apd__st32(hdr + 48, s->palette ? (uint32_t)s->pnet.mom_init : 0);
    apd__st64(hdr + 52, s->x->seed); /* RNG: every draw derives from (seed, iteration) */
    double lf = s->loss_first;
    ckpt_part parts[CKPT_PARTS];
    size_t np = ckpt_parts((dm_state *)(uintptr_t)s, (uint64_t *)(uintptr_t)src, &lf, parts);
    uint32_t crc = apd_crc32c(0, hdr, 60);
    for (size_t i = 0; i < np; i++) crc = apd_crc32c(crc, parts[i].p, parts[i].n);
    apd__st32(hdr + 60, crc);
    int ok = wr(f, hdr, sizeof hdr);
    for (size_t i = 0; i < np && ok; i++) ok = wr(f, parts[i].p, parts[i].n);
    ok = (fflush(f) == 0) && ok;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        apd_status st = apd__err_sys(err, errno, path, "write checkpoint");
        remove(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return APD_OK;
}

/* Loads the checkpoint into s (syn, mom, palette) and src; *next_iter. */
static apd_status ckpt_load(dm_state *s, uint64_t *src, uint64_t *next_iter, apd_err *err)
{
    const char *path = s->o->resume_path;
    FILE *f = fopen(path, "rb");
    if (!f) return apd__err_sys(err, errno, path, "open checkpoint");
    uint8_t hdr[64];
    double lf;
    apd_status st = APD_OK;
    if (!rd(f, hdr, sizeof hdr) || memcmp(hdr, CKPT_MAGIC, 8) != 0) {
        st = memcmp(hdr, "APDCKPT1", 8) == 0
                 ? apd__err_set(err, APD_EVERSION, "%s: checkpoint of an older libapd (no checksum): start the run "
                                                   "again without --resume", path)
                 : apd__err_set(err, APD_EMAGIC, "%s: not a libapd distillation checkpoint", path);
        goto done;
    }
    if (apd__ld64(hdr + 24) != s->N || apd__ld64(hdr + 32) != s->img ||
        apd__ld32(hdr + 44) != (s->palette ? (uint32_t)s->pnet.n_params : 0)) {
        st = apd__err_set(err, APD_EMISMATCH, "%s: checkpoint shapes differ from this run's", path);
        goto done;
    }
    ckpt_part parts[CKPT_PARTS];
    size_t np = ckpt_parts(s, src, &lf, parts);
    uint32_t crc = apd_crc32c(0, hdr, 60);
    int ok = 1;
    for (size_t i = 0; i < np && ok; i++) {
        ok = rd(f, parts[i].p, parts[i].n);
        crc = apd_crc32c(crc, parts[i].p, parts[i].n);
    }
    if (!ok) {
        st = apd__err_set(err, APD_ETRUNC, "%s: truncated checkpoint (or one made with other options, e.g. "
                                           "--net-pool)", path);
        goto done;
    }
    if (fgetc(f) != EOF) {
        st = apd__err_set(err, APD_ECORRUPT, "%s: bytes after the end of the checkpoint (or one made with other "
                                             "options, e.g. --net-pool)", path);
        goto done;
    }
    if (crc != apd__ld32(hdr + 60)) {
        st = apd__err_set(err, APD_ECHECKSUM, "%s: checkpoint checksum mismatch (the file is damaged)", path);
        goto done;
    }
    if (apd__ld64(hdr + 8) != fingerprint(s, src)) {
        st = apd__err_set(err, APD_EMISMATCH,
                          "%s: checkpoint was made with other options, data or thread count", path);
        goto done;
    }
    *next_iter = apd__ld64(hdr + 16);
    s->mom_init = (int)apd__ld32(hdr + 40);
    s->loss_first = lf;
    if (s->palette) s->pnet.mom_init = (int)apd__ld32(hdr + 48);
    if (*next_iter > s->o->iters)
        st = apd__err_set(err, APD_EMISMATCH, "%s: checkpoint is past --iters", path);
done:
    fclose(f);
    return st;
}

/* Class-parallel checkpoints: every class's state is gathered, rank 0 writes the file (the
 * single-process format) and its outcome is every rank's. */
static apd_status ckpt_write(dm_state *s, const uint64_t *src, uint64_t next_iter, apd_err *err)
{
    size_t unit = (size_t)s->ipc * s->img * sizeof(float);
    APD_TRY(gather_classes(s, s->syn, unit, APD_OK, err));
    APD_TRY(apd__dcomm_classes(s->x, s->mom, unit, err));
    apd_status st = s->x->rank == 0 ? ckpt_save(s, src, next_iter, err) : APD_OK;
    return apd__dcomm_agree(s->x, st, err);
}

/* Rank 0 reads the checkpoint and sends its state to the others. */
static apd_status ckpt_resume(dm_state *s, uint64_t *src, uint64_t *next_iter, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    APD_TRY(apd__dcomm_agree(x, x->rank == 0 ? ckpt_load(s, src, next_iter, err) : APD_OK, err));
    if (x->size == 1) return APD_OK;
    struct {
        uint64_t next;
        double loss_first;
        int32_t mom_init, pnet_mom_init;
    } sc = {*next_iter, s->loss_first, s->mom_init, s->palette ? s->pnet.mom_init : 0};
    APD_TRY(apd__dcomm_bcast0(x, &sc, sizeof sc, err));
    *next_iter = sc.next;
    s->loss_first = sc.loss_first;
    s->mom_init = sc.mom_init;
    if (s->palette) s->pnet.mom_init = sc.pnet_mom_init;
    double lf;
    ckpt_part parts[CKPT_PARTS];
    size_t np = ckpt_parts(s, src, &lf, parts);
    for (size_t i = 1; i < np; i++) APD_TRY(apd__dcomm_bcast0(x, parts[i].p, parts[i].n, err));
    return APD_OK;
}

/* ---- output records ------------------------------------------------------------------------ */

/* Compact indices to the colours used (first-use order of palette entries kept by index). */
static uint32_t compact(uint8_t *pal, uint8_t *idx, uint32_t k, uint32_t c, size_t p)
{
    int map[APD_MAX_COLORS];
    for (uint32_t j = 0; j < APD_MAX_COLORS; j++) map[j] = -1;
    uint8_t used[APD_MAX_COLORS] = {0};
    for (size_t i = 0; i < p; i++) used[idx[i]] = 1;
    uint8_t tmp[APD_MAX_COLORS * 3];
    uint32_t n = 0;
    for (uint32_t j = 0; j < k; j++)
        if (used[j]) {
            map[j] = (int)n;
            memcpy(tmp + n * c, pal + j * c, c);
            n++;
        }
    memset(pal, 0, (size_t)k * c);
    memcpy(pal, tmp, (size_t)n * c);
    for (size_t i = 0; i < p; i++) idx[i] = (uint8_t)map[idx[i]];
    return n;
}

typedef struct rec_ctx {
    const dm_state *s;
    apd_distill_result *res;
    apd_status *st; /* per image */
} rec_ctx;

static void rec_image(void *vctx, uint32_t i, uint32_t thread)
{
    const rec_ctx *cx = vctx;
    const dm_state *s = cx->s;
    const apd_distill_ctx *x = s->x;
    size_t p = (size_t)x->h * x->w;
    cx->st[i] = quantize_syn(s, s->syn + (size_t)i * s->img, i, s->qscr + (size_t)thread * s->qscr_unit,
                             cx->res->palettes + (size_t)i * x->k * x->c, cx->res->indices + (size_t)i * p,
                             &cx->res->k_used[i]);
}

static apd_status make_records(dm_state *s, apd_distill_result *res, apd_err *err)
{
    apd_distill_ctx *x = s->x;
    const apd_distill_opts *o = s->o;
    size_t img = s->img, p = (size_t)x->h * x->w;
    uint64_t N = s->N;
    int fail = 0;
    if (!x->palette_out) {
        res->kind = APD_KIND_DIRECT;
        res->pixels = xmalloc(N, img, &fail);
        if (fail) return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
        for (uint64_t i = 0; i < N; i++) syn_to_u8(x, s->syn + i * img, res->pixels + i * img);
        return APD_OK;
    }
    res->kind = APD_KIND_PALETTE;
    res->k = x->k;
    res->palettes = xmalloc(N, (size_t)x->k * x->c, &fail);
    res->indices = xmalloc(N, p, &fail);
    res->k_used = xmalloc(N, sizeof(uint32_t), &fail);
    if (fail) return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    if (s->palette) {
        apd_palette_fwd_opts fo;
    apd_palette_fwd_opts_default(&fo);
        fo.temperature = temperature_at(s, o->iters);
        for (uint32_t cls = 0; cls < x->n_classes; cls++) {
            float *xs = s->syn + (size_t)cls * s->ipc * img;
            apd_status st = apd_palette_forward(&s->pnet, s->ws, NULL, xs, (uint32_t)s->ipc, x->h, x->w, &fo);
            if (st != APD_OK) return apd__err_set(err, st, "distill: final palette forward failed");
            for (uint32_t t = 0; t < s->ipc; t++) {
                uint64_t i = (uint64_t)cls * s->ipc + t;
                uint8_t *pal = res->palettes + i * x->k * x->c;
                uint8_t *idx = res->indices + i * p;
                APD_TRY(apd_palette_hard(pal, idx, NULL, s->ws, t, x->mean, x->std));
                res->k_used[i] = compact(pal, idx, x->k, x->c, p);
            }
        }
    } else {
        /* the quantizer of the loop (stored palettes), image by image on the pool: each
         * image's seed is its index, so the bytes do not depend on the threads */
        apd_status *st = malloc((size_t)N * sizeof *st);
        if (!st) return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
        rec_ctx rc = {s, res, st};
        apd_pool_run(s->pool, (uint32_t)N, rec_image, &rc);
        for (uint64_t i = 0; i < N; i++)
            if (st[i] != APD_OK) {
                apd_status bad = st[i];
                free(st);
                return apd__err_set(err, bad, "distill: quantizing synthetic image %llu failed (%s)",
                                    (unsigned long long)i, apd_strerror(bad));
            }
        free(st);
    }
    apd__distill_colors_stat(x, res->k_used, N);
    return APD_OK;
}

/* Decode the records back to normalised floats (for the evaluation loss of what is stored). */
static void decode_records(const dm_state *s, const apd_distill_result *res, float *out)
{
    const apd_distill_ctx *x = s->x;
    size_t p = (size_t)x->h * x->w;
    for (uint64_t i = 0; i < s->N; i++) {
        float *o = out + i * s->img;
        if (res->kind == APD_KIND_DIRECT) {
            to_float(s, o, res->pixels + i * s->img);
        } else {
            palette_to_float(s, res->palettes + i * x->k * x->c, res->indices + i * p, o);
        }
    }
}

/* ---- denormals ----------------------------------------------------------------------------- */

/* Flush denormals to zero (MXCSR FTZ | DAZ) on the calling thread and on every pool thread.
 * A saturated softmax (palette collapse) and exploding images produce denormal floats that
 * make x86 arithmetic ~100x slower (measured: one AutoPalette iteration 49 s -> 353 s).
 * Deterministic either way; restored when the run ends. */
static void ftz_task(void *ctx, uint32_t task, uint32_t thread)
{
    (void)task;
    (void)thread;
    unsigned on = *(const unsigned *)ctx;
    unsigned csr = _mm_getcsr();
    _mm_setcsr(on ? (csr | 0x8040u) : (csr & ~0x8040u));
}

static void set_ftz(apd_pool *pool, unsigned on)
{
    ftz_task(&on, 0, 0);
    if (pool) apd_pool_run(pool, apd_pool_threads(pool), ftz_task, &on);
}

/* The rest of a log line after a palette-only phase (k-means init, warm-up): the state of
 * the last forward of all synthetic images on s->ws. */
static void palette_state_text(char *buf, size_t len, const dm_state *s)
{
    apd_palette_stats ps;
    apd_palette_stats_compute(&ps, NULL, s->ws, s->syn);
    snprintf(buf, len, "colours/img median %.1f (min %u max %u) soft mse %.4f hard mse %.4f gap %.4f maxp %.3f",
             ps.colors_median, ps.colors_min, ps.colors_max, ps.soft_mse, ps.hard_mse, ps.gap_mse,
             ps.max_prob_mean);
}

/* ---- run: setup ------------------------------------------------------------------------------ */

#define OOM(err) apd__err_set((err), APD_ENOMEM, "distill: out of memory")

/* The normalisation table, the draw scratch (the largest class's ids, or the N synthetic
 * indices of the colour-loss subset) and the synthetic set. */
static apd_status setup_classes(dm_state *s, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    int fail = 0;
    apd__lut_build(s->lut, x->c, x->mean, x->std);
    uint64_t max_n = s->N;
    for (uint32_t c = 0; c < x->n_classes; c++) {
        uint64_t m = apd_distill_source_class_count(x->src, c);
        if (m > max_n) max_n = m;
    }
    s->scratch_idx = xmalloc(max_n, sizeof(uint64_t), &fail);
    s->img8 = xmalloc(s->img, 1, &fail);
    s->syn = xmalloc(s->N * s->img, sizeof(float), &fail);
    s->mom = xmalloc(s->N * s->img, sizeof(float), &fail);
    s->grad = xmalloc(s->N * s->img, sizeof(float), &fail);
    if (fail) return OOM(err);
    memset(s->mom, 0, s->N * s->img * sizeof(float));
    return APD_OK;
}

/* The thread pool (denormals flushed on every thread from here on), the ConvNet and the
 * buffers of one class step. The net's batch (max_batch) is max(batch_real, images per class)
 * cut to what fits in APD_CONVNET_ACT_BUDGET (at 128 px about 30 images): larger real batches
 * are embedded in chunks, larger synthetic sets back-propagated in chunks (syn_backward). */
static apd_status setup_net(dm_state *s, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    const apd_distill_opts *o = s->o;
    int fail = 0;
    apd_status st = apd_pool_create(&s->pool, x->threads);
    if (st != APD_OK) return apd__err_set(err, st, "distill: thread pool: %s", apd_strerror(st));
    s->csr_saved = _mm_getcsr();
    set_ftz(s->pool, 1);
    uint32_t want = o->batch_real > s->ipc ? o->batch_real : (uint32_t)s->ipc;
    apd_convnet_opts cfg;
    apd_convnet_opts_default(&cfg, x->c, x->h, x->w, x->n_classes);
    cfg.depth = x->depth;
    cfg.pool = s->pool;
    s->max_batch = apd_convnet_batch_for_budget(&cfg, o->act_budget ? (size_t)o->act_budget : APD_CONVNET_ACT_BUDGET,
                                                want);
    cfg.max_batch = s->max_batch ? s->max_batch : 1; /* 0: a bad shape; create says which */
    st = apd_convnet_create(&s->net, &cfg);
    if (st != APD_OK)
        return apd__err_set(err, st, "distill: ConvNetD%u for %ux%ux%u: %s", x->depth, x->c, x->h, x->w,
                            apd_strerror(st));
    s->D = (uint32_t)apd_convnet_embed_dim(s->net);
    if (s->use_pool) {
        st = apd__netpool_create(&s->npool, o, &cfg, o->act_budget ? o->act_budget : APD_CONVNET_ACT_BUDGET, s->img,
                                 err);
        if (st != APD_OK) return st;
    }
    s->ce_w = apd_distill_ce_weight_in_effect(o);
    s->ce_steps = s->ce_w > 0.0f ? apd_distill_ce_teacher_steps_in_effect(o, x->src->n) : 0;
    if (s->ce_w > 0.0f) {
        st = apd_convnet_create(&s->teacher, &cfg);
        if (st != APD_OK) return apd__err_set(err, st, "distill: teacher ConvNet: %s", apd_strerror(st));
        s->t_logits = xmalloc((size_t)cfg.max_batch * x->n_classes, sizeof(float), &fail);
        s->t_dl = xmalloc((size_t)cfg.max_batch * x->n_classes, sizeof(float), &fail);
        if (fail) return OOM(err);
        st = apd__netpool_trained_net(&cfg, o->act_budget ? o->act_budget : APD_CONVNET_ACT_BUDGET, s->img, x->src,
                                      (const float(*)[256])s->lut, apd__mix64(x->seed ^ ST_TEACHER),
                                      s->ce_steps, APD_DISTILL_CE_BATCH, o->progress_fn, o->cb_user, s->teacher,
                                      &s->teacher_xent, err);
        if (st != APD_OK) return st;
        if (!isfinite(s->teacher_xent))
            return apd__err_set(err, APD_ENUMERIC, "distill: the class-aware teacher's training diverged");
    }
    s->real_f = xmalloc((size_t)o->batch_real * s->img, sizeof(float), &fail);
    s->real_aug = xmalloc((size_t)o->batch_real * s->img, sizeof(float), &fail);
    s->emb_r = xmalloc((size_t)o->batch_real * s->D, sizeof(float), &fail);
    s->mean_r = xmalloc(s->D, sizeof(float), &fail);
    s->mean_s = xmalloc(s->D, sizeof(float), &fail);
    s->syn_q = xmalloc(s->ipc * s->img, sizeof(float), &fail);
    s->syn_aug = xmalloc(s->ipc * s->img, sizeof(float), &fail);
    s->emb_s = xmalloc(s->ipc * s->D, sizeof(float), &fail);
    s->d_emb = xmalloc(s->ipc * s->D, sizeof(float), &fail);
    s->d_aug = xmalloc(s->ipc * s->img, sizeof(float), &fail);
    s->d_q = xmalloc(s->ipc * s->img, sizeof(float), &fail);
    if (x->palette_out && !s->palette) { /* stored palettes, and DM's final records */
        s->qscr_unit = s->img + (size_t)x->k * x->c + (size_t)x->h * x->w;
        s->qscr = xmalloc(apd_pool_threads(s->pool), s->qscr_unit, &fail);
    }
    return fail ? OOM(err) : APD_OK;
}

/* AutoPalette: the palette network, its two workspaces (task path, colour losses), the
 * colour-loss subset buffer and the colour-loss and SGD settings. */
static apd_status setup_palette(dm_state *s, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    const apd_distill_opts *o = s->o;
    int fail = 0;
    apd_status st = apd_palette_net_init(&s->pnet, x->c, x->k, APD_PALETTE_HIDDEN, apd__mix64(x->seed ^ 0x70616c6574ull));
    if (st != APD_OK) return apd__err_set(err, st, "distill: palette network (K %u): %s", x->k, apd_strerror(st));
    s->pnet.input = o->palette_input; /* every forward (task, colour losses, final records) uses it */
    s->n_sub = o->color_subset < s->N ? o->color_subset : (uint32_t)s->N;
    if (s->n_sub == 0) s->n_sub = 1;
    uint32_t wmax = (o->remedy & (APD_REMEDY_WARMUP | APD_REMEDY_KMEANS_INIT)) ? (uint32_t)s->N : (uint32_t)s->ipc;
    if (wmax < s->n_sub) wmax = s->n_sub;
    st = apd_palette_ws_create(&s->ws, x->c, x->k, APD_PALETTE_HIDDEN, wmax, x->h * x->w);
    if (st == APD_OK) st = apd_palette_ws_create(&s->wsc, x->c, x->k, APD_PALETTE_HIDDEN, s->n_sub, x->h * x->w);
    if (st != APD_OK) return apd__err_set(err, st, "distill: palette workspace: %s", apd_strerror(st));
    s->x_sub = xmalloc((size_t)s->n_sub * s->img, sizeof(float), &fail);
    if (fail) return OOM(err);
    apd_palette_color_opts_default(&s->cc, x->c, x->mean, x->std);
    s->cc.w_lm = o->w_max;
    s->cc.w_lb = o->w_balance;
    s->cc.w_la = o->w_align;
    s->cc.w_conf = o->w_conf;
    s->cc.la_ratio = o->align_ratio;
    s->psgd.lr = o->lr_palette;
    s->psgd.momentum = o->momentum_palette;
    s->psgd.weight_decay = o->wd_palette;
    return APD_OK;
}

/* The per-class figures of an iteration and, class-parallel, which process owns each class
 * and the buffers that pack the colour-loss subset. */
static apd_status setup_parallel(dm_state *s, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    int fail = 0;
    s->xc_unit = 1 + (s->palette ? s->pnet.n_params : 0);
    s->xc = xmalloc((size_t)x->n_classes * s->xc_unit, sizeof(float), &fail);
    s->cls_owner = xmalloc(x->n_classes, sizeof(uint32_t), &fail);
    if (fail) return OOM(err);
    for (uint32_t r = 0; r < x->size; r++) {
        uint32_t lo, hi;
        apd__dcomm_range(x->n_classes, r, x->size, &lo, &hi);
        for (uint32_t c = lo; c < hi; c++) s->cls_owner[c] = r;
    }
    if (s->palette && x->size > 1) {
        s->x_pack = xmalloc((size_t)s->n_sub * s->img, sizeof(float), &fail);
        s->sub_pos = xmalloc(s->n_sub, sizeof(uint32_t), &fail);
        s->sub_off = xmalloc((size_t)x->size + 1, sizeof(uint64_t), &fail);
    }
    return fail ? OOM(err) : APD_OK;
}

/* ---- run: initial state ---------------------------------------------------------------------- */

/* synthetic image i = real image src[i], normalised */
static apd_status init_from_real(const dm_state *s, float *dst, const uint64_t *src, apd_err *err)
{
    for (uint64_t i = 0; i < s->N; i++) {
        const uint8_t *im;
        APD_TRY(apd__dsrc_image(s->x->src, src[i], s->img8, &im, err));
        to_float(s, dst + i * s->img, im);
    }
    return APD_OK;
}

/* Remedy kmeans-init: the palette network starts at a k-means partition of the initial
 * images' colours; ws is left holding a forward of all synthetic images. */
static apd_status palette_kmeans_init(dm_state *s, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    apd_palette_kmeans_info ki;
    double t0 = apd__now();
    apd_status st = apd_palette_net_init_kmeans(&s->pnet, &ki, s->syn, (uint32_t)s->N, x->h, x->w,
                                                APD_KMEANS_INIT_ITERS, apd__mix64(x->seed ^ 0x6b6d696eull));
    apd_palette_fwd_opts fo = s->cc.fwd;
    fo.temperature = temperature_at(s, 0);
    if (st == APD_OK) st = apd_palette_forward(&s->pnet, s->ws, NULL, s->syn, (uint32_t)s->N, x->h, x->w, &fo);
    if (st != APD_OK) return apd__err_set(err, st, "distill: palette k-means init failed (%s)", apd_strerror(st));
    if (s->o->log_fn) {
        char tail[256];
        palette_state_text(tail, sizeof tail, s);
        apd__distill_log(s->o, "distill: palette k-means init (%u pixels, %u Lloyd steps, %.1fs): within-cluster "
                               "var %.4f, logit scale %.1f | %s",
                         ki.samples, ki.iters, apd__now() - t0, ki.sse_per_channel, ki.scale, tail);
    }
    return APD_OK;
}

/* Remedy warm-up: palette-only steps on the initial images before joint training. */
static apd_status palette_warmup(dm_state *s, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    const apd_distill_opts *o = s->o;
    apd_palette_losses wl;
    s->cc.fwd.temperature = temperature_at(s, 0);
    double t0 = apd__now();
    apd_status st = apd_palette_warmup(&s->pnet, s->ws, &wl, s->syn, (uint32_t)s->N, x->h, x->w, o->warmup_steps,
                                       1.0f, &s->cc, &s->psgd, apd__mix64(x->seed ^ 0x7761726dull));
    if (st != APD_OK) return apd__err_set(err, st, "distill: palette warm-up failed (%s)", apd_strerror(st));
    if (o->log_fn) {
        char tail[256];
        palette_state_text(tail, sizeof tail, s);
        apd__distill_log(o, "distill: palette warm-up %u steps (%.1fs): recon %.4f Lm %.3f Lb %.3f La %.4f | %s",
                         o->warmup_steps, apd__now() - t0, wl.recon, wl.lm, wl.lb, wl.la, tail);
    }
    return APD_OK;
}

/* The state before iteration *it0: from the checkpoint, or the initial real images (and
 * the palette remedies that run before the loop). */
static apd_status init_state(dm_state *s, const apd_distill_result *res, uint64_t *it0, apd_err *err)
{
    const apd_distill_opts *o = s->o;
    *it0 = 0;
    if (o->resume_path) {
        APD_TRY(ckpt_resume(s, res->source_ids, it0, err));
        apd__distill_log(o, "distill: resumed from %s at iteration %llu/%u", o->resume_path,
                         (unsigned long long)*it0, o->iters);
        return APD_OK;
    }
    APD_TRY(init_from_real(s, s->syn, res->source_ids, err));
    if (s->palette && (o->remedy & APD_REMEDY_KMEANS_INIT)) APD_TRY(palette_kmeans_init(s, err));
    if (s->palette && (o->remedy & APD_REMEDY_WARMUP) && o->warmup_steps) APD_TRY(palette_warmup(s, err));
    return APD_OK;
}

/* Bench mode: time x->bench_iters iterations (no evaluation, no records). */
static apd_status run_bench(dm_state *s, apd_err *err)
{
    apd_distill_ctx *x = s->x;
    iter_out bo;
    for (uint32_t it = 0; it < x->bench_iters; it++) {
        double t0 = apd__now();
        APD_TRY(iteration(s, it, &bo, err));
        double dt = apd__now() - t0;
        if (it == 0) x->bench_first = dt;
        else x->bench_rest += dt / (x->bench_iters - 1);
    }
    return APD_OK;
}

/* Evaluation loss of the initial images (recomputed from the real images on resume, so the
 * stats in the file do not depend on resuming). */
static apd_status initial_eval_loss(dm_state *s, const apd_distill_result *res, double *eval0, double *xent0,
                                    apd_err *err)
{
    if (!s->o->resume_path) {
        APD_TRY(eval_loss(s, s->syn, 2, eval0, APD_OK, err));
        return s->teacher ? teacher_xent(s, s->syn, xent0) : APD_OK;
    }
    int fail = 0;
    float *init = xmalloc(s->N * s->img, sizeof(float), &fail);
    apd_status st = fail ? OOM(err) : init_from_real(s, init, res->source_ids, err);
    st = eval_loss(s, init, 2, eval0, st, err);
    if (st == APD_OK && s->teacher) st = teacher_xent(s, init, xent0);
    free(init);
    return st;
}

/* ---- run: the loop --------------------------------------------------------------------------- */

typedef struct loop_out {
    iter_out io;      /* figures of the last iteration run */
    double last_loss; /* its training loss */
    double seconds;   /* wall time of the loop */
} loop_out;

static void report_iteration(const dm_state *s, uint64_t it, uint64_t it0, const iter_out *io, double t_loop)
{
    const apd_distill_opts *o = s->o;
    if (o->progress_fn) {
        char note[160];
        if (s->palette)
            snprintf(note, sizeof note, "loss %.1f Lm %.3f Lb %.3f La %.4f | colours/img %.0f gap %.4f", io->loss,
                     io->pl.lm, io->pl.lb, io->pl.la, io->ps.colors_median, io->ps.gap_mse);
        else
            snprintf(note, sizeof note, "loss %.2f", io->loss);
        o->progress_fn(o->cb_user, "distill", it + 1, o->iters, note);
    }
    if (!o->log_fn || !o->log_every || !((it + 1) % o->log_every == 0 || it == 0 || it + 1 == o->iters)) return;
    double el = apd__now() - t_loop;
    double rate = (double)(it + 1 - it0) / (el > 0 ? el : 1e-9);
    if (s->palette)
        apd__distill_log(o, "it %llu/%u loss %.2f | Lm %.4f Lb %.4f La %.4f Lconf %.4f | colours/img median %.1f "
                            "(min %u max %u) soft-hard gap %.4f soft mse %.4f hard mse %.4f maxp %.3f | "
                            "T %.3g | %.2f it/s ETA %.0fs",
                         (unsigned long long)it + 1, o->iters, io->loss, io->pl.lm, io->pl.lb, io->pl.la,
                         io->pl.conf, io->ps.colors_median, io->ps.colors_min, io->ps.colors_max, io->ps.gap_mse,
                         io->ps.soft_mse, io->ps.hard_mse, io->ps.max_prob_mean, temperature_at(s, it), rate,
                         (double)(o->iters - it - 1) / rate);
    else
        apd__distill_log(o, "it %llu/%u loss %.3f | %.2f it/s ETA %.0fs", (unsigned long long)it + 1, o->iters,
                         io->loss, rate, (double)(o->iters - it - 1) / rate);
    if (s->use_pool)
        apd__distill_log(o, "it %llu/%u network queue: matched with a network of %u SGD steps; training xent %.3f",
                         (unsigned long long)it + 1, o->iters, io->net_age, io->pool_xent);
}

/* Iterations it0 .. iters-1 with progress, log lines, checkpoints and opts.stop_after. */
static apd_status run_loop(dm_state *s, const apd_distill_result *res, uint64_t it0, loop_out *lo, apd_err *err)
{
    const apd_distill_opts *o = s->o;
    memset(lo, 0, sizeof *lo);
    if (o->progress_fn) o->progress_fn(o->cb_user, "distill", it0, o->iters, NULL);
    double t_loop = apd__now();
    for (uint64_t it = it0; it < o->iters; it++) {
        apd_status st = iteration(s, it, &lo->io, err);
        if (st != APD_OK) {
            if (err && err->code != st)
                apd__err_set(err, st, "distill: iteration %llu: %s", (unsigned long long)it, apd_strerror(st));
            return st;
        }
        if (it == 0) s->loss_first = lo->io.loss;
        lo->last_loss = lo->io.loss;
        report_iteration(s, it, it0, &lo->io, t_loop);
        if (o->checkpoint_every && (it + 1) % o->checkpoint_every == 0 && it + 1 < o->iters)
            APD_TRY(ckpt_write(s, res->source_ids, it + 1, err));
        if (o->stop_after && it + 1 == o->stop_after && it + 1 < o->iters) {
            if (o->checkpoint_path) APD_TRY(ckpt_write(s, res->source_ids, it + 1, err));
            return apd__err_set(err, APD_ECANCELED, "distill: stopped after iteration %u (checkpoint %s)",
                                o->stop_after, o->checkpoint_path ? o->checkpoint_path : "not written");
        }
    }
    lo->seconds = apd__now() - t_loop;
    return APD_OK;
}

/* ---- run: records and the figures of what is stored ------------------------------------------ */

/* The records, the evaluation loss of what they store and the run's stats. */
static apd_status finish(dm_state *s, apd_distill_result *res, double eval0, const loop_out *lo, apd_err *err)
{
    apd_distill_ctx *x = s->x;
    /* every process gets every class's final images, and makes every record */
    APD_TRY(gather_classes(s, s->syn, (size_t)s->ipc * s->img * sizeof(float), APD_OK, err));
    apd_status st = make_records(s, res, err);
    /* evaluation loss of what is stored */
    double eval1 = 0, quant_mse = 0;
    int fail = 0;
    float *dec = st == APD_OK ? xmalloc(s->N * s->img, sizeof(float), &fail) : NULL;
    if (fail) st = OOM(err);
    if (st == APD_OK) {
        decode_records(s, res, dec);
        /* what storage costs: stored (decoded) vs the float synthetic images, normalised units */
        double se = 0.0;
        for (size_t i = 0; i < s->N * s->img; i++) {
            double d = (double)dec[i] - s->syn[i];
            se += d * d;
        }
        quant_mse = se / ((double)s->N * s->img);
    }
    st = eval_loss(s, dec, 2, &eval1, st, err);
    double xent1 = 0;
    if (st == APD_OK && s->teacher) st = teacher_xent(s, dec, &xent1);
    free(dec);
    if (st != APD_OK) return st;
    apd__distill_log(s->o, "distill: %u iterations in %.1fs; DM loss (fixed nets, no aug) initial %.3f -> stored "
                           "%.3f; storage error (MSE stored vs float images) %.5f",
                     s->o->iters, lo->seconds, eval0, eval1, quant_mse);
    apd__dsb_printf(&x->stats, "%s\"loss_first_iter\":", x->stats.len ? "," : "");
    apd__dsb_num(&x->stats, s->loss_first);
    apd__dsb_printf(&x->stats, ",\"loss_last_iter\":");
    apd__dsb_num(&x->stats, lo->last_loss);
    apd__dsb_printf(&x->stats, ",\"eval_loss_initial\":");
    apd__dsb_num(&x->stats, eval0);
    apd__dsb_printf(&x->stats, ",\"eval_loss_stored\":");
    apd__dsb_num(&x->stats, eval1);
    apd__dsb_printf(&x->stats, ",\"stored_mse\":");
    apd__dsb_num(&x->stats, quant_mse);
    x->eval_loss_initial = eval0;
    x->eval_loss_final = eval1;
    if (s->teacher) {
        apd__distill_log(s->o, "distill: class-aware term: teacher cross-entropy of the images %.4f -> %.4f",
                         s->xent0, xent1);
        apd__dsb_printf(&x->stats, ",\"ce_teacher_train_xent\":");
        apd__dsb_num(&x->stats, s->teacher_xent);
        apd__dsb_printf(&x->stats, ",\"ce_xent_initial\":");
        apd__dsb_num(&x->stats, s->xent0);
        apd__dsb_printf(&x->stats, ",\"ce_xent_stored\":");
        apd__dsb_num(&x->stats, xent1);
    }
    if (s->use_pool) {
        apd__dsb_printf(&x->stats, ",\"net_pool_last_xent\":");
        apd__dsb_num(&x->stats, lo->io.pool_xent);
        apd__dsb_printf(&x->stats, ",\"net_pool_networks_pushed\":%llu", (unsigned long long)s->npool.meta[0]);
    }
    if (s->palette) {
        apd__dsb_printf(&x->stats, ",\"last_soft_hard_gap\":");
        apd__dsb_num(&x->stats, lo->io.ps.gap_mse);
    }
    return APD_OK;
}

/* ---- run ------------------------------------------------------------------------------------- */

static apd_status dm_run(dm_state *s, apd_distill_result *res, apd_err *err)
{
    const apd_distill_opts *o = s->o;
    const apd_distill_ctx *x = s->x;
    apd_status st = setup_classes(s, err);
    if (st == APD_OK) st = setup_net(s, err);
    if (st == APD_OK && s->palette) st = setup_palette(s, err);
    if (st == APD_OK) st = setup_parallel(s, err);
    APD_TRY(apd__dcomm_agree(x, st, err));
    uint64_t it0 = 0;
    APD_TRY(apd__dcomm_agree(x, init_state(s, res, &it0, err), err));
    if (x->bench_iters) return run_bench(s, err);
    double eval0 = 0;
    APD_TRY(initial_eval_loss(s, res, &eval0, &s->xent0, err));
    char rn[96];
    if (s->stored)
        snprintf(rn, sizeof rn, "per-image (%s), loss on the stored images", apd_quantizer_name(s->qz));
    else
        apd_palette_remedy_name(o->remedy, rn, sizeof rn);
    apd__distill_log(o, "distill: %s, %llu synthetic images (%llu per class), %ux%ux%u, K %u, iters %u, "
                        "batch-real %u, %s %s, threads %u",
                     apd_distill_method_name(o->method), (unsigned long long)s->N, (unsigned long long)s->ipc, x->c,
                     x->h, x->w, x->k, o->iters, o->batch_real, s->stored ? "palettes" : "remedy", rn, x->threads);
    if (s->teacher)
        apd__distill_log(o, "distill: class-aware term, weight %g: teacher ConvNetD%u trained %u SGD steps of %u real "
                            "images, mean cross-entropy %.4f",
                         (double)s->ce_w, x->depth, s->ce_steps, APD_DISTILL_CE_BATCH, s->teacher_xent);
    if (s->use_pool)
        apd__distill_log(o, "distill: network queue of %u partly trained networks (a fresh one every %u iterations, "
                            "%u SGD steps of %u real images per iteration)",
                         o->net_pool, o->net_pool_every, o->net_pool_steps, o->net_pool_batch);
    loop_out lo;
    APD_TRY(run_loop(s, res, it0, &lo, err));
    return finish(s, res, eval0, &lo, err);
}

apd_status apd__dm_run(apd_distill_ctx *x, apd_distill_result *res, apd_err *err)
{
    dm_state S;
    memset(&S, 0, sizeof S);
    dm_state *s = &S;
    s->x = x;
    s->o = x->o;
    s->ipc = x->images_per_class;
    s->N = s->ipc * x->n_classes;
    s->img = (size_t)x->c * x->h * x->w;
    s->palette = apd__distill_network(x->o);
    s->use_pool = x->o->net_pool > 0;
    s->stored = apd__distill_stored(x->o);
    s->qz = apd__distill_stored_quantizer(x->o);
    x->lr_img_used = apd__distill_lr_img(x->o, s->ipc);
    s->csr_saved = _mm_getcsr();
    apd_status st = dm_run(s, res, err);
    if (s->pool) {
        set_ftz(s->pool, (s->csr_saved & 0x8040u) != 0);
        _mm_setcsr(s->csr_saved);
    }
    state_free(s);
    return st;
}
