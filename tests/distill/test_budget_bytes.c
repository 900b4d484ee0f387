/* test_budget_bytes.c: the `bytes` budget rule (apd/budget.h, distill/budget_fit.c).
 *
 * - apd_budget_measured's arithmetic, by hand; the rule's name; compute refuses it;
 * - apd_reader_record_bytes: per-record sizes add up to apd_reader_stats' stored bytes;
 * - end to end on a synthetic set of smooth 32x32 images (where the 1.1 index coding pays):
 *   the file written from a bytes-budget result stores, per class (records as read back
 *   through the reader + the class's share of the shared tables), at most the budget; the
 *   rule buys more images than `bits` at the same K; the provenance records the rule, the
 *   measured bytes and the count; a forced count too large for the budget is trimmed until
 *   the file fits (the fit loop), and the same run twice gives the same records.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/budget.h"
#include "apd/distill.h"
#include "apd/format.h"
#include "common/rng.h"

#define NCLS 2
#define PER_CLASS 200
#define HW 32

static apd_dataset g_real;

/* Smooth images: class 0 a diagonal colour gradient with a disc, class 1 a vertical
 * gradient with wide vertical stripes; small noise. Smooth maps code well (MED residuals ~ 0). */
static void make_dataset(apd_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    if (apd_dataset_alloc(ds, NCLS * PER_CLASS, 3, HW, HW, NCLS) != APD_OK) abort();
    apd__rng r;
    apd__rng_seed(&r, 7, 0);
    for (uint64_t i = 0; i < ds->n; i++) {
        uint32_t cls = (uint32_t)(i % NCLS);
        ds->labels[i] = cls;
        float cx = 8 + 16 * apd__rng_uniform(&r), cy = 8 + 16 * apd__rng_uniform(&r);
        float tint[3] = {apd__rng_uniform(&r), apd__rng_uniform(&r), apd__rng_uniform(&r)};
        float period = 6 + 10 * apd__rng_uniform(&r);
        for (uint32_t ch = 0; ch < 3; ch++)
            for (int y = 0; y < HW; y++)
                for (int x = 0; x < HW; x++) {
                    float v;
                    if (cls == 0) {
                        float d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
                        v = 4.0f * (float)(x + y) * tint[ch] + (d2 < 36 ? 90.0f : 0.0f);
                    } else
                        v = 7.0f * (float)y * tint[ch] + ((int)((float)x / period) % 2 ? 40.0f : 0.0f);
                    v += 0.8f * apd__rng_normal(&r);
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                    ds->pixels[((i * 3 + ch) * HW + y) * HW + x] = (uint8_t)v;
                }
    }
    snprintf(ds->name, sizeof ds->name, "smooth");
}

START_TEST(measured_by_hand)
{
    apd_budget b;
    /* IPC 10, 32x32x3: budget 30720. 10 images stored in 4391 B -> 440 B each (rounded up);
     * share 405: floor((30720 - 405) / 440) = 68 images, used 68 * 440 + 405 = 30325. */
    ck_assert_int_eq(apd_budget_measured(&b, 10, 16, 3, 32, 32, 10, 4391, 405), APD_OK);
    ck_assert_int_eq(b.rule, APD_BUDGET_BYTES);
    ck_assert_uint_eq(b.budget_bytes, 30720);
    ck_assert_uint_eq(b.bytes_per_image, 440);
    ck_assert_uint_eq(b.images_per_class, 68);
    ck_assert_uint_eq(b.used_bytes, 30325);
    ck_assert_int_eq(b.over_budget, 0);
    ck_assert_uint_eq(b.index_bits, 4); /* plain figures kept for reference */
    ck_assert_uint_eq(b.palette_bytes + b.index_bytes, 560);
    /* exact division: 10 images in 4400 B -> 440 B */
    ck_assert_int_eq(apd_budget_measured(&b, 10, 16, 3, 32, 32, 10, 4400, 0), APD_OK);
    ck_assert_uint_eq(b.images_per_class, 69); /* 30720 / 440 = 69.8 */
    /* the share alone above the budget (28x28 grey IPC 1 = 784 B): one image, over budget */
    ck_assert_int_eq(apd_budget_measured(&b, 1, 16, 1, 28, 28, 5, 1000, 900), APD_OK);
    ck_assert_uint_eq(b.images_per_class, 1);
    ck_assert_uint_eq(b.used_bytes, 200 + 900);
    ck_assert_int_eq(b.over_budget, 1);
    ck_assert_int_eq(apd_budget_measured(&b, 10, 16, 3, 32, 32, 0, 100, 0), APD_EINVAL);
    ck_assert_int_eq(apd_budget_measured(&b, 10, 16, 3, 32, 32, 1, 0, 0), APD_EINVAL);
    ck_assert_int_eq(apd_budget_measured(NULL, 10, 16, 3, 32, 32, 1, 1, 0), APD_EINVAL);
    /* compute cannot apply the rule without a measurement */
    ck_assert_int_eq(apd_budget_compute(&b, APD_BUDGET_BYTES, 10, 16, 3, 32, 32), APD_EINVAL);
    apd_budget_rule rule;
    ck_assert_int_eq(apd_budget_rule_from_name("bytes", &rule), APD_OK);
    ck_assert_int_eq(rule, APD_BUDGET_BYTES);
    ck_assert_str_eq(apd_budget_rule_name(APD_BUDGET_BYTES), "bytes");
    char js[512];
    ck_assert_int_eq(apd_budget_measured(&b, 10, 16, 3, 32, 32, 10, 4391, 405), APD_OK);
    ck_assert_int_eq(apd_budget_json(&b, js, sizeof js), APD_OK);
    ck_assert_ptr_nonnull(strstr(js, "\"rule\":\"bytes\""));
    ck_assert_ptr_nonnull(strstr(js, "\"bytes_per_image\":440,"));
    ck_assert_ptr_nonnull(strstr(js, "\"images_per_class\":68,\"shared_bytes\":405,\"used_bytes\":30325,"));
}
END_TEST

/* Write res as apd-convert does and read back, through the reader, each class's stored record
 * bytes plus its share of the shared tables; returns the largest. Checks the per-record sizes
 * add up to apd_reader_stats' figure. per_class may be NULL. */
static uint64_t write_and_measure(const apd_distill_result *res, uint64_t *per_class, uint64_t *share_out,
                                  uint64_t *coded)
{
    char path[256];
    snprintf(path, sizeof path, "%s/budget-bytes-%d.apd", APD_BINARY_DIR, (int)getpid());
    remove(path);
    apd_writer_opts wo;
    apd_distill_writer_opts(&wo, res, &g_real);
    wo.no_sync = 1;
    apd_writer *w;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, path, &wo, &err) == APD_OK, "%s", err.msg);
    ck_assert_int_eq(apd_distill_write(w, res, &g_real, 0, "random"), APD_OK);
    ck_assert_msg(apd_writer_finish(w, &err) == APD_OK, "%s", err.msg);
    apd_reader *r;
    ck_assert_msg(apd_reader_open(&r, path, NULL, &err) == APD_OK, "%s", err.msg);
    uint64_t cls_bytes[NCLS] = {0}, total = 0;
    for (uint64_t i = 0; i < apd_reader_count(r); i++) {
        uint64_t b;
        uint32_t label;
        ck_assert_int_eq(apd_reader_record_bytes(r, i, &b), APD_OK);
        ck_assert_int_eq(apd_reader_label(r, i, &label), APD_OK);
        ck_assert_uint_lt(label, NCLS);
        ck_assert_uint_ge(b, 12); /* at least a record header */
        cls_bytes[label] += b;
        total += b;
    }
    uint64_t b;
    ck_assert_int_eq(apd_reader_record_bytes(r, apd_reader_count(r), &b), APD_ERANGE);
    ck_assert_int_eq(apd_reader_record_bytes(r, 0, NULL), APD_EINVAL);
    ck_assert_int_eq(apd_reader_record_bytes(NULL, 0, &b), APD_EINVAL);
    apd_file_stats st;
    ck_assert_int_eq(apd_reader_stats(r, &st), APD_OK);
    ck_assert_uint_eq(total, st.stored_bytes);
    uint64_t shared = st.imodel_bytes + st.dict_bytes;
    uint64_t share = shared / NCLS + (shared % NCLS != 0), worst = 0;
    for (int c = 0; c < NCLS; c++) {
        if (per_class) per_class[c] = cls_bytes[c];
        if (cls_bytes[c] + share > worst) worst = cls_bytes[c] + share;
    }
    if (share_out) *share_out = share;
    if (coded) *coded = st.coded_records;
    if (res->budget_json && strstr(res->budget_json, "\"rule\":\"bytes\"")) {
        const char *meta = apd_reader_meta_json(r), *bud = strstr(meta, "\"budget\"");
        ck_assert_ptr_nonnull(bud); /* the file's provenance carries the rule's figures */
        ck_assert_ptr_nonnull(strstr(bud, "bytes"));
        ck_assert_ptr_nonnull(strstr(bud, "stored_bytes_per_class"));
    }
    apd_reader_close(r);
    remove(path);
    return worst;
}

static void base_opts(apd_distill_opts *o)
{
    apd_distill_opts_default(o);
    o->method = APD_DISTILL_RANDOM;
    o->init = APD_INIT_RANDOM;
    o->init_set = 1;
    o->quantizer = 0; /* median cut: palette records */
    o->ipc = 10;
    o->colors = 16;
    o->threads = 1;
    o->scratch_dir = APD_BINARY_DIR;
}

START_TEST(file_fits_and_buys_more)
{
    apd_distill_opts o;
    base_opts(&o);
    apd_budget bits;
    ck_assert_int_eq(apd_budget_compute(&bits, APD_BUDGET_BITS, 10, 16, 3, HW, HW), APD_OK);
    o.budget = APD_BUDGET_BYTES;
    apd_distill_result res;
    apd_err err;
    ck_assert_msg(apd_distill_run(&g_real, &o, &res, &err) == APD_OK, "%s", err.msg);
    uint64_t per_class[NCLS], share, coded;
    uint64_t worst = write_and_measure(&res, per_class, &share, &coded);
    printf("bytes rule, K 16, IPC 10: %llu images/class (bits: %llu); stored per class %llu + %llu, "
           "share %llu, largest %llu <= budget %llu; coded records %llu\n",
           (unsigned long long)res.images_per_class, (unsigned long long)bits.images_per_class,
           (unsigned long long)per_class[0], (unsigned long long)per_class[1], (unsigned long long)share,
           (unsigned long long)worst, (unsigned long long)bits.budget_bytes, (unsigned long long)coded);
    ck_assert_uint_le(worst, bits.budget_bytes);
    ck_assert_uint_gt(coded, 0); /* the coding is what pays here */
    ck_assert_uint_gt(res.images_per_class, bits.images_per_class);
    ck_assert_uint_eq(res.n, res.images_per_class * NCLS);
    for (uint64_t i = 0; i < res.n; i++) ck_assert_uint_eq(res.labels[i], i / res.images_per_class);
    /* the provenance: rule, measured bytes per class (as read from the file), count */
    char want[160];
    snprintf(want, sizeof want, "\"stored_bytes_per_class\":[%llu,%llu],\"shared_bytes\":",
             (unsigned long long)per_class[0], (unsigned long long)per_class[1]);
    ck_assert_msg(strstr(res.budget_json, want) != NULL, "%s lacks %s", res.budget_json, want);
    snprintf(want, sizeof want, "\"stored_images_per_class\":%llu}", (unsigned long long)res.images_per_class);
    ck_assert_ptr_nonnull(strstr(res.budget_json, want));
    snprintf(want, sizeof want, "\"shared_bytes_per_class\":%llu,", (unsigned long long)share);
    ck_assert_ptr_nonnull(strstr(res.budget_json, want));
    ck_assert_ptr_nonnull(strstr(res.budget_json, "\"over_budget\":false"));
    ck_assert_ptr_nonnull(strstr(res.budget_json, "\"estimate\":{\"quantizer\":\"median-cut\""));
    ck_assert_ptr_nonnull(strstr(res.hyperparameters_json, "\"budget_rule\":\"bytes\""));

    /* same inputs and seed: the same records */
    apd_distill_result again;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &again, &err), APD_OK);
    ck_assert_uint_eq(again.n, res.n);
    ck_assert_int_eq(memcmp(again.indices, res.indices, (size_t)res.n * HW * HW), 0);
    ck_assert_str_eq(again.budget_json, res.budget_json);
    apd_distill_result_free(&again);
    apd_distill_result_free(&res);

    /* no scratch file left behind */
    DIR *d = opendir(APD_BINARY_DIR);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        ck_assert_msg(strncmp(e->d_name, "apd-budget-", 11) != 0, "scratch file %s left", e->d_name);
    closedir(d);
}
END_TEST

START_TEST(forced_count_is_trimmed)
{
    /* IPC 3 (9216 B per class) with 120 images per class forced: far over; the fit loop
     * must measure and trim until the written file fits */
    apd_distill_opts o;
    base_opts(&o);
    o.ipc = 3;
    o.budget = APD_BUDGET_BYTES;
    o.images_per_class = 120;
    apd_distill_result res;
    apd_err err;
    ck_assert_msg(apd_distill_run(&g_real, &o, &res, &err) == APD_OK, "%s", err.msg);
    uint64_t worst = write_and_measure(&res, NULL, NULL, NULL);
    printf("forced 120 images/class at IPC 3: trimmed to %llu, largest class %llu <= %u; %s\n",
           (unsigned long long)res.images_per_class, (unsigned long long)worst, 3u * 3 * HW * HW,
           strstr(res.budget_json, "\"fit_rounds\""));
    ck_assert_uint_lt(res.images_per_class, 120);
    ck_assert_uint_ge(res.images_per_class, 1);
    ck_assert_uint_le(worst, 3u * 3 * HW * HW);
    ck_assert_ptr_null(strstr(res.budget_json, "\"fit_rounds\":1,")); /* it had to trim */
    /* the kept images are the first of each class, in order */
    for (uint64_t i = 0; i < res.n; i++) ck_assert_uint_eq(res.labels[i], i / res.images_per_class);
    apd_distill_result_free(&res);
}
END_TEST

START_TEST(scratch_dir_missing)
{
    /* nowhere to measure: a clear error naming the directory, no crash, nothing returned */
    apd_distill_opts o;
    base_opts(&o);
    o.budget = APD_BUDGET_BYTES;
    o.scratch_dir = APD_BINARY_DIR "/no-such-dir";
    apd_distill_result res;
    apd_err err;
    apd_status s = apd_distill_run(&g_real, &o, &res, &err);
    printf("missing scratch dir: %s\n", err.msg);
    ck_assert_int_eq(s, APD_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "no-such-dir"));
    ck_assert_ptr_nonnull(strstr(err.msg, "bytes budget"));
    ck_assert_ptr_null(res.labels);
}
END_TEST

int main(void)
{
    make_dataset(&g_real);
    Suite *s = suite_create("budget_bytes");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, measured_by_hand);
    tcase_add_test(tc, file_fits_and_buys_more);
    tcase_add_test(tc, forced_count_is_trimmed);
    tcase_add_test(tc, scratch_dir_missing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    apd_dataset_free(&g_real);
    return nf ? 1 : 0;
}
