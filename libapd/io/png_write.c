/* io/png_write.c: PNG exporters (apd/io.h): indexed PNG per palette record, direct grey/RGB
 * PNG, contact sheet.
 *
 * Indexed PNGs use the smallest legal palette bit depth (1, 2, 4 or 8) with 2^depth >= k;
 * rows are given to libpng one index per byte and packed by png_set_packing. Grey palettes
 * are written as PLTE triplets (g, g, g): PNG has no grey palette, and an indexed file keeps
 * the record's exact entry order, which a grey PNG would not. A failed write removes the
 * partial file.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>

#include "io/io_internal.h"

typedef struct wctx {
    const char *path;
    char msg[256];
    FILE *f;
    uint8_t *row;
} wctx;

static void w_err(png_structp png, png_const_charp msg)
{
    wctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void w_warn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Row source: fills row (w bytes per channel sample, interleaved) for row y. */
typedef void (*row_fn)(const void *u, uint32_t y, uint8_t *row);

static apd_status write_png(wctx *ctx, uint32_t w, uint32_t h, int color_type, int depth,
                            const png_color *plte, int nplte, uint32_t row_bytes, row_fn fn,
                            const void *u, apd_err *err)
{
    ctx->f = fopen(ctx->path, "wb");
    if (!ctx->f) return apd__err_sys(err, errno, ctx->path, "cannot create PNG");
    ctx->row = malloc(row_bytes ? row_bytes : 1);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, w_err, w_warn);
    png_infop pi = png ? png_create_info_struct(png) : NULL;
    if (!ctx->row || !png || !pi) {
        png_destroy_write_struct(&png, pi ? &pi : NULL);
        fclose(ctx->f);
        remove(ctx->path);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", ctx->path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &pi);
        fclose(ctx->f);
        remove(ctx->path);
        return apd__err_set(err, APD_EIO, "%s: PNG write error: %s", ctx->path, ctx->msg);
    }
    png_init_io(png, ctx->f);
    png_set_IHDR(png, pi, w, h, depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (plte) png_set_PLTE(png, pi, plte, nplte);
    png_write_info(png, pi);
    if (depth < 8) png_set_packing(png);
    for (uint32_t y = 0; y < h; y++) {
        fn(u, y, ctx->row);
        png_write_row(png, ctx->row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &pi);
    int bad = ferror(ctx->f);
    if (fclose(ctx->f) != 0 || bad) {
        int e = errno;
        remove(ctx->path);
        return apd__err_sys(err, e ? e : EIO, ctx->path, "write error");
    }
    return APD_OK;
}

typedef struct idx_src {
    const uint8_t *indices;
    uint32_t w;
} idx_src;

static void idx_row(const void *u, uint32_t y, uint8_t *row)
{
    const idx_src *s = u;
    memcpy(row, s->indices + (size_t)y * s->w, s->w);
}

apd_status apd_png_write_indexed(const char *path, const uint8_t *palette, uint32_t k, uint32_t c,
                                 const uint8_t *indices, uint32_t h, uint32_t w, apd_err *err)
{
    if (!path || !palette || !indices || k == 0 || k > APD_MAX_COLORS || (c != 1 && c != 3) || !h || !w)
        return apd__err_set(err, APD_EINVAL, "%s: bad arguments for an indexed PNG", path ? path : "?");
    size_t np = (size_t)h * w;
    for (size_t p = 0; p < np; p++)
        if (indices[p] >= k)
            return apd__err_set(err, APD_EINVAL, "%s: pixel %zu has index %u >= %u palette entries", path, p,
                                indices[p], k);
    int depth = k <= 2 ? 1 : k <= 4 ? 2 : k <= 16 ? 4 : 8;
    png_color plte[APD_MAX_COLORS];
    for (uint32_t j = 0; j < k; j++) {
        plte[j].red = palette[j * c];
        plte[j].green = palette[j * c + (c == 3 ? 1 : 0)];
        plte[j].blue = palette[j * c + (c == 3 ? 2 : 0)];
    }
    wctx ctx = {.path = path};
    idx_src src = {indices, w};
    apd_status s = write_png(&ctx, w, h, PNG_COLOR_TYPE_PALETTE, depth, plte, (int)k, w, idx_row, &src, err);
    free(ctx.row);
    return s;
}

typedef struct chw_src {
    const uint8_t *chw;
    uint32_t c, h, w;
} chw_src;

static void chw_row(const void *u, uint32_t y, uint8_t *row)
{
    const chw_src *s = u;
    size_t plane = (size_t)s->h * s->w;
    for (uint32_t x = 0; x < s->w; x++)
        for (uint32_t k = 0; k < s->c; k++) row[x * s->c + k] = s->chw[k * plane + (size_t)y * s->w + x];
}

apd_status apd_png_write_image(const char *path, const uint8_t *chw, uint32_t c, uint32_t h, uint32_t w,
                               apd_err *err)
{
    if (!path || !chw || (c != 1 && c != 3) || !h || !w || h > 1u << 20 || w > 1u << 20)
        return apd__err_set(err, APD_EINVAL, "%s: bad arguments for a PNG", path ? path : "?");
    wctx ctx = {.path = path};
    chw_src src = {chw, c, h, w};
    apd_status s = write_png(&ctx, w, h, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, NULL, 0, w * c,
                             chw_row, &src, err);
    free(ctx.row);
    return s;
}

typedef struct sheet_src {
    const uint8_t *images;
    uint32_t n, cols, c, h, w;
} sheet_src;

static void sheet_row(const void *u, uint32_t y, uint8_t *row)
{
    const sheet_src *s = u;
    uint32_t W = s->cols * s->w + s->cols - 1;
    memset(row, 255, (size_t)W * s->c);
    if ((y + 1) % (s->h + 1) == 0) return; /* gap row */
    uint32_t r = y / (s->h + 1), yy = y % (s->h + 1);
    size_t img = (size_t)s->c * s->h * s->w, plane = (size_t)s->h * s->w;
    for (uint32_t col = 0; col < s->cols; col++) {
        uint64_t i = (uint64_t)r * s->cols + col;
        if (i >= s->n) break;
        const uint8_t *p = s->images + i * img;
        uint8_t *d = row + (size_t)col * (s->w + 1) * s->c;
        for (uint32_t x = 0; x < s->w; x++)
            for (uint32_t k = 0; k < s->c; k++) d[x * s->c + k] = p[k * plane + (size_t)yy * s->w + x];
    }
}

apd_status apd_png_write_sheet(const char *path, const uint8_t *images, uint32_t n, uint32_t cols, uint32_t c,
                               uint32_t h, uint32_t w, apd_err *err)
{
    if (!path || !images || !n || !cols || (c != 1 && c != 3) || !h || !w)
        return apd__err_set(err, APD_EINVAL, "%s: bad arguments for a contact sheet", path ? path : "?");
    uint32_t rows = (n + cols - 1) / cols;
    uint64_t W = (uint64_t)cols * w + cols - 1, H = (uint64_t)rows * h + rows - 1;
    if (W > (1u << 20) || H > (1u << 20))
        return apd__err_set(err, APD_ELIMIT, "%s: contact sheet of %llux%llu pixels is too large", path,
                            (unsigned long long)W, (unsigned long long)H);
    wctx ctx = {.path = path};
    sheet_src src = {images, n, cols, c, h, w};
    apd_status s = write_png(&ctx, (uint32_t)W, (uint32_t)H, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8,
                             NULL, 0, (uint32_t)(W * c), sheet_row, &src, err);
    free(ctx.row);
    return s;
}
