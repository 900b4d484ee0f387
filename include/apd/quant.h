/* apd/quant.h: classical per-image colour quantizers (median cut, octree, k-means) and
 * nearest-colour mapping.
 *
 * Every quantizer reduces ONE image (uint8, planar CHW, c = 1 grey or 3 RGB) to a palette of
 * at most k colours (k = 1..APD_MAX_COLORS) plus an index map (one byte per pixel, row-major):
 *
 *     uint8_t pal[APD_MAX_COLORS * 3], idx[32 * 32];
 *     uint32_t k_used;
 *     apd_status s = apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, 3, 32, 32, 64, 0,
 *                                       pal, idx, &k_used);
 *     // pixel p of the reduced image = pal[idx[p]*3 + 0..2]
 *
 * Quantizers:
 * - APD_QUANT_MEDIAN_CUT: Pillow's median cut (Image.quantize(method=0, kmeans=0)) bit for
 *   bit, including its palette order and tie-breaking: colour histogram; repeatedly split
 *   the box with the largest pixel count (Pillow's binary heap, boxes of volume 1 are
 *   dropped), split axis = argmax(r_range*77, g_range*150, b_range*29) (first wins ties;
 *   grey has one axis), count-weighted median split with ties to the high side; palette =
 *   rounded mean of each box (leaves in tree order, high side first); every pixel mapped to
 *   the nearest palette colour by L2, ties to its own box's colour, then to the entry
 *   nearest that colour (Pillow's sorted distance table). Images with more than 65536
 *   distinct colours are binned the way Pillow does (drop low bits until <= 65536).
 *   Grey (c = 1) equals Pillow on an "L" image (r = g = b).
 * - APD_QUANT_OCTREE: classic Gervautz-Purgathofer octree (depth 8, 2^c children per node):
 *   while there are more than k leaves, merge the deepest node with the fewest pixels (ties:
 *   the node created first); when merging all its children would overshoot below k, only
 *   its smallest children are merged, so exactly min(k, distinct colours) entries result.
 *   Palette = rounded leaf means; pixels mapped to the nearest palette colour.
 * - APD_QUANT_KMEANS: Lloyd iterations seeded with the median-cut result, centres kept as
 *   8-bit colours (rounded means, as Pillow's kmeans option), at most 32 iterations or until
 *   no pixel changes cluster; ties keep the current cluster. Because every centre is the
 *   nearest 8-bit point to its cluster mean and every pixel moves only to a strictly nearer
 *   centre, the squared error never exceeds median cut's on the same image. Empty clusters
 *   keep their colour.
 *
 * All three are deterministic functions of the image and k (no randomness is needed; the
 * seed argument is accepted for future randomized variants and currently ignored).
 * Images with at most k distinct colours are reproduced exactly by all three.
 *
 * Writing: apd_quantize_put quantizes an image and appends it to an apd_writer (apd/format.h)
 * as a palette record, the one-call path from pixels to a quantized .apd file.
 *
 * Thread safety: all functions are reentrant (no global state); call them concurrently on
 * different buffers (apd_quantize_put: on different writers). Each call allocates its
 * scratch memory (a few times h*w bytes).
 */
#ifndef APD_QUANT_H
#define APD_QUANT_H

#include "apd/format.h"
#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum apd_quantizer {
    APD_QUANT_MEDIAN_CUT = 0,
    APD_QUANT_OCTREE = 1,
    APD_QUANT_KMEANS = 2
} apd_quantizer;

/* Quantize one image to at most k colours.
 * @param[in]  img      c*h*w bytes, planar CHW (channel-major), c = 1 or 3.
 * @param[in]  k        1..APD_MAX_COLORS palette entries allowed.
 * @param[in]  seed     reserved (ignored by the current quantizers).
 * @param[out] palette  k*c bytes, entry-major: entry j channel ch at palette[j*c + ch];
 *                      entries k_used..k-1 are set to 0.
 * @param[out] indices  h*w bytes, row-major, every value < *k_used.
 * @param[out] k_used   number of palette entries produced (1..k; may be < k when the image
 *                      has fewer colours, or for octree).
 * @return APD_OK; APD_EINVAL (NULL pointer, c not 1/3, k not 1..APD_MAX_COLORS, h or w
 *         zero, unknown quantizer); APD_EOVERFLOW (h*w does not fit in 32 bits); APD_ENOMEM. */
APD_API apd_status apd_quantize_image(apd_quantizer q, const uint8_t *img, uint32_t c, uint32_t h,
                                      uint32_t w, uint32_t k, uint64_t seed, uint8_t *palette,
                                      uint8_t *indices, uint32_t *k_used);

/* Map an image onto a given palette: indices[p] = the entry nearest pixel p (L2; ties go to
 * the lowest index). Fast: grey uses a 256-entry table, RGB computes each distinct colour
 * once. @return APD_OK, APD_EINVAL, APD_EOVERFLOW, APD_ENOMEM. */
APD_API apd_status apd_quantize_map(const uint8_t *img, uint32_t c, uint32_t h, uint32_t w,
                                    const uint8_t *palette, uint32_t k, uint8_t *indices);

/* Sum of squared per-channel differences between img and its palette reconstruction (a
 * quality measure for tests and tools; divide by c*h*w for the MSE). */
APD_API uint64_t apd_quantize_sse(const uint8_t *img, uint32_t c, uint32_t h, uint32_t w,
                                  const uint8_t *palette, const uint8_t *indices);

/* Quantize a CHW image (the writer's c x h x w) with quantizer q to at most the writer's k
 * colours (apd_quantize_image with that seed) and append it with apd_writer_put_palette.
 * @param[in] w          a palette writer (apd_writer_create with kind APD_KIND_PALETTE).
 * @param[in] source_id  as apd_writer_put_palette (APD_NO_SOURCE_ID for none).
 * @return APD_OK; APD_EINVAL (w or chw NULL, a direct-colour writer, unknown quantizer);
 *         APD_ENOMEM; the quantizer's codes; the codes of apd_writer_put_palette. A quantizer
 *         failure leaves the writer unchanged (and its errmsg untouched). */
APD_API apd_status apd_quantize_put(apd_writer *w, apd_quantizer q, const uint8_t *chw,
                                    uint32_t label, uint64_t source_id, uint64_t seed);

/* "median-cut" (also "mediancut"), "octree", "kmeans" (also "k-means").
 * @return APD_OK or APD_EINVAL (unknown name; *out untouched). */
APD_API apd_status apd_quantizer_from_name(const char *name, apd_quantizer *out);
/* Canonical name ("median-cut", "octree", "kmeans"), or "unknown". Static string. */
APD_API const char *apd_quantizer_name(apd_quantizer q);

#ifdef __cplusplus
}
#endif
#endif
