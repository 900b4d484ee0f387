/* distill/distill.c: the distillation entry point (apd_distill_run), options, the `random`
 * baseline, result assembly and the provenance JSON.
 *
 * Contract: see apd/distill.h. This file validates options, derives the number of synthetic
 * images per class from the budget rule, picks the initial real images (random or
 * graph-cut, select.c), then either returns them (random) or hands them to the DM loop
 * (dm.c) and turns its float images into records (direct colour, or the hard palette
 * quantization for autopalette). Every figure that shaped the output is written into
 * res->hyperparameters_json / budget_json / stats_json for the file's provenance.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/dsa.h"
#include "apd/nn.h"
#include "apd/palette.h"
#include "apd/quant.h"
#include "common/internal.h"
#include "distill/distill_internal.h"

APD_API void apd_distill_opts_default(apd_distill_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = APD_DISTILL_AUTOPALETTE;
    o->init = APD_INIT_GRAPHCUT;
    o->ipc = 10;
    o->colors = 16;
    o->budget = APD_BUDGET_BITS;
    o->quantizer = -1;
    o->iters = 200;
    o->batch_real = 64;
    o->lr_img = 1.0f;
    o->momentum_img = 0.5f;
    o->lr_palette = 0.05f;
    o->momentum_palette = 0.5f;
    o->wd_palette = 5e-4f;
    o->w_max = 1.0f;
    o->w_balance = 1.0f;
    o->w_align = 3.0f;
    o->w_conf = 0.0f;
    o->color_subset = 64;
    o->align_ratio = 0.3f;
    /* Chosen by measurement (results/RESULTS.md, "palette collapse"): as published the palette
     * network collapses to 2 colours per image after one step. Starting it at a k-means
     * partition of the initial images' colours and scaling the task gradient into it by 1e-3
     * keeps a median of 36 of 64 colours per stored CIFAR image (16 with the earlier warm-up
     * remedy), 16 of 16 grey levels on Fashion-MNIST, and the lowest storage error. */
    o->remedy = APD_REMEDY_KMEANS_INIT | APD_REMEDY_TASK_SCALE;
    /* Chosen by measurement (results/RESULTS.md, "The K sweep"): at equal storage the
     * published network ties "DM, then median cut"; per-image palettes with the loss on the
     * stored images and the image step scaled to the image count beat it at every K. */
    o->palette_mode = APD_PALETTE_STORED;
    o->palette_input = APD_PALETTE_INPUT_ABSOLUTE;
    o->warmup_steps = 50;
    o->task_scale = 1e-3f;
    o->temp_start = 1.0f;
    o->temp_end = 1.0f;
    o->select_epochs = 2;
    o->select_batch = 128;
    o->select_lr = 0.1f;
    o->select_momentum = 0.9f;
    o->select_wd = 5e-4f;
    o->select_limit = 0;
    o->gc_lambda = 1.0;
    o->gc_epsilon = 0.9;
    o->herd_nets = 4;
    o->herd_limit = 512;
    o->net_pool = 0;
    o->net_pool_every = 10;
    o->net_pool_steps = 4;
    o->net_pool_batch = 64;
    o->ce_weight = -1.0f;     /* by method: apd_distill_ce_weight_in_effect */
    o->ce_teacher_steps = 0;  /* apd_distill_ce_teacher_steps_in_effect */
    o->dsa_strategy = APD_DSA_ALL; /* color_crop_cutout_flip_scale_rotate */
    o->dsa_align_corners = 0;
    o->seed = 0;
    o->threads = 0;
    o->log_every = 0;
}

typedef struct name_val {
    const char *name;
    int val;
} name_val;

static const name_val k_methods[] = {{"random", APD_DISTILL_RANDOM}, {"dm", APD_DISTILL_DM},
                                     {"autopalette", APD_DISTILL_AUTOPALETTE}, {NULL, 0}};
static const name_val k_inits[] = {{"random", APD_INIT_RANDOM}, {"graphcut", APD_INIT_GRAPHCUT},
                                   {"graph-cut", APD_INIT_GRAPHCUT}, {"herding", APD_INIT_HERDING},
                                   {NULL, 0}};
static const name_val k_remedies[] = {{"kmeans-init", APD_REMEDY_KMEANS_INIT},
                                      {"warmup", APD_REMEDY_WARMUP},
                                      {"task-scale", APD_REMEDY_TASK_SCALE},
                                      {"temperature", APD_REMEDY_TEMPERATURE},
                                      {"straight-through", APD_REMEDY_STRAIGHT}, {NULL, 0}};

static const name_val k_lr_rules[] = {{"auto", APD_LR_AUTO}, {"fixed", APD_LR_FIXED}, {"count", APD_LR_COUNT},
                                      {NULL, 0}};
static const name_val k_loss_ranges[] = {{"auto", APD_LOSS_RANGE_AUTO}, {"stored", APD_LOSS_RANGE_STORED},
                                         {"float", APD_LOSS_RANGE_FLOAT}, {"anneal", APD_LOSS_RANGE_ANNEAL},
                                         {NULL, 0}};
static const name_val k_pixel_ranges[] = {{"auto", APD_PIXELS_AUTO}, {"free", APD_PIXELS_FREE},
                                          {"clamp", APD_PIXELS_CLAMP}, {NULL, 0}};
static const name_val k_palette_modes[] = {{"network", APD_PALETTE_NETWORK}, {"stored", APD_PALETTE_STORED},
                                           {NULL, 0}};
static const name_val k_palette_inputs[] = {{"absolute", APD_PALETTE_INPUT_ABSOLUTE},
                                            {"image-norm", APD_PALETTE_INPUT_IMAGE_NORM}, {NULL, 0}};

static apd_status lookup(const name_val *t, const char *s, int *out)
{
    if (!s) return APD_EINVAL;
    for (; t->name; t++)
        if (strcmp(t->name, s) == 0) {
            *out = t->val;
            return APD_OK;
        }
    return APD_EINVAL;
}

static const char *rlookup(const name_val *t, int v)
{
    for (; t->name; t++)
        if (t->val == v) return t->name;
    return "?";
}

/* NAME_from_name(s, out) / NAME_name(v) of an enum with a name table */
#define NAMED_ENUM_FROM(type, fn, table)                                                                \
    APD_API apd_status fn(const char *s, type *out)                                                    \
    {                                                                                                    \
        int v;                                                                                           \
        if (!out) return APD_EINVAL;                                                                     \
        APD_TRY(lookup(table, s, &v));                                                                   \
        *out = (type)v;                                                                                  \
        return APD_OK;                                                                                   \
    }
#define NAMED_ENUM_NAME(type, fn, table) \
    APD_API const char *fn(type v) { return rlookup(table, (int)v); }

NAMED_ENUM_FROM(apd_distill_method, apd_distill_method_from_name, k_methods)
NAMED_ENUM_FROM(apd_distill_init, apd_distill_init_from_name, k_inits)
APD_API apd_status apd_palette_remedy_from_name(const char *s, uint32_t *out)
{
    if (!s || !out) return APD_EINVAL;
    if (strcmp(s, "none") == 0 || *s == 0) {
        *out = 0;
        return APD_OK;
    }
    uint32_t mask = 0;
    char buf[128];
    if (strlen(s) >= sizeof buf) return APD_EINVAL;
    strcpy(buf, s);
    for (char *tok = buf, *end; tok; tok = end) {
        end = strpbrk(tok, ",+");
        if (end) *end++ = 0;
        int v;
        APD_TRY(lookup(k_remedies, tok, &v));
        mask |= (uint32_t)v;
    }
    *out = mask;
    return APD_OK;
}
APD_API const char *apd_distill_method_name(apd_distill_method m) { return rlookup(k_methods, m); }
NAMED_ENUM_FROM(apd_palette_mode, apd_palette_mode_from_name, k_palette_modes)
NAMED_ENUM_NAME(apd_palette_mode, apd_palette_mode_name, k_palette_modes)
NAMED_ENUM_FROM(apd_palette_input, apd_palette_input_from_name, k_palette_inputs)
NAMED_ENUM_NAME(apd_palette_input, apd_palette_input_name, k_palette_inputs)
NAMED_ENUM_FROM(apd_lr_rule, apd_lr_rule_from_name, k_lr_rules)
NAMED_ENUM_NAME(apd_lr_rule, apd_lr_rule_name, k_lr_rules)
NAMED_ENUM_FROM(apd_pixel_range, apd_pixel_range_from_name, k_pixel_ranges)
NAMED_ENUM_NAME(apd_pixel_range, apd_pixel_range_name, k_pixel_ranges)
NAMED_ENUM_FROM(apd_loss_range, apd_loss_range_from_name, k_loss_ranges)
NAMED_ENUM_NAME(apd_loss_range, apd_loss_range_name, k_loss_ranges)

apd_loss_range apd__distill_loss_range(const apd_distill_opts *o)
{
    return o->loss_range != APD_LOSS_RANGE_AUTO ? o->loss_range : APD_LOSS_RANGE_FLOAT;
}

apd_pixel_range apd__distill_pixel_range(const apd_distill_opts *o)
{
    return o->pixel_range != APD_PIXELS_AUTO ? o->pixel_range : APD_PIXELS_FREE;
}

APD_API apd_distill_init apd_distill_init_in_effect(const apd_distill_opts *o)
{
    if (o->init_set) return o->init;
    return apd__distill_network(o) ? APD_INIT_GRAPHCUT : APD_INIT_RANDOM;
}

APD_API float apd_distill_ce_weight_in_effect(const apd_distill_opts *o)
{
    if (!(o->ce_weight < 0.0f)) return o->ce_weight;
    return apd__distill_stored(o) ? APD_DISTILL_CE_WEIGHT : 0.0f;
}

APD_API uint32_t apd_distill_ce_teacher_steps_in_effect(const apd_distill_opts *o, uint64_t n_real)
{
    if (o->ce_teacher_steps) return o->ce_teacher_steps;
    uint64_t two_passes = (2 * n_real + APD_DISTILL_CE_BATCH - 1) / APD_DISTILL_CE_BATCH;
    if (two_passes < 1) two_passes = 1;
    return two_passes < APD_DISTILL_CE_TEACHER_STEPS ? (uint32_t)two_passes : APD_DISTILL_CE_TEACHER_STEPS;
}

apd_lr_rule apd__distill_lr_rule(const apd_distill_opts *o)
{
    if (o->lr_img_rule != APD_LR_AUTO) return o->lr_img_rule;
    return apd__distill_stored(o) ? APD_LR_COUNT : APD_LR_FIXED;
}

float apd__distill_lr_img(const apd_distill_opts *o, uint64_t images_per_class)
{
    if (apd__distill_lr_rule(o) != APD_LR_COUNT || o->ipc == 0) return o->lr_img;
    return (float)((double)o->lr_img * (double)images_per_class / (double)o->ipc);
}
APD_API const char *apd_palette_remedy_name(uint32_t mask, char *buf, size_t len)
{
    if (!buf || len == 0) return "";
    buf[0] = 0;
    if (mask == 0) {
        snprintf(buf, len, "none");
        return buf;
    }
    size_t used = 0;
    for (const name_val *t = k_remedies; t->name; t++)
        if (mask & (uint32_t)t->val) {
            int k = snprintf(buf + used, len - used, "%s%s", used ? "+" : "", t->name);
            if (k < 0 || (size_t)k >= len - used) break;
            used += (size_t)k;
        }
    return buf;
}
const char *apd__distill_init_name(apd_distill_init i) { return rlookup(k_inits, i); }

/* ---- growable string for JSON ----------------------------------------------------------- */

void apd__dsb_printf(apd__dsb *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int k = b->buf ? vsnprintf(b->buf + b->len, room, fmt, ap) : -1;
        va_end(ap);
        if (k >= 0 && (size_t)k < room) {
            b->len += (size_t)k;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 256;
        if (k >= 0 && ncap < b->len + (size_t)k + 1) ncap = b->len + (size_t)k + 1;
        char *nb = realloc(b->buf, ncap);
        if (!nb) {
            b->failed = 1;
            return;
        }
        b->buf = nb;
        b->cap = ncap;
    }
}

/* JSON number for a float: shortest round-trip-ish text, finite only. */
void apd__dsb_num(apd__dsb *b, double v)
{
    if (!isfinite(v)) {
        apd__dsb_printf(b, "null");
        return;
    }
    apd__dsb_printf(b, "%.9g", v);
}

/* ---- status lines ------------------------------------------------------------------------ */

void apd__distill_log(const apd_distill_opts *o, const char *fmt, ...)
{
    if (!o->log_fn) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log_fn(o->cb_user, line);
}

/* ---- result ------------------------------------------------------------------------------ */

APD_API void apd_distill_result_free(apd_distill_result *res)
{
    if (!res) return;
    free(res->pixels);
    free(res->palettes);
    free(res->k_used);
    free(res->indices);
    free(res->labels);
    free(res->source_ids);
    free(res->hyperparameters_json);
    free(res->budget_json);
    free(res->stats_json);
    memset(res, 0, sizeof *res);
}

static void hparams_json(apd__dsb *b, const apd_distill_opts *o, const apd_distill_ctx *x)
{
    apd__dsb_printf(b, "{\"method\":\"%s\",\"init\":\"%s\",\"ipc\":%u,\"colors\":%u,"
                      "\"budget_rule\":\"%s\",\"images_per_class\":%llu,\"seed\":%llu,"
                      "\"threads\":%u",
                   apd_distill_method_name(o->method), apd__distill_init_name(x->init), o->ipc,
                   o->colors, apd_budget_rule_name(o->budget),
                   (unsigned long long)x->images_per_class, (unsigned long long)o->seed,
                   x->threads);
    apd__dsb_printf(b, ",\"normalize\":{\"mean\":[");
    for (uint32_t ch = 0; ch < x->c; ch++) {
        if (ch) apd__dsb_printf(b, ",");
        apd__dsb_num(b, x->mean[ch]);
    }
    apd__dsb_printf(b, "],\"std\":[");
    for (uint32_t ch = 0; ch < x->c; ch++) {
        if (ch) apd__dsb_printf(b, ",");
        apd__dsb_num(b, x->std[ch]);
    }
    apd__dsb_printf(b, "]}");
    if (o->method != APD_DISTILL_RANDOM) {
        apd__dsb_printf(b, ",\"task_loss\":\"dm (sum over classes of squared L2 of mean "
                          "embeddings, no division by classes)\",\"network\":\"ConvNetD%u "
                          "width 128 instancenorm relu avgpool, %s\","
                          "\"depth\":%u,\"depth_rule\":\"%s\",\"embed_dim\":%u",
                        x->depth,
                        o->net_pool ? "drawn per iteration from a queue of partly trained networks (net_pool)"
                                    : "fresh random init per iteration",
                        x->depth, o->depth ? "--depth" : "by resolution", x->embed);
        if (o->net_pool)
            apd__dsb_printf(b, ",\"net_pool\":{\"networks\":%u,\"fresh_every\":%u,\"steps_per_iter\":%u,"
                              "\"batch\":%u,\"trained_per_iter\":1,\"lr\":0.01,\"momentum\":0.9,"
                              "\"weight_decay\":0.0005,\"loss\":\"softmax cross-entropy, real images of every "
                              "class, with replacement, no augmentation\"}",
                            o->net_pool, o->net_pool_every, o->net_pool_steps, o->net_pool_batch);
        apd__dsb_printf(b, ",\"activation_budget_bytes\":%llu",
                        (unsigned long long)(o->act_budget ? o->act_budget : APD_CONVNET_ACT_BUDGET));
        apd__dsb_printf(b, ",\"real_forward_gemm\":\"%s\"", apd_nn_bf16_enabled() ? "bf16" : "fp32");
        apd__dsb_printf(b, ",\"iters\":%u,\"batch_real\":%u,\"lr_img\":", o->iters, o->batch_real);
        apd__dsb_num(b, o->lr_img);
        apd__dsb_printf(b, ",\"lr_img_rule\":\"%s\",\"lr_img_used\":",
                        apd_lr_rule_name(apd__distill_lr_rule(o)));
        apd__dsb_num(b, x->lr_img_used);
        apd__dsb_printf(b, ",\"pixel_range\":\"%s\"", apd_pixel_range_name(apd__distill_pixel_range(o)));
        apd__dsb_printf(b, ",\"momentum_img\":");
        apd__dsb_num(b, o->momentum_img);
        apd__dsb_printf(b, ",\"dsa\":{\"strategy_mask\":%u,\"mode\":\"siamese\",\"align_corners\":%d}",
                       o->dsa_strategy, o->dsa_align_corners);
    }
    if (apd__distill_stored(o)) {
        apd__dsb_printf(b, ",\"palette_mode\":\"stored\",\"palette\":\"per-image, fitted to each synthetic "
                          "image by the quantizer at every iteration\",\"quantizer\":\"%s\",\"task_loss_on\":"
                          "\"the stored images (8-bit palette + index map)\",\"gradient\":\"straight-through to "
                          "the pixels\",\"stored\":\"the quantizer's palette and index map of the final images\"",
                        apd_quantizer_name(apd__distill_stored_quantizer(o)));
        apd_loss_range lr = apd__distill_loss_range(o);
        const char *rule = NULL;
        if (lr == APD_LOSS_RANGE_FLOAT)
            rule = "the loss sees Q(clip(x)) + (x - clip(x)): a pixel's float value beyond the 8-bit range, "
                   "its stored colour within it";
        else if (lr == APD_LOSS_RANGE_ANNEAL)
            rule = "at iteration t of T the loss sees Q(clip(x)) + (1 - (t+1)/T) (x - clip(x)): from the float "
                   "value beyond the 8-bit range to the stored one";
        apd__dsb_printf(b, ",\"loss_range\":\"%s\"", apd_loss_range_name(lr));
        if (rule) apd__dsb_printf(b, ",\"loss_range_rule\":\"%s\"", rule);
        apd__dsb_printf(b, ",\"anneal\":");
        apd__dsb_num(b, o->anneal);
        if (o->anneal > 0.0f)
            apd__dsb_printf(b, ",\"anneal_rule\":\"iteration t of T sees (1 - a) float + a stored, "
                              "a = min(1, (t + 1) / (anneal T))\"");
    } else if (o->method == APD_DISTILL_AUTOPALETTE) {
        apd__dsb_printf(b, ",\"palette_mode\":\"network\",\"palette_net\":\"per-pixel MLP C-256-ReLU-K (no bias in layer 2), "
                          "softmax over K\",\"palette_input\":\"%s\"",
                        apd_palette_input_name(o->palette_input));
        if (o->palette_input == APD_PALETTE_INPUT_IMAGE_NORM) {
            apd__dsb_printf(b, ",\"palette_input_eps\":");
            apd__dsb_num(b, APD_PALETTE_NORM_EPS);
        }
        apd__dsb_printf(b, ",\"lr_palette\":");
        apd__dsb_num(b, o->lr_palette);
        apd__dsb_printf(b, ",\"momentum_palette\":");
        apd__dsb_num(b, o->momentum_palette);
        apd__dsb_printf(b, ",\"wd_palette\":");
        apd__dsb_num(b, o->wd_palette);
        apd__dsb_printf(b, ",\"w_max\":");
        apd__dsb_num(b, o->w_max);
        apd__dsb_printf(b, ",\"w_balance\":");
        apd__dsb_num(b, o->w_balance);
        apd__dsb_printf(b, ",\"w_align\":");
        apd__dsb_num(b, o->w_align);
        apd__dsb_printf(b, ",\"w_conf\":");
        apd__dsb_num(b, o->w_conf);
        apd__dsb_printf(b, ",\"color_subset\":%u,\"align_ratio\":", o->color_subset);
        apd__dsb_num(b, o->align_ratio);
        char rn[96];
        apd__dsb_printf(b, ",\"palette_remedy\":{\"name\":\"%s\",\"warmup_steps\":%u,\"task_scale\":",
                       apd_palette_remedy_name(o->remedy, rn, sizeof rn), o->warmup_steps);
        apd__dsb_num(b, o->task_scale);
        apd__dsb_printf(b, ",\"temp_start\":");
        apd__dsb_num(b, o->temp_start);
        apd__dsb_printf(b, ",\"temp_end\":");
        apd__dsb_num(b, o->temp_end);
        apd__dsb_printf(b, "},\"stored\":\"hard quantization (argmax index map + per-image mean "
                          "palette)\"");
    }
    if (x->init == APD_INIT_GRAPHCUT) {
        apd__dsb_printf(b, ",\"selection\":{\"quantizer\":\"median-cut\",\"k\":%u,\"network\":"
                          "\"ConvNetD%u\",\"depth\":%u,\"epochs\":%u,\"batch\":%u,\"lr\":",
                       o->colors, x->depth, x->depth, o->select_epochs, o->select_batch);
        apd__dsb_num(b, o->select_lr);
        apd__dsb_printf(b, ",\"momentum\":");
        apd__dsb_num(b, o->select_momentum);
        apd__dsb_printf(b, ",\"weight_decay\":");
        apd__dsb_num(b, o->select_wd);
        apd__dsb_printf(b, ",\"limit_per_class\":%llu,\"features\":\"embed %u-d\","
                          "\"similarity\":\"0.5+0.5cos\",\"lambda\":",
                       (unsigned long long)o->select_limit, x->embed);
        apd__dsb_num(b, o->gc_lambda);
        apd__dsb_printf(b, ",\"epsilon\":");
        apd__dsb_num(b, o->gc_epsilon);
        apd__dsb_printf(b, ",\"greedy\":\"stochastic, gain per candidate\"}");
    }
    if (apd_distill_ce_weight_in_effect(o) > 0.0f && o->method != APD_DISTILL_RANDOM) {
        apd__dsb_printf(b, ",\"class_aware\":{\"weight\":");
        apd__dsb_num(b, apd_distill_ce_weight_in_effect(o));
        apd__dsb_printf(b, ",\"loss\":\"weight x mean softmax cross-entropy of each class's synthetic images (as "
                           "the DM loss sees them) under the teacher\",\"teacher\":\"ConvNetD%u, fresh init, %u SGD "
                           "steps of %u real images drawn from all classes, lr 0.01, momentum 0.9, weight decay 5e-4, "
                           "no augmentation\"}",
                       x->depth, apd_distill_ce_teacher_steps_in_effect(o, x->src->n), APD_DISTILL_CE_BATCH);
    }
    if (x->init == APD_INIT_HERDING)
        apd__dsb_printf(b, ",\"selection\":{\"quantizer\":\"median-cut\",\"k\":%u,\"networks\":%u,"
                           "\"network\":\"ConvNetD%u, random init as the DM loop\",\"limit_per_class\":%llu,"
                           "\"features\":\"embed %u-d per network\",\"target\":\"mean full-colour embedding "
                           "of the candidates\",\"greedy\":\"herding\"}",
                       o->colors, o->herd_nets, x->depth, (unsigned long long)o->herd_limit, x->embed);
    apd__dsb_printf(b, "}");
}

/* The bytes rule's provenance: the rule, the estimate, the measured bytes of the stored
 * records per class and the image count (docs/palette.md, "Budget rule `bytes`"). */
static void budget_bytes_json(apd__dsb *b, const apd_distill_opts *o, const apd_distill_ctx *x)
{
    const apd__budget_fit_info *f = &x->bf;
    apd_budget bd;
    if (apd_budget_compute(&bd, APD_BUDGET_BITS, o->ipc, o->colors, x->c, x->h, x->w) != APD_OK) return;
    apd__dsb_printf(b, "{\"rule\":\"bytes\",\"ipc\":%u,\"k\":%u,\"c\":%u,\"h\":%u,\"w\":%u,"
                       "\"full_image_bytes\":%llu,\"budget_bytes\":%llu,\"counted\":\"per class: stored "
                       "records (header, source id, body as written) + ceil((index model + zstd dictionary) "
                       "/ classes); writer options of apd_distill_writer_opts (compress auto, index coding "
                       "auto)\",\"plain_bytes_per_image\":%llu",
                    o->ipc, o->colors, x->c, x->h, x->w, (unsigned long long)bd.full_image_bytes,
                    (unsigned long long)bd.budget_bytes, (unsigned long long)bd.bytes_per_image);
    if (f->estimated)
        apd__dsb_printf(b, ",\"estimate\":{\"quantizer\":\"%s\",\"sample_images_per_class\":%llu,"
                           "\"stored_bytes_per_image\":%llu,\"shared_bytes\":%llu,\"images_per_class\":%llu}",
                        apd_quantizer_name((apd_quantizer)f->quantizer), (unsigned long long)f->sample,
                        (unsigned long long)f->sample_bytes_per_image, (unsigned long long)f->sample_shared,
                        (unsigned long long)f->estimated);
    apd__dsb_printf(b, ",\"images_per_class\":%llu,\"fit_rounds\":%u,\"stored_bytes_per_class\":[",
                    (unsigned long long)x->images_per_class, f->rounds);
    for (uint32_t cls = 0; f->per_class && cls < x->n_classes; cls++)
        apd__dsb_printf(b, "%s%llu", cls ? "," : "", (unsigned long long)f->per_class[cls]);
    apd__dsb_printf(b, "],\"shared_bytes\":%llu,\"shared_bytes_per_class\":%llu,\"coded_records\":%llu,"
                       "\"used_bytes\":%llu,\"over_budget\":%s,\"stored_kind\":\"palette\","
                       "\"stored_images_per_class\":%llu}",
                    (unsigned long long)f->shared, (unsigned long long)f->share, (unsigned long long)f->coded,
                    (unsigned long long)f->worst, f->worst > bd.budget_bytes ? "true" : "false",
                    (unsigned long long)x->images_per_class);
}

static void budget_json(apd__dsb *b, const apd_distill_opts *o, const apd_distill_ctx *x)
{
    if (o->budget == APD_BUDGET_BYTES && x->palette_out) {
        budget_bytes_json(b, o, x);
        return;
    }
    /* the rule's figures (apd/budget.h) plus what this method actually stores */
    char buf[768];
    apd_budget bd;
    uint64_t full = (uint64_t)x->c * x->h * x->w;
    int palette = x->palette_out;
    uint64_t per = full;
    int ok = apd_budget_compute(&bd, o->budget, o->ipc, o->colors, x->c, x->h, x->w) == APD_OK;
    if (ok && palette) per = bd.bytes_per_image;
    if (ok && apd_budget_json(&bd, buf, sizeof buf) == APD_OK && buf[0] == '{') {
        buf[strlen(buf) - 1] = 0; /* drop the closing brace, append ours */
        apd__dsb_printf(b, "%s,", buf);
    } else {
        apd__dsb_printf(b, "{\"rule\":\"%s\",\"ipc\":%u,\"k\":%u,", apd_budget_rule_name(o->budget),
                       o->ipc, o->colors);
    }
    apd__dsb_printf(b, "\"stored_kind\":\"%s\",\"stored_images_per_class\":%llu,"
                      "\"stored_bytes_per_image\":%llu,\"stored_bytes_per_class\":%llu}",
                   palette ? "palette" : "direct", (unsigned long long)x->images_per_class,
                   (unsigned long long)per, (unsigned long long)(per * x->images_per_class));
}

static char *sb_take(apd__dsb *b)
{
    if (b->failed) {
        free(b->buf);
        return NULL;
    }
    char *s = b->buf;
    memset(b, 0, sizeof *b);
    return s;
}

/* Append "stored_colors_per_image":{min, median, max} of k_used (n values, each 0..APD_MAX_COLORS) to
 * x->stats; the median of an even count is the mean of the two middle values. */
void apd__distill_colors_stat(apd_distill_ctx *x, const uint32_t *k_used, uint64_t n)
{
    if (n == 0) return;
    uint64_t hist[APD_MAX_COLORS + 1] = {0};
    uint32_t mn = APD_MAX_COLORS, mx = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t k = k_used[i] > APD_MAX_COLORS ? APD_MAX_COLORS : k_used[i];
        hist[k]++;
        if (k < mn) mn = k;
        if (k > mx) mx = k;
    }
    /* values at ranks (n-1)/2 and n/2 of the sorted list */
    uint64_t lo_rank = (n - 1) / 2, hi_rank = n / 2, acc = 0;
    uint32_t lo = 0, hi = 0;
    int have_lo = 0;
    for (uint32_t k = 0; k <= APD_MAX_COLORS; k++) {
        acc += hist[k];
        if (!have_lo && acc > lo_rank) {
            lo = k;
            have_lo = 1;
        }
        if (acc > hi_rank) {
            hi = k;
            break;
        }
    }
    apd__dsb_printf(&x->stats, "%s\"stored_colors_per_image\":{\"min\":%u,\"median\":", x->stats.len ? "," : "",
                    mn);
    apd__dsb_num(&x->stats, 0.5 * ((double)lo + hi));
    apd__dsb_printf(&x->stats, ",\"max\":%u}", mx);
}

/* Turn res->pixels (direct) into palette records with the classical quantizer o->quantizer
 * at K colours (the "median-cut random real" baseline). */
static apd_status quantize_records(apd_distill_ctx *x, apd_distill_result *res, apd_err *err)
{
    size_t img = (size_t)x->c * x->h * x->w, p = (size_t)x->h * x->w;
    res->palettes = calloc((size_t)res->n, (size_t)x->k * x->c);
    res->indices = malloc((size_t)res->n * p);
    res->k_used = malloc((size_t)res->n * sizeof *res->k_used);
    if (!res->palettes || !res->indices || !res->k_used)
        return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    for (uint64_t i = 0; i < res->n; i++) {
        apd_status s = apd_quantize_image((apd_quantizer)x->o->quantizer, res->pixels + i * img, x->c, x->h,
                                          x->w, x->k, apd__mix64(x->seed ^ i), res->palettes + i * x->k * x->c,
                                          res->indices + i * p, &res->k_used[i]);
        if (s != APD_OK)
            return apd__err_set(err, s, "distill: quantizing image %llu failed", (unsigned long long)i);
    }
    free(res->pixels);
    res->pixels = NULL;
    res->kind = APD_KIND_PALETTE;
    res->k = x->k;
    apd__distill_colors_stat(x, res->k_used, res->n);
    return APD_OK;
}

/* ---- run ---------------------------------------------------------------------------------- */

/* The ConvNet's side after the first convolution (apd/nn.h: 28x28 is padded to 32; distillation
 * images are square). */
static uint32_t net_side(uint32_t side) { return side == 28 ? 32 : side; }

/* Every ConvNet of the run (DM loop, selection net) halves the image depth times: the side
 * must divide by 2^depth (a clear message here rather than APD_ESHAPE from the net). */
static apd_status check_net_shape(const apd_distill_source *real, const apd_distill_opts *o, apd_err *err)
{
    int select = apd_distill_init_in_effect(o) != APD_INIT_RANDOM;
    if (o->method == APD_DISTILL_RANDOM && !select) return APD_OK; /* no network */
    uint32_t d = o->depth ? o->depth : apd_convnet_default_depth(real->h, real->w);
    if (net_side(real->h) % (1u << d) || net_side(real->w) % (1u << d))
        return apd__err_set(err, APD_EINVAL,
                            "distill: %ux%u images do not halve evenly %u times for the ConvNetD%u (%s); "
                            "choose --depth or another --size", real->h, real->w, d, d,
                            o->depth ? "--depth" : "depth by resolution");
    return APD_OK;
}

/* Options against the source's geometry (the source checked its labels when it was made). */
static apd_status validate(const apd_distill_source *real, const apd_distill_opts *o, apd_err *err)
{
    if (o->method > APD_DISTILL_AUTOPALETTE)
        return apd__err_set(err, APD_EINVAL, "distill: unknown method %d", (int)o->method);
    if (o->ipc == 0) return apd__err_set(err, APD_EINVAL, "distill: --ipc must be >= 1");
    if (o->colors < 2 || o->colors > APD_MAX_COLORS)
        return apd__err_set(err, APD_EINVAL, "distill: --colors %u outside 2..%u", o->colors, APD_MAX_COLORS);
    APD_TRY(apd__distill_check_numbers(o, err));
    if (o->method != APD_DISTILL_RANDOM) {
        if (o->batch_real == 0) return apd__err_set(err, APD_EINVAL, "distill: --batch-real must be >= 1");
        if (!(o->lr_img >= 0) || !(o->lr_palette >= 0))
            return apd__err_set(err, APD_EINVAL, "distill: learning rates must be >= 0");
        if (real->h < 8 || real->w < 8 || real->h != real->w)
            return apd__err_set(err, APD_EINVAL,
                                "distill: images are %ux%u; the ConvNet needs square images of "
                                "at least 8x8", real->h, real->w);
    }
    if (o->depth > 8) return apd__err_set(err, APD_EINVAL, "distill: --depth %u outside 1..8", o->depth);
    if (o->lr_img_rule != APD_LR_AUTO && o->lr_img_rule != APD_LR_FIXED && o->lr_img_rule != APD_LR_COUNT)
        return apd__err_set(err, APD_EINVAL, "distill: unknown learning-rate rule %d", (int)o->lr_img_rule);
    if (o->pixel_range != APD_PIXELS_AUTO && o->pixel_range != APD_PIXELS_FREE && o->pixel_range != APD_PIXELS_CLAMP)
        return apd__err_set(err, APD_EINVAL, "distill: unknown pixel range rule %d", (int)o->pixel_range);
    if (o->loss_range != APD_LOSS_RANGE_AUTO && o->loss_range != APD_LOSS_RANGE_STORED &&
        o->loss_range != APD_LOSS_RANGE_FLOAT && o->loss_range != APD_LOSS_RANGE_ANNEAL)
        return apd__err_set(err, APD_EINVAL, "distill: unknown loss range rule %d", (int)o->loss_range);
    if (o->loss_range != APD_LOSS_RANGE_AUTO && !apd__distill_stored(o))
        return apd__err_set(err, APD_EINVAL, "distill: --loss-range needs --method autopalette --palette stored");
    if (!(o->anneal >= 0.0f && o->anneal <= 1.0f))
        return apd__err_set(err, APD_EINVAL, "distill: --anneal %g outside [0, 1]", (double)o->anneal);
    if (o->anneal > 0.0f && !apd__distill_stored(o))
        return apd__err_set(err, APD_EINVAL, "distill: --anneal needs --method autopalette --palette stored");
    if (o->palette_mode != APD_PALETTE_NETWORK && o->palette_mode != APD_PALETTE_STORED)
        return apd__err_set(err, APD_EINVAL, "distill: unknown palette mode %d", (int)o->palette_mode);
    if (o->palette_input != APD_PALETTE_INPUT_ABSOLUTE && o->palette_input != APD_PALETTE_INPUT_IMAGE_NORM)
        return apd__err_set(err, APD_EINVAL, "distill: unknown palette-network input %d", (int)o->palette_input);
    if (o->palette_input != APD_PALETTE_INPUT_ABSOLUTE && !apd__distill_network(o))
        return apd__err_set(err, APD_EINVAL, "distill: --palette-input applies to autopalette with the palette "
                                             "network only (--palette network)");
    if (o->quantizer >= 0 && apd__distill_network(o))
        return apd__err_set(err, APD_EINVAL, "distill: a quantizer applies to autopalette only with palette mode "
                                             "stored (the palette network makes its own palettes)");
    APD_TRY(check_net_shape(real, o, err));
    if (o->checkpoint_every && !o->checkpoint_path)
        return apd__err_set(err, APD_EINVAL, "distill: --checkpoint-every needs a checkpoint path");
    if (o->net_pool) {
        if (o->method == APD_DISTILL_RANDOM)
            return apd__err_set(err, APD_EINVAL,
                                "distill: --net-pool applies only to dm and autopalette (the DM loop)");
        if (o->net_pool > APD_DISTILL_MAX_NET_POOL)
            return apd__err_set(err, APD_EINVAL, "distill: --net-pool %u outside 0..%u", o->net_pool,
                                APD_DISTILL_MAX_NET_POOL);
        if (o->net_pool_every == 0 || o->net_pool_batch == 0)
            return apd__err_set(err, APD_EINVAL, "distill: --net-pool-every and --net-pool-batch must be >= 1");
        if (o->net_pool_steps > APD_DISTILL_MAX_NET_POOL_STEPS)
            return apd__err_set(err, APD_EINVAL, "distill: --net-pool-steps %u outside 0..%u", o->net_pool_steps,
                                APD_DISTILL_MAX_NET_POOL_STEPS);
    }
    if (apd_distill_init_in_effect(o) > APD_INIT_HERDING)
        return apd__err_set(err, APD_EINVAL, "distill: unknown init %d", (int)apd_distill_init_in_effect(o));
    if (apd_distill_init_in_effect(o) == APD_INIT_HERDING && (o->herd_nets < 1 || o->herd_nets > 64))
        return apd__err_set(err, APD_EINVAL, "distill: --herd-nets %u outside 1..64", o->herd_nets);
    if (apd_distill_ce_weight_in_effect(o) > 0.0f) {
        if (o->method == APD_DISTILL_RANDOM)
            return apd__err_set(err, APD_EINVAL, "distill: --ce-weight applies only to dm and autopalette (the DM loop)");
        if (o->ce_teacher_steps > APD_DISTILL_MAX_NET_POOL_STEPS)
            return apd__err_set(err, APD_EINVAL, "distill: --ce-teacher-steps %u outside 0..%u (0 = the default rule)",
                                o->ce_teacher_steps, APD_DISTILL_MAX_NET_POOL_STEPS);
    }
    if (!(o->gc_epsilon > 0 && o->gc_epsilon < 1))
        return apd__err_set(err, APD_EINVAL, "distill: graph-cut epsilon %g outside (0,1)", o->gc_epsilon);
    return APD_OK;
}

/* Random initial images: per class, images_per_class distinct real images in a seeded order
 * (a partial shuffle of the class's ids in ascending order). */
static apd_status pick_random(const apd_distill_ctx *x, const apd_distill_source *real, uint64_t *src)
{
    uint64_t max_n = 1;
    for (uint32_t cls = 0; cls < x->n_classes; cls++)
        if (real->cls_off[cls + 1] - real->cls_off[cls] > max_n) max_n = real->cls_off[cls + 1] - real->cls_off[cls];
    uint64_t *idx = malloc((size_t)max_n * sizeof *idx);
    if (!idx) return APD_ENOMEM;
    for (uint32_t cls = 0; cls < x->n_classes; cls++) {
        uint64_t m = real->cls_off[cls + 1] - real->cls_off[cls];
        memcpy(idx, real->cls_ids + real->cls_off[cls], (size_t)m * sizeof *idx);
        apd__rng r;
        apd__rng_seed(&r, x->seed, 0x696e6974ull /* "init" */ * 1000 + cls);
        /* partial Fisher-Yates for the first images_per_class */
        for (uint64_t t = 0; t < x->images_per_class; t++) {
            uint64_t j = t + apd__rng_below(&r, m - t);
            uint64_t tmp = idx[t];
            idx[t] = idx[j];
            idx[j] = tmp;
        }
        for (uint64_t t = 0; t < x->images_per_class; t++)
            src[cls * x->images_per_class + t] = idx[t];
    }
    free(idx);
    return APD_OK;
}

static apd_status run_source(apd_distill_source *src, const apd_distill_opts *o, apd_distill_result *res,
                             apd_err *err, uint32_t bench_iters, double *t_first, double *t_rest);

APD_API apd_status apd_distill_run(const apd_dataset *real, const apd_distill_opts *o,
                                   apd_distill_result *res, apd_err *err)
{
    return apd__distill_run_bench(real, o, res, err, 0, NULL, NULL);
}

APD_API apd_status apd_distill_run_source(apd_distill_source *src, const apd_distill_opts *o,
                                          apd_distill_result *res, apd_err *err)
{
    if (res) memset(res, 0, sizeof *res);
    if (!src) return apd__err_set(err, APD_EINVAL, "distill: NULL source");
    return run_source(src, o, res, err, 0, NULL, NULL);
}

/* The run context: geometry, seed, thread count, init, K, synthetic images per class (from
 * the budget rule) and the normalisation; every class must have that many images. */
static apd_status ctx_init(apd_distill_ctx *x, apd_distill_source *real, const apd_distill_opts *o,
                           uint32_t bench_iters, apd_err *err)
{
    memset(x, 0, sizeof *x);
    x->o = o;
    x->src = real;
    x->c = real->c;
    x->h = real->h;
    x->w = real->w;
    x->n_classes = real->n_classes;
    x->seed = o->seed;
    x->threads = o->threads ? o->threads : 2;
    x->depth = o->depth ? o->depth : apd_convnet_default_depth(x->h, x->w);
    x->embed = 128u * (net_side(x->h) >> x->depth) * (net_side(x->w) >> x->depth);
    x->bench_iters = bench_iters;
    x->size = 1;
    if (o->comm && o->comm->size > 1) {
        if (!o->comm->exchange || o->comm->rank >= o->comm->size)
            return apd__err_set(err, APD_EINVAL, "distill: comm: rank %u of %u, exchange %s", o->comm->rank,
                                o->comm->size, o->comm->exchange ? "set" : "missing");
        x->comm = o->comm;
        x->rank = o->comm->rank;
        x->size = o->comm->size;
    }
    apd__dcomm_range(real->n_classes, x->rank, x->size, &x->cls_lo, &x->cls_hi);
    x->init = apd_distill_init_in_effect(o);
    x->k = o->colors;
    x->palette_out = o->method == APD_DISTILL_AUTOPALETTE || o->quantizer >= 0;
    memcpy(x->mean, real->mean, sizeof x->mean);
    memcpy(x->std, real->std, sizeof x->std);
    for (uint32_t ch = 0; ch < x->c; ch++)
        if (!(x->std[ch] > 1e-6f)) x->std[ch] = 1.0f;
    if (o->images_per_class)
        x->images_per_class = o->images_per_class;
    else if (x->palette_out && o->budget == APD_BUDGET_BYTES) {
        if (bench_iters) x->images_per_class = o->ipc; /* bench: timing only, nothing stored */
        else APD_TRY(apd__budget_estimate(x, err));
    } else if (x->palette_out) {
        apd_budget bd;
        if (apd_budget_compute(&bd, o->budget, o->ipc, o->colors, x->c, x->h, x->w) != APD_OK)
            return apd__err_set(err, APD_EINVAL, "distill: bad budget (ipc %u, K %u)", o->ipc, o->colors);
        x->images_per_class = bd.images_per_class;
    } else
        x->images_per_class = o->ipc; /* full-colour methods: IPC images is the budget */
    for (uint32_t cls = 0; cls < x->n_classes; cls++) {
        uint64_t count = apd_distill_source_class_count(real, cls);
        if (count < x->images_per_class)
            return apd__err_set(err, APD_EINVAL,
                                "distill: class %u has %llu images%s%s, fewer than the %llu "
                                "synthetic images per class the budget asks for",
                                cls, (unsigned long long)count, real->path ? " in " : "",
                                real->path ? real->path : "", (unsigned long long)x->images_per_class);
    }
    return APD_OK;
}

/* The provenance JSON of the result (hyperparameters, budget, stats). */
static apd_status result_json(apd_distill_result *res, const apd_distill_opts *o, apd_distill_ctx *x,
                              apd_err *err)
{
    apd__dsb b = {0};
    hparams_json(&b, o, x);
    res->hyperparameters_json = sb_take(&b);
    budget_json(&b, o, x);
    res->budget_json = sb_take(&b);
    /* deterministic figures only (no timings): the file must not depend on the run */
    apd__dsb_printf(&b, "{%s}", x->stats.buf ? x->stats.buf : "");
    res->stats_json = sb_take(&b);
    if (!res->hyperparameters_json || !res->budget_json || !res->stats_json)
        return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    return APD_OK;
}

/* random: the initial real images themselves (quantized if o->quantizer). */
static apd_status random_records(apd_distill_ctx *x, apd_distill_result *res, apd_err *err)
{
    size_t img = (size_t)x->c * x->h * x->w;
    res->kind = APD_KIND_DIRECT;
    res->pixels = malloc((size_t)res->n * img);
    if (!res->pixels) return apd__err_set(err, APD_ENOMEM, "distill: out of memory");
    for (uint64_t i = 0; i < res->n; i++) {
        const uint8_t *im;
        APD_TRY(apd__dsrc_image(x->src, res->source_ids[i], res->pixels + i * img, &im, err));
        if (im != res->pixels + i * img) memcpy(res->pixels + i * img, im, img);
    }
    if (x->o->quantizer >= 0) return quantize_records(x, res, err);
    return APD_OK;
}

apd_status apd__distill_run_bench(const apd_dataset *real, const apd_distill_opts *o,
                                  apd_distill_result *res, apd_err *err, uint32_t bench_iters,
                                  double *t_first, double *t_rest)
{
    if (res) memset(res, 0, sizeof *res);
    apd_distill_source *src;
    APD_TRY(apd_distill_source_from_dataset(&src, real, err));
    apd_status s = run_source(src, o, res, err, bench_iters, t_first, t_rest);
    apd_distill_source_free(src);
    return s;
}

static apd_status run_source(apd_distill_source *real, const apd_distill_opts *o, apd_distill_result *res,
                             apd_err *err, uint32_t bench_iters, double *t_first, double *t_rest)
{
    if (!res || !o) return apd__err_set(err, APD_EINVAL, "distill: NULL argument");
    memset(res, 0, sizeof *res);
    APD_TRY(validate(real, o, err));
    apd_distill_ctx x;
    APD_TRY(ctx_init(&x, real, o, bench_iters, err));

    apd_status s = APD_OK;
    uint64_t n = x.images_per_class * x.n_classes;
    res->n = n;
    res->c = x.c;
    res->h = x.h;
    res->w = x.w;
    res->n_classes = x.n_classes;
    res->images_per_class = x.images_per_class;
    memcpy(res->mean, x.mean, sizeof res->mean);
    memcpy(res->std, x.std, sizeof res->std);
    res->labels = malloc((size_t)n * sizeof *res->labels);
    res->source_ids = malloc((size_t)n * sizeof *res->source_ids);
    if (!res->labels || !res->source_ids) {
        s = apd__err_set(err, APD_ENOMEM, "distill: out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) res->labels[i] = (uint32_t)(i / x.images_per_class);

    double t0 = apd__now();
    if (o->resume_path && o->method != APD_DISTILL_RANDOM)
        s = APD_OK; /* the checkpoint holds the initial images' ids (dm.c) */
    else if (x.init == APD_INIT_GRAPHCUT)
        s = apd__select_graphcut(&x, res->source_ids, err);
    else if (x.init == APD_INIT_HERDING)
        s = apd__select_herding(&x, res->source_ids, err);
    else /* every process draws every class (cheap); they agree before the DM loop */
        s = apd__dcomm_agree(&x, pick_random(&x, real, res->source_ids), err);
    if (s != APD_OK) {
        if (s == APD_ENOMEM) apd__err_set(err, s, "distill: out of memory choosing the initial images");
        goto fail;
    }
    x.t_init = apd__now() - t0;

    if (o->method == APD_DISTILL_RANDOM) {
        s = random_records(&x, res, err);
        if (s != APD_OK) goto fail;
    } else {
        s = apd__dm_run(&x, res, err);
        if (s != APD_OK) goto fail;
        if (bench_iters) {
            if (t_first) *t_first = x.bench_first;
            if (t_rest) *t_rest = x.bench_rest;
            free(x.stats.buf);
            free(x.bf.per_class);
            return APD_OK; /* bench: no records; the caller frees res */
        }
    }
    if (o->budget == APD_BUDGET_BYTES && x.palette_out) {
        s = apd__budget_fit(&x, res, err);
        if (s != APD_OK) goto fail;
    }
    s = result_json(res, o, &x, err);
    free(x.stats.buf);
    free(x.bf.per_class);
    if (s == APD_OK) return APD_OK;
    apd_distill_result_free(res);
    return s;
fail:
    free(x.stats.buf);
    free(x.bf.per_class);
    apd_distill_result_free(res);
    return s;
}
