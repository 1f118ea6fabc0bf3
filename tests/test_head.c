/* test_head.c — reading heads off a socket reader, at every split. */
#include "harness.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct pair {
    int fd[2];
    sluice_io *io;
    sluice_reader *r;
} pair;

static void pair_open(pair *p)
{
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    EXPECT_EQ(sluice_io_fd_new(T_POOL, p->fd[0], SLUICE_IO_CLOSE_FD, &p->io), 0);
    EXPECT_EQ(sluice_reader_new(T_POOL, p->io, NULL, &p->r), 0);
}

static void pair_close(pair *p)
{
    sluice_reader_close(p->r);
    sluice_io_close(p->io);
    close(p->fd[1]);
}

static const char two[] = "\r\nPOST /up?x=1 HTTP/1.1\r\nHost: a.example\r\n"
                          "Content-Length: 3\r\nX-Long: " "0123456789abcdef" "\r\n\r\n"
                          "abcGET / HTTP/1.0\r\n\r\n";

/* Feeds `two` with writes of `step` bytes (0: random 1..9 from seed), reading
 * in between, and checks both heads and the body bytes between them. */
static void feed(size_t step, unsigned long long seed)
{
    pair p;
    pair_open(&p);
    sluice_http_request req;
    sluice_http_header hdrs[8];
    sluice_bytes head;
    int err;
    size_t off = 0, len = sizeof two - 1;
    sluice_poll r;
    while ((r = sluice_http_read_request(p.r, NULL, &req, hdrs, 8, &head, &err)) ==
           SLUICE_PENDING) {
        REQUIRE(off < len);
        size_t n = step ? step : 1 + t_rand(&seed) % 9;
        if (n > len - off)
            n = len - off;
        EXPECT_EQ(write(p.fd[1], two + off, n), (long)n);
        off += n;
    }
    REQUIRE(r == SLUICE_READY);
    EXPECT_MEM(req.method, req.method_len, "POST", 4);
    EXPECT_MEM(req.path, req.path_len, "/up?x=1", 7);
    EXPECT_EQ(req.num_headers, 3);
    EXPECT_MEM(hdrs[2].value, hdrs[2].value_len, "0123456789abcdef", 16);
    EXPECT_EQ(head.len, (size_t)(strstr(two, "\r\n\r\nabc") + 4 - two)); /* empty line included */
    EXPECT(req.method >= (const char *)head.data &&
           req.method < (const char *)head.data + head.len);
    /* the body is what follows, byte for byte */
    size_t rest = len - off;
    EXPECT_EQ(write(p.fd[1], two + off, rest), (long)rest);
    unsigned char body[3];
    size_t got = 0;
    while (got < 3) {
        sluice_bytes v;
        if (sluice_reader_available(p.r) == 0)
            EXPECT_EQ(sluice_reader_fill(p.r), SLUICE_READY);
        size_t n = sluice_reader_take(p.r, 3 - got, &v);
        memcpy(body + got, v.data, n);
        got += n;
        sluice_bytes_release(&v);
    }
    EXPECT_MEM(body, 3, "abc", 3);
    sluice_bytes_release(&head);
    r = sluice_http_read_request(p.r, NULL, &req, hdrs, 8, &head, &err);
    EXPECT_EQ(r, SLUICE_READY);
    EXPECT_EQ(req.minor_version, 0);
    EXPECT_EQ(req.num_headers, 0);
    sluice_bytes_release(&head);
    close(p.fd[1]);
    p.fd[1] = -1;
    EXPECT_EQ(sluice_http_read_request(p.r, NULL, &req, hdrs, 8, &head, &err), SLUICE_EOF);
    sluice_reader_close(p.r);
    sluice_io_close(p.io);
}

TEST(read_request_every_step)
{
    for (size_t step = 1; step <= sizeof two; step++)
        feed(step, 0);
    for (unsigned long long seed = 1; seed <= 20; seed++)
        feed(0, seed);
}

TEST(read_request_truncated_and_errors)
{
    pair p;
    pair_open(&p);
    sluice_http_request req;
    sluice_http_header hdrs[8];
    sluice_bytes head;
    int err = 0;
    EXPECT_EQ(write(p.fd[1], "GET / HTTP/1.1\r\nHost: a\r\n", 25), 25);
    EXPECT_EQ(sluice_http_read_request(p.r, NULL, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
    shutdown(p.fd[1], SHUT_WR);
    EXPECT_EQ(sluice_http_read_request(p.r, NULL, &req, hdrs, 8, &head, &err), SLUICE_ERROR);
    EXPECT_ERR(err, SLUICE_ETRUNCATED);
    EXPECT(head.owner == NULL && head.len == 0);
    pair_close(&p);

    pair_open(&p);
    EXPECT_EQ(write(p.fd[1], "GET / HTTP/1.1\nHost: a\r\n\r\n", 26), 26);
    EXPECT_EQ(sluice_http_read_request(p.r, NULL, &req, hdrs, 8, &head, &err), SLUICE_ERROR);
    EXPECT_ERR(err, SLUICE_EBARE_LF);
    pair_close(&p);

    /* a single line over the limit: 431, without waiting for its end */
    pair_open(&p);
    sluice_http_limits lim = {.max_head_bytes = 100};
    char line[300];
    memset(line, 'a', sizeof line);
    memcpy(line, "GET /", 5);
    EXPECT_EQ(write(p.fd[1], line, sizeof line), (long)sizeof line);
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_ERROR);
    EXPECT_ERR(err, SLUICE_EHEAD_TOO_LARGE);
    EXPECT_EQ(sluice_http_error_status(err), 431);
    pair_close(&p);
}

TEST(read_response_spanning_blocks)
{
    /* tiny blocks: the head spans several and is copied once into one view */
    sluice_pool_config cfg = {.block_size = 64};
    sluice_pool *pool;
    REQUIRE(sluice_pool_new(&cfg, &pool) == 0);
    int fd[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0);
    sluice_io *io;
    sluice_reader *r;
    sluice_reader_config rc = {.max_buffered = 4096, .max_iov = 8};
    REQUIRE(sluice_io_fd_new(pool, fd[0], SLUICE_IO_CLOSE_FD, &io) == 0);
    REQUIRE(sluice_reader_new(pool, io, &rc, &r) == 0);
    const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "X-Padding: 0123456789012345678901234567890123456789\r\n"
                        "Content-Length: 2\r\n\r\nhi";
    EXPECT_EQ(write(fd[1], resp, sizeof resp - 1), (long)sizeof resp - 1);
    sluice_http_response res;
    sluice_http_header hdrs[8];
    sluice_bytes head;
    int err;
    EXPECT_EQ(sluice_http_read_response(r, NULL, &res, hdrs, 8, &head, &err), SLUICE_READY);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.num_headers, 3);
    EXPECT_EQ(head.len, sizeof resp - 1 - 2);
    EXPECT_MEM(hdrs[2].value, hdrs[2].value_len, "2", 1);
    EXPECT_EQ(sluice_reader_available(r), 2);
    sluice_bytes_release(&head);
    sluice_reader_close(r);
    sluice_io_close(io);
    close(fd[1]);
    sluice_pool_counters st;
    sluice_pool_stats(pool, &st);
    EXPECT_EQ(st.blocks_live, 0);
    sluice_pool_close(pool);
}

/* ---- time limits ----------------------------------------------------------- */

/* The reader's head clock, set by the test: exact deadlines, no sleeping. */
static int64_t fake_now(void *ud)
{
    return *(const int64_t *)ud;
}

static int64_t deadline_of(const sluice_reader *r)
{
    sluice_interest w;
    sluice_reader_ready(r, &w);
    return w.deadline_ms;
}

static const char slow[] = "\r\nGET /slow HTTP/1.1\r\nHost: a.example\r\nX-Pad: 0123456789\r\n\r\n";
#define HEAD_MS 500u

/*
 * The first k bytes of `slow` at t0, then one byte per call with the clock
 * at t0 + HEAD_MS - 1: every call pends with the deadline t0 + HEAD_MS
 * (reported with the socket's read interest), none fires early, and the
 * last byte completes the head. Then the same k bytes left until the
 * deadline: that call fails with SLUICE_EHEAD_TIMEOUT, the clock cleared.
 */
static void dribble(size_t k)
{
    pair p;
    pair_open(&p);
    int64_t now = 1000;
    sluice__reader_set_clock(p.r, fake_now, &now);
    sluice_http_limits lim = {.head_timeout_ms = HEAD_MS};
    sluice_http_request req;
    sluice_http_header hdrs[8];
    sluice_bytes head;
    int err = 0;
    size_t len = sizeof slow - 1;
    EXPECT_EQ(write(p.fd[1], slow, k), (long)k);
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
    sluice_interest w;
    sluice_reader_ready(p.r, &w);
    EXPECT(w.fd == p.fd[0] && w.events == SLUICE_WANT_READ);
    EXPECT_EQ(w.deadline_ms, 1000 + HEAD_MS);
    sluice_poll r = SLUICE_PENDING;
    for (size_t off = k; off < len; off++) {
        now = 1000 + HEAD_MS - 1;
        EXPECT_EQ(write(p.fd[1], slow + off, 1), 1);
        r = sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err);
        if (off + 1 < len) {
            EXPECT_EQ(r, SLUICE_PENDING);
            EXPECT_EQ(deadline_of(p.r), 1000 + HEAD_MS);
        }
    }
    EXPECT_EQ(r, SLUICE_READY);
    EXPECT_EQ(err, 0);
    EXPECT_EQ(head.len, len);
    sluice_bytes_release(&head);
    EXPECT_EQ(deadline_of(p.r), -1); /* cleared with the head */

    /* k bytes of the next head at 2000, nothing more until the deadline */
    now = 2000;
    EXPECT_EQ(write(p.fd[1], slow, k), (long)k);
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
    EXPECT_EQ(deadline_of(p.r), 2000 + HEAD_MS);
    now = 2000 + HEAD_MS - 1;
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
    now = 2000 + HEAD_MS;
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_ERROR);
    EXPECT_ERR(err, SLUICE_EHEAD_TIMEOUT);
    EXPECT(head.owner == NULL && head.len == 0);
    EXPECT_EQ(deadline_of(p.r), -1);
    pair_close(&p);
}

TEST(read_request_head_deadline_every_split)
{
    for (size_t k = 1; k < sizeof slow - 1; k++)
        dribble(k);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EHEAD_TIMEOUT), 408);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EIDLE_TIMEOUT), 0);
    EXPECT_STR(sluice_err_name(SLUICE_EHEAD_TIMEOUT), "SLUICE_EHEAD_TIMEOUT");
}

/* A head whose last bytes came after its deadline but before the call is
 * complete, and is taken: time is checked only where a call would pend. The
 * next head, already buffered (pipelined), gets a clock of its own. */
TEST(read_request_head_deadline_complete_late)
{
    pair p;
    pair_open(&p);
    int64_t now = 0;
    sluice__reader_set_clock(p.r, fake_now, &now);
    sluice_http_limits lim = {.head_timeout_ms = HEAD_MS};
    sluice_http_request req;
    sluice_http_header hdrs[8];
    sluice_bytes head;
    int err;
    EXPECT_EQ(write(p.fd[1], slow, 10), 10);
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
    now = 10 * HEAD_MS;
    EXPECT_EQ(write(p.fd[1], slow + 10, sizeof slow - 11), (long)sizeof slow - 11);
    EXPECT_EQ(write(p.fd[1], slow, 12), 12); /* the next one's start */
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_READY);
    sluice_bytes_release(&head);
    /* the buffered start of the next head starts its clock now */
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
    EXPECT_EQ(deadline_of(p.r), 10 * HEAD_MS + HEAD_MS);
    now += HEAD_MS;
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_ERROR);
    EXPECT_ERR(err, SLUICE_EHEAD_TIMEOUT);
    pair_close(&p);
}

/* idle_timeout_ms: from the first call that finds nothing; the first byte
 * switches to the head's deadline (or to none without head_timeout_ms). */
TEST(read_request_idle_timeout)
{
    sluice_http_request req;
    sluice_http_header hdrs[8];
    sluice_bytes head;
    int err;
    int64_t now = 100;
    for (int with_head = 0; with_head < 2; with_head++) {
        pair p;
        pair_open(&p);
        sluice__reader_set_clock(p.r, fake_now, &now);
        sluice_http_limits lim = {.idle_timeout_ms = 200,
                                  .head_timeout_ms = with_head ? HEAD_MS : 0};
        now = 100;
        EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
        EXPECT_EQ(deadline_of(p.r), 300);
        now = 299;
        EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
        EXPECT_EQ(deadline_of(p.r), 300);
        EXPECT_EQ(write(p.fd[1], "GET", 3), 3); /* the first byte, at 299 */
        EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
        EXPECT_EQ(deadline_of(p.r), with_head ? 299 + (int64_t)HEAD_MS : -1);
        now = 1000000;
        sluice_poll r = sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err);
        EXPECT_EQ(r, with_head ? SLUICE_ERROR : SLUICE_PENDING);
        if (with_head)
            EXPECT_ERR(err, SLUICE_EHEAD_TIMEOUT);
        pair_close(&p);
    }
    /* nothing at all: SLUICE_EIDLE_TIMEOUT at the deadline, not before */
    pair p;
    pair_open(&p);
    sluice__reader_set_clock(p.r, fake_now, &now);
    sluice_http_limits lim = {.idle_timeout_ms = 200, .head_timeout_ms = HEAD_MS};
    now = 0;
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
    now = 200;
    EXPECT_EQ(sluice_http_read_request(p.r, &lim, &req, hdrs, 8, &head, &err), SLUICE_ERROR);
    EXPECT_ERR(err, SLUICE_EIDLE_TIMEOUT);
    EXPECT_EQ(deadline_of(p.r), -1);
    /* no limits: the reader's own interest, no deadline */
    EXPECT_EQ(sluice_http_read_request(p.r, NULL, &req, hdrs, 8, &head, &err), SLUICE_PENDING);
    EXPECT_EQ(deadline_of(p.r), -1);
    pair_close(&p);
}

/* Responses: the idle clock is the wait for the upstream's first byte. And
 * the real clock, waited for with poll(2) on the reported interest. */
TEST(read_response_head_deadline)
{
    pair p;
    pair_open(&p);
    sluice_http_response res;
    sluice_http_header hdrs[8];
    sluice_bytes head;
    int err;
    sluice_http_limits lim = {.head_timeout_ms = 30, .idle_timeout_ms = 5000};
    int64_t t0 = sluice_now_ms();
    EXPECT_EQ(sluice_http_read_response(p.r, &lim, &res, hdrs, 8, &head, &err), SLUICE_PENDING);
    int64_t d = deadline_of(p.r);
    EXPECT(d >= t0 + 5000 && d <= sluice_now_ms() + 5000);
    EXPECT_EQ(write(p.fd[1], "HTTP/1.1 200 OK\r\n", 17), 17);
    t0 = sluice_now_ms();
    EXPECT_EQ(sluice_http_read_response(p.r, &lim, &res, hdrs, 8, &head, &err), SLUICE_PENDING);
    sluice_interest w;
    sluice_reader_ready(p.r, &w);
    EXPECT(w.deadline_ms >= t0 + 30 && w.deadline_ms <= sluice_now_ms() + 30);
    sluice_poll r;
    int waits = 0;
    while ((r = sluice_http_read_response(p.r, &lim, &res, hdrs, 8, &head, &err)) ==
           SLUICE_PENDING) {
        sluice_reader_ready(p.r, &w);
        struct pollfd pfd = {w.fd, POLLIN, 0};
        int64_t left = w.deadline_ms - sluice_now_ms();
        poll(&pfd, 1, left > 0 ? (int)left : 0);
        REQUIRE(++waits < 100);
    }
    EXPECT_EQ(r, SLUICE_ERROR);
    EXPECT_ERR(err, SLUICE_EHEAD_TIMEOUT);
    EXPECT(sluice_now_ms() >= t0 + 30);
    pair_close(&p);
}
