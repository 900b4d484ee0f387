/* common/sb.c: the library's growable string buffer (apd__sb) and its one JSON string writer
 * (apd_json_escape, public in apd/json.h). Every module that builds text (metadata, provenance,
 * hyperparameters) uses these. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/json.h"
#include "common/sb.h"


void apd__sb_add(apd__sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void apd__sb_puts(apd__sb *b, const char *s) { apd__sb_add(b, s, strlen(s)); }

void apd__sb_printf(apd__sb *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        apd__sb_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    apd__sb_add(b, big, (size_t)n);
    free(big);
}

/* The one JSON string writer of the library (RFC 8259 escaping: quote, backslash, controls).
 * Bytes >= 0x80 pass through: callers keep their strings valid UTF-8. */
size_t apd_json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
#define PUT(c) do { if (n + 1 < cap) out[n] = (char)(c); n++; } while (0)
    PUT('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned ch = *p;
        if (ch == '"' || ch == '\\') { PUT('\\'); PUT(ch); }
        else if (ch == '\n') { PUT('\\'); PUT('n'); }
        else if (ch == '\t') { PUT('\\'); PUT('t'); }
        else if (ch == '\r') { PUT('\\'); PUT('r'); }
        else if (ch < 0x20) {
            static const char hex[] = "0123456789abcdef";
            PUT('\\'); PUT('u'); PUT('0'); PUT('0'); PUT(hex[ch >> 4]); PUT(hex[ch & 15]);
        } else PUT(ch);
    }
    PUT('"');
#undef PUT
    if (cap) out[n < cap ? n : cap - 1] = 0;
    return n;
}

void apd__sb_jstr(apd__sb *b, const char *s)
{
    char small[256];
    size_t n = apd_json_escape(small, sizeof small, s);
    if (n < sizeof small) {
        apd__sb_add(b, small, n);
        return;
    }
    char *big = malloc(n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    apd_json_escape(big, n + 1, s);
    apd__sb_add(b, big, n);
    free(big);
}

void apd__sb_free(apd__sb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
