/* bench/bench_common.h: what the benches time and print the same way (header only; each
 * bench is one program). */
#ifndef APD_BENCH_COMMON_H
#define APD_BENCH_COMMON_H

#include <stdio.h>
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

#endif
