/* io/image.c: reading PNG (libpng) and JPEG (libjpeg API, libjpeg-turbo) files for the
 * folder importer, resizing, and small file helpers.
 *
 * Contract: the kind comes from the extension (.png / .jpg / .jpeg, any case) and must match
 * the file's magic bytes, otherwise APD_EIMAGE ("photo.jpg: not a JPEG file (content looks
 * like PNG)") -- a mislabelled file is a sign of a broken dataset, so we refuse rather than
 * guess. Every decoder error becomes APD_EIMAGE with libpng's / libjpeg's own message and the
 * file name; a JPEG that ends early (libjpeg only warns) is an error too. PNG: palette
 * expanded, 16-bit stripped to 8, sub-8-bit grey expanded, alpha dropped, interlacing
 * handled. JPEG: ISLOW DCT (deterministic), CMYK/YCCK refused.
 *
 * libpng and libjpeg report errors by longjmp; all state that must survive the jump lives in
 * a context struct owned by the caller's frame, never in locals of the setjmp frame.
 */
#define _DEFAULT_SOURCE
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "io/io_internal.h"

void apd__io_warn(const apd_import_opts *o, const char *fmt, ...)
{
    if (!o || !o->warn) return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->warn(o->warn_user, msg);
}

int apd__is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int apd__is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int apd__read_names(const char *path, char (*names)[APD_MAX_CLASS_NAME], uint32_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    uint32_t got = 0;
    while (got < n && fgets(line, sizeof line, f)) {
        char *s = line, *e;
        while (*s && isspace((unsigned char)*s)) s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1])) e--;
        if (e == s) continue;
        size_t len = (size_t)(e - s);
        if (len >= APD_MAX_CLASS_NAME) len = APD_MAX_CLASS_NAME - 1;
        memcpy(names[got], s, len);
        names[got][len] = '\0';
        got++;
    }
    fclose(f);
    return (int)got;
}

/* ---- kind detection ------------------------------------------------------------------ */

static apd__img_kind kind_from_ext(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot) return 0;
    if (!strcasecmp(dot, ".png")) return APD_IMG_PNG;
    if (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")) return APD_IMG_JPEG;
    return 0;
}

static const char *sniff(const uint8_t *b, size_t n)
{
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return "PNG";
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "JPEG";
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "GIF";
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "WebP";
    if (n == 0) return "an empty file";
    return NULL;
}

/* Open path and verify that its content matches kind. */
static apd_status open_checked(const char *path, apd__img_kind kind, FILE **out, apd_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return apd__err_sys(err, errno, path, "cannot open image");
    uint8_t b[16];
    size_t n = fread(b, 1, sizeof b, f);
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        return apd__err_sys(err, e, path, "cannot read image");
    }
    const char *what = sniff(b, n);
    const char *want = kind == APD_IMG_PNG ? "PNG" : "JPEG";
    if (!what || strcmp(what, want)) {
        fclose(f);
        if (what)
            return apd__err_set(err, APD_EIMAGE, "%s: not a %s file (content looks like %s)", path, want, what);
        return apd__err_set(err, APD_EIMAGE, "%s: not a %s file (unrecognised content)", path, want);
    }
    rewind(f);
    *out = f;
    return APD_OK;
}

/* ---- PNG -------------------------------------------------------------------------------- */

typedef struct png_ctx {
    const char *path;
    char msg[256];
    uint8_t *rows;       /* decoded HWC rows */
    png_bytep *rowp;
} png_ctx;

static void png_err_fn(png_structp png, png_const_charp msg)
{
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* decode = 0: header only (fills info); 1: decode into out (c channels, CHW). */
static apd_status png_run(png_ctx *ctx, FILE *f, int decode, uint32_t max_dim, apd__img_info *info,
                          uint32_t c, uint8_t *out, apd_err *err)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_err_fn, png_warn_fn);
    if (!png) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", ctx->path);
    png_infop pi = png_create_info_struct(png);
    if (!pi) {
        png_destroy_read_struct(&png, NULL, NULL);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", ctx->path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &pi, NULL);
        return apd__err_set(err, APD_EIMAGE, "%s: PNG decode error: %s", ctx->path, ctx->msg);
    }
    png_set_user_limits(png, APD_IO_MAX_SOURCE_DIM, APD_IO_MAX_SOURCE_DIM);
    png_init_io(png, f);
    png_read_info(png, pi);
    png_uint_32 w = png_get_image_width(png, pi), h = png_get_image_height(png, pi);
    int ct = png_get_color_type(png, pi), depth = png_get_bit_depth(png, pi);
    if (w > max_dim || h > max_dim) {
        png_destroy_read_struct(&png, &pi, NULL);
        return apd__err_set(err, APD_ELIMIT, "%s: image %ux%u exceeds the limit %u", ctx->path,
                            (unsigned)w, (unsigned)h, (unsigned)max_dim);
    }
    uint32_t grey = !(ct & PNG_COLOR_MASK_COLOR), grey_plte = 0;
    png_colorp plte;
    int nplte = 0;
    if (ct == PNG_COLOR_TYPE_PALETTE && png_get_PLTE(png, pi, &plte, &nplte)) {
        /* a palette of grey entries only is a grey image (what apd-export writes for grey
         * palette records): such a file is grey for the channel count */
        grey_plte = nplte > 0;
        for (int i = 0; i < nplte; i++)
            if (plte[i].red != plte[i].green || plte[i].red != plte[i].blue) grey_plte = 0;
    }
    if (!decode) {
        info->kind = APD_IMG_PNG;
        info->w = w;
        info->h = h;
        info->grey = grey || grey_plte;
        png_destroy_read_struct(&png, &pi, NULL);
        return APD_OK;
    }
    if (w != info->w || h != info->h) {
        png_destroy_read_struct(&png, &pi, NULL);
        return apd__err_set(err, APD_EMISMATCH, "%s: size changed while reading", ctx->path);
    }
    if (depth == 16) png_set_strip_16(png);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (grey && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, pi);
    uint32_t ch = png_get_channels(png, pi);
    if (ch != (grey ? 1u : 3u) || png_get_rowbytes(png, pi) != (size_t)w * ch) {
        png_destroy_read_struct(&png, &pi, NULL);
        return apd__err_set(err, APD_EIMAGE, "%s: unexpected PNG layout after transforms", ctx->path);
    }
    if (!grey && !grey_plte && c == 1) {
        png_destroy_read_struct(&png, &pi, NULL);
        return apd__err_set(err, APD_EINVAL, "%s: colour image into a grey dataset", ctx->path);
    }
    ctx->rows = malloc((size_t)w * h * ch);
    ctx->rowp = malloc(sizeof(png_bytep) * h);
    if (!ctx->rows || !ctx->rowp) {
        png_destroy_read_struct(&png, &pi, NULL);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", ctx->path);
    }
    for (uint32_t y = 0; y < h; y++) ctx->rowp[y] = ctx->rows + (size_t)y * w * ch;
    png_read_image(png, ctx->rowp);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &pi, NULL);
    size_t np = (size_t)w * h;
    for (uint32_t k = 0; k < c; k++)
        for (size_t p = 0; p < np; p++) out[k * np + p] = ctx->rows[p * ch + (ch == 1 ? 0 : k)]; /* grey palette: R */
    return APD_OK;
}

/* ---- JPEG ------------------------------------------------------------------------------- */

typedef struct jpg_err_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int eof; /* premature end of data (libjpeg only warns) */
} jpg_err_mgr;

typedef struct jpg_ctx {
    const char *path;
    struct jpeg_decompress_struct cinfo;
    jpg_err_mgr jerr;
    uint8_t *rows;
} jpg_ctx;

static void jpg_error_exit(j_common_ptr cinfo)
{
    jpg_err_mgr *e = (jpg_err_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

static void jpg_emit(j_common_ptr cinfo, int level)
{
    jpg_err_mgr *e = (jpg_err_mgr *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF && !e->eof) {
        e->eof = 1;
        (*cinfo->err->format_message)(cinfo, e->msg);
    }
}

static apd_status jpg_run(jpg_ctx *ctx, FILE *f, int decode, uint32_t max_dim, apd__img_info *info,
                          uint32_t c, uint8_t *out, apd_err *err)
{
    ctx->cinfo.err = jpeg_std_error(&ctx->jerr.pub);
    ctx->jerr.pub.error_exit = jpg_error_exit;
    ctx->jerr.pub.emit_message = jpg_emit;
    if (setjmp(ctx->jerr.jb)) {
        jpeg_destroy_decompress(&ctx->cinfo);
        return apd__err_set(err, APD_EIMAGE, "%s: JPEG decode error: %s", ctx->path, ctx->jerr.msg);
    }
    jpeg_create_decompress(&ctx->cinfo);
    jpeg_stdio_src(&ctx->cinfo, f);
    jpeg_read_header(&ctx->cinfo, TRUE);
    struct jpeg_decompress_struct *ci = &ctx->cinfo;
    if (ci->num_components != 1 && ci->num_components != 3) {
        jpeg_destroy_decompress(ci);
        return apd__err_set(err, APD_EIMAGE, "%s: JPEG with %d components (CMYK?) is not supported",
                            ctx->path, ci->num_components);
    }
    if (ci->image_width > max_dim || ci->image_height > max_dim) {
        jpeg_destroy_decompress(ci);
        return apd__err_set(err, APD_ELIMIT, "%s: image %ux%u exceeds the limit %u", ctx->path,
                            (unsigned)ci->image_width, (unsigned)ci->image_height, (unsigned)max_dim);
    }
    uint32_t grey = ci->num_components == 1;
    if (!decode) {
        info->kind = APD_IMG_JPEG;
        info->w = ci->image_width;
        info->h = ci->image_height;
        info->grey = grey;
        jpeg_destroy_decompress(ci);
        return APD_OK;
    }
    if (ci->image_width != info->w || ci->image_height != info->h) {
        jpeg_destroy_decompress(ci);
        return apd__err_set(err, APD_EMISMATCH, "%s: size changed while reading", ctx->path);
    }
    if (!grey && c == 1) {
        jpeg_destroy_decompress(ci);
        return apd__err_set(err, APD_EINVAL, "%s: colour image into a grey dataset", ctx->path);
    }
    ci->out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    ci->dct_method = JDCT_ISLOW;
    jpeg_start_decompress(ci);
    uint32_t ch = (uint32_t)ci->output_components, w = ci->output_width, h = ci->output_height;
    if (ch != (grey ? 1u : 3u) || w != info->w || h != info->h) {
        jpeg_destroy_decompress(ci);
        return apd__err_set(err, APD_EIMAGE, "%s: unexpected JPEG output layout", ctx->path);
    }
    ctx->rows = malloc((size_t)w * h * ch);
    if (!ctx->rows) {
        jpeg_destroy_decompress(ci);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", ctx->path);
    }
    while (ci->output_scanline < h) {
        JSAMPROW row = ctx->rows + (size_t)ci->output_scanline * w * ch;
        jpeg_read_scanlines(ci, &row, 1);
    }
    jpeg_finish_decompress(ci);
    jpeg_destroy_decompress(ci);
    if (ctx->jerr.eof)
        return apd__err_set(err, APD_EIMAGE, "%s: JPEG decode error: %s (truncated file)", ctx->path,
                            ctx->jerr.msg);
    size_t np = (size_t)w * h;
    for (uint32_t k = 0; k < c; k++)
        for (size_t p = 0; p < np; p++) out[k * np + p] = ctx->rows[p * ch + (ch == 1 ? 0 : k)]; /* grey palette: R */
    return APD_OK;
}

/* ---- entry points ------------------------------------------------------------------- */

static apd_status image_run(const char *path, int decode, uint32_t max_dim, apd__img_info *info,
                            uint32_t c, uint8_t *out, apd_err *err)
{
    apd__img_kind kind = decode ? info->kind : kind_from_ext(path);
    if (!kind) return apd__err_set(err, APD_EIMAGE, "%s: not a .png/.jpg/.jpeg file", path);
    FILE *f = NULL;
    APD_TRY(open_checked(path, kind, &f, err));
    apd_status s;
    if (kind == APD_IMG_PNG) {
        png_ctx ctx = {.path = path};
        s = png_run(&ctx, f, decode, max_dim, info, c, out, err);
        free(ctx.rows);
        free(ctx.rowp);
    } else {
        jpg_ctx *ctx = calloc(1, sizeof *ctx);
        if (!ctx) {
            fclose(f);
            return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
        }
        ctx->path = path;
        s = jpg_run(ctx, f, decode, max_dim, info, c, out, err);
        free(ctx->rows);
        free(ctx);
    }
    fclose(f);
    return s;
}

apd_status apd__image_probe(const char *path, uint32_t max_dim, apd__img_info *info, apd_err *err)
{
    return image_run(path, 0, max_dim, info, 0, NULL, err);
}

apd_status apd__image_decode(const char *path, const apd__img_info *info, uint32_t c, uint8_t *out,
                             apd_err *err)
{
    apd__img_info tmp = *info;
    return image_run(path, 1, APD_IO_MAX_SOURCE_DIM, &tmp, c, out, err);
}

/* ---- resize ------------------------------------------------------------------------------
 * Area averaging with exact integers: along an axis of n source pixels resized to m, measure
 * positions in units of 1/m source pixel... equivalently source pixel i spans [i*m, (i+1)*m)
 * and output pixel o spans [o*n, (o+1)*n); the weight of i in o is the overlap length (an
 * integer) and the weights of one output sum to n. Two separable passes give weights summing
 * to h*w; the result is rounded half up. Works for up- and down-scaling (upscaling then
 * replicates pixels, blending only where a source edge falls inside an output pixel). */
typedef struct axis_taps {
    uint32_t *first; /* first source index per output */
    uint32_t *count; /* taps per output */
    uint32_t *wt;    /* weights, `stride` per output */
    uint32_t stride;
} axis_taps;

static int taps_build(axis_taps *t, uint32_t n, uint32_t m, uint32_t o0, uint32_t cnt)
{
    t->stride = n / m + 2;
    t->first = malloc(sizeof(uint32_t) * cnt);
    t->count = malloc(sizeof(uint32_t) * cnt);
    t->wt = malloc(sizeof(uint32_t) * (size_t)cnt * t->stride);
    if (!t->first || !t->count || !t->wt) return 0;
    for (uint32_t j = 0; j < cnt; j++) {
        uint64_t lo = (uint64_t)(o0 + j) * n, hi = lo + n;
        uint32_t i = (uint32_t)(lo / m), k = 0;
        t->first[j] = i;
        for (; (uint64_t)i * m < hi && i < n; i++) {
            uint64_t a = (uint64_t)i * m, b = a + m;
            uint64_t s = a > lo ? a : lo, e = b < hi ? b : hi;
            t->wt[(size_t)j * t->stride + k++] = (uint32_t)(e - s);
        }
        t->count[j] = k;
    }
    return 1;
}

static void taps_free(axis_taps *t)
{
    free(t->first);
    free(t->count);
    free(t->wt);
}

apd_status apd__resize_crop(const uint8_t *src, uint32_t c, uint32_t h, uint32_t w, uint32_t size,
                            uint8_t *dst)
{
    uint32_t nh, nw;
    if (h <= w) {
        nh = size;
        nw = (uint32_t)(((uint64_t)w * size + h / 2) / h);
    } else {
        nw = size;
        nh = (uint32_t)(((uint64_t)h * size + w / 2) / w);
    }
    if (nw < size) nw = size;
    if (nh < size) nh = size;
    uint32_t oy = (nh - size) / 2, ox = (nw - size) / 2;
    axis_taps tx = {0}, ty = {0};
    uint32_t *tmp = malloc(sizeof(uint32_t) * (size_t)h * size);
    apd_status s = APD_ENOMEM;
    if (!tmp || !taps_build(&tx, w, nw, ox, size) || !taps_build(&ty, h, nh, oy, size)) goto out;
    uint64_t den = (uint64_t)h * w;
    for (uint32_t ch = 0; ch < c; ch++) {
        const uint8_t *sp = src + (size_t)ch * h * w;
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < size; x++) {
                uint32_t acc = 0;
                const uint8_t *row = sp + (size_t)y * w + tx.first[x];
                const uint32_t *wt = tx.wt + (size_t)x * tx.stride;
                for (uint32_t k = 0; k < tx.count[x]; k++) acc += wt[k] * row[k];
                tmp[(size_t)y * size + x] = acc;
            }
        uint8_t *dp = dst + (size_t)ch * size * size;
        for (uint32_t y = 0; y < size; y++)
            for (uint32_t x = 0; x < size; x++) {
                uint64_t acc = 0;
                const uint32_t *wt = ty.wt + (size_t)y * ty.stride;
                for (uint32_t k = 0; k < ty.count[y]; k++)
                    acc += (uint64_t)wt[k] * tmp[(size_t)(ty.first[y] + k) * size + x];
                dp[(size_t)y * size + x] = (uint8_t)((acc + den / 2) / den);
            }
    }
    s = APD_OK;
out:
    free(tmp);
    taps_free(&tx);
    taps_free(&ty);
    return s;
}
