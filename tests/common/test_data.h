/* test_data.h: where the tests find real data, and how an optional test says "skipped".
 *
 * - APD_TEST_DATA (tests/data/, set by CMake): fixtures shipped with the repository, so the
 *   suite passes on a plain clone. cifar10/ holds the first 500 training and 300 test records
 *   of a CIFAR-10 set in CIFAR binary layout (1 label byte + 1024 R, G, B bytes per record);
 *   cifar10-folder/ a few JPEG files per class in the train/<class>/, test/<class>/ layout.
 *   tests/data/README.md says where they come from.
 * - Debian's Fashion-MNIST (package dataset-fashion-mnist, installed by scripts/setup.sh) is
 *   a required test dependency: a test that needs it fails when it is missing.
 * - APD_EXTRA_DATA (CMake cache variable, empty by default): an optional folder with a larger
 *   cifar10-dev/ (train.bin, test.bin). Tests on it are registered as `<test> full` and exit
 *   APD_TEST_SKIP when it is absent; CTest (SKIP_RETURN_CODE) reports them as skipped.
 */
#ifndef APD_TEST_DATA_H
#define APD_TEST_DATA_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define APD_TEST_SKIP 77
#define APD_TEST_CIFAR APD_TEST_DATA "/cifar10"
#define APD_TEST_FOLDER APD_TEST_DATA "/cifar10-folder"
#define APD_TEST_FMNIST "/usr/share/datasets/fashion-mnist"

/* The folder of the optional larger CIFAR-10 set (cifar10-dev/ under APD_EXTRA_DATA) into
 * dir; 1 if its train.bin and test.bin are readable, else 0 (and a line saying what is
 * missing, for the ctest log). */
static inline int apd_test_extra_cifar(char *dir, size_t cap)
{
    char f[1200];
    if (APD_EXTRA_DATA[0] == '\0') {
        printf("APD_EXTRA_DATA is not set (cmake -DAPD_EXTRA_DATA=DIR with DIR/cifar10-dev/"
               "{train,test}.bin): skipped\n");
        return 0;
    }
    snprintf(dir, cap, "%s/cifar10-dev", APD_EXTRA_DATA);
    static const char *const need[] = {"train.bin", "test.bin"};
    for (int i = 0; i < 2; i++) {
        snprintf(f, sizeof f, "%s/%s", dir, need[i]);
        if (access(f, R_OK) != 0) {
            printf("%s is missing: skipped\n", f);
            return 0;
        }
    }
    return 1;
}

/* argv[1] == "full": run the part on APD_EXTRA_DATA. */
static inline int apd_test_full_mode(int argc, char **argv)
{
    return argc > 1 && strcmp(argv[1], "full") == 0;
}

#endif
