/* io/export_soft.c: the soft labels of an apd-export folder (DIR/soft-labels.csv).
 *
 * apd-export writes it for a file with soft labels (format 1.1) and names it in
 * apd-export.json ("soft_labels": "soft-labels.csv"):
 *
 *     index,stored,p0,p1,...,p<n_classes-1>
 *     0,1,0.100000001,0.800000012,0.100000001
 *     1,0,0,0,1
 *
 * one row per exported record: its index (the "index" of labels.csv), stored 1 if the record
 * stores a vector and 0 if the row is the one-hot vector of its label, and the vector with
 * %.9g, which strtof reads back as the same float32. The rows are checked as the writer checks
 * a vector (finite, >= 0, summing to 1 within 1e-3, the label a class of largest value), so a
 * folder that imports can be written again; a stored-0 row must be the one-hot of the label.
 * Every labels.csv row needs exactly one row here and every row here a labels.csv row. Errors
 * name the file, the line and the reason.
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

#define SOFT_CSV_MAX (4ull << 30)
#define SOFT_SUM_TOL 1e-3 /* the writer's tolerance (spec section 7.5) */
#define NUM_MAX 64u       /* a %.9g float is at most 15 bytes; room for other spellings */

/* A list position with its index (labels.csv's "index"), for lookups by index. */
typedef struct idx_pos {
    uint64_t index;
    size_t pos;
} idx_pos;

static int cmp_index(const void *a, const void *b)
{
    uint64_t x = ((const idx_pos *)a)->index, y = ((const idx_pos *)b)->index;
    return x < y ? -1 : x > y;
}

/* The next comma-separated field of line[0..len) from *at into out (NUL-terminated).
 * @return 0 if the line has no more fields or the field is longer than cap - 1 (out then
 * holds its first cap - 1 bytes). */
static int next_field(const char *line, size_t len, size_t *at, char *out, size_t cap, int *more)
{
    out[0] = '\0';
    if (*at > len) return 0;
    const char *s = line + *at, *comma = memchr(s, ',', len - *at);
    size_t n = comma ? (size_t)(comma - s) : len - *at, keep = n < cap ? n : cap - 1;
    memcpy(out, s, keep); /* cut to cap - 1 bytes for the message when too long */
    out[keep] = '\0';
    *at += n + 1;
    *more = comma != NULL;
    return n < cap;
}

/* A decimal number as apd-export prints it (no spaces, no hex, no "nan"/"inf" words). */
static int parse_f32(const char *s, float *v)
{
    if (!*s || strspn(s, "0123456789.eE+-") != strlen(s)) return 0;
    char *end;
    *v = strtof(s, &end);
    return *end == '\0' && end != s;
}

/* The header: index,stored,p0..p<nc-1>. */
static int header_ok(const char *line, size_t len, uint32_t nc)
{
    char want[32];
    size_t at = 0;
    if (len < 12 || memcmp(line, "index,stored", 12)) return 0;
    at = 12;
    for (uint32_t k = 0; k < nc; k++) {
        int n = snprintf(want, sizeof want, ",p%u", k);
        if (len - at < (size_t)n || memcmp(line + at, want, (size_t)n)) return 0;
        at += (size_t)n;
    }
    return at == len;
}

/* The reason a row is bad into msg; @return APD_EDATASET. */
static apd_status bad(char *msg, size_t cap, const char *fmt, ...) APD__PRINTF(3, 4);
static apd_status bad(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return APD_EDATASET;
}

/* One data row into fl->soft / fl->soft_stored at the list position of its index; seen marks
 * the positions that have their row. The reason of a bad row into msg. */
static apd_status soft_row(apd__flist *fl, const idx_pos *map, uint8_t *seen, const char *line, size_t len,
                           char *msg, size_t cap)
{
    char f[NUM_MAX];
    size_t at = 0;
    int more = 0;
    uint64_t index;
    if (!next_field(line, len, &at, f, sizeof f, &more) || !apd__parse_u64(f, &index))
        return bad(msg, cap, "index '%.24s' is not a number", f);
    if (!more) return bad(msg, cap, "a row of an index only");
    idx_pos key = {index, 0}, *hit = bsearch(&key, map, fl->n, sizeof *map, cmp_index);
    if (!hit) return bad(msg, cap, "index %llu is not in labels.csv", (unsigned long long)index);
    size_t pos = hit->pos;
    if (seen[pos]) return bad(msg, cap, "a second row for index %llu", (unsigned long long)index);
    seen[pos] = 1;
    if (!next_field(line, len, &at, f, sizeof f, &more) || (strcmp(f, "0") && strcmp(f, "1")))
        return bad(msg, cap, "stored is not 0 or 1");
    int stored = f[0] == '1';
    uint32_t nc = fl->n_classes, label = fl->labels[pos];
    float *v = fl->soft + pos * nc, mx = 0.0f;
    double sum = 0;
    for (uint32_t k = 0; k < nc; k++) {
        if (!more) return bad(msg, cap, "%u values, expected %u (one per class)", k, nc);
        if (!next_field(line, len, &at, f, sizeof f, &more) || !parse_f32(f, &v[k]) || !isfinite(v[k]))
            return bad(msg, cap, "class %u: '%.20s' is not a finite number", k, f);
        if (v[k] < 0.0f) return bad(msg, cap, "class %u: %s is negative", k, f);
        sum += v[k];
        if (v[k] > mx) mx = v[k];
    }
    if (more) return bad(msg, cap, "more than %u values (one per class)", nc);
    if (!(fabs(sum - 1.0) <= SOFT_SUM_TOL)) return bad(msg, cap, "the values sum to %.9g, not 1 (tolerance 1e-3)", sum);
    if (v[label] < mx) return bad(msg, cap, "label %u (labels.csv) is not a class of largest value", label);
    if (!stored)
        for (uint32_t k = 0; k < nc; k++)
            if (v[k] != (k == label ? 1.0f : 0.0f))
                return bad(msg, cap, "stored 0, but not the one-hot vector of label %u", label);
    fl->soft_stored[pos] = (uint8_t)stored;
    return APD_OK;
}

/* The rows of text (path) into fl; map: list positions sorted by index. */
static apd_status soft_rows(apd__flist *fl, const idx_pos *map, const char *text, size_t len, const char *path,
                            apd_err *err)
{
    uint8_t *seen = calloc(fl->n, 1);
    if (!seen) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    size_t pos = 0, llen = 0;
    const char *line = NULL;
    uint64_t ln = 1;
    apd_status s = APD_OK;
    if (!apd__next_line(text, len, &pos, &line, &llen) || !header_ok(line, llen, fl->n_classes))
        s = apd__err_set(err, APD_EDATASET, "%s: line 1: header is not index,stored,p0..p%u", path, fl->n_classes - 1);
    while (s == APD_OK && apd__next_line(text, len, &pos, &line, &llen)) {
        ln++;
        char msg[160];
        if (soft_row(fl, map, seen, line, llen, msg, sizeof msg) != APD_OK)
            s = apd__err_set(err, APD_EDATASET, "%s: line %llu: %s", path, (unsigned long long)ln, msg);
    }
    for (size_t i = 0; s == APD_OK && i < fl->n; i++)
        if (!seen[i])
            s = apd__err_set(err, APD_EDATASET, "%s: no row for index %llu of labels.csv (%s)", path,
                             (unsigned long long)fl->src[i], fl->paths[i]);
    free(seen);
    return s;
}

apd_status apd__folder_export_soft(apd__flist *fl, const char *dir, const char *name, apd_err *err)
{
    char path[APD_IO_PATH];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    if (!name[0] || strchr(name, '/') || name[0] == '.')
        return apd__err_set(err, APD_EDATASET, "%s/apd-export.json: \"soft_labels\" '%s' is not a file name in the folder",
                            dir, name);
    if (!fl->n_classes)
        return apd__err_set(err, APD_EDATASET, "%s: soft labels, but the export has no classes", path);
    size_t nv;
    if (!apd__mul_ok(fl->n, fl->n_classes, &nv) || nv > SIZE_MAX / sizeof(float))
        return apd__err_set(err, APD_ELIMIT, "%s: %zu images x %u classes of soft labels", path, fl->n, fl->n_classes);
    char *text;
    size_t len;
    APD_TRY(apd__read_file(path, SOFT_CSV_MAX, &text, &len, err));
    idx_pos *map = malloc(fl->n * sizeof *map);
    fl->soft = malloc(nv * sizeof *fl->soft);
    fl->soft_stored = calloc(fl->n, 1);
    apd_status s = APD_OK;
    if (!map || !fl->soft || !fl->soft_stored) s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; s == APD_OK && i < fl->n; i++) map[i] = (idx_pos){fl->src[i], i};
    if (s == APD_OK) qsort(map, fl->n, sizeof *map, cmp_index);
    for (size_t i = 1; s == APD_OK && i < fl->n; i++)
        if (map[i].index == map[i - 1].index)
            s = apd__err_set(err, APD_EDATASET, "%s/labels.csv: index %llu is listed twice, so its soft labels are "
                             "ambiguous", dir, (unsigned long long)map[i].index);
    if (s == APD_OK) s = soft_rows(fl, map, text, len, path, err);
    free(map);
    free(text);
    return s;
}
