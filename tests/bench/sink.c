/*
 * sink.c — the upstream of the end-to-end benchmark.
 *
 * Every proxy under test forwards to this program, so it must never be the
 * bottleneck and must prove that the body arrived whole. It is one epoll
 * thread that reads each request body (Content-Length or chunked) into one
 * shared 1 MiB buffer, discards it, and answers 200 with "<bytes> <framing>"
 * (framing: length, chunked or none), the decoded byte count the harness
 * compares with what the client sent. Keep-alive and pipelining work;
 * "Expect: 100-continue" gets its interim 100.
 *
 * -r BYTES_PER_SEC turns it into a slow upstream: every connection may read
 * at most that rate (refilled every 10 ms) and the receive buffer is shrunk,
 * so a proxy in front of it has to hold back its client instead of letting
 * the kernel absorb the body.
 *
 * usage: sink [-l HOST:PORT] [-r BYTES_PER_SEC]
 * Prints "listening on HOST:PORT" once ready (port 0 picks a free port).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (1u << 20)
#define HEAD_MAX 16384
#define TICK_MS 10
#define SLOW_RCVBUF (128 * 1024)

enum state { HEAD, BODY_LENGTH, BODY_CHUNKED };
/* Chunked framing, one state per element of RFC 9112 section 7.1. */
enum chunk { C_SIZE, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER, C_TRAILER_LINE,
             C_END_LF };

struct conn {
    int fd;
    enum state st;
    enum chunk cst;
    bool close_after; /* Connection: close or HTTP/1.0 */
    bool throttled;   /* slow mode: allowance used up, reading paused */
    int digits;
    uint64_t left;    /* Content-Length or current chunk bytes still due */
    uint64_t count;   /* decoded body bytes of the current request */
    int64_t allowance;
    struct conn *next; /* every connection, for the slow-mode refill */
    struct conn **pprev;
    size_t hlen;
    char head[HEAD_MAX];
};

struct sink {
    int ep;
    int64_t rate; /* bytes/s per connection, 0 = unlimited */
    struct conn *conns;
    char *buf;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void conn_free(struct sink *s, struct conn *c)
{
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    *c->pprev = c->next;
    if (c->next)
        c->next->pprev = c->pprev;
    free(c);
}

/* Small writes only (responses); the peer is waiting for them, so a short
 * write means it is gone or misbehaving, and the connection is dropped. */
static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool respond(struct conn *c, int status, const char *framing)
{
    char body[64], msg[192];
    int bn = snprintf(body, sizeof body, "%llu %s\n", (unsigned long long)c->count, framing);
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s",
                     status, status == 200 ? "OK" : "Bad Request", bn,
                     c->close_after ? "Connection: close\r\n" : "", body);
    c->st = HEAD;
    c->hlen = 0;
    c->count = 0;
    return send_all(c->fd, msg, (size_t)n);
}

/* Case-insensitive "name: value" test on one header line. */
static const char *header_value(const char *line, const char *name)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    line += n + 1;
    while (*line == ' ' || *line == '\t')
        line++;
    return line;
}

/* Parses the head in c->head (NUL-terminated, ends with an empty line) and
 * sets the body state. Returns false on a head this sink does not accept. */
static bool parse_head(struct conn *c)
{
    char *save = NULL;
    char *line = strtok_r(c->head, "\r\n", &save);
    if (!line || !strstr(line, " HTTP/1."))
        return false;
    c->close_after = strstr(line, " HTTP/1.0") != NULL;
    bool chunked = false, has_length = false, cont = false;
    uint64_t length = 0;
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        const char *v;
        if ((v = header_value(line, "content-length"))) {
            char *end;
            errno = 0;
            length = strtoull(v, &end, 10);
            if (errno || end == v || has_length)
                return false;
            has_length = true;
        } else if ((v = header_value(line, "transfer-encoding"))) {
            if (strncasecmp(v, "chunked", 7) != 0)
                return false;
            chunked = true;
        } else if ((v = header_value(line, "connection"))) {
            if (strncasecmp(v, "close", 5) == 0)
                c->close_after = true;
            else if (strncasecmp(v, "keep-alive", 10) == 0)
                c->close_after = false;
        } else if ((v = header_value(line, "expect"))) {
            cont = strncasecmp(v, "100-continue", 12) == 0;
        }
    }
    if (chunked && has_length)
        return false;
    if (cont && !send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25))
        return false;
    c->count = 0;
    if (chunked) {
        c->st = BODY_CHUNKED;
        c->cst = C_SIZE;
        c->digits = 0;
        c->left = 0;
    } else {
        c->st = BODY_LENGTH;
        c->left = length;
    }
    return true;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)(ch | 0x20);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Feeds n bytes of chunked framing and data. Returns bytes used, or -1 on a
 * framing error; stops right after the end of the body (state HEAD). Data is
 * skipped in bulk; only the few framing bytes go through the switch. */
static ssize_t feed_chunked(struct conn *c, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && c->st == BODY_CHUNKED) {
        char ch = p[i];
        switch (c->cst) {
        case C_DATA: {
            size_t take = n - i < c->left ? n - i : (size_t)c->left;
            c->left -= take;
            c->count += take;
            i += take;
            if (c->left == 0)
                c->cst = C_DATA_CR;
            continue;
        }
        case C_SIZE: {
            int h = hexval(ch);
            if (h >= 0) {
                if (++c->digits > 15)
                    return -1;
                c->left = c->left * 16 + (uint64_t)h;
            } else if (c->digits == 0) {
                return -1;
            } else if (ch == '\r') {
                c->cst = C_SIZE_LF;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->cst = C_EXT;
            } else {
                return -1;
            }
            break;
        }
        case C_EXT:
            if (ch == '\r')
                c->cst = C_SIZE_LF;
            break;
        case C_SIZE_LF:
            if (ch != '\n')
                return -1;
            c->cst = c->left ? C_DATA : C_TRAILER;
            break;
        case C_DATA_CR:
            if (ch != '\r')
                return -1;
            c->cst = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (ch != '\n')
                return -1;
            c->cst = C_SIZE;
            c->digits = 0;
            c->left = 0;
            break;
        case C_TRAILER: /* start of a trailer line, or the final CRLF */
            c->cst = ch == '\r' ? C_END_LF : C_TRAILER_LINE;
            break;
        case C_TRAILER_LINE:
            if (ch == '\n')
                c->cst = C_TRAILER;
            break;
        case C_END_LF:
            if (ch != '\n')
                return -1;
            i++;
            return respond(c, 200, "chunked") ? (ssize_t)i : -1;
        }
        i++;
    }
    return (ssize_t)i;
}

/* Consumes n bytes read from the connection. Returns false when the
 * connection must be closed. */
static bool feed(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        if (c->st == HEAD) {
            size_t from = c->hlen > 3 ? c->hlen - 3 : 0;
            size_t take = n < HEAD_MAX - 1 - c->hlen ? n : HEAD_MAX - 1 - c->hlen;
            memcpy(c->head + c->hlen, p, take);
            c->hlen += take;
            c->head[c->hlen] = '\0';
            char *end = memmem(c->head + from, c->hlen - from, "\r\n\r\n", 4);
            if (!end) {
                if (c->hlen == HEAD_MAX - 1) {
                    c->close_after = true;
                    respond(c, 400, "none");
                    return false;
                }
                return true;
            }
            size_t head_len = (size_t)(end - c->head) + 4;
            size_t used = take - (c->hlen - head_len);
            p += used;
            n -= used;
            c->head[head_len] = '\0';
            if (!parse_head(c)) {
                c->close_after = true;
                respond(c, 400, "none");
                return false;
            }
            if (c->st == BODY_LENGTH && c->left == 0 &&
                !respond(c, 200, "none"))
                return false;
        } else if (c->st == BODY_LENGTH) {
            size_t take = n < c->left ? n : (size_t)c->left;
            c->count += take;
            c->left -= take;
            p += take;
            n -= take;
            if (c->left == 0 && !respond(c, 200, "length"))
                return false;
        } else {
            ssize_t used = feed_chunked(c, p, n);
            if (used < 0) {
                c->close_after = true;
                respond(c, 400, "chunked");
                return false;
            }
            p += used;
            n -= (size_t)used;
        }
        if (c->st == HEAD && c->hlen == 0 && c->close_after)
            return false;
    }
    return true;
}

static void set_reading(struct sink *s, struct conn *c, bool on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = c};
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->throttled = !on;
}

static void on_readable(struct sink *s, struct conn *c)
{
    size_t want = READ_BUF;
    if (s->rate) {
        if (c->allowance <= 0) {
            set_reading(s, c, false);
            return;
        }
        if ((uint64_t)c->allowance < want)
            want = (size_t)c->allowance;
    }
    ssize_t r = read(c->fd, s->buf, want);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0 || !feed(c, s->buf, (size_t)r)) {
        conn_free(s, c);
        return;
    }
    if (s->rate) {
        c->allowance -= r;
        if (c->allowance <= 0)
            set_reading(s, c, false);
    }
}

static void refill(struct sink *s)
{
    int64_t add = s->rate * TICK_MS / 1000, cap = s->rate / 10;
    for (struct conn *c = s->conns; c; c = c->next) {
        c->allowance = c->allowance + add > cap ? cap : c->allowance + add;
        if (c->throttled && c->allowance > 0)
            set_reading(s, c, true);
    }
}

static void on_accept(struct sink *s, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        if (s->rate) {
            int rcv = SLOW_RCVBUF;
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = s->conns;
        c->pprev = &s->conns;
        if (s->conns)
            s->conns->pprev = &c->next;
        s->conns = c;
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int listen_on(const char *spec)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host)
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    socklen_t len = sizeof a;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    printf("listening on %s:%u\n", host, ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv)
{
    const char *listen_spec = "127.0.0.1:0";
    struct sink s = {0};
    int opt;
    while ((opt = getopt(argc, argv, "l:r:")) != -1) {
        if (opt == 'l')
            listen_spec = optarg;
        else if (opt == 'r')
            s.rate = atoll(optarg);
        else {
            fprintf(stderr, "usage: sink [-l HOST:PORT] [-r BYTES_PER_SEC]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int lfd = listen_on(listen_spec);
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    s.buf = malloc(READ_BUF);
    if (lfd < 0 || s.ep < 0 || !s.buf) {
        perror("sink");
        return 1;
    }
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(s.ep, EPOLL_CTL_ADD, lfd, &lev);

    double next_tick = now_ms() + TICK_MS;
    struct epoll_event evs[64];
    while (!stopping) {
        int timeout = -1;
        if (s.rate) {
            double wait = next_tick - now_ms();
            timeout = wait > 0 ? (int)wait + 1 : 0;
        }
        int n = epoll_wait(s.ep, evs, 64, timeout);
        if (n < 0 && errno != EINTR)
            break;
        /* A connection has one fd and epoll reports an fd at most once
         * per batch, so freeing the connection being served is safe. */
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                on_accept(&s, lfd);
            else
                on_readable(&s, evs[i].data.ptr);
        }
        if (s.rate && now_ms() >= next_tick) {
            refill(&s);
            next_tick += TICK_MS;
            if (next_tick < now_ms())
                next_tick = now_ms() + TICK_MS;
        }
    }
    while (s.conns)
        conn_free(&s, s.conns);
    close(lfd);
    free(s.buf);
    return 0;
}
