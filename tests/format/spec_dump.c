/* spec_dump.c: helper of the spec conformance test (tests/spec_reader.py).
 *
 *   spec_dump DIR    writes test files DIR/<name>.apd covering the format's features (palette
 *                    RGB and grey, several index widths, multiple chunks, source ids, zstd
 *                    records with and without a trained dictionary, direct colour) and, for
 *                    each, DIR/<name>.dump: what the C reader decodes, which spec_reader.py
 *                    must reproduce byte for byte from the spec alone.
 *
 * Dump layout (little-endian): "APDDUMP1", u64 n, u32 c, u32 h, u32 w, then per record:
 * u32 label, u64 source id (2^64-1 = none), c*h*w bytes of HWC pixels.
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
} spec_case;

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
        if (sc->kind == APD_KIND_PALETTE) {
            uint32_t k = i % 5 == 0 ? 1 + (uint32_t)apd__rng_below(&r, sc->k) : sc->k;
            for (uint32_t j = 0; j < k * sc->c; j++) pal[j] = (uint8_t)apd__rng_u64(&r);
            for (size_t p = 0; p < npix; p++)
                idx[p] = sc->smooth ? (uint8_t)(((p / 5 + i) % k + (apd__rng_below(&r, 8) == 0)) % k)
                                    : (uint8_t)apd__rng_below(&r, k);
            if (apd_writer_put_palette(w, pal, k, idx, label, sid)) die(apd_writer_errmsg(w));
        } else {
            for (size_t p = 0; p < npix * sc->c; p++)
                img[p] = sc->smooth ? (uint8_t)(p / 24 + i) : (uint8_t)apd__rng_u64(&r);
            if (apd_writer_put_direct(w, img, label, sid)) die(apd_writer_errmsg(w));
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
    uint8_t hdr[28];
    memcpy(hdr, "APDDUMP1", 8);
    apd__st64(hdr + 8, fi.n_records);
    apd__st32(hdr + 16, fi.c);
    apd__st32(hdr + 20, fi.h);
    apd__st32(hdr + 24, fi.w);
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
        fwrite(out, 1, ib, f);
    }
    if (fclose(f)) die("write dump");
    printf("%s: %llu records, %llu chunks, %llu zstd-compressed, dictionary %llu bytes, %llu index-coded\n", path,
           (unsigned long long)fi.n_records, (unsigned long long)fi.n_chunks,
           (unsigned long long)st.compressed_records, (unsigned long long)st.dict_bytes,
           (unsigned long long)st.coded_records);
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
        {"rgb-k64", APD_KIND_PALETTE, 3, 32, 32, 64, 300, 64, APD_COMPRESS_AUTO, 0, APD_ICODE_AUTO},
        {"grey-k16-dict", APD_KIND_PALETTE, 1, 28, 28, 16, 400, 0, APD_COMPRESS_AUTO, 1, APD_ICODE_AUTO},
        {"rgb-k3-zstd", APD_KIND_PALETTE, 3, 5, 3, 3, 40, 7, APD_COMPRESS_ON, 1, APD_ICODE_AUTO},
        {"grey-k256", APD_KIND_PALETTE, 1, 7, 3, 256, 30, 0, APD_COMPRESS_OFF, 0, APD_ICODE_AUTO},
        {"rgb-k2-1x1", APD_KIND_PALETTE, 3, 1, 1, 2, 9, 4, APD_COMPRESS_OFF, 0, APD_ICODE_AUTO},
        {"direct-rgb", APD_KIND_DIRECT, 3, 8, 8, 0, 50, 16, APD_COMPRESS_ON, 1, APD_ICODE_AUTO},
        {"direct-grey", APD_KIND_DIRECT, 1, 4, 6, 0, 20, 0, APD_COMPRESS_OFF, 0, APD_ICODE_AUTO},
        {"rgb-k64-coded", APD_KIND_PALETTE, 3, 32, 32, 64, 300, 64, APD_COMPRESS_AUTO, 1, APD_ICODE_ON},
        {"grey-k5-coded-7x9", APD_KIND_PALETTE, 1, 7, 9, 5, 60, 0, APD_COMPRESS_OFF, 1, APD_ICODE_ON},
        {"rgb-k256-coded-13x6", APD_KIND_PALETTE, 3, 13, 6, 256, 40, 3, APD_COMPRESS_AUTO, 1, APD_ICODE_ON},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) make(argv[1], &cases[i]);
    return 0;
}
