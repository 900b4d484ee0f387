/* test_check.h: an assertion for hot loops.
 *
 * Check's ck_assert_* macros record their source location with a write() to the test runner
 * before every check (so that a crash can be placed), about 20 us per assertion on a VM: a
 * loop over pixels, bytes or records with a ck_assert inside spends its time in system calls
 * (test_icode made 4.6 million of them: 53 s, 4.5 s without; under the sanitizers 188 s).
 * APD_CK(cond, fmt, ...) records nothing while cond holds and fails exactly as
 * ck_assert_msg(cond, fmt, ...) otherwise (file, line and message). Outside loops, use the
 * ck_assert_* macros as usual.
 */
#ifndef APD_TEST_CHECK_H
#define APD_TEST_CHECK_H

#include <check.h>

#define APD_CK(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

#endif
