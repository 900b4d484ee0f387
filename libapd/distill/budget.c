/* distill/budget.c: storage-budget rules (bits | paper | images | bytes); see apd/budget.h
 * for the policy. The bytes rule's measurement (coding images with the real writer) is
 * budget_fit.c; this file only does its arithmetic. All arithmetic is integer and overflow-checked so that the figures recorded in a
 * file's provenance are exact. */
#include <stdio.h>
#include <string.h>

#include "apd/budget.h"
#include "common/internal.h"

/* ceil(log2 k) for k >= 1. */
static uint32_t ceil_log2(uint32_t k)
{
    uint32_t b = 0;
    while (((uint64_t)1 << b) < k) b++;
    return b;
}

/* The geometry and the plain 1.0 figures every rule shares. */
static apd_status fixed_figures(apd_budget *out, apd_budget_rule rule, uint32_t ipc, uint32_t k, uint32_t c,
                                uint32_t h, uint32_t w)
{
    APD_RETURN_IF(!out, APD_EINVAL);
    memset(out, 0, sizeof *out);
    APD_RETURN_IF(ipc < 1 || k < 2 || k > APD_MAX_COLORS || c < 1 || h < 1 || w < 1, APD_EINVAL);
    out->rule = rule;
    out->ipc = ipc; out->k = k; out->c = c; out->h = h; out->w = w;
    uint32_t lg = ceil_log2(k);
    out->index_bits = lg < 1 ? 1 : lg;

    size_t px, full, idx_bits, budget;
    APD_RETURN_IF(!apd__mul_ok(h, w, &px), APD_EOVERFLOW);
    APD_RETURN_IF(!apd__mul_ok(px, c, &full), APD_EOVERFLOW);
    APD_RETURN_IF(!apd__mul_ok(px, out->index_bits, &idx_bits), APD_EOVERFLOW);
    APD_RETURN_IF(!apd__mul_ok(full, ipc, &budget), APD_EOVERFLOW);
    out->palette_bytes = (uint64_t)k * c;
    out->index_bytes = ((uint64_t)idx_bits + 7) / 8;
    out->bytes_per_image = out->palette_bytes + out->index_bytes;
    out->full_image_bytes = full;
    out->budget_bytes = budget;
    return APD_OK;
}

apd_status apd_budget_compute(apd_budget *out, apd_budget_rule rule, uint32_t ipc, uint32_t k, uint32_t c,
                              uint32_t h, uint32_t w)
{
    APD_TRY(fixed_figures(out, rule, ipc, k, c, h, w));
    if (rule != APD_BUDGET_BITS && rule != APD_BUDGET_PAPER && rule != APD_BUDGET_IMAGES) {
        memset(out, 0, sizeof *out); /* unknown, or bytes without a measurement */
        return APD_EINVAL;
    }
    uint32_t lg = ceil_log2(k);
    switch (rule) {
    case APD_BUDGET_BITS:
        out->images_per_class = out->budget_bytes / out->bytes_per_image;
        if (out->images_per_class < 1) out->images_per_class = 1;
        break;
    case APD_BUDGET_PAPER:
        /* IPC * 2^(8 - ceil(log2 K)); K <= APD_MAX_COLORS = 256 so the exponent is 0..7 */
        out->images_per_class = (uint64_t)ipc << (8 - lg);
        break;
    case APD_BUDGET_IMAGES:
        out->images_per_class = ipc;
        break;
    case APD_BUDGET_BYTES:
        break;
    }
    size_t used;
    APD_RETURN_IF(!apd__mul_ok(out->images_per_class, out->bytes_per_image, &used), APD_EOVERFLOW);
    out->used_bytes = used;
    out->over_budget = out->used_bytes > out->budget_bytes;
    return APD_OK;
}

apd_status apd_budget_measured(apd_budget *out, uint32_t ipc, uint32_t k, uint32_t c, uint32_t h, uint32_t w,
                               uint64_t n_images, uint64_t stored_bytes, uint64_t shared_bytes)
{
    APD_TRY(fixed_figures(out, APD_BUDGET_BYTES, ipc, k, c, h, w));
    if (n_images < 1 || stored_bytes < 1) {
        memset(out, 0, sizeof *out);
        return APD_EINVAL;
    }
    /* round the per-image cost up, so that n images at that cost never undercount */
    out->bytes_per_image = stored_bytes / n_images + (stored_bytes % n_images != 0);
    out->shared_bytes = shared_bytes;
    uint64_t room = out->budget_bytes > shared_bytes ? out->budget_bytes - shared_bytes : 0;
    out->images_per_class = room / out->bytes_per_image;
    if (out->images_per_class < 1) out->images_per_class = 1;
    size_t used;
    APD_RETURN_IF(!apd__mul_ok(out->images_per_class, out->bytes_per_image, &used), APD_EOVERFLOW);
    APD_RETURN_IF(used > UINT64_MAX - shared_bytes, APD_EOVERFLOW);
    out->used_bytes = (uint64_t)used + shared_bytes;
    out->over_budget = out->used_bytes > out->budget_bytes;
    return APD_OK;
}

apd_status apd_budget_rule_from_name(const char *name, apd_budget_rule *out)
{
    APD_RETURN_IF(!name || !out, APD_EINVAL);
    if (strcmp(name, "bits") == 0) *out = APD_BUDGET_BITS;
    else if (strcmp(name, "paper") == 0) *out = APD_BUDGET_PAPER;
    else if (strcmp(name, "images") == 0) *out = APD_BUDGET_IMAGES;
    else if (strcmp(name, "bytes") == 0) *out = APD_BUDGET_BYTES;
    else return APD_EINVAL;
    return APD_OK;
}

const char *apd_budget_rule_name(apd_budget_rule rule)
{
    switch (rule) {
    case APD_BUDGET_BITS: return "bits";
    case APD_BUDGET_PAPER: return "paper";
    case APD_BUDGET_IMAGES: return "images";
    case APD_BUDGET_BYTES: return "bytes";
    }
    return "unknown";
}

apd_status apd_budget_json(const apd_budget *b, char *buf, size_t len)
{
    APD_RETURN_IF(!b || !buf || len == 0, APD_EINVAL);
    char shared[48] = "";
    if (b->rule == APD_BUDGET_BYTES)
        snprintf(shared, sizeof shared, "\"shared_bytes\":%llu,", (unsigned long long)b->shared_bytes);
    int n = snprintf(buf, len,
                     "{\"rule\":\"%s\",\"ipc\":%u,\"k\":%u,\"c\":%u,\"h\":%u,\"w\":%u,\"index_bits\":%u,"
                     "\"palette_bytes\":%llu,\"index_bytes\":%llu,\"bytes_per_image\":%llu,"
                     "\"full_image_bytes\":%llu,\"budget_bytes\":%llu,\"images_per_class\":%llu,"
                     "%s\"used_bytes\":%llu,\"over_budget\":%s}",
                     apd_budget_rule_name(b->rule), b->ipc, b->k, b->c, b->h, b->w, b->index_bits,
                     (unsigned long long)b->palette_bytes, (unsigned long long)b->index_bytes,
                     (unsigned long long)b->bytes_per_image, (unsigned long long)b->full_image_bytes,
                     (unsigned long long)b->budget_bytes, (unsigned long long)b->images_per_class,
                     shared, (unsigned long long)b->used_bytes, b->over_budget ? "true" : "false");
    if (n < 0) return APD_EINVAL;
    if ((size_t)n >= len) return APD_EBUFSIZE;
    return APD_OK;
}
