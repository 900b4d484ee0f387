/* tests/eval/test_eval.c: the evaluation protocol library (include/apd/train.h) on small
 * synthetic data: it learns (accuracy asserted far above chance), it is reproducible for a
 * seed, runs differ, errors are reported; apd_eval_random_real picks ipc images per class
 * deterministically. Fast (tiny ConvNet). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "apd/train.h"
#include "common/rng.h"
#include "eval_test_util.h"

/* 16x16 grey images: class 0 has a bright bar in the top half, class 1 in the bottom half,
 * class 2 a bright square in the middle; all on noise. Horizontal flips keep the classes. */
static void make_set(apd_dataset *ds, uint32_t per_class, uint64_t seed)
{
    ck_assert_int_eq(apd_dataset_alloc(ds, 3ull * per_class, 1, 16, 16, 3), APD_OK);
    apd__rng r;
    apd__rng_seed(&r, seed, 0);
    for (uint64_t i = 0; i < ds->n; i++) {
        uint32_t k = (uint32_t)(i % 3);
        uint8_t *p = ds->pixels + i * 256;
        for (int j = 0; j < 256; j++) p[j] = (uint8_t)apd__rng_below(&r, 90);
        int off = (int)apd__rng_below(&r, 3);
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++) {
                int on = 0;
                if (k == 0) on = y >= 2 + off && y < 5 + off && x >= 2 && x < 14;
                if (k == 1) on = y >= 10 + off && y < 13 + off && x >= 2 && x < 14;
                if (k == 2) on = y >= 5 + off && y < 10 + off && x >= 5 && x < 10;
                if (on) p[y * 16 + x] = (uint8_t)(200 + apd__rng_below(&r, 55));
            }
        ds->labels[i] = k;
    }
    snprintf(ds->name, sizeof ds->name, "synthetic");
}

static uint64_t g_budget; /* apd_eval_opts.act_budget of run() */

static apd_status run(apd_eval_result *res, const apd_dataset *tr, const apd_dataset *te,
                      uint32_t run_index, uint64_t seed, int dsa, apd_pool *pool)
{
    float mean[3], std[3];
    apd_dataset_mean_std(tr, mean, std);
    apd_eval_opts o;
    et_small_opts(&o, 30, 16, 16, 2, seed);
    o.run = run_index;
    o.dsa = dsa;
    o.pool = pool;
    o.act_budget = g_budget;
    return et_train_test(res, tr, te, mean, std, &o);
}

START_TEST(test_learns_and_reproducible)
{
    apd_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    make_set(&tr, 12, 1);
    make_set(&te, 100, 2);
    apd_pool *pool = NULL;
    ck_assert_int_eq(apd_pool_create(&pool, 2), APD_OK);
    apd_eval_result a, b, c, d;
    ck_assert_int_eq(run(&a, &tr, &te, 0, 7, 1, pool), APD_OK);
    ck_assert_int_eq(run(&b, &tr, &te, 0, 7, 1, pool), APD_OK);
    ck_assert_int_eq(run(&c, &tr, &te, 1, 7, 1, pool), APD_OK);
    ck_assert_int_eq(run(&d, &tr, &te, 0, 7, 0, pool), APD_OK);
    printf("synthetic 3-class: DSA run0 %.3f (loss %.4f), again %.3f (loss %.4f), run1 %.3f, "
           "no DSA %.3f; %.2f s/run\n", a.test_acc, (double)a.final_loss, b.test_acc,
           (double)b.final_loss, c.test_acc, d.test_acc, a.train_seconds + a.test_seconds);
    ck_assert_uint_eq(a.test_n, 300);
    ck_assert(a.test_acc > 0.85); /* chance is 1/3 */
    ck_assert(c.test_acc > 0.85);
    ck_assert(d.test_acc > 0.85);
    /* same seed and run: bit-identical */
    ck_assert_uint_eq(a.test_correct, b.test_correct);
    ck_assert(a.final_loss == b.final_loss);
    /* another run index: another network and other draws */
    ck_assert(a.final_loss != c.final_loss);
    apd_pool_free(pool);
    apd_dataset_free(&tr);
    apd_dataset_free(&te);
}
END_TEST

/* Batches of 16 trained as 16 passes of one image (a 1-byte activation budget) give the
 * training of whole batches up to float rounding. */
START_TEST(test_budget_passes)
{
    apd_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    make_set(&tr, 12, 1);
    make_set(&te, 100, 2);
    apd_pool *pool = NULL;
    ck_assert_int_eq(apd_pool_create(&pool, 2), APD_OK);
    apd_eval_result a, b;
    g_budget = 0;
    ck_assert_int_eq(run(&a, &tr, &te, 0, 7, 1, pool), APD_OK);
    g_budget = 1;
    ck_assert_int_eq(run(&b, &tr, &te, 0, 7, 1, pool), APD_OK);
    g_budget = 0;
    printf("whole batches vs one image per pass: final loss %.6f vs %.6f, test acc %.3f vs %.3f\n",
           (double)a.final_loss, (double)b.final_loss, a.test_acc, b.test_acc);
    ck_assert_double_le(fabs((double)a.final_loss - (double)b.final_loss), 0.05 * (double)a.final_loss + 1e-3);
    ck_assert_double_le(fabs(a.test_acc - b.test_acc), 0.03);
    ck_assert(b.test_acc > 0.85);
    apd_pool_free(pool);
    apd_dataset_free(&tr);
    apd_dataset_free(&te);
}
END_TEST

START_TEST(test_errors)
{
    apd_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    make_set(&tr, 2, 1);
    make_set(&te, 2, 2);
    float x[6 * 256];
    float mean[3] = {0.3f, 0, 0}, std[3] = {0.2f, 1, 1};
    apd_eval_normalize(x, tr.pixels, 6, 1, 256, mean, std);
    ck_assert_float_eq_tol(x[0], ((float)tr.pixels[0] / 255.0f - 0.3f) / 0.2f, 1e-6f);
    apd_eval_opts o;
    apd_eval_opts_default(&o);
    o.epochs = 1;
    o.width = 8;
    o.depth = 2;
    apd_eval_result res;
    apd_err err;
    /* shape mismatch: training images 1x8x32 vs test 1x16x16 */
    ck_assert_int_eq(apd_eval_train_test(&res, x, tr.labels, 6, 1, 8, 32, &te, mean, std, &o, &err),
                     APD_EMISMATCH);
    printf("mismatch message: %s\n", err.msg);
    ck_assert_ptr_nonnull(strstr(err.msg, "16x16"));
    tr.labels[3] = 9;
    ck_assert_int_eq(apd_eval_train_test(&res, x, tr.labels, 6, 1, 16, 16, &te, mean, std, &o, &err),
                     APD_EINVAL);
    printf("label message: %s\n", err.msg);
    tr.labels[3] = 0;
    o.epochs = 0;
    ck_assert_int_eq(apd_eval_train_test(&res, x, tr.labels, 6, 1, 16, 16, &te, mean, std, &o, &err),
                     APD_EINVAL);
    o.epochs = 1;
    x[17] = NAN; /* a NaN pixel: the loss is not finite */
    ck_assert_int_eq(apd_eval_train_test(&res, x, tr.labels, 6, 1, 16, 16, &te, mean, std, &o, &err),
                     APD_ENUMERIC);
    printf("non-finite message: %s\n", err.msg);
    apd_dataset_free(&tr);
    apd_dataset_free(&te);
}
END_TEST

START_TEST(test_random_real)
{
    apd_dataset src, a, b, c;
    memset(&src, 0, sizeof src);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    make_set(&src, 30, 5); /* 90 images, labels i % 3 */
    for (uint64_t i = 0; i < src.n; i++) src.pixels[i * 256] = (uint8_t)i; /* tag = source index */
    apd_err err;
    ck_assert_int_eq(apd_eval_random_real(&a, &src, 4, 11, &err), APD_OK);
    ck_assert_int_eq(apd_eval_random_real(&b, &src, 4, 11, &err), APD_OK);
    ck_assert_int_eq(apd_eval_random_real(&c, &src, 4, 12, &err), APD_OK);
    ck_assert_uint_eq(a.n, 12);
    ck_assert_uint_eq(a.n_classes, 3);
    ck_assert_mem_eq(a.pixels, b.pixels, a.n * 256);
    ck_assert(memcmp(a.pixels, c.pixels, a.n * 256) != 0);
    for (uint64_t i = 0; i < a.n; i++) {
        uint32_t tag = a.pixels[i * 256];
        ck_assert_uint_eq(a.labels[i], i / 4);          /* classes in order */
        ck_assert_uint_eq(tag % 3, a.labels[i]);         /* really an image of that class */
        ck_assert_mem_eq(a.pixels + i * 256 + 1, src.pixels + (size_t)tag * 256 + 1, 255);
        if (i % 4) ck_assert_uint_gt(tag, a.pixels[(i - 1) * 256]); /* source order, distinct */
    }
    ck_assert_int_eq(apd_eval_random_real(&c, &src, 31, 1, &err) == APD_OK, 0);
    printf("too-few message: %s\n", err.msg);
    apd_dataset_free(&src);
    apd_dataset_free(&a);
    apd_dataset_free(&b);
    apd_dataset_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_budget_passes);
    tcase_add_test(tc, test_random_real);
    tcase_add_test(tc, test_learns_and_reproducible);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
