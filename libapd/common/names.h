/* common/names.h: short UTF-8 names (class names of at most APD_MAX_CLASS_NAME - 1 bytes).
 * Library-internal, usable by every module (names.c). */
#ifndef APD_COMMON_NAMES_H
#define APD_COMMON_NAMES_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (1..4 bytes, at most n), or 0 if the bytes there are
 * not one (overlong forms, surrogates and code points above U+10FFFF are invalid). */
size_t apd__utf8_seq(const unsigned char *s, size_t n);

/* Copy s into out (cap >= 2 bytes with the NUL) as valid UTF-8: each invalid byte becomes
 * '?', and the text is cut at a character boundary, never inside a multi-byte character.
 * Returns 1 if anything was cut or replaced, 0 if out == s. */
int apd__utf8_fit(char *out, size_t cap, const char *s);

/* Make the n names (each in a char[cap] slot, valid UTF-8) distinct: a name equal to an
 * earlier one gets the suffix "~2", "~3", ... (its text cut on a character boundary to make
 * room), the first free one. Returns the number of names changed. */
size_t apd__names_distinct(char *names, size_t n, size_t cap);

#endif
