/* io/pickle.c: a reader for exactly the Python-pickle subset of the CIFAR "python version"
 * files (cifar-10-batches-py, cifar-100-python), never a general unpickler.
 *
 * Those files were written by Python 2 cPickle, protocol 2: a dict whose keys are Python 2
 * str (SHORT_BINSTRING 'U' / BINSTRING 'T'), values lists of ints (labels), lists of str
 * (names, file names), ints, and one numpy uint8 array made the way numpy pickles arrays:
 *
 *     GLOBAL 'numpy.core.multiarray\n_reconstruct\n'  (the callable)
 *     GLOBAL 'numpy\nndarray\n' BININT1 0 TUPLE1 SHORT_BINSTRING 'b' TUPLE3  REDUCE
 *     MARK BININT1 1 (rows, cols)                         -- state version, shape
 *          GLOBAL 'numpy\ndtype\n' ('u1', 0, 1) REDUCE    -- the dtype ...
 *          (3, '|', None, None, None, -1, -1, 0) BUILD    -- ... and its state
 *          NEWFALSE BINSTRING <rows*cols bytes> TUPLE BUILD  -- not Fortran order, the data
 *
 * with BINPUT/LONG_BINPUT after most objects and batches of up to 1000 items per
 * MARK ... APPENDS / SETITEMS. The reader runs those opcodes on a stack of nodes; nothing is
 * ever called or imported: the three numpy globals are recognised by name and become an
 * array node, anything else is refused. So a hostile file can only fail, and it fails with
 * the offset and the reason.
 *
 * Bounds: every length is checked against the bytes left (APD_ETRUNC); at most
 * PK_MAX_NODES objects, PK_MAX_ITEMS container entries and memo slots below the file size
 * and PK_MAX_NODES (APD_ELIMIT); strings and the array data are not copied (they point into
 * the caller's buffer).
 */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

#define PK_MAX_NODES (1u << 22) /* CIFAR-100 train needs ~10^5 */
#define PK_MAX_ITEMS (1u << 24)

enum { G_RECON = 1, G_NDARRAY, G_DTYPE };

typedef struct pk_node {
    uint8_t type;  /* apd__pk_type */
    uint8_t built; /* array / dtype: BUILD applied */
    uint32_t ndim; /* array */
    int64_t i;     /* int / bool value; global: G_*; dtype: 1 = uint8 */
    size_t off, len; /* str: its bytes; array: the data */
    uint64_t shape[2];
    uint32_t *kids; /* list/tuple elements; dict: key, value, key, value, ... */
    uint32_t nk, capk;
} pk_node;

struct apd__pickle {
    const uint8_t *buf;
    size_t len;
    pk_node *nodes;
    uint32_t n, cap;
    uint64_t items; /* container entries so far */
};

typedef struct pk_vm {
    apd__pickle *p;
    const char *name;
    apd_err *err;
    size_t pos, op_at; /* read position; offset of the current opcode */
    uint32_t *stack;
    size_t sn, scap;
    size_t *marks;
    size_t mn, mcap;
    int32_t *memo;
    size_t memo_n;
} pk_vm;

__attribute__((format(printf, 3, 4))) static apd_status pk_fail(pk_vm *vm, apd_status code, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return apd__err_set(vm->err, code, "%s: pickle offset %zu: %s", vm->name, vm->op_at, why);
}

static const char *type_name(int t)
{
    static const char *const n[] = {"None", "bool", "int", "str", "list", "tuple", "dict", "global",
                                    "array", "dtype"};
    return t >= 0 && t <= APD_PK_DTYPE ? n[t] : "?";
}

/* ---- nodes, stack, memo ------------------------------------------------------------------- */

static apd_status new_node(pk_vm *vm, int type, uint32_t *id)
{
    apd__pickle *p = vm->p;
    if (p->n >= PK_MAX_NODES) return pk_fail(vm, APD_ELIMIT, "more than %u objects", PK_MAX_NODES);
    if (p->n == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 256;
        pk_node *nn = realloc(p->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return pk_fail(vm, APD_ENOMEM, "out of memory");
        p->nodes = nn;
        p->cap = cap;
    }
    memset(&p->nodes[p->n], 0, sizeof(pk_node));
    p->nodes[p->n].type = (uint8_t)type;
    *id = p->n++;
    return APD_OK;
}

static apd_status add_kid(pk_vm *vm, uint32_t parent, uint32_t kid)
{
    pk_node *nd = &vm->p->nodes[parent];
    if (++vm->p->items > PK_MAX_ITEMS) return pk_fail(vm, APD_ELIMIT, "more than %u container entries", PK_MAX_ITEMS);
    if (nd->nk == nd->capk) {
        uint32_t cap = nd->capk ? nd->capk * 2 : 4;
        uint32_t *nk = realloc(nd->kids, (size_t)cap * sizeof *nk);
        if (!nk) return pk_fail(vm, APD_ENOMEM, "out of memory");
        nd->kids = nk;
        nd->capk = cap;
    }
    nd->kids[nd->nk++] = kid;
    return APD_OK;
}

static apd_status push(pk_vm *vm, uint32_t id)
{
    if (vm->sn == vm->scap) {
        size_t cap = vm->scap ? vm->scap * 2 : 64;
        if (cap > PK_MAX_NODES) return pk_fail(vm, APD_ELIMIT, "stack deeper than %u", PK_MAX_NODES);
        uint32_t *ns = realloc(vm->stack, cap * sizeof *ns);
        if (!ns) return pk_fail(vm, APD_ENOMEM, "out of memory");
        vm->stack = ns;
        vm->scap = cap;
    }
    vm->stack[vm->sn++] = id;
    return APD_OK;
}

static apd_status push_new(pk_vm *vm, int type, uint32_t *id)
{
    uint32_t tmp;
    if (!id) id = &tmp;
    APD_TRY(new_node(vm, type, id));
    return push(vm, *id);
}

/* Items above the top mark: [*first, sn). */
static apd_status pop_mark(pk_vm *vm, size_t *first)
{
    if (!vm->mn) return pk_fail(vm, APD_ECORRUPT, "no MARK on the stack");
    *first = vm->marks[--vm->mn];
    return APD_OK;
}

static apd_status need(pk_vm *vm, size_t items)
{
    size_t floor = vm->mn ? vm->marks[vm->mn - 1] : 0;
    if (vm->sn < floor + items) return pk_fail(vm, APD_ECORRUPT, "stack underflow");
    return APD_OK;
}

static pk_node *node(pk_vm *vm, uint32_t id)
{
    return &vm->p->nodes[id];
}

static apd_status memo_put(pk_vm *vm, uint64_t idx)
{
    APD_TRY(need(vm, 1));
    if (idx >= vm->p->len || idx >= PK_MAX_NODES)
        return pk_fail(vm, APD_ELIMIT, "memo index %llu too large", (unsigned long long)idx);
    if (idx >= vm->memo_n) {
        size_t n = vm->memo_n ? vm->memo_n : 256;
        while (n <= idx) n *= 2;
        int32_t *nm = realloc(vm->memo, n * sizeof *nm);
        if (!nm) return pk_fail(vm, APD_ENOMEM, "out of memory");
        for (size_t i = vm->memo_n; i < n; i++) nm[i] = -1;
        vm->memo = nm;
        vm->memo_n = n;
    }
    vm->memo[idx] = (int32_t)vm->stack[vm->sn - 1];
    return APD_OK;
}

static apd_status memo_get(pk_vm *vm, uint64_t idx)
{
    if (idx >= vm->memo_n || vm->memo[idx] < 0)
        return pk_fail(vm, APD_ECORRUPT, "memo entry %llu was never stored", (unsigned long long)idx);
    return push(vm, (uint32_t)vm->memo[idx]);
}

/* ---- reading operands --------------------------------------------------------------------- */

static apd_status take(pk_vm *vm, size_t n, const uint8_t **at)
{
    if (vm->p->len - vm->pos < n)
        return pk_fail(vm, APD_ETRUNC, "truncated: needs %zu bytes, %zu left", n, vm->p->len - vm->pos);
    *at = vm->p->buf + vm->pos;
    vm->pos += n;
    return APD_OK;
}

static apd_status take_le(pk_vm *vm, size_t n, uint64_t *v)
{
    const uint8_t *b = NULL;
    APD_TRY(take(vm, n, &b));
    *v = 0;
    for (size_t i = 0; i < n; i++) *v |= (uint64_t)b[i] << (8 * i);
    return APD_OK;
}

static apd_status push_int(pk_vm *vm, int type, int64_t v)
{
    uint32_t id = 0;
    APD_TRY(push_new(vm, type, &id));
    node(vm, id)->i = v;
    return APD_OK;
}

static apd_status op_string(pk_vm *vm, size_t lenbytes)
{
    uint64_t n;
    APD_TRY(take_le(vm, lenbytes, &n));
    if (lenbytes == 4 && n > INT32_MAX) return pk_fail(vm, APD_ECORRUPT, "negative string length");
    const uint8_t *b = NULL;
    APD_TRY(take(vm, (size_t)n, &b));
    uint32_t id = 0;
    APD_TRY(push_new(vm, APD_PK_STR, &id));
    node(vm, id)->off = (size_t)(b - vm->p->buf);
    node(vm, id)->len = (size_t)n;
    return APD_OK;
}

/* LONG1: n little-endian two's-complement bytes, n <= 8. */
static apd_status op_long1(pk_vm *vm)
{
    uint64_t n, v;
    APD_TRY(take_le(vm, 1, &n));
    if (n > 8) return pk_fail(vm, APD_ELIMIT, "integer of %llu bytes", (unsigned long long)n);
    APD_TRY(take_le(vm, (size_t)n, &v));
    if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    return push_int(vm, APD_PK_INT, (int64_t)v);
}

/* GLOBAL module\nname\n: only numpy's array reconstruction. */
static apd_status op_global(pk_vm *vm)
{
    char text[2][80];
    for (int k = 0; k < 2; k++) {
        size_t i = 0;
        for (;;) {
            const uint8_t *b = NULL;
            APD_TRY(take(vm, 1, &b));
            if (*b == '\n') break;
            if (i + 1 >= sizeof text[k]) return pk_fail(vm, APD_ECORRUPT, "GLOBAL name too long");
            text[k][i++] = (char)*b;
        }
        text[k][i] = '\0';
    }
    int which = 0;
    if (!strcmp(text[0], "numpy.core.multiarray") && !strcmp(text[1], "_reconstruct")) which = G_RECON;
    else if (!strcmp(text[0], "numpy") && !strcmp(text[1], "ndarray")) which = G_NDARRAY;
    else if (!strcmp(text[0], "numpy") && !strcmp(text[1], "dtype")) which = G_DTYPE;
    if (!which)
        return pk_fail(vm, APD_ECORRUPT, "global '%s.%s' is not in the CIFAR pickle subset (only numpy's "
                       "array reconstruction)", text[0], text[1]);
    return push_int(vm, APD_PK_GLOBAL, which);
}

/* ---- containers --------------------------------------------------------------------------- */

static apd_status make_tuple(pk_vm *vm, size_t first)
{
    uint32_t id = 0;
    APD_TRY(new_node(vm, APD_PK_TUPLE, &id));
    for (size_t i = first; i < vm->sn; i++) APD_TRY(add_kid(vm, id, vm->stack[i]));
    vm->sn = first;
    return push(vm, id);
}

/* APPEND / APPENDS / SETITEM / SETITEMS: the items [first, sn) go into the container at
 * first - 1. */
static apd_status fill(pk_vm *vm, size_t first, int dict)
{
    if (first == 0 || first > vm->sn) return pk_fail(vm, APD_ECORRUPT, "no container below the items");
    uint32_t c = vm->stack[first - 1];
    int want = dict ? APD_PK_DICT : APD_PK_LIST;
    if (node(vm, c)->type != want)
        return pk_fail(vm, APD_ECORRUPT, "%s into a %s", dict ? "SETITEMS" : "APPENDS", type_name(node(vm, c)->type));
    if (dict && (vm->sn - first) % 2)
        return pk_fail(vm, APD_ECORRUPT, "SETITEMS with an odd number of items");
    for (size_t i = first; i < vm->sn; i++) {
        if (dict && (i - first) % 2 == 0 && node(vm, vm->stack[i])->type != APD_PK_STR)
            return pk_fail(vm, APD_ECORRUPT, "dict key is a %s, not a str", type_name(node(vm, vm->stack[i])->type));
        APD_TRY(add_kid(vm, c, vm->stack[i]));
    }
    vm->sn = first;
    return APD_OK;
}

/* ---- REDUCE and BUILD: numpy arrays ------------------------------------------------------- */

static int is_type(pk_vm *vm, uint32_t id, int t)
{
    return node(vm, id)->type == t;
}

static int str_is(pk_vm *vm, uint32_t id, const char *s)
{
    const pk_node *nd = node(vm, id);
    return nd->type == APD_PK_STR && nd->len == strlen(s) && !memcmp(vm->p->buf + nd->off, s, nd->len);
}

static int int_is(pk_vm *vm, uint32_t id, int64_t v)
{
    const pk_node *nd = node(vm, id);
    return (nd->type == APD_PK_INT || nd->type == APD_PK_BOOL) && nd->i == v;
}

static apd_status op_reduce(pk_vm *vm)
{
    APD_TRY(need(vm, 2));
    uint32_t fn = vm->stack[vm->sn - 2], args = vm->stack[vm->sn - 1];
    const pk_node *a = node(vm, args);
    if (!is_type(vm, fn, APD_PK_GLOBAL) || a->type != APD_PK_TUPLE || a->nk != 3)
        return pk_fail(vm, APD_ECORRUPT, "REDUCE of a %s with a %s: not a numpy array or dtype",
                       type_name(node(vm, fn)->type), type_name(a->type));
    const uint32_t *k = a->kids;
    uint32_t id = 0;
    if (node(vm, fn)->i == G_RECON) {
        /* _reconstruct(ndarray, (0,), 'b'): an empty array, filled by BUILD */
        const pk_node *shape0 = node(vm, k[1]);
        if (!is_type(vm, k[0], APD_PK_GLOBAL) || node(vm, k[0])->i != G_NDARRAY || shape0->type != APD_PK_TUPLE ||
            shape0->nk != 1 || !int_is(vm, shape0->kids[0], 0) || !str_is(vm, k[2], "b"))
            return pk_fail(vm, APD_ECORRUPT, "numpy _reconstruct with unexpected arguments");
        vm->sn -= 2;
        return push_new(vm, APD_PK_ARRAY, &id);
    }
    if (node(vm, fn)->i == G_DTYPE) {
        /* dtype('u1', 0, 1) (old numpy: ints; newer: False, True) */
        if (!is_type(vm, k[0], APD_PK_STR) || !int_is(vm, k[1], 0) || !int_is(vm, k[2], 1))
            return pk_fail(vm, APD_ECORRUPT, "numpy dtype with unexpected arguments");
        if (!str_is(vm, k[0], "u1"))
            return pk_fail(vm, APD_ECORRUPT, "numpy dtype '%.*s': only uint8 ('u1') pixel data is supported",
                           (int)(node(vm, k[0])->len > 16 ? 16 : node(vm, k[0])->len),
                           (const char *)vm->p->buf + node(vm, k[0])->off);
        vm->sn -= 2;
        APD_TRY(push_new(vm, APD_PK_DTYPE, &id));
        node(vm, id)->i = 1;
        return APD_OK;
    }
    return pk_fail(vm, APD_ECORRUPT, "REDUCE of numpy.ndarray itself");
}

/* dtype state (3, '|', None, None, None, -1, -1, 0): byte order and no fields. */
static apd_status build_dtype(pk_vm *vm, uint32_t obj, const pk_node *st)
{
    const uint32_t *k = st->kids;
    if (st->type != APD_PK_TUPLE || st->nk != 8 || !int_is(vm, k[0], 3) || node(vm, k[1])->type != APD_PK_STR ||
        node(vm, k[1])->len != 1 || !strchr("|<>=", vm->p->buf[node(vm, k[1])->off]) ||
        node(vm, k[2])->type != APD_PK_NONE || node(vm, k[3])->type != APD_PK_NONE ||
        node(vm, k[4])->type != APD_PK_NONE)
        return pk_fail(vm, APD_ECORRUPT, "numpy dtype state is not a plain uint8 dtype");
    node(vm, obj)->built = 1;
    return APD_OK;
}

/* array state (1, shape, dtype, fortran, data): 1-D or 2-D uint8 in C order, the data
 * exactly shape-product bytes. */
static apd_status build_array(pk_vm *vm, uint32_t obj, const pk_node *st)
{
    const uint32_t *k = st->kids;
    if (st->type != APD_PK_TUPLE || st->nk != 5 || !int_is(vm, k[0], 1))
        return pk_fail(vm, APD_ECORRUPT, "numpy array state is not (1, shape, dtype, fortran, data)");
    const pk_node *shape = node(vm, k[1]), *dt = node(vm, k[2]), *data = node(vm, k[4]);
    if (shape->type != APD_PK_TUPLE || shape->nk < 1 || shape->nk > 2)
        return pk_fail(vm, APD_ECORRUPT, "numpy array shape is not a 1-D or 2-D tuple");
    if (dt->type != APD_PK_DTYPE || !dt->built) return pk_fail(vm, APD_ECORRUPT, "numpy array without a uint8 dtype");
    if (data->type != APD_PK_STR) return pk_fail(vm, APD_ECORRUPT, "numpy array data is a %s, not raw bytes", type_name(data->type));
    size_t total = 1;
    pk_node *a = node(vm, obj);
    for (uint32_t d = 0; d < shape->nk; d++) {
        const pk_node *e = node(vm, shape->kids[d]);
        if (e->type != APD_PK_INT || e->i < 0) return pk_fail(vm, APD_ECORRUPT, "numpy array shape holds a bad size");
        if (!apd__mul_ok(total, (size_t)e->i, &total)) return pk_fail(vm, APD_ELIMIT, "numpy array shape overflows");
        a->shape[d] = (uint64_t)e->i;
    }
    if (shape->nk == 2 && !int_is(vm, k[3], 0))
        return pk_fail(vm, APD_ECORRUPT, "numpy array in Fortran order (C order expected)");
    if (total != data->len)
        return pk_fail(vm, APD_ECORRUPT, "numpy array of %zu elements holds %zu bytes of data", total, data->len);
    a->ndim = shape->nk;
    a->off = data->off;
    a->len = data->len;
    a->built = 1;
    return APD_OK;
}

static apd_status op_build(pk_vm *vm)
{
    APD_TRY(need(vm, 2));
    uint32_t obj = vm->stack[vm->sn - 2], state = vm->stack[vm->sn - 1];
    const pk_node *o = node(vm, obj);
    if (o->built || (o->type != APD_PK_DTYPE && o->type != APD_PK_ARRAY))
        return pk_fail(vm, APD_ECORRUPT, "BUILD on a %s", type_name(o->type));
    APD_TRY(o->type == APD_PK_DTYPE ? build_dtype(vm, obj, node(vm, state)) : build_array(vm, obj, node(vm, state)));
    vm->sn--;
    return APD_OK;
}

/* ---- the opcode loop ---------------------------------------------------------------------- */

/* One opcode at vm->pos. *stop = 1 after STOP. */
static apd_status step(pk_vm *vm, int *stop)
{
    uint64_t v;
    size_t first = 0;
    const uint8_t *b = NULL;
    vm->op_at = vm->pos;
    APD_TRY(take(vm, 1, &b));
    uint8_t op = *b;
    switch (op) {
    case '}': return push_new(vm, APD_PK_DICT, NULL);
    case ']': return push_new(vm, APD_PK_LIST, NULL);
    case ')': return push_new(vm, APD_PK_TUPLE, NULL);
    case 'N': return push_new(vm, APD_PK_NONE, NULL);
    case 0x88: return push_int(vm, APD_PK_BOOL, 1);
    case 0x89: return push_int(vm, APD_PK_BOOL, 0);
    case '(':
        if (vm->mn == vm->mcap) {
            size_t cap = vm->mcap ? vm->mcap * 2 : 16;
            if (cap > PK_MAX_NODES) return pk_fail(vm, APD_ELIMIT, "too many MARKs");
            size_t *nm = realloc(vm->marks, cap * sizeof *nm);
            if (!nm) return pk_fail(vm, APD_ENOMEM, "out of memory");
            vm->marks = nm;
            vm->mcap = cap;
        }
        vm->marks[vm->mn++] = vm->sn;
        return APD_OK;
    case 't': APD_TRY(pop_mark(vm, &first)); return make_tuple(vm, first);
    case 0x85: case 0x86: case 0x87:
        APD_TRY(need(vm, (size_t)(op - 0x84)));
        return make_tuple(vm, vm->sn - (size_t)(op - 0x84));
    case 'q': APD_TRY(take_le(vm, 1, &v)); return memo_put(vm, v);
    case 'r': APD_TRY(take_le(vm, 4, &v)); return memo_put(vm, v);
    case 'h': APD_TRY(take_le(vm, 1, &v)); return memo_get(vm, v);
    case 'j': APD_TRY(take_le(vm, 4, &v)); return memo_get(vm, v);
    case 'U': return op_string(vm, 1);
    case 'T': return op_string(vm, 4);
    case 'K': APD_TRY(take_le(vm, 1, &v)); return push_int(vm, APD_PK_INT, (int64_t)v);
    case 'M': APD_TRY(take_le(vm, 2, &v)); return push_int(vm, APD_PK_INT, (int64_t)v);
    case 'J': APD_TRY(take_le(vm, 4, &v)); return push_int(vm, APD_PK_INT, (int64_t)(int32_t)(uint32_t)v);
    case 0x8a: return op_long1(vm);
    case 'c': return op_global(vm);
    case 'R': return op_reduce(vm);
    case 'b': return op_build(vm);
    case 'a': APD_TRY(need(vm, 1)); return fill(vm, vm->sn - 1, 0);
    case 'e': APD_TRY(pop_mark(vm, &first)); return fill(vm, first, 0);
    case 's': APD_TRY(need(vm, 2)); return fill(vm, vm->sn - 2, 1);
    case 'u': APD_TRY(pop_mark(vm, &first)); return fill(vm, first, 1);
    case '.':
        if (vm->sn != 1 || vm->mn) return pk_fail(vm, APD_ECORRUPT, "STOP with %zu objects and %zu marks on the stack", vm->sn, vm->mn);
        if (vm->pos != vm->p->len) return pk_fail(vm, APD_ECORRUPT, "%zu bytes after STOP", vm->p->len - vm->pos);
        *stop = 1;
        return APD_OK;
    case 0x80: return pk_fail(vm, APD_ECORRUPT, "PROTO not at the start");
    default:
        return pk_fail(vm, APD_ECORRUPT, "opcode 0x%02x ('%c') is not in the CIFAR pickle subset (Python 2 cPickle, "
                       "protocol 2)", op, op >= 32 && op < 127 ? op : '?');
    }
}

apd_status apd__pickle_parse(apd__pickle **out, const uint8_t *buf, size_t len, const char *name,
                             apd_err *err)
{
    *out = NULL;
    apd__pickle *p = calloc(1, sizeof *p);
    if (!p) return apd__err_set(err, APD_ENOMEM, "%s: out of memory", name);
    p->buf = buf;
    p->len = len;
    pk_vm vm = {.p = p, .name = name, .err = err};
    apd_status s = APD_OK;
    if (len < 2 || buf[0] != 0x80)
        s = apd__err_set(err, APD_ECORRUPT, "%s: not a pickle of protocol 2 (no PROTO opcode at the start)", name);
    else if (buf[1] != 2)
        s = apd__err_set(err, APD_ECORRUPT, "%s: pickle protocol %u; the CIFAR python files use protocol 2", name, buf[1]);
    vm.pos = 2;
    int stop = 0;
    while (s == APD_OK && !stop) {
        if (vm.pos == len) {
            vm.op_at = len;
            s = pk_fail(&vm, APD_ETRUNC, "truncated: the data ends before STOP");
            break;
        }
        s = step(&vm, &stop);
    }
    if (s == APD_OK && vm.stack[0] != 0) /* the root must be node 0 for the accessors */
        s = apd__err_set(err, APD_ECORRUPT, "%s: the pickled object is not a fresh dict", name);
    free(vm.stack);
    free(vm.marks);
    free(vm.memo);
    if (s != APD_OK) {
        apd__pickle_free(p);
        return s;
    }
    *out = p;
    return APD_OK;
}

void apd__pickle_free(apd__pickle *p)
{
    if (!p) return;
    for (uint32_t i = 0; i < p->n; i++) free(p->nodes[i].kids);
    free(p->nodes);
    free(p);
}

/* ---- accessors ---------------------------------------------------------------------------- */

static const pk_node *get(const apd__pickle *p, int n)
{
    return p && n >= 0 && (uint32_t)n < p->n ? &p->nodes[n] : NULL;
}

apd__pk_type apd__pickle_type(const apd__pickle *p, int n)
{
    const pk_node *nd = get(p, n);
    return nd ? (apd__pk_type)nd->type : APD_PK_NONE;
}

int apd__pickle_get(const apd__pickle *p, int dict, const char *key)
{
    const pk_node *d = get(p, dict);
    if (!d || d->type != APD_PK_DICT) return -1;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i + 1 < d->nk; i += 2) {
        const pk_node *k = &p->nodes[d->kids[i]];
        if (k->len == kl && !memcmp(p->buf + k->off, key, kl)) return (int)d->kids[i + 1];
    }
    return -1;
}

size_t apd__pickle_len(const apd__pickle *p, int n)
{
    const pk_node *nd = get(p, n);
    return nd && (nd->type == APD_PK_LIST || nd->type == APD_PK_TUPLE) ? nd->nk : 0;
}

int apd__pickle_item(const apd__pickle *p, int n, size_t i)
{
    const pk_node *nd = get(p, n);
    if (!nd || (nd->type != APD_PK_LIST && nd->type != APD_PK_TUPLE) || i >= nd->nk) return -1;
    return (int)nd->kids[i];
}

int apd__pickle_int(const apd__pickle *p, int n, int64_t *v)
{
    const pk_node *nd = get(p, n);
    if (!nd || (nd->type != APD_PK_INT && nd->type != APD_PK_BOOL)) return 0;
    *v = nd->i;
    return 1;
}

const uint8_t *apd__pickle_str(const apd__pickle *p, int n, size_t *len)
{
    const pk_node *nd = get(p, n);
    if (!nd || nd->type != APD_PK_STR) return NULL;
    *len = nd->len;
    return p->buf + nd->off;
}

const uint8_t *apd__pickle_u8_matrix(const apd__pickle *p, int n, uint64_t *rows, uint64_t *cols)
{
    const pk_node *nd = get(p, n);
    if (!nd || nd->type != APD_PK_ARRAY || !nd->built || nd->ndim != 2) return NULL;
    *rows = nd->shape[0];
    *cols = nd->shape[1];
    return p->buf + nd->off;
}
