/* common/sb.h: a growable string buffer for building text (JSON metadata, provenance).
 * Library-internal, usable by every module. Errors are sticky: after a failed allocation
 * oom is set and further appends do nothing; check oom once at the end. */
#ifndef APD_COMMON_SB_H
#define APD_COMMON_SB_H

#include <stddef.h>

typedef struct apd__sb {
    char *p;
    size_t len, cap;
    int oom;
} apd__sb;
void apd__sb_add(apd__sb *b, const char *s, size_t n);
void apd__sb_puts(apd__sb *b, const char *s);
void apd__sb_printf(apd__sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a quoted, escaped JSON string. */
void apd__sb_jstr(apd__sb *b, const char *s);
void apd__sb_free(apd__sb *b);


#endif
