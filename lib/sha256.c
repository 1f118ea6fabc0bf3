/*
 * sha256.c — SHA-256 (FIPS 180-4), written for a tap on the body path.
 *
 * A digest must keep up with the proxy, so the block function is the whole
 * cost: the portable C rounds give about 0.25 GB/s on an x86-64 server core,
 * the SHA-NI instructions 1.8 GB/s (on par with OpenSSL there), which is why
 * both exist. The choice
 * is made once per context (cpuid at init) and stored in it: no global state.
 * Whole 64-byte blocks are hashed straight from the caller's memory; only a
 * partial block is copied into the context. HMAC-SHA256 sits on top of the
 * same context, for SigV4 signing (lib/sigv4.c).
 */
#include "internal.h"

#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SHA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static void blocks_c(uint32_t h[8], const unsigned char *p, size_t n);
#ifdef SHA_X86
static void blocks_x86(uint32_t h[8], const unsigned char *p, size_t n);
#endif
static int cpu_has_sha(void);

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static void compress(sluice_sha256_ctx *c, const unsigned char *p, size_t nblocks)
{
#ifdef SHA_X86
    /* decided at the first block, not in init: a context that never hashes
     * a block (a tap that sees no body) costs no CPU probe */
    if (!c->_accel)
        c->_accel = cpu_has_sha() ? 1 : 2;
    if (c->_accel == 1) {
        blocks_x86(c->_h, p, nblocks);
        return;
    }
#endif
    blocks_c(c->_h, p, nblocks);
}

void sluice_sha256_init(sluice_sha256_ctx *c)
{
    memset(c, 0, sizeof *c);
    memcpy(c->_h, IV, sizeof IV);
    c->_started = 1;
}

void sluice_sha256_update(sluice_sha256_ctx *c, const void *data, size_t len)
{
    if (!c->_started)
        sluice_sha256_init(c);
    if (len == 0)
        return;
    const unsigned char *p = data;
    size_t have = (size_t)(c->_len & 63);
    c->_len += len;
    if (have) {
        size_t take = 64 - have < len ? 64 - have : len;
        memcpy(c->_buf + have, p, take);
        p += take;
        len -= take;
        if (have + take < 64)
            return;
        compress(c, c->_buf, 1);
    }
    if (len >= 64) {
        compress(c, p, len / 64);
        p += len & ~(size_t)63;
        len &= 63;
    }
    if (len)
        memcpy(c->_buf, p, len);
}

void sluice_sha256_final(sluice_sha256_ctx *c, unsigned char out[SLUICE_SHA256_SIZE])
{
    if (!c->_started)
        sluice_sha256_init(c);
    uint64_t bits = c->_len * 8;
    size_t have = (size_t)(c->_len & 63);
    c->_buf[have++] = 0x80;
    if (have > 56) {
        memset(c->_buf + have, 0, 64 - have);
        compress(c, c->_buf, 1);
        have = 0;
    }
    memset(c->_buf + have, 0, 56 - have);
    for (int i = 0; i < 8; i++)
        c->_buf[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    compress(c, c->_buf, 1);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->_h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->_h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->_h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->_h[i];
    }
    memset(c, 0, sizeof *c);
}

void sluice_sha256(const void *data, size_t len, unsigned char out[SLUICE_SHA256_SIZE])
{
    sluice_sha256_ctx c;
    sluice_sha256_init(&c);
    sluice_sha256_update(&c, data, len);
    sluice_sha256_final(&c, out);
}

void sluice_sha256_hex(const unsigned char digest[SLUICE_SHA256_SIZE],
                       char hex[SLUICE_SHA256_HEX_SIZE])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SLUICE_SHA256_SIZE; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void sluice_sha256_tap(void *ud, const sluice_bytes *chunk)
{
    sluice_sha256_update(ud, chunk->data, chunk->len);
}

/* ---- HMAC-SHA256 (RFC 2104) ----------------------------------------------------
 *
 * Both key blocks are absorbed at init, so a keyed context is two digests
 * already one block in: MACing a short message costs two compressions for
 * the message and padding plus two for the outer hash, and copying a keyed
 * context skips the two key-block compressions entirely. Both halves are
 * copies of one fresh SHA-256 context: sluice_sha256_init() asks cpuid for
 * the SHA extensions, which costs microseconds under a hypervisor (three
 * cpuid exits, ~5 us measured), more than hashing a short message.
 */

void sluice__hmac_sha256_init(sluice_hmac_sha256_ctx *c, const sluice_sha256_ctx *fresh,
                              const void *key, size_t key_len)
{
    unsigned char k[64], pad[64];
    memset(k, 0, sizeof k);
    if (key_len > sizeof k) {
        sluice_sha256_ctx h = *fresh;
        sluice_sha256_update(&h, key, key_len);
        sluice_sha256_final(&h, k);
    } else if (key_len) {
        memcpy(k, key, key_len);
    }
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    c->_inner = *fresh;
    sluice_sha256_update(&c->_inner, pad, sizeof pad);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    c->_outer = *fresh;
    sluice_sha256_update(&c->_outer, pad, sizeof pad);
    sluice__wipe(k, sizeof k);
    sluice__wipe(pad, sizeof pad);
}

void sluice__hmac_sha256_key(sluice_hmac_sha256_ctx *c, const void *key, size_t key_len)
{
    sluice_sha256_ctx fresh;
    sluice_sha256_init(&fresh);
    sluice__hmac_sha256_init(c, &fresh, key, key_len);
}

void sluice__hmac_sha256_update(sluice_hmac_sha256_ctx *c, const void *data, size_t len)
{
    sluice_sha256_update(&c->_inner, data, len);
}

void sluice__hmac_sha256_final(sluice_hmac_sha256_ctx *c, unsigned char out[SLUICE_SHA256_SIZE])
{
    unsigned char inner[SLUICE_SHA256_SIZE];
    sluice_sha256_final(&c->_inner, inner);
    sluice_sha256_update(&c->_outer, inner, sizeof inner);
    sluice_sha256_final(&c->_outer, out);
    sluice__wipe(inner, sizeof inner);
}

void sluice_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        unsigned char out[SLUICE_SHA256_SIZE])
{
    sluice_hmac_sha256_ctx c;
    sluice__hmac_sha256_key(&c, key, key_len);
    sluice__hmac_sha256_update(&c, data, len);
    sluice__hmac_sha256_final(&c, out);
}

/* ---- portable block function ---------------------------------------------- */

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BSIG0(x) (ROR(x, 2) ^ ROR(x, 13) ^ ROR(x, 22))
#define BSIG1(x) (ROR(x, 6) ^ ROR(x, 11) ^ ROR(x, 25))
#define SSIG0(x) (ROR(x, 7) ^ ROR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROR(x, 17) ^ ROR(x, 19) ^ ((x) >> 10))
#define CH(e, f, g) ((g) ^ ((e) & ((f) ^ (g))))
#define MAJ(a, b, c) (((a) & (b)) | ((c) & ((a) | (b))))

/* One round with the variables renamed instead of shifted: the caller
 * rotates the argument list, so no values move between rounds. */
#define ROUND(a, b, c, d, e, f, g, h, i)                                       \
    do {                                                                       \
        uint32_t t1_ = h + BSIG1(e) + CH(e, f, g) + K[i] + w[(i) & 15];        \
        d += t1_;                                                              \
        h = t1_ + BSIG0(a) + MAJ(a, b, c);                                     \
    } while (0)

static void blocks_c(uint32_t h[8], const unsigned char *p, size_t n)
{
    uint32_t w[16];
    for (; n; n--, p += 64) {
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
                   (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
        uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; i += 8) {
            if (i >= 16) /* extend the schedule in place, 16 words at a time */
                for (int j = i; j < i + 8; j++)
                    w[j & 15] += SSIG1(w[(j - 2) & 15]) + w[(j - 7) & 15] +
                                 SSIG0(w[(j - 15) & 15]);
            ROUND(a, b, c, d, e, f, g, hh, i);
            ROUND(hh, a, b, c, d, e, f, g, i + 1);
            ROUND(g, hh, a, b, c, d, e, f, i + 2);
            ROUND(f, g, hh, a, b, c, d, e, i + 3);
            ROUND(e, f, g, hh, a, b, c, d, i + 4);
            ROUND(d, e, f, g, hh, a, b, c, i + 5);
            ROUND(c, d, e, f, g, hh, a, b, i + 6);
            ROUND(b, c, d, e, f, g, hh, a, i + 7);
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
        h[5] += f;
        h[6] += g;
        h[7] += hh;
    }
}

/* ---- x86 SHA extensions ----------------------------------------------------- */

#ifdef SHA_X86
static int cpu_has_sha(void)
{
#if defined(__GNUC__) && !defined(__clang__)
    /* libgcc probes the CPU once at load time; CPUID itself traps to the
     * hypervisor in a virtual machine (microseconds per call) */
    return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") &&
           __builtin_cpu_supports("ssse3");
#else /* clang has no "sha" for __builtin_cpu_supports */
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid(1, a, b, c, d);
    int sse = (c >> 9 & 1) && (c >> 19 & 1); /* SSSE3, SSE4.1 */
    __cpuid_count(7, 0, a, b, c, d);
    return sse && (b >> 29 & 1);
#endif
}

/*
 * The instructions keep the state as two vectors, ABEF and CDGH, and do two
 * rounds per sha256rnds2 (the second pair of schedule words comes from the
 * high half of the same vector). msg1/msg2 extend the schedule four words at
 * a time: w[t] = s1(w[t-2]) + w[t-7] + s0(w[t-15]) + w[t-16].
 */
__attribute__((target("sha,sse4.1,ssse3"))) static void blocks_x86(uint32_t h[8],
                                                                   const unsigned char *p,
                                                                   size_t n)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&h[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&h[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xb1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1b);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);

    for (; n; n--, p += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh, w[4];
        /* unrolled: 1.45 -> 1.8 GB/s, the index arithmetic folds away */
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m128i *wi = &w[i & 3];
            if (i < 4)
                *wi = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
            else
                *wi = _mm_sha256msg2_epu32(
                    _mm_add_epi32(_mm_sha256msg1_epu32(*wi, w[(i + 1) & 3]),
                                  _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4)),
                    w[(i + 3) & 3]);
            __m128i m = _mm_add_epi32(*wi, _mm_loadu_si128((const __m128i *)&K[4 * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(m, 0x0e));
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }

    /* back to a b c d / e f g h in memory */
    __m128i feba = _mm_shuffle_epi32(abef, 0x1b);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xb1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xf0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}
#else
static int cpu_has_sha(void)
{
    return 0;
}
#endif
