/* distill/distill_internal.h: library-internal pieces of the distillation code, exposed to
 * tests (which link the static library). Not installed; not a stable API.
 */
#ifndef APD_DISTILL_INTERNAL_H
#define APD_DISTILL_INTERNAL_H

#include <stdint.h>

#include "apd/distill.h"
#include "common/rng.h"

/* Graph-cut state for one class (see graphcut.c for the maths). */
typedef struct apd_graphcut {
    uint64_t n;        /* items in the class (V) */
    uint32_t d;        /* feature dimension */
    float *unit;       /* n x d unit feature vectors (zero rows stay zero) */
    double *colsum;    /* n: sum_{j in V} s(j, i) */
    double *sum_all;   /* d: sum of all unit vectors */
    double *sum_sel;   /* d: sum of the selected unit vectors */
    uint64_t n_sel;    /* |S| */
} apd_graphcut;

/* @return APD_OK, APD_EINVAL, APD_EOVERFLOW, APD_ENOMEM, APD_ENUMERIC (non-finite feature). */
apd_status apd__graphcut_prepare(apd_graphcut *g, const float *feat, uint64_t n, uint32_t d);
void apd__graphcut_free(apd_graphcut *g);
/* gain(c) = lambda * sum_{j in V} s(j,c) - 2 * sum_{k in S} s(k,c) for the current S. */
double apd__graphcut_gain(const apd_graphcut *g, uint64_t c, double lambda);
/* Add item c to S. */
void apd__graphcut_add(apd_graphcut *g, uint64_t c);
/* Candidates per stochastic-greedy step: max(round(-ln(eps) * n / budget), 1), at most n. */
uint64_t apd__graphcut_candidates(uint64_t n, uint64_t budget, double epsilon);

#endif
