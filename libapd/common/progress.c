/* progress.c: see progress.h. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/internal.h"
#include "common/progress.h"

double apd__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void apd_progress_start(apd_progress *p, const char *label, uint64_t total)
{
    const char *env = getenv("APD_PROGRESS");
    memset(p, 0, sizeof *p);
    p->label = label ? label : "";
    p->total = total;
    p->start = p->last = apd__now();
    if (env && *env)
        p->enabled = strcmp(env, "0") != 0;
    else
        p->enabled = isatty(STDERR_FILENO);
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (s < 0 || s > 360000) { snprintf(buf, n, "--:--"); return; }
    unsigned t = (unsigned)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%u:%02u:%02u", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%02u:%02u", t / 60, t % 60);
}

static void draw(apd_progress *p, double now)
{
    double el = now - p->start;
    double rate = el > 0 ? (double)p->done / el : 0;
    char eta[32] = "", elapsed[32];
    fmt_time(elapsed, sizeof elapsed, el);
    if (p->total && rate > 0) fmt_time(eta, sizeof eta, (double)(p->total - (p->done < p->total ? p->done : p->total)) / rate);
    if (p->total)
        fprintf(stderr, "\r\033[K%s %llu/%llu (%3.0f%%) %.1f/s elapsed %s ETA %s %s", p->label,
                (unsigned long long)p->done, (unsigned long long)p->total,
                100.0 * (double)p->done / (double)p->total, rate, elapsed, eta, p->extra);
    else
        fprintf(stderr, "\r\033[K%s %llu %.1f/s elapsed %s %s", p->label,
                (unsigned long long)p->done, rate, elapsed, p->extra);
    fflush(stderr);
    p->last = now;
}

void apd_progress_set(apd_progress *p, uint64_t done)
{
    p->done = done;
    if (!p->enabled) return;
    double now = apd__now();
    if (now - p->last >= 0.125 || (p->total && done >= p->total)) draw(p, now);
}

void apd_progress_add(apd_progress *p, uint64_t n) { apd_progress_set(p, p->done + n); }

void apd_progress_note(apd_progress *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->extra, sizeof p->extra, fmt, ap);
    va_end(ap);
}

void apd_progress_finish(apd_progress *p)
{
    if (!p->enabled) return;
    draw(p, apd__now());
    fputc('\n', stderr);
}
