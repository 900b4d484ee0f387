/* nn/ops.c: the NN engine's op kernels as forward/backward pairs (see apd/nn.h for the
 * contracts and shape conventions). Single-threaded and allocation-free: the ConvNet runs
 * them on batch slices from its thread pool. Convolutions are im2col + cblas_sgemm, one
 * image at a time (the ConvNet's fused path groups small images into wider GEMMs).
 * Reference twins live in ops_ref.c.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "apd/nn.h"
#include "nn/nn_internal.h"

/* ---- im2col / col2im ------------------------------------------------------------------ */

static void im2col_scalar(float *col, size_t ld, const float *in, size_t Ci, size_t H, size_t W, size_t k,
                 size_t pad, size_t Ho, size_t Wo)
{
    for (size_t ci = 0; ci < Ci; ci++) {
        const float *plane = in + ci * H * W;
        for (size_t ky = 0; ky < k; ky++) {
            for (size_t kx = 0; kx < k; kx++) {
                float *row = col + ((ci * k + ky) * k + kx) * ld;
                size_t lo, hi; /* valid ox: 0 <= ox + kx - pad < W */
                apd__im2col_span(W, pad, kx, Wo, &lo, &hi);
                for (size_t oy = 0; oy < Ho; oy++) {
                    float *dst = row + oy * Wo;
                    ptrdiff_t iy = (ptrdiff_t)oy + (ptrdiff_t)ky - (ptrdiff_t)pad;
                    if (iy < 0 || iy >= (ptrdiff_t)H) {
                        memset(dst, 0, Wo * sizeof *dst);
                        continue;
                    }
                    const float *src = plane + (size_t)iy * W + (lo + kx - pad);
                    for (size_t ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                    memcpy(dst + lo, src, (hi - lo) * sizeof *dst);
                    for (size_t ox = hi; ox < Wo; ox++) dst[ox] = 0.0f;
                }
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f")
#include <immintrin.h>
/* im2col_scalar with masked 16-lane loads: a row piece's lanes inside the image depend on kx
 * only, so each piece is one masked load and one store per output row, instead of a memcpy
 * call and zero loops per row (the per-row calls were ~10% of a float32 DM iteration at 32 px,
 * where rows are 8-16 floats). The same floats are copied. */
static void im2col_avx512(float *col, size_t ld, const float *in, size_t Ci, size_t H, size_t W, size_t k,
                          size_t pad, size_t Ho, size_t Wo)
{
    for (size_t ci = 0; ci < Ci; ci++) {
        const float *plane = in + ci * H * W;
        for (size_t ky = 0; ky < k; ky++)
            for (size_t kx = 0; kx < k; kx++) {
                float *row = col + ((ci * k + ky) * k + kx) * ld;
                size_t lo, hi;
                apd__im2col_span(W, pad, kx, Wo, &lo, &hi);
                ptrdiff_t dx = (ptrdiff_t)kx - (ptrdiff_t)pad, dy = (ptrdiff_t)ky - (ptrdiff_t)pad;
                for (size_t ox = 0; ox < Wo; ox += 16) {
                    size_t m = Wo - ox < 16 ? Wo - ox : 16;
                    size_t a = lo > ox ? lo : ox, b = hi < ox + m ? hi : ox + m;
                    __mmask16 km = a < b ? (__mmask16)(((1u << (b - ox)) - 1u) & ~((1u << (a - ox)) - 1u)) : 0;
                    __mmask16 ks = (__mmask16)((1u << m) - 1u);
                    for (size_t oy = 0; oy < Ho; oy++) {
                        ptrdiff_t iy = (ptrdiff_t)oy + dy;
                        /* lane j reads input column ox + j + dx; masked-off lanes are not read */
                        __m512 v = km && iy >= 0 && iy < (ptrdiff_t)H
                                       ? _mm512_maskz_loadu_ps(km, plane + (size_t)iy * W + (ptrdiff_t)ox + dx)
                                       : _mm512_setzero_ps();
                        if (m == 16)
                            _mm512_storeu_ps(row + oy * Wo + ox, v);
                        else
                            _mm512_mask_storeu_ps(row + oy * Wo + ox, ks, v);
                    }
                }
            }
    }
}
#pragma GCC pop_options
#endif

void apd__im2col(float *col, size_t ld, const float *in, size_t Ci, size_t H, size_t W, size_t k, size_t pad,
                 size_t Ho, size_t Wo)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (apd__cpu_avx512f()) {
        im2col_avx512(col, ld, in, Ci, H, W, k, pad, Ho, Wo);
        return;
    }
#endif
    im2col_scalar(col, ld, in, Ci, H, W, k, pad, Ho, Wo);
}

/* dst[i] += src[i]; explicit AVX-512 because gcc -O2 does not vectorise this (it cannot
 * rule out aliasing cheaply), and col2im is ~10% of a backward pass otherwise. Compiled for
 * AVX-512 whatever the build's -march and chosen at run time (one cached CPU check); both
 * paths do the same single add per element, so the results are identical. */
static void add_row_scalar(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}
#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f")
#include <immintrin.h>
static void add_row_avx512(float *restrict dst, const float *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_add_ps(_mm512_loadu_ps(dst + i), _mm512_loadu_ps(src + i)));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(dst + i, k,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(k, dst + i), _mm512_maskz_loadu_ps(k, src + i)));
    }
}
#pragma GCC pop_options
#else
#define add_row_avx512 add_row_scalar
#endif

void apd__col2im_add(float *din, const float *col, size_t ld, size_t Ci, size_t H, size_t W,
                     size_t k, size_t pad, size_t Ho, size_t Wo)
{
    void (*add_row)(float *restrict, const float *restrict, size_t) =
        apd__cpu_avx512f() ? add_row_avx512 : add_row_scalar;
    for (size_t ci = 0; ci < Ci; ci++) {
        float *plane = din + ci * H * W;
        for (size_t ky = 0; ky < k; ky++) {
            for (size_t kx = 0; kx < k; kx++) {
                const float *row = col + ((ci * k + ky) * k + kx) * ld;
                size_t lo, hi;
                apd__im2col_span(W, pad, kx, Wo, &lo, &hi);
                for (size_t oy = 0; oy < Ho; oy++) {
                    ptrdiff_t iy = (ptrdiff_t)oy + (ptrdiff_t)ky - (ptrdiff_t)pad;
                    if (iy < 0 || iy >= (ptrdiff_t)H) continue;
                    add_row(plane + (size_t)iy * W + (lo + kx - pad), row + oy * Wo + lo, hi - lo);
                }
            }
        }
    }
}

/* ---- conv2d ----------------------------------------------------------------------------- */

size_t apd_conv2d_scratch_floats(size_t Ci, size_t H, size_t W, size_t k, size_t pad)
{
    size_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1;
    return Ci * k * k * Ho * Wo;
}

static int conv_is_pointwise(size_t k, size_t pad) { return k == 1 && pad == 0; }

void apd_conv2d_forward(float *out, float *scratch, const float *in, const float *w,
                        const float *b, size_t N, size_t Ci, size_t H, size_t W, size_t Co,
                        size_t k, size_t pad)
{
    size_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1, P = Ho * Wo, K = Ci * k * k;
    for (size_t n = 0; n < N; n++) {
        const float *x = in + n * Ci * H * W;
        float *y = out + n * Co * P;
        const float *col = x;
        if (!conv_is_pointwise(k, pad)) {
            apd__im2col(scratch, P, x, Ci, H, W, k, pad, Ho, Wo);
            col = scratch;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Co, (int)P, (int)K, 1.0f, w,
                    (int)K, col, (int)P, 0.0f, y, (int)P);
        if (b)
            for (size_t co = 0; co < Co; co++) {
                float bb = b[co], *yc = y + co * P;
                for (size_t p = 0; p < P; p++) yc[p] += bb;
            }
    }
}

void apd_conv2d_backward(float *din, float *dw, float *db, float *scratch, const float *dout,
                         const float *in, const float *w, size_t N, size_t Ci, size_t H, size_t W,
                         size_t Co, size_t k, size_t pad)
{
    size_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1, P = Ho * Wo, K = Ci * k * k;
    int pw = conv_is_pointwise(k, pad);
    for (size_t n = 0; n < N; n++) {
        const float *dy = dout + n * Co * P;
        if (db)
            for (size_t co = 0; co < Co; co++) {
                const float *d = dy + co * P;
                float s = 0.0f;
                for (size_t p = 0; p < P; p++) s += d[p];
                db[co] += s;
            }
        if (dw) {
            const float *col = in + n * Ci * H * W;
            if (!pw) {
                apd__im2col(scratch, P, col, Ci, H, W, k, pad, Ho, Wo);
                col = scratch;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Co, (int)K, (int)P, 1.0f, dy,
                        (int)P, col, (int)P, 1.0f, dw, (int)K);
        }
        if (din) {
            float *dx = din + n * Ci * H * W;
            if (pw) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)P, (int)Co, 1.0f,
                            w, (int)K, dy, (int)P, 1.0f, dx, (int)P);
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)P, (int)Co, 1.0f,
                            w, (int)K, dy, (int)P, 0.0f, scratch, (int)P);
                apd__col2im_add(dx, scratch, P, Ci, H, W, k, pad, Ho, Wo);
            }
        }
    }
}

/* ---- 1x1 conv ------------------------------------------------------------------------- */

void apd_conv1x1_forward(float *out, const float *in, const float *w, const float *b, size_t N,
                         size_t Ci, size_t HW, size_t Co)
{
    apd_conv2d_forward(out, NULL, in, w, b, N, Ci, 1, HW, Co, 1, 0);
}

void apd_conv1x1_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, size_t N, size_t Ci, size_t HW, size_t Co)
{
    apd_conv2d_backward(din, dw, db, NULL, dout, in, w, N, Ci, 1, HW, Co, 1, 0);
}

/* ---- instance norm ---------------------------------------------------------------------- */

void apd_instnorm_forward(float *out, float *mean, float *rstd, const float *in,
                          const float *gamma, const float *beta, size_t N, size_t C, size_t HW)
{
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++) {
            size_t nc = n * C + c;
            const float *x = in + nc * HW;
            float *y = out + nc * HW;
            double s = 0.0;
            for (size_t i = 0; i < HW; i++) s += x[i];
            float m = (float)(s / (double)HW);
            double v = 0.0;
            for (size_t i = 0; i < HW; i++) {
                float d = x[i] - m;
                v += (double)d * d;
            }
            float r = (float)(1.0 / sqrt(v / (double)HW + (double)APD_NN_NORM_EPS));
            mean[nc] = m;
            rstd[nc] = r;
            float g = gamma ? gamma[c] : 1.0f, bb = beta ? beta[c] : 0.0f;
            float a = g * r;
            for (size_t i = 0; i < HW; i++) y[i] = (x[i] - m) * a + bb;
        }
}

void apd_instnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                           const float *in, const float *mean, const float *rstd,
                           const float *gamma, size_t N, size_t C, size_t HW)
{
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++) {
            size_t nc = n * C + c;
            const float *x = in + nc * HW, *dy = dout + nc * HW;
            float m = mean[nc], r = rstd[nc], g = gamma ? gamma[c] : 1.0f;
            double sdy = 0.0, sdyx = 0.0;
            for (size_t i = 0; i < HW; i++) {
                float xh = (x[i] - m) * r;
                sdy += dy[i];
                sdyx += (double)dy[i] * xh;
            }
            if (dgamma) dgamma[c] += (float)sdyx;
            if (dbeta) dbeta[c] += (float)sdy;
            if (din) {
                /* dxhat = g dy; din = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) */
                float *dx = din + nc * HW;
                float a = (float)(g * sdy / (double)HW), bq = (float)(g * sdyx / (double)HW);
                float gr = g * r;
                for (size_t i = 0; i < HW; i++) {
                    float xh = (x[i] - m) * r;
                    dx[i] += gr * dy[i] - r * (a + xh * bq);
                }
            }
        }
}

/* ---- ReLU, pooling ------------------------------------------------------------------- */

void apd_relu_forward(float *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void apd_relu_backward(float *din, const float *dout, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) din[i] += in[i] > 0.0f ? dout[i] : 0.0f;
}

void apd_avgpool2_forward(float *out, const float *in, size_t NC, size_t H, size_t W)
{
    size_t Ho = H / 2, Wo = W / 2;
    for (size_t p = 0; p < NC; p++) {
        const float *x = in + p * H * W;
        float *y = out + p * Ho * Wo;
        for (size_t oy = 0; oy < Ho; oy++) {
            const float *r0 = x + 2 * oy * W, *r1 = r0 + W;
            for (size_t ox = 0; ox < Wo; ox++)
                y[oy * Wo + ox] = 0.25f * ((r0[2 * ox] + r0[2 * ox + 1]) + (r1[2 * ox] + r1[2 * ox + 1]));
        }
    }
}

void apd_avgpool2_backward(float *din, const float *dout, size_t NC, size_t H, size_t W)
{
    size_t Ho = H / 2, Wo = W / 2;
    for (size_t p = 0; p < NC; p++) {
        float *dx = din + p * H * W;
        const float *dy = dout + p * Ho * Wo;
        for (size_t oy = 0; oy < Ho; oy++) {
            float *r0 = dx + 2 * oy * W, *r1 = r0 + W;
            for (size_t ox = 0; ox < Wo; ox++) {
                float g = 0.25f * dy[oy * Wo + ox];
                r0[2 * ox] += g;
                r0[2 * ox + 1] += g;
                r1[2 * ox] += g;
                r1[2 * ox + 1] += g;
            }
        }
    }
}

/* ---- linear ----------------------------------------------------------------------------- */

void apd_linear_forward(float *out, const float *in, const float *w, const float *b, size_t N,
                        size_t Fin, size_t Fout)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)Fout, (int)Fin, 1.0f, in, (int)Fin,
                w, (int)Fin, 0.0f, out, (int)Fout);
    if (b)
        for (size_t n = 0; n < N; n++)
            for (size_t o = 0; o < Fout; o++) out[n * Fout + o] += b[o];
}

void apd_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, size_t N, size_t Fin, size_t Fout)
{
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)Fin, (int)Fout, 1.0f, dout,
                    (int)Fout, w, (int)Fin, 1.0f, din, (int)Fin);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Fout, (int)Fin, (int)N, 1.0f, dout,
                    (int)Fout, in, (int)Fin, 1.0f, dw, (int)Fin);
    if (db)
        for (size_t n = 0; n < N; n++)
            for (size_t o = 0; o < Fout; o++) db[o] += dout[n * Fout + o];
}

/* ---- softmax, cross-entropy ------------------------------------------------------------ */

void apd_softmax_forward(float *out, const float *in, size_t N, size_t C, size_t HW)
{
    for (size_t n = 0; n < N; n++) {
        const float *x = in + n * C * HW;
        float *y = out + n * C * HW;
        for (size_t p = 0; p < HW; p++) {
            float mx = x[p];
            for (size_t c = 1; c < C; c++) mx = fmaxf(mx, x[c * HW + p]);
            float s = 0.0f;
            for (size_t c = 0; c < C; c++) {
                float e = expf(x[c * HW + p] - mx);
                y[c * HW + p] = e;
                s += e;
            }
            float inv = 1.0f / s;
            for (size_t c = 0; c < C; c++) y[c * HW + p] *= inv;
        }
    }
}

void apd_softmax_backward(float *din, const float *dout, const float *out, size_t N, size_t C,
                          size_t HW)
{
    for (size_t n = 0; n < N; n++) {
        const float *y = out + n * C * HW, *dy = dout + n * C * HW;
        float *dx = din + n * C * HW;
        for (size_t p = 0; p < HW; p++) {
            float s = 0.0f;
            for (size_t c = 0; c < C; c++) s += dy[c * HW + p] * y[c * HW + p];
            for (size_t c = 0; c < C; c++) dx[c * HW + p] += y[c * HW + p] * (dy[c * HW + p] - s);
        }
    }
}

void apd_xent_forward(float *loss, float *probs, const float *logits, const uint32_t *labels,
                      size_t N, size_t K)
{
    double total = 0.0;
    for (size_t n = 0; n < N; n++) {
        const float *z = logits + n * K;
        float *p = probs + n * K;
        float mx = z[0];
        for (size_t k = 1; k < K; k++) mx = fmaxf(mx, z[k]);
        double s = 0.0;
        for (size_t k = 0; k < K; k++) {
            float e = expf(z[k] - mx);
            p[k] = e;
            s += e;
        }
        float inv = (float)(1.0 / s);
        for (size_t k = 0; k < K; k++) p[k] *= inv;
        total += log(s) + (double)mx - (double)z[labels[n]];
    }
    *loss = (float)(total / (double)N);
}

void apd_xent_backward(float *dlogits, const float *probs, const uint32_t *labels, float dloss,
                       size_t N, size_t K)
{
    float s = dloss / (float)N;
    for (size_t n = 0; n < N; n++) {
        for (size_t k = 0; k < K; k++) dlogits[n * K + k] += s * probs[n * K + k];
        dlogits[n * K + labels[n]] -= s;
    }
}

void apd_xent_soft_forward(float *loss, float *probs, const float *logits, const float *targets,
                           size_t N, size_t K)
{
    double total = 0.0;
    for (size_t n = 0; n < N; n++) {
        const float *z = logits + n * K, *t = targets + n * K;
        float *p = probs + n * K;
        float mx = z[0];
        for (size_t k = 1; k < K; k++) mx = fmaxf(mx, z[k]);
        double s = 0.0;
        for (size_t k = 0; k < K; k++) {
            float e = expf(z[k] - mx);
            p[k] = e;
            s += e;
        }
        float inv = (float)(1.0 / s);
        for (size_t k = 0; k < K; k++) p[k] *= inv;
        /* -sum_k t_k log p_k = sum_k t_k (log s + mx - z_k) */
        const double lse = log(s) + (double)mx;
        for (size_t k = 0; k < K; k++)
            if (t[k] != 0.0f) total += (double)t[k] * (lse - (double)z[k]);
    }
    *loss = (float)(total / (double)N);
}

void apd_xent_soft_backward(float *dlogits, const float *probs, const float *targets, float dloss,
                            size_t N, size_t K)
{
    float s = dloss / (float)N;
    for (size_t n = 0; n < N; n++) {
        const float *t = targets + n * K, *p = probs + n * K;
        float ts = 0.0f;
        for (size_t k = 0; k < K; k++) ts += t[k];
        for (size_t k = 0; k < K; k++) dlogits[n * K + k] += s * (ts * p[k] - t[k]);
    }
}

size_t apd_count_correct(const float *logits, const uint32_t *labels, size_t N, size_t K)
{
    size_t ok = 0;
    for (size_t n = 0; n < N; n++) {
        const float *z = logits + n * K;
        size_t best = 0;
        for (size_t k = 1; k < K; k++)
            if (z[k] > z[best]) best = k;
        ok += best == labels[n];
    }
    return ok;
}

/* ---- reductions ------------------------------------------------------------------------ */

void apd_mean_rows_forward(float *out, const float *in, size_t N, size_t D)
{
    for (size_t d = 0; d < D; d++) out[d] = 0.0f;
    for (size_t n = 0; n < N; n++)
        for (size_t d = 0; d < D; d++) out[d] += in[n * D + d];
    float inv = 1.0f / (float)N;
    for (size_t d = 0; d < D; d++) out[d] *= inv;
}

void apd_mean_rows_backward(float *din, const float *dout, size_t N, size_t D)
{
    float inv = 1.0f / (float)N;
    for (size_t n = 0; n < N; n++)
        for (size_t d = 0; d < D; d++) din[n * D + d] += dout[d] * inv;
}

void apd_sqdist_forward(float *loss, const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    *loss = (float)s;
}

void apd_sqdist_backward(float *da, float *db, const float *a, const float *b, float dloss,
                         size_t n)
{
    float s = 2.0f * dloss;
    for (size_t i = 0; i < n; i++) {
        float g = s * (a[i] - b[i]);
        if (da) da[i] += g;
        if (db) db[i] -= g;
    }
}
