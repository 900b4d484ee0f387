/* distill/budget_fit.c: the `bytes` budget rule's measurements (apd/budget.h).
 *
 * The rule counts what the writer really stores, so it is measured with the writer itself:
 * records are written through the public writer API (the options apd_distill_writer_opts
 * gives: compression and index coding AUTO, the defaults every distillation file is written
 * with) into a scratch file, and read back with the reader (apd_reader_record_bytes per
 * record, apd_reader_stats for the shared tables). Nothing else would be exact: whether a
 * file is zstd-compressed or entropy-coded (format 1.1), its model and which records end up
 * coded are all decided by the writer on the records themselves.
 *
 * Two steps, both in apd_distill_run:
 *  1. estimate (before distilling, when the number of synthetic images must be fixed): a
 *     seeded sample of real images per class is quantized to K colours (the method's
 *     quantizer: k-means for stored palettes, median cut for the palette network) and measured; the
 *     count is the largest that fits every class at that class's measured bytes per image;
 *  2. fit (after distilling): the synthetic records are measured; while a class's stored
 *     bytes plus its share of the shared tables exceed the budget, every class drops its last
 *     images (the count stays equal across classes) and the records are measured again.
 * Step 2 is what guarantees the final file fits: the writer is deterministic, so writing the
 * same records with the same options stores the same bytes.
 *
 * Scratch files: mkstemp in opts.scratch_dir (else $TMPDIR, else /tmp), removed at once.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "distill/distill_internal.h"

/* Records to measure: palette records of one geometry (class-major or not). */
typedef struct fit_records {
    uint64_t n;
    const uint8_t *pal;      /* n * k*c */
    const uint32_t *k_used;  /* n */
    const uint8_t *idx;      /* n * h*w */
    const uint32_t *labels;  /* n */
    const uint64_t *sids;    /* n, source ids as stored */
} fit_records;

/* Write recs with the distillation writer options into a scratch file, read back the stored
 * bytes of each class's records (per_class[n_classes]) and the shared tables' bytes. */
static apd_status measure(const apd_distill_ctx *x, const fit_records *recs, uint64_t *per_class,
                          uint64_t *shared, uint64_t *coded, apd_err *err)
{
    const char *dir = x->o->scratch_dir;
    if (!dir || !*dir) dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t plen = strlen(dir) + 32;
    char *path = malloc(plen);
    if (!path) return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    snprintf(path, plen, "%s/apd-budget-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        apd_status s = apd__err_sys(err, errno, dir, "distill: bytes budget: cannot create a scratch file");
        free(path);
        return s;
    }
    close(fd);

    apd_writer_opts wo;
    apd_distill_result shape = {0};
    shape.c = x->c; shape.h = x->h; shape.w = x->w; shape.n_classes = x->n_classes;
    shape.kind = APD_KIND_PALETTE; shape.k = x->k;
    memcpy(shape.mean, x->mean, sizeof shape.mean);
    memcpy(shape.std, x->std, sizeof shape.std);
    apd_distill_writer_opts(&wo, &shape, NULL);
    wo.force = 1;      /* over the empty file mkstemp reserved */
    wo.no_sync = 1;    /* scratch: durability does not matter */
    wo.no_compact = 1; /* compaction moves LMDB pages, never record bytes */

    apd_writer *w = NULL;
    apd_reader *r = NULL;
    apd_err werr;
    size_t p = (size_t)x->h * x->w, pc = (size_t)x->k * x->c;
    apd_status s = apd_writer_create(&w, path, &wo, &werr);
    for (uint64_t i = 0; s == APD_OK && i < recs->n; i++)
        s = apd_writer_put_palette(w, recs->pal + i * pc, recs->k_used[i], recs->idx + i * p, recs->labels[i],
                                   recs->sids[i]);
    if (w && s != APD_OK) {
        snprintf(werr.msg, sizeof werr.msg, "%s", apd_writer_errmsg(w));
        apd_writer_discard(w); /* removes its temporaries */
    } else if (w)
        s = apd_writer_finish(w, &werr);
    if (s == APD_OK) s = apd_reader_open(&r, path, NULL, &werr);
    memset(per_class, 0, x->n_classes * sizeof *per_class);
    for (uint64_t i = 0; s == APD_OK && i < recs->n; i++) {
        uint64_t b = 0;
        uint32_t label = 0;
        s = apd_reader_record_bytes(r, i, &b);
        if (s == APD_OK) s = apd_reader_label(r, i, &label);
        if (s == APD_OK && label < x->n_classes) per_class[label] += b;
    }
    apd_file_stats st;
    if (s == APD_OK) s = apd_reader_stats(r, &st);
    if (s == APD_OK) {
        *shared = st.imodel_bytes + st.dict_bytes;
        if (coded) *coded = st.coded_records;
    } else
        apd__err_set(err, s, "distill: bytes budget: measuring %llu records in scratch file %s failed: %s",
                     (unsigned long long)recs->n, path, r ? apd_reader_errmsg(r) : werr.msg);
    apd_reader_close(r);
    unlink(path);
    free(path);
    return s;
}

/* Share of the shared tables charged to each class. */
static uint64_t class_share(uint64_t shared, uint32_t n_classes)
{
    return shared / n_classes + (shared % n_classes != 0);
}

/* Step 1. A seeded sample of S real images per class, S = max(16, the bits rule's count)
 * capped by the class size, quantized to K and measured; x->images_per_class = the smallest
 * over classes of apd_budget_measured's count. */
apd_status apd__budget_estimate(apd_distill_ctx *x, apd_err *err)
{
    const apd_distill_opts *o = x->o;
    apd_distill_source *real = x->src;
    apd_budget bd;
    if (apd_budget_compute(&bd, APD_BUDGET_BITS, o->ipc, x->k, x->c, x->h, x->w) != APD_OK)
        return apd__err_set(err, APD_EINVAL, "distill: bad budget (ipc %u, K %u)", o->ipc, x->k);
    uint64_t S = bd.images_per_class < 16 ? 16 : bd.images_per_class;
    for (uint32_t cls = 0; cls < x->n_classes; cls++)
        if (apd_distill_source_class_count(real, cls) < S) S = apd_distill_source_class_count(real, cls);
    if (S == 0) return apd__err_set(err, APD_EINVAL, "distill: a class has no images");

    uint64_t n = S * x->n_classes;
    size_t img = (size_t)x->c * x->h * x->w, p = (size_t)x->h * x->w, pc = (size_t)x->k * x->c;
    uint8_t *pal = calloc((size_t)n, pc), *idx = malloc((size_t)n * p);
    uint32_t *k_used = malloc((size_t)n * sizeof *k_used), *labels = malloc((size_t)n * sizeof *labels);
    uint64_t *sids = malloc((size_t)n * sizeof *sids), *per_class = malloc(x->n_classes * sizeof *per_class);
    uint64_t *order = malloc((size_t)real->n * sizeof *order);
    uint8_t *im8 = malloc(img); /* a decoded record of an .apd source */
    apd_status s = APD_OK;
    if (!pal || !idx || !k_used || !labels || !sids || !per_class || !order || !im8)
        s = apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    /* the quantizer that will make the records: the method's (stored palettes: k-means by
     * default), else median cut (the palette network's colour-guided init) */
    apd_quantizer q = o->quantizer >= 0 ? (apd_quantizer)o->quantizer : APD_QUANT_MEDIAN_CUT;
    if (apd__distill_stored(o))
        q = apd__distill_stored_quantizer(o);
    for (uint32_t cls = 0; s == APD_OK && cls < x->n_classes; cls++) {
        /* the class's image ids, ascending */
        uint64_t m = apd_distill_source_class_count(real, cls);
        memcpy(order, real->cls_ids + real->cls_off[cls], (size_t)m * sizeof *order);
        apd__rng rng;
        apd__rng_seed(&rng, x->seed, 0x6279746573ull /* "bytes" */ * 1000 + cls);
        for (uint64_t t = 0; t < S && s == APD_OK; t++) {
            uint64_t j = t + apd__rng_below(&rng, m - t);
            uint64_t tmp = order[t];
            order[t] = order[j];
            order[j] = tmp;
            uint64_t at = cls * S + t, src = order[t];
            labels[at] = cls;
            sids[at] = apd__dsrc_source_id(real, src);
            const uint8_t *im;
            s = apd__dsrc_image(real, src, im8, &im, err);
            if (s != APD_OK) break;
            s = apd_quantize_image(q, im, x->c, x->h, x->w, x->k, apd__mix64(x->seed ^ at),
                                   pal + at * pc, idx + at * p, &k_used[at]);
            if (s != APD_OK) apd__err_set(err, s, "distill: bytes budget: quantizing real image %llu failed",
                                          (unsigned long long)src);
        }
    }
    uint64_t shared = 0;
    if (s == APD_OK) {
        fit_records recs = {n, pal, k_used, idx, labels, sids};
        s = measure(x, &recs, per_class, &shared, NULL, err);
    }
    uint64_t best = UINT64_MAX, worst_bpi = 0;
    for (uint32_t cls = 0; s == APD_OK && cls < x->n_classes; cls++) {
        apd_budget m;
        s = apd_budget_measured(&m, o->ipc, x->k, x->c, x->h, x->w, S, per_class[cls],
                                class_share(shared, x->n_classes));
        if (s != APD_OK) {
            apd__err_set(err, s, "distill: bytes budget: class %u measured %llu bytes", cls,
                         (unsigned long long)per_class[cls]);
            break;
        }
        if (m.images_per_class < best) best = m.images_per_class;
        if (m.bytes_per_image > worst_bpi) worst_bpi = m.bytes_per_image;
    }
    if (s == APD_OK) {
        x->images_per_class = best;
        x->bf.estimated = best;
        x->bf.sample = S;
        x->bf.sample_bytes_per_image = worst_bpi;
        x->bf.sample_shared = shared;
        x->bf.quantizer = q;
    }
    free(pal); free(idx); free(k_used); free(labels); free(sids); free(per_class); free(order); free(im8);
    return s;
}

/* Keep the first `keep` images of each class (class-major records, images_per_class each). */
static void trim(apd_distill_ctx *x, apd_distill_result *res, uint64_t keep)
{
    uint64_t old = res->images_per_class;
    size_t p = (size_t)x->h * x->w, pc = (size_t)res->k * x->c;
    for (uint32_t cls = 0; cls < x->n_classes; cls++)
        for (uint64_t t = 0; t < keep; t++) {
            uint64_t from = cls * old + t, to = cls * keep + t;
            memmove(res->palettes + to * pc, res->palettes + from * pc, pc);
            memmove(res->indices + to * p, res->indices + from * p, p);
            res->k_used[to] = res->k_used[from];
            res->labels[to] = res->labels[from];
            res->source_ids[to] = res->source_ids[from];
        }
    res->images_per_class = keep;
    res->n = keep * x->n_classes;
    x->images_per_class = keep;
}

/* Step 2: measure the synthetic records and trim until every class fits (or one image per
 * class is left, over_budget then). Fills x->bf with the final figures. */
apd_status apd__budget_fit(apd_distill_ctx *x, apd_distill_result *res, apd_err *err)
{
    apd_budget bd;
    if (apd_budget_compute(&bd, APD_BUDGET_BITS, x->o->ipc, x->k, x->c, x->h, x->w) != APD_OK)
        return apd__err_set(err, APD_EINVAL, "distill: bad budget");
    uint64_t budget = bd.budget_bytes;
    uint64_t *sids = malloc((size_t)res->n * sizeof *sids);
    x->bf.per_class = calloc(x->n_classes, sizeof *x->bf.per_class);
    if (!sids || !x->bf.per_class) {
        free(sids);
        return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    }
    apd_status s = APD_OK;
    for (uint32_t round = 1;; round++) {
        /* the source ids as apd_distill_write stores them */
        for (uint64_t i = 0; i < res->n; i++) {
            uint64_t sid = res->source_ids[i];
            sids[i] = sid < x->src->n ? apd__dsrc_source_id(x->src, sid) : sid;
        }
        fit_records recs = {res->n, res->palettes, res->k_used, res->indices, res->labels, sids};
        uint64_t shared = 0, coded = 0;
        s = measure(x, &recs, x->bf.per_class, &shared, &coded, err);
        if (s != APD_OK) break;
        uint64_t share = class_share(shared, x->n_classes), worst = 0;
        for (uint32_t cls = 0; cls < x->n_classes; cls++)
            if (x->bf.per_class[cls] + share > worst) worst = x->bf.per_class[cls] + share;
        x->bf.rounds = round;
        x->bf.shared = shared;
        x->bf.share = share;
        x->bf.coded = coded;
        x->bf.worst = worst;
        uint64_t n = res->images_per_class;
        if (worst <= budget || n <= 1) break;
        /* the count each class would afford at its measured bytes per image; at least one
           fewer than now, so that the loop ends */
        uint64_t keep = n - 1, room = budget > share ? budget - share : 0;
        for (uint32_t cls = 0; cls < x->n_classes; cls++) {
            uint64_t b = x->bf.per_class[cls];
            uint64_t afford = b ? (uint64_t)((double)room * (double)n / (double)b) : n;
            if (afford < keep) keep = afford;
        }
        if (keep < 1) keep = 1;
        apd__distill_log(x->o, "bytes budget: largest class stores %llu B > %llu B with %llu images per class; "
                               "keeping %llu", (unsigned long long)worst, (unsigned long long)budget,
                         (unsigned long long)n, (unsigned long long)keep);
        trim(x, res, keep);
    }
    free(sids);
    return s;
}
