/* test_format_roundtrip.c: .apd codec and file round trips.
 *  - CRC-32C test vector; hardware and table CRC agree.
 *  - bit packing: pack -> unpack identity for every width 1..8 and many lengths; the spec's
 *    worked 6-bit example.
 *  - palette kernels: scalar and AVX-512 give identical bytes, equal to a naive reference,
 *    for every K 1..APD_MAX_COLORS, grey and RGB, sizes 1x1, 3x5, 32x32, 128x128, HWC and CHW.
 *  - files: every K 1..APD_MAX_COLORS (grey and RGB, 3x5) and every index width at 1x1, 32x32, 128x128
 *    written and read back (pixels, palettes, indices, labels, source ids, metadata);
 *    direct-colour records; zstd-compressed records with and without a dictionary.
 *  - API: library metadata keys, apd_writer_info, apd_quantize_put.
 *  - lock file: none left after writing, reading or loading; a reader in another process
 *    that opened during writing keeps a valid snapshot while the writer commits.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "apd/loader.h"
#include "apd/quant.h"
#include "fmt_test_util.h"
#include "test_check.h"
#include "test_quick.h"
#include "format/format_internal.h"

START_TEST(crc_vector)
{
    ck_assert_uint_eq(apd_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(apd__crc32c_table(0, "123456789", 9), 0xE3069283u);
    uint8_t z[32], f[32];
    memset(z, 0, 32);
    memset(f, 0xFF, 32);
    ck_assert_uint_eq(apd_crc32c(0, z, 32), 0x8A9136AAu);
    ck_assert_uint_eq(apd_crc32c(0, f, 32), 0x62A8AB43u);
    ck_assert_uint_eq(apd_crc32c(0, z, 0), 0);
    /* continuation */
    ck_assert_uint_eq(apd_crc32c(apd_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    apd__rng r;
    apd__rng_seed(&r, 1, 0);
    uint8_t buf[4000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)apd__rng_u64(&r);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 200; len += 7)
            ck_assert_uint_eq(apd_crc32c(0, buf + off, len), apd__crc32c_table(0, buf + off, len));
    /* lengths past the hardware path's 768-byte (3 x 256) and 96-byte (3 x 32) blocks */
    for (size_t off = 0; off < 9; off += 3)
        for (size_t len = 700; len < 3900; len += 61)
            ck_assert_uint_eq(apd_crc32c(0, buf + off, len), apd__crc32c_table(0, buf + off, len));
    /* each path (the VPCLMULQDQ folding one where the CPU has it, at every length; the SSE4.2
       three-way one) against the table at every length 0-1100, nine alignments, and from a
       state other than 0 */
    int vp = apd__crc32c_vpclmul_available();
    uint32_t n = 0;
    for (int path = 0; path < 2; path++)
        for (size_t off = 0; off < 9; off++)
            for (size_t len = 0; len <= 1100; len++) {
                uint32_t init = (uint32_t)(len * 2654435761u);
                uint32_t want = apd__crc32c_table(init, buf + off, len), got = apd__crc32c_impl(path, init, buf + off, len);
                APD_CK(got == want, "path %d offset %zu length %zu: %08x, table %08x", path, off, len, got, want);
                n++;
            }
    printf("crc_vector: %u CRCs (folding path %s) equal to the table CRC (max difference 0)\n", n,
           vp ? "present" : "absent on this CPU: the three-way path twice");
}
END_TEST

START_TEST(pack_roundtrip)
{
    apd__rng r;
    apd__rng_seed(&r, 2, 0);
    uint8_t idx[300], back[300], packed[300];
    for (uint32_t b = 1; b <= 8; b++)
        for (size_t n = 0; n <= 300; n += (n < 20 ? 1 : 37)) {
            for (size_t i = 0; i < n; i++) idx[i] = (uint8_t)apd__rng_below(&r, 1u << b);
            memset(packed, 0xAA, sizeof packed);
            apd__pack(idx, n, b, packed);
            size_t pb = apd_packed_bytes(n, b);
            if (n * b % 8) ck_assert_uint_eq(packed[pb - 1] >> (n * b % 8), 0);
            apd__unpack(packed, n, b, back);
            ck_assert_mem_eq(idx, back, n);
        }
    /* spec example: 6-bit indices 1, 2, 3, 63 -> 0x81 0x30 0xFC */
    uint8_t ex[4] = {1, 2, 3, 63}, exp[3] = {0x81, 0x30, 0xFC}, got[3];
    apd__pack(ex, 4, 6, got);
    ck_assert_mem_eq(got, exp, 3);
    ck_assert_uint_eq(apd_bits_for_k(1), 1);
    ck_assert_uint_eq(apd_bits_for_k(2), 1);
    ck_assert_uint_eq(apd_bits_for_k(3), 2);
    ck_assert_uint_eq(apd_bits_for_k(64), 6);
    ck_assert_uint_eq(apd_bits_for_k(65), 7);
    ck_assert_uint_eq(apd_bits_for_k(APD_MAX_COLORS), 8);
    ck_assert_uint_eq(apd_bits_for_k(APD_MAX_COLORS + 1), 0);
}
END_TEST

static const uint32_t sizes[4][2] = {{1, 1}, {3, 5}, {32, 32}, {128, 128}};

START_TEST(kernels_every_k)
{
    apd__rng r;
    apd__rng_seed(&r, 3, 0);
    static const apd__impl vec[2] = {APD__IMPL_AVX512, APD__IMPL_AVX2};
    int have[2] = {apd__impl_available(APD__IMPL_AVX512), apd__impl_available(APD__IMPL_AVX2)};
    printf("kernels_every_k: AVX-512 VBMI %s, AVX2 %s (each compared with the scalar reference)\n",
           have[0] ? "tested" : "not available", have[1] ? "tested" : "not available");
    size_t maxpix = 128 * 128;
    uint8_t pal[768], *idx = malloc(maxpix), *packed = malloc(maxpix), *ref = malloc(3 * maxpix),
                      *a = malloc(3 * maxpix + 64), *b = malloc(3 * maxpix + 64);
    for (uint32_t k = 1; k <= APD_MAX_COLORS; k++)
        for (uint32_t c = 1; c <= 3; c += 2)
            for (int s = 0; s < 4; s++) {
                if (s == 3 && k % 17 != 0 && k != APD_MAX_COLORS && k != 1 && k != 129) continue; /* keep it quick */
                size_t npix = (size_t)sizes[s][0] * sizes[s][1];
                uint32_t bits = apd_bits_for_k(k);
                fmt_random_palette_image(&r, k, c, npix, pal, idx);
                apd__pack(idx, npix, bits, packed);
                for (int chw = 0; chw < 2; chw++) {
                    fmt_ref_decode(pal, idx, npix, c, chw, ref);
                    memset(a, 0x5A, 3 * npix + 64);
                    ck_assert_int_eq(apd__pal_decode(APD__IMPL_SCALAR, packed, npix, bits, pal, k, c,
                                                     chw ? APD_LAYOUT_CHW : APD_LAYOUT_HWC, a), 0);
                    ck_assert_mem_eq(a, ref, c * npix);
                    ck_assert_uint_eq(a[c * npix], 0x5A); /* no write past the end */
                    for (int v = 0; v < 2; v++) {
                        if (!have[v]) continue;
                        memset(b, 0x5A, 3 * npix + 64);
                        ck_assert_int_eq(apd__pal_decode(vec[v], packed, npix, bits, pal, k, c,
                                                         chw ? APD_LAYOUT_CHW : APD_LAYOUT_HWC, b), 0);
                        ck_assert_mem_eq(b, ref, c * npix);
                        ck_assert_uint_eq(b[c * npix], 0x5A);
                    }
                }
                /* an index >= k is rejected by both kernels (k < 2^bits only) */
                if (k < (1u << bits)) {
                    idx[npix - 1] = (uint8_t)k;
                    apd__pack(idx, npix, bits, packed);
                    ck_assert_int_eq(apd__pal_decode(APD__IMPL_SCALAR, packed, npix, bits, pal, k, c, APD_LAYOUT_HWC, a), -1);
                    for (int v = 0; v < 2; v++)
                        if (have[v])
                            ck_assert_int_eq(apd__pal_decode(vec[v], packed, npix, bits, pal, k, c, APD_LAYOUT_HWC, b), -1);
                }
            }
    free(idx); free(packed); free(ref); free(a); free(b);
}
END_TEST

/* Write n random palette records to a file with max K = k, read them back; coded files with
 * index model version mv (1 or 2; format 1.1 or 1.2). */
static void roundtrip_palette_icv(uint32_t k, uint32_t c, uint32_t h, uint32_t w, uint32_t n,
                                  apd_compress comp, apd_icode ic, uint32_t mv, uint64_t seed)
{
    char path[300], name[64];
    snprintf(name, sizeof name, "rt-k%u-c%u-%ux%u.apd", k, c, h, w);
    fmt_path(path, sizeof path, name);
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, c, h, w, k);
    o.compress = comp;
    o.index_coding = ic;
    o.index_model_version = mv;
    static const char names[10][64] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
    o.class_names = names;
    o.dataset_name = "unit-test";
    o.mean[0] = 0.25f;
    o.std[0] = 0.5f;
    apd_writer *wr;
    apd_err err;
    ck_assert_msg(apd_writer_create(&wr, path, &o, &err) == APD_OK, "%s", err.msg);
    ck_assert_int_eq(apd_writer_set_meta(wr, "method", "\"test\""), APD_OK);
    ck_assert_int_eq(apd_writer_set_meta(wr, "n_records", "5"), APD_EINVAL);
    size_t npix = (size_t)h * w;
    uint8_t *pal = malloc((size_t)n * 768), *idx = malloc((size_t)n * npix);
    uint32_t *ks = malloc(n * sizeof *ks);
    apd__rng r;
    apd__rng_seed(&r, seed, 0);
    for (uint32_t i = 0; i < n; i++) {
        ks[i] = i == 0 ? k : 1 + (uint32_t)apd__rng_below(&r, k);
        fmt_random_palette_image(&r, ks[i], c, npix, pal + (size_t)i * 768, idx + (size_t)i * npix);
        if (comp == APD_COMPRESS_ON) /* compressible: few distinct runs */
            for (size_t p = 0; p < npix; p++) idx[(size_t)i * npix + p] = (uint8_t)((p / 16) % ks[i]);
        else if (ic == APD_ICODE_ON) /* smooth (diagonal ramps plus noise): codes well */
            for (size_t p = 0; p < npix; p++)
                idx[(size_t)i * npix + p] = (uint8_t)((p / w + p % w + (apd__rng_below(&r, 8) == 0)) % ks[i]);
        uint64_t sid = (i % 3 == 0) ? APD_NO_SOURCE_ID : 1000 + i;
        ck_assert_msg(apd_writer_put_palette(wr, pal + (size_t)i * 768, ks[i], idx + (size_t)i * npix, i % 10, sid) == APD_OK,
                      "%s", apd_writer_errmsg(wr));
        if (i == n / 2) ck_assert_int_eq(apd_writer_commit(wr), APD_OK);
    }
    ck_assert_uint_eq(apd_writer_count(wr), n);
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);

    apd_reader *rd;
    ck_assert_msg(apd_reader_open(&rd, path, NULL, &err) == APD_OK, "%s", err.msg);
    apd_file_info fi;
    ck_assert_int_eq(apd_reader_info(rd, &fi), APD_OK);
    ck_assert_uint_eq(fi.n_records, n);
    ck_assert_uint_eq(fi.k, k);
    ck_assert_uint_eq(fi.bits, apd_bits_for_k(k));
    ck_assert_uint_eq(fi.c, c);
    ck_assert_uint_eq(fi.h, h);
    ck_assert_uint_eq(fi.w, w);
    ck_assert_uint_eq(fi.kind, APD_KIND_PALETTE);
    ck_assert_str_eq(fi.dataset_name, "unit-test");
    ck_assert_float_eq(fi.mean[0], 0.25f);
    ck_assert_str_eq(apd_reader_class_name(rd, 3), "three");
    ck_assert_ptr_null(apd_reader_class_name(rd, 10));
    ck_assert_ptr_nonnull(strstr(apd_reader_meta_json(rd), "\"method\": \"test\""));
    uint8_t *out = malloc(3 * npix), *ref = malloc(3 * npix), *ridx = malloc(npix), rpal[768];
    uint64_t counts[10] = {0};
    for (uint32_t i = 0; i < n; i++) { /* APD_CK: one check per record costs no system call */
        uint32_t lab = 99, rk = 0;
        for (int chw = 0; chw < 2; chw++) {
            APD_CK(apd_reader_decode(rd, i, chw ? APD_LAYOUT_CHW : APD_LAYOUT_HWC, out, 3 * npix, &lab) == APD_OK,
                   "record %u: %s", i, apd_reader_errmsg(rd));
            fmt_ref_decode(pal + (size_t)i * 768, idx + (size_t)i * npix, npix, c, chw, ref);
            APD_CK(memcmp(out, ref, c * npix) == 0, "record %u layout %d: pixels differ", i, chw);
            APD_CK(lab == i % 10, "record %u: label %u", i, lab);
        }
        APD_CK(apd_reader_record(rd, i, rpal, &rk, ridx, &lab) == APD_OK, "record %u: %s", i, apd_reader_errmsg(rd));
        APD_CK(rk == ks[i], "record %u: %u colours, want %u", i, rk, ks[i]);
        if (ic == APD_ICODE_OFF) {
            APD_CK(memcmp(rpal, pal + (size_t)i * 768, (size_t)rk * c) == 0, "record %u: palette differs", i);
            APD_CK(memcmp(ridx, idx + (size_t)i * npix, npix) == 0, "record %u: index map differs", i);
        } else { /* a coded record's palette may be reordered: same colour at every pixel */
            const uint8_t *ip = idx + (size_t)i * npix, *pp = pal + (size_t)i * 768;
            size_t other = 0;
            for (size_t p = 0; p < npix; p++)
                other += memcmp(rpal + (size_t)ridx[p] * c, pp + (size_t)ip[p] * c, c) != 0;
            APD_CK(other == 0, "record %u: %zu of %zu pixels decode to another colour", i, other, npix);
        }
        uint64_t sid = 0;
        APD_CK(apd_reader_source_id(rd, i, &sid) == APD_OK && sid == ((i % 3 == 0) ? APD_NO_SOURCE_ID : 1000 + i),
               "record %u: source id %llu", i, (unsigned long long)sid);
        APD_CK(apd_reader_verify_record(rd, i) == APD_OK, "record %u: verify failed", i);
        counts[i % 10]++;
    }
    for (uint32_t cl = 0; cl < 10; cl++) ck_assert_uint_eq(apd_reader_class_count(rd, cl), counts[cl]);
    ck_assert_int_eq(apd_reader_decode(rd, n, APD_LAYOUT_HWC, out, 3 * npix, NULL), APD_ERANGE);
    ck_assert_int_eq(apd_reader_decode(rd, 0, APD_LAYOUT_HWC, out, c * npix - 1, NULL), APD_EBUFSIZE);
    apd_file_stats fs;
    ck_assert_int_eq(apd_reader_stats(rd, &fs), APD_OK);
    if (comp == APD_COMPRESS_ON) ck_assert_uint_gt(fs.compressed_records, 0);
    if (comp == APD_COMPRESS_OFF) ck_assert_uint_eq(fs.compressed_records, 0);
    if (ic == APD_ICODE_OFF) ck_assert_int_eq(fi.has_index_model, 0);
    if (ic == APD_ICODE_OFF) ck_assert_uint_eq(fi.version_minor, 0);
    if (ic == APD_ICODE_ON && npix >= 1024) ck_assert_msg(fs.coded_records > 0, "k %u c %u %ux%u: no record coded", k, c, h, w);
    if (fs.coded_records) ck_assert_uint_eq(fi.version_minor, mv);
    apd_reader_close(rd);
    free(out); free(ref); free(ridx); free(pal); free(idx); free(ks);
    unlink(path);
}

static void roundtrip_palette_ic(uint32_t k, uint32_t c, uint32_t h, uint32_t w, uint32_t n,
                                 apd_compress comp, apd_icode ic, uint64_t seed)
{
    roundtrip_palette_icv(k, c, h, w, n, comp, ic, 2, seed);
    if (ic == APD_ICODE_ON) roundtrip_palette_icv(k, c, h, w, n, comp, ic, 1, seed + 77);
}

static void roundtrip_palette(uint32_t k, uint32_t c, uint32_t h, uint32_t w, uint32_t n,
                              apd_compress comp, uint64_t seed)
{
    roundtrip_palette_ic(k, c, h, w, n, comp, APD_ICODE_OFF, seed);
}

START_TEST(file_every_k_3x5)
{
    for (uint32_t k = 1; k <= APD_MAX_COLORS; k++) {
        if (!apd_test_visit_k(k)) continue; /* the quick form: the edges (file_every_width_sizes has them too) */
        roundtrip_palette(k, 1, 3, 5, 4, APD_COMPRESS_AUTO, k);
        roundtrip_palette(k, 3, 3, 5, 4, APD_COMPRESS_OFF, 1000 + k);
        roundtrip_palette_ic(k, 3, 32, 32, 3, APD_COMPRESS_AUTO, APD_ICODE_ON, 2000 + k);
    }
}
END_TEST

START_TEST(file_every_width_sizes)
{
    static const uint32_t ks[] = {1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 64, 65, 128, 129, 256};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        for (uint32_t c = 1; c <= 3; c += 2)
            for (int s = 0; s < 4; s++) {
                uint32_t n = s == 3 ? 5 : 40;
                roundtrip_palette(ks[i], c, sizes[s][0], sizes[s][1], n, APD_COMPRESS_AUTO, ks[i] * 7 + s);
                roundtrip_palette_ic(ks[i], c, sizes[s][0], sizes[s][1], n, APD_COMPRESS_AUTO, APD_ICODE_ON,
                                     ks[i] * 7 + s + 500);
            }
}
END_TEST

START_TEST(file_chunks_and_compression)
{
    /* several chunks (small chunks forced), compression with and without dictionary */
    roundtrip_palette(64, 3, 32, 32, 2500, APD_COMPRESS_ON, 11);
    roundtrip_palette(16, 1, 28, 28, 3000, APD_COMPRESS_AUTO, 12);
    roundtrip_palette(64, 3, 32, 32, 2100, APD_COMPRESS_OFF, 13);
    roundtrip_palette_icv(64, 3, 32, 32, 2500, APD_COMPRESS_AUTO, APD_ICODE_ON, 2, 14); /* coded, several chunks */
}
END_TEST

START_TEST(file_direct)
{
    for (uint32_t c = 1; c <= 3; c += 2)
        for (int s = 0; s < 4; s++) {
            uint32_t h = sizes[s][0], w = sizes[s][1], n = s == 3 ? 4 : 30;
            char path[300];
            fmt_path(path, sizeof path, "direct.apd");
            apd_writer_opts o = fmt_opts(APD_KIND_DIRECT, c, h, w, 0);
            o.n_classes = 0;
            apd_writer *wr;
            apd_err err;
            ck_assert_msg(apd_writer_create(&wr, path, &o, &err) == APD_OK, "%s", err.msg);
            size_t np = (size_t)h * w * c;
            uint8_t *img = malloc((size_t)n * np);
            apd__rng r;
            apd__rng_seed(&r, 77 + s, c);
            for (size_t i = 0; i < (size_t)n * np; i++)
                img[i] = (i / 7) % 2 ? (uint8_t)apd__rng_u64(&r) : (uint8_t)(i / 50);
            for (uint32_t i = 0; i < n; i++)
                ck_assert_int_eq(apd_writer_put_direct(wr, img + i * np, 12345 + i, i), APD_OK);
            uint8_t pal[3] = {0}, ix = 0;
            ck_assert_int_eq(apd_writer_put_palette(wr, pal, 1, &ix, 0, 0), APD_EINVAL);
            ck_assert_int_eq(apd_writer_close(wr), APD_OK);
            apd_reader *rd;
            ck_assert_msg(apd_reader_open(&rd, path, NULL, &err) == APD_OK, "%s", err.msg);
            apd_file_info fi;
            apd_reader_info(rd, &fi);
            ck_assert_uint_eq(fi.kind, APD_KIND_DIRECT);
            ck_assert_uint_eq(fi.k, 0);
            ck_assert_uint_eq(fi.n_records, n);
            uint8_t *out = malloc(np);
            for (uint32_t i = 0; i < n; i++) {
                uint32_t lab;
                ck_assert_int_eq(apd_reader_decode(rd, i, APD_LAYOUT_CHW, out, np, &lab), APD_OK);
                ck_assert_mem_eq(out, img + i * np, np);
                ck_assert_uint_eq(lab, 12345 + i);
                ck_assert_int_eq(apd_reader_decode(rd, i, APD_LAYOUT_HWC, out, np, NULL), APD_OK);
                size_t npix = (size_t)h * w;
                for (size_t p = 0; p < npix; p++)
                    for (uint32_t ch = 0; ch < c; ch++)
                        APD_CK(out[p * c + ch] == img[i * np + ch * npix + p], "record %zu pixel %zu channel %u: %u, "
                               "want %u", (size_t)i, p, ch, out[p * c + ch], img[i * np + ch * npix + p]);
            }
            uint8_t rp[768];
            uint32_t rk;
            ck_assert_int_eq(apd_reader_record(rd, 0, rp, &rk, NULL, NULL), APD_EUNSUPPORTED);
            apd_reader_close(rd);
            free(out);
            free(img);
        }
}
END_TEST

START_TEST(writer_refuses_overwrite_and_bad_args)
{
    char path[300];
    fmt_path(path, sizeof path, "exists.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 4, 4, 16);
    apd_writer *wr;
    apd_err err;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    o.force = 0;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_EEXIST);
    ck_assert_ptr_null(wr);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    o.force = 1;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    uint8_t pal[48] = {0}, idx[16] = {0};
    ck_assert_int_eq(apd_writer_put_palette(wr, pal, 17, idx, 0, 0), APD_EINVAL);
    ck_assert_int_eq(apd_writer_put_palette(wr, pal, 0, idx, 0, 0), APD_EINVAL);
    idx[3] = 5;
    ck_assert_int_eq(apd_writer_put_palette(wr, pal, 5, idx, 0, 0), APD_EINVAL);
    ck_assert_ptr_nonnull(strstr(apd_writer_errmsg(wr), "index 5"));
    ck_assert_int_eq(apd_writer_put_palette(wr, pal, 6, idx, 10, 0), APD_EINVAL); /* label */
    ck_assert_int_eq(apd_writer_put_palette(wr, pal, 6, idx, 9, 0), APD_OK);
    ck_assert_int_eq(apd_writer_set_meta(wr, "seed", "{bad json"), APD_EINVAL);
    ck_assert_int_eq(apd_writer_set_meta(wr, "seed", "42"), APD_OK);
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    ck_assert_int_eq(apd_writer_close(NULL), APD_OK);
    apd_reader_close(NULL);
    o.c = 2;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_EINVAL);
    o.c = 3;
    o.h = 5000;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_ELIMIT);
    o.h = 4;
    o.k = APD_MAX_COLORS + 1;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_EINVAL);
}
END_TEST

START_TEST(reproducible_records)
{
    /* same inputs -> byte-identical chunk values (created timestamp pinned) */
    setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
    char p1[300], p2[300];
    fmt_path(p1, sizeof p1, "rep1.apd");
    fmt_path(p2, sizeof p2, "rep2.apd");
    for (int f = 0; f < 2; f++) {
        apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 1, 28, 28, 16);
        apd_writer *wr;
        apd_err err;
        ck_assert_int_eq(apd_writer_create(&wr, f ? p2 : p1, &o, &err), APD_OK);
        apd__rng r;
        apd__rng_seed(&r, 5, 0);
        uint8_t pal[16], idx[784];
        for (int i = 0; i < 300; i++) {
            fmt_random_palette_image(&r, 16, 1, 784, pal, idx);
            for (int p = 0; p < 784; p++) idx[p] = (uint8_t)(idx[p] & (p % 3 ? 1 : 15));
            ck_assert_int_eq(apd_writer_put_palette(wr, pal, 16, idx, (uint32_t)i % 10, (uint64_t)i), APD_OK);
        }
        ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    }
    apd_reader *a, *b;
    ck_assert_int_eq(apd_reader_open(&a, p1, NULL, NULL), APD_OK);
    ck_assert_int_eq(apd_reader_open(&b, p2, NULL, NULL), APD_OK);
    ck_assert_str_eq(apd_reader_meta_json(a), apd_reader_meta_json(b));
    apd_file_stats sa, sb;
    ck_assert_int_eq(apd_reader_stats(a, &sa), APD_OK);
    ck_assert_int_eq(apd_reader_stats(b, &sb), APD_OK);
    ck_assert_uint_eq(sa.stored_bytes, sb.stored_bytes);
    ck_assert_uint_eq(sa.dict_bytes, sb.dict_bytes);
    apd_reader_close(a);
    apd_reader_close(b);
    unsetenv("SOURCE_DATE_EPOCH");
}
END_TEST

START_TEST(quantize_put_matches_quantizer)
{
    char path[300];
    fmt_path(path, sizeof path, "quant.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 8, 8, 4);
    apd_writer *wr;
    apd_err err;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    uint8_t img[192], pal[768], idx[64], ref[192], out[192];
    apd__rng r;
    apd__rng_seed(&r, 9, 0);
    for (int i = 0; i < 192; i++) img[i] = (uint8_t)apd__rng_u64(&r);
    ck_assert_int_eq(apd_quantize_put(wr, APD_QUANT_MEDIAN_CUT, img, 1, 7, 0), APD_OK);
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    uint32_t ku;
    ck_assert_int_eq(apd_quantize_image(APD_QUANT_MEDIAN_CUT, img, 3, 8, 8, 4, 0, pal, idx, &ku), APD_OK);
    fmt_ref_decode(pal, idx, 64, 3, 1, ref);
    apd_reader *rd;
    ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
    ck_assert_int_eq(apd_reader_decode(rd, 0, APD_LAYOUT_CHW, out, sizeof out, NULL), APD_OK);
    ck_assert_mem_eq(out, ref, 192);
    apd_reader_close(rd);
}
END_TEST

/* The one list of library metadata keys: maintained keys are refused by set_meta, defaulted
 * ones override the options, everything else is the caller's; apd_writer_info agrees with
 * what a reader sees after close. */
START_TEST(metadata_keys_and_writer_info)
{
    static const char *const maintained[] = {"format", "format_version", "kind", "c", "h", "w",
        "k", "bits", "records_per_chunk", "n_records", "n_classes", "class_counts", "class_names"};
    static const char *const defaulted[] = {"dataset", "mean", "std"};
    static const char *const user[] = {"created", "library_version", "method", "version", "seed", ""};
    char path[300];
    fmt_path(path, sizeof path, "keys.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 4, 4, 16);
    o.dataset_name = "from-options";
    apd_writer *wr;
    apd_err err;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    for (size_t i = 0; i < sizeof maintained / sizeof *maintained; i++) {
        ck_assert_int_eq(apd_meta_key_classify(maintained[i], strlen(maintained[i])), APD_META_KEY_MAINTAINED);
        ck_assert_int_eq(apd_writer_set_meta(wr, maintained[i], "1"), APD_EINVAL);
    }
    for (size_t i = 0; i < sizeof defaulted / sizeof *defaulted; i++)
        ck_assert_int_eq(apd_meta_key_classify(defaulted[i], strlen(defaulted[i])), APD_META_KEY_DEFAULTED);
    for (size_t i = 0; i < sizeof user / sizeof *user; i++)
        ck_assert_int_eq(apd_meta_key_classify(user[i], strlen(user[i])), APD_META_KEY_USER);
    /* keys inside a larger text: only len bytes count */
    ck_assert_int_eq(apd_meta_key_classify("kindness", 4), APD_META_KEY_MAINTAINED);
    ck_assert_int_eq(apd_meta_key_classify("kindness", 8), APD_META_KEY_USER);
    ck_assert_int_eq(apd_meta_key_classify(NULL, 0), APD_META_KEY_USER);
    ck_assert_int_eq(apd_writer_set_meta(wr, "dataset", "\"overridden\""), APD_OK);
    ck_assert_int_eq(apd_writer_set_meta(wr, "version", "\"a user key\""), APD_OK);
    uint8_t pal[48] = {1, 2, 3}, idx[16] = {0};
    apd_file_info wi, ri;
    for (uint32_t i = 0; i < 5; i++) ck_assert_int_eq(apd_writer_put_palette(wr, pal, 1, idx, i, i), APD_OK);
    ck_assert_int_eq(apd_writer_info(wr, &wi), APD_OK);
    ck_assert_int_eq(apd_writer_info(NULL, &wi), APD_EINVAL);
    ck_assert_uint_eq(wi.n_records, 5);
    ck_assert_str_eq(wi.dataset_name, "from-options");
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    apd_reader *rd;
    ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
    ck_assert_int_eq(apd_reader_info(rd, &ri), APD_OK);
    ck_assert_uint_eq(ri.n_records, wi.n_records);
    ck_assert_uint_eq(ri.c, wi.c);
    ck_assert_uint_eq(ri.h, wi.h);
    ck_assert_uint_eq(ri.w, wi.w);
    ck_assert_uint_eq(ri.k, wi.k);
    ck_assert_uint_eq(ri.bits, wi.bits);
    ck_assert_uint_eq(ri.kind, wi.kind);
    ck_assert_uint_eq(ri.n_classes, wi.n_classes);
    ck_assert_uint_eq(ri.records_per_chunk, wi.records_per_chunk);
    ck_assert_uint_eq(ri.n_chunks, wi.n_chunks);
    ck_assert_str_eq(ri.dataset_name, "overridden");
    ck_assert_ptr_nonnull(strstr(apd_reader_meta_json(rd), "\"version\": \"a user key\""));
    apd_reader_close(rd);
}
END_TEST

/* Entries of dir (not . and ..). */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Lock-file protocol (spec sections 3, 10.5): a writer never creates PATH-lock (it writes a
 * temporary beside PATH and renames the finished file onto it); a reader in another process
 * that opened the previous file keeps a valid snapshot of it through the replacement;
 * reading and loading leave nothing next to the file. */
START_TEST(no_lock_file_left_behind)
{
    char dir[300], path[340], lockp[360];
    fmt_path(dir, sizeof dir, "lockdir");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/l.apd", dir);
    snprintf(lockp, sizeof lockp, "%s-lock", path);
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 4, 4, 16);
    o.records_per_chunk = 4;
    apd_writer *wr;
    apd_err err;
    apd__rng r;
    apd__rng_seed(&r, 77, 0);
    enum { FIRST = 3, MORE = 200 };
    uint8_t pal[FIRST + MORE][48], idx[FIRST + MORE][16], ref[FIRST][48];
    for (int i = 0; i < FIRST + MORE; i++) fmt_random_palette_image(&r, 16, 3, 16, pal[i], idx[i]);
    /* the previous file: FIRST records */
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    for (int i = 0; i < FIRST; i++) {
        ck_assert_int_eq(apd_writer_put_palette(wr, pal[i], 16, idx[i], (uint32_t)i, APD_NO_SOURCE_ID), APD_OK);
        fmt_ref_decode(pal[i], idx[i], 16, 3, 0, ref[i]);
    }
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    ck_assert(!path_exists(lockp));
    ck_assert_int_eq(dir_entries(dir), 1);
    int to_child[2], to_parent[2];
    ck_assert_int_eq(pipe(to_child), 0);
    ck_assert_int_eq(pipe(to_parent), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* reader process: keeps the previous file open while it is replaced */
        apd_reader *rd;
        uint8_t out[48], b = 0;
        int ok = apd_reader_open(&rd, path, NULL, NULL) == APD_OK && apd_reader_count(rd) == FIRST;
        for (int i = 0; ok && i < FIRST; i++)
            ok = apd_reader_decode(rd, (uint64_t)i, APD_LAYOUT_HWC, out, sizeof out, NULL) == APD_OK &&
                 memcmp(out, ref[i], 48) == 0;
        if (write(to_parent[1], &b, 1) != 1 || read(to_child[0], &b, 1) != 1) ok = 0;
        for (int i = 0; ok && i < FIRST; i++) /* after the replacement */
            ok = apd_reader_decode(rd, (uint64_t)i, APD_LAYOUT_HWC, out, sizeof out, NULL) == APD_OK &&
                 memcmp(out, ref[i], 48) == 0;
        if (ok) apd_reader_close(rd);
        _exit(ok ? 0 : 1);
    }
    uint8_t b = 1;
    ck_assert_int_eq(read(to_parent[0], &b, 1), 1);
    /* the replacement: written beside the file (nothing at PATH changes, no PATH-lock) */
    o.force = 1;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    for (int i = 0; i < FIRST + MORE; i++) {
        ck_assert_int_eq(apd_writer_put_palette(wr, pal[i], 16, idx[i], (uint32_t)(i % 10), APD_NO_SOURCE_ID), APD_OK);
        ck_assert_int_eq(apd_writer_commit(wr), APD_OK);
    }
    ck_assert(!path_exists(lockp));
    ck_assert_int_eq(dir_entries(dir), 2); /* l.apd and the writer's temporary */
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    ck_assert(!path_exists(lockp));
    ck_assert_int_eq(write(to_child[1], &b, 1), 1);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader process saw a broken snapshot");
    ck_assert(!path_exists(lockp));
    ck_assert_int_eq(dir_entries(dir), 1); /* l.apd only */
    /* reading and loading without a writer create nothing */
    apd_reader *rd;
    ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
    ck_assert_uint_eq(apd_reader_count(rd), FIRST + MORE);
    ck_assert(!path_exists(lockp));
    apd_reader_close(rd);
    apd_loader *l;
    ck_assert_int_eq(apd_loader_open(&l, path, NULL, &err), APD_OK);
    ck_assert_uint_eq(apd_loader_num_samples(l), FIRST + MORE);
    apd_loader_close(l);
    ck_assert_int_eq(dir_entries(dir), 1);
    /* a stale lock file (killed writer of another program) is used, not recreated, and not
       removed by readers */
    FILE *f = fopen(lockp, "wb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
    ck_assert_uint_eq(apd_reader_count(rd), FIRST + MORE);
    apd_reader_close(rd);
    ck_assert_int_eq(dir_entries(dir), 2);
    close(to_child[0]); close(to_child[1]); close(to_parent[0]); close(to_parent[1]);
}
END_TEST

/* apd_quantize_put: quantizer arguments and writer kind are checked before anything is put. */
START_TEST(quantize_put_refuses_bad_args)
{
    char path[300];
    fmt_path(path, sizeof path, "qdirect.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_DIRECT, 3, 4, 4, 0);
    apd_writer *wr;
    apd_err err;
    uint8_t img[48] = {0};
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    ck_assert_int_eq(apd_quantize_put(wr, APD_QUANT_OCTREE, img, 0, 0, 0), APD_EINVAL);
    ck_assert_int_eq(apd_quantize_put(NULL, APD_QUANT_OCTREE, img, 0, 0, 0), APD_EINVAL);
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    o = fmt_opts(APD_KIND_PALETTE, 3, 4, 4, 8);
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    ck_assert_int_eq(apd_quantize_put(wr, APD_QUANT_OCTREE, NULL, 0, 0, 0), APD_EINVAL);
    ck_assert_int_eq(apd_quantize_put(wr, (apd_quantizer)9, img, 0, 0, 0), APD_EINVAL);
    ck_assert_uint_eq(apd_writer_count(wr), 0);
    ck_assert_int_eq(apd_quantize_put(wr, APD_QUANT_OCTREE, img, 0, 0, 0), APD_OK);
    ck_assert_uint_eq(apd_writer_count(wr), 1);
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
}
END_TEST

typedef struct {
    apd_reader *r;
    const uint8_t *ref; /* n * 3072 HWC */
    uint32_t n, start;
    int bad;
} thr_arg;

static void *thr_decode(void *p)
{
    thr_arg *a = p;
    uint8_t out[3072];
    for (int rep = 0; rep < 3; rep++)
        for (uint32_t j = 0; j < a->n; j++) {
            uint32_t i = (j * 7 + a->start) % a->n; /* different orders: chunks resolved concurrently */
            uint32_t lab;
            if (apd_reader_decode(a->r, i, APD_LAYOUT_HWC, out, sizeof out, &lab) != APD_OK ||
                memcmp(out, a->ref + (size_t)i * 3072, 3072) != 0 || lab != i % 10)
                a->bad++;
        }
    return NULL;
}

START_TEST(concurrent_threads_and_processes)
{
    char path[300];
    fmt_path(path, sizeof path, "mt.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_PALETTE, 3, 32, 32, 64);
    o.records_per_chunk = 50; /* 20 chunks resolved lazily by racing threads */
    apd_writer *wr;
    apd_err err;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    const uint32_t n = 1000;
    uint8_t *ref = malloc((size_t)n * 3072), pal[192], idx[1024];
    apd__rng r;
    apd__rng_seed(&r, 31, 0);
    for (uint32_t i = 0; i < n; i++) {
        fmt_random_palette_image(&r, 64, 3, 1024, pal, idx);
        fmt_ref_decode(pal, idx, 1024, 3, 0, ref + (size_t)i * 3072);
        ck_assert_int_eq(apd_writer_put_palette(wr, pal, 64, idx, i % 10, i), APD_OK);
    }
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    /* two other processes read the same file at the same time (each opens its own reader) */
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            apd_reader *cr;
            if (apd_reader_open(&cr, path, NULL, NULL) != APD_OK) _exit(2);
            thr_arg a = {cr, ref, n, (uint32_t)k * 333, 0};
            thr_decode(&a);
            apd_reader_close(cr);
            _exit(a.bad ? 1 : 0);
        }
    }
    apd_reader *rd;
    ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
    pthread_t t[4];
    thr_arg a[4];
    for (int k = 0; k < 4; k++) {
        a[k] = (thr_arg){rd, ref, n, (uint32_t)k * 250, 0};
        ck_assert_int_eq(pthread_create(&t[k], NULL, thr_decode, &a[k]), 0);
    }
    for (int k = 0; k < 4; k++) {
        pthread_join(t[k], NULL);
        ck_assert_int_eq(a[k].bad, 0);
    }
    apd_reader_close(rd);
    for (int k = 0; k < 2; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    free(ref);
}
END_TEST

/* More data than the writer's initial 64 MiB LMDB map: the map must grow (no MDB_MAP_FULL). */
START_TEST(map_grows_on_big_import)
{
    char path[300];
    fmt_path(path, sizeof path, "big.apd");
    apd_writer_opts o = fmt_opts(APD_KIND_DIRECT, 3, 128, 128, 0);
    o.compress = APD_COMPRESS_OFF;
    apd_writer *wr;
    apd_err err;
    ck_assert_int_eq(apd_writer_create(&wr, path, &o, &err), APD_OK);
    const size_t ib = 3 * 128 * 128;
    const uint32_t n = 2000; /* 98 MB */
    uint8_t *img = malloc(ib);
    for (uint32_t i = 0; i < n; i++) {
        for (size_t p = 0; p < ib; p += 4096) img[p] = (uint8_t)(i + p / 4096);
        ck_assert_msg(apd_writer_put_direct(wr, img, i % 10, APD_NO_SOURCE_ID) == APD_OK, "%s", apd_writer_errmsg(wr));
    }
    ck_assert_int_eq(apd_writer_close(wr), APD_OK);
    apd_reader *rd;
    ck_assert_int_eq(apd_reader_open(&rd, path, NULL, &err), APD_OK);
    ck_assert_uint_eq(apd_reader_count(rd), n);
    uint8_t *out = malloc(ib);
    for (uint32_t i = 0; i < n; i += 333) {
        ck_assert_int_eq(apd_reader_decode(rd, i, APD_LAYOUT_CHW, out, ib, NULL), APD_OK);
        for (size_t p = 0; p < ib; p += 4096) ck_assert_uint_eq(out[p], (uint8_t)(i + p / 4096));
    }
    apd_file_stats fs;
    ck_assert_int_eq(apd_reader_stats(rd, &fs), APD_OK);
    printf("map_grows_on_big_import: %llu bytes written through a growing map\n", (unsigned long long)fs.file_bytes);
    ck_assert_uint_gt(fs.file_bytes, (uint64_t)64 << 20);
    apd_reader_close(rd);
    unlink(path);
    free(out);
    free(img);
}
END_TEST

int main(void)
{
    fmt_tmpdir(); /* create before the forked test cases so they share it */
    Suite *s = suite_create("format_roundtrip");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, crc_vector);
    tcase_add_test(tc, pack_roundtrip);
    tcase_add_test(tc, kernels_every_k);
    tcase_add_test(tc, file_every_k_3x5);
    tcase_add_test(tc, file_every_width_sizes);
    tcase_add_test(tc, file_chunks_and_compression);
    tcase_add_test(tc, file_direct);
    tcase_add_test(tc, writer_refuses_overwrite_and_bad_args);
    tcase_add_test(tc, reproducible_records);
    tcase_add_test(tc, quantize_put_matches_quantizer);
    tcase_add_test(tc, metadata_keys_and_writer_info);
    tcase_add_test(tc, quantize_put_refuses_bad_args);
    tcase_add_test(tc, no_lock_file_left_behind);
    tcase_add_test(tc, concurrent_threads_and_processes);
    tcase_add_test(tc, map_grows_on_big_import);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    fmt_rmtmp();
    return nf ? 1 : 0;
}
