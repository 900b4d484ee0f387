/* bench_steps.c: where the eight-record batch decoder spends a record's time, and what the
 * continuous wavefront of index model version 2 (format 1.2) gives against the row groups of
 * version 1 (format 1.1), in one run (docs/index-coding.md, "Where the decode time goes").
 *
 * A 32x32 record decodes in ceil(k c / 8) palette steps plus, with model version 1, 4 groups
 * of w + 7 = 39 index steps: 7 of each group's 39 steps are the ramp, in which some of the 8
 * lanes idle (spec 7.4.2). Model version 2's continuous wavefront, where lane l decodes rows
 * l, l + 8, l + 16, ... one after the other and so never waits for a group to drain, needs
 * 4 w + 7 = 135 index steps. The same model and the same symbols, so the same bytes.
 *
 * Method, in one run: the first N images of CIFAR-10 dev (median cut, K = 64 and K = 16, as
 * bench_decode), decoded eight records per call by apd__icode_decoden (the batch calls'
 * decoder) as 32x32 records, and the same images stacked eight high as 32-wide, 256-high
 * records (one palette per stack, quantized as one image): the same palette steps per
 * record, 32 groups instead of 4. With T(g) = P + g (w + 7) s per record (P: palette steps
 * and per-record work; s: one index step), the two geometries give s and P, and the 32x32
 * record with 135 index steps would take P + 135 s: the prediction, printed next to the
 * measured version-2 decode of the 32x32 records. Thread CPU time, best of alternating passes
 * (the three decodes take turns, so load on the machine hits all alike).
 *
 *   bench_steps [N] [passes]     (N images, default 8192; passes, default 7)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/quant.h"
#include "bench_common.h"
#include "common/internal.h"
#include "common/kernels.h"
#include "format/icode.h"

#define W 32u
#define STACK 8u /* images per tall record */

static void die(const char *what)
{
    fprintf(stderr, "bench_steps: %s\n", what);
    exit(1);
}

/* n records of geometry h x W, quantized, palette-sorted and coded with a model of their own. */
typedef struct {
    uint32_t n, h, k;
    uint8_t *pal, *idx, *body;
    uint32_t *ku;
    size_t *blen, cap;
    apd__imodel m;
    double bytes;
} geo;

static void geo_build(geo *G, const uint8_t *chw, uint32_t n, uint32_t h, uint32_t k, uint32_t ver)
{
    size_t npix = (size_t)h * W;
    G->n = n, G->h = h, G->k = k, G->cap = 2 * (768 + npix) + 64, G->bytes = 0;
    G->pal = calloc(n, 768), G->idx = malloc(n * npix), G->body = malloc(n * G->cap);
    G->ku = malloc(n * sizeof *G->ku), G->blen = malloc(n * sizeof *G->blen);
    apd__icounts *ct = malloc(sizeof *ct);
    if (!G->pal || !G->idx || !G->body || !G->ku || !G->blen || !ct) die("out of memory");
    apd__icounts_init(ct, 3, apd_bits_for_k(k));
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *img = chw + (size_t)i * 3 * npix;
        uint8_t *p = G->pal + (size_t)i * 768, *x = G->idx + i * npix;
        if (apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, 3, h, W, k, 0, p, x, &G->ku[i])) die("quantize");
        apd__ic_sort_palette(p, G->ku[i], 3, x, npix);
        apd__icounts_add(ct, p, G->ku[i], x, h, W);
    }
    if (apd__imodel_build(ct, &G->m)) die("index model");
    G->m.ver = ver;
    free(ct);
    for (uint32_t i = 0; i < n; i++) {
        G->blen[i] = apd__icode_encode(&G->m, G->pal + (size_t)i * 768, G->ku[i], G->idx + i * npix, h, W,
                                       G->body + i * G->cap, G->cap);
        if (!G->blen[i]) die("a record is not codable with its model");
        G->bytes += (double)G->blen[i];
    }
}

/* CPU seconds to decode every record, eight per call; checks the output against the source. */
static double geo_pass(const geo *G, uint8_t *const *pp, uint8_t *const *ii, uint64_t *chk)
{
    size_t npix = (size_t)G->h * W;
    double t0 = bench_thread_cpu();
    for (uint32_t i = 0; i + 8 <= G->n; i += 8) {
        const uint8_t *bb[8];
        size_t ll[8];
        uint32_t kk[8];
        apd_status st[8];
        const char *why[8];
        for (uint32_t q = 0; q < 8; q++) bb[q] = G->body + (size_t)(i + q) * G->cap, ll[q] = G->blen[i + q], kk[q] = G->ku[i + q];
        if (apd__icode_decoden(APD__IMPL_AUTO, &G->m, 8, bb, ll, kk, G->h, W, pp, ii, st, why)) die(why[0]);
        *chk += ii[0][i % npix] + ii[7][(i * 7) % npix];
    }
    double t = bench_thread_cpu() - t0;
    for (uint32_t q = 0; q < 8; q++) /* the last call's records decoded exactly */
        if (memcmp(ii[q], G->idx + (size_t)((G->n & ~7u) - 8 + q) * npix, npix)) die("decoded indices differ");
    return t;
}

int main(int argc, char **argv)
{
    uint32_t want = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 8192;
    int passes = argc > 2 ? atoi(argv[2]) : 7;
    want &= ~(uint32_t)(8 * STACK - 1);
    uint8_t *small = malloc((size_t)want * 3072), *tall = malloc((size_t)want * 3072);
    if (!small || !tall) die("out of memory");
    uint32_t n = (uint32_t)bench_read_cifar(APD_SHARED_DATA, want, small, NULL);
    if (!n) return 1;
    n &= ~(uint32_t)(8 * STACK - 1);
    if (n < 8 * STACK) die("too few images");
    /* stack images j*STACK .. j*STACK+7 vertically: plane ch of the tall image is the planes ch
       of the eight one after the other */
    for (uint32_t j = 0; j < n / STACK; j++)
        for (uint32_t ch = 0; ch < 3; ch++)
            for (uint32_t q = 0; q < STACK; q++)
                memcpy(tall + ((size_t)j * 3 + ch) * STACK * 1024 + q * 1024, small + ((size_t)(j * STACK + q) * 3 + ch) * 1024,
                       1024);

    char model[256];
    bench_cpu_model(model, sizeof model);
    printf("CPU: %s | batch decoder: %s | %u images, %d alternating passes, thread CPU time\n", model,
           apd__icode_batch_kernel(), n, passes);

    static uint8_t pbuf[8][768], ibuf[8][32 * 256];
    uint8_t *pp[8], *ii[8];
    for (int q = 0; q < 8; q++) pp[q] = pbuf[q], ii[q] = ibuf[q];
    uint64_t chk = 0;
    static const uint32_t ks[] = {64, 16};
    for (size_t kq = 0; kq < 2; kq++) {
        uint32_t k = ks[kq];
        geo A, B, C; /* 32x32 version 1, 32x256 version 1, 32x32 version 2 */
        geo_build(&A, small, n, 32, k, 1);
        geo_build(&B, tall, n / STACK, 32 * STACK, k, 1);
        geo_build(&C, small, n, 32, k, 2);
        double ta = 1e9, tb = 1e9, tc = 1e9;
        for (int p = 0; p < passes; p++) {
            double a = geo_pass(&A, pp, ii, &chk), b = geo_pass(&B, pp, ii, &chk), c = geo_pass(&C, pp, ii, &chk);
            ta = a < ta ? a : ta, tb = b < tb ? b : tb, tc = c < tc ? c : tc;
        }
        double ra = ta / A.n, rb = tb / B.n, rc = tc / C.n; /* seconds per record */
        double ga = 4 * (W + 7), gb = 32 * (W + 7);
        double s = (rb - ra) / (gb - ga), P = ra - ga * s;
        double pal_steps = (k * 3 + 7) / 8;
        double cont = P + (4 * W + 7) * s;
        printf("K = %u, model version 1: 32x32 %.1f B/record, %.0f records/s; 32x256 %.1f B/record, %.0f records/s "
               "(%.0f 32x32 images/s)\n",
               k, A.bytes / A.n, 1 / ra, B.bytes / B.n, 1 / rb, STACK / rb);
        printf("  one index step (8 records in lockstep, per record) %.2f ns; the rest of a record (%.0f palette steps,"
               " set-up, checks) %.1f ns = %.0f%% of a 32x32 record\n",
               1e9 * s, pal_steps, 1e9 * P, 100 * P / ra);
        printf("  predicted for 135 index steps instead of 156: %.1f ns per 32x32 record, %.0f images/s, %.3fx\n",
               1e9 * cont, 1 / cont, ra / cont);
        printf("  measured, model version 2 (continuous wavefront): 32x32 %.1f B/record, %.1f ns per record, "
               "%.0f records/s, %.3fx version 1\n",
               C.bytes / C.n, 1e9 * rc, 1 / rc, ra / rc);
        apd__imodel_free(&C.m);
        free(C.pal), free(C.idx), free(C.body), free(C.ku), free(C.blen);
        apd__imodel_free(&A.m), apd__imodel_free(&B.m);
        free(A.pal), free(A.idx), free(A.body), free(A.ku), free(A.blen);
        free(B.pal), free(B.idx), free(B.body), free(B.ku), free(B.blen);
    }
    printf("(checksum %llu)\n", (unsigned long long)chk);
    free(small), free(tall);
    return 0;
}
