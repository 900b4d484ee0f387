/* test_convert_distill.c: apd-convert --method autopalette|dm end to end on a small
 * Fashion-MNIST subset (--limit): two runs with the same seed and threads give the same file
 * (records and metadata, except "created" and "command_line"), and a run killed after an
 * iteration (--stop-after, checkpoint written) then resumed (--resume) gives the same file as
 * an uninterrupted run. Also: the files open in the reader with the provenance keys set. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apd/format.h"
#include "distill_test_util.h"

static char g_dir[512];

static int convert(const char *out, const char *extra)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s/apd-convert --input fashion-mnist --limit 400 --threads 2 --seed 3 --ipc 1 --colors 4 "
             "--iters 4 --batch-real 8 "
             "--log-every 0 --quiet -o %s --force %s > %s.out 2>&1",
             APD_BINARY_DIR, out, extra, out);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Remove the value of "key": "..." from a JSON text (string values only). */
static void drop_key(char *s, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    char *p = strstr(s, pat);
    if (!p) return;
    char *q = strchr(p + strlen(pat), '"'); /* opening quote of the value */
    if (!q) return;
    q++;
    while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
    if (*q) q++;
    memmove(p, q, strlen(q) + 1);
}

static void same_files(const char *a, const char *b)
{
    apd_reader *ra, *rb;
    apd_err err;
    ck_assert_msg(apd_reader_open(&ra, a, NULL, &err) == APD_OK, "%s", err.msg);
    ck_assert_msg(apd_reader_open(&rb, b, NULL, &err) == APD_OK, "%s", err.msg);
    uint64_t n = apd_reader_count(ra);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(n, apd_reader_count(rb));
    uint8_t pa[256 * 3], pb[256 * 3], ia[28 * 28], ib[28 * 28];
    for (uint64_t i = 0; i < n; i++) {
        uint32_t ka, kb, la, lb;
        memset(pa, 0, sizeof pa);
        memset(pb, 0, sizeof pb);
        ck_assert_int_eq(apd_reader_record(ra, i, pa, &ka, ia, &la), APD_OK);
        ck_assert_int_eq(apd_reader_record(rb, i, pb, &kb, ib, &lb), APD_OK);
        ck_assert_uint_eq(ka, kb);
        ck_assert_uint_eq(la, lb);
        ck_assert(memcmp(pa, pb, ka) == 0);
        ck_assert(memcmp(ia, ib, sizeof ia) == 0);
    }
    char *ma = strdup(apd_reader_meta_json(ra)), *mb = strdup(apd_reader_meta_json(rb));
    ck_assert_ptr_nonnull(strstr(ma, "\"hyperparameters\""));
    ck_assert_ptr_nonnull(strstr(ma, "\"budget\""));
    ck_assert_ptr_nonnull(strstr(ma, "\"palette_mode\""));
    drop_key(ma, "created");
    drop_key(mb, "created");
    drop_key(ma, "command_line");
    drop_key(mb, "command_line");
    ck_assert_str_eq(ma, mb);
    free(ma);
    free(mb);
    apd_reader_close(ra);
    apd_reader_close(rb);
}

START_TEST(autopalette_deterministic_and_resumable)
{
    /* the default (stored palettes) and the palette network with the graph-cut init */
    static const char *const modes[] = {"--method autopalette",
                                        "--method autopalette --palette network --select-epochs 1 --select-limit 30"};
    for (int m = 0; m < 2; m++) {
        char a[700], b[700], c[700], ck[700];
        snprintf(a, sizeof a, "%s/a%d.apd", g_dir, m);
        snprintf(b, sizeof b, "%s/b%d.apd", g_dir, m);
        snprintf(c, sizeof c, "%s/c%d.apd", g_dir, m);
        snprintf(ck, sizeof ck, "%s/c%d.ckpt", g_dir, m);
        ck_assert_int_eq(convert(a, modes[m]), 0);
        ck_assert_int_eq(convert(b, modes[m]), 0);
        same_files(a, b);
        char extra[2048];
        snprintf(extra, sizeof extra, "%s --checkpoint %s --checkpoint-every 1 --stop-after 2", modes[m], ck);
        ck_assert_int_ne(convert(c, extra), 0); /* stopped as if killed */
        ck_assert_int_eq(access(ck, R_OK), 0);
        snprintf(extra, sizeof extra, "%s --resume %s", modes[m], ck);
        ck_assert_int_eq(convert(c, extra), 0);
        same_files(a, c);
    }
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {autopalette_deterministic_and_resumable};
    return dt_run_cli(g_dir, sizeof g_dir, "cli", "convert_distill", 600, tests, sizeof tests / sizeof *tests);
}
