/* test_convert_interop.c: class identity across the tools, and options that do not apply.
 *
 * - Round trip: apd-convert (CIFAR-10 binary with class names whose alphabetical order is
 *   not the label order; grey IDX with 12 classes, whose names "0".."11" sort as 0, 1, 10,
 *   11, 2, ...) -> apd-export --png [--per-class] -> apd-convert --input folder:EXPORT gives
 *   the same label of every record, the same class names in the same order, the same
 *   mean/std (bit for bit), the same channel count and the same pixels; also with --limit.
 * - Usage errors (exit 2) for options that do nothing for the method or source; a split a
 *   single file is not (exit 1); what --limit took on a folder (class-balanced) is printed.
 * Fixtures are written by the test (seeded bytes); nothing is read from shared data.
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apd/format.h"
#include "cli_test_util.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint8_t next_byte(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 24);
}

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(d, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* DIR/train.bin: n CIFAR-10 records (label i % 10, smooth-ish seeded pixels so that K = 16
 * leaves several colours) and DIR/batches.meta.txt with non-alphabetical names (or names). */
static void make_cifar_named(const char *dir, int n, const char *names)
{
    char p[1200];
    snprintf(p, sizeof p, "mkdir -p '%s'", dir);
    ck_assert_int_eq(system(p), 0);
    uint8_t *b = malloc((size_t)n * 3073);
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + (size_t)i * 3073;
        r[0] = (uint8_t)(i % 10);
        for (int j = 0; j < 3072; j++) r[1 + j] = (uint8_t)((j % 1024) / 4 + (next_byte() & 31) + 40 * (j / 1024));
    }
    snprintf(p, sizeof p, "%s/train.bin", dir);
    write_file(p, b, (size_t)n * 3073);
    free(b);
    snprintf(p, sizeof p, "%s/batches.meta.txt", dir);
    write_file(p, names, strlen(names));
}

static void make_cifar(const char *dir, int n)
{
    make_cifar_named(dir, n, "zebra\napple\nmango\nkiwi\nbanana\ncherry\ndate\nfig\ngrape\nlemon\n");
}

/* IDX grey 8x8 images (n) and labels i % 12. */
static void make_idx(const char *img, const char *lab, int n)
{
    uint8_t *b = malloc(16 + (size_t)n * 64), l[8 + 256];
    memcpy(b, (const uint8_t[]){0, 0, 8, 3, 0, 0, 0, (uint8_t)n, 0, 0, 0, 8, 0, 0, 0, 8}, 16);
    for (int i = 0; i < n * 64; i++) b[16 + i] = next_byte();
    memcpy(l, (const uint8_t[]){0, 0, 8, 1, 0, 0, 0, (uint8_t)n}, 8);
    for (int i = 0; i < n; i++) l[8 + i] = (uint8_t)(i % 12);
    write_file(img, b, 16 + (size_t)n * 64);
    write_file(lab, l, 8 + (size_t)n);
    free(b);
}

/* b (imported back from an export of a) holds the same classes, mean/std and, for each of
 * its records, the label and pixels of the same record of a. */
static void same_identity(const char *a, const char *b, uint64_t want_n)
{
    apd_reader *ra, *rb;
    apd_err err;
    ck_assert_msg(apd_reader_open(&ra, a, NULL, &err) == APD_OK, "%s", err.msg);
    ck_assert_msg(apd_reader_open(&rb, b, NULL, &err) == APD_OK, "%s", err.msg);
    apd_file_info fa, fb;
    ck_assert_int_eq(apd_reader_info(ra, &fa), APD_OK);
    ck_assert_int_eq(apd_reader_info(rb, &fb), APD_OK);
    ck_assert_uint_eq(fb.n_records, want_n);
    ck_assert_uint_eq(fa.c, fb.c);
    ck_assert_uint_eq(fa.h, fb.h);
    ck_assert_uint_eq(fa.w, fb.w);
    ck_assert_uint_eq(fa.n_classes, fb.n_classes);
    for (uint32_t k = 0; k < fa.n_classes; k++)
        ck_assert_str_eq(apd_reader_class_name(ra, k), apd_reader_class_name(rb, k));
    for (uint32_t ch = 0; ch < fa.c; ch++) {
        ck_assert_msg(fa.mean[ch] == fb.mean[ch] && fa.std[ch] == fb.std[ch], "channel %u: mean %.9g/%.9g std %.9g/%.9g",
                      ch, (double)fa.mean[ch], (double)fb.mean[ch], (double)fa.std[ch], (double)fb.std[ch]);
    }
    size_t img = (size_t)fa.c * fa.h * fa.w;
    uint8_t *pa = malloc(img), *pb = malloc(img);
    uint64_t diff = 0;
    for (uint64_t i = 0; i < fb.n_records; i++) {
        uint32_t la, lb;
        uint64_t sid;
        ck_assert_int_eq(apd_reader_decode(ra, i, APD_LAYOUT_CHW, pa, img, &la), APD_OK);
        ck_assert_int_eq(apd_reader_decode(rb, i, APD_LAYOUT_CHW, pb, img, &lb), APD_OK);
        ck_assert_uint_eq(la, lb);
        ck_assert_int_eq(apd_reader_source_id(rb, i, &sid), APD_OK);
        ck_assert_uint_eq(sid, i); /* the export's record index */
        for (size_t j = 0; j < img; j++) diff += pa[j] != pb[j];
    }
    ck_assert_uint_eq(diff, 0);
    printf("round trip %s -> %s: %llu records, %u classes, mean/std and pixels identical\n", a, b,
           (unsigned long long)fb.n_records, fb.n_classes);
    free(pa);
    free(pb);
    apd_reader_close(ra);
    apd_reader_close(rb);
}

START_TEST(roundtrip_class_identity)
{
    char c10[1100], a[1100], b[1100];
    snprintf(c10, sizeof c10, "%s/c10", cli_tmp);
    make_cifar(c10, 40);
    snprintf(a, sizeof a, "%s/a.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:%s --method quantize --colors 16 -o %s --quiet", c10, a), 0);
    /* per-class folders: zebra/ sorts last but is label 0 */
    ck_assert_int_eq(cli_run(EXPORT " %s --png %s/ex --per-class", a, cli_tmp), 0);
    snprintf(b, sizeof b, "%s/ex/apd-export.json", cli_tmp);
    struct stat st;
    ck_assert_int_eq(stat(b, &st), 0);
    snprintf(b, sizeof b, "%s/b.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input folder:%s/ex --method direct -o %s --quiet", cli_tmp, b), 0);
    ck_assert_str_eq(cli_slurp("err.txt"), ""); /* no warning: everything was stated */
    same_identity(a, b, 40);
    /* the same with a flat export and with a limit (all 10 classes named, 7 records) */
    ck_assert_int_eq(cli_run(EXPORT " %s --png %s/flat --limit 7", a, cli_tmp), 0);
    snprintf(b, sizeof b, "%s/b7.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input folder:%s/flat --method direct -o %s --quiet", cli_tmp, b), 0);
    same_identity(a, b, 7);
    /* the export is the train split; asking it for test is an error */
    ck_assert_int_eq(cli_run(CONVERT " --input folder:%s/ex --split test --method direct -o %s/x.apd", cli_tmp, cli_tmp), 1);
    cli_expect_err("the exported images are the train split; split test does not apply");

    /* class names that sanitise alike get folders of their own; the names come back */
    snprintf(c10, sizeof c10, "%s/c10s", cli_tmp);
    make_cifar_named(c10, 20, "a/b\na_b\n.\n/\ne\nf\ng\nh\ni\nj\n");
    snprintf(a, sizeof a, "%s/s.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:%s --method direct -o %s --quiet", c10, a), 0);
    ck_assert_int_eq(cli_run(EXPORT " %s --png %s/sex --per-class", a, cli_tmp), 0);
    ck_assert_int_eq(cli_run("LC_ALL=C ls '%s/sex'", cli_tmp), 0);
    ck_assert_str_eq(cli_slurp("out.txt"), "_\n_~3\na_b\na_b~1\napd-export.json\ne\nf\ng\nh\ni\nj\nlabels.csv\n");
    snprintf(b, sizeof b, "%s/sb.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input folder:%s/sex --method direct -o %s --quiet", cli_tmp, b), 0);
    same_identity(a, b, 20);

    /* grey IDX, 12 classes named "0".."11": folders sort 0, 1, 10, 11, 2, ... */
    char img[1100], lab[1100];
    snprintf(img, sizeof img, "%s/i.idx", cli_tmp);
    snprintf(lab, sizeof lab, "%s/l.idx", cli_tmp);
    make_idx(img, lab, 36);
    snprintf(a, sizeof a, "%s/g.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input idx:%s,%s --method quantize --colors 4 -o %s --quiet", img, lab, a), 0);
    ck_assert_int_eq(cli_run(EXPORT " %s --png %s/gex --per-class", a, cli_tmp), 0);
    snprintf(b, sizeof b, "%s/gb.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input folder:%s/gex --method quantize --colors 4 -o %s --quiet", cli_tmp, b), 0);
    same_identity(a, b, 36); /* c = 1 again: grey palette PNGs read as grey */
    /* an export without apd-export.json still keeps the labels (names from labels.csv) */
    snprintf(b, sizeof b, "%s/gex/apd-export.json", cli_tmp);
    ck_assert_int_eq(remove(b), 0);
    snprintf(b, sizeof b, "%s/gb2.apd", cli_tmp);
    ck_assert_int_eq(cli_run(CONVERT " --input folder:%s/gex --method direct -o %s --quiet", cli_tmp, b), 0);
    cli_expect_err("no apd-export.json");
    apd_reader *r;
    apd_err err;
    ck_assert_int_eq(apd_reader_open(&r, b, NULL, &err), APD_OK);
    ck_assert_str_eq(apd_reader_class_name(r, 10), "10");
    uint32_t l;
    ck_assert_int_eq(apd_reader_label(r, 11, &l), APD_OK);
    ck_assert_uint_eq(l, 11);
    apd_reader_close(r);
}
END_TEST

START_TEST(options_that_do_not_apply)
{
    char c10[1100], out[1100];
    snprintf(c10, sizeof c10, "%s/c10", cli_tmp);
    make_cifar(c10, 20);
    snprintf(out, sizeof out, "%s/x.apd", cli_tmp);
    static const struct { const char *args; const char *msg; } usage[] = {
        {"--method quantize --colors 4 --ipc 3", "--ipc applies only to --method random|dm|autopalette, not quantize"},
        {"--method direct --iters 5", "--iters applies only to --method random|dm|autopalette, not direct"},
        {"--method direct --colors 4", "--colors does not apply to --method direct"},
        {"--method direct --quantizer octree", "--quantizer does not apply to --method direct"},
        {"--method autopalette --palette network --quantizer octree",
         "--quantizer does not apply to --method autopalette --palette network"},
        {"--method autopalette --lr-palette 0.1", "--lr-palette applies only to the palette network (--palette network)"},
        {"--method dm --palette stored", "--palette applies only to --method autopalette"},
        {"--method autopalette --palette bogus", "bad value 'bogus' for --palette"},
        {"--method autopalette --palette-input image-norm",
         "--palette-input applies only to the palette network (--palette network)"},
        {"--method dm --palette-input image-norm", "--palette-input applies only to --method autopalette"},
        {"--method autopalette --palette network --palette-input stretched", "bad value 'stretched' for --palette-input"},
        {"--method autopalette --select-epochs 1", "--select-epochs applies only to the graph-cut init"},
        {"--method random --iters 5", "--iters applies only to --method dm|autopalette"},
        {"--method random --pixel-range clamp", "--pixel-range applies only to --method dm|autopalette"},
        {"--method dm --pixel-range edge", "bad value 'edge' for --pixel-range"},
        {"--method random --checkpoint c.ckpt", "--checkpoint applies only to --method dm|autopalette"},
        {"--method dm --w-max 2", "--w-max applies only to --method autopalette"},
        {"--method dm --select-epochs 1", "--select-epochs applies only to the graph-cut init"},
        {"--method autopalette --palette network --init random --gc-lambda 2", "--gc-lambda applies only to the graph-cut init"},
        {"--method autopalette --palette network --warmup-steps 3", "--warmup-steps applies only when --palette-remedy includes warmup"},
        {"--method autopalette --palette network --palette-remedy warmup --task-scale 0.1", "--task-scale applies only when --palette-remedy includes task-scale"},
        {"--method autopalette --palette network --temp-start 3", "--temp-start applies only when --palette-remedy includes temperature"},
        {"--method random --net-pool 4", "--net-pool applies only to --method dm|autopalette"},
        {"--method random --ce-weight 1", "--ce-weight applies only to --method dm|autopalette"},
        {"--method dm --ce-teacher-steps 5", "--ce-teacher-steps applies only with the class-aware term"},
        {"--method autopalette --palette network --ce-teacher-steps 5", "--ce-teacher-steps applies only with the class-aware term"},
        {"--method autopalette --ce-weight 0 --ce-teacher-steps 5", "--ce-teacher-steps applies only with the class-aware term"},
        {"--method autopalette --ce-weight -1", "bad value '-1' for --ce-weight"},
        {"--method autopalette --herd-nets 2", "--herd-nets applies only to the herding init (--init herding)"},
        {"--method dm --init graphcut --herd-limit 20", "--herd-limit applies only to the herding init"},
        {"--method autopalette --init herding --select-limit 20", "--select-limit applies only to the graph-cut init"},
        {"--method autopalette --init herding --herd-limit -3", "bad value '-3' for --herd-limit"},
        {"--method dm --net-pool-steps 3", "--net-pool-steps applies only with --net-pool N, N >= 1"},
        {"--method autopalette --net-pool 0 --net-pool-batch 8", "--net-pool-batch applies only with --net-pool N"},
        {"--method dm --net-pool two", "bad value 'two' for --net-pool"},
        {"--method dm --net-pool 2 --net-pool-every 0", "--net-pool N needs N <= 1024, --net-pool-every and"},
        {"--method autopalette --net-pool 5000", "--net-pool N needs N <= 1024"},
        {"--method direct --size 16", "--size applies only to folder: sources"},
        {"--method direct --split val", "--split val: 'cifar10' has train and test splits only"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        ck_assert_msg(cli_run(CONVERT " --input cifar10:%s %s -o %s", c10, usage[i].args, out) == 2, "%s: not a usage error",
                      usage[i].args);
        cli_expect_err(usage[i].msg);
    }
    /* apd-export: each option belongs to one mode */
    ck_assert_int_eq(cli_run(EXPORT " %s --sheet %s/s.png --limit 3", out, cli_tmp), 2);
    cli_expect_err("--limit applies to --png only");
    ck_assert_int_eq(cli_run(EXPORT " %s --png %s/p --per-class 3", out, cli_tmp), 2);
    cli_expect_err("a count applies to --sheet only");
    /* options that do apply pass validation (the run then fails on the missing input: 1) */
    static const char *const fine[] = {
        "--method autopalette --palette network --palette-remedy warmup --warmup-steps 3 --select-epochs 1",
        "--method autopalette --palette stored --quantizer octree --init graphcut --select-epochs 1",
        "--method random --init herding --herd-nets 2 --herd-limit 10 --depth 3",
        "--method dm --ce-weight 2 --ce-teacher-steps 5 --iters 2",
        "--method autopalette --ce-teacher-steps 5 --iters 2", /* the term is on by default for stored palettes */
        "--method autopalette --lr-img-rule fixed --pixel-range clamp",
        "--method dm --init graphcut --select-epochs 1 --iters 2",
        "--method random --quantizer octree --colors 8 --budget images --init random",
        "--method dm --quantizer median-cut --colors 8 --budget bytes --iters 2",
        "--method autopalette --palette network --palette-remedy temperature --temp-start 3 --temp-end 1",
        "--method dm --net-pool 4 --net-pool-every 2 --net-pool-steps 1 --net-pool-batch 8 --iters 2",
        "--method autopalette --palette network --palette-input image-norm",
        "--method autopalette --palette network --palette-input absolute",
    };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
        ck_assert_msg(cli_run(CONVERT " --input cifar10:%s/none %s -o %s", cli_tmp, fine[i], out) == 1, "%s", fine[i]);
    ck_assert(access(out, F_OK) != 0);
    /* a single file is its split: --split test on train.bin is an error */
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:%s/train.bin --split test --method direct -o %s", c10, out), 1);
    cli_expect_err("train.bin: one file, the train split by its name; split test does not apply");
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:%s/train.bin --split train --method direct -o %s --quiet", c10, out), 0);
    /* --limit on a class-sorted folder: balanced, and said */
    ck_assert_int_eq(cli_run(EXPORT " %s --png %s/ex --per-class", out, cli_tmp), 0);
    ck_assert_int_eq(cli_run(CONVERT " --input folder:%s/ex --limit 5 --method direct -o %s/l.apd", cli_tmp, cli_tmp), 0);
    const char *o = cli_slurp("out.txt");
    ck_assert_msg(strstr(o, "--limit 5: took 5 images (class-balanced), per class: zebra 1, apple 1, mango 1, kiwi 1, "
                            "banana 1, cherry 0") != NULL, "%s", o);
    ck_assert_int_eq(cli_run(CONVERT " --input cifar10:%s --limit 3 --method direct -o %s/l2.apd", c10, cli_tmp), 0);
    o = cli_slurp("out.txt");
    ck_assert_msg(strstr(o, "took 3 images (the first in source order), per class: zebra 1, apple 1, mango 1, kiwi 0") != NULL,
                  "%s", o);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {roundtrip_class_identity, options_that_do_not_apply};
    return cli_main("convert_interop", "cli_tmp-interop", 300, tests, sizeof tests / sizeof *tests);
}
