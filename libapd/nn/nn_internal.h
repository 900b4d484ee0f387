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

/* Once per process: let OpenBLAS use AVX-512 kernels on CPUs it does not know (blas.c). */
void apd__blas_init(void);

#endif
