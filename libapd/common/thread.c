/* common/thread.c: libapd's threads (loader decode threads, the NN pool) start with at least
 * APD__THREAD_STACK bytes of stack. glibc gives new threads RLIMIT_STACK (usually 8 MiB), but
 * musl gives 128 KiB, and a batch decode of coded records keeps about 80 KB on the stack
 * (docs/index-coding.md), which would leave too little for the rest of the call chain. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "common/internal.h"

#define APD__THREAD_STACK ((size_t)1 << 20)

int apd__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    pthread_attr_t at;
    int rc = pthread_attr_init(&at);
    if (rc != 0) return rc;
    size_t have = 0;
    if (pthread_attr_getstacksize(&at, &have) == 0 && have < APD__THREAD_STACK)
        (void)pthread_attr_setstacksize(&at, APD__THREAD_STACK); /* on failure: the default */
    rc = pthread_create(t, &at, fn, arg);
    pthread_attr_destroy(&at);
    return rc;
}
