/* fuzz_record.c: libFuzzer target for the .apd chunk and record decoder
 * (apd__chunk_check, apd__record_parse, apd__record_decode_bytes; format/codec.c, pack.c).
 *
 * Input layout (the leading bytes select the geometry and options, as zstd's fuzzers do):
 *   byte 0   bit 0: kind (0 palette, 1 direct); bit 1: c = 3 (else 1); bit 2: fix up the
 *            CRCs before decoding (so the fuzzer reaches the logic behind the checksum);
 *            bit 3: input is a chunk (else one record); bit 4: layout CHW (else HWC);
 *            bit 5: n_classes = 0 (labels unchecked); bit 6: soft labels announced
 *            (format 1.1 header flag bit 1; only with n_classes = 10)
 *   byte 1   h (1..64: (v % 64) + 1)      byte 2  w (same)
 *   byte 3   k - 1 (palette)               byte 4  records in the chunk expected (1..8)
 *   rest     the record or chunk bytes
 * Differential: every palette record that parses is also decoded by each palette kernel
 * available (scalar, AVX2, AVX-512) directly, and the results must agree (abort otherwise).
 * Built two ways: with clang -fsanitize=fuzzer (the real fuzzer, -DAPD_FUZZ=ON) and with any
 * compiler plus replay.c (ctest replays tests/fuzz/corpus/record/).
 */
#include <stdlib.h>
#include <string.h>

#include "format/format_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* All kernels must agree on the pixels and on accept/reject. */
static void differential(const uint8_t *rec, size_t len, const apd__geom *g, apd_layout layout)
{
    apd__rec r;
    const char *why;
    if (g->kind != APD_KIND_PALETTE || apd__record_parse(rec, len, g, &r, &why) != APD_OK ||
        (r.flags & APD__RFLAG_ZSTD))
        return;
    size_t nb = g->npix * g->c;
    uint8_t *ref = malloc(nb ? nb : 1), *o = malloc(nb ? nb : 1);
    if (!ref || !o) goto out;
    const uint8_t *packed = r.body + (size_t)r.k * g->c;
    int rs = apd__pal_decode(APD__IMPL_SCALAR, packed, g->npix, g->bits, r.body, r.k, g->c, layout, ref);
    static const apd__impl vec[2] = {APD__IMPL_AVX2, APD__IMPL_AVX512};
    for (int v = 0; v < 2; v++) {
        if (!apd__impl_available(vec[v])) continue;
        int vs = apd__pal_decode(vec[v], packed, g->npix, g->bits, r.body, r.k, g->c, layout, o);
        if (vs != rs || (rs == 0 && memcmp(o, ref, nb) != 0)) abort();
    }
out:
    free(ref);
    free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5) return 0;
    uint8_t opt = data[0];
    apd__header h;
    memset(&h, 0, sizeof h);
    h.kind = (opt & 1) ? APD_KIND_DIRECT : APD_KIND_PALETTE;
    h.c = (opt & 2) ? 3 : 1;
    h.h = (uint32_t)(data[1] % 64) + 1;
    h.w = (uint32_t)(data[2] % 64) + 1;
    h.k = h.kind == APD_KIND_PALETTE ? (uint32_t)data[3] + 1 : 0;
    h.bits = h.kind == APD_KIND_PALETTE ? apd_bits_for_k(h.k) : 0;
    h.n_classes = (opt & 32) ? 0 : 10;
    if ((opt & 64) && h.n_classes) h.flags |= APD__HFLAG_SOFT;
    h.per_chunk = 8;
    uint32_t expect = (uint32_t)(data[4] % 8) + 1;
    apd__geom g;
    apd_limits lim;
    apd_limits_default(&lim);
    const char *why = "";
    if (apd__geom_from_header(&h, &lim, &g, &why) != APD_OK) return 0;
    apd_layout layout = (opt & 16) ? APD_LAYOUT_CHW : APD_LAYOUT_HWC;
    size_t len = size - 5;
    uint8_t *buf = malloc(len ? len : 1);
    uint8_t *out = malloc(g.npix * g.c);
    if (!buf || !out) goto done;
    memcpy(buf, data + 5, len);
    if (!(opt & 8)) {
        if ((opt & 4) && len >= 4) apd__st32(buf, apd_crc32c(0, buf + 4, len - 4));
        uint32_t label;
        (void)apd__record_decode_bytes(buf, len, &g, NULL, 0, layout, out, &label, &why);
        differential(buf, len, &g, layout);
        goto done;
    }
    /* chunk mode */
    if ((opt & 4) && len >= APD__CHUNK_HDR + 4) {
        uint32_t n = apd__ld32(buf + 8);
        size_t table = APD__CHUNK_HDR + 4 * ((size_t)n + 1);
        if (n < 1u << 20 && table <= len) apd__st32(buf, apd_crc32c(0, buf + 4, table - 4));
    }
    if (apd__chunk_check(buf, len, 0, expect, &g, &why) != APD_OK) goto done;
    for (uint32_t j = 0; j < expect; j++) {
        const uint8_t *rec;
        size_t rl;
        apd__chunk_record(buf, j, &rec, &rl);
        uint8_t *rc = malloc(rl);
        if (!rc) break;
        memcpy(rc, rec, rl);
        if (opt & 4) apd__st32(rc, apd_crc32c(0, rc + 4, rl - 4));
        (void)apd__record_decode_bytes(rc, rl, &g, NULL, 0, layout, out, NULL, &why);
        differential(rc, rl, &g, layout);
        free(rc);
    }
done:
    free(buf);
    free(out);
    return 0;
}
