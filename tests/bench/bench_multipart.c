/*
 * bench_multipart.c — multipart splitter throughput.
 *
 * Each body (256 MiB, times BENCH_SCALE) is laid out in 64 KiB pool blocks
 * and fed as one view per block, as the socket reader would hand it over.
 * Every part's data is pulled to its end and released. Cases:
 *   multipart_one_part      one file part (random bytes)
 *   multipart_4k_parts      tens of thousands of 4 KiB parts
 *   multipart_adversarial   one part dense in CR, LF, '-' and prefixes of
 *                           the delimiter
 *   multipart_one_part_random  one file part (random bytes, other seed) with
 *                           a boundary made as browsers make it:
 *                           "----WebKitFormBoundary" and 16 random
 *                           alphanumerics
 *   multipart_one_part_hot  one file part whose data is the same 1 MiB of
 *                           random blocks over and over (views of 16 blocks):
 *                           the data in cache, as after the socket read that
 *                           just wrote it, so the scan's own cost shows, not
 *                           memory bandwidth
 *   memcpy_256m             baseline: memcpy of the same blocks, each once,
 *                           into a 64 KiB buffer (one read of every byte)
 *   multipart_one_part_copied  payload bytes the splitter copied: data
 *                           chunks that are not views of the input blocks,
 *                           plus any block it allocated (expect 0)
 */
#include "bench.h"

#define BOUNDARY "----WebKitFormBoundary7MA4YWxkTrZu0gW"
#define BLOCK (64u * 1024u)

typedef struct body {
    const char *boundary;
    sluice_block **blocks;
    size_t nblocks, len;
    unsigned char *fill; /* where the next byte goes */
    size_t used;         /* bytes in the last block */
} body;

static sluice_pool *pool;

static void body_put(body *b, const void *p, size_t n)
{
    const unsigned char *s = p;
    while (n) {
        if (!b->nblocks || b->used == BLOCK) {
            b->blocks = realloc(b->blocks, (b->nblocks + 1) * sizeof *b->blocks);
            if (sluice_block_get(pool, &b->blocks[b->nblocks]) < 0)
                abort();
            b->fill = sluice_block_data(b->blocks[b->nblocks++]);
            b->used = 0;
        }
        size_t k = BLOCK - b->used < n ? BLOCK - b->used : n;
        memcpy(b->fill + b->used, s, k);
        b->used += k;
        b->len += k;
        s += k;
        n -= k;
    }
}

static void body_puts(body *b, const char *s)
{
    body_put(b, s, strlen(s));
}

static void body_free(body *b)
{
    for (size_t i = 0; i < b->nblocks; i++)
        sluice_block_release(b->blocks[i]);
    free(b->blocks);
    memset(b, 0, sizeof *b);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

/* Data for one part of n bytes: random, or adversarial tokens. No delimiter
 * can occur: the random case would need 42 exact bytes, the adversarial case
 * uses proper prefixes of the boundary only. */
static void put_data(body *b, size_t n, int adversarial)
{
    static unsigned char buf[BLOCK];
    static const char *tok[] = {"\r", "\n", "-", "--", "\r\n", "\r\n--", "\r\n-", "\r\r\n"};
    while (n) {
        size_t k = n < sizeof buf ? n : sizeof buf, i = 0;
        if (!adversarial) {
            for (; i + 8 <= k; i += 8) {
                uint64_t r = next_rand();
                memcpy(buf + i, &r, 8);
            }
            for (; i < k; i++)
                buf[i] = (unsigned char)next_rand();
        } else {
            while (i < k) {
                uint64_t r = next_rand();
                const char *t;
                size_t tl;
                char tmp[64];
                if (r % 4 == 0) { /* CRLF "--" and a proper prefix of the boundary */
                    tl = (size_t)snprintf(tmp, sizeof tmp, "\r\n--%.*s",
                                          (int)((r >> 8) % (sizeof BOUNDARY - 1)), BOUNDARY);
                    t = tmp;
                } else {
                    t = tok[(r >> 8) % 8];
                    tl = strlen(t);
                }
                for (size_t j = 0; j < tl && i < k; j++)
                    buf[i++] = (unsigned char)t[j];
            }
        }
        body_put(b, buf, k);
        n -= k;
    }
}

static void build(body *b, const char *boundary, size_t total, size_t part_size,
                  int adversarial)
{
    memset(b, 0, sizeof *b);
    b->boundary = boundary;
    char head[256];
    for (size_t i = 0; b->len < total; i++) {
        snprintf(head, sizeof head,
                 "--%s\r\nContent-Disposition: form-data; name=\"file%zu\"; "
                 "filename=\"f%zu.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                 boundary, i, i);
        body_puts(b, i ? "\r\n" : "");
        body_puts(b, head);
        put_data(b, part_size ? part_size : total, adversarial);
    }
    body_puts(b, "\r\n--");
    body_puts(b, boundary);
    body_puts(b, "--\r\n");
}

/* A boundary as browsers make it: a fixed prefix, 16 random alphanumerics. */
static void browser_boundary(char out[64])
{
    static const char an[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    strcpy(out, "----WebKitFormBoundary");
    size_t n = strlen(out);
    for (int i = 0; i < 16; i++)
        out[n++] = an[next_rand() % (sizeof an - 1)];
    out[n] = '\0';
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (sluice_block *const *)a, y = (uintptr_t) * (sluice_block *const *)b;
    return x < y ? -1 : x > y;
}

/* Splits the body once; returns seconds. With `sorted` (the input blocks,
 * sorted) also counts payload bytes that are not views into them. */
static double run(const body *b, uint64_t *copied, sluice_block **sorted)
{
    sluice_bytes *views = malloc(b->nblocks * sizeof *views);
    for (size_t i = 0; i < b->nblocks; i++)
        sluice_block_view(b->blocks[i], 0, i + 1 < b->nblocks ? BLOCK : b->used, &views[i]);
    sluice_pool_counters st0, st1;
    sluice_pool_stats(pool, &st0);
    double t0 = bench_now();
    sluice_stream *s;
    sluice_multipart *m;
    sluice_multipart_limits lim = {.max_parts = 1u << 20};
    if (sluice_memstream_new(pool, views, b->nblocks, 0, &s) < 0 ||
        sluice_multipart_new(pool, s, b->boundary, strlen(b->boundary), &lim, &m) < 0)
        abort();
    sluice_stream *p;
    sluice_poll r;
    uint64_t bytes = 0;
    while ((r = sluice_multipart_next(m, &p)) == SLUICE_READY) {
        sluice_bytes c;
        while ((r = sluice_stream_poll_next(p, &c)) == SLUICE_READY) {
            bytes += c.len;
            if (sorted) {
                sluice_block *o = c.owner;
                sluice_block **hit = bsearch(&o, sorted, b->nblocks, sizeof *sorted, cmp_ptr);
                const unsigned char *d = hit ? sluice_block_data(o) : NULL;
                if (!hit || c.data < d || c.data + c.len > d + BLOCK)
                    *copied += c.len;
            }
            sluice_bytes_release(&c);
        }
        sluice_stream_close(p);
        if (r != SLUICE_EOF)
            break;
    }
    double t = bench_now() - t0;
    if (r != SLUICE_EOF) {
        fprintf(stderr, "bench_multipart: %s\n", t_multipart_why(m));
        abort();
    }
    sluice_pool_stats(pool, &st1);
    if (copied)
        *copied += (st1.blocks_allocated - st0.blocks_allocated) * BLOCK;
    sluice_multipart_close(m);
    free(views);
    bench_sink_ptr(&bytes);
    return t;
}

static double best_gbps(const body *b, int reps)
{
    double best = 1e9;
    for (int i = 0; i < reps; i++) {
        double t = run(b, NULL, NULL);
        if (t < best)
            best = t;
    }
    return (double)b->len / best / 1e9;
}

static double memcpy_gbps(const body *b, int reps)
{
    static unsigned char dst[BLOCK];
    double best = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        for (size_t i = 0; i < b->nblocks; i++) {
            memcpy(dst, sluice_block_data(b->blocks[i]), i + 1 < b->nblocks ? BLOCK : b->used);
            bench_sink_ptr(dst);
        }
        double t = bench_now() - t0;
        if (t < best)
            best = t;
    }
    return (double)b->len / best / 1e9;
}

int main(void)
{
    size_t total = (size_t)(256.0 * 1024 * 1024 * bench_scale());
    if (total < 4u << 20)
        total = 4u << 20;
    sluice_pool_config cfg = {.block_size = BLOCK};
    if (sluice_pool_new(&cfg, &pool) < 0)
        return 1;
    const int reps = 3;
    body b;

    build(&b, BOUNDARY, total, 0, 0);
    bench_line("memcpy_256m", memcpy_gbps(&b, reps), "GB/s");
    double one = best_gbps(&b, reps);
    bench_line("multipart_one_part", one, "GB/s");
    sluice_block **sorted = malloc(b.nblocks * sizeof *sorted);
    memcpy(sorted, b.blocks, b.nblocks * sizeof *sorted);
    qsort(sorted, b.nblocks, sizeof *sorted, cmp_ptr);
    uint64_t copied = 0;
    run(&b, &copied, sorted);
    free(sorted);
    bench_line("multipart_one_part_copied", (double)copied, "bytes");
    body_free(&b);

    /* hot: the blocks of a 1 MiB body, the middle ones repeated up to total */
    build(&b, BOUNDARY, 1u << 20, 0, 0);
    size_t mid = b.nblocks - 2, n = total / BLOCK + 2;
    body hot = b;
    hot.blocks = malloc(n * sizeof *hot.blocks);
    hot.nblocks = n;
    hot.len = b.len + (n - b.nblocks) * (size_t)BLOCK;
    hot.blocks[0] = b.blocks[0];
    for (size_t i = 1; i + 1 < n; i++)
        hot.blocks[i] = b.blocks[1 + (i - 1) % mid];
    hot.blocks[n - 1] = b.blocks[b.nblocks - 1];
    bench_line("multipart_one_part_hot", best_gbps(&hot, reps), "GB/s");
    free(hot.blocks);
    body_free(&b);

    build(&b, BOUNDARY, total, 4096, 0);
    bench_line("multipart_4k_parts", best_gbps(&b, reps), "GB/s");
    body_free(&b);

    build(&b, BOUNDARY, total, 0, 1);
    double adv = best_gbps(&b, reps);
    bench_line("multipart_adversarial", adv, "GB/s");
    body_free(&b);

    char bnd[64];
    rng = 0x2545f4914f6cdd1dull;
    browser_boundary(bnd);
    build(&b, bnd, total, 0, 0);
    bench_line("multipart_one_part_random", best_gbps(&b, reps), "GB/s");
    body_free(&b);

    sluice_pool_close(pool);
    return 0;
}
