/* distill/graphcut.c: graph-cut submodular selection by stochastic greedy (docs/method.md 4.3-4.4).
 *
 * Contract. Given n feature vectors (row-major n x d floats) of ONE class, select `budget` of
 * them maximising the generalised graph cut f(S) = lambda * sum_{j in V, k in S} s(j,k)
 *   - sum_{k, l in S} s(k,l) with similarity s(i,j) = 0.5 + 0.5 cos(f_i, f_j) in [0, 1].
 * The marginal gain of candidate c given the selected set S is
 *   gain(c) = lambda * sum_{j in V} s(j,c) - 2 * sum_{k in S} s(k,c)
 * and is computed for the candidate itself (the reference code misaligns the second term;
 * see docs/method.md 4.4). Stochastic greedy (Mirzasoleiman et al.) with parameter epsilon:
 * at each of the `budget` steps, r = max(round(-ln(epsilon) * n / budget), 1) unselected
 * candidates (capped at the number left) are drawn uniformly without replacement and the one
 * with the largest gain is taken (ties: the first drawn).
 *
 * Cost. Because s is affine in the unit vectors u_i = f_i/|f_i|, both sums reduce to dot
 * products with running sums: sum_{j in V} s(j,c) = n/2 + u_c.U/2 with U = sum_j u_j, and
 * sum_{k in S} s(k,c) = |S|/2 + u_c.U_S/2. So each gain is O(d) and no n x n matrix is
 * built (n = 6000 per class for Fashion-MNIST). Unit vectors are stored as float, sums in
 * double. A zero feature vector has cos 0 with all.
 * Deterministic for a given rng state; single-threaded.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/internal.h"
#include "distill/distill_internal.h"

apd_status apd__graphcut_prepare(apd_graphcut *g, const float *feat, uint64_t n, uint32_t d)
{
    memset(g, 0, sizeof *g);
    if (!feat || n == 0 || d == 0) return APD_EINVAL;
    size_t nd;
    if (!apd__mul_ok((size_t)n, d, &nd)) return APD_EOVERFLOW;
    g->unit = malloc(nd * sizeof *g->unit);
    g->colsum = malloc((size_t)n * sizeof *g->colsum);
    g->sum_all = calloc(d, sizeof *g->sum_all);
    g->sum_sel = calloc(d, sizeof *g->sum_sel);
    if (!g->unit || !g->colsum || !g->sum_all || !g->sum_sel) {
        apd__graphcut_free(g);
        return APD_ENOMEM;
    }
    g->n = n;
    g->d = d;
    for (uint64_t i = 0; i < n; i++) {
        const float *f = feat + i * d;
        double nrm = 0;
        for (uint32_t k = 0; k < d; k++) nrm += (double)f[k] * f[k];
        nrm = sqrt(nrm);
        double inv = nrm > 0 ? 1.0 / nrm : 0.0;
        if (!isfinite(nrm)) {
            apd__graphcut_free(g);
            return APD_ENUMERIC;
        }
        float *u = g->unit + i * d;
        for (uint32_t k = 0; k < d; k++) {
            u[k] = (float)(f[k] * inv);
            g->sum_all[k] += u[k];
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        const float *u = g->unit + i * d;
        double dot = 0;
        for (uint32_t k = 0; k < d; k++) dot += u[k] * g->sum_all[k];
        g->colsum[i] = 0.5 * (double)n + 0.5 * dot;
    }
    return APD_OK;
}

void apd__graphcut_free(apd_graphcut *g)
{
    if (!g) return;
    free(g->unit);
    free(g->colsum);
    free(g->sum_all);
    free(g->sum_sel);
    memset(g, 0, sizeof *g);
}

double apd__graphcut_gain(const apd_graphcut *g, uint64_t c, double lambda)
{
    const float *u = g->unit + c * g->d;
    double dot = 0;
    for (uint32_t k = 0; k < g->d; k++) dot += u[k] * g->sum_sel[k];
    double red = 0.5 * (double)g->n_sel + 0.5 * dot;
    return lambda * g->colsum[c] - 2.0 * red;
}

void apd__graphcut_add(apd_graphcut *g, uint64_t c)
{
    const float *u = g->unit + c * g->d;
    for (uint32_t k = 0; k < g->d; k++) g->sum_sel[k] += u[k];
    g->n_sel++;
}

uint64_t apd__graphcut_candidates(uint64_t n, uint64_t budget, double epsilon)
{
    if (budget == 0) return 1;
    double r = -log(epsilon) * (double)n / (double)budget;
    double rr = floor(r + 0.5); /* round half away from zero (r >= 0) */
    if (!(rr >= 1)) rr = 1;
    if (rr > (double)n) rr = (double)n;
    return (uint64_t)rr;
}

APD_API apd_status apd_graphcut_select(const float *feat, uint64_t n, uint32_t d, uint64_t budget,
                                       double lambda, double epsilon, uint64_t seed,
                                       uint64_t *out_idx, apd_err *err)
{
    if (!feat || !out_idx || n == 0 || d == 0)
        return apd__err_set(err, APD_EINVAL, "graphcut: empty feature matrix or NULL output");
    if (budget == 0 || budget > n)
        return apd__err_set(err, APD_EINVAL, "graphcut: budget %llu outside 1..%llu",
                            (unsigned long long)budget, (unsigned long long)n);
    if (!(epsilon > 0 && epsilon < 1))
        return apd__err_set(err, APD_EINVAL, "graphcut: epsilon %g outside (0, 1)", epsilon);
    apd_graphcut g;
    apd_status s = apd__graphcut_prepare(&g, feat, n, d);
    if (s != APD_OK) return apd__err_set(err, s, "graphcut: %s", apd_strerror(s));
    uint64_t *pool = malloc((size_t)n * sizeof *pool);
    if (!pool) {
        apd__graphcut_free(&g);
        return apd__err_set(err, APD_ENOMEM, "graphcut: out of memory");
    }
    for (uint64_t i = 0; i < n; i++) pool[i] = i;
    uint64_t left = n;
    uint64_t r = apd__graphcut_candidates(n, budget, epsilon);
    apd__rng rng;
    apd__rng_seed(&rng, seed, 0x67637574 /* "gcut" */);
    for (uint64_t step = 0; step < budget; step++) {
        uint64_t m = r < left ? r : left;
        /* partial Fisher-Yates: pool[0..m) becomes a uniform sample without replacement */
        for (uint64_t t = 0; t < m; t++) {
            uint64_t j = t + apd__rng_below(&rng, left - t);
            uint64_t tmp = pool[t];
            pool[t] = pool[j];
            pool[j] = tmp;
        }
        uint64_t best_t = 0;
        double best = -INFINITY;
        for (uint64_t t = 0; t < m; t++) {
            double gv = apd__graphcut_gain(&g, pool[t], lambda);
            if (gv > best) {
                best = gv;
                best_t = t;
            }
        }
        uint64_t c = pool[best_t];
        out_idx[step] = c;
        apd__graphcut_add(&g, c);
        pool[best_t] = pool[left - 1];
        left--;
    }
    free(pool);
    apd__graphcut_free(&g);
    return APD_OK;
}
