/* nn/pool.c: the static-schedule thread pool of the NN engine (see apd/nn.h).
 *
 * Design: n-1 worker threads plus the caller's thread. apd_pool_run publishes a job
 * (fn, ctx, n_tasks) under a mutex and bumps a generation counter; worker t (and the caller
 * as thread 0) runs tasks t, t+T, t+2T, ... . Static assignment (not work stealing) is what
 * makes per-thread accumulators reproducible. Jobs are coarse (one per network pass), so a
 * condition variable is cheap enough; no spinning, since the cores are shared.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

#include "apd/nn.h"
#include "common/internal.h"
#include "nn/nn_internal.h"

struct apd_pool {
    uint32_t n;            /* threads in total, including the caller */
    pthread_t *threads;    /* n - 1 workers */
    pthread_mutex_t mu;    /* guards everything below */
    pthread_cond_t cv_job; /* workers wait for a new generation */
    pthread_cond_t cv_done;
    pthread_mutex_t run_mu; /* serialises apd_pool_run callers */
    uint64_t generation;
    uint32_t pending;      /* workers still busy with the current job */
    int stop;
    apd_pool_fn fn;
    void *ctx;
    uint32_t n_tasks;
};

typedef struct worker_arg {
    apd_pool *pool;
    uint32_t id;
} worker_arg;

static void run_share(apd_pool *p, uint32_t id, apd_pool_fn fn, void *ctx, uint32_t n_tasks)
{
    for (uint32_t t = id; t < n_tasks; t += p->n) fn(ctx, t, id);
}

static void *worker_main(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    apd_pool *p = wa.pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->cv_job, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        apd_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        uint32_t n_tasks = p->n_tasks;
        pthread_mutex_unlock(&p->mu);
        run_share(p, wa.id, fn, ctx, n_tasks);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

apd_status apd_pool_create(apd_pool **out, uint32_t n_threads)
{
    APD_RETURN_IF(out == NULL, APD_EINVAL);
    *out = NULL;
    if (n_threads == 0) n_threads = 1;
    APD_RETURN_IF(n_threads > 256, APD_EINVAL);
    apd_pool *p = calloc(1, sizeof *p);
    APD_RETURN_IF(p == NULL, APD_ENOMEM);
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_cond_init(&p->cv_job, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    apd__blas_init();
    openblas_set_num_threads(1);
    if (n_threads > 1) {
        p->threads = calloc(n_threads - 1, sizeof *p->threads);
        if (p->threads == NULL) {
            apd_pool_free(p);
            return APD_ENOMEM;
        }
        for (uint32_t i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa == NULL) {
                p->n = i; /* join the ones already started */
                apd_pool_free(p);
                return APD_ENOMEM;
            }
            wa->pool = p;
            wa->id = i;
            if (apd__thread_start(&p->threads[i - 1], worker_main, wa) != 0) {
                free(wa);
                p->n = i;
                apd_pool_free(p);
                return APD_EIO;
            }
        }
    }
    *out = p;
    return APD_OK;
}

void apd_pool_free(apd_pool *p)
{
    if (p == NULL) return;
    if (p->threads) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->cv_job);
        pthread_mutex_unlock(&p->mu);
        for (uint32_t i = 1; i < p->n; i++) pthread_join(p->threads[i - 1], NULL);
        free(p->threads);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_mu);
    pthread_cond_destroy(&p->cv_job);
    pthread_cond_destroy(&p->cv_done);
    free(p);
}

uint32_t apd_pool_threads(const apd_pool *p) { return p ? p->n : 1; }

void apd_pool_run(apd_pool *p, uint32_t n_tasks, apd_pool_fn fn, void *ctx)
{
    if (n_tasks == 0) return;
    if (p == NULL || p->n == 1 || n_tasks == 1) {
        for (uint32_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->run_mu);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->cv_job);
    pthread_mutex_unlock(&p->mu);
    run_share(p, 0, fn, ctx, n_tasks);
    pthread_mutex_lock(&p->mu);
    while (p->pending != 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_mu);
}

void apd_nn_set_blas_threads(uint32_t n) { openblas_set_num_threads(n == 0 ? 1 : (int)n); }
