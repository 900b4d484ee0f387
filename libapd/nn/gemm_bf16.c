/* nn/gemm_bf16.c: C = A B with bfloat16 inputs and float32 accumulation, for forwards that
 * need no gradient (the real-image side of a DM step).
 *
 * Why our own kernel: Debian 12's OpenBLAS 0.3.21 declares cblas_sbgemm in cblas.h but is
 * built without it (the symbol is not exported), so there is no library bf16 GEMM to call.
 *
 * Layout: A [M][K] row-major floats is packed to bf16 [Mp][Kp] (Mp = M rounded up to 8,
 * Kp = K rounded up to 2, zero padding); B [K][N] (row stride ldb) is packed to bf16 pairs
 * [Kp/2][Np][2] (Np = N rounded up to 16): element (k, n) sits at ((k/2) * Np + n) * 2 + k%2,
 * so one 64-byte vector holds 16 columns x 2 consecutive k, which is what VDPBF16PS
 * multiplies against a broadcast (A[m][k], A[m][k+1]) pair. The microkernel keeps 8 rows x
 * 48 columns (24 zmm accumulators) and walks K in blocks of KC pairs so the B panel
 * (KC x 48 x 4 bytes = 24 KB) stays in L1 while the 8-row A strips stream past it.
 * Rounding float -> bf16 is round-to-nearest-even (VCVTNE2PS2BF16); NaN stays NaN.
 *
 * Dispatch: used only when the CPU reports AVX512_BF16 (cpuid leaf 7 sub-leaf 1, EAX bit 5)
 * with AVX-512 F/BW, and the environment does not set APD_NN_BF16=0 (apd_nn_bf16_enabled).
 * Everything here is compiled for those extensions by target attributes, whatever -march.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "common/internal.h"
#include "nn/nn_internal.h"

#define MR 8
#define NV 3    /* 16-column vectors per micro tile */
#define KC 128  /* k pairs per block */

size_t apd__bf16_a_elems(size_t M, size_t K) { return ((M + MR - 1) / MR * MR) * ((K + 1) & ~(size_t)1); }
size_t apd__bf16_b_elems(size_t K, size_t N) { return ((K + 1) & ~(size_t)1) * ((N + 15) & ~(size_t)15); }

/* Scalar round-to-nearest-even float -> bf16 (NaN kept quiet); the reference for tests and
 * the path for odd leftovers. */
uint16_t apd__bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float apd__bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void apd__bf16_pack_a(uint16_t *ap, const float *a, size_t lda, size_t M, size_t K)
{
    size_t Mp = (M + MR - 1) / MR * MR, Kp = (K + 1) & ~(size_t)1;
    for (size_t m = 0; m < Mp; m++)
        for (size_t k = 0; k < Kp; k++)
            ap[m * Kp + k] = (m < M && k < K) ? apd__bf16_round(a[m * lda + k]) : 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>

static int probe_bf16(void)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

static int cpu_has_bf16(void)
{
    static int have = -1;
    return apd__cached_flag(&have, probe_bf16);
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512bf16")
#include <immintrin.h>

static inline __mmask16 lanes16(size_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

static void pack_b_v(uint16_t *bp, const float *b, size_t ldb, size_t K, size_t N)
{
    size_t Np = (N + 15) & ~(size_t)15, Kh = (K + 1) / 2;
    static const uint16_t order[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                       8,  24, 9,  25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i inter = _mm512_loadu_si512((const void *)order);
    for (size_t kp = 0; kp < Kh; kp++) {
        const float *r0 = b + 2 * kp * ldb, *r1 = 2 * kp + 1 < K ? r0 + ldb : NULL;
        uint16_t *dst = bp + kp * Np * 2;
        for (size_t n = 0; n < Np; n += 16) {
            __mmask16 k = n < N ? lanes16(N - n) : 0;
            __m512 v0 = _mm512_maskz_loadu_ps(k, r0 + n);
            __m512 v1 = r1 ? _mm512_maskz_loadu_ps(k, r1 + n) : _mm512_setzero_ps();
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(v1, v0); /* low 16: row k, high 16: row k+1 */
            _mm512_storeu_si512((void *)(dst + n * 2), _mm512_permutexvar_epi16(inter, h));
        }
    }
}

/* Columns [col0, col0 + n) of packed pair row dst (Np columns): from float rows r0 and r1
 * (r1 NULL: zeros). */
static void pack_pair_v(uint16_t *dst, size_t col0, const float *r0, const float *r1, size_t n)
{
    static const uint16_t order[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                       8,  24, 9,  25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i inter = _mm512_loadu_si512((const void *)order);
    for (size_t i = 0; i < n; i += 16) {
        size_t m = n - i < 16 ? n - i : 16;
        __mmask16 k = lanes16(m);
        __m512 v0 = _mm512_maskz_loadu_ps(k, r0 + i);
        __m512 v1 = r1 ? _mm512_maskz_loadu_ps(k, r1 + i) : _mm512_setzero_ps();
        __m512i h = _mm512_permutexvar_epi16(inter, (__m512i)_mm512_cvtne2ps_pbh(v1, v0));
        __mmask32 k2 = m == 16 ? 0xFFFFFFFFu : (__mmask32)((1u << (2 * m)) - 1u);
        _mm512_mask_storeu_epi16((void *)(dst + (col0 + i) * 2), k2, h);
    }
}

/* apd__bf16_im2col_pack without staging rows: each 16-column piece of a row pair is read
 * straight from the two input planes by masked loads (lanes outside the image are zero, and a
 * masked-off lane is never read), then rounded and interleaved as pack_pair_v does: the same
 * bits as im2col_row + pack_pair_v, without their float rows, per-row memcpy calls and second
 * pass (those were ~15% of a 32 px bf16 DM iteration). */
static void im2col_pack_v(uint16_t *bp, size_t Np, size_t col0, const float *in, size_t Ci, size_t H, size_t W,
                          size_t k, size_t pad, size_t Ho, size_t Wo)
{
    static const uint16_t order[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                       8,  24, 9,  25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i inter = _mm512_loadu_si512((const void *)order);
    size_t K = Ci * k * k;
    for (size_t kp = 0; kp < (K + 1) / 2; kp++) {
        const float *pl[2] = {NULL, NULL};
        ptrdiff_t dy[2] = {0, 0}, dx[2] = {0, 0};
        size_t lo[2] = {0, 0}, hi[2] = {0, 0};
        for (int h = 0; h < 2; h++) {
            size_t r = 2 * kp + (size_t)h;
            if (r >= K) break; /* odd K: the second row of the last pair is zero */
            size_t ci = r / (k * k), ky = (r / k) % k, kx = r % k;
            pl[h] = in + ci * H * W;
            dy[h] = (ptrdiff_t)ky - (ptrdiff_t)pad;
            dx[h] = (ptrdiff_t)kx - (ptrdiff_t)pad;
            apd__im2col_span(W, pad, kx, Wo, &lo[h], &hi[h]); /* columns read inside [0, W) */
        }
        uint16_t *dst = bp + kp * Np * 2 + col0 * 2;
        for (size_t ox = 0; ox < Wo; ox += 16) {
            /* the lanes of this piece that lie inside the image depend on kx only: set them up
               once, then walk the rows (a row outside the image is all zero) */
            size_t m = Wo - ox < 16 ? Wo - ox : 16;
            __mmask16 km[2];
            for (int h = 0; h < 2; h++) {
                size_t a = lo[h] > ox ? lo[h] : ox, b = hi[h] < ox + m ? hi[h] : ox + m;
                km[h] = pl[h] && a < b ? (__mmask16)(lanes16(b - ox) & ~lanes16(a - ox)) : 0;
            }
            __mmask32 k2 = m == 16 ? 0xFFFFFFFFu : (__mmask32)((1u << (2 * m)) - 1u);
            for (size_t oy = 0; oy < Ho; oy++) {
                __m512 v[2];
                for (int h = 0; h < 2; h++) {
                    ptrdiff_t iy = (ptrdiff_t)oy + dy[h];
                    /* lane j reads input column ox + j + dx; masked-off lanes are not read */
                    v[h] = km[h] && iy >= 0 && iy < (ptrdiff_t)H
                               ? _mm512_maskz_loadu_ps(km[h], pl[h] + (size_t)iy * W + (ptrdiff_t)ox + dx[h])
                               : _mm512_setzero_ps();
                }
                __m512i hv = _mm512_permutexvar_epi16(inter, (__m512i)_mm512_cvtne2ps_pbh(v[1], v[0]));
                if (m == 16)
                    _mm512_storeu_si512((void *)(dst + (oy * Wo + ox) * 2), hv);
                else
                    _mm512_mask_storeu_epi16((void *)(dst + (oy * Wo + ox) * 2), k2, hv);
            }
        }
    }
}

/* One MR x (nv*16) tile over kc pairs. first: start from zero, else add to C. rows/cols:
 * how much of the tile lies inside C. */
static inline __attribute__((always_inline)) void tile(float *c, size_t ldc, const uint16_t *ap, size_t Kp,
                                                       const uint16_t *bp, size_t Np, size_t kc, int first,
                                                       size_t rows, size_t cols, const int nv)
{
    __m512 acc[MR][NV];
    __mmask16 km[NV];
#pragma GCC unroll 3
    for (int j = 0; j < nv; j++) km[j] = (size_t)j * 16 < cols ? lanes16(cols - (size_t)j * 16) : 0;
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 3
        for (int j = 0; j < nv; j++)
            acc[r][j] = (first || (size_t)r >= rows) ? _mm512_setzero_ps()
                                                     : _mm512_maskz_loadu_ps(km[j], c + r * ldc + j * 16);
    const uint32_t *a32 = (const uint32_t *)(const void *)ap;
    size_t lda32 = Kp / 2;
    for (size_t p = 0; p < kc; p++) {
        const uint16_t *brow = bp + p * Np * 2;
        __m512bh bv[NV];
#pragma GCC unroll 3
        for (int j = 0; j < nv; j++) bv[j] = (__m512bh)_mm512_loadu_si512((const void *)(brow + j * 32));
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a32[r * lda32 + p]);
#pragma GCC unroll 3
            for (int j = 0; j < nv; j++) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, bv[j]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
        if ((size_t)r < rows) {
#pragma GCC unroll 3
            for (int j = 0; j < nv; j++) _mm512_mask_storeu_ps(c + r * ldc + j * 16, km[j], acc[r][j]);
        }
}

static void gemm_v(float *c, size_t ldc, const uint16_t *ap, const uint16_t *bp, size_t M, size_t N, size_t K)
{
    size_t Kp = (K + 1) & ~(size_t)1, Kh = Kp / 2, Np = (N + 15) & ~(size_t)15;
    for (size_t k0 = 0; k0 < Kh; k0 += KC) {
        size_t kc = Kh - k0 < KC ? Kh - k0 : KC;
        for (size_t n0 = 0; n0 < Np; n0 += NV * 16) {
            size_t nw = Np - n0 < NV * 16 ? Np - n0 : NV * 16, cols = N - n0 < nw ? N - n0 : nw;
            const uint16_t *bpan = bp + (k0 * Np + n0) * 2;
            for (size_t m0 = 0; m0 < M; m0 += MR) {
                size_t rows = M - m0 < MR ? M - m0 : MR;
                const uint16_t *apan = ap + m0 * Kp + 2 * k0;
                float *ct = c + m0 * ldc + n0;
                if (nw == 48)
                    tile(ct, ldc, apan, Kp, bpan, Np, kc, k0 == 0, rows, cols, 3);
                else if (nw == 32)
                    tile(ct, ldc, apan, Kp, bpan, Np, kc, k0 == 0, rows, cols, 2);
                else
                    tile(ct, ldc, apan, Kp, bpan, Np, kc, k0 == 0, rows, cols, 1);
            }
        }
    }
}
#pragma GCC pop_options
#else
static int cpu_has_bf16(void) { return 0; }
static void pack_b_v(uint16_t *bp, const float *b, size_t ldb, size_t K, size_t N)
{
    (void)bp, (void)b, (void)ldb, (void)K, (void)N;
}
static void pack_pair_v(uint16_t *dst, size_t col0, const float *r0, const float *r1, size_t n)
{
    (void)dst, (void)col0, (void)r0, (void)r1, (void)n;
}
static void im2col_pack_v(uint16_t *bp, size_t Np, size_t col0, const float *in, size_t Ci, size_t H, size_t W,
                          size_t k, size_t pad, size_t Ho, size_t Wo)
{
    (void)bp, (void)Np, (void)col0, (void)in, (void)Ci, (void)H, (void)W, (void)k, (void)pad, (void)Ho, (void)Wo;
}
static void gemm_v(float *c, size_t ldc, const uint16_t *ap, const uint16_t *bp, size_t M, size_t N, size_t K)
{
    (void)c, (void)ldc, (void)ap, (void)bp, (void)M, (void)N, (void)K;
}
#endif

int apd__bf16_cpu(void) { return cpu_has_bf16(); }

/* Row r = (ci * k + ky) * k + kx of one image's im2col (see nn_internal.h), P floats. */
static void im2col_row(float *dst, const float *plane, size_t H, size_t W, size_t ky, size_t kx, size_t pad,
                       size_t Ho, size_t Wo)
{
    size_t lo, hi;
    apd__im2col_span(W, pad, kx, Wo, &lo, &hi);
    for (size_t oy = 0; oy < Ho; oy++) {
        float *d = dst + oy * Wo;
        ptrdiff_t iy = (ptrdiff_t)oy + (ptrdiff_t)ky - (ptrdiff_t)pad;
        if (iy < 0 || iy >= (ptrdiff_t)H) {
            memset(d, 0, Wo * sizeof *d);
            continue;
        }
        const float *src = plane + (size_t)iy * W + (lo + kx - pad);
        for (size_t ox = 0; ox < lo; ox++) d[ox] = 0.0f;
        memcpy(d + lo, src, (hi - lo) * sizeof *d);
        for (size_t ox = hi; ox < Wo; ox++) d[ox] = 0.0f;
    }
}

void apd__bf16_im2col_pack(uint16_t *bp, size_t N, size_t col0, const float *in, size_t Ci, size_t H, size_t W,
                           size_t k, size_t pad, size_t Ho, size_t Wo, float *tmp)
{
    size_t P = Ho * Wo, K = Ci * k * k, Np = (N + 15) & ~(size_t)15;
    if (cpu_has_bf16()) {
        im2col_pack_v(bp, Np, col0, in, Ci, H, W, k, pad, Ho, Wo);
        if (col0 + P == N) /* last image: pad columns */
            for (size_t kp = 0; kp < (K + 1) / 2; kp++) memset(bp + kp * Np * 2 + N * 2, 0, (Np - N) * 2 * sizeof *bp);
        return;
    }
    float *t0 = tmp, *t1 = tmp + P;
    for (size_t kp = 0; kp < (K + 1) / 2; kp++) {
        int two = 2 * kp + 1 < K;
        for (int h = 0; h < 1 + two; h++) {
            size_t r = 2 * kp + (size_t)h, ci = r / (k * k), ky = (r / k) % k, kx = r % k;
            im2col_row(h ? t1 : t0, in + ci * H * W, H, W, ky, kx, pad, Ho, Wo);
        }
        uint16_t *dst = bp + kp * Np * 2;
        if (cpu_has_bf16()) {
            pack_pair_v(dst, col0, t0, two ? t1 : NULL, P);
        } else {
            for (size_t i = 0; i < P; i++) {
                dst[(col0 + i) * 2] = apd__bf16_round(t0[i]);
                dst[(col0 + i) * 2 + 1] = two ? apd__bf16_round(t1[i]) : 0;
            }
        }
        if (col0 + P == N) memset(dst + N * 2, 0, (Np - N) * 2 * sizeof *dst); /* last image: pad columns */
    }
}

int apd_nn_bf16_enabled(void)
{
    if (!cpu_has_bf16()) return 0;
    const char *e = getenv("APD_NN_BF16");
    return !(e && e[0] == '0' && e[1] == '\0');
}

const char *apd_nn_gemm_kernels(void)
{
    int own = apd__gemm_f32_ok(), bf = apd_nn_bf16_enabled();
    if (own && bf)
        return "conv1 direct AVX-512; 3x3 conv GEMMs (forward, input and weight gradients) fp32 AVX-512 "
               "microkernel (8x48); no-gradient forwards bf16 AVX512_BF16 microkernel (8x48, vdpbf16ps); "
               "classifier OpenBLAS sgemm";
    if (own)
        return cpu_has_bf16() ? "conv1 direct AVX-512; 3x3 conv GEMMs (forward, input and weight gradients) fp32 "
                                "AVX-512 microkernel (8x48); bf16 disabled (APD_NN_BF16=0); classifier OpenBLAS sgemm"
                              : "conv1 direct AVX-512; 3x3 conv GEMMs (forward, input and weight gradients) fp32 "
                                "AVX-512 microkernel (8x48); no AVX512_BF16; classifier OpenBLAS sgemm";
    if (bf)
        return "conv1 direct AVX-512; fp32 GEMMs OpenBLAS sgemm (APD_NN_GEMM=openblas); no-gradient forwards bf16 "
               "AVX512_BF16 microkernel (8x48, vdpbf16ps)";
    return "fp32 GEMMs OpenBLAS sgemm (no AVX-512 or APD_NN_GEMM=openblas; bf16 off)";
}

void apd__bf16_pack_b(uint16_t *bp, const float *b, size_t ldb, size_t K, size_t N)
{
    if (cpu_has_bf16()) {
        pack_b_v(bp, b, ldb, K, N);
        return;
    }
    size_t Np = (N + 15) & ~(size_t)15, Kp = (K + 1) & ~(size_t)1;
    for (size_t k = 0; k < Kp; k++)
        for (size_t n = 0; n < Np; n++)
            bp[((k / 2) * Np + n) * 2 + k % 2] = (k < K && n < N) ? apd__bf16_round(b[k * ldb + n]) : 0;
}

/* Scalar twin of gemm_v (same products, float accumulation in k order). */
static void gemm_s(float *c, size_t ldc, const uint16_t *ap, const uint16_t *bp, size_t M, size_t N, size_t K)
{
    size_t Kp = (K + 1) & ~(size_t)1, Np = (N + 15) & ~(size_t)15;
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            float s = 0.0f;
            for (size_t k = 0; k < Kp; k++)
                s += apd__bf16_to_float(ap[m * Kp + k]) * apd__bf16_to_float(bp[((k / 2) * Np + n) * 2 + k % 2]);
            c[m * ldc + n] = s;
        }
}

void apd__bf16_gemm(float *c, size_t ldc, const uint16_t *ap, const uint16_t *bp, size_t M, size_t N, size_t K)
{
    if (cpu_has_bf16())
        gemm_v(c, ldc, ap, bp, M, N, K);
    else
        gemm_s(c, ldc, ap, bp, M, N, K);
}
