/* test_container.c: the file as a whole, where a damaged disk, a concurrent process or a
 * killed writer meets it.
 *  - truncated files and damaged LMDB pages are refused at open by the reader and by
 *    apd-info, apd-info --verify and apd-export (exit 1, the file named), never a signal;
 *  - output safety: without force nothing at the path is ever replaced, even a file that
 *    appears while writing; with force only a regular file is; a failing or abandoned
 *    writer leaves the previous file byte for byte; temporaries of dead writers are removed
 *    by the next writer, those of live ones are not;
 *  - a reader that kept the previous file open (its LMDB lock table names another
 *    transaction) does not make the replaced file unreadable;
 *  - apd-convert: an output that appears during the run is kept, --force with any failure
 *    keeps the previous file, special files are refused (before any work).
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <lmdb.h>

#include "fmt_test_util.h"
#include "format/format_internal.h"

/* Write n random 16x16 K=16 records (label i % 10, source id i) to path. */
static apd_status write_n(const char *path, uint32_t n, int force, apd_err *err)
{
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 16, 16, 16);
    o.force = force;
    o.records_per_chunk = 40;
    apd_writer *w;
    apd_status s = apd_writer_create(&w, path, &o, err);
    if (s) return s;
    apd__rng r;
    apd__rng_seed(&r, n, 5);
    uint8_t pal[48], idx[256];
    for (uint32_t i = 0; i < n; i++) {
        fmt_random_palette_image(&r, 16, 3, 256, pal, idx);
        ck_assert_int_eq(apd_writer_put_palette(w, pal, 16, idx, i % 10, i), APD_OK);
    }
    return apd_writer_finish(w, err);
}

static uint64_t count_of(const char *path)
{
    apd_reader *r;
    apd_err err;
    ck_assert_msg(apd_reader_open(&r, path, NULL, &err) == APD_OK, "%s", err.msg);
    uint64_t n = apd_reader_count(r);
    for (uint64_t i = 0; i < n; i++) ck_assert_int_eq(apd_reader_verify_record(r, i), APD_OK);
    apd_reader_close(r);
    return n;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len ? *len : 1);
    ck_assert_uint_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void put_bytes(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static int n_partials(const char *name)
{
    DIR *d = opendir(fmt_tmpdir());
    ck_assert_ptr_nonnull(d);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.40s.partial-", name);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

/* Run a shell command; exit code, output (stdout+stderr) in out. */
static int sh(const char *cmd, char *out, size_t cap)
{
    char full[3000], outp[400];
    snprintf(outp, sizeof outp, "%s/sh.txt", fmt_tmpdir());
    snprintf(full, sizeof full, "( %s ) >'%s' 2>&1", cmd, outp);
    int rc = system(full);
    FILE *f = fopen(outp, "r");
    ck_assert_ptr_nonnull(f);
    size_t got = fread(out, 1, cap - 1, f);
    out[got] = 0;
    fclose(f);
    ck_assert_msg(WIFEXITED(rc), "killed by a signal: %s", cmd);
    return WEXITSTATUS(rc);
}

/* The reader and the tools on a damaged file: status want, exit 1 naming the file. */
static void refused_everywhere(const char *path, apd_status want, const char *what)
{
    apd_reader *r;
    apd_err err;
    apd_status s = apd_reader_open(&r, path, NULL, &err);
    ck_assert_msg(s == want, "%s: open gave %s (%s), want %s", what, apd_strerror(s), err.msg, apd_strerror(want));
    ck_assert_msg(strstr(err.msg, path) != NULL, "%s: %s", what, err.msg);
    for (int t = 0; t < 3; t++) {
        char cmd[1500], tail[1200], out[4096];
        if (t == 0) snprintf(tail, sizeof tail, "apd-info '%s'", path);
        else if (t == 1) snprintf(tail, sizeof tail, "apd-info --verify '%s'", path);
        else snprintf(tail, sizeof tail, "apd-export '%s' --png '%s.png.d'", path, path);
        snprintf(cmd, sizeof cmd, "'%s'/%s", APD_BINARY_DIR, tail);
        int code = sh(cmd, out, sizeof out);
        ck_assert_msg(code == 1 && strstr(out, path), "%s: %s -> exit %d: %s", what, tail, code, out);
    }
    printf("  %-34s %s\n", what, err.msg + strlen(path) + 2);
}

START_TEST(truncated_or_damaged_pages)
{
    char good[300], bad[300];
    fmt_path(good, sizeof good, "good.apd");
    fmt_path(bad, sizeof bad, "bad.apd");
    apd_err err;
    ck_assert_int_eq(write_n(good, 600, 0, &err), APD_OK);
    size_t size;
    uint8_t *b = slurp(good, &size);
    size_t psize = apd__ld32(b + 40), pages = size / psize;
    ck_assert_uint_ge(pages, 8);
    printf("truncated_or_damaged_pages: %zu bytes, %zu pages\n", size, pages);
    size_t cuts[] = {37, psize, size / 2, size - 2 * psize, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        put_bytes(bad, b, size - cuts[i]);
        char what[80];
        snprintf(what, sizeof what, "truncated by %zu bytes", cuts[i]);
        refused_everywhere(bad, cuts[i] == size - 1 ? APD_EMAGIC : APD_ETRUNC, what);
    }
    /* a data page copied over each of the last pages (the B-tree pages of the last commit),
       then zeroed */
    for (size_t tgt = pages - 3; tgt < pages; tgt++) {
        uint8_t *c = malloc(size);
        memcpy(c, b, size);
        memcpy(c + tgt * psize, b + 4 * psize, psize);
        put_bytes(bad, c, size);
        char what[80];
        snprintf(what, sizeof what, "page 4 copied over page %zu", tgt);
        refused_everywhere(bad, APD_ECORRUPT, what);
        memset(c + tgt * psize, 0, psize);
        put_bytes(bad, c, size);
        snprintf(what, sizeof what, "page %zu zeroed", tgt);
        refused_everywhere(bad, APD_ECORRUPT, what);
        free(c);
    }
    free(b);
}
END_TEST

START_TEST(never_replaces_without_force)
{
    char path[300];
    fmt_path(path, sizeof path, "keep.apd");
    apd_err err;
    ck_assert_int_eq(write_n(path, 30, 0, &err), APD_OK);
    size_t n0;
    uint8_t *before = slurp(path, &n0);
    /* exists at create */
    ck_assert_int_eq(write_n(path, 50, 0, &err), APD_EEXIST);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    /* appears while writing: the writer fails at publication, the newcomer stays */
    char fresh[300];
    fmt_path(fresh, sizeof fresh, "fresh.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 16, 16, 16);
    o.force = 0;
    apd_writer *w;
    ck_assert_int_eq(apd_writer_create(&w, fresh, &o, &err), APD_OK);
    uint8_t pal[48] = {0}, idx[256] = {0};
    ck_assert_int_eq(apd_writer_put_palette(w, pal, 16, idx, 3, 0), APD_OK);
    put_bytes(fresh, before, n0); /* someone else's complete file */
    ck_assert_int_eq(apd_writer_finish(w, &err), APD_EEXIST);
    ck_assert_msg(strstr(err.msg, fresh) && strstr(err.msg, "appeared"), "%s", err.msg);
    size_t n1;
    uint8_t *after = slurp(fresh, &n1);
    ck_assert(n1 == n0 && !memcmp(before, after, n0));
    ck_assert_uint_eq(count_of(fresh), 30);
    ck_assert_int_eq(n_partials("fresh.apd"), 0);
    printf("never_replaces_without_force: %s\n", err.msg);
    free(after);
    free(before);
}
END_TEST

START_TEST(force_replaces_only_regular_files)
{
    char path[300], lock[320];
    fmt_path(path, sizeof path, "rep.apd");
    snprintf(lock, sizeof lock, "%s-lock", path);
    apd_err err;
    ck_assert_int_eq(write_n(path, 30, 0, &err), APD_OK);
    put_bytes(lock, (const uint8_t *)"stale", 5);
    ck_assert_int_eq(write_n(path, 70, 1, &err), APD_OK);
    ck_assert_int_eq(access(lock, F_OK), -1); /* the replaced file's lock table is gone */
    ck_assert_uint_eq(count_of(path), 70);
    /* special files: refused at create, and at publication if one appears meanwhile */
    char fifo[300], link[300];
    fmt_path(fifo, sizeof fifo, "fifo.apd");
    fmt_path(link, sizeof link, "link.apd");
    ck_assert_int_eq(mkfifo(fifo, 0644), 0);
    ck_assert_int_eq(write_n(fifo, 10, 1, &err), APD_EEXIST);
    ck_assert_msg(strstr(err.msg, "FIFO") && strstr(err.msg, fifo), "%s", err.msg);
    printf("force_replaces_only_regular_files: %s\n", err.msg);
    ck_assert_int_eq(symlink(path, link), 0);
    ck_assert_int_eq(write_n(link, 10, 1, &err), APD_EEXIST);
    ck_assert_ptr_nonnull(strstr(err.msg, "symbolic link"));
    char late[300];
    fmt_path(late, sizeof late, "late.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 16, 16, 16);
    apd_writer *w;
    ck_assert_int_eq(apd_writer_create(&w, late, &o, &err), APD_OK);
    uint8_t pal[48] = {0}, idx[256] = {0};
    ck_assert_int_eq(apd_writer_put_palette(w, pal, 16, idx, 3, 0), APD_OK);
    ck_assert_int_eq(mkfifo(late, 0644), 0);
    ck_assert_int_eq(apd_writer_finish(w, &err), APD_EEXIST);
    struct stat st;
    ck_assert_int_eq(lstat(late, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    ck_assert_int_eq(lstat(fifo, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(n_partials("late.apd") + n_partials("fifo.apd") + n_partials("link.apd"), 0);
}
END_TEST

START_TEST(failure_keeps_previous_file)
{
    char path[300];
    fmt_path(path, sizeof path, "prev.apd");
    apd_err err;
    ck_assert_int_eq(write_n(path, 30, 0, &err), APD_OK);
    size_t n0, n1;
    uint8_t *before = slurp(path, &n0);
    /* the producer fails after several commits and abandons the file */
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 16, 16, 16);
    o.records_per_chunk = 4;
    apd_writer *w;
    ck_assert_int_eq(apd_writer_create(&w, path, &o, &err), APD_OK);
    uint8_t pal[48] = {0}, idx[256] = {0};
    for (int i = 0; i < 25; i++) ck_assert_int_eq(apd_writer_put_palette(w, pal, 16, idx, 3, 0), APD_OK);
    ck_assert_int_eq(n_partials("prev.apd"), 1);
    ck_assert_int_eq(apd_writer_set_meta(w, "std", "[1e300, 0.2, 0.2]"), APD_EINVAL);
    ck_assert_int_eq(apd_writer_put_palette(w, pal, 16, idx, 11, 0), APD_EINVAL); /* label >= 10 */
    apd_writer_discard(w);
    uint8_t *after = slurp(path, &n1);
    ck_assert(n1 == n0 && !memcmp(before, after, n0));
    ck_assert_int_eq(n_partials("prev.apd"), 0);
    free(before);
    free(after);
}
END_TEST

START_TEST(stale_temporaries_removed)
{
    char path[300], dead[400], live[400];
    fmt_path(path, sizeof path, "st.apd");
    snprintf(dead, sizeof dead, "%s.partial-DEAD01", path);
    snprintf(live, sizeof live, "%s.partial-LIVE01", path);
    put_bytes(dead, (const uint8_t *)"a dead writer's pages", 21);
    put_bytes(live, (const uint8_t *)"a live writer's pages", 21);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* a live writer: holds its temporary's flock until the pipe closes */
        int fd = open(live, O_RDONLY);
        if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(2);
        char c;
        close(fds[1]);
        if (read(fds[0], &c, 1) < 0) _exit(3);
        _exit(0);
    }
    close(fds[0]);
    for (int i = 0; i < 100; i++) { /* wait until the child holds the lock */
        int fd = open(live, O_RDONLY);
        int held = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0;
        if (fd >= 0) close(fd);
        if (held) break;
        usleep(10000);
    }
    apd_err err;
    ck_assert_int_eq(write_n(path, 10, 0, &err), APD_OK);
    ck_assert_int_eq(access(dead, F_OK), -1);
    ck_assert_int_eq(access(live, F_OK), 0);
    close(fds[1]);
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(write_n(path, 10, 1, &err), APD_OK); /* now dead too */
    ck_assert_int_eq(access(live, F_OK), -1);
}
END_TEST

/* A process of another program keeps the previous file open through LMDB's lock table while
 * a new file is renamed over it (libapd's readers use no lock table when there is no
 * PATH-lock, and its writer removes PATH-lock after a replacement; others do neither): the
 * table at PATH-lock is then the previous file's, held by that process, so LMDB hands new
 * readers its transaction id. With an even one LMDB reads meta page 0, which a compacted file leaves
 * empty: the new, valid file read as "not an .apd". New readers must read the new file. */
START_TEST(stale_lock_table)
{
    char path[300], next[300];
    fmt_path(path, sizeof path, "lock.apd");
    fmt_path(next, sizeof next, "next.apd");
    apd_err err;
    int even = 0;
    for (uint32_t n = 10; n < 20 && !even; n++) { /* a previous file whose last transaction is even */
        apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 16, 16, 16);
        o.no_compact = 1;
        o.records_per_chunk = 4;
        apd_writer *w;
        ck_assert_int_eq(apd_writer_create(&w, path, &o, &err), APD_OK);
        uint8_t pal[48] = {0}, idx[256] = {0};
        for (uint32_t i = 0; i < n; i++) ck_assert_int_eq(apd_writer_put_palette(w, pal, 16, idx, 3, 0), APD_OK);
        if (n % 3 == 0) ck_assert_int_eq(apd_writer_commit(w), APD_OK);
        ck_assert_int_eq(apd_writer_finish(w, &err), APD_OK);
        size_t len;
        uint8_t *b = slurp(path, &len);
        uint64_t t0 = apd__ld64(b + 144), t1 = apd__ld64(b + apd__ld32(b + 40) + 144);
        free(b);
        even = ((t0 > t1 ? t0 : t1) & 1) == 0;
    }
    ck_assert(even);
    ck_assert_int_eq(write_n(next, 64, 0, &err), APD_OK); /* compacted: its data on meta page 1 */
    int go[2], ready[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* another program's reader: opens the previous file with LMDB's lock table */
        MDB_env *env;
        MDB_txn *txn;
        if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) ||
            mdb_env_open(env, path, MDB_RDONLY | MDB_NOSUBDIR, 0644) || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
            _exit(2);
        char c = 'r';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) < 0) _exit(3);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        _exit(0);
    }
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    char lock[320];
    snprintf(lock, sizeof lock, "%s-lock", path);
    ck_assert_int_eq(access(lock, F_OK), 0);
    ck_assert_int_eq(rename(next, path), 0); /* replaced behind libapd's back */
    ck_assert_uint_eq(count_of(path), 64);
    char info[1200], out[1024];
    snprintf(info, sizeof info, "'%s/apd-info' --verify '%s'", APD_BINARY_DIR, path);
    ck_assert_msg(sh(info, out, sizeof out) == 0, "%s", out);
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* A synthetic CIFAR-10 binary file of n records (label i % 10, seeded pixels). */
static void make_cifar(const char *path, int n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    apd__rng r;
    apd__rng_seed(&r, 11, 0);
    uint8_t rec[3073];
    for (int i = 0; i < n; i++) {
        rec[0] = (uint8_t)(i % 10);
        for (int j = 1; j < 3073; j++) rec[j] = (uint8_t)apd__rng_below(&r, 256);
        ck_assert_uint_eq(fwrite(rec, 1, sizeof rec, f), sizeof rec);
    }
    fclose(f);
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    uint8_t *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* apd-convert: whatever fails, the previous output stays; nothing but a regular file is
 * replaced; an output that appears during the run is kept. */
START_TEST(convert_keeps_outputs)
{
    const char *d = fmt_tmpdir();
    char cmd[2500], out[4096], conv[700];
    snprintf(conv, sizeof conv, "cd '%s' && '%s/apd-convert' --input cifar10:train.bin -t 1", d, APD_BINARY_DIR);
    char train[300], keep[300], copy[300];
    fmt_path(train, sizeof train, "train.bin");
    fmt_path(keep, sizeof keep, "keep.apd");
    fmt_path(copy, sizeof copy, "keep.copy");
    make_cifar(train, 200);
    snprintf(cmd, sizeof cmd, "%s --method quantize --colors 16 -o keep.apd --quiet && cp keep.apd keep.copy", conv);
    ck_assert_msg(sh(cmd, out, sizeof out) == 0, "%s", out);
    /* failures before and after the writer exists, with --force */
    const char *fails[] = {"--method dm --ipc 1 --iters 2 --resume no-such.ckpt", "--method random --ipc 500"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "%s %s -o keep.apd --force", conv, fails[i]);
        ck_assert_int_eq(sh(cmd, out, sizeof out), 1);
        ck_assert_msg(same_file(keep, copy), "--force %s changed or removed the previous output", fails[i]);
        ck_assert_int_eq(n_partials("keep.apd"), 0);
    }
    /* a FIFO at -o with --force: refused before any work, left as it is */
    snprintf(cmd, sizeof cmd, "cd '%s' && mkfifo out.fifo && %s --method quantize --colors 4 -o out.fifo --force; "
             "echo \"exit $?\"; test -p out.fifo && echo still-a-fifo", d, conv);
    (void)sh(cmd, out, sizeof out);
    ck_assert_msg(strstr(out, "exit 1") && strstr(out, "still-a-fifo") && strstr(out, "not a regular file"), "%s", out);
    /* an output that appears while the import waits on a FIFO (gzipped IDX labels): kept, exit 1 */
    static uint8_t idx_img[16 + 20 * 28 * 28] = {0, 0, 8, 3, 0, 0, 0, 20, 0, 0, 0, 28, 0, 0, 0, 28};
    uint8_t idx_lab[8 + 20] = {0, 0, 8, 1, 0, 0, 0, 20};
    for (int i = 0; i < 20 * 28 * 28; i++) idx_img[16 + i] = (uint8_t)(i * 7);
    for (int i = 0; i < 20; i++) idx_lab[8 + i] = (uint8_t)(i % 10);
    char ip[300], lp[300];
    fmt_path(ip, sizeof ip, "img.idx");
    fmt_path(lp, sizeof lp, "lab.idx");
    put_bytes(ip, idx_img, sizeof idx_img);
    put_bytes(lp, idx_lab, sizeof idx_lab);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && gzip -kf lab.idx && rm -f late.apd lab.fifo && mkfifo lab.fifo && "
             "( timeout 120 '%s/apd-convert' --input idx:img.idx,lab.fifo --method quantize --colors 4 -o late.apd & "
             "p=$!; sleep 0.3; cp keep.apd late.apd; timeout 60 cat lab.idx.gz > lab.fifo; wait $p; echo \"exit $?\" )",
             d, APD_BINARY_DIR);
    (void)sh(cmd, out, sizeof out);
    char late[300];
    fmt_path(late, sizeof late, "late.apd");
    ck_assert_msg(strstr(out, "exit 1") && strstr(out, "exists"), "%s", out);
    ck_assert_msg(same_file(late, copy), "the output that appeared during the run was changed or removed");
    ck_assert_int_eq(n_partials("late.apd"), 0);
    printf("convert_keeps_outputs: %s", out);
}
END_TEST

/* Every read path checks the padding bits after the last index (the raw-record path used by
 * apd-info --record and apd-export --png used to skip them). */
START_TEST(record_padding_every_path)
{
    char src[512], path[300], cmd[1500], out[2048];
    snprintf(src, sizeof src, "%s/tests/data/bad/record_padding.apd", APD_SOURCE_DIR);
    fmt_path(path, sizeof path, "padding.apd");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, path);
    ck_assert_int_eq(system(cmd), 0);
    apd_reader *r;
    apd_err err;
    ck_assert_int_eq(apd_reader_open(&r, path, NULL, &err), APD_OK);
    uint8_t pal[768], idx[6], img[18];
    uint32_t k;
    ck_assert_int_eq(apd_reader_record(r, 0, pal, &k, idx, NULL), APD_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(apd_reader_errmsg(r), "padding"));
    ck_assert_int_eq(apd_reader_decode(r, 0, APD_LAYOUT_HWC, img, sizeof img, NULL), APD_ECORRUPT);
    ck_assert_int_eq(apd_reader_verify_record(r, 0), APD_ECORRUPT);
    apd_reader_close(r);
    snprintf(cmd, sizeof cmd, "'%s/apd-info' --record 0 '%s'", APD_BINARY_DIR, path);
    ck_assert_int_eq(sh(cmd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "padding"), "%s", out);
}
END_TEST

Suite *container_suite(void);
Suite *container_suite(void)
{
    Suite *s = suite_create("container");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, truncated_or_damaged_pages);
    tcase_add_test(tc, never_replaces_without_force);
    tcase_add_test(tc, force_replaces_only_regular_files);
    tcase_add_test(tc, failure_keeps_previous_file);
    tcase_add_test(tc, stale_temporaries_removed);
    tcase_add_test(tc, stale_lock_table);
    tcase_add_test(tc, convert_keeps_outputs);
    tcase_add_test(tc, record_padding_every_path);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(container_suite());
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    fmt_rmtmp();
    return nf ? 1 : 0;
}
