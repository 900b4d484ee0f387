/* apd-info: inspect an .apd file (spec/apd-format.md).
 *
 *   apd-info FILE              summary: version, geometry, K, bits, counts per class, bytes on
 *                              disk, bytes per image (payload / overhead), ratio against raw
 *                              pixels, budget figures, provenance
 *   apd-info --json FILE       the same as one JSON object (metadata document included)
 *   apd-info --verify FILE     check every checksum and record; names the first bad record by
 *                              index and LMDB key; exit 1 if any is bad
 *   apd-info --record N FILE   record N: label, source id, palette and index-use histogram,
 *                              and its soft-label vector (format 1.1; with --json as
 *                              "soft_label", exact float32 values, and "soft_label_stored")
 *
 * Exit codes: 0 ok, 1 error (unreadable or bad file, failed verification), 2 usage.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/format.h"
#include "apd/json.h"
#include "tool_util.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: apd-info [--json] [--verify] [--record N] FILE\n"
            "  Show what an .apd file holds: format version, geometry, palette size K and index\n"
            "  bits, records per class, bytes on disk and per image (payload and overhead),\n"
            "  ratio against raw pixels, budget and provenance.\n"
            "  --json        print everything as one JSON object\n"
            "  --verify      verify every record checksum and structure (exit 1 on the first bad\n"
            "                record, naming its index and LMDB key)\n"
            "  --record N    show record N: label, source id, palette, index-use histogram and\n"
            "                soft-label vector (format 1.1)\n"
            "  -h, --help    this help     -V, --version   print the version\n"
            "Exit codes: 0 ok, 1 error or verification failure, 2 usage error.\n");
}

/* Keys the library writes from the header and options (printed elsewhere), not provenance. */
static int is_lib_key(const char *k, size_t n)
{
    return apd_meta_key_classify(k, n) != APD_META_KEY_USER;
}

/* One metadata value on a line: strings unescaped, anything else as its JSON text with runs
 * of whitespace collapsed. */
static void print_value(const apd_json_doc *d, int v)
{
    if (apd_json_type_of(d, v) == APD_JSON_STRING) {
        char buf[4096];
        if (apd_json_string(d, v, buf, sizeof buf) == APD_OK) {
            printf("%s\n", buf);
            return;
        }
    }
    size_t n;
    const char *t = apd_json_text(d, v, &n);
    int prev_space = 0;
    for (size_t i = 0; t && i < n; i++) {
        char ch = t[i];
        int sp = ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
        if (sp && prev_space) continue;
        putchar(sp ? ' ' : ch);
        prev_space = sp;
    }
    putchar('\n');
}

/* Print provenance keys (everything the library does not maintain) as "key: value". */
static void print_provenance(const char *json)
{
    apd_json_doc *d;
    if (apd_json_parse(&d, json, strlen(json)) != APD_OK) return;
    printf("provenance:\n");
    int any = 0;
    for (int k = apd_json_first(d, 0); k >= 0; k = apd_json_next(d, apd_json_next(d, k))) {
        size_t kl;
        const char *key = apd_json_text(d, k, &kl); /* with its quotes */
        if (kl < 2 || is_lib_key(key + 1, kl - 2)) continue;
        printf("  %.*s: ", (int)(kl - 2), key + 1);
        print_value(d, apd_json_next(d, k));
        any = 1;
    }
    if (!any) printf("  (none recorded)\n");
    apd_json_free(d);
}

static int cmd_verify(apd_reader *r, const char *path, int json)
{
    uint64_t n = apd_reader_count(r);
    for (uint64_t i = 0; i < n; i++) {
        apd_status s = apd_reader_verify_record(r, i);
        if (s != APD_OK) {
            uint64_t chunk = 0;
            uint32_t slot = 0;
            apd_reader_locate(r, i, &chunk, &slot);
            if (json) {
                printf("{\"file\": ");
                tool_json_fputs(stdout, path);
                printf(", \"ok\": false, \"record\": %llu, \"chunk_key\": \"%016llx\", \"status\": \"%s\"}\n",
                       (unsigned long long)i, (unsigned long long)chunk, apd_strerror(s));
            }
            /* the reader's message names file, record and chunk key when it has them */
            const char *m = apd_reader_errmsg(r);
            char why[700], rec[48];
            snprintf(rec, sizeof rec, "record %llu", (unsigned long long)i);
            if (strstr(m, path) && strstr(m, rec))
                fprintf(stderr, "apd-info: %s\n", tool_why(why, sizeof why, m, s));
            else
                fprintf(stderr, "apd-info: %s: %s (chunk key %016llx, slot %u) is bad: %s\n", path, rec,
                        (unsigned long long)chunk, slot, tool_why(why, sizeof why, m, s));
            return 1;
        }
    }
    if (json) {
        printf("{\"file\": ");
        tool_json_fputs(stdout, path);
        printf(", \"ok\": true, \"records\": %llu}\n", (unsigned long long)n);
    } else {
        printf("%s: OK, %llu records verified (header, metadata, chunk tables and every record checksum)\n",
               path, (unsigned long long)n);
    }
    return 0;
}

/* A record's soft-label vector (format 1.1): v (fi->n_classes floats, malloc'd) and whether
 * the record stores it (else v is the one-hot vector of its label); v NULL for a file
 * without soft labels. 0 (message printed) on a bad vector or out of memory. */
static int read_soft(apd_reader *r, const apd_file_info *fi, uint64_t i, float **v, int *present)
{
    *v = NULL;
    *present = 0;
    if (!fi->has_soft_labels) return 1;
    *v = malloc((fi->n_classes ? fi->n_classes : 1) * sizeof **v);
    if (!*v) {
        fprintf(stderr, "apd-info: out of memory\n");
        return 0;
    }
    apd_status s = apd_reader_soft_label(r, i, *v, fi->n_classes, present);
    if (s != APD_OK) {
        char why[700];
        fprintf(stderr, "apd-info: %s\n", tool_why(why, sizeof why, apd_reader_errmsg(r), s));
        free(*v);
        *v = NULL;
        return 0;
    }
    return 1;
}

/* Text: one line of the vector; nothing for files without soft labels. */
static void print_soft(const float *v, uint32_t n, int present)
{
    if (!v) return;
    printf("  soft labels%s:", present ? "" : " (none stored: one-hot of the label)");
    for (uint32_t j = 0; j < n; j++) printf(" %.6g", (double)v[j]);
    printf("\n");
}

/* JSON: the members "soft_label" (the vector with %.9g, which reads back as the same float32;
 * null for a file without soft labels) and "soft_label_stored" (false: the one-hot vector of
 * the label, as the reader gives it). */
static void json_soft(const float *v, uint32_t n, int present)
{
    if (!v) {
        printf(", \"soft_label\": null, \"soft_label_stored\": false");
        return;
    }
    printf(", \"soft_label\": [");
    for (uint32_t j = 0; j < n; j++) printf("%s%.9g", j ? ", " : "", (double)v[j]);
    printf("], \"soft_label_stored\": %s", present ? "true" : "false");
}

static int cmd_record(apd_reader *r, const char *path, uint64_t i, const char *given, int json)
{
    apd_file_info fi;
    apd_reader_info(r, &fi);
    if (i >= fi.n_records) {
        if (fi.n_records)
            fprintf(stderr, "apd-info: %s: --record %s is out of range: the file has %llu record%s (0..%llu)\n",
                    path, given, (unsigned long long)fi.n_records, fi.n_records > 1 ? "s" : "",
                    (unsigned long long)fi.n_records - 1);
        else
            fprintf(stderr, "apd-info: %s: --record %s is out of range: the file has no records\n", path, given);
        return 1;
    }
    uint32_t label = 0;
    uint64_t sid = APD_NO_SOURCE_ID;
    apd_status s = apd_reader_label(r, i, &label);
    if (s == APD_OK) s = apd_reader_source_id(r, i, &sid);
    if (s != APD_OK) {
        char why[700];
        fprintf(stderr, "apd-info: %s\n", tool_why(why, sizeof why, apd_reader_errmsg(r), s));
        return 1;
    }
    const char *cname = apd_reader_class_name(r, label);
    float *soft;
    int stored;
    if (!read_soft(r, &fi, i, &soft, &stored)) return 1;
    if (fi.kind != APD_KIND_PALETTE) {
        if (json) {
            printf("{\"record\": %llu, \"label\": %u, \"source_id\": %lld, \"kind\": \"direct\"",
                   (unsigned long long)i, label, sid == APD_NO_SOURCE_ID ? -1LL : (long long)sid);
            json_soft(soft, fi.n_classes, stored);
            printf("}\n");
        } else {
            printf("record %llu: label %u%s%s%s, source id %s%llu, direct colour %ux%ux%u\n", (unsigned long long)i,
                   label, cname ? " (" : "", cname ? cname : "", cname ? ")" : "",
                   sid == APD_NO_SOURCE_ID ? "none " : "", sid == APD_NO_SOURCE_ID ? 0ULL : (unsigned long long)sid,
                   fi.c, fi.h, fi.w);
            print_soft(soft, fi.n_classes, stored);
        }
        free(soft);
        return 0;
    }
    size_t npix = (size_t)fi.h * fi.w;
    uint8_t pal[768], *idx = malloc(npix ? npix : 1);
    uint32_t k = 0;
    if (!idx) {
        fprintf(stderr, "apd-info: %s: out of memory\n", path);
        free(soft);
        return 1;
    }
    s = apd_reader_record(r, i, pal, &k, idx, NULL);
    if (s != APD_OK) {
        char why[700];
        fprintf(stderr, "apd-info: %s\n", tool_why(why, sizeof why, apd_reader_errmsg(r), s));
        free(idx);
        free(soft);
        return 1;
    }
    uint64_t hist[256] = {0};
    for (size_t p = 0; p < npix; p++) hist[idx[p]]++;
    uint32_t used = 0;
    for (uint32_t e = 0; e < k; e++) used += hist[e] != 0;
    if (json) {
        printf("{\"record\": %llu, \"label\": %u, \"source_id\": %lld, \"k\": %u, \"entries_used\": %u, \"palette\": [",
               (unsigned long long)i, label, sid == APD_NO_SOURCE_ID ? -1LL : (long long)sid, k, used);
        for (uint32_t e = 0; e < k; e++) {
            printf("%s[", e ? ", " : "");
            for (uint32_t ch = 0; ch < fi.c; ch++) printf("%s%u", ch ? ", " : "", pal[e * fi.c + ch]);
            printf("]");
        }
        printf("], \"histogram\": [");
        for (uint32_t e = 0; e < k; e++) printf("%s%llu", e ? ", " : "", (unsigned long long)hist[e]);
        printf("]");
        json_soft(soft, fi.n_classes, stored);
        printf("}\n");
    } else {
        printf("record %llu: label %u%s%s%s, source id ", (unsigned long long)i, label, cname ? " (" : "",
               cname ? cname : "", cname ? ")" : "");
        if (sid == APD_NO_SOURCE_ID) printf("none");
        else printf("%llu", (unsigned long long)sid);
        printf(", palette of %u entries (%u used), %u-bit indices, %ux%u\n", k, used, fi.bits, fi.h, fi.w);
        print_soft(soft, fi.n_classes, stored);
        printf("  entry  colour            pixels   share\n");
        for (uint32_t e = 0; e < k; e++) {
            char col[32];
            if (fi.c == 3) snprintf(col, sizeof col, "#%02x%02x%02x (%3u,%3u,%3u)", pal[3 * e], pal[3 * e + 1],
                                    pal[3 * e + 2], pal[3 * e], pal[3 * e + 1], pal[3 * e + 2]);
            else snprintf(col, sizeof col, "grey %3u", pal[e]);
            printf("  %5u  %-24s %7llu  %5.1f%%\n", e, col, (unsigned long long)hist[e],
                   npix ? 100.0 * (double)hist[e] / (double)npix : 0.0);
        }
    }
    free(idx);
    free(soft);
    return 0;
}

/* Storage figures per image, shared by the text and JSON summaries. */
typedef struct storage {
    double n, raw, disk, pay, stored; /* records; bytes per image: raw pixels, disk, payload, stored */
    double outside;                   /* bytes of the file outside the records (whole file) */
} storage;

static storage storage_of(const apd_file_info *fi, const apd_file_stats *st)
{
    storage g = {0};
    g.n = (double)fi->n_records;
    g.raw = (double)fi->c * fi->h * fi->w;
    double disk = (double)st->used_pages * (double)st->page_size;
    g.outside = disk - (double)st->stored_bytes;
    if (fi->n_records) {
        g.disk = disk / g.n;
        g.pay = (double)st->payload_bytes / g.n;
        g.stored = (double)st->stored_bytes / g.n;
    }
    return g;
}

static void summary_json(apd_reader *r, const char *path, const apd_file_info *fi, const apd_file_stats *st)
{
    storage g = storage_of(fi, st);
    double px = (double)fi->h * fi->w;
    printf("{\n  \"file\": ");
    tool_json_fputs(stdout, path);
    printf(",\n  \"storage\": {\"file_bytes\": %llu, \"page_size\": %llu, \"used_pages\": %llu, "
           "\"chunk_db_pages\": %llu, \"meta_db_pages\": %llu, \"stored_record_bytes\": %llu, "
           "\"payload_bytes\": %llu, \"compressed_records\": %llu, \"dictionary_bytes\": %llu, "
           "\"coded_records\": %llu, \"index_model_version\": %d, \"index_model_bytes\": %llu, \"soft_labels\": %s, \"soft_records\": %llu, "
           "\"bytes_per_image\": %.3f, \"payload_per_image\": %.3f, \"stored_per_image\": %.3f, "
           "\"overhead_per_image\": %.3f, \"bytes_outside_records\": %.0f, \"raw_bytes_per_image\": %.0f, "
           "\"ratio_vs_raw\": %.4f, \"records_ratio_vs_raw\": %.4f, \"bits_per_pixel\": %.4f, "
           "\"records_bits_per_pixel\": %.4f},\n  \"meta\": ",
           (unsigned long long)st->file_bytes, (unsigned long long)st->page_size,
           (unsigned long long)st->used_pages, (unsigned long long)st->chunk_db_pages,
           (unsigned long long)st->meta_db_pages, (unsigned long long)st->stored_bytes,
           (unsigned long long)st->payload_bytes, (unsigned long long)st->compressed_records,
           (unsigned long long)st->dict_bytes, (unsigned long long)st->coded_records, fi->has_index_model,
           (unsigned long long)st->imodel_bytes, fi->has_soft_labels ? "true" : "false",
           (unsigned long long)st->soft_records, g.disk, g.pay, g.stored, g.disk - g.pay, g.outside, g.raw,
           g.disk > 0 ? g.raw / g.disk : 0, g.stored > 0 ? g.raw / g.stored : 0,
           px > 0 ? g.disk * 8 / px : 0, px > 0 ? g.stored * 8 / px : 0);
    const char *m = apd_reader_meta_json(r);
    size_t ml = strlen(m);
    while (ml && (m[ml - 1] == '\n' || m[ml - 1] == ' ')) ml--;
    for (size_t i = 0; i < ml; i++) {
        putchar(m[i]);
        if (m[i] == '\n') fputs("  ", stdout);
    }
    printf("\n}\n");
}

/* "5.49x smaller than raw RGB" (or larger). */
static void vs_raw(char *out, size_t cap, double per, double raw, const apd_file_info *fi)
{
    snprintf(out, cap, "%.2fx %s than raw %s (%.0f bytes)", raw >= per ? raw / per : per / raw,
             raw >= per ? "smaller" : "larger", fi->c == 3 ? "RGB" : "grey", raw);
}

/* Bytes per image, told in two parts so that small files read right: the records themselves
 * (payload plus record headers, less what zstd saved) and the rest of the file (LMDB pages,
 * page slack, the metadata document), a cost per file that only more records amortise. */
static void storage_text(const apd_file_info *fi, const apd_file_stats *st)
{
    storage g = storage_of(fi, st);
    double px = (double)fi->h * fi->w;
    char cmp[96];
    printf("bytes on disk: %llu (file), %llu in use (%llu LMDB pages of %llu: chunks %llu, meta %llu)\n",
           (unsigned long long)st->file_bytes, (unsigned long long)(st->used_pages * st->page_size),
           (unsigned long long)st->used_pages, (unsigned long long)st->page_size,
           (unsigned long long)st->chunk_db_pages, (unsigned long long)st->meta_db_pages);
    if (!fi->n_records) return;
    const char *what = fi->kind == APD_KIND_PALETTE ? "palette + packed indices" : "pixels";
    if (g.stored >= g.pay)
        printf("stored:      %.1f bytes per image = %.1f payload (%s) + %.1f record headers and offsets\n",
               g.stored, g.pay, what, g.stored - g.pay);
    else
        printf("stored:      %.1f bytes per image = %.1f payload (%s) - %.1f saved by %s, net of record "
               "headers\n", g.stored, g.pay, what, g.pay - g.stored,
               st->coded_records ? "index coding (and zstd where it pays)" : "zstd");
    vs_raw(cmp, sizeof cmp, g.stored, g.raw, fi);
    printf("             %.3f bits/pixel; %s\n", g.stored * 8 / px, cmp);
    vs_raw(cmp, sizeof cmp, g.disk, g.raw, fi);
    printf("whole file:  %.1f bytes per image on disk, %.3f bits/pixel; %s\n", g.disk, g.disk * 8 / px, cmp);
    printf("             of which %.1f per image (%.0f bytes in all) are LMDB pages, page slack and metadata\n",
           g.outside / g.n, g.outside);
    if (g.outside > (double)st->stored_bytes)
        printf("             (a small file: this per-file part outweighs the records; with more records the\n"
               "             whole-file figure approaches the stored one)\n");
    if (st->compressed_records)
        printf("compression: %llu of %llu records zstd-compressed%s\n", (unsigned long long)st->compressed_records,
               (unsigned long long)fi->n_records, st->dict_bytes ? " (with dictionary)" : "");
    if (fi->has_index_model)
        printf("coding:      %llu of %llu records index-coded (MED residuals, rANS; index model version %d, %s, "
               "%llu bytes)\n",
               (unsigned long long)st->coded_records, (unsigned long long)fi->n_records, fi->has_index_model,
               fi->has_index_model >= 2 ? "continuous wavefront" : "row groups", (unsigned long long)st->imodel_bytes);
    if (fi->has_soft_labels)
        printf("soft labels: %llu of %llu records store a vector of %u float32 (format 1.1; the others: one-hot "
               "of their label)\n", (unsigned long long)st->soft_records, (unsigned long long)fi->n_records,
               fi->n_classes);
}

static int cmd_summary(apd_reader *r, const char *path, int json)
{
    apd_file_info fi;
    apd_file_stats st;
    apd_reader_info(r, &fi);
    apd_status s = apd_reader_stats(r, &st);
    if (s != APD_OK) {
        char why[700];
        fprintf(stderr, "apd-info: %s\n", tool_why(why, sizeof why, apd_reader_errmsg(r), s));
        return 1;
    }
    if (json) {
        summary_json(r, path, &fi, &st);
        return 0;
    }
    printf("file:        %s\n", path);
    printf("format:      .apd %u.%u, %s records%s%s%s\n", fi.version_major, fi.version_minor,
           fi.kind == APD_KIND_PALETTE ? "palette" : "direct", fi.has_dictionary ? ", zstd dictionary" : "",
           fi.has_index_model >= 2 ? ", entropy-coded index maps (1.2)"
           : fi.has_index_model  ? ", entropy-coded index maps (1.1)"
                                 : "",
           fi.has_soft_labels ? ", soft labels (1.1)" : "");
    if (fi.dataset_name[0]) printf("dataset:     %s\n", fi.dataset_name);
    printf("geometry:    %u x %u x %u (%s)\n", fi.c, fi.h, fi.w, fi.c == 3 ? "RGB" : "grey");
    if (fi.kind == APD_KIND_PALETTE) printf("palette:     K = %u colours, %u-bit indices\n", fi.k, fi.bits);
    printf("records:     %llu in %llu chunks of up to %u\n", (unsigned long long)fi.n_records,
           (unsigned long long)fi.n_chunks, fi.records_per_chunk);
    if (fi.n_classes) {
        printf("classes:     %u\n", fi.n_classes);
        for (uint32_t c = 0; c < fi.n_classes; c++) {
            const char *nm = apd_reader_class_name(r, c);
            printf("  %4u %-20s %llu\n", c, nm ? nm : "", (unsigned long long)apd_reader_class_count(r, c));
        }
    }
    if (fi.c && (fi.mean[0] != 0 || fi.std[0] != 0)) {
        printf("source mean/std:");
        for (uint32_t c = 0; c < fi.c; c++) printf(" %.4f/%.4f", (double)fi.mean[c], (double)fi.std[c]);
        printf("\n");
    }
    storage_text(&fi, &st);
    print_provenance(apd_reader_meta_json(r));
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, 0, 'j'}, {"verify", no_argument, 0, 'v'},
        {"record", required_argument, 0, 'r'}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
    int json = 0, verify = 0, opt;
    uint64_t rec = 0;
    const char *rec_arg = NULL; /* --record's value as given, NULL without --record */
    while ((opt = getopt_long(argc, argv, "jvr:hV", lo, NULL)) != -1) {
        switch (opt) {
        case 'j': json = 1; break;
        case 'v': verify = 1; break;
        case 'r': {
            /* Digits only; a number past UINT64_MAX reads as UINT64_MAX, which no file has as a
             * record index, so the range check below names the number as given. */
            char *end;
            errno = 0;
            rec_arg = optarg;
            rec = strtoull(optarg, &end, 10);
            if (!isdigit((unsigned char)optarg[0]) || *end) {
                fprintf(stderr, "apd-info: --record needs a record index >= 0, not '%s'\n", optarg);
                return 2;
            }
            if (errno == ERANGE) rec = UINT64_MAX;
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("apd-info (libapd %s, format %d.%d)\n", apd_version(), APD_FORMAT_VERSION_MAJOR,
                         APD_FORMAT_VERSION_MINOR); return 0;
        default: fprintf(stderr, "Try 'apd-info --help'.\n"); return 2; /* getopt said what */
        }
    }
    if (optind != argc - 1) {
        if (optind == argc) fprintf(stderr, "apd-info: missing FILE\n");
        else fprintf(stderr, "apd-info: one FILE at a time, got %d ('%s', '%s'%s)\n", argc - optind, argv[optind],
                     argv[optind + 1], argc - optind > 2 ? ", ..." : "");
        usage(stderr);
        return 2;
    }
    if (verify && rec_arg) {
        fprintf(stderr, "apd-info: --verify and --record are exclusive\n");
        return 2;
    }
    const char *path = argv[optind];
    apd_reader *r;
    apd_err err;
    apd_status s = apd_reader_open(&r, path, NULL, &err);
    if (s != APD_OK) {
        char why[700];
        fprintf(stderr, "apd-info: %s\n", tool_why(why, sizeof why, err.msg, s));
        return 1;
    }
    int rc;
    if (verify) rc = cmd_verify(r, path, json);
    else if (rec_arg) rc = cmd_record(r, path, rec, rec_arg, json);
    else rc = cmd_summary(r, path, json);
    apd_reader_close(r);
    return rc;
}
