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
