/* test_distill_comm.c: class-parallel distillation (apd_distill_comm) without MPI: two or
 * three "processes" are threads of this test, their exchange a shared table and a barrier.
 * On a toy 3-class 8x8 set (blocks of uneven size):
 *  - dm and autopalette (graph-cut, random and herding init): every rank's result equals the one-process result
 *    byte for byte (records, ids, provenance JSON);
 *  - a 2-rank run stopped at a checkpoint, resumed by one process, equals the uninterrupted
 *    one-process run (the checkpoint is rank-count independent);
 *  - both also with the queue of partly trained networks (opts.net_pool), and autopalette
 *    with the class-aware term (opts.ce_weight);
 *  - a failure on rank 0 only (its checkpoint is missing) is every rank's failure, with
 *    rank 0's message; no rank waits forever;
 *  - a bad comm (rank >= size, no exchange) is APD_EINVAL. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/distill.h"
#include "common/rng.h"
#include "distill_test_util.h"

#define MAX_RANKS 3

static apd_dataset g_real;

/* 3 classes x 40 images of 8x8 RGB: a bright square, a horizontal and a vertical gradient,
 * with noise and tints. */
static void make_dataset(apd_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    if (apd_dataset_alloc(ds, 120, 3, 8, 8, 3) != APD_OK) abort();
    apd__rng r;
    apd__rng_seed(&r, 321, 0);
    for (uint64_t i = 0; i < ds->n; i++) {
        uint32_t cls = (uint32_t)(i % 3);
        ds->labels[i] = cls;
        int ox = (int)apd__rng_below(&r, 4), oy = (int)apd__rng_below(&r, 4);
        for (uint32_t ch = 0; ch < 3; ch++) {
            float tint = 0.6f + 0.4f * apd__rng_uniform(&r);
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) {
                    float v = cls == 0   ? ((x >= ox && x < ox + 4 && y >= oy && y < oy + 4) ? 220.0f : 30.0f)
                              : cls == 1 ? 255.0f * (float)x / 7.0f
                                         : 255.0f * (float)y / 7.0f;
                    v = v * tint + 20.0f * apd__rng_normal(&r);
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                    ds->pixels[((i * 3 + ch) * 8 + y) * 8 + x] = (uint8_t)v;
                }
        }
    }
    snprintf(ds->name, sizeof ds->name, "toy3");
}

static void base_opts(apd_distill_opts *o, apd_distill_method m)
{
    apd_distill_opts_default(o);
    o->method = m;
    o->ipc = 3;
    o->colors = 4;
    o->budget = APD_BUDGET_IMAGES;
    o->iters = 6;
    o->batch_real = 12;
    o->color_subset = 5; /* of 9 images: the subset spans every rank */
    o->select_epochs = 1;
    o->seed = 11;
    o->threads = 1;
}

/* ---- the in-process transport ------------------------------------------------------------- */

typedef struct world {
    uint32_t size;
    pthread_barrier_t bar;
    void *bufs[MAX_RANKS];
    uint64_t calls[MAX_RANKS];
} world;

typedef struct rank_ctx {
    world *w;
    apd_distill_comm comm;
    apd_distill_opts o;
    apd_distill_result res;
    apd_err err;
    apd_status st;
} rank_ctx;

static int exchange(void *user, void *buf, const uint64_t *off)
{
    rank_ctx *rc = user;
    world *w = rc->w;
    uint32_t me = rc->comm.rank;
    w->bufs[me] = buf;
    w->calls[me]++;
    pthread_barrier_wait(&w->bar);
    for (uint32_t q = 0; q < w->size; q++)
        if (q != me && off[q + 1] > off[q])
            memcpy((char *)buf + off[q], (const char *)w->bufs[q] + off[q], off[q + 1] - off[q]);
    pthread_barrier_wait(&w->bar);
    return 0;
}

static void *rank_main(void *p)
{
    rank_ctx *rc = p;
    rc->st = apd_distill_run(&g_real, &rc->o, &rc->res, &rc->err);
    return NULL;
}

/* Run o on `size` thread-ranks; ranks[] keep the results (free them with free_ranks). */
static void run_ranks(world *w, rank_ctx *ranks, uint32_t size, const apd_distill_opts *o)
{
    memset(w, 0, sizeof *w);
    w->size = size;
    pthread_barrier_init(&w->bar, NULL, size);
    pthread_t th[MAX_RANKS];
    for (uint32_t r = 0; r < size; r++) {
        memset(&ranks[r], 0, sizeof ranks[r]);
        ranks[r].w = w;
        ranks[r].comm = (apd_distill_comm){r, size, exchange, &ranks[r]};
        ranks[r].o = *o;
        ranks[r].o.comm = &ranks[r].comm;
        ck_assert_int_eq(pthread_create(&th[r], NULL, rank_main, &ranks[r]), 0);
    }
    for (uint32_t r = 0; r < size; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&w->bar);
}

static void free_ranks(rank_ctx *ranks, uint32_t size)
{
    for (uint32_t r = 0; r < size; r++) apd_distill_result_free(&ranks[r].res);
}

/* opts.net_pool on: a queue of 2 networks, a fresh one every 2 iterations */
static void set_pool(apd_distill_opts *o)
{
    o->net_pool = 2;
    o->net_pool_every = 2;
    o->net_pool_steps = 2;
    o->net_pool_batch = 6;
}

/* extras: 1 = the network queue, 2 = the class-aware term (its teacher trained on every rank) */
static void check_split_mode(apd_distill_method m, apd_distill_init init, uint32_t size, apd_palette_mode pm,
                             int extras)
{
    apd_distill_opts o;
    base_opts(&o, m);
    int pool = extras & 1;
    if (pool) set_pool(&o);
    if (extras & 2) {
        o.ce_weight = 5.0f;
        o.ce_teacher_steps = 8;
    }
    o.init = init;
    o.palette_mode = pm;
    o.init_set = 1;
    apd_distill_result one;
    apd_err err;
    apd_status s = apd_distill_run(&g_real, &o, &one, &err);
    ck_assert_msg(s == APD_OK, "%s", err.msg);
    world w;
    rank_ctx ranks[MAX_RANKS];
    run_ranks(&w, ranks, size, &o);
    for (uint32_t r = 0; r < size; r++) {
        ck_assert_msg(ranks[r].st == APD_OK, "rank %u: %s", r, ranks[r].err.msg);
        dt_same_result(&one, &ranks[r].res);
        ck_assert_uint_gt(w.calls[r], o.iters); /* at least one exchange an iteration */
    }
    printf("%s (palette %s%s%s), %u ranks: results identical to one process (%llu exchanges)\n",
           apd_distill_method_name(m), apd_palette_mode_name(pm), pool ? ", network queue" : "",
           (extras & 2) ? ", class-aware term" : "", size,
           (unsigned long long)w.calls[0]);
    free_ranks(ranks, size);
    apd_distill_result_free(&one);
}

static void check_split(apd_distill_method m, apd_distill_init init, uint32_t size)
{
    check_split_mode(m, init, size, APD_PALETTE_NETWORK, 0);
    if (m == APD_DISTILL_AUTOPALETTE) check_split_mode(m, init, size, APD_PALETTE_STORED, 0);
}

START_TEST(dm_split_identical)
{
    check_split(APD_DISTILL_DM, APD_INIT_RANDOM, 2);
    check_split(APD_DISTILL_DM, APD_INIT_RANDOM, 3);
}
END_TEST

START_TEST(autopalette_split_identical)
{
    check_split(APD_DISTILL_AUTOPALETTE, APD_INIT_GRAPHCUT, 2);
    check_split(APD_DISTILL_AUTOPALETTE, APD_INIT_RANDOM, 3);
    /* the herding init: each process picks for its classes with the same networks */
    check_split_mode(APD_DISTILL_AUTOPALETTE, APD_INIT_HERDING, 3, APD_PALETTE_STORED, 0);
    check_split_mode(APD_DISTILL_AUTOPALETTE, APD_INIT_RANDOM, 2, APD_PALETTE_STORED, 2);
}
END_TEST

/* opts.net_pool: every process keeps the same queue, so the file is the one-process file */
START_TEST(net_pool_split_identical)
{
    check_split_mode(APD_DISTILL_DM, APD_INIT_RANDOM, 2, APD_PALETTE_NETWORK, 1);
    check_split_mode(APD_DISTILL_AUTOPALETTE, APD_INIT_RANDOM, 3, APD_PALETTE_STORED, 1);
}
END_TEST

static void check_ckpt_ranks(int pool)
{
    char ck[] = "/tmp/apd-comm-ckpt-XXXXXX";
    int fd = mkstemp(ck);
    ck_assert_int_ge(fd, 0);
    close(fd);
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_AUTOPALETTE);
    if (pool) set_pool(&o);
    apd_distill_result full;
    apd_err err;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &full, &err), APD_OK);
    /* 2 ranks, stopped after iteration 3 (checkpoint by rank 0) */
    apd_distill_opts os = o;
    os.checkpoint_path = ck;
    os.checkpoint_every = 2;
    os.stop_after = 3;
    world w;
    rank_ctx ranks[MAX_RANKS];
    run_ranks(&w, ranks, 2, &os);
    for (uint32_t r = 0; r < 2; r++) ck_assert_int_eq(ranks[r].st, APD_ECANCELED);
    free_ranks(ranks, 2);
    /* resumed by one process, and by 2 ranks */
    apd_distill_opts orr = o;
    orr.resume_path = ck;
    apd_distill_result res;
    apd_status s = apd_distill_run(&g_real, &orr, &res, &err);
    ck_assert_msg(s == APD_OK, "%s", err.msg);
    dt_same_result(&full, &res);
    apd_distill_result_free(&res);
    run_ranks(&w, ranks, 2, &orr);
    for (uint32_t r = 0; r < 2; r++) {
        ck_assert_msg(ranks[r].st == APD_OK, "rank %u: %s", r, ranks[r].err.msg);
        dt_same_result(&full, &ranks[r].res);
    }
    free_ranks(ranks, 2);
    apd_distill_result_free(&full);
    remove(ck);
    printf("checkpoint of 2 ranks resumed by 1 and by 2%s: identical to the uninterrupted run\n",
           pool ? " (network queue)" : "");
}

START_TEST(checkpoint_across_rank_counts)
{
    check_ckpt_ranks(0);
    check_ckpt_ranks(1);
}
END_TEST

START_TEST(failure_on_one_rank)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_DM);
    o.resume_path = "/nonexistent/apd-comm-ckpt"; /* only rank 0 reads it */
    world w;
    rank_ctx ranks[MAX_RANKS];
    run_ranks(&w, ranks, 2, &o);
    for (uint32_t r = 0; r < 2; r++) {
        ck_assert_int_eq(ranks[r].st, APD_ENOENT);
        ck_assert_msg(strstr(ranks[r].err.msg, "/nonexistent/apd-comm-ckpt") != NULL, "rank %u: %s", r,
                      ranks[r].err.msg);
    }
    printf("rank 0: %s\nrank 1: %s\n", ranks[0].err.msg, ranks[1].err.msg);
    free_ranks(ranks, 2);
}
END_TEST

START_TEST(bad_comm)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_DM);
    apd_distill_comm c = {2, 2, exchange, NULL};
    o.comm = &c;
    apd_distill_result res;
    apd_err err;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &res, &err), APD_EINVAL);
    c = (apd_distill_comm){0, 2, NULL, NULL};
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &res, &err), APD_EINVAL);
    c = (apd_distill_comm){0, 1, NULL, NULL}; /* one process: no exchange needed */
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &res, &err), APD_OK);
    apd_distill_result_free(&res);
}
END_TEST

int main(void)
{
    make_dataset(&g_real);
    Suite *s = suite_create("distill_comm");
    TCase *tc = tcase_create("comm");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, bad_comm);
    tcase_add_test(tc, failure_on_one_rank);
    tcase_add_test(tc, dm_split_identical);
    tcase_add_test(tc, autopalette_split_identical);
    tcase_add_test(tc, checkpoint_across_rank_counts);
    tcase_add_test(tc, net_pool_split_identical);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    apd_dataset_free(&g_real);
    return nf == 0 ? 0 : 1;
}
