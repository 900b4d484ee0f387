/* apd-convert: turn a real dataset into an .apd file.
 *
 *   apd-convert --input SPEC [--split train|test] --method METHOD [method options]
 *               -o OUT.apd [--threads N] [--seed S] [--size N] [--limit N] [--force]
 *
 * SPEC is the one dataset syntax of libapd (apd/io.h): cifar10:PATH, cifar100:PATH,
 * idx:IMAGES,LABELS, fashion-mnist[:DIR], mnist:DIR, folder:DIR; and, for the distillation
 * methods, apd:FILE: the real images come from an .apd file (quantized or direct) through
 * apd_distill_source_open_apd, decoded per real batch, never all in memory (ctx.ds then
 * describes the source without pixels: labels, names, normalisation for the provenance).
 *
 * Methods live in one dispatch table (METHODS below). Each has a validate step (method
 * options; a failure is a usage error, exit 2) and a run step that creates the writer through
 * cv_writer_create (which records the common provenance) and appends records. To add a
 * method: add its options to cv_opts / LONG_OPTS / parse_opt (marked "distillation"), write
 * validate + run, and add a row to METHODS.
 *
 * Provenance written into every file: tool_version, command_line, method, seed, source
 * (apd_dataset_source_json: name, split, spec, n, geometry, hash, counts), hyperparameters
 * {...}; quantize also sets quantizer and colors; "created" comes from the writer
 * (SOURCE_DATE_EPOCH pins it) unless --created is given.
 *
 * Progress and log lines: one tool_progress (tool_util.h) draws the progress line on a
 * terminal; the distillation methods report through apd_distill_opts.progress_fn / log_fn,
 * which print around that line.
 *
 * Determinism: images are quantized in parallel (apd_pool) into per-image slots and written
 * in input order by one thread, so the records are byte-identical for any --threads.
 *
 * Exit codes: 0 success, 1 error (message names file/record and reason), 2 usage.
 * A failed conversion removes its partial output.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apd/budget.h"
#include "apd/dataset.h"
#include "apd/distill.h"
#include "apd/dsa.h"
#include "apd/format.h"
#include "apd/io.h"
#include "apd/nn.h"
#include "apd/quant.h"
#include "tool_mpi.h"
#include "tool_util.h"

#define TOOL "apd-convert"

/* Return the status of expr if it failed. */
#define CV_TRY(expr)                                                                               \
    do {                                                                                           \
        apd_status cv_s_ = (expr);                                                                 \
        if (cv_s_ != APD_OK) return cv_s_;                                                         \
    } while (0)

#define CV_MAX_GIVEN 64

typedef struct cv_opts {
    const char *input, *split, *method, *output, *quantizer_name, *created;
    uint32_t colors, threads, size;
    uint64_t seed, limit;
    int force, quiet;
    uint32_t format_minor; /* --format 1.MINOR: the newest format the output may use (default 2) */
    apd_quantizer quantizer;
    apd_distill_opts d; /* distillation methods: random | dm | autopalette (apd/distill.h) */
    const char *given[CV_MAX_GIVEN]; /* the distillation options on the command line (names
                                        without the leading "--") */
    int n_given;
} cv_opts;

typedef struct cv_ctx {
    cv_opts o;
    int argc;
    char **argv;
    apd_dataset ds;              /* the imported dataset; for apd: its description (no pixels) */
    apd_distill_source *src;     /* apd: sources only */
    apd_pool *pool;
    apd_writer *w;
    char hash[17];
    double t0;
    tool_progress prog; /* the progress line, shared by every phase */
} cv_ctx;

typedef struct cv_method {
    const char *name;
    const char *summary;
    apd_status (*validate)(cv_ctx *ctx); /* APD_EINVAL = usage error (message printed) */
    apd_status (*run)(cv_ctx *ctx);      /* message printed on failure */
} cv_method;

/* ---- small helpers ------------------------------------------------------------------------ */

__attribute__((format(printf, 1, 2))) static void usage_error(const char *fmt, ...)
{
    fprintf(stderr, TOOL ": ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" TOOL " --help'.\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-') return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return 0;
    *out = v;
    return 1;
}

static void on_import_warning(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, TOOL ": warning: %s\n", msg);
}

/* argv joined with POSIX shell quoting where needed. */
static void command_line(tool_sb *b, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = *a != '\0';
        for (const char *p = a; *p; p++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *p)) plain = 0;
        if (i) tool_sb_puts(b, " ");
        if (plain) {
            tool_sb_puts(b, a);
            continue;
        }
        tool_sb_puts(b, "'");
        for (const char *p = a; *p; p++) {
            if (*p == '\'') tool_sb_puts(b, "'\\''");
            else tool_sb_add(b, p, 1);
        }
        tool_sb_puts(b, "'");
    }
}

/* Set metadata key to the JSON text json (NULL: out of memory building it). */
static apd_status set_meta(cv_ctx *ctx, const char *key, const char *json)
{
    if (!json) {
        fprintf(stderr, TOOL ": %s: metadata '%s': out of memory\n", ctx->o.output, key);
        return APD_ENOMEM;
    }
    apd_status s = apd_writer_set_meta(ctx->w, key, json);
    if (s != APD_OK) fprintf(stderr, TOOL ": %s: metadata '%s': %s\n", ctx->o.output, key, apd_writer_errmsg(ctx->w));
    return s;
}

static apd_status set_meta_sb(cv_ctx *ctx, const char *key, tool_sb *b)
{
    apd_status s = set_meta(ctx, key, b->oom ? NULL : tool_sb_str(b));
    tool_sb_free(b);
    return s;
}

static apd_status set_meta_str(cv_ctx *ctx, const char *key, const char *val)
{
    tool_sb b = {0};
    tool_sb_jstr(&b, val);
    return set_meta_sb(ctx, key, &b);
}

/* The "source" object (apd_dataset_source_json: the one shape every producer writes). */
static apd_status set_meta_source(cv_ctx *ctx)
{
    size_t need = apd_dataset_source_json(NULL, 0, &ctx->ds, ctx->hash, ctx->o.size);
    char *src = malloc(need + 1);
    if (src) apd_dataset_source_json(src, need + 1, &ctx->ds, ctx->hash, ctx->o.size);
    apd_status s = set_meta(ctx, "source", src);
    free(src);
    return s;
}

/* quantize and direct write one record per source image (distillation makes new images). */
static int cv_keeps_records(const cv_ctx *ctx)
{
    return strcmp(ctx->o.method, "quantize") == 0 || strcmp(ctx->o.method, "direct") == 0;
}

/* Image i's stored soft-label vector, or NULL (none in the source, or only its one-hot). */
static const float *cv_soft(const apd_dataset *ds, uint64_t i)
{
    if (!ds->soft_labels || !ds->soft_stored || !ds->soft_stored[i]) return NULL;
    return ds->soft_labels + i * ds->n_classes;
}

/* Create the writer for the imported dataset and record the common provenance.
 * kind: APD_KIND_PALETTE (k = max colours) or APD_KIND_DIRECT (k ignored). Methods that
 * produce a different number of images or geometry than the source still pass kind/k here:
 * geometry and classes always follow the source dataset. */
static apd_status cv_writer_create(cv_ctx *ctx, uint32_t kind, uint32_t k)
{
    apd_writer_opts wo;
    apd_writer_opts_default(&wo);
    wo.c = ctx->ds.c;
    wo.h = ctx->ds.h;
    wo.w = ctx->ds.w;
    wo.kind = kind;
    wo.k = kind == APD_KIND_PALETTE ? k : 0;
    wo.n_classes = ctx->ds.n_classes;
    /* quantize/direct keep the source's images one for one, and so its soft labels (an apd:
     * file or an apd-export folder with soft-labels.csv); distilled images have none */
    wo.soft_labels = ctx->ds.soft_labels && cv_keeps_records(ctx) ? 1 : 0;
    wo.class_names = (const char(*)[64])ctx->ds.class_names;
    wo.force = ctx->o.force;
    wo.dataset_name = ctx->ds.name;
    /* --format: 1.0 keeps index maps bit-packed; 1.1 codes them with index model version 1 */
    if (ctx->o.format_minor == 0) wo.index_coding = APD_ICODE_OFF;
    if (ctx->o.format_minor == 1) wo.index_model_version = 1;
    if (ctx->o.format_minor == 0 && wo.soft_labels) {
        fprintf(stderr, TOOL ": %s: the source's soft labels need format 1.1 or later (--format 1.0 given); "
                "nothing written\n", ctx->o.output);
        return APD_EINVAL;
    }
    apd_dataset_norm(&ctx->ds, wo.mean, wo.std); /* a source's stated mean/std (apd-export folders) */
    apd_err err;
    apd_status s = apd_writer_create(&ctx->w, ctx->o.output, &wo, &err);
    if (s != APD_OK) {
        char why[700];
        fprintf(stderr, TOOL ": %s\n", tool_why(why, sizeof why, err.msg, s));
        return s;
    }
    tool_sb b = {0};
    tool_sb_printf(&b, "\"" TOOL " %s\"", apd_version());
    CV_TRY(set_meta_sb(ctx, "tool_version", &b));
    command_line(&b, ctx->argc, ctx->argv);
    char *cl = b.oom ? NULL : strdup(tool_sb_str(&b));
    tool_sb_free(&b);
    if (!cl) return set_meta(ctx, "command_line", NULL);
    s = set_meta_str(ctx, "command_line", cl);
    free(cl);
    CV_TRY(s);
    CV_TRY(set_meta_str(ctx, "method", ctx->o.method));
    tool_sb_printf(&b, "%llu", (unsigned long long)ctx->o.seed);
    CV_TRY(set_meta_sb(ctx, "seed", &b));
    CV_TRY(set_meta_source(ctx));
    if (ctx->o.created) CV_TRY(set_meta_str(ctx, "created", ctx->o.created));
    return APD_OK;
}

static apd_status put_failed(cv_ctx *ctx, uint64_t i, apd_status s)
{
    char why[700];
    tool_progress_stop(&ctx->prog);
    fprintf(stderr, TOOL ": %s: record %llu: %s\n", ctx->o.output, (unsigned long long)i,
            tool_why(why, sizeof why, apd_writer_errmsg(ctx->w), s));
    return s;
}

/* ---- method: quantize --------------------------------------------------------------------- */

typedef struct q_batch {
    const cv_ctx *ctx;
    uint64_t first;     /* first image of the batch */
    uint32_t n, tasks;  /* images in the batch, pool tasks */
    uint8_t *pal;       /* n * k * c */
    uint8_t *idx;       /* n * h * w */
    uint32_t *kused;    /* n */
    apd_status *st;     /* n */
} q_batch;

static void q_task(void *u, uint32_t task, uint32_t thread)
{
    (void)thread;
    q_batch *b = u;
    const cv_ctx *ctx = b->ctx;
    const apd_dataset *ds = &ctx->ds;
    uint32_t lo = (uint32_t)((uint64_t)b->n * task / b->tasks), hi = (uint32_t)((uint64_t)b->n * (task + 1) / b->tasks);
    size_t img = apd_dataset_image_bytes(ds), px = (size_t)ds->h * ds->w, pb = (size_t)ctx->o.colors * ds->c;
    for (uint32_t j = lo; j < hi; j++)
        b->st[j] = apd_quantize_image(ctx->o.quantizer, ds->pixels + (b->first + j) * img, ds->c, ds->h, ds->w,
                                      ctx->o.colors, ctx->o.seed, b->pal + j * pb, b->idx + j * px, &b->kused[j]);
}

/* Options of the distillation methods do nothing for quantize/direct: a usage error. */
static apd_status no_distill_options(const cv_ctx *ctx)
{
    if (!ctx->o.n_given) return APD_OK;
    usage_error("--%s applies only to --method random|dm|autopalette, not %s", ctx->o.given[0], ctx->o.method);
    return APD_EINVAL;
}

static apd_status quantize_validate(cv_ctx *ctx)
{
    CV_TRY(no_distill_options(ctx));
    if (!ctx->o.quantizer_name) ctx->o.quantizer_name = "median-cut";
    if (apd_quantizer_from_name(ctx->o.quantizer_name, &ctx->o.quantizer) != APD_OK) {
        usage_error("unknown quantizer '%s' (expected median-cut, octree or kmeans)", ctx->o.quantizer_name);
        return APD_EINVAL;
    }
    if (!ctx->o.colors) {
        usage_error("--method quantize needs --colors K (1..%u)", APD_MAX_COLORS);
        return APD_EINVAL;
    }
    return APD_OK;
}

static apd_status quantize_run(cv_ctx *ctx)
{
    const apd_dataset *ds = &ctx->ds;
    CV_TRY(cv_writer_create(ctx, APD_KIND_PALETTE, ctx->o.colors));
    CV_TRY(set_meta_str(ctx, "quantizer", apd_quantizer_name(ctx->o.quantizer)));
    tool_sb b = {0};
    tool_sb_printf(&b, "%u", ctx->o.colors);
    CV_TRY(set_meta_sb(ctx, "colors", &b));
    tool_sb_printf(&b, "{\"quantizer\": \"%s\", \"colors\": %u%s}", apd_quantizer_name(ctx->o.quantizer),
                   ctx->o.colors, ctx->o.quantizer == APD_QUANT_KMEANS ? ", \"kmeans_init\": \"median-cut\", \"kmeans_max_iter\": 32" : "");
    CV_TRY(set_meta_sb(ctx, "hyperparameters", &b));
    apd_status s;

    const uint32_t B = 256; /* images per parallel batch: small enough for a smooth progress line */
    size_t px = (size_t)ds->h * ds->w, pb = (size_t)ctx->o.colors * ds->c;
    q_batch bt = {.ctx = ctx};
    bt.pal = malloc(B * pb);
    bt.idx = malloc(B * px);
    bt.kused = malloc(B * sizeof(uint32_t));
    bt.st = malloc(B * sizeof(apd_status));
    if (!bt.pal || !bt.idx || !bt.kused || !bt.st) {
        s = APD_ENOMEM;
        fprintf(stderr, TOOL ": out of memory\n");
        goto out;
    }
    tool_progress_start(&ctx->prog, "quantize", ds->n);
    for (uint64_t first = 0; first < ds->n; first += B) {
        bt.first = first;
        bt.n = (uint32_t)(ds->n - first < B ? ds->n - first : B);
        bt.tasks = apd_pool_threads(ctx->pool) * 4;
        if (bt.tasks > bt.n) bt.tasks = bt.n;
        apd_pool_run(ctx->pool, bt.tasks, q_task, &bt);
        for (uint32_t j = 0; j < bt.n; j++) {
            uint64_t i = first + j;
            if (bt.st[j] != APD_OK) {
                s = bt.st[j];
                tool_progress_stop(&ctx->prog);
                fprintf(stderr, TOOL ": %s: image %llu: quantization failed: %s\n", ds->source, (unsigned long long)i,
                        apd_strerror(s));
                goto out;
            }
            s = apd_writer_put_palette_soft(ctx->w, bt.pal + j * pb, bt.kused[j], bt.idx + j * px, ds->labels[i],
                                            ds->source_ids ? ds->source_ids[i] : i, cv_soft(ds, i));
            if (s != APD_OK) {
                put_failed(ctx, i, s);
                goto out;
            }
        }
        tool_progress_set(&ctx->prog, first + bt.n);
    }
    tool_progress_finish(&ctx->prog);
    s = APD_OK;
out:
    free(bt.pal);
    free(bt.idx);
    free(bt.kused);
    free(bt.st);
    return s;
}

/* ---- method: direct (full colour, no reduction) --------------------------------------------- */

static apd_status direct_validate(cv_ctx *ctx)
{
    CV_TRY(no_distill_options(ctx));
    if (ctx->o.quantizer_name || ctx->o.colors) {
        usage_error("%s does not apply to --method direct (full colour, no quantizer)",
                    ctx->o.quantizer_name ? "--quantizer" : "--colors");
        return APD_EINVAL;
    }
    return APD_OK;
}

static apd_status direct_run(cv_ctx *ctx)
{
    const apd_dataset *ds = &ctx->ds;
    CV_TRY(cv_writer_create(ctx, APD_KIND_DIRECT, 0));
    CV_TRY(set_meta(ctx, "hyperparameters", "{}"));
    tool_progress_start(&ctx->prog, "direct", ds->n);
    size_t img = apd_dataset_image_bytes(ds);
    for (uint64_t i = 0; i < ds->n; i++) {
        apd_status s = apd_writer_put_direct_soft(ctx->w, ds->pixels + i * img, ds->labels[i],
                                                  ds->source_ids ? ds->source_ids[i] : i, cv_soft(ds, i));
        if (s != APD_OK) return put_failed(ctx, i, s);
        if ((i & 1023) == 0) tool_progress_set(&ctx->prog, i);
    }
    tool_progress_set(&ctx->prog, ds->n);
    tool_progress_finish(&ctx->prog);
    return APD_OK;
}

/* ---- distillation methods (random | dm | autopalette): options, run, write ---------------- */

/* Parse one distillation option. Returns 1 if `name` is a distillation option (value used),
 * 0 if not ours, -1 on a bad value (message printed). */
static int distill_opt(apd_distill_opts *o, const char *name, const char *val)
{
    char *end = NULL;
#define DU32(opt, field)                                                                           \
    if (strcmp(name, opt) == 0) {                                                                  \
        unsigned long v_ = strtoul(val, &end, 10);                                                 \
        if (!*val || *end || v_ > 0xffffffffUL) goto bad;                                          \
        o->field = (uint32_t)v_;                                                                   \
        return 1;                                                                                  \
    }
#define DFX(opt, field, ok) /* a float whose value v_ must satisfy ok */                         \
    if (strcmp(name, opt) == 0) {                                                                  \
        double v_ = strtod(val, &end);                                                             \
        if (!*val || *end || !(ok)) goto bad;                                                      \
        o->field = (float)v_;                                                                      \
        return 1;                                                                                  \
    }
#define DF(opt, field) DFX(opt, field, 1)
    DU32("--ipc", ipc)
    DU32("--iters", iters)
    DU32("--batch-real", batch_real)
    DU32("--depth", depth)
    DF("--lr-img", lr_img)
    DF("--momentum-img", momentum_img)
    DF("--lr-palette", lr_palette)
    DF("--momentum-palette", momentum_palette)
    DF("--wd-palette", wd_palette)
    DF("--w-max", w_max)
    DF("--w-balance", w_balance)
    DF("--w-align", w_align)
    DF("--w-conf", w_conf)
    DU32("--color-subset", color_subset)
    DF("--align-ratio", align_ratio)
    DU32("--warmup-steps", warmup_steps)
    DF("--task-scale", task_scale)
    DF("--temp-start", temp_start)
    DF("--temp-end", temp_end)
    DF("--anneal", anneal)
    DFX("--ce-weight", ce_weight, v_ >= 0) /* negative would mean "by method" to the library */
    DU32("--select-epochs", select_epochs)
    DU32("--select-batch", select_batch)
    DF("--select-lr", select_lr)
    DU32("--checkpoint-every", checkpoint_every)
    DU32("--log-every", log_every)
    DU32("--images-per-class", images_per_class)
    DU32("--stop-after", stop_after)
    DU32("--net-pool", net_pool)
    DU32("--net-pool-every", net_pool_every)
    DU32("--net-pool-steps", net_pool_steps)
    DU32("--net-pool-batch", net_pool_batch)
    DU32("--herd-nets", herd_nets)
    DU32("--ce-teacher-steps", ce_teacher_steps)
#undef DU32
#undef DF
#undef DFX
#define DU64(opt, field)                                                                           \
    if (strcmp(name, opt) == 0) {                                                                  \
        errno = 0;                                                                                 \
        o->field = strtoull(val, &end, 10);                                                        \
        if (!*val || *end || *val == '-' || errno == ERANGE) goto bad; /* no silent saturation */  \
        return 1;                                                                                  \
    }
    DU64("--select-limit", select_limit)
    DU64("--herd-limit", herd_limit)
#undef DU64
    if (strcmp(name, "--gc-epsilon") == 0) {
        o->gc_epsilon = strtod(val, &end);
        if (!*val || *end) goto bad;
        return 1;
    }
    if (strcmp(name, "--gc-lambda") == 0) {
        o->gc_lambda = strtod(val, &end);
        if (!*val || *end) goto bad;
        return 1;
    }
    if (strcmp(name, "--init") == 0) {
        if (apd_distill_init_from_name(val, &o->init) != APD_OK) goto bad;
        o->init_set = 1;
        return 1;
    }
    if (strcmp(name, "--budget") == 0) {
        if (apd_budget_rule_from_name(val, &o->budget) != APD_OK) goto bad;
        return 1;
    }
    if (strcmp(name, "--lr-img-rule") == 0) {
        if (apd_lr_rule_from_name(val, &o->lr_img_rule) != APD_OK) goto bad;
        return 1;
    }
    if (strcmp(name, "--loss-range") == 0) {
        if (apd_loss_range_from_name(val, &o->loss_range) != APD_OK) goto bad;
        return 1;
    }
    if (strcmp(name, "--pixel-range") == 0) {
        if (apd_pixel_range_from_name(val, &o->pixel_range) != APD_OK) goto bad;
        return 1;
    }
    if (strcmp(name, "--palette") == 0) {
        if (apd_palette_mode_from_name(val, &o->palette_mode) != APD_OK) goto bad;
        return 1;
    }
    if (strcmp(name, "--palette-input") == 0) {
        if (apd_palette_input_from_name(val, &o->palette_input) != APD_OK) goto bad;
        return 1;
    }
    if (strcmp(name, "--palette-remedy") == 0) {
        if (apd_palette_remedy_from_name(val, &o->remedy) != APD_OK) goto bad;
        return 1;
    }
    if (strcmp(name, "--dsa") == 0) {
        if (apd_dsa_strategy_parse(val, &o->dsa_strategy) != APD_OK) goto bad;
        return 1;
    }
    if (strcmp(name, "--checkpoint") == 0) {
        o->checkpoint_path = val;
        return 1;
    }
    if (strcmp(name, "--resume") == 0) {
        o->resume_path = val;
        return 1;
    }
    return 0;
bad:
    fprintf(stderr, "apd-convert: bad value '%s' for %s\n", val, name);
    return -1;
}

static const char *const distill_usage =
    "distillation (--method random|dm|autopalette; the method and its settings: docs/distill.md):\n"
    " every distillation method:\n"
    "  --ipc N (10) --images-per-class N --init random|graphcut|herding\n"
    "                        (--palette network: graphcut, else random)\n"
    "  --colors K (16) --budget bits|paper|images|bytes (bits): K and the storage budget; random/dm\n"
    "                        store full-colour images and record the budget (with --quantizer they\n"
    "                        store its palette records). bytes: as many images as fit IPC full-colour\n"
    "                        images in the bytes the file really stores per class (measured with the\n"
    "                        writer's coding; docs/distill.md)\n"
    "  --quantizer Q         random|dm: store the images quantized by Q (palette records);\n"
    "                        autopalette --palette stored: the per-image quantizer (kmeans)\n"
    " dm and autopalette (the DM loop):\n"
    "  --iters N (200; reference 20000) --batch-real N (64; reference 256)\n"
    "  --lr-img F (1) --momentum-img F (0.5) --dsa STRATEGY (color_crop_cutout_flip_scale_rotate)\n"
    "  --lr-img-rule auto|fixed|count  count: --lr-img x images per class / IPC, so each image\n"
    "                        steps as in DM at the nominal IPC (auto: count for --palette stored)\n"
    "  --pixel-range auto|free|clamp  clamp: project every pixel onto the 8-bit range after\n"
    "                        each step (what a record can store); auto: free\n"
    "  --log-every N (status line every N iterations; default iters/10)\n"
    "  --checkpoint FILE --checkpoint-every N --resume FILE\n"
    "  --net-pool N (0 = off) match with networks drawn from a queue of N partly trained\n"
    "                        ones instead of a fresh random network per iteration (IDM):\n"
    "                        --net-pool-every N (10) iterations between fresh networks,\n"
    "                        --net-pool-steps N (4) SGD steps on one of them per iteration,\n"
    "                        --net-pool-batch N (64) real images per step\n"
    "  --ce-weight F          add F x the cross-entropy of each class's synthetic images under\n"
    "                        a ConvNet trained on the real images before the loop (a class-aware\n"
    "                        term; 0 = off; default 10 for --palette stored, off otherwise):\n"
    "                        --ce-teacher-steps N SGD steps of 64 real images (default 300, or\n"
    "                        two passes over the real images if that is fewer)\n"
    " autopalette:\n"
    "  --palette stored|network  where the palettes come from (stored):\n"
    "                        stored: per-image palettes by --quantizer (kmeans) refitted every\n"
    "                        iteration, the DM loss on the stored images (straight-through),\n"
    "                        the image step scaled to the image count (--lr-img-rule auto);\n"
    "                        network: the published palette network (options below)\n"
    "  --loss-range auto|stored|float|anneal  stored: what the DM loss sees of a pixel beyond\n"
    "                        the 8-bit range: float (its float value, as in DM; auto), stored\n"
    "                        (the clipped value a record keeps) or anneal (from the float value\n"
    "                        to the stored one over the run)\n"
    "  --anneal F (0)        stored: over the first F of the iterations the DM loss moves from\n"
    "                        the float images to the stored ones ((1-a) float + a stored, a\n"
    "                        rising linearly to 1); 0: the stored images from the start\n"
    " autopalette --palette network:\n"
    "  --lr-palette F (0.05) --momentum-palette F (0.5) --wd-palette F (5e-4)\n"
    "  --w-max F (1) --w-balance F (1) --w-align F (3) --w-conf F (0) --color-subset N (64)\n"
    "  --align-ratio F (0.3)\n"
    "  --palette-input absolute|image-norm  what the network sees of a pixel: its colour\n"
    "                        (absolute, as published) or its colour normalised by its image's\n"
    "                        per-channel mean and std (palettes stay in absolute colour)\n"
    "  --palette-remedy R    none (as published: collapses) or '+'-joined kmeans-init|warmup|\n"
    "                        task-scale|temperature|straight-through (kmeans-init+task-scale)\n"
    "  --warmup-steps N (50) with warmup, --task-scale F (1e-3) with task-scale,\n"
    "  --temp-start F --temp-end F (1) with temperature in the remedy\n"
    " the graph-cut init:\n"
    "  --select-epochs N (2; reference 50) --select-batch N (128) --select-lr F (0.1)\n"
    "  --select-limit N (images per class for the selection net and candidates; 0 = all)\n"
    "  --gc-lambda F (1) --gc-epsilon F (0.9)\n"
    " the herding init (per class, the real images whose median-cut versions bring the mean\n"
    " embedding of the picks closest to the class mean, over random DM-loop networks):\n"
    "  --herd-nets N (4) random ConvNets --herd-limit N (512) candidates per class (0 = all)\n"
    " the ConvNet (DM loop and graph-cut selection net):\n"
    "  --depth N             conv blocks (default by resolution: 3 at 28/32 px, 4 at 64 px,\n"
    "                        5 at 128 px, i.e. ConvNetD3/D4/D5; recorded in the provenance)\n"
    "  --seed S --threads N: same seed, inputs and thread count give identical files\n"
    " under mpirun -np P (dm, autopalette): P processes share the classes; with the same\n"
    "  --threads per process the file is the one-process file, byte for byte\n";

/* Which distillation options apply when (apd/distill.h says what each field drives): an
 * option given where it does nothing is a usage error rather than a silent no-op. */
enum {
    SC_ALL = 0,           /* random, dm, autopalette */
    SC_DM = 1,            /* the DM loop: dm, autopalette */
    SC_AP = 2,            /* the palette network: autopalette */
    SC_GRAPHCUT = 4,      /* the graph-cut init (--init graphcut; autopalette's default) */
    SC_WARMUP = 8,        /* --palette-remedy with warmup */
    SC_TASK_SCALE = 16,   /* --palette-remedy with task-scale */
    SC_TEMPERATURE = 32,  /* --palette-remedy with temperature */
    SC_NET = 64,          /* a ConvNet: the DM loop or the graph-cut init */
    SC_ANY_PALETTE = 128, /* autopalette in either palette mode (else SC_AP: the network's) */
    SC_NET_POOL = 256,    /* --net-pool N with N > 0 */
    SC_HERDING = 512,     /* the herding init (--init herding) */
    SC_CE = 1024          /* --ce-weight F with F > 0 */
};

static const struct {
    const char *name;
    unsigned scope;
} OPT_SCOPE[] = {
    {"ipc", SC_ALL}, {"images-per-class", SC_ALL}, {"init", SC_ALL}, {"budget", SC_ALL},
    {"iters", SC_DM}, {"batch-real", SC_DM}, {"lr-img", SC_DM}, {"momentum-img", SC_DM},
    {"dsa", SC_DM}, {"lr-img-rule", SC_DM}, {"pixel-range", SC_DM}, {"anneal", SC_AP | SC_ANY_PALETTE}, {"loss-range", SC_AP | SC_ANY_PALETTE}, {"checkpoint", SC_DM}, {"checkpoint-every", SC_DM}, {"resume", SC_DM},
    {"log-every", SC_DM}, {"stop-after", SC_DM}, {"net-pool", SC_DM}, {"net-pool-every", SC_DM | SC_NET_POOL},
    {"net-pool-steps", SC_DM | SC_NET_POOL}, {"net-pool-batch", SC_DM | SC_NET_POOL},
    {"lr-palette", SC_AP}, {"momentum-palette", SC_AP}, {"wd-palette", SC_AP}, {"w-max", SC_AP},
    {"w-balance", SC_AP}, {"w-align", SC_AP}, {"w-conf", SC_AP}, {"color-subset", SC_AP},
    {"align-ratio", SC_AP}, {"palette-remedy", SC_AP}, {"palette-input", SC_AP},
    {"warmup-steps", SC_AP | SC_WARMUP}, {"task-scale", SC_AP | SC_TASK_SCALE},
    {"temp-start", SC_AP | SC_TEMPERATURE}, {"temp-end", SC_AP | SC_TEMPERATURE},
    {"select-epochs", SC_GRAPHCUT}, {"select-batch", SC_GRAPHCUT}, {"select-lr", SC_GRAPHCUT},
    {"select-limit", SC_GRAPHCUT}, {"gc-lambda", SC_GRAPHCUT}, {"gc-epsilon", SC_GRAPHCUT},
    {"depth", SC_NET}, {"palette", SC_AP | SC_ANY_PALETTE}, {"herd-nets", SC_HERDING}, {"herd-limit", SC_HERDING},
    {"ce-weight", SC_DM}, {"ce-teacher-steps", SC_DM | SC_CE},
};

/* Each given distillation option must apply to the method, init and remedy in effect. */
static apd_status distill_option_scopes(const cv_ctx *ctx)
{
    const apd_distill_opts *d = &ctx->o.d;
    int ap = d->method == APD_DISTILL_AUTOPALETTE, dm = d->method != APD_DISTILL_RANDOM;
    apd_distill_init init = apd_distill_init_in_effect(d);
    int graphcut = init == APD_INIT_GRAPHCUT, herding = init == APD_INIT_HERDING;
    char remedy[96];
    apd_palette_remedy_name(d->remedy, remedy, sizeof remedy);
    for (int i = 0; i < ctx->o.n_given; i++) {
        const char *g = ctx->o.given[i];
        unsigned sc = SC_ALL;
        for (size_t k = 0; k < sizeof OPT_SCOPE / sizeof OPT_SCOPE[0]; k++)
            if (!strcmp(OPT_SCOPE[k].name, g)) sc = OPT_SCOPE[k].scope;
        const char *why = NULL;
        if ((sc & SC_DM) && !dm) why = "applies only to --method dm|autopalette (the DM loop)";
        else if ((sc & SC_AP) && !ap) why = "applies only to --method autopalette";
        else if ((sc & SC_AP) && !(sc & SC_ANY_PALETTE) && d->palette_mode != APD_PALETTE_NETWORK)
            why = "applies only to the palette network (--palette network)";
        else if ((sc & SC_NET) && !dm && !graphcut && !herding)
            why = "applies only where a ConvNet runs (--method dm|autopalette, or --init graphcut|herding)";
        else if ((sc & SC_GRAPHCUT) && !graphcut)
            why = "applies only to the graph-cut init (--init graphcut; the default of --palette network)";
        else if ((sc & SC_WARMUP) && !(d->remedy & APD_REMEDY_WARMUP)) why = "applies only when --palette-remedy includes warmup";
        else if ((sc & SC_TASK_SCALE) && !(d->remedy & APD_REMEDY_TASK_SCALE))
            why = "applies only when --palette-remedy includes task-scale";
        else if ((sc & SC_TEMPERATURE) && !(d->remedy & APD_REMEDY_TEMPERATURE))
            why = "applies only when --palette-remedy includes temperature";
        else if ((sc & SC_NET_POOL) && d->net_pool == 0) why = "applies only with --net-pool N, N >= 1";
        else if ((sc & SC_HERDING) && !herding) why = "applies only to the herding init (--init herding)";
        else if ((sc & SC_CE) && !(apd_distill_ce_weight_in_effect(d) > 0.0f))
            why = "applies only with the class-aware term (--ce-weight F, F > 0; on by default for --palette stored)";
        if (why) {
            usage_error("--%s %s (here: --method %s, init %s, palette remedy %s)", g, why, ctx->o.method,
                        graphcut ? "graphcut" : herding ? "herding" : "random", ap ? remedy : "-");
            return APD_EINVAL;
        }
    }
    return APD_OK;
}

static apd_status distill_validate(cv_ctx *ctx)
{
    apd_distill_opts *d = &ctx->o.d;
    if (apd_distill_method_from_name(ctx->o.method, &d->method) != APD_OK) return APD_EINVAL;
    if (ctx->o.colors) d->colors = ctx->o.colors;
    if (d->colors < 2) {
        usage_error("%s needs --colors K in 2..%u", ctx->o.method, APD_MAX_COLORS);
        return APD_EINVAL;
    }
    if (ctx->o.quantizer_name) {
        apd_quantizer q;
        if (d->method == APD_DISTILL_AUTOPALETTE && d->palette_mode == APD_PALETTE_NETWORK) {
            usage_error("--quantizer does not apply to --method autopalette --palette network (the palette "
                        "network makes its palettes); it applies to --palette stored, quantize, random and dm");
            return APD_EINVAL;
        }
        if (apd_quantizer_from_name(ctx->o.quantizer_name, &q) != APD_OK) {
            usage_error("unknown quantizer '%s' (expected median-cut, octree or kmeans)", ctx->o.quantizer_name);
            return APD_EINVAL;
        }
        d->quantizer = (int)q;
    }
    CV_TRY(distill_option_scopes(ctx));
    if (d->checkpoint_every && !d->checkpoint_path) {
        usage_error("%s needs --checkpoint FILE", "--checkpoint-every");
        return APD_EINVAL;
    }
    if (d->net_pool && (d->net_pool > APD_DISTILL_MAX_NET_POOL || d->net_pool_every == 0 || d->net_pool_batch == 0 ||
                        d->net_pool_steps > APD_DISTILL_MAX_NET_POOL_STEPS)) {
        usage_error("--net-pool N needs N <= %u, --net-pool-every and --net-pool-batch >= 1, --net-pool-steps <= %u",
                    APD_DISTILL_MAX_NET_POOL, APD_DISTILL_MAX_NET_POOL_STEPS);
        return APD_EINVAL;
    }
    return APD_OK;
}

static apd_status distill_run(cv_ctx *ctx)
{
    apd_distill_opts *d = &ctx->o.d;
    d->seed = ctx->o.seed;
    d->threads = ctx->o.threads;
    /* status lines and the progress of each phase come back through the tool's sinks, which
     * print them around the one progress line; --quiet drops the status lines */
    if (ctx->o.quiet) d->log_every = 0;
    else if (!d->log_every) d->log_every = d->iters >= 10 ? d->iters / 10 : 1;
    d->log_fn = ctx->o.quiet ? NULL : tool_log_fn;
    d->progress_fn = tool_progress_fn;
    d->cb_user = &ctx->prog;
    /* under mpirun: each process distils a block of the classes (apd_distill_comm); every
     * process gets the whole result, rank 0 reports and writes the file */
    apd_distill_comm comm = {tool_mpi_rank(), tool_mpi_size(), tool_mpi_exchange, NULL};
    int root = comm.rank == 0;
    if (comm.size > 1) d->comm = &comm;
    if (!root) {
        d->log_fn = NULL;
        d->progress_fn = NULL;
    }
    /* the bytes budget measures with short-lived files beside the output */
    char *scratch = strdup(ctx->o.output);
    if (!scratch) return APD_ENOMEM;
    char *slash = strrchr(scratch, '/');
    if (!slash) d->scratch_dir = ".";
    else {
        slash[slash == scratch] = 0; /* "/x.apd" -> "/" */
        d->scratch_dir = scratch;
    }
    apd_distill_result res;
    apd_err err;
    apd_status s = ctx->src ? apd_distill_run_source(ctx->src, d, &res, &err) : apd_distill_run(&ctx->ds, d, &res, &err);
    d->scratch_dir = NULL;
    free(scratch);
    char why[700];
    if (s != APD_OK) {
        tool_progress_stop(&ctx->prog);
        if (root) fprintf(stderr, TOOL ": %s\n", tool_why(why, sizeof why, err.msg, s)); /* same on every rank */
        return s;
    }
    tool_progress_finish(&ctx->prog);
    if (!root) {
        apd_distill_result_free(&res);
        return APD_OK;
    }
    s = cv_writer_create(ctx, res.kind == 1 ? APD_KIND_PALETTE : APD_KIND_DIRECT, res.k);
    if (s == APD_OK) {
        s = apd_distill_write(ctx->w, &res, &ctx->ds, d->seed, NULL);
        if (s != APD_OK)
            fprintf(stderr, TOOL ": %s: %s\n", ctx->o.output, tool_why(why, sizeof why, apd_writer_errmsg(ctx->w), s));
    }
    if (s == APD_OK && !ctx->o.quiet)
        fprintf(stderr, TOOL ": %s: %llu synthetic images (%llu per class); budget %s; %s\n", ctx->o.output,
                (unsigned long long)res.n, (unsigned long long)res.images_per_class, res.budget_json,
                res.stats_json);
    apd_distill_result_free(&res);
    return s;
}

/* ---- method table ------------------------------------------------------------------------- */

static const cv_method METHODS[] = {
    {"quantize", "every image colour-reduced by --quantizer to --colors K (palette records)",
     quantize_validate, quantize_run},
    {"direct", "every image stored in full colour (direct records), a baseline", direct_validate, direct_run},
    /* distillation methods (apd/distill.h, docs/distill.md) */
    {"random", "N random real images per class (direct colour; --quantizer: palette)", distill_validate,
     distill_run},
    {"dm", "distribution matching, synthetic images in direct colour", distill_validate, distill_run},
    {"autopalette", "DM + palette network, K-colour palette records (docs/distill.md)", distill_validate,
     distill_run},
};

static const cv_method *find_method(const char *name)
{
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (!strcmp(METHODS[i].name, name)) return &METHODS[i];
    return NULL;
}

/* ---- command line ----------------------------------------------------------------------------- */

static void help(void)
{
    printf("Usage: " TOOL " --input SPEC [--split train|test] --method METHOD [options] -o OUT.apd\n"
           "\n"
           "Convert a dataset into an .apd file.\n"
           "\n"
           "Input:\n"
           "  -i, --input SPEC       cifar10:PATH | cifar100:PATH | idx:IMAGES,LABELS |\n"
           "                         fashion-mnist[:DIR] | mnist:DIR | folder:DIR |\n"
           "                         apd:FILE (random|dm|autopalette only: real images read from\n"
           "                         an .apd file one batch at a time, not loaded into memory)\n"
           "  -s, --split S          train (default), test, or val (folder: val/ or Tiny-ImageNet),\n"
           "                         where the source has that split (a single CIFAR file is the\n"
           "                         split its name says: another --split is an error)\n"
           "      --size N           folder sources only: resize the shorter side to N, centre-crop\n"
           "      --limit N          use N images: folder sources a class-balanced subset (the first\n"
           "                         images of each class), other sources the first N; the count\n"
           "                         per class taken is printed\n"
           "\n"
           "Method:\n"
           "  -m, --method M         one of:\n");
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        printf("                           %-12s %s\n", METHODS[i].name, METHODS[i].summary);
    printf("  -q, --quantizer Q      quantize: median-cut (default; Pillow-exact), octree, kmeans\n"
           "  -k, --colors K         quantize: at most K colours per image (1..%u)\n"
           "An option that does not apply to the method, its init or palette remedy, or the source\n"
           "is a usage error (exit 2), e.g. --ipc with quantize, --quantizer with autopalette,\n"
           "--select-epochs without the graph-cut init, --size with a non-folder source.\n", APD_MAX_COLORS);
    fputs(distill_usage, stdout);
    printf(
           "\n"
           "Output and run:\n"
           "  -o, --output FILE      the .apd file to create\n"
           "  -f, --force            replace FILE if it is a regular file (only once the new\n"
           "                         file is complete; any failure leaves FILE as it was)\n"
           "  -t, --threads N        worker threads (default: online CPUs); quantize/direct output\n"
           "                         is identical for any N; distillation is identical for the same N\n"
           "      --seed S           seed recorded in the file and passed to the method (default 0)\n"
           "      --created TIME     pin the \"created\" metadata (else now, or SOURCE_DATE_EPOCH)\n"
           "      --format V         the newest .apd format the file may use, for older readers:\n"
           "                         1.2 (default: palette index maps entropy-coded when that saves\n"
           "                         10%%, index model version 2), 1.1 (the same bytes, model\n"
           "                         version 1), 1.0 (bit-packed index maps, no soft labels)\n"
           "      --quiet            no status or summary lines\n"
           "  -h, --help             this help\n"
           "  -V, --version          version\n"
           "\n"
           "A progress line (count, rate, ETA) is drawn on a terminal only (APD_PROGRESS=0 hides\n"
           "it, APD_PROGRESS=1 forces it); status lines print above it.\n"
           "Exit status: 0 success, 1 error, 2 usage error.\n"
           "\n"
           "Example:\n"
           "  " TOOL " --input fashion-mnist --split train --method quantize --quantizer median-cut \\\n"
           "              --colors 16 -o fmnist-k16.apd\n");
}

enum { OPT_SEED = 1000, OPT_SIZE, OPT_LIMIT, OPT_CREATED, OPT_QUIET, OPT_FORMAT,
       /* every distillation option (distill_opt) */
       OPT_DISTILL,
       OPT_LAST };

static const struct option LONG_OPTS[] = {
    {"input", required_argument, 0, 'i'},    {"split", required_argument, 0, 's'},
    {"method", required_argument, 0, 'm'},   {"quantizer", required_argument, 0, 'q'},
    {"colors", required_argument, 0, 'k'},   {"colours", required_argument, 0, 'k'},
    {"output", required_argument, 0, 'o'},   {"force", no_argument, 0, 'f'},
    {"threads", required_argument, 0, 't'},  {"seed", required_argument, 0, OPT_SEED},
    {"size", required_argument, 0, OPT_SIZE}, {"limit", required_argument, 0, OPT_LIMIT},
    {"created", required_argument, 0, OPT_CREATED}, {"quiet", no_argument, 0, OPT_QUIET},
    {"format", required_argument, 0, OPT_FORMAT},
    {"help", no_argument, 0, 'h'},           {"version", no_argument, 0, 'V'},
    /* distillation options: all go to distill_opt */
    {"align-ratio", required_argument, 0, OPT_DISTILL},
    {"batch-real", required_argument, 0, OPT_DISTILL},
    {"budget", required_argument, 0, OPT_DISTILL},
    {"checkpoint", required_argument, 0, OPT_DISTILL},
    {"checkpoint-every", required_argument, 0, OPT_DISTILL},
    {"color-subset", required_argument, 0, OPT_DISTILL},
    {"depth", required_argument, 0, OPT_DISTILL},
    {"dsa", required_argument, 0, OPT_DISTILL},
    {"gc-epsilon", required_argument, 0, OPT_DISTILL},
    {"gc-lambda", required_argument, 0, OPT_DISTILL},
    {"images-per-class", required_argument, 0, OPT_DISTILL},
    {"init", required_argument, 0, OPT_DISTILL},
    {"ipc", required_argument, 0, OPT_DISTILL},
    {"iters", required_argument, 0, OPT_DISTILL},
    {"log-every", required_argument, 0, OPT_DISTILL},
    {"net-pool", required_argument, 0, OPT_DISTILL},
    {"net-pool-batch", required_argument, 0, OPT_DISTILL},
    {"net-pool-every", required_argument, 0, OPT_DISTILL},
    {"net-pool-steps", required_argument, 0, OPT_DISTILL},
    {"lr-img", required_argument, 0, OPT_DISTILL},
    {"lr-palette", required_argument, 0, OPT_DISTILL},
    {"momentum-img", required_argument, 0, OPT_DISTILL},
    {"momentum-palette", required_argument, 0, OPT_DISTILL},
    {"palette-remedy", required_argument, 0, OPT_DISTILL}, {"palette", required_argument, 0, OPT_DISTILL},
    {"palette-input", required_argument, 0, OPT_DISTILL},
    {"lr-img-rule", required_argument, 0, OPT_DISTILL},
    {"pixel-range", required_argument, 0, OPT_DISTILL},
    {"anneal", required_argument, 0, OPT_DISTILL},
    {"loss-range", required_argument, 0, OPT_DISTILL},
    {"resume", required_argument, 0, OPT_DISTILL},
    {"select-batch", required_argument, 0, OPT_DISTILL},
    {"select-epochs", required_argument, 0, OPT_DISTILL},
    {"select-limit", required_argument, 0, OPT_DISTILL},
    {"herd-nets", required_argument, 0, OPT_DISTILL},
    {"ce-weight", required_argument, 0, OPT_DISTILL},
    {"ce-teacher-steps", required_argument, 0, OPT_DISTILL},
    {"herd-limit", required_argument, 0, OPT_DISTILL},
    {"stop-after", required_argument, 0, OPT_DISTILL},
    {"task-scale", required_argument, 0, OPT_DISTILL},
    {"temp-end", required_argument, 0, OPT_DISTILL},
    {"temp-start", required_argument, 0, OPT_DISTILL},
    {"w-align", required_argument, 0, OPT_DISTILL},
    {"w-balance", required_argument, 0, OPT_DISTILL},
    {"w-conf", required_argument, 0, OPT_DISTILL},
    {"w-max", required_argument, 0, OPT_DISTILL},
    {"warmup-steps", required_argument, 0, OPT_DISTILL},
    {"wd-palette", required_argument, 0, OPT_DISTILL},
    {"select-lr", required_argument, 0, OPT_DISTILL},
    {0, 0, 0, 0}};

/* Options that depend on the kind of source (the SPEC prefix): 0 ok, 2 usage error. */
static int source_options(const cv_opts *o)
{
    const char *colon = strchr(o->input, ':');
    size_t kl = colon ? (size_t)(colon - o->input) : strlen(o->input);
    int folder = kl == 6 && !strncmp(o->input, "folder", 6);
    if (kl == 3 && !strncmp(o->input, "apd", 3)) { /* one file = one split, already converted */
        const char *bad = o->split ? "--split" : o->limit ? "--limit" : o->size ? "--size" : NULL;
        if (bad) {
            usage_error("%s does not apply to apd: sources (the file is one split, read as it is)", bad);
            return 2;
        }
        if (o->method && strcmp(o->method, "random") && strcmp(o->method, "dm") && strcmp(o->method, "autopalette")) {
            usage_error("apd: sources feed the distillation methods (random, dm, autopalette), not %s", o->method);
            return 2;
        }
        return 0;
    }
    int two_splits = (kl == 7 && !strncmp(o->input, "cifar10", 7)) || (kl == 8 && !strncmp(o->input, "cifar100", 8)) ||
                     (kl == 5 && !strncmp(o->input, "mnist", 5)) || (kl == 13 && !strncmp(o->input, "fashion-mnist", 13));
    if (o->size && !folder) {
        usage_error("--size applies only to folder: sources (the other kinds have one image size), not '%s'", o->input);
        return 2;
    }
    if (o->split && !strcmp(o->split, "val") && two_splits) {
        usage_error("--split val: '%.*s' has train and test splits only", (int)kl, o->input);
        return 2;
    }
    return 0;
}

/* Returns 0 ok, 2 usage error. */
static int parse_args(cv_ctx *ctx, int argc, char **argv)
{
    cv_opts *o = &ctx->o;
    uint64_t v;
    int c, li = 0;
    opterr = 0;
    o->format_minor = 2;
    while ((c = getopt_long(argc, argv, ":i:s:m:q:k:o:ft:hV", LONG_OPTS, &li)) != -1) {
        switch (c) {
        case 'i': o->input = optarg; break;
        case 's':
            if (strcmp(optarg, "train") && strcmp(optarg, "test") && strcmp(optarg, "val")) {
                usage_error("--split '%s': expected train, test or val", optarg);
                return 2;
            }
            o->split = optarg;
            break;
        case 'm': o->method = optarg; break;
        case 'q': o->quantizer_name = optarg; break;
        case 'k':
            if (!parse_u64(optarg, APD_MAX_COLORS, &v) || v < 1) {
                usage_error("--colors '%s': expected 1..%u", optarg, APD_MAX_COLORS);
                return 2;
            }
            o->colors = (uint32_t)v;
            break;
        case 'o': o->output = optarg; break;
        case 'f': o->force = 1; break;
        case 't':
            if (!parse_u64(optarg, 256, &v) || v < 1) {
                usage_error("--threads '%s': expected 1..256", optarg);
                return 2;
            }
            o->threads = (uint32_t)v;
            break;
        case OPT_SEED:
            if (!parse_u64(optarg, UINT64_MAX, &o->seed)) {
                usage_error("--seed '%s': expected a non-negative integer", optarg);
                return 2;
            }
            break;
        case OPT_SIZE:
            if (!parse_u64(optarg, 4096, &v) || v < 1) {
                usage_error("--size '%s': expected 1..4096", optarg);
                return 2;
            }
            o->size = (uint32_t)v;
            break;
        case OPT_LIMIT:
            if (!parse_u64(optarg, UINT64_MAX, &o->limit) || o->limit < 1) {
                usage_error("--limit '%s': expected a positive integer", optarg);
                return 2;
            }
            break;
        case OPT_CREATED: o->created = optarg; break;
        case OPT_QUIET: o->quiet = 1; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "1.0") && strcmp(optarg, "1.1") && strcmp(optarg, "1.2")) {
                usage_error("--format '%s': expected 1.0, 1.1 or 1.2", optarg);
                return 2;
            }
            o->format_minor = (uint32_t)(optarg[2] - '0');
            break;
        /* distillation options */
        case OPT_DISTILL: {
            char name[64];
            snprintf(name, sizeof name, "--%s", LONG_OPTS[li].name);
            if (distill_opt(&o->d, name, optarg) != 1) return 2;
            if (o->n_given < CV_MAX_GIVEN) o->given[o->n_given++] = LONG_OPTS[li].name;
            break;
        }
        case 'h': help(); exit(0);
        case 'V':
            printf(TOOL " %s (format %u.%u)\n", apd_version(), APD_FORMAT_VERSION_MAJOR, APD_FORMAT_VERSION_MINOR);
            exit(0);
        case ':':
            usage_error("option '%s' needs a value", argv[optind - 1]);
            return 2;
        default:
            usage_error("unknown option '%s'", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        usage_error("unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!o->input) {
        usage_error("%s", "missing --input SPEC");
        return 2;
    }
    if (!o->output) {
        usage_error("%s", "missing -o OUT.apd");
        return 2;
    }
    if (!o->method) {
        usage_error("%s", "missing --method");
        return 2;
    }
    return source_options(o);
}

/* What --limit took: the count per class (folder sources take a class-balanced subset;
 * the others the first N records in source order). */
static void report_limit(const cv_ctx *ctx)
{
    const apd_dataset *ds = &ctx->ds;
    uint64_t *counts = calloc(ds->n_classes ? ds->n_classes : 1, sizeof *counts);
    if (!counts) return;
    apd_dataset_class_counts(ds, counts);
    int folder = !strncmp(ctx->o.input, "folder:", 7);
    tool_sb b = {0};
    tool_sb_printf(&b, TOOL ": --limit %llu: took %llu images (%s), per class:", (unsigned long long)ctx->o.limit,
                   (unsigned long long)ds->n, folder ? "class-balanced" : "the first in source order");
    const uint32_t show = 20;
    for (uint32_t k = 0; k < ds->n_classes && k < show; k++)
        tool_sb_printf(&b, "%s %s %llu", k ? "," : "", ds->class_names && ds->class_names[k][0] ? ds->class_names[k] : "?",
                       (unsigned long long)counts[k]);
    if (ds->n_classes > show) tool_sb_printf(&b, ", ... (%u more classes)", ds->n_classes - show);
    if (!b.oom) printf("%s\n", tool_sb_str(&b));
    tool_sb_free(&b);
    free(counts);
}

/* The input: apd_import of SPEC, or (apd:FILE) an .apd source and its description; then the
 * content hash of the source. */
static apd_status open_input(cv_ctx *ctx, apd_err *err)
{
    if (!strncmp(ctx->o.input, "apd:", 4)) {
        const char *path = ctx->o.input + 4;
        if (!*path) {
            snprintf(err->msg, sizeof err->msg, "dataset '%s': missing path (expected apd:FILE)", ctx->o.input);
            return err->code = APD_EDATASET;
        }
        CV_TRY(apd_distill_source_open_apd(&ctx->src, path, err));
        CV_TRY(apd_distill_source_describe(ctx->src, &ctx->ds, err));
        apd_distill_source_hash(ctx->src, ctx->hash);
        return APD_OK;
    }
    apd_import_opts io = {.size = ctx->o.size, .limit = ctx->o.limit, .warn = on_import_warning};
    CV_TRY(apd_import(&ctx->ds, ctx->o.input, ctx->o.split, &io, err));
    apd_dataset_hash(&ctx->ds, ctx->hash);
    return APD_OK;
}

static int convert_main(int argc, char **argv)
{
    cv_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    tool_progress_init(&ctx.prog);
    ctx.argc = argc;
    ctx.argv = argv;
    apd_distill_opts_default(&ctx.o.d);
    int rc = parse_args(&ctx, argc, argv);
    if (rc) return rc;
    const cv_method *m = find_method(ctx.o.method);
    if (!m) {
        usage_error("unknown method '%s' (see --help)", ctx.o.method);
        return 2;
    }
    if (m->validate(&ctx) != APD_OK) return 2;
    int root = tool_mpi_rank() == 0;
    if (tool_mpi_size() > 1 && strcmp(ctx.o.method, "dm") && strcmp(ctx.o.method, "autopalette") &&
        strcmp(ctx.o.method, "random")) {
        usage_error("--method %s runs as one process (under mpirun: dm, autopalette or random)", ctx.o.method);
        return 2;
    }

    struct stat st;
    if (lstat(ctx.o.output, &st) == 0 && (!ctx.o.force || !S_ISREG(st.st_mode))) { /* fail before the work */
        fprintf(stderr, TOOL ": %s: %s\n", ctx.o.output,
                ctx.o.force ? "not a regular file; refusing to replace it" : "exists (use --force to overwrite)");
        return 1;
    }
    unsigned stale = root ? apd_writer_remove_stale(ctx.o.output) : 0;
    if (stale && !ctx.o.quiet)
        fprintf(stderr, TOOL ": %s: removed %u temporar%s left by an interrupted run\n", ctx.o.output, stale,
                stale == 1 ? "y" : "ies");
    ctx.t0 = tool_now();
    apd_err err;
    apd_status s = open_input(&ctx, &err);
    if (s != APD_OK) {
        char why[700];
        fprintf(stderr, TOOL ": %s\n", tool_why(why, sizeof why, err.msg, s));
        return 1;
    }
    double t_import = tool_now() - ctx.t0;
    if (ctx.o.limit && !ctx.o.quiet && root) report_limit(&ctx);
    if (!ctx.o.threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        ctx.o.threads = n < 1 ? 1 : n > 16 ? 16 : (uint32_t)n;
    }
    if (ctx.o.threads > 1 && (s = apd_pool_create(&ctx.pool, ctx.o.threads)) != APD_OK) {
        fprintf(stderr, TOOL ": cannot start %u threads (%s)\n", ctx.o.threads, apd_strerror(s));
        apd_dataset_free(&ctx.ds);
        apd_distill_source_free(ctx.src);
        return 1;
    }
    double t1 = tool_now();
    s = m->run(&ctx);
    uint64_t n_out = ctx.w ? apd_writer_count(ctx.w) : 0;
    if (ctx.w && s != APD_OK) {
        apd_writer_discard(ctx.w); /* OUT stays as it was: the library never wrote there */
    } else if (ctx.w) {
        s = apd_writer_finish(ctx.w, &err);
        if (s != APD_OK) fprintf(stderr, TOOL ": %s (%s)\n", err.msg, apd_strerror(s));
    }
    ctx.w = NULL;
    double t_run = tool_now() - t1;
    if (s == APD_OK && !ctx.o.quiet && root) {
        uint64_t bytes = stat(ctx.o.output, &st) == 0 ? (uint64_t)st.st_size : 0;
        printf(TOOL ": %s: %llu records from %llu images of %s (%s%s%s), method %s%s%s, %llu bytes; import %.2f s, "
               "%s %.2f s (%.0f source images/s, %u thread%s)\n",
               ctx.o.output, (unsigned long long)n_out, (unsigned long long)ctx.ds.n, ctx.ds.name, ctx.ds.split[0] ? ctx.ds.split : "",
               ctx.ds.split[0] ? ", " : "", ctx.hash, ctx.o.method,
               !strcmp(ctx.o.method, "quantize") ? " " : "",
               !strcmp(ctx.o.method, "quantize") ? apd_quantizer_name(ctx.o.quantizer) : "",
               (unsigned long long)bytes, t_import, ctx.o.method, t_run,
               t_run > 0 ? (double)ctx.ds.n / t_run : 0.0, ctx.o.threads, ctx.o.threads == 1 ? "" : "s");
    }
    apd_pool_free(ctx.pool);
    apd_dataset_free(&ctx.ds);
    apd_distill_source_free(ctx.src);
    return s == APD_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    int rc = tool_mpi_init(&argc, &argv, TOOL);
    if (rc) return rc;
    return tool_mpi_finish(convert_main(argc, argv));
}
