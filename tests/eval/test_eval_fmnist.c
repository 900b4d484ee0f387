/* tests/eval/test_eval_fmnist.c (slow): the random-real baseline on Fashion-MNIST learns.
 * 10 random training images per class (seed 0), ConvNetD3 with DSA, a short schedule
 * (APD_EVAL_TEST_EPOCHS, default 100 epochs, 1 run), tested on the 10000 test images.
 * The literature's 1000-epoch figure is about 74%; chance is 10%: assert > 55%. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/io.h"
#include "apd/nn.h"
#include "apd/train.h"

START_TEST(test_fmnist_random_real)
{
    apd_dataset full, tr, te;
    memset(&full, 0, sizeof full);
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    apd_err err;
    apd_status st = apd_import(&full, "fashion-mnist", "train", NULL, &err);
    ck_assert_msg(st == APD_OK, "fashion-mnist train: %s", err.msg);
    st = apd_import(&te, "fashion-mnist", "test", NULL, &err);
    ck_assert_msg(st == APD_OK, "fashion-mnist test: %s", err.msg);
    float mean[3], std[3];
    apd_dataset_mean_std(&full, mean, std);
    ck_assert_int_eq(apd_eval_random_real(&tr, &full, 10, 0, &err), APD_OK);
    ck_assert_uint_eq(tr.n, 100);
    float *x = malloc(100 * 784 * sizeof(float));
    ck_assert_ptr_nonnull(x);
    apd_eval_normalize(x, tr.pixels, 100, 1, 784, mean, std);
    apd_pool *pool = NULL;
    ck_assert_int_eq(apd_pool_create(&pool, 2), APD_OK);
    apd_eval_opts o;
    apd_eval_opts_default(&o);
    const char *e = getenv("APD_EVAL_TEST_EPOCHS");
    o.epochs = e && atoi(e) > 0 ? (uint32_t)atoi(e) : 100;
    o.pool = pool;
    apd_eval_result res;
    st = apd_eval_train_test(&res, x, tr.labels, tr.n, 1, 28, 28, &te, mean, std, &o, &err);
    ck_assert_msg(st == APD_OK, "%s", err.msg);
    printf("Fashion-MNIST random real IPC 10, %u epochs, 1 run: test accuracy %.2f%% "
           "(final train loss %.4f, %.1f s train, %.1f s test; mean %.4f std %.4f)\n",
           o.epochs, 100.0 * res.test_acc, (double)res.final_loss, res.train_seconds,
           res.test_seconds, (double)mean[0], (double)std[0]);
    ck_assert_uint_eq(res.test_n, 10000);
    ck_assert(res.test_acc > 0.55);
    apd_pool_free(pool);
    free(x);
    apd_dataset_free(&full);
    apd_dataset_free(&tr);
    apd_dataset_free(&te);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("eval_fmnist");
    TCase *tc = tcase_create("eval_fmnist");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_fmnist_random_real);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
