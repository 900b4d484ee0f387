/* nn/blas_env.c: force OpenBLAS's kernels on CPUs it falls back on (see blas_env.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cblas.h>

#include "nn/blas_env.h"

const char *apd__blas_corename(void)
{
    const char *n = openblas_get_corename();
    return n ? n : "unknown";
}

void apd__blas_fix_coretype(char **argv)
{
    if (!argv || !argv[0]) return;
    if (getenv("OPENBLAS_CORETYPE") || getenv("APD_BLAS_NOFIX")) return;
    if (strcasecmp(apd__blas_corename(), "Prescott") != 0) return;
    const char *core = NULL;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) core = "Haswell";
#endif
    if (!core) return;
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels (the variable stays set for children) */
}
