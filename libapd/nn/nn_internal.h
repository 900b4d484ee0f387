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

/* Bench hook: forward conv time per layer measured on pool thread 0 (seconds, layers
 * 0..depth-1), the images thread 0 processed, and the conv FLOPs per image per layer;
 * reset clears the counters. */
struct apd_convnet;
void apd__convnet_prof(struct apd_convnet *net, double *conv_seconds, size_t *imgs,
                       size_t *flops_per_img, int reset);

#endif
