/* test_reply.c — the reply pump: an early answer survives a client that
 * writes its whole body before reading; the drain's limits. TCP on loopback,
 * because only TCP answers unread data with a reset. */
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connected pair of TCP sockets on 127.0.0.1: fds[0] the server's. */
static int tcp_pair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        return -1;
    fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[1], (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    fds[0] = accept(l, NULL, NULL);
    close(l);
    return fds[0] < 0 ? -1 : 0;
}

static const char answer[] = "HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\n"
                             "Connection: close\r\n\r\ntoo large";

typedef struct run {
    size_t body;        /* bytes the client sends before it reads */
    int client_closes;  /* the client closes after reading */
    sluice_reply_config cfg;
    /* results */
    sluice_pump_status st;
    char got[256];
    size_t got_len;
    int read_err;       /* errno of the client's failed read, 0 at EOF */
    size_t sent;
    int64_t ms;
} run;

static void run_reply(run *t)
{
    int fds[2];
    REQUIRE(tcp_pair(fds) == 0);
    sluice_io *io;
    sluice_reader *r;
    REQUIRE(sluice_io_fd_new(T_POOL, fds[0], 0, &io) == 0);
    REQUIRE(sluice_reader_new(T_POOL, io, NULL, &r) == 0);
    sluice_bytes resp;
    REQUIRE(sluice_bytes_copy_from(T_POOL, answer, sizeof answer - 1, &resp) == 0);
    sluice_pump p;
    REQUIRE(sluice_pump_reply_init(&p, T_POOL, io, r, &resp, &t->cfg) == 0);
    EXPECT(resp.owner == NULL);
    static char chunk[65536];
    int cfd = fds[1];
    int64_t start = sluice_now_ms();
    t->st = SLUICE_PUMP_PENDING;
    t->got_len = 0;
    t->read_err = -1;
    t->sent = 0;
    /* the client: body first, then the answer; the server: the reply pump */
    while ((t->read_err < 0 || t->st == SLUICE_PUMP_PENDING) && sluice_now_ms() - start < 20000) {
        if (t->sent < t->body) {
            size_t k = t->body - t->sent < sizeof chunk ? t->body - t->sent : sizeof chunk;
            ssize_t n = send(cfd, chunk, k, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                t->sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                t->body = t->sent; /* the server closed: read what came */
        } else if (t->read_err < 0) {
            ssize_t n = recv(cfd, t->got + t->got_len, sizeof t->got - t->got_len, MSG_DONTWAIT);
            if (n > 0)
                t->got_len += (size_t)n;
            else if (n == 0)
                t->read_err = 0;
            else if (errno != EAGAIN)
                t->read_err = errno;
            if (n == 0 && t->client_closes)
                shutdown(cfd, SHUT_WR);
        }
        if (t->st == SLUICE_PUMP_PENDING) {
            sluice_interest w;
            t->st = sluice_pump_step(&p, &w);
            if (t->st != SLUICE_PUMP_PENDING) {
                t->ms = sluice_now_ms() - start;
                sluice_pump_close(&p);
                sluice_reader_close(r);
                sluice_io_close(io);
                close(fds[0]); /* the lingering is over: close for real */
            }
        } else {
            usleep(100);
        }
    }
    if (t->st == SLUICE_PUMP_PENDING) {
        sluice_pump_close(&p);
        sluice_reader_close(r);
        sluice_io_close(io);
        close(fds[0]);
    }
    close(cfd);
}

TEST(reply_survives_a_client_that_writes_its_whole_body_first)
{
    run t = {.body = 8u << 20};
    run_reply(&t);
    EXPECT_EQ(t.st, SLUICE_PUMP_DONE);
    EXPECT_EQ(t.sent, 8u << 20); /* the whole body went out: it was drained */
    EXPECT_MEM(t.got, t.got_len, answer, sizeof answer - 1);
    EXPECT_EQ(t.read_err, 0); /* end-of-stream after the answer, not a reset */
}

TEST(reply_drain_stops_at_its_byte_limit)
{
    /* the client would send 64 MiB; the drain takes 1 MiB and lets go */
    run t = {.body = 64u << 20, .cfg = {.drain_bytes = 1u << 20, .drain_ms = 10000}};
    run_reply(&t);
    EXPECT_EQ(t.st, SLUICE_PUMP_DONE);
    EXPECT(t.ms < 5000);
    EXPECT(t.sent < 64u << 20);
}

TEST(reply_drain_stops_at_its_time_limit)
{
    /* a client that sends nothing more and never closes: drain_ms, then go */
    run t = {.body = 0, .cfg = {.drain_ms = 300}};
    run_reply(&t);
    EXPECT_EQ(t.st, SLUICE_PUMP_DONE);
    EXPECT(t.ms >= 290 && t.ms < 3000);
    EXPECT_MEM(t.got, t.got_len, answer, sizeof answer - 1);
}

TEST(reply_ends_when_the_client_closes)
{
    run t = {.body = 1000, .client_closes = 1, .cfg = {.drain_ms = 10000}};
    run_reply(&t);
    EXPECT_EQ(t.st, SLUICE_PUMP_DONE);
    EXPECT(t.ms < 5000);
    EXPECT_MEM(t.got, t.got_len, answer, sizeof answer - 1);
}

TEST(reply_write_failure_is_a_sink_error)
{
    sluice_io *io;
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    close(fds[1]); /* the client is gone */
    REQUIRE(sluice_io_fd_new(T_POOL, fds[0], 0, &io) == 0);
    sluice_bytes resp = sluice_bytes_static(answer, sizeof answer - 1);
    sluice_pump p;
    REQUIRE(sluice_pump_reply_init(&p, T_POOL, io, NULL, &resp, NULL) == 0);
    EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_ERROR);
    sluice_side side;
    EXPECT_ERR(sluice_pump_error(&p, &side), -EPIPE);
    EXPECT_EQ(side, SLUICE_SIDE_SINK);
    sluice_pump_close(&p);
    sluice_io_close(io);
    close(fds[0]);
}
