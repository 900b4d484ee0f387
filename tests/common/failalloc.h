/* failalloc.h: fail the n-th allocation of the code under test (the test binary and the
 * static libapd linked into it).
 *
 * failalloc.c defines __wrap_malloc, __wrap_calloc, __wrap_realloc and __wrap_strdup; the test
 * is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup, so every call
 * to those functions from libapd's objects (and the test's) goes through a counter, while
 * shared libraries (LMDB, zstd, libpng, libjpeg) and the sanitizer runtimes keep the real
 * allocator. Why --wrap and not an interposed malloc: it leaves ASan's own malloc in place
 * (the leak check keeps working) and needs no hook in the library, which stays as fast as
 * before. Allocations are counted only while armed; the counter is atomic (loader threads).
 */
#ifndef APD_TEST_FAILALLOC_H
#define APD_TEST_FAILALLOC_H

/* Count allocations from now on; the n-th one (1-based) returns NULL with errno ENOMEM,
 * the others succeed. */
void failalloc_arm(unsigned long n);
/* Stop counting; returns how many allocations were made while armed (the failed one
 * included). If that is below n, the n-th allocation never happened. */
unsigned long failalloc_disarm(void);

#endif
