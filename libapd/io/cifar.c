/* io/cifar.c: the CIFAR-10 / CIFAR-100 binary importer.
 *
 * Layout (the official "binary version"): a file is a sequence of fixed-size records,
 *
 *     CIFAR-10:   [label u8][R plane 1024][G plane 1024][B plane 1024]       3073 bytes
 *     CIFAR-100:  [coarse u8][fine u8][R 1024][G 1024][B 1024]              3074 bytes
 *
 * planes row-major 32x32, so the pixels are already CHW. A folder holds data_batch_1..5.bin
 * + test_batch.bin (CIFAR-10) or train.bin + test.bin (CIFAR-100, and our cifar10-dev).
 * Checks: file size a whole number of records (else APD_ETRUNC naming the partial record),
 * labels in range (APD_ECORRUPT naming record and offset), at least one record.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io_internal.h"

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                              "dog", "frog", "horse", "ship", "truck"};

static const char *const cifar100_names[100] = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"};

#define CIFAR_MAX_FILES 8

static int join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

/* The .bin files of a CIFAR path for the split (a directory's batches, or the one file) and
 * the folder the class-name file is looked for in. */
static apd_status cifar_files(const char *path, const char *split, char files[][1024],
                              uint32_t *nf, char metadir[1024], apd_err *err)
{
    struct stat st;
    *nf = 0;
    if (stat(path, &st) != 0) return apd__err_sys(err, errno, path, "cannot open dataset");
    if (!S_ISDIR(st.st_mode)) {
        snprintf(files[0], 1024, "%s", path);
        *nf = 1;
        snprintf(metadir, 1024, "%s", path);
        char *slash = strrchr(metadir, '/');
        if (slash) *slash = '\0';
        else snprintf(metadir, 1024, ".");
        return APD_OK;
    }
    int test = split && !strcmp(split, "test");
    snprintf(metadir, 1024, "%s", path);
    if (!test) {
        for (int b = 1; b <= 5; b++) {
            char name[32];
            snprintf(name, sizeof name, "data_batch_%d.bin", b);
            if (!join(files[*nf], 1024, path, name)) break;
            if (apd__is_file(files[*nf])) (*nf)++;
        }
        if (!*nf && join(files[0], 1024, path, "train.bin") && apd__is_file(files[0])) *nf = 1;
    } else {
        if (join(files[0], 1024, path, "test_batch.bin") && apd__is_file(files[0])) *nf = 1;
        else if (join(files[0], 1024, path, "test.bin") && apd__is_file(files[0])) *nf = 1;
    }
    if (!*nf)
        return apd__err_set(err, APD_EDATASET,
                            "%s: no CIFAR %s files (expected %s)", path, test ? "test" : "train",
                            test ? "test_batch.bin or test.bin" : "data_batch_1..5.bin or train.bin");
    return APD_OK;
}

/* Read counts[i] records of rs bytes from files[i] into out, from record *gi on, up to
 * total; labels checked. */
static apd_status cifar_read(apd_dataset *out, const char *file, uint64_t count, uint32_t rs,
                             int cifar100, uint64_t total, uint64_t *gi, apd_err *err)
{
    const uint32_t ncls = cifar100 ? 100 : 10;
    FILE *f = fopen(file, "rb");
    if (!f) return apd__err_sys(err, errno, file, "cannot open");
    uint8_t rec[3074];
    apd_status s = APD_OK;
    for (uint64_t r = 0; r < count && *gi < total; r++, (*gi)++) {
        unsigned long long off = (unsigned long long)(r * rs);
        size_t got = fread(rec, 1, rs, f);
        if (got != rs) {
            int e = ferror(f) ? errno : 0;
            if (e) s = apd__err_sys(err, e, file, "read error");
            else s = apd__err_set(err, APD_ETRUNC, "%s: record %llu (offset %llu): truncated: %zu of %u bytes",
                                  file, (unsigned long long)r, off, got, rs);
            break;
        }
        uint32_t label = rec[rs - 3073];
        if (cifar100 && rec[0] >= 20) {
            s = apd__err_set(err, APD_ECORRUPT, "%s: record %llu (offset %llu): coarse label %u out of range 0..19",
                             file, (unsigned long long)r, off, rec[0]);
            break;
        }
        if (label >= ncls) {
            s = apd__err_set(err, APD_ECORRUPT, "%s: record %llu (offset %llu): label %u out of range 0..%u",
                             file, (unsigned long long)r, off, label, ncls - 1);
            break;
        }
        out->labels[*gi] = label;
        out->source_ids[*gi] = *gi;
        memcpy(out->pixels + *gi * 3072, rec + rs - 3072, 3072);
    }
    fclose(f);
    return s;
}

/* Class names from the meta file next to the data if present and complete, else the
 * published names; dataset name and split. */
static void cifar_names(apd_dataset *out, const char *path, const char *metadir, uint32_t nf,
                        int cifar100, const char *split, const apd_import_opts *o)
{
    const uint32_t ncls = cifar100 ? 100 : 10;
    char meta[1100];
    int got = -1;
    if (snprintf(meta, sizeof meta, "%s/%s", metadir, cifar100 ? "fine_label_names.txt" : "batches.meta.txt") <
        (int)sizeof meta)
        got = apd__read_names(meta, out->class_names, ncls);
    if (got != (int)ncls) {
        if (got >= 0)
            apd__io_warn(o, "%s: %d class names instead of %u; using the built-in names", meta, got, ncls);
        for (uint32_t j = 0; j < ncls; j++)
            snprintf(out->class_names[j], APD_MAX_CLASS_NAME, "%s", cifar100 ? cifar100_names[j] : cifar10_names[j]);
    }
    snprintf(out->name, sizeof out->name, "%s", cifar100 ? "cifar100" : "cifar10");
    if (nf == 1 && !apd__is_dir(path)) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        /* a single file is what it is: the split comes from its name, not the option */
        snprintf(out->split, sizeof out->split, "%s", strstr(base, "test") ? "test" : "train");
    } else {
        snprintf(out->split, sizeof out->split, "%s", split ? split : "train");
    }
}

apd_status apd__import_cifar(apd_dataset *out, const char *path, int cifar100, const char *split,
                             const apd_import_opts *o, apd_err *err)
{
    char files[CIFAR_MAX_FILES][1024], metadir[1024];
    uint32_t nf = 0;
    const uint32_t rs = (cifar100 ? 2u : 1u) + 3072u;
    APD_TRY(cifar_files(path, split, files, &nf, metadir, err));

    /* sizes first: a partial record anywhere is an error before any allocation */
    uint64_t counts[CIFAR_MAX_FILES], total = 0;
    for (uint32_t i = 0; i < nf; i++) {
        struct stat st;
        if (stat(files[i], &st) != 0) return apd__err_sys(err, errno, files[i], "cannot open");
        uint64_t size = (uint64_t)st.st_size;
        if (size % rs)
            return apd__err_set(err, APD_ETRUNC,
                                "%s: record %llu (offset %llu): truncated: %llu of %u bytes "
                                "(file size %llu is not a multiple of the %u-byte %s record)",
                                files[i], (unsigned long long)(size / rs),
                                (unsigned long long)(size / rs * rs), (unsigned long long)(size % rs),
                                rs, (unsigned long long)size, rs, cifar100 ? "CIFAR-100" : "CIFAR-10");
        counts[i] = size / rs;
        total += counts[i];
    }
    if (!total) return apd__err_set(err, APD_EEMPTY, "%s: no records", files[0]);
    if (o && o->limit && o->limit < total) total = o->limit;

    apd_status s = apd_dataset_alloc(out, total, 3, 32, 32, cifar100 ? 100 : 10);
    if (s != APD_OK) return apd__err_set(err, s, "%s: cannot allocate %llu images", path, (unsigned long long)total);
    out->source_ids = malloc(sizeof(uint64_t) * total);
    if (!out->source_ids) {
        apd_dataset_free(out);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    }
    uint64_t gi = 0;
    for (uint32_t i = 0; i < nf && gi < total && s == APD_OK; i++)
        s = cifar_read(out, files[i], counts[i], rs, cifar100, total, &gi, err);
    if (s != APD_OK) {
        apd_dataset_free(out);
        return s;
    }
    cifar_names(out, path, metadir, nf, cifar100, split, o);
    return APD_OK;
}
