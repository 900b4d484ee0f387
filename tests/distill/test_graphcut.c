/* test_graphcut.c: graph-cut gain against a brute-force similarity matrix, the stochastic
 * greedy's candidate count, full greedy against a brute-force greedy, and a hand-solved toy;
 * the herding init's greedy against the distances to the target mean, computed directly. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/distill.h"
#include "common/rng.h"
#include "distill/distill_internal.h"

/* s(i,j) = 0.5 + 0.5 cos, straight from the definition. */
static double *brute_sim(const float *f, int n, int d)
{
    double *s = malloc(sizeof(double) * n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double dot = 0, ni = 0, nj = 0;
            for (int k = 0; k < d; k++) {
                dot += (double)f[i * d + k] * f[j * d + k];
                ni += (double)f[i * d + k] * f[i * d + k];
                nj += (double)f[j * d + k] * f[j * d + k];
            }
            double c = (ni > 0 && nj > 0) ? dot / sqrt(ni * nj) : 0;
            s[i * n + j] = 0.5 + 0.5 * c;
        }
    return s;
}

static double brute_gain(const double *s, int n, const int *sel, int n_sel, int c, double lambda)
{
    double a = 0, b = 0;
    for (int j = 0; j < n; j++) a += s[j * n + c];
    for (int k = 0; k < n_sel; k++) b += s[sel[k] * n + c];
    return lambda * a - 2 * b;
}

static float *random_features(int n, int d, uint64_t seed)
{
    apd__rng r;
    apd__rng_seed(&r, seed, 0);
    float *f = malloc(sizeof(float) * n * d);
    for (int i = 0; i < n * d; i++) f[i] = apd__rng_normal(&r) + (i % d == 0 ? 1.0f : 0.0f);
    return f;
}

START_TEST(gain_matches_bruteforce)
{
    const int n = 25, d = 7;
    float *f = random_features(n, d, 11);
    memset(f + 3 * d, 0, sizeof(float) * d); /* a zero vector: cos 0 with everything */
    double *s = brute_sim(f, n, d);
    apd_graphcut g;
    ck_assert_int_eq(apd__graphcut_prepare(&g, f, n, d), APD_OK);
    int sel[6] = {4, 17, 3, 9, 22, 0};
    double maxerr = 0;
    for (int ns = 0; ns <= 6; ns++) {
        for (double lambda = 0.5; lambda <= 2.0; lambda += 0.5)
            for (int c = 0; c < n; c++) {
                double e = fabs(apd__graphcut_gain(&g, c, lambda) - brute_gain(s, n, sel, ns, c, lambda));
                if (e > maxerr) maxerr = e;
            }
        if (ns < 6) apd__graphcut_add(&g, sel[ns]);
    }
    printf("graphcut gain: max abs error vs brute force %.3g\n", maxerr);
    ck_assert(maxerr < 1e-5);
    apd__graphcut_free(&g);
    free(s);
    free(f);
}
END_TEST

START_TEST(candidates_per_step)
{
    /* docs/method.md 4.4 table: CIFAR-10 n = 5000 at K = 64 */
    ck_assert_uint_eq(apd__graphcut_candidates(5000, 4, 0.9), 132);
    ck_assert_uint_eq(apd__graphcut_candidates(5000, 40, 0.9), 13);
    ck_assert_uint_eq(apd__graphcut_candidates(5000, 200, 0.9), 3);
    ck_assert_uint_eq(apd__graphcut_candidates(10, 10, 0.9), 1);
    ck_assert_uint_eq(apd__graphcut_candidates(10, 2, 1e-12), 10);
}
END_TEST

/* Full greedy (epsilon tiny => every unselected item is a candidate) equals a brute-force
 * greedy on the explicit similarity matrix. */
START_TEST(full_greedy_matches_bruteforce)
{
    const int n = 40, d = 6, budget = 9;
    float *f = random_features(n, d, 5);
    double *s = brute_sim(f, n, d);
    uint64_t got[9];
    ck_assert_int_eq(apd_graphcut_select(f, n, d, budget, 1.0, 1e-12, 1, got, NULL), APD_OK);
    int sel[9], used[40] = {0};
    for (int t = 0; t < budget; t++) {
        int best = -1;
        double bg = -INFINITY;
        for (int c = 0; c < n; c++) {
            if (used[c]) continue;
            double gv = brute_gain(s, n, sel, t, c, 1.0);
            if (gv > bg) {
                bg = gv;
                best = c;
            }
        }
        sel[t] = best;
        used[best] = 1;
        ck_assert_int_eq((int)got[t], best);
    }
    free(s);
    free(f);
}
END_TEST

/* Hand-solved toy (lambda = 1): u0 = u1 = (1,0), u2 = (cos 60, sin 60), u3 = (0,1).
 * s01 = 1, s02 = s12 = 0.75, s03 = s13 = 0.5, s23 = 0.933.
 * colsum = 3.25, 3.25, 3.433, 2.933 -> step 1 picks 2.
 * step 2: gain0 = gain1 = 3.25 - 1.5 = 1.75 > gain3 = 2.933 - 1.866 -> 0 or 1.
 * step 3: the other duplicate gains 3.25 - 2 (0.75 + 1) = -0.25, item 3 gains
 * 2.933 - 2 (0.933 + 0.5) = +0.067: the duplicate is redundant, so the answer is {2, 0|1, 3}. */
START_TEST(toy_known_answer)
{
    const float f[8] = {1, 0, 1, 0, 0.5f, 0.8660254f, 0, 1};
    for (uint64_t seed = 0; seed < 5; seed++) {
        uint64_t got[3];
        ck_assert_int_eq(apd_graphcut_select(f, 4, 2, 3, 1.0, 1e-9, seed, got, NULL), APD_OK);
        ck_assert_uint_eq(got[0], 2);
        ck_assert(got[1] == 0 || got[1] == 1);
        ck_assert_uint_eq(got[2], 3);
    }
    /* the gain arithmetic of the toy, explicitly */
    apd_graphcut g;
    ck_assert_int_eq(apd__graphcut_prepare(&g, f, 4, 2), APD_OK);
    ck_assert(fabs(apd__graphcut_gain(&g, 2, 1.0) - (0.75 + 0.75 + 1 + (0.5 + 0.5 * 0.8660254))) < 1e-6);
    apd__graphcut_add(&g, 2);
    ck_assert(fabs(apd__graphcut_gain(&g, 0, 1.0) - 1.75) < 1e-6);
    apd__graphcut_free(&g);
}
END_TEST

/* Stochastic greedy at epsilon 0.9: distinct indices, deterministic per seed, and on two
 * well-separated clusters of equal size with budget 2 it takes one from each. */
START_TEST(stochastic_greedy_properties)
{
    const int n = 200, d = 4, budget = 20;
    float *f = random_features(n, d, 3);
    uint64_t a[20], b[20];
    ck_assert_int_eq(apd_graphcut_select(f, n, d, budget, 1.0, 0.9, 7, a, NULL), APD_OK);
    ck_assert_int_eq(apd_graphcut_select(f, n, d, budget, 1.0, 0.9, 7, b, NULL), APD_OK);
    for (int i = 0; i < budget; i++) {
        ck_assert_uint_eq(a[i], b[i]);
        ck_assert_uint_lt(a[i], n);
        for (int j = 0; j < i; j++) ck_assert_uint_ne(a[i], a[j]);
    }
    ck_assert_int_eq(apd_graphcut_select(f, n, d, n + 1, 1.0, 0.9, 7, a, NULL), APD_EINVAL);
    ck_assert_int_eq(apd_graphcut_select(f, n, d, 3, 1.0, 1.5, 7, a, NULL), APD_EINVAL);
    free(f);

    /* two antipodal clusters: s = 1 inside, 0 across. Taking a second item from the same
     * cluster gains colsum - 2 = n/2 - 2 < n/2 for the other cluster. */
    const int m = 30;
    float *g2 = malloc(sizeof(float) * 2 * m * 2);
    for (int i = 0; i < 2 * m; i++) {
        g2[2 * i] = i < m ? 1.0f : -1.0f;
        g2[2 * i + 1] = 0.0f;
    }
    for (uint64_t seed = 0; seed < 10; seed++) {
        uint64_t p[2];
        ck_assert_int_eq(apd_graphcut_select(g2, 2 * m, 2, 2, 1.0, 1e-9, seed, p, NULL), APD_OK);
        ck_assert((p[0] < (uint64_t)m) != (p[1] < (uint64_t)m));
    }
    free(g2);
}
END_TEST

/* Herding: each pick brings the mean of the picks closest to the target, checked against the
 * distance |mean(picks + j) - mu| computed directly for every candidate j left; the distances
 * then shrink toward the mean of a well-spread set; a hand-solved toy; n > m refused. */
START_TEST(herding_matches_direct_distances)
{
    const int m = 60, d = 9, n = 12;
    float *f = random_features(m, d, 11);
    double mu[9] = {0};
    for (int j = 0; j < m; j++)
        for (int k = 0; k < d; k++) mu[k] += f[j * d + k] / (double)m;
    uint64_t got[12];
    ck_assert_int_eq(apd__herding_select(f, m, d, mu, n, got, NULL), APD_OK);
    int used[60] = {0};
    double sum[9] = {0}, worst = 0;
    for (int t = 0; t < n; t++) {
        double best = INFINITY, dist_got = -1;
        for (int j = 0; j < m; j++) {
            if (used[j]) continue;
            double e = 0;
            for (int k = 0; k < d; k++) {
                double v = (sum[k] + f[j * d + k]) / (t + 1) - mu[k];
                e += v * v;
            }
            if (e < best) best = e;
            if ((uint64_t)j == got[t]) dist_got = e;
        }
        ck_assert_msg(dist_got >= 0, "pick %d (%llu) was already picked", t, (unsigned long long)got[t]);
        double rel = (dist_got - best) / (best > 1e-12 ? best : 1e-12);
        if (rel > worst) worst = rel;
        ck_assert_msg(rel < 1e-5, "pick %d: distance %.9g, best %.9g", t, dist_got, best);
        used[got[t]] = 1;
        for (int k = 0; k < d; k++) sum[k] += f[got[t] * d + k];
        if (t == n - 1) printf("herding: %d picks, distance of their mean to mu %.4g (one random point: ~%.1f)\n", n,
                               sqrt(best), sqrt((double)d));
    }
    printf("herding: max relative excess over the direct minimum %.3g\n", worst);
    /* toy: mu = (1, 0); points (3,0), (1,0.1), (-1,0), (1,-0.1): the nearest first, then the
     * one that cancels its offset, then the two on the axis */
    const float g[8] = {3, 0, 1, 0.1f, -1, 0, 1, -0.1f};
    const double mu2[2] = {1, 0};
    uint64_t p[4];
    ck_assert_int_eq(apd__herding_select(g, 4, 2, mu2, 4, p, NULL), APD_OK);
    ck_assert_uint_eq(p[0], 1); /* (1, 0.1) and (1, -0.1) tie at distance 0.1: the lower index */
    ck_assert_uint_eq(p[1], 3); /* mean (1, 0) */
    ck_assert_uint_eq(p[2], 0); /* (3,0) and (-1,0) tie (mean 5/3 or 1/3): the lower index */
    ck_assert_uint_eq(p[3], 2); /* then the mean of all four is mu */
    ck_assert_int_eq(apd__herding_select(g, 4, 2, mu2, 5, p, NULL), APD_EINVAL);
    free(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graphcut");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, gain_matches_bruteforce);
    tcase_add_test(tc, candidates_per_step);
    tcase_add_test(tc, full_greedy_matches_bruteforce);
    tcase_add_test(tc, toy_known_answer);
    tcase_add_test(tc, stochastic_greedy_properties);
    tcase_add_test(tc, herding_matches_direct_distances);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
