/* test_loader_file.c: the loader on real .apd files written by apd_mktest (format writer):
 * pixels and labels of every output layout match the records; threads/prefetch give the
 * same batches; a corrupt record fails naming its record and chunk key, or is skipped and
 * counted; bad paths and non-.apd files fail with clear errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/loader.h"
#include "mem_source.h"
#include "test_data.h"

static char dir[512];

static void mkfile(const char *name, const char *args, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/tests/loader/apd_mktest' synth '%s' %s", APD_BINARY_DIR, path, args);
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "%s/tests/loader/tmp-%ld", APD_BINARY_DIR, (long)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    ck_assert(system(cmd) == 0);
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

START_TEST(values_all_layouts)
{
    char path[600];
    mkfile("v.apd", "300 --c 3 --hw 8 --k 64", path, sizeof path);
    mem_src m = {300, 3, 8, 8, 10, 64, 1, NULL}; /* same formula as apd_mktest synth */
    double maxerr = 0;
    for (uint32_t out = 0; out <= 2; out++)
        for (int cfg = 0; cfg < 3; cfg++) {
            apd_loader_opts o;
            apd_loader_opts_default(&o);
            o.batch_size = 32; o.output = out; o.seed = 11;
            o.threads = cfg ? 2 : 1; o.prefetch = cfg == 2 ? 2 : 0;
            apd_loader *l;
            apd_err err;
            ck_assert_msg(apd_loader_open(&l, path, &o, &err) == APD_OK, "%s", err.msg);
            ck_assert_uint_eq(apd_loader_num_samples(l), 300);
            float mean[3], std[3];
            apd_loader_norm(l, mean, std);
            ck_assert(fabsf(mean[0] - 0.5f) < 1e-6f && fabsf(std[2] - 0.25f) < 1e-6f);
            uint8_t *buf = malloc(apd_loader_batch_bytes(l));
            int64_t lab[32];
            uint64_t idx[32];
            size_t n, total = 0;
            uint8_t seen[300] = {0};
            while (apd_loader_next(l, buf, apd_loader_batch_bytes(l), lab, idx, &n) == APD_OK && n) {
                for (size_t i = 0; i < n; i++) {
                    ck_assert_int_eq(lab[i], (int64_t)(idx[i] % 10));
                    ck_assert_uint_eq(seen[idx[i]]++, 0);
                    uint8_t px[192];
                    mem_pixels_chw(&m, idx[i], px);
                    const uint8_t *img = buf + i * apd_loader_image_bytes(l);
                    for (int ch = 0; ch < 3; ch++)
                        for (int p = 0; p < 64; p++) {
                            uint8_t v = px[ch * 64 + p];
                            if (out == APD_OUT_U8_HWC) ck_assert_uint_eq(img[p * 3 + ch], v);
                            else if (out == APD_OUT_U8_CHW) ck_assert_uint_eq(img[ch * 64 + p], v);
                            else {
                                double want = ((double)v / 255.0 - mean[ch]) / std[ch];
                                double e = fabs(((const float *)img)[ch * 64 + p] - want);
                                if (e > maxerr) maxerr = e;
                                ck_assert(e < 1e-5);
                            }
                        }
                }
                total += n;
            }
            ck_assert_uint_eq(total, 300);
            free(buf);
            apd_loader_close(l);
        }
    printf("values_all_layouts: max float error %.3g\n", maxerr);
}
END_TEST

START_TEST(corrupt_fail_or_skip)
{
    char path[600];
    mkfile("c.apd", "200 --k 16 --corrupt 17 --corrupt 150", path, sizeof path);
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.batch_size = 50; o.shuffle = 0;
    apd_loader *l;
    apd_err err;
    ck_assert_msg(apd_loader_open(&l, path, &o, &err) == APD_OK, "%s", err.msg);
    uint8_t *buf = malloc(apd_loader_batch_bytes(l));
    size_t n;
    apd_status st = apd_loader_next(l, buf, apd_loader_batch_bytes(l), NULL, NULL, &n);
    ck_assert_int_eq(st, APD_ECHECKSUM);
    const char *msg = apd_loader_errmsg(l);
    printf("corrupt record message: %s\n", msg);
    ck_assert(strstr(msg, "record 17") != NULL);
    ck_assert(strstr(msg, "key") != NULL);
    ck_assert(strstr(msg, "c.apd") != NULL);
    apd_loader_close(l);
    free(buf);

    o.skip_corrupt = 1; o.threads = 2; o.output = APD_OUT_U8_HWC;
    ck_assert(apd_loader_open(&l, path, &o, &err) == APD_OK);
    buf = malloc(apd_loader_batch_bytes(l));
    uint64_t idx[50];
    size_t total = 0;
    while (apd_loader_next(l, buf, apd_loader_batch_bytes(l), NULL, idx, &n) == APD_OK && n) {
        for (size_t i = 0; i < n; i++) ck_assert(idx[i] != 17 && idx[i] != 150);
        total += n;
    }
    ck_assert_uint_eq(total, 198);
    ck_assert_uint_eq(apd_loader_skipped(l), 2);
    apd_loader_close(l);
    free(buf);
}
END_TEST

/* Direct-colour records (real CIFAR images) through the reader: bytes identical to the
 * source file, float output normalised from them. */
START_TEST(direct_records)
{
    const char *bin = APD_TEST_CIFAR "/test.bin";
    FILE *f = fopen(bin, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", bin);
    enum { N = 100 };
    uint8_t *src = malloc((size_t)N * 3073);
    ck_assert_uint_eq(fread(src, 3073, N, f), N);
    fclose(f);
    char path[600], cmd[2048];
    snprintf(path, sizeof path, "%s/d.apd", dir);
    snprintf(cmd, sizeof cmd, "'%s/tests/loader/apd_mktest' direct '%s' '%s' %d", APD_BINARY_DIR,
             path, bin, N);
    ck_assert(system(cmd) == 0);
    for (uint32_t out = APD_OUT_U8_CHW; out <= APD_OUT_F32_CHW; out++) {
        apd_loader_opts o;
        apd_loader_opts_default(&o);
        o.batch_size = 32; o.shuffle = 0; o.output = out; o.threads = 2;
        apd_loader *l;
        apd_err err;
        ck_assert_msg(apd_loader_open(&l, path, &o, &err) == APD_OK, "%s", err.msg);
        float mean[3], std[3];
        apd_loader_norm(l, mean, std);
        uint8_t *buf = malloc(apd_loader_batch_bytes(l));
        int64_t lab[32];
        uint64_t idx[32];
        size_t n, total = 0;
        while (apd_loader_next(l, buf, apd_loader_batch_bytes(l), lab, idx, &n) == APD_OK && n) {
            for (size_t i = 0; i < n; i++) {
                const uint8_t *rec = src + idx[i] * 3073;
                ck_assert_int_eq(lab[i], rec[0]);
                if (out == APD_OUT_U8_CHW) {
                    ck_assert_mem_eq(buf + i * 3072, rec + 1, 3072);
                } else {
                    const float *x = (const float *)buf + i * 3072;
                    for (int p = 0; p < 3072; p++) {
                        double want = ((double)rec[1 + p] / 255.0 - mean[p / 1024]) / std[p / 1024];
                        ck_assert(fabs(x[p] - want) < 1e-5);
                    }
                }
            }
            total += n;
        }
        ck_assert_uint_eq(total, N);
        free(buf);
        apd_loader_close(l);
    }
    free(src);
}
END_TEST

START_TEST(bad_paths)
{
    apd_loader *l = (apd_loader *)1;
    apd_err err;
    char path[600];
    snprintf(path, sizeof path, "%s/missing.apd", dir);
    apd_status st = apd_loader_open(&l, path, NULL, &err);
    ck_assert_int_eq(st, APD_ENOENT);
    ck_assert_ptr_null(l);
    ck_assert(strstr(err.msg, "missing.apd") != NULL);
    snprintf(path, sizeof path, "%s/junk.apd", dir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 10000; i++) fputc(i * 7, f);
    fclose(f);
    st = apd_loader_open(&l, path, NULL, &err);
    ck_assert_int_ne(st, APD_OK);
    ck_assert_ptr_null(l);
    printf("junk file: %s (%s)\n", err.msg, apd_strerror(st));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader_file");
    TCase *t = tcase_create("file");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, values_all_layouts);
    tcase_add_test(t, corrupt_fail_or_skip);
    tcase_add_test(t, direct_records);
    tcase_add_test(t, bad_paths);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
