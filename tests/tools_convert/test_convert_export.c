/* test_convert_export.c: apd-convert and apd-export as a user runs them (exit codes,
 * messages, files), checked through the reader API and libpng:
 * - usage errors exit 2, errors exit 1 and remove partial output, --force rules;
 * - the records equal apd_quantize_image on the imported images (end-to-end data path);
 * - identical records for --threads 1 and 2 (determinism);
 * - provenance keys present, source hash = apd_dataset_hash of the import;
 * - --method direct stores the source pixels;
 * - apd-export --png writes one indexed PNG per record in class folders (+ labels.csv),
 *   --sheet writes a grid of the right size;
 * - a file with no class structure (n_classes 0, spec-legal) exports --per-class into folders
 *   named by the label (it failed "cannot create PNG": folders were made only for classes);
 * - --format 1.0 / 1.1 / 1.2 write files of that version (bit-packed; coded with index model
 *   version 1; version 2) holding the same pixels; 1.0 refuses a source's soft labels and
 *   writes nothing; other values are usage errors.
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/io.h"
#include "apd/quant.h"
#include "cli_test_util.h"
#include "test_data.h"

#define CIFAR_DEV APD_TEST_CIFAR

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

START_TEST(usage_and_errors)
{
    char out[1100];
    snprintf(out, sizeof out, "%s/x.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT), 2);
    ck_assert(strstr(cli_slurp("err.txt"), "missing --input") != NULL);
    ck_assert_int_eq(cli_run(CONVERT " --help"), 0);
    ck_assert(strstr(cli_slurp("out.txt"), "--quantizer") != NULL);
    ck_assert_int_eq(cli_run(CONVERT " --version"), 0);
    ck_assert_int_eq(cli_run(CONVERT " --input fashion-mnist --method quantize --colors 0 -o %s", out), 2);
    ck_assert_int_eq(cli_run(CONVERT " --input fashion-mnist --method quantize --colors 300 -o %s", out), 2);
    ck_assert_int_eq(cli_run(CONVERT " --input fashion-mnist --method quantize -o %s", out), 2);
    ck_assert_int_eq(cli_run(CONVERT " --input fashion-mnist --method magic --colors 4 -o %s", out), 2);
    ck_assert_int_eq(cli_run(CONVERT " --input fashion-mnist --method quantize --quantizer dither --colors 4 -o %s", out), 2);
    ck_assert_int_eq(cli_run(CONVERT " --input fashion-mnist --method quantize --colors 4 --split val -o %s", out), 2);
    ck_assert_int_eq(cli_run(CONVERT " --input fashion-mnist --method quantize --colors 4 --bogus -o %s", out), 2);
    /* numbers beyond 64 bits are refused as given, not saturated */
    ck_assert_int_eq(cli_run(CONVERT " --input fashion-mnist --method autopalette --init graphcut --select-limit 99999999999999999999 -o %s", out), 2);
    ck_assert(strstr(cli_slurp("err.txt"), "bad value '99999999999999999999' for --select-limit") != NULL);
    ck_assert_int_eq(cli_run(CONVERT " --input fashion-mnist --method quantize --limit 99999999999999999999 -o %s", out), 2);
    ck_assert(strstr(cli_slurp("err.txt"), "--limit '99999999999999999999'") != NULL);
    /* runtime errors: exit 1, message names the file, no output left behind */
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:%s/nope --method quantize --colors 4 -o %s", cli_tmp, out), 1);
    ck_assert(strstr(cli_slurp("err.txt"), "/nope") != NULL);
    ck_assert(!exists(out));
    ck_assert_int_eq(cli_run(EXPORT), 2);
    ck_assert_int_eq(cli_run(EXPORT " %s --png %s/p", out, cli_tmp), 1);
    ck_assert_int_eq(cli_run(EXPORT " %s", out), 2);
    ck_assert_int_eq(cli_run(EXPORT " --help"), 0);
}
END_TEST

START_TEST(convert_quantize_end_to_end)
{
    char a[1100], b[1100];
    snprintf(a, sizeof a, "%s/a.apd", cli_tmp);
    snprintf(b, sizeof b, "%s/b.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:" CIFAR_DEV " --split test --limit 300 --method quantize "
                         "--quantizer median-cut --colors 16 --threads 1 -o %s", a), 0);
    ck_assert_str_eq(cli_slurp("err.txt"), ""); /* no progress bar in a pipe */
    ck_assert(strstr(cli_slurp("out.txt"), "300 images") != NULL);
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:" CIFAR_DEV " --split test --limit 300 --method quantize "
                         "--quantizer median-cut --colors 16 --threads 2 -o %s --quiet", b), 0);
    ck_assert_str_eq(cli_slurp("out.txt"), "");
    /* refuses to overwrite, keeps the file; --force overwrites */
    struct stat st0, st1;
    ck_assert_int_eq(stat(a, &st0), 0);
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:" CIFAR_DEV " --split test --limit 10 --method quantize --colors 4 -o %s", a), 1);
    ck_assert(strstr(cli_slurp("err.txt"), "--force") != NULL);
    ck_assert_int_eq(stat(a, &st1), 0);
    ck_assert_int_eq(st0.st_size, st1.st_size);

    apd_dataset ds;
    apd_err err;
    apd_import_opts io = {.limit = 300};
    ck_assert_int_eq(apd_import(&ds, "cifar10:" CIFAR_DEV, "test", &io, &err), APD_OK);
    char hash[17];
    apd_dataset_hash(&ds, hash);
    apd_reader *ra, *rb;
    ck_assert_int_eq(apd_reader_open(&ra, a, NULL, &err), APD_OK);
    ck_assert_int_eq(apd_reader_open(&rb, b, NULL, &err), APD_OK);
    apd_file_info fi;
    ck_assert_int_eq(apd_reader_info(ra, &fi), APD_OK);
    ck_assert_uint_eq(fi.n_records, 300);
    ck_assert_uint_eq(fi.kind, APD_KIND_PALETTE);
    ck_assert_uint_eq(fi.k, 16);
    ck_assert_uint_eq(fi.c, 3);
    ck_assert_str_eq(apd_reader_class_name(ra, 0), "airplane");
    uint8_t pa[768], pb[768], ia[1024], ib[1024], qp[768], qi[1024];
    for (uint64_t i = 0; i < 300; i++) {
        uint32_t ka, kb, la, lb, kq;
        ck_assert_int_eq(apd_reader_record(ra, i, pa, &ka, ia, &la), APD_OK);
        ck_assert_int_eq(apd_reader_record(rb, i, pb, &kb, ib, &lb), APD_OK);
        ck_assert_uint_eq(ka, kb);
        ck_assert(memcmp(pa, pb, ka * 3) == 0 && memcmp(ia, ib, 1024) == 0);
        ck_assert_uint_eq(la, ds.labels[i]);
        ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, ds.pixels + i * 3072, 3, 32, 32, 16, 0, qp, qi, &kq), APD_OK);
        ck_assert_uint_eq(ka, kq);
        /* same colour at every pixel: an index-coded record (format 1.1) stores its palette
           sorted by luminance, so palette order and index numbers may differ */
        for (int p = 0; p < 1024; p++) ck_assert(memcmp(pa + 3 * ia[p], qp + 3 * qi[p], 3) == 0);
        uint64_t sid;
        ck_assert_int_eq(apd_reader_source_id(ra, i, &sid), APD_OK);
        ck_assert_uint_eq(sid, i);
    }
    const char *meta = apd_reader_meta_json(ra);
    static const char *const keys[] = {"\"tool_version\"", "\"command_line\"", "\"method\": \"quantize\"",
        "\"quantizer\": \"median-cut\"", "\"colors\": 16", "\"seed\": 0", "\"source\"", "\"hyperparameters\"",
        "\"created\"", "\"split\": \"test\""};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        ck_assert_msg(strstr(meta, keys[k]) != NULL, "metadata lacks %s:\n%s", keys[k], meta);
    char want_hash[64];
    snprintf(want_hash, sizeof want_hash, "\"hash\": \"%s\"", hash);
    ck_assert_msg(strstr(meta, want_hash) != NULL, "metadata lacks %s", want_hash);
    apd_reader_close(ra);
    apd_reader_close(rb);

    /* export: per-class indexed PNGs, read back with libpng */
    ck_assert_int_eq(cli_run(EXPORT " %s --png %s/png --per-class", a, cli_tmp), 0);
    char p[1300];
    snprintf(p, sizeof p, "%s/png/labels.csv", cli_tmp);
    ck_assert(exists(p));
    uint32_t k0;
    uint8_t pal0[768], idx0[1024];
    ck_assert_int_eq(apd_reader_open(&ra, a, NULL, &err), APD_OK);
    ck_assert_int_eq(apd_reader_record(ra, 0, pal0, &k0, idx0, NULL), APD_OK);
    snprintf(p, sizeof p, "%s/png/%s/000000.png", cli_tmp, apd_reader_class_name(ra, ds.labels[0]));
    apd_reader_close(ra);
    FILE *f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "missing %s", p);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop pi = png_create_info_struct(png);
    ck_assert(setjmp(png_jmpbuf(png)) == 0);
    png_init_io(png, f);
    png_read_info(png, pi);
    ck_assert_int_eq(png_get_color_type(png, pi), PNG_COLOR_TYPE_PALETTE);
    ck_assert_int_eq(png_get_bit_depth(png, pi), k0 <= 2 ? 1 : k0 <= 4 ? 2 : k0 <= 16 ? 4 : 8);
    png_colorp pl;
    int npl;
    ck_assert(png_get_PLTE(png, pi, &pl, &npl));
    ck_assert_int_eq(npl, (int)k0);
    ck_assert_uint_eq(pl[1].green, pal0[4]);
    png_set_packing(png);
    png_read_update_info(png, pi);
    uint8_t row[32];
    png_read_row(png, row, NULL);
    ck_assert(memcmp(row, idx0, 32) == 0);
    png_destroy_read_struct(&png, &pi, NULL);
    fclose(f);
    /* count files */
    ck_assert_int_eq(cli_run("find '%s/png' -name '*.png' | wc -l", cli_tmp), 0);
    ck_assert_int_eq(atoi(cli_slurp("out.txt")), 300);
    /* contact sheet: 10 rows x 5 of 32x32 images scaled x2 to 64x64 cells, 2 px apart, after a
     * column of class names: 10*66+2 high, wider than 5*66+2 */
    ck_assert_int_eq(cli_run(EXPORT " %s --sheet %s/sheet.png --per-class 5", a, cli_tmp), 0);
    snprintf(p, sizeof p, "%s/sheet.png", cli_tmp);
    f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    pi = png_create_info_struct(png);
    ck_assert(setjmp(png_jmpbuf(png)) == 0);
    png_init_io(png, f);
    png_read_info(png, pi);
    uint32_t sw = png_get_image_width(png, pi), sh = png_get_image_height(png, pi);
    ck_assert_uint_gt(sw, 5 * 66 + 2);
    ck_assert_uint_eq(sh, 10 * 66 + 2);
    /* the label column (left of the cells) is white paper with black text in every row */
    ck_assert_int_eq(png_get_color_type(png, pi), PNG_COLOR_TYPE_RGB);
    uint32_t label_w = sw - (5 * 66 + 2), rows_with_text = 0, ink = 0;
    uint8_t *line = malloc((size_t)sw * 3);
    for (uint32_t y = 0; y < sh; y++) {
        png_read_row(png, line, NULL);
        uint32_t dark = 0;
        for (uint32_t x = 0; x < label_w; x++) dark += line[3 * x] == 0 && line[3 * x + 1] == 0 && line[3 * x + 2] == 0;
        ink += dark;
        if (dark && y % 66 == 34) rows_with_text++; /* middle of each cell row */
    }
    free(line);
    ck_assert_uint_gt(ink, 10 * 20);
    ck_assert_uint_eq(rows_with_text, 10);
    png_destroy_read_struct(&png, &pi, NULL);
    fclose(f);
    apd_dataset_free(&ds);
}
END_TEST

START_TEST(convert_direct_and_octree)
{
    char a[1100];
    snprintf(a, sizeof a, "%s/d.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:" CIFAR_DEV "/test.bin --limit 50 --method direct -o %s", a), 0);
    apd_dataset ds;
    apd_err err;
    apd_import_opts io = {.limit = 50};
    ck_assert_int_eq(apd_import(&ds, "cifar10:" CIFAR_DEV "/test.bin", NULL, &io, &err), APD_OK);
    apd_reader *r;
    ck_assert_int_eq(apd_reader_open(&r, a, NULL, &err), APD_OK);
    uint8_t img[3072];
    for (uint64_t i = 0; i < 50; i++) {
        uint32_t label;
        ck_assert_int_eq(apd_reader_decode(r, i, APD_LAYOUT_CHW, img, sizeof img, &label), APD_OK);
        ck_assert(memcmp(img, ds.pixels + i * 3072, 3072) == 0);
        ck_assert_uint_eq(label, ds.labels[i]);
    }
    apd_reader_close(r);
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:" CIFAR_DEV "/test.bin --limit 50 --method quantize "
                         "--quantizer octree --colors 5 -o %s --force", a), 0);
    ck_assert_int_eq(apd_reader_open(&r, a, NULL, &err), APD_OK);
    uint8_t pal[768], idx[1024];
    uint32_t k;
    ck_assert_int_eq(apd_reader_record(r, 7, pal, &k, idx, NULL), APD_OK);
    ck_assert_uint_le(k, 5);
    ck_assert(strstr(apd_reader_meta_json(r), "\"octree\"") != NULL);
    apd_reader_close(r);
    apd_dataset_free(&ds);
}
END_TEST

START_TEST(export_without_classes)
{
    char a[1100];
    snprintf(a, sizeof a, "%s/noclass.apd", cli_tmp);
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = APD_KIND_PALETTE;
    o.c = 3;
    o.h = o.w = 4;
    o.k = 2;
    o.n_classes = 0;
    apd_writer *w;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, a, &o, &err) == APD_OK, "%s", err.msg);
    const uint8_t pal[6] = {0, 0, 0, 255, 255, 255};
    uint8_t idx[16];
    const uint32_t labels[3] = {3, 7, 3};
    for (int i = 0; i < 3; i++) {
        for (int p = 0; p < 16; p++) idx[p] = (uint8_t)((p + i) & 1);
        ck_assert_int_eq(apd_writer_put_palette(w, pal, 2, idx, labels[i], APD_NO_SOURCE_ID), APD_OK);
    }
    ck_assert_msg(apd_writer_finish(w, &err) == APD_OK, "%s", err.msg);
    ck_assert_msg(cli_run(EXPORT " %s --png %s/ex --per-class", a, cli_tmp) == 0, "%s", cli_slurp("err.txt"));
    const char *want[3] = {"3/000000.png", "7/000001.png", "3/000002.png"};
    for (int i = 0; i < 3; i++) {
        char f[1200];
        struct stat st;
        snprintf(f, sizeof f, "%s/ex/%s", cli_tmp, want[i]);
        ck_assert_msg(stat(f, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0, "missing %s", f);
    }
}
END_TEST

START_TEST(convert_format_versions)
{
    static const char *const fmt[3] = {"1.0", "1.1", "1.2"};
    char path[3][1100];
    apd_reader *r[3];
    apd_err err;
    for (int v = 0; v < 3; v++) {
        snprintf(path[v], sizeof path[v], "%s/f%d.apd", cli_tmp, v);
        ck_assert_msg(cli_run(CONVERT " --input cifar10:" CIFAR_DEV " --split test --limit 100 --method quantize "
                              "--colors 16 --threads 1 --format %s -o %s --quiet", fmt[v], path[v]) == 0,
                      "%s", cli_slurp("err.txt"));
        ck_assert_msg(apd_reader_open(&r[v], path[v], NULL, &err) == APD_OK, "%s", err.msg);
        apd_file_info fi;
        apd_file_stats st;
        ck_assert_int_eq(apd_reader_info(r[v], &fi), APD_OK);
        ck_assert_int_eq(apd_reader_stats(r[v], &st), APD_OK);
        ck_assert_uint_eq(fi.version_minor, (unsigned)v);
        ck_assert_int_eq(fi.has_index_model, v); /* 0, or the index model's version */
        if (v) ck_assert_uint_gt(st.coded_records, 50);
        else ck_assert_uint_eq(st.coded_records, 0);
    }
    uint8_t a[3072], b[3072];
    for (uint64_t i = 0; i < 100; i++) {
        ck_assert_int_eq(apd_reader_decode(r[0], i, APD_LAYOUT_HWC, a, sizeof a, NULL), APD_OK);
        for (int v = 1; v < 3; v++) {
            ck_assert_int_eq(apd_reader_decode(r[v], i, APD_LAYOUT_HWC, b, sizeof b, NULL), APD_OK);
            ck_assert_msg(memcmp(a, b, sizeof a) == 0, "record %llu differs in format %s", (unsigned long long)i, fmt[v]);
        }
    }
    for (int v = 0; v < 3; v++) apd_reader_close(r[v]);
    /* apd-info names the format and the index model version, in text and JSON */
    static const char *const line[3] = {".apd 1.0, palette records", "index model version 1, row groups",
                                        "index model version 2, continuous wavefront"};
    static const char *const json[3] = {"\"index_model_version\": 0", "\"index_model_version\": 1",
                                        "\"index_model_version\": 2"};
    for (int v = 0; v < 3; v++) {
        ck_assert_int_eq(cli_run(APD_BINARY_DIR "/apd-info %s", path[v]), 0);
        ck_assert_msg(strstr(cli_slurp("out.txt"), line[v]) != NULL, "apd-info %s lacks '%s'", fmt[v], line[v]);
        ck_assert_int_eq(cli_run(APD_BINARY_DIR "/apd-info --json %s", path[v]), 0);
        ck_assert_msg(strstr(cli_slurp("out.txt"), json[v]) != NULL, "apd-info --json %s lacks %s", fmt[v], json[v]);
    }
    /* soft labels (an apd-export folder with soft-labels.csv) cannot go into a 1.0 file */
    ck_assert_int_eq(cli_run(EXPORT " %s/tests/data/bad/soft_labels.apd --png %s/soft", APD_SOURCE_DIR, cli_tmp), 0);
    ck_assert_int_eq(cli_run(CONVERT " --input folder:%s/soft --method quantize --colors 4 --format 1.0 -o %s/s.apd",
                             cli_tmp, cli_tmp), 1);
    cli_expect_err("soft labels need format 1.1");
    char sp[1100];
    snprintf(sp, sizeof sp, "%s/s.apd", cli_tmp);
    ck_assert(!exists(sp));
    ck_assert_int_eq(cli_run(CONVERT " --input folder:%s/soft --method quantize --colors 4 -o %s --quiet", cli_tmp, sp), 0);
    ck_assert(exists(sp));
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:" CIFAR_DEV " --limit 10 --method quantize --format 2.0 -o %s/x.apd",
                             cli_tmp), 2);
    cli_expect_err("--format '2.0'");
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {usage_and_errors, convert_quantize_end_to_end, convert_direct_and_octree,
                                  export_without_classes, convert_format_versions};
    return cli_main("convert_export", "cli_tmp", 300, tests, sizeof tests / sizeof *tests);
}
