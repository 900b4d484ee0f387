/* format/icode.c: the entropy-coded palette record body of format 1.1 (format/icode.h,
 * spec/apd-format.md section 7.4 and 8.1).
 *
 * What is coded: the palette as per-channel deltas from the previous entry (mod 256), then
 * the index map as residuals (mod 2^bits) from the MED predictor of JPEG-LS over the left
 * (a), up (b) and up-left (c) indices, each residual in one of 48 contexts (16 classes of
 * the local range max(a,b,c) - min(a,b,c), times the 3 branches of MED). Pixels outside the
 * image read as index 0. Symbols are coded with rANS (32-bit states, 10-bit probabilities,
 * 16-bit renormalisation) against a static per-file model (meta/imodel).
 *
 * Why this shape (measured on CIFAR-10 median cut, see bench/decode): the writer sorts each
 * palette by luminance, so neighbouring colours get neighbouring numbers and MED residuals
 * concentrate near 0 (K=64: 4.27 bits/pixel instead of 6; palette deltas 5.5 bits instead
 * of 8). Why 4 lanes in a wavefront: with one rANS state the decode of pixel x waits for the
 * state update, the table load and the prediction of pixel x-1 (a chain of ~15 cycles); with
 * 4 rows in flight (row 4g+l, pixel t-l at step t, lane l) the four chains are independent,
 * since a pixel only needs its left, up and up-left neighbours, all decoded at earlier steps.
 *
 * Hardening: every count and size is checked before use; the decoder reads the stream from
 * a zero-padded copy and checks after every step that it has not run past the end, uses a
 * fixed number of symbols (no data-dependent loops), and at the end requires every state to
 * be back at 2^16, every word consumed, no empty context used and every index < k.
 */
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "apd/format.h"
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
    if (p[8] != APD__IC_VERSION) {
        *why = "index model version is not 1 (file needs a newer reader)";
        return APD_EVERSION;
    }
    if (p[9] != c || p[10] != bits || p[11] != APD__IC_LANES || p[12] != APD__IC_PBITS ||
        p[13] != APD__IC_NCTX || apd__ld16(p + 14) != 0) {
        *why = "index model header does not match the file (c, bits, lanes 4, 10 probability bits, 48 contexts, reserved 0)";
        return APD_ECORRUPT;
    }
    if ((c != 1 && c != 3) || bits < 1 || bits > 8) {
        *why = "index model for an impossible geometry";
        return APD_ECORRUPT;
    }
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

/* Pixel at q (padded buffer, row stride s): context, symbol, index. */
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

#define IC_STACK 16384

apd_status apd__icode_decode(const apd__imodel *m, const uint8_t *body, size_t len, uint32_t k,
                             uint32_t h, uint32_t w, uint8_t *pal, uint8_t *idx,
                             const char **why)
{
    if (len < APD__IC_STATES) {
        *why = "coded body shorter than its 4 rANS states";
        return APD_ETRUNC;
    }
    if ((len - APD__IC_STATES) & 1) {
        *why = "coded body has half a 16-bit word at its end";
        return APD_ECORRUPT;
    }
    uint32_t x[APD__IC_LANES];
    for (uint32_t l = 0; l < APD__IC_LANES; l++) {
        x[l] = apd__ld32(body + 4 * l);
        if (x[l] < APD__IC_L) {
            *why = "coded body: rANS state below 2^16";
            return APD_ECORRUPT;
        }
    }
    size_t nb = len - APD__IC_STATES, s = (size_t)w + 1, grid, need;
    if (!apd__mul_ok((size_t)h + 1, s, &grid) || !apd__add_ok(grid, nb + 8, &need)) {
        *why = "coded body: image too large";
        return APD_EOVERFLOW;
    }
    uint8_t stackbuf[IC_STACK];
    uint8_t *scratch = need <= sizeof stackbuf ? stackbuf : malloc(need);
    if (!scratch) {
        *why = "out of memory";
        return APD_ENOMEM;
    }
    uint8_t *words = scratch, *buf = scratch + nb + 8;
    memcpy(words, body + APD__IC_STATES, nb);
    memset(words + nb, 0, 8); /* reads past the end land here; checked below */
    const uint8_t *p = words, *end = words + nb;
    apd_status st = APD_OK;
    uint32_t eor = 0, vmax = 0;

    /* palette: symbol j = entry j / c, channel j % c, lane j % 4 */
    uint32_t c = m->c, nps = k * c;
    uint8_t prev[3] = {0, 0, 0};
    for (uint32_t j = 0; j < nps; j++) {
        uint32_t ch = j % c;
        uint32_t e = sym_dec(m->dec + (size_t)(APD__IC_NCTX + ch) * APD__IC_M, &x[j & 3], &p);
        prev[ch] = (uint8_t)(prev[ch] + e);
        pal[j] = prev[ch];
        if ((j & 3) == 3 && p > end) break;
    }
    if (p > end) goto overrun;

    /* indices: row groups of 4, wavefront (row 4g+l, column t-l at step t) */
    memset(buf, 0, s);
    for (uint32_t y = 0; y < h; y++) buf[(size_t)(y + 1) * s] = 0;
    const uint32_t amask = (1u << m->bits) - 1;
    for (uint32_t y0 = 0; y0 < h; y0 += APD__IC_LANES) {
        uint32_t nl = h - y0 < APD__IC_LANES ? h - y0 : APD__IC_LANES;
        uint8_t *row = buf + (size_t)(y0 + 1) * s + 1; /* pixel (y0+l, x) at row[l*s + x] */
        uint32_t steps = w + nl - 1;
        for (uint32_t t = 0; t < steps; t++) {
            if (nl == 4 && t >= 3 && t < w) {
                /* steady state: all four lanes in the image, no checks but the stream end */
                for (; t < w; t++) {
                    px_dec(row + t, s, m->dec, &x[0], &p, amask, &vmax, &eor);
                    px_dec(row + s + t - 1, s, m->dec, &x[1], &p, amask, &vmax, &eor);
                    px_dec(row + 2 * s + t - 2, s, m->dec, &x[2], &p, amask, &vmax, &eor);
                    px_dec(row + 3 * s + t - 3, s, m->dec, &x[3], &p, amask, &vmax, &eor);
                    if (p > end) goto overrun;
                }
                t--;
                continue;
            }
            for (uint32_t l = 0; l < nl; l++) {
                if (t < l || t - l >= w) continue;
                px_dec(row + l * s + (t - l), s, m->dec, &x[l], &p, amask, &vmax, &eor);
            }
            if (p > end) goto overrun;
        }
    }
    if (eor & APD__IC_EMPTY) {
        *why = "coded body uses an index context the model has no table for";
        st = APD_ECORRUPT;
    } else if (vmax >= k) {
        *why = "coded index >= record palette size";
        st = APD_ECORRUPT;
    } else if (p != end) {
        *why = "coded body has words after its last symbol";
        st = APD_ECORRUPT;
    } else if (x[0] != APD__IC_L || x[1] != APD__IC_L || x[2] != APD__IC_L || x[3] != APD__IC_L) {
        *why = "coded body: final rANS states are not 2^16";
        st = APD_ECORRUPT;
    } else {
        for (uint32_t y = 0; y < h; y++) memcpy(idx + (size_t)y * w, buf + (size_t)(y + 1) * s + 1, w);
    }
    if (scratch != stackbuf) free(scratch);
    return st;
overrun:
    if (scratch != stackbuf) free(scratch);
    *why = "coded body ends before its last symbol";
    return APD_ETRUNC;
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
        out[8] = APD__IC_VERSION;
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
    enc E = {m, {APD__IC_L, APD__IC_L, APD__IC_L, APD__IC_L}, malloc((nsym + 1) * sizeof(uint16_t)), 0, 0};
    if (!E.words) return 0;
    uint32_t amask = (1u << m->bits) - 1;
    /* reverse of the decode order: last row group first, last step first, last lane first */
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
    uint32_t c = m->c;
    for (uint32_t j = k * c; j-- > 0 && !E.bad;)
        sym_enc(&E, APD__IC_NCTX + j % c, (uint8_t)(pal[j] - (j >= c ? pal[j - c] : 0)), j & 3);
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
