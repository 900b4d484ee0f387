/* apd/status.h: the one status enum of libapd, its strings, and the error-detail struct.
 *
 * Every fallible call returns apd_status; results go through out-parameters. Values are
 * pinned and append-only: a released value never changes meaning. Gaps are reserved per
 * group (generic 1-19, I/O 20-39, format 40-59, import 60-79, numeric/state 80-99).
 *
 * Functions without a handle take an optional `apd_err *err` (may be NULL) that receives a
 * human-readable message naming the file, record and reason. Handles keep their own last
 * message (see each header).
 *
 *     apd_err err;
 *     apd_status s = apd_import(&ds, "cifar10:/data/cifar", "train", NULL, &err);
 *     if (s != APD_OK) fprintf(stderr, "error: %s (%s)\n", err.msg, apd_strerror(s));
 *
 * Thread safety: apd_strerror is safe from any thread; an apd_err belongs to its caller.
 */
#ifndef APD_STATUS_H
#define APD_STATUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(APD_BUILDING_LIBRARY)
#define APD_API __attribute__((visibility("default")))
#else
#define APD_API
#endif
#define APD_NODISCARD __attribute__((warn_unused_result))

typedef enum apd_status {
    APD_OK = 0,
    /* generic */
    APD_EINVAL = 1,        /* invalid argument (NULL where not allowed, bad option value) */
    APD_ENOMEM = 2,        /* allocation failed */
    APD_EOVERFLOW = 3,     /* size arithmetic would overflow */
    APD_ELIMIT = 4,        /* a value exceeds a configured limit (dims, record size, count) */
    APD_EBADSTATE = 5,     /* handle is poisoned by an earlier fatal error, or wrong state */
    APD_EUNSUPPORTED = 6,  /* valid but not supported by this build/version */
    APD_ECANCELED = 7,     /* stopped at the caller's request */
    APD_EBUFSIZE = 8,      /* caller's buffer too small */
    /* I/O */
    APD_EIO = 20,          /* OS-level read/write failure; errno saved in the err/handle */
    APD_ENOENT = 21,       /* file or directory does not exist */
    APD_EEXIST = 22,       /* output exists (and overwriting was not asked for) */
    APD_EACCES = 23,       /* permission denied */
    APD_ELMDB = 24,        /* LMDB returned an error not mapped to anything more specific */
    /* format */
    APD_EMAGIC = 40,       /* not an .apd file: wrong magic */
    APD_EVERSION = 41,     /* format version this reader cannot read */
    APD_ETRUNC = 42,       /* a value is shorter than its header says */
    APD_ECORRUPT = 43,     /* structurally invalid value (bad field, reserved bits set, ...) */
    APD_ECHECKSUM = 44,    /* checksum mismatch */
    APD_EFOREIGN = 45,     /* an LMDB environment that is not an .apd */
    APD_EMETA = 46,        /* metadata missing or malformed */
    APD_ERANGE = 47,       /* record index out of range */
    APD_ENOTFOUND = 48,    /* a key that must exist is missing */
    /* import / export */
    APD_EDATASET = 60,     /* bad dataset spec or dataset layout */
    APD_EIMAGE = 61,       /* an image file could not be decoded */
    APD_EEMPTY = 62,       /* no images found */
    APD_EMISMATCH = 63,    /* inconsistent inputs (sizes, channels, counts) */
    /* numeric / state */
    APD_ENUMERIC = 80,     /* NaN or infinity where a finite value is required */
    APD_ESHAPE = 81        /* tensor shapes do not fit */
} apd_status;

/* Static, never-NULL English string for a status ("unknown status" for unknown values). */
APD_API const char *apd_strerror(apd_status s);

/* Error detail for calls without a handle. msg always ends in '\0'. */
typedef struct apd_err {
    apd_status code;  /* same value the call returned */
    int sys_errno;    /* saved errno for APD_EIO/ENOENT/EACCES, else 0 */
    char msg[512];    /* "file: record N: reason" style message */
} apd_err;

/* The largest palette: K <= 256 colours (indices are stored as uint8). The one definition of
 * this limit; every module and tool uses it. */
#define APD_MAX_COLORS 256u

/* The library never writes to stdout or stderr. Long calls report through these callbacks,
 * set in their options (NULL = silent). Both are called from the thread that made the call.
 *   progress: phase names the work ("select-net", "distill", ...); done of total items
 *             (total 0 = unknown); note is a short status text or NULL.
 *   log:      one complete status line, without a trailing newline. */
typedef void (*apd_progress_fn)(void *user, const char *phase, uint64_t done, uint64_t total,
                                const char *note);
typedef void (*apd_log_fn)(void *user, const char *line);

/* The library version string, e.g. "0.1.0". */
APD_API const char *apd_version(void);

#ifdef __cplusplus
}
#endif
#endif
