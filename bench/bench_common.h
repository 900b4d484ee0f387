/* bench/bench_common.h: what the benches time and print the same way (header only; each
 * bench is one program). */
#ifndef APD_BENCH_COMMON_H
#define APD_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of the calling thread, in seconds: the machines are shared (load often above the
 * core count), so throughput is measured in CPU seconds, which is what "per core" means. */
static inline double bench_thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The first CPU's "model name" from /proc/cpuinfo, or "unknown". */
static inline void bench_cpu_model(char *out, size_t cap)
{
    char line[512];
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *q = strchr(line, ':');
            if (q) snprintf(out, cap, "%s", q + 2);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
}

/* Up to want images of CIFAR-10 dev's train.bin under dir (APD_SHARED_DATA): chw gets 3072
 * bytes per image (CHW, as stored), labels (may be NULL) one byte each. Returns the number
 * read, or 0 with a message on stderr when the file is missing. */
static inline size_t bench_read_cifar(const char *dir, size_t want, uint8_t *chw, uint8_t *labels)
{
    char src[1024];
    snprintf(src, sizeof src, "%s/cifar10-dev/train.bin", dir);
    FILE *f = fopen(src, "rb");
    if (!f) {
        perror(src);
        return 0;
    }
    uint8_t rec[3073];
    size_t n = 0;
    while (n < want && fread(rec, 1, sizeof rec, f) == sizeof rec) {
        if (labels) labels[n] = rec[0];
        memcpy(chw + n * 3072, rec + 1, 3072);
        n++;
    }
    fclose(f);
    return n;
}

#endif
