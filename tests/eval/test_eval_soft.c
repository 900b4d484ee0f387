/* tests/eval/test_eval_soft.c: soft cross-entropy (apd_xent_soft_*) and the soft-label path of
 * the evaluation protocol (apd_eval_opts.train_soft):
 *  - the analytic gradient against a central-difference numeric gradient (max error printed);
 *  - one-hot targets give apd_xent_forward's loss and gradient;
 *  - training with soft targets uses them: one-hot soft targets train like hard labels (same
 *    losses up to rounding), smoothed targets give a different (higher) final loss, and the
 *    same soft run twice is bit-identical; bad rows are refused. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "apd/train.h"
#include "common/rng.h"
#include "eval_test_util.h"

enum { N = 6, K = 7 };

static double loss_at(const float *z, const float *t)
{
    float probs[N * K], l;
    apd_xent_soft_forward(&l, probs, z, t, N, K);
    return l;
}

START_TEST(soft_xent_gradient)
{
    apd__rng r;
    apd__rng_seed(&r, 3, 0);
    float z[N * K], t[N * K], probs[N * K], g[N * K];
    for (int i = 0; i < N * K; i++) z[i] = (float)((double)apd__rng_below(&r, 4001) / 1000.0 - 2.0);
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += t[n * K + k] = (float)(apd__rng_below(&r, 100) * (k % 3 != 0));
        for (int k = 0; k < K; k++) t[n * K + k] = (float)(t[n * K + k] / s);
    }
    float loss;
    apd_xent_soft_forward(&loss, probs, z, t, N, K);
    memset(g, 0, sizeof g);
    apd_xent_soft_backward(g, probs, t, 1.0f, N, K);
    double max_err = 0;
    const float eps = 1e-2f;
    for (int i = 0; i < N * K; i++) {
        float zp[N * K], zm[N * K];
        memcpy(zp, z, sizeof z);
        memcpy(zm, z, sizeof z);
        zp[i] += eps;
        zm[i] -= eps;
        double num = (loss_at(zp, t) - loss_at(zm, t)) / (2.0 * eps);
        max_err = fmax(max_err, fabs(num - (double)g[i]));
    }
    printf("soft cross-entropy: loss %.6f, analytic vs numeric gradient max error %.3g\n", (double)loss, max_err);
    ck_assert_msg(max_err < 2e-4, "gradient error %g", max_err);

    /* one-hot targets: the hard-label loss and gradient */
    uint32_t y[N];
    float oh[N * K], p2[N * K], g2[N * K], l2;
    memset(oh, 0, sizeof oh);
    for (int n = 0; n < N; n++) oh[n * K + (y[n] = (uint32_t)(n * 3 % K))] = 1.0f;
    apd_xent_soft_forward(&loss, probs, z, oh, N, K);
    apd_xent_forward(&l2, p2, z, y, N, K);
    memset(g, 0, sizeof g);
    memset(g2, 0, sizeof g2);
    apd_xent_soft_backward(g, probs, oh, 1.0f, N, K);
    apd_xent_backward(g2, p2, y, 1.0f, N, K);
    double gd = 0;
    for (int i = 0; i < N * K; i++) gd = fmax(gd, fabs((double)g[i] - (double)g2[i]));
    printf("one-hot targets vs hard labels: loss %.7f vs %.7f, gradient max difference %.3g\n", (double)loss,
           (double)l2, gd);
    ck_assert(loss == l2);
    ck_assert(gd < 1e-7);
}
END_TEST

/* 3 classes of 8x8 grey images: a bright bar at the top, the bottom, or the middle. */
static void make_set(apd_dataset *ds, uint32_t per_class, uint64_t seed)
{
    ck_assert_int_eq(apd_dataset_alloc(ds, 3ull * per_class, 1, 8, 8, 3), APD_OK);
    apd__rng r;
    apd__rng_seed(&r, seed, 0);
    for (uint64_t i = 0; i < ds->n; i++) {
        uint32_t k = (uint32_t)(i % 3);
        uint8_t *p = ds->pixels + i * 64;
        for (int j = 0; j < 64; j++) {
            int y = j / 8;
            int on = (k == 0 && y < 2) || (k == 1 && y >= 6) || (k == 2 && y >= 3 && y < 5);
            p[j] = (uint8_t)(on ? 180 + apd__rng_below(&r, 70) : apd__rng_below(&r, 100));
        }
        ds->labels[i] = k;
    }
}

static apd_status train(apd_eval_result *res, const apd_dataset *tr, const apd_dataset *te, const float *soft)
{
    static const float mean[3] = {0.3f, 0, 0}, std[3] = {0.25f, 1, 1};
    apd_eval_opts o;
    et_small_opts(&o, 12, 8, 8, 1, 5);
    o.dsa = 0;
    o.train_soft = soft;
    return et_train_test(res, tr, te, mean, std, &o);
}

START_TEST(eval_trains_on_soft_labels)
{
    apd_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    make_set(&tr, 8, 1);
    make_set(&te, 30, 2);
    float *onehot = calloc(tr.n * 3, sizeof(float)), *smooth = calloc(tr.n * 3, sizeof(float));
    for (uint64_t i = 0; i < tr.n; i++)
        for (uint32_t k = 0; k < 3; k++) {
            onehot[i * 3 + k] = k == tr.labels[i] ? 1.0f : 0.0f;
            smooth[i * 3 + k] = k == tr.labels[i] ? 0.6f : 0.2f;
        }
    apd_eval_result hard, oh, sm, sm2;
    ck_assert_int_eq(train(&hard, &tr, &te, NULL), APD_OK);
    ck_assert_int_eq(train(&oh, &tr, &te, onehot), APD_OK);
    ck_assert_int_eq(train(&sm, &tr, &te, smooth), APD_OK);
    ck_assert_int_eq(train(&sm2, &tr, &te, smooth), APD_OK);
    printf("final training loss: hard labels %.5f (test acc %.3f), one-hot soft %.5f (%.3f), "
           "smoothed 0.6/0.2/0.2 %.5f (%.3f)\n", (double)hard.final_loss, hard.test_acc, (double)oh.final_loss,
           oh.test_acc, (double)sm.final_loss, sm.test_acc);
    ck_assert(fabsf(hard.final_loss - oh.final_loss) < 1e-3f);
    /* the entropy of (0.6, 0.2, 0.2) is 0.95 nats: a soft-target loss cannot go below it,
     * while the hard-label loss falls towards 0 */
    ck_assert(sm.final_loss > 0.9f && hard.final_loss < 0.6f);
    ck_assert(sm.final_loss == sm2.final_loss && sm.test_acc == sm2.test_acc);
    smooth[5] = -0.1f;
    ck_assert_int_eq(train(&sm, &tr, &te, smooth), APD_EINVAL);
    smooth[5] = 0.3f;
    ck_assert_int_eq(train(&sm, &tr, &te, smooth), APD_EINVAL);
    free(onehot);
    free(smooth);
    apd_dataset_free(&tr);
    apd_dataset_free(&te);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("eval_soft");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, soft_xent_gradient);
    tcase_add_test(tc, eval_trains_on_soft_labels);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
