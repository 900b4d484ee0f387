/* eval_test_util.c: see eval_test_util.h. */
#include "eval_test_util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

void et_small_opts(apd_eval_opts *o, uint32_t epochs, uint32_t batch, uint32_t width, uint32_t depth, uint64_t seed)
{
    apd_eval_opts_default(o);
    o->epochs = epochs;
    o->batch = batch;
    o->width = width;
    o->depth = depth;
    o->seed = seed;
}

apd_status et_train_test(apd_eval_result *res, const apd_dataset *tr, const apd_dataset *te, const float mean[3],
                         const float std[3], const apd_eval_opts *o)
{
    size_t img = apd_dataset_image_bytes(tr);
    float *x = malloc(tr->n * img * sizeof(float));
    ck_assert_ptr_nonnull(x);
    apd_eval_normalize(x, tr->pixels, tr->n, tr->c, tr->h * tr->w, mean, std);
    apd_err err;
    apd_status st = apd_eval_train_test(res, x, tr->labels, tr->n, tr->c, tr->h, tr->w, te, mean, std, o, &err);
    if (st != APD_OK) printf("eval: %s\n", err.msg);
    free(x);
    return st;
}
