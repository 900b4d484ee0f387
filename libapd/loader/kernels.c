/* loader/kernels.c: palette gathers and normalisation for the loader; see kernels.h.
 *
 * AVX-512 paths (compiled when the compiler targets AVX-512F/BW, e.g. -march=native on a
 * Skylake-X or later) do table look-ups with in-register permutes instead of memory gathers:
 * a 16-lane vpermi2ps indexes a 32-entry float table, so a K = 64 palette is two permutes and
 * one blend per 16 output floats. Byte planes use VBMI's 64-entry vpermb. Tables are always
 * 256 entries long (zero beyond k), so loads never run past them.
 */
#include <string.h>

#include "loader/kernels.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define APD_K_AVX512 1
#endif

float apd__norm_value(uint8_t v, float mean, float std)
{
    return ((float)v * (1.0f / 255.0f) - mean) * (1.0f / std);
}

void apd__norm_lut(float *lut, const uint8_t *pal, uint32_t k, uint32_t c, const float *mean,
                   const float *std)
{
    if (k > 256) k = 256;
    for (uint32_t ch = 0; ch < c; ch++) {
        float *t = lut + (size_t)ch * 256;
        for (uint32_t j = 0; j < k; j++) t[j] = apd__norm_value(pal[(size_t)j * c + ch], mean[ch], std[ch]);
        memset(t + k, 0, (256 - k) * sizeof *t);
    }
}

void apd__norm_lut_identity(float *lut, uint32_t c, const float *mean, const float *std)
{
    for (uint32_t ch = 0; ch < c; ch++)
        for (uint32_t j = 0; j < 256; j++)
            lut[(size_t)ch * 256 + j] = apd__norm_value((uint8_t)j, mean[ch], std[ch]);
}

void apd__gather_f32_ref(float *out, const float *lut, const uint8_t *idx, size_t n)
{
    for (size_t p = 0; p < n; p++) out[p] = lut[idx[p]];
}

void apd__gather_u8_chw_ref(uint8_t *out, const uint8_t *pal, uint32_t c, const uint8_t *idx,
                            size_t n)
{
    for (uint32_t ch = 0; ch < c; ch++)
        for (size_t p = 0; p < n; p++) out[(size_t)ch * n + p] = pal[(size_t)idx[p] * c + ch];
}

void apd__gather_u8_hwc_ref(uint8_t *out, const uint8_t *pal, uint32_t c, const uint8_t *idx,
                            size_t n)
{
    for (size_t p = 0; p < n; p++)
        for (uint32_t ch = 0; ch < c; ch++) out[p * c + ch] = pal[(size_t)idx[p] * c + ch];
}

void apd__u8_to_f32_norm_ref(float *out, const uint8_t *in, size_t n, float mean, float std)
{
    for (size_t p = 0; p < n; p++) out[p] = apd__norm_value(in[p], mean, std);
}

void apd__u8_to_f32_norm(float *out, const uint8_t *in, size_t n, float mean, float std)
{
#ifdef APD_K_AVX512
    const __m512 s = _mm512_set1_ps(1.0f / 255.0f), m = _mm512_set1_ps(mean);
    const __m512 is = _mm512_set1_ps(1.0f / std);
    size_t p = 0;
    for (; p + 16 <= n; p += 16) {
        __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(in + p))));
        _mm512_storeu_ps(out + p, _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(v, s), m), is));
    }
    for (; p < n; p++) out[p] = apd__norm_value(in[p], mean, std);
#else
    apd__u8_to_f32_norm_ref(out, in, n, mean, std);
#endif
}

void apd__chw_to_hwc_u8(uint8_t *out, const uint8_t *in, uint32_t c, size_t n)
{
    if (c == 1) {
        memcpy(out, in, n);
        return;
    }
    for (size_t p = 0; p < n; p++)
        for (uint32_t ch = 0; ch < c; ch++) out[p * c + ch] = in[(size_t)ch * n + p];
}

#ifdef APD_K_AVX512
/* 32-bit table look-up of 16 lanes from a 256-entry table held as `np` pairs of 16-entry
 * registers (np = 1, 2, 4, 8 pairs cover k <= 32, 64, 128, 256). */
typedef struct {
    __m512i t[16];
    int np;
} lut32;

static void lut32_load(lut32 *L, const void *table, uint32_t k)
{
    int np = k <= 32 ? 1 : k <= 64 ? 2 : k <= 128 ? 4 : 8;
    L->np = np;
    for (int j = 0; j < 2 * np; j++) L->t[j] = _mm512_loadu_si512((const char *)table + 64 * j);
}

static inline __m512i lut32_get(const lut32 *L, __m512i ix)
{
    __m512i r0 = _mm512_permutex2var_epi32(L->t[0], ix, L->t[1]);
    if (L->np == 1) return r0;
    __m512i r1 = _mm512_permutex2var_epi32(L->t[2], ix, L->t[3]);
    __mmask16 b5 = _mm512_test_epi32_mask(ix, _mm512_set1_epi32(32));
    r0 = _mm512_mask_blend_epi32(b5, r0, r1);
    if (L->np == 2) return r0;
    __m512i r2 = _mm512_permutex2var_epi32(L->t[4], ix, L->t[5]);
    __m512i r3 = _mm512_permutex2var_epi32(L->t[6], ix, L->t[7]);
    r2 = _mm512_mask_blend_epi32(b5, r2, r3);
    __mmask16 b6 = _mm512_test_epi32_mask(ix, _mm512_set1_epi32(64));
    r0 = _mm512_mask_blend_epi32(b6, r0, r2);
    if (L->np == 4) return r0;
    __m512i r4 = _mm512_permutex2var_epi32(L->t[8], ix, L->t[9]);
    __m512i r5 = _mm512_permutex2var_epi32(L->t[10], ix, L->t[11]);
    __m512i r6 = _mm512_permutex2var_epi32(L->t[12], ix, L->t[13]);
    __m512i r7 = _mm512_permutex2var_epi32(L->t[14], ix, L->t[15]);
    r4 = _mm512_mask_blend_epi32(b5, r4, r5);
    r6 = _mm512_mask_blend_epi32(b5, r6, r7);
    r4 = _mm512_mask_blend_epi32(b6, r4, r6);
    __mmask16 b7 = _mm512_test_epi32_mask(ix, _mm512_set1_epi32(128));
    return _mm512_mask_blend_epi32(b7, r0, r4);
}

static inline __m512i load_idx16(const uint8_t *idx, size_t left)
{
    __m128i v = left >= 16 ? _mm_loadu_si128((const __m128i *)idx)
                           : _mm_maskz_loadu_epi8((__mmask16)((1u << left) - 1u), idx);
    return _mm512_cvtepu8_epi32(v);
}
#endif

void apd__gather_f32(float *out, const float *lut, const uint8_t *idx, size_t n, uint32_t k)
{
#ifdef APD_K_AVX512
    lut32 L;
    lut32_load(&L, lut, k);
    size_t p = 0;
    for (; p + 16 <= n; p += 16) {
        __m512i ix = load_idx16(idx + p, 16);
        _mm512_storeu_si512(out + p, lut32_get(&L, ix));
    }
    if (p < n) {
        size_t left = n - p;
        __m512i ix = load_idx16(idx + p, left);
        _mm512_mask_storeu_epi32(out + p, (__mmask16)((1u << left) - 1u), lut32_get(&L, ix));
    }
#else
    (void)k;
    apd__gather_f32_ref(out, lut, idx, n);
#endif
}

void apd__gather_u8_chw(uint8_t *out, const uint8_t *pal, uint32_t k, uint32_t c,
                        const uint8_t *idx, size_t n)
{
#if defined(APD_K_AVX512) && defined(__AVX512VBMI__)
    /* One 256-byte plane table per channel; vpermb looks up 64 pixels at once. */
    uint8_t tb[3][256];
    memset(tb, 0, sizeof tb);
    for (uint32_t j = 0; j < k; j++)
        for (uint32_t ch = 0; ch < c; ch++) tb[ch][j] = pal[(size_t)j * c + ch];
    for (uint32_t ch = 0; ch < c; ch++) {
        __m512i t0 = _mm512_loadu_si512(tb[ch]), t1 = _mm512_loadu_si512(tb[ch] + 64);
        __m512i t2 = _mm512_loadu_si512(tb[ch] + 128), t3 = _mm512_loadu_si512(tb[ch] + 192);
        uint8_t *o = out + (size_t)ch * n;
        for (size_t p = 0; p < n; p += 64) {
            size_t left = n - p;
            __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
            __m512i ix = _mm512_maskz_loadu_epi8(m, idx + p);
            __m512i r;
            if (k <= 64) {
                r = _mm512_permutexvar_epi8(ix, t0);
            } else {
                r = _mm512_permutex2var_epi8(t0, ix, t1);
                if (k > 128) {
                    __m512i r2 = _mm512_permutex2var_epi8(t2, ix, t3);
                    r = _mm512_mask_blend_epi8(_mm512_movepi8_mask(ix), r, r2);
                }
            }
            _mm512_mask_storeu_epi8(o + p, m, r);
        }
    }
#else
    (void)k;
    apd__gather_u8_chw_ref(out, pal, c, idx, n);
#endif
}

void apd__gather_u8_hwc(uint8_t *out, const uint8_t *pal, uint32_t k, uint32_t c,
                        const uint8_t *idx, size_t n)
{
    if (c == 1) {
        apd__gather_u8_chw(out, pal, k, c, idx, n);
        return;
    }
#if defined(APD_K_AVX512) && defined(__AVX512VBMI__)
    if (c == 3) {
        /* Look up RGBX dwords, then squeeze 16 x 4 bytes to 48 with one vpermb. */
        uint32_t t32[256];
        memset(t32, 0, sizeof t32);
        for (uint32_t j = 0; j < k; j++)
            t32[j] = (uint32_t)pal[3 * j] | ((uint32_t)pal[3 * j + 1] << 8) |
                     ((uint32_t)pal[3 * j + 2] << 16);
        lut32 L;
        lut32_load(&L, t32, k);
        uint8_t sq[64];
        for (int i = 0; i < 64; i++) sq[i] = (uint8_t)(i < 48 ? (i / 3) * 4 + i % 3 : 0);
        __m512i squeeze = _mm512_loadu_si512(sq);
        size_t p = 0;
        for (; p + 16 <= n; p += 16) {
            __m512i v = lut32_get(&L, load_idx16(idx + p, 16));
            _mm512_mask_storeu_epi8(out + 3 * p, ((__mmask64)1 << 48) - 1,
                                    _mm512_permutexvar_epi8(squeeze, v));
        }
        if (p < n) {
            size_t left = n - p;
            __m512i v = lut32_get(&L, load_idx16(idx + p, left));
            _mm512_mask_storeu_epi8(out + 3 * p, ((__mmask64)1 << (3 * left)) - 1,
                                    _mm512_permutexvar_epi8(squeeze, v));
        }
        return;
    }
#endif
    (void)k;
    apd__gather_u8_hwc_ref(out, pal, c, idx, n);
}
