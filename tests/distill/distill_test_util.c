/* distill_test_util.c: see distill_test_util.h. */
#include "distill_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void dt_same_result(const apd_distill_result *a, const apd_distill_result *b)
{
    ck_assert_uint_eq(a->n, b->n);
    ck_assert_uint_eq(a->kind, b->kind);
    size_t img = (size_t)a->c * a->h * a->w, p = (size_t)a->h * a->w;
    if (a->kind == APD_KIND_DIRECT) {
        ck_assert(memcmp(a->pixels, b->pixels, a->n * img) == 0);
    } else {
        ck_assert(memcmp(a->palettes, b->palettes, a->n * a->k * a->c) == 0);
        ck_assert(memcmp(a->indices, b->indices, a->n * p) == 0);
        ck_assert(memcmp(a->k_used, b->k_used, a->n * sizeof(uint32_t)) == 0);
    }
    ck_assert(memcmp(a->labels, b->labels, a->n * sizeof(uint32_t)) == 0);
    ck_assert(memcmp(a->source_ids, b->source_ids, a->n * sizeof(uint64_t)) == 0);
    ck_assert_str_eq(a->hyperparameters_json, b->hyperparameters_json);
    ck_assert_str_eq(a->budget_json, b->budget_json);
    ck_assert_str_eq(a->stats_json, b->stats_json);
}

int dt_run_cli(char *dir, size_t cap, const char *tag, const char *suite, double timeout, const TTest *const *tests,
               size_t n)
{
    snprintf(dir, cap, "%s/tests/distill/%s-%d", APD_BINARY_DIR, tag, (int)getpid());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0) return 1;
    Suite *s = suite_create(suite);
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, timeout);
    for (size_t i = 0; i < n; i++) tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (nf == 0 && system(cmd) != 0) nf = 1;
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
