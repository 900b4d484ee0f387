/* apd-eval: evaluate a (distilled, colour-reduced) .apd training set the way the dataset
 * distillation literature does: train fresh ConvNets (ConvNetD3 at 32 px, D4 at 64, D5 at
 * 128; --depth overrides) on the decoded images with DSA augmentation and report their
 * accuracy on a real test set (mean +- std over runs).
 *
 *   apd-eval FILE.apd --test SPEC [options]
 *   apd-eval --random-real N --train SPEC --test SPEC [options]   (random-real baseline)
 *
 * The file is decoded with libapd's reader, exactly what is stored, and normalised with
 * the mean/std recorded in the file; the test set with the same mean/std. Protocol:
 * include/apd/train.h. Exit status: 0 success, 1 runtime error (files, data, training),
 * 2 usage error.
 *
 * Class identity: a label means the class of that name. The training classes (the file's,
 * or --train's) must be the test set's, in the same order; otherwise the run would report
 * an accuracy of labels that mean different things, so it stops with both lists (exit 1),
 * unless --map-classes-by-name maps each training class to the test class of the same name.
 * Sets without names (none stored, or each class named by its id as IDX gives) are not
 * compared, with a warning.
 *
 * Soft labels: a file with soft labels (format 1.1) trains on them with the soft
 * cross-entropy (records without a vector count as the one-hot vector of their label), and
 * says so; --hard-labels trains on the hard labels instead.
 */
#define _DEFAULT_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/dataset.h"
#include "apd/format.h"
#include "apd/io.h"
#include "apd/nn.h"
#include "apd/train.h"
#include "tool_mpi.h"
#include "tool_util.h"

/* Everything the command line sets. */
typedef struct eval_args {
    const char *test_spec, *train_spec, *file, *strategy, *test_split;
    uint32_t random_real, threads, runs, batch, epochs, width, depth;
    float lr;
    uint64_t seed;
    int json, no_dsa, align, map_by_name, hard_labels;
} eval_args;

/* The data of one evaluation: training images, test set, normalisation. */
typedef struct eval_data {
    apd_dataset train, test;
    float mean[3], std[3];
    const char *input_name; /* the file, or rr_name */
    char rr_name[600];
    float *soft;            /* [train.n, train.n_classes] soft labels of the file, or NULL */
    uint64_t soft_stored;   /* records that store a vector (the others are one-hot) */
} eval_data;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: apd-eval FILE.apd --test SPEC [options]\n"
            "       apd-eval --random-real N --train SPEC --test SPEC [options]\n"
            "\n"
            "Train fresh ConvNets on the images of FILE.apd (decoded exactly as stored,\n"
            "normalised with the mean/std recorded in the file) with DSA augmentation, and\n"
            "report their accuracy on the real test set SPEC (mean +- std over runs).\n"
            "\n"
            "SPEC: cifar10:PATH, cifar100:PATH, fashion-mnist, mnist:DIR, idx:IMAGES,LABELS,\n"
            "      folder:DIR, apd:FILE (an .apd file's records; see apd/io.h); the test split of\n"
            "      SPEC is used for --test.\n"
            "\n"
            "Classes: the training classes (stored in FILE.apd, or of --train) must be the test\n"
            "set's classes with the same names in the same order; a difference is an error that\n"
            "shows both lists (exit 1). Sets without class names are not compared (warning).\n"
            "\n"
            "options:\n"
            "  --test SPEC          real test set (required)\n"
            "  --test-split S       split of --test: test (default), val or train\n"
            "  --hard-labels        train on the hard labels of a file with soft labels\n"
            "                       (default: its soft labels, with the soft cross-entropy)\n"
            "  --map-classes-by-name  match training classes to test classes by name (every\n"
            "                       training class must be in the test set; test classes\n"
            "                       without training images are reported)\n"
            "  --random-real N      instead of a file: N random real images per class of\n"
            "                       --train SPEC (seeded), normalised with its mean/std\n"
            "  --train SPEC         training set for --random-real (train split)\n"
            "  --epochs N           training epochs, 1..1000000 (default 1000; runs N+1 passes, lr x0.1\n"
            "                       after pass N/2+1 as the reference code)\n"
            "  --runs N             independent networks, 1..1000 (default 5); under mpirun -np P\n"
            "                       the P processes train a block of runs each (same results)\n"
            "  --lr F               learning rate (default 0.01)\n"
            "  --batch N            training batch (default 256)\n"
            "  --seed S             seed of inits, shuffles, DSA and --random-real (default 0)\n"
            "  --threads N          worker threads, 1..256 (default: online CPUs)\n"
            "  --no-dsa             train without DSA augmentation (then --dsa-strategy and\n"
            "                       --align-corners do not apply: a usage error)\n"
            "  --dsa-strategy S     DSA ops (default color_crop_cutout_flip_scale_rotate)\n"
            "  --align-corners      affine DSA ops with align_corners=True (original DSA code;\n"
            "                       default False as VICO/PyTorch)\n"
            "  --width N, --depth N ConvNet width 1..65536 (128) and depth 1..8 (by resolution:\n"
            "                       3 at 28/32 px (ConvNetD3), 4 at 64 px, 5 at 128 px)\n"
            "  --json               print one JSON object on stdout instead of text\n"
            "  -h, --help           this help\n"
            "  -V, --version        print the version\n"
            "\n"
            "exit status: 0 ok, 1 runtime error, 2 usage error\n");
}

/* Limits of the numeric options: the library's own (256 threads, depth 8, width 65536) checked
 * here so the message names the option, and sane bounds for the rest (--epochs keeps epochs + 1
 * passes inside uint32; --runs bounds the per-run results array and a run's length). */
#define EVAL_MAX_RUNS 1000u
#define EVAL_MAX_EPOCHS 1000000u
#define EVAL_MAX_THREADS 256u
#define EVAL_MAX_DEPTH 8u
#define EVAL_MAX_WIDTH 65536u

static int parse_u32(const char *s, const char *opt, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || !isdigit((unsigned char)s[0])) {
        fprintf(stderr, "apd-eval: %s: bad value '%s' (an integer %u..%u)\n", opt, s, lo, hi);
        return 0;
    }
    if (errno == ERANGE || v < lo || v > hi) {
        fprintf(stderr, "apd-eval: %s %s is out of range (%u..%u)\n", opt, s, lo, hi);
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

enum { O_TEST = 256, O_TRAIN, O_RR, O_EPOCHS, O_RUNS, O_LR, O_BATCH, O_SEED, O_THREADS,
       O_JSON, O_NODSA, O_STRAT, O_ALIGN, O_WIDTH, O_DEPTH, O_TSPLIT, O_MAP, O_HARD };

/* One option into a; 0 ok, 2 usage error (message printed). */
static int parse_opt(eval_args *a, int opt, const char *arg)
{
    char *end;
    switch (opt) {
    case O_TEST: a->test_spec = arg; return 0;
    case O_TRAIN: a->train_spec = arg; return 0;
    case O_RR: return parse_u32(arg, "--random-real", 1, UINT32_MAX, &a->random_real) ? 0 : 2;
    case O_EPOCHS: return parse_u32(arg, "--epochs", 1, EVAL_MAX_EPOCHS, &a->epochs) ? 0 : 2;
    case O_RUNS: return parse_u32(arg, "--runs", 1, EVAL_MAX_RUNS, &a->runs) ? 0 : 2;
    case O_BATCH: return parse_u32(arg, "--batch", 1, UINT32_MAX, &a->batch) ? 0 : 2;
    case O_THREADS: return parse_u32(arg, "--threads", 1, EVAL_MAX_THREADS, &a->threads) ? 0 : 2;
    case O_WIDTH: return parse_u32(arg, "--width", 1, EVAL_MAX_WIDTH, &a->width) ? 0 : 2;
    case O_DEPTH: return parse_u32(arg, "--depth", 1, EVAL_MAX_DEPTH, &a->depth) ? 0 : 2;
    case O_LR:
        a->lr = strtof(arg, &end);
        if (end == arg || *end || !(a->lr > 0) || !isfinite(a->lr)) {
            fprintf(stderr, "apd-eval: --lr: bad value '%s' (positive number)\n", arg);
            return 2;
        }
        return 0;
    case O_SEED:
        errno = 0;
        a->seed = strtoull(arg, &end, 0);
        if (errno || end == arg || *end || arg[0] == '-') {
            fprintf(stderr, "apd-eval: --seed: bad value '%s'\n", arg);
            return 2;
        }
        return 0;
    case O_JSON: a->json = 1; return 0;
    case O_NODSA: a->no_dsa = 1; return 0;
    case O_STRAT: a->strategy = arg; return 0;
    case O_ALIGN: a->align = 1; return 0;
    case O_MAP: a->map_by_name = 1; return 0;
    case O_HARD: a->hard_labels = 1; return 0;
    case O_TSPLIT:
        if (strcmp(arg, "test") && strcmp(arg, "val") && strcmp(arg, "train")) {
            fprintf(stderr, "apd-eval: --test-split: bad value '%s' (test, val or train)\n", arg);
            return 2;
        }
        a->test_split = arg;
        return 0;
    default: usage(stderr); return 2;
    }
}

/* Which inputs go together. 0 ok, 2 usage error (message printed). */
static int check_inputs(const eval_args *a)
{
    const char *msg = NULL;
    int show_usage = 0;
    if (!a->test_spec) msg = "--test SPEC is required", show_usage = 1;
    else if (a->random_real && a->file) msg = "give either FILE.apd or --random-real, not both";
    else if (!a->random_real && !a->file) msg = "no input: give FILE.apd or --random-real N --train SPEC", show_usage = 1;
    else if (a->random_real && !a->train_spec) msg = "--random-real needs --train SPEC";
    else if (a->train_spec && !a->random_real) msg = "--train is only used with --random-real";
    else if (a->no_dsa && (a->strategy || a->align)) msg = "--dsa-strategy and --align-corners do not apply with --no-dsa";
    if (!msg) return 0;
    fprintf(stderr, "apd-eval: %s\n", msg);
    if (show_usage) usage(stderr);
    return 2;
}

/* The command line into a. Returns 0 to go on, 2 on a usage error, -1 after --help/--version. */
static int parse_args(eval_args *a, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"test", required_argument, 0, O_TEST},     {"train", required_argument, 0, O_TRAIN},
        {"random-real", required_argument, 0, O_RR}, {"epochs", required_argument, 0, O_EPOCHS},
        {"runs", required_argument, 0, O_RUNS},     {"lr", required_argument, 0, O_LR},
        {"batch", required_argument, 0, O_BATCH},   {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS}, {"json", no_argument, 0, O_JSON},
        {"no-dsa", no_argument, 0, O_NODSA},        {"dsa-strategy", required_argument, 0, O_STRAT},
        {"align-corners", no_argument, 0, O_ALIGN}, {"width", required_argument, 0, O_WIDTH},
        {"depth", required_argument, 0, O_DEPTH}, {"help", no_argument, 0, 'h'},
        {"test-split", required_argument, 0, O_TSPLIT}, {"map-classes-by-name", no_argument, 0, O_MAP},
        {"hard-labels", no_argument, 0, O_HARD},
        {"version", no_argument, 0, 'V'},           {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->runs = 5;
    a->batch = 256;
    a->epochs = 1000;
    a->width = 128;
    a->depth = 0; /* by resolution, once the images are loaded */
    a->lr = 0.01f;
    a->test_split = "test";
    int opt;
    while ((opt = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return -1;
        }
        if (opt == 'V') {
            printf("apd-eval (libapd) %s\n", apd_version());
            return -1;
        }
        if (parse_opt(a, opt, optarg)) return 2;
    }
    if (optind < argc) a->file = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "apd-eval: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (check_inputs(a)) return 2;
    if (a->threads == 0) a->threads = tool_cpu_count(64);
    return 0;
}

/* The soft labels of every record of r into *soft ([n, n_classes]); *stored counts the
 * records that store a vector. 0 (message printed) on failure. */
static int load_soft(apd_reader *r, const apd_file_info *fi, float **soft, uint64_t *stored)
{
    *soft = malloc((size_t)fi->n_records * fi->n_classes * sizeof **soft);
    if (!*soft) {
        fprintf(stderr, "apd-eval: out of memory for the soft labels of %llu images\n",
                (unsigned long long)fi->n_records);
        return 0;
    }
    *stored = 0;
    for (uint64_t i = 0; i < fi->n_records; i++) {
        int present = 0;
        apd_status st = apd_reader_soft_label(r, i, *soft + i * fi->n_classes, fi->n_classes, &present);
        if (st != APD_OK) {
            fprintf(stderr, "apd-eval: %s\n", apd_reader_errmsg(r));
            return 0;
        }
        *stored += (uint64_t)present;
    }
    return 1;
}

/* Load every record of an .apd file into ds (uint8 CHW); mean/std from the file; its soft
 * labels into *soft when it has them and want_soft. */
static int load_apd(const char *path, apd_dataset *ds, float mean[3], float std[3], int want_soft, float **soft,
                    uint64_t *soft_stored)
{
    apd_reader *r = NULL;
    apd_err err;
    apd_status st = apd_reader_open(&r, path, NULL, &err);
    if (st != APD_OK) {
        char why[700];
        fprintf(stderr, "apd-eval: %s\n", tool_why(why, sizeof why, err.msg, st));
        return 0;
    }
    apd_file_info fi;
    st = apd_reader_info(r, &fi);
    if (st != APD_OK || fi.n_records == 0) {
        fprintf(stderr, "apd-eval: %s: %s\n", path,
                st != APD_OK ? apd_reader_errmsg(r) : "the file holds no images");
        apd_reader_close(r);
        return 0;
    }
    st = apd_dataset_alloc(ds, fi.n_records, fi.c, fi.h, fi.w, fi.n_classes ? fi.n_classes : 1);
    if (st != APD_OK) {
        fprintf(stderr, "apd-eval: %s: cannot allocate %llu images: %s\n", path,
                (unsigned long long)fi.n_records, apd_strerror(st));
        apd_reader_close(r);
        return 0;
    }
    const size_t img = apd_dataset_image_bytes(ds);
    uint32_t max_label = 0;
    for (uint64_t i = 0; i < fi.n_records; i++) {
        st = apd_reader_decode(r, i, APD_LAYOUT_CHW, ds->pixels + i * img, img, &ds->labels[i]);
        if (st != APD_OK) {
            fprintf(stderr, "apd-eval: %s\n", apd_reader_errmsg(r));
            apd_reader_close(r);
            return 0;
        }
        if (ds->labels[i] > max_label) max_label = ds->labels[i];
    }
    if (fi.n_classes == 0) ds->n_classes = max_label + 1;
    if (want_soft && fi.has_soft_labels && !load_soft(r, &fi, soft, soft_stored)) {
        apd_reader_close(r);
        return 0;
    }
    for (uint32_t k = 0; k < ds->n_classes && ds->class_names; k++) {
        const char *nm = apd_reader_class_name(r, k);
        if (nm) snprintf(ds->class_names[k], APD_MAX_CLASS_NAME, "%s", nm);
    }
    snprintf(ds->name, sizeof ds->name, "%s", fi.dataset_name);
    snprintf(ds->source, sizeof ds->source, "%s", path);
    for (int ch = 0; ch < 3; ch++) {
        mean[ch] = fi.mean[ch];
        std[ch] = fi.std[ch];
    }
    apd_reader_close(r);
    return 1;
}

/* Import split of spec into ds; 0 (message printed) on failure. */
static int import_set(apd_dataset *ds, const char *spec, const char *split, const char *what)
{
    apd_err err;
    apd_status st = apd_import(ds, spec, split, NULL, &err);
    if (st == APD_OK) return 1;
    char why[700];
    fprintf(stderr, "apd-eval: %s %s: %s\n", what, spec, tool_why(why, sizeof why, err.msg, st));
    return 0;
}

/* Training images (the file, or random real ones) and the test set, with the normalisation. */
static int load_inputs(const eval_args *a, eval_data *d)
{
    d->input_name = a->file;
    for (int ch = 0; ch < 3; ch++) {
        d->mean[ch] = 0;
        d->std[ch] = 1;
    }
    if (a->file) {
        if (!load_apd(a->file, &d->train, d->mean, d->std, !a->hard_labels, &d->soft, &d->soft_stored)) return 0;
        int known = 1;
        for (uint32_t ch = 0; ch < d->train.c; ch++) {
            if (!(d->std[ch] > 0)) known = 0;
            /* pixels/255 lie in 0..1: a mean outside it or a std above 0.5 normalises nothing
             * real (a crafted std of 1e300 would turn every image into zeros) */
            if (!(d->mean[ch] >= 0 && d->mean[ch] <= 1) || !(d->std[ch] <= 0.5001f)) {
                fprintf(stderr, "apd-eval: %s: recorded mean %g / std %g of channel %u are not a normalisation of "
                        "pixels in 0..1\n", a->file, (double)d->mean[ch], (double)d->std[ch], ch);
                return 0;
            }
        }
        if (!known) fprintf(stderr, "apd-eval: warning: %s records no mean/std; using the test set's\n", a->file);
        if (!import_set(&d->test, a->test_spec, a->test_split, "test set")) return 0;
        if (!known) apd_dataset_norm(&d->test, d->mean, d->std);
        return 1;
    }
    apd_dataset full;
    memset(&full, 0, sizeof full);
    if (!import_set(&full, a->train_spec, "train", "training set")) return 0;
    apd_dataset_norm(&full, d->mean, d->std);
    apd_err err;
    apd_status st = apd_eval_random_real(&d->train, &full, a->random_real, a->seed, &err);
    apd_dataset_free(&full);
    if (st != APD_OK) {
        char why[700];
        fprintf(stderr, "apd-eval: %s\n", tool_why(why, sizeof why, err.msg, st));
        return 0;
    }
    snprintf(d->rr_name, sizeof d->rr_name, "random-real %u/class of %.500s", a->random_real, a->train_spec);
    d->input_name = d->rr_name;
    return import_set(&d->test, a->test_spec, a->test_split, "test set");
}

/* ---- class identity ------------------------------------------------------------------------ */

/* A set without class names to compare: none stored, or each class named by its own id
 * ("0", "1", ... as the IDX importer names them). */
static int anonymous(const apd_dataset *ds)
{
    if (!ds->class_names) return 1;
    for (uint32_t k = 0; k < ds->n_classes; k++) {
        char id[16];
        snprintf(id, sizeof id, "%u", k);
        if (ds->class_names[k][0] && strcmp(ds->class_names[k], id)) return 0;
    }
    return 1;
}

/* "[a, b, c]" (at most 12 names, then "... N more") into b. */
static void name_list(tool_sb *b, const apd_dataset *ds)
{
    tool_sb_puts(b, "[");
    for (uint32_t k = 0; k < ds->n_classes && k < 12; k++) {
        if (k) tool_sb_puts(b, ", ");
        tool_sb_puts(b, ds->class_names[k]);
    }
    if (ds->n_classes > 12) tool_sb_printf(b, ", ... %u more", ds->n_classes - 12);
    tool_sb_puts(b, "]");
}

static int find_name(const apd_dataset *ds, const char *name)
{
    for (uint32_t k = 0; k < ds->n_classes; k++)
        if (!strcmp(ds->class_names[k], name)) return (int)k;
    return -1;
}

/* --map-classes-by-name: relabel the training set into the test set's class ids. */
static int map_by_name(const eval_args *a, eval_data *d)
{
    apd_dataset *tr = &d->train;
    const apd_dataset *te = &d->test;
    for (uint32_t k = 0; k < te->n_classes; k++)
        if (find_name(te, te->class_names[k]) != (int)k) {
            fprintf(stderr, "apd-eval: test set %s names two classes '%s': cannot map by name\n", a->test_spec,
                    te->class_names[k]);
            return 0;
        }
    int *map = malloc(sizeof(int) * (tr->n_classes ? tr->n_classes : 1));
    char (*names)[APD_MAX_CLASS_NAME] = calloc(te->n_classes, APD_MAX_CLASS_NAME);
    uint8_t *used = calloc(te->n_classes, 1);
    int ok = map && names && used;
    if (!ok) fprintf(stderr, "apd-eval: out of memory\n");
    for (uint32_t k = 0; ok && k < tr->n_classes; k++) {
        map[k] = find_name(te, tr->class_names[k]);
        if (map[k] < 0 || (k && find_name(tr, tr->class_names[k]) != (int)k)) {
            tool_sb b = {0};
            name_list(&b, te);
            fprintf(stderr, "apd-eval: %s: class '%s' %s test set %s %s\n", d->input_name, tr->class_names[k],
                    map[k] < 0 ? "is not in" : "is named twice; cannot map it to", a->test_spec, tool_sb_str(&b));
            tool_sb_free(&b);
            ok = 0;
        }
    }
    for (uint64_t i = 0; ok && i < tr->n; i++) {
        tr->labels[i] = (uint32_t)map[tr->labels[i]];
        used[tr->labels[i]] = 1;
    }
    if (ok && d->soft) { /* soft-label columns follow their classes to the test numbering */
        float *ns = calloc((size_t)tr->n * te->n_classes, sizeof *ns);
        if (!ns) {
            fprintf(stderr, "apd-eval: out of memory\n");
            ok = 0;
        }
        for (uint64_t i = 0; ok && i < tr->n; i++)
            for (uint32_t k = 0; k < tr->n_classes; k++)
                ns[i * te->n_classes + (uint32_t)map[k]] = d->soft[i * tr->n_classes + k];
        if (ok) {
            free(d->soft);
            d->soft = ns;
        }
    }
    if (ok) {
        uint32_t missing = 0, first = 0;
        for (uint32_t k = te->n_classes; k-- > 0;)
            if (!used[k]) missing++, first = k;
        if (missing)
            fprintf(stderr, "apd-eval: warning: %u test class%s without training images (e.g. '%s'): their test images "
                    "count as errors\n", missing, missing == 1 ? "" : "es", te->class_names[first]);
        fprintf(stderr, "apd-eval: the %u classes of %s mapped by name onto the %u of test set %s\n", tr->n_classes,
                d->input_name, te->n_classes, a->test_spec);
        memcpy(names, te->class_names, (size_t)te->n_classes * APD_MAX_CLASS_NAME);
        free(tr->class_names);
        tr->class_names = names;
        tr->n_classes = te->n_classes;
        names = NULL;
    }
    free(map);
    free(names);
    free(used);
    return ok;
}

/* The training classes must be the test set's, by name and order (see the file comment). */
static int check_classes(const eval_args *a, eval_data *d)
{
    apd_dataset *tr = &d->train;
    const apd_dataset *te = &d->test;
    if (anonymous(tr) || anonymous(te)) {
        const char *who = anonymous(tr) ? d->input_name : a->test_spec;
        if (a->map_by_name) {
            fprintf(stderr, "apd-eval: --map-classes-by-name: %s has no class names\n", who);
            return 0;
        }
        fprintf(stderr, "apd-eval: warning: %s has no class names; label k is taken to be the other set's class k\n", who);
        return 1;
    }
    uint32_t k = 0;
    while (k < tr->n_classes && k < te->n_classes && !strcmp(tr->class_names[k], te->class_names[k])) k++;
    if (k == tr->n_classes && k == te->n_classes) return 1;
    if (a->map_by_name) return map_by_name(a, d);
    tool_sb b = {0};
    tool_sb_printf(&b, "apd-eval: the classes differ: %s has %u classes ", d->input_name, tr->n_classes);
    name_list(&b, tr);
    tool_sb_printf(&b, " but test set %s has %u ", a->test_spec, te->n_classes);
    name_list(&b, te);
    if (k < tr->n_classes && k < te->n_classes)
        tool_sb_printf(&b, "; label %u is '%s' in one and '%s' in the other", k, tr->class_names[k], te->class_names[k]);
    else
        tool_sb_printf(&b, "; the first %u agree", k);
    tool_sb_puts(&b, ". Use --map-classes-by-name to match classes by name.");
    fprintf(stderr, "%s\n", b.oom ? "apd-eval: the classes differ" : tool_sb_str(&b));
    tool_sb_free(&b);
    return 0;
}

/* Training and test sets must share geometry and classes. */
static int check_compatible(const eval_args *a, const eval_data *d)
{
    const apd_dataset *tr = &d->train, *te = &d->test;
    if (tr->c != te->c || tr->h != te->h || tr->w != te->w) {
        fprintf(stderr, "apd-eval: %s holds %ux%ux%u images (CxHxW) but test set %s has %ux%ux%u\n",
                d->input_name, tr->c, tr->h, tr->w, a->test_spec, te->c, te->h, te->w);
        return 0;
    }
    if (tr->n_classes > te->n_classes) {
        fprintf(stderr, "apd-eval: %s has %u classes but test set %s only %u\n", d->input_name, tr->n_classes,
                a->test_spec, te->n_classes);
        return 0;
    }
    for (uint32_t k = 0; k < tr->n_classes && tr->class_names && te->class_names; k++) {
        if (tr->class_names[k][0] && te->class_names[k][0] && strcmp(tr->class_names[k], te->class_names[k])) {
            fprintf(stderr, "apd-eval: %s: class %u is \"%s\" but in test set %s it is \"%s\" (other class sets)\n",
                    d->input_name, k, tr->class_names[k], a->test_spec, te->class_names[k]);
            return 0;
        }
    }
    for (uint64_t i = 0; i < tr->n; i++) {
        if (tr->labels[i] >= te->n_classes) {
            fprintf(stderr, "apd-eval: %s: record %llu has label %u, test set %s has %u classes\n", d->input_name,
                    (unsigned long long)i, tr->labels[i], a->test_spec, te->n_classes);
            return 0;
        }
    }
    return 1;
}

/* Soft labels as wide as the test set's classes (a file with fewer classes than the test
 * set gets 0 for the others). 0 (message printed) on failure. */
static int widen_soft(eval_data *d)
{
    const uint32_t kf = d->train.n_classes, kt = d->test.n_classes;
    if (!d->soft || kf == kt) return 1;
    float *ns = calloc((size_t)d->train.n * kt, sizeof *ns);
    if (!ns) {
        fprintf(stderr, "apd-eval: out of memory\n");
        return 0;
    }
    for (uint64_t i = 0; i < d->train.n; i++) memcpy(ns + i * kt, d->soft + i * kf, kf * sizeof *ns);
    free(d->soft);
    d->soft = ns;
    return 1;
}

static void model_name(const eval_args *a, char *out, size_t cap)
{
    if (a->width == 128) snprintf(out, cap, "ConvNetD%u", a->depth);
    else snprintf(out, cap, "ConvNet-W%uD%u", a->width, a->depth);
}

static void print_header(const eval_args *a, const eval_data *d)
{
    char model[64];
    model_name(a, model, sizeof model);
    const apd_dataset *tr = &d->train;
    printf("apd-eval: %s: %llu images %ux%ux%u, %u classes; test %s: %llu images\n", d->input_name,
           (unsigned long long)tr->n, tr->c, tr->h, tr->w, tr->n_classes, a->test_spec,
           (unsigned long long)d->test.n);
    printf("protocol: %s, %u epochs (%u passes, lr x0.1 after pass %u), lr %g, batch %u, SGD momentum 0.9, "
           "wd 5e-4, %s, %u run%s, seed %llu, %u thread%s\n",
           model, a->epochs, a->epochs + 1, a->epochs / 2 + 1, (double)a->lr, a->batch,
           a->no_dsa ? "no augmentation" : "DSA per-image", a->runs, a->runs > 1 ? "s" : "",
           (unsigned long long)a->seed, a->threads, a->threads > 1 ? "s" : "");
    printf("BLAS kernels: %s\n", apd_nn_blas_core());
    printf("normalisation: mean %.4f %.4f %.4f std %.4f %.4f %.4f\n", (double)d->mean[0],
           (double)(tr->c > 1 ? d->mean[1] : 0), (double)(tr->c > 2 ? d->mean[2] : 0), (double)d->std[0],
           (double)(tr->c > 1 ? d->std[1] : 0), (double)(tr->c > 2 ? d->std[2] : 0));
    if (d->soft)
        printf("labels: soft (format 1.1): %llu of %llu records store a vector, the others are one-hot; "
               "training with soft cross-entropy\n", (unsigned long long)d->soft_stored, (unsigned long long)tr->n);
    else if (a->hard_labels)
        printf("labels: hard (--hard-labels)\n");
    else
        printf("labels: hard; training with cross-entropy\n");
    fflush(stdout);
}

typedef struct prog_ctx {
    tool_progress *p;
    uint32_t run, runs;
} prog_ctx;

static int on_pass(void *user, uint32_t pass, uint32_t passes, float loss, float acc)
{
    prog_ctx *c = user;
    tool_progress_note(c->p, "run %u/%u  loss %.4f  train acc %.1f%%", c->run + 1, c->runs, (double)loss,
                       100.0 * acc);
    tool_progress_set(c->p, (uint64_t)c->run * passes + pass + 1);
    return 0;
}

/* What one run reports (exchanged between the processes of an mpirun). */
typedef struct run_out {
    double acc, loss, seconds;
    uint64_t correct, n;
    int64_t status; /* apd_status of the run; APD_OK when it ran */
    char why[700];  /* the failure's message */
} run_out;

static void run_line(tool_progress *prog, const eval_args *a, uint32_t r, const run_out *ro)
{
    if (!a->json)
        tool_say(prog, stdout, "run %u/%u: test accuracy %.2f%% (%llu/%llu)  final train loss %.4f  %.1f s\n", r + 1,
                 a->runs, 100.0 * ro->acc, (unsigned long long)ro->correct, (unsigned long long)ro->n, ro->loss,
                 ro->seconds);
}

/* Train and test runs [lo, hi) into outs[]; stops at the first failure. One process prints
 * each run's line as it ends (live). */
static void run_block(const eval_args *a, const eval_data *d, const float *xs, apd_pool *pool, uint64_t lo,
                      uint64_t hi, run_out *outs, tool_progress *prog, int live)
{
    apd_eval_opts o;
    apd_eval_opts_default(&o);
    if (a->strategy) apd_dsa_strategy_parse(a->strategy, &o.dsa_cfg.strategy); /* checked in main */
    o.epochs = a->epochs;
    o.lr = a->lr;
    o.batch = a->batch;
    o.seed = a->seed;
    o.dsa = !a->no_dsa;
    o.dsa_cfg.align_corners = a->align;
    o.pool = pool;
    o.width = a->width;
    o.depth = a->depth;
    o.train_soft = d->soft;
    prog_ctx pc = {prog, 0, a->runs};
    o.on_pass = on_pass;
    o.user = &pc;
    const apd_dataset *tr = &d->train;
    for (uint64_t r = lo; r < hi; r++) {
        apd_eval_result res;
        apd_err err;
        o.run = (uint32_t)r;
        pc.run = (uint32_t)r;
        run_out *ro = &outs[r];
        apd_status st = apd_eval_train_test(&res, xs, tr->labels, tr->n, tr->c, tr->h, tr->w, &d->test, d->mean,
                                            d->std, &o, &err);
        ro->status = st;
        if (st != APD_OK) {
            tool_why(ro->why, sizeof ro->why, err.msg, st);
            for (uint64_t q = r + 1; q < hi; q++) outs[q].status = st; /* not run */
            return;
        }
        ro->acc = res.test_acc;
        ro->loss = res.final_loss;
        ro->seconds = res.train_seconds + res.test_seconds;
        ro->correct = res.test_correct;
        ro->n = res.test_n;
        if (live) run_line(prog, a, (uint32_t)r, ro);
    }
}

/* Train and test a->runs networks; accs[r] gets run r's test accuracy, *seconds the total
 * time. Under mpirun each process trains a block of the runs (run r is the same network
 * wherever it trains: seeded by (seed, r)) and rank 0 reports them all in run order.
 * 0 (message printed) on failure. */
static int run_all(const eval_args *a, const eval_data *d, const float *xs, apd_pool *pool, double *accs,
                   double *seconds)
{
    uint32_t rank = tool_mpi_rank(), size = tool_mpi_size();
    run_out *outs = calloc(a->runs, sizeof *outs);
    uint64_t *off = calloc((size_t)size + 1, sizeof *off);
    if (!outs || !off) {
        fprintf(stderr, "apd-eval: out of memory\n");
        free(outs);
        free(off);
        return 0;
    }
    tool_progress prog;
    tool_progress_init(&prog);
    if (rank != 0) prog.enabled = 0;
    uint64_t lo, hi;
    tool_mpi_block(a->runs, rank, size, &lo, &hi);
    tool_progress_start(&prog, "apd-eval", (uint64_t)a->runs * (a->epochs + 1));
    run_block(a, d, xs, pool, lo, hi, outs, &prog, size == 1);
    for (uint32_t q = 0; q < size; q++) {
        uint64_t qlo, qhi;
        tool_mpi_block(a->runs, q, size, &qlo, &qhi);
        off[q] = qlo * sizeof *outs;
        off[q + 1] = qhi * sizeof *outs;
    }
    int ok = tool_mpi_exchange(NULL, outs, off) == 0;
    if (!ok) fprintf(stderr, "apd-eval: exchanging the runs' results between the processes failed\n");
    *seconds = 0;
    for (uint32_t r = 0; r < a->runs && ok; r++) {
        if (outs[r].status != APD_OK) {
            tool_progress_stop(&prog);
            outs[r].why[sizeof outs[r].why - 1] = 0;
            if (rank == 0) fprintf(stderr, "apd-eval: %s: run %u: %s\n", d->input_name, r + 1, outs[r].why);
            ok = 0;
            break;
        }
        accs[r] = outs[r].acc;
        *seconds += outs[r].seconds;
        if (size > 1 && rank == 0) run_line(&prog, a, r, &outs[r]);
    }
    if (ok) tool_progress_finish(&prog);
    free(outs);
    free(off);
    return ok;
}

static void report(const eval_args *a, const eval_data *d, const double *accs, double seconds)
{
    double m = 0, v = 0;
    for (uint32_t r = 0; r < a->runs; r++) m += accs[r];
    m /= a->runs;
    for (uint32_t r = 0; r < a->runs; r++) v += (accs[r] - m) * (accs[r] - m);
    double sd = sqrt(v / a->runs); /* population std, as np.std in the reference */
    if (!a->json) {
        printf("accuracy: %.2f +- %.2f %% over %u run%s (%.1f s)\n", 100.0 * m, 100.0 * sd, a->runs,
               a->runs > 1 ? "s" : "", seconds);
        return;
    }
    char model[64];
    model_name(a, model, sizeof model);
    const apd_dataset *tr = &d->train;
    printf("{\"input\": ");
    tool_json_fputs(stdout, d->input_name);
    printf(", \"test\": ");
    tool_json_fputs(stdout, a->test_spec);
    printf(", \"n_train\": %llu, \"n_test\": %llu, \"c\": %u, \"h\": %u, \"w\": %u, \"n_classes\": %u, "
           "\"model\": \"%s\", \"depth\": %u, \"epochs\": %u, \"runs\": %u, \"lr\": %g, \"batch\": %u, \"seed\": %llu, "
           "\"threads\": %u, \"dsa\": %s, \"labels\": \"%s\", \"mean\": [%g, %g, %g], \"std\": [%g, %g, %g], \"accuracies\": [",
           (unsigned long long)tr->n, (unsigned long long)d->test.n, tr->c, tr->h, tr->w, d->test.n_classes,
           model, a->depth, a->epochs, a->runs, (double)a->lr, a->batch, (unsigned long long)a->seed, a->threads,
           a->no_dsa ? "false" : "true", d->soft ? "soft" : "hard", (double)d->mean[0], (double)d->mean[1], (double)d->mean[2],
           (double)d->std[0], (double)d->std[1], (double)d->std[2]);
    for (uint32_t r = 0; r < a->runs; r++) printf("%s%.6f", r ? ", " : "", accs[r]);
    printf("], \"accuracy_mean\": %.6f, \"accuracy_std\": %.6f, \"seconds\": %.2f}\n", m, sd, seconds);
}

/* Normalise, start the threads, train and report. 0 (message printed) on failure. */
static int evaluate(const eval_args *a, const eval_data *d)
{
    const apd_dataset *tr = &d->train;
    const size_t img = apd_dataset_image_bytes(tr);
    float *xs = malloc((size_t)tr->n * img * sizeof(float));
    double *accs = calloc(a->runs, sizeof *accs), seconds = 0;
    apd_pool *pool = NULL;
    int ok = 0;
    if (!xs || !accs) {
        fprintf(stderr, "apd-eval: out of memory for %llu training images\n", (unsigned long long)tr->n);
        goto out;
    }
    apd_eval_normalize(xs, tr->pixels, tr->n, tr->c, (size_t)tr->h * tr->w, d->mean, d->std);
    apd_status st = apd_pool_create(&pool, a->threads);
    if (st != APD_OK) {
        fprintf(stderr, "apd-eval: cannot start %u threads: %s\n", a->threads, apd_strerror(st));
        goto out;
    }
    int root = tool_mpi_rank() == 0;
    if (!a->json && root) print_header(a, d);
    if (!run_all(a, d, xs, pool, accs, &seconds)) goto out;
    if (root) report(a, d, accs, seconds);
    ok = 1;
out:
    apd_pool_free(pool);
    free(xs);
    free(accs);
    return ok;
}

static int eval_main(int argc, char **argv)
{
    eval_args a;
    int rc = parse_args(&a, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    uint32_t mask;
    if (a.strategy && apd_dsa_strategy_parse(a.strategy, &mask) != APD_OK) {
        fprintf(stderr, "apd-eval: --dsa-strategy: unknown op in '%s' (use color, crop, cutout, "
                        "flip, scale, rotate joined by '_')\n", a.strategy);
        return 2;
    }
    eval_data d;
    memset(&d, 0, sizeof d);
    rc = load_inputs(&a, &d) && check_classes(&a, &d) && check_compatible(&a, &d) && widen_soft(&d) ? 0 : 1;
    if (rc == 0 && !a.depth) a.depth = apd_convnet_default_depth(d.train.h, d.train.w);
    if (rc == 0) rc = evaluate(&a, &d) ? 0 : 1;
    apd_dataset_free(&d.train);
    apd_dataset_free(&d.test);
    free(d.soft);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = tool_mpi_init(&argc, &argv, "apd-eval");
    if (rc) return rc;
    return tool_mpi_finish(eval_main(argc, argv));
}
