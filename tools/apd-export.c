/* apd-export: write the images of an .apd file as PNG files or as a contact sheet.
 *
 *   apd-export FILE --png DIR [--per-class] [--limit N]
 *       one PNG per record: DIR/NNNNNN.png, or DIR/<class>/NNNNNN.png with --per-class
 *       (NNNNNN = record index). Palette records become indexed PNGs (PLTE, the smallest
 *       legal bit depth for the record's K), direct records 8-bit grey/RGB PNGs.
 *       DIR/labels.csv lists index,label,class,source_id,file for every exported record;
 *       DIR/apd-export.json states what labels alone cannot: the class names in label order
 *       (also of classes without an exported record), the geometry, the mean/std recorded in
 *       the file and the source split, so that `apd-convert --input folder:DIR` gives back
 *       the same label ids, class names and mean/std (libapd/io/folder_layouts.c reads it).
 *       A file with soft labels (format 1.1) also gives DIR/soft-labels.csv:
 *       index,stored,p0,...,p<n_classes-1> per exported record (stored 0: the record has no
 *       vector and the row is the one-hot vector of its label), each value printed with %.9g
 *       so that it reads back as the same float32; apd-export.json names the file.
 *   apd-export FILE --sheet OUT.png [--per-class N]
 *       contact sheet: one row per class, the first N records of each class (default 10),
 *       the class name (or id) at the left of each row in a built-in bitmap font (tool_font.h).
 *       Images smaller than 64 pixels are scaled up by the smallest integer factor that makes
 *       them at least 64 pixels (nearest neighbour: every stored pixel stays visible as a
 *       block), cells are 2 px apart, missing cells white.
 *
 * Class folder names are the class names with '/', '\\' and control characters replaced by
 * '_' (and a leading '.' too); a class without a name uses its id; names that become equal
 * get "~<label>" (labels.csv says which class each file is in any case).
 * Exit codes: 0 success, 1 error (message names the file and record), 2 usage.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apd/format.h"
#include "apd/io.h"
#include "apd/json.h"
#include "tool_font.h"
#include "tool_util.h"

#define TOOL "apd-export"

static void help(void)
{
    printf("Usage: " TOOL " FILE --png DIR [--per-class] [--limit N]\n"
           "       " TOOL " FILE --sheet OUT.png [--per-class N]\n"
           "\n"
           "Export the images of an .apd file.\n"
           "\n"
           "  --png DIR         one PNG per record (indexed PNG for palette records), plus\n"
           "                    DIR/labels.csv and DIR/apd-export.json (class names in label\n"
           "                    order, mean/std); --per-class puts them in DIR/<class>/.\n"
           "                    apd-convert --input folder:DIR reads it back with the same\n"
           "                    labels, class names and mean/std. A file with soft labels\n"
           "                    also gives DIR/soft-labels.csv (index, stored, one column\n"
           "                    per class; exact float32 values)\n"
           "  --limit N         --png: only the first N records\n"
           "  --sheet OUT.png   contact sheet: one row per class labelled with its name, N\n"
           "                    images per class, small images scaled up to >= 64 pixels\n"
           "  --per-class N     --sheet: images per class (default 10)\n"
           "  -h, --help        this help\n"
           "  -V, --version     version\n"
           "\n"
           "Exit status: 0 success, 1 error, 2 usage error.\n");
}

__attribute__((format(printf, 1, 2))) static int usage(const char *msg, ...)
{
    fprintf(stderr, TOOL ": ");
    va_list ap;
    va_start(ap, msg);
    vfprintf(stderr, msg, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" TOOL " --help'.\n");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-') return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

static int make_dir(tool_progress *p, const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 1;
        errno = ENOTDIR;
    }
    if (p) tool_progress_stop(p);
    fprintf(stderr, TOOL ": %s: cannot create folder: %s\n", path, strerror(errno));
    return 0;
}

static void safe_name(char *out, size_t cap, const char *name, uint32_t cls)
{
    if (!name || !*name) {
        snprintf(out, cap, "%u", cls);
        return;
    }
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)name[i];
        out[i] = (ch == '/' || ch == '\\' || ch < 32 || ch == 127 || (i == 0 && ch == '.')) ? '_' : (char)ch;
    }
    out[i] = '\0';
}

typedef struct dir_ref {
    const char *name;
    uint32_t k;
} dir_ref;

static int cmp_dir_ref(const void *a, const void *b)
{
    const dir_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->k > y->k) - (x->k < y->k);
}

/* The class folder of every class: its sanitised name; names that sanitise alike ("a/b" and
 * "a_b") get "~<label>" after all but the first, so no two classes share a folder. Returns
 * NULL (message printed) on failure. */
static char (*class_dirs(apd_reader *r, const apd_file_info *fi))[80]
{
    uint32_t n = fi->n_classes;
    char (*d)[80] = calloc(n ? n : 1, 80);
    dir_ref *v = malloc((n ? n : 1) * sizeof *v);
    if (!d || !v) {
        fprintf(stderr, TOOL ": out of memory\n");
        free(d);
        free(v);
        return NULL;
    }
    for (uint32_t k = 0; k < n; k++) safe_name(d[k], 64, apd_reader_class_name(r, k), k);
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t k = 0; k < n; k++) v[k] = (dir_ref){d[k], k};
        qsort(v, n, sizeof *v, cmp_dir_ref);
        for (uint32_t i = 1; i < n; i++) {
            if (strcmp(v[i - 1].name, v[i].name)) continue;
            if (pass) { /* a suffix met another class's name: give up rather than merge */
                fprintf(stderr, TOOL ": classes %u and %u would share the folder '%s'\n", v[i - 1].k, v[i].k, v[i].name);
                free(d);
                free(v);
                return NULL;
            }
            char tmp[80];
            snprintf(tmp, sizeof tmp, "%.64s~%u", d[v[i].k], v[i].k);
            memcpy(d[v[i].k], tmp, sizeof tmp);
        }
    }
    free(v);
    return d;
}

static void csv_field(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* The "split" of the file's provenance "source" object, or "" (older files, no source). */
static void source_split(apd_reader *r, char *out, size_t cap)
{
    out[0] = '\0';
    const char *m = apd_reader_meta_json(r);
    apd_json_doc *d;
    if (!m || apd_json_parse(&d, m, strlen(m)) != APD_OK) return;
    if (apd_json_string(d, apd_json_get(d, apd_json_get(d, 0, "source"), "split"), out, cap) != APD_OK) out[0] = '\0';
    apd_json_free(d);
}

/* DIR/apd-export.json: what an importer needs beyond labels.csv (see the file comment). */
static int write_export_json(apd_reader *r, const apd_file_info *fi, const char *file, const char *dir,
                             uint64_t n, int per_class)
{
    char path[4200], split[32];
    snprintf(path, sizeof path, "%s/apd-export.json", dir);
    source_split(r, split, sizeof split);
    tool_sb b = {0};
    tool_sb_puts(&b, "{\"format\": \"apd-export\", \"version\": 1, \"file\": ");
    tool_sb_jstr(&b, file);
    tool_sb_puts(&b, ", \"dataset\": ");
    tool_sb_jstr(&b, fi->dataset_name);
    tool_sb_puts(&b, ", \"split\": ");
    tool_sb_jstr(&b, split);
    tool_sb_printf(&b, ", \"kind\": \"%s\", \"c\": %u, \"h\": %u, \"w\": %u, \"records\": %llu, \"per_class\": %s,\n"
                   " \"n_classes\": %u, \"class_names\": [", fi->kind == APD_KIND_PALETTE ? "palette" : "direct", fi->c,
                   fi->h, fi->w, (unsigned long long)n, per_class ? "true" : "false", fi->n_classes);
    for (uint32_t k = 0; k < fi->n_classes; k++) {
        const char *nm = apd_reader_class_name(r, k);
        if (k) tool_sb_puts(&b, ", ");
        tool_sb_jstr(&b, nm ? nm : "");
    }
    /* %.9g: a float printed so that it reads back as the same float */
    tool_sb_puts(&b, "],\n \"mean\": [");
    for (uint32_t ch = 0; ch < fi->c; ch++) tool_sb_printf(&b, "%s%.9g", ch ? ", " : "", (double)fi->mean[ch]);
    tool_sb_puts(&b, "], \"std\": [");
    for (uint32_t ch = 0; ch < fi->c; ch++) tool_sb_printf(&b, "%s%.9g", ch ? ", " : "", (double)fi->std[ch]);
    tool_sb_puts(&b, "],\n \"soft_labels\": ");
    tool_sb_puts(&b, fi->has_soft_labels ? "\"soft-labels.csv\"" : "null");
    tool_sb_puts(&b, "}\n");
    FILE *f = b.oom ? NULL : fopen(path, "w");
    int ok = f && fputs(tool_sb_str(&b), f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, TOOL ": %s: cannot write: %s\n", path, b.oom ? "out of memory" : strerror(errno));
    tool_sb_free(&b);
    return ok;
}

/* DIR/soft-labels.csv for the first n records (see the file comment). */
static int write_soft_csv(apd_reader *r, const apd_file_info *fi, const char *dir, uint64_t n)
{
    char path[4200], why[700];
    snprintf(path, sizeof path, "%s/soft-labels.csv", dir);
    FILE *f = fopen(path, "w");
    float *v = malloc((size_t)fi->n_classes * sizeof *v);
    int ok = f && v;
    if (!ok) fprintf(stderr, TOOL ": %s: cannot create: %s\n", path, v ? strerror(errno) : "out of memory");
    if (ok) fprintf(f, "index,stored");
    for (uint32_t k = 0; ok && k < fi->n_classes; k++) fprintf(f, ",p%u", k);
    if (ok) fputc('\n', f);
    for (uint64_t i = 0; ok && i < n; i++) {
        int present = 0;
        apd_status s = apd_reader_soft_label(r, i, v, fi->n_classes, &present);
        if (s != APD_OK) {
            fprintf(stderr, TOOL ": %s\n", tool_why(why, sizeof why, apd_reader_errmsg(r), s));
            ok = 0;
            break;
        }
        fprintf(f, "%llu,%d", (unsigned long long)i, present);
        for (uint32_t k = 0; k < fi->n_classes; k++) fprintf(f, ",%.9g", (double)v[k]);
        fputc('\n', f);
    }
    if (f && fclose(f) != 0 && ok) {
        fprintf(stderr, TOOL ": %s: write error: %s\n", path, strerror(errno));
        ok = 0;
    }
    free(v);
    return ok;
}

static int export_png(apd_reader *r, const apd_file_info *fi, const char *file, const char *dir, int per_class,
                      uint64_t limit)
{
    uint64_t n = fi->n_records;
    if (limit && limit < n) n = limit;
    if (!make_dir(NULL, dir)) return 1;
    tool_progress prog;
    tool_progress_init(&prog);
    char why[700];
    char path[4300], csvp[4200];
    snprintf(csvp, sizeof csvp, "%s/labels.csv", dir);
    FILE *csv = fopen(csvp, "w");
    if (!csv) {
        fprintf(stderr, TOOL ": %s: cannot create: %s\n", csvp, strerror(errno));
        return 1;
    }
    fprintf(csv, "index,label,class,source_id,file\n");
    char *made = per_class ? calloc(fi->n_classes ? fi->n_classes : 1, 1) : NULL;
    char (*cdir)[80] = per_class ? class_dirs(r, fi) : NULL;
    size_t img = (size_t)fi->c * fi->h * fi->w;
    uint8_t *pix = malloc(img), pal[768], *idx = malloc((size_t)fi->h * fi->w);
    int rc = 1;
    if (per_class && !cdir) goto out;
    if (!pix || !idx || (per_class && !made)) {
        fprintf(stderr, TOOL ": out of memory\n");
        goto out;
    }
    tool_progress_start(&prog, "export", n);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t label = 0, k = 0;
        apd_status s = fi->kind == APD_KIND_PALETTE ? apd_reader_record(r, i, pal, &k, idx, &label)
                                                    : apd_reader_decode(r, i, APD_LAYOUT_CHW, pix, img, &label);
        if (s != APD_OK) {
            tool_progress_stop(&prog);
            fprintf(stderr, TOOL ": %s\n", tool_why(why, sizeof why, apd_reader_errmsg(r), s));
            goto out;
        }
        const char *cname = apd_reader_class_name(r, label);
        char sub[200], rel[300];
        if (per_class) {
            /* a label without a class (a file with no classes): a folder named by the label */
            if (label < fi->n_classes) snprintf(sub, sizeof sub, "%s", cdir[label]);
            else snprintf(sub, sizeof sub, "%u", label);
            snprintf(rel, sizeof rel, "%s/%06llu.png", sub, (unsigned long long)i);
            if (label >= fi->n_classes || !made[label]) {
                snprintf(path, sizeof path, "%s/%s", dir, sub);
                if (!make_dir(&prog, path)) goto out;
                if (label < fi->n_classes) made[label] = 1;
            }
        } else {
            snprintf(rel, sizeof rel, "%06llu.png", (unsigned long long)i);
        }
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        apd_err err;
        s = fi->kind == APD_KIND_PALETTE ? apd_png_write_indexed(path, pal, k, fi->c, idx, fi->h, fi->w, &err)
                                         : apd_png_write_image(path, pix, fi->c, fi->h, fi->w, &err);
        if (s != APD_OK) {
            tool_progress_stop(&prog);
            fprintf(stderr, TOOL ": %s: record %llu: %s\n", file, (unsigned long long)i,
                    tool_why(why, sizeof why, err.msg, s));
            goto out;
        }
        uint64_t sid = APD_NO_SOURCE_ID;
        if (apd_reader_source_id(r, i, &sid) != APD_OK) sid = APD_NO_SOURCE_ID;
        fprintf(csv, "%llu,%u,", (unsigned long long)i, label);
        csv_field(csv, cname ? cname : "");
        if (sid == APD_NO_SOURCE_ID) fprintf(csv, ",,");
        else fprintf(csv, ",%llu,", (unsigned long long)sid);
        csv_field(csv, rel);
        fputc('\n', csv);
        tool_progress_set(&prog, i + 1);
    }
    rc = 0;
out:
    tool_progress_finish(&prog);
    if (fclose(csv) != 0 && rc == 0) {
        fprintf(stderr, TOOL ": %s: write error: %s\n", csvp, strerror(errno));
        rc = 1;
    }
    if (rc == 0 && fi->has_soft_labels && !write_soft_csv(r, fi, dir, n)) rc = 1;
    if (rc == 0 && !write_export_json(r, fi, file, dir, n, per_class)) rc = 1;
    if (rc == 0) printf(TOOL ": %llu PNG files in %s\n", (unsigned long long)n, dir);
    free(made);
    free(cdir);
    free(pix);
    free(idx);
    return rc;
}

/* Contact sheet layout: a label column, then rows x per cells of the images scaled up by
 * `scale`, GAP pixels apart and around. */
#define SHEET_GAP 2u
#define SHEET_MIN_CELL 64u   /* images are scaled up to at least this many pixels */
#define SHEET_LABEL_CHARS 20u

typedef struct sheet_img {
    uint32_t rows, per, c, h, w, scale, font, label_w;
    uint32_t W, H;           /* sheet size */
    uint8_t *px;             /* c planes of H x W */
} sheet_img;

/* Row label: the class name, else its id (and nothing for a file without classes). */
static void row_label(apd_reader *r, const apd_file_info *fi, uint32_t row, char *out, size_t cap)
{
    const char *nm = fi->n_classes ? apd_reader_class_name(r, row) : NULL;
    if (!fi->n_classes) out[0] = '\0';
    else if (nm && *nm) snprintf(out, cap, "%s", nm);
    else snprintf(out, cap, "%u", row);
}

static int sheet_layout(sheet_img *sh, apd_reader *r, const apd_file_info *fi, uint32_t per, const char *out)
{
    memset(sh, 0, sizeof *sh);
    sh->rows = fi->n_classes ? fi->n_classes : 10;
    sh->per = per;
    sh->c = fi->c;
    sh->h = fi->h;
    sh->w = fi->w;
    uint32_t side = fi->h > fi->w ? fi->h : fi->w;
    sh->scale = side >= SHEET_MIN_CELL ? 1 : (SHEET_MIN_CELL + side - 1) / side;
    sh->font = fi->h * sh->scale >= 2 * TOOL_FONT_CELL_H ? 2 : 1;
    uint32_t chars = 0;
    for (uint32_t row = 0; row < sh->rows && fi->n_classes; row++) {
        char lab[128];
        row_label(r, fi, row, lab, sizeof lab);
        uint32_t n = tool_font_chars(lab);
        if (n > chars) chars = n;
    }
    if (chars > SHEET_LABEL_CHARS) chars = SHEET_LABEL_CHARS;
    sh->label_w = chars ? chars * TOOL_FONT_CELL_W * sh->font + 2 * SHEET_GAP : 0;
    uint64_t cw = (uint64_t)fi->w * sh->scale, ch = (uint64_t)fi->h * sh->scale;
    uint64_t W = sh->label_w + per * (cw + SHEET_GAP) + SHEET_GAP, H = sh->rows * (ch + SHEET_GAP) + SHEET_GAP;
    if (W > (1u << 16) || H > (1u << 16) || W * H * fi->c > ((uint64_t)1 << 30)) {
        fprintf(stderr, TOOL ": %s: a sheet of %u x %u images of %ux%u would be %llux%llu pixels; use a "
                "smaller --per-class\n", out, sh->rows, per, fi->h, fi->w, (unsigned long long)W,
                (unsigned long long)H);
        return 0;
    }
    sh->W = (uint32_t)W;
    sh->H = (uint32_t)H;
    sh->px = malloc((size_t)W * H * fi->c);
    if (!sh->px) {
        fprintf(stderr, TOOL ": %s: out of memory for a %llux%llu sheet\n", out, (unsigned long long)W,
                (unsigned long long)H);
        return 0;
    }
    memset(sh->px, 255, (size_t)W * H * fi->c);
    return 1;
}

/* Copy one CHW image into cell (row, col), each pixel as a scale x scale block. */
static void sheet_put(sheet_img *sh, uint32_t row, uint32_t col, const uint8_t *img)
{
    uint32_t s = sh->scale;
    size_t x0 = sh->label_w + SHEET_GAP + (size_t)col * (sh->w * s + SHEET_GAP);
    size_t y0 = SHEET_GAP + (size_t)row * (sh->h * s + SHEET_GAP);
    for (uint32_t ch = 0; ch < sh->c; ch++)
        for (uint32_t y = 0; y < sh->h * s; y++) {
            const uint8_t *src = img + ((size_t)ch * sh->h + y / s) * sh->w;
            uint8_t *dst = sh->px + ((size_t)ch * sh->H + y0 + y) * sh->W + x0;
            for (uint32_t x = 0; x < sh->w * s; x++) dst[x] = src[x / s];
        }
}

static void sheet_labels(sheet_img *sh, apd_reader *r, const apd_file_info *fi)
{
    if (!sh->label_w) return;
    uint32_t cell_h = sh->h * sh->scale, text_h = 7 * sh->font;
    for (uint32_t row = 0; row < sh->rows; row++) {
        char lab[128];
        row_label(r, fi, row, lab, sizeof lab);
        int64_t y = SHEET_GAP + (int64_t)row * (cell_h + SHEET_GAP) + (cell_h > text_h ? (cell_h - text_h) / 2 : 0);
        tool_font_draw(sh->px, sh->c, sh->H, sh->W, SHEET_GAP, y, lab, SHEET_LABEL_CHARS, sh->font, 0);
    }
}

static int export_sheet(apd_reader *r, const apd_file_info *fi, const char *out, uint32_t per)
{
    sheet_img sh;
    if (!sheet_layout(&sh, r, fi, per, out)) return 1;
    size_t img = (size_t)fi->c * fi->h * fi->w;
    uint8_t *one = malloc(img);
    uint32_t *filled = calloc(sh.rows, sizeof(uint32_t));
    char why[700];
    int rc = 1;
    if (!one || !filled) {
        fprintf(stderr, TOOL ": out of memory\n");
        goto out;
    }
    uint64_t done = 0, cells = (uint64_t)sh.rows * per;
    for (uint64_t i = 0; i < fi->n_records && done < cells; i++) {
        uint32_t label;
        apd_status s = apd_reader_label(r, i, &label);
        if (s == APD_OK && fi->n_classes == 0) label = (uint32_t)(done / per);
        if (s == APD_OK && (label >= sh.rows || filled[label] >= per)) continue;
        if (s == APD_OK) s = apd_reader_decode(r, i, APD_LAYOUT_CHW, one, img, NULL);
        if (s != APD_OK) {
            fprintf(stderr, TOOL ": %s\n", tool_why(why, sizeof why, apd_reader_errmsg(r), s));
            goto out;
        }
        sheet_put(&sh, label, filled[label]++, one);
        done++;
    }
    sheet_labels(&sh, r, fi);
    apd_err err;
    apd_status s = apd_png_write_image(out, sh.px, sh.c, sh.H, sh.W, &err);
    if (s != APD_OK) {
        fprintf(stderr, TOOL ": %s\n", tool_why(why, sizeof why, err.msg, s));
        goto out;
    }
    printf(TOOL ": %s: %u rows x %u images (%llu filled), %ux%u cells (x%u), %ux%u pixels\n", out, sh.rows, per,
           (unsigned long long)done, fi->w * sh.scale, fi->h * sh.scale, sh.scale, sh.W, sh.H);
    rc = 0;
out:
    free(sh.px);
    free(one);
    free(filled);
    return rc;
}

int main(int argc, char **argv)
{
    const char *file = NULL, *png_dir = NULL, *sheet = NULL;
    int per_class_flag = 0;
    uint64_t per_class_n = 0, limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            help();
            return 0;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf(TOOL " %s (format %u.%u)\n", apd_version(), APD_FORMAT_VERSION_MAJOR, APD_FORMAT_VERSION_MINOR);
            return 0;
        } else if (!strcmp(a, "--png")) {
            if (++i >= argc) return usage("%s needs a folder", a);
            png_dir = argv[i];
        } else if (!strcmp(a, "--sheet")) {
            if (++i >= argc) return usage("%s needs an output file", a);
            sheet = argv[i];
        } else if (!strcmp(a, "--per-class") || !strncmp(a, "--per-class=", 12)) {
            /* a flag for --png, a count for --sheet: take the value if one follows */
            const char *v = a[11] == '=' ? a + 12 : (i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9') ? argv[++i] : NULL;
            per_class_flag = 1;
            if (v && (!parse_u64(v, &per_class_n) || per_class_n < 1 || per_class_n > 10000))
                return usage("--per-class '%s': expected 1..10000", v);
        } else if (!strcmp(a, "--limit")) {
            if (++i >= argc || !parse_u64(argv[i], &limit) || !limit) return usage("%s needs a positive count", "--limit");
        } else if (a[0] == '-' && a[1]) {
            return usage("unknown option '%s'", a);
        } else if (!file) {
            file = a;
        } else {
            return usage("unexpected argument '%s'", a);
        }
    }
    if (!file) return usage("%s", "missing FILE");
    if (!png_dir == !sheet) return usage("%s", "give exactly one of --png DIR or --sheet OUT.png");
    /* no option is ignored: each belongs to one mode */
    if (sheet && limit) return usage("%s", "--limit applies to --png only (--sheet takes --per-class N)");
    if (png_dir && per_class_n) return usage("--per-class %llu: a count applies to --sheet only (--png takes --per-class "
                                             "without a value)", (unsigned long long)per_class_n);

    apd_reader *r;
    apd_err err;
    apd_status s = apd_reader_open(&r, file, NULL, &err);
    if (s != APD_OK) {
        char why[700];
        fprintf(stderr, TOOL ": %s\n", tool_why(why, sizeof why, err.msg, s));
        return 1;
    }
    apd_file_info fi;
    if ((s = apd_reader_info(r, &fi)) != APD_OK) {
        fprintf(stderr, TOOL ": %s: %s\n", file, apd_reader_errmsg(r)[0] ? apd_reader_errmsg(r) : apd_strerror(s));
        apd_reader_close(r);
        return 1;
    }
    int rc = png_dir ? export_png(r, &fi, file, png_dir, per_class_flag, limit)
                     : export_sheet(r, &fi, sheet, per_class_n ? (uint32_t)per_class_n : 10);
    apd_reader_close(r);
    return rc;
}
