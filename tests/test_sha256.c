/* test_sha256.c — SHA-256 vectors, split invariance, both block functions, tap;
 * HMAC-SHA256 (RFC 4231). */
#include "harness.h"
#include "../lib/internal.h"
#include "sluice/sha256.h"

#include <stdlib.h>

/* Digest of data fed in one update; accel 0 forces the portable rounds. */
static void digest_hex(const void *data, size_t len, int accel, char hex[65])
{
    sluice_sha256_ctx c;
    unsigned char d[32];
    sluice_sha256_init(&c);
    if (!accel)
        c._accel = 2; /* the portable rounds */
    sluice_sha256_update(&c, data, len);
    sluice_sha256_final(&c, d);
    sluice_sha256_hex(d, hex);
}

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, ch, n);
    s[n] = 0;
    return s;
}

TEST(sha256_known_vectors)
{
    static const struct {
        const char *msg;
        size_t repeat_a; /* msg NULL: this many 'a's */
        const char *hex;
    } v[] = {
        {"", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 0, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 0,
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
         "lmnopqrsmnopqrstnopqrstu",
         0, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
        {NULL, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
        /* padding edges: 55 fits one block, 56..63 need a second, 64 aligned */
        {NULL, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {NULL, 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {NULL, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {NULL, 65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {NULL, 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char *owned = v[i].msg ? NULL : repeat('a', v[i].repeat_a);
        const char *m = v[i].msg ? v[i].msg : owned;
        size_t len = strlen(m);
        char hex[65];
        for (int accel = 0; accel <= 1; accel++) {
            digest_hex(m, len, accel, hex);
            EXPECT_STR(hex, v[i].hex);
        }
        unsigned char d[32];
        sluice_sha256(m, len, d); /* one-shot */
        sluice_sha256_hex(d, hex);
        EXPECT_STR(hex, v[i].hex);
        free(owned);
    }
}

TEST(sha256_every_split_point_same_digest)
{
    unsigned char msg[300];
    unsigned long long seed = 7;
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)t_rand(&seed);
    for (size_t n = 0; n <= sizeof msg; n += 37) {
        char want[65], got[65];
        digest_hex(msg, n, 1, want);
        for (size_t k = 0; k <= n; k++) {
            for (size_t j = k; j <= n; j += 13) { /* three pieces: [0,k) [k,j) [j,n) */
                sluice_sha256_ctx c;
                unsigned char d[32];
                sluice_sha256_init(&c);
                sluice_sha256_update(&c, msg, k);
                sluice_sha256_update(&c, msg + k, j - k);
                sluice_sha256_update(&c, msg + j, n - j);
                sluice_sha256_final(&c, d);
                sluice_sha256_hex(d, got);
                EXPECT_STR(got, want);
            }
        }
    }
}

TEST(sha256_random_chunkings_and_both_block_functions_agree)
{
    enum { MAX = 5000 };
    unsigned char *msg = malloc(MAX);
    unsigned long long seed = 42;
    for (size_t i = 0; i < MAX; i++)
        msg[i] = (unsigned char)t_rand(&seed);
    for (int iter = 0; iter < 300; iter++) {
        size_t n = iter < 200 ? (size_t)iter : (size_t)(t_rand(&seed) % MAX);
        char c_hex[65], x_hex[65], got[65];
        digest_hex(msg, n, 0, c_hex);
        digest_hex(msg, n, 1, x_hex);
        EXPECT_STR(x_hex, c_hex);
        sluice_sha256_ctx c = {0}; /* all-zero is a fresh context */
        unsigned char d[32];
        for (size_t off = 0; off < n;) {
            size_t take = (size_t)(t_rand(&seed) % 150);
            if (take > n - off)
                take = n - off;
            sluice_sha256_update(&c, msg + off, take);
            off += take;
        }
        sluice_sha256_final(&c, d);
        sluice_sha256_hex(d, got);
        EXPECT_STR(got, c_hex);
    }
    free(msg);
}

TEST(sha256_final_resets_and_null_empty_update)
{
    sluice_sha256_ctx c;
    unsigned char d[32], zero[sizeof c];
    char hex[65];
    sluice_sha256_init(&c);
    sluice_sha256_update(&c, "abc", 3);
    sluice_sha256_final(&c, d);
    memset(zero, 0, sizeof zero);
    EXPECT_MEM(&c, sizeof c, zero, sizeof zero); /* fresh again */
    sluice_sha256_update(&c, NULL, 0);
    sluice_sha256_final(&c, d); /* digest of "" */
    sluice_sha256_hex(d, hex);
    EXPECT_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(sha256_hex_is_lowercase_and_terminated)
{
    unsigned char d[32];
    char hex[66];
    for (int i = 0; i < 32; i++)
        d[i] = (unsigned char)(i * 8 + 7);
    memset(hex, 'X', sizeof hex);
    sluice_sha256_hex(d, hex);
    EXPECT_STR(hex, "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
    EXPECT_EQ(hex[65], 'X'); /* writes exactly 65 bytes */
}

TEST(sha256_tap_digests_a_stream_in_passing)
{
    /* 200 KiB in uneven chunks, some spanning pool blocks */
    enum { N = 200 * 1024 };
    unsigned char *body = malloc(N);
    unsigned long long seed = 99;
    for (size_t i = 0; i < N; i++)
        body[i] = (unsigned char)t_rand(&seed);
    sluice_bytes chunks[40];
    size_t n = 0, off = 0;
    while (off < N) {
        size_t take = n == 39 ? N - off : 1 + (size_t)(t_rand(&seed) % 9000);
        if (take > N - off)
            take = N - off;
        REQUIRE(sluice_bytes_copy_from(T_POOL, body + off, take, &chunks[n]) == 0);
        off += take;
        n++;
    }
    sluice_stream *mem, *tapped;
    sluice_sink *out;
    sluice_sha256_ctx ctx;
    sluice_sha256_init(&ctx);
    REQUIRE(sluice_memstream_new(T_POOL, chunks, n, SLUICE_MEMSTREAM_PENDING, &mem) == 0);
    REQUIRE(sluice_tap_new(T_POOL, mem, sluice_sha256_tap, &ctx, &tapped) == 0);
    REQUIRE(sluice_vecsink_new(T_POOL, &out) == 0);
    sluice_pump p;
    sluice_pump_init(&p, tapped, out, NULL);
    EXPECT_ERR(sluice_pump_run(&p, 5000), 0);
    EXPECT_EQ(sluice_pump_moved(&p), N);

    unsigned char got[32], want[32];
    sluice_sha256_final(&ctx, got);
    sluice_sha256(body, N, want);
    EXPECT_MEM(got, 32, want, 32);
    sluice_stream_close(tapped);
    sluice_sink_close(out);
    free(body);
}

/* ---- HMAC-SHA256 ------------------------------------------------------------ */

static void fill(unsigned char *p, unsigned char b, size_t n)
{
    memset(p, b, n);
}

/* RFC 4231 section 4, test cases 1-7 (case 5 is compared on its first 128
 * bits, as the RFC truncates it; 6 and 7 have keys longer than a block). */
TEST(hmac_sha256_rfc4231_vectors)
{
    unsigned char k20b[20], k20a[20], k25[25], k20c[20], k131[131], d50dd[50], d50cd[50];
    fill(k20b, 0x0b, 20);
    fill(k20a, 0xaa, 20);
    for (int i = 0; i < 25; i++)
        k25[i] = (unsigned char)(i + 1);
    fill(k20c, 0x0c, 20);
    fill(k131, 0xaa, 131);
    fill(d50dd, 0xdd, 50);
    fill(d50cd, 0xcd, 50);
    static const char long_data[] =
        "This is a test using a larger than block-size key and a larger than block-size data. "
        "The key needs to be hashed before being used by the HMAC algorithm.";
    const struct {
        const void *key;
        size_t key_len;
        const void *data;
        size_t len;
        size_t cmp; /* hex digits compared */
        const char *hex;
    } v[] = {
        {k20b, 20, "Hi There", 8, 64,
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"Jefe", 4, "what do ya want for nothing?", 28, 64,
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {k20a, 20, d50dd, 50, 64, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {k25, 25, d50cd, 50, 64, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        {k20c, 20, "Test With Truncation", 20, 32, "a3b6167473100ee06e0c796c2955552b"},
        {k131, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54, 64,
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {k131, 131, long_data, sizeof long_data - 1, 64,
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char mac[32];
        char hex[65];
        sluice_hmac_sha256(v[i].key, v[i].key_len, v[i].data, v[i].len, mac);
        sluice_sha256_hex(mac, hex);
        hex[v[i].cmp] = '\0';
        EXPECT_STR(hex, v[i].hex);

        /* incremental, byte at a time, gives the same MAC */
        sluice_hmac_sha256_ctx c;
        sluice__hmac_sha256_key(&c, v[i].key, v[i].key_len);
        for (size_t j = 0; j < v[i].len; j++)
            sluice__hmac_sha256_update(&c, (const unsigned char *)v[i].data + j, 1);
        sluice__hmac_sha256_final(&c, mac);
        sluice_sha256_hex(mac, hex);
        hex[v[i].cmp] = '\0';
        EXPECT_STR(hex, v[i].hex);
    }
}

TEST(hmac_sha256_key_lengths_around_the_block_and_copied_context)
{
    /* keys of 63, 64 and 65 bytes: 64 is used as is, 65 is hashed first, so
     * HMAC(k65) == HMAC(SHA-256(k65)) must hold and HMAC(k64) must not equal it */
    unsigned char key[65], hk[32], a[32], b[32];
    for (int i = 0; i < 65; i++)
        key[i] = (unsigned char)(0x40 + i);
    sluice_sha256(key, 65, hk);
    sluice_hmac_sha256(key, 65, "msg", 3, a);
    sluice_hmac_sha256(hk, 32, "msg", 3, b);
    EXPECT_MEM(a, 32, b, 32);
    sluice_hmac_sha256(key, 64, "msg", 3, b);
    EXPECT(memcmp(a, b, 32) != 0);
    sluice_hmac_sha256(NULL, 0, NULL, 0, a); /* empty key and message */
    char hex[65];
    sluice_sha256_hex(a, hex);
    EXPECT_STR(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");

    /* a keyed context copied before update MACs two messages under one key */
    sluice_hmac_sha256_ctx keyed, c, zero;
    sluice__hmac_sha256_key(&keyed, "Jefe", 4);
    c = keyed;
    sluice__hmac_sha256_update(&c, "what do ya want ", 16);
    sluice__hmac_sha256_update(&c, "for nothing?", 12);
    sluice__hmac_sha256_final(&c, a);
    sluice_sha256_hex(a, hex);
    EXPECT_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(&zero, 0, sizeof zero);
    EXPECT_MEM(&c, sizeof c, &zero, sizeof zero); /* final wiped it */
    c = keyed;
    sluice__hmac_sha256_update(&c, "Hi There", 8);
    sluice__hmac_sha256_final(&c, a);
    sluice_hmac_sha256("Jefe", 4, "Hi There", 8, b);
    EXPECT_MEM(a, 32, b, 32);

    /* in place: k = HMAC(k, msg) */
    memcpy(a, hk, 32);
    sluice_hmac_sha256(a, 32, "msg", 3, a);
    sluice_hmac_sha256(hk, 32, "msg", 3, b);
    EXPECT_MEM(a, 32, b, 32);
}
