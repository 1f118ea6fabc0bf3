/*
 * test_sigv4.c — SigV4 for S3: AWS's published examples asserted to the
 * byte (the S3 API reference's "sig-v4-header-based-auth", "sigv4-streaming"
 * and "sigv4-streaming-trailers" pages), then encoding, ordering, argument
 * checks, chunk framing and lengths. tests/sigv4/botocore_diff.py compares
 * random requests with botocore's signer.
 */
#include "harness.h"

#include <stdlib.h>

#define HDR(n, v) {n, sizeof n - 1, v, sizeof v - 1}
#define KEY(s) s, sizeof s - 1

static const sluice_sigv4_credentials aws_example = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL};

#define CREDENTIAL "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"

/* Signs and checks the Authorization value; returns the signer's state. */
static void sign_expect(const sluice_sigv4_request *rq, const sluice_sigv4_credentials *cred,
                        const char *want, sluice_sigv4_signer *s)
{
    char auth[SLUICE_SIGV4_AUTH_SIZE];
    size_t len = 0;
    EXPECT_ERR(sluice_sigv4_sign(s, rq, cred, auth, sizeof auth, &len), 0);
    EXPECT_STR(auth, want);
    EXPECT_EQ(len, strlen(want));
}

static void canonical_expect(const sluice_sigv4_request *rq, const char *want)
{
    char cr[2048];
    size_t len = 0;
    EXPECT_ERR(sluice__sigv4_canonical_request(rq, &aws_example, cr, sizeof cr, &len), 0);
    EXPECT_STR(cr, want);
    EXPECT_EQ(len, strlen(want));
}

/* ---- the S3 API reference's single-chunk examples --------------------------- */

TEST(sigv4_aws_example_get_object_with_range)
{
    static const sluice_http_header h[] = {
        HDR("Host", "examplebucket.s3.amazonaws.com"),
        HDR("Range", "bytes=0-9"),
    };
    sluice_sigv4_request rq = {
        .method = "GET", .key = KEY("test.txt"), .headers = h, .num_headers = 2,
        .payload = SLUICE_SIGV4_EMPTY_SHA256, .region = "us-east-1",
        .amz_date = "20130524T000000Z",
    };
    canonical_expect(&rq, "GET\n"
                          "/test.txt\n"
                          "\n"
                          "host:examplebucket.s3.amazonaws.com\n"
                          "range:bytes=0-9\n"
                          "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                          "x-amz-date:20130524T000000Z\n"
                          "\n"
                          "host;range;x-amz-content-sha256;x-amz-date\n"
                          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sluice_sigv4_signer s;
    sign_expect(&rq, &aws_example,
                CREDENTIAL "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                           "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
                &s);
    EXPECT_STR(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    char target[64];
    size_t len;
    EXPECT_ERR(sluice_sigv4_target(&rq, target, sizeof target, &len), 0);
    EXPECT_STR(target, "/test.txt");
}

TEST(sigv4_aws_example_put_object)
{
    static const sluice_http_header h[] = {
        HDR("Host", "examplebucket.s3.amazonaws.com"),
        HDR("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        HDR("x-amz-storage-class", "REDUCED_REDUNDANCY"),
    };
    unsigned char d[32];
    char hex[65];
    sluice_sha256("Welcome to Amazon S3.", 21, d);
    sluice_sha256_hex(d, hex);
    EXPECT_STR(hex, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    sluice_sigv4_request rq = {
        .method = "PUT", .key = KEY("test$file.text"), .headers = h, .num_headers = 3,
        .payload = hex, .region = "us-east-1", .amz_date = "20130524T000000Z",
    };
    canonical_expect(&rq, "PUT\n"
                          "/test%24file.text\n"
                          "\n"
                          "date:Fri, 24 May 2013 00:00:00 GMT\n"
                          "host:examplebucket.s3.amazonaws.com\n"
                          "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
                          "x-amz-date:20130524T000000Z\n"
                          "x-amz-storage-class:REDUCED_REDUNDANCY\n"
                          "\n"
                          "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
                          "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    sluice_sigv4_signer s;
    sign_expect(&rq, &aws_example,
                CREDENTIAL "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
                           "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
                &s);
}

TEST(sigv4_aws_example_get_bucket_lifecycle)
{
    static const sluice_http_header h[] = {HDR("Host", "examplebucket.s3.amazonaws.com")};
    static const sluice_http_header q[] = {HDR("lifecycle", "")};
    sluice_sigv4_request rq = {
        .method = "GET", .query = q, .num_query = 1, .headers = h, .num_headers = 1,
        .payload = SLUICE_SIGV4_EMPTY_SHA256, .region = "us-east-1",
        .amz_date = "20130524T000000Z",
    };
    canonical_expect(&rq, "GET\n"
                          "/\n"
                          "lifecycle=\n"
                          "host:examplebucket.s3.amazonaws.com\n"
                          "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                          "x-amz-date:20130524T000000Z\n"
                          "\n"
                          "host;x-amz-content-sha256;x-amz-date\n"
                          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sluice_sigv4_signer s;
    sign_expect(&rq, &aws_example,
                CREDENTIAL "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
                           "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
                &s);
    char target[64];
    size_t len;
    EXPECT_ERR(sluice_sigv4_target(&rq, target, sizeof target, &len), 0);
    EXPECT_STR(target, "/?lifecycle=");
}

TEST(sigv4_aws_example_list_objects)
{
    static const sluice_http_header h[] = {HDR("Host", "examplebucket.s3.amazonaws.com")};
    static const sluice_http_header q[] = {HDR("prefix", "J"), HDR("max-keys", "2")};
    sluice_sigv4_request rq = {
        .method = "GET", .query = q, .num_query = 2, .headers = h, .num_headers = 1,
        .payload = SLUICE_SIGV4_EMPTY_SHA256, .region = "us-east-1",
        .amz_date = "20130524T000000Z",
    };
    canonical_expect(&rq, "GET\n"
                          "/\n"
                          "max-keys=2&prefix=J\n"
                          "host:examplebucket.s3.amazonaws.com\n"
                          "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                          "x-amz-date:20130524T000000Z\n"
                          "\n"
                          "host;x-amz-content-sha256;x-amz-date\n"
                          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sluice_sigv4_signer s;
    sign_expect(&rq, &aws_example,
                CREDENTIAL "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
                           "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
                &s);
    char target[64];
    size_t len;
    EXPECT_ERR(sluice_sigv4_target(&rq, target, sizeof target, &len), 0);
    EXPECT_STR(target, "/?max-keys=2&prefix=J");
}

/* ---- the chunked-upload examples: 65 KiB of 'a' in 64 KiB chunks ------------- */

/* Frames the body in chunk_size chunks, hashing each one byte at a time (as
 * a tap seeing one-byte chunks would), and appends the framing lines. */
static size_t frame_body(sluice_sigv4_signer *s, const unsigned char *body, size_t n,
                         size_t chunk_size, char lines[][SLUICE_SIGV4_CHUNK_LINE_SIZE],
                         size_t *framing)
{
    size_t count = 0;
    *framing = 0;
    for (size_t off = 0, take;; off += take) {
        take = n - off < chunk_size ? n - off : chunk_size;
        unsigned char d[32];
        sluice_sha256_ctx c = {0};
        for (size_t i = 0; i < take; i++)
            sluice_sha256_update(&c, body + off + i, 1);
        sluice_sha256_final(&c, d);
        int len = sluice_sigv4_chunk(s, take, take ? d : NULL, lines[count]);
        EXPECT(len > 0);
        EXPECT_EQ((size_t)len, strlen(lines[count]));
        *framing += (size_t)len + (take ? 2 : 0); /* CRLF after the data */
        count++;
        if (take == 0)
            return count;
    }
}

static const sluice_http_header chunked_headers[] = {
    HDR("Host", "s3.amazonaws.com"),
    HDR("Content-Encoding", "aws-chunked"),
    HDR("Content-Length", "66824"),
    HDR("x-amz-decoded-content-length", "66560"),
    HDR("x-amz-storage-class", "REDUCED_REDUNDANCY"),
};

TEST(sigv4_aws_example_chunked_upload_seed_and_chunk_signatures)
{
    sluice_sigv4_request rq = {
        .method = "PUT", .bucket = "examplebucket", .key = KEY("chunkObject.txt"),
        .headers = chunked_headers, .num_headers = 5, .payload = SLUICE_SIGV4_STREAMING_SIGNED,
        .region = "us-east-1", .amz_date = "20130524T000000Z",
    };
    uint64_t cl = 0;
    EXPECT_ERR(sluice_sigv4_encoded_length(rq.payload, 66560, 65536, NULL, 0, &cl), 0);
    EXPECT_EQ(cl, 66824); /* the Content-Length the example signs */

    sluice_sigv4_signer s;
    sign_expect(&rq, &aws_example,
                CREDENTIAL "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;"
                           "x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
                           "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
                &s);
    char target[64];
    size_t len;
    EXPECT_ERR(sluice_sigv4_target(&rq, target, sizeof target, &len), 0);
    EXPECT_STR(target, "/examplebucket/chunkObject.txt");

    unsigned char *body = malloc(66560);
    memset(body, 'a', 66560);
    char lines[3][SLUICE_SIGV4_CHUNK_LINE_SIZE];
    size_t framing;
    EXPECT_EQ(frame_body(&s, body, 66560, 65536, lines, &framing), 3);
    EXPECT_STR(lines[0], "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
    EXPECT_STR(lines[1], "400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
    EXPECT_STR(lines[2], "0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
    EXPECT_EQ(framing + 66560, cl);
    EXPECT_STR(s.signature, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9");
    free(body);
}

TEST(sigv4_aws_example_chunked_upload_with_signed_trailer)
{
    static const sluice_http_header h[] = {
        HDR("Host", "s3.amazonaws.com"),
        HDR("Content-Encoding", "aws-chunked"),
        HDR("x-amz-decoded-content-length", "66560"),
        HDR("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        HDR("x-amz-trailer", "x-amz-checksum-crc32c"),
    };
    sluice_sigv4_request rq = {
        .method = "PUT", .bucket = "examplebucket", .key = KEY("chunkObject.txt"),
        .headers = h, .num_headers = 5, .payload = SLUICE_SIGV4_STREAMING_SIGNED_TRAILER,
        .region = "us-east-1", .amz_date = "20130524T000000Z",
    };
    sluice_sigv4_signer s;
    sign_expect(&rq, &aws_example,
                CREDENTIAL "SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;"
                           "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"
                           "Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
                &s);
    unsigned char *body = malloc(66560);
    memset(body, 'a', 66560);
    char lines[3][SLUICE_SIGV4_CHUNK_LINE_SIZE];
    size_t framing;
    EXPECT_EQ(frame_body(&s, body, 66560, 65536, lines, &framing), 3);
    EXPECT_STR(lines[0], "10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n");
    EXPECT_STR(lines[1], "400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n");
    EXPECT_STR(lines[2], "0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n");

    char trailer[256];
    size_t len = 0;
    EXPECT_ERR(sluice_sigv4_trailer(&s, "x-amz-checksum-crc32c", "sOO8/Q==", trailer,
                                    sizeof trailer, &len),
               0);
    EXPECT_STR(trailer, "x-amz-checksum-crc32c:sOO8/Q==\r\n"
                        "x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
                        "\r\n");
    EXPECT_EQ(len, strlen(trailer));
    uint64_t cl = 0;
    EXPECT_ERR(sluice_sigv4_encoded_length(rq.payload, 66560, 65536, "x-amz-checksum-crc32c", 8,
                                           &cl),
               0);
    EXPECT_EQ(cl, framing + 66560 + len);
    EXPECT_ERR(sluice_sigv4_trailer(&s, "x-amz-checksum-crc32c", "sOO8/Q==", trailer,
                                    sizeof trailer, &len),
               SLUICE_ECLOSED);
    free(body);
}

/* ---- unsigned trailer: what botocore's AwsChunkedWrapper sends ---------------- */

TEST(sigv4_unsigned_trailer_framing_and_length)
{
    static const sluice_http_header h[] = {
        HDR("Host", "examplebucket.s3.amazonaws.com"),
        HDR("Content-Encoding", "aws-chunked"),
        HDR("x-amz-decoded-content-length", "100000"),
        HDR("x-amz-trailer", "x-amz-checksum-sha256"),
    };
    sluice_sigv4_request rq = {
        .method = "PUT", .key = KEY("big file.bin"), .headers = h, .num_headers = 4,
        .payload = SLUICE_SIGV4_STREAMING_UNSIGNED_TRAILER, .region = "eu-west-3",
        .amz_date = "20240102T030405Z",
    };
    sluice_sigv4_signer s;
    char auth[SLUICE_SIGV4_AUTH_SIZE];
    size_t len;
    REQUIRE(sluice_sigv4_sign(&s, &rq, &aws_example, auth, sizeof auth, &len) == 0);
    char seed[65];
    memcpy(seed, s.signature, sizeof seed);

    enum { N = 100000 };
    unsigned char *body = malloc(N);
    unsigned long long r = 5;
    for (size_t i = 0; i < N; i++)
        body[i] = (unsigned char)t_rand(&r);
    char lines[3][SLUICE_SIGV4_CHUNK_LINE_SIZE];
    size_t framing;
    EXPECT_EQ(frame_body(&s, body, N, 65536, lines, &framing), 3);
    EXPECT_STR(lines[0], "10000\r\n");
    EXPECT_STR(lines[1], "86a0\r\n");
    EXPECT_STR(lines[2], "0\r\n");
    EXPECT_STR(s.signature, seed); /* nothing chained: no chunk is signed */

    unsigned char d[32];
    char b64[SLUICE_SIGV4_BASE64_SIZE(32)], trailer[128];
    sluice_sha256(body, N, d);
    EXPECT_EQ(sluice_sigv4_base64(d, 32, b64, sizeof b64), 44);
    EXPECT_ERR(sluice_sigv4_trailer(&s, "x-amz-checksum-sha256", b64, trailer, sizeof trailer,
                                    &len),
               0);
    char want[128];
    snprintf(want, sizeof want, "x-amz-checksum-sha256:%s\r\n\r\n", b64);
    EXPECT_STR(trailer, want);
    uint64_t cl = 0;
    EXPECT_ERR(sluice_sigv4_encoded_length(rq.payload, N, 65536, "x-amz-checksum-sha256", 44, &cl),
               0);
    EXPECT_EQ(cl, framing + N + len);
    free(body);
}

/* ---- encoding and ordering ---------------------------------------------------- */

static void target_expect(const char *bucket, const char *key, size_t key_len,
                          const sluice_http_header *q, size_t nq, const char *want)
{
    sluice_sigv4_request rq = {.method = "GET", .bucket = bucket, .key = key, .key_len = key_len,
                               .query = q, .num_query = nq};
    char t[512];
    size_t len = 0;
    EXPECT_ERR(sluice_sigv4_target(&rq, t, sizeof t, &len), 0);
    EXPECT_STR(t, want);
    EXPECT_EQ(len, strlen(want));
}

TEST(sigv4_uri_encoding_of_keys_buckets_and_query)
{
    /* unreserved stays, '/' stays in the path, everything else %XX uppercase */
    target_expect("b", KEY("a b+c~d%e/f_g.h-i"), NULL, 0, "/b/a%20b%2Bc~d%25e/f_g.h-i");
    target_expect(NULL, KEY("photos/2024 été/ключ.jpg"), NULL, 0,
                  "/photos/2024%20%C3%A9t%C3%A9/%D0%BA%D0%BB%D1%8E%D1%87.jpg");
    target_expect(NULL, KEY("!$&'()*,;=:@?#[]"), NULL, 0,
                  "/%21%24%26%27%28%29%2A%2C%3B%3D%3A%40%3F%23%5B%5D");
    target_expect("b", "\x00\x7f\xff", 3, NULL, 0, "/b/%00%7F%FF");
    /* no normalisation: S3 keys may have empty and dot segments */
    target_expect("b", KEY("/a//./../c/"), NULL, 0, "/b//a//./../c/");
    target_expect("bucket", "", 0, NULL, 0, "/bucket");
    target_expect(NULL, "", 0, NULL, 0, "/");
    target_expect("", KEY("k"), NULL, 0, "/k");

    /* query: '/' is encoded too, empty values sign as "name=" */
    static const sluice_http_header q1[] = {
        HDR("prefix", "a/b c"), HDR("delimiter", "/"), HDR("uploads", ""),
    };
    target_expect("b", "", 0, q1, 3, "/b?delimiter=%2F&prefix=a%2Fb%20c&uploads=");
}

TEST(sigv4_query_sorts_by_encoded_name_then_value)
{
    /* raw '0' (0x30) sorts before '=' (0x3d), but encoded "%3D" sorts before
     * "0": the order is that of the encoded bytes, as AWS specifies */
    static const sluice_http_header q[] = {
        HDR("0", "x"), HDR("=", "x"), HDR("a", "2"), HDR("a", "10"), HDR("a", "1"),
        HDR("a", ""), HDR("a", "+"), HDR("a", "1"), HDR("ab", ""), HDR("A", "z"),
    };
    target_expect(NULL, "", 0, q, 10,
                  "/?%3D=x&0=x&A=z&a=&a=%2B&a=1&a=1&a=10&a=2&ab=");
}

TEST(sigv4_headers_trimmed_joined_lowercased_and_sorted)
{
    static const sluice_http_header h[] = {
        HDR("X-Amz-Meta-B", "  two   inner\t\tspaces  "),
        HDR("host", "h.example"),
        HDR("x-amz-meta-a", "first"),
        HDR("X-AMZ-META-A", " second "),
        HDR("x-amz-meta-empty", "   "),
        HDR("User-Agent", "not signed"),
        HDR("Transfer-Encoding", "chunked"),
        HDR("Expect", "100-continue"),
        HDR("x-amz-meta-a", "third"),
    };
    sluice_sigv4_request rq = {
        .method = "POST", .bucket = "bkt", .key = KEY("k"), .headers = h, .num_headers = 9,
        .payload = SLUICE_SIGV4_UNSIGNED_PAYLOAD, .region = "us-west-2",
        .amz_date = "20200101T000000Z",
    };
    sluice_sigv4_credentials cred = aws_example;
    cred.session_token = "  token  with spaces ";
    char cr[1024];
    size_t len;
    EXPECT_ERR(sluice__sigv4_canonical_request(&rq, &cred, cr, sizeof cr, &len), 0);
    EXPECT_STR(cr, "POST\n"
                   "/bkt/k\n"
                   "\n"
                   "host:h.example\n"
                   "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
                   "x-amz-date:20200101T000000Z\n"
                   "x-amz-meta-a:first,second,third\n"
                   "x-amz-meta-b:two inner spaces\n"
                   "x-amz-meta-empty:\n"
                   "x-amz-security-token:token with spaces\n"
                   "\n"
                   "host;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-meta-b;"
                   "x-amz-meta-empty;x-amz-security-token\n"
                   "UNSIGNED-PAYLOAD");
}

/* ---- output sizes and argument checks ----------------------------------------- */

TEST(sigv4_small_buffers_report_the_size_needed)
{
    static const sluice_http_header h[] = {HDR("Host", "examplebucket.s3.amazonaws.com")};
    sluice_sigv4_request rq = {
        .method = "GET", .key = KEY("test.txt"), .headers = h, .num_headers = 1,
        .payload = SLUICE_SIGV4_EMPTY_SHA256, .region = "us-east-1",
        .amz_date = "20130524T000000Z",
    };
    char full[SLUICE_SIGV4_AUTH_SIZE], buf[SLUICE_SIGV4_AUTH_SIZE];
    size_t need = 0, len = 0;
    sluice_sigv4_signer s, before;
    REQUIRE(sluice_sigv4_sign(&s, &rq, &aws_example, full, sizeof full, &need) == 0);
    memset(&before, 0x5a, sizeof before);
    s = before;
    EXPECT_ERR(sluice_sigv4_sign(&s, &rq, &aws_example, buf, need, &len), SLUICE_ERANGE);
    EXPECT_EQ(len, need);
    EXPECT_MEM(&s, sizeof s, &before, sizeof before); /* unchanged on error */
    EXPECT_ERR(sluice_sigv4_sign(&s, &rq, &aws_example, NULL, 0, &len), SLUICE_ERANGE);
    EXPECT_EQ(len, need);
    EXPECT_ERR(sluice_sigv4_sign(&s, &rq, &aws_example, buf, need + 1, &len), 0);
    EXPECT_STR(buf, full);

    EXPECT_ERR(sluice_sigv4_target(&rq, NULL, 0, &len), SLUICE_ERANGE);
    EXPECT_EQ(len, 9);
    EXPECT_ERR(sluice_sigv4_target(&rq, buf, 9, &len), SLUICE_ERANGE);
    EXPECT_ERR(sluice_sigv4_target(&rq, buf, 10, &len), 0);
    EXPECT_ERR(sluice__sigv4_canonical_request(&rq, &aws_example, NULL, 0, &need), SLUICE_ERANGE);
    EXPECT_ERR(sluice__sigv4_canonical_request(&rq, &aws_example, buf, need, &len), SLUICE_ERANGE);
    EXPECT_ERR(sluice__sigv4_canonical_request(&rq, &aws_example, buf, need + 1, &len), 0);
    EXPECT_EQ(strlen(buf), need);
}

TEST(sigv4_bad_arguments_are_einval)
{
    sluice_http_header h[SLUICE_SIGV4_MAX_FIELDS + 1];
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)
        h[i] = (sluice_http_header)HDR("Host", "h");
    sluice_sigv4_request good = {
        .method = "GET", .key = KEY("k"), .headers = h, .num_headers = 1,
        .payload = SLUICE_SIGV4_UNSIGNED_PAYLOAD, .region = "us-east-1",
        .amz_date = "20130524T000000Z",
    };
    sluice_sigv4_signer s;
    char auth[SLUICE_SIGV4_AUTH_SIZE];
    size_t len;
    EXPECT_ERR(sluice_sigv4_sign(&s, &good, &aws_example, auth, sizeof auth, &len), 0);
    EXPECT_ERR(sluice_sigv4_sign(NULL, &good, &aws_example, auth, sizeof auth, &len), SLUICE_EINVAL);
    EXPECT_ERR(sluice_sigv4_sign(&s, NULL, &aws_example, auth, sizeof auth, &len), SLUICE_EINVAL);
    EXPECT_ERR(sluice_sigv4_sign(&s, &good, NULL, auth, sizeof auth, &len), SLUICE_EINVAL);

    struct {
        const char *what;
        sluice_sigv4_request rq;
    } bad[] = {
        {"no method", good}, {"method not a token", good}, {"key NULL", good},
        {"bad payload", good}, {"uppercase hex payload", good}, {"short date", good},
        {"date without Z", good}, {"region with /", good}, {"region too long", good},
        {"no region", good}, {"too many headers", good}, {"too many params", good},
    };
    bad[0].rq.method = NULL;
    bad[1].rq.method = "GE T";
    bad[2].rq.key = NULL;
    bad[3].rq.payload = "SIGNED-PAYLOAD";
    bad[4].rq.payload = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    bad[5].rq.amz_date = "20130524";
    bad[6].rq.amz_date = "20130524T000000X";
    bad[7].rq.region = "us/east";
    bad[8].rq.region = "a-region-name-that-goes-on-and-on-for-more-than-sixty-three-bytes";
    bad[9].rq.region = "";
    bad[10].rq.num_headers = SLUICE_SIGV4_MAX_FIELDS + 1;
    bad[11].rq.query = h;
    bad[11].rq.num_query = SLUICE_SIGV4_MAX_FIELDS + 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = sluice_sigv4_sign(&s, &bad[i].rq, &aws_example, auth, sizeof auth, &len);
        if (rc != SLUICE_EINVAL)
            harness_fail(__FILE__, __LINE__, "%s: %s", bad[i].what, sluice_err_name(rc));
    }
    /* exactly the limit is fine */
    sluice_sigv4_request max = good;
    max.num_headers = SLUICE_SIGV4_MAX_FIELDS;
    max.query = h;
    max.num_query = SLUICE_SIGV4_MAX_FIELDS;
    EXPECT_ERR(sluice_sigv4_sign(&s, &max, &aws_example, auth, sizeof auth, &len), 0);

    /* headers: no Host, fields the signer adds, bad names and values */
    static const sluice_http_header no_host[] = {HDR("x-amz-meta-a", "1")};
    static const sluice_http_header own1[] = {HDR("Host", "h"), HDR("X-Amz-Date", "20130524T000000Z")};
    static const sluice_http_header own2[] = {HDR("Host", "h"), HDR("authorization", "x")};
    static const sluice_http_header own3[] = {HDR("Host", "h"), HDR("x-amz-content-sha256", "x")};
    static const sluice_http_header own4[] = {HDR("Host", "h"), HDR("x-amz-security-token", "x")};
    static const sluice_http_header name1[] = {HDR("Host", "h"), HDR("bad name", "x")};
    static const sluice_http_header name2[] = {HDR("Host", "h"), HDR("", "x")};
    static const sluice_http_header val1[] = {HDR("Host", "h"), HDR("x-a", "a\r\nb: c")};
    static const sluice_http_header val2[] = {HDR("Host", "h"), {"x-a", 3, "a\0b", 3}};
    static const sluice_http_header only_skipped_host[] = {HDR("User-Agent", "u")};
    const sluice_http_header *hs[] = {no_host, own1, own2, own3, own4, name1, name2, val1, val2,
                                      only_skipped_host};
    const size_t ns[] = {1, 2, 2, 2, 2, 2, 2, 2, 2, 1};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        sluice_sigv4_request rq = good;
        rq.headers = hs[i];
        rq.num_headers = ns[i];
        int rc = sluice_sigv4_sign(&s, &rq, &aws_example, auth, sizeof auth, &len);
        if (rc != SLUICE_EINVAL)
            harness_fail(__FILE__, __LINE__, "header case %zu: %s", i, sluice_err_name(rc));
        EXPECT_ERR(sluice__sigv4_canonical_request(&rq, &aws_example, auth, sizeof auth, &len),
                   SLUICE_EINVAL);
    }

    /* credentials */
    sluice_sigv4_credentials c[] = {aws_example, aws_example, aws_example, aws_example,
                                    aws_example};
    c[0].access_key_id = "";
    c[1].access_key_id = "AKIA/X";
    c[2].secret_access_key = NULL;
    c[3].secret_access_key = "";
    c[4].session_token = "tok\nen";
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        EXPECT_ERR(sluice_sigv4_sign(&s, &good, &c[i], auth, sizeof auth, &len), SLUICE_EINVAL);

    /* the target needs only the path and query */
    sluice_sigv4_request t = {.key = NULL, .key_len = 1};
    EXPECT_ERR(sluice_sigv4_target(&t, auth, sizeof auth, &len), SLUICE_EINVAL);
    EXPECT_ERR(sluice_sigv4_target(NULL, auth, sizeof auth, &len), SLUICE_EINVAL);
    t.key_len = 0;
    EXPECT_ERR(sluice_sigv4_target(&t, auth, sizeof auth, &len), 0);
    EXPECT_STR(auth, "/");
}

TEST(sigv4_long_secret_and_session_token_change_the_signature)
{
    static const sluice_http_header h[] = {HDR("Host", "examplebucket.s3.amazonaws.com")};
    sluice_sigv4_request rq = {
        .method = "GET", .key = KEY("test.txt"), .headers = h, .num_headers = 1,
        .payload = SLUICE_SIGV4_EMPTY_SHA256, .region = "us-east-1",
        .amz_date = "20130524T000000Z",
    };
    char a[SLUICE_SIGV4_AUTH_SIZE], b[SLUICE_SIGV4_AUTH_SIZE];
    size_t len;
    sluice_sigv4_signer s;
    sluice_sigv4_credentials c = aws_example;
    REQUIRE(sluice_sigv4_sign(&s, &rq, &c, a, sizeof a, &len) == 0);
    c.session_token = "";
    REQUIRE(sluice_sigv4_sign(&s, &rq, &c, b, sizeof b, &len) == 0);
    EXPECT_STR(a, b); /* "" is no token */
    c.session_token = "FQoGZXIvYXdzE";
    REQUIRE(sluice_sigv4_sign(&s, &rq, &c, b, sizeof b, &len) == 0);
    EXPECT(strcmp(a, b) != 0);
    EXPECT(strstr(b, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"));

    /* 60- and 61-byte secrets straddle the one-block "AWS4" + secret key */
    char s60[61], s61[62];
    memset(s60, 'k', 60);
    s60[60] = 0;
    memset(s61, 'k', 61);
    s61[61] = 0;
    c.session_token = NULL;
    c.secret_access_key = s60;
    REQUIRE(sluice_sigv4_sign(&s, &rq, &c, a, sizeof a, &len) == 0);
    c.secret_access_key = s61;
    REQUIRE(sluice_sigv4_sign(&s, &rq, &c, b, sizeof b, &len) == 0);
    EXPECT(strcmp(a, b) != 0);
}

/* ---- amz date, base64, chunk state, lengths ------------------------------------ */

TEST(sigv4_amz_date_formats_utc)
{
    char d[SLUICE_SIGV4_AMZ_DATE_SIZE];
    EXPECT_ERR(sluice__sigv4_amz_date(1369353600, d), 0); /* the examples' time */
    EXPECT_STR(d, "20130524T000000Z");
    EXPECT_ERR(sluice__sigv4_amz_date(0, d), 0);
    EXPECT_STR(d, "19700101T000000Z");
    EXPECT_ERR(sluice__sigv4_amz_date(951782399, d), 0);
    EXPECT_STR(d, "20000228T235959Z");
    EXPECT_ERR(sluice__sigv4_amz_date(-1, d), 0);
    EXPECT_STR(d, "19691231T235959Z");
    if (sizeof(time_t) > 4) {
        EXPECT_ERR(sluice__sigv4_amz_date((time_t)253402300799LL, d), 0);
        EXPECT_STR(d, "99991231T235959Z");
        EXPECT_ERR(sluice__sigv4_amz_date((time_t)253402300800LL, d), SLUICE_EINVAL);
    }
}

TEST(sigv4_base64_rfc4648_vectors)
{
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        size_t n = strlen(in[i]);
        EXPECT_EQ(sluice_sigv4_base64(in[i], n, out, SLUICE_SIGV4_BASE64_SIZE(n)),
                  (int)strlen(want[i]));
        EXPECT_STR(out, want[i]);
        EXPECT_ERR(sluice_sigv4_base64(in[i], n, out, SLUICE_SIGV4_BASE64_SIZE(n) - 1),
                   SLUICE_ERANGE);
    }
    unsigned char d[32], all[256];
    char out[SLUICE_SIGV4_BASE64_SIZE(256)];
    sluice_sha256("", 0, d); /* x-amz-checksum-sha256 of an empty object */
    EXPECT_EQ(sluice_sigv4_base64(d, 32, out, sizeof out), 44);
    EXPECT_STR(out, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)(255 - i);
    EXPECT_EQ(sluice_sigv4_base64(all, 3, out, sizeof out), 4);
    EXPECT_STR(out, "//79"); /* the two last symbols of the alphabet */
    EXPECT_ERR(sluice_sigv4_base64(NULL, 1, out, sizeof out), SLUICE_EINVAL);
}

static void streaming_signer(sluice_sigv4_signer *s, const char *payload)
{
    static const sluice_http_header h[] = {HDR("Host", "h")};
    sluice_sigv4_request rq = {
        .method = "PUT", .key = KEY("k"), .headers = h, .num_headers = 1, .payload = payload,
        .region = "us-east-1", .amz_date = "20130524T000000Z",
    };
    char auth[SLUICE_SIGV4_AUTH_SIZE];
    size_t len;
    EXPECT_ERR(sluice_sigv4_sign(s, &rq, &aws_example, auth, sizeof auth, &len), 0);
}

TEST(sigv4_chunk_and_trailer_follow_the_body_order)
{
    sluice_sigv4_signer s;
    char line[SLUICE_SIGV4_CHUNK_LINE_SIZE], tr[256];
    unsigned char d[32] = {0};
    size_t len;

    streaming_signer(&s, SLUICE_SIGV4_UNSIGNED_PAYLOAD); /* not streaming */
    EXPECT_ERR(sluice_sigv4_chunk(&s, 1, d, line), SLUICE_EINVAL);
    EXPECT_ERR(sluice_sigv4_trailer(&s, "x-amz-checksum-sha256", "v", tr, sizeof tr, &len),
               SLUICE_EINVAL);
    sluice_sigv4_signer zero;
    memset(&zero, 0, sizeof zero); /* never signed */
    EXPECT_ERR(sluice_sigv4_chunk(&zero, 1, d, line), SLUICE_EINVAL);

    streaming_signer(&s, SLUICE_SIGV4_STREAMING_SIGNED);
    EXPECT_ERR(sluice_sigv4_chunk(&s, 1, NULL, line), SLUICE_EINVAL); /* needs the digest */
    EXPECT_EQ(sluice_sigv4_chunk(&s, UINT64_MAX, d, line), 16 + 17 + 64 + 2);
    EXPECT(strncmp(line, "ffffffffffffffff;chunk-signature=", 33) == 0);
    EXPECT_ERR(sluice_sigv4_trailer(&s, "x-amz-checksum-sha256", "v", tr, sizeof tr, &len),
               SLUICE_EINVAL); /* no trailer in this mode */
    EXPECT_EQ(sluice_sigv4_chunk(&s, 0, NULL, line), 1 + 17 + 64 + 4);
    EXPECT_EQ(strlen(line), 1 + 17 + 64 + 4);
    EXPECT_ERR(sluice_sigv4_chunk(&s, 0, NULL, line), SLUICE_ECLOSED);
    EXPECT_ERR(sluice_sigv4_chunk(&s, 5, d, line), SLUICE_ECLOSED);

    streaming_signer(&s, SLUICE_SIGV4_STREAMING_SIGNED_TRAILER);
    EXPECT_ERR(sluice_sigv4_trailer(&s, "x-amz-checksum-sha256", "v", tr, sizeof tr, &len),
               SLUICE_EINVAL); /* before the zero-size chunk */
    EXPECT_EQ(sluice_sigv4_chunk(&s, 0, NULL, line), 1 + 17 + 64 + 2);
    char before[65];
    memcpy(before, s.signature, sizeof before);
    EXPECT_ERR(sluice_sigv4_trailer(&s, "X-Amz-Checksum-Sha256", "v", tr, sizeof tr, &len),
               SLUICE_EINVAL); /* the name must be lowercase */
    EXPECT_ERR(sluice_sigv4_trailer(&s, "x-amz-checksum-sha256", "v\r\n", tr, sizeof tr, &len),
               SLUICE_EINVAL);
    EXPECT_ERR(sluice_sigv4_trailer(&s, "x-amz-checksum-sha256", "v", tr, 20, &len),
               SLUICE_ERANGE);
    EXPECT_STR(s.signature, before); /* a failed trailer chains nothing */
    EXPECT_ERR(sluice_sigv4_trailer(&s, "x-amz-checksum-sha256", "v", tr, len + 1, &len), 0);
    EXPECT(strcmp(s.signature, before) != 0);
    EXPECT_ERR(sluice_sigv4_chunk(&s, 0, NULL, line), SLUICE_ECLOSED);
}

TEST(sigv4_encoded_length_matches_framing_for_every_mode)
{
    static const char *modes[] = {SLUICE_SIGV4_STREAMING_SIGNED,
                                  SLUICE_SIGV4_STREAMING_SIGNED_TRAILER,
                                  SLUICE_SIGV4_STREAMING_UNSIGNED_TRAILER};
    static const uint64_t sizes[] = {0, 1, 8191, 8192, 8193, 65536, 65537, 1000000};
    static const size_t chunks[] = {8192, 65536, 1 << 20};
    for (size_t m = 0; m < 3; m++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            for (size_t c = 0; c < 3; c++) {
                sluice_sigv4_signer s;
                streaming_signer(&s, modes[m]);
                uint64_t want = 0, left = sizes[i];
                char line[SLUICE_SIGV4_CHUNK_LINE_SIZE], tr[256];
                unsigned char d[32] = {1};
                for (;;) {
                    uint64_t take = left < chunks[c] ? left : chunks[c];
                    int n = sluice_sigv4_chunk(&s, take, d, line);
                    REQUIRE(n > 0);
                    want += (uint64_t)n + take + (take ? 2 : 0);
                    left -= take;
                    if (!take)
                        break;
                }
                if (m > 0) {
                    size_t len;
                    REQUIRE(sluice_sigv4_trailer(&s, "x-amz-checksum-sha256",
                                                 "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                                                 tr, sizeof tr, &len) == 0);
                    want += len;
                }
                uint64_t got = 0;
                EXPECT_ERR(sluice_sigv4_encoded_length(modes[m], sizes[i], chunks[c],
                                                       "x-amz-checksum-sha256", 44, &got),
                           0);
                EXPECT_EQ(got, want);
            }
        }
    }
    uint64_t n = 0;
    EXPECT_ERR(sluice_sigv4_encoded_length(SLUICE_SIGV4_UNSIGNED_PAYLOAD, 12345, 0, NULL, 0, &n), 0);
    EXPECT_EQ(n, 12345);
    EXPECT_ERR(sluice_sigv4_encoded_length(SLUICE_SIGV4_EMPTY_SHA256, 0, 0, NULL, 0, &n), 0);
    EXPECT_EQ(n, 0);
    EXPECT_ERR(sluice_sigv4_encoded_length("nonsense", 1, 1, NULL, 0, &n), SLUICE_EINVAL);
    EXPECT_ERR(sluice_sigv4_encoded_length(SLUICE_SIGV4_STREAMING_SIGNED, 1, 0, NULL, 0, &n),
               SLUICE_EINVAL);
    EXPECT_ERR(sluice_sigv4_encoded_length(SLUICE_SIGV4_STREAMING_SIGNED_TRAILER, 1, 1, NULL, 0, &n),
               SLUICE_EINVAL);
    EXPECT_ERR(sluice_sigv4_encoded_length(SLUICE_SIGV4_STREAMING_SIGNED, UINT64_MAX, 1, NULL, 0,
                                           &n),
               SLUICE_ERANGE);
}
