/* io/io_internal.h: helpers shared by the importers and exporters (not installed).
 *
 * - apd__io_warn: forward a formatted warning to the caller's sink (opts->warn).
 * - apd__image_probe / apd__image_decode: PNG (libpng) and JPEG (libjpeg API) files,
 *   recognised by content and checked against the file extension; output 8-bit CHW.
 * - apd__resize_crop: shorter side to N by exact integer area averaging, centre crop N x N.
 * - class-name helpers: read one name a line from a text file.
 */
#ifndef APD_IO_INTERNAL_H
#define APD_IO_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "apd/io.h"
#include "common/internal.h"

#define APD_IO_MAX_DIM 4096u          /* largest imported image side */
#define APD_IO_MAX_SOURCE_DIM 16384u  /* largest source side when it is resized */

void apd__io_warn(const apd_import_opts *o, const char *fmt, ...) APD__PRINTF(2, 3);

typedef enum { APD_IMG_PNG = 1, APD_IMG_JPEG = 2 } apd__img_kind;

typedef struct apd__img_info {
    apd__img_kind kind;
    uint32_t w, h;
    uint32_t grey; /* 1 when the file stores grey (PNG grey/grey+alpha, 1-component JPEG) */
} apd__img_info;

/* Read the header of an image file (kind from the extension, verified against the magic).
 * @return APD_OK, APD_EIMAGE (not decodable / content differs from extension / CMYK),
 *         APD_ELIMIT (a side above max_dim), APD_ENOENT/EACCES/EIO. */
apd_status apd__image_probe(const char *path, uint32_t max_dim, apd__img_info *info, apd_err *err);

/* Decode into out (c x h x w CHW, c = 1 or 3; h, w as probed): grey files are replicated into
 * 3 channels when c = 3; colour files into c = 1 are an error (callers choose c from probes).
 * @return as apd__image_probe, plus APD_EMISMATCH if the size differs from info. */
apd_status apd__image_decode(const char *path, const apd__img_info *info, uint32_t c, uint8_t *out,
                             apd_err *err);

/* Resize (shorter side -> size, area averaging) and centre-crop a CHW image to size x size.
 * @return APD_OK or APD_ENOMEM. */
apd_status apd__resize_crop(const uint8_t *src, uint32_t c, uint32_t h, uint32_t w, uint32_t size,
                            uint8_t *dst);

/* Read up to n lines (trimmed, empty lines skipped) of a text file into names.
 * @return number of names read, or -1 if the file cannot be opened. */
int apd__read_names(const char *path, char (*names)[APD_MAX_CLASS_NAME], uint32_t n);

/* Does path name an existing directory / regular file? */
int apd__is_dir(const char *path);
int apd__is_file(const char *path);

/* Importers (spec prefix stripped). They fill everything except name/source/split text,
 * which apd_import sets; on error they leave *out zeroed. */
apd_status apd__import_cifar(apd_dataset *out, const char *path, int cifar100, const char *split,
                             const apd_import_opts *o, apd_err *err);
apd_status apd__import_idx(apd_dataset *out, const char *images, const char *labels,
                           const apd_import_opts *o, apd_err *err);
apd_status apd__import_folder(apd_dataset *out, const char *dir, const char *split,
                              const apd_import_opts *o, apd_err *err);

#endif
