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

#endif
