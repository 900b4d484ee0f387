/* apd_mktest.c: writes .apd files for the loader's C tests, the Python tests and the bench.
 *
 *   apd_mktest synth OUT N [--c C] [--hw S] [--k K] [--classes NC] [--corrupt I]...
 *       N palette records of C x S x S (default 3 x 8 x 8), K max colours (default 16),
 *       label i % NC (default 10); record i has k = 1 + (i*7) % K colours and palette and
 *       indices drawn from apd__rng(12345, i) (test_loader_file.c recomputes them).
 *       --corrupt I (repeatable): after writing, flip one byte inside record I's palette in
 *       the file, so that reading it fails its checksum.
 *   apd_mktest cifar OUT BIN K [LIMIT]
 *       CIFAR-10 binary records (1 label byte + 3072 CHW bytes) quantized to K colours with
 *       median cut (quant.h) into a palette .apd (the bench's data).
 *   apd_mktest direct OUT BIN [LIMIT]
 *       the same images as direct-colour records (a real test set for examples).
 * Exit 0 on success, 1 on error (message on stderr), 2 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/format.h"
#include "apd/quant.h"
#include "common/rng.h"

static int usage(void)
{
    fprintf(stderr, "usage: apd_mktest synth OUT N [--c C] [--hw S] [--k K] [--classes NC] "
                    "[--corrupt I]...\n       apd_mktest cifar OUT BIN K [LIMIT]\n"
                    "       apd_mktest direct OUT BIN [LIMIT]\n");
    return 2;
}

/* The marker written into the palette of records to corrupt (found again in the file). */
static void marker(uint8_t m[16], uint64_t i)
{
    memcpy(m, "APDCORRUPT", 10);
    for (int b = 0; b < 6; b++) m[10 + b] = (uint8_t)(i >> (8 * b));
}

static int flip(const char *path, uint64_t rec)
{
    FILE *f = fopen(path, "r+b");
    if (!f) { perror(path); return 1; }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)sz);
    if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) { fclose(f); free(buf); return 1; }
    uint8_t m[16];
    marker(m, rec);
    for (long p = 0; p + 16 <= sz; p++)
        if (memcmp(buf + p, m, 16) == 0) {
            uint8_t b = (uint8_t)(buf[p + 12] ^ 0x5A);
            fseek(f, p + 12, SEEK_SET);
            fwrite(&b, 1, 1, f);
            fclose(f);
            free(buf);
            return 0;
        }
    fprintf(stderr, "%s: marker of record %llu not found (compressed?)\n", path,
            (unsigned long long)rec);
    fclose(f);
    free(buf);
    return 1;
}

static int synth(int argc, char **argv)
{
    if (argc < 4) return usage();
    const char *out = argv[2];
    uint64_t n = strtoull(argv[3], NULL, 10);
    uint32_t c = 3, s = 8, K = 16, nc = 10;
    uint64_t corrupt[64];
    int n_corrupt = 0;
    for (int a = 4; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--c")) c = (uint32_t)atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--hw")) s = (uint32_t)atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--k")) K = (uint32_t)atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--classes")) nc = (uint32_t)atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--corrupt") && n_corrupt < 64)
            corrupt[n_corrupt++] = strtoull(argv[a + 1], NULL, 10);
        else return usage();
    }
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.c = c; o.h = s; o.w = s; o.kind = APD_KIND_PALETTE; o.k = K; o.n_classes = nc;
    o.force = 1;
    o.compress = APD_COMPRESS_OFF;
    for (int i = 0; i < 3; i++) { o.mean[i] = 0.5f; o.std[i] = 0.25f; }
    o.dataset_name = "synthetic";
    apd_writer *w;
    apd_err err;
    if (apd_writer_create(&w, out, &o, &err) != APD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    apd_writer_set_meta(w, "method", "\"synthetic\"");
    apd_writer_set_meta(w, "seed", "12345");
    uint8_t pal[APD_MAX_COLORS * 3], *idx = malloc((size_t)s * s);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t k = 1 + (uint32_t)((i * 7) % K);
        apd__rng r;
        apd__rng_seed(&r, 12345, i);
        memset(pal, 0, sizeof pal);
        for (uint32_t j = 0; j < k * c; j++) pal[j] = (uint8_t)apd__rng_u64(&r);
        for (uint32_t p = 0; p < s * s; p++) idx[p] = (uint8_t)apd__rng_below(&r, k);
        for (int q = 0; q < n_corrupt; q++)
            if (corrupt[q] == i) {
                if (k * c < 16) { fprintf(stderr, "record %llu: palette too small to mark\n", (unsigned long long)i); return 1; }
                marker(pal, i);
            }
        if (apd_writer_put_palette(w, pal, k, idx, (uint32_t)(i % nc), i) != APD_OK) {
            fprintf(stderr, "%s\n", apd_writer_errmsg(w));
            return 1;
        }
    }
    free(idx);
    if (apd_writer_close(w) != APD_OK) {
        fprintf(stderr, "%s: close failed\n", out);
        return 1;
    }
    for (int q = 0; q < n_corrupt; q++)
        if (flip(out, corrupt[q])) return 1;
    return 0;
}

static int cifar(int argc, char **argv, int direct)
{
    if (argc < (direct ? 4 : 5)) return usage();
    const char *out = argv[2], *bin = argv[3];
    uint32_t K = direct ? 0 : (uint32_t)atoi(argv[4]);
    uint64_t limit = argc > (direct ? 4 : 5) ? strtoull(argv[direct ? 4 : 5], NULL, 10) : 0;
    FILE *f = fopen(bin, "rb");
    if (!f) { perror(bin); return 1; }
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.c = 3; o.h = 32; o.w = 32; o.kind = direct ? APD_KIND_DIRECT : APD_KIND_PALETTE;
    o.k = K; o.n_classes = 10; o.force = 1;
    o.compress = APD_COMPRESS_OFF;
    /* CIFAR-10 train statistics */
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2470f, 0.2435f, 0.2616f};
    for (int i = 0; i < 3; i++) { o.mean[i] = mean[i]; o.std[i] = std[i]; }
    o.dataset_name = "cifar10-dev";
    apd_writer *w;
    apd_err err;
    if (apd_writer_create(&w, out, &o, &err) != APD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        fclose(f);
        return 1;
    }
    apd_writer_set_meta(w, "method", direct ? "\"direct\"" : "\"quantize\"");
    uint8_t rec[3073], pal[APD_MAX_COLORS * 3], idx[1024];
    uint64_t n = 0;
    while ((!limit || n < limit) && fread(rec, 1, sizeof rec, f) == sizeof rec) {
        apd_status st;
        if (direct) {
            st = apd_writer_put_direct(w, rec + 1, rec[0], n);
        } else {
            uint32_t ku = 0;
            st = apd_quantize_image(APD_QUANT_MEDIAN_CUT, rec + 1, 3, 32, 32, K, n, pal, idx, &ku);
            if (st == APD_OK) st = apd_writer_put_palette(w, pal, ku, idx, rec[0], n);
        }
        if (st != APD_OK) {
            fprintf(stderr, "record %llu: %s %s\n", (unsigned long long)n, apd_strerror(st),
                    apd_writer_errmsg(w));
            fclose(f);
            return 1;
        }
        n++;
    }
    fclose(f);
    if (apd_writer_close(w) != APD_OK) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    if (!strcmp(argv[1], "synth")) return synth(argc, argv);
    if (!strcmp(argv[1], "cifar")) return cifar(argc, argv, 0);
    if (!strcmp(argv[1], "direct")) return cifar(argc, argv, 1);
    return usage();
}
