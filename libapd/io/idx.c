/* io/idx.c: the IDX importer (MNIST / Fashion-MNIST file format), raw or gzip-compressed.
 *
 * IDX layout (all integers big-endian):
 *
 *     offset 0  u8  0x00
 *            1  u8  0x00
 *            2  u8  element type (0x08 = unsigned byte; the only one accepted here)
 *            3  u8  number of dimensions d
 *            4  u32 size of dimension 0 (the record count n), then d-1 more u32
 *     4+4d      data, row-major, n * (product of the other dims) elements
 *
 * Images: d = 3 ([n][h][w], grey) or d = 4 ([n][h][w][c], c = 1 or 3, HWC per record).
 * Labels: d = 1 ([n]).
 *
 * Both files go through zlib's gzread, which reads plain files transparently. Before any
 * large allocation the header is checked against the file: for a plain file the size must
 * match exactly (short = APD_ETRUNC naming the first incomplete record, long = APD_ECORRUPT);
 * for a gzip file the promised size must be reachable (deflate expands at most ~1032x), so a
 * 100-byte file cannot make us allocate gigabytes. While reading, a short read is APD_ETRUNC
 * with record index and offset, and data after the last record is APD_ECORRUPT.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "io/io_internal.h"

typedef struct idx_file {
    const char *path;
    gzFile gz;
    uint64_t file_size;
    int direct; /* not compressed */
    uint32_t ndim, dim[4];
    uint64_t hdr_bytes;
} idx_file;

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Read exactly n bytes; returns bytes read (< n at end of data) or -1 on a zlib error. */
static int64_t gz_read_full(gzFile gz, uint8_t *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        unsigned chunk = (unsigned)((n - done) > (1u << 30) ? (1u << 30) : (n - done));
        int r = gzread(gz, buf + done, chunk);
        if (r < 0) return -1;
        if (r == 0) break;
        done += (size_t)r;
    }
    return (int64_t)done;
}

static apd_status gz_error(idx_file *f, apd_err *err)
{
    int code;
    const char *m = gzerror(f->gz, &code);
    if (code == Z_ERRNO) return apd__err_sys(err, errno, f->path, "read error");
    return apd__err_set(err, APD_ECORRUPT, "%s: corrupt gzip data: %s", f->path, m ? m : "?");
}

static apd_status idx_open(idx_file *f, const char *path, uint32_t min_dim, uint32_t max_dim, apd_err *err)
{
    struct stat st;
    memset(f, 0, sizeof *f);
    f->path = path;
    if (stat(path, &st) != 0) return apd__err_sys(err, errno, path, "cannot open");
    if (S_ISDIR(st.st_mode)) return apd__err_set(err, APD_EDATASET, "%s: is a directory, expected an IDX file", path);
    f->file_size = (uint64_t)st.st_size;
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz) return apd__err_sys(err, errno ? errno : ENOMEM, path, "cannot open");
    uint8_t h[4];
    int64_t got = gz_read_full(f->gz, h, 4);
    if (got < 0) return gz_error(f, err);
    f->direct = gzdirect(f->gz);
    if (got < 4) return apd__err_set(err, APD_ETRUNC, "%s: offset 0: truncated IDX header (%lld of 4 bytes)", path, (long long)got);
    if (h[0] != 0 || h[1] != 0)
        return apd__err_set(err, APD_EMAGIC, "%s: offset 0: not an IDX file (magic %02x %02x %02x %02x)", path, h[0], h[1], h[2], h[3]);
    if (h[2] != 0x08)
        return apd__err_set(err, APD_EUNSUPPORTED, "%s: offset 2: IDX element type 0x%02x not supported (only unsigned byte, 0x08)", path, h[2]);
    if (h[3] < min_dim || h[3] > max_dim) {
        if (min_dim == max_dim) /* (one format with an empty "to" part printed "expected 10" for 1) */
            return apd__err_set(err, APD_ECORRUPT, "%s: offset 3: IDX with %u dimensions, expected %u", path, h[3], min_dim);
        return apd__err_set(err, APD_ECORRUPT, "%s: offset 3: IDX with %u dimensions, expected %u to %u", path, h[3],
                            min_dim, max_dim);
    }
    f->ndim = h[3];
    uint8_t d[16];
    got = gz_read_full(f->gz, d, 4 * (size_t)f->ndim);
    if (got < 0) return gz_error(f, err);
    if (got < 4 * (int64_t)f->ndim)
        return apd__err_set(err, APD_ETRUNC, "%s: offset 4: truncated IDX header (dimension sizes)", path);
    for (uint32_t i = 0; i < f->ndim; i++) f->dim[i] = be32(d + 4 * i);
    f->hdr_bytes = 4 + 4 * (uint64_t)f->ndim;
    return APD_OK;
}

static void idx_close(idx_file *f)
{
    if (f->gz) gzclose(f->gz);
    f->gz = NULL;
}

/* Check that the file can hold n records of rec bytes (see the file comment). */
static apd_status idx_check_size(const idx_file *f, uint64_t n, uint64_t rec, apd_err *err)
{
    uint64_t need = f->hdr_bytes + n * rec; /* n, rec < 2^32 and rec <= 2^26: no overflow */
    if (f->direct) {
        if (f->file_size < need) {
            uint64_t have = (f->file_size - f->hdr_bytes) / rec;
            return apd__err_set(err, APD_ETRUNC, "%s: record %llu (offset %llu): truncated: file has %llu bytes, header promises %llu records (%llu bytes)",
                                f->path, (unsigned long long)have, (unsigned long long)(f->hdr_bytes + have * rec),
                                (unsigned long long)f->file_size, (unsigned long long)n, (unsigned long long)need);
        }
        if (f->file_size > need)
            return apd__err_set(err, APD_ECORRUPT, "%s: offset %llu: %llu trailing bytes after %llu records",
                                f->path, (unsigned long long)need, (unsigned long long)(f->file_size - need),
                                (unsigned long long)n);
    } else if (need / 1100 > f->file_size + 65536) {
        return apd__err_set(err, APD_ETRUNC, "%s: header promises %llu records (%llu bytes), more than a %llu-byte gzip file can hold",
                            f->path, (unsigned long long)n, (unsigned long long)need, (unsigned long long)f->file_size);
    }
    return APD_OK;
}

apd_status apd__import_idx(apd_dataset *out, const char *images, const char *labels,
                           const apd_import_opts *o, apd_err *err)
{
    idx_file fi, fl;
    apd_status s;
    uint8_t *buf = NULL;
    memset(&fl, 0, sizeof fl);
    if ((s = idx_open(&fi, images, 3, 4, err)) != APD_OK) goto fail;
    if ((s = idx_open(&fl, labels, 1, 1, err)) != APD_OK) goto fail;
    uint32_t n = fi.dim[0], h = fi.dim[1], w = fi.dim[2], c = fi.ndim == 4 ? fi.dim[3] : 1;
    if (n == 0) {
        s = apd__err_set(err, APD_EEMPTY, "%s: no records", images);
        goto fail;
    }
    if (h == 0 || w == 0 || h > APD_IO_MAX_DIM || w > APD_IO_MAX_DIM) {
        s = apd__err_set(err, h && w ? APD_ELIMIT : APD_ECORRUPT, "%s: offset 8: image size %ux%u outside 1..%u", images, h, w, APD_IO_MAX_DIM);
        goto fail;
    }
    if (c != 1 && c != 3) {
        s = apd__err_set(err, APD_ECORRUPT, "%s: offset 16: %u channels per pixel (expected 1 or 3)", images, c);
        goto fail;
    }
    if (fl.dim[0] != n) {
        s = apd__err_set(err, APD_EMISMATCH, "%s has %u images but %s has %u labels", images, n, labels, fl.dim[0]);
        goto fail;
    }
    uint64_t rec = (uint64_t)c * h * w;
    if ((s = idx_check_size(&fi, n, rec, err)) != APD_OK) goto fail;
    if ((s = idx_check_size(&fl, n, 1, err)) != APD_OK) goto fail;
    uint64_t keep = (o && o->limit && o->limit < n) ? o->limit : n;

    if ((s = apd_dataset_alloc(out, keep, c, h, w, 0)) != APD_OK) {
        s = apd__err_set(err, s, "%s: cannot allocate %llu images of %ux%ux%u", images, (unsigned long long)keep, c, h, w);
        goto fail;
    }
    out->source_ids = malloc(sizeof(uint64_t) * keep);
    buf = malloc(rec > keep ? rec : keep);
    if (!out->source_ids || !buf) {
        s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", images);
        goto fail;
    }
    for (uint64_t i = 0; i < keep; i++) {
        uint8_t *dst = out->pixels + i * rec;
        int64_t got = gz_read_full(fi.gz, c == 1 ? dst : buf, rec);
        if (got < 0) {
            s = gz_error(&fi, err);
            goto fail;
        }
        if ((uint64_t)got < rec) {
            s = apd__err_set(err, APD_ETRUNC, "%s: record %llu (offset %llu): truncated: %lld of %llu bytes", images,
                             (unsigned long long)i, (unsigned long long)(fi.hdr_bytes + i * rec), (long long)got,
                             (unsigned long long)rec);
            goto fail;
        }
        if (c == 3) /* HWC record -> CHW */
            for (uint64_t p = 0; p < (uint64_t)h * w; p++)
                for (uint32_t k = 0; k < 3; k++) dst[k * h * w + p] = buf[p * 3 + k];
        out->source_ids[i] = i;
    }
    int64_t got = gz_read_full(fl.gz, buf, keep);
    if (got < 0) {
        s = gz_error(&fl, err);
        goto fail;
    }
    if ((uint64_t)got < keep) {
        s = apd__err_set(err, APD_ETRUNC, "%s: record %lld (offset %llu): truncated label file", labels, (long long)got,
                         (unsigned long long)(fl.hdr_bytes + (uint64_t)got));
        goto fail;
    }
    uint32_t maxl = 0;
    for (uint64_t i = 0; i < keep; i++) {
        out->labels[i] = buf[i];
        if (buf[i] > maxl) maxl = buf[i];
    }
    /* complete files must end exactly after the last record */
    if (keep == n) {
        uint8_t extra;
        idx_file *both[2] = {&fi, &fl};
        for (int j = 0; j < 2; j++) {
            int64_t more = gz_read_full(both[j]->gz, &extra, 1);
            if (more < 0) {
                s = gz_error(both[j], err);
                goto fail;
            }
            if (more > 0) {
                s = apd__err_set(err, APD_ECORRUPT, "%s: data continues after the last of %u records", both[j]->path, n);
                goto fail;
            }
            int code = Z_OK;
            gzerror(both[j]->gz, &code);
            if (code == Z_BUF_ERROR) { /* all records inflated but the gzip trailer is cut */
                s = apd__err_set(err, APD_ETRUNC, "%s: gzip stream ends early (missing trailer): truncated file",
                                 both[j]->path);
                goto fail;
            }
        }
    }
    out->n_classes = maxl + 1;
    out->class_names = calloc(out->n_classes, APD_MAX_CLASS_NAME);
    if (!out->class_names) {
        s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", labels);
        goto fail;
    }
    for (uint32_t j = 0; j < out->n_classes; j++) snprintf(out->class_names[j], APD_MAX_CLASS_NAME, "%u", j);
    snprintf(out->name, sizeof out->name, "idx");
    free(buf);
    idx_close(&fi);
    idx_close(&fl);
    return APD_OK;
fail:
    free(buf);
    idx_close(&fi);
    idx_close(&fl);
    apd_dataset_free(out);
    memset(out, 0, sizeof *out);
    return s;
}
