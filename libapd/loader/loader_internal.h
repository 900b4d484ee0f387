/* loader/loader_internal.h: the record source behind a loader (library-internal).
 *
 * The loader does not talk to the reader directly: it reads records through this small
 * table of callbacks. source_reader.c fills it from an apd_reader (apd_loader_open); tests
 * fill it from memory so that partitions, permutations, state and corrupt-record handling
 * can be checked on any sample count without writing files.
 *
 * Every callback must be safe to call concurrently from several threads on one ctx. On
 * failure a callback writes a message ("file: record N (key K): reason") into msg.
 */
#ifndef APD_LOADER_INTERNAL_H
#define APD_LOADER_INTERNAL_H

#include "apd/loader.h"

typedef struct apd__loader_source {
    void *ctx;
    uint64_t n_records;
    uint32_t c, h, w;
    uint32_t n_classes;   /* 0 = unknown (class subset then only checks < 2^32) */
    uint32_t palette;     /* 1: record() gives palette + indices (see use_records) */
    float mean[3], std[3];/* the file's normalisation */
    /* Label of record i. */
    apd_status (*label)(void *ctx, uint64_t i, uint32_t *label, char *msg, size_t msg_len);
    /* uint8 pixels of record i into out (c*h*w bytes), chw = 0: HWC, 1: CHW. */
    apd_status (*decode)(void *ctx, uint64_t i, int chw, uint8_t *out, size_t out_len,
                         uint32_t *label, char *msg, size_t msg_len);
    /* Palette record: pal (APD_MAX_COLORS*c bytes, entry-major), *k, idx (h*w). NULL when
     * !palette. */
    apd_status (*record)(void *ctx, uint64_t i, uint8_t *pal, uint32_t *k, uint8_t *idx,
                         uint32_t *label, char *msg, size_t msg_len);
    void (*close)(void *ctx); /* may be NULL */
    /* 1: build pixels from record() (palette + unpacked indices) with the shared palette
     * kernels of common/kernels.h at 8 bits per index; 0: use decode() / decode_f32(). The
     * decode path is the default for files: the reader's bit unpacking is fused with the
     * look-up. */
    uint32_t use_records;
    /* Optional (may be NULL): normalised float32 CHW pixels of record i straight from the
     * record (out_len in floats), bit-identical to decode() + apd__u8_norm_f32. When set
     * (and !use_records) it serves APD_OUT_F32_CHW: files use apd_reader_decode_f32, which
     * gathers a per-record normalised palette with the reader's bit-unpack kernel. */
    apd_status (*decode_f32)(void *ctx, uint64_t i, const float *mean, const float *std,
                             float *out, size_t out_len, uint32_t *label, char *msg,
                             size_t msg_len);
    /* Optional (may be NULL): records ids[0..n) in one call, each exactly as decode() (mode
     * 0: HWC, 1: CHW) or decode_f32() (mode 2, with mean/std) gives it: record q at
     * out + q*stride bytes, its label in labels[q], its status in st[q]; no message (the
     * loader asks decode()/decode_f32() again for a record that failed). Files:
     * apd_reader_decode_batch / _f32_batch, which decode index-coded records eight at a time. */
    void (*decode_batch)(void *ctx, const uint64_t *ids, uint32_t n, int mode, const float *mean,
                         const float *std, void *out, size_t stride, uint32_t *labels,
                         apd_status *st);
    /* Optional (may be NULL): a hint that record i will be decoded soon, in two stages
     * (files: stage 0 prefetches the record's offset-table slot, stage 1 the record's bytes).
     * The loader calls stage 0 2*PREFETCH_AHEAD and stage 1 PREFETCH_AHEAD records ahead of
     * decoding: the sample order is shuffled, so each record is otherwise a cache miss. */
    void (*prefetch)(void *ctx, uint64_t i, int stage);
    /* Optional (may be NULL): soft labels of record i (n_classes floats; the one-hot vector
     * of its label when the record stores none). NULL: every record is one-hot. has_soft: the
     * data announces soft labels (format 1.1). */
    apd_status (*soft)(void *ctx, uint64_t i, float *out, char *msg, size_t msg_len);
    uint32_t has_soft;
} apd__loader_source;

/* Open a loader over src (copied; src->close is called by apd_loader_close, or on failure).
 * path names the data in messages. */
apd_status apd__loader_open_source(apd_loader **out, const apd__loader_source *src,
                                   const char *path, const apd_loader_opts *o, apd_err *err);

#endif
