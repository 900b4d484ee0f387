/* loader/kernels.h: per-image pixel kernels of the loader (palette gathers, normalisation).
 *
 * Every kernel has a plain scalar reference (`*_ref`) and a dispatching version that uses
 * AVX-512 (VBMI for byte gathers) when the library is compiled for it (-march=native), AVX2
 * otherwise where it helps, and the scalar code as fallback. The tests compare the two
 * bit for bit. Indices must be < k (the reader guarantees it); k is 1..256.
 *
 * Normalisation is done on the PALETTE, not on pixels: a K-colour image needs K*C float
 * computations and then one table look-up per output float, so the float path costs little
 * more than writing the output.
 */
#ifndef APD_LOADER_KERNELS_H
#define APD_LOADER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* lut[ch*256 + j] = (pal[j*c + ch] / 255 - mean[ch]) / std[ch] for j < k (entries >= k
 * are 0). Computed in float as ((float)v * (1/255) - mean) * (1/std) so that every path
 * (palette or direct) produces the same bits for the same pixel value. */
void apd__norm_lut(float *lut, const uint8_t *pal, uint32_t k, uint32_t c, const float *mean,
                   const float *std);
/* Same, for direct records: the "palette" is 0..255 in every channel. */
void apd__norm_lut_identity(float *lut, uint32_t c, const float *mean, const float *std);
/* The scalar normalisation of one value (what apd__norm_lut stores). */
float apd__norm_value(uint8_t v, float mean, float std);

/* out[p] = lut[idx[p]] for p < n (one channel plane). */
void apd__gather_f32(float *out, const float *lut, const uint8_t *idx, size_t n, uint32_t k);
void apd__gather_f32_ref(float *out, const float *lut, const uint8_t *idx, size_t n);

/* Planar uint8: out[ch*n + p] = pal[idx[p]*c + ch]. */
void apd__gather_u8_chw(uint8_t *out, const uint8_t *pal, uint32_t k, uint32_t c,
                        const uint8_t *idx, size_t n);
void apd__gather_u8_chw_ref(uint8_t *out, const uint8_t *pal, uint32_t c, const uint8_t *idx,
                            size_t n);
/* Interleaved uint8: out[p*c + ch] = pal[idx[p]*c + ch]. */
void apd__gather_u8_hwc(uint8_t *out, const uint8_t *pal, uint32_t k, uint32_t c,
                        const uint8_t *idx, size_t n);
void apd__gather_u8_hwc_ref(uint8_t *out, const uint8_t *pal, uint32_t c, const uint8_t *idx,
                            size_t n);
/* out[p] = apd__norm_value(in[p], mean, std) for p < n, computed with the same three
 * roundings (multiply, subtract, multiply) as the scalar formula, so bit-identical. */
void apd__u8_to_f32_norm(float *out, const uint8_t *in, size_t n, float mean, float std);
void apd__u8_to_f32_norm_ref(float *out, const uint8_t *in, size_t n, float mean, float std);
/* CHW -> HWC transpose of one uint8 image (for direct records). */
void apd__chw_to_hwc_u8(uint8_t *out, const uint8_t *in, uint32_t c, size_t n);

#endif
