/* nn/sgd.c: SGD with momentum and weight decay exactly as torch.optim.SGD (dampening 0,
 * no Nesterov): the one update kernel (apd_sgd_update, shared by every optimizer in the
 * library), the apd_sgd handle that owns a momentum buffer, and the step learning-rate
 * schedule. See apd/nn.h. */
#include <stdlib.h>
#include <string.h>

#include "apd/nn.h"
#include "common/internal.h"

struct apd_sgd {
    size_t n;
    float lr, momentum, wd;
    int started; /* 0 until the first step after create/reset: v = g then */
    float *v;    /* [n] momentum buffer */
};

apd_status apd_sgd_create(apd_sgd **out, size_t n, float lr, float momentum, float weight_decay)
{
    APD_RETURN_IF(out == NULL, APD_EINVAL);
    *out = NULL;
    APD_RETURN_IF(n == 0, APD_EINVAL);
    size_t bytes;
    APD_RETURN_IF(!apd__mul_ok(n, sizeof(float), &bytes), APD_EOVERFLOW);
    apd_sgd *o = calloc(1, sizeof *o);
    APD_RETURN_IF(o == NULL, APD_ENOMEM);
    o->v = momentum != 0.0f ? malloc(bytes) : NULL;
    if (momentum != 0.0f && o->v == NULL) {
        free(o);
        return APD_ENOMEM;
    }
    o->n = n;
    o->lr = lr;
    o->momentum = momentum;
    o->wd = weight_decay;
    *out = o;
    return APD_OK;
}

void apd_sgd_free(apd_sgd *o)
{
    if (o == NULL) return;
    free(o->v);
    free(o);
}

void apd_sgd_set_lr(apd_sgd *o, float lr) { o->lr = lr; }
float apd_sgd_get_lr(const apd_sgd *o) { return o->lr; }
void apd_sgd_reset(apd_sgd *o) { o->started = 0; }

void apd_sgd_update(float *w, float *v, const float *g, size_t n, float lr, float momentum,
                    float weight_decay, int first)
{
    const float mu = momentum, wd = weight_decay;
    if (v == NULL) {
        if (wd != 0.0f)
            for (size_t i = 0; i < n; i++) w[i] -= lr * (g[i] + wd * w[i]);
        else
            for (size_t i = 0; i < n; i++) w[i] -= lr * g[i];
        return;
    }
    /* the four variants written out so that each loop is branch-free */
    if (wd != 0.0f && first)
        for (size_t i = 0; i < n; i++) {
            v[i] = g[i] + wd * w[i];
            w[i] -= lr * v[i];
        }
    else if (wd != 0.0f)
        for (size_t i = 0; i < n; i++) {
            v[i] = mu * v[i] + (g[i] + wd * w[i]);
            w[i] -= lr * v[i];
        }
    else if (first)
        for (size_t i = 0; i < n; i++) {
            v[i] = g[i];
            w[i] -= lr * v[i];
        }
    else
        for (size_t i = 0; i < n; i++) {
            v[i] = mu * v[i] + g[i];
            w[i] -= lr * v[i];
        }
}

void apd_sgd_step(apd_sgd *o, float *w, const float *g)
{
    apd_sgd_update(w, o->v, g, o->n, o->lr, o->momentum, o->wd, !o->started);
    if (o->v) o->started = 1;
}

float apd_lr_step(float base_lr, uint32_t epoch, const uint32_t *milestones, size_t n_milestones,
                  float gamma)
{
    float lr = base_lr;
    for (size_t i = 0; i < n_milestones; i++)
        if (milestones[i] <= epoch) lr *= gamma;
    return lr;
}
