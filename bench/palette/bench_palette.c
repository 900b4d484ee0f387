/* bench_palette.c: palette-network forward + backward at the DM + AutoPalette size
 * (400 images = 40 per class x 10 classes, 32x32x3, K = 64, hidden 256), plus the colour-loss
 * step on 64 images. Baseline in the same run: a naive per-pixel scalar forward (the
 * "no GEMM" implementation) on a slice of the images, scaled to 400; ratio printed.
 * The library runs with an apd_pool of T threads (as apd-convert does); timings for T = 1
 * and T = 2 are printed. Usage: bench_palette [n_images] [reps]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/palette.h"
#include "common/internal.h"
#include "common/rng.h"

/* Naive scalar forward of m and the soft output for one image (baseline only). */
static void naive_forward(float *y, float *m, const apd_palette_net *n, const float *x, uint32_t p)
{
    uint32_t c = n->c, k = n->k, hd = n->hidden;
    float h[256], z[256], pal[3 * 256], den[256];
    for (uint32_t q = 0; q < p; q++) {
        for (uint32_t j = 0; j < hd; j++) {
            float a = n->b1[j];
            for (uint32_t ch = 0; ch < c; ch++) a += n->w1[j * c + ch] * x[ch * p + q];
            h[j] = a > 0 ? a : 0;
        }
        float mx = -INFINITY, s = 0;
        for (uint32_t kk = 0; kk < k; kk++) {
            float a = 0;
            for (uint32_t j = 0; j < hd; j++) a += n->w2[kk * hd + j] * h[j];
            z[kk] = a;
            mx = a > mx ? a : mx;
        }
        for (uint32_t kk = 0; kk < k; kk++) s += (z[kk] = expf(z[kk] - mx));
        for (uint32_t kk = 0; kk < k; kk++) m[kk * p + q] = z[kk] / s;
    }
    for (uint32_t kk = 0; kk < k; kk++) {
        den[kk] = 1e-8f;
        for (uint32_t q = 0; q < p; q++) den[kk] += m[kk * p + q];
        for (uint32_t ch = 0; ch < c; ch++) {
            float a = 0;
            for (uint32_t q = 0; q < p; q++) a += x[ch * p + q] * m[kk * p + q];
            pal[ch * k + kk] = a / den[kk];
        }
    }
    for (uint32_t ch = 0; ch < c; ch++)
        for (uint32_t q = 0; q < p; q++) {
            float a = 0;
            for (uint32_t kk = 0; kk < k; kk++) a += pal[ch * k + kk] * m[kk * p + q];
            y[ch * p + q] = a;
        }
}

typedef struct {
    double fwd, bwd, col;
} timing;

static timing run(uint32_t nt, uint32_t b, uint32_t reps, const float *x, const float *dy, float *y, float *dx)
{
    const uint32_t c = 3, h = 32, w = 32, k = 64, p = h * w;
    timing t = {1e30, 1e30, 1e30};
    apd_pool *pool = NULL;
    apd_palette_net net;
    apd_palette_ws *ws = NULL, *wsc = NULL;
    if (apd_pool_create(&pool, nt) != APD_OK || apd_palette_net_init(&net, c, k, 256, 1) != APD_OK ||
        apd_palette_ws_create(&ws, c, k, 256, b, p) != APD_OK ||
        apd_palette_ws_create(&wsc, c, k, 256, 64, p) != APD_OK || apd_palette_ws_set_pool(ws, pool) != APD_OK ||
        apd_palette_ws_set_pool(wsc, pool) != APD_OK) {
        fprintf(stderr, "bench_palette: out of memory\n");
        exit(1);
    }
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2023f, 0.1994f, 0.2010f};
    apd_palette_color_opts cc;
    apd_palette_color_opts_default(&cc, c, mean, std);
    for (uint32_t it = 0; it < reps; it++) {
        apd_palette_net_zero_grad(&net);
        double t0 = apd__now();
        apd_status s1 = apd_palette_forward(&net, ws, y, x, b, h, w, NULL);
        double t1 = apd__now();
        apd_status s2 = apd_palette_backward(&net, ws, dx, dy, NULL, x, b, h, w, 1.0f);
        double t2 = apd__now();
        apd_palette_losses L;
        apd_status s3 = apd_palette_color_step(&net, wsc, &L, x, 64, h, w, &cc, 1, it);
        double t3 = apd__now();
        if (s1 != APD_OK || s2 != APD_OK || s3 != APD_OK) {
            fprintf(stderr, "bench_palette: %s\n", apd_strerror(s1 != APD_OK ? s1 : s2 != APD_OK ? s2 : s3));
            exit(1);
        }
        if (t1 - t0 < t.fwd) t.fwd = t1 - t0;
        if (t2 - t1 < t.bwd) t.bwd = t2 - t1;
        if (t3 - t2 < t.col) t.col = t3 - t2;
    }
    apd_palette_ws_free(ws);
    apd_palette_ws_free(wsc);
    apd_palette_net_free(&net);
    apd_pool_free(pool);
    return t;
}

int main(int argc, char **argv)
{
    uint32_t b = argc > 1 ? (uint32_t)atoi(argv[1]) : 400, reps = argc > 2 ? (uint32_t)atoi(argv[2]) : 3;
    const uint32_t c = 3, h = 32, w = 32, k = 64, p = h * w;
    if (b < 1) b = 1;
    if (reps < 1) reps = 1;
    size_t n = (size_t)b * c * p;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
    float *dx = calloc(n, sizeof(float)), *m = malloc((size_t)k * p * sizeof(float));
    if (!x || !y || !dy || !dx || !m) return 1;
    apd__rng r;
    apd__rng_seed(&r, 1, 0);
    for (size_t i = 0; i < n; i++) {
        x[i] = apd__rng_normal(&r);
        dy[i] = 1e-3f * apd__rng_normal(&r);
    }
    timing t1 = run(1, b, reps, x, dy, y, dx), t2 = run(2, b, reps, x, dy, y, dx);
    /* naive baseline on 8 images, scaled (single thread) */
    apd_palette_net net;
    if (apd_palette_net_init(&net, c, k, 256, 1) != APD_OK) return 1;
    uint32_t nb = b < 8 ? b : 8;
    double t0 = apd__now();
    for (uint32_t i = 0; i < nb; i++) naive_forward(y + (size_t)i * c * p, m, &net, x + (size_t)i * c * p, p);
    double tn = (apd__now() - t0) * b / nb;
    apd_palette_net_free(&net);
    double macs = (double)b * p * (c * 256.0 + 256.0 * k);
    printf("palette network, %u images 32x32x3, K=%u, hidden 256 (best of %u; OpenBLAS core %s)\n", b, k, reps,
           apd_nn_blas_core());
    printf("                       1 thread   2 threads\n");
    printf("  forward            %8.3f s  %8.3f s   (%.1f / %.1f GFLOP/s on the MLP)\n", t1.fwd, t2.fwd,
           2 * macs / t1.fwd / 1e9, 2 * macs / t2.fwd / 1e9);
    printf("  backward           %8.3f s  %8.3f s\n", t1.bwd, t2.bwd);
    printf("  forward+backward   %8.3f s  %8.3f s\n", t1.fwd + t1.bwd, t2.fwd + t2.bwd);
    printf("  colour step (64)   %8.3f s  %8.3f s   (forward, median cut, Lm+Lb+La, backward)\n", t1.col, t2.col);
    printf("  naive scalar fwd   %8.3f s              (baseline, scaled from %u images)\n", tn, nb);
    printf("  ratio naive / GEMM forward (1 thread): %.1fx; 2 threads / 1 thread fwd+bwd: %.2fx\n", tn / t1.fwd,
           (t1.fwd + t1.bwd) / (t2.fwd + t2.bwd));
    free(x); free(y); free(dy); free(dx); free(m);
    return 0;
}
