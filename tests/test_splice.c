/* test_splice.c — passthrough of exactly N bytes from a reader to an io:
 * splice(2) over socketpairs and TCP loopback at many sizes and with bytes
 * already buffered, pipelined bytes after the body, truncation, a vanished
 * destination, backpressure, timeouts, and every fallback to the copy path
 * (forced, non-fd source, SIGPIPE not ignored, a destination that refuses
 * splice with bytes already in the pipe). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { T_UNIX, T_TCP };

typedef struct rig {
    int src[2];  /* src[0]: read by the reader; src[1]: the sending peer */
    int dst[2];  /* dst[0]: written by the splice; dst[1]: the receiving peer */
    sluice_io *sio, *dio;
    sluice_reader *r;
} rig;

static void tcp_pair(int sv[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&a, &al);
    sv[1] = socket(AF_INET, SOCK_STREAM, 0);
    connect(sv[1], (struct sockaddr *)&a, sizeof a);
    sv[0] = accept(l, NULL, NULL);
    close(l);
    /* as servers do: a small last segment (a chunk's CRLF, the terminator)
     * must not wait for a delayed ACK */
    int one = 1;
    setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void rig_open(rig *g, int kind)
{
    if (kind == T_TCP) {
        tcp_pair(g->src);
        tcp_pair(g->dst);
    } else {
        socketpair(AF_UNIX, SOCK_STREAM, 0, g->src);
        socketpair(AF_UNIX, SOCK_STREAM, 0, g->dst);
    }
    fcntl(g->src[1], F_SETFL, O_NONBLOCK);
    fcntl(g->dst[1], F_SETFL, O_NONBLOCK);
    sluice_io_fd_new(T_POOL, g->src[0], 0, &g->sio);
    sluice_io_fd_new(T_POOL, g->dst[0], 0, &g->dio);
    sluice_reader_new(T_POOL, g->sio, NULL, &g->r);
}

static void rig_close(rig *g)
{
    sluice_reader_close(g->r);
    sluice_io_close(g->sio);
    sluice_io_close(g->dio);
    for (int i = 0; i < 2; i++) {
        close(g->src[i]);
        close(g->dst[i]);
    }
}

static void fill_random(unsigned char *p, size_t n, unsigned long long seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(t_rand(&seed) >> 56);
}

/* Receives what is waiting at the destination peer (at most rmax per call,
 * 0: no cap). Returns 1 once the peer read EOF. */
static int recv_some(rig *g, unsigned char *out, size_t cap, size_t *got, size_t rmax)
{
    for (;;) {
        size_t room = cap - *got;
        if (rmax && room > rmax)
            room = rmax;
        if (room == 0)
            return 0;
        ssize_t n = recv(g->dst[1], out + *got, room, MSG_DONTWAIT);
        if (n == 0)
            return 1;
        if (n < 0)
            return 0;
        *got += (size_t)n;
        if (rmax)
            return 0;
    }
}

/*
 * Steps sp while the peer sends in[0, len) in pieces of at most `piece`
 * bytes and the receiver takes at most `rmax` bytes per turn. With `hangup`
 * the sender shuts down once everything is sent. Every PENDING must name
 * the source's read or the destination's write side, and that fd must not
 * be ready at that moment (PENDING only follows EAGAIN: no busy loop).
 */
static int waits_on_dst; /* PENDINGs that named the destination */
static int yields;       /* PENDINGs that asked to be called again at once */

static sluice_pump_status drive(rig *g, sluice_pump *sp, const unsigned char *in, size_t len,
                                size_t piece, size_t rmax, int hangup, unsigned char *out,
                                size_t cap, size_t *got, int *dst_eof)
{
    size_t sent = 0;
    *got = 0;
    *dst_eof = 0;
    for (long turn = 0; turn < 2000000; turn++) {
        if (sent < len) {
            size_t k = len - sent < piece ? len - sent : piece;
            ssize_t n = send(g->src[1], in + sent, k, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        } else if (hangup == 1) {
            shutdown(g->src[1], SHUT_WR);
            hangup = 2;
        }
        sluice_interest w;
        sluice_pump_status st = sluice_pump_step(sp, &w);
        if (st != SLUICE_PUMP_PENDING) {
            while (!hangup && sent < len) { /* the pipelined tail, for later */
                ssize_t n = send(g->src[1], in + sent, len - sent, MSG_NOSIGNAL);
                if (n <= 0)
                    break;
                sent += (size_t)n;
            }
            /* what is still in flight; a finished body is not followed by
             * EOF, so stop at `cap` or after a quiet while */
            for (int quiet = 0; quiet < 100 && !*dst_eof && *got < cap;) {
                size_t before = *got;
                *dst_eof = recv_some(g, out, cap, got, 0);
                quiet = *got == before ? quiet + 1 : 0;
                if (*got == before)
                    usleep(200);
            }
            return st;
        }
        if (w.fd < 0 && w.deadline_ms < 0) { /* the step's budget: call again */
            yields++;
            continue;
        }
        int read_side = w.fd == g->src[0] && w.events == SLUICE_WANT_READ;
        int write_side = w.fd == g->dst[0] && w.events == SLUICE_WANT_WRITE;
        if (!read_side && !write_side) {
            harness_fail(__FILE__, __LINE__, "PENDING on fd %d events %d", w.fd, w.events);
            return SLUICE_PUMP_ERROR;
        }
        waits_on_dst += write_side;
        struct pollfd pfd = {w.fd, (short)(read_side ? POLLIN : POLLOUT), 0};
        if (poll(&pfd, 1, 0) != 0 && !(write_side && rmax)) {
            harness_fail(__FILE__, __LINE__, "PENDING while fd %d is ready", w.fd);
            return SLUICE_PUMP_ERROR;
        }
        *dst_eof = recv_some(g, out, cap, got, rmax);
    }
    harness_fail(__FILE__, __LINE__, "no end after many turns");
    return SLUICE_PUMP_ERROR;
}

static void ignore_sigpipe(struct sigaction *old)
{
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, old);
}

/*
 * One passthrough: `pre` bytes of the body are sent and buffered by the
 * reader before the transfer starts (with the pipelined tail if the whole
 * body was sent), the rest arrives while it runs. Checks the bytes, the
 * counters, and that the pipelined request is still there afterwards.
 */
static void one_case(int kind, size_t len, size_t pre, size_t piece, const char *head,
                     unsigned flags)
{
    static const char next[] = "GET /next HTTP/1.1\r\n\r\n";
    rig g;
    rig_open(&g, kind);
    size_t hl = head ? strlen(head) : 0;
    unsigned char *in = malloc(len + sizeof next);
    unsigned char *out = malloc(hl + len + 1);
    fill_random(in, len, len * 31 + pre);
    memcpy(in + len, next, sizeof next - 1);
    size_t total = len + sizeof next - 1;
    size_t sent = 0;
    if (pre) { /* what the reader holds before the transfer begins */
        size_t want = pre == len ? total : pre;
        while (sent < want) {
            ssize_t n = send(g.src[1], in + sent, want - sent, MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
            else
                break;
        }
        for (;;) { /* as much as the reader holds (max_buffered) */
            size_t before = sluice_reader_available(g.r);
            if (before >= (pre < sent ? pre : sent) || sluice_reader_fill(g.r) != SLUICE_READY ||
                sluice_reader_available(g.r) == before)
                break;
        }
    }
    size_t held = sluice_reader_available(g.r);
    uint64_t consumed0 = sluice_reader_consumed(g.r);
    sluice_bytes h = head ? sluice_bytes_static(head, hl) : (sluice_bytes){0};
    sluice_splice_config cfg = {.flags = flags, .pipe_size = 64 * 1024};
    sluice_pump sp_pump, *sp = &sp_pump;
    REQUIRE(sluice_pump_splice_init(sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_LENGTH(len), head ? &h : NULL, &cfg) == 0);
    size_t got;
    int eof;
    sluice_pump_status st = drive(&g, sp, in + sent, total - sent, piece, 0, 0, out, hl + len,
                                  &got, &eof);
    EXPECT_EQ(st, SLUICE_PUMP_DONE);
    EXPECT_EQ(got, hl + len);
    EXPECT_EQ(eof, 0); /* done is not a shutdown: the connection goes on */
    if (head)
        EXPECT_MEM(out, hl < got ? hl : got, head, hl);
    if (got == hl + len)
        EXPECT_MEM(out + hl, len, in, len);
    EXPECT_EQ(sluice_pump_moved(sp), len);
    EXPECT_EQ(sluice_reader_consumed(g.r) - consumed0, len);
    if (flags & SLUICE_SPLICE_COPY)
        EXPECT_EQ(sluice_pump_spliced(sp), 0);
    else if (len >= held + SLUICE_SPLICE_DEFAULT_MIN + 4096)
        EXPECT(sluice_pump_spliced(sp) > 0);
    else if (len < held + SLUICE_SPLICE_DEFAULT_MIN) /* too little to gain: no pipe */
        EXPECT_EQ(sluice_pump_spliced(sp), 0);
    sluice_pump_close(sp);
    /* the pipelined request is intact, in the reader or still in the socket */
    unsigned char tail[64];
    size_t tl = 0;
    for (int i = 0; i < 1000 && tl < sizeof next - 1; i++) {
        sluice_bytes v;
        if (sluice_reader_take(g.r, sizeof next - 1 - tl, &v)) {
            memcpy(tail + tl, v.data, v.len);
            tl += v.len;
            sluice_bytes_release(&v);
        } else if (sluice_reader_fill(g.r) == SLUICE_PENDING) {
            usleep(100);
        }
    }
    EXPECT_MEM(tail, tl, next, sizeof next - 1);
    free(in);
    free(out);
    rig_close(&g);
}

TEST(splice_moves_exactly_the_body_at_every_size)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    static const size_t sizes[] = {0, 1, 1000, 65535, 65536, 65537, 300001, 3u << 20};
    for (int kind = T_UNIX; kind <= T_TCP; kind++)
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t len = sizes[i];
            one_case(kind, len, 0, 100000, NULL, 0);
            one_case(kind, len, 0, 777, "PUT / HTTP/1.1\r\n\r\n", 0);
            if (len > 10) {
                one_case(kind, len, len / 3, 65536, NULL, 0); /* part buffered */
                one_case(kind, len, len, 65536, "H\r\n", 0);  /* all buffered */
            }
            if (harness_failed_now())
                break;
        }
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_copy_path_forced_gives_the_same_bytes)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    static const size_t sizes[] = {0, 1, 65537, 1u << 20};
    for (int kind = T_UNIX; kind <= T_TCP; kind++)
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            one_case(kind, sizes[i], 0, 5000, "HEAD\r\n", SLUICE_SPLICE_COPY);
            one_case(kind, sizes[i], sizes[i] / 2, 65536, NULL, SLUICE_SPLICE_COPY);
        }
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_not_used_unless_sigpipe_is_ignored)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigaction(SIGPIPE, &dfl, &old);
    rig g;
    rig_open(&g, T_UNIX);
    static unsigned char in[200000], out[200000];
    fill_random(in, sizeof in, 7);
    sluice_pump sp_pump, *sp = &sp_pump;
    REQUIRE(sluice_pump_splice_init(sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_LENGTH(sizeof in), NULL, NULL) == 0);
    size_t got;
    int eof;
    EXPECT_EQ(drive(&g, sp, in, sizeof in, 65536, 0, 0, out, sizeof out, &got, &eof),
              SLUICE_PUMP_DONE);
    EXPECT_MEM(out, got, in, sizeof in);
    EXPECT_EQ(sluice_pump_spliced(sp), 0);
    sluice_pump_close(sp);
    rig_close(&g);
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_source_not_an_fd_uses_the_copy_path)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    static const char data[] = "0123456789abcdefNEXT";
    for (size_t max_read = 1; max_read <= 7; max_read += 3) {
        rig g;
        rig_open(&g, T_UNIX);
        sluice_io *mio;
        sluice_reader *mr;
        REQUIRE(sluice__io_mem_new(T_POOL, data, sizeof data - 1, max_read, SLUICE__IO_MEM_EAGAIN,
                                  &mio) == 0);
        REQUIRE(sluice_reader_new(T_POOL, mio, NULL, &mr) == 0);
        sluice_bytes h = sluice_bytes_static("H:", 2);
        sluice_pump sp_pump, *sp = &sp_pump;
        REQUIRE(sluice_pump_splice_init(sp, T_POOL, mr, g.dio, SLUICE_FRAMING_LENGTH(16), &h, NULL) == 0);
        EXPECT_EQ(h.len, 0); /* the head moved in */
        sluice_pump_status st;
        int turns = 0;
        while ((st = sluice_pump_step(sp, NULL)) == SLUICE_PUMP_PENDING && turns < 1000)
            turns++;
        EXPECT_EQ(st, SLUICE_PUMP_DONE);
        EXPECT_EQ(sluice_pump_spliced(sp), 0);
        EXPECT_EQ(sluice_pump_moved(sp), 16);
        char out[32];
        ssize_t n = recv(g.dst[1], out, sizeof out, MSG_DONTWAIT);
        EXPECT_MEM(out, n > 0 ? (size_t)n : 0, "H:0123456789abcdef", 18);
        sluice_pump_close(sp);
        sluice_bytes v;
        while (sluice_reader_available(mr) < 4 && sluice_reader_fill(mr) != SLUICE_EOF)
            ;
        sluice_reader_peek(mr, 16, &v);
        EXPECT_MEM(v.data, v.len, "NEXT", 4);
        sluice_bytes_release(&v);
        sluice_reader_close(mr);
        sluice_io_close(mio);
        rig_close(&g);
    }
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_truncated_source_shuts_the_destination_down)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    for (unsigned flags = 0; flags <= SLUICE_SPLICE_COPY; flags++)
        for (int kind = T_UNIX; kind <= T_TCP; kind++) {
            rig g;
            rig_open(&g, kind);
            static unsigned char in[500000], out[1000000];
            fill_random(in, sizeof in, 3);
            sluice_splice_config cfg = {.flags = flags};
            sluice_pump sp_pump, *sp = &sp_pump;
            REQUIRE(sluice_pump_splice_init(sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_LENGTH(2 * sizeof in), NULL, &cfg) == 0);
            size_t got;
            int eof;
            EXPECT_EQ(drive(&g, sp, in, sizeof in, 40000, 0, 1, out, sizeof out, &got, &eof),
                      SLUICE_PUMP_ERROR);
            EXPECT_EQ(t_pump_side(sp), SLUICE_SIDE_SOURCE);
            EXPECT_ERR(sluice_pump_error(sp, NULL), SLUICE_ETRUNCATED);
            EXPECT_EQ(sluice_pump_step(sp, NULL), SLUICE_PUMP_ERROR); /* sticky */
            EXPECT(eof);          /* the receiver sees the body end early */
            EXPECT(got <= sizeof in);
            EXPECT_MEM(out, got, in, got);
            sluice_pump_close(sp);
            rig_close(&g);
        }
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_destination_gone_is_a_sink_error)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    for (unsigned flags = 0; flags <= SLUICE_SPLICE_COPY; flags++) {
        rig g;
        rig_open(&g, T_UNIX);
        close(g.dst[1]);
        g.dst[1] = socket(AF_UNIX, SOCK_STREAM, 0); /* something to close later */
        static unsigned char in[100000];
        sluice_splice_config cfg = {.flags = flags};
        sluice_pump sp_pump, *sp = &sp_pump;
        REQUIRE(sluice_pump_splice_init(sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_LENGTH(sizeof in), NULL, &cfg) == 0);
        send(g.src[1], in, sizeof in, MSG_DONTWAIT);
        sluice_pump_status st = SLUICE_PUMP_PENDING;
        for (int i = 0; i < 1000 && st == SLUICE_PUMP_PENDING; i++)
            st = sluice_pump_step(sp, NULL);
        EXPECT_EQ(st, SLUICE_PUMP_ERROR);
        EXPECT_EQ(t_pump_side(sp), SLUICE_SIDE_SINK);
        EXPECT_ERR(sluice_pump_error(sp, NULL), -EPIPE);
        sluice_pump_close(sp);
        rig_close(&g);
    }
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_slow_receiver_waits_on_the_destination)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    for (unsigned flags = 0; flags <= SLUICE_SPLICE_COPY; flags++) {
        rig g;
        rig_open(&g, T_TCP);
        int small = 16384; /* the receiver reads 3000 bytes a turn: dst fills */
        setsockopt(g.dst[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        size_t len = 2u << 20;
        unsigned char *in = malloc(len), *out = malloc(len);
        fill_random(in, len, 11);
        sluice_splice_config cfg = {.flags = flags};
        sluice_pump sp_pump, *sp = &sp_pump;
        REQUIRE(sluice_pump_splice_init(sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_LENGTH(len), NULL, &cfg) == 0);
        size_t got;
        int eof;
        waits_on_dst = 0;
        EXPECT_EQ(drive(&g, sp, in, len, 1u << 20, 3000, 0, out, len, &got, &eof),
                  SLUICE_PUMP_DONE);
        EXPECT_ERR(sluice_pump_error(sp, NULL), 0);
        EXPECT_EQ(got, len);
        EXPECT_MEM(out, got, in, len);
        EXPECT(waits_on_dst > 0);
        sluice_pump_close(sp);
        free(in);
        free(out);
        rig_close(&g);
    }
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_idle_timeout)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    for (unsigned flags = 0; flags <= SLUICE_SPLICE_COPY; flags++) {
        rig g;
        rig_open(&g, T_UNIX);
        sluice_splice_config cfg = {.flags = flags, .idle_timeout_ms = 20};
        sluice_pump sp_pump, *sp = &sp_pump;
        REQUIRE(sluice_pump_splice_init(sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_LENGTH(100), NULL, &cfg) == 0);
        send(g.src[1], "abc", 3, 0);
        sluice_interest w;
        int64_t t0 = sluice_now_ms();
        EXPECT_EQ(sluice_pump_step(sp, &w), SLUICE_PUMP_PENDING);
        EXPECT_EQ(w.fd, g.src[0]);
        EXPECT(w.deadline_ms >= t0 + 20 && w.deadline_ms <= sluice_now_ms() + 20);
        EXPECT_EQ(sluice_pump_step(sp, &w), SLUICE_PUMP_PENDING); /* not yet */
        usleep(30000);
        EXPECT_EQ(sluice_pump_step(sp, &w), SLUICE_PUMP_ERROR);
        EXPECT_EQ(t_pump_side(sp), SLUICE_SIDE_SOURCE);
        EXPECT_ERR(sluice_pump_error(sp, NULL), SLUICE_ETIMEDOUT);
        char buf[8];
        EXPECT_EQ(recv(g.dst[1], buf, sizeof buf, MSG_DONTWAIT), 3);
        EXPECT_EQ(recv(g.dst[1], buf, sizeof buf, MSG_DONTWAIT), 0); /* shut down */
        sluice_pump_close(sp);
        rig_close(&g);
    }
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_refused_by_destination_drains_the_pipe)
{
    /* An O_APPEND file takes write() but refuses splice with EINVAL: the
     * bytes already spliced into the pipe are read back and written. */
    struct sigaction old;
    ignore_sigpipe(&old);
    char path[] = "/tmp/sluice-splice-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    fcntl(fd, F_SETFL, O_APPEND);
    rig g;
    rig_open(&g, T_UNIX);
    sluice_io *fio;
    REQUIRE(sluice_io_fd_new(T_POOL, fd, 0, &fio) == 0);
    size_t len = 700000;
    unsigned char *in = malloc(len), *out = malloc(len + 8);
    fill_random(in, len, 5);
    sluice_bytes h = sluice_bytes_static("HEAD", 4);
    send(g.src[1], in, 1000, 0);
    sluice_reader_fill(g.r); /* some buffered: a prefix stage first */
    sluice_pump sp_pump, *sp = &sp_pump;
    REQUIRE(sluice_pump_splice_init(sp, T_POOL, g.r, fio, SLUICE_FRAMING_LENGTH(len), &h, NULL) == 0);
    size_t sent = 1000;
    sluice_pump_status st = SLUICE_PUMP_PENDING;
    for (int i = 0; i < 100000 && st == SLUICE_PUMP_PENDING; i++) {
        if (sent < len) {
            ssize_t n = send(g.src[1], in + sent, len - sent, MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
        }
        st = sluice_pump_step(sp, NULL);
    }
    EXPECT_EQ(st, SLUICE_PUMP_DONE);
    EXPECT_EQ(sluice_pump_moved(sp), len);
    EXPECT_EQ(sluice_pump_spliced(sp), 0);
    EXPECT_EQ(pread(fd, out, len + 8, 0), (ssize_t)(len + 4));
    EXPECT_MEM(out, 4, "HEAD", 4);
    EXPECT_MEM(out + 4, len, in, len);
    sluice_pump_close(sp);
    sluice_io_close(fio);
    close(fd);
    free(in);
    free(out);
    rig_close(&g);
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_free_before_done_shuts_the_destination_down)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    rig g;
    rig_open(&g, T_UNIX);
    sluice_pump sp_pump, *sp = &sp_pump;
    REQUIRE(sluice_pump_splice_init(sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_LENGTH(10), NULL, NULL) == 0);
    send(g.src[1], "12345", 5, 0);
    EXPECT_EQ(sluice_pump_step(sp, NULL), SLUICE_PUMP_PENDING);
    EXPECT_EQ(sluice_pump_moved(sp), 5);
    sluice_pump_close(sp);
    char buf[16];
    EXPECT_EQ(recv(g.dst[1], buf, sizeof buf, MSG_DONTWAIT), 5);
    EXPECT_EQ(recv(g.dst[1], buf, sizeof buf, MSG_DONTWAIT), 0);
    rig_close(&g);
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_bad_flags_and_allocation_failure)
{
    sluice_pump sp;
    memset(&sp, 0xa5, sizeof sp);
    sluice_splice_config cfg = {.flags = 0x80};
    sluice_bytes h;
    REQUIRE(sluice_bytes_copy_from(T_POOL, "x", 1, &h) == 0);
    EXPECT_ERR(sluice_pump_splice_init(&sp, T_POOL, NULL, NULL, SLUICE_FRAMING_LENGTH(1), &h, &cfg), SLUICE_EINVAL);
    EXPECT(sp._engine == NULL); /* a zeroed pump */
    sluice_pump_close(&sp);
    EXPECT(h.owner == NULL); /* released, also on error */

    struct sigaction old;
    ignore_sigpipe(&old);
    for (long k = 1; k <= 12; k++) {
        t_failalloc fa = {.fail_at = k};
        sluice_allocator a = t_failalloc_hook(&fa);
        sluice_pool_config pc = {.allocator = &a};
        sluice_pool *pool;
        if (sluice_pool_new(&pc, &pool) < 0)
            continue;
        int src[2], dst[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, src);
        socketpair(AF_UNIX, SOCK_STREAM, 0, dst);
        sluice_io *sio = NULL, *dio = NULL;
        sluice_reader *r = NULL;
        sluice_pump pump = {0}, *s = &pump;
        if (sluice_io_fd_new(pool, src[0], 0, &sio) == 0 &&
            sluice_io_fd_new(pool, dst[0], 0, &dio) == 0 &&
            sluice_reader_new(pool, sio, NULL, &r) == 0) {
            send(src[1], "0123456789", 10, 0);
            sluice_reader_fill(r);
            send(src[1], "abcdefghij", 10, 0);
            if (sluice_bytes_copy_from(pool, "HEAD", 4, &h) == 0 &&
                sluice_pump_splice_init(s, pool, r, dio, SLUICE_FRAMING_LENGTH(20), &h, NULL) == 0) {
                sluice_pump_status st;
                int turns = 0;
                while ((st = sluice_pump_step(s, NULL)) == SLUICE_PUMP_PENDING && ++turns < 100)
                    ;
                if (st == SLUICE_PUMP_ERROR)
                    EXPECT_ERR(sluice_pump_error(s, NULL), SLUICE_ENOMEM);
                else
                    EXPECT_EQ(st, SLUICE_PUMP_DONE);
            }
        }
        sluice_pump_close(s);
        sluice_reader_close(r);
        sluice_io_close(sio);
        sluice_io_close(dio);
        sluice_pool_close(pool);
        EXPECT_EQ(fa.live, 0);
        close(src[0]), close(src[1]), close(dst[0]), close(dst[1]);
    }
    sigaction(SIGPIPE, &old, NULL);
}

/* ---- chunked bodies forwarded chunked ------------------------------------ */

/* in[0, len) as chunked coding with chunk sizes cycling through sizes[],
 * a trailer, then `tail`. Size lines are plain ("%zx") or, with `mixed`,
 * cycle through two plain ones, an extension, uppercase and a leading zero:
 * only plain lines are forwarded verbatim, so verbatim runs end and begin
 * again. */
static size_t encode_chunked(const unsigned char *in, size_t len, const size_t *sizes, size_t ns,
                             int mixed, const char *tail, unsigned char *out)
{
    static const char *const lines[] = {"%zx\r\n", "%zx\r\n", "%zx;ext=\"v\"\r\n", "%zX\r\n",
                                        "0%zx\r\n"};
    size_t o = 0, k = 0;
    for (size_t off = 0; off < len; k++) {
        size_t n = sizes[k % ns] < len - off ? sizes[k % ns] : len - off;
        o += (size_t)sprintf((char *)out + o, mixed ? lines[k % 5] : lines[0], n);
        memcpy(out + o, in + off, n);
        o += n;
        memcpy(out + o, "\r\n", 2);
        o += 2;
        off += n;
    }
    o += (size_t)sprintf((char *)out + o, "0\r\nX-Trailer: t\r\n\r\n%s", tail);
    return o;
}

/* The payload of the chunked stream in[0, n) into out; -1 if malformed or
 * not followed by exactly nothing. */
static long decode_chunked(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t i = 0, o = 0;
    for (;;) {
        char *end;
        unsigned long long sz = strtoull((const char *)in + i, &end, 16);
        size_t line = (size_t)((const unsigned char *)end - (in + i));
        if (line == 0 || i + line + 2 > n || memcmp(in + i + line, "\r\n", 2))
            return -1;
        i += line + 2;
        if (sz == 0)
            return i + 2 == n && !memcmp(in + i, "\r\n", 2) ? (long)o : -1;
        if (i + sz + 2 > n || memcmp(in + i + sz, "\r\n", 2))
            return -1;
        memcpy(out + o, in + i, sz);
        o += sz;
        i += sz + 2;
    }
}

static void chunked_case(int kind, const size_t *sizes, size_t ns, size_t len, size_t piece,
                         unsigned flags)
{
    static const char head[] = "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char next[] = "GET /next HTTP/1.1\r\n\r\n";
    rig g;
    rig_open(&g, kind);
    unsigned char *in = malloc(len + 1), *wire = malloc(len + len / 8 + 4096);
    unsigned char *out = malloc(len + len / 8 + 4096), *payload = malloc(len + 1);
    fill_random(in, len, len * 31 + piece);
    size_t wl = encode_chunked(in, len, sizes, ns, 1, next, wire);
    size_t body_wire = wl - (sizeof next - 1);
    uint64_t consumed0 = sluice_reader_consumed(g.r);
    sluice_bytes h = sluice_bytes_static(head, sizeof head - 1);
    sluice_splice_config cfg = {.flags = flags, .pipe_size = 64 * 1024, .splice_min = 4096};
    sluice_pump sp_pump, *sp = &sp_pump;
    REQUIRE(sluice_pump_splice_init(sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_CHUNKED, &h, &cfg) ==
            0);
    size_t got;
    int eof;
    sluice_pump_status st = drive(&g, sp, wire, wl, piece, 0, 0, out, len + len / 8 + 4096,
                                  &got, &eof);
    EXPECT_EQ(st, SLUICE_PUMP_DONE);
    EXPECT_EQ(eof, 0);
    EXPECT_MEM(out, got < sizeof head - 1 ? got : sizeof head - 1, head, sizeof head - 1);
    long pl = got >= sizeof head - 1
                  ? decode_chunked(out + sizeof head - 1, got - (sizeof head - 1), payload)
                  : -1;
    if (pl != (long)len || memcmp(payload, in, len))
        harness_fail(__FILE__, __LINE__, "chunked splice of %zu bytes (piece %zu, flags %u): "
                     "payload %ld bytes, wrong (got %zu, ends \"%.*s\")", len, piece, flags, pl,
                     got, (int)(got < 40 ? got : 40), out + (got < 40 ? 0 : got - 40));
    EXPECT_EQ(sluice_pump_moved(sp), len);
    EXPECT_EQ(sluice_reader_consumed(g.r) - consumed0, body_wire);
    if (flags & SLUICE_SPLICE_COPY)
        EXPECT_EQ(sluice_pump_spliced(sp), 0);
    sluice_pump_close(sp);
    unsigned char tail[64];
    size_t tl = 0;
    for (int i = 0; i < 1000 && tl < sizeof next - 1; i++) {
        sluice_bytes v;
        if (sluice_reader_take(g.r, sizeof next - 1 - tl, &v)) {
            memcpy(tail + tl, v.data, v.len);
            tl += v.len;
            sluice_bytes_release(&v);
        } else if (sluice_reader_fill(g.r) == SLUICE_PENDING) {
            usleep(100);
        }
    }
    EXPECT_MEM(tail, tl, next, sizeof next - 1);
    free(in), free(wire), free(out), free(payload);
    rig_close(&g);
}

TEST(splice_chunked_forwards_exactly_the_payload)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    static const size_t mixed[] = {1, 100, 70000, 16384, 200000, 3, 4096, 4095, 1u << 20};
    static const size_t big[] = {65536};
    static const size_t small[] = {1000};
    for (int kind = T_UNIX; kind <= T_TCP; kind++) {
        for (unsigned flags = 0; flags <= SLUICE_SPLICE_COPY; flags++) {
            chunked_case(kind, mixed, 9, 3u << 20, 100000, flags);
            chunked_case(kind, mixed, 9, 300001, 777, flags);
            chunked_case(kind, big, 1, 2u << 20, 65536, flags);
            chunked_case(kind, small, 1, 100000, 4096, flags);
        }
        chunked_case(kind, mixed, 9, 70000, 1, 0); /* a byte at a time */
    }
    sigaction(SIGPIPE, &old, NULL);
}

/* The number of chunks of the chunked stream in[0, n) (0 if malformed). */
static size_t count_chunks(const unsigned char *in, size_t n)
{
    size_t i = 0, k = 0;
    while (i < n) {
        char *end;
        unsigned long long sz = strtoull((const char *)in + i, &end, 16);
        size_t line = (size_t)((const unsigned char *)end - (in + i));
        if (line == 0)
            return 0;
        if (sz == 0)
            return k;
        i += line + 2 + sz + 2;
        k++;
    }
    return 0;
}

/* Chunks sent back to back, as curl sends them: the framing read after a
 * spliced chunk takes the next size line and the first bytes of its data.
 * Those go out with the size line and the rest is spliced, so each input
 * chunk is one output chunk. Only the chunks the first bulk read took (up
 * to four 64 KiB blocks, so at most five chunks) go through the writer and
 * may be split at block boundaries; before, every later chunk became two. */
TEST(splice_chunked_bytes_read_with_the_size_line_stay_in_their_chunk)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    static const char head[] = "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const size_t sizes[] = {65536};
    const size_t len = 1u << 20, nchunks = len / 65536;
    for (int kind = T_UNIX; kind <= T_TCP; kind++) {
        rig g;
        rig_open(&g, kind);
        unsigned char *in = malloc(len), *wire = malloc(len + 4096), *out = malloc(len + 4096);
        unsigned char *payload = malloc(len);
        fill_random(in, len, 4242);
        size_t wl = encode_chunked(in, len, sizes, 1, 0, "", wire);
        sluice_bytes h = sluice_bytes_static(head, sizeof head - 1);
        sluice_splice_config cfg = {.pipe_size = 64 * 1024, .splice_min = 4096};
        sluice_pump sp;
        REQUIRE(sluice_pump_splice_init(&sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_CHUNKED, &h,
                                        &cfg) == 0);
        size_t got;
        int eof;
        EXPECT_EQ(drive(&g, &sp, wire, wl, 200000, 0, 0, out, len + 4096, &got, &eof),
                  SLUICE_PUMP_DONE);
        REQUIRE(got > sizeof head - 1);
        const unsigned char *body = out + sizeof head - 1;
        size_t bl = got - (sizeof head - 1);
        EXPECT_EQ(decode_chunked(body, bl, payload), (long)len);
        EXPECT(!memcmp(payload, in, len));
        size_t k = count_chunks(body, bl);
        if (k < nchunks || k > nchunks + 5)
            harness_fail(__FILE__, __LINE__, "%zu input chunks became %zu", nchunks, k);
        EXPECT(sluice_pump_spliced(&sp) >= len / 2);
        sluice_pump_close(&sp);
        free(in), free(wire), free(out), free(payload);
        rig_close(&g);
    }
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_chunked_spliced_the_large_chunks)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    rig g;
    rig_open(&g, T_UNIX);
    /* two 256 KiB chunks: neither buffered when its data starts */
    static const char lines[] = "40000\r\n";
    sluice_pump sp;
    REQUIRE(sluice_pump_splice_init(&sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_CHUNKED, NULL,
                                    &(sluice_splice_config){.splice_min = 4096}) == 0);
    static unsigned char data[0x40000];
    unsigned char sink[65536];
    int phase = 0;
    size_t off = 0;
    for (int turns = 0; turns < 200000 && phase < 6; turns++) {
        if (phase == 0 || phase == 2) {
            if (send(g.src[1], lines, sizeof lines - 1, 0) == sizeof lines - 1)
                phase++, off = 0;
        } else if (phase == 1 || phase == 3) {
            ssize_t n = send(g.src[1], data + off, sizeof data - off, MSG_DONTWAIT);
            if (n > 0 && (off += (size_t)n) == sizeof data &&
                send(g.src[1], "\r\n", 2, 0) == 2)
                phase++;
        } else if (phase == 4) {
            if (send(g.src[1], "0\r\n\r\n", 5, 0) == 5)
                phase++;
        }
        recv(g.dst[1], sink, sizeof sink, MSG_DONTWAIT);
        if (sluice_pump_step(&sp, NULL) == SLUICE_PUMP_DONE)
            phase = 6;
    }
    EXPECT_EQ(phase, 6);
    EXPECT_EQ(sluice_pump_moved(&sp), 2 * sizeof data);
    /* the second chunk whole but for what one framing read (512 bytes) took */
    EXPECT(sluice_pump_spliced(&sp) >= 2 * sizeof data - 65536 - 512);
    sluice_pump_close(&sp);
    rig_close(&g);
    sigaction(SIGPIPE, &old, NULL);
}

TEST(splice_chunked_malformed_or_cut_never_looks_complete)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    static const struct {
        const char *in;
        int err;
        int hangup;
    } cases[] = {
        {"5\r\nhello\r\nzz\r\n", SLUICE_EBAD_CHUNK_SIZE, 0},
        {"5\r\nhelloXX", SLUICE_EBAD_CHUNK_END, 0},
        {"5\r\nhel", SLUICE_ETRUNCATED, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rig g;
        rig_open(&g, T_UNIX);
        sluice_pump sp;
        REQUIRE(sluice_pump_splice_init(&sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_CHUNKED, NULL,
                                        NULL) == 0);
        unsigned char out[256];
        size_t got;
        int eof;
        sluice_pump_status st = drive(&g, &sp, (const unsigned char *)cases[i].in,
                                      strlen(cases[i].in), 1000, 0, cases[i].hangup, out,
                                      sizeof out, &got, &eof);
        EXPECT_EQ(st, SLUICE_PUMP_ERROR);
        sluice_side side;
        EXPECT_ERR(sluice_pump_error(&sp, &side), cases[i].err);
        EXPECT_EQ(side, SLUICE_SIDE_SOURCE);
        EXPECT_EQ(eof, 1); /* shut down, without a terminator */
        EXPECT(got < 5 || memcmp(out + got - 5, "0\r\n\r\n", 5) != 0);
        sluice_pump_close(&sp);
        rig_close(&g);
    }
    sigaction(SIGPIPE, &old, NULL);
}

/* Plain 64 KiB chunks: the first one's size line arrives alone, so its
 * data is spliced whole; after it every chunk goes verbatim, the CRLF and
 * size line with the data, and not one byte is copied. (Rewriting each size
 * line would read some 500 bytes of data with it and copy them.) */
TEST(splice_chunked_plain_chunks_go_verbatim)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    static const char head[] = "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const size_t sizes[] = {65536};
    const size_t len = 4u << 20, cap = len + 65536;
    for (int kind = T_UNIX; kind <= T_TCP; kind++) {
        rig g;
        rig_open(&g, kind);
        unsigned char *in = malloc(len), *wire = malloc(cap), *out = malloc(cap);
        unsigned char *payload = malloc(len);
        fill_random(in, len, 777);
        size_t wl = encode_chunked(in, len, sizes, 1, 0, "", wire);
        sluice_bytes h = sluice_bytes_static(head, sizeof head - 1);
        sluice_splice_config cfg = {.pipe_size = 256 * 1024, .splice_min = 4096};
        sluice_pump sp;
        REQUIRE(sluice_pump_splice_init(&sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_CHUNKED, &h,
                                        &cfg) == 0);
        REQUIRE(send(g.src[1], wire, 7, 0) == 7); /* "10000\r\n" */
        struct pollfd pfd = {g.src[0], POLLIN, 0};
        REQUIRE(poll(&pfd, 1, 1000) == 1);
        EXPECT_EQ(sluice_pump_step(&sp, NULL), SLUICE_PUMP_PENDING);
        size_t got;
        int eof;
        EXPECT_EQ(drive(&g, &sp, wire + 7, wl - 7, wl, 0, 0, out, cap, &got, &eof),
                  SLUICE_PUMP_DONE);
        REQUIRE(got > sizeof head - 1);
        const unsigned char *body = out + sizeof head - 1;
        size_t bl = got - (sizeof head - 1);
        EXPECT_EQ(decode_chunked(body, bl, payload), (long)len);
        EXPECT(!memcmp(payload, in, len));
        EXPECT_EQ(count_chunks(body, bl), len / 65536);
        EXPECT_EQ(sluice_pump_moved(&sp), len);
        EXPECT_EQ(sluice_pump_spliced(&sp), len);
        sluice_pump_close(&sp);
        free(in), free(wire), free(out), free(payload);
        rig_close(&g);
    }
    sigaction(SIGPIPE, &old, NULL);
}

/* Steps sp until it waits (or ends), taking what reaches the destination
 * peer into out. */
static sluice_pump_status step_until_wait(rig *g, sluice_pump *sp, unsigned char *out, size_t cap,
                                          size_t *got)
{
    for (int i = 0; i < 100000; i++) {
        sluice_interest w;
        sluice_pump_status st = sluice_pump_step(sp, &w);
        recv_some(g, out, cap, got, 0);
        if (st != SLUICE_PUMP_PENDING || w.fd == g->src[0])
            return st;
        if (w.fd == g->dst[0])
            usleep(100);
    }
    return SLUICE_PUMP_ERROR;
}

/* As curl sends them: a chunk's size line and data in one write, its CRLF
 * in the next, the next line later. The CRLF found alone is forwarded on
 * its own and the run goes on: still not a byte copied after the first
 * chunk. */
TEST(splice_chunked_verbatim_crlf_alone_between_chunks)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    rig g;
    rig_open(&g, T_TCP);
    static unsigned char data[65524];
    fill_random(data, sizeof data, 5);
    const int nchunks = 12;
    size_t cap = (size_t)nchunks * (sizeof data + 16) + 64, got = 0;
    unsigned char *out = malloc(cap), *payload = malloc((size_t)nchunks * sizeof data);
    sluice_pump sp;
    REQUIRE(sluice_pump_splice_init(&sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_CHUNKED, NULL,
                                    &(sluice_splice_config){.splice_min = 4096}) == 0);
    for (int k = 0; k < nchunks; k++) {
        if (k == 0) { /* the first line alone: its data is spliced whole */
            REQUIRE(send(g.src[1], "fff4\r\n", 6, 0) == 6);
            EXPECT_EQ(step_until_wait(&g, &sp, out, cap, &got), SLUICE_PUMP_PENDING);
        } else {
            REQUIRE(send(g.src[1], "fff4\r\n", 6, MSG_MORE) == 6);
        }
        for (size_t off = 0; off < sizeof data;) {
            ssize_t n = send(g.src[1], data + off, sizeof data - off, MSG_DONTWAIT);
            if (n > 0)
                off += (size_t)n;
            EXPECT_EQ(step_until_wait(&g, &sp, out, cap, &got), SLUICE_PUMP_PENDING);
        }
        EXPECT_EQ(step_until_wait(&g, &sp, out, cap, &got), SLUICE_PUMP_PENDING);
        REQUIRE(send(g.src[1], "\r\n", 2, 0) == 2);
        EXPECT_EQ(step_until_wait(&g, &sp, out, cap, &got), SLUICE_PUMP_PENDING);
    }
    REQUIRE(send(g.src[1], "0\r\n\r\n", 5, 0) == 5);
    sluice_pump_status st = SLUICE_PUMP_PENDING;
    for (int i = 0; i < 1000 && st == SLUICE_PUMP_PENDING; i++) {
        st = step_until_wait(&g, &sp, out, cap, &got);
        if (st == SLUICE_PUMP_PENDING)
            usleep(200);
    }
    EXPECT_EQ(st, SLUICE_PUMP_DONE);
    for (int quiet = 0; quiet < 20; quiet++) {
        size_t before = got;
        recv_some(&g, out, cap, &got, 0);
        if (got == before)
            usleep(200);
    }
    EXPECT_EQ(decode_chunked(out, got, payload), (long)(nchunks * sizeof data));
    for (int k = 0; k < nchunks; k++)
        EXPECT(!memcmp(payload + (size_t)k * sizeof data, data, sizeof data));
    EXPECT_EQ(count_chunks(out, got), (size_t)nchunks);
    EXPECT_EQ(sluice_pump_spliced(&sp), nchunks * sizeof data);
    sluice_pump_close(&sp);
    free(out), free(payload);
    rig_close(&g);
    sigaction(SIGPIPE, &old, NULL);
}

/* A verbatim run cut inside a chunk's data, and one that runs into the body
 * limit: an error, dst shut down, no terminator; past the limit nothing of
 * the chunk that crosses it was forwarded. */
TEST(splice_chunked_verbatim_cut_or_over_limit_never_looks_complete)
{
    struct sigaction old;
    ignore_sigpipe(&old);
    static const size_t sizes[] = {65536};
    const size_t len = 1u << 20;
    unsigned char *in = malloc(len), *wire = malloc(len + 4096), *out = malloc(len + 4096);
    unsigned char *payload = malloc(len);
    fill_random(in, len, 99);
    size_t wl = encode_chunked(in, len, sizes, 1, 0, "", wire);
    for (int over = 0; over <= 1; over++) {
        rig g;
        rig_open(&g, T_TCP);
        uint64_t limit = 10 * 65536 + 100;
        sluice_splice_config cfg = {.pipe_size = 256 * 1024, .splice_min = 4096};
        if (over)
            cfg.body.max_body = limit;
        sluice_pump sp;
        REQUIRE(sluice_pump_splice_init(&sp, T_POOL, g.r, g.dio, SLUICE_FRAMING_CHUNKED, NULL,
                                        &cfg) == 0);
        size_t got;
        int eof;
        /* cut: the wire up to the middle of the 12th chunk's data */
        size_t n = over ? wl : 11 * (7 + 65536 + 2) + 7 + 30000;
        EXPECT_EQ(drive(&g, &sp, wire, n, n, 0, !over, out, len + 4096, &got, &eof),
                  SLUICE_PUMP_ERROR);
        sluice_side side;
        EXPECT_ERR(sluice_pump_error(&sp, &side), over ? SLUICE_ETOOBIG : SLUICE_ETRUNCATED);
        EXPECT_EQ(side, SLUICE_SIDE_SOURCE);
        EXPECT_EQ(eof, 1);
        EXPECT(got < 5 || memcmp(out + got - 5, "0\r\n\r\n", 5) != 0);
        if (over) /* ten chunks at most, each with its framing (those of the
                   * first bulk read may be split in two: a line and CRLF more) */
            EXPECT(got <= 10 * (7 + 65536 + 2) + 5 * (6 + 2));
        else
            EXPECT(got >= 10 * (7 + 65536 + 2));
        sluice_pump_close(&sp);
        rig_close(&g);
    }
    free(in), free(wire), free(out), free(payload);
    sigaction(SIGPIPE, &old, NULL);
}
