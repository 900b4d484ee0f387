/* distill/source.c: where a distillation's real images come from (apd/distill.h, "real-image
 * sources"): an in-memory dataset, or an .apd file read through the public reader API.
 *
 * Why a source and not a dataset: a distillation touches the real images only through a few
 * seeded draws per class (the initial images, the real batch of each class and iteration,
 * the graph-cut candidates), so it needs the labels and a per-class index in memory, never
 * the pixels of the whole source. An .apd source keeps 20 bytes a record (label, source id,
 * index entry) and decodes a record when a draw asks for it.
 *
 * The per-class index lists the image ids of each class in ascending order: exactly the
 * order the in-memory path used to build its class lists in, so the seeded draws pick the
 * same images from either kind of source, and a direct .apd of a dataset distils to the same
 * bytes as the dataset itself.
 *
 * Opening an .apd source reads every record once (decode into one image buffer): labels and
 * source ids, the content hash (streaming apd-h64, equal to apd_dataset_hash of the same
 * images in memory; the provenance and the checkpoint fingerprint use it) and, through the
 * decode, every record checksum, so a damaged file fails at once and not mid-run.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/format.h"
#include "apd/json.h"
#include "common/internal.h"
#include "distill/distill_internal.h"

static apd_status src_oom(apd_err *err)
{
    return apd__err_set(err, APD_ENOMEM, "distill: out of memory for the real-image source");
}

/* cls_off / cls_ids from s->labels (every label < n_classes). */
static apd_status build_index(apd_distill_source *s, apd_err *err)
{
    s->cls_off = calloc((size_t)s->n_classes + 1, sizeof *s->cls_off);
    s->cls_ids = malloc((size_t)(s->n ? s->n : 1) * sizeof *s->cls_ids);
    uint64_t *fill = calloc(s->n_classes, sizeof *fill);
    if (!s->cls_off || !s->cls_ids || !fill) {
        free(fill);
        return src_oom(err);
    }
    for (uint64_t i = 0; i < s->n; i++) s->cls_off[s->labels[i] + 1]++;
    for (uint32_t c = 0; c < s->n_classes; c++) s->cls_off[c + 1] += s->cls_off[c];
    for (uint64_t i = 0; i < s->n; i++) {
        uint32_t c = s->labels[i];
        s->cls_ids[s->cls_off[c] + fill[c]++] = i;
    }
    free(fill);
    return APD_OK;
}

APD_API void apd_distill_source_free(apd_distill_source *s)
{
    if (!s) return;
    apd_reader_close(s->r);
    free(s->path);
    free(s->own_labels);
    free(s->source_ids);
    free(s->names);
    free(s->cls_off);
    free(s->cls_ids);
    free(s);
}

APD_API apd_status apd_distill_source_from_dataset(apd_distill_source **out, const apd_dataset *real,
                                                   apd_err *err)
{
    if (!out) return apd__err_set(err, APD_EINVAL, "distill: NULL argument");
    *out = NULL;
    if (!real || !real->pixels || !real->labels || real->n == 0 || real->n_classes == 0)
        return apd__err_set(err, APD_EINVAL, "distill: empty real dataset");
    if (real->c != 1 && real->c != 3)
        return apd__err_set(err, APD_EINVAL, "distill: %u channels (need 1 or 3)", real->c);
    for (uint64_t i = 0; i < real->n; i++)
        if (real->labels[i] >= real->n_classes)
            return apd__err_set(err, APD_EINVAL, "distill: image %llu has label %u >= %u classes",
                                (unsigned long long)i, real->labels[i], real->n_classes);
    apd_distill_source *s = calloc(1, sizeof *s);
    if (!s) return src_oom(err);
    s->ds = real;
    s->n = real->n;
    s->c = real->c;
    s->h = real->h;
    s->w = real->w;
    s->n_classes = real->n_classes;
    s->img = apd_dataset_image_bytes(real);
    s->labels = real->labels;
    apd_status st = build_index(s, err);
    if (st != APD_OK) {
        apd_distill_source_free(s);
        return st;
    }
    apd_dataset_mean_std(real, s->mean, s->std);
    *out = s;
    return APD_OK;
}

/* name and split from the file: the header's dataset name, the split of the "source" object
 * of its provenance when it has one. */
static void apd_names(apd_distill_source *s, const apd_file_info *fi)
{
    snprintf(s->name, sizeof s->name, "%s", fi->dataset_name);
    const char *meta = apd_reader_meta_json(s->r);
    apd_json_doc *d;
    if (!meta || apd_json_parse(&d, meta, strlen(meta)) != APD_OK) return;
    int src = apd_json_get(d, 0, "source");
    if (apd_json_string(d, apd_json_get(d, src, "split"), s->split, sizeof s->split) != APD_OK) s->split[0] = 0;
    apd_json_free(d);
}

/* The pass over every record: labels, source ids, hash, pixel sums (for a file without a
 * recorded normalisation). */
static apd_status apd_pass(apd_distill_source *s, const apd_file_info *fi, apd_err *err)
{
    uint8_t *buf = malloc(s->img);
    if (!buf) return src_oom(err);
    size_t hw = (size_t)s->h * s->w;
    double sum[3] = {0}, sum2[3] = {0};
    apd__dhash hs;
    apd__dhash_begin(&hs, s->n, s->c, s->h, s->w);
    apd_status st = APD_OK;
    for (uint64_t i = 0; i < s->n && st == APD_OK; i++) {
        uint32_t label;
        uint64_t sid;
        st = apd_reader_decode(s->r, i, APD_LAYOUT_CHW, buf, s->img, &label);
        if (st == APD_OK) st = apd_reader_source_id(s->r, i, &sid);
        if (st != APD_OK) {
            apd__err_set(err, st, "%s", apd_reader_errmsg(s->r));
            break;
        }
        if (label >= s->n_classes)
            st = apd__err_set(err, APD_EDATASET, "%s: record %llu: label %u >= %u classes", s->path,
                              (unsigned long long)i, label, s->n_classes);
        s->own_labels[i] = label;
        s->source_ids[i] = sid == APD_NO_SOURCE_ID ? i : sid;
        apd__dhash_pixels(&hs, buf, s->img);
        for (uint32_t c = 0; c < s->c; c++) { /* as apd_dataset_mean_std: exact integer sums per image */
            uint64_t a = 0, a2 = 0;
            for (size_t j = 0; j < hw; j++) {
                a += buf[c * hw + j];
                a2 += (uint64_t)buf[c * hw + j] * buf[c * hw + j];
            }
            sum[c] += (double)a;
            sum2[c] += (double)a2;
        }
    }
    free(buf);
    if (st != APD_OK) return st;
    apd__dhash_finish(&hs, s->own_labels, s->n, s->hash);
    s->have_hash = 1;
    int recorded = 1;
    for (uint32_t c = 0; c < s->c; c++)
        if (!(fi->std[c] > 0)) recorded = 0;
    for (uint32_t c = 0; c < s->c; c++) {
        if (recorded) {
            s->mean[c] = fi->mean[c];
            s->std[c] = fi->std[c];
            continue;
        }
        double cnt = (double)s->n * (double)hw, m = sum[c] / cnt, v = sum2[c] / cnt - m * m;
        s->mean[c] = (float)(m / 255.0);
        s->std[c] = (float)(sqrt(v > 0 ? v : 0) / 255.0);
    }
    return APD_OK;
}

/* Every class must have records: a distillation makes images of each class. */
static apd_status apd_classes_check(const apd_distill_source *s, apd_err *err)
{
    for (uint32_t c = 0; c < s->n_classes; c++)
        if (s->cls_off[c + 1] == s->cls_off[c])
            return apd__err_set(err, APD_EDATASET,
                                "%s: class %u%s%s%s has no records (the file states %u classes; a distillation "
                                "needs real images of every class)",
                                s->path, c, s->names[c][0] ? " (" : "", s->names[c], s->names[c][0] ? ")" : "",
                                s->n_classes);
    return APD_OK;
}

static apd_status apd_open(apd_distill_source *s, const char *path, apd_err *err)
{
    s->path = strdup(path);
    if (!s->path) return src_oom(err);
    APD_TRY(apd_reader_open(&s->r, path, NULL, err));
    apd_file_info fi;
    APD_TRY(apd_reader_info(s->r, &fi));
    if (fi.n_classes == 0)
        return apd__err_set(err, APD_EDATASET,
                            "%s: the file states no classes (n_classes 0): a distillation needs labelled images", path);
    if (fi.n_records == 0) return apd__err_set(err, APD_EDATASET, "%s: the file has no records", path);
    if (fi.c != 1 && fi.c != 3)
        return apd__err_set(err, APD_EDATASET, "%s: %u channels (need 1 or 3)", path, fi.c);
    s->n = fi.n_records;
    s->c = fi.c;
    s->h = fi.h;
    s->w = fi.w;
    s->n_classes = fi.n_classes;
    s->img = (size_t)fi.c * fi.h * fi.w; /* the reader checked it fits (APD_EOVERFLOW) */
    s->own_labels = malloc((size_t)s->n * sizeof *s->own_labels);
    s->source_ids = malloc((size_t)s->n * sizeof *s->source_ids);
    s->names = calloc(s->n_classes, sizeof *s->names);
    if (!s->own_labels || !s->source_ids || !s->names) return src_oom(err);
    s->labels = s->own_labels;
    for (uint32_t c = 0; c < s->n_classes; c++) {
        const char *nm = apd_reader_class_name(s->r, c);
        snprintf(s->names[c], sizeof s->names[c], "%s", nm ? nm : "");
    }
    apd_names(s, &fi);
    APD_TRY(apd_pass(s, &fi, err));
    APD_TRY(build_index(s, err));
    return apd_classes_check(s, err);
}

APD_API apd_status apd_distill_source_open_apd(apd_distill_source **out, const char *path, apd_err *err)
{
    if (!out || !path) return apd__err_set(err, APD_EINVAL, "distill: NULL argument");
    *out = NULL;
    apd_distill_source *s = calloc(1, sizeof *s);
    if (!s) return src_oom(err);
    apd_status st = apd_open(s, path, err);
    if (st != APD_OK) {
        apd_distill_source_free(s);
        return st;
    }
    *out = s;
    return APD_OK;
}

apd_status apd__dsrc_image(apd_distill_source *s, uint64_t i, uint8_t *scratch, const uint8_t **out,
                           apd_err *err)
{
    if (s->ds) {
        *out = s->ds->pixels + i * s->img;
        return APD_OK;
    }
    apd_status st = apd_reader_decode(s->r, i, APD_LAYOUT_CHW, scratch, s->img, NULL);
    if (st != APD_OK) return apd__err_set(err, st, "%s", apd_reader_errmsg(s->r));
    *out = scratch;
    return APD_OK;
}

uint64_t apd__dsrc_source_id(const apd_distill_source *s, uint64_t i)
{
    if (s->source_ids) return s->source_ids[i];
    if (s->ds && s->ds->source_ids) return s->ds->source_ids[i];
    return i;
}

APD_API void apd_distill_source_hash(apd_distill_source *s, char out_hex[17])
{
    if (!s->have_hash) { /* an in-memory source: hashed when first asked */
        apd_dataset_hash(s->ds, s->hash);
        s->have_hash = 1;
    }
    memcpy(out_hex, s->hash, 17);
}

APD_API uint64_t apd_distill_source_class_count(const apd_distill_source *s, uint32_t cls)
{
    if (!s || cls >= s->n_classes) return 0;
    return s->cls_off[cls + 1] - s->cls_off[cls];
}

APD_API apd_status apd_distill_source_describe(const apd_distill_source *s, apd_dataset *out, apd_err *err)
{
    if (!s || !out) return apd__err_set(err, APD_EINVAL, "distill: NULL argument");
    memset(out, 0, sizeof *out);
    out->n = s->n;
    out->c = s->c;
    out->h = s->h;
    out->w = s->w;
    out->n_classes = s->n_classes;
    out->labels = malloc((size_t)s->n * sizeof *out->labels);
    out->source_ids = malloc((size_t)s->n * sizeof *out->source_ids);
    out->class_names = calloc(s->n_classes, sizeof *out->class_names);
    if (!out->labels || !out->source_ids || !out->class_names) {
        apd_dataset_free(out);
        return src_oom(err);
    }
    memcpy(out->labels, s->labels, (size_t)s->n * sizeof *out->labels);
    const apd_dataset *ds = s->ds;
    for (uint64_t i = 0; i < s->n; i++)
        out->source_ids[i] = apd__dsrc_source_id(s, i);
    for (uint32_t c = 0; c < s->n_classes; c++) {
        const char *nm = s->names ? s->names[c] : ds->class_names ? ds->class_names[c] : "";
        snprintf(out->class_names[c], APD_MAX_CLASS_NAME, "%s", nm);
    }
    snprintf(out->name, sizeof out->name, "%s", ds ? ds->name : s->name);
    snprintf(out->split, sizeof out->split, "%s", ds ? ds->split : s->split);
    if (ds) snprintf(out->source, sizeof out->source, "%s", ds->source);
    else snprintf(out->source, sizeof out->source, "apd:%s", s->path);
    out->has_norm = 1;
    for (uint32_t c = 0; c < 3; c++) {
        out->norm_mean[c] = c < s->c ? s->mean[c] : 0.0f;
        out->norm_std[c] = c < s->c ? s->std[c] : 0.0f;
    }
    return APD_OK;
}
