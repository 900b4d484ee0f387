/* nn/train.c: the evaluation protocol (train a fresh ConvNet with DSA, test on real data).
 * Contract and protocol: include/apd/train.h. All buffers are allocated once up front; the
 * training loop itself does not allocate.
 *
 * Random streams, all from (opts->seed, opts->run), so that runs are independent and each
 * is reproducible on its own: network init, per-pass shuffles and DSA draws use separate
 * apd__rng streams; the DSA draw of training step t uses stream t.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "apd/train.h"
#include "common/internal.h"
#include "common/rng.h"

void apd_eval_opts_default(apd_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 1000;
    o->lr = 0.01f;
    o->momentum = 0.9f;
    o->weight_decay = 5e-4f;
    o->batch = 256;
    o->test_batch = 256;
    o->seed = 0;
    o->run = 0;
    o->dsa = 1;
    apd_dsa_opts_default(&o->dsa_cfg);
    o->width = 128;
    o->depth = 0; /* by resolution: apd_convnet_default_depth */
}

void apd_eval_normalize(float *out, const uint8_t *px, size_t n, uint32_t c, size_t hw,
                        const float mean[3], const float std[3])
{
    for (size_t i = 0; i < n; i++) {
        for (uint32_t ch = 0; ch < c; ch++) {
            const float m = mean[ch], is = 1.0f / std[ch];
            const uint8_t *p = px + (i * c + ch) * hw;
            float *q = out + (i * c + ch) * hw;
            for (size_t k = 0; k < hw; k++) q[k] = ((float)p[k] / 255.0f - m) * is;
        }
    }
}

static uint64_t stream_of(uint32_t run, uint32_t what)
{
    return apd__mix64(((uint64_t)run << 8) | what);
}

/* One evaluation: the network, its optimizer and every buffer, allocated once. */
typedef struct eval_run {
    const apd_eval_opts *o;
    const float *train_x;      /* [n_train, c, h, w] */
    const uint32_t *train_y;   /* [n_train] */
    size_t n_train;
    uint32_t c, h, w, K;
    size_t B, TB, img;         /* train batch, test batch, c*h*w */
    size_t MB;                 /* images per forward/backward pass (the net's max_batch <= B):
                                  a batch whose activations exceed APD_CONVNET_ACT_BUDGET runs
                                  as several passes with accumulated gradients */
    apd_convnet *net;
    apd_sgd *opt;
    float *xb, *xa, *logits, *probs, *dlogits; /* [maxb, img], [B, img], [maxb, K], [B, K] x2 */
    float *tb;                                 /* [B, K] soft targets of the batch, or NULL */
    uint32_t *yb, *perm;                       /* [maxb], [n_train] */
    apd_dsa_sample *samples;                   /* [B] */
    apd__rng rshuf;             /* per-pass shuffles */
    uint64_t dsa_seed, step;   /* DSA draw of training step t: stream t */
} eval_run;

static void eval_free(eval_run *r)
{
    apd_sgd_free(r->opt);
    apd_convnet_free(r->net);
    free(r->xb);
    free(r->xa);
    free(r->logits);
    free(r->probs);
    free(r->dlogits);
    free(r->tb);
    free(r->yb);
    free(r->perm);
    free(r->samples);
}

static apd_status eval_failed(apd_err *err, apd_status st)
{
    return apd__err_set(err, st, "evaluation training failed: %s", apd_strerror(st));
}

/* Arguments, labels and normalisation; sets r->K. */
static apd_status eval_check(eval_run *r, const apd_dataset *test, const float mean[3], const float std[3],
                             apd_err *err)
{
    if (test->c != r->c || test->h != r->h || test->w != r->w)
        return apd__err_set(err, APD_EMISMATCH,
                            "training images are %ux%ux%u (CxHxW) but test set %s is %ux%ux%u",
                            r->c, r->h, r->w, test->source[0] ? test->source : test->name, test->c,
                            test->h, test->w);
    const uint32_t K = test->n_classes;
    if (K == 0) return apd__err_set(err, APD_EINVAL, "test set has no classes");
    if (r->n_train > UINT32_MAX) return apd__err_set(err, APD_ELIMIT, "too many training images");
    for (size_t i = 0; i < r->n_train; i++)
        if (r->train_y[i] >= K)
            return apd__err_set(err, APD_EINVAL,
                                "training image %zu has label %u but the test set has %u classes",
                                i, r->train_y[i], K);
    for (uint64_t i = 0; i < test->n; i++)
        if (test->labels[i] >= K)
            return apd__err_set(err, APD_ECORRUPT, "test image %llu has label %u >= %u classes",
                                (unsigned long long)i, test->labels[i], K);
    const float *ts = r->o->train_soft;
    for (size_t i = 0; ts && i < r->n_train; i++) {
        double sum = 0;
        for (uint32_t k = 0; k < K; k++) {
            const float v = ts[i * K + k];
            if (!(v >= 0.0f) || !isfinite(v))
                return apd__err_set(err, APD_EINVAL, "training image %zu: soft label of class %u is %g", i, k,
                                    (double)v);
            sum += v;
        }
        if (!(fabs(sum - 1.0) <= 1e-3))
            return apd__err_set(err, APD_EINVAL, "training image %zu: soft labels sum to %g, not 1", i, sum);
    }
    for (uint32_t ch = 0; ch < r->c; ch++)
        if (!(std[ch] > 0.0f) || !isfinite(mean[ch]))
            return apd__err_set(err, APD_EINVAL, "bad normalisation for channel %u: mean %g std %g",
                                ch, (double)mean[ch], (double)std[ch]);
    r->K = K;
    return APD_OK;
}

/* The ConvNet (initialised from (seed, run)), the optimizer, the buffers and the streams. */
static apd_status eval_setup(eval_run *r, apd_err *err)
{
    const apd_eval_opts *o = r->o;
    const size_t n_train = r->n_train, K = r->K;
    r->B = o->batch < n_train ? o->batch : n_train;
    r->TB = o->test_batch;
    r->img = (size_t)r->c * r->h * r->w;
    const size_t B = r->B, maxb = B > r->TB ? B : r->TB, img = r->img;

    apd_convnet_opts cfg;
    apd_convnet_opts_default(&cfg, r->c, r->h, r->w, r->K);
    cfg.width = o->width ? o->width : 128;
    if (o->depth) cfg.depth = o->depth;
    cfg.pool = o->pool;
    r->MB = apd_convnet_batch_for_budget(&cfg, o->act_budget ? (size_t)o->act_budget : APD_CONVNET_ACT_BUDGET,
                                         (uint32_t)B);
    cfg.max_batch = r->MB ? (uint32_t)r->MB : 1; /* 0: the cfg is bad; create says why */
    apd_status st = apd_convnet_create(&r->net, &cfg);
    if (st != APD_OK)
        return apd__err_set(err, st, "cannot create ConvNet (width %u, depth %u) for %ux%ux%u: %s",
                            cfg.width, cfg.depth, r->c, r->h, r->w, apd_strerror(st));
    st = apd_sgd_create(&r->opt, apd_convnet_num_params(r->net), o->lr, o->momentum, o->weight_decay);
    if (st != APD_OK) return eval_failed(err, st);
    r->xb = malloc(maxb * img * sizeof(float));
    r->xa = malloc(B * img * sizeof(float));
    r->logits = malloc(maxb * K * sizeof(float));
    r->probs = malloc(B * K * sizeof(float));
    r->dlogits = malloc(B * K * sizeof(float));
    r->yb = malloc(maxb * sizeof(uint32_t));
    r->perm = malloc(n_train * sizeof(uint32_t));
    r->samples = malloc(B * sizeof(apd_dsa_sample));
    if (o->train_soft && !(r->tb = malloc(B * K * sizeof(float)))) return eval_failed(err, APD_ENOMEM);
    if (!r->xb || !r->xa || !r->logits || !r->probs || !r->dlogits || !r->yb || !r->perm || !r->samples)
        return eval_failed(err, APD_ENOMEM);

    apd__rng_seed(&r->rshuf, o->seed, stream_of(o->run, 2));
    r->dsa_seed = o->seed ^ stream_of(o->run, 3);
    apd_convnet_init(r->net, o->seed, stream_of(o->run, 1));
    for (size_t i = 0; i < n_train; i++) r->perm[i] = (uint32_t)i;
    return APD_OK;
}

apd_status apd_convnet_xent_grads(apd_convnet *net, float *logits, float *probs, float *dlogits, const float *x,
                                  const uint32_t *y, const float *soft, size_t nb, size_t mb, size_t img, size_t K,
                                  double *loss_sum)
{
    APD_RETURN_IF(net == NULL || mb == 0 || loss_sum == NULL, APD_EINVAL);
    double bsum = 0;
    apd_convnet_zero_grad(net);
    for (size_t m0 = 0; m0 < nb; m0 += mb) {
        /* one pass (the whole batch unless it exceeds the activation budget); the batch
         * mean's gradient is the sum of the passes' with dloss = mn / nb (exactly 1 for
         * a single pass) */
        const size_t mn = nb - m0 < mb ? nb - m0 : mb;
        float *lg = logits + m0 * K, *pr = probs + m0 * K, *dl = dlogits + m0 * K;
        APD_TRY(apd_convnet_forward(net, lg, NULL, x + m0 * img, mn));
        float loss;
        const float scale = mn == nb ? 1.0f : (float)mn / (float)nb;
        const float *tb = soft ? soft + m0 * K : NULL; /* soft targets, if any */
        if (tb) apd_xent_soft_forward(&loss, pr, lg, tb, mn, K);
        else apd_xent_forward(&loss, pr, lg, y + m0, mn, K);
        bsum += (double)loss * (double)mn;
        memset(dl, 0, mn * K * sizeof(float));
        if (tb) apd_xent_soft_backward(dl, pr, tb, scale, mn, K);
        else apd_xent_backward(dl, pr, y + m0, scale, mn, K);
        APD_TRY(apd_convnet_backward(net, NULL, dl, NULL, mn, APD_NN_PARAM_GRADS));
    }
    *loss_sum = bsum;
    return APD_OK;
}

/* One pass over the training set in a fresh seeded order: *loss_sum (sum of batch loss x
 * batch size) and *correct. */
static apd_status eval_pass(eval_run *r, uint32_t pass, double *loss_sum, size_t *correct, apd_err *err)
{
    const apd_eval_opts *o = r->o;
    const size_t B = r->B, img = r->img, n_train = r->n_train, K = r->K;
    apd_status st;
    apd__rng_shuffle_u32(&r->rshuf, r->perm, n_train);
    *loss_sum = 0;
    *correct = 0;
    for (size_t s0 = 0; s0 < n_train; s0 += B, r->step++) {
        const size_t nb = n_train - s0 < B ? n_train - s0 : B;
        for (size_t i = 0; i < nb; i++) {
            memcpy(r->xb + i * img, r->train_x + (size_t)r->perm[s0 + i] * img, img * sizeof(float));
            r->yb[i] = r->train_y[r->perm[s0 + i]];
            if (r->tb) memcpy(r->tb + i * K, o->train_soft + (size_t)r->perm[s0 + i] * K, K * sizeof(float));
        }
        const float *xin = r->xb;
        if (o->dsa) {
            apd_dsa_params dp;
            st = apd_dsa_draw(&dp, r->samples, B, &o->dsa_cfg, APD_DSA_PER_IMAGE, r->dsa_seed, r->step,
                              (uint32_t)nb, r->h, r->w);
            if (st == APD_OK) st = apd_dsa_forward(r->xa, r->xb, &dp, (uint32_t)nb, r->c, r->h, r->w);
            if (st != APD_OK) return eval_failed(err, st);
            xin = r->xa;
        }
        double bsum = 0; /* sum over the batch of the per-image losses */
        st = apd_convnet_xent_grads(r->net, r->logits, r->probs, r->dlogits, xin, r->yb, r->tb, nb, r->MB, img, K,
                                    &bsum);
        if (st != APD_OK) return eval_failed(err, st);
        if (!isfinite(bsum))
            return apd__err_set(err, APD_ENUMERIC, "training loss became %g at pass %u (lr %g too high?)",
                                bsum / (double)nb, pass, (double)apd_sgd_get_lr(r->opt));
        *loss_sum += bsum;
        *correct += apd_count_correct(r->logits, r->yb, nb, K);
        apd_sgd_step(r->opt, apd_convnet_params(r->net), apd_convnet_grads(r->net));
    }
    /* ReLU maps NaN to 0, so a diverged network can still give finite losses: check the
     * weights themselves once per pass (cheap next to a pass). */
    const float *prm = apd_convnet_params(r->net);
    const size_t np = apd_convnet_num_params(r->net);
    float acc = 0;
    for (size_t i = 0; i < np; i++) acc += prm[i] * 0.0f; /* NaN/inf -> NaN */
    if (acc != 0.0f)
        return apd__err_set(err, APD_ENUMERIC, "network weights became non-finite at pass %u (lr %g too "
                            "high, or non-finite input?)", pass, (double)apd_sgd_get_lr(r->opt));
    return APD_OK;
}

/* All passes with the step schedule and the per-pass callback. */
static apd_status eval_train(eval_run *r, apd_eval_result *res, apd_err *err)
{
    const apd_eval_opts *o = r->o;
    const uint32_t passes = o->epochs + 1, decay_after = o->epochs / 2 + 1;
    for (uint32_t pass = 0; pass < passes; pass++) {
        double loss_sum;
        size_t correct;
        APD_TRY(eval_pass(r, pass, &loss_sum, &correct, err));
        res->final_loss = (float)(loss_sum / (double)r->n_train);
        res->final_train_acc = (float)correct / (float)r->n_train;
        if (pass == decay_after) {
            /* the reference re-creates the optimizer: lr x 0.1 and a fresh momentum buffer */
            apd_sgd_set_lr(r->opt, apd_sgd_get_lr(r->opt) * 0.1f);
            apd_sgd_reset(r->opt);
        }
        if (o->on_pass && o->on_pass(o->user, pass, passes, res->final_loss, res->final_train_acc))
            return apd__err_set(err, APD_ECANCELED, "evaluation stopped at pass %u", pass);
    }
    return APD_OK;
}

/* Classify the test set once (normalised on the fly). */
static apd_status eval_test(eval_run *r, const apd_dataset *test, const float mean[3], const float std[3],
                            uint64_t *test_correct, apd_err *err)
{
    *test_correct = 0;
    for (uint64_t s0 = 0; s0 < test->n; s0 += r->TB) {
        const size_t nb = (size_t)(test->n - s0 < r->TB ? test->n - s0 : r->TB);
        apd_eval_normalize(r->xb, test->pixels + s0 * r->img, nb, r->c, (size_t)r->h * r->w, mean, std);
        apd_status st = apd_convnet_forward_nograd(r->net, r->logits, NULL, r->xb, nb);
        if (st != APD_OK) return eval_failed(err, st);
        *test_correct += apd_count_correct(r->logits, test->labels + s0, nb, r->K);
    }
    return APD_OK;
}

apd_status apd_eval_train_test(apd_eval_result *res, const float *train_x,
                               const uint32_t *train_y, size_t n_train, uint32_t c, uint32_t h,
                               uint32_t w, const apd_dataset *test, const float mean[3],
                               const float std[3], const apd_eval_opts *o, apd_err *err)
{
    if (!res || !train_x || !train_y || !test || !mean || !std || !o || n_train == 0 ||
        o->epochs == 0 || o->batch == 0 || o->test_batch == 0 || !test->pixels || !test->labels)
        return apd__err_set(err, APD_EINVAL, "apd_eval_train_test: invalid argument");
    memset(res, 0, sizeof *res);
    eval_run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.train_x = train_x;
    r.train_y = train_y;
    r.n_train = n_train;
    r.c = c;
    r.h = h;
    r.w = w;
    APD_TRY(eval_check(&r, test, mean, std, err));
    uint64_t test_correct = 0;
    apd_status st = eval_setup(&r, err);
    if (st == APD_OK) {
        double t0 = apd__now();
        st = eval_train(&r, res, err);
        if (st == APD_OK) {
            res->train_seconds = apd__now() - t0;
            t0 = apd__now();
            st = eval_test(&r, test, mean, std, &test_correct, err);
        }
        if (st == APD_OK) {
            res->test_seconds = apd__now() - t0;
            res->test_correct = test_correct;
            res->test_n = test->n;
            res->test_acc = test->n ? (double)res->test_correct / (double)test->n : 0.0;
        }
    }
    eval_free(&r);
    return st;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

apd_status apd_eval_random_real(apd_dataset *out, const apd_dataset *src, uint32_t ipc,
                                uint64_t seed, apd_err *err)
{
    if (!out || !src || ipc == 0 || src->n_classes == 0 || !src->labels)
        return apd__err_set(err, APD_EINVAL, "apd_eval_random_real: invalid argument");
    const uint32_t K = src->n_classes;
    uint64_t *counts = calloc(K, sizeof *counts);
    if (!counts) return apd__err_set(err, APD_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < src->n; i++)
        if (src->labels[i] < K) counts[src->labels[i]]++;
    for (uint32_t k = 0; k < K; k++) {
        if (counts[k] < ipc) {
            const int named = src->class_names && src->class_names[k][0];
            apd_status st = apd__err_set(err, APD_EEMPTY,
                                         "%s: class %u%s%s%s has %llu images, fewer than %u",
                                         src->source[0] ? src->source : src->name, k,
                                         named ? " (" : "", named ? src->class_names[k] : "",
                                         named ? ")" : "",
                                         (unsigned long long)counts[k], ipc);
            free(counts);
            return st;
        }
    }
    free(counts);
    apd_status st = apd_dataset_alloc(out, (uint64_t)K * ipc, src->c, src->h, src->w, K);
    if (st != APD_OK) return apd__err_set(err, st, "cannot allocate %u x %u images", K, ipc);
    const size_t img = apd_dataset_image_bytes(src);
    uint64_t *idx = malloc(src->n * sizeof *idx);
    if (!idx) {
        apd_dataset_free(out);
        return apd__err_set(err, APD_ENOMEM, "out of memory");
    }
    uint64_t o = 0;
    for (uint32_t k = 0; k < K; k++) {
        uint64_t m = 0;
        for (uint64_t i = 0; i < src->n; i++)
            if (src->labels[i] == k) idx[m++] = i;
        apd__rng r;
        apd__rng_seed(&r, seed, apd__mix64(0x72616e646f6d00ull + k)); /* "random" + class */
        /* partial Fisher-Yates: the first ipc of a seeded permutation, then source order */
        for (uint64_t j = 0; j < ipc; j++) {
            uint64_t t = j + apd__rng_below(&r, m - j);
            uint64_t tmp = idx[j];
            idx[j] = idx[t];
            idx[t] = tmp;
        }
        qsort(idx, ipc, sizeof *idx, cmp_u64); /* chosen images in source order */
        for (uint64_t j = 0; j < ipc; j++, o++) {
            memcpy(out->pixels + o * img, src->pixels + idx[j] * img, img);
            out->labels[o] = k;
        }
    }
    free(idx);
    if (src->class_names)
        memcpy(out->class_names, src->class_names, (size_t)K * APD_MAX_CLASS_NAME);
    snprintf(out->name, sizeof out->name, "%s", src->name);
    snprintf(out->split, sizeof out->split, "%s", src->split);
    snprintf(out->source, sizeof out->source, "random-real %u/class of %.400s", ipc,
             src->source[0] ? src->source : src->name);
    return APD_OK;
}
