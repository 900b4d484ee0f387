/* format/json.c: strict JSON parser (flat node array) and string-buffer writer for the .apd
 * metadata document (see format/json.h). Everything read is bounds-checked; recursion is
 * limited to depth 64. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/json.h"

#define JSON_MAX_DEPTH 64
#define JSON_MAX_NODES (1u << 24)

typedef struct {
    apd__json *d;
    size_t pos;
    apd_status err;
} jp;

static void skip_ws(jp *p)
{
    const char *t = p->d->text;
    while (p->pos < p->d->len &&
           (t[p->pos] == ' ' || t[p->pos] == '\t' || t[p->pos] == '\n' || t[p->pos] == '\r'))
        p->pos++;
}

static int new_node(jp *p, uint8_t type)
{
    apd__json *d = p->d;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 64;
        if (nc > JSON_MAX_NODES) {
            p->err = APD_EMETA;
            return -1;
        }
        apd__jnode *nn = realloc(d->nodes, nc * sizeof *nn);
        if (!nn) {
            p->err = APD_ENOMEM;
            return -1;
        }
        d->nodes = nn;
        d->cap = nc;
    }
    apd__jnode *x = &d->nodes[d->n];
    memset(x, 0, sizeof *x);
    x->type = type;
    x->first = x->next = -1;
    x->start = (uint32_t)p->pos;
    return (int)d->n++;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Validates a string starting after the opening quote; leaves pos after the closing quote. */
static int scan_string(jp *p)
{
    const unsigned char *t = (const unsigned char *)p->d->text;
    size_t n = p->d->len;
    while (p->pos < n) {
        unsigned char ch = t[p->pos];
        if (ch == '"') {
            p->pos++;
            return 0;
        }
        if (ch < 0x20) return -1;
        if (ch == '\\') {
            if (p->pos + 1 >= n) return -1;
            char e = (char)t[p->pos + 1];
            if (e == 'u') {
                if (p->pos + 6 > n) return -1;
                for (int i = 2; i < 6; i++)
                    if (hexv((char)t[p->pos + i]) < 0) return -1;
                p->pos += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) return -1;
            p->pos += 2;
            continue;
        }
        p->pos++;
    }
    return -1;
}

static int scan_number(jp *p)
{
    const char *t = p->d->text;
    size_t n = p->d->len, s = p->pos;
    if (p->pos < n && t[p->pos] == '-') p->pos++;
    if (p->pos >= n) return -1;
    if (t[p->pos] == '0') {
        p->pos++;
    } else if (t[p->pos] >= '1' && t[p->pos] <= '9') {
        while (p->pos < n && t[p->pos] >= '0' && t[p->pos] <= '9') p->pos++;
    } else {
        return -1;
    }
    if (p->pos < n && t[p->pos] == '.') {
        p->pos++;
        size_t d0 = p->pos;
        while (p->pos < n && t[p->pos] >= '0' && t[p->pos] <= '9') p->pos++;
        if (p->pos == d0) return -1;
    }
    if (p->pos < n && (t[p->pos] == 'e' || t[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < n && (t[p->pos] == '+' || t[p->pos] == '-')) p->pos++;
        size_t d0 = p->pos;
        while (p->pos < n && t[p->pos] >= '0' && t[p->pos] <= '9') p->pos++;
        if (p->pos == d0) return -1;
    }
    return p->pos > s ? 0 : -1;
}

static int parse_value(jp *p, int depth);

static void add_child(apd__json *d, int parent, int *last, int child)
{
    if (*last < 0) d->nodes[parent].first = child;
    else d->nodes[*last].next = child;
    *last = child;
    d->nodes[parent].count++;
}

static int parse_container(jp *p, int depth, int is_obj)
{
    apd__json *d = p->d;
    int self = new_node(p, is_obj ? APD__J_OBJ : APD__J_ARR);
    if (self < 0) return -1;
    p->pos++; /* '[' or '{' */
    int last = -1;
    skip_ws(p);
    char close = is_obj ? '}' : ']';
    if (p->pos < d->len && d->text[p->pos] == close) {
        p->pos++;
        d->nodes[self].len = (uint32_t)(p->pos - d->nodes[self].start);
        return self;
    }
    for (;;) {
        skip_ws(p);
        if (is_obj) {
            if (p->pos >= d->len || d->text[p->pos] != '"') return -1;
            int key = parse_value(p, depth + 1);
            if (key < 0) return -1;
            add_child(d, self, &last, key);
            skip_ws(p);
            if (p->pos >= d->len || d->text[p->pos] != ':') return -1;
            p->pos++;
            skip_ws(p);
        }
        int v = parse_value(p, depth + 1);
        if (v < 0) return -1;
        add_child(d, self, &last, v);
        skip_ws(p);
        if (p->pos >= d->len) return -1;
        char ch = d->text[p->pos++];
        if (ch == ',') continue;
        if (ch == close) break;
        return -1;
    }
    d->nodes[self].len = (uint32_t)(p->pos - d->nodes[self].start);
    return self;
}

static int parse_value(jp *p, int depth)
{
    apd__json *d = p->d;
    if (depth > JSON_MAX_DEPTH) return -1;
    skip_ws(p);
    if (p->pos >= d->len) return -1;
    char ch = d->text[p->pos];
    if (ch == '{' || ch == '[') return parse_container(p, depth, ch == '{');
    if (ch == '"') {
        int self = new_node(p, APD__J_STR);
        if (self < 0) return -1;
        p->pos++;
        size_t s = p->pos;
        if (scan_string(p) < 0) return -1;
        d->nodes[self].start = (uint32_t)s;
        d->nodes[self].len = (uint32_t)(p->pos - 1 - s);
        return self;
    }
    static const struct { const char *w; uint8_t t; } lits[] = {
        {"null", APD__J_NULL}, {"true", APD__J_TRUE}, {"false", APD__J_FALSE}};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(lits[i].w);
        if (d->len - p->pos >= l && memcmp(d->text + p->pos, lits[i].w, l) == 0) {
            int self = new_node(p, lits[i].t);
            if (self < 0) return -1;
            p->pos += l;
            d->nodes[self].len = (uint32_t)l;
            return self;
        }
    }
    int self = new_node(p, APD__J_NUM);
    if (self < 0) return -1;
    if (scan_number(p) < 0) return -1;
    d->nodes[self].len = (uint32_t)(p->pos - d->nodes[self].start);
    return self;
}

apd_status apd__json_parse(apd__json *d, const char *text, size_t len)
{
    memset(d, 0, sizeof *d);
    if (len >= 0xffffffffu) return APD_EMETA;
    d->text = text;
    d->len = len;
    jp p = {d, 0, APD_OK};
    int root = parse_value(&p, 0);
    if (root >= 0) {
        skip_ws(&p);
        if (p.pos == len) return APD_OK;
    }
    apd_status s = p.err != APD_OK ? p.err : APD_EMETA;
    apd__json_free(d);
    return s;
}

void apd__json_free(apd__json *d)
{
    free(d->nodes);
    d->nodes = NULL;
    d->n = d->cap = 0;
}

/* Compare the raw (escaped) key span with key; keys we look up never need escapes, and a key
 * spelled with escapes simply does not match. */
int apd__json_get(const apd__json *d, int obj, const char *key)
{
    if (obj < 0 || (size_t)obj >= d->n || d->nodes[obj].type != APD__J_OBJ) return -1;
    size_t kl = strlen(key);
    for (int c = d->nodes[obj].first; c >= 0;) {
        int v = d->nodes[c].next;
        if (v < 0) return -1;
        if (d->nodes[c].len == kl && memcmp(d->text + d->nodes[c].start, key, kl) == 0) return v;
        c = d->nodes[v].next;
    }
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

int apd__json_str(const apd__json *d, int node, char *buf, size_t cap)
{
    if (node < 0 || (size_t)node >= d->n || d->nodes[node].type != APD__J_STR || cap == 0) return 0;
    const char *s = d->text + d->nodes[node].start;
    size_t n = d->nodes[node].len, o = 0;
    for (size_t i = 0; i < n;) {
        char tmp[4];
        size_t tl = 1;
        if (s[i] != '\\') {
            tmp[0] = s[i++];
        } else {
            char e = s[i + 1];
            i += 2;
            switch (e) {
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'u': {
                uint32_t cp = 0;
                for (int k = 0; k < 4; k++) cp = cp * 16 + (uint32_t)hexv(s[i + k]);
                i += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
                    uint32_t lo = 0;
                    for (int k = 0; k < 4; k++) lo = lo * 16 + (uint32_t)hexv(s[i + 2 + k]);
                    if (lo >= 0xDC00 && lo < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                if (cp == 0) return 0; /* embedded NUL is not representable */
                tl = put_utf8(tmp, cp);
                break;
            }
            default: tmp[0] = e; break; /* " \ / */
            }
        }
        if (o + tl >= cap) return 0;
        memcpy(buf + o, tmp, tl);
        o += tl;
    }
    buf[o] = 0;
    return 1;
}

int apd__json_u64(const apd__json *d, int node, uint64_t *out)
{
    if (node < 0 || (size_t)node >= d->n || d->nodes[node].type != APD__J_NUM) return 0;
    const char *s = d->text + d->nodes[node].start;
    size_t n = d->nodes[node].len;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        uint64_t dgt = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10) return 0;
        v = v * 10 + dgt;
    }
    *out = v;
    return n > 0;
}

int apd__json_num(const apd__json *d, int node, double *out)
{
    if (node < 0 || (size_t)node >= d->n || d->nodes[node].type != APD__J_NUM) return 0;
    char buf[64];
    size_t n = d->nodes[node].len;
    if (n >= sizeof buf) return 0;
    memcpy(buf, d->text + d->nodes[node].start, n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    return 1;
}
