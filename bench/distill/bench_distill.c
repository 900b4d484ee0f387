/* bench_distill: one DM iteration (and one DM + AutoPalette iteration) against the machine's
 * float32 GEMM limit and against PyTorch, all measured in the same run.
 *
 *   bench_distill [--threads 2] [--iters 3] [--ipc 40] [--batch-real 256] [--k 64]
 *                 [--sizes 32,64,128] [--depth D] [--no-torch] [--no-autopalette]
 *
 * Setting at 32 px: 32x32x3, 10 classes, batch-real 256, 40 synthetic images per class,
 * K = 64 (AutoPalette: palette network, Lm + Lb + 3 La on 64 images, no collapse remedy).
 * At size S the real batch is scaled by (32/S)^2 (same pixels per step, bounded memory) and
 * the synthetic images per class are min(ipc, that batch). The network is the distillation's
 * (apd_convnet_opts_default for S x S: its depth, unless --depth overrides the FLOP count and
 * the PyTorch network; our side always runs the distillation's own network).
 *
 * Reported per size:
 *   - DM with the conv GEMMs in float32 (APD_NN_BF16=0) and DM with the real-image forward in
 *     bf16 (the default where the CPU has AVX512_BF16), PyTorch DM; at the first size also
 *     float32 DM with every GEMM in OpenBLAS (APD_NN_GEMM=openblas, the engine before its own
 *     float32 kernel);
 *   - the FLOPs of one DM iteration: 3x3 conv forward of the real batch and of the synthetic
 *     images, and the input-gradient backward of the synthetic images (the classifier is not
 *     used by DM); DSA, norm, pooling and the pixel update are not counted;
 *   - the float32 limit: the best of several large cblas_sgemm (2048^3) with OpenBLAS on the
 *     same number of threads, measured right before each of our DM runs; the share of it a DM
 *     iteration achieves (FLOPs / time / limit), and for bf16 the speed-up over the time the
 *     float32 limit allows (FLOPs / limit / time).
 * Each measurement runs in its own process (this binary re-executed with --child, and
 * bench/distill/bench_distill_torch.py under /usr/bin/python3 with the same thread count), so
 * peak memory is per mode. A benchmark, not a test: prints figures, no pass/fail. Timings on
 * a shared machine vary by up to 40% between runs; ratios are measured in the same run.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "apd/distill.h"
#include "apd/nn.h"
#include "common/internal.h"
#include "common/rng.h"
#include "distill/distill_internal.h"
#include "nn/nn_internal.h"

static double cpu_now(clockid_t id);

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
    double first, rest, peak, growth, cpu;
} res_t;

typedef struct cfg_t {
    int threads, iters, ipc, batch_real, k, size, depth;
} cfg_t;

static int child(const char *mode, const cfg_t *c)
{
    if (!strncmp(mode, "dm-fp32", 7)) setenv("APD_NN_BF16", "0", 1);
    if (!strcmp(mode, "dm-fp32-openblas")) setenv("APD_NN_GEMM", "openblas", 1);
    apd_dataset ds;
    memset(&ds, 0, sizeof ds);
    uint32_t per = (uint32_t)(c->batch_real > c->ipc ? c->batch_real : c->ipc) + 44;
    size_t img = 3 * (size_t)c->size * c->size;
    if (apd_dataset_alloc(&ds, (uint64_t)per * 10, 3, (uint32_t)c->size, (uint32_t)c->size, 10) != APD_OK) return 1;
    apd__rng r;
    apd__rng_seed(&r, 1, 0);
    for (uint64_t i = 0; i < ds.n; i++) ds.labels[i] = (uint32_t)(i % 10);
    for (uint64_t i = 0; i < ds.n * img; i++) ds.pixels[i] = (uint8_t)apd__rng_below(&r, 256);
    apd_distill_opts o;
    apd_distill_opts_default(&o);
    o.method = strncmp(mode, "dm", 2) ? APD_DISTILL_AUTOPALETTE : APD_DISTILL_DM;
    o.init = APD_INIT_RANDOM;
    o.init_set = 1;
    o.images_per_class = (uint32_t)c->ipc;
    o.colors = (uint32_t)c->k;
    o.batch_real = (uint32_t)c->batch_real;
    o.remedy = 0;
    o.threads = (uint32_t)c->threads;
    double base = rss_mb(), cpu0 = cpu_now(CLOCK_PROCESS_CPUTIME_ID);
    apd_distill_result res;
    apd_err err;
    double first = 0, rest = 0;
    apd_status s = apd__distill_run_bench(&ds, &o, &res, &err, (uint32_t)c->iters, &first, &rest);
    if (s != APD_OK) {
        fprintf(stderr, "bench_distill: %s\n", err.msg);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double peak = ru.ru_maxrss / 1024.0;
    /* CPU seconds of all threads per iteration, set-up and first iteration included */
    double cpu = (cpu_now(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / c->iters;
    printf("ours iter_first %.6f\nours iter_rest %.6f\nours peak_rss_mb %.1f\nours growth_mb %.1f\n"
           "ours cpu_per_iter %.6f\n",
           first, rest, peak, peak - base, cpu);
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
            else if (!strcmp(what, "cpu_per_iter")) out->cpu = v;
        }
    int rc = pclose(p);
    return (rc == 0 && got >= 4) ? 0 : -1;
}

static double cpu_now(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The float32 limit: every pool thread runs one single-threaded cblas_sgemm (n x n x n) on
 * its own matrices at the same time, the way the ConvNet uses OpenBLAS. */
typedef struct lim_job {
    int n;
    float *m[16][3];
    double cpu[16];
} lim_job;

static void lim_task(void *ctx, uint32_t task, uint32_t thread)
{
    (void)thread;
    lim_job *j = ctx;
    int n = j->n;
    double c0 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, j->m[task][0], n, j->m[task][1], n, 0.0f,
                j->m[task][2], n);
    j->cpu[task] = cpu_now(CLOCK_THREAD_CPUTIME_ID) - c0;
}

/* Best of `reps`: *wall = T n^3 x 2 / wall time (GFLOP/s), *percpu = the same per CPU-second
 * of the threads times T (what T cores give when the work gets them). */
static void sgemm_limit(int threads, int n, int reps, double *wall, double *percpu)
{
    lim_job j;
    memset(&j, 0, sizeof j);
    j.n = n;
    *wall = *percpu = 0.0;
    if (threads > 16) threads = 16;
    apd_pool *pool = NULL;
    int ok = apd_pool_create(&pool, (uint32_t)threads) == APD_OK;
    for (int t = 0; ok && t < threads; t++)
        for (int k = 0; k < 3; k++) {
            j.m[t][k] = malloc((size_t)n * n * sizeof(float));
            if (!j.m[t][k]) ok = 0;
            else
                for (size_t i = 0; i < (size_t)n * n; i++) j.m[t][k][i] = (float)(i % 7) * 0.125f - 0.375f;
        }
    double fl = 2.0 * n * (double)n * n * threads;
    for (int r = 0; ok && r < reps + 1; r++) {
        double t0 = apd__now();
        apd_pool_run(pool, (uint32_t)threads, lim_task, &j);
        double dt = apd__now() - t0, cs = 0.0;
        for (int t = 0; t < threads; t++) cs += j.cpu[t];
        if (r == 0) continue; /* the first call warms up pages */
        if (fl / dt / 1e9 > *wall) *wall = fl / dt / 1e9;
        if (fl / cs * threads / 1e9 > *percpu) *percpu = fl / cs * threads / 1e9;
    }
    for (int t = 0; t < 16; t++)
        for (int k = 0; k < 3; k++) free(j.m[t][k]);
    apd_pool_free(pool);
}

/* Single-thread GFLOP/s per CPU-second of sgemm, our fp32 kernel and our bf16 kernel on one
 * conv2-sized GEMM (128 x 256 x 1152), best of 30. */
static void kernel_rates(double *sg, double *own, double *bf)
{
    size_t M = 128, N = 256, K = 1152;
    float *a = malloc(M * K * sizeof(float)), *b = malloc(K * N * sizeof(float)), *c = malloc(M * N * sizeof(float));
    uint16_t *ap = malloc(apd__bf16_a_elems(M, K) * 2), *bp = malloc(apd__bf16_b_elems(K, N) * 2);
    *sg = *bf = *own = 0.0;
    if (a && b && c && ap && bp) {
        for (size_t i = 0; i < M * K; i++) a[i] = (float)(i % 13) * 0.01f;
        for (size_t i = 0; i < K * N; i++) b[i] = (float)(i % 11) * 0.01f;
        apd__bf16_pack_a(ap, a, K, M, K);
        apd__bf16_pack_b(bp, b, N, K, N);
        apd_nn_set_blas_threads(1); /* one thread: the CPU time below is the caller's */
        double bs = 1e30, bb = 1e30, bo = 1e30;
        for (int r = 0; r < 30; r++) {
            double t0 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)K, b,
                        (int)N, 0.0f, c, (int)N);
            double t1 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
            apd__bf16_gemm(c, N, ap, bp, M, N, K);
            double t2 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
            if (apd__gemm_f32_ok()) apd__gemm_f32(c, N, a, K, 1, b, N, M, N, K);
            double t3 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
            if (t1 - t0 < bs) bs = t1 - t0;
            if (t2 - t1 < bb) bb = t2 - t1;
            if (t3 - t2 < bo) bo = t3 - t2;
        }
        *sg = 2.0 * M * N * K / bs / 1e9;
        *bf = apd__bf16_cpu() ? 2.0 * M * N * K / bb / 1e9 : 0.0;
        *own = apd__gemm_f32_ok() ? 2.0 * M * N * K / bo / 1e9 : 0.0;
    }
    free(a), free(b), free(c), free(ap), free(bp);
}

static void cpu_model(char *out, size_t cap)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[16384], name[256] = "unknown";
    int fam = -1, mod = -1, bf = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *v = strchr(line, ':');
        if (!v) continue;
        v += 2;
        v[strcspn(v, "\n")] = 0;
        if (!strncmp(line, "model name", 10)) snprintf(name, sizeof name, "%s", v);
        else if (!strncmp(line, "cpu family", 10) && fam < 0) fam = atoi(v);
        else if (!strncmp(line, "model\t", 6) && mod < 0) mod = atoi(v);
        else if (!strncmp(line, "flags", 5) && strstr(v, "avx512_bf16")) bf = 1;
        if (!strncmp(line, "flags", 5)) break; /* first CPU is enough */
    }
    if (f) fclose(f);
    snprintf(out, cap, "%s (family %d model %d, %s)", name, fam, mod, bf ? "avx512_bf16" : "no avx512_bf16");
}

/* FLOPs of one DM iteration at size S (see the header). */
static double dm_flops(const cfg_t *c, double *real_part)
{
    apd_convnet_opts o;
    apd_convnet_opts_default(&o, 3, (uint32_t)c->size, (uint32_t)c->size, 10);
    if (c->depth > 0) o.depth = (uint32_t)c->depth;
    o.max_batch = 1;
    apd_convnet *net = NULL;
    if (apd_convnet_create(&net, &o) != APD_OK) return 0.0;
    size_t fl[16] = {0};
    apd__convnet_prof(net, NULL, NULL, fl, 0);
    double f = 0;
    for (uint32_t l = 0; l < o.depth; l++) f += (double)fl[l];
    apd_convnet_free(net);
    *real_part = 10.0 * c->batch_real * f;
    return 10.0 * (c->batch_real + 2.0 * c->ipc) * f;
}

static int net_depth(int size, int depth)
{
    if (depth > 0) return depth;
    apd_convnet_opts o;
    apd_convnet_opts_default(&o, 3, (uint32_t)size, (uint32_t)size, 10);
    return (int)o.depth;
}

static int measure(const char *mode, const cfg_t *c, int torch, res_t *ours, res_t *th, int *have_t)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "/proc/%d/exe --child %s --threads %d --iters %d --ipc %d --batch-real %d --k %d --size %d",
             (int)getpid(), mode, c->threads, c->iters, c->ipc, c->batch_real, c->k, c->size);
    if (run(cmd, "ours", ours) != 0) {
        fprintf(stderr, "bench_distill: our %s run at %d px failed\n", mode, c->size);
        return -1;
    }
    if (torch && th) {
        snprintf(cmd, sizeof cmd,
                 "OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 %s/bench/distill/bench_distill_torch.py %s %d %d %d %d "
                 "%d 10 %d %d %d 2>/dev/null",
                 APD_SOURCE_DIR, strncmp(mode, "dm", 2) ? "autopalette" : "dm", c->threads, c->iters, c->ipc,
                 c->batch_real, c->k, (c->batch_real > c->ipc ? c->batch_real : c->ipc) + 44, c->size,
                 net_depth(c->size, c->depth));
        *have_t = run(cmd, "torch", th) == 0;
    }
    return 0;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--threads N] [--iters N] [--ipc N] [--batch-real N] [--k K] [--sizes S,S,..] "
            "[--depth D] [--no-torch] [--no-autopalette]\n",
            argv0);
}

/* One DM row: wall time and GFLOP/s against the wall limit, and per CPU-second against the
 * per-CPU limit (robust to other processes on the cores; the CPU time includes set-up and the
 * first iteration, so that share is a lower bound). 100% of the limit = 1.00x its speed. */
static void print_row(const char *what, const res_t *r, double flops, double lim_wall, double lim_cpu, int T,
                      const res_t *th, int have_t)
{
    double gf = r->rest > 0 ? flops / r->rest / 1e9 : 0.0, gc = r->cpu > 0 ? flops / r->cpu * T / 1e9 : 0.0;
    printf("  %-26s %7.3f s %6.1f GF/s = %5.1f%% of limit | per CPU-s: %6.1f GF/s = %5.1f%% of limit", what, r->rest,
           gf, lim_wall > 0 ? 100.0 * gf / lim_wall : 0.0, gc, lim_cpu > 0 ? 100.0 * gc / lim_cpu : 0.0);
    if (th && have_t) printf(" | torch %.3f s (%.2fx)", th->rest, th->rest / r->rest);
    printf(" | peak %.0f MB\n", r->peak);
}

int main(int argc, char **argv)
{
    cfg_t c = {.threads = 2, .iters = 3, .ipc = 40, .batch_real = 256, .k = 64, .size = 32, .depth = 0};
    int torch = 1, autopal = 1, sizes[8] = {32, 64, 128}, n_sizes = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--child") && i + 1 < argc) {
            const char *mode = argv[++i];
            for (int j = i + 1; j + 1 < argc; j += 2) {
                if (!strcmp(argv[j], "--threads")) c.threads = atoi(argv[j + 1]);
                else if (!strcmp(argv[j], "--iters")) c.iters = atoi(argv[j + 1]);
                else if (!strcmp(argv[j], "--ipc")) c.ipc = atoi(argv[j + 1]);
                else if (!strcmp(argv[j], "--batch-real")) c.batch_real = atoi(argv[j + 1]);
                else if (!strcmp(argv[j], "--k")) c.k = atoi(argv[j + 1]);
                else if (!strcmp(argv[j], "--size")) c.size = atoi(argv[j + 1]);
            }
            return child(mode, &c);
        }
        if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (!strcmp(argv[i], "--no-autopalette")) autopal = 0;
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) c.threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--iters")) c.iters = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--ipc")) c.ipc = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch-real")) c.batch_real = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--k")) c.k = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--depth")) c.depth = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--sizes")) {
            n_sizes = 0;
            for (char *t = strtok(argv[++i], ","); t && n_sizes < 8; t = strtok(NULL, ","))
                if (atoi(t) >= 8) sizes[n_sizes++] = atoi(t);
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    if (c.iters < 2) c.iters = 2;
    if (n_sizes == 0 || c.threads < 1 || c.ipc < 1 || c.batch_real < 1) {
        usage(argv[0]);
        return 2;
    }
    char cpu[512];
    cpu_model(cpu, sizeof cpu);
    double sg1, bf1, own1;
    kernel_rates(&sg1, &own1, &bf1);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("bench_distill: %d threads, %d iterations per mode (first not averaged), 10 classes, K %d\n", c.threads,
           c.iters, c.k);
    printf("CPU: %s\nOpenBLAS core: %s%s%s%s\nour dispatch: %s\n", cpu, apd_nn_blas_core(),
           ct ? " (OPENBLAS_CORETYPE=" : "", ct ? ct : "", ct ? " in the environment)" : "", apd_nn_gemm_kernels());
    printf("1 thread, 128x256x1152 GEMM per CPU-s: cblas_sgemm %.1f GF/s, our fp32 kernel %.1f GF/s, our bf16 kernel "
           "%.1f GF/s (%.2fx sgemm)\n",
           sg1, own1, bf1, sg1 > 0 ? bf1 / sg1 : 0.0);
    for (int si = 0; si < n_sizes; si++) {
        cfg_t s = c;
        s.size = sizes[si];
        s.batch_real = (int)((long)c.batch_real * 32 * 32 / ((long)s.size * s.size));
        if (s.batch_real < 8) s.batch_real = 8;
        if (s.ipc > s.batch_real) s.ipc = s.batch_real;
        double real_fl = 0, fl = dm_flops(&s, &real_fl);
        if (fl <= 0) {
            printf("\n%d px: the network does not fit this size (skipped)\n", s.size);
            continue;
        }
        res_t f32, b16, tdm;
        int have_t = 0;
        double lw1, lc1, lw2, lc2;
        sgemm_limit(s.threads, 2048, 3, &lw1, &lc1);
        if (measure("dm-fp32", &s, 0, &f32, NULL, NULL) != 0) return 1;
        sgemm_limit(s.threads, 2048, 3, &lw2, &lc2);
        if (measure("dm", &s, torch, &b16, &tdm, &have_t) != 0) return 1;
        double lw = lw1 > lw2 ? lw1 : lw2, lc = lc1 > lc2 ? lc1 : lc2;
        printf("\n%d px, depth %d, batch-real %d, %d synthetic/class: DM iteration %.1f GFLOP (real forward %.0f%%)\n"
               "  fp32 limit (%d threads x 1-thread cblas_sgemm 2048^3, best of 3, before each run): wall %.1f GF/s "
               "(%.1f / %.1f), per CPU-s %.1f GF/s (%.1f / %.1f)\n",
               s.size, net_depth(s.size, s.depth), s.batch_real, s.ipc, fl / 1e9, 100.0 * real_fl / fl, s.threads, lw,
               lw1, lw2, lc, lc1, lc2);
        print_row("dm, fp32 (APD_NN_BF16=0)", &f32, fl, lw, lc, s.threads, &tdm, have_t);
        print_row(apd_nn_bf16_enabled() ? "dm, bf16 real forward" : "dm (bf16 unavailable)", &b16, fl, lw, lc,
                  s.threads, &tdm, have_t);
        printf("  bf16 vs fp32 step: %.2fx faster (wall), %.2fx (CPU time)\n", f32.rest / b16.rest,
               b16.cpu > 0 ? f32.cpu / b16.cpu : 0.0);
        if (si == 0 && apd__gemm_f32_ok()) {
            /* the float32 path with every GEMM in OpenBLAS, as before our fp32 kernel */
            res_t ob;
            if (measure("dm-fp32-openblas", &s, 0, &ob, NULL, NULL) != 0) return 1;
            print_row("dm, fp32, OpenBLAS GEMMs", &ob, fl, lw, lc, s.threads, NULL, 0);
        }
        if (autopal && si == 0) {
            res_t ap, tap;
            int have_ap = 0;
            if (measure("autopalette", &s, torch, &ap, &tap, &have_ap) != 0) return 1;
            printf("  %-26s %8.3f s", "autopalette (default)", ap.rest);
            if (have_ap) printf("   torch %.3f s (ratio %.2fx)", tap.rest, tap.rest / ap.rest);
            printf("   peak %.0f MB\n", ap.peak);
        }
    }
    return 0;
}
