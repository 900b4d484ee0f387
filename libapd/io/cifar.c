/* io/cifar.c: the CIFAR-10 / CIFAR-100 importer, binary and python versions.
 *
 * Binary version: a file is a sequence of fixed-size records,
 *
 *     CIFAR-10:   [label u8][R plane 1024][G plane 1024][B plane 1024]       3073 bytes
 *     CIFAR-100:  [coarse u8][fine u8][R 1024][G 1024][B 1024]              3074 bytes
 *
 * planes row-major 32x32, so the pixels are already CHW. A folder holds data_batch_1..5.bin
 * + test_batch.bin (CIFAR-10) or train.bin + test.bin (CIFAR-100, and our cifar10-dev);
 * names from batches.meta.txt / fine_label_names.txt.
 *
 * Python version (what torchvision downloads): cifar-10-batches-py/{data_batch_1..5,
 * test_batch, batches.meta}, cifar-100-python/{train, test, meta}: each a pickle (pickle.c)
 * of a dict with "data" (a uint8 array N x 3072, rows in the binary record's pixel order),
 * "labels" (CIFAR-10) or "fine_labels" + "coarse_labels" (CIFAR-100), and in the meta file
 * "label_names" / "fine_label_names". A file is told apart by content: a pickle starts with
 * the PROTO byte 0x80, a binary record with a label (< 20).
 *
 * PATH may be one file (its split comes from its name: "test" in it means test), a folder
 * of either version, or a folder holding cifar-10-batches-bin / cifar-10-batches-py /
 * cifar-100-binary / cifar-100-python (the torchvision root). Training batches must be
 * data_batch_1..k without gaps.
 *
 * Checks: a binary file is a whole number of records (else APD_ETRUNC naming the partial
 * record), labels in range (APD_ECORRUPT naming record and offset), the pickle's label list
 * as long as its data, at least one record; an explicit split that a single file is not is
 * an error (APD_EDATASET).
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
#define CIFAR_PICKLE_MAX (1ull << 30) /* the CIFAR-100 train pickle is 161 MB */

typedef struct cifar_src {
    char files[CIFAR_MAX_FILES][1024];
    uint32_t nf;
    int pickle;        /* python version */
    char meta[1024];   /* class-name file ("" = none) */
    char split[16];
} cifar_src;

static int join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

/* 1 if the file starts with the pickle PROTO byte, 0 if not, -1 if unreadable (empty). */
static int is_pickle(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int c = fgetc(f);
    fclose(f);
    return c == EOF ? -1 : c == 0x80;
}

/* The batches of one version in folder dir for the split: train = data_batch_1..k (no gap)
 * or train; test = test_batch or test. ext is ".bin" or "" (python). 0 if none. */
static uint32_t batches_in(const char *dir, int test, int cifar100, const char *ext, cifar_src *s)
{
    char name[64];
    uint32_t nf = 0;
    if (!test && !cifar100) {
        for (int b = 1; b <= 5; b++) {
            snprintf(name, sizeof name, "data_batch_%d%s", b, ext);
            if (!join(s->files[nf], sizeof s->files[nf], dir, name) || !apd__is_file(s->files[nf])) break;
            nf++;
        }
        if (nf) return nf;
    }
    if (test && !cifar100) {
        snprintf(name, sizeof name, "test_batch%s", ext);
        if (join(s->files[0], sizeof s->files[0], dir, name) && apd__is_file(s->files[0])) return 1;
    }
    snprintf(name, sizeof name, "%s%s", test ? "test" : "train", ext);
    if (join(s->files[0], sizeof s->files[0], dir, name) && apd__is_file(s->files[0])) return 1;
    return 0;
}

/* A training batch after a gap (data_batch_3 without data_batch_2) is an error. */
static apd_status check_gap(const char *dir, uint32_t nf, const char *ext, apd_err *err)
{
    char name[64], p[1100];
    for (uint32_t b = nf + 2; b <= 5; b++) {
        snprintf(name, sizeof name, "data_batch_%u%s", b, ext);
        if (join(p, sizeof p, dir, name) && apd__is_file(p))
            return apd__err_set(err, APD_EDATASET, "%s: has %s but not data_batch_%u%s (batches must be 1..k)", dir,
                                name, nf + 1, ext);
    }
    return APD_OK;
}

/* Files of a folder of one version, or of its torchvision sub-folder. */
static apd_status cifar_dir(const char *path, int cifar100, const char *split, cifar_src *s, int depth,
                            apd_err *err)
{
    int test = split && !strcmp(split, "test");
    static const char *const sub10[2] = {"cifar-10-batches-bin", "cifar-10-batches-py"};
    static const char *const sub100[2] = {"cifar-100-binary", "cifar-100-python"};
    for (int py = 0; py < 2; py++) {
        const char *ext = py ? "" : ".bin";
        if ((s->nf = batches_in(path, test, cifar100, ext, s)) == 0) continue;
        if (py) {
            for (uint32_t i = 0; i < s->nf; i++)
                if (is_pickle(s->files[i]) != 1)
                    return apd__err_set(err, APD_EDATASET, "%s: not a CIFAR python pickle (no PROTO byte 0x80)", s->files[i]);
        }
        if (!test && !cifar100) APD_TRY(check_gap(path, s->nf, ext, err));
        s->pickle = py;
        const char *meta = py ? (cifar100 ? "meta" : "batches.meta") : (cifar100 ? "fine_label_names.txt" : "batches.meta.txt");
        if (!join(s->meta, sizeof s->meta, path, meta) || !apd__is_file(s->meta)) s->meta[0] = '\0';
        snprintf(s->split, sizeof s->split, "%s", test ? "test" : "train");
        return APD_OK;
    }
    for (int i = 0; depth == 0 && i < 2; i++) {
        char sub[1024];
        if (join(sub, sizeof sub, path, cifar100 ? sub100[i] : sub10[i]) && apd__is_dir(sub))
            return cifar_dir(sub, cifar100, split, s, 1, err);
    }
    return apd__err_set(err, APD_EDATASET,
                        "%s: no CIFAR-%s %s files (expected %s, or a %s/ or %s/ folder)", path, cifar100 ? "100" : "10",
                        test ? "test" : "train",
                        cifar100 ? (test ? "test.bin or test" : "train.bin or train")
                                 : (test ? "test_batch[.bin] or test.bin" : "data_batch_1..5[.bin] or train.bin"),
                        cifar100 ? sub100[0] : sub10[0], cifar100 ? sub100[1] : sub10[1]);
}

static apd_status cifar_files(const char *path, int cifar100, const char *split, cifar_src *s, apd_err *err)
{
    struct stat st;
    memset(s, 0, sizeof *s);
    if (split && strcmp(split, "train") && strcmp(split, "test"))
        return apd__err_set(err, APD_EDATASET, "%s: CIFAR has train and test splits, not %s", path, split);
    if (stat(path, &st) != 0) return apd__err_sys(err, errno, path, "cannot open dataset");
    if (S_ISDIR(st.st_mode)) return cifar_dir(path, cifar100, split, s, 0, err);
    /* one file: its split is in its name, its kind in its first byte */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(s->split, sizeof s->split, "%s", strstr(base, "test") ? "test" : "train");
    if (split && strcmp(split, s->split))
        return apd__err_set(err, APD_EDATASET, "%s: one file, the %s split by its name; split %s does not apply "
                            "(give the folder, or the %s file)", path, s->split, split, split);
    snprintf(s->files[0], sizeof s->files[0], "%s", path);
    s->nf = 1;
    s->pickle = is_pickle(path) == 1;
    char dir[1024];
    snprintf(dir, sizeof dir, "%.*s", base > path ? (int)(base - path - 1) : 1, base > path ? path : ".");
    const char *meta = s->pickle ? (cifar100 ? "meta" : "batches.meta") : (cifar100 ? "fine_label_names.txt" : "batches.meta.txt");
    if (!join(s->meta, sizeof s->meta, dir, meta) || !apd__is_file(s->meta)) s->meta[0] = '\0';
    return APD_OK;
}

/* ---- binary version ------------------------------------------------------------------------- */

/* Read count records of rs bytes from file into out, from record *gi on, up to total. */
static apd_status bin_read(apd_dataset *out, const char *file, uint64_t count, uint32_t rs, int cifar100,
                           uint64_t total, uint64_t *gi, apd_err *err)
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

/* Record counts of the binary files (a partial record anywhere is an error before any
 * allocation). */
static apd_status bin_counts(const cifar_src *src, int cifar100, uint64_t *counts, apd_err *err)
{
    const uint32_t rs = (cifar100 ? 2u : 1u) + 3072u;
    for (uint32_t i = 0; i < src->nf; i++) {
        struct stat st;
        if (stat(src->files[i], &st) != 0) return apd__err_sys(err, errno, src->files[i], "cannot open");
        uint64_t size = (uint64_t)st.st_size;
        if (size % rs)
            return apd__err_set(err, APD_ETRUNC,
                                "%s: record %llu (offset %llu): truncated: %llu of %u bytes "
                                "(file size %llu is not a multiple of the %u-byte %s record)",
                                src->files[i], (unsigned long long)(size / rs),
                                (unsigned long long)(size / rs * rs), (unsigned long long)(size % rs),
                                rs, (unsigned long long)size, rs, cifar100 ? "CIFAR-100" : "CIFAR-10");
        counts[i] = size / rs;
    }
    return APD_OK;
}

/* ---- python version ------------------------------------------------------------------------- */

typedef struct py_batch {
    char *buf;          /* the file */
    apd__pickle *pk;
    const uint8_t *data;
    uint64_t rows;
    int labels, coarse; /* list nodes */
} py_batch;

static void py_free(py_batch *b)
{
    apd__pickle_free(b->pk);
    free(b->buf);
    memset(b, 0, sizeof *b);
}

/* Load one batch pickle and find its data array and label list(s). */
static apd_status py_load(py_batch *b, const char *file, int cifar100, apd_err *err)
{
    size_t len;
    memset(b, 0, sizeof *b);
    APD_TRY(apd__read_file(file, CIFAR_PICKLE_MAX, &b->buf, &len, err));
    apd_status s = apd__pickle_parse(&b->pk, (const uint8_t *)b->buf, len, file, err);
    uint64_t cols = 0;
    if (s == APD_OK && apd__pickle_type(b->pk, 0) != APD_PK_DICT)
        s = apd__err_set(err, APD_ECORRUPT, "%s: the pickle holds a %s, not a dict", file,
                         apd__pickle_type(b->pk, 0) == APD_PK_LIST ? "list" : "non-dict value");
    if (s == APD_OK && !(b->data = apd__pickle_u8_matrix(b->pk, apd__pickle_get(b->pk, 0, "data"), &b->rows, &cols)))
        s = apd__err_set(err, APD_ECORRUPT, "%s: no \"data\" key holding a 2-D uint8 array", file);
    if (s == APD_OK && cols != 3072)
        s = apd__err_set(err, APD_ECORRUPT, "%s: \"data\" rows hold %llu values, not 3072 (3 x 32 x 32)", file,
                         (unsigned long long)cols);
    const char *lk = cifar100 ? "fine_labels" : "labels";
    if (s == APD_OK) b->labels = apd__pickle_get(b->pk, 0, lk);
    if (s == APD_OK && (apd__pickle_type(b->pk, b->labels) != APD_PK_LIST || apd__pickle_len(b->pk, b->labels) != b->rows))
        s = apd__err_set(err, APD_ECORRUPT, "%s: \"%s\" is not a list of %llu labels (one per \"data\" row)", file, lk,
                         (unsigned long long)b->rows);
    b->coarse = cifar100 && s == APD_OK ? apd__pickle_get(b->pk, 0, "coarse_labels") : -1;
    if (s == APD_OK && b->coarse >= 0 && apd__pickle_len(b->pk, b->coarse) != b->rows)
        s = apd__err_set(err, APD_ECORRUPT, "%s: \"coarse_labels\" is not a list of %llu labels", file, (unsigned long long)b->rows);
    if (s != APD_OK) py_free(b);
    return s;
}

/* Copy up to total - *gi records of batch b into out; labels checked. */
static apd_status py_copy(apd_dataset *out, const py_batch *b, const char *file, int cifar100, uint64_t total,
                          uint64_t *gi, apd_err *err)
{
    const int64_t ncls = cifar100 ? 100 : 10;
    for (uint64_t r = 0; r < b->rows && *gi < total; r++, (*gi)++) {
        int64_t label, coarse;
        if (!apd__pickle_int(b->pk, apd__pickle_item(b->pk, b->labels, r), &label) || label < 0 || label >= ncls)
            return apd__err_set(err, APD_ECORRUPT, "%s: record %llu: label is not an int in 0..%lld", file,
                                (unsigned long long)r, (long long)(ncls - 1));
        if (b->coarse >= 0 && (!apd__pickle_int(b->pk, apd__pickle_item(b->pk, b->coarse, r), &coarse) || coarse < 0 ||
                               coarse >= 20))
            return apd__err_set(err, APD_ECORRUPT, "%s: record %llu: coarse label is not an int in 0..19", file,
                                (unsigned long long)r);
        out->labels[*gi] = (uint32_t)label;
        out->source_ids[*gi] = *gi;
        memcpy(out->pixels + *gi * 3072, b->data + r * 3072, 3072);
    }
    return APD_OK;
}

/* Class names of the python meta pickle into out; 0 if it has no complete list. Python 2
 * str is bytes: decoded as latin-1 (as torchvision reads them) into UTF-8. */
static apd_status py_names(apd_dataset *out, const char *meta, int cifar100, int *got, apd_err *err)
{
    char *buf;
    size_t len;
    apd__pickle *pk = NULL;
    *got = 0;
    APD_TRY(apd__read_file(meta, 16u << 20, &buf, &len, err));
    apd_status s = apd__pickle_parse(&pk, (const uint8_t *)buf, len, meta, err);
    int list = s == APD_OK ? apd__pickle_get(pk, 0, cifar100 ? "fine_label_names" : "label_names") : -1;
    if (s == APD_OK && apd__pickle_len(pk, list) == out->n_classes) {
        *got = 1;
        for (uint32_t k = 0; k < out->n_classes && *got; k++) {
            size_t n = 0;
            const uint8_t *str = apd__pickle_str(pk, apd__pickle_item(pk, list, k), &n);
            char utf8[2 * APD_MAX_CLASS_NAME];
            size_t u = 0;
            for (size_t i = 0; str && i < n && u + 2 < sizeof utf8; i++) {
                if (str[i] < 0x80) utf8[u++] = (char)str[i];
                else {
                    utf8[u++] = (char)(0xC0 | (str[i] >> 6));
                    utf8[u++] = (char)(0x80 | (str[i] & 0x3F));
                }
            }
            if (!str || !u) *got = 0;
            else apd__set_class_name(out->class_names[k], utf8, u);
        }
    }
    apd__pickle_free(pk);
    free(buf);
    return s;
}

/* ---- both ----------------------------------------------------------------------------------- */

/* Class names from the meta file next to the data if present and complete, else the
 * published names (with a warning when a meta file was there but unusable). */
static apd_status cifar_names(apd_dataset *out, const cifar_src *src, int cifar100, const apd_import_opts *o,
                              apd_err *err)
{
    const uint32_t ncls = cifar100 ? 100 : 10;
    int ok = 0;
    if (src->meta[0] && src->pickle) {
        APD_TRY(py_names(out, src->meta, cifar100, &ok, err));
        if (!ok) apd__io_warn(o, "%s: no list of %u class names; using the built-in names", src->meta, ncls);
    } else if (src->meta[0]) {
        int got = apd__read_names(src->meta, out->class_names, ncls);
        ok = got == (int)ncls;
        if (!ok && got >= 0)
            apd__io_warn(o, "%s: %d class names instead of %u; using the built-in names", src->meta, got, ncls);
    }
    if (!ok)
        for (uint32_t j = 0; j < ncls; j++)
            snprintf(out->class_names[j], APD_MAX_CLASS_NAME, "%s", cifar100 ? cifar100_names[j] : cifar10_names[j]);
    snprintf(out->name, sizeof out->name, "%s", cifar100 ? "cifar100" : "cifar10");
    snprintf(out->split, sizeof out->split, "%s", src->split);
    return apd__check_unique_names(out->class_names, ncls, src->meta[0] ? src->meta : src->files[0], err);
}

static apd_status alloc_out(apd_dataset *out, uint64_t total, int cifar100, const char *path, apd_err *err)
{
    apd_status s = apd_dataset_alloc(out, total, 3, 32, 32, cifar100 ? 100 : 10);
    if (s != APD_OK) return apd__err_set(err, s, "%s: cannot allocate %llu images", path, (unsigned long long)total);
    out->source_ids = malloc(sizeof(uint64_t) * (total ? total : 1));
    if (!out->source_ids) {
        apd_dataset_free(out);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", path);
    }
    return APD_OK;
}

/* Python batches: each is parsed whole (its data array is one string in the pickle); all are
 * parsed before anything is copied, so a bad batch fails before the allocation. */
static apd_status import_python(apd_dataset *out, const char *path, const cifar_src *src, int cifar100,
                                const apd_import_opts *o, apd_err *err)
{
    uint64_t total = 0, gi = 0;
    py_batch b[CIFAR_MAX_FILES];
    memset(b, 0, sizeof b);
    apd_status s = APD_OK;
    for (uint32_t i = 0; i < src->nf && s == APD_OK; i++)
        if ((s = py_load(&b[i], src->files[i], cifar100, err)) == APD_OK) total += b[i].rows;
    if (s == APD_OK && !total) s = apd__err_set(err, APD_EEMPTY, "%s: no records", src->files[0]);
    if (s == APD_OK && o && o->limit && o->limit < total) total = o->limit;
    if (s == APD_OK) s = alloc_out(out, total, cifar100, path, err);
    for (uint32_t i = 0; i < src->nf && gi < total && s == APD_OK; i++)
        if ((s = py_copy(out, &b[i], src->files[i], cifar100, total, &gi, err)) != APD_OK) apd_dataset_free(out);
    for (uint32_t i = 0; i < src->nf; i++) py_free(&b[i]);
    return s;
}

static apd_status import_binary(apd_dataset *out, const char *path, const cifar_src *src, int cifar100,
                                const apd_import_opts *o, apd_err *err)
{
    uint64_t counts[CIFAR_MAX_FILES], total = 0, gi = 0;
    APD_TRY(bin_counts(src, cifar100, counts, err));
    for (uint32_t i = 0; i < src->nf; i++) total += counts[i];
    if (!total) return apd__err_set(err, APD_EEMPTY, "%s: no records", src->files[0]);
    if (o && o->limit && o->limit < total) total = o->limit;
    APD_TRY(alloc_out(out, total, cifar100, path, err));
    apd_status s = APD_OK;
    const uint32_t rs = (cifar100 ? 2u : 1u) + 3072u;
    for (uint32_t i = 0; i < src->nf && gi < total && s == APD_OK; i++)
        s = bin_read(out, src->files[i], counts[i], rs, cifar100, total, &gi, err);
    if (s != APD_OK) apd_dataset_free(out);
    return s;
}

apd_status apd__import_cifar(apd_dataset *out, const char *path, int cifar100, const char *split,
                             const apd_import_opts *o, apd_err *err)
{
    cifar_src src;
    APD_TRY(cifar_files(path, cifar100, split, &src, err));
    APD_TRY(src.pickle ? import_python(out, path, &src, cifar100, o, err) : import_binary(out, path, &src, cifar100, o, err));
    apd_status s = cifar_names(out, &src, cifar100, o, err);
    if (s != APD_OK) apd_dataset_free(out);
    return s;
}
