/* test_nn_example.c: the usage example of apd/nn.h, run as written, built against the shared
 * libapd and the public headers only (no library-internal include path, no internal
 * symbols): seeding, one training step and the input gradient of a frozen network must be
 * reachable from the installed API. Checks that the init is seeded (same (seed, stream) ->
 * same parameters, another stream -> different ones), that the training step moves the
 * parameters and lowers the loss of the batch it was taken on, and that d loss / d x is
 * finite and non-zero. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"

enum { N = 8, C = 3, H = 32, W = 32, K = 10 };

START_TEST(nn_header_example)
{
    /* inputs: a fixed pattern per image, labels 0..7 */
    static float x[N * C * H * W];
    uint32_t y[N];
    for (size_t i = 0; i < (size_t)N * C * H * W; i++) x[i] = (float)sin(0.37 * (double)i) * 0.8f;
    for (uint32_t i = 0; i < N; i++) y[i] = i % K;

    /* --- as in the header --- */
    apd_pool *pool;
    ck_assert_int_eq(apd_pool_create(&pool, 2), APD_OK);
    apd_convnet_opts cfg;
    apd_convnet_opts_default(&cfg, C, H, W, K);
    cfg.max_batch = N;
    cfg.pool = pool;
    apd_convnet *net;
    ck_assert_int_eq(apd_convnet_create(&net, &cfg), APD_OK);
    apd_convnet_init(net, 2024, 0);
    size_t np = apd_convnet_num_params(net);
    apd_sgd *opt;
    ck_assert_int_eq(apd_sgd_create(&opt, np, 0.01f, 0.9f, 5e-4f), APD_OK);
    float logits[N * K], probs[N * K], dlogits[N * K], loss0, loss1;
    ck_assert_int_eq(apd_convnet_forward(net, logits, NULL, x, N), APD_OK);
    apd_xent_forward(&loss0, probs, logits, y, N, K);
    memset(dlogits, 0, sizeof dlogits);
    apd_xent_backward(dlogits, probs, y, 1.0f, N, K);
    apd_convnet_zero_grad(net);
    ck_assert_int_eq(apd_convnet_backward(net, NULL, dlogits, NULL, N, APD_NN_PARAM_GRADS), APD_OK);
    float *before = malloc(np * sizeof(float));
    ck_assert_ptr_nonnull(before);
    memcpy(before, apd_convnet_params(net), np * sizeof(float));
    apd_sgd_step(opt, apd_convnet_params(net), apd_convnet_grads(net));

    /* the step changed the parameters and, on the same batch, lowered the loss */
    double moved = 0;
    for (size_t i = 0; i < np; i++) moved = fmax(moved, fabs(apd_convnet_params(net)[i] - before[i]));
    ck_assert_int_eq(apd_convnet_forward(net, logits, NULL, x, N), APD_OK);
    apd_xent_forward(&loss1, probs, logits, y, N, K);
    printf("nn example: loss %.5f -> %.5f after one step (largest parameter change %.3g)\n", loss0, loss1,
           moved);
    ck_assert(isfinite(loss0) && fabsf(loss0 - logf((float)K)) < 1.0f); /* near ln K at init */
    ck_assert(moved > 0);
    ck_assert(loss1 < loss0);

    /* distillation: embed, then the gradient with respect to the input only */
    size_t D = apd_convnet_embed_dim(net);
    float *emb = malloc((size_t)N * D * sizeof(float)), *demb = malloc((size_t)N * D * sizeof(float));
    float *dx = calloc((size_t)N * C * H * W, sizeof(float));
    ck_assert(emb && demb && dx);
    ck_assert_int_eq(apd_convnet_forward(net, NULL, emb, x, N), APD_OK);
    for (size_t i = 0; i < (size_t)N * D; i++) demb[i] = 1.0f / (float)(N * D);
    ck_assert_int_eq(apd_convnet_backward(net, dx, NULL, demb, N, 0), APD_OK);
    double dmax = 0;
    int finite = 1;
    for (size_t i = 0; i < (size_t)N * C * H * W; i++) {
        finite &= isfinite(dx[i]) != 0;
        dmax = fmax(dmax, fabs(dx[i]));
    }
    printf("nn example: max |d loss / d x| %.3g\n", dmax);
    ck_assert(finite && dmax > 0);

    /* seeded init: (seed, stream) decides the parameters */
    apd_convnet *a, *b;
    ck_assert_int_eq(apd_convnet_create(&a, &cfg), APD_OK);
    ck_assert_int_eq(apd_convnet_create(&b, &cfg), APD_OK);
    apd_convnet_init(a, 2024, 0);
    apd_convnet_init(b, 2024, 0);
    ck_assert(memcmp(apd_convnet_params(a), apd_convnet_params(b), np * sizeof(float)) == 0);
    ck_assert(memcmp(apd_convnet_params(a), before, np * sizeof(float)) == 0);
    apd_convnet_init(b, 2024, 1);
    ck_assert(memcmp(apd_convnet_params(a), apd_convnet_params(b), np * sizeof(float)) != 0);
    apd_convnet_init(NULL, 1, 0); /* no-op */

    apd_convnet_free(a);
    apd_convnet_free(b);
    free(before);
    free(emb);
    free(demb);
    free(dx);
    apd_sgd_free(opt);
    apd_convnet_free(net);
    apd_pool_free(pool);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn_example");
    TCase *tc = tcase_create("example");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, nn_header_example);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
