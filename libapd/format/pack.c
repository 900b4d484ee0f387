/* format/pack.c: bit packing of palette indices and the palette look-up kernels.
 *
 * Bit order (spec/apd-format.md "Index packing"): indices are packed LSB-first into a little-
 * endian bit stream; index j occupies stream bits [j*b, j*b + b), and stream bit t is bit
 * (t mod 8) of byte t/8. The final byte's unused high bits are zero.
 *
 *     b = 6, indices i0..i3:   byte0 = i0 | i1<<6     byte1 = i1>>2 | i2<<4
 *                              byte2 = i2>>4 | i3<<2
 *
 * Kernels: a scalar reference (apd__pal_decode with APD__IMPL_SCALAR; also the fallback on
 * CPUs without the vector extensions) and an AVX-512 VBMI kernel that handles 64 pixels per
 * step: vpermb places each 8-index group's bytes into a qword lane, vpmultishiftqb extracts
 * the b-bit fields, and vpermi2b looks up 128-entry per-channel tables (two look-ups and a
 * blend on bit 7 when K > 128); HWC output is interleaved with vpermt2b. The tables are
 * gathered from the entry-major palette with vpermi2b too, so no per-call scalar set-up runs.
 * Selection is at run time (__builtin_cpu_supports), so the library needs no -march flag.
 * Tests run both kernels on the same input and require identical bytes.
 */
#include <string.h>

#include "format/format_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define APD__X86 1
#include "format/pack_tables.h"
#endif

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
                             const uint8_t *pal, uint32_t k, uint32_t c, apd_layout layout,
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
        } else if (layout == APD_LAYOUT_HWC) {
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

APD__AVX512 static inline __m512i lut512(__m512i idx, const __m512i *t, int nq)
{
    __m512i lo = _mm512_permutex2var_epi8(t[0], idx, t[1]);
    if (nq <= 2) return lo;
    __m512i hi = _mm512_permutex2var_epi8(t[2], idx, t[3]);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi);
}

APD__AVX512 static int pal_decode_avx512(const uint8_t *packed, size_t npix, uint32_t bits,
                                         const uint8_t *pal, uint32_t k, uint32_t c,
                                         apd_layout layout, uint8_t *out)
{
    /* Per-channel tables: t[ch][q] holds channel ch of entries 64q..64q+63 (zero past k). */
    __m512i t[3][4];
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
    size_t bytes_left = apd_packed_bytes(npix, bits);
    const uint8_t *src = packed;
    __mmask64 bad = 0;
    for (size_t j = 0; j < npix; j += 64) {
        size_t rem = npix - j;
        __mmask64 pm = low_mask(rem);
        size_t take = bytes_left < step_bytes ? bytes_left : step_bytes;
        __m512i raw = _mm512_maskz_loadu_epi8(low_mask(take), src);
        src += take;
        bytes_left -= take;
        __m512i v = _mm512_permutexvar_epi8(vperm, raw);
        v = _mm512_and_si512(_mm512_multishift_epi64_epi8(vshift, v), vmask);
        if (k < 256) bad |= _mm512_mask_cmpgt_epu8_mask(pm, v, vkm1);
        if (c == 1) {
            _mm512_mask_storeu_epi8(out + j, pm, lut512(v, t[0], nq));
            continue;
        }
        __m512i r = lut512(v, t[0], nq), g = lut512(v, t[1], nq), b = lut512(v, t[2], nq);
        if (layout == APD_LAYOUT_CHW) {
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
#endif

int apd__impl_available(apd__impl impl)
{
    switch (impl) {
    case APD__IMPL_AUTO:
    case APD__IMPL_SCALAR: return 1;
#ifdef APD__X86
    case APD__IMPL_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vbmi");
#endif
    default: return 0;
    }
}

int apd__pal_decode(apd__impl impl, const uint8_t *packed, size_t npix, uint32_t bits,
                    const uint8_t *pal, uint32_t k, uint32_t c, apd_layout layout, uint8_t *out)
{
#ifdef APD__X86
    if ((impl == APD__IMPL_AUTO || impl == APD__IMPL_AVX512) &&
        apd__impl_available(APD__IMPL_AVX512))
        return pal_decode_avx512(packed, npix, bits, pal, k, c, layout, out);
#endif
    return pal_decode_scalar(packed, npix, bits, pal, k, c, layout, out);
}
