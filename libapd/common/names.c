/* common/names.c: UTF-8 aware fitting of short names (names.h).
 *
 * Why: a class name cut at byte 63 in the middle of a UTF-8 character made the metadata
 * document, which must be UTF-8, invalid; the writer now stores only valid UTF-8 names.
 */
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

/* The n bytes at s are the start of a multi-byte character whose end was cut off. */
static int cut_character(const unsigned char *s, size_t n)
{
    size_t need = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : 0;
    if (!need || n >= need) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return 1;
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
        } else if (cut_character(p + i, n - i)) { /* the text itself was cut inside it */
            changed = 1;
            break;
        } else {
            out[o++] = '?';
            i++;
            changed = 1;
        }
    }
    out[o] = 0;
    return changed;
}
