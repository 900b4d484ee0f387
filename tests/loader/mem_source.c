/* mem_source.c: see mem_source.h. */
#include <stdio.h>
#include <string.h>

#include "common/rng.h"
#include "mem_source.h"

void mem_record(const mem_src *m, uint64_t i, uint8_t *pal, uint32_t *k, uint8_t *idx, uint32_t *label)
{
    uint32_t kk = 1 + (uint32_t)((i * 7) % m->kmax);
    apd__rng r;
    apd__rng_seed(&r, 12345, i);
    memset(pal, 0, APD_MAX_COLORS * (size_t)m->c);
    for (uint32_t j = 0; j < kk * m->c; j++) pal[j] = (uint8_t)apd__rng_u64(&r);
    for (uint32_t p = 0; p < m->h * m->w; p++) idx[p] = (uint8_t)apd__rng_below(&r, kk);
    *k = kk;
    *label = (uint32_t)(i % m->n_classes);
}

void mem_pixels_chw(const mem_src *m, uint64_t i, uint8_t *out)
{
    uint8_t pal[APD_MAX_COLORS * 3], idx[65536];
    uint32_t k, lab;
    mem_record(m, i, pal, &k, idx, &lab);
    size_t hw = (size_t)m->h * m->w;
    for (uint32_t ch = 0; ch < m->c; ch++)
        for (size_t p = 0; p < hw; p++) out[ch * hw + p] = pal[idx[p] * m->c + ch];
}

static apd_status bad(const mem_src *m, uint64_t i, char *msg, size_t len)
{
    if (m->corrupt && m->corrupt[i]) {
        snprintf(msg, len, "mem.apd: record %llu (key %08llx): checksum mismatch",
                 (unsigned long long)i, (unsigned long long)i);
        return APD_ECHECKSUM;
    }
    if (i >= m->n) return APD_ERANGE;
    return APD_OK;
}

static apd_status m_label(void *ctx, uint64_t i, uint32_t *label, char *msg, size_t len)
{
    mem_src *m = ctx;
    apd_status s = bad(m, i, msg, len);
    if (s) return s;
    *label = (uint32_t)(i % m->n_classes);
    return APD_OK;
}

static apd_status m_decode(void *ctx, uint64_t i, int chw, uint8_t *out, size_t out_len,
                           uint32_t *label, char *msg, size_t len)
{
    mem_src *m = ctx;
    apd_status s = bad(m, i, msg, len);
    if (s) return s;
    size_t hw = (size_t)m->h * m->w;
    if (out_len < m->c * hw) return APD_EBUFSIZE;
    if (chw) {
        mem_pixels_chw(m, i, out);
    } else {
        uint8_t tmp[3 * 4096];
        mem_pixels_chw(m, i, tmp);
        for (size_t p = 0; p < hw; p++)
            for (uint32_t ch = 0; ch < m->c; ch++) out[p * m->c + ch] = tmp[ch * hw + p];
    }
    *label = (uint32_t)(i % m->n_classes);
    return APD_OK;
}

static apd_status m_record(void *ctx, uint64_t i, uint8_t *pal, uint32_t *k, uint8_t *idx,
                           uint32_t *label, char *msg, size_t len)
{
    mem_src *m = ctx;
    apd_status s = bad(m, i, msg, len);
    if (s) return s;
    mem_record(m, i, pal, k, idx, label);
    return APD_OK;
}

apd__loader_source mem_source(mem_src *m)
{
    apd__loader_source s;
    memset(&s, 0, sizeof s);
    s.ctx = m;
    s.n_records = m->n;
    s.c = m->c;
    s.h = m->h;
    s.w = m->w;
    s.n_classes = m->n_classes;
    s.palette = (uint32_t)m->palette;
    for (int i = 0; i < 3; i++) {
        s.mean[i] = 0.25f + 0.1f * (float)i;
        s.std[i] = 0.2f + 0.05f * (float)i;
    }
    s.label = m_label;
    s.decode = m_decode;
    s.record = m->palette ? m_record : NULL;
    s.use_records = (uint32_t)m->palette;
    return s;
}
