/* common/progress.h: a one-line progress display (count, rate, ETA) for long work.
 *
 * Draws on stderr only when stderr is a terminal (and APD_PROGRESS is not "0"); in pipes,
 * CI logs and tests it prints nothing. APD_PROGRESS=1 forces it on. Redraws at most ~8
 * times a second. Not thread-safe: update from one thread.
 */
#ifndef APD_COMMON_PROGRESS_H
#define APD_COMMON_PROGRESS_H

#include <stdint.h>

typedef struct apd_progress {
    const char *label;
    uint64_t total;   /* 0 = unknown */
    uint64_t done;
    double start, last;
    int enabled;
    char extra[160]; /* caller text shown after the rate, e.g. loss terms */
} apd_progress;

void apd_progress_start(apd_progress *p, const char *label, uint64_t total);
/* Set done to an absolute value and redraw if due. */
void apd_progress_set(apd_progress *p, uint64_t done);
void apd_progress_add(apd_progress *p, uint64_t n);
/* Replace the free text shown on the line (printf-style). */
void apd_progress_note(apd_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Final redraw and newline (only if enabled). */
void apd_progress_finish(apd_progress *p);

#endif
