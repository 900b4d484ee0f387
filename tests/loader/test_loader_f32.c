/* test_loader_f32.c: the float32 fast path (apd_reader_decode_f32, used by the loader for
 * APD_OUT_F32_CHW) is bit-identical to the two-pass path it replaces: apd_reader_decode to
 * uint8 CHW, then the normalisation ((float)v * (1/255) - mean) * (1/std) (apd__norm_f32 /
 * apd__u8_norm_f32 of common/kernels.h).
 *  - kernels: apd__pal_decode_f32 scalar and AVX-512 (when the CPU has it) against the
 *    reference, every K 1..APD_MAX_COLORS, grey and RGB, sizes 1x1, 3x5, 32x32, 27x29; bad index and
 *    padding bits are rejected.
 *  - real files: CIFAR-10 images (the fixture tests/data/cifar10/train.bin) median-cut to K = 64 RGB, their
 *    grey versions at K = 16, and direct-colour RGB records, uncompressed and zstd (with
 *    dictionary); every record compared with file and custom mean/std.
 *  - loader: batches with APD_OUT_F32_CHW equal U8_CHW batches converted, 1 and 2 threads.
 *  - a corrupted record byte still fails the checksum through the float path.
 *  - the record CRC (apd_crc32c, 3-way interleaved hardware path) equals the table CRC at
 *    every length 0..3100 and alignment 0..7, and chains across calls.
 * Prints the number of floats compared and the max abs difference (must be 0).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/loader.h"
#include "apd/quant.h"
#include "common/rng.h"
#include "common/kernels.h"
#include "format/format_internal.h" /* apd__crc32c_table */
#include "test_data.h"

#define NIMG 300

static char g_dir[64];
static uint64_t g_compared;

/* The formula, one value at a time (the scalar reference of every float path). */
static void norm_ref(const uint8_t *in, size_t n, float mean, float std, float *out)
{
    for (size_t p = 0; p < n; p++) out[p] = apd__norm_f32(in[p], mean, std);
}

/* The two-pass path's floats for a uint8 CHW image: the formula per value. The dispatched
 * kernel must agree with it too (checked), so either is "the way the loader does it". */
static void ref_f32(const uint8_t *chw, uint32_t c, size_t npix, const float *mean,
                    const float *std, float *out, float *tmp)
{
    for (uint32_t ch = 0; ch < c; ch++) {
        norm_ref(chw + ch * npix, npix, mean[ch], std[ch], out + ch * npix);
        apd__u8_norm_f32(APD__IMPL_AUTO, chw + ch * npix, npix, mean[ch], std[ch],
                         tmp + ch * npix);
    }
    ck_assert_mem_eq(out, tmp, (size_t)c * npix * sizeof(float));
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN counts as a difference */
    }
    return m;
}

START_TEST(kernels_every_k)
{
    static const uint32_t sizes[][2] = {{1, 1}, {3, 5}, {32, 32}, {27, 29}};
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2470f, 0.2435f, 0.2616f};
    apd__rng r;
    apd__rng_seed(&r, 4242, 0);
    uint8_t pal[APD_MAX_COLORS * 3], idx[27 * 32 * 3], packed[32 * 32 * 3], u8[3 * 32 * 32];
    float ref[3 * 32 * 32], tmp[3 * 32 * 32], got[3 * 32 * 32];
    const apd__impl impls[] = {APD__IMPL_SCALAR, APD__IMPL_AVX512};
    float worst = 0;
    for (uint32_t k = 1; k <= APD_MAX_COLORS; k++)
        for (uint32_t c = 1; c <= 3; c += 2)
            for (int s = 0; s < 4; s++) {
                size_t npix = (size_t)sizes[s][0] * sizes[s][1];
                uint32_t bits = apd_bits_for_k(k);
                for (size_t i = 0; i < (size_t)k * c; i++) pal[i] = (uint8_t)apd__rng_below(&r, 256);
                for (size_t p = 0; p < npix; p++) idx[p] = (uint8_t)apd__rng_below(&r, k);
                memset(packed, 0, sizeof packed);
                apd__pack(idx, npix, bits, packed);
                ck_assert_int_eq(apd__pal_decode(APD__IMPL_SCALAR, packed, npix, bits, pal, k, c,
                                                 APD_LAYOUT_CHW, u8), 0);
                ref_f32(u8, c, npix, mean, std, ref, tmp);
                for (int m = 0; m < 2; m++) {
                    if (!apd__impl_available(impls[m])) continue;
                    memset(got, 0xFF, sizeof got);
                    ck_assert_int_eq(apd__pal_decode_f32(impls[m], packed, npix, bits, pal, k, c,
                                                         mean, std, got), 0);
                    float d = max_abs_diff(got, ref, c * npix);
                    if (d > worst) worst = d;
                    ck_assert_msg(memcmp(got, ref, c * npix * sizeof(float)) == 0,
                                  "impl %d k %u c %u size %d: max diff %g", (int)impls[m], k, c, s, d);
                    g_compared += c * npix;
                    /* an index >= k (when one fits in bits) and a set padding bit are rejected */
                    if (k < (1u << bits) && npix > 1) {
                        uint8_t bad[sizeof packed];
                        memcpy(bad, packed, sizeof bad);
                        uint8_t save = idx[npix - 1];
                        idx[npix - 1] = (uint8_t)k;
                        apd__pack(idx, npix, bits, bad);
                        idx[npix - 1] = save;
                        ck_assert_int_eq(apd__pal_decode_f32(impls[m], bad, npix, bits, pal, k, c,
                                                             mean, std, got), -1);
                    }
                    size_t used = (npix * bits) & 7;
                    if (used) {
                        uint8_t bad[sizeof packed];
                        memcpy(bad, packed, sizeof bad);
                        bad[(npix * bits) >> 3] |= (uint8_t)(0x80u);
                        ck_assert_int_eq(apd__pal_decode_f32(impls[m], bad, npix, bits, pal, k, c,
                                                             mean, std, got), -1);
                    }
                }
            }
    /* direct planes */
    for (size_t n = 1; n < 100; n += 7) {
        for (size_t i = 0; i < n; i++) u8[i] = (uint8_t)apd__rng_below(&r, 256);
        norm_ref(u8, n, mean[1], std[1], ref);
        for (int m = 0; m < 2; m++) {
            if (!apd__impl_available(impls[m])) continue;
            apd__u8_norm_f32(impls[m], u8, n, mean[1], std[1], got);
            ck_assert_mem_eq(got, ref, n * sizeof(float));
        }
    }
    printf("kernels_every_k: AVX-512 %s, max abs diff %g (must be 0)\n",
           apd__impl_available(APD__IMPL_AVX512) ? "tested" : "not available", (double)worst);
}
END_TEST

/* Write NIMG CIFAR images as kind/k/c into path. c = 1: luma (BT.601, integer). */
static void write_file(const char *path, uint32_t kind, uint32_t c, uint32_t k,
                       apd_compress comp)
{
    const char *bin = APD_TEST_CIFAR "/train.bin";
    FILE *f = fopen(bin, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", bin);
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = kind;
    o.c = c;
    o.h = 32;
    o.w = 32;
    o.k = k;
    o.n_classes = 10;
    o.force = 1;
    o.no_sync = 1;
    o.compress = comp;
    /* zstd files test the zstd path; the others are index-coded (format 1.1) when that pays */
    o.index_coding = comp == APD_COMPRESS_ON ? APD_ICODE_OFF : APD_ICODE_AUTO;
    o.records_per_chunk = 64;
    for (int ch = 0; ch < 3; ch++) {
        o.mean[ch] = 0.45f + 0.01f * (float)ch;
        o.std[ch] = 0.25f - 0.003f * (float)ch;
    }
    apd_writer *w;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, path, &o, &err) == APD_OK, "%s", err.msg);
    uint8_t rec[3073], img[3072], pal[APD_MAX_COLORS * 3], idx[1024];
    for (uint32_t n = 0; n < NIMG; n++) {
        ck_assert_uint_eq(fread(rec, 1, sizeof rec, f), sizeof rec);
        const uint8_t *px = rec + 1;
        if (c == 1) {
            for (int p = 0; p < 1024; p++)
                img[p] = (uint8_t)((299u * px[p] + 587u * px[1024 + p] + 114u * px[2048 + p] + 500u) / 1000u);
            px = img;
        }
        apd_status st;
        if (kind == APD_KIND_DIRECT) {
            st = apd_writer_put_direct(w, px, rec[0], n);
        } else {
            uint32_t ku = 0;
            ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, px, c, 32, 32, k, n, pal, idx, &ku), APD_OK);
            st = apd_writer_put_palette(w, pal, ku, idx, rec[0], n);
        }
        ck_assert_msg(st == APD_OK, "%s", apd_writer_errmsg(w));
    }
    fclose(f);
    ck_assert_int_eq(apd_writer_close(w), APD_OK);
}

/* Every record: decode_f32 == decode u8 CHW + loader normalisation (file and custom norm). */
static void check_file(const char *path, int expect_compressed)
{
    apd_reader *rd;
    apd_err err;
    ck_assert_msg(apd_reader_open(&rd, path, NULL, &err) == APD_OK, "%s", err.msg);
    apd_file_info fi;
    ck_assert_int_eq(apd_reader_info(rd, &fi), APD_OK);
    ck_assert_uint_eq(fi.n_records, NIMG);
    apd_file_stats fs;
    ck_assert_int_eq(apd_reader_stats(rd, &fs), APD_OK);
    if (expect_compressed) ck_assert_uint_gt(fs.compressed_records, 0);
    size_t npix = (size_t)fi.h * fi.w, n = npix * fi.c;
    uint8_t *u8 = malloc(n);
    float *ref = malloc(n * sizeof(float)), *tmp = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    const float cmean[3] = {0.5f, 0.25f, 0.125f}, cstd[3] = {0.3f, 0.7f, 1.9f};
    float worst = 0;
    for (uint32_t i = 0; i < NIMG; i++) {
        uint32_t lab_u8 = 99, lab_f = 98;
        ck_assert_int_eq(apd_reader_decode(rd, i, APD_LAYOUT_CHW, u8, n, &lab_u8), APD_OK);
        for (int norm = 0; norm < 2; norm++) {
            const float *mean = norm ? cmean : fi.mean, *std = norm ? cstd : fi.std;
            ref_f32(u8, fi.c, npix, mean, std, ref, tmp);
            memset(got, 0xFF, n * sizeof(float));
            ck_assert_msg(apd_reader_decode_f32(rd, i, APD_LAYOUT_CHW, mean, std, got, n, &lab_f) == APD_OK,
                          "%s", apd_reader_errmsg(rd));
            float d = max_abs_diff(got, ref, n);
            if (d > worst) worst = d;
            ck_assert_msg(memcmp(got, ref, n * sizeof(float)) == 0, "%s record %u: max diff %g", path, i, d);
            ck_assert_uint_eq(lab_f, lab_u8);
            g_compared += n;
        }
    }
    ck_assert_int_eq(apd_reader_decode_f32(rd, 0, APD_LAYOUT_HWC, fi.mean, fi.std, got, n, NULL), APD_EINVAL);
    ck_assert_int_eq(apd_reader_decode_f32(rd, 0, APD_LAYOUT_CHW, fi.mean, fi.std, got, n - 1, NULL), APD_EBUFSIZE);
    ck_assert_int_eq(apd_reader_decode_f32(rd, NIMG, APD_LAYOUT_CHW, fi.mean, fi.std, got, n, NULL), APD_ERANGE);
    printf("%s: kind %u c %u k %u, %u records, compressed %llu, max abs diff %g (must be 0)\n", path,
           fi.kind, fi.c, fi.k, NIMG, (unsigned long long)fs.compressed_records, (double)worst);
    apd_reader_close(rd);

    /* The loader: F32_CHW batches == U8_CHW batches (same order) normalised the old way. */
    for (uint32_t th = 1; th <= 2; th++) {
        apd_loader_opts o;
        apd_loader_opts_default(&o);
        o.batch_size = 64;
        o.seed = 7;
        o.threads = th;
        apd_loader *lf, *lu;
        o.output = APD_OUT_F32_CHW;
        ck_assert_msg(apd_loader_open(&lf, path, &o, &err) == APD_OK, "%s", err.msg);
        o.output = APD_OUT_U8_CHW;
        ck_assert_msg(apd_loader_open(&lu, path, &o, &err) == APD_OK, "%s", err.msg);
        float mean[3], std[3];
        apd_loader_norm(lf, mean, std);
        float *bf = malloc(apd_loader_batch_bytes(lf));
        uint8_t *bu = malloc(apd_loader_batch_bytes(lu));
        int64_t labf[64], labu[64];
        for (;;) {
            size_t cf = 0, cu = 0;
            ck_assert_int_eq(apd_loader_next(lf, bf, apd_loader_batch_bytes(lf), labf, NULL, &cf), APD_OK);
            ck_assert_int_eq(apd_loader_next(lu, bu, apd_loader_batch_bytes(lu), labu, NULL, &cu), APD_OK);
            ck_assert_uint_eq(cf, cu);
            if (!cf) break;
            for (size_t b = 0; b < cf; b++) {
                ref_f32(bu + b * n, fi.c, npix, mean, std, ref, tmp);
                ck_assert_msg(memcmp(bf + b * n, ref, n * sizeof(float)) == 0, "%s: loader batch image %zu differs", path, b);
                ck_assert_int_eq(labf[b], labu[b]);
                g_compared += n;
            }
        }
        free(bf);
        free(bu);
        apd_loader_close(lf);
        apd_loader_close(lu);
    }
    free(u8); free(ref); free(tmp); free(got);
}

START_TEST(real_files)
{
    static const struct { const char *name; uint32_t kind, c, k; apd_compress comp; } F[] = {
        {"rgb64.apd", APD_KIND_PALETTE, 3, 64, APD_COMPRESS_OFF},
        {"grey16.apd", APD_KIND_PALETTE, 1, 16, APD_COMPRESS_OFF},
        {"rgb64z.apd", APD_KIND_PALETTE, 3, 64, APD_COMPRESS_ON},
        {"rgb200.apd", APD_KIND_PALETTE, 3, 200, APD_COMPRESS_OFF},
        {"direct.apd", APD_KIND_DIRECT, 3, 0, APD_COMPRESS_OFF},
        {"directz.apd", APD_KIND_DIRECT, 3, 0, APD_COMPRESS_ON},
    };
    for (size_t i = 0; i < sizeof F / sizeof *F; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", g_dir, F[i].name);
        write_file(path, F[i].kind, F[i].c, F[i].k, F[i].comp);
        check_file(path, F[i].comp == APD_COMPRESS_ON);
    }
    printf("real_files: %llu floats compared in total\n", (unsigned long long)g_compared);
}
END_TEST

START_TEST(crc_matches_table)
{
    enum { N = 3200 };
    static uint8_t buf[N + 8];
    apd__rng r;
    apd__rng_seed(&r, 99, 1);
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)apd__rng_u64(&r);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len <= 3100; len++)
            ck_assert_uint_eq(apd_crc32c(0, buf + off, len), apd__crc32c_table(0, buf + off, len));
    for (size_t cut = 0; cut < N; cut += 97) /* continuation: crc(a||b) == crc(crc(a), b) */
        ck_assert_uint_eq(apd_crc32c(apd_crc32c(0, buf, cut), buf + cut, N - cut),
                          apd__crc32c_table(0, buf, N));
    ck_assert_uint_eq(apd_crc32c(0, "123456789", 9), 0xE3069283u);
}
END_TEST

START_TEST(corrupt_record_fails_checksum)
{
    char path[300];
    snprintf(path, sizeof path, "%s/corrupt.apd", g_dir);
    write_file(path, APD_KIND_PALETTE, 3, 64, APD_COMPRESS_OFF);
    /* flip one byte of the last record of the file (its index bytes) */
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    apd_reader *rd;
    apd_err err;
    ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
    apd_file_info fi;
    apd_reader_info(rd, &fi);
    uint8_t u8[3072];
    ck_assert_int_eq(apd_reader_decode(rd, NIMG - 1, APD_LAYOUT_CHW, u8, sizeof u8, NULL), APD_OK);
    apd_reader_close(rd);
    /* find the record body in the file by its last packed bytes is fragile; instead scan for
     * the record's 12-byte header + label and flip a byte after it */
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    uint8_t *all = malloc((size_t)len);
    fseek(f, 0, SEEK_SET);
    ck_assert_uint_eq(fread(all, 1, (size_t)len, f), (size_t)len);
    /* the last record carries source id NIMG-1: header (12) + sid (8) precede the body */
    uint8_t sid[8];
    for (int b = 0; b < 8; b++) sid[b] = (uint8_t)((uint64_t)(NIMG - 1) >> (8 * b));
    long at = -1;
    for (long p = 12; p + 8 + 200 < len; p++)
        if (memcmp(all + p, sid, 8) == 0 && (all[p - 8] & APD__RFLAG_SID)) {
            at = p + 8 + 100;
            break;
        }
    ck_assert_msg(at > 0, "record not found in the file");
    fseek(f, at, SEEK_SET);
    uint8_t flipped = all[at] ^ 0x01;
    ck_assert_int_eq(fwrite(&flipped, 1, 1, f), 1);
    fclose(f);
    free(all);
    ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
    float out[3072];
    ck_assert_int_eq(apd_reader_decode(rd, NIMG - 1, APD_LAYOUT_CHW, u8, sizeof u8, NULL), APD_ECHECKSUM);
    ck_assert_int_eq(apd_reader_decode_f32(rd, NIMG - 1, APD_LAYOUT_CHW, fi.mean, fi.std, out, 3072, NULL),
                     APD_ECHECKSUM);
    ck_assert_ptr_nonnull(strstr(apd_reader_errmsg(rd), "checksum"));
    ck_assert_int_eq(apd_reader_decode_f32(rd, 0, APD_LAYOUT_CHW, fi.mean, fi.std, out, 3072, NULL), APD_OK);
    apd_reader_close(rd);
}
END_TEST

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/apd-f32-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 2;
    }
    Suite *s = suite_create("loader_f32");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, kernels_every_k);
    tcase_add_test(tc, real_files);
    tcase_add_test(tc, crc_matches_table);
    tcase_add_test(tc, corrupt_record_fails_checksum);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return nf ? 1 : 0;
}
