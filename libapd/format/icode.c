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
 * sets run in lockstep (apd__icode_decoden, n = 8). How many chains overlap is set by the
 * core's window, so the step's instruction count matters as much as its latency: the
 * AVX-512 step stores its 16 decoded bytes with one store into a stage that is transposed
 * into the rows once per row group (16 scattered byte stores cost ~30% of the step), and
 * with that step eight records in flight give ~1.15x four (before, under 10%). Fewer
 * instructions per step keep paying: the four sets share one interleaved stage pointer, the
 * running maximum of the indices is taken from the stage rows as they are transposed,
 * the renormalisation expands each half's next words into its lanes (vpexpandd) instead of
 * a shuffle-control look-up, and the stream end is checked every second step. The reader's
 * batch calls use the eight-record decoder; see docs/index-coding.md for the profile.
 *
 * Hardening: every count and size is checked before use; the decoder reads the stream from
 * a copy followed by 32 zero bytes and checks, after every step (every second step in the
 * AVX-512 batch decoder: a step reads 16 bytes per stream), that it has not run past the end, uses a
 * fixed number of symbols (no data-dependent loops), and at the end requires every state to
 * be back at 2^16, every word consumed, no empty context used and every index < k.
 */
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "apd/format.h"
#include "format/format_internal.h"
#include "format/icode.h"

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
 * (one gather of 16 entries, one multiply, ...) advances both records: the step is the same
 * dependency chain as ic_vstep, but carries twice the pixels. The lane rules are those of
 * ic_vstep in each half; each half renormalises from its own word stream. */
#define IC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,bmi2,popcnt")))
#define IC_MAXZ 4 /* register sets in lockstep: up to 8 records */
#define IC_SROW (16u * IC_MAXZ) /* bytes per step of the interleaved stages */

typedef struct ic_zk {
    __m512i rot, amask, c31, c15, cls12, cls12b, qd, cs4, cs8, kf;
    const uint32_t *dec;
} ic_zk;

/* Two records' running state in one register set (as ic_vs). Scalar fields only (no arrays):
 * an array indexed at run time would keep the struct in memory, where the byte stores into
 * the stage may alias it, and the compiler would then keep the rANS states in memory too. */
typedef struct ic_zs {
    __m512i x, vp, bp, eo;
    const uint8_t *p0, *p1;
} ic_zs;

IC_AVX512 static void ic_zk_init(ic_zk *K, const apd__imodel *m)
{
    /* b: lane l's up neighbour is lane l-1's previous value; lanes 0 and 8 take row 7 of
       the previous group (its stage, lanes 7 and 15, elements 16 + 7 and 16 + 15) */
    K->rot = _mm512_setr_epi32(23, 0, 1, 2, 3, 4, 5, 6, 31, 8, 9, 10, 11, 12, 13, 14);
    K->amask = _mm512_set1_epi32((int)((1u << m->bits) - 1));
    K->c31 = _mm512_set1_epi32(31);
    K->c15 = _mm512_set1_epi32(15);
    int32_t t[32];
    for (int r = 0; r < 32; r++) t[r] = 4 * apd__ic_q3[r]; /* 12 x class of the range */
    K->cls12 = _mm512_loadu_si512(t);
    K->cls12b = _mm512_loadu_si512(t + 16);
    K->qd = _mm512_setr_epi32(0, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3);
    K->cs4 = _mm512_set1_epi32(4);
    K->cs8 = _mm512_set1_epi32(8);
    K->kf = _mm512_set1_epi32(APD__IC_M << 8);
    K->dec = m->dec;
}

/* One rANS symbol on the active lanes of both records (step8 with 16 lanes and two word
 * streams): table offsets off (table * 1024); returns the entries. */
IC_AVX512 static inline __attribute__((always_inline)) __m512i ic_zrans(ic_zs *S, const ic_zk *K, __m512i off,
                                                                        __mmask16 act)
{
    __m512i x = S->x;
    __m512i slot = _mm512_and_si512(x, _mm512_set1_epi32(APD__IC_M - 1));
    __m512i keep = _mm512_or_si512(_mm512_slli_epi32(slot, 20), K->kf);
    __m512i e = _mm512_mask_i32gather_epi32(keep, act, _mm512_add_epi32(off, slot), (const int *)K->dec, 4);
    __m512i f = _mm512_and_si512(_mm512_srli_epi32(e, 8), _mm512_set1_epi32(0x7ff));
    __m512i xn = _mm512_add_epi32(_mm512_mullo_epi32(f, _mm512_srli_epi32(x, APD__IC_PBITS)), _mm512_srli_epi32(e, 20));
    __mmask16 need = _mm512_cmplt_epu32_mask(xn, _mm512_set1_epi32((int)APD__IC_L));
    uint32_t m0 = need & 0xffu, m1 = (uint32_t)need >> 8;
    /* each half's next words, zero-extended to dwords, expanded into its lanes that need one */
    __m256i w0 = _mm256_maskz_expand_epi32((__mmask8)need,
                                           _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)S->p0)));
    __m256i w1 = _mm256_maskz_expand_epi32((__mmask8)(need >> 8),
                                           _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)S->p1)));
    __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
    S->x = _mm512_mask_mov_epi32(xn, need, _mm512_or_si512(_mm512_slli_epi32(xn, 16), wv));
    S->p0 += 2 * (uint32_t)__builtin_popcount(m0);
    S->p1 += 2 * (uint32_t)__builtin_popcount(m1);
    return e;
}

/* Step t: act is the 8-lane activity mask of the row group (the same in both halves); the
 * 16 decoded bytes go to st + IC_SROW t (the group's stage), lanes 0 and 8 read their up
 * neighbours from up (the previous group's stage, or zeros). Model version 2: st is the
 * record's stage, up = st - W IC_SROW (lane 0's row 8 s - 1 at column x was lane 7's step
 * t + 7 - W), and rs the lanes that start a row (no left or up-left neighbour); version 1
 * passes rs = 0, which the compiler folds away. */
IC_AVX512 static inline __attribute__((always_inline)) void ic_zstep(ic_zs *S, const ic_zk *K, uint32_t t,
                                                                     __mmask16 act, __mmask16 rs, uint8_t *st,
                                                                     const uint8_t *up)
{
    __m512i a = _mm512_maskz_mov_epi32((__mmask16)~rs, S->vp);
    /* row 7 of the previous group at column t was its step t + 7 */
    __m512i upv = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(up + IC_SROW * ((ptrdiff_t)t + 7))));
    __m512i b = _mm512_permutex2var_epi32(S->vp, K->rot, upv);
    __m512i c = _mm512_maskz_mov_epi32((__mmask16)~rs, S->bp);
    __m512i mn = _mm512_min_epu32(a, b), mx = _mm512_max_epu32(a, b);
    __mmask16 ge = _mm512_cmpge_epu32_mask(c, mx);
    __mmask16 le = _mm512_cmple_epu32_mask(c, mn) & (__mmask16)~ge;
    __m512i pred = _mm512_sub_epi32(_mm512_add_epi32(a, b), c);
    pred = _mm512_mask_mov_epi32(pred, le, mx);
    pred = _mm512_mask_mov_epi32(pred, ge, mn);
    __m512i rng = _mm512_sub_epi32(_mm512_max_epu32(mx, c), _mm512_min_epu32(mn, c));
    __m512i ctx = _mm512_permutex2var_epi32(K->cls12, _mm512_min_epu32(rng, K->c31), K->cls12b);
    ctx = _mm512_mask_add_epi32(ctx, le, ctx, K->cs4);
    ctx = _mm512_mask_add_epi32(ctx, (__mmask16)~(ge | le), ctx, K->cs8);
    ctx = _mm512_add_epi32(ctx, _mm512_permutexvar_epi32(_mm512_min_epu32(_mm512_sub_epi32(mx, mn), K->c15), K->qd));
    __m512i e = ic_zrans(S, K, _mm512_slli_epi32(ctx, APD__IC_PBITS), act);
    S->eo = _mm512_or_si512(S->eo, e);
    __m512i v = _mm512_maskz_and_epi32(act, _mm512_add_epi32(pred, e), K->amask);
    _mm_storeu_si128((__m128i *)(st + IC_SROW * (size_t)t), _mm512_cvtepi32_epi8(v));
    S->vp = v;
    S->bp = b;
}

IC_AVX512 static inline void ic_zs_init(ic_zs *S, const uint32_t *xa, const uint32_t *xb, const uint8_t *pa,
                                        const uint8_t *pb)
{
    S->x = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)xa)),
                              _mm256_loadu_si256((const __m256i *)xb), 1);
    S->eo = _mm512_setzero_si512();
    S->p0 = pa;
    S->p1 = pb;
}

/* 16 rows of 16 bytes (in, row stride IC_SROW) transposed: out[l] = column l; *mx = the
 * bytewise max of the rows. */
IC_AVX512 static inline void ic_t16(const uint8_t *in, __m128i out[16], __m128i *mx)
{
    __m128i r[16], u[16];
    for (int i = 0; i < 16; i++) {
        r[i] = _mm_loadu_si128((const __m128i *)(in + IC_SROW * i));
        *mx = _mm_max_epu8(*mx, r[i]);
    }
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

/* A register set's stage of one group (nt steps) into the index maps' rows y0 .. y0 + nl - 1
 * (row-major, w bytes per row): lane l < 8 holds row y0 + l of map a at column t - l, lane
 * 8 + l row y0 + l of map b; only the image's columns are written (masked stores: a store's
 * first bytes may lie in the row before, its last ones past the map's end, neither written).
 * *mx: the bytewise max of every stage row read (decoded indices, zeros of inactive lanes, or
 * earlier indices of the same records). */
IC_AVX512 static void ic_unstage(const uint8_t *st, uint32_t nt, uint8_t *ia, uint8_t *ib, uint32_t y0, uint32_t nl,
                                 uint32_t w, __m128i *mx)
{
    __m128i col[16];
    for (uint32_t t0 = 0; t0 < nt; t0 += 16) {
        ic_t16(st + IC_SROW * (size_t)t0, col, mx);
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

/* States, word pointers and entry OR of records i (lanes 0-7) and i+1 out. */
IC_AVX512 static void ic_zs_done(const ic_zs *S, uint32_t i, uint32_t *const *xs, const uint8_t **pp, uint32_t *eor)
{
    uint32_t t16[16];
    pp[i] = S->p0;
    pp[i + 1] = S->p1;
    _mm512_storeu_si512(t16, S->x);
    memcpy(xs[i], t16, 32);
    memcpy(xs[i + 1], t16 + 8, 32);
    _mm512_storeu_si512(t16, S->eo);
    for (uint32_t l = 0; l < 16; l++) eor[i + l / 8] |= t16[l];
}

/* Lanes l of a row group of nl rows active at step t: l <= t, t - l < w, l < nl; the same
 * mask in both halves. */
static inline __mmask16 ic_zact(uint32_t t, uint32_t w, uint32_t nl)
{
    uint32_t hi = t + 1 < nl ? t + 1 : nl, lo = t >= w ? t - w + 1 : 0;
    uint32_t a8 = ((1u << hi) - 1) & ~((1u << lo) - 1);
    return (__mmask16)(a8 | a8 << 8);
}

/* Palette phases of 2 * nz records (nz = 1-4 register sets, as index_avx512_xn): symbols
 * j0 .. j0+7 of record 2z on lanes 0-7 and of record 2z+1 on lanes 8-15 per step (tables
 * APD__IC_NCTX + j % c, as pal_avx2); the deltas are summed per channel afterwards. Returns
 * 0, or -1 if any stream ran out. */
IC_AVX512 static int pal_avx512_xn(const apd__imodel *m, uint32_t nz, const uint32_t *nps, uint8_t *const *pal,
                                   uint32_t *const *xs, const uint8_t **pp, const uint8_t *const *end)
{
    ic_zk K;
    ic_zs S[IC_MAXZ];
    ic_zk_init(&K, m);
    for (uint32_t z = 0; z < nz; z++) ic_zs_init(&S[z], xs[2 * z], xs[2 * z + 1], pp[2 * z], pp[2 * z + 1]);
    uint32_t c = m->c, n = 0, nr = 2 * nz;
    for (uint32_t i = 0; i < nr; i++) n = nps[i] > n ? nps[i] : n;
    uint32_t tabs[16] __attribute__((aligned(64)));
    uint8_t d[IC_MAXZ][16];
    for (uint32_t j0 = 0; j0 < n; j0 += 8) {
        uint32_t cnt[2 * IC_MAXZ];
        for (uint32_t l = 0; l < 8; l++) tabs[l] = tabs[l + 8] = (APD__IC_NCTX + (j0 + l) % c) << APD__IC_PBITS;
        for (uint32_t i = 0; i < nr; i++) cnt[i] = nps[i] > j0 ? (nps[i] - j0 < 8 ? nps[i] - j0 : 8) : 0;
        const __m512i off = _mm512_load_si512(tabs);
        int out = 0;
        for (uint32_t z = 0; z < nz; z++) {
            __mmask16 act = (__mmask16)(((1u << cnt[2 * z]) - 1) | ((1u << cnt[2 * z + 1]) - 1) << 8);
            _mm_storeu_si128((__m128i *)d[z], _mm512_cvtepi32_epi8(ic_zrans(&S[z], &K, off, act)));
            out |= (S[z].p0 > end[2 * z]) | (S[z].p1 > end[2 * z + 1]);
        }
        for (uint32_t i = 0; i < nr; i++) memcpy(pal[i] + j0, d[i / 2] + 8 * (i % 2), cnt[i]);
        if (out) return -1;
    }
    uint32_t eo[2 * IC_MAXZ] = {0};
    for (uint32_t z = 0; z < nz; z++) ic_zs_done(&S[z], 2 * z, xs, pp, eo);
    for (uint32_t i = 0; i < nr; i++)
        for (uint32_t j = c; j < nps[i]; j++) pal[i][j] = (uint8_t)(pal[i][j] + pal[i][j - c]);
    return 0;
}

/* Step t (of nt) of the nz register sets; 1 if a stream ran out. A step reads 16 bytes at
 * each word pointer and advances it by at most 16, so with the 32 zero bytes after each
 * stream the end needs checking only every second step (and after the last). */
#define IC_OUT(S, i) ((S)->p0 > end[i]) | ((S)->p1 > end[(i) + 1])
IC_AVX512 static inline __attribute__((always_inline)) int ic_zsets(ic_zs *A, ic_zs *B, ic_zs *C, ic_zs *D,
                                                                    const ic_zk *K, uint32_t nz, uint32_t t,
                                                                    uint32_t nt, __mmask16 act, __mmask16 rs,
                                                                    uint8_t *st, const uint8_t *up,
                                                                    const uint8_t *const *end)
{
    ic_zstep(A, K, t, act, rs, st, up);
    if (nz >= 2) ic_zstep(B, K, t, act, rs, st + 16, up + 16);
    if (nz >= 3) ic_zstep(C, K, t, act, rs, st + 32, up + 32);
    if (nz >= 4) ic_zstep(D, K, t, act, rs, st + 48, up + 48);
    if ((t & 1) || t + 1 == nt) {
        int out = IC_OUT(A, 0);
        if (nz >= 2) out |= IC_OUT(B, 2);
        if (nz >= 3) out |= IC_OUT(C, 4);
        if (nz >= 4) out |= IC_OUT(D, 6);
        return out;
    }
    return 0;
}
#undef IC_OUT

/* The steps of one row group (nt steps) for nz register sets (a constant at each call, so
 * the loop is compiled once per count); the group starts with no left or up-left values.
 * Returns 0, or -1 if a stream ran out. */
IC_AVX512 static inline __attribute__((always_inline)) int ic_zgroup(ic_zs *A, ic_zs *B, ic_zs *C, ic_zs *D,
                                                                     const ic_zk *K, uint32_t nz, uint32_t nt,
                                                                     uint32_t w, uint32_t nl, uint8_t *st,
                                                                     const uint8_t *up, const uint8_t *const *end)
{
    ic_zs *const Z[IC_MAXZ] = {A, B, C, D};
    for (uint32_t z = 0; z < nz; z++) Z[z]->vp = Z[z]->bp = _mm512_setzero_si512();
    for (uint32_t t = 0; t < nt; t++) {
        if (ic_zsets(A, B, C, D, K, nz, t, nt, ic_zact(t, w, nl), 0, st, up, end)) return -1;
    }
    return 0;
}

/* Model version 2: all nt steps of the records' one continuous wavefront; mk[t] holds step
 * t's active lanes (bits 0-15) and the lanes that start a row (bits 16-31). */
IC_AVX512 static inline __attribute__((always_inline)) int ic_zrun2(ic_zs *A, ic_zs *B, ic_zs *C, ic_zs *D,
                                                                    const ic_zk *K, uint32_t nz, uint32_t nt,
                                                                    const uint32_t *mk, uint8_t *st,
                                                                    const uint8_t *up, const uint8_t *const *end)
{
    ic_zs *const Z[IC_MAXZ] = {A, B, C, D};
    for (uint32_t z = 0; z < nz; z++) Z[z]->vp = Z[z]->bp = _mm512_setzero_si512();
    for (uint32_t t = 0; t < nt; t++)
        if (ic_zsets(A, B, C, D, K, nz, t, nt, (__mmask16)mk[t], (__mmask16)(mk[t] >> 16), st, up, end)) return -1;
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
IC_AVX512 static inline __attribute__((always_inline)) int ic_zv1(ic_zs *A, ic_zs *B, ic_zs *C, ic_zs *D, const ic_zk *K, uint32_t nz,
                            uint8_t *const *idx, uint32_t h, uint32_t w, const uint8_t *const *end,
                            __m128i *mx, uint8_t *stack)
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
        case 4: rc = ic_zgroup(A, B, C, D, K, 4, nt, w, nl, st, up, end); break;
        case 3: rc = ic_zgroup(A, B, C, D, K, 3, nt, w, nl, st, up, end); break;
        case 2: rc = ic_zgroup(A, B, C, D, K, 2, nt, w, nl, st, up, end); break;
        default: rc = ic_zgroup(A, B, C, D, K, 1, nt, w, nl, st, up, end); break;
        }
        if (rc == 0)
            for (uint32_t z = 0; z < nz; z++)
                ic_unstage(st + 16 * z, nt, idx[2 * z], idx[2 * z + 1], y0, nl, w, &mx[z]);
    }
    if (buf != stack) free(buf);
    return rc;
}

/* Model version 2: one stage for the whole wavefront, W rows of zeros before it (lane 0's up
 * neighbours of the first row); after the last step each segment s (rows 8 s .. 8 s + 7,
 * steps s W .. s W + w + 6) is transposed into the maps as a version-1 group would be. The
 * per-step masks come from a table: each lane's activity toggles at the start and end of
 * each of its rows (an XOR scan), its row-start bit is set at the start. */
IC_AVX512 static inline __attribute__((always_inline)) int ic_zv2(ic_zs *A, ic_zs *B, ic_zs *C, ic_zs *D, const ic_zk *K, uint32_t nz,
                            uint8_t *const *idx, uint32_t h, uint32_t w, const uint8_t *const *end,
                            __m128i *mx, uint8_t *stack)
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
    switch (nz) {
    case 4: rc = ic_zrun2(A, B, C, D, K, 4, (uint32_t)nt, mk, st, up, end); break;
    case 3: rc = ic_zrun2(A, B, C, D, K, 3, (uint32_t)nt, mk, st, up, end); break;
    case 2: rc = ic_zrun2(A, B, C, D, K, 2, (uint32_t)nt, mk, st, up, end); break;
    default: rc = ic_zrun2(A, B, C, D, K, 1, (uint32_t)nt, mk, st, up, end); break;
    }
    if (rc == 0)
        for (uint32_t sg = 0; sg < nseg; sg++) {
            uint32_t y0 = sg * APD__IC_LANES, nl = h - y0 < APD__IC_LANES ? h - y0 : APD__IC_LANES;
            const uint8_t *sl = st + IC_SROW * (size_t)sg * W;
            for (uint32_t z = 0; z < nz; z++)
                ic_unstage(sl + 16 * z, w + nl - 1, idx[2 * z], idx[2 * z + 1], y0, nl, w, &mx[z]);
        }
    if (buf != stack) free(buf);
    return rc;
}

IC_AVX512 static int index_avx512_xn(const apd__imodel *m, uint32_t nz, uint8_t *const *idx, uint32_t h,
                                     uint32_t w, uint32_t *const *xs, const uint8_t **pp,
                                     const uint8_t *const *end, uint32_t *vmax, uint32_t *eor)
{
    _Alignas(64) uint8_t stack[IC_STAGE_STACK];
    ic_zk K;
    ic_zs A, B, C, D;
    memset(&B, 0, sizeof B); /* sets beyond nz are never used (silences -Wmaybe-uninitialized) */
    memset(&C, 0, sizeof C);
    memset(&D, 0, sizeof D);
    ic_zk_init(&K, m);
    ic_zs_init(&A, xs[0], xs[1], pp[0], pp[1]);
    if (nz >= 2) ic_zs_init(&B, xs[2], xs[3], pp[2], pp[3]);
    if (nz >= 3) ic_zs_init(&C, xs[4], xs[5], pp[4], pp[5]);
    if (nz >= 4) ic_zs_init(&D, xs[6], xs[7], pp[6], pp[7]);
    __m128i mx[IC_MAXZ];
    for (uint32_t z = 0; z < IC_MAXZ; z++) mx[z] = _mm_setzero_si128();
    int rc = m->ver == 1 ? ic_zv1(&A, &B, &C, &D, &K, nz, idx, h, w, end, mx, stack)
                         : ic_zv2(&A, &B, &C, &D, &K, nz, idx, h, w, end, mx, stack);
    if (rc) return rc;
    ic_zs_done(&A, 0, xs, pp, eor);
    if (nz >= 2) ic_zs_done(&B, 2, xs, pp, eor);
    if (nz >= 3) ic_zs_done(&C, 4, xs, pp, eor);
    if (nz >= 4) ic_zs_done(&D, 6, xs, pp, eor);
    for (uint32_t z = 0; z < nz; z++) {
        uint8_t b16[16];
        _mm_storeu_si128((__m128i *)b16, mx[z]);
        for (uint32_t l = 0; l < 16; l++) vmax[2 * z + l / 8] = b16[l] > vmax[2 * z + l / 8] ? b16[l] : vmax[2 * z + l / 8];
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
    /* scratch: the words + 32 zero bytes, then the grid (h + 1 + 8 rows of w + 16 bytes), which
       the decoders that read their neighbours from it need (grid != 0); the AVX-512 lockstep
       decoder writes the output maps directly */
    size_t nb = len - APD__IC_STATES, grid_rows, grid_len = 0, need;
    if (!apd__add_ok((size_t)w, 2 * IC_PAD, &J->s) || !apd__add_ok((size_t)h, 1 + APD__IC_LANES, &grid_rows) ||
        (grid && !apd__mul_ok(grid_rows, J->s, &grid_len)) || !apd__add_ok(grid_len, nb + 32, &need)) {
        *why = "coded body: image too large";
        return APD_EOVERFLOW;
    }
    J->scratch = need <= stackcap ? stackbuf : malloc(need);
    if (!J->scratch) {
        *why = "out of memory";
        return APD_ENOMEM;
    }
    J->grid = grid ? J->scratch + nb + 32 : NULL;
    memcpy(J->scratch, body + APD__IC_STATES, nb);
    memset(J->scratch + nb, 0, 32);
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
                rc = index_avx512_xn(m, n / 2, idx, h, w, xs, pp, end, vmax, eor);
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
