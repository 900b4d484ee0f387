/* common/kernels.h: the pixel kernels of libapd (library-internal): index bit packing, palette
 * decode to uint8 and to normalised float32, and the uint8 -> float32 normalisation. The
 * reader (format/) and the loader (loader/) both decode through these functions; there is no
 * second copy.
 *
 * One run-time dispatch: every entry point takes an apd__impl. APD__IMPL_AUTO picks the best
 * kernel family this CPU supports (AVX-512 VBMI, else AVX2 + BMI2, else scalar), checked with
 * __builtin_cpu_supports on each call; the vector kernels carry their own target attributes,
 * so the library needs no -march flag. A named family is used when the CPU supports it (else
 * the call falls back to scalar): tests and benches run every family on the same input and
 * require identical bytes. Families without a kernel for an operation use the scalar one.
 *
 * Index packing (spec/apd-format.md "Index packing"): indices are packed LSB-first into a
 * little-endian bit stream; index j occupies stream bits [j*b, j*b + b). At b = 8 the
 * "packed" stream is the plain index bytes, which is how the loader decodes a palette and
 * an unpacked index map (apd_reader_record, in-memory sources) with the same kernels.
 *
 * Thread safety: all functions are reentrant; no state.
 */
#ifndef APD_COMMON_KERNELS_H
#define APD_COMMON_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "apd/status.h"

typedef enum {
    APD__IMPL_AUTO = 0,
    APD__IMPL_SCALAR = 1,
    APD__IMPL_AVX512 = 2, /* AVX-512 F + BW + VBMI */
    APD__IMPL_AVX2 = 3    /* AVX2 + BMI2 (uint8 palette decode only) */
} apd__impl;

/* 1 if impl is usable on this CPU (AUTO and SCALAR always are). */
int apd__impl_available(apd__impl impl);
/* The family APD__IMPL_AUTO resolves to on this CPU. */
apd__impl apd__impl_best(void);

/* Pack n indices (each < 2^bits, bits 1..8) LSB-first into ceil(n*bits/8) bytes; the last
 * byte's unused high bits are zero. */
void apd__pack(const uint8_t *idx, size_t n, uint32_t bits, uint8_t *out);
/* The inverse: n indices from a packed stream. */
void apd__unpack(const uint8_t *packed, size_t n, uint32_t bits, uint8_t *idx);

/* Packed indices (bits 1..8) + palette (k entries 1..APD_MAX_COLORS, c = 1 or 3 channels,
 * entry-major: entry e channel ch at pal[e*c + ch]; only k*c bytes are read) -> uint8 pixels:
 * chw = 0: HWC, out[p*c + ch]; chw = 1: CHW, out[ch*npix + p] (the values of apd_layout).
 * Returns 0, or -1 if an index >= k or a padding bit of the last byte is set (out then holds
 * unspecified values). Writes exactly c*npix bytes. */
int apd__pal_decode(apd__impl impl, const uint8_t *packed, size_t npix, uint32_t bits,
                    const uint8_t *pal, uint32_t k, uint32_t c, int chw, uint8_t *out);

/* The normalisation of one channel value, the formula every float path of libapd uses:
 * three float roundings, multiply, subtract, multiply. The library is built as ISO C11
 * (-ffp-contract=off), so no FMA fusing; the vector kernels use the same three operations and
 * produce the same bits. */
static inline float apd__norm_f32(uint8_t v, float mean, float std)
{
    return ((float)v * (1.0f / 255.0f) - mean) * (1.0f / std);
}

/* Packed indices + palette (as apd__pal_decode) -> normalised float32 CHW:
 * out[ch*npix + p] = apd__norm_f32(pal[idx[p]*c + ch], mean[ch], std[ch]). The palette is
 * normalised once per call (k*c values) and then gathered, so the per-pixel cost is one
 * table look-up per output float. Returns 0, or -1 as apd__pal_decode. */
int apd__pal_decode_f32(apd__impl impl, const uint8_t *packed, size_t npix, uint32_t bits,
                        const uint8_t *pal, uint32_t k, uint32_t c, const float *mean,
                        const float *std, float *out);

/* out[p] = apd__norm_f32(in[p], mean, std) for p < n (one direct-colour plane). */
void apd__u8_norm_f32(apd__impl impl, const uint8_t *in, size_t n, float mean, float std,
                      float *out);

#endif
