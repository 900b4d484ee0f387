/* test_distill_source.c: distilling from an .apd file (apd_distill_source_open_apd,
 * apd-convert --input apd:FILE) on fixtures made here (no data outside the repository).
 *  - a direct .apd holding exactly a dataset's pixels (mean/std as apd-convert records them)
 *    distils to the same bytes as the dataset in memory: random, dm, autopalette with the
 *    graph-cut init; the source hash equals apd_dataset_hash; the description carries the
 *    labels, source ids, class names and normalisation;
 *  - a quantized .apd distils (random and dm) with the properties that must hold: counts per
 *    class, every synthetic image's source id a record of its class, random images equal to
 *    the decoded records they name, the file's recorded mean/std used; same seed, same bytes;
 *  - bad input gives a clear error: missing file, a damaged record (names the record), a PNG
 *    palette image given as .apd, a file without classes, a class without records, a palette
 *    .apd with fewer images per class than asked; and the CLI's usage errors for apd:;
 *  - CIFAR-100 end to end with 100 classes: importer (coarse + fine label bytes) -> .apd ->
 *    DM from apd: -> apd-eval against the cifar100: test split.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apd/distill.h"
#include "apd/format.h"
#include "apd/io.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "common/rng.h"

#define NCLS 3
#define PER 14
#define SIDE 8

static char g_dir[256];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_dir, name);
}

/* NCLS classes x PER noisy SIDE x SIDE RGB images, classes interleaved (label i*7 % NCLS) so
 * that the per-class index is not the record order; image 5 starts with a marker. */
static void make_dataset(apd_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    ck_assert_int_eq(apd_dataset_alloc(ds, NCLS * PER, 3, SIDE, SIDE, NCLS), APD_OK);
    ds->source_ids = malloc(ds->n * sizeof *ds->source_ids);
    ck_assert_ptr_nonnull(ds->source_ids);
    apd__rng r;
    apd__rng_seed(&r, 11, 0);
    for (uint64_t i = 0; i < ds->n; i++) {
        uint32_t cls = (uint32_t)((i * 7) % NCLS);
        ds->labels[i] = cls;
        ds->source_ids[i] = 1000 + i;
        for (uint32_t ch = 0; ch < 3; ch++)
            for (int y = 0; y < SIDE; y++)
                for (int x = 0; x < SIDE; x++) {
                    float v = 40.0f + 70.0f * (float)cls + (cls == ch ? 60.0f : 0.0f) + 6.0f * (float)x;
                    v += 20.0f * apd__rng_normal(&r);
                    ds->pixels[((i * 3 + ch) * SIDE + y) * SIDE + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
    }
    memcpy(ds->pixels + 5 * 3 * SIDE * SIDE, "APDSRC-MARKER-01", 16);
    for (uint32_t c = 0; c < NCLS; c++) snprintf(ds->class_names[c], APD_MAX_CLASS_NAME, "class-%c", 'a' + c);
    snprintf(ds->name, sizeof ds->name, "toy");
    snprintf(ds->split, sizeof ds->split, "train");
}

/* Write ds as a direct (palette_k 0) or quantized (median cut, K palette_k) .apd, mean/std
 * of the pixels recorded as apd-convert does; uncompressed so a test can find a record. */
static void write_apd(const char *path, const apd_dataset *ds, uint32_t palette_k, uint32_t n_classes)
{
    apd_writer_opts wo;
    apd_writer_opts_default(&wo);
    wo.c = ds->c;
    wo.h = ds->h;
    wo.w = ds->w;
    wo.kind = palette_k ? APD_KIND_PALETTE : APD_KIND_DIRECT;
    wo.k = palette_k;
    wo.n_classes = n_classes;
    wo.class_names = n_classes ? (const char (*)[64])ds->class_names : NULL;
    wo.force = 1;
    wo.no_sync = 1;
    wo.compress = APD_COMPRESS_OFF;
    wo.index_coding = APD_ICODE_OFF;
    wo.dataset_name = ds->name;
    apd_dataset_norm(ds, wo.mean, wo.std);
    apd_writer *w;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, path, &wo, &err) == APD_OK, "%s", err.msg);
    ck_assert_int_eq(apd_writer_set_meta(w, "source", "{\"name\": \"toy\", \"split\": \"train\"}"), APD_OK);
    size_t img = apd_dataset_image_bytes(ds);
    for (uint64_t i = 0; i < ds->n; i++) {
        apd_status s = palette_k ? apd_quantize_put(w, APD_QUANT_MEDIAN_CUT, ds->pixels + i * img, ds->labels[i],
                                                    ds->source_ids[i], 0)
                                 : apd_writer_put_direct(w, ds->pixels + i * img, ds->labels[i], ds->source_ids[i]);
        ck_assert_msg(s == APD_OK, "record %llu: %s", (unsigned long long)i, apd_writer_errmsg(w));
    }
    ck_assert_msg(apd_writer_finish(w, &err) == APD_OK, "%s", err.msg);
}

static void opts_for(apd_distill_opts *o, apd_distill_method m)
{
    apd_distill_opts_default(o);
    o->method = m;
    o->ipc = 2;
    o->budget = APD_BUDGET_IMAGES;
    o->colors = 8;
    o->iters = 3;
    o->batch_real = 6;
    o->seed = 9;
    o->threads = 1;
    o->color_subset = 4;
    o->select_epochs = 1;
    o->select_batch = 16;
    o->select_limit = 10;
    if (m != APD_DISTILL_AUTOPALETTE) {
        o->init = APD_INIT_RANDOM;
        o->init_set = 1;
    }
}

static int same_bytes(const void *a, const void *b, size_t n)
{
    return (a == NULL && b == NULL) || (a && b && memcmp(a, b, n) == 0);
}

static void assert_same_result(const apd_distill_result *a, const apd_distill_result *b, const char *what)
{
    ck_assert_uint_eq(a->n, b->n);
    ck_assert_uint_eq(a->kind, b->kind);
    size_t img = (size_t)a->c * a->h * a->w, p = (size_t)a->h * a->w;
    size_t diff = 0;
    if (a->kind == APD_KIND_DIRECT)
        for (size_t i = 0; i < a->n * img; i++) diff += a->pixels[i] != b->pixels[i];
    else {
        ck_assert_msg(same_bytes(a->palettes, b->palettes, a->n * a->k * a->c), "%s: palettes differ", what);
        for (size_t i = 0; i < a->n * p; i++) diff += a->indices[i] != b->indices[i];
    }
    printf("%s: %llu synthetic images, %zu differing bytes between the sources\n", what, (unsigned long long)a->n,
           diff);
    ck_assert_uint_eq(diff, 0);
    ck_assert(same_bytes(a->labels, b->labels, a->n * sizeof *a->labels));
    ck_assert(same_bytes(a->source_ids, b->source_ids, a->n * sizeof *a->source_ids));
    ck_assert(memcmp(a->mean, b->mean, sizeof a->mean) == 0 && memcmp(a->std, b->std, sizeof a->std) == 0);
    ck_assert_str_eq(a->hyperparameters_json, b->hyperparameters_json);
    ck_assert_str_eq(a->budget_json, b->budget_json);
    ck_assert_str_eq(a->stats_json, b->stats_json);
}

START_TEST(direct_apd_equals_memory)
{
    apd_dataset ds;
    make_dataset(&ds);
    char path[512];
    path_in(path, sizeof path, "direct.apd");
    write_apd(path, &ds, 0, NCLS);
    apd_distill_source *src;
    apd_err err;
    ck_assert_msg(apd_distill_source_open_apd(&src, path, &err) == APD_OK, "%s", err.msg);
    char h1[17], h2[17];
    apd_distill_source_hash(src, h1);
    apd_dataset_hash(&ds, h2);
    ck_assert_str_eq(h1, h2);
    apd_dataset desc;
    ck_assert_int_eq(apd_distill_source_describe(src, &desc, &err), APD_OK);
    ck_assert_ptr_null(desc.pixels);
    ck_assert_uint_eq(desc.n, ds.n);
    ck_assert(memcmp(desc.labels, ds.labels, ds.n * sizeof *ds.labels) == 0);
    ck_assert(memcmp(desc.source_ids, ds.source_ids, ds.n * sizeof *ds.source_ids) == 0);
    ck_assert_str_eq(desc.class_names[2], "class-c");
    ck_assert_str_eq(desc.name, "toy");
    ck_assert_str_eq(desc.split, "train");
    ck_assert_int_eq(desc.has_norm, 1);
    float mean[3], std[3];
    apd_dataset_mean_std(&ds, mean, std);
    ck_assert(memcmp(desc.norm_mean, mean, sizeof mean) == 0 && memcmp(desc.norm_std, std, sizeof std) == 0);
    for (uint32_t c = 0; c < NCLS; c++) ck_assert_uint_eq(apd_distill_source_class_count(src, c), PER);
    apd_dataset_free(&desc);

    const apd_distill_method methods[] = {APD_DISTILL_RANDOM, APD_DISTILL_DM, APD_DISTILL_AUTOPALETTE};
    for (size_t m = 0; m < 3; m++) {
        apd_distill_opts o;
        opts_for(&o, methods[m]);
        apd_distill_result rm, ra;
        ck_assert_msg(apd_distill_run(&ds, &o, &rm, &err) == APD_OK, "%s", err.msg);
        ck_assert_msg(apd_distill_run_source(src, &o, &ra, &err) == APD_OK, "%s", err.msg);
        assert_same_result(&rm, &ra, apd_distill_method_name(methods[m]));
        apd_distill_result_free(&rm);
        apd_distill_result_free(&ra);
    }
    apd_distill_source_free(src);
    apd_dataset_free(&ds);
}
END_TEST

START_TEST(quantized_apd_properties)
{
    apd_dataset ds;
    make_dataset(&ds);
    char path[512];
    path_in(path, sizeof path, "q8.apd");
    write_apd(path, &ds, 8, NCLS);
    apd_reader *r;
    apd_err err;
    ck_assert_msg(apd_reader_open(&r, path, NULL, &err) == APD_OK, "%s", err.msg);
    apd_file_info fi;
    apd_reader_info(r, &fi);
    apd_distill_source *src;
    ck_assert_msg(apd_distill_source_open_apd(&src, path, &err) == APD_OK, "%s", err.msg);
    size_t img = apd_dataset_image_bytes(&ds);
    uint8_t *dec = malloc(img);
    ck_assert_ptr_nonnull(dec);
    for (int m = 0; m < 2; m++) {
        apd_distill_opts o;
        opts_for(&o, m ? APD_DISTILL_DM : APD_DISTILL_RANDOM);
        apd_distill_result a, b;
        ck_assert_msg(apd_distill_run_source(src, &o, &a, &err) == APD_OK, "%s", err.msg);
        ck_assert_msg(apd_distill_run_source(src, &o, &b, &err) == APD_OK, "%s", err.msg);
        assert_same_result(&a, &b, m ? "dm from a quantized .apd, run twice" : "random from a quantized .apd, run twice");
        ck_assert_uint_eq(a.n, (uint64_t)NCLS * 2);
        ck_assert(memcmp(a.mean, fi.mean, 3 * sizeof(float)) == 0 && memcmp(a.std, fi.std, 3 * sizeof(float)) == 0);
        for (uint64_t i = 0; i < a.n; i++) {
            uint32_t label;
            ck_assert_uint_eq(a.labels[i], i / 2);
            ck_assert_uint_lt(a.source_ids[i], fi.n_records);
            ck_assert_int_eq(apd_reader_decode(r, a.source_ids[i], APD_LAYOUT_CHW, dec, img, &label), APD_OK);
            ck_assert_uint_eq(label, a.labels[i]);
            if (!m) ck_assert_msg(memcmp(dec, a.pixels + i * img, img) == 0, "random image %llu is not record %llu",
                                  (unsigned long long)i, (unsigned long long)a.source_ids[i]);
        }
        printf("%s from a quantized .apd: %llu images, classes and source records check out\n", m ? "dm" : "random",
               (unsigned long long)a.n);
        apd_distill_result_free(&a);
        apd_distill_result_free(&b);
    }
    free(dec);
    apd_reader_close(r);
    apd_distill_source_free(src);
    apd_dataset_free(&ds);
}
END_TEST

/* Open path as a source: must fail with want and a message containing each of the needles. */
static void expect_open_error(const char *path, apd_status want, const char *n1, const char *n2)
{
    apd_distill_source *src = (apd_distill_source *)1;
    apd_err err;
    apd_status s = apd_distill_source_open_apd(&src, path, &err);
    printf("bad source %s: %s (%s)\n", strrchr(path, '/') + 1, err.msg, apd_strerror(s));
    ck_assert_msg(s == want, "%s: got %s, want %s (%s)", path, apd_strerror(s), apd_strerror(want), err.msg);
    ck_assert_ptr_null(src);
    ck_assert_msg(strstr(err.msg, n1), "'%s' not in '%s'", n1, err.msg);
    if (n2) ck_assert_msg(strstr(err.msg, n2), "'%s' not in '%s'", n2, err.msg);
}

START_TEST(bad_sources)
{
    apd_dataset ds;
    make_dataset(&ds);
    char path[512];
    apd_err err;

    path_in(path, sizeof path, "missing.apd");
    expect_open_error(path, APD_ENOENT, "missing.apd", NULL);

    /* a damaged record: flip a byte of the marker image's pixels */
    path_in(path, sizeof path, "damaged.apd");
    write_apd(path, &ds, 0, NCLS);
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    char *buf = malloc((size_t)len);
    ck_assert_ptr_nonnull(buf);
    rewind(f);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    char *hit = memmem(buf, (size_t)len, "APDSRC-MARKER-01", 16);
    ck_assert_ptr_nonnull(hit);
    fseek(f, (long)(hit - buf) + 3, SEEK_SET);
    fputc(hit[3] ^ 0x20, f);
    fclose(f);
    free(buf);
    expect_open_error(path, APD_ECHECKSUM, "damaged.apd", "record 5");

    /* a palette image that is not an .apd */
    path_in(path, sizeof path, "palette.png");
    uint8_t pal[6] = {0, 0, 0, 255, 255, 255}, idx[SIDE * SIDE] = {0};
    idx[3] = 1;
    ck_assert_int_eq(apd_png_write_indexed(path, pal, 2, 3, idx, SIDE, SIDE, &err), APD_OK);
    expect_open_error(path, APD_EMAGIC, "palette.png", NULL);

    /* no classes: an unlabelled file */
    for (uint64_t i = 0; i < ds.n; i++) ds.labels[i] = 0;
    path_in(path, sizeof path, "noclasses.apd");
    write_apd(path, &ds, 0, 0);
    expect_open_error(path, APD_EDATASET, "noclasses.apd", "no classes");

    /* a class without records: 3 classes stated, labels 0 and 1 only */
    for (uint64_t i = 0; i < ds.n; i++) ds.labels[i] = (uint32_t)(i % 2);
    path_in(path, sizeof path, "emptyclass.apd");
    write_apd(path, &ds, 0, NCLS);
    expect_open_error(path, APD_EDATASET, "class 2 (class-c) has no records", "emptyclass.apd");

    /* a distilled palette file (1 image per class) asked for 2 per class */
    apd_dataset_free(&ds);
    make_dataset(&ds);
    apd_distill_opts o;
    opts_for(&o, APD_DISTILL_RANDOM);
    o.ipc = 1;
    apd_distill_result res;
    ck_assert_int_eq(apd_distill_run(&ds, &o, &res, &err), APD_OK);
    apd_dataset small;
    ck_assert_int_eq(apd_dataset_alloc(&small, res.n, 3, SIDE, SIDE, NCLS), APD_OK);
    memcpy(small.pixels, res.pixels, res.n * apd_dataset_image_bytes(&small));
    memcpy(small.labels, res.labels, res.n * sizeof *res.labels);
    small.source_ids = calloc(res.n, sizeof *small.source_ids);
    ck_assert_ptr_nonnull(small.source_ids);
    apd_distill_result_free(&res);
    path_in(path, sizeof path, "distilled-k8.apd");
    write_apd(path, &small, 8, NCLS);
    apd_distill_source *src;
    ck_assert_msg(apd_distill_source_open_apd(&src, path, &err) == APD_OK, "%s", err.msg);
    o.ipc = 2;
    apd_status s = apd_distill_run_source(src, &o, &res, &err);
    printf("distilled palette file as a source, 2 per class: %s\n", err.msg);
    ck_assert_int_eq(s, APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "class 0 has 1 images in "));
    ck_assert_ptr_nonnull(strstr(err.msg, "distilled-k8.apd"));
    ck_assert_uint_eq(res.n, 0);
    apd_distill_source_free(src);
    apd_dataset_free(&small);
    apd_dataset_free(&ds);
}
END_TEST

/* apd-convert ARGS; returns the exit status, the output in out[cap]. */
static int convert(const char *args, char *out, size_t cap)
{
    char cmd[2048], log[512];
    path_in(log, sizeof log, "convert.log");
    snprintf(cmd, sizeof cmd, "%s/apd-convert %s > %s 2>&1", APD_BINARY_DIR, args, log);
    int rc = system(cmd);
    FILE *f = fopen(log, "rb");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    printf("apd-convert %s -> %d: %s", args, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(cli_apd_input)
{
    apd_dataset ds;
    make_dataset(&ds);
    char src[512], out[512], args[1536], text[4096];
    path_in(src, sizeof src, "cli-src.apd");
    path_in(out, sizeof out, "cli-out.apd");
    write_apd(src, &ds, 8, NCLS);
    apd_dataset_free(&ds);
    snprintf(args, sizeof args, "--input apd:%s --method dm --ipc 1 --iters 2 --batch-real 4 --threads 1 --quiet -o %s --force",
             src, out);
    ck_assert_int_eq(convert(args, text, sizeof text), 0);
    apd_reader *r;
    apd_err err;
    ck_assert_msg(apd_reader_open(&r, out, NULL, &err) == APD_OK, "%s", err.msg);
    ck_assert_uint_eq(apd_reader_count(r), NCLS);
    ck_assert_ptr_nonnull(strstr(apd_reader_meta_json(r), "\"spec\": \"apd:"));
    ck_assert_str_eq(apd_reader_class_name(r, 1), "class-b");
    apd_reader_close(r);

    snprintf(args, sizeof args, "--input apd:%s/none.apd --method dm -o %s --force", g_dir, out);
    ck_assert_int_eq(convert(args, text, sizeof text), 1);
    ck_assert_ptr_nonnull(strstr(text, "none.apd"));
    snprintf(args, sizeof args, "--input apd:%s --method quantize --colors 4 -o %s --force", src, out);
    ck_assert_int_eq(convert(args, text, sizeof text), 2);
    ck_assert_ptr_nonnull(strstr(text, "distillation methods"));
    snprintf(args, sizeof args, "--input apd:%s --method dm --limit 10 -o %s --force", src, out);
    ck_assert_int_eq(convert(args, text, sizeof text), 2);
    ck_assert_ptr_nonnull(strstr(text, "--limit"));
    snprintf(args, sizeof args, "--input apd: --method dm -o %s --force", out);
    ck_assert_int_eq(convert(args, text, sizeof text), 1);
    ck_assert_ptr_nonnull(strstr(text, "missing path"));
}
END_TEST

/* CIFAR-100 binary records (coarse label byte, fine label byte, 3072 pixel bytes) of all 100
 * classes, per_class each; the coarse byte is fine / 5 (as CIFAR-100's 20 superclasses). */
static void write_cifar100(const char *path, uint32_t per_class, uint64_t seed)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    apd__rng r;
    apd__rng_seed(&r, seed, 0);
    uint8_t rec[3074];
    for (uint32_t t = 0; t < per_class; t++)
        for (uint32_t c = 0; c < 100; c++) {
            rec[0] = (uint8_t)(c / 5);
            rec[1] = (uint8_t)c;
            for (uint32_t ch = 0; ch < 3; ch++)
                for (uint32_t i = 0; i < 1024; i++) {
                    float v = (float)((c * (37 + 50 * ch)) % 256) + ((i / 32 + c) % 8 < 4 ? 30.0f : -30.0f) +
                              12.0f * apd__rng_normal(&r);
                    rec[2 + ch * 1024 + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            ck_assert_uint_eq(fwrite(rec, 1, sizeof rec, f), sizeof rec);
        }
    fclose(f);
}

/* CIFAR-100 end to end with 100 classes: the importer (2 label bytes, the fine one used),
 * a direct .apd, a DM distillation at IPC 1 from apd:, apd-eval of the result against the
 * cifar100: test split (the class lists must match). */
START_TEST(cifar100_end_to_end)
{
    char dir[512], p[600], args[2048], text[4096];
    path_in(dir, sizeof dir, "c100");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/train.bin", dir);
    write_cifar100(p, 3, 1);
    snprintf(p, sizeof p, "%s/test.bin", dir);
    write_cifar100(p, 1, 2);
    snprintf(args, sizeof args, "--input cifar100:%s --method direct --quiet -o %s/c100.apd --force", dir, dir);
    ck_assert_int_eq(convert(args, text, sizeof text), 0);
    snprintf(p, sizeof p, "%s/c100.apd", dir);
    apd_reader *r;
    apd_err err;
    ck_assert_msg(apd_reader_open(&r, p, NULL, &err) == APD_OK, "%s", err.msg);
    apd_file_info fi;
    apd_reader_info(r, &fi);
    ck_assert_uint_eq(fi.n_classes, 100);
    ck_assert_uint_eq(fi.n_records, 300);
    for (uint32_t c = 0; c < 100; c++) ck_assert_uint_eq(apd_reader_class_count(r, c), 3);
    ck_assert_str_eq(apd_reader_class_name(r, 0), "apple");
    ck_assert_str_eq(apd_reader_class_name(r, 99), "worm");
    uint32_t label;
    ck_assert_int_eq(apd_reader_label(r, 7, &label), APD_OK);
    ck_assert_uint_eq(label, 7); /* the fine label, not the coarse byte (7 / 5 = 1) */
    apd_reader_close(r);
    snprintf(args, sizeof args, "--input apd:%s/c100.apd --method dm --ipc 1 --iters 1 --batch-real 2 --threads 1 "
             "--quiet -o %s/c100-dm.apd --force", dir, dir);
    ck_assert_int_eq(convert(args, text, sizeof text), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/apd-eval %s/c100-dm.apd --test cifar100:%s --epochs 1 --runs 1 --batch 64 "
             "--threads 1 --json > %s/eval.json 2>&1", APD_BINARY_DIR, dir, dir, dir);
    int rc = system(cmd);
    snprintf(p, sizeof p, "%s/eval.json", dir);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    printf("apd-eval of the 100-class distillation: %s\n", text);
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s", text);
    ck_assert_ptr_nonnull(strstr(text, "\"n_classes\": 100"));
    ck_assert_ptr_nonnull(strstr(text, "\"n_train\": 100"));
    ck_assert_ptr_nonnull(strstr(text, "\"accuracies\": ["));
}
END_TEST

/* No argument: the library and CLI cases. "c100": the CIFAR-100 end-to-end case (it trains
 * networks, so ctest runs it as a separate test labelled slow). */
int main(int argc, char **argv)
{
    int c100 = argc > 1 && !strcmp(argv[1], "c100");
    snprintf(g_dir, sizeof g_dir, "%s/test_distill_source.XXXXXX", P_tmpdir);
    if (!mkdtemp(g_dir)) return 1;
    Suite *su = suite_create("distill_source");
    TCase *tc = tcase_create(c100 ? "c100" : "main");
    tcase_set_timeout(tc, 600);
    if (c100) {
        tcase_add_test(tc, cifar100_end_to_end);
    } else {
        tcase_add_test(tc, direct_apd_equals_memory);
        tcase_add_test(tc, quantized_apd_properties);
        tcase_add_test(tc, bad_sources);
        tcase_add_test(tc, cli_apd_input);
    }
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (nf == 0 && system(cmd) != 0) nf = 1;
    return nf ? 1 : 0;
}
