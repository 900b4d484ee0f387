/* test_png.c: the PNG exporters, checked by reading the files back with libpng's classic
 * API (tests/io/io_test_util.c), independently of the writer code.
 * - indexed: every K from 1 to APD_MAX_COLORS (bit depth 1/2/4/8 = smallest legal), grey and RGB
 *   palettes, sizes 1x1, 3x5, 32x32; PLTE and indices must come back exactly;
 * - direct grey/RGB images; contact sheet geometry, cells and white gaps;
 * - bad arguments and unwritable paths.
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/io.h"
#include "common/rng.h"
#include "io_test_util.h"

START_TEST(indexed_round_trip_all_k)
{
    char *dir = tu_tmpdir("png"), path[1200];
    snprintf(path, sizeof path, "%s/r.png", dir);
    static const uint32_t sizes[][2] = {{1, 1}, {3, 5}, {32, 32}};
    apd__rng r;
    apd__rng_seed(&r, 1, 0);
    uint8_t pal[768], idx[1024];
    apd_err e;
    for (uint32_t k = 1; k <= APD_MAX_COLORS; k++)
        for (uint32_t c = 1; c <= 3; c += 2)
            for (int s = 0; s < 3; s++) {
                if (k % 17 != 1 && k > 20 && s != 2 && k != 64 && k != APD_MAX_COLORS) continue; /* keep it quick */
                uint32_t h = sizes[s][0], w = sizes[s][1];
                for (uint32_t i = 0; i < k * c; i++) pal[i] = (uint8_t)apd__rng_below(&r, 256);
                for (uint32_t p = 0; p < h * w; p++) idx[p] = (uint8_t)(p == 0 ? k - 1 : apd__rng_below(&r, k));
                ck_assert_int_eq(apd_png_write_indexed(path, pal, k, c, idx, h, w, &e), APD_OK);
                tu_png t;
                ck_assert_int_eq(tu_png_read(path, &t), 0);
                int want_depth = k <= 2 ? 1 : k <= 4 ? 2 : k <= 16 ? 4 : 8;
                ck_assert_int_eq(t.color_type, PNG_COLOR_TYPE_PALETTE);
                ck_assert_int_eq(t.depth, want_depth);
                ck_assert_int_eq(t.nplte, (int)k);
                ck_assert_uint_eq(t.w, w);
                ck_assert_uint_eq(t.h, h);
                for (uint32_t j = 0; j < k; j++)
                    for (int ch = 0; ch < 3; ch++)
                        ck_assert_uint_eq(t.plte[3 * j + ch], pal[j * c + (c == 3 ? ch : 0)]);
                ck_assert(memcmp(t.px, idx, h * w) == 0);
                tu_png_free(&t);
            }
    /* index out of range */
    idx[0] = 5;
    ck_assert_int_eq(apd_png_write_indexed(path, pal, 5, 3, idx, 1, 1, &e), APD_EINVAL);
    ck_assert_int_eq(apd_png_write_indexed(path, pal, 0, 3, idx, 1, 1, &e), APD_EINVAL);
    ck_assert_int_eq(apd_png_write_indexed(path, pal, APD_MAX_COLORS + 1, 3, idx, 1, 1, &e), APD_EINVAL);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(direct_and_sheet)
{
    char *dir = tu_tmpdir("png2"), path[1200];
    snprintf(path, sizeof path, "%s/d.png", dir);
    apd_err e;
    uint8_t img[3 * 7 * 5];
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 3);
    for (uint32_t c = 1; c <= 3; c += 2) {
        ck_assert_int_eq(apd_png_write_image(path, img, c, 7, 5, &e), APD_OK);
        tu_png t;
        ck_assert_int_eq(tu_png_read(path, &t), 0);
        ck_assert_int_eq(t.color_type, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB);
        ck_assert_int_eq(t.depth, 8);
        for (uint32_t y = 0; y < 7; y++)
            for (uint32_t x = 0; x < 5; x++)
                for (uint32_t k = 0; k < c; k++)
                    ck_assert_uint_eq(t.px[(y * 5 + x) * c + k], img[k * 35 + y * 5 + x]);
        tu_png_free(&t);
    }
    /* sheet: 5 RGB images of 2x3 in 2 columns -> 3 rows: 7 x 8 pixels */
    uint8_t imgs[5 * 18];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 18; j++) imgs[i * 18 + j] = (uint8_t)(i * 40 + j);
    snprintf(path, sizeof path, "%s/s.png", dir);
    ck_assert_int_eq(apd_png_write_sheet(path, imgs, 5, 2, 3, 2, 3, &e), APD_OK);
    tu_png t;
    ck_assert_int_eq(tu_png_read(path, &t), 0);
    ck_assert_uint_eq(t.w, 2 * 3 + 1);
    ck_assert_uint_eq(t.h, 3 * 2 + 2);
    /* image 3 (row 1, col 1) pixel (y=1, x=2) channel G: sheet (y = 3+1, x = 4+2) */
    ck_assert_uint_eq(t.px[(4 * 7 + 6) * 3 + 1], imgs[3 * 18 + 6 + 1 * 3 + 2]);
    /* gap column x = 3 and gap row y = 2 are white; missing 6th cell is white */
    ck_assert_uint_eq(t.px[(0 * 7 + 3) * 3], 255);
    ck_assert_uint_eq(t.px[(2 * 7 + 0) * 3], 255);
    ck_assert_uint_eq(t.px[(7 * 7 + 5) * 3 + 2], 255);
    tu_png_free(&t);
    ck_assert_int_eq(apd_png_write_sheet(path, imgs, 0, 2, 3, 2, 3, &e), APD_EINVAL);
    /* unwritable path */
    ck_assert_int_eq(apd_png_write_image("/nonexistent-dir/x.png", img, 1, 7, 5, &e), APD_ENOENT);
    ck_assert(strstr(e.msg, "/nonexistent-dir/x.png") != NULL);
    tu_rm_rf(dir);
    free(dir);
}
END_TEST

static Suite *png_suite(void)
{
    Suite *s = suite_create("png");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, indexed_round_trip_all_k);
    tcase_add_test(t, direct_and_sheet);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(png_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
