/* apd/dsa.h: DSA differentiable augmentation (Zhao & Bilen's "Differentiable Siamese
 * Augmentation") on float32 NCHW batches, forward and backward with respect to the images.
 *
 * What it is. Dataset distillation (distribution matching) and the evaluation of distilled
 * sets augment every batch with the DSA strategy `color_crop_cutout_flip_scale_rotate`
 * (docs/method.md section 6.3): on each call ONE op group is drawn uniformly from the enabled
 * ones and applied to the batch:
 *   color   brightness x + b (b = (u - 0.5) * 1.0), then saturation (x - mean_c) * s + mean_c
 *           (s = 2u; mean over channels per pixel; identity for 1 channel), then contrast
 *           (x - mean_chw) * k + mean_chw (k = u + 0.5; mean over one image).
 *   crop    integer translation, out(y, x) = in(y + dy, x + dx), zeros shift in;
 *           dy, dx uniform in [-s, s] with s = int(0.125 * size + 0.5) (4 for 32 px).
 *   cutout  a zero rectangle of int(0.5 * size + 0.5) rows/cols (16x16 for 32 px): with
 *           o = randint(0, size + 1 - cs % 2) per axis it covers o - cs/2 .. o - cs/2 + cs - 1
 *           clamped to the image (DSA's exact semantics; near a border it is smaller).
 *   flip    horizontal flip with probability 0.5.
 *   scale   sx, sy ~ U(1/1.2, 1.2), affine grid [[sx,0,0],[0,sy,0]] + bilinear sampling.
 *   rotate  t ~ U(-15, 15) degrees, affine grid [[cos t, -sin t, 0], [sin t, cos t, 0]] +
 *           bilinear sampling.
 * Affine ops follow PyTorch's F.affine_grid + F.grid_sample(mode bilinear, padding zeros).
 * align_corners: DEFAULT 0 (False), as VICO's DM code (the task loss libapd follows) and
 * PyTorch's default; the original DSA/AutoPalette code passes True, selectable with
 * cfg.align_corners = 1. With False, normalised -1/+1 are the outer EDGES of the border
 * pixels (pixel j has centre (2j + 1)/W - 1); with True they are the border pixel CENTRES.
 *
 * Two modes.
 *   APD_DSA_SIAMESE: one op and ONE parameter set for the whole batch, drawn from a seed.
 *     The same seed gives the same draw on every host, so the real and the synthetic batch
 *     of distribution matching get identical augmentations (either draw once and apply the
 *     same params to both batches, or draw twice from the same seed).
 *   APD_DSA_PER_IMAGE: one op for the batch, each image its own parameters (evaluation
 *     training, as DSA without a seed).
 *
 * Usage (distribution matching, one Siamese draw per class step):
 *
 *     apd_dsa_opts cfg; apd_dsa_opts_default(&cfg);
 *     apd_dsa_sample one;  apd_dsa_params p;
 *     apd_dsa_draw(&p, &one, 1, &cfg, APD_DSA_SIAMESE, seed, stream, n_real, h, w);
 *     apd_dsa_forward(real_aug, real, &p, n_real, c, h, w);
 *     apd_dsa_forward(syn_aug, syn, &p, n_syn, c, h, w);       // same params
 *     ... embed, loss, backward to d_syn_aug ...
 *     apd_dsa_backward(d_syn, d_syn_aug, &p, n_syn, c, h, w);  // accumulates into d_syn
 *
 * Conventions (llm.c style): outputs first, dims last; tensors are float32 NCHW,
 * [N, C, H, W] contiguous; backward ACCUMULATES into din (zero it first yourself).
 * out and in must not overlap. No allocation in forward/backward.
 *
 * Thread safety: every function is reentrant; params are read-only during forward/backward,
 * so one params may be applied from several threads at once.
 */
#ifndef APD_DSA_H
#define APD_DSA_H

#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Op groups, in the order of the strategy string (the uniform draw indexes the enabled ones
 * in this order). Values are pinned. */
typedef enum apd_dsa_op {
    APD_DSA_NONE = 0, /* identity (no augmentation) */
    APD_DSA_COLOR = 1,
    APD_DSA_CROP = 2,
    APD_DSA_CUTOUT = 3,
    APD_DSA_FLIP = 4,
    APD_DSA_SCALE = 5,
    APD_DSA_ROTATE = 6
} apd_dsa_op;

#define APD_DSA_MASK(op) (1u << (op))
/* `color_crop_cutout_flip_scale_rotate` */
#define APD_DSA_ALL                                                                               \
    (APD_DSA_MASK(APD_DSA_COLOR) | APD_DSA_MASK(APD_DSA_CROP) | APD_DSA_MASK(APD_DSA_CUTOUT) |    \
     APD_DSA_MASK(APD_DSA_FLIP) | APD_DSA_MASK(APD_DSA_SCALE) | APD_DSA_MASK(APD_DSA_ROTATE))

typedef enum apd_dsa_mode {
    APD_DSA_SIAMESE = 0,  /* one parameter set shared by the batch */
    APD_DSA_PER_IMAGE = 1 /* one parameter set per image (same op) */
} apd_dsa_mode;

/* The knobs of DSA's ParamDiffAug, with the published defaults from apd_dsa_opts_default. */
typedef struct apd_dsa_opts {
    uint32_t strategy;    /* mask of APD_DSA_MASK(op); default APD_DSA_ALL; 0 = no aug */
    float prob_flip;      /* 0.5 */
    float ratio_scale;    /* 1.2: sx, sy ~ U(1/r, r) */
    float ratio_rotate;   /* 15 degrees */
    float ratio_crop_pad; /* 0.125: max shift int(r * size + 0.5) */
    float ratio_cutout;   /* 0.5: cutout side int(r * size + 0.5) */
    float brightness;     /* 1.0: b = (u - 0.5) * r */
    float saturation;     /* 2.0: s = u * r */
    float contrast;       /* 0.5: k = u + r */
    int align_corners;    /* 0 (PyTorch default, VICO); 1 = original DSA/AutoPalette */
} apd_dsa_opts;

APD_API void apd_dsa_opts_default(apd_dsa_opts *cfg);

/* Parse "color_crop_cutout_flip_scale_rotate" style strings (any subset, '_' separated,
 * any order; "none" or "" = 0) into a strategy mask.
 * @return APD_OK or APD_EINVAL (unknown op name; *mask untouched). */
APD_API apd_status apd_dsa_strategy_parse(const char *s, uint32_t *mask);
/* Name of an op group ("color", ..., "none"); never NULL. */
APD_API const char *apd_dsa_op_name(apd_dsa_op op);

/* The parameters of one image, already turned into the values the formulas use. */
typedef struct apd_dsa_sample {
    float brightness;  /* color: additive offset b */
    float saturation;  /* color: factor s */
    float contrast;    /* color: factor k */
    int32_t dy, dx;    /* crop: out(y, x) = in(y + dy, x + dx) */
    int32_t oy, ox;    /* cutout: offsets o as drawn; rows oy - ch/2 .. oy - ch/2 + ch - 1 */
    int32_t flip;      /* flip: 1 = mirror horizontally */
    float theta[6];    /* scale/rotate: 2x3 affine, row-major, maps output to input coords */
} apd_dsa_sample;

/* One draw. samples is caller-owned memory (n_samples entries) that must outlive the params.
 * Fields may be set by hand (tests, golden data): set op, n_samples (1 = shared by the batch,
 * else = N), h, w, cut_h/cut_w and shift (see apd_dsa_draw), align_corners and samples. */
typedef struct apd_dsa_params {
    apd_dsa_op op;
    uint32_t n_samples;     /* 1 (shared) or the batch size N */
    uint32_t h, w;          /* image size the parameters were drawn for */
    uint32_t cut_h, cut_w;  /* cutout side in rows / cols */
    int align_corners;
    apd_dsa_sample *samples;
} apd_dsa_params;

/* Fill p with one draw for a batch of n images of h x w: the op uniformly among
 * cfg->strategy (NONE if 0), then the op's parameters (one set in SIAMESE mode, n sets in
 * PER_IMAGE mode) into samples[0 .. cap-1]. cfg NULL = defaults. Deterministic: the same
 * (seed, stream) and arguments give the same draw on every host.
 * @return APD_OK; APD_EINVAL (NULL p/samples, n or h or w zero, bad mode);
 *         APD_EBUFSIZE (cap < 1 in SIAMESE mode, cap < n in PER_IMAGE mode). */
APD_API apd_status apd_dsa_draw(apd_dsa_params *p, apd_dsa_sample *samples, size_t cap,
                                const apd_dsa_opts *cfg, apd_dsa_mode mode, uint64_t seed,
                                uint64_t stream, uint32_t n, uint32_t h, uint32_t w);

/* Draw the parameters of a given op (tests, ablations: e.g. always rotate). Same contract as
 * apd_dsa_draw except that the op is not drawn.
 * @return APD_OK; APD_EINVAL (as apd_dsa_draw, or op not an apd_dsa_op); APD_EBUFSIZE (as
 *         apd_dsa_draw). */
APD_API apd_status apd_dsa_draw_op(apd_dsa_params *p, apd_dsa_sample *samples, size_t cap,
                                   const apd_dsa_opts *cfg, apd_dsa_op op, apd_dsa_mode mode,
                                   uint64_t seed, uint64_t stream, uint32_t n, uint32_t h,
                                   uint32_t w);

/* out[N, C, H, W] = aug(in[N, C, H, W]).
 * @return APD_OK; APD_EINVAL (NULL pointers, unknown op); APD_ESHAPE (n_samples is not 1
 *         or N, or H/W differ from the size p was drawn for). */
APD_API apd_status apd_dsa_forward(float *out, const float *in, const apd_dsa_params *p,
                                   uint32_t N, uint32_t C, uint32_t H, uint32_t W);

/* din[N, C, H, W] += d aug / d in ^T dout[N, C, H, W]. Every op is affine in the image for
 * fixed parameters, so backward needs neither the input nor the output.
 * @return APD_OK; APD_EINVAL (NULL pointers, unknown op); APD_ESHAPE (n_samples is not 1
 *         or N, or H/W differ from the size p was drawn for). */
APD_API apd_status apd_dsa_backward(float *din, const float *dout, const apd_dsa_params *p,
                                    uint32_t N, uint32_t C, uint32_t H, uint32_t W);

#ifdef __cplusplus
}
#endif
#endif
