/* nn/ops_ref.c: naive reference kernels (direct loops, double accumulation) for the
 * optimised convolution kernels, used by the tests and by apd_convnet_forward_ref. Slow by
 * design: clarity over speed. Same contracts as the optimised twins in apd/nn.h. */
#include <stddef.h>

#include "apd/nn.h"

void apd_conv2d_forward_ref(float *out, const float *in, const float *w, const float *b, size_t N,
                            size_t Ci, size_t H, size_t W, size_t Co, size_t k, size_t pad)
{
    size_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1;
    for (size_t n = 0; n < N; n++)
        for (size_t co = 0; co < Co; co++)
            for (size_t oy = 0; oy < Ho; oy++)
                for (size_t ox = 0; ox < Wo; ox++) {
                    double s = b ? b[co] : 0.0;
                    for (size_t ci = 0; ci < Ci; ci++)
                        for (size_t ky = 0; ky < k; ky++)
                            for (size_t kx = 0; kx < k; kx++) {
                                ptrdiff_t iy = (ptrdiff_t)(oy + ky) - (ptrdiff_t)pad;
                                ptrdiff_t ix = (ptrdiff_t)(ox + kx) - (ptrdiff_t)pad;
                                if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)H || ix >= (ptrdiff_t)W)
                                    continue;
                                s += (double)in[((n * Ci + ci) * H + (size_t)iy) * W + (size_t)ix] *
                                     w[((co * Ci + ci) * k + ky) * k + kx];
                            }
                    out[((n * Co + co) * Ho + oy) * Wo + ox] = (float)s;
                }
}

void apd_conv2d_backward_ref(float *din, float *dw, float *db, const float *dout, const float *in,
                             const float *w, size_t N, size_t Ci, size_t H, size_t W, size_t Co,
                             size_t k, size_t pad)
{
    size_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1;
    if (db)
        for (size_t co = 0; co < Co; co++) {
            double s = 0.0;
            for (size_t n = 0; n < N; n++)
                for (size_t p = 0; p < Ho * Wo; p++) s += dout[(n * Co + co) * Ho * Wo + p];
            db[co] += (float)s;
        }
    if (dw)
        for (size_t co = 0; co < Co; co++)
            for (size_t ci = 0; ci < Ci; ci++)
                for (size_t ky = 0; ky < k; ky++)
                    for (size_t kx = 0; kx < k; kx++) {
                        double s = 0.0;
                        for (size_t n = 0; n < N; n++)
                            for (size_t oy = 0; oy < Ho; oy++)
                                for (size_t ox = 0; ox < Wo; ox++) {
                                    ptrdiff_t iy = (ptrdiff_t)(oy + ky) - (ptrdiff_t)pad;
                                    ptrdiff_t ix = (ptrdiff_t)(ox + kx) - (ptrdiff_t)pad;
                                    if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)H || ix >= (ptrdiff_t)W)
                                        continue;
                                    s += (double)dout[((n * Co + co) * Ho + oy) * Wo + ox] *
                                         in[((n * Ci + ci) * H + (size_t)iy) * W + (size_t)ix];
                                }
                        dw[((co * Ci + ci) * k + ky) * k + kx] += (float)s;
                    }
    if (din)
        for (size_t n = 0; n < N; n++)
            for (size_t ci = 0; ci < Ci; ci++)
                for (size_t iy = 0; iy < H; iy++)
                    for (size_t ix = 0; ix < W; ix++) {
                        double s = 0.0;
                        for (size_t co = 0; co < Co; co++)
                            for (size_t ky = 0; ky < k; ky++)
                                for (size_t kx = 0; kx < k; kx++) {
                                    ptrdiff_t oy = (ptrdiff_t)(iy + pad) - (ptrdiff_t)ky;
                                    ptrdiff_t ox = (ptrdiff_t)(ix + pad) - (ptrdiff_t)kx;
                                    if (oy < 0 || ox < 0 || oy >= (ptrdiff_t)Ho || ox >= (ptrdiff_t)Wo)
                                        continue;
                                    s += (double)dout[((n * Co + co) * Ho + (size_t)oy) * Wo + (size_t)ox] *
                                         w[((co * Ci + ci) * k + ky) * k + kx];
                                }
                        din[((n * Ci + ci) * H + iy) * W + ix] += (float)s;
                    }
}
