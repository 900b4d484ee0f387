/* test_resolution.c: distillation and evaluation at 64x64 and 128x128, end to end through the
 * tools, on small fixtures only (no shared data):
 * - the JPEG folder fixture (tests/data/cifar10-folder, 32 px) resized by the importer
 *   (--size 64 / 128): apd-convert --method dm and autopalette (graph-cut init) produce
 *   64x64 / 128x128 records, record ConvNetD4 / ConvNetD5 (depth 4 / 5, by resolution) in the
 *   provenance, lower the DM loss of the stored images below that of the initial real images,
 *   and give identical records and metadata for the same seed; --depth overrides the rule, and
 *   a depth the size does not halve into is a clear error;
 * - an easy generated folder (4 classes told apart by colour, PNGs at 64 and 128 px): a dm
 *   distillation evaluated by apd-eval on its test split (apd-eval picks ConvNetD4 / ConvNetD5
 *   by itself) is well above chance (25%).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/io.h"
#include "distill_test_util.h"

static char g_dir[512];

static int run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* apd-convert on the JPEG folder fixture at --size size; output in g_dir/name. */
static int convert(const char *name, uint32_t size, const char *extra)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s/apd-convert --input folder:%s/tests/data/cifar10-folder --size %u --threads 2 --seed 7 "
             "--ipc 1 --iters 3 --batch-real 3 --quiet -o %s/%s --force %s > %s/%s.out 2>&1",
             APD_BINARY_DIR, APD_SOURCE_DIR, size, g_dir, name, extra, g_dir, name);
    return run(cmd);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strdup(buf);
}

/* The number after "key": in json (first occurrence at or after `from`). */
static double json_num(const char *json, const char *from, const char *key)
{
    const char *p = from ? strstr(json, from) : json;
    ck_assert_msg(p != NULL, "no %s in %s", from, json);
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(p, pat);
    ck_assert_msg(p != NULL, "no %s in metadata", key);
    p += strlen(pat);
    while (*p == ' ') p++;
    return strtod(p, NULL);
}

/* Open name, check geometry, kind and record count; return the metadata (caller frees). */
static char *check_file(const char *name, uint32_t size, uint32_t kind, uint64_t n, apd_reader **out)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    apd_reader *r;
    apd_err err;
    ck_assert_msg(apd_reader_open(&r, path, NULL, &err) == APD_OK, "%s: %s", path, err.msg);
    apd_file_info fi;
    ck_assert_int_eq(apd_reader_info(r, &fi), APD_OK);
    ck_assert_uint_eq(fi.c, 3);
    ck_assert_uint_eq(fi.h, size);
    ck_assert_uint_eq(fi.w, size);
    ck_assert_uint_eq(fi.kind, kind);
    ck_assert_uint_eq(fi.n_records, n);
    ck_assert_uint_eq(fi.n_classes, 10);
    char *meta = strdup(apd_reader_meta_json(r));
    *out = r;
    return meta;
}

/* Records (decoded pixels and labels) and metadata (less "created" and "command_line",
 * which name the run) of a and b are identical. */
static void same_content(apd_reader *a, apd_reader *b, const char *ma, const char *mb, uint32_t size)
{
    uint64_t n = apd_reader_count(a);
    ck_assert_uint_eq(n, apd_reader_count(b));
    size_t img = 3u * size * size;
    uint8_t *pa = malloc(img), *pb = malloc(img);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t la, lb;
        ck_assert_int_eq(apd_reader_decode(a, i, APD_LAYOUT_CHW, pa, img, &la), APD_OK);
        ck_assert_int_eq(apd_reader_decode(b, i, APD_LAYOUT_CHW, pb, img, &lb), APD_OK);
        ck_assert_uint_eq(la, lb);
        ck_assert_msg(memcmp(pa, pb, img) == 0, "record %llu differs between two runs with one seed",
                      (unsigned long long)i);
    }
    free(pa);
    free(pb);
    const char *ha = strstr(ma, "\"hyperparameters\""), *hb = strstr(mb, "\"hyperparameters\"");
    ck_assert_ptr_nonnull(ha);
    ck_assert_ptr_nonnull(hb);
    const char *sa = strstr(ma, "\"distill_stats\""), *sb = strstr(mb, "\"distill_stats\"");
    ck_assert_ptr_nonnull(sa);
    ck_assert_ptr_nonnull(sb);
    /* the hyperparameters object and the stats object (both deterministic) */
    ck_assert_int_eq(strncmp(ha, hb, 600), 0);
    ck_assert_int_eq(strncmp(sa, sb, 300), 0);
}

static void dm_at(uint32_t size, uint32_t depth)
{
    char a[64], b[64], want[64];
    snprintf(a, sizeof a, "dm%u_a.apd", size);
    snprintf(b, sizeof b, "dm%u_b.apd", size);
    ck_assert_int_eq(convert(a, size, "--method dm"), 0);
    ck_assert_int_eq(convert(b, size, "--method dm"), 0);
    apd_reader *ra, *rb;
    char *ma = check_file(a, size, APD_KIND_DIRECT, 10, &ra), *mb = check_file(b, size, APD_KIND_DIRECT, 10, &rb);
    snprintf(want, sizeof want, "\"network\":\"ConvNetD%u ", depth);
    ck_assert_msg(strstr(ma, want) != NULL, "%s: no %s in %s", a, want, ma);
    ck_assert_uint_eq((uint32_t)json_num(ma, "\"hyperparameters\"", "depth"), depth);
    ck_assert_uint_eq((uint32_t)json_num(ma, "\"hyperparameters\"", "embed_dim"), 2048);
    double l0 = json_num(ma, "\"distill_stats\"", "eval_loss_initial");
    double l1 = json_num(ma, "\"distill_stats\"", "eval_loss_stored");
    printf("dm %ux%u ConvNetD%u: DM loss (fixed nets) initial %.4f -> stored %.4f after 3 iterations\n", size, size,
           depth, l0, l1);
    ck_assert_double_gt(l0, 0);
    ck_assert_double_lt(l1, l0);
    same_content(ra, rb, ma, mb, size);
    free(ma);
    free(mb);
    apd_reader_close(ra);
    apd_reader_close(rb);
}

START_TEST(dm_64_and_128)
{
    dm_at(64, 4);
    dm_at(128, 5);
}
END_TEST

START_TEST(autopalette_64_and_128)
{
    static const uint32_t sizes[] = {64, 128}, depths[] = {4, 5};
    for (int i = 0; i < 2; i++) {
        char a[64], b[64], want[64];
        snprintf(a, sizeof a, "ap%u_a.apd", sizes[i]);
        snprintf(b, sizeof b, "ap%u_b.apd", sizes[i]);
        const char *opts = "--method autopalette --palette network --colors 4 --images-per-class 1 --select-epochs 1 "
                           "--color-subset 4";
        ck_assert_int_eq(convert(a, sizes[i], opts), 0);
        ck_assert_int_eq(convert(b, sizes[i], opts), 0);
        apd_reader *ra, *rb;
        char *ma = check_file(a, sizes[i], APD_KIND_PALETTE, 10, &ra);
        char *mb = check_file(b, sizes[i], APD_KIND_PALETTE, 10, &rb);
        snprintf(want, sizeof want, "\"network\":\"ConvNetD%u\"", depths[i]);
        ck_assert_msg(strstr(ma, want) != NULL, "%s: the selection net is not %s: %s", a, want, ma);
        ck_assert_uint_eq((uint32_t)json_num(ma, "\"selection\"", "depth"), depths[i]);
        ck_assert_uint_eq((uint32_t)json_num(ma, "\"hyperparameters\"", "depth"), depths[i]);
        printf("autopalette %ux%u: ConvNetD%u, %llu palette records, stored colours median %.1f\n", sizes[i],
               sizes[i], depths[i], (unsigned long long)apd_reader_count(ra),
               json_num(ma, "\"stored_colors_per_image\"", "median"));
        same_content(ra, rb, ma, mb, sizes[i]);
        free(ma);
        free(mb);
        apd_reader_close(ra);
        apd_reader_close(rb);
    }
}
END_TEST

START_TEST(depth_option)
{
    /* --depth overrides the rule and is recorded */
    ck_assert_int_eq(convert("d3_64.apd", 64, "--method dm --iters 1 --depth 3"), 0);
    apd_reader *r;
    char *m = check_file("d3_64.apd", 64, APD_KIND_DIRECT, 10, &r);
    ck_assert_uint_eq((uint32_t)json_num(m, "\"hyperparameters\"", "depth"), 3);
    ck_assert_ptr_nonnull(strstr(m, "\"depth_rule\":\"--depth\""));
    free(m);
    apd_reader_close(r);
    /* 64 px do not halve 7 times: exit 1 with a message naming the depth */
    ck_assert_int_eq(convert("d7_64.apd", 64, "--method dm --iters 1 --depth 7"), 1);
    char path[700];
    snprintf(path, sizeof path, "%s/d7_64.apd.out", g_dir);
    char *out = slurp(path);
    ck_assert_msg(strstr(out, "ConvNetD7") != NULL && strstr(out, "64x64") != NULL, "message: %s", out);
    free(out);
    /* --depth where no network runs is a usage error */
    ck_assert_int_eq(convert("d_rand.apd", 64, "--method random --depth 4"), 2);
}
END_TEST

/* 4 classes told apart by colour, with noise and a random darker square so no two images are
 * alike: DIR/{train,test}/<class>/NNNN.png at S x S. */
static void make_easy_folder(const char *dir, uint32_t per_split, uint32_t S)
{
    static const char *names[4] = {"blue", "green", "red", "yellow"};
    static const uint8_t rgb[4][3] = {{40, 60, 200}, {40, 180, 60}, {200, 50, 40}, {210, 200, 40}};
    uint8_t *img = malloc(3u * S * S);
    uint64_t st = 12345;
    for (int split = 0; split < 2; split++)
        for (int k = 0; k < 4; k++) {
            char path[900];
            snprintf(path, sizeof path, "mkdir -p %s/%s/%s", dir, split ? "test" : "train", names[k]);
            ck_assert_int_eq(run(path), 0);
            for (uint32_t i = 0; i < per_split; i++) {
                uint32_t x0 = 0, y0 = 0;
                for (uint32_t p = 0; p < S * S; p++)
                    for (int ch = 0; ch < 3; ch++) {
                        st = st * 6364136223846793005ull + 1442695040888963407ull;
                        int v = rgb[k][ch] + (int)((st >> 33) % 61) - 30;
                        img[ch * S * S + p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                    }
                x0 = (uint32_t)((st >> 20) % (S / 2));
                y0 = (uint32_t)((st >> 40) % (S / 2));
                for (uint32_t y = y0; y < y0 + S / 3; y++)
                    for (uint32_t x = x0; x < x0 + S / 3; x++)
                        for (int ch = 0; ch < 3; ch++) img[ch * S * S + y * S + x] /= 2;
                snprintf(path, sizeof path, "%s/%s/%s/%04u.png", dir, split ? "test" : "train", names[k], i);
                apd_err err;
                ck_assert_msg(apd_png_write_image(path, img, 3, S, S, &err) == APD_OK, "%s", err.msg);
            }
        }
    free(img);
}

START_TEST(eval_easy_64_and_128)
{
    static const uint32_t sizes[] = {64, 128}, depths[] = {4, 5}, epochs[] = {40, 20};
    for (int i = 0; i < 2; i++) {
        char cmd[4096], out[700], easy[600];
        snprintf(easy, sizeof easy, "%s/easy%u-folder", g_dir, sizes[i]);
        make_easy_folder(easy, 6, sizes[i]);
        snprintf(out, sizeof out, "%s/easy%u", g_dir, sizes[i]);
        snprintf(cmd, sizeof cmd,
                 "%s/apd-convert --input folder:%s --size %u --threads 2 --seed 1 --method dm --ipc 3 "
                 "--iters 2 --batch-real 6 --quiet -o %s.apd --force > %s.cv 2>&1",
                 APD_BINARY_DIR, easy, sizes[i], out, out);
        ck_assert_int_eq(run(cmd), 0);
        snprintf(cmd, sizeof cmd,
                 "%s/apd-eval %s.apd --test folder:%s --epochs %u --runs 1 --threads 2 --seed 3 --json "
                 "> %s.json 2> %s.err",
                 APD_BINARY_DIR, out, easy, epochs[i], out, out);
        int rc = run(cmd);
        char jp[720];
        snprintf(jp, sizeof jp, "%s.json", out);
        char *js = slurp(jp);
        if (rc != 0) {
            snprintf(jp, sizeof jp, "%s.err", out);
            char *e = slurp(jp);
            ck_abort_msg("apd-eval failed (%d): %s", rc, e);
        }
        ck_assert_uint_eq((uint32_t)json_num(js, NULL, "depth"), depths[i]);
        double acc = json_num(js, NULL, "accuracy_mean");
        printf("apd-eval %ux%u ConvNetD%u on a dm distillation (3 images per class, 4 classes): test accuracy "
               "%.1f%% (chance 25%%)\n", sizes[i], sizes[i], depths[i], 100 * acc);
        ck_assert_double_ge(acc, 0.5);
        free(js);
    }
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {dm_64_and_128, autopalette_64_and_128, depth_option, eval_easy_64_and_128};
    return dt_run_cli(g_dir, sizeof g_dir, "res", "resolution", 900, tests, sizeof tests / sizeof *tests);
}
