/* apd-export: write the images of an .apd file as PNG files or as a contact sheet.
 *
 *   apd-export FILE --png DIR [--per-class] [--limit N]
 *       one PNG per record: DIR/NNNNNN.png, or DIR/<class>/NNNNNN.png with --per-class
 *       (NNNNNN = record index). Palette records become indexed PNGs (PLTE, the smallest
 *       legal bit depth for the record's K), direct records 8-bit grey/RGB PNGs.
 *       DIR/labels.csv lists index,label,class,source_id,file for every exported record.
 *   apd-export FILE --sheet OUT.png [--per-class N]
 *       contact sheet: one row per class, the first N records of each class (default 10),
 *       1-px white gaps, missing cells white.
 *
 * Class folder names are the class names with '/', '\\' and control characters replaced by
 * '_' (and a leading '.' too); a class without a name uses its id.
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
#include "common/progress.h"

#define TOOL "apd-export"

static void help(void)
{
    printf("Usage: " TOOL " FILE --png DIR [--per-class] [--limit N]\n"
           "       " TOOL " FILE --sheet OUT.png [--per-class N]\n"
           "\n"
           "Export the images of an .apd file.\n"
           "\n"
           "  --png DIR         one PNG per record (indexed PNG for palette records), plus\n"
           "                    DIR/labels.csv; --per-class puts them in DIR/<class>/\n"
           "  --limit N         --png: only the first N records\n"
           "  --sheet OUT.png   contact sheet: one row per class, N images per class\n"
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

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 1;
        errno = ENOTDIR;
    }
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

static void csv_field(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int export_png(apd_reader *r, const apd_file_info *fi, const char *file, const char *dir, int per_class,
                      uint64_t limit)
{
    uint64_t n = fi->n_records;
    if (limit && limit < n) n = limit;
    if (!make_dir(dir)) return 1;
    char path[4300], csvp[4200];
    snprintf(csvp, sizeof csvp, "%s/labels.csv", dir);
    FILE *csv = fopen(csvp, "w");
    if (!csv) {
        fprintf(stderr, TOOL ": %s: cannot create: %s\n", csvp, strerror(errno));
        return 1;
    }
    fprintf(csv, "index,label,class,source_id,file\n");
    char *made = per_class ? calloc(fi->n_classes ? fi->n_classes : 1, 1) : NULL;
    size_t img = (size_t)fi->c * fi->h * fi->w;
    uint8_t *pix = malloc(img), pal[768], *idx = malloc((size_t)fi->h * fi->w);
    int rc = 1;
    if (!pix || !idx || (per_class && !made)) {
        fprintf(stderr, TOOL ": out of memory\n");
        goto out;
    }
    apd_progress prog;
    apd_progress_start(&prog, "export", n);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t label = 0, k = 0;
        apd_status s = fi->kind == APD_KIND_PALETTE ? apd_reader_record(r, i, pal, &k, idx, &label)
                                                    : apd_reader_decode(r, i, APD_LAYOUT_CHW, pix, img, &label);
        if (s != APD_OK) {
            fprintf(stderr, TOOL ": %s (%s)\n", apd_reader_errmsg(r), apd_strerror(s));
            goto out;
        }
        const char *cname = apd_reader_class_name(r, label);
        char sub[200], rel[300];
        if (per_class) {
            safe_name(sub, sizeof sub, cname, label);
            snprintf(rel, sizeof rel, "%s/%06llu.png", sub, (unsigned long long)i);
            if (label < fi->n_classes && !made[label]) {
                snprintf(path, sizeof path, "%s/%s", dir, sub);
                if (!make_dir(path)) goto out;
                made[label] = 1;
            }
        } else {
            snprintf(rel, sizeof rel, "%06llu.png", (unsigned long long)i);
        }
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        apd_err err;
        s = fi->kind == APD_KIND_PALETTE ? apd_png_write_indexed(path, pal, k, fi->c, idx, fi->h, fi->w, &err)
                                         : apd_png_write_image(path, pix, fi->c, fi->h, fi->w, &err);
        if (s != APD_OK) {
            fprintf(stderr, TOOL ": %s: record %llu: %s\n", file, (unsigned long long)i, err.msg);
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
        apd_progress_set(&prog, i + 1);
    }
    apd_progress_finish(&prog);
    rc = 0;
out:
    if (fclose(csv) != 0 && rc == 0) {
        fprintf(stderr, TOOL ": %s: write error: %s\n", csvp, strerror(errno));
        rc = 1;
    }
    if (rc == 0) printf(TOOL ": %llu PNG files in %s\n", (unsigned long long)n, dir);
    free(made);
    free(pix);
    free(idx);
    return rc;
}

static int export_sheet(apd_reader *r, const apd_file_info *fi, const char *out, uint32_t per)
{
    uint32_t rows = fi->n_classes ? fi->n_classes : 10;
    size_t img = (size_t)fi->c * fi->h * fi->w;
    uint64_t cells = (uint64_t)rows * per;
    if (cells > (1u << 20) || cells * img > ((uint64_t)1 << 31)) {
        fprintf(stderr, TOOL ": %s: sheet of %u x %u images is too large\n", out, rows, per);
        return 1;
    }
    uint8_t *buf = malloc(cells * img);
    uint32_t *filled = calloc(rows, sizeof(uint32_t));
    if (!buf || !filled) {
        free(buf);
        free(filled);
        fprintf(stderr, TOOL ": out of memory\n");
        return 1;
    }
    memset(buf, 255, cells * img);
    uint64_t done = 0;
    for (uint64_t i = 0; i < fi->n_records && done < cells; i++) {
        uint32_t label;
        apd_status s = apd_reader_label(r, i, &label);
        if (s == APD_OK && fi->n_classes == 0) label = (uint32_t)(done / per);
        if (s == APD_OK && (label >= rows || filled[label] >= per)) continue;
        if (s == APD_OK)
            s = apd_reader_decode(r, i, APD_LAYOUT_CHW, buf + ((size_t)label * per + filled[label]) * img, img, NULL);
        if (s != APD_OK) {
            fprintf(stderr, TOOL ": %s (%s)\n", apd_reader_errmsg(r), apd_strerror(s));
            free(buf);
            free(filled);
            return 1;
        }
        filled[label]++;
        done++;
    }
    apd_err err;
    apd_status s = apd_png_write_sheet(out, buf, (uint32_t)cells, per, fi->c, fi->h, fi->w, &err);
    free(buf);
    free(filled);
    if (s != APD_OK) {
        fprintf(stderr, TOOL ": %s\n", err.msg);
        return 1;
    }
    printf(TOOL ": %s: %u rows x %u images (%llu filled)\n", out, rows, per, (unsigned long long)done);
    return 0;
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

    apd_reader *r;
    apd_err err;
    apd_status s = apd_reader_open(&r, file, NULL, &err);
    if (s != APD_OK) {
        fprintf(stderr, TOOL ": %s (%s)\n", err.msg, apd_strerror(s));
        return 1;
    }
    apd_file_info fi;
    if ((s = apd_reader_info(r, &fi)) != APD_OK) {
        fprintf(stderr, TOOL ": %s: %s\n", file, apd_strerror(s));
        apd_reader_close(r);
        return 1;
    }
    int rc = png_dir ? export_png(r, &fi, file, png_dir, per_class_flag, limit)
                     : export_sheet(r, &fi, sheet, per_class_n ? (uint32_t)per_class_n : 10);
    apd_reader_close(r);
    return rc;
}
