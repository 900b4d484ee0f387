/* test_loader.c: the loader's contract on an in-memory source (no files):
 * partition rule (equal batch counts, exactly-once / documented padding), permutation
 * (seeded by (seed, epoch)), decoded values for every output layout, threads and prefetch
 * giving identical batches, state round trip, elastic resume (world 2 -> 3), class subset,
 * corrupt records (fail naming the key / skip and count), and the shared pixel kernels at
 * 8-bit indices against a per-pixel reference. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/loader.h"
#include "common/rng.h"
#include "common/kernels.h"
#include "loader/loader_internal.h"
#include "mem_source.h"

static apd_loader *open_mem(mem_src *m, const apd_loader_opts *o)
{
    apd__loader_source s = mem_source(m);
    apd_loader *l = NULL;
    apd_err err;
    apd_status st = apd__loader_open_source(&l, &s, "mem.apd", o, &err);
    ck_assert_msg(st == APD_OK, "open: %s", err.msg);
    return l;
}

static mem_src mk(uint64_t n)
{
    mem_src m = {n, 3, 4, 5, 10, 64, 1, NULL};
    return m;
}

/* Run the rest of the epoch; append record indices to idx (cap entries); return count. */
static size_t drain(apd_loader *l, uint64_t *idx, size_t cap, size_t *batches, uint32_t *sizes)
{
    size_t tot = 0, nb = 0;
    uint64_t bs[4096];
    int64_t lab[4096];
    for (;;) {
        size_t n = 0;
        apd_status st = apd_loader_next(l, NULL, 0, lab, bs, &n);
        ck_assert_msg(st == APD_OK, "next: %s", apd_loader_errmsg(l));
        if (n == 0) break;
        ck_assert_uint_le(tot + n, cap);
        memcpy(idx + tot, bs, n * sizeof *bs);
        if (sizes) sizes[nb] = (uint32_t)n;
        for (size_t i = 0; i < n; i++) ck_assert_int_eq(lab[i], (int64_t)(bs[i] % 10));
        tot += n;
        nb++;
    }
    if (batches) *batches = nb;
    return tot;
}

START_TEST(partition_rule)
{
    static const uint64_t ns[] = {0, 1, 5, 7, 100, 1000, 1001, 1023};
    static const uint32_t bs[] = {1, 3, 32};
    long cases = 0;
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < 3; b++)
            for (uint32_t W = 1; W <= 4; W++)
                for (int dl = 0; dl <= 1; dl++) {
                    uint64_t N = ns[a];
                    uint32_t B = bs[b];
                    uint32_t *seen = calloc(N + 1, sizeof *seen);
                    uint64_t steps0 = apd_loader_partition(N, 0, B, W, dl, 0, 0, NULL, NULL);
                    for (uint32_t r = 0; r < W; r++) {
                        uint64_t steps = apd_loader_partition(N, 0, B, W, dl, r, 0, NULL, NULL);
                        ck_assert_uint_eq(steps, steps0); /* equal batch counts */
                        for (uint64_t s = 0; s < steps; s++) {
                            uint64_t f, f0;
                            uint32_t c, c0;
                            apd_loader_partition(N, 0, B, W, dl, r, s, &f, &c);
                            apd_loader_partition(N, 0, B, W, dl, 0, s, &f0, &c0);
                            ck_assert_uint_eq(c, c0); /* equal batch sizes per step */
                            ck_assert_uint_ge(c, 1);
                            for (uint32_t i = 0; i < c; i++) seen[(f + i) % N]++;
                        }
                    }
                    uint64_t per = (uint64_t)B * W;
                    uint64_t dup = 0, miss = 0;
                    for (uint64_t p = 0; p < N; p++) {
                        if (seen[p] == 0) miss++;
                        if (seen[p] > 1) dup += seen[p] - 1;
                        if (N >= W) ck_assert_uint_le(seen[p], 2); /* wrap repeats only if N < W */
                    }
                    if (dl) {
                        ck_assert_uint_eq(steps0, N / per);
                        ck_assert_uint_eq(dup, 0);
                        ck_assert_uint_eq(miss, N % per);
                        for (uint64_t p = 0; p < N; p++) ck_assert_uint_eq(seen[p], p < N - N % per);
                    } else {
                        ck_assert_uint_eq(steps0, (N + per - 1) / per);
                        ck_assert_uint_eq(miss, 0);
                        ck_assert_uint_lt(dup, W); /* at most W-1 padded samples */
                        if (W == 1) ck_assert_uint_eq(dup, 0);
                        if (N >= W)
                            for (uint64_t p = 0; p < dup; p++) ck_assert_uint_eq(seen[p], 2);
                    }
                    free(seen);
                    cases++;
                }
    printf("partition_rule: %ld cases\n", cases);
}
END_TEST

START_TEST(permutation_seeded)
{
    enum { N = 1000 };
    uint64_t *a = malloc(N * 8), *b = malloc(N * 8), *c = malloc(N * 8);
    apd_loader_permutation(a, N, 7, 0, 1);
    apd_loader_permutation(b, N, 7, 0, 1);
    ck_assert_mem_eq(a, b, N * 8); /* repeats by seed */
    apd_loader_permutation(c, N, 7, 1, 1);
    ck_assert(memcmp(a, c, N * 8) != 0); /* differs by epoch */
    apd_loader_permutation(c, N, 8, 0, 1);
    ck_assert(memcmp(a, c, N * 8) != 0); /* differs by seed */
    uint8_t *seen = calloc(N, 1);
    for (int i = 0; i < N; i++) {
        ck_assert_uint_lt(a[i], N);
        ck_assert_uint_eq(seen[a[i]], 0);
        seen[a[i]] = 1;
    }
    apd_loader_permutation(c, N, 7, 0, 0);
    for (int i = 0; i < N; i++) ck_assert_uint_eq(c[i], (uint64_t)i);
    free(a); free(b); free(c); free(seen);
}
END_TEST

/* Every sample exactly once per epoch over ranks, for several thread/prefetch set-ups; the
 * epoch order does not depend on the world size. */
START_TEST(ranks_exactly_once)
{
    enum { N = 1200, B = 25 }; /* 1200 divisible by 25*W for W = 1..4: no padding */
    mem_src m = mk(N);
    uint64_t *ref = malloc(N * 8);
    apd_loader_permutation(ref, N, 3, 2, 1);
    for (uint32_t W = 1; W <= 4; W++)
        for (int cfg = 0; cfg < 3; cfg++) {
            uint8_t *seen = calloc(N, 1);
            uint64_t nb0 = 0;
            for (uint32_t r = 0; r < W; r++) {
                apd_loader_opts o;
                apd_loader_opts_default(&o);
                o.batch_size = B; o.seed = 3; o.epoch = 2; o.rank = r; o.world_size = W;
                o.threads = cfg == 0 ? 1 : 2;
                o.prefetch = cfg == 2 ? 3 : 0;
                apd_loader *l = open_mem(&m, &o);
                uint64_t *got = malloc(N * 8);
                size_t nb = 0;
                size_t n = drain(l, got, N, &nb, NULL);
                if (r == 0) nb0 = nb;
                ck_assert_uint_eq(nb, nb0);
                ck_assert_uint_eq(nb, apd_loader_batches_per_epoch(l));
                ck_assert_uint_eq(n, N / W);
                for (size_t i = 0; i < n; i++) {
                    /* batch t of rank r = positions t*W*B + r*B + j of the global order */
                    size_t t = i / B, j = i % B;
                    ck_assert_uint_eq(got[i], ref[t * W * B + r * B + j]);
                    ck_assert_uint_eq(seen[got[i]], 0);
                    seen[got[i]] = 1;
                }
                apd_loader_state st;
                apd_loader_get_state(l, &st);
                ck_assert_uint_eq(st.epoch, 3);
                ck_assert_uint_eq(st.cursor, 0);
                free(got);
                apd_loader_close(l);
            }
            for (int i = 0; i < N; i++) ck_assert_uint_eq(seen[i], 1);
            free(seen);
        }
    free(ref);
}
END_TEST

START_TEST(padding_uneven)
{
    /* N = 103, B = 10, W = 4: 2 full steps (80), then 23 left -> b = 6 per rank, 1 padded. */
    enum { N = 103 };
    mem_src m = mk(N);
    uint32_t cnt[N] = {0};
    for (uint32_t r = 0; r < 4; r++) {
        apd_loader_opts o;
        apd_loader_opts_default(&o);
        o.batch_size = 10; o.rank = r; o.world_size = 4; o.seed = 9;
        apd_loader *l = open_mem(&m, &o);
        uint64_t got[200];
        uint32_t sizes[10];
        size_t nb;
        size_t n = drain(l, got, 200, &nb, sizes);
        ck_assert_uint_eq(nb, 3);
        ck_assert_uint_eq(sizes[2], 6);
        ck_assert_uint_eq(n, 26);
        for (size_t i = 0; i < n; i++) cnt[got[i]]++;
        apd_loader_close(l);
    }
    uint64_t perm[N];
    apd_loader_permutation(perm, N, 9, 0, 1);
    for (int i = 0; i < N; i++) ck_assert_uint_eq(cnt[perm[i]], i == 0 ? 2u : 1u);
}
END_TEST

static void expect_image(const mem_src *m, uint64_t rec, uint32_t out, const void *img,
                         const float *mean, const float *std, double *maxerr)
{
    size_t hw = (size_t)m->h * m->w;
    uint8_t px[3 * 64];
    mem_pixels_chw(m, rec, px);
    for (uint32_t ch = 0; ch < m->c; ch++)
        for (size_t p = 0; p < hw; p++) {
            uint8_t v = px[ch * hw + p];
            if (out == APD_OUT_U8_CHW) ck_assert_uint_eq(((const uint8_t *)img)[ch * hw + p], v);
            else if (out == APD_OUT_U8_HWC) ck_assert_uint_eq(((const uint8_t *)img)[p * m->c + ch], v);
            else {
                double want = ((double)v / 255.0 - mean[ch]) / std[ch];
                double e = fabs(((const float *)img)[ch * hw + p] - want);
                if (e > *maxerr) *maxerr = e;
                ck_assert_msg(e < 1e-5, "float pixel off by %g", e);
            }
        }
}

START_TEST(decoded_values)
{
    double maxerr = 0;
    for (int pal = 0; pal <= 1; pal++)
        for (uint32_t out = 0; out <= 2; out++)
            for (uint32_t c = 1; c <= 3; c += 2) {
                mem_src m = mk(97);
                m.c = c;
                m.palette = pal;
                apd_loader_opts o;
                apd_loader_opts_default(&o);
                o.batch_size = 16; o.output = out; o.threads = 2;
                if (out == APD_OUT_F32_CHW && c == 3) {
                    o.custom_norm = 1;
                    o.mean[0] = 0.5f; o.mean[1] = 0.4f; o.mean[2] = 0.3f;
                    o.std[0] = 0.25f; o.std[1] = 0.2f; o.std[2] = 0.3f;
                }
                apd_loader *l = open_mem(&m, &o);
                float mean[3], std[3];
                apd_loader_norm(l, mean, std);
                ck_assert_uint_eq(apd_loader_image_bytes(l), (size_t)c * 20 * (out == 2 ? 4 : 1));
                uint8_t *buf = malloc(apd_loader_batch_bytes(l));
                int64_t lab[16];
                uint64_t idx[16];
                size_t n, total = 0;
                while (apd_loader_next(l, buf, apd_loader_batch_bytes(l), lab, idx, &n) == APD_OK && n) {
                    for (size_t i = 0; i < n; i++) {
                        ck_assert_int_eq(lab[i], (int64_t)(idx[i] % 10));
                        expect_image(&m, idx[i], out, buf + i * apd_loader_image_bytes(l), mean, std,
                                     &maxerr);
                    }
                    total += n;
                }
                ck_assert_uint_eq(total, 97);
                free(buf);
                apd_loader_close(l);
            }
    printf("decoded_values: max float error %.3g\n", maxerr);
}
END_TEST

/* Save the state after k batches; a fresh loader restored to it (different threads and
 * prefetch) produces bit-identical following batches; epochs continue identically. */
START_TEST(state_round_trip)
{
    enum { N = 500, B = 32 };
    mem_src m = mk(N);
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.batch_size = B; o.seed = 42; o.threads = 1;
    apd_loader *a = open_mem(&m, &o);
    size_t bb = apd_loader_batch_bytes(a);
    uint8_t *x = malloc(bb), *y = malloc(bb);
    int64_t la[B], lb[B];
    size_t na, nb;
    for (int i = 0; i < 5; i++) ck_assert(apd_loader_next(a, x, bb, la, NULL, &na) == APD_OK);
    apd_loader_state st;
    apd_loader_get_state(a, &st);
    ck_assert_uint_eq(st.cursor, 5 * B);
    ck_assert_uint_eq(st.n, N);
    o.threads = 2; o.prefetch = 2; o.seed = 0;
    apd_loader *b = open_mem(&m, &o);
    ck_assert(apd_loader_set_state(b, &st) == APD_OK);
    int batches = 0;
    for (int i = 0; i < 40; i++) { /* crosses two epoch ends */
        ck_assert(apd_loader_next(a, x, bb, la, NULL, &na) == APD_OK);
        ck_assert(apd_loader_next(b, y, bb, lb, NULL, &nb) == APD_OK);
        ck_assert_uint_eq(na, nb);
        ck_assert_mem_eq(x, y, na * apd_loader_image_bytes(a));
        ck_assert_mem_eq(la, lb, na * sizeof la[0]);
        batches += na > 0;
    }
    apd_loader_state sa, sb;
    apd_loader_get_state(a, &sa);
    apd_loader_get_state(b, &sb);
    ck_assert_mem_eq(&sa, &sb, sizeof sa);
    ck_assert_uint_ge(sa.epoch, 2);
    /* A mismatched state is refused. */
    st.n = N + 1;
    ck_assert(apd_loader_set_state(b, &st) == APD_EMISMATCH);
    ck_assert(strstr(apd_loader_errmsg(b), "samples") != NULL);
    printf("state_round_trip: %d identical batches\n", batches);
    free(x); free(y);
    apd_loader_close(a);
    apd_loader_close(b);
}
END_TEST

/* World 2 -> 3: 2 ranks consume 7 steps, save; 3 ranks finish the epoch: every sample of
 * the epoch exactly once (N chosen so that the tail needs no padding). */
START_TEST(elastic_resume)
{
    enum { N = 1000, B = 20 };
    mem_src m = mk(N);
    uint8_t seen[N] = {0};
    apd_loader_state st = {0, 0, 0, 0};
    for (uint32_t r = 0; r < 2; r++) {
        apd_loader_opts o;
        apd_loader_opts_default(&o);
        o.batch_size = B; o.seed = 5; o.rank = r; o.world_size = 2;
        apd_loader *l = open_mem(&m, &o);
        uint64_t idx[B];
        size_t n;
        for (int s = 0; s < 7; s++) {
            ck_assert(apd_loader_next(l, NULL, 0, NULL, idx, &n) == APD_OK);
            ck_assert_uint_eq(n, B);
            for (size_t i = 0; i < n; i++) seen[idx[i]]++;
        }
        apd_loader_state s2;
        apd_loader_get_state(l, &s2);
        if (r == 0) st = s2;
        ck_assert_mem_eq(&st, &s2, sizeof st); /* every rank holds the same state */
        apd_loader_close(l);
    }
    ck_assert_uint_eq(st.cursor, 7 * 2 * B);
    size_t total = 0;
    for (uint32_t r = 0; r < 3; r++) {
        apd_loader_opts o;
        apd_loader_opts_default(&o);
        o.batch_size = B; o.rank = r; o.world_size = 3; o.threads = 2;
        apd_loader *l = open_mem(&m, &o);
        ck_assert(apd_loader_set_state(l, &st) == APD_OK);
        uint64_t got[N];
        size_t n = drain(l, got, N, NULL, NULL);
        for (size_t i = 0; i < n; i++) seen[got[i]]++;
        total += n;
        apd_loader_close(l);
    }
    /* 720 left, 3*20 per step: 12 steps exactly. */
    ck_assert_uint_eq(total, N - 7 * 2 * B);
    for (int i = 0; i < N; i++) ck_assert_uint_eq(seen[i], 1);
}
END_TEST

START_TEST(class_subset)
{
    enum { N = 300 };
    mem_src m = mk(N);
    uint32_t cls[2] = {7, 2};
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.batch_size = 8; o.classes = cls; o.n_classes_subset = 2;
    apd_loader *l = open_mem(&m, &o);
    ck_assert_uint_eq(apd_loader_num_samples(l), 60);
    uint64_t got[N];
    size_t n = drain(l, got, N, NULL, NULL);
    ck_assert_uint_eq(n, 60);
    uint8_t seen[N] = {0};
    for (size_t i = 0; i < n; i++) {
        ck_assert(got[i] % 10 == 7 || got[i] % 10 == 2);
        ck_assert_uint_eq(seen[got[i]]++, 0);
    }
    apd_loader_close(l);
    uint32_t badc = 10;
    o.classes = &badc; o.n_classes_subset = 1;
    apd__loader_source s = mem_source(&m);
    apd_err err;
    ck_assert(apd__loader_open_source(&l, &s, "mem.apd", &o, &err) == APD_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert(strstr(err.msg, "class 10") != NULL);
}
END_TEST

START_TEST(corrupt_records)
{
    enum { N = 64 };
    uint8_t bad[N] = {0};
    bad[5] = bad[40] = 1;
    mem_src m = mk(N);
    m.corrupt = bad;
    for (int threads = 1; threads <= 2; threads++) {
        apd_loader_opts o;
        apd_loader_opts_default(&o);
        o.batch_size = 16; o.shuffle = 0; o.threads = (uint32_t)threads;
        apd_loader *l = open_mem(&m, &o);
        uint8_t *buf = malloc(apd_loader_batch_bytes(l));
        size_t n;
        apd_status st = apd_loader_next(l, buf, apd_loader_batch_bytes(l), NULL, NULL, &n);
        ck_assert_int_eq(st, APD_ECHECKSUM);
        ck_assert_msg(strstr(apd_loader_errmsg(l), "record 5 (key 00000005)") != NULL, "%s",
                      apd_loader_errmsg(l));
        ck_assert_int_eq(apd_loader_next(l, buf, apd_loader_batch_bytes(l), NULL, NULL, &n),
                         APD_EBADSTATE);
        apd_loader_state s0 = {0, 0, 16, N};
        ck_assert(apd_loader_set_state(l, &s0) == APD_OK); /* un-poisons; skip batch 0 */
        ck_assert(apd_loader_next(l, buf, apd_loader_batch_bytes(l), NULL, NULL, &n) == APD_OK);
        ck_assert_uint_eq(n, 16);
        apd_loader_close(l);

        o.skip_corrupt = 1; o.prefetch = (uint32_t)threads - 1; o.output = APD_OUT_U8_CHW;
        l = open_mem(&m, &o);
        uint64_t idx[16];
        size_t total = 0;
        double me = 0;
        while (apd_loader_next(l, buf, apd_loader_batch_bytes(l), NULL, idx, &n) == APD_OK && n) {
            for (size_t i = 0; i < n; i++) {
                ck_assert(idx[i] != 5 && idx[i] != 40);
                expect_image(&m, idx[i], APD_OUT_U8_CHW, buf + i * apd_loader_image_bytes(l),
                             NULL, NULL, &me);
            }
            total += n;
        }
        ck_assert_uint_eq(total, N - 2);
        ck_assert_uint_eq(apd_loader_skipped(l), 2);
        free(buf);
        apd_loader_close(l);
    }
}
END_TEST

START_TEST(bad_options)
{
    mem_src m = mk(10);
    apd__loader_source s = mem_source(&m);
    apd_loader *l = (apd_loader *)1;
    apd_err err;
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.rank = 2; o.world_size = 2;
    ck_assert(apd__loader_open_source(&l, &s, "mem.apd", &o, &err) == APD_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert(strstr(err.msg, "rank 2") != NULL);
    apd_loader_opts_default(&o);
    o.batch_size = 0;
    ck_assert(apd__loader_open_source(&l, &s, "mem.apd", &o, &err) == APD_EINVAL);
    apd_loader_opts_default(&o);
    o.output = 9;
    ck_assert(apd__loader_open_source(&l, &s, "mem.apd", &o, &err) == APD_EINVAL);
    apd_loader_opts_default(&o);
    o.batch_size = 4;
    l = open_mem(&m, &o);
    uint8_t small[10];
    size_t n;
    ck_assert(apd_loader_next(l, small, sizeof small, NULL, NULL, &n) == APD_EBUFSIZE);
    apd_loader_close(l);
    apd_loader_close(NULL);
}
END_TEST

/* The loader's palette path (use_records: palette + unpacked indices) decodes with the shared
 * kernels of common/kernels.h at 8 bits per index. Every kernel family this CPU has must give
 * the bytes / float bits of a plain per-pixel reference, write nothing past c*n values, and
 * reject an index >= k. */
START_TEST(kernels_match_reference)
{
    static const uint32_t ks[] = {1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255,
                                  APD_MAX_COLORS};
    static const size_t ns[] = {1, 15, 16, 17, 63, 64, 65, 1000, 1024};
    static const apd__impl impls[] = {APD__IMPL_SCALAR, APD__IMPL_AVX2, APD__IMPL_AVX512};
    apd__rng r;
    apd__rng_seed(&r, 1, 2);
    uint8_t pal[APD_MAX_COLORS * 3], idx[1024], o1[3136], o2[3136];
    float f1[3 * 1024 + 16], f2[3 * 1024];
    float mean[3] = {0.49f, 0.48f, 0.45f}, std[3] = {0.25f, 0.24f, 0.26f};
    int checks = 0;
    float worst = 0;
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (uint32_t c = 1; c <= 3; c += 2) {
                uint32_t k = ks[a];
                size_t n = ns[b];
                for (size_t i = 0; i < sizeof pal; i++) pal[i] = (uint8_t)apd__rng_u64(&r);
                for (size_t p = 0; p < n; p++) idx[p] = (uint8_t)apd__rng_below(&r, k);
                for (size_t m = 0; m < sizeof impls / sizeof impls[0]; m++) {
                    if (!apd__impl_available(impls[m])) continue;
                    for (int chw = 0; chw <= 1; chw++) {
                        for (size_t p = 0; p < n; p++)
                            for (uint32_t ch = 0; ch < c; ch++)
                                o2[chw ? ch * n + p : p * c + ch] = pal[idx[p] * c + ch];
                        memset(o1, 0xAB, sizeof o1);
                        ck_assert_int_eq(apd__pal_decode(impls[m], idx, n, 8, pal, k, c, chw, o1), 0);
                        ck_assert_mem_eq(o1, o2, c * n);
                        ck_assert_uint_eq(o1[c * n], 0xAB); /* no write past the end */
                    }
                    for (size_t p = 0; p < n; p++)
                        for (uint32_t ch = 0; ch < c; ch++)
                            f2[ch * n + p] = apd__norm_f32(pal[idx[p] * c + ch], mean[ch], std[ch]);
                    f1[c * n] = 12345.0f;
                    ck_assert_int_eq(apd__pal_decode_f32(impls[m], idx, n, 8, pal, k, c, mean, std, f1), 0);
                    for (size_t q = 0; q < c * n; q++) {
                        float d = fabsf(f1[q] - f2[q]);
                        if (!(d <= worst)) worst = d;
                    }
                    ck_assert_mem_eq(f1, f2, c * n * sizeof(float));
                    ck_assert(f1[c * n] == 12345.0f);
                    if (k < APD_MAX_COLORS) { /* an index >= k is refused */
                        uint8_t save = idx[n - 1];
                        idx[n - 1] = (uint8_t)k;
                        ck_assert_int_eq(apd__pal_decode(impls[m], idx, n, 8, pal, k, c, 0, o1), -1);
                        ck_assert_int_eq(apd__pal_decode_f32(impls[m], idx, n, 8, pal, k, c, mean, std, f1), -1);
                        idx[n - 1] = save;
                    }
                    checks++;
                }
            }
    /* uint8 -> normalised float (direct records): the formula's bits, and the palette path's
     * bits for the same value (a grey palette holding every value). */
    uint8_t all[300], grey[APD_MAX_COLORS];
    float g1[300], g2[300];
    for (int v = 0; v < 300; v++) all[v] = (uint8_t)(v * 37 + 11);
    for (uint32_t v = 0; v < APD_MAX_COLORS; v++) grey[v] = (uint8_t)v;
    for (int ch = 0; ch < 3; ch++)
        for (size_t m = 0; m < sizeof impls / sizeof impls[0]; m++) {
            if (!apd__impl_available(impls[m])) continue;
            apd__u8_norm_f32(impls[m], all, 300, mean[ch], std[ch], g1);
            ck_assert_int_eq(apd__pal_decode_f32(impls[m], all, 300, 8, grey, APD_MAX_COLORS, 1,
                                                 &mean[ch], &std[ch], g2), 0);
            ck_assert_mem_eq(g1, g2, sizeof g1);
            for (int v = 0; v < 300; v++) ck_assert(g1[v] == apd__norm_f32(all[v], mean[ch], std[ch]));
        }
    printf("kernels_match_reference: %d cases bit-identical (best family %d), max float diff %g\n",
           checks, (int)apd__impl_best(), (double)worst);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, partition_rule);
    tcase_add_test(t, permutation_seeded);
    tcase_add_test(t, ranks_exactly_once);
    tcase_add_test(t, padding_uneven);
    tcase_add_test(t, decoded_values);
    tcase_add_test(t, state_round_trip);
    tcase_add_test(t, elastic_resume);
    tcase_add_test(t, class_subset);
    tcase_add_test(t, corrupt_records);
    tcase_add_test(t, bad_options);
    tcase_add_test(t, kernels_match_reference);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
