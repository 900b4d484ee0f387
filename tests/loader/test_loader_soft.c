/* test_loader_soft.c: soft labels (format 1.1) through the loader: apd_loader_next_soft gives
 * every sample's stored vector (bit-exact, as apd_reader_soft_label) or the one-hot vector of
 * its label, with the same images, labels and order as apd_loader_next, with decode threads
 * and prefetch; a file without soft labels gives one-hot rows; bad buffer sizes are refused. */
#define _GNU_SOURCE /* mkdtemp */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/loader.h"
#include "common/rng.h"

enum { NREC = 90, NC = 5, BATCH = 16 };

static char dir[64];

/* NREC palette records 3x4x4, K = 8; soft vectors on records i % 4 != 3 when soft. */
static void write_file(const char *path, int soft)
{
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = APD_KIND_PALETTE;
    o.c = 3;
    o.h = o.w = 4;
    o.k = 8;
    o.n_classes = NC;
    o.no_sync = 1;
    o.force = 1;
    o.records_per_chunk = 32;
    o.soft_labels = soft;
    apd_writer *w;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, path, &o, &err) == APD_OK, "%s", err.msg);
    apd__rng r;
    apd__rng_seed(&r, 5, 0);
    for (uint32_t i = 0; i < NREC; i++) {
        uint8_t pal[24], idx[16];
        for (int j = 0; j < 24; j++) pal[j] = (uint8_t)apd__rng_below(&r, 256);
        for (int j = 0; j < 16; j++) idx[j] = (uint8_t)apd__rng_below(&r, 8);
        uint32_t label = i % NC;
        float v[NC];
        double sum = 0;
        for (int j = 0; j < NC; j++) sum += v[j] = (float)(apd__rng_below(&r, 100) + 1);
        for (int j = 0; j < NC; j++) v[j] = (float)(0.5 * v[j] / sum);
        v[label] = 0.5f;
        sum = 0;
        for (int j = 0; j < NC; j++) sum += v[j];
        for (int j = 0; j < NC; j++) v[j] = (float)(v[j] / sum);
        ck_assert_int_eq(apd_writer_put_palette_soft(w, pal, 8, idx, label, i, soft && i % 4 != 3 ? v : NULL),
                         APD_OK);
    }
    ck_assert_int_eq(apd_writer_close(w), APD_OK);
}

static void check_epoch(const char *path, int soft, uint32_t threads, uint32_t prefetch)
{
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.batch_size = BATCH;
    o.seed = 9;
    o.threads = threads;
    o.prefetch = prefetch;
    apd_loader *a, *b;
    apd_err err;
    ck_assert_msg(apd_loader_open(&a, path, &o, &err) == APD_OK, "%s", err.msg);
    ck_assert_int_eq(apd_loader_open(&b, path, &o, &err), APD_OK);
    ck_assert_uint_eq(apd_loader_num_classes(a), NC);
    ck_assert_int_eq(apd_loader_has_soft_labels(a), soft);
    apd_reader *rd;
    ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
    size_t ib = apd_loader_batch_bytes(a);
    float *xa = malloc(ib), *xb = malloc(ib), sv[BATCH * NC];
    int64_t ya[BATCH], yb[BATCH];
    uint64_t ia[BATCH], ib2[BATCH];
    size_t na, nb, seen = 0, stored = 0;
    double max_err = 0;
    ck_assert_int_eq(apd_loader_next_soft(a, xa, ib, ya, sv, BATCH * NC - 1, ia, &na), APD_EBUFSIZE);
    for (;;) {
        /* labels and indices NULL on odd batches: the loader supplies its own */
        int odd = seen % (2 * BATCH) != 0;
        ck_assert_int_eq(apd_loader_next_soft(a, xa, ib, odd ? NULL : ya, sv, BATCH * NC, odd ? NULL : ia, &na),
                         APD_OK);
        ck_assert_int_eq(apd_loader_next(b, xb, ib, yb, ib2, &nb), APD_OK);
        ck_assert_uint_eq(na, nb);
        if (na == 0) break;
        ck_assert_int_eq(memcmp(xa, xb, na * apd_loader_image_bytes(a)), 0);
        for (size_t s = 0; s < na; s++) {
            if (!odd) ck_assert(ya[s] == yb[s] && ia[s] == ib2[s]);
            float want[NC];
            int present;
            ck_assert_int_eq(apd_reader_soft_label(rd, ib2[s], want, NC, &present), APD_OK);
            ck_assert_int_eq(present, soft && ib2[s] % 4 != 3);
            stored += (size_t)present;
            for (int j = 0; j < NC; j++) {
                max_err = fmax(max_err, fabs((double)sv[s * NC + j] - (double)want[j]));
                ck_assert(memcmp(&sv[s * NC + j], &want[j], 4) == 0);
                if (!present) ck_assert(want[j] == (j == yb[s] ? 1.0f : 0.0f));
            }
        }
        seen += na;
    }
    ck_assert_uint_eq(seen, NREC);
    printf("%s, threads %u, prefetch %u: %zu samples, %zu stored vectors, max error %g\n", path, threads,
           prefetch, seen, stored, max_err);
    free(xa);
    free(xb);
    apd_reader_close(rd);
    apd_loader_close(a);
    apd_loader_close(b);
}

START_TEST(loader_soft_labels)
{
    char p1[128], p0[128];
    snprintf(p1, sizeof p1, "%s/soft.apd", dir);
    snprintf(p0, sizeof p0, "%s/hard.apd", dir);
    write_file(p1, 1);
    write_file(p0, 0);
    check_epoch(p1, 1, 1, 0);
    check_epoch(p1, 1, 2, 3);
    check_epoch(p0, 0, 2, 0);
}
END_TEST

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/apd-lsoft-XXXXXX");
    if (!mkdtemp(dir)) return 2;
    Suite *s = suite_create("loader_soft");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, loader_soft_labels);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return nf ? 1 : 0;
}
