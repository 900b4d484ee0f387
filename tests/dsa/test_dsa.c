/* tests/dsa/test_dsa.c: DSA augmentation (include/apd/dsa.h) against PyTorch golden tensors
 * (tests/dsa/golden/, written by gen_golden.py), finite-difference checks of every backward,
 * and the determinism / ranges of the parameter draws. Prints max errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/dsa.h"
#include "common/internal.h"
#include "common/rng.h"

/* ---- golden files ------------------------------------------------------------------- */

typedef struct golden {
    uint32_t op, ac, n, c, h, w, ns, ch, cw;
    apd_dsa_sample samples[8];
    float *x, *y, *g, *dx;
} golden;

static int load_golden(const char *name, golden *gd)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/dsa/golden/%s.bin", APD_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    uint8_t hdr[48];
    ck_assert_int_eq(fread(hdr, 1, 48, f), 48);
    ck_assert_msg(memcmp(hdr, "APDDSAG1", 8) == 0, "%s: bad magic", path);
    ck_assert_uint_eq(apd__ld32(hdr + 8), 1);
    gd->op = apd__ld32(hdr + 12);
    gd->ac = apd__ld32(hdr + 16);
    gd->n = apd__ld32(hdr + 20);
    gd->c = apd__ld32(hdr + 24);
    gd->h = apd__ld32(hdr + 28);
    gd->w = apd__ld32(hdr + 32);
    gd->ns = apd__ld32(hdr + 36);
    gd->ch = apd__ld32(hdr + 40);
    gd->cw = apd__ld32(hdr + 44);
    ck_assert_uint_le(gd->ns, 8);
    for (uint32_t i = 0; i < gd->ns; i++) {
        float v[14];
        ck_assert_int_eq(fread(v, sizeof(float), 14, f), 14);
        apd_dsa_sample *s = &gd->samples[i];
        s->brightness = v[0];
        s->saturation = v[1];
        s->contrast = v[2];
        s->dy = (int32_t)v[3];
        s->dx = (int32_t)v[4];
        s->oy = (int32_t)v[5];
        s->ox = (int32_t)v[6];
        s->flip = (int32_t)v[7];
        memcpy(s->theta, v + 8, sizeof s->theta);
    }
    size_t cnt = (size_t)gd->n * gd->c * gd->h * gd->w;
    float **t[4] = {&gd->x, &gd->y, &gd->g, &gd->dx};
    for (int i = 0; i < 4; i++) {
        *t[i] = malloc(cnt * sizeof(float));
        ck_assert_ptr_nonnull(*t[i]);
        ck_assert_int_eq(fread(*t[i], sizeof(float), cnt, f), cnt);
    }
    fclose(f);
    return 0;
}

static void free_golden(golden *gd)
{
    free(gd->x);
    free(gd->y);
    free(gd->g);
    free(gd->dx);
}

/* max |a - b| and max |a - b| / (atol + |b|); returns 1 if every |a-b| <= atol + rtol |b| */
static int compare(const float *a, const float *b, size_t n, float atol, float rtol,
                   double *max_abs, double *max_rel)
{
    int ok = 1;
    *max_abs = 0;
    *max_rel = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        double r = d / (1e-6 + fabs(b[i]));
        if (d > *max_abs) *max_abs = d;
        if (r > *max_rel && fabs(b[i]) > 1e-2) *max_rel = r; /* rel. error of values >= 0.01 */
        if (!(d <= atol + rtol * fabs(b[i]))) {
            if (ok) fprintf(stderr, "  first mismatch at %zu: got %.7g want %.7g\n", i, a[i], b[i]);
            ok = 0;
        }
    }
    return ok;
}

static const char *const golden_names[] = {"color_c3",  "color_c1",   "crop",      "cutout",
                                           "cutout32",  "flip",       "scale_ac0", "rotate_ac0",
                                           "scale_ac1", "rotate_ac1", "rotate_shared",
                                           "color_shared", "crop64", "cutout128", "rotate128",
                                           "scale128_ac1"};
#define N_GOLDEN (sizeof golden_names / sizeof golden_names[0])

START_TEST(test_golden)
{
    const char *name = golden_names[_i];
    golden gd;
    load_golden(name, &gd);
    apd_dsa_params p = {.op = (apd_dsa_op)gd.op, .n_samples = gd.ns, .h = gd.h, .w = gd.w,
                        .cut_h = gd.ch, .cut_w = gd.cw, .align_corners = (int)gd.ac,
                        .samples = gd.samples};
    size_t cnt = (size_t)gd.n * gd.c * gd.h * gd.w;
    float *y = malloc(cnt * sizeof *y), *dx = calloc(cnt, sizeof *dx);
    ck_assert_ptr_nonnull(y);
    ck_assert_ptr_nonnull(dx);
    ck_assert_int_eq(apd_dsa_forward(y, gd.x, &p, gd.n, gd.c, gd.h, gd.w), APD_OK);
    ck_assert_int_eq(apd_dsa_backward(dx, gd.g, &p, gd.n, gd.c, gd.h, gd.w), APD_OK);
    double fa, fr, ba, br;
    /* The affine ops sample at grid coordinates computed in float32 on both sides; their
     * rounding (about side x 2^-24 pixels) times neighbouring pixel differences (up to 2
     * here) grows with the side: 1e-5 absolute up to 32 px, 4e-5 at 128 px. */
    float atol = gd.h > 32 || gd.w > 32 ? 4e-5f : 1e-5f;
    int okf = compare(y, gd.y, cnt, atol, 1e-4f, &fa, &fr);
    int okb = compare(dx, gd.dx, cnt, atol, 1e-3f, &ba, &br);
    printf("golden %-14s forward max abs %.3g rel %.3g | backward max abs %.3g rel %.3g\n", name,
           fa, fr, ba, br);
    ck_assert_msg(okf, "%s: forward differs from PyTorch (max abs %g)", name, fa);
    ck_assert_msg(okb, "%s: backward differs from PyTorch (max abs %g)", name, ba);
    /* backward accumulates: a second call doubles the gradient */
    ck_assert_int_eq(apd_dsa_backward(dx, gd.g, &p, gd.n, gd.c, gd.h, gd.w), APD_OK);
    for (size_t i = 0; i < cnt; i++) ck_assert_float_eq_tol(dx[i], 2.0f * gd.dx[i], 1e-4f);
    free(y);
    free(dx);
    free_golden(&gd);
}
END_TEST

/* ---- finite differences --------------------------------------------------------------- */

static double loss(const float *x, const float *g, const apd_dsa_params *p, float *y, uint32_t N,
                   uint32_t C, uint32_t H, uint32_t W)
{
    ck_assert_int_eq(apd_dsa_forward(y, x, p, N, C, H, W), APD_OK);
    double l = 0;
    for (size_t i = 0; i < (size_t)N * C * H * W; i++) l += (double)g[i] * y[i];
    return l;
}

START_TEST(test_finite_difference)
{
    const uint32_t N = 3, H = 9, W = 8;
    for (uint32_t C = 1; C <= 3; C += 2) {
        for (int op = APD_DSA_COLOR; op <= APD_DSA_ROTATE; op++) {
            for (int mode = 0; mode < 2; mode++) {
                for (int ac = 0; ac < 2; ac++) {
                    apd_dsa_opts cfg;
                    apd_dsa_opts_default(&cfg);
                    cfg.align_corners = ac;
                    apd_dsa_sample s[3];
                    apd_dsa_params p;
                    ck_assert_int_eq(apd_dsa_draw_op(&p, s, 3, &cfg, (apd_dsa_op)op,
                                                     (apd_dsa_mode)mode, 77 + op, 3, N, H, W),
                                     APD_OK);
                    size_t cnt = (size_t)N * C * H * W;
                    float *x = malloc(cnt * 4), *g = malloc(cnt * 4), *y = malloc(cnt * 4),
                          *dx = calloc(cnt, 4);
                    uint64_t st = 12345 + (uint64_t)op;
                    for (size_t i = 0; i < cnt; i++) {
                        st = apd__mix64(st);
                        x[i] = (float)((st >> 40) / 16777216.0) * 2.0f - 0.5f;
                        st = apd__mix64(st);
                        g[i] = (float)((st >> 40) / 16777216.0) * 2.0f - 1.0f;
                    }
                    ck_assert_int_eq(apd_dsa_backward(dx, g, &p, N, C, H, W), APD_OK);
                    /* every op is affine in x, so central differences are exact up to
                     * rounding: eps need not be small (and bilinear kinks do not matter for
                     * the image gradient). */
                    const float eps = 0.03f;
                    double max_abs = 0;
                    for (size_t i = 0; i < cnt; i++) {
                        float x0 = x[i];
                        x[i] = x0 + eps;
                        double lp = loss(x, g, &p, y, N, C, H, W);
                        x[i] = x0 - eps;
                        double lm = loss(x, g, &p, y, N, C, H, W);
                        x[i] = x0;
                        double fd = (lp - lm) / (2.0 * eps);
                        double d = fabs(fd - dx[i]);
                        if (d > max_abs) max_abs = d;
                        ck_assert_msg(d <= 2e-3 + 1e-3 * fabs(fd),
                                      "%s C=%u mode=%d ac=%d: d/dx[%zu] fd %g analytic %g",
                                      apd_dsa_op_name((apd_dsa_op)op), C, mode, ac, i, fd, dx[i]);
                    }
                    if (ac == 0 || op >= APD_DSA_SCALE)
                        printf("fd %-7s C=%u %-9s%s max abs err %.3g\n",
                               apd_dsa_op_name((apd_dsa_op)op), C,
                               mode ? "per-image" : "siamese", ac ? " ac=1" : "     ", max_abs);
                    free(x);
                    free(g);
                    free(y);
                    free(dx);
                }
            }
        }
    }
}
END_TEST

/* ---- draws ------------------------------------------------------------------------------ */

START_TEST(test_draw_determinism)
{
    apd_dsa_sample a[64], b[64];
    apd_dsa_params pa, pb;
    int differ = 0;
    for (uint64_t seed = 0; seed < 50; seed++) {
        memset(a, 0xAB, sizeof a);
        memset(b, 0xCD, sizeof b);
        ck_assert_int_eq(apd_dsa_draw(&pa, a, 64, NULL, APD_DSA_SIAMESE, seed, 9, 256, 32, 32), APD_OK);
        ck_assert_int_eq(apd_dsa_draw(&pb, b, 64, NULL, APD_DSA_SIAMESE, seed, 9, 10, 32, 32), APD_OK);
        /* Siamese: one parameter set, identical for a real batch of 256 and a synthetic batch of 10 */
        ck_assert_uint_eq(pa.n_samples, 1);
        ck_assert_int_eq(pa.op, pb.op);
        ck_assert_mem_eq(&a[0], &b[0], sizeof a[0]);
        ck_assert_int_eq(apd_dsa_draw(&pb, b, 64, NULL, APD_DSA_SIAMESE, seed, 10, 10, 32, 32), APD_OK);
        if (pa.op != pb.op || memcmp(&a[0], &b[0], sizeof a[0]) != 0) differ++;
        /* per-image: same seed -> same draws */
        ck_assert_int_eq(apd_dsa_draw(&pa, a, 64, NULL, APD_DSA_PER_IMAGE, seed, 1, 64, 32, 32), APD_OK);
        ck_assert_int_eq(apd_dsa_draw(&pb, b, 64, NULL, APD_DSA_PER_IMAGE, seed, 1, 64, 32, 32), APD_OK);
        ck_assert_uint_eq(pa.n_samples, 64);
        ck_assert_int_eq(pa.op, pb.op);
        ck_assert_mem_eq(a, b, sizeof a);
    }
    ck_assert_int_ge(differ, 40); /* another stream gives other draws */

    /* applying one Siamese draw to two batches that share an image gives identical outputs */
    apd_dsa_sample one;
    apd_dsa_params p;
    float img[3 * 32 * 32], batch[2 * 3 * 32 * 32], o1[3 * 32 * 32], o2[2 * 3 * 32 * 32];
    for (size_t i = 0; i < sizeof img / 4; i++) img[i] = (float)((i * 37) % 101) / 101.0f;
    memcpy(batch, img, sizeof img);
    for (size_t i = 0; i < sizeof img / 4; i++) batch[3 * 1024 + i] = 0.5f;
    for (uint64_t seed = 0; seed < 30; seed++) {
        ck_assert_int_eq(apd_dsa_draw(&p, &one, 1, NULL, APD_DSA_SIAMESE, seed, 0, 2, 32, 32), APD_OK);
        ck_assert_int_eq(apd_dsa_forward(o1, img, &p, 1, 3, 32, 32), APD_OK);
        ck_assert_int_eq(apd_dsa_forward(o2, batch, &p, 2, 3, 32, 32), APD_OK);
        ck_assert_mem_eq(o1, o2, sizeof o1);
    }
}
END_TEST

START_TEST(test_draw_ranges)
{
    int count[8] = {0};
    apd_dsa_sample s[32];
    apd_dsa_params p;
    const int draws = 1200;
    int cut_min = 99, cut_max = -99, crop_min = 99, crop_max = -99, flips = 0, flip_n = 0;
    float rot_max = 0, sc_min = 9, sc_max = 0;
    for (int d = 0; d < draws; d++) {
        ck_assert_int_eq(apd_dsa_draw(&p, s, 32, NULL, APD_DSA_PER_IMAGE, 5, (uint64_t)d, 32, 32, 32), APD_OK);
        ck_assert_int_ge(p.op, APD_DSA_COLOR);
        ck_assert_int_le(p.op, APD_DSA_ROTATE);
        ck_assert_uint_eq(p.cut_h, 16);
        count[p.op]++;
        for (int i = 0; i < 32; i++) {
            switch (p.op) {
            case APD_DSA_COLOR:
                ck_assert(s[i].brightness >= -0.5f && s[i].brightness < 0.5f);
                ck_assert(s[i].saturation >= 0.0f && s[i].saturation < 2.0f);
                ck_assert(s[i].contrast >= 0.5f && s[i].contrast < 1.5f);
                break;
            case APD_DSA_CROP:
                crop_min = s[i].dy < crop_min ? s[i].dy : crop_min;
                crop_max = s[i].dx > crop_max ? s[i].dx : crop_max;
                ck_assert(abs(s[i].dy) <= 4 && abs(s[i].dx) <= 4);
                break;
            case APD_DSA_CUTOUT:
                cut_min = s[i].oy < cut_min ? s[i].oy : cut_min;
                cut_max = s[i].ox > cut_max ? s[i].ox : cut_max;
                ck_assert(s[i].oy >= 0 && s[i].oy <= 32 && s[i].ox >= 0 && s[i].ox <= 32);
                break;
            case APD_DSA_FLIP:
                flips += s[i].flip;
                flip_n++;
                break;
            case APD_DSA_SCALE:
                for (int k = 0; k < 2; k++) {
                    float v = s[i].theta[k * 4];
                    sc_min = v < sc_min ? v : sc_min;
                    sc_max = v > sc_max ? v : sc_max;
                }
                ck_assert(s[i].theta[1] == 0 && s[i].theta[3] == 0);
                break;
            case APD_DSA_ROTATE: {
                float deg = atan2f(s[i].theta[3], s[i].theta[0]) * 180.0f / 3.14159265f;
                ck_assert(fabsf(deg) <= 15.0001f);
                if (fabsf(deg) > rot_max) rot_max = fabsf(deg);
                break;
            }
            default: break;
            }
        }
    }
    printf("op counts over %d draws:", draws);
    for (int o = 1; o <= 6; o++) {
        printf(" %s %d", apd_dsa_op_name((apd_dsa_op)o), count[o]);
        ck_assert_int_gt(count[o], draws / 6 - 70);
        ck_assert_int_lt(count[o], draws / 6 + 70);
    }
    printf("\ncrop [%d..%d] cutout o [%d..%d] flip rate %.3f scale [%.4f, %.4f] |rot| max %.2f deg\n",
           crop_min, crop_max, cut_min, cut_max, (double)flips / flip_n, sc_min, sc_max, rot_max);
    ck_assert_int_eq(crop_min, -4);
    ck_assert_int_eq(crop_max, 4);
    ck_assert_int_eq(cut_min, 0);
    ck_assert_int_eq(cut_max, 32);
    ck_assert(fabs((double)flips / flip_n - 0.5) < 0.05);
    ck_assert(sc_min >= 1.0f / 1.2f - 1e-6f && sc_min < 0.85f);
    ck_assert(sc_max <= 1.2f && sc_max > 1.18f);
    ck_assert(rot_max > 14.5f);

    /* strategy subset: only flip and rotate are drawn */
    apd_dsa_opts cfg;
    apd_dsa_opts_default(&cfg);
    ck_assert_int_eq(apd_dsa_strategy_parse("flip_rotate", &cfg.strategy), APD_OK);
    for (int d = 0; d < 100; d++) {
        ck_assert_int_eq(apd_dsa_draw(&p, s, 32, &cfg, APD_DSA_SIAMESE, 1, (uint64_t)d, 32, 32, 32), APD_OK);
        ck_assert(p.op == APD_DSA_FLIP || p.op == APD_DSA_ROTATE);
    }
    cfg.strategy = 0;
    ck_assert_int_eq(apd_dsa_draw(&p, s, 32, &cfg, APD_DSA_SIAMESE, 1, 0, 32, 32, 32), APD_OK);
    ck_assert_int_eq(p.op, APD_DSA_NONE);

    /* 64 and 128 px (ConvNetD4 / D5): crop shifts and cutout sizes follow the side */
    static const uint32_t side[2] = {64, 128};
    for (int k = 0; k < 2; k++) {
        int lo = 99, hi = -99, omax = 0;
        for (int d = 0; d < 600; d++) {
            ck_assert_int_eq(apd_dsa_draw(&p, s, 32, NULL, APD_DSA_PER_IMAGE, 8, (uint64_t)d, 32, side[k], side[k]),
                             APD_OK);
            ck_assert_uint_eq(p.cut_h, side[k] / 2);
            ck_assert_uint_eq(p.cut_w, side[k] / 2);
            for (int i = 0; i < 32; i++) {
                if (p.op == APD_DSA_CROP) {
                    lo = s[i].dy < lo ? s[i].dy : lo;
                    hi = s[i].dx > hi ? s[i].dx : hi;
                }
                if (p.op == APD_DSA_CUTOUT) omax = s[i].oy > omax ? s[i].oy : omax;
            }
        }
        printf("%u px: crop [%d..%d] cutout size %u, offset max %d\n", side[k], lo, hi, side[k] / 2, omax);
        ck_assert_int_eq(lo, -(int)side[k] / 8);
        ck_assert_int_eq(hi, (int)side[k] / 8);
        ck_assert_int_eq(omax, (int)side[k]);
    }
}
END_TEST

START_TEST(test_api_errors)
{
    uint32_t m = 0;
    ck_assert_int_eq(apd_dsa_strategy_parse("color_crop_cutout_flip_scale_rotate", &m), APD_OK);
    ck_assert_uint_eq(m, APD_DSA_ALL);
    ck_assert_int_eq(apd_dsa_strategy_parse("none", &m), APD_OK);
    ck_assert_uint_eq(m, 0);
    m = 7;
    ck_assert_int_eq(apd_dsa_strategy_parse("color_zoom", &m), APD_EINVAL);
    ck_assert_uint_eq(m, 7);
    ck_assert_int_eq(apd_dsa_strategy_parse("colorx", &m), APD_EINVAL);

    apd_dsa_sample s[4];
    apd_dsa_params p;
    ck_assert_int_eq(apd_dsa_draw(&p, s, 3, NULL, APD_DSA_PER_IMAGE, 1, 0, 4, 8, 8), APD_EBUFSIZE);
    ck_assert_int_eq(apd_dsa_draw(&p, s, 0, NULL, APD_DSA_SIAMESE, 1, 0, 4, 8, 8), APD_EBUFSIZE);
    ck_assert_int_eq(apd_dsa_draw(&p, s, 4, NULL, APD_DSA_SIAMESE, 1, 0, 0, 8, 8), APD_EINVAL);
    ck_assert_int_eq(apd_dsa_draw_op(&p, s, 4, NULL, APD_DSA_ROTATE, APD_DSA_PER_IMAGE, 1, 0, 4, 8, 8), APD_OK);
    float x[4 * 64], y[4 * 64];
    memset(x, 0, sizeof x);
    ck_assert_int_eq(apd_dsa_forward(y, x, &p, 4, 1, 8, 8), APD_OK);
    ck_assert_int_eq(apd_dsa_forward(y, x, &p, 3, 1, 8, 8), APD_ESHAPE); /* 4 samples, 3 images */
    ck_assert_int_eq(apd_dsa_forward(y, x, &p, 4, 1, 8, 4), APD_ESHAPE); /* drawn for 8x8 */
    ck_assert_int_eq(apd_dsa_backward(NULL, x, &p, 4, 1, 8, 8), APD_EINVAL);
    p.op = (apd_dsa_op)42;
    ck_assert_int_eq(apd_dsa_forward(y, x, &p, 4, 1, 8, 8), APD_EINVAL);

    /* NONE is the identity (and its backward adds dout) */
    for (int i = 0; i < 4 * 64; i++) x[i] = (float)i;
    p.op = APD_DSA_NONE;
    ck_assert_int_eq(apd_dsa_forward(y, x, &p, 4, 1, 8, 8), APD_OK);
    ck_assert_mem_eq(x, y, sizeof x);
    /* flip twice is the identity */
    ck_assert_int_eq(apd_dsa_draw_op(&p, s, 4, NULL, APD_DSA_FLIP, APD_DSA_SIAMESE, 3, 0, 4, 8, 8), APD_OK);
    s[0].flip = 1;
    float z[4 * 64];
    ck_assert_int_eq(apd_dsa_forward(y, x, &p, 4, 1, 8, 8), APD_OK);
    ck_assert_float_eq(y[0], 7.0f);
    ck_assert_int_eq(apd_dsa_forward(z, y, &p, 4, 1, 8, 8), APD_OK);
    ck_assert_mem_eq(x, z, sizeof x);
    printf("ok: API errors, identity, flip involution\n");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dsa");
    TCase *tc = tcase_create("dsa");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_golden, 0, (int)N_GOLDEN);
    tcase_add_test(tc, test_finite_difference);
    tcase_add_test(tc, test_draw_determinism);
    tcase_add_test(tc, test_draw_ranges);
    tcase_add_test(tc, test_api_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
