/* nn/nn_internal.h: helpers shared by the NN engine's kernels (not installed).
 *
 * im2col layout: for one image, row r = (ci * k + ky) * k + kx of the column matrix holds
 * in[ci, oy + ky - pad, ox + kx - pad] (zero outside) at column oy * Wo + ox. Rows are
 * `ld` floats apart so several images can sit side by side in one matrix
 * ([K][g * P] with P = Ho * Wo, image j at column offset j * P) for a single wider GEMM.
 */
#ifndef APD_NN_INTERNAL_H
#define APD_NN_INTERNAL_H

#include <stddef.h>

void apd__im2col(float *col, size_t ld, const float *in, size_t Ci, size_t H, size_t W, size_t k,
                 size_t pad, size_t Ho, size_t Wo);
/* din[ci, iy, ix] += col[...] (the adjoint of apd__im2col). */
void apd__col2im_add(float *din, const float *col, size_t ld, size_t Ci, size_t H, size_t W,
                     size_t k, size_t pad, size_t Ho, size_t Wo);

/* The output columns [*lo, *hi) of im2col row kx (k x k kernel, padding pad, input width W,
 * output width Wo) that read inside the input: 0 <= ox + kx - pad < W. Shared by every
 * im2col / col2im writer. */
static inline void apd__im2col_span(size_t W, size_t pad, size_t kx, size_t Wo, size_t *lo, size_t *hi)
{
    size_t l = pad > kx ? pad - kx : 0, h = W + pad - kx; /* W + pad >= k > kx */
    if (h > Wo) h = Wo;
    *lo = l > h ? h : l;
    *hi = h;
}

/* bf16 GEMM (gemm_bf16.c): C[M][N] (row stride ldc) = A B with A packed by
 * apd__bf16_pack_a (from float [M][K], row stride lda) into apd__bf16_a_elems(M, K) uint16,
 * B packed by apd__bf16_pack_b (from float [K][N], row stride ldb) into
 * apd__bf16_b_elems(K, N) uint16. Inputs rounded to bf16 (nearest even), products summed
 * in float. Uses the AVX512_BF16 kernel when the CPU has it (apd__bf16_cpu), else a scalar
 * twin with the same rounding. apd__bf16_round / apd__bf16_to_float: the scalar conversions. */
#include <stdint.h>
size_t apd__bf16_a_elems(size_t M, size_t K);
size_t apd__bf16_b_elems(size_t K, size_t N);
void apd__bf16_pack_a(uint16_t *ap, const float *a, size_t lda, size_t M, size_t K);
void apd__bf16_pack_b(uint16_t *bp, const float *b, size_t ldb, size_t K, size_t N);
void apd__bf16_gemm(float *c, size_t ldc, const uint16_t *ap, const uint16_t *bp, size_t M, size_t N,
                    size_t K);
int apd__bf16_cpu(void);
/* im2col of one image straight into packed bf16 columns [col0, col0 + Ho*Wo) of a B panel
 * with N columns in all (the layout of apd__bf16_pack_b for the [Ci*k*k][N] column matrix;
 * images side by side as in apd__im2col); tmp: 2 * Ho * Wo floats. The image whose columns
 * end at N also zeroes the padding columns. Same bits as apd__im2col + apd__bf16_pack_b. */
void apd__bf16_im2col_pack(uint16_t *bp, size_t N, size_t col0, const float *in, size_t Ci, size_t H,
                           size_t W, size_t k, size_t pad, size_t Ho, size_t Wo, float *tmp);
uint16_t apd__bf16_round(float f);
float apd__bf16_to_float(uint16_t h);

/* float32 GEMM (gemm_f32.c): C[M][N] (row stride ldc) = A B, A element (m, k) at
 * a[m * ars + k * acs] (W: ars = K, acs = 1; W^T: ars = 1, acs = K), B row-major with row
 * stride ldb. Only where apd__gemm_f32_ok(): CPU with AVX-512F and APD_NN_GEMM not set to
 * "openblas" (then callers use cblas_sgemm). */
int apd__gemm_f32_ok(void);
void apd__gemm_f32(float *c, size_t ldc, const float *a, size_t ars, size_t acs, const float *b, size_t ldb,
                   size_t M, size_t N, size_t K);
/* The same with C += A B (C's previous contents are added to). */
void apd__gemm_f32_add(float *c, size_t ldc, const float *a, size_t ars, size_t acs, const float *b, size_t ldb,
                       size_t M, size_t N, size_t K);

/* 1 when the CPU has AVX-512F (checked once, blas.c), else 0; always 0 off x86-64 GCC/Clang.
 * The run-time choice of every hand-written kernel: the AVX-512 kernels are compiled for it
 * whatever the build's -march, and each path gives the same results on every build. */
int apd__cpu_avx512f(void);

/* Once per process: let OpenBLAS use AVX-512 kernels on CPUs it does not know (blas.c). */
void apd__blas_init(void);

/* Bench hook: forward conv time per layer measured on pool thread 0 (seconds, layers
 * 0..depth-1), the images thread 0 processed, and the conv FLOPs per image per layer;
 * reset clears the counters. */
struct apd_convnet;
void apd__convnet_prof(struct apd_convnet *net, double *conv_seconds, size_t *imgs,
                       size_t *flops_per_img, int reset);

#endif
