/* format/writer.c: apd_writer, which appends records to a new .apd file (apd/format.h).
 *
 * Commits: records are staged in memory for the current chunk; every flush writes, in ONE
 * LMDB write transaction, the current chunk value, the binary header (with the committed
 * record count) and the metadata document (with counts per class). LMDB commits are atomic,
 * so whatever was last committed is a consistent file whose count, chunks and class counts
 * agree, marked "complete": false until the final commit. The file is committed empty at
 * creation. A flush happens whenever a chunk fills, on apd_writer_commit and on finish. A
 * partial chunk is rewritten (with more records) by the next flush.
 *
 * Map growth: LMDB needs a map size up front; before each write transaction the writer makes
 * sure the map has room for twice what it is about to write (LMDB is copy-on-write) and
 * doubles it when needed; an MDB_MAP_FULL is also handled by aborting, doubling and retrying,
 * since the staged data is still in memory.
 *
 * Where it writes (output.c): never at PATH. Everything goes to a locked temporary
 * PATH.partial-XXXXXX beside it; apd_writer_finish makes the final commit (the only one whose
 * metadata says "complete": true), compacts into a second temporary, verifies the result with
 * the reader (every record's checksum) and renames it onto PATH atomically: without force only
 * if nothing is at PATH at that moment, with force only over a regular file. So PATH holds the
 * old file or the new complete one at every moment, whatever happens to this process; a
 * failure or apd_writer_discard removes the temporaries and leaves PATH as it was.
 *
 * Compression (measured): at the first flush the staged records (usually the first chunk) are
 * compressed with zstd, with and without a dictionary trained on them (>= 64 records). In
 * AUTO mode the file stays uncompressed unless that saves at least 10% (CIFAR K=64 saves
 * 0.25%: not worth a 10x slower decode; 4-bit Fashion-MNIST saves ~40%); then each record is
 * kept compressed only if that saves at least 1/16 of it, with the dictionary if it paid for
 * itself on those records. ON keeps any saving.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <zdict.h>
#include <zstd.h>

#include "common/names.h"
#include "format/format_internal.h"
#include "format/icode.h"
#include "format/json.h"
#include "format/output.h"

#define TARGET_CHUNK_BYTES (1u << 20) /* ~1 MiB chunks: LMDB overflow-page slack < 0.3% */
#define DICT_MIN_RECORDS 64
#define DICT_MAX_BYTES (16u << 10)

typedef struct meta_kv {
    char *key, *val;
} meta_kv;

struct apd_writer {
    char *path;            /* the output, only ever touched by the final rename */
    char *part, *cpart;    /* temporaries being written (LMDB) and compacted into; NULL once
                              published or removed */
    int part_fd, cpart_fd; /* hold their flocks (-1: none) */
    int finishing;         /* the commit being built is the final one ("complete": true) */
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_chunks;
    size_t mapsize;
    apd_writer_opts o;
    apd__header hdr;
    apd__geom g;
    char (*class_names)[64];
    uint64_t *class_counts;
    char dataset[256];
    char created[32];      /* ISO time of apd_writer_create (or SOURCE_DATE_EPOCH) */
    meta_kv *meta;
    size_t n_meta;
    uint64_t n;            /* records put */
    uint64_t chunk_no;     /* chunk being filled */
    /* staging: records of the current chunk, encoded (or raw before the dictionary
       decision), back to back; stage_off[j] = start of record j */
    uint8_t *stage;
    size_t stage_len, stage_cap;
    uint32_t *stage_off;   /* per_chunk + 1 */
    uint32_t stage_n;
    int raw_staged;        /* 1 while staged records are raw (dictionary not decided) */
    int dict_decided;
    int zoff;              /* compression decided against for this file */
    void *dict;
    size_t dict_len;
    int dict_written;
    ZSTD_CCtx *cctx;
    ZSTD_CDict *cdict;
    apd__imodel *im;       /* format 1.1 index model when index coding was chosen */
    uint8_t *imv;          /* its serialised value (meta/imodel) */
    size_t imv_len;
    int imv_written;
    uint8_t *ibuf;         /* one coded body */
    size_t ibuf_cap;
    uint8_t *iidx;         /* one record's unpacked (sorted) indices */
    uint8_t *chunkbuf;     /* encoded chunk value */
    size_t chunkbuf_cap;
    uint8_t *tmp;          /* one record's raw body */
    uint8_t *softbuf;      /* one record's soft labels, encoded (soft_bytes) */
    uint8_t *ztmp;         /* compressed body */
    size_t ztmp_cap;
    int poisoned;
    char msg[512];
};

static apd_status wfail(apd_writer *w, apd_status code, int poison, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static apd_status wfail(apd_writer *w, apd_status code, int poison, const char *fmt, ...)
{
    char tmp[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    snprintf(w->msg, sizeof w->msg, "%s: %s", w->path ? w->path : "?", tmp);
    if (poison) w->poisoned = 1;
    return code;
}

static apd_status lmdb_status(int rc)
{
    switch (rc) {
    case ENOMEM: return APD_ENOMEM;
    case ENOENT: return APD_ENOENT;
    case EACCES: case EPERM: return APD_EACCES;
    case EIO: case ENOSPC: case EFBIG: case EDQUOT: return APD_EIO;
    default: return APD_ELMDB;
    }
}

void apd_writer_opts_default(apd_writer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->compress = APD_COMPRESS_AUTO;
    o->zstd_level = 3;
    o->dictionary = 1;
    apd_limits_default(&o->limits);
}

uint64_t apd_writer_count(const apd_writer *w) { return w ? w->n : 0; }

apd_status apd_writer_info(const apd_writer *w, apd_file_info *o)
{
    if (!w || !o) return APD_EINVAL;
    memset(o, 0, sizeof *o);
    o->version_major = w->hdr.major;
    o->version_minor = w->hdr.minor;
    o->n_records = w->n;
    o->c = w->hdr.c;
    o->h = w->hdr.h;
    o->w = w->hdr.w;
    o->kind = w->hdr.kind;
    o->k = w->hdr.k;
    o->bits = w->hdr.bits;
    o->n_classes = w->hdr.n_classes;
    memcpy(o->mean, w->o.mean, sizeof o->mean);
    memcpy(o->std, w->o.std, sizeof o->std);
    o->records_per_chunk = w->hdr.per_chunk;
    o->n_chunks = w->chunk_no + (w->stage_n > 0);
    o->has_dictionary = w->dict != NULL;
    o->has_index_model = w->im != NULL;
    o->has_soft_labels = w->o.soft_labels;
    memcpy(o->dataset_name, w->dataset, strnlen(w->dataset, sizeof o->dataset_name - 1));
    return APD_OK;
}

const char *apd_writer_errmsg(const apd_writer *w) { return w ? w->msg : ""; }

/* Frees everything and removes the temporaries that are still there. */
static void writer_free(apd_writer *w)
{
    if (!w) return;
    if (w->env) mdb_env_close(w->env);
    if (w->cpart) apd__out_remove(w->cpart);
    if (w->part) apd__out_remove(w->part);
    if (w->cpart_fd >= 0) close(w->cpart_fd);
    if (w->part_fd >= 0) close(w->part_fd);
    free(w->cpart);
    free(w->part);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].val);
    }
    free(w->meta);
    free(w->class_names);
    free(w->class_counts);
    free(w->stage);
    free(w->stage_off);
    free(w->dict);
    apd__imodel_free(w->im);
    free(w->im);
    free(w->imv);
    free(w->ibuf);
    free(w->iidx);
    ZSTD_freeCCtx(w->cctx);
    ZSTD_freeCDict(w->cdict);
    free(w->chunkbuf);
    free(w->tmp);
    free(w->softbuf);
    free(w->ztmp);
    free(w->path);
    free(w);
}

/* ---- metadata document -------------------------------------------------------------------- */

static void iso_time(char out[32])
{
    time_t t = time(NULL);
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        char *end;
        unsigned long long v = strtoull(sde, &end, 10);
        if (*end == 0) t = (time_t)v;
    }
    struct tm tmv;
    gmtime_r(&t, &tmv);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tmv);
}

static const meta_kv *find_meta(const apd_writer *w, const char *key)
{
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) return &w->meta[i];
    return NULL;
}

/* Library keys first (fixed order), then user keys in the order first set. */
static apd_status build_json(apd_writer *w, apd__sb *b)
{
    const apd__header *h = &w->hdr;
    apd__sb_puts(b, "{\n  \"format\": \"apd\",\n");
    apd__sb_printf(b, "  \"format_version\": \"%u.%u\",\n", h->major, h->minor);
    apd__sb_printf(b, "  \"kind\": \"%s\",\n", h->kind == APD_KIND_PALETTE ? "palette" : "direct");
    apd__sb_printf(b, "  \"c\": %u,\n  \"h\": %u,\n  \"w\": %u,\n  \"k\": %u,\n  \"bits\": %u,\n",
                   h->c, h->h, h->w, h->k, h->bits);
    apd__sb_printf(b, "  \"records_per_chunk\": %u,\n", h->per_chunk);
    apd__sb_printf(b, "  \"n_records\": %llu,\n", (unsigned long long)w->n);
    apd__sb_printf(b, "  \"complete\": %s,\n", w->finishing ? "true" : "false");
    apd__sb_printf(b, "  \"n_classes\": %u,\n", h->n_classes);
    apd__sb_puts(b, "  \"class_counts\": [");
    for (uint32_t i = 0; i < h->n_classes; i++)
        apd__sb_printf(b, "%s%llu", i ? ", " : "", (unsigned long long)w->class_counts[i]);
    apd__sb_puts(b, "],\n");
    if (w->class_names) {
        apd__sb_puts(b, "  \"class_names\": [");
        for (uint32_t i = 0; i < h->n_classes; i++) {
            if (i) apd__sb_puts(b, ", ");
            apd__sb_jstr(b, w->class_names[i]);
        }
        apd__sb_puts(b, "],\n");
    }
    const meta_kv *kv;
    if ((kv = find_meta(w, "dataset"))) {
        apd__sb_printf(b, "  \"dataset\": %s,\n", kv->val);
    } else {
        apd__sb_puts(b, "  \"dataset\": ");
        apd__sb_jstr(b, w->dataset);
        apd__sb_puts(b, ",\n");
    }
    const char *ms[2] = {"mean", "std"};
    const float *mv[2] = {w->o.mean, w->o.std};
    for (int q = 0; q < 2; q++) {
        if ((kv = find_meta(w, ms[q]))) {
            apd__sb_printf(b, "  \"%s\": %s,\n", ms[q], kv->val);
            continue;
        }
        apd__sb_printf(b, "  \"%s\": [", ms[q]);
        for (uint32_t c = 0; c < h->c; c++) apd__sb_printf(b, "%s%.9g", c ? ", " : "", (double)mv[q][c]);
        apd__sb_puts(b, "],\n");
    }
    if (!find_meta(w, "created")) apd__sb_printf(b, "  \"created\": \"%s\",\n", w->created);
    if (!find_meta(w, "library_version")) apd__sb_printf(b, "  \"library_version\": \"%s\",\n", apd_version());
    for (size_t i = 0; i < w->n_meta; i++) {
        const char *k = w->meta[i].key;
        if (apd_meta_key_classify(k, strlen(k)) == APD_META_KEY_DEFAULTED) continue; /* above */
        apd__sb_puts(b, "  ");
        apd__sb_jstr(b, k);
        apd__sb_printf(b, ": %s,\n", w->meta[i].val);
    }
    /* drop the trailing ",\n" */
    if (!b->oom && b->len >= 2 && b->p[b->len - 2] == ',') {
        b->len -= 2;
        b->p[b->len] = 0;
    }
    apd__sb_puts(b, "\n}\n");
    return b->oom ? APD_ENOMEM : APD_OK;
}

apd_status apd_writer_set_meta(apd_writer *w, const char *key, const char *json_value)
{
    if (!w) return APD_EINVAL;
    if (w->poisoned) return APD_EBADSTATE;
    if (!key || !*key || !json_value) return wfail(w, APD_EINVAL, 0, "set_meta: NULL or empty key/value");
    if (apd_meta_key_classify(key, strlen(key)) == APD_META_KEY_MAINTAINED)
        return wfail(w, APD_EINVAL, 0, "set_meta: key \"%s\" is maintained by the library", key);
    apd__json d;
    apd_status s = apd__json_parse(&d, json_value, strlen(json_value));
    if (s != APD_OK)
        return wfail(w, s == APD_ENOMEM ? APD_ENOMEM : APD_EINVAL, 0,
                     "set_meta: value of \"%s\" is not one JSON value", key);
    int is_std = !strcmp(key, "std"), bad_norm = 0;
    if (is_std || !strcmp(key, "mean")) { /* what readers check (spec 5.2) */
        bad_norm = d.nodes[0].type != APD__J_ARR || d.nodes[0].count != w->hdr.c;
        for (int e = d.nodes[0].first; e >= 0 && !bad_norm; e = d.nodes[e].next) {
            double x;
            bad_norm = !apd__json_num(&d, e, &x) || !apd__norm_value_ok(is_std, x);
        }
    }
    apd__json_free(&d);
    if (bad_norm)
        return wfail(w, APD_EINVAL, 0, "set_meta: \"%s\" must be an array of %u numbers in %s", key, w->hdr.c,
                     is_std ? "{0} or [1e-6, 1]" : "[0, 1]");
    char *v = strdup(json_value);
    if (!v) return wfail(w, APD_ENOMEM, 0, "set_meta: out of memory");
    for (size_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[i].key, key)) {
            free(w->meta[i].val);
            w->meta[i].val = v;
            return APD_OK;
        }
    char *k = strdup(key);
    meta_kv *nm = realloc(w->meta, (w->n_meta + 1) * sizeof *nm);
    if (!k || !nm) {
        free(k);
        free(v);
        if (nm) w->meta = nm;
        return wfail(w, APD_ENOMEM, 0, "set_meta: out of memory");
    }
    w->meta = nm;
    w->meta[w->n_meta].key = k;
    w->meta[w->n_meta].val = v;
    w->n_meta++;
    return APD_OK;
}

/* ---- LMDB transaction ---------------------------------------------------------------------- */

static apd_status ensure_map(apd_writer *w, size_t bytes)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(w->env, &info);
    mdb_env_stat(w->env, &st);
    size_t used = ((size_t)info.me_last_pgno + 1) * st.ms_psize;
    size_t need = used + 2 * bytes + ((size_t)8 << 20);
    if (need <= w->mapsize) return APD_OK;
    size_t ns = w->mapsize;
    while (ns < need) ns *= 2;
    int rc = mdb_env_set_mapsize(w->env, ns);
    if (rc) return wfail(w, lmdb_status(rc), 1, "growing the LMDB map to %zu bytes: %s", ns, mdb_strerror(rc));
    w->mapsize = ns;
    return APD_OK;
}

/* LMDB turns a short write (a full disk) into EIO; tell that case apart for the message. */
static int out_of_space(const apd_writer *w, size_t bytes)
{
    struct statvfs sv;
    return w->part && statvfs(w->part, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < 2 * (uint64_t)bytes + 65536;
}

/* Write chunk value (if any), header and metadata in one transaction. */
static apd_status write_txn(apd_writer *w, const uint8_t *chunk, size_t chunk_len)
{
    /* 1.1 only when a 1.1 feature is used, 1.2 when the index model has version 2; set
       before the metadata, which repeats it */
    w->hdr.minor = w->im && w->im->ver >= 2 ? 2 : w->im || w->o.soft_labels ? 1 : 0;
    apd__sb js = {0};
    if (build_json(w, &js) != APD_OK) {
        apd__sb_free(&js);
        return wfail(w, APD_ENOMEM, 1, "building metadata: out of memory");
    }
    size_t jlen = js.len;
    uint8_t *jv = malloc(jlen + 4);
    if (!jv) {
        apd__sb_free(&js);
        return wfail(w, APD_ENOMEM, 1, "out of memory");
    }
    memcpy(jv + 4, js.p, jlen);
    apd__st32(jv, apd_crc32c(0, js.p, jlen));
    apd__sb_free(&js);

    w->hdr.n_records = w->n;
    w->hdr.flags = (w->dict ? APD__HFLAG_DICT : 0) | (w->im ? APD__HFLAG_IMODEL : 0) |
                   (w->o.soft_labels ? APD__HFLAG_SOFT : 0);
    uint8_t hb[APD__HEADER_LEN];
    apd__header_encode(hb, &w->hdr);

    apd_status s = APD_OK;
    for (int attempt = 0; attempt < 48; attempt++) {
        s = ensure_map(w, chunk_len + jlen + w->dict_len + w->imv_len + 65536);
        if (s) break;
        MDB_txn *txn;
        int rc = mdb_txn_begin(w->env, NULL, 0, &txn);
        if (rc) {
            s = wfail(w, lmdb_status(rc), 1, "beginning a write transaction: %s", mdb_strerror(rc));
            break;
        }
        uint8_t key[8];
        for (int i = 0; i < 8; i++) key[i] = (uint8_t)(w->chunk_no >> (56 - 8 * i));
        MDB_val k, v;
        if (chunk) {
            k.mv_data = key; k.mv_size = 8;
            v.mv_data = (void *)(uintptr_t)chunk; v.mv_size = chunk_len;
            rc = mdb_put(txn, w->dbi_chunks, &k, &v, 0);
        }
        if (!rc) {
            k.mv_data = (void *)APD__KEY_HEADER; k.mv_size = strlen(APD__KEY_HEADER);
            v.mv_data = hb; v.mv_size = sizeof hb;
            rc = mdb_put(txn, w->dbi_meta, &k, &v, 0);
        }
        if (!rc) {
            k.mv_data = (void *)APD__KEY_JSON; k.mv_size = strlen(APD__KEY_JSON);
            v.mv_data = jv; v.mv_size = jlen + 4;
            rc = mdb_put(txn, w->dbi_meta, &k, &v, 0);
        }
        if (!rc && w->dict && !w->dict_written) {
            uint8_t *dv = malloc(w->dict_len + 4);
            if (!dv) {
                mdb_txn_abort(txn);
                s = wfail(w, APD_ENOMEM, 1, "out of memory");
                break;
            }
            apd__st32(dv, apd_crc32c(0, w->dict, w->dict_len));
            memcpy(dv + 4, w->dict, w->dict_len);
            k.mv_data = (void *)APD__KEY_DICT; k.mv_size = strlen(APD__KEY_DICT);
            v.mv_data = dv; v.mv_size = w->dict_len + 4;
            rc = mdb_put(txn, w->dbi_meta, &k, &v, 0);
            free(dv);
        }
        if (!rc && w->imv && !w->imv_written) {
            k.mv_data = (void *)APD__KEY_IMODEL; k.mv_size = strlen(APD__KEY_IMODEL);
            v.mv_data = w->imv; v.mv_size = w->imv_len;
            rc = mdb_put(txn, w->dbi_meta, &k, &v, 0);
        }
        if (!rc) {
            rc = mdb_txn_commit(txn);
            if (!rc) {
                if (w->dict) w->dict_written = 1;
                if (w->imv) w->imv_written = 1;
                s = APD_OK;
                break;
            }
        } else {
            mdb_txn_abort(txn);
        }
        if (rc == MDB_MAP_FULL) { /* grow and retry: the staged data is still here */
            int rc2 = mdb_env_set_mapsize(w->env, w->mapsize * 2);
            if (rc2) {
                s = wfail(w, lmdb_status(rc2), 1, "growing the LMDB map: %s", mdb_strerror(rc2));
                break;
            }
            w->mapsize *= 2;
            s = APD_ELMDB;
            continue;
        }
        s = wfail(w, lmdb_status(rc), 1, "writing chunk %llu: %s", (unsigned long long)w->chunk_no,
                  rc == EIO && out_of_space(w, chunk_len + jlen) ? "No space left on device (LMDB: short write)"
                                                                   : mdb_strerror(rc));
        break;
    }
    free(jv);
    if (s == APD_ELMDB && !w->poisoned) s = wfail(w, APD_ELMDB, 1, "LMDB map could not be grown enough");
    return s;
}

/* ---- record encoding ------------------------------------------------------------------------ */

static apd_status stage_reserve(apd_writer *w, size_t more)
{
    if (w->stage_len + more <= w->stage_cap) return APD_OK;
    size_t nc = w->stage_cap ? w->stage_cap : 4096;
    while (nc < w->stage_len + more) nc *= 2;
    uint8_t *np = realloc(w->stage, nc);
    if (!np) return wfail(w, APD_ENOMEM, 1, "out of memory staging records");
    w->stage = np;
    w->stage_cap = nc;
    return APD_OK;
}

/* Coded body (format 1.1) of a plain palette body into w->ibuf: palette sorted by luminance,
 * indices remapped (pixels unchanged). Returns its size, 0 if a symbol is not in the model. */
static size_t code_body(apd_writer *w, uint32_t k, const uint8_t *body)
{
    uint8_t pal[768];
    size_t pl = (size_t)k * w->hdr.c;
    memcpy(pal, body, pl);
    apd__unpack(body + pl, w->g.npix, w->hdr.bits, w->iidx);
    apd__ic_sort_palette(pal, k, w->hdr.c, w->iidx, w->g.npix);
    return apd__icode_encode(w->im, pal, k, w->iidx, w->hdr.h, w->hdr.w, w->ibuf, w->ibuf_cap);
}

/* Bytes before the body of a staged record: header, source id, soft labels. */
static size_t rec_head_len(const apd_writer *w, const uint8_t *r)
{
    return APD__REC_HDR + ((r[4] & APD__RFLAG_SID) ? APD__REC_SID : 0) +
           ((r[4] & APD__RFLAG_SOFT) ? w->g.soft_bytes : 0);
}

/* Append record j to the staging buffer: header + sid + soft labels (encoded, or NULL) + body
 * (compressed if it pays). */
static apd_status stage_record(apd_writer *w, uint32_t k, uint32_t label, uint64_t sid,
                               const uint8_t *soft, const uint8_t *body, size_t body_len, int raw)
{
    const uint8_t *stored = body;
    size_t stored_len = body_len;
    uint32_t flags = w->hdr.kind;
    if (sid != APD_NO_SOURCE_ID) flags |= APD__RFLAG_SID;
    if (soft) flags |= APD__RFLAG_SOFT;
    size_t cl = !raw && w->im ? code_body(w, k, body) : 0;
    if (cl && cl < body_len) {
        stored = w->ibuf;
        stored_len = cl;
        flags |= APD__RFLAG_ICODE;
    } else if (!raw && w->o.compress != APD_COMPRESS_OFF && !w->zoff) {
        size_t cs = w->cdict ? ZSTD_compress_usingCDict(w->cctx, w->ztmp, w->ztmp_cap, body, body_len, w->cdict)
                             : ZSTD_compressCCtx(w->cctx, w->ztmp, w->ztmp_cap, body, body_len, w->o.zstd_level);
        if (!ZSTD_isError(cs)) {
            size_t limit = w->o.compress == APD_COMPRESS_ON ? body_len : body_len - body_len / 16;
            if (cs < limit) {
                stored = w->ztmp;
                stored_len = cs;
                flags |= APD__RFLAG_ZSTD | (w->cdict ? APD__RFLAG_DICT : 0);
            }
        }
    }
    size_t rl = APD__REC_HDR + (sid != APD_NO_SOURCE_ID ? APD__REC_SID : 0) +
                (soft ? w->g.soft_bytes : 0) + stored_len;
    APD_TRY(stage_reserve(w, rl));
    uint8_t *r = w->stage + w->stage_len;
    memset(r, 0, APD__REC_HDR);
    r[4] = (uint8_t)flags;
    r[5] = (uint8_t)(k ? k - 1 : 0);
    apd__st32(r + 8, label);
    size_t off = APD__REC_HDR;
    if (sid != APD_NO_SOURCE_ID) {
        apd__st64(r + off, sid);
        off += APD__REC_SID;
    }
    if (soft) {
        memcpy(r + off, soft, w->g.soft_bytes);
        off += w->g.soft_bytes;
    }
    memcpy(r + off, stored, stored_len);
    apd__st32(r, raw ? 0 : apd_crc32c(0, r + 4, rl - 4));
    w->stage_off[w->stage_n] = (uint32_t)w->stage_len;
    w->stage_len += rl;
    w->stage_n++;
    w->stage_off[w->stage_n] = (uint32_t)w->stage_len;
    return APD_OK;
}

/* Size a body is stored at under the per-record rule (cs = zstd result). */
static size_t kept_size(const apd_writer *w, size_t body_len, size_t cs)
{
    size_t limit = w->o.compress == APD_COMPRESS_ON ? body_len : body_len - body_len / 16;
    return !ZSTD_isError(cs) && cs < limit ? cs : body_len;
}

/* The index coding decision (format 1.1), made with the zstd one on the same raw records:
 * a model is built from their symbols (palettes sorted by luminance) and every record is
 * coded with it; total = model value + per record min(coded, plain). AUTO keeps it when it
 * saves >= 10% of the plain bodies (a coded record decodes several times slower than a plain
 * one, so small gains are not worth it) and beats what zstd stores (zstore); ON always keeps
 * it. When kept, zstd is off for the file; each record is coded only if that is smaller. */
static apd_status decide_icode(apd_writer *w, const uint8_t *raw, const uint32_t *roff,
                               uint32_t n, size_t zstore)
{
    apd__icounts *ct = malloc(sizeof *ct);
    apd__imodel *m = calloc(1, sizeof *m);
    size_t pl_max = (size_t)w->hdr.k * w->hdr.c;
    w->ibuf_cap = 2 * (pl_max + w->g.npix) + 64;
    if (!w->ibuf) w->ibuf = malloc(w->ibuf_cap);
    if (!w->iidx) w->iidx = malloc(w->g.npix ? w->g.npix : 1);
    if (!ct || !m || !w->ibuf || !w->iidx) {
        free(ct);
        free(m);
        return wfail(w, APD_ENOMEM, 1, "out of memory");
    }
    apd__icounts_init(ct, w->hdr.c, w->hdr.bits);
    uint8_t pal[768];
    size_t plain = 0;
    for (uint32_t j = 0; j < n; j++) {
        const uint8_t *r = raw + roff[j];
        size_t hl = rec_head_len(w, r);
        uint32_t k = (uint32_t)r[5] + 1;
        size_t pl = (size_t)k * w->hdr.c;
        memcpy(pal, r + hl, pl);
        apd__unpack(r + hl + pl, w->g.npix, w->hdr.bits, w->iidx);
        apd__ic_sort_palette(pal, k, w->hdr.c, w->iidx, w->g.npix);
        apd__icounts_add(ct, pal, k, w->iidx, w->hdr.h, w->hdr.w);
        plain += roff[j + 1] - roff[j] - hl;
    }
    apd_status s = apd__imodel_build(ct, m);
    m->ver = w->o.index_model_version == 1 ? 1 : APD__IC_VERSION;
    free(ct);
    if (s) {
        free(m);
        return wfail(w, s, 1, "out of memory");
    }
    size_t mlen = apd__imodel_write(m, NULL), coded = mlen;
    w->im = m;
    for (uint32_t j = 0; j < n; j++) {
        const uint8_t *r = raw + roff[j];
        size_t hl = rec_head_len(w, r);
        size_t bl = roff[j + 1] - roff[j] - hl;
        size_t cl = code_body(w, (uint32_t)r[5] + 1, r + hl);
        coded += cl && cl < bl ? cl : bl;
    }
    int keep = w->o.index_coding == APD_ICODE_ON || (coded <= plain - plain / 10 && coded < zstore);
    if (keep) w->imv = malloc(mlen);
    if (!keep || !w->imv) {
        w->im = NULL;
        apd__imodel_free(m);
        free(m);
        return keep ? wfail(w, APD_ENOMEM, 1, "out of memory") : APD_OK;
    }
    w->imv_len = apd__imodel_write(m, w->imv);
    w->zoff = 1; /* coded or plain records only */
    ZSTD_freeCDict(w->cdict);
    w->cdict = NULL;
    free(w->dict);
    w->dict = NULL;
    w->dict_len = 0;
    return APD_OK;
}

/* The compression decision, made once on the records staged at the first flush (usually the
 * first chunk), by measurement:
 *  - total = their bodies; without = stored size with per-record zstd; with = dictionary size
 *    + stored size with a dictionary trained on them (only with >= 64 records);
 *  - AUTO: if the better of the two saves less than 10% of total, the file is written
 *    uncompressed (a few compressible records would only slow decoding down: CIFAR K=64
 *    saves 0.25%); otherwise records are compressed, with the dictionary if it won;
 *  - ON: compress, with the dictionary if it won.
 * Then the staged raw records are encoded. */
static apd_status decide_dictionary(apd_writer *w)
{
    w->dict_decided = 1;
    uint32_t n = w->stage_n;
    uint8_t *raw = w->stage;
    uint32_t *roff = w->stage_off;
    size_t raw_len = w->stage_len;
    /* take the raw staging away; re-stage encoded */
    w->stage = NULL;
    w->stage_len = w->stage_cap = 0;
    w->stage_off = calloc((size_t)w->hdr.per_chunk + 1, sizeof *w->stage_off);
    w->stage_n = 0;
    w->raw_staged = 0;
    apd_status s = APD_OK;
    size_t *sizes = NULL;
    size_t zstore = SIZE_MAX; /* bytes with the zstd decision below (SIZE_MAX: not measured) */
    if (!w->stage_off) {
        s = wfail(w, APD_ENOMEM, 1, "out of memory");
        goto out;
    }
    if (w->o.compress != APD_COMPRESS_OFF && n > 0) {
        /* samples = bodies (skip the 12/20-byte headers) */
        sizes = malloc(n * sizeof *sizes);
        uint8_t *samples = malloc(raw_len);
        size_t total = 0;
        if (!sizes || !samples) {
            free(samples);
            s = wfail(w, APD_ENOMEM, 1, "out of memory");
            goto out;
        }
        for (uint32_t j = 0; j < n; j++) {
            const uint8_t *r = raw + roff[j];
            size_t hl = rec_head_len(w, r);
            sizes[j] = roff[j + 1] - roff[j] - hl;
            memcpy(samples + total, r + hl, sizes[j]);
            total += sizes[j];
        }
        size_t without = 0, with = SIZE_MAX, pos = 0;
        for (uint32_t j = 0; j < n; j++) {
            without += kept_size(w, sizes[j], ZSTD_compressCCtx(w->cctx, w->ztmp, w->ztmp_cap, samples + pos,
                                                                sizes[j], w->o.zstd_level));
            pos += sizes[j];
        }
        size_t cap = total / 8 < DICT_MAX_BYTES ? total / 8 : DICT_MAX_BYTES;
        void *dict = w->o.dictionary && n >= DICT_MIN_RECORDS && cap >= 1024 ? malloc(cap) : NULL;
        ZSTD_CDict *cd = NULL;
        size_t dl = 0;
        if (dict) {
            dl = ZDICT_trainFromBuffer(dict, cap, samples, sizes, n);
            if (!ZDICT_isError(dl)) cd = ZSTD_createCDict(dict, dl, w->o.zstd_level);
            if (cd) {
                with = dl;
                pos = 0;
                for (uint32_t j = 0; j < n; j++) {
                    with += kept_size(w, sizes[j], ZSTD_compress_usingCDict(w->cctx, w->ztmp, w->ztmp_cap,
                                                                            samples + pos, sizes[j], cd));
                    pos += sizes[j];
                }
            }
        }
        size_t best = with < without ? with : without;
        zstore = best;
        if (w->o.compress == APD_COMPRESS_AUTO && best > total - total / 10) {
            w->zoff = 1; /* not worth it for this data */
            zstore = SIZE_MAX;
        } else if (cd && with < without) {
            w->dict = dict;
            w->dict_len = dl;
            w->cdict = cd;
            dict = NULL;
            cd = NULL;
        }
        ZSTD_freeCDict(cd);
        free(dict);
        free(samples);
    }
    if (s == APD_OK && w->hdr.kind == APD_KIND_PALETTE && w->o.index_coding != APD_ICODE_OFF && n > 0)
        s = decide_icode(w, raw, roff, n, zstore);
    for (uint32_t j = 0; j < n && s == APD_OK; j++) {
        const uint8_t *r = raw + roff[j];
        int has_sid = (r[4] & APD__RFLAG_SID) != 0;
        size_t hl = rec_head_len(w, r);
        const uint8_t *soft = (r[4] & APD__RFLAG_SOFT) ? r + APD__REC_HDR + (has_sid ? APD__REC_SID : 0) : NULL;
        uint32_t k = w->hdr.kind == APD_KIND_PALETTE ? (uint32_t)r[5] + 1 : 0;
        s = stage_record(w, k, apd__ld32(r + 8), has_sid ? apd__ld64(r + APD__REC_HDR) : APD_NO_SOURCE_ID,
                         soft, r + hl, roff[j + 1] - roff[j] - hl, 0);
    }
out:
    free(sizes);
    free(raw);
    free(roff);
    return s;
}

/* Write the current chunk (and header + metadata). full: the chunk is complete, move on. */
static apd_status flush(apd_writer *w, int full)
{
    /* decide on the first records; a commit before any record leaves the decision open */
    if (w->raw_staged && w->stage_n > 0) APD_TRY(decide_dictionary(w));
    if (w->stage_n == 0) return write_txn(w, NULL, 0);
    size_t table = APD__CHUNK_HDR + 4u * ((size_t)w->stage_n + 1);
    size_t total = table + w->stage_len;
    if (total > w->chunkbuf_cap) {
        uint8_t *nb = realloc(w->chunkbuf, total);
        if (!nb) return wfail(w, APD_ENOMEM, 1, "out of memory building chunk");
        w->chunkbuf = nb;
        w->chunkbuf_cap = total;
    }
    if (total > 0xffffffffu) return wfail(w, APD_ELIMIT, 1, "chunk larger than 4 GiB");
    uint8_t *c = w->chunkbuf;
    memset(c, 0, APD__CHUNK_HDR);
    memcpy(c + 4, APD__CHUNK_MAGIC, 4);
    apd__st32(c + 8, w->stage_n);
    apd__st64(c + 16, w->chunk_no);
    for (uint32_t j = 0; j <= w->stage_n; j++)
        apd__st32(c + APD__CHUNK_HDR + 4u * j, (uint32_t)(table + w->stage_off[j]));
    apd__st32(c, apd_crc32c(0, c + 4, table - 4));
    memcpy(c + table, w->stage, w->stage_len);
    APD_TRY(write_txn(w, c, total));
    if (full) {
        w->chunk_no++;
        w->stage_n = 0;
        w->stage_len = 0;
        w->stage_off[0] = 0;
    }
    return APD_OK;
}

/* Encode and check a soft-label vector into w->softbuf (NULL soft: nothing to do). */
static apd_status soft_encode(apd_writer *w, const float *soft, uint32_t label)
{
    if (!soft) return APD_OK;
    if (!w->o.soft_labels)
        return wfail(w, APD_EINVAL, 0, "record %llu: soft labels given but the file was created without "
                     "soft_labels", (unsigned long long)w->n);
    for (uint32_t j = 0; j < w->hdr.n_classes; j++) {
        uint32_t u;
        memcpy(&u, &soft[j], sizeof u);
        apd__st32(w->softbuf + 4u * j, u);
    }
    uint32_t cls;
    const char *why = "";
    if (apd__soft_check(w->softbuf, w->hdr.n_classes, label, &cls, &why) != APD_OK) {
        if (cls < w->hdr.n_classes)
            return wfail(w, APD_EINVAL, 0, "record %llu (label %u): class %u value %g: %s", (unsigned long long)w->n,
                         label, cls, (double)soft[cls], why);
        return wfail(w, APD_EINVAL, 0, "record %llu (label %u): %s", (unsigned long long)w->n, label, why);
    }
    return APD_OK;
}

static apd_status put_common(apd_writer *w, uint32_t k, uint32_t label, uint64_t sid,
                             const float *soft, const uint8_t *body, size_t body_len)
{
    if (w->n >= w->o.limits.max_records)
        return wfail(w, APD_ELIMIT, 0, "record %llu: record count limit reached", (unsigned long long)w->n);
    if (w->hdr.n_classes && label >= w->hdr.n_classes)
        return wfail(w, APD_EINVAL, 0, "record %llu: label %u >= n_classes %u", (unsigned long long)w->n,
                     label, w->hdr.n_classes);
    APD_TRY(soft_encode(w, soft, label));
    APD_TRY(stage_record(w, k, label, sid, soft ? w->softbuf : NULL, body, body_len, w->raw_staged));
    if (w->hdr.n_classes) w->class_counts[label]++;
    w->n++;
    if (w->stage_n == w->hdr.per_chunk) return flush(w, 1);
    return APD_OK;
}

apd_status apd_writer_put_palette(apd_writer *w, const uint8_t *palette, uint32_t k,
                                  const uint8_t *indices, uint32_t label, uint64_t source_id)
{
    return apd_writer_put_palette_soft(w, palette, k, indices, label, source_id, NULL);
}

apd_status apd_writer_put_palette_soft(apd_writer *w, const uint8_t *palette, uint32_t k,
                                       const uint8_t *indices, uint32_t label, uint64_t source_id,
                                       const float *soft)
{
    if (!w) return APD_EINVAL;
    if (w->poisoned) return APD_EBADSTATE;
    if (w->hdr.kind != APD_KIND_PALETTE) return wfail(w, APD_EINVAL, 0, "put_palette on a direct-colour file");
    if (!palette || !indices) return wfail(w, APD_EINVAL, 0, "put_palette: NULL palette or indices");
    if (k < 1 || k > w->hdr.k)
        return wfail(w, APD_EINVAL, 0, "record %llu: palette size %u not in 1..%u", (unsigned long long)w->n, k, w->hdr.k);
    uint8_t mx = 0;
    for (size_t i = 0; i < w->g.npix; i++) mx = indices[i] > mx ? indices[i] : mx;
    if (mx >= k)
        return wfail(w, APD_EINVAL, 0, "record %llu: index %u >= palette size %u", (unsigned long long)w->n, mx, k);
    size_t pl = (size_t)k * w->hdr.c;
    memcpy(w->tmp, palette, pl);
    apd__pack(indices, w->g.npix, w->hdr.bits, w->tmp + pl);
    return put_common(w, k, label, source_id, soft, w->tmp, pl + w->g.packed);
}

apd_status apd_writer_put_direct(apd_writer *w, const uint8_t *chw, uint32_t label,
                                 uint64_t source_id)
{
    return apd_writer_put_direct_soft(w, chw, label, source_id, NULL);
}

apd_status apd_writer_put_direct_soft(apd_writer *w, const uint8_t *chw, uint32_t label,
                                      uint64_t source_id, const float *soft)
{
    if (!w) return APD_EINVAL;
    if (w->poisoned) return APD_EBADSTATE;
    if (w->hdr.kind != APD_KIND_DIRECT) return wfail(w, APD_EINVAL, 0, "put_direct on a palette file");
    if (!chw) return wfail(w, APD_EINVAL, 0, "put_direct: NULL image");
    return put_common(w, 0, label, source_id, soft, chw, w->g.max_body);
}

apd_status apd_writer_commit(apd_writer *w)
{
    if (!w) return APD_EINVAL;
    if (w->poisoned) return APD_EBADSTATE;
    return flush(w, w->stage_n == w->hdr.per_chunk);
}

/* Rewrite the committed temporary without LMDB's free pages (mdb_env_copyfd2 MDB_CP_COMPACT
 * into a second temporary). Small files shrink a lot (a 100-image distilled set would
 * otherwise carry ~10 pages of free space). A failure here is not an error: the uncompacted
 * temporary is published instead. Returns the file to publish. */
static const char *compact(apd_writer *w)
{
    char why[300];
    if (apd__out_temp(w->path, &w->cpart, &w->cpart_fd, why, sizeof why) != APD_OK) return w->part;
    if (mdb_env_copyfd2(w->env, w->cpart_fd, MDB_CP_COMPACT) != 0) {
        apd__out_remove(w->cpart);
        free(w->cpart);
        w->cpart = NULL;
        return w->part;
    }
    return w->cpart;
}

/* LMDB may leave pages it allocated and freed in one transaction unwritten at the end of the
 * file; the format requires the file to cover (last page + 1) * page size (spec section 3),
 * so extend it with zeros (those pages are free, nothing reads them). */
static apd_status cover_last_page(apd_writer *w)
{
    MDB_envinfo info;
    MDB_stat ms;
    struct stat st;
    mdb_env_info(w->env, &info);
    mdb_env_stat(w->env, &ms);
    off_t need = (off_t)(info.me_last_pgno + 1) * (off_t)ms.ms_psize;
    if (fstat(w->part_fd, &st) == 0 && st.st_size >= need) return APD_OK;
    if (ftruncate(w->part_fd, need) != 0)
        return wfail(w, apd__status_from_errno(errno), 1, "extending %s: %s", w->part, strerror(errno));
    return APD_OK;
}

/* Read the finished file back through the reader: header, metadata (complete), LMDB pages,
 * chunk tables and every record checksum. */
static apd_status verify_output(apd_writer *w, const char *file)
{
    apd_reader *r;
    apd_err e;
    apd_status s = apd_reader_open(&r, file, &w->o.limits, &e);
    if (s) {
        wfail(w, s, 1, "verifying the finished file: %s", e.msg);
    } else {
        if (apd_reader_count(r) != w->n)
            s = wfail(w, APD_ECORRUPT, 1, "verifying the finished file: %llu records, %llu were written",
                      (unsigned long long)apd_reader_count(r), (unsigned long long)w->n);
        for (uint64_t i = 0; i < w->n && !s; i++)
            if ((s = apd_reader_verify_record(r, i)) != APD_OK)
                wfail(w, s, 1, "verifying the finished file: %s", apd_reader_errmsg(r));
        apd_reader_close(r);
    }
    char lock[8200];
    snprintf(lock, sizeof lock, "%s-lock", file); /* the verification's, not the output's */
    unlink(lock);
    return s;
}

apd_status apd_writer_finish(apd_writer *w, apd_err *err)
{
    if (!w) return APD_OK;
    apd_status s = w->poisoned ? APD_EBADSTATE : APD_OK;
    if (s == APD_OK) {
        w->finishing = 1;
        s = flush(w, 0);
    }
    const char *file = w->part;
    if (s == APD_OK && !w->o.no_compact) file = compact(w);
    if (s == APD_OK && file == w->part) s = cover_last_page(w);
    if (w->env) mdb_env_close(w->env);
    w->env = NULL;
    if (file == w->cpart) { /* compacted: the LMDB temporary is no longer needed */
        apd__out_remove(w->part);
        free(w->part);
        w->part = NULL;
    }
    if (s == APD_OK) s = verify_output(w, file);
    if (s == APD_OK) {
        char why[400];
        s = apd__out_publish(file, w->path, w->o.force, !w->o.no_sync, why, sizeof why);
        if (s) wfail(w, s, 1, "%s", why);
    }
    if (s == APD_OK) {
        char lock[8200];
        snprintf(lock, sizeof lock, "%s-lock", w->path); /* a lock table of the replaced file */
        unlink(lock);
        char **published = file == w->part ? &w->part : &w->cpart;
        free(*published);
        *published = NULL;
    } else if (s == APD_EBADSTATE && !w->msg[0]) {
        wfail(w, s, 1, "an earlier error stopped this writer; nothing was written at the output");
    }
    if (s) apd__err_set(err, s, "%s", w->msg);
    writer_free(w);
    return s;
}

apd_status apd_writer_close(apd_writer *w) { return apd_writer_finish(w, NULL); }

unsigned apd_writer_remove_stale(const char *path) { return path ? apd__out_clean_stale(path) : 0; }

void apd_writer_discard(apd_writer *w) { writer_free(w); }

/* ---- create ----------------------------------------------------------------------------- */

static uint32_t auto_per_chunk(size_t max_rec)
{
    size_t n = (TARGET_CHUNK_BYTES - APD__CHUNK_HDR) / (max_rec + 4);
    if (n < 1) n = 1;
    if (n > 65536) n = 65536;
    return (uint32_t)n;
}

apd_status apd_writer_create(apd_writer **out, const char *path, const apd_writer_opts *opts,
                             apd_err *err)
{
    if (!out) return apd__err_set(err, APD_EINVAL, "apd_writer_create: out is NULL");
    *out = NULL;
    if (!path || !opts) return apd__err_set(err, APD_EINVAL, "apd_writer_create: NULL path or options");
    apd_writer_opts o = *opts;
    apd_limits dl;
    apd_limits_default(&dl);
    if (!o.limits.max_dim) o.limits.max_dim = dl.max_dim;
    if (!o.limits.max_value_bytes) o.limits.max_value_bytes = dl.max_value_bytes;
    if (!o.limits.max_records) o.limits.max_records = dl.max_records;
    if (!o.zstd_level) o.zstd_level = 3;
    if (o.kind != APD_KIND_PALETTE && o.kind != APD_KIND_DIRECT)
        return apd__err_set(err, APD_EINVAL, "%s: kind must be palette (1) or direct (2)", path);
    if (o.c != 1 && o.c != 3) return apd__err_set(err, APD_EINVAL, "%s: channels must be 1 or 3, not %u", path, o.c);
    if (o.h == 0 || o.w == 0) return apd__err_set(err, APD_EINVAL, "%s: zero image size", path);
    if (o.h > o.limits.max_dim || o.w > o.limits.max_dim)
        return apd__err_set(err, APD_ELIMIT, "%s: %ux%u exceeds the size limit %u", path, o.h, o.w, o.limits.max_dim);
    if (o.kind == APD_KIND_PALETTE && (o.k < 1 || o.k > APD_MAX_COLORS))
        return apd__err_set(err, APD_EINVAL, "%s: palette size k must be 1..%u, not %u", path,
                            APD_MAX_COLORS, o.k);
    if (o.compress > APD_COMPRESS_ON) return apd__err_set(err, APD_EINVAL, "%s: bad compress mode", path);
    if (o.index_coding > APD_ICODE_ON) return apd__err_set(err, APD_EINVAL, "%s: bad index coding mode", path);
    if (o.index_model_version > 2)
        return apd__err_set(err, APD_EINVAL, "%s: index model version %u (this library writes 1 and 2)", path,
                            o.index_model_version);
    if (o.soft_labels && o.n_classes == 0)
        return apd__err_set(err, APD_EINVAL, "%s: soft labels need n_classes >= 1", path);
    o.soft_labels = o.soft_labels != 0;
    for (uint32_t ch = 0; ch < o.c; ch++)
        if (!apd__norm_value_ok(0, o.mean[ch]) || !apd__norm_value_ok(1, o.std[ch]))
            return apd__err_set(err, APD_EINVAL,
                                "%s: channel %u mean %g / std %g out of range (pixels / 255: mean in [0, 1], "
                                "std 0 for unknown or in [1e-6, 1])", path, ch, (double)o.mean[ch], (double)o.std[ch]);

    char why[400];
    apd_status s = apd__out_check_target(path, o.force, why, sizeof why);
    if (s) return apd__err_set(err, s, "%s: %s", path, why);
    apd__out_clean_stale(path); /* temporaries of writers of this path that died */

    apd_writer *w = calloc(1, sizeof *w);
    if (!w) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    w->part_fd = w->cpart_fd = -1;
    w->o = o;
    w->path = strdup(path);
    w->hdr.major = APD_FORMAT_VERSION_MAJOR;
    w->hdr.minor = APD_FORMAT_VERSION_MINOR;
    w->hdr.hlen = APD__HEADER_LEN;
    w->hdr.kind = o.kind;
    w->hdr.c = o.c;
    w->hdr.k = o.kind == APD_KIND_PALETTE ? o.k : 0;
    w->hdr.bits = o.kind == APD_KIND_PALETTE ? apd_bits_for_k(o.k) : 0;
    w->hdr.h = o.h;
    w->hdr.w = o.w;
    w->hdr.n_classes = o.n_classes;
    w->hdr.flags = o.soft_labels ? APD__HFLAG_SOFT : 0; /* sizes the records (geometry) */
    w->hdr.per_chunk = 1;
    const char *gwhy = "";
    s = apd__geom_from_header(&w->hdr, &o.limits, &w->g, &gwhy);
    if (s) {
        writer_free(w);
        return apd__err_set(err, s, "%s: %s", path, gwhy);
    }
    w->hdr.per_chunk = o.records_per_chunk ? o.records_per_chunk : auto_per_chunk(apd__max_record(&w->g));
    if (o.dataset_name) snprintf(w->dataset, sizeof w->dataset, "%s", o.dataset_name);
    iso_time(w->created);
    w->stage_off = calloc((size_t)w->hdr.per_chunk + 1, sizeof *w->stage_off);
    w->tmp = malloc(w->g.max_body ? w->g.max_body : 1);
    w->softbuf = malloc(w->g.soft_bytes ? w->g.soft_bytes : 1);
    w->ztmp_cap = ZSTD_compressBound(w->g.max_body);
    w->ztmp = malloc(w->ztmp_cap);
    w->cctx = ZSTD_createCCtx();
    if (o.n_classes) w->class_counts = calloc(o.n_classes, sizeof *w->class_counts);
    if (o.n_classes && o.class_names) {
        w->class_names = calloc(o.n_classes, sizeof *w->class_names);
        if (w->class_names)
            for (uint32_t i = 0; i < o.n_classes; i++) { /* valid UTF-8, cut on a boundary */
                char name[64];
                memcpy(name, o.class_names[i], 63);
                name[63] = 0;
                apd__utf8_fit(w->class_names[i], sizeof w->class_names[i], name);
            }
    }
    if (!w->path || !w->stage_off || !w->tmp || !w->softbuf || !w->ztmp || !w->cctx ||
        (o.n_classes && !w->class_counts) || (o.n_classes && o.class_names && !w->class_names)) {
        writer_free(w);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    }
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 0);
    /* decide at the first flush */
    w->raw_staged = o.compress != APD_COMPRESS_OFF ||
                    (o.kind == APD_KIND_PALETTE && o.index_coding != APD_ICODE_OFF);
    w->dict_decided = !w->raw_staged;

    s = apd__out_temp(path, &w->part, &w->part_fd, why, sizeof why);
    if (s) {
        writer_free(w);
        return apd__err_set(err, s, "%s: %s", path, why);
    }
    /* MDB_NOLOCK: nothing but this writer ever opens the temporary while it is written */
    int rc = mdb_env_create(&w->env);
    if (!rc) rc = mdb_env_set_maxdbs(w->env, 4);
    w->mapsize = (size_t)64 << 20;
    if (!rc) rc = mdb_env_set_mapsize(w->env, w->mapsize);
    if (!rc) rc = mdb_env_open(w->env, w->part, MDB_NOSUBDIR | MDB_NOLOCK | (o.no_sync ? MDB_NOSYNC : 0), 0644);
    if (rc) {
        s = rc > 0 ? apd__err_sys(err, rc, w->part, "creating the LMDB environment")
                   : apd__err_set(err, APD_ELMDB, "%s: creating the LMDB environment: %s", w->part, mdb_strerror(rc));
        writer_free(w);
        return s;
    }
    MDB_txn *txn;
    rc = mdb_txn_begin(w->env, NULL, 0, &txn);
    if (!rc) rc = mdb_dbi_open(txn, APD__DB_META, MDB_CREATE, &w->dbi_meta);
    if (!rc) rc = mdb_dbi_open(txn, APD__DB_CHUNKS, MDB_CREATE, &w->dbi_chunks);
    if (!rc) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc) {
        s = apd__err_set(err, APD_ELMDB, "%s: creating databases: %s", path, mdb_strerror(rc));
        writer_free(w);
        return s;
    }
    s = write_txn(w, NULL, 0); /* valid empty file from the start */
    if (s) {
        apd__err_set(err, s, "%s", w->msg);
        writer_free(w);
        return s;
    }
    *out = w;
    return APD_OK;
}
