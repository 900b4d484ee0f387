/* distill/distill_internal.h: library-internal pieces of the distillation code, exposed to
 * tests (which link the static library). Not installed; not a stable API.
 */
#ifndef APD_DISTILL_INTERNAL_H
#define APD_DISTILL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "apd/distill.h"
#include "apd/quant.h"
#include "common/rng.h"

/* Graph-cut state for one class (see graphcut.c for the maths). */
typedef struct apd_graphcut {
    uint64_t n;        /* items in the class (V) */
    uint32_t d;        /* feature dimension */
    float *unit;       /* n x d unit feature vectors (zero rows stay zero) */
    double *colsum;    /* n: sum_{j in V} s(j, i) */
    double *sum_all;   /* d: sum of all unit vectors */
    double *sum_sel;   /* d: sum of the selected unit vectors */
    uint64_t n_sel;    /* |S| */
} apd_graphcut;

/* @return APD_OK, APD_EINVAL, APD_EOVERFLOW, APD_ENOMEM, APD_ENUMERIC (non-finite feature). */
apd_status apd__graphcut_prepare(apd_graphcut *g, const float *feat, uint64_t n, uint32_t d);
void apd__graphcut_free(apd_graphcut *g);
/* gain(c) = lambda * sum_{j in V} s(j,c) - 2 * sum_{k in S} s(k,c) for the current S. */
double apd__graphcut_gain(const apd_graphcut *g, uint64_t c, double lambda);
/* Add item c to S. */
void apd__graphcut_add(apd_graphcut *g, uint64_t c);
/* Candidates per stochastic-greedy step: max(round(-ln(eps) * n / budget), 1), at most n. */
uint64_t apd__graphcut_candidates(uint64_t n, uint64_t budget, double epsilon);

/* Growable string (JSON building). On allocation failure `failed` is set and later calls
 * are no-ops. */
typedef struct apd__dsb {
    char *buf;
    size_t len, cap;
    int failed;
} apd__dsb;
void apd__dsb_printf(apd__dsb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void apd__dsb_num(apd__dsb *b, double v);

/* A status line to o->log_fn (nothing when it is NULL; longer than 1 KiB is cut). The
 * library never prints: every line goes through the caller's callback. */
void apd__distill_log(const apd_distill_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *apd__distill_init_name(apd_distill_init i);

/* The pixel range rule in effect (APD_PIXELS_FREE or APD_PIXELS_CLAMP). */
apd_pixel_range apd__distill_pixel_range(const apd_distill_opts *o);
/* The loss range rule in effect (APD_LOSS_RANGE_STORED or APD_LOSS_RANGE_FLOAT). */
apd_loss_range apd__distill_loss_range(const apd_distill_opts *o);

/* uint8 pixels to the networks' normalised floats: lut[ch][v] = (v / 255 - mean[ch]) / std[ch],
 * built once per run; apd__lut_image maps one image ([c, p] bytes, planar) through it. The DM
 * loop, the network queue and the herding init all read real images this way. */
static inline void apd__lut_build(float lut[3][256], uint32_t c, const float *mean, const float *std)
{
    for (uint32_t ch = 0; ch < c; ch++)
        for (int v = 0; v < 256; v++) lut[ch][v] = ((float)v / 255.0f - mean[ch]) / std[ch];
}
static inline void apd__lut_image(float *dst, const uint8_t *im, const float lut[3][256], uint32_t c, size_t p)
{
    for (uint32_t ch = 0; ch < c; ch++)
        for (size_t q = 0; q < p; q++) dst[ch * p + q] = lut[ch][im[ch * p + q]];
}

/* AutoPalette's two palette modes (apd_palette_mode); both are 0 for the other methods. */
static inline int apd__distill_stored(const apd_distill_opts *o)
{
    return o->method == APD_DISTILL_AUTOPALETTE && o->palette_mode == APD_PALETTE_STORED;
}
static inline int apd__distill_network(const apd_distill_opts *o)
{
    return o->method == APD_DISTILL_AUTOPALETTE && o->palette_mode == APD_PALETTE_NETWORK;
}

/* The real images of a run (source.c): an in-memory dataset or an .apd file. Both give the
 * labels and a per-class index in memory, and the images one at a time (apd__dsrc_image). */
struct apd_distill_source {
    uint64_t n;                 /* images */
    uint32_t c, h, w, n_classes;
    size_t img;                 /* c*h*w */
    const uint32_t *labels;     /* [n] */
    uint64_t *cls_off;          /* [n_classes + 1]: class cls is cls_ids[cls_off[cls] ..) */
    uint64_t *cls_ids;          /* [n] image ids, class-major, ascending within a class */
    float mean[3], std[3];      /* normalisation of pixels/255 */
    char hash[17];              /* apd_dataset_hash, once computed */
    int have_hash;
    const apd_dataset *ds;      /* in-memory source (borrowed), else NULL */
    /* .apd source */
    apd_reader *r;
    char *path;
    uint32_t *own_labels;       /* [n] */
    uint64_t *source_ids;       /* [n] */
    char (*names)[APD_MAX_CLASS_NAME]; /* [n_classes] */
    char name[64], split[16];
};

/* Image i (uint8 CHW, img bytes): *out points into the dataset, or at scratch (img bytes)
 * holding the decoded record. APD_OK or the reader's code (message names file and record). */
/* The source id a record made from image i carries in the written file: the .apd source's
 * stored id, the dataset's source id, else i. */
uint64_t apd__dsrc_source_id(const apd_distill_source *s, uint64_t i);
apd_status apd__dsrc_image(apd_distill_source *s, uint64_t i, uint8_t *scratch, const uint8_t **out,
                           apd_err *err);
/* The bytes budget's measurements (budget_fit.c), recorded in the provenance. */
typedef struct apd__budget_fit_info {
    uint64_t estimated;              /* images per class from the estimate (0: not estimated) */
    uint64_t sample;                 /* real images per class measured by the estimate */
    uint64_t sample_bytes_per_image; /* the costliest class's stored bytes per sample image */
    uint64_t sample_shared;          /* shared tables of the sample file */
    int quantizer;                   /* the estimate's apd_quantizer */
    uint32_t rounds;                 /* measurements of the synthetic records (0: none) */
    uint64_t *per_class;             /* n_classes: stored record bytes of each class (final) */
    uint64_t shared, share, coded;   /* shared table bytes, per-class share, coded records */
    uint64_t worst;                  /* max over classes of per_class + share */
} apd__budget_fit_info;
/* State shared by the stages of one apd_distill_run. */
typedef struct apd_distill_ctx {
    const apd_distill_opts *o;
    apd_distill_source *src; /* the real images */
    uint32_t c, h, w, n_classes, k, threads;
    uint32_t depth, embed;  /* ConvNet depth (opts or by resolution) and its embedding size */
    uint64_t seed;
    apd_distill_init init;
    uint64_t images_per_class;
    float lr_img_used;      /* the DM loop's pixel learning rate (apd__distill_lr_img) */
    int palette_out;        /* records are palette records (autopalette or a quantizer) */
    float mean[3], std[3];  /* normalisation of pixels/255 */
    double t_init;
    double eval_loss_initial, eval_loss_final; /* DM loss, fixed nets, no aug */
    apd__dsb stats;
    const apd_distill_comm *comm; /* class-parallel run (NULL: one process) */
    uint32_t rank, size;    /* this process and how many (1 without comm) */
    uint32_t cls_lo, cls_hi;/* the classes this process distils: [cls_lo, cls_hi) */
    apd__budget_fit_info bf;    /* bytes budget figures */
    uint32_t bench_iters;   /* bench: run this many iterations, time them, no records */
    double bench_first, bench_rest; /* seconds: first iteration, mean of the others */           /* "key":value,... pieces for stats_json (no braces) */
} apd_distill_ctx;

/* apd_distill_run with a bench mode (bench_iters > 0: dm/autopalette only; times the
 * iterations, skips the evaluation loss and the records). */
apd_status apd__distill_run_bench(const apd_dataset *real, const apd_distill_opts *o,
                                  apd_distill_result *res, apd_err *err, uint32_t bench_iters,
                                  double *t_first, double *t_rest);
/* Colour-guided initialisation (select.c): src[cls * ipc + t] = real index. */
apd_status apd__select_graphcut(apd_distill_ctx *x, uint64_t *src, apd_err *err);
/* Colour-guided herding (select.c, opts.init = APD_INIT_HERDING), same output. */
apd_status apd__select_herding(apd_distill_ctx *x, uint64_t *src, apd_err *err);
/* Herding: n of the m feature vectors feat [m, dim], greedily, each step the one that brings
 * the mean of the picks closest (L2) to mu [dim]; ties to the lower index. pick[t] = its
 * index, in pick order. APD_OK, APD_EINVAL (n > m), APD_ENOMEM. */
apd_status apd__herding_select(const float *feat, uint64_t m, size_t dim, const double *mu, uint64_t n,
                               uint64_t *pick, apd_err *err);
/* The DM / AutoPalette loop (dm.c): starts from res->source_ids, fills the records. */
/* "stored_colors_per_image" (min, median, max of k_used) appended to x->stats. */
void apd__distill_colors_stat(apd_distill_ctx *x, const uint32_t *k_used, uint64_t n);
apd_status apd__dm_run(apd_distill_ctx *x, apd_distill_result *res, apd_err *err);
/* The queue of partly trained networks of the DM loop (netpool.c; opts.net_pool > 0). */
typedef struct apd_convnet apd_convnet;
typedef struct apd_convnet_opts apd_convnet_opts;
typedef struct apd__netpool {
    uint32_t cap, every, steps, batch; /* opts.net_pool, _every, _steps, _batch */
    size_t np, img, K;    /* parameters per network, floats per image, classes */
    uint32_t mb;          /* images per forward/backward pass of a training step */
    float *w, *v;         /* [cap, np]: parameters and SGD momentum of each slot */
    uint64_t *meta;       /* [1 + cap]: networks pushed so far, then each slot's SGD steps */
    apd_convnet *tnet;    /* the network a training step runs on */
    float *xb, *logits, *probs, *dlogits; /* [batch, img], [batch, K] x3 */
    uint32_t *yb;         /* [batch] */
    uint8_t *img8;        /* [img] one decoded real image */
    apd_progress_fn prog; /* NULL, or "teacher" progress per SGD step (apd__netpool_trained_net) */
    void *prog_user;
} apd__netpool;
/* Allocate the queue for o->net_pool networks shaped like net_cfg (its pool threads used);
 * training passes planned for act_budget bytes of activations. APD_OK, APD_ENOMEM or the
 * ConvNet's code (err set). Free with apd__netpool_free (also after a failed create). */
apd_status apd__netpool_create(apd__netpool *p, const apd_distill_opts *o, const apd_convnet_opts *net_cfg,
                               uint64_t act_budget, size_t img, apd_err *err);
void apd__netpool_free(apd__netpool *p);
/* Iteration it: push a fresh network if it is due, then copy the matching network (drawn
 * from (seed, it)) into net's parameters; *age = its SGD steps so far (NULL ok). */
apd_status apd__netpool_net(apd__netpool *p, apd_convnet *net, uint64_t seed, uint64_t it, uint32_t *age);
/* Iteration it's training: one queued network (drawn from (seed, it)) takes opts.net_pool_steps
 * SGD steps on real batches of every class (lut: uint8 -> normalised float per channel);
 * *loss = their mean cross-entropy (0 without steps). APD_OK, the source's read error,
 * APD_ENUMERIC (diverged) or the ConvNet's code (err set). */
apd_status apd__netpool_train(apd__netpool *p, apd_distill_source *src, const float lut[3][256], uint64_t seed,
                              uint64_t it, double *loss, apd_err *err);
/* One network trained as a queued one is: a fresh init from seed, then steps SGD steps of batch
 * real images drawn from all classes; its parameters into net (shaped like net_cfg), *loss =
 * the mean cross-entropy of the steps; progress (phase "teacher", SGD steps) to prog if not
 * NULL. For opts.ce_weight's teacher. */
apd_status apd__netpool_trained_net(const apd_convnet_opts *net_cfg, uint64_t act_budget, size_t img,
                                    apd_distill_source *src, const float lut[3][256], uint64_t seed, uint32_t steps,
                                    uint32_t batch, apd_progress_fn prog, void *prog_user, apd_convnet *net,
                                    double *loss, apd_err *err);
/* The queue's state for a checkpoint: 3 (pointer, bytes) parts, read and written in place. */
size_t apd__netpool_parts(apd__netpool *p, void *ptr[3], size_t len[3]);
/* Class-parallel helpers (comm.c). Each is a collective over x->comm (every rank calls it
 * in the same order) and a no-op without one. */
/* Rank `rank` of `size` distils the classes [*lo, *hi) (contiguous blocks). */
void apd__dcomm_range(uint32_t n_classes, uint32_t rank, uint32_t size, uint32_t *lo, uint32_t *hi);
/* Raw exchange (apd_distill_comm.exchange); APD_EIO if the transport fails. */
apd_status apd__dcomm_exchange(const apd_distill_ctx *x, void *buf, const uint64_t *offsets, apd_err *err);
/* Every rank's status st: returns the first failure in rank order (with that rank's
 * message in err), else APD_OK. */
apd_status apd__dcomm_agree(const apd_distill_ctx *x, apd_status st, apd_err *err);
/* buf holds n_classes slots of unit bytes; each rank fills its own classes' slots, and on
 * return every rank has every slot. */
apd_status apd__dcomm_classes(const apd_distill_ctx *x, void *buf, size_t unit, apd_err *err);
/* n bytes of buf from rank 0 to every rank. */
apd_status apd__dcomm_bcast0(const apd_distill_ctx *x, void *buf, size_t n, apd_err *err);
/* Bytes budget (budget_fit.c): estimate sets x->images_per_class from real images quantized
 * to K and measured with the writer; fit measures the synthetic palette records and trims
 * every class's last images until each class's stored bytes fit the budget. */
apd_status apd__budget_estimate(apd_distill_ctx *x, apd_err *err);
apd_status apd__budget_fit(apd_distill_ctx *x, apd_distill_result *res, apd_err *err);
/* Numeric options finite and in range (opts_check.c): APD_OK, APD_EINVAL, APD_ENUMERIC. */
apd_status apd__distill_check_numbers(const apd_distill_opts *o, apd_err *err);
/* The learning-rate rule in effect (APD_LR_AUTO resolved) and the pixel learning rate the DM
 * loop uses (opts.lr_img under that rule). */
apd_lr_rule apd__distill_lr_rule(const apd_distill_opts *o);
float apd__distill_lr_img(const apd_distill_opts *o, uint64_t images_per_class);
/* The quantizer of palette mode "stored": opts.quantizer, or k-means (seeded by median cut)
 * when it is -1. */
static inline apd_quantizer apd__distill_stored_quantizer(const apd_distill_opts *o)
{
    return o->quantizer >= 0 ? (apd_quantizer)o->quantizer : APD_QUANT_KMEANS;
}

#endif
