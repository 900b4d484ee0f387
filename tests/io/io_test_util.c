/* io_test_util.c: see io_test_util.h. Test-only code: aborts via ck_assert on setup errors. */
#define _DEFAULT_SOURCE
#include "io_test_util.h"

#include <check.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_tmpdir(const char *tag)
{
    char *p = malloc(1024);
    snprintf(p, 1024, "%s/tests/io/tmp-%s-XXXXXX", APD_BINARY_DIR, tag);
    ck_assert_ptr_nonnull(mkdtemp(p));
    return p;
}

void tu_mkdir(const char *path)
{
    ck_assert_int_eq(mkdir(path, 0755), 0);
}

void tu_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

size_t tu_file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (size_t)st.st_size;
}

void tu_copy(const char *src, const char *dst, size_t n)
{
    size_t size = tu_file_size(src);
    if (n > size) n = size;
    uint8_t *buf = malloc(n ? n : 1);
    FILE *f = fopen(src, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(buf, 1, n, f), n);
    fclose(f);
    tu_write(dst, buf, n);
    free(buf);
}

void tu_rm_rf(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
}

void tu_png_raw(const char *path, uint32_t w, uint32_t h, int color_type, int depth,
                const uint8_t *data, const uint8_t *plte_rgb, int nplte)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(setjmp(png_jmpbuf(png)) == 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (plte_rgb) {
        png_color pl[256];
        for (int i = 0; i < nplte; i++) {
            pl[i].red = plte_rgb[3 * i];
            pl[i].green = plte_rgb[3 * i + 1];
            pl[i].blue = plte_rgb[3 * i + 2];
        }
        png_set_PLTE(png, info, pl, nplte);
    }
    png_write_info(png, info);
    int ch = color_type == PNG_COLOR_TYPE_RGB ? 3 : color_type == PNG_COLOR_TYPE_RGBA ? 4
           : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    for (uint32_t y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(data + y * rowbytes));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

int tu_png_read(const char *path, tu_png *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    out->w = png_get_image_width(png, info);
    out->h = png_get_image_height(png, info);
    out->color_type = png_get_color_type(png, info);
    out->depth = png_get_bit_depth(png, info);
    png_colorp pl;
    if (png_get_PLTE(png, info, &pl, &out->nplte))
        for (int i = 0; i < out->nplte; i++) {
            out->plte[3 * i] = pl[i].red;
            out->plte[3 * i + 1] = pl[i].green;
            out->plte[3 * i + 2] = pl[i].blue;
        }
    if (out->depth < 8) png_set_packing(png);
    png_read_update_info(png, info);
    out->channels = png_get_channels(png, info);
    size_t rb = png_get_rowbytes(png, info);
    out->px = malloc(rb * out->h);
    for (uint32_t y = 0; y < out->h; y++) png_read_row(png, out->px + y * rb, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return 0;
}

void tu_png_free(tu_png *p)
{
    free(p->px);
    p->px = NULL;
}
