/* bench/eval/bench_eval.c: wall time of the evaluation protocol (apd_eval_train_test, as
 * apd-eval runs it) against the same protocol in PyTorch (eval_torch.py), in the same run,
 * on the same data: IPC random real images (default 10/class = 100 images) of a dataset,
 * tested on its test split. Prints both times, accuracies and the speed ratio.
 *
 *   bench_eval [--epochs N (1000)] [--ipc N (10)] [--threads N (2)] [--data SPEC]
 *              [--no-torch] [--seed S]
 * SPEC default: cifar10:<APD_SHARED_DATA>/cifar10-dev. PyTorch runs with torch.set_num_threads
 * equal to --threads. Not a test: timings on a shared machine are noisy.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "apd/dataset.h"
#include "apd/io.h"
#include "apd/nn.h"
#include "apd/train.h"
#include "common/internal.h"

static double cpu_seconds(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + (double)r.ru_stime.tv_sec +
           1e-6 * (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

int main(int argc, char **argv)
{
    uint32_t epochs = 1000, ipc = 10, threads = 2;
    uint64_t seed = 0;
    int torch = 1;
    char spec[1024];
    snprintf(spec, sizeof spec, "cifar10:%s/cifar10-dev", APD_SHARED_DATA);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ipc") && i + 1 < argc) ipc = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc) snprintf(spec, sizeof spec, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else {
            fprintf(stderr, "usage: bench_eval [--epochs N] [--ipc N] [--threads N] [--data SPEC] "
                            "[--seed S] [--no-torch]\n");
            return 2;
        }
    }
    if (epochs == 0 || ipc == 0 || threads == 0) {
        fprintf(stderr, "bench_eval: epochs, ipc and threads must be >= 1\n");
        return 2;
    }
    apd_dataset full, train, test;
    memset(&full, 0, sizeof full);
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    apd_err err;
    if (apd_import(&full, spec, "train", NULL, &err) != APD_OK ||
        apd_import(&test, spec, "test", NULL, &err) != APD_OK) {
        fprintf(stderr, "bench_eval: %s: %s\n", spec, err.msg);
        return 1;
    }
    float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    apd_dataset_mean_std(&full, mean, std);
    if (apd_eval_random_real(&train, &full, ipc, seed, &err) != APD_OK) {
        fprintf(stderr, "bench_eval: %s\n", err.msg);
        return 1;
    }
    const size_t img = apd_dataset_image_bytes(&train);
    printf("bench_eval: %s, %u images/class = %llu images %ux%ux%u, test %llu images, %u epochs "
           "(%u passes), batch 256, %u threads\n",
           spec, ipc, (unsigned long long)train.n, train.c, train.h, train.w,
           (unsigned long long)test.n, epochs, epochs + 1, threads);
    printf("OpenBLAS kernels: %s\n", apd_nn_blas_core());
    fflush(stdout);

    /* ---- libapd ---- */
    float *xs = malloc(train.n * img * sizeof(float));
    if (!xs) return 1;
    apd_eval_normalize(xs, train.pixels, train.n, train.c, (size_t)train.h * train.w, mean, std);
    apd_pool *pool = NULL;
    if (apd_pool_create(&pool, threads) != APD_OK) return 1;
    apd_eval_opts o;
    apd_eval_opts_default(&o);
    o.epochs = epochs;
    o.seed = seed;
    o.pool = pool;
    apd_eval_result res;
    double t0 = apd__now(), c0 = cpu_seconds();
    apd_status st = apd_eval_train_test(&res, xs, train.labels, train.n, train.c, train.h, train.w,
                                        &test, mean, std, &o, &err);
    double ours = apd__now() - t0, ours_cpu = cpu_seconds() - c0;
    if (st != APD_OK) {
        fprintf(stderr, "bench_eval: %s\n", err.msg);
        return 1;
    }
    printf("libapd   : %8.1f s wall, %8.1f s CPU  (train %.1f s = %.1f ms/pass, test %.2f s)  "
           "accuracy %.2f%%\n", ours, ours_cpu, res.train_seconds,
           1000.0 * res.train_seconds / (epochs + 1), res.test_seconds, 100.0 * res.test_acc);
    fflush(stdout);
    apd_pool_free(pool);
    free(xs);

    /* ---- PyTorch, same data ---- */
    if (torch && access("/usr/bin/python3", X_OK) == 0) {
        char path[] = "/tmp/apd_bench_eval_XXXXXX";
        int fd = mkstemp(path);
        FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        if (!f) {
            fprintf(stderr, "bench_eval: cannot create a temporary file\n");
            return 1;
        }
        uint32_t hdr[8] = {(uint32_t)train.n, (uint32_t)test.n, train.c, train.h, train.w,
                           test.n_classes, epochs, 256};
        float lr = o.lr;
        int ok = write_all(f, "APDEVB01", 8) && write_all(f, hdr, sizeof hdr) &&
                 write_all(f, &lr, 4) && write_all(f, mean, 12) && write_all(f, std, 12) &&
                 write_all(f, &seed, 8) && write_all(f, train.pixels, train.n * img) &&
                 write_all(f, train.labels, train.n * 4) && write_all(f, test.pixels, test.n * img) &&
                 write_all(f, test.labels, test.n * 4);
        if (fclose(f) != 0 || !ok) {
            fprintf(stderr, "bench_eval: cannot write %s\n", path);
            unlink(path);
            return 1;
        }
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%u /usr/bin/python3 %s/bench/eval/eval_torch.py %s %u",
                 threads, APD_SOURCE_DIR, path, threads);
        FILE *p = popen(cmd, "r");
        double acc = -1, secs = -1, cpu = -1;
        char line[512];
        while (p && fgets(line, sizeof line, p))
            if (strncmp(line, "RESULT", 6) == 0) sscanf(line, "RESULT acc=%lf seconds=%lf cpu=%lf", &acc, &secs, &cpu);
        if (p) pclose(p);
        unlink(path);
        if (secs > 0) {
            printf("PyTorch  : %8.1f s wall, %8.1f s CPU  (%.1f ms/pass)  accuracy %.2f%%\n", secs,
                   cpu, 1000.0 * secs / (epochs + 1), 100.0 * acc);
            printf("ratio    : libapd is %.2fx PyTorch's speed in wall time, %.2fx in CPU time "
                   "(target >= 2x)\n", secs / ours, cpu > 0 ? cpu / ours_cpu : 0.0);
        } else {
            printf("PyTorch  : not available (torch import failed?)\n");
        }
    }
    apd_dataset_free(&full);
    apd_dataset_free(&train);
    apd_dataset_free(&test);
    return 0;
}
