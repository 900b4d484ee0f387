/* apd/train.h: the evaluation protocol of dataset distillation: train a fresh ConvNet on a
 * (small, distilled) training set with DSA augmentation, then test it on a real test set.
 *
 * The protocol (docs/method.md section 6.2; `evaluate_synset` of the DC/DSA/DM code):
 * - ConvNet (apd/nn.h defaults: width 128, instance norm, padding 3 for 28x28; depth by
 *   resolution: ConvNetD3 at 28/32 px, D4 at 64 px, D5 at 128 px) freshly initialised from
 *   (seed, run). A batch whose activations exceed APD_CONVNET_ACT_BUDGET (apd/nn.h) runs as
 *   several forward/backward passes with accumulated gradients (the same step up to float
 *   rounding; at 32 px every batch of 256 is one pass).
 * - SGD lr (0.01), momentum 0.9, weight decay 5e-4; hard labels and softmax cross-entropy,
 *   or soft labels (opts.train_soft, format 1.1 files) and soft cross-entropy;
 *   minibatches of `batch` (256) drawn by a seeded shuffle each pass, last batch partial.
 * - epochs + 1 passes over the data (the reference loops `range(Epoch + 1)`); after pass
 *   number epochs/2 + 1 (0-based) the learning rate is multiplied by 0.1 and the momentum
 *   buffer is reset (the reference re-creates the optimizer). So 1000 epochs = 1001 passes,
 *   passes 0..501 at lr and 502..1000 at lr/10.
 * - Every training batch goes through DSA (`color_crop_cutout_flip_scale_rotate`, one op per
 *   batch, per-image parameters) unless opts.dsa is 0.
 * - The test set (uint8, normalised with the same mean/std) is classified once at the end.
 * Randomness: init, shuffles and DSA all derive from (seed, run): the same arguments and
 * thread count give the same accuracy.
 *
 *     apd_eval_opts o; apd_eval_opts_default(&o);
 *     o.epochs = 300; o.seed = 1; o.run = r; o.pool = pool;
 *     apd_eval_result res;
 *     apd_err err;
 *     if (apd_eval_train_test(&res, syn_x, syn_y, n_syn, 3, 32, 32, &test, mean, std, &o,
 *                             &err) != APD_OK) ...;
 *     printf("%.2f%%\n", 100 * res.test_acc);
 *
 * Thread safety: reentrant; one call uses opts->pool (see apd/nn.h) and nothing global.
 */
#ifndef APD_TRAIN_H
#define APD_TRAIN_H

#include "apd/dataset.h"
#include "apd/dsa.h"
#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct apd_pool apd_pool; /* apd/nn.h */
typedef struct apd_convnet apd_convnet; /* apd/nn.h */

/* Per-pass callback (progress, logging): pass in [0, passes), loss = mean training loss of
 * the pass, acc = training accuracy of the pass (on augmented batches). Return non-zero to
 * stop (the call then returns APD_ECANCELED). */
typedef int (*apd_eval_pass_fn)(void *user, uint32_t pass, uint32_t passes, float loss, float acc);

typedef struct apd_eval_opts {
    uint32_t epochs;      /* 1000 (passes = epochs + 1) */
    float lr;             /* 0.01 */
    float momentum;       /* 0.9 */
    float weight_decay;   /* 5e-4 */
    uint32_t batch;       /* 256 */
    uint32_t test_batch;  /* 256 */
    uint64_t seed;        /* 0 */
    uint32_t run;         /* run index: a different network / shuffle / DSA stream per run */
    int dsa;              /* 1: DSA per-image augmentation of every training batch */
    apd_dsa_opts dsa_cfg; /* apd_dsa_opts_default */
    uint32_t width, depth; /* ConvNet width 128; depth 0 = apd_convnet_default_depth(h, w) */
    uint64_t act_budget;  /* activation bytes per pass (0 = APD_CONVNET_ACT_BUDGET, apd/nn.h) */
    apd_pool *pool;       /* borrowed, may be NULL (single-threaded) */
    apd_eval_pass_fn on_pass; /* may be NULL */
    void *user;
    const float *train_soft; /* NULL: hard labels. Else [n_train, test->n_classes] class
                                probabilities per training image (each row finite, >= 0,
                                summing to 1 within 1e-3): the loss is the soft cross-entropy
                                (apd_xent_soft_forward); train_y still gives the training
                                accuracy. Borrowed. */
} apd_eval_opts;

APD_API void apd_eval_opts_default(apd_eval_opts *o);

typedef struct apd_eval_result {
    double test_acc;      /* fraction in [0, 1] */
    uint64_t test_correct, test_n;
    float final_loss;     /* mean training loss of the last pass */
    float final_train_acc;
    double train_seconds, test_seconds;
} apd_eval_result;

/* Train a fresh ConvNet on train_x (already normalised floats) and test on `test`
 * (with soft targets when o->train_soft is set).
 * train_x: [n_train, c, h, w] float32; train_y: n_train labels < test->n_classes.
 * test: uint8 images of the same c x h x w, normalised on the fly as (p/255 - mean)/std.
 * @return APD_OK; APD_EINVAL (NULL, n_train 0, epochs/batch/test_batch 0, a training label
 *         >= test->n_classes, a soft-label row not finite, negative or not summing to 1, a test set without classes, std <= 0 or a non-finite mean);
 *         APD_EMISMATCH (shapes differ; err names both); APD_ELIMIT (n_train > 2^32 - 1);
 *         APD_ECORRUPT (a test label >= test->n_classes); APD_ENOMEM; APD_ENUMERIC (loss
 *         or weights became NaN/inf); APD_ECANCELED (on_pass asked to stop); errors of
 *         apd_convnet_create / apd_dsa_draw (apd/nn.h, apd/dsa.h). */
APD_API apd_status apd_eval_train_test(apd_eval_result *res, const float *train_x,
                                       const uint32_t *train_y, size_t n_train, uint32_t c,
                                       uint32_t h, uint32_t w, const apd_dataset *test,
                                       const float mean[3], const float std[3],
                                       const apd_eval_opts *o, apd_err *err);

/* Normalise uint8 CHW images to float: out = (p/255 - mean[ch]) / std[ch].
 * out: [n, c, h, w]; pixels: n*c*h*w bytes. */
APD_API void apd_eval_normalize(float *out, const uint8_t *pixels, size_t n, uint32_t c,
                                size_t hw, const float mean[3], const float std[3]);

/* One training step's gradients, the step the evaluation above takes (and the distillation's
 * pool of partly trained networks, apd/distill.h net_pool): the mean cross-entropy of the nb
 * images x ([nb, c, h, w], normalised) against hard labels y, or soft targets soft ([nb, K])
 * when soft is not NULL, back-propagated into apd_convnet_grads(net), which are zeroed first.
 * The batch runs as passes of at most mb images (mb <= the net's max_batch, e.g. from
 * apd_convnet_batch_for_budget); pass j adds its gradient with dloss = m_j / nb, exactly 1 for
 * one pass. logits, probs, dlogits: [nb, K] caller buffers; logits keep the batch's logits
 * (apd_count_correct). *loss_sum: the sum over the batch of the per-image losses. The caller
 * then steps the parameters (apd_sgd_step or apd_sgd_update).
 * @return APD_OK; the codes of apd_convnet_forward / apd_convnet_backward (APD_EINVAL for mb
 *         0 or above the net's batch). */
APD_API apd_status apd_convnet_xent_grads(apd_convnet *net, float *logits, float *probs, float *dlogits,
                                          const float *x, const uint32_t *y, const float *soft, size_t nb,
                                          size_t mb, size_t img, size_t K, double *loss_sum);

/* The standard baseline: `ipc` random images per class of src (seeded; without
 * replacement; classes in label order, images in source order within a class).
 * out must be zeroed; it receives c/h/w/n_classes/class names of src.
 * @return APD_OK; APD_EINVAL (NULL out/src, ipc 0, src without classes or labels);
 *         APD_EEMPTY (a class has fewer than ipc images; err names it); APD_ENOMEM;
 *         errors of apd_dataset_alloc. */
APD_API apd_status apd_eval_random_real(apd_dataset *out, const apd_dataset *src, uint32_t ipc,
                                        uint64_t seed, apd_err *err);

#ifdef __cplusplus
}
#endif
#endif
