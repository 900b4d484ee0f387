/* bench_distill: one DM iteration and one DM + AutoPalette iteration, ours vs PyTorch.
 *
 *   bench_distill [--threads 2] [--iters 3] [--ipc 40] [--batch-real 256] [--k 64] [--no-torch]
 *
 * Setting: 32x32x3, 10 classes, batch-real 256, 40 synthetic images per class,
 * K = 64 (AutoPalette: palette network, Lm + Lb + 3 La on 64 images, as published, no
 * collapse remedy). Each measurement runs in its own process (this binary re-executed with
 * --child MODE, and bench/distill/bench_distill_torch.py under /usr/bin/python3 with the
 * same thread count), so peak memory is per mode. Reported: seconds for the first iteration
 * and the mean of the following ones, peak RSS and RSS growth over the data, and the ratio
 * torch / ours. A benchmark, not a test: prints figures, no pass/fail. Timings on this
 * shared machine vary by up to 40% between runs; the ratio is measured in the same run.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "apd/distill.h"
#include "apd/nn.h"
#include "common/rng.h"
#include "distill/distill_internal.h"

static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = atof(line + 6) / 1024.0;
    if (f) fclose(f);
    return v;
}

typedef struct res_t {
    double first, rest, peak, growth;
} res_t;

static int child(const char *mode, int threads, int iters, int ipc, int batch_real, int k)
{
    apd_dataset ds;
    memset(&ds, 0, sizeof ds);
    uint32_t per = (uint32_t)(batch_real > ipc ? batch_real : ipc) + 44;
    if (apd_dataset_alloc(&ds, (uint64_t)per * 10, 3, 32, 32, 10) != APD_OK) return 1;
    apd__rng r;
    apd__rng_seed(&r, 1, 0);
    for (uint64_t i = 0; i < ds.n; i++) ds.labels[i] = (uint32_t)(i % 10);
    for (uint64_t i = 0; i < ds.n * 3072; i++) ds.pixels[i] = (uint8_t)apd__rng_below(&r, 256);
    apd_distill_opts o;
    apd_distill_opts_default(&o);
    o.method = strcmp(mode, "dm") ? APD_DISTILL_AUTOPALETTE : APD_DISTILL_DM;
    o.init = APD_INIT_RANDOM;
    o.init_set = 1;
    o.images_per_class = (uint32_t)ipc;
    o.colors = (uint32_t)k;
    o.batch_real = (uint32_t)batch_real;
    o.remedy = 0;
    o.threads = (uint32_t)threads;
    double base = rss_mb();
    apd_distill_result res;
    apd_err err;
    double first = 0, rest = 0;
    apd_status s = apd__distill_run_bench(&ds, &o, &res, &err, (uint32_t)iters, &first, &rest);
    if (s != APD_OK) {
        fprintf(stderr, "bench_distill: %s\n", err.msg);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double peak = ru.ru_maxrss / 1024.0;
    printf("ours iter_first %.6f\nours iter_rest %.6f\nours peak_rss_mb %.1f\nours growth_mb %.1f\n", first, rest,
           peak, peak - base);
    apd_distill_result_free(&res);
    apd_dataset_free(&ds);
    return 0;
}

static int run(const char *cmd, const char *who, res_t *out)
{
    memset(out, 0, sizeof *out);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[256], w[32], what[64];
    double v;
    int got = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "%31s %63s %lf", w, what, &v) == 3 && !strcmp(w, who)) {
            got++;
            if (!strcmp(what, "iter_first")) out->first = v;
            else if (!strcmp(what, "iter_rest")) out->rest = v;
            else if (!strcmp(what, "peak_rss_mb")) out->peak = v;
            else if (!strcmp(what, "growth_mb")) out->growth = v;
        }
    int rc = pclose(p);
    return (rc == 0 && got >= 4) ? 0 : -1;
}

int main(int argc, char **argv)
{
    int threads = 2, iters = 3, ipc = 40, batch_real = 256, k = 64, torch = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--child") && i + 1 < argc) {
            const char *mode = argv[++i];
            for (int j = i + 1; j + 1 < argc; j += 2) {
                if (!strcmp(argv[j], "--threads")) threads = atoi(argv[j + 1]);
                else if (!strcmp(argv[j], "--iters")) iters = atoi(argv[j + 1]);
                else if (!strcmp(argv[j], "--ipc")) ipc = atoi(argv[j + 1]);
                else if (!strcmp(argv[j], "--batch-real")) batch_real = atoi(argv[j + 1]);
                else if (!strcmp(argv[j], "--k")) k = atoi(argv[j + 1]);
            }
            return child(mode, threads, iters, ipc, batch_real, k);
        }
        if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--iters")) iters = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--ipc")) ipc = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch-real")) batch_real = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--k")) k = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--threads N] [--iters N] [--ipc N] [--batch-real N] [--k K] [--no-torch]\n",
                    argv[0]);
            return 2;
        }
    }
    if (iters < 2) iters = 2;
    printf("bench_distill: 32x32x3, 10 classes, batch-real %d, %d synthetic images/class, K %d, %d threads, "
           "%d iterations per mode (first reported separately); OpenBLAS core %s\n",
           batch_real, ipc, k, threads, iters, apd_nn_blas_core());
    const char *modes[2] = {"dm", "autopalette"};
    res_t ours[2], th[2];
    int have_t[2] = {0, 0};
    char cmd[4096];
    for (int m = 0; m < 2; m++) {
        snprintf(cmd, sizeof cmd, "/proc/%d/exe --child %s --threads %d --iters %d --ipc %d --batch-real %d --k %d",
                 (int)getpid(), modes[m], threads, iters, ipc, batch_real, k);
        if (run(cmd, "ours", &ours[m]) != 0) {
            fprintf(stderr, "bench_distill: our %s run failed\n", modes[m]);
            return 1;
        }
        if (torch) {
            snprintf(cmd, sizeof cmd,
                     "OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 %s/bench/distill/bench_distill_torch.py %s %d %d %d %d %d "
                     "10 %d 2>/dev/null",
                     APD_SOURCE_DIR, modes[m], threads, iters, ipc, batch_real, k,
                     (batch_real > ipc ? batch_real : ipc) + 44);
            have_t[m] = run(cmd, "torch", &th[m]) == 0;
        }
    }
    printf("\n%-12s %14s %14s %8s %12s %12s %14s %14s\n", "iteration", "ours s/iter", "torch s/iter", "ratio",
           "ours peak MB", "torch peak MB", "ours growth MB", "torch growth MB");
    for (int m = 0; m < 2; m++) {
        if (have_t[m])
            printf("%-12s %14.3f %14.3f %7.2fx %12.1f %12.1f %14.1f %14.1f\n", modes[m], ours[m].rest, th[m].rest,
                   th[m].rest / ours[m].rest, ours[m].peak, th[m].peak, ours[m].growth, th[m].growth);
        else
            printf("%-12s %14.3f %14s %8s %12.1f %12s %14.1f %14s\n", modes[m], ours[m].rest, "n/a", "n/a",
                   ours[m].peak, "n/a", ours[m].growth, "n/a");
    }
    printf("(first iterations: ours %.3f / %.3f s, torch %.3f / %.3f s)\n", ours[0].first, ours[1].first,
           have_t[0] ? th[0].first : 0.0, have_t[1] ? th[1].first : 0.0);
    return 0;
}
