/* quant/quant_put.c: apd_quantize_put, quantize one image and append it to an .apd writer.
 *
 * The convenience lives here, not in format/, so that the format layer does not depend on the
 * quantizers: this file uses only the public writer API (apd_writer_info for the geometry,
 * apd_writer_put_palette to append), and the writer validates the record as for any caller.
 */
#include <stdlib.h>

#include "apd/format.h"
#include "common/internal.h"
#include "quant/quant_internal.h"

apd_status apd_quantize_put(apd_writer *w, apd_quantizer q, const uint8_t *chw, uint32_t label,
                            uint64_t source_id, uint64_t seed)
{
    apd_file_info fi;
    if (!w || !chw || apd_writer_info(w, &fi) != APD_OK) return APD_EINVAL;
    if (fi.kind != APD_KIND_PALETTE) return APD_EINVAL;
    size_t npix;
    if (!apd__mul_ok(fi.h, fi.w, &npix)) return APD_EOVERFLOW;
    uint8_t pal[APD_MAX_COLORS * 3];
    uint8_t *idx = malloc(npix ? npix : 1);
    if (!idx) return APD_ENOMEM;
    uint32_t k_used = 0;
    apd_status s = apd_quantize_image(q, chw, fi.c, fi.h, fi.w, fi.k, seed, pal, idx, &k_used);
    if (s == APD_OK) s = apd_writer_put_palette(w, pal, k_used, idx, label, source_id);
    free(idx);
    return s;
}
