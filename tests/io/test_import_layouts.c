/* test_import_layouts.c: the dataset layouts beyond the basic ones, on fixtures this test
 * generates (nothing from the shared data folder):
 * - CIFAR python version (cifar-10-batches-py, cifar-100-python): pickles written by
 *   make_cifar_pickles.py the way Python 2 cPickle wrote the official files (checked there
 *   by loading them back with pickle + numpy); every pixel and label against its formula;
 * - the pickle reader on hostile input: every truncation, every single-byte corruption
 *   (no crash: an error or a clean parse), and crafted files (foreign globals, huge lengths,
 *   wrong dtype/shape/order, bad memo, trailing bytes), each with its status and message;
 * - Tiny-ImageNet (wnids/words/train/val annotations) and ImageNet-style val/ folders;
 * - apd-export folders (labels.csv + apd-export.json): labels, names, mean/std as stated;
 * - the class-balanced limit of folder sources; class names cut at UTF-8 boundaries;
 * - hostile side files: each bad line gives its status and names the file and line.
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <jpeglib.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apd/io.h"
#include "io/io_internal.h"
#include "io_test_util.h"

static void expect_msg(const apd_err *e, const char *needle)
{
    ck_assert_msg(strstr(e->msg, needle) != NULL, "message '%s' lacks '%s'", e->msg, needle);
}

static void writef(const char *path, const char *text)
{
    tu_write(path, text, strlen(text));
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
    static char bufs[8][2048];
    static int k;
    char *b = bufs[k++ & 7];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, 2048, fmt, ap);
    va_end(ap);
    return b;
}

static void mkdirs(const char *path)
{
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
}

static int warn_count;
static char warn_last[1000];
static void on_warn(void *u, const char *msg)
{
    (void)u;
    warn_count++;
    snprintf(warn_last, sizeof warn_last, "%s", msg);
    printf("  warning: %s\n", msg);
}

/* ---- CIFAR python version ------------------------------------------------------------------- */

static uint8_t px_formula(int b, uint64_t r, int j)
{
    return (uint8_t)((b * 101 + (int64_t)r * 13 + j) & 255);
}

static char *make_pickles(void)
{
    char *dir = tu_tmpdir("pickle");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/io/make_cifar_pickles.py' '%s'", APD_SOURCE_DIR, dir);
    ck_assert_msg(system(cmd) == 0, "make_cifar_pickles.py failed");
    return dir;
}

static const int c10_counts[5] = {1001, 6, 6, 5, 5}; /* as make_cifar_pickles.py */

START_TEST(cifar_python_versions)
{
    char *dir = make_pickles();
    apd_dataset ds;
    apd_err e;
    /* the torchvision root and the folder itself give the same dataset */
    const char *specs[2] = {pathf("cifar10:%s", dir), pathf("cifar10:%s/cifar-10-batches-py", dir)};
    for (int v = 0; v < 2; v++) {
        ck_assert_msg(apd_import(&ds, specs[v], NULL, NULL, &e) == APD_OK, "%s", e.msg);
        ck_assert_uint_eq(ds.n, 1001 + 6 + 6 + 5 + 5);
        ck_assert_uint_eq(ds.n_classes, 10);
        ck_assert_str_eq(ds.split, "train");
        ck_assert_str_eq(ds.class_names[0], "zebra"); /* from batches.meta, not built in */
        ck_assert_str_eq(ds.class_names[2], "caf\xc3\xa9"); /* latin-1 0xe9 read as U+00E9 */
        uint64_t i = 0, bad = 0;
        for (int b = 1; b <= 5; b++)
            for (int r = 0; r < c10_counts[b - 1]; r++, i++) {
                if (ds.labels[i] != (uint32_t)((b * 3 + r) % 10) || ds.source_ids[i] != i) bad++;
                for (int j = 0; j < 3072; j++) bad += ds.pixels[i * 3072 + (size_t)j] != px_formula(b, (uint64_t)r, j);
            }
        ck_assert_uint_eq(bad, 0);
        apd_dataset_free(&ds);
    }
    ck_assert_msg(apd_import(&ds, specs[0], "test", NULL, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 5);
    ck_assert_str_eq(ds.split, "test");
    ck_assert_uint_eq(ds.labels[4], (6 * 3 + 4) % 10);
    ck_assert_uint_eq(ds.pixels[4 * 3072 + 100], px_formula(6, 4, 100));
    apd_dataset_free(&ds);
    /* one pickle file; its split from its name; a limit */
    apd_import_opts o = {.limit = 3};
    ck_assert_msg(apd_import(&ds, pathf("cifar10:%s/cifar-10-batches-py/data_batch_2", dir), NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 3);
    ck_assert_uint_eq(ds.pixels[2 * 3072 + 3071], px_formula(2, 2, 3071));
    ck_assert_str_eq(ds.class_names[9], "jay");
    apd_dataset_free(&ds);
    ck_assert_int_eq(apd_import(&ds, pathf("cifar10:%s/cifar-10-batches-py/data_batch_2", dir), "test", NULL, &e), APD_EDATASET);
    expect_msg(&e, "split test does not apply");
    ck_assert_int_eq(apd_import(&ds, specs[0], "val", NULL, &e), APD_EDATASET);
    /* CIFAR-100 */
    ck_assert_msg(apd_import(&ds, pathf("cifar100:%s", dir), NULL, NULL, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 9);
    ck_assert_uint_eq(ds.n_classes, 100);
    ck_assert_str_eq(ds.class_names[0], "fine99");
    for (uint64_t r = 0; r < 9; r++) {
        ck_assert_uint_eq(ds.labels[r], (1 * 7 + r * 3) % 100);
        ck_assert_uint_eq(ds.pixels[r * 3072 + 5], px_formula(1, r, 5));
    }
    apd_dataset_free(&ds);
    ck_assert_msg(apd_import(&ds, pathf("cifar100:%s/cifar-100-python", dir), "test", NULL, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 4);
    ck_assert_uint_eq(ds.labels[3], (2 * 7 + 3 * 3) % 100);
    apd_dataset_free(&ds);
    /* a gap in the training batches is an error; without a meta file: built-in names + warning */
    char *gap = tu_tmpdir("pkgap");
    tu_copy(pathf("%s/cifar-10-batches-py/data_batch_1", dir), pathf("%s/data_batch_1", gap), SIZE_MAX);
    tu_copy(pathf("%s/cifar-10-batches-py/data_batch_3", dir), pathf("%s/data_batch_3", gap), SIZE_MAX);
    ck_assert_int_eq(apd_import(&ds, pathf("cifar10:%s", gap), NULL, NULL, &e), APD_EDATASET);
    expect_msg(&e, "not data_batch_2");
    printf("gap: %s\n", e.msg);
    remove(pathf("%s/data_batch_3", gap));
    ck_assert_msg(apd_import(&ds, pathf("cifar10:%s", gap), NULL, NULL, &e) == APD_OK, "%s", e.msg);
    ck_assert_str_eq(ds.class_names[0], "airplane");
    apd_dataset_free(&ds);
    tu_rm_rf(gap);
    tu_rm_rf(dir);
    free(gap);
    free(dir);
}
END_TEST

/* A pickle assembled from parts: PROTO 2, then the given opcodes. */
typedef struct pk_buf {
    uint8_t b[8192];
    size_t n;
} pk_buf;

static void pk_add(pk_buf *p, const void *d, size_t n)
{
    ck_assert_uint_le(p->n + n, sizeof p->b);
    memcpy(p->b + p->n, d, n);
    p->n += n;
}
#define PK(p, lit) pk_add(p, lit, sizeof(lit) - 1)

static void pk_str(pk_buf *p, const char *s)
{
    uint8_t h[2] = {'U', (uint8_t)strlen(s)};
    pk_add(p, h, 2);
    pk_add(p, s, strlen(s));
}

/* {'data': uint8 array rows x cols (dtype string dt, fortran flag), 'labels': [label]*rows} */
static void pk_batch(pk_buf *p, uint32_t rows, uint32_t cols, const char *dt, int fortran, uint32_t data_len,
                     uint8_t label, uint32_t nlabels)
{
    p->n = 0;
    PK(p, "\x80\x02}(");
    pk_str(p, "data");
    PK(p, "cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01" "b\x87R(K\x01");
    uint8_t m[6] = {'M', (uint8_t)rows, (uint8_t)(rows >> 8), 'M', (uint8_t)cols, (uint8_t)(cols >> 8)};
    pk_add(p, m, 6);
    PK(p, "\x86" "cnumpy\ndtype\n");
    pk_str(p, dt);
    PK(p, "K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
    pk_add(p, fortran ? "\x88" : "\x89", 1);
    uint8_t t[5] = {'T', (uint8_t)data_len, (uint8_t)(data_len >> 8), (uint8_t)(data_len >> 16), (uint8_t)(data_len >> 24)};
    pk_add(p, t, 5);
    for (uint32_t i = 0; data_len <= 7000 && i < data_len; i++) pk_add(p, "\x07", 1); /* a huge length: no data */
    PK(p, "tb");
    pk_str(p, "labels");
    PK(p, "](");
    for (uint32_t i = 0; i < nlabels; i++) {
        uint8_t k[2] = {'K', label};
        pk_add(p, k, 2);
    }
    PK(p, "eu.");
}

static apd_status parse(const pk_buf *p, apd_err *e)
{
    apd__pickle *pk = NULL;
    apd_status s = apd__pickle_parse(&pk, p->b, p->n, "x.pickle", e);
    if (s == APD_OK) ck_assert_ptr_nonnull(pk);
    else ck_assert_ptr_null(pk);
    apd__pickle_free(pk);
    return s;
}

START_TEST(pickle_hostile)
{
    apd_err e;
    pk_buf p;
    /* a valid one: accessors see the array and labels */
    pk_batch(&p, 2, 3, "u1", 0, 6, 4, 2);
    apd__pickle *pk;
    ck_assert_msg(apd__pickle_parse(&pk, p.b, p.n, "x", &e) == APD_OK, "%s", e.msg);
    uint64_t rows, cols;
    ck_assert_ptr_nonnull(apd__pickle_u8_matrix(pk, apd__pickle_get(pk, 0, "data"), &rows, &cols));
    ck_assert_uint_eq(rows, 2);
    ck_assert_uint_eq(cols, 3);
    int64_t v;
    ck_assert(apd__pickle_int(pk, apd__pickle_item(pk, apd__pickle_get(pk, 0, "labels"), 1), &v) && v == 4);
    ck_assert_int_eq(apd__pickle_get(pk, 0, "nope"), -1);
    apd__pickle_free(pk);
    /* every truncation fails (ETRUNC, or ECORRUPT when the cut leaves a bad structure) */
    for (size_t n = 0; n < p.n; n++) {
        apd_status s = apd__pickle_parse(&pk, p.b, n, "x", &e);
        ck_assert_msg(s == APD_ETRUNC || s == APD_ECORRUPT, "prefix %zu: status %d", n, s);
        ck_assert_ptr_null(pk);
    }
    /* every single-byte corruption: no crash, and an error or a parse */
    uint64_t errors = 0;
    for (size_t i = 0; i < p.n; i++)
        for (int x = 1; x < 256; x += 37) {
            pk_buf q = p;
            q.b[i] ^= (uint8_t)x;
            errors += parse(&q, &e) != APD_OK;
        }
    printf("pickle corruptions: %llu of %zu rejected\n", (unsigned long long)errors, p.n * 7);
    ck_assert_uint_gt(errors, p.n * 7 / 2);
    /* crafted */
    pk_batch(&p, 2, 3, "f4", 0, 6, 4, 2);
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "only uint8");
    pk_batch(&p, 2, 3, "u1", 0, 5, 4, 2);
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "6 elements holds 5 bytes");
    pk_batch(&p, 2, 3, "u1", 1, 6, 4, 2);
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "Fortran");
    pk_batch(&p, 2, 3, "u1", 0, 0x7ffffff0u, 4, 2); /* a length far past the end */
    ck_assert_int_eq(parse(&p, &e), APD_ETRUNC);
    expect_msg(&e, "x.pickle: pickle offset");
    p.n = 0;
    PK(&p, "\x80\x02}(U\x01xcos\nsystem\nU\x02lsR.");
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "global 'os.system' is not in the CIFAR pickle subset");
    printf("foreign global: %s\n", e.msg);
    p.n = 0;
    PK(&p, "\x80\x03}.");
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "protocol 3");
    p.n = 0;
    PK(&p, "\x80\x02}h\x05.");
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "memo entry 5 was never stored");
    p.n = 0;
    PK(&p, "\x80\x02}r\xff\xff\xff\x7f.");
    ck_assert_int_eq(parse(&p, &e), APD_ELIMIT);
    p.n = 0;
    PK(&p, "\x80\x02}}.");
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "STOP with 2 objects");
    p.n = 0;
    PK(&p, "\x80\x02}.junk");
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "4 bytes after STOP");
    p.n = 0;
    PK(&p, "\x80\x02}(K\x01K\x02u.");
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "dict key is a int");
    p.n = 0;
    PK(&p, "\x80\x02}X\x01\x00\x00\x00" "a.");
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "opcode 0x58 ('X')");
    p.n = 0;
    PK(&p, "\x80\x02]q\x01h\x01" "a.");
    ck_assert_int_eq(parse(&p, &e), APD_OK); /* a list holding itself: legal; nothing walks it recursively */
    p.n = 0;
    PK(&p, "\x80\x02" "e.");
    ck_assert_int_eq(parse(&p, &e), APD_ECORRUPT);
    expect_msg(&e, "no MARK");

    /* through apd_import: batches whose labels do not fit the data */
    char *dir = tu_tmpdir("pkbad");
    pk_batch(&p, 2, 3072, "u1", 0, 6144, 3, 1);
    tu_write(pathf("%s/data_batch_1", dir), p.b, p.n);
    apd_dataset ds;
    ck_assert_int_eq(apd_import(&ds, pathf("cifar10:%s", dir), NULL, NULL, &e), APD_ECORRUPT);
    expect_msg(&e, "data_batch_1: \"labels\" is not a list of 2 labels");
    pk_batch(&p, 2, 3072, "u1", 0, 6144, 10, 2);
    tu_write(pathf("%s/data_batch_1", dir), p.b, p.n);
    ck_assert_int_eq(apd_import(&ds, pathf("cifar10:%s", dir), NULL, NULL, &e), APD_ECORRUPT);
    expect_msg(&e, "record 0: label is not an int in 0..9");
    pk_batch(&p, 2, 1024, "u1", 0, 2048, 1, 2);
    tu_write(pathf("%s/data_batch_1", dir), p.b, p.n);
    ck_assert_int_eq(apd_import(&ds, pathf("cifar10:%s", dir), NULL, NULL, &e), APD_ECORRUPT);
    expect_msg(&e, "1024 values, not 3072");
    pk_batch(&p, 1, 3072, "u1", 0, 3072, 1, 1);
    tu_write(pathf("%s/data_batch_1", dir), p.b, p.n);
    ck_assert_msg(apd_import(&ds, pathf("cifar10:%s", dir), NULL, NULL, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 1);
    ck_assert_uint_eq(ds.pixels[3071], 7);
    apd_dataset_free(&ds);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- image writers -------------------------------------------------------------------------- */

static void jpeg_flat(const char *path, int w, int h, uint8_t r, uint8_t g, uint8_t b)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr em;
    c.err = jpeg_std_error(&em);
    jpeg_create_compress(&c);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[64 * 3];
    for (int x = 0; x < w; x++) row[3 * x] = r, row[3 * x + 1] = g, row[3 * x + 2] = b;
    JSAMPROW rp = row;
    for (int y = 0; y < h; y++) jpeg_write_scanlines(&c, &rp, 1);
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void png_grey(const char *path, int w, int h, uint8_t v)
{
    uint8_t px[64 * 64];
    memset(px, v, sizeof px);
    tu_png_raw(path, (uint32_t)w, (uint32_t)h, PNG_COLOR_TYPE_GRAY, 8, px, NULL, 0);
}

static int near(int a, int b)
{
    return abs(a - b) <= 3;
}

/* ---- Tiny-ImageNet -------------------------------------------------------------------------- */

static void make_tiny(const char *d)
{
    /* wnids unsorted; names: two classes share "crane" */
    writef(pathf("%s/wnids.txt", d), "n02\nn01\nn03\n");
    writef(pathf("%s/words.txt", d), "n00\tentity\nn01\tcrane, bird\nn02\tgoldfish, Carassius auratus\n"
                                     "n03\tcrane, machine\nn04\tunused\n");
    const char *wn[3] = {"n01", "n02", "n03"};
    const int cnt[3] = {2, 3, 1};
    for (int k = 0; k < 3; k++) {
        mkdirs(pathf("%s/train/%s/images", d, wn[k]));
        writef(pathf("%s/train/%s/%s_boxes.txt", d, wn[k], wn[k]), "x\t0\t0\t1\t1\n");
        for (int i = 0; i < cnt[k]; i++)
            jpeg_flat(pathf("%s/train/%s/images/%s_%d.JPEG", d, wn[k], wn[k], i), 16, 16, (uint8_t)(60 * k + 20),
                      (uint8_t)(10 * i), 200);
    }
    mkdirs(pathf("%s/val/images", d));
    mkdirs(pathf("%s/test/images", d));
    const int vlab[5] = {2, 0, 1, 1, 0};
    char ann[400] = "";
    for (int i = 0; i < 5; i++) {
        jpeg_flat(pathf("%s/val/images/val_%d.JPEG", d, i), 16, 16, (uint8_t)(60 * vlab[i] + 20), 0, 200);
        snprintf(ann + strlen(ann), sizeof ann - strlen(ann), "val_%d.JPEG\t%s\t0\t0\t15\t15\n", i, wn[vlab[i]]);
    }
    writef(pathf("%s/val/val_annotations.txt", d), ann);
    jpeg_flat(pathf("%s/val/images/val_9.JPEG", d), 16, 16, 0, 0, 0); /* not annotated */
    jpeg_flat(pathf("%s/test/images/test_0.JPEG", d), 16, 16, 0, 0, 0);
}

START_TEST(tiny_imagenet)
{
    char *root = tu_tmpdir("tiny"), spec[1400], d[1200];
    snprintf(d, sizeof d, "%s/tiny-imagenet-200", root);
    mkdirs(d);
    make_tiny(d);
    snprintf(spec, sizeof spec, "folder:%s", d);
    apd_dataset ds;
    apd_err e;
    apd_import_opts o = {.warn = on_warn};
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 6);
    ck_assert_uint_eq(ds.c, 3);
    ck_assert_uint_eq(ds.n_classes, 3);
    ck_assert_str_eq(ds.class_names[0], "crane (n01)");
    ck_assert_str_eq(ds.class_names[1], "goldfish");
    ck_assert_str_eq(ds.class_names[2], "crane (n03)");
    ck_assert_str_eq(ds.name, "tiny-imagenet-200");
    ck_assert_str_eq(ds.split, "train");
    static const uint32_t lab[6] = {0, 0, 1, 1, 1, 2};
    for (int i = 0; i < 6; i++) {
        ck_assert_uint_eq(ds.labels[i], lab[i]);
        ck_assert_uint_eq(ds.source_ids[i], (uint64_t)i);
        ck_assert_msg(near(ds.pixels[(size_t)i * 768], 60 * (int)lab[i] + 20), "image %d red %u", i, ds.pixels[(size_t)i * 768]);
    }
    apd_dataset_free(&ds);
    /* val: labels from the annotations in line order; the unannotated file is left out */
    warn_count = 0;
    ck_assert_msg(apd_import(&ds, spec, "val", &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 5);
    ck_assert_str_eq(ds.split, "val");
    static const uint32_t vlab[5] = {2, 0, 1, 1, 0};
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(ds.labels[i], vlab[i]);
        ck_assert(near(ds.pixels[(size_t)i * 768], 60 * (int)vlab[i] + 20));
    }
    ck_assert_int_eq(warn_count, 1);
    ck_assert(strstr(warn_last, "1 image file not listed in val_annotations.txt") && strstr(warn_last, "val_9.JPEG"));
    apd_dataset_free(&ds);
    /* a balanced limit over the sorted classes */
    o.limit = 3;
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 3);
    ck_assert(ds.labels[0] == 0 && ds.labels[1] == 1 && ds.labels[2] == 2);
    ck_assert(ds.source_ids[0] == 0 && ds.source_ids[1] == 2 && ds.source_ids[2] == 5);
    apd_dataset_free(&ds);
    o.limit = 0;
    /* test has no labels */
    ck_assert_int_eq(apd_import(&ds, spec, "test", &o, &e), APD_EDATASET);
    expect_msg(&e, "carry no labels");
    /* hostile side files, each naming file and line */
    const char *ann = pathf("%s/val/val_annotations.txt", d);
    writef(ann, "val_0.JPEG\tn01\t0\t0\t1\t1\nval_1.JPEG\tn99\t0\n");
    ck_assert_int_eq(apd_import(&ds, spec, "val", &o, &e), APD_EDATASET);
    expect_msg(&e, "val_annotations.txt: line 2: class 'n99' is not in wnids.txt");
    writef(ann, "../../wnids.txt\tn01\n");
    ck_assert_int_eq(apd_import(&ds, spec, "val", &o, &e), APD_EDATASET);
    expect_msg(&e, "line 1: '../../wnids.txt' is not an image file name");
    writef(ann, "val_0.JPEG\tn01\nval_7.JPEG\tn01\n");
    ck_assert_int_eq(apd_import(&ds, spec, "val", &o, &e), APD_ENOENT);
    expect_msg(&e, "line 2:");
    expect_msg(&e, "val_7.JPEG: no such image file");
    writef(ann, "val_0.JPEG\tn01\n\nval_0.JPEG\tn02\n");
    ck_assert_int_eq(apd_import(&ds, spec, "val", &o, &e), APD_EDATASET);
    expect_msg(&e, "lines 1 and 3 list the same file");
    writef(ann, "val_0.JPEG n01\n");
    ck_assert_int_eq(apd_import(&ds, spec, "val", &o, &e), APD_EDATASET);
    expect_msg(&e, "line 1: expected FILE<TAB>WNID");
    writef(pathf("%s/wnids.txt", d), "n01\nn02\nn01\nn03\n");
    ck_assert_int_eq(apd_import(&ds, spec, NULL, &o, &e), APD_EDATASET);
    expect_msg(&e, "both named 'n01'");
    writef(pathf("%s/wnids.txt", d), "n01\nn02/../x\n");
    ck_assert_int_eq(apd_import(&ds, spec, NULL, &o, &e), APD_EDATASET);
    expect_msg(&e, "wnids.txt: line 2:");
    writef(pathf("%s/wnids.txt", d), "n01\nn02\n"); /* train/n03 is not listed */
    ck_assert_int_eq(apd_import(&ds, spec, NULL, &o, &e), APD_EDATASET);
    expect_msg(&e, "train/n03: class folder not listed in wnids.txt");
    writef(pathf("%s/wnids.txt", d), "n01\nn02\nn03\nn05\n"); /* n05 has no train folder */
    ck_assert_int_eq(apd_import(&ds, spec, NULL, &o, &e), APD_EDATASET);
    expect_msg(&e, "train/n05/images: missing");
    /* without words.txt: named by id, with a warning */
    writef(pathf("%s/wnids.txt", d), "n01\nn02\nn03\n");
    remove(pathf("%s/words.txt", d));
    warn_count = 0;
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_str_eq(ds.class_names[1], "n02");
    ck_assert_int_eq(warn_count, 1);
    apd_dataset_free(&ds);
    tu_rm_rf(root);
    free(root);
}
END_TEST

/* ---- ImageNet-style folders, balanced limits, UTF-8 names ----------------------------------- */

START_TEST(imagenet_val_and_limits)
{
    char *d = tu_tmpdir("inval"), spec[1400];
    /* train: b (5), a (1), c (4) by creation; classes sort a, b, c */
    const char *cls[3] = {"a", "b", "c"};
    const int cnt[3] = {1, 5, 4};
    for (int k = 0; k < 3; k++) {
        mkdirs(pathf("%s/train/%s", d, cls[k]));
        for (int i = 0; i < cnt[k]; i++) png_grey(pathf("%s/train/%s/%02d.png", d, cls[k], i), 4, 4, (uint8_t)(10 * k + i));
    }
    for (int k = 0; k < 2; k++) {
        mkdirs(pathf("%s/val/%s", d, cls[k]));
        png_grey(pathf("%s/val/%s/v.png", d, cls[k]), 4, 4, (uint8_t)(100 + k));
    }
    snprintf(spec, sizeof spec, "folder:%s", d);
    apd_dataset ds;
    apd_err e;
    apd_import_opts o = {.warn = on_warn};
    ck_assert_msg(apd_import(&ds, spec, "val", &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 2);
    ck_assert_str_eq(ds.split, "val");
    ck_assert_uint_eq(ds.n_classes, 2);
    ck_assert_uint_eq(ds.pixels[16], 101);
    apd_dataset_free(&ds);
    ck_assert_int_eq(apd_import(&ds, spec, "test", &o, &e), APD_EDATASET);
    expect_msg(&e, "has no test/ sub-folder");
    /* limit 6 over (1, 5, 4): level 2 gives 1 + 2 + 2 = 5, the one left goes to b -> (1, 3, 2) */
    o.limit = 6;
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    uint64_t counts[3];
    apd_dataset_class_counts(&ds, counts);
    ck_assert(counts[0] == 1 && counts[1] == 3 && counts[2] == 2);
    static const uint64_t want[6] = {0, 1, 2, 3, 6, 7}; /* first images of each class, in order */
    for (int i = 0; i < 6; i++) ck_assert_uint_eq(ds.source_ids[i], want[i]);
    ck_assert_uint_eq(ds.pixels[5 * 16], 21); /* c/01.png */
    apd_dataset_free(&ds);
    o.limit = 2; /* level 0, one each to the first two classes */
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert(ds.n == 2 && ds.labels[0] == 0 && ds.labels[1] == 1);
    apd_dataset_free(&ds);
    o.limit = 100;
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 10);
    apd_dataset_free(&ds);
    tu_rm_rf(d);
    free(d);

    /* class names longer than 63 bytes are cut before a whole UTF-8 character; two that
     * become equal are an error */
    d = tu_tmpdir("utf8");
    char n1[200] = "a", n2[200] = "b";
    for (int i = 0; i < 40; i++) strcat(n1, "\xe2\x82\xac"), strcat(n2, "\xe2\x82\xac");
    mkdirs(pathf("%s/%s", d, n1));
    mkdirs(pathf("%s/%s", d, n2));
    png_grey(pathf("%s/%s/0.png", d, n1), 2, 2, 1);
    png_grey(pathf("%s/%s/0.png", d, n2), 2, 2, 2);
    snprintf(spec, sizeof spec, "folder:%s", d);
    o.limit = 0;
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(strlen(ds.class_names[0]), 1 + 20 * 3); /* 61 bytes: a 21st euro would need 64 */
    ck_assert_int_eq(strncmp(ds.class_names[0], n1, 61), 0);
    apd_dataset_free(&ds);
    strcat(n1, "x");
    mkdirs(pathf("%s/%s", d, n1)); /* same first 63 bytes as the first folder */
    png_grey(pathf("%s/%s/0.png", d, n1), 2, 2, 3);
    ck_assert_int_eq(apd_import(&ds, spec, NULL, &o, &e), APD_EDATASET);
    expect_msg(&e, "are both named");
    tu_rm_rf(d);
    free(d);
}
END_TEST

/* ---- apd-export folders --------------------------------------------------------------------- */

static const char *const export_json =
    "{\"format\": \"apd-export\", \"version\": 1, \"file\": \"x.apd\", \"dataset\": \"toy\", \"split\": \"test\","
    " \"c\": 3, \"h\": 4, \"w\": 4, \"n_classes\": 3, \"class_names\": [\"zeta\", \"alpha\", \"mid, \\\"q\\\"\"],"
    " \"mean\": [0.25, 0.5, 0.75], \"std\": [0.125, 0.25, 0.0625], \"records\": 3}";

static void make_export(const char *d)
{
    mkdirs(pathf("%s/zeta", d));
    mkdirs(pathf("%s/alpha", d));
    png_grey(pathf("%s/alpha/000000.png", d), 4, 4, 10);
    png_grey(pathf("%s/zeta/000001.png", d), 4, 4, 20);
    png_grey(pathf("%s/alpha/000002.png", d), 4, 4, 30);
    writef(pathf("%s/labels.csv", d), "index,label,class,source_id,file\n"
                                      "0,1,\"alpha\",17,\"alpha/000000.png\"\n"
                                      "1,0,\"zeta\",,\"zeta/000001.png\"\n"
                                      "2,1,alpha,5,alpha/000002.png\n");
    writef(pathf("%s/apd-export.json", d), export_json);
}

START_TEST(export_folders)
{
    char *d = tu_tmpdir("export"), spec[1400];
    make_export(d);
    snprintf(spec, sizeof spec, "folder:%s", d);
    apd_dataset ds;
    apd_err e;
    apd_import_opts o = {.warn = on_warn};
    warn_count = 0;
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_int_eq(warn_count, 0);
    ck_assert_uint_eq(ds.n, 3);
    ck_assert_uint_eq(ds.c, 3); /* as stated, although the PNGs are grey */
    ck_assert_uint_eq(ds.n_classes, 3);
    ck_assert_str_eq(ds.class_names[0], "zeta");
    ck_assert_str_eq(ds.class_names[1], "alpha");
    ck_assert_str_eq(ds.class_names[2], "mid, \"q\"");
    ck_assert(ds.labels[0] == 1 && ds.labels[1] == 0 && ds.labels[2] == 1);
    ck_assert(ds.source_ids[0] == 0 && ds.source_ids[1] == 1 && ds.source_ids[2] == 2);
    ck_assert(ds.pixels[0] == 10 && ds.pixels[48 + 16] == 20 && ds.pixels[96 + 32] == 30);
    ck_assert_str_eq(ds.name, "toy");
    ck_assert_str_eq(ds.split, "test");
    float m[3], s[3];
    apd_dataset_norm(&ds, m, s);
    ck_assert(ds.has_norm && m[0] == 0.25f && m[2] == 0.75f && s[1] == 0.25f && s[2] == 0.0625f);
    apd_dataset_free(&ds);
    ck_assert_msg(apd_import(&ds, spec, "test", &o, &e) == APD_OK, "%s", e.msg);
    apd_dataset_free(&ds);
    ck_assert_int_eq(apd_import(&ds, spec, "train", &o, &e), APD_EDATASET);
    expect_msg(&e, "the exported images are the test split");
    /* an image nobody lists: left out with a warning */
    png_grey(pathf("%s/zeta/000009.png", d), 4, 4, 1);
    warn_count = 0;
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n, 3);
    ck_assert_int_eq(warn_count, 1);
    ck_assert(strstr(warn_last, "1 image file not listed in labels.csv") != NULL);
    apd_dataset_free(&ds);
    /* an export without apd-export.json (older apd-export): labels and names from labels.csv */
    remove(pathf("%s/apd-export.json", d));
    warn_count = 0;
    ck_assert_msg(apd_import(&ds, spec, NULL, &o, &e) == APD_OK, "%s", e.msg);
    ck_assert_uint_eq(ds.n_classes, 2);
    ck_assert_str_eq(ds.class_names[0], "zeta");
    ck_assert_str_eq(ds.class_names[1], "alpha");
    ck_assert_uint_eq(ds.c, 1);
    ck_assert_uint_eq(ds.has_norm, 0);
    ck_assert_int_eq(warn_count, 2); /* no apd-export.json; the unlisted file */
    apd_dataset_free(&ds);
    writef(pathf("%s/apd-export.json", d), export_json);

    /* hostile labels.csv / apd-export.json */
    static const struct { const char *csv; apd_status st; const char *msg; } bad[] = {
        {"index,label,file\n", APD_EDATASET, "line 1: header"},
        {"index,label,class,source_id,file\n0,3,zeta,,zeta/000001.png\n", APD_EDATASET, "line 2: label '3' is not a class id below 3"},
        {"index,label,class,source_id,file\n0,0,alpha,,zeta/000001.png\n", APD_EDATASET, "line 2: class 'alpha' for label 0, but apd-export.json names it 'zeta'"},
        {"index,label,class,source_id,file\n0,0,zeta,,../x/000001.png\n", APD_EDATASET, "line 2: file '../x/000001.png' is not a relative path"},
        {"index,label,class,source_id,file\n0,0,zeta,,/etc/passwd.png\n", APD_EDATASET, "is not a relative path"},
        {"index,label,class,source_id,file\n0,0,zeta,,zeta/.h.png\n", APD_EDATASET, "is not a relative path"},
        {"index,label,class,source_id,file\n0,0,zeta,,zeta/000005.png\n", APD_ENOENT, "line 2: "},
        {"index,label,class,source_id,file\n0,0,zeta,,zeta/000001.png\n1,0,zeta,,zeta/000001.png\n", APD_EDATASET, "lines 2 and 3 list the same file"},
        {"index,label,class,source_id,file\n0,0,\"zeta,,zeta/000001.png\n", APD_EDATASET, "line 2: a quoted field is not closed"},
        {"index,label,class,source_id,file\n0,0,zeta,zeta/000001.png\n", APD_EDATASET, "line 2: fewer than 5 fields"},
        {"index,label,class,source_id,file\n-1,0,zeta,,zeta/000001.png\n", APD_EDATASET, "line 2: index '-1'"},
        {"index,label,class,source_id,file\n", APD_EEMPTY, "lists no images"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        writef(pathf("%s/labels.csv", d), bad[i].csv);
        apd_status st = apd_import(&ds, spec, NULL, &o, &e);
        ck_assert_msg(st == bad[i].st, "case %zu: status %d (%s)", i, st, e.msg);
        expect_msg(&e, bad[i].msg);
        expect_msg(&e, "labels.csv");
        ck_assert_ptr_null(ds.pixels);
    }
    writef(pathf("%s/labels.csv", d), "index,label,class,source_id,file\n0,0,zeta,,zeta/000001.png\n");
    static const struct { const char *json; apd_status st; const char *msg; } badj[] = {
        {"{\"format\": \"apd-export\", \"version\": 2}", APD_EUNSUPPORTED, "version 2"},
        {"{\"format\": \"other\"}", APD_EDATASET, "not an apd-export description"},
        {"{not json", APD_EDATASET, "not valid JSON"},
        {"{\"format\": \"apd-export\", \"version\": 1, \"c\": 3, \"h\": 4, \"w\": 4, \"n_classes\": 2,"
         " \"class_names\": [\"a\"], \"mean\": [0, 0, 0], \"std\": [1, 1, 1]}", APD_EDATASET, "not an array of 2 names"},
        {"{\"format\": \"apd-export\", \"version\": 1, \"c\": 3, \"h\": 4, \"w\": 4, \"n_classes\": 1,"
         " \"class_names\": [\"zeta\"], \"mean\": [0, 0, 7], \"std\": [1, 1, 1]}", APD_EDATASET, "channel 2 is not a number in 0..1"},
        {"{\"format\": \"apd-export\", \"version\": 1, \"c\": 3, \"h\": 5, \"w\": 4, \"n_classes\": 1,"
         " \"class_names\": [\"zeta\"], \"mean\": [0, 0, 0], \"std\": [1, 1, 1]}", APD_EMISMATCH, "the folder states 4x5 images"},
    };
    for (size_t i = 0; i < sizeof badj / sizeof badj[0]; i++) {
        writef(pathf("%s/apd-export.json", d), badj[i].json);
        apd_status st = apd_import(&ds, spec, NULL, &o, &e);
        ck_assert_msg(st == badj[i].st, "json case %zu: status %d (%s)", i, st, e.msg);
        expect_msg(&e, badj[i].msg);
    }
    tu_rm_rf(d);
    free(d);
}
END_TEST

static Suite *layouts_suite(void)
{
    Suite *s = suite_create("import_layouts");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 180);
    tcase_add_test(t, cifar_python_versions);
    tcase_add_test(t, pickle_hostile);
    tcase_add_test(t, tiny_imagenet);
    tcase_add_test(t, imagenet_val_and_limits);
    tcase_add_test(t, export_folders);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(layouts_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
