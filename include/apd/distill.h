/* apd/distill.h: dataset distillation (random real subset, distribution matching, AutoPalette)
 * and colour-guided initialisation (graph-cut selection).
 *
 * Overview: see shared/AUTOPALETTE.md for the method. This header is grown in steps; the
 * graph-cut selector is usable on its own (any feature matrix):
 *
 *     uint64_t pick[10];
 *     apd_err err;
 *     if (apd_graphcut_select(feat, n, 2048, 10, 1.0, 0.9, seed, pick, &err) != APD_OK) ...
 *
 * Thread safety: every function works on caller-owned data only; distinct calls may run on
 * different threads.
 */
#ifndef APD_DISTILL_H
#define APD_DISTILL_H

#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Select `budget` of the n items of one class (features row-major n x d floats) by graph-cut
 * stochastic greedy: similarity s = 0.5 + 0.5 cos, gain(c) = lambda * sum_{j in V} s(j,c)
 * - 2 * sum_{k in S} s(k,c), r = max(round(-ln(epsilon) n / budget), 1) candidates drawn per
 * step without replacement. The reference setting is lambda = 1, epsilon = 0.9. out_idx
 * receives `budget` distinct indices in selection order. Deterministic for a given seed.
 * @return APD_OK, APD_EINVAL (budget 0 or > n, epsilon outside (0,1), NULL), APD_ENOMEM,
 *         APD_EOVERFLOW, APD_ENUMERIC (non-finite feature). */
APD_API apd_status apd_graphcut_select(const float *feat, uint64_t n, uint32_t d, uint64_t budget,
                                       double lambda, double epsilon, uint64_t seed,
                                       uint64_t *out_idx, apd_err *err);

#ifdef __cplusplus
}
#endif
#endif
