/* test_quant.c: the per-image quantizers (apd/quant.h).
 *
 * - median cut against hand-computed cases (arithmetic in the comments) and against
 *   Pillow 9.4's Image.quantize(method=0) on the first 100 images of the fixture
 *   tests/data/cifar10/train.bin
 *   (FNV-1a digests of palette[K] + indices produced once by Pillow; see the comment there);
 * - at most K colours, indices < k_used, unused palette entries zero, for every quantizer;
 * - exact on images with at most K colours;
 * - k-means never worse than median cut, octree sane, on real CIFAR images;
 * - apd_quantize_map against a brute-force nearest search; argument checking.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/quant.h"
#include "common/rng.h"
#include "test_check.h"
#include "test_data.h"

#define CIFAR_TRAIN APD_TEST_CIFAR "/train.bin"

/* Run median cut on a 1 x n grey image and compare palette and indices. */
static void check_grey(const uint8_t *px, uint32_t n, uint32_t k, const uint8_t *want_pal,
                       uint32_t want_k, const uint8_t *want_idx)
{
    uint8_t pal[256], idx[64];
    uint32_t ku = 0;
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, px, 1, 1, n, k, 0, pal, idx, &ku), APD_OK);
    ck_assert_uint_eq(ku, want_k);
    for (uint32_t j = 0; j < want_k; j++) ck_assert_uint_eq(pal[j], want_pal[j]);
    for (uint32_t j = want_k; j < k; j++) ck_assert_uint_eq(pal[j], 0);
    for (uint32_t p = 0; p < n; p++) ck_assert_uint_eq(idx[p], want_idx[p]);
}

/* RGB pixels given as n triples (HWC); converted to CHW for the call. */
static void check_rgb(const uint8_t (*px)[3], uint32_t n, uint32_t k, const uint8_t (*want_pal)[3],
                      uint32_t want_k, const uint8_t *want_idx)
{
    uint8_t chw[3 * 64], pal[256 * 3], idx[64];
    uint32_t ku = 0;
    for (uint32_t p = 0; p < n; p++)
        for (int c = 0; c < 3; c++) chw[c * n + p] = px[p][c];
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, chw, 3, 1, n, k, 0, pal, idx, &ku), APD_OK);
    ck_assert_uint_eq(ku, want_k);
    for (uint32_t j = 0; j < want_k; j++)
        for (int c = 0; c < 3; c++) ck_assert_uint_eq(pal[j * 3 + c], want_pal[j][c]);
    for (uint32_t p = 0; p < n; p++) ck_assert_uint_eq(idx[p], want_idx[p]);
}

/* Case 1, grey, K = 2: 10 x3, 20, 200, 250 (6 px).
 * Walk values high to low accumulating counts until 2*cum > 6: 250 (1), 200 (2), 20 (3),
 * 10 (6: 12 > 6) -> median value 10 = the box minimum, so the high box is {> 10} =
 * {20, 200, 250} and the low box {10 x3}. Palette (high box first): round(470/3 = 156.67)
 * = 157, then 10. Mapping: 20 lies in the high box but |20-10| < |20-157| -> entry 1.
 * Indices 1 1 1 1 0 0. (Pillow 9.4 agrees.) */
START_TEST(mc_hand_grey_min_rule)
{
    static const uint8_t px[] = {10, 10, 10, 20, 200, 250}, pal[] = {157, 10}, idx[] = {1, 1, 1, 1, 0, 0};
    check_grey(px, 6, 2, pal, 2, idx);
}
END_TEST

/* Case 2, grey, K = 3: 0 0 100 100 200 200 250 255 (8 px).
 * Split 1: 255 (1), 250 (2), 200 (4: 8 > 8? no), 100 (6: 12 > 8) -> median 100 > min, so
 * high = {>= 100} (6 px), low = {0, 0} (2 px). Split 2 takes the larger box (6 px):
 * 255 (1), 250 (2), 200 (4: 8 > 6) -> high = {200 200 250 255}, low = {100 100}.
 * Leaves in tree order: {200,200,250,255} mean 905/4 = 226.25 -> 226; {100,100} -> 100;
 * {0,0} -> 0. Every pixel is nearest its own box mean: 2 2 1 1 0 0 0 0. */
START_TEST(mc_hand_grey_two_splits)
{
    static const uint8_t px[] = {0, 0, 100, 100, 200, 200, 250, 255}, pal[] = {226, 100, 0},
                         idx[] = {2, 2, 1, 1, 0, 0, 0, 0};
    check_grey(px, 8, 3, pal, 3, idx);
}
END_TEST

/* Case 3, grey, K = 2, tie keeps the own box: 0 20 30 30 30 (5 px).
 * 30 (3: 6 > 5) -> median 30 > min: high = {30 x3} -> 30, low = {0, 20} -> 10.
 * Pixel 20 is 10 away from both entries; Pillow keeps its own box (entry 1), whereas a
 * plain lowest-index rule would give entry 0. Indices 1 1 0 0 0. */
START_TEST(mc_hand_grey_tie_own_box)
{
    static const uint8_t px[] = {0, 20, 30, 30, 30}, pal[] = {30, 10}, idx[] = {1, 1, 0, 0, 0};
    check_grey(px, 5, 2, pal, 2, idx);
}
END_TEST

/* Case 4, grey, K = 1: one box, palette = round(70/3 = 23.33) = 23. */
START_TEST(mc_hand_k1)
{
    static const uint8_t px[] = {10, 20, 40}, pal[] = {23}, idx[] = {0, 0, 0};
    check_grey(px, 3, 1, pal, 1, idx);
}
END_TEST

/* Case 5, RGB, K = 2, weighted axis choice and nearest remapping:
 * (0,0,0) (100,0,0) (0,60,0) (0,0,255). Ranges weighted: r 100*77 = 7700, g 60*150 = 9000,
 * b 255*29 = 7395 -> split on g (although b has the widest range). Along g: 60 (1),
 * 0 (4: 8 > 4) -> median = min -> high = {g > 0} = {(0,60,0)}, low = the other three, mean
 * (100/3, 0, 255/3) = (33.3, 0, 85) -> (33, 0, 85).
 * Mapping: (0,0,0): own entry 1 at 33^2+85^2 = 8314, entry 0 at 60^2 = 3600 -> 0.
 * (100,0,0): 67^2+85^2 = 11714 vs 100^2+60^2 = 13600 -> 1. (0,0,255): 1. (0,60,0): 0. */
START_TEST(mc_hand_rgb_axis)
{
    static const uint8_t px[][3] = {{0, 0, 0}, {100, 0, 0}, {0, 60, 0}, {0, 0, 255}};
    static const uint8_t pal[][3] = {{0, 60, 0}, {33, 0, 85}};
    static const uint8_t idx[] = {0, 1, 0, 1};
    check_rgb(px, 4, 2, pal, 2, idx);
}
END_TEST

/* Case 6, RGB, K = 3, equal box counts: (0,0,0) (0,0,20) (200,0,0) (200,0,20).
 * Split 1 on r (200*77 > 20*29): r=200 (2: 4 > 4? no), r=0 (4) -> median = min -> high
 * {r = 200} (2 px), low {r = 0} (2 px). Both boxes hold 2 px; Pillow's heap returns the
 * one pushed first (high), which splits on b: b=20 (1: 2 > 2? no), b=0 -> high {(200,0,20)},
 * low {(200,0,0)}. Leaves: (200,0,20), (200,0,0), mean of the r=0 box (0,0,10).
 * Indices 2 2 1 0. (Had the low box been split, the palette would differ.) */
START_TEST(mc_hand_rgb_heap_tie)
{
    static const uint8_t px[][3] = {{0, 0, 0}, {0, 0, 20}, {200, 0, 0}, {200, 0, 20}};
    static const uint8_t pal[][3] = {{200, 0, 20}, {200, 0, 0}, {0, 0, 10}};
    static const uint8_t idx[] = {2, 2, 1, 0};
    check_rgb(px, 4, 3, pal, 3, idx);
}
END_TEST

/* Case 7, grey, K = 3, volume-1 boxes and a remap to a later box:
 * 0 x4, 10, 20, 100, 110 (8 px). Split 1: 110 (1) 100 (2) 20 (3) 10 (4: 8 > 8? no) 0 (8)
 * -> median = min -> high {10,20,100,110} (4), low {0 x4} (4, one colour). The heap pops
 * the high box first: 110 (1) 100 (2) 20 (3: 6 > 4) -> high {20,100,110}, low {10}.
 * Palette: round(230/3 = 76.67) = 77, 10, 0. Pixel 20 (high box) is nearer 10 -> 1. */
START_TEST(mc_hand_grey_remap)
{
    static const uint8_t px[] = {0, 0, 0, 0, 10, 20, 100, 110}, pal[] = {77, 10, 0},
                         idx[] = {2, 2, 2, 2, 1, 1, 0, 0};
    check_grey(px, 8, 3, pal, 3, idx);
}
END_TEST

static uint8_t *load_cifar(uint32_t n, uint8_t *labels)
{
    FILE *f = fopen(CIFAR_TRAIN, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", CIFAR_TRAIN);
    uint8_t *img = malloc((size_t)n * 3072), rec[3073];
    for (uint32_t i = 0; i < n; i++) {
        ck_assert_uint_eq(fread(rec, 1, 3073, f), 3073);
        if (labels) labels[i] = rec[0];
        memcpy(img + (size_t)i * 3072, rec + 1, 3072);
    }
    fclose(f);
    return img;
}

/* Pillow's "L" conversion used for the grey digests: (299 r + 587 g + 114 b) / 1000. */
static void to_grey(const uint8_t *chw, uint8_t *g)
{
    for (int p = 0; p < 1024; p++)
        g[p] = (uint8_t)((chw[p] * 299 + chw[1024 + p] * 587 + chw[2048 + p] * 114) / 1000);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Digests produced once with Pillow 9.4 (python3-pil) by:
 *   for each of the first 100 records of train.bin: im = Image.fromarray(HWC, 'RGB') (or the
 *   grey image above as 'L'); q = im.quantize(colors=K, method=0);
 *   h = fnv1a64(h, palette[:K] (channels c, Pillow pads unused entries with 0) + indices)
 * with h starting at 0xcbf29ce484222325. Our palettes zero unused entries the same way. */
START_TEST(mc_matches_pillow_on_cifar)
{
    static const struct { uint32_t c, k; uint64_t digest; } cases[] = {
        {3, 16, 0x1370a298eea1eb79ull}, {3, 64, 0xcb959f8869e9a8d2ull},
        {3, 256, 0x618f10b35209897full}, {1, 16, 0x40e1f3a7f8733d33ull},
        {1, 4, 0xb44a7cf78623e533ull}};
    uint8_t *img = load_cifar(100, NULL);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        uint32_t c = cases[t].c, k = cases[t].k;
        uint64_t h = 0xcbf29ce484222325ull;
        for (int i = 0; i < 100; i++) {
            uint8_t grey[1024], pal[768], idx[1024];
            uint32_t ku;
            const uint8_t *src = img + (size_t)i * 3072;
            if (c == 1) {
                to_grey(src, grey);
                src = grey;
            }
            ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, src, c, 32, 32, k, 0, pal, idx, &ku), APD_OK);
            for (int p = 0; p < 1024; p++) APD_CK(idx[p] < ku, "image %d pixel %d: index %u >= %u", i, p, idx[p], ku);
            h = fnv(h, pal, (size_t)k * c);
            h = fnv(h, idx, 1024);
        }
        printf("median cut vs Pillow: c=%u K=%u digest %016llx (want %016llx)\n", c, k,
               (unsigned long long)h, (unsigned long long)cases[t].digest);
        ck_assert_msg(h == cases[t].digest, "c=%u K=%u: median cut differs from Pillow", c, k);
    }
    free(img);
}
END_TEST

static uint32_t count_colours(const uint8_t *pal, uint32_t c, const uint8_t *idx, uint32_t npix)
{
    uint8_t seen[256] = {0};
    uint32_t n = 0;
    (void)pal;
    (void)c;
    for (uint32_t p = 0; p < npix; p++)
        if (!seen[idx[p]]) {
            seen[idx[p]] = 1;
            n++;
        }
    return n;
}

/* At most K colours, indices < k_used, unused entries zero: every quantizer, grey and RGB,
 * many K, random and real images. */
START_TEST(at_most_k_colours)
{
    apd__rng r;
    apd__rng_seed(&r, 7, 0);
    uint8_t *real = load_cifar(4, NULL);
    static const uint32_t ks[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 31, 32, 63, 64, 100, 128, 200, 255, 256};
    uint8_t img[3 * 40 * 30], pal[768], idx[40 * 30];
    for (int q = 0; q < 3; q++)
        for (uint32_t c = 1; c <= 3; c += 2)
            for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++)
                for (int src = 0; src < 2; src++) {
                    uint32_t h = src ? 32 : 30, w = src ? 32 : 40, k = ks[t], ku = 0;
                    if (src) memcpy(img, real + 3072 * (t % 4), 3072);
                    else
                        for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)apd__rng_below(&r, 256);
                    memset(pal, 0xAB, sizeof pal);
                    ck_assert_int_eq(apd_quantize_image((apd_quantizer)q, img, c, h, w, k, 1, pal, idx, &ku), APD_OK);
                    ck_assert_uint_ge(ku, 1);
                    ck_assert_uint_le(ku, k);
                    for (uint32_t p = 0; p < h * w; p++) APD_CK(idx[p] < ku, "pixel %u: index %u >= %u", p, idx[p], ku);
                    for (uint32_t j = ku * c; j < k * c; j++) APD_CK(pal[j] == 0, "palette byte %u past %u colours", j, ku);
                    ck_assert_uint_le(count_colours(pal, c, idx, h * w), k);
                }
    free(real);
}
END_TEST

/* Exact on images with at most K colours. */
START_TEST(lossless_when_few_colours)
{
    apd__rng r;
    apd__rng_seed(&r, 11, 0);
    uint8_t img[3 * 24 * 24], pal[768], idx[24 * 24], cols[256][3];
    static const uint32_t ds[] = {1, 2, 3, 5, 16, 17, 64, 200};
    for (int q = 0; q < 3; q++)
        for (uint32_t c = 1; c <= 3; c += 2)
            for (size_t t = 0; t < sizeof ds / sizeof ds[0]; t++) {
                uint32_t d = ds[t], npix = 24 * 24;
                if (c == 1 && d > 200) continue;
                /* d distinct colours (grey: distinct values) */
                for (uint32_t j = 0; j < d; j++) {
                    if (c == 1) cols[j][0] = (uint8_t)(j * 251 % 256);
                    else
                        for (int ch = 0; ch < 3; ch++) cols[j][ch] = (uint8_t)apd__rng_below(&r, 256);
                }
                for (uint32_t p = 0; p < npix; p++) {
                    uint32_t j = p < d ? p : (uint32_t)apd__rng_below(&r, d);
                    for (uint32_t ch = 0; ch < c; ch++) img[ch * npix + p] = cols[j][ch];
                }
                for (uint32_t k = d; k <= APD_MAX_COLORS; k += (k < 64 ? 1 : 37)) {
                    uint32_t ku;
                    ck_assert_int_eq(apd_quantize_image((apd_quantizer)q, img, c, 24, 24, k, 0, pal, idx, &ku), APD_OK);
                    ck_assert_msg(apd_quantize_sse(img, c, 24, 24, pal, idx) == 0,
                                  "quantizer %d c=%u: %u colours, K=%u not exact", q, c, d, k);
                }
            }
}
END_TEST

/* k-means starts from median cut and never increases the error; octree is sane. Prints
 * the mean squared error per channel value of each quantizer over 300 CIFAR images. */
START_TEST(kmeans_not_worse_than_median_cut)
{
    const uint32_t n = 300;
    uint8_t *img = load_cifar(n, NULL);
    static const uint32_t ks[] = {4, 16, 64};
    for (size_t t = 0; t < 3; t++) {
        double tot[3] = {0};
        uint32_t k = ks[t];
        for (uint32_t i = 0; i < n; i++) {
            uint64_t sse[3];
            for (int q = 0; q < 3; q++) {
                uint8_t pal[768], idx[1024];
                uint32_t ku;
                ck_assert_int_eq(apd_quantize_image((apd_quantizer)q, img + (size_t)i * 3072, 3, 32, 32, k, 0, pal, idx, &ku), APD_OK);
                sse[q] = apd_quantize_sse(img + (size_t)i * 3072, 3, 32, 32, pal, idx);
                tot[q] += (double)sse[q] / 3072.0;
            }
            ck_assert_msg(sse[APD_QUANT_KMEANS] <= sse[APD_QUANT_MEDIAN_CUT],
                          "image %u K=%u: kmeans %llu > median cut %llu", i, k,
                          (unsigned long long)sse[2], (unsigned long long)sse[0]);
        }
        printf("K=%3u mean MSE over %u CIFAR images: median-cut %.2f  octree %.2f  kmeans %.2f\n", k,
               n, tot[0] / n, tot[1] / n, tot[2] / n);
        ck_assert(tot[2] < tot[0]);            /* strictly better on average */
        ck_assert(tot[1] < tot[0] * 2.0);      /* octree within 2x of median cut */
    }
    free(img);
}
END_TEST

START_TEST(map_matches_brute_force)
{
    apd__rng r;
    apd__rng_seed(&r, 3, 0);
    uint8_t img[3 * 17 * 13], pal[256 * 3], idx[17 * 13];
    for (uint32_t c = 1; c <= 3; c += 2)
        for (uint32_t k = 1; k <= APD_MAX_COLORS; k = k * 2 + 1) {
            for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)apd__rng_below(&r, 256);
            for (size_t i = 0; i < (size_t)k * c; i++) pal[i] = (uint8_t)apd__rng_below(&r, 8) * 32;
            ck_assert_int_eq(apd_quantize_map(img, c, 17, 13, pal, k, idx), APD_OK);
            for (uint32_t p = 0; p < 17 * 13; p++) {
                uint32_t best = 0, bd = UINT32_MAX;
                for (uint32_t j = 0; j < k; j++) {
                    uint32_t d = 0;
                    for (uint32_t ch = 0; ch < c; ch++) {
                        int e = (int)img[ch * 17 * 13 + p] - (int)pal[j * c + ch];
                        d += (uint32_t)(e * e);
                    }
                    if (d < bd) {
                        bd = d;
                        best = j;
                    }
                }
                ck_assert_uint_eq(idx[p], best);
            }
        }
}
END_TEST

START_TEST(bad_arguments_and_names)
{
    uint8_t img[12] = {0}, pal[768], idx[4];
    uint32_t ku;
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, 3, 2, 2, 0, 0, pal, idx, &ku), APD_EINVAL);
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, 3, 2, 2, APD_MAX_COLORS + 1, 0, pal, idx, &ku), APD_EINVAL);
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, 2, 2, 2, 4, 0, pal, idx, &ku), APD_EINVAL);
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, 3, 0, 2, 4, 0, pal, idx, &ku), APD_EINVAL);
    ck_assert_int_eq(apd_quantize_image((apd_quantizer)9, img, 3, 2, 2, 4, 0, pal, idx, &ku), APD_EINVAL);
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_OCTREE, NULL, 3, 2, 2, 4, 0, pal, idx, &ku), APD_EINVAL);
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_OCTREE, img, 3, 2, 2, 4, 0, pal, idx, NULL), APD_EINVAL);
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_OCTREE, img, 3, 65536, 65536, 4, 0, pal, idx, &ku), APD_EOVERFLOW);
    apd_quantizer q = APD_QUANT_KMEANS;
    ck_assert_int_eq(apd_quantizer_from_name("median-cut", &q), APD_OK);
    ck_assert_int_eq(q, APD_QUANT_MEDIAN_CUT);
    ck_assert_int_eq(apd_quantizer_from_name("octree", &q), APD_OK);
    ck_assert_int_eq(q, APD_QUANT_OCTREE);
    ck_assert_int_eq(apd_quantizer_from_name("kmeans", &q), APD_OK);
    ck_assert_int_eq(q, APD_QUANT_KMEANS);
    ck_assert_int_eq(apd_quantizer_from_name("dither", &q), APD_EINVAL);
    ck_assert_int_eq(q, APD_QUANT_KMEANS);
    ck_assert_str_eq(apd_quantizer_name(APD_QUANT_MEDIAN_CUT), "median-cut");
}
END_TEST

/* Large image (> 65536 colours) takes Pillow's binning path: still at most K colours and
 * deterministic. (Bit-exactness with Pillow there was checked by hand on 300x300 and
 * 400x500 random images and a 256x300 gradient.) */
START_TEST(many_colours_binned)
{
    const uint32_t h = 300, w = 300;
    uint8_t *img = malloc(3 * h * w), *idx = malloc(h * w), *idx2 = malloc(h * w), pal[768], pal2[768];
    apd__rng r;
    apd__rng_seed(&r, 5, 0);
    for (size_t i = 0; i < 3 * h * w; i++) img[i] = (uint8_t)apd__rng_below(&r, 256);
    uint32_t ku, ku2;
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, 3, h, w, 16, 0, pal, idx, &ku), APD_OK);
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, 3, h, w, 16, 0, pal2, idx2, &ku2), APD_OK);
    ck_assert_uint_eq(ku, 16);
    ck_assert_uint_eq(ku2, 16);
    ck_assert_mem_eq(pal, pal2, 48);
    ck_assert_mem_eq(idx, idx2, h * w);
    free(img);
    free(idx);
    free(idx2);
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, mc_hand_grey_min_rule);
    tcase_add_test(t, mc_hand_grey_two_splits);
    tcase_add_test(t, mc_hand_grey_tie_own_box);
    tcase_add_test(t, mc_hand_k1);
    tcase_add_test(t, mc_hand_rgb_axis);
    tcase_add_test(t, mc_hand_rgb_heap_tie);
    tcase_add_test(t, mc_hand_grey_remap);
    tcase_add_test(t, mc_matches_pillow_on_cifar);
    tcase_add_test(t, at_most_k_colours);
    tcase_add_test(t, lossless_when_few_colours);
    tcase_add_test(t, kmeans_not_worse_than_median_cut);
    tcase_add_test(t, map_matches_brute_force);
    tcase_add_test(t, bad_arguments_and_names);
    tcase_add_test(t, many_colours_binned);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(quant_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
