/* cli_test_util.c: see cli_test_util.h. */
#define _DEFAULT_SOURCE
#include "cli_test_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

char cli_tmp[1024];
static const char *g_tag;

static void setup(void)
{
    snprintf(cli_tmp, sizeof cli_tmp, "%s/tests/tools_convert/%s-XXXXXX", APD_BINARY_DIR, g_tag);
    ck_assert_ptr_nonnull(mkdtemp(cli_tmp));
}

static void teardown(void)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cli_tmp);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", cli_tmp);
}

int cli_run(const char *fmt, ...)
{
    char cmd[4096], full[6400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s >'%s/out.txt' 2>'%s/err.txt'", cmd, cli_tmp, cli_tmp);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *cli_slurp(const char *name)
{
    static char buf[16384];
    char p[1100];
    snprintf(p, sizeof p, "%s/%s", cli_tmp, name);
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
    return buf;
}

void cli_expect_err(const char *needle)
{
    const char *e = cli_slurp("err.txt");
    ck_assert_msg(strstr(e, needle) != NULL, "stderr '%s' lacks '%s'", e, needle);
}

int cli_main(const char *suite, const char *tag, double timeout, const TTest *const *tests, size_t n)
{
    g_tag = tag;
    Suite *s = suite_create(suite);
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, timeout);
    tcase_add_checked_fixture(t, setup, teardown);
    for (size_t i = 0; i < n; i++) tcase_add_test(t, tests[i]);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
