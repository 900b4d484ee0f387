/* test_eval_classes.c: apd-eval refuses a test set whose class names differ from the ones
 * stored in the .apd (train classes {a, b}, test classes {a, c, d}: label 1 would mean "b" in
 * training and "c" in testing, and the run used to report an accuracy with exit 0), with a
 * message naming both classes; and accepts a test set with the same names. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/io.h"
#include "common/rng.h"

static char dir[256];

static void png(const char *sub, const char *cls, int i, apd_rng *r)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", dir, sub, cls);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s/%d.png", dir, sub, cls, i);
    uint8_t px[3 * 16 * 16];
    for (size_t j = 0; j < sizeof px; j++) px[j] = (uint8_t)apd_rng_below(r, 256);
    ck_assert_int_eq(apd_png_write_image(p, px, 3, 16, 16, NULL), APD_OK);
}

static int run(const char *args, char *out, size_t cap)
{
    char cmd[2000], op[400];
    snprintf(op, sizeof op, "%s/out.txt", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>&1", dir, APD_EVAL_EXE, args, op);
    int rc = system(cmd);
    FILE *f = fopen(op, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    fclose(f);
    ck_assert(WIFEXITED(rc));
    return WEXITSTATUS(rc);
}

START_TEST(class_sets_must_match)
{
    snprintf(dir, sizeof dir, "/tmp/apd-evalcls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    apd_rng r;
    apd_rng_seed(&r, 1, 0);
    char top[300];
    snprintf(top, sizeof top, "%s/ds", dir);
    mkdir(top, 0755);
    snprintf(top, sizeof top, "%s/ok", dir);
    mkdir(top, 0755);
    const char *tr[] = {"a", "b"}, *te_bad[] = {"a", "c", "d"};
    for (int i = 0; i < 4; i++) {
        for (int c = 0; c < 2; c++) png("ds/train", tr[c], i, &r);
        for (int c = 0; c < 3; c++) png("ds/test", te_bad[c], i, &r);
        for (int c = 0; c < 2; c++) png("ok/test", tr[c], i, &r);
    }
    apd_dataset ds;
    apd_err err;
    char spec[400], path[400];
    snprintf(spec, sizeof spec, "folder:%s/ds", dir);
    ck_assert_msg(apd_import(&ds, spec, "train", NULL, &err) == APD_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/train.apd", dir);
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = APD_KIND_DIRECT;
    o.c = 3;
    o.h = o.w = 16;
    o.n_classes = ds.n_classes;
    o.class_names = (const char(*)[64])ds.class_names;
    for (int c = 0; c < 3; c++) {
        o.mean[c] = 0.5f;
        o.std[c] = 0.29f;
    }
    o.no_sync = 1;
    apd_writer *w;
    ck_assert_msg(apd_writer_create(&w, path, &o, &err) == APD_OK, "%s", err.msg);
    for (uint64_t i = 0; i < ds.n; i++)
        ck_assert_int_eq(apd_writer_put_direct(w, ds.pixels + i * 768, ds.labels[i], i), APD_OK);
    ck_assert_int_eq(apd_writer_finish(w, &err), APD_OK);
    apd_dataset_free(&ds);
    static char out[8192];
    const char *common = "--epochs 1 --runs 1 --width 4 --threads 1 --no-dsa --batch 8";
    char args[600];
    snprintf(args, sizeof args, "train.apd --test folder:ds %s", common);
    ck_assert_int_eq(run(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "\"b\"") && strstr(out, "\"c\"") && strstr(out, "train.apd"), "%s", out);
    printf("class_sets_must_match: %s", out);
    snprintf(args, sizeof args, "train.apd --test folder:ok %s", common);
    ck_assert_msg(run(args, out, sizeof out) == 0, "%s", out);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("eval_classes");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, class_sets_must_match);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
