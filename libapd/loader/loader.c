/* loader/loader.c: batching, seeded permutation, rank partition, state/resume, decode pool.
 *
 * The contract (order, partition, remainder rule, state) is stated in include/apd/loader.h;
 * this file implements it over an apd__loader_source (loader_internal.h).
 *
 * Structure
 *   - order[]: the global order of the current epoch (record indices), rebuilt from
 *     (seed, epoch) whenever either changes. Positions index it; the partition rule
 *     (apd_loader_partition) maps (cursor, step, rank) to positions.
 *   - jobs: one per batch in flight. A job decodes one batch of this rank into a buffer
 *     (the caller's when prefetch = 0, its own slot when prefetch > 0). It is split into
 *     chunks of images that the worker threads and the waiting caller claim under one
 *     mutex. Results never depend on which thread decoded what: every image goes to a
 *     fixed place and errors are reported for the lowest failing position.
 *   - state: (seed, epoch, base cursor, steps consumed since base). Changing the state
 *     cancels in-flight jobs (no new chunks are claimed; claimed ones finish) first.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "common/rng.h"
#include "common/kernels.h"
#include "loader/loader_internal.h"

#define APD_LOADER_MAX_PREFETCH 64
#define APD_LOADER_MAX_THREADS 256

typedef struct ld_job {
    int active;           /* queued or decoding, not yet consumed */
    int canceled;         /* no more chunks may be claimed */
    uint64_t step;        /* step index relative to the loader's base cursor */
    uint32_t n;           /* images in this batch */
    uint64_t *rec;        /* [batch] record index per image */
    int64_t *lab;         /* [batch] labels */
    uint8_t *bad;         /* [batch] 1 = corrupt record skipped */
    uint8_t *img;         /* destination of image 0 (NULL = labels only) */
    uint8_t *own_img;     /* slot buffer (prefetch mode) */
    uint32_t chunk, n_chunks, next_chunk, done_chunks;
    apd_status err;       /* first error (lowest image position) */
    uint32_t err_at;
    char err_msg[512];
} ld_job;

typedef struct ld_scratch {
    uint8_t pal[APD_MAX_COLORS * 3];
    uint8_t *idx;         /* h*w */
    uint8_t *chw;         /* c*h*w */
} ld_scratch;

struct apd_loader {
    apd__loader_source src;
    char path[256];
    apd_loader_opts o;
    uint32_t c, h, w;
    size_t hw, img_bytes;
    float mean[3], std[3];
    uint64_t *sel;        /* ascending selection (NULL = all records) */
    uint64_t n;           /* |selection| */
    uint64_t *order;      /* [n] record index per position of the current epoch */
    uint64_t seed, epoch, base, consumed;
    uint64_t skipped;
    uint64_t *soft_idx;   /* [batch] indices for apd_loader_next_soft (allocated on first use) */
    int64_t *soft_lab;    /* [batch] labels for it */
    int poisoned;
    char msg[512];
    /* decode pool */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    int stop;
    pthread_t *th;
    uint32_t n_th;        /* threads started */
    ld_scratch *scr;      /* n_scr = threads asked + 1; the caller uses scr[n_scr - 1] */
    uint32_t n_scr;
    ld_job *jobs;
    uint32_t n_jobs;
    int pool_ok;
};

/* ---- pure rules ------------------------------------------------------------------------ */

uint64_t apd_loader_partition(uint64_t n, uint64_t cursor, uint32_t batch, uint32_t world,
                              int drop_last, uint32_t rank, uint64_t step, uint64_t *first_pos,
                              uint32_t *count)
{
    if (first_pos) *first_pos = 0;
    if (count) *count = 0;
    if (batch == 0 || world == 0 || rank >= world || cursor >= n) return 0;
    uint64_t per = (uint64_t)batch * world;
    uint64_t left = n - cursor, full = left / per, rem = left % per;
    uint64_t steps = full + (!drop_last && rem > 0);
    if (step >= steps) return steps;
    if (step < full) {
        if (first_pos) *first_pos = cursor + step * per + (uint64_t)rank * batch;
        if (count) *count = batch;
    } else {
        uint64_t b = (rem + world - 1) / world; /* same size on every rank, wraps past n */
        if (first_pos) *first_pos = (n - rem) + (uint64_t)rank * b;
        if (count) *count = (uint32_t)b;
    }
    return steps;
}

void apd_loader_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint64_t epoch, int shuffle)
{
    for (uint64_t i = 0; i < n; i++) perm[i] = i;
    if (shuffle) {
        apd__rng r;
        apd__rng_seed(&r, seed, epoch);
        apd__rng_shuffle_u64(&r, perm, (size_t)n);
    }
}

/* Global cursor after `steps` steps from base. */
static uint64_t cursor_after(const apd_loader *l, uint64_t steps)
{
    uint64_t per = (uint64_t)l->o.batch_size * l->o.world_size;
    uint64_t total = apd_loader_partition(l->n, l->base, l->o.batch_size, l->o.world_size,
                                          (int)l->o.drop_last, 0, 0, NULL, NULL);
    if (steps >= total) return total ? l->n : l->base;
    return l->base + steps * per;
}

static uint64_t steps_total(const apd_loader *l)
{
    return apd_loader_partition(l->n, l->base, l->o.batch_size, l->o.world_size,
                                (int)l->o.drop_last, l->o.rank, 0, NULL, NULL);
}

static void build_order(apd_loader *l)
{
    for (uint64_t p = 0; p < l->n; p++) l->order[p] = l->sel ? l->sel[p] : p;
    if (l->o.shuffle) {
        apd__rng r;
        apd__rng_seed(&r, l->seed, l->epoch);
        apd__rng_shuffle_u64(&r, l->order, (size_t)l->n);
    }
}

static void set_msg(apd_loader *l, const char *fmt, ...) APD__PRINTF(2, 3);
static void set_msg(apd_loader *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->msg, sizeof l->msg, fmt, ap);
    va_end(ap);
}

/* Corrupt-data codes that skip_corrupt may skip; anything else (memory, I/O) still fails. */
static int is_data_error(apd_status s)
{
    return s == APD_ECHECKSUM || s == APD_ECORRUPT || s == APD_ETRUNC || s == APD_ENOTFOUND ||
           s == APD_ELIMIT || s == APD_EMAGIC;
}

/* ---- per-image decode -------------------------------------------------------------------- */

/* Records prefetched ahead of the one being decoded (stage 1; stage 0 twice as far). With
 * shuffled order each record is a cache miss; prefetching took the float32 loader from ~0.47
 * to ~0.6 of the write limit in a min-of-30-epochs measurement (distances 2-4 alike). */
#define PREFETCH_AHEAD 3u

static apd_status decode_one(apd_loader *l, ld_scratch *s, uint64_t rec, uint8_t *dst,
                             uint32_t *label, char *msg, size_t msg_len)
{
    const apd__loader_source *src = &l->src;
    if (!dst) return src->label(src->ctx, rec, label, msg, msg_len);
    uint32_t c = l->c;
    size_t hw = l->hw;
    if (src->palette && src->use_records) {
        /* Palette + unpacked indices: the shared palette kernels at 8 bits per index. */
        uint32_t k = 0;
        APD_TRY(src->record(src->ctx, rec, s->pal, &k, s->idx, label, msg, msg_len));
        int bad = k == 0 || k > APD_MAX_COLORS;
        if (!bad && l->o.output == APD_OUT_F32_CHW)
            bad = apd__pal_decode_f32(APD__IMPL_AUTO, s->idx, hw, 8, s->pal, k, c, l->mean,
                                      l->std, (float *)dst) != 0;
        else if (!bad)
            bad = apd__pal_decode(APD__IMPL_AUTO, s->idx, hw, 8, s->pal, k, c,
                                  l->o.output == APD_OUT_U8_CHW, dst) != 0;
        if (bad) {
            snprintf(msg, msg_len, "%s: record %llu: palette size %u out of 1..%u, or an index "
                     ">= it", l->path, (unsigned long long)rec, k, APD_MAX_COLORS);
            return APD_ECORRUPT;
        }
        return APD_OK;
    }
    switch (l->o.output) {
    case APD_OUT_U8_CHW: return src->decode(src->ctx, rec, 1, dst, l->img_bytes, label, msg, msg_len);
    case APD_OUT_U8_HWC: return src->decode(src->ctx, rec, 0, dst, l->img_bytes, label, msg, msg_len);
    default:
        /* Fast path: the source decodes straight to float (files: apd_reader_decode_f32,
         * bit-identical to the two-pass path below; tests/format checks it). */
        if (src->decode_f32)
            return src->decode_f32(src->ctx, rec, l->mean, l->std, (float *)dst,
                                   (size_t)c * hw, label, msg, msg_len);
        /* uint8 CHW into L1-resident scratch, then one convert pass (3 roundings, the same
         * bits as the palette LUT and as numpy's (v/255 - mean)/std in float32). */
        APD_TRY(src->decode(src->ctx, rec, 1, s->chw, (size_t)c * hw, label, msg, msg_len));
        for (uint32_t ch = 0; ch < c; ch++)
            apd__u8_norm_f32(APD__IMPL_AUTO, s->chw + ch * hw, hw, l->mean[ch], l->std[ch],
                             (float *)dst + ch * hw);
        return APD_OK;
    }
}

/* Records per call of the source's decode_batch: enough to group the index-coded records
 * (the reader decodes them eight at a time) and to prefetch the next group meanwhile; small
 * enough that a group's records stay in L1/L2 between the prefetch and the decode. */
#define LD_GROUP 16u

/* The batch call's output mode for this loader, or -1 when records go one at a time
 * (labels only, the use_records path, a source without decode_batch, or float output from a
 * source whose floats come from the two-pass path). */
static int batch_mode(const apd_loader *l, const ld_job *j)
{
    const apd__loader_source *src = &l->src;
    if (!j->img || !src->decode_batch || (src->palette && src->use_records)) return -1;
    switch (l->o.output) {
    case APD_OUT_U8_HWC: return 0;
    case APD_OUT_U8_CHW: return 1;
    default: return src->decode_f32 ? 2 : -1;
    }
}

/* Record the outcome of image i (status st, message msg) in j and the chunk's first error. */
static void chunk_note(const apd_loader *l, ld_job *j, uint32_t i, apd_status st, uint32_t lab, const char *msg,
                       apd_status *first, uint32_t *first_at, char *first_msg, size_t cap)
{
    j->lab[i] = (int64_t)lab;
    j->bad[i] = 0;
    if (st == APD_OK) return;
    if (l->o.skip_corrupt && is_data_error(st)) {
        j->bad[i] = 1;
        return;
    }
    if (*first != APD_OK) return;
    *first = st;
    *first_at = i;
    if (msg[0])
        snprintf(first_msg, cap, "%s", msg);
    else
        snprintf(first_msg, cap, "%s: record %llu: %s", l->path, (unsigned long long)j->rec[i], apd_strerror(st));
}

/* Images [a, b) of job j in groups of LD_GROUP through the source's decode_batch; a record
 * that fails is decoded again alone, which gives its message (and the same status). */
static void run_groups(apd_loader *l, ld_scratch *s, ld_job *j, uint32_t a, uint32_t b, int mode, apd_status *first,
                       uint32_t *first_at, char *first_msg, size_t cap)
{
    const apd__loader_source *src = &l->src;
    uint32_t labs[LD_GROUP];
    apd_status sts[LD_GROUP];
    char msg[512];
    for (uint32_t g = a; g < b; g += LD_GROUP) {
        uint32_t n = b - g < LD_GROUP ? b - g : LD_GROUP;
        if (src->prefetch) { /* stage 1 one group ahead, stage 0 two groups ahead */
            if (g == a)
                for (uint32_t i = g; i < b && i < g + 2 * LD_GROUP; i++) src->prefetch(src->ctx, j->rec[i], i < g + n);
            for (uint32_t i = g + n; i < b && i < g + n + LD_GROUP; i++) src->prefetch(src->ctx, j->rec[i], 1);
            for (uint32_t i = g + n + LD_GROUP; i < b && i < g + n + 2 * LD_GROUP; i++)
                src->prefetch(src->ctx, j->rec[i], 0);
        }
        memset(labs, 0, sizeof labs);
        src->decode_batch(src->ctx, j->rec + g, n, mode, l->mean, l->std, j->img + (size_t)g * l->img_bytes,
                          l->img_bytes, labs, sts);
        for (uint32_t q = 0; q < n; q++) {
            apd_status st = sts[q];
            msg[0] = 0;
            if (st != APD_OK) {
                labs[q] = 0;
                st = decode_one(l, s, j->rec[g + q], j->img + (size_t)(g + q) * l->img_bytes, &labs[q], msg,
                                sizeof msg);
            }
            chunk_note(l, j, g + q, st, labs[q], msg, first, first_at, first_msg, cap);
        }
    }
}

/* Decode chunk `ch` of job j (no lock held). Errors are merged into j under the lock. */
static void run_chunk(apd_loader *l, ld_scratch *s, ld_job *j, uint32_t ch)
{
    uint32_t a = ch * j->chunk, b = a + j->chunk;
    if (b > j->n) b = j->n;
    apd_status first = APD_OK;
    uint32_t first_at = 0;
    char msg[512];
    char first_msg[512];
    first_msg[0] = 0;
    int mode = batch_mode(l, j);
    if (mode >= 0) {
        run_groups(l, s, j, a, b, mode, &first, &first_at, first_msg, sizeof first_msg);
    } else {
        for (uint32_t i = a; i < b; i++) {
            uint32_t lab = 0;
            msg[0] = 0;
            uint8_t *dst = j->img ? j->img + (size_t)i * l->img_bytes : NULL;
            /* Hide the shuffled records' memory latency (offset slot, then record bytes). */
            if (dst && l->src.prefetch) {
                uint32_t a1 = i + PREFETCH_AHEAD, a2 = i + 2 * PREFETCH_AHEAD;
                if (a2 < b) l->src.prefetch(l->src.ctx, j->rec[a2], 0);
                if (a1 < b) l->src.prefetch(l->src.ctx, j->rec[a1], 1);
            }
            apd_status st = decode_one(l, s, j->rec[i], dst, &lab, msg, sizeof msg);
            chunk_note(l, j, i, st, lab, msg, &first, &first_at, first_msg, sizeof first_msg);
        }
    }
    if (first != APD_OK) {
        pthread_mutex_lock(&l->mu);
        if (j->err == APD_OK || first_at < j->err_at) {
            j->err = first;
            j->err_at = first_at;
            memcpy(j->err_msg, first_msg, sizeof j->err_msg);
        }
        pthread_mutex_unlock(&l->mu);
    }
}

/* ---- pool ---------------------------------------------------------------------------------- */

/* Active job with unclaimed chunks and the lowest step, or NULL. Lock held. */
static ld_job *pick_job(apd_loader *l)
{
    ld_job *best = NULL;
    for (uint32_t i = 0; i < l->n_jobs; i++) {
        ld_job *j = &l->jobs[i];
        if (j->active && !j->canceled && j->next_chunk < j->n_chunks && (!best || j->step < best->step))
            best = j;
    }
    return best;
}

typedef struct ld_worker_arg {
    apd_loader *l;
    uint32_t id;
} ld_worker_arg;

static void *worker_main(void *arg)
{
    ld_worker_arg *wa = arg;
    apd_loader *l = wa->l;
    ld_scratch *s = &l->scr[wa->id];
    free(wa);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (l->stop) break;
        ld_job *j = pick_job(l);
        if (!j) {
            pthread_cond_wait(&l->cv_work, &l->mu);
            continue;
        }
        uint32_t ch = j->next_chunk++;
        pthread_mutex_unlock(&l->mu);
        run_chunk(l, s, j, ch);
        pthread_mutex_lock(&l->mu);
        j->done_chunks++;
        if (j->done_chunks == j->next_chunk) pthread_cond_broadcast(&l->cv_done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Wait until every claimed chunk of j finished and (unless canceled) all chunks ran; the
 * caller decodes unclaimed chunks itself meanwhile. Lock held. */
static void wait_job(apd_loader *l, ld_job *j)
{
    ld_scratch *s = &l->scr[l->n_scr - 1];
    for (;;) {
        if (!j->canceled && j->next_chunk < j->n_chunks) {
            uint32_t ch = j->next_chunk++;
            pthread_mutex_unlock(&l->mu);
            run_chunk(l, s, j, ch);
            pthread_mutex_lock(&l->mu);
            j->done_chunks++;
            continue;
        }
        if (j->done_chunks == j->next_chunk) return;
        pthread_cond_wait(&l->cv_done, &l->mu);
    }
}

/* Cancel every job in flight and wait for claimed chunks. Lock held. */
static void cancel_all(apd_loader *l)
{
    for (uint32_t i = 0; i < l->n_jobs; i++) {
        ld_job *j = &l->jobs[i];
        if (!j->active) continue;
        j->canceled = 1;
        while (j->done_chunks != j->next_chunk) pthread_cond_wait(&l->cv_done, &l->mu);
        j->active = 0;
    }
}

static uint32_t decoders(const apd_loader *l)
{
    return l->n_th + 1;
}

/* Set up job j for step `step` (relative to base) into dst. Lock held. */
static void queue_job(apd_loader *l, ld_job *j, uint64_t step, uint8_t *dst)
{
    uint64_t first = 0;
    uint32_t cnt = 0;
    (void)apd_loader_partition(l->n, l->base, l->o.batch_size, l->o.world_size,
                               (int)l->o.drop_last, l->o.rank, step, &first, &cnt);
    for (uint32_t i = 0; i < cnt; i++) j->rec[i] = l->order[(first + i) % l->n];
    j->active = 1;
    j->canceled = 0;
    j->step = step;
    j->n = cnt;
    j->img = dst;
    uint32_t dec = decoders(l);
    uint32_t chunk = dec <= 1 ? cnt : (cnt + 4 * dec - 1) / (4 * dec);
    if (chunk < 1) chunk = 1;
    if (chunk > 64 && dec > 1) chunk = 64;
    j->chunk = chunk;
    j->n_chunks = cnt ? (cnt + chunk - 1) / chunk : 0;
    j->next_chunk = j->done_chunks = 0;
    j->err = APD_OK;
    j->err_at = 0;
    j->err_msg[0] = 0;
    if (l->n_th && j->n_chunks) pthread_cond_broadcast(&l->cv_work);
}

/* Prefetch mode: make sure the next `prefetch` steps are queued. Lock held. */
static void fill_prefetch(apd_loader *l)
{
    uint64_t total = steps_total(l);
    for (uint64_t s = l->consumed; s < l->consumed + l->n_jobs && s < total; s++) {
        ld_job *j = &l->jobs[s % l->n_jobs];
        if (j->active) continue;
        queue_job(l, j, s, j->own_img);
    }
}

/* ---- state --------------------------------------------------------------------------------- */

static void reset_stream(apd_loader *l, uint64_t seed, uint64_t epoch, uint64_t cursor)
{
    pthread_mutex_lock(&l->mu);
    cancel_all(l);
    int rebuild = seed != l->seed || epoch != l->epoch;
    l->seed = seed;
    l->epoch = epoch;
    l->base = cursor;
    l->consumed = 0;
    l->poisoned = 0;
    if (rebuild) build_order(l);
    pthread_mutex_unlock(&l->mu);
}

void apd_loader_get_state(const apd_loader *l, apd_loader_state *st)
{
    st->seed = l->seed;
    st->epoch = l->epoch;
    st->cursor = cursor_after(l, l->consumed);
    st->n = l->n;
}

apd_status apd_loader_set_state(apd_loader *l, const apd_loader_state *st)
{
    if (!l) return APD_EINVAL;
    if (!st) {
        set_msg(l, "%s: set_state: NULL state", l->path);
        return APD_EINVAL;
    }
    if (st->n != l->n) {
        set_msg(l, "%s: state is for %llu samples per epoch, this loader has %llu (other file or "
                   "class subset?)", l->path, (unsigned long long)st->n, (unsigned long long)l->n);
        return APD_EMISMATCH;
    }
    if (st->cursor > st->n) {
        set_msg(l, "%s: state cursor %llu > %llu samples", l->path, (unsigned long long)st->cursor,
                (unsigned long long)st->n);
        return APD_EINVAL;
    }
    reset_stream(l, st->seed, st->epoch, st->cursor);
    return APD_OK;
}

apd_status apd_loader_set_epoch(apd_loader *l, uint64_t epoch)
{
    if (!l) return APD_EINVAL;
    reset_stream(l, l->seed, epoch, 0);
    return APD_OK;
}

/* ---- queries ------------------------------------------------------------------------------- */

const char *apd_loader_errmsg(const apd_loader *l) { return l ? l->msg : ""; }

void apd_loader_shape(const apd_loader *l, uint32_t *c, uint32_t *h, uint32_t *w)
{
    if (c) *c = l->c;
    if (h) *h = l->h;
    if (w) *w = l->w;
}

size_t apd_loader_image_bytes(const apd_loader *l) { return l->img_bytes; }
size_t apd_loader_batch_bytes(const apd_loader *l) { return l->img_bytes * l->o.batch_size; }
uint64_t apd_loader_num_samples(const apd_loader *l) { return l->n; }
uint64_t apd_loader_skipped(const apd_loader *l) { return l->skipped; }

uint64_t apd_loader_batches_per_epoch(const apd_loader *l)
{
    return apd_loader_partition(l->n, 0, l->o.batch_size, l->o.world_size, (int)l->o.drop_last,
                                l->o.rank, 0, NULL, NULL);
}

uint64_t apd_loader_batches_left(const apd_loader *l)
{
    uint64_t t = steps_total(l);
    return t > l->consumed ? t - l->consumed : 0;
}

void apd_loader_norm(const apd_loader *l, float mean[3], float std[3])
{
    for (int i = 0; i < 3; i++) {
        mean[i] = l->mean[i];
        std[i] = l->std[i];
    }
}

/* ---- next ---------------------------------------------------------------------------------- */

apd_status apd_loader_next(apd_loader *l, void *images, size_t images_len, int64_t *labels,
                           uint64_t *indices, size_t *n_out)
{
    if (!l || !n_out) return APD_EINVAL;
    *n_out = 0;
    if (l->poisoned) {
        set_msg(l, "%s: loader stopped after an earlier error (restore a state to continue)",
                l->path);
        return APD_EBADSTATE;
    }
    uint64_t total = steps_total(l);
    if (l->consumed >= total) { /* end of epoch */
        reset_stream(l, l->seed, l->epoch + 1, 0);
        return APD_OK;
    }
    uint64_t first = 0;
    uint32_t cnt = 0;
    (void)apd_loader_partition(l->n, l->base, l->o.batch_size, l->o.world_size,
                               (int)l->o.drop_last, l->o.rank, l->consumed, &first, &cnt);
    if (images && images_len / l->img_bytes < cnt) {
        set_msg(l, "%s: image buffer of %zu bytes is too small for %u images of %zu bytes",
                l->path, images_len, cnt, l->img_bytes);
        return APD_EBUFSIZE;
    }

    pthread_mutex_lock(&l->mu);
    ld_job *j;
    int slot = l->o.prefetch > 0;
    if (!slot) {
        j = &l->jobs[0];
        queue_job(l, j, l->consumed, images);
    } else {
        fill_prefetch(l);
        j = &l->jobs[l->consumed % l->n_jobs];
    }
    wait_job(l, j);
    if (j->err != APD_OK) {
        apd_status st = j->err;
        snprintf(l->msg, sizeof l->msg, "%s", j->err_msg);
        j->active = 0;
        l->poisoned = 1;
        pthread_mutex_unlock(&l->mu);
        return st;
    }
    pthread_mutex_unlock(&l->mu);

    /* Copy out, leaving skipped records out (stable order). */
    size_t o = 0;
    for (uint32_t i = 0; i < j->n; i++) {
        if (j->bad[i]) {
            l->skipped++;
            continue;
        }
        if (labels) labels[o] = j->lab[i];
        if (indices) indices[o] = j->rec[i];
        if (images && (slot || o != i))
            memmove((uint8_t *)images + o * l->img_bytes, j->img + (size_t)i * l->img_bytes,
                    l->img_bytes);
        o++;
    }
    *n_out = o;

    pthread_mutex_lock(&l->mu);
    j->active = 0;
    l->consumed++;
    if (slot) fill_prefetch(l);
    pthread_mutex_unlock(&l->mu);
    return APD_OK;
}

uint32_t apd_loader_num_classes(const apd_loader *l) { return l ? l->src.n_classes : 0; }
int apd_loader_has_soft_labels(const apd_loader *l) { return l ? (int)l->src.has_soft : 0; }

apd_status apd_loader_next_soft(apd_loader *l, void *images, size_t images_len, int64_t *labels,
                                float *soft, size_t soft_len, uint64_t *indices, size_t *n_out)
{
    if (!l || !n_out) return APD_EINVAL;
    *n_out = 0;
    const size_t K = l->src.n_classes, B = l->o.batch_size;
    if (soft && K == 0) {
        set_msg(l, "%s: soft labels asked for, but the data has no classes", l->path);
        return APD_EUNSUPPORTED;
    }
    if (soft && soft_len / K < B) {
        set_msg(l, "%s: soft-label buffer of %zu floats is too small for %zu samples of %zu classes",
                l->path, soft_len, B, K);
        return APD_EBUFSIZE;
    }
    if (soft && ((!indices && !l->soft_idx) || (!labels && !l->soft_lab))) {
        if (!l->soft_idx) l->soft_idx = malloc(B * sizeof *l->soft_idx);
        if (!l->soft_lab) l->soft_lab = malloc(B * sizeof *l->soft_lab);
        if (!l->soft_idx || !l->soft_lab) {
            set_msg(l, "%s: out of memory", l->path);
            return APD_ENOMEM;
        }
    }
    uint64_t *idx = indices ? indices : l->soft_idx;
    int64_t *lab = labels ? labels : l->soft_lab;
    APD_TRY(apd_loader_next(l, images, images_len, soft ? lab : labels, soft ? idx : indices, n_out));
    if (!soft) return APD_OK;
    for (size_t o = 0; o < *n_out; o++) {
        float *v = soft + o * K;
        if (!l->src.soft) { /* a source without soft labels: one-hot */
            for (size_t j = 0; j < K; j++) v[j] = (int64_t)j == lab[o] ? 1.0f : 0.0f;
            continue;
        }
        char msg[512] = "";
        apd_status st = l->src.soft(l->src.ctx, idx[o], v, msg, sizeof msg);
        if (st != APD_OK) { /* the batch was consumed: stop, as after a decode error */
            snprintf(l->msg, sizeof l->msg, "%s", msg);
            l->poisoned = 1;
            *n_out = 0;
            return st;
        }
    }
    return APD_OK;
}

/* ---- open / close -------------------------------------------------------------------------- */

void apd_loader_opts_default(apd_loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch_size = 256;
    o->shuffle = 1;
    o->world_size = 1;
    o->threads = 1;
    o->output = APD_OUT_F32_CHW;
    for (int i = 0; i < 3; i++) {
        o->mean[i] = 0.0f;
        o->std[i] = 1.0f;
    }
}

void apd_loader_close(apd_loader *l)
{
    if (!l) return;
    if (l->pool_ok) {
        pthread_mutex_lock(&l->mu);
        cancel_all(l);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv_work);
        pthread_mutex_unlock(&l->mu);
        for (uint32_t i = 0; i < l->n_th; i++) pthread_join(l->th[i], NULL);
        pthread_cond_destroy(&l->cv_work);
        pthread_cond_destroy(&l->cv_done);
        pthread_mutex_destroy(&l->mu);
    }
    if (l->jobs)
        for (uint32_t i = 0; i < l->n_jobs; i++) {
            free(l->jobs[i].rec);
            free(l->jobs[i].lab);
            free(l->jobs[i].bad);
            free(l->jobs[i].own_img);
        }
    if (l->scr)
        for (uint32_t i = 0; i < l->n_scr; i++) {
            free(l->scr[i].idx);
            free(l->scr[i].chw);
        }
    free(l->jobs);
    free(l->scr);
    free(l->th);
    free(l->sel);
    free(l->order);
    free(l->soft_idx);
    free(l->soft_lab);
    if (l->src.close) l->src.close(l->src.ctx);
    free(l);
}

static apd_status check_opts(const apd_loader_opts *o, const apd__loader_source *src,
                             const char *path, apd_err *err)
{
    if (o->batch_size == 0)
        return apd__err_set(err, APD_EINVAL, "%s: batch_size must be >= 1", path);
    if (o->world_size == 0 || o->rank >= o->world_size)
        return apd__err_set(err, APD_EINVAL, "%s: rank %u is not in [0, world_size %u)", path,
                            o->rank, o->world_size);
    if (o->output > APD_OUT_F32_CHW)
        return apd__err_set(err, APD_EINVAL, "%s: unknown output layout %u", path, o->output);
    if (o->prefetch > APD_LOADER_MAX_PREFETCH)
        return apd__err_set(err, APD_EINVAL, "%s: prefetch %u > %d", path, o->prefetch,
                            APD_LOADER_MAX_PREFETCH);
    if (o->threads > APD_LOADER_MAX_THREADS)
        return apd__err_set(err, APD_EINVAL, "%s: threads %u > %d", path, o->threads,
                            APD_LOADER_MAX_THREADS);
    if (o->reserved != 0) return apd__err_set(err, APD_EINVAL, "%s: reserved option field set", path);
    if (o->n_classes_subset && !o->classes)
        return apd__err_set(err, APD_EINVAL, "%s: class subset of %u entries but NULL list", path,
                            o->n_classes_subset);
    for (uint32_t i = 0; i < o->n_classes_subset; i++)
        if (src->n_classes && o->classes[i] >= src->n_classes)
            return apd__err_set(err, APD_EINVAL, "%s: class %u out of range (file has %u classes)",
                                path, o->classes[i], src->n_classes);
    if (o->custom_norm)
        for (uint32_t ch = 0; ch < src->c && ch < 3; ch++)
            if (!(o->std[ch] > 0.0f))
                return apd__err_set(err, APD_EINVAL, "%s: std[%u] must be > 0", path, ch);
    if (src->c != 1 && src->c != 3)
        return apd__err_set(err, APD_EUNSUPPORTED, "%s: %u channels (loader supports 1 or 3)", path,
                            src->c);
    return APD_OK;
}

/* The selection S for a class subset (ascending record indices). */
static apd_status select_classes(apd_loader *l, apd_err *err)
{
    if (!l->o.n_classes_subset) {
        l->n = l->src.n_records;
        return APD_OK;
    }
    uint64_t N = l->src.n_records;
    size_t bytes;
    if (!apd__mul_ok((size_t)N, sizeof(uint64_t), &bytes) || !(l->sel = malloc(bytes ? bytes : 1)))
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory for the class selection", l->path);
    uint64_t n = 0;
    char msg[512];
    for (uint64_t i = 0; i < N; i++) {
        uint32_t lab = 0;
        msg[0] = 0;
        apd_status st = l->src.label(l->src.ctx, i, &lab, msg, sizeof msg);
        if (st != APD_OK) {
            if (l->o.skip_corrupt && is_data_error(st)) {
                l->skipped++;
                continue;
            }
            return apd__err_set(err, st, "%s", msg[0] ? msg : apd_strerror(st));
        }
        for (uint32_t k = 0; k < l->o.n_classes_subset; k++)
            if (l->o.classes[k] == lab) {
                l->sel[n++] = i;
                break;
            }
    }
    l->n = n;
    return APD_OK;
}

static apd_status start_pool(apd_loader *l, apd_err *err)
{
    uint32_t t = l->o.threads ? l->o.threads : 1;
    uint32_t n_th = l->o.prefetch ? t : t - 1;
    l->n_jobs = l->o.prefetch ? l->o.prefetch : 1;
    size_t B = l->o.batch_size;
    if (!(l->jobs = calloc(l->n_jobs, sizeof *l->jobs)) ||
        !(l->scr = calloc((size_t)n_th + 1, sizeof *l->scr)) ||
        !(l->th = calloc(n_th ? n_th : 1, sizeof *l->th)))
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", l->path);
    l->n_th = 0;
    l->n_scr = n_th + 1;
    for (uint32_t i = 0; i < l->n_jobs; i++) {
        ld_job *j = &l->jobs[i];
        size_t ib;
        if (!(j->rec = malloc(B * sizeof *j->rec)) || !(j->lab = malloc(B * sizeof *j->lab)) ||
            !(j->bad = calloc(B, 1)))
            return apd__err_set(err, APD_ENOMEM, "%s: out of memory", l->path);
        if (l->o.prefetch) {
            if (!apd__mul_ok(B, l->img_bytes, &ib) || !(j->own_img = malloc(ib)))
                return apd__err_set(err, APD_ENOMEM, "%s: out of memory for %u prefetch buffers",
                                    l->path, l->n_jobs);
        }
    }
    for (uint32_t i = 0; i <= n_th; i++)
        if (!(l->scr[i].idx = malloc(l->hw)) || !(l->scr[i].chw = malloc((size_t)l->c * l->hw)))
            return apd__err_set(err, APD_ENOMEM, "%s: out of memory", l->path);
    if (pthread_mutex_init(&l->mu, NULL) != 0)
        return apd__err_set(err, APD_EIO, "%s: pthread_mutex_init failed", l->path);
    if (pthread_cond_init(&l->cv_work, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        return apd__err_set(err, APD_EIO, "%s: pthread_cond_init failed", l->path);
    }
    if (pthread_cond_init(&l->cv_done, NULL) != 0) {
        pthread_cond_destroy(&l->cv_work);
        pthread_mutex_destroy(&l->mu);
        return apd__err_set(err, APD_EIO, "%s: pthread_cond_init failed", l->path);
    }
    l->pool_ok = 1;
    for (uint32_t i = 0; i < n_th; i++) {
        ld_worker_arg *wa = malloc(sizeof *wa);
        if (!wa) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", l->path);
        wa->l = l;
        wa->id = i;
        int rc = apd__thread_start(&l->th[i], worker_main, wa);
        if (rc != 0) {
            free(wa);
            return apd__err_set(err, APD_EIO, "%s: cannot start decode thread %u: %s", l->path, i,
                                strerror(rc));
        }
        l->n_th = i + 1;
    }
    return APD_OK;
}

apd_status apd__loader_open_source(apd_loader **out, const apd__loader_source *src,
                                   const char *path, const apd_loader_opts *opts, apd_err *err)
{
    if (out) *out = NULL;
    if (!out || !src) {
        if (src && src->close) src->close(src->ctx);
        return apd__err_set(err, APD_EINVAL, "apd_loader_open: NULL argument");
    }
    apd_loader_opts def;
    if (!opts) {
        apd_loader_opts_default(&def);
        opts = &def;
    }
    apd_status st = check_opts(opts, src, path ? path : "", err);
    if (st != APD_OK) {
        if (src->close) src->close(src->ctx);
        return st;
    }
    apd_loader *l = calloc(1, sizeof *l);
    if (!l) {
        if (src->close) src->close(src->ctx);
        return apd__err_set(err, APD_ENOMEM, "apd_loader_open: out of memory");
    }
    l->src = *src;
    snprintf(l->path, sizeof l->path, "%s", path ? path : "");
    l->o = *opts;
    l->o.classes = NULL;
    l->c = src->c;
    l->h = src->h;
    l->w = src->w;
    size_t px;
    if (!apd__mul_ok(src->h, src->w, &l->hw) || !apd__mul_ok(l->hw, src->c, &px) ||
        !apd__mul_ok(px, opts->output == APD_OUT_F32_CHW ? sizeof(float) : 1, &l->img_bytes) ||
        l->img_bytes == 0) {
        apd_loader_close(l);
        return apd__err_set(err, APD_EOVERFLOW, "%s: bad image size", l->path);
    }
    for (uint32_t ch = 0; ch < 3; ch++) {
        l->mean[ch] = opts->custom_norm ? opts->mean[ch] : src->mean[ch];
        l->std[ch] = opts->custom_norm ? opts->std[ch] : src->std[ch];
        if (ch < l->c && !(l->std[ch] > 0.0f)) l->std[ch] = 1.0f; /* file without stats */
    }
    /* The class list is only read during open (copied into the selection). */
    l->o.classes = opts->classes;
    st = select_classes(l, err);
    l->o.classes = NULL;
    if (st == APD_OK) {
        size_t ob;
        if (!apd__mul_ok((size_t)l->n, sizeof(uint64_t), &ob) || !(l->order = malloc(ob ? ob : 1)))
            st = apd__err_set(err, APD_ENOMEM, "%s: out of memory for the order of %llu samples",
                              l->path, (unsigned long long)l->n);
    }
    if (st == APD_OK) st = start_pool(l, err);
    if (st != APD_OK) {
        apd_loader_close(l);
        return st;
    }
    l->seed = opts->seed;
    l->epoch = opts->epoch;
    build_order(l);
    *out = l;
    return APD_OK;
}
