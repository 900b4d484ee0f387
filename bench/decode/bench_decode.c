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
 * Decode, 1 thread, to uint8 RGB HWC: apd_reader_decode vs libpng decoding the same PNGs from
 * memory vs memcpy of the raw RGB (the limit).
 * Targets (issue 2): .apd <= 1.03x payload; >= 25% smaller than palette PNG in LMDB;
 * decode >= 40x libpng and >= 1M images/s/core at 32x32 K=64.
 */
#define _POSIX_C_SOURCE 200809L
#include <lmdb.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "format/format_internal.h"

#include <time.h>

#define IMG 3072
#define NPIX 1024

/* Thread CPU time: the machine is shared (load often > cores), so throughput is measured in
 * CPU seconds of this thread, which is what "images/s per core" means. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

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

static void png_encode(const uint8_t *pal, uint32_t k, const uint8_t *idx, membuf *out)
{
    int depth = k <= 2 ? 1 : k <= 4 ? 2 : k <= 16 ? 4 : 8;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || setjmp(png_jmpbuf(png))) die("png write");
    out->len = 0;
    png_set_write_fn(png, out, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, 32, 32, depth, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_color pc[256];
    for (uint32_t j = 0; j < k; j++) {
        pc[j].red = pal[3 * j];
        pc[j].green = pal[3 * j + 1];
        pc[j].blue = pal[3 * j + 2];
    }
    png_set_PLTE(png, info, pc, (int)k);
    png_write_info(png, info);
    png_set_packing(png);
    uint8_t row[32];
    for (int y = 0; y < 32; y++) {
        memcpy(row, idx + 32 * y, 32);
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

static void png_decode_rgb(const uint8_t *data, size_t len, uint8_t *rgb)
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
    for (int y = 0; y < 32; y++) png_read_row(png, rgb + 96 * y, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
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
} mode;

static void run(const uint8_t *imgs, const uint8_t *labels, size_t n, uint32_t K, int passes,
                const char *dir)
{
    printf("\n== K = %u, %zu images 32x32 RGB (median cut) ==\n", K, n);
    uint8_t *pal = calloc(n, 768), *idx = malloc(n * NPIX);
    uint32_t *ku = malloc(n * sizeof *ku);
    double t0 = apd__now();
    for (size_t i = 0; i < n; i++)
        if (apd_quantize_image(APD_QUANT_MEDIAN_CUT, imgs + i * IMG, 3, 32, 32, K, 0, pal + i * 768,
                               idx + i * NPIX, &ku[i]))
            die("quantize");
    printf("quantize: %.2f s\n", apd__now() - t0);

    /* baselines: raw RGB and palette PNG, one value per image in LMDB */
    uint8_t **vals = malloc(n * sizeof *vals);
    size_t *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        vals[i] = (uint8_t *)(uintptr_t)imgs + i * IMG;
        lens[i] = IMG;
    }
    char lp[512];
    snprintf(lp, sizeof lp, "%s/bench-raw.mdb", dir);
    double raw_lmdb = (double)lmdb_store(lp, vals, lens, n) / n;
    membuf mb = {0};
    uint8_t **pngs = malloc(n * sizeof *pngs);
    size_t *plen = malloc(n * sizeof *plen);
    double png_sum = 0;
    for (size_t i = 0; i < n; i++) {
        png_encode(pal + i * 768, ku[i], idx + i * NPIX, &mb);
        pngs[i] = malloc(mb.len);
        memcpy(pngs[i], mb.p, mb.len);
        plen[i] = mb.len;
        png_sum += (double)mb.len;
    }
    snprintf(lp, sizeof lp, "%s/bench-png.mdb", dir);
    double png_lmdb = (double)lmdb_store(lp, pngs, plen, n) / n;
    uint8_t *out = malloc(IMG), *sink = malloc(IMG), *o2 = malloc(IMG);
    uint64_t chk = 0;
    double best_png = 1e9, best_cpy = 1e9;
    for (int p = 0; p < passes; p++) {
        size_t npng = n < 2000 ? n : 2000; /* libpng is slow: a subset */
        t0 = cpu_now();
        for (size_t i = 0; i < npng; i++) {
            png_decode_rgb(pngs[i], plen[i], out);
            chk += out[i % IMG];
        }
        double t = (cpu_now() - t0) * (double)n / npng;
        best_png = t < best_png ? t : best_png;
        t0 = cpu_now();
        for (size_t i = 0; i < n; i++) {
            memcpy(sink, imgs + i * IMG, IMG);
            chk += sink[i % IMG];
        }
        t = cpu_now() - t0;
        best_cpy = t < best_cpy ? t : best_cpy;
    }
    printf("baselines: raw RGB in LMDB %.1f B/image | palette PNG %.1f B (in LMDB %.1f B/image) | "
           "decode libpng %.0f images/s | memcpy raw %.0f images/s (1 thread, CPU time, best of %d)\n",
           raw_lmdb, png_sum / n, png_lmdb, n / best_png, n / best_cpy, passes);

    /* the palette kernels alone (no LMDB, no CRC): scalar reference vs vector kernels */
    {
        uint32_t bits = apd_bits_for_k(K);
        size_t pb = apd_packed_bytes(NPIX, bits);
        uint8_t *packed = malloc(n * pb);
        for (size_t i = 0; i < n; i++) apd__pack(idx + i * NPIX, NPIX, bits, packed + i * pb);
        static const struct { apd__impl impl; const char *name; } ks[] = {
            {APD__IMPL_SCALAR, "scalar"}, {APD__IMPL_AVX2, "AVX2 gather"}, {APD__IMPL_AVX512, "AVX-512 VBMI"}};
        double t_scalar = 0;
        printf("kernels (unpack + palette look-up to HWC, 1 thread, CPU time):");
        for (size_t q = 0; q < 3; q++) {
            if (!apd__impl_available(ks[q].impl)) continue;
            double best = 1e9;
            for (int p = 0; p < passes; p++) {
                t0 = cpu_now();
                for (size_t i = 0; i < n; i++) {
                    if (apd__pal_decode(ks[q].impl, packed + i * pb, NPIX, bits, pal + i * 768, ku[i], 3,
                                        APD_LAYOUT_HWC, out))
                        die("kernel");
                    chk += out[i % IMG];
                }
                double t = cpu_now() - t0;
                best = t < best ? t : best;
            }
            if (q == 0) t_scalar = best;
            printf(" %s %.0f images/s (%.1fx scalar);", ks[q].name, n / best, t_scalar / best);
        }
        printf("\n");
        free(packed);
    }

    static const mode modes[] = {{"auto (default)", APD_COMPRESS_AUTO, 3},
                                 {"off (speed)", APD_COMPRESS_OFF, 3},
                                 {"on, zstd -19 (size)", APD_COMPRESS_ON, 19}};
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        char path[512];
        snprintf(path, sizeof path, "%s/bench-k%u.apd", dir, K);
        apd_writer_opts o;
        apd_writer_opts_default(&o);
        o.kind = APD_KIND_PALETTE;
        o.c = 3; o.h = 32; o.w = 32; o.k = K; o.n_classes = 10; o.force = 1; o.no_sync = 1;
        o.compress = modes[m].comp;
        o.zstd_level = modes[m].level;
        apd_writer *w;
        apd_err err;
        if (apd_writer_create(&w, path, &o, &err)) die(err.msg);
        t0 = apd__now();
        for (size_t i = 0; i < n; i++)
            if (apd_writer_put_palette(w, pal + i * 768, ku[i], idx + i * NPIX, labels[i], APD_NO_SOURCE_ID))
                die(apd_writer_errmsg(w));
        if (apd_writer_close(w)) die("close");
        double twrite = apd__now() - t0;
        apd_reader *r;
        if (apd_reader_open(&r, path, NULL, &err)) die(err.msg);
        apd_file_stats fs;
        if (apd_reader_stats(r, &fs)) die("stats");
        double payload = (double)fs.payload_bytes / n;
        double apd_env = (double)fs.used_pages * fs.page_size / n;
        double apd_chunks = (double)fs.chunk_db_pages * fs.page_size / n;
        double best = 1e9;
        for (int p = 0; p < passes; p++) {
            t0 = cpu_now();
            for (size_t i = 0; i < n; i++) {
                uint32_t lab;
                if (apd_reader_decode(r, i, APD_LAYOUT_HWC, out, IMG, &lab)) die(apd_reader_errmsg(r));
                chk += out[i % IMG] + lab;
            }
            double t = cpu_now() - t0;
            best = t < best ? t : best;
        }
        for (size_t i = 0; i < n; i += n / 7 + 1) { /* spot check: .apd decode == PNG decode */
            if (apd_reader_decode(r, i, APD_LAYOUT_HWC, out, IMG, NULL)) die("decode");
            png_decode_rgb(pngs[i], plen[i], o2);
            if (memcmp(out, o2, IMG)) die("apd and png decodes differ");
        }
        printf("-- .apd compress %s: write %.2f s\n", modes[m].name, twrite);
        printf("   bytes/image: %.1f on disk (chunks db %.1f, records %.1f; %llu of %zu records zstd, dictionary %llu B)"
               " vs payload %.1f\n",
               apd_env, apd_chunks, (double)fs.stored_bytes / n, (unsigned long long)fs.compressed_records, n,
               (unsigned long long)fs.dict_bytes, payload);
        printf("   size ratios: .apd/payload %.4f (target <= 1.03) | .apd/PNG-in-LMDB %.3f = %.1f%% smaller (target >= 25%%)"
               " | .apd/raw-in-LMDB %.3f\n",
               apd_env / payload, apd_env / png_lmdb, 100.0 * (1 - apd_env / png_lmdb), apd_env / raw_lmdb);
        printf("   decode: %.0f images/s (%.3f us/image) = %.1fx libpng (target >= 40x), %.2fx memcpy; >= 1M images/s: %s\n",
               n / best, 1e6 * best / n, best_png / best, best_cpy / best, n / best >= 1e6 ? "yes" : "no");
        apd_reader_close(r);
        unlink(path);
        char lk[600];
        snprintf(lk, sizeof lk, "%s-lock", path);
        unlink(lk);
    }
    printf("[checksum %llu]\n", (unsigned long long)chk);
    for (size_t i = 0; i < n; i++) free(pngs[i]);
    free(pngs); free(plen); free(vals); free(lens); free(mb.p);
    free(out); free(o2); free(sink); free(pal); free(idx); free(ku);
}

int main(int argc, char **argv)
{
    size_t want = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 10000;
    int passes = argc > 2 ? atoi(argv[2]) : 5;
    char src[1024];
    snprintf(src, sizeof src, "%s/cifar10-dev/train.bin", APD_SHARED_DATA);
    FILE *f = fopen(src, "rb");
    if (!f) {
        perror(src);
        return 1;
    }
    uint8_t *imgs = malloc(want * IMG), *labels = malloc(want), rec[1 + IMG];
    size_t n = 0;
    while (n < want && fread(rec, 1, sizeof rec, f) == sizeof rec) {
        labels[n] = rec[0];
        memcpy(imgs + n * IMG, rec + 1, IMG);
        n++;
    }
    fclose(f);
    if (!n) die("no images");
    char dir[] = "/tmp/apd-bench-XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp");
    printf("bench_decode: %s, %zu images\n", src, n);
    run(imgs, labels, n, 64, passes, dir);
    run(imgs, labels, n, 16, passes, dir);
    rmdir(dir);
    free(imgs);
    free(labels);
    return 0;
}
