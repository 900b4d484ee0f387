/* test_loader_stack.c: the loader's decode threads work where the default thread stack is
 * small. musl gives a new thread 128 KiB; a batch decode of index-coded records keeps about
 * 80 KB on the stack, and before libapd started its threads with at least 1 MiB
 * (common/thread.c) a loader program on glibc with RLIMIT_STACK = 128 KiB (the same default
 * thread stack) died of SIGSEGV in a decode thread (decode_lockstep).
 *
 * glibc takes its default thread stack from RLIMIT_STACK at process start, so the test
 * writes an index-coded K = 64 file of the CIFAR fixture, then re-executes itself with
 * RLIMIT_STACK = 64 KiB (at 128 KiB the old code's overflow depended on the program's
 * frames; at 64 KiB this test failed every run before the fix): the child checks that a
 * thread created with default attributes really gets at most 128 KiB (64 KiB here), reads every batch with
 * 2 decode threads and 2 batches of prefetch, and prints a hash of the batches. The parent
 * reads the same batches with one thread on its own normal stack and compares. The child
 * drives the loader from a thread with an explicit 4 MiB stack, because with prefetch the
 * caller also decodes: the test is about the library's own threads. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apd/format.h"
#include "apd/loader.h"
#include "apd/quant.h"
#include "test_data.h"

#define NIMG 400
#define SMALL_STACK (64u << 10)

static char g_path[64];

static void write_coded(const char *path)
{
    FILE *f = fopen(APD_TEST_CIFAR "/train.bin", "rb");
    ck_assert_msg(f != NULL, "cannot open %s", APD_TEST_CIFAR "/train.bin");
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = APD_KIND_PALETTE;
    o.c = 3;
    o.h = 32;
    o.w = 32;
    o.k = 64;
    o.n_classes = 10;
    o.force = 1;
    o.no_sync = 1;
    o.index_coding = APD_ICODE_ON;
    apd_writer *w;
    apd_err err;
    ck_assert_msg(apd_writer_create(&w, path, &o, &err) == APD_OK, "%s", err.msg);
    uint8_t rec[3073], pal[64 * 3], idx[1024];
    uint32_t n = 0;
    for (; n < NIMG && fread(rec, 1, sizeof rec, f) == sizeof rec; n++) {
        uint32_t ku = 0;
        ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, rec + 1, 3, 32, 32, 64, n, pal, idx, &ku),
                         APD_OK);
        ck_assert_msg(apd_writer_put_palette(w, pal, ku, idx, rec[0], n) == APD_OK, "%s", apd_writer_errmsg(w));
    }
    fclose(f);
    ck_assert_uint_ge(n, 64);
    ck_assert_int_eq(apd_writer_close(w), APD_OK);
}

/* FNV-1a over every batch (float32 images, then labels) of one epoch; 0 on any error. */
static uint64_t hash_epoch(const char *path, uint32_t threads, uint32_t prefetch, uint64_t *n_images)
{
    apd_loader_opts o;
    apd_loader_opts_default(&o);
    o.batch_size = 48;
    o.seed = 3;
    o.threads = threads;
    o.prefetch = prefetch;
    apd_loader *l;
    apd_err err;
    if (apd_loader_open(&l, path, &o, &err) != APD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    size_t bb = apd_loader_batch_bytes(l);
    unsigned char *b = malloc(bb);
    int64_t lab[48];
    uint64_t h = 1469598103934665603ull;
    *n_images = 0;
    for (;;) {
        size_t n = 0;
        if (!b || apd_loader_next(l, b, bb, lab, NULL, &n) != APD_OK) {
            fprintf(stderr, "%s\n", b ? apd_loader_errmsg(l) : "out of memory");
            h = 0;
            break;
        }
        if (n == 0) break;
        size_t len = n * apd_loader_image_bytes(l);
        for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 1099511628211ull;
        for (size_t i = 0; i < n; i++) h = (h ^ (uint64_t)lab[i]) * 1099511628211ull;
        *n_images += n;
    }
    free(b);
    apd_loader_close(l);
    return h;
}

typedef struct child_job {
    const char *path;
    uint64_t hash, n;
} child_job;

static void *child_main(void *arg)
{
    child_job *j = arg;
    j->hash = hash_epoch(j->path, 2, 2, &j->n);
    return NULL;
}

/* The re-executed child: RLIMIT_STACK is SMALL_STACK here. */
static int run_child(const char *path)
{
    pthread_attr_t at;
    size_t dflt = 0;
    if (pthread_attr_init(&at) != 0 || pthread_attr_getstacksize(&at, &dflt) != 0) return 3;
    printf("default thread stack %zu\n", dflt);
    /* the precondition: at most musl's default (glibc gives RLIMIT_STACK, 64 KiB; under
     * AddressSanitizer 72 KiB); else nothing would be tested */
    if (dflt > (128u << 10)) return 4;
    child_job j = {path, 0, 0};
    pthread_t t;
    if (pthread_attr_setstacksize(&at, 4u << 20) != 0 || pthread_create(&t, &at, child_main, &j) != 0)
        return 3;
    pthread_join(t, NULL);
    printf("hash %" PRIu64 " images %" PRIu64 "\n", j.hash, j.n);
    return j.hash != 0 ? 0 : 5;
}

START_TEST(decode_threads_small_default_stack)
{
    snprintf(g_path, sizeof g_path, "/tmp/apd_stack_%ld.apd", (long)getpid());
    write_coded(g_path);
    uint64_t want_n = 0, want = hash_epoch(g_path, 1, 0, &want_n);
    ck_assert_uint_ne(want, 0);

    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_STACK, &rl);
        rl.rlim_cur = SMALL_STACK;
        if (setrlimit(RLIMIT_STACK, &rl) != 0) _exit(6);
        dup2(fd[1], 1);
        close(fd[0]);
        execl("/proc/self/exe", "test_loader_stack", "child", g_path, (char *)NULL);
        _exit(7);
    }
    close(fd[1]);
    char out[256] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof out - 1 && (r = read(fd[0], out + got, sizeof out - 1 - got)) > 0) got += (size_t)r;
    close(fd[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    printf("decode_threads_small_default_stack: child said: %s", out);
    ck_assert_msg(!WIFSIGNALED(status), "the child died of signal %d (stack overflow in a decode thread?)",
                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child exit status %d",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    uint64_t h = 0, n = 0;
    const char *p = strstr(out, "hash ");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p, "hash %" SCNu64 " images %" SCNu64, &h, &n), 2);
    ck_assert_uint_eq(n, want_n);
    ck_assert_msg(h == want, "batches differ: %" PRIu64 " vs %" PRIu64, h, want);
    printf("decode_threads_small_default_stack: %" PRIu64 " images, 2 threads + prefetch 2 under a %u KiB "
           "default thread stack equal the one-thread batches\n", n, SMALL_STACK >> 10);
    unlink(g_path);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "child") == 0) return run_child(argv[2]);
    Suite *s = suite_create("loader_stack");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, decode_threads_small_default_stack);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? 0 : 1;
}
