/* nn/blas.c: make OpenBLAS use its AVX-512 kernels on CPUs it does not recognise.
 *
 * Why: Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from the CPU model
 * number. On CPUs newer than it knows (e.g. family 6 model 207, Emerald Rapids, the machines
 * this project runs on) it falls back to the generic "Prescott" SSE3 kernels, which run
 * sgemm about 4-5x slower than the SkylakeX AVX-512 kernels the CPU can execute (measured
 * here: 5 vs 23 GFLOP/s single-threaded under load). Setting OPENBLAS_CORETYPE=SkylakeX in
 * the environment fixes it, but only before the library loads.
 *
 * The same holds for AMD CPUs with AVX-512 (Zen 4, Zen 5): 0.3.21 gives them its AVX2 "Haswell"
 * (or "Zen") kernels. Measured on an EPYC Zen 5 (family 26), one thread, per CPU-second:
 * sgemm 2048^3 95 GFLOP/s with Haswell, 181 with SkylakeX; 128x256x1152 (a conv GEMM of
 * ConvNetD3) 100 vs 172.
 *
 * What: once per process, before libapd's first GEMM, if the user did not set
 * OPENBLAS_CORETYPE, OpenBLAS reports "Prescott", "Haswell" or "Zen" and the CPU has AVX-512
 * F/DQ/BW/VL (what the SkylakeX kernels use), re-run OpenBLAS's own kernel selection
 * (gotoblas_dynamic_quit/init, exported by DYNAMIC_ARCH builds) with
 * OPENBLAS_CORETYPE=SkylakeX, then restore the environment. It runs from a constructor (at
 * load time, before user threads exist) and again, idempotently, from apd_pool_create and
 * apd_convnet_create. Results stay within float32 round-off of the generic kernels.
 * Opt out with APD_BLAS_KEEP_CORE=1. Builds of OpenBLAS without DYNAMIC_ARCH lack the two
 * symbols (weak references) and are left alone.
 *
 * Also here: apd__cpu_avx512f, the one run-time AVX-512F check that the hand-written kernels
 * (gemm_f32.c, ops.c, convnet.c) dispatch on.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "common/internal.h"
#include "nn/nn_internal.h"

extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void fix_core(void)
{
    if (getenv("OPENBLAS_CORETYPE") != NULL || getenv("APD_BLAS_KEEP_CORE") != NULL) return;
    if (gotoblas_dynamic_init == NULL || gotoblas_dynamic_quit == NULL) return;
    const char *core = openblas_get_corename();
    if (core == NULL || (strcmp(core, "Prescott") != 0 && strcmp(core, "Haswell") != 0 && strcmp(core, "Zen") != 0))
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq") ||
        !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl"))
        return;
    if (setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) != 0) return;
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
}

#if defined(__x86_64__) && defined(__GNUC__)
static int probe_avx512f(void) { return __builtin_cpu_supports("avx512f"); }
#endif

int apd__cpu_avx512f(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    static int have = -1;
    return apd__cached_flag(&have, probe_avx512f);
#else
    return 0;
#endif
}

void apd__blas_init(void) { pthread_once(&once, fix_core); }

__attribute__((constructor)) static void blas_ctor(void) { apd__blas_init(); }

const char *apd_nn_blas_core(void)
{
    apd__blas_init();
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}
