/* apd/io.h: dataset importers (one spec syntax for every tool) and PNG exporters.
 *
 * Importing: apd_import() reads a whole dataset split into an apd_dataset (uint8 CHW pixels,
 * labels, class names, source ids). The spec says which reader and where:
 *
 *   cifar10:PATH     CIFAR-10, binary or python version. PATH is one file (a binary .bin of
 *                    records of 1 label byte + 3072 pixel bytes R, G, B planes, or a python
 *                    pickle such as data_batch_1; the kind is told by content), or a folder
 *                    holding data_batch_1..k[.bin] and test_batch[.bin] (the downloads; no gap
 *                    in 1..k), or train.bin and test.bin, or a folder holding
 *                    cifar-10-batches-bin/ or cifar-10-batches-py/ (torchvision's root). Class
 *                    names from batches.meta.txt / the batches.meta pickle, else built in.
 *                    The python files are read by a strict reader of the pickle subset Python
 *                    2 cPickle wrote (protocol 2; nothing is executed, only numpy's uint8
 *                    array reconstruction is recognised).
 *   cifar100:PATH    CIFAR-100 likewise: binary records of 2 label bytes (coarse, fine) + 3072
 *                    bytes, or the python train/test/meta pickles (cifar-100-binary/,
 *                    cifar-100-python/); the fine label (0..99) is used. Class names from
 *                    fine_label_names.txt / the meta pickle, else built in.
 *   idx:IMAGES,LABELS  IDX files (gzip-compressed or raw): images u8 [n][h][w] (grey) or
 *                    [n][h][w][3] (RGB), labels u8 [n]. Class count = max label + 1, classes
 *                    named by their ids; the split given is recorded as the files' split.
 *   fashion-mnist[:DIR]  Fashion-MNIST IDX files ({train,t10k}-{images-idx3,labels-idx1}-
 *                    ubyte[.gz]) in DIR, default /usr/share/datasets/fashion-mnist (Debian
 *                    package dataset-fashion-mnist). Class names built in.
 *   mnist:DIR        MNIST with the same file names as Fashion-MNIST; classes "0".."9".
 *   folder:DIR       One of three layouts, told by marker files (libapd/io/folder*.c):
 *                    - DIR/labels.csv: a folder written by apd-export --png: images, labels,
 *                      source ids from labels.csv; class names in label order, geometry,
 *                      mean/std (dataset has_norm) and split from DIR/apd-export.json;
 *                    - DIR/wnids.txt: Tiny-ImageNet: classes = the wnids in byte order, named
 *                      by words.txt's first synonym; split train = train/<wnid>/images/, val =
 *                      val/images/ labelled by val/val_annotations.txt (test has no labels);
 *                    - else class folders: DIR/[train|test|val/]<class>/<image>.png|.jpg|
 *                      .jpeg (any case); with split sub-folders the split picks one. Classes
 *                      = sub-folder names in byte order; files in byte order within each
 *                      class; so the result is deterministic.
 *                    Files with other extensions (and hidden files) are skipped with a warning
 *                    (opts->warn); an image file that does not decode, or whose content does
 *                    not match its extension, is an error (APD_EIMAGE) naming the file. PNG of
 *                    any colour type is read as 8-bit (palette expanded, 16-bit reduced, alpha
 *                    dropped). The dataset is grey (c = 1) when every file is a grey PNG
 *                    (a palette of grey entries counts) or JPEG, otherwise RGB (grey files are
 *                    replicated into 3 channels). With opts->size = N, each image's shorter
 *                    side is resized to N (area averaging in exact integer arithmetic) and the
 *                    centre N x N is cropped; without it every image must have the same size
 *                    (APD_EMISMATCH naming the first file that differs). Class names longer
 *                    than 63 bytes are cut at a UTF-8 character boundary; names must differ.
 *                    An apd-export folder of a file with soft labels (format 1.1) also has
 *                    DIR/soft-labels.csv (named by apd-export.json): they come back as the
 *                    dataset's soft_labels / soft_stored, bit for bit; a bad row is an error
 *                    (APD_EDATASET) naming the file, line and reason.
 *   apd:FILE         The records of an .apd file (read with the reader of apd/format.h):
 *                    decoded pixels, labels, class names, the dataset name, the split its
 *                    provenance names, its mean/std (has_norm) and its soft labels; source
 *                    ids are the record indices.
 *
 * split: "train", "test" or "val"; NULL = the source's default (train; an export's or an
 * .apd file's own).
 * A split the source does not have is an error (APD_EDATASET), also for a single CIFAR file
 * whose name says another split; idx: records the split given.
 * opts->size applies to folder: only (APD_EINVAL for other kinds).
 * opts->limit: folder sources (class-sorted) keep a class-balanced subset: each class
 * min(its count, L) images for the largest L that fits, the rest one more each to the first
 * classes, each class's first images in order; other sources keep the first N records in
 * source order. 0 = all.
 *
 *     apd_dataset ds = {0};
 *     apd_err err;
 *     apd_import_opts o;
 *     apd_import_opts_default(&o);
 *     o.limit = 1000;
 *     if (apd_import(&ds, "cifar10:/path/to/cifar-10-batches-bin", "test", &o, &err) != APD_OK)
 *         fprintf(stderr, "%s\n", err.msg);   // e.g. ".../test.bin: record 17 (offset
 *                                             //  52241): truncated: 100 of 3073 bytes"
 *     ...
 *     apd_dataset_free(&ds);
 *
 * Errors name the file, the record (index and byte offset) and the reason:
 *   APD_EDATASET bad spec or layout (also: a bad line of labels.csv / val_annotations.txt /
 *   wnids.txt, naming file and line; repeated class names); APD_ENOENT / APD_EACCES /
 *   APD_EIO path problems; APD_ETRUNC truncated file; APD_EMAGIC wrong IDX magic;
 *   APD_ECORRUPT bad field (label out of range, trailing bytes, dims disagree, a pickle
 *   outside the CIFAR subset, naming its offset); APD_ELIMIT hostile sizes (dims above 4096,
 *   or 16384 for sources that are resized; side files above their size limit);
 *   APD_EUNSUPPORTED an apd-export.json of a newer version; APD_EIMAGE undecodable image;
 *   APD_EEMPTY no images; APD_EMISMATCH image sizes differ (or differ from what the folder
 *   states); APD_ENOMEM.
 *
 * Exporting: PNG writers for one palette record (indexed PNG, PLTE, the smallest legal bit
 * depth 1/2/4/8 for k), one direct image, and a contact sheet (grid with 1-px gaps).
 *
 * Thread safety: every function is reentrant; no global state. On failure the output
 * dataset is left zeroed (nothing to free) and a partially written PNG file is removed.
 */
#ifndef APD_IO_H
#define APD_IO_H

#include "apd/dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of apd_import. Fill with apd_import_opts_default (an all-zero struct is the same
 * defaults) and set what you need; NULL options mean the defaults. */
typedef struct apd_import_opts {
    uint32_t size;  /* folder: resize shorter side + centre crop to size x size (0 = keep;
                       then all images must have the same size) */
    uint64_t limit; /* keep `limit` records (0 = all): folder sources a class-balanced subset,
                       the others the first ones (see above) */
    /* Optional sink for warnings (skipped files, ...), one line each (apd/status.h's log
     * callback); NULL = silent. Called from the importing thread. */
    apd_log_fn warn;
    void *warn_user;
} apd_import_opts;

/* Defaults: no resize, no limit, no warning sink. */
APD_API void apd_import_opts_default(apd_import_opts *o);

/* Import a dataset split. out must be zeroed (or freed) by the caller; on success the caller
 * owns it (apd_dataset_free). opts may be NULL (all defaults); err may be NULL.
 * Fills out->name ("cifar10", "cifar100", "fashion-mnist", "mnist", "idx", the folder's
 * base name, or an export's dataset name), split, source (the spec), class_names,
 * source_ids (record index in the source: position in the concatenated .bin/IDX files or
 * pickles, in the sorted file list, the line of val_annotations.txt, or an export's record
 * index) and, for apd-export folders, the stated normalisation (has_norm, norm_mean/std).
 * @return APD_OK or one of the codes listed above. */
APD_API apd_status apd_import(apd_dataset *out, const char *spec, const char *split,
                              const apd_import_opts *opts, apd_err *err);

/* Indexed PNG of one palette record: k entries (1..APD_MAX_COLORS) of c channels (grey palettes are
 * written as grey RGB triplets in PLTE), indices h*w (each < k), bit depth 1/2/4/8 =
 * the smallest with 2^depth >= k. Overwrites path.
 * @return APD_OK, APD_EINVAL (bad args or an index >= k), APD_ENOENT/EACCES/EIO, APD_ENOMEM. */
APD_API apd_status apd_png_write_indexed(const char *path, const uint8_t *palette, uint32_t k,
                                         uint32_t c, const uint8_t *indices, uint32_t h,
                                         uint32_t w, apd_err *err);

/* 8-bit grey (c = 1) or RGB (c = 3) PNG from a CHW image. Overwrites path.
 * @return APD_OK, APD_EINVAL (NULL argument, c not 1/3, a side 0 or above 2^20),
 *         APD_ENOENT/EACCES/EIO (creating or writing the file), APD_ENOMEM. */
APD_API apd_status apd_png_write_image(const char *path, const uint8_t *chw, uint32_t c,
                                       uint32_t h, uint32_t w, apd_err *err);

/* Contact sheet: n images (CHW, c x h x w each, consecutive) in rows of `cols`, 1-px white
 * gaps between cells; cells past n stay white. Size: cols*w + cols-1 by rows*h + rows-1.
 * @return APD_OK, APD_EINVAL (NULL argument, n or cols 0, c not 1/3, a side 0),
 *         APD_ELIMIT (a sheet side above 2^20), APD_ENOENT/EACCES/EIO, APD_ENOMEM. */
APD_API apd_status apd_png_write_sheet(const char *path, const uint8_t *images, uint32_t n,
                                       uint32_t cols, uint32_t c, uint32_t h, uint32_t w,
                                       apd_err *err);

/* Provenance: the "source" object of the .apd metadata (spec/apd-format.md, optional keys)
 * naming the dataset a file was made from, as one JSON object:
 *   {"name": ..., "split": ..., "spec": ..., "n": N, "c": C, "h": H, "w": W,
 *    "hash": "<16 hex digits>", "counts": [records per class, ...]}
 * plus "resized_to": N when the importer resized the images (apd_import_opts.size).
 * Every producer of .apd files (apd-convert, apd_distill_write) writes it with this call.
 * @param[out] out  the text, NUL-terminated when cap > 0 (truncated to fit); may be NULL
 *                  with cap 0 to ask for the size
 * @param[in]  hash_hex  apd_dataset_hash(ds) when the caller has it (hashing reads every
 *                  pixel); NULL to compute it here
 * @param[in]  resized_to  0, or the side the images were resized to
 * @return the length of the full text without the NUL (snprintf convention): the output was
 *         complete iff the return value is < cap. 0 if ds is NULL. Reentrant; no allocation. */
APD_API size_t apd_dataset_source_json(char *out, size_t cap, const apd_dataset *ds,
                                       const char *hash_hex, uint32_t resized_to);

#ifdef __cplusplus
}
#endif
#endif
