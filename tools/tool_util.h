/* tools/tool_util.h: what the command-line tools share. Compiled into every tool; uses the
 * public API (include/apd/) only, so the tools build against an installed libapd.
 *
 * - tool_progress: the one progress line of the tools (phase, count, percent, rate, ETA and a
 *   short note) on stderr. Drawn only when stderr is a terminal, so pipes, logs and tests see
 *   nothing; APD_PROGRESS=0 turns it off, APD_PROGRESS=1 forces it on. Redrawn at most ~8
 *   times a second and cut to the terminal width (a wrapped line could not be erased).
 * - tool_say: print a line while a progress line may be on screen: erase the progress line,
 *   print, redraw it below. Every message of a tool that runs with a progress line goes
 *   through it (or tool_log_fn), so log lines never overwrite the progress line and the
 *   progress line never overwrites them.
 * - tool_progress_fn / tool_log_fn: the sinks for the library's apd_progress_fn and
 *   apd_log_fn callbacks (apd/status.h); user is a tool_progress *. A new phase name ends the
 *   previous phase's line (it stays on screen) and starts a new one.
 * - tool_why: "message (status text)" unless the message already says it.
 * - tool_sb: a growable string; errors are sticky (check oom once at the end).
 * - tool_json_fputs: a JSON string literal (apd_json_escape) on a stream.
 *
 * Not thread-safe: call from the thread that runs the work (the library calls its callbacks
 * from the calling thread).
 */
#ifndef APD_TOOL_UTIL_H
#define APD_TOOL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "apd/status.h"

#define TOOL_PRINTF(a, b) __attribute__((format(printf, a, b)))

typedef struct tool_progress {
    int enabled;      /* draw at all: stderr is a terminal, or APD_PROGRESS=1 */
    int active;       /* a phase runs (between start and finish) */
    int shown;        /* the line is on screen and must be erased before other output */
    char phase[48];
    uint64_t total;   /* 0 = unknown */
    uint64_t done;
    uint64_t base;    /* done at the first update: a resumed phase's rate counts new work only */
    int have_base;
    double start, base_time, last;
    char note[200];
} tool_progress;

/* Decide whether to draw (terminal / APD_PROGRESS); no phase yet. */
void tool_progress_init(tool_progress *p);
/* Start a phase of total items (0 = unknown); finishes a running one first. */
void tool_progress_start(tool_progress *p, const char *phase, uint64_t total);
/* done items of the phase; redraws if due (or when done reaches total). */
void tool_progress_set(tool_progress *p, uint64_t done);
/* Free text shown after the rate (e.g. "run 2/5 loss 0.31"). */
void tool_progress_note(tool_progress *p, const char *fmt, ...) TOOL_PRINTF(2, 3);
/* Final redraw and newline: the finished phase's line stays on screen. No-op if no phase. */
void tool_progress_finish(tool_progress *p);
/* End the phase and erase its line (for failures: the error message is then the last line). */
void tool_progress_stop(tool_progress *p);
/* printf to f (stdout or stderr) around the progress line; p may be NULL. Flushes f. */
void tool_say(tool_progress *p, FILE *f, const char *fmt, ...) TOOL_PRINTF(3, 4);

/* apd_progress_fn and apd_log_fn for the library; user = tool_progress *. */
void tool_progress_fn(void *user, const char *phase, uint64_t done, uint64_t total, const char *note);
void tool_log_fn(void *user, const char *line);

/* msg, then " (apd_strerror(s))" unless msg already contains that text in any case, into
 * out[cap]. The library's messages often end in the system's reason ("No such file or
 * directory"), which is the status text again; then that part is written once, as
 * apd_strerror spells it. @return out. */
const char *tool_why(char *out, size_t cap, const char *msg, apd_status s);

typedef struct tool_sb {
    char *p;
    size_t len, cap;
    int oom;
} tool_sb;
void tool_sb_add(tool_sb *b, const char *s, size_t n);
void tool_sb_puts(tool_sb *b, const char *s);
void tool_sb_printf(tool_sb *b, const char *fmt, ...) TOOL_PRINTF(2, 3);
/* s as a quoted JSON string (apd_json_escape). */
void tool_sb_jstr(tool_sb *b, const char *s);
/* The text ("" when empty), valid until the next append or tool_sb_free. */
const char *tool_sb_str(const tool_sb *b);
void tool_sb_free(tool_sb *b);

/* s as a quoted JSON string on f. */
void tool_json_fputs(FILE *f, const char *s);

/* Monotonic clock in seconds. */
double tool_now(void);
/* Online CPUs, clamped to 1..max. */
uint32_t tool_cpu_count(uint32_t max);

#endif
