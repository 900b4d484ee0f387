/* apd/palette.h: the AutoPalette palette network, its colour losses, the collapse remedies
 * and the hard quantization that is stored (docs/method.md sections 2, 3).
 *
 * The network is a per-pixel MLP of the pixel's colour, shared by every image:
 *
 *     h = relu(W1 x + b1)          W1: (hidden, C), b1: (hidden)         hidden = 256
 *     z = W2 h                     W2: (K, hidden)  (no bias)
 *     m = softmax_K(z / T)         m: (B, K, P), P = H*W, T = temperature (1 = published)
 *
 * Soft quantization (training): a per-image palette that is the m-weighted mean of the
 * image's own pixels, and the m-weighted mix of that palette:
 *
 *     D[b,k]     = sum_p m[b,k,p] + 1e-8
 *     pal[b,c,k] = sum_p x[b,c,p] m[b,k,p] / D[b,k]
 *     y[b,c,p]   = sum_k m[b,k,p] pal[b,c,k]
 *
 * Hard quantization (storage, evaluation): idx[b,p] = argmax_k m[b,k,p] (first maximum),
 * hpal[b,c,k] = mean of x[b,c,p] over the pixels with idx = k (0 for an empty bucket),
 * y[b,c,p] = hpal[b,c,idx[b,p]]. apd_palette_hard() turns this into 8-bit records.
 *
 * Tensors are plain float32 arrays in NCHW order (B, C, H, W) in normalised pixel space
 * ((v/255 - mean[c]) / std[c]); shapes are passed explicitly, outputs first, dims last.
 * Every matrix product is a cblas_sgemm over the pixels of one image (the hidden layer is
 * recomputed in backward rather than stored: it is 256 floats per pixel).
 *
 * Usage (one DM + AutoPalette iteration; error checks omitted):
 *
 *     apd_palette_net net;  apd_palette_ws *ws, *wsc;
 *     apd_palette_net_init(&net, 3, 64, 256, seed);
 *     apd_palette_ws_create(&ws, 3, 64, 256, n_syn, 32 * 32);     // task path, all images
 *     apd_palette_ws_create(&wsc, 3, 64, 256, 64, 32 * 32);       // colour losses, subset
 *     apd_palette_fwd_opts fo;  apd_palette_fwd_opts_default(&fo);  // soft, T = 1
 *     apd_palette_net_zero_grad(&net);
 *     apd_palette_forward(&net, ws, y, x, n_syn, 32, 32, &fo);      // y -> DSA -> ConvNet
 *     ... DM backward gives dy = dL/dy ...
 *     apd_palette_backward(&net, ws, dx, dy, NULL, x, n_syn, 32, 32, task_scale);
 *     apd_palette_color_opts cc;  apd_palette_color_opts_default(&cc, 3, mean, std);
 *     apd_palette_color_step(&net, wsc, &losses, x_sub, 64, 32, 32, &cc, seed, iter);
 *     apd_palette_sgd_opts sgd;  apd_palette_sgd_opts_default(&sgd); // lr 0.05, mom 0.5, wd 5e-4
 *     apd_palette_net_step(&net, &sgd);
 *     ... at the end: apd_palette_forward(...) then apd_palette_hard(...) per image ...
 *     apd_palette_ws_free(ws); apd_palette_ws_free(wsc); apd_palette_net_free(&net);
 *
 * Collapse remedies (docs/method.md "Known pitfall"), all off by default (= as published):
 *   (a) warm-up: apd_palette_warmup() trains the network on soft-reconstruction MSE
 *       (y vs x) plus the colour losses before joint training;
 *   (b) task-loss scale: `param_scale` of apd_palette_backward() multiplies the gradient that
 *       reaches W1, b1, W2 from that call (the pixel gradient dx is never scaled);
 *   (c) temperature: apd_palette_fwd_opts.temperature, with apd_palette_temperature() as a
 *       geometric schedule helper;
 *   (d) straight-through: apd_palette_fwd_opts.straight_through makes the forward output the
 *       hard quantization while backward differentiates the soft path.
 *
 * Randomness: every random draw (init, pixel samples) derives from an explicit uint64 seed
 * (and a step number) through the library's xoshiro generator; no state to checkpoint.
 *
 * Thread safety: a net and a workspace belong to one thread at a time; different
 * (net, workspace) pairs may be used from different threads. BLAS may use its own threads.
 */
#ifndef APD_PALETTE_H
#define APD_PALETTE_H

#include <stddef.h>
#include <stdint.h>

#include "apd/nn.h" /* apd_pool */
#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define APD_PALETTE_HIDDEN 256   /* published hidden width */
/* K (colours per palette) is at most APD_MAX_COLORS (apd/status.h). */

/* ---- network ---------------------------------------------------------------------------- */

/* What the network sees of a pixel (apd_palette_net.input). The soft palette, the hard
 * quantization and everything stored stay in the pixels' own (absolute) colour either way.
 *   ABSOLUTE:   x itself (as published): one global partition of colour space, so an image
 *               uses only the colours whose cells its pixels fall in;
 *   IMAGE_NORM: u[c,p] = (x[c,p] - mean_c) / sqrt(var_c + APD_PALETTE_NORM_EPS), mean and
 *               (biased) variance over the pixels of the pixel's own image and channel, so
 *               the network partitions each image's own colour range. Backward differentiates
 *               through mean_c and var_c (they depend on every pixel of the channel):
 *               dx[c,p] = r_c (g[c,p] - mean_q g[c,q] - u[c,p] mean_q g[c,q] u[c,q]),
 *               g = dL/du, r_c = 1 / sqrt(var_c + eps). */
typedef enum apd_palette_input {
    APD_PALETTE_INPUT_ABSOLUTE = 0,
    APD_PALETTE_INPUT_IMAGE_NORM = 1
} apd_palette_input;
/* Added to the per-image variance (normalised pixel units^2): variations below ~2 levels of
 * 8 bits are not stretched to the full range, and the gradient through 1/std stays bounded. */
#define APD_PALETTE_NORM_EPS 1e-3f

/* Parameters, gradients and SGD momentum, each one allocation with named views (llm.c style).
 * Layout of each arena: w1 (hidden x c, row-major), b1 (hidden), w2 (k x hidden).
 * Checkpointing = saving params, mom (n_params floats each) and mom_init. */
typedef struct apd_palette_net {
    uint32_t c, k, hidden;
    size_t n_params;       /* hidden*c + hidden + k*hidden */
    float *params, *grads, *mom;
    float *w1, *b1, *w2;   /* views into params */
    float *dw1, *db1, *dw2; /* views into grads */
    int mom_init;          /* 0 until the first SGD step (PyTorch: buffer = g on step 1) */
    apd_palette_input input; /* the network's input; apd_palette_net_init sets ABSOLUTE, set it
                                before the first forward (and before apd_palette_net_init_kmeans) */
} apd_palette_net;

/* Allocate and initialise as PyTorch's Conv2d default: U(-1/sqrt(fan_in), +1/sqrt(fan_in))
 * for W1, b1 (fan_in = c) and W2 (fan_in = hidden), drawn in that order from
 * apd__rng_seed(seed, stream "palette-init"). Gradients and momentum are zero.
 * c = 1 or 3 (any c in 1..4 is accepted), k in 2..APD_MAX_COLORS, hidden in 1..65536
 * (256 as published). Free with apd_palette_net_free.
 * @return APD_OK; APD_EINVAL (NULL net, c/k/hidden out of range); APD_ENOMEM. On failure
 *         *net is zeroed (apd_palette_net_free on it is a no-op). */
APD_API apd_status apd_palette_net_init(apd_palette_net *net, uint32_t c, uint32_t k, uint32_t hidden,
                                        uint64_t seed);
/* Free the arenas; NULL and zeroed nets are fine. */
APD_API void apd_palette_net_free(apd_palette_net *net);
/* grads = 0 (backward accumulates). */
APD_API void apd_palette_net_zero_grad(apd_palette_net *net);

/* Palette-network SGD: one apd_sgd_update (apd/nn.h) on params with the momentum buffer mom
 * (PyTorch semantics: g += wd*w; v = mu*v + g, v = g on the first step; w -= lr*v). */
typedef struct apd_palette_sgd_opts {
    float lr, momentum, weight_decay; /* published: 0.05, 0.5, 5e-4 */
} apd_palette_sgd_opts;
/* The published settings. */
APD_API void apd_palette_sgd_opts_default(apd_palette_sgd_opts *o);
/* One step; NULL net or opts, or an uninitialised net: no-op. */
APD_API void apd_palette_net_step(apd_palette_net *net, const apd_palette_sgd_opts *sgd);

/* ---- workspace -------------------------------------------------------------------------- */

/* An opaque handle holding everything a forward leaves for backward, the losses and the
 * hard quantization, sized at creation for up to max_b images of up to max_p pixels. The
 * results of the last forward are read through apd_palette_ws_get_view.
 * Memory: about max_b*max_p*(4K + 1) bytes, plus per thread 2*(hidden + K)*max_p floats of
 * scratch, plus n_params floats per group of APD_PALETTE_GROUP images (gradient partials),
 * plus max_b*max_p*4C bytes (the normalised inputs) once a forward with input IMAGE_NORM ran.
 *
 * Threading: with a pool (apd_palette_ws_set_pool) forward, backward, the colour losses and
 * the median-cut targets split the images over the pool's threads (single-threaded BLAS
 * inside each). Parameter gradients are accumulated per fixed group of APD_PALETTE_GROUP
 * images and the groups are summed in order, so every result is bit-identical for any
 * number of threads. Without a pool, OpenBLAS's own threading is used for the GEMMs; a
 * multithreaded OpenBLAS may change the last bits (apd_pool_create sets it to 1 thread
 * process-wide, after which no-pool results equal the pooled ones). */
#define APD_PALETTE_GROUP 4
typedef struct apd_palette_ws apd_palette_ws;

/* Create a workspace for a network of c channels, k colours and `hidden` units, and up to
 * max_b images of up to max_p pixels per call. Free with apd_palette_ws_free.
 * @return APD_OK; APD_EINVAL (NULL out, c outside 1..4, k outside 2..APD_MAX_COLORS, zero
 *         hidden/max_b/max_p); APD_EOVERFLOW (sizes); APD_ENOMEM. On failure *out is NULL. */
APD_API apd_status apd_palette_ws_create(apd_palette_ws **out, uint32_t c, uint32_t k, uint32_t hidden,
                                         uint32_t max_b, uint32_t max_p);
APD_API void apd_palette_ws_free(apd_palette_ws *ws); /* NULL ok */
/* Use `pool` (from apd/nn.h; NULL = the caller's thread only) for the work on this
 * workspace. The pool must outlive the workspace or be replaced first.
 * @return APD_OK; APD_EINVAL (NULL ws); APD_ENOMEM (per-thread scratch; the old pool stays
 *         set). */
APD_API apd_status apd_palette_ws_set_pool(apd_palette_ws *ws, apd_pool *pool);

/* Read-only views of the last forward on a workspace. The pointers are valid until the next
 * forward on it (or apd_palette_ws_free); b == 0 (and NULL pointers) before any forward. */
typedef struct apd_palette_ws_view {
    uint32_t b, c, k, p;    /* images, channels, colours, pixels per image of the last forward */
    const float *m;         /* (b, k, p)  softmax probabilities */
    const float *pal;       /* (b, c, k)  soft palette */
    const float *den;       /* (b, k)     sum_p m + 1e-8 */
    const float *hpal;      /* (b, c, k)  hard palette: bucket means (0 for empty), normalised */
    const uint8_t *idx;     /* (b, p)     argmax index map */
    const uint32_t *count;  /* (b, k)     pixels per argmax bucket */
} apd_palette_ws_view;
/* @return APD_OK; APD_EINVAL (NULL ws or out). */
APD_API apd_status apd_palette_ws_get_view(const apd_palette_ws *ws, apd_palette_ws_view *out);

/* ---- forward / backward ----------------------------------------------------------------- */

typedef struct apd_palette_fwd_opts {
    float temperature;    /* m = softmax(z / T); 1 = published. Must be > 0. */
    int straight_through; /* 1: y = hard quantization, backward through the soft path */
} apd_palette_fwd_opts;
/* Published: T = 1, soft. */
APD_API void apd_palette_fwd_opts_default(apd_palette_fwd_opts *o);

/* u (C, P) = one image x (C, P) normalised per channel as APD_PALETTE_INPUT_IMAGE_NORM
 * describes; istd (C) may be NULL, else it gets 1 / sqrt(var_c + APD_PALETTE_NORM_EPS).
 * Statistics are summed in double, in pixel order. NULL u or x, c or p zero: no-op. */
APD_API void apd_palette_image_norm(float *u, float *istd, const float *x, uint32_t c, uint32_t p);

/* Forward b images x (b, C, h, w) through the network (input as net->input); writes y (b, C, h, w) (soft, or hard
 * if straight_through; y may be NULL when only m / the hard quantization is wanted) and
 * fills ws (m, pal, den, idx, count, hpal). opts NULL = published (T = 1, soft).
 * x and y must not overlap.
 * @return APD_OK; APD_EINVAL (NULL net/ws/x, uninitialised net, T <= 0 or not finite,
 *         unknown net->input); APD_ESHAPE (net/ws channel, K or hidden mismatch, b = 0 or
 *         > max_b, h*w = 0 or > max_p); APD_EOVERFLOW; APD_ENOMEM; APD_ENUMERIC (non-finite
 *         logits). */
APD_API apd_status apd_palette_forward(const apd_palette_net *net, apd_palette_ws *ws, float *y,
                                       const float *x, uint32_t b, uint32_t h, uint32_t w,
                                       const apd_palette_fwd_opts *opts);

/* Backward of the last forward on ws (same x, b, h, w). Inputs, both optional:
 *   dy (b, C, h, w): dL/dy of the output (the task loss); differentiated through the soft
 *                    path also when the forward was straight-through;
 *   dm (b, K, h*w):  dL/dm added directly to the softmax probabilities (colour losses).
 * Accumulates into net->grads: param_scale * (dy contribution) + (dm contribution).
 * param_scale is remedy (b); 1 = published. If dx is not NULL, accumulates dL/dx (through
 * the palette and through the MLP, unscaled) into dx (b, C, h, w). ws is not modified
 * (several backward calls per forward are fine).
 * @return APD_OK; APD_EINVAL (NULL net/ws/x, uninitialised net, both dy and dm NULL);
 *         APD_ESHAPE (net/ws mismatch, no forward yet, not the shape or the net->input of
 *         the last forward); APD_ENOMEM. */
APD_API apd_status apd_palette_backward(apd_palette_net *net, apd_palette_ws *ws, float *dx,
                                        const float *dy, const float *dm, const float *x, uint32_t b,
                                        uint32_t h, uint32_t w, float param_scale);

/* Remedy (c) schedule: geometric from t0 at step 0 to t1 at step n_steps, t1 afterwards
 * (n_steps = 0: always t1). Both must be > 0. */
APD_API float apd_palette_temperature(float t0, float t1, uint64_t step, uint64_t n_steps);

/* ---- colour losses: value (unweighted) and weight * dL/dm accumulated into dm ------------ */
/* m (b, k, p) softmax probabilities; dm (b, k, p) may be NULL (value only).                 */

/* Lm = -(1/(b*k)) sum_b sum_k max_p m[b,k,p]; gradient at the first maximum. */
APD_API double apd_palette_loss_lm(float *dm, float weight, const float *m, uint32_t b, uint32_t k,
                                   uint32_t p);
/* Lb = (1/b) sum_b sum_k pbar log(pbar + 1e-16), pbar[b,k] = mean_p m[b,k,p]. */
APD_API double apd_palette_loss_lb(float *dm, float weight, const float *m, uint32_t b, uint32_t k,
                                   uint32_t p);
/* Lconf = mean_(b,p) -sum_k m log(m + 1e-16) (code-only; weight 0 by default). */
APD_API double apd_palette_loss_conf(float *dm, float weight, const float *m, uint32_t b, uint32_t k,
                                     uint32_t p);
/* La, alignment to a target index map (median cut): per image, F = m[:, sample] (k x s),
 * T = onehot(target)[:, sample], A = F^T F and A' = T^T T (s x s), each column divided by
 * max(L2 norm, 1e-12); La = mean_b ||A_hat - A'_hat||_F^2 / s.
 * target (b, p) values < k; sample (b, s) pixel positions < p (distinct, see
 * apd_palette_la_sample). *value gets the unweighted loss.
 * @return APD_OK; APD_EINVAL (NULL value/m/target/sample, b/k/p/s zero, k > APD_MAX_COLORS,
 *         s > p, a target >= k or a sample >= p); APD_ENOMEM. */
APD_API apd_status apd_palette_loss_la(double *value, float *dm, float weight, const float *m,
                                       const uint8_t *target, const uint32_t *sample, uint32_t b,
                                       uint32_t k, uint32_t p, uint32_t s);
/* s = (uint32_t)(ratio * p) distinct positions per image (partial Fisher-Yates) from
 * apd__rng_seed(seed, step): out (b, s). Returns s (0 if ratio*p < 1). */
APD_API uint32_t apd_palette_la_sample(uint32_t *out, uint32_t b, uint32_t p, float ratio, uint64_t seed,
                                       uint64_t step);
/* Median-cut target index maps for La: each image is un-normalised with mean/std, rounded
 * and clamped to 8 bits (the same conversion as apd_palette_hard) and quantized with
 * apd_quantize_image(APD_QUANT_MEDIAN_CUT, ..., k) (PIL's median cut). out (b, h*w).
 * @return APD_OK; APD_EINVAL (NULL pointer, zero b/h/w, k outside 1..APD_MAX_COLORS, c not 1
 *         or 3); APD_ENOMEM; or the first error of apd_quantize_image (apd/quant.h). */
APD_API apd_status apd_palette_la_targets(uint8_t *out, const float *x, uint32_t b, uint32_t c,
                                          uint32_t h, uint32_t w, uint32_t k, const float *mean,
                                          const float *std);

/* ---- colour-loss step and warm-up ------------------------------------------------------- */

typedef struct apd_palette_color_opts {
    float w_lm, w_lb, w_la, w_conf; /* published 1, 1, 3, 0 */
    float la_ratio;                 /* 0.3: fraction of pixels sampled for La */
    float mean[4], std[4];          /* normalisation of x (per channel, of pixel/255) */
    apd_palette_fwd_opts fwd;       /* forward used for the colour losses (temperature) */
} apd_palette_color_opts;
/* Published weights and ratio, T = 1, the given mean/std (c values each; NULL: 0 and 1). */
APD_API void apd_palette_color_opts_default(apd_palette_color_opts *o, uint32_t c, const float *mean,
                                            const float *std);

typedef struct apd_palette_losses {
    double lm, lb, la, conf; /* unweighted values */
    double recon;            /* soft-reconstruction MSE (warm-up only, else 0) */
    double total;            /* weighted sum of the terms that were computed */
} apd_palette_losses;

/* The colour-loss part of one iteration (section 3.3): forward x_sub (a detached copy of a
 * subset of the synthetic images, (b, C, h, w)) in soft mode, median-cut targets, a pixel
 * sample from (seed, step), Lm + Lb + La + Lconf and their backward into net->grads only.
 * La and Lconf are skipped when their weight is 0 (value 0; La then needs no median cut);
 * Lm and Lb values are always computed (cheap, useful to watch). Leaves ws holding this
 * forward. out may be NULL.
 * @return APD_OK; APD_EINVAL (NULL net/ws/x_sub/opts, or as apd_palette_forward);
 *         APD_ESHAPE (as apd_palette_forward); APD_ENOMEM; APD_ENUMERIC (non-finite
 *         logits); or an error of apd_quantize_image (the median-cut targets). */
APD_API apd_status apd_palette_color_step(apd_palette_net *net, apd_palette_ws *ws, apd_palette_losses *out,
                                          const float *x_sub, uint32_t b, uint32_t h, uint32_t w,
                                          const apd_palette_color_opts *opts, uint64_t seed, uint64_t step);

/* Remedy (a): `steps` SGD steps of the network alone on
 *     recon_weight * mean (y_soft - x)^2  +  colour losses (opts)
 * over the fixed images x (b, C, h, w) (median-cut targets computed once). Zeroes the
 * gradients before each step; leaves them zero at the end. Step i uses pixel samples from
 * (seed, i). *last (may be NULL) receives the losses of the last step. The forward is soft
 * with opts->fwd.temperature. Afterwards ws holds a forward of x with the final network
 * (ready for apd_palette_stats_compute / apd_palette_hard).
 * @return APD_OK; APD_EINVAL (NULL net/ws/x/opts/sgd, or as apd_palette_forward);
 *         APD_ESHAPE (b = 0 or > max_b, h*w = 0 or > max_p, or as apd_palette_forward);
 *         APD_ENOMEM; APD_ENUMERIC; or an error of apd_quantize_image. */
APD_API apd_status apd_palette_warmup(apd_palette_net *net, apd_palette_ws *ws, apd_palette_losses *last,
                                      const float *x, uint32_t b, uint32_t h, uint32_t w, uint32_t steps,
                                      float recon_weight, const apd_palette_color_opts *opts,
                                      const apd_palette_sgd_opts *sgd, uint64_t seed);

/* Collapse remedy "kmeans-init": set the network so that its argmax is the Voronoi
 * partition of a seeded k-means (k-means++ seeding, up to `iters` Lloyd steps) of the pixels
 * of x (b, C, h, w; every pixel, or 65536 seeded draws when there are more) and its softmax
 * the posterior of an isotropic Gaussian mixture with the clusters' pooled per-channel
 * variance (logit scale s = 1 / (2 sigma^2), sigma^2 >= 0.0125, so s <= 40). Hidden units 0..C-1 carry
 * a (x_j + B_j) (B_j = 1 - min(0, min x_j), a = sqrt(s)), unit C the constant a; W2 maps them
 * to s (2 c_k . x - |c_k|^2); the remaining units keep their W1, b1 with zero W2 columns.
 * With net->input IMAGE_NORM the clustering and the offsets use the per-image normalised
 * pixels (what that network sees). Momentum is reset. A global partition is the most a
 * per-pixel network of colour can be;
 * this starts it at a good one (see palette_init.c). *info (may be NULL) gets the figures.
 * @return APD_OK; APD_EINVAL (NULL net or x, uninitialised net); APD_ESHAPE (zero b/h/w,
 *         hidden < C + 1); APD_EOVERFLOW; APD_ENOMEM. */
typedef struct apd_palette_kmeans_info {
    uint32_t samples, iters;  /* pixels clustered, Lloyd steps run */
    double sse_per_channel;   /* mean squared distance to the nearest centre, per channel */
    double scale;             /* s */
} apd_palette_kmeans_info;
APD_API apd_status apd_palette_net_init_kmeans(apd_palette_net *net, apd_palette_kmeans_info *info,
                                               const float *x, uint32_t b, uint32_t h, uint32_t w,
                                               uint32_t iters, uint64_t seed);

/* ---- hard quantization for storage, and monitoring -------------------------------------- */

/* 8-bit record of image i of the last forward on ws: palette (k*C bytes, entry-major:
 * entry j channel ch at palette[j*C + ch]) = round(clamp((hpal*std + mean)*255, 0, 255)),
 * empty buckets 0; indices (h*w bytes) = argmax map. *k_used (may be NULL) = number of
 * distinct indices. This is what gets written as a palette record and evaluated.
 * @return APD_OK; APD_EINVAL (NULL pointer, no forward yet, i >= b of the last forward). */
APD_API apd_status apd_palette_hard(uint8_t *palette, uint8_t *indices, uint32_t *k_used,
                                    const apd_palette_ws *ws, uint32_t i, const float *mean,
                                    const float *std);

/* Decode a palette record back to normalised floats (C, h*w), e.g. to evaluate or to
 * measure what storage costs. Any NULL pointer: no-op. */
APD_API void apd_palette_decode(float *out, const uint8_t *palette, const uint8_t *indices, uint32_t c,
                                uint32_t p, const float *mean, const float *std);

/* Monitoring of the last forward on ws (x is its input): colours used per image at argmax,
 * soft-vs-hard gap and reconstruction errors (MSE in normalised units over b*C*P values),
 * mean max-probability. colors (b values) may be NULL. */
typedef struct apd_palette_stats {
    double colors_mean, colors_median;
    uint32_t colors_min, colors_max;
    double gap_mse;       /* soft y vs hard y */
    double soft_mse;      /* soft y vs x */
    double hard_mse;      /* hard y (float bucket means) vs x */
    double max_prob_mean; /* mean over pixels of max_k m */
} apd_palette_stats;
/* @return APD_OK; APD_EINVAL (NULL out/ws/x, no forward yet); APD_ENOMEM. */
APD_API apd_status apd_palette_stats_compute(apd_palette_stats *out, uint32_t *colors,
                                             const apd_palette_ws *ws, const float *x);

#ifdef __cplusplus
}
#endif
#endif
