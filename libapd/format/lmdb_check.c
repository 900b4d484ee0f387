/* format/lmdb_check.c: apd__lmdb_check, the structural check of an .apd file's LMDB container
 * before LMDB maps it (contract in lmdb_check.h).
 *
 * liblmdb reads its file through a memory map and trusts every page number, offset and size
 * in it; it only checks that a page number is below last_pgno + 1. So a truncated file (the
 * map reaches past the end of the file: SIGBUS) or a damaged B-tree page (node offsets out of
 * the page, a child that is an overflow page, a branch with one key: wild reads or an
 * assertion abort) kills the reading process. This file walks, with pread() only, exactly the
 * pages LMDB's read path can reach for an .apd (the main database and the named databases
 * "meta" and "chunks") and checks each one, so that the reader can refuse the file with a
 * message instead.
 *
 * LMDB 0.9 on-disk layout on a 64-bit host (pgno_t and txnid_t are 8 bytes; integers in host
 * order, little-endian on every platform libapd supports):
 *
 *   page header (16 bytes)
 *      0  8  pgno     the page's own number
 *      8  2  pad
 *     10  2  flags    0x01 branch, 0x02 leaf, 0x04 overflow, 0x08 meta
 *     12  2  lower    16 + 2 * (number of nodes)     } overflow pages: 12 4 = pages in the run
 *     14  2  upper    start of the node area          }
 *     16  2n node offsets (from the page start), in key order
 *
 *   node, at its offset: 0 2 lo, 2 2 hi, 4 2 flags, 6 2 ksize, 8 ksize key bytes, then data
 *     branch node: child page = lo | hi << 16 | flags << 32; no data
 *     leaf node:   data size = lo | hi << 16; flags 0x01 = the data is the 8-byte number of
 *                  the first page of an overflow run, 0x02 = the data is a database record,
 *                  0x04 = duplicates (never in an .apd)
 *
 *   database record (48 bytes): 0 4 pad, 4 2 flags, 6 2 depth, 8 8 branch pages,
 *     16 8 leaf pages, 24 8 overflow pages, 32 8 entries, 40 8 root page (all ones: empty)
 *
 *   meta page (pages 0 and 1; page 1 starts at offset psize): page header with flag 0x08,
 *     then 0 4 magic 0xBEEFC0DE, 4 4 data version 1, 8 8 fixed address, 16 8 map size,
 *     24 48 free-page database (its pad field is the page size), 72 48 main database,
 *     120 8 last pgno, 128 8 txnid. LMDB reads the one with the higher txnid.
 *
 *   overflow run: one header then raw data, ceil((16 + size) / psize) pages at least (LMDB
 *     may reuse a longer run for a shorter value).
 *
 * The free-page database is not walked: LMDB's read path never touches it.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/internal.h"
#include "format/lmdb_check.h"

#define PG_HDR 16u
#define NODE_HDR 8u
#define DB_REC 48u
#define META_LEN 136u
#define PF_BRANCH 0x01u
#define PF_LEAF 0x02u
#define PF_OVERFLOW 0x04u
#define PF_META 0x08u
#define NF_BIGDATA 0x01u
#define NF_SUBDATA 0x02u
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_DATA_VERSION 1u
#define NO_PAGE UINT64_MAX
#define MAX_DEPTH 31u /* a cursor holds 32 pages: the main tree plus a named one never nest */

typedef struct lc_db {
    uint32_t flags, depth;
    uint64_t branch, leaf, overflow, entries, root;
} lc_db;

typedef struct lc {
    int fd;
    apd__lmdb_snap *s;
    uint8_t *seen;          /* one bit per page 0..last_pgno: reached already */
    char *why;
    size_t cap;
    const char *tree;       /* database being walked (messages) */
    int is_main;
    uint32_t depth;         /* of the tree being walked */
    lc_db cnt;              /* pages and entries counted in it */
    uint8_t sub[2][DB_REC]; /* records of "meta" and "chunks" found in the main tree */
    int have_sub[2];
} lc;

static const char *const sub_names[2] = {"meta", "chunks"};

static apd_status lc_fail(lc *c, apd_status code, const char *fmt, ...) APD__PRINTF(3, 4);
static apd_status lc_fail(lc *c, apd_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, c->cap, fmt, ap);
    va_end(ap);
    return code;
}

static void db_parse(const uint8_t *p, lc_db *d)
{
    d->flags = apd__ld16(p + 4);
    d->depth = apd__ld16(p + 6);
    d->branch = apd__ld64(p + 8);
    d->leaf = apd__ld64(p + 16);
    d->overflow = apd__ld64(p + 24);
    d->entries = apd__ld64(p + 32);
    d->root = apd__ld64(p + 40);
}

static apd_status read_at(lc *c, void *buf, size_t len, uint64_t off, uint64_t pgno)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(c->fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return lc_fail(c, APD_EIO, "reading LMDB page %llu: %s", (unsigned long long)pgno, strerror(errno));
        if (n == 0)
            return lc_fail(c, APD_ETRUNC, "truncated: LMDB page %llu lies past the end of the file",
                           (unsigned long long)pgno);
        got += (size_t)n;
    }
    return APD_OK;
}

/* Mark pages first..first+n-1 reached; each page of a snapshot is reached at most once. */
static apd_status mark(lc *c, uint64_t first, uint64_t n)
{
    for (uint64_t p = first; p < first + n; p++) {
        if (c->seen[p >> 3] & (1u << (p & 7)))
            return lc_fail(c, APD_ECORRUPT,
                           "LMDB page %llu (database \"%s\") is reached twice: a page pointer or "
                           "page was damaged or duplicated", (unsigned long long)p, c->tree);
        c->seen[p >> 3] |= (uint8_t)(1u << (p & 7));
    }
    c->s->pages_reached += n;
    return APD_OK;
}

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int r = memcmp(a, b, al < bl ? al : bl);
    return r ? r : (al < bl ? -1 : al > bl);
}

/* The overflow run of a big value: first page opg, value of dsize bytes. */
static apd_status check_overflow(lc *c, uint64_t pg, uint32_t node, uint64_t opg, uint64_t dsize)
{
    const apd__lmdb_snap *s = c->s;
    if (opg < 2 || opg > s->last_pgno)
        return lc_fail(c, APD_ECORRUPT, "LMDB page %llu (database \"%s\"), node %u: value page %llu outside 2..%llu",
                       (unsigned long long)pg, c->tree, node, (unsigned long long)opg,
                       (unsigned long long)s->last_pgno);
    uint8_t h[PG_HDR];
    APD_TRY(read_at(c, h, sizeof h, opg * s->psize, opg));
    uint32_t pages = apd__ld32(h + 12), flags = apd__ld16(h + 10);
    uint64_t need = (PG_HDR - 1 + dsize) / s->psize + 1;
    if (apd__ld64(h) != opg || flags != PF_OVERFLOW)
        return lc_fail(c, APD_ECORRUPT,
                       "LMDB page %llu (database \"%s\"), node %u: value page %llu is not the overflow "
                       "page it should be (header names page %llu, flags 0x%x)", (unsigned long long)pg,
                       c->tree, node, (unsigned long long)opg, (unsigned long long)apd__ld64(h), flags);
    if (pages < need || pages > s->last_pgno - opg + 1)
        return lc_fail(c, APD_ECORRUPT,
                       "LMDB overflow page %llu (database \"%s\"): %u pages for a %llu-byte value "
                       "(needs %llu, at most %llu fit)", (unsigned long long)opg, c->tree, pages,
                       (unsigned long long)dsize, (unsigned long long)need,
                       (unsigned long long)(s->last_pgno - opg + 1));
    APD_TRY(mark(c, opg, pages));
    c->cnt.overflow += pages;
    return APD_OK;
}

/* The data part of leaf node i (at offset off, key of ksize bytes) of page pg. */
static apd_status check_leaf_node(lc *c, uint64_t pg, const uint8_t *page, uint32_t i, uint32_t off,
                                  uint32_t ksize)
{
    const uint8_t *nd = page + off;
    uint32_t nflags = apd__ld16(nd + 4);
    uint64_t dsize = (uint64_t)apd__ld16(nd) | ((uint64_t)apd__ld16(nd + 2) << 16);
    uint64_t end = (uint64_t)off + NODE_HDR + ksize + ((nflags & NF_BIGDATA) ? 8u : dsize);
    if ((nflags & ~(NF_BIGDATA | NF_SUBDATA)) || nflags == (NF_BIGDATA | NF_SUBDATA) ||
        ((nflags & NF_SUBDATA) && (!c->is_main || dsize != DB_REC)))
        return lc_fail(c, APD_ECORRUPT, "LMDB page %llu (database \"%s\"), node %u: node flags 0x%x, size %llu",
                       (unsigned long long)pg, c->tree, i, nflags, (unsigned long long)dsize);
    if (end > c->s->psize)
        return lc_fail(c, APD_ECORRUPT, "LMDB page %llu (database \"%s\"), node %u: ends at byte %llu of a %llu-byte page",
                       (unsigned long long)pg, c->tree, i, (unsigned long long)end,
                       (unsigned long long)c->s->psize);
    c->cnt.entries++;
    if (nflags & NF_BIGDATA) return check_overflow(c, pg, i, apd__ld64(nd + NODE_HDR + ksize), dsize);
    if (nflags & NF_SUBDATA)
        for (int d = 0; d < 2; d++)
            if (ksize == strlen(sub_names[d]) && !memcmp(nd + NODE_HDR, sub_names[d], ksize)) {
                memcpy(c->sub[d], nd + NODE_HDR + ksize, DB_REC);
                c->have_sub[d] = 1;
            }
    return APD_OK;
}

/* Page pg at level (1 = root) of the current tree; every key in it must be in [lo, hi)
 * (NULL: unbounded). Recursion depth is bounded by MAX_DEPTH. */
static apd_status walk(lc *c, uint64_t pg, uint32_t level, const uint8_t *lo, size_t lol,
                       const uint8_t *hi, size_t hil)
{
    const apd__lmdb_snap *s = c->s;
    if (pg < 2 || pg > s->last_pgno)
        return lc_fail(c, APD_ECORRUPT, "LMDB database \"%s\": a page pointer names page %llu, outside 2..%llu",
                       c->tree, (unsigned long long)pg, (unsigned long long)s->last_pgno);
    APD_TRY(mark(c, pg, 1));
    uint8_t *p = malloc(s->psize);
    if (!p) return lc_fail(c, APD_ENOMEM, "out of memory checking the LMDB pages");
    apd_status st = read_at(c, p, s->psize, pg * s->psize, pg);
    if (st) {
        free(p);
        return st;
    }
    int branch = level < c->depth;
    uint32_t flags = apd__ld16(p + 10), lower = apd__ld16(p + 12), upper = apd__ld16(p + 14);
    uint32_t n = lower >= PG_HDR ? (lower - PG_HDR) / 2 : 0;
    if (apd__ld64(p) != pg) {
        st = lc_fail(c, APD_ECORRUPT,
                     "LMDB page %llu (database \"%s\", level %u): its header names page %llu (page "
                     "overwritten, moved or zeroed)", (unsigned long long)pg, c->tree, level,
                     (unsigned long long)apd__ld64(p));
        goto out;
    }
    if (flags != (branch ? PF_BRANCH : PF_LEAF) || lower < PG_HDR || (lower - PG_HDR) % 2 ||
        upper < lower || upper > s->psize || n < (branch ? 2u : 1u)) {
        st = lc_fail(c, APD_ECORRUPT,
                     "LMDB page %llu (database \"%s\", level %u of %u): flags 0x%x, lower %u, upper %u "
                     "do not make a %s page", (unsigned long long)pg, c->tree, level, c->depth, flags,
                     lower, upper, branch ? "branch" : "leaf");
        goto out;
    }
    const uint8_t *prev = NULL;
    size_t prevl = 0;
    for (uint32_t i = 0; i < n && !st; i++) {
        uint32_t off = apd__ld16(p + PG_HDR + 2 * i);
        uint32_t ksize = off >= upper && off + NODE_HDR <= s->psize ? apd__ld16(p + off + 6) : 0;
        if (off < upper || (uint64_t)off + NODE_HDR + ksize > s->psize) {
            st = lc_fail(c, APD_ECORRUPT, "LMDB page %llu (database \"%s\"): node %u at offset %u (key %u bytes) is "
                         "outside the node area %u..%llu", (unsigned long long)pg, c->tree, i, off, ksize,
                         upper, (unsigned long long)s->psize);
            break;
        }
        const uint8_t *key = p + off + NODE_HDR;
        if (!(branch && i == 0)) { /* LMDB ignores a branch page's first key */
            if ((prev && key_cmp(prev, prevl, key, ksize) >= 0) || (lo && key_cmp(key, ksize, lo, lol) < 0) ||
                (hi && key_cmp(key, ksize, hi, hil) >= 0)) {
                st = lc_fail(c, APD_ECORRUPT, "LMDB page %llu (database \"%s\"): key %u out of order",
                             (unsigned long long)pg, c->tree, i);
                break;
            }
            prev = key;
            prevl = ksize;
        }
        if (!branch) {
            st = check_leaf_node(c, pg, p, i, off, ksize);
            continue;
        }
        const uint8_t *nd = p + off;
        uint64_t child = (uint64_t)apd__ld16(nd) | ((uint64_t)apd__ld16(nd + 2) << 16) |
                         ((uint64_t)apd__ld16(nd + 4) << 32);
        const uint8_t *clo = lo, *chi = hi;
        size_t clol = lol, chil = hil;
        if (i > 0) {
            clo = key;
            clol = ksize;
        }
        if (i + 1 < n) {
            uint32_t noff = apd__ld16(p + PG_HDR + 2 * (i + 1));
            if (noff < upper || noff + NODE_HDR > s->psize ||
                (uint64_t)noff + NODE_HDR + apd__ld16(p + noff + 6) > s->psize) {
                st = lc_fail(c, APD_ECORRUPT, "LMDB page %llu (database \"%s\"): node %u at offset %u is outside the page",
                             (unsigned long long)pg, c->tree, i + 1, noff);
                break;
            }
            chi = p + noff + NODE_HDR;
            chil = apd__ld16(p + noff + 6);
        }
        st = walk(c, child, level + 1, clo, clol, chi, chil);
    }
    if (!st) {
        if (branch) c->cnt.branch++;
        else c->cnt.leaf++;
    }
out:
    free(p);
    return st;
}

/* Walk one database tree from its record and compare the counts. */
static apd_status walk_db(lc *c, const char *name, const lc_db *d, int is_main)
{
    c->tree = name;
    c->is_main = is_main;
    memset(&c->cnt, 0, sizeof c->cnt);
    if (d->root == NO_PAGE) {
        if (d->depth || d->entries || d->branch || d->leaf || d->overflow)
            return lc_fail(c, APD_ECORRUPT, "LMDB database \"%s\": empty but its record counts %llu entries, depth %u",
                           name, (unsigned long long)d->entries, d->depth);
        return APD_OK;
    }
    if (d->depth < 1 || d->depth > MAX_DEPTH)
        return lc_fail(c, APD_ECORRUPT, "LMDB database \"%s\": depth %u", name, d->depth);
    c->depth = d->depth;
    APD_TRY(walk(c, d->root, 1, NULL, 0, NULL, 0));
    if (c->cnt.entries != d->entries || c->cnt.branch != d->branch || c->cnt.leaf != d->leaf ||
        c->cnt.overflow != d->overflow)
        return lc_fail(c, APD_ECORRUPT,
                       "LMDB database \"%s\": its record counts %llu entries in %llu branch, %llu leaf and "
                       "%llu overflow pages, the tree has %llu in %llu, %llu and %llu", name,
                       (unsigned long long)d->entries, (unsigned long long)d->branch,
                       (unsigned long long)d->leaf, (unsigned long long)d->overflow,
                       (unsigned long long)c->cnt.entries, (unsigned long long)c->cnt.branch,
                       (unsigned long long)c->cnt.leaf, (unsigned long long)c->cnt.overflow);
    return APD_OK;
}

/* Read and check meta page i (offset off); fills the page size, last pgno, txnid, main db. */
static apd_status read_meta(lc *c, int i, uint64_t off, uint64_t *psize, uint64_t *last, uint64_t *txnid,
                            lc_db *main_db)
{
    uint8_t m[PG_HDR + META_LEN];
    if ((uint64_t)c->s->file_size < off + sizeof m)
        return i == 0 ? lc_fail(c, APD_EMAGIC, "too short to be an LMDB file, so not an .apd file")
                      : lc_fail(c, APD_ETRUNC, "truncated: LMDB meta page 1 is missing");
    APD_TRY(read_at(c, m, sizeof m, off, (uint64_t)i));
    const uint8_t *b = m + PG_HDR;
    if (!(apd__ld16(m + 10) & PF_META) || apd__ld32(b) != LMDB_MAGIC)
        return i == 0 ? lc_fail(c, APD_EMAGIC, "not an LMDB file, so not an .apd file")
                      : lc_fail(c, APD_ECORRUPT, "LMDB meta page 1 is damaged (no LMDB meta page magic)");
    if (apd__ld32(b + 4) != LMDB_DATA_VERSION)
        return lc_fail(c, APD_EVERSION, "LMDB data version %u on meta page %d (this reader reads version %u)",
                       apd__ld32(b + 4), i, LMDB_DATA_VERSION);
    *psize = apd__ld32(b + 24); /* the free-page database's pad field */
    *last = apd__ld64(b + 120);
    *txnid = apd__ld64(b + 128);
    db_parse(b + 72, main_db);
    if (*psize < 512 || *psize > 65536 || (*psize & (*psize - 1)))
        return lc_fail(c, APD_ECORRUPT, "LMDB meta page %d is damaged: page size %llu", i, (unsigned long long)*psize);
    return APD_OK;
}

/* Both meta pages; the snapshot LMDB will read; the file size it needs. */
static apd_status check_metas(lc *c, lc_db *main_db)
{
    apd__lmdb_snap *s = c->s;
    uint64_t ps[2] = {0, 0}, last[2] = {0, 0}, tx[2] = {0, 0}; /* set by read_meta; zeroed for GCC -O3 */
    lc_db mains[2];
    APD_TRY(read_meta(c, 0, 0, &ps[0], &last[0], &tx[0], &mains[0]));
    APD_TRY(read_meta(c, 1, ps[0], &ps[1], &last[1], &tx[1], &mains[1]));
    if (ps[1] != ps[0])
        return lc_fail(c, APD_ECORRUPT, "LMDB meta pages disagree on the page size (%llu, %llu)",
                       (unsigned long long)ps[0], (unsigned long long)ps[1]);
    int m = tx[0] < tx[1]; /* as LMDB picks */
    s->meta_page = m;
    s->psize = ps[0];
    s->last_pgno = last[m];
    s->txnid = tx[m];
    *main_db = mains[m];
    size_t need;
    if (last[m] < 1 || last[m] >= UINT64_MAX / 2 || !apd__mul_ok((size_t)last[m] + 1, (size_t)s->psize, &need))
        return lc_fail(c, APD_ECORRUPT, "LMDB meta page %d is damaged: last page %llu", m, (unsigned long long)last[m]);
    if (s->file_size < need)
        return lc_fail(c, APD_ETRUNC,
                       "truncated: the file has %llu bytes but its LMDB meta page %d (transaction %llu) "
                       "needs %zu (%llu pages of %llu bytes)", (unsigned long long)s->file_size, m,
                       (unsigned long long)s->txnid, need, (unsigned long long)(last[m] + 1),
                       (unsigned long long)s->psize);
    return APD_OK;
}

apd_status apd__lmdb_check(const char *path, apd__lmdb_snap *snap, char *why, size_t cap)
{
    memset(snap, 0, sizeof *snap);
    if (cap) why[0] = 0;
    lc c = {.fd = -1, .s = snap, .why = why, .cap = cap, .tree = "main"};
    if (sizeof(size_t) != 8) return APD_OK; /* the layout above is LMDB's on 64-bit hosts */
    c.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c.fd < 0) {
        int e = errno;
        return lc_fail(&c, apd__status_from_errno(e), "opening: %s", strerror(e));
    }
    struct stat st;
    apd_status s = APD_OK;
    if (fstat(c.fd, &st) != 0) s = lc_fail(&c, APD_EIO, "fstat: %s", strerror(errno));
    snap->file_size = s ? 0 : (uint64_t)st.st_size;
    lc_db main_db;
    if (!s) s = check_metas(&c, &main_db);
    if (!s && main_db.flags)
        s = lc_fail(&c, APD_EFOREIGN, "LMDB main database has flags 0x%x: not an .apd file", main_db.flags);
    if (!s) {
        c.seen = calloc((size_t)(snap->last_pgno / 8 + 1), 1);
        if (!c.seen) s = lc_fail(&c, APD_ENOMEM, "out of memory checking the LMDB pages");
        else {
            c.seen[0] = 3; /* the meta pages */
            snap->pages_reached = 2;
        }
    }
    if (!s) s = walk_db(&c, "main", &main_db, 1);
    for (int d = 0; d < 2 && !s; d++) {
        if (!c.have_sub[d]) continue; /* the reader reports the missing database */
        lc_db sub;
        db_parse(c.sub[d], &sub);
        if (sub.flags)
            s = lc_fail(&c, APD_ECORRUPT, "LMDB database \"%s\" has flags 0x%x (an .apd database has none)",
                        sub_names[d], sub.flags);
        else
            s = walk_db(&c, sub_names[d], &sub, 0);
    }
    free(c.seen);
    close(c.fd);
    return s;
}
