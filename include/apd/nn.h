/* apd/nn.h: the neural-network engine of libapd (CPU, float32, OpenBLAS).
 *
 * What it is: the few ops a ConvNet needs as llm.c-style forward/backward pairs, a ConvNet
 * handle (ConvNetD3 of the dataset-distillation literature and its width/depth variants)
 * whose parameters, gradients and activations live in arenas planned at creation, SGD with
 * momentum and weight decay in PyTorch's semantics, and a small thread pool. It knows
 * nothing about files or datasets.
 *
 * Conventions (every function below follows them):
 * - Tensors are plain `float *`, contiguous, NCHW. Each argument carries a shape comment.
 * - Outputs come first, then caches/scratch, then inputs, then dims (llm.c style).
 * - Backward functions ACCUMULATE (+=) into every gradient buffer they are given, so
 *   gradients from several losses add up; zeroing is explicit (apd_convnet_zero_grad, or
 *   memset by the caller). A NULL gradient pointer means "not wanted" and skips its work.
 * - Every optimised kernel has a naive reference twin (`..._ref`) used by the tests.
 * - The op functions are single-threaded and allocation-free; scratch is the caller's.
 *
 * ConvNet (apd_convnet) = depth x [conv3x3(width) -> instance norm -> ReLU -> avgpool 2x2]
 * -> flatten (the "embed", width * (H'/2^depth) * (W'/2^depth) floats, 2048 for ConvNetD3 on
 * 32x32) -> linear(n_classes). The first convolution uses padding 1, or 3 for 28x28 input
 * (so 28 -> 32, as in the DD literature); all other convolutions padding 1. Instance norm is
 * PyTorch's GroupNorm(C, C): per sample and channel over H x W, biased variance, eps 1e-5,
 * affine (gamma = 1, beta = 0 at init). Init is PyTorch's default: weights and biases
 * U(-1/sqrt(fan_in), +1/sqrt(fan_in)), fan_in = C_in * 9 (conv) or in_features (linear),
 * drawn in parameter order from the library's seeded generator (apd_convnet_init).
 *
 * Parameter order (== PyTorch state_dict order of the reference ConvNet in the DD code):
 *   for each block l: conv_l.weight [width, C_in, 3, 3], conv_l.bias [width],
 *                     (instance norm only) norm_l.weight [width], norm_l.bias [width];
 *   classifier.weight [n_classes, embed_dim], classifier.bias [n_classes].
 *
 * Usage (train one step, then get d loss / d images for a frozen network):
 *
 *     apd_pool *pool; apd_pool_create(&pool, 2);            // 2 worker threads in total
 *     apd_convnet_opts cfg;
 *     apd_convnet_opts_default(&cfg, 3, 32, 32, 10);      // ConvNetD3 (depth from 32 px)
 *     cfg.max_batch = 256; cfg.pool = pool;
 *     apd_convnet *net; if (apd_convnet_create(&net, &cfg) != APD_OK) ...;
 *     apd_convnet_init(net, seed, 0);                       // seeded PyTorch-default init
 *     apd_sgd *opt; apd_sgd_create(&opt, apd_convnet_num_params(net), 0.01f, 0.9f, 5e-4f);
 *     // x: [n, 3, 32, 32] normalised pixels, y: n labels
 *     apd_convnet_forward(net, logits, NULL, x, n);
 *     apd_xent_forward(&loss, probs, logits, y, n, 10);
 *     memset(dlogits, 0, ...); apd_xent_backward(dlogits, probs, y, 1.0f, n, 10);
 *     apd_convnet_zero_grad(net);
 *     apd_convnet_backward(net, NULL, dlogits, NULL, n, APD_NN_PARAM_GRADS);
 *     apd_sgd_step(opt, apd_convnet_params(net), apd_convnet_grads(net));
 *     // distillation: embed, then gradient w.r.t. the input only (no weight-gradient work)
 *     apd_convnet_forward(net, NULL, emb, x, n);
 *     apd_convnet_backward(net, dx, NULL, demb, n, 0);      // dx += d loss / d x
 *
 * Threading: an apd_pool of T threads (the caller's thread is one of them) splits a
 * ConvNet batch into T contiguous slices; each thread runs the whole network on its slice
 * with single-threaded OpenBLAS calls, and per-thread parameter gradients are summed in a
 * fixed order, so results are bit-reproducible for a given seed and thread count (they may
 * differ in the last bits between thread counts). apd_pool_create sets OpenBLAS to one
 * thread (a process-wide OpenBLAS setting) so the two models never oversubscribe the cores.
 * One pool may be shared by several networks, but runs one job at a time (apd_pool_run
 * serialises callers). A network handle must be used by one thread at a time; different
 * handles may be used from different threads (give them different pools or none).
 */
#ifndef APD_NN_H
#define APD_NN_H

#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * Thread pool
 * ====================================================================================== */

typedef struct apd_pool apd_pool;

/* Task callback: `task` in [0, n_tasks), `thread` in [0, apd_pool_threads(pool)). */
typedef void (*apd_pool_fn)(void *ctx, uint32_t task, uint32_t thread);

/* Create a pool of n_threads workers in total (the caller's thread counts as one, so
 * n_threads - 1 threads are started; 0 means 1). Also calls openblas_set_num_threads(1).
 * @return APD_OK, APD_EINVAL (out NULL, n_threads > 256), APD_ENOMEM, APD_EIO (pthread). */
APD_API apd_status apd_pool_create(apd_pool **out, uint32_t n_threads);
/* Join the workers and free. NULL ok. */
APD_API void apd_pool_free(apd_pool *pool);
/* Number of threads (1 for a NULL pool). */
APD_API uint32_t apd_pool_threads(const apd_pool *pool);
/* Run fn for every task in [0, n_tasks); task t runs on thread t % T (static, so
 * per-thread accumulators give deterministic results). Returns when all tasks are done.
 * pool NULL runs everything on the caller's thread. Thread-safe (callers are serialised).
 * Do not call apd_pool_run on the same pool from inside a task. */
APD_API void apd_pool_run(apd_pool *pool, uint32_t n_tasks, apd_pool_fn fn, void *ctx);

/* Process-wide OpenBLAS thread count (openblas_set_num_threads). Only for code that calls
 * big GEMMs outside a pool; the ConvNet does not need it. */
APD_API void apd_nn_set_blas_threads(uint32_t n);

/* Name of the OpenBLAS kernel set in use (openblas_get_corename), e.g. "SkylakeX".
 * Note: OpenBLAS 0.3.21 does not recognise recent Intel CPUs and falls back to slow generic
 * "Prescott" kernels, and gives AMD CPUs with AVX-512 (Zen 4/5) its AVX2 "Haswell"/"Zen"
 * kernels; libapd then switches it, once per process at load time, to SkylakeX when the CPU
 * has AVX-512 and OPENBLAS_CORETYPE is unset (4-5x, resp. ~1.8x faster sgemm). Set
 * APD_BLAS_KEEP_CORE=1 to opt out. */
APD_API const char *apd_nn_blas_core(void);

/* 1 when no-gradient forwards may use bfloat16 GEMMs (apd_convnet_forward_ex with
 * APD_NN_FWD_BF16): the CPU has AVX512_BF16 (run-time cpuid check) and the environment does
 * not set APD_NN_BF16=0 (read at every call). */
APD_API int apd_nn_bf16_enabled(void);
/* One line naming the GEMM/conv kernels the ConvNet dispatches to on this CPU (for logs and
 * benchmarks). Static string. */
APD_API const char *apd_nn_gemm_kernels(void);

/* ======================================================================================
 * Ops: forward/backward pairs (single-threaded, no allocation)
 * ====================================================================================== */

/* --- 2-D convolution, square kernel k (any odd or even k >= 1), stride 1, zero padding
 * `pad` on every side. Ho = H + 2*pad - k + 1, Wo likewise (both must be >= 1).
 * im2col + cblas_sgemm per image. scratch: apd_conv2d_scratch_floats() floats. */
APD_API size_t apd_conv2d_scratch_floats(size_t Ci, size_t H, size_t W, size_t k, size_t pad);
APD_API void apd_conv2d_forward(float *out,         /* [N, Co, Ho, Wo] (overwritten) */
                                float *scratch,     /* [scratch_floats] */
                                const float *in,    /* [N, Ci, H, W] */
                                const float *w,     /* [Co, Ci, k, k] */
                                const float *b,     /* [Co] or NULL (no bias) */
                                size_t N, size_t Ci, size_t H, size_t W, size_t Co, size_t k,
                                size_t pad);
APD_API void apd_conv2d_backward(float *din,        /* [N, Ci, H, W] += , or NULL */
                                 float *dw,         /* [Co, Ci, k, k] += , or NULL */
                                 float *db,         /* [Co] += , or NULL */
                                 float *scratch,    /* [scratch_floats] */
                                 const float *dout, /* [N, Co, Ho, Wo] */
                                 const float *in,   /* [N, Ci, H, W] (needed if dw) */
                                 const float *w,    /* [Co, Ci, k, k] (needed if din) */
                                 size_t N, size_t Ci, size_t H, size_t W, size_t Co, size_t k,
                                 size_t pad);
/* Naive 7-loop references (double accumulation), same contracts, no scratch. */
APD_API void apd_conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                                    size_t N, size_t Ci, size_t H, size_t W, size_t Co, size_t k,
                                    size_t pad);
APD_API void apd_conv2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                                     const float *in, const float *w, size_t N, size_t Ci,
                                     size_t H, size_t W, size_t Co, size_t k, size_t pad);

/* --- 1x1 convolution (a per-pixel linear layer over channels; HW = H*W). */
APD_API void apd_conv1x1_forward(float *out,        /* [N, Co, HW] */
                                 const float *in,   /* [N, Ci, HW] */
                                 const float *w,    /* [Co, Ci] */
                                 const float *b,    /* [Co] or NULL */
                                 size_t N, size_t Ci, size_t HW, size_t Co);
APD_API void apd_conv1x1_backward(float *din,       /* [N, Ci, HW] += , or NULL */
                                  float *dw,        /* [Co, Ci] += , or NULL */
                                  float *db,        /* [Co] += , or NULL */
                                  const float *dout, /* [N, Co, HW] */
                                  const float *in, const float *w, size_t N, size_t Ci,
                                  size_t HW, size_t Co);

/* --- Instance norm (GroupNorm(C, C)): y = gamma_c * (x - mean_nc) * rstd_nc + beta_c,
 * rstd = 1/sqrt(biased var + eps). mean/rstd are caches written by forward. */
#define APD_NN_NORM_EPS 1e-5f
APD_API void apd_instnorm_forward(float *out,       /* [N, C, HW] */
                                  float *mean,      /* [N, C] cache */
                                  float *rstd,      /* [N, C] cache */
                                  const float *in,  /* [N, C, HW] */
                                  const float *gamma, /* [C] or NULL (= 1) */
                                  const float *beta,  /* [C] or NULL (= 0) */
                                  size_t N, size_t C, size_t HW);
APD_API void apd_instnorm_backward(float *din,      /* [N, C, HW] += , or NULL */
                                   float *dgamma,   /* [C] += , or NULL */
                                   float *dbeta,    /* [C] += , or NULL */
                                   const float *dout, const float *in, const float *mean,
                                   const float *rstd, const float *gamma, size_t N, size_t C,
                                   size_t HW);

/* --- ReLU over n floats. Backward uses the forward INPUT (or output: same sign test). */
APD_API void apd_relu_forward(float *out, const float *in, size_t n);
APD_API void apd_relu_backward(float *din /* += */, const float *dout, const float *in, size_t n);

/* --- 2x2 average pooling, stride 2 (H, W even): [NC, H, W] -> [NC, H/2, W/2]. */
APD_API void apd_avgpool2_forward(float *out, const float *in, size_t NC, size_t H, size_t W);
APD_API void apd_avgpool2_backward(float *din /* [NC,H,W] += */, const float *dout, size_t NC,
                                   size_t H, size_t W);

/* --- Linear: out = in @ w^T + b. */
APD_API void apd_linear_forward(float *out,         /* [N, Fout] */
                                const float *in,    /* [N, Fin] */
                                const float *w,     /* [Fout, Fin] */
                                const float *b,     /* [Fout] or NULL */
                                size_t N, size_t Fin, size_t Fout);
APD_API void apd_linear_backward(float *din,        /* [N, Fin] += , or NULL */
                                 float *dw,         /* [Fout, Fin] += , or NULL */
                                 float *db,         /* [Fout] += , or NULL */
                                 const float *dout, /* [N, Fout] */
                                 const float *in, const float *w, size_t N, size_t Fin, size_t Fout);

/* --- Softmax over the channel axis at every position: [N, C, HW] (HW = 1 for logits). */
APD_API void apd_softmax_forward(float *out, const float *in, size_t N, size_t C, size_t HW);
APD_API void apd_softmax_backward(float *din /* += */, const float *dout, const float *out,
                                  size_t N, size_t C, size_t HW);

/* --- Softmax cross-entropy with hard labels, mean over the batch.
 * forward: *loss = -(1/N) sum_i log softmax(logits_i)[label_i]; probs = softmax(logits).
 * backward: dlogits += dloss * (probs - onehot(label)) / N. labels must be < K. */
APD_API void apd_xent_forward(float *loss,          /* scalar */
                              float *probs,         /* [N, K] cache */
                              const float *logits,  /* [N, K] */
                              const uint32_t *labels, /* [N] */
                              size_t N, size_t K);
APD_API void apd_xent_backward(float *dlogits,      /* [N, K] += */
                               const float *probs, const uint32_t *labels, float dloss,
                               size_t N, size_t K);
/* --- Softmax cross-entropy with soft targets (class probabilities), mean over the batch.
 * forward: *loss = -(1/N) sum_i sum_k targets[i, k] log softmax(logits_i)[k]; probs as above.
 * backward: dlogits += dloss * (sum_k targets[i, k] * probs - targets) / N (= probs - targets
 * for rows summing to 1). A one-hot target row gives exactly apd_xent_forward's loss. */
APD_API void apd_xent_soft_forward(float *loss, float *probs, const float *logits,
                                   const float *targets /* [N, K] */, size_t N, size_t K);
APD_API void apd_xent_soft_backward(float *dlogits /* [N, K] += */, const float *probs,
                                    const float *targets, float dloss, size_t N, size_t K);
/* Number of rows whose argmax (first maximum) equals the label. */
APD_API size_t apd_count_correct(const float *logits, const uint32_t *labels, size_t N, size_t K);

/* --- Reductions for distribution-matching losses. */
/* out[d] = (1/N) sum_i in[i, d];  backward: din[i, d] += dout[d] / N. */
APD_API void apd_mean_rows_forward(float *out /* [D] */, const float *in /* [N, D] */, size_t N,
                                   size_t D);
APD_API void apd_mean_rows_backward(float *din /* [N, D] += */, const float *dout /* [D] */,
                                    size_t N, size_t D);
/* *loss = sum_j (a_j - b_j)^2 (double accumulation);
 * backward: da += 2 dloss (a - b), db -= 2 dloss (a - b) (either may be NULL). */
APD_API void apd_sqdist_forward(float *loss, const float *a, const float *b, size_t n);
APD_API void apd_sqdist_backward(float *da, float *db, const float *a, const float *b, float dloss,
                                 size_t n);

/* ======================================================================================
 * ConvNet
 * ====================================================================================== */

typedef enum apd_norm { APD_NORM_NONE = 0, APD_NORM_INSTANCE = 1 } apd_norm;

typedef struct apd_convnet_opts {
    uint32_t c, h, w;     /* input channels, height, width */
    uint32_t width;       /* channels of every conv (128) */
    uint32_t depth;       /* number of conv blocks (3); each halves H and W */
    apd_norm norm;        /* APD_NORM_INSTANCE (default) or APD_NORM_NONE */
    uint32_t n_classes;   /* classifier outputs (>= 1) */
    uint32_t pad1;        /* padding of the first conv; APD_CONVNET_PAD_AUTO: 3 for 28x28, else 1 */
    uint32_t max_batch;   /* largest n passed to forward/backward; sizes the activation arena */
    apd_pool *pool;       /* borrowed, may be NULL (single thread); must outlive the net */
} apd_convnet_opts;
#define APD_CONVNET_PAD_AUTO 0xFFFFFFFFu

typedef struct apd_convnet apd_convnet;

/* Defaults for input c x h x w and n_classes: width 128, depth by resolution
 * (apd_convnet_default_depth: ConvNetD3 at 28/32 px, D4 at 64 px, D5 at 128 px), instance
 * norm, pad1 auto, max_batch 256, pool NULL. */
APD_API void apd_convnet_opts_default(apd_convnet_opts *cfg, uint32_t c, uint32_t h,
                                      uint32_t w, uint32_t n_classes);

/* Plan and allocate parameter, gradient and activation arenas (no allocation afterwards).
 * Parameters are zero until apd_convnet_init (or written through apd_convnet_params).
 * @return APD_OK; APD_EINVAL (NULL, zero dims/width/depth/classes/max_batch, bad norm);
 *         APD_ELIMIT (depth > 8, width/c/h/w > 65536, n_classes > 2^24);
 *         APD_ESHAPE (spatial size not divisible by 2^depth after the first conv);
 *         APD_EOVERFLOW; APD_ENOMEM. On failure *out is NULL. */
APD_API apd_status apd_convnet_create(apd_convnet **out, const apd_convnet_opts *cfg);
APD_API void apd_convnet_free(apd_convnet *net); /* NULL ok */
/* The options the net was created with (pad1 resolved). Valid until apd_convnet_free. */
APD_API const apd_convnet_opts *apd_convnet_get_opts(const apd_convnet *net);

/* PyTorch-default init: every weight and bias U(-1/sqrt(fan_in), +1/sqrt(fan_in)), drawn in
 * parameter order; norm gamma 1, beta 0. The draws come from the library's generator
 * (xoshiro256** seeded through splitmix64) at (seed, stream): the same pair gives the same
 * parameters on every host; different streams give independent networks. NULL net: no-op. */
APD_API void apd_convnet_init(apd_convnet *net, uint64_t seed, uint64_t stream);

/* Flat parameter / gradient arrays (num_params floats, parameter order above). The pointers
 * are valid until apd_convnet_free; callers may read and write them (e.g. load weights). */
APD_API size_t apd_convnet_num_params(const apd_convnet *net);
APD_API float *apd_convnet_params(apd_convnet *net);
APD_API float *apd_convnet_grads(apd_convnet *net);
APD_API void apd_convnet_zero_grad(apd_convnet *net);
APD_API size_t apd_convnet_embed_dim(const apd_convnet *net);

/* Named view of one parameter tensor (index in [0, apd_convnet_num_tensors)). */
typedef struct apd_tensor_view {
    const char *name;  /* "conv0.weight", "norm0.bias", "classifier.weight"; valid until free */
    float *data;       /* into the parameter arena */
    float *grad;       /* into the gradient arena */
    size_t size;       /* number of floats */
    uint32_t ndim;
    uint32_t dims[4];
} apd_tensor_view;
APD_API size_t apd_convnet_num_tensors(const apd_convnet *net);
/* @return APD_OK; APD_EINVAL (NULL net or out, index >= apd_convnet_num_tensors). */
APD_API apd_status apd_convnet_tensor(apd_convnet *net, size_t index, apd_tensor_view *out);

/* Forward n images (n <= max_batch). logits [n, n_classes] and/or embed [n, embed_dim]
 * may be NULL (embed only: the classifier is skipped). Keeps the activations needed by
 * the next apd_convnet_backward (which always refers to the LAST forward).
 * @return APD_OK, APD_EINVAL (NULL net/x, n == 0 or > max_batch). */
APD_API apd_status apd_convnet_forward(apd_convnet *net,
                                       float *logits,   /* [n, n_classes] or NULL */
                                       float *embed,    /* [n, embed_dim] or NULL */
                                       const float *x,  /* [n, c, h, w] */
                                       size_t n);

/* Flags for apd_convnet_forward_ex. */
#define APD_NN_FWD_BF16 1u /* no gradient needed: the 3x3 convs with im2col GEMMs may run with
                            * bfloat16 inputs (round to nearest even) and float32 sums, when
                            * apd_nn_bf16_enabled(); relative error ~2^-9 per product. The
                            * first conv (direct kernel), norm, pooling and classifier stay
                            * float32. A backward cannot follow (APD_EBADSTATE). */

/* apd_convnet_forward with flags (0: identical to apd_convnet_forward). Without
 * apd_nn_bf16_enabled() the flag is ignored and the result is bit-identical to flags 0. */
APD_API apd_status apd_convnet_forward_ex(apd_convnet *net, float *logits, float *embed,
                                          const float *x, size_t n, unsigned flags);

/* Flags for apd_convnet_backward. */
#define APD_NN_PARAM_GRADS 1u /* accumulate parameter gradients into the gradient arena */

/* Backward of the last forward (same n). Upstream gradients: dlogits and/or dembed (either
 * may be NULL; both given are summed). dx (may be NULL) receives += d loss / d x.
 * Without APD_NN_PARAM_GRADS no weight-gradient work is done (frozen network).
 * @return APD_OK, APD_EINVAL (NULL net, both upstream NULL, n differs from the forward's),
 *         APD_EBADSTATE (no forward yet). */
APD_API apd_status apd_convnet_backward(apd_convnet *net,
                                        float *dx,            /* [n, c, h, w] += , or NULL */
                                        const float *dlogits, /* [n, n_classes] or NULL */
                                        const float *dembed,  /* [n, embed_dim] or NULL */
                                        size_t n, unsigned flags);

/* Unfused reference forward (composition of the _ref ops; slow; for tests). Allocates its
 * own activations (any n); does not change what apd_convnet_backward refers to.
 * @return APD_OK; APD_EINVAL (NULL net or x, n == 0); APD_ENOMEM. */
APD_API apd_status apd_convnet_forward_ref(apd_convnet *net, float *logits, float *embed,
                                           const float *x, size_t n);

/* Bytes held by the net's arenas (parameters + gradients + activations + scratch). */
APD_API size_t apd_convnet_memory_bytes(const apd_convnet *net);

/* The depth of the dataset-distillation literature for h x w input: 3 up to 32 px (28 and 32:
 * ConvNetD3), else the smallest depth that brings the larger side to 4 px or less (64 -> 4,
 * ConvNetD4 of Tiny ImageNet; 128 -> 5, ConvNetD5 of ImageNette/ImageWoof; 256 -> 6), at most 8.
 * The embedding stays 128 x 4 x 4 = 2048 floats at those sizes. */
APD_API uint32_t apd_convnet_default_depth(uint32_t h, uint32_t w);

/* Memory plan of a net without keeping it: *fixed_bytes (parameters, gradients, per-thread
 * scratch) and *bytes_per_image (the activations one more image of max_batch costs), so
 * apd_convnet_memory_bytes == fixed + max_batch * per_image. Either out may be NULL.
 * @return as apd_convnet_create (it creates two small nets and frees them). */
APD_API apd_status apd_convnet_plan_bytes(const apd_convnet_opts *cfg, size_t *fixed_bytes,
                                          size_t *bytes_per_image);

/* Activation memory libapd's own ConvNet users (distillation, selection, evaluation) plan
 * for: they run batches larger than fits as several forward/backward passes (gradients
 * accumulate; per-sample instance norm makes that exact up to float rounding). */
#define APD_CONVNET_ACT_BUDGET ((size_t)512 << 20)

/* The largest max_batch <= want whose activations fit in budget_bytes (at least 1): what to
 * set cfg->max_batch to before apd_convnet_create. 0 if the net cannot be planned (bad cfg). */
APD_API uint32_t apd_convnet_batch_for_budget(const apd_convnet_opts *cfg, size_t budget_bytes,
                                              uint32_t want);

/* Forward of any number of images for inference (no backward afterwards): runs
 * apd_convnet_forward on max_batch images at a time. logits / embed as apd_convnet_forward.
 * After it apd_convnet_backward returns APD_EBADSTATE until the next apd_convnet_forward.
 * @return APD_OK, APD_EINVAL (NULL net/x, n == 0). */
APD_API apd_status apd_convnet_forward_nograd(apd_convnet *net, float *logits, float *embed,
                                              const float *x, size_t n);
/* apd_convnet_forward_nograd with apd_convnet_forward_ex's flags (APD_NN_FWD_BF16). */
APD_API apd_status apd_convnet_forward_nograd_ex(apd_convnet *net, float *logits, float *embed,
                                                 const float *x, size_t n, unsigned flags);

/* ======================================================================================
 * SGD (PyTorch semantics) and learning-rate schedule
 * ====================================================================================== */

/* For each element: g' = g + wd * w; v = mu * v + g' (v = g' on the first step after
 * create/reset); w -= lr * v. (torch.optim.SGD, dampening 0, nesterov off.) A handle for n
 * parameters owning its momentum buffer (none when momentum is 0); free with apd_sgd_free.
 * @return APD_OK; APD_EINVAL (NULL out, n == 0); APD_EOVERFLOW; APD_ENOMEM. On failure
 *         *out is NULL. */
typedef struct apd_sgd apd_sgd;
APD_API apd_status apd_sgd_create(apd_sgd **out, size_t n, float lr, float momentum,
                                  float weight_decay);
APD_API void apd_sgd_free(apd_sgd *opt); /* NULL ok */
APD_API void apd_sgd_set_lr(apd_sgd *opt, float lr);
APD_API float apd_sgd_get_lr(const apd_sgd *opt);
/* Forget the momentum buffer (as re-creating the optimizer in PyTorch does). */
APD_API void apd_sgd_reset(apd_sgd *opt);
/* One step on params[n] with grads[n] (grads are read, not modified). = apd_sgd_update with
 * the optimizer's momentum buffer. */
APD_API void apd_sgd_step(apd_sgd *opt, float *params, const float *grads);

/* The one SGD update of libapd, on caller-owned state: apd_sgd_step, the palette network
 * (apd_palette_net_step) and the synthetic pixels of distillation all use it. For each i < n:
 *     g'   = g[i] + weight_decay * w[i]      (the term is skipped when weight_decay == 0,
 *                                             as torch.optim.SGD does)
 *     v[i] = first ? g' : momentum * v[i] + g'
 *     w[i] -= lr * v[i]
 * first: 1 on the first step after the momentum buffer was created or reset (PyTorch starts
 * the buffer at g'), else 0. v (the momentum buffer, n floats) may be NULL: then no momentum
 * is kept and w[i] -= lr * g'. w, v and g must not overlap. */
APD_API void apd_sgd_update(float *w,         /* [n] updated in place */
                            float *v,         /* [n] momentum buffer, or NULL */
                            const float *g,   /* [n] gradient (read only) */
                            size_t n, float lr, float momentum, float weight_decay, int first);

/* Step schedule: base_lr * gamma^(number of milestones <= epoch). E.g. the DD evaluation
 * protocol: milestones {E/2 + 1}, gamma 0.1 (and apd_sgd_reset at the milestone). */
APD_API float apd_lr_step(float base_lr, uint32_t epoch, const uint32_t *milestones,
                          size_t n_milestones, float gamma);

#ifdef __cplusplus
}
#endif
#endif
