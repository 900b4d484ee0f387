/* distill/palette_init.c: colour-guided initialisation of the palette network (collapse
 * remedy "kmeans-init"; see apd/palette.h).
 *
 * Why: the published network starts from PyTorch's random init, where the softmax over K is
 * nearly uniform, the soft quantization flattens every image, and the first DM gradient
 * saturates it onto 2 colours (docs/method.md "Known pitfall"). The network is a per-pixel
 * function of colour shared by all images, so the best it can represent is one global
 * partition of colour space; a Voronoi partition is linear in x, and the MLP represents it
 * exactly:
 *
 *     -s ||x - c_k||^2 + s ||x||^2 = s (2 c_k . x - ||c_k||^2)        (same argmax, same softmax)
 *
 * Hidden unit j < C carries a (x_j + B_j) (W1 row a e_j, bias a B_j with B_j > -min x_j, so
 * the ReLU is the identity on the data), unit C is the constant a (W1 row 0, bias a), and W2
 * maps them to the logits above (a = sqrt(s), the scale split between the layers). The other hidden units keep their random W1, b1 with zero W2 columns,
 * so they start silent but train. The centres are a seeded k-means of the images' pixels
 * and s = 1 / (2 sigma^2) with sigma^2 the pooled per-channel within-cluster variance: the
 * softmax is then the posterior of an isotropic Gaussian mixture, close to hard where
 * clusters are well separated.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apd/palette.h"
#include "common/internal.h"
#include "common/rng.h"

#define KM_STREAM 0x6B6D65616E73ull /* "kmeans" */
#define KM_MAX_SAMPLE 65536u
/* Floor of sigma^2 (normalised units^2): logit scale s <= 40. A sharper softmax makes the
 * gradient that reaches boundary pixels through it large: on Fashion-MNIST IPC 1 (s = 400
 * from the tight grey clusters) the synthetic pixels ran away (storage MSE 136, 62.7 %);
 * s_eff = 25 gave 0.63 and 68.0 %, s_eff = 100 7.0 and 63.8 %. The CIFAR runs had s = 25-37. */
#define KM_MIN_VAR 0.0125

static double sqdist(const float *a, const double *c, uint32_t ch)
{
    double d = 0.0;
    for (uint32_t j = 0; j < ch; j++) {
        double t = (double)a[j] - c[j];
        d += t * t;
    }
    return d;
}

/* nearest centre of point a; *dist gets its squared distance */
static uint32_t nearest(const float *a, const double *cent, uint32_t k, uint32_t ch, double *dist)
{
    uint32_t best = 0;
    double bd = DBL_MAX;
    for (uint32_t q = 0; q < k; q++) {
        double d = sqdist(a, cent + (size_t)q * ch, ch);
        if (d < bd) {
            bd = d;
            best = q;
        }
    }
    *dist = bd;
    return best;
}

/* k-means state over ns sample points of ch channels. */
typedef struct km_state {
    uint32_t ns, k, ch;
    float *pts;     /* [ns, ch] */
    double *cent;   /* [k, ch] */
    double *acc;    /* [k, ch] */
    double *dmin;   /* [ns] squared distance to the nearest centre */
    uint32_t *asg;  /* [ns] */
    uint32_t *cnt;  /* [k] */
} km_state;

/* The sample: every pixel of x (b images of p pixels) when they fit, else ns seeded draws
 * (NCHW -> point rows). */
static void km_sample(km_state *m, apd__rng *r, const float *x, uint64_t p, uint64_t total)
{
    uint32_t ch = m->ch;
    for (uint32_t i = 0; i < m->ns; i++) {
        uint64_t g = m->ns == total ? i : apd__rng_below(r, total);
        uint64_t img = g / p, px = g % p;
        for (uint32_t j = 0; j < ch; j++) m->pts[(size_t)i * ch + j] = x[(img * ch + j) * p + px];
    }
}

/* k-means++ seeding. */
static void km_seed(km_state *m, apd__rng *r)
{
    uint32_t ns = m->ns, ch = m->ch;
    uint32_t first = (uint32_t)apd__rng_below(r, ns);
    for (uint32_t j = 0; j < ch; j++) m->cent[j] = m->pts[(size_t)first * ch + j];
    for (uint32_t i = 0; i < ns; i++) m->dmin[i] = sqdist(m->pts + (size_t)i * ch, m->cent, ch);
    for (uint32_t q = 1; q < m->k; q++) {
        double sum = 0.0;
        for (uint32_t i = 0; i < ns; i++) sum += m->dmin[i];
        uint32_t pick = 0;
        if (sum > 0.0) {
            double u = apd__rng_uniform_d(r) * sum, run = 0.0;
            pick = ns - 1;
            for (uint32_t i = 0; i < ns; i++) {
                run += m->dmin[i];
                if (run > u) {
                    pick = i;
                    break;
                }
            }
        } else {
            pick = (uint32_t)apd__rng_below(r, ns); /* fewer distinct colours than K */
        }
        double *cq = m->cent + (size_t)q * ch;
        for (uint32_t j = 0; j < ch; j++) cq[j] = m->pts[(size_t)pick * ch + j];
        for (uint32_t i = 0; i < ns; i++) {
            double d = sqdist(m->pts + (size_t)i * ch, cq, ch);
            if (d < m->dmin[i]) m->dmin[i] = d;
        }
    }
}

/* Up to iters Lloyd iterations; an emptied centre moves to the point farthest from its
 * centre. Returns the final sum of squared distances; *done_iters the steps run. */
static double km_lloyd(km_state *m, uint32_t iters, uint32_t *done_iters)
{
    uint32_t ns = m->ns, k = m->k, ch = m->ch;
    double sse = 0.0;
    *done_iters = 0;
    for (uint32_t it = 0; it <= iters; it++) {
        uint32_t changed = 0;
        sse = 0.0;
        for (uint32_t i = 0; i < ns; i++) {
            uint32_t a = nearest(m->pts + (size_t)i * ch, m->cent, k, ch, &m->dmin[i]);
            if (it == 0 || a != m->asg[i]) changed++;
            m->asg[i] = a;
            sse += m->dmin[i];
        }
        if (it == iters || (it > 0 && changed == 0)) break;
        *done_iters = it + 1;
        memset(m->acc, 0, (size_t)k * ch * sizeof(double));
        memset(m->cnt, 0, (size_t)k * sizeof(uint32_t));
        for (uint32_t i = 0; i < ns; i++) {
            m->cnt[m->asg[i]]++;
            for (uint32_t j = 0; j < ch; j++) m->acc[(size_t)m->asg[i] * ch + j] += m->pts[(size_t)i * ch + j];
        }
        for (uint32_t q = 0; q < k; q++) {
            if (m->cnt[q]) {
                for (uint32_t j = 0; j < ch; j++)
                    m->cent[(size_t)q * ch + j] = m->acc[(size_t)q * ch + j] / m->cnt[q];
                continue;
            }
            uint32_t far = 0;
            for (uint32_t i = 1; i < ns; i++)
                if (m->dmin[i] > m->dmin[far]) far = i;
            for (uint32_t j = 0; j < ch; j++) m->cent[(size_t)q * ch + j] = m->pts[(size_t)far * ch + j];
            m->dmin[far] = 0.0;
        }
    }
    return sse;
}

/* Set the network to the Voronoi partition of the centres cent (k x ch) at logit scale s;
 * x (b images of p pixels) gives the offsets of the identity units. Momentum is reset. */
static void set_partition(apd_palette_net *net, const double *cent, double s, const float *x, uint64_t b,
                          uint64_t p)
{
    uint32_t ch = net->c, k = net->k, hid = net->hidden;
    /* identity units: offsets above the lowest value of each channel over all pixels */
    double off[4] = {1.0, 1.0, 1.0, 1.0};
    for (uint32_t j = 0; j < ch; j++) {
        float lo = FLT_MAX;
        for (uint64_t img = 0; img < b; img++) {
            const float *xc = x + (img * ch + j) * p;
            for (uint64_t q = 0; q < p; q++)
                if (xc[q] < lo) lo = xc[q];
        }
        off[j] = (lo < 0.0f ? -(double)lo : 0.0) + 1.0;
    }
    /* the scale is split evenly between the layers (a = sqrt(s) in each): with all of it in
     * W2, a gradient step on W1 is amplified by |W2| and the first colour-loss steps tear the
     * partition apart (measured on CIFAR K 64: hard MSE 0.011 -> 0.12 in 20 steps; split:
     * 0.011 -> 0.011, colours/img 32 -> 35) */
    double a = sqrt(s);
    for (uint32_t u = 0; u < ch; u++) {
        for (uint32_t j = 0; j < ch; j++) net->w1[(size_t)u * ch + j] = u == j ? (float)a : 0.0f;
        net->b1[u] = (float)(a * off[u]);
    }
    for (uint32_t j = 0; j < ch; j++) net->w1[(size_t)ch * ch + j] = 0.0f;
    net->b1[ch] = (float)a;
    for (uint32_t q = 0; q < k; q++) {
        float *row = net->w2 + (size_t)q * hid;
        const double *cq = cent + (size_t)q * ch;
        double cc = 0.0, cb = 0.0;
        for (uint32_t j = 0; j < ch; j++) {
            row[j] = (float)(2.0 * a * cq[j]);
            cc += cq[j] * cq[j];
            cb += cq[j] * off[j];
        }
        row[ch] = (float)(-a * (cc + 2.0 * cb));
        for (uint32_t u = ch + 1; u < hid; u++) row[u] = 0.0f;
    }
    memset(net->mom, 0, net->n_params * sizeof(float));
    net->mom_init = 0;
}

apd_status apd_palette_net_init_kmeans(apd_palette_net *net, apd_palette_kmeans_info *info, const float *x,
                                       uint32_t b, uint32_t h, uint32_t w, uint32_t iters, uint64_t seed)
{
    APD_RETURN_IF(!net || !net->params || !x, APD_EINVAL);
    APD_RETURN_IF(b == 0 || h == 0 || w == 0, APD_ESHAPE);
    uint32_t ch = net->c, k = net->k;
    APD_RETURN_IF(net->hidden < ch + 1, APD_ESHAPE); /* needs C identity units and one constant unit */
    uint64_t p = (uint64_t)h * w, total = (uint64_t)b * p;
    /* a network of the per-image normalised colour is set from (and clusters) those */
    float *xn = NULL;
    if (net->input == APD_PALETTE_INPUT_IMAGE_NORM) {
        APD_RETURN_IF(total > SIZE_MAX / sizeof(float) / ch, APD_EOVERFLOW);
        xn = malloc((size_t)total * ch * sizeof(float));
        if (!xn) return APD_ENOMEM;
        for (uint32_t i = 0; i < b; i++)
            apd_palette_image_norm(xn + (size_t)i * ch * p, NULL, x + (size_t)i * ch * p, ch, (uint32_t)p);
        x = xn;
    }
    km_state m;
    m.k = k;
    m.ch = ch;
    m.ns = total < KM_MAX_SAMPLE ? (uint32_t)total : KM_MAX_SAMPLE;
    if (m.ns < k) m.ns = (uint32_t)(total < k ? total : k);
    m.pts = malloc((size_t)m.ns * ch * sizeof(float));
    m.cent = malloc((size_t)k * ch * sizeof(double));
    m.acc = malloc((size_t)k * ch * sizeof(double));
    m.dmin = malloc((size_t)m.ns * sizeof(double));
    m.asg = malloc((size_t)m.ns * sizeof(uint32_t));
    m.cnt = malloc((size_t)k * sizeof(uint32_t));
    apd_status st = APD_OK;
    if (!m.pts || !m.cent || !m.acc || !m.dmin || !m.asg || !m.cnt) {
        st = APD_ENOMEM;
    } else {
        apd__rng r;
        apd__rng_seed(&r, seed, KM_STREAM);
        km_sample(&m, &r, x, p, total);
        km_seed(&m, &r);
        uint32_t done_iters;
        double sse = km_lloyd(&m, iters, &done_iters);
        double var = sse / ((double)m.ns * ch);
        if (var < KM_MIN_VAR) var = KM_MIN_VAR;
        double s = 1.0 / (2.0 * var);
        set_partition(net, m.cent, s, x, b, p);
        if (info) {
            info->samples = m.ns;
            info->iters = done_iters;
            info->sse_per_channel = sse / ((double)m.ns * ch);
            info->scale = s;
        }
    }
    free(m.pts);
    free(m.cent);
    free(m.acc);
    free(m.dmin);
    free(m.asg);
    free(m.cnt);
    free(xn);
    return st;
}
