/* format/output.c: temporaries beside the output and their atomic publication (contract in
 * output.h).
 *
 * Why not write in place: a writer that dies (kill -9, power, disk full) would leave a
 * partial file at the path users read, and "replace" used to unlink the old file first, so
 * any failure lost it. Why rename and not copy: rename(2) within one directory is atomic, so
 * readers see the old file or the new one, never a mix. Why flock on the temporary: a
 * writer's liveness must be visible to the next writer that finds its temporary; a flock dies
 * with its process, and (unlike fcntl locks) is not dropped when LMDB closes its own
 * descriptor of the same file.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/internal.h"
#include "format/output.h"

#define PARTIAL ".partial-"
#define SUFFIX_LEN 6

/* Directory part of path ("." if none) into dir; base name pointer into path. */
static const char *split_path(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, cap, ".");
        return path;
    }
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; /* "/x" */
    if (n >= cap) n = cap - 1;
    memcpy(dir, path, n);
    dir[n] = 0;
    return slash + 1;
}

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISLNK(m)) return "a symbolic link";
    return "not a regular file";
}

apd_status apd__out_check_target(const char *path, int replace, char *why, size_t cap)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return APD_OK;
        int e = errno;
        snprintf(why, cap, "%s", strerror(e));
        return apd__status_from_errno(e);
    }
    if (!replace) {
        snprintf(why, cap, "exists (use force to overwrite)");
        return APD_EEXIST;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, cap, "is %s; only a regular file is ever replaced", kind_of(st.st_mode));
        return APD_EEXIST;
    }
    return APD_OK;
}

/* name is BASE.partial-XXXXXX or BASE.partial-XXXXXX-lock */
static int is_partial_of(const char *name, const char *base, int *is_lock)
{
    size_t bl = strlen(base), pl = strlen(PARTIAL), nl = strlen(name);
    if (nl < bl + pl + SUFFIX_LEN || strncmp(name, base, bl) || strncmp(name + bl, PARTIAL, pl)) return 0;
    size_t rest = nl - bl - pl;
    *is_lock = rest == SUFFIX_LEN + 5 && !strcmp(name + nl - 5, "-lock");
    return rest == SUFFIX_LEN || *is_lock;
}

unsigned apd__out_clean_stale(const char *path)
{
    char dir[4096], full[8192];
    const char *base = split_path(path, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) return 0;
    unsigned removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int is_lock;
        if (!is_partial_of(e->d_name, base, &is_lock) || is_lock) continue;
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) continue;
        struct stat st;
        /* locked: a live writer. Empty and recent: maybe one between creating and locking
           it (a writer locks at once and LMDB writes its first pages right after). */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && !(st.st_size == 0 && time(NULL) - st.st_mtime < 60) &&
            flock(fd, LOCK_EX | LOCK_NB) == 0) {
            apd__out_remove(full);
            removed++;
        }
        close(fd);
    }
    closedir(d);
    return removed;
}

apd_status apd__out_temp(const char *path, char **tmp, int *fd, char *why, size_t cap)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strlen(path) + strlen(PARTIAL) + SUFFIX_LEN + 1;
    char *t = malloc(n);
    if (!t) {
        snprintf(why, cap, "out of memory");
        return APD_ENOMEM;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* a name, not a secret: time, pid and address mixed (splitmix64 finaliser) */
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 16) ^ (uintptr_t)t;
    for (int attempt = 0; attempt < 100; attempt++) {
        x += 0x9E3779B97F4A7C15ull;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        snprintf(t, n, "%s" PARTIAL, path);
        for (int i = 0; i < SUFFIX_LEN; i++, z /= 62) t[n - 1 - SUFFIX_LEN + i] = alnum[z % 62];
        t[n - 1] = 0;
        int f = open(t, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (f < 0 && errno == EEXIST) continue;
        if (f < 0) {
            int e = errno;
            snprintf(why, cap, "creating the temporary file %s beside it: %s", t, strerror(e));
            free(t);
            return apd__status_from_errno(e);
        }
        if (flock(f, LOCK_EX) != 0) {
            int e = errno;
            snprintf(why, cap, "locking the temporary file %s: %s", t, strerror(e));
            close(f);
            unlink(t);
            free(t);
            return apd__status_from_errno(e);
        }
        *tmp = t;
        *fd = f;
        return APD_OK;
    }
    snprintf(why, cap, "no free temporary file name beside it");
    free(t);
    return APD_EEXIST;
}

static void sync_dir(const char *path)
{
    char dir[4096];
    split_path(path, dir, sizeof dir);
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        (void)fsync(d);
        close(d);
    }
}

/* Without replace: only if nothing is at path at that instant. */
static int publish_noreplace(const char *tmp, const char *path)
{
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return -1;
    /* the file system has no RENAME_NOREPLACE: link() also fails if path exists */
    if (link(tmp, path) == 0) {
        unlink(tmp);
        return 0;
    }
    if (errno == EEXIST || (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP)) return -1;
    /* and no hard links either (e.g. FAT): check, then rename; a file appearing between the
       two calls would be replaced, the only race left, on such file systems alone */
    struct stat st;
    if (lstat(path, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(tmp, path);
}

apd_status apd__out_publish(const char *tmp, const char *path, int replace, int sync, char *why,
                            size_t cap)
{
    if (sync) {
        int f = open(tmp, O_RDONLY | O_CLOEXEC);
        if (f < 0 || fsync(f) != 0) {
            int e = errno;
            if (f >= 0) close(f);
            snprintf(why, cap, "syncing %s: %s", tmp, strerror(e));
            return apd__status_from_errno(e);
        }
        close(f);
    }
    int rc;
    if (replace) {
        struct stat st;
        if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
            snprintf(why, cap, "is %s; only a regular file is ever replaced", kind_of(st.st_mode));
            return APD_EEXIST;
        }
        rc = rename(tmp, path);
    } else {
        rc = publish_noreplace(tmp, path);
    }
    if (rc != 0) {
        int e = errno;
        if (e == EEXIST)
            snprintf(why, cap, "exists: it appeared while this file was being written (use force to overwrite); "
                               "left as it was");
        else
            snprintf(why, cap, "moving the finished file %s into place: %s", tmp, strerror(e));
        return e == EEXIST ? APD_EEXIST : apd__status_from_errno(e);
    }
    if (sync) sync_dir(path);
    return APD_OK;
}

void apd__out_remove(const char *tmp)
{
    char lock[8200];
    unlink(tmp);
    snprintf(lock, sizeof lock, "%s-lock", tmp);
    unlink(lock);
}
