/* fuzz_icode.c: libFuzzer target for the format 1.1 index model parser and coded-body
 * decoder (apd__imodel_parse, apd__icode_decode_impl, and the two-, four- and eight-record
 * decoders apd__icode_decode2 / apd__icode_decoden; format/icode.c).
 *
 * Input layout:
 *   byte 0   bit 0: c = 3 (else 1); bit 1: fix up the model CRC before parsing (so the
 *            fuzzer reaches the table checks behind the checksum)
 *   byte 1   h (1..64: (v % 64) + 1)      byte 2  w (same)
 *   byte 3   k - 1 (file and record palette size; bits = ceil(log2 k))
 *   byte 4-5 model length L (u16 little-endian)
 *   then     L bytes of model (the meta/imodel value), then the coded body (the rest)
 * Differential: when the model parses, the body is decoded by the scalar reference and by
 * the AVX2 decoder (when available); they must agree on accept/reject and, on accept, on
 * every palette byte and index (abort otherwise). The two-record decoder must give each of
 * the pairs (body, body) and (body, body less its last word) what the single decoder gives
 * each body alone, and so must the four- and eight-record decoder for body and cut copy
 * alternating. Built with libFuzzer (-DAPD_FUZZ=ON) or
 * with replay.c (ctest replays tests/fuzz/corpus/icode/).
 */
#include <stdlib.h>
#include <string.h>

#include "format/format_internal.h"
#include "format/icode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6) return 0;
    uint32_t c = (data[0] & 1) ? 3 : 1;
    uint32_t h = (uint32_t)(data[1] % 64) + 1, w = (uint32_t)(data[2] % 64) + 1;
    uint32_t k = (uint32_t)data[3] + 1, bits = apd_bits_for_k(k);
    size_t ml = (size_t)data[4] | (size_t)data[5] << 8;
    if (ml > size - 6) return 0;
    uint8_t *mv = malloc(ml ? ml : 1);
    apd__imodel *m = malloc(sizeof *m);
    size_t npix = (size_t)h * w;
    uint8_t *p1 = malloc(768), *p2 = malloc(768), *i1 = malloc(npix), *i2 = malloc(npix);
    if (!mv || !m || !p1 || !p2 || !i1 || !i2) goto out;
    memcpy(mv, data + 6, ml);
    if ((data[0] & 2) && ml >= 4) apd__st32(mv, apd_crc32c(0, mv + 4, ml - 4));
    const char *why = "";
    if (apd__imodel_parse(mv, ml, c, bits, m, &why) != APD_OK) goto out;
    const uint8_t *body = data + 6 + ml;
    size_t bl = size - 6 - ml;
    apd_status s1 = apd__icode_decode_impl(APD__IMPL_SCALAR, m, body, bl, k, h, w, p1, i1, &why);
    if (apd__icode_impl_available(APD__IMPL_AVX2)) {
        apd_status s2 = apd__icode_decode_impl(APD__IMPL_AVX2, m, body, bl, k, h, w, p2, i2, &why);
        if ((s1 == APD_OK) != (s2 == APD_OK)) abort();
        if (s1 == APD_OK && (memcmp(p1, p2, (size_t)k * c) != 0 || memcmp(i1, i2, npix) != 0)) abort();
    }
    if (s1 == APD_OK)
        for (size_t p = 0; p < npix; p++)
            if (i1[p] >= k) abort(); /* the decoder promised every index < k */
    for (int pair = 0; pair < 2; pair++) {
        size_t cut = pair && bl >= 2 ? bl - 2 : bl;
        apd_status sc = apd__icode_decode_impl(APD__IMPL_SCALAR, m, body, cut, k, h, w, p2, i2, &why);
        uint8_t *q0 = malloc(768), *q1 = malloc(768), *j0 = malloc(npix), *j1 = malloc(npix);
        if (q0 && q1 && j0 && j1) {
            const uint8_t *const bb[2] = {body, body};
            const size_t ll[2] = {bl, cut};
            const uint32_t kk[2] = {k, k};
            uint8_t *const pp[2] = {q0, q1}, *const ii[2] = {j0, j1};
            apd_status st[2];
            const char *w2[2] = {"", ""};
            apd__icode_decode2(APD__IMPL_AUTO, m, bb, ll, kk, h, w, pp, ii, st, w2);
            if ((st[0] == APD_OK) != (s1 == APD_OK) || (st[1] == APD_OK) != (sc == APD_OK)) abort();
            if (s1 == APD_OK && (memcmp(q0, p1, (size_t)k * c) != 0 || memcmp(j0, i1, npix) != 0)) abort();
            if (sc == APD_OK && (memcmp(q1, p2, (size_t)k * c) != 0 || memcmp(j1, i2, npix) != 0)) abort();
        }
        free(q0);
        free(q1);
        free(j0);
        free(j1);
    }
    for (uint32_t n = 4; n <= 8; n += 4) { /* four and eight records at once (eight: the batch reader's
                                               group): the body and a cut copy, alternating */
        size_t cut = bl >= 2 ? bl - 2 : bl;
        apd_status sc = apd__icode_decode_impl(APD__IMPL_SCALAR, m, body, cut, k, h, w, p2, i2, &why);
        uint8_t *q = malloc(8 * (768 + npix));
        if (q) {
            const uint8_t *bb[8];
            size_t ll[8];
            uint32_t kk[8];
            uint8_t *pp[8], *ii[8];
            apd_status st[8];
            const char *wn[8];
            for (uint32_t i = 0; i < n; i++) {
                bb[i] = body;
                ll[i] = i % 2 ? cut : bl;
                kk[i] = k;
                pp[i] = q + i * 768;
                ii[i] = q + 8 * 768 + i * npix;
                wn[i] = "";
            }
            apd__icode_decoden(APD__IMPL_AUTO, m, n, bb, ll, kk, h, w, pp, ii, st, wn);
            for (uint32_t i = 0; i < n; i++) {
                apd_status want = i % 2 ? sc : s1;
                if ((st[i] == APD_OK) != (want == APD_OK)) abort();
                if (want == APD_OK && (memcmp(pp[i], i % 2 ? p2 : p1, (size_t)k * c) != 0 ||
                                       memcmp(ii[i], i % 2 ? i2 : i1, npix) != 0))
                    abort();
            }
        }
        free(q);
    }
    apd__imodel_free(m);
out:
    free(mv);
    free(m);
    free(p1);
    free(p2);
    free(i1);
    free(i2);
    return 0;
}
