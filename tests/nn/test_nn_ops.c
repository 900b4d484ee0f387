/* test_nn_ops.c: the NN engine against itself: optimised kernels vs naive references,
 * finite-difference gradient checks of every op and of a whole (small) ConvNet, fused vs
 * unfused ConvNet forward, thread-count reproducibility, SGD semantics. Prints max errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "common/rng.h"
#include "nn_testutil.h"

/* ---------- conv2d optimised vs reference ---------- */

static void conv_case(size_t N, size_t Ci, size_t H, size_t W, size_t Co, size_t k, size_t pad,
                      uint64_t seed)
{
    apd__rng r;
    apd__rng_seed(&r, seed, 0);
    size_t Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1;
    size_t nin = N * Ci * H * W, nw = Co * Ci * k * k, nout = N * Co * Ho * Wo;
    float *x = tu_rand(nin, &r, -1, 1), *w = tu_rand(nw, &r, -1, 1), *b = tu_rand(Co, &r, -1, 1);
    float *dy = tu_rand(nout, &r, -1, 1);
    float *y = tu_zeros(nout), *yr = tu_zeros(nout);
    float *scr = tu_zeros(apd_conv2d_scratch_floats(Ci, H, W, k, pad));
    apd_conv2d_forward(y, scr, x, w, b, N, Ci, H, W, Co, k, pad);
    apd_conv2d_forward_ref(yr, x, w, b, N, Ci, H, W, Co, k, pad);
    double ef = tu_err(y, yr, nout);
    /* backward accumulates: start from the same non-zero content */
    float *dx = tu_rand(nin, &r, -1, 1), *dxr = malloc(nin * 4);
    float *dw = tu_rand(nw, &r, -1, 1), *dwr = malloc(nw * 4);
    float *db = tu_rand(Co, &r, -1, 1), *dbr = malloc(Co * 4);
    memcpy(dxr, dx, nin * 4);
    memcpy(dwr, dw, nw * 4);
    memcpy(dbr, db, Co * 4);
    apd_conv2d_backward(dx, dw, db, scr, dy, x, w, N, Ci, H, W, Co, k, pad);
    apd_conv2d_backward_ref(dxr, dwr, dbr, dy, x, w, N, Ci, H, W, Co, k, pad);
    double ex = tu_err(dx, dxr, nin), ew = tu_err(dw, dwr, nw), eb = tu_err(db, dbr, Co);
    printf("conv2d N%zu Ci%zu %zux%zu Co%zu k%zu pad%zu: fwd %.2e dx %.2e dw %.2e db %.2e\n", N, Ci,
           H, W, Co, k, pad, ef, ex, ew, eb);
    ck_assert_double_le(ef, 1e-4);
    ck_assert_double_le(ex, 1e-4);
    ck_assert_double_le(ew, 1e-4);
    ck_assert_double_le(eb, 1e-4);
    free(x); free(w); free(b); free(dy); free(y); free(yr); free(scr);
    free(dx); free(dxr); free(dw); free(dwr); free(db); free(dbr);
}

START_TEST(conv_vs_ref)
{
    conv_case(2, 3, 8, 8, 5, 3, 1, 1);
    conv_case(2, 1, 6, 6, 4, 3, 3, 2);  /* 28x28-style padding 3 */
    conv_case(1, 4, 7, 5, 3, 3, 0, 3);  /* no padding, non-square */
    conv_case(2, 3, 5, 6, 2, 1, 0, 4);  /* 1x1 */
    conv_case(1, 2, 6, 6, 3, 5, 2, 5);  /* 5x5 */
    conv_case(1, 2, 4, 4, 3, 2, 1, 6);  /* even kernel */
}
END_TEST

/* ---------- finite-difference gradient checks of single ops ---------- */

/* Loss = sum(out * R) in double. */
static double dotd(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef void (*fwd_fn)(void *ctx, float *out);

/* Central differences of loss(x) = sum(fwd(x) * R) over every element of x (or a stride);
 * compares with grad. Skips entries where skip(x_i) says so (kinks). Returns max rel err. */
static double fd_check(const char *what, fwd_fn f, void *ctx, float *x, size_t nx, const float *grad,
                       const float *R, size_t nout, float eps, size_t stride,
                       int (*skip)(void *, size_t))
{
    float *out = tu_zeros(nout);
    double maxe = 0.0, scale = tu_max_absval(grad, nx);
    if (scale == 0) scale = 1;
    for (size_t i = 0; i < nx; i += stride) {
        if (skip && skip(ctx, i)) continue;
        float s = x[i];
        x[i] = s + eps;
        f(ctx, out);
        double lp = dotd(out, R, nout);
        x[i] = s - eps;
        f(ctx, out);
        double lm = dotd(out, R, nout);
        x[i] = s;
        double num = (lp - lm) / (2.0 * (double)eps);
        double e = fabs(num - grad[i]) / (fabs(num) + 1e-2 * scale);
        if (!(e <= maxe)) maxe = e;
    }
    printf("gradcheck %-28s max rel err %.2e\n", what, maxe);
    free(out);
    return maxe;
}

typedef struct opctx {
    float *x, *w, *b, *g, *be, *mean, *rstd, *scr;
    size_t N, C, H, W, Co, k, pad, HW;
} opctx;

static void f_conv(void *c, float *out)
{
    opctx *o = c;
    apd_conv2d_forward(out, o->scr, o->x, o->w, o->b, o->N, o->C, o->H, o->W, o->Co, o->k, o->pad);
}
static void f_norm(void *c, float *out)
{
    opctx *o = c;
    apd_instnorm_forward(out, o->mean, o->rstd, o->x, o->g, o->be, o->N, o->C, o->HW);
}
static void f_relu(void *c, float *out)
{
    opctx *o = c;
    apd_relu_forward(out, o->x, o->N);
}
static int skip_relu(void *c, size_t i)
{
    opctx *o = c;
    return fabsf(o->x[i]) < 2e-2f;
}
static void f_pool(void *c, float *out)
{
    opctx *o = c;
    apd_avgpool2_forward(out, o->x, o->N * o->C, o->H, o->W);
}
static void f_linear(void *c, float *out)
{
    opctx *o = c;
    apd_linear_forward(out, o->x, o->w, o->b, o->N, o->C, o->Co);
}
static void f_softmax(void *c, float *out)
{
    opctx *o = c;
    apd_softmax_forward(out, o->x, o->N, o->C, o->HW);
}
static void f_conv1x1(void *c, float *out)
{
    opctx *o = c;
    apd_conv1x1_forward(out, o->x, o->w, o->b, o->N, o->C, o->HW, o->Co);
}

START_TEST(gradcheck_ops)
{
    apd__rng r;
    apd__rng_seed(&r, 7, 0);
    const double tol = 1e-2;
    /* conv 3x3 pad 1 */
    {
        opctx o = {.N = 2, .C = 3, .H = 5, .W = 6, .Co = 4, .k = 3, .pad = 1};
        size_t nin = o.N * o.C * o.H * o.W, nw = o.Co * o.C * 9, nout = o.N * o.Co * o.H * o.W;
        o.x = tu_rand(nin, &r, -1, 1); o.w = tu_rand(nw, &r, -1, 1); o.b = tu_rand(o.Co, &r, -1, 1);
        o.scr = tu_zeros(apd_conv2d_scratch_floats(o.C, o.H, o.W, 3, 1));
        float *R = tu_rand(nout, &r, -1, 1), *dx = tu_zeros(nin), *dw = tu_zeros(nw), *db = tu_zeros(o.Co);
        apd_conv2d_backward(dx, dw, db, o.scr, R, o.x, o.w, o.N, o.C, o.H, o.W, o.Co, 3, 1);
        ck_assert_double_le(fd_check("conv3x3 dx", f_conv, &o, o.x, nin, dx, R, nout, 1e-2f, 1, NULL), tol);
        ck_assert_double_le(fd_check("conv3x3 dw", f_conv, &o, o.w, nw, dw, R, nout, 1e-2f, 1, NULL), tol);
        ck_assert_double_le(fd_check("conv3x3 db", f_conv, &o, o.b, o.Co, db, R, nout, 1e-2f, 1, NULL), tol);
        free(o.x); free(o.w); free(o.b); free(o.scr); free(R); free(dx); free(dw); free(db);
    }
    /* 1x1 conv */
    {
        opctx o = {.N = 2, .C = 3, .HW = 7, .Co = 4};
        size_t nin = o.N * o.C * o.HW, nw = o.Co * o.C, nout = o.N * o.Co * o.HW;
        o.x = tu_rand(nin, &r, -1, 1); o.w = tu_rand(nw, &r, -1, 1); o.b = tu_rand(o.Co, &r, -1, 1);
        float *R = tu_rand(nout, &r, -1, 1), *dx = tu_zeros(nin), *dw = tu_zeros(nw), *db = tu_zeros(o.Co);
        apd_conv1x1_backward(dx, dw, db, R, o.x, o.w, o.N, o.C, o.HW, o.Co);
        ck_assert_double_le(fd_check("conv1x1 dx", f_conv1x1, &o, o.x, nin, dx, R, nout, 1e-2f, 1, NULL), tol);
        ck_assert_double_le(fd_check("conv1x1 dw", f_conv1x1, &o, o.w, nw, dw, R, nout, 1e-2f, 1, NULL), tol);
        ck_assert_double_le(fd_check("conv1x1 db", f_conv1x1, &o, o.b, o.Co, db, R, nout, 1e-2f, 1, NULL), tol);
        free(o.x); free(o.w); free(o.b); free(R); free(dx); free(dw); free(db);
    }
    /* instance norm */
    {
        opctx o = {.N = 2, .C = 3, .HW = 10};
        size_t n = o.N * o.C * o.HW;
        o.x = tu_rand(n, &r, -2, 2); o.g = tu_rand(o.C, &r, 0.5f, 1.5f); o.be = tu_rand(o.C, &r, -1, 1);
        o.mean = tu_zeros(o.N * o.C); o.rstd = tu_zeros(o.N * o.C);
        float *R = tu_rand(n, &r, -1, 1), *out = tu_zeros(n), *dx = tu_zeros(n), *dg = tu_zeros(o.C), *dbt = tu_zeros(o.C);
        f_norm(&o, out);
        apd_instnorm_backward(dx, dg, dbt, R, o.x, o.mean, o.rstd, o.g, o.N, o.C, o.HW);
        ck_assert_double_le(fd_check("instnorm dx", f_norm, &o, o.x, n, dx, R, n, 1e-2f, 1, NULL), tol);
        ck_assert_double_le(fd_check("instnorm dgamma", f_norm, &o, o.g, o.C, dg, R, n, 1e-2f, 1, NULL), tol);
        ck_assert_double_le(fd_check("instnorm dbeta", f_norm, &o, o.be, o.C, dbt, R, n, 1e-2f, 1, NULL), tol);
        free(o.x); free(o.g); free(o.be); free(o.mean); free(o.rstd); free(R); free(out); free(dx); free(dg); free(dbt);
    }
    /* relu */
    {
        opctx o = {.N = 50};
        o.x = tu_rand(o.N, &r, -1, 1);
        float *R = tu_rand(o.N, &r, -1, 1), *dx = tu_zeros(o.N);
        apd_relu_backward(dx, R, o.x, o.N);
        ck_assert_double_le(fd_check("relu dx", f_relu, &o, o.x, o.N, dx, R, o.N, 1e-2f, 1, skip_relu), tol);
        free(o.x); free(R); free(dx);
    }
    /* avgpool */
    {
        opctx o = {.N = 2, .C = 2, .H = 4, .W = 6};
        size_t n = o.N * o.C * o.H * o.W, no = n / 4;
        o.x = tu_rand(n, &r, -1, 1);
        float *R = tu_rand(no, &r, -1, 1), *dx = tu_zeros(n);
        apd_avgpool2_backward(dx, R, o.N * o.C, o.H, o.W);
        ck_assert_double_le(fd_check("avgpool2 dx", f_pool, &o, o.x, n, dx, R, no, 1e-2f, 1, NULL), tol);
        free(o.x); free(R); free(dx);
    }
    /* linear */
    {
        opctx o = {.N = 3, .C = 7, .Co = 4};
        size_t nin = o.N * o.C, nw = o.Co * o.C, nout = o.N * o.Co;
        o.x = tu_rand(nin, &r, -1, 1); o.w = tu_rand(nw, &r, -1, 1); o.b = tu_rand(o.Co, &r, -1, 1);
        float *R = tu_rand(nout, &r, -1, 1), *dx = tu_zeros(nin), *dw = tu_zeros(nw), *db = tu_zeros(o.Co);
        apd_linear_backward(dx, dw, db, R, o.x, o.w, o.N, o.C, o.Co);
        ck_assert_double_le(fd_check("linear dx", f_linear, &o, o.x, nin, dx, R, nout, 1e-2f, 1, NULL), tol);
        ck_assert_double_le(fd_check("linear dw", f_linear, &o, o.w, nw, dw, R, nout, 1e-2f, 1, NULL), tol);
        ck_assert_double_le(fd_check("linear db", f_linear, &o, o.b, o.Co, db, R, nout, 1e-2f, 1, NULL), tol);
        free(o.x); free(o.w); free(o.b); free(R); free(dx); free(dw); free(db);
    }
    /* softmax over channels */
    {
        opctx o = {.N = 2, .C = 5, .HW = 3};
        size_t n = o.N * o.C * o.HW;
        o.x = tu_rand(n, &r, -2, 2);
        float *R = tu_rand(n, &r, -1, 1), *out = tu_zeros(n), *dx = tu_zeros(n);
        f_softmax(&o, out);
        apd_softmax_backward(dx, R, out, o.N, o.C, o.HW);
        ck_assert_double_le(fd_check("softmax dx", f_softmax, &o, o.x, n, dx, R, n, 1e-2f, 1, NULL), tol);
        free(o.x); free(R); free(out); free(dx);
    }
    /* cross-entropy: hand-computable case and FD */
    {
        float logits[6] = {1, 2, 3, 0, 0, 0}, probs[6], loss, dl[6] = {0};
        uint32_t lab[2] = {2, 1};
        apd_xent_forward(&loss, probs, logits, lab, 2, 3);
        double l0 = log(exp(1) + exp(2) + exp(3)) - 3, l1 = log(3.0);
        printf("xent loss %.7f expected %.7f\n", loss, (l0 + l1) / 2);
        ck_assert_double_le(fabs(loss - (l0 + l1) / 2), 1e-6);
        apd_xent_backward(dl, probs, lab, 1.0f, 2, 3);
        double maxe = 0;
        for (int i = 0; i < 6; i++) {
            float s = logits[i], lp, lm;
            logits[i] = s + 1e-2f; apd_xent_forward(&lp, probs, logits, lab, 2, 3);
            logits[i] = s - 1e-2f; apd_xent_forward(&lm, probs, logits, lab, 2, 3);
            logits[i] = s;
            double num = (lp - lm) / 2e-2;
            if (fabs(num - dl[i]) > maxe) maxe = fabs(num - dl[i]);
        }
        printf("gradcheck %-28s max abs err %.2e\n", "xent dlogits", maxe);
        ck_assert_double_le(maxe, 1e-3);
        ck_assert_uint_eq(apd_count_correct(logits, lab, 2, 3), 1);
    }
    /* mean rows + sqdist */
    {
        float a[6] = {1, 2, 3, 4, 5, 6}, m[3], b[3] = {0, 1, 2}, loss, dm[3] = {0}, da[6] = {0};
        apd_mean_rows_forward(m, a, 2, 3);
        ck_assert(m[0] == 2.5f && m[2] == 4.5f);
        apd_sqdist_forward(&loss, m, b, 3);
        ck_assert_double_eq_tol(loss, 2.5 * 2.5 * 3, 1e-5);
        apd_sqdist_backward(dm, NULL, m, b, 1.0f, 3);
        apd_mean_rows_backward(da, dm, 2, 3);
        ck_assert_double_eq_tol(da[0], 2.5, 1e-6); /* 2 * 2.5 / 2 */
        ck_assert_double_eq_tol(da[5], 2.5, 1e-6);
    }
}
END_TEST

/* ---------- ConvNet: fused vs reference, gradcheck, threads ---------- */

typedef struct netctx {
    apd_convnet *net;
    float *x, *R, *logits, *emb, *probs;
    uint32_t *lab;
    size_t n;
} netctx;

/* loss = xent(logits) + 0.1 * sum(embed * R) */
static double net_loss(netctx *c)
{
    apd_convnet_forward(c->net, c->logits, c->emb, c->x, c->n);
    float l;
    size_t K = apd_convnet_get_opts(c->net)->n_classes;
    apd_xent_forward(&l, c->probs, c->logits, c->lab, c->n, K);
    /* the same loss in double: float round-off of an O(1) loss would swamp the FD quotient */
    double xe = 0.0;
    for (size_t i = 0; i < c->n; i++) {
        double s = 0.0;
        for (size_t k = 0; k < K; k++) s += exp((double)c->logits[i * K + k]);
        xe += log(s) - c->logits[i * K + c->lab[i]];
    }
    return xe / (double)c->n + 0.1 * dotd(c->emb, c->R, c->n * apd_convnet_embed_dim(c->net));
}

/* Central differences of net_loss over every stride-th entry of v, against g.
 * Metric: max |numeric - analytic| / max |analytic| over the checked entries (normwise
 * relative error: elementwise ratios on near-zero entries only measure float round-off of
 * the forward pass, which FD divides by eps). */
static double net_fd(netctx *c, const char *what, float *v, size_t nv, const float *g, size_t stride,
                     float eps)
{
    double maxd = 0.0, scale = 0.0;
    for (size_t i = 0; i < nv; i += stride) {
        float s = v[i];
        v[i] = s + eps;
        double lp = net_loss(c);
        v[i] = s - eps;
        double lm = net_loss(c);
        v[i] = s;
        double num = (lp - lm) / (2.0 * (double)eps);
        if (fabs(num - g[i]) > maxd) maxd = fabs(num - g[i]);
        if (fabs(g[i]) > scale) scale = fabs(g[i]);
    }
    double e = maxd / (scale > 0 ? scale : 1.0);
    printf("gradcheck convnet %-22s max |fd-an| %.2e, max |an| %.2e, rel %.2e\n", what, maxd, scale, e);
    return e;
}

static apd_convnet *make_net(uint32_t c, uint32_t h, uint32_t w, uint32_t width, uint32_t depth,
                             apd_norm norm, uint32_t classes, uint32_t max_batch, apd_pool *pool,
                             uint64_t seed)
{
    apd_convnet_opts cfg;
    apd_convnet_opts_default(&cfg, c, h, w, classes);
    cfg.width = width;
    cfg.depth = depth;
    cfg.norm = norm;
    cfg.max_batch = max_batch;
    cfg.pool = pool;
    apd_convnet *net = NULL;
    ck_assert_int_eq(apd_convnet_create(&net, &cfg), APD_OK);
    apd_convnet_init(net, seed, 0);
    return net;
}

static void gradcheck_net(apd_norm norm, uint32_t c, uint32_t h, apd_pool *pool)
{
    /* Inputs in double-friendly ranges; the net is small so float round-off stays small. */
    const size_t n = 3;
    apd_convnet *net = make_net(c, h, h, 6, 2, norm, 4, 4, pool, 11);
    /* perturb gamma/beta away from 1/0 so their gradients are exercised */
    apd__rng r;
    apd__rng_seed(&r, 12, 0);
    for (size_t t = 0; t < apd_convnet_num_tensors(net); t++) {
        apd_tensor_view v;
        apd_convnet_tensor(net, t, &v);
        if (strncmp(v.name, "norm", 4) == 0)
            for (size_t i = 0; i < v.size; i++) v.data[i] += apd__rng_range(&r, -0.3f, 0.3f);
    }
    size_t nx = n * c * h * h, E = apd_convnet_embed_dim(net);
    uint32_t lab[3] = {0, 3, 1};
    netctx ctx = {.net = net, .n = n, .lab = lab};
    ctx.x = tu_rand(nx, &r, -1, 1);
    ctx.R = tu_rand(n * E, &r, -1, 1);
    ctx.logits = tu_zeros(n * 4);
    ctx.emb = tu_zeros(n * E);
    ctx.probs = tu_zeros(n * 4);
    net_loss(&ctx);
    float *dl = tu_zeros(n * 4), *de = tu_zeros(n * E), *dx = tu_zeros(nx);
    apd_xent_backward(dl, ctx.probs, lab, 1.0f, n, 4);
    for (size_t i = 0; i < n * E; i++) de[i] = 0.1f * ctx.R[i];
    apd_convnet_zero_grad(net);
    ck_assert_int_eq(apd_convnet_backward(net, dx, dl, de, n, APD_NN_PARAM_GRADS), APD_OK);
    size_t np = apd_convnet_num_params(net);
    float *g = malloc(np * 4);
    memcpy(g, apd_convnet_grads(net), np * 4);
    char what[64];
    double worst = net_fd(&ctx, norm ? "dx (instnorm)" : "dx (no norm)", ctx.x, nx, dx, 1, 1e-3f);
    for (size_t t = 0; t < apd_convnet_num_tensors(net); t++) {
        apd_tensor_view v;
        apd_convnet_tensor(net, t, &v);
        snprintf(what, sizeof what, "%s", v.name);
        size_t stride = v.size > 200 ? v.size / 97 : 1;
        double e = net_fd(&ctx, what, v.data, v.size, g + (v.data - apd_convnet_params(net)), stride,
                           1e-3f);
        /* conv biases under instance norm have an exactly-zero true gradient: numerically
         * both sides are round-off, so only the absolute size is checked there. */
        if (norm && strstr(v.name, "conv") && strstr(v.name, "bias")) {
            double m = tu_max_absval(g + (v.data - apd_convnet_params(net)), v.size);
            printf("   (conv bias under norm: max |grad| %.2e)\n", m);
            ck_assert_double_le(m, 1e-4);
            continue;
        }
        if (e > worst) worst = e;
    }
    /* ReLU kinks can make a few FD entries wrong; with small eps and these inputs none do. */
    ck_assert_double_le(worst, 5e-2);
    free(g); free(dl); free(de); free(dx);
    free(ctx.x); free(ctx.R); free(ctx.logits); free(ctx.emb); free(ctx.probs);
    apd_convnet_free(net);
}

START_TEST(gradcheck_convnet)
{
    gradcheck_net(APD_NORM_NONE, 1, 8, NULL);
    gradcheck_net(APD_NORM_INSTANCE, 3, 8, NULL);
    apd_pool *pool;
    ck_assert_int_eq(apd_pool_create(&pool, 2), APD_OK);
    gradcheck_net(APD_NORM_INSTANCE, 2, 8, pool);
    apd_pool_free(pool);
}
END_TEST

START_TEST(convnet_fused_vs_ref)
{
    apd_pool *pool;
    ck_assert_int_eq(apd_pool_create(&pool, 2), APD_OK);
    struct { uint32_t c, h, width, depth; apd_norm norm; size_t n; apd_pool *p; } cs[] = {
        {3, 32, 128, 3, APD_NORM_INSTANCE, 3, NULL},
        {1, 28, 128, 3, APD_NORM_INSTANCE, 5, pool},
        {3, 16, 16, 2, APD_NORM_NONE, 7, pool},
        {3, 32, 32, 3, APD_NORM_INSTANCE, 9, pool}, /* conv3 groups images per GEMM */
        {3, 32, 32, 3, APD_NORM_INSTANCE, 21, pool}, /* uneven slices, partial conv3 groups */
        {1, 28, 16, 3, APD_NORM_NONE, 16, NULL},
    };
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        apd_convnet *net = make_net(cs[k].c, cs[k].h, cs[k].h, cs[k].width, cs[k].depth, cs[k].norm,
                                    10, 32, cs[k].p, 100 + k);
        apd__rng r;
        apd__rng_seed(&r, 5, k);
        size_t n = cs[k].n, nx = n * cs[k].c * cs[k].h * cs[k].h, E = apd_convnet_embed_dim(net);
        if (cs[k].h == 28 && cs[k].depth == 3) ck_assert_uint_eq(E, (size_t)cs[k].width * 16);
        float *x = tu_rand(nx, &r, -2, 2), *l = tu_zeros(n * 10), *lr = tu_zeros(n * 10);
        float *e = tu_zeros(n * E), *er = tu_zeros(n * E);
        ck_assert_int_eq(apd_convnet_forward(net, l, e, x, n), APD_OK);
        ck_assert_int_eq(apd_convnet_forward_ref(net, lr, er, x, n), APD_OK);
        double el = tu_err(l, lr, n * 10), ee = tu_err(e, er, n * E);
        printf("convnet fused vs ref c%u %ux%u w%u d%u norm%d n%zu: logits %.2e embed %.2e\n",
               cs[k].c, cs[k].h, cs[k].h, cs[k].width, cs[k].depth, (int)cs[k].norm, n, el, ee);
        ck_assert_double_le(el, 1e-4);
        ck_assert_double_le(ee, 1e-3);
        free(x); free(l); free(lr); free(e); free(er);
        apd_convnet_free(net);
    }
    apd_pool_free(pool);
}
END_TEST

/* Same seed + same thread count => bit-identical results; frozen backward == input part of
 * the full backward; param-grads flag off leaves the gradient arena untouched. */
START_TEST(convnet_reproducible)
{
    apd_pool *pool;
    ck_assert_int_eq(apd_pool_create(&pool, 2), APD_OK);
    size_t n = 11;
    apd_convnet *a = make_net(3, 32, 32, 32, 3, APD_NORM_INSTANCE, 10, 16, pool, 9);
    apd_convnet *b = make_net(3, 32, 32, 32, 3, APD_NORM_INSTANCE, 10, 16, pool, 9);
    ck_assert_mem_eq(apd_convnet_params(a), apd_convnet_params(b), apd_convnet_num_params(a) * 4);
    apd__rng r;
    apd__rng_seed(&r, 1, 0);
    size_t nx = n * 3 * 32 * 32;
    float *x = tu_rand(nx, &r, -2, 2), *dl = tu_rand(n * 10, &r, -1, 1);
    float *la = tu_zeros(n * 10), *lb = tu_zeros(n * 10), *dxa = tu_zeros(nx), *dxb = tu_zeros(nx);
    apd_convnet_forward(a, la, NULL, x, n);
    apd_convnet_forward(b, lb, NULL, x, n);
    ck_assert_mem_eq(la, lb, n * 10 * 4);
    apd_convnet_zero_grad(a);
    apd_convnet_zero_grad(b);
    apd_convnet_backward(a, dxa, dl, NULL, n, APD_NN_PARAM_GRADS);
    apd_convnet_backward(b, dxb, dl, NULL, n, 0);
    ck_assert_mem_eq(dxa, dxb, nx * 4);
    float *gb = apd_convnet_grads(b);
    for (size_t i = 0; i < apd_convnet_num_params(b); i++) ck_assert(gb[i] == 0.0f);
    apd_convnet_backward(b, NULL, dl, NULL, n, APD_NN_PARAM_GRADS);
    ck_assert_mem_eq(apd_convnet_grads(a), gb, apd_convnet_num_params(a) * 4);
    /* accumulation: a second backward doubles dx */
    apd_convnet_backward(a, dxa, dl, NULL, n, 0);
    for (size_t i = 0; i < nx; i++) ck_assert(fabsf(dxa[i] - 2 * dxb[i]) <= 1e-6f * (1 + fabsf(dxb[i])));
    /* single thread vs 2 threads: equal up to rounding */
    apd_convnet *s = make_net(3, 32, 32, 32, 3, APD_NORM_INSTANCE, 10, 16, NULL, 9);
    float *ls = tu_zeros(n * 10);
    apd_convnet_forward(s, ls, NULL, x, n);
    double e = tu_err(ls, la, n * 10);
    printf("1 vs 2 threads: logits %.2e\n", e);
    ck_assert_double_le(e, 1e-5);
    /* fewer images than threads (n = 1, 2 threads: thread 0 has an empty slice) */
    apd_convnet_zero_grad(a);
    apd_convnet_zero_grad(s);
    apd_convnet_forward(a, la, NULL, x, 1);
    apd_convnet_forward(s, ls, NULL, x, 1);
    apd_convnet_backward(a, NULL, dl, NULL, 1, APD_NN_PARAM_GRADS);
    apd_convnet_backward(s, NULL, dl, NULL, 1, APD_NN_PARAM_GRADS);
    double eg = tu_err(apd_convnet_grads(a), apd_convnet_grads(s), apd_convnet_num_params(s));
    printf("n=1 with 2 threads vs 1 thread: grads %.2e\n", eg);
    ck_assert_double_le(eg, 1e-4);
    ck_assert_int_eq(apd_convnet_forward(s, ls, NULL, x, 17), APD_EINVAL);
    ck_assert_int_eq(apd_convnet_backward(s, NULL, dl, NULL, 3, 0), APD_EINVAL);
    free(x); free(dl); free(la); free(lb); free(dxa); free(dxb); free(ls);
    apd_convnet_free(a); apd_convnet_free(b); apd_convnet_free(s);
    apd_pool_free(pool);
}
END_TEST

/* The depth rule, the memory plan, chunked inference and micro-batched gradients (what the
 * distillation and evaluation code use at 64 and 128 px to stay inside the activation budget). */
START_TEST(convnet_depth_plan_chunks)
{
    static const uint32_t side[] = {8, 28, 32, 48, 64, 96, 128, 256, 4096}, want[] = {3, 3, 3, 4, 4, 5, 5, 6, 8};
    for (size_t i = 0; i < sizeof side / sizeof side[0]; i++)
        ck_assert_uint_eq(apd_convnet_default_depth(side[i], side[i]), want[i]);
    ck_assert_uint_eq(apd_convnet_default_depth(32, 128), 5); /* the larger side decides */

    /* memory plan: fixed + max_batch * per_image == what create allocates */
    apd_pool *pool;
    ck_assert_int_eq(apd_pool_create(&pool, 2), APD_OK);
    static const uint32_t px[] = {32, 64, 128};
    size_t per_px[3];
    for (size_t i = 0; i < 3; i++) {
        apd_convnet_opts cfg;
        apd_convnet_opts_default(&cfg, 3, px[i], px[i], 10);
        cfg.pool = pool;
        size_t fixed, per;
        ck_assert_int_eq(apd_convnet_plan_bytes(&cfg, &fixed, &per), APD_OK);
        cfg.max_batch = 3;
        apd_convnet *net;
        ck_assert_int_eq(apd_convnet_create(&net, &cfg), APD_OK);
        ck_assert_uint_eq(apd_convnet_memory_bytes(net), fixed + 3 * per);
        ck_assert_uint_eq(apd_convnet_embed_dim(net), 2048); /* 128 x 4 x 4 at D3/D4/D5 */
        uint32_t mb = apd_convnet_batch_for_budget(&cfg, APD_CONVNET_ACT_BUDGET, 256);
        printf("ConvNetD%u at %u px: %.1f MB fixed, %.2f MB activations per image; batch 256 -> %u per pass "
               "(budget %zu MB)\n", cfg.depth, px[i], fixed / 1048576.0, per / 1048576.0, mb,
               (size_t)(APD_CONVNET_ACT_BUDGET >> 20));
        ck_assert_uint_ge(mb, 1);
        ck_assert_uint_le((size_t)mb * per, APD_CONVNET_ACT_BUDGET);
        ck_assert(mb == 256 || (size_t)(mb + 1) * per > APD_CONVNET_ACT_BUDGET);
        per_px[i] = per;
        apd_convnet_free(net);
    }
    /* activations grow with the pixels (x4 per doubling of the side, less the deeper tail) */
    ck_assert_uint_gt(per_px[1], 3 * per_px[0]);
    ck_assert_uint_gt(per_px[2], 3 * per_px[1]);
    /* 32 px: a batch of 256 is one pass (so 32 px results do not change) */
    apd_convnet_opts c32;
    apd_convnet_opts_default(&c32, 3, 32, 32, 10);
    c32.pool = pool;
    ck_assert_uint_eq(apd_convnet_batch_for_budget(&c32, APD_CONVNET_ACT_BUDGET, 256), 256);
    c32.depth = 9;
    ck_assert_uint_eq(apd_convnet_batch_for_budget(&c32, APD_CONVNET_ACT_BUDGET, 256), 0);

    /* chunked inference == one forward; backward refused after it */
    const size_t n = 11, K = 10, nx = n * 3 * 32 * 32;
    apd_convnet *big = make_net(3, 32, 32, 16, 3, APD_NORM_INSTANCE, 10, 16, pool, 21);
    apd_convnet *small = make_net(3, 32, 32, 16, 3, APD_NORM_INSTANCE, 10, 4, pool, 21);
    apd__rng r;
    apd__rng_seed(&r, 2, 0);
    float *x = tu_rand(nx, &r, -2, 2), *lb = tu_zeros(n * K), *ls = tu_zeros(n * K);
    size_t E = apd_convnet_embed_dim(big);
    float *eb = tu_zeros(n * E), *es = tu_zeros(n * E);
    ck_assert_int_eq(apd_convnet_forward(big, lb, eb, x, n), APD_OK);
    ck_assert_int_eq(apd_convnet_forward_nograd(small, ls, es, x, n), APD_OK);
    double el = tu_err(ls, lb, n * K), ee = tu_err(es, eb, n * E);
    printf("forward_nograd in chunks of 4 vs one forward of 11: logits %.2e embed %.2e\n", el, ee);
    ck_assert_double_le(el, 1e-5);
    ck_assert_double_le(ee, 1e-5);
    ck_assert_int_eq(apd_convnet_backward(small, NULL, ls, NULL, 3, APD_NN_PARAM_GRADS), APD_EBADSTATE);

    /* micro-batched gradients: passes of 4+4+3 with dloss m/n == the batch of 11 */
    uint32_t lab[11];
    for (size_t i = 0; i < n; i++) lab[i] = (uint32_t)(i * 7 % K);
    float *pr = tu_zeros(n * K), *dl = tu_zeros(n * K), loss;
    apd_xent_forward(&loss, pr, lb, lab, n, K);
    apd_xent_backward(dl, pr, lab, 1.0f, n, K);
    apd_convnet_zero_grad(big);
    ck_assert_int_eq(apd_convnet_backward(big, NULL, dl, NULL, n, APD_NN_PARAM_GRADS), APD_OK);
    apd_convnet_zero_grad(small);
    memset(dl, 0, n * K * 4);
    for (size_t m0 = 0; m0 < n; m0 += 4) {
        size_t m = n - m0 < 4 ? n - m0 : 4;
        ck_assert_int_eq(apd_convnet_forward(small, ls + m0 * K, NULL, x + m0 * 3 * 32 * 32, m), APD_OK);
        apd_xent_forward(&loss, pr + m0 * K, ls + m0 * K, lab + m0, m, K);
        apd_xent_backward(dl + m0 * K, pr + m0 * K, lab + m0, (float)m / (float)n, m, K);
        ck_assert_int_eq(apd_convnet_backward(small, NULL, dl + m0 * K, NULL, m, APD_NN_PARAM_GRADS), APD_OK);
    }
    double eg = tu_err(apd_convnet_grads(small), apd_convnet_grads(big), apd_convnet_num_params(big));
    printf("gradients in passes of 4 vs one batch of 11: %.2e\n", eg);
    ck_assert_double_le(eg, 1e-4);
    free(x); free(lb); free(ls); free(eb); free(es); free(pr); free(dl);
    apd_convnet_free(big);
    apd_convnet_free(small);
    apd_pool_free(pool);
}
END_TEST

START_TEST(sgd_semantics)
{
    /* hand-computed torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01) */
    float w[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f};
    apd_sgd *o;
    ck_assert_int_eq(apd_sgd_create(&o, 2, 0.1f, 0.9f, 0.01f), APD_OK);
    apd_sgd_step(o, w, g); /* v = g + wd w = 0.51, 0.23; w = 0.949, -2.023 */
    ck_assert_double_eq_tol(w[0], 0.949, 1e-6);
    ck_assert_double_eq_tol(w[1], -2.023, 1e-6);
    apd_sgd_step(o, w, g); /* v = 0.9*0.51 + 0.5 + 0.00949 = 0.96849; w = 0.949 - 0.096849 */
    ck_assert_double_eq_tol(w[0], 0.949 - 0.096849, 1e-6);
    apd_sgd_reset(o);
    float w2 = w[0];
    apd_sgd_step(o, w, g);
    ck_assert_double_eq_tol(w[0], w2 - 0.1 * (0.5 + 0.01 * w2), 1e-6);
    apd_sgd_free(o);
    /* apd_sgd_update on caller-owned state (the palette net and the DM pixels use it):
     * no weight decay: v = g, then v = mu v + g; w -= lr v */
    float w3[2] = {1.0f, -2.0f}, v3[2] = {7.0f, 7.0f};
    apd_sgd_update(w3, v3, g, 2, 0.1f, 0.5f, 0.0f, 1);
    ck_assert(v3[0] == 0.5f && v3[1] == 0.25f); /* first step ignores the old buffer */
    ck_assert_double_eq_tol(w3[0], 0.95, 1e-7);
    apd_sgd_update(w3, v3, g, 2, 0.1f, 0.5f, 0.0f, 0);
    ck_assert_double_eq_tol(v3[0], 0.75, 1e-7); /* 0.5*0.5 + 0.5 */
    ck_assert_double_eq_tol(w3[0], 0.95 - 0.075, 1e-7);
    /* no momentum buffer: plain (weight-decayed) gradient step */
    float w4[2] = {1.0f, -2.0f};
    apd_sgd_update(w4, NULL, g, 2, 0.1f, 0.0f, 0.01f, 1);
    ck_assert_double_eq_tol(w4[0], 1.0 - 0.1 * 0.51, 1e-7);
    ck_assert_double_eq_tol(w4[1], -2.0 - 0.1 * 0.23, 1e-7);
    /* apd_sgd_step is apd_sgd_update with the handle's buffer: bit-identical over 3 steps */
    {
        enum { N = 1000 };
        apd__rng r;
        apd__rng_seed(&r, 5, 0);
        float *wa = tu_rand(N, &r, -1, 1), *gg = tu_rand(N, &r, -1, 1), *wb = tu_zeros(N), *vb = tu_zeros(N);
        memcpy(wb, wa, N * sizeof(float));
        ck_assert_int_eq(apd_sgd_create(&o, N, 0.05f, 0.9f, 5e-4f), APD_OK);
        for (int t = 0; t < 3; t++) {
            apd_sgd_step(o, wa, gg);
            apd_sgd_update(wb, vb, gg, N, 0.05f, 0.9f, 5e-4f, t == 0);
        }
        double e = tu_err(wa, wb, N);
        printf("sgd: apd_sgd_step vs apd_sgd_update max err %g\n", e);
        ck_assert(memcmp(wa, wb, N * sizeof(float)) == 0);
        apd_sgd_free(o);
        free(wa); free(gg); free(wb); free(vb);
    }
    uint32_t ms[1] = {501};
    ck_assert_double_eq_tol(apd_lr_step(0.01f, 500, ms, 1, 0.1f), 0.01, 1e-9);
    ck_assert_double_eq_tol(apd_lr_step(0.01f, 501, ms, 1, 0.1f), 0.001, 1e-9);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_ops");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, conv_vs_ref);
    tcase_add_test(tc, gradcheck_ops);
    tcase_add_test(tc, gradcheck_convnet);
    tcase_add_test(tc, convnet_fused_vs_ref);
    tcase_add_test(tc, convnet_reproducible);
    tcase_add_test(tc, convnet_depth_plan_chunks);
    tcase_add_test(tc, sgd_semantics);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
