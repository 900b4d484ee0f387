/* test_soft_labels.c: per-record soft labels (format 1.1, spec section 7.5) through the
 * writer and the reader: bit-exact round trips with every record coding (plain, zstd with a
 * dictionary, entropy-coded, direct colour), one-hot vectors for records without one, the
 * version the writer emits, and the writer's refusals of bad vectors (file, record, class and
 * reason in the message, nothing written, the writer still usable). apd-info --record shows
 * the vector: with --json as "soft_label" (bit-exact float32) and "soft_label_stored", null
 * for a file without soft labels; in text as a "soft labels" line. */
#define _GNU_SOURCE /* mkdtemp */
#include <check.h>
#include <math.h>
#include <sys/wait.h>

#include "apd/json.h"
#include "fmt_test_util.h"
#include "test_check.h"

/* The stdout of `apd-info ARGS PATH` (exit status 0 asserted); static, valid until the next call. */
static const char *info_out(const char *args, const char *path)
{
    static char buf[8192];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s/apd-info' %s '%s'", APD_BINARY_DIR, args, path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    ck_assert_msg(pclose(p) == 0, "%s failed: %s", cmd, buf);
    return buf;
}

/* apd-info --json --record i: "soft_label" is want[0..nc) bit for bit (want NULL: null) and
 * "soft_label_stored" is `stored`; the text form has a "soft labels" line iff want. */
static void check_info_record(const char *path, uint32_t i, const float *want, uint32_t nc, int stored)
{
    char args[64];
    snprintf(args, sizeof args, "--json --record %u", i);
    const char *out = info_out(args, path);
    apd_json_doc *d;
    ck_assert_msg(apd_json_parse(&d, out, strlen(out)) == APD_OK, "apd-info %s: not JSON: %s", args, out);
    uint64_t rec;
    ck_assert_int_eq(apd_json_u64(d, apd_json_get(d, 0, "record"), &rec), APD_OK);
    ck_assert_uint_eq(rec, i);
    int v = apd_json_get(d, 0, "soft_label"), st = apd_json_get(d, 0, "soft_label_stored");
    ck_assert_msg(v >= 0 && st >= 0, "apd-info %s: no soft_label / soft_label_stored: %s", args, out);
    ck_assert_int_eq(apd_json_type_of(d, st), stored ? APD_JSON_TRUE : APD_JSON_FALSE);
    if (!want) {
        ck_assert_int_eq(apd_json_type_of(d, v), APD_JSON_NULL);
    } else {
        ck_assert_int_eq(apd_json_type_of(d, v), APD_JSON_ARRAY);
        ck_assert_uint_eq(apd_json_count(d, v), nc);
        int e = apd_json_first(d, v);
        for (uint32_t j = 0; j < nc; j++, e = apd_json_next(d, e)) {
            double x;
            ck_assert_int_eq(apd_json_number(d, e, &x), APD_OK);
            float got = (float)x;
            ck_assert_msg(memcmp(&got, &want[j], sizeof got) == 0, "%s record %u class %u: apd-info %.9g, stored %.9g",
                          path, i, j, x, (double)want[j]);
        }
    }
    apd_json_free(d);
    snprintf(args, sizeof args, "--record %u", i);
    out = info_out(args, path);
    ck_assert_msg((strstr(out, "soft labels") != NULL) == (want != NULL), "apd-info %s: %s", args, out);
}

/* A vector of n classes whose largest value sits at label (every fifth one ties two classes). */
static void random_soft(apd__rng *r, uint32_t n, uint32_t label, uint32_t i, float *out)
{
    double v[16], sum = 0;
    for (uint32_t j = 0; j < n; j++) sum += v[j] = (double)apd__rng_below(r, 1 << 20) + 1.0;
    for (uint32_t j = 0; j < n; j++) v[j] = 0.4 * v[j] / sum; /* each < 0.4 */
    v[label] = 0.4;
    if (i % 5 == 0) v[(label + 3) % n] = 0.4;
    sum = 0;
    for (uint32_t j = 0; j < n; j++) sum += v[j];
    for (uint32_t j = 0; j < n; j++) out[j] = (float)(v[j] / sum);
}

typedef struct soft_case {
    uint32_t kind, c, k;
    apd_compress comp;
    apd_icode ic;
    int smooth;
} soft_case;

static void roundtrip(const soft_case *sc, const char *name)
{
    char path[256];
    fmt_path(path, sizeof path, name);
    enum { H = 12, W = 10, N = 300, NC = 10 };
    const size_t npix = (size_t)H * W;
    apd_writer_opts o = fmt_opts(sc->kind, sc->c, H, W, sc->k);
    o.compress = sc->comp;
    o.index_coding = sc->ic;
    o.records_per_chunk = 64;
    o.soft_labels = 1;
    apd_writer *w;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, path, &o, &err) == APD_OK, "%s", err.msg);
    apd__rng r;
    apd__rng_seed(&r, 77, sc->kind * 1000 + sc->k);
    float *soft = malloc((size_t)N * NC * sizeof *soft);
    uint32_t *labels = malloc(N * sizeof *labels);
    uint8_t *pix = malloc((size_t)N * npix * sc->c), pal[768], idx[120];
    for (uint32_t i = 0; i < N; i++) {
        labels[i] = (uint32_t)apd__rng_below(&r, NC);
        random_soft(&r, NC, labels[i], i, soft + (size_t)i * NC);
        const float *sp = i % 3 == 1 ? NULL : soft + (size_t)i * NC;
        if (sc->kind == APD_KIND_PALETTE) {
            fmt_random_palette_image(&r, sc->k, sc->c, npix, pal, idx);
            if (sc->smooth)
                for (size_t p = 0; p < npix; p++) idx[p] = (uint8_t)((p / 7 + i) % sc->k);
            fmt_ref_decode(pal, idx, npix, sc->c, 0, pix + (size_t)i * npix * sc->c);
            ck_assert_msg(apd_writer_put_palette_soft(w, pal, sc->k, idx, labels[i], i, sp) == APD_OK, "%s",
                          apd_writer_errmsg(w));
        } else {
            uint8_t chw[360];
            for (size_t p = 0; p < npix * sc->c; p++)
                chw[p] = sc->smooth ? (uint8_t)(p / 9 + i) : (uint8_t)apd__rng_below(&r, 256);
            for (size_t p = 0; p < npix; p++)
                for (uint32_t ch = 0; ch < sc->c; ch++)
                    pix[((size_t)i * npix + p) * sc->c + ch] = chw[ch * npix + p];
            ck_assert_msg(apd_writer_put_direct_soft(w, chw, labels[i], i, sp) == APD_OK, "%s",
                          apd_writer_errmsg(w));
        }
    }
    ck_assert_int_eq(apd_writer_close(w), APD_OK);

    apd_reader *rd;
    ck_assert_msg(apd_reader_open(&rd, path, NULL, &err) == APD_OK, "%s", err.msg);
    apd_file_info fi;
    apd_file_stats st;
    apd_reader_info(rd, &fi);
    ck_assert_int_eq(apd_reader_stats(rd, &st), APD_OK);
    /* 1.1, or 1.2 with coded records (index model version 2) */
    ck_assert_uint_eq(fi.version_minor, fi.has_index_model ? 2 : 1);
    /* the metadata repeats the header's version */
    ck_assert_ptr_nonnull(strstr(apd_reader_meta_json(rd), fi.has_index_model ? "\"format_version\": \"1.2\""
                                                                              : "\"format_version\": \"1.1\""));
    ck_assert_int_eq(fi.has_soft_labels, 1);
    ck_assert_uint_eq(st.soft_records, N - N / 3);
    uint8_t out[360];
    float got[10];
    double max_err = 0;
    uint32_t n_present = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint32_t label;
        int present = -1;
        ck_assert_int_eq(apd_reader_decode(rd, i, APD_LAYOUT_HWC, out, sizeof out, &label), APD_OK);
        ck_assert_uint_eq(label, labels[i]);
        ck_assert_int_eq(memcmp(out, pix + (size_t)i * npix * sc->c, npix * sc->c), 0);
        ck_assert_int_eq(apd_reader_soft_label(rd, i, got, NC, &present), APD_OK);
        ck_assert_int_eq(present, i % 3 != 1);
        n_present += (uint32_t)present;
        for (uint32_t j = 0; j < NC; j++) {
            float want = present ? soft[(size_t)i * NC + j] : (j == labels[i] ? 1.0f : 0.0f);
            APD_CK(memcmp(&got[j], &want, sizeof want) == 0, "record %u class %u: %.9g != %.9g", i, j, (double)got[j],
                   (double)want);
            max_err = fmax(max_err, fabs((double)got[j] - (double)want));
        }
        ck_assert_int_eq(apd_reader_verify_record(rd, i), APD_OK);
    }
    ck_assert_int_eq(apd_reader_soft_label(rd, 0, got, NC - 1, NULL), APD_EBUFSIZE);
    float one_hot[NC] = {0};
    one_hot[labels[1]] = 1.0f;
    check_info_record(path, 0, soft, NC, 1);
    check_info_record(path, 1, one_hot, NC, 0);
    check_info_record(path, N - 1, soft + (size_t)(N - 1) * NC, NC, 1);
    printf("%s: %u records, %u soft vectors (%llu zstd, %llu coded), max error %g (bit-exact)\n", name, N,
           n_present, (unsigned long long)st.compressed_records, (unsigned long long)st.coded_records, max_err);
    apd_reader_close(rd);
    free(soft);
    free(labels);
    free(pix);
}

START_TEST(soft_roundtrip_every_coding)
{
    static const soft_case cases[] = {
        {APD_KIND_PALETTE, 3, 16, APD_COMPRESS_OFF, APD_ICODE_OFF, 0},
        {APD_KIND_PALETTE, 1, 8, APD_COMPRESS_ON, APD_ICODE_OFF, 1},
        {APD_KIND_PALETTE, 3, 16, APD_COMPRESS_AUTO, APD_ICODE_ON, 1},
        {APD_KIND_DIRECT, 3, 0, APD_COMPRESS_ON, APD_ICODE_AUTO, 1},
        {APD_KIND_DIRECT, 1, 0, APD_COMPRESS_OFF, APD_ICODE_AUTO, 0},
    };
    static const char *names[] = {"plain.apd", "zstd.apd", "coded.apd", "direct-zstd.apd", "direct.apd"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) roundtrip(&cases[c], names[c]);
}
END_TEST

/* The writer emits 1.0 without soft labels, 1.1 with the option; one-hot reads in either. */
START_TEST(soft_versions_and_one_hot)
{
    for (int opt = 0; opt < 2; opt++) {
        char path[256];
        fmt_path(path, sizeof path, opt ? "v11.apd" : "v10.apd");
        apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 1, 2, 2, 4);
        o.soft_labels = opt;
        o.compress = APD_COMPRESS_OFF;
        o.index_coding = APD_ICODE_OFF;
        apd_writer *w;
        apd_err err;
        ck_assert_int_eq(apd_writer_create(&w, path, &o, &err), APD_OK);
        const uint8_t pal[4] = {0, 80, 160, 240}, idx[4] = {0, 1, 2, 3};
        ck_assert_int_eq(apd_writer_put_palette(w, pal, 4, idx, 3, APD_NO_SOURCE_ID), APD_OK);
        ck_assert_int_eq(apd_writer_close(w), APD_OK);
        apd_reader *rd;
        ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
        apd_file_info fi;
        apd_reader_info(rd, &fi);
        ck_assert_uint_eq(fi.version_minor, (unsigned)opt);
        ck_assert_int_eq(fi.has_soft_labels, opt);
        float v[10];
        int present = -1;
        ck_assert_int_eq(apd_reader_soft_label(rd, 0, v, 10, &present), APD_OK);
        ck_assert_int_eq(present, 0);
        for (int j = 0; j < 10; j++) ck_assert(v[j] == (j == 3 ? 1.0f : 0.0f));
        apd_reader_close(rd);
        check_info_record(path, 0, opt ? v : NULL, 10, 0);
    }
    char path[256];
    fmt_path(path, sizeof path, "noclass.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 1, 2, 2, 4);
    o.n_classes = 0;
    o.soft_labels = 1;
    apd_writer *w;
    apd_err err;
    ck_assert_int_eq(apd_writer_create(&w, path, &o, &err), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "n_classes"));
}
END_TEST

/* Bad vectors: refused with file, record, class and reason; the writer stays usable. */
START_TEST(soft_writer_refuses_bad_vectors)
{
    char path[256];
    fmt_path(path, sizeof path, "bad.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_DIRECT, 1, 2, 2, 0);
    o.n_classes = 4;
    o.soft_labels = 1;
    apd_writer *w;
    apd_err err;
    ck_assert_int_eq(apd_writer_create(&w, path, &o, &err), APD_OK);
    const uint8_t img[4] = {1, 2, 3, 4};
    static const struct {
        float v[4];
        const char *why;
    } bad[] = {
        {{NAN, 0.5f, 0.5f, 0.0f}, "class 0 value nan: soft label is NaN or infinite"},
        {{INFINITY, 0.5f, 0.5f, 0.0f}, "class 0 value inf: soft label is NaN or infinite"},
        {{0.75f, 0.5f, -0.25f, 0.0f}, "class 2 value -0.25: soft label is negative"},
        {{0.5f, 0.25f, 0.1f, 0.1f}, "do not sum to 1"},
        {{0.25f, 0.75f, 0.0f, 0.0f}, "class 0 value 0.25: the record's label is not a class of largest"},
    };
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
        ck_assert_int_eq(apd_writer_put_direct_soft(w, img, 0, APD_NO_SOURCE_ID, bad[b].v), APD_EINVAL);
        const char *m = apd_writer_errmsg(w);
        printf("refused: %s\n", m);
        ck_assert_msg(strstr(m, path) && strstr(m, "record 0") && strstr(m, bad[b].why), "%s", m);
        ck_assert_uint_eq(apd_writer_count(w), 0);
    }
    const float ok[4] = {0.5f, 0.5f, 0.0f, 0.0f}; /* a tie: label 1 is a largest class too */
    ck_assert_int_eq(apd_writer_put_direct_soft(w, img, 1, APD_NO_SOURCE_ID, ok), APD_OK);
    ck_assert_int_eq(apd_writer_close(w), APD_OK);

    fmt_path(path, sizeof path, "nosoft.apd");
    o.soft_labels = 0;
    ck_assert_int_eq(apd_writer_create(&w, path, &o, &err), APD_OK);
    ck_assert_int_eq(apd_writer_put_direct_soft(w, img, 0, APD_NO_SOURCE_ID, ok), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(apd_writer_errmsg(w), "without soft_labels"));
    apd_writer_discard(w);
}
END_TEST

/* A stored vector that is not a distribution: apd-info --record exits 1 naming the file,
 * record and reason (it printed nothing about the vector before), in text and JSON. */
START_TEST(info_record_bad_vector)
{
    static const char *const cases[][2] = {{"soft_nan.apd", "NaN or infinite"}, {"soft_sum.apd", "do not sum to 1"}};
    for (int c = 0; c < 2; c++)
        for (int json = 0; json < 2; json++) {
            char cmd[1024], errp[300];
            fmt_path(errp, sizeof errp, "info-err.txt");
            snprintf(cmd, sizeof cmd, "'%s/apd-info' %s--record 0 '%s/bad/%s' >/dev/null 2>'%s'", APD_BINARY_DIR,
                     json ? "--json " : "", APD_TEST_DATA, cases[c][0], errp);
            int rc = system(cmd);
            ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "%s: status %d", cmd, rc);
            char msg[1024] = "";
            FILE *f = fopen(errp, "r");
            ck_assert_ptr_nonnull(f);
            size_t n = fread(msg, 1, sizeof msg - 1, f);
            msg[n] = '\0';
            fclose(f);
            ck_assert_msg(strstr(msg, cases[c][0]) && strstr(msg, "record 0") && strstr(msg, cases[c][1]),
                          "%s: message '%s'", cmd, msg);
        }
}
END_TEST

int main(void)
{
    fmt_tmpdir(); /* create before the forked test cases so they share it */
    Suite *s = suite_create("soft_labels");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, soft_roundtrip_every_coding);
    tcase_add_test(tc, soft_versions_and_one_hot);
    tcase_add_test(tc, soft_writer_refuses_bad_vectors);
    tcase_add_test(tc, info_record_bad_vector);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    fmt_rmtmp();
    return nf ? 1 : 0;
}
