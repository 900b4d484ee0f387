/* quant/median_cut.c: median cut exactly as Pillow's Image.quantize(method=0, kmeans=0)
 * (libImaging/Quant.c), re-implemented from its description (docs/method.md 4.1)
 * and checked against Pillow 9.4 output (tests/quant).
 *
 * The details that decide bit-exactness, and how this file reproduces each:
 * 1. Histogram entries are the distinct colours. When there are more than 65536, Pillow
 *    drops low bits of every channel (shift s = 1, 2, ...) until at most 65536 remain and
 *    cuts in that coarser space; so do we (bin_entries).
 * 2. Boxes wait in a binary max-heap keyed by pixel count; which box is popped among equal
 *    counts depends on the heap's exact sift rules, so heap_add/heap_remove follow the same
 *    1-based algorithm (comparison a.count - b.count as int). A popped box of volume 1 (one
 *    colour) is dropped for good. k - 1 splits are attempted.
 * 3. Split axis: argmax of (r_range*77, g_range*150, b_range*29), the first on ties; grey
 *    has a single axis (Pillow sees r = g = b and picks g, the same partition).
 * 4. Split point: walk the axis values from high to low accumulating pixel counts; the
 *    first value v where 2*cum > box count is the median. The high box ("left" in Pillow,
 *    first in palette order) takes every value >= v; if that leaves the low box empty, the
 *    low box takes the values equal to the minimum instead. Only values decide membership,
 *    so the order of entries inside a box does not matter.
 * 5. Palette: leaves in tree order (high side first), each the rounded mean
 *    (int)(0.5 + sum/count) of the original pixels in it.
 * 6. Mapping: each distinct colour goes to the nearest palette entry by squared L2; ties
 *    keep its own box's entry, else the tied entry that comes first in Pillow's per-box
 *    sorted distance list (distance from the own entry, then index). Pillow prunes that
 *    list with a triangle-inequality bound that never drops the true minimum, so a plain
 *    scan with the same tie rule gives the same answer.
 */
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "quant/quant_internal.h"

#define MC_MAX_ENTRIES 65536u

typedef struct mc_box {
    uint32_t start, end; /* range in the entry order array */
    uint32_t count;      /* pixels in the box */
    int l, r;            /* children (-1 for a leaf) */
    uint8_t lo[3], hi[3]; /* per-channel value range of the box's entries */
} mc_box;

typedef struct mc_heap {
    int a[520]; /* 1-based; at most 1 + 2*255 pushes */
    uint32_t n;
} mc_heap;

static int box_cmp(const mc_box *boxes, int a, int b)
{
    return (int)boxes[a].count - (int)boxes[b].count;
}

static void heap_add(mc_heap *h, const mc_box *boxes, int val)
{
    uint32_t k = ++h->n;
    while (k != 1) {
        if (box_cmp(boxes, val, h->a[k / 2]) <= 0) break;
        h->a[k] = h->a[k / 2];
        k >>= 1;
    }
    h->a[k] = val;
}

static int heap_remove(mc_heap *h, const mc_box *boxes, int *out)
{
    uint32_t k, l;
    if (!h->n) return 0;
    *out = h->a[1];
    int v = h->a[h->n--];
    for (k = 1; k * 2 <= h->n; k = l) {
        l = k * 2;
        if (l < h->n && box_cmp(boxes, h->a[l], h->a[l + 1]) < 0) l++;
        if (box_cmp(boxes, v, h->a[l]) > 0) break;
        h->a[k] = h->a[l];
    }
    h->a[k] = v;
    return 1;
}

/* Entries the cut operates on: colour (possibly binned), pixel count. */
typedef struct mc_ctx {
    uint32_t c, ne;
    uint8_t (*ev)[3];
    uint32_t *ecount;
    uint32_t *ord;      /* permutation of entries, partitioned by boxes */
    uint32_t *ent_of;   /* distinct colour -> entry (NULL when identical) */
} mc_ctx;

static void box_ranges(const mc_ctx *m, mc_box *b)
{
    uint8_t lo[3] = {255, 255, 255}, hi[3] = {0, 0, 0};
    for (uint32_t i = b->start; i < b->end; i++) {
        const uint8_t *v = m->ev[m->ord[i]];
        for (uint32_t ch = 0; ch < m->c; ch++) {
            if (v[ch] < lo[ch]) lo[ch] = v[ch];
            if (v[ch] > hi[ch]) hi[ch] = v[ch];
        }
    }
    memcpy(b->lo, lo, 3);
    memcpy(b->hi, hi, 3);
}

static int box_volume_is_one(const mc_ctx *m, const mc_box *b)
{
    for (uint32_t ch = 0; ch < m->c; ch++)
        if (b->lo[ch] != b->hi[ch]) return 0;
    return 1;
}

/* Split box b into two new boxes appended to boxes[] (see point 4 above). */
static void split_box(mc_ctx *m, mc_box *boxes, int b, int *nbox)
{
    static const int wt[3] = {77, 150, 29};
    mc_box *bx = &boxes[b];
    const uint8_t *lo = bx->lo, *hi = bx->hi;
    int axis = 0, best = -1;
    for (uint32_t ch = 0; ch < m->c; ch++) {
        int f = (int)(hi[ch] - lo[ch]) * (m->c == 3 ? wt[ch] : 1);
        if (best < f) {
            best = f;
            axis = (int)ch;
        }
    }
    uint64_t cnt[256];
    memset(cnt, 0, sizeof cnt);
    for (uint32_t i = bx->start; i < bx->end; i++) {
        uint32_t e = m->ord[i];
        cnt[m->ev[e][axis]] += m->ecount[e];
    }
    uint64_t cum = 0;
    int v = hi[axis];
    for (; v >= lo[axis]; v--) {
        cum += cnt[v];
        if (cum * 2 > bx->count) break;
    }
    /* high side: values >= thr; if that is everything, high side is values > min */
    int thr = v > lo[axis] ? v : lo[axis] + 1;
    uint32_t i = bx->start, j = bx->end;
    uint64_t left_count = 0;
    while (i < j) {
        uint32_t e = m->ord[i];
        if ((int)m->ev[e][axis] >= thr) {
            left_count += m->ecount[e];
            i++;
        } else {
            j--;
            m->ord[i] = m->ord[j];
            m->ord[j] = e;
        }
    }
    int L = (*nbox)++, R = (*nbox)++;
    uint32_t start = bx->start, end = bx->end, count = bx->count;
    boxes[L] = (mc_box){.start = start, .end = i, .count = (uint32_t)left_count, .l = -1, .r = -1};
    boxes[R] = (mc_box){.start = i, .end = end, .count = count - (uint32_t)left_count, .l = -1, .r = -1};
    box_ranges(m, &boxes[L]);
    box_ranges(m, &boxes[R]);
    boxes[b].l = L;
    boxes[b].r = R;
}

/* Pillow's binning for images with more than 65536 colours (point 1). */
static apd_status bin_entries(const apd__qhist *hh, mc_ctx *m)
{
    uint32_t s = 1;
    for (;; s++) {
        uint32_t side = 256u >> s, cells = side * (hh->c == 3 ? side * side : 1);
        uint8_t *seen = calloc(cells, 1);
        if (!seen) return APD_ENOMEM;
        uint32_t n = 0;
        for (uint32_t i = 0; i < hh->n; i++) {
            uint32_t key = hh->c == 3 ? (((uint32_t)(hh->col[i][0] >> s) * side + (hh->col[i][1] >> s)) * side +
                                         (hh->col[i][2] >> s))
                                      : (uint32_t)(hh->col[i][0] >> s);
            if (!seen[key]) {
                seen[key] = 1;
                n++;
            }
        }
        free(seen);
        if (n <= MC_MAX_ENTRIES) break;
    }
    uint32_t side = 256u >> s, cells = side * (hh->c == 3 ? side * side : 1);
    uint32_t *id = malloc((size_t)cells * sizeof(uint32_t));
    if (!id) return APD_ENOMEM;
    memset(id, 0xff, (size_t)cells * sizeof(uint32_t));
    m->ne = 0;
    for (uint32_t i = 0; i < hh->n; i++) {
        uint8_t q[3] = {(uint8_t)(hh->col[i][0] >> s), (uint8_t)(hh->col[i][1] >> s),
                        (uint8_t)(hh->col[i][2] >> s)};
        uint32_t key = hh->c == 3 ? ((uint32_t)q[0] * side + q[1]) * side + q[2] : q[0];
        if (id[key] == UINT32_MAX) {
            id[key] = m->ne;
            memcpy(m->ev[m->ne], q, 3);
            m->ecount[m->ne] = 0;
            m->ne++;
        }
        m->ent_of[i] = id[key];
        m->ecount[id[key]] += hh->count[i];
    }
    free(id);
    return APD_OK;
}

/* Point 6: nearest entry; ties keep the own box's entry (map[i] on entry), else go to the
 * tied entry with the smallest distance from the own entry, then the lowest index. */
static void map_pillow(const apd__qhist *hh, const uint8_t *palette, uint32_t nleaf, uint32_t *map)
{
    apd__qpal qp;
    uint32_t d[APD_MAX_COLORS];
    uint32_t c = hh->c;
    apd__qpal_set(&qp, palette, nleaf, c);
    for (uint32_t i = 0; i < hh->n; i++) {
        uint32_t own = map[i];
        apd__qpal_dists(&qp, hh->col[i], d);
        uint32_t m = apd__qmin(d, qp.kpad);
        if (d[own] == m) continue;
        uint32_t best = UINT32_MAX, best_key = UINT32_MAX;
        for (uint32_t j = 0; j < nleaf; j++) {
            if (d[j] != m) continue;
            uint32_t key = apd__qdist(palette + own * c, palette + j * c, c);
            if (key < best_key) {
                best_key = key;
                best = j;
            }
        }
        map[i] = best;
    }
}

apd_status apd__median_cut(const apd__qhist *hh, uint32_t k, uint8_t *palette, uint32_t *k_used,
                           uint32_t *map)
{
    uint32_t c = hh->c, n = hh->n;
    mc_ctx m = {.c = c, .ne = n};
    int binned = n > MC_MAX_ENTRIES;
    uint32_t ecap = binned ? MC_MAX_ENTRIES : n;
    mc_box *boxes = malloc(sizeof(mc_box) * 2 * APD_MAX_COLORS);
    m.ord = malloc(sizeof(uint32_t) * (size_t)ecap);
    uint64_t *sum = calloc((size_t)APD_MAX_COLORS * 4, sizeof(uint64_t));
    uint32_t *leaf_of_entry = malloc(sizeof(uint32_t) * (size_t)ecap);
    if (binned) {
        m.ev = malloc(3 * (size_t)ecap);
        m.ecount = malloc(sizeof(uint32_t) * (size_t)ecap);
        m.ent_of = malloc(sizeof(uint32_t) * (size_t)n);
    } else {
        m.ev = hh->col;
        m.ecount = hh->count;
    }
    apd_status st = APD_ENOMEM;
    if (!boxes || !m.ord || !sum || !leaf_of_entry || !m.ev || !m.ecount || (binned && !m.ent_of))
        goto out;
    if (binned && (st = bin_entries(hh, &m)) != APD_OK) goto out;

    for (uint32_t i = 0; i < m.ne; i++) m.ord[i] = i;
    int nbox = 1;
    boxes[0] = (mc_box){.start = 0, .end = m.ne, .count = hh->npix, .l = -1, .r = -1};
    box_ranges(&m, &boxes[0]);
    mc_heap heap = {.n = 0};
    heap_add(&heap, boxes, 0);
    for (uint32_t splits = k - 1; splits > 0; splits--) {
        int b;
        do {
            if (!heap_remove(&heap, boxes, &b)) goto done;
        } while (box_volume_is_one(&m, &boxes[b]));
        split_box(&m, boxes, b, &nbox);
        heap_add(&heap, boxes, boxes[b].l);
        heap_add(&heap, boxes, boxes[b].r);
    }
done:;
    /* leaves in tree order, high side first (iterative pre-order walk) */
    int stack[512], sp = 0;
    uint32_t nleaf = 0;
    stack[sp++] = 0;
    while (sp) {
        int b = stack[--sp];
        if (boxes[b].l >= 0) {
            stack[sp++] = boxes[b].r;
            stack[sp++] = boxes[b].l;
            continue;
        }
        for (uint32_t i = boxes[b].start; i < boxes[b].end; i++) leaf_of_entry[m.ord[i]] = nleaf;
        nleaf++;
    }
    /* palette: rounded means of the original colours in each leaf */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = binned ? m.ent_of[i] : i;
        uint32_t L = leaf_of_entry[e];
        map[i] = L;
        sum[L * 4 + 3] += hh->count[i];
        for (uint32_t ch = 0; ch < c; ch++) sum[L * 4 + ch] += (uint64_t)hh->count[i] * hh->col[i][ch];
    }
    for (uint32_t L = 0; L < nleaf; L++)
        for (uint32_t ch = 0; ch < c; ch++)
            palette[L * c + ch] = (uint8_t)(int)(.5 + (double)sum[L * 4 + ch] / (double)sum[L * 4 + 3]);

    /* mapping with Pillow's tie rule (point 6) */
    map_pillow(hh, palette, nleaf, map);
    *k_used = nleaf;
    st = APD_OK;
out:
    free(boxes);
    free(m.ord);
    free(sum);
    free(leaf_of_entry);
    if (binned) {
        free(m.ev);
        free(m.ecount);
        free(m.ent_of);
    }
    return st;
}
