/* test_tool_util.c: the tools' shared progress line and log sink (tools/tool_util.c), and the
 * de-duplicated error text:
 * - a log line printed while the progress line is up erases it first, stands on its own line,
 *   and the progress line is redrawn below it (so neither overwrites the other);
 * - a new phase from the library's progress callback ends the previous phase's line;
 * - APD_PROGRESS=0 draws nothing (log lines still print, plain);
 * - tool_why says the reason once. */
#define _DEFAULT_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool_util.h"

#define ERASE "\r\033[K"

static char captured[8192];

/* Run fn with stderr going to a file; its bytes end up in `captured`. */
static void capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/apd-tool-util-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(captured, 1, sizeof captured - 1, f);
    captured[n] = '\0';
    fclose(f);
    close(fd);
    unlink(path);
}

static void progress_and_log(void)
{
    tool_progress p;
    tool_progress_init(&p);
    tool_progress_start(&p, "phase", 10);
    tool_progress_set(&p, 10); /* done == total: drawn at once */
    tool_log_fn(&p, "status line one");
    tool_progress_finish(&p);
}

START_TEST(log_line_clears_and_redraws)
{
    setenv("APD_PROGRESS", "1", 1);
    capture_stderr(progress_and_log);
    const char *log = strstr(captured, "status line one");
    ck_assert_msg(log != NULL, "log line missing: %s", captured);
    /* the line was drawn before, erased right before the log line, redrawn right after */
    ck_assert_msg(strncmp(captured, ERASE "phase 10/10 100%", strlen(ERASE "phase 10/10 100%")) == 0,
                  "progress line not drawn first: %s", captured);
    ck_assert_msg(log - captured >= 8 && strncmp(log - strlen(ERASE), ERASE, strlen(ERASE)) == 0,
                  "log line not after an erase: %s",
                  captured);
    ck_assert_msg(strncmp(log, "status line one\n" ERASE "phase 10/10", strlen("status line one\n" ERASE "phase 10/10")) == 0,
                  "progress line not redrawn after the log line: %s", captured);
    /* finish leaves the final line and a newline */
    size_t n = strlen(captured);
    ck_assert_msg(n > 0 && captured[n - 1] == '\n', "no final newline: %s", captured);
}
END_TEST

static void two_phases(void)
{
    tool_progress p;
    tool_progress_init(&p);
    tool_progress_fn(&p, "select-net", 4, 4, "epoch 1");
    tool_progress_fn(&p, "distill", 1, 2, "loss 3.5");
    tool_progress_fn(&p, "distill", 2, 2, "loss 2.5");
    tool_progress_finish(&p);
}

START_TEST(new_phase_ends_previous_line)
{
    setenv("APD_PROGRESS", "1", 1);
    capture_stderr(two_phases);
    const char *a = strstr(captured, "select-net 4/4"), *b = strstr(captured, "distill 2/2");
    ck_assert_msg(a && b && a < b, "phases missing or out of order: %s", captured);
    ck_assert_msg(strstr(a, "epoch 1") != NULL, "note not shown: %s", captured);
    const char *nl = strchr(a, '\n');
    ck_assert_msg(nl && nl < strstr(captured, "distill"), "select-net line not ended before distill: %s", captured);
    ck_assert_ptr_nonnull(strstr(b, "loss 2.5"));
}
END_TEST

START_TEST(off_when_disabled)
{
    setenv("APD_PROGRESS", "0", 1);
    capture_stderr(progress_and_log);
    ck_assert_str_eq(captured, "status line one\n");
}
END_TEST

START_TEST(why_says_it_once)
{
    char out[256], want[256];
    tool_why(out, sizeof out, "x.apd: opening: No such file or directory", APD_ENOENT);
    snprintf(want, sizeof want, "x.apd: opening: %s", apd_strerror(APD_ENOENT));
    ck_assert_str_eq(out, want);
    tool_why(out, sizeof out, "x.apd: record 3: bad", APD_ECHECKSUM);
    snprintf(want, sizeof want, "x.apd: record 3: bad (%s)", apd_strerror(APD_ECHECKSUM));
    ck_assert_str_eq(out, want);
    tool_why(out, sizeof out, "", APD_ENOMEM);
    ck_assert_str_eq(out, apd_strerror(APD_ENOMEM));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tool_util");
    TCase *t = tcase_create("core");
    tcase_add_test(t, log_line_clears_and_redraws);
    tcase_add_test(t, new_phase_ends_previous_line);
    tcase_add_test(t, off_when_disabled);
    tcase_add_test(t, why_says_it_once);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
