/* distill/distill_write.c: hand a distillation result to the .apd writer.
 *
 * apd_distill_writer_opts fills the writer options that follow from the result (geometry,
 * record kind, K, classes, normalisation); apd_distill_write appends the records and the
 * distillation provenance ("method", "seed", "source", "hyperparameters", "budget",
 * "distill_stats"). The caller creates and closes the writer and sets the keys that belong
 * to the tool ("tool_version", "command_line"; the writer adds "created").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apd/format.h"
#include "apd/io.h"
#include "common/internal.h"
#include "common/sb.h"
#include "distill/distill_internal.h"

APD_API void apd_distill_writer_opts(apd_writer_opts *wo, const apd_distill_result *res,
                                     const apd_dataset *real)
{
    apd_writer_opts_default(wo);
    wo->c = res->c;
    wo->h = res->h;
    wo->w = res->w;
    wo->kind = res->kind == APD_KIND_PALETTE ? APD_KIND_PALETTE : APD_KIND_DIRECT;
    wo->k = res->kind == APD_KIND_PALETTE ? res->k : 0;
    wo->n_classes = res->n_classes;
    wo->class_names = real ? (const char (*)[64])real->class_names : NULL;
    for (int i = 0; i < 3; i++) {
        wo->mean[i] = i < (int)res->c ? res->mean[i] : 0.0f;
        wo->std[i] = i < (int)res->c ? res->std[i] : 0.0f;
    }
    wo->dataset_name = real && real->name[0] ? real->name : NULL;
}

/* key = the text built in b (APD_ENOMEM if building it ran out of memory). Frees b. */
static apd_status set_meta_sb(apd_writer *w, const char *key, apd__sb *b)
{
    apd_status s = b->oom || !b->p ? APD_ENOMEM : apd_writer_set_meta(w, key, b->p);
    apd__sb_free(b);
    return s;
}

APD_API apd_status apd_distill_write(apd_writer *w, const apd_distill_result *res,
                                     const apd_dataset *real, uint64_t seed, const char *method_name)
{
    if (!w || !res) return APD_EINVAL;
    size_t img = (size_t)res->c * res->h * res->w, p = (size_t)res->h * res->w;
    for (uint64_t i = 0; i < res->n; i++) {
        apd_status s;
        uint64_t sid = res->source_ids[i];
        if (real && real->source_ids && sid < real->n) sid = real->source_ids[sid];
        if (res->kind == APD_KIND_PALETTE)
            s = apd_writer_put_palette(w, res->palettes + i * res->k * res->c, res->k_used[i],
                                       res->indices + i * p, res->labels[i], sid);
        else
            s = apd_writer_put_direct(w, res->pixels + i * img, res->labels[i], sid);
        if (s != APD_OK) return s;
    }
    apd_status s = APD_OK;
    if (method_name) { /* else the caller wrote method, seed and source */
        apd__sb b = {0};
        apd__sb_jstr(&b, method_name);
        s = set_meta_sb(w, "method", &b);
        if (s == APD_OK) {
            apd__sb_printf(&b, "%llu", (unsigned long long)seed);
            s = set_meta_sb(w, "seed", &b);
        }
    }
    if (s == APD_OK && method_name && real) {
        char hex[17];
        apd_dataset_hash(real, hex);
        size_t need = apd_dataset_source_json(NULL, 0, real, hex, 0);
        char *src = malloc(need + 1);
        if (!src) return APD_ENOMEM;
        apd_dataset_source_json(src, need + 1, real, hex, 0);
        s = apd_writer_set_meta(w, "source", src);
        free(src);
    }
    if (s == APD_OK && res->hyperparameters_json)
        s = apd_writer_set_meta(w, "hyperparameters", res->hyperparameters_json);
    if (s == APD_OK && res->budget_json) s = apd_writer_set_meta(w, "budget", res->budget_json);
    if (s == APD_OK && res->stats_json) s = apd_writer_set_meta(w, "distill_stats", res->stats_json);
    return s;
}
