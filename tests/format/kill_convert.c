/* kill_convert.c: apd-convert --force killed with SIGKILL at random moments, quantizing and
 * distilling (dm) a dataset onto an existing output. After every kill the output must be
 * byte for byte the previous file or a complete new one (opens, "complete": true, the expected
 * record count, every record checksum); anything else left must be a temporary named
 * OUT.partial-XXXXXX (or its -lock) that readers refuse (or, killed between its last check
 * and the rename, a complete file); and the next run removes the temporaries at its start.
 *
 * usage: kill_convert BINDIR [ROUNDS]      (default 6; APD_KILL_ROUNDS, APD_KILL_SEED; half the rounds
 *                                          with APD_TEST_QUICK, the sanitizer pass)
 * scripts/reliability-long.sh runs the long form. Exit 0 iff every round held.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apd/format.h"
#include "common/internal.h"
#include "common/rng.h"
#include "../common/test_quick.h"

static char g_dir[64], g_conv[4200];
static int g_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                                   \
            g_fail = 1;                                                                            \
        }                                                                                          \
    } while (0)

static void die(const char *m)
{
    fprintf(stderr, "kill_convert: %s\n", m);
    exit(2);
}

typedef struct method {
    const char *name;
    const char *args;
    uint64_t n_out;  /* records a complete run writes */
    double full_s;   /* duration of a complete run */
} method;

static method g_methods[2] = {
    {"quantize", "--method quantize --colors 64", 3000, 0},
    {"dm", "--method dm --ipc 1 --iters 6 --batch-real 8", 10, 0},
};

static pid_t start(const method *m, int seed)
{
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%d", seed);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        if (chdir(g_dir) != 0) _exit(126);
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0) {
            dup2(nul, 1);
            dup2(nul, 2);
        }
        char cmd[4800];
        snprintf(cmd, sizeof cmd, "exec '%s' --input cifar10:train.bin -t 1 %s --seed %s -o out.apd --force --quiet",
                 g_conv, m->args, seedbuf);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int finish(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len ? *len : 1);
    if (!b || fread(b, 1, *len, f) != *len) die("read");
    fclose(f);
    return b;
}

/* A complete file of method m: opens (so "complete" is not false), the count, every record. */
static int complete_file(const char *path, const method *m)
{
    apd_reader *r;
    apd_err err;
    if (apd_reader_open(&r, path, NULL, &err) != APD_OK) {
        fprintf(stderr, "  %s\n", err.msg);
        return 0;
    }
    int ok = apd_reader_count(r) == m->n_out && strstr(apd_reader_meta_json(r), "\"complete\": true") &&
             strstr(apd_reader_meta_json(r), m->name);
    for (uint64_t i = 0; ok && i < m->n_out; i++) ok = apd_reader_verify_record(r, i) == APD_OK;
    apd_reader_close(r);
    return ok;
}

/* Files left beside out.apd (its lock aside), each printed; *refused_all = 0 if a finished
 * temporary is not a complete file. *fresh_empty (may be NULL) = how many of them are
 * temporaries (not -lock files) that are empty and were modified less than 60 s ago. */
static int temporaries(int *refused_all, int *fresh_empty)
{
    DIR *d = opendir(g_dir);
    if (!d) die("opendir");
    int n = 0;
    *refused_all = 1;
    if (fresh_empty) *fresh_empty = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..") || !strcmp(nm, "train.bin") || !strcmp(nm, "out.apd") ||
            !strcmp(nm, "out.apd-lock"))
            continue;
        n++;
        printf("    left: %s\n", nm);
        CHECK(!strncmp(nm, "out.apd.partial-", 16), "unexpected file left: %s", nm);
        if (strstr(nm, "-lock")) continue;
        char p[400];
        snprintf(p, sizeof p, "%s/%s", g_dir, nm);
        struct stat sb;
        if (fresh_empty && stat(p, &sb) == 0 && sb.st_size == 0 && time(NULL) - sb.st_mtime < 60) {
            printf("    empty and recent, left by design: %s\n", nm);
            ++*fresh_empty;
        }
        apd_reader *r;
        apd_err err;
        if (apd_reader_open(&r, p, NULL, &err) == APD_OK) { /* finished but not yet renamed */
            apd_reader_close(r);
            if (!complete_file(p, &g_methods[0]) && !complete_file(p, &g_methods[1])) *refused_all = 0;
        }
    }
    closedir(d);
    return n;
}

static void make_cifar(int n)
{
    char p[200];
    snprintf(p, sizeof p, "%s/train.bin", g_dir);
    FILE *f = fopen(p, "wb");
    if (!f) die("train.bin");
    apd__rng r;
    apd__rng_seed(&r, 3, 0);
    uint8_t rec[3073];
    for (int i = 0; i < n; i++) {
        rec[0] = (uint8_t)(i % 10);
        for (int j = 1; j < 3073; j++) rec[j] = (uint8_t)apd__rng_below(&r, 256);
        if (fwrite(rec, 1, sizeof rec, f) != sizeof rec) die("train.bin");
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 2) die("usage: kill_convert BINDIR [ROUNDS]");
    const char *er = getenv("APD_KILL_ROUNDS"), *es = getenv("APD_KILL_SEED");
    int rounds = argc > 2 ? atoi(argv[2]) : er && *er ? atoi(er) : 6;
    if (apd_test_quick()) rounds = (rounds + 1) / 2; /* every round kills both methods' runs */
    uint64_t seed = es && *es ? strtoull(es, NULL, 10) : 1;
    char bindir[4096];
    if (!realpath(argv[1], bindir)) die("BINDIR does not exist");
    snprintf(g_conv, sizeof g_conv, "%s/apd-convert", bindir);
    snprintf(g_dir, sizeof g_dir, "/tmp/apd-kill-XXXXXX");
    if (!mkdtemp(g_dir)) die("mkdtemp");
    setvbuf(stdout, NULL, _IOLBF, 0);
    make_cifar(3000);
    char out[200];
    snprintf(out, sizeof out, "%s/out.apd", g_dir);
    /* complete runs: the durations to aim the kills at, and the first previous file */
    const method *last = NULL;
    for (int i = 0; i < 2; i++) {
        double t0 = apd__now();
        int st = finish(start(&g_methods[i], 0));
        g_methods[i].full_s = apd__now() - t0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !complete_file(out, &g_methods[i])) die("a complete run failed");
        last = &g_methods[i];
        printf("%s: a complete run takes %.2f s\n", g_methods[i].name, g_methods[i].full_s);
    }
    apd__rng r;
    apd__rng_seed(&r, seed, 0);
    int kept = 0, replaced = 0, finished = 0, max_tmp = 0;
    for (int round = 0; round < rounds; round++) {
        const method *m = &g_methods[round % 2];
        size_t prev_len;
        uint8_t *prev = slurp(out, &prev_len);
        if (!prev) die("the output vanished");
        /* half the kills anywhere, half near the end (the writer's finish: final commit,
           compaction, verification, rename) */
        double u = (double)apd__rng_below(&r, 1000000) / 1e6;
        double delay = (apd__rng_below(&r, 2) ? 0.02 + 1.08 * u : 0.85 + 0.2 * u) * m->full_s;
        pid_t pid = start(m, round + 1);
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st = finish(pid);
        size_t now_len = 0;
        uint8_t *now = slurp(out, &now_len);
        const char *what;
        if (!now) {
            what = "OUTPUT GONE";
            g_fail = 1;
        } else if (now_len == prev_len && !memcmp(now, prev, now_len)) {
            what = "previous file, byte for byte";
            kept++;
        } else if (complete_file(out, m)) {
            what = "complete new file";
            replaced++;
            last = m;
        } else {
            what = "NEITHER THE PREVIOUS NOR A COMPLETE NEW FILE";
            g_fail = 1;
        }
        finished += WIFEXITED(st);
        int refused, ntmp = temporaries(&refused, NULL);
        max_tmp = ntmp > max_tmp ? ntmp : max_tmp;
        CHECK(refused, "round %d: a temporary left by the killed run is neither refused nor complete", round);
        printf("round %2d %-8s killed after %.3f s (%s): out.apd holds the %s; %d temporar%s left\n", round, m->name,
               delay, WIFSIGNALED(st) ? "SIGKILL" : "had finished", what, ntmp, ntmp == 1 ? "y" : "ies");
        free(prev);
        free(now);
    }
    /* the next run that finishes cleans up: every temporary except an empty one younger than
     * a minute, which the clean-up leaves by design (it may be a live writer's, created and
     * not yet locked: libapd/format/output.c); a run killed right after creating its
     * temporary leaves such a file */
    int st = finish(start(&g_methods[0], 99));
    int refused, fresh;
    int left = temporaries(&refused, &fresh) - fresh;
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && complete_file(out, &g_methods[0]), "the final run failed");
    CHECK(left == 0, "%d temporaries left after a complete run", left);
    printf("kill_convert: %d rounds: %d kept the previous file, %d found a complete new one (%d runs had finished); "
           "at most %d temporaries after a kill, %d after the next complete run; last method %s\n",
           rounds, kept, replaced, finished, max_tmp, left, last ? last->name : "-");
    if (!g_fail) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    }
    printf("%s\n", g_fail ? "FAIL" : "PASS");
    return g_fail;
}
