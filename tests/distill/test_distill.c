/* test_distill.c: tiny end-to-end distillations on a synthetic 2-class 8x8 dataset:
 * DM lowers its (fixed-network) loss, AutoPalette writes valid palette records, two runs
 * with the same seed give identical results, a run stopped at a checkpoint and resumed
 * ends with the same bytes as an uninterrupted run (DM and AutoPalette; also with the queue of
 * partly trained networks, opts.net_pool, which must also change the result, give the same
 * bytes on 1 and 2 threads and refuse bad settings), and status lines and
 * progress arrive only through the callbacks (nothing on stdout/stderr). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apd/distill.h"
#include "apd/quant.h"
#include "apd/format.h"
#include "common/rng.h"
#include "distill_test_util.h"

static apd_dataset g_real;

/* 2 classes x 48 images of 8x8 RGB: class 0 = a bright square on a dark ground, class 1 =
 * a horizontal gradient, both with noise and random colour tints. */
static void make_dataset(apd_dataset *ds, uint32_t c)
{
    memset(ds, 0, sizeof *ds);
    if (apd_dataset_alloc(ds, 96, c, 8, 8, 2) != APD_OK) abort();
    apd__rng r;
    apd__rng_seed(&r, 123, 0);
    for (uint64_t i = 0; i < ds->n; i++) {
        uint32_t cls = (uint32_t)(i % 2);
        ds->labels[i] = cls;
        int ox = (int)apd__rng_below(&r, 4), oy = (int)apd__rng_below(&r, 4);
        for (uint32_t ch = 0; ch < c; ch++) {
            float tint = 0.6f + 0.4f * apd__rng_uniform(&r);
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) {
                    float v;
                    if (cls == 0)
                        v = (x >= ox && x < ox + 4 && y >= oy && y < oy + 4) ? 220.0f : 30.0f;
                    else
                        v = 255.0f * (float)x / 7.0f;
                    v = v * tint + 20.0f * apd__rng_normal(&r);
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                    ds->pixels[((i * c + ch) * 8 + y) * 8 + x] = (uint8_t)v;
                }
        }
    }
    snprintf(ds->name, sizeof ds->name, "toy");
}

static void base_opts(apd_distill_opts *o, apd_distill_method m)
{
    apd_distill_opts_default(o);
    o->method = m;
    o->ipc = 3;
    o->colors = 4;
    o->budget = APD_BUDGET_IMAGES;
    o->iters = 12;
    o->batch_real = 16;
    o->init = APD_INIT_RANDOM;
    o->init_set = 1;
    o->seed = 7;
    o->threads = 2;
    o->warmup_steps = 3;
}

static double stat_of(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(json, k);
    ck_assert_msg(p != NULL, "stats lack %s: %s", key, json);
    return strtod(p + strlen(k), NULL);
}

START_TEST(dm_lowers_loss)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_DM);
    o.iters = 40;
    o.lr_img = 10.0f;    /* 8x8 images: 128-d embeddings give small gradients */
    o.dsa_strategy = 0;  /* a clean objective for a short run: no augmentation, */
    o.batch_real = 48;   /* the whole class as the real batch */
    apd_distill_result res;
    apd_err err;
    apd_status s = apd_distill_run(&g_real, &o, &res, &err);
    ck_assert_msg(s == APD_OK, "%s", err.msg);
    ck_assert_uint_eq(res.n, 6);
    ck_assert_uint_eq(res.kind, APD_KIND_DIRECT);
    double e0 = stat_of(res.stats_json, "eval_loss_initial"), e1 = stat_of(res.stats_json, "eval_loss_stored");
    printf("dm: eval loss %.4f -> %.4f\n", e0, e1);
    ck_assert(e1 < 0.95 * e0);
    apd_distill_result_free(&res);
}
END_TEST

/* Keeps the loss of the last "selection net epoch" status line in *(double *)u. */
static void sel_loss_line(void *u, const char *line)
{
    const char *p = strstr(line, "selection net epoch");
    if (p && (p = strstr(p, "loss "))) *(double *)u = strtod(p + 5, NULL);
}

/* A tiny activation budget (one image per ConvNet pass: real batches embedded image by image,
 * the synthetic images back-propagated one by one, the selection net trained in passes of
 * one image with accumulated gradients) gives the run of the default budget up to float
 * rounding, and is itself deterministic. */
START_TEST(small_activation_budget)
{
    for (int m = 0; m < 2; m++) {
        apd_distill_opts o;
        base_opts(&o, m ? APD_DISTILL_AUTOPALETTE : APD_DISTILL_DM);
        o.iters = 4;
        double sel_whole = -1, sel_part = -1;
        if (!m) { /* the class-aware term's chunked backward too (the teacher trained in passes) */
            o.ce_weight = 0.5f;
            o.ce_teacher_steps = 10;
        }
        if (m) {
            o.log_fn = sel_loss_line;
            o.cb_user = &sel_whole;
            o.init = APD_INIT_GRAPHCUT;
            o.select_epochs = 2;
            o.select_batch = 16;
        }
        apd_distill_result whole, part, again;
        apd_err err;
        ck_assert_msg(apd_distill_run(&g_real, &o, &whole, &err) == APD_OK, "%s", err.msg);
        o.act_budget = 1; /* at least one image per pass */
        o.cb_user = &sel_part;
        ck_assert_msg(apd_distill_run(&g_real, &o, &part, &err) == APD_OK, "%s", err.msg);
        ck_assert_msg(apd_distill_run(&g_real, &o, &again, &err) == APD_OK, "%s", err.msg);
        dt_same_result(&part, &again);
        ck_assert_uint_eq(whole.n, part.n);
        if (m) {
            /* the selection net trained in passes of one image: its last epoch's loss as with
             * whole batches up to rounding (amplified over 12 SGD steps at lr 0.1, momentum
             * 0.9); the graph-cut picks may then differ on near ties, so the pixels are not
             * compared */
            printf("selection net, last epoch loss: whole batches %.4f, one image per pass %.4f\n", sel_whole,
                   sel_part);
            ck_assert_double_gt(sel_whole, 0);
            ck_assert_double_le(fabs(sel_part - sel_whole), 0.01 * sel_whole);
            apd_distill_result_free(&whole);
            apd_distill_result_free(&part);
            apd_distill_result_free(&again);
            continue;
        }
        ck_assert(memcmp(whole.source_ids, part.source_ids, whole.n * sizeof(uint64_t)) == 0);
        double e0 = stat_of(whole.stats_json, "eval_loss_stored"), e1 = stat_of(part.stats_json, "eval_loss_stored");
        double l0 = stat_of(whole.stats_json, "loss_first_iter"), l1 = stat_of(part.stats_json, "loss_first_iter");
        size_t total = (size_t)whole.n * whole.c * whole.h * whole.w, differ = 0;
        int maxd = 0;
        for (size_t i = 0; i < total; i++) {
            int d = abs((int)whole.pixels[i] - (int)part.pixels[i]);
            differ += d != 0;
            if (d > maxd) maxd = d;
        }
        printf("dm, one image per pass vs whole batches: first loss %.6f vs %.6f, stored eval loss %.6f vs %.6f, "
               "pixels differing %zu/%zu (max %d)\n", l0, l1, e0, e1, differ, total, maxd);
        ck_assert_double_le(fabs(l1 - l0), 1e-4 * fabs(l0));
        ck_assert_double_le(fabs(e1 - e0), 1e-3 * fabs(e0));
        ck_assert_int_le(maxd, 1);
        ck_assert_uint_le(differ * 100, total);
        apd_distill_result_free(&whole);
        apd_distill_result_free(&part);
        apd_distill_result_free(&again);
    }
}
END_TEST

START_TEST(random_and_quantized)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_RANDOM);
    apd_distill_result res;
    apd_err err;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &res, &err), APD_OK);
    ck_assert_uint_eq(res.kind, APD_KIND_DIRECT);
    for (uint64_t i = 0; i < res.n; i++) {
        ck_assert_uint_eq(res.labels[i], g_real.labels[res.source_ids[i]]);
        ck_assert(memcmp(res.pixels + i * 192, g_real.pixels + res.source_ids[i] * 192, 192) == 0);
    }
    apd_distill_result_free(&res);
    o.quantizer = 0; /* median cut */
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &res, &err), APD_OK);
    ck_assert_uint_eq(res.kind, APD_KIND_PALETTE);
    for (uint64_t i = 0; i < res.n; i++) {
        ck_assert(res.k_used[i] >= 1 && res.k_used[i] <= 4);
        for (int q = 0; q < 64; q++) ck_assert_uint_lt(res.indices[i * 64 + q], res.k_used[i]);
    }
    apd_distill_result_free(&res);
}
END_TEST

START_TEST(autopalette_records)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_AUTOPALETTE);
    o.palette_mode = APD_PALETTE_NETWORK;
    apd_distill_result res;
    apd_err err;
    apd_status s = apd_distill_run(&g_real, &o, &res, &err);
    ck_assert_msg(s == APD_OK, "%s", err.msg);
    ck_assert_uint_eq(res.kind, APD_KIND_PALETTE);
    ck_assert_uint_eq(res.k, 4);
    for (uint64_t i = 0; i < res.n; i++) {
        ck_assert(res.k_used[i] >= 1 && res.k_used[i] <= 4);
        for (int q = 0; q < 64; q++) ck_assert_uint_lt(res.indices[i * 64 + q], res.k_used[i]);
    }
    ck_assert_ptr_nonnull(strstr(res.hyperparameters_json, "\"palette_remedy\""));
    printf("autopalette stats: %s\n", res.stats_json);
    apd_distill_result_free(&res);
}
END_TEST

static float g_ce_weight; /* opts.ce_weight of check_determinism_and_resume's runs (< 0: the default) */

static void check_determinism_and_resume(apd_distill_method m, apd_distill_init init, apd_palette_mode pm,
                                         uint32_t net_pool)
{
    apd_distill_opts o;
    base_opts(&o, m);
    o.ce_weight = g_ce_weight;
    o.ce_teacher_steps = g_ce_weight < 0 ? 0 : 12; /* the default: two passes over the real images */
    if (net_pool) { /* a queue of 3, a fresh network every 3 iterations: the checkpoint at 7 holds a full queue */
        o.net_pool = net_pool;
        o.net_pool_every = 3;
        o.net_pool_steps = 2;
        o.net_pool_batch = 8;
    }
    o.init = init;
    o.palette_mode = pm;
    o.select_epochs = 1;
    o.select_batch = 32;
    apd_distill_result a, b, c;
    apd_err err;
    ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
    ck_assert_msg(apd_distill_run(&g_real, &o, &b, &err) == APD_OK, "%s", err.msg);
    dt_same_result(&a, &b);
    apd_distill_result_free(&b);
    if (g_ce_weight < 0 && pm == APD_PALETTE_STORED && m == APD_DISTILL_AUTOPALETTE) {
        char want[96];
        snprintf(want, sizeof want, "%u SGD steps of 64 real images", (unsigned)((2 * g_real.n + 63) / 64));
        ck_assert_ptr_nonnull(strstr(a.hyperparameters_json, "\"class_aware\":{\"weight\":10,"));
        ck_assert_msg(strstr(a.hyperparameters_json, want) != NULL, "%s", a.hyperparameters_json);
    }

    char ck[256];
    snprintf(ck, sizeof ck, "%s/distill-test-%d-%d.ckpt", APD_BINARY_DIR, (int)m, (int)getpid());
    apd_distill_opts o2 = o;
    o2.checkpoint_path = ck;
    o2.checkpoint_every = 4;
    o2.stop_after = 7; /* killed after iteration 7: the last periodic checkpoint is at 4; stop writes 7 */
    ck_assert_int_eq(apd_distill_run(&g_real, &o2, &c, &err), APD_ECANCELED);
    apd_distill_opts o3 = o;
    o3.resume_path = ck;
    o3.checkpoint_path = ck;
    o3.checkpoint_every = 4;
    ck_assert_msg(apd_distill_run(&g_real, &o3, &c, &err) == APD_OK, "%s", err.msg);
    dt_same_result(&a, &c);
    apd_distill_result_free(&c);
    /* a checkpoint from other options is refused */
    apd_distill_opts o4 = o3;
    o4.seed = 8;
    ck_assert_int_eq(apd_distill_run(&g_real, &o4, &c, &err), APD_EMISMATCH);
    /* and one with (without) the network queue by a run without (with) it */
    o4 = o3;
    o4.net_pool = net_pool ? 0 : 2;
    apd_status s4 = apd_distill_run(&g_real, &o4, &c, &err);
    ck_assert_msg(s4 == APD_ETRUNC || s4 == APD_ECORRUPT, "%s", apd_strerror(s4));
    ck_assert_msg(strstr(err.msg, "--net-pool") != NULL, "%s", err.msg);
    remove(ck);
    apd_distill_result_free(&a);
}

START_TEST(dm_deterministic_and_resumable)
{
    check_determinism_and_resume(APD_DISTILL_DM, APD_INIT_RANDOM, APD_PALETTE_NETWORK, 0);
}
END_TEST
START_TEST(autopalette_deterministic_and_resumable)
{
    check_determinism_and_resume(APD_DISTILL_AUTOPALETTE, APD_INIT_GRAPHCUT, APD_PALETTE_NETWORK, 0);
    check_determinism_and_resume(APD_DISTILL_AUTOPALETTE, APD_INIT_GRAPHCUT, APD_PALETTE_STORED, 0);
    check_determinism_and_resume(APD_DISTILL_AUTOPALETTE, APD_INIT_HERDING, APD_PALETTE_STORED, 0);
}
END_TEST

/* opts.init = APD_INIT_HERDING: at every seed tried the picks give the initial images a lower
 * DM loss than random init on the run's evaluation networks (fixed random networks other
 * than the herding's, against a real batch rather than the class mean); two runs give the
 * same bytes; the provenance says herding; bad settings are refused. */
/* opts.ce_weight (the class-aware term): it lowers the teacher's cross-entropy of the stored
 * images (the DM loop alone leaves it where it starts); the
 * result differs from the run without it; deterministic and resumable (the teacher is
 * trained again on resume); the provenance records it; bad settings are refused; the default
 * (weight 10 for stored palettes, a teacher of at most two passes over the real images) is in
 * effect where it should be. */
START_TEST(class_aware_term)
{
    apd_distill_opts o;
    apd_distill_result a, b;
    apd_err err;
    base_opts(&o, APD_DISTILL_DM);
    o.iters = 10;
    o.dsa_strategy = 0; /* a clean objective for a short run */
    o.ce_weight = 1e-6f; /* a negligible weight: the DM loop alone, with the teacher's figures */
    o.ce_teacher_steps = 30;
    ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
    o.ce_weight = 20.0f;
    ck_assert_msg(apd_distill_run(&g_real, &o, &b, &err) == APD_OK, "%s", err.msg);
    double t_train = stat_of(b.stats_json, "ce_teacher_train_xent");
    double a0 = stat_of(a.stats_json, "ce_xent_initial"), a1 = stat_of(a.stats_json, "ce_xent_stored");
    double b0 = stat_of(b.stats_json, "ce_xent_initial"), b1 = stat_of(b.stats_json, "ce_xent_stored");
    printf("class-aware term: teacher training xent %.4f; teacher xent of the images, weight ~0: %.4f -> %.4f, "
           "weight 20: %.4f -> %.4f\n", t_train, a0, a1, b0, b1);
    ck_assert(t_train > 0 && t_train < 0.693); /* two classes: below chance */
    ck_assert_double_eq(a0, b0);                /* same initial images, same teacher */
    /* on 8x8 toy images the teacher's input gradients are small: a few per cent in 10 steps
     * (measured 0.412 -> 0.391 against 0.412 -> 0.412); a wrong sign would raise it */
    ck_assert(b1 < b0 - 0.01);
    ck_assert(b1 < a1 - 0.01);
    ck_assert(fabs(a1 - a0) < 0.005);
    int same = memcmp(a.pixels, b.pixels, (size_t)a.n * a.c * a.h * a.w) == 0;
    ck_assert(!same);
    ck_assert_ptr_nonnull(strstr(b.hyperparameters_json, "\"class_aware\":{\"weight\":20,"));
    ck_assert_ptr_null(strstr(a.hyperparameters_json, "\"class_aware\":{\"weight\":20,"));
    apd_distill_result_free(&a);
    apd_distill_result_free(&b);
    o.ce_teacher_steps = APD_DISTILL_MAX_NET_POOL_STEPS + 1;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--ce-teacher-steps"));
    o.ce_teacher_steps = 5;
    o.ce_weight = INFINITY;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_ENUMERIC);
    o.ce_weight = 1.0f;
    o.method = APD_DISTILL_RANDOM;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--ce-weight"));
    /* the default: weight 10 for stored palettes, a teacher of two passes over this small source
     * (off for the palette network and DM) */
    apd_distill_opts d;
    apd_distill_opts_default(&d);
    d.method = APD_DISTILL_AUTOPALETTE;
    d.palette_mode = APD_PALETTE_STORED;
    ck_assert_float_eq(apd_distill_ce_weight_in_effect(&d), APD_DISTILL_CE_WEIGHT);
    ck_assert_uint_eq(apd_distill_ce_teacher_steps_in_effect(&d, 10000), 300); /* ceil(20000/64) = 313 */
    ck_assert_uint_eq(apd_distill_ce_teacher_steps_in_effect(&d, 100), 4);
    ck_assert_uint_eq(apd_distill_ce_teacher_steps_in_effect(&d, 0), 1);
    d.ce_teacher_steps = 7;
    ck_assert_uint_eq(apd_distill_ce_teacher_steps_in_effect(&d, 10000), 7);
    d.ce_weight = 0.0f;
    ck_assert_float_eq(apd_distill_ce_weight_in_effect(&d), 0.0f);
    d.ce_weight = -1.0f;
    d.palette_mode = APD_PALETTE_NETWORK;
    ck_assert_float_eq(apd_distill_ce_weight_in_effect(&d), 0.0f);
    d.method = APD_DISTILL_DM;
    ck_assert_float_eq(apd_distill_ce_weight_in_effect(&d), 0.0f);
    g_ce_weight = -1.0f;
    check_determinism_and_resume(APD_DISTILL_AUTOPALETTE, APD_INIT_RANDOM, APD_PALETTE_STORED, 0);
    g_ce_weight = 0.0f;
}
END_TEST

START_TEST(herding_init)
{
    apd_distill_opts o;
    apd_distill_result a, b;
    apd_err err;
    double worst = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        base_opts(&o, APD_DISTILL_AUTOPALETTE);
        o.palette_mode = APD_PALETTE_STORED;
        o.iters = 1;
        o.seed = seed;
        ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
        o.init = APD_INIT_HERDING;
        ck_assert_msg(apd_distill_run(&g_real, &o, &b, &err) == APD_OK, "%s", err.msg);
        double er = stat_of(a.stats_json, "eval_loss_initial"), eh = stat_of(b.stats_json, "eval_loss_initial");
        printf("seed %llu: initial DM loss (evaluation networks), random init %.4f, herding %.4f\n",
               (unsigned long long)seed, er, eh);
        ck_assert(eh < er);
        if (eh / er > worst) worst = eh / er;
        ck_assert_ptr_nonnull(strstr(b.hyperparameters_json, "\"init\":\"herding\""));
        ck_assert_ptr_nonnull(strstr(b.hyperparameters_json, "\"greedy\":\"herding\""));
        int same_ids = 1;
        for (uint64_t i = 0; i < a.n; i++) same_ids &= a.source_ids[i] == b.source_ids[i];
        ck_assert(!same_ids);
        apd_distill_result_free(&a);
        ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
        dt_same_result(&a, &b);
        apd_distill_result_free(&a);
        apd_distill_result_free(&b);
    }
    printf("herding: worst ratio of initial DM losses (herding / random) %.3f\n", worst);
    o.herd_nets = 0;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--herd-nets"));
    o.herd_nets = 4;
    o.herd_limit = 2; /* fewer candidates than the 3 images per class */
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "candidates"));
}
END_TEST

/* opts.net_pool: the queue of partly trained networks changes the result, is deterministic
 * (also across thread counts), resumes to the same bytes, is recorded in the provenance, and
 * refuses bad settings. */
START_TEST(net_pool)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_DM);
    apd_distill_result off, on, t1, t1b;
    apd_err err;
    ck_assert_msg(apd_distill_run(&g_real, &o, &off, &err) == APD_OK, "%s", err.msg);
    o.net_pool = 3;
    o.net_pool_every = 3;
    o.net_pool_steps = 2;
    o.net_pool_batch = 8;
    ck_assert_msg(apd_distill_run(&g_real, &o, &on, &err) == APD_OK, "%s", err.msg);
    ck_assert_uint_eq(on.n, off.n);
    size_t bytes = (size_t)on.n * on.c * on.h * on.w, differ = 0;
    for (size_t i = 0; i < bytes; i++) differ += on.pixels[i] != off.pixels[i];
    printf("net_pool: %zu of %zu pixels differ from the fresh-network run\n", differ, bytes);
    ck_assert_msg(differ > bytes / 100, "the queue changed only %zu of %zu pixels", differ, bytes);
    ck_assert_msg(strstr(on.hyperparameters_json, "\"net_pool\":{\"networks\":3,\"fresh_every\":3,"
                                                  "\"steps_per_iter\":2,\"batch\":8") != NULL,
                  "%s", on.hyperparameters_json);
    ck_assert(strstr(off.hyperparameters_json, "net_pool") == NULL);
    ck_assert(strstr(on.stats_json, "\"net_pool_networks_pushed\":4") != NULL); /* iterations 0, 3, 6, 9 */
    /* the same bytes on 1 thread as on 2 */
    o.threads = 1;
    ck_assert_msg(apd_distill_run(&g_real, &o, &t1, &err) == APD_OK, "%s", err.msg);
    ck_assert_msg(apd_distill_run(&g_real, &o, &t1b, &err) == APD_OK, "%s", err.msg);
    dt_same_result(&t1, &t1b);
    size_t dt = 0;
    for (size_t i = 0; i < bytes; i++) dt += t1.pixels[i] != on.pixels[i];
    printf("net_pool: 1 thread vs 2 threads: %zu pixels differ\n", dt);
    ck_assert_uint_eq(dt, 0);
    apd_distill_result_free(&t1);
    apd_distill_result_free(&t1b);
    /* bad settings */
    apd_distill_result bad;
    apd_distill_opts ob = o;
    ob.net_pool_every = 0;
    ck_assert_int_eq(apd_distill_run(&g_real, &ob, &bad, &err), APD_EINVAL);
    ck_assert_msg(strstr(err.msg, "--net-pool-every") != NULL, "%s", err.msg);
    ob = o;
    ob.net_pool = APD_DISTILL_MAX_NET_POOL + 1;
    ck_assert_int_eq(apd_distill_run(&g_real, &ob, &bad, &err), APD_EINVAL);
    ob = o;
    ob.method = APD_DISTILL_RANDOM;
    ck_assert_int_eq(apd_distill_run(&g_real, &ob, &bad, &err), APD_EINVAL);
    ck_assert_msg(strstr(err.msg, "applies only to dm and autopalette") != NULL, "%s", err.msg);
    apd_distill_result_free(&on);
    apd_distill_result_free(&off);
    /* resume: DM and AutoPalette with stored palettes */
    check_determinism_and_resume(APD_DISTILL_DM, APD_INIT_RANDOM, APD_PALETTE_NETWORK, 3);
    check_determinism_and_resume(APD_DISTILL_AUTOPALETTE, APD_INIT_RANDOM, APD_PALETTE_STORED, 3);
}
END_TEST

/* The palette network with the per-image normalised input: same seed, same bytes; the
 * records do not depend on the thread count; a resume reaches the same bytes; the input is
 * in the provenance, differs from the absolute input's records, and is refused outside the
 * palette network. */
START_TEST(autopalette_image_norm_input)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_AUTOPALETTE);
    o.palette_mode = APD_PALETTE_NETWORK;
    o.palette_input = APD_PALETTE_INPUT_IMAGE_NORM;
    apd_distill_result a, b, c;
    apd_err err;
    ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
    ck_assert_msg(apd_distill_run(&g_real, &o, &b, &err) == APD_OK, "%s", err.msg);
    dt_same_result(&a, &b);
    apd_distill_result_free(&b);
    ck_assert_ptr_nonnull(strstr(a.hyperparameters_json, "\"palette_input\":\"image-norm\""));
    apd_distill_opts o1 = o;
    o1.threads = 1;
    ck_assert_msg(apd_distill_run(&g_real, &o1, &b, &err) == APD_OK, "%s", err.msg);
    size_t p = (size_t)a.h * a.w;
    ck_assert_uint_eq(a.n, b.n);
    ck_assert(memcmp(a.palettes, b.palettes, a.n * a.k * a.c) == 0);
    ck_assert(memcmp(a.indices, b.indices, a.n * p) == 0);
    apd_distill_result_free(&b);
    /* resume */
    char ck[256];
    snprintf(ck, sizeof ck, "%s/distill-test-inorm-%d.ckpt", APD_BINARY_DIR, (int)getpid());
    apd_distill_opts o2 = o;
    o2.checkpoint_path = ck;
    o2.checkpoint_every = 4;
    o2.stop_after = 7;
    ck_assert_int_eq(apd_distill_run(&g_real, &o2, &c, &err), APD_ECANCELED);
    apd_distill_opts o3 = o2;
    o3.stop_after = 0;
    o3.resume_path = ck;
    ck_assert_msg(apd_distill_run(&g_real, &o3, &c, &err) == APD_OK, "%s", err.msg);
    dt_same_result(&a, &c);
    apd_distill_result_free(&c);
    /* the absolute input's checkpoint does not resume an image-norm run */
    o3.palette_input = APD_PALETTE_INPUT_ABSOLUTE;
    ck_assert_int_eq(apd_distill_run(&g_real, &o3, &c, &err), APD_EMISMATCH);
    remove(ck);
    apd_distill_opts oa = o;
    oa.palette_input = APD_PALETTE_INPUT_ABSOLUTE;
    ck_assert_msg(apd_distill_run(&g_real, &oa, &b, &err) == APD_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(strstr(b.hyperparameters_json, "\"palette_input\":\"absolute\""));
    ck_assert(memcmp(a.indices, b.indices, a.n * p) != 0);
    apd_distill_result_free(&b);
    apd_distill_opts os = o;
    os.palette_mode = APD_PALETTE_STORED;
    ck_assert_int_eq(apd_distill_run(&g_real, &os, &b, &err), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--palette-input"));
    printf("autopalette image-norm stats: %s\n", a.stats_json);
    apd_distill_result_free(&a);
}
END_TEST

/* Palette mode stored: the records are the quantizer's palette records of the final images
 * (with a zero learning rate: of the initial images, exactly what DM + the same quantizer
 * stores), and the loop lowers the matching loss of what is stored. */
START_TEST(stored_palettes)
{
    apd_distill_opts o, d;
    base_opts(&o, APD_DISTILL_AUTOPALETTE);
    o.palette_mode = APD_PALETTE_STORED;
    o.lr_img = 0.0f;
    base_opts(&d, APD_DISTILL_DM);
    d.quantizer = APD_QUANT_KMEANS;
    d.lr_img = 0.0f;
    apd_distill_result a, b;
    apd_err err;
    ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
    ck_assert_msg(apd_distill_run(&g_real, &d, &b, &err) == APD_OK, "%s", err.msg);
    ck_assert_uint_eq(a.kind, APD_KIND_PALETTE);
    ck_assert_uint_eq(a.n, b.n);
    ck_assert(memcmp(a.source_ids, b.source_ids, a.n * sizeof(uint64_t)) == 0);
    ck_assert(memcmp(a.palettes, b.palettes, a.n * a.k * a.c) == 0);
    ck_assert(memcmp(a.indices, b.indices, a.n * 64) == 0);
    ck_assert(memcmp(a.k_used, b.k_used, a.n * sizeof(uint32_t)) == 0);
    ck_assert_ptr_nonnull(strstr(a.hyperparameters_json, "\"palette_mode\":\"stored\""));
    ck_assert_ptr_nonnull(strstr(a.hyperparameters_json, "\"quantizer\":\"kmeans\""));
    ck_assert_ptr_null(strstr(a.hyperparameters_json, "\"palette_remedy\""));
    double q0 = stat_of(a.stats_json, "eval_loss_stored"); /* the initial images, quantized */
    apd_distill_result_free(&a);
    apd_distill_result_free(&b);
    /* trained (clean objective as in dm_lowers_loss): the loop lowers the matching loss of
     * what is stored */
    o.lr_img = 10.0f;
    o.iters = 40;
    o.dsa_strategy = 0;
    o.batch_real = 48;
    o.ce_weight = 0.0f; /* the matching loss alone (class_aware_term tests the default's term) */
    ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
    double e1 = stat_of(a.stats_json, "eval_loss_stored");
    printf("stored palettes: eval loss of the stored images: initial %.4f -> trained %.4f\n", q0, e1);
    ck_assert(e1 < 0.95 * q0);
    for (uint64_t i = 0; i < a.n; i++) ck_assert(a.k_used[i] >= 1 && a.k_used[i] <= 4);
    apd_distill_result_free(&a);
}
END_TEST

/* --pixel-range clamp: the float images stay inside what a record can hold, so the stored
 * images stay close to them even when the step is far too large. */
START_TEST(pixel_range_clamp)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_AUTOPALETTE);
    o.palette_mode = APD_PALETTE_STORED;
    o.lr_img = 1000.0f;
    o.iters = 6;
    apd_distill_result a, b;
    apd_err err;
    o.pixel_range = APD_PIXELS_FREE;
    ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
    o.pixel_range = APD_PIXELS_CLAMP;
    ck_assert_msg(apd_distill_run(&g_real, &o, &b, &err) == APD_OK, "%s", err.msg);
    double mf = stat_of(a.stats_json, "stored_mse"), mc = stat_of(b.stats_json, "stored_mse");
    /* in range, a pixel and its stored colour are at most 1/std apart (normalised units) */
    double bound = 0;
    for (uint32_t ch = 0; ch < b.c; ch++) {
        double r = 1.0 / b.std[ch];
        if (r * r > bound) bound = r * r;
    }
    printf("pixel range, lr 1000: storage MSE free %.4f, clamp %.4f (bound %.4f)\n", mf, mc, bound);
    ck_assert(mc <= bound);
    ck_assert(mf > 4 * mc);
    ck_assert_ptr_nonnull(strstr(a.hyperparameters_json, "\"pixel_range\":\"free\""));
    ck_assert_ptr_nonnull(strstr(b.hyperparameters_json, "\"pixel_range\":\"clamp\""));
    apd_distill_result_free(&a);
    apd_distill_result_free(&b);
}
END_TEST

/* --loss-range: with the loss on the clipped values (stored) a pixel pushed past the 8-bit
 * range keeps being pushed, since its stored colour no longer changes; with its float value in
 * the loss (float, the default) the gradient pulls it back, so the float images stay near the
 * records. With the pixels held still (lr 0) and in range, the two rules are the same run.
 * anneal moves from the float rule to the stored one over the run. */
START_TEST(stored_loss_range)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_AUTOPALETTE);
    o.palette_mode = APD_PALETTE_STORED;
    o.lr_img = 0.0f;
    o.iters = 2;
    apd_distill_result a, b;
    apd_err err;
    o.loss_range = APD_LOSS_RANGE_STORED;
    ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
    o.loss_range = APD_LOSS_RANGE_AUTO;
    ck_assert_msg(apd_distill_run(&g_real, &o, &b, &err) == APD_OK, "%s", err.msg);
    ck_assert(stat_of(a.stats_json, "loss_last_iter") == stat_of(b.stats_json, "loss_last_iter"));
    ck_assert(memcmp(a.indices, b.indices, a.n * 64) == 0);
    ck_assert_ptr_nonnull(strstr(a.hyperparameters_json, "\"loss_range\":\"stored\""));
    ck_assert_ptr_nonnull(strstr(b.hyperparameters_json, "\"loss_range\":\"float\""));
    apd_distill_result_free(&a);
    apd_distill_result_free(&b);
    o.lr_img = 1000.0f;
    o.iters = 6;
    o.loss_range = APD_LOSS_RANGE_STORED;
    ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
    o.loss_range = APD_LOSS_RANGE_FLOAT;
    ck_assert_msg(apd_distill_run(&g_real, &o, &b, &err) == APD_OK, "%s", err.msg);
    double ms = stat_of(a.stats_json, "stored_mse"), mf = stat_of(b.stats_json, "stored_mse");
    printf("loss range, lr 1000: storage MSE stored %.4f, float %.4f\n", ms, mf);
    ck_assert(mf < 0.7 * ms);
    /* anneal: the weight of x - clip(x) falls from 1 - 1/T to 0 at the last iteration. The
     * real images start in range, so iteration 0 is the same run under every rule; with T = 2
     * the last iteration (weight 0) is then the stored rule's, bit for bit, and not the float
     * rule's. With T = 6 (weights 5/6 .. 1/6, 0) it is neither. */
    double last6[3] = {stat_of(a.stats_json, "loss_last_iter"), stat_of(b.stats_json, "loss_last_iter"), 0};
    apd_distill_result_free(&a);
    apd_distill_result_free(&b);
    apd_distill_result c;
    o.loss_range = APD_LOSS_RANGE_ANNEAL;
    ck_assert_msg(apd_distill_run(&g_real, &o, &c, &err) == APD_OK, "%s", err.msg);
    last6[2] = stat_of(c.stats_json, "loss_last_iter");
    ck_assert_ptr_nonnull(strstr(c.hyperparameters_json, "\"loss_range\":\"anneal\""));
    apd_distill_result_free(&c);
    double last2[3];
    o.iters = 2;
    const apd_loss_range rules[3] = {APD_LOSS_RANGE_STORED, APD_LOSS_RANGE_FLOAT, APD_LOSS_RANGE_ANNEAL};
    for (int r = 0; r < 3; r++) {
        o.loss_range = rules[r];
        ck_assert_msg(apd_distill_run(&g_real, &o, &c, &err) == APD_OK, "%s", err.msg);
        last2[r] = stat_of(c.stats_json, "loss_last_iter");
        apd_distill_result_free(&c);
    }
    printf("loss range, lr 1000, last iteration's loss: T 2 stored %.6g float %.6g anneal %.6g; "
           "T 6 stored %.6g float %.6g anneal %.6g\n", last2[0], last2[1], last2[2], last6[0], last6[1], last6[2]);
    ck_assert(last2[2] == last2[0]);
    ck_assert(last2[2] != last2[1]);
    ck_assert(last6[2] != last6[0] && last6[2] != last6[1]);
    ck_assert_int_eq(apd_loss_range_from_name("anneal", &o.loss_range), APD_OK);
    ck_assert_int_eq(o.loss_range, APD_LOSS_RANGE_ANNEAL);
    o.palette_mode = APD_PALETTE_NETWORK;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--loss-range"));
    o.palette_mode = APD_PALETTE_STORED;
    o.loss_range = (apd_loss_range)7;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_EINVAL);
}
END_TEST

/* --anneal: the loss moves from the float images to the stored ones. With the pixels held
 * still (lr 0) and 2 iterations, iteration 1 sees the stored images in both runs (the same
 * loss, bit for bit), iteration 0 sees half of each with anneal 1 (another loss); the records
 * are the same. Out-of-range values and other palette modes are refused. */
START_TEST(stored_anneal)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_AUTOPALETTE);
    o.palette_mode = APD_PALETTE_STORED;
    o.lr_img = 0.0f;
    o.iters = 2;
    apd_distill_result a, b;
    apd_err err;
    ck_assert_msg(apd_distill_run(&g_real, &o, &a, &err) == APD_OK, "%s", err.msg);
    o.anneal = 1.0f;
    ck_assert_msg(apd_distill_run(&g_real, &o, &b, &err) == APD_OK, "%s", err.msg);
    double f0 = stat_of(a.stats_json, "loss_first_iter"), f1 = stat_of(b.stats_json, "loss_first_iter");
    double l0 = stat_of(a.stats_json, "loss_last_iter"), l1 = stat_of(b.stats_json, "loss_last_iter");
    printf("anneal: first-iteration loss %.6f (stored) vs %.6f (half float); last %.6f vs %.6f\n", f0, f1, l0,
           l1);
    ck_assert(f0 != f1);
    ck_assert(l0 == l1);
    ck_assert_uint_eq(a.n, b.n);
    ck_assert(memcmp(a.palettes, b.palettes, a.n * a.k * a.c) == 0);
    ck_assert(memcmp(a.indices, b.indices, a.n * 64) == 0);
    ck_assert_ptr_nonnull(strstr(a.hyperparameters_json, "\"anneal\":0"));
    ck_assert_ptr_nonnull(strstr(b.hyperparameters_json, "\"anneal\":1"));
    apd_distill_result_free(&a);
    apd_distill_result_free(&b);
    o.anneal = 1.5f;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--anneal"));
    o.anneal = NAN;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_EINVAL);
    o.anneal = 0.5f;
    o.palette_mode = APD_PALETTE_NETWORK;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &a, &err), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--palette stored"));
}
END_TEST

/* What the callbacks received. */
typedef struct cb_log {
    int lines, lines_with_newline, saw_header, saw_select, saw_last_iter;
    int progress_calls, select_calls, distill_calls, teacher_calls, backwards, bad_phase;
    uint64_t last_done, distill_total, distill_last, teacher_total;
    char last_phase[32];
} cb_log;

static void on_log(void *user, const char *line)
{
    cb_log *c = user;
    c->lines++;
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n') c->lines_with_newline++;
    if (strncmp(line, "distill: autopalette,", 21) == 0) c->saw_header = 1;
    if (strncmp(line, "distill: selection net epoch 1/1", 32) == 0) c->saw_select = 1;
    if (strncmp(line, "it 12/12 ", 9) == 0) c->saw_last_iter = 1;
}

static void on_progress(void *user, const char *phase, uint64_t done, uint64_t total, const char *note)
{
    cb_log *c = user;
    (void)note;
    c->progress_calls++;
    if (strcmp(phase, c->last_phase) != 0) {
        snprintf(c->last_phase, sizeof c->last_phase, "%s", phase);
        c->last_done = 0;
    }
    if (done < c->last_done || (total && done > total)) c->backwards++;
    c->last_done = done;
    if (strcmp(phase, "select-net") == 0)
        c->select_calls++;
    else if (strcmp(phase, "teacher") == 0) {
        c->teacher_calls++;
        c->teacher_total = total;
    } else if (strcmp(phase, "distill") == 0) {
        c->distill_calls++;
        c->distill_total = total;
        c->distill_last = done;
    } else
        c->bad_phase++;
}

/* Run with fds 1 and 2 sent to a file; returns the number of bytes written to them. */
static long run_captured(const apd_distill_opts *o, apd_distill_result *res, apd_status *st)
{
    char path[256];
    snprintf(path, sizeof path, "%s/distill-test-out-%d.txt", APD_BINARY_DIR, (int)getpid());
    fflush(stdout);
    fflush(stderr);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    int save1 = dup(1), save2 = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    apd_err err;
    *st = apd_distill_run(&g_real, o, res, &err);
    fflush(stdout);
    fflush(stderr);
    dup2(save1, 1);
    dup2(save2, 2);
    close(save1);
    close(save2);
    close(fd);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    remove(path);
    ck_assert_msg(*st == APD_OK, "%s", err.msg);
    return (long)sb.st_size;
}

START_TEST(callbacks_only)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_AUTOPALETTE);
    o.init = APD_INIT_GRAPHCUT;
    o.select_epochs = 1;
    o.select_batch = 32;
    o.log_every = 5;
    apd_distill_result a, b;
    apd_status st;
    /* silent: no callbacks, and nothing may appear on stdout or stderr */
    long quiet_bytes = run_captured(&o, &a, &st);
    printf("callbacks: %ld bytes on stdout/stderr without callbacks\n", quiet_bytes);
    ck_assert_int_eq(quiet_bytes, 0);
    cb_log c;
    memset(&c, 0, sizeof c);
    o.log_fn = on_log;
    o.progress_fn = on_progress;
    o.cb_user = &c;
    long bytes = run_captured(&o, &b, &st);
    printf("callbacks: %d log lines, %d progress calls (%d select-net, %d distill, last %llu/%llu), "
           "%ld bytes on stdout/stderr\n", c.lines, c.progress_calls, c.select_calls, c.distill_calls,
           (unsigned long long)c.distill_last, (unsigned long long)c.distill_total, bytes);
    ck_assert_int_eq(bytes, 0);
    ck_assert_int_gt(c.lines, 4);
    ck_assert_int_eq(c.lines_with_newline, 0);
    ck_assert(c.saw_header && c.saw_select && c.saw_last_iter);
    ck_assert_int_eq(c.bad_phase, 0);
    ck_assert_int_eq(c.backwards, 0);
    ck_assert_int_gt(c.select_calls, 1);
    ck_assert_int_eq(c.distill_calls, 13); /* the start (0 of 12) and one per iteration */
    ck_assert_uint_eq(c.distill_total, 12);
    ck_assert_uint_eq(c.distill_last, 12);
    /* the class-aware term's teacher (on by default for stored palettes): the start and one call
     * per SGD step */
    ck_assert_uint_eq(c.teacher_total, apd_distill_ce_teacher_steps_in_effect(&o, g_real.n));
    ck_assert_int_eq(c.teacher_calls, (int)c.teacher_total + 1);
    /* the callbacks do not change the result */
    dt_same_result(&a, &b);
    apd_distill_result_free(&a);
    apd_distill_result_free(&b);
}
END_TEST

/* apd_distill_write: the records and the provenance keys round-trip through a file; the
 * method name is written as an escaped JSON string. */
START_TEST(write_provenance)
{
    apd_distill_opts o;
    base_opts(&o, APD_DISTILL_RANDOM);
    o.quantizer = 0; /* palette records */
    apd_distill_result res;
    apd_err err;
    ck_assert_int_eq(apd_distill_run(&g_real, &o, &res, &err), APD_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/distill-test-write-%d.apd", APD_BINARY_DIR, (int)getpid());
    remove(path);
    apd_writer_opts wo;
    apd_distill_writer_opts(&wo, &res, &g_real);
    wo.no_sync = 1;
    ck_assert_uint_eq(wo.kind, APD_KIND_PALETTE);
    apd_writer *w;
    ck_assert_msg(apd_writer_create(&w, path, &wo, &err) == APD_OK, "%s", err.msg);
    ck_assert_int_eq(apd_distill_write(w, &res, &g_real, 42, "rand\"om\\q\n"), APD_OK);
    ck_assert_int_eq(apd_writer_close(w), APD_OK);
    apd_reader *r;
    ck_assert_msg(apd_reader_open(&r, path, NULL, &err) == APD_OK, "%s", err.msg);
    ck_assert_uint_eq(apd_reader_count(r), res.n);
    for (uint64_t i = 0; i < res.n; i++) {
        uint32_t label;
        uint64_t sid;
        ck_assert_int_eq(apd_reader_label(r, i, &label), APD_OK);
        ck_assert_int_eq(apd_reader_source_id(r, i, &sid), APD_OK);
        ck_assert_uint_eq(label, res.labels[i]);
        ck_assert_uint_eq(sid, res.source_ids[i]);
    }
    const char *meta = apd_reader_meta_json(r);
    printf("write_provenance: %zu bytes of metadata\n", strlen(meta));
    ck_assert_ptr_nonnull(strstr(meta, "\"method\": \"rand\\\"om\\\\q\\n\""));
    ck_assert_ptr_nonnull(strstr(meta, "\"seed\": 42,"));
    ck_assert_ptr_nonnull(strstr(meta, "\"source\""));
    ck_assert_ptr_nonnull(strstr(meta, "\"hyperparameters\""));
    ck_assert_ptr_nonnull(strstr(meta, "\"distill_stats\""));
    apd_reader_close(r);
    remove(path);
    apd_distill_result_free(&res);
}
END_TEST

START_TEST(option_names)
{
    uint32_t m;
    ck_assert_int_eq(apd_palette_remedy_from_name("warmup+task-scale", &m), APD_OK);
    ck_assert_uint_eq(m, APD_REMEDY_WARMUP | APD_REMEDY_TASK_SCALE);
    char buf[64];
    ck_assert_str_eq(apd_palette_remedy_name(m, buf, sizeof buf), "warmup+task-scale");
    ck_assert_int_eq(apd_palette_remedy_from_name("none", &m), APD_OK);
    ck_assert_uint_eq(m, 0);
    ck_assert_int_eq(apd_palette_remedy_from_name("bogus", &m), APD_EINVAL);
    apd_distill_method me;
    ck_assert_int_eq(apd_distill_method_from_name("autopalette", &me), APD_OK);
    ck_assert_int_eq(me, APD_DISTILL_AUTOPALETTE);
    apd_distill_init in;
    ck_assert_int_eq(apd_distill_init_from_name("graphcut", &in), APD_OK);
    ck_assert_int_eq(in, APD_INIT_GRAPHCUT);
    ck_assert_int_eq(apd_distill_init_from_name("herding", &in), APD_OK);
    ck_assert_int_eq(in, APD_INIT_HERDING);
    apd_pixel_range pr;
    ck_assert_int_eq(apd_pixel_range_from_name("clamp", &pr), APD_OK);
    ck_assert_int_eq(pr, APD_PIXELS_CLAMP);
    ck_assert_str_eq(apd_pixel_range_name(APD_PIXELS_FREE), "free");
    ck_assert_int_eq(apd_pixel_range_from_name("none", &pr), APD_EINVAL);
    apd_loss_range lr;
    ck_assert_int_eq(apd_loss_range_from_name("float", &lr), APD_OK);
    ck_assert_int_eq(lr, APD_LOSS_RANGE_FLOAT);
    ck_assert_str_eq(apd_loss_range_name(APD_LOSS_RANGE_STORED), "stored");
    ck_assert_int_eq(apd_loss_range_from_name("clip", &lr), APD_EINVAL);
    apd_palette_input pi;
    ck_assert_int_eq(apd_palette_input_from_name("image-norm", &pi), APD_OK);
    ck_assert_int_eq(pi, APD_PALETTE_INPUT_IMAGE_NORM);
    ck_assert_str_eq(apd_palette_input_name(pi), "image-norm");
    ck_assert_int_eq(apd_palette_input_from_name("absolute", &pi), APD_OK);
    ck_assert_int_eq(pi, APD_PALETTE_INPUT_ABSOLUTE);
    ck_assert_int_eq(apd_palette_input_from_name("bogus", &pi), APD_EINVAL);
    ck_assert_str_eq(apd_palette_input_name((apd_palette_input)9), "?");
}
END_TEST

int main(void)
{
    make_dataset(&g_real, 3);
    Suite *s = suite_create("distill");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, option_names);
    tcase_add_test(tc, random_and_quantized);
    tcase_add_test(tc, dm_lowers_loss);
    tcase_add_test(tc, small_activation_budget);
    tcase_add_test(tc, autopalette_records);
    tcase_add_test(tc, dm_deterministic_and_resumable);
    tcase_add_test(tc, autopalette_deterministic_and_resumable);
    tcase_add_test(tc, net_pool);
    tcase_add_test(tc, herding_init);
    tcase_add_test(tc, class_aware_term);
    tcase_add_test(tc, autopalette_image_norm_input);
    tcase_add_test(tc, stored_palettes);
    tcase_add_test(tc, pixel_range_clamp);
    tcase_add_test(tc, stored_anneal);
    tcase_add_test(tc, stored_loss_range);
    tcase_add_test(tc, callbacks_only);
    tcase_add_test(tc, write_provenance);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    apd_dataset_free(&g_real);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
