/* distill/netpool.c: the queue of partly trained networks the DM loop may match with instead
 * of a fresh random network per iteration (opts.net_pool; the model sampling of IDM, Zhao et
 * al., "Improved Distribution Matching for Dataset Condensation", CVPR 2023).
 *
 * The queue holds up to cap networks as parameter vectors; the network with serial k (the
 * k-th pushed, from 0) lives in slot k % cap, so the queue is the serials
 * [pushed - n, pushed), n = min(pushed, cap), oldest first. Per iteration `it`:
 *   1. if it % every == 0: push a fresh network, initialised from (seed, serial); the oldest
 *      leaves when the queue is full;
 *   2. the matching network: queue entry j, j uniform from (seed, it), copied into the DM
 *      loop's net;
 *   3. after the image step: one queue entry (uniform from another (seed, it) stream) takes
 *      `steps` SGD steps of softmax cross-entropy on real batches of `batch` images drawn
 *      with replacement from every class ((seed, it, step)); the step's gradients come from
 *      apd_convnet_xent_grads (the evaluation's training step, apd/train.h), its update is
 *      apd_sgd_update with the evaluation's lr, momentum and weight decay.
 * Nothing depends on the synthetic images, the process or the classes it owns: every process
 * of a class-parallel run keeps the same queue. The state after an iteration is the pushed
 * count, each slot's parameters, momentum and step count: apd__netpool_parts lists it for the
 * checkpoint (slots never filled stay zero, so the checkpoint bytes are deterministic).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "apd/train.h"
#include "common/internal.h"
#include "distill/distill_internal.h"

/* stream tags (the DM loop's use 1..8 << 56) */
#define ST_POOL_NET (9ull << 56)
#define ST_POOL_PICK (10ull << 56)
#define ST_POOL_TRAIN (11ull << 56)
#define ST_POOL_BATCH (12ull << 56)

/* The pool networks' optimizer: the evaluation protocol's (apd_eval_opts_default). */
#define POOL_LR 0.01f
#define POOL_MOMENTUM 0.9f
#define POOL_WD 5e-4f

void apd__netpool_free(apd__netpool *p)
{
    if (!p) return;
    free(p->w);
    free(p->v);
    free(p->meta);
    apd_convnet_free(p->tnet);
    free(p->xb);
    free(p->logits);
    free(p->probs);
    free(p->dlogits);
    free(p->yb);
    free(p->img8);
    memset(p, 0, sizeof *p);
}

apd_status apd__netpool_create(apd__netpool *p, const apd_distill_opts *o, const apd_convnet_opts *net_cfg,
                               uint64_t act_budget, size_t img, apd_err *err)
{
    memset(p, 0, sizeof *p);
    p->cap = o->net_pool;
    p->every = o->net_pool_every;
    p->steps = o->net_pool_steps;
    p->batch = o->net_pool_batch;
    p->img = img;
    p->K = net_cfg->n_classes;
    apd_convnet_opts cfg = *net_cfg;
    p->mb = apd_convnet_batch_for_budget(&cfg, act_budget, p->batch);
    cfg.max_batch = p->mb ? p->mb : 1;
    apd_status st = apd_convnet_create(&p->tnet, &cfg);
    if (st != APD_OK) return apd__err_set(err, st, "distill: network queue: ConvNet: %s", apd_strerror(st));
    if (p->mb == 0) p->mb = 1;
    p->np = apd_convnet_num_params(p->tnet);
    size_t n = (size_t)p->cap * p->np;
    p->w = calloc(n, sizeof(float));
    p->v = calloc(n, sizeof(float));
    p->meta = calloc((size_t)p->cap + 1, sizeof(uint64_t));
    p->xb = malloc((size_t)p->batch * img * sizeof(float));
    p->logits = malloc((size_t)p->batch * p->K * sizeof(float));
    p->probs = malloc((size_t)p->batch * p->K * sizeof(float));
    p->dlogits = malloc((size_t)p->batch * p->K * sizeof(float));
    p->yb = malloc((size_t)p->batch * sizeof(uint32_t));
    p->img8 = malloc(img);
    if (!p->w || !p->v || !p->meta || !p->xb || !p->logits || !p->probs || !p->dlogits || !p->yb || !p->img8)
        return apd__err_set(err, APD_ENOMEM, "distill: network queue of %u networks: out of memory", p->cap);
    return APD_OK;
}

/* meta[0]: networks pushed so far; meta[1 + slot]: SGD steps of the slot's network */
static uint64_t queued(const apd__netpool *p) { return p->meta[0] < p->cap ? p->meta[0] : p->cap; }

apd_status apd__netpool_net(apd__netpool *p, apd_convnet *net, uint64_t seed, uint64_t it, uint32_t *age)
{
    if (it % p->every == 0) {
        uint64_t serial = p->meta[0]++;
        size_t slot = (size_t)(serial % p->cap);
        apd_convnet_init(p->tnet, apd__mix64(seed ^ (ST_POOL_NET | serial)), 0);
        memcpy(p->w + slot * p->np, apd_convnet_params(p->tnet), p->np * sizeof(float));
        memset(p->v + slot * p->np, 0, p->np * sizeof(float));
        p->meta[1 + slot] = 0;
    }
    uint64_t n = queued(p);
    if (n == 0) return APD_EBADSTATE; /* not reached: iteration 0 pushes */
    apd__rng r;
    apd__rng_seed(&r, seed, ST_POOL_PICK | it);
    uint64_t serial = p->meta[0] - n + apd__rng_below(&r, n);
    size_t slot = (size_t)(serial % p->cap);
    memcpy(apd_convnet_params(net), p->w + slot * p->np, p->np * sizeof(float));
    if (age) *age = (uint32_t)p->meta[1 + slot];
    return APD_OK;
}

apd_status apd__netpool_train(apd__netpool *p, apd_distill_source *src, const float lut[3][256], uint64_t seed,
                              uint64_t it, double *loss, apd_err *err)
{
    *loss = 0;
    uint64_t n = queued(p);
    if (n == 0 || p->steps == 0) return APD_OK;
    apd__rng r;
    apd__rng_seed(&r, seed, ST_POOL_TRAIN | it);
    size_t slot = (size_t)((p->meta[0] - n + apd__rng_below(&r, n)) % p->cap);
    float *w = p->w + slot * p->np, *v = p->v + slot * p->np;
    float *prm = apd_convnet_params(p->tnet);
    memcpy(prm, w, p->np * sizeof(float));
    size_t hw = (size_t)src->h * src->w;
    double lsum = 0;
    for (uint32_t step = 0; step < p->steps; step++) {
        apd__rng_seed(&r, seed, ST_POOL_BATCH | (it << 16) | step);
        for (uint32_t t = 0; t < p->batch; t++) {
            uint64_t id = apd__rng_below(&r, src->n);
            const uint8_t *im;
            APD_TRY(apd__dsrc_image(src, id, p->img8, &im, err));
            apd__lut_image(p->xb + (size_t)t * p->img, im, lut, src->c, hw);
            p->yb[t] = src->labels[id];
        }
        double bsum = 0;
        apd_status st = apd_convnet_xent_grads(p->tnet, p->logits, p->probs, p->dlogits, p->xb, p->yb, NULL,
                                               p->batch, p->mb, p->img, p->K, &bsum);
        if (st != APD_OK)
            return apd__err_set(err, st, "distill: network queue: training step at iteration %llu: %s",
                                (unsigned long long)it, apd_strerror(st));
        if (!isfinite(bsum))
            return apd__err_set(err, APD_ENUMERIC, "distill: network queue: training loss diverged at iteration %llu",
                                (unsigned long long)it);
        apd_sgd_update(prm, v, apd_convnet_grads(p->tnet), p->np, POOL_LR, POOL_MOMENTUM, POOL_WD,
                       p->meta[1 + slot] == 0);
        p->meta[1 + slot]++;
        lsum += bsum / p->batch;
        if (p->prog) {
            char note[48];
            snprintf(note, sizeof note, "loss %.3f", bsum / p->batch);
            p->prog(p->prog_user, "teacher", step + 1, p->steps, note);
        }
    }
    memcpy(w, prm, p->np * sizeof(float));
    *loss = lsum / p->steps;
    return APD_OK;
}

size_t apd__netpool_parts(apd__netpool *p, void *ptr[3], size_t len[3])
{
    size_t n = (size_t)p->cap * p->np * sizeof(float);
    ptr[0] = p->meta;
    len[0] = ((size_t)p->cap + 1) * sizeof(uint64_t);
    ptr[1] = p->w;
    len[1] = n;
    ptr[2] = p->v;
    len[2] = n;
    return 3;
}

apd_status apd__netpool_trained_net(const apd_convnet_opts *net_cfg, uint64_t act_budget, size_t img,
                                    apd_distill_source *src, const float lut[3][256], uint64_t seed, uint32_t steps,
                                    uint32_t batch, apd_progress_fn prog, void *prog_user, apd_convnet *net,
                                    double *loss, apd_err *err)
{
    apd_distill_opts po;
    apd_distill_opts_default(&po);
    po.net_pool = 1;
    po.net_pool_every = UINT32_MAX; /* one push, at "iteration" 0 */
    po.net_pool_steps = steps;
    po.net_pool_batch = batch;
    apd__netpool p;
    apd_status st = apd__netpool_create(&p, &po, net_cfg, act_budget, img, err);
    p.prog = prog;
    p.prog_user = prog_user;
    if (st == APD_OK && prog) prog(prog_user, "teacher", 0, steps, NULL);
    if (st == APD_OK) st = apd__netpool_net(&p, net, seed, 0, NULL); /* a fresh network */
    if (st == APD_OK) st = apd__netpool_train(&p, src, lut, seed, 0, loss, err);
    if (st == APD_OK) memcpy(apd_convnet_params(net), p.w, p.np * sizeof(float));
    apd__netpool_free(&p);
    return st;
}
