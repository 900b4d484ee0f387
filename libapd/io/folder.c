/* io/folder.c: the image-folder importer. Three layouts, told apart by their marker files:
 *
 *     DIR/labels.csv                 an apd-export folder (folder_layouts.c): the labels,
 *                                    class names and mean/std it states are used as they are
 *     DIR/wnids.txt                  Tiny-ImageNet (folder_layouts.c)
 *     DIR/[train|test|val/]<class>/<file>.png|.jpg|.jpeg   class folders (here): ImageNet,
 *                                    ImageNette, torchvision ImageFolder trees
 *
 * Class folders: determinism: class folders and files are sorted by byte order (strcmp), so
 * the same tree gives the same dataset on every machine; labels are class positions in that
 * order (torchvision's ImageFolder order) and source ids are positions in the sorted file
 * list. Hidden entries (".*") are ignored; files with other extensions and sub-folders
 * inside a class folder are skipped with one warning per class; a class folder without
 * images is kept (its id stays stable) with a warning.
 *
 * Every layout fills an apd__flist; then, shared: (1) a limit keeps a class-balanced subset
 * (select_images); (2) every kept file's header is probed, so that size mismatches are
 * reported before anything is decoded and the channel count is known (grey only when every
 * file is grey, unless the layout states it); (3) each file is decoded straight into the
 * dataset (through the resize + centre crop when opts->size is set). A file with an image
 * extension that fails to decode is an error (APD_EIMAGE) naming it.
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io_internal.h"

typedef struct str_list {
    char **v;
    size_t n, cap;
} str_list;

static int list_push(str_list *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **nv = realloc(l->v, cap * sizeof(char *));
        if (!nv) return 0;
        l->v = nv;
        l->cap = cap;
    }
    size_t len = strlen(s);
    char *d = malloc(len + 1);
    if (!d) return 0;
    memcpy(d, s, len + 1);
    l->v[l->n++] = d;
    return 1;
}

static void list_free(str_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* out = a/b; 0 when it does not fit (callers report "path too long"). */
static int join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n >= 0 && (size_t)n < cap;
}

/* Entries of dir (not hidden), split into sub-directories and regular files, sorted. */
static apd_status list_dir(const char *dir, str_list *dirs, str_list *files, apd_err *err)
{
    DIR *d = opendir(dir);
    if (!d) return apd__err_sys(err, errno, dir, "cannot open folder");
    struct dirent *e;
    char path[APD_IO_PATH];
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (!join(path, sizeof path, dir, e->d_name)) continue;
        struct stat st;
        if (stat(path, &st) != 0) continue; /* dangling link: ignore */
        str_list *l = S_ISDIR(st.st_mode) ? dirs : S_ISREG(st.st_mode) ? files : NULL;
        if (l && !list_push(l, e->d_name)) {
            closedir(d);
            return apd__err_set(err, APD_ENOMEM, "%s: out of memory", dir);
        }
    }
    closedir(d);
    if (dirs && dirs->n) qsort(dirs->v, dirs->n, sizeof(char *), cmp_str);
    if (files && files->n) qsort(files->v, files->n, sizeof(char *), cmp_str);
    return APD_OK;
}

/* ---- the file list -------------------------------------------------------------------------- */

apd_status apd__flist_push(apd__flist *fl, const char *path, uint32_t label, uint64_t src)
{
    if (fl->n == fl->cap) {
        size_t cap = fl->cap ? fl->cap * 2 : 256;
        char **np = realloc(fl->paths, cap * sizeof *np);
        if (np) fl->paths = np;
        uint32_t *nl = np ? realloc(fl->labels, cap * sizeof *nl) : NULL;
        if (nl) fl->labels = nl;
        uint64_t *ns = nl ? realloc(fl->src, cap * sizeof *ns) : NULL;
        if (!ns) return APD_ENOMEM;
        fl->src = ns;
        fl->cap = cap;
    }
    size_t len = strlen(path);
    char *d = malloc(len + 1);
    if (!d) return APD_ENOMEM;
    memcpy(d, path, len + 1);
    fl->paths[fl->n] = d;
    fl->labels[fl->n] = label;
    fl->src[fl->n] = src;
    fl->n++;
    return APD_OK;
}

void apd__flist_free(apd__flist *fl)
{
    for (size_t i = 0; i < fl->n; i++) free(fl->paths[i]);
    free(fl->paths);
    free(fl->labels);
    free(fl->src);
    free(fl->names);
    free(fl->soft);
    free(fl->soft_stored);
    memset(fl, 0, sizeof *fl);
}

apd_status apd__flist_add_folder(apd__flist *fl, const char *dir, uint32_t label, const char *cls,
                                 const apd_import_opts *o, apd_err *err)
{
    str_list files = {0}, subdirs = {0};
    apd_status s = list_dir(dir, &subdirs, &files, err);
    size_t used = 0, skipped = 0;
    const char *first_skip = NULL;
    for (size_t j = 0; s == APD_OK && j < files.n; j++) {
        if (!apd__has_image_ext(files.v[j])) {
            if (!skipped++) first_skip = files.v[j];
            continue;
        }
        char fp[APD_IO_PATH];
        if (!join(fp, sizeof fp, dir, files.v[j])) {
            apd__io_warn(o, "%s/%s: path too long, skipped", dir, files.v[j]);
            continue;
        }
        if (apd__flist_push(fl, fp, label, fl->n) != APD_OK) s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", dir);
        else used++;
    }
    if (s == APD_OK) {
        if (skipped)
            apd__io_warn(o, "%s: skipped %zu file%s without a .png/.jpg/.jpeg extension (e.g. %s)", dir, skipped,
                         skipped == 1 ? "" : "s", first_skip);
        if (subdirs.n)
            apd__io_warn(o, "%s: ignored %zu sub-folder%s (e.g. %s)", dir, subdirs.n, subdirs.n == 1 ? "" : "s",
                         subdirs.v[0]);
        if (!used) apd__io_warn(o, "%s: class '%s' has no images", dir, cls);
    }
    list_free(&files);
    list_free(&subdirs);
    return s;
}

/* ---- layout: class folders ------------------------------------------------------------------ */

/* The folder whose sub-folders are the classes: DIR itself, or DIR/train | DIR/test | DIR/val
 * when DIR has any of them (then the split names one, default train). A folder without split
 * sub-folders is one set: a test or val split of it is an error. */
static apd_status resolve_root(const char *dir, const char *split, char root[APD_IO_PATH],
                               char use_split[16], apd_err *err)
{
    static const char *const splits[3] = {"train", "test", "val"};
    char sub[3][APD_IO_PATH];
    int any = 0;
    use_split[0] = '\0';
    for (int i = 0; i < 3; i++) {
        if (!join(sub[i], sizeof sub[i], dir, splits[i])) return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
        any |= apd__is_dir(sub[i]);
    }
    if (any) {
        const char *want = split ? split : "train";
        for (int i = 0; i < 3; i++)
            if (!strcmp(want, splits[i])) {
                if (!apd__is_dir(sub[i])) return apd__err_set(err, APD_EDATASET, "%s: has no %s/ sub-folder", dir, want);
                memcpy(root, sub[i], strlen(sub[i]) + 1);
                snprintf(use_split, 16, "%s", want);
            }
        return APD_OK;
    }
    if (split && strcmp(split, "train"))
        return apd__err_set(err, APD_EDATASET, "%s: has no train/, test/ or val/ sub-folders, so there is no %s split",
                            dir, split);
    if (strlen(dir) >= APD_IO_PATH) return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    memcpy(root, dir, strlen(dir) + 1);
    return APD_OK;
}

/* Class folders of root (sorted) and every image file in them; names = folder names. */
static apd_status collect_class_folders(apd__flist *fl, const char *dir, const char *split,
                                        const apd_import_opts *o, apd_err *err)
{
    char root[APD_IO_PATH];
    APD_TRY(resolve_root(dir, split, root, fl->split, err));
    str_list classes = {0};
    apd_status s = list_dir(root, &classes, NULL, err);
    if (s == APD_OK && !classes.n)
        s = apd__err_set(err, APD_EEMPTY, "%s: no class sub-folders (expected %s/<class>/*.png|jpg|jpeg)", root, root);
    if (s == APD_OK && classes.n > UINT32_MAX / 2) s = apd__err_set(err, APD_ELIMIT, "%s: too many classes", root);
    if (s == APD_OK && !(fl->names = calloc(classes.n, APD_MAX_CLASS_NAME)))
        s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
    for (size_t ci = 0; s == APD_OK && ci < classes.n; ci++) {
        if (apd__set_class_name(fl->names[ci], classes.v[ci], strlen(classes.v[ci])))
            apd__io_warn(o, "%s/%s: class name cut to '%s' (at most %d bytes)", root, classes.v[ci], fl->names[ci],
                         APD_MAX_CLASS_NAME - 1);
        char cdir[APD_IO_PATH];
        if (!join(cdir, sizeof cdir, root, classes.v[ci])) s = apd__err_set(err, APD_ELIMIT, "%s/%s: path too long", root, classes.v[ci]);
        else s = apd__flist_add_folder(fl, cdir, (uint32_t)ci, classes.v[ci], o, err);
    }
    fl->n_classes = (uint32_t)classes.n;
    if (s == APD_OK) s = apd__check_unique_names(fl->names, fl->n_classes, root, err);
    if (s == APD_OK && !fl->n)
        s = apd__err_set(err, APD_EEMPTY, "%s: no images (.png/.jpg/.jpeg) in %zu class folder%s", root, classes.n,
                         classes.n == 1 ? "" : "s");
    list_free(&classes);
    return s;
}

/* ---- shared: selection, probing, decoding --------------------------------------------------- */

/* The images to keep, in list order: all, or with a limit below the count a class-balanced
 * subset: every class gets min(its count, L) images for the largest level L that fits, the
 * rest of the limit one more each to the first classes (label order) that have more; within
 * a class its first images in list order. Class-sorted sources (every folder layout) would
 * otherwise give the first classes only. */
static apd_status select_images(const apd__flist *fl, uint64_t limit, uint64_t **sel, uint64_t *nsel, apd_err *err)
{
    uint64_t n = fl->n, nc = fl->n_classes ? fl->n_classes : 1;
    uint64_t *have = calloc(nc, sizeof *have), *quota = calloc(nc, sizeof *quota);
    *sel = malloc((n ? n : 1) * sizeof **sel);
    if (!have || !quota || !*sel) {
        free(have);
        free(quota);
        free(*sel);
        *sel = NULL;
        return apd__err_set(err, APD_ENOMEM, "out of memory");
    }
    uint64_t maxc = 0;
    for (uint64_t i = 0; i < n; i++) have[fl->labels[i]]++;
    for (uint32_t c = 0; c < fl->n_classes; c++) {
        maxc = have[c] > maxc ? have[c] : maxc;
        quota[c] = have[c];
    }
    if (limit && limit < n) {
        uint64_t lo = 0, hi = maxc; /* the largest level L with sum min(have, L) <= limit */
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo + 1) / 2, sum = 0;
            for (uint32_t c = 0; c < fl->n_classes; c++) sum += have[c] < mid ? have[c] : mid;
            if (sum <= limit) lo = mid;
            else hi = mid - 1;
        }
        uint64_t left = limit;
        for (uint32_t c = 0; c < fl->n_classes; c++) {
            quota[c] = have[c] < lo ? have[c] : lo;
            left -= quota[c];
        }
        for (uint32_t c = 0; c < fl->n_classes && left; c++)
            if (have[c] > quota[c]) quota[c]++, left--;
    }
    uint64_t k = 0;
    for (uint64_t i = 0; i < n; i++)
        if (quota[fl->labels[i]]) {
            quota[fl->labels[i]]--;
            (*sel)[k++] = i;
        }
    *nsel = k;
    free(have);
    free(quota);
    return APD_OK;
}

/* Probe the headers of the selected files; the channel count (the layout's, else grey only if
 * every file is grey) and the largest sides. Without a resize size every image must match
 * the first one's size (and the size the layout states). */
static apd_status probe_all(const apd__flist *fl, const uint64_t *sel, uint64_t n, const apd_import_opts *o,
                            apd__img_info *info, uint32_t *c, uint32_t *maxh, uint32_t *maxw, apd_err *err)
{
    uint32_t all_grey = 1;
    uint32_t limit_dim = o->size ? APD_IO_MAX_SOURCE_DIM : APD_IO_MAX_DIM;
    *maxh = *maxw = 0;
    const char *p0 = fl->paths[sel[0]];
    for (uint64_t i = 0; i < n; i++) {
        const char *path = fl->paths[sel[i]];
        APD_TRY(apd__image_probe(path, limit_dim, &info[i], err));
        all_grey &= info[i].grey;
        if (fl->c == 1 && !info[i].grey)
            return apd__err_set(err, APD_EMISMATCH, "%s: a colour image, but the folder states grey images", path);
        if (!o->size && (info[i].w != info[0].w || info[i].h != info[0].h))
            return apd__err_set(err, APD_EMISMATCH, "%s: image is %ux%u but %s is %ux%u (give a size to resize and crop)",
                                path, info[i].w, info[i].h, p0, info[0].w, info[0].h);
        if (info[i].h > *maxh) *maxh = info[i].h;
        if (info[i].w > *maxw) *maxw = info[i].w;
    }
    if (!o->size && fl->h && (info[0].h != fl->h || info[0].w != fl->w))
        return apd__err_set(err, APD_EMISMATCH, "%s: image is %ux%u but the folder states %ux%u images", p0, info[0].w,
                            info[0].h, fl->w, fl->h);
    *c = fl->c ? fl->c : all_grey ? 1 : 3;
    return APD_OK;
}

/* Decode the n probed files into out (allocated here), through the resize + centre crop
 * when o->size is set. */
static apd_status decode_all(apd_dataset *out, const char *root, const apd__flist *fl, const uint64_t *sel,
                             uint64_t n, const apd__img_info *info, uint32_t c, uint32_t maxh, uint32_t maxw,
                             const apd_import_opts *o, apd_err *err)
{
    uint32_t H = o->size ? o->size : info[0].h, W = o->size ? o->size : info[0].w;
    apd_status s = apd_dataset_alloc(out, n, c, H, W, fl->n_classes);
    if (s != APD_OK)
        return apd__err_set(err, s, "%s: cannot allocate %llu images of %ux%ux%u", root, (unsigned long long)n, c, H, W);
    uint8_t *tmp = NULL;
    out->source_ids = malloc(sizeof(uint64_t) * n);
    if (o->size) tmp = malloc((size_t)c * maxh * maxw);
    if (fl->soft) { /* n * n_classes floats: the layout's soft labels passed the same check */
        out->soft_labels = malloc(n * fl->n_classes * sizeof *out->soft_labels);
        out->soft_stored = malloc(n ? n : 1);
    }
    if (!out->source_ids || (o->size && !tmp) || (fl->soft && (!out->soft_labels || !out->soft_stored))) {
        free(tmp);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
    }
    size_t img = (size_t)c * H * W;
    for (uint64_t i = 0; i < n && s == APD_OK; i++) {
        uint8_t *dst = out->pixels + i * img;
        const char *path = fl->paths[sel[i]];
        if ((s = apd__image_decode(path, &info[i], c, o->size ? tmp : dst, err)) != APD_OK) break;
        if (o->size && (s = apd__resize_crop(tmp, c, info[i].h, info[i].w, o->size, dst)) != APD_OK) {
            s = apd__err_set(err, s, "%s: out of memory while resizing", path);
            break;
        }
        out->labels[i] = fl->labels[sel[i]];
        out->source_ids[i] = fl->src[sel[i]];
        if (fl->soft) {
            memcpy(out->soft_labels + i * fl->n_classes, fl->soft + sel[i] * fl->n_classes,
                   fl->n_classes * sizeof *out->soft_labels);
            out->soft_stored[i] = fl->soft_stored[sel[i]];
        }
    }
    free(tmp);
    return s;
}

/* Class names, normalisation, dataset name (the layout's, else the folder's base name) and
 * split. */
static void set_names(apd_dataset *out, const char *dir, const apd__flist *fl)
{
    for (uint32_t ci = 0; ci < fl->n_classes; ci++) memcpy(out->class_names[ci], fl->names[ci], APD_MAX_CLASS_NAME);
    out->has_norm = fl->has_norm;
    memcpy(out->norm_mean, fl->mean, sizeof fl->mean);
    memcpy(out->norm_std, fl->std, sizeof fl->std);
    if (fl->name[0]) {
        snprintf(out->name, sizeof out->name, "%s", fl->name);
    } else {
        char base[APD_IO_PATH];
        snprintf(base, sizeof base, "%s", dir);
        size_t bl = strlen(base);
        while (bl > 1 && base[bl - 1] == '/') base[--bl] = '\0';
        const char *b = strrchr(base, '/');
        snprintf(out->name, sizeof out->name, "%.*s", (int)sizeof out->name - 1, b && b[1] ? b + 1 : base);
    }
    snprintf(out->split, sizeof out->split, "%s", fl->split);
}

apd_status apd__import_folder(apd_dataset *out, const char *dir, const char *split,
                              const apd_import_opts *o, apd_err *err)
{
    apd__flist fl;
    memset(&fl, 0, sizeof fl);
    apd__img_info *info = NULL;
    uint64_t *sel = NULL, n = 0;
    uint32_t c = 0, maxh = 0, maxw = 0;
    char marker[APD_IO_PATH];
    apd_status s;
    if (!apd__is_dir(dir)) {
        struct stat st;
        if (stat(dir, &st) != 0) return apd__err_sys(err, errno, dir, "cannot open folder");
        return apd__err_set(err, APD_EDATASET, "%s: not a folder", dir);
    }
    if (!join(marker, sizeof marker, dir, "labels.csv")) return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    if (apd__is_file(marker)) {
        s = apd__folder_export(&fl, dir, split, o, err);
    } else if (join(marker, sizeof marker, dir, "wnids.txt") && apd__is_file(marker)) {
        s = apd__folder_tiny(&fl, dir, split, o, err);
    } else {
        s = collect_class_folders(&fl, dir, split, o, err);
    }
    if (s == APD_OK) s = select_images(&fl, o->limit, &sel, &n, err);
    if (s == APD_OK && !(info = calloc(n, sizeof *info))) s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", dir);
    if (s == APD_OK) s = probe_all(&fl, sel, n, o, info, &c, &maxh, &maxw, err);
    if (s == APD_OK) s = decode_all(out, dir, &fl, sel, n, info, c, maxh, maxw, o, err);
    if (s == APD_OK) set_names(out, dir, &fl);
    free(info);
    free(sel);
    apd__flist_free(&fl);
    if (s != APD_OK) {
        apd_dataset_free(out);
        memset(out, 0, sizeof *out);
    }
    return s;
}
