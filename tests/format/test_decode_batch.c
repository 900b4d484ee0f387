/* test_decode_batch.c: apd_reader_decode_batch / apd_reader_decode_f32_batch (index-coded
 * records decoded two at a time, in lockstep) against the one-record calls, and the loader
 * (which decodes its batches through them) against the reader.
 *
 * For every K in 1..256: a format 1.1 file of 11 records of 29x23 RGB (the row groups of 8
 * end in a partial one) mixing index-coded records (smooth maps, k = K and random k <= K) and records
 * the writer keeps plain (noise, whose coded body would not be smaller); read in batches of
 * 1, 2, 3, 5 and 11 over an order that repeats records and puts an out-of-range id in the
 * middle of a pair. Every record must give the bytes (uint8 HWC and CHW), floats, label and
 * status of apd_reader_decode / apd_reader_decode_f32; the failed id must fail alone.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>

#include "apd/loader.h"
#include "fmt_test_util.h"
#include "test_check.h"

#define H 29u
#define W 23u
#define C 3u
#define NPIX (H * W)
#define IMG (C * NPIX)
#define NREC 11u

/* Records of k = K (the even ones) and of random k <= K in a file of palette size max(K, 8)
 * (at k < 8 a plain body is too small for a coded one to be smaller). */
static void write_file(const char *path, uint32_t K, apd__rng *r)
{
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, C, H, W, K < 8 ? 8 : K);
    o.index_coding = APD_ICODE_ON;
    o.n_classes = 0;
    apd_writer *wr;
    apd_err err;
    ck_assert_msg(apd_writer_create(&wr, path, &o, &err) == APD_OK, "%s", err.msg);
    uint8_t pal[768], idx[NPIX];
    for (uint32_t i = 0; i < NREC; i++) {
        uint32_t k = i % 2 == 0 ? K : 1 + (uint32_t)apd__rng_below(r, K);
        fmt_random_palette_image(r, k, C, NPIX, pal, idx);
        if (i % 4 != 3) /* smooth: diagonal ramps plus sparse noise, codes well */
            for (uint32_t p = 0; p < NPIX; p++)
                idx[p] = (uint8_t)((p / W + p % W + (apd__rng_below(r, 8) == 0)) % k);
        ck_assert_msg(apd_writer_put_palette(wr, pal, k, idx, i, APD_NO_SOURCE_ID) == APD_OK, "%s",
                      apd_writer_errmsg(wr));
    }
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
}

/* The loader over the file (odd batches of 3, threads and prefetch varied with K) gives
 * every record once, with the floats apd_reader_decode_f32 gave (ref, record-major). */
static void check_loader(const char *path, uint32_t K, const float *mean, const float *sd, const float *ref,
                         float *buf, size_t buf_floats)
{
    apd_loader_opts lo;
    apd_loader_opts_default(&lo);
    lo.batch_size = 3; /* odd batches, and a tail of 2 */
    lo.output = APD_OUT_F32_CHW;
    lo.seed = K;
    lo.threads = 1 + K % 2;
    lo.prefetch = K % 2 ? 2 : 0;
    lo.custom_norm = 1;
    for (int ch = 0; ch < 3; ch++) {
        lo.mean[ch] = mean[ch];
        lo.std[ch] = sd[ch];
    }
    apd_loader *ld;
    apd_err err;
    ck_assert_msg(apd_loader_open(&ld, path, &lo, &err) == APD_OK, "%s", err.msg);
    uint32_t seen = 0;
    for (;;) {
        int64_t y[3];
        size_t nb;
        ck_assert_msg(apd_loader_next(ld, buf, sizeof(float) * buf_floats, y, NULL, &nb) == APD_OK, "%s",
                      apd_loader_errmsg(ld));
        if (nb == 0) break;
        for (size_t q = 0; q < nb; q++) {
            ck_assert(y[q] >= 0 && y[q] < (int64_t)NREC); /* label i is record i */
            ck_assert_msg(memcmp(buf + q * IMG, ref + (size_t)y[q] * IMG, sizeof(float) * IMG) == 0,
                          "K=%u loader record %lld differs", K, (long long)y[q]);
            seen++;
        }
    }
    ck_assert_uint_eq(seen, NREC);
    apd_loader_close(ld);
}

START_TEST(batch_equals_single)
{
    static const size_t sizes[] = {1, 2, 3, 5, NREC};
    /* records in an order with repeats and one id out of range (position 6) */
    static const uint64_t order[] = {0, 1, 2, 3, 4, 5, 99, 6, 7, 8, 9, 10, 10, 1, 3, 0, 5};
    const size_t no = sizeof order / sizeof *order;
    const float mean[3] = {0.5f, 0.25f, 0.75f}, sd[3] = {0.25f, 0.5f, 0.125f};
    uint8_t *ref = malloc(2 * NREC * IMG), *out = malloc(2 * no * IMG);
    float *reff = malloc(sizeof(float) * NREC * IMG), *outf = malloc(sizeof(float) * no * IMG);
    uint64_t coded_total = 0, plain_total = 0, pairs_checked = 0;
    apd__rng r;
    apd__rng_seed(&r, 20261206, 0);
    for (uint32_t K = 1; K <= APD_MAX_COLORS; K++) {
        char path[300];
        fmt_path(path, sizeof path, "batch.apd");
        write_file(path, K, &r);
        apd_reader *rd;
        apd_err err;
        ck_assert_msg(apd_reader_open(&rd, path, NULL, &err) == APD_OK, "%s", err.msg);
        apd_file_stats fs;
        ck_assert_int_eq(apd_reader_stats(rd, &fs), APD_OK);
        ck_assert_msg(fs.coded_records >= 4, "K=%u: only %llu coded records", K, (unsigned long long)fs.coded_records);
        coded_total += fs.coded_records;
        plain_total += NREC - fs.coded_records;
        uint32_t rlab[NREC];
        for (uint32_t i = 0; i < NREC; i++) {
            APD_CK(apd_reader_decode(rd, i, APD_LAYOUT_HWC, ref + (size_t)i * IMG, IMG, &rlab[i]) == APD_OK &&
                       apd_reader_decode(rd, i, APD_LAYOUT_CHW, ref + (size_t)(NREC + i) * IMG, IMG, NULL) == APD_OK &&
                       apd_reader_decode_f32(rd, i, APD_LAYOUT_CHW, mean, sd, reff + (size_t)i * IMG, IMG, NULL) ==
                           APD_OK,
                   "K=%u record %u: %s", K, i, apd_reader_errmsg(rd));
            APD_CK(rlab[i] == i, "K=%u record %u: label %u", K, i, rlab[i]);
        }
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
            for (int form = 0; form < 3; form++) {
                uint32_t labs[sizeof order / sizeof *order];
                apd_status st[sizeof order / sizeof *order];
                memset(out, 0xA5, no * IMG);
                for (size_t j0 = 0; j0 < no; j0 += sizes[si]) {
                    size_t nb = no - j0 < sizes[si] ? no - j0 : sizes[si];
                    int has_bad = 0;
                    for (size_t j = j0; j < j0 + nb; j++) has_bad |= order[j] >= NREC;
                    apd_status want = has_bad ? APD_ERANGE : APD_OK, got;
                    if (form < 2)
                        got = apd_reader_decode_batch(rd, order + j0, nb, form ? APD_LAYOUT_CHW : APD_LAYOUT_HWC,
                                                      out + j0 * IMG, IMG, labs + j0, st + j0);
                    else
                        got = apd_reader_decode_f32_batch(rd, order + j0, nb, APD_LAYOUT_CHW, mean, sd,
                                                          outf + j0 * IMG, IMG, labs + j0, st + j0);
                    APD_CK(got == want, "K=%u batch at %zu: status %d, want %d", K, j0, (int)got, (int)want);
                }
                for (size_t j = 0; j < no; j++) {
                    if (order[j] >= NREC) {
                        APD_CK(st[j] == APD_ERANGE, "K=%u pos %zu: status %d for an id out of range", K, j, (int)st[j]);
                        continue;
                    }
                    APD_CK(st[j] == APD_OK, "K=%u batch %zu form %d pos %zu: %s", K, sizes[si], form, j,
                           apd_reader_errmsg(rd));
                    APD_CK(labs[j] == rlab[order[j]], "K=%u pos %zu: label %u, want %u", K, j, labs[j], rlab[order[j]]);
                    if (form < 2)
                        APD_CK(memcmp(out + j * IMG, ref + (size_t)(form * NREC + order[j]) * IMG, IMG) == 0,
                               "K=%u batch size %zu layout %d: record %llu differs", K, sizes[si], form,
                               (unsigned long long)order[j]);
                    else
                        APD_CK(memcmp(outf + j * IMG, reff + (size_t)order[j] * IMG, sizeof(float) * IMG) == 0,
                               "K=%u batch size %zu float32: record %llu differs", K, sizes[si],
                               (unsigned long long)order[j]);
                    pairs_checked++;
                }
            }
        /* bad arguments */
        uint32_t l1;
        apd_status s1;
        uint64_t id0 = 0;
        ck_assert_int_eq(apd_reader_decode_batch(rd, &id0, 1, APD_LAYOUT_HWC, out, IMG - 1, &l1, &s1), APD_EBUFSIZE);
        ck_assert_int_eq(apd_reader_decode_batch(rd, &id0, 1, APD_LAYOUT_HWC, out, IMG, &l1, NULL), APD_EINVAL);
        ck_assert_int_eq(apd_reader_decode_f32_batch(rd, &id0, 1, APD_LAYOUT_HWC, mean, sd, outf, IMG, &l1, &s1),
                         APD_EINVAL);
        ck_assert_int_eq(apd_reader_decode_batch(rd, NULL, 0, APD_LAYOUT_HWC, NULL, IMG, NULL, NULL), APD_OK);
        apd_reader_close(rd);

        /* the loader (groups of records through the batch call) gives the reader's floats */
        if (K % 17 == 1) check_loader(path, K, mean, sd, reff, outf, no * IMG);
        unlink(path);
    }
    ck_assert(plain_total > 0); /* the batches also mixed plain records into the pairs */
    printf("batch_equals_single: K 1..%u, %llu coded and %llu plain records, %llu batch outputs compared, max "
           "difference 0 (byte-identical)\n",
           APD_MAX_COLORS, (unsigned long long)coded_total, (unsigned long long)plain_total,
           (unsigned long long)pairs_checked);
    free(ref); free(out); free(reff); free(outf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("decode_batch");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, batch_equals_single);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    fmt_rmtmp();
    return nf ? 1 : 0;
}
