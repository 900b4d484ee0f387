/* nn/gemm_f32.c: C = A B in float32 with an AVX-512 microkernel, for the ConvNet's 3x3
 * convolution GEMMs (forward W x im2col and backward W^T x dC).
 *
 * Why not cblas_sgemm: OpenBLAS packs both operands on every call (another full pass over
 * the 1.2 MB im2col matrix of a 16x16 conv layer) and, depending on the CPU model and
 * OPENBLAS_CORETYPE, may run AVX2 kernels on an AVX-512 CPU (0.3.21 gives AMD Zen 4/5 its
 * "Haswell" kernels: half the FMA width). This kernel reads A through two strides (so W and
 * W^T need no copy), keeps an 8 x 48 tile of C in 24 zmm registers, and walks K in blocks
 * of 128: each 128 x 48 block of B (24 KB) is copied once to a contiguous panel that stays in
 * L1 while all the 8-row strips of A pass over it.
 * apd__gemm_f32_add (C += A B) serves the weight gradients: the tile starts from C instead of 0.
 * Sums run in k order with FMA: within float32 round-off of sgemm, not bit-identical to it.
 * Used only when the CPU has AVX-512F (apd__gemm_f32_ok) and APD_NN_GEMM is not "openblas".
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

#define MR 8
#define NV 3
#define KC 128

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f")
#include <immintrin.h>

static inline __mmask16 lanes16(size_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

static inline __attribute__((always_inline)) void tile(float *c, size_t ldc, const float *a, size_t ars, size_t acs,
                                                       const float *b, size_t ldb, size_t kc, int first, size_t rows,
                                                       size_t cols, const int nv)
{
    __m512 acc[MR][NV];
    __mmask16 km[NV];
    const float *ar[MR];
#pragma GCC unroll 3
    for (int j = 0; j < nv; j++) km[j] = (size_t)j * 16 < cols ? lanes16(cols - (size_t)j * 16) : 0;
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        ar[r] = a + ((size_t)r < rows ? (size_t)r : rows - 1) * ars; /* rows past M: computed, not stored */
#pragma GCC unroll 3
        for (int j = 0; j < nv; j++)
            acc[r][j] = (first || (size_t)r >= rows) ? _mm512_setzero_ps()
                                                     : _mm512_maskz_loadu_ps(km[j], c + r * ldc + j * 16);
    }
    for (size_t p = 0; p < kc; p++) {
        const float *brow = b + p * ldb;
        __m512 bv[NV];
#pragma GCC unroll 3
        for (int j = 0; j < nv; j++) bv[j] = _mm512_load_ps(brow + j * 16); /* packed, zero-padded */
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(ar[r][p * acs]);
#pragma GCC unroll 3
            for (int j = 0; j < nv; j++) acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
        if ((size_t)r < rows) {
#pragma GCC unroll 3
            for (int j = 0; j < nv; j++) _mm512_mask_storeu_ps(c + r * ldc + j * 16, km[j], acc[r][j]);
        }
}

static void gemm_v(float *c, size_t ldc, const float *a, size_t ars, size_t acs, const float *b, size_t ldb, size_t M,
                   size_t N, size_t K, int add)
{
    /* B panel copied to a contiguous block: rows ldb floats apart (1 KB for a 16x16 layer)
     * would map onto few L1 sets and evict each other */
    float bpan[KC * NV * 16] __attribute__((aligned(64)));
    for (size_t k0 = 0; k0 < K; k0 += KC) {
        size_t kc = K - k0 < KC ? K - k0 : KC;
        for (size_t n0 = 0; n0 < N; n0 += NV * 16) {
            size_t cols = N - n0 < NV * 16 ? N - n0 : NV * 16;
            for (size_t p = 0; p < kc; p++)
                for (size_t j = 0; j < NV * 16; j += 16)
                    _mm512_store_ps(bpan + p * NV * 16 + j,
                                    _mm512_maskz_loadu_ps(j < cols ? lanes16(cols - j) : 0, b + (k0 + p) * ldb + n0 + j));
            for (size_t m0 = 0; m0 < M; m0 += MR) {
                size_t rows = M - m0 < MR ? M - m0 : MR;
                const float *apan = a + m0 * ars + k0 * acs;
                float *ct = c + m0 * ldc + n0;
                if (cols > 32)
                    tile(ct, ldc, apan, ars, acs, bpan, NV * 16, kc, k0 == 0 && !add, rows, cols, 3);
                else if (cols > 16)
                    tile(ct, ldc, apan, ars, acs, bpan, NV * 16, kc, k0 == 0 && !add, rows, cols, 2);
                else
                    tile(ct, ldc, apan, ars, acs, bpan, NV * 16, kc, k0 == 0 && !add, rows, cols, 1);
            }
        }
    }
}
#pragma GCC pop_options
#else
static void gemm_v(float *c, size_t ldc, const float *a, size_t ars, size_t acs, const float *b, size_t ldb, size_t M,
                   size_t N, size_t K, int add)
{
    (void)c, (void)ldc, (void)a, (void)ars, (void)acs, (void)b, (void)ldb, (void)M, (void)N, (void)K, (void)add;
}
#endif

int apd__gemm_f32_ok(void)
{
    if (!apd__cpu_avx512f()) return 0;
    const char *e = getenv("APD_NN_GEMM");
    return !(e && strcmp(e, "openblas") == 0);
}

void apd__gemm_f32(float *c, size_t ldc, const float *a, size_t ars, size_t acs, const float *b, size_t ldb, size_t M,
                   size_t N, size_t K)
{
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (size_t m = 0; m < M; m++) memset(c + m * ldc, 0, N * sizeof(float));
        return;
    }
    gemm_v(c, ldc, a, ars, acs, b, ldb, M, N, K, 0);
}

void apd__gemm_f32_add(float *c, size_t ldc, const float *a, size_t ars, size_t acs, const float *b, size_t ldb,
                       size_t M, size_t N, size_t K)
{
    if (M == 0 || N == 0 || K == 0) return;
    gemm_v(c, ldc, a, ars, acs, b, ldb, M, N, K, 1);
}
