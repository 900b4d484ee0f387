/* spec_dump.c: helper of the spec conformance test (tests/spec_reader.py).
 *
 *   spec_dump DIR    writes test files DIR/<name>.apd covering the format's features (palette
 *                    RGB and grey, several index widths, multiple chunks, source ids, zstd
 *                    records with and without a trained dictionary, direct colour, index
 *                    coding and soft labels of format 1.1) and, for
 *                    each, DIR/<name>.dump: what the C reader decodes, which spec_reader.py
 *                    must reproduce byte for byte from the spec alone.
 *
 * Dump layout (little-endian): "APDDUMP2", u64 n, u32 c, u32 h, u32 w, u32 s (n_classes when
 * the file announces soft labels, else 0), then per record: u32 label, u64 source id
 * (2^64-1 = none), when s > 0 u8 present and s float32 (the stored vector, or the one-hot
 * vector of the label when the record stores none), then c*h*w bytes of HWC pixels.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/format.h"
#include "common/internal.h"
#include "common/rng.h"

static void die(const char *m)
{
    fprintf(stderr, "spec_dump: %s\n", m);
    exit(1);
}

typedef struct {
    const char *name;
    uint32_t kind, c, h, w, k, n, per_chunk;
    apd_compress comp;
    int smooth; /* compressible content */
    apd_icode ic; /* index coding (format 1.1); AUTO when not given */
    int soft;     /* soft labels (format 1.1) on records with i % 3 != 2 */
    uint32_t mv;  /* index model version: 0 = the default (2, format 1.2), 1 = format 1.1 */
} spec_case;

/* A soft-label vector of 10 classes whose largest value is at label (ties kept: every third
 * vector splits the top value between two classes). */
static void soft_vector(apd__rng *r, uint32_t label, uint32_t i, float out[10])
{
    double v[10], sum = 0;
    for (int j = 0; j < 10; j++) sum += v[j] = (double)apd__rng_below(r, 1000) / 1000.0;
    for (int j = 0; j < 10; j++) v[j] = 0.5 * v[j] / sum; /* each < 0.5 */
    v[label] = 0.5;
    if (i % 3 == 0) v[(label + 1) % 10] = 0.5;
    sum = 0;
    for (int j = 0; j < 10; j++) sum += v[j];
    for (int j = 0; j < 10; j++) out[j] = (float)(v[j] / sum);
}

static void make(const char *dir, const spec_case *sc)
{
    char path[1024], dpath[1024];
    snprintf(path, sizeof path, "%s/%s.apd", dir, sc->name);
    snprintf(dpath, sizeof dpath, "%s/%s.dump", dir, sc->name);
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = sc->kind;
    o.c = sc->c;
    o.h = sc->h;
    o.w = sc->w;
    o.k = sc->k;
    o.n_classes = 10;
    o.force = 1;
    o.no_sync = 1;
    o.compress = sc->comp;
    o.index_coding = sc->ic;
    o.soft_labels = sc->soft;
    o.index_model_version = sc->mv;
    o.records_per_chunk = sc->per_chunk;
    o.dataset_name = sc->name;
    static const char names[10][64] = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
    o.class_names = names;
    apd_writer *w;
    apd_err err;
    if (apd_writer_create(&w, path, &o, &err)) die(err.msg);
    apd_writer_set_meta(w, "method", "\"spec-test\"");
    apd_writer_set_meta(w, "hyperparameters", "{\"a\": [1, 2.5, \"x\\u00e9\"], \"b\": null}");
    apd__rng r;
    apd__rng_seed(&r, 2026, sc->k);
    size_t npix = (size_t)sc->h * sc->w;
    uint8_t pal[768], *idx = malloc(npix), *img = malloc(npix * sc->c);
    for (uint32_t i = 0; i < sc->n; i++) {
        uint64_t sid = i % 4 == 1 ? APD_NO_SOURCE_ID : (uint64_t)i * 1000003u;
        uint32_t label = (uint32_t)apd__rng_below(&r, 10);
        float soft[10];
        const float *sp = sc->soft && i % 3 != 2 ? soft : NULL;
        if (sp) soft_vector(&r, label, i, soft);
        if (sc->kind == APD_KIND_PALETTE) {
            uint32_t k = i % 5 == 0 ? 1 + (uint32_t)apd__rng_below(&r, sc->k) : sc->k;
            for (uint32_t j = 0; j < k * sc->c; j++) pal[j] = (uint8_t)apd__rng_u64(&r);
            for (size_t p = 0; p < npix; p++)
                idx[p] = sc->smooth ? (uint8_t)(((p / 5 + i) % k + (apd__rng_below(&r, 8) == 0)) % k)
                                    : (uint8_t)apd__rng_below(&r, k);
            if (apd_writer_put_palette_soft(w, pal, k, idx, label, sid, sp)) die(apd_writer_errmsg(w));
        } else {
            for (size_t p = 0; p < npix * sc->c; p++)
                img[p] = sc->smooth ? (uint8_t)(p / 24 + i) : (uint8_t)apd__rng_u64(&r);
            if (apd_writer_put_direct_soft(w, img, label, sid, sp)) die(apd_writer_errmsg(w));
        }
        if (i == sc->n / 3 && apd_writer_commit(w)) die(apd_writer_errmsg(w));
    }
    if (apd_writer_close(w)) die("close");

    apd_reader *rd;
    if (apd_reader_open(&rd, path, NULL, &err)) die(err.msg);
    apd_file_stats st;
    apd_file_info fi;
    apd_reader_info(rd, &fi);
    if (apd_reader_stats(rd, &st)) die("stats");
    FILE *f = fopen(dpath, "wb");
    if (!f) die(dpath);
    uint8_t hdr[32];
    uint32_t ns = fi.has_soft_labels ? fi.n_classes : 0;
    memcpy(hdr, "APDDUMP2", 8);
    apd__st64(hdr + 8, fi.n_records);
    apd__st32(hdr + 16, fi.c);
    apd__st32(hdr + 20, fi.h);
    apd__st32(hdr + 24, fi.w);
    apd__st32(hdr + 28, ns);
    fwrite(hdr, 1, sizeof hdr, f);
    size_t ib = (size_t)fi.c * fi.h * fi.w;
    uint8_t *out = malloc(ib);
    for (uint64_t i = 0; i < fi.n_records; i++) {
        uint32_t label;
        uint64_t sid;
        if (apd_reader_decode(rd, i, APD_LAYOUT_HWC, out, ib, &label)) die(apd_reader_errmsg(rd));
        if (apd_reader_source_id(rd, i, &sid)) die(apd_reader_errmsg(rd));
        uint8_t rh[12];
        apd__st32(rh, label);
        apd__st64(rh + 4, sid);
        fwrite(rh, 1, 12, f);
        if (ns) {
            float sv[10];
            int present;
            uint8_t sb[1 + 40];
            if (ns > 10 || apd_reader_soft_label(rd, i, sv, 10, &present)) die(apd_reader_errmsg(rd));
            sb[0] = (uint8_t)present;
            for (uint32_t j = 0; j < ns; j++) {
                uint32_t u;
                memcpy(&u, &sv[j], 4);
                apd__st32(sb + 1 + 4 * j, u);
            }
            fwrite(sb, 1, 1 + 4 * (size_t)ns, f);
        }
        fwrite(out, 1, ib, f);
    }
    if (fclose(f)) die("write dump");
    printf("%s: format 1.%u, %llu records, %llu chunks, %llu zstd-compressed, dictionary %llu bytes, "
           "%llu index-coded, %llu with soft labels\n", path, fi.version_minor,
           (unsigned long long)fi.n_records, (unsigned long long)fi.n_chunks,
           (unsigned long long)st.compressed_records, (unsigned long long)st.dict_bytes,
           (unsigned long long)st.coded_records, (unsigned long long)st.soft_records);
    apd_reader_close(rd);
    free(out);
    free(idx);
    free(img);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: spec_dump DIR\n");
        return 2;
    }
    static const spec_case cases[] = {
        {"rgb-k64", APD_KIND_PALETTE, 3, 32, 32, 64, 300, 64, APD_COMPRESS_AUTO, 0, APD_ICODE_AUTO, 0, 0},
        {"grey-k16-dict", APD_KIND_PALETTE, 1, 28, 28, 16, 400, 0, APD_COMPRESS_AUTO, 1, APD_ICODE_AUTO, 0, 0},
        {"rgb-k3-zstd", APD_KIND_PALETTE, 3, 5, 3, 3, 40, 7, APD_COMPRESS_ON, 1, APD_ICODE_AUTO, 0, 0},
        {"grey-k256", APD_KIND_PALETTE, 1, 7, 3, 256, 30, 0, APD_COMPRESS_OFF, 0, APD_ICODE_AUTO, 0, 0},
        {"rgb-k2-1x1", APD_KIND_PALETTE, 3, 1, 1, 2, 9, 4, APD_COMPRESS_OFF, 0, APD_ICODE_AUTO, 0, 0},
        {"direct-rgb", APD_KIND_DIRECT, 3, 8, 8, 0, 50, 16, APD_COMPRESS_ON, 1, APD_ICODE_AUTO, 0, 0},
        {"direct-grey", APD_KIND_DIRECT, 1, 4, 6, 0, 20, 0, APD_COMPRESS_OFF, 0, APD_ICODE_AUTO, 0, 0},
        {"rgb-k64-coded", APD_KIND_PALETTE, 3, 32, 32, 64, 300, 64, APD_COMPRESS_AUTO, 1, APD_ICODE_ON, 0, 0},
        {"grey-k5-coded-7x9", APD_KIND_PALETTE, 1, 7, 9, 5, 60, 0, APD_COMPRESS_OFF, 1, APD_ICODE_ON, 0, 0},
        {"rgb-k256-coded-13x6", APD_KIND_PALETTE, 3, 13, 6, 256, 40, 3, APD_COMPRESS_AUTO, 1, APD_ICODE_ON, 0, 0},
        {"rgb-k16-soft", APD_KIND_PALETTE, 3, 8, 8, 16, 120, 32, APD_COMPRESS_ON, 1, APD_ICODE_OFF, 1, 0},
        {"rgb-k16-coded-soft", APD_KIND_PALETTE, 3, 16, 16, 16, 100, 0, APD_COMPRESS_AUTO, 1, APD_ICODE_ON, 1, 0},
        {"direct-grey-soft", APD_KIND_DIRECT, 1, 4, 6, 0, 20, 0, APD_COMPRESS_OFF, 0, APD_ICODE_AUTO, 1, 0},
        /* index model version 1 (format 1.1) next to version 2; h > 8, w < 8 (idle steps) */
        {"rgb-k64-coded-v1", APD_KIND_PALETTE, 3, 32, 32, 64, 100, 0, APD_COMPRESS_AUTO, 1, APD_ICODE_ON, 0, 1},
        {"grey-k5-coded-20x3", APD_KIND_PALETTE, 1, 20, 3, 5, 60, 0, APD_COMPRESS_OFF, 1, APD_ICODE_ON, 0, 2},
        {"grey-k5-coded-20x3-v1", APD_KIND_PALETTE, 1, 20, 3, 5, 60, 0, APD_COMPRESS_OFF, 1, APD_ICODE_ON, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) make(argv[1], &cases[i]);
    return 0;
}
