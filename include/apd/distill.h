/* apd/distill.h: dataset distillation (random real subset, distribution matching (DM),
 * AutoPalette = DM + palette network) and colour-guided initialisation (graph-cut selection).
 *
 * Overview (docs/method.md has the method). apd_distill_run takes a real dataset in
 * memory (uint8 CHW, apd/dataset.h) and options, and returns the synthetic set as records
 * ready for the writer: direct-colour images (random, dm) or palette records (autopalette:
 * per-image palette of at most K colours + index map, the hard quantization that is stored
 * and evaluated). The caller writes them (apd-convert does, with the provenance JSON that
 * apd_distill_run also returns).
 *
 *     apd_distill_opts o;
 *     apd_distill_opts_default(&o);
 *     o.method = APD_DISTILL_AUTOPALETTE; o.ipc = 10; o.colors = 16; o.iters = 200;
 *     apd_distill_result res;
 *     apd_err err;
 *     if (apd_distill_run(&real, &o, &res, &err) != APD_OK) fprintf(stderr, "%s\n", err.msg);
 *     for (uint64_t i = 0; i < res.n; i++) ... res.palettes + i * res.k * res.c ...
 *     apd_distill_result_free(&res);
 *
 * Determinism: the same real dataset, options and thread count give byte-identical
 * results. Every random draw (network inits, DSA, real batches, colour-loss subsets,
 * selection) is derived from opts.seed and the iteration number, so a run resumed from a
 * checkpoint (opts.resume_path) ends with the same bytes as an uninterrupted run.
 *
 * Thread safety: functions work on caller-owned data; apd_distill_run uses up to
 * opts.threads threads internally (OpenBLAS) and must not run concurrently with another
 * call that changes the OpenBLAS thread count.
 */
#ifndef APD_DISTILL_H
#define APD_DISTILL_H

#include "apd/budget.h"
#include "apd/dataset.h"
#include "apd/format.h" /* APD_KIND_*, the writer */
#include "apd/palette.h" /* apd_palette_input */
#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum apd_distill_method {
    APD_DISTILL_RANDOM = 0,      /* N random real images per class, direct colour */
    APD_DISTILL_DM = 1,          /* vanilla distribution matching, direct colour */
    APD_DISTILL_AUTOPALETTE = 2  /* DM + palette network, palette records */
} apd_distill_method;

typedef enum apd_distill_init {
    APD_INIT_RANDOM = 0,   /* random real images of each class */
    APD_INIT_GRAPHCUT = 1, /* colour-guided: median cut + trained ConvNetD3 + graph cut */
    /* colour-guided herding: per class, greedily the real images whose K-colour versions
     * (median cut) bring the mean embedding of the picks closest to the class's mean
     * full-colour embedding, over herd_nets random ConvNets (the DM loop's networks): the
     * real subset with the lowest DM loss as stored */
    APD_INIT_HERDING = 2
} apd_distill_init;

/* Remedies against palette collapse under the DM loss (docs/method.md "Known pitfall"),
 * a bit mask (combinations allowed; 0 = as published). */
#define APD_REMEDY_WARMUP 1u      /* palette-net warm-up (soft reconstruction + colour losses) */
#define APD_REMEDY_TASK_SCALE 2u  /* scale the task gradient that reaches the palette net */
#define APD_REMEDY_TEMPERATURE 4u /* softmax temperature schedule temp_start -> temp_end */
#define APD_REMEDY_STRAIGHT 8u    /* straight-through: the task loss sees the hard quantization */
#define APD_REMEDY_KMEANS_INIT 16u /* start the palette net at a k-means partition of the
                                      initial images' colours (apd_palette_net_init_kmeans) */

/* Where AutoPalette's palettes come from (opts.palette_mode). */
typedef enum apd_palette_mode {
    /* the published palette network: one per-pixel MLP of colour shared by every image, the
     * task loss on its soft quantization, colour losses, collapse remedies (opts.remedy);
     * stored: its argmax map + per-image bucket means */
    APD_PALETTE_NETWORK = 0,
    /* per-image palettes fitted to each synthetic image by a classical quantizer
     * (opts.quantizer; -1 = k-means seeded by median cut) at every iteration: the DM loss is
     * computed on exactly the images that will be stored (palette + index map, 8-bit; a
     * pixel beyond the 8-bit range as opts.loss_range says), and
     * its gradient passes straight through the quantizer to the pixels, so the pixels (and
     * with them each image's palette, the means of its buckets) are optimised for their K
     * colours. No palette network, no colour losses. */
    APD_PALETTE_STORED = 1
} apd_palette_mode;

/* The pixel learning rate of the DM loop (opts.lr_img_rule). The DM loss matches class means
 * of embeddings, so each synthetic image's gradient shrinks as 1/(images per class): a budget
 * that buys 11x more images (K 4) makes every image move 11x less per iteration. */
typedef enum apd_lr_rule {
    APD_LR_AUTO = 0,  /* count for autopalette with stored palettes, fixed otherwise */
    APD_LR_FIXED = 1, /* lr_img as given */
    APD_LR_COUNT = 2  /* lr_img x images per class / ipc: each image steps as in DM at the nominal IPC */
} apd_lr_rule;

/* What the DM loop does with pixels that leave the range a record can store (opts.pixel_range).
 * Every stored image is 8-bit: a pixel stepped past 0 or 255 stores as 0 or 255. With the loss
 * on the stored images (palette_mode stored) its straight-through gradient keeps pushing such a
 * pixel without changing what is stored, so the float image drifts away from the record. */
typedef enum apd_pixel_range {
    APD_PIXELS_AUTO = 0,  /* free (see docs/distill.md for the measurement) */
    APD_PIXELS_FREE = 1,  /* no bound (DM as published) */
    APD_PIXELS_CLAMP = 2  /* after every step, each pixel is projected onto the 8-bit range */
} apd_pixel_range;

/* What the DM loss sees of a pixel beyond the 8-bit range, palette mode stored
 * (opts.loss_range). A record stores it at 0 or 255. */
typedef enum apd_loss_range {
    APD_LOSS_RANGE_AUTO = 0,   /* float (docs/distill.md has the measurement) */
    APD_LOSS_RANGE_STORED = 1, /* its stored value: the loss sees Q(clip(x)) */
    APD_LOSS_RANGE_FLOAT = 2,  /* its float value, as DM's loss does: Q(clip(x)) + (x - clip(x)),
                                  so its gradient pulls such a pixel back instead of pushing it on */
    APD_LOSS_RANGE_ANNEAL = 3  /* from float to stored over the run: at iteration t of T the loss
                                  sees Q(clip(x)) + (1 - (t+1)/T) (x - clip(x)), so the last
                                  iteration's loss is computed on exactly what is stored */
} apd_loss_range;

/* Class-parallel runs. Several processes (MPI ranks, say) each call apd_distill_run with
 * the same data, options and thread count, and a comm naming their rank; process r
 * distils only the classes [r*C/size, (r+1)*C/size) of the C classes (ranks beyond C
 * idle). What the classes share travels through `exchange`, so the library links no
 * transport (apd-convert supplies one over MPI): per iteration the per-class losses, and
 * for autopalette the per-class palette-network gradients and the colour-loss subset;
 * once the graph-cut picks, the final images and, at checkpoints, the state. Every rank
 * returns the same result, byte for byte the single-process one: per-class draws derive
 * from (seed, iteration, class), and shared sums run in class order everywhere. Rank 0
 * alone writes checkpoints and reads the one it resumes from (sent to the others), in the
 * single-process format, so a run may resume on another number of processes.
 *
 * exchange: a collective; every rank calls it in the same order with the same offsets
 * (size + 1 ascending byte offsets into buf). On entry buf[offsets[rank], offsets[rank+1])
 * holds this rank's part; on return every part holds its owner's bytes on every rank.
 * Return 0 on success, non-zero on a transport failure (the run then fails with APD_EIO). */
typedef struct apd_distill_comm {
    uint32_t rank, size; /* this process, and how many (size 0 or 1: not split) */
    int (*exchange)(void *user, void *buf, const uint64_t *offsets);
    void *user;          /* passed to exchange */
} apd_distill_comm;

typedef struct apd_distill_opts {
    apd_distill_method method;   /* default APD_DISTILL_AUTOPALETTE */
    apd_distill_init init;       /* used if init_set; else apd_distill_init_in_effect decides */
    int init_set;                /* 0 = choose init by method (apd_distill_init_in_effect) */
    uint32_t ipc;                /* nominal images per class (10) */
    uint32_t colors;             /* K (16); ignored by random/dm except for the budget */
    apd_budget_rule budget;      /* APD_BUDGET_BITS */
    uint32_t images_per_class;   /* 0 = from the budget rule; else forces the count (the bytes
                                    rule still trims it until the records fit) */
    const char *scratch_dir;     /* bytes budget: directory for its short-lived measuring files
                                    (NULL: $TMPDIR, else /tmp) */
    int quantizer;               /* -1 (default): none. Else an apd_quantizer (apd/quant.h):
                                    random/dm store their images quantized to K colours by it
                                    as palette records, the count following the budget rule
                                    (baselines "median-cut random real", "DM + median cut") */
    uint32_t iters;              /* DM iterations (CPU default 200; reference 20000) */
    uint32_t batch_real;         /* real images per class per iteration (64; reference 256) */
    float lr_img, momentum_img;  /* 1, 0.5 */
    apd_lr_rule lr_img_rule;     /* APD_LR_AUTO */
    apd_pixel_range pixel_range; /* APD_PIXELS_AUTO */
    apd_loss_range loss_range;   /* APD_LOSS_RANGE_AUTO */
    /* palette mode stored: the share of the iterations over which the DM loss moves from the
     * float images to the stored ones. Iteration t (from 0) of T sees (1 - a) x + a Q(x), with
     * a = min(1, (t + 1) / (anneal T)); the gradient still passes straight through Q. 0 (the
     * default): the stored images from the first iteration. In [0, 1]. */
    float anneal;
    float lr_palette, momentum_palette, wd_palette; /* 0.05, 0.5, 5e-4 */
    float w_max, w_balance, w_align, w_conf;        /* 1, 1, 3, 0 */
    uint32_t color_subset;       /* synthetic images for the colour losses (64) */
    float align_ratio;           /* La pixel sample ratio (0.3) */
    apd_palette_mode palette_mode; /* autopalette: where the palettes come from (default chosen
                                    by measurement, docs/distill.md) */
    apd_palette_input palette_input; /* palette network: what it sees of a pixel, its colour
                                    (ABSOLUTE, default, as published) or its colour normalised
                                    by its image's per-channel mean and std (IMAGE_NORM) */
    uint32_t remedy;             /* APD_REMEDY_* mask; default chosen by measurement */
    uint32_t warmup_steps;       /* WARMUP: palette-only steps before joint training */
    float task_scale;            /* TASK_SCALE: factor on the task gradient into the palette net */
    float temp_start, temp_end;  /* TEMPERATURE: softmax temperature, linear over the iters */
    uint32_t select_epochs;      /* selection ConvNetD3 epochs (2; reference 50) */
    uint32_t select_batch;       /* 128 */
    float select_lr, select_momentum, select_wd; /* 0.1, 0.9, 5e-4 */
    uint64_t select_limit;       /* images per class used to train the selection net (0 = all) */
    double gc_lambda, gc_epsilon;/* 1, 0.9 */
    uint32_t herd_nets;          /* herding init: random ConvNets whose embeddings it matches (4) */
    uint64_t herd_limit;         /* herding init: candidates per class, a seeded random subset
                                    (512; 0 = all images of the class) */
    uint32_t dsa_strategy;       /* apd_dsa mask; default all six ops */
    int dsa_align_corners;       /* 0 */
    /* IDM-style model sampling (Zhao et al., CVPR 2023; docs/distill.md "Directions tried"):
     * instead of a fresh random ConvNet per iteration, the DM loss of iteration it uses a
     * network drawn from a queue of partly trained ones. The queue gets a fresh network every
     * net_pool_every iterations (from iteration 0), the oldest leaving when it holds net_pool;
     * after each iteration's image step one queued network, drawn at random, takes
     * net_pool_steps SGD steps (lr 0.01, momentum 0.9, weight decay 5e-4, the evaluation's
     * settings) of softmax cross-entropy on real batches of net_pool_batch images of all
     * classes (no augmentation). Every draw derives from (seed, iteration), the queue is part
     * of the checkpoint, and in a class-parallel run every process keeps the same queue. */
#define APD_DISTILL_MAX_NET_POOL 1024u       /* net_pool limit (1.3 MB x 2 each at 32 px) */
#define APD_DISTILL_MAX_NET_POOL_STEPS 10000u /* net_pool_steps limit */
    uint32_t net_pool;           /* networks in the queue; 0 (default) = off, a fresh network per
                                    iteration (the other net_pool_* fields are then unused) */
    uint32_t net_pool_every;     /* iterations between fresh networks (10) */
    uint32_t net_pool_steps;     /* SGD steps per iteration on one queued network (4) */
    uint32_t net_pool_batch;     /* real images per SGD step (64) */
    /* A class-aware term (IDM's regulariser, with one network trained once): the DM loss of
     * each class gets ce_weight x the mean softmax cross-entropy, for its own class, of its
     * synthetic images (as the DM loss sees them: augmented, and for stored palettes as stored)
     * under a ConvNet trained before the loop from a fresh init for ce_teacher_steps SGD steps,
     * each on APD_DISTILL_CE_BATCH real images drawn with replacement from the whole source
     * (the network queue's optimizer; no augmentation). The DM loss matches means of random
     * features; this term pulls each image toward what a trained network takes for its class.
     * The teacher is trained again, identically, on resume and on every process of a
     * class-parallel run. On by default for AutoPalette with stored palettes (docs/distill.md
     * has the measurement); the published configuration (palette network) and DM leave it off. */
#define APD_DISTILL_CE_BATCH 64u
#define APD_DISTILL_CE_WEIGHT 10.0f        /* the weight in effect by default (stored palettes) */
#define APD_DISTILL_CE_TEACHER_STEPS 300u  /* the teacher's steps by default, at most two passes */
    float ce_weight;             /* < 0 (default) = by method, apd_distill_ce_weight_in_effect;
                                    0 = off */
    uint32_t ce_teacher_steps;   /* 0 (default) = apd_distill_ce_teacher_steps_in_effect:
                                    APD_DISTILL_CE_TEACHER_STEPS, or fewer if two passes over the
                                    real images take fewer; at most APD_DISTILL_MAX_NET_POOL_STEPS */
    uint32_t depth;              /* ConvNet depth of the DM loop and the selection net; 0 (default)
                                    = by resolution (apd_convnet_default_depth: 3 at 28/32 px,
                                    4 at 64 px, 5 at 128 px) */
    uint64_t act_budget;         /* bytes of ConvNet activations to plan for (0 = the default
                                    APD_CONVNET_ACT_BUDGET of apd/nn.h, 512 MiB): larger real
                                    batches are embedded in chunks, larger synthetic sets and
                                    selection batches run as several passes (same result up to
                                    float rounding) */
    uint64_t seed;               /* 0 */
    uint32_t threads;            /* 0 = 2 */
    uint32_t checkpoint_every;   /* 0 = never */
    const char *checkpoint_path; /* where checkpoints go (required if checkpoint_every) */
    const char *resume_path;     /* resume from this checkpoint (NULL = fresh run) */
    const apd_distill_comm *comm;/* class-parallel run (see above); NULL = one process */
    uint32_t log_every;          /* a status line to log_fn every N iterations (0 = never) */
    apd_log_fn log_fn;           /* status lines (NULL = none); see apd/status.h */
    apd_progress_fn progress_fn; /* progress of each phase (NULL = none): "select-net" (batches
                                    of the selection network), "herding" (classes), "teacher"
                                    (SGD steps of the class-aware term's network), "distill"
                                    (iterations) */
    void *cb_user;               /* passed to log_fn and progress_fn */
    uint32_t stop_after;         /* testing: stop (as if killed) after this iteration (0 = no) */
} apd_distill_opts;

/* Every field to its default (the values in the comments above). */
APD_API void apd_distill_opts_default(apd_distill_opts *o);

/* Parse helpers for the CLI (budget rules: apd_budget_rule_from_name in apd/budget.h).
 * "random|dm|autopalette". @return APD_OK; APD_EINVAL (NULL s, unknown name; *out untouched). */
APD_API apd_status apd_distill_method_from_name(const char *s, apd_distill_method *out);
/* "random|graphcut|graph-cut|herding". @return APD_OK; APD_EINVAL (NULL s, unknown name; *out
 * untouched). */
APD_API apd_status apd_distill_init_from_name(const char *s, apd_distill_init *out);
/* "none" (or "") or a comma/plus-separated list of "kmeans-init", "warmup", "task-scale",
 * "temperature", "straight-through" -> APD_REMEDY_* mask.
 * @return APD_OK; APD_EINVAL (NULL s or out, unknown name, longer than 127 characters;
 *         *out untouched). */
/* The init a run with these options uses: o->init if o->init_set, else graph cut for
 * autopalette with the palette network (the published method) and random otherwise (random
 * init measured at least as good as the CPU-sized graph cut, results/RESULTS.md). */
APD_API apd_distill_init apd_distill_init_in_effect(const apd_distill_opts *o);
/* The class-aware term's weight in effect: opts.ce_weight if >= 0 (or not a number, which
 * apd_distill_run refuses), else APD_DISTILL_CE_WEIGHT for AutoPalette with stored palettes and
 * 0 (off) for the other methods and palette modes. */
APD_API float apd_distill_ce_weight_in_effect(const apd_distill_opts *o);
/* The teacher's SGD steps in effect for a source of n_real images: opts.ce_teacher_steps if
 * set, else min(APD_DISTILL_CE_TEACHER_STEPS, ceil(2 n_real / APD_DISTILL_CE_BATCH)): a small
 * source (a test sample, a folder of a few images per class) gets a teacher trained two
 * passes over it, not 300 steps of the same images again. */
APD_API uint32_t apd_distill_ce_teacher_steps_in_effect(const apd_distill_opts *o, uint64_t n_real);
/* "auto" | "fixed" | "count" -> *out. @return APD_OK; APD_EINVAL (NULL, unknown). */
APD_API apd_status apd_lr_rule_from_name(const char *s, apd_lr_rule *out);
APD_API const char *apd_lr_rule_name(apd_lr_rule r); /* "auto", "fixed", "count"; "?" */
APD_API apd_status apd_pixel_range_from_name(const char *s, apd_pixel_range *out);
APD_API const char *apd_pixel_range_name(apd_pixel_range r); /* "auto", "free", "clamp"; "?" */
APD_API apd_status apd_loss_range_from_name(const char *s, apd_loss_range *out);
APD_API const char *apd_loss_range_name(apd_loss_range r); /* "auto", "stored", "float", "anneal"; "?" */
/* "network" | "stored" -> *out. @return APD_OK; APD_EINVAL (NULL, unknown; *out untouched). */
APD_API apd_status apd_palette_mode_from_name(const char *s, apd_palette_mode *out);
/* The name of a palette mode ("network", "stored"; "?" if unknown). */
APD_API const char *apd_palette_mode_name(apd_palette_mode m);
APD_API apd_status apd_palette_remedy_from_name(const char *s, uint32_t *out);
/* "absolute" | "image-norm" -> *out. @return APD_OK; APD_EINVAL (NULL, unknown; *out untouched). */
APD_API apd_status apd_palette_input_from_name(const char *s, apd_palette_input *out);
/* The name of a palette-network input ("absolute", "image-norm"; "?" if unknown). */
APD_API const char *apd_palette_input_name(apd_palette_input v);
/* Static name of a method ("?" if unknown); never NULL. */
APD_API const char *apd_distill_method_name(apd_distill_method m);
/* Canonical text of a remedy mask into buf ("none", "warmup+task-scale", ...); returns buf
 * ("" if buf is NULL or len 0). */
APD_API const char *apd_palette_remedy_name(uint32_t mask, char *buf, size_t len);

typedef struct apd_distill_result {
    uint64_t n;                /* synthetic images (images_per_class * n_classes) */
    uint32_t c, h, w, n_classes;
    uint32_t kind;             /* APD_KIND_PALETTE or APD_KIND_DIRECT (apd/format.h) */
    uint32_t k;                /* palette: max colours; direct: 0 */
    uint8_t *pixels;           /* direct: n * c*h*w, CHW */
    uint8_t *palettes;         /* palette: n * k*c, entry-major, unused entries 0 */
    uint32_t *k_used;          /* palette: n, colours used (indices < k_used) */
    uint8_t *indices;          /* palette: n * h*w */
    uint32_t *labels;          /* n */
    uint64_t *source_ids;      /* n: index of the initialising real image */
    uint64_t images_per_class;
    float mean[3], std[3];     /* normalisation used (pixels/255) */
    char *hyperparameters_json;/* {...}: every option and derived value */
    char *budget_json;         /* {...}: rule, ipc, k, images_per_class, bytes_per_image ... */
    char *stats_json;          /* {...}: losses first/last, colours used, timings */
} apd_distill_result;

/* Run the distillation. real: the training set (all classes present; labels < n_classes).
 * res is filled on success (free with apd_distill_result_free) and zeroed on failure.
 * Status lines and progress go to opts.log_fn / opts.progress_fn only; the library never
 * prints.
 * @return APD_OK; APD_EINVAL (NULL, empty or non-1/3-channel dataset, bad option, e.g. K
 *         outside 2..APD_MAX_COLORS, a label >= n_classes, a class with fewer images than
 *         needed, images not square or under 8x8 for dm/autopalette); APD_ENOMEM;
 *         APD_EOVERFLOW; APD_EIO / APD_ENOENT / APD_EACCES (checkpoint files; APD_EIO
 *         also for a failed opts.comm exchange); with opts.comm, a failure on one rank is
 *         returned by every rank, with that rank's message;
 *         APD_EMAGIC / APD_ETRUNC (not a checkpoint, truncated checkpoint);
 *         APD_EMISMATCH (checkpoint from other options, data or thread count);
 *         APD_ENUMERIC (loss diverged); APD_ECANCELED (opts.stop_after reached: a checkpoint
 *         was written, res is empty); errors of apd/quant.h (quantizer). */
APD_API apd_status apd_distill_run(const apd_dataset *real, const apd_distill_opts *o,
                                   apd_distill_result *res, apd_err *err);
/* Free the arrays and strings of res and zero it; NULL and zeroed results are fine. */
APD_API void apd_distill_result_free(apd_distill_result *res);

/* ---- real-image sources ------------------------------------------------------------------
 *
 * apd_distill_run takes the real images as an in-memory dataset. apd_distill_run_source
 * takes them from a source instead: an in-memory dataset (borrowed) or an .apd file
 * (quantized or direct) read through the reader, so that, e.g., a converted ImageNet subset
 * can be distilled without its JPEG folder and without holding it in memory. A source keeps
 * only a per-class index of record ids (plus labels and source ids, 16 bytes a record); the
 * images of a real batch are decoded on demand, so the peak memory of a distillation is the
 * real batches and the synthetic set, not the source (docs/distill.md has the measurement).
 * Both kinds give the same real batches for the same seed: distilling an .apd file holding
 * exactly a dataset's pixels (a direct file, or the same mean/std) gives the same bytes as
 * distilling that dataset in memory.
 *
 *     apd_distill_source *src;
 *     if (apd_distill_source_open_apd(&src, "imagenette-k64.apd", &err) != APD_OK) ...err.msg...
 *     apd_dataset desc;                         // labels, names, normalisation; no pixels
 *     apd_distill_source_describe(src, &desc, &err);
 *     apd_distill_run_source(src, &o, &res, &err);
 *     ... apd_distill_write(w, &res, &desc, seed, "autopalette") ...
 *     apd_dataset_free(&desc); apd_distill_result_free(&res); apd_distill_source_free(src);
 *
 * Thread safety: a source is used by one call at a time. */
typedef struct apd_distill_source apd_distill_source;

/* A source over an in-memory dataset, which is borrowed (it must outlive the source and not
 * change). The normalisation is apd_dataset_mean_std of its pixels, as apd_distill_run's.
 * @return APD_OK; APD_EINVAL (NULL, empty or non-1/3-channel dataset, n_classes 0, a label
 *         >= n_classes, naming the image); APD_ENOMEM. On failure *out is NULL. */
APD_API apd_status apd_distill_source_from_dataset(apd_distill_source **out, const apd_dataset *real,
                                                   apd_err *err);
/* A source over the .apd file at path (palette or direct records). Opening reads every
 * record once, without keeping its pixels: the labels, the source ids, the content hash
 * (apd_dataset_hash of the decoded images, so it equals the hash of the same images
 * imported in memory) and the checksum of every record, so a damaged record is an error
 * here, not hours into a run. The normalisation is the mean/std the file records (when it
 * records none, the mean/std of its decoded pixels, computed in the same pass).
 * @return APD_OK; the codes of apd_reader_open and apd_reader_decode (the message names
 *         the file and record); APD_EDATASET (no classes, a class without records, no
 *         records, a label >= n_classes: the message names the file and the class);
 *         APD_ENOMEM. On failure *out is NULL. */
APD_API apd_status apd_distill_source_open_apd(apd_distill_source **out, const char *path, apd_err *err);
/* NULL ok. Closes an .apd source's reader. */
APD_API void apd_distill_source_free(apd_distill_source *src);
/* The source as a dataset WITHOUT pixels (pixels NULL), for the writer and the provenance:
 * n, geometry, labels, source ids (an .apd source: the records' source ids, else the record
 * index; so synthetic records name the image of the original dataset), n_classes, class
 * names, name, split, source (an .apd source: "apd:PATH"), and the normalisation as
 * has_norm/norm_mean/norm_std. out must be zeroed; free with apd_dataset_free. Do not pass
 * it to calls that read pixels (apd_dataset_hash: use apd_distill_source_hash).
 * @return APD_OK; APD_EINVAL (NULL); APD_ENOMEM. */
APD_API apd_status apd_distill_source_describe(const apd_distill_source *src, apd_dataset *out, apd_err *err);
/* apd_dataset_hash of the source's images and labels (16 hex digits + NUL). An .apd source
 * computed it when it was opened; an in-memory source hashes its dataset on the first call. */
APD_API void apd_distill_source_hash(apd_distill_source *src, char out_hex[17]);
/* Records of class cls in the source (0 if out of range). */
APD_API uint64_t apd_distill_source_class_count(const apd_distill_source *src, uint32_t cls);
/* apd_distill_run over a source: the same contract, options and codes, plus the reader's
 * codes when a record fails to decode during the run (the message names file and record). */
APD_API apd_status apd_distill_run_source(apd_distill_source *src, const apd_distill_opts *o,
                                          apd_distill_result *res, apd_err *err);

/* Writing the result (apd/format.h). apd_distill_writer_opts fills *wo (defaults plus the
 * geometry, record kind, K, classes and normalisation of the result; class names from real
 * if it has them). apd_distill_write appends every record (source id = the initialising real
 * image) and sets the provenance keys "method" (method_name), "seed", "source" (name, split,
 * spec, n, hash, counts of `real`), "hyperparameters", "budget" and "distill_stats". The
 * caller creates and closes the writer and sets "tool_version" and "command_line". With
 * method_name NULL, "method", "seed" and "source" are left to the caller (apd-convert sets
 * them for every method). Source ids map through real->source_ids when real has them. */
APD_API void apd_distill_writer_opts(apd_writer_opts *wo, const apd_distill_result *res,
                                     const apd_dataset *real);
/* @return APD_OK; APD_EINVAL (NULL w or res); APD_ENOMEM; or the writer's error from
 *         apd_writer_put_palette / apd_writer_put_direct / apd_writer_set_meta
 *         (apd/format.h; apd_writer_errmsg has the message). */
APD_API apd_status apd_distill_write(apd_writer *w, const apd_distill_result *res,
                                     const apd_dataset *real, uint64_t seed,
                                     const char *method_name);

/* Select `budget` of the n items of one class (features row-major n x d floats) by graph-cut
 * stochastic greedy: similarity s = 0.5 + 0.5 cos, gain(c) = lambda * sum_{j in V} s(j,c)
 * - 2 * sum_{k in S} s(k,c), r = max(round(-ln(epsilon) n / budget), 1) candidates drawn per
 * step without replacement. The reference setting is lambda = 1, epsilon = 0.9. out_idx
 * receives `budget` distinct indices in selection order. Deterministic for a given seed.
 * @return APD_OK, APD_EINVAL (budget 0 or > n, epsilon outside (0,1), NULL), APD_ENOMEM,
 *         APD_EOVERFLOW, APD_ENUMERIC (non-finite feature). */
APD_API apd_status apd_graphcut_select(const float *feat, uint64_t n, uint32_t d, uint64_t budget,
                                       double lambda, double epsilon, uint64_t seed,
                                       uint64_t *out_idx, apd_err *err);

#ifdef __cplusplus
}
#endif
#endif
