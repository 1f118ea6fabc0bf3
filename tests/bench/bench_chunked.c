/*
 * bench_chunked.c — chunked decode through the real reader over an in-memory
 * io (so the parser's cost shows, not the kernel's), chunked encode through
 * the writer into an io that copies like a socket send, and memcpy on the
 * same sizes as the yardstick. GB/s of payload.
 * The pool counters printed at the end show that steady state allocates no
 * blocks: every chunk is a view of a recycled block.
 */
#include "bench.h"

static unsigned char *encode(size_t chunk, size_t total, size_t *len)
{
    size_t n = total / chunk, cap = total + n * 24 + 16, o = 0;
    unsigned char *b = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        o += (size_t)sprintf((char *)b + o, "%zx\r\n", chunk);
        memset(b + o, 'a' + (int)(i % 26), chunk);
        o += chunk;
        memcpy(b + o, "\r\n", 2);
        o += 2;
    }
    memcpy(b + o, "0\r\n\r\n", 5);
    *len = o + 5;
    return b;
}

/* Decodes buf `reps` times; returns payload GB/s (best of 3). */
static double decode(sluice_pool *pool, const unsigned char *buf, size_t len, size_t payload,
                     int reps)
{
    double best = 0;
    for (int round = 0; round < 3; round++) {
        double t0 = bench_now();
        for (int i = 0; i < reps; i++) {
            sluice_io *io;
            sluice_reader *r;
            sluice_stream *s;
            if (sluice__io_mem_new(pool, buf, len, 0, 0, &io) < 0 ||
                sluice_reader_new(pool, io, NULL, &r) < 0 ||
                sluice_body_new(pool, r, SLUICE_FRAMING_CHUNKED, NULL, &s) < 0)
                abort();
            size_t got = 0;
            sluice_bytes b;
            sluice_poll p;
            while ((p = sluice_stream_poll_next(s, &b)) == SLUICE_READY) {
                bench_sink_ptr(b.data);
                got += b.len;
                sluice_bytes_release(&b);
            }
            if (p != SLUICE_EOF || got != payload)
                abort();
            sluice_stream_close(s);
            sluice_reader_close(r);
            sluice_io_close(io);
        }
        double gbps = (double)payload * reps / (bench_now() - t0) / 1e9;
        if (gbps > best)
            best = gbps;
    }
    return best;
}

/*
 * An io whose writev copies what it is given into a scratch ring, as the
 * kernel copies into a socket buffer: encode then costs framing plus one
 * copy, the same work a real send does, and compares fairly with memcpy.
 */
typedef struct copy_io {
    sluice_io base;
    unsigned char *ring;
    size_t pos, cap;
    unsigned long long written;
} copy_io;

static ssize_t copy_readv(sluice_io *io, const struct iovec *iov, int n)
{
    (void)io, (void)iov, (void)n;
    return 0;
}

static ssize_t copy_writev(sluice_io *io, const struct iovec *iov, int n)
{
    copy_io *c = (copy_io *)io;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        const unsigned char *p = iov[i].iov_base;
        while (len) {
            size_t k = c->cap - c->pos < len ? c->cap - c->pos : len;
            memcpy(c->ring + c->pos, p, k);
            c->pos = (c->pos + k) % c->cap;
            p += k;
            len -= k;
        }
        total += iov[i].iov_len;
    }
    c->written += total;
    bench_sink_ptr(c->ring);
    return (ssize_t)total;
}

static int copy_shutdown(sluice_io *io)
{
    (void)io;
    return 0;
}

static void copy_close(sluice_io *io)
{
    (void)io;
}

static const sluice_io_vtable copy_vt = {"copy", copy_readv, copy_writev, copy_shutdown, NULL,
                                         copy_close};

static double encode_bench(sluice_pool *pool, size_t chunk, size_t total)
{
    sluice_bytes src;
    unsigned char *tmp = malloc(chunk);
    memset(tmp, 'x', chunk);
    if (sluice_bytes_copy_from(pool, tmp, chunk, &src) < 0)
        abort();
    free(tmp);
    double best = 0;
    for (int round = 0; round < 3; round++) {
        static unsigned char ring[1u << 20];
        copy_io cio = {.base = {&copy_vt, pool, -1}, .ring = ring, .cap = sizeof ring};
        sluice_io *io = &cio.base;
        sluice_sink *k;
        if (sluice_writer_new(pool, io, SLUICE_FRAMING_CHUNKED, NULL, NULL, &k) < 0)
            abort();
        double t0 = bench_now();
        for (size_t sent = 0; sent < total; sent += chunk) {
            sluice_bytes c = sluice_bytes_ref(src);
            if (sluice_sink_poll_write(k, &c) != SLUICE_READY)
                abort();
        }
        if (sluice_sink_finish(k) != SLUICE_READY)
            abort();
        double gbps = (double)total / (bench_now() - t0) / 1e9;
        if (cio.written < total)
            abort();
        if (gbps > best)
            best = gbps;
        sluice_sink_close(k);
    }
    sluice_bytes_release(&src);
    return best;
}

int main(void)
{
    double scale = bench_scale();
    sluice_pool *pool;
    if (sluice_pool_new(NULL, &pool) < 0)
        return 1;
    size_t total = (size_t)(8u << 20); /* 8 MiB encoded per repetition */
    int reps = (int)(40 * scale) > 0 ? (int)(40 * scale) : 1;
    static const struct {
        const char *name;
        size_t chunk;
    } sizes[] = {{"chunked_decode_1k", 1024}, {"chunked_decode_16k", 16384},
                 {"chunked_decode_1m", 1u << 20}};
    double d16 = 0;
    sluice_pool_counters before, after;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len;
        unsigned char *buf = encode(sizes[i].chunk, total, &len);
        size_t payload = total / sizes[i].chunk * sizes[i].chunk;
        decode(pool, buf, len, payload, 1); /* warm the pool */
        sluice_pool_stats(pool, &before);
        double g = decode(pool, buf, len, payload, reps);
        sluice_pool_stats(pool, &after);
        bench_line(sizes[i].name, g, "GB/s");
        printf("pool: %s blocks_allocated %llu -> %llu (steady state: %s)\n", sizes[i].name,
               (unsigned long long)before.blocks_allocated,
               (unsigned long long)after.blocks_allocated,
               before.blocks_allocated == after.blocks_allocated ? "no new blocks" : "GREW");
        if (sizes[i].chunk == 16384)
            d16 = g;
        free(buf);
    }
    sluice_pool_stats(pool, &before);
    bench_line("chunked_encode_16k", encode_bench(pool, 16384, (size_t)(256u << 20) * scale),
               "GB/s");
    sluice_pool_stats(pool, &after);
    /* the in-memory io only counts what is written, so this is the writer's
     * own cost per byte (size lines, iovecs, references), not a copy */
    printf("pool: chunked_encode_16k blocks_allocated %llu -> %llu\n",
           (unsigned long long)before.blocks_allocated,
           (unsigned long long)after.blocks_allocated);
    double m = bench_memcpy_gbps(16384, (size_t)(1u << 30) * scale);
    bench_line("memcpy_16k", m, "GB/s");
    printf("chunked_decode_16k / memcpy_16k = %.0f%% (target >= 50%%)\n", 100.0 * d16 / m);
    sluice_pool_counters st;
    sluice_pool_stats(pool, &st);
    printf("pool: blocks_live %zu blocks_free %zu objects_live %zu blocks_allocated %llu\n",
           st.blocks_live, st.blocks_free, st.objects_live,
           (unsigned long long)st.blocks_allocated);
    sluice_pool_close(pool);
    return 0;
}
