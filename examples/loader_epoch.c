/* loader_epoch.c: one training epoch over an .apd file with the libapd loader.
 * Build: cc loader_epoch.c $(pkg-config --cflags --libs apd) -lm   Run: ./a.out train.apd */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <apd/apd.h>

/* Stands in for a training step: counts labels, sums the normalised pixels. */
static void train_step(const float *x, const int64_t *y, size_t n, size_t floats_per_image,
                       uint64_t *per_class, uint32_t n_classes, double *sum, double *sum2)
{
    for (size_t i = 0; i < n; i++)
        if (y[i] >= 0 && (uint64_t)y[i] < n_classes) per_class[y[i]]++;
    for (size_t j = 0; j < n * floats_per_image; j++) {
        *sum += x[j];
        *sum2 += (double)x[j] * x[j];
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.apd\n", argv[0]);
        return 2;
    }
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.batch_size = 256; o.shuffle = 1; o.seed = 0; o.rank = 0; o.world_size = 1;
    o.output = APD_OUT_F32_CHW; o.threads = 2; /* float32 NCHW, normalised with the file's mean/std */
    apd_loader *l;
    apd_err err;
    if (apd_loader_open(&l, argv[1], &o, &err) != APD_OK) {
        fprintf(stderr, "%s\n", err.msg); /* names the file and the reason */
        return 1;
    }
    enum { MAX_CLASSES = 1000 }; /* labels counted up to this */
    uint64_t per_class[MAX_CLASSES] = {0}, images = 0, batches = 0;
    double sum = 0, sum2 = 0;
    size_t floats_per_image = apd_loader_image_bytes(l) / sizeof(float);
    float *x = malloc(apd_loader_batch_bytes(l));
    int64_t *y = malloc(o.batch_size * sizeof *y);
    int rc = 0;
    size_t n;
    if (!x || !y) {
        fprintf(stderr, "out of memory\n");
        rc = 1;
    }
    while (rc == 0) { /* one epoch; afterwards the loader is at epoch 1 */
        if (apd_loader_next(l, x, apd_loader_batch_bytes(l), y, NULL, &n) != APD_OK) {
            fprintf(stderr, "%s\n", apd_loader_errmsg(l));
            rc = 1;
        } else if (n == 0) {
            break;
        } else {
            train_step(x, y, n, floats_per_image, per_class, MAX_CLASSES, &sum, &sum2);
            images += n;
            batches++;
        }
    }
    if (rc == 0 && images) {
        double count = (double)images * floats_per_image, mean = sum / count;
        printf("%s: %" PRIu64 " images in %" PRIu64 " batches; normalised pixels mean %.3f, sd %.3f\n", argv[1],
               images, batches, mean, sqrt(fmax(sum2 / count - mean * mean, 0.0)));
        printf("images per class:");
        for (uint32_t k = 0; k < MAX_CLASSES; k++)
            if (per_class[k]) printf(" %u:%" PRIu64, k, per_class[k]);
        printf("\n");
    }
    free(x);
    free(y);
    apd_loader_close(l);
    return rc;
}
