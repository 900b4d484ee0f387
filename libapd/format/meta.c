/* format/meta.c: the library's metadata keys, and the parser that checks the metadata
 * document (meta db, key "json") against the binary header. The binary header is
 * authoritative for geometry and count; the document must agree with it (spec/apd-format.md
 * "Metadata"). The parser is a fuzz target (tests/fuzz/fuzz_meta.c): everything it reads is
 * validated.
 */
#include <stdlib.h>
#include <string.h>

#include "format/format_internal.h"
#include "format/json.h"

/* The one list of the keys the library writes itself (apd_meta_key_classify, apd/format.h):
 * the writer refuses to set the maintained ones, builds the defaulted ones from its options,
 * and apd-info prints everything else as provenance. */
static const struct {
    const char *key;
    apd_meta_key_class cls;
} library_keys[] = {
    {"format", APD_META_KEY_MAINTAINED},        {"format_version", APD_META_KEY_MAINTAINED},
    {"kind", APD_META_KEY_MAINTAINED},          {"c", APD_META_KEY_MAINTAINED},
    {"h", APD_META_KEY_MAINTAINED},             {"w", APD_META_KEY_MAINTAINED},
    {"k", APD_META_KEY_MAINTAINED},             {"bits", APD_META_KEY_MAINTAINED},
    {"records_per_chunk", APD_META_KEY_MAINTAINED}, {"n_records", APD_META_KEY_MAINTAINED},
    {"complete", APD_META_KEY_MAINTAINED},
    {"n_classes", APD_META_KEY_MAINTAINED},     {"class_counts", APD_META_KEY_MAINTAINED},
    {"class_names", APD_META_KEY_MAINTAINED},   {"dataset", APD_META_KEY_DEFAULTED},
    {"mean", APD_META_KEY_DEFAULTED},           {"std", APD_META_KEY_DEFAULTED},
};

apd_meta_key_class apd_meta_key_classify(const char *key, size_t len)
{
    if (!key) return APD_META_KEY_USER;
    for (size_t i = 0; i < sizeof library_keys / sizeof *library_keys; i++)
        if (strlen(library_keys[i].key) == len && memcmp(library_keys[i].key, key, len) == 0)
            return library_keys[i].cls;
    return APD_META_KEY_USER;
}

static int num_eq(const apd__json *d, int root, const char *key, uint64_t want)
{
    uint64_t v;
    int n = apd__json_get(d, root, key);
    return n >= 0 && apd__json_u64(d, n, &v) && v == want;
}

int apd__norm_value_ok(int is_std, double x)
{
    if (!(x >= 0.0)) return 0; /* also NaN */
    if (!is_std) return x <= 1.0;
    return x == 0.0 || (x >= APD__STD_MIN && x <= APD__STD_MAX);
}

void apd__meta_free(apd__meta *m)
{
    free(m->class_names);
    free(m->class_counts);
    m->class_names = NULL;
    m->class_counts = NULL;
}

/* The maintained keys agree with the header (spec section 5.1). */
static apd_status meta_check_header(const apd__json *d, int root, const apd__header *h,
                                    const char **why)
{
    char buf[256];
    int v = apd__json_get(d, root, "format");
    if (!apd__json_str(d, v, buf, sizeof buf) || strcmp(buf, "apd") != 0) {
        *why = "metadata key \"format\" is not \"apd\"";
        return APD_EMETA;
    }
    v = apd__json_get(d, root, "kind");
    if (!apd__json_str(d, v, buf, sizeof buf) ||
        strcmp(buf, h->kind == APD_KIND_PALETTE ? "palette" : "direct") != 0) {
        *why = "metadata \"kind\" disagrees with the header";
        return APD_EMETA;
    }
    if (!num_eq(d, root, "c", h->c) || !num_eq(d, root, "h", h->h) ||
        !num_eq(d, root, "w", h->w) || !num_eq(d, root, "k", h->k) ||
        !num_eq(d, root, "bits", h->bits) || !num_eq(d, root, "n_records", h->n_records) ||
        !num_eq(d, root, "n_classes", h->n_classes) ||
        !num_eq(d, root, "records_per_chunk", h->per_chunk)) {
        *why = "metadata geometry, count or class count disagrees with the header";
        return APD_EMETA;
    }
    return APD_OK;
}

/* Completeness (spec 5.1): "complete" is false in every commit but a writer's last; a file
 * without the key predates it and reads as before. */
static apd_status meta_check_complete(const apd__json *d, int root, apd__meta *m, const char **why)
{
    int v = apd__json_get(d, root, "complete");
    if (v >= 0 && d->nodes[v].type != APD__J_TRUE) {
        *why = d->nodes[v].type == APD__J_FALSE
                   ? "incomplete file: its writer never finished it (metadata \"complete\" is false)"
                   : "metadata \"complete\" is not true or false";
        return APD_EMETA;
    }
    m->complete = v >= 0 ? 1 : -1;
    return APD_OK;
}

/* The optional "dataset", "mean" and "std" keys. */
static apd_status meta_parse_source(const apd__json *d, int root, const apd__header *h,
                                    apd__meta *m, const char **why)
{
    int v = apd__json_get(d, root, "dataset");
    if (v >= 0) {
        char big[1024];
        if (!apd__json_str(d, v, big, sizeof big)) {
            *why = "metadata \"dataset\" is not a string (or longer than 1023 bytes)";
            return APD_EMETA;
        }
        size_t bl = strlen(big);
        if (bl >= sizeof m->dataset) bl = sizeof m->dataset - 1; /* apd_file_info keeps 63 bytes */
        memcpy(m->dataset, big, bl);
        m->dataset[bl] = 0;
    }
    const char *ms_keys[2] = {"mean", "std"};
    float *ms_out[2] = {m->mean, m->std};
    for (int q = 0; q < 2; q++) {
        v = apd__json_get(d, root, ms_keys[q]);
        if (v < 0) continue;
        if (d->nodes[v].type != APD__J_ARR || d->nodes[v].count != h->c) {
            *why = "metadata \"mean\"/\"std\" is not an array of c numbers";
            return APD_EMETA;
        }
        uint32_t i = 0;
        for (int e = d->nodes[v].first; e >= 0; e = d->nodes[e].next, i++) {
            double x;
            if (!apd__json_num(d, e, &x)) {
                *why = "metadata \"mean\"/\"std\" holds a non-number";
                return APD_EMETA;
            }
            if (!apd__norm_value_ok(q, x)) {
                *why = q ? "metadata \"std\" out of range (0 for unknown, else 1e-6..1: pixels / 255)"
                         : "metadata \"mean\" out of range (0..1: pixels / 255)";
                return APD_EMETA;
            }
            ms_out[q][i] = (float)x;
        }
    }
    return APD_OK;
}

/* "class_counts" (required with classes; must sum to n_records) and "class_names". */
static apd_status meta_parse_classes(const apd__json *d, int root, const apd__header *h,
                                     apd__meta *m, const char **why)
{
    int v;
    if (!h->n_classes) {
        v = apd__json_get(d, root, "class_names");
        if (v >= 0 && (d->nodes[v].type != APD__J_ARR || d->nodes[v].count != 0)) {
            *why = "metadata \"class_names\" given for a file without classes";
            return APD_EMETA;
        }
        return APD_OK;
    }
    v = apd__json_get(d, root, "class_counts");
    if (v < 0 || d->nodes[v].type != APD__J_ARR || d->nodes[v].count != h->n_classes) {
        *why = "metadata \"class_counts\" is not an array of n_classes counts";
        return APD_EMETA;
    }
    m->class_counts = calloc(h->n_classes, sizeof *m->class_counts);
    if (!m->class_counts) {
        *why = "out of memory";
        return APD_ENOMEM;
    }
    uint64_t sum = 0, i = 0;
    for (int e = d->nodes[v].first; e >= 0; e = d->nodes[e].next, i++) {
        if (!apd__json_u64(d, e, &m->class_counts[i]) ||
            __builtin_add_overflow(sum, m->class_counts[i], &sum)) {
            *why = "metadata \"class_counts\" holds a bad count";
            return APD_EMETA;
        }
    }
    if (sum != h->n_records) {
        *why = "metadata \"class_counts\" does not sum to n_records";
        return APD_EMETA;
    }
    v = apd__json_get(d, root, "class_names");
    if (v < 0) return APD_OK;
    if (d->nodes[v].type != APD__J_ARR || d->nodes[v].count != h->n_classes) {
        *why = "metadata \"class_names\" is not an array of n_classes strings";
        return APD_EMETA;
    }
    m->class_names = calloc(h->n_classes, sizeof *m->class_names);
    if (!m->class_names) {
        *why = "out of memory";
        return APD_ENOMEM;
    }
    i = 0;
    for (int e = d->nodes[v].first; e >= 0; e = d->nodes[e].next, i++) {
        if (!apd__json_str(d, e, m->class_names[i], sizeof m->class_names[i])) {
            *why = "metadata class name is not a string of at most 63 bytes";
            return APD_EMETA;
        }
    }
    return APD_OK;
}

apd_status apd__meta_parse(const char *json, size_t len, const apd__header *h, apd__meta *m,
                           const char **why)
{
    memset(m, 0, sizeof *m);
    apd__json d;
    apd_status s = apd__json_parse(&d, json, len);
    if (s != APD_OK) {
        *why = s == APD_ENOMEM ? "out of memory parsing metadata" : "metadata is not valid JSON";
        return s;
    }
    const int root = 0;
    if (d.nodes[root].type != APD__J_OBJ) {
        *why = "metadata is not a JSON object";
        s = APD_EMETA;
    }
    if (s == APD_OK) s = meta_check_header(&d, root, h, why);
    if (s == APD_OK) s = meta_check_complete(&d, root, m, why);
    if (s == APD_OK) {
        m->n_classes = h->n_classes;
        s = meta_parse_source(&d, root, h, m, why);
    }
    if (s == APD_OK) s = meta_parse_classes(&d, root, h, m, why);
    apd__json_free(&d);
    if (s != APD_OK) apd__meta_free(m);
    return s;
}
