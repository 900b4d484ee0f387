/* io/provenance.c: the "source" provenance object (spec/apd-format.md, metadata keys) that
 * every producer of .apd files writes: apd-convert for each method, and apd_distill_write.
 * One writer so the object has one shape. Built straight into the caller's buffer with the
 * snprintf convention, so there is nothing to allocate and nothing to fail but the size. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apd/io.h"
#include "apd/json.h"

typedef struct cbuf {
    char *out;
    size_t cap, len; /* len: bytes the full text needs so far */
} cbuf;

static char *tail(cbuf *b, size_t *room)
{
    *room = b->len < b->cap ? b->cap - b->len : 0;
    return *room ? b->out + b->len : NULL;
}

__attribute__((format(printf, 2, 3))) static void put(cbuf *b, const char *fmt, ...)
{
    size_t room;
    char *p = tail(b, &room);
    char dummy[1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p ? p : dummy, p ? room : 0, fmt, ap);
    va_end(ap);
    if (n > 0) b->len += (size_t)n;
}

static void put_str(cbuf *b, const char *s)
{
    size_t room;
    char *p = tail(b, &room);
    b->len += apd_json_escape(p, room, s ? s : "");
}

/* "counts": records per class, counted in blocks of 256 classes on the stack so that nothing
 * is allocated (one pass over the labels per block). */
static void put_counts(cbuf *b, const apd_dataset *ds)
{
    put(b, ", \"counts\": [");
    for (uint32_t c0 = 0; c0 < ds->n_classes; c0 += 256) {
        uint64_t cnt[256] = {0};
        for (uint64_t i = 0; i < ds->n; i++)
            if (ds->labels[i] >= c0 && ds->labels[i] - c0 < 256) cnt[ds->labels[i] - c0]++;
        for (uint32_t c = c0; c < ds->n_classes && c - c0 < 256; c++)
            put(b, "%s%llu", c ? ", " : "", (unsigned long long)cnt[c - c0]);
    }
    put(b, "]");
}

APD_API size_t apd_dataset_source_json(char *out, size_t cap, const apd_dataset *ds,
                                       const char *hash_hex, uint32_t resized_to)
{
    cbuf b = {out, out ? cap : 0, 0};
    if (b.cap) out[0] = '\0';
    if (!ds) return 0;
    char hex[17];
    if (!hash_hex) {
        apd_dataset_hash(ds, hex);
        hash_hex = hex;
    }
    put(&b, "{\"name\": ");
    put_str(&b, ds->name);
    put(&b, ", \"split\": ");
    put_str(&b, ds->split);
    put(&b, ", \"spec\": ");
    put_str(&b, ds->source);
    put(&b, ", \"n\": %llu, \"c\": %u, \"h\": %u, \"w\": %u, \"hash\": ", (unsigned long long)ds->n,
        ds->c, ds->h, ds->w);
    put_str(&b, hash_hex);
    put_counts(&b, ds);
    if (resized_to) put(&b, ", \"resized_to\": %u", resized_to);
    put(&b, "}");
    return b.len;
}
