/* io_test_util.h: helpers for the io tests: temporary folders, raw file writing, an
 * independent libpng reader (classic API) used to check what the exporters wrote. */
#ifndef IO_TEST_UTIL_H
#define IO_TEST_UTIL_H
#include <stddef.h>
#include <stdint.h>

/* mkdtemp under the build tree; returns a static-lifetime malloc'd path. */
char *tu_tmpdir(const char *tag);
void tu_mkdir(const char *path);
void tu_write(const char *path, const void *data, size_t n);
/* Copy the first n bytes of src to dst (n = SIZE_MAX: all). */
void tu_copy(const char *src, const char *dst, size_t n);
size_t tu_file_size(const char *path);
void tu_rm_rf(const char *path);

/* Write a PNG with libpng directly: rows of w*channels(ct)*depth/8 bytes, big-endian 16-bit. */
void tu_png_raw(const char *path, uint32_t w, uint32_t h, int color_type, int depth,
                const uint8_t *data, const uint8_t *plte_rgb, int nplte);

typedef struct tu_png {
    uint32_t w, h;
    int color_type, depth;
    int nplte;
    uint8_t plte[768];
    uint8_t *px; /* raw samples as stored (indices unpacked to 1 byte each), rows concatenated */
    uint32_t channels;
} tu_png;
/* Read a PNG with the classic libpng API, unpacking sub-byte samples; 0 on success. */
int tu_png_read(const char *path, tu_png *out);
void tu_png_free(tu_png *p);
#endif
