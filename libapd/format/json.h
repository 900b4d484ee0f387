/* format/json.h: a small strict JSON (RFC 8259) parser and writer for the .apd metadata
 * document. Not installed.
 *
 * Parsing builds a flat array of nodes over the caller's text (no copies of strings); the
 * document is limited to depth 64 and to 2^24 nodes, and all input is checked (the metadata
 * parser is a fuzz target). Objects store key and value nodes alternately as children.
 *
 *     apd__json d;
 *     if (apd__json_parse(&d, text, len) == APD_OK) {
 *         int v = apd__json_get(&d, 0, "n_records");
 *         uint64_t n; if (v >= 0 && apd__json_u64(&d, v, &n)) ...
 *         apd__json_free(&d);
 *     }
 *
 * The writer side (apd__sb) lives in common/sb.h.
 */
#ifndef APD_FORMAT_JSON_H
#define APD_FORMAT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "apd/status.h"
#include "common/sb.h"

enum { APD__J_NULL, APD__J_FALSE, APD__J_TRUE, APD__J_NUM, APD__J_STR, APD__J_ARR, APD__J_OBJ };

typedef struct apd__jnode {
    uint8_t type;
    uint32_t start, len;   /* text span (strings: inside the quotes) */
    int32_t first, next;   /* first child, next sibling (-1 = none) */
    uint32_t count;        /* children (objects: keys + values) */
} apd__jnode;

typedef struct apd__json {
    const char *text;
    size_t len;
    apd__jnode *nodes;
    size_t n, cap;
} apd__json;

/* @return APD_OK, APD_EMETA (syntax, depth, trailing bytes, bad UTF-8 escapes), APD_ENOMEM. */
apd_status apd__json_parse(apd__json *d, const char *text, size_t len);
void apd__json_free(apd__json *d);
/* Value node of key in object node obj, or -1. */
int apd__json_get(const apd__json *d, int obj, const char *key);
/* Unescaped string value into buf (NUL-terminated); 0 if not a string or too long. */
int apd__json_str(const apd__json *d, int node, char *buf, size_t cap);
/* Non-negative integer that fits in uint64 (no fraction, no exponent); 0 otherwise. */
int apd__json_u64(const apd__json *d, int node, uint64_t *out);
/* Any number as double; 0 if not a number. */
int apd__json_num(const apd__json *d, int node, double *out);

#endif
