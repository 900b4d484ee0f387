/* common/clock.c: the monotonic wall clock of libapd (apd__now, common/internal.h), used for
 * the timings that go into status lines and bench figures, never into output bytes. */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "common/internal.h"

double apd__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
