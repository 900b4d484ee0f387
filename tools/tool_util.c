/* tools/tool_util.c: see tool_util.h. */
#define _DEFAULT_SOURCE
#include "tool_util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "apd/json.h"

/* ---- progress line ------------------------------------------------------------------------ */

#define ERASE "\r\033[K" /* carriage return + erase to end of line */

double tool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tool_progress_init(tool_progress *p)
{
    memset(p, 0, sizeof *p);
    const char *env = getenv("APD_PROGRESS");
    if (env && *env) p->enabled = strcmp(env, "0") != 0;
    else p->enabled = isatty(STDERR_FILENO);
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 360000) {
        snprintf(buf, n, "--:--");
        return;
    }
    unsigned t = (unsigned)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%u:%02u:%02u", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%02u:%02u", t / 60, t % 60);
}

/* Columns of the terminal on stderr; 0 if unknown (then the line is not cut). */
static size_t term_cols(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 0;
}

static void draw(tool_progress *p, double now)
{
    char line[512], el[16], eta[16] = "--:--", rate[32] = "";
    /* rate of the work done in this run (a resumed phase starts at base); with one update so
     * far, of everything since the phase started */
    double since = now - p->base_time, all = now - p->start, r = 0;
    if (since > 0 && p->done > p->base) r = (double)(p->done - p->base) / since;
    else if (all > 0) r = (double)p->done / all;
    fmt_time(el, sizeof el, now - p->start);
    if (p->total && r > 0) fmt_time(eta, sizeof eta, (double)(p->total - (p->done < p->total ? p->done : p->total)) / r);
    if (r >= 10) snprintf(rate, sizeof rate, "%.0f/s", r);
    else if (r > 0) snprintf(rate, sizeof rate, "%.2f/s", r);
    else snprintf(rate, sizeof rate, "-/s");
    int n;
    if (p->total)
        n = snprintf(line, sizeof line, "%s %llu/%llu %3.0f%% %s elapsed %s ETA %s%s%s", p->phase,
                     (unsigned long long)p->done, (unsigned long long)p->total,
                     100.0 * (double)p->done / (double)p->total, rate, el, eta, p->note[0] ? "  " : "", p->note);
    else
        n = snprintf(line, sizeof line, "%s %llu %s elapsed %s%s%s", p->phase, (unsigned long long)p->done, rate, el,
                     p->note[0] ? "  " : "", p->note);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    size_t cols = term_cols();
    if (cols > 1 && len > cols - 1) len = cols - 1; /* never wrap: \r could not erase it */
    fprintf(stderr, ERASE "%.*s", (int)len, line);
    fflush(stderr);
    p->shown = 1;
    p->last = now;
}

void tool_progress_start(tool_progress *p, const char *phase, uint64_t total)
{
    if (p->active) tool_progress_finish(p);
    snprintf(p->phase, sizeof p->phase, "%s", phase ? phase : "");
    p->total = total;
    p->done = p->base = 0;
    p->have_base = 0;
    p->note[0] = '\0';
    p->start = p->base_time = tool_now();
    p->last = 0;
    p->active = 1;
}

void tool_progress_set(tool_progress *p, uint64_t done)
{
    if (!p->active) return;
    double now = tool_now();
    if (!p->have_base) {
        p->base = done;
        p->base_time = now;
        p->have_base = 1;
    }
    p->done = done;
    if (p->enabled && (now - p->last >= 0.125 || (p->total && done >= p->total))) draw(p, now);
}

void tool_progress_note(tool_progress *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note, sizeof p->note, fmt, ap);
    va_end(ap);
}

void tool_progress_finish(tool_progress *p)
{
    if (!p->active) return;
    if (p->enabled) {
        draw(p, tool_now());
        fputc('\n', stderr);
        fflush(stderr);
    }
    p->shown = 0;
    p->active = 0;
}

void tool_progress_stop(tool_progress *p)
{
    if (p->shown) {
        fputs(ERASE, stderr);
        fflush(stderr);
    }
    p->shown = 0;
    p->active = 0;
}

void tool_say(tool_progress *p, FILE *f, const char *fmt, ...)
{
    if (p && p->shown) {
        fputs(ERASE, stderr);
        fflush(stderr);
        p->shown = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fflush(f);
    if (p && p->active && p->enabled) draw(p, tool_now());
}

void tool_progress_fn(void *user, const char *phase, uint64_t done, uint64_t total, const char *note)
{
    tool_progress *p = user;
    if (!p) return;
    if (!phase) phase = "";
    if (!p->active || strncmp(p->phase, phase, sizeof p->phase - 1) != 0 || p->total != total)
        tool_progress_start(p, phase, total);
    snprintf(p->note, sizeof p->note, "%s", note ? note : "");
    tool_progress_set(p, done);
}

void tool_log_fn(void *user, const char *line)
{
    tool_say(user, stderr, "%s\n", line ? line : "");
}

/* ---- messages ----------------------------------------------------------------------------- */

/* First occurrence of needle in hay, ASCII case ignored (strcasestr is not POSIX). */
static const char *find_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return hay;
    return NULL;
}

const char *tool_why(char *out, size_t cap, const char *msg, apd_status s)
{
    const char *why = apd_strerror(s);
    const char *at = msg ? find_nocase(msg, why) : NULL;
    if (!msg || !*msg) {
        snprintf(out, cap, "%s", why);
    } else if (at) {
        /* said already (often as the system's "No such file or directory"): keep the message,
         * spelled the library's way, once */
        snprintf(out, cap, "%s", msg);
        size_t off = (size_t)(at - msg), n = strlen(why);
        if (off + n < cap) memcpy(out + off, why, n);
    } else {
        snprintf(out, cap, "%s (%s)", msg, why);
    }
    return out;
}

/* ---- strings ------------------------------------------------------------------------------ */

void tool_sb_add(tool_sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tool_sb_puts(tool_sb *b, const char *s) { tool_sb_add(b, s, strlen(s)); }

void tool_sb_printf(tool_sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || b->oom) {
        b->oom = 1;
        return;
    }
    char *tmp = malloc((size_t)n + 1);
    if (!tmp) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tool_sb_add(b, tmp, (size_t)n);
    free(tmp);
}

void tool_sb_jstr(tool_sb *b, const char *s)
{
    size_t n = apd_json_escape(NULL, 0, s ? s : "");
    char *tmp = malloc(n + 1);
    if (!tmp) {
        b->oom = 1;
        return;
    }
    apd_json_escape(tmp, n + 1, s ? s : "");
    tool_sb_add(b, tmp, n);
    free(tmp);
}

const char *tool_sb_str(const tool_sb *b) { return b->p ? b->p : ""; }

void tool_sb_free(tool_sb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void tool_json_fputs(FILE *f, const char *s)
{
    tool_sb b = {0};
    tool_sb_jstr(&b, s);
    fputs(b.oom ? "\"\"" : tool_sb_str(&b), f);
    tool_sb_free(&b);
}

uint32_t tool_cpu_count(uint32_t max)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    return (uint64_t)n > max ? max : (uint32_t)n;
}
