/* test_reader.c — the socket reader: blocks per readv, peek/take/skip across
 * blocks, the buffering bound, pool backpressure, EAGAIN, EOF. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static sluice_pool *small_pool(size_t block, size_t max_blocks)
{
    sluice_pool_config pc = {.block_size = block, .max_blocks = max_blocks};
    sluice_pool *p = NULL;
    if (sluice_pool_new(&pc, &p) < 0)
        abort();
    return p;
}

static size_t live(sluice_pool *p)
{
    sluice_pool_counters st;
    sluice_pool_stats(p, &st);
    return st.blocks_live;
}

/* A transport that counts reads and remembers how much each offered. */
typedef struct count_io {
    sluice_io base;
    const char *data;
    size_t len, pos;
    int reads, last_iovcnt;
    size_t last_offered;
} count_io;

static ssize_t count_readv(sluice_io *io, const struct iovec *iov, int n)
{
    count_io *c = (count_io *)io;
    c->reads++;
    c->last_iovcnt = n;
    c->last_offered = 0;
    for (int i = 0; i < n; i++)
        c->last_offered += iov[i].iov_len;
    if (c->pos == c->len)
        return -EAGAIN;
    size_t got = 0;
    for (int i = 0; i < n && c->pos < c->len; i++) {
        size_t k = iov[i].iov_len < c->len - c->pos ? iov[i].iov_len : c->len - c->pos;
        memcpy(iov[i].iov_base, c->data + c->pos, k);
        c->pos += k;
        got += k;
    }
    return (ssize_t)got;
}

static ssize_t count_writev(sluice_io *io, const struct iovec *iov, int n)
{
    (void)io;
    (void)iov;
    (void)n;
    return -EPIPE;
}

static int count_shutdown(sluice_io *io)
{
    (void)io;
    return 0;
}

static void count_close(sluice_io *io)
{
    (void)io;
}

static const sluice_io_vtable count_vt = {"count", count_readv, count_writev, count_shutdown,
                                          NULL, count_close};

static count_io counting(sluice_pool *p, const char *data, size_t len)
{
    count_io c = {.base = {&count_vt, p, 77}, .data = data, .len = len};
    return c;
}

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

TEST(reader_readv_offers_several_blocks)
{
    sluice_pool *p = small_pool(64, 0);
    count_io c = counting(p, alphabet, 240);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(p, &c.base, NULL, &r) == 0);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(c.reads, 1);
    EXPECT_EQ(c.last_iovcnt, 4); /* default: 4 blocks per readv */
    EXPECT_EQ(c.last_offered, 256);
    EXPECT_EQ(sluice_reader_available(r), 240);
    EXPECT_EQ(live(p), 4);
    c.len = 248;
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY); /* 16 bytes of room left */
    EXPECT_EQ(c.last_iovcnt, 1);
    EXPECT_EQ(c.last_offered, 16);
    EXPECT_EQ(sluice_reader_available(r), 248);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_PENDING);
    EXPECT_EQ(live(p), 4);
    sluice_interest w;
    sluice_reader_ready(r, &w);
    EXPECT_EQ(w.fd, 77);
    EXPECT_EQ(w.events, SLUICE_WANT_READ);
    /* takes never span blocks; the bytes come out in order */
    char got[256];
    size_t n = 0;
    sluice_bytes b;
    while (sluice_reader_take(r, 100, &b)) {
        EXPECT(b.len <= 64);
        memcpy(got + n, b.data, b.len);
        n += b.len;
        sluice_bytes_release(&b);
    }
    EXPECT_MEM(got, n, alphabet, 248);
    EXPECT_EQ(sluice_reader_consumed(r), 248);
    sluice_reader_close(r);
    EXPECT_EQ(live(p), 0);
    sluice_pool_close(p);
}

TEST(reader_idle_holds_no_block)
{
    sluice_pool *p = small_pool(64, 0);
    count_io c = counting(p, alphabet, 30);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(p, &c.base, NULL, &r) == 0);
    c.len = 10;
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    sluice_bytes a;
    EXPECT_EQ(sluice_reader_take(r, 100, &a), 10);
    /* all consumed, but a view is out: the block stays for appends */
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_PENDING);
    EXPECT_EQ(live(p), 1);
    sluice_bytes_release(&a);
    /* all consumed, nothing out: the next empty read lets it go */
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_PENDING);
    EXPECT_EQ(live(p), 0);
    /* unread bytes keep it */
    c.len = 20;
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    sluice_reader_skip(r, 5);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_PENDING);
    EXPECT_EQ(live(p), 1);
    EXPECT_EQ(sluice_reader_available(r), 5);
    /* and it reads on from a fresh block afterwards */
    sluice_reader_skip(r, 5);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_PENDING);
    EXPECT_EQ(live(p), 0);
    c.len = 30;
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(sluice_reader_take(r, 100, &a), 10);
    EXPECT_MEM(a.data, a.len, alphabet + 20, 10);
    sluice_bytes_release(&a);
    sluice_reader_close(r);
    EXPECT_EQ(live(p), 0);
    sluice_pool_close(p);
}

TEST(reader_idle_waits_without_a_read)
{
    sluice_pool *p = small_pool(64, 0);
    count_io c = counting(p, alphabet, 10);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(p, &c.base, NULL, &r) == 0);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    sluice_interest w;
    /* unread bytes are the next input: no wait, the block stays */
    sluice_reader_idle(r);
    sluice_reader_ready(r, &w);
    EXPECT_EQ(w.events, 0);
    EXPECT_EQ(live(p), 1);
    sluice_bytes a;
    EXPECT_EQ(sluice_reader_take(r, 100, &a), 10);
    /* a view is out: waits for the io, the block stays for appends */
    sluice_reader_idle(r);
    sluice_reader_ready(r, &w);
    EXPECT_EQ(w.fd, 77);
    EXPECT_EQ(w.events, SLUICE_WANT_READ);
    EXPECT_EQ(live(p), 1);
    sluice_bytes_release(&a);
    /* nothing unread, nothing out: the block goes, and no read was made */
    int reads = c.reads;
    sluice_reader_idle(r);
    sluice_reader_ready(r, &w);
    EXPECT_EQ(w.fd, 77);
    EXPECT_EQ(w.events, SLUICE_WANT_READ);
    EXPECT_EQ(live(p), 0);
    EXPECT_EQ(c.reads, reads);
    /* the next fill reads on from a fresh block */
    c.len = 25;
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(sluice_reader_take(r, 100, &a), 15);
    EXPECT_MEM(a.data, a.len, alphabet + 10, 15);
    sluice_bytes_release(&a);
    sluice_reader_close(r);
    EXPECT_EQ(live(p), 0);
    sluice_pool_close(p);
}

TEST(reader_small_reads_share_a_block)
{
    sluice_pool *p = small_pool(64, 0);
    count_io c = counting(p, alphabet, 30);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(p, &c.base, NULL, &r) == 0);
    c.len = 10;
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    sluice_bytes a, b2;
    EXPECT_EQ(sluice_reader_take(r, 100, &a), 10);
    c.len = 30;
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(sluice_reader_take(r, 100, &b2), 20);
    EXPECT(a.owner == b2.owner);            /* appended after the handed-out bytes */
    EXPECT(b2.data == a.data + 10);
    EXPECT_EQ(live(p), 1);
    sluice_bytes_release(&a);
    sluice_bytes_release(&b2);
    sluice_reader_close(r);
    sluice_pool_close(p);
}

TEST(reader_peek_zero_copy_and_across_blocks)
{
    sluice_pool *p = small_pool(64, 0);
    count_io c = counting(p, alphabet, 200);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(p, &c.base, NULL, &r) == 0);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    sluice_bytes v;
    EXPECT_EQ(sluice_reader_peek(r, 50, &v), 0);
    const unsigned char *front;
    EXPECT_EQ(sluice_reader_front(r, &front), 64);
    EXPECT(v.data == front);  /* zero-copy */
    EXPECT_MEM(v.data, v.len, alphabet, 50);
    sluice_bytes_release(&v);
    EXPECT_EQ(sluice_reader_peek(r, 150, &v), 0); /* spans 3 blocks: one copy */
    EXPECT(v.data != front);
    EXPECT_MEM(v.data, v.len, alphabet, 150);
    sluice_bytes_release(&v);
    EXPECT_EQ(sluice_reader_peek(r, 1000, &v), 0); /* larger than a block */
    EXPECT_MEM(v.data, v.len, alphabet, 200);
    sluice_bytes_release(&v);
    EXPECT_EQ(sluice_reader_available(r), 200);  /* peek consumes nothing */
    sluice_reader_skip(r, 70);
    EXPECT_EQ(sluice_reader_front(r, &front), 58);
    EXPECT_MEM(front, 58, alphabet + 70, 58);
    EXPECT_EQ(sluice_reader_peek(r, 0, &v), 0);
    EXPECT_EQ(v.len, 0);
    sluice_reader_skip(r, 1000); /* clamped */
    EXPECT_EQ(sluice_reader_available(r), 0);
    EXPECT_EQ(sluice_reader_consumed(r), 200);
    EXPECT_EQ(sluice_reader_take(r, 10, &v), 0);
    EXPECT_EQ(sluice_reader_peek(r, 10, &v), 0);
    EXPECT_EQ(v.len, 0);
    sluice_reader_close(r);
    EXPECT_EQ(live(p), 0);
    sluice_pool_close(p);
}

TEST(reader_bound_stops_reading)
{
    sluice_pool *p = small_pool(64, 0);
    count_io c = counting(p, alphabet, 248);
    sluice_reader_config rc = {.max_buffered = 100, .max_iov = 2};
    sluice_reader *r;
    REQUIRE(sluice_reader_new(p, &c.base, &rc, &r) == 0);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(c.last_offered, 100);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY); /* at the bound: no read */
    EXPECT_EQ(c.reads, 1);
    sluice_reader_skip(r, 30);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(c.reads, 2);
    EXPECT_EQ(c.last_offered, 30);
    EXPECT_EQ(sluice_reader_available(r), 100);
    sluice_reader_close(r);
    sluice_pool_close(p);
}

TEST(reader_pool_cap_is_backpressure)
{
    /* 64-byte blocks, a cap of 2 and a reserve of 1 for readers that hold a
     * block; no wake hook, so a queued reader retries on a deadline */
    sluice_pool_config pc = {.block_size = 64, .max_blocks = 2, .reserve = 1};
    sluice_pool *p;
    REQUIRE(sluice_pool_new(&pc, &p) == 0);
    static char data[512];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = alphabet[i % 62];
    count_io c = counting(p, data, sizeof data);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(p, &c.base, NULL, &r) == 0);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY); /* reads into the 2 it got */
    EXPECT_EQ(c.last_offered, 128);
    sluice_bytes a, b, cc, d, e, f;
    EXPECT_EQ(sluice_reader_take(r, 64, &a), 64);
    EXPECT_EQ(sluice_reader_take(r, 64, &b), 64);
    /* its block is full and its views wait downstream: one more from the
     * reserve (a consumer may need it to make any progress) */
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(c.last_offered, 64);
    EXPECT_EQ(live(p), 3);
    EXPECT_EQ(sluice_reader_take(r, 64, &cc), 64);
    /* and the reserve spent: it waits in the queue, no fd, a deadline */
    int64_t t0 = sluice_now_ms();
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_PENDING); /* pool full, not an error */
    EXPECT_EQ(sluice_reader_error(r), 0);
    EXPECT_EQ(c.reads, 2);
    sluice_interest w;
    sluice_reader_ready(r, &w);
    EXPECT_EQ(w.fd, -1);
    EXPECT_EQ(w.events, 0);
    EXPECT(w.deadline_ms >= t0 + SLUICE_READER_POOL_RETRY_MS &&
           w.deadline_ms <= sluice_now_ms() + SLUICE_READER_POOL_RETRY_MS);
    sluice_pool_counters st;
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.blocks_max, 3);
    EXPECT_EQ(st.waiters, 1);
    EXPECT(st.pool_full >= 1);
    sluice_bytes_release(&a); /* a view came back: its block is ours */
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.waiters, 0);
    EXPECT_EQ(st.wakes, 1);
    EXPECT_EQ(live(p), 3); /* handed over, still counted */
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(c.last_offered, 64);
    EXPECT_EQ(live(p), 3);
    sluice_reader_ready(r, &w);
    EXPECT_EQ(w.deadline_ms, -1); /* a successful fill clears the retry */
    /* its front consumed and nothing else sharing it: the unread bytes
     * move to the front and the next read fits in the same block */
    sluice_reader_skip(r, 10);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(c.last_offered, 10);
    EXPECT_EQ(live(p), 3);
    EXPECT_EQ(sluice_reader_take(r, 64, &d), 64);
    EXPECT_MEM(d.data, 64, data + 202, 64);
    sluice_bytes_release(&b);
    sluice_bytes_release(&cc);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY); /* under the cap again */
    EXPECT_EQ(c.last_offered, 64);

    /* a reader holding nothing waits behind everybody, while one that
     * holds a block may still use the reserve */
    count_io c2 = counting(p, data, sizeof data);
    sluice_reader *r2;
    REQUIRE(sluice_reader_new(p, &c2.base, NULL, &r2) == 0);
    EXPECT_EQ(sluice_reader_fill(r2), SLUICE_PENDING);
    EXPECT_EQ(c2.reads, 0);
    EXPECT_EQ(sluice_reader_take(r, 64, &e), 64);
    EXPECT_MEM(e.data, 64, data + 266, 64);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(live(p), 3);
    sluice_bytes_release(&d); /* 2 out after it: not under the cap, no grant */
    EXPECT_EQ(sluice_reader_fill(r2), SLUICE_PENDING);
    sluice_bytes_release(&e); /* 1 out after it: r2's turn */
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.wakes, 2);
    EXPECT_EQ(sluice_reader_fill(r2), SLUICE_READY);
    EXPECT_EQ(c2.last_offered, 64);
    EXPECT_EQ(sluice_reader_take(r2, 64, &f), 64);
    EXPECT_MEM(f.data, 64, data, 64);
    sluice_bytes_release(&f);
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.blocks_max, 3); /* never more than the cap and the reserve */
    sluice_reader_close(r2);
    sluice_reader_close(r);
    EXPECT_EQ(live(p), 0);
    sluice_pool_close(p);
}

TEST(reader_eof_is_remembered_and_bytes_stay)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    sluice_io *io;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[1], SLUICE_IO_CLOSE_FD, &io) == 0);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(T_POOL, io, NULL, &r) == 0);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_PENDING);
    sluice_interest w;
    sluice_reader_ready(r, &w);
    EXPECT_EQ(w.fd, sv[1]);
    EXPECT_EQ(write(sv[0], "GET / HTTP/1.1\r\n\r\n", 18), 18);
    close(sv[0]);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_READY);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_EOF);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_EOF);
    sluice_bytes v;
    EXPECT_EQ(sluice_reader_peek(r, 100, &v), 0);
    EXPECT_MEM(v.data, v.len, "GET / HTTP/1.1\r\n\r\n", 18);
    sluice_bytes_release(&v);
    sluice_reader_close(r);
    sluice_io_close(io);
}

TEST(reader_head_then_body_then_next_request)
{
    /* a host's sequence: peek the head, skip it, read the body, and the next
     * request's bytes are still there, through 1-byte reads */
    static const char in[] = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /2 HTTP/1.1\r\n\r\n";
    sluice_io *io;
    REQUIRE(sluice__io_mem_new(T_POOL, in, sizeof in - 1, 1, SLUICE__IO_MEM_EAGAIN, &io) == 0);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(T_POOL, io, NULL, &r) == 0);
    size_t head_len = 0;
    while (!head_len) {
        sluice_poll f = sluice_reader_fill(r);
        REQUIRE(f == SLUICE_READY || f == SLUICE_PENDING);
        sluice_bytes v;
        REQUIRE(sluice_reader_peek(r, 1024, &v) == 0);
        for (size_t i = 3; i < v.len && !head_len; i++)
            if (!memcmp(v.data + i - 3, "\r\n\r\n", 4))
                head_len = i + 1;
        sluice_bytes_release(&v);
    }
    sluice_reader_skip(r, head_len);
    sluice_stream *s;
    REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_LENGTH(5), NULL, &s) == 0);
    char body[8];
    size_t n = 0;
    sluice_poll p;
    sluice_bytes b;
    while ((p = sluice_stream_poll_next(s, &b)) != SLUICE_EOF) {
        REQUIRE(p != SLUICE_ERROR);
        if (p == SLUICE_PENDING)
            continue;
        memcpy(body + n, b.data, b.len);
        n += b.len;
        sluice_bytes_release(&b);
    }
    EXPECT_MEM(body, n, "hello", 5);
    sluice_stream_close(s);
    while (sluice_reader_fill(r) != SLUICE_EOF)
        ;
    sluice_bytes v;
    EXPECT_EQ(sluice_reader_peek(r, 1024, &v), 0);
    EXPECT_MEM(v.data, v.len, "GET /2 HTTP/1.1\r\n\r\n", 19);
    sluice_bytes_release(&v);
    sluice_reader_close(r);
    sluice_io_close(io);
}

TEST(reader_config_checked)
{
    count_io c = counting(T_POOL, "", 0);
    sluice_reader_config rc = {.max_iov = 65};
    sluice_reader *r = (sluice_reader *)&c;
    EXPECT_ERR(sluice_reader_new(T_POOL, &c.base, &rc, &r), SLUICE_EINVAL);
    EXPECT(r == NULL);
    sluice_reader_close(NULL);
}

TEST(reader_alloc_failures)
{
    for (long k = 1; k < 10; k++) {
        t_failalloc fa = {.fail_at = k};
        sluice_allocator a = t_failalloc_hook(&fa);
        sluice_pool_config pc = {.allocator = &a, .block_size = 64};
        sluice_pool *p;
        if (sluice_pool_new(&pc, &p) < 0)
            continue;
        count_io c = counting(p, alphabet, 200);
        sluice_reader *r;
        int rc = sluice_reader_new(p, &c.base, NULL, &r);
        if (rc == 0) {
            sluice_poll f = sluice_reader_fill(r);
            if (f == SLUICE_ERROR)
                EXPECT_ERR(sluice_reader_error(r), SLUICE_ENOMEM);
            sluice_bytes v;
            rc = sluice_reader_peek(r, 150, &v);
            EXPECT(rc == 0 || rc == SLUICE_ENOMEM);
            sluice_bytes_release(&v);
            sluice_reader_close(r);
        } else {
            EXPECT_ERR(rc, SLUICE_ENOMEM);
        }
        sluice_pool_close(p);
        EXPECT_EQ(fa.live, 0);
    }
}
