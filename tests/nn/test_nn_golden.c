/* test_nn_golden.c: every op and the ConvNet against tensors written by PyTorch 1.13
 * (tests/nn/gen_golden.py; files in tests/nn/golden/). Prints max errors.
 *
 * Error metric (per tensor): max_i |got_i - ref_i| / (|ref_i| + 0.01 * max_j |ref_j|), i.e. a
 * relative error with an absolute floor of 1% of the tensor's scale, so entries that are
 * zero up to round-off do not dominate; the max absolute error is printed too. The golden
 * values are computed by PyTorch in float64 from float32 inputs, so this is the C engine's
 * own float32 error. Targets: forward <= 1e-4, backward <= 1e-3.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "nn_testutil.h"

#define FWD_TOL 1e-4
#define BWD_TOL 1e-3

static tu_golden G;

static void load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/nn/golden/%s.bin", APD_SOURCE_DIR, name);
    ck_assert_msg(tu_golden_load(&G, path) == 0, "cannot load %s", path);
}

static const float *T(const char *name)
{
    const tu_tensor *t = tu_get(&G, name);
    ck_assert_msg(t != NULL, "missing tensor %s", name);
    return t->data;
}
static size_t Tn(const char *name) { return tu_get(&G, name)->n; }

static double check(const char *what, const float *got, const char *ref, double tol)
{
    size_t n = Tn(ref);
    double e = tu_err(got, T(ref), n);
    printf("golden %-34s n=%-7zu max err %.2e (max abs %.2e) tol %.0e\n", what, n, e,
           tu_max_abs(got, T(ref), n), tol);
    ck_assert_msg(e <= tol, "%s: error %.3e > %.0e", what, e, tol);
    return e;
}

static void conv_golden(const char *name)
{
    load(name);
    const float *d = T("dims");
    size_t N = (size_t)d[0], Ci = (size_t)d[1], H = (size_t)d[2], W = (size_t)d[3], Co = (size_t)d[4],
           k = (size_t)d[5], pad = (size_t)d[6];
    float *y = tu_zeros(Tn("y")), *dx = tu_zeros(Tn("x")), *dw = tu_zeros(Tn("w")), *db = tu_zeros(Co);
    float *scr = tu_zeros(apd_conv2d_scratch_floats(Ci, H, W, k, pad));
    char what[96];
    apd_conv2d_forward(y, scr, T("x"), T("w"), T("b"), N, Ci, H, W, Co, k, pad);
    snprintf(what, sizeof what, "%s y", name);
    check(what, y, "y", FWD_TOL);
    apd_conv2d_backward(dx, dw, db, scr, T("dout"), T("x"), T("w"), N, Ci, H, W, Co, k, pad);
    snprintf(what, sizeof what, "%s dx", name);
    check(what, dx, "dx", BWD_TOL);
    snprintf(what, sizeof what, "%s dw", name);
    check(what, dw, "dw", BWD_TOL);
    snprintf(what, sizeof what, "%s db", name);
    check(what, db, "db", BWD_TOL);
    /* the references agree too */
    memset(dx, 0, Tn("x") * 4);
    memset(dw, 0, Tn("w") * 4);
    memset(db, 0, Co * 4);
    apd_conv2d_forward_ref(y, T("x"), T("w"), T("b"), N, Ci, H, W, Co, k, pad);
    apd_conv2d_backward_ref(dx, dw, db, T("dout"), T("x"), T("w"), N, Ci, H, W, Co, k, pad);
    snprintf(what, sizeof what, "%s y (ref kernel)", name);
    check(what, y, "y", FWD_TOL);
    snprintf(what, sizeof what, "%s dw (ref kernel)", name);
    check(what, dw, "dw", BWD_TOL);
    free(y); free(dx); free(dw); free(db); free(scr);
    tu_golden_free(&G);
}

START_TEST(golden_conv)
{
    conv_golden("conv3x3_pad1");
    conv_golden("conv3x3_pad3");
    conv_golden("conv3x3_pad0");
    conv_golden("conv1x1");
    /* conv1x1 through its own entry point */
    load("conv1x1");
    const float *d = T("dims");
    size_t N = (size_t)d[0], Ci = (size_t)d[1], HW = (size_t)(d[2] * d[3]), Co = (size_t)d[4];
    float *y = tu_zeros(Tn("y")), *dx = tu_zeros(Tn("x")), *dw = tu_zeros(Tn("w")), *db = tu_zeros(Co);
    apd_conv1x1_forward(y, T("x"), T("w"), T("b"), N, Ci, HW, Co);
    check("conv1x1 (entry) y", y, "y", FWD_TOL);
    apd_conv1x1_backward(dx, dw, db, T("dout"), T("x"), T("w"), N, Ci, HW, Co);
    check("conv1x1 (entry) dx", dx, "dx", BWD_TOL);
    check("conv1x1 (entry) dw", dw, "dw", BWD_TOL);
    free(y); free(dx); free(dw); free(db);
    tu_golden_free(&G);
}
END_TEST

START_TEST(golden_small_ops)
{
    load("instnorm");
    const float *d = T("dims");
    size_t N = (size_t)d[0], C = (size_t)d[1], HW = (size_t)d[2];
    float *y = tu_zeros(Tn("y")), *dx = tu_zeros(Tn("x")), *dg = tu_zeros(C), *dbt = tu_zeros(C);
    float *mean = tu_zeros(N * C), *rstd = tu_zeros(N * C);
    apd_instnorm_forward(y, mean, rstd, T("x"), T("gamma"), T("beta"), N, C, HW);
    check("instnorm y", y, "y", FWD_TOL);
    apd_instnorm_backward(dx, dg, dbt, T("dout"), T("x"), mean, rstd, T("gamma"), N, C, HW);
    check("instnorm dx", dx, "dx", BWD_TOL);
    check("instnorm dgamma", dg, "dgamma", BWD_TOL);
    check("instnorm dbeta", dbt, "dbeta", BWD_TOL);
    free(y); free(dx); free(dg); free(dbt); free(mean); free(rstd);
    tu_golden_free(&G);

    load("relu");
    size_t n = Tn("x");
    y = tu_zeros(n);
    dx = tu_zeros(n);
    apd_relu_forward(y, T("x"), n);
    check("relu y", y, "y", FWD_TOL);
    apd_relu_backward(dx, T("dout"), T("x"), n);
    check("relu dx", dx, "dx", BWD_TOL);
    free(y); free(dx);
    tu_golden_free(&G);

    load("avgpool2");
    d = T("dims");
    y = tu_zeros(Tn("y"));
    dx = tu_zeros(Tn("x"));
    apd_avgpool2_forward(y, T("x"), (size_t)d[0], (size_t)d[1], (size_t)d[2]);
    check("avgpool2 y", y, "y", FWD_TOL);
    apd_avgpool2_backward(dx, T("dout"), (size_t)d[0], (size_t)d[1], (size_t)d[2]);
    check("avgpool2 dx", dx, "dx", BWD_TOL);
    free(y); free(dx);
    tu_golden_free(&G);

    load("linear");
    d = T("dims");
    size_t B = (size_t)d[0], I = (size_t)d[1], O = (size_t)d[2];
    y = tu_zeros(Tn("y"));
    dx = tu_zeros(Tn("x"));
    float *dw = tu_zeros(Tn("w")), *db = tu_zeros(O);
    apd_linear_forward(y, T("x"), T("w"), T("b"), B, I, O);
    check("linear y", y, "y", FWD_TOL);
    apd_linear_backward(dx, dw, db, T("dout"), T("x"), T("w"), B, I, O);
    check("linear dx", dx, "dx", BWD_TOL);
    check("linear dw", dw, "dw", BWD_TOL);
    check("linear db", db, "db", BWD_TOL);
    free(y); free(dx); free(dw); free(db);
    tu_golden_free(&G);

    load("softmax");
    d = T("dims");
    y = tu_zeros(Tn("y"));
    dx = tu_zeros(Tn("x"));
    apd_softmax_forward(y, T("x"), (size_t)d[0], (size_t)d[1], (size_t)d[2]);
    check("softmax y", y, "y", FWD_TOL);
    apd_softmax_backward(dx, T("dout"), y, (size_t)d[0], (size_t)d[1], (size_t)d[2]);
    check("softmax dx", dx, "dx", BWD_TOL);
    free(y); free(dx);
    tu_golden_free(&G);

    load("xent");
    d = T("dims");
    B = (size_t)d[0];
    size_t K = (size_t)d[1];
    uint32_t lab[16];
    for (size_t i = 0; i < B; i++) lab[i] = (uint32_t)T("labels")[i];
    float loss, *probs = tu_zeros(B * K), *dl = tu_zeros(B * K);
    apd_xent_forward(&loss, probs, T("logits"), lab, B, K);
    check("xent loss", &loss, "loss", FWD_TOL);
    apd_xent_backward(dl, probs, lab, 1.0f, B, K);
    check("xent dlogits", dl, "dlogits", BWD_TOL);
    free(probs); free(dl);
    tu_golden_free(&G);
}
END_TEST

static void convnet_golden(const char *name, uint32_t threads)
{
    load(name);
    const float *d = T("dims");
    size_t N = (size_t)d[0];
    apd_convnet_opts cfg;
    apd_convnet_opts_default(&cfg, (uint32_t)d[1], (uint32_t)d[2], (uint32_t)d[3], (uint32_t)d[7]);
    cfg.width = (uint32_t)d[4];
    cfg.depth = (uint32_t)d[5];
    cfg.norm = d[6] != 0 ? APD_NORM_INSTANCE : APD_NORM_NONE;
    cfg.max_batch = (uint32_t)N;
    apd_pool *pool = NULL;
    if (threads > 1) ck_assert_int_eq(apd_pool_create(&pool, threads), APD_OK);
    cfg.pool = pool;
    apd_convnet *net;
    ck_assert_int_eq(apd_convnet_create(&net, &cfg), APD_OK);
    size_t K = cfg.n_classes, E = apd_convnet_embed_dim(net);
    ck_assert_uint_eq(E * N, Tn("embed"));
    for (size_t t = 0; t < apd_convnet_num_tensors(net); t++) {
        apd_tensor_view v;
        apd_convnet_tensor(net, t, &v);
        ck_assert_uint_eq(v.size, Tn(v.name));
        memcpy(v.data, T(v.name), v.size * 4);
    }
    float *logits = tu_zeros(N * K), *emb = tu_zeros(N * E), *probs = tu_zeros(N * K);
    float *dl = tu_zeros(N * K), *de = tu_zeros(N * E), *dx = tu_zeros(Tn("x"));
    uint32_t lab[64];
    for (size_t i = 0; i < N; i++) lab[i] = (uint32_t)T("labels")[i];
    ck_assert_int_eq(apd_convnet_forward(net, logits, emb, T("x"), N), APD_OK);
    char what[128];
    snprintf(what, sizeof what, "%s T%u logits", name, threads);
    check(what, logits, "logits", FWD_TOL);
    snprintf(what, sizeof what, "%s T%u embed", name, threads);
    check(what, emb, "embed", FWD_TOL);
    float loss;
    apd_xent_forward(&loss, probs, logits, lab, N, K);
    double l = loss;
    for (size_t i = 0; i < N * E; i++) l += 0.1 * (double)emb[i] * T("R")[i];
    float lf = (float)l;
    snprintf(what, sizeof what, "%s T%u loss", name, threads);
    check(what, &lf, "loss", FWD_TOL);
    apd_xent_backward(dl, probs, lab, 1.0f, N, K);
    for (size_t i = 0; i < N * E; i++) de[i] = 0.1f * T("R")[i];
    apd_convnet_zero_grad(net);
    ck_assert_int_eq(apd_convnet_backward(net, dx, dl, de, N, APD_NN_PARAM_GRADS), APD_OK);
    snprintf(what, sizeof what, "%s T%u dx", name, threads);
    check(what, dx, "dx", BWD_TOL);
    for (size_t t = 0; t < apd_convnet_num_tensors(net); t++) {
        apd_tensor_view v;
        apd_convnet_tensor(net, t, &v);
        char gname[96];
        snprintf(gname, sizeof gname, "grad.%s", v.name);
        snprintf(what, sizeof what, "%s T%u %s", name, threads, gname);
        if (cfg.norm == APD_NORM_INSTANCE && strstr(v.name, "conv") && strstr(v.name, "bias")) {
            /* exactly zero in exact arithmetic (the norm removes per-channel constants): both
             * sides are round-off, so compare absolutely against the weight-grad scale */
            double m = tu_max_abs(v.grad, T(gname), v.size);
            printf("golden %-34s max abs %.2e (true value 0)\n", what, m);
            ck_assert_double_le(m, 1e-5);
            continue;
        }
        check(what, v.grad, gname, BWD_TOL);
    }
    free(logits); free(emb); free(probs); free(dl); free(de); free(dx);
    apd_convnet_free(net);
    apd_pool_free(pool);
    tu_golden_free(&G);
}

/* Forward of a larger batch (24 images: several images per GEMM group for conv3, uneven
 * thread slices): the golden images repeated, every copy must match the golden outputs. */
static void convnet_golden_big_batch(const char *name, uint32_t threads)
{
    load(name);
    const float *d = T("dims");
    size_t N = (size_t)d[0], reps = 24 / N, B = reps * N;
    apd_convnet_opts cfg;
    apd_convnet_opts_default(&cfg, (uint32_t)d[1], (uint32_t)d[2], (uint32_t)d[3], (uint32_t)d[7]);
    cfg.width = (uint32_t)d[4];
    cfg.depth = (uint32_t)d[5];
    cfg.norm = d[6] != 0 ? APD_NORM_INSTANCE : APD_NORM_NONE;
    cfg.max_batch = (uint32_t)B;
    apd_pool *pool = NULL;
    if (threads > 1) ck_assert_int_eq(apd_pool_create(&pool, threads), APD_OK);
    cfg.pool = pool;
    apd_convnet *net;
    ck_assert_int_eq(apd_convnet_create(&net, &cfg), APD_OK);
    for (size_t t = 0; t < apd_convnet_num_tensors(net); t++) {
        apd_tensor_view v;
        apd_convnet_tensor(net, t, &v);
        memcpy(v.data, T(v.name), v.size * 4);
    }
    size_t K = cfg.n_classes, E = apd_convnet_embed_dim(net), img = Tn("x") / N;
    float *x = malloc(B * img * 4), *lg = malloc(B * K * 4), *em = malloc(B * E * 4);
    for (size_t r = 0; r < reps; r++) memcpy(x + r * N * img, T("x"), N * img * 4);
    ck_assert_int_eq(apd_convnet_forward(net, lg, em, x, B), APD_OK);
    double el = 0, ee = 0;
    for (size_t r = 0; r < reps; r++) {
        double a = tu_err(lg + r * N * K, T("logits"), N * K), b = tu_err(em + r * N * E, T("embed"), N * E);
        if (a > el) el = a;
        if (b > ee) ee = b;
    }
    printf("golden %s batch %zu (large batch) T%u: logits %.2e embed %.2e\n", name, B, threads, el, ee);
    ck_assert_double_le(el, FWD_TOL);
    ck_assert_double_le(ee, FWD_TOL);
    free(x); free(lg); free(em);
    apd_convnet_free(net);
    apd_pool_free(pool);
    tu_golden_free(&G);
}

START_TEST(golden_convnet)
{
    convnet_golden("convnet_small", 1);
    convnet_golden("convnet_small", 2);
    convnet_golden("convnet_small_nonorm", 1);
    convnet_golden("convnet_d3_fmnist_w32", 2);
    convnet_golden("convnetd3_cifar", 1);
    convnet_golden("convnetd3_cifar", 2);
    convnet_golden_big_batch("convnetd3_cifar", 2);
    convnet_golden_big_batch("convnet_d3_fmnist_w32", 1);
}
END_TEST

/* The literature's deeper nets at their resolutions: ConvNetD4 at 64x64, ConvNetD5 at 128x128
 * (width 128), forward and backward against PyTorch; the depth of each golden is the one the
 * library picks for its resolution by default. */
START_TEST(golden_convnet_deep)
{
    static const struct { const char *name; uint32_t side, depth; } cs[] = {
        {"convnetd3_cifar", 32, 3}, {"convnetd4_64", 64, 4}, {"convnetd5_128", 128, 5}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        load(cs[i].name);
        const float *d = T("dims");
        ck_assert_uint_eq((uint32_t)d[2], cs[i].side);
        ck_assert_uint_eq((uint32_t)d[5], cs[i].depth);
        ck_assert_uint_eq(apd_convnet_default_depth(cs[i].side, cs[i].side), cs[i].depth);
        apd_convnet_opts cfg;
        apd_convnet_opts_default(&cfg, 3, cs[i].side, cs[i].side, 10);
        ck_assert_uint_eq(cfg.depth, cs[i].depth);
        tu_golden_free(&G);
    }
    convnet_golden("convnetd4_64", 1);
    convnet_golden("convnetd4_64", 2);
    convnet_golden("convnetd5_128", 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, golden_conv);
    tcase_add_test(tc, golden_small_ops);
    tcase_add_test(tc, golden_convnet);
    tcase_add_test(tc, golden_convnet_deep);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
