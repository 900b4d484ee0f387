/* failalloc.c: the allocation counter of failalloc.h (see there for how it is linked). */
#include "failalloc.h"

#include <errno.h>
#include <stddef.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static unsigned long g_fail_at; /* 0: disarmed */
static unsigned long g_count;

void failalloc_arm(unsigned long n)
{
    __atomic_store_n(&g_count, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_fail_at, n, __ATOMIC_SEQ_CST);
}

unsigned long failalloc_disarm(void)
{
    __atomic_store_n(&g_fail_at, 0, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&g_count, __ATOMIC_SEQ_CST);
}

/* 1 if this allocation is the one to fail. */
static int should_fail(void)
{
    unsigned long at = __atomic_load_n(&g_fail_at, __ATOMIC_SEQ_CST);
    if (!at) return 0;
    if (__atomic_add_fetch(&g_count, 1, __ATOMIC_SEQ_CST) != at) return 0;
    errno = ENOMEM;
    return 1;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

/* realloc(p, 0) frees in glibc; it is not a failure point (NULL would be ambiguous). */
void *__wrap_realloc(void *p, size_t n)
{
    return n && should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return should_fail() ? NULL : __real_strdup(s);
}
