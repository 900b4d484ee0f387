/* corrupt_campaign.c: damages .apd files in every way a disk, a copy or a download can, and
 * checks that nothing that reads them crashes, hangs or returns wrong pixels.
 *
 * Base files (written here with the library): palette records stored inline in LMDB leaf
 * pages (with a metadata document large enough for an overflow page), palette chunks in
 * overflow pages, a zstd-compressed file with a trained dictionary, and a direct-colour file.
 * Each is damaged by: truncation at every page boundary and inside every page, zeroing each
 * page, copying a page over another, swapping two pages, random bit flips (anywhere, and in
 * the structural bytes of meta, branch and leaf pages), and rewriting page pointers (branch
 * children, overflow page numbers, the main root) to other pages.
 *
 * Every damaged file is read by the reader API in a child process (open, info, stats, every
 * record through decode, decode_f32, label, source_id, record, verify_record, then a loader
 * epoch that skips corrupt records). The child must exit cleanly: a decode that succeeds
 * must give the pristine pixels and label (or those of the intact record of another slot
 * that a copied page put in its place: a record's CRC does not bind it to its index, see
 * spec section 9; counted separately), and every error message must name the file.
 * Samples also go to the tools (apd-info, apd-info --verify, apd-export, apd-eval) and to the
 * Python binding (tests/format/corrupt_python.py): their exit must be 0 or 1 with the file
 * named on error, never a signal. Truncated files must all be refused at open.
 *
 * usage: corrupt_campaign BINDIR [PYTHON_SCRIPT]      (BINDIR holds the tools and libapd.so)
 *        corrupt_campaign --replay FILE.apd BASE      (BASE: inline|overflow|zstd|direct)
 * APD_CORRUPT_LONG=1 (scripts/reliability-long.sh) runs the long form: 8x the random cases,
 * every page pair swapped for small files. APD_CORRUPT_SEED=S changes the seed (default 1).
 * Exit 0 iff 0 crashes, 0 hangs, 0 wrong results and 0 messages without the file name.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/loader.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "common/rng.h"

enum { EX_CLEAN = 0, EX_OPEN_ERR = 10, EX_REC_ERR = 11, EX_MOVED = 12, EX_NO_NAME = 3, EX_WRONG = 4, EX_SETUP = 5 };
enum { K_TRUNC_PAGE, K_TRUNC_IN, K_ZERO, K_DUP, K_SWAP, K_FLIP, K_FLIP_STRUCT, K_POINTER, K_COUNT };
static const char *const kind_names[K_COUNT] = {"truncate@page", "truncate-in-page", "zero-page", "dup-page",
                                               "swap-pages", "bit-flip", "struct-flip", "page-pointer"};

typedef struct base {
    const char *name;
    char path[512];
    uint8_t *bytes;
    size_t size, psize, pages;
    uint8_t *page_type; /* LMDB page flags of each page's header (0 for overflow data pages) */
    uint64_t n;
    size_t img;
    uint8_t *golden;    /* n * img bytes, HWC */
    uint32_t *labels;
    uint64_t *sids;
} base;

typedef struct tally {
    unsigned long cases, clean, open_err, rec_err, moved, crash, hang, wrong, no_name;
    unsigned long tool_runs, tool_bad, py_files;
} tally;

static char g_dir[64];
static const char *g_bindir;
static int g_long;

static void die(const char *m)
{
    fprintf(stderr, "corrupt_campaign: %s\n", m);
    exit(2);
}

/* ---- base files ------------------------------------------------------------------------- */

static void smooth_image(apd__rng *r, uint32_t c, uint32_t h, uint32_t w, uint8_t *chw, int levels)
{
    uint32_t a = (uint32_t)apd__rng_below(r, 4), b = (uint32_t)apd__rng_below(r, 4);
    for (uint32_t ch = 0; ch < c; ch++)
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                uint32_t v = (a * x + b * y + 20 * ch) % (uint32_t)levels;
                chw[((size_t)ch * h + y) * w + x] = (uint8_t)(v * (255 / (levels - 1)));
            }
}

static void write_base(base *b, uint32_t kind, uint32_t c, uint32_t hw, uint32_t k, uint32_t per_chunk,
                       uint32_t n, apd_compress comp, int big_meta)
{
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = kind;
    o.c = c;
    o.h = o.w = hw;
    o.k = k;
    o.n_classes = 10;
    o.records_per_chunk = per_chunk;
    o.compress = comp;
    o.no_sync = 1;
    for (uint32_t ch = 0; ch < c; ch++) {
        o.mean[ch] = 0.5f;
        o.std[ch] = 0.25f;
    }
    apd_writer *w;
    apd_err err;
    if (apd_writer_create(&w, b->path, &o, &err) != APD_OK) die(err.msg);
    if (big_meta) { /* > 2 KB: the metadata document goes to an overflow page */
        char *v = malloc(4000);
        if (!v) die("out of memory");
        memset(v, 'x', 3998);
        v[0] = v[3997] = '"';
        v[3998] = 0;
        if (apd_writer_set_meta(w, "padding", v) != APD_OK) die(apd_writer_errmsg(w));
        free(v);
    }
    apd__rng r;
    apd__rng_seed(&r, 7, n);
    size_t npix = (size_t)hw * hw;
    uint8_t *chw = malloc(npix * c), *idx = malloc(npix), pal[768];
    if (!chw || !idx) die("out of memory");
    for (uint32_t i = 0; i < n; i++) {
        apd_status s;
        if (kind == APD_KIND_DIRECT) {
            for (size_t p = 0; p < npix * c; p++) chw[p] = (uint8_t)apd__rng_below(&r, 256);
            s = apd_writer_put_direct(w, chw, i % 10, i);
        } else if (comp == APD_COMPRESS_ON) {
            smooth_image(&r, c, hw, hw, chw, (int)k);
            s = apd_quantize_put(w, APD_QUANT_MEDIAN_CUT, chw, i % 10, i, i);
        } else {
            for (uint32_t e = 0; e < k * c; e++) pal[e] = (uint8_t)apd__rng_below(&r, 256);
            for (size_t p = 0; p < npix; p++) idx[p] = (uint8_t)apd__rng_below(&r, k);
            s = apd_writer_put_palette(w, pal, k, idx, i % 10, (i % 3) ? i : APD_NO_SOURCE_ID);
        }
        if (s != APD_OK) die(apd_writer_errmsg(w));
    }
    if (apd_writer_close(w) != APD_OK) die("closing a base file failed");
    free(chw);
    free(idx);
}

static void load_base(base *b)
{
    FILE *f = fopen(b->path, "rb");
    if (!f) die("cannot read a base file");
    fseek(f, 0, SEEK_END);
    b->size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b->bytes = malloc(b->size);
    if (!b->bytes || fread(b->bytes, 1, b->size, f) != b->size) die("cannot read a base file");
    fclose(f);
    b->psize = apd__ld32(b->bytes + 16 + 24); /* LMDB meta page: the page size */
    b->pages = b->size / b->psize;
    b->page_type = calloc(b->pages, 1);
    if (!b->page_type) die("out of memory");
    for (size_t p = 0; p < b->pages; p++) {
        const uint8_t *pg = b->bytes + p * b->psize;
        if (apd__ld64(pg) == p) b->page_type[p] = (uint8_t)apd__ld16(pg + 10);
    }
    apd_reader *r;
    apd_err err;
    if (apd_reader_open(&r, b->path, NULL, &err) != APD_OK) die(err.msg);
    apd_file_info fi;
    apd_reader_info(r, &fi);
    b->n = fi.n_records;
    b->img = (size_t)fi.c * fi.h * fi.w;
    b->golden = malloc(b->n * b->img);
    b->labels = malloc(b->n * sizeof *b->labels);
    b->sids = malloc(b->n * sizeof *b->sids);
    if (!b->golden || !b->labels || !b->sids) die("out of memory");
    for (uint64_t i = 0; i < b->n; i++)
        if (apd_reader_decode(r, i, APD_LAYOUT_HWC, b->golden + i * b->img, b->img, &b->labels[i]) != APD_OK ||
            apd_reader_source_id(r, i, &b->sids[i]) != APD_OK)
            die(apd_reader_errmsg(r));
    apd_reader_close(r);
}

/* ---- reading a damaged file (in a child) --------------------------------------------------- */

static int named(const char *msg, const char *path) { return strstr(msg, path) != NULL; }

/* The pristine record whose pixels, label and source id these are, or UINT64_MAX. */
static uint64_t same_as(const base *b, const uint8_t *img, uint32_t label, uint64_t sid)
{
    for (uint64_t j = 0; j < b->n; j++)
        if (b->labels[j] == label && b->sids[j] == sid && !memcmp(img, b->golden + j * b->img, b->img)) return j;
    return UINT64_MAX;
}

/* Every record through every read call. A decode that succeeds must give the pristine
 * record i, or (a limitation of the format, spec section 9, counted in *moved: a record's CRC
 * does not bind it to its slot) the intact record j of another slot that a copied page put at
 * the same offset. */
static int read_records(apd_reader *r, const base *b, const char *path, int *errors, int *moved)
{
    uint64_t n = apd_reader_count(r);
    if (n != b->n) return EX_WRONG; /* the header's count is CRC-protected */
    uint8_t *img = malloc(b->img), pal[768], *idx = malloc(b->img);
    float *f = malloc(b->img * sizeof *f);
    float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
    if (!img || !idx || !f) return EX_SETUP;
    int rc = EX_CLEAN;
    for (uint64_t i = 0; i < n && rc == EX_CLEAN; i++) {
        uint32_t label = UINT32_MAX, k;
        uint64_t sid = APD_NO_SOURCE_ID, j = i;
        apd_status s = apd_reader_decode(r, i, APD_LAYOUT_HWC, img, b->img, &label);
        if (s == APD_OK && (memcmp(img, b->golden + i * b->img, b->img) || label != b->labels[i])) {
            if (apd_reader_source_id(r, i, &sid) != APD_OK || (j = same_as(b, img, label, sid)) == UINT64_MAX)
                rc = EX_WRONG;
            else
                (*moved)++;
        }
        if (rc != EX_CLEAN) break;
        if (s != APD_OK && !named(apd_reader_errmsg(r), path)) rc = EX_NO_NAME;
        *errors += s != APD_OK;
        s = apd_reader_decode_f32(r, i, APD_LAYOUT_CHW, mean, std, f, b->img, &label);
        if (s == APD_OK && label != b->labels[j]) rc = EX_WRONG;
        s = apd_reader_label(r, i, &label);
        if (s == APD_OK && label != b->labels[j]) rc = EX_WRONG;
        s = apd_reader_source_id(r, i, &sid);
        if (s == APD_OK && sid != b->sids[j]) rc = EX_WRONG;
        s = apd_reader_record(r, i, pal, &k, idx, &label);
        if (s == APD_OK && label != b->labels[j]) rc = EX_WRONG;
        (void)apd_reader_verify_record(r, i);
    }
    free(img);
    free(idx);
    free(f);
    return rc;
}

static int read_loader(const char *path, int *errors)
{
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.batch_size = 64;
    o.skip_corrupt = 1;
    o.custom_norm = 1;
    o.mean[0] = o.mean[1] = o.mean[2] = 0.5f;
    o.std[0] = o.std[1] = o.std[2] = 0.25f;
    apd_loader *l;
    apd_err err;
    if (apd_loader_open(&l, path, &o, &err) != APD_OK) return named(err.msg, path) ? EX_CLEAN : EX_NO_NAME;
    void *x = malloc(apd_loader_batch_bytes(l));
    int64_t y[64];
    size_t got = 1;
    int rc = x ? EX_CLEAN : EX_SETUP;
    while (rc == EX_CLEAN && got) {
        if (apd_loader_next(l, x, apd_loader_batch_bytes(l), y, NULL, &got) != APD_OK) {
            (*errors)++;
            if (!named(apd_loader_errmsg(l), path)) rc = EX_NO_NAME;
            break;
        }
    }
    free(x);
    apd_loader_close(l);
    return rc;
}

static int exercise(const char *path, const base *b)
{
    apd_reader *r;
    apd_err err;
    if (apd_reader_open(&r, path, NULL, &err) != APD_OK) return named(err.msg, path) ? EX_OPEN_ERR : EX_NO_NAME;
    apd_file_info fi;
    apd_file_stats fs;
    int errors = 0, moved = 0;
    if (apd_reader_info(r, &fi) != APD_OK || !apd_reader_meta_json(r)) return EX_WRONG;
    if (apd_reader_stats(r, &fs) != APD_OK) errors++;
    int rc = read_records(r, b, path, &errors, &moved);
    apd_reader_close(r);
    if (rc == EX_CLEAN) rc = read_loader(path, &errors);
    return rc != EX_CLEAN ? rc : moved ? EX_MOVED : errors ? EX_REC_ERR : EX_CLEAN;
}

/* ---- mutations ---------------------------------------------------------------------------- */

static void put_file(const char *path, const uint8_t *p, size_t n)
{
    char lock[600];
    if ((size_t)snprintf(lock, sizeof lock, "%s-lock", path) >= sizeof lock) die("case file path too long");
    unlink(lock);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("cannot write a case file");
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, p + off, n - off);
        if (w <= 0) die("cannot write a case file");
        off += (size_t)w;
    }
    close(fd);
}

/* Apply mutation kind with parameters a, b (and the rng) to a copy of the base; *len the size. */
static void mutate(const base *b, int kind, size_t a, size_t c, apd__rng *r, uint8_t *buf, size_t *len)
{
    size_t ps = b->psize;
    memcpy(buf, b->bytes, b->size);
    *len = b->size;
    switch (kind) {
    case K_TRUNC_PAGE: *len = a * ps; break;
    case K_TRUNC_IN: *len = a * ps + 1 + (size_t)apd__rng_below(r, ps - 1); break;
    case K_ZERO: memset(buf + a * ps, 0, ps); break;
    case K_DUP: memcpy(buf + c * ps, b->bytes + a * ps, ps); break;
    case K_SWAP:
        memcpy(buf + a * ps, b->bytes + c * ps, ps);
        memcpy(buf + c * ps, b->bytes + a * ps, ps);
        break;
    case K_FLIP: buf[a] ^= (uint8_t)(1u << (c & 7)); break;
    case K_FLIP_STRUCT: { /* page a: its header, offset array, or a node header */
        uint8_t *pg = buf + a * ps;
        size_t lower = apd__ld16(pg + 12), off;
        if (c % 3 == 0 || (b->page_type[a] & 0x08)) off = (size_t)apd__rng_below(r, b->page_type[a] & 0x08 ? 160 : 16);
        else if (c % 3 == 1 && lower > 16 && lower <= ps) off = 16 + (size_t)apd__rng_below(r, lower - 16);
        else {
            size_t nodes = lower > 16 && lower <= ps ? (lower - 16) / 2 : 0;
            size_t no = nodes ? apd__ld16(pg + 16 + 2 * apd__rng_below(r, nodes)) : 16;
            off = (no + (size_t)apd__rng_below(r, 8)) % ps;
        }
        pg[off] ^= (uint8_t)(1u << apd__rng_below(r, 8));
        break;
    }
    case K_POINTER: { /* page a: point a branch child, an overflow value or the main root elsewhere */
        uint8_t *pg = buf + a * ps;
        uint64_t target = 2 + apd__rng_below(r, b->pages - 2);
        if (b->page_type[a] & 0x08) {
            apd__st64(pg + 16 + 72 + 40, target);
            break;
        }
        size_t lower = apd__ld16(pg + 12), nodes = lower > 16 && lower <= ps ? (lower - 16) / 2 : 0;
        if (!nodes) break;
        size_t no = apd__ld16(pg + 16 + 2 * apd__rng_below(r, nodes));
        if (no + 16 > ps) break;
        uint8_t *nd = pg + no;
        if (b->page_type[a] & 0x01) {
            apd__st16(nd, (uint16_t)target);
            apd__st16(nd + 2, (uint16_t)(target >> 16));
        } else if (apd__ld16(nd + 4) & 0x01) {
            size_t ks = apd__ld16(nd + 6);
            if (no + 8 + ks + 8 <= ps) apd__st64(nd + 8 + ks, target);
        } else {
            nd[0] ^= 0x80; /* an inline value: its size instead */
        }
        break;
    }
    }
}

/* Run argv (a tool) with stdout+stderr to out; returns the wait status. */
static int run_tool(char *const argv[], const char *out)
{
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(EX_SETUP);
        dup2(fd, 1);
        dup2(fd, 2);
        alarm(60);
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
}

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, needle) != NULL;
}

/* The tools on the current case: exit 0 or 1 (with the file named), never a signal. */
static void tools_on(const char *path, const base *b, int with_eval, tally *t, const char *what)
{
    char tool[4][600], out[600], pngdir[600], testset[600];
    snprintf(out, sizeof out, "%s/tool.txt", g_dir);
    snprintf(pngdir, sizeof pngdir, "%s/png", g_dir);
    snprintf(testset, sizeof testset, "idx:%s/test-img.idx,%s/test-lab.idx", g_dir, g_dir);
    for (int i = 0; i < 4; i++)
        snprintf(tool[i], sizeof tool[i], "%s/%s", g_bindir, i == 3 ? "apd-eval" : i == 2 ? "apd-export" : "apd-info");
    /* execv wants char *const []: writable copies of every argument */
    char cpath[600], verify[] = "--verify", json[] = "--json", png[] = "--png", test[] = "--test",
         epochs[] = "--epochs", runs_[] = "--runs", width[] = "--width", threads[] = "--threads",
         nodsa[] = "--no-dsa", batch[] = "--batch", limit[] = "--limit", one[] = "1", four[] = "4", b64[] = "64";
    snprintf(cpath, sizeof cpath, "%s", path);
    char *runs[5][16] = {
        {tool[0], cpath, NULL},
        {tool[1], verify, cpath, NULL},
        {tool[1], json, cpath, NULL},
        {tool[2], cpath, png, pngdir, limit, b64, NULL},
        {tool[3], cpath, test, testset, epochs, one, runs_, one, width, four, threads, one, nodsa, batch, b64, NULL},
    };
    int n = with_eval && !strcmp(b->name, "zstd") ? 5 : 4;
    for (int i = 0; i < n; i++) {
        int st = run_tool(runs[i], out);
        t->tool_runs++;
        int ok = WIFEXITED(st) && (WEXITSTATUS(st) == 0 || (WEXITSTATUS(st) == 1 && file_has(out, path)));
        if (!ok) {
            t->tool_bad++;
            if (WIFSIGNALED(st)) t->crash++;
            fprintf(stderr, "TOOL FAILURE %s on %s (%s): %s %d\n", runs[i][0], b->name, what,
                    WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        }
    }
}

static int run_case(const char *path, const base *b, int *sig)
{
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        alarm(60);
        _exit(exercise(path, b));
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    *sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* One case: build, read in a child, classify; keep crashing inputs. */
static void one_case(const base *b, int kind, size_t a, size_t c, apd__rng *r, uint8_t *buf, tally *t,
                     tally *tk, int tools, int py)
{
    char path[600], what[200];
    size_t len;
    mutate(b, kind, a, c, r, buf, &len);
    snprintf(path, sizeof path, "%s/case.apd", g_dir);
    put_file(path, buf, len);
    snprintf(what, sizeof what, "%s a=%zu b=%zu", kind_names[kind], a, c);
    int sig, rc = run_case(path, b, &sig);
    tally *ts[2] = {t, tk};
    for (int i = 0; i < 2; i++) {
        tally *x = ts[i];
        x->cases++;
        if (rc == EX_CLEAN) x->clean++;
        else if (rc == EX_OPEN_ERR) x->open_err++;
        else if (rc == EX_REC_ERR) x->rec_err++;
        else if (rc == EX_MOVED) x->moved++;
        else if (sig == SIGALRM) x->hang++;
        else if (sig) x->crash++;
        else if (rc == EX_WRONG) x->wrong++;
        else if (rc == EX_NO_NAME) x->no_name++;
        else x->crash++;
    }
    int truncated = kind == K_TRUNC_PAGE || kind == K_TRUNC_IN;
    if (!(rc == EX_CLEAN || rc == EX_OPEN_ERR || rc == EX_REC_ERR || rc == EX_MOVED) ||
        (truncated && rc != EX_OPEN_ERR)) {
        static int kept;
        char keep[600];
        snprintf(keep, sizeof keep, "%s/fail-%d-%s.apd", g_dir, kept++, b->name);
        put_file(keep, buf, len);
        fprintf(stderr, "FAILURE on %s (%s): exit %d signal %d; kept as %s\n", b->name, what, rc, sig, keep);
        if (truncated && rc != EX_OPEN_ERR) t->wrong++, tk->wrong++;
    }
    if (tools) tools_on(path, b, tools > 1, t, what);
    if (py) {
        char pp[600];
        snprintf(pp, sizeof pp, "%s/py/%s-%05lu.apd", g_dir, b->name, t->py_files++);
        put_file(pp, buf, len);
    }
}

static void campaign(const base *b, uint64_t seed, tally *t)
{
    apd__rng r;
    apd__rng_seed(&r, seed, (uint64_t)b->size);
    uint8_t *buf = malloc(b->size);
    if (!buf) die("out of memory");
    tally tk[K_COUNT];
    memset(tk, 0, sizeof tk);
    size_t P = b->pages, mult = g_long ? 8 : 1, tick = 0;
#define CASE(kind, a, c)                                                                           \
    do {                                                                                           \
        tick++;                                                                                    \
        one_case(b, kind, a, c, &r, buf, t, &tk[kind], (tick % 23 == 0) + (tick % 161 == 0), tick % 7 == 0); \
    } while (0)
    for (size_t p = 0; p < P; p++) CASE(K_TRUNC_PAGE, p, 0);
    for (size_t p = 0; p < P; p++) CASE(K_TRUNC_IN, p, 0);
    for (size_t p = 0; p < P; p++) CASE(K_ZERO, p, 0);
    for (size_t p = 0; p < P; p++)
        for (size_t m = 0; m < mult; m++) {
            size_t q = (size_t)apd__rng_below(&r, P);
            if (q != p) CASE(K_DUP, p, q);
        }
    for (size_t p = 0; p < P; p++) {
        if (g_long && P <= 64) {
            for (size_t q = p + 1; q < P; q++) CASE(K_SWAP, p, q);
        } else {
            size_t q = (size_t)apd__rng_below(&r, P);
            if (q != p) CASE(K_SWAP, p, q);
        }
    }
    for (size_t i = 0; i < 2 * P * mult; i++) CASE(K_FLIP, (size_t)apd__rng_below(&r, b->size), i);
    for (size_t p = 0; p < P; p++) {
        if (!b->page_type[p]) continue; /* overflow data pages carry no structure */
        for (size_t i = 0; i < 4 * mult; i++) CASE(K_FLIP_STRUCT, p, i);
        if (b->page_type[p] & 0x0B)
            for (size_t i = 0; i < 2 * mult; i++) CASE(K_POINTER, p, i);
    }
#undef CASE
    printf("%-9s %4zu pages of %zu B, %llu records:\n", b->name, P, b->psize, (unsigned long long)b->n);
    for (int k = 0; k < K_COUNT; k++)
        printf("  %-17s %5lu cases: %5lu read cleanly, %5lu refused at open, %5lu with record errors, "
               "%lu with moved records, %lu crashes, %lu hangs, %lu wrong, %lu unnamed\n", kind_names[k], tk[k].cases,
               tk[k].clean, tk[k].open_err, tk[k].rec_err, tk[k].moved, tk[k].crash, tk[k].hang, tk[k].wrong,
               tk[k].no_name);
    free(buf);
}

static void write_idx_testset(void)
{
    char p[600];
    uint8_t hdr[16] = {0, 0, 8, 3, 0, 0, 0, 50, 0, 0, 0, 28, 0, 0, 0, 28};
    uint8_t *img = calloc(50, 28 * 28);
    uint8_t lab[58] = {0, 0, 8, 1, 0, 0, 0, 50};
    if (!img) die("out of memory");
    for (int i = 0; i < 50; i++) lab[8 + i] = (uint8_t)(i % 10);
    for (size_t i = 0; i < 50 * 28 * 28; i++) img[i] = (uint8_t)(i * 37);
    snprintf(p, sizeof p, "%s/test-img.idx", g_dir);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(hdr, 1, 16, f) != 16 || fwrite(img, 1, 50 * 28 * 28, f) != 50 * 28 * 28) die("idx");
    fclose(f);
    snprintf(p, sizeof p, "%s/test-lab.idx", g_dir);
    f = fopen(p, "wb");
    if (!f || fwrite(lab, 1, sizeof lab, f) != sizeof lab) die("idx");
    fclose(f);
    free(img);
}

static base g_bases[4] = {{.name = "inline"}, {.name = "overflow"}, {.name = "zstd"}, {.name = "direct"}};

static void make_bases(void)
{
    for (int i = 0; i < 4; i++) snprintf(g_bases[i].path, sizeof g_bases[i].path, "%s/%s.apd", g_dir, g_bases[i].name);
    write_base(&g_bases[0], APD_KIND_PALETTE, 3, 8, 4, 4, 600, APD_COMPRESS_OFF, 1);
    write_base(&g_bases[1], APD_KIND_PALETTE, 3, 16, 64, 6, 300, APD_COMPRESS_OFF, 0);
    write_base(&g_bases[2], APD_KIND_PALETTE, 1, 28, 16, 64, 640, APD_COMPRESS_ON, 0);
    write_base(&g_bases[3], APD_KIND_DIRECT, 3, 16, 0, 2, 120, APD_COMPRESS_OFF, 0);
    for (int i = 0; i < 4; i++) load_base(&g_bases[i]);
}

int main(int argc, char **argv)
{
    if (argc < 2) die("usage: corrupt_campaign BINDIR [PYTHON_SCRIPT] | --replay FILE BASE");
    snprintf(g_dir, sizeof g_dir, "/tmp/apd-corrupt-XXXXXX");
    if (!mkdtemp(g_dir)) die("mkdtemp");
    const char *lg = getenv("APD_CORRUPT_LONG"), *sd = getenv("APD_CORRUPT_SEED");
    g_long = lg && *lg && strcmp(lg, "0");
    uint64_t seed = sd && *sd ? strtoull(sd, NULL, 10) : 1;
    make_bases();
    if (!strcmp(argv[1], "--replay")) {
        if (argc < 4) die("usage: corrupt_campaign --replay FILE BASE");
        for (int i = 0; i < 4; i++)
            if (!strcmp(argv[3], g_bases[i].name)) {
                int rc = exercise(argv[2], &g_bases[i]);
                printf("replay %s: exit %d\n", argv[2], rc);
                return rc == EX_CLEAN || rc == EX_OPEN_ERR || rc == EX_REC_ERR || rc == EX_MOVED ? 0 : 1;
            }
        die("unknown base");
    }
    g_bindir = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    double t0 = apd__now();
    char pydir[600];
    snprintf(pydir, sizeof pydir, "%s/py", g_dir);
    if (mkdir(pydir, 0755) != 0) die("mkdir");
    write_idx_testset();
    tally t;
    memset(&t, 0, sizeof t);
    printf("corruption campaign (%s form, seed %llu) in %s\n", g_long ? "long" : "short", (unsigned long long)seed, g_dir);
    for (int i = 0; i < 4; i++) campaign(&g_bases[i], seed + (uint64_t)i, &t);
    int py_rc = 0;
    if (argc > 2) {
        char cmd[1500];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", argv[2], pydir);
        py_rc = system(cmd);
        py_rc = WIFEXITED(py_rc) ? WEXITSTATUS(py_rc) : 99;
    }
    printf("total: %lu damaged files read through the API: %lu read cleanly, %lu refused at open, %lu with "
           "record errors, %lu with an intact record of another slot in place of one (a copied page; a "
           "record's CRC does not bind it to its slot); %lu crashes, %lu hangs, %lu wrong results, %lu messages without the file "
           "name\n", t.cases, t.clean, t.open_err, t.rec_err, t.moved, t.crash, t.hang, t.wrong, t.no_name);
    printf("tools: %lu runs, %lu failures; python: %lu files (exit %d)\n", t.tool_runs, t.tool_bad, t.py_files, py_rc);
    int bad = t.crash || t.hang || t.wrong || t.no_name || t.tool_bad || (py_rc != 0 && py_rc != 77);
    if (!bad) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    }
    printf("%s (%.1f s)\n", bad ? "FAIL" : "PASS: 0 crashes, 0 hangs, 0 wrong results", apd__now() - t0);
    return bad ? 1 : 0;
}
