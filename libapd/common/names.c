/* common/names.c: UTF-8 aware fitting and de-duplication of short names (names.h).
 *
 * Why: folder class names longer than 63 bytes were cut at byte 63, in the middle of a UTF-8
 * character (the metadata document, which must be UTF-8, became invalid) and two folders
 * whose names share their first 63 bytes became one class name twice.
 */
#include <stdio.h>
#include <string.h>

#include "common/names.h"

size_t apd__utf8_seq(const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;      /* no overlong forms */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

int apd__utf8_fit(char *out, size_t cap, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), o = 0, i = 0;
    int changed = 0;
    while (i < n) {
        size_t l = apd__utf8_seq(p + i, n - i);
        if (o + (l ? l : 1) > cap - 1) {
            changed = 1;
            break;
        }
        if (l) {
            memcpy(out + o, p + i, l);
            o += l;
            i += l;
        } else {
            out[o++] = '?';
            i++;
            changed = 1;
        }
    }
    out[o] = 0;
    return changed;
}

static int seen_before(const char *names, size_t j, size_t cap, const char *s)
{
    for (size_t i = 0; i < j; i++)
        if (!strcmp(names + i * cap, s)) return 1;
    return 0;
}

size_t apd__names_distinct(char *names, size_t n, size_t cap)
{
    size_t changed = 0;
    char base[256], cand[300], suffix[24];
    if (cap > sizeof base) return 0;
    for (size_t j = 1; j < n; j++) {
        char *nm = names + j * cap;
        if (!seen_before(names, j, cap, nm)) continue;
        snprintf(base, sizeof base, "%s", nm);
        for (unsigned k = 2;; k++) {
            int sl = snprintf(suffix, sizeof suffix, "~%u", k);
            apd__utf8_fit(cand, cap - (size_t)sl, base); /* room for the suffix, on a boundary */
            strcat(cand, suffix);
            /* also distinct from the names after it, so no later rename is needed */
            int clash = seen_before(names, j, cap, cand);
            for (size_t i = j + 1; i < n && !clash; i++) clash = !strcmp(names + i * cap, cand);
            if (!clash) break;
        }
        memcpy(nm, cand, strlen(cand) + 1);
        changed++;
    }
    return changed;
}
