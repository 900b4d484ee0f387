/* distill/palette_loss.c: AutoPalette colour losses (Lm, Lb, La, Lconf; docs/method.md 3.2)
 * with their gradients w.r.t. the softmax probabilities m, the La pixel sample, the
 * colour-loss step of one distillation iteration, and the warm-up loop (collapse remedy a).
 *
 * Contract: see apd/palette.h. Loss values are accumulated in double; gradients are
 * weight * dL/dm added into the caller's dm (B, K, P). The La affinity matrices are
 * S x S GEMMs per image (S = 0.3 P, 307 for 32x32).
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apd/palette.h"
#include "common/internal.h"
#include "common/rng.h"
#include "distill/palette_internal.h"

#define LOG_EPS 1e-16
#define NORM_EPS 1e-12f
#define RNG_TAG_SAMPLE 0x6C612D73616D706Cull /* "la-sampl" */

double apd_palette_loss_lm(float *dm, float weight, const float *m, uint32_t b, uint32_t k, uint32_t p)
{
    if (!m || b == 0 || k == 0 || p == 0) return 0.0;
    double sum = 0.0;
    float g = -weight / ((float)b * (float)k);
    for (size_t bk = 0; bk < (size_t)b * k; bk++) {
        const float *row = m + bk * p;
        uint32_t am = 0;
        float best = row[0];
        for (uint32_t q = 1; q < p; q++)
            if (row[q] > best) { best = row[q]; am = q; }
        sum += best;
        if (dm) dm[bk * p + am] += g;
    }
    return -sum / ((double)b * k);
}

double apd_palette_loss_lb(float *dm, float weight, const float *m, uint32_t b, uint32_t k, uint32_t p)
{
    if (!m || b == 0 || k == 0 || p == 0) return 0.0;
    double sum = 0.0;
    for (size_t bk = 0; bk < (size_t)b * k; bk++) {
        const float *row = m + bk * p;
        double s = 0.0;
        for (uint32_t q = 0; q < p; q++) s += row[q];
        double pbar = s / p;
        sum += pbar * log(pbar + LOG_EPS);
        if (dm) {
            float g = (float)((double)weight / b * (log(pbar + LOG_EPS) + pbar / (pbar + LOG_EPS)) / p);
            float *d = dm + bk * p;
            for (uint32_t q = 0; q < p; q++) d[q] += g;
        }
    }
    return sum / b;
}

double apd_palette_loss_conf(float *dm, float weight, const float *m, uint32_t b, uint32_t k, uint32_t p)
{
    if (!m || b == 0 || k == 0 || p == 0) return 0.0;
    size_t n = (size_t)b * k * p;
    double sum = 0.0, scale = 1.0 / ((double)b * p);
    float gs = (float)(-weight * scale);
    for (size_t i = 0; i < n; i++) {
        double v = m[i], l = log(v + LOG_EPS);
        sum += v * l;
        if (dm) dm[i] += gs * (float)(l + v / (v + LOG_EPS));
    }
    return -sum * scale;
}

/* Per-thread La scratch. */
typedef struct {
    float *f, *df, *a, *da, *norm, *dot, *tnorm, *inv, *tf;
    uint8_t *t;
} la_buf;

typedef struct {
    float *dm;
    float weight;
    const float *m;
    const uint8_t *target;
    const uint32_t *sample;
    uint32_t b, k, p, s;
    la_buf *buf;   /* per thread */
    double *vals;  /* per image */
} la_ctx;

/* La of image bi: vals[bi] = ||A_hat - A'_hat||_F^2 / s; gradient into dm (image bi's slice). */
APD__VCLONES static void la_image(void *vctx, uint32_t bi, uint32_t thread)
{
    const la_ctx *cx = vctx;
    la_buf *B = &cx->buf[thread];
    uint32_t k = cx->k, p = cx->p, s = cx->s;
    float *f = B->f, *df = B->df, *a = B->a, *da = B->da, *norm = B->norm, *dot = B->dot, *tnorm = B->tnorm;
    float *inv = B->inv, *tf = B->tf;
    uint8_t *t = B->t;
    uint32_t cnt[APD_MAX_COLORS];
    const float *mb = cx->m + (size_t)bi * k * p;
    const uint32_t *sb = cx->sample + (size_t)bi * s;
    float gscale = (float)(2.0 * cx->weight / ((double)cx->b * s));
    /* F (K, S) = m[:, sample];  T = target[sample] */
    for (uint32_t j = 0; j < k; j++)
        for (uint32_t q = 0; q < s; q++) f[(size_t)j * s + q] = mb[(size_t)j * p + sb[q]];
    memset(cnt, 0, sizeof cnt);
    for (uint32_t q = 0; q < s; q++) {
        t[q] = cx->target[(size_t)bi * p + sb[q]];
        cnt[t[q]]++;
    }
    /* target columns: A'[r,q] = [t_r == t_q], norm sqrt(cnt[t_q]) */
    for (uint32_t q = 0; q < s; q++) tnorm[q] = 1.0f / sqrtf((float)cnt[t[q]]);
    /* A (S, S) = F^T F */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)s, (int)s, (int)k, 1.0f, f, (int)s, f, (int)s, 0.0f, a,
                (int)s);
    /* column norms (strided: accumulate row by row) */
    for (uint32_t q = 0; q < s; q++) norm[q] = 0.0f;
    for (uint32_t r = 0; r < s; r++) {
        const float *ar = a + (size_t)r * s;
        uint32_t q = 0;
        for (; q + APD__VW <= s; q += APD__VW) {
            apd__vf v = apd__vld(ar + q);
            apd__vst(norm + q, apd__vld(norm + q) + v * v);
        }
        for (; q < s; q++) norm[q] += ar[q] * ar[q];
    }
    for (uint32_t q = 0; q < s; q++) {
        norm[q] = sqrtf(norm[q]);
        if (!(norm[q] > NORM_EPS)) norm[q] = NORM_EPS; /* clamped: no gradient through the norm */
        inv[q] = 1.0f / norm[q];
        tf[q] = (float)t[q];
    }
    /* a <- A_hat; da <- G = gscale * (A_hat - A'_hat); dot[q] = A_hat[:,q] . G[:,q] */
    double lb = 0.0;
    apd__vf vg = apd__vsplat(gscale);
    for (uint32_t q = 0; q < s; q++) dot[q] = 0.0f;
    for (uint32_t r = 0; r < s; r++) {
        float *ar = a + (size_t)r * s, *dr = da + (size_t)r * s;
        float tr = tf[r];
        apd__vf vtr = apd__vsplat(tr), acc = {0};
        uint32_t q = 0;
        for (; q + APD__VW <= s; q += APD__VW) {
            apd__vf ah = apd__vld(ar + q) * apd__vld(inv + q);
            apd__vi same = apd__vld(tf + q) == vtr;
            apd__vf th = (apd__vf)((apd__vi)apd__vld(tnorm + q) & same);
            apd__vf d = ah - th, g = vg * d;
            acc += d * d;
            apd__vst(ar + q, ah);
            apd__vst(dr + q, g);
            apd__vst(dot + q, apd__vld(dot + q) + ah * g);
        }
        float part = 0.0f;
        for (int l = 0; l < APD__VW; l++) part += acc[l];
        lb += part;
        for (; q < s; q++) {
            float ah = ar[q] * inv[q];
            float th = tf[q] == tr ? tnorm[q] : 0.0f;
            float d = ah - th;
            lb += (double)d * d;
            ar[q] = ah;
            dr[q] = gscale * d;
            dot[q] += ah * dr[q];
        }
    }
    cx->vals[bi] = lb / s;
    if (!cx->dm) return;
    /* dA[:,q] = (G[:,q] - A_hat[:,q] dot[q]) / norm[q]  (only G/eps when the norm is clamped) */
    for (uint32_t q = 0; q < s; q++)
        if (!(norm[q] > NORM_EPS)) dot[q] = 0.0f;
    for (uint32_t r = 0; r < s; r++) {
        const float *ar = a + (size_t)r * s;
        float *dr = da + (size_t)r * s;
        uint32_t q = 0;
        for (; q + APD__VW <= s; q += APD__VW)
            apd__vst(dr + q, (apd__vld(dr + q) - apd__vld(ar + q) * apd__vld(dot + q)) * apd__vld(inv + q));
        for (; q < s; q++) dr[q] = (dr[q] - ar[q] * dot[q]) * inv[q];
    }
    /* dF (K, S) = F (dA + dA^T) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k, (int)s, (int)s, 1.0f, f, (int)s, da, (int)s, 0.0f,
                df, (int)s);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)k, (int)s, (int)s, 1.0f, f, (int)s, da, (int)s, 1.0f,
                df, (int)s);
    float *db = cx->dm + (size_t)bi * k * p;
    for (uint32_t j = 0; j < k; j++)
        for (uint32_t q = 0; q < s; q++) db[(size_t)j * p + sb[q]] += df[(size_t)j * s + q];
}

apd_status apd__palette_loss_la_pool(apd_pool *pool, double *value, float *dm, float weight, const float *m,
                                     const uint8_t *target, const uint32_t *sample, uint32_t b, uint32_t k,
                                     uint32_t p, uint32_t s)
{
    APD_RETURN_IF(!value || !m || !target || !sample || b == 0 || k == 0 || k > APD_MAX_COLORS || p == 0 ||
                      s == 0 || s > p,
                  APD_EINVAL);
    *value = 0.0;
    for (size_t i = 0; i < (size_t)b * s; i++) APD_RETURN_IF(sample[i] >= p, APD_EINVAL);
    for (size_t i = 0; i < (size_t)b * p; i++) APD_RETURN_IF(target[i] >= k, APD_EINVAL);
    uint32_t nt = apd_pool_threads(pool);
    size_t ss = (size_t)s * s, ks = (size_t)k * s;
    la_buf *buf = calloc(nt, sizeof *buf);
    double *vals = calloc(b, sizeof(double));
    apd_status st = APD_OK;
    if (!buf || !vals) {
        st = APD_ENOMEM;
        goto done;
    }
    for (uint32_t t = 0; t < nt; t++) {
        la_buf *B = &buf[t];
        B->f = malloc(ks * sizeof(float));
        B->df = malloc(ks * sizeof(float));
        B->a = malloc(ss * sizeof(float));
        B->da = malloc(ss * sizeof(float));
        B->norm = malloc((size_t)s * sizeof(float));
        B->dot = malloc((size_t)s * sizeof(float));
        B->tnorm = malloc((size_t)s * sizeof(float));
        B->inv = malloc((size_t)s * sizeof(float));
        B->tf = malloc((size_t)s * sizeof(float));
        B->t = malloc(s);
        if (!B->f || !B->df || !B->a || !B->da || !B->norm || !B->dot || !B->tnorm || !B->inv || !B->tf || !B->t) {
            st = APD_ENOMEM;
            goto done;
        }
    }
    la_ctx cx = {dm, weight, m, target, sample, b, k, p, s, buf, vals};
    apd_pool_run(pool, b, la_image, &cx);
    double total = 0.0;
    for (uint32_t i = 0; i < b; i++) total += vals[i];
    *value = total / b;
done:
    if (buf)
        for (uint32_t t = 0; t < nt; t++) {
            la_buf *B = &buf[t];
            free(B->f); free(B->df); free(B->a); free(B->da); free(B->norm); free(B->dot);
            free(B->tnorm); free(B->inv); free(B->tf); free(B->t);
        }
    free(buf);
    free(vals);
    return st;
}

apd_status apd_palette_loss_la(double *value, float *dm, float weight, const float *m, const uint8_t *target,
                               const uint32_t *sample, uint32_t b, uint32_t k, uint32_t p, uint32_t s)
{
    return apd__palette_loss_la_pool(NULL, value, dm, weight, m, target, sample, b, k, p, s);
}

uint32_t apd_palette_la_sample(uint32_t *out, uint32_t b, uint32_t p, float ratio, uint64_t seed, uint64_t step)
{
    if (!out || p == 0 || !(ratio > 0.0f)) return 0;
    double sd = (double)ratio * p;
    uint32_t s = sd >= p ? p : (uint32_t)sd; /* int(0.3 * P) */
    if (s == 0) return 0;
    uint32_t *perm = malloc((size_t)p * sizeof(uint32_t));
    apd__rng r;
    apd__rng_seed(&r, apd__mix64(seed ^ RNG_TAG_SAMPLE), step);
    for (uint32_t bi = 0; bi < b; bi++) {
        uint32_t *o = out + (size_t)bi * s;
        if (perm) {
            for (uint32_t q = 0; q < p; q++) perm[q] = q;
            for (uint32_t j = 0; j < s; j++) {
                uint32_t x = j + (uint32_t)apd__rng_below(&r, p - j);
                uint32_t tmp = perm[j]; perm[j] = perm[x]; perm[x] = tmp;
                o[j] = perm[j];
            }
        } else {
            /* no memory for the permutation: Floyd's algorithm with a linear membership test */
            uint32_t n = 0;
            for (uint32_t j = p - s; j < p; j++) {
                uint32_t x = (uint32_t)apd__rng_below(&r, (uint64_t)j + 1), hit = 0;
                for (uint32_t t = 0; t < n; t++) hit |= o[t] == x;
                o[n++] = hit ? j : x;
            }
        }
    }
    free(perm);
    return s;
}

void apd_palette_color_opts_default(apd_palette_color_opts *cfg, uint32_t c, const float *mean, const float *std)
{
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->w_lm = 1.0f; cfg->w_lb = 1.0f; cfg->w_la = 3.0f; cfg->w_conf = 0.0f;
    cfg->la_ratio = 0.3f;
    for (uint32_t i = 0; i < 4; i++) {
        cfg->mean[i] = (mean && i < c) ? mean[i] : 0.0f;
        cfg->std[i] = (std && i < c) ? std[i] : 1.0f;
    }
    apd_palette_fwd_opts_default(&cfg->fwd);
}

static apd_status ensure_dm(apd_palette_ws *ws, size_t n)
{
    if (ws->s_dm_len < n) {
        float *d = realloc(ws->s_dm, n * sizeof(float));
        if (!d) return APD_ENOMEM;
        ws->s_dm = d;
        ws->s_dm_len = n;
    }
    memset(ws->s_dm, 0, n * sizeof(float));
    return APD_OK;
}

/* Colour losses of the last forward on ws into ws->s_dm (zeroed first); targets may be NULL
 * when w_la == 0. */
static apd_status color_losses(apd_palette_losses *out, apd_palette_ws *ws, const uint8_t *targets,
                               const apd_palette_color_opts *cfg, uint64_t seed, uint64_t step)
{
    uint32_t b = ws->b, k = ws->k, p = ws->p;
    APD_TRY(ensure_dm(ws, (size_t)b * k * p));
    float *dm = ws->s_dm;
    out->lm = apd_palette_loss_lm(cfg->w_lm != 0.0f ? dm : NULL, cfg->w_lm, ws->m, b, k, p);
    out->lb = apd_palette_loss_lb(cfg->w_lb != 0.0f ? dm : NULL, cfg->w_lb, ws->m, b, k, p);
    /* Lconf costs a log per probability: computed only when it is used */
    out->conf = cfg->w_conf != 0.0f ? apd_palette_loss_conf(dm, cfg->w_conf, ws->m, b, k, p) : 0.0;
    out->la = 0.0;
    if (cfg->w_la != 0.0f && targets) {
        double sd = (double)cfg->la_ratio * p;
        uint32_t s = sd >= p ? p : (uint32_t)sd;
        if (s > 0) {
            uint32_t *sample = malloc((size_t)b * s * sizeof(uint32_t));
            if (!sample) return APD_ENOMEM;
            apd_palette_la_sample(sample, b, p, cfg->la_ratio, seed, step);
            apd_status st =
                apd__palette_loss_la_pool(ws->pool, &out->la, dm, cfg->w_la, ws->m, targets, sample, b, k, p, s);
            free(sample);
            APD_TRY(st);
        }
    }
    out->total = cfg->w_lm * out->lm + cfg->w_lb * out->lb + cfg->w_la * out->la + cfg->w_conf * out->conf;
    return APD_OK;
}

apd_status apd_palette_color_step(apd_palette_net *net, apd_palette_ws *ws, apd_palette_losses *out,
                                  const float *x_sub, uint32_t b, uint32_t h, uint32_t w,
                                  const apd_palette_color_opts *cfg, uint64_t seed, uint64_t step)
{
    APD_RETURN_IF(!net || !ws || !x_sub || !cfg, APD_EINVAL);
    apd_palette_losses tmp;
    if (!out) out = &tmp;
    memset(out, 0, sizeof *out);
    apd_palette_fwd_opts fo = cfg->fwd;
    fo.straight_through = 0;
    APD_TRY(apd_palette_forward(net, ws, NULL, x_sub, b, h, w, &fo));
    uint8_t *targets = NULL;
    if (cfg->w_la != 0.0f) {
        targets = malloc((size_t)b * ws->p);
        if (!targets) return APD_ENOMEM;
        apd_status st =
            apd__palette_la_targets_pool(ws->pool, targets, x_sub, b, ws->c, h, w, ws->k, cfg->mean, cfg->std);
        if (st != APD_OK) {
            free(targets);
            return st;
        }
    }
    apd_status st = color_losses(out, ws, targets, cfg, seed, step);
    free(targets);
    APD_TRY(st);
    return apd_palette_backward(net, ws, NULL, NULL, ws->s_dm, x_sub, b, h, w, 1.0f);
}

apd_status apd_palette_warmup(apd_palette_net *net, apd_palette_ws *ws, apd_palette_losses *last, const float *x,
                              uint32_t b, uint32_t h, uint32_t w, uint32_t steps, float recon_weight,
                              const apd_palette_color_opts *cfg, const apd_palette_sgd_opts *sgd, uint64_t seed)
{
    APD_RETURN_IF(!net || !ws || !x || !cfg || !sgd, APD_EINVAL);
    APD_RETURN_IF(b < 1 || b > ws->max_b || (uint64_t)h * w > ws->max_p || h == 0 || w == 0, APD_ESHAPE);
    uint32_t c = ws->c, p = h * w;
    size_t n = (size_t)b * c * p;
    apd_status st = APD_OK;
    float *y = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
    uint8_t *targets = cfg->w_la != 0.0f ? malloc((size_t)b * p) : NULL;
    if (!y || !dy || (cfg->w_la != 0.0f && !targets)) {
        st = APD_ENOMEM;
        goto done;
    }
    if (targets &&
        (st = apd__palette_la_targets_pool(ws->pool, targets, x, b, c, h, w, ws->k, cfg->mean, cfg->std)) != APD_OK)
        goto done;
    apd_palette_fwd_opts fo = cfg->fwd;
    fo.straight_through = 0; /* the reconstruction trains the soft path */
    apd_palette_losses L;
    memset(&L, 0, sizeof L);
    for (uint32_t it = 0; it < steps; it++) {
        apd_palette_net_zero_grad(net);
        if ((st = apd_palette_forward(net, ws, y, x, b, h, w, &fo)) != APD_OK) goto done;
        double se = 0.0;
        float g = (float)(2.0 * recon_weight / (double)n);
        for (size_t i = 0; i < n; i++) {
            float d = y[i] - x[i];
            se += (double)d * d;
            dy[i] = g * d;
        }
        if ((st = color_losses(&L, ws, targets, cfg, seed, it)) != APD_OK) goto done;
        L.recon = se / (double)n;
        L.total += recon_weight * L.recon;
        if ((st = apd_palette_backward(net, ws, NULL, recon_weight != 0.0f ? dy : NULL, ws->s_dm, x, b, h, w,
                                       1.0f)) != APD_OK)
            goto done;
        apd_palette_net_step(net, sgd);
    }
    apd_palette_net_zero_grad(net);
    if (last) *last = L;
    /* leave ws holding the final network's forward (for apd_palette_stats_compute) */
    if (steps > 0) st = apd_palette_forward(net, ws, NULL, x, b, h, w, &fo);
done:
    free(y);
    free(dy);
    free(targets);
    return st;
}
