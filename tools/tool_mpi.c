/* tools/tool_mpi.c: see tool_mpi.h. */
#define _POSIX_C_SOURCE 200809L
#include "tool_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef APD_TOOL_MPI
#include <mpi.h>
#endif

static uint32_t g_rank, g_size = 1;
#ifdef APD_TOOL_MPI
static int g_active; /* MPI_Init done */
#endif

/* The number of processes the launcher started (0: not launched by one). */
static long launched_size(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}; /* Open MPI, MPICH (Hydra) */
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return strtol(v, NULL, 10);
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

int tool_mpi_init(int *argc, char ***argv, const char *tool)
{
    long n = launched_size();
    if (n == 0) return 0;
#ifdef APD_TOOL_MPI
    int provided = 0, rank = 0, size = 1;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "%s: cannot start MPI\n", tool);
        return 1;
    }
    g_active = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    g_rank = (uint32_t)rank;
    g_size = (uint32_t)size;
    return 0;
#else
    (void)argc;
    (void)argv;
    if (n > 1) {
        fprintf(stderr, "%s: launched as %ld MPI processes, but this build has no MPI support (rebuild with "
                        "MPI found, CMake option APD_MPI)\n", tool, n);
        return 1;
    }
    return 0;
#endif
}

int tool_mpi_finish(int rc)
{
#ifdef APD_TOOL_MPI
    if (!g_active) return rc;
    fflush(stdout);
    fflush(stderr);
    if (g_size > 1) {
        /* The worst exit status of all processes. A failed process waits for the others a
         * while (they fail the same way on a usage error or bad input); if they do not come
         * (waiting in an exchange this one will never join), it aborts them all. */
        int mine = rc, worst = rc, done = 0;
        MPI_Request req;
        MPI_Iallreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &req);
        double t0 = MPI_Wtime();
        while (!done) {
            MPI_Test(&req, &done, MPI_STATUS_IGNORE);
            if (done) break;
            if (rc != 0 && MPI_Wtime() - t0 > 10.0) MPI_Abort(MPI_COMM_WORLD, rc);
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        if (rc == 0) rc = worst;
    }
    MPI_Finalize();
    g_active = 0;
#endif
    return rc;
}

uint32_t tool_mpi_rank(void) { return g_rank; }
uint32_t tool_mpi_size(void) { return g_size; }

void tool_mpi_block(uint64_t n, uint32_t rank, uint32_t size, uint64_t *lo, uint64_t *hi)
{
    if (size == 0) size = 1;
    *lo = n * rank / size;
    *hi = n * (rank + 1) / size;
}

int tool_mpi_exchange(void *user, void *buf, const uint64_t *offsets)
{
    (void)user;
#ifdef APD_TOOL_MPI
    if (!g_active || g_size < 2) return 0;
    /* each part broadcast by its owner, in pieces an int count can hold */
    const uint64_t piece = (uint64_t)1 << 30;
    for (uint32_t r = 0; r < g_size; r++) {
        for (uint64_t at = offsets[r]; at < offsets[r + 1]; at += piece) {
            uint64_t n = offsets[r + 1] - at < piece ? offsets[r + 1] - at : piece;
            if (MPI_Bcast((char *)buf + at, (int)n, MPI_BYTE, (int)r, MPI_COMM_WORLD) != MPI_SUCCESS) return 1;
        }
    }
    return 0;
#else
    (void)buf;
    (void)offsets;
    return 0;
#endif
}
