/* format/json_api.c: the public JSON reader (apd/json.h) over the format module's strict
 * parser (format/json.h), which the metadata reader also uses. The public document owns a
 * copy of its text so callers need not keep theirs alive. */
#include <stdlib.h>
#include <string.h>

#include "apd/json.h"
#include "format/json.h"

struct apd_json_doc {
    apd__json j;
    char *text;
};

static const apd__jnode *node_at(const apd_json_doc *d, int node)
{
    if (!d || node < 0 || (size_t)node >= d->j.n) return NULL;
    return &d->j.nodes[node];
}

APD_API apd_status apd_json_parse(apd_json_doc **out, const char *text, size_t len)
{
    if (!out) return APD_EINVAL;
    *out = NULL;
    if (!text) return APD_EINVAL;
    apd_json_doc *d = calloc(1, sizeof *d);
    char *copy = malloc(len + 1);
    if (!d || !copy) {
        free(d);
        free(copy);
        return APD_ENOMEM;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    apd_status s = apd__json_parse(&d->j, copy, len);
    if (s != APD_OK) {
        free(copy);
        free(d);
        return s;
    }
    d->text = copy;
    *out = d;
    return APD_OK;
}

APD_API void apd_json_free(apd_json_doc *d)
{
    if (!d) return;
    apd__json_free(&d->j);
    free(d->text);
    free(d);
}

/* The internal node types are declared in the same order as apd_json_type. */
APD_API apd_json_type apd_json_type_of(const apd_json_doc *d, int node)
{
    const apd__jnode *n = node_at(d, node);
    return n ? (apd_json_type)n->type : APD_JSON_NONE;
}

APD_API int apd_json_first(const apd_json_doc *d, int node)
{
    const apd__jnode *n = node_at(d, node);
    return n && (n->type == APD__J_ARR || n->type == APD__J_OBJ) ? n->first : -1;
}

APD_API int apd_json_next(const apd_json_doc *d, int node)
{
    const apd__jnode *n = node_at(d, node);
    return n ? n->next : -1;
}

APD_API size_t apd_json_count(const apd_json_doc *d, int node)
{
    const apd__jnode *n = node_at(d, node);
    if (!n) return 0;
    if (n->type == APD__J_ARR) return n->count;
    if (n->type == APD__J_OBJ) return n->count / 2;
    return 0;
}

APD_API int apd_json_get(const apd_json_doc *d, int obj, const char *key)
{
    if (!node_at(d, obj) || !key) return -1;
    return apd__json_get(&d->j, obj, key);
}

APD_API apd_status apd_json_string(const apd_json_doc *d, int node, char *buf, size_t cap)
{
    const apd__jnode *n = node_at(d, node);
    if (!n || n->type != APD__J_STR || !buf || cap == 0) return APD_EINVAL;
    if (apd__json_str(&d->j, node, buf, cap)) return APD_OK;
    buf[0] = '\0';
    /* Failed: too small, or the string holds \u0000. Unescaping never lengthens a string, so
     * a buffer of the escaped length tells the two apart. */
    if (cap > n->len) return APD_EINVAL;
    char *tmp = malloc((size_t)n->len + 1);
    if (!tmp) return APD_ENOMEM;
    int ok = apd__json_str(&d->j, node, tmp, (size_t)n->len + 1);
    free(tmp);
    return ok ? APD_EBUFSIZE : APD_EINVAL;
}

APD_API apd_status apd_json_number(const apd_json_doc *d, int node, double *out)
{
    if (!node_at(d, node) || !out) return APD_EINVAL;
    return apd__json_num(&d->j, node, out) ? APD_OK : APD_EINVAL;
}

APD_API apd_status apd_json_u64(const apd_json_doc *d, int node, uint64_t *out)
{
    if (!node_at(d, node) || !out) return APD_EINVAL;
    return apd__json_u64(&d->j, node, out) ? APD_OK : APD_EINVAL;
}

APD_API const char *apd_json_text(const apd_json_doc *d, int node, size_t *len)
{
    const apd__jnode *n = node_at(d, node);
    if (!n) {
        if (len) *len = 0;
        return NULL;
    }
    /* string spans are stored inside the quotes */
    size_t q = n->type == APD__J_STR ? 1 : 0;
    if (len) *len = n->len + 2 * q;
    return d->j.text + n->start - q;
}
