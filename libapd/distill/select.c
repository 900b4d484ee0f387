/* distill/select.c: colour-guided initialisation (AUTOPALETTE.md section 4).
 *
 * 1. Every candidate real image is quantized to K colours with median cut (apd_quantize_image).
 * 2. A ConvNetD3 is trained on the quantized images from scratch: cross-entropy, no
 *    augmentation, SGD lr select_lr (0.1), momentum 0.9, weight decay 5e-4, no schedule,
 *    select_epochs epochs (reference 50; CPU default 2), batch select_batch, seeded.
 * 3. Per class, the 2048-d embeddings of its quantized images feed the graph-cut stochastic
 *    greedy (graphcut.c; lambda 1, epsilon 0.9), budget = synthetic images per class.
 * 4. The selected images, in their ORIGINAL full colour, initialise the synthetic set.
 * Candidates: all images of each class, or (select_limit > 0, a CPU-time cut stated in the
 * provenance) a seeded random subset of select_limit per class, used both to train the
 * selection network and as the candidate pool. Within a class the chosen ids are returned
 * in ascending dataset order (as the reference).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "common/progress.h"
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

apd_status apd__select_graphcut(apd_distill_ctx *x, uint64_t *src, apd_err *err)
{
    const apd_distill_opts *o = x->o;
    const apd_dataset *real = x->real;
    FILE *lg = o->log ? (FILE *)o->log : stderr;
    size_t img = (size_t)x->c * x->h * x->w, p = (size_t)x->h * x->w;
    apd_status st = APD_OK;
    uint32_t C = x->n_classes;

    uint64_t *cls_n = calloc(C, sizeof *cls_n), *cls_off = calloc(C + 1, sizeof *cls_off);
    uint64_t *all = malloc((size_t)real->n * sizeof *all);
    uint64_t *cand = NULL;
    uint8_t *qimg = NULL;
    uint32_t *labels = NULL, *order = NULL;
    float *xb = NULL, *logits = NULL, *probs = NULL, *dlogits = NULL, *feat = NULL;
    uint64_t *pick = NULL;
    apd_pool *pool = NULL;
    apd_convnet *net = NULL;
    apd_sgd *opt = NULL;
    if (!cls_n || !cls_off || !all) goto oom;

    /* candidates, class-major: all of each class or a seeded subset */
    for (uint64_t i = 0; i < real->n; i++) cls_n[real->labels[i]]++;
    for (uint32_t c = 0; c < C; c++) cls_off[c + 1] = cls_off[c] + cls_n[c];
    {
        uint64_t *fill = calloc(C, sizeof *fill);
        if (!fill) goto oom;
        for (uint64_t i = 0; i < real->n; i++) {
            uint32_t c = real->labels[i];
            all[cls_off[c] + fill[c]++] = i;
        }
        free(fill);
    }
    uint64_t n_cand = 0;
    for (uint32_t c = 0; c < C; c++) {
        uint64_t m = cls_n[c];
        uint64_t *a = all + cls_off[c];
        if (o->select_limit && o->select_limit < m) {
            apd_rng r;
            apd_rng_seed(&r, x->seed, ST_SEL_SUB * 1000 + c);
            for (uint64_t t = 0; t < o->select_limit; t++) {
                uint64_t j = t + apd_rng_below(&r, m - t);
                uint64_t tmp = a[t];
                a[t] = a[j];
                a[j] = tmp;
            }
            m = o->select_limit;
            qsort(a, (size_t)m, sizeof *a, cmp_u64);
        }
        if (m < x->images_per_class) {
            st = apd__err_set(err, APD_EINVAL, "distill: class %u has %llu candidates for %llu images", c,
                              (unsigned long long)m, (unsigned long long)x->images_per_class);
            goto out;
        }
        cls_n[c] = m;
        n_cand += m;
    }
    cand = malloc((size_t)n_cand * sizeof *cand);
    labels = malloc((size_t)n_cand * sizeof *labels);
    qimg = malloc((size_t)n_cand * img);
    if (!cand || !labels || !qimg) goto oom;
    {
        uint64_t k = 0;
        for (uint32_t c = 0; c < C; c++)
            for (uint64_t t = 0; t < cls_n[c]; t++) {
                cand[k] = all[cls_off[c] + t];
                labels[k] = c;
                k++;
            }
        /* class-major offsets of the candidate list */
        cls_off[0] = 0;
        for (uint32_t c = 0; c < C; c++) cls_off[c + 1] = cls_off[c] + cls_n[c];
    }

    /* 1. median-cut quantization of the candidates */
    double t0 = apd__now();
    {
        uint8_t pal[256 * 3];
        uint8_t *idx = malloc(p);
        if (!idx) goto oom;
        for (uint64_t i = 0; i < n_cand; i++) {
            uint32_t ku = 0;
            const uint8_t *im = real->pixels + cand[i] * img;
            st = apd_quantize_image(APD_QUANT_MEDIAN_CUT, im, x->c, x->h, x->w, x->k, 0, pal, idx, &ku);
            if (st != APD_OK) {
                free(idx);
                apd__err_set(err, st, "distill: median cut of image %llu failed", (unsigned long long)cand[i]);
                goto out;
            }
            uint8_t *q = qimg + i * img;
            for (uint32_t ch = 0; ch < x->c; ch++)
                for (size_t j = 0; j < p; j++) q[ch * p + j] = pal[idx[j] * x->c + ch];
        }
        free(idx);
    }
    double t_quant = apd__now() - t0;

    /* 2. the selection network */
    float lut[3][256];
    for (uint32_t ch = 0; ch < x->c; ch++)
        for (int v = 0; v < 256; v++) lut[ch][v] = ((float)v / 255.0f - x->mean[ch]) / x->std[ch];
    uint32_t B = o->select_batch ? o->select_batch : 128;
    st = apd_pool_create(&pool, x->threads);
    if (st != APD_OK) goto out;
    {
        apd_convnet_config cfg;
        apd_convnet_config_default(&cfg, x->c, x->h, x->w, C);
        cfg.max_batch = B;
        cfg.pool = pool;
        st = apd_convnet_create(&net, &cfg);
        if (st != APD_OK) {
            apd__err_set(err, st, "distill: selection ConvNetD3: %s", apd_strerror(st));
            goto out;
        }
    }
    apd_convnet_init(net, apd_mix64(x->seed ^ ST_SEL_NET), 0);
    st = apd_sgd_create(&opt, apd_convnet_num_params(net), o->select_lr, o->select_momentum, o->select_wd);
    if (st != APD_OK) goto out;
    uint32_t D = (uint32_t)apd_convnet_embed_dim(net);
    xb = malloc((size_t)B * img * sizeof *xb);
    logits = malloc((size_t)B * C * sizeof *logits);
    probs = malloc((size_t)B * C * sizeof *probs);
    dlogits = malloc((size_t)B * C * sizeof *dlogits);
    order = malloc((size_t)n_cand * sizeof *order);
    if (!xb || !logits || !probs || !dlogits || !order) goto oom;
    uint32_t *yb = malloc((size_t)B * sizeof *yb);
    if (!yb) goto oom;
    t0 = apd__now();
    apd_progress pr;
    apd_progress_start(&pr, "select-net", (uint64_t)o->select_epochs * ((n_cand + B - 1) / B));
    for (uint32_t ep = 0; ep < o->select_epochs; ep++) {
        for (uint64_t i = 0; i < n_cand; i++) order[i] = (uint32_t)i;
        apd_rng r;
        apd_rng_seed(&r, x->seed, ST_SEL_EPOCH * 1000 + ep);
        apd_rng_shuffle_u32(&r, order, (size_t)n_cand);
        double lsum = 0;
        uint64_t correct = 0;
        for (uint64_t b0 = 0; b0 < n_cand; b0 += B) {
            uint32_t nb = (uint32_t)((n_cand - b0) < B ? (n_cand - b0) : B);
            for (uint32_t t = 0; t < nb; t++) {
                uint32_t j = order[b0 + t];
                const uint8_t *q = qimg + (size_t)j * img;
                float *d = xb + (size_t)t * img;
                for (uint32_t ch = 0; ch < x->c; ch++)
                    for (size_t k = 0; k < p; k++) d[ch * p + k] = lut[ch][q[ch * p + k]];
                yb[t] = labels[j];
            }
            float loss;
            st = apd_convnet_forward(net, logits, NULL, xb, nb);
            if (st != APD_OK) {
                free(yb);
                goto out;
            }
            apd_xent_forward(&loss, probs, logits, yb, nb, C);
            correct += apd_count_correct(logits, yb, nb, C);
            lsum += (double)loss * nb;
            memset(dlogits, 0, (size_t)nb * C * sizeof *dlogits);
            apd_xent_backward(dlogits, probs, yb, 1.0f, nb, C);
            apd_convnet_zero_grad(net);
            st = apd_convnet_backward(net, NULL, dlogits, NULL, nb, APD_NN_PARAM_GRADS);
            if (st != APD_OK) {
                free(yb);
                goto out;
            }
            apd_sgd_step(opt, apd_convnet_params(net), apd_convnet_grads(net));
            apd_progress_note(&pr, "epoch %u loss %.3f", ep + 1, loss);
            apd_progress_add(&pr, 1);
        }
        if (!isfinite(lsum)) {
            free(yb);
            st = apd__err_set(err, APD_ENUMERIC, "distill: selection network diverged (epoch %u)", ep + 1);
            goto out;
        }
        fprintf(lg, "distill: selection net epoch %u/%u: loss %.4f train acc %.3f\n", ep + 1, o->select_epochs,
                lsum / (double)n_cand, (double)correct / (double)n_cand);
    }
    apd_progress_finish(&pr);
    free(yb);
    double t_train = apd__now() - t0;

    /* 3. features and graph cut per class */
    t0 = apd__now();
    uint64_t max_cls = 0;
    for (uint32_t c = 0; c < C; c++)
        if (cls_n[c] > max_cls) max_cls = cls_n[c];
    feat = malloc((size_t)max_cls * D * sizeof *feat);
    pick = malloc((size_t)x->images_per_class * sizeof *pick);
    if (!feat || !pick) goto oom;
    for (uint32_t c = 0; c < C; c++) {
        uint64_t m = cls_n[c];
        for (uint64_t b0 = 0; b0 < m; b0 += B) {
            uint32_t nb = (uint32_t)((m - b0) < B ? (m - b0) : B);
            for (uint32_t t = 0; t < nb; t++) {
                const uint8_t *q = qimg + (cls_off[c] + b0 + t) * img;
                float *d = xb + (size_t)t * img;
                for (uint32_t ch = 0; ch < x->c; ch++)
                    for (size_t k = 0; k < p; k++) d[ch * p + k] = lut[ch][q[ch * p + k]];
            }
            st = apd_convnet_forward(net, NULL, feat + b0 * D, xb, nb);
            if (st != APD_OK) goto out;
        }
        st = apd_graphcut_select(feat, m, D, x->images_per_class, o->gc_lambda, o->gc_epsilon,
                                 apd_mix64(x->seed ^ (ST_SEL_GC * 1000 + c)), pick, err);
        if (st != APD_OK) goto out;
        uint64_t *dst = src + (uint64_t)c * x->images_per_class;
        for (uint64_t t = 0; t < x->images_per_class; t++) dst[t] = cand[cls_off[c] + pick[t]];
        qsort(dst, (size_t)x->images_per_class, sizeof *dst, cmp_u64);
    }
    fprintf(lg, "distill: colour-guided init: %llu candidates, median cut K %u %.1fs, selection net %u epochs "
                "%.1fs, features + graph cut %.1fs\n",
            (unsigned long long)n_cand, x->k, t_quant, o->select_epochs, t_train, apd__now() - t0);
    st = APD_OK;
    goto out;
oom:
    st = apd__err_set(err, APD_ENOMEM, "distill: out of memory in the colour-guided initialisation");
out:
    apd_sgd_free(opt);
    apd_convnet_free(net);
    apd_pool_free(pool);
    free(cls_n);
    free(cls_off);
    free(all);
    free(cand);
    free(labels);
    free(qimg);
    free(order);
    free(xb);
    free(logits);
    free(probs);
    free(dlogits);
    free(feat);
    free(pick);
    return st;
}
