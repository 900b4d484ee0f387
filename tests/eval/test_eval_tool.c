/* tests/eval/test_eval_tool.c: apd-eval end to end on a palette-quantized .apd file.
 * Writes a small synthetic training set as an .apd (K = 4 colours, median cut, mean/std
 * recorded) and a synthetic test set as raw IDX files, runs the apd-eval binary with a
 * short schedule and checks: exit 0, JSON accuracies far above chance, identical results
 * for the same seed, and a clear exit-1 error when the test images do not match.
 * The random-real baseline takes its --train set from an .apd file (apd:FILE) as from any
 * other source: the same images as IDX files (and the file's recorded mean/std equal to the
 * IDX set's) give the same selection, normalisation and accuracies. */
#define _GNU_SOURCE
#include <check.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/dataset.h"
#include "apd/format.h"
#include "apd/quant.h"
#include "common/rng.h"

static char dir[256];

/* 16x16 grey: class 0 bar top, 1 bar bottom, 2 centre square, on noise */
static void draw(uint8_t *p, uint32_t k, apd__rng *r)
{
    for (int j = 0; j < 256; j++) p[j] = (uint8_t)apd__rng_below(r, 90);
    int off = (int)apd__rng_below(r, 3);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) {
            int on = (k == 0 && y >= 2 + off && y < 5 + off && x >= 2 && x < 14) ||
                     (k == 1 && y >= 10 + off && y < 13 + off && x >= 2 && x < 14) ||
                     (k == 2 && y >= 5 + off && y < 10 + off && x >= 5 && x < 10);
            if (on) p[y * 16 + x] = (uint8_t)(200 + apd__rng_below(r, 55));
        }
}

static void be32(FILE *f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    ck_assert_int_eq(fwrite(b, 1, 4, f), 4);
}

static void write_idx(const char *img_path, const char *lbl_path, uint32_t n, uint32_t size)
{
    FILE *fi = fopen(img_path, "wb"), *fl = fopen(lbl_path, "wb");
    ck_assert_ptr_nonnull(fi);
    ck_assert_ptr_nonnull(fl);
    be32(fi, 0x803);
    be32(fi, n);
    be32(fi, size);
    be32(fi, size);
    be32(fl, 0x801);
    be32(fl, n);
    apd__rng r;
    apd__rng_seed(&r, 99, 0);
    uint8_t p[32 * 32];
    for (uint32_t i = 0; i < n; i++) {
        uint8_t k = (uint8_t)(i % 3);
        if (size == 16) draw(p, k, &r);
        else memset(p, 7, sizeof p);
        ck_assert_int_eq(fwrite(p, 1, size * size, fi), size * size);
        ck_assert_int_eq(fwrite(&k, 1, 1, fl), 1);
    }
    fclose(fi);
    fclose(fl);
}

static void write_apd_std(const char *path, float std)
{
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.c = 1;
    o.h = 16;
    o.w = 16;
    o.kind = APD_KIND_PALETTE;
    o.k = 4;
    o.n_classes = 3;
    o.mean[0] = 0.3f;
    o.std[0] = std;
    o.no_sync = 1;
    o.force = 1;
    apd_writer *w = NULL;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, path, &o, &err) == APD_OK, "%s", err.msg);
    apd__rng r;
    apd__rng_seed(&r, 5, 0);
    uint8_t p[256];
    for (uint32_t i = 0; i < 24; i++) {
        draw(p, i % 3, &r);
        ck_assert_msg(apd_quantize_put(w, APD_QUANT_MEDIAN_CUT, p, i % 3, i, 1) == APD_OK,
                      "%s", apd_writer_errmsg(w));
    }
    ck_assert_int_eq(apd_writer_close(w), APD_OK);
}

static void write_apd(const char *path)
{
    write_apd_std(path, 0.3f);
}

/* run a command, capture stdout into buf; returns the exit status */
static int run(const char *cmd, char *buf, size_t cap)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(buf, 1, cap - 1, p);
    buf[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_tool_on_apd)
{
    snprintf(dir, sizeof dir, "%s/apd_eval_tool_XXXXXX", "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char apd[512], ti[512], tl[512], bi[512], bl[512], cmd[4096];
    snprintf(apd, sizeof apd, "%s/train.apd", dir);
    snprintf(ti, sizeof ti, "%s/test-images", dir);
    snprintf(tl, sizeof tl, "%s/test-labels", dir);
    snprintf(bi, sizeof bi, "%s/big-images", dir);
    snprintf(bl, sizeof bl, "%s/big-labels", dir);
    write_apd(apd);
    write_idx(ti, tl, 90, 16);
    write_idx(bi, bl, 6, 32);
    static char out1[8192], out2[8192], out3[8192];
    snprintf(cmd, sizeof cmd,
             "%s %s --test idx:%s,%s --epochs 25 --runs 2 --batch 16 --width 16 --depth 2 --threads 2 --seed 3 --json",
             APD_EVAL_EXE, apd, ti, tl);
    ck_assert_int_eq(run(cmd, out1, sizeof out1), 0);
    ck_assert_int_eq(run(cmd, out2, sizeof out2), 0);
    printf("apd-eval --json: %s", out1);
    const char *m = strstr(out1, "\"accuracy_mean\": ");
    ck_assert_ptr_nonnull(m);
    double acc = atof(m + strlen("\"accuracy_mean\": "));
    ck_assert(acc > 0.8); /* chance 1/3 */
    ck_assert_ptr_nonnull(strstr(out1, "\"n_train\": 24"));
    ck_assert_ptr_nonnull(strstr(out1, "\"mean\": [0.3"));
    /* same seed: same accuracies (the seconds differ) */
    const char *a1 = strstr(out1, "\"accuracies\""), *a2 = strstr(out2, "\"accuracies\"");
    ck_assert(a1 && a2);
    ck_assert_int_eq(strncmp(a1, a2, (size_t)(strstr(a1, "\"seconds\"") - a1)), 0);
    /* text mode */
    snprintf(cmd, sizeof cmd, "%s %s --test idx:%s,%s --epochs 2 --runs 1 --batch 16 --width 16 --no-dsa",
             APD_EVAL_EXE, apd, ti, tl);
    ck_assert_int_eq(run(cmd, out3, sizeof out3), 0);
    printf("apd-eval text:\n%s", out3);
    ck_assert_ptr_nonnull(strstr(out3, "run 1/1: test accuracy"));
    ck_assert_ptr_nonnull(strstr(out3, "accuracy: "));
    /* test images of another size: exit 1, message names the file and both shapes */
    snprintf(cmd, sizeof cmd, "%s %s --test idx:%s,%s --epochs 1 --runs 1 2>&1", APD_EVAL_EXE,
             apd, bi, bl);
    ck_assert_int_eq(run(cmd, out3, sizeof out3), 1);
    printf("mismatch: %s", out3);
    ck_assert_ptr_nonnull(strstr(out3, "train.apd"));
    ck_assert_ptr_nonnull(strstr(out3, "1x32x32"));
    /* a recorded std no pixel data in 0..1 can have: exit 1 before training */
    write_apd_std(apd, 0.9f);
    snprintf(cmd, sizeof cmd, "%s %s --test idx:%s,%s --epochs 1 --runs 1 2>&1", APD_EVAL_EXE, apd, ti, tl);
    ck_assert_int_eq(run(cmd, out3, sizeof out3), 1);
    printf("bad std: %s", out3);
    ck_assert_ptr_nonnull(strstr(out3, "are not a normalisation of pixels in 0..1"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* n 16x16 grey images of the 3 classes (seed 21) as a direct-colour .apd recording the
 * images' mean/std, and as IDX files. */
static void write_same_train(const char *apd, const char *img, const char *lbl, uint32_t n)
{
    apd_dataset ds;
    ck_assert_int_eq(apd_dataset_alloc(&ds, n, 1, 16, 16, 3), APD_OK);
    apd__rng r;
    apd__rng_seed(&r, 21, 0);
    for (uint32_t i = 0; i < n; i++) {
        ds.labels[i] = i % 3;
        draw(ds.pixels + i * 256, i % 3, &r);
    }
    static const char names[3][64] = {"0", "1", "2"}; /* the names IDX gives */
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.c = 1;
    o.h = o.w = 16;
    o.kind = APD_KIND_DIRECT;
    o.n_classes = 3;
    o.class_names = names;
    apd_dataset_mean_std(&ds, o.mean, o.std);
    o.no_sync = 1;
    o.force = 1;
    apd_writer *w = NULL;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, apd, &o, &err) == APD_OK, "%s", err.msg);
    for (uint32_t i = 0; i < n; i++)
        ck_assert_int_eq(apd_writer_put_direct(w, ds.pixels + i * 256, ds.labels[i], i), APD_OK);
    ck_assert_int_eq(apd_writer_close(w), APD_OK);
    FILE *fi = fopen(img, "wb"), *fl = fopen(lbl, "wb");
    ck_assert(fi && fl);
    be32(fi, 0x803);
    be32(fi, n);
    be32(fi, 16);
    be32(fi, 16);
    be32(fl, 0x801);
    be32(fl, n);
    ck_assert_int_eq(fwrite(ds.pixels, 1, (size_t)n * 256, fi), (size_t)n * 256);
    for (uint32_t i = 0; i < n; i++) ck_assert_int_eq(fputc((int)ds.labels[i], fl), (int)ds.labels[i]);
    fclose(fi);
    fclose(fl);
    apd_dataset_free(&ds);
}

START_TEST(random_real_from_apd)
{
    char d[256], apd[512], ri[512], rl[512], ti[512], tl[512], cmd[4096];
    snprintf(d, sizeof d, "%s/apd_eval_rr_XXXXXX", "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(d));
    snprintf(apd, sizeof apd, "%s/real.apd", d);
    snprintf(ri, sizeof ri, "%s/real-images", d);
    snprintf(rl, sizeof rl, "%s/real-labels", d);
    snprintf(ti, sizeof ti, "%s/test-images", d);
    snprintf(tl, sizeof tl, "%s/test-labels", d);
    write_same_train(apd, ri, rl, 60);
    write_idx(ti, tl, 90, 16);
    static char from_apd[8192], from_idx[8192];
    const char *common = "--random-real 5 --epochs 3 --runs 2 --batch 16 --width 16 --depth 2 --threads 2 "
                         "--seed 4 --json";
    snprintf(cmd, sizeof cmd, "%s %s --train apd:%s --test idx:%s,%s", APD_EVAL_EXE, common, apd, ti, tl);
    ck_assert_int_eq(run(cmd, from_apd, sizeof from_apd), 0);
    snprintf(cmd, sizeof cmd, "%s %s --train idx:%s,%s --test idx:%s,%s", APD_EVAL_EXE, common, ri, rl, ti, tl);
    ck_assert_int_eq(run(cmd, from_idx, sizeof from_idx), 0);
    printf("apd-eval --random-real 5 --train apd:FILE: %s", from_apd);
    ck_assert_ptr_nonnull(strstr(from_apd, "\"n_train\": 15"));
    /* from "n_train" to the accuracies: the same selection, normalisation and training */
    const char *a1 = strstr(from_apd, "\"n_train\""), *a2 = strstr(from_idx, "\"n_train\"");
    ck_assert(a1 && a2);
    ck_assert_msg(strncmp(a1, a2, (size_t)(strstr(a1, "\"seconds\"") - a1)) == 0, "apd: %s\nidx: %s", a1, a2);
    /* a file that is not there: exit 1 naming it */
    snprintf(cmd, sizeof cmd, "%s %s --train apd:%s/none.apd --test idx:%s,%s 2>&1", APD_EVAL_EXE, common, d, ti, tl);
    ck_assert_int_eq(run(cmd, from_apd, sizeof from_apd), 1);
    ck_assert_msg(strstr(from_apd, "none.apd") != NULL, "%s", from_apd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("eval_tool");
    TCase *tc = tcase_create("eval_tool");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_tool_on_apd);
    tcase_add_test(tc, random_real_from_apd);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
