/* common/cpu.c: a CPU-feature answer probed once and kept. The kernels dispatch on their own
 * feature sets (icode.c, gemm_bf16.c, nn/blas.c), each a probe function; the answer is kept
 * in the caller's slot, read and written with relaxed atomics: threads that race to probe all
 * store the same answer, and C11 gives the race a defined meaning that way. */
#include "common/internal.h"

int apd__cached_flag(int *slot, int (*probe)(void))
{
    int h = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (h < 0) {
        h = probe() ? 1 : 0;
        __atomic_store_n(slot, h, __ATOMIC_RELAXED);
    }
    return h;
}
