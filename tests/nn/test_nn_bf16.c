/* test_nn_bf16.c: the bfloat16 GEMM path of no-gradient forwards (nn/gemm_bf16.c) against
 * float32, and its dispatch; the float32 AVX-512 conv GEMM (nn/gemm_f32.c) against sgemm.
 * Prints max errors.
 *
 * Error metrics: tu_err (max relative error with an absolute floor of 1% of the reference's
 * scale, see nn_testutil.h) where the arithmetic is the same up to float32 round-off, and the
 * scale-relative error max|got - ref| / max|ref| for bf16 against float32: rounding the inputs
 * perturbs every product by up to 2^-8 relative, so a sum that cancels to near zero carries an
 * absolute error of the size of its terms, not of its result, and only a scale-relative
 * measure is meaningful. Bounds:
 *   - the kernel against a double-precision product of the same bf16-rounded inputs:
 *     tu_err 1e-5 (only float32 accumulation differs);
 *   - the kernel against float32 sgemm of the unrounded inputs: scale-relative 1e-2 (each
 *     product errs by ~2^-9 relative with random sign; over K terms that is ~2^-9 sqrt(K)
 *     E|ab| per output against a largest output of several sqrt(K) E|ab|: ~1e-3 measured);
 *   - a ConvNetD3 embedding, bf16 forward against float32 forward: scale-relative 2e-2
 *     (two bf16 convs; instance norm rescales each plane).
 *   - the float32 kernel against cblas_sgemm: tu_err 2e-4 (both float32 with sums in another
 *     order: twice the 1e-4 forward target the golden tests set for one of them).
 * On a CPU without AVX512_BF16 the scalar twin runs the same arithmetic, and the ConvNet
 * forward must stay bit-identical to float32 (the flag is ignored).
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "nn/nn_internal.h"
#include "nn_testutil.h"

static double scale_err(const float *got, const float *ref, size_t n)
{
    double s = tu_max_absval(ref, n);
    return tu_max_abs(got, ref, n) / (s > 0.0 ? s : 1.0);
}

static void gemm_case(size_t M, size_t N, size_t K, uint64_t seed, double *e_exact, double *e_fp32)
{
    apd__rng r;
    apd__rng_seed(&r, seed, 0);
    float *a = tu_rand(M * K, &r, -1.0f, 1.0f), *b = tu_rand(K * N, &r, -1.0f, 1.0f);
    float *c = tu_zeros(M * N), *ref = tu_zeros(M * N), *f32 = tu_zeros(M * N);
    uint16_t *ap = malloc(apd__bf16_a_elems(M, K) * 2), *bp = malloc(apd__bf16_b_elems(K, N) * 2);
    ck_assert(ap && bp);
    apd__bf16_pack_a(ap, a, K, M, K);
    apd__bf16_pack_b(bp, b, N, K, N);
    for (size_t i = 0; i < M * N; i++) c[i] = 12345.0f; /* every output must be written */
    apd__bf16_gemm(c, N, ap, bp, M, N, K);
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            double s = 0.0;
            for (size_t k = 0; k < K; k++)
                s += (double)apd__bf16_to_float(apd__bf16_round(a[m * K + k])) *
                     (double)apd__bf16_to_float(apd__bf16_round(b[k * N + n]));
            ref[m * N + n] = (float)s;
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)K, b, (int)N,
                0.0f, f32, (int)N);
    *e_exact = tu_err(c, ref, M * N);
    *e_fp32 = scale_err(c, f32, M * N);
    printf("bf16 gemm %4zux%4zux%4zu (%s): max err vs exact bf16 product %.2e; vs fp32 sgemm: "
           "scale-relative %.2e (max abs %.2e, floored relative %.2e)\n",
           M, N, K, apd__bf16_cpu() ? "AVX512_BF16 kernel" : "scalar twin", *e_exact, *e_fp32,
           tu_max_abs(c, f32, M * N), tu_err(c, f32, M * N));
    free(a), free(b), free(c), free(ref), free(f32), free(ap), free(bp);
}

START_TEST(gemm_vs_fp32)
{
    /* odd sizes hit every tail: rows (M % 8), columns (N % 16, N % 48), odd K, K > one block */
    static const size_t shapes[][3] = {{128, 256, 1152}, {13, 37, 29}, {8, 48, 2}, {1, 1, 1}, {129, 300, 301}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double ex, f32;
        gemm_case(shapes[i][0], shapes[i][1], shapes[i][2], 7 + i, &ex, &f32);
        ck_assert_msg(ex <= 1e-5, "bf16 gemm vs exact bf16 product: %.3e > 1e-5", ex);
        ck_assert_msg(f32 <= 1e-2, "bf16 gemm vs fp32: scale-relative %.3e > 1e-2", f32);
    }
}
END_TEST

START_TEST(rounding)
{
    /* round to nearest even at the 16-bit boundary; NaN stays NaN, infinities stay */
    ck_assert_uint_eq(apd__bf16_round(1.0f), 0x3F80);
    ck_assert_uint_eq(apd__bf16_round(1.0f + 0x1p-8f), 0x3F80);      /* tie -> even */
    ck_assert_uint_eq(apd__bf16_round(1.0f + 3 * 0x1p-8f), 0x3F82);  /* tie -> even (up) */
    ck_assert_uint_eq(apd__bf16_round(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
    ck_assert_uint_eq(apd__bf16_round(-2.0f), 0xC000);
    ck_assert_uint_eq(apd__bf16_round(INFINITY), 0x7F80);
    uint16_t q = apd__bf16_round(NAN);
    ck_assert((q & 0x7F80) == 0x7F80 && (q & 0x7F) != 0);
    /* the vector packer rounds exactly like the scalar conversion */
    apd__rng r;
    apd__rng_seed(&r, 3, 0);
    size_t K = 7, N = 40;
    float *b = tu_rand(K * N, &r, -100.0f, 100.0f);
    b[5] = 1.0f + 0x1p-8f;
    b[6] = 1.0f + 3 * 0x1p-8f;
    uint16_t *bp = malloc(apd__bf16_b_elems(K, N) * 2);
    apd__bf16_pack_b(bp, b, N, K, N);
    size_t Np = 48, bad = 0;
    for (size_t k = 0; k < 8; k++)
        for (size_t n = 0; n < Np; n++) {
            uint16_t want = (k < K && n < N) ? apd__bf16_round(b[k * N + n]) : 0;
            bad += bp[((k / 2) * Np + n) * 2 + k % 2] != want;
        }
    printf("bf16 packer: %zu of %zu elements differ from the scalar rounding\n", bad, (size_t)8 * Np);
    ck_assert_uint_eq(bad, 0);
    free(b), free(bp);
}
END_TEST

/* the fused im2col -> bf16 packer writes the same bits as im2col then packing, for several
 * images side by side, odd K (Ci * 9 with Ci odd), column counts that are not a multiple of
 * 16, rows wider than one 16-lane piece, and paddings of 0 to 3 (3: conv1 at 28 px) */
START_TEST(im2col_pack_same_bits)
{
    static const size_t geo[][5] = {/* Ci, H, W, k, pad */
                                    {3, 5, 7, 3, 1}, {2, 16, 16, 3, 1}, {1, 8, 8, 3, 0}, {3, 9, 37, 3, 2},
                                    {5, 28, 28, 3, 3}, {4, 33, 20, 1, 0}, {1, 2, 3, 3, 1}};
    size_t bad = 0, all = 0;
    for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++) {
        size_t Ci = geo[gi][0], H = geo[gi][1], W = geo[gi][2], k = geo[gi][3], pad = geo[gi][4];
        size_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1, P = Ho * Wo, g = 3, N = g * P, K = Ci * k * k;
        apd__rng r;
        apd__rng_seed(&r, 4 + gi, 0);
        float *x = tu_rand(g * Ci * H * W, &r, -3.0f, 3.0f), *col = tu_zeros(K * N), *tmp = tu_zeros(2 * P);
        size_t nb = apd__bf16_b_elems(K, N);
        uint16_t *a = malloc(nb * 2), *b = malloc(nb * 2);
        memset(b, 0xAB, nb * 2); /* every element must be written, padding included */
        for (size_t j = 0; j < g; j++) {
            apd__im2col(col + j * P, N, x + j * Ci * H * W, Ci, H, W, k, pad, Ho, Wo);
            apd__bf16_im2col_pack(b, N, j * P, x + j * Ci * H * W, Ci, H, W, k, pad, Ho, Wo, tmp);
        }
        apd__bf16_pack_b(a, col, N, K, N);
        for (size_t i = 0; i < nb; i++) bad += a[i] != b[i];
        all += nb;
        free(x), free(col), free(tmp), free(a), free(b);
    }
    printf("bf16 fused im2col packer (%s): %zu of %zu elements differ from im2col + pack (7 geometries)\n",
           apd__bf16_cpu() ? "AVX512_BF16 kernel" : "scalar", bad, all);
    ck_assert_uint_eq(bad, 0);
}
END_TEST

/* apd__im2col (AVX-512 masked loads where available) against the definition, element by
 * element: col[(ci k + ky) k + kx][c0 + oy Wo + ox] = in[ci][oy + ky - pad][ox + kx - pad], 0
 * outside; columns of other images in the same matrix (ld > Ho Wo) are left alone */
START_TEST(im2col_definition)
{
    static const size_t geo[][5] = {/* Ci, H, W, k, pad */
                                    {3, 5, 7, 3, 1}, {2, 16, 16, 3, 1}, {1, 8, 8, 3, 0}, {3, 9, 37, 3, 2},
                                    {5, 28, 28, 3, 3}, {4, 33, 20, 1, 0}, {1, 2, 3, 3, 1}, {2, 32, 32, 3, 1}};
    size_t bad = 0, all = 0;
    for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++) {
        size_t Ci = geo[gi][0], H = geo[gi][1], W = geo[gi][2], k = geo[gi][3], pad = geo[gi][4];
        size_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1, P = Ho * Wo, ld = 2 * P + 5, c0 = P + 3;
        size_t K = Ci * k * k;
        apd__rng r;
        apd__rng_seed(&r, 40 + gi, 0);
        float *x = tu_rand(Ci * H * W, &r, -3.0f, 3.0f), *col = malloc(K * ld * sizeof(float));
        for (size_t i = 0; i < K * ld; i++) col[i] = 12345.0f; /* must stay outside [c0, c0 + P) */
        apd__im2col(col + c0, ld, x, Ci, H, W, k, pad, Ho, Wo);
        for (size_t ci = 0; ci < Ci; ci++)
            for (size_t ky = 0; ky < k; ky++)
                for (size_t kx = 0; kx < k; kx++)
                    for (size_t j = 0; j < ld; j++) {
                        const float *row = col + ((ci * k + ky) * k + kx) * ld;
                        float want = 12345.0f;
                        if (j >= c0 && j < c0 + P) {
                            ptrdiff_t oy = (ptrdiff_t)((j - c0) / Wo), ox = (ptrdiff_t)((j - c0) % Wo);
                            ptrdiff_t iy = oy + (ptrdiff_t)ky - (ptrdiff_t)pad, ix = ox + (ptrdiff_t)kx - (ptrdiff_t)pad;
                            want = iy >= 0 && iy < (ptrdiff_t)H && ix >= 0 && ix < (ptrdiff_t)W
                                       ? x[(ci * H + (size_t)iy) * W + (size_t)ix]
                                       : 0.0f;
                        }
                        bad += memcmp(&row[j], &want, sizeof want) != 0;
                        all++;
                    }
        free(x), free(col);
    }
    printf("im2col (%s): %zu of %zu elements differ from the definition (8 geometries)\n",
           apd__cpu_avx512f() ? "AVX-512" : "scalar", bad, all);
    ck_assert_uint_eq(bad, 0);
}
END_TEST

START_TEST(gemm_f32_vs_sgemm)
{
    if (!apd__gemm_f32_ok()) {
        printf("fp32 AVX-512 kernel: not available on this CPU (OpenBLAS used)\n");
        return;
    }
    static const size_t shapes[][3] = {{128, 256, 1152}, {1152, 256, 128}, {13, 37, 29}, {9, 17, 300}, {1, 1, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int tr = 0; tr < 2; tr++) {
            size_t M = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
            apd__rng r;
            apd__rng_seed(&r, 21 + i, (uint64_t)tr);
            float *a = tu_rand(M * K, &r, -1.0f, 1.0f), *b = tu_rand(K * N, &r, -1.0f, 1.0f);
            float *c = tu_zeros(M * N + 1), *ref = tu_zeros(M * N);
            c[M * N] = 777.0f; /* guard: nothing past C is written */
            /* tr: A stored transposed (a[k * M + m]), as W^T in the input-gradient GEMM */
            if (tr) {
                apd__gemm_f32(c, N, a, 1, M, b, N, M, N, K);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)M, b,
                            (int)N, 0.0f, ref, (int)N);
            } else {
                apd__gemm_f32(c, N, a, K, 1, b, N, M, N, K);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)K, b,
                            (int)N, 0.0f, ref, (int)N);
            }
            double e = tu_err(c, ref, M * N);
            printf("fp32 AVX-512 gemm %4zux%4zux%4zu%s vs sgemm: max err %.2e (max abs %.2e)\n", M, N, K,
                   tr ? " (A^T)" : "", e, tu_max_abs(c, ref, M * N));
            ck_assert_msg(e <= 2e-4, "fp32 kernel error %.3e > 2e-4", e);
            ck_assert(c[M * N] == 777.0f);
            /* C += A B (the weight-gradient form, A = im2col rows): C starts from the product
               above, so the reference is sgemm with beta 1 on the same C */
            memcpy(ref, c, M * N * sizeof(float));
            apd__gemm_f32_add(c, N, a, K, 1, b, N, M, N, K);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)K, b, (int)N,
                        1.0f, ref, (int)N);
            e = tu_err(c, ref, M * N);
            printf("fp32 AVX-512 gemm %4zux%4zux%4zu C += A B vs sgemm beta 1: max err %.2e\n", M, N, K, e);
            ck_assert_msg(e <= 2e-4, "fp32 kernel (C += A B) error %.3e > 2e-4", e);
            ck_assert(c[M * N] == 777.0f);
            free(a), free(b), free(c), free(ref);
        }
    setenv("APD_NN_GEMM", "openblas", 1);
    ck_assert_int_eq(apd__gemm_f32_ok(), 0);
    ck_assert_ptr_nonnull(strstr(apd_nn_gemm_kernels(), "OpenBLAS sgemm"));
    unsetenv("APD_NN_GEMM");
    ck_assert_int_eq(apd__gemm_f32_ok(), 1);
}
END_TEST

static apd_convnet *make_net(void)
{
    apd_convnet_opts o;
    apd_convnet_opts_default(&o, 3, 32, 32, 10);
    o.max_batch = 6;
    apd_convnet *net = NULL;
    ck_assert_int_eq(apd_convnet_create(&net, &o), APD_OK);
    apd_convnet_init(net, 11, 0);
    return net;
}

START_TEST(convnet_bf16_forward)
{
    unsetenv("APD_NN_BF16");
    apd_convnet *net = make_net();
    size_t n = 5, D = apd_convnet_embed_dim(net);
    apd__rng r;
    apd__rng_seed(&r, 5, 0);
    float *x = tu_rand(n * 3 * 32 * 32, &r, -2.0f, 2.0f), *e32 = tu_zeros(n * D), *e16 = tu_zeros(n * D);
    float *dx = tu_zeros(n * 3 * 32 * 32);
    ck_assert_int_eq(apd_convnet_forward(net, NULL, e32, x, n), APD_OK);
    ck_assert_int_eq(apd_convnet_forward_ex(net, NULL, e16, x, n, APD_NN_FWD_BF16), APD_OK);
    double e = scale_err(e16, e32, n * D);
    int differs = memcmp(e16, e32, n * D * sizeof(float)) != 0;
    printf("ConvNetD3 embedding, bf16 forward (%s) vs fp32: scale-relative err %.2e (max abs %.2e, max |ref| "
           "%.2e)\n",
           apd_nn_bf16_enabled() ? "enabled" : "not available", e, tu_max_abs(e16, e32, n * D),
           tu_max_absval(e32, n * D));
    ck_assert_msg(e <= 2e-2, "bf16 embedding error %.3e > 2e-2", e);
    if (apd_nn_bf16_enabled()) {
        ck_assert_msg(differs, "bf16 forward gave bit-identical results: the bf16 path did not run");
        ck_assert_int_eq(apd_convnet_backward(net, dx, NULL, e16, n, 0), APD_EBADSTATE);
    } else {
        ck_assert_msg(!differs, "without AVX512_BF16 the flag must not change results");
    }
    apd_convnet_free(net);
    free(x), free(e32), free(e16), free(dx);
}
END_TEST

START_TEST(dispatch_disabled)
{
    setenv("APD_NN_BF16", "0", 1);
    ck_assert_int_eq(apd_nn_bf16_enabled(), 0);
    ck_assert_ptr_nonnull(strstr(apd_nn_gemm_kernels(), "fp32"));
    apd_convnet *net = make_net();
    size_t n = 4, D = apd_convnet_embed_dim(net);
    apd__rng r;
    apd__rng_seed(&r, 9, 0);
    float *x = tu_rand(n * 3 * 32 * 32, &r, -2.0f, 2.0f), *e32 = tu_zeros(n * D), *e16 = tu_zeros(n * D);
    float *dx = tu_zeros(n * 3 * 32 * 32);
    ck_assert_int_eq(apd_convnet_forward(net, NULL, e32, x, n), APD_OK);
    ck_assert_int_eq(apd_convnet_forward_ex(net, NULL, e16, x, n, APD_NN_FWD_BF16), APD_OK);
    printf("APD_NN_BF16=0: bf16-flagged forward max abs diff to fp32 %.2e (must be 0)\n",
           tu_max_abs(e16, e32, n * D));
    ck_assert_msg(memcmp(e16, e32, n * D * sizeof(float)) == 0, "disabled bf16 must fall back to fp32 exactly");
    /* an fp32 forward keeps the activations: backward works */
    ck_assert_int_eq(apd_convnet_backward(net, dx, NULL, e16, n, 0), APD_OK);
    setenv("APD_NN_BF16", "1", 1);
    ck_assert_int_eq(apd_nn_bf16_enabled(), apd__bf16_cpu());
    unsetenv("APD_NN_BF16");
    apd_convnet_free(net);
    free(x), free(e32), free(e16), free(dx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_bf16");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gemm_vs_fp32);
    tcase_add_test(tc, rounding);
    tcase_add_test(tc, im2col_pack_same_bits);
    tcase_add_test(tc, im2col_definition);
    tcase_add_test(tc, gemm_f32_vs_sgemm);
    tcase_add_test(tc, convnet_bf16_forward);
    tcase_add_test(tc, dispatch_disabled);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
