/* nn/dsa.c: DSA differentiable augmentation, parameter draws + forward/backward kernels.
 *
 * Contract: see include/apd/dsa.h. Every op is affine in the image for fixed parameters,
 * so each backward is the transpose of the forward's linear part and needs no cache:
 *   color     din += S^T K^T dout (brightness adds a constant: gradient passes unchanged)
 *   crop      din(y + dy, x + dx) += dout(y, x) where in range
 *   cutout    din += mask * dout
 *   flip      din(y, W - 1 - x) += dout(y, x)
 *   affine    din(corner) += w_corner * dout(y, x) (bilinear weights, zero padding)
 * The affine grid and the bilinear weights are recomputed per image in forward and backward
 * from theta exactly as PyTorch computes them (float32, same operation order), so the two
 * agree to rounding; see tests/dsa/gen_golden.py for the reference formulas.
 */
#include <math.h>
#include <string.h>

#include "apd/dsa.h"
#include "common/internal.h"
#include "common/rng.h"

void apd_dsa_opts_default(apd_dsa_opts *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->strategy = APD_DSA_ALL;
    cfg->prob_flip = 0.5f;
    cfg->ratio_scale = 1.2f;
    cfg->ratio_rotate = 15.0f;
    cfg->ratio_crop_pad = 0.125f;
    cfg->ratio_cutout = 0.5f;
    cfg->brightness = 1.0f;
    cfg->saturation = 2.0f;
    cfg->contrast = 0.5f;
    cfg->align_corners = 0;
}

static const char *const op_names[] = {"none", "color", "crop", "cutout", "flip", "scale", "rotate"};

const char *apd_dsa_op_name(apd_dsa_op op)
{
    if ((unsigned)op < sizeof op_names / sizeof op_names[0]) return op_names[op];
    return "unknown";
}

apd_status apd_dsa_strategy_parse(const char *s, uint32_t *mask)
{
    if (!s || !mask) return APD_EINVAL;
    uint32_t m = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, '_');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int found = 0;
        if (len == 4 && strncmp(p, "none", 4) == 0) {
            found = 1;
        } else {
            for (unsigned op = APD_DSA_COLOR; op <= APD_DSA_ROTATE; op++) {
                if (strlen(op_names[op]) == len && strncmp(p, op_names[op], len) == 0) {
                    m |= APD_DSA_MASK(op);
                    found = 1;
                }
            }
        }
        if (!found) return APD_EINVAL;
        p += len;
        if (*p == '_') p++;
    }
    *mask = m;
    return APD_OK;
}

/* int(ratio * size + 0.5) as Python computes it (truncation of a positive float). */
static uint32_t ratio_size(float ratio, uint32_t size)
{
    double v = (double)ratio * size + 0.5;
    return v <= 0 ? 0 : (uint32_t)v;
}

static void draw_sample(apd_dsa_sample *s, apd_dsa_op op, const apd_dsa_opts *cfg,
                        apd__rng *r, uint32_t h, uint32_t w, uint32_t cut_h, uint32_t cut_w)
{
    memset(s, 0, sizeof *s);
    s->saturation = 1.0f;
    s->contrast = 1.0f;
    s->theta[0] = 1.0f;
    s->theta[4] = 1.0f;
    switch (op) {
    case APD_DSA_COLOR:
        s->brightness = (apd__rng_uniform(r) - 0.5f) * cfg->brightness;
        s->saturation = apd__rng_uniform(r) * cfg->saturation;
        s->contrast = apd__rng_uniform(r) + cfg->contrast;
        break;
    case APD_DSA_CROP: {
        uint32_t sh = ratio_size(cfg->ratio_crop_pad, h), sw = ratio_size(cfg->ratio_crop_pad, w);
        s->dy = (int32_t)apd__rng_below(r, 2u * sh + 1u) - (int32_t)sh;
        s->dx = (int32_t)apd__rng_below(r, 2u * sw + 1u) - (int32_t)sw;
        break;
    }
    case APD_DSA_CUTOUT:
        /* DSA: randint(0, size + (1 - cs % 2)) */
        s->oy = (int32_t)apd__rng_below(r, (uint64_t)h + 1u - (cut_h % 2u));
        s->ox = (int32_t)apd__rng_below(r, (uint64_t)w + 1u - (cut_w % 2u));
        break;
    case APD_DSA_FLIP:
        s->flip = apd__rng_uniform(r) < cfg->prob_flip;
        break;
    case APD_DSA_SCALE: {
        float lo = 1.0f / cfg->ratio_scale, span = cfg->ratio_scale - lo;
        s->theta[0] = apd__rng_uniform(r) * span + lo;
        s->theta[4] = apd__rng_uniform(r) * span + lo;
        break;
    }
    case APD_DSA_ROTATE: {
        const double pi = 3.14159265358979323846;
        double t = ((double)apd__rng_uniform(r) - 0.5) * 2.0 * cfg->ratio_rotate / 180.0 * pi;
        s->theta[0] = (float)cos(t);
        s->theta[1] = (float)-sin(t);
        s->theta[3] = (float)sin(t);
        s->theta[4] = (float)cos(t);
        break;
    }
    default:
        break;
    }
}

/* Stream tag so that DSA draws never collide with other users of the same seed. */
#define DSA_STREAM_TAG 0x4453414175674d6bull /* "DSAAugMk" */

static apd_status draw_common(apd_dsa_params *p, apd_dsa_sample *samples, size_t cap,
                              const apd_dsa_opts *cfg_in, int draw_op, apd_dsa_op op,
                              apd_dsa_mode mode, uint64_t seed, uint64_t stream, uint32_t n,
                              uint32_t h, uint32_t w)
{
    if (!p || !samples || n == 0 || h == 0 || w == 0) return APD_EINVAL;
    if (mode != APD_DSA_SIAMESE && mode != APD_DSA_PER_IMAGE) return APD_EINVAL;
    if ((unsigned)op > APD_DSA_ROTATE) return APD_EINVAL;
    size_t need = mode == APD_DSA_SIAMESE ? 1 : n;
    if (cap < need) return APD_EBUFSIZE;
    apd_dsa_opts dcfg;
    if (!cfg_in) apd_dsa_opts_default(&dcfg);
    const apd_dsa_opts *cfg = cfg_in ? cfg_in : &dcfg;

    apd__rng r;
    apd__rng_seed(&r, seed, apd__mix64(stream ^ DSA_STREAM_TAG));
    if (draw_op) {
        uint32_t enabled[8], ne = 0;
        for (unsigned o = APD_DSA_COLOR; o <= APD_DSA_ROTATE; o++)
            if (cfg->strategy & APD_DSA_MASK(o)) enabled[ne++] = o;
        op = ne ? (apd_dsa_op)enabled[apd__rng_below(&r, ne)] : APD_DSA_NONE;
    }
    p->op = op;
    p->n_samples = (uint32_t)need;
    p->h = h;
    p->w = w;
    p->cut_h = ratio_size(cfg->ratio_cutout, h);
    p->cut_w = ratio_size(cfg->ratio_cutout, w);
    p->align_corners = cfg->align_corners ? 1 : 0;
    p->samples = samples;
    for (size_t i = 0; i < need; i++) draw_sample(&samples[i], op, cfg, &r, h, w, p->cut_h, p->cut_w);
    return APD_OK;
}

apd_status apd_dsa_draw(apd_dsa_params *p, apd_dsa_sample *samples, size_t cap,
                        const apd_dsa_opts *cfg, apd_dsa_mode mode, uint64_t seed,
                        uint64_t stream, uint32_t n, uint32_t h, uint32_t w)
{
    return draw_common(p, samples, cap, cfg, 1, APD_DSA_NONE, mode, seed, stream, n, h, w);
}

apd_status apd_dsa_draw_op(apd_dsa_params *p, apd_dsa_sample *samples, size_t cap,
                           const apd_dsa_opts *cfg, apd_dsa_op op, apd_dsa_mode mode,
                           uint64_t seed, uint64_t stream, uint32_t n, uint32_t h, uint32_t w)
{
    return draw_common(p, samples, cap, cfg, 0, op, mode, seed, stream, n, h, w);
}

/* ---- kernels ------------------------------------------------------------------------- */

static apd_status check(const void *a, const void *b, const apd_dsa_params *p, uint32_t N,
                        uint32_t H, uint32_t W)
{
    if (!a || !b || !p) return APD_EINVAL;
    if ((unsigned)p->op > APD_DSA_ROTATE) return APD_EINVAL;
    if (p->op == APD_DSA_NONE) return APD_OK;
    if (!p->samples) return APD_EINVAL;
    if (p->n_samples != 1 && p->n_samples != N) return APD_ESHAPE;
    if (p->h != H || p->w != W) return APD_ESHAPE;
    return APD_OK;
}

/* color forward for one image x[C, HW] -> y[C, HW] */
static void color_fwd(float *y, const float *x, const apd_dsa_sample *s, size_t C, size_t HW)
{
    const float b = s->brightness, sat = s->saturation, k = s->contrast;
    const float invc = 1.0f / (float)C;
    double sum = 0;
    for (size_t i = 0; i < HW; i++) {
        float m = 0;
        for (size_t c = 0; c < C; c++) m += x[c * HW + i] + b;
        m *= invc;
        for (size_t c = 0; c < C; c++) {
            float v = ((x[c * HW + i] + b) - m) * sat + m;
            y[c * HW + i] = v;
            sum += v;
        }
    }
    const float m2 = (float)(sum / (double)(C * HW));
    for (size_t i = 0; i < C * HW; i++) y[i] = (y[i] - m2) * k + m2;
}

/* din += S^T K^T g, with K = k I + (1-k) mean_chw and S = s I + (1-s) mean_c (both symmetric) */
static void color_bwd(float *dx, const float *g, const apd_dsa_sample *s, size_t C, size_t HW)
{
    const float sat = s->saturation, k = s->contrast;
    double sum = 0;
    for (size_t i = 0; i < C * HW; i++) sum += g[i];
    const float mg = (float)(sum / (double)(C * HW));
    const float invc = 1.0f / (float)C;
    for (size_t i = 0; i < HW; i++) {
        if (C == 1) { /* saturation is the identity */
            dx[i] += k * g[i] + (1.0f - k) * mg;
            continue;
        }
        float mc = 0;
        for (size_t c = 0; c < C; c++) mc += g[c * HW + i];
        mc *= invc;
        const float m2c = k * mc + (1.0f - k) * mg; /* mean_c of K^T g */
        for (size_t c = 0; c < C; c++) {
            const float g2 = k * g[c * HW + i] + (1.0f - k) * mg;
            dx[c * HW + i] += sat * g2 + (1.0f - sat) * m2c;
        }
    }
}

static void crop_fwd(float *y, const float *x, const apd_dsa_sample *s, size_t C, size_t H, size_t W)
{
    for (size_t c = 0; c < C; c++) {
        for (size_t r = 0; r < H; r++) {
            float *yr = y + (c * H + r) * W;
            long sr = (long)r + s->dy;
            if (sr < 0 || sr >= (long)H) {
                memset(yr, 0, W * sizeof *yr);
                continue;
            }
            const float *xr = x + (c * H + (size_t)sr) * W;
            for (size_t q = 0; q < W; q++) {
                long sq = (long)q + s->dx;
                yr[q] = (sq >= 0 && sq < (long)W) ? xr[sq] : 0.0f;
            }
        }
    }
}

static void crop_bwd(float *dx, const float *g, const apd_dsa_sample *s, size_t C, size_t H, size_t W)
{
    for (size_t c = 0; c < C; c++) {
        for (size_t r = 0; r < H; r++) {
            long sr = (long)r + s->dy;
            if (sr < 0 || sr >= (long)H) continue;
            const float *gr = g + (c * H + r) * W;
            float *dr = dx + (c * H + (size_t)sr) * W;
            for (size_t q = 0; q < W; q++) {
                long sq = (long)q + s->dx;
                if (sq >= 0 && sq < (long)W) dr[sq] += gr[q];
            }
        }
    }
}

static long clampl(long v, long lo, long hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Cutout rectangle: DSA zeroes {clamp(o - cs/2 + i, 0, size - 1) : i < cs}, which (clamp
 * being monotone) is the interval [clamp(lo), clamp(hi)]. */
static void cut_range(long o, uint32_t cs, size_t size, long *a, long *b)
{
    long lo = o - (long)(cs / 2), hi = lo + (long)cs - 1;
    *a = clampl(lo, 0, (long)size - 1);
    *b = clampl(hi, 0, (long)size - 1);
    if (cs == 0) { *a = 1; *b = 0; } /* empty */
}

/* y = mask * x (forward: y = x * mask; backward: y += g * mask with acc = 1) */
static void cutout_apply(float *y, const float *x, const apd_dsa_sample *s, uint32_t ch,
                         uint32_t cw, size_t C, size_t H, size_t W, int acc)
{
    long r0, r1, q0, q1;
    cut_range(s->oy, ch, H, &r0, &r1);
    cut_range(s->ox, cw, W, &q0, &q1);
    for (size_t c = 0; c < C; c++) {
        for (size_t r = 0; r < H; r++) {
            const float *xr = x + (c * H + r) * W;
            float *yr = y + (c * H + r) * W;
            int rowcut = (long)r >= r0 && (long)r <= r1;
            for (size_t q = 0; q < W; q++) {
                int cut = rowcut && (long)q >= q0 && (long)q <= q1;
                float v = cut ? 0.0f : xr[q];
                if (acc) yr[q] += v; else yr[q] = v;
            }
        }
    }
}

static void flip_apply(float *y, const float *x, const apd_dsa_sample *s, size_t C, size_t H,
                       size_t W, int acc)
{
    for (size_t row = 0; row < C * H; row++) {
        const float *xr = x + row * W;
        float *yr = y + row * W;
        for (size_t q = 0; q < W; q++) {
            float v = s->flip ? xr[W - 1 - q] : xr[q];
            if (acc) yr[q] += v; else yr[q] = v;
        }
    }
}

/* PyTorch's affine_grid base coordinate of index i of n (linspace(-1, 1, n), scaled by
 * (n-1)/n when align_corners is False) and grid_sample's unnormalisation. */
static float base_coord(size_t i, size_t n, int ac)
{
    if (n <= 1) return 0.0f;
    float step = 2.0f / (float)(n - 1);
    /* torch.linspace fills the first half from the start and the second half from the end */
    float v = (i < n / 2) ? -1.0f + step * (float)i : 1.0f - step * (float)(n - 1 - i);
    if (!ac) v = v * (float)(n - 1) / (float)n;
    return v;
}

static float unnormalize(float g, size_t n, int ac)
{
    return ac ? ((g + 1.0f) / 2.0f) * (float)(n - 1) : ((g + 1.0f) * (float)n - 1.0f) / 2.0f;
}

/* Bilinear taps of output pixel (r, q): 4 input offsets (-1 = outside) and weights. */
static void affine_taps(const float th[6], size_t r, size_t q, size_t H, size_t W, int ac,
                        long idx[4], float wt[4])
{
    const float xn = base_coord(q, W, ac), yn = base_coord(r, H, ac);
    const float gx = xn * th[0] + yn * th[1] + th[2];
    const float gy = xn * th[3] + yn * th[4] + th[5];
    const float ix = unnormalize(gx, W, ac), iy = unnormalize(gy, H, ac);
    const float fx = floorf(ix), fy = floorf(iy);
    const long x0 = (long)fx, y0 = (long)fy, x1 = x0 + 1, y1 = y0 + 1;
    const float ex = ix - fx, ey = iy - fy; /* ix - x0 */
    const float wx0 = ((float)x1 - ix), wy0 = ((float)y1 - iy);
    const long xs[4] = {x0, x1, x0, x1}, ys[4] = {y0, y0, y1, y1};
    const float ws[4] = {wx0 * wy0, ex * wy0, wx0 * ey, ex * ey};
    for (int t = 0; t < 4; t++) {
        int in = xs[t] >= 0 && xs[t] < (long)W && ys[t] >= 0 && ys[t] < (long)H;
        idx[t] = in ? ys[t] * (long)W + xs[t] : -1;
        wt[t] = ws[t];
    }
}

static void affine_fwd(float *y, const float *x, const apd_dsa_sample *s, int ac, size_t C,
                       size_t H, size_t W)
{
    const size_t HW = H * W;
    for (size_t r = 0; r < H; r++) {
        for (size_t q = 0; q < W; q++) {
            long idx[4];
            float wt[4];
            affine_taps(s->theta, r, q, H, W, ac, idx, wt);
            for (size_t c = 0; c < C; c++) {
                const float *xc = x + c * HW;
                float v = 0;
                for (int t = 0; t < 4; t++)
                    if (idx[t] >= 0) v += xc[idx[t]] * wt[t];
                y[c * HW + r * W + q] = v;
            }
        }
    }
}

static void affine_bwd(float *dx, const float *g, const apd_dsa_sample *s, int ac, size_t C,
                       size_t H, size_t W)
{
    const size_t HW = H * W;
    for (size_t r = 0; r < H; r++) {
        for (size_t q = 0; q < W; q++) {
            long idx[4];
            float wt[4];
            affine_taps(s->theta, r, q, H, W, ac, idx, wt);
            for (size_t c = 0; c < C; c++) {
                const float gv = g[c * HW + r * W + q];
                float *dc = dx + c * HW;
                for (int t = 0; t < 4; t++)
                    if (idx[t] >= 0) dc[idx[t]] += wt[t] * gv;
            }
        }
    }
}

apd_status apd_dsa_forward(float *out, const float *in, const apd_dsa_params *p, uint32_t N,
                           uint32_t C, uint32_t H, uint32_t W)
{
    APD_TRY(check(out, in, p, N, H, W));
    const size_t img = (size_t)C * H * W, HW = (size_t)H * W;
    if (p->op == APD_DSA_NONE) {
        memmove(out, in, (size_t)N * img * sizeof *out);
        return APD_OK;
    }
    for (size_t n = 0; n < N; n++) {
        const apd_dsa_sample *s = &p->samples[p->n_samples == 1 ? 0 : n];
        const float *x = in + n * img;
        float *y = out + n * img;
        switch (p->op) {
        case APD_DSA_COLOR: color_fwd(y, x, s, C, HW); break;
        case APD_DSA_CROP: crop_fwd(y, x, s, C, H, W); break;
        case APD_DSA_CUTOUT: cutout_apply(y, x, s, p->cut_h, p->cut_w, C, H, W, 0); break;
        case APD_DSA_FLIP: flip_apply(y, x, s, C, H, W, 0); break;
        case APD_DSA_SCALE:
        case APD_DSA_ROTATE: affine_fwd(y, x, s, p->align_corners, C, H, W); break;
        default: return APD_EINVAL;
        }
    }
    return APD_OK;
}

apd_status apd_dsa_backward(float *din, const float *dout, const apd_dsa_params *p, uint32_t N,
                            uint32_t C, uint32_t H, uint32_t W)
{
    APD_TRY(check(din, dout, p, N, H, W));
    const size_t img = (size_t)C * H * W, HW = (size_t)H * W;
    if (p->op == APD_DSA_NONE) {
        for (size_t i = 0; i < (size_t)N * img; i++) din[i] += dout[i];
        return APD_OK;
    }
    for (size_t n = 0; n < N; n++) {
        const apd_dsa_sample *s = &p->samples[p->n_samples == 1 ? 0 : n];
        const float *g = dout + n * img;
        float *dx = din + n * img;
        switch (p->op) {
        case APD_DSA_COLOR: color_bwd(dx, g, s, C, HW); break;
        case APD_DSA_CROP: crop_bwd(dx, g, s, C, H, W); break;
        case APD_DSA_CUTOUT: cutout_apply(dx, g, s, p->cut_h, p->cut_w, C, H, W, 1); break;
        case APD_DSA_FLIP: flip_apply(dx, g, s, C, H, W, 1); break;
        case APD_DSA_SCALE:
        case APD_DSA_ROTATE: affine_bwd(dx, g, s, p->align_corners, C, H, W); break;
        default: return APD_EINVAL;
        }
    }
    return APD_OK;
}
