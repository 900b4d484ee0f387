/* apd/loader.h: training batches from an .apd file: seeded shuffling, exact rank sharding,
 * decode threads, prefetch, normalisation, deterministic and elastic resume.
 *
 * Overview
 * --------
 * A loader opens an .apd (through the reader of apd/format.h), selects the records to serve
 * (all, or those of a class subset), and hands out batches into caller-owned buffers:
 *
 *     apd_loader_opts o;
 *     apd_loader_opts_default(&o);
 *     o.batch_size = 256; o.seed = 1; o.rank = rank; o.world_size = world;
 *     o.output = APD_OUT_F32_CHW; o.threads = 2;
 *     apd_loader *l; apd_err err;
 *     if (apd_loader_open(&l, "train.apd", &o, &err) != APD_OK) die(err.msg);
 *     float *x = malloc(apd_loader_batch_bytes(l)); int64_t y[256]; size_t n;
 *     for (;;) {                                  // one epoch
 *         if (apd_loader_next(l, x, apd_loader_batch_bytes(l), y, NULL, &n) != APD_OK)
 *             die(apd_loader_errmsg(l));
 *         if (n == 0) break;                      // end of epoch; the loader moved to epoch+1
 *         train_step(x, y, n);
 *     }
 *     apd_loader_close(l);
 *
 * Sample order (the contract that makes resume elastic)
 * ------------------------------------------------------
 * Let S be the selected record indices in ascending order (all records, or those whose
 * label is in the class subset), N = |S|. The GLOBAL order of epoch e is
 *     order_e = S                                   if shuffle == 0
 *     order_e = S permuted by Fisher-Yates with apd__rng_seed(seed, stream = e)  otherwise
 * (libapd/common/rng.h, apd__rng_shuffle_u64). It depends on (seed, epoch, S) only, never on
 * world size, rank, threads or prefetch.
 *
 * The epoch is consumed in global STEPS from a global cursor (initially 0). With
 * B = batch_size, W = world_size and R = N - cursor samples left, a step takes the next
 * W*B positions of order_e: rank r gets positions [cursor + r*B, cursor + (r+1)*B).
 * The remainder R mod (W*B) (a last, partial step) is handled by drop_last:
 *   - drop_last = 1: the partial step is dropped: every rank gets floor(R / (W*B)) full
 *     batches and up to W*B-1 samples are not served this epoch.
 *   - drop_last = 0 (default): the partial step is served: each rank gets a last batch of
 *     b = ceil(rem / W) samples (rem = R mod (W*B)); rank r takes positions
 *     [base + r*b, base + (r+1)*b), base = N - rem, and positions >= N WRAP AROUND to the
 *     start of the epoch's order (position p -> (p - N) mod N), exactly as PyTorch's
 *     DistributedSampler pads. So every rank gets ceil(R / (W*B)) batches, the last one
 *     possibly smaller but the same size on every rank; W*b - rem samples (at most W-1)
 *     are served twice. With W = 1 nothing is ever padded: every sample exactly once.
 * After each step the global cursor advances by W*B (or to N after the last step); at N
 * the epoch ends: apd_loader_next returns APD_OK with *n_out == 0 and the loader moves to
 * (epoch + 1, cursor 0).
 *
 * State and resume
 * ----------------
 * apd_loader_get_state gives (seed, epoch, cursor, n). Every rank of a job holds the same
 * state after the same number of next() calls. Restoring it with apd_loader_set_state gives
 * bit-identical following batches (same threads or not). Restoring it into a loader with a
 * DIFFERENT world size (elastic resume) serves the positions [cursor, N) of the same epoch
 * order across the new ranks: the remaining samples exactly once (plus padding as above).
 *
 * Corrupt records
 * ---------------
 * By default a record that fails to decode (checksum, truncation, ...) fails the call with
 * its status and a message naming file, record and key; the loader is then poisoned
 * (APD_EBADSTATE) until apd_loader_set_state. With skip_corrupt = 1 the record is left out
 * of its batch (the batch is shorter by one, *n_out tells) and counted
 * (apd_loader_skipped).
 *
 * Threading: a loader handle is used by one thread at a time; different handles are
 * independent. Internally `threads` threads decode (see apd_loader_opts). Do not use a
 * loader across fork(): open one per process (the reader's LMDB environment must not cross
 * fork).
 */
#ifndef APD_LOADER_H
#define APD_LOADER_H

#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output element layout of images in a batch. */
typedef enum apd_loader_output {
    APD_OUT_U8_HWC = 0,  /* uint8, height x width x channels per image */
    APD_OUT_U8_CHW = 1,  /* uint8, channels x height x width per image */
    APD_OUT_F32_CHW = 2  /* float32 CHW, (v/255 - mean[ch]) / std[ch] */
} apd_loader_output;

typedef struct apd_loader_opts {
    uint32_t batch_size;   /* >= 1 (default 256) */
    uint32_t shuffle;      /* 1: permutation seeded by (seed, epoch) (default 1); 0: file order */
    uint64_t seed;         /* default 0 */
    uint64_t epoch;        /* epoch to start at (default 0) */
    uint32_t drop_last;    /* see "Sample order" (default 0) */
    uint32_t rank;         /* 0 <= rank < world_size (default 0) */
    uint32_t world_size;   /* >= 1 (default 1) */
    uint32_t threads;      /* decode threads, >= 1 (0 means 1). With prefetch = 0 the calling
                              thread is one of them; with prefetch > 0 `threads` background
                              threads decode and the caller copies (and helps when waiting). */
    uint32_t prefetch;     /* batches decoded ahead in the background (default 0, max 64) */
    uint32_t output;       /* apd_loader_output (default APD_OUT_F32_CHW) */
    uint32_t skip_corrupt; /* 1: skip and count corrupt records; 0: fail (default) */
    uint32_t custom_norm;  /* 1: use mean/std below; 0: the file's mean/std (default) */
    float mean[3], std[3]; /* per channel, on the pixels/255 scale; std > 0 */
    const uint32_t *classes; /* class subset (NULL = all); copied at open */
    uint32_t n_classes_subset; /* entries in classes */
    uint32_t reserved;     /* must be 0 */
} apd_loader_opts;

typedef struct apd_loader apd_loader;

/* Position in the epoch stream; the same on every rank after the same number of calls. */
typedef struct apd_loader_state {
    uint64_t seed;    /* shuffle seed */
    uint64_t epoch;   /* current epoch */
    uint64_t cursor;  /* global samples consumed in this epoch (all ranks), <= n */
    uint64_t n;       /* selected samples per epoch (checked on restore) */
} apd_loader_state;

/* Defaults as documented in apd_loader_opts. */
APD_API void apd_loader_opts_default(apd_loader_opts *o);

/* Open path with options o (NULL = defaults).
 * @param[out] out  the loader; NULL after a failure (nothing to close).
 * @return APD_OK; APD_EINVAL (bad option: batch 0, rank >= world, std <= 0, unknown output,
 *   class out of range); reader errors (APD_ENOENT, APD_EMAGIC, APD_EVERSION, ...);
 *   APD_ENOMEM; APD_EIO (thread creation). err (may be NULL) gets the message. */
APD_API APD_NODISCARD apd_status apd_loader_open(apd_loader **out, const char *path,
                                                 const apd_loader_opts *o, apd_err *err);
/* Stop threads, close the reader, free everything. NULL ok. */
APD_API void apd_loader_close(apd_loader *l);

/* Last error message of this loader ("" if none); valid until the next call on l. */
APD_API const char *apd_loader_errmsg(const apd_loader *l);

/* Image geometry (channels, height, width) of every sample. */
APD_API void apd_loader_shape(const apd_loader *l, uint32_t *c, uint32_t *h, uint32_t *w);
/* Bytes of one output image / of a full batch of images (batch_size images). */
APD_API size_t apd_loader_image_bytes(const apd_loader *l);
APD_API size_t apd_loader_batch_bytes(const apd_loader *l);
/* Selected samples per epoch (N). */
APD_API uint64_t apd_loader_num_samples(const apd_loader *l);
/* Batches this rank gets in a whole epoch / in the rest of the current epoch. */
APD_API uint64_t apd_loader_batches_per_epoch(const apd_loader *l);
APD_API uint64_t apd_loader_batches_left(const apd_loader *l);
/* Corrupt records skipped so far (skip_corrupt = 1). */
APD_API uint64_t apd_loader_skipped(const apd_loader *l);
/* The normalisation in use (file's or custom); c entries are meaningful. */
APD_API void apd_loader_norm(const apd_loader *l, float mean[3], float std[3]);

/* Fill the next batch of this rank.
 * @param[out] images   batch buffer of images_len bytes (>= n_out * image_bytes, normally
 *                      apd_loader_batch_bytes); may be NULL to fetch labels/indices only.
 * @param[out] labels   batch_size int64 labels, or NULL.
 * @param[out] indices  batch_size record indices (position in the file), or NULL.
 * @param[out] n_out    samples written; 0 = end of epoch (the loader is now at epoch+1).
 * @return APD_OK; APD_EBUFSIZE (images_len too small for a full batch); decode errors of
 *   a corrupt record (APD_ECHECKSUM, APD_ECORRUPT, APD_ETRUNC, ...; message names the
 *   record and key; the loader is then poisoned); APD_EBADSTATE (poisoned). On an error
 *   the state is unchanged (the failed batch is not consumed). */
APD_API APD_NODISCARD apd_status apd_loader_next(apd_loader *l, void *images, size_t images_len,
                                                 int64_t *labels, uint64_t *indices,
                                                 size_t *n_out);

/* Classes of the data (0: none) and whether it announces soft labels (format 1.1 header flag
 * bit 1; apd_reader_soft_label). */
APD_API uint32_t apd_loader_num_classes(const apd_loader *l);
APD_API int apd_loader_has_soft_labels(const apd_loader *l);

/* apd_loader_next plus soft labels: soft[o * n_classes + j] for sample o < *n_out, the
 * record's stored vector, or the one-hot vector of its label for records without one (files
 * without soft labels give one-hot rows throughout). soft_len in floats must hold a full
 * batch (batch_size * n_classes); soft NULL behaves as apd_loader_next. The other arguments
 * and the sample order are those of apd_loader_next.
 * @return the codes of apd_loader_next; APD_EUNSUPPORTED (soft given, data without classes);
 *   APD_EBUFSIZE (soft_len too small); APD_ENOMEM; a record's soft-label error (its record was
 *   checked while decoding, so only a damaged vector: APD_ECORRUPT; the loader is then
 *   poisoned as after a decode error). */
APD_API APD_NODISCARD apd_status apd_loader_next_soft(apd_loader *l, void *images,
                                                      size_t images_len, int64_t *labels,
                                                      float *soft, size_t soft_len,
                                                      uint64_t *indices, size_t *n_out);

APD_API void apd_loader_get_state(const apd_loader *l, apd_loader_state *st);
/* Continue from st (any world size/rank/threads). Clears a poisoned loader.
 * @return APD_OK; APD_EINVAL (NULL, cursor > n); APD_EMISMATCH (st->n differs from this
 *   loader's selection: other file or class subset). */
APD_API APD_NODISCARD apd_status apd_loader_set_state(apd_loader *l, const apd_loader_state *st);
/* Shorthand: start epoch `epoch` at cursor 0 with the current seed. Clears a poisoned loader.
 * @return APD_OK; APD_EINVAL (l NULL). */
APD_API APD_NODISCARD apd_status apd_loader_set_epoch(apd_loader *l, uint64_t epoch);

/* The partition rule as a pure function (for tests and for callers that schedule
 * themselves). For an epoch of n samples, from global cursor `cursor`, returns the number
 * of steps (= batches per rank) left, and for step `step` (0-based from cursor) the first
 * global position and the count of rank `rank`'s batch (positions are consecutive; reduce
 * them modulo n to apply the wrap-around). Returns 0 steps when batch or world is 0. */
APD_API uint64_t apd_loader_partition(uint64_t n, uint64_t cursor, uint32_t batch, uint32_t world,
                                      int drop_last, uint32_t rank, uint64_t step,
                                      uint64_t *first_pos, uint32_t *count);

/* The global order of an epoch: writes the permutation of 0..n-1 for (seed, epoch)
 * (identity when shuffle = 0) into perm[n]. The loader maps these positions through the
 * ascending selection S. */
APD_API void apd_loader_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint64_t epoch,
                                    int shuffle);

#ifdef __cplusplus
}
#endif
#endif
