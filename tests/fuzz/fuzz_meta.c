/* fuzz_meta.c: libFuzzer target for the metadata parser (format/json.c, format/meta.c) and the
 * binary header parser (format/codec.c).
 *
 * Input: byte 0 selects the mode.
 *   'H'   the rest is a header value: apd__header_parse (+ apd__geom_from_header)
 *   other the rest is a metadata document checked against a header whose fields come from
 *         byte 0 (n_records = byte0 % 8, n_classes = (byte0 >> 3) % 4, c = 3, h = w = 32,
 *         k = 64): apd__meta_parse; plus the generic JSON getters over the parsed tree.
 * Replayed under ctest from tests/fuzz/corpus/meta/ (replay.c).
 */
#include <stdlib.h>
#include <string.h>

#include "format/format_internal.h"
#include "format/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *why = "";
    apd_limits lim;
    apd_limits_default(&lim);
    if (data[0] == 'H') {
        apd__header h;
        if (apd__header_parse(data + 1, size - 1, &lim, &h, &why) == APD_OK) {
            apd__geom g;
            (void)apd__geom_from_header(&h, &lim, &g, &why);
        }
        return 0;
    }
    apd__header h;
    memset(&h, 0, sizeof h);
    h.major = 1;
    h.kind = APD_KIND_PALETTE;
    h.c = 3;
    h.h = h.w = 32;
    h.k = 64;
    h.bits = 6;
    h.per_chunk = 997;
    h.n_records = data[0] % 8;
    h.n_classes = (uint32_t)(data[0] >> 3) % 4;
    const char *txt = (const char *)data + 1;
    size_t len = size - 1;
    apd__meta m;
    if (apd__meta_parse(txt, len, &h, &m, &why) == APD_OK) apd__meta_free(&m);
    apd__json d;
    if (apd__json_parse(&d, txt, len) == APD_OK) {
        char buf[128];
        uint64_t u;
        double x;
        for (size_t i = 0; i < d.n; i++) {
            (void)apd__json_str(&d, (int)i, buf, sizeof buf);
            (void)apd__json_u64(&d, (int)i, &u);
            (void)apd__json_num(&d, (int)i, &x);
        }
        (void)apd__json_get(&d, 0, "format");
        apd__json_free(&d);
    }
    return 0;
}
