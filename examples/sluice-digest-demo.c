/*
 * sluice-digest-demo — the core API on one page:
 *
 *     generator stream --> tap (SHA-256) --> pump --> counting sink
 *
 * The generator is a custom stream writing a deterministic pseudo-random
 * body into pool blocks; the tap digests each chunk as it passes; the pump
 * moves chunks into a custom sink that counts and drops them. The pump pulls
 * a chunk only when the sink has taken the last one, so the body never sits
 * in memory: the same couple of blocks are reused whatever its size, which
 * the pool counters printed at the end show.
 *
 *     sluice-digest-demo [--mib N] [--emit]
 */
#include <sluice.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a custom stream: N bytes of xorshift64* output -------------------------- */

typedef struct generator {
    sluice_stream base; /* first member, so a generator * is a sluice_stream * */
    uint64_t left;      /* bytes still to produce */
    uint64_t x;         /* PRNG state */
} generator;

/* Appends n bytes of the sequence: 8 per step, little-endian, so the bytes
 * do not depend on the machine or on where chunks end (chunks are whole
 * blocks, a multiple of 8 bytes, except the last). */
static void fill(unsigned char *p, size_t n, uint64_t *x)
{
    for (size_t i = 0; i < n; i += 8) {
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        uint64_t v = *x * 2685821657736338717ull;
        if (n - i >= 8) { /* the compiler merges these into one store */
            p[i] = (unsigned char)v, p[i + 1] = (unsigned char)(v >> 8);
            p[i + 2] = (unsigned char)(v >> 16), p[i + 3] = (unsigned char)(v >> 24);
            p[i + 4] = (unsigned char)(v >> 32), p[i + 5] = (unsigned char)(v >> 40);
            p[i + 6] = (unsigned char)(v >> 48), p[i + 7] = (unsigned char)(v >> 56);
        } else {
            for (size_t j = 0; i + j < n; j++)
                p[i + j] = (unsigned char)(v >> (8 * j));
        }
    }
}

/* poll_next: each call hands out one new chunk (a view of a fresh block),
 * EOF when done. It never returns PENDING, so it needs no ready(). */
static sluice_poll gen_poll(sluice_stream *s, sluice_bytes *out)
{
    generator *g = (generator *)s;
    if (g->left == 0)
        return SLUICE_EOF;
    sluice_block *b;
    int rc = sluice_block_get(s->pool, &b); /* we own one reference */
    if (rc < 0)
        return sluice_stream_fail(s, rc, "no block for the generator", 0);
    size_t n = sluice_block_capacity(b);
    if (n > g->left)
        n = (size_t)g->left;
    fill(sluice_block_data(b), n, &g->x);
    g->left -= n;
    rc = sluice_block_view(b, 0, n, out); /* the view takes a reference of its own, */
    sluice_block_release(b);              /* so drop ours: the caller's view keeps b */
    return rc < 0 ? sluice_stream_fail(s, rc, NULL, 0) : SLUICE_READY;
}

static void gen_close(sluice_stream *s)
{
    sluice_pool_object_free(s->pool, s, sizeof(generator));
}

static int generator_new(sluice_pool *pool, uint64_t bytes, sluice_stream **out)
{
    static const sluice_stream_vtable vt = {"generator", gen_poll, NULL, gen_close};
    generator *g = sluice_pool_object_alloc(pool, sizeof *g);
    if (!g)
        return SLUICE_ENOMEM;
    memset(g, 0, sizeof *g);
    g->base.vt = &vt;
    g->base.pool = pool;
    g->left = bytes;
    g->x = 0x736c75696365ull; /* any non-zero seed; fixed, so runs agree */
    *out = &g->base;
    return 0;
}

/* ---- a custom sink: counts the bytes and drops them -------------------------- */

typedef struct counter {
    sluice_sink base;   /* first member, as for streams */
    uint64_t bytes;
    size_t peak_blocks; /* most blocks live at once, sampled at each write */
} counter;

static sluice_poll count_write(sluice_sink *k, sluice_bytes *chunk)
{
    counter *c = (counter *)k;
    sluice_pool_counters st;
    sluice_pool_stats(k->pool, &st);
    if (st.blocks_live > c->peak_blocks)
        c->peak_blocks = st.blocks_live;
    c->bytes += chunk->len;
    sluice_bytes_release(chunk); /* READY means we took the reference: drop it */
    return SLUICE_READY;
}

static sluice_poll count_nothing_held(sluice_sink *k)
{
    (void)k; /* flush and finish: nothing is ever held, no framing to end */
    return SLUICE_READY;
}

static void count_abort(sluice_sink *k)
{
    (void)k;
}

static void count_close(sluice_sink *k)
{
    sluice_pool_object_free(k->pool, k, sizeof(counter));
}

static int counter_new(sluice_pool *pool, sluice_sink **out)
{
    static const sluice_sink_vtable vt = {
        "counter", count_write, count_nothing_held, count_nothing_held,
        count_abort, NULL /* ready: never PENDING */, NULL /* buffered: 0 */, count_close,
    };
    counter *c = sluice_pool_object_alloc(pool, sizeof *c);
    if (!c)
        return SLUICE_ENOMEM;
    memset(c, 0, sizeof *c);
    c->base.vt = &vt;
    c->base.pool = pool;
    *out = &c->base;
    return 0;
}

/* ---- the program -------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --emit: the same body to stdout, by polling the stream by hand, so a
 * separate tool (sha256sum) can check the digest. */
static int emit(sluice_stream *s)
{
    sluice_bytes b;
    sluice_poll r;
    while ((r = sluice_stream_poll_next(s, &b)) == SLUICE_READY) {
        int short_write = fwrite(b.data, 1, b.len, stdout) != b.len;
        sluice_bytes_release(&b); /* each READY chunk is ours to release */
        if (short_write)
            return -EIO;
    }
    if (fflush(stdout) != 0)
        return -EIO;
    return r == SLUICE_EOF ? 0 : sluice_stream_error(s, NULL);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice-digest-demo [--mib N] [--emit]\n"
               "  Streams N MiB (default 256) of pseudo-random bytes through a SHA-256\n"
               "  tap and a pump into a counting sink; prints the size, the speed, the\n"
               "  digest and the pool counters.\n"
               "  --emit  write the same bytes to stdout instead (for sha256sum)\n");
}

/* Reads --mib and --emit. Returns -1 to go on, else the exit status. */
static int options(int argc, char **argv, uint64_t *mib, int *emit_only)
{
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--emit") == 0) {
            *emit_only = 1;
        } else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc) {
            errno = 0;
            *mib = strtoull(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || argv[i][0] == '-' || *mib > (1u << 20)) {
                fprintf(stderr, "sluice-digest-demo: --mib wants 0..1048576\n");
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

/* What a run measured, for the report. */
typedef struct result {
    uint64_t bytes, allocated;
    size_t peak;
    double secs;
    char hex[SLUICE_SHA256_HEX_SIZE];
} result;

/*
 * Digests body (taken over) into a counting sink: the tap shows every chunk
 * to sluice_sha256_tap(&sha, chunk) on its way through, and the pump
 * borrows both ends; run() steps it until the stream's EOF and the sink's
 * finish (a server would call sluice_pump_step from its event loop instead).
 */
static int digest(sluice_pool *pool, sluice_stream *body, result *res)
{
    sluice_sha256_ctx sha;
    sluice_sha256_init(&sha);
    sluice_stream *tapped = NULL;
    sluice_sink *sink = NULL;
    int rc = sluice_tap_new(pool, body, sluice_sha256_tap, &sha, &tapped);
    if (rc == 0)
        rc = counter_new(pool, &sink);
    double t0 = now_s();
    if (rc == 0) {
        sluice_pump pump;
        sluice_pump_init(&pump, tapped, sink, NULL);
        rc = sluice_pump_run(&pump, -1);
        sluice_pump_close(&pump);
    }
    res->secs = now_s() - t0;
    unsigned char d[SLUICE_SHA256_SIZE];
    sluice_sha256_final(&sha, d);
    sluice_sha256_hex(d, res->hex);
    res->bytes = sink ? ((counter *)sink)->bytes : 0;
    res->peak = sink ? ((counter *)sink)->peak_blocks : 0;
    sluice_pool_counters st;
    sluice_pool_stats(pool, &st);
    res->allocated = st.blocks_allocated;
    sluice_stream_close(tapped);
    sluice_sink_close(sink);
    return rc;
}

int main(int argc, char **argv)
{
    uint64_t mib = 256;
    int emit_only = 0;
    int status = options(argc, argv, &mib, &emit_only);
    if (status >= 0)
        return status;

    /* Everything comes from a pool: 64 KiB blocks, malloc/free underneath. */
    sluice_pool *pool = NULL;
    sluice_stream *body = NULL;
    int rc = sluice_pool_new(NULL, &pool);
    if (rc == 0)
        rc = generator_new(pool, mib << 20, &body);
    result res = {0};
    if (rc == 0 && emit_only) {
        rc = emit(body);
        sluice_stream_close(body);
    } else if (rc == 0) {
        rc = digest(pool, body, &res); /* takes body */
    }
    sluice_pool_counters st = {0};
    if (pool)
        sluice_pool_stats(pool, &st); /* after closing: everything is back */
    sluice_pool_close(pool);
    if (rc < 0) {
        fprintf(stderr, "sluice-digest-demo: %s\n", sluice_strerror(rc));
        return 1;
    }
    if (emit_only)
        return 0;
    printf("bytes:  %" PRIu64 " (%" PRIu64 " MiB) in %.3f s, %.0f MiB/s\n", res.bytes, mib,
           res.secs, res.secs > 0 ? (double)res.bytes / (1 << 20) / res.secs : 0.0);
    printf("sha256: %s\n", res.hex);
    printf("pool:   peak live blocks %zu (%zu KiB each), %" PRIu64
           " allocated in all; after close %zu blocks, %zu objects live\n",
           res.peak, st.block_size / 1024, res.allocated, st.blocks_live, st.objects_live);
    return 0;
}
