/* bench_quant: speed and quality of the per-image quantizers on real images, with ratios
 * against baselines measured in the same run.
 *
 * Data: the first N images of ../shared/data/cifar10-dev/train.bin (RGB 32x32) and, when the
 * Debian package is installed, Fashion-MNIST train (grey 28x28).
 * For each quantizer and K: CPU time per image (1 thread), images/s, mean squared error per
 * channel value, and the time relative to apd_quantize_map on the same images with a fixed
 * palette (the nearest-colour mapping every quantizer must at least do: the floor) and to
 * median cut. Figures vary by up to 40% between runs on this machine; ratios are measured
 * in one process, interleaved per repetition.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apd/io.h"
#include "apd/quant.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run(const char *name, const apd_dataset *ds, uint32_t n)
{
    static const uint32_t ks[] = {16, 64};
    size_t img = (size_t)ds->c * ds->h * ds->w, px = (size_t)ds->h * ds->w;
    uint8_t pal[768], idx[4096], fixed[768];
    for (int j = 0; j < 256 * 3; j++) fixed[j] = (uint8_t)((j * 37) & 255);
    printf("%s: %u images %ux%ux%u, CPU time, 1 thread\n", name, n, ds->c, ds->h, ds->w);
    printf("  %-10s %4s %12s %12s %10s %10s %10s\n", "quantizer", "K", "us/image", "images/s", "MSE", "x map", "x mcut");
    for (size_t t = 0; t < 2; t++) {
        uint32_t k = ks[t];
        double tq[3] = {0}, tmap = 0, mse[3] = {0};
        for (int rep = 0; rep < 3; rep++) { /* interleaved repetitions */
            double t0 = cpu_now();
            for (uint32_t i = 0; i < n; i++)
                if (apd_quantize_map(ds->pixels + i * img, ds->c, ds->h, ds->w, fixed, k, idx) != APD_OK) exit(1);
            tmap += cpu_now() - t0;
            for (int q = 0; q < 3; q++) {
                uint64_t sse = 0;
                t0 = cpu_now();
                for (uint32_t i = 0; i < n; i++) {
                    uint32_t ku;
                    if (apd_quantize_image((apd_quantizer)q, ds->pixels + i * img, ds->c, ds->h, ds->w, k, 0, pal, idx,
                                           &ku) != APD_OK)
                        exit(1);
                    if (rep == 0) sse += apd_quantize_sse(ds->pixels + i * img, ds->c, ds->h, ds->w, pal, idx);
                }
                tq[q] += cpu_now() - t0;
                if (rep == 0) mse[q] = (double)sse / ((double)n * ds->c * px);
            }
        }
        printf("  %-10s %4u %12.1f %12.0f %10s %10s %10s\n", "map-only", k, 1e6 * tmap / (3.0 * n), 3.0 * n / tmap, "-",
               "1.00", "-");
        for (int q = 0; q < 3; q++)
            printf("  %-10s %4u %12.1f %12.0f %10.2f %10.2f %10.2f\n", apd_quantizer_name((apd_quantizer)q), k,
                   1e6 * tq[q] / (3.0 * n), 3.0 * n / tq[q], mse[q], tq[q] / tmap, tq[q] / tq[0]);
    }
}

int main(void)
{
    apd_dataset ds;
    apd_err err;
    apd_import_opts o = {.limit = 2000};
    if (apd_import(&ds, "cifar10:" APD_SHARED_DATA "/cifar10-dev", "train", &o, &err) != APD_OK) {
        fprintf(stderr, "bench_quant: %s\n", err.msg);
        return 1;
    }
    run("cifar10-dev", &ds, (uint32_t)ds.n);
    apd_dataset_free(&ds);
    if (apd_import(&ds, "fashion-mnist", "train", &o, &err) == APD_OK) {
        run("fashion-mnist", &ds, (uint32_t)ds.n);
        apd_dataset_free(&ds);
    } else {
        printf("fashion-mnist: not installed (%s)\n", err.msg);
    }
    return 0;
}
