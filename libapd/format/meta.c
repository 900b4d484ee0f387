/* format/meta.c: parse and check the metadata document (meta db, key "json") against the
 * binary header. The binary header is authoritative for geometry and count; the document must
 * agree with it (spec/apd-format.md "Metadata"). This function is a fuzz target
 * (tests/fuzz/fuzz_meta.c): everything it reads is validated.
 */
#include <stdlib.h>
#include <string.h>

#include "format/format_internal.h"
#include "format/json.h"

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
    s = APD_EMETA;
    char buf[256];
    int root = 0, v;
    if (d.nodes[0].type != APD__J_OBJ) {
        *why = "metadata is not a JSON object";
        goto out;
    }
    v = apd__json_get(&d, root, "format");
    if (!apd__json_str(&d, v, buf, sizeof buf) || strcmp(buf, "apd") != 0) {
        *why = "metadata key \"format\" is not \"apd\"";
        goto out;
    }
    v = apd__json_get(&d, root, "kind");
    if (!apd__json_str(&d, v, buf, sizeof buf) ||
        strcmp(buf, h->kind == APD_KIND_PALETTE ? "palette" : "direct") != 0) {
        *why = "metadata \"kind\" disagrees with the header";
        goto out;
    }
    if (!num_eq(&d, root, "c", h->c) || !num_eq(&d, root, "h", h->h) ||
        !num_eq(&d, root, "w", h->w) || !num_eq(&d, root, "k", h->k) ||
        !num_eq(&d, root, "bits", h->bits) || !num_eq(&d, root, "n_records", h->n_records) ||
        !num_eq(&d, root, "n_classes", h->n_classes) ||
        !num_eq(&d, root, "records_per_chunk", h->per_chunk)) {
        *why = "metadata geometry, count or class count disagrees with the header";
        goto out;
    }
    /* completeness (spec 5.1): false in every commit but a writer's last */
    v = apd__json_get(&d, root, "complete");
    if (v >= 0 && d.nodes[v].type != APD__J_TRUE) {
        *why = d.nodes[v].type == APD__J_FALSE
                   ? "incomplete file: its writer never finished it (metadata \"complete\" is false)"
                   : "metadata \"complete\" is not true or false";
        goto out;
    }
    m->complete = v >= 0 ? 1 : -1;
    m->n_classes = h->n_classes;
    v = apd__json_get(&d, root, "dataset");
    if (v >= 0) {
        char big[1024];
        if (!apd__json_str(&d, v, big, sizeof big)) {
            *why = "metadata \"dataset\" is not a string (or longer than 1023 bytes)";
            goto out;
        }
        size_t bl = strlen(big);
        if (bl >= sizeof m->dataset) bl = sizeof m->dataset - 1; /* apd_file_info keeps 63 bytes */
        memcpy(m->dataset, big, bl);
        m->dataset[bl] = 0;
    }
    const char *ms_keys[2] = {"mean", "std"};
    float *ms_out[2] = {m->mean, m->std};
    for (int q = 0; q < 2; q++) {
        v = apd__json_get(&d, root, ms_keys[q]);
        if (v < 0) continue;
        if (d.nodes[v].type != APD__J_ARR || d.nodes[v].count != h->c) {
            *why = "metadata \"mean\"/\"std\" is not an array of c numbers";
            goto out;
        }
        uint32_t i = 0;
        for (int e = d.nodes[v].first; e >= 0; e = d.nodes[e].next, i++) {
            double x;
            if (!apd__json_num(&d, e, &x)) {
                *why = "metadata \"mean\"/\"std\" holds a non-number";
                goto out;
            }
            if (!apd__norm_value_ok(q, x)) {
                *why = q ? "metadata \"std\" out of range (0 for unknown, else 1e-6..0.5: pixels / 255)"
                         : "metadata \"mean\" out of range (0..1: pixels / 255)";
                goto out;
            }
            ms_out[q][i] = (float)x;
        }
    }
    if (h->n_classes) {
        v = apd__json_get(&d, root, "class_counts");
        if (v < 0 || d.nodes[v].type != APD__J_ARR || d.nodes[v].count != h->n_classes) {
            *why = "metadata \"class_counts\" is not an array of n_classes counts";
            goto out;
        }
        m->class_counts = calloc(h->n_classes, sizeof *m->class_counts);
        if (!m->class_counts) {
            s = APD_ENOMEM;
            *why = "out of memory";
            goto out;
        }
        uint64_t sum = 0, i = 0;
        for (int e = d.nodes[v].first; e >= 0; e = d.nodes[e].next, i++) {
            if (!apd__json_u64(&d, e, &m->class_counts[i]) ||
                __builtin_add_overflow(sum, m->class_counts[i], &sum)) {
                *why = "metadata \"class_counts\" holds a bad count";
                goto out;
            }
        }
        if (sum != h->n_records) {
            *why = "metadata \"class_counts\" does not sum to n_records";
            goto out;
        }
        v = apd__json_get(&d, root, "class_names");
        if (v >= 0) {
            if (d.nodes[v].type != APD__J_ARR || d.nodes[v].count != h->n_classes) {
                *why = "metadata \"class_names\" is not an array of n_classes strings";
                goto out;
            }
            m->class_names = calloc(h->n_classes, sizeof *m->class_names);
            if (!m->class_names) {
                s = APD_ENOMEM;
                *why = "out of memory";
                goto out;
            }
            i = 0;
            for (int e = d.nodes[v].first; e >= 0; e = d.nodes[e].next, i++) {
                if (!apd__json_str(&d, e, m->class_names[i], sizeof m->class_names[i])) {
                    *why = "metadata class name is not a string of at most 63 bytes";
                    goto out;
                }
            }
        }
    } else if (apd__json_get(&d, root, "class_names") >= 0) {
        v = apd__json_get(&d, root, "class_names");
        if (d.nodes[v].type != APD__J_ARR || d.nodes[v].count != 0) {
            *why = "metadata \"class_names\" given for a file without classes";
            goto out;
        }
    }
    s = APD_OK;
out:
    apd__json_free(&d);
    if (s != APD_OK) apd__meta_free(m);
    return s;
}
