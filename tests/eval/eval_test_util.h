/* eval_test_util.h: the training set-up the evaluation tests share (eval_test_util.c, linked
 * into each test that uses it): a small ConvNet's options, and one training run of the
 * protocol on a uint8 training set normalised with a given mean/std. */
#ifndef APD_EVAL_TEST_UTIL_H
#define APD_EVAL_TEST_UTIL_H

#include <stdint.h>

#include "apd/train.h"

/* apd_eval_opts_default, then a small ConvNet trained `epochs` in batches of `batch`. */
void et_small_opts(apd_eval_opts *o, uint32_t epochs, uint32_t batch, uint32_t width, uint32_t depth, uint64_t seed);

/* Normalise tr's images with mean/std, train with o on them and tr's labels, test on te
 * (apd_eval_train_test). The error message is printed on failure. */
apd_status et_train_test(apd_eval_result *res, const apd_dataset *tr, const apd_dataset *te, const float mean[3],
                         const float std[3], const apd_eval_opts *o);

#endif
