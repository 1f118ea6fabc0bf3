/* test_writer.c — chunked, length and raw writers: exact bytes, one writev
 * per batch, partial writes, EAGAIN (scripted and with a tiny SO_SNDBUF on
 * loopback TCP), abort, limits, timeouts. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A transport that records what is written, accepts at most `max` bytes per
 * call (0: all) and, if `again`, answers -EAGAIN to every other call. */
typedef struct rec_io {
    sluice_io base;
    char out[1 << 16];
    size_t len, max;
    int calls, again, flip, shut;
    int last_iovcnt;
} rec_io;

static ssize_t rec_readv(sluice_io *io, const struct iovec *iov, int n)
{
    (void)io;
    (void)iov;
    (void)n;
    return -EAGAIN;
}

static ssize_t rec_writev(sluice_io *io, const struct iovec *iov, int n)
{
    rec_io *r = (rec_io *)io;
    r->calls++;
    r->last_iovcnt = n;
    if (r->again && (r->flip ^= 1))
        return -EAGAIN;
    size_t got = 0;
    for (int i = 0; i < n; i++) {
        size_t k = iov[i].iov_len;
        if (r->max && k > r->max - got)
            k = r->max - got;
        memcpy(r->out + r->len, iov[i].iov_base, k);
        r->len += k;
        got += k;
        if (r->max && got == r->max)
            break;
    }
    return (ssize_t)got;
}

static int rec_shutdown(sluice_io *io)
{
    ((rec_io *)io)->shut = 1;
    return 0;
}

static void rec_close(sluice_io *io)
{
    (void)io;
}

static const sluice_io_vtable rec_vt = {"rec", rec_readv, rec_writev, rec_shutdown, NULL,
                                        rec_close};

static rec_io *rec_new(size_t max, int again)
{
    static rec_io r;
    memset(&r, 0, sizeof r);
    r.base = (sluice_io){&rec_vt, T_POOL, 9};
    r.max = max;
    r.again = again;
    return &r;
}

static sluice_bytes bs(const char *s)
{
    sluice_bytes b;
    if (sluice_bytes_copy_from(T_POOL, s, strlen(s), &b) < 0)
        abort();
    return b;
}

static sluice_poll put(sluice_sink *k, const char *s)
{
    sluice_bytes b = bs(s);
    sluice_poll p = sluice_sink_poll_write(k, &b);
    sluice_bytes_release(&b);
    return p;
}

TEST(chunked_writer_one_writev_with_head_and_terminator)
{
    rec_io *r = rec_new(0, 0);
    sluice_bytes head = bs("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CHUNKED, &head, NULL, &k) == 0);
    EXPECT(head.owner == NULL && head.len == 0); /* moved in */
    EXPECT_EQ(put(k, "hello"), SLUICE_READY);
    EXPECT_EQ(put(k, "0123456789abcdefg"), SLUICE_READY);
    EXPECT_EQ(r->calls, 0); /* queued, nothing written yet */
    EXPECT_EQ(sluice_sink_buffered(k), 22);
    sluice_bytes t = bs("Digest: x\r\n");
    EXPECT_EQ(sluice_writer_trailers(k, &t), 0);
    EXPECT_EQ(sluice_sink_finish(k), SLUICE_READY);
    EXPECT_EQ(r->calls, 1); /* head + 2 chunks + terminator: one writev */
    static const char want[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "5\r\nhello\r\n11\r\n0123456789abcdefg\r\n0\r\nDigest: x\r\n\r\n";
    EXPECT_MEM(r->out, r->len, want, sizeof want - 1);
    EXPECT_EQ(sluice_sink_buffered(k), 0);
    EXPECT_EQ(sluice_sink_written(k), 22);
    EXPECT_EQ(put(k, "late"), SLUICE_ERROR);
    EXPECT_ERR(sluice_sink_error(k, NULL), SLUICE_ECLOSED);
    sluice_sink_close(k);
    EXPECT_EQ(r->shut, 0); /* finished: close does not cut the connection */
}

TEST(chunked_writer_partial_writes_and_eagain)
{
    /* every byte-count limit and EAGAIN on every other call: same bytes */
    static const char want[] = "3\r\nabc\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
    for (size_t max = 1; max < sizeof want; max++) {
        rec_io *r = rec_new(max, 1);
        sluice_sink *k;
        REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CHUNKED, NULL, NULL, &k) == 0);
        EXPECT_EQ(put(k, "abc"), SLUICE_READY);
        EXPECT_EQ(put(k, "abcdefghijklmnopqrstuvwxyz"), SLUICE_READY);
        int pend = 0;
        sluice_poll p;
        while ((p = sluice_sink_finish(k)) == SLUICE_PENDING) {
            sluice_interest w;
            sluice_sink_ready(k, &w);
            EXPECT_EQ(w.fd, 9);
            EXPECT_EQ(w.events, SLUICE_WANT_WRITE);
            pend++;
        }
        EXPECT_EQ(p, SLUICE_READY);
        EXPECT(pend > 0);
        EXPECT_MEM(r->out, r->len, want, sizeof want - 1);
        sluice_sink_close(k);
    }
}

TEST(chunked_writer_queue_bound_forces_a_write)
{
    rec_io *r = rec_new(0, 0);
    sluice_writer_config cfg = {.max_chunks = 3};
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CHUNKED, NULL, &cfg, &k) == 0);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(put(k, "x"), SLUICE_READY);
    EXPECT_EQ(r->calls, 0);
    EXPECT_EQ(put(k, "y"), SLUICE_READY); /* queue full: written first */
    EXPECT_EQ(r->calls, 1);
    EXPECT_EQ(r->last_iovcnt, 9);
    EXPECT_EQ(sluice_sink_buffered(k), 1);
    sluice_sink_close(k);
    EXPECT_EQ(r->shut, 1); /* closed unfinished: aborted */

    r = rec_new(0, 1); /* a peer that does not read: PENDING, chunk stays ours */
    cfg = (sluice_writer_config){.max_bytes = 4};
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CHUNKED, NULL, &cfg, &k) == 0);
    EXPECT_EQ(put(k, "abcd"), SLUICE_READY);
    sluice_bytes b = bs("ef");
    EXPECT_EQ(sluice_sink_poll_write(k, &b), SLUICE_PENDING);
    EXPECT(b.len == 2);
    EXPECT_EQ(sluice_sink_poll_write(k, &b), SLUICE_READY); /* second call writes */
    EXPECT_EQ(sluice_sink_finish(k), SLUICE_PENDING);
    EXPECT_EQ(sluice_sink_finish(k), SLUICE_READY);
    EXPECT_MEM(r->out, r->len, "4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n", 21);
    sluice_sink_close(k);
}

/* A full queue and a peer that takes a byte per write: each write makes
 * progress, so poll_write goes on writing until there is room instead of
 * saying PENDING with nothing to wait for (the host then slept until its
 * idle timeout). */
TEST(writer_full_queue_progress_is_not_pending)
{
    rec_io *r = rec_new(1, 0);
    sluice_writer_config cfg = {.max_bytes = 4};
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CLOSE, NULL, &cfg, &k) == 0);
    EXPECT_EQ(put(k, "abcd"), SLUICE_READY);
    EXPECT_EQ(r->calls, 0);
    EXPECT_EQ(put(k, "ef"), SLUICE_READY);
    EXPECT_EQ(r->calls, 4); /* "abcd" a byte at a time, then room for "ef" */
    EXPECT_EQ(sluice_sink_finish(k), SLUICE_READY);
    EXPECT_MEM(r->out, r->len, "abcdef", 6);
    sluice_sink_close(k);
}

TEST(chunked_writer_trailers_checked)
{
    rec_io *r = rec_new(0, 0);
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CHUNKED, NULL, NULL, &k) == 0);
    sluice_bytes t = bs("X: y");
    EXPECT_ERR(sluice_writer_trailers(k, &t), SLUICE_EINVAL);
    EXPECT(t.owner == NULL); /* released anyway */
    t = bs("X: y\r\n");
    EXPECT_EQ(sluice_writer_trailers(k, &t), 0);
    t = bs("Z: w\r\n"); /* replaces */
    EXPECT_EQ(sluice_writer_trailers(k, &t), 0);
    EXPECT_EQ(sluice_sink_finish(k), SLUICE_READY);
    EXPECT_MEM(r->out, r->len, "0\r\nZ: w\r\n\r\n", 11);
    t = bs("A: b\r\n");
    EXPECT_ERR(sluice_writer_trailers(k, &t), SLUICE_ECLOSED);
    sluice_sink_close(k);
    sluice_sink *l;
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_LENGTH(0), NULL, NULL, &l) == 0);
    t = bs("A: b\r\n");
    EXPECT_ERR(sluice_writer_trailers(l, &t), SLUICE_EINVAL);
    sluice_sink_close(l);
    sluice_writer_config bad = {.max_chunks = 257};
    sluice_bytes head = bs("H");
    EXPECT_ERR(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CHUNKED, &head, &bad, &k), SLUICE_EINVAL);
    EXPECT(head.owner == NULL); /* released on error too */
}

TEST(length_writer_limits)
{
    rec_io *r = rec_new(0, 0);
    sluice_bytes head = bs("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_LENGTH(5), &head, NULL, &k) == 0);
    EXPECT_EQ(put(k, "hel"), SLUICE_READY);
    sluice_bytes b = bs("lo!");
    EXPECT_EQ(sluice_sink_poll_write(k, &b), SLUICE_ERROR); /* at once */
    EXPECT_ERR(sluice_sink_error(k, NULL), SLUICE_ETOOBIG);
    EXPECT_EQ(b.len, 3); /* still the caller's */
    sluice_bytes_release(&b);
    sluice_sink_close(k);
    EXPECT_EQ(r->shut, 1);

    r = rec_new(0, 0);
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_LENGTH(5), NULL, NULL, &k) == 0);
    EXPECT_EQ(put(k, "hell"), SLUICE_READY);
    EXPECT_EQ(sluice_sink_finish(k), SLUICE_ERROR);
    EXPECT_ERR(sluice_sink_error(k, NULL), SLUICE_ETRUNCATED);
    sluice_sink_close(k);
    EXPECT_EQ(r->shut, 1); /* the peer must see the body cut short */

    r = rec_new(2, 1);
    head = bs("H\r\n\r\n");
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_LENGTH(5), &head, NULL, &k) == 0);
    EXPECT_EQ(put(k, "he"), SLUICE_READY);
    EXPECT_EQ(put(k, "llo"), SLUICE_READY);
    while (sluice_sink_finish(k) == SLUICE_PENDING)
        ;
    EXPECT_EQ(sluice_sink_status(k), SLUICE_SINK_FINISHED);
    EXPECT_MEM(r->out, r->len, "H\r\n\r\nhello", 10);
    sluice_sink_close(k);
    EXPECT_EQ(r->shut, 0);
}

TEST(raw_writer_passes_bytes_through)
{
    rec_io *r = rec_new(0, 0);
    sluice_bytes head = bs("HTTP/1.0 200 OK\r\n\r\n");
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CLOSE, &head, NULL, &k) == 0);
    EXPECT_EQ(put(k, "any bytes"), SLUICE_READY);
    EXPECT_EQ(sluice_sink_flush(k), SLUICE_READY);
    EXPECT_EQ(r->calls, 1);
    EXPECT_EQ(sluice_sink_finish(k), SLUICE_READY);
    EXPECT_MEM(r->out, r->len, "HTTP/1.0 200 OK\r\n\r\nany bytes", 28);
    sluice_sink_close(k);
}

TEST(writer_io_error_is_sticky)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    sluice_io *io;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[0], SLUICE_IO_CLOSE_FD, &io) == 0);
    close(sv[1]);
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, io, SLUICE_FRAMING_CHUNKED, NULL, NULL, &k) == 0);
    EXPECT_EQ(put(k, "x"), SLUICE_READY);
    EXPECT_EQ(sluice_sink_flush(k), SLUICE_ERROR);
    EXPECT_ERR(sluice_sink_error(k, NULL), -EPIPE);
    EXPECT_EQ(sluice_sink_finish(k), SLUICE_ERROR);
    sluice_sink_close(k);
    sluice_io_close(io);
}

TEST(writer_idle_timeout)
{
    rec_io *r = rec_new(0, 0);
    r->again = 1;
    r->flip = 0;
    sluice_writer_config cfg = {.idle_timeout_ms = 20};
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CHUNKED, NULL, &cfg, &k) == 0);
    EXPECT_EQ(put(k, "x"), SLUICE_READY);
    /* a peer that never reads: force EAGAIN on every call */
    r->max = 0;
    int64_t t0 = sluice_now_ms();
    sluice_poll p;
    r->flip = 0;
    p = sluice_sink_flush(k);
    EXPECT_EQ(p, SLUICE_PENDING);
    sluice_interest w;
    sluice_sink_ready(k, &w);
    EXPECT(w.deadline_ms >= t0 + 20);
    struct timespec ts = {0, 5 * 1000000};
    while (sluice_now_ms() < w.deadline_ms)
        nanosleep(&ts, NULL);
    r->flip = 0; /* the next call answers EAGAIN again */
    EXPECT_EQ(sluice_sink_flush(k), SLUICE_ERROR);
    EXPECT_ERR(sluice_sink_error(k, NULL), SLUICE_ETIMEDOUT);
    sluice_sink_close(k);
}

/* A socket whose send buffer is full does not poll writable. */
static void full_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    char junk[4096] = {0};
    while (write(sv[0], junk, sizeof junk) > 0)
        ;
}

/* A peer that takes a few bytes now and then (a TCP window update) while its
 * socket never reports writable is stalled: the write retried at the
 * deadline must not count those bytes as progress and re-arm the timeout. */
TEST(writer_idle_timeout_ignores_a_trickle)
{
    int sv[2];
    full_pair(sv);
    for (int writable = 0; writable < 2; writable++) {
        rec_io *r = rec_new(0, 1);
        r->base.fd = sv[0];
        sluice_writer_config cfg = {.idle_timeout_ms = 20};
        sluice_sink *k;
        REQUIRE(sluice_writer_new(T_POOL, &r->base, SLUICE_FRAMING_CHUNKED, NULL, &cfg, &k) == 0);
        EXPECT_EQ(put(k, "x"), SLUICE_READY);
        r->flip = 0;
        EXPECT_EQ(sluice_sink_flush(k), SLUICE_PENDING);
        sluice_interest w;
        sluice_sink_ready(k, &w);
        struct timespec ts = {0, 5 * 1000000};
        while (sluice_now_ms() < w.deadline_ms)
            nanosleep(&ts, NULL);
        if (writable) { /* the peer read: the socket polls writable again */
            char buf[65536];
            while (read(sv[1], buf, sizeof buf) == (ssize_t)sizeof buf)
                ;
        }
        r->again = 0; /* the io takes bytes now */
        if (writable) {
            EXPECT_EQ(sluice_sink_flush(k), SLUICE_READY);
        } else {
            EXPECT_EQ(sluice_sink_flush(k), SLUICE_ERROR);
            EXPECT_ERR(sluice_sink_error(k, NULL), SLUICE_ETIMEDOUT);
        }
        sluice_sink_close(k);
    }
    close(sv[0]);
    close(sv[1]);
}

/* ---- real sockets -------------------------------------------------------- */

static void tcp_pair(int *client, int *server)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0)
        abort();
    *client = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(*client, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    if (connect(*client, (struct sockaddr *)&a, sizeof a) < 0)
        abort();
    *server = accept(l, NULL, NULL);
    close(l);
}

TEST(chunked_writer_tiny_sndbuf_non_reading_peer)
{
    int c, s;
    tcp_pair(&c, &s);
    sluice_io *wio, *rio;
    REQUIRE(sluice_io_fd_new(T_POOL, c, SLUICE_IO_CLOSE_FD, &wio) == 0);
    REQUIRE(sluice_io_fd_new(T_POOL, s, SLUICE_IO_CLOSE_FD, &rio) == 0);
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, wio, SLUICE_FRAMING_CHUNKED, NULL, NULL, &k) == 0);
    enum { N = 1 << 20 };
    unsigned char *payload = malloc(N);
    unsigned long long seed = 7;
    for (size_t i = 0; i < N; i++)
        payload[i] = (unsigned char)t_rand(&seed);
    /* the peer does not read: the writer must stop with PENDING + interest */
    size_t sent = 0;
    sluice_poll p = SLUICE_READY;
    sluice_bytes chunk = {0};
    while (p == SLUICE_READY && sent < N) {
        if (!chunk.len) {
            size_t n = 1 + (size_t)(t_rand(&seed) % 30000);
            n = n < N - sent ? n : N - sent;
            REQUIRE(sluice_bytes_copy_from(T_POOL, payload + sent, n, &chunk) == 0);
            sent += n;
        }
        p = sluice_sink_poll_write(k, &chunk);
        if (p == SLUICE_READY)
            p = sluice_sink_flush(k);
    }
    EXPECT_EQ(p, SLUICE_PENDING);
    EXPECT(sent < N);
    sluice_interest w;
    sluice_sink_ready(k, &w);
    EXPECT_EQ(w.fd, c);
    EXPECT_EQ(w.events, SLUICE_WANT_WRITE);
    /* now the peer reads and decodes while the writer goes on */
    sluice_reader *r;
    REQUIRE(sluice_reader_new(T_POOL, rio, NULL, &r) == 0);
    sluice_stream *body;
    REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_CHUNKED, NULL, &body) == 0);
    size_t got = 0;
    int finished = 0;
    sluice_poll rp = SLUICE_PENDING;
    while (rp != SLUICE_EOF && rp != SLUICE_ERROR) {
        if (!finished) {
            if (!chunk.len && sent < N) {
                size_t n = 1 + (size_t)(t_rand(&seed) % 30000);
                n = n < N - sent ? n : N - sent;
                REQUIRE(sluice_bytes_copy_from(T_POOL, payload + sent, n, &chunk) == 0);
                sent += n;
            }
            if (chunk.len)
                p = sluice_sink_poll_write(k, &chunk);
            else
                finished = (p = sluice_sink_finish(k)) == SLUICE_READY;
            EXPECT(p != SLUICE_ERROR);
        }
        sluice_bytes b;
        while ((rp = sluice_stream_poll_next(body, &b)) == SLUICE_READY) {
            EXPECT_MEM(b.data, b.len, payload + got, b.len);
            got += b.len;
            sluice_bytes_release(&b);
        }
    }
    EXPECT_EQ(rp, SLUICE_EOF);
    EXPECT_EQ(got, N);
    free(payload);
    sluice_stream_close(body);
    sluice_reader_close(r);
    sluice_sink_close(k);
    sluice_io_close(wio);
    sluice_io_close(rio);
}

TEST(chunked_writer_abort_is_truncation_for_the_peer)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    sluice_io *wio, *rio;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[0], SLUICE_IO_CLOSE_FD, &wio) == 0);
    REQUIRE(sluice_io_fd_new(T_POOL, sv[1], SLUICE_IO_CLOSE_FD, &rio) == 0);
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, wio, SLUICE_FRAMING_CHUNKED, NULL, NULL, &k) == 0);
    EXPECT_EQ(put(k, "partial"), SLUICE_READY);
    EXPECT_EQ(sluice_sink_flush(k), SLUICE_READY);
    EXPECT_EQ(put(k, "dropped"), SLUICE_READY);
    sluice_sink_abort(k);
    EXPECT_EQ(sluice_sink_status(k), SLUICE_SINK_ABORTED);
    EXPECT_EQ(sluice_sink_buffered(k), 0);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(T_POOL, rio, NULL, &r) == 0);
    sluice_stream *body;
    REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_CHUNKED, NULL, &body) == 0);
    sluice_bytes b;
    EXPECT_EQ(sluice_stream_poll_next(body, &b), SLUICE_READY);
    EXPECT_MEM(b.data, b.len, "partial", 7);
    sluice_bytes_release(&b);
    EXPECT_EQ(sluice_stream_poll_next(body, &b), SLUICE_ERROR);
    EXPECT_ERR(sluice_stream_error(body, NULL), SLUICE_ETRUNCATED);
    sluice_stream_close(body);
    sluice_reader_close(r);
    sluice_sink_close(k);
    sluice_io_close(wio);
    sluice_io_close(rio);
}

TEST(pump_body_to_chunked_writer_over_sockets)
{
    /* the proxy path: a Content-Length body in, chunked out, by the pump */
    int in[2], out[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, in) == 0);
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, out) == 0);
    sluice_io *src_io, *dst_io;
    REQUIRE(sluice_io_fd_new(T_POOL, in[1], SLUICE_IO_CLOSE_FD, &src_io) == 0);
    REQUIRE(sluice_io_fd_new(T_POOL, out[0], SLUICE_IO_CLOSE_FD, &dst_io) == 0);
    sluice_reader *r;
    REQUIRE(sluice_reader_new(T_POOL, src_io, NULL, &r) == 0);
    sluice_stream *body;
    REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_LENGTH(11), NULL, &body) == 0);
    sluice_sink *k;
    REQUIRE(sluice_writer_new(T_POOL, dst_io, SLUICE_FRAMING_CHUNKED, NULL, NULL, &k) == 0);
    EXPECT_EQ(write(in[0], "hello world", 11), 11);
    sluice_pump p;
    sluice_pump_init(&p, body, k, NULL);
    EXPECT_EQ(sluice_pump_run(&p, 1000), 0);
    char buf[64];
    ssize_t n = read(out[1], buf, sizeof buf);
    EXPECT_MEM(buf, n, "b\r\nhello world\r\n0\r\n\r\n", 21);
    sluice_stream_close(body);
    sluice_sink_close(k);
    sluice_reader_close(r);
    sluice_io_close(src_io);
    sluice_io_close(dst_io);
    close(in[0]);
    close(out[1]);
}

TEST(writer_alloc_failures)
{
    for (long f = 1; f < 8; f++) {
        t_failalloc fa = {.fail_at = f};
        sluice_allocator a = t_failalloc_hook(&fa);
        sluice_pool_config pc = {.allocator = &a};
        sluice_pool *p;
        if (sluice_pool_new(&pc, &p) < 0)
            continue;
        rec_io *r = rec_new(0, 0);
        r->base.pool = p;
        sluice_bytes head;
        int rc = sluice_bytes_copy_from(p, "H", 1, &head);
        sluice_sink *k = NULL;
        if (rc == 0)
            rc = sluice_writer_new(p, &r->base, SLUICE_FRAMING_CHUNKED, &head, NULL, &k);
        if (rc == 0) {
            EXPECT_EQ(sluice_sink_finish(k), SLUICE_READY);
            EXPECT_MEM(r->out, r->len, "H0\r\n\r\n", 6);
        } else {
            EXPECT_ERR(rc, SLUICE_ENOMEM);
        }
        sluice_sink_close(k);
        sluice_pool_close(p);
        EXPECT_EQ(fa.live, 0);
    }
}

/* The queue starts small and grows to max_chunks: 64 chunks queue without
 * a write, the 65th forces one writev of all of them. When growing finds no
 * memory the queue is written earlier instead: the same bytes, no error. */
TEST(chunked_writer_queue_grows_and_survives_a_failed_growth)
{
    for (long f = 0; f < 12; f++) {
        t_failalloc fa = {.fail_at = f};
        sluice_allocator a = t_failalloc_hook(&fa);
        sluice_pool_config pc = {.allocator = &a};
        sluice_pool *p;
        if (sluice_pool_new(&pc, &p) < 0)
            continue;
        rec_io *r = rec_new(0, 0);
        r->base.pool = p;
        sluice_sink *k = NULL;
        if (sluice_writer_new(p, &r->base, SLUICE_FRAMING_CHUNKED, NULL, NULL, &k) < 0) {
            sluice_pool_close(p);
            EXPECT_EQ(fa.live, 0);
            continue;
        }
        int growth_failed = 0;
        char want[65 * 7 + 8], *o = want;
        for (int i = 0; i < 65; i++) {
            int before = fa.failed;
            EXPECT_EQ(put(k, i & 1 ? "b" : "a"), SLUICE_READY);
            growth_failed |= fa.failed && !before;
            o += sprintf(o, "1\r\n%c\r\n", i & 1 ? 'b' : 'a');
            if (i == 63 && !growth_failed)
                EXPECT_EQ(r->calls, 0); /* 64 queued, nothing written yet */
        }
        if (growth_failed) {
            EXPECT(r->calls >= 1); /* the queue so far written first */
        } else {
            EXPECT_EQ(r->calls, 1);
            EXPECT_EQ(r->last_iovcnt, 64 * 3);
        }
        EXPECT_EQ(sluice_sink_finish(k), SLUICE_READY);
        o += sprintf(o, "0\r\n\r\n");
        EXPECT_MEM(r->out, r->len, want, (size_t)(o - want));
        sluice_sink_close(k);
        sluice_pool_close(p);
        EXPECT_EQ(fa.live, 0);
    }
}
