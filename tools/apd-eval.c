/* apd-eval: evaluate a (distilled, colour-reduced) .apd training set the way the dataset
 * distillation literature does: train fresh ConvNetD3s on the decoded images with DSA
 * augmentation and report their accuracy on a real test set (mean +- std over runs).
 *
 *   apd-eval FILE.apd --test SPEC [options]
 *   apd-eval --random-real N --train SPEC --test SPEC [options]   (random-real baseline)
 *
 * The file is decoded with libapd's reader, exactly what is stored, and normalised with
 * the mean/std recorded in the file; the test set with the same mean/std. Protocol:
 * include/apd/train.h. Exit status: 0 success, 1 runtime error (files, data, training),
 * 2 usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/dataset.h"
#include "apd/format.h"
#include "apd/io.h"
#include "apd/nn.h"
#include "apd/train.h"
#include "common/internal.h"
#include "common/progress.h"

#ifndef APD_VERSION_STRING
#define APD_VERSION_STRING "0"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: apd-eval FILE.apd --test SPEC [options]\n"
            "       apd-eval --random-real N --train SPEC --test SPEC [options]\n"
            "\n"
            "Train fresh ConvNetD3s on the images of FILE.apd (decoded exactly as stored,\n"
            "normalised with the mean/std recorded in the file) with DSA augmentation, and\n"
            "report their accuracy on the real test set SPEC (mean +- std over runs).\n"
            "\n"
            "SPEC: cifar10:PATH, cifar100:PATH, fashion-mnist, mnist:DIR, idx:IMAGES,LABELS,\n"
            "      folder:DIR (see apd/io.h); the test split of SPEC is used for --test.\n"
            "\n"
            "options:\n"
            "  --test SPEC          real test set (required)\n"
            "  --random-real N      instead of a file: N random real images per class of\n"
            "                       --train SPEC (seeded), normalised with its mean/std\n"
            "  --train SPEC         training set for --random-real (train split)\n"
            "  --epochs N           training epochs (default 1000; runs N+1 passes, lr x0.1\n"
            "                       after pass N/2+1 as the reference code)\n"
            "  --runs N             independent networks (default 5)\n"
            "  --lr F               learning rate (default 0.01)\n"
            "  --batch N            training batch (default 256)\n"
            "  --seed S             seed of inits, shuffles, DSA and --random-real (default 0)\n"
            "  --threads N          worker threads (default: online CPUs)\n"
            "  --no-dsa             train without DSA augmentation\n"
            "  --dsa-strategy S     DSA ops (default color_crop_cutout_flip_scale_rotate)\n"
            "  --align-corners      affine DSA ops with align_corners=True (original DSA code;\n"
            "                       default False as VICO/PyTorch)\n"
            "  --width N, --depth N ConvNet width (128) and depth (3): ConvNetD3 by default\n"
            "  --json               print one JSON object on stdout instead of text\n"
            "  -h, --help           this help\n"
            "  -V, --version        print the version\n"
            "\n"
            "exit status: 0 ok, 1 runtime error, 2 usage error\n");
}

static int parse_u32(const char *s, const char *opt, uint32_t lo, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > UINT32_MAX) {
        fprintf(stderr, "apd-eval: %s: bad value '%s' (integer >= %u)\n", opt, s, lo);
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

/* JSON string body with escapes */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* Load every record of an .apd file into ds (uint8 CHW); mean/std from the file. */
static int load_apd(const char *path, apd_dataset *ds, float mean[3], float std[3])
{
    apd_reader *r = NULL;
    apd_err err;
    apd_status st = apd_reader_open(&r, path, NULL, &err);
    if (st != APD_OK) {
        fprintf(stderr, "apd-eval: %s (%s)\n", err.msg, apd_strerror(st));
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

typedef struct prog_ctx {
    apd_progress *p;
    uint32_t run, runs;
} prog_ctx;

static int on_pass(void *user, uint32_t pass, uint32_t passes, float loss, float acc)
{
    prog_ctx *c = user;
    apd_progress_note(c->p, "run %u/%u  loss %.4f  train acc %.1f%%", c->run + 1, c->runs,
                      (double)loss, 100.0 * acc);
    apd_progress_set(c->p, (uint64_t)c->run * passes + pass + 1);
    return 0;
}

int main(int argc, char **argv)
{
    const char *test_spec = NULL, *train_spec = NULL, *file = NULL, *strategy = NULL;
    uint32_t random_real = 0, threads = 0, runs = 5, batch = 256, epochs = 1000;
    uint32_t width = 128, depth = 3;
    float lr = 0.01f;
    uint64_t seed = 0;
    int json = 0, no_dsa = 0, align = 0;
    enum { O_TEST = 256, O_TRAIN, O_RR, O_EPOCHS, O_RUNS, O_LR, O_BATCH, O_SEED, O_THREADS,
           O_JSON, O_NODSA, O_STRAT, O_ALIGN, O_WIDTH, O_DEPTH };
    static const struct option longopts[] = {
        {"test", required_argument, 0, O_TEST},     {"train", required_argument, 0, O_TRAIN},
        {"random-real", required_argument, 0, O_RR}, {"epochs", required_argument, 0, O_EPOCHS},
        {"runs", required_argument, 0, O_RUNS},     {"lr", required_argument, 0, O_LR},
        {"batch", required_argument, 0, O_BATCH},   {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS}, {"json", no_argument, 0, O_JSON},
        {"no-dsa", no_argument, 0, O_NODSA},        {"dsa-strategy", required_argument, 0, O_STRAT},
        {"align-corners", no_argument, 0, O_ALIGN}, {"width", required_argument, 0, O_WIDTH},
        {"depth", required_argument, 0, O_DEPTH}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},           {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        switch (opt) {
        case O_TEST: test_spec = optarg; break;
        case O_TRAIN: train_spec = optarg; break;
        case O_RR: if (!parse_u32(optarg, "--random-real", 1, &random_real)) return 2; break;
        case O_EPOCHS: if (!parse_u32(optarg, "--epochs", 1, &epochs)) return 2; break;
        case O_RUNS: if (!parse_u32(optarg, "--runs", 1, &runs)) return 2; break;
        case O_BATCH: if (!parse_u32(optarg, "--batch", 1, &batch)) return 2; break;
        case O_THREADS: if (!parse_u32(optarg, "--threads", 1, &threads)) return 2; break;
        case O_LR: {
            char *end;
            lr = strtof(optarg, &end);
            if (end == optarg || *end || !(lr > 0) || !isfinite(lr)) {
                fprintf(stderr, "apd-eval: --lr: bad value '%s' (positive number)\n", optarg);
                return 2;
            }
            break;
        }
        case O_SEED: {
            char *end;
            errno = 0;
            seed = strtoull(optarg, &end, 0);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                fprintf(stderr, "apd-eval: --seed: bad value '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case O_WIDTH: if (!parse_u32(optarg, "--width", 1, &width)) return 2; break;
        case O_DEPTH: if (!parse_u32(optarg, "--depth", 1, &depth)) return 2; break;
        case O_JSON: json = 1; break;
        case O_NODSA: no_dsa = 1; break;
        case O_STRAT: strategy = optarg; break;
        case O_ALIGN: align = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("apd-eval (libapd) %s\n", APD_VERSION_STRING); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) file = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "apd-eval: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!test_spec) {
        fprintf(stderr, "apd-eval: --test SPEC is required\n");
        usage(stderr);
        return 2;
    }
    if (random_real && file) {
        fprintf(stderr, "apd-eval: give either FILE.apd or --random-real, not both\n");
        return 2;
    }
    if (!random_real && !file) {
        fprintf(stderr, "apd-eval: no input: give FILE.apd or --random-real N --train SPEC\n");
        usage(stderr);
        return 2;
    }
    if (random_real && !train_spec) {
        fprintf(stderr, "apd-eval: --random-real needs --train SPEC\n");
        return 2;
    }
    if (train_spec && !random_real) {
        fprintf(stderr, "apd-eval: --train is only used with --random-real\n");
        return 2;
    }
    apd_eval_opts o;
    apd_eval_opts_default(&o);
    if (strategy && apd_dsa_strategy_parse(strategy, &o.dsa_cfg.strategy) != APD_OK) {
        fprintf(stderr, "apd-eval: --dsa-strategy: unknown op in '%s' (use color, crop, cutout, "
                        "flip, scale, rotate joined by '_')\n", strategy);
        return 2;
    }
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (uint32_t)(n > 64 ? 64 : n) : 1;
    }

    int rc = 1;
    apd_dataset train, test, full;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    memset(&full, 0, sizeof full);
    float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    float *xs = NULL;
    double *accs = NULL;
    apd_pool *pool = NULL;
    apd_err err;
    apd_status st;
    const char *input_name = file;
    char rr_name[600];

    /* ---- training images ---- */
    if (file) {
        if (!load_apd(file, &train, mean, std)) goto done;
        int known = 1;
        for (uint32_t ch = 0; ch < train.c; ch++)
            if (!(std[ch] > 0)) known = 0;
        if (!known) {
            fprintf(stderr, "apd-eval: warning: %s records no mean/std; using the test set's\n",
                    file);
        }
        st = apd_import(&test, test_spec, "test", NULL, &err);
        if (st != APD_OK) {
            fprintf(stderr, "apd-eval: test set %s: %s (%s)\n", test_spec, err.msg, apd_strerror(st));
            goto done;
        }
        if (!known) apd_dataset_mean_std(&test, mean, std);
    } else {
        st = apd_import(&full, train_spec, "train", NULL, &err);
        if (st != APD_OK) {
            fprintf(stderr, "apd-eval: training set %s: %s (%s)\n", train_spec, err.msg,
                    apd_strerror(st));
            goto done;
        }
        apd_dataset_mean_std(&full, mean, std);
        st = apd_eval_random_real(&train, &full, random_real, seed, &err);
        if (st != APD_OK) {
            fprintf(stderr, "apd-eval: %s (%s)\n", err.msg, apd_strerror(st));
            goto done;
        }
        apd_dataset_free(&full);
        snprintf(rr_name, sizeof rr_name, "random-real %u/class of %.500s", random_real, train_spec);
        input_name = rr_name;
        st = apd_import(&test, test_spec, "test", NULL, &err);
        if (st != APD_OK) {
            fprintf(stderr, "apd-eval: test set %s: %s (%s)\n", test_spec, err.msg, apd_strerror(st));
            goto done;
        }
    }
    if (train.c != test.c || train.h != test.h || train.w != test.w) {
        fprintf(stderr, "apd-eval: %s holds %ux%ux%u images (CxHxW) but test set %s has %ux%ux%u\n",
                input_name, train.c, train.h, train.w, test_spec, test.c, test.h, test.w);
        goto done;
    }
    if (train.n_classes > test.n_classes) {
        fprintf(stderr, "apd-eval: %s has %u classes but test set %s only %u\n", input_name,
                train.n_classes, test_spec, test.n_classes);
        goto done;
    }
    for (uint32_t k = 0; k < train.n_classes && train.class_names && test.class_names; k++) {
        if (train.class_names[k][0] && test.class_names[k][0] && strcmp(train.class_names[k], test.class_names[k])) {
            fprintf(stderr, "apd-eval: %s: class %u is \"%s\" but in test set %s it is \"%s\" (other class sets)\n",
                    input_name, k, train.class_names[k], test_spec, test.class_names[k]);
            goto done;
        }
    }
    for (uint64_t i = 0; i < train.n; i++) {
        if (train.labels[i] >= test.n_classes) {
            fprintf(stderr, "apd-eval: %s: record %llu has label %u, test set %s has %u classes\n",
                    input_name, (unsigned long long)i, train.labels[i], test_spec, test.n_classes);
            goto done;
        }
    }

    const size_t img = apd_dataset_image_bytes(&train);
    xs = malloc((size_t)train.n * img * sizeof(float));
    accs = calloc(runs, sizeof *accs);
    if (!xs || !accs) {
        fprintf(stderr, "apd-eval: out of memory for %llu training images\n",
                (unsigned long long)train.n);
        goto done;
    }
    apd_eval_normalize(xs, train.pixels, train.n, train.c, (size_t)train.h * train.w, mean, std);
    st = apd_pool_create(&pool, threads);
    if (st != APD_OK) {
        fprintf(stderr, "apd-eval: cannot start %u threads: %s\n", threads, apd_strerror(st));
        goto done;
    }

    o.epochs = epochs;
    o.lr = lr;
    o.batch = batch;
    o.seed = seed;
    o.dsa = !no_dsa;
    o.dsa_cfg.align_corners = align;
    o.pool = pool;
    o.width = width;
    o.depth = depth;
    char model[64];
    if (width == 128) snprintf(model, sizeof model, "ConvNetD%u", depth);
    else snprintf(model, sizeof model, "ConvNet-W%uD%u", width, depth);
    if (!json) {
        printf("apd-eval: %s: %llu images %ux%ux%u, %u classes; test %s: %llu images\n",
               input_name, (unsigned long long)train.n, train.c, train.h, train.w,
               train.n_classes, test_spec, (unsigned long long)test.n);
        printf("protocol: %s, %u epochs (%u passes, lr x0.1 after pass %u), lr %g, "
               "batch %u, SGD momentum 0.9, wd 5e-4, %s, %u run%s, seed %llu, %u thread%s\n",
               model, epochs, epochs + 1, epochs / 2 + 1, (double)lr, batch,
               no_dsa ? "no augmentation" : "DSA per-image", runs, runs > 1 ? "s" : "",
               (unsigned long long)seed, threads, threads > 1 ? "s" : "");
        printf("BLAS kernels: %s\n", apd_nn_blas_core());
        printf("normalisation: mean %.4f %.4f %.4f std %.4f %.4f %.4f\n", (double)mean[0],
               (double)(train.c > 1 ? mean[1] : 0), (double)(train.c > 2 ? mean[2] : 0),
               (double)std[0], (double)(train.c > 1 ? std[1] : 0), (double)(train.c > 2 ? std[2] : 0));
        fflush(stdout);
    }
    apd_progress prog;
    apd_progress_start(&prog, "apd-eval", (uint64_t)runs * (epochs + 1));
    prog_ctx pc = {&prog, 0, runs};
    o.on_pass = on_pass;
    o.user = &pc;
    double total_s = 0;
    for (uint32_t r = 0; r < runs; r++) {
        apd_eval_result res;
        o.run = r;
        pc.run = r;
        st = apd_eval_train_test(&res, xs, train.labels, train.n, train.c, train.h, train.w, &test,
                                 mean, std, &o, &err);
        if (st != APD_OK) {
            apd_progress_finish(&prog);
            fprintf(stderr, "apd-eval: %s: run %u: %s (%s)\n", input_name, r + 1, err.msg,
                    apd_strerror(st));
            goto done;
        }
        accs[r] = res.test_acc;
        total_s += res.train_seconds + res.test_seconds;
        if (!json) {
            if (prog.enabled) fprintf(stderr, "\r\033[K");
            printf("run %u/%u: test accuracy %.2f%% (%llu/%llu)  final train loss %.4f  %.1f s\n",
                   r + 1, runs, 100.0 * res.test_acc, (unsigned long long)res.test_correct,
                   (unsigned long long)res.test_n, (double)res.final_loss,
                   res.train_seconds + res.test_seconds);
            fflush(stdout);
        }
    }
    apd_progress_finish(&prog);
    double m = 0, v = 0;
    for (uint32_t r = 0; r < runs; r++) m += accs[r];
    m /= runs;
    for (uint32_t r = 0; r < runs; r++) v += (accs[r] - m) * (accs[r] - m);
    double sd = sqrt(v / runs); /* population std, as np.std in the reference */
    if (json) {
        printf("{\"input\": ");
        json_str(stdout, input_name);
        printf(", \"test\": ");
        json_str(stdout, test_spec);
        printf(", \"n_train\": %llu, \"n_test\": %llu, \"c\": %u, \"h\": %u, \"w\": %u, "
               "\"n_classes\": %u, \"model\": \"%s\", \"epochs\": %u, \"runs\": %u, "
               "\"lr\": %g, \"batch\": %u, \"seed\": %llu, \"threads\": %u, \"dsa\": %s, "
               "\"mean\": [%g, %g, %g], \"std\": [%g, %g, %g], \"accuracies\": [",
               (unsigned long long)train.n, (unsigned long long)test.n, train.c, train.h, train.w,
               test.n_classes, model, epochs, runs, (double)lr, batch, (unsigned long long)seed, threads,
               no_dsa ? "false" : "true", (double)mean[0], (double)mean[1], (double)mean[2],
               (double)std[0], (double)std[1], (double)std[2]);
        for (uint32_t r = 0; r < runs; r++) printf("%s%.6f", r ? ", " : "", accs[r]);
        printf("], \"accuracy_mean\": %.6f, \"accuracy_std\": %.6f, \"seconds\": %.2f}\n", m, sd,
               total_s);
    } else {
        printf("accuracy: %.2f +- %.2f %% over %u run%s (%.1f s)\n", 100.0 * m, 100.0 * sd, runs,
               runs > 1 ? "s" : "", total_s);
    }
    rc = 0;
done:
    apd_pool_free(pool);
    free(xs);
    free(accs);
    apd_dataset_free(&train);
    apd_dataset_free(&test);
    apd_dataset_free(&full);
    return rc;
}
