/* common/names.h: short UTF-8 names (class names of at most APD_MAX_CLASS_NAME - 1 bytes).
 * Library-internal, usable by every module (names.c); the writer fits the class names it is
 * given with it. */
#ifndef APD_COMMON_NAMES_H
#define APD_COMMON_NAMES_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (1..4 bytes, at most n), or 0 if the bytes there are
 * not one (overlong forms, surrogates and code points above U+10FFFF are invalid). */
size_t apd__utf8_seq(const unsigned char *s, size_t n);

/* Copy s into out (cap >= 2 bytes with the NUL) as valid UTF-8: each invalid byte becomes
 * '?', a character cut off at the end of s is dropped, and the text is cut at a character
 * boundary when out is full, never inside a multi-byte character.
 * Returns 1 if anything was cut or replaced, 0 if out == s. */
int apd__utf8_fit(char *out, size_t cap, const char *s);

#endif
