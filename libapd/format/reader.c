/* format/reader.c: apd_reader, the read-only view of an .apd file (apd/format.h).
 *
 * Open: the LMDB environment is opened MDB_RDONLY | MDB_NOSUBDIR | MDB_NOTLS, plus MDB_NOLOCK
 * unless a writer's lock file exists (env_open_readonly; spec section 3), so reading never
 * creates "PATH-lock". One read
 * transaction is begun at open and held until close: it pins a consistent snapshot (the
 * header count, the metadata and the chunks all come from the same commit) and keeps every
 * value pointer valid, so decoding needs no LMDB call once a chunk has been located.
 *
 * Chunks are located lazily: the first access to chunk c does one mdb_get under a mutex,
 * validates the chunk (CRC of its header and offset table, magic, count, offsets) and
 * publishes the pointer with a release store; later accesses are one acquire load. So
 * apd_reader_decode is thread-safe and costs: record CRC-32C + palette kernel.
 *
 * zstd-compressed records are decompressed per call with a DCtx from a small pool (mutex).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "format/format_internal.h"
#include "format/icode.h"
#include "format/lmdb_check.h"

typedef struct chunk_slot {
    _Atomic(uintptr_t) ptr; /* 0 = not yet resolved */
    _Atomic(size_t) len;    /* stored before ptr is published (two threads resolving the
                               same chunk store the same values) */
} chunk_slot;

#define DCTX_POOL 8

struct apd_reader {
    char *path;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi_meta, dbi_chunks;
    apd_limits lim;
    apd__header hdr;
    apd__geom g;
    apd__meta meta;
    char *json;
    size_t json_len;
    const uint8_t *dict;
    size_t dict_len;
    ZSTD_DDict *ddict;
    apd__imodel *imodel;  /* format 1.1 index model (meta/imodel), or NULL */
    uint64_t n_chunks;
    chunk_slot *chunks;
    pthread_mutex_t mu; /* chunk resolution (shared txn), error message, dctx pool */
    ZSTD_DCtx *dpool[DCTX_POOL];
    int n_dpool;
    _Atomic int poisoned;
    char msg[512];
};

static apd_status rfail(apd_reader *r, apd_status code, int poison, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static apd_status rfail(apd_reader *r, apd_status code, int poison, const char *fmt, ...)
{
    char tmp[440];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->mu);
    snprintf(r->msg, sizeof r->msg, "%s: %s", r->path, tmp);
    pthread_mutex_unlock(&r->mu);
    if (poison) atomic_store(&r->poisoned, 1);
    return code;
}

const char *apd_reader_errmsg(const apd_reader *r) { return r ? r->msg : ""; }

void apd_reader_close(apd_reader *r)
{
    if (!r) return;
    if (r->txn) mdb_txn_abort(r->txn);
    if (r->env) mdb_env_close(r->env);
    apd__meta_free(&r->meta);
    ZSTD_freeDDict(r->ddict);
    apd__imodel_free(r->imodel);
    free(r->imodel);
    for (int i = 0; i < r->n_dpool; i++) ZSTD_freeDCtx(r->dpool[i]);
    pthread_mutex_destroy(&r->mu);
    free(r->json);
    free(r->chunks);
    free(r->path);
    free(r);
}

static apd_status open_fail(apd_reader *r, apd_err *err, apd_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static apd_status open_fail(apd_reader *r, apd_err *err, apd_status code, const char *fmt, ...)
{
    char tmp[440];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    apd__err_set(err, code, "%s: %s", r->path ? r->path : "?", tmp);
    apd_reader_close(r);
    return code;
}

static apd_status get_meta(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *v)
{
    MDB_val k = {strlen(key), (void *)(uintptr_t)key};
    int rc = mdb_get(txn, dbi, &k, v);
    if (rc == MDB_NOTFOUND) return APD_ENOTFOUND;
    return rc ? APD_ELMDB : APD_OK;
}

static int env_open(apd_reader *r, const char *path, unsigned flags)
{
    int rc = mdb_env_create(&r->env);
    if (!rc) rc = mdb_env_set_maxdbs(r->env, 4);
    if (!rc) rc = mdb_env_open(r->env, path, flags, 0644);
    return rc; /* on failure r->env (if created) is closed by apd_reader_close */
}

static int lock_file_exists(const char *lockp)
{
    struct stat st;
    return lstat(lockp, &st) == 0;
}

/* Open the environment read-only without creating "PATH-lock" (spec section 3). LMDB's lock
 * file holds the reader table that keeps a committing writer from reusing pages of a
 * reader's snapshot; it is needed only while a writer can commit to the file we map. libapd
 * writers never commit at PATH: they write a temporary beside it and rename the finished
 * file into place (spec section 10.4), and remove a PATH-lock left by the file they
 * replaced. So: no PATH-lock -> MDB_NOLOCK (LMDB creates nothing); PATH-lock -> a writer of
 * another program may commit in place: join its lock table (a stale one is caught by
 * snapshot_differs below). The check after a NOLOCK open catches a writer
 * that replaced the file between the first check and the open (then the mapped file may be
 * the writer's); the reopen goes through its table. A lock table that cannot be joined
 * (read-only directory, another user's lock file) falls back to MDB_NOLOCK, as before. */
static int env_open_readonly(apd_reader *r, const char *path)
{
    const unsigned flags = MDB_RDONLY | MDB_NOSUBDIR | MDB_NOTLS;
    size_t pl = strlen(path);
    char *lockp = malloc(pl + sizeof "-lock");
    if (!lockp) return ENOMEM;
    memcpy(lockp, path, pl);
    memcpy(lockp + pl, "-lock", sizeof "-lock");
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (r->env) mdb_env_close(r->env);
        r->env = NULL;
        int writer = lock_file_exists(lockp);
        rc = env_open(r, path, flags | (writer ? 0u : MDB_NOLOCK));
        if (writer && (rc == EACCES || rc == EROFS)) {
            mdb_env_close(r->env);
            r->env = NULL;
            rc = env_open(r, path, flags | MDB_NOLOCK);
        }
        if (rc || writer || !lock_file_exists(lockp)) break;
    }
    free(lockp);
    return rc;
}

/* The snapshot LMDB gave txn is not the one apd__lmdb_check checked. With a lock file LMDB
 * takes the transaction id from the lock table and reads meta page (id & 1); a lock table
 * left by another file at this path (the file was replaced while a process kept the old one
 * open) names another transaction, often the empty meta page of a compacted file. */
static int snapshot_differs(MDB_env *env, MDB_txn *txn, const apd__lmdb_snap *snap)
{
    unsigned ef = 0;
    mdb_env_get_flags(env, &ef);
    size_t id = mdb_txn_id(txn);
    return id != snap->txnid || (!(ef & MDB_NOLOCK) && (int)(id & 1) != snap->meta_page);
}

/* Read without the lock table (LMDB then picks the newest meta page, as the check does),
 * after checking the file again: it may have been replaced meanwhile. */
static apd_status reopen_unlocked(apd_reader *r, apd__lmdb_snap *snap, char *why, size_t cap)
{
    mdb_txn_abort(r->txn);
    r->txn = NULL;
    mdb_env_close(r->env);
    r->env = NULL;
    APD_TRY(apd__lmdb_check(r->path, snap, why, cap));
    int rc = env_open(r, r->path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOTLS | MDB_NOLOCK);
    if (!rc) rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &r->txn);
    if (rc) {
        snprintf(why, cap, "opening the LMDB environment without its lock file: %s", mdb_strerror(rc));
        return APD_ELMDB;
    }
    if (snapshot_differs(r->env, r->txn, snap)) {
        snprintf(why, cap, "the file changed while it was being opened");
        return APD_ECORRUPT;
    }
    return APD_OK;
}

apd_status apd_reader_open(apd_reader **out, const char *path, const apd_limits *lim, apd_err *err)
{
    if (!out) return apd__err_set(err, APD_EINVAL, "apd_reader_open: out is NULL");
    *out = NULL;
    if (!path) return apd__err_set(err, APD_EINVAL, "apd_reader_open: path is NULL");
    apd_reader *r = calloc(1, sizeof *r);
    if (!r) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    pthread_mutex_init(&r->mu, NULL);
    r->path = strdup(path);
    if (!r->path) return open_fail(r, err, APD_ENOMEM, "out of memory");
    if (lim) r->lim = *lim;
    else apd_limits_default(&r->lim);

    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        apd_reader_close(r);
        return apd__err_sys(err, e, path, "opening");
    }
    if (S_ISDIR(st.st_mode)) return open_fail(r, err, APD_EMAGIC, "is a directory, not an .apd file");
    if (st.st_size < 2 * 4096) /* LMDB's two meta pages */
        return open_fail(r, err, st.st_size == 0 ? APD_ETRUNC : APD_EMAGIC,
                         "too short to be an .apd file (%lld bytes)", (long long)st.st_size);
    /* LMDB trusts its file: check what it will read (truncation, damaged pages) first */
    apd__lmdb_snap snap;
    char cwhy[400];
    apd_status cs = apd__lmdb_check(path, &snap, cwhy, sizeof cwhy);
    if (cs) return open_fail(r, err, cs, "%s", cwhy);

    int rc = env_open_readonly(r, path);
    if (rc == MDB_INVALID) return open_fail(r, err, APD_EMAGIC, "not an LMDB file, so not an .apd file");
    if (rc == MDB_VERSION_MISMATCH) return open_fail(r, err, APD_EVERSION, "LMDB version mismatch: %s", mdb_strerror(rc));
    if (rc > 0) {
        mdb_env_close(r->env);
        r->env = NULL;
        apd__err_sys(err, rc, path, "opening the LMDB environment");
        apd_status s = err ? err->code : apd__status_from_errno(rc);
        apd_reader_close(r);
        return s;
    }
    if (rc) return open_fail(r, err, APD_ELMDB, "opening the LMDB environment: %s", mdb_strerror(rc));
    rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &r->txn);
    if (rc) return open_fail(r, err, APD_ELMDB, "beginning a read transaction: %s", mdb_strerror(rc));
    if (snapshot_differs(r->env, r->txn, &snap) && (cs = reopen_unlocked(r, &snap, cwhy, sizeof cwhy)))
        return open_fail(r, err, cs, "%s", cwhy);
    rc = mdb_dbi_open(r->txn, APD__DB_META, 0, &r->dbi_meta);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
        return open_fail(r, err, APD_EFOREIGN, "LMDB environment without the .apd \"meta\" database");
    if (rc) return open_fail(r, err, APD_ELMDB, "opening database \"meta\": %s", mdb_strerror(rc));
    rc = mdb_dbi_open(r->txn, APD__DB_CHUNKS, 0, &r->dbi_chunks);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
        return open_fail(r, err, APD_EFOREIGN, "LMDB environment without the .apd \"chunks\" database");
    if (rc) return open_fail(r, err, APD_ELMDB, "opening database \"chunks\": %s", mdb_strerror(rc));

    /* header */
    MDB_val v;
    apd_status s = get_meta(r->txn, r->dbi_meta, APD__KEY_HEADER, &v);
    if (s == APD_ENOTFOUND) return open_fail(r, err, APD_EFOREIGN, "meta database has no \"header\" key");
    if (s) return open_fail(r, err, s, "reading the header");
    const char *why = "";
    s = apd__header_parse(v.mv_data, v.mv_size, &r->lim, &r->hdr, &why);
    if (s) return open_fail(r, err, s, "header: %s", why);
    s = apd__geom_from_header(&r->hdr, &r->lim, &r->g, &why);
    if (s) return open_fail(r, err, s, "header: %s", why);

    /* metadata document */
    s = get_meta(r->txn, r->dbi_meta, APD__KEY_JSON, &v);
    if (s == APD_ENOTFOUND) return open_fail(r, err, APD_EMETA, "metadata document (key \"json\") missing");
    if (s) return open_fail(r, err, s, "reading the metadata");
    if (v.mv_size < 4) return open_fail(r, err, APD_ETRUNC, "metadata value shorter than its checksum");
    if (v.mv_size - 4 > r->lim.max_value_bytes) return open_fail(r, err, APD_ELIMIT, "metadata larger than the value limit");
    const uint8_t *jb = v.mv_data;
    if (apd__ld32(jb) != apd_crc32c(0, jb + 4, v.mv_size - 4))
        return open_fail(r, err, APD_ECHECKSUM, "metadata checksum mismatch (key \"json\")");
    r->json_len = v.mv_size - 4;
    r->json = malloc(r->json_len + 1);
    if (!r->json) return open_fail(r, err, APD_ENOMEM, "out of memory");
    memcpy(r->json, jb + 4, r->json_len);
    r->json[r->json_len] = 0;
    if (memchr(r->json, 0, r->json_len)) return open_fail(r, err, APD_EMETA, "metadata contains a NUL byte");
    s = apd__meta_parse(r->json, r->json_len, &r->hdr, &r->meta, &why);
    if (s) return open_fail(r, err, s, "metadata: %s", why);

    /* dictionary */
    if (r->g.has_dict) {
        s = get_meta(r->txn, r->dbi_meta, APD__KEY_DICT, &v);
        if (s == APD_ENOTFOUND) return open_fail(r, err, APD_ECORRUPT, "header says a dictionary is stored but key \"zdict\" is missing");
        if (s) return open_fail(r, err, s, "reading the dictionary");
        if (v.mv_size < 5) return open_fail(r, err, APD_ETRUNC, "dictionary value too short");
        const uint8_t *db = v.mv_data;
        if (apd__ld32(db) != apd_crc32c(0, db + 4, v.mv_size - 4))
            return open_fail(r, err, APD_ECHECKSUM, "dictionary checksum mismatch (key \"zdict\")");
        r->dict = db + 4;
        r->dict_len = v.mv_size - 4;
        r->ddict = ZSTD_createDDict(r->dict, r->dict_len);
        if (!r->ddict) return open_fail(r, err, APD_ECORRUPT, "dictionary is not a valid zstd dictionary");
    }

    /* index model (format 1.1) */
    if (r->g.has_imodel) {
        s = get_meta(r->txn, r->dbi_meta, APD__KEY_IMODEL, &v);
        if (s == APD_ENOTFOUND) return open_fail(r, err, APD_ECORRUPT, "header says an index model is stored but key \"imodel\" is missing");
        if (s) return open_fail(r, err, s, "reading the index model");
        r->imodel = malloc(sizeof *r->imodel);
        if (!r->imodel) return open_fail(r, err, APD_ENOMEM, "out of memory");
        s = apd__imodel_parse(v.mv_data, v.mv_size, r->g.c, r->g.bits, r->imodel, &why);
        if (s) return open_fail(r, err, s, "index model (key \"imodel\"): %s", why);
        if (r->imodel->ver >= 2 && r->hdr.minor < 2)
            return open_fail(r, err, APD_ECORRUPT,
                             "index model (key \"imodel\") has version %u in a format 1.%u header (needs 1.2)",
                             r->imodel->ver, r->hdr.minor);
        r->g.imodel = r->imodel;
    }

    /* chunks: count must match the header */
    uint64_t n = r->hdr.n_records, N = r->hdr.per_chunk;
    r->n_chunks = n / N + (n % N != 0);
    MDB_stat ms;
    rc = mdb_stat(r->txn, r->dbi_chunks, &ms);
    if (rc) return open_fail(r, err, APD_ELMDB, "mdb_stat: %s", mdb_strerror(rc));
    if (ms.ms_entries != r->n_chunks)
        return open_fail(r, err, APD_ECORRUPT, "%zu chunks stored but the header's count %llu needs %llu",
                         ms.ms_entries, (unsigned long long)n, (unsigned long long)r->n_chunks);
    if (r->n_chunks) {
        r->chunks = calloc(r->n_chunks, sizeof *r->chunks);
        if (!r->chunks) return open_fail(r, err, APD_ENOMEM, "out of memory (%llu chunks)", (unsigned long long)r->n_chunks);
    }
    *out = r;
    return APD_OK;
}

apd_status apd_reader_info(const apd_reader *r, apd_file_info *o)
{
    if (!r || !o) return APD_EINVAL;
    memset(o, 0, sizeof *o);
    o->version_major = r->hdr.major;
    o->version_minor = r->hdr.minor;
    o->n_records = r->hdr.n_records;
    o->c = r->hdr.c;
    o->h = r->hdr.h;
    o->w = r->hdr.w;
    o->kind = r->hdr.kind;
    o->k = r->hdr.k;
    o->bits = r->hdr.bits;
    o->n_classes = r->hdr.n_classes;
    memcpy(o->mean, r->meta.mean, sizeof o->mean);
    memcpy(o->std, r->meta.std, sizeof o->std);
    o->records_per_chunk = r->hdr.per_chunk;
    o->n_chunks = r->n_chunks;
    o->has_dictionary = r->g.has_dict;
    o->has_index_model = r->g.has_imodel ? (int)r->imodel->ver : 0; /* open sets imodel with the flag */
    o->has_soft_labels = r->g.has_soft;
    memcpy(o->dataset_name, r->meta.dataset, sizeof o->dataset_name);
    return APD_OK;
}

uint64_t apd_reader_count(const apd_reader *r) { return r ? r->hdr.n_records : 0; }
const char *apd_reader_meta_json(const apd_reader *r) { return r ? r->json : NULL; }

const char *apd_reader_class_name(const apd_reader *r, uint32_t cls)
{
    if (!r || !r->meta.class_names || cls >= r->hdr.n_classes) return NULL;
    return r->meta.class_names[cls];
}

uint64_t apd_reader_class_count(const apd_reader *r, uint32_t cls)
{
    if (!r || !r->meta.class_counts || cls >= r->hdr.n_classes) return 0;
    return r->meta.class_counts[cls];
}

apd_status apd_reader_locate(const apd_reader *r, uint64_t i, uint64_t *chunk, uint32_t *slot)
{
    if (!r) return APD_EINVAL;
    if (i >= r->hdr.n_records) return APD_ERANGE;
    if (chunk) *chunk = i / r->hdr.per_chunk;
    if (slot) *slot = (uint32_t)(i % r->hdr.per_chunk);
    return APD_OK;
}

/* Resolve and validate chunk c (thread-safe). */
static apd_status get_chunk(apd_reader *r, uint64_t c, uint64_t rec, const uint8_t **p, size_t *len)
{
    chunk_slot *cs = &r->chunks[c];
    uintptr_t v = atomic_load_explicit(&cs->ptr, memory_order_acquire);
    if (v) {
        *p = (const uint8_t *)v;
        *len = atomic_load_explicit(&cs->len, memory_order_relaxed);
        return APD_OK;
    }
    uint8_t key[8];
    for (int b = 0; b < 8; b++) key[b] = (uint8_t)(c >> (56 - 8 * b));
    MDB_val k = {8, key}, d;
    pthread_mutex_lock(&r->mu);
    int rc = mdb_get(r->txn, r->dbi_chunks, &k, &d);
    pthread_mutex_unlock(&r->mu);
    char what[64] = "";
    if (rec != UINT64_MAX) snprintf(what, sizeof what, "record %llu: ", (unsigned long long)rec);
    if (rc == MDB_NOTFOUND)
        return rfail(r, APD_ENOTFOUND, 0, "%schunk %llu (key %016llx) missing", what, (unsigned long long)c,
                     (unsigned long long)c);
    if (rc) return rfail(r, APD_ELMDB, 1, "%schunk %llu: mdb_get: %s", what, (unsigned long long)c, mdb_strerror(rc));
    if (d.mv_size > r->lim.max_value_bytes)
        return rfail(r, APD_ELIMIT, 0, "%schunk %llu (key %016llx): %zu bytes exceeds the value limit", what,
                     (unsigned long long)c, (unsigned long long)c, d.mv_size);
    uint64_t N = r->hdr.per_chunk;
    uint32_t expect = (uint32_t)(c + 1 < r->n_chunks ? N : r->hdr.n_records - c * N);
    const char *why = "";
    apd_status s = apd__chunk_check(d.mv_data, d.mv_size, c, expect, &r->g, &why);
    if (s)
        return rfail(r, s, 0, "%schunk %llu (key %016llx, records %llu..%llu): %s", what, (unsigned long long)c,
                     (unsigned long long)c, (unsigned long long)(c * N),
                     (unsigned long long)(c * N + expect - 1), why);
    atomic_store_explicit(&cs->len, d.mv_size, memory_order_relaxed);
    atomic_store_explicit(&cs->ptr, (uintptr_t)d.mv_data, memory_order_release);
    *p = d.mv_data;
    *len = d.mv_size;
    return APD_OK;
}

/* Locate and parse record i (CRC verified). */
static apd_status get_record(apd_reader *r, uint64_t i, apd__rec *rec)
{
    if (atomic_load_explicit(&r->poisoned, memory_order_relaxed)) return APD_EBADSTATE;
    if (i >= r->hdr.n_records)
        return rfail(r, APD_ERANGE, 0, "record %llu out of range (%llu records)", (unsigned long long)i,
                     (unsigned long long)r->hdr.n_records);
    uint64_t c = i / r->hdr.per_chunk;
    uint32_t j = (uint32_t)(i % r->hdr.per_chunk);
    const uint8_t *cp;
    size_t clen;
    APD_TRY(get_chunk(r, c, i, &cp, &clen));
    const uint8_t *rp;
    size_t rl;
    apd__chunk_record(cp, j, &rp, &rl);
    const char *why = "";
    rec->soft_bad = UINT32_MAX;
    apd_status s = apd__record_parse(rp, rl, &r->g, rec, &why);
    char cls[48] = "";
    if (s && rec->soft_bad < r->hdr.n_classes) snprintf(cls, sizeof cls, " (class %u)", rec->soft_bad);
    if (s)
        return rfail(r, s, 0, "record %llu (chunk %llu key %016llx, slot %u, offset %zu): %s%s",
                     (unsigned long long)i, (unsigned long long)c, (unsigned long long)c, j,
                     (size_t)(rp - cp), why, cls);
    return APD_OK;
}

static ZSTD_DCtx *dctx_get(apd_reader *r)
{
    ZSTD_DCtx *d = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->n_dpool) d = r->dpool[--r->n_dpool];
    pthread_mutex_unlock(&r->mu);
    return d ? d : ZSTD_createDCtx();
}

static void dctx_put(apd_reader *r, ZSTD_DCtx *d)
{
    pthread_mutex_lock(&r->mu);
    if (r->n_dpool < DCTX_POOL) {
        r->dpool[r->n_dpool++] = d;
        d = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    ZSTD_freeDCtx(d);
}

/* A body that does not decode: the message names record, chunk and reason. */
static apd_status body_fail(apd_reader *r, uint64_t i, apd_status s, const char *why)
{
    return rfail(r, s, 0, "record %llu (chunk %llu key %016llx): %s", (unsigned long long)i,
                 (unsigned long long)(i / r->hdr.per_chunk), (unsigned long long)(i / r->hdr.per_chunk), why);
}

/* Uncompressed body of rec: either rec->body itself or *owned (malloc'd, caller frees).
 * *bits is the index width of the body: the file's bits, or 8 for a coded record (format
 * 1.1), whose indices come out one per byte (no repacking). */
static apd_status body_of(apd_reader *r, uint64_t i, const apd__rec *rec, const uint8_t **body,
                          uint8_t **owned, uint32_t *bits)
{
    *owned = NULL;
    *bits = r->g.bits;
    if (rec->flags & APD__RFLAG_ICODE) {
        uint8_t *tmp = malloc((size_t)rec->k * r->g.c + r->g.npix);
        if (!tmp) return rfail(r, APD_ENOMEM, 0, "record %llu: out of memory", (unsigned long long)i);
        const char *why = "";
        apd_status s = apd__coded_body(&r->g, rec, tmp, &why);
        if (s) {
            free(tmp);
            return body_fail(r, i, s, why);
        }
        *body = tmp;
        *owned = tmp;
        *bits = 8;
        return APD_OK;
    }
    if (!(rec->flags & APD__RFLAG_ZSTD)) {
        *body = rec->body;
        return APD_OK;
    }
    uint8_t *tmp = malloc(rec->raw_len ? rec->raw_len : 1);
    ZSTD_DCtx *dc = dctx_get(r);
    if (!tmp || !dc) {
        free(tmp);
        ZSTD_freeDCtx(dc);
        return rfail(r, APD_ENOMEM, 0, "record %llu: out of memory", (unsigned long long)i);
    }
    size_t got = (rec->flags & APD__RFLAG_DICT)
                     ? ZSTD_decompress_usingDDict(dc, tmp, rec->raw_len, rec->body, rec->body_len, r->ddict)
                     : ZSTD_decompressDCtx(dc, tmp, rec->raw_len, rec->body, rec->body_len);
    dctx_put(r, dc);
    if (ZSTD_isError(got) || got != rec->raw_len) {
        free(tmp);
        return rfail(r, APD_ECORRUPT, 0, "record %llu (chunk %llu): zstd body does not decompress to %zu bytes",
                     (unsigned long long)i, (unsigned long long)(i / r->hdr.per_chunk), rec->raw_len);
    }
    *body = tmp;
    *owned = tmp;
    return APD_OK;
}

/* The file's geometry as seen by a body of index width bits (8 for coded records). */
static apd__geom body_geom(const apd__geom *g, uint32_t bits)
{
    apd__geom b = *g;
    if (bits != g->bits) {
        b.bits = bits;
        b.packed = apd_packed_bytes(g->npix, bits);
    }
    return b;
}

/* Where a decode writes: uint8 in layout (f32 = 0), or normalised float32 CHW (f32 = 1). */
typedef struct out_spec {
    int f32;
    apd_layout layout;
    const float *mean, *std;
} out_spec;

/* The pixels of a record from its uncompressed body (index width bits) into out (uint8_t *
 * or float *, as o says); the label on success. */
static apd_status emit(apd_reader *r, uint64_t i, const apd__rec *rec, const uint8_t *body, uint32_t bits,
                       const out_spec *o, void *out, uint32_t *label)
{
    const char *why = "";
    apd_status s = APD_OK;
    if (!o->f32) {
        apd__geom bg = body_geom(&r->g, bits);
        s = apd__body_decode(&bg, rec->k, body, o->layout, out, &why);
    } else if (r->g.kind == APD_KIND_PALETTE) {
        if (apd__pal_decode_f32(APD__IMPL_AUTO, body + (size_t)rec->k * r->g.c, r->g.npix, bits, body, rec->k,
                                r->g.c, o->mean, o->std, out) != 0) {
            s = APD_ECORRUPT;
            why = "index >= record palette size or nonzero padding bits";
        }
    } else {
        for (uint32_t ch = 0; ch < r->g.c; ch++)
            apd__u8_norm_f32(APD__IMPL_AUTO, body + ch * r->g.npix, r->g.npix, o->mean[ch], o->std[ch],
                             (float *)out + ch * r->g.npix);
    }
    if (s) return body_fail(r, i, s, why);
    if (label) *label = rec->label;
    return APD_OK;
}

/* One located record (rec) to its output: body (zstd, coded or as stored), then emit. */
static apd_status decode_rec(apd_reader *r, uint64_t i, const apd__rec *rec, const out_spec *o, void *out,
                             uint32_t *label)
{
    const uint8_t *body;
    uint8_t *owned;
    uint32_t bits;
    APD_TRY(body_of(r, i, rec, &body, &owned, &bits));
    apd_status s = emit(r, i, rec, body, bits, o, out, label);
    free(owned);
    return s;
}

apd_status apd_reader_decode(apd_reader *r, uint64_t i, apd_layout layout, uint8_t *out,
                             size_t out_len, uint32_t *label)
{
    if (!r || !out || (layout != APD_LAYOUT_HWC && layout != APD_LAYOUT_CHW)) return APD_EINVAL;
    size_t need = r->g.npix * r->g.c;
    if (out_len < need)
        return rfail(r, APD_EBUFSIZE, 0, "record %llu: output buffer %zu bytes, need %zu",
                     (unsigned long long)i, out_len, need);
    apd__rec rec;
    APD_TRY(get_record(r, i, &rec));
    const out_spec o = {0, layout, NULL, NULL};
    return decode_rec(r, i, &rec, &o, out, label);
}

/* Same record checks as apd_reader_decode (get_record: chunk table, record CRC-32C through
 * apd_crc32c's SSE4.2 path, structure; body_of: zstd), then the float kernels of
 * common/kernels.c. */
apd_status apd_reader_decode_f32(apd_reader *r, uint64_t i, apd_layout layout,
                                 const float *mean, const float *std, float *out,
                                 size_t out_len, uint32_t *label)
{
    if (!r || !out || !mean || !std || layout != APD_LAYOUT_CHW) return APD_EINVAL;
    size_t need = r->g.npix * r->g.c;
    if (out_len < need)
        return rfail(r, APD_EBUFSIZE, 0, "record %llu: output buffer %zu floats, need %zu",
                     (unsigned long long)i, out_len, need);
    apd__rec rec;
    APD_TRY(get_record(r, i, &rec));
    const out_spec o = {1, layout, mean, std};
    return decode_rec(r, i, &rec, &o, out, label);
}

/* ---- batches: coded records eight at a time -------------------------------------------- */

/* Coded records decoded together (apd__icode_decoden: with AVX-512 two records per 16-lane
 * register set and four sets in lockstep, ~2.5x the images/s of one record per call). */
#define BATCH_GROUP 8u
/* A group's working memory per record on the stack: palette + 8-bit indices. */
#define BATCH_STACK 4096u

/* n <= BATCH_GROUP coded records (ids id[q], located in rec[q]) decoded together, then
 * emitted; st[q] their statuses (each exactly what decode_rec would return). */
static void decode_group(apd_reader *r, uint32_t n, const uint64_t *id, const apd__rec *rec, const out_spec *o,
                         void *const *out, uint32_t *const *label, apd_status *st)
{
    size_t per = (size_t)APD_MAX_COLORS * r->g.c + r->g.npix;
    uint8_t sbuf[BATCH_GROUP][BATCH_STACK];
    uint8_t *heap = per <= BATCH_STACK ? NULL : malloc(n * per);
    if (per > BATCH_STACK && !heap) {
        for (uint32_t q = 0; q < n; q++)
            st[q] = rfail(r, APD_ENOMEM, 0, "record %llu: out of memory", (unsigned long long)id[q]);
        return;
    }
    const uint8_t *body[BATCH_GROUP] = {NULL};
    size_t len[BATCH_GROUP] = {0};
    uint32_t k[BATCH_GROUP] = {0};
    uint8_t *pal[BATCH_GROUP] = {NULL}, *idx[BATCH_GROUP] = {NULL};
    const char *why[BATCH_GROUP] = {NULL};
    for (uint32_t q = 0; q < n; q++) {
        body[q] = rec[q].body;
        len[q] = rec[q].body_len;
        k[q] = rec[q].k;
        pal[q] = heap ? heap + q * per : sbuf[q];
        idx[q] = pal[q] + (size_t)k[q] * r->g.c;
        why[q] = "";
    }
    apd__icode_decoden(APD__IMPL_AUTO, r->imodel, n, body, len, k, r->g.h, r->g.w, pal, idx, st, why);
    for (uint32_t q = 0; q < n; q++)
        st[q] = st[q] ? body_fail(r, id[q], st[q], why[q]) : emit(r, id[q], &rec[q], pal[q], 8, o, out[q], label[q]);
    free(heap);
}

/* The batch loop shared by both outputs: records in order; coded records are collected and
 * decoded BATCH_GROUP at a time by decode_group (the rest of them at the end), every other
 * record at once by decode_rec. out_stride in bytes. */
static apd_status decode_batch(apd_reader *r, const uint64_t *ids, size_t n, const out_spec *o, uint8_t *out,
                               size_t out_stride, uint32_t *labels, apd_status *st)
{
    apd__rec grec[BATCH_GROUP];
    uint64_t gid[BATCH_GROUP];
    void *gout[BATCH_GROUP];
    uint32_t *glab[BATCH_GROUP];
    size_t gpos[BATCH_GROUP];
    apd_status gst[BATCH_GROUP];
    uint32_t ng = 0;
    int group_ok = r->imodel != NULL && r->g.kind == APD_KIND_PALETTE;
    for (size_t j = 0; j <= n; j++) {
        if (j < n) {
            apd__rec rec;
            st[j] = get_record(r, ids[j], &rec);
            if (st[j] != APD_OK) continue;
            if (!group_ok || !(rec.flags & APD__RFLAG_ICODE)) {
                st[j] = decode_rec(r, ids[j], &rec, o, out + j * out_stride, labels ? labels + j : NULL);
                continue;
            }
            grec[ng] = rec;
            gid[ng] = ids[j];
            gout[ng] = out + j * out_stride;
            glab[ng] = labels ? labels + j : NULL;
            gpos[ng++] = j;
        }
        if (ng == BATCH_GROUP || (j == n && ng > 0)) {
            decode_group(r, ng, gid, grec, o, gout, glab, gst);
            for (uint32_t q = 0; q < ng; q++) st[gpos[q]] = gst[q];
            ng = 0;
        }
    }
    for (size_t j = 0; j < n; j++)
        if (st[j] != APD_OK) return st[j];
    return APD_OK;
}

apd_status apd_reader_decode_batch(apd_reader *r, const uint64_t *ids, size_t n, apd_layout layout,
                                   uint8_t *out, size_t out_stride, uint32_t *labels, apd_status *status)
{
    if (!r || (n && (!ids || !out || !status)) || (layout != APD_LAYOUT_HWC && layout != APD_LAYOUT_CHW))
        return APD_EINVAL;
    size_t need = r->g.npix * r->g.c;
    if (out_stride < need)
        return rfail(r, APD_EBUFSIZE, 0, "batch: output stride %zu bytes, need %zu", out_stride, need);
    const out_spec o = {0, layout, NULL, NULL};
    return decode_batch(r, ids, n, &o, out, out_stride, labels, status);
}

apd_status apd_reader_decode_f32_batch(apd_reader *r, const uint64_t *ids, size_t n, apd_layout layout,
                                       const float *mean, const float *std, float *out, size_t out_stride,
                                       uint32_t *labels, apd_status *status)
{
    if (!r || (n && (!ids || !out || !status)) || !mean || !std || layout != APD_LAYOUT_CHW)
        return APD_EINVAL;
    size_t need = r->g.npix * r->g.c;
    if (out_stride < need)
        return rfail(r, APD_EBUFSIZE, 0, "batch: output stride %zu floats, need %zu", out_stride, need);
    if (out_stride > SIZE_MAX / sizeof(float)) return APD_EINVAL;
    const out_spec o = {1, layout, mean, std};
    return decode_batch(r, ids, n, &o, (uint8_t *)out, out_stride * sizeof(float), labels, status);
}

/* Prefetch hint (apd/format.h): the record's slot in its chunk's offset table (body = 0) or
 * the record's cache lines (body = 1; reads that slot), if the chunk is located. */
void apd_reader_prefetch(apd_reader *r, uint64_t i, int body)
{
    if (!r || i >= r->hdr.n_records) return;
    uint64_t c = i / r->hdr.per_chunk;
    uintptr_t v = atomic_load_explicit(&r->chunks[c].ptr, memory_order_acquire);
    if (!v) return; /* chunk not located yet: a hint never calls LMDB */
    const uint8_t *cp = (const uint8_t *)v;
    uint32_t j = (uint32_t)(i % r->hdr.per_chunk);
    if (!body) {
        __builtin_prefetch(cp + APD__CHUNK_HDR + 4u * j);
        __builtin_prefetch(cp + APD__CHUNK_HDR + 4u * j + 4u); /* may be the next line */
        return;
    }
    const uint8_t *rp;
    size_t rl;
    apd__chunk_record(cp, j, &rp, &rl);
    for (size_t o = 0; o < rl; o += 64) __builtin_prefetch(rp + o);
    __builtin_prefetch(rp + rl - 1);
}

apd_status apd_reader_label(apd_reader *r, uint64_t i, uint32_t *label)
{
    if (!r || !label) return APD_EINVAL;
    apd__rec rec;
    APD_TRY(get_record(r, i, &rec));
    *label = rec.label;
    return APD_OK;
}

apd_status apd_reader_source_id(apd_reader *r, uint64_t i, uint64_t *id)
{
    if (!r || !id) return APD_EINVAL;
    apd__rec rec;
    APD_TRY(get_record(r, i, &rec));
    *id = rec.source_id;
    return APD_OK;
}

apd_status apd_reader_soft_label(apd_reader *r, uint64_t i, float *out, size_t out_len, int *present)
{
    if (!r || !out) return APD_EINVAL;
    if (r->hdr.n_classes == 0)
        return rfail(r, APD_EUNSUPPORTED, 0, "record %llu: the file has no classes, hence no soft labels",
                     (unsigned long long)i);
    if (out_len < r->hdr.n_classes)
        return rfail(r, APD_EBUFSIZE, 0, "record %llu: soft-label buffer of %zu floats < %u classes",
                     (unsigned long long)i, out_len, r->hdr.n_classes);
    apd__rec rec;
    APD_TRY(get_record(r, i, &rec));
    apd__soft_get(&r->g, &rec, out);
    if (present) *present = rec.soft != NULL;
    return APD_OK;
}

apd_status apd_reader_record_bytes(apd_reader *r, uint64_t i, uint64_t *bytes)
{
    if (!r || !bytes) return APD_EINVAL;
    apd__rec rec;
    APD_TRY(get_record(r, i, &rec)); /* range, chunk and record checks, CRC */
    const uint8_t *cp, *rp;
    size_t clen, rl;
    APD_TRY(get_chunk(r, i / r->hdr.per_chunk, i, &cp, &clen));
    apd__chunk_record(cp, (uint32_t)(i % r->hdr.per_chunk), &rp, &rl);
    *bytes = rl;
    return APD_OK;
}

apd_status apd_reader_record(apd_reader *r, uint64_t i, uint8_t *palette, uint32_t *k,
                             uint8_t *indices, uint32_t *label)
{
    if (!r || !palette || !k) return APD_EINVAL;
    if (r->hdr.kind != APD_KIND_PALETTE)
        return rfail(r, APD_EUNSUPPORTED, 0, "record %llu: direct-colour file has no palette", (unsigned long long)i);
    apd__rec rec;
    APD_TRY(get_record(r, i, &rec));
    const uint8_t *body;
    uint8_t *owned;
    uint32_t bits;
    APD_TRY(body_of(r, i, &rec, &body, &owned, &bits));
    size_t pl = (size_t)rec.k * r->g.c;
    memset(palette, 0, APD_MAX_COLORS * (size_t)r->g.c);
    memcpy(palette, body, pl);
    *k = rec.k;
    apd_status s = APD_OK;
    if (indices) {
        apd__unpack(body + pl, r->g.npix, bits, indices);
        uint8_t mx = 0;
        for (size_t p = 0; p < r->g.npix; p++) mx = indices[p] > mx ? indices[p] : mx;
        size_t tail = (r->g.npix * bits) % 8; /* bits used in the last packed byte */
        if (mx >= rec.k)
            s = rfail(r, APD_ECORRUPT, 0, "record %llu: index %u >= palette size %u", (unsigned long long)i, mx, rec.k);
        else if (tail && (body[pl + (r->g.npix * bits + 7) / 8 - 1] >> tail))
            s = rfail(r, APD_ECORRUPT, 0, "record %llu: nonzero padding bits after the last index", (unsigned long long)i);
    }
    free(owned);
    if (s == APD_OK && label) *label = rec.label;
    return s;
}

apd_status apd_reader_verify_record(apd_reader *r, uint64_t i)
{
    if (!r) return APD_EINVAL;
    apd__rec rec;
    APD_TRY(get_record(r, i, &rec));
    /* also check decompression and index ranges */
    const uint8_t *body;
    uint8_t *owned;
    uint32_t bits;
    APD_TRY(body_of(r, i, &rec, &body, &owned, &bits));
    apd_status s = APD_OK;
    if (r->g.kind == APD_KIND_PALETTE) {
        uint8_t *tmp = malloc(r->g.npix * r->g.c);
        const char *why = "";
        apd__geom bg = body_geom(&r->g, bits);
        if (!tmp) s = rfail(r, APD_ENOMEM, 0, "record %llu: out of memory", (unsigned long long)i);
        else if ((s = apd__body_decode(&bg, rec.k, body, APD_LAYOUT_CHW, tmp, &why)) != APD_OK)
            rfail(r, s, 0, "record %llu (chunk %llu key %016llx): %s", (unsigned long long)i,
                  (unsigned long long)(i / r->hdr.per_chunk), (unsigned long long)(i / r->hdr.per_chunk), why);
        free(tmp);
    }
    free(owned);
    return s;
}

apd_status apd_reader_stats(apd_reader *r, apd_file_stats *o)
{
    if (!r || !o) return APD_EINVAL;
    if (atomic_load(&r->poisoned)) return APD_EBADSTATE;
    memset(o, 0, sizeof *o);
    struct stat st;
    if (stat(r->path, &st) == 0) o->file_bytes = (uint64_t)st.st_size;
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(r->env, &info);
    mdb_env_stat(r->env, &ms);
    o->page_size = ms.ms_psize;
    o->used_pages = (uint64_t)info.me_last_pgno + 1;
    pthread_mutex_lock(&r->mu);
    int rc = mdb_stat(r->txn, r->dbi_chunks, &ms);
    if (!rc) o->chunk_db_pages = ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
    if (!rc) rc = mdb_stat(r->txn, r->dbi_meta, &ms);
    if (!rc) o->meta_db_pages = ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
    pthread_mutex_unlock(&r->mu);
    if (rc) return rfail(r, APD_ELMDB, 0, "mdb_stat: %s", mdb_strerror(rc));
    o->meta_json_bytes = r->json_len;
    o->dict_bytes = r->dict_len;
    if (r->imodel) o->imodel_bytes = apd__imodel_write(r->imodel, NULL);
    for (uint64_t c = 0; c < r->n_chunks; c++) {
        const uint8_t *cp;
        size_t cl;
        APD_TRY(get_chunk(r, c, UINT64_MAX, &cp, &cl));
        uint32_t n = apd__ld32(cp + 8);
        for (uint32_t j = 0; j < n; j++) {
            const uint8_t *rp;
            size_t rl;
            apd__chunk_record(cp, j, &rp, &rl);
            o->stored_bytes += rl;
            uint32_t f = rp[4];
            if (f & APD__RFLAG_ZSTD) o->compressed_records++;
            if (f & APD__RFLAG_ICODE) o->coded_records++;
            if (f & APD__RFLAG_SOFT) o->soft_records++;
            o->payload_bytes += r->g.kind == APD_KIND_PALETTE
                                    ? (uint64_t)((uint32_t)rp[5] + 1) * r->g.c + r->g.packed
                                    : r->g.max_body;
        }
    }
    return APD_OK;
}
