/* apd/dataset.h: an in-memory image dataset, the hand-off between importers, methods
 * (quantize, distill) and writers.
 *
 * Pixels are uint8, one image after another, each image planar CHW (as CIFAR's binary
 * layout and the NN engine's NCHW): pixel (i, c, y, x) is pixels[((i*C + c)*H + y)*W + x].
 * C is 1 (grey) or 3 (RGB). Labels are class ids in [0, n_classes).
 *
 *     apd_dataset ds;
 *     apd_err err;
 *     if (apd_import(&ds, "fashion-mnist", "train", NULL, &err) != APD_OK) { ...err.msg... }
 *     printf("%llu images %ux%ux%u\n", (unsigned long long)ds.n, ds.c, ds.h, ds.w);
 *     apd_dataset_free(&ds);
 *
 * Ownership: the dataset owns pixels, labels, source_ids, class_names, soft_labels and
 * soft_stored; apd_dataset_free releases them (safe on a zeroed or already-freed dataset).
 */
#ifndef APD_DATASET_H
#define APD_DATASET_H

#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define APD_MAX_CLASS_NAME 64

typedef struct apd_dataset {
    uint64_t n;            /* number of images */
    uint32_t c, h, w;      /* channels (1 or 3), height, width */
    uint8_t *pixels;       /* n * c * h * w bytes, CHW per image */
    uint32_t *labels;      /* n class ids */
    uint64_t *source_ids;  /* optional (NULL): index of each image in its source dataset */
    uint32_t n_classes;
    char (*class_names)[APD_MAX_CLASS_NAME]; /* n_classes names, NUL-terminated; may be NULL */
    char name[64];         /* dataset identity, e.g. "fashion-mnist", "cifar10" */
    char split[16];        /* "train", "test" or "" */
    char source[512];      /* where it came from (spec string / path) */
    /* Normalisation the source states for itself: a folder written by apd-export carries
     * the mean/std recorded in the .apd it came from, so that a round trip keeps them.
     * has_norm = 0 (the default of a zeroed struct): none stated; apd_dataset_norm then
     * computes it from the pixels. */
    uint32_t has_norm;
    float norm_mean[3], norm_std[3]; /* per channel, of pixels/255; c entries used */
    /* Soft labels (format 1.1) the source carries, or NULL: soft_labels[i * n_classes + k] is
     * image i's probability of class k (each row finite, >= 0, summing to 1 within 1e-3), as
     * an apd: file or an apd-export folder with soft-labels.csv gives them. soft_stored[i]
     * (set with soft_labels): 1 if the source stores image i's vector, 0 if its row is the
     * one-hot vector of its label (a writer then stores no vector, as the source did). */
    float *soft_labels;
    uint8_t *soft_stored;
} apd_dataset;

/* Allocate pixels and labels for n images of c x h x w (zero-filled), and n_classes names
 * (empty strings). Any previous content is NOT freed: pass a zeroed struct.
 * @return APD_OK, APD_EINVAL (c not 1 or 3, zero dims), APD_EOVERFLOW, APD_ENOMEM. */
APD_API apd_status apd_dataset_alloc(apd_dataset *ds, uint64_t n, uint32_t c, uint32_t h,
                                     uint32_t w, uint32_t n_classes);
APD_API void apd_dataset_free(apd_dataset *ds);

/* Bytes of one image (c*h*w). */
static inline size_t apd_dataset_image_bytes(const apd_dataset *ds)
{
    return (size_t)ds->c * ds->h * ds->w;
}

/* Content hash of geometry, pixels and labels ("apd-h64"), as 16 lowercase hex digits plus
 * NUL. Identifies the source dataset in provenance. Deterministic on every host. */
APD_API void apd_dataset_hash(const apd_dataset *ds, char out_hex[17]);

/* Per-channel mean and std of pixels/255 over the whole dataset (population std). */
APD_API void apd_dataset_mean_std(const apd_dataset *ds, float mean[3], float std[3]);

/* The normalisation to record for ds (the mean/std a writer stores): the one the source
 * states (has_norm), else apd_dataset_mean_std. Unused channels are set to 0. */
APD_API void apd_dataset_norm(const apd_dataset *ds, float mean[3], float std[3]);

/* Counts per class into counts[n_classes]. */
APD_API void apd_dataset_class_counts(const apd_dataset *ds, uint64_t *counts);

#ifdef __cplusplus
}
#endif
#endif
