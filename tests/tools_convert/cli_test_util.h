/* cli_test_util.h: what the tests that run apd-convert / apd-export share (cli_test_util.c,
 * linked into each of them): a scratch folder per test, a command runner capturing stdout
 * and stderr into it, and the main that runs the tests. */
#ifndef APD_CLI_TEST_UTIL_H
#define APD_CLI_TEST_UTIL_H

#include <check.h>
#include <stddef.h>

#define CONVERT APD_BINARY_DIR "/apd-convert"
#define EXPORT APD_BINARY_DIR "/apd-export"

/* The running test's scratch folder (made before each test, removed after it). */
extern char cli_tmp[1024];

/* Run a shell command, its stdout into cli_tmp/out.txt and stderr into cli_tmp/err.txt.
 * @return its exit code (-1: it did not exit). */
int cli_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The text of cli_tmp/name ("" if absent; at most 16 KiB), valid until the next call. */
char *cli_slurp(const char *name);

/* stderr of the last cli_run contains needle (ck_assert). */
void cli_expect_err(const char *needle);

/* Run tests[0..n) as Check case "core" of suite `suite` (timeout seconds), each in a fresh
 * scratch folder APD_BINARY_DIR/tests/tools_convert/<tag>-XXXXXX. @return the exit status. */
int cli_main(const char *suite, const char *tag, double timeout, const TTest *const *tests, size_t n);

#endif
