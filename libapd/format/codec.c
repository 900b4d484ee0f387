/* format/codec.c: the byte-level codec of .apd values: header, chunk table, record (see the
 * layouts in format/format_internal.h and spec/apd-format.md). Pure functions over bytes, no
 * LMDB: the reader, the writer and the fuzz targets share them.
 *
 * Contract: every parse function validates everything it reads (checksum first, then magic,
 * version, reserved bits, ranges, checked size arithmetic) and reports a static reason
 * string; nothing here allocates except zstd contexts in apd__record_decode_bytes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "format/format_internal.h"
#include "format/icode.h"

uint32_t apd_bits_for_k(uint32_t k)
{
    if (k == 0 || k > APD_MAX_COLORS) return 0;
    uint32_t b = 1;
    while ((1u << b) < k) b++;
    return b;
}

size_t apd_packed_bytes(uint64_t n, uint32_t bits)
{
    return (size_t)((n * bits + 7) / 8);
}

void apd_limits_default(apd_limits *l)
{
    l->max_dim = 4096;
    l->max_value_bytes = (uint64_t)1 << 30;
    l->max_records = (uint64_t)1 << 32;
}

/* ---- header ------------------------------------------------------------------------------ */

void apd__header_encode(uint8_t out[APD__HEADER_LEN], const apd__header *h)
{
    memset(out, 0, APD__HEADER_LEN);
    memcpy(out, APD__MAGIC, 8);
    apd__st16(out + 8, (uint16_t)h->major);
    apd__st16(out + 10, (uint16_t)h->minor);
    apd__st32(out + 12, APD__HEADER_LEN);
    out[16] = (uint8_t)h->kind;
    out[17] = (uint8_t)h->c;
    out[18] = (uint8_t)h->bits;
    out[19] = (uint8_t)h->flags;
    apd__st16(out + 20, (uint16_t)h->k);
    apd__st32(out + 24, h->h);
    apd__st32(out + 28, h->w);
    apd__st32(out + 32, h->per_chunk);
    apd__st32(out + 36, h->n_classes);
    apd__st64(out + 40, h->n_records);
    apd__st32(out + 60, apd_crc32c(0, out, 60));
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

apd_status apd__header_parse(const uint8_t *p, size_t len, const apd_limits *lim, apd__header *h,
                             const char **why)
{
    memset(h, 0, sizeof *h);
    if (len < 16 || memcmp(p, APD__MAGIC, 8) != 0) {
        *why = len < 8 ? "header shorter than the magic" : "wrong magic in header";
        return len < 8 ? APD_ETRUNC : APD_EMAGIC;
    }
    h->major = apd__ld16(p + 8);
    h->minor = apd__ld16(p + 10);
    h->hlen = apd__ld32(p + 12);
    if (h->major != APD_FORMAT_VERSION_MAJOR) {
        *why = "unsupported major format version";
        return APD_EVERSION;
    }
    if (h->hlen < APD__HEADER_LEN || (h->minor == 0 && h->hlen != APD__HEADER_LEN)) {
        *why = "bad header length field";
        return APD_ECORRUPT;
    }
    if (len != h->hlen) {
        *why = len < h->hlen ? "header value shorter than its length field" : "header value longer than its length field";
        return len < h->hlen ? APD_ETRUNC : APD_ECORRUPT;
    }
    if (apd__ld32(p + len - 4) != apd_crc32c(0, p, len - 4)) {
        *why = "header checksum mismatch";
        return APD_ECHECKSUM;
    }
    h->kind = p[16];
    h->c = p[17];
    h->bits = p[18];
    h->flags = p[19];
    h->k = apd__ld16(p + 20);
    h->h = apd__ld32(p + 24);
    h->w = apd__ld32(p + 28);
    h->per_chunk = apd__ld32(p + 32);
    h->n_classes = apd__ld32(p + 36);
    h->n_records = apd__ld64(p + 40);
    const uint32_t known = APD__HFLAG_DICT | APD__HFLAG_SOFT | APD__HFLAG_IMODEL;
    if ((h->flags & ~known) && h->minor > 2) {
        *why = "file uses a format feature newer than 1.2 (unknown header flag bit); this reader supports 1.0 to 1.2";
        return APD_EVERSION;
    }
    if (apd__ld16(p + 22) != 0 || !all_zero(p + 48, 12) || (h->flags & ~known)) {
        *why = "reserved header bytes are not zero";
        return APD_ECORRUPT;
    }
    if ((h->flags & APD__HFLAG_IMODEL) && (h->minor < 1 || p[16] != APD_KIND_PALETTE)) {
        *why = "index model flag in a format 1.0 header or a direct-colour file";
        return APD_ECORRUPT;
    }
    if ((h->flags & APD__HFLAG_SOFT) && (h->minor < 1 || h->n_classes == 0)) {
        *why = "soft-label flag in a format 1.0 header or a file without classes";
        return APD_ECORRUPT;
    }
    if (h->kind != APD_KIND_PALETTE && h->kind != APD_KIND_DIRECT) {
        *why = "unknown record kind in header";
        return APD_ECORRUPT;
    }
    if (h->c != 1 && h->c != 3) {
        *why = "channel count is not 1 or 3";
        return APD_ECORRUPT;
    }
    if (h->kind == APD_KIND_PALETTE) {
        if (h->k < 1 || h->k > APD_MAX_COLORS || h->bits != apd_bits_for_k(h->k)) {
            *why = "palette size k or index width bits invalid";
            return APD_ECORRUPT;
        }
    } else if (h->k != 0 || h->bits != 0) {
        *why = "direct-colour file with nonzero k or bits";
        return APD_ECORRUPT;
    }
    if (h->h == 0 || h->w == 0 || h->per_chunk == 0) {
        *why = "zero height, width or records per chunk";
        return APD_ECORRUPT;
    }
    if (h->h > lim->max_dim || h->w > lim->max_dim) {
        *why = "image dimensions exceed the limit";
        return APD_ELIMIT;
    }
    if (h->n_records > lim->max_records) {
        *why = "record count exceeds the limit";
        return APD_ELIMIT;
    }
    return APD_OK;
}

size_t apd__max_record(const apd__geom *g)
{
    size_t b = g->max_body;
    size_t bound = ZSTD_compressBound(b);
    if (bound < b) bound = b;
    if (g->has_imodel) { /* coded body (7.4): 8 states + at most one word per symbol */
        size_t coded = 4u * 8u + 2u * ((size_t)g->k * g->c + g->npix);
        if (coded > bound) bound = coded;
    }
    return APD__REC_HDR + APD__REC_SID + g->soft_bytes + bound;
}

apd_status apd__geom_from_header(const apd__header *h, const apd_limits *lim, apd__geom *g,
                                 const char **why)
{
    memset(g, 0, sizeof *g);
    g->kind = h->kind;
    g->c = h->c;
    g->h = h->h;
    g->w = h->w;
    g->k = h->k;
    g->bits = h->bits;
    g->n_classes = h->n_classes;
    g->has_dict = (h->flags & APD__HFLAG_DICT) != 0;
    g->has_imodel = (h->flags & APD__HFLAG_IMODEL) != 0;
    g->has_soft = (h->flags & APD__HFLAG_SOFT) != 0;
    g->soft_bytes = g->has_soft ? (size_t)4 * h->n_classes : 0; /* n_classes < 2^32: no overflow */
    if (!apd__mul_ok(h->h, h->w, &g->npix)) {
        *why = "h*w overflows";
        return APD_EOVERFLOW;
    }
    if (h->kind == APD_KIND_PALETTE) {
        g->packed = apd_packed_bytes(g->npix, g->bits);
        g->max_body = (size_t)h->k * h->c + g->packed;
    } else if (!apd__mul_ok(g->npix, h->c, &g->max_body)) {
        *why = "c*h*w overflows";
        return APD_EOVERFLOW;
    }
    /* One record (plus a chunk header and its two offsets) must fit the value limit. */
    if ((uint64_t)apd__max_record(g) + APD__CHUNK_HDR + 8 > lim->max_value_bytes) {
        *why = "one record would exceed the value size limit";
        return APD_ELIMIT;
    }
    return APD_OK;
}

/* ---- chunk ------------------------------------------------------------------------------- */

apd_status apd__chunk_check(const uint8_t *p, size_t len, uint64_t chunk_no, uint32_t expect_n,
                            const apd__geom *g, const char **why)
{
    if (len < APD__CHUNK_HDR + 4) {
        *why = "chunk shorter than its header";
        return APD_ETRUNC;
    }
    uint32_t n = apd__ld32(p + 8);
    size_t table_end;
    if (n == 0 || !apd__mul_ok((size_t)n + 1, 4, &table_end) ||
        !apd__add_ok(table_end, APD__CHUNK_HDR, &table_end)) {
        *why = "bad record count in chunk";
        return APD_ECORRUPT;
    }
    if (table_end > len) {
        *why = "chunk offset table extends past the value";
        return APD_ETRUNC;
    }
    if (apd__ld32(p) != apd_crc32c(0, p + 4, table_end - 4)) {
        *why = "chunk table checksum mismatch";
        return APD_ECHECKSUM;
    }
    if (memcmp(p + 4, APD__CHUNK_MAGIC, 4) != 0) {
        *why = "wrong chunk magic";
        return APD_ECORRUPT;
    }
    if (apd__ld32(p + 12) != 0) {
        *why = "reserved chunk bytes are not zero";
        return APD_ECORRUPT;
    }
    if (apd__ld64(p + 16) != chunk_no) {
        *why = "chunk number does not match its key";
        return APD_ECORRUPT;
    }
    if (n != expect_n) {
        *why = "chunk record count does not match the header count";
        return APD_ECORRUPT;
    }
    size_t maxrec = apd__max_record(g);
    uint32_t prev = apd__ld32(p + APD__CHUNK_HDR);
    if (prev != table_end) {
        *why = "first record offset is not the end of the offset table";
        return APD_ECORRUPT;
    }
    for (uint32_t j = 1; j <= n; j++) {
        uint32_t o = apd__ld32(p + APD__CHUNK_HDR + 4u * j);
        if (o < prev || (size_t)(o - prev) < APD__REC_HDR || (size_t)(o - prev) > maxrec) {
            *why = "record offsets not increasing or record size out of range";
            return APD_ECORRUPT;
        }
        prev = o;
    }
    if (prev != len) {
        *why = prev < len ? "chunk has bytes after its last record" : "chunk shorter than its offset table says";
        return prev < len ? APD_ECORRUPT : APD_ETRUNC;
    }
    return APD_OK;
}

/* ---- record ------------------------------------------------------------------------------ */

static float ld_f32(const uint8_t *p)
{
    uint32_t u = apd__ld32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

apd_status apd__soft_check(const uint8_t *p, uint32_t n, uint32_t label, uint32_t *cls,
                           const char **why)
{
    double sum = 0;
    float mx = 0.0f;
    for (uint32_t j = 0; j < n; j++) {
        float v = ld_f32(p + 4u * j);
        *cls = j;
        if (!isfinite(v)) {
            *why = "soft label is NaN or infinite";
            return APD_ECORRUPT;
        }
        if (v < 0.0f) {
            *why = "soft label is negative";
            return APD_ECORRUPT;
        }
        sum += v;
        if (v > mx) mx = v;
    }
    *cls = n;
    if (!(fabs(sum - 1.0) <= APD__SOFT_SUM_TOL)) {
        *why = "soft labels do not sum to 1 (tolerance 1e-3)";
        return APD_ECORRUPT;
    }
    if (label >= n || ld_f32(p + 4u * label) < mx) {
        *cls = label < n ? label : n;
        *why = "the record's label is not a class of largest soft label";
        return APD_ECORRUPT;
    }
    return APD_OK;
}

void apd__soft_get(const apd__geom *g, const apd__rec *r, float *out)
{
    for (uint32_t j = 0; j < g->n_classes; j++)
        out[j] = r->soft ? ld_f32(r->soft + 4u * j) : (j == r->label ? 1.0f : 0.0f);
}

apd_status apd__record_parse(const uint8_t *p, size_t len, const apd__geom *g, apd__rec *r,
                             const char **why)
{
    if (len < APD__REC_HDR) {
        *why = "record shorter than its header";
        return APD_ETRUNC;
    }
    if (apd__ld32(p) != apd_crc32c(0, p + 4, len - 4)) {
        *why = "record checksum mismatch";
        return APD_ECHECKSUM;
    }
    uint32_t f = p[4];
    r->flags = f;
    if ((f & APD__RFLAG_RESERVED) || (f & APD__RFLAG_KIND) != g->kind ||
        ((f & APD__RFLAG_DICT) && !(f & APD__RFLAG_ZSTD))) {
        *why = "bad record flags";
        return APD_ECORRUPT;
    }
    if ((f & APD__RFLAG_ICODE) && (!g->has_imodel || (f & APD__RFLAG_ZSTD))) {
        *why = g->has_imodel ? "coded record also flagged zstd" : "coded record but the file has no index model (header flag bit 2)";
        return APD_ECORRUPT;
    }
    if ((f & APD__RFLAG_DICT) && !g->has_dict) {
        *why = "record uses a dictionary but the file has none";
        return APD_ECORRUPT;
    }
    if (apd__ld16(p + 6) != 0) {
        *why = "reserved record bytes are not zero";
        return APD_ECORRUPT;
    }
    r->label = apd__ld32(p + 8);
    if (g->n_classes && r->label >= g->n_classes) {
        *why = "label out of range";
        return APD_ECORRUPT;
    }
    size_t off = APD__REC_HDR;
    r->source_id = APD_NO_SOURCE_ID;
    if (f & APD__RFLAG_SID) {
        if (len < off + APD__REC_SID) {
            *why = "record shorter than its source id";
            return APD_ETRUNC;
        }
        r->source_id = apd__ld64(p + off);
        if (r->source_id == APD_NO_SOURCE_ID) {
            *why = "source id has the reserved value 2^64-1";
            return APD_ECORRUPT;
        }
        off += APD__REC_SID;
    }
    r->soft = NULL;
    r->soft_bad = UINT32_MAX;
    if (f & APD__RFLAG_SOFT) {
        if (!g->has_soft) {
            *why = "record has soft labels (flag bit 5) but the header does not announce them (flag bit 1)";
            return APD_ECORRUPT;
        }
        if (len - off < g->soft_bytes) {
            *why = "record shorter than its soft-label vector";
            return APD_ETRUNC;
        }
        APD_TRY(apd__soft_check(p + off, g->n_classes, r->label, &r->soft_bad, why));
        r->soft = p + off;
        off += g->soft_bytes;
    }
    if (g->kind == APD_KIND_PALETTE) {
        r->k = (uint32_t)p[5] + 1;
        if (r->k > g->k) {
            *why = "record palette larger than the file's k";
            return APD_ECORRUPT;
        }
        r->raw_len = (size_t)r->k * g->c + g->packed;
    } else {
        if (p[5] != 0) {
            *why = "direct-colour record with nonzero k field";
            return APD_ECORRUPT;
        }
        r->k = 0;
        r->raw_len = g->max_body;
    }
    r->body = p + off;
    r->body_len = len - off;
    if (!(f & (APD__RFLAG_ZSTD | APD__RFLAG_ICODE)) && r->body_len != r->raw_len) {
        *why = r->body_len < r->raw_len ? "record body shorter than its geometry" : "record body longer than its geometry";
        return r->body_len < r->raw_len ? APD_ETRUNC : APD_ECORRUPT;
    }
    if ((f & APD__RFLAG_ZSTD)) {
        unsigned long long cs = ZSTD_getFrameContentSize(r->body, r->body_len);
        if (cs == ZSTD_CONTENTSIZE_ERROR || cs == ZSTD_CONTENTSIZE_UNKNOWN || cs != r->raw_len) {
            *why = "zstd frame missing or with the wrong content size";
            return APD_ECORRUPT;
        }
        size_t fs = ZSTD_findFrameCompressedSize(r->body, r->body_len);
        if (ZSTD_isError(fs) || fs != r->body_len) {
            *why = "zstd frame does not span the record body";
            return APD_ECORRUPT;
        }
    }
    return APD_OK;
}

apd_status apd__body_decode(const apd__geom *g, uint32_t k, const uint8_t *body,
                            apd_layout layout, uint8_t *out, const char **why)
{
    if (g->kind == APD_KIND_PALETTE) {
        if (apd__pal_decode(APD__IMPL_AUTO, body + (size_t)k * g->c, g->npix, g->bits, body, k,
                            g->c, layout, out) != 0) {
            *why = "index >= record palette size or nonzero padding bits";
            return APD_ECORRUPT;
        }
        return APD_OK;
    }
    if (layout == APD_LAYOUT_CHW || g->c == 1) {
        memcpy(out, body, g->max_body);
    } else {
        size_t np = g->npix;
        const uint8_t *r = body, *gg = body + np, *b = body + 2 * np;
        for (size_t i = 0; i < np; i++) {
            out[3 * i] = r[i];
            out[3 * i + 1] = gg[i];
            out[3 * i + 2] = b[i];
        }
    }
    return APD_OK;
}

apd_status apd__coded_body(const apd__geom *g, const apd__rec *r, uint8_t *body, const char **why)
{
    if (!g->imodel) {
        *why = "coded record but no index model was loaded";
        return APD_ECORRUPT;
    }
    return apd__icode_decode(g->imodel, r->body, r->body_len, r->k, g->h, g->w, body,
                             body + (size_t)r->k * g->c, why);
}

apd_status apd__coded_decode(const apd__geom *g, const apd__rec *r, apd_layout layout,
                             uint8_t *out, const char **why)
{
    size_t n = (size_t)r->k * g->c + g->npix;
    uint8_t sbuf[8192];
    uint8_t *body = n <= sizeof sbuf ? sbuf : malloc(n);
    if (!body) {
        *why = "out of memory";
        return APD_ENOMEM;
    }
    apd_status s = apd__coded_body(g, r, body, why);
    if (s == APD_OK && apd__pal_decode(APD__IMPL_AUTO, body + (size_t)r->k * g->c, g->npix, 8, body,
                                       r->k, g->c, layout, out) != 0) {
        *why = "index >= record palette size";
        s = APD_ECORRUPT;
    }
    if (body != sbuf) free(body);
    return s;
}

apd_status apd__record_decode_bytes(const uint8_t *p, size_t len, const apd__geom *g,
                                    const void *dict, size_t dict_len, apd_layout layout,
                                    uint8_t *out, uint32_t *label, const char **why)
{
    apd__rec r;
    APD_TRY(apd__record_parse(p, len, g, &r, why));
    if (label) *label = r.label;
    if (r.flags & APD__RFLAG_ICODE) return apd__coded_decode(g, &r, layout, out, why);
    if (!(r.flags & APD__RFLAG_ZSTD)) return apd__body_decode(g, r.k, r.body, layout, out, why);
    if ((r.flags & APD__RFLAG_DICT) && !dict) {
        *why = "record uses a dictionary but none was given";
        return APD_ECORRUPT;
    }
    uint8_t *tmp = malloc(r.raw_len ? r.raw_len : 1);
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    apd_status s = APD_OK;
    if (!tmp || !dc) {
        *why = "out of memory";
        s = APD_ENOMEM;
    } else {
        size_t got = (r.flags & APD__RFLAG_DICT)
                         ? ZSTD_decompress_usingDict(dc, tmp, r.raw_len, r.body, r.body_len, dict, dict_len)
                         : ZSTD_decompressDCtx(dc, tmp, r.raw_len, r.body, r.body_len);
        if (ZSTD_isError(got) || got != r.raw_len) {
            *why = "zstd body does not decompress to its size";
            s = APD_ECORRUPT;
        } else {
            s = apd__body_decode(g, r.k, tmp, layout, out, why);
        }
    }
    ZSTD_freeDCtx(dc);
    free(tmp);
    return s;
}
