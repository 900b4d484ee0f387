/* quant/octree.c: classic octree quantization (Gervautz & Purgathofer 1988) and the k-means
 * refinement used by APD_QUANT_KMEANS.
 *
 * Octree: every distinct colour is inserted down 8 levels (level L picks the child from bit
 * 7-L of each channel: 8 children for RGB, 2 for grey), so leaves at depth 8 are exact
 * colours and every node knows the pixel count and colour sum of its subtree. While there
 * are more than k leaves, the deepest internal node with the fewest pixels (ties: created
 * first) absorbs its children. All nodes of one depth become reducible together, so we
 * process depth 7, 6, ... in (count, id) order. Palette = rounded leaf means in depth-first
 * child order; every pixel then goes to its nearest palette colour (ties: lowest index).
 *
 * k-means: Lloyd iterations on the distinct colours (weighted by count). Centres are kept as
 * 8-bit colours, the rounded cluster mean, which is the nearest 8-bit point to the mean, so
 * a centre update never raises the squared error; a colour moves only to a strictly nearer
 * centre (ties keep the current one). Hence the error is monotone non-increasing from the
 * seed assignment and the loop stops when nothing moves (or after max_iter rounds).
 */
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "quant/quant_internal.h"

typedef struct oct_node {
    uint64_t count, sum[3];
    int32_t child[8];
    uint8_t depth, leaf;
} oct_node;

typedef struct oct_tree {
    oct_node *nodes;
    uint32_t n, cap;
} oct_tree;

static int32_t oct_new(oct_tree *t, uint8_t depth)
{
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 1024;
        oct_node *nn = realloc(t->nodes, (size_t)cap * sizeof(oct_node));
        if (!nn) return -1;
        t->nodes = nn;
        t->cap = cap;
    }
    oct_node *o = &t->nodes[t->n];
    memset(o, 0, sizeof *o);
    for (int i = 0; i < 8; i++) o->child[i] = -1;
    o->depth = depth;
    o->leaf = depth == 8;
    return (int32_t)t->n++;
}

typedef struct oct_item {
    uint64_t count;
    uint32_t id;
} oct_item;

static int item_cmp(const void *a, const void *b)
{
    const oct_item *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* Merge the m smallest children (count, then child slot) of o into the first of them:
 * used instead of a full merge when that would leave fewer than k leaves, so the octree
 * gives exactly min(k, distinct colours) colours. */
static void partial_merge(oct_tree *t, oct_node *o, uint32_t nch, uint32_t m)
{
    oct_item kids[8];
    uint32_t nk = 0;
    for (uint32_t ci = 0; ci < nch; ci++)
        if (o->child[ci] >= 0) kids[nk++] = (oct_item){t->nodes[o->child[ci]].count, ci};
    qsort(kids, nk, sizeof(oct_item), item_cmp);
    oct_node *into = &t->nodes[o->child[kids[0].id]];
    into->leaf = 1;
    for (uint32_t j = 1; j < m; j++) {
        oct_node *from = &t->nodes[o->child[kids[j].id]];
        into->count += from->count;
        for (int ch = 0; ch < 3; ch++) into->sum[ch] += from->sum[ch];
        o->child[kids[j].id] = -1;
    }
}

apd_status apd__octree(const apd__qhist *hh, uint32_t k, uint8_t *palette, uint32_t *k_used,
                       uint32_t *map)
{
    uint32_t c = hh->c, nch = c == 3 ? 8 : 2;
    oct_tree t = {0};
    oct_item *items = NULL;
    int32_t *stack = NULL;
    apd_status st = APD_ENOMEM;
    if (oct_new(&t, 0) < 0) goto out;
    for (uint32_t i = 0; i < hh->n; i++) {
        const uint8_t *col = hh->col[i];
        int32_t cur = 0;
        for (uint32_t L = 0;; L++) {
            oct_node *o = &t.nodes[cur];
            o->count += hh->count[i];
            for (uint32_t ch = 0; ch < c; ch++) o->sum[ch] += (uint64_t)hh->count[i] * col[ch];
            if (L == 8) break;
            uint32_t bit = 7 - L, ci = 0;
            for (uint32_t ch = 0; ch < c; ch++) ci = (ci << 1) | ((col[ch] >> bit) & 1u);
            if (t.nodes[cur].child[ci] < 0) {
                int32_t nn = oct_new(&t, (uint8_t)(L + 1));
                if (nn < 0) goto out;
                t.nodes[cur].child[ci] = nn;
            }
            cur = t.nodes[cur].child[ci];
        }
    }
    uint32_t leaves = hh->n;
    items = malloc((size_t)t.n * sizeof(oct_item));
    stack = malloc((size_t)t.n * sizeof(int32_t));
    if (!items || !stack) goto out;
    for (int depth = 7; depth >= 0 && leaves > k; depth--) {
        uint32_t m = 0;
        for (uint32_t i = 0; i < t.n; i++)
            if (t.nodes[i].depth == depth && !t.nodes[i].leaf)
                items[m++] = (oct_item){t.nodes[i].count, i};
        qsort(items, m, sizeof(oct_item), item_cmp);
        for (uint32_t j = 0; j < m && leaves > k; j++) {
            oct_node *o = &t.nodes[items[j].id];
            uint32_t kids = 0;
            for (uint32_t ci = 0; ci < nch; ci++)
                if (o->child[ci] >= 0) kids++;
            if (leaves - (kids - 1) >= k) {
                o->leaf = 1;
                leaves -= kids - 1;
            } else {
                partial_merge(&t, o, nch, leaves - k + 1);
                leaves = k;
            }
        }
    }
    /* number the leaves depth-first, child order; palette = rounded means */
    uint32_t sp = 0, nleaf = 0;
    stack[sp++] = 0;
    while (sp) {
        int32_t id = stack[--sp];
        oct_node *o = &t.nodes[id];
        if (o->leaf) {
            for (uint32_t ch = 0; ch < c; ch++)
                palette[nleaf * c + ch] = (uint8_t)(int)(.5 + (double)o->sum[ch] / (double)o->count);
            nleaf++;
            continue;
        }
        for (int ci = (int)nch - 1; ci >= 0; ci--)
            if (o->child[ci] >= 0) stack[sp++] = o->child[ci];
    }
    *k_used = nleaf;
    apd__qnearest(hh, palette, nleaf, map);
    st = APD_OK;
out:
    free(t.nodes);
    free(items);
    free(stack);
    return st;
}

apd_status apd__kmeans_refine(const apd__qhist *hh, uint32_t k_used, uint8_t *palette,
                              uint32_t *map, uint32_t max_iter)
{
    uint32_t c = hh->c;
    uint64_t *acc = malloc((size_t)k_used * 4 * sizeof(uint64_t));
    if (!acc) return APD_ENOMEM;
    for (uint32_t it = 0; it < max_iter; it++) {
        memset(acc, 0, (size_t)k_used * 4 * sizeof(uint64_t));
        for (uint32_t i = 0; i < hh->n; i++) {
            uint64_t *a = acc + map[i] * 4;
            a[3] += hh->count[i];
            for (uint32_t ch = 0; ch < c; ch++) a[ch] += (uint64_t)hh->count[i] * hh->col[i][ch];
        }
        for (uint32_t j = 0; j < k_used; j++) {
            if (!acc[j * 4 + 3]) continue; /* empty cluster keeps its colour */
            for (uint32_t ch = 0; ch < c; ch++)
                palette[j * c + ch] = (uint8_t)(int)(.5 + (double)acc[j * 4 + ch] / (double)acc[j * 4 + 3]);
        }
        uint32_t changes = 0;
        apd__qpal qp;
        uint32_t d[APD_MAX_COLORS];
        apd__qpal_set(&qp, palette, k_used, c);
        for (uint32_t i = 0; i < hh->n; i++) {
            apd__qpal_dists(&qp, hh->col[i], d);
            uint32_t m = apd__qmin(d, qp.kpad);
            if (d[map[i]] == m) continue; /* ties keep the current cluster */
            uint32_t j = 0;
            while (d[j] != m) j++;
            map[i] = j;
            changes++;
        }
        if (!changes) break;
    }
    free(acc);
    return APD_OK;
}
