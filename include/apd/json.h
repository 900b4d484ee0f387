/* apd/json.h: JSON helpers the library shares with its tools and users: the one JSON string
 * writer, and a small strict reader for documents such as the .apd metadata
 * (apd_reader_meta_json in apd/format.h).
 *
 *     char buf[64];
 *     size_t need = apd_json_escape(buf, sizeof buf, name);   // "name" with quotes
 *     if (need >= sizeof buf) { ... allocate need + 1 and call again ... }
 *
 *     apd_json_doc *d;
 *     if (apd_json_parse(&d, text, strlen(text)) == APD_OK) {
 *         uint64_t n;
 *         if (apd_json_u64(d, apd_json_get(d, 0, "n_records"), &n) == APD_OK) ...
 *         for (int k = apd_json_first(d, 0); k >= 0; k = apd_json_next(d, apd_json_next(d, k)))
 *             ... k is a key node, apd_json_next(d, k) its value ...
 *         apd_json_free(d);
 *     }
 *
 * Nodes: a parsed document is a tree of nodes named by int ids; the root value is node 0 and
 * -1 means "no node". Every accessor accepts -1 (and any out-of-range id) and then reports
 * "not found" (-1, APD_JSON_NONE or APD_EINVAL), so lookups can be chained without checks.
 * An object's children are its members as key node, value node, key node, value node, ...;
 * an array's children are its elements.
 *
 * Thread safety: apd_json_escape has no state. A document is immutable after parsing: any
 * number of threads may read one document; apd_json_free must not race with readers.
 */
#ifndef APD_JSON_H
#define APD_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write s as a quoted JSON string literal (RFC 8259 escapes for quote, backslash and control
 * characters; other bytes unchanged) into out, NUL-terminated when cap > 0 (truncated to fit).
 * @return the length of the full literal without the NUL (snprintf convention): the output
 *         was complete iff the return value is < cap. */
APD_API size_t apd_json_escape(char *out, size_t cap, const char *s);

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct apd_json_doc apd_json_doc; /* a parsed document (opaque) */

typedef enum apd_json_type {
    APD_JSON_NONE = -1, /* not a node (id -1 or out of range) */
    APD_JSON_NULL = 0,
    APD_JSON_FALSE = 1,
    APD_JSON_TRUE = 2,
    APD_JSON_NUMBER = 3,
    APD_JSON_STRING = 4,
    APD_JSON_ARRAY = 5,
    APD_JSON_OBJECT = 6
} apd_json_type;

/* Parse len bytes of text as one JSON value (RFC 8259, strict: no comments, no trailing
 * commas, nothing after the value but whitespace; nesting depth at most 64). The document
 * keeps its own copy of the text. On failure *out is NULL.
 * @param[out] out  the document; free with apd_json_free
 * @return APD_OK; APD_EMETA (syntax error, bad escape, depth or size limit); APD_EINVAL
 *         (out or text NULL); APD_ENOMEM. */
APD_API apd_status apd_json_parse(apd_json_doc **out, const char *text, size_t len);
/* Free a document (NULL is ignored). Node text pointers from it become invalid. */
APD_API void apd_json_free(apd_json_doc *d);

/* Type of a node; APD_JSON_NONE for -1 or an id that is not in the document. */
APD_API apd_json_type apd_json_type_of(const apd_json_doc *d, int node);
/* First child of an array or object (an object's first key), or -1. */
APD_API int apd_json_first(const apd_json_doc *d, int node);
/* Next sibling: the next element; for an object key its value; for a value the next key. -1
 * at the end. */
APD_API int apd_json_next(const apd_json_doc *d, int node);
/* Elements of an array, members (key-value pairs) of an object, 0 for anything else. */
APD_API size_t apd_json_count(const apd_json_doc *d, int node);
/* Value node of member `key` of object node obj (the first one if repeated), or -1. Keys
 * are compared as written in the document, so a key spelled with escapes does not match. */
APD_API int apd_json_get(const apd_json_doc *d, int obj, const char *key);

/* String value (or object key) of a node, unescaped to UTF-8, NUL-terminated, into buf.
 * @return APD_OK; APD_EINVAL (not a string, or it holds \u0000); APD_EBUFSIZE (buf too
 *         small; buf then holds an empty string). */
APD_API apd_status apd_json_string(const apd_json_doc *d, int node, char *buf, size_t cap);
/* A number node as double. @return APD_OK or APD_EINVAL (not a number). */
APD_API apd_status apd_json_number(const apd_json_doc *d, int node, double *out);
/* A number node written as a non-negative integer that fits in 64 bits (no sign, fraction
 * or exponent). @return APD_OK or APD_EINVAL. */
APD_API apd_status apd_json_u64(const apd_json_doc *d, int node, uint64_t *out);
/* The node's JSON text exactly as it appears in the document (strings and keys with their
 * quotes, containers with their inner whitespace), not NUL-terminated: *len bytes. NULL (and
 * *len = 0) for -1. Valid until apd_json_free(d). */
APD_API const char *apd_json_text(const apd_json_doc *d, int node, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
