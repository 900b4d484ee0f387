/* format/icode.h: the entropy-coded palette record body of format 1.1 (spec/apd-format.md
 * section 7.4): palette deltas and MED-predicted index residuals, coded with a static rANS
 * model stored once per file at meta/imodel. Pure functions over bytes (no LMDB); shared by
 * the reader, the writer, the tests and the fuzz targets. Not installed.
 *
 * Layouts (normative text in the spec; repeated here beside the code):
 *
 *   model (meta/imodel):
 *     0  4  CRC-32C of bytes [4, length)
 *     4  4  magic "APDM"
 *     8  1  model version (1 or 2)   9  1  c (== header c)
 *    10  1  bits (== header bits)   11  1  lanes (8)
 *    12  1  probability bits (10)   13  1  index contexts (192)
 *    14  2  reserved 0
 *    16 ..  192 index tables of 2^bits frequencies, then c palette tables of 256; each
 *           frequency a LEB128 varint (1 or 2 bytes, canonical, <= 1024); an index table
 *           sums to 1024 or is all zero (unused context); a palette table sums to 1024.
 *
 *   coded body (record flag bit 6): 8 rANS states (u32 LE, each in [2^16, 2^32)), then
 *   16-bit little-endian words, consumed in order by the decoder's renormalisation.
 *
 *   order of the index symbols (spec 7.4.2): model version 1 decodes the rows in groups of
 *   eight, lane l row 8g + l at step t = l + x of group g; model version 2 (format 1.2) is
 *   one continuous wavefront: lane l decodes rows l, l + 8, l + 16, ... back to back, row
 *   l + 8s column x at step t = l + s W + x with W = max(w, 8) (apd__ic_w2).
 */
#ifndef APD_FORMAT_ICODE_H
#define APD_FORMAT_ICODE_H

#include <stddef.h>
#include <stdint.h>

#include "apd/status.h"

#define APD__IC_MAGIC "APDM"
#define APD__IC_VERSION 2u /* the model version writers use by default; readers take 1 and 2 */
#define APD__IC_LANES 8u
#define APD__IC_PBITS 10u
#define APD__IC_M (1u << APD__IC_PBITS)
#define APD__IC_NCTX 192u
#define APD__IC_L (1u << 16)
#define APD__IC_MODEL_HDR 16u
#define APD__IC_STATES (4u * APD__IC_LANES)
#define APD__IC_EMPTY (1u << 19)

/* A parsed model: frequencies, cumulative frequencies and the decode tables. */
typedef struct apd__imodel {
    uint32_t ver;           /* model version: 1 (row groups) or 2 (continuous wavefront) */
    uint32_t c, bits;       /* channels, index width: index alphabet 2^bits */
    uint32_t ntab;          /* APD__IC_NCTX + c */
    uint16_t freq[APD__IC_NCTX + 3][256];
    uint16_t cum[APD__IC_NCTX + 3][256];
    /* decode entry of table t, slot s: sym | f << 8 | (s - cum) << 20; an empty table's
       entries are APD__IC_EMPTY (flag bit 19, f = 0) */
    uint32_t *dec;          /* ntab * APD__IC_M entries */
    /* pshufb control for the vector decoder's renormalisation: for the mask m of lanes that
       need a word, lane l's low 16 bits take word popcount(m & ((1 << l) - 1)) of 16 loaded
       bytes (repeated in both 128-bit halves); other bytes 0x80 (zero) */
    uint8_t shuf8[256][32];
} apd__imodel;

/* Model version 2's period: the steps between two rows of one lane. */
static inline uint32_t apd__ic_w2(uint32_t w)
{
    return w > APD__IC_LANES ? w : APD__IC_LANES;
}

/* Model version 2: the number of index steps of an h x w map (the step of its last pixel,
 * plus one). Lane l ends its last row l + 8 (S_l - 1) at step l + (S_l - 1) W + w - 1. */
static inline size_t apd__ic_nsteps2(uint32_t h, uint32_t w)
{
    size_t n = 0, W = apd__ic_w2(w);
    for (uint32_t l = 0; l < APD__IC_LANES && l < h; l++) {
        size_t segs = ((size_t)h - l + APD__IC_LANES - 1) / APD__IC_LANES;
        size_t e = l + (segs - 1) * W + w;
        n = e > n ? e : n;
    }
    return n;
}

/* Model version 2: the pixel lane l decodes at step t (spec 7.4.2): 1 with (*y, *x), or 0
 * when the lane idles at that step. */
static inline int apd__ic_at2(size_t t, uint32_t l, uint32_t h, uint32_t w, size_t *y, uint32_t *x)
{
    if (t < l) return 0;
    size_t u = t - l, W = apd__ic_w2(w);
    *y = l + APD__IC_LANES * (u / W);
    *x = (uint32_t)(u % W);
    return *x < w && *y < h;
}

/* Context of a pixel from its left (a), up (b) and up-left (c) indices (0 outside the image)
 * and the MED prediction. Shared by encoder, decoder and tests. */
extern const uint8_t apd__ic_q3[256]; /* 3 * (activity class of the range 0..255) */

static inline uint32_t apd__ic_ctx(uint32_t a, uint32_t b, uint32_t c, uint32_t *pred)
{
    /* branch-free: the three MED cases are data-dependent and would mispredict */
    uint32_t mn = a < b ? a : b, mx = a < b ? b : a;
    uint32_t ge = 0u - (uint32_t)(c >= mx);        /* case 0: predict min(a, b) */
    uint32_t le = (0u - (uint32_t)(c <= mn)) & ~ge; /* case 1: predict max(a, b) */
    uint32_t mid = ~(ge | le);                       /* case 2: predict a + b - c */
    *pred = (mn & ge) | (mx & le) | ((a + b - c) & mid);
    uint32_t hi = mx > c ? mx : c, lo = mn < c ? mn : c;
    uint32_t d = mx - mn; /* |a - b| in 4 classes: 0, 1, 2-3, >= 4 */
    uint32_t qd = (d >= 1) + (d >= 2) + (d >= 4);
    return 4 * (apd__ic_q3[hi - lo] + (le & 1u) + (mid & 2u)) + qd;
}

/* Parse and validate model bytes (the whole meta/imodel value, CRC included) for a file of
 * c channels and index width bits; allocates m->dec (free with apd__imodel_free). */
apd_status apd__imodel_parse(const uint8_t *p, size_t len, uint32_t c, uint32_t bits,
                             apd__imodel *m, const char **why);
void apd__imodel_free(apd__imodel *m);

/* Decode a coded body: palette (k*c bytes, entry-major) and indices (h*w bytes, row-major).
 * Checks every state, word count, empty-context use and index < k. Thread-safe; allocates
 * only for images larger than 16 KiB of scratch. impl: APD__IMPL_SCALAR (reference) or
 * APD__IMPL_AVX2 (8 lanes in one vector; also used for AVX-512 machines) or AUTO; both give
 * the same result and status for every input (the why text may differ). */
apd_status apd__icode_decode_impl(int impl, const apd__imodel *m, const uint8_t *body, size_t len,
                                  uint32_t k, uint32_t h, uint32_t w, uint8_t *pal, uint8_t *idx,
                                  const char **why);
apd_status apd__icode_decode(const apd__imodel *m, const uint8_t *body, size_t len, uint32_t k,
                             uint32_t h, uint32_t w, uint8_t *pal, uint8_t *idx,
                             const char **why);
/* Two records of the same file and geometry at once, each exactly as apd__icode_decode_impl
 * would decode it (same output, status st[i] and reason why[i]); returns st[0] if it is not
 * APD_OK, else st[1]. With AVX2 the two records' palette and index phases run in lockstep
 * (with AVX-512 in one 16-lane register set, unless impl is APD__IMPL_AVX2),
 * two independent dependency chains in one loop: 1.7-1.9x the images/s of one record per
 * call at 32x32 (the single decoder is latency-bound, see docs/index-coding.md). A damaged body (a fixed part
 * that fails its checks or a stream that runs out) makes both records go through the single
 * decoder. Meant for batch readers; needs 32 KiB of stack (the scratch of images larger than
 * about 56x56 comes from malloc). A record that fails leaves its palette and index map
 * unspecified (the AVX-512 decoder writes them as it goes). */
apd_status apd__icode_decode2(int impl, const apd__imodel *m, const uint8_t *const body[2],
                              const size_t len[2], const uint32_t k[2], uint32_t h, uint32_t w,
                              uint8_t *const pal[2], uint8_t *const idx[2], apd_status st[2],
                              const char *why[2]);
/* n records at once (any n >= 1), each exactly as apd__icode_decode_impl would decode it
 * (as apd__icode_decode2; returns the first st[i] that is not APD_OK). With AVX-512 (F, BW,
 * VL) and an even n <= 8, two records share one 16-lane register set and the n/2 sets run
 * in lockstep; otherwise (or with impl APD__IMPL_AVX2) pairs go through apd__icode_decode2.
 * Needs 32 KiB of stack. */
apd_status apd__icode_decoden(int impl, const apd__imodel *m, uint32_t n, const uint8_t *const *body,
                              const size_t *len, const uint32_t *k, uint32_t h, uint32_t w, uint8_t *const *pal,
                              uint8_t *const *idx, apd_status *st, const char **why);
/* The AVX-512 lockstep decoder of apd__icode_decoden alone (n = 2, 4, 6 or 8): 0 with st[] and the
 * outputs set, or -1 without it (no AVX-512, another n, a damaged fixed part or a stream
 * that runs out: apd__icode_decoden then decodes the records alone). For tests. */
int apd__icode_lockstep(const apd__imodel *m, uint32_t n, const uint8_t *const *body, const size_t *len,
                        const uint32_t *k, uint32_t h, uint32_t w, uint8_t *const *pal, uint8_t *const *idx,
                        apd_status *st, const char **why);
/* What apd__icode_decoden runs on this CPU (for benchmark reports). */
const char *apd__icode_batch_kernel(void);
/* 1 if impl (APD__IMPL_*) has an index decoder on this CPU. */
int apd__icode_impl_available(int impl);

/* ---- writer side ---- */
/* Symbol counts for model building: counts[t][s], t < APD__IC_NCTX + c. */
typedef struct apd__icounts {
    uint32_t c, bits;
    uint64_t n[APD__IC_NCTX + 3][256];
} apd__icounts;
void apd__icounts_init(apd__icounts *ct, uint32_t c, uint32_t bits);
void apd__icounts_add(apd__icounts *ct, const uint8_t *pal, uint32_t k, const uint8_t *idx,
                      uint32_t h, uint32_t w);
/* Normalise counts into a model (every palette symbol and, for bits <= 6, every index
 * symbol of a used context gets a nonzero frequency) of version APD__IC_VERSION (set m->ver
 * to 1 afterwards for a model of version 1). Allocates m->dec. */
apd_status apd__imodel_build(const apd__icounts *ct, apd__imodel *m);
/* Serialise: returns the size; out may be NULL to ask for it. */
size_t apd__imodel_write(const apd__imodel *m, uint8_t *out);
/* Encode one record body into out (capacity cap). Returns the body size, or 0 if a symbol
 * has frequency 0 in the model or the body does not fit cap. */
size_t apd__icode_encode(const apd__imodel *m, const uint8_t *pal, uint32_t k,
                         const uint8_t *idx, uint32_t h, uint32_t w, uint8_t *out, size_t cap);
/* Writer's palette order (informative): entries stably sorted by luminance
 * (299 R + 587 G + 114 B, or the grey value), indices remapped; pixels unchanged. */
void apd__ic_sort_palette(uint8_t *pal, uint32_t k, uint32_t c, uint8_t *idx, size_t npix);

#endif
