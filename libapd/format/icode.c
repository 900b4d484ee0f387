/* format/icode.c: the entropy-coded palette record body of format 1.1 (format/icode.h,
 * spec/apd-format.md section 7.4 and 8.1).
 *
 * What is coded: the palette as per-channel deltas from the previous entry (mod 256), then
 * the index map as residuals (mod 2^bits) from the MED predictor of JPEG-LS over the left
 * (a), up (b) and up-left (c) indices, each residual in one of 192 contexts (16 classes of
 * the local range max(a,b,c) - min(a,b,c), times the 3 branches of MED, times 4 classes of
 * |a - b|: 0, 1, 2-3, >= 4; the last factor saves 0.035 bits/pixel on CIFAR K=16, 4.5 bytes
 * per image, against 48 contexts). Pixels outside the
 * image read as index 0. Symbols are coded with rANS (32-bit states, 10-bit probabilities,
 * 16-bit renormalisation) against a static per-file model (meta/imodel).
 *
 * Why this shape (measured on CIFAR-10 median cut, see bench/decode): the writer sorts each
 * palette by luminance, so neighbouring colours get neighbouring numbers and MED residuals
 * concentrate near 0 (K=64: 4.27 bits/pixel instead of 6; palette deltas 5.5 bits instead
 * of 8). Why 8 lanes in a wavefront: with one rANS state the decode of pixel x waits for the
 * state update, the table load and the prediction of pixel x-1 (a chain of ~15 cycles, and
 * ~90 scalar instructions per pixel); with 8 rows in flight (row 8g+l, pixel t-l at step t,
 * lane l) the 8 chains are independent, since a pixel only needs its left, up and up-left
 * neighbours, all decoded at earlier steps, and one AVX2 register holds the 8 lanes: lane l's
 * left neighbour is its own previous value, its up neighbour lane l-1's previous value. A
 * step (8 pixels) is then one dependency chain: ~58 cycles with the tables in L1, 90-110 in
 * practice, as the 780 KB of decode tables mostly answer from L2 (the gather waits ~45
 * cycles); 4 lanes measured 2x slower, 16 lanes cost 24 more bytes per record (K=16 would
 * miss its size target). Decoding several records at once overlaps their chains: two in
 * lockstep with AVX2 (apd__icode_decode2) give 1.5-1.9x the images/s; with AVX-512 two
 * records share one 16-lane register set (the same chain, twice the pixels) and up to four
 * sets run in lockstep (apd__icode_decoden, n = 8). Each step stores its decoded bytes with
 * one store into a stage that is transposed into the rows afterwards (16 scattered byte
 * stores cost ~30% of the step). On a Zen 5 core a 16-element gather costs ~10 ns of latency
 * and ~4 ns of issue whether the tables answer from L1 or L2, so the eight-record step is
 * bound by its gathers and the instructions around them, not by the table size: the
 * prediction and the context run once on bytes for two sets at a time (ic_zloop, two
 * independent chains), the renormalisation expands each half's next words into its lanes
 * (vpexpandd), and the stream end is checked every eighth step. The reader's batch calls use
 * the eight-record decoder; see docs/index-coding.md for the profile and the measurements.
 *
 * Hardening: every count and size is checked before use; the decoder reads the stream from
 * a copy followed by IC_TAIL (128) zero bytes and checks, after every step (every eighth step
 * in the AVX-512 batch decoder: a step reads 16 bytes per stream), that it has not run past
 * the end, uses a fixed number of symbols (no data-dependent loops), and at the end requires
 * every state to be back at 2^16, every word consumed, no empty context used and every
 * index < k.
 */
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "apd/format.h"
#include "format/format_internal.h"
#include "format/icode.h"

/* Zero bytes after each record's word stream in its scratch copy: a vector step reads 16
 * bytes at the word pointer and advances it by at most 16, so a decoder may check the stream
 * end every eighth step. */
#define IC_TAIL 128u

/* 3 * class of the range r = max(a,b,c) - min(a,b,c): class = number of the edges
 * 1 2 3 4 5 6 7 8 10 12 14 17 20 24 30 that are <= r. */
const uint8_t apd__ic_q3[256] = {
#define C3(v) (uint8_t)(3 * (v))
    C3(0), C3(1), C3(2), C3(3), C3(4), C3(5), C3(6), C3(7), C3(8), C3(8),          /* 0-9 */
    C3(9), C3(9), C3(10), C3(10), C3(11), C3(11), C3(11), C3(12), C3(12), C3(12), /* 10-19 */
    C3(13), C3(13), C3(13), C3(13), C3(14), C3(14), C3(14), C3(14), C3(14), C3(14), /* 20-29 */
#define C15 C3(15)
#define R10 C15, C15, C15, C15, C15, C15, C15, C15, C15, C15
    R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10, R10,
    C15, C15, C15, C15, C15, C15 /* 30-255 */
#undef R10
#undef C15
#undef C3
};

static uint32_t table_len(uint32_t t, uint32_t bits)
{
    return t < APD__IC_NCTX ? 1u << bits : 256u;
}

void apd__imodel_free(apd__imodel *m)
{
    if (!m) return;
    free(m->dec);
    m->dec = NULL;
}

/* Decode tables from freq/cum (already validated). */
static apd_status build_dec(apd__imodel *m)
{
    m->dec = calloc((size_t)m->ntab * APD__IC_M, sizeof *m->dec);
    if (!m->dec) return APD_ENOMEM;
    for (uint32_t msk = 0; msk < 256; msk++)
        for (uint32_t l = 0, r = 0; l < 8; l++) {
            uint8_t *q = m->shuf8[msk] + 4 * l;
            q[0] = q[1] = q[2] = q[3] = 0x80;
            if (msk >> l & 1) {
                q[0] = (uint8_t)(2 * r);
                q[1] = (uint8_t)(2 * r + 1);
                r++;
            }
        }
    for (uint32_t t = 0; t < m->ntab; t++) {
        uint32_t *d = m->dec + (size_t)t * APD__IC_M;
        for (uint32_t j = 0; j < APD__IC_M; j++) d[j] = APD__IC_EMPTY; /* until filled */
        for (uint32_t s = 0; s < table_len(t, m->bits); s++) {
            uint32_t f = m->freq[t][s], cu = m->cum[t][s];
            for (uint32_t j = 0; j < f; j++) d[cu + j] = s | f << 8 | j << 20;
        }
    }
    return APD_OK;
}

apd_status apd__imodel_parse(const uint8_t *p, size_t len, uint32_t c, uint32_t bits,
                             apd__imodel *m, const char **why)
{
    memset(m, 0, sizeof *m);
    if (len < APD__IC_MODEL_HDR) {
        *why = "index model shorter than its header";
        return APD_ETRUNC;
    }
    if (apd__ld32(p) != apd_crc32c(0, p + 4, len - 4)) {
        *why = "index model checksum mismatch (key \"imodel\")";
        return APD_ECHECKSUM;
    }
    if (memcmp(p + 4, APD__IC_MAGIC, 4) != 0) {
        *why = "wrong index model magic";
        return APD_ECORRUPT;
    }
    if (p[8] != 1 && p[8] != 2) {
        *why = "index model version is not 1 or 2 (file needs a newer reader)";
        return APD_EVERSION;
    }
    if (p[9] != c || p[10] != bits || p[11] != APD__IC_LANES || p[12] != APD__IC_PBITS ||
        p[13] != APD__IC_NCTX || apd__ld16(p + 14) != 0) {
        *why = "index model header does not match the file (c, bits, lanes 8, 10 probability bits, 192 contexts, reserved 0)";
        return APD_ECORRUPT;
    }
    if ((c != 1 && c != 3) || bits < 1 || bits > 8) {
        *why = "index model for an impossible geometry";
        return APD_ECORRUPT;
    }
    m->ver = p[8];
    m->c = c;
    m->bits = bits;
    m->ntab = APD__IC_NCTX + c;
    size_t pos = APD__IC_MODEL_HDR;
    for (uint32_t t = 0; t < m->ntab; t++) {
        uint32_t sum = 0;
        for (uint32_t s = 0; s < table_len(t, bits); s++) {
            if (pos >= len) {
                *why = "index model ends inside a frequency table";
                return APD_ETRUNC;
            }
            uint32_t v = p[pos] & 0x7f;
            if (p[pos++] & 0x80) {
                if (pos >= len) {
                    *why = "index model ends inside a frequency";
                    return APD_ETRUNC;
                }
                uint32_t hi = p[pos++];
                if (hi == 0 || hi > APD__IC_M >> 7) {
                    *why = "index model frequency not canonical or above 1024";
                    return APD_ECORRUPT;
                }
                v |= hi << 7;
            }
            if (v > APD__IC_M || sum + v > APD__IC_M) {
                *why = "index model frequencies sum to more than 1024";
                return APD_ECORRUPT;
            }
            m->freq[t][s] = (uint16_t)v;
            m->cum[t][s] = (uint16_t)sum;
            sum += v;
        }
        if (sum != APD__IC_M && !(t < APD__IC_NCTX && sum == 0)) {
            *why = "index model table does not sum to 1024 (or 0 for an unused index context)";
            return APD_ECORRUPT;
        }
    }
    if (pos != len) {
        *why = "index model has bytes after its last table";
        return APD_ECORRUPT;
    }
    if (build_dec(m) != APD_OK) {
        *why = "out of memory";
        return APD_ENOMEM;
    }
    return APD_OK;
}

/* ---- decoder ---------------------------------------------------------------------------- */

/* One rANS symbol of table row d on state *xs, renormalising from *pp. Returns the entry
 * (symbol in bits 0-7; bit 19 set only for an empty table). */
static inline uint32_t sym_dec(const uint32_t *d, uint32_t *xs, const uint8_t **pp)
{
    uint32_t x = *xs;
    uint32_t e = d[x & (APD__IC_M - 1)];
    x = ((e >> 8) & 0x7ffu) * (x >> APD__IC_PBITS) + (e >> 20);
    uint32_t need = x < APD__IC_L; /* branch-free: renormalisation is unpredictable */
    uint32_t wv = apd__ld16(*pp) & (0u - need);
    x = (x << (need << 4)) | wv;
    *pp += 2 * need;
    *xs = x;
    return e;
}

/* Pixel at q (padded grid, row stride s): context, symbol, index. */
static inline void px_dec(uint8_t *q, size_t s, const uint32_t *dec, uint32_t *xs,
                          const uint8_t **pp, uint32_t amask, uint32_t *mx, uint32_t *eor)
{
    uint32_t pred;
    uint32_t ctx = apd__ic_ctx(q[-1], q[-(ptrdiff_t)s], q[-(ptrdiff_t)s - 1], &pred);
    uint32_t e = sym_dec(dec + (size_t)ctx * APD__IC_M, xs, pp);
    uint32_t v = (pred + e) & amask;
    *eor |= e;
    *mx = v > *mx ? v : *mx;
    *q = (uint8_t)v;
}

/* The index grid: row -1 and 8 columns each side are zero, and 8 spare rows below, so that
 * positions outside the image read as 0 and the vector decoder may write its inactive lanes
 * (always 0) without checks. Pixel (y, x) at grid + (y + 1) * stride + IC_PAD + x. */
#define IC_PAD 8u

/* Scalar reference of the index phase (spec 7.4.2), model version 1 or 2. Returns 0, or -1
 * if the stream ran out. */
static int index_scalar(const apd__imodel *m, uint8_t *grid, size_t s, uint32_t h, uint32_t w,
                        uint32_t *x, const uint8_t **pp, const uint8_t *end, uint32_t *vmax,
                        uint32_t *eor)
{
    const uint32_t amask = (1u << m->bits) - 1;
    if (m->ver == 1) {
        for (uint32_t y0 = 0; y0 < h; y0 += APD__IC_LANES) {
            uint32_t nl = h - y0 < APD__IC_LANES ? h - y0 : APD__IC_LANES;
            uint8_t *row = grid + (size_t)(y0 + 1) * s + IC_PAD; /* lane l, column x: row[l*s + x] */
            for (uint32_t t = 0; t + 1 < w + nl; t++) {
                for (uint32_t l = 0; l < nl; l++)
                    if (t >= l && t - l < w) px_dec(row + l * s + (t - l), s, m->dec, &x[l], pp, amask, vmax, eor);
                if (*pp > end) return -1;
            }
        }
        return 0;
    }
    const size_t nt = apd__ic_nsteps2(h, w);
    for (size_t t = 0; t < nt; t++) {
        for (uint32_t l = 0; l < APD__IC_LANES; l++) {
            size_t y;
            uint32_t xc;
            if (apd__ic_at2(t, l, h, w, &y, &xc)) px_dec(grid + (y + 1) * s + IC_PAD + xc, s, m->dec, &x[l], pp, amask, vmax, eor);
        }
        if (*pp > end) return -1;
    }
    return 0;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define IC_X86 1
#define IC_AVX2 __attribute__((target("avx2,bmi2,popcnt")))

/* One rANS symbol on each active lane (act all-ones) of the 8 states in *x: table offsets
 * off (table * 1024), renormalising from *p in lane order. An inactive lane gets the entry
 * f = 1024, bias = slot, which leaves its state as it is (1024 * (x >> 10) + x % 1024) and
 * so needs no blend on the state's critical path; its symbol is 0 and callers mask it. A
 * state stays >= 2^16 between symbols (f >= 1 and x >> 10 >= 64), so an inactive lane never
 * renormalises; only an empty table (f = 0, flagged) breaks that, and then the body is
 * rejected anyway. */
IC_AVX2 static inline __m256i step8(__m256i *x, __m256i off, __m256i act, const uint32_t *dec,
                                    const uint8_t (*shuf)[32], const uint8_t **p)
{
    __m256i slot = _mm256_and_si256(*x, _mm256_set1_epi32(APD__IC_M - 1));
    __m256i keep = _mm256_or_si256(_mm256_slli_epi32(slot, 20), _mm256_set1_epi32(APD__IC_M << 8));
    __m256i e = _mm256_mask_i32gather_epi32(keep, (const int *)dec, _mm256_add_epi32(off, slot), act, 4);
    __m256i f = _mm256_and_si256(_mm256_srli_epi32(e, 8), _mm256_set1_epi32(0x7ff));
    __m256i xn = _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srli_epi32(*x, APD__IC_PBITS)),
                                  _mm256_srli_epi32(e, 20));
    __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(xn, 16), _mm256_setzero_si256());
    uint32_t msk = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(need));
    __m256i wds = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)*p));
    __m256i wv = _mm256_shuffle_epi8(wds, _mm256_loadu_si256((const __m256i *)shuf[msk]));
    *x = _mm256_blendv_epi8(xn, _mm256_or_si256(_mm256_slli_epi32(xn, 16), wv), need);
    *p += 2 * (uint32_t)__builtin_popcount(msk);
    return e;
}

/* Vector index phase: the 8 lanes of a row group in one register per quantity. Lane l's
 * left neighbour is its own previous value, its up neighbour lane l-1's previous value (lane
 * 0: the row above, from the grid), its up-left neighbour its previous up neighbour. */

/* The phase's constants (one set shared by every record decoded together). */
typedef struct ic_vk {
    __m256i lane, rot, amask, one, two, c15, q16, qd16, packb, wv;
    const uint32_t *dec;
    const uint8_t (*shuf)[32];
    size_t s; /* grid row stride */
} ic_vk;

/* One record's running state: rANS states, previous values (vp) and up neighbours (bp) of
 * the lanes, the running max of the values and OR of the entries, the word pointer, and the
 * grid rows of the current group. */
typedef struct ic_vs {
    __m256i x, vp, bp, vm, eo;
    const uint8_t *p;
    uint8_t *row;
    const uint8_t *up;
} ic_vs;

IC_AVX2 static inline void ic_vk_init(ic_vk *K, const apd__imodel *m, uint32_t w, size_t s)
{
    K->lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    K->rot = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
    K->amask = _mm256_set1_epi32((int)((1u << m->bits) - 1));
    K->one = _mm256_set1_epi32(1);
    K->two = _mm256_set1_epi32(2);
    K->c15 = _mm256_set1_epi32(15);
    K->q16 = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11, 11,
                              0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11, 11);
    K->qd16 = _mm256_setr_epi8(0, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
                               0, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3);
    K->packb = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    K->wv = _mm256_set1_epi32((int)w);
    K->dec = m->dec;
    K->shuf = m->shuf8;
    K->s = s;
}

IC_AVX2 static inline void ic_vs_init(ic_vs *S, const uint32_t *xs, const uint8_t *p)
{
    S->x = _mm256_loadu_si256((const __m256i *)xs);
    S->vm = S->eo = _mm256_setzero_si256();
    S->p = p;
}

/* Start row group y0 (rows y0 .. y0+7). */
IC_AVX2 static inline void ic_vs_group(ic_vs *S, uint8_t *grid, size_t s, uint32_t y0)
{
    S->row = grid + (size_t)(y0 + 1) * s + IC_PAD;
    S->up = grid + (size_t)y0 * s + IC_PAD;
    S->vp = S->bp = _mm256_setzero_si256();
}

IC_AVX2 static inline void ic_vs_done(const ic_vs *S, uint32_t *xs, const uint8_t **pp, uint32_t *vmax,
                                      uint32_t *eor)
{
    *pp = S->p;
    _mm256_storeu_si256((__m256i *)xs, S->x);
    uint32_t t8[8];
    _mm256_storeu_si256((__m256i *)t8, S->vm);
    for (int l = 0; l < 8; l++) *vmax = t8[l] > *vmax ? t8[l] : *vmax;
    _mm256_storeu_si256((__m256i *)t8, S->eo);
    for (int l = 0; l < 8; l++) *eor |= t8[l];
}

/* MED, context and symbol on the lanes act of one record, from the neighbours a (left), b (up)
 * and c (up-left); returns the indices (0 on inactive lanes). */
IC_AVX2 static inline __attribute__((always_inline)) __m256i ic_vcore(ic_vs *S, const ic_vk *K, __m256i a, __m256i b,
                                                                      __m256i c, __m256i act)
{
    __m256i mn = _mm256_min_epu32(a, b), mx = _mm256_max_epu32(a, b);
    __m256i ge = _mm256_cmpeq_epi32(_mm256_max_epu32(c, mx), c);
    __m256i le = _mm256_andnot_si256(ge, _mm256_cmpeq_epi32(_mm256_min_epu32(c, mn), c));
    __m256i pred = _mm256_sub_epi32(_mm256_add_epi32(a, b), c);
    pred = _mm256_blendv_epi8(pred, mx, le);
    pred = _mm256_blendv_epi8(pred, mn, ge);
    __m256i rng = _mm256_sub_epi32(_mm256_max_epu32(mx, c), _mm256_min_epu32(mn, c));
    __m256i cls = _mm256_shuffle_epi8(K->q16, _mm256_min_epu32(rng, K->c15));
    /* + (rng >= 17) + (rng >= 20) + (rng >= 24) + (rng >= 30), summed as a tree */
    __m256i g1 = _mm256_add_epi32(_mm256_cmpgt_epi32(rng, _mm256_set1_epi32(16)),
                                  _mm256_cmpgt_epi32(rng, _mm256_set1_epi32(19)));
    __m256i g2 = _mm256_add_epi32(_mm256_cmpgt_epi32(rng, _mm256_set1_epi32(23)),
                                  _mm256_cmpgt_epi32(rng, _mm256_set1_epi32(29)));
    cls = _mm256_sub_epi32(cls, _mm256_add_epi32(g1, g2));
    __m256i cs = _mm256_or_si256(_mm256_and_si256(le, K->one),
                                 _mm256_andnot_si256(_mm256_or_si256(ge, le), K->two));
    __m256i ctx = _mm256_add_epi32(_mm256_add_epi32(cls, _mm256_add_epi32(cls, cls)), cs);
    __m256i qd = _mm256_shuffle_epi8(K->qd16, _mm256_min_epu32(_mm256_sub_epi32(mx, mn), K->c15));
    ctx = _mm256_add_epi32(_mm256_slli_epi32(ctx, 2), qd);
    __m256i e = step8(&S->x, _mm256_slli_epi32(ctx, APD__IC_PBITS), act, K->dec, K->shuf, &S->p);
    S->eo = _mm256_or_si256(S->eo, e);
    __m256i v = _mm256_and_si256(_mm256_and_si256(_mm256_add_epi32(pred, e), K->amask), act);
    S->vm = _mm256_max_epu32(S->vm, v);
    return v;
}

/* Step t of a row group of nl rows (model version 1): lane l decodes pixel t - l of its row. */
IC_AVX2 static inline __attribute__((always_inline)) void ic_vstep(ic_vs *S, const ic_vk *K, uint32_t t,
                                                                   __m256i nlv)
{
    const size_t s = K->s;
    __m256i tv = _mm256_set1_epi32((int)t);
    __m256i act = _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_add_epi32(tv, K->one), K->lane),
                                   _mm256_cmpgt_epi32(K->wv, _mm256_sub_epi32(tv, K->lane)));
    act = _mm256_and_si256(act, _mm256_cmpgt_epi32(nlv, K->lane));
    __m256i b = _mm256_blend_epi32(_mm256_permutevar8x32_epi32(S->vp, K->rot), _mm256_set1_epi32(S->up[t]), 1);
    __m256i v = ic_vcore(S, K, S->vp, b, S->bp, act);
    __m256i pk = _mm256_shuffle_epi8(v, K->packb);
    uint32_t lo = (uint32_t)_mm256_extract_epi32(pk, 0), hi = (uint32_t)_mm256_extract_epi32(pk, 4);
    uint8_t *q = S->row + t;
    q[0] = (uint8_t)lo;
    q[s - 1] = (uint8_t)(lo >> 8);
    q[2 * s - 2] = (uint8_t)(lo >> 16);
    q[3 * s - 3] = (uint8_t)(lo >> 24);
    q[4 * s - 4] = (uint8_t)hi;
    q[5 * s - 5] = (uint8_t)(hi >> 8);
    q[6 * s - 6] = (uint8_t)(hi >> 16);
    q[7 * s - 7] = (uint8_t)(hi >> 24);
    S->vp = v;
    S->bp = b;
}

/* Model version 2's schedule, shared by the records decoded together: lane l's column (cv,
 * negative before its first step) and row (yv), this step's active lanes and the lanes that
 * start a row (no left or up-left neighbour), and where each lane's byte goes: lane l's
 * pixel of step t is at row + t + off[l] (row: pixel (0, 0) of the grid; off[l] grows by
 * 8 s - W each time the lane moves on to its next row). */
typedef struct ic_v2 {
    __m256i cv, yv, act, rs, wv, hv, Wv, c8;
    ptrdiff_t off[8];
    ptrdiff_t d; /* 8 s - W */
} ic_v2;

IC_AVX2 static inline void ic_v2_init(ic_v2 *V, uint32_t h, uint32_t w, size_t s)
{
    V->cv = _mm256_setr_epi32(0, -1, -2, -3, -4, -5, -6, -7);
    V->yv = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    V->wv = _mm256_set1_epi32((int)w);
    V->hv = _mm256_set1_epi32((int)h);
    V->Wv = _mm256_set1_epi32((int)apd__ic_w2(w));
    V->c8 = _mm256_set1_epi32(8);
    for (uint32_t l = 0; l < 8; l++) V->off[l] = (ptrdiff_t)(l * (s - 1));
    V->d = (ptrdiff_t)(8 * s) - (ptrdiff_t)apd__ic_w2(w);
}

/* This step's masks (from cv, yv). */
IC_AVX2 static inline void ic_v2_masks(ic_v2 *V)
{
    __m256i z = _mm256_setzero_si256();
    V->act = _mm256_and_si256(_mm256_and_si256(_mm256_cmpgt_epi32(V->cv, _mm256_set1_epi32(-1)),
                                               _mm256_cmpgt_epi32(V->wv, V->cv)),
                              _mm256_cmpgt_epi32(V->hv, V->yv));
    V->rs = _mm256_cmpeq_epi32(V->cv, z);
}

/* On to the next step: every column + 1; a lane at column W goes on to its next row. */
IC_AVX2 static inline void ic_v2_next(ic_v2 *V)
{
    __m256i cv = _mm256_add_epi32(V->cv, _mm256_set1_epi32(1));
    __m256i wrap = _mm256_cmpeq_epi32(cv, V->Wv);
    V->cv = _mm256_sub_epi32(cv, _mm256_and_si256(wrap, V->Wv));
    V->yv = _mm256_add_epi32(V->yv, _mm256_and_si256(wrap, V->c8));
    for (uint32_t m = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(wrap)); m; m &= m - 1)
        V->off[__builtin_ctz(m)] += V->d;
}

/* Step t of model version 2 (one continuous wavefront, spec 7.4.2). */
IC_AVX2 static inline __attribute__((always_inline)) void ic_vstep2(ic_vs *S, const ic_vk *K, const ic_v2 *V,
                                                                    uint32_t t)
{
    uint8_t *q = S->row + t;
    __m256i a = _mm256_andnot_si256(V->rs, S->vp);
    __m256i b = _mm256_blend_epi32(_mm256_permutevar8x32_epi32(S->vp, K->rot),
                                   _mm256_set1_epi32(q[V->off[0] - (ptrdiff_t)K->s]), 1);
    __m256i c = _mm256_andnot_si256(V->rs, S->bp);
    __m256i v = ic_vcore(S, K, a, b, c, V->act);
    __m256i pk = _mm256_shuffle_epi8(v, K->packb);
    uint32_t lo = (uint32_t)_mm256_extract_epi32(pk, 0), hi = (uint32_t)_mm256_extract_epi32(pk, 4);
    q[V->off[0]] = (uint8_t)lo;
    q[V->off[1]] = (uint8_t)(lo >> 8);
    q[V->off[2]] = (uint8_t)(lo >> 16);
    q[V->off[3]] = (uint8_t)(lo >> 24);
    q[V->off[4]] = (uint8_t)hi;
    q[V->off[5]] = (uint8_t)(hi >> 8);
    q[V->off[6]] = (uint8_t)(hi >> 16);
    q[V->off[7]] = (uint8_t)(hi >> 24);
    S->vp = v;
    S->bp = b;
}

IC_AVX2 static int index_avx2(const apd__imodel *m, uint8_t *grid, size_t s, uint32_t h, uint32_t w,
                              uint32_t *xs, const uint8_t **pp, const uint8_t *end, uint32_t *vmax,
                              uint32_t *eor)
{
    /* locals: the byte stores into the grid could alias anything reached through a pointer,
       which would make the compiler reload the constants on every step */
    ic_vk K;
    ic_vs A;
    ic_vk_init(&K, m, w, s);
    ic_vs_init(&A, xs, *pp);
    if (m->ver != 1) {
        ic_v2 V;
        ic_v2_init(&V, h, w, s);
        ic_vs_group(&A, grid, s, 0);
        const size_t nt = apd__ic_nsteps2(h, w);
        for (uint32_t t = 0; t < nt; t++) {
            ic_v2_masks(&V);
            ic_vstep2(&A, &K, &V, t);
            if (A.p > end) return -1;
            ic_v2_next(&V);
        }
        ic_vs_done(&A, xs, pp, vmax, eor);
        return 0;
    }
    for (uint32_t y0 = 0; y0 < h; y0 += APD__IC_LANES) {
        uint32_t nl = h - y0 < APD__IC_LANES ? h - y0 : APD__IC_LANES;
        const __m256i nlv = _mm256_set1_epi32((int)nl);
        ic_vs_group(&A, grid, s, y0);
        for (uint32_t t = 0; t + 1 < w + nl; t++) {
            ic_vstep(&A, &K, t, nlv);
            if (A.p > end) return -1;
        }
    }
    ic_vs_done(&A, xs, pp, vmax, eor);
    return 0;
}

/* Two records of the same geometry in lockstep: two independent dependency chains, so the
 * core overlaps one record's gather and renormalisation latency with the other's (a step is
 * latency-bound; with three or more records the 16 AVX2 registers spill). Returns 0, or -1
 * if either stream ran out. */
IC_AVX2 static int index_avx2_x2(const apd__imodel *m, uint8_t *const grid[2], size_t s, uint32_t h,
                                 uint32_t w, uint32_t *const xs[2], const uint8_t *pp[2],
                                 const uint8_t *const end[2], uint32_t vmax[2], uint32_t eor[2])
{
    ic_vk K;
    ic_vs A, B;
    ic_vk_init(&K, m, w, s);
    ic_vs_init(&A, xs[0], pp[0]);
    ic_vs_init(&B, xs[1], pp[1]);
    if (m->ver != 1) {
        ic_v2 V;
        ic_v2_init(&V, h, w, s);
        ic_vs_group(&A, grid[0], s, 0);
        ic_vs_group(&B, grid[1], s, 0);
        const size_t nt = apd__ic_nsteps2(h, w);
        for (uint32_t t = 0; t < nt; t++) {
            ic_v2_masks(&V);
            ic_vstep2(&A, &K, &V, t);
            ic_vstep2(&B, &K, &V, t);
            if ((A.p > end[0]) | (B.p > end[1])) return -1;
            ic_v2_next(&V);
        }
        ic_vs_done(&A, xs[0], &pp[0], &vmax[0], &eor[0]);
        ic_vs_done(&B, xs[1], &pp[1], &vmax[1], &eor[1]);
        return 0;
    }
    for (uint32_t y0 = 0; y0 < h; y0 += APD__IC_LANES) {
        uint32_t nl = h - y0 < APD__IC_LANES ? h - y0 : APD__IC_LANES;
        const __m256i nlv = _mm256_set1_epi32((int)nl);
        ic_vs_group(&A, grid[0], s, y0);
        ic_vs_group(&B, grid[1], s, y0);
        for (uint32_t t = 0; t + 1 < w + nl; t++) {
            ic_vstep(&A, &K, t, nlv);
            ic_vstep(&B, &K, t, nlv);
            if ((A.p > end[0]) | (B.p > end[1])) return -1;
        }
    }
    ic_vs_done(&A, xs[0], &pp[0], &vmax[0], &eor[0]);
    ic_vs_done(&B, xs[1], &pp[1], &vmax[1], &eor[1]);
    return 0;
}

/* ---- AVX-512: two records in one 16-lane register ------------------------------------------
 * Lanes 0-7 are record A's 8 row lanes, lanes 8-15 record B's, so one instruction stream
 * (one gather of 16 entries, one multiply, ...) advances both records' rANS states. The lane
 * rules are those of ic_vstep in each half; each half renormalises from its own word stream.
 * Up to four such register sets (eight records) run in lockstep (ic_zloop, ic_zpal). */
#define IC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,bmi2,popcnt")))
#define IC_MAXZ 4 /* register sets in lockstep: up to 8 records */
#define IC_SROW (16u * IC_MAXZ) /* bytes per step of the interleaved stages */

typedef struct ic_zk {
    __m512i rot, amask, kf, b15, b31, b112, b16, b4, b8, clsa, clsb, qd;
    const uint32_t *dec;
} ic_zk;

/* Two records' rANS states and word pointers in one register set (record 2z on lanes 0-7,
 * record 2z + 1 on lanes 8-15). The loops copy them into locals (ic_zloop, ic_zpal). */
typedef struct ic_zs {
    __m512i x;
    const uint8_t *p0, *p1;
} ic_zs;

IC_AVX512 static void ic_zk_init(ic_zk *K, const apd__imodel *m)
{
    /* b: lane l's up neighbour is lane l-1's previous value; lanes 0 and 8 take row 7 of
       the previous group (its stage, lanes 7 and 15, elements 16 + 7 and 16 + 15); a dword
       lane carries that lane's byte of every set */
    K->rot = _mm512_setr_epi32(23, 0, 1, 2, 3, 4, 5, 6, 31, 8, 9, 10, 11, 12, 13, 14);
    K->amask = _mm512_set1_epi8((char)((1u << m->bits) - 1));
    K->kf = _mm512_set1_epi32(APD__IC_M << 8);
    K->b15 = _mm512_set1_epi8(15);
    K->b31 = _mm512_set1_epi8(31);
    K->b112 = _mm512_set1_epi8(112);
    K->b16 = _mm512_set1_epi8(16);
    K->b4 = _mm512_set1_epi8(4);
    K->b8 = _mm512_set1_epi8(8);
    /* 4 x 3 x class of the range r (<= 180): r 0-15 from clsa, 16-31 from clsb (r >= 31 is
       class 15), each a 16-byte byte-shuffle table in every 128-bit lane */
    uint8_t ta[64], tb[64], tq[64];
    for (int i = 0; i < 64; i++) {
        ta[i] = (uint8_t)(4 * apd__ic_q3[i % 16]);
        tb[i] = (uint8_t)(4 * apd__ic_q3[16 + i % 16]);
        uint32_t d = (uint32_t)i % 16; /* |a - b| in 4 classes: 0, 1, 2-3, >= 4 */
        tq[i] = (uint8_t)((d >= 1) + (d >= 2) + (d >= 4));
    }
    K->clsa = _mm512_loadu_si512(ta);
    K->clsb = _mm512_loadu_si512(tb);
    K->qd = _mm512_loadu_si512(tq);
    K->dec = m->dec;
}

/* Lanes l of a row group of nl rows active at step t: l <= t, t - l < w, l < nl; the same
 * mask in both halves. */
static inline __mmask16 ic_zact(uint32_t t, uint32_t w, uint32_t nl)
{
    uint32_t hi = t + 1 < nl ? t + 1 : nl, lo = t >= w ? t - w + 1 : 0;
    uint32_t a8 = ((1u << hi) - 1) & ~((1u << lo) - 1);
    return (__mmask16)(a8 | a8 << 8);
}

/* One rANS symbol on the active lanes act of one register set (step8 with 16 lanes and two
 * word streams: lanes 0-7 renormalise from *pa, lanes 8-15 from *pb): table offsets off
 * (table x 1024); returns the entries. The state and the word pointers are the caller's
 * locals. */
IC_AVX512 static inline __attribute__((always_inline)) __m512i ic_zrans(__m512i *xp, const uint8_t **pa,
                                                                        const uint8_t **pb, const ic_zk *K,
                                                                        __m512i off, __mmask16 act)
{
    __m512i x = *xp;
    __m512i slot = _mm512_and_si512(x, _mm512_set1_epi32(APD__IC_M - 1));
    /* an idle lane keeps its state: f = 1024 and start = slot give x again */
    __m512i e = _mm512_mask_i32gather_epi32(_mm512_or_si512(_mm512_slli_epi32(slot, 20), K->kf), act,
                                            _mm512_add_epi32(off, slot), (const int *)K->dec, 4);
    __m512i f = _mm512_and_si512(_mm512_srli_epi32(e, 8), _mm512_set1_epi32(0x7ff));
    __m512i xn = _mm512_add_epi32(_mm512_mullo_epi32(f, _mm512_srli_epi32(x, APD__IC_PBITS)), _mm512_srli_epi32(e, 20));
    __mmask16 need = _mm512_cmplt_epu32_mask(xn, _mm512_set1_epi32((int)APD__IC_L));
    uint32_t m0 = need & 0xffu, m1 = (uint32_t)need >> 8;
    __m256i w0 = _mm256_maskz_expand_epi32((__mmask8)need, _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)*pa)));
    __m256i w1 = _mm256_maskz_expand_epi32((__mmask8)(need >> 8),
                                           _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)*pb)));
    __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
    *xp = _mm512_mask_mov_epi32(xn, need, _mm512_or_si512(_mm512_slli_epi32(xn, 16), wv));
    *pa += 2 * (uint32_t)__builtin_popcount(m0);
    *pb += 2 * (uint32_t)__builtin_popcount(m1);
    return e;
}

/* MED prediction and context of every byte lane from the left (vp, masked by the row starts
 * rs), up (from vp and the row above, upv) and up-left (bp) neighbours; *bo the up neighbours. */
IC_AVX512 static inline __attribute__((always_inline)) __m512i ic_zmed(const ic_zk *K, __m512i vp, __m512i bp,
                                                                       __m512i upv, __mmask16 rs, __m512i *predo,
                                                                       __m512i *bo)
{
    __m512i a = _mm512_maskz_mov_epi32((__mmask16)~rs, vp);
    __m512i b = _mm512_permutex2var_epi32(vp, K->rot, upv);
    __m512i c = _mm512_maskz_mov_epi32((__mmask16)~rs, bp);
    __m512i mn = _mm512_min_epu8(a, b), mx = _mm512_max_epu8(a, b);
    __mmask64 ge = _mm512_cmpge_epu8_mask(c, mx);
    __mmask64 le = _kandn_mask64(ge, _mm512_cmple_epu8_mask(c, mn));
    /* MED: min(a, b) if c >= max, max(a, b) if c <= min, else a + b - c (in 0..255 then) */
    __m512i pred = _mm512_sub_epi8(_mm512_add_epi8(a, b), c);
    pred = _mm512_mask_mov_epi8(pred, le, mx);
    *predo = _mm512_mask_mov_epi8(pred, ge, mn);
    *bo = b;
    /* context: 12 x class of the range (two byte shuffles, r < 16 and 16 <= r <= 31; an index
       with bit 7 set gives 0), + 4 x branch, + class of |a - b| */
    __m512i rng = _mm512_min_epu8(_mm512_sub_epi8(_mm512_max_epu8(mx, c), _mm512_min_epu8(mn, c)), K->b31);
    __m512i ctx = _mm512_or_si512(_mm512_shuffle_epi8(K->clsa, _mm512_add_epi8(rng, K->b112)),
                                  _mm512_shuffle_epi8(K->clsb, _mm512_sub_epi8(rng, K->b16)));
    ctx = _mm512_mask_add_epi8(ctx, le, ctx, K->b4);
    ctx = _mm512_mask_add_epi8(ctx, _knot_mask64(_kor_mask64(ge, le)), ctx, K->b8);
    return _mm512_add_epi8(ctx, _mm512_shuffle_epi8(K->qd, _mm512_min_epu8(_mm512_sub_epi8(mx, mn), K->b15)));
}

/* What ic_zloop carries from one call (row group) to the next: the OR of every table entry
 * read (eo: an empty context's entry has APD__IC_EMPTY) and the bytewise maximum of every
 * decoded index (vm: byte 4 l + z is lane l of set z). */
typedef struct ic_zw {
    __m512i eo, vm;
} ic_zw;

/* The nt index steps of nz register sets (a constant at each call site).
 *
 * The decoded indices of all sets live in byte vectors, byte 4 l + z holding lane l of set z,
 * so the prediction and the context take one pass of byte operations for two sets (ic_zmed),
 * not one pass of dword operations per set. Sets 0-1 and sets 2-3 form two chains (vp/bp and
 * vq/bq, each using its own two bytes of every dword): each chain's next step waits only
 * for its own two gathers, so the core overlaps one chain's gathers with the other chain's
 * prediction. (One chain for all four sets measured 5% slower; four chains are the earlier
 * per-set dword steps, 15% slower at CIFAR-10 K = 64.) The sets' states and word pointers
 * stay in locals for the whole loop (kept in the structs, which the stage stores may alias,
 * they would live in memory).
 *
 * Step t's activity (8 lanes, the same in both halves of every set) and row starts (no left
 * or up-left neighbour) come from mk[t] (bits 0-15 and 16-31; model version 2) or, with mk
 * NULL, from ic_zact(t, w, nl) with no row starts (version 1, one row group). Step t's bytes
 * go to the stage row st + IC_SROW t; lanes 0 and 8 read their up neighbours from up +
 * IC_SROW (t + 7) (lanes 7 and 15 of the rows above at column t were decoded at that step).
 * A step reads 16 bytes at each word pointer and advances it by at most 16, so with IC_TAIL
 * (128) zero bytes after each stream the end needs checking only every eighth step (and
 * after the last). Returns 0, or -1 if a stream ran out (the caller then decodes each record
 * alone, which names the fault). */
IC_AVX512 static inline __attribute__((always_inline)) int ic_zloop(ic_zs *Z, ic_zw *V, const ic_zk *K, uint32_t nz,
                                                                    uint32_t nt,
                                                                    const uint32_t *mk, uint32_t w, uint32_t nl,
                                                                    uint8_t *st, const uint8_t *up,
                                                                    const uint8_t *const *end)
{
    const __m512i zero = _mm512_setzero_si512();
    __m512i x0 = Z[0].x, x1 = nz >= 2 ? Z[1].x : zero, x2 = nz >= 3 ? Z[2].x : zero, x3 = nz >= 4 ? Z[3].x : zero;
    const uint8_t *a0 = Z[0].p0, *b0 = Z[0].p1, *a1 = NULL, *b1 = NULL, *a2 = NULL, *b2 = NULL, *a3 = NULL, *b3 = NULL;
    if (nz >= 2) a1 = Z[1].p0, b1 = Z[1].p1;
    if (nz >= 3) a2 = Z[2].p0, b2 = Z[2].p1;
    if (nz >= 4) a3 = Z[3].p0, b3 = Z[3].p1;
    /* a call starts with no left or up-left values */
    __m512i vp = zero, bp = zero, vq = zero, bq = zero, eo = V->eo, vm = V->vm;
    int rc = 0;
    for (uint32_t t = 0; t < nt; t++) {
        const __mmask16 act = mk ? (__mmask16)mk[t] : ic_zact(t, w, nl);
        const __mmask16 rs = mk ? (__mmask16)(mk[t] >> 16) : 0;
        const __m512i upv = _mm512_loadu_si512(up + IC_SROW * ((size_t)t + 7));
        __m512i pred, b, ctx = ic_zmed(K, vp, bp, upv, rs, &pred, &b);
        /* set z's contexts (byte z of each dword) to table offsets, context x 1024 */
        __m512i eA = ic_zrans(&x0, &a0, &b0, K, _mm512_srli_epi32(_mm512_slli_epi32(ctx, 24), 14), act);
        __m512i eB = zero, eC = zero, eD = zero;
        if (nz >= 2) eB = ic_zrans(&x1, &a1, &b1, K, _mm512_srli_epi32(_mm512_slli_epi32(_mm512_srli_epi32(ctx, 8), 24), 14), act);
        /* the residuals (the entries' low bytes) into byte z of each dword lane */
        __m512i r = _mm512_mask_mov_epi8(eA, 0x2222222222222222ull, _mm512_slli_epi32(eB, 8));
        vp = _mm512_maskz_and_epi32(act, _mm512_add_epi8(pred, r), K->amask);
        bp = b;
        if (nz >= 3) {
            __m512i pred1, b1v, ctx1 = ic_zmed(K, vq, bq, upv, rs, &pred1, &b1v);
            eC = ic_zrans(&x2, &a2, &b2, K, _mm512_srli_epi32(_mm512_slli_epi32(_mm512_srli_epi32(ctx1, 16), 24), 14), act);
            if (nz >= 4) eD = ic_zrans(&x3, &a3, &b3, K, _mm512_slli_epi32(_mm512_srli_epi32(ctx1, 24), 10), act);
            __m512i r1 = _mm512_mask_mov_epi8(_mm512_slli_epi32(eC, 16), 0x8888888888888888ull, _mm512_slli_epi32(eD, 24));
            vq = _mm512_maskz_and_epi32(act, _mm512_add_epi8(pred1, r1), K->amask);
            bq = b1v;
        }
        __m512i v = nz >= 3 ? _mm512_mask_mov_epi8(vp, 0xccccccccccccccccull, vq) : vp;
        eo = _mm512_ternarylogic_epi32(eo, eA, _mm512_ternarylogic_epi32(eB, eC, eD, 0xfe), 0xfe);
        vm = _mm512_max_epu8(vm, v);
        _mm512_storeu_si512(st + IC_SROW * (size_t)t, v);
        if ((t & 7) == 7 || t + 1 == nt) {
            int out = (a0 > end[0]) | (b0 > end[1]);
            if (nz >= 2) out |= (a1 > end[2]) | (b1 > end[3]);
            if (nz >= 3) out |= (a2 > end[4]) | (b2 > end[5]);
            if (nz >= 4) out |= (a3 > end[6]) | (b3 > end[7]);
            if (out) {
                rc = -1;
                break;
            }
        }
    }
    V->eo = eo, V->vm = vm;
    Z[0].x = x0, Z[0].p0 = a0, Z[0].p1 = b0;
    if (nz >= 2) Z[1].x = x1, Z[1].p0 = a1, Z[1].p1 = b1;
    if (nz >= 3) Z[2].x = x2, Z[2].p0 = a2, Z[2].p1 = b2;
    if (nz >= 4) Z[3].x = x3, Z[3].p0 = a3, Z[3].p1 = b3;
    return rc;
}

IC_AVX512 static inline void ic_zs_init(ic_zs *S, const uint32_t *xa, const uint32_t *xb, const uint8_t *pa,
                                        const uint8_t *pb)
{
    S->x = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)xa)),
                              _mm256_loadu_si256((const __m256i *)xb), 1);
    S->p0 = pa;
    S->p1 = pb;
}

/* 16 rows of 16 bytes (in, row stride IC_SROW) transposed: out[l] = column l. */
IC_AVX512 static inline void ic_t16(const uint8_t *in, __m128i out[16])
{
    __m128i r[16], u[16];
    for (int i = 0; i < 16; i++) r[i] = _mm_loadu_si128((const __m128i *)(in + IC_SROW * i));
    for (int i = 0; i < 8; i++) {
        u[2 * i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
        u[2 * i + 1] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) {
            r[4 * i + 2 * j] = _mm_unpacklo_epi16(u[4 * i + j], u[4 * i + 2 + j]);
            r[4 * i + 2 * j + 1] = _mm_unpackhi_epi16(u[4 * i + j], u[4 * i + 2 + j]);
        }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            u[8 * i + 2 * j] = _mm_unpacklo_epi32(r[8 * i + j], r[8 * i + 4 + j]);
            u[8 * i + 2 * j + 1] = _mm_unpackhi_epi32(r[8 * i + j], r[8 * i + 4 + j]);
        }
    for (int j = 0; j < 8; j++) {
        out[2 * j] = _mm_unpacklo_epi64(u[j], u[8 + j]);
        out[2 * j + 1] = _mm_unpackhi_epi64(u[j], u[8 + j]);
    }
}

/* The stage of one group (nt steps) of nz register sets into the index maps' rows y0 .. y0 +
 * nl - 1 (row-major, w bytes per row): in set z, lane l < 8 holds row y0 + l of map idx[2 z]
 * at column t - l, lane 8 + l row y0 + l of map idx[2 z + 1]. A stage row holds lane l of set
 * z at byte 4 l + z (ic_zloop); each block of 16 rows is first regrouped by set (set z's
 * lanes at bytes 16 z .. 16 z + 15), then transposed per set. Only the image's columns are
 * written (masked stores: a store's first bytes may lie in the row before, its last ones
 * past the map's end, neither written). */
IC_AVX512 static void ic_unstage(const uint8_t *st, uint32_t nt, uint32_t nz, uint8_t *const *idx, uint32_t y0,
                                 uint32_t nl, uint32_t w)
{
    const __m512i bysets = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    const __m512i bylanes = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _Alignas(64) uint8_t g[16 * IC_SROW];
    __m128i col[16];
    for (uint32_t t0 = 0; t0 < nt; t0 += 16) {
        for (uint32_t i = 0; i < 16; i++) {
            __m512i r = _mm512_loadu_si512(st + IC_SROW * (size_t)(t0 + i));
            _mm512_store_si512(g + IC_SROW * i, _mm512_permutexvar_epi32(bylanes, _mm512_shuffle_epi8(r, bysets)));
        }
        for (uint32_t z = 0; z < nz; z++) {
            uint8_t *ia = idx[2 * z], *ib = idx[2 * z + 1];
            ic_t16(g + 16 * z, col);
            for (uint32_t l = 0; l < nl; l++) {
                /* column x = t0 + j - l for j = 0..15, kept where 0 <= x < w */
                int64_t lo = (int64_t)l - t0, hi = (int64_t)w + l - t0;
                uint32_t m = 0xffffu;
                if (lo > 0) m &= 0xffffu << lo;
                if (hi < 16) m &= hi > 0 ? (1u << hi) - 1 : 0;
                if (!m) continue;
                /* (y0 + l) w + t0 - l >= 0: l <= t0 or l >= 1 (then l w - l >= 0) */
                size_t off = (size_t)(y0 + l) * w + t0 - l;
                _mm_mask_storeu_epi8(ia + off, (__mmask16)m, col[l]);
                _mm_mask_storeu_epi8(ib + off, (__mmask16)m, col[8 + l]);
            }
        }
    }
}

/* States and word pointers of records i (lanes 0-7) and i+1 out. */
IC_AVX512 static void ic_zs_done(const ic_zs *S, uint32_t i, uint32_t *const *xs, const uint8_t **pp)
{
    uint32_t t16[16];
    pp[i] = S->p0;
    pp[i + 1] = S->p1;
    _mm512_storeu_si512(t16, S->x);
    memcpy(xs[i], t16, 32);
    memcpy(xs[i + 1], t16 + 8, 32);
}

/* p[j] += p[j - c] for j = c .. n - 1 in order (c = 1 or 3: the palette's per-channel
 * deltas summed), 16 bytes at a time: a block's own stride-c prefix sums by three (c = 3) or
 * four (c = 1) shifted adds, then, for every position, the sum that ended c positions before
 * the block in the same channel (bytes 13-15 of the previous block's result, repeated). */
IC_AVX512 static void ic_psum(uint8_t *p, uint32_t n, uint32_t c)
{
    const __m128i pat = c == 3 ? _mm_setr_epi8(13, 14, 15, 13, 14, 15, 13, 14, 15, 13, 14, 15, 13, 14, 15, 13)
                               : _mm_set1_epi8(15);
    __m128i prev = _mm_setzero_si128();
    for (uint32_t j = 0; j < n; j += 16) {
        __mmask16 m = (__mmask16)(n - j >= 16 ? 0xffffu : (1u << (n - j)) - 1);
        __m128i v = _mm_maskz_loadu_epi8(m, p + j);
        if (c == 3) {
            v = _mm_add_epi8(v, _mm_bslli_si128(v, 3));
            v = _mm_add_epi8(v, _mm_bslli_si128(v, 6));
            v = _mm_add_epi8(v, _mm_bslli_si128(v, 12));
        } else {
            v = _mm_add_epi8(v, _mm_bslli_si128(v, 1));
            v = _mm_add_epi8(v, _mm_bslli_si128(v, 2));
            v = _mm_add_epi8(v, _mm_bslli_si128(v, 4));
            v = _mm_add_epi8(v, _mm_bslli_si128(v, 8));
        }
        v = _mm_add_epi8(v, _mm_shuffle_epi8(prev, pat));
        _mm_mask_storeu_epi8(p + j, m, v);
        prev = v;
    }
}

/* The palette steps of nz register sets (a constant at each call site), states and word
 * pointers in locals as in ic_zloop: symbols j0 .. j0+7 of record 2z on set z's lanes 0-7 and
 * of record 2z+1 on lanes 8-15, table APD__IC_NCTX + j % c (offs[j0 % c]). Returns 0, or -1
 * if any stream ran out. */
IC_AVX512 static inline __attribute__((always_inline)) int ic_zpal(ic_zs *Z, const ic_zk *K, uint32_t nz, uint32_t c,
                                                                   uint32_t n, const uint32_t *nps, uint8_t *const *pal,
                                                                   const __m512i *offs, const uint8_t *const *end)
{
    const __m512i zero = _mm512_setzero_si512();
    __m512i x[IC_MAXZ] = {Z[0].x, nz >= 2 ? Z[1].x : zero, nz >= 3 ? Z[2].x : zero, nz >= 4 ? Z[3].x : zero};
    const uint8_t *pa[IC_MAXZ], *pb[IC_MAXZ];
    for (uint32_t z = 0; z < nz; z++) pa[z] = Z[z].p0, pb[z] = Z[z].p1;
    const uint32_t adv = 8 % c;
    int rc = 0;
    for (uint32_t j0 = 0, ph = 0, t = 0; j0 < n; j0 += 8, t++) {
        for (uint32_t z = 0; z < nz; z++) { /* unrolled: nz is a constant */
            uint32_t na = nps[2 * z] > j0 ? nps[2 * z] - j0 : 0, nb = nps[2 * z + 1] > j0 ? nps[2 * z + 1] - j0 : 0;
            __mmask8 ma = (__mmask8)(na >= 8 ? 0xff : (1u << na) - 1), mb = (__mmask8)(nb >= 8 ? 0xff : (1u << nb) - 1);
            __m128i d = _mm512_cvtepi32_epi8(ic_zrans(&x[z], &pa[z], &pb[z], K, offs[ph], (__mmask16)(ma | mb << 8)));
            _mm_mask_storeu_epi8(pal[2 * z] + j0, ma, d); /* masked stores: no byte past a palette */
            _mm_mask_storeu_epi8(pal[2 * z + 1] + j0, mb, _mm_srli_si128(d, 8));
        }
        ph += adv;
        ph = ph >= c ? ph - c : ph;
        if ((t & 7) == 7 || j0 + 8 >= n) { /* IC_TAIL: every eighth step */
            int out = 0;
            for (uint32_t z = 0; z < nz; z++) out |= (pa[z] > end[2 * z]) | (pb[z] > end[2 * z + 1]);
            if (out) {
                rc = -1;
                break;
            }
        }
    }
    for (uint32_t z = 0; z < nz; z++) Z[z].x = x[z], Z[z].p0 = pa[z], Z[z].p1 = pb[z];
    return rc;
}

/* Palette phases of 2 * nz records (nz = 1-4 register sets, as index_avx512_xn); the deltas
 * are summed per channel afterwards. Returns 0, or -1 if any stream ran out. */
IC_AVX512 static int pal_avx512_xn(const apd__imodel *m, uint32_t nz, const uint32_t *nps, uint8_t *const *pal,
                                   uint32_t *const *xs, const uint8_t **pp, const uint8_t *const *end)
{
    ic_zk K;
    ic_zs S[IC_MAXZ];
    ic_zk_init(&K, m);
    for (uint32_t z = 0; z < nz; z++) ic_zs_init(&S[z], xs[2 * z], xs[2 * z + 1], pp[2 * z], pp[2 * z + 1]);
    uint32_t c = m->c, n = 0, nr = 2 * nz;
    for (uint32_t i = 0; i < nr; i++) n = nps[i] > n ? nps[i] : n;
    /* symbol j's table is APD__IC_NCTX + j % c: the offsets of a step repeat with j0 % c */
    __m512i offs[3];
    for (uint32_t ph = 0; ph < c; ph++) {
        uint32_t tabs[16];
        for (uint32_t l = 0; l < 16; l++) tabs[l] = (APD__IC_NCTX + (ph + l % 8) % c) << APD__IC_PBITS;
        offs[ph] = _mm512_loadu_si512(tabs);
    }
    int rc;
    switch (nz) { /* one specialised copy of the loop per set count */
    case 4: rc = ic_zpal(S, &K, 4, c, n, nps, pal, offs, end); break;
    case 3: rc = ic_zpal(S, &K, 3, c, n, nps, pal, offs, end); break;
    case 2: rc = ic_zpal(S, &K, 2, c, n, nps, pal, offs, end); break;
    default: rc = ic_zpal(S, &K, 1, c, n, nps, pal, offs, end); break;
    }
    if (rc) return rc;
    for (uint32_t z = 0; z < nz; z++) ic_zs_done(&S[z], 2 * z, xs, pp);
    for (uint32_t i = 0; i < nr; i++) ic_psum(pal[i], nps[i], c);
    return 0;
}

/* Index phases of 2 * nz records (nz = 1-4 register sets: records 2z and 2z+1 in set z), as
 * index_avx2_x2, except that a step stores its 16 bytes into a stage (one 16-byte store
 * instead of 16 byte stores, which cost ~30% of the step) and each row group's stage is
 * transposed straight into the output index maps when the group is done (the step reads its
 * neighbours from registers and the previous stage, never from a grid: no grid is zeroed or
 * copied; after a failure the maps hold partial output). The stages of the sets are interleaved,
 * IC_SROW bytes per step (set z's 16 bytes at 16 z), so that one pointer with constant
 * offsets serves every set. A stage holds IC_SROWS(w) steps: a group reads its
 * predecessor's step t + 7 for t < w + 7, and ic_unstage reads whole blocks of 16 steps.
 * Returns 0, or -1 if any stream ran out or the stages do not fit in memory (the caller
 * then decodes each record alone). */
#define IC_STAGE_STACK 16384u /* the stages on the stack up to w = 50 (v1) or 32 x 32 (v2) */
#define IC_SROWS(w) ((((size_t)(w) + 14 + 15) & ~(size_t)15))
#define IC_NT2_MAX (1u << 17) /* v2: at most 8 MiB of stage (about a megapixel); larger maps
                                 go through the AVX2 pair decoder */

/* Model version 1: the row groups one after the other, each into its own stage (this group's,
 * the previous group's, and one of zeros: the first group's up). */
IC_AVX512 static inline __attribute__((always_inline)) int ic_zv1(ic_zs *Z, const ic_zk *K, uint32_t nz,
                            uint8_t *const *idx, uint32_t h, uint32_t w, const uint8_t *const *end,
                            ic_zw *V, uint8_t *stack)
{
    size_t slen = IC_SROW * IC_SROWS(w);
    uint8_t *buf = 3 * slen <= IC_STAGE_STACK ? stack : malloc(3 * slen);
    if (!buf) return -1;
    memset(buf, 0, 3 * slen);
    uint8_t *const zero = buf + 2 * slen;
    int rc = 0;
    for (uint32_t y0 = 0, g = 0; y0 < h && rc == 0; y0 += APD__IC_LANES, g++) {
        uint32_t nl = h - y0 < APD__IC_LANES ? h - y0 : APD__IC_LANES, nt = w + nl - 1;
        uint8_t *st = buf + (g & 1) * slen;
        const uint8_t *up = g ? buf + ((g - 1) & 1) * slen : zero;
        switch (nz) { /* one specialised copy of the loop per set count */
        case 4: rc = ic_zloop(Z, V, K, 4, nt, NULL, w, nl, st, up, end); break;
        case 3: rc = ic_zloop(Z, V, K, 3, nt, NULL, w, nl, st, up, end); break;
        case 2: rc = ic_zloop(Z, V, K, 2, nt, NULL, w, nl, st, up, end); break;
        default: rc = ic_zloop(Z, V, K, 1, nt, NULL, w, nl, st, up, end); break;
        }
        if (rc == 0) ic_unstage(st, nt, nz, idx, y0, nl, w);
    }
    if (buf != stack) free(buf);
    return rc;
}

/* Model version 2: one stage for the whole wavefront, W rows of zeros before it (lane 0's up
 * neighbours of the first row); after the last step each segment s (rows 8 s .. 8 s + 7,
 * steps s W .. s W + w + 6) is transposed into the maps as a version-1 group would be. The
 * per-step masks come from a table: each lane's activity toggles at the start and end of
 * each of its rows (an XOR scan), its row-start bit is set at the start. */
IC_AVX512 static inline __attribute__((always_inline)) int ic_zv2(ic_zs *Z, const ic_zk *K, uint32_t nz,
                            uint8_t *const *idx, uint32_t h, uint32_t w, const uint8_t *const *end,
                            ic_zw *V, uint8_t *stack)
{
    const size_t W = apd__ic_w2(w), nt = apd__ic_nsteps2(h, w);
    const uint32_t nseg = (h + APD__IC_LANES - 1) / APD__IC_LANES; /* nt <= IC_NT2_MAX: ic_z_fits */
    size_t rows = (size_t)(nseg - 1) * W + IC_SROWS(w);
    rows = rows > nt + 16 ? rows : nt + 16;
    size_t slen = IC_SROW * (W + rows), need = slen + (nt + 1) * sizeof(uint32_t);
    uint8_t *buf = need <= IC_STAGE_STACK ? stack : malloc(need);
    if (!buf) return -1;
    uint8_t *st = buf + IC_SROW * W;
    uint32_t *mk = (uint32_t *)(void *)(buf + slen);
    memset(buf, 0, IC_SROW * W);
    memset(st + IC_SROW * nt, 0, IC_SROW * (rows - nt));
    memset(mk, 0, (nt + 1) * sizeof *mk);
    for (uint32_t l = 0; l < APD__IC_LANES && l < h; l++)
        for (size_t y = l, t0 = l; y < h; y += APD__IC_LANES, t0 += W) {
            mk[t0] ^= 0x101u << l;
            mk[t0 + w] ^= 0x101u << l;
            mk[t0] |= 0x1010000u << l;
        }
    for (size_t t = 0, cur = 0; t < nt; t++) {
        cur ^= mk[t] & 0xffffu;
        mk[t] = (mk[t] & 0xffff0000u) | (uint32_t)cur;
    }
    const uint8_t *up = st - IC_SROW * W;
    int rc;
    const uint32_t n = (uint32_t)nt;
    switch (nz) { /* one specialised copy of the loop per set count */
    case 4: rc = ic_zloop(Z, V, K, 4, n, mk, w, 0, st, up, end); break;
    case 3: rc = ic_zloop(Z, V, K, 3, n, mk, w, 0, st, up, end); break;
    case 2: rc = ic_zloop(Z, V, K, 2, n, mk, w, 0, st, up, end); break;
    default: rc = ic_zloop(Z, V, K, 1, n, mk, w, 0, st, up, end); break;
    }
    if (rc == 0)
        for (uint32_t sg = 0; sg < nseg; sg++) {
            uint32_t y0 = sg * APD__IC_LANES, nl = h - y0 < APD__IC_LANES ? h - y0 : APD__IC_LANES;
            ic_unstage(st + IC_SROW * (size_t)sg * W, w + nl - 1, nz, idx, y0, nl, w);
        }
    if (buf != stack) free(buf);
    return rc;
}

IC_AVX512 static int index_avx512_xn(const apd__imodel *m, uint32_t nz, uint8_t *const *idx, uint32_t h,
                                     uint32_t w, uint32_t *const *xs, const uint8_t **pp,
                                     const uint8_t *const *end, uint32_t *vmax)
{
    _Alignas(64) uint8_t stack[IC_STAGE_STACK];
    ic_zk K;
    ic_zs Z[IC_MAXZ];
    ic_zk_init(&K, m);
    for (uint32_t z = 0; z < nz; z++) ic_zs_init(&Z[z], xs[2 * z], xs[2 * z + 1], pp[2 * z], pp[2 * z + 1]);
    ic_zw V = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    int rc = m->ver == 1 ? ic_zv1(Z, &K, nz, idx, h, w, end, &V, stack) : ic_zv2(Z, &K, nz, idx, h, w, end, &V, stack);
    if (rc || _mm512_test_epi32_mask(V.eo, _mm512_set1_epi32((int)APD__IC_EMPTY))) return -1; /* an empty context */
    for (uint32_t z = 0; z < nz; z++) ic_zs_done(&Z[z], 2 * z, xs, pp);
    uint8_t b64[64];
    _mm512_storeu_si512(b64, V.vm);
    for (uint32_t z = 0; z < nz; z++)
        for (uint32_t l = 0; l < 16; l++) {
            uint32_t i = 2 * z + l / 8;
            vmax[i] = b64[4 * l + z] > vmax[i] ? b64[4 * l + z] : vmax[i];
        }
    return 0;
}

/* Vector palette phase: symbols j0 .. j0+7 on lanes 0..7 per step (tables APD__IC_NCTX + j % c); the
 * deltas are summed per channel afterwards. Returns 0, or -1 if the stream ran out. */
IC_AVX2 static int pal_avx2(const apd__imodel *m, uint32_t nps, uint8_t *pal, uint32_t *xs,
                            const uint8_t **pp, const uint8_t *end)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i x = _mm256_loadu_si256((const __m256i *)xs);
    uint32_t c = m->c, tabs[8] __attribute__((aligned(32))), d[8] __attribute__((aligned(32)));
    for (uint32_t j0 = 0; j0 < nps; j0 += 8) {
        for (uint32_t l = 0; l < 8; l++) tabs[l] = (APD__IC_NCTX + (j0 + l) % c) << APD__IC_PBITS;
        __m256i act = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(nps - j0)), lane);
        __m256i e = step8(&x, _mm256_load_si256((const __m256i *)tabs), act, m->dec, m->shuf8, pp);
        _mm256_store_si256((__m256i *)d, e);
        for (uint32_t l = 0; l < 8 && j0 + l < nps; l++) pal[j0 + l] = (uint8_t)d[l];
        if (*pp > end) return -1;
    }
    _mm256_storeu_si256((__m256i *)xs, x);
    for (uint32_t j = c; j < nps; j++) pal[j] = (uint8_t)(pal[j] + pal[j - c]);
    return 0;
}

/* Two records' palette phases in lockstep (nps[i] symbols each; as pal_avx2). */
IC_AVX2 static int pal_avx2_x2(const apd__imodel *m, const uint32_t nps[2], uint8_t *const pal[2],
                               uint32_t *const xs[2], const uint8_t *pp[2], const uint8_t *const end[2])
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i x0 = _mm256_loadu_si256((const __m256i *)xs[0]), x1 = _mm256_loadu_si256((const __m256i *)xs[1]);
    uint32_t c = m->c, n = nps[0] > nps[1] ? nps[0] : nps[1];
    uint32_t tabs[8] __attribute__((aligned(32))), d[8] __attribute__((aligned(32)));
    const uint8_t *p0 = pp[0], *p1 = pp[1];
    for (uint32_t j0 = 0; j0 < n; j0 += 8) {
        for (uint32_t l = 0; l < 8; l++) tabs[l] = (APD__IC_NCTX + (j0 + l) % c) << APD__IC_PBITS;
        const __m256i off = _mm256_load_si256((const __m256i *)tabs);
        if (j0 < nps[0]) {
            __m256i act = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(nps[0] - j0)), lane);
            _mm256_store_si256((__m256i *)d, step8(&x0, off, act, m->dec, m->shuf8, &p0));
            for (uint32_t l = 0; l < 8 && j0 + l < nps[0]; l++) pal[0][j0 + l] = (uint8_t)d[l];
        }
        if (j0 < nps[1]) {
            __m256i act = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(nps[1] - j0)), lane);
            _mm256_store_si256((__m256i *)d, step8(&x1, off, act, m->dec, m->shuf8, &p1));
            for (uint32_t l = 0; l < 8 && j0 + l < nps[1]; l++) pal[1][j0 + l] = (uint8_t)d[l];
        }
        if ((p0 > end[0]) | (p1 > end[1])) return -1;
    }
    pp[0] = p0;
    pp[1] = p1;
    _mm256_storeu_si256((__m256i *)xs[0], x0);
    _mm256_storeu_si256((__m256i *)xs[1], x1);
    for (int i = 0; i < 2; i++)
        for (uint32_t j = c; j < nps[i]; j++) pal[i][j] = (uint8_t)(pal[i][j] + pal[i][j - c]);
    return 0;
}
#endif

/* The 16-lane decoder: AVX-512 F + BW + VL (with the AVX2 set). */
#ifdef IC_X86
static int probe_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
           __builtin_cpu_supports("popcnt");
}
#endif

static int ic_avx512(void)
{
#ifdef IC_X86
    static int have = -1;
    return apd__cached_flag(&have, probe_avx512);
#else
    return 0;
#endif
}

const char *apd__icode_batch_kernel(void)
{
    if (ic_avx512()) return "AVX-512 16-lane, two records per register, four registers in lockstep";
    if (apd__icode_impl_available(APD__IMPL_AVX2)) return "AVX2 8-lane, two records in lockstep";
    return "scalar, one record at a time";
}

int apd__icode_impl_available(int impl)
{
#ifdef IC_X86
    if (impl == APD__IMPL_AVX2 || impl == APD__IMPL_AVX512)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
#endif
    return impl == APD__IMPL_SCALAR || impl == APD__IMPL_AUTO;
}

#define IC_STACK 16384
/* Scratch per record on the stack in the lockstep decoder (a 32x32 record needs 2-4 KB:
 * its words and a 2 KB grid; larger ones take their scratch from malloc): eight records
 * stay at 32 KiB of stack. */
#define IC_STACK_LOCKSTEP 4096

/* One record's decode: states, word stream (a zero-padded copy: reads past the end land in
 * the padding and are caught by the check after each step) and index grid. */
typedef struct ic_job {
    uint32_t x[APD__IC_LANES];
    uint8_t *scratch, *grid;
    const uint8_t *p, *end;
    size_t s;
    uint32_t eor, vmax;
} ic_job;

/* Check the body's fixed part and set up the scratch (stackbuf if it fits, else malloc). */
static apd_status ic_begin(ic_job *J, const uint8_t *body, size_t len, uint32_t h, uint32_t w, int grid,
                           uint8_t *stackbuf, size_t stackcap, const char **why)
{
    J->scratch = NULL;
    if (len < APD__IC_STATES) {
        *why = "coded body shorter than its 8 rANS states";
        return APD_ETRUNC;
    }
    if ((len - APD__IC_STATES) & 1) {
        *why = "coded body has half a 16-bit word at its end";
        return APD_ECORRUPT;
    }
    for (uint32_t l = 0; l < APD__IC_LANES; l++) {
        J->x[l] = apd__ld32(body + 4 * l);
        if (J->x[l] < APD__IC_L) {
            *why = "coded body: rANS state below 2^16";
            return APD_ECORRUPT;
        }
    }
    /* scratch: the words + IC_TAIL zero bytes, then the grid (h + 1 + 8 rows of w + 16 bytes), which
       the decoders that read their neighbours from it need (grid != 0); the AVX-512 lockstep
       decoder writes the output maps directly */
    size_t nb = len - APD__IC_STATES, grid_rows, grid_len = 0, need;
    if (!apd__add_ok((size_t)w, 2 * IC_PAD, &J->s) || !apd__add_ok((size_t)h, 1 + APD__IC_LANES, &grid_rows) ||
        (grid && !apd__mul_ok(grid_rows, J->s, &grid_len)) || !apd__add_ok(grid_len, nb + IC_TAIL, &need)) {
        *why = "coded body: image too large";
        return APD_EOVERFLOW;
    }
    J->scratch = need <= stackcap ? stackbuf : malloc(need);
    if (!J->scratch) {
        *why = "out of memory";
        return APD_ENOMEM;
    }
    J->grid = grid ? J->scratch + nb + IC_TAIL : NULL;
    memcpy(J->scratch, body + APD__IC_STATES, nb);
    memset(J->scratch + nb, 0, IC_TAIL);
    if (grid) memset(J->grid, 0, grid_len);
    J->p = J->scratch;
    J->end = J->scratch + nb;
    J->eor = J->vmax = 0;
    return APD_OK;
}

/* The end checks (rc: -1 if the stream ran out), the indices out, the scratch freed. */
static apd_status ic_end(ic_job *J, int rc, uint32_t k, uint32_t h, uint32_t w, uint8_t *idx,
                         const uint8_t *stackbuf, const char **why)
{
    apd_status st = APD_OK;
    if (rc) {
        *why = "coded body ends before its last symbol";
        st = APD_ETRUNC;
    } else if (J->eor & APD__IC_EMPTY) {
        *why = "coded body uses an index context the model has no table for";
        st = APD_ECORRUPT;
    } else if (J->vmax >= k) {
        *why = "coded index >= record palette size";
        st = APD_ECORRUPT;
    } else if (J->p != J->end) {
        *why = "coded body has words after its last symbol";
        st = APD_ECORRUPT;
    } else {
        for (uint32_t l = 0; l < APD__IC_LANES; l++)
            if (J->x[l] != APD__IC_L) {
                *why = "coded body: final rANS states are not 2^16";
                st = APD_ECORRUPT;
            }
    }
    if (st == APD_OK && J->grid)
        for (uint32_t y = 0; y < h; y++)
            memcpy(idx + (size_t)y * w, J->grid + (size_t)(y + 1) * J->s + IC_PAD, w);
    if (J->scratch != stackbuf) free(J->scratch);
    J->scratch = NULL;
    return st;
}

/* Scalar reference of the palette phase: symbol j = entry j / c, channel j % c, lane j % 8. */
static int pal_scalar(const apd__imodel *m, uint32_t nps, uint8_t *pal, ic_job *J)
{
    uint8_t prev[3] = {0, 0, 0};
    for (uint32_t j = 0, ch = 0; j < nps; j++) {
        uint32_t e = sym_dec(m->dec + (size_t)(APD__IC_NCTX + ch) * APD__IC_M, &J->x[j % APD__IC_LANES], &J->p);
        prev[ch] = (uint8_t)(prev[ch] + e);
        pal[j] = prev[ch];
        ch = ch + 1 == m->c ? 0 : ch + 1;
        if (J->p > J->end) return -1;
    }
    return 0;
}

apd_status apd__icode_decode_impl(int impl, const apd__imodel *m, const uint8_t *body, size_t len,
                                  uint32_t k, uint32_t h, uint32_t w, uint8_t *pal, uint8_t *idx,
                                  const char **why)
{
    uint8_t stackbuf[IC_STACK];
    ic_job J;
    APD_TRY(ic_begin(&J, body, len, h, w, 1, stackbuf, sizeof stackbuf, why));
    uint32_t nps = k * m->c;
    int rc;
#ifdef IC_X86
    if (impl != APD__IMPL_SCALAR && apd__icode_impl_available(APD__IMPL_AVX2)) {
        rc = pal_avx2(m, nps, pal, J.x, &J.p, J.end);
        if (rc == 0) rc = index_avx2(m, J.grid, J.s, h, w, J.x, &J.p, J.end, &J.vmax, &J.eor);
    } else
#endif
    {
        rc = pal_scalar(m, nps, pal, &J);
        if (rc == 0) rc = index_scalar(m, J.grid, J.s, h, w, J.x, &J.p, J.end, &J.vmax, &J.eor);
    }
    return ic_end(&J, rc, k, h, w, idx, stackbuf, why);
}

apd_status apd__icode_decode(const apd__imodel *m, const uint8_t *body, size_t len, uint32_t k,
                             uint32_t h, uint32_t w, uint8_t *pal, uint8_t *idx,
                             const char **why)
{
    return apd__icode_decode_impl(APD__IMPL_AUTO, m, body, len, k, h, w, pal, idx, why);
}

/* n = 2, 4, 6 or 8 records in lockstep (vector decoders only). Returns 0 with st[] set, or -1 when
 * a body's fixed part is damaged or a stream runs out (st is not set and the outputs may hold
 * partial records; the caller decodes each record alone). */
#ifdef IC_X86
static int decode_lockstep(int use512, const apd__imodel *m, uint32_t n, const uint8_t *const *body, const size_t *len,
                           const uint32_t *k, uint32_t h, uint32_t w, uint8_t *const *pal, uint8_t *const *idx,
                           apd_status *st, const char **why)
{
    uint8_t sb[2 * IC_MAXZ][IC_STACK_LOCKSTEP];
    ic_job J[2 * IC_MAXZ];
    int rc = 0;
    for (uint32_t i = 0; i < n; i++)
        if (ic_begin(&J[i], body[i], len[i], h, w, !use512, sb[i], sizeof sb[i], &why[i]) != APD_OK) rc = -1;
    if (rc == 0) {
        uint8_t *grid[2 * IC_MAXZ];
        uint32_t *xs[2 * IC_MAXZ], nps[2 * IC_MAXZ], vmax[2 * IC_MAXZ] = {0}, eor[2 * IC_MAXZ] = {0};
        const uint8_t *pp[2 * IC_MAXZ], *end[2 * IC_MAXZ];
        for (uint32_t i = 0; i < n; i++) {
            grid[i] = J[i].grid;
            xs[i] = J[i].x;
            pp[i] = J[i].p;
            end[i] = J[i].end;
            nps[i] = k[i] * m->c;
        }
        if (use512)
            rc = pal_avx512_xn(m, n / 2, nps, pal, xs, pp, end);
        else
            rc = pal_avx2_x2(m, nps, pal, xs, pp, end);
        if (rc == 0) {
            if (use512)
                rc = index_avx512_xn(m, n / 2, idx, h, w, xs, pp, end, vmax); /* empty contexts: rc -1 */
            else
                rc = index_avx2_x2(m, grid, J[0].s, h, w, xs, pp, end, vmax, eor);
        }
        for (uint32_t i = 0; i < n; i++) {
            J[i].p = pp[i];
            J[i].vmax = vmax[i];
            J[i].eor = eor[i];
        }
    }
    if (rc == 0) {
        for (uint32_t i = 0; i < n; i++) st[i] = ic_end(&J[i], 0, k[i], h, w, idx[i], sb[i], &why[i]);
        return 0;
    }
    for (uint32_t i = 0; i < n; i++)
        if (J[i].scratch && J[i].scratch != sb[i]) free(J[i].scratch);
    return -1;
}
#endif

static apd_status first_bad(const apd_status *st, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (st[i] != APD_OK) return st[i];
    return APD_OK;
}

/* The AVX-512 lockstep decoder takes the map (model version 2 keeps the whole wavefront's
 * stage: at most IC_NT2_MAX steps; version 1 two row groups'). */
static inline int ic_z_fits(const apd__imodel *m, uint32_t h, uint32_t w)
{
#ifdef IC_X86
    return m->ver == 1 || apd__ic_nsteps2(h, w) <= IC_NT2_MAX;
#else
    (void)m, (void)h, (void)w;
    return 0;
#endif
}

apd_status apd__icode_decode2(int impl, const apd__imodel *m, const uint8_t *const body[2],
                              const size_t len[2], const uint32_t k[2], uint32_t h, uint32_t w,
                              uint8_t *const pal[2], uint8_t *const idx[2], apd_status st[2],
                              const char *why[2])
{
#ifdef IC_X86
    /* APD__IMPL_AVX2 keeps to the AVX2 pair decoder even where AVX-512 is there (tests) */
    if (impl != APD__IMPL_SCALAR && apd__icode_impl_available(APD__IMPL_AVX2) &&
        decode_lockstep(impl != APD__IMPL_AVX2 && ic_avx512() && ic_z_fits(m, h, w), m, 2, body, len, k, h, w, pal,
                        idx, st, why) == 0)
        return first_bad(st, 2);
    /* a body that is damaged in its fixed part or runs out: decode each record alone,
       which gives each its own status and reason */
#endif
    for (int i = 0; i < 2; i++)
        st[i] = apd__icode_decode_impl(impl, m, body[i], len[i], k[i], h, w, pal[i], idx[i], &why[i]);
    return first_bad(st, 2);
}

int apd__icode_lockstep(const apd__imodel *m, uint32_t n, const uint8_t *const *body, const size_t *len,
                        const uint32_t *k, uint32_t h, uint32_t w, uint8_t *const *pal, uint8_t *const *idx,
                        apd_status *st, const char **why)
{
#ifdef IC_X86
    if (n % 2 == 0 && n <= 2 * IC_MAXZ && ic_avx512() && ic_z_fits(m, h, w))
        return decode_lockstep(1, m, n, body, len, k, h, w, pal, idx, st, why);
#endif
    (void)m, (void)body, (void)len, (void)k, (void)h, (void)w, (void)pal, (void)idx, (void)st, (void)why;
    return -1;
}

apd_status apd__icode_decoden(int impl, const apd__imodel *m, uint32_t n, const uint8_t *const *body,
                              const size_t *len, const uint32_t *k, uint32_t h, uint32_t w, uint8_t *const *pal,
                              uint8_t *const *idx, apd_status *st, const char **why)
{
#ifdef IC_X86
    if (impl != APD__IMPL_SCALAR && impl != APD__IMPL_AVX2 &&
        apd__icode_lockstep(m, n, body, len, k, h, w, pal, idx, st, why) == 0)
        return first_bad(st, n);
#endif
    uint32_t i = 0;
    for (; i + 1 < n; i += 2)
        apd__icode_decode2(impl, m, body + i, len + i, k + i, h, w, pal + i, idx + i, st + i, why + i);
    if (i < n) st[i] = apd__icode_decode_impl(impl, m, body[i], len[i], k[i], h, w, pal[i], idx[i], &why[i]);
    return first_bad(st, n);
}

/* ---- writer side ------------------------------------------------------------------------ */

void apd__icounts_init(apd__icounts *ct, uint32_t c, uint32_t bits)
{
    memset(ct, 0, sizeof *ct);
    ct->c = c;
    ct->bits = bits;
}

/* Context and residual of pixel (y, x) of a row-major index map (0 outside). */
static inline uint32_t px_sym(const uint8_t *idx, uint32_t w, uint32_t y, uint32_t x,
                              uint32_t amask, uint32_t *ctx)
{
    const uint8_t *q = idx + (size_t)y * w + x;
    uint32_t a = x ? q[-1] : 0, b = y ? q[-(ptrdiff_t)w] : 0, c = x && y ? q[-(ptrdiff_t)w - 1] : 0;
    uint32_t pred;
    *ctx = apd__ic_ctx(a, b, c, &pred);
    return (*q - pred) & amask;
}

void apd__icounts_add(apd__icounts *ct, const uint8_t *pal, uint32_t k, const uint8_t *idx,
                      uint32_t h, uint32_t w)
{
    uint32_t c = ct->c, amask = (1u << ct->bits) - 1;
    for (uint32_t j = 0; j < k * c; j++)
        ct->n[APD__IC_NCTX + j % c][(uint8_t)(pal[j] - (j >= c ? pal[j - c] : 0))]++;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint32_t ctx, r = px_sym(idx, w, y, x, amask, &ctx);
            ct->n[ctx][r]++;
        }
}

/* Scale counts n[0..A) to frequencies summing to 1024; symbols with a count (or all, with
 * all_nonzero) get at least 1. Table stays all zero when there is nothing to code. */
static void normalise(const uint64_t *n, uint32_t A, int all_nonzero, uint16_t *f)
{
    uint64_t tot = 0;
    for (uint32_t s = 0; s < A; s++) tot += n[s];
    memset(f, 0, A * sizeof *f);
    if (tot == 0 && !all_nonzero) return;
    uint32_t sum = 0;
    for (uint32_t s = 0; s < A; s++) {
        uint64_t v = tot ? (n[s] * APD__IC_M + tot / 2) / tot : 0;
        if (v == 0 && (n[s] || all_nonzero)) v = 1;
        f[s] = (uint16_t)v;
        sum += (uint32_t)v;
    }
    while (sum != APD__IC_M) { /* adjust the largest frequency (keeps every f >= 1) */
        uint32_t best = 0;
        for (uint32_t s = 1; s < A; s++)
            if (f[s] > f[best]) best = s;
        if (sum > APD__IC_M) {
            uint32_t d = sum - APD__IC_M, room = f[best] - 1u;
            d = d < room ? d : room;
            if (d == 0) break; /* cannot happen: A <= 256 < 1024 */
            f[best] = (uint16_t)(f[best] - d);
            sum -= d;
        } else {
            f[best] = (uint16_t)(f[best] + (APD__IC_M - sum));
            sum = APD__IC_M;
        }
    }
}

apd_status apd__imodel_build(const apd__icounts *ct, apd__imodel *m)
{
    memset(m, 0, sizeof *m);
    m->ver = APD__IC_VERSION;
    m->c = ct->c;
    m->bits = ct->bits;
    m->ntab = APD__IC_NCTX + ct->c;
    for (uint32_t t = 0; t < m->ntab; t++) {
        uint32_t A = table_len(t, m->bits);
        uint64_t tot = 0;
        for (uint32_t s = 0; s < A; s++) tot += ct->n[t][s];
        /* small alphabets: every residual of a used context stays codable, so records
           after the measured ones rarely fall back to the plain body */
        int all = t >= APD__IC_NCTX || (tot > 0 && m->bits <= 6);
        normalise(ct->n[t], A, all, m->freq[t]);
        uint32_t cu = 0;
        for (uint32_t s = 0; s < A; s++) {
            m->cum[t][s] = (uint16_t)cu;
            cu += m->freq[t][s];
        }
    }
    return build_dec(m);
}

size_t apd__imodel_write(const apd__imodel *m, uint8_t *out)
{
    size_t pos = APD__IC_MODEL_HDR;
    for (uint32_t t = 0; t < m->ntab; t++)
        for (uint32_t s = 0; s < table_len(t, m->bits); s++) {
            uint32_t v = m->freq[t][s];
            if (out) {
                out[pos] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
                if (v >= 0x80) out[pos + 1] = (uint8_t)(v >> 7);
            }
            pos += v >= 0x80 ? 2 : 1;
        }
    if (out) {
        memcpy(out + 4, APD__IC_MAGIC, 4);
        out[8] = (uint8_t)m->ver;
        out[9] = (uint8_t)m->c;
        out[10] = (uint8_t)m->bits;
        out[11] = APD__IC_LANES;
        out[12] = APD__IC_PBITS;
        out[13] = APD__IC_NCTX;
        out[14] = out[15] = 0;
        apd__st32(out, apd_crc32c(0, out + 4, pos - 4));
    }
    return pos;
}

typedef struct enc {
    const apd__imodel *m;
    uint32_t x[APD__IC_LANES];
    uint16_t *words;
    size_t nw;
    int bad;
} enc;

static inline void sym_enc(enc *E, uint32_t t, uint32_t sym, uint32_t lane)
{
    uint32_t f = E->m->freq[t][sym];
    if (f == 0) {
        E->bad = 1;
        return;
    }
    uint32_t x = E->x[lane];
    if ((uint64_t)x >= (uint64_t)f << (32 - APD__IC_PBITS)) {
        E->words[E->nw++] = (uint16_t)x;
        x >>= 16;
    }
    E->x[lane] = ((x / f) << APD__IC_PBITS) + x % f + E->m->cum[t][sym];
}

size_t apd__icode_encode(const apd__imodel *m, const uint8_t *pal, uint32_t k,
                         const uint8_t *idx, uint32_t h, uint32_t w, uint8_t *out, size_t cap)
{
    size_t nsym = (size_t)k * m->c + (size_t)h * w;
    enc E = {m, {0}, malloc((nsym + 1) * sizeof(uint16_t)), 0, 0};
    for (uint32_t l = 0; l < APD__IC_LANES; l++) E.x[l] = APD__IC_L;
    if (!E.words) return 0;
    uint32_t amask = (1u << m->bits) - 1;
    /* reverse of the decode order: last step first, last lane first */
    if (m->ver == 1) {
        uint32_t ngroups = (h + APD__IC_LANES - 1) / APD__IC_LANES;
        for (uint32_t g = ngroups; g-- > 0 && !E.bad;) {
            uint32_t y0 = g * APD__IC_LANES, nl = h - y0 < APD__IC_LANES ? h - y0 : APD__IC_LANES;
            for (uint32_t t = w + nl - 1; t-- > 0;)
                for (uint32_t l = nl; l-- > 0;) {
                    if (t < l || t - l >= w) continue;
                    uint32_t ctx, r = px_sym(idx, w, y0 + l, t - l, amask, &ctx);
                    sym_enc(&E, ctx, r, l);
                }
        }
    } else {
        for (size_t t = apd__ic_nsteps2(h, w); t-- > 0 && !E.bad;)
            for (uint32_t l = APD__IC_LANES; l-- > 0;) {
                size_t y;
                uint32_t x;
                if (!apd__ic_at2(t, l, h, w, &y, &x)) continue;
                uint32_t ctx, r = px_sym(idx, w, (uint32_t)y, x, amask, &ctx);
                sym_enc(&E, ctx, r, l);
            }
    }
    uint32_t c = m->c;
    for (uint32_t j = k * c; j-- > 0 && !E.bad;)
        sym_enc(&E, APD__IC_NCTX + j % c, (uint8_t)(pal[j] - (j >= c ? pal[j - c] : 0)), j % APD__IC_LANES);
    size_t len = APD__IC_STATES + 2 * E.nw;
    if (E.bad || len > cap) {
        free(E.words);
        return 0;
    }
    for (uint32_t l = 0; l < APD__IC_LANES; l++) apd__st32(out + 4 * l, E.x[l]);
    for (size_t i = 0; i < E.nw; i++) apd__st16(out + APD__IC_STATES + 2 * i, E.words[E.nw - 1 - i]);
    free(E.words);
    return len;
}

void apd__ic_sort_palette(uint8_t *pal, uint32_t k, uint32_t c, uint8_t *idx, size_t npix)
{
    uint32_t key[256], order[256];
    uint8_t inv[256], tmp[768];
    for (uint32_t e = 0; e < k; e++) {
        const uint8_t *q = pal + (size_t)e * c;
        key[e] = c == 3 ? 299u * q[0] + 587u * q[1] + 114u * q[2] : q[0];
        uint32_t j = e; /* stable insertion sort of entry numbers by key */
        while (j > 0 && key[order[j - 1]] > key[e]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = e;
    }
    for (uint32_t j = 0; j < k; j++) {
        inv[order[j]] = (uint8_t)j;
        memcpy(tmp + (size_t)j * c, pal + (size_t)order[j] * c, c);
    }
    memcpy(pal, tmp, (size_t)k * c);
    for (size_t p = 0; p < npix; p++) idx[p] = inv[idx[p]];
}
