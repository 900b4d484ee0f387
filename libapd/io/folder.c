/* io/folder.c: the image-folder importer (ImageNet / ImageNette layout).
 *
 *     DIR/[train|test/]<class>/<file>.png|.jpg|.jpeg
 *
 * Determinism: class folders and files are sorted by byte order (strcmp), so the same tree
 * gives the same dataset on every machine; labels are class positions in that order and
 * source ids are positions in the sorted file list.
 *
 * Two passes: (1) list and probe every file's header (size, grey or colour) so that size
 * mismatches are reported before anything is decoded and the channel count is known (grey
 * only when every file is grey); (2) decode each file straight into the dataset (through
 * the resize + centre crop when opts->size is set).
 *
 * Policy for odd entries: hidden entries (".*") are ignored; files with other extensions
 * and sub-folders inside a class folder are skipped with one warning per class; a class
 * folder without images is kept (its id stays stable) with a warning; a file with an image
 * extension that fails to decode is an error (APD_EIMAGE) naming it.
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/names.h"
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

#define PATHBUF 4096

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Entries of dir (not hidden), split into sub-directories and regular files, sorted. */
static apd_status list_dir(const char *dir, str_list *dirs, str_list *files, apd_err *err)
{
    DIR *d = opendir(dir);
    if (!d) return apd__err_sys(err, errno, dir, "cannot open folder");
    struct dirent *e;
    char path[PATHBUF];
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

/* The folder whose sub-folders are the classes: DIR itself, or DIR/train | DIR/test when DIR
 * has either (then *use_split names the split, else it is ""). */
static apd_status resolve_root(const char *dir, const char *split, char root[PATHBUF],
                               const char **use_split, apd_err *err)
{
    char tr[PATHBUF], te[PATHBUF];
    *use_split = "";
    if (!apd__is_dir(dir)) {
        struct stat st;
        if (stat(dir, &st) != 0) return apd__err_sys(err, errno, dir, "cannot open folder");
        return apd__err_set(err, APD_EDATASET, "%s: not a folder", dir);
    }
    if (!join(tr, sizeof tr, dir, "train") || !join(te, sizeof te, dir, "test"))
        return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    if (apd__is_dir(tr) || apd__is_dir(te)) {
        *use_split = split ? split : "train";
        const char *sub = !strcmp(*use_split, "test") ? te : tr;
        if (!apd__is_dir(sub))
            return apd__err_set(err, APD_EDATASET, "%s: has no %s/ sub-folder", dir, *use_split);
        memcpy(root, sub, strlen(sub) + 1);
    } else {
        if (split && !strcmp(split, "test"))
            return apd__err_set(err, APD_EDATASET, "%s: has no train/ and test/ sub-folders, so there is no test split", dir);
        if (strlen(dir) >= PATHBUF) return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
        memcpy(root, dir, strlen(dir) + 1);
    }
    return APD_OK;
}

/* The image files of the class folders, in order, with their labels. */
typedef struct file_list {
    str_list paths;
    uint32_t *labels; /* paths.n entries */
    size_t cap;       /* of labels */
} file_list;

static void file_list_free(file_list *fl)
{
    list_free(&fl->paths);
    free(fl->labels);
    memset(fl, 0, sizeof *fl);
}

/* Append the image files of class folder `cls` (label ci) of root; warn about what is
 * skipped (other extensions, sub-folders, an empty class). */
static apd_status collect_class(const char *root, const char *cls, uint32_t ci, file_list *fl,
                                const apd_import_opts *o, apd_err *err)
{
    char cdir[PATHBUF];
    str_list files = {0}, subdirs = {0};
    if (!join(cdir, sizeof cdir, root, cls))
        return apd__err_set(err, APD_ELIMIT, "%s/%s: path too long", root, cls);
    apd_status s = list_dir(cdir, &subdirs, &files, err);
    size_t used = 0, skipped = 0;
    const char *first_skip = NULL;
    for (size_t j = 0; s == APD_OK && j < files.n; j++) {
        if (!has_image_ext(files.v[j])) {
            if (!skipped++) first_skip = files.v[j];
            continue;
        }
        char fp[PATHBUF];
        if (!join(fp, sizeof fp, cdir, files.v[j])) {
            apd__io_warn(o, "%s/%s: path too long, skipped", cdir, files.v[j]);
            continue;
        }
        if (fl->paths.n == fl->cap) {
            size_t cap = fl->cap ? fl->cap * 2 : 256;
            uint32_t *nl = realloc(fl->labels, cap * sizeof(uint32_t));
            if (!nl) {
                s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
                break;
            }
            fl->labels = nl;
            fl->cap = cap;
        }
        fl->labels[fl->paths.n] = ci;
        if (!list_push(&fl->paths, fp)) {
            s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
            break;
        }
        used++;
    }
    if (s == APD_OK) {
        if (skipped)
            apd__io_warn(o, "%s: skipped %zu file%s without a .png/.jpg/.jpeg extension (e.g. %s)", cdir, skipped,
                         skipped == 1 ? "" : "s", first_skip);
        if (subdirs.n)
            apd__io_warn(o, "%s: ignored %zu sub-folder%s (e.g. %s)", cdir, subdirs.n, subdirs.n == 1 ? "" : "s",
                         subdirs.v[0]);
        if (!used) apd__io_warn(o, "%s: class '%s' has no images", cdir, cls);
    }
    list_free(&files);
    list_free(&subdirs);
    return s;
}

/* Class folders of root (sorted) and every image file in them. */
static apd_status collect(const char *root, str_list *classes, file_list *fl,
                          const apd_import_opts *o, apd_err *err)
{
    APD_TRY(list_dir(root, classes, NULL, err));
    if (!classes->n)
        return apd__err_set(err, APD_EEMPTY, "%s: no class sub-folders (expected %s/<class>/*.png|jpg|jpeg)", root, root);
    if (classes->n > UINT32_MAX / 2) return apd__err_set(err, APD_ELIMIT, "%s: too many classes", root);
    for (size_t ci = 0; ci < classes->n; ci++)
        APD_TRY(collect_class(root, classes->v[ci], (uint32_t)ci, fl, o, err));
    if (!fl->paths.n)
        return apd__err_set(err, APD_EEMPTY, "%s: no images (.png/.jpg/.jpeg) in %zu class folder%s", root,
                            classes->n, classes->n == 1 ? "" : "s");
    return APD_OK;
}

/* Pass 1: probe the headers of the first n files; the channel count (grey only if every
 * file is grey) and the largest sides. Without a resize size every image must match the
 * first one's size. */
static apd_status probe_all(char *const *paths, uint64_t n, const apd_import_opts *o,
                            apd__img_info *info, uint32_t *c, uint32_t *maxh, uint32_t *maxw,
                            apd_err *err)
{
    uint32_t all_grey = 1;
    uint32_t limit_dim = o->size ? APD_IO_MAX_SOURCE_DIM : APD_IO_MAX_DIM;
    *maxh = *maxw = 0;
    for (uint64_t i = 0; i < n; i++) {
        APD_TRY(apd__image_probe(paths[i], limit_dim, &info[i], err));
        all_grey &= info[i].grey;
        if (!o->size && (info[i].w != info[0].w || info[i].h != info[0].h))
            return apd__err_set(err, APD_EMISMATCH, "%s: image is %ux%u but %s is %ux%u (give a size to resize and crop)",
                                paths[i], info[i].w, info[i].h, paths[0], info[0].w, info[0].h);
        if (info[i].h > *maxh) *maxh = info[i].h;
        if (info[i].w > *maxw) *maxw = info[i].w;
    }
    *c = all_grey ? 1 : 3;
    return APD_OK;
}

/* Pass 2: decode the n probed files into out (allocated here), through the resize + centre
 * crop when o->size is set. */
static apd_status decode_all(apd_dataset *out, const char *root, const file_list *fl,
                             uint64_t n, uint32_t n_classes, const apd__img_info *info,
                             uint32_t c, uint32_t maxh, uint32_t maxw, const apd_import_opts *o,
                             apd_err *err)
{
    uint32_t H = o->size ? o->size : info[0].h, W = o->size ? o->size : info[0].w;
    apd_status s = apd_dataset_alloc(out, n, c, H, W, n_classes);
    if (s != APD_OK)
        return apd__err_set(err, s, "%s: cannot allocate %llu images of %ux%ux%u", root, (unsigned long long)n, c, H, W);
    uint8_t *tmp = NULL;
    out->source_ids = malloc(sizeof(uint64_t) * n);
    if (o->size) tmp = malloc((size_t)c * maxh * maxw);
    if (!out->source_ids || (o->size && !tmp)) {
        free(tmp);
        return apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
    }
    size_t img = (size_t)c * H * W;
    for (uint64_t i = 0; i < n && s == APD_OK; i++) {
        uint8_t *dst = out->pixels + i * img;
        const char *path = fl->paths.v[i];
        if ((s = apd__image_decode(path, &info[i], c, o->size ? tmp : dst, err)) != APD_OK) break;
        if (o->size && (s = apd__resize_crop(tmp, c, info[i].h, info[i].w, o->size, dst)) != APD_OK) {
            s = apd__err_set(err, s, "%s: out of memory while resizing", path);
            break;
        }
        out->labels[i] = fl->labels[i];
        out->source_ids[i] = i;
    }
    free(tmp);
    return s;
}

/* Class names (valid UTF-8, cut on a character boundary with a warning, repeats suffixed
 * ~2, ~3), dataset name (the folder's base name, without the split folder) and split. */
static void set_names(apd_dataset *out, const char *root, const char *use_split,
                      const str_list *classes, const apd_import_opts *o)
{
    for (size_t ci = 0; ci < classes->n; ci++)
        if (apd__utf8_fit(out->class_names[ci], APD_MAX_CLASS_NAME, classes->v[ci]))
            apd__io_warn(o, "%s/%s: class name shortened to \"%s\" (at most %d bytes of UTF-8)", root, classes->v[ci],
                         out->class_names[ci], APD_MAX_CLASS_NAME - 1);
    if (apd__names_distinct(&out->class_names[0][0], classes->n, APD_MAX_CLASS_NAME))
        apd__io_warn(o, "%s: class names that were equal after shortening got a suffix ~2, ~3, ...", root);
    char base[PATHBUF];
    memcpy(base, root, strlen(root) + 1);
    if (*use_split) { /* DIR/train -> DIR */
        char *sl = strrchr(base, '/');
        if (sl) *sl = '\0';
    }
    size_t bl = strlen(base);
    while (bl > 1 && base[bl - 1] == '/') base[--bl] = '\0';
    const char *b = strrchr(base, '/');
    snprintf(out->name, sizeof out->name, "%.*s", (int)sizeof out->name - 1, b && b[1] ? b + 1 : base);
    snprintf(out->split, sizeof out->split, "%s", use_split);
}

apd_status apd__import_folder(apd_dataset *out, const char *dir, const char *split,
                              const apd_import_opts *o, apd_err *err)
{
    char root[PATHBUF];
    const char *use_split = "";
    str_list classes = {0};
    file_list fl = {0};
    apd__img_info *info = NULL;
    uint32_t c = 0, maxh = 0, maxw = 0;
    apd_status s = resolve_root(dir, split, root, &use_split, err);
    if (s != APD_OK) return s;
    s = collect(root, &classes, &fl, o, err);
    uint64_t n = fl.paths.n;
    if (o->limit && o->limit < n) n = o->limit;
    if (s == APD_OK && !(info = calloc(n, sizeof *info))) s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
    if (s == APD_OK) s = probe_all(fl.paths.v, n, o, info, &c, &maxh, &maxw, err);
    if (s == APD_OK) s = decode_all(out, root, &fl, n, (uint32_t)classes.n, info, c, maxh, maxw, o, err);
    if (s == APD_OK) set_names(out, root, use_split, &classes, o);
    free(info);
    file_list_free(&fl);
    list_free(&classes);
    if (s != APD_OK) {
        apd_dataset_free(out);
        memset(out, 0, sizeof *out);
    }
    return s;
}
