/* nn/blas_env.h: make OpenBLAS use the right kernels on CPUs it does not know (internal).
 *
 * Why: Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from the CPU model at load
 * time. CPUs newer than the library (e.g. Sapphire Rapids, the machine this project was built
 * on: "Intel(R) Xeon(R) Processor" with AVX-512) fall back to the generic "Prescott" SSE3
 * kernels: sgemm runs at about 25 GFLOP/s instead of about 120 (measured here), which makes
 * every convolution 2-5x slower. The kernel choice can only be forced through the
 * OPENBLAS_CORETYPE environment variable, read once when libopenblas is loaded, so a tool
 * has to set it and re-execute itself.
 *
 * apd__blas_fix_coretype(argv): if OpenBLAS runs its Prescott fallback on a CPU with
 * AVX-512F (-> "SkylakeX") or AVX2 + FMA (-> "Haswell"), and neither OPENBLAS_CORETYPE nor
 * APD_BLAS_NOFIX is set, set OPENBLAS_CORETYPE and execv("/proc/self/exe", argv). Returns
 * normally in every other case (including a failed exec: the program then runs, slower).
 * Call it first thing in main(), before threads exist. Not for library code.
 * Child processes (e.g. a PyTorch baseline run by a bench) inherit the setting.
 */
#ifndef APD_NN_BLAS_ENV_H
#define APD_NN_BLAS_ENV_H

void apd__blas_fix_coretype(char **argv);

/* OpenBLAS's kernel name ("SkylakeX", "Prescott", ...); never NULL. */
const char *apd__blas_corename(void);

#endif
