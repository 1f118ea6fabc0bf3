/*
 * bench_sigv4.c — the CPU an S3 upload's signing costs per GiB of body, in
 * 64 KiB chunks (a pool block): the SHA-256 pass every payload mode but
 * UNSIGNED-PAYLOAD needs (the signed chunks and the x-amz-checksum-sha256
 * trailer alike), and what signed chunks add on top of it, one chunk
 * signature (HMAC-SHA256 over the string to sign) per chunk. Also the cost
 * of signing one request, of starting a SHA-256 context (a CPU probe), and
 * memcpy on the same sizes as the baseline. docs/s3.md cites these figures.
 */
#include "bench.h"

#define CHUNK (64 * 1024)
#define GIB (1024.0 * 1024 * 1024)

static void streaming_signer(sluice_sigv4_signer *s)
{
    static const sluice_http_header h[] = {
        {"Host", 4, "examplebucket.s3.amazonaws.com", 30},
        {"Content-Encoding", 16, "aws-chunked", 11},
        {"x-amz-decoded-content-length", 28, "1073741824", 10},
    };
    sluice_sigv4_request rq = {
        .method = "PUT", .bucket = "examplebucket", .key = "uploads/photo 1.jpg",
        .key_len = 19, .headers = h, .num_headers = 3,
        .payload = SLUICE_SIGV4_STREAMING_SIGNED, .region = "us-east-1",
        .amz_date = "20130524T000000Z",
    };
    sluice_sigv4_credentials cred = {"AKIAIOSFODNN7EXAMPLE",
                                     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL};
    char auth[SLUICE_SIGV4_AUTH_SIZE];
    size_t len;
    if (sluice_sigv4_sign(s, &rq, &cred, auth, sizeof auth, &len) < 0)
        abort();
}

/* Seconds per GiB digested CHUNK bytes at a time, one digest per chunk, as
 * a signed-chunk writer does (each chunk's context a copy of one fresh
 * context: see init_us), best of 3. */
static double sha_s_per_gib(const unsigned char *buf, size_t total, int accel)
{
    size_t iters = total / CHUNK ? total / CHUNK : 1;
    double best = 1e9;
    sluice_sha256_ctx fresh;
    sluice_sha256_init(&fresh);
    fresh._accel &= accel;
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now();
        for (size_t i = 0; i < iters; i++) {
            sluice_sha256_ctx c = fresh;
            unsigned char d[SLUICE_SHA256_SIZE];
            sluice_sha256_update(&c, buf, CHUNK);
            sluice_sha256_final(&c, d);
            bench_sink_ptr(d);
        }
        double t = (bench_now() - t0) / ((double)iters * CHUNK / GIB);
        if (t < best)
            best = t;
    }
    return best;
}

/* Microseconds per sluice_sha256_init(), which probes the CPU: what a
 * digest per chunk would add if each one were initialised afresh. */
static double init_us(size_t n)
{
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now();
        for (size_t i = 0; i < n; i++) {
            sluice_sha256_ctx c;
            sluice_sha256_init(&c);
            bench_sink_ptr(&c);
        }
        double us = (bench_now() - t0) / (double)n * 1e6;
        if (us < best)
            best = us;
    }
    return best;
}

/* Microseconds per sluice_sigv4_chunk() in the signed mode, best of 3. */
static double chunk_us(size_t n)
{
    unsigned char d[SLUICE_SHA256_SIZE] = {1, 2, 3};
    char line[SLUICE_SIGV4_CHUNK_LINE_SIZE];
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        sluice_sigv4_signer s;
        streaming_signer(&s);
        double t0 = bench_now();
        for (size_t i = 0; i < n; i++) {
            if (sluice_sigv4_chunk(&s, CHUNK, d, line) < 0)
                abort();
            bench_sink_ptr(line);
        }
        double us = (bench_now() - t0) / (double)n * 1e6;
        if (us < best)
            best = us;
    }
    return best;
}

/* Microseconds per sluice_sigv4_sign() of a streaming PUT, best of 3. */
static double sign_us(size_t n)
{
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now();
        for (size_t i = 0; i < n; i++) {
            sluice_sigv4_signer s;
            streaming_signer(&s);
            bench_sink_ptr(&s);
        }
        double us = (bench_now() - t0) / (double)n * 1e6;
        if (us < best)
            best = us;
    }
    return best;
}

int main(void)
{
    unsigned char *buf = malloc(CHUNK);
    for (size_t i = 0; i < CHUNK; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    double scale = bench_scale();
    sluice_sha256_ctx probe;
    sluice_sha256_init(&probe);
    const double chunks_per_gib = GIB / CHUNK;

    double sha = sha_s_per_gib(buf, (size_t)(512e6 * scale), 1);
    double per_chunk = chunk_us((size_t)(200000 * scale) + 1);
    bench_line("sigv4_sha256_per_gib", sha * 1e3, "ms");
    if (probe._accel) /* the line above used the SHA instructions */
        bench_line("sigv4_sha256_portable_per_gib",
                   sha_s_per_gib(buf, (size_t)(128e6 * scale), 0) * 1e3, "ms");
    bench_line("sigv4_sha256_init", init_us((size_t)(20000 * scale) + 1), "us");
    bench_line("sigv4_chunk_signature", per_chunk, "us");
    bench_line("sigv4_chunk_signatures_per_gib", per_chunk * chunks_per_gib / 1e3, "ms");
    bench_line("sigv4_signed_chunks_per_gib", sha * 1e3 + per_chunk * chunks_per_gib / 1e3,
               "ms");
    bench_line("sigv4_sign_request", sign_us((size_t)(50000 * scale) + 1), "us");
    bench_line("sigv4_memcpy_baseline", bench_memcpy_gbps(CHUNK, (size_t)(1e9 * scale)), "GB/s");
    free(buf);
    return 0;
}
