/*
 * conns.c — load for the connection-scale benchmark (tests/bench/conns.py):
 * many idle keep-alive connections plus a few busy ones.
 *
 *   conns PORT IDLE BUSY SECONDS
 *
 * 1. Opens IDLE connections and sends one small GET on each, reads the
 *    answers (so every one is a keep-alive connection between requests, the
 *    state the proxy keeps them in), prints "idle N" and waits for a line on
 *    stdin.
 * 2. Runs BUSY connections for SECONDS, each sending the next GET as soon
 *    as the answer to the last one arrived, prints "requests N", and waits
 *    for a line on stdin.
 * 3. Closes everything, prints "closed" and waits for a line on stdin (or
 *    EOF) before exiting.
 * Answers must carry Content-Length (sluice-sink's and nginx's do). One
 * epoll thread; every socket is non-blocking.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct cl {
    int fd;
    size_t got;       /* bytes of the current answer read */
    long need;        /* its total length once the head is in, else -1 */
    char buf[1024];
} cl;

static const char request[] = "GET /bench/small HTTP/1.1\r\nHost: bench\r\n\r\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_conn(int port, cl *c)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->got = 0;
    c->need = -1;
    return 0;
}

static int send_req(cl *c)
{
    c->got = 0;
    c->need = -1;
    return write(c->fd, request, sizeof request - 1) == (ssize_t)(sizeof request - 1) ? 0 : -1;
}

/* Reads what is there. 1: a whole answer is in, 0: not yet, -1: error. */
static int on_readable(cl *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->got, sizeof c->buf - 1 - c->got);
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0)
            return -1;
        c->got += (size_t)n;
        c->buf[c->got] = 0;
        if (c->need < 0) {
            char *end = strstr(c->buf, "\r\n\r\n");
            char *len = strcasestr(c->buf, "\r\ncontent-length:");
            if (end && len && len < end)
                c->need = (end + 4 - c->buf) + atol(len + 17);
            else if (end)
                return -1;
        }
        if (c->need >= 0 && (long)c->got >= c->need)
            return (long)c->got == c->need ? 1 : -1;
        if (c->got == sizeof c->buf - 1)
            return -1;
    }
}

/* Sends one request on each of n connections and waits for all answers. */
static int round_trip_all(int ep, cl *cs, int n)
{
    for (int i = 0; i < n; i++)
        if (send_req(&cs[i]) < 0)
            return -1;
    int left = n;
    struct epoll_event ev[256];
    while (left > 0) {
        int k = epoll_wait(ep, ev, 256, 10000);
        if (k <= 0)
            return -1;
        for (int i = 0; i < k; i++) {
            int r = on_readable(ev[i].data.ptr);
            if (r < 0)
                return -1;
            left -= r;
        }
    }
    return 0;
}

static void wait_line(void)
{
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: conns PORT IDLE BUSY SECONDS\n");
        return 2;
    }
    int port = atoi(argv[1]), nidle = atoi(argv[2]), nbusy = atoi(argv[3]);
    double secs = atof(argv[4]);
    cl *cs = calloc((size_t)(nidle + nbusy), sizeof *cs);
    int ep = epoll_create1(0);
    if (!cs || ep < 0)
        return 1;
    for (int i = 0; i < nidle + nbusy; i++) {
        if (open_conn(port, &cs[i]) < 0) {
            fprintf(stderr, "conns: connection %d: %s\n", i, strerror(errno));
            return 1;
        }
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
        /* prime in batches so the listen backlog never overflows */
        if ((i + 1) % 256 == 0 || i + 1 == nidle + nbusy) {
            int from = i / 256 * 256;
            if (round_trip_all(ep, cs + from, i + 1 - from) < 0) {
                fprintf(stderr, "conns: priming failed near connection %d\n", i);
                return 1;
            }
        }
    }
    printf("idle %d\n", nidle);
    fflush(stdout);
    wait_line();

    cl *busy = cs + nidle;
    long requests = 0;
    for (int i = 0; i < nbusy; i++)
        send_req(&busy[i]);
    double end = now_s() + secs;
    struct epoll_event ev[256];
    while (now_s() < end) {
        int k = epoll_wait(ep, ev, 256, 100);
        for (int i = 0; i < k; i++) {
            cl *c = ev[i].data.ptr;
            int r = on_readable(c);
            if (r < 0) {
                fprintf(stderr, "conns: a busy connection failed\n");
                return 1;
            }
            if (r == 1) {
                requests++;
                send_req(c);
            }
        }
    }
    printf("requests %ld\n", requests);
    fflush(stdout);
    wait_line();
    for (int i = 0; i < nidle + nbusy; i++)
        close(cs[i].fd);
    printf("closed\n");
    fflush(stdout);
    wait_line();
    return 0;
}
