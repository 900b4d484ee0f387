/* test_common.c: status strings, seeded RNG, dataset helpers. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apd/dataset.h"
#include "common/internal.h"
#include "common/rng.h"

START_TEST(strerror_distinct)
{
    static const apd_status all[] = {APD_OK, APD_EINVAL, APD_ENOMEM, APD_EOVERFLOW, APD_ELIMIT,
        APD_EBADSTATE, APD_EUNSUPPORTED, APD_ECANCELED, APD_EBUFSIZE, APD_EIO, APD_ENOENT,
        APD_EEXIST, APD_EACCES, APD_ELMDB, APD_EMAGIC, APD_EVERSION, APD_ETRUNC, APD_ECORRUPT,
        APD_ECHECKSUM, APD_EFOREIGN, APD_EMETA, APD_ERANGE, APD_ENOTFOUND, APD_EDATASET,
        APD_EIMAGE, APD_EEMPTY, APD_EMISMATCH, APD_ENUMERIC, APD_ESHAPE};
    size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(apd_strerror(all[i]));
        ck_assert_str_ne(apd_strerror(all[i]), "unknown status");
        for (size_t j = 0; j < i; j++) ck_assert_str_ne(apd_strerror(all[i]), apd_strerror(all[j]));
    }
    ck_assert_str_eq(apd_strerror((apd_status)999), "unknown status");
}
END_TEST

START_TEST(checked_math)
{
    size_t r;
    ck_assert(apd__mul_ok(1u << 20, 1u << 10, &r) && r == (size_t)1 << 30);
    ck_assert(!apd__mul_ok(SIZE_MAX / 2 + 1, 2, &r));
    ck_assert(!apd__add_ok(SIZE_MAX, 1, &r));
    ck_assert(!apd__mul3_ok(1u << 31, 1u << 31, 1u << 31, &r));
    uint8_t b[8];
    apd__st64(b, 0x0102030405060708ull);
    ck_assert_uint_eq(b[0], 8);
    ck_assert_uint_eq(apd__ld64(b), 0x0102030405060708ull);
    ck_assert_uint_eq(apd__ld32(b + 4), 0x01020304u);
}
END_TEST

START_TEST(rng_deterministic_and_streams)
{
    apd__rng a, b, c;
    apd__rng_seed(&a, 42, 0);
    apd__rng_seed(&b, 42, 0);
    apd__rng_seed(&c, 42, 1);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = apd__rng_u64(&a), y = apd__rng_u64(&b), z = apd__rng_u64(&c);
        ck_assert_uint_eq(x, y);
        same_c += x == z;
    }
    ck_assert_int_eq(same_c, 0);
}
END_TEST

START_TEST(rng_below_uniform)
{
    /* chi-square over 10 bins, 100000 draws: 9 dof, p = 1e-6 threshold is about 45. */
    apd__rng r;
    apd__rng_seed(&r, 7, 3);
    uint64_t cnt[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint64_t v = apd__rng_below(&r, 10);
        ck_assert_uint_lt(v, 10);
        cnt[v]++;
    }
    double chi = 0;
    for (int i = 0; i < 10; i++) chi += (cnt[i] - 10000.0) * (cnt[i] - 10000.0) / 10000.0;
    ck_assert_msg(chi < 45, "chi2 %.2f", chi);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        float u = apd__rng_uniform(&r);
        ck_assert(u >= 0 && u < 1);
        float g = apd__rng_normal(&r);
        s += g;
        s2 += (double)g * g;
    }
    ck_assert_msg(fabs(s / 1e5) < 0.02 && fabs(s2 / 1e5 - 1) < 0.03, "normal mean %g var %g", s / 1e5, s2 / 1e5);
}
END_TEST

START_TEST(rng_shuffle_is_permutation)
{
    apd__rng r;
    apd__rng_seed(&r, 1, 0);
    uint32_t a[257];
    for (uint32_t i = 0; i < 257; i++) a[i] = i;
    apd__rng_shuffle_u32(&r, a, 257);
    int seen[257] = {0}, fixed = 0;
    for (uint32_t i = 0; i < 257; i++) {
        ck_assert_uint_lt(a[i], 257);
        ck_assert_int_eq(seen[a[i]]++, 0);
        fixed += a[i] == i;
    }
    ck_assert_int_lt(fixed, 10);
}
END_TEST

START_TEST(dataset_hash_and_stats)
{
    apd_dataset ds;
    ck_assert_int_eq(apd_dataset_alloc(&ds, 3, 1, 2, 2, 2), APD_OK);
    for (int i = 0; i < 12; i++) ds.pixels[i] = (uint8_t)(i * 20);
    ds.labels[0] = 0; ds.labels[1] = 1; ds.labels[2] = 1;
    char h1[17], h2[17];
    apd_dataset_hash(&ds, h1);
    ck_assert_int_eq((int)strlen(h1), 16);
    ds.pixels[11] ^= 1;
    apd_dataset_hash(&ds, h2);
    ck_assert_str_ne(h1, h2);
    ds.pixels[11] ^= 1;
    ds.labels[2] = 0;
    apd_dataset_hash(&ds, h2);
    ck_assert_str_ne(h1, h2);
    float m[3], s[3];
    apd_dataset_mean_std(&ds, m, s);
    /* values 0,20,...,220: mean 110, population std sqrt(mean of squares - 110^2) */
    double ms = 0;
    for (int i = 0; i < 12; i++) ms += (i * 20.0) * (i * 20.0);
    double sd = sqrt(ms / 12 - 110.0 * 110.0);
    ck_assert_double_eq_tol(m[0], 110.0 / 255, 1e-6);
    ck_assert_double_eq_tol(s[0], sd / 255, 1e-6);
    uint64_t cc[2];
    apd_dataset_class_counts(&ds, cc);
    ck_assert_uint_eq(cc[0], 2);
    ck_assert_uint_eq(cc[1], 1);
    apd_dataset_free(&ds);
    apd_dataset_free(&ds);
    ck_assert_int_eq(apd_dataset_alloc(&ds, 1, 2, 1, 1, 0), APD_EINVAL);
    ck_assert_int_eq(apd_dataset_alloc(&ds, UINT64_MAX / 2, 3, 1 << 16, 1 << 16, 0), APD_EOVERFLOW);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, strerror_distinct);
    tcase_add_test(tc, checked_math);
    tcase_add_test(tc, rng_deterministic_and_streams);
    tcase_add_test(tc, rng_below_uniform);
    tcase_add_test(tc, rng_shuffle_is_permutation);
    tcase_add_test(tc, dataset_hash_and_stats);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
