/* distill/palette_internal.h: helpers shared by the palette-network files (not installed). */
#ifndef APD_DISTILL_PALETTE_INTERNAL_H
#define APD_DISTILL_PALETTE_INTERNAL_H

#include <math.h>
#include <stdint.h>

/* Normalised value -> 8-bit: (v*std + mean)*255, clamped to [0, 255], rounded half up.
 * The one conversion used for stored palettes and for the median-cut targets of La. */
static inline uint8_t apd__pal_to_u8(float v, float mean, float std)
{
    float u = (v * std + mean) * 255.0f;
    if (!(u > 0.0f)) return 0; /* also NaN */
    if (u >= 255.0f) return 255;
    return (uint8_t)floorf(u + 0.5f);
}

/* 8-bit -> normalised value. */
static inline float apd__pal_from_u8(uint8_t v, float mean, float std)
{
    return ((float)v / 255.0f - mean) / std;
}

#include "apd/palette.h"

#include <string.h>

/* The workspace (opaque in apd/palette.h). */
typedef struct apd__palette_scratch apd__palette_scratch;
struct apd_palette_ws {
    uint32_t c, k, hidden, max_b, max_p;
    float *m, *pal, *den, *hpal; /* (B, K, P), (B, C, K), (B, K), (B, C, K) */
    uint8_t *idx;                /* (B, P) */
    uint32_t *count;             /* (B, K) */
    /* state of the last forward */
    uint32_t b, p;
    float temperature;
    int straight_through;
    apd_palette_input input;     /* net->input of the last forward */
    float *u, *istd;             /* IMAGE_NORM input: (B, C, P) normalised pixels, (B, C)
                                    1/sqrt(var + eps); allocated by the first such forward */
    /* scratch */
    apd_pool *pool;
    uint32_t n_scr;
    apd__palette_scratch *scr;   /* one per pool thread */
    float *gbuf;                 /* (ceil(max_b / GROUP), n_params) */
    size_t gbuf_len;
    float *s_dm;                 /* colour-loss dL/dm, allocated on first use */
    size_t s_dm_len;
};

/* Portable SIMD for the elementwise passes (GCC/Clang vector extensions). The default
 * RelWithDebInfo build is -O2, where GCC 12 vectorizes almost no loop with an unknown trip
 * count; these few explicit vector loops keep the per-pixel passes around the GEMMs from
 * dominating. Loads/stores go through memcpy (unaligned). Always 8 lanes, so every build
 * and CPU sums in the same order (bit-identical results); the functions that use them are
 * marked APD__VCLONES: on x86-64 without -mavx2 GCC compiles them twice (AVX2 and baseline,
 * where each 8-lane op is two SSE ops) and picks one at load time from the CPU. */
#define APD__VW 8
/* The 32-byte vectors pass only between static inline helpers, never across a library
 * boundary, so GCC's note that their ABI differs without AVX does not apply. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX2__)
#define APD__VCLONES __attribute__((target_clones("avx2", "default")))
/* The vector helpers must be inlined into each clone, also at -O0: called out of line they
 * would pass 32-byte vectors under the baseline ABI to an AVX2 caller (and crash). */
#define APD__VINLINE __attribute__((always_inline))
#else
#define APD__VCLONES
#define APD__VINLINE
#endif
typedef float apd__vf __attribute__((vector_size(APD__VW * 4)));
typedef int32_t apd__vi __attribute__((vector_size(APD__VW * 4)));
APD__VINLINE static inline apd__vf apd__vld(const float *p)
{
    apd__vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
APD__VINLINE static inline void apd__vst(float *p, apd__vf v) { memcpy(p, &v, sizeof v); }
APD__VINLINE static inline apd__vf apd__vsplat(float x) { return (apd__vf){0} + x; }
/* lanes where keep > 0 keep v, others 0 (ReLU and its mask) */
APD__VINLINE static inline apd__vf apd__vmask_pos(apd__vf v, apd__vf keep)
{
    apd__vf z = {0};
    return (apd__vf)((apd__vi)v & (apd__vi)(keep > z));
}
APD__VINLINE static inline apd__vf apd__vmax(apd__vf a, apd__vf b)
{
    apd__vi m = a > b;
    return (apd__vf)(((apd__vi)a & m) | ((apd__vi)b & ~m));
}
APD__VINLINE static inline apd__vf apd__vmin(apd__vf a, apd__vf b)
{
    apd__vi m = a < b;
    return (apd__vf)(((apd__vi)a & m) | ((apd__vi)b & ~m));
}
/* exp(x) per lane (Cephes expf: range reduction by ln 2 in two parts, degree-6 polynomial,
 * 2^n through the exponent bits); relative error ~1e-7. x is clamped to [-87.3, 88.7], so
 * very negative inputs give ~1e-38 instead of 0 (harmless in a softmax). */
APD__VINLINE static inline apd__vf apd__vexp(apd__vf x)
{
    x = apd__vmax(apd__vmin(x, apd__vsplat(88.72283f)), apd__vsplat(-87.33654f));
    apd__vf fx = x * 1.44269504088896341f + 0.5f;
    apd__vi n = __builtin_convertvector(fx, apd__vi); /* truncation toward zero */
    apd__vf fn = __builtin_convertvector(n, apd__vf);
    apd__vi over = fn > fx; /* floor for negative values */
    fn = fn - (apd__vf)((apd__vi)apd__vsplat(1.0f) & over);
    n = __builtin_convertvector(fn, apd__vi);
    apd__vf r = x - fn * 0.693359375f - fn * -2.12194440e-4f;
    apd__vf y = 1.9875691500e-4f * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    apd__vi e = (n + 127) << 23;
    return y * (apd__vf)e;
}

/* The c*max_p float scratch of thread 0 of ws (palette_net.c), free between calls. */
float *apd__palette_ysoft_scratch(const apd_palette_ws *ws);
/* apd_palette_loss_la / apd_palette_la_targets with the images split over a pool (NULL ok);
 * results are identical for any number of threads. */
apd_status apd__palette_loss_la_pool(apd_pool *pool, double *value, float *dm, float weight, const float *m,
                                     const uint8_t *target, const uint32_t *sample, uint32_t b, uint32_t k,
                                     uint32_t p, uint32_t s);
apd_status apd__palette_la_targets_pool(apd_pool *pool, uint8_t *out, const float *x, uint32_t b, uint32_t c,
                                        uint32_t h, uint32_t w, uint32_t k, const float *mean, const float *std);

#endif
