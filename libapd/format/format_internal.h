/* format/format_internal.h: byte layouts and codec entry points of the .apd format, shared by
 * the reader, the writer, the tools, the tests and the fuzz targets. Not installed; no other
 * library module includes it (they use apd/format.h).
 *
 * The layouts (spec/apd-format.md is normative; repeated here beside the code):
 *
 *   header (meta db, key "header"), 64 bytes in v1.0:
 *     0  8  magic 89 41 50 44 0D 0A 1A 0A  ("\x89APD\r\n\x1a\n")
 *     8  2  version major (1)           10 2  version minor (0)
 *    12  4  header length (>= 64)       16 1  kind (1 palette, 2 direct)
 *    17  1  c (1 or 3)                  18 1  bits (palette 1..8, direct 0)
 *    19  1  flags (bit 0: zstd dictionary stored; bit 1 (1.1): records may carry soft labels;
 *                  bit 2 (1.1): index model stored; others 0)
 *    20  2  k (palette 1..APD_MAX_COLORS, direct 0)  22 2  reserved 0
 *    24  4  h                           28 4  w
 *    32  4  records per chunk N         36 4  n_classes
 *    40  8  n_records                   48 12 reserved 0
 *    60  4  CRC-32C of bytes [0, 60)   (in general: last 4 bytes, over everything before)
 *
 *   chunk (chunks db, key = chunk number as 8 bytes big-endian):
 *     0  4  CRC-32C of bytes [4, 24 + 4*(n+1))
 *     4  4  magic "APDK"                8  4  n records in the chunk (1..N)
 *    12  4  reserved 0                 16  8  chunk number (== key)
 *    24  4*(n+1) offsets of records from the chunk start, increasing; off[n] == value length
 *
 *   record:
 *     0  4  CRC-32C of bytes [4, record length)
 *     4  1  flags: bits 0-1 kind, bit 2 source id present, bit 3 zstd body,
 *                  bit 4 zstd body uses the file dictionary (needs bit 3), bit 5 soft-label
 *                  vector (1.1, needs header flag bit 1), bit 6 coded palette body (1.1,
 *                  needs header flag bit 2, not with bit 3), bit 7 zero
 *     5  1  k - 1 (palette) or 0 (direct)
 *     6  2  reserved 0
 *     8  4  label
 *    12  8  source id (only with flag bit 2)
 *     .. 4*n_classes  soft labels: n_classes float32 (only with flag bit 5): finite, >= 0,
 *              summing to 1 within APD__SOFT_SUM_TOL, the label's value a maximum
 *     .. body: palette k*c bytes + indices packed LSB-first at `bits` bits (padding bits 0),
 *              or c*h*w bytes CHW; or one zstd frame (with content size) holding that body.
 */
#ifndef APD_FORMAT_INTERNAL_H
#define APD_FORMAT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "apd/format.h"
#include "common/internal.h"
#include "common/kernels.h"

#define APD__MAGIC "\x89" "APD\r\n\x1a\n"
#define APD__HEADER_LEN 64u
#define APD__CHUNK_MAGIC "APDK"
#define APD__CHUNK_HDR 24u
#define APD__REC_HDR 12u
#define APD__REC_SID 8u

#define APD__HFLAG_DICT 0x01u
#define APD__HFLAG_SOFT 0x02u   /* 1.1 soft labels: records may carry record flag bit 5 */
#define APD__HFLAG_IMODEL 0x04u /* 1.1 entropy-coded index maps, model at meta/imodel */

#define APD__RFLAG_KIND 0x03u
#define APD__RFLAG_SID 0x04u
#define APD__RFLAG_ZSTD 0x08u
#define APD__RFLAG_DICT 0x10u
#define APD__RFLAG_SOFT 0x20u  /* 1.1: n_classes float32 soft labels after the source id */
#define APD__RFLAG_ICODE 0x40u /* 1.1: coded palette body (format/icode.h) */
#define APD__RFLAG_RESERVED 0x80u
/* Soft-label vectors must sum to 1 within this (sum of the float32 values in double). */
#define APD__SOFT_SUM_TOL 1e-3

#define APD__DB_META "meta"
#define APD__DB_CHUNKS "chunks"
#define APD__KEY_HEADER "header"
#define APD__KEY_JSON "json"
#define APD__KEY_DICT "zdict"
#define APD__KEY_IMODEL "imodel"

/* Decoded binary header. */
typedef struct apd__header {
    uint32_t major, minor, hlen;
    uint32_t kind, c, bits, flags, k;
    uint32_t h, w, per_chunk, n_classes;
    uint64_t n_records;
} apd__header;

/* What the record codec needs to know about the file. */
typedef struct apd__geom {
    uint32_t kind, c, h, w, k, bits, n_classes;
    int has_dict;
    int has_imodel;    /* header flag bit 2 */
    int has_soft;      /* header flag bit 1: records may carry soft labels */
    size_t soft_bytes; /* 4 * n_classes when has_soft, else 0 */
    const struct apd__imodel *imodel; /* parsed meta/imodel (set by the reader), or NULL */
    size_t npix;       /* h*w */
    size_t packed;     /* packed index bytes (palette) */
    size_t max_body;   /* largest uncompressed body */
} apd__geom;

/* A parsed record (pointers into the record bytes). */
typedef struct apd__rec {
    uint32_t flags, k, label;
    uint64_t source_id; /* APD_NO_SOURCE_ID if absent */
    const uint8_t *soft; /* n_classes little-endian float32 (flag bit 5), or NULL */
    uint32_t soft_bad;   /* after a failed soft-label check: the class at fault (n_classes
                            for the sum), else UINT32_MAX */
    const uint8_t *body;
    size_t body_len;    /* stored length (compressed or not) */
    size_t raw_len;     /* uncompressed body length */
} apd__rec;

uint32_t apd__crc32c_table(uint32_t crc, const void *data, size_t len);
/* The CRC through one path, for tests: the VPCLMULQDQ folding path at any length when
 * vpclmul is set and the CPU has it, else the SSE4.2 three-way path, else the table. */
uint32_t apd__crc32c_impl(int vpclmul, uint32_t crc, const void *data, size_t len);
int apd__crc32c_vpclmul_available(void);

/* ---- header ---- */
void apd__header_encode(uint8_t out[APD__HEADER_LEN], const apd__header *h);
/* Parse + validate (magic, CRC, version, reserved zero, ranges, limits). why = static text. */
apd_status apd__header_parse(const uint8_t *p, size_t len, const apd_limits *lim, apd__header *h,
                             const char **why);
/* Fill geometry from a valid header; fails with APD_EOVERFLOW/ELIMIT on impossible sizes. */
apd_status apd__geom_from_header(const apd__header *h, const apd_limits *lim, apd__geom *g,
                                 const char **why);

/* ---- chunk ---- */
/* Validate a chunk value: CRC, magic, n == expect_n, chunk number, offsets increasing, each
 * record at least the header long and at most the largest legal record. */
apd_status apd__chunk_check(const uint8_t *p, size_t len, uint64_t chunk_no, uint32_t expect_n,
                            const apd__geom *g, const char **why);
/* Record j of a checked chunk. */
static inline void apd__chunk_record(const uint8_t *chunk, uint32_t j, const uint8_t **rec,
                                     size_t *len)
{
    uint32_t a = apd__ld32(chunk + APD__CHUNK_HDR + 4u * j);
    uint32_t b = apd__ld32(chunk + APD__CHUNK_HDR + 4u * (j + 1));
    *rec = chunk + a;
    *len = (size_t)b - a;
}
/* Largest legal stored record for this geometry (header + sid + max(body, zstd bound)). */
size_t apd__max_record(const apd__geom *g);

/* ---- record ---- */
/* Check a soft-label vector of n little-endian float32 values at p for a record labelled
 * label (spec 7.5): finite, >= 0, sum within APD__SOFT_SUM_TOL of 1, p[label] a maximum.
 * On failure (APD_ECORRUPT) *why is a static reason and *cls the class at fault (n when the
 * fault is the sum). */
apd_status apd__soft_check(const uint8_t *p, uint32_t n, uint32_t label, uint32_t *cls,
                           const char **why);
/* Soft labels of a parsed record as floats (one-hot of its label when it has none). */
void apd__soft_get(const apd__geom *g, const apd__rec *r, float *out);
/* Verify CRC and structure; fills r. Does not decompress. */
apd_status apd__record_parse(const uint8_t *p, size_t len, const apd__geom *g, apd__rec *r,
                             const char **why);
/* Decode an uncompressed body (palette + packed, or CHW) to pixels. Checks index < k and
 * zero padding bits. out has c*h*w bytes. */
apd_status apd__body_decode(const apd__geom *g, uint32_t k, const uint8_t *body,
                            apd_layout layout, uint8_t *out, const char **why);
/* Whole record from bytes, including zstd (ddict may be NULL) and coded bodies (with
 * g->imodel). For fuzzing and tests. */
apd_status apd__record_decode_bytes(const uint8_t *p, size_t len, const apd__geom *g,
                                    const void *dict, size_t dict_len, apd_layout layout,
                                    uint8_t *out, uint32_t *label, const char **why);

/* Coded (flag bit 6) palette record: body = palette k*c bytes + h*w index bytes (one byte per
 * index, i.e. the 7.1 layout at bits = 8), decoded with g->imodel. */
apd_status apd__coded_body(const apd__geom *g, const apd__rec *r, uint8_t *body, const char **why);
/* Coded record to pixels (apd__coded_body + the palette kernel). */
apd_status apd__coded_decode(const apd__geom *g, const apd__rec *r, apd_layout layout,
                             uint8_t *out, const char **why);

/* Bit packing and the palette kernels (apd__pack, apd__unpack, apd__pal_decode,
 * apd__pal_decode_f32, apd__u8_norm_f32) live in common/kernels.h, shared with the loader. */
_Static_assert(APD_LAYOUT_HWC == 0 && APD_LAYOUT_CHW == 1,
               "apd__pal_decode takes the layout as chw = 0/1");

/* ---- metadata ---- */
typedef struct apd__meta {
    char dataset[64];
    float mean[3], std[3];
    uint32_t n_classes;
    char (*class_names)[64]; /* NULL if the document has none */
    uint64_t *class_counts;  /* n_classes entries, NULL if n_classes == 0 */
    int complete;            /* 1: "complete": true; -1: no such key (a file written before
                                the key existed); a false one is refused */
} apd__meta;
/* Per-channel normalisation values of the metadata (pixels / 255 scale): mean in [0, 1];
 * std 0 (unknown) or in [APD__STD_MIN, APD__STD_MAX]. Pixels / 255 have a standard deviation
 * of at most 0.5; the bounds only catch the absurd (1e300, 1e-30, NaN, infinities) and keep
 * 1/std finite and sane. */
#define APD__STD_MIN 1e-6
#define APD__STD_MAX 1.0
int apd__norm_value_ok(int is_std, double x);
/* Parse the metadata JSON and check it against the header. Caller frees with
 * apd__meta_free. */
apd_status apd__meta_parse(const char *json, size_t len, const apd__header *h, apd__meta *m,
                           const char **why);
void apd__meta_free(apd__meta *m);

#endif
