/* format/crc32c.c: CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78,
 * init and final xor 0xFFFFFFFF), the checksum of every .apd record, chunk table, header and
 * metadata (spec/apd-format.md section "Integrity").
 *
 * Why CRC-32C: x86 has it in hardware (SSE4.2 crc32 instruction, 8 bytes per instruction), so
 * verifying a 976-byte record costs ~0.1 us and stays far below the 1 us/image decode budget;
 * it detects every single-bit error and every burst up to 32 bits. The table version is the
 * portable fallback and the reference the tests compare against.
 * Test vector: crc32c("123456789") = 0xE3069283.
 */
#include <pthread.h>
#include <string.h>

#include "apd/format.h"
#include "common/internal.h"
#include "format/format_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define APD__HAVE_X86 1
#endif

static const uint32_t crc_table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
    0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
    0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
    0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
    0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
    0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
    0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
    0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
    0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
    0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
    0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
    0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
    0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
    0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
    0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
    0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
    0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
    0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
    0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
    0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
    0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
    0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
    0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
    0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
    0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
    0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
    0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
    0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
    0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
    0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
    0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
    0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
    0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351
};

uint32_t apd__crc32c_table(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (len--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#ifdef APD__HAVE_X86
/* Three-way interleaved hardware CRC (Mark Adler's crc32c.c method, as in zlib's contrib):
 * the crc32 instruction has a latency of 3 cycles but a throughput of 1, so one dependent
 * chain runs at a third of the possible speed. A block of 3*L bytes is run as three
 * independent chains over its thirds (the second and third starting from 0), then combined:
 * state = shift(shift(s0) ^ s1) ^ s2, where shift(s) appends L zero bytes to s, a linear map
 * applied with four 256-entry tables (crc_zeros_*). A 976-byte record (32x32 K = 64) then
 * costs ~170 cycles instead of ~370. The tables are built once (pthread_once) by squaring
 * the GF(2) operator of one zero bit. Tests compare against the table CRC at every length
 * and alignment (tests/format and tests/loader/test_loader_f32). */
#define CRC_POLY 0x82f63b78u
#define CRC_LONG 256u  /* bytes per chain in the large block (768 bytes per block) */
#define CRC_SHORT 32u  /* bytes per chain in the small block (96 bytes per block) */
static uint32_t crc_zeros_long[4][256], crc_zeros_short[4][256];
static pthread_once_t crc_zeros_once = PTHREAD_ONCE_INIT;

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1) sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++) square[n] = gf2_times(mat, mat[n]);
}

/* Operator (32 columns) that appends len zero bytes to a CRC state. */
static void crc_zeros_op(uint32_t *even, size_t len)
{
    uint32_t odd[32], row = 1;
    odd[0] = CRC_POLY; /* one zero bit */
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    gf2_square(even, odd); /* two zero bits */
    gf2_square(odd, even); /* four zero bits */
    do {                   /* first square gives one zero byte (eight zero bits) */
        gf2_square(even, odd);
        len >>= 1;
        if (len == 0) return;
        gf2_square(odd, even);
        len >>= 1;
    } while (len);
    memcpy(even, odd, 32 * sizeof *even);
}

static void crc_zeros(uint32_t zeros[4][256], size_t len)
{
    uint32_t op[32];
    crc_zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_times(op, n);
        zeros[1][n] = gf2_times(op, n << 8);
        zeros[2][n] = gf2_times(op, n << 16);
        zeros[3][n] = gf2_times(op, n << 24);
    }
}

static void crc_zeros_init(void)
{
    crc_zeros(crc_zeros_long, CRC_LONG);
    crc_zeros(crc_zeros_short, CRC_SHORT);
}

static inline uint64_t crc_shift(uint32_t zeros[4][256], uint64_t crc)
{
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^
           zeros[3][(crc >> 24) & 0xff];
}

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Whole blocks of 3 * chain bytes: three independent CRC chains over consecutive thirds,
 * combined by shifting through `chain` zero bytes (zeros = the table for that length).
 * Advances *pp and *lenp; inlined with constant chain lengths. */
__attribute__((target("sse4.2"), always_inline)) static inline uint64_t
crc_3way(uint64_t c0, const uint8_t **pp, size_t *lenp, size_t chain, uint32_t zeros[4][256])
{
    const uint8_t *p = *pp;
    size_t len = *lenp;
    while (len >= 3 * chain) {
        uint64_t c1 = 0, c2 = 0;
        for (const uint8_t *end = p + chain; p < end; p += 8) {
            c0 = _mm_crc32_u64(c0, ld64(p));
            c1 = _mm_crc32_u64(c1, ld64(p + chain));
            c2 = _mm_crc32_u64(c2, ld64(p + 2 * chain));
        }
        c0 = crc_shift(zeros, c0) ^ c1;
        c0 = crc_shift(zeros, c0) ^ c2;
        p += 2 * chain;
        len -= 3 * chain;
    }
    *pp = p;
    *lenp = len;
    return c0;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
                                                             size_t len)
{
    const uint8_t *p = data;
    uint64_t c0 = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        len--;
    }
    if (len >= 3 * CRC_SHORT) pthread_once(&crc_zeros_once, crc_zeros_init);
    c0 = crc_3way(c0, &p, &len, CRC_LONG, crc_zeros_long);
    c0 = crc_3way(c0, &p, &len, CRC_SHORT, crc_zeros_short);
    while (len >= 8) {
        c0 = _mm_crc32_u64(c0, ld64(p));
        p += 8;
        len -= 8;
    }
    while (len--) c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    return ~(uint32_t)c0;
}
#endif

/* Folding with carry-less multiplies (AVX-512 VPCLMULQDQ, x86-64): a 64-byte register of
 * four 16-byte lanes is folded forward over each next 64 bytes, the lanes are then folded
 * into one 16-byte value and that over the remaining whole 16-byte blocks, and the crc32
 * instruction finishes from that value (it is the message's remainder: crc32c over it from
 * state 0 continues as over the message so far). Folding a 16-byte value X = (lo, hi) over
 * n bits multiplies lo by x^(n + 64 - 1) mod P and hi by x^(n - 1) mod P (the -1: a
 * carry-less product of two bit-reflected operands comes out shifted by one bit); the
 * constants are those remainders, bit-reflected into the high 32 bits of a 64-bit word
 * (computed once by polynomial arithmetic and written out here). A 730-byte record costs
 * ~30 ns instead of ~55-80 (the three-way crc32 path below it), 2.6x; below 256 bytes the
 * three-way path is as fast. Tests compare it with the table CRC at every length 0-1100
 * and nine alignments (tests/format/test_format_roundtrip.c, crc_vector). */
#define CRC_VPCL_MIN 256u /* shorter: the three-way crc32 path is as fast */
#if defined(__x86_64__)
#define CRC_VPCL __attribute__((target("sse4.2,pclmul,avx512f,avx512vl,vpclmulqdq")))
static const uint64_t crc_k511 = 0x75bba45b00000000ull, crc_k575 = 0x1c19243b00000000ull; /* 512 bits */
static const uint64_t crc_k127 = 0x3171d43000000000ull, crc_k191 = 0x3743f7bd00000000ull; /* 128 bits */
static const uint64_t crc_k255 = 0xa2158b3400000000ull, crc_k319 = 0x33ccbbbc00000000ull; /* 256 bits */
static const uint64_t crc_k383 = 0x6051243f00000000ull, crc_k447 = 0xa46ef4aa00000000ull; /* 384 bits */

CRC_VPCL static uint32_t crc32c_vpclmul(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    if (len >= 64) {
        const __m512i k512 = _mm512_set_epi64((long long)crc_k511, (long long)crc_k575, (long long)crc_k511,
                                              (long long)crc_k575, (long long)crc_k511, (long long)crc_k575,
                                              (long long)crc_k511, (long long)crc_k575);
        __m512i a = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_castsi128_si512(_mm_cvtsi32_si128((int)(uint32_t)c)));
        p += 64, len -= 64;
        for (; len >= 64; p += 64, len -= 64)
            a = _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a, k512, 0x00), _mm512_clmulepi64_epi128(a, k512, 0x11),
                                          _mm512_loadu_si512(p), 0x96);
        /* lanes 0, 1, 2 folded over 384, 256 and 128 bits, lane 3 as it is, then summed */
        const __m512i kr = _mm512_set_epi64(0, 0, (long long)crc_k127, (long long)crc_k191, (long long)crc_k255,
                                            (long long)crc_k319, (long long)crc_k383, (long long)crc_k447);
        __m512i f = _mm512_xor_si512(_mm512_clmulepi64_epi128(a, kr, 0x00), _mm512_clmulepi64_epi128(a, kr, 0x11));
        f = _mm512_mask_mov_epi64(f, 0xc0, a);
        __m256i h = _mm256_xor_si256(_mm512_castsi512_si256(f), _mm512_extracti64x4_epi64(f, 1));
        __m128i x = _mm_xor_si128(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        const __m128i k128 = _mm_set_epi64x((long long)crc_k127, (long long)crc_k191);
        for (; len >= 16; p += 16, len -= 16)
            x = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k128, 0x00), _mm_clmulepi64_si128(x, k128, 0x11)),
                              _mm_loadu_si128((const __m128i *)p));
        c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
        c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(x, 1));
    }
    for (; len >= 8; p += 8, len -= 8) c = _mm_crc32_u64(c, ld64(p));
    while (len--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

static int probe_vpclmul(void)
{
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul") &&
           __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("vpclmulqdq");
}

int apd__crc32c_vpclmul_available(void)
{
    static int have = -1;
    return apd__cached_flag(&have, probe_vpclmul);
}
#else
int apd__crc32c_vpclmul_available(void)
{
    return 0;
}
#endif

uint32_t apd__crc32c_impl(int vpclmul, uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__)
    if (vpclmul && apd__crc32c_vpclmul_available()) return crc32c_vpclmul(crc, data, len);
#else
    (void)vpclmul;
#endif
#ifdef APD__HAVE_X86
    if (__builtin_cpu_supports("sse4.2")) return crc32c_hw(crc, data, len);
#endif
    return apd__crc32c_table(crc, data, len);
}

uint32_t apd_crc32c(uint32_t crc, const void *data, size_t len)
{
    return apd__crc32c_impl(len >= CRC_VPCL_MIN, crc, data, len);
}
