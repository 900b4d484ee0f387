/* bench_nn.c: the NN engine against PyTorch 1.13 and against sgemm, in one run.
 *
 *   bench_nn [--batch 256] [--threads 2] [--reps 3] [--rounds 2] [--no-torch]
 *
 * For 32x32x3 and 28x28x1 ConvNetD3 (10 classes) at the batch size: forward-only images/s
 * and forward + backward (input and weight gradients) images/s, ours and PyTorch's
 * (bench/nn/bench_torch.py run by /usr/bin/python3 with the same thread count), alternating
 * rounds because this machine's speed drifts; best of reps per round, best over rounds.
 * Also images per CPU-second (user + system time), which other load on a shared machine
 * disturbs less. Then GFLOP/s of each conv layer's forward inside the network (timed on
 * pool thread 0) against a square single-threaded sgemm in the same run, and memory.
 * Prints the ratios. A benchmark, not a test: no pass/fail.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "apd/nn.h"
#include "common/internal.h"
#include "common/rng.h"
#include "nn/nn_internal.h"

static int g_batch = 256, g_threads = 2, g_reps = 3, g_rounds = 2, g_torch = 1;

typedef struct result {
    double fwd, fwdbwd, tfwd, tfwdbwd, trss;      /* wall-clock images/s (best) */
    double cfwd, cfwdbwd, ctfwd, ctfwdbwd;        /* images per CPU-second (best) */
    double conv_gf[8];                            /* forward conv GFLOP/s per layer, thread 0 */
} result;

/* One table row: ours, torch (or n/a) and the ratio. */
static void row(const char *input, const char *pass, double ours_v, double torch_v)
{
    if (torch_v > 0)
        printf("%-8s %-10s %12.1f %12.1f %7.2fx\n", input, pass, ours_v, torch_v, ours_v / torch_v);
    else
        printf("%-8s %-10s %12.1f %12s %8s\n", input, pass, ours_v, "n/a", "n/a");
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static float *randbuf(size_t n, uint64_t seed)
{
    float *p = malloc(n * sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    apd__rng r;
    apd__rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) p[i] = apd__rng_normal(&r);
    return p;
}

static void ours(apd_pool *pool, uint32_t ch, uint32_t h, result *res, size_t *mem)
{
    apd_convnet_opts cfg;
    apd_convnet_opts_default(&cfg, ch, h, h, 10);
    cfg.max_batch = (uint32_t)g_batch;
    cfg.pool = pool;
    apd_convnet *net;
    if (apd_convnet_create(&net, &cfg) != APD_OK) { fprintf(stderr, "create failed\n"); exit(1); }
    apd_convnet_init(net, 1, 0);
    *mem = apd_convnet_memory_bytes(net);
    size_t n = (size_t)g_batch, nx = n * ch * h * h;
    float *x = randbuf(nx, 2), *dx = calloc(nx, 4), *logits = calloc(n * 10, 4), *probs = calloc(n * 10, 4),
          *dl = calloc(n * 10, 4);
    uint32_t *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = (uint32_t)(i % 10);
    double best_f = 0, best_fb = 0, cbest_f = 0, cbest_fb = 0;
    apd_convnet_forward(net, logits, NULL, x, n); /* warm-up */
    for (int r = 0; r < g_reps; r++) {
        apd__convnet_prof(net, NULL, NULL, NULL, 1);
        double t = apd__now(), c = cpu_seconds();
        apd_convnet_forward(net, logits, NULL, x, n);
        double dt = apd__now() - t, dc = cpu_seconds() - c;
        if (n / dt > best_f) best_f = n / dt;
        if (n / dc > cbest_f) cbest_f = n / dc;
        double secs[8];
        size_t imgs, fl[8];
        apd__convnet_prof(net, secs, &imgs, fl, 1);
        for (int l = 0; l < 3; l++) {
            double gf = (double)fl[l] * (double)imgs / secs[l] / 1e9;
            if (gf > res->conv_gf[l]) res->conv_gf[l] = gf;
        }
    }
    for (int r = 0; r < g_reps + 1; r++) {
        double t = apd__now(), c = cpu_seconds();
        float loss;
        apd_convnet_forward(net, logits, NULL, x, n);
        apd_xent_forward(&loss, probs, logits, y, n, 10);
        memset(dl, 0, n * 10 * 4);
        apd_xent_backward(dl, probs, y, 1.0f, n, 10);
        apd_convnet_zero_grad(net);
        memset(dx, 0, nx * 4);
        apd_convnet_backward(net, dx, dl, NULL, n, APD_NN_PARAM_GRADS);
        double dt = apd__now() - t, dc = cpu_seconds() - c;
        if (r > 0 && n / dt > best_fb) best_fb = n / dt;
        if (r > 0 && n / dc > cbest_fb) cbest_fb = n / dc;
    }
    if (best_f > res->fwd) res->fwd = best_f;
    if (best_fb > res->fwdbwd) res->fwdbwd = best_fb;
    if (cbest_f > res->cfwd) res->cfwd = cbest_f;
    if (cbest_fb > res->cfwdbwd) res->cfwdbwd = cbest_fb;
    free(x); free(dx); free(logits); free(probs); free(dl); free(y);
    apd_convnet_free(net);
}

static void torch_run(uint32_t c, uint32_t h, result *res)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench/nn/bench_torch.py %u %u %u %d %d %d 2>/dev/null",
             APD_SOURCE_DIR, c, h, h, g_batch, g_threads, g_reps);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char line[256], what[64];
    double v;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "torch %63s %lf", what, &v) == 2) {
            if (!strcmp(what, "fwd") && v > res->tfwd) res->tfwd = v;
            if (!strcmp(what, "fwdbwd") && v > res->tfwdbwd) res->tfwdbwd = v;
            if (!strcmp(what, "fwd_cpu") && v > res->ctfwd) res->ctfwd = v;
            if (!strcmp(what, "fwdbwd_cpu") && v > res->ctfwdbwd) res->ctfwdbwd = v;
            if (!strcmp(what, "step_rss_mb")) res->trss = v;
        }
    pclose(p); /* torch missing: its figures stay 0 and are printed as n/a */
}

/* Square sgemm on T threads: T independent single-threaded GEMMs through the pool (the
 * engine's threading model) - and OpenBLAS's own threading, for reference. */
typedef struct gemm_job {
    float *a, *b, *c;
    int n;
} gemm_job;
static void gemm_task(void *ctx, uint32_t task, uint32_t thread)
{
    gemm_job *g = ctx;
    size_t nn = (size_t)g->n * g->n;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1.0f, g->a + task * nn,
                g->n, g->b + task * nn, g->n, 0.0f, g->c + task * nn, g->n);
}

static double sgemm_gflops(apd_pool *pool, int n, int blas_threaded)
{
    size_t nn = (size_t)n * n, T = (size_t)g_threads;
    gemm_job g = {.n = n};
    g.a = randbuf(nn * T, 6);
    g.b = randbuf(nn * T, 7);
    g.c = malloc(nn * T * 4);
    double best = 1e30;
    for (int r = 0; r < g_reps + 1; r++) {
        double t = apd__now();
        if (blas_threaded) {
            apd_nn_set_blas_threads((uint32_t)g_threads);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, g.a, n, g.b, n, 0.0f,
                        g.c, n);
        } else {
            apd_pool_run(pool, (uint32_t)T, gemm_task, &g);
        }
        double dt = apd__now() - t;
        if (r > 0 && dt < best) best = dt;
    }
    apd_nn_set_blas_threads(1);
    free(g.a); free(g.b); free(g.c);
    return 2.0 * n * (double)n * n * (blas_threaded ? 1 : T) / best / 1e9;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) g_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) g_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) g_rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) g_torch = 0;
        else {
            fprintf(stderr, "usage: %s [--batch N] [--threads N] [--reps N] [--rounds N] [--no-torch]\n", argv[0]);
            return 2;
        }
    }
    if (g_batch < 1 || g_threads < 1 || g_reps < 1 || g_rounds < 1) return 2;
    apd_pool *pool;
    if (apd_pool_create(&pool, (uint32_t)g_threads) != APD_OK) return 1;
    printf("bench_nn: ConvNetD3, batch %d, %d threads, best of %d reps x %d interleaved rounds; "
           "OpenBLAS core %s\n", g_batch, g_threads, g_reps, g_rounds, apd_nn_blas_core());
    struct { uint32_t c, h; const char *name; result r; size_t mem; } cs[2];
    memset(cs, 0, sizeof cs);
    cs[0].c = 3, cs[0].h = 32, cs[0].name = "32x32x3";
    cs[1].c = 1, cs[1].h = 28, cs[1].name = "28x28x1";
    for (int round = 0; round < g_rounds; round++)
        for (int k = 0; k < 2; k++) {
            ours(pool, cs[k].c, cs[k].h, &cs[k].r, &cs[k].mem);
            if (g_torch) torch_run(cs[k].c, cs[k].h, &cs[k].r);
        }
    printf("\nwall clock, best over reps and rounds (images/s):\n");
    printf("%-8s %-10s %12s %12s %8s\n", "input", "pass", "ours", "torch", "ratio");
    for (int k = 0; k < 2; k++) {
        result *r = &cs[k].r;
        row(cs[k].name, "forward", r->fwd, r->tfwd);
        row(cs[k].name, "fwd+bwd", r->fwdbwd, r->tfwdbwd);
    }
    printf("\nCPU time (images per CPU-second, user + system; less sensitive to other load):\n");
    printf("%-8s %-10s %12s %12s %8s\n", "input", "pass", "ours", "torch", "ratio");
    for (int k = 0; k < 2; k++) {
        result *r = &cs[k].r;
        row(cs[k].name, "forward", r->cfwd, r->ctfwd);
        row(cs[k].name, "fwd+bwd", r->cfwdbwd, r->ctfwdbwd);
    }
    double sg_pool = sgemm_gflops(pool, 1024, 0), sg_blas = sgemm_gflops(pool, 1024, 1);
    double sg_thread = sg_pool / g_threads;
    printf("\nsgemm 1024^3: %.1f GFLOP/s (%d single-threaded GEMMs in the pool, %.1f per thread), "
           "%.1f GFLOP/s (one GEMM, %d OpenBLAS threads)\n", sg_pool, g_threads, sg_thread, sg_blas,
           g_threads);
    printf("conv forward inside the network (pool thread 0, best rep) vs single-thread sgemm:\n");
    static const char *lname[3] = {"conv1", "conv2", "conv3"};
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < 3; l++)
            printf("  %-8s %-6s %8.1f GFLOP/s %6.0f%%\n", cs[k].name, lname[l], cs[k].r.conv_gf[l],
                   100.0 * cs[k].r.conv_gf[l] / sg_thread);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\nmemory at batch %d: ours %.1f MB (arenas, 32x32x3), %.1f MB (28x28x1); process peak RSS "
           "%.1f MB; torch step %.1f MB (32x32x3, RSS growth over the run)\n",
           g_batch, cs[0].mem / 1048576.0, cs[1].mem / 1048576.0, ru.ru_maxrss / 1024.0, cs[0].r.trss);
    apd_pool_free(pool);
    return 0;
}
