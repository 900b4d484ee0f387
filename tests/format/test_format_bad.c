/* test_format_bad.c: everything a conforming reader must reject, each with its status.
 *  - the committed corpus tests/data/bad/ (MANIFEST: file, where it fails, status), through
 *    the library and through `apd-info --verify` (exit 1, message names file and record);
 *  - every single-bit flip of a sample record (32x32, K = 64) is detected by the codec, and
 *    every bit flip of a small record inside a real file is detected by the reader;
 *  - truncated records, hostile sizes via limits, foreign LMDB;
 *  - a killed writer (child _exit()s mid-chunk, or is SIGKILLed while writing) leaves the
 *    previous file at the path untouched and at most temporaries that readers refuse as
 *    incomplete and the next writer removes; a writer poisoned by a full disk publishes
 *    nothing and removes its temporary.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <dirent.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "fmt_test_util.h"
#include "test_check.h"
#include "format/format_internal.h"
#include "format/json.h"

static apd_status status_from_name(const char *s)
{
    static const struct { const char *n; apd_status v; } t[] = {{"APD_OK", APD_OK},
        {"APD_EMAGIC", APD_EMAGIC}, {"APD_EVERSION", APD_EVERSION}, {"APD_ETRUNC", APD_ETRUNC},
        {"APD_ECORRUPT", APD_ECORRUPT}, {"APD_ECHECKSUM", APD_ECHECKSUM},
        {"APD_EFOREIGN", APD_EFOREIGN}, {"APD_EMETA", APD_EMETA}, {"APD_ELIMIT", APD_ELIMIT},
        {"APD_ENOTFOUND", APD_ENOTFOUND}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(s, t[i].n)) return t[i].v;
    ck_abort_msg("unknown status name %s in MANIFEST", s);
    return APD_OK;
}

/* Copy a corpus file to the scratch dir (LMDB wants to create PATH-lock next to it). */
static void corpus_copy(const char *name, char *out, size_t cap)
{
    char src[512], cmd[1200];
    snprintf(src, sizeof src, "%s/tests/data/bad/%s", APD_SOURCE_DIR, name);
    fmt_path(out, cap, name);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, out);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(bad_corpus)
{
    char mf[512], line[512];
    snprintf(mf, sizeof mf, "%s/tests/data/bad/MANIFEST", APD_SOURCE_DIR);
    FILE *f = fopen(mf, "r");
    ck_assert_ptr_nonnull(f);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char name[128], where[64], st[64];
        ck_assert_int_eq(sscanf(line, "%127[^\t]\t%63[^\t]\t%63[^\t\n]", name, where, st), 3);
        apd_status want = status_from_name(st);
        char path[300];
        corpus_copy(name, path, sizeof path);
        apd_reader *r = NULL;
        apd_err err;
        memset(&err, 0, sizeof err);
        apd_status s = apd_reader_open(&r, path, NULL, &err);
        if (!strcmp(where, "open")) {
            ck_assert_msg(s == want, "%s: open gave %s, want %s (%s)", name, apd_strerror(s), st, err.msg);
            ck_assert_ptr_null(r);
            ck_assert_msg(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", name, err.msg);
        } else if (!strcmp(where, "ok")) {
            ck_assert_msg(s == APD_OK, "%s: %s", name, err.msg);
            uint8_t out[18];
            ck_assert_int_eq(apd_reader_decode(r, 0, APD_LAYOUT_HWC, out, sizeof out, NULL), APD_OK);
            static const uint8_t exp[18] = {255, 0, 0, 0, 128, 0, 0, 0, 255, 0, 0, 255, 0, 128, 0, 255, 0, 0};
            ck_assert_mem_eq(out, exp, 18);
            apd_reader_close(r);
        } else {
            unsigned long long rec;
            ck_assert_int_eq(sscanf(where, "record %llu", &rec), 1);
            ck_assert_msg(s == APD_OK, "%s: open failed: %s", name, err.msg);
            uint8_t out[64];
            s = apd_reader_decode(r, rec, APD_LAYOUT_HWC, out, sizeof out, NULL);
            ck_assert_msg(s == want, "%s: decode gave %s, want %s (%s)", name, apd_strerror(s), st, apd_reader_errmsg(r));
            ck_assert_int_eq(apd_reader_verify_record(r, rec), want);
            const char *m = apd_reader_errmsg(r);
            ck_assert_msg(strstr(m, path) && strstr(m, "record 0"), "%s: message %s", name, m);
            apd_reader_close(r);
        }
        /* the CLI: exit 1 and a message naming the file (and the record) */
        char cmd[1200], out_path[400], msg[2048] = "";
        snprintf(out_path, sizeof out_path, "%s/cli.txt", fmt_tmpdir());
        snprintf(cmd, sizeof cmd, "'%s/apd-info' --verify '%s' >'%s' 2>&1", APD_BINARY_DIR, path, out_path);
        int rc = system(cmd);
        FILE *o = fopen(out_path, "r");
        ck_assert_ptr_nonnull(o);
        size_t got = fread(msg, 1, sizeof msg - 1, o);
        msg[got] = 0;
        fclose(o);
        int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
        if (!strcmp(where, "ok")) {
            ck_assert_msg(code == 0, "%s: apd-info exit %d: %s", name, code, msg);
        } else {
            ck_assert_msg(code == 1, "%s: apd-info exit %d: %s", name, code, msg);
            ck_assert_msg(strstr(msg, path) != NULL, "%s: apd-info message does not name the file: %s", name, msg);
            if (strcmp(where, "open") != 0)
                ck_assert_msg(strstr(msg, "record 0") && strstr(msg, "0000000000000000"),
                              "%s: apd-info does not name record and key: %s", name, msg);
        }
        n++;
    }
    fclose(f);
    ck_assert_int_ge(n, 20);
}
END_TEST

/* Read chunk 0's bytes straight from LMDB. */
static uint8_t *read_chunk0(const char *path, size_t *len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    ck_assert_int_eq(mdb_env_open(env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "chunks", 0, &dbi), 0);
    uint8_t key[8] = {0};
    MDB_val k = {8, key}, v;
    ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    *len = v.mv_size;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return copy;
}

static void write_sample(const char *path, uint32_t c, uint32_t h, uint32_t w, uint32_t k, uint32_t n,
                         uint64_t sid)
{
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, c, h, w, k);
    o.compress = APD_COMPRESS_OFF;
    apd_writer *wr;
    apd_err err;
    ck_assert_msg(apd_writer_create(&wr, path, &o, &err) == APD_OK, "%s", err.msg);
    apd__rng r;
    apd__rng_seed(&r, 42, 0);
    size_t npix = (size_t)h * w;
    uint8_t pal[768], *idx = malloc(npix);
    for (uint32_t i = 0; i < n; i++) {
        fmt_random_palette_image(&r, k, c, npix, pal, idx);
        ck_assert_int_eq(apd_writer_put_palette(wr, pal, k, idx, i % 10, sid), APD_OK);
    }
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    free(idx);
}

START_TEST(every_bit_flip_codec)
{
    char path[300];
    fmt_path(path, sizeof path, "flip.apd");
    write_sample(path, 3, 32, 32, 64, 1, 5);
    size_t clen;
    uint8_t *ch = read_chunk0(path, &clen);
    apd__header h = {.kind = 1, .c = 3, .bits = 6, .k = 64, .h = 32, .w = 32, .per_chunk = 1000, .n_classes = 10, .n_records = 1};
    apd__geom g;
    apd_limits lim;
    apd_limits_default(&lim);
    const char *why;
    ck_assert_int_eq(apd__geom_from_header(&h, &lim, &g, &why), APD_OK);
    ck_assert_int_eq(apd__chunk_check(ch, clen, 0, 1, &g, &why), APD_OK);
    const uint8_t *rec;
    size_t rl;
    apd__chunk_record(ch, 0, &rec, &rl);
    ck_assert_uint_eq(rl, 12 + 8 + 192 + 768);
    uint8_t *out = malloc(3072), *copy = malloc(rl);
    ck_assert_int_eq(apd__record_decode_bytes(rec, rl, &g, NULL, 0, APD_LAYOUT_HWC, out, NULL, &why), APD_OK);
    size_t detected = 0;
    for (size_t bit = 0; bit < rl * 8; bit++) {
        memcpy(copy, rec, rl);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        apd_status s = apd__record_decode_bytes(copy, rl, &g, NULL, 0, APD_LAYOUT_HWC, out, NULL, &why);
        APD_CK(s == APD_ECHECKSUM, "bit %zu: %s", bit, apd_strerror(s));
        detected++;
    }
    /* every bit of the chunk header and offset table too */
    uint8_t *cc = malloc(clen);
    for (size_t bit = 0; bit < (APD__CHUNK_HDR + 8) * 8; bit++) {
        memcpy(cc, ch, clen);
        cc[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        apd_status s = apd__chunk_check(cc, clen, 0, 1, &g, &why);
        ck_assert_msg(s != APD_OK, "chunk bit %zu not detected", bit);
        detected++;
    }
    printf("every_bit_flip_codec: %zu single-bit flips, all detected\n", detected);
    /* truncation with a fixed-up CRC: APD_ETRUNC; without: APD_ECHECKSUM */
    for (size_t cut = 1; cut < 40; cut += 3) {
        memcpy(copy, rec, rl);
        size_t nl = rl - cut;
        apd__st32(copy, apd_crc32c(0, copy + 4, nl - 4));
        ck_assert_int_eq(apd__record_decode_bytes(copy, nl, &g, NULL, 0, APD_LAYOUT_HWC, out, NULL, &why), APD_ETRUNC);
        memcpy(copy, rec, rl);
        ck_assert_int_eq(apd__record_decode_bytes(copy, nl, &g, NULL, 0, APD_LAYOUT_HWC, out, NULL, &why), APD_ECHECKSUM);
    }
    ck_assert_int_eq(apd__record_decode_bytes(rec, 11, &g, NULL, 0, APD_LAYOUT_HWC, out, NULL, &why), APD_ETRUNC);
    free(cc); free(copy); free(out); free(ch);
}
END_TEST

START_TEST(every_bit_flip_in_file)
{
    /* a 3x5 K=4 grey record (12 + 8 + 4 + 4 = 28 bytes) inside a real file */
    char path[300], flip[300];
    fmt_path(path, sizeof path, "flipfile.apd");
    fmt_path(flip, sizeof flip, "flipped.apd");
    write_sample(path, 1, 3, 5, 4, 1, 77);
    size_t clen;
    uint8_t *ch = read_chunk0(path, &clen);
    const uint8_t *rec;
    size_t rl;
    apd__chunk_record(ch, 0, &rec, &rl);
    ck_assert_uint_eq(rl, 28);
    /* find the chunk in the file */
    FILE *f = fopen(path, "rb");
    struct stat st;
    stat(path, &st);
    uint8_t *file = malloc((size_t)st.st_size);
    ck_assert_uint_eq(fread(file, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    size_t at = SIZE_MAX;
    for (size_t i = 0; i + clen <= (size_t)st.st_size; i++)
        if (!memcmp(file + i, ch, clen)) {
            ck_assert_uint_eq(at, SIZE_MAX); /* unique */
            at = i;
        }
    ck_assert_uint_ne(at, SIZE_MAX);
    size_t rec_at = at + (size_t)(rec - ch);
    int n = 0;
    for (size_t bit = 0; bit < rl * 8; bit++) {
        file[rec_at + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        FILE *o = fopen(flip, "wb");
        ck_assert_uint_eq(fwrite(file, 1, (size_t)st.st_size, o), (size_t)st.st_size);
        fclose(o);
        file[rec_at + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        apd_reader *r;
        apd_err err;
        ck_assert_int_eq(apd_reader_open(&r, flip, NULL, &err), APD_OK);
        uint8_t out[15];
        apd_status s = apd_reader_decode(r, 0, APD_LAYOUT_CHW, out, sizeof out, NULL);
        ck_assert_msg(s == APD_ECHECKSUM, "bit %zu: %s", bit, apd_strerror(s));
        ck_assert_ptr_nonnull(strstr(apd_reader_errmsg(r), "record 0"));
        ck_assert_ptr_nonnull(strstr(apd_reader_errmsg(r), flip));
        apd_reader_close(r);
        n++;
    }
    printf("every_bit_flip_in_file: %d flips of a %zu-byte record on disk, all APD_ECHECKSUM\n", n, rl);
    free(file);
    free(ch);
}
END_TEST

START_TEST(limits_and_foreign)
{
    char path[300];
    fmt_path(path, sizeof path, "lim.apd");
    write_sample(path, 3, 32, 32, 16, 3, APD_NO_SOURCE_ID);
    apd_limits lim;
    apd_limits_default(&lim);
    lim.max_dim = 16;
    apd_reader *r;
    apd_err err;
    ck_assert_int_eq(apd_reader_open(&r, path, &lim, &err), APD_ELIMIT);
    apd_limits_default(&lim);
    lim.max_records = 2;
    ck_assert_int_eq(apd_reader_open(&r, path, &lim, &err), APD_ELIMIT);
    apd_limits_default(&lim);
    lim.max_value_bytes = 1000; /* one record fits, the 3-record chunk does not */
    ck_assert_int_eq(apd_reader_open(&r, path, &lim, &err), APD_OK);
    uint8_t out[3072];
    ck_assert_int_eq(apd_reader_decode(r, 0, APD_LAYOUT_HWC, out, sizeof out, NULL), APD_ELIMIT);
    ck_assert_ptr_nonnull(strstr(apd_reader_errmsg(r), "record 0"));
    apd_reader_close(r);
    lim.max_value_bytes = 500; /* not even one record */
    ck_assert_int_eq(apd_reader_open(&r, path, &lim, &err), APD_ELIMIT);
    ck_assert_int_eq(apd_reader_open(&r, "/nonexistent/x.apd", NULL, &err), APD_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/x.apd"));
    ck_assert_int_eq(apd_reader_open(&r, fmt_tmpdir(), NULL, &err), APD_EMAGIC);
    /* foreign: an LMDB environment with named databases of another application */
    char fp[300];
    fmt_path(fp, sizeof fp, "foreign.mdb");
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    ck_assert_int_eq(mdb_env_open(env, fp, MDB_NOSUBDIR, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "images", MDB_CREATE, &dbi), 0);
    MDB_val k = {3, "key"}, v = {5, "value"};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    ck_assert_int_eq(apd_reader_open(&r, fp, NULL, &err), APD_EFOREIGN);
    ck_assert_ptr_nonnull(strstr(err.msg, fp));
}
END_TEST

/* Child: write records forever-ish, committing every `every`; parent kills it. After the
 * first commit it writes one byte to ready_fd (if >= 0): until then the file may not exist
 * yet (force unlinks the old one first), and on a loaded machine or under ASan that takes
 * longer than the parent's kill delay. */
static void child_writer(const char *path, uint32_t total, uint32_t every, int exit_early, int ready_fd)
{
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 32, 32, 64);
    o.no_sync = 1;
    o.records_per_chunk = 100; /* many chunks */
    apd_writer *wr;
    apd_err err;
    if (apd_writer_create(&wr, path, &o, &err) != APD_OK) _exit(3);
    apd__rng r;
    apd__rng_seed(&r, 1, 0);
    uint8_t pal[192], idx[1024];
    for (uint32_t i = 0; i < total; i++) {
        fmt_random_palette_image(&r, 64, 3, 1024, pal, idx);
        if (apd_writer_put_palette(wr, pal, 64, idx, i % 10, i) != APD_OK) _exit(4);
        if ((i + 1) % every == 0 && apd_writer_commit(wr) != APD_OK) _exit(5);
        if (ready_fd >= 0 && i + 1 == every) {
            if (write(ready_fd, "r", 1) != 1) _exit(7);
            close(ready_fd);
        }
        if (exit_early && i + 1 == (uint32_t)exit_early) _exit(0); /* no close: uncommitted tail lost */
    }
    _exit(apd_writer_close(wr) == APD_OK ? 0 : 6);
}

static uint64_t verify_all(const char *path)
{
    apd_reader *r;
    apd_err err;
    ck_assert_msg(apd_reader_open(&r, path, NULL, &err) == APD_OK, "%s", err.msg);
    uint64_t n = apd_reader_count(r), sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        ck_assert_msg(apd_reader_verify_record(r, i) == APD_OK, "%s", apd_reader_errmsg(r));
        uint64_t sid;
        ck_assert_int_eq(apd_reader_source_id(r, i, &sid), APD_OK);
        ck_assert_uint_eq(sid, i);
    }
    for (uint32_t c = 0; c < 10; c++) sum += apd_reader_class_count(r, c);
    ck_assert_uint_eq(sum, n);
    apd_reader_close(r);
    return n;
}

/* Temporaries PATH.partial-XXXXXX of the scratch file `name` (not their -lock files): count,
 * and each one's path in out[0..max) */
static int partials(const char *name, char out[][300], int max)
{
    DIR *d = opendir(fmt_tmpdir());
    ck_assert_ptr_nonnull(d);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.40s.partial-", name);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) || strstr(e->d_name, "-lock")) continue;
        if (n < max) snprintf(out[n], sizeof out[n], "%s/%.200s", fmt_tmpdir(), e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void run_child_writer(const char *path, uint32_t total, uint32_t every)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) child_writer(path, total, every, 0, -1);
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Every temporary left is refused by the reader (incomplete), by apd-info --verify too. */
static void partials_refused(const char *name)
{
    char left[8][300];
    int n = partials(name, left, 8);
    ck_assert_int_le(n, 8);
    for (int i = 0; i < n; i++) {
        apd_reader *r;
        apd_err err;
        apd_status s = apd_reader_open(&r, left[i], NULL, &err);
        ck_assert_msg(s != APD_OK, "%s: a killed writer's temporary opened", left[i]);
        ck_assert_ptr_nonnull(strstr(err.msg, left[i]));
        char cmd[4000];
        snprintf(cmd, sizeof cmd, "'%s/apd-info' --verify '%s' >/dev/null 2>&1", APD_BINARY_DIR, left[i]);
        ck_assert_int_eq(WEXITSTATUS(system(cmd)), 1);
    }
}

START_TEST(killed_writer)
{
    char path[300];
    fmt_path(path, sizeof path, "killed.apd");
    run_child_writer(path, 60, 1000); /* the previous, complete file: 60 records */
    ck_assert_uint_eq(verify_all(path), 60);
    /* 1: the child exits after 1030 puts with commits every 250: nothing is published; its
       temporary holds 1000 committed records marked incomplete */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) child_writer(path, 5000, 250, 1030, -1);
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_uint_eq(verify_all(path), 60);
    char left[8][300];
    ck_assert_int_eq(partials("killed.apd", left, 8), 1);
    apd_reader *r;
    apd_err err;
    ck_assert_int_eq(apd_reader_open(&r, left[0], NULL, &err), APD_EMETA);
    ck_assert_msg(strstr(err.msg, "incomplete") && strstr(err.msg, left[0]), "%s", err.msg);
    partials_refused("killed.apd");
    /* 2: SIGKILL at a random moment while writing (several times), counted from the first
     * commit */
    for (int round = 0; round < 4; round++) {
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(ready[0]);
            child_writer(path, 200000, 37, 0, ready[1]);
        }
        close(ready[1]);
        char b;
        ck_assert_msg(read(ready[0], &b, 1) == 1, "the writer died before its first commit");
        close(ready[0]);
        struct timespec ts = {0, (40 + 35 * round) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        ck_assert_uint_eq(verify_all(path), 60); /* the previous file, untouched */
        int n = partials("killed.apd", left, 8);
        printf("killed_writer: SIGKILL after %ld ms: previous file intact, %d temporar%s left\n",
               (long)(ts.tv_nsec / 1000000), n, n == 1 ? "y" : "ies");
        ck_assert_int_le(n, 2); /* its own, and one of an earlier round if killed before cleaning */
        partials_refused("killed.apd");
        char cmd[800];
        snprintf(cmd, sizeof cmd, "'%s/apd-info' --verify '%s' >/dev/null", APD_BINARY_DIR, path);
        ck_assert_int_eq(system(cmd), 0);
    }
    /* 3: the next writer that finishes removes the temporaries of the dead ones */
    run_child_writer(path, 80, 1000);
    ck_assert_uint_eq(verify_all(path), 80);
    ck_assert_int_eq(partials("killed.apd", left, 8), 0);
}
END_TEST

/* Disk full (simulated with RLIMIT_FSIZE in a child): the failing commit poisons the writer
 * (later calls: APD_EBADSTATE), close publishes nothing and removes the temporary, and the
 * previous file at the path is untouched. */
START_TEST(disk_full_poisons_writer)
{
    char path[300];
    fmt_path(path, sizeof path, "full.apd");
    run_child_writer(path, 40, 1000);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {256 * 1024, 256 * 1024};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 32, 32, 64);
        o.records_per_chunk = 50;
        o.compress = APD_COMPRESS_OFF;
        apd_writer *wr;
        apd_err err;
        if (apd_writer_create(&wr, path, &o, &err) != APD_OK) _exit(11);
        apd__rng r;
        apd__rng_seed(&r, 3, 0);
        uint8_t pal[192], idx[1024];
        apd_status s = APD_OK;
        uint32_t i;
        for (i = 0; i < 10000 && s == APD_OK; i++) {
            fmt_random_palette_image(&r, 64, 3, 1024, pal, idx);
            s = apd_writer_put_palette(wr, pal, 64, idx, i % 10, i);
        }
        if (s != APD_EIO) _exit(12);
        if (!strstr(apd_writer_errmsg(wr), path)) _exit(13);
        if (apd_writer_put_palette(wr, pal, 64, idx, 0, 0) != APD_EBADSTATE) _exit(14);
        if (apd_writer_commit(wr) != APD_EBADSTATE) _exit(15);
        if (apd_writer_finish(wr, &err) != APD_EBADSTATE) _exit(16);
        if (!strstr(err.msg, path)) _exit(17);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exit %d", WEXITSTATUS(st));
    ck_assert_uint_eq(verify_all(path), 40);
    char left[2][300];
    ck_assert_int_eq(partials("full.apd", left, 2), 0);
    printf("disk_full_poisons_writer: writer poisoned after EFBIG, previous file intact, no temporary left\n");
}
END_TEST

/* Run apd-info with args; returns the exit code, output (stdout+stderr) in buf. */
static int run_info(const char *args, char *buf, size_t cap)
{
    char cmd[1500], out_path[400];
    snprintf(out_path, sizeof out_path, "%s/info.txt", fmt_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s/apd-info' %s >'%s' 2>&1", APD_BINARY_DIR, args, out_path);
    int rc = system(cmd);
    FILE *o = fopen(out_path, "r");
    ck_assert_ptr_nonnull(o);
    size_t got = fread(buf, 1, cap - 1, o);
    buf[got] = 0;
    fclose(o);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(apd_info_cli)
{
    char path[300], args[700];
    fmt_path(path, sizeof path, "info.apd");
    write_sample(path, 3, 8, 8, 4, 25, 9);
    static char buf[1 << 16];
    snprintf(args, sizeof args, "'%s'", path);
    ck_assert_int_eq(run_info(args, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "K = 4 colours, 2-bit indices"));
    ck_assert_ptr_nonnull(strstr(buf, "records:     25"));
    ck_assert_ptr_nonnull(strstr(buf, "bytes on disk"));
    ck_assert_ptr_nonnull(strstr(buf, "payload"));
    snprintf(args, sizeof args, "--json '%s'", path);
    ck_assert_int_eq(run_info(args, buf, sizeof buf), 0);
    apd__json d;
    ck_assert_int_eq(apd__json_parse(&d, buf, strlen(buf)), APD_OK);
    int meta = apd__json_get(&d, 0, "meta"), st = apd__json_get(&d, 0, "storage");
    uint64_t n = 0, pay = 0;
    ck_assert(apd__json_u64(&d, apd__json_get(&d, meta, "n_records"), &n) && n == 25);
    ck_assert(apd__json_u64(&d, apd__json_get(&d, st, "payload_bytes"), &pay));
    ck_assert_uint_eq(pay, 25 * (4 * 3 + 16)); /* palette 4x3 + 64 indices at 2 bits */
    apd__json_free(&d);
    snprintf(args, sizeof args, "--record 3 '%s'", path);
    ck_assert_int_eq(run_info(args, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "record 3: label 3"));
    ck_assert_ptr_nonnull(strstr(buf, "source id 9"));
    ck_assert_ptr_nonnull(strstr(buf, "palette of 4 entries"));
    snprintf(args, sizeof args, "--record 3 --json '%s'", path);
    ck_assert_int_eq(run_info(args, buf, sizeof buf), 0);
    ck_assert_int_eq(apd__json_parse(&d, buf, strlen(buf)), APD_OK);
    int h = apd__json_get(&d, 0, "histogram");
    ck_assert_int_ge(h, 0);
    ck_assert_uint_eq(d.nodes[h].count, 4);
    apd__json_free(&d);
    /* Past the end, saturated or beyond 64 bits: the number as given, the file and the range. */
    const char *past[] = {"25", "18446744073709551615", "99999999999999999999"};
    for (int i = 0; i < 3; i++) {
        char want[600];
        snprintf(args, sizeof args, "--record %s '%s'", past[i], path);
        ck_assert_int_eq(run_info(args, buf, sizeof buf), 1);
        snprintf(want, sizeof want, "%s: --record %s is out of range: the file has 25 records (0..24)", path, past[i]);
        ck_assert_msg(strstr(buf, want), "%s", buf);
    }
    snprintf(args, sizeof args, "--verify '%s'", path);
    ck_assert_int_eq(run_info(args, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "OK, 25 records verified"));
    ck_assert_int_eq(run_info("--help", buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "usage: apd-info"));
    ck_assert_int_eq(run_info("--version", buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "apd-info"));
    ck_assert_int_eq(run_info("", buf, sizeof buf), 2);
    ck_assert_int_eq(run_info("--bogus x.apd", buf, sizeof buf), 2);
    ck_assert_int_eq(run_info("--record -1 x.apd", buf, sizeof buf), 2);
    ck_assert_ptr_nonnull(strstr(buf, "--record needs a record index >= 0, not '-1'"));
    ck_assert_int_eq(run_info("/nonexistent.apd", buf, sizeof buf), 1);
    ck_assert_ptr_nonnull(strstr(buf, "/nonexistent.apd"));
    ck_assert_ptr_nonnull(strstr(buf, "no such file"));
}
END_TEST

int main(void)
{
    fmt_tmpdir();
    Suite *s = suite_create("format_bad");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, bad_corpus);
    tcase_add_test(tc, every_bit_flip_codec);
    tcase_add_test(tc, every_bit_flip_in_file);
    tcase_add_test(tc, limits_and_foreign);
    tcase_add_test(tc, killed_writer);
    tcase_add_test(tc, disk_full_poisons_writer);
    tcase_add_test(tc, apd_info_cli);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    fmt_rmtmp();
    return nf ? 1 : 0;
}
