/* bench_loader.c: loader throughput on CIFAR-10 (cifar10-dev/train.bin) quantized at K = 64,
 * against baselines measured in the same run.
 *
 *   bench_loader [--data train.bin] [--apd PATH] [--epochs E] [--batch B] [--make-only]
 *
 * Figures (images/s):
 *   - float-write limit: memset of the same batch buffer (B float32 CHW images) as often as
 *     the loader fills it: the most any float32 loader can do per thread;
 *   - loader float32 CHW normalised, 1 and 2 threads, ratio to the limit (target >= 70%);
 *   - loader uint8 HWC and CHW, 1 thread (target >= 1M images/s per core for 32x32, K = 64);
 *   - kernel-only: the float normalisation kernels of common/kernels.h (uint8 -> float, and
 *     palette + 8-bit indices -> float, the loader's use_records path) on decoded images in
 *     cache, against the same limit;
 *   - reader-only: apd_reader_decode per image (chunk look-up, CRC, unpack + look-up): the
 *     format layer's share of the loader's time.
 * Every figure is given per wall second and per CPU-second of the process (all threads):
 * on a shared machine the second is the steadier "per core" figure.
 * Format 1.2 (index-coded): the same images coded (PATH with "-coded" before .apd): float32 CHW and
 * uint8 HWC loader figures and reader-only, against the 1.0 file (target >= 300k images/s
 * per core for float32 batches). The loader decodes through the reader's batch calls
 * (coded records eight at a time); "reader only" is one apd_reader_decode per record.
 * The .apd is written once (median-cut K = 64) next to the binary and reused. Timings on
 * shared machines vary by up to 40% between runs; compare ratios within one run.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "apd/format.h"
#include "apd/loader.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "common/kernels.h"
#include "format/icode.h"
#include "bench_common.h"

/* CPU seconds of the whole process (all threads): the shared 2-core machine is busy with
 * other jobs, so rates per CPU-second ("per core") are steadier than wall-clock rates. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct rate {
    double wall, cpu; /* images per wall second, per CPU second */
} rate;

static rate mkrate(uint64_t n, double w0, double c0)
{
    rate r = {(double)n / (apd__now() - w0), (double)n / (cpu_now() - c0)};
    return r;
}

static int make_apd(const char *bin, const char *out, apd_icode ic)
{
    FILE *f = fopen(bin, "rb");
    if (!f) {
        perror(bin);
        return 1;
    }
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.c = 3; o.h = 32; o.w = 32; o.kind = APD_KIND_PALETTE; o.k = 64; o.n_classes = 10;
    o.force = 1;
    o.index_coding = ic; /* OFF: the format 1.0 file; ON: the format 1.1 coded file */
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2470f, 0.2435f, 0.2616f};
    for (int i = 0; i < 3; i++) { o.mean[i] = mean[i]; o.std[i] = std[i]; }
    o.dataset_name = "cifar10-dev";
    apd_writer *w;
    apd_err err;
    if (apd_writer_create(&w, out, &o, &err) != APD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        fclose(f);
        return 1;
    }
    (void)apd_writer_set_meta(w, "method", "\"quantize\"");
    uint8_t rec[3073], pal[192], idx[1024];
    uint64_t n = 0;
    double t0 = apd__now();
    while (fread(rec, 1, sizeof rec, f) == sizeof rec) {
        uint32_t ku = 0;
        apd_status st = apd_quantize_image(APD_QUANT_MEDIAN_CUT, rec + 1, 3, 32, 32, 64, n, pal,
                                           idx, &ku);
        if (st == APD_OK) st = apd_writer_put_palette(w, pal, ku, idx, rec[0], n);
        if (st != APD_OK) {
            fprintf(stderr, "image %llu: %s\n", (unsigned long long)n, apd_strerror(st));
            fclose(f);
            apd_writer_close(w);
            return 1;
        }
        n++;
    }
    fclose(f);
    if (apd_writer_close(w) != APD_OK) return 1;
    fprintf(stderr, "wrote %s: %llu images quantized at K=64 in %.1f s\n", out,
            (unsigned long long)n, apd__now() - t0);
    return 0;
}

/* images/s of one loader configuration over `epochs` epochs. */
static rate run_loader(const char *path, uint32_t out, uint32_t threads, uint32_t batch,
                         int epochs, double *checksum)
{
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.batch_size = batch; o.output = out; o.threads = threads; o.seed = 1;
    apd_loader *l;
    apd_err err;
    if (apd_loader_open(&l, path, &o, &err) != APD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    size_t bb = apd_loader_batch_bytes(l);
    uint8_t *buf = aligned_alloc(64, (bb + 63) / 64 * 64);
    int64_t *lab = malloc(batch * sizeof *lab);
    size_t n;
    /* warm-up: one epoch (page cache, LMDB map) */
    while (apd_loader_next(l, buf, bb, lab, NULL, &n) == APD_OK && n) {}
    uint64_t imgs = 0;
    double t0 = apd__now(), c0 = cpu_now();
    for (int e = 0; e < epochs; e++)
        for (;;) {
            if (apd_loader_next(l, buf, bb, lab, NULL, &n) != APD_OK) {
                fprintf(stderr, "%s\n", apd_loader_errmsg(l));
                exit(1);
            }
            if (!n) break;
            imgs += n;
            *checksum += buf[n * apd_loader_image_bytes(l) / 2] + (double)lab[0];
        }
    rate r = mkrate(imgs, t0, c0);
    free(buf);
    free(lab);
    apd_loader_close(l);
    return r;
}

/* The float-write limit: memset of the same batch buffer, as many images. */
static rate write_limit(size_t img_bytes, uint32_t batch, uint64_t images, double *checksum)
{
    size_t bb = img_bytes * batch;
    uint8_t *buf = aligned_alloc(64, (bb + 63) / 64 * 64);
    memset(buf, 1, bb);
    uint64_t done = 0;
    double t0 = apd__now(), c0 = cpu_now();
    int v = 0;
    while (done < images) {
        memset(buf, ++v & 0x3f, bb);
        __asm__ volatile("" ::"r"(buf) : "memory");
        done += batch;
    }
    rate r = mkrate(done, t0, c0);
    *checksum += buf[bb / 2];
    free(buf);
    return r;
}

/* The format layer alone: apd_reader_decode (LMDB chunk look-up, CRC-32C, unpack + palette
 * look-up) into one image buffer, 1 thread, in the same shuffled order as the loader
 * (random access costs cache misses that file order would hide). */
static rate reader_only(const char *path, uint64_t images, apd_layout layout)
{
    apd_reader *r;
    apd_err err;
    if (apd_reader_open(&r, path, NULL, &err) != APD_OK) exit(1);
    uint64_t N = apd_reader_count(r), done = 0;
    uint64_t *perm = malloc(N * sizeof *perm);
    uint8_t img[3072];
    uint32_t lab;
    double t0 = apd__now(), c0 = cpu_now();
    for (uint64_t e = 0; done < images; e++) {
        apd_loader_permutation(perm, N, 1, e, 1);
        for (uint64_t i = 0; i < N && done < images; i++, done++)
            if (apd_reader_decode(r, perm[i], layout, img, sizeof img, &lab) != APD_OK) exit(1);
    }
    rate rt = mkrate(done, t0, c0);
    free(perm);
    apd_reader_close(r);
    return rt;
}

/* The normalisation kernels alone, on `batch` images already decoded (in cache), writing
 * the same float batch buffer as the limit: mode 0 = uint8 CHW -> float (the loader's
 * path), mode 1 = palette + 8-bit indices to float (from apd_reader_record). */
static rate kernel_only(const char *path, uint32_t batch, uint64_t images, int mode, double *ck)
{
    apd_reader *r;
    apd_err err;
    if (apd_reader_open(&r, path, NULL, &err) != APD_OK) exit(1);
    uint8_t *chw = malloc((size_t)batch * 3072), *idx = malloc((size_t)batch * 1024);
    uint8_t *pal = malloc((size_t)batch * 768);
    uint32_t *k = malloc(batch * sizeof *k), lab;
    float *out = aligned_alloc(64, (size_t)batch * 3072 * sizeof(float));
    const float mean[3] = {0.49f, 0.48f, 0.45f}, std[3] = {0.25f, 0.24f, 0.26f};
    for (uint32_t i = 0; i < batch; i++)
        if (apd_reader_decode(r, i, APD_LAYOUT_CHW, chw + (size_t)i * 3072, 3072, &lab) != APD_OK ||
            apd_reader_record(r, i, pal + (size_t)i * 768, &k[i], idx + (size_t)i * 1024, &lab) != APD_OK)
            exit(1);
    apd_reader_close(r);
    uint64_t done = 0;
    double t0 = apd__now(), c0 = cpu_now();
    while (done < images) {
        for (uint32_t i = 0; i < batch; i++) {
            float *o = out + (size_t)i * 3072;
            if (mode == 0) {
                for (int ch = 0; ch < 3; ch++)
                    apd__u8_norm_f32(APD__IMPL_AUTO, chw + (size_t)i * 3072 + ch * 1024, 1024,
                                     mean[ch], std[ch], o + ch * 1024);
            } else if (apd__pal_decode_f32(APD__IMPL_AUTO, idx + (size_t)i * 1024, 1024, 8,
                                           pal + (size_t)i * 768, k[i], 3, mean, std, o) != 0) {
                exit(1);
            }
        }
        __asm__ volatile("" ::"r"(out) : "memory");
        done += batch;
    }
    rate rt = mkrate(done, t0, c0);
    *ck += out[1000];
    free(chw); free(idx); free(pal); free(k); free(out);
    return rt;
}

/* The CPU and the kernels auto dispatch picks on it, so figures from different machines can
 * be told apart. */
static void print_machine(void)
{
    char model[256];
    bench_cpu_model(model, sizeof model);
    printf("CPU: %s | palette kernel: %s | 1.1 index decoder: %s; batches: %s\n", model,
           apd__impl_available(APD__IMPL_AVX512) ? "AVX-512 VBMI"
           : apd__impl_available(APD__IMPL_AVX2) ? "AVX2"
                                                  : "scalar",
           apd__icode_impl_available(APD__IMPL_AVX2) ? "AVX2 8-lane wavefront rANS" : "scalar 8-lane wavefront rANS",
           apd__icode_batch_kernel());
}

int main(int argc, char **argv)
{
    const char *data = APD_SHARED_DATA "/cifar10-dev/train.bin";
    const char *apd = "cifar10-dev-k64.apd";
    int epochs = 5, make_only = 0;
    uint32_t batch = 256;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--apd") && i + 1 < argc) apd = argv[++i];
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--make-only")) make_only = 1;
        else {
            fprintf(stderr, "usage: bench_loader [--data train.bin] [--apd PATH] [--epochs E] "
                            "[--batch B] [--make-only]\n");
            return 2;
        }
    }
    struct stat sb;
    char coded[1024];
    size_t al = strlen(apd);
    snprintf(coded, sizeof coded, "%.*s-coded.apd", (int)(al > 4 && !strcmp(apd + al - 4, ".apd") ? al - 4 : al), apd);
    if (stat(apd, &sb) != 0 && make_apd(data, apd, APD_ICODE_OFF)) return 1;
    if (stat(coded, &sb) != 0 && make_apd(data, coded, APD_ICODE_ON)) return 1;
    if (make_only) return 0;
    double ck = 0;
    apd_reader *r;
    apd_err err;
    if (apd_reader_open(&r, apd, NULL, &err) != APD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint64_t N = apd_reader_count(r);
    apd_reader_close(r);
    uint64_t images = N * (uint64_t)epochs;
    size_t fimg = 3 * 32 * 32 * sizeof(float);

    printf("bench_loader: %s, %llu images 3x32x32 K=64, batch %u, %d epochs per figure\n", apd,
           (unsigned long long)N, batch, epochs);
    print_machine();
    /* Interleave baseline and loader runs so drift hits both; take the best of two limits. */
    rate lim1 = write_limit(fimg, batch, images, &ck);
    rate f1 = run_loader(apd, APD_OUT_F32_CHW, 1, batch, epochs, &ck);
    rate f2 = run_loader(apd, APD_OUT_F32_CHW, 2, batch, epochs, &ck);
    rate lim2 = write_limit(fimg, batch, images, &ck);
    rate lim = {lim1.wall > lim2.wall ? lim1.wall : lim2.wall, lim1.cpu > lim2.cpu ? lim1.cpu : lim2.cpu};
    rate u1 = run_loader(apd, APD_OUT_U8_HWC, 1, batch, epochs, &ck);
    rate c1 = run_loader(apd, APD_OUT_U8_CHW, 1, batch, epochs, &ck);
    rate u2 = run_loader(apd, APD_OUT_U8_HWC, 2, batch, epochs, &ck);
    rate ro = reader_only(apd, images, APD_LAYOUT_HWC);
    rate k0 = kernel_only(apd, batch, images, 0, &ck);
    rate k1 = kernel_only(apd, batch, images, 1, &ck);
    rate cf1 = run_loader(coded, APD_OUT_F32_CHW, 1, batch, epochs, &ck);
    rate cf2 = run_loader(coded, APD_OUT_F32_CHW, 2, batch, epochs, &ck);
    rate cu1 = run_loader(coded, APD_OUT_U8_HWC, 1, batch, epochs, &ck);
    rate cro = reader_only(coded, images, APD_LAYOUT_HWC);

    printf("  %-40s %12s %14s\n", "", "images/s", "per CPU-second");
    printf("  %-40s %12.0f %14.0f  (%.1f GB/s per core)\n", "float-write limit (memset), 1 thread",
           lim.wall, lim.cpu, lim.cpu * (double)fimg / 1e9);
    printf("  %-40s %12.0f %14.0f  ratio to limit %.2f wall, %.2f per core (target >= 0.70)\n",
           "loader float32 CHW normalised, 1 thread", f1.wall, f1.cpu, f1.wall / lim.wall, f1.cpu / lim.cpu);
    printf("  %-40s %12.0f %14.0f  ratio to 1-thread limit %.2f wall, %.2f per core\n",
           "loader float32 CHW normalised, 2 threads", f2.wall, f2.cpu, f2.wall / lim.wall, f2.cpu / lim.cpu);
    printf("  %-40s %12.0f %14.0f  per core / 1M target %.2f\n", "loader uint8 HWC, 1 thread",
           u1.wall, u1.cpu, u1.cpu / 1e6);
    printf("  %-40s %12.0f %14.0f  per core / 1M target %.2f\n", "loader uint8 CHW, 1 thread",
           c1.wall, c1.cpu, c1.cpu / 1e6);
    printf("  %-40s %12.0f %14.0f  wall scaling %.2fx over 1 thread\n", "loader uint8 HWC, 2 threads",
           u2.wall, u2.cpu, u2.wall / u1.wall);
    printf("  %-40s %12.0f %14.0f  loader overhead over the reader %.0f%% per core\n",
           "reader only (apd_reader_decode, shuffled)", ro.wall, ro.cpu, 100.0 * (ro.cpu / u1.cpu - 1.0));
    printf("  %-40s %12.0f %14.0f  ratio to limit %.2f per core\n",
           "kernel only: uint8 CHW -> float norm", k0.wall, k0.cpu, k0.cpu / lim.cpu);
    printf("  %-40s %12.0f %14.0f  ratio to limit %.2f per core\n",
           "kernel only: palette LUT -> float gather", k1.wall, k1.cpu, k1.cpu / lim.cpu);
    printf("  format 1.1 index-coded file (%s):\n", coded);
    printf("  %-40s %12.0f %14.0f  %.2fx the 1.0 file per core; >= 300k per core: %s\n",
           "coded: loader float32 CHW, 1 thread", cf1.wall, cf1.cpu, cf1.cpu / f1.cpu, cf1.cpu >= 3e5 ? "yes" : "no");
    printf("  %-40s %12.0f %14.0f  wall scaling %.2fx over 1 thread\n", "coded: loader float32 CHW, 2 threads",
           cf2.wall, cf2.cpu, cf2.wall / cf1.wall);
    printf("  %-40s %12.0f %14.0f  %.2fx the 1.0 file per core\n", "coded: loader uint8 HWC, 1 thread",
           cu1.wall, cu1.cpu, cu1.cpu / u1.cpu);
    printf("  %-40s %12.0f %14.0f  %.2fx the 1.0 file per core\n", "coded: reader only (shuffled)", cro.wall,
           cro.cpu, cro.cpu / ro.cpu);
    printf("  float path = decode (reader, CRC, shuffled access) + a kernel at ~write speed: the\n"
           "  ratio is bounded by 1/(1 + decode time / write time).\n");
    printf("  (checksum %.0f)\n", ck);
    return 0;
}
