/* common/internal.h: library-internal helpers shared by every part of libapd.
 * Not installed. Tools, tests and benches may include it (they link the static library).
 *
 * - apd__err_set / apd__err_sys: fill an optional apd_err and return the code.
 * - APD_RETURN_IF / APD_TRY: one-line error propagation; in debug builds (APD_DEBUG_TRACE)
 *   they print file:line and the failed condition to stderr.
 * - apd__mul_ok / apd__add_ok: checked size arithmetic for everything read from disk.
 */
#ifndef APD_COMMON_INTERNAL_H
#define APD_COMMON_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "apd/status.h"

#if defined(__GNUC__)
#define APD__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define APD__PRINTF(a, b)
#endif

apd_status apd__err_set(apd_err *e, apd_status code, const char *fmt, ...) APD__PRINTF(3, 4);
/* Maps errno to APD_ENOENT/EACCES/EEXIST/ENOMEM/EIO and writes "path: what: strerror". */
apd_status apd__err_sys(apd_err *e, int err, const char *path, const char *what);
apd_status apd__status_from_errno(int err);

#ifdef APD_DEBUG_TRACE
#define APD__TRACE(expr) fprintf(stderr, "apd: %s:%d: %s\n", __FILE__, __LINE__, expr)
#else
#define APD__TRACE(expr) ((void)0)
#endif

#define APD_RETURN_IF(cond, code)                                                                  \
    do {                                                                                           \
        if (cond) {                                                                                \
            APD__TRACE(#cond);                                                                     \
            return (code);                                                                         \
        }                                                                                          \
    } while (0)

#define APD_TRY(expr)                                                                              \
    do {                                                                                           \
        apd_status apd__s = (expr);                                                                \
        if (apd__s != APD_OK) {                                                                    \
            APD__TRACE(#expr);                                                                     \
            return apd__s;                                                                         \
        }                                                                                          \
    } while (0)

/* *out = a * b; returns 0 (and leaves *out unspecified) on overflow. */
static inline int apd__mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline int apd__add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
static inline int apd__mul3_ok(size_t a, size_t b, size_t c, size_t *out)
{
    size_t t;
    return apd__mul_ok(a, b, &t) && apd__mul_ok(t, c, out);
}

/* Little-endian loads/stores (the format is little-endian on every host). */
static inline uint16_t apd__ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t apd__ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t apd__ld64(const uint8_t *p)
{
    return (uint64_t)apd__ld32(p) | ((uint64_t)apd__ld32(p + 4) << 32);
}
static inline void apd__st16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void apd__st32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void apd__st64(uint8_t *p, uint64_t v)
{
    apd__st32(p, (uint32_t)v);
    apd__st32(p + 4, (uint32_t)(v >> 32));
}

/* apd_dataset_hash ("apd-h64", common/dataset.c) fed piece by piece: begin with the
 * geometry, pixels in dataset order in any number of calls, finish with the labels. Gives
 * the same 16 hex digits as apd_dataset_hash of the whole dataset. */
typedef struct apd__dhash {
    uint64_t h;
    uint8_t tail[8]; /* bytes of a word not yet complete */
    size_t nt;
} apd__dhash;
void apd__dhash_begin(apd__dhash *d, uint64_t n, uint32_t c, uint32_t h, uint32_t w);
void apd__dhash_pixels(apd__dhash *d, const uint8_t *p, size_t len);
void apd__dhash_finish(apd__dhash *d, const uint32_t *labels, uint64_t n, char out_hex[17]);

/* Monotonic wall clock in seconds. */
double apd__now(void);

/* pthread_create with at least 1 MiB of stack (common/thread.c); returns its error number. */
int apd__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* probe() != 0, asked once per slot (common/cpu.c); *slot starts at -1 (not yet asked).
 * Safe from any thread. */
int apd__cached_flag(int *slot, int (*probe)(void));

#endif
