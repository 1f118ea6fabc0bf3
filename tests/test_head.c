/* test_head.c — reading heads off a socket reader, at every split. */
#include "harness.h"

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
