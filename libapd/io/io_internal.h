/* io/io_internal.h: helpers shared by the importers and exporters (not installed).
 *
 * - apd__io_warn: forward a formatted warning to the caller's sink (opts->warn).
 * - apd__image_probe / apd__image_decode: PNG (libpng) and JPEG (libjpeg API) files,
 *   recognised by content and checked against the file extension; output 8-bit CHW.
 * - apd__resize_crop: shorter side to N by exact integer area averaging, centre crop N x N.
 * - class-name helpers: read one name a line from a text file; copy a name into its
 *   63-byte slot without cutting a UTF-8 character; refuse repeated names.
 * - text helpers: read a whole (bounded) file, walk its lines.
 * - apd__flist: the images of a folder dataset before decoding, filled by one of the folder
 *   layouts (folder.c: class folders; folder_layouts.c: apd-export, Tiny-ImageNet).
 * - apd__pickle_*: the Python-pickle subset of the CIFAR python files (pickle.c).
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

/* Read the whole file into *buf (malloc'd, a NUL after the data, which may itself hold NULs).
 * @return APD_OK; APD_ELIMIT (larger than max bytes, naming the file and both sizes);
 *         APD_ENOENT/EACCES/EIO; APD_ENOMEM. On failure *buf is NULL. */
apd_status apd__read_file(const char *path, uint64_t max, char **buf, size_t *len, apd_err *err);

/* The next line of buf[0..len) from *pos on: *line and *llen without the "\n" or "\r\n";
 * *pos moves past it. @return 0 when no line is left. */
int apd__next_line(const char *buf, size_t len, size_t *pos, const char **line, size_t *llen);

/* A decimal number of 1..20 digits (nothing else) that fits 64 bits into *v; 0 if not. */
int apd__parse_u64(const char *s, uint64_t *v);

/* Copy s[0..len) into a class-name slot, NUL-terminated, cut to at most 63 bytes at a UTF-8
 * character boundary (a name never ends in half a character). @return 1 if it was cut. */
int apd__set_class_name(char dst[APD_MAX_CLASS_NAME], const char *s, size_t len);

/* Class names must be distinct (labels are matched by name across files and tools).
 * @return APD_OK or APD_EDATASET naming `where`, the name and both class ids. */
apd_status apd__check_unique_names(char (*names)[APD_MAX_CLASS_NAME], uint32_t n, const char *where,
                                   apd_err *err);

/* .png / .jpg / .jpeg in any case */
int apd__has_image_ext(const char *name);

/* ---- folder datasets ------------------------------------------------------------------------ */

#define APD_IO_PATH 4096u /* longest path the folder importer builds */

typedef struct apd__flist {
    char **paths;       /* n full paths (owned) */
    uint32_t *labels;   /* n */
    uint64_t *src;      /* n: source id of each image (its position in the source) */
    size_t n, cap;
    char (*names)[APD_MAX_CLASS_NAME]; /* n_classes names (owned) */
    uint32_t n_classes;
    uint32_t c;         /* 0, or the channel count the layout states (apd-export) */
    uint32_t h, w;      /* 0, or the image size the layout states (apd-export) */
    uint32_t has_norm;  /* the layout states mean/std (apd-export) */
    float mean[3], std[3];
    char name[64];      /* dataset name ("" = the folder's base name) */
    char split[16];     /* the split the images are ("" = none) */
    char soft_file[64]; /* apd-export: the soft-label file apd-export.json names ("" = none) */
    float *soft;        /* NULL, or n * n_classes soft labels in list order (export_soft.c) */
    uint8_t *soft_stored; /* with soft: n flags, 1 = the source stores the vector */
} apd__flist;

/* Append one image. @return APD_OK or APD_ENOMEM. */
apd_status apd__flist_push(apd__flist *fl, const char *path, uint32_t label, uint64_t src);
void apd__flist_free(apd__flist *fl);

/* Append the image files of folder dir (not hidden, image extension; byte order) with label
 * `label`, source ids continuing from fl->n; warn about other files (and sub-folders unless
 * quiet_subdirs) once per folder. @return APD_OK, APD_ENOENT/EACCES/EIO, APD_ENOMEM. */
apd_status apd__flist_add_folder(apd__flist *fl, const char *dir, uint32_t label, const char *cls,
                                 const apd_import_opts *o, apd_err *err);

/* The layouts of folder_layouts.c: fill fl (zeroed by the caller) from an apd-export folder
 * (dir/labels.csv present) or a Tiny-ImageNet folder (dir/wnids.txt present). */
apd_status apd__folder_export(apd__flist *fl, const char *dir, const char *split,
                              const apd_import_opts *o, apd_err *err);
apd_status apd__folder_tiny(apd__flist *fl, const char *dir, const char *split,
                            const apd_import_opts *o, apd_err *err);
/* export_soft.c: dir/name (apd-export's soft-labels.csv) into fl->soft and fl->soft_stored,
 * one row per listed image, checked; errors name the file, line and reason. */
apd_status apd__folder_export_soft(apd__flist *fl, const char *dir, const char *name, apd_err *err);

/* ---- the pickle subset of the CIFAR python files (pickle.c) --------------------------------- */

typedef struct apd__pickle apd__pickle;

typedef enum {
    APD_PK_NONE = 0, APD_PK_BOOL, APD_PK_INT, APD_PK_STR, APD_PK_LIST, APD_PK_TUPLE, APD_PK_DICT,
    APD_PK_GLOBAL, APD_PK_ARRAY, APD_PK_DTYPE
} apd__pk_type;

/* Parse buf[0..len) (kept borrowed: strings and array data point into it). name is used in
 * messages ("NAME: pickle offset N: reason"). On failure *out is NULL.
 * @return APD_OK; APD_ECORRUPT (an opcode or object outside the subset, a malformed
 *         structure); APD_ETRUNC (the data ends early); APD_ELIMIT; APD_ENOMEM. */
apd_status apd__pickle_parse(apd__pickle **out, const uint8_t *buf, size_t len, const char *name,
                             apd_err *err);
void apd__pickle_free(apd__pickle *p);
/* Node accessors (node 0 is the root; -1 = none, accepted everywhere). */
apd__pk_type apd__pickle_type(const apd__pickle *p, int node);
/* Value of key (a str) in dict node, or -1. */
int apd__pickle_get(const apd__pickle *p, int dict, const char *key);
/* Elements of a list or tuple node (0 otherwise); element i or -1. */
size_t apd__pickle_len(const apd__pickle *p, int node);
int apd__pickle_item(const apd__pickle *p, int node, size_t i);
/* An int (or bool) node. @return 1 on success. */
int apd__pickle_int(const apd__pickle *p, int node, int64_t *v);
/* A str node's bytes (not NUL-terminated), or NULL. */
const uint8_t *apd__pickle_str(const apd__pickle *p, int node, size_t *len);
/* A uint8 2-D C-order array node: its data and shape, or NULL. */
const uint8_t *apd__pickle_u8_matrix(const apd__pickle *p, int node, uint64_t *rows, uint64_t *cols);

/* Importers (spec prefix stripped). They fill everything except name/source/split text,
 * which apd_import sets; on error they leave *out zeroed. */
apd_status apd__import_cifar(apd_dataset *out, const char *path, int cifar100, const char *split,
                             const apd_import_opts *o, apd_err *err);
apd_status apd__import_idx(apd_dataset *out, const char *images, const char *labels,
                           const apd_import_opts *o, apd_err *err);
apd_status apd__import_folder(apd_dataset *out, const char *dir, const char *split,
                              const apd_import_opts *o, apd_err *err);
/* apd:FILE (apd_file.c): the records of an .apd file through the public reader API. */
apd_status apd__import_apd(apd_dataset *out, const char *path, const char *split, const apd_import_opts *o,
                           apd_err *err);

#endif
