/* common/kernels.c: bit packing of palette indices and the pixel kernels; see kernels.h.
 *
 * Bit order (spec/apd-format.md "Index packing"): indices are packed LSB-first into a little-
 * endian bit stream; index j occupies stream bits [j*b, j*b + b), and stream bit t is bit
 * (t mod 8) of byte t/8. The final byte's unused high bits are zero.
 *
 *     b = 6, indices i0..i3:   byte0 = i0 | i1<<6     byte1 = i1>>2 | i2<<4
 *                              byte2 = i2>>4 | i3<<2
 *
 * Kernels: a scalar reference (APD__IMPL_SCALAR; also the fallback on CPUs without the vector
 * extensions) and an AVX-512 VBMI kernel that handles 64 pixels per step: vpermb places each
 * 8-index group's bytes into a qword lane, vpmultishiftqb extracts the b-bit fields, and
 * vpermi2b looks up 128-entry per-channel tables (two look-ups and a blend on bit 7 when
 * K > 128); HWC output is interleaved with vpermt2b. The tables are gathered from the
 * entry-major palette with vpermi2b too, so no per-call scalar set-up runs. An AVX2 + BMI2
 * kernel (pdep unpack + 32-bit gather) serves CPUs without VBMI. Selection is at run time
 * (select_impl, the one dispatch of every entry point), and every vector function carries
 * its target attribute, so the library is built without -march flags. Tests run every
 * kernel on the same input and require identical bytes.
 *
 * Float32 output (apd__pal_decode_f32, for apd_reader_decode_f32 and the loader): the same
 * VBMI unpack, then the record's palette normalised once into per-channel float tables held
 * in registers and looked up with vpermi2ps (16 floats per permute pair), stored straight
 * into the CHW planes; bit-identical to uint8 decode + ((float)v * (1/255) - mean) * (1/std)
 * (tests/loader/test_loader_f32.c). Scalar fallback without AVX-512 VBMI.
 */
#include <string.h>

#include "common/kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define APD__X86 1
#include "common/kernel_tables.h"
#endif

/* Bytes of n indices packed at `bits` bits (apd_packed_bytes of apd/format.h). */
static inline size_t packed_bytes(size_t n, uint32_t bits) { return (n * bits + 7) / 8; }

void apd__pack(const uint8_t *idx, size_t n, uint32_t bits, uint8_t *out)
{
    if (bits == 8) {
        memcpy(out, idx, n);
        return;
    }
    uint32_t acc = 0, have = 0;
    size_t o = 0;
    for (size_t j = 0; j < n; j++) {
        acc |= (uint32_t)idx[j] << have;
        have += bits;
        while (have >= 8) {
            out[o++] = (uint8_t)acc;
            acc >>= 8;
            have -= 8;
        }
    }
    if (have) out[o++] = (uint8_t)acc;
}

void apd__unpack(const uint8_t *p, size_t n, uint32_t bits, uint8_t *idx)
{
    if (bits == 8) {
        memcpy(idx, p, n);
        return;
    }
    uint32_t mask = (1u << bits) - 1, acc = 0, have = 0;
    for (size_t j = 0; j < n; j++) {
        if (have < bits) {
            acc |= (uint32_t)*p++ << have;
            have += 8;
        }
        idx[j] = (uint8_t)(acc & mask);
        acc >>= bits;
        have -= bits;
    }
}

/* Padding bits of the last byte must be zero. */
static int padding_ok(const uint8_t *packed, size_t npix, uint32_t bits)
{
    uint64_t nbits = (uint64_t)npix * bits;
    uint32_t used = (uint32_t)(nbits & 7);
    if (!used) return 1;
    return (packed[nbits >> 3] >> used) == 0;
}

static int pal_decode_scalar(const uint8_t *packed, size_t npix, uint32_t bits,
                             const uint8_t *pal, uint32_t k, uint32_t c, int chw,
                             uint8_t *out)
{
    uint32_t mask = (1u << bits) - 1, acc = 0, have = 0;
    const uint8_t *p = packed;
    uint32_t bad = 0;
    for (size_t j = 0; j < npix; j++) {
        if (have < bits) {
            acc |= (uint32_t)*p++ << have;
            have += 8;
        }
        uint32_t v = acc & mask;
        acc >>= bits;
        have -= bits;
        bad |= v >= k;
        v = v < k ? v : 0;
        if (c == 1) {
            out[j] = pal[v];
        } else if (!chw) {
            out[3 * j] = pal[3 * v];
            out[3 * j + 1] = pal[3 * v + 1];
            out[3 * j + 2] = pal[3 * v + 2];
        } else {
            out[j] = pal[3 * v];
            out[npix + j] = pal[3 * v + 1];
            out[2 * npix + j] = pal[3 * v + 2];
        }
    }
    if (bad || !padding_ok(packed, npix, bits)) return -1;
    return 0;
}

#ifdef APD__X86
#define APD__AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))

static inline uint64_t low_mask(size_t n) { return n >= 64 ? ~0ull : ((1ull << n) - 1); }

/* The next 64 indices of a packed stream (fewer at the end: the unused lanes are don't-care
 * and callers mask them): up to 8*bits input bytes, spread by the bit-width's permutation
 * and multishift, masked to `bits`. Advances *src and *bytes_left. */
__attribute__((target("avx512f,avx512bw,avx512vbmi"), always_inline)) static inline __m512i
unpack_next64(const uint8_t **src, size_t *bytes_left, size_t step_bytes, __m512i vperm, __m512i vshift,
              __m512i vmask)
{
    size_t take = *bytes_left < step_bytes ? *bytes_left : step_bytes;
    __m512i raw = _mm512_maskz_loadu_epi8(low_mask(take), *src);
    *src += take;
    *bytes_left -= take;
    __m512i v = _mm512_permutexvar_epi8(vperm, raw);
    return _mm512_and_si512(_mm512_multishift_epi64_epi8(vshift, v), vmask);
}

APD__AVX512 static inline __m512i lut512(__m512i idx, const __m512i *t, int nq)
{
    __m512i lo = _mm512_permutex2var_epi8(t[0], idx, t[1]);
    if (nq <= 2) return lo;
    __m512i hi = _mm512_permutex2var_epi8(t[2], idx, t[3]);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi);
}

/* Per-channel byte tables from the entry-major palette: t[ch][q] holds channel ch of entries
 * 64q..64q+63 (zero past k; t[ch][q] for q >= the returned count is zero). Returns the
 * number of 64-entry quarters that hold entries, (k + 63) / 64. */
APD__AVX512 static inline int pal_tables_avx512(const uint8_t *pal, uint32_t k, uint32_t c,
                                               __m512i t[3][4])
{
    int nq = (int)((k + 63) / 64);
    size_t pal_len = (size_t)k * c;
    for (int q = 0; q < 4; q++) {
        if (q >= nq) {
            for (uint32_t ch = 0; ch < c; ch++) t[ch][q] = _mm512_setzero_si512();
            continue;
        }
        if (c == 1) {
            size_t off = (size_t)q * 64;
            t[0][q] = _mm512_maskz_loadu_epi8(low_mask(pal_len - off), pal + off);
            continue;
        }
        /* 64 RGB entries = 192 bytes = three zmm, zero past the palette's end. */
        size_t off = (size_t)q * 192, left = pal_len - off;
        __m512i p0 = _mm512_maskz_loadu_epi8(low_mask(left), pal + off);
        __m512i p1 = left > 64 ? _mm512_maskz_loadu_epi8(low_mask(left - 64), pal + off + 64)
                               : _mm512_setzero_si512();
        __m512i p2 = left > 128 ? _mm512_maskz_loadu_epi8(low_mask(left - 128), pal + off + 128)
                                : _mm512_setzero_si512();
        for (int ch = 0; ch < 3; ch++) {
            __m512i a = _mm512_permutex2var_epi8(p0, _mm512_loadu_si512(pal3_ctrl_a[ch]), p1);
            __m512i b = _mm512_permutexvar_epi8(_mm512_loadu_si512(pal3_ctrl_b[ch]), p2);
            t[ch][q] = _mm512_mask_blend_epi8(pal3_mask_b[ch], a, b);
        }
    }
    return nq;
}

APD__AVX512 static int pal_decode_avx512(const uint8_t *packed, size_t npix, uint32_t bits,
                                         const uint8_t *pal, uint32_t k, uint32_t c,
                                         int chw, uint8_t *out)
{
    /* Per-channel tables: t[ch][q] holds channel ch of entries 64q..64q+63 (zero past k). */
    __m512i t[3][4];
    int nq = pal_tables_avx512(pal, k, c, t);
    const __m512i vperm = _mm512_loadu_si512(unpack_perm[bits]);
    const __m512i vshift = _mm512_loadu_si512(unpack_shift[bits]);
    const __m512i vmask = _mm512_set1_epi8((char)((1u << bits) - 1));
    const __m512i vkm1 = _mm512_set1_epi8((char)(k - 1));
    __m512i rg[3], bsel[3];
    for (int q = 0; q < 3; q++) {
        rg[q] = _mm512_loadu_si512(hwc_ctrl_rg[q]);
        bsel[q] = _mm512_loadu_si512(hwc_ctrl_b[q]);
    }
    const size_t step_bytes = 8u * bits; /* input bytes per 64 indices */
    size_t bytes_left = packed_bytes(npix, bits);
    const uint8_t *src = packed;
    __mmask64 bad = 0;
    for (size_t j = 0; j < npix; j += 64) {
        size_t rem = npix - j;
        __mmask64 pm = low_mask(rem);
        __m512i v;
        if (bits == 8) { /* one index per byte (the coded records' maps): nothing to unpack */
            v = _mm512_maskz_loadu_epi8(pm, packed + j);
        } else {
            v = unpack_next64(&src, &bytes_left, step_bytes, vperm, vshift, vmask);
        }
        if (k < APD_MAX_COLORS) bad |= _mm512_mask_cmpgt_epu8_mask(pm, v, vkm1);
        if (c == 1) {
            _mm512_mask_storeu_epi8(out + j, pm, lut512(v, t[0], nq));
            continue;
        }
        __m512i r = lut512(v, t[0], nq), g = lut512(v, t[1], nq), b = lut512(v, t[2], nq);
        if (chw) {
            _mm512_mask_storeu_epi8(out + j, pm, r);
            _mm512_mask_storeu_epi8(out + npix + j, pm, g);
            _mm512_mask_storeu_epi8(out + 2 * npix + j, pm, b);
            continue;
        }
        size_t ob = 3 * (rem < 64 ? rem : 64);
        uint8_t *o = out + 3 * j;
        for (int q = 0; q < 3; q++) {
            if ((size_t)q * 64 >= ob) break;
            __m512i x = _mm512_permutex2var_epi8(r, rg[q], g);
            x = _mm512_mask_blend_epi8(hwc_mask_b[q], x, _mm512_permutexvar_epi8(bsel[q], b));
            _mm512_mask_storeu_epi8(o + 64 * q, low_mask(ob - 64 * (size_t)q), x);
        }
    }
    if (bad || !padding_ok(packed, npix, bits)) return -1;
    return 0;
}

/* AVX2 kernel (CPUs without AVX-512 VBMI): 8 pixels per step. The 8 indices of a step are
 * b bytes of input (step p starts at byte p*b); BMI2 pdep deposits their bit fields into the 8
 * bytes of a qword (mask = (2^b - 1) in every byte), which widen to 8 dwords for a 32-bit
 * gather from a table of packed colours (r | g<<8 | b<<16), narrowed again with pshufb.
 * The last step (fewer than 8 bytes of input left, fewer than 8 pixels, or a 16-byte store
 * that would pass the end of out) goes through the same table one pixel at a time. */
#define APD__AVX2_T __attribute__((target("avx2,bmi2")))

APD__AVX2_T static int pal_decode_avx2(const uint8_t *packed, size_t npix, uint32_t bits,
                                       const uint8_t *pal, uint32_t k, uint32_t c,
                                       int chw, uint8_t *out)
{
    uint32_t tab[APD_MAX_COLORS];
    memset(tab, 0, sizeof tab);
    for (uint32_t e = 0; e < k; e++)
        tab[e] = c == 3 ? (uint32_t)pal[3 * e] | (uint32_t)pal[3 * e + 1] << 8 | (uint32_t)pal[3 * e + 2] << 16
                        : pal[e];
    const __m256i sh_hwc = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
                                            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    const __m256i sh_pl = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, -1, -1, -1, -1,
                                           0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, -1, -1, -1, -1);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i vkm1 = _mm256_set1_epi32((int)k - 1);
    const uint64_t dep = 0x0101010101010101ull * ((1u << bits) - 1);
    const size_t nbytes = packed_bytes(npix, bits);
    __m256i bad = _mm256_setzero_si256();
    size_t p = 0;
    for (; p + 8 <= npix; p += 8) {
        size_t at = (p / 8) * bits; /* byte offset of this group */
        if (at + 8 > nbytes) break; /* an 8-byte load would pass the input */
        if (c == 3 && !chw && 3 * p + 28 > 3 * npix) break;
        uint64_t w;
        memcpy(&w, packed + at, 8);
        uint64_t ix = _pdep_u64(w, dep);
        __m256i vi = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)ix));
        bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(vi, vkm1));
        __m256i v = _mm256_i32gather_epi32((const int *)tab, vi, 4);
        if (c == 1) {
            __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, sh_pl), perm);
            _mm_storel_epi64((void *)(out + p), _mm256_castsi256_si128(b));
        } else if (!chw) {
            __m256i b = _mm256_shuffle_epi8(v, sh_hwc);
            _mm_storeu_si128((void *)(out + 3 * p), _mm256_castsi256_si128(b));
            _mm_storeu_si128((void *)(out + 3 * p + 12), _mm256_extracti128_si256(b, 1));
        } else {
            __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, sh_pl), perm);
            __m128i lo = _mm256_castsi256_si128(b), hi = _mm256_extracti128_si256(b, 1);
            _mm_storel_epi64((void *)(out + p), lo);
            _mm_storel_epi64((void *)(out + npix + p), _mm_srli_si128(lo, 8));
            _mm_storel_epi64((void *)(out + 2 * npix + p), hi);
        }
    }
    uint32_t badtail = 0, mask = (1u << bits) - 1;
    for (; p < npix; p++) { /* tail: the bit reader from pixel p (p is a multiple of 8) */
        uint64_t bit = (uint64_t)p * bits;
        uint32_t v = packed[bit >> 3] >> (bit & 7);
        if ((bit & 7) + bits > 8) v |= (uint32_t)packed[(bit >> 3) + 1] << (8 - (bit & 7));
        v &= mask;
        badtail |= v >= k;
        uint32_t t = tab[v];
        if (c == 1) {
            out[p] = (uint8_t)t;
        } else if (!chw) {
            out[3 * p] = (uint8_t)t;
            out[3 * p + 1] = (uint8_t)(t >> 8);
            out[3 * p + 2] = (uint8_t)(t >> 16);
        } else {
            out[p] = (uint8_t)t;
            out[npix + p] = (uint8_t)(t >> 8);
            out[2 * npix + p] = (uint8_t)(t >> 16);
        }
    }
    if (badtail || !_mm256_testz_si256(bad, bad) || !padding_ok(packed, npix, bits)) return -1;
    return 0;
}
#endif

/* ---- normalised float32 CHW output ----------------------------------------------------- */

/* Per-channel float tables: flut[ch*APD_MAX_COLORS + e] = apd__norm_f32(pal[e*c + ch]) for
 * e < k, 0 for k <= e < span (span >= k: every entry a kernel may read, so none is uninitialised). */
static void norm_table(float *flut, const uint8_t *pal, uint32_t k, uint32_t c,
                       const float *mean, const float *std, uint32_t span)
{
    for (uint32_t ch = 0; ch < c; ch++) {
        float *t = flut + (size_t)ch * APD_MAX_COLORS;
        const float m = mean[ch], sd = std[ch]; /* locals: t may alias mean/std for the compiler */
        for (uint32_t e = 0; e < k; e++) t[e] = apd__norm_f32(pal[(size_t)e * c + ch], m, sd);
        if (span > k) memset(t + k, 0, (span - k) * sizeof *t);
    }
}

static int pal_decode_f32_scalar(const uint8_t *packed, size_t npix, uint32_t bits,
                                 const uint8_t *pal, uint32_t k, uint32_t c, const float *mean,
                                 const float *std, float *out)
{
    float flut[3 * APD_MAX_COLORS];
    norm_table(flut, pal, k, c, mean, std, 1u << bits); /* any bits-wide index */
    uint32_t mask = (1u << bits) - 1, acc = 0, have = 0, bad = 0;
    const uint8_t *p = packed;
    for (size_t j = 0; j < npix; j++) {
        if (have < bits) {
            acc |= (uint32_t)*p++ << have;
            have += 8;
        }
        uint32_t v = acc & mask;
        acc >>= bits;
        have -= bits;
        bad |= v >= k;
        for (uint32_t ch = 0; ch < c; ch++) out[ch * npix + j] = flut[ch * APD_MAX_COLORS + v];
    }
    if (bad || !padding_ok(packed, npix, bits)) return -1;
    return 0;
}

static void u8_norm_f32_scalar(const uint8_t *in, size_t n, float mean, float std, float *out)
{
    for (size_t p = 0; p < n; p++) out[p] = apd__norm_f32(in[p], mean, std);
}

#ifdef APD__X86
/* 16 float look-ups from a table of up to 256 entries held as np pairs of 16-entry zmm
 * (np = 1, 2, 4, 8 cover k <= 32, 64, 128, 256): vpermi2ps per pair, blends on index bits
 * 5, 6, 7. K = 64 RGB costs two permutes and a blend per 16 output floats per channel. */
APD__AVX512 static inline __m512 flut16(__m512i ix, const __m512 *t, int np)
{
    __m512 r0 = _mm512_permutex2var_ps(t[0], ix, t[1]);
    if (np == 1) return r0;
    __mmask16 b5 = _mm512_test_epi32_mask(ix, _mm512_set1_epi32(32));
    r0 = _mm512_mask_blend_ps(b5, r0, _mm512_permutex2var_ps(t[2], ix, t[3]));
    if (np == 2) return r0;
    __mmask16 b6 = _mm512_test_epi32_mask(ix, _mm512_set1_epi32(64));
    __m512 r2 = _mm512_mask_blend_ps(b5, _mm512_permutex2var_ps(t[4], ix, t[5]),
                                     _mm512_permutex2var_ps(t[6], ix, t[7]));
    r0 = _mm512_mask_blend_ps(b6, r0, r2);
    if (np == 4) return r0;
    __m512 r4 = _mm512_mask_blend_ps(b5, _mm512_permutex2var_ps(t[8], ix, t[9]),
                                     _mm512_permutex2var_ps(t[10], ix, t[11]));
    __m512 r6 = _mm512_mask_blend_ps(b5, _mm512_permutex2var_ps(t[12], ix, t[13]),
                                     _mm512_permutex2var_ps(t[14], ix, t[15]));
    r4 = _mm512_mask_blend_ps(b6, r4, r6);
    __mmask16 b7 = _mm512_test_epi32_mask(ix, _mm512_set1_epi32(128));
    return _mm512_mask_blend_ps(b7, r0, r4);
}

/* Indices 16g..16g+15 of a 64-index block as dwords (the extract needs an immediate). */
APD__AVX512 static inline __m512i idx16(__m512i v, int g)
{
    switch (g) {
    case 0: return _mm512_cvtepu8_epi32(_mm512_castsi512_si128(v));
    case 1: return _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, 1));
    case 2: return _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, 2));
    default: return _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, 3));
    }
}

/* The VBMI bit unpack of pal_decode_avx512 (64 indices per step), then a float look-up per
 * channel (flut16) with masked stores straight into the CHW planes. The float tables are
 * made in registers: the per-channel byte tables of pal_tables_avx512, widened 16 entries at
 * a time and normalised with the three vector operations of apd__norm_f32 (same roundings,
 * so the same bits as the scalar formula; entries past k hold norm(0) and are never
 * selected by a valid index). The body is instantiated for constant c and np (always
 * inlined into pal_decode_f32_avx512's switch) so that the tables stay in registers and the
 * channel loop unrolls: for K = 64 RGB, 6 table registers, 2 permutes + 1 blend + 1 store per
 * 16 floats. */
#define APD__AVX512_INL __attribute__((target("avx512f,avx512bw,avx512vbmi"), always_inline))
APD__AVX512_INL static inline int pal_f32_body(const uint8_t *packed, size_t npix,
                                               uint32_t bits, const uint8_t *pal, uint32_t k,
                                               const uint32_t c, const float *mean,
                                               const float *std, float *out, const int np)
{
    __m512 t[3][16];
    {
        __m512i tb[3][4];
        (void)pal_tables_avx512(pal, k, c, tb);
        const __m512 s255 = _mm512_set1_ps(1.0f / 255.0f);
        for (uint32_t ch = 0; ch < c; ch++) {
            const __m512 m = _mm512_set1_ps(mean[ch]), is = _mm512_set1_ps(1.0f / std[ch]);
            for (int q = 0; q < 2 * np; q++) {
                __m512 v = _mm512_cvtepi32_ps(idx16(tb[ch][q >> 2], q & 3));
                t[ch][q] = _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(v, s255), m), is);
            }
        }
    }
    const __m512i vperm = _mm512_loadu_si512(unpack_perm[bits]);
    const __m512i vshift = _mm512_loadu_si512(unpack_shift[bits]);
    const __m512i vmask = _mm512_set1_epi8((char)((1u << bits) - 1));
    const __m512i vkm1 = _mm512_set1_epi8((char)(k - 1));
    const size_t step_bytes = 8u * bits;
    size_t bytes_left = packed_bytes(npix, bits);
    const uint8_t *src = packed;
    __mmask64 bad = 0;
    for (size_t j = 0; j < npix; j += 64) {
        size_t rem = npix - j;
        __mmask64 pm = low_mask(rem);
        __m512i v = unpack_next64(&src, &bytes_left, step_bytes, vperm, vshift, vmask);
        if (k < APD_MAX_COLORS) bad |= _mm512_mask_cmpgt_epu8_mask(pm, v, vkm1);
        if (rem >= 64) { /* full block: unmasked stores */
            for (int g = 0; g < 4; g++) {
                __m512i ix = idx16(v, g);
                for (uint32_t ch = 0; ch < c; ch++)
                    _mm512_storeu_ps(out + ch * npix + j + 16 * (size_t)g, flut16(ix, t[ch], np));
            }
            continue;
        }
        for (int g = 0; g < 4; g++) {
            __mmask16 m = (__mmask16)(pm >> (16 * g));
            if (!m) break;
            __m512i ix = idx16(v, g);
            for (uint32_t ch = 0; ch < c; ch++)
                _mm512_mask_storeu_ps(out + ch * npix + j + 16 * (size_t)g, m,
                                      flut16(ix, t[ch], np));
        }
    }
    if (bad || !padding_ok(packed, npix, bits)) return -1;
    return 0;
}

APD__AVX512 static int pal_decode_f32_avx512(const uint8_t *packed, size_t npix, uint32_t bits,
                                             const uint8_t *pal, uint32_t k, uint32_t c,
                                             const float *mean, const float *std, float *out)
{
    int np = k <= 32 ? 1 : k <= 64 ? 2 : k <= 128 ? 4 : 8;
#define APD__F32_CASE(C, NP)                                                                  \
    if (c == (C) && np == (NP))                                                               \
        return pal_f32_body(packed, npix, bits, pal, k, (C), mean, std, out, (NP))
    APD__F32_CASE(3, 1); APD__F32_CASE(3, 2); APD__F32_CASE(3, 4); APD__F32_CASE(3, 8);
    APD__F32_CASE(1, 1); APD__F32_CASE(1, 2); APD__F32_CASE(1, 4); APD__F32_CASE(1, 8);
#undef APD__F32_CASE
    return pal_f32_body(packed, npix, bits, pal, k, c, mean, std, out, np); /* c == 2: unused */
}

APD__AVX512 static void u8_norm_f32_avx512(const uint8_t *in, size_t n, float mean, float std,
                                           float *out)
{
    const __m512 s = _mm512_set1_ps(1.0f / 255.0f), m = _mm512_set1_ps(mean);
    const __m512 is = _mm512_set1_ps(1.0f / std);
    size_t p = 0;
    for (; p + 16 <= n; p += 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(in + p));
        __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
        _mm512_storeu_ps(out + p, _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(v, s), m), is));
    }
    for (; p < n; p++) out[p] = apd__norm_f32(in[p], mean, std);
}
#endif

/* ---- the dispatch ------------------------------------------------------------------------ */

int apd__impl_available(apd__impl impl)
{
    switch (impl) {
    case APD__IMPL_AUTO:
    case APD__IMPL_SCALAR: return 1;
#ifdef APD__X86
    case APD__IMPL_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vbmi");
    case APD__IMPL_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
#endif
    default: return 0;
    }
}

apd__impl apd__impl_best(void)
{
    if (apd__impl_available(APD__IMPL_AVX512)) return APD__IMPL_AVX512;
    if (apd__impl_available(APD__IMPL_AVX2)) return APD__IMPL_AVX2;
    return APD__IMPL_SCALAR;
}

/* The one run-time choice every entry point makes: AUTO -> the best family of this CPU; a
 * named family this CPU lacks -> scalar. (__builtin_cpu_supports reads libgcc's CPU model,
 * filled once at load time, so this costs a few loads per call.) */
static apd__impl select_impl(apd__impl impl)
{
    if (impl == APD__IMPL_AUTO) return apd__impl_best();
    return apd__impl_available(impl) ? impl : APD__IMPL_SCALAR;
}

int apd__pal_decode(apd__impl impl, const uint8_t *packed, size_t npix, uint32_t bits,
                    const uint8_t *pal, uint32_t k, uint32_t c, int chw, uint8_t *out)
{
    switch (select_impl(impl)) {
#ifdef APD__X86
    case APD__IMPL_AVX512: return pal_decode_avx512(packed, npix, bits, pal, k, c, chw, out);
    case APD__IMPL_AVX2: return pal_decode_avx2(packed, npix, bits, pal, k, c, chw, out);
#endif
    default: return pal_decode_scalar(packed, npix, bits, pal, k, c, chw, out);
    }
}

int apd__pal_decode_f32(apd__impl impl, const uint8_t *packed, size_t npix, uint32_t bits,
                        const uint8_t *pal, uint32_t k, uint32_t c, const float *mean,
                        const float *std, float *out)
{
#ifdef APD__X86
    if (select_impl(impl) == APD__IMPL_AVX512)
        return pal_decode_f32_avx512(packed, npix, bits, pal, k, c, mean, std, out);
#endif
    return pal_decode_f32_scalar(packed, npix, bits, pal, k, c, mean, std, out);
}

void apd__u8_norm_f32(apd__impl impl, const uint8_t *in, size_t n, float mean, float std,
                      float *out)
{
#ifdef APD__X86
    if (select_impl(impl) == APD__IMPL_AVX512) {
        u8_norm_f32_avx512(in, n, mean, std, out);
        return;
    }
#endif
    u8_norm_f32_scalar(in, n, mean, std, out);
}
