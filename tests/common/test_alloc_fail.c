/* test_alloc_fail.c: every allocation of small workloads fails once, one at a time.
 *
 * For n = 1, 2, ... the n-th allocation the library makes (malloc, calloc, realloc, strdup;
 * failalloc.h) returns NULL, until a run makes fewer than n allocations. Workloads: the
 * writer (palette records with zstd, a trained dictionary and coded index maps, several
 * chunks, compaction; a direct-colour file), the reader (open, info, decode, verify every
 * record), the loader (one shuffled float epoch with a decode thread and prefetch) and the
 * importers (CIFAR binary, IDX, a folder of PNG and JPEG files as stored and resized, a
 * CIFAR python pickle, an .apd file with soft labels, an apd-export folder with
 * soft-labels.csv).
 * Each run must end in APD_OK (the failure had a fallback, e.g. the compaction) or
 * APD_ENOMEM with a message; anything else, a crash, a published partial file or a
 * temporary left behind fails the test. Leaks are found by the sanitizer pass of the suite
 * (ASan with detect_leaks=1 runs this binary too).
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/io.h"
#include "apd/loader.h"
#include "failalloc.h"
#include "test_data.h"

static char g_dir[512];
static char g_out[640], g_pal[640], g_direct[640], g_cifar[1300], g_idx[2][640], g_folder[640], g_pickle[1300];
static char g_soft_apd[700], g_soft_folder[700];

/* A workload: one pass of library calls; the message of a failure into msg. Uses no
 * allocation of its own (static buffers), so every counted allocation is the library's. */
typedef apd_status (*workload_fn)(char *msg, size_t cap);

#define NREC 70 /* >= 64: the writer trains a zstd dictionary on the first flush */
static uint8_t g_idxmap[NREC][8 * 8], g_palette[NREC][16 * 3], g_chw[3 * 8 * 8];

static void make_records(void)
{
    uint32_t x = 12345;
    for (int i = 0; i < NREC; i++) {
        for (int p = 0; p < 16 * 3; p++) g_palette[i][p] = (uint8_t)(p * 16 + i);
        for (int p = 0; p < 64; p++) {
            x = x * 1103515245u + 12345u;
            g_idxmap[i][p] = (uint8_t)((p / 8 + (x >> 28)) & 15); /* smooth-ish: coding pays */
        }
    }
    for (int p = 0; p < 3 * 64; p++) g_chw[p] = (uint8_t)(p * 7);
}

static void copy_msg(char *msg, size_t cap, const char *m)
{
    snprintf(msg, cap, "%s", m ? m : "");
}

static apd_writer_opts palette_opts(void)
{
    static const char names[2][64] = {"zero", "one"};
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = APD_KIND_PALETTE;
    o.c = 3;
    o.h = o.w = 8;
    o.k = 16;
    o.n_classes = 2;
    o.class_names = names;
    o.compress = APD_COMPRESS_ON;
    o.index_coding = APD_ICODE_ON;
    o.records_per_chunk = 40;
    o.no_sync = 1;
    o.force = 1;
    return o;
}

static apd_writer_opts direct_opts(void)
{
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = APD_KIND_DIRECT;
    o.c = 3;
    o.h = o.w = 8;
    o.n_classes = 0;
    o.compress = APD_COMPRESS_AUTO;
    o.no_sync = 1;
    o.force = 1;
    return o;
}

/* The records (and metadata) a writer workload puts into w. */
typedef apd_status (*put_fn)(apd_writer *w);

static apd_status put_palette(apd_writer *w)
{
    apd_status s = APD_OK;
    for (int i = 0; i < NREC && s == APD_OK; i++)
        s = apd_writer_put_palette(w, g_palette[i], 16, g_idxmap[i], (uint32_t)(i % 2), (uint64_t)i);
    if (s == APD_OK) s = apd_writer_set_meta(w, "dataset", "\"failalloc\"");
    return s;
}

static apd_status put_direct(apd_writer *w)
{
    apd_status s = APD_OK;
    for (int i = 0; i < 3 && s == APD_OK; i++) s = apd_writer_put_direct(w, g_chw, (uint32_t)i, APD_NO_SOURCE_ID);
    return s;
}

/* One write of path: create with o, put, finish (a failed put discards the file); the
 * message of a failure into msg. */
/* 3 direct records with soft labels (the second stores none) for wl_import_apd. */
static apd_status put_direct_soft(apd_writer *w)
{
    static const float soft[2][2] = {{0.75f, 0.25f}, {0.125f, 0.875f}};
    apd_status s = apd_writer_put_direct_soft(w, g_chw, 0, APD_NO_SOURCE_ID, soft[0]);
    if (s == APD_OK) s = apd_writer_put_direct_soft(w, g_chw, 1, APD_NO_SOURCE_ID, NULL);
    if (s == APD_OK) s = apd_writer_put_direct_soft(w, g_chw, 1, APD_NO_SOURCE_ID, soft[1]);
    return s;
}

static apd_status write_with(const char *path, apd_writer_opts o, put_fn put, char *msg, size_t cap)
{
    apd_writer *w;
    apd_err err;
    apd_status s = apd_writer_create(&w, path, &o, &err);
    if (s != APD_OK) {
        copy_msg(msg, cap, err.msg);
        return s;
    }
    s = put(w);
    if (s != APD_OK) {
        copy_msg(msg, cap, apd_writer_errmsg(w));
        apd_writer_discard(w);
        return s;
    }
    s = apd_writer_finish(w, &err);
    if (s != APD_OK) copy_msg(msg, cap, err.msg);
    return s;
}

static apd_status wl_writer_palette(char *msg, size_t cap)
{
    return write_with(g_out, palette_opts(), put_palette, msg, cap);
}

static apd_status wl_writer_direct(char *msg, size_t cap)
{
    return write_with(g_out, direct_opts(), put_direct, msg, cap);
}

static apd_status read_all(const char *path, char *msg, size_t cap)
{
    static uint8_t pix[3 * 8 * 8];
    static float f32[3 * 8 * 8];
    apd_reader *r;
    apd_err err;
    apd_status s = apd_reader_open(&r, path, NULL, &err);
    if (s != APD_OK) {
        copy_msg(msg, cap, err.msg);
        return s;
    }
    apd_file_info fi;
    s = apd_reader_info(r, &fi);
    apd_file_stats st;
    if (s == APD_OK) s = apd_reader_stats(r, &st);
    for (uint64_t i = 0; i < fi.n_records && s == APD_OK; i++) {
        uint32_t label;
        s = apd_reader_decode(r, i, i % 2 ? APD_LAYOUT_HWC : APD_LAYOUT_CHW, pix, sizeof pix, &label);
        if (s == APD_OK) {
            static const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.25f, 0.25f, 0.25f};
            s = apd_reader_decode_f32(r, i, APD_LAYOUT_CHW, mean, sd, f32, sizeof f32, NULL);
        }
        if (s == APD_OK) s = apd_reader_verify_record(r, i);
    }
    if (s != APD_OK) copy_msg(msg, cap, apd_reader_errmsg(r));
    apd_reader_close(r);
    return s;
}

static apd_status wl_reader_palette(char *msg, size_t cap)
{
    return read_all(g_pal, msg, cap);
}

static apd_status wl_reader_direct(char *msg, size_t cap)
{
    return read_all(g_direct, msg, cap);
}

static apd_status wl_loader(char *msg, size_t cap)
{
    static float batch[16 * 3 * 8 * 8];
    static int64_t labels[16];
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.batch_size = 16;
    o.seed = 7;
    o.threads = 1;
    o.prefetch = 2;
    apd_loader *l;
    apd_err err;
    apd_status s = apd_loader_open(&l, g_pal, &o, &err);
    if (s != APD_OK) {
        copy_msg(msg, cap, err.msg);
        return s;
    }
    size_t n = 1;
    while (s == APD_OK && n) s = apd_loader_next(l, batch, sizeof batch, labels, NULL, &n);
    if (s != APD_OK) copy_msg(msg, cap, apd_loader_errmsg(l));
    apd_loader_close(l);
    return s;
}

static apd_status import(const char *spec, const char *split, uint32_t size, char *msg, size_t cap)
{
    apd_dataset ds;
    memset(&ds, 0, sizeof ds);
    apd_err err;
    apd_import_opts o;
    apd_import_opts_default(&o);
    o.size = size;
    apd_status s = apd_import(&ds, spec, split, &o, &err);
    if (s != APD_OK) copy_msg(msg, cap, err.msg);
    apd_dataset_free(&ds);
    return s;
}

static apd_status wl_import_cifar(char *msg, size_t cap)
{
    return import(g_cifar, NULL, 0, msg, cap);
}

static apd_status wl_import_idx(char *msg, size_t cap)
{
    static char spec[1400];
    snprintf(spec, sizeof spec, "idx:%s,%s", g_idx[0], g_idx[1]);
    return import(spec, NULL, 0, msg, cap);
}

static apd_status wl_import_folder(char *msg, size_t cap)
{
    return import(g_folder, "train", 0, msg, cap);
}

/* resized to 16x16 (shorter side + centre crop) */
static apd_status wl_import_folder_resized(char *msg, size_t cap)
{
    return import(g_folder, "train", 16, msg, cap);
}

static apd_status wl_import_pickle(char *msg, size_t cap)
{
    return import(g_pickle, NULL, 0, msg, cap);
}

/* an .apd file with soft labels through the reader (apd:FILE) */
static apd_status wl_import_apd(char *msg, size_t cap)
{
    return import(g_soft_apd, NULL, 0, msg, cap);
}

/* an apd-export folder with soft-labels.csv */
static apd_status wl_import_export_soft(char *msg, size_t cap)
{
    return import(g_soft_folder, NULL, 0, msg, cap);
}

/* A write that completed despite the failed allocation (a fallback: no dictionary, no
 * compaction, ...) must still hold exactly the records put, with their labels and metadata. */
static void check_written(const char *name, unsigned long n, int palette)
{
    static uint8_t pix[8 * 8 * 3];
    apd_reader *r;
    apd_err err;
    ck_assert_msg(apd_reader_open(&r, g_out, NULL, &err) == APD_OK, "%s, allocation %lu: %s", name, n, err.msg);
    apd_file_info fi;
    ck_assert_int_eq(apd_reader_info(r, &fi), APD_OK);
    ck_assert_msg(fi.n_records == (palette ? NREC : 3), "%s, allocation %lu: %llu records", name, n,
                  (unsigned long long)fi.n_records);
    for (uint64_t i = 0; i < fi.n_records; i++) {
        uint32_t label;
        ck_assert_int_eq(apd_reader_decode(r, i, APD_LAYOUT_HWC, pix, sizeof pix, &label), APD_OK);
        ck_assert_uint_eq(label, palette ? i % 2 : i);
        int diff = 0; /* one assertion per record: Check logs every ck_assert */
        for (int p = 0; p < 64; p++)
            for (int ch = 0; ch < 3; ch++)
                diff |= pix[p * 3 + ch] != (palette ? g_palette[i][g_idxmap[i][p] * 3 + ch] : g_chw[ch * 64 + p]);
        ck_assert_msg(!diff, "%s, allocation %lu: record %llu differs", name, n, (unsigned long long)i);
    }
    if (palette) {
        ck_assert_msg(strstr(apd_reader_meta_json(r), "\"failalloc\""), "%s, allocation %lu: metadata lost", name, n);
        ck_assert_str_eq(apd_reader_class_name(r, 1), "one");
    }
    apd_reader_close(r);
}

/* Temporaries (PATH.partial-*) left in the work folder. */
static int partials_left(void)
{
    DIR *d = opendir(g_dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".partial-")) n++;
    closedir(d);
    return n;
}

/* Fail allocation 1, 2, ... of f until a run makes fewer allocations than the one to fail.
 * is_writer: a failed run must leave nothing at g_out and no temporary. */
static void sweep(const char *name, workload_fn f, int is_writer)
{
    static char msg[1024];
    unsigned long n, nomem = 0, recovered = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (n = 1;; n++) {
        if (is_writer) unlink(g_out);
        msg[0] = '\0';
        failalloc_arm(n);
        apd_status s = f(msg, sizeof msg);
        unsigned long made = failalloc_disarm();
        if (made < n) {
            ck_assert_msg(s == APD_OK, "%s without a failed allocation: %s (%s)", name, apd_strerror(s), msg);
            break;
        }
        ck_assert_msg(s == APD_OK || s == APD_ENOMEM, "%s, allocation %lu of %lu failed: %s (%s), want out of memory",
                      name, n, made, apd_strerror(s), msg);
        if (s == APD_ENOMEM) {
            nomem++;
            ck_assert_msg(msg[0] != '\0', "%s, allocation %lu failed: out of memory without a message", name, n);
            if (is_writer) ck_assert_msg(access(g_out, F_OK) != 0, "%s, allocation %lu: a failed write published", name, n);
        } else {
            recovered++;
            if (is_writer) check_written(name, n, f == wl_writer_palette);
        }
        if (is_writer) ck_assert_msg(partials_left() == 0, "%s, allocation %lu: temporary left", name, n);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%-16s %4lu allocations, each failed once: %lu out of memory, %lu completed anyway (%.1f s)\n", name,
           n - 1, nomem, recovered, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    ck_assert_uint_gt(nomem, 0); /* the sweep reached the library */
}

/* ---- fixtures (written before any sweep, with the real allocator) ---------------------- */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

static void copy_file(const char *src, const char *dst)
{
    static uint8_t buf[1 << 16];
    FILE *fp = fopen(src, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", src);
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    ck_assert(n > 0 && n < sizeof buf);
    write_file(dst, buf, n);
}

static void make_fixtures(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/tests/common/failalloc-XXXXXX", APD_BINARY_DIR);
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    snprintf(g_out, sizeof g_out, "%s/out.apd", g_dir);
    snprintf(g_pal, sizeof g_pal, "%s/pal.apd", g_dir);
    snprintf(g_direct, sizeof g_direct, "%s/direct.apd", g_dir);
    make_records();
    char msg[512];
    ck_assert_msg(write_with(g_pal, palette_opts(), put_palette, msg, sizeof msg) == APD_OK, "%s", msg);
    ck_assert_msg(write_with(g_direct, direct_opts(), put_direct, msg, sizeof msg) == APD_OK, "%s", msg);

    /* CIFAR binary: 4 records of label + 3072 bytes */
    static uint8_t cifar[4 * 3073];
    for (size_t i = 0; i < sizeof cifar; i++) cifar[i] = (uint8_t)(i * 31);
    for (int r = 0; r < 4; r++) cifar[r * 3073] = (uint8_t)r;
    char path[1200];
    snprintf(path, sizeof path, "%s/data_batch_1.bin", g_dir);
    write_file(path, cifar, sizeof cifar);
    snprintf(g_cifar, sizeof g_cifar, "cifar10:%s", path);

    /* IDX: 3 images 5x4, 3 labels */
    static const uint8_t img_hdr[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 4};
    static uint8_t img[16 + 60];
    memcpy(img, img_hdr, 16);
    for (int i = 0; i < 60; i++) img[16 + i] = (uint8_t)(i * 4);
    static const uint8_t lab[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 2, 0, 1};
    snprintf(g_idx[0], sizeof g_idx[0], "%s/img.idx", g_dir);
    snprintf(g_idx[1], sizeof g_idx[1], "%s/lab.idx", g_dir);
    write_file(g_idx[0], img, sizeof img);
    write_file(g_idx[1], lab, sizeof lab);

    /* folder: class "cat" of two JPEG files, class "dog" of one PNG and one JPEG */
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/folder/train/cat' '%s/folder/train/dog'", g_dir, g_dir);
    ck_assert_int_eq(system(cmd), 0);
    const char *jpgs[3][2] = {{"cat/0000.jpg", "cat/a.jpg"}, {"cat/0007.jpg", "cat/b.jpg"}, {"dog/0000.jpg", "dog/b.jpg"}};
    for (int i = 0; i < 3; i++) {
        char src[1200], dst[1200];
        snprintf(src, sizeof src, "%s/train/%s", APD_TEST_FOLDER, jpgs[i][0]);
        snprintf(dst, sizeof dst, "%s/folder/train/%s", g_dir, jpgs[i][1]);
        copy_file(src, dst);
    }
    snprintf(path, sizeof path, "%s/folder/train/dog/a.png", g_dir);
    ck_assert_int_eq(apd_png_write_image(path, cifar + 1, 3, 32, 32, NULL), APD_OK);
    snprintf(g_folder, sizeof g_folder, "folder:%s/folder", g_dir);

    /* an .apd file with soft labels, and an apd-export folder of two images with soft labels */
    static const char names2[2][64] = {"zero", "one"};
    apd_writer_opts so = direct_opts();
    so.n_classes = 2;
    so.class_names = names2;
    so.soft_labels = 1;
    char soft_path[640];
    snprintf(soft_path, sizeof soft_path, "%s/soft.apd", g_dir);
    ck_assert_msg(write_with(soft_path, so, put_direct_soft, msg, sizeof msg) == APD_OK, "%s", msg);
    snprintf(g_soft_apd, sizeof g_soft_apd, "apd:%s", soft_path);
    snprintf(path, sizeof path, "%s/exsoft", g_dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/exsoft/%06d.png", g_dir, i);
        ck_assert_int_eq(apd_png_write_image(path, g_chw, 3, 8, 8, NULL), APD_OK);
    }
    static const char labels_csv[] = "index,label,class,source_id,file\n0,0,zero,,000000.png\n1,1,one,,000001.png\n";
    static const char soft_csv[] = "index,stored,p0,p1\n0,1,0.75,0.25\n1,0,0,1\n";
    static const char export_json[] = "{\"format\": \"apd-export\", \"version\": 1, \"c\": 3, \"h\": 8, \"w\": 8, "
                                      "\"n_classes\": 2, \"class_names\": [\"zero\", \"one\"], \"mean\": [0.5, 0.5, 0.5], "
                                      "\"std\": [0.25, 0.25, 0.25], \"soft_labels\": \"soft-labels.csv\"}";
    snprintf(path, sizeof path, "%s/exsoft/labels.csv", g_dir);
    write_file(path, labels_csv, sizeof labels_csv - 1);
    snprintf(path, sizeof path, "%s/exsoft/soft-labels.csv", g_dir);
    write_file(path, soft_csv, sizeof soft_csv - 1);
    snprintf(path, sizeof path, "%s/exsoft/apd-export.json", g_dir);
    write_file(path, export_json, sizeof export_json - 1);
    snprintf(g_soft_folder, sizeof g_soft_folder, "folder:%s/exsoft", g_dir);

    /* CIFAR python pickles (Python 2 cPickle layout) from the suite's generator */
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/io/make_cifar_pickles.py' '%s/py' >/dev/null",
             APD_SOURCE_DIR, g_dir);
    ck_assert_msg(system(cmd) == 0, "make_cifar_pickles.py failed");
    snprintf(g_pickle, sizeof g_pickle, "cifar10:%s/py/cifar-10-batches-py/data_batch_2", g_dir);
}

START_TEST(every_allocation_fails_once)
{
    static const struct {
        const char *name;
        workload_fn f;
        int is_writer;
    } wl[] = {
        {"writer palette", wl_writer_palette, 1}, {"writer direct", wl_writer_direct, 1},
        {"reader palette", wl_reader_palette, 0}, {"reader direct", wl_reader_direct, 0},
        {"loader", wl_loader, 0},                 {"import cifar", wl_import_cifar, 0},
        {"import idx", wl_import_idx, 0},         {"import folder", wl_import_folder, 0},
        {"import resized", wl_import_folder_resized, 0}, {"import pickle", wl_import_pickle, 0},
        {"import apd", wl_import_apd, 0},         {"import soft", wl_import_export_soft, 0},
    };
    make_fixtures();
    for (size_t i = 0; i < sizeof wl / sizeof *wl; i++) sweep(wl[i].name, wl[i].f, wl[i].is_writer);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alloc_fail");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, every_allocation_fails_once);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    /* no fork: the leak check of the sanitizer pass sees this process */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
