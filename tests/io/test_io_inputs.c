/* test_io_inputs.c: names and messages on the way in.
 *  - apd__utf8_seq accepts exactly the well-formed sequences (overlong forms, surrogates,
 *    code points above U+10FFFF, stray continuation bytes rejected); apd__utf8_fit cuts on a
 *    character boundary and replaces invalid bytes;
 *  - the writer stores valid UTF-8 class names even when a caller's 64-byte name slot is cut
 *    in the middle of a character or holds invalid bytes;
 *  - an IDX label file with 2 dimensions is refused with "expected 1" (it said "expected 10").
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/format.h"
#include "apd/io.h"
#include "common/names.h"
#include "io_test_util.h"

static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t l = apd__utf8_seq(p + i, n - i);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

START_TEST(utf8_sequences)
{
    struct { const char *b; size_t len; } ok[] = {{"A", 1}, {"\xC2\xA9", 2}, {"\xE2\x82\xAC", 3},
        {"\xED\x9F\xBF", 3}, {"\xF0\x9F\x98\x80", 4}, {"\xF4\x8F\xBF\xBF", 4}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        ck_assert_uint_eq(apd__utf8_seq((const unsigned char *)ok[i].b, strlen(ok[i].b)), ok[i].len);
    const char *bad[] = {"\x80", "\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                         "\xF5\x80\x80\x80", "\xE2\x82", "\xE2\x28\xA1", "\xFF"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_uint_eq(apd__utf8_seq((const unsigned char *)bad[i], strlen(bad[i])), 0);
    char out[8];
    /* "a" + 3 euro signs = 10 bytes; 7 fit, the third euro sign would be split */
    ck_assert_int_eq(apd__utf8_fit(out, sizeof out, "a\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"), 1);
    ck_assert_str_eq(out, "a\xE2\x82\xAC\xE2\x82\xAC");
    ck_assert_int_eq(apd__utf8_fit(out, sizeof out, "ab\xFF" "c"), 1);
    ck_assert_str_eq(out, "ab?c");
    ck_assert_int_eq(apd__utf8_fit(out, sizeof out, "abc"), 0);
}
END_TEST

START_TEST(writer_class_names_fit)
{
    char *dir = tu_tmpdir("names");
    char path[1200];
    snprintf(path, sizeof path, "%s/t.apd", dir);
    char names[2][64];
    for (int i = 0; i < 64; i++) names[0][i] = "a\xE2\x82\xAC"[i == 0 ? 0 : 1 + (i - 1) % 3]; /* a + euro signs, no NUL */
    snprintf(names[1], sizeof names[1], "ok\xFF" "name");
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = APD_KIND_DIRECT;
    o.c = 1;
    o.h = o.w = 4;
    o.n_classes = 2;
    o.class_names = (const char(*)[64])names;
    o.no_sync = 1;
    apd_writer *w;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, path, &o, &err) == APD_OK, "%s", err.msg);
    uint8_t px[16] = {0};
    ck_assert_int_eq(apd_writer_put_direct(w, px, 1, 0), APD_OK);
    ck_assert_msg(apd_writer_finish(w, &err) == APD_OK, "%s", err.msg);
    apd_reader *r;
    ck_assert_msg(apd_reader_open(&r, path, NULL, &err) == APD_OK, "%s", err.msg);
    const char *n0 = apd_reader_class_name(r, 0), *n1 = apd_reader_class_name(r, 1);
    ck_assert(valid_utf8(n0) && valid_utf8(n1));
    ck_assert_uint_eq(strlen(n0), 61); /* a + 20 euro signs: the 21st would need bytes 62..64 */
    ck_assert_str_eq(n1, "ok?name");
    printf("writer_class_names_fit: \"%s\", \"%s\"\n", n0, n1);
    apd_reader_close(r);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(idx_dimension_message)
{
    char *dir = tu_tmpdir("idxdims");
    char ip[600], lp[600], spec[1300];
    uint8_t img[16 + 32] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4};
    uint8_t lab[12 + 2] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1};
    snprintf(ip, sizeof ip, "%s/i.idx", dir);
    snprintf(lp, sizeof lp, "%s/l.idx", dir);
    tu_write(ip, img, sizeof img);
    tu_write(lp, lab, sizeof lab);
    snprintf(spec, sizeof spec, "idx:%s,%s", ip, lp);
    apd_dataset ds;
    apd_err err;
    ck_assert_int_eq(apd_import(&ds, spec, NULL, NULL, &err), APD_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "2 dimensions, expected 1") && !strstr(err.msg, "expected 10"), "%s", err.msg);
    ck_assert_ptr_nonnull(strstr(err.msg, lp));
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io_inputs");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, utf8_sequences);
    tcase_add_test(tc, writer_class_names_fit);
    tcase_add_test(tc, idx_dimension_message);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
