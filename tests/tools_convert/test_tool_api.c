/* test_tool_api.c: the public calls the tools are built on instead of library internals:
 * - apd/json.h reader: parse, walk an object (key, value, key, ...), look up keys, unescape
 *   strings (\n, \u00e9, surrogate pairs), too-small buffers, \u0000, raw text spans,
 *   numbers, and errors for bad documents and bad node ids;
 * - apd/io.h apd_dataset_source_json: snprintf convention (size query, truncation), the
 *   object's content (parsed back with the reader: counts, hash = apd_dataset_hash,
 *   resized_to), escaping of names. */
#define _DEFAULT_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/dataset.h"
#include "apd/io.h"
#include "apd/json.h"

START_TEST(json_reader)
{
    const char *text = "{\"a\": 1, \"name\": \"x\\ny\\u00e9\\ud83d\\ude00\", \"list\": [1, 2.5, -3e2],"
                       " \"o\": {\"k\": null}, \"t\": true, \"nul\": \"a\\u0000b\"}";
    apd_json_doc *d = NULL;
    ck_assert_int_eq(apd_json_parse(&d, text, strlen(text)), APD_OK);
    ck_assert_int_eq(apd_json_type_of(d, 0), APD_JSON_OBJECT);
    ck_assert_uint_eq(apd_json_count(d, 0), 6);
    /* walk: keys in document order, each followed by its value */
    static const char *const keys[] = {"a", "name", "list", "o", "t", "nul"};
    int i = 0;
    for (int k = apd_json_first(d, 0); k >= 0; k = apd_json_next(d, apd_json_next(d, k)), i++) {
        char buf[16];
        ck_assert_int_lt(i, 6);
        ck_assert_int_eq(apd_json_string(d, k, buf, sizeof buf), APD_OK);
        ck_assert_str_eq(buf, keys[i]);
        ck_assert_int_ge(apd_json_next(d, k), 0);
    }
    ck_assert_int_eq(i, 6);
    uint64_t u = 0;
    ck_assert_int_eq(apd_json_u64(d, apd_json_get(d, 0, "a"), &u), APD_OK);
    ck_assert_uint_eq(u, 1);
    char s[64];
    int name = apd_json_get(d, 0, "name");
    ck_assert_int_eq(apd_json_string(d, name, s, sizeof s), APD_OK);
    ck_assert_str_eq(s, "x\ny\xc3\xa9\xf0\x9f\x98\x80");
    ck_assert_int_eq(apd_json_string(d, name, s, 4), APD_EBUFSIZE);
    ck_assert_str_eq(s, "");
    ck_assert_int_eq(apd_json_string(d, apd_json_get(d, 0, "nul"), s, sizeof s), APD_EINVAL);
    ck_assert_int_eq(apd_json_string(d, apd_json_get(d, 0, "a"), s, sizeof s), APD_EINVAL);
    size_t n = 0;
    const char *raw = apd_json_text(d, name, &n);
    ck_assert_uint_eq(n, strlen("\"x\\ny\\u00e9\\ud83d\\ude00\""));
    ck_assert(strncmp(raw, "\"x\\ny", 5) == 0 && raw[n - 1] == '"');
    int list = apd_json_get(d, 0, "list");
    ck_assert_int_eq(apd_json_type_of(d, list), APD_JSON_ARRAY);
    ck_assert_uint_eq(apd_json_count(d, list), 3);
    raw = apd_json_text(d, list, &n);
    ck_assert_uint_eq(n, strlen("[1, 2.5, -3e2]"));
    ck_assert(strncmp(raw, "[1, 2.5, -3e2]", n) == 0);
    double v[3];
    int e = apd_json_first(d, list);
    for (int j = 0; j < 3; j++, e = apd_json_next(d, e)) ck_assert_int_eq(apd_json_number(d, e, &v[j]), APD_OK);
    ck_assert(v[0] == 1.0 && v[1] == 2.5 && v[2] == -300.0);
    ck_assert_int_eq(e, -1);
    ck_assert_int_eq(apd_json_u64(d, apd_json_next(d, apd_json_first(d, list)), &u), APD_EINVAL); /* 2.5 */
    ck_assert_int_eq(apd_json_type_of(d, apd_json_get(d, apd_json_get(d, 0, "o"), "k")), APD_JSON_NULL);
    ck_assert_int_eq(apd_json_type_of(d, apd_json_get(d, 0, "t")), APD_JSON_TRUE);
    /* missing keys and bad ids chain to "none" */
    ck_assert_int_eq(apd_json_get(d, 0, "missing"), -1);
    ck_assert_int_eq(apd_json_get(d, apd_json_get(d, 0, "missing"), "x"), -1);
    ck_assert_int_eq(apd_json_type_of(d, -1), APD_JSON_NONE);
    ck_assert_int_eq(apd_json_type_of(d, 100000), APD_JSON_NONE);
    ck_assert_int_eq(apd_json_first(d, name), -1);
    ck_assert_ptr_null(apd_json_text(d, -1, &n));
    ck_assert_uint_eq(n, 0);
    apd_json_free(d);
    apd_json_free(NULL);
}
END_TEST

START_TEST(json_reader_errors)
{
    static const char *const bad[] = {"", "{", "{\"a\" 1}", "[1,]", "{\"a\": 1} x", "\"\\x\"", "nul", "01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        apd_json_doc *d = (apd_json_doc *)&i; /* must be reset to NULL */
        ck_assert_msg(apd_json_parse(&d, bad[i], strlen(bad[i])) == APD_EMETA, "accepted '%s'", bad[i]);
        ck_assert_ptr_null(d);
    }
    apd_json_doc *d;
    ck_assert_int_eq(apd_json_parse(&d, NULL, 0), APD_EINVAL);
    ck_assert_int_eq(apd_json_parse(NULL, "1", 1), APD_EINVAL);
    /* the document keeps its own copy of the text */
    char *t = strdup("{\"k\": \"v\"}");
    ck_assert_int_eq(apd_json_parse(&d, t, strlen(t)), APD_OK);
    memset(t, 'x', strlen(t));
    free(t);
    char s[8];
    ck_assert_int_eq(apd_json_string(d, apd_json_get(d, 0, "k"), s, sizeof s), APD_OK);
    ck_assert_str_eq(s, "v");
    apd_json_free(d);
}
END_TEST

START_TEST(source_json)
{
    apd_dataset ds = {0};
    ck_assert_int_eq(apd_dataset_alloc(&ds, 7, 1, 2, 3, 3), APD_OK);
    for (uint64_t i = 0; i < ds.n; i++) {
        ds.labels[i] = (uint32_t)(i % 2 ? 2 : 0); /* 4 of class 0, none of 1, 3 of 2 */
        for (size_t p = 0; p < 6; p++) ds.pixels[i * 6 + p] = (uint8_t)(i * 6 + p);
    }
    snprintf(ds.name, sizeof ds.name, "tiny \"set\"");
    snprintf(ds.split, sizeof ds.split, "train");
    snprintf(ds.source, sizeof ds.source, "idx:a,b");
    char hex[17];
    apd_dataset_hash(&ds, hex);
    size_t need = apd_dataset_source_json(NULL, 0, &ds, NULL, 0);
    ck_assert_uint_gt(need, 50);
    char *full = malloc(need + 1), small[20];
    ck_assert_uint_eq(apd_dataset_source_json(full, need + 1, &ds, hex, 0), need);
    ck_assert_uint_eq(strlen(full), need);
    /* truncated output: NUL-terminated prefix, same return value */
    ck_assert_uint_eq(apd_dataset_source_json(small, sizeof small, &ds, NULL, 0), need);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert(strncmp(small, full, sizeof small - 1) == 0);
    apd_json_doc *d;
    ck_assert_int_eq(apd_json_parse(&d, full, need), APD_OK);
    char s[64];
    ck_assert_int_eq(apd_json_string(d, apd_json_get(d, 0, "name"), s, sizeof s), APD_OK);
    ck_assert_str_eq(s, "tiny \"set\"");
    ck_assert_int_eq(apd_json_string(d, apd_json_get(d, 0, "hash"), s, sizeof s), APD_OK);
    ck_assert_str_eq(s, hex);
    ck_assert_int_eq(apd_json_string(d, apd_json_get(d, 0, "spec"), s, sizeof s), APD_OK);
    ck_assert_str_eq(s, "idx:a,b");
    uint64_t u;
    ck_assert_int_eq(apd_json_u64(d, apd_json_get(d, 0, "n"), &u), APD_OK);
    ck_assert_uint_eq(u, 7);
    ck_assert_int_eq(apd_json_u64(d, apd_json_get(d, 0, "w"), &u), APD_OK);
    ck_assert_uint_eq(u, 3);
    int counts = apd_json_get(d, 0, "counts");
    ck_assert_uint_eq(apd_json_count(d, counts), 3);
    const uint64_t want[3] = {4, 0, 3};
    int e = apd_json_first(d, counts);
    for (int c = 0; c < 3; c++, e = apd_json_next(d, e)) {
        ck_assert_int_eq(apd_json_u64(d, e, &u), APD_OK);
        ck_assert_uint_eq(u, want[c]);
    }
    ck_assert_int_eq(apd_json_get(d, 0, "resized_to"), -1);
    apd_json_free(d);
    free(full);
    char with[512];
    ck_assert_uint_lt(apd_dataset_source_json(with, sizeof with, &ds, hex, 32), sizeof with);
    ck_assert_int_eq(apd_json_parse(&d, with, strlen(with)), APD_OK);
    ck_assert_int_eq(apd_json_u64(d, apd_json_get(d, 0, "resized_to"), &u), APD_OK);
    ck_assert_uint_eq(u, 32);
    apd_json_free(d);
    ck_assert_uint_eq(apd_dataset_source_json(with, sizeof with, NULL, NULL, 0), 0);
    apd_dataset_free(&ds);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tool_api");
    TCase *t = tcase_create("core");
    tcase_add_test(t, json_reader);
    tcase_add_test(t, json_reader_errors);
    tcase_add_test(t, source_json);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
