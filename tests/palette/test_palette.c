/* test_palette.c: the palette network, its colour losses, the hard quantization, the SGD
 * and the budget rules.
 *
 * Golden tensors come from tests/palette/gen_golden.py (PyTorch, float64, written as f32;
 * file format in that script). Errors are reported as max|a - b| / max(max|b|, 1e-6)
 * (relative to the tensor's scale) and printed; targets: forward <= 1e-4, backward <= 1e-3.
 * Finite differences check the same gradients independently of PyTorch.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/budget.h"
#include "apd/palette.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "distill/palette_internal.h"

#define FWD_TOL 1e-4
#define BWD_TOL 1e-3

/* ---- golden file reader -------------------------------------------------------------------- */

typedef struct {
    char name[64];
    uint32_t dtype, ndim, dims[8];
    size_t n;
    float *f;
    int32_t *i;
} gtensor;

typedef struct {
    uint32_t n;
    gtensor t[64];
} gfile;

static void gfile_load(gfile *g, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/palette/golden/%s", APD_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char magic[4];
    uint32_t ver, n;
    ck_assert(fread(magic, 1, 4, f) == 4 && memcmp(magic, "APDG", 4) == 0);
    ck_assert(fread(&ver, 4, 1, f) == 1 && ver == 1);
    ck_assert(fread(&n, 4, 1, f) == 1 && n <= 64);
    memset(g, 0, sizeof *g);
    g->n = n;
    for (uint32_t k = 0; k < n; k++) {
        gtensor *t = &g->t[k];
        uint32_t len;
        ck_assert(fread(&len, 4, 1, f) == 1 && len < sizeof t->name);
        ck_assert(fread(t->name, 1, len, f) == len);
        ck_assert(fread(&t->dtype, 4, 1, f) == 1 && fread(&t->ndim, 4, 1, f) == 1 && t->ndim <= 8);
        ck_assert(fread(t->dims, 4, t->ndim, f) == t->ndim);
        t->n = 1;
        for (uint32_t d = 0; d < t->ndim; d++) t->n *= t->dims[d];
        if (t->dtype == 0) {
            t->f = malloc(t->n * sizeof(float) + 1);
            ck_assert(fread(t->f, sizeof(float), t->n, f) == t->n);
        } else {
            t->i = malloc(t->n * sizeof(int32_t) + 1);
            ck_assert(fread(t->i, sizeof(int32_t), t->n, f) == t->n);
        }
    }
    fclose(f);
}

static void gfile_free(gfile *g)
{
    for (uint32_t k = 0; k < g->n; k++) {
        free(g->t[k].f);
        free(g->t[k].i);
    }
}

static const gtensor *gget(const gfile *g, const char *name)
{
    for (uint32_t k = 0; k < g->n; k++)
        if (strcmp(g->t[k].name, name) == 0) return &g->t[k];
    ck_abort_msg("golden tensor %s missing", name);
    return NULL;
}

/* The public read-only view of the last forward on ws. */
static apd_palette_ws_view wsv(const apd_palette_ws *ws)
{
    apd_palette_ws_view v;
    ck_assert_int_eq(apd_palette_ws_get_view(ws, &v), APD_OK);
    ck_assert_uint_gt(v.b, 0);
    return v;
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double md = 0.0, mb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = d; /* NaN propagates */
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb > 1e-6 ? mb : 1e-6);
}

static double worst_fwd, worst_bwd;

static void check_close(const char *file, const char *what, const float *a, const float *b, size_t n, double tol)
{
    double e = rel_err(a, b, n);
    printf("  %-10s %-14s max rel err %.3g\n", file, what, e);
    double *w = tol <= FWD_TOL ? &worst_fwd : &worst_bwd;
    if (!(e <= *w)) *w = e;
    ck_assert_msg(e <= tol, "%s %s: rel err %g > %g", file, what, e, tol);
}

/* A case: dims, net with golden weights, a workspace, and the forward done. */
typedef struct {
    gfile g;
    uint32_t b, c, h, w, k, hidden, s, p;
    float t, scale;
    apd_palette_net net;
    apd_palette_ws *ws;
    const float *x;
} gcase;

static void case_open(gcase *cs, const char *file)
{
    memset(cs, 0, sizeof *cs);
    gfile_load(&cs->g, file);
    const int32_t *d = gget(&cs->g, "dims")->i;
    cs->b = d[0]; cs->c = d[1]; cs->h = d[2]; cs->w = d[3]; cs->k = d[4]; cs->hidden = d[5]; cs->s = d[6];
    cs->p = cs->h * cs->w;
    cs->t = gget(&cs->g, "scalars")->f[0];
    cs->scale = gget(&cs->g, "scalars")->f[1];
    ck_assert_int_eq(apd_palette_net_init(&cs->net, cs->c, cs->k, cs->hidden, 7), APD_OK);
    memcpy(cs->net.w1, gget(&cs->g, "w1")->f, sizeof(float) * cs->hidden * cs->c);
    memcpy(cs->net.b1, gget(&cs->g, "b1")->f, sizeof(float) * cs->hidden);
    memcpy(cs->net.w2, gget(&cs->g, "w2")->f, sizeof(float) * cs->k * cs->hidden);
    ck_assert_int_eq(apd_palette_ws_create(&cs->ws, cs->c, cs->k, cs->hidden, cs->b, cs->p), APD_OK);
    cs->x = gget(&cs->g, "x")->f;
}

static void case_close(gcase *cs)
{
    apd_palette_ws_free(cs->ws);
    apd_palette_net_free(&cs->net);
    gfile_free(&cs->g);
}

static const char *const CASES[] = {"rgb.bin", "grey_t.bin", "rgb12.bin"};
#define N_CASES 3

/* ---- golden: forward ----------------------------------------------------------------------- */

START_TEST(golden_forward)
{
    gcase cs;
    case_open(&cs, CASES[_i]);
    size_t n = (size_t)cs.b * cs.c * cs.p;
    float *y = malloc(n * sizeof(float));
    apd_palette_fwd_opts fo = {cs.t, 0};
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, y, cs.x, cs.b, cs.h, cs.w, &fo), APD_OK);
    check_close(CASES[_i], "m", wsv(cs.ws).m, gget(&cs.g, "m")->f, (size_t)cs.b * cs.k * cs.p, FWD_TOL);
    check_close(CASES[_i], "soft palette", wsv(cs.ws).pal, gget(&cs.g, "pal")->f, (size_t)cs.b * cs.c * cs.k, FWD_TOL);
    check_close(CASES[_i], "y soft", y, gget(&cs.g, "y")->f, n, FWD_TOL);
    const int32_t *gi = gget(&cs.g, "idx")->i;
    for (size_t q = 0; q < (size_t)cs.b * cs.p; q++) ck_assert_int_eq(wsv(cs.ws).idx[q], gi[q]);
    check_close(CASES[_i], "hard palette", wsv(cs.ws).hpal, gget(&cs.g, "hpal")->f, (size_t)cs.b * cs.c * cs.k,
                FWD_TOL);
    /* straight-through: y is the hard quantization */
    fo.straight_through = 1;
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, y, cs.x, cs.b, cs.h, cs.w, &fo), APD_OK);
    check_close(CASES[_i], "y hard (ST)", y, gget(&cs.g, "y_hard")->f, n, FWD_TOL);
    free(y);
    case_close(&cs);
}
END_TEST

/* ---- golden: backward ---------------------------------------------------------------------- */

static void check_grads(gcase *cs, const char *what, const float *dx, const char *gdx, const char *gw1,
                        const char *gb1, const char *gw2, double tol)
{
    char lab[64];
    snprintf(lab, sizeof lab, "%s dW1", what);
    check_close("", lab, cs->net.dw1, gget(&cs->g, gw1)->f, (size_t)cs->hidden * cs->c, tol);
    snprintf(lab, sizeof lab, "%s db1", what);
    check_close("", lab, cs->net.db1, gget(&cs->g, gb1)->f, cs->hidden, tol);
    snprintf(lab, sizeof lab, "%s dW2", what);
    check_close("", lab, cs->net.dw2, gget(&cs->g, gw2)->f, (size_t)cs->k * cs->hidden, tol);
    if (dx && gdx) {
        snprintf(lab, sizeof lab, "%s dx", what);
        check_close("", lab, dx, gget(&cs->g, gdx)->f, (size_t)cs->b * cs->c * cs->p, tol);
    }
}

START_TEST(golden_backward)
{
    gcase cs;
    case_open(&cs, CASES[_i]);
    printf(" case %s\n", CASES[_i]);
    size_t n = (size_t)cs.b * cs.c * cs.p, nm = (size_t)cs.b * cs.k * cs.p;
    float *y = malloc(n * sizeof(float)), *dx = calloc(n, sizeof(float)), *sum = malloc(n * sizeof(float));
    apd_palette_fwd_opts fo = {cs.t, 0};
    const float *dy = gget(&cs.g, "dy")->f, *dm = gget(&cs.g, "dm")->f;
    for (int st = 0; st < 2; st++) {
        /* soft forward, then straight-through forward: backward is the soft one in both */
        fo.straight_through = st;
        ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, y, cs.x, cs.b, cs.h, cs.w, &fo), APD_OK);
        apd_palette_net_zero_grad(&cs.net);
        memset(dx, 0, n * sizeof(float));
        ck_assert_int_eq(apd_palette_backward(&cs.net, cs.ws, dx, dy, NULL, cs.x, cs.b, cs.h, cs.w, cs.scale), APD_OK);
        check_grads(&cs, st ? "task(ST)" : "task", dx, "task_dx", "task_dw1", "task_db1", "task_dw2", BWD_TOL);
    }
    fo.straight_through = 0;
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, y, cs.x, cs.b, cs.h, cs.w, &fo), APD_OK);
    /* dm path */
    apd_palette_net_zero_grad(&cs.net);
    memset(dx, 0, n * sizeof(float));
    ck_assert_int_eq(apd_palette_backward(&cs.net, cs.ws, dx, NULL, dm, cs.x, cs.b, cs.h, cs.w, 1.0f), APD_OK);
    check_grads(&cs, "dm", dx, "dm_dx", "dm_dw1", "dm_db1", "dm_dw2", BWD_TOL);
    /* mixed call: params = scale*task + dm, dx = task + dm (both, the s != 1 path) */
    apd_palette_net_zero_grad(&cs.net);
    memset(dx, 0, n * sizeof(float));
    ck_assert_int_eq(apd_palette_backward(&cs.net, cs.ws, dx, dy, dm, cs.x, cs.b, cs.h, cs.w, cs.scale), APD_OK);
    {
        size_t np = cs.net.n_params;
        float *exp = malloc(np * sizeof(float));
        const char *tn[3] = {"task_dw1", "task_db1", "task_dw2"}, *dn[3] = {"dm_dw1", "dm_db1", "dm_dw2"};
        size_t off = 0;
        for (int v = 0; v < 3; v++) {
            const gtensor *a = gget(&cs.g, tn[v]), *b = gget(&cs.g, dn[v]);
            for (size_t i = 0; i < a->n; i++) exp[off + i] = a->f[i] + b->f[i];
            off += a->n;
        }
        check_close("", "mixed params", cs.net.grads, exp, np, BWD_TOL);
        free(exp);
        const float *a = gget(&cs.g, "task_dx")->f, *b = gget(&cs.g, "dm_dx")->f;
        for (size_t i = 0; i < n; i++) sum[i] = a[i] + b[i];
        check_close("", "mixed dx", dx, sum, n, BWD_TOL);
    }
    (void)nm;
    free(y); free(dx); free(sum);
    case_close(&cs);
}
END_TEST

/* ---- golden: colour losses ----------------------------------------------------------------- */

START_TEST(golden_losses)
{
    gcase cs;
    case_open(&cs, CASES[_i]);
    printf(" case %s\n", CASES[_i]);
    size_t nm = (size_t)cs.b * cs.k * cs.p;
    float *dm = malloc(nm * sizeof(float));
    const float *m = gget(&cs.g, "m")->f; /* losses on PyTorch's m: isolates them from the net */
    uint8_t *tgt = malloc((size_t)cs.b * cs.p);
    uint32_t *smp = malloc((size_t)cs.b * cs.s * sizeof(uint32_t));
    const int32_t *gt = gget(&cs.g, "target")->i, *gs = gget(&cs.g, "sample")->i;
    for (size_t i = 0; i < (size_t)cs.b * cs.p; i++) tgt[i] = (uint8_t)gt[i];
    for (size_t i = 0; i < (size_t)cs.b * cs.s; i++) smp[i] = (uint32_t)gs[i];
    const char *names[4] = {"lm", "lb", "conf", "la"};
    for (int l = 0; l < 4; l++) {
        memset(dm, 0, nm * sizeof(float));
        double v = 0.0;
        switch (l) {
        case 0: v = apd_palette_loss_lm(dm, 1.0f, m, cs.b, cs.k, cs.p); break;
        case 1: v = apd_palette_loss_lb(dm, 1.0f, m, cs.b, cs.k, cs.p); break;
        case 2: v = apd_palette_loss_conf(dm, 1.0f, m, cs.b, cs.k, cs.p); break;
        case 3:
            ck_assert_int_eq(apd_palette_loss_la(&v, dm, 1.0f, m, tgt, smp, cs.b, cs.k, cs.p, cs.s), APD_OK);
            break;
        }
        char lab[64];
        float vf = (float)v;
        snprintf(lab, sizeof lab, "L%s value", names[l]);
        snprintf(lab + 32, 32, "loss_%s", names[l]);
        check_close("", lab, &vf, gget(&cs.g, lab + 32)->f, 1, FWD_TOL);
        snprintf(lab, sizeof lab, "L%s dL/dm", names[l]);
        snprintf(lab + 32, 32, "grad_%s", names[l]);
        check_close("", lab, dm, gget(&cs.g, lab + 32)->f, nm, BWD_TOL);
    }
    /* combined colour loss through the network (weights 1, 1, 3, 0.5) */
    float *y = malloc((size_t)cs.b * cs.c * cs.p * sizeof(float));
    apd_palette_fwd_opts fo = {cs.t, 0};
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, y, cs.x, cs.b, cs.h, cs.w, &fo), APD_OK);
    memset(dm, 0, nm * sizeof(float));
    double la = 0.0;
    double tot = apd_palette_loss_lm(dm, 1.0f, wsv(cs.ws).m, cs.b, cs.k, cs.p) +
                 apd_palette_loss_lb(dm, 1.0f, wsv(cs.ws).m, cs.b, cs.k, cs.p) +
                 0.5 * apd_palette_loss_conf(dm, 0.5f, wsv(cs.ws).m, cs.b, cs.k, cs.p);
    ck_assert_int_eq(apd_palette_loss_la(&la, dm, 3.0f, wsv(cs.ws).m, tgt, smp, cs.b, cs.k, cs.p, cs.s), APD_OK);
    tot += 3.0 * la;
    float tf = (float)tot;
    check_close("", "colour total", &tf, gget(&cs.g, "color_total")->f, 1, FWD_TOL);
    apd_palette_net_zero_grad(&cs.net);
    ck_assert_int_eq(apd_palette_backward(&cs.net, cs.ws, NULL, NULL, dm, cs.x, cs.b, cs.h, cs.w, 1.0f), APD_OK);
    check_grads(&cs, "colour", NULL, NULL, "color_dw1", "color_db1", "color_dw2", BWD_TOL);
    free(y); free(dm); free(tgt); free(smp);
    case_close(&cs);
}
END_TEST

/* ---- finite differences -------------------------------------------------------------------- */

/* L = sum(y * R) + Lb + 3 La + 0.5 Lconf, evaluated in float through the library. Lm is left
 * out: it is a max over pixels, and saturated probabilities (m ~ 1 at many pixels) make its
 * argmax switch under a perturbation (a non-smooth point); its gradient is checked against
 * PyTorch above, and chained through the same backward as the other terms. */
static double fd_loss(gcase *cs, float *y, const float *x, const float *r, const uint8_t *tgt, const uint32_t *smp,
                      float *dm)
{
    apd_palette_fwd_opts fo = {cs->t, 0};
    ck_assert_int_eq(apd_palette_forward(&cs->net, cs->ws, y, x, cs->b, cs->h, cs->w, &fo), APD_OK);
    size_t n = (size_t)cs->b * cs->c * cs->p;
    double s = 0.0, la = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    const float *m = wsv(cs->ws).m;
    s += apd_palette_loss_lb(dm, 1.0f, m, cs->b, cs->k, cs->p);
    s += 0.5 * apd_palette_loss_conf(dm, 0.5f, m, cs->b, cs->k, cs->p);
    ck_assert_int_eq(apd_palette_loss_la(&la, dm, 3.0f, m, tgt, smp, cs->b, cs->k, cs->p, cs->s), APD_OK);
    return s + 3.0 * la;
}

/* _i < N_CASES: the network of absolute colour; then the same cases with input IMAGE_NORM
 * (the gradient through the per-image mean and variance included). */
START_TEST(finite_differences)
{
    gcase cs;
    const int norm = _i >= N_CASES;
    const char *name = CASES[_i % N_CASES];
    case_open(&cs, name);
    if (norm) cs.net.input = APD_PALETTE_INPUT_IMAGE_NORM;
    size_t n = (size_t)cs.b * cs.c * cs.p, nm = (size_t)cs.b * cs.k * cs.p;
    float *y = malloc(n * sizeof(float)), *dx = calloc(n, sizeof(float)), *x = malloc(n * sizeof(float));
    float *dm = calloc(nm, sizeof(float));
    memcpy(x, cs.x, n * sizeof(float));
    const float *r = gget(&cs.g, "dy")->f;
    uint8_t *tgt = malloc((size_t)cs.b * cs.p);
    uint32_t *smp = malloc((size_t)cs.b * cs.s * sizeof(uint32_t));
    for (size_t i = 0; i < (size_t)cs.b * cs.p; i++) tgt[i] = (uint8_t)gget(&cs.g, "target")->i[i];
    for (size_t i = 0; i < (size_t)cs.b * cs.s; i++) smp[i] = (uint32_t)gget(&cs.g, "sample")->i[i];
    /* analytic */
    fd_loss(&cs, y, x, r, tgt, smp, dm);
    apd_palette_net_zero_grad(&cs.net);
    ck_assert_int_eq(apd_palette_backward(&cs.net, cs.ws, dx, r, dm, x, cs.b, cs.h, cs.w, 1.0f), APD_OK);
    float *ga = malloc(cs.net.n_params * sizeof(float));
    memcpy(ga, cs.net.grads, cs.net.n_params * sizeof(float));
    /* numeric, on a spread of parameters and pixels (central differences, eps 1e-3) */
    const float eps = 1e-3f;
    double maxd = 0.0, maxg = 0.0;
    int checked = 0;
    for (size_t i = 0; i < cs.net.n_params; i += 1 + cs.net.n_params / 40) {
        float keep = cs.net.params[i];
        cs.net.params[i] = keep + eps;
        double lp = fd_loss(&cs, y, x, r, tgt, smp, NULL);
        cs.net.params[i] = keep - eps;
        double lmn = fd_loss(&cs, y, x, r, tgt, smp, NULL);
        cs.net.params[i] = keep;
        double num = (lp - lmn) / (2.0 * eps);
        if (fabs(num - ga[i]) > maxd) maxd = fabs(num - ga[i]);
        if (fabs(ga[i]) > maxg) maxg = fabs(ga[i]);
        checked++;
    }
    double maxdx = 0.0, maxgx = 0.0;
    int skipped = 0;
    /* the network's input (x, or x normalised per image) and d(input)/dx at the pixel itself */
    float *in = malloc(n * sizeof(float)), istd[4];
    /* more pixels with the normalised input: its kink test exempts more */
    for (size_t i = 0; i < n; i += 1 + n / (norm ? 45 : 30)) {
        /* exempt pixels where a hidden unit's pre-activation is within the step of its ReLU
         * kink (the one-sided derivatives differ there) */
        size_t img = i / ((size_t)cs.c * cs.p), ch = (i / cs.p) % cs.c, q = i % cs.p;
        const float *xi = x + img * cs.c * cs.p;
        double slope = 1.0;
        if (norm) {
            apd_palette_image_norm(in, istd, xi, cs.c, cs.p);
            slope = 1.5 * istd[ch]; /* |du_q/dx_q| <= istd (1 - 1/P - u_q^2/P) */
        } else {
            memcpy(in, xi, (size_t)cs.c * cs.p * sizeof(float));
        }
        int kink = 0;
        for (uint32_t j = 0; j < cs.hidden && !kink; j++) {
            double a = cs.net.b1[j];
            for (uint32_t cc = 0; cc < cs.c; cc++) a += (double)cs.net.w1[j * cs.c + cc] * in[cc * cs.p + q];
            kink = fabs(a) <= 1.5 * eps * slope * fabs(cs.net.w1[j * cs.c + ch]);
        }
        if (kink) {
            skipped++;
            continue;
        }
        float keep = x[i];
        x[i] = keep + eps;
        double lp = fd_loss(&cs, y, x, r, tgt, smp, NULL);
        x[i] = keep - eps;
        double lmn = fd_loss(&cs, y, x, r, tgt, smp, NULL);
        x[i] = keep;
        double num = (lp - lmn) / (2.0 * eps);
        if (fabs(num - dx[i]) > maxdx) maxdx = fabs(num - dx[i]);
        if (fabs(dx[i]) > maxgx) maxgx = fabs(dx[i]);
        checked++;
    }
    double ep = maxd / maxg, ex = maxdx / maxgx;
    printf("  %-10s %-10s finite differences (%d entries, %d pixels at a ReLU kink skipped): params rel err "
           "%.3g, x rel err %.3g (max abs err %.3g of %.3g)\n",
           name, norm ? "image-norm" : "absolute", checked, skipped, ep, ex, maxdx, maxgx);
    ck_assert_msg(ep < 2e-2 && ex < 2e-2 && checked > (norm ? 50 : 60), "finite differences disagree: %g %g", ep, ex);
    free(y); free(dx); free(x); free(dm); free(tgt); free(smp); free(ga); free(in);
    case_close(&cs);
}
END_TEST

/* ---- per-image normalised input ----------------------------------------------------------- */

START_TEST(image_norm_input)
{
    gcase cs;
    case_open(&cs, CASES[0]);
    uint32_t b = cs.b, c = cs.c, k = cs.k, p = cs.p;
    size_t n = (size_t)b * c * p, nm = (size_t)b * k * p;
    /* the normalisation against a direct double computation */
    float *u = malloc(n * sizeof(float)), *istd = malloc((size_t)b * c * sizeof(float));
    double err_u = 0.0;
    for (uint32_t i = 0; i < b; i++) {
        apd_palette_image_norm(u + (size_t)i * c * p, istd + (size_t)i * c, cs.x + (size_t)i * c * p, c, p);
        for (uint32_t ch = 0; ch < c; ch++) {
            const float *xc = cs.x + ((size_t)i * c + ch) * p;
            double mu = 0.0, var = 0.0;
            for (uint32_t q = 0; q < p; q++) mu += xc[q] / (double)p;
            for (uint32_t q = 0; q < p; q++) var += (xc[q] - mu) * (xc[q] - mu) / (double)p;
            for (uint32_t q = 0; q < p; q++) {
                double e = fabs(u[((size_t)i * c + ch) * p + q] - (xc[q] - mu) / sqrt(var + APD_PALETTE_NORM_EPS));
                if (e > err_u) err_u = e;
            }
        }
    }
    /* IMAGE_NORM on x = ABSOLUTE on u for the assignments; the palettes are of x */
    float *m_abs = malloc(nm * sizeof(float)), *y = malloc(n * sizeof(float));
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, NULL, u, b, cs.h, cs.w, NULL), APD_OK);
    memcpy(m_abs, wsv(cs.ws).m, nm * sizeof(float));
    cs.net.input = APD_PALETTE_INPUT_IMAGE_NORM;
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, y, cs.x, b, cs.h, cs.w, NULL), APD_OK);
    const apd_palette_ws_view v = wsv(cs.ws);
    ck_assert_mem_eq(m_abs, v.m, nm * sizeof(float));
    double err_pal = 0.0, err_hp = 0.0;
    for (uint32_t i = 0; i < b; i++)
        for (uint32_t ch = 0; ch < c; ch++)
            for (uint32_t j = 0; j < k; j++) {
                double num = 0.0, den = 1e-8, hs = 0.0;
                uint32_t cnt = 0;
                for (uint32_t q = 0; q < p; q++) {
                    double mm = v.m[((size_t)i * k + j) * p + q], xv = cs.x[((size_t)i * c + ch) * p + q];
                    num += mm * xv;
                    den += mm;
                    if (v.idx[(size_t)i * p + q] == j) {
                        hs += xv;
                        cnt++;
                    }
                }
                double e = fabs(v.pal[((size_t)i * c + ch) * k + j] - num / den);
                if (e > err_pal) err_pal = e;
                e = fabs(v.hpal[((size_t)i * c + ch) * k + j] - (cnt ? hs / cnt : 0.0));
                if (e > err_hp) err_hp = e;
            }
    /* a per-channel shift of an image moves the absolute network's assignments, not these */
    float *xs = malloc(n * sizeof(float));
    for (size_t t = 0; t < n; t++) xs[t] = cs.x[t] + 0.75f * (float)((t / p) % c + 1);
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, NULL, xs, b, cs.h, cs.w, NULL), APD_OK);
    double dm_norm = 0.0;
    for (size_t t = 0; t < nm; t++) dm_norm = fmax(dm_norm, fabs(wsv(cs.ws).m[t] - m_abs[t]));
    cs.net.input = APD_PALETTE_INPUT_ABSOLUTE;
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, NULL, xs, b, cs.h, cs.w, NULL), APD_OK);
    float *m_shift = malloc(nm * sizeof(float));
    memcpy(m_shift, wsv(cs.ws).m, nm * sizeof(float));
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, NULL, cs.x, b, cs.h, cs.w, NULL), APD_OK);
    double dm_abs = 0.0;
    for (size_t t = 0; t < nm; t++) dm_abs = fmax(dm_abs, fabs(wsv(cs.ws).m[t] - m_shift[t]));
    /* backward must see the input of the forward it differentiates */
    cs.net.input = APD_PALETTE_INPUT_IMAGE_NORM;
    ck_assert_int_eq(apd_palette_backward(&cs.net, cs.ws, NULL, gget(&cs.g, "dy")->f, NULL, cs.x, b, cs.h, cs.w, 1.0f),
                     APD_ESHAPE);
    cs.net.input = (apd_palette_input)7;
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, NULL, cs.x, b, cs.h, cs.w, NULL), APD_EINVAL);
    printf("  image-norm input: u max err %.3g, soft palette (of x) max err %.3g, hard palette max err %.3g; "
           "max |dm| under a per-channel shift: image-norm %.3g, absolute %.3g\n",
           err_u, err_pal, err_hp, dm_norm, dm_abs);
    ck_assert(err_u < 1e-5 && err_pal < 1e-4 && err_hp < 1e-5);
    ck_assert_msg(dm_norm < 1e-4 && dm_abs > 1e-2, "shift: image-norm %g, absolute %g", dm_norm, dm_abs);
    free(u); free(istd); free(m_abs); free(y); free(xs); free(m_shift);
    case_close(&cs);
}
END_TEST

/* ---- hard quantization: hand-computable case ----------------------------------------------- */

START_TEST(hard_hand_case)
{
    /* C = 1, K = 2, hidden = 2: h = (relu(x), relu(-x)), z = h  =>  argmax 0 for x >= 0 (ties
     * go to the first index), 1 for x < 0. */
    apd_palette_net net;
    apd_palette_ws *ws;
    ck_assert_int_eq(apd_palette_net_init(&net, 1, 2, 2, 1), APD_OK);
    net.w1[0] = 1; net.w1[1] = -1; net.b1[0] = 0; net.b1[1] = 0;
    net.w2[0] = 1; net.w2[1] = 0; net.w2[2] = 0; net.w2[3] = 1;
    ck_assert_int_eq(apd_palette_ws_create(&ws, 1, 2, 2, 2, 6), APD_OK);
    const float mean = 0.5f, std = 0.25f;
    /* image 0: 0.2, 0.4, 0.6, -0.8, -0.4, 0.0  -> buckets {0.2,0.4,0.6,0.0} mean 0.3, {-0.8,-0.4} mean -0.6
     *   8-bit: (0.3*0.25 + 0.5)*255 = 146.625 -> 147; (-0.6*0.25 + 0.5)*255 = 89.25 -> 89
     * image 1: all positive -> one colour: mean of 1,2,3,1,2,3 = 2 -> (2*0.25+0.5)*255 = 255 */
    float x[12] = {0.2f, 0.4f, 0.6f, -0.8f, -0.4f, 0.0f, 1, 2, 3, 1, 2, 3};
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, 2, 2, 3, NULL), APD_OK);
    uint8_t pal[2], idx[6];
    uint32_t used;
    ck_assert_int_eq(apd_palette_hard(pal, idx, &used, ws, 0, &mean, &std), APD_OK);
    const uint8_t eidx[6] = {0, 0, 0, 1, 1, 0};
    for (int q = 0; q < 6; q++) ck_assert_uint_eq(idx[q], eidx[q]);
    ck_assert_uint_eq(used, 2);
    ck_assert_uint_eq(pal[0], 147);
    ck_assert_uint_eq(pal[1], 89);
    ck_assert_int_eq(apd_palette_hard(pal, idx, &used, ws, 1, &mean, &std), APD_OK);
    ck_assert_uint_eq(used, 1);
    ck_assert_uint_eq(pal[0], 255);
    ck_assert_uint_eq(pal[1], 0); /* empty bucket */
    ck_assert_int_eq(apd_palette_hard(pal, idx, &used, ws, 2, &mean, &std), APD_EINVAL);
    apd_palette_stats st;
    uint32_t cols[2];
    ck_assert_int_eq(apd_palette_stats_compute(&st, cols, ws, x), APD_OK);
    ck_assert_uint_eq(cols[0], 2);
    ck_assert_uint_eq(cols[1], 1);
    ck_assert_uint_eq(st.colors_min, 1);
    ck_assert_uint_eq(st.colors_max, 2);
    ck_assert(fabs(st.colors_median - 1.5) < 1e-12);
    /* hard MSE by hand: image 0 residuals (-.1,.1,.3,-.2,.2,-.3), image 1 (-1,0,1,-1,0,1) */
    double eh = (0.01 + 0.01 + 0.09 + 0.04 + 0.04 + 0.09 + 4.0) / 12.0;
    printf("  hard hand case: hard mse %.6f (expected %.6f), gap %.4f, colours %.1f\n", st.hard_mse, eh, st.gap_mse,
           st.colors_mean);
    ck_assert(fabs(st.hard_mse - eh) < 1e-6);
    /* decode of the 8-bit record gives back the palette colours */
    float dec[6];
    ck_assert_int_eq(apd_palette_hard(pal, idx, &used, ws, 0, &mean, &std), APD_OK);
    apd_palette_decode(dec, pal, idx, 1, 6, &mean, &std);
    ck_assert(fabs(dec[0] - ((147.0f / 255.0f - 0.5f) / 0.25f)) < 1e-6);
    ck_assert(fabs(dec[3] - ((89.0f / 255.0f - 0.5f) / 0.25f)) < 1e-6);
    apd_palette_ws_free(ws);
    apd_palette_net_free(&net);
}
END_TEST

/* Hard quantization of the golden RGB case against an independent bucket-mean computation. */
START_TEST(hard_bucket_means)
{
    gcase cs;
    case_open(&cs, "rgb12.bin");
    ck_assert_int_eq(apd_palette_forward(&cs.net, cs.ws, NULL, cs.x, cs.b, cs.h, cs.w, NULL), APD_OK);
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2023f, 0.1994f, 0.2010f};
    const int32_t *gi = gget(&cs.g, "idx")->i;
    uint8_t pal[256 * 3], idx[144];
    int maxdiff = 0;
    for (uint32_t i = 0; i < cs.b; i++) {
        uint32_t used;
        ck_assert_int_eq(apd_palette_hard(pal, idx, &used, cs.ws, i, mean, std), APD_OK);
        double sum[16][3] = {{0}};
        uint32_t cnt[16] = {0}, distinct = 0;
        for (uint32_t q = 0; q < cs.p; q++) {
            ck_assert_int_eq(idx[q], gi[i * cs.p + q]);
            cnt[idx[q]]++;
            for (uint32_t c = 0; c < 3; c++) sum[idx[q]][c] += cs.x[((size_t)i * 3 + c) * cs.p + q];
        }
        for (uint32_t k = 0; k < cs.k; k++) {
            distinct += cnt[k] > 0;
            for (uint32_t c = 0; c < 3; c++) {
                int e = 0;
                if (cnt[k]) {
                    double v = (sum[k][c] / cnt[k] * std[c] + mean[c]) * 255.0;
                    e = v < 0 ? 0 : v > 255 ? 255 : (int)floor(v + 0.5);
                }
                int d = abs(e - pal[k * 3 + c]);
                if (d > maxdiff) maxdiff = d;
            }
        }
        ck_assert_uint_eq(used, distinct);
    }
    printf("  hard bucket means: max 8-bit difference %d\n", maxdiff);
    ck_assert_int_le(maxdiff, 1); /* float vs double rounding at .5 boundaries */
    case_close(&cs);
}
END_TEST

/* ---- init, SGD, temperature, sampling, errors ---------------------------------------------- */

START_TEST(init_and_sgd)
{
    apd_palette_net a, b;
    ck_assert_int_eq(apd_palette_net_init(&a, 3, 64, 256, 42), APD_OK);
    ck_assert_int_eq(apd_palette_net_init(&b, 3, 64, 256, 42), APD_OK);
    ck_assert_uint_eq(a.n_params, 3 * 256 + 256 + 256 * 64); /* 17408 as in docs/method.md 2.2 */
    ck_assert_mem_eq(a.params, b.params, a.n_params * sizeof(float));
    float b1 = 1.0f / sqrtf(3.0f), b2 = 1.0f / 16.0f, mx1 = 0, mx2 = 0;
    for (size_t i = 0; i < 3 * 256 + 256; i++) mx1 = fmaxf(mx1, fabsf(a.params[i]));
    for (size_t i = 0; i < 64 * 256; i++) mx2 = fmaxf(mx2, fabsf(a.w2[i]));
    ck_assert(mx1 <= b1 && mx1 > 0.9f * b1);
    ck_assert(mx2 <= b2 && mx2 > 0.9f * b2);
    apd_palette_net_free(&b);
    ck_assert_int_eq(apd_palette_net_init(&b, 3, 64, 256, 43), APD_OK);
    ck_assert(memcmp(a.params, b.params, a.n_params * sizeof(float)) != 0);
    /* SGD, PyTorch semantics, by hand for one weight: w = 1, g = 2 then 1, lr .1, mu .5, wd .01
     * step 1: g' = 2 + .01 = 2.01, v = 2.01, w = 1 - .201 = .799
     * step 2: g' = 1 + .00799 = 1.00799, v = .5*2.01 + 1.00799 = 2.01299, w = .799 - .201299 = .597701 */
    apd_palette_sgd_opts sgd = {0.1f, 0.5f, 0.01f};
    a.params[0] = 1.0f;
    apd_palette_net_zero_grad(&a);
    a.grads[0] = 2.0f;
    apd_palette_net_step(&a, &sgd);
    ck_assert(fabsf(a.params[0] - 0.799f) < 1e-6f);
    a.grads[0] = 1.0f;
    apd_palette_net_step(&a, &sgd);
    ck_assert(fabsf(a.params[0] - 0.597701f) < 1e-6f);
    apd_palette_sgd_opts d;
    apd_palette_sgd_opts_default(&d);
    ck_assert(d.lr == 0.05f && d.momentum == 0.5f && d.weight_decay == 5e-4f);
    apd_palette_fwd_opts fd;
    apd_palette_fwd_opts_default(&fd);
    ck_assert(fd.temperature == 1.0f && fd.straight_through == 0);
    apd_palette_net_free(&a);
    apd_palette_net_free(&b);
    ck_assert_int_eq(apd_palette_net_init(&a, 3, 1, 256, 0), APD_EINVAL);
    ck_assert_int_eq(apd_palette_net_init(&a, 3, 257, 256, 0), APD_EINVAL);
    ck_assert_int_eq(apd_palette_net_init(&a, 0, 8, 256, 0), APD_EINVAL);
}
END_TEST

START_TEST(temperature_and_sample)
{
    ck_assert(fabsf(apd_palette_temperature(4.0f, 1.0f, 0, 100) - 4.0f) < 1e-6f);
    ck_assert(fabsf(apd_palette_temperature(4.0f, 1.0f, 50, 100) - 2.0f) < 1e-5f);
    ck_assert(apd_palette_temperature(4.0f, 1.0f, 100, 100) == 1.0f);
    ck_assert(apd_palette_temperature(4.0f, 1.0f, 7, 0) == 1.0f);
    uint32_t s1[3 * 307], s2[3 * 307];
    ck_assert_uint_eq(apd_palette_la_sample(s1, 3, 1024, 0.3f, 5, 9), 307);
    ck_assert_uint_eq(apd_palette_la_sample(s2, 3, 1024, 0.3f, 5, 9), 307);
    ck_assert_mem_eq(s1, s2, sizeof s1);
    for (int b = 0; b < 3; b++) {
        uint8_t seen[1024] = {0};
        for (int q = 0; q < 307; q++) {
            ck_assert_uint_lt(s1[b * 307 + q], 1024);
            ck_assert_uint_eq(seen[s1[b * 307 + q]], 0);
            seen[s1[b * 307 + q]] = 1;
        }
    }
    ck_assert_uint_eq(apd_palette_la_sample(s2, 3, 1024, 0.3f, 5, 10), 307);
    ck_assert(memcmp(s1, s2, sizeof s1) != 0);
    ck_assert_uint_eq(apd_palette_la_sample(s2, 1, 784, 0.3f, 5, 10), 235); /* int(0.3*784) */
}
END_TEST

START_TEST(shape_errors)
{
    apd_palette_net net;
    apd_palette_ws *ws;
    ck_assert_int_eq(apd_palette_net_init(&net, 3, 8, 16, 1), APD_OK);
    ck_assert_int_eq(apd_palette_ws_create(&ws, 3, 8, 16, 2, 16), APD_OK);
    float x[3 * 3 * 25] = {0}, dy[3 * 3 * 25] = {0};
    /* the view: empty before a forward, the forward's shape after one */
    apd_palette_ws_view wv;
    ck_assert_int_eq(apd_palette_ws_get_view(ws, &wv), APD_OK);
    ck_assert(wv.b == 0 && wv.c == 3 && wv.k == 8 && wv.m == NULL && wv.idx == NULL);
    ck_assert_int_eq(apd_palette_ws_get_view(NULL, &wv), APD_EINVAL);
    ck_assert_int_eq(apd_palette_ws_get_view(ws, NULL), APD_EINVAL);
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, 3, 4, 4, NULL), APD_ESHAPE);
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, 2, 5, 5, NULL), APD_ESHAPE);
    ck_assert_int_eq(apd_palette_backward(&net, ws, NULL, dy, NULL, x, 2, 4, 4, 1.0f), APD_ESHAPE);
    apd_palette_fwd_opts bad = {0.0f, 0};
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, 2, 4, 4, &bad), APD_EINVAL);
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, 2, 4, 4, NULL), APD_OK);
    ck_assert_int_eq(apd_palette_ws_get_view(ws, &wv), APD_OK);
    ck_assert(wv.b == 2 && wv.p == 16 && wv.m && wv.pal && wv.den && wv.hpal && wv.idx && wv.count);
    ck_assert_int_eq(apd_palette_backward(&net, ws, NULL, NULL, NULL, x, 2, 4, 4, 1.0f), APD_EINVAL);
    ck_assert_int_eq(apd_palette_backward(&net, ws, NULL, dy, NULL, x, 1, 4, 4, 1.0f), APD_ESHAPE);
    apd_palette_ws_free(ws);
    ck_assert_int_eq(apd_palette_ws_create(&ws, 1, 8, 16, 2, 16), APD_OK);
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, 2, 4, 4, NULL), APD_ESHAPE);
    apd_palette_ws_free(ws);
    apd_palette_net_free(&net);
    double v;
    float m[2 * 4] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    uint8_t t[4] = {0, 1, 2, 0};
    uint32_t s[2] = {0, 1};
    ck_assert_int_eq(apd_palette_loss_la(&v, NULL, 1.0f, m, t, s, 1, 2, 4, 2), APD_EINVAL); /* target 2 >= k */
    t[2] = 1;
    s[1] = 4;
    ck_assert_int_eq(apd_palette_loss_la(&v, NULL, 1.0f, m, t, s, 1, 2, 4, 2), APD_EINVAL); /* sample 4 >= p */
}
END_TEST

/* Warm-up on the soft reconstruction (remedy a): the soft path becomes meaningful. */
START_TEST(warmup_reduces_recon)
{
    const uint32_t b = 4, c = 3, h = 8, w = 8, k = 16, p = h * w;
    apd_palette_net net;
    apd_palette_ws *ws;
    ck_assert_int_eq(apd_palette_net_init(&net, c, k, 256, 3), APD_OK);
    ck_assert_int_eq(apd_palette_ws_create(&ws, c, k, 256, b, p), APD_OK);
    float *x = malloc(sizeof(float) * b * c * p);
    /* smooth colourful images */
    for (uint32_t i = 0; i < b; i++)
        for (uint32_t ch = 0; ch < c; ch++)
            for (uint32_t q = 0; q < p; q++)
                x[(i * c + ch) * p + q] = sinf(0.3f * (float)(q % w) * (float)(ch + 1) + (float)i) +
                                          cosf(0.5f * (float)(q / w) + (float)ch);
    const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
    apd_palette_color_opts cc;
    apd_palette_color_opts_default(&cc, c, mean, std);
    apd_palette_stats s0, s1;
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, b, h, w, NULL), APD_OK);
    ck_assert_int_eq(apd_palette_stats_compute(&s0, NULL, ws, x), APD_OK);
    apd_palette_sgd_opts sgd;
    apd_palette_sgd_opts_default(&sgd);
    apd_palette_losses L;
    ck_assert_int_eq(apd_palette_warmup(&net, ws, &L, x, b, h, w, 30, 1.0f, &cc, &sgd, 11), APD_OK);
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, b, h, w, NULL), APD_OK);
    ck_assert_int_eq(apd_palette_stats_compute(&s1, NULL, ws, x), APD_OK);
    printf("  warm-up 30 steps: soft mse %.3f -> %.3f, hard mse %.3f -> %.3f, colours %.1f -> %.1f, "
           "max-prob %.3f -> %.3f (last recon %.3f, Lm %.3f, Lb %.3f)\n",
           s0.soft_mse, s1.soft_mse, s0.hard_mse, s1.hard_mse, s0.colors_mean, s1.colors_mean, s0.max_prob_mean,
           s1.max_prob_mean, L.recon, L.lm, L.lb);
    ck_assert(s1.soft_mse < 0.7 * s0.soft_mse);
    for (size_t i = 0; i < net.n_params; i++) ck_assert(net.grads[i] == 0.0f);
    free(x);
    apd_palette_ws_free(ws);
    apd_palette_net_free(&net);
}
END_TEST



/* ---- k-means init (remedy kmeans-init) ----------------------------------------------------- */

/* Images whose pixels come from 8 well-separated colours (+-0.05 noise): the initialised
 * network must give every colour its own argmax bucket (the bucket means are the colours),
 * a near-hard softmax, and the same parameters for the same seed. */
START_TEST(kmeans_init_recovers_clusters)
{
    const uint32_t b = 6, c = 3, h = 16, w = 16, k = 8, p = h * w;
    float cols[8][3];
    for (uint32_t q = 0; q < k; q++)
        for (uint32_t ch = 0; ch < c; ch++) cols[q][ch] = ((q >> ch) & 1) ? 1.5f : -1.5f;
    float *x = malloc(sizeof(float) * b * c * p);
    uint8_t *truth = malloc((size_t)b * p);
    uint32_t st = 12345;
    for (uint32_t i = 0; i < b; i++)
        for (uint32_t q = 0; q < p; q++) {
            st = st * 1103515245u + 12345u;
            uint32_t cl = (st >> 16) % k;
            truth[i * p + q] = (uint8_t)cl;
            for (uint32_t ch = 0; ch < c; ch++) {
                st = st * 1103515245u + 12345u;
                float noise = ((float)((st >> 16) & 1023) / 1023.0f - 0.5f) * 0.1f;
                x[((size_t)i * c + ch) * p + q] = cols[cl][ch] + noise;
            }
        }
    apd_palette_net net, net2;
    apd_palette_ws *ws;
    ck_assert_int_eq(apd_palette_net_init(&net, c, k, 256, 1), APD_OK);
    ck_assert_int_eq(apd_palette_net_init(&net2, c, k, 256, 1), APD_OK);
    ck_assert_int_eq(apd_palette_ws_create(&ws, c, k, 256, b, p), APD_OK);
    apd_palette_kmeans_info ki;
    ck_assert_int_eq(apd_palette_net_init_kmeans(&net, &ki, x, b, h, w, 25, 7), APD_OK);
    ck_assert_int_eq(apd_palette_net_init_kmeans(&net2, NULL, x, b, h, w, 25, 7), APD_OK);
    ck_assert(memcmp(net.params, net2.params, net.n_params * sizeof(float)) == 0);
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, b, h, w, NULL), APD_OK);
    apd_palette_stats s;
    ck_assert_int_eq(apd_palette_stats_compute(&s, NULL, ws, x), APD_OK);
    /* bucket <-> true colour must be a bijection */
    int map[8], back[8];
    for (uint32_t q = 0; q < k; q++) map[q] = back[q] = -1;
    uint32_t bad = 0;
    const apd_palette_ws_view v = wsv(ws);
    for (uint32_t i = 0; i < b * p; i++) {
        uint32_t t = truth[i], a = v.idx[i];
        if (map[t] < 0 && back[a] < 0) {
            map[t] = (int)a;
            back[a] = (int)t;
        }
        if (map[t] != (int)a) bad++;
    }
    double maxerr = 0.0;
    for (uint32_t i = 0; i < b; i++)
        for (uint32_t t = 0; t < k; t++)
            for (uint32_t ch = 0; ch < c && map[t] >= 0; ch++) {
                double e = fabs(v.hpal[((size_t)i * c + ch) * k + (uint32_t)map[t]] - cols[t][ch]);
                if (e > maxerr) maxerr = e;
            }
    printf("  k-means init: %u samples, %u Lloyd steps, var %.5f, scale %.1f; misassigned %u of %u; "
           "bucket-mean max err %.4f; colours min %u; maxp %.4f; soft mse %.5f hard mse %.5f\n",
           ki.samples, ki.iters, ki.sse_per_channel, ki.scale, bad, b * p, maxerr, s.colors_min,
           s.max_prob_mean, s.soft_mse, s.hard_mse);
    ck_assert_uint_eq(bad, 0);
    ck_assert(maxerr < 0.02);
    ck_assert_uint_eq(s.colors_min, k);
    ck_assert(s.max_prob_mean > 0.999);
    ck_assert(s.soft_mse < 2e-3 && s.hard_mse < 2e-3);
    /* too few hidden units to carry C identities and a constant */
    apd_palette_net small;
    ck_assert_int_eq(apd_palette_net_init(&small, c, k, 3, 1), APD_OK);
    ck_assert_int_eq(apd_palette_net_init_kmeans(&small, NULL, x, b, h, w, 25, 7), APD_ESHAPE);
    ck_assert_int_eq(apd_palette_net_init_kmeans(&net, NULL, NULL, b, h, w, 25, 7), APD_EINVAL);
    apd_palette_net_free(&small);
    free(x);
    free(truth);
    apd_palette_ws_free(ws);
    apd_palette_net_free(&net);
    apd_palette_net_free(&net2);
}
END_TEST

/* ---- threads: bit-identical results for any pool size --------------------------------------- */

static void fill_images(float *x, uint32_t b, uint32_t c, uint32_t h, uint32_t w, uint32_t seed)
{
    uint32_t p = h * w;
    for (uint32_t i = 0; i < b; i++)
        for (uint32_t ch = 0; ch < c; ch++)
            for (uint32_t q = 0; q < p; q++)
                x[((size_t)i * c + ch) * p + q] = sinf(0.37f * (float)(q % w) * (float)(ch + 1) + (float)(i + seed)) +
                                                  cosf(0.23f * (float)(q / w) * (float)(seed % 5 + 1) + (float)ch);
}

START_TEST(threads_bit_identical)
{
    const uint32_t b = 19, c = 3, h = 10, w = 9, k = 16, p = h * w; /* 19: full groups + a partial one */
    size_t n = (size_t)b * c * p;
    float *x = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
    fill_images(x, b, c, h, w, 1);
    for (size_t i = 0; i < n; i++) dy[i] = 0.01f * sinf((float)i);
    const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
    float *ref_g = NULL, *ref_dx = NULL, *ref_y = NULL;
    double ref_la = 0.0;
    /* no pool last: apd_pool_create sets OpenBLAS to one thread process-wide, so the no-pool
     * run must match exactly too; before any pool exists, OpenBLAS's own threads may change
     * the last bits (documented in palette.h). */
    static const uint32_t order[4] = {1, 2, 3, 0};
    for (int in = 0; in < 2; in++) {
    for (int oi = 0; oi < 4; oi++) {
        uint32_t nt = order[oi];
        apd_pool *pool = NULL;
        if (nt > 0) ck_assert_int_eq(apd_pool_create(&pool, nt), APD_OK);
        apd_palette_net net;
        apd_palette_ws *ws;
        ck_assert_int_eq(apd_palette_net_init(&net, c, k, 256, 5), APD_OK);
        net.input = in ? APD_PALETTE_INPUT_IMAGE_NORM : APD_PALETTE_INPUT_ABSOLUTE;
        ck_assert_int_eq(apd_palette_ws_create(&ws, c, k, 256, b, p), APD_OK);
        ck_assert_int_eq(apd_palette_ws_set_pool(ws, pool), APD_OK);
        float *y = malloc(n * sizeof(float)), *dx = calloc(n, sizeof(float));
        apd_palette_net_zero_grad(&net);
        ck_assert_int_eq(apd_palette_forward(&net, ws, y, x, b, h, w, NULL), APD_OK);
        ck_assert_int_eq(apd_palette_backward(&net, ws, dx, dy, NULL, x, b, h, w, 0.1f), APD_OK);
        apd_palette_color_opts cc;
        apd_palette_color_opts_default(&cc, c, mean, std);
        apd_palette_losses L;
        ck_assert_int_eq(apd_palette_color_step(&net, ws, &L, x, b, h, w, &cc, 3, 4), APD_OK);
        ck_assert(L.la > 0.0);
        if (!ref_g) {
            ref_g = malloc(net.n_params * sizeof(float));
            memcpy(ref_g, net.grads, net.n_params * sizeof(float));
            ref_dx = dx;
            ref_y = y;
            ref_la = L.la;
            dx = NULL;
            y = NULL;
        } else {
            ck_assert_mem_eq(ref_g, net.grads, net.n_params * sizeof(float));
            ck_assert_mem_eq(ref_dx, dx, n * sizeof(float));
            ck_assert_mem_eq(ref_y, y, n * sizeof(float));
            ck_assert(ref_la == L.la);
        }
        free(y);
        free(dx);
        apd_palette_ws_free(ws);
        apd_palette_net_free(&net);
        apd_pool_free(pool);
    }
    printf("  threads (%s input): results bit-identical with pools of 1, 2, 3 threads and no pool (La %.4f)\n",
           in ? "image-norm" : "absolute", ref_la);
    free(ref_g); free(ref_dx); free(ref_y);
    ref_g = ref_dx = ref_y = NULL;
    }
    free(x); free(dy);
}
END_TEST

/* ---- colour step = its parts; median-cut targets ------------------------------------------ */

START_TEST(color_step_matches_parts)
{
    const uint32_t b = 5, c = 3, h = 12, w = 12, k = 8, p = h * w;
    size_t n = (size_t)b * c * p, nm = (size_t)b * k * p;
    float *x = malloc(n * sizeof(float)), *dm = calloc(nm, sizeof(float));
    fill_images(x, b, c, h, w, 2);
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2023f, 0.1994f, 0.2010f};
    apd_palette_net net;
    apd_palette_ws *ws;
    ck_assert_int_eq(apd_palette_net_init(&net, c, k, 256, 9), APD_OK);
    ck_assert_int_eq(apd_palette_ws_create(&ws, c, k, 256, b, p), APD_OK);
    apd_palette_color_opts cc;
    apd_palette_color_opts_default(&cc, c, mean, std);
    cc.w_conf = 0.25f;
    cc.fwd.temperature = 2.0f;
    apd_palette_losses L;
    apd_palette_net_zero_grad(&net);
    ck_assert_int_eq(apd_palette_color_step(&net, ws, &L, x, b, h, w, &cc, 77, 3), APD_OK);
    float *g1 = malloc(net.n_params * sizeof(float));
    memcpy(g1, net.grads, net.n_params * sizeof(float));
    /* by hand */
    uint8_t *tgt = malloc((size_t)b * p), img[3 * 144], pal[8 * 3], idx[144];
    ck_assert_int_eq(apd_palette_la_targets(tgt, x, b, c, h, w, k, mean, std), APD_OK);
    for (uint32_t i = 0; i < b; i++) {
        for (uint32_t t = 0; t < c * p; t++) {
            float v = (x[(size_t)i * c * p + t] * std[t / p] + mean[t / p]) * 255.0f;
            img[t] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)floorf(v + 0.5f);
        }
        uint32_t used;
        ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, c, h, w, k, 0, pal, idx, &used), APD_OK);
        ck_assert_mem_eq(idx, tgt + (size_t)i * p, p);
    }
    uint32_t s = (uint32_t)(0.3 * p), *smp = malloc((size_t)b * s * sizeof(uint32_t));
    ck_assert_uint_eq(apd_palette_la_sample(smp, b, p, 0.3f, 77, 3), s);
    apd_palette_fwd_opts fo = {2.0f, 0};
    ck_assert_int_eq(apd_palette_forward(&net, ws, NULL, x, b, h, w, &fo), APD_OK);
    double lm = apd_palette_loss_lm(dm, 1.0f, wsv(ws).m, b, k, p);
    double lb = apd_palette_loss_lb(dm, 1.0f, wsv(ws).m, b, k, p);
    double lc = apd_palette_loss_conf(dm, 0.25f, wsv(ws).m, b, k, p);
    double la;
    ck_assert_int_eq(apd_palette_loss_la(&la, dm, 3.0f, wsv(ws).m, tgt, smp, b, k, p, s), APD_OK);
    ck_assert(lm == L.lm && lb == L.lb && lc == L.conf && la == L.la);
    ck_assert(fabs(L.total - (lm + lb + 3 * la + 0.25 * lc)) < 1e-9);
    apd_palette_net_zero_grad(&net);
    ck_assert_int_eq(apd_palette_backward(&net, ws, NULL, NULL, dm, x, b, h, w, 1.0f), APD_OK);
    ck_assert_mem_eq(g1, net.grads, net.n_params * sizeof(float));
    printf("  colour step: Lm %.4f Lb %.4f La %.4f Lconf %.4f total %.4f (= its parts)\n", lm, lb, la, lc, L.total);
    free(g1); free(tgt); free(smp); free(x); free(dm);
    apd_palette_ws_free(ws);
    apd_palette_net_free(&net);
}
END_TEST

/* The vector exp used by the softmax, against libm in double. */
START_TEST(vector_exp)
{
    double worst = 0.0;
    for (int i = 0; i < 20000; i++) {
        float xs[APD__VW], ys[APD__VW];
        for (int l = 0; l < APD__VW; l++) xs[l] = -87.0f + 175.0f * (float)(i * APD__VW + l) / (20000.0f * APD__VW);
        apd__vst(ys, apd__vexp(apd__vld(xs)));
        for (int l = 0; l < APD__VW; l++) {
            double e = exp((double)xs[l]), r = fabs(ys[l] - e) / e;
            if (r > worst) worst = r;
        }
    }
    float lo[APD__VW], out[APD__VW];
    for (int l = 0; l < APD__VW; l++) lo[l] = -200.0f - (float)l;
    apd__vst(out, apd__vexp(apd__vld(lo)));
    printf("  vector exp on [-87, 88]: max rel err %.3g; exp(-200) -> %g\n", worst, out[0]);
    ck_assert(worst < 5e-7);
    for (int l = 0; l < APD__VW; l++) ck_assert(out[l] >= 0.0f && out[l] < 2e-38f);
}
END_TEST

/* ---- budget table -------------------------------------------------------------------------- */

START_TEST(budget_table)
{
    /* Hand-computed (bytes per image = K*C + ceil(H*W*bits/8), budget = IPC*C*H*W):
     *  32x32x3 (full 3072 B):
     *   K=2   bits 1:   6 +  128 =  134 -> 3072/134 = 22.9  -> IPC 1: 22,  IPC 10: 30720/134 = 229
     *   K=4   bits 2:  12 +  256 =  268 -> 11.46             -> 11,  114
     *   K=16  bits 4:  48 +  512 =  560 -> 5.49              -> 5,   54
     *   K=64  bits 6: 192 +  768 =  960 -> 3.2               -> 3,   32
     *   K=256 bits 8: 768 + 1024 = 1792 -> 1.71              -> 1,   17
     *   K=5   bits 3:  15 +  384 =  399 -> 7.70              -> 7,   76
     *  28x28x1 (full 784 B):
     *   K=2   bits 1:   2 +   98 =  100 -> 7.84              -> 7,   78
     *   K=16  bits 4:  16 +  392 =  408 -> 1.92              -> 1,   19
     *   K=128 bits 7: 128 +  686 =  814 -> 0.96              -> 1 (min, over budget), 9
     *   K=256 bits 8: 256 +  784 = 1040 -> 0.75              -> 1 (min, over budget), 7
     *  paper: IPC * 2^(8 - ceil(log2 K)): K=2 -> 128, 3..4 -> 64, 5..8 -> 32, 64 -> 4, 256 -> 1. */
    struct { uint32_t c, hw, k, ipc; uint64_t bpi, bits_ipc, paper; int over; } T[] = {
        {3, 32, 2, 1, 134, 22, 128, 0},    {3, 32, 2, 10, 134, 229, 1280, 0},
        {3, 32, 4, 1, 268, 11, 64, 0},     {3, 32, 4, 10, 268, 114, 640, 0},
        {3, 32, 16, 1, 560, 5, 16, 0},     {3, 32, 16, 10, 560, 54, 160, 0},
        {3, 32, 64, 1, 960, 3, 4, 0},      {3, 32, 64, 10, 960, 32, 40, 0},
        {3, 32, 256, 1, 1792, 1, 1, 0},    {3, 32, 256, 10, 1792, 17, 10, 0},
        {3, 32, 5, 10, 399, 76, 320, 0},   {1, 28, 2, 1, 100, 7, 128, 0},
        {1, 28, 2, 10, 100, 78, 1280, 0},  {1, 28, 16, 1, 408, 1, 16, 0},
        {1, 28, 16, 10, 408, 19, 160, 0},  {1, 28, 128, 1, 814, 1, 2, 1},
        {1, 28, 128, 10, 814, 9, 20, 0},   {1, 28, 256, 1, 1040, 1, 1, 1},
        {1, 28, 256, 10, 1040, 7, 10, 0},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        apd_budget bd;
        ck_assert_int_eq(apd_budget_compute(&bd, APD_BUDGET_BITS, T[i].ipc, T[i].k, T[i].c, T[i].hw, T[i].hw), APD_OK);
        ck_assert_uint_eq(bd.bytes_per_image, T[i].bpi);
        ck_assert_uint_eq(bd.images_per_class, T[i].bits_ipc);
        ck_assert_int_eq(bd.over_budget, T[i].over);
        ck_assert_uint_eq(bd.used_bytes, bd.images_per_class * bd.bytes_per_image);
        ck_assert_int_eq(apd_budget_compute(&bd, APD_BUDGET_PAPER, T[i].ipc, T[i].k, T[i].c, T[i].hw, T[i].hw), APD_OK);
        ck_assert_uint_eq(bd.images_per_class, T[i].paper);
        ck_assert_int_eq(apd_budget_compute(&bd, APD_BUDGET_IMAGES, T[i].ipc, T[i].k, T[i].c, T[i].hw, T[i].hw), APD_OK);
        ck_assert_uint_eq(bd.images_per_class, T[i].ipc);
    }
    /* the full table K = 2..256, IPC 10, both geometries: printed, and checked for the rule's
     * invariants (bits: used <= budget < used + one image unless clamped to 1) */
    printf("  budget, IPC 10: K  | 32x32x3 B/img bits paper | 28x28x1 B/img bits paper\n");
    for (uint32_t k = 2; k <= 256; k++) {
        apd_budget r3, r1, p3, p1;
        ck_assert_int_eq(apd_budget_compute(&r3, APD_BUDGET_BITS, 10, k, 3, 32, 32), APD_OK);
        ck_assert_int_eq(apd_budget_compute(&r1, APD_BUDGET_BITS, 10, k, 1, 28, 28), APD_OK);
        ck_assert_int_eq(apd_budget_compute(&p3, APD_BUDGET_PAPER, 10, k, 3, 32, 32), APD_OK);
        ck_assert_int_eq(apd_budget_compute(&p1, APD_BUDGET_PAPER, 10, k, 1, 28, 28), APD_OK);
        const apd_budget *rs[2] = {&r3, &r1};
        for (int j = 0; j < 2; j++) {
            const apd_budget *r = rs[j];
            uint32_t bits = 1;
            while ((1u << bits) < k) bits++;
            ck_assert_uint_eq(r->index_bits, bits);
            ck_assert_uint_eq(r->bytes_per_image, (uint64_t)k * r->c + ((uint64_t)r->h * r->w * bits + 7) / 8);
            ck_assert(r->used_bytes <= r->budget_bytes || r->images_per_class == 1);
            ck_assert(r->used_bytes + r->bytes_per_image > r->budget_bytes);
        }
        ck_assert_uint_eq(p3.images_per_class, 10u << (8 - r3.index_bits));
        if ((k & (k - 1)) == 0 || k == 2 || k == 3 || k == 5 || k == 100 || k == 255)
            printf("  %3u | %5llu %4llu %5llu | %5llu %4llu %5llu\n", k, (unsigned long long)r3.bytes_per_image,
                   (unsigned long long)r3.images_per_class, (unsigned long long)p3.images_per_class,
                   (unsigned long long)r1.bytes_per_image, (unsigned long long)r1.images_per_class,
                   (unsigned long long)p1.images_per_class);
    }
    apd_budget bd;
    ck_assert_int_eq(apd_budget_compute(&bd, APD_BUDGET_BITS, 10, 1, 3, 32, 32), APD_EINVAL);
    ck_assert_int_eq(apd_budget_compute(&bd, APD_BUDGET_BITS, 0, 64, 3, 32, 32), APD_EINVAL);
    ck_assert_int_eq(apd_budget_compute(&bd, APD_BUDGET_BITS, 10, 257, 3, 32, 32), APD_EINVAL);
    apd_budget_rule r;
    ck_assert_int_eq(apd_budget_rule_from_name("paper", &r), APD_OK);
    ck_assert_int_eq(r, APD_BUDGET_PAPER);
    ck_assert_int_eq(apd_budget_rule_from_name("bytez", &r), APD_EINVAL);
    ck_assert_str_eq(apd_budget_rule_name(APD_BUDGET_IMAGES), "images");
    char js[512];
    ck_assert_int_eq(apd_budget_compute(&bd, APD_BUDGET_BITS, 10, 64, 3, 32, 32), APD_OK);
    ck_assert_int_eq(apd_budget_json(&bd, js, sizeof js), APD_OK);
    ck_assert_str_eq(js, "{\"rule\":\"bits\",\"ipc\":10,\"k\":64,\"c\":3,\"h\":32,\"w\":32,\"index_bits\":6,"
                         "\"palette_bytes\":192,\"index_bytes\":768,\"bytes_per_image\":960,"
                         "\"full_image_bytes\":3072,\"budget_bytes\":30720,\"images_per_class\":32,"
                         "\"used_bytes\":30720,\"over_budget\":false}");
    ck_assert_int_eq(apd_budget_json(&bd, js, 20), APD_EBUFSIZE);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("palette");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, golden_forward, 0, N_CASES);
    tcase_add_loop_test(tc, golden_backward, 0, N_CASES);
    tcase_add_loop_test(tc, golden_losses, 0, N_CASES);
    tcase_add_loop_test(tc, finite_differences, 0, 2 * N_CASES);
    tcase_add_test(tc, image_norm_input);
    tcase_add_test(tc, hard_hand_case);
    tcase_add_test(tc, hard_bucket_means);
    tcase_add_test(tc, init_and_sgd);
    tcase_add_test(tc, temperature_and_sample);
    tcase_add_test(tc, shape_errors);
    tcase_add_test(tc, warmup_reduces_recon);
    tcase_add_test(tc, kmeans_init_recovers_clusters);
    tcase_add_test(tc, threads_bit_identical);
    tcase_add_test(tc, color_step_matches_parts);
    tcase_add_test(tc, vector_exp);
    tcase_add_test(tc, budget_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_set_fork_status(sr, CK_NOFORK); /* keep the printed max errors in order */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("palette: worst forward rel err %.3g (target %g), worst backward rel err %.3g (target %g)\n", worst_fwd,
           FWD_TOL, worst_bwd, BWD_TOL);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
