/*
 * relay.c — the smallest complete host for sluice: an HTTP/1.1 relay that
 * streams each request body to an upstream and the answer back, in one
 * poll(2) loop. Read this before sluice-proxy.c, which adds the checks,
 * limits and modes a real proxy needs.
 *
 *   relay LISTEN_PORT UPSTREAM_HOST:PORT
 *
 * Each connection runs four phases: read the request head, pump its body to
 * the upstream, read the upstream's head, pump the response to the client.
 * The library never blocks and never picks the loop: each call that cannot
 * go on returns PENDING and says, as data, which fd to wait for.
 */
#include <sluice.h>

#include <netdb.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 256
#define MAX_HEADERS 64

enum phase { HEAD, UPLOAD, RESPONSE_HEAD, DOWNLOAD };

typedef struct conn {
    enum phase phase;
    int cfd, ufd;                 /* client and upstream sockets */
    sluice_io *cio, *uio;
    sluice_reader *crd, *urd;     /* they keep bytes read ahead (pipelining) */
    sluice_bytes head, rhead;     /* keep the parsed heads' spans valid */
    sluice_http_request req;
    sluice_http_response res;
    sluice_http_header hdrs[MAX_HEADERS]; /* the request's, then the response's */
    int keep_alive;
    sluice_stream *body;          /* request body, then response body */
    sluice_sink *out;             /* writer to the upstream, then to the client */
    sluice_pump pump;
    sluice_interest want;         /* what this connection waits for */
} conn;

static sluice_pool *pool;
static struct addrinfo *upstream;

/* Time limits the library keeps for heads, so this loop has no timers of its
 * own for them (the reader's interest carries the deadline): a head whole
 * within 10 s of its first byte; a client idle between requests, or an
 * upstream that has not begun its answer, given 60 s. */
static const sluice_http_limits head_limits = {.head_timeout_ms = 10000,
                                               .idle_timeout_ms = 60000};

static int named(const sluice_http_header *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Hop-by-hop fields, the framing and Expect are the relay's own business:
 * the writers below set Content-Length or Transfer-Encoding themselves. */
static void copy_headers(sluice_http_head_builder *b, const sluice_http_header *h, size_t n,
                         const sluice_http_framing *f)
{
    for (size_t i = 0; i < n; i++)
        if (!sluice_http_header_is_hop_by_hop(h, n, &h[i]) && !named(&h[i], "Expect") &&
            !(f->body != SLUICE_HTTP_BODY_NONE && named(&h[i], "Content-Length")))
            sluice_http_head_add_header(b, h[i].name, h[i].name_len, h[i].value, h[i].value_len);
}

/* The body stream the framing f says over r, and a writer to io that frames
 * it the same way, except that a body ending at the upstream's close goes on
 * chunked (an HTTP/1.0 client would need it unframed; sluice-proxy checks).
 * The head goes out in the writer's first writev. */
static int pipe_body(conn *c, sluice_reader *r, sluice_io *io, const sluice_http_framing *f,
                     sluice_http_head_builder *b)
{
    const sluice_http_framing *out = f->body == SLUICE_HTTP_BODY_CLOSE ? SLUICE_FRAMING_CHUNKED : f;
    if (out->body == SLUICE_HTTP_BODY_CHUNKED)
        sluice_http_head_add_header(b, SLUICE_LIT("Transfer-Encoding"), SLUICE_LIT("chunked"));
    else if (out->body == SLUICE_HTTP_BODY_LENGTH)
        sluice_http_head_add_content_length(b, out->length);
    sluice_bytes head;
    if (sluice_http_head_finish(b, &head) < 0 || sluice_body_new(pool, r, f, NULL, &c->body) < 0) {
        sluice_bytes_release(&head); /* zeroed, or a finished head nobody took */
        return -1;
    }
    if (sluice_writer_new(pool, io, out, &head, NULL, &c->out) < 0) /* takes head */
        return -1;
    sluice_pump_init(&c->pump, c->body, c->out, NULL);
    return 0;
}

/* Closes what one exchange opened; the client connection stays. */
static void end_exchange(conn *c)
{
    sluice_pump_close(&c->pump);
    sluice_stream_close(c->body);
    sluice_sink_close(c->out);
    sluice_bytes_release(&c->head);
    sluice_bytes_release(&c->rhead);
    sluice_reader_close(c->urd);
    sluice_io_close(c->uio);
    if (c->ufd >= 0)
        close(c->ufd);
    c->body = NULL, c->out = NULL, c->urd = NULL, c->uio = NULL, c->ufd = -1;
}

/* Moves c forward until it must wait (0) or is finished (-1). */
static int step(conn *c)
{
    sluice_http_framing f;
    sluice_http_head_builder b;
    sluice_poll r;
    sluice_pump_status st;
    int err;
    for (;;) {
        switch (c->phase) {
        case HEAD: /* parsed in place in the reader's block: no copy */
            r = sluice_http_read_request(c->crd, &head_limits, &c->req, c->hdrs, MAX_HEADERS, &c->head, &err);
            if (r == SLUICE_PENDING) {
                sluice_reader_ready(c->crd, &c->want);
                return 0;
            }
            if (r != SLUICE_READY || sluice_http_request_framing(&c->req, &f) < 0)
                return -1; /* closed, malformed (a server would answer 400), or too slow */
            c->keep_alive = sluice_http_request_keep_alive(&c->req);
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (sluice_http_request_expect(&c->req) == SLUICE_HTTP_EXPECT_CONTINUE &&
                write(c->cfd, cont, sizeof cont - 1) != sizeof cont - 1)
                return -1; /* the client waits for this before sending its body */
            /* a blocking connect keeps this short; sluice-proxy does it without */
            c->ufd = socket(upstream->ai_family, SOCK_STREAM, 0);
            if (c->ufd < 0 || connect(c->ufd, upstream->ai_addr, upstream->ai_addrlen) < 0 ||
                sluice_io_fd_new(pool, c->ufd, 0, &c->uio) < 0 ||
                sluice_reader_new(pool, c->uio, NULL, &c->urd) < 0)
                return -1;
            sluice_http_head_init(&b, pool);
            sluice_http_head_forward_request_line(&b, &c->req);
            copy_headers(&b, c->hdrs, c->req.num_headers, &f);
            if (pipe_body(c, c->crd, c->uio, &f, &b) < 0)
                return -1;
            c->phase = UPLOAD;
            break;
        case UPLOAD:   /* client -> upstream, one read and one writev per block */
        case DOWNLOAD: /* upstream -> client */
            st = sluice_pump_step(&c->pump, &c->want);
            if (st != SLUICE_PUMP_DONE) /* ERROR: the writer was aborted, no false end of body */
                return st == SLUICE_PUMP_PENDING ? 0 : -1;
            sluice_stream_close(c->body);
            sluice_sink_close(c->out);
            c->body = NULL, c->out = NULL;
            if (c->phase == UPLOAD) {
                c->phase = RESPONSE_HEAD;
                break;
            }
            end_exchange(c); /* response complete: keep-alive, next request */
            if (!c->keep_alive)
                return -1;
            c->phase = HEAD;
            break;
        case RESPONSE_HEAD: /* the request's fields are done with: reuse hdrs */
            r = sluice_http_read_response(c->urd, &head_limits, &c->res, c->hdrs, MAX_HEADERS, &c->rhead, &err);
            if (r == SLUICE_PENDING) {
                sluice_reader_ready(c->urd, &c->want);
                return 0;
            }
            if (r != SLUICE_READY)
                return -1;
            if (c->res.status < 200) { /* 100 Continue and friends: not relayed */
                sluice_bytes_release(&c->rhead);
                break;
            }
            if (sluice_http_response_framing(&c->res, c->req.method, c->req.method_len, &f) < 0)
                return -1;
            sluice_http_head_init(&b, pool);
            sluice_http_head_status_line(&b, c->res.status, c->res.reason, c->res.reason_len);
            copy_headers(&b, c->hdrs, c->res.num_headers, &f); /* HEAD, 304: theirs */
            if (pipe_body(c, c->urd, c->cio, &f, &b) < 0)
                return -1;
            c->phase = DOWNLOAD;
            break;
        }
    }
}

static void conn_free(conn *c)
{
    end_exchange(c);
    sluice_reader_close(c->crd);
    sluice_io_close(c->cio);
    close(c->cfd);
    free(c);
}

int main(int argc, char **argv)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    char *colon = argc == 3 ? strrchr(argv[2], ':') : NULL;
    if (!colon) {
        fprintf(stderr, "usage: relay LISTEN_PORT UPSTREAM_HOST:PORT\n");
        return 2;
    }
    *colon = 0;
    if (getaddrinfo(argv[2], colon + 1, &hints, &upstream) != 0 ||
        getaddrinfo("127.0.0.1", argv[1], &hints, &res) != 0 || sluice_pool_new(NULL, &pool) < 0)
        return 1;
    int one = 1, lfd = socket(res->ai_family, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, res->ai_addr, res->ai_addrlen) < 0 || listen(lfd, 128) < 0) {
        perror("relay: listen");
        return 1;
    }
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
    fflush(stdout);

    conn *conns[MAX_CONNS];
    struct pollfd pfd[MAX_CONNS + 1];
    int n = 0;
    for (;;) {
        /* every connection waits for what its last PENDING asked for */
        int64_t now = sluice_now_ms(), next = -1;
        pfd[0] = (struct pollfd){lfd, n < MAX_CONNS ? POLLIN : 0, 0};
        for (int i = 0; i < n; i++) {
            sluice_interest *w = &conns[i]->want;
            pfd[i + 1] = (struct pollfd){w->fd, (short)((w->events & SLUICE_WANT_READ ? POLLIN : 0) |
                                                        (w->events & SLUICE_WANT_WRITE ? POLLOUT : 0)), 0};
            if (w->deadline_ms >= 0 && (next < 0 || w->deadline_ms < next))
                next = w->deadline_ms;
            if (w->fd < 0 && w->deadline_ms < 0 && !(w->events & SLUICE_WANT_WAKE))
                next = now; /* "call again soon": a step's budget */
        }
        poll(pfd, (nfds_t)n + 1, next < 0 ? -1 : next > now ? (int)(next - now) : 0);
        now = sluice_now_ms();
        for (int i = n - 1; i >= 0; i--) {
            sluice_interest *w = &conns[i]->want;
            int soon = w->fd < 0 && w->deadline_ms < 0 && !(w->events & SLUICE_WANT_WAKE);
            if (!soon && !pfd[i + 1].revents && (w->deadline_ms < 0 || w->deadline_ms > now))
                continue; /* nothing happened for this one */
            if (step(conns[i]) < 0) {
                conn_free(conns[i]);
                conns[i] = conns[--n];
            }
        }
        if (pfd[0].revents & POLLIN) {
            conn *c = calloc(1, sizeof *c);
            int fd = c ? accept(lfd, NULL, NULL) : -1;
            if (fd < 0) { /* out of memory or descriptors: try again next turn (a
                             real server stops polling the listener then) */
                free(c);
                continue;
            }
            c->cfd = fd;
            c->ufd = -1;
            if (sluice_io_fd_new(pool, fd, 0, &c->cio) < 0 ||
                sluice_reader_new(pool, c->cio, NULL, &c->crd) < 0 || step(c) < 0)
                conn_free(c);
            else
                conns[n++] = c;
        }
    }
}
