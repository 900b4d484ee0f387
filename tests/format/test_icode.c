/* test_icode.c: the format 1.1 index coding (format/icode.c) at the codec level:
 * - every K 1..256, c 1 and 3, every geometry of the round-trip test: encode with a model
 *   built from the image, decode, compare palette and indices exactly;
 * - every single-bit flip of a few coded records (record CRC) and of a model (model CRC) is
 *   detected; with the CRCs fixed up, flips and truncations never crash or read out of
 *   bounds (the decoder's own checks; run under ASan in the sanitizer build);
 * - the two-record decoder (apd__icode_decode2) gives each record exactly what the single
 *   decoder gives: same pixels for pairs of valid records, same status when one of the pair
 *   is damaged (every CRC-fixed bit flip above, paired with the intact record).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_test_util.h"
#include "test_check.h"
#include "test_quick.h"
#include "format/format_internal.h"
#include "format/icode.h"

/* the round-trip test's geometries, then ones where the two model versions' orders differ
 * (h > 8): rows in a partial last group, w < 8 (idle steps in version 2), w = 8, w = 9 */
#define NSIZES 9
static const uint32_t sizes[NSIZES][2] = {{1, 1}, {3, 5}, {32, 32}, {5, 3}, {128, 128},
                                          {20, 3}, {17, 8}, {13, 9}, {28, 28}};

/* The model version under test (1: row groups, format 1.1; 2: continuous wavefront, 1.2):
 * each test runs once per version (tcase_add_loop_test). */
static uint32_t g_mv = 2;

/* Version 1 (format 1.1, the previous default) is checked on every 4th K and K = 256 (and
 * every K of the file round trips in test_format_roundtrip); version 2 on every K. The quick
 * form (APD_TEST_QUICK, the sanitizer pass) keeps the edges of the sweep only. */
#define K_SWEPT(k) ((g_mv != 1 || (k) % 4 == 1 || (k) == 256) && apd_test_visit_k(k))

static apd_status model_build(const apd__icounts *ct, apd__imodel *m)
{
    apd_status st = apd__imodel_build(ct, m);
    m->ver = g_mv;
    return st;
}

/* Smooth index map (ramps plus sparse noise) so that coding is exercised with skewed
 * statistics; palette random. */
static void smooth_image(apd__rng *r, uint32_t k, uint32_t c, uint32_t h, uint32_t w, uint8_t *pal,
                         uint8_t *idx)
{
    for (size_t i = 0; i < (size_t)k * c; i++) pal[i] = (uint8_t)apd__rng_below(r, 256);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            idx[(size_t)y * w + x] = (uint8_t)(((y / 2 + x / 3) + (apd__rng_below(r, 6) == 0 ? apd__rng_below(r, k) : 0)) % k);
}

/* Model from one image, encode, parse the serialised model back, decode. */
static size_t code_once(uint32_t k, uint32_t c, uint32_t h, uint32_t w, const uint8_t *pal,
                        const uint8_t *idx, uint8_t *body, size_t cap, apd__imodel *pm)
{
    apd__icounts *ct = malloc(sizeof *ct);
    apd__imodel *m = malloc(sizeof *m);
    ck_assert_ptr_nonnull(ct);
    ck_assert_ptr_nonnull(m);
    uint32_t bits = apd_bits_for_k(k);
    apd__icounts_init(ct, c, bits);
    apd__icounts_add(ct, pal, k, idx, h, w);
    ck_assert_int_eq(model_build(ct, m), APD_OK);
    size_t ml = apd__imodel_write(m, NULL);
    uint8_t *mv = malloc(ml);
    ck_assert_uint_eq(apd__imodel_write(m, mv), ml);
    const char *why = "";
    ck_assert_msg(apd__imodel_parse(mv, ml, c, bits, pm, &why) == APD_OK, "%s", why);
    size_t len = apd__icode_encode(pm, pal, k, idx, h, w, body, cap);
    apd__imodel_free(m);
    free(m);
    free(mv);
    free(ct);
    return len;
}

START_TEST(every_k_every_geometry)
{
    g_mv = (uint32_t)_i;
    apd__rng r;
    apd__rng_seed(&r, 77, 0);
    size_t maxpix = 128 * 128, cap = 4 * maxpix + 4096;
    uint8_t pal[768], rpal[768], *idx = malloc(maxpix), *ridx = malloc(maxpix), *body = malloc(cap);
    apd__imodel *m = malloc(sizeof *m);
    uint64_t n = 0, bytes = 0, plain = 0;
    for (uint32_t k = 1; k <= 256; k++)
        for (uint32_t c = 1; c <= 3 && K_SWEPT(k); c += 2)
            for (int s = 0; s < NSIZES; s++) {
                if (s == 4 && k % 15 != 1 && k != 256) continue; /* 128x128: every 15th k */
                uint32_t h = sizes[s][0], w = sizes[s][1];
                smooth_image(&r, k, c, h, w, pal, idx);
                size_t len = code_once(k, c, h, w, pal, idx, body, cap, m);
                ck_assert_msg(len >= APD__IC_STATES, "k %u c %u %ux%u: encode failed", k, c, h, w);
                { /* the chunk check's record size limit admits the largest coded body */
                    apd__header hd = {1, 1, 64, APD_KIND_PALETTE, c, apd_bits_for_k(k), APD__HFLAG_IMODEL,
                                      k, h, w, 10, 0, 1};
                    apd__geom g;
                    apd_limits lim;
                    apd_limits_default(&lim);
                    const char *gw = "";
                    ck_assert_int_eq(apd__geom_from_header(&hd, &lim, &g, &gw), APD_OK);
                    ck_assert_uint_ge(apd__max_record(&g), APD__REC_HDR + APD__REC_SID + APD__IC_STATES +
                                                               2 * ((size_t)k * c + (size_t)h * w));
                }
                const char *why = "";
                for (int impl = APD__IMPL_SCALAR; impl <= APD__IMPL_AVX2; impl++) {
                    if (!apd__icode_impl_available(impl)) continue;
                    memset(ridx, 0xEE, (size_t)h * w);
                    memset(rpal, 0xEE, sizeof rpal);
                    ck_assert_msg(apd__icode_decode_impl(impl, m, body, len, k, h, w, rpal, ridx, &why) == APD_OK,
                                  "k %u c %u %ux%u impl %d: %s", k, c, h, w, impl, why);
                    ck_assert_mem_eq(rpal, pal, (size_t)k * c);
                    ck_assert_mem_eq(ridx, idx, (size_t)h * w);
                }
                /* one byte short or one word too many: rejected */
                ck_assert_int_ne(apd__icode_decode(m, body, len - 1, k, h, w, rpal, ridx, &why), APD_OK);
                body[len] = body[len + 1] = 0;
                ck_assert_int_ne(apd__icode_decode(m, body, len + 2, k, h, w, rpal, ridx, &why), APD_OK);
                apd__imodel_free(m);
                n++;
                bytes += len;
                plain += (size_t)k * c + apd_packed_bytes((uint64_t)h * w, apd_bits_for_k(k));
            }
    printf("model version %u: every_k_every_geometry%s: %llu images round-tripped exactly; coded %llu B vs plain "
           "%llu B\n",
           g_mv, apd_test_quick() ? " (quick form: K 1-9 and 2^n - 1, 2^n, 2^n + 1)" : "", (unsigned long long)n,
           (unsigned long long)bytes, (unsigned long long)plain);
    free(idx); free(ridx); free(body); free(m);
}
END_TEST

/* A coded record (CRC included) for k = 64, c = 3, 32x32; returns its length. */
static size_t coded_record(apd__rng *r, uint8_t *rec, size_t cap, apd__imodel *m, apd__geom *g)
{
    uint8_t pal[768], idx[1024];
    smooth_image(r, 64, 3, 32, 32, pal, idx);
    size_t len = code_once(64, 3, 32, 32, pal, idx, rec + APD__REC_HDR, cap - APD__REC_HDR, m);
    ck_assert_uint_gt(len, 0);
    memset(rec, 0, APD__REC_HDR);
    rec[4] = APD_KIND_PALETTE | APD__RFLAG_ICODE;
    rec[5] = 63;
    apd__st32(rec + 8, 3);
    apd__st32(rec, apd_crc32c(0, rec + 4, APD__REC_HDR + len - 4));
    apd__header h = {1, 1, 64, APD_KIND_PALETTE, 3, 6, APD__HFLAG_IMODEL, 64, 32, 32, 100, 10, 1};
    apd_limits lim;
    apd_limits_default(&lim);
    const char *why = "";
    ck_assert_int_eq(apd__geom_from_header(&h, &lim, g, &why), APD_OK);
    g->imodel = m;
    return APD__REC_HDR + len;
}

START_TEST(every_bit_flip_detected)
{
    g_mv = (uint32_t)_i;
    apd__rng r;
    apd__rng_seed(&r, 5, 0);
    uint8_t rec[4096], copy[4096], out[3072];
    apd__imodel *m = malloc(sizeof *m);
    uint64_t flips = 0, crash_free = 0;
    for (int t = 0; t < 3; t++) {
        apd__geom g;
        size_t len = coded_record(&r, rec, sizeof rec, m, &g);
        const char *why = "";
        ck_assert_msg(apd__record_decode_bytes(rec, len, &g, NULL, 0, APD_LAYOUT_HWC, out, NULL, &why) == APD_OK,
                      "%s", why);
        for (size_t bit = 0; bit < 8 * len; bit++) {
            memcpy(copy, rec, len);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            APD_CK(apd__record_decode_bytes(copy, len, &g, NULL, 0, APD_LAYOUT_HWC, out, NULL, &why) == APD_ECHECKSUM,
                   "record %d bit %zu not detected", t, bit);
            flips++;
            /* CRC fixed up: the decoder itself must survive, and the scalar and vector
               decoders must agree on the verdict and the result */
            if (bit >= 32 && bit >= 8 * APD__REC_HDR) {
                const uint8_t *b = copy + APD__REC_HDR;
                size_t bl = len - APD__REC_HDR;
                uint8_t p1[768], p2[768], i1[1024], i2[1024];
                apd_status s1 = apd__icode_decode_impl(APD__IMPL_SCALAR, m, b, bl, 64, 32, 32, p1, i1, &why);
                if (apd__icode_impl_available(APD__IMPL_AVX2)) {
                    apd_status s2 = apd__icode_decode_impl(APD__IMPL_AVX2, m, b, bl, 64, 32, 32, p2, i2, &why);
                    APD_CK((s1 == APD_OK) == (s2 == APD_OK), "record %d bit %zu: scalar %d, AVX2 %d", t, bit, s1, s2);
                    APD_CK(s1 != APD_OK || (memcmp(p1, p2, 192) == 0 && memcmp(i1, i2, 1024) == 0),
                           "record %d bit %zu: scalar and AVX2 decode differently", t, bit);
                }
                { /* paired with the intact record, in both orders */
                    const uint8_t *ok = rec + APD__REC_HDR;
                    uint8_t q[2][768], j[2][1024], ref[768 + 1024];
                    ck_assert_int_eq(apd__icode_decode(m, ok, bl, 64, 32, 32, ref, ref + 768, &why), APD_OK);
                    for (int o = 0; o < 2; o++) {
                        const uint8_t *const bb[2] = {o ? b : ok, o ? ok : b};
                        const size_t ll[2] = {bl, bl};
                        const uint32_t kk[2] = {64, 64};
                        uint8_t *const pp[2] = {q[0], q[1]}, *const ii[2] = {j[0], j[1]};
                        apd_status st[2];
                        const char *w2[2] = {"", ""};
                        apd__icode_decode2(APD__IMPL_AUTO, m, bb, ll, kk, 32, 32, pp, ii, st, w2);
                        int d = !o; /* the damaged record's place */
                        APD_CK(st[o] == APD_OK, "record %d bit %zu: intact record failed: %s", t, bit, w2[o]);
                        APD_CK(memcmp(q[o], ref, 192) == 0 && memcmp(j[o], ref + 768, 1024) == 0,
                               "record %d bit %zu: the intact record decodes differently in a pair", t, bit);
                        APD_CK(st[d] == s1, "record %d bit %zu: pair status %d, alone %d", t, bit, st[d], s1);
                        APD_CK(s1 != APD_OK || (memcmp(q[d], p1, 192) == 0 && memcmp(j[d], i1, 1024) == 0),
                               "record %d bit %zu: the damaged record decodes differently in a pair", t, bit);
                    }
                }
                crash_free++;
            }
        }
        for (size_t cut = 0; cut < len; cut += 7) { /* truncations, CRC fixed up */
            memcpy(copy, rec, cut);
            if (cut >= 4) apd__st32(copy, apd_crc32c(0, copy + 4, cut - 4));
            ck_assert_int_ne(apd__record_decode_bytes(copy, cut, &g, NULL, 0, APD_LAYOUT_HWC, out, NULL, &why), APD_OK);
        }
        apd__imodel_free(m);
    }
    /* the model: every bit flip fails its CRC */
    apd__icounts *ct = malloc(sizeof *ct);
    apd__icounts_init(ct, 3, 6);
    uint8_t pal[768], idx[1024];
    smooth_image(&r, 64, 3, 32, 32, pal, idx);
    apd__icounts_add(ct, pal, 64, idx, 32, 32);
    ck_assert_int_eq(model_build(ct, m), APD_OK);
    size_t ml = apd__imodel_write(m, NULL);
    uint8_t *mv = malloc(ml), *mc = malloc(ml);
    apd__imodel_write(m, mv);
    apd__imodel_free(m);
    apd__imodel *m2 = malloc(sizeof *m2);
    uint64_t mflips = 0;
    for (size_t bit = 0; bit < 8 * ml; bit++) {
        memcpy(mc, mv, ml);
        mc[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        const char *why = "";
        apd_status ps = apd__imodel_parse(mc, ml, 3, 6, m2, &why);
        APD_CK(ps == APD_ECHECKSUM, "model bit %zu: status %d, not a checksum error", bit, (int)ps);
        mflips++;
        if (bit >= 32) { /* CRC fixed up: parsed or rejected, never accepted with bad sums */
            apd__st32(mc, apd_crc32c(0, mc + 4, ml - 4));
            if (apd__imodel_parse(mc, ml, 3, 6, m2, &why) == APD_OK) {
                for (uint32_t tb = 0; tb < m2->ntab; tb++) {
                    uint32_t sum = 0;
                    for (uint32_t s = 0; s < (tb < APD__IC_NCTX ? 64u : 256u); s++) sum += m2->freq[tb][s];
                    ck_assert(sum == APD__IC_M || (sum == 0 && tb < APD__IC_NCTX));
                }
                apd__imodel_free(m2);
            }
        }
    }
    printf("model version %u: every_bit_flip_detected: %llu record bit flips and %llu model bit flips detected by CRC; "
           "%llu CRC-fixed flips decoded without a crash, scalar and AVX2 agreeing\n",
           g_mv, (unsigned long long)flips, (unsigned long long)mflips, (unsigned long long)crash_free);
    free(ct); free(mv); free(mc); free(m); free(m2);
}
END_TEST

/* Pairs of different valid records under one model (built from both), every geometry of
 * the round-trip test and a spread of k: decode2 (the AVX-512 register set with impl
 * AVX512, the AVX2 pair with impl AVX2 even where AVX-512 is there, and the scalar path)
 * returns both exactly; a pair whose second body is one word short fails only the second. */
START_TEST(two_records_lockstep)
{
    g_mv = (uint32_t)_i;
    static const uint32_t ks[] = {1, 2, 3, 5, 16, 17, 63, 64, 65, 200, 256};
    apd__rng r;
    apd__rng_seed(&r, 91, 0);
    size_t maxpix = 128 * 128, cap = 4 * maxpix + 4096;
    uint8_t *pal[2], *idx[2], *body[2], *rp[2], *ri[2];
    for (int i = 0; i < 2; i++) {
        pal[i] = malloc(768);
        idx[i] = malloc(maxpix);
        body[i] = malloc(cap);
        rp[i] = malloc(768);
        ri[i] = malloc(maxpix);
    }
    apd__icounts *ct = malloc(sizeof *ct);
    apd__imodel *m = malloc(sizeof *m);
    uint64_t pairs = 0;
    for (size_t q = 0; q < sizeof ks / sizeof *ks; q++)
        for (uint32_t c = 1; c <= 3; c += 2)
            for (int s = 0; s < NSIZES; s++) {
                uint32_t k = ks[q], h = sizes[s][0], w = sizes[s][1], kk[2];
                apd__icounts_init(ct, c, apd_bits_for_k(k));
                for (int i = 0; i < 2; i++) {
                    kk[i] = i ? (k + 1) / 2 : k; /* the two records' palette sizes differ */
                    smooth_image(&r, kk[i], c, h, w, pal[i], idx[i]);
                    apd__icounts_add(ct, pal[i], kk[i], idx[i], h, w);
                }
                ck_assert_int_eq(model_build(ct, m), APD_OK);
                size_t len[2];
                for (int i = 0; i < 2; i++) {
                    len[i] = apd__icode_encode(m, pal[i], kk[i], idx[i], h, w, body[i], cap);
                    ck_assert_uint_ge(len[i], APD__IC_STATES);
                }
                for (int impl = APD__IMPL_SCALAR; impl <= APD__IMPL_AVX2; impl++) {
                    if (!apd__icode_impl_available(impl)) continue;
                    apd_status st[2];
                    const char *why[2] = {"", ""};
                    for (int i = 0; i < 2; i++) {
                        memset(rp[i], 0xEE, 768);
                        memset(ri[i], 0xEE, (size_t)h * w);
                    }
                    ck_assert_msg(apd__icode_decode2(impl, m, (const uint8_t *const *)body, len, kk, h, w, rp, ri, st,
                                                     why) == APD_OK,
                                  "k %u c %u %ux%u impl %d: %s / %s", k, c, h, w, impl, why[0], why[1]);
                    for (int i = 0; i < 2; i++) {
                        ck_assert_mem_eq(rp[i], pal[i], (size_t)kk[i] * c);
                        ck_assert_mem_eq(ri[i], idx[i], (size_t)h * w);
                    }
                    size_t short2[2] = {len[0], len[1] - 2};
                    ck_assert_int_ne(apd__icode_decode2(impl, m, (const uint8_t *const *)body, short2, kk, h, w, rp, ri,
                                                        st, why),
                                     APD_OK);
                    ck_assert_int_eq(st[0], APD_OK);
                    ck_assert_int_ne(st[1], APD_OK);
                    ck_assert_mem_eq(ri[0], idx[0], (size_t)h * w);
                }
                apd__imodel_free(m);
                pairs++;
            }
    printf("model version %u: two_records_lockstep: %llu pairs decoded exactly by both paths, short second body rejected alone\n",
           g_mv, (unsigned long long)pairs);
    for (int i = 0; i < 2; i++) {
        free(pal[i]); free(idx[i]); free(body[i]); free(rp[i]); free(ri[i]);
    }
    free(ct); free(m);
}
END_TEST

/* apd__icode_decoden (two records per 16-lane register set, up to four sets in lockstep, with
 * AVX-512; pairs otherwise, and with APD__IMPL_AVX2 the AVX2 pairs even where AVX-512 is
 * there) against the one-record decoder on every K 1..256, n = 1..9
 * records of different k, every small geometry, 32x32 and 12x300: the same palettes, indices and
 * statuses; then each position in turn gets a body one word short or a state below 2^16,
 * and only that record fails, with the single decoder's status. */
START_TEST(n_records_lockstep)
{
    g_mv = (uint32_t)_i;
    enum { NMAX = 9 };
    apd__rng r;
    apd__rng_seed(&r, 4242, 0);
    size_t maxpix = 12 * 300, cap = 4 * maxpix + 4096;
    uint8_t *pal[NMAX], *idx[NMAX], *body[NMAX], *rp[NMAX], *ri[NMAX], *sp = malloc(768), *si = malloc(maxpix);
    uint8_t *box[NMAX], *bi[NMAX]; /* index maps with 32 guard bytes on each side */
    for (int i = 0; i < NMAX; i++) {
        box[i] = malloc(maxpix + 64);
        pal[i] = malloc(768);
        idx[i] = malloc(maxpix);
        body[i] = malloc(cap);
        rp[i] = malloc(768);
        ri[i] = malloc(maxpix);
    }
    apd__icounts *ct = malloc(sizeof *ct);
    apd__imodel *m = malloc(sizeof *m);
    uint64_t groups = 0, damaged = 0, lockstep = 0;
    for (uint32_t k = 1; k <= 256; k++) {
        if (!K_SWEPT(k)) continue;
        uint32_t c = k % 2 ? 3 : 1, s = k % 8 < 4 ? k % 8 : k % 8 + 1; /* not 128x128 */
        uint32_t h = sizes[s][0], w = sizes[s][1], kk[NMAX];
        if (k % 32 == 7) h = 12, w = 300; /* rows wider than the stage kept on the stack */
        apd__icounts_init(ct, c, apd_bits_for_k(k));
        for (int i = 0; i < NMAX; i++) {
            kk[i] = i == 0 ? k : 1 + (uint32_t)apd__rng_below(&r, k);
            smooth_image(&r, kk[i], c, h, w, pal[i], idx[i]);
            apd__icounts_add(ct, pal[i], kk[i], idx[i], h, w);
        }
        ck_assert_int_eq(model_build(ct, m), APD_OK);
        size_t len[NMAX];
        for (int i = 0; i < NMAX; i++) {
            len[i] = apd__icode_encode(m, pal[i], kk[i], idx[i], h, w, body[i], cap);
            ck_assert_uint_ge(len[i], APD__IC_STATES);
        }
        /* AUTO: the AVX-512 sets where there are; AVX2: the AVX2 pair decoder even there */
        static const int impls[] = {APD__IMPL_AUTO, APD__IMPL_SCALAR, APD__IMPL_AVX2};
        for (uint32_t n = 1; n <= NMAX; n++)
            for (size_t q = 0; q < sizeof impls / sizeof *impls; q++) {
                int impl = impls[q];
                if (!apd__icode_impl_available(impl)) continue;
                apd_status st[NMAX];
                const char *why[NMAX];
                for (uint32_t i = 0; i < n; i++) {
                    memset(rp[i], 0xEE, 768);
                    memset(ri[i], 0xEE, maxpix);
                    why[i] = "";
                }
                ck_assert_msg(apd__icode_decoden(impl, m, n, (const uint8_t *const *)body, len, kk, h, w, rp, ri, st,
                                                 why) == APD_OK,
                              "k %u n %u impl %d: %s", k, n, impl, why[0]);
                for (uint32_t i = 0; i < n; i++) {
                    ck_assert_int_eq(st[i], APD_OK);
                    ck_assert_mem_eq(rp[i], pal[i], (size_t)kk[i] * c);
                    ck_assert_mem_eq(ri[i], idx[i], (size_t)h * w);
                }
                groups++;
                if (n % 2 == 0 && impl == APD__IMPL_AUTO) {
                    /* valid bodies: the lockstep path itself (no fallback) gives the records */
                    int have = 0;
#if defined(__x86_64__) || defined(__i386__)
                    have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2");
#endif
                    /* it writes the index maps directly: nothing outside each map's h * w bytes */
                    for (uint32_t i = 0; i < n; i++) {
                        memset(box[i], 0xA5, maxpix + 64);
                        bi[i] = box[i] + 32;
                    }
                    int rc = apd__icode_lockstep(m, n, (const uint8_t *const *)body, len, kk, h, w, rp, bi, st, why);
                    if (have) {
                        ck_assert_msg(rc == 0, "k %u n %u: the lockstep decoder fell back", k, n);
                        for (uint32_t i = 0; i < n; i++) {
                            ck_assert_int_eq(st[i], APD_OK);
                            ck_assert_mem_eq(rp[i], pal[i], (size_t)kk[i] * c);
                            ck_assert_mem_eq(bi[i], idx[i], (size_t)h * w);
                            size_t written = 0;
                            for (size_t b = 0; b < maxpix + 64; b++)
                                written += (b < 32 || b >= 32 + (size_t)h * w) && box[i][b] != 0xA5;
                            ck_assert_msg(written == 0, "k %u n %u record %u: %zu bytes around the index map written",
                                          k, n, i, written);
                        }
                        lockstep++;
                    }
                }
                /* damage record d: one word short (odd d) or lane 3's state below 2^16 (even d) */
                for (uint32_t d = 0; d < n; d++) {
                    size_t len2[NMAX];
                    memcpy(len2, len, sizeof len2);
                    uint8_t saved = body[d][4 * 3 + 2], saved3 = body[d][4 * 3 + 3];
                    if (d % 2)
                        len2[d] -= 2;
                    else
                        body[d][4 * 3 + 2] = body[d][4 * 3 + 3] = 0;
                    const char *sw = "";
                    apd_status want = apd__icode_decode_impl(APD__IMPL_SCALAR, m, body[d], len2[d], kk[d], h, w, sp, si,
                                                             &sw);
                    ck_assert_int_ne(want, APD_OK);
                    ck_assert_int_eq(apd__icode_decoden(impl, m, n, (const uint8_t *const *)body, len2, kk, h, w, rp, ri,
                                                        st, why),
                                     want);
                    for (uint32_t i = 0; i < n; i++) {
                        APD_CK(st[i] == (i == d ? want : APD_OK), "k %u n %u damaged %u: record %u status %d", k, n,
                               d, i, (int)st[i]);
                        APD_CK(i == d || memcmp(ri[i], idx[i], (size_t)h * w) == 0,
                               "k %u n %u damaged %u: intact record %u decoded differently", k, n, d, i);
                    }
                    body[d][4 * 3 + 2] = saved;
                    body[d][4 * 3 + 3] = saved3;
                    damaged++;
                }
            }
        apd__imodel_free(m);
    }
    printf("model version %u: n_records_lockstep: %llu groups of 1-9 records decoded exactly (max difference 0; %llu of them by the "
           "AVX-512 lockstep path alone), %llu damaged groups failed only the damaged record\n",
           g_mv, (unsigned long long)groups, (unsigned long long)lockstep, (unsigned long long)damaged);
    for (int i = 0; i < NMAX; i++) {
        free(pal[i]); free(idx[i]); free(body[i]); free(rp[i]); free(ri[i]); free(box[i]);
    }
    free(sp); free(si); free(ct); free(m);
}
END_TEST

/* A map too long for the lockstep decoder's stage (model version 2: more than 2^17 wavefront
 * steps, 1032 x 1024 here): apd__icode_lockstep declines it, and apd__icode_decoden decodes
 * the records another way (AVX2 pairs), exactly. */
START_TEST(huge_map_falls_back)
{
    g_mv = (uint32_t)_i;
    enum { N = 2, H = 1032, W = 1024 }; /* 129 x 1024 + 7 steps > 2^17 */
    const size_t npix = (size_t)H * W, cap = 2 * npix + 4096;
    apd__rng r;
    apd__rng_seed(&r, 606, 0);
    apd__icounts *ct = malloc(sizeof *ct);
    apd__imodel *m = malloc(sizeof *m);
    uint8_t *pal[N], *idx[N], *body[N], *rp[N], *ri[N];
    uint32_t kk[N];
    size_t len[N];
    apd__icounts_init(ct, 1, 2);
    for (int i = 0; i < N; i++) {
        pal[i] = malloc(768), idx[i] = malloc(npix), body[i] = malloc(cap), rp[i] = malloc(768), ri[i] = malloc(npix);
        kk[i] = 2 + (uint32_t)(i % 3);
        smooth_image(&r, kk[i], 1, H, W, pal[i], idx[i]);
        apd__icounts_add(ct, pal[i], kk[i], idx[i], H, W);
    }
    ck_assert_int_eq(model_build(ct, m), APD_OK);
    for (int i = 0; i < N; i++) {
        len[i] = apd__icode_encode(m, pal[i], kk[i], idx[i], H, W, body[i], cap);
        ck_assert_uint_ge(len[i], APD__IC_STATES);
    }
    apd_status st[N];
    const char *why[N];
    if (g_mv == 2) /* version 1 keeps two row groups' stages only: any height is fine there */
        ck_assert_int_eq(apd__icode_lockstep(m, N, (const uint8_t *const *)body, len, kk, H, W, rp, ri, st, why), -1);
    ck_assert_int_eq(apd__icode_decoden(APD__IMPL_AUTO, m, N, (const uint8_t *const *)body, len, kk, H, W, rp, ri, st, why),
                     APD_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(st[i], APD_OK);
        ck_assert_mem_eq(rp[i], pal[i], kk[i]);
        ck_assert(memcmp(ri[i], idx[i], npix) == 0);
    }
    printf("model version %u: huge_map_falls_back: %d records of %ux%u decoded exactly by apd__icode_decoden\n", g_mv,
           N, H, W);
    apd__imodel_free(m);
    for (int i = 0; i < N; i++) {
        free(pal[i]); free(idx[i]); free(body[i]); free(rp[i]); free(ri[i]);
    }
    free(ct); free(m);
}
END_TEST

/* An empty context met in a batch: for each record d of a group of eight (CIFAR-like 32x32,
 * K = 64), a context that only record d's pixels use gets an empty decode table (as a file
 * whose model lacks it). apd__icode_decoden must give record d exactly the status and message
 * of the one-record decoder, not OK, and every other record its exact indices (the lockstep
 * decoder fails the whole group, and the records are then decoded one by one). An empty
 * entry zeroes the state, so the stream usually runs out before the end checks name the
 * context: the test counts how often the message names it. */
START_TEST(empty_context_in_batch)
{
    g_mv = (uint32_t)_i;
    enum { N = 8, H = 32, W = 32, K = 64, C = 3 };
    apd__rng r;
    apd__rng_seed(&r, 777, 0);
    uint8_t *pal[N], *idx[N], *body[N], *rp[N], *ri[N], *sp = malloc(K * C), *si = malloc(H * W);
    size_t cap = 4 * H * W + 4096, len[N];
    uint32_t kk[N];
    apd__icounts *ct = malloc(sizeof *ct), *one = malloc(sizeof *one);
    apd__imodel *m = malloc(sizeof *m);
    static uint32_t used[N][APD__IC_NCTX];
    apd__icounts_init(ct, C, apd_bits_for_k(K));
    for (int i = 0; i < N; i++) {
        pal[i] = malloc(K * C), idx[i] = malloc(H * W), body[i] = malloc(cap), rp[i] = malloc(K * C), ri[i] = malloc(H * W);
        kk[i] = K;
        smooth_image(&r, K, C, H, W, pal[i], idx[i]);
        apd__icounts_add(ct, pal[i], K, idx[i], H, W);
        apd__icounts_init(one, C, apd_bits_for_k(K));
        apd__icounts_add(one, pal[i], K, idx[i], H, W);
        for (uint32_t x = 0; x < APD__IC_NCTX; x++) {
            used[i][x] = 0;
            for (uint32_t s = 0; s < 256; s++) used[i][x] += one->n[x][s] != 0;
        }
    }
    ck_assert_int_eq(model_build(ct, m), APD_OK);
    for (int i = 0; i < N; i++) len[i] = apd__icode_encode(m, pal[i], K, idx[i], H, W, body[i], cap);
    uint32_t tried = 0, named = 0;
    for (uint32_t d = 0; d < N; d++) {
        uint32_t x = 0; /* a context of record d's and nobody else's */
        for (; x < APD__IC_NCTX; x++) {
            uint32_t others = 0;
            for (uint32_t i = 0; i < N; i++) others += i != d && used[i][x];
            if (used[d][x] && !others) break;
        }
        if (x == APD__IC_NCTX) continue;
        uint32_t saved[APD__IC_M];
        uint32_t *tab = m->dec + (size_t)x * APD__IC_M;
        memcpy(saved, tab, sizeof saved);
        for (uint32_t j = 0; j < APD__IC_M; j++) tab[j] = APD__IC_EMPTY;
        const char *sw = "";
        apd_status want = apd__icode_decode_impl(APD__IMPL_SCALAR, m, body[d], len[d], K, H, W, sp, si, &sw);
        ck_assert_int_ne(want, APD_OK);
        named += strstr(sw, "no table") != NULL;
        apd_status st[N];
        const char *why[N];
        for (uint32_t i = 0; i < N; i++) why[i] = "";
        ck_assert_int_eq(apd__icode_decoden(APD__IMPL_AUTO, m, N, (const uint8_t *const *)body, len, kk, H, W, rp, ri,
                                            st, why),
                         want);
        for (uint32_t i = 0; i < N; i++) {
            ck_assert_msg(st[i] == (i == d ? want : APD_OK), "context %u of record %u emptied: record %u status %d", x, d,
                          i, (int)st[i]);
            if (i == d)
                ck_assert_str_eq(why[i], sw);
            else
                ck_assert_msg(memcmp(ri[i], idx[i], H * W) == 0 && memcmp(rp[i], pal[i], K * C) == 0,
                              "context %u of record %u emptied: record %u decoded differently", x, d, i);
        }
        memcpy(tab, saved, sizeof saved);
        tried++;
    }
    ck_assert_uint_ge(tried, 4); /* most records have a context of their own */
    printf("model version %u: empty_context_in_batch: %u of %d records with a context of their own emptied; each "
           "failed alone with the one-record status (%u named the empty context), the others decoded exactly\n",
           g_mv, tried, N, named);
    apd__imodel_free(m);
    for (int i = 0; i < N; i++) {
        free(pal[i]); free(idx[i]); free(body[i]); free(rp[i]); free(ri[i]);
    }
    free(sp); free(si); free(ct); free(one); free(m);
}
END_TEST

int main(void)
{
    /* one case per model version, so that ctest runs them as two tests side by side
       (CK_RUN_CASE=v2 / v1: tests/format/CMakeLists.txt) */
    Suite *s = suite_create("icode");
    for (uint32_t v = 2; v >= 1; v--) {
        TCase *tc = tcase_create(v == 2 ? "v2" : "v1");
        tcase_set_timeout(tc, 600);
        tcase_add_loop_test(tc, every_k_every_geometry, (int)v, (int)v + 1);
        tcase_add_loop_test(tc, every_bit_flip_detected, (int)v, (int)v + 1);
        tcase_add_loop_test(tc, two_records_lockstep, (int)v, (int)v + 1);
        tcase_add_loop_test(tc, n_records_lockstep, (int)v, (int)v + 1);
        tcase_add_loop_test(tc, huge_map_falls_back, (int)v, (int)v + 1);
        tcase_add_loop_test(tc, empty_context_in_batch, (int)v, (int)v + 1);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
