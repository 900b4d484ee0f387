/* dataset.c: allocation, hashing and statistics of apd_dataset (see apd/dataset.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apd/dataset.h"
#include "common/internal.h"
#include "common/rng.h"

apd_status apd_dataset_alloc(apd_dataset *ds, uint64_t n, uint32_t c, uint32_t h, uint32_t w,
                             uint32_t n_classes)
{
    size_t img, total, lab;
    if (!ds || (c != 1 && c != 3) || h == 0 || w == 0) return APD_EINVAL;
    memset(ds, 0, sizeof *ds);
    if (!apd__mul3_ok(c, h, w, &img) || !apd__mul_ok(img, (size_t)n, &total) ||
        !apd__mul_ok((size_t)n, sizeof(uint32_t), &lab))
        return APD_EOVERFLOW;
    ds->pixels = calloc(total ? total : 1, 1);
    ds->labels = calloc(n ? n : 1, sizeof(uint32_t));
    ds->class_names = n_classes ? calloc(n_classes, APD_MAX_CLASS_NAME) : NULL;
    if (!ds->pixels || !ds->labels || (n_classes && !ds->class_names)) {
        apd_dataset_free(ds);
        return APD_ENOMEM;
    }
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->n_classes = n_classes;
    return APD_OK;
}

void apd_dataset_free(apd_dataset *ds)
{
    if (!ds) return;
    free(ds->pixels);
    free(ds->labels);
    free(ds->source_ids);
    free(ds->class_names);
    free(ds->soft_labels);
    free(ds->soft_stored);
    ds->soft_labels = NULL;
    ds->soft_stored = NULL;
    ds->pixels = NULL;
    ds->labels = NULL;
    ds->source_ids = NULL;
    ds->class_names = NULL;
    ds->n = 0;
    ds->has_norm = 0;
}

/* apd-h64: h = mix64(h ^ word) over: (n, c, h, w) as one word each, the pixel bytes as
 * little-endian 8-byte words (last word zero-padded), then the labels as little-endian
 * 8-byte words of two uint32 each (zero-padded). Start value 0x61706468363421 ("apdh64!").
 * The streaming form (apd__dhash_*, common/internal.h) lets a source that is never held in
 * memory (an .apd file read record by record) get the same hash as the imported dataset. */
void apd__dhash_begin(apd__dhash *d, uint64_t n, uint32_t c, uint32_t h, uint32_t w)
{
    memset(d, 0, sizeof *d);
    d->h = 0x61706468363421ull;
    d->h = apd__mix64(d->h ^ n);
    d->h = apd__mix64(d->h ^ c);
    d->h = apd__mix64(d->h ^ h);
    d->h = apd__mix64(d->h ^ w);
}

void apd__dhash_pixels(apd__dhash *d, const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (d->nt && i < len) { /* complete a word left open by the previous call */
        d->tail[d->nt++ & 7u] = p[i++];
        if (d->nt == 8) {
            d->h = apd__mix64(d->h ^ apd__ld64(d->tail));
            d->nt = 0;
        }
    }
    for (; i + 8 <= len; i += 8) d->h = apd__mix64(d->h ^ apd__ld64(p + i));
    /* fewer than 8 bytes left and nt == 0 here; the mask only tells the compiler so (GCC 12
     * at -O3 otherwise warns of an overflow it cannot rule out) */
    for (; i < len; i++) d->tail[d->nt++ & 7u] = p[i];
}

void apd__dhash_finish(apd__dhash *d, const uint32_t *labels, uint64_t n, char out_hex[17])
{
    static const char hx[] = "0123456789abcdef";
    uint64_t h = d->h;
    if (d->nt) {
        memset(d->tail + d->nt, 0, 8 - d->nt);
        h = apd__mix64(h ^ apd__ld64(d->tail));
    }
    for (uint64_t i = 0; i < n; i += 2) {
        uint8_t b[8] = {0};
        apd__st32(b, labels[i]);
        if (i + 1 < n) apd__st32(b + 4, labels[i + 1]);
        h = apd__mix64(h ^ apd__ld64(b));
    }
    for (int i = 15; i >= 0; i--) {
        out_hex[i] = hx[h & 15];
        h >>= 4;
    }
    out_hex[16] = '\0';
}

void apd_dataset_hash(const apd_dataset *ds, char out_hex[17])
{
    apd__dhash d;
    apd__dhash_begin(&d, ds->n, ds->c, ds->h, ds->w);
    apd__dhash_pixels(&d, ds->pixels, (size_t)ds->n * apd_dataset_image_bytes(ds));
    apd__dhash_finish(&d, ds->labels, ds->n, out_hex);
}

void apd_dataset_mean_std(const apd_dataset *ds, float mean[3], float std[3])
{
    size_t hw = (size_t)ds->h * ds->w;
    for (uint32_t c = 0; c < 3; c++) mean[c] = std[c] = 0;
    for (uint32_t c = 0; c < ds->c; c++) {
        double s = 0, s2 = 0;
        for (uint64_t i = 0; i < ds->n; i++) {
            const uint8_t *p = ds->pixels + ((size_t)i * ds->c + c) * hw;
            uint64_t a = 0, a2 = 0;
            for (size_t j = 0; j < hw; j++) { a += p[j]; a2 += (uint64_t)p[j] * p[j]; }
            s += (double)a;
            s2 += (double)a2;
        }
        double cnt = (double)ds->n * (double)hw;
        double m = cnt > 0 ? s / cnt : 0, v = cnt > 0 ? s2 / cnt - m * m : 0;
        mean[c] = (float)(m / 255.0);
        std[c] = (float)(sqrt(v > 0 ? v : 0) / 255.0);
    }
}

void apd_dataset_norm(const apd_dataset *ds, float mean[3], float std[3])
{
    if (!ds->has_norm) {
        apd_dataset_mean_std(ds, mean, std);
        return;
    }
    for (uint32_t c = 0; c < 3; c++) {
        mean[c] = c < ds->c ? ds->norm_mean[c] : 0.0f;
        std[c] = c < ds->c ? ds->norm_std[c] : 0.0f;
    }
}

void apd_dataset_class_counts(const apd_dataset *ds, uint64_t *counts)
{
    memset(counts, 0, sizeof(uint64_t) * ds->n_classes);
    for (uint64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] < ds->n_classes) counts[ds->labels[i]]++;
}
