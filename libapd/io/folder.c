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

apd_status apd__import_folder(apd_dataset *out, const char *dir, const char *split,
                              const apd_import_opts *o, apd_err *err)
{
    char root[PATHBUF], tr[PATHBUF], te[PATHBUF];
    apd_status s;
    str_list classes = {0}, paths = {0};
    uint32_t *labels = NULL;
    apd__img_info *info = NULL;
    uint8_t *tmp = NULL;

    if (!apd__is_dir(dir)) {
        struct stat st;
        if (stat(dir, &st) != 0) return apd__err_sys(err, errno, dir, "cannot open folder");
        return apd__err_set(err, APD_EDATASET, "%s: not a folder", dir);
    }
    if (!join(tr, sizeof tr, dir, "train") || !join(te, sizeof te, dir, "test"))
        return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
    const char *use_split = "";
    if (apd__is_dir(tr) || apd__is_dir(te)) {
        use_split = split ? split : "train";
        const char *sub = !strcmp(use_split, "test") ? te : tr;
        if (!apd__is_dir(sub))
            return apd__err_set(err, APD_EDATASET, "%s: has no %s/ sub-folder", dir, use_split);
        memcpy(root, sub, strlen(sub) + 1);
    } else {
        if (split && !strcmp(split, "test"))
            return apd__err_set(err, APD_EDATASET, "%s: has no train/ and test/ sub-folders, so there is no test split", dir);
        if (strlen(dir) >= sizeof root) return apd__err_set(err, APD_ELIMIT, "%s: path too long", dir);
        memcpy(root, dir, strlen(dir) + 1);
    }

    if ((s = list_dir(root, &classes, NULL, err)) != APD_OK) goto fail;
    if (!classes.n) {
        s = apd__err_set(err, APD_EEMPTY, "%s: no class sub-folders (expected %s/<class>/*.png|jpg|jpeg)", root, root);
        goto fail;
    }
    if (classes.n > UINT32_MAX / 2) {
        s = apd__err_set(err, APD_ELIMIT, "%s: too many classes", root);
        goto fail;
    }
    size_t cap = 0;
    for (size_t ci = 0; ci < classes.n; ci++) {
        char cdir[PATHBUF];
        str_list files = {0}, subdirs = {0};
        if (!join(cdir, sizeof cdir, root, classes.v[ci])) {
            s = apd__err_set(err, APD_ELIMIT, "%s/%s: path too long", root, classes.v[ci]);
            goto fail;
        }
        if ((s = list_dir(cdir, &subdirs, &files, err)) != APD_OK) {
            list_free(&files);
            list_free(&subdirs);
            goto fail;
        }
        size_t used = 0, skipped = 0;
        const char *first_skip = NULL;
        for (size_t j = 0; j < files.n; j++) {
            if (!has_image_ext(files.v[j])) {
                if (!skipped++) first_skip = files.v[j];
                continue;
            }
            char fp[PATHBUF];
            if (!join(fp, sizeof fp, cdir, files.v[j])) {
                apd__io_warn(o, "%s/%s: path too long, skipped", cdir, files.v[j]);
                continue;
            }
            if (paths.n == cap) {
                cap = cap ? cap * 2 : 256;
                uint32_t *nl = realloc(labels, cap * sizeof(uint32_t));
                if (!nl) {
                    list_free(&files);
                    list_free(&subdirs);
                    s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
                    goto fail;
                }
                labels = nl;
            }
            labels[paths.n] = (uint32_t)ci;
            if (!list_push(&paths, fp)) {
                list_free(&files);
                list_free(&subdirs);
                s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
                goto fail;
            }
            used++;
        }
        if (skipped)
            apd__io_warn(o, "%s: skipped %zu file%s without a .png/.jpg/.jpeg extension (e.g. %s)", cdir, skipped,
                         skipped == 1 ? "" : "s", first_skip);
        if (subdirs.n)
            apd__io_warn(o, "%s: ignored %zu sub-folder%s (e.g. %s)", cdir, subdirs.n, subdirs.n == 1 ? "" : "s",
                         subdirs.v[0]);
        if (!used) apd__io_warn(o, "%s: class '%s' has no images", cdir, classes.v[ci]);
        list_free(&files);
        list_free(&subdirs);
    }
    if (!paths.n) {
        s = apd__err_set(err, APD_EEMPTY, "%s: no images (.png/.jpg/.jpeg) in %zu class folder%s", root, classes.n,
                         classes.n == 1 ? "" : "s");
        goto fail;
    }
    uint64_t n = paths.n;
    if (o->limit && o->limit < n) n = o->limit;

    /* pass 1: headers */
    info = calloc(n, sizeof *info);
    if (!info) {
        s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
        goto fail;
    }
    uint32_t all_grey = 1, maxh = 0, maxw = 0;
    uint32_t limit_dim = o->size ? APD_IO_MAX_SOURCE_DIM : APD_IO_MAX_DIM;
    for (uint64_t i = 0; i < n; i++) {
        if ((s = apd__image_probe(paths.v[i], limit_dim, &info[i], err)) != APD_OK) goto fail;
        all_grey &= info[i].grey;
        if (!o->size && (info[i].w != info[0].w || info[i].h != info[0].h)) {
            s = apd__err_set(err, APD_EMISMATCH, "%s: image is %ux%u but %s is %ux%u (give a size to resize and crop)",
                             paths.v[i], info[i].w, info[i].h, paths.v[0], info[0].w, info[0].h);
            goto fail;
        }
        if (info[i].h > maxh) maxh = info[i].h;
        if (info[i].w > maxw) maxw = info[i].w;
    }
    uint32_t c = all_grey ? 1 : 3;
    uint32_t H = o->size ? o->size : info[0].h, W = o->size ? o->size : info[0].w;

    /* pass 2: decode */
    if ((s = apd_dataset_alloc(out, n, c, H, W, (uint32_t)classes.n)) != APD_OK) {
        s = apd__err_set(err, s, "%s: cannot allocate %llu images of %ux%ux%u", root, (unsigned long long)n, c, H, W);
        goto fail;
    }
    out->source_ids = malloc(sizeof(uint64_t) * n);
    if (o->size) tmp = malloc((size_t)c * maxh * maxw);
    if (!out->source_ids || (o->size && !tmp)) {
        s = apd__err_set(err, APD_ENOMEM, "%s: out of memory", root);
        goto fail;
    }
    size_t img = (size_t)c * H * W;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *dst = out->pixels + i * img;
        if ((s = apd__image_decode(paths.v[i], &info[i], c, o->size ? tmp : dst, err)) != APD_OK) goto fail;
        if (o->size && (s = apd__resize_crop(tmp, c, info[i].h, info[i].w, o->size, dst)) != APD_OK) {
            s = apd__err_set(err, s, "%s: out of memory while resizing", paths.v[i]);
            goto fail;
        }
        out->labels[i] = labels[i];
        out->source_ids[i] = i;
    }
    for (size_t ci = 0; ci < classes.n; ci++) /* valid UTF-8, cut on a character boundary */
        if (apd__utf8_fit(out->class_names[ci], APD_MAX_CLASS_NAME, classes.v[ci]))
            apd__io_warn(o, "%s/%s: class name shortened to \"%s\" (at most %d bytes of UTF-8)", root, classes.v[ci],
                         out->class_names[ci], APD_MAX_CLASS_NAME - 1);
    if (apd__names_distinct(&out->class_names[0][0], classes.n, APD_MAX_CLASS_NAME))
        apd__io_warn(o, "%s: class names that were equal after shortening got a suffix ~2, ~3, ...", root);
    /* name: the folder's base name */
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
    free(tmp);
    free(info);
    free(labels);
    list_free(&classes);
    list_free(&paths);
    return APD_OK;
fail:
    free(tmp);
    free(info);
    free(labels);
    list_free(&classes);
    list_free(&paths);
    apd_dataset_free(out);
    memset(out, 0, sizeof *out);
    return s;
}
