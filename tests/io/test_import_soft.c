/* test_import_soft.c: soft labels (format 1.1) through the importers, on files this test
 * writes (nothing from the shared data folder):
 * - apd:FILE imports an .apd file through the reader: pixels, labels, class names, split,
 *   mean/std and the soft labels (with which records store one) equal what was written;
 *   a split the file is not, a missing file and a limit behave as for other sources;
 * - apd-export --png [--per-class] then folder:EXPORT gives the same soft labels bit for bit
 *   (and the same stored flags, pixels and labels), also with a class-balanced limit;
 * - hostile soft-labels.csv rows: each is APD_EDATASET naming the file, line and reason.
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "apd/format.h"
#include "apd/io.h"
#include "common/rng.h"
#include "io_test_util.h"

enum { N = 36, NC = 4, C = 3, H = 8, W = 8, K = 6 };

static float g_soft[N][NC];  /* what was written (rows of records without a vector unused) */
static uint32_t g_label[N];
static int g_stored[N];
static char *g_dir;

/* The label with the largest value of a random distribution (ties: the first). */
static void random_row(apd__rng *r, float *v, uint32_t *label)
{
    double s = 0, t[NC];
    for (int k = 0; k < NC; k++) s += t[k] = (double)apd__rng_below(r, 1000) + 1.0;
    *label = 0;
    for (int k = 0; k < NC; k++) {
        v[k] = (float)(t[k] / s);
        if (v[k] > v[*label]) *label = (uint32_t)k;
    }
}

/* DIR/NAME: palette (or direct) records with soft labels, every third without a vector. */
static void write_file(const char *path, int palette, const char *split)
{
    static const char names[NC][64] = {"cat", "dog", "a/b", "deer"};
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = palette ? APD_KIND_PALETTE : APD_KIND_DIRECT;
    o.c = C;
    o.h = H;
    o.w = W;
    o.k = palette ? K : 0;
    o.n_classes = NC;
    o.class_names = names;
    o.soft_labels = 1;
    o.no_sync = 1;
    o.force = 1;
    o.dataset_name = "softtoy";
    for (int ch = 0; ch < C; ch++) {
        o.mean[ch] = 0.25f + 0.125f * (float)ch;
        o.std[ch] = 0.2f;
    }
    apd_writer *w;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, path, &o, &err) == APD_OK, "%s", err.msg);
    apd__rng r;
    apd__rng_seed(&r, 42, (uint64_t)palette);
    for (int i = 0; i < N; i++) {
        random_row(&r, g_soft[i], &g_label[i]);
        g_stored[i] = i % 3 != 2;
        const float *sp = g_stored[i] ? g_soft[i] : NULL;
        if (!g_stored[i])
            for (int k = 0; k < NC; k++) g_soft[i][k] = (uint32_t)k == g_label[i] ? 1.0f : 0.0f;
        apd_status s;
        if (palette) {
            uint8_t pal[K * C], idx[H * W];
            for (int p = 0; p < K * C; p++) pal[p] = (uint8_t)apd__rng_below(&r, 256);
            for (int p = 0; p < H * W; p++) idx[p] = (uint8_t)apd__rng_below(&r, K);
            s = apd_writer_put_palette_soft(w, pal, K, idx, g_label[i], 1000u + (uint64_t)i, sp);
        } else {
            uint8_t chw[C * H * W];
            for (int p = 0; p < C * H * W; p++) chw[p] = (uint8_t)apd__rng_below(&r, 256);
            s = apd_writer_put_direct_soft(w, chw, g_label[i], APD_NO_SOURCE_ID, sp);
        }
        ck_assert_msg(s == APD_OK, "%s", apd_writer_errmsg(w));
    }
    if (split) {
        char src[64];
        snprintf(src, sizeof src, "{\"split\": \"%s\"}", split);
        ck_assert_int_eq(apd_writer_set_meta(w, "source", src), APD_OK);
    }
    ck_assert_int_eq(apd_writer_close(w), APD_OK);
}

/* ds's soft labels are those written for the records ds->source_ids name, bit for bit. */
static void same_soft(const apd_dataset *ds, const char *what)
{
    ck_assert_msg(ds->soft_labels != NULL && ds->soft_stored != NULL, "%s: no soft labels", what);
    uint64_t differ = 0, stored = 0;
    for (uint64_t i = 0; i < ds->n; i++) {
        uint64_t src = ds->source_ids[i];
        ck_assert_uint_lt(src, N);
        ck_assert_uint_eq(ds->labels[i], g_label[src]);
        ck_assert_int_eq(ds->soft_stored[i], g_stored[src]);
        differ += memcmp(ds->soft_labels + i * NC, g_soft[src], sizeof g_soft[src]) != 0;
        stored += ds->soft_stored[i];
    }
    printf("%s: %llu images, %llu store a vector, %llu rows differ from the written ones\n", what,
           (unsigned long long)ds->n, (unsigned long long)stored, (unsigned long long)differ);
    ck_assert_uint_eq(differ, 0);
}

static void run_ok(const char *cmd)
{
    int rc = system(cmd);
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s: status %d", cmd, rc);
}

START_TEST(apd_file_import)
{
    for (int palette = 0; palette < 2; palette++) {
        char path[1200], spec[1300];
        snprintf(path, sizeof path, "%s/%s.apd", g_dir, palette ? "pal" : "direct");
        write_file(path, palette, palette ? NULL : "test");
        snprintf(spec, sizeof spec, "apd:%s", path);
        apd_dataset ds;
        apd_err e;
        ck_assert_msg(apd_import(&ds, spec, NULL, NULL, &e) == APD_OK, "%s", e.msg);
        ck_assert(ds.n == N && ds.c == C && ds.h == H && ds.w == W && ds.n_classes == NC);
        ck_assert_str_eq(ds.class_names[2], "a/b");
        ck_assert_str_eq(ds.name, "softtoy");
        ck_assert_str_eq(ds.split, palette ? "train" : "test");
        ck_assert_str_eq(ds.source, spec);
        ck_assert(ds.has_norm && ds.norm_mean[1] == 0.375f && ds.norm_std[2] == 0.2f);
        same_soft(&ds, spec);
        /* the pixels are the reader's */
        apd_reader *r;
        ck_assert_int_eq(apd_reader_open(&r, path, NULL, &e), APD_OK);
        uint8_t px[C * H * W];
        for (uint64_t i = 0; i < N; i++) {
            ck_assert_int_eq(apd_reader_decode(r, i, APD_LAYOUT_CHW, px, sizeof px, NULL), APD_OK);
            ck_assert(memcmp(px, ds.pixels + i * sizeof px, sizeof px) == 0);
            ck_assert_uint_eq(ds.source_ids[i], i);
        }
        apd_reader_close(r);
        apd_dataset_free(&ds);
        /* the file's split or none; a limit keeps the first records */
        ck_assert_int_eq(apd_import(&ds, spec, palette ? "test" : "train", NULL, &e), APD_EDATASET);
        ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, palette ? "no test split" : "the test split"), "%s", e.msg);
        apd_import_opts o;
        apd_import_opts_default(&o);
        o.limit = 5;
        ck_assert_msg(apd_import(&ds, spec, palette ? "train" : "test", &o, &e) == APD_OK, "%s", e.msg);
        ck_assert_uint_eq(ds.n, 5);
        same_soft(&ds, "apd: limit 5");
        apd_dataset_free(&ds);
        o.size = 16;
        ck_assert_int_eq(apd_import(&ds, spec, NULL, &o, &e), APD_EINVAL);
    }
    apd_dataset ds;
    apd_err e;
    char spec[1300];
    snprintf(spec, sizeof spec, "apd:%s/nope.apd", g_dir);
    ck_assert_int_ne(apd_import(&ds, spec, NULL, NULL, &e), APD_OK);
    ck_assert_msg(strstr(e.msg, "nope.apd") != NULL, "%s", e.msg);
    ck_assert_ptr_null(ds.pixels);
}
END_TEST

START_TEST(export_folder_round_trip)
{
    char path[1200], ex[1200], cmd[4000], spec[1400];
    snprintf(path, sizeof path, "%s/pal.apd", g_dir);
    write_file(path, 1, NULL);
    apd_dataset ref;
    apd_err e;
    snprintf(spec, sizeof spec, "apd:%s", path);
    ck_assert_msg(apd_import(&ref, spec, NULL, NULL, &e) == APD_OK, "%s", e.msg);
    for (int per_class = 0; per_class < 2; per_class++) {
        snprintf(ex, sizeof ex, "%s/ex%d", g_dir, per_class);
        snprintf(cmd, sizeof cmd, "'%s/apd-export' '%s' --png '%s'%s >/dev/null", APD_BINARY_DIR, path, ex,
                 per_class ? " --per-class" : "");
        run_ok(cmd);
        snprintf(spec, sizeof spec, "folder:%s", ex);
        apd_dataset ds;
        ck_assert_msg(apd_import(&ds, spec, NULL, NULL, &e) == APD_OK, "%s", e.msg);
        ck_assert_uint_eq(ds.n, N);
        same_soft(&ds, per_class ? "apd-export --per-class, folder import" : "apd-export, folder import");
        ck_assert(memcmp(ds.pixels, ref.pixels, (size_t)N * C * H * W) == 0);
        apd_dataset_free(&ds);
        apd_import_opts o;
        apd_import_opts_default(&o);
        o.limit = 9; /* class-balanced: rows follow the images chosen */
        ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
        ck_assert_uint_eq(ds.n, 9);
        same_soft(&ds, "folder: limit 9");
        apd_dataset_free(&ds);
        /* apd-convert writes them back: direct and quantized files of the folder carry the
         * same vectors (one for one records) */
        for (int q = 0; q < 2; q++) {
            char out[1300];
            snprintf(out, sizeof out, "%s/back%d%d.apd", g_dir, per_class, q);
            snprintf(cmd, sizeof cmd, "'%s/apd-convert' --input 'folder:%s' --method %s -o '%s' --force --quiet",
                     APD_BINARY_DIR, ex, q ? "quantize --colors 4" : "direct", out);
            run_ok(cmd);
            snprintf(spec, sizeof spec, "apd:%s", out);
            ck_assert_msg(apd_import(&ds, spec, NULL, NULL, &e) == APD_OK, "%s", e.msg);
            ck_assert_uint_eq(ds.n, N);
            same_soft(&ds, q ? "folder -> apd-convert quantize" : "folder -> apd-convert direct");
            apd_dataset_free(&ds);
        }
    }
    apd_dataset_free(&ref);
}
END_TEST

START_TEST(hostile_soft_rows)
{
    char path[1200], ex[1200], cmd[4000], spec[1300], csv[1300];
    snprintf(path, sizeof path, "%s/small.apd", g_dir);
    write_file(path, 1, NULL);
    snprintf(ex, sizeof ex, "%s/exs", g_dir);
    snprintf(cmd, sizeof cmd, "'%s/apd-export' '%s' --png '%s' --limit 2 >/dev/null", APD_BINARY_DIR, path, ex);
    run_ok(cmd);
    snprintf(spec, sizeof spec, "folder:%s", ex);
    snprintf(csv, sizeof csv, "%s/soft-labels.csv", ex);
    /* records 0 and 1 store vectors; their labels are g_label[0], g_label[1] */
    char good0[200], good1[200], onehot_wrong[200];
    snprintf(good0, sizeof good0, "0,1,%.9g,%.9g,%.9g,%.9g\n", (double)g_soft[0][0], (double)g_soft[0][1],
             (double)g_soft[0][2], (double)g_soft[0][3]);
    snprintf(good1, sizeof good1, "1,1,%.9g,%.9g,%.9g,%.9g\n", (double)g_soft[1][0], (double)g_soft[1][1],
             (double)g_soft[1][2], (double)g_soft[1][3]);
    uint32_t other = (g_label[0] + 1) % NC;
    snprintf(onehot_wrong, sizeof onehot_wrong, "0,0,%d,%d,%d,%d\n", other == 0, other == 1, other == 2, other == 3);
    const char *hdr = "index,stored,p0,p1,p2,p3\n";
    static char texts[16][800];
    const char *why[16];
    int n = 0;
    snprintf(texts[n], 800, "index,stored,p0,p1,p2\n%s%s", good0, good1), why[n++] = "line 1: header";
    snprintf(texts[n], 800, "%s%s", hdr, good0), why[n++] = "no row for index 1";
    snprintf(texts[n], 800, "%s%s%s%s", hdr, good0, good1, good0), why[n++] = "line 4: a second row for index 0";
    snprintf(texts[n], 800, "%s%s%s7,1,1,0,0,0\n", hdr, good0, good1), why[n++] = "line 4: index 7 is not in labels.csv";
    snprintf(texts[n], 800, "%sx,1,1,0,0,0\n", hdr), why[n++] = "line 2: index 'x' is not a number";
    snprintf(texts[n], 800, "%s%s1,2,0.25,0.25,0.25,0.25\n", hdr, good0), why[n++] = "line 3: stored is not 0 or 1";
    snprintf(texts[n], 800, "%s%s1,1,0.5,0.5\n", hdr, good0), why[n++] = "line 3: 2 values, expected 4";
    snprintf(texts[n], 800, "%s%s1,1,0.25,0.25,0.25,0.25,0\n", hdr, good0), why[n++] = "line 3: more than 4 values";
    snprintf(texts[n], 800, "%s%s1,1,nan,0.5,0.25,0.25\n", hdr, good0), why[n++] = "line 3: class 0: 'nan' is not a finite";
    snprintf(texts[n], 800, "%s%s1,1,-0.5,0.5,0.5,0.5\n", hdr, good0), why[n++] = "line 3: class 0: -0.5 is negative";
    snprintf(texts[n], 800, "%s%s1,1,0.5,0.5,0.5,0.5\n", hdr, good0), why[n++] = "line 3: the values sum to 2";
    snprintf(texts[n], 800, "%s%s%s", hdr, onehot_wrong, good1), why[n++] = "line 2: label";
    snprintf(texts[n], 800, "%s0,0%s%s", hdr, strchr(strchr(good0, ',') + 1, ','), good1),
        why[n++] = "line 2: stored 0, but not the one-hot vector";
    for (int i = 0; i < n; i++) {
        tu_write(csv, texts[i], strlen(texts[i]));
        apd_dataset ds;
        apd_err e;
        apd_status st = apd_import(&ds, spec, NULL, NULL, &e);
        ck_assert_msg(st == APD_EDATASET, "case %d: status %d (%s)", i, st, e.msg);
        ck_assert_msg(strstr(e.msg, "soft-labels.csv") && strstr(e.msg, why[i]), "case %d: '%s' lacks '%s'", i, e.msg,
                      why[i]);
        ck_assert_ptr_null(ds.pixels);
        printf("  refused: %s\n", e.msg);
    }
    /* the good rows again: accepted */
    snprintf(texts[0], 800, "%s%s%s", hdr, good1, good0);
    tu_write(csv, texts[0], strlen(texts[0]));
    apd_dataset ds;
    apd_err e;
    ck_assert_msg(apd_import(&ds, spec, NULL, NULL, &e) == APD_OK, "%s", e.msg);
    same_soft(&ds, "rows in another order");
    apd_dataset_free(&ds);
}
END_TEST

int main(void)
{
    g_dir = malloc(1024); /* not tu_tmpdir: no Check assertion outside a test */
    snprintf(g_dir, 1024, "%s/tests/io/tmp-soft-XXXXXX", APD_BINARY_DIR);
    if (!mkdtemp(g_dir)) return EXIT_FAILURE;
    Suite *s = suite_create("import_soft");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, apd_file_import);
    tcase_add_test(t, export_folder_round_trip);
    tcase_add_test(t, hostile_soft_rows);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (!failed && system(cmd) != 0) failed = 1;
    free(g_dir);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
