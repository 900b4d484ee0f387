/* io/import.c: apd_import, the one dataset spec syntax of every tool (see apd/io.h), and the
 * MNIST-family wrappers over the IDX reader.
 *
 * Spec grammar: KIND[:ARG]. KIND is case-sensitive: cifar10, cifar100, idx, fashion-mnist,
 * mnist, folder, apd. Everything after the first ':' is the path (it may itself contain ':', so
 * "cifar10:/data/c:10" works); idx splits its two paths at the first ','.
 */
#define _DEFAULT_SOURCE
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/* DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] */
static apd_status mnist_like(apd_dataset *out, const char *dir, const char *split, int fashion,
                             const apd_import_opts *o, apd_err *err)
{
    if (split && !strcmp(split, "val"))
        return apd__err_set(err, APD_EDATASET, "%s: %s has train and test splits, not val", dir, fashion ? "Fashion-MNIST" : "MNIST");
    const char *pre = split && !strcmp(split, "test") ? "t10k" : "train";
    char img[1100], lab[1100];
    int found = 0;
    static const char *const sfx[2] = {".gz", ""};
    for (int i = 0; i < 2 && !found; i++) {
        snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte%s", dir, pre, sfx[i]);
        snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte%s", dir, pre, sfx[i]);
        found = apd__is_file(img) && apd__is_file(lab);
    }
    if (!found) {
        if (!apd__is_dir(dir))
            return apd__err_set(err, APD_ENOENT, "%s: no such directory%s", dir,
                                fashion ? " (install the Debian package dataset-fashion-mnist, or give fashion-mnist:DIR)" : "");
        return apd__err_set(err, APD_ENOENT, "%s: no %s-images-idx3-ubyte[.gz] / %s-labels-idx1-ubyte[.gz]", dir, pre, pre);
    }
    APD_TRY(apd__import_idx(out, img, lab, o, err));
    if (out->c != 1 || out->n_classes > 10) {
        apd_status s = apd__err_set(err, APD_ECORRUPT, "%s: not %s: %u channels, label up to %u", img,
                                    fashion ? "Fashion-MNIST" : "MNIST", out->c, out->n_classes - 1);
        apd_dataset_free(out);
        memset(out, 0, sizeof *out);
        return s;
    }
    if (out->n_classes < 10) { /* a subset (limit) may miss the last classes: keep all 10 */
        char (*names)[APD_MAX_CLASS_NAME] = calloc(10, APD_MAX_CLASS_NAME);
        if (!names) {
            apd_dataset_free(out);
            memset(out, 0, sizeof *out);
            return apd__err_set(err, APD_ENOMEM, "out of memory");
        }
        free(out->class_names);
        out->class_names = names;
        out->n_classes = 10;
    }
    for (uint32_t j = 0; j < 10; j++)
        snprintf(out->class_names[j], APD_MAX_CLASS_NAME, "%s", fashion ? fashion_names[j] : (const char[]){(char)('0' + j), 0});
    snprintf(out->name, sizeof out->name, "%s", fashion ? "fashion-mnist" : "mnist");
    snprintf(out->split, sizeof out->split, "%s", split && !strcmp(split, "test") ? "test" : "train");
    return APD_OK;
}

void apd_import_opts_default(apd_import_opts *o)
{
    memset(o, 0, sizeof *o);
}

apd_status apd_import(apd_dataset *out, const char *spec, const char *split,
                      const apd_import_opts *opts, apd_err *err)
{
    if (!out || !spec) return apd__err_set(err, APD_EINVAL, "apd_import: NULL argument");
    memset(out, 0, sizeof *out);
    apd_import_opts defaults;
    apd_import_opts_default(&defaults);
    const apd_import_opts *o = opts ? opts : &defaults;
    if (split && *split == '\0') split = NULL;
    if (split && strcmp(split, "train") && strcmp(split, "test") && strcmp(split, "val"))
        return apd__err_set(err, APD_EINVAL, "split '%s': expected train, test or val", split);
    if (o->size > APD_IO_MAX_DIM)
        return apd__err_set(err, APD_ELIMIT, "size %u exceeds the limit %u", o->size, APD_IO_MAX_DIM);

    const char *colon = strchr(spec, ':');
    size_t klen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : NULL;
    char kind[32];
    if (klen >= sizeof kind) klen = sizeof kind - 1;
    memcpy(kind, spec, klen);
    kind[klen] = '\0';
    int need_arg = strcmp(kind, "fashion-mnist") != 0;
    if (need_arg && (!arg || !*arg))
        return apd__err_set(err, APD_EDATASET, "dataset '%s': missing path (expected %s:PATH)", spec, kind);

    if (o->size && strcmp(kind, "folder"))
        return apd__err_set(err, APD_EINVAL, "dataset '%s': a resize size applies only to folder: datasets", spec);
    apd_status s;
    if (!strcmp(kind, "cifar10") || !strcmp(kind, "cifar100")) {
        s = apd__import_cifar(out, arg, !strcmp(kind, "cifar100"), split, o, err);
    } else if (!strcmp(kind, "idx")) {
        const char *comma = strchr(arg, ',');
        if (!comma || comma == arg || !comma[1])
            return apd__err_set(err, APD_EDATASET, "dataset '%s': expected idx:IMAGES,LABELS", spec);
        char images[1024];
        size_t il = (size_t)(comma - arg);
        if (il >= sizeof images) return apd__err_set(err, APD_EDATASET, "dataset '%s': path too long", spec);
        memcpy(images, arg, il);
        images[il] = '\0';
        s = apd__import_idx(out, images, comma + 1, o, err);
        if (s == APD_OK) snprintf(out->split, sizeof out->split, "%s", split ? split : "");
    } else if (!strcmp(kind, "fashion-mnist")) {
        s = mnist_like(out, arg && *arg ? arg : FASHION_MNIST_DIR, split, 1, o, err);
    } else if (!strcmp(kind, "mnist")) {
        s = mnist_like(out, arg, split, 0, o, err);
    } else if (!strcmp(kind, "folder")) {
        s = apd__import_folder(out, arg, split, o, err);
    } else if (!strcmp(kind, "apd")) {
        s = apd__import_apd(out, arg, split, o, err);
    } else {
        return apd__err_set(err, APD_EDATASET,
                            "dataset '%s': unknown kind '%s' (expected cifar10:PATH, cifar100:PATH, "
                            "idx:IMAGES,LABELS, fashion-mnist[:DIR], mnist:DIR, folder:DIR or apd:FILE)", spec, kind);
    }
    if (s != APD_OK) {
        memset(out, 0, sizeof *out);
        return s;
    }
    snprintf(out->source, sizeof out->source, "%s", spec);
    if (err) {
        err->code = APD_OK;
        err->sys_errno = 0;
        err->msg[0] = '\0';
    }
    return APD_OK;
}
