/* io/text.c: the small text and name helpers of the importers (see io_internal.h): bounded
 * whole-file reads, line walking, class names cut at a UTF-8 boundary, unique-name checks,
 * decimal numbers of side files.
 *
 * Why whole-file reads: the side files of datasets (labels.csv, val_annotations.txt,
 * words.txt, CIFAR pickles) are read once and parsed with explicit bounds; reading them whole
 * under a stated size limit keeps every parser a loop over a buffer, with no partial-line
 * state and one place that refuses a hostile size.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "io/io_internal.h"

apd_status apd__read_file(const char *path, uint64_t max, char **buf, size_t *len, apd_err *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return apd__err_sys(err, errno, path, "cannot open");
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return apd__err_sys(err, e, path, "cannot stat");
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return apd__err_set(err, APD_EDATASET, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size > max || size >= SIZE_MAX) {
        fclose(f);
        return apd__err_set(err, APD_ELIMIT, "%s: %llu bytes, more than the %llu this file may have", path,
                            (unsigned long long)size, (unsigned long long)max);
    }
    char *b = malloc((size_t)size + 1);
    if (!b) {
        fclose(f);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory for %llu bytes", path, (unsigned long long)size);
    }
    size_t got = fread(b, 1, (size_t)size, f);
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (got != size) {
        free(b);
        if (e) return apd__err_sys(err, e, path, "read error");
        return apd__err_set(err, APD_ETRUNC, "%s: read %zu of %llu bytes (the file shrank)", path, got,
                            (unsigned long long)size);
    }
    b[got] = '\0';
    *buf = b;
    *len = got;
    return APD_OK;
}

int apd__next_line(const char *buf, size_t len, size_t *pos, const char **line, size_t *llen)
{
    if (*pos >= len) return 0;
    const char *s = buf + *pos, *nl = memchr(s, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - s) : len - *pos;
    *pos += n + (nl ? 1 : 0);
    if (n && s[n - 1] == '\r') n--;
    *line = s;
    *llen = n;
    return 1;
}

int apd__set_class_name(char dst[APD_MAX_CLASS_NAME], const char *s, size_t len)
{
    int cut = 0;
    if (len > APD_MAX_CLASS_NAME - 1) {
        len = APD_MAX_CLASS_NAME - 1;
        /* back up over continuation bytes (10xxxxxx) to the start of the cut character, and
         * drop that character too unless it is complete */
        size_t start = len;
        while (start > 0 && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
        len = start;
        cut = 1;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return cut;
}

typedef struct name_ref {
    const char *name;
    uint32_t id;
} name_ref;

static int cmp_ref(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->id > y->id) - (x->id < y->id);
}

apd_status apd__check_unique_names(char (*names)[APD_MAX_CLASS_NAME], uint32_t n, const char *where,
                                   apd_err *err)
{
    if (n < 2) return APD_OK;
    name_ref *r = malloc((size_t)n * sizeof *r);
    if (!r) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", where);
    for (uint32_t i = 0; i < n; i++) r[i] = (name_ref){names[i], i};
    qsort(r, n, sizeof *r, cmp_ref);
    apd_status s = APD_OK;
    for (uint32_t i = 1; i < n && s == APD_OK; i++)
        if (!strcmp(r[i - 1].name, r[i].name))
            s = apd__err_set(err, APD_EDATASET,
                             "%s: classes %u and %u are both named '%s' (class names must differ; names "
                             "longer than %d bytes are cut)", where, r[i - 1].id, r[i].id, r[i].name,
                             APD_MAX_CLASS_NAME - 1);
    free(r);
    return s;
}

int apd__has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

int apd__parse_u64(const char *s, uint64_t *v)
{
    if (!*s || strlen(s) > 20) return 0;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        if (x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return 0;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *v = x;
    return 1;
}
