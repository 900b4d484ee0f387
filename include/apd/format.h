/* apd/format.h: read and write .apd files (spec/apd-format.md, format versions 1.0 and 1.1).
 *
 * An .apd file is a single-file LMDB environment (MDB_NOSUBDIR) holding a binary header, a
 * JSON metadata document and chunks of records. While a writer has the file open, LMDB keeps
 * its lock table in "PATH-lock"; the writer removes it when it closes, and readers never
 * create it (spec/apd-format.md section 3 says why this is safe). Each record is one image:
 * either a palette record (K <= APD_MAX_COLORS = 256 colours of 8 bits per channel and a
 * bit-packed index map, 1..8 bits per index) or a direct-colour record (8 bits per channel),
 * plus its class label, an optional source id and (format 1.1, apd_writer_opts.soft_labels)
 * an optional soft-label vector of n_classes floats. Every record carries a CRC-32C that is
 * verified on every read.
 *
 * Reading:
 *
 *     apd_reader *r; apd_err err; apd_file_info fi;
 *     if (apd_reader_open(&r, "cifar10-k64.apd", NULL, &err) != APD_OK) {
 *         fprintf(stderr, "%s (%s)\n", err.msg, apd_strerror(err.code)); return 1; }
 *     apd_reader_info(r, &fi);
 *     uint8_t *img = malloc((size_t)fi.c * fi.h * fi.w);
 *     for (uint64_t i = 0; i < fi.n_records; i++) {
 *         uint32_t label;
 *         apd_status s = apd_reader_decode(r, i, APD_LAYOUT_HWC, img, (size_t)fi.c * fi.h * fi.w, &label);
 *         if (s != APD_OK) fprintf(stderr, "%s\n", apd_reader_errmsg(r));   // names file+record
 *     }
 *     apd_reader_close(r);
 *
 * Writing:
 *
 *     apd_writer_opts o; apd_writer_opts_default(&o);
 *     o.c = 3; o.h = 32; o.w = 32; o.kind = APD_KIND_PALETTE; o.k = 64; o.n_classes = 10;
 *     apd_writer *w;
 *     if (apd_writer_create(&w, "out.apd", &o, &err) != APD_OK) ...;
 *     apd_writer_set_meta(w, "method", "\"quantize\"");
 *     for (...) apd_writer_put_palette(w, palette, k, indices, label, APD_NO_SOURCE_ID);
 *     if (apd_writer_close(w) != APD_OK) ...;   // publishes; the handle is freed in any case
 *     // on a failure of the producer: apd_writer_discard(w) (out.apd is left as it was)
 *
 * Thread safety: a reader may be used from several threads at once for apd_reader_decode,
 * apd_reader_decode_batch, apd_reader_record, apd_reader_label and apd_reader_source_id (the
 * file is mapped read-only and opened with MDB_NOTLS). apd_reader_open/close are not
 * concurrent with other calls on the same reader. Each process must open its own reader
 * (LMDB environments must not cross fork()). A writer is single-threaded. Different handles
 * are independent.
 *
 * Errors: every call returns an apd_status. A handle keeps the last message (file, record,
 * key, reason) for apd_reader_errmsg / apd_writer_errmsg. After a fatal error (LMDB failure,
 * out of memory while writing) the handle is poisoned and later calls return APD_EBADSTATE.
 * A bad record (checksum, corrupt) is not fatal for a reader: other records stay readable, so
 * callers may choose to skip or fail.
 */
#ifndef APD_FORMAT_H
#define APD_FORMAT_H

#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define APD_FORMAT_VERSION_MAJOR 1
#define APD_FORMAT_VERSION_MINOR 2 /* highest minor read; writers emit 0 unless a 1.1 feature is used,
                                      2 when the index model has version 2 (format 1.2) */

#define APD_KIND_PALETTE 1u
#define APD_KIND_DIRECT 2u

/* Pass as source_id when a record has none (the record then stores no source id). */
#define APD_NO_SOURCE_ID UINT64_MAX

/* ---- limits ----------------------------------------------------------------------------- */

/* Limits applied to everything read from disk (and to what a writer accepts). Not options of
 * one call but bounds shared by readers and writers, hence apd_limits, not "_opts". */
typedef struct apd_limits {
    uint32_t max_dim;         /* max H and W; default 4096 */
    uint64_t max_value_bytes; /* max size of one LMDB value (chunk); default 1 GiB */
    uint64_t max_records;     /* max records in a file; default 2^32 */
} apd_limits;

/* Set the defaults listed above. */
APD_API void apd_limits_default(apd_limits *l);

/* ---- reader ----------------------------------------------------------------------------- */

typedef struct apd_reader apd_reader;

typedef struct apd_file_info {
    uint32_t version_major, version_minor;
    uint64_t n_records;
    uint32_t c, h, w;
    uint32_t kind;      /* APD_KIND_PALETTE | APD_KIND_DIRECT */
    uint32_t k;         /* max colours (0 for direct) */
    uint32_t bits;      /* index width in bits (0 for direct) */
    uint32_t n_classes;
    float mean[3], std[3]; /* source per-channel mean/std of pixels/255 (0 if unknown) */
    /* extensions: figures beyond the header fields */
    uint32_t records_per_chunk;
    uint64_t n_chunks;
    int has_dictionary;     /* a zstd dictionary is stored in the file */
    char dataset_name[64];  /* "" if unknown */
    int has_index_model;    /* format 1.1: entropy-coded index maps (model at meta/imodel): 0,
                               or the model's version (1: format 1.1; 2: format 1.2) */
    int has_soft_labels;    /* format 1.1: records may carry soft-label vectors (header flag
                               bit 1); see apd_reader_soft_label */
} apd_file_info;

typedef enum { APD_LAYOUT_HWC = 0, APD_LAYOUT_CHW = 1 } apd_layout;

/* Open PATH read-only. lim NULL = apd_limits_default. On failure *out is NULL and err (may
 * be NULL) names the file and reason; nothing needs closing. Creates no file: without a
 * "PATH-lock" LMDB is opened MDB_NOLOCK; with one (a writer of another program committing in
 * place) the reader joins that lock table so that its snapshot stays valid, and reads
 * without it if the table names another snapshot than the file's newest (a stale table).
 * Before LMDB maps the file its container is checked with pread (spec 3.1, 3.2), so a
 * truncated file or a damaged LMDB page is an error, never a crash.
 * @return APD_OK, APD_EINVAL, APD_ENOENT, APD_EACCES, APD_EIO, APD_ENOMEM,
 *         APD_EMAGIC (not an LMDB file, or wrong magic), APD_EFOREIGN (LMDB without .apd
 *         databases), APD_EVERSION, APD_ETRUNC (empty or truncated file; header, metadata or
 *         dictionary value too short), APD_ECHECKSUM, APD_ECORRUPT (also a damaged LMDB
 *         page), APD_EMETA (also "complete": false, an unfinished file, and mean/std out of
 *         range), APD_ELIMIT, APD_EOVERFLOW (geometry overflows size_t), APD_ELMDB. */
APD_API apd_status apd_reader_open(apd_reader **out, const char *path, const apd_limits *lim,
                                   apd_err *err);
APD_API void apd_reader_close(apd_reader *r); /* NULL ok */

/* Last error message of this reader ("" if none). Valid until the next call on r. */
APD_API const char *apd_reader_errmsg(const apd_reader *r);

/* Geometry, counts and normalisation of the file.
 * @return APD_OK, APD_EINVAL (r or out NULL). */
APD_API apd_status apd_reader_info(const apd_reader *r, apd_file_info *out);
/* Records in the file (0 for NULL). */
APD_API uint64_t apd_reader_count(const apd_reader *r);

/* The whole metadata document (JSON object, NUL-terminated). Valid until close. */
APD_API const char *apd_reader_meta_json(const apd_reader *r);
/* Class name of class cls, or NULL when the file has no names or cls is out of range.
 * Valid until close. */
APD_API const char *apd_reader_class_name(const apd_reader *r, uint32_t cls);
/* Committed count of records of class cls (from the metadata), 0 if out of range. */
APD_API uint64_t apd_reader_class_count(const apd_reader *r, uint32_t cls);

/* Decode record i to uint8 pixels in out (out_len >= c*h*w). HWC: out[(y*W + x)*C + ch];
 * CHW: out[(ch*H + y)*W + x]. label may be NULL. Verifies the record checksum.
 * Thread-safe (see top).
 * The record look-up shared by every per-record call below fails with: APD_ERANGE (i >=
 * count), APD_ENOTFOUND (its chunk is missing), APD_ELIMIT (chunk value above
 * max_value_bytes), APD_ECHECKSUM / APD_ECORRUPT / APD_ETRUNC (chunk table or record damaged),
 * APD_ELMDB (LMDB failure; poisons the reader), APD_EBADSTATE (reader poisoned).
 * @return APD_OK; APD_EINVAL (r or out NULL, unknown layout); APD_EBUFSIZE (out_len too
 *         small); the record look-up codes; APD_ECORRUPT (zstd body or indices invalid);
 *         APD_ENOMEM (decompression buffers). */
APD_API apd_status apd_reader_decode(apd_reader *r, uint64_t i, apd_layout layout, uint8_t *out,
                                     size_t out_len, uint32_t *label);
/* Decode record i straight to normalised float32: out[(ch*H + y)*W + x] =
 * ((float)v * (1.0f/255.0f) - mean[ch]) * (1.0f/std[ch]) in float, v the uint8 pixel value
 * apd_reader_decode would give (bit-identical to decoding to uint8 and converting with that
 * expression). layout must be APD_LAYOUT_CHW (anything else: APD_EINVAL); out_len is in floats
 * (>= c*h*w); mean/std have c entries. Validates and verifies the record checksum exactly as
 * apd_reader_decode. For palette records the palette is normalised once (k*c values) and
 * gathered by the bit-unpack kernel, so this costs about one table look-up per float.
 * Thread-safe.
 * @return the codes of apd_reader_decode (APD_EINVAL also for NULL mean/std or a layout
 *         other than APD_LAYOUT_CHW). */
APD_API apd_status apd_reader_decode_f32(apd_reader *r, uint64_t i, apd_layout layout,
                                         const float *mean, const float *std, float *out,
                                         size_t out_len, uint32_t *label);
/* Decode n records ids[0..n) as apd_reader_decode would, record j into out + j*out_stride
 * (out_stride in bytes, >= c*h*w), its label into labels[j] (labels may be NULL) and its
 * status into status[j]. Each record gets exactly the pixels and status of
 * apd_reader_decode; a failed record leaves its output undefined and does not stop the
 * batch. Faster than one call per record for index-coded records (format 1.1): they are
 * decoded eight at a time, the index decoders interleaved (about 2.5x the images/s with
 * AVX-512, 1.5-1.9x with AVX2 only).
 * Thread-safe. apd_reader_errmsg names the last failed record.
 * @return APD_OK if every record decoded, else the status of the first failed one;
 *         APD_EINVAL (r NULL, n > 0 with ids, out or status NULL, unknown layout);
 *         APD_EBUFSIZE (out_stride too small; nothing decoded). */
APD_API apd_status apd_reader_decode_batch(apd_reader *r, const uint64_t *ids, size_t n,
                                           apd_layout layout, uint8_t *out, size_t out_stride,
                                           uint32_t *labels, apd_status *status);
/* apd_reader_decode_batch to normalised float32 CHW: record j as apd_reader_decode_f32 gives
 * it, at out + j*out_stride (out_stride in floats, >= c*h*w). Same codes, plus APD_EINVAL
 * for NULL mean/std or a layout other than APD_LAYOUT_CHW. */
APD_API apd_status apd_reader_decode_f32_batch(apd_reader *r, const uint64_t *ids, size_t n,
                                               apd_layout layout, const float *mean,
                                               const float *std, float *out, size_t out_stride,
                                               uint32_t *labels, apd_status *status);
/* Label of record i (verifies the record checksum, does not decode pixels). Thread-safe.
 * @return APD_OK; APD_EINVAL (r or label NULL); the record look-up codes (see
 *         apd_reader_decode). */
APD_API apd_status apd_reader_label(apd_reader *r, uint64_t i, uint32_t *label);
/* Source id of record i; *id = APD_NO_SOURCE_ID when the record has none. Thread-safe.
 * @return APD_OK; APD_EINVAL (r or id NULL); the record look-up codes. */
APD_API apd_status apd_reader_source_id(apd_reader *r, uint64_t i, uint64_t *id);

/* Soft-label vector of record i (format 1.1, spec 7.5): out[0..n_classes) gets the record's
 * stored vector (*present = 1), or the one-hot vector of its label when it stores none
 * (*present = 0; always so in files without header flag bit 1). out_len is in floats and must
 * be >= n_classes. present may be NULL. Verifies the record checksum and the vector (finite,
 * >= 0, sums to 1, the label a largest class). Thread-safe.
 * @return APD_OK; APD_EINVAL (r or out NULL); APD_EUNSUPPORTED (file without classes);
 *         APD_EBUFSIZE (out_len < n_classes); the record look-up codes (a bad vector:
 *         APD_ECORRUPT, a record cut inside it: APD_ETRUNC). */
APD_API apd_status apd_reader_soft_label(apd_reader *r, uint64_t i, float *out, size_t out_len,
                                         int *present);

/* Raw palette record i: palette (k*c bytes entry-major, caller provides APD_MAX_COLORS*c
 * bytes; entries past k are zeroed), *k, unpacked indices (h*w bytes, may be NULL), label
 * (may be NULL). Thread-safe.
 * @return APD_OK; APD_EINVAL (r, palette or k NULL); APD_EUNSUPPORTED (direct-colour file);
 *         the record look-up codes; APD_ECORRUPT (zstd body invalid, index >= k);
 *         APD_ENOMEM. */
APD_API apd_status apd_reader_record(apd_reader *r, uint64_t i, uint8_t *palette, uint32_t *k,
                                     uint8_t *indices, uint32_t *label);

/* Verify record i completely without returning pixels: checksum, structure, decompression
 * and (palette records) index ranges and padding bits. Thread-safe.
 * @return APD_OK; APD_EINVAL (r NULL); the record look-up codes; APD_ECORRUPT (zstd body
 *         or indices invalid); APD_ENOMEM. */
APD_API apd_status apd_reader_verify_record(apd_reader *r, uint64_t i);

/* Where record i lives: chunk number (its LMDB key is the 8-byte big-endian chunk number in
 * database "chunks") and position in the chunk. chunk and slot may be NULL. Reads nothing.
 * @return APD_OK; APD_EINVAL (r NULL); APD_ERANGE (i >= count). */
APD_API apd_status apd_reader_locate(const apd_reader *r, uint64_t i, uint64_t *chunk,
                                     uint32_t *slot);

/* Stored size of record i in bytes, exactly as it sits in its chunk: record header, source
 * id and body as written (plain, zstd frame or coded). The file's shared tables (zstd
 * dictionary, index model) and the chunk's offset table are not included (apd_reader_stats
 * has their sizes). Verifies the record checksum. Thread-safe.
 * @return APD_OK; APD_EINVAL (r or bytes NULL); the record look-up codes. */
APD_API apd_status apd_reader_record_bytes(apd_reader *r, uint64_t i, uint64_t *bytes);

/* A hint that record i will be decoded soon, for callers that read in a shuffled order (the
 * loader): stage 0 prefetches the record's slot in its chunk's offset table, stage 1 reads
 * that slot and prefetches the record's bytes; issue stage 0 some records before stage 1.
 * No effect when i is out of range or its chunk has not been located by an earlier read
 * (never calls LMDB). Thread-safe; never fails. */
APD_API void apd_reader_prefetch(apd_reader *r, uint64_t i, int stage);

/* Storage figures, measured from LMDB's own page counts and the records themselves. */
typedef struct apd_file_stats {
    uint64_t file_bytes;       /* size of the data file (st_size) */
    uint64_t page_size;        /* LMDB page size */
    uint64_t used_pages;       /* pages in use by the environment (last_pgno + 1) */
    uint64_t chunk_db_pages;   /* branch + leaf + overflow pages of database "chunks" */
    uint64_t meta_db_pages;    /* pages of database "meta" */
    uint64_t stored_bytes;     /* sum of record sizes as stored (headers, compressed bodies) */
    uint64_t payload_bytes;    /* sum of uncompressed bodies: palette k*c + packed indices
                                  (palette) or c*h*w (direct) */
    uint64_t compressed_records; /* records stored zstd-compressed */
    uint64_t meta_json_bytes;  /* size of the metadata document */
    uint64_t dict_bytes;       /* zstd dictionary size (0 if none) */
    uint64_t coded_records;    /* records with an entropy-coded index map (format 1.1) */
    uint64_t imodel_bytes;     /* size of the index model value (0 if none) */
    uint64_t soft_records;     /* records storing a soft-label vector (format 1.1) */
} apd_file_stats;

/* Walks every chunk's offset table and record headers (no pixel decode, no record CRC).
 * Not concurrent with other calls that fail on the same reader (they share its message).
 * @return APD_OK; APD_EINVAL (r or out NULL); APD_EBADSTATE (reader poisoned); APD_ELMDB;
 *         for a damaged chunk APD_ENOTFOUND, APD_ELIMIT, APD_ECHECKSUM, APD_ECORRUPT,
 *         APD_ETRUNC (as the record look-up of apd_reader_decode). */
APD_API apd_status apd_reader_stats(apd_reader *r, apd_file_stats *out);

/* ---- writer ----------------------------------------------------------------------------- */

typedef struct apd_writer apd_writer;

typedef enum {
    APD_COMPRESS_AUTO = 0, /* measured on the first flush: compress only if zstd (with a
                              trained dictionary when it pays) saves >= 10% there; then per
                              record keep zstd only when it saves >= 1/16 of that record */
    APD_COMPRESS_OFF = 1,  /* never compress */
    APD_COMPRESS_ON = 2    /* keep zstd whenever it is smaller at all */
} apd_compress;

/* Entropy-coded index maps (format 1.1, palette files; spec section 7.4). */
typedef enum {
    APD_ICODE_AUTO = 0, /* measured on the first flush: code the index maps (palette sorted
                           by luminance, MED residuals, rANS, per-file model) when that
                           saves >= 10% of the plain bodies and beats zstd there */
    APD_ICODE_OFF = 1,  /* never (the file stays format 1.0) */
    APD_ICODE_ON = 2    /* always (format 1.2, or 1.1 with index_model_version 1; model stored); each record is coded when that
                           is smaller than its plain body */
} apd_icode;

typedef struct apd_writer_opts {
    uint32_t c, h, w;
    uint32_t kind;        /* APD_KIND_PALETTE or APD_KIND_DIRECT */
    uint32_t k;           /* palette: max colours 1..APD_MAX_COLORS (index width
                             max(1, ceil(log2 k))) */
    uint32_t n_classes;   /* labels must be < n_classes (0 = unchecked, no class table) */
    const char (*class_names)[64]; /* n_classes names or NULL */
    int force;            /* replace an existing regular file at the path (never anything
                             else: FIFOs, devices, directories, symbolic links are refused);
                             0: never replace anything, even a file that appears while
                             writing */
    float mean[3], std[3];
    const char *dataset_name; /* may be NULL */
    /* extensions */
    apd_compress compress;    /* default AUTO */
    int zstd_level;           /* default 3 */
    int dictionary;           /* 1 (default): in AUTO/ON mode train a zstd dictionary on the
                                 records of the first flush (>= 64) and keep it if it pays
                                 for itself there (measured) */
    uint32_t records_per_chunk; /* 0 = auto (about 1 MiB per chunk) */
    apd_limits limits;        /* max_dim etc. (apd_writer_opts_default fills defaults) */
    int no_sync;              /* 1: never fsync (MDB_NOSYNC). Commits stay atomic against a
                                 killed process, not against power loss. Scratch files/tests. */
    int no_compact;           /* 1: skip the compaction at close (by default close rewrites
                                 the file without LMDB free pages before publishing it) */
    apd_icode index_coding;   /* default AUTO (palette files only) */
    int soft_labels;          /* 1: records may carry soft-label vectors (format 1.1, header
                                 flag bit 1; needs n_classes >= 1): put them with
                                 apd_writer_put_palette_soft / apd_writer_put_direct_soft.
                                 0 (default): the file stays 1.0 unless index coding is used */
    uint32_t index_model_version; /* coded files: 0 (default) = 2, the continuous wavefront of
                                 format 1.2 (faster batch decoding); 1 = the row groups of
                                 format 1.1, for files that readers of 1.1 must read */
} apd_writer_opts;

/* Zero everything and set defaults (compress AUTO, level 3, dictionary on, default limits).
 * Callers then set c, h, w, kind, k, n_classes... */
APD_API void apd_writer_opts_default(apd_writer_opts *o);

/* Start writing PATH. Refuses with APD_EEXIST if something is at PATH and !o->force, or if it
 * is not a regular file. Nothing is written at PATH until apd_writer_finish/close publishes
 * the complete file: records go to a temporary PATH.partial-XXXXXX in the same directory
 * (locked by this writer; temporaries of writers that died are removed here), committed
 * empty at once. So PATH holds the previous file (or nothing) or the new complete one, at
 * every moment, whatever happens to the process. o is required (the geometry has no
 * default); a zero zstd_level or limits field means its default, so a zero-initialised
 * struct with the geometry set behaves as apd_writer_opts_default's.
 * @return APD_OK; APD_EINVAL (NULL argument, bad kind, channels, size, k, compress, or a
 *         mean/std outside the ranges of spec 5.2); APD_ELIMIT (dimensions above
 *         limits.max_dim, a record above max_value_bytes); APD_EOVERFLOW (h*w*c overflows);
 *         APD_EEXIST (something at PATH without force, or not a regular file);
 *         APD_ENOENT / APD_EACCES / APD_EIO (creating the temporary); APD_ENOMEM;
 *         APD_ELMDB. On failure *out is NULL. */
APD_API apd_status apd_writer_create(apd_writer **out, const char *path, const apd_writer_opts *o,
                                     apd_err *err);
/* Append a palette record: palette k*c bytes entry-major, indices h*w values < k.
 * source_id: APD_NO_SOURCE_ID for none. When the record completes a chunk, the chunk is
 * committed (see apd_writer_commit), so the commit codes can appear here too.
 * @return APD_OK; APD_EINVAL (NULL argument, k out of 1..opts.k, index >= k,
 *         label >= n_classes, direct-colour file); APD_ELIMIT (max_records reached);
 *         APD_EBADSTATE (writer poisoned); the codes of apd_writer_commit. */
APD_API apd_status apd_writer_put_palette(apd_writer *w, const uint8_t *palette, uint32_t k,
                                          const uint8_t *indices, uint32_t label,
                                          uint64_t source_id);
/* Append a direct-colour record (CHW uint8, c*h*w bytes). source_id as put_palette.
 * @return APD_OK; APD_EINVAL (NULL argument, label >= n_classes, palette file);
 *         APD_ELIMIT (max_records reached); APD_EBADSTATE; the codes of apd_writer_commit.
 * (apd_quantize_put of apd/quant.h quantizes an image and appends it as a palette record.) */
APD_API apd_status apd_writer_put_direct(apd_writer *w, const uint8_t *chw, uint32_t label,
                                         uint64_t source_id);
/* apd_writer_put_palette / apd_writer_put_direct with a soft-label vector of n_classes floats
 * (format 1.1; the file must be created with opts.soft_labels = 1). soft NULL: the record
 * stores none (readers then give the one-hot vector of its label). A vector must be finite,
 * >= 0, sum to 1 within 1e-3, and the label must be one of its largest classes (e.g. the
 * argmax); otherwise APD_EINVAL with a message naming file, record, class and reason, and
 * nothing is written.
 * @return the codes of apd_writer_put_palette / apd_writer_put_direct; APD_EINVAL also for a
 *         vector on a file without opts.soft_labels, or a bad vector. */
APD_API apd_status apd_writer_put_palette_soft(apd_writer *w, const uint8_t *palette, uint32_t k,
                                               const uint8_t *indices, uint32_t label,
                                               uint64_t source_id, const float *soft);
APD_API apd_status apd_writer_put_direct_soft(apd_writer *w, const uint8_t *chw, uint32_t label,
                                              uint64_t source_id, const float *soft);
/* The file being written, as apd_reader_info would describe it now: geometry, kind, k,
 * bits, n_classes, records_per_chunk, mean/std and dataset name from the options, and
 * n_records = records put so far (committed or not); n_chunks counts the chunk in progress.
 * @return APD_OK, APD_EINVAL (w or out NULL). */
APD_API apd_status apd_writer_info(const apd_writer *w, apd_file_info *out);
/* Set a metadata key to a JSON value text (validated: must parse as one JSON value). Keys
 * the library maintains (apd_meta_key_class == APD_META_KEY_MAINTAINED: "format",
 * "format_version", "kind", "c", "h", "w", "k", "bits", "records_per_chunk", "n_records",
 * "complete", "n_classes", "class_counts", "class_names") are refused; "dataset", "mean" and
 * "std" (APD_META_KEY_DEFAULTED) override what the options gave (mean/std within the ranges
 * of spec 5.2); "created" and "library_version"
 * override the values the writer adds. Takes effect at the next commit.
 * @return APD_OK; APD_EINVAL (w, key or value NULL, empty key, maintained key, value not one
 *         JSON value); APD_ENOMEM; APD_EBADSTATE (writer poisoned). */
APD_API apd_status apd_writer_set_meta(apd_writer *w, const char *key, const char *json_value);
/* Durable point in the temporary: everything put so far is committed (one LMDB transaction
 * with the chunk, the header count and the metadata, marked "complete": false). The writer
 * also commits by itself whenever a chunk fills. A failed commit poisons the writer (later
 * calls: APD_EBADSTATE; finish then publishes nothing).
 * @return APD_OK; APD_EINVAL (w NULL); APD_EBADSTATE; APD_ENOMEM; APD_ELIMIT (a chunk above
 *         4 GiB); APD_ENOENT / APD_EACCES / APD_EIO (disk full, I/O error); APD_ELMDB. */
APD_API apd_status apd_writer_commit(apd_writer *w);
/* Finish and publish: the final commit (metadata "complete": true), compaction (unless
 * no_compact; a failed compaction publishes the uncompacted file), a verification of the
 * result through the reader (every record checksum), then an atomic rename onto PATH:
 * without force only if nothing is at PATH at that moment; with force only over a regular
 * file. On any failure PATH is left exactly as it was and the temporaries are removed. The
 * handle is freed in every case. NULL ok (APD_OK). err (may be NULL) gets the message.
 * @return APD_OK; APD_EBADSTATE (an earlier fatal error: nothing is published); APD_EEXIST
 *         (something appeared at PATH without force, or it is not a regular file); the codes
 *         of apd_writer_commit; the reader's status if the verification fails. */
APD_API apd_status apd_writer_finish(apd_writer *w, apd_err *err);
/* apd_writer_finish(w, NULL). */
APD_API apd_status apd_writer_close(apd_writer *w);
/* Abandon the file: remove the temporaries, leave PATH untouched, free the handle. NULL ok.
 * Use it when the producer failed, so a partial dataset is never published. */
APD_API void apd_writer_discard(apd_writer *w);
/* Remove the temporaries PATH.partial-XXXXXX (and their lock files) that writers of PATH left
 * when they died (their flock is free; a live writer's are kept). apd_writer_create does this
 * too; a tool may call it at start so that an interrupted run's leftovers go at once.
 * Returns how many temporaries were removed. */
APD_API unsigned apd_writer_remove_stale(const char *path);
/* Records put so far (committed or not); 0 for NULL. */
APD_API uint64_t apd_writer_count(const apd_writer *w);
/* Last error message of this writer ("" if none). Valid until the next call on w. */
APD_API const char *apd_writer_errmsg(const apd_writer *w);

/* ---- metadata keys ---------------------------------------------------------------------- */

/* Who writes a metadata key (spec/apd-format.md section 5). */
typedef enum apd_meta_key_class {
    APD_META_KEY_USER = 0,       /* the caller's (provenance etc.); the writer adds "created"
                                    and "library_version" unless they are set */
    APD_META_KEY_MAINTAINED = 1, /* written by the library from the header and class counts
                                    (section 5.1, and "class_names"); set_meta refuses them */
    APD_META_KEY_DEFAULTED = 2   /* "dataset", "mean", "std": from the writer options unless
                                    set with apd_writer_set_meta */
} apd_meta_key_class;
/* The class of the key of len bytes (need not be NUL-terminated; e.g. a key inside
 * apd_reader_meta_json). The one list of library keys; tools use it too. */
APD_API apd_meta_key_class apd_meta_key_classify(const char *key, size_t len);

/* ---- utilities -------------------------------------------------------------------------- */

/* CRC-32C (Castagnoli, reflected, init/xorout 0xFFFFFFFF) of len bytes, continuing from crc
 * (pass 0 to start). crc32c("123456789") = 0xE3069283. */
APD_API uint32_t apd_crc32c(uint32_t crc, const void *data, size_t len);

/* Index width for k colours: max(1, ceil(log2 k)); 0 if k is 0 or > APD_MAX_COLORS. */
APD_API uint32_t apd_bits_for_k(uint32_t k);
/* Bytes of n indices packed at `bits` bits: ceil(n*bits/8). */
APD_API size_t apd_packed_bytes(uint64_t n, uint32_t bits);

#ifdef __cplusplus
}
#endif
#endif
