/* io/folder_layouts.c: the two folder layouts that carry their labels in side files.
 *
 * apd-export folders (what `apd-export FILE --png DIR [--per-class]` writes):
 *
 *     DIR/labels.csv        index,label,class,source_id,file   (RFC 4180 quoting)
 *     DIR/apd-export.json   {"format": "apd-export", "version": 1, "dataset", "split",
 *                            "c", "h", "w", "n_classes", "class_names": [...],
 *                            "mean": [...], "std": [...], ...}
 *     DIR/[<class>/]NNNNNN.png
 *
 * The labels, class names, image geometry and mean/std are taken from these files, not from
 * folder names: folder names are sanitised class names and sort in another order than the
 * labels, so only the side files give back the same label ids. Images come in labels.csv
 * order (the exported record order); a record's source id is its "index". Without
 * apd-export.json (an export from an older apd-export) the class count is the largest label
 * + 1, names come from labels.csv and mean/std from the pixels, with a warning. The soft labels
 * of a file with them (DIR/soft-labels.csv, named by apd-export.json) come back as the
 * dataset's soft_labels (export_soft.c).
 *
 * Tiny-ImageNet (tiny-imagenet-200 as downloaded):
 *
 *     DIR/wnids.txt                       the class ids (WordNet ids), one a line
 *     DIR/words.txt                       wnid TAB "name, synonym, ..." (optional)
 *     DIR/train/<wnid>/images/NAME.JPEG   split train (default)
 *     DIR/val/images/NAME.JPEG + DIR/val/val_annotations.txt (file TAB wnid TAB box...)  split val
 *     DIR/test/images/                    unlabelled: split test is an error
 *
 * Classes are the wnids in byte order (the order of torchvision's ImageFolder over train/),
 * named by the first synonym in words.txt ("goldfish"); names that repeat get the wnid
 * appended ("crane (n02012849)"); without words.txt the name is the wnid.
 *
 * Hostile input: every side file is read whole under a size limit; lines, fields and names
 * are bounded; paths in labels.csv / val_annotations.txt must stay inside the folder (no
 * absolute paths, no "..", no hidden components) and name image files that exist; a file
 * listed twice, an unknown class, a class name that disagrees with apd-export.json are
 * errors naming the file and line. Image files present but not listed are left out with one
 * warning.
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apd/json.h"
#include "io/io_internal.h"

#define EXPORT_JSON_MAX (64ull << 20)
#define LIST_MAX (1ull << 30) /* labels.csv / val_annotations.txt / words.txt */
#define MAX_CLASSES (1u << 20)
#define FIELD_MAX 1024u

static int join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n >= 0 && (size_t)n < cap;
}

/* A path from a side file: relative, inside the folder, no hidden or empty components, an
 * image extension. */
static int safe_rel_path(const char *p)
{
    if (!*p || *p == '/' || !apd__has_image_ext(p)) return 0;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || s[0] == '.') return 0; /* "", ".", "..", ".hidden" */
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 32 || s[i] == '\\') return 0;
        s += n + (e ? 1 : 0);
        if (e && !*s) return 0; /* trailing slash */
    }
    return 1;
}

/* A path of the file list with its list position, for sorting. */
typedef struct path_idx {
    const char *path;
    uint64_t i;
} path_idx;

static int cmp_pi(const void *a, const void *b)
{
    const path_idx *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* fl->paths sorted (with their list positions) into *out; a file listed twice is an error
 * naming both lines (lines[i] = the line of entry i). */
static apd_status sorted_paths(const apd__flist *fl, const uint64_t *lines, const char *list, path_idx **out,
                               apd_err *err)
{
    path_idx *v = malloc((fl->n ? fl->n : 1) * sizeof *v);
    if (!v) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", list);
    for (size_t i = 0; i < fl->n; i++) v[i] = (path_idx){fl->paths[i], i};
    qsort(v, fl->n, sizeof *v, cmp_pi);
    for (size_t i = 1; i < fl->n; i++)
        if (!strcmp(v[i - 1].path, v[i].path)) {
            apd_status s = apd__err_set(err, APD_EDATASET, "%s: lines %llu and %llu list the same file %s", list,
                                        (unsigned long long)lines[v[i - 1].i], (unsigned long long)lines[v[i].i],
                                        v[i].path);
            free(v);
            return s;
        }
    *out = v;
    return APD_OK;
}

/* Remember that entry n - 1 of the list came from line ln. */
static int note_line(uint64_t **lines, size_t *cap, size_t n, uint64_t ln)
{
    if (n > *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        while (c < n) c *= 2;
        uint64_t *nl = realloc(*lines, c * sizeof *nl);
        if (!nl) return 0;
        *lines = nl;
        *cap = c;
    }
    (*lines)[n - 1] = ln;
    return 1;
}

static int listed(const path_idx *v, size_t n, const char *path)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(v[mid].path, path) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && !strcmp(v[lo].path, path);
}

/* Count the image files of dir that are not in the sorted list; with depth 1 also those of
 * its sub-folders. */
static uint64_t count_unlisted(const char *dir, int depth, const path_idx *v, size_t n, char *example, size_t cap)
{
    uint64_t missing = 0;
    char path[APD_IO_PATH];
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !join(path, sizeof path, dir, e->d_name)) continue;
        if (depth > 0 && apd__is_dir(path)) {
            uint64_t m = count_unlisted(path, 0, v, n, missing ? NULL : example, cap);
            missing += m;
        } else if (apd__has_image_ext(e->d_name) && !listed(v, n, path) && !missing++ && example) {
            snprintf(example, cap, "%s", path);
        }
    }
    if (d) closedir(d);
    return missing;
}

/* Image files of dir (depth 1: and of its sub-folders) that the list does not name are left
 * out: one warning with the count and an example. */
static void warn_unlisted(const char *dir, int depth, const path_idx *v, size_t n, const char *list,
                          const apd_import_opts *o)
{
    if (!o || !o->warn) return;
    char example[APD_IO_PATH] = "";
    uint64_t missing = count_unlisted(dir, depth, v, n, example, sizeof example);
    if (missing)
        apd__io_warn(o, "%s: %llu image file%s not listed in %s left out (e.g. %s)", dir, (unsigned long long)missing,
                     missing == 1 ? "" : "s", list, example);
}

/* ---- apd-export: apd-export.json ------------------------------------------------------------ */

static apd_status json_str(const apd_json_doc *d, int node, char *buf, size_t cap, const char *path,
                           const char *key, apd_err *err)
{
    apd_status s = apd_json_string(d, node, buf, cap);
    if (s == APD_EBUFSIZE)
        return apd__err_set(err, APD_EDATASET, "%s: \"%s\" longer than %zu bytes", path, key, cap - 1);
    if (s != APD_OK) return apd__err_set(err, APD_EDATASET, "%s: \"%s\" is not a string", path, key);
    return APD_OK;
}

static apd_status json_uint(const apd_json_doc *d, const char *key, uint64_t lo, uint64_t hi, uint64_t *v,
                            const char *path, apd_err *err)
{
    if (apd_json_u64(d, apd_json_get(d, 0, key), v) != APD_OK || *v < lo || *v > hi)
        return apd__err_set(err, APD_EDATASET, "%s: \"%s\" is missing or not an integer in %llu..%llu", path, key,
                            (unsigned long long)lo, (unsigned long long)hi);
    return APD_OK;
}

/* Geometry, classes, normalisation, dataset name and split from the parsed document. */
static apd_status export_meta_doc(apd__flist *fl, const apd_json_doc *d, const char *path, apd_err *err)
{
    char fmt[32];
    uint64_t ver, c, h, w, nc;
    if (apd_json_type_of(d, 0) != APD_JSON_OBJECT || apd_json_string(d, apd_json_get(d, 0, "format"), fmt, sizeof fmt) != APD_OK ||
        strcmp(fmt, "apd-export"))
        return apd__err_set(err, APD_EDATASET, "%s: not an apd-export description (\"format\": \"apd-export\" missing)", path);
    APD_TRY(json_uint(d, "version", 1, UINT32_MAX, &ver, path, err));
    if (ver != 1)
        return apd__err_set(err, APD_EUNSUPPORTED, "%s: apd-export version %llu; this reader knows version 1", path,
                            (unsigned long long)ver);
    APD_TRY(json_uint(d, "c", 1, 3, &c, path, err));
    if (c == 2) return apd__err_set(err, APD_EDATASET, "%s: \"c\" is 2 (1 or 3 expected)", path);
    APD_TRY(json_uint(d, "h", 1, APD_IO_MAX_DIM, &h, path, err));
    APD_TRY(json_uint(d, "w", 1, APD_IO_MAX_DIM, &w, path, err));
    APD_TRY(json_uint(d, "n_classes", 0, MAX_CLASSES, &nc, path, err));
    int names = apd_json_get(d, 0, "class_names");
    if (apd_json_type_of(d, names) != APD_JSON_ARRAY || apd_json_count(d, names) != nc)
        return apd__err_set(err, APD_EDATASET, "%s: \"class_names\" is not an array of %llu names", path, (unsigned long long)nc);
    fl->c = (uint32_t)c;
    fl->h = (uint32_t)h;
    fl->w = (uint32_t)w;
    fl->n_classes = (uint32_t)nc;
    if (nc && !(fl->names = calloc(nc, APD_MAX_CLASS_NAME))) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    int k = apd_json_first(d, names);
    for (uint64_t i = 0; i < nc; i++, k = apd_json_next(d, k))
        APD_TRY(json_str(d, k, fl->names[i], APD_MAX_CLASS_NAME, path, "class_names", err));
    int mv = apd_json_get(d, 0, "mean"), sv = apd_json_get(d, 0, "std");
    if (apd_json_count(d, mv) != c || apd_json_count(d, sv) != c)
        return apd__err_set(err, APD_EDATASET, "%s: \"mean\" and \"std\" must hold %llu numbers", path, (unsigned long long)c);
    fl->has_norm = 1;
    int a = apd_json_first(d, mv), b = apd_json_first(d, sv);
    for (uint64_t ch = 0; ch < c; ch++, a = apd_json_next(d, a), b = apd_json_next(d, b)) {
        double m, s;
        if (apd_json_number(d, a, &m) != APD_OK || apd_json_number(d, b, &s) != APD_OK || !isfinite(m) || !isfinite(s) ||
            m < 0 || m > 1 || s < 0 || s > 1)
            return apd__err_set(err, APD_EDATASET, "%s: \"mean\"/\"std\" channel %llu is not a number in 0..1", path,
                                (unsigned long long)ch);
        fl->mean[ch] = (float)m;
        fl->std[ch] = (float)s;
        if (!(s > 0)) fl->has_norm = 0; /* the file recorded none */
    }
    if (apd_json_get(d, 0, "split") >= 0) APD_TRY(json_str(d, apd_json_get(d, 0, "split"), fl->split, sizeof fl->split, path, "split", err));
    if (apd_json_get(d, 0, "dataset") >= 0) APD_TRY(json_str(d, apd_json_get(d, 0, "dataset"), fl->name, sizeof fl->name, path, "dataset", err));
    int soft = apd_json_get(d, 0, "soft_labels"); /* a file name, null or absent (older exports) */
    if (soft >= 0 && apd_json_type_of(d, soft) != APD_JSON_NULL)
        APD_TRY(json_str(d, soft, fl->soft_file, sizeof fl->soft_file, path, "soft_labels", err));
    return APD_OK;
}

static apd_status export_meta(apd__flist *fl, const char *path, apd_err *err)
{
    char *text;
    size_t len;
    APD_TRY(apd__read_file(path, EXPORT_JSON_MAX, &text, &len, err));
    apd_json_doc *d;
    apd_status s = apd_json_parse(&d, text, len);
    free(text);
    if (s != APD_OK) return apd__err_set(err, s == APD_ENOMEM ? s : APD_EDATASET, "%s: not valid JSON", path);
    s = export_meta_doc(fl, d, path, err);
    apd_json_free(d);
    return s;
}

/* ---- apd-export: labels.csv ----------------------------------------------------------------- */

typedef struct csv_cur {
    const char *b;
    size_t len, pos;
    uint64_t line; /* 1-based line of the current row */
} csv_cur;

/* One field (RFC 4180: "..." with "" for a quote) into out; *eor = the field ended its row.
 * @return NULL or the reason it is malformed. */
static const char *csv_field(csv_cur *c, char *out, size_t cap, int *eor)
{
    size_t n = 0;
    int quoted = c->pos < c->len && c->b[c->pos] == '"';
    if (quoted) c->pos++;
    for (;;) {
        if (c->pos >= c->len) {
            if (quoted) return "a quoted field is not closed";
            *eor = 1;
            break;
        }
        char ch = c->b[c->pos++];
        if (quoted && ch == '"') {
            if (c->pos < c->len && c->b[c->pos] == '"') {
                c->pos++;
            } else {
                quoted = 0;
                if (c->pos < c->len && c->b[c->pos] != ',' && c->b[c->pos] != '\n' && c->b[c->pos] != '\r')
                    return "text after a closing quote";
                continue;
            }
        } else if (!quoted && (ch == ',' || ch == '\n' || ch == '\r')) {
            if (ch == '\r') {
                if (c->pos >= c->len || c->b[c->pos] != '\n') return "a carriage return outside quotes";
                c->pos++;
            }
            *eor = ch != ',';
            break;
        } else if (!quoted && ch == '"') {
            return "a quote inside an unquoted field";
        } else if (ch == '\0') {
            return "a NUL byte";
        }
        if (quoted && ch == '\n') c->line++;
        if (n + 1 >= cap) return "a field longer than its limit";
        out[n++] = ch;
    }
    out[n] = '\0';
    return NULL;
}

/* The 5 fields of the next row; 0 at the end of the text, -1 on a malformed row (*why).
 * *row_line: the line the row starts on. */
static int csv_row(csv_cur *c, char f[5][FIELD_MAX], const char **why, uint64_t *row_line)
{
    if (c->pos >= c->len) return 0;
    int eor = 0, k = 0;
    *row_line = ++c->line;
    while (!eor) {
        char scratch[FIELD_MAX];
        if ((*why = csv_field(c, k < 5 ? f[k] : scratch, k == 2 ? APD_MAX_CLASS_NAME : FIELD_MAX, &eor))) return -1;
        k++;
    }
    if (k != 5) {
        *why = k < 5 ? "fewer than 5 fields" : "more than 5 fields";
        return -1;
    }
    return 1;
}

/* One data row of labels.csv into fl (names checked against, or taken into, fl->names). */
static apd_status export_row(apd__flist *fl, const char *dir, const char *csv, uint64_t line, char f[5][FIELD_MAX],
                             int have_meta, apd_err *err)
{
    uint64_t idx, label, sid;
    if (!apd__parse_u64(f[0], &idx)) return apd__err_set(err, APD_EDATASET, "%s: line %llu: index '%s' is not a number", csv, (unsigned long long)line, f[0]);
    if (!apd__parse_u64(f[1], &label) || label >= (have_meta ? fl->n_classes : MAX_CLASSES))
        return apd__err_set(err, APD_EDATASET, "%s: line %llu: label '%s' is not a class id below %u", csv,
                            (unsigned long long)line, f[1], have_meta ? fl->n_classes : MAX_CLASSES);
    if (f[3][0] && !apd__parse_u64(f[3], &sid))
        return apd__err_set(err, APD_EDATASET, "%s: line %llu: source_id '%s' is not a number", csv, (unsigned long long)line, f[3]);
    if (!safe_rel_path(f[4]))
        return apd__err_set(err, APD_EDATASET, "%s: line %llu: file '%s' is not a relative path to a .png/.jpg/.jpeg "
                            "inside the folder", csv, (unsigned long long)line, f[4]);
    if (!have_meta && label >= fl->n_classes) { /* grow the class table */
        char (*nn)[APD_MAX_CLASS_NAME] = realloc(fl->names, (size_t)(label + 1) * APD_MAX_CLASS_NAME);
        if (!nn) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", csv);
        for (uint64_t k = fl->n_classes; k <= label; k++) nn[k][0] = '\0';
        fl->names = nn;
        fl->n_classes = (uint32_t)label + 1;
    }
    char *name = fl->names[label];
    if (!have_meta && !name[0]) snprintf(name, APD_MAX_CLASS_NAME, "%s", f[2]);
    if (strcmp(name, f[2]))
        return apd__err_set(err, APD_EDATASET, "%s: line %llu: class '%s' for label %llu, but %s names it '%s'", csv,
                            (unsigned long long)line, f[2], (unsigned long long)label,
                            have_meta ? "apd-export.json" : "an earlier line", name);
    char path[APD_IO_PATH];
    if (!join(path, sizeof path, dir, f[4])) return apd__err_set(err, APD_ELIMIT, "%s: line %llu: path too long", csv, (unsigned long long)line);
    if (!apd__is_file(path))
        return apd__err_set(err, APD_ENOENT, "%s: line %llu: %s: no such image file", csv, (unsigned long long)line, path);
    if (apd__flist_push(fl, path, (uint32_t)label, idx) != APD_OK) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", csv);
    return APD_OK;
}

/* labels.csv into fl; *v: the listed paths sorted (for the unlisted-file check). */
static apd_status export_csv(apd__flist *fl, const char *dir, const char *csv, int have_meta, path_idx **v,
                             apd_err *err)
{
    char *text;
    size_t len, lcap = 0;
    uint64_t *lines = NULL;
    APD_TRY(apd__read_file(csv, LIST_MAX, &text, &len, err));
    csv_cur c = {.b = text, .len = len};
    char (*row)[FIELD_MAX] = malloc(5 * FIELD_MAX);
    apd_status s = row ? APD_OK : apd__err_set(err, APD_ENOMEM, "%s: out of memory", csv);
    const char *why = NULL;
    uint64_t ln = 0;
    int r = s == APD_OK ? csv_row(&c, row, &why, &ln) : 0;
    if (s == APD_OK && (r != 1 || strcmp(row[0], "index") || strcmp(row[1], "label") || strcmp(row[2], "class") ||
                        strcmp(row[3], "source_id") || strcmp(row[4], "file")))
        s = apd__err_set(err, APD_EDATASET, "%s: line 1: header is not index,label,class,source_id,file", csv);
    while (s == APD_OK && (r = csv_row(&c, row, &why, &ln)) == 1) {
        s = export_row(fl, dir, csv, ln, row, have_meta, err);
        if (s == APD_OK && !note_line(&lines, &lcap, fl->n, ln)) s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", csv);
    }
    if (s == APD_OK && r < 0) s = apd__err_set(err, APD_EDATASET, "%s: line %llu: %s", csv, (unsigned long long)ln, why);
    if (s == APD_OK && !fl->n) s = apd__err_set(err, APD_EEMPTY, "%s: lists no images", csv);
    if (s == APD_OK) s = sorted_paths(fl, lines, csv, v, err);
    free(lines);
    free(row);
    free(text);
    return s;
}

apd_status apd__folder_export(apd__flist *fl, const char *dir, const char *split,
                              const apd_import_opts *o, apd_err *err)
{
    char csv[APD_IO_PATH], meta[APD_IO_PATH];
    if (!join(csv, sizeof csv, dir, "labels.csv") || !join(meta, sizeof meta, dir, "apd-export.json"))
        return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    int have_meta = apd__is_file(meta);
    if (have_meta) {
        APD_TRY(export_meta(fl, meta, err));
    } else {
        apd__io_warn(o, "%s: no apd-export.json next to labels.csv: class count from the largest label, names from "
                     "labels.csv, mean/std from the pixels", dir);
    }
    if (split && fl->split[0] && strcmp(split, fl->split))
        return apd__err_set(err, APD_EDATASET, "%s: the exported images are the %s split; split %s does not apply",
                            dir, fl->split, split);
    if (split && !fl->split[0] && strcmp(split, "train"))
        return apd__err_set(err, APD_EDATASET, "%s: an export without a split, so there is no %s split", dir, split);
    path_idx *v = NULL;
    /* a file without classes (n_classes 0) exports labels only: take them as without the json */
    APD_TRY(export_csv(fl, dir, csv, have_meta && fl->n_classes > 0, &v, err));
    if (fl->soft_file[0]) {
        apd_status ss = apd__folder_export_soft(fl, dir, fl->soft_file, err);
        if (ss != APD_OK) {
            free(v);
            return ss;
        }
    }
    for (uint32_t k = 0; k < fl->n_classes; k++) /* unnamed classes, or ones no line names */
        if (!fl->names[k][0]) snprintf(fl->names[k], APD_MAX_CLASS_NAME, "%u", k);
    apd_status s = apd__check_unique_names(fl->names, fl->n_classes, have_meta ? meta : csv, err);
    if (s == APD_OK) warn_unlisted(dir, 1, v, fl->n, "labels.csv", o);
    free(v);
    return s;
}

/* ---- Tiny-ImageNet -------------------------------------------------------------------------- */

typedef struct wnid_list {
    char (*id)[APD_MAX_CLASS_NAME]; /* sorted */
    uint32_t n;
} wnid_list;

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static int wnid_find(const wnid_list *w, const char *s, size_t len)
{
    char key[APD_MAX_CLASS_NAME];
    if (len >= sizeof key) return -1;
    memcpy(key, s, len);
    key[len] = '\0';
    const char (*hit)[APD_MAX_CLASS_NAME] = bsearch(key, w->id, w->n, APD_MAX_CLASS_NAME, cmp_name);
    return hit ? (int)(hit - w->id) : -1;
}

static int wnid_ok(const char *s, size_t n)
{
    if (!n || n >= APD_MAX_CLASS_NAME || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '-' || s[i] == '.'))
            return 0;
    return 1;
}

static apd_status tiny_wnids(const char *dir, wnid_list *w, apd_err *err)
{
    char path[APD_IO_PATH], *text;
    size_t len, pos = 0, ll;
    const char *line;
    uint64_t ln = 0;
    if (!join(path, sizeof path, dir, "wnids.txt")) return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    APD_TRY(apd__read_file(path, 16u << 20, &text, &len, err));
    apd_status s = APD_OK;
    uint32_t cap = 0;
    while (s == APD_OK && apd__next_line(text, len, &pos, &line, &ll)) {
        ln++;
        while (ll && (line[ll - 1] == ' ' || line[ll - 1] == '\t')) ll--;
        if (!ll) continue;
        if (!wnid_ok(line, ll)) {
            s = apd__err_set(err, APD_EDATASET, "%s: line %llu: '%.*s' is not a class id (letters, digits, _ - .; at "
                             "most 63 bytes)", path, (unsigned long long)ln, (int)(ll > 80 ? 80 : ll), line);
            break;
        }
        if (w->n == MAX_CLASSES) s = apd__err_set(err, APD_ELIMIT, "%s: more than %u classes", path, MAX_CLASSES);
        if (s == APD_OK && w->n == cap) {
            cap = cap ? cap * 2 : 256;
            char (*nid)[APD_MAX_CLASS_NAME] = realloc(w->id, (size_t)cap * APD_MAX_CLASS_NAME);
            if (!nid) s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
            else w->id = nid;
        }
        if (s == APD_OK) apd__set_class_name(w->id[w->n++], line, ll);
    }
    free(text);
    if (s == APD_OK && !w->n) s = apd__err_set(err, APD_EEMPTY, "%s: lists no classes", path);
    if (s != APD_OK) return s;
    qsort(w->id, w->n, APD_MAX_CLASS_NAME, cmp_name);
    return apd__check_unique_names(w->id, w->n, path, err);
}

typedef struct name_at {
    const char *name;
    uint32_t k;
} name_at;

static int cmp_name_at(const void *a, const void *b)
{
    const name_at *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->k > y->k) - (x->k < y->k);
}

/* Names that repeat become "name (wnid)" (the name cut at a UTF-8 boundary to fit). */
static apd_status disambiguate(apd__flist *fl, const wnid_list *w, const char *dir, apd_err *err)
{
    name_at *v = malloc((size_t)w->n * sizeof *v);
    uint8_t *dup = calloc(w->n, 1);
    if (!v || !dup) {
        free(v);
        free(dup);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", dir);
    }
    for (uint32_t k = 0; k < w->n; k++) v[k] = (name_at){fl->names[k], k};
    qsort(v, w->n, sizeof *v, cmp_name_at);
    for (uint32_t i = 1; i < w->n; i++)
        if (!strcmp(v[i - 1].name, v[i].name)) dup[v[i - 1].k] = dup[v[i].k] = 1;
    free(v);
    for (uint32_t k = 0; k < w->n; k++) {
        if (!dup[k]) continue;
        size_t room = APD_MAX_CLASS_NAME - 1 - (strlen(w->id[k]) + 3), len = strlen(fl->names[k]);
        if (len > room) { /* cut at a character boundary */
            len = room;
            while (len > 0 && ((unsigned char)fl->names[k][len] & 0xC0) == 0x80) len--;
        }
        char buf[2 * APD_MAX_CLASS_NAME + 4];
        snprintf(buf, sizeof buf, "%.*s (%s)", (int)len, fl->names[k], w->id[k]);
        apd__set_class_name(fl->names[k], buf, strlen(buf));
    }
    free(dup);
    return apd__check_unique_names(fl->names, fl->n_classes, dir, err);
}

/* Names: the first synonym of each wnid's words.txt line; repeated names get " (wnid)". */
static apd_status tiny_names(apd__flist *fl, const char *dir, const wnid_list *w, const apd_import_opts *o,
                             apd_err *err)
{
    char path[APD_IO_PATH], *text = NULL;
    size_t len = 0, pos = 0, ll;
    const char *line;
    if (!(fl->names = calloc(w->n, APD_MAX_CLASS_NAME))) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", dir);
    fl->n_classes = w->n;
    if (!join(path, sizeof path, dir, "words.txt")) return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    if (apd__is_file(path)) APD_TRY(apd__read_file(path, LIST_MAX, &text, &len, err));
    else apd__io_warn(o, "%s: no words.txt; classes are named by their ids", dir);
    while (text && apd__next_line(text, len, &pos, &line, &ll)) {
        const char *tab = memchr(line, '\t', ll);
        int k = tab ? wnid_find(w, line, (size_t)(tab - line)) : -1;
        if (k < 0 || fl->names[k][0]) continue;
        const char *s = tab + 1, *e = line + ll, *comma = memchr(s, ',', (size_t)(e - s));
        if (comma) e = comma;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        apd__set_class_name(fl->names[k], s, (size_t)(e - s));
    }
    free(text);
    uint32_t unnamed = 0;
    for (uint32_t k = 0; k < w->n; k++)
        if (!fl->names[k][0]) {
            memcpy(fl->names[k], w->id[k], APD_MAX_CLASS_NAME);
            unnamed++;
        }
    if (unnamed && len) apd__io_warn(o, "%s: %u class id%s without a name; named by the id", path, unnamed, unnamed == 1 ? "" : "s");
    return disambiguate(fl, w, dir, err);
}

static apd_status tiny_train(apd__flist *fl, const char *dir, const wnid_list *w, const apd_import_opts *o,
                             apd_err *err)
{
    char train[APD_IO_PATH], cls[APD_IO_PATH], img[APD_IO_PATH];
    if (!join(train, sizeof train, dir, "train")) return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    if (!apd__is_dir(train)) return apd__err_set(err, APD_EDATASET, "%s: Tiny-ImageNet folder without train/", dir);
    DIR *d = opendir(train);
    if (!d) return apd__err_sys(err, errno, train, "cannot open folder");
    struct dirent *e;
    apd_status s = APD_OK;
    while (s == APD_OK && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && join(cls, sizeof cls, train, e->d_name) && apd__is_dir(cls) &&
            wnid_find(w, e->d_name, strlen(e->d_name)) < 0)
            s = apd__err_set(err, APD_EDATASET, "%s: class folder not listed in wnids.txt", cls);
    closedir(d);
    for (uint32_t k = 0; s == APD_OK && k < w->n; k++) {
        if (!join(cls, sizeof cls, train, w->id[k]) || !join(img, sizeof img, cls, "images"))
            return apd__err_set(err, APD_ELIMIT, "%s: path too long", train);
        if (!apd__is_dir(img)) return apd__err_set(err, APD_EDATASET, "%s: missing (class %s is in wnids.txt)", img, w->id[k]);
        s = apd__flist_add_folder(fl, img, k, w->id[k], o, err);
    }
    if (s == APD_OK && !fl->n) s = apd__err_set(err, APD_EEMPTY, "%s: no images", train);
    return s;
}

/* One val_annotations.txt line: "file TAB wnid [TAB x0 TAB y0 TAB x1 TAB y1]". */
static apd_status tiny_val_line(apd__flist *fl, const char *images, const char *ann, uint64_t ln, const char *line,
                                size_t ll, const wnid_list *w, uint64_t src, apd_err *err)
{
    const char *t1 = memchr(line, '\t', ll);
    const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(line + ll - t1 - 1)) : NULL;
    size_t fn = t1 ? (size_t)(t1 - line) : 0, wn = t1 ? (size_t)((t2 ? t2 : line + ll) - t1 - 1) : 0;
    char file[256];
    if (!t1 || fn == 0 || fn >= sizeof file)
        return apd__err_set(err, APD_EDATASET, "%s: line %llu: expected FILE<TAB>WNID...", ann, (unsigned long long)ln);
    memcpy(file, line, fn);
    file[fn] = '\0';
    if (strchr(file, '/') || !safe_rel_path(file))
        return apd__err_set(err, APD_EDATASET, "%s: line %llu: '%s' is not an image file name", ann, (unsigned long long)ln, file);
    int k = wnid_find(w, t1 + 1, wn);
    if (k < 0)
        return apd__err_set(err, APD_EDATASET, "%s: line %llu: class '%.*s' is not in wnids.txt", ann, (unsigned long long)ln,
                            (int)(wn > 80 ? 80 : wn), t1 + 1);
    char path[APD_IO_PATH];
    if (!join(path, sizeof path, images, file)) return apd__err_set(err, APD_ELIMIT, "%s: path too long", images);
    if (!apd__is_file(path))
        return apd__err_set(err, APD_ENOENT, "%s: line %llu: %s: no such image file", ann, (unsigned long long)ln, path);
    if (apd__flist_push(fl, path, (uint32_t)k, src) != APD_OK) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", ann);
    return APD_OK;
}

static apd_status tiny_val(apd__flist *fl, const char *dir, const wnid_list *w, const apd_import_opts *o,
                           apd_err *err)
{
    char val[APD_IO_PATH], ann[APD_IO_PATH], images[APD_IO_PATH], *text;
    size_t len, pos = 0, ll;
    const char *line;
    if (!join(val, sizeof val, dir, "val") || !join(ann, sizeof ann, val, "val_annotations.txt") ||
        !join(images, sizeof images, val, "images"))
        return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    if (!apd__is_dir(images) || !apd__is_file(ann))
        return apd__err_set(err, APD_EDATASET, "%s: Tiny-ImageNet val split needs val/images/ and val/val_annotations.txt", dir);
    APD_TRY(apd__read_file(ann, LIST_MAX, &text, &len, err));
    apd_status s = APD_OK;
    uint64_t ln = 0, *lines = NULL;
    size_t lcap = 0;
    while (s == APD_OK && apd__next_line(text, len, &pos, &line, &ll)) {
        ln++;
        if (!ll) continue;
        s = tiny_val_line(fl, images, ann, ln, line, ll, w, fl->n, err);
        if (s == APD_OK && !note_line(&lines, &lcap, fl->n, ln)) s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", ann);
    }
    free(text);
    if (s == APD_OK && !fl->n) s = apd__err_set(err, APD_EEMPTY, "%s: lists no images", ann);
    path_idx *v = NULL;
    if (s == APD_OK) s = sorted_paths(fl, lines, ann, &v, err);
    if (s == APD_OK) warn_unlisted(images, 0, v, fl->n, "val_annotations.txt", o);
    free(v);
    free(lines);
    return s;
}

apd_status apd__folder_tiny(apd__flist *fl, const char *dir, const char *split,
                            const apd_import_opts *o, apd_err *err)
{
    const char *sp = split ? split : "train";
    if (!strcmp(sp, "test"))
        return apd__err_set(err, APD_EDATASET, "%s: Tiny-ImageNet's test/ images carry no labels; use the val split", dir);
    wnid_list w = {0};
    apd_status s = tiny_wnids(dir, &w, err);
    if (s == APD_OK) s = tiny_names(fl, dir, &w, o, err);
    if (s == APD_OK) s = !strcmp(sp, "val") ? tiny_val(fl, dir, &w, o, err) : tiny_train(fl, dir, &w, o, err);
    if (s == APD_OK) snprintf(fl->split, sizeof fl->split, "%s", sp);
    free(w.id);
    return s;
}
