/* tools/tool_mpi.h: the MPI glue of the class-parallel tools (apd-convert's distillation,
 * apd-eval's runs). The library knows no transport: apd-convert hands tool_mpi_exchange to
 * apd_distill_opts.comm (apd/distill.h), apd-eval splits its runs itself.
 *
 * Compiled into every tool; with MPI only in the tools built with APD_TOOL_MPI (CMake option
 * APD_MPI, on when MPI is found). MPI is started only when the process was launched by an
 * MPI launcher (mpirun/mpiexec set OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK): a plain run
 * never touches MPI and is the one-process tool. Without MPI support, a launch as several
 * processes is refused (each would otherwise write the same output alone).
 *
 * Call from the main thread only (MPI is initialised MPI_THREAD_FUNNELED).
 */
#ifndef APD_TOOL_MPI_H
#define APD_TOOL_MPI_H

#include <stdint.h>

/* Start MPI if launched by mpirun. @return 0, or the exit status to leave with (message
 * printed, prefixed with tool). */
int tool_mpi_init(int *argc, char ***argv, const char *tool);
/* End MPI; returns the worst exit status of all processes. A process that failed waits up
 * to 10 s for the others to finish too, then aborts them all (they may wait in an exchange
 * it will never join). */
int tool_mpi_finish(int rc);
/* This process and how many (0 and 1 without MPI). */
uint32_t tool_mpi_rank(void);
uint32_t tool_mpi_size(void);
/* The items [*lo, *hi) of n that process `rank` of `size` handles (contiguous blocks). */
void tool_mpi_block(uint64_t n, uint32_t rank, uint32_t size, uint64_t *lo, uint64_t *hi);
/* apd_distill_comm.exchange: offsets[0..size] cut buf into the processes' parts; each
 * process fills its own, and on return every process holds every part. 0 on success. */
int tool_mpi_exchange(void *user, void *buf, const uint64_t *offsets);

#endif
