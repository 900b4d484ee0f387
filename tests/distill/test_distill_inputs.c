/* test_distill_inputs.c: what a distillation accepts from outside.
 *  - numeric options that are not finite or absurd (--lr-img inf, --momentum-img 1e30, NaN,
 *    a zero temperature, a momentum of 1) are refused by apd_distill_run with a message
 *    naming the option, before any work;
 *  - checkpoints are checksummed: a damaged tensor, a damaged header field, bytes appended or
 *    a cut file are refused on resume (each with its status), an old-format checkpoint too,
 *    and an intact one resumes to exactly the uninterrupted run's images.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/distill.h"
#include "common/internal.h"
#include "common/rng.h"

static apd_dataset g_real;

/* 2 classes x 24 noisy 8x8 RGB images (bright square / gradient). */
static void make_dataset(apd_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    ck_assert_int_eq(apd_dataset_alloc(ds, 48, 3, 8, 8, 2), APD_OK);
    apd__rng r;
    apd__rng_seed(&r, 5, 0);
    for (uint64_t i = 0; i < ds->n; i++) {
        uint32_t cls = (uint32_t)(i % 2);
        ds->labels[i] = cls;
        for (uint32_t ch = 0; ch < 3; ch++)
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) {
                    float v = cls ? 255.0f * (float)x / 7.0f : (x > 2 && x < 6 && y > 2 && y < 6) ? 220.0f : 30.0f;
                    v += 15.0f * apd__rng_normal(&r);
                    ds->pixels[((i * 3 + ch) * 8 + y) * 8 + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
    }
    snprintf(ds->name, sizeof ds->name, "toy");
}

static void dm_opts(apd_distill_opts *o)
{
    apd_distill_opts_default(o);
    o->method = APD_DISTILL_DM;
    o->ipc = 2;
    o->budget = APD_BUDGET_IMAGES;
    o->iters = 8;
    o->batch_real = 8;
    o->init = APD_INIT_RANDOM;
    o->init_set = 1;
    o->seed = 3;
    o->threads = 1;
}

START_TEST(numeric_options_refused)
{
    make_dataset(&g_real);
    struct { const char *name; size_t off; float v; apd_status want; } cases[] = {
        {"--lr-img", offsetof(apd_distill_opts, lr_img), INFINITY, APD_ENUMERIC},
        {"--lr-img", offsetof(apd_distill_opts, lr_img), NAN, APD_ENUMERIC},
        {"--lr-img", offsetof(apd_distill_opts, lr_img), -1.0f, APD_EINVAL},
        {"--momentum-img", offsetof(apd_distill_opts, momentum_img), 1e30f, APD_EINVAL},
        {"--momentum-img", offsetof(apd_distill_opts, momentum_img), 1.0f, APD_EINVAL},
        {"--lr-palette", offsetof(apd_distill_opts, lr_palette), 1e30f, APD_EINVAL},
        {"--temp-start", offsetof(apd_distill_opts, temp_start), 0.0f, APD_EINVAL},
        {"--align-ratio", offsetof(apd_distill_opts, align_ratio), 0.0f, APD_EINVAL},
        {"--select-momentum", offsetof(apd_distill_opts, select_momentum), -INFINITY, APD_ENUMERIC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        apd_distill_opts o;
        dm_opts(&o);
        memcpy((char *)&o + cases[i].off, &cases[i].v, sizeof(float));
        apd_distill_result res;
        apd_err err;
        apd_status s = apd_distill_run(&g_real, &o, &res, &err);
        ck_assert_msg(s == cases[i].want, "%s %g: %s (%s)", cases[i].name, (double)cases[i].v, apd_strerror(s), err.msg);
        ck_assert_msg(strstr(err.msg, cases[i].name), "%s", err.msg);
        printf("numeric_options_refused: %s\n", err.msg);
    }
    /* A saturated batch size is a range error naming the option and the bound, not "out of
     * memory" from the buffers sized by it. */
    apd_distill_opts o;
    dm_opts(&o);
    o.batch_real = UINT32_MAX;
    apd_distill_result res;
    apd_err err;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &res, &err), APD_EINVAL);
    ck_assert_msg(strstr(err.msg, "--batch-real 4294967295 is out of range (at most 1048576)"), "%s", err.msg);
    printf("numeric_options_refused: %s\n", err.msg);
    apd_dataset_free(&g_real);
}
END_TEST

static void same_pixels(const apd_distill_result *a, const apd_distill_result *b)
{
    ck_assert_uint_eq(a->n, b->n);
    ck_assert_uint_eq(a->kind, 2);
    ck_assert(memcmp(a->pixels, b->pixels, a->n * a->c * a->h * a->w) == 0);
    ck_assert(memcmp(a->source_ids, b->source_ids, a->n * sizeof(uint64_t)) == 0);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len + 32);
    ck_assert_uint_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void put(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static apd_status resume_from(const char *ck, apd_distill_result *res, apd_err *err)
{
    apd_distill_opts o;
    dm_opts(&o);
    o.resume_path = ck;
    return apd_distill_run(&g_real, &o, res, err);
}

START_TEST(checkpoint_checksummed)
{
    make_dataset(&g_real);
    apd_distill_opts o;
    dm_opts(&o);
    apd_distill_result full, res;
    apd_err err;
    ck_assert_msg(apd_distill_run(&g_real, &o, &full, &err) == APD_OK, "%s", err.msg);
    char ck[300], bad[320];
    snprintf(ck, sizeof ck, "%s/distill-inputs-%d.ckpt", APD_BINARY_DIR, (int)getpid());
    snprintf(bad, sizeof bad, "%s.bad", ck);
    o.checkpoint_path = ck;
    o.stop_after = 4;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &res, &err), APD_ECANCELED);
    size_t n;
    uint8_t *b = slurp(ck, &n);
    uint64_t N = apd__ld64(b + 24);
    size_t pix = 64 + 8 + 8 * N; /* the synthetic pixels start here */
    struct { const char *what; apd_status want; } cases[] = {
        {"pixels overwritten", APD_ECHECKSUM}, {"one bit of a momentum", APD_ECHECKSUM},
        {"iteration field", APD_ECHECKSUM},    {"bytes appended", APD_ECORRUPT},
        {"last 100 bytes cut", APD_ETRUNC},    {"older format", APD_EVERSION},
    };
    for (int i = 0; i < 6; i++) {
        uint8_t *c = malloc(n + 32);
        memcpy(c, b, n);
        size_t len = n;
        if (i == 0)
            for (size_t j = 0; j < 40; j++) memcpy(c + pix + 4 * 7 * j, &(float){3.0f}, 4);
        if (i == 1) c[n - 9] ^= 0x10;
        if (i == 2) c[16] ^= 0x01;
        if (i == 3) {
            memcpy(c + n, "trailing garbage", 16);
            len += 16;
        }
        if (i == 4) len -= 100;
        if (i == 5) memcpy(c, "APDCKPT1", 8);
        put(bad, c, len);
        free(c);
        apd_status s = resume_from(bad, &res, &err);
        ck_assert_msg(s == cases[i].want, "%s: %s (%s)", cases[i].what, apd_strerror(s), err.msg);
        ck_assert_ptr_nonnull(strstr(err.msg, bad));
        printf("checkpoint_checksummed: %-22s -> %s\n", cases[i].what, err.msg);
    }
    ck_assert_msg(resume_from(ck, &res, &err) == APD_OK, "%s", err.msg);
    same_pixels(&full, &res);
    apd_distill_result_free(&res);
    apd_distill_result_free(&full);
    free(b);
    remove(ck);
    remove(bad);
    apd_dataset_free(&g_real);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("distill_inputs");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, numeric_options_refused);
    tcase_add_test(tc, checkpoint_checksummed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
