/* test_quick.h: the sanitizer pass's shorter loops.
 *
 * scripts/test.sh runs the ASan+UBSan build's tests with APD_TEST_QUICK=1. A few tests sweep
 * a parameter for its values' sake (every K 1..256, many kill rounds); under the sanitizers
 * each step costs 5-20x, and what the pass is for (a memory or UB error on a code path) needs
 * every code path, not every value. With APD_TEST_QUICK set such a sweep keeps the values at
 * its edges; the release pass runs the full sweep.
 */
#ifndef APD_TEST_QUICK_H
#define APD_TEST_QUICK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline int apd_test_quick(void)
{
    const char *e = getenv("APD_TEST_QUICK");
    return e && e[0] && strcmp(e, "0") != 0;
}

/* K values a quick sweep over 1..256 keeps: 1-9 and each power of two with its neighbours
 * (every change of bits per index and of the coder's alphabet size), 256. */
static inline int apd_test_k_edge(uint32_t k)
{
    return k <= 9 || (k & (k - 1)) == 0 || ((k + 1) & k) == 0 || ((k - 1) & (k - 2)) == 0;
}

/* 1 if a sweep over K should visit k: always, or on the edges in the quick form. */
static inline int apd_test_visit_k(uint32_t k) { return !apd_test_quick() || apd_test_k_edge(k); }

#endif
