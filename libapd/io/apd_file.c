/* io/apd_file.c: apd_import's apd:FILE: the records of an .apd file as a dataset, read through
 * the public reader API (apd/format.h) like any program would.
 *
 * Pixels are the decoded records (CHW), labels and class names the file's (classes without a
 * name, and those of a file without classes, are named by their id); a record's source id is
 * its index in the file, as for an apd-export folder. The dataset name is the file's, the
 * split the one its provenance names ("source": {"split": ...}); the mean/std recorded in the
 * file become the dataset's normalisation (has_norm). A file with soft labels (format 1.1)
 * gives them as soft_labels / soft_stored. A limit keeps the first records. A split the file
 * is not (or, for a file that names none, any split but train) is an error, as for exports.
 */
#define _DEFAULT_SOURCE
#include <stdlib.h>
#include <string.h>

#include "apd/format.h"
#include "apd/json.h"
#include "io/io_internal.h"

/* The split named by the "source" object of the file's metadata ("" if none).
 * @return APD_OK or APD_ENOMEM (parsing the metadata). */
static apd_status file_split(apd_reader *r, char *out, size_t cap)
{
    out[0] = '\0';
    const char *meta = apd_reader_meta_json(r);
    apd_json_doc *d;
    apd_status s = meta ? apd_json_parse(&d, meta, strlen(meta)) : APD_EINVAL;
    if (s == APD_ENOMEM) return s;
    if (s != APD_OK) return APD_OK; /* the reader checked it: no document, no split */
    int src = apd_json_get(d, 0, "source");
    if (apd_json_string(d, apd_json_get(d, src, "split"), out, cap) != APD_OK) out[0] = '\0';
    apd_json_free(d);
    return APD_OK;
}

/* Records 0..out->n) of r: pixels and labels; soft labels when the file has them. */
static apd_status read_records(apd_dataset *out, apd_reader *r, const apd_file_info *fi, const char *path,
                               apd_err *err)
{
    size_t img = apd_dataset_image_bytes(out);
    apd_status s = APD_OK;
    for (uint64_t i = 0; i < out->n && s == APD_OK; i++) {
        s = apd_reader_decode(r, i, APD_LAYOUT_CHW, out->pixels + i * img, img, &out->labels[i]);
        out->source_ids[i] = i;
        if (s == APD_OK && fi->n_classes && out->labels[i] >= fi->n_classes)
            return apd__err_set(err, APD_ECORRUPT, "%s: record %llu: label %u, but the file has %u classes", path,
                                (unsigned long long)i, out->labels[i], fi->n_classes);
    }
    if (s == APD_OK && fi->has_soft_labels && fi->n_classes) {
        out->soft_labels = malloc((size_t)out->n * fi->n_classes * sizeof *out->soft_labels);
        out->soft_stored = malloc(out->n ? out->n : 1);
        if (!out->soft_labels || !out->soft_stored) return apd__err_set(err, APD_ENOMEM, "out of memory");
        for (uint64_t i = 0; i < out->n && s == APD_OK; i++) {
            int present = 0;
            s = apd_reader_soft_label(r, i, out->soft_labels + i * fi->n_classes, fi->n_classes, &present);
            out->soft_stored[i] = (uint8_t)present;
        }
    }
    if (s != APD_OK) return apd__err_set(err, s, "%s", apd_reader_errmsg(r));
    return APD_OK;
}

/* Class count and names: the file's; a file without classes gets max label + 1, by id. */
static apd_status set_classes(apd_dataset *out, apd_reader *r, uint32_t n_classes, const char *path, apd_err *err)
{
    if (!n_classes) {
        for (uint64_t i = 0; i < out->n; i++)
            if (out->labels[i] >= n_classes) n_classes = out->labels[i] + 1;
        if (!(out->class_names = calloc(n_classes, APD_MAX_CLASS_NAME)))
            return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
        out->n_classes = n_classes;
    }
    for (uint32_t k = 0; k < n_classes; k++) {
        const char *nm = apd_reader_class_name(r, k);
        if (nm && nm[0]) apd__set_class_name(out->class_names[k], nm, strlen(nm));
        else snprintf(out->class_names[k], APD_MAX_CLASS_NAME, "%u", k);
    }
    return APD_OK;
}

apd_status apd__import_apd(apd_dataset *out, const char *path, const char *split, const apd_import_opts *o,
                           apd_err *err)
{
    apd_reader *r;
    APD_TRY(apd_reader_open(&r, path, NULL, err));
    apd_file_info fi;
    memset(&fi, 0, sizeof fi);
    apd_status s = apd_reader_info(r, &fi);
    char fsplit[16];
    uint64_t n = fi.n_records;
    if (o->limit && o->limit < n) n = o->limit;
    if (s != APD_OK) s = apd__err_set(err, s, "%s", apd_reader_errmsg(r));
    else if (file_split(r, fsplit, sizeof fsplit) != APD_OK)
        s = apd__err_set(err, APD_ENOMEM, "%s: out of memory reading the metadata", path);
    else if (split && fsplit[0] && strcmp(split, fsplit))
        s = apd__err_set(err, APD_EDATASET, "%s: the file holds the %s split; split %s does not apply", path, fsplit,
                         split);
    else if (split && !fsplit[0] && strcmp(split, "train"))
        s = apd__err_set(err, APD_EDATASET, "%s: the file names no split, so there is no %s split", path, split);
    else if (n == 0) s = apd__err_set(err, APD_EEMPTY, "%s: the file holds no records", path);
    if (s == APD_OK && (s = apd_dataset_alloc(out, n, fi.c, fi.h, fi.w, fi.n_classes)) != APD_OK)
        s = apd__err_set(err, s, "%s: cannot allocate %llu images of %ux%ux%u", path, (unsigned long long)n, fi.c,
                         fi.h, fi.w);
    if (s == APD_OK && !(out->source_ids = malloc(n * sizeof *out->source_ids)))
        s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    if (s == APD_OK) s = read_records(out, r, &fi, path, err);
    if (s == APD_OK) s = set_classes(out, r, fi.n_classes, path, err);
    if (s == APD_OK) {
        snprintf(out->name, sizeof out->name, "%s", fi.dataset_name);
        snprintf(out->split, sizeof out->split, "%s", fsplit[0] ? fsplit : "train");
        out->has_norm = 1;
        for (uint32_t ch = 0; ch < fi.c; ch++) {
            out->norm_mean[ch] = fi.mean[ch];
            out->norm_std[ch] = fi.std[ch];
            if (!(fi.std[ch] > 0)) out->has_norm = 0; /* the file recorded none */
        }
    }
    apd_reader_close(r);
    if (s != APD_OK) {
        apd_dataset_free(out);
        memset(out, 0, sizeof *out);
    }
    return s;
}
