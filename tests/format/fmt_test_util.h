/* fmt_test_util.h: helpers shared by the format tests: a scratch directory, random palette
 * images, and a writer with test defaults. */
#ifndef APD_FMT_TEST_UTIL_H
#define APD_FMT_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apd/format.h"
#include "common/rng.h"

/* mkdtemp'd scratch dir (removed by the caller's `rm -rf` at the end of the test). */
static inline const char *fmt_tmpdir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/apd-fmt-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

static inline void fmt_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", fmt_tmpdir(), name);
}

static inline void fmt_rmtmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fmt_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", fmt_tmpdir());
}

/* Random palette of k entries (c channels) and indices < k. */
static inline void fmt_random_palette_image(apd__rng *r, uint32_t k, uint32_t c, size_t npix,
                                            uint8_t *pal, uint8_t *idx)
{
    for (size_t i = 0; i < (size_t)k * c; i++) pal[i] = (uint8_t)apd__rng_below(r, 256);
    for (size_t i = 0; i < npix; i++) idx[i] = (uint8_t)apd__rng_below(r, k);
}

/* Reference decode: HWC or CHW from palette + indices. */
static inline void fmt_ref_decode(const uint8_t *pal, const uint8_t *idx, size_t npix, uint32_t c,
                                  int chw, uint8_t *out)
{
    for (size_t p = 0; p < npix; p++)
        for (uint32_t ch = 0; ch < c; ch++) {
            uint8_t v = pal[(size_t)idx[p] * c + ch];
            if (chw) out[ch * npix + p] = v;
            else out[p * c + ch] = v;
        }
}

static inline apd_writer_opts fmt_opts(uint32_t kind, uint32_t c, uint32_t h, uint32_t w, uint32_t k)
{
    apd_writer_opts o;
    apd_writer_opts_default(&o);
    o.kind = kind;
    o.c = c;
    o.h = h;
    o.w = w;
    o.k = k;
    o.n_classes = 10;
    o.no_sync = 1;
    o.force = 1;
    return o;
}

#endif
