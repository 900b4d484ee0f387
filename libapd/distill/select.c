/* distill/select.c: colour-guided initialisation (docs/method.md section 4).
 *
 * 1. Every candidate real image is quantized to K colours with median cut (apd_quantize_image).
 * 2. A ConvNet (the run's depth: D3 at 32 px, D4 at 64, D5 at 128) is trained on the quantized images from scratch: cross-entropy, no
 *    augmentation, SGD lr select_lr (0.1), momentum 0.9, weight decay 5e-4, no schedule,
 *    select_epochs epochs (reference 50; CPU default 2), batch select_batch, seeded.
 * 3. Per class, the embeddings (2048-d at those sizes) of its quantized images feed the graph-cut stochastic
 *    greedy (graphcut.c; lambda 1, epsilon 0.9), budget = synthetic images per class.
 * 4. The selected images, in their ORIGINAL full colour, initialise the synthetic set.
 * Candidates: all images of each class, or (select_limit > 0, a CPU-time cut stated in the
 * provenance) a seeded random subset of select_limit per class, used both to train the
 * selection network and as the candidate pool. Within a class the chosen ids are returned
 * in ascending dataset order (as the reference).
 * A batch whose activations exceed APD_CONVNET_ACT_BUDGET (apd/nn.h; at 128 px about 30
 * images) is trained as several forward/backward passes with accumulated gradients.
 *
 * Memory: a candidate is decoded from the source and median-cut again each time a batch
 * needs it (select_epochs + 1 times in all), instead of holding every quantized candidate:
 * the quantization costs well under a percent of the network's forward and backward pass
 * on the same image, and the selection's memory stays one batch whatever the source size.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "apd/quant.h"
#include "apd/train.h"
#include "common/internal.h"
#include "distill/distill_internal.h"

#define ST_SEL_SUB 0x73656c00ull
#define ST_SEL_NET 0x73656c01ull
#define ST_SEL_EPOCH 0x73656c02ull
#define ST_SEL_GC 0x73656c03ull

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Everything one selection owns; freed by sel_free. */
typedef struct sel_state {
    apd_distill_ctx *x;
    const apd_distill_opts *o;
    size_t img, p;       /* c*h*w, h*w */
    uint32_t C, B, D;    /* classes, batch, embed dim */
    uint32_t MB;         /* images per forward/backward pass (<= B; the net's max_batch) */
    uint64_t *cls_n;     /* [C] candidates per class */
    uint64_t *cls_off;   /* [C+1] class-major offsets (of `all`, then of `cand`) */
    uint64_t *all;       /* [real n] real indices, class-major */
    uint64_t *cand;      /* [n_cand] candidate real indices, class-major */
    uint64_t n_cand;
    uint32_t *labels;    /* [n_cand] */
    uint8_t *img8, *idx8;/* [img] a decoded candidate, [p] its median-cut index map */
    float lut[3][256];   /* uint8 -> normalised float per channel */
    apd_pool *pool;
    apd_convnet *net;
    apd_sgd *opt;
    float *xb, *logits, *probs, *dlogits; /* [B, img], [B, C] x3 */
    uint32_t *yb, *order;                 /* [B], [n_cand] */
} sel_state;

static apd_status sel_pick_classes(sel_state *s, uint64_t *src, apd_err *err);

static void sel_free(sel_state *s)
{
    apd_sgd_free(s->opt);
    apd_convnet_free(s->net);
    apd_pool_free(s->pool);
    free(s->cls_n);
    free(s->cls_off);
    free(s->all);
    free(s->cand);
    free(s->labels);
    free(s->img8);
    free(s->idx8);
    free(s->order);
    free(s->xb);
    free(s->logits);
    free(s->probs);
    free(s->dlogits);
    free(s->yb);
}

static apd_status sel_oom(apd_err *err)
{
    return apd__err_set(err, APD_ENOMEM, "distill: out of memory in the colour-guided initialisation");
}

/* Candidates, class-major: all images of each class or (limit > 0) a seeded subset of limit
 * (stream: the draw's seed stream). */
static apd_status sel_candidates(sel_state *s, uint64_t limit, uint64_t stream, apd_err *err)
{
    const apd_distill_source *real = s->x->src;
    uint32_t C = s->C;
    s->cls_n = calloc(C, sizeof *s->cls_n);
    s->cls_off = calloc(C + 1, sizeof *s->cls_off);
    s->all = malloc((size_t)real->n * sizeof *s->all);
    if (!s->cls_n || !s->cls_off || !s->all) return sel_oom(err);
    /* the source's per-class index: ids class-major, ascending within a class */
    memcpy(s->cls_off, real->cls_off, (size_t)(C + 1) * sizeof *s->cls_off);
    memcpy(s->all, real->cls_ids, (size_t)real->n * sizeof *s->all);
    for (uint32_t c = 0; c < C; c++) s->cls_n[c] = s->cls_off[c + 1] - s->cls_off[c];
    uint64_t n_cand = 0;
    for (uint32_t c = 0; c < C; c++) {
        uint64_t m = s->cls_n[c];
        uint64_t *a = s->all + s->cls_off[c];
        if (limit && limit < m) {
            apd__rng r;
            apd__rng_seed(&r, s->x->seed, stream * 1000 + c);
            for (uint64_t t = 0; t < limit; t++) {
                uint64_t j = t + apd__rng_below(&r, m - t);
                uint64_t tmp = a[t];
                a[t] = a[j];
                a[j] = tmp;
            }
            m = limit;
            qsort(a, (size_t)m, sizeof *a, cmp_u64);
        }
        if (m < s->x->images_per_class)
            return apd__err_set(err, APD_EINVAL, "distill: class %u has %llu candidates for %llu images", c,
                                (unsigned long long)m, (unsigned long long)s->x->images_per_class);
        s->cls_n[c] = m;
        n_cand += m;
    }
    s->n_cand = n_cand;
    s->cand = malloc((size_t)n_cand * sizeof *s->cand);
    s->labels = malloc((size_t)n_cand * sizeof *s->labels);
    s->img8 = malloc(s->img);
    s->idx8 = malloc(s->p);
    if (!s->cand || !s->labels || !s->img8 || !s->idx8) return sel_oom(err);
    uint64_t k = 0;
    for (uint32_t c = 0; c < C; c++)
        for (uint64_t t = 0; t < s->cls_n[c]; t++) {
            s->cand[k] = s->all[s->cls_off[c] + t];
            s->labels[k] = c;
            k++;
        }
    /* class-major offsets of the candidate list */
    s->cls_off[0] = 0;
    for (uint32_t c = 0; c < C; c++) s->cls_off[c + 1] = s->cls_off[c] + s->cls_n[c];
    return APD_OK;
}

/* The selection ConvNet (seeded init), its optimizer and the batch buffers. */
static apd_status sel_net_create(sel_state *s, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    const apd_distill_opts *o = s->o;
    apd__lut_build(s->lut, x->c, x->mean, x->std);
    APD_TRY(apd_pool_create(&s->pool, x->threads));
    apd_convnet_opts cfg;
    apd_convnet_opts_default(&cfg, x->c, x->h, x->w, s->C);
    cfg.depth = x->depth;
    cfg.pool = s->pool;
    s->MB = apd_convnet_batch_for_budget(&cfg, o->act_budget ? (size_t)o->act_budget : APD_CONVNET_ACT_BUDGET,
                                         s->B);
    cfg.max_batch = s->MB ? s->MB : 1; /* 0: a bad shape; create says which */
    apd_status st = apd_convnet_create(&s->net, &cfg);
    if (st != APD_OK)
        return apd__err_set(err, st, "distill: selection ConvNetD%u for %ux%ux%u: %s", x->depth, x->c, x->h, x->w,
                            apd_strerror(st));
    apd_convnet_init(s->net, apd__mix64(x->seed ^ ST_SEL_NET), 0);
    APD_TRY(apd_sgd_create(&s->opt, apd_convnet_num_params(s->net), o->select_lr, o->select_momentum,
                           o->select_wd));
    s->D = (uint32_t)apd_convnet_embed_dim(s->net);
    s->xb = malloc((size_t)s->B * s->img * sizeof *s->xb);
    s->logits = malloc((size_t)s->B * s->C * sizeof *s->logits);
    s->probs = malloc((size_t)s->B * s->C * sizeof *s->probs);
    s->dlogits = malloc((size_t)s->B * s->C * sizeof *s->dlogits);
    s->order = malloc((size_t)s->n_cand * sizeof *s->order);
    s->yb = malloc((size_t)s->B * sizeof *s->yb);
    if (!s->xb || !s->logits || !s->probs || !s->dlogits || !s->order || !s->yb) return sel_oom(err);
    return APD_OK;
}

/* 1. Candidate j (its real image median-cut to K colours), normalised, into dst. */
static apd_status sel_load(sel_state *s, float *dst, uint64_t j, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    uint8_t pal[APD_MAX_COLORS * 3];
    const uint8_t *im;
    uint32_t ku = 0;
    APD_TRY(apd__dsrc_image(x->src, s->cand[j], s->img8, &im, err));
    apd_status st = apd_quantize_image(APD_QUANT_MEDIAN_CUT, im, x->c, x->h, x->w, x->k, 0, pal, s->idx8, &ku);
    if (st != APD_OK)
        return apd__err_set(err, st, "distill: median cut of image %llu failed", (unsigned long long)s->cand[j]);
    for (uint32_t ch = 0; ch < x->c; ch++)
        for (size_t k = 0; k < s->p; k++) dst[ch * s->p + k] = s->lut[ch][pal[s->idx8[k] * x->c + ch]];
    return APD_OK;
}

/* Gradients of the mean cross-entropy of the nb images in s->xb / s->yb (logits into
 * s->logits, *loss the batch mean), in passes of s->MB images: pass j contributes with
 * dloss = m_j / nb (exactly 1 for a single pass, the whole batch). */
static apd_status sel_batch_grads(sel_state *s, uint32_t nb, float *loss)
{
    double sum;
    APD_TRY(apd_convnet_xent_grads(s->net, s->logits, s->probs, s->dlogits, s->xb, s->yb, NULL, nb, s->MB, s->img,
                                   s->C, &sum));
    *loss = (float)(sum / nb); /* exactly the pass loss when there is one pass */
    return APD_OK;
}

/* 2. One epoch of the selection network over the candidates in a seeded order. *done counts
 * the batches for the progress callback. */
static apd_status sel_train_epoch(sel_state *s, uint32_t ep, uint64_t *done, apd_err *err)
{
    const apd_distill_opts *o = s->o;
    uint32_t B = s->B, C = s->C;
    uint64_t n_cand = s->n_cand;
    uint64_t total = (uint64_t)o->select_epochs * ((n_cand + B - 1) / B);
    for (uint64_t i = 0; i < n_cand; i++) s->order[i] = (uint32_t)i;
    apd__rng r;
    apd__rng_seed(&r, s->x->seed, ST_SEL_EPOCH * 1000 + ep);
    apd__rng_shuffle_u32(&r, s->order, (size_t)n_cand);
    double lsum = 0;
    uint64_t correct = 0;
    for (uint64_t b0 = 0; b0 < n_cand; b0 += B) {
        uint32_t nb = (uint32_t)((n_cand - b0) < B ? (n_cand - b0) : B);
        for (uint32_t t = 0; t < nb; t++) {
            uint32_t j = s->order[b0 + t];
            APD_TRY(sel_load(s, s->xb + (size_t)t * s->img, j, err));
            s->yb[t] = s->labels[j];
        }
        float loss = 0;
        APD_TRY(sel_batch_grads(s, nb, &loss));
        correct += apd_count_correct(s->logits, s->yb, nb, C);
        lsum += (double)loss * nb;
        apd_sgd_step(s->opt, apd_convnet_params(s->net), apd_convnet_grads(s->net));
        ++*done;
        if (o->progress_fn) {
            char note[64];
            snprintf(note, sizeof note, "epoch %u loss %.3f", ep + 1, loss);
            o->progress_fn(o->cb_user, "select-net", *done, total, note);
        }
    }
    if (!isfinite(lsum))
        return apd__err_set(err, APD_ENUMERIC, "distill: selection network diverged (epoch %u)", ep + 1);
    apd__distill_log(o, "distill: selection net epoch %u/%u: loss %.4f train acc %.3f", ep + 1, o->select_epochs,
                     lsum / (double)n_cand, (double)correct / (double)n_cand);
    return APD_OK;
}

/* 3.-4. Per class: embeddings of the quantized candidates, graph-cut selection, and the
 * chosen real ids (ascending) into src. In a class-parallel run every process has trained
 * the same network; each picks for its classes and the picks are exchanged. st: the status
 * of the steps before on this process (nothing is done unless every process got here). */
static apd_status sel_pick(sel_state *s, uint64_t *src, apd_status st, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    APD_TRY(apd__dcomm_agree(x, st, err));
    st = sel_pick_classes(s, src, err);
    APD_TRY(apd__dcomm_agree(x, st, err));
    return apd__dcomm_classes(x, src, (size_t)x->images_per_class * sizeof *src, err);
}

static apd_status sel_pick_classes(sel_state *s, uint64_t *src, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    uint32_t B = s->B, D = s->D;
    uint64_t max_cls = 0;
    for (uint32_t c = 0; c < s->C; c++)
        if (s->cls_n[c] > max_cls) max_cls = s->cls_n[c];
    float *feat = malloc((size_t)max_cls * D * sizeof *feat);
    uint64_t *pick = malloc((size_t)x->images_per_class * sizeof *pick);
    apd_status st = APD_OK;
    if (!feat || !pick) st = sel_oom(err);
    for (uint32_t c = x->cls_lo; c < x->cls_hi && st == APD_OK; c++) {
        uint64_t m = s->cls_n[c];
        for (uint64_t b0 = 0; b0 < m && st == APD_OK; b0 += B) {
            uint32_t nb = (uint32_t)((m - b0) < B ? (m - b0) : B);
            for (uint32_t t = 0; t < nb && st == APD_OK; t++)
                st = sel_load(s, s->xb + (size_t)t * s->img, s->cls_off[c] + b0 + t, err);
            if (st == APD_OK) st = apd_convnet_forward_nograd(s->net, NULL, feat + b0 * D, s->xb, nb);
        }
        if (st == APD_OK)
            st = apd_graphcut_select(feat, m, D, x->images_per_class, s->o->gc_lambda, s->o->gc_epsilon,
                                     apd__mix64(x->seed ^ (ST_SEL_GC * 1000 + c)), pick, err);
        if (st != APD_OK) break;
        uint64_t *dst = src + (uint64_t)c * x->images_per_class;
        for (uint64_t t = 0; t < x->images_per_class; t++) dst[t] = s->cand[s->cls_off[c] + pick[t]];
        qsort(dst, (size_t)x->images_per_class, sizeof *dst, cmp_u64);
    }
    free(feat);
    free(pick);
    return st;
}

static apd_status sel_run(sel_state *s, uint64_t *src, apd_err *err)
{
    const apd_distill_opts *o = s->o;
    /* a failure does not return at once: sel_pick tells the other processes first */
    apd_status st = sel_candidates(s, o->select_limit, ST_SEL_SUB, err);
    if (st == APD_OK) st = sel_net_create(s, err);
    double t0 = apd__now();
    uint64_t done = 0;
    if (st == APD_OK && o->progress_fn)
        o->progress_fn(o->cb_user, "select-net", 0, (uint64_t)o->select_epochs * ((s->n_cand + s->B - 1) / s->B),
                       NULL);
    for (uint32_t ep = 0; ep < o->select_epochs && st == APD_OK; ep++) st = sel_train_epoch(s, ep, &done, err);
    double t_train = apd__now() - t0;
    t0 = apd__now();
    APD_TRY(sel_pick(s, src, st, err));
    apd__distill_log(o, "distill: colour-guided init: %llu candidates (median cut K %u on the fly), selection net "
                        "%u epochs %.1fs, features + graph cut %.1fs",
                     (unsigned long long)s->n_cand, s->x->k, o->select_epochs, t_train, apd__now() - t0);
    return APD_OK;
}

/* A selection's state for run x, nothing allocated yet. */
static void sel_init(sel_state *s, apd_distill_ctx *x)
{
    memset(s, 0, sizeof *s);
    s->x = x;
    s->o = x->o;
    s->img = (size_t)x->c * x->h * x->w;
    s->p = (size_t)x->h * x->w;
    s->C = x->n_classes;
    s->B = x->o->select_batch ? x->o->select_batch : 128;
}

apd_status apd__select_graphcut(apd_distill_ctx *x, uint64_t *src, apd_err *err)
{
    sel_state s;
    sel_init(&s, x);
    apd_status st = sel_run(&s, src, err);
    sel_free(&s);
    return st;
}

/* ---- colour-guided herding (opts.init = APD_INIT_HERDING) --------------------------------
 *
 * What the DM loop minimises is, per class and per random network, the squared distance
 * between the mean embedding of the real images and that of the synthetic ones. Herding
 * (Welling 2009; the coreset baseline of the DC/DM papers) picks, one at a time, the real
 * image that brings the mean embedding of the picks closest to the class mean. Here the
 * embeddings are those of herd_nets random ConvNets initialised as the DM loop's, and a pick
 * is seen as stored (median cut to K colours, as the graph-cut init sees it) while the target
 * is the mean of the candidates in full colour: the start is the real subset whose stored
 * images have the lowest DM loss. The picks stay in herding order (the first is the most
 * representative), so a bytes budget that trims a class's last images trims the least useful.
 *
 * Candidates: a seeded random subset of herd_limit per class (0: all). Cost per candidate:
 * 2 x herd_nets forward passes; memory: herd_nets x embed floats per candidate of one class.
 * The networks are the same for every class, so class-parallel runs pick the same images. */
#define ST_HERD_SUB 0x68657200ull
#define ST_HERD_NET 0x68657201ull

/* Candidate j in full colour, normalised, into dst. */
static apd_status herd_load_full(sel_state *s, float *dst, uint64_t j, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    const uint8_t *im;
    APD_TRY(apd__dsrc_image(x->src, s->cand[j], s->img8, &im, err));
    apd__lut_image(dst, im, (const float(*)[256])s->lut, x->c, s->p);
    return APD_OK;
}

/* Class c: the embeddings of its candidates (features of the median-cut versions into feat,
 * [m, R*D]; the mean full-colour embedding into mu, [R*D]) and the herding picks (candidate
 * positions within the class, in order) into pick. emb: [MB, D] scratch. */
static apd_status herd_class(sel_state *s, uint32_t c, float *feat, double *mu, float *emb, uint64_t *pick,
                             apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    uint32_t R = s->o->herd_nets, MB = s->MB ? s->MB : 1;
    uint64_t m = s->cls_n[c], base = s->cls_off[c], n = x->images_per_class;
    size_t D = s->D, RD = (size_t)R * D;
    memset(mu, 0, RD * sizeof *mu);
    for (uint32_t q = 0; q < R; q++) {
        apd_convnet_init(s->net, apd__mix64(x->seed ^ (ST_HERD_NET * 1000 + q)), 0);
        for (int stored = 0; stored < 2; stored++)
            for (uint64_t b0 = 0; b0 < m; b0 += MB) {
                uint32_t nb = (uint32_t)((m - b0) < MB ? (m - b0) : MB);
                for (uint32_t t = 0; t < nb; t++) {
                    float *dst = s->xb + (size_t)t * s->img;
                    APD_TRY(stored ? sel_load(s, dst, base + b0 + t, err)
                                   : herd_load_full(s, dst, base + b0 + t, err));
                }
                APD_TRY(apd_convnet_forward_nograd(s->net, NULL, emb, s->xb, nb));
                for (uint32_t t = 0; t < nb; t++) {
                    const float *e = emb + (size_t)t * D;
                    if (stored) memcpy(feat + (size_t)(b0 + t) * RD + (size_t)q * D, e, D * sizeof *e);
                    else
                        for (size_t d = 0; d < D; d++) mu[(size_t)q * D + d] += e[d];
                }
            }
    }
    for (size_t d = 0; d < RD; d++) mu[d] /= (double)m;
    return apd__herding_select(feat, m, RD, mu, n, pick, err);
}

apd_status apd__herding_select(const float *feat, uint64_t m, size_t dim, const double *mu, uint64_t n,
                               uint64_t *pick, apd_err *err)
{
    if (n > m) return apd__err_set(err, APD_EINVAL, "distill: herding %llu of %llu candidates",
                                   (unsigned long long)n, (unsigned long long)m);
    double *nrm = malloc((size_t)(m ? m : 1) * sizeof *nrm), *sum = calloc(dim ? dim : 1, sizeof *sum);
    float *r = malloc((dim ? dim : 1) * sizeof *r);
    uint8_t *used = calloc((size_t)(m ? m : 1), 1);
    if (!nrm || !sum || !r || !used) {
        free(nrm), free(sum), free(r), free(used);
        return sel_oom(err);
    }
    for (uint64_t j = 0; j < m; j++) {
        const float *f = feat + (size_t)j * dim;
        double a = 0;
        for (size_t d = 0; d < dim; d++) a += (double)f[d] * f[d];
        nrm[j] = a;
    }
    /* pick t minimises |(t+1) mu - (sum + f_j)|^2 = const + |f_j|^2 - 2 <(t+1) mu - sum, f_j>;
     * ties go to the lower position */
    for (uint64_t t = 0; t < n; t++) {
        for (size_t d = 0; d < dim; d++) r[d] = (float)((double)(t + 1) * mu[d] - sum[d]);
        uint64_t best = m;
        double best_v = 0;
        for (uint64_t j = 0; j < m; j++) {
            if (used[j]) continue;
            const float *f = feat + (size_t)j * dim;
            double dot = 0;
            for (size_t d = 0; d < dim; d++) dot += (double)r[d] * f[d];
            double v = nrm[j] - 2.0 * dot;
            if (best == m || v < best_v) best = j, best_v = v;
        }
        used[best] = 1; /* n <= m, so one is always free */
        pick[t] = best;
        const float *f = feat + (size_t)best * dim;
        for (size_t d = 0; d < dim; d++) sum[d] += f[d];
    }
    free(nrm), free(sum), free(r), free(used);
    return APD_OK;
}

static apd_status herd_pick_classes(sel_state *s, uint64_t *src, apd_err *err)
{
    const apd_distill_ctx *x = s->x;
    uint32_t R = s->o->herd_nets, MB = s->MB ? s->MB : 1;
    size_t D = s->D, RD = (size_t)R * D;
    uint64_t max_cls = 0;
    for (uint32_t c = 0; c < s->C; c++)
        if (s->cls_n[c] > max_cls) max_cls = s->cls_n[c];
    if (max_cls > SIZE_MAX / sizeof(float) / RD) return sel_oom(err);
    float *feat = malloc((size_t)max_cls * RD * sizeof *feat);
    double *mu = malloc(RD * sizeof *mu);
    float *emb = malloc((size_t)MB * D * sizeof *emb);
    uint64_t *pick = malloc((size_t)x->images_per_class * sizeof *pick);
    apd_status st = APD_OK;
    if (!feat || !mu || !emb || !pick) st = sel_oom(err);
    if (st == APD_OK && s->o->progress_fn) s->o->progress_fn(s->o->cb_user, "herding", 0, x->cls_hi - x->cls_lo, NULL);
    for (uint32_t c = x->cls_lo; c < x->cls_hi && st == APD_OK; c++) {
        st = herd_class(s, c, feat, mu, emb, pick, err);
        if (st != APD_OK) break;
        for (uint64_t t = 0; t < x->images_per_class; t++)
            src[c * x->images_per_class + t] = s->cand[s->cls_off[c] + pick[t]];
        if (s->o->progress_fn)
            s->o->progress_fn(s->o->cb_user, "herding", c + 1 - x->cls_lo, x->cls_hi - x->cls_lo, NULL);
    }
    free(feat);
    free(mu);
    free(emb);
    free(pick);
    return st;
}

apd_status apd__select_herding(apd_distill_ctx *x, uint64_t *src, apd_err *err)
{
    sel_state s;
    sel_init(&s, x);
    double t0 = apd__now();
    /* a failure does not return at once: the other processes are told first */
    apd_status st = sel_candidates(&s, x->o->herd_limit, ST_HERD_SUB, err);
    if (st == APD_OK) st = sel_net_create(&s, err);
    st = apd__dcomm_agree(x, st, err);
    if (st == APD_OK) st = apd__dcomm_agree(x, herd_pick_classes(&s, src, err), err);
    if (st == APD_OK) st = apd__dcomm_classes(x, src, (size_t)x->images_per_class * sizeof *src, err);
    if (st == APD_OK)
        apd__distill_log(x->o, "distill: herding init: %llu candidates (median cut K %u), %u random ConvNetD%u, %.1fs",
                         (unsigned long long)s.n_cand, x->k, x->o->herd_nets, x->depth, apd__now() - t0);
    sel_free(&s);
    return st;
}
