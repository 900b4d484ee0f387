/* fuzz_pickle.c: libFuzzer target for the CIFAR pickle reader (libapd/io/pickle.c).
 *
 * Input: the bytes of a pickle. After a successful parse every accessor the CIFAR importer
 * uses runs over the result (data matrix, label lists, names), so a parse that builds a bad
 * tree shows up under the sanitizers. Replayed under ctest from tests/fuzz/corpus/pickle/
 * (replay.c); the seeds are pickles of tests/io/make_cifar_pickles.py (cPickle layout) and
 * small crafted ones.
 */
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apd__pickle *p = NULL;
    apd_err err;
    if (apd__pickle_parse(&p, data, size, "fuzz", &err) != APD_OK) return 0;
    uint64_t rows = 0, cols = 0, sum = 0;
    const uint8_t *m = apd__pickle_u8_matrix(p, apd__pickle_get(p, 0, "data"), &rows, &cols);
    if (m && rows && cols) sum += m[0] + m[rows * cols - 1];
    static const char *const keys[] = {"labels", "fine_labels", "coarse_labels", "label_names", "fine_label_names"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int list = apd__pickle_get(p, 0, keys[k]);
        for (size_t i = 0; i < apd__pickle_len(p, list); i++) {
            int64_t v;
            size_t len = 0;
            int item = apd__pickle_item(p, list, i);
            if (apd__pickle_int(p, item, &v)) sum += (uint64_t)v;
            const uint8_t *s = apd__pickle_str(p, item, &len);
            if (s && len) sum += s[len - 1];
            sum += (uint64_t)apd__pickle_type(p, item);
        }
    }
    apd__pickle_free(p);
    return sum == 0xffffffffffffffffull; /* keeps the reads from being optimised out */
}
