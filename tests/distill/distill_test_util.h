/* distill_test_util.h: helpers shared by the distillation tests (distill_test_util.c, linked
 * into each test that uses them):
 * - dt_same_result: two distillation results are the same, byte for byte;
 * - dt_run_cli: the main of the tests that run the tools end to end: a scratch folder under
 *   the build tree, one Check case run without fork, the folder removed when all passed. */
#ifndef APD_DISTILL_TEST_UTIL_H
#define APD_DISTILL_TEST_UTIL_H

#include <check.h>
#include <stddef.h>

#include "apd/distill.h"

/* Records (pixels, or palettes, index maps and used entries), labels, source ids and the
 * provenance JSON (hyperparameters, budget, stats) of a and b are identical (ck_assert). */
void dt_same_result(const apd_distill_result *a, const apd_distill_result *b);

/* Make dir = APD_BINARY_DIR/tests/distill/<tag>-<pid> (cap bytes), run tests[0..n) as the
 * Check case "cli" (timeout seconds) of suite `suite` without fork, remove dir when every
 * test passed. @return the process exit status (EXIT_SUCCESS: every test passed). */
int dt_run_cli(char *dir, size_t cap, const char *tag, const char *suite, double timeout, const TTest *const *tests,
               size_t n);

#endif
