/* format/output.h: safe publication of an output file (output.c). Not installed.
 *
 * A writer never writes at its output path. It writes PATH.partial-XXXXXX beside it (same
 * directory, so same file system), holds flock(LOCK_EX) on that temporary for as long as it
 * lives, and only after the final commit and a verification renames it onto PATH:
 *   - without replace: atomically, only if nothing is at PATH then (renameat2
 *     RENAME_NOREPLACE, else link + unlink), so a file that appeared meanwhile is kept;
 *   - with replace: only over a regular file (rename is atomic: PATH holds the old or the new
 *     file at every moment); FIFOs, devices, sockets, directories and symbolic links are
 *     refused.
 * A writer that dies leaves at most its temporaries; their lock dies with it, and the next
 * writer for the same PATH removes them (apd__out_clean_stale).
 */
#ifndef APD_FORMAT_OUTPUT_H
#define APD_FORMAT_OUTPUT_H

#include <stddef.h>

#include "apd/status.h"

/* Before any work: APD_EEXIST if something is at path and !replace, or if it is not a regular
 * file; APD_OK if path is free or a replaceable regular file. why: the reason. */
apd_status apd__out_check_target(const char *path, int replace, char *why, size_t cap);

/* Remove temporaries of path (PATH.partial-XXXXXX and their -lock files) left by writers
 * that died: those whose flock can be taken, unless empty and younger than a minute (a
 * writer between creating and locking its temporary). Returns the number removed. */
unsigned apd__out_clean_stale(const char *path);

/* Create a new empty temporary PATH.partial-XXXXXX (mode 0644 & ~umask) and lock it.
 * *tmp (malloc'd) is its path, *fd its descriptor (keep it open: it holds the lock). */
apd_status apd__out_temp(const char *path, char **tmp, int *fd, char *why, size_t cap);

/* Move the finished temporary tmp onto path (see the top); sync: fsync the file and the
 * directory. On failure tmp is left for the caller to remove and path is untouched.
 * @return APD_OK, APD_EEXIST (something at path and !replace, or not a regular file),
 *         APD_EIO/APD_EACCES/... (rename failed). */
apd_status apd__out_publish(const char *tmp, const char *path, int replace, int sync, char *why,
                            size_t cap);

/* Remove tmp and its LMDB lock file tmp-lock (either may be missing). */
void apd__out_remove(const char *tmp);

#endif
