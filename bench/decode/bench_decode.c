/* bench_decode.c: storage and decode speed of .apd against its baselines, in one run.
 *
 * Data: the 10000 images of ../shared/data/cifar10-dev/train.bin (CIFAR binary: 1 label byte
 * + 3072 bytes R,G,B planes per record), quantized with median cut (apd_quantize_image) to
 * K = 64 and K = 16 (or the first N images: bench_decode [N] [passes]).
 *
 * Storage, bytes per image from LMDB's own page counts (mdb_env_info last page / mdb_stat):
 *   .apd (whole environment and chunks database) vs payload (palette k*3 + packed indices)
 *   vs raw RGB values in LMDB (one 3072-byte value per image) vs palette PNGs in LMDB (one
 *   PNG per value; libpng, smallest legal bit depth, default zlib level).
 * Decode, 1 thread, to uint8 RGB HWC: apd_reader_decode (one record per call) and
 * apd_reader_decode_batch (256 records per call; the faster of the two is judged) vs libpng decoding the same PNGs from
 * memory vs memcpy of the raw RGB (the limit).
 * Format 1.1 index coding (default auto mode when it pays) is measured in the same table,
 * also for Fashion-MNIST K=16 (/usr/share/datasets/fashion-mnist, first N training images)
 * and, given as a third argument, any palette .apd (e.g. distilled images written by
 * apd-convert --method autopalette): bench_decode [N] [passes] [file.apd]. The 1.1 index
 * decoder is also timed alone (coded bodies in memory, scalar and AVX2, with the time per
 * wavefront step), to tell its share of the decode from LMDB, CRC and palette look-up, and
 * two, four and eight records per call (apd__icode_decode2 and apd__icode_decoden: the index
 * phases in lockstep).
 * Targets: 1.0 plain .apd <= 1.03x payload, >= 25% smaller than palette PNG in LMDB, decode
 * >= 40x libpng and >= 1M images/s/core at 32x32 K=64; 1.1 coded: <= 0.80x payload at K=64
 * and <= 0.70x at K=16, >= 35% smaller than palette PNG in LMDB, >= 500k images/s/core and
 * >= 8x libpng. For coded files the "x libpng" target is judged on a second measurement:
 * libpng and the batch decode of the same 2000 images in alternating passes, so that the
 * machine's drift during the run hits both alike (format 1.2 writes index model version 2;
 * the sizes are those of 1.1).
 */
#define _POSIX_C_SOURCE 200809L
#include <lmdb.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/io.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "format/format_internal.h"
#include "format/icode.h"
#include "bench_common.h"

#include <time.h>

#define IMG 3072
#define NPIX 1024
#define MAXPIX (64 * 64) /* largest image of the generic sets */
#define BATCH 256 /* records per apd_reader_decode_batch call */


static void die(const char *what)
{
    fprintf(stderr, "bench_decode: %s\n", what);
    exit(1);
}

/* ---- PNG in memory ---- */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} membuf;

static void png_mem_write(png_structp png, png_bytep data, png_size_t len)
{
    membuf *m = png_get_io_ptr(png);
    if (m->len + len > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 4096;
        while (nc < m->len + len) nc *= 2;
        m->p = realloc(m->p, nc);
        if (!m->p) die("oom");
        m->cap = nc;
    }
    memcpy(m->p + m->len, data, len);
    m->len += len;
}
static void png_mem_flush(png_structp png) { (void)png; }

static void png_encode(const uint8_t *pal, uint32_t k, uint32_t c, uint32_t h, uint32_t w,
                       const uint8_t *idx, membuf *out)
{
    int depth = k <= 2 ? 1 : k <= 4 ? 2 : k <= 16 ? 4 : 8;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || setjmp(png_jmpbuf(png))) die("png write");
    out->len = 0;
    png_set_write_fn(png, out, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, w, h, depth, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_color pc[256];
    for (uint32_t j = 0; j < k; j++) {
        pc[j].red = pal[c * j];
        pc[j].green = pal[c * j + (c == 3)];
        pc[j].blue = pal[c * j + 2 * (c == 3)];
    }
    png_set_PLTE(png, info, pc, (int)k);
    png_write_info(png, info);
    png_set_packing(png);
    uint8_t row[4096];
    for (uint32_t y = 0; y < h; y++) {
        memcpy(row, idx + (size_t)w * y, w);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
}

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} memrd;
static void png_mem_read(png_structp png, png_bytep data, png_size_t len)
{
    memrd *m = png_get_io_ptr(png);
    if (m->pos + len > m->len) png_error(png, "eof");
    memcpy(data, m->p + m->pos, len);
    m->pos += len;
}

static void png_decode_rgb(const uint8_t *data, size_t len, uint32_t h, uint32_t w, uint8_t *rgb)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || setjmp(png_jmpbuf(png))) die("png read");
    memrd m = {data, len, 0};
    png_set_read_fn(png, &m, png_mem_read);
    png_read_info(png, info);
    png_set_palette_to_rgb(png);
    png_set_packing(png);
    png_read_update_info(png, info);
    for (uint32_t y = 0; y < h; y++) png_read_row(png, rgb + (size_t)3 * w * y, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
}

/* CPU seconds for libpng to decode PNGs 0 .. n-1 (RGB, into out). */
static double time_png(uint8_t *const *pngs, const size_t *plen, size_t n, uint32_t h, uint32_t w, uint8_t *out,
                       size_t img, uint64_t *chk)
{
    double t0 = bench_thread_cpu();
    for (size_t i = 0; i < n; i++) {
        png_decode_rgb(pngs[i], plen[i], h, w, out);
        *chk += out[i % img];
    }
    return bench_thread_cpu() - t0;
}

/* CPU seconds for apd_reader_decode_batch to decode records 0 .. n-1, BATCH per call (uint8
 * HWC, into ob: BATCH images of img bytes). */
static double time_batches(apd_reader *r, size_t n, size_t img, uint8_t *ob, uint64_t *chk)
{
    uint64_t ids[BATCH];
    uint32_t labs[BATCH];
    apd_status sts[BATCH];
    double t0 = bench_thread_cpu();
    for (size_t i0 = 0; i0 < n; i0 += BATCH) {
        size_t nb = n - i0 < BATCH ? n - i0 : BATCH;
        for (size_t q = 0; q < nb; q++) ids[q] = i0 + q;
        if (apd_reader_decode_batch(r, ids, nb, APD_LAYOUT_HWC, ob, img, labs, sts)) die(apd_reader_errmsg(r));
        *chk += ob[i0 % img] + labs[0];
    }
    return bench_thread_cpu() - t0;
}

/* ---- LMDB with one value per image; returns bytes used (pages * psize) ---- */
static uint64_t lmdb_store(const char *path, uint8_t **vals, size_t *lens, size_t n)
{
    unlink(path);
    char lp[600];
    snprintf(lp, sizeof lp, "%s-lock", path);
    unlink(lp);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    if (mdb_env_create(&env) || mdb_env_set_mapsize(env, (size_t)1 << 30) ||
        mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOSYNC, 0644))
        die("lmdb open");
    if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, NULL, 0, &dbi)) die("lmdb txn");
    for (size_t i = 0; i < n; i++) {
        uint8_t key[8];
        for (int b = 0; b < 8; b++) key[b] = (uint8_t)((uint64_t)i >> (56 - 8 * b));
        MDB_val k = {8, key}, v = {lens[i], vals[i]};
        if (mdb_put(txn, dbi, &k, &v, MDB_APPEND)) die("lmdb put");
    }
    if (mdb_txn_commit(txn)) die("lmdb commit");
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    uint64_t bytes = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    mdb_env_close(env);
    unlink(path);
    unlink(lp);
    return bytes;
}

typedef struct {
    const char *name;
    apd_compress comp;
    int level;
    apd_icode ic;
} mode;

/* One set of palette images: pal n*768 (entry-major, c channels), idx n*npix, ku n. */
typedef struct {
    const char *title;
    uint32_t c, h, w, K, n;
    uint8_t *pal, *idx, *labels;
    uint32_t *ku;
    uint8_t *raw;       /* n*c*h*w source pixels (CHW), or NULL */
    double max_ratio;   /* coded target: .apd/payload (0 = none) */
} pset;

/* The 1.1 index decoder alone (apd__icode_decode_impl on bodies in memory: no LMDB, no
 * CRC, no palette look-up), per implementation, with the time per wavefront step: a step
 * decodes one symbol on each of the 8 rANS states, and a record takes ceil(k c / 8) palette
 * steps plus w + 7 steps per group of 8 rows. The model is built from all n images (the
 * writer builds it from its first chunk), so sizes can differ slightly from the file's. */
static void icode_kernel(const pset *S, int passes, uint64_t *chk)
{
    size_t n = S->n, npix = (size_t)S->h * S->w, cap = 2 * (768 + npix) + 64;
    uint32_t bits = apd_bits_for_k(S->K);
    uint8_t *pal = malloc(n * 768), *idx = malloc(n * npix), *body = malloc(n * cap);
    size_t *blen = malloc(n * sizeof *blen);
    apd__icounts *ct = malloc(sizeof *ct);
    apd__imodel *m = malloc(sizeof *m);
    if (!pal || !idx || !body || !blen || !ct || !m) die("oom");
    memcpy(pal, S->pal, n * 768);
    memcpy(idx, S->idx, n * npix);
    apd__icounts_init(ct, S->c, bits);
    for (size_t i = 0; i < n; i++) {
        apd__ic_sort_palette(pal + i * 768, S->ku[i], S->c, idx + i * npix, npix);
        apd__icounts_add(ct, pal + i * 768, S->ku[i], idx + i * npix, S->h, S->w);
    }
    if (apd__imodel_build(ct, m)) die("index model");
    double steps = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        blen[i] = apd__icode_encode(m, pal + i * 768, S->ku[i], idx + i * npix, S->h, S->w, body + i * cap, cap);
        bytes += (double)blen[i];
        steps += (double)((S->ku[i] * S->c + 7) / 8);
        for (uint32_t y0 = 0; y0 < S->h; y0 += 8) steps += S->w + (S->h - y0 < 8 ? S->h - y0 : 8) - 1;
    }
    uint8_t rp[768], ri[MAXPIX];
    static const struct { int impl; const char *name; } ks[] = {{APD__IMPL_SCALAR, "scalar"}, {APD__IMPL_AVX2, "AVX2 8-lane"}};
    printf("1.1 index decoder alone (bodies in memory, %.1f B/image, %.0f steps/image; no LMDB, CRC or palette look-up):",
           bytes / n, steps / n);
    for (size_t q = 0; q < 2; q++) {
        if (!apd__icode_impl_available(ks[q].impl)) continue;
        double best = 1e9;
        for (int p = 0; p < passes; p++) {
            double t0 = bench_thread_cpu();
            for (size_t i = 0; i < n; i++) {
                const char *why;
                if (!blen[i]) continue; /* not codable with this model: stored plain by the writer */
                if (apd__icode_decode_impl(ks[q].impl, m, body + i * cap, blen[i], S->ku[i], S->h, S->w, rp, ri, &why))
                    die(why);
                *chk += ri[i % npix];
            }
            double t = bench_thread_cpu() - t0;
            best = t < best ? t : best;
        }
        printf(" %s %.0f images/s (%.1f ns/step);", ks[q].name, n / best, 1e9 * best / steps);
    }
    if (apd__icode_impl_available(APD__IMPL_AVX2)) { /* the batch paths: two, four and eight records per call */
        uint8_t rp2[768], ri2[MAXPIX];
        double best;
        /* two records per call: what the batch calls do with a leftover pair (AUTO: one
           AVX-512 register set where there is AVX-512), then the AVX2 pair decoder, which the
           batch calls use on CPUs without AVX-512 */
        for (int q2 = 0; q2 < 2; q2++) {
            const int impl2 = q2 ? APD__IMPL_AVX2 : APD__IMPL_AUTO;
            best = 1e9;
            for (int p = 0; p < passes; p++) {
                double t0 = bench_thread_cpu();
                for (size_t i = 0; i + 1 < n; i += 2) {
                    const uint8_t *const bb[2] = {body + i * cap, body + (i + 1) * cap};
                    const size_t ll[2] = {blen[i], blen[i + 1]};
                    const uint32_t kk[2] = {S->ku[i], S->ku[i + 1]};
                    uint8_t *const pp[2] = {rp, rp2}, *const ii[2] = {ri, ri2};
                    apd_status st[2];
                    const char *why[2];
                    if (!blen[i] || !blen[i + 1]) continue;
                    if (apd__icode_decode2(impl2, m, bb, ll, kk, S->h, S->w, pp, ii, st, why)) die(why[0]);
                    *chk += ri[i % npix] + ri2[i % npix];
                }
                double t = bench_thread_cpu() - t0;
                best = t < best ? t : best;
            }
            printf(q2 ? " AVX2 pair %.0f images/s;" : " 2 records per call in lockstep %.0f images/s;",
                   (double)(n & ~(size_t)1) / best);
        }
        /* four and eight at once (apd__icode_decoden: with AVX-512 two records per 16-lane
           register set, two or four sets in lockstep); the batch reader decodes eight */
        static uint8_t rpn[8][768], rin[8][MAXPIX];
        for (uint32_t nr = 4; nr <= 8; nr += 4) {
            best = 1e9;
            for (int p = 0; p < passes; p++) {
                double t0 = bench_thread_cpu();
                for (size_t i = 0; i + nr <= n; i += nr) {
                    const uint8_t *bb[8];
                    size_t ll[8];
                    uint32_t kk[8];
                    uint8_t *pp[8], *ii[8];
                    apd_status st[8];
                    const char *why[8];
                    int skip = 0;
                    for (uint32_t q = 0; q < nr; q++) {
                        bb[q] = body + (i + q) * cap;
                        ll[q] = blen[i + q];
                        kk[q] = S->ku[i + q];
                        pp[q] = rpn[q];
                        ii[q] = rin[q];
                        skip |= !blen[i + q];
                    }
                    if (skip) continue;
                    if (apd__icode_decoden(APD__IMPL_AUTO, m, nr, bb, ll, kk, S->h, S->w, pp, ii, st, why)) die(why[0]);
                    *chk += rin[0][i % npix] + rin[nr - 1][i % npix];
                }
                double t = bench_thread_cpu() - t0;
                best = t < best ? t : best;
            }
            printf(" %u records per call %.0f images/s;", nr, (double)(n - n % nr) / best);
        }
    }
    printf("\n");
    apd__imodel_free(m);
    free(m); free(ct); free(blen); free(body); free(idx); free(pal);
}

static void run(const pset *S, int passes, const char *dir)
{
    size_t n = S->n, npix = (size_t)S->h * S->w, img = npix * S->c;
    uint32_t c = S->c, K = S->K;
    printf("\n== %s: K = %u, %zu images %ux%u %s ==\n", S->title, K, n, S->h, S->w, c == 3 ? "RGB" : "grey");
    double t0;
    /* baselines: raw pixels and palette PNG, one value per image in LMDB */
    uint8_t **vals = malloc(n * sizeof *vals);
    size_t *lens = malloc(n * sizeof *lens);
    double raw_lmdb = 0;
    if (S->raw) {
        for (size_t i = 0; i < n; i++) {
            vals[i] = S->raw + i * img;
            lens[i] = img;
        }
        char lp0[512];
        snprintf(lp0, sizeof lp0, "%s/bench-raw.mdb", dir);
        raw_lmdb = (double)lmdb_store(lp0, vals, lens, n) / n;
    }
    char lp[512];
    membuf mb = {0};
    uint8_t **pngs = malloc(n * sizeof *pngs);
    size_t *plen = malloc(n * sizeof *plen);
    double png_sum = 0;
    for (size_t i = 0; i < n; i++) {
        png_encode(S->pal + i * 768, S->ku[i], c, S->h, S->w, S->idx + i * npix, &mb);
        pngs[i] = malloc(mb.len);
        memcpy(pngs[i], mb.p, mb.len);
        plen[i] = mb.len;
        png_sum += (double)mb.len;
    }
    snprintf(lp, sizeof lp, "%s/bench-png.mdb", dir);
    double png_lmdb = (double)lmdb_store(lp, pngs, plen, n) / n;
    uint8_t *out = malloc(3 * MAXPIX), *sink = malloc(3 * MAXPIX), *o2 = malloc(3 * MAXPIX);
    uint64_t chk = 0;
    double best_png = 1e9, best_cpy = 1e9;
    for (int p = 0; p < passes; p++) {
        size_t npng = n < 2000 ? n : 2000; /* libpng is slow: a subset */
        double t = time_png(pngs, plen, npng, S->h, S->w, out, img, &chk) * (double)n / npng;
        best_png = t < best_png ? t : best_png;
        if (S->raw) {
            t0 = bench_thread_cpu();
            for (size_t i = 0; i < n; i++) {
                memcpy(sink, S->raw + i * img, img);
                chk += sink[i % img];
            }
            t = bench_thread_cpu() - t0;
            best_cpy = t < best_cpy ? t : best_cpy;
        }
    }
    printf("baselines: raw pixels in LMDB %.1f B/image | palette PNG %.1f B (in LMDB %.1f B/image) | "
           "decode libpng %.0f images/s | memcpy raw %.0f images/s (1 thread, CPU time, best of %d)\n",
           raw_lmdb, png_sum / n, png_lmdb, n / best_png, S->raw ? n / best_cpy : 0.0, passes);

    /* the palette kernels alone (no LMDB, no CRC): scalar reference vs vector kernels */
    {
        uint32_t bits = apd_bits_for_k(K);
        size_t pb = apd_packed_bytes(npix, bits);
        uint8_t *packed = malloc(n * pb);
        for (size_t i = 0; i < n; i++) apd__pack(S->idx + i * npix, npix, bits, packed + i * pb);
        static const struct { apd__impl impl; const char *name; } ks[] = {
            {APD__IMPL_SCALAR, "scalar"}, {APD__IMPL_AVX2, "AVX2 gather"}, {APD__IMPL_AVX512, "AVX-512 VBMI"}};
        double t_scalar = 0;
        printf("kernels (unpack + palette look-up to HWC, 1 thread, CPU time):");
        for (size_t q = 0; q < 3; q++) {
            if (!apd__impl_available(ks[q].impl)) continue;
            double best = 1e9;
            for (int p = 0; p < passes; p++) {
                t0 = bench_thread_cpu();
                for (size_t i = 0; i < n; i++) {
                    if (apd__pal_decode(ks[q].impl, packed + i * pb, npix, bits, S->pal + i * 768, S->ku[i], c,
                                        APD_LAYOUT_HWC, out))
                        die("kernel");
                    chk += out[i % img];
                }
                double t = bench_thread_cpu() - t0;
                best = t < best ? t : best;
            }
            if (q == 0) t_scalar = best;
            printf(" %s %.0f images/s (%.1fx scalar);", ks[q].name, n / best, t_scalar / best);
        }
        printf("\n");
        free(packed);
    }

    icode_kernel(S, passes, &chk);

    static const mode modes[] = {{"auto (default: 1.1 index coding when it pays)", APD_COMPRESS_AUTO, 3, APD_ICODE_AUTO},
                                 {"1.0 off (speed)", APD_COMPRESS_OFF, 3, APD_ICODE_OFF},
                                 {"1.0 on, zstd -19 (size)", APD_COMPRESS_ON, 19, APD_ICODE_OFF},
                                 {"1.1 index coding on", APD_COMPRESS_AUTO, 3, APD_ICODE_ON}};
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        char path[512];
        snprintf(path, sizeof path, "%s/bench-k%u.apd", dir, K);
        apd_writer_opts o;
        apd_writer_opts_default(&o);
        o.kind = APD_KIND_PALETTE;
        o.c = c; o.h = S->h; o.w = S->w; o.k = K; o.n_classes = 0; o.force = 1; o.no_sync = 1;
        o.compress = modes[m].comp;
        o.zstd_level = modes[m].level;
        o.index_coding = modes[m].ic;
        apd_writer *w;
        apd_err err;
        if (apd_writer_create(&w, path, &o, &err)) die(err.msg);
        t0 = apd__now();
        for (size_t i = 0; i < n; i++)
            if (apd_writer_put_palette(w, S->pal + i * 768, S->ku[i], S->idx + i * npix, S->labels[i], APD_NO_SOURCE_ID))
                die(apd_writer_errmsg(w));
        if (apd_writer_close(w)) die("close");
        double twrite = apd__now() - t0;
        apd_reader *r;
        if (apd_reader_open(&r, path, NULL, &err)) die(err.msg);
        apd_file_stats fs;
        if (apd_reader_stats(r, &fs)) die("stats");
        apd_file_info fi;
        apd_reader_info(r, &fi);
        double payload = (double)fs.payload_bytes / n;
        double apd_env = (double)fs.used_pages * fs.page_size / n;
        double apd_chunks = (double)fs.chunk_db_pages * fs.page_size / n;
        double best = 1e9, bestf = 1e9, bestb = 1e9, bestbf = 1e9;
        float *fo = malloc(sizeof(float) * img);
        uint8_t *ob = malloc((size_t)BATCH * img);
        float *fob = malloc(sizeof(float) * BATCH * img);
        uint64_t ids[BATCH];
        uint32_t labs[BATCH];
        apd_status sts[BATCH];
        const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.25f, 0.25f, 0.25f};
        for (int p = 0; p < passes; p++) {
            t0 = bench_thread_cpu();
            for (size_t i = 0; i < n; i++) {
                uint32_t lab;
                if (apd_reader_decode(r, i, APD_LAYOUT_HWC, out, img, &lab)) die(apd_reader_errmsg(r));
                chk += out[i % img] + lab;
            }
            double t = bench_thread_cpu() - t0;
            best = t < best ? t : best;
            t0 = bench_thread_cpu();
            for (size_t i = 0; i < n; i++) {
                if (apd_reader_decode_f32(r, i, APD_LAYOUT_CHW, mean, sd, fo, img, NULL)) die(apd_reader_errmsg(r));
                chk += (uint64_t)(fo[i % img] > 0);
            }
            t = bench_thread_cpu() - t0;
            bestf = t < bestf ? t : bestf;
            /* the batch calls (index-coded records two at a time) */
            t = time_batches(r, n, img, ob, &chk);
            bestb = t < bestb ? t : bestb;
            t0 = bench_thread_cpu();
            for (size_t i0 = 0; i0 < n; i0 += BATCH) {
                size_t nb = n - i0 < BATCH ? n - i0 : BATCH;
                for (size_t q = 0; q < nb; q++) ids[q] = i0 + q;
                if (apd_reader_decode_f32_batch(r, ids, nb, APD_LAYOUT_CHW, mean, sd, fob, img, NULL, sts))
                    die(apd_reader_errmsg(r));
                chk += (uint64_t)(fob[i0 % img] > 0);
            }
            t = bench_thread_cpu() - t0;
            bestbf = t < bestbf ? t : bestbf;
        }
        for (size_t i0 = 0; i0 < n; i0 += BATCH) { /* the batch calls give the single calls' bytes */
            size_t nb = n - i0 < BATCH ? n - i0 : BATCH;
            for (size_t q = 0; q < nb; q++) ids[q] = i0 + q;
            if (apd_reader_decode_batch(r, ids, nb, APD_LAYOUT_HWC, ob, img, labs, sts)) die(apd_reader_errmsg(r));
            for (size_t q = 0; q < nb; q++) {
                if (apd_reader_decode(r, i0 + q, APD_LAYOUT_HWC, out, img, NULL)) die("decode");
                if (memcmp(out, ob + q * img, img)) die("batch and single decodes differ");
            }
        }
        free(fo);
        free(fob);
        for (size_t i = 0; i < n; i += n / 7 + 1) { /* spot check: .apd decode == PNG decode */
            if (apd_reader_decode(r, i, APD_LAYOUT_HWC, out, img, NULL)) die("decode");
            png_decode_rgb(pngs[i], plen[i], S->h, S->w, o2);
            for (size_t q = 0; q < npix; q++)
                for (uint32_t ch = 0; ch < c; ch++)
                    if (out[q * c + ch] != o2[3 * q + ch]) die("apd and png decodes differ");
        }
        printf("-- .apd %s: format %u.%u, write %.2f s\n", modes[m].name, fi.version_major, fi.version_minor, twrite);
        printf("   bytes/image: %.1f on disk (chunks db %.1f, records %.1f; %llu of %zu records zstd, dictionary %llu B;"
               " %llu coded, index model %llu B) vs payload %.1f\n",
               apd_env, apd_chunks, (double)fs.stored_bytes / n, (unsigned long long)fs.compressed_records, n,
               (unsigned long long)fs.dict_bytes, (unsigned long long)fs.coded_records,
               (unsigned long long)fs.imodel_bytes, payload);
        int coded = fs.coded_records > 0;
        printf("   size ratios: .apd/payload %.4f (target <= %s) | .apd/PNG-in-LMDB %.3f = %.1f%% smaller (target >= %s)",
               apd_env / payload, coded ? (S->max_ratio > 0 ? (S->max_ratio < 0.75 ? "0.70" : "0.80") : "none") : "1.03",
               apd_env / png_lmdb, 100.0 * (1 - apd_env / png_lmdb), coded ? "35%" : "25%");
        if (S->raw) printf(" | .apd/raw-in-LMDB %.3f", apd_env / raw_lmdb);
        printf("\n");
        /* the targets are judged on the faster of the two call forms */
        double best1 = best;
        best = bestb < best ? bestb : best;
        double ips = n / best;
        printf("   decode u8 HWC: %.0f images/s (%.3f us/image) = %.1fx libpng (target >= %s); >= %s images/s: %s"
               " | one record per call %.0f, batches of %d %.0f | float32 CHW normalised: one per call %.0f,"
               " batches %.0f images/s\n",
               ips, 1e6 * best / n, best_png / best, coded ? "8x" : "40x", coded ? "500k" : "1M",
               ips >= (coded ? 5e5 : 1e6) ? "yes" : "no", n / best1, BATCH, n / bestb,
               n / bestf, n / bestbf);
        double xpng = best_png / best;
        if (coded) {
            /* the "x libpng" target once more, libpng and the batch decode in alternating
               passes over the same images, so that the machine's drift during the run (up
               to 1.5x on shared machines) hits both alike; the target is judged on this */
            size_t nsub = n < 2000 ? n : 2000;
            double tp = 1e9, tc = 1e9;
            for (int p = 0; p < 2 * passes; p++) {
                double t = time_png(pngs, plen, nsub, S->h, S->w, out, img, &chk);
                tp = t < tp ? t : tp;
                t = time_batches(r, nsub, img, ob, &chk);
                tc = t < tc ? t : tc;
            }
            xpng = tp / tc;
            printf("   x libpng, alternating passes (%zu images, best of %d each): batch decode %.0f images/s, libpng %.0f "
                   "images/s = %.2fx libpng\n", nsub, 2 * passes, nsub / tc, nsub / tp, xpng);
        }
        if (coded && S->max_ratio > 0)
            printf("   coded targets: size %s, PNG %s, speed %s, x libpng %s\n",
                   apd_env / payload <= S->max_ratio ? "met" : "MISSED",
                   apd_env / png_lmdb <= 0.65 ? "met" : "MISSED", ips >= 5e5 ? "met" : "MISSED",
                   xpng >= 8 ? "met" : "MISSED");
        free(ob);
        apd_reader_close(r);
        unlink(path);
        char lk[600];
        snprintf(lk, sizeof lk, "%s-lock", path);
        unlink(lk);
    }
    printf("[checksum %llu]\n", (unsigned long long)chk);
    for (size_t i = 0; i < n; i++) free(pngs[i]);
    free(pngs); free(plen); free(vals); free(lens); free(mb.p);
    free(out); free(o2); free(sink);
}

/* Median-cut palette set from n source images (CHW). */
static void quantize_set(pset *S, const uint8_t *imgs, const uint8_t *labels)
{
    size_t npix = (size_t)S->h * S->w;
    S->pal = calloc(S->n, 768);
    S->idx = malloc(S->n * npix);
    S->ku = malloc(S->n * sizeof *S->ku);
    S->labels = malloc(S->n);
    memcpy(S->labels, labels, S->n);
    double t0 = apd__now();
    for (size_t i = 0; i < S->n; i++)
        if (apd_quantize_image(APD_QUANT_MEDIAN_CUT, imgs + i * npix * S->c, S->c, S->h, S->w, S->K, 0,
                               S->pal + i * 768, S->idx + i * npix, &S->ku[i]))
            die("quantize");
    printf("quantize %s K=%u: %.2f s\n", S->title, S->K, apd__now() - t0);
}

static void free_set(pset *S)
{
    free(S->pal); free(S->idx); free(S->ku); free(S->labels);
}

/* Palette records of an existing .apd (e.g. distilled images). */
static int load_apd(pset *S, const char *path)
{
    apd_reader *r;
    apd_err err;
    if (apd_reader_open(&r, path, NULL, &err)) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return -1;
    }
    apd_file_info fi;
    apd_reader_info(r, &fi);
    if (fi.kind != APD_KIND_PALETTE || (size_t)fi.h * fi.w > MAXPIX || fi.w > 4096) {
        apd_reader_close(r);
        fprintf(stderr, "bench_decode: %s: not a palette file of at most %d pixels\n", path, MAXPIX);
        return -1;
    }
    size_t npix = (size_t)fi.h * fi.w;
    S->c = fi.c; S->h = fi.h; S->w = fi.w; S->K = fi.k; S->n = (uint32_t)fi.n_records;
    S->pal = calloc(S->n, 768);
    S->idx = malloc(S->n * npix);
    S->ku = malloc(S->n * sizeof *S->ku);
    S->labels = malloc(S->n);
    for (uint32_t i = 0; i < S->n; i++) {
        uint32_t lab;
        if (apd_reader_record(r, i, S->pal + (size_t)i * 768, &S->ku[i], S->idx + i * npix, &lab)) die(apd_reader_errmsg(r));
        S->labels[i] = (uint8_t)lab;
    }
    apd_reader_close(r);
    return 0;
}

static void print_machine(void)
{
    char model[256];
    bench_cpu_model(model, sizeof model);
    printf("CPU: %s | palette kernels: AVX-512 VBMI %s, AVX2 %s (auto picks the first available)"
           " | 1.1 index decoder: %s; batches: %s\n",
           model, apd__impl_available(APD__IMPL_AVX512) ? "yes" : "no",
           apd__impl_available(APD__IMPL_AVX2) ? "yes" : "no",
           apd__icode_impl_available(APD__IMPL_AVX2) ? "AVX2 8-lane wavefront rANS" : "scalar 8-lane wavefront rANS",
           apd__icode_batch_kernel());
}

int main(int argc, char **argv)
{
    size_t want = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 10000;
    int passes = argc > 2 ? atoi(argv[2]) : 5;
    uint8_t *imgs = malloc(want * IMG), *labels = malloc(want);
    if (!imgs || !labels) die("out of memory");
    size_t n = bench_read_cifar(APD_SHARED_DATA, want, imgs, labels);
    if (!n) return 1;
    char dir[] = "/tmp/apd-bench-XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp");
    printf("bench_decode: %s/cifar10-dev/train.bin, %zu images\n", APD_SHARED_DATA, n);
    print_machine();
    for (int q = 0; q < 2; q++) {
        pset S = {"CIFAR-10 dev median cut", 3, 32, 32, q ? 16u : 64u, (uint32_t)n, NULL, NULL, NULL, NULL, imgs,
                  q ? 0.70 : 0.80};
        quantize_set(&S, imgs, labels);
        run(&S, passes, dir);
        free_set(&S);
    }
    free(imgs);
    free(labels);
    apd_dataset ds;
    memset(&ds, 0, sizeof ds);
    apd_import_opts io = {0, want, NULL, NULL};
    apd_err err;
    if (apd_import(&ds, "fashion-mnist", "train", &io, &err) == APD_OK) {
        uint8_t *fl = malloc(ds.n);
        for (size_t i = 0; i < ds.n; i++) fl[i] = (uint8_t)ds.labels[i];
        pset S = {"Fashion-MNIST median cut", ds.c, ds.h, ds.w, 16, (uint32_t)ds.n, NULL, NULL, NULL, NULL,
                  ds.pixels, 0.70};
        quantize_set(&S, ds.pixels, fl);
        run(&S, passes, dir);
        free_set(&S);
        free(fl);
        apd_dataset_free(&ds);
    } else {
        printf("\n(Fashion-MNIST skipped: %s)\n", err.msg);
    }
    if (argc > 3) {
        pset S = {"given file (palette records as stored)", 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, 0};
        if (load_apd(&S, argv[3]) == 0) {
            run(&S, passes, dir);
            free_set(&S);
        }
    }
    rmdir(dir);
    return 0;
}
