/*
 * uv-relay.c — examples/relay.c on libuv: the same HTTP/1.1 relay (each
 * request body streamed to an upstream, the answer streamed back), with
 * sluice's interests mapped onto libuv handles as docs/embedding.md says:
 *
 *   one uv_poll_t per fd        started with the events of an interest
 *                               that names that fd, stopped otherwise;
 *   one uv_timer_t per conn     the interest's deadline, or a 0 ms timeout
 *                               for "call again soon" (fd < 0, no deadline),
 *                               so a step that spent its budget runs again
 *                               after the loop's other ready work.
 *
 * An fd is never closed while a uv_poll_t watches it: uv_poll_stop first,
 * then close(2), and the handle itself goes with uv_close (its memory is
 * freed in the close callback). libuv never reads or writes the sockets:
 * sluice does, through its own sluice_io.
 *
 *   uv-relay LISTEN_PORT UPSTREAM_HOST:PORT
 *
 * Built only where libuv is installed (pkg-config libuv).
 */
#include <sluice.h>

#include <uv.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEADERS 64

enum phase { HEAD, UPLOAD, RESPONSE_HEAD, DOWNLOAD };

typedef struct conn {
    enum phase phase;
    int cfd, ufd;                 /* client and upstream sockets */
    uv_poll_t *cpoll, *upoll;     /* one watcher per fd, NULL when none */
    uv_timer_t *timer;            /* deadlines and "call again soon" */
    sluice_io *cio, *uio;
    sluice_reader *crd, *urd;
    sluice_bytes head, rhead;
    sluice_http_request req;
    sluice_http_response res;
    sluice_http_header hdrs[MAX_HEADERS];
    int keep_alive;
    sluice_stream *body;          /* request body, then response body */
    sluice_sink *out;             /* writer to the upstream, then to the client */
    sluice_pump pump;
    sluice_interest want;
} conn;

static uv_loop_t *loop;
static sluice_pool *pool;
static struct addrinfo *upstream;

/* Time limits the library keeps for heads, so this loop has no timers of its
 * own for them (the reader's interest carries the deadline to arm()): a
 * head whole within 10 s of its first byte; a client idle between requests,
 * or an upstream that has not begun its answer, given 60 s. */
static const sluice_http_limits head_limits = {.head_timeout_ms = 10000,
                                               .idle_timeout_ms = 60000};

static void on_poll(uv_poll_t *h, int status, int events);
static void on_timer(uv_timer_t *t);

/* ---- handles --------------------------------------------------------- */

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static uv_poll_t *watch(conn *c, int fd)
{
    uv_poll_t *h = malloc(sizeof *h);
    if (!h || uv_poll_init_socket(loop, h, fd) < 0) {
        free(h);
        return NULL;
    }
    h->data = c;
    return h;
}

/* Stops watching fd and closes it: the order libuv requires. */
static void unwatch_and_close(uv_poll_t **h, int *fd)
{
    if (*h) {
        uv_poll_stop(*h);
        uv_close((uv_handle_t *)*h, free_handle);
        *h = NULL;
    }
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Points the watchers and the timer at c->want. */
static void arm(conn *c)
{
    const sluice_interest *w = &c->want;
    int ev = (w->events & SLUICE_WANT_READ ? UV_READABLE : 0) |
             (w->events & SLUICE_WANT_WRITE ? UV_WRITABLE : 0);
    uv_poll_t *on = w->fd < 0 ? NULL : w->fd == c->cfd ? c->cpoll : c->upoll;
    if (c->cpoll && c->cpoll != on)
        uv_poll_stop(c->cpoll);
    if (c->upoll && c->upoll != on)
        uv_poll_stop(c->upoll);
    if (on)
        uv_poll_start(on, ev, on_poll);
    if (w->deadline_ms >= 0) {
        int64_t in = w->deadline_ms - sluice_now_ms();
        uv_timer_start(c->timer, on_timer, in > 0 ? (uint64_t)in : 0, 0);
    } else if (w->fd < 0) {
        uv_timer_start(c->timer, on_timer, 0, 0); /* "call again soon" */
    } else {
        uv_timer_stop(c->timer);
    }
}

/* ---- one exchange, as in relay.c --------------------------------------- */

static void copy_headers(sluice_http_head_builder *b, const sluice_http_header *h, size_t n,
                         const sluice_http_framing *f)
{
    for (size_t i = 0; i < n; i++)
        if (!sluice_http_header_is_hop_by_hop(h, n, &h[i]) &&
            !(f->body != SLUICE_HTTP_BODY_NONE && h[i].name_len == 14 &&
              strncasecmp(h[i].name, "Content-Length", 14) == 0) &&
            !(h[i].name_len == 6 && strncasecmp(h[i].name, "Expect", 6) == 0))
            sluice_http_head_add_header(b, h[i].name, h[i].name_len, h[i].value, h[i].value_len);
}

/* A body stream over r and a writer to io; a body that ends at the peer's
 * close is re-framed chunked. The head goes out in the first writev. */
static int pipe_body(conn *c, sluice_reader *r, sluice_io *io, const sluice_http_framing *f,
                     sluice_http_head_builder *b)
{
    sluice_bytes head;
    int chunked = f->body == SLUICE_HTTP_BODY_CHUNKED || f->body == SLUICE_HTTP_BODY_CLOSE;
    if (chunked)
        sluice_http_head_add_header(b, "Transfer-Encoding", 17, "chunked", 7);
    else if (f->body == SLUICE_HTTP_BODY_LENGTH)
        sluice_http_head_add_content_length(b, f->length);
    if (sluice_http_head_finish(b, &head) < 0)
        return -1;
    int rc = f->body == SLUICE_HTTP_BODY_NONE ? sluice_memstream_new(pool, NULL, 0, 0, &c->body)
                                              : sluice_body_new(pool, r, f, NULL, &c->body);
    if (rc < 0) {
        sluice_bytes_release(&head);
        return -1;
    }
    rc = sluice_writer_new(pool, io, chunked ? SLUICE_FRAMING_CHUNKED : f, &head, NULL, &c->out);
    sluice_pump_init(&c->pump, c->body, c->out, NULL);
    return rc;
}

/* Closes what one exchange opened: the client connection stays. */
static void end_exchange(conn *c)
{
    sluice_pump_close(&c->pump);
    sluice_stream_close(c->body);
    sluice_sink_close(c->out);
    sluice_bytes_release(&c->head);
    sluice_bytes_release(&c->rhead);
    sluice_reader_close(c->urd);
    sluice_io_close(c->uio);
    unwatch_and_close(&c->upoll, &c->ufd);
    c->body = NULL, c->out = NULL, c->urd = NULL, c->uio = NULL;
}

/* A blocking connect keeps this short (the upstream is near); the fd is
 * non-blocking from sluice_io_fd_new on. */
static int connect_upstream(conn *c)
{
    int one = 1;
    c->ufd = socket(upstream->ai_family, SOCK_STREAM, 0);
    if (c->ufd < 0 || connect(c->ufd, upstream->ai_addr, upstream->ai_addrlen) < 0)
        return -1;
    setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sluice_io_fd_new(pool, c->ufd, 0, &c->uio) < 0 ||
        sluice_reader_new(pool, c->uio, NULL, &c->urd) < 0 || !(c->upoll = watch(c, c->ufd)))
        return -1;
    return 0;
}

/* Each phase returns 1 to go on, 0 to wait for c->want, -1 to end c. */
static int request_head(conn *c)
{
    sluice_http_framing f;
    sluice_http_head_builder b;
    int err;
    sluice_poll r = sluice_http_read_request(c->crd, &head_limits, &c->req, c->hdrs, MAX_HEADERS,
                                             &c->head, &err);
    if (r == SLUICE_PENDING) {
        sluice_reader_ready(c->crd, &c->want);
        return 0;
    }
    if (r != SLUICE_READY || sluice_http_request_framing(&c->req, &f) < 0)
        return -1; /* closed, malformed (a server would answer 400), or too slow */
    c->keep_alive = sluice_http_request_keep_alive(&c->req);
    if (sluice_http_request_expect(&c->req) == SLUICE_HTTP_EXPECT_CONTINUE &&
        write(c->cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 25)
        return -1;
    if (connect_upstream(c) < 0)
        return -1;
    sluice_http_head_init(&b, pool);
    sluice_http_head_forward_request_line(&b, &c->req);
    copy_headers(&b, c->hdrs, c->req.num_headers, &f);
    if (pipe_body(c, c->crd, c->uio, &f, &b) < 0)
        return -1;
    c->phase = UPLOAD;
    return 1;
}

static int response_head(conn *c)
{
    sluice_http_framing f;
    sluice_http_head_builder b;
    int err;
    sluice_poll r = sluice_http_read_response(c->urd, &head_limits, &c->res, c->hdrs, MAX_HEADERS,
                                              &c->rhead, &err);
    if (r == SLUICE_PENDING) {
        sluice_reader_ready(c->urd, &c->want);
        return 0;
    }
    if (r != SLUICE_READY)
        return -1;
    if (c->res.status < 200) { /* 100 Continue and friends: not relayed */
        sluice_bytes_release(&c->rhead);
        return 1;
    }
    if (sluice_http_response_framing(&c->res, c->req.method, c->req.method_len, &f) < 0)
        return -1;
    sluice_http_head_init(&b, pool);
    sluice_http_head_status_line(&b, c->res.status, c->res.reason, c->res.reason_len);
    copy_headers(&b, c->hdrs, c->res.num_headers, &f);
    if (pipe_body(c, c->urd, c->cio, &f, &b) < 0)
        return -1;
    c->phase = DOWNLOAD;
    return 1;
}

static int pumping(conn *c)
{
    sluice_pump_status st = sluice_pump_step(&c->pump, &c->want);
    if (st != SLUICE_PUMP_DONE) /* ERROR: the writer was aborted, no false end */
        return st == SLUICE_PUMP_PENDING ? 0 : -1;
    sluice_pump_close(&c->pump);
    sluice_stream_close(c->body);
    sluice_sink_close(c->out);
    c->body = NULL, c->out = NULL;
    if (c->phase == UPLOAD) {
        c->phase = RESPONSE_HEAD;
        return 1;
    }
    end_exchange(c); /* response complete: next request, if kept alive */
    c->phase = HEAD;
    return c->keep_alive ? 1 : -1;
}

/* Moves c forward until it must wait (0) or is finished (-1). */
static int step(conn *c)
{
    int rc;
    do
        rc = c->phase == HEAD            ? request_head(c)
           : c->phase == RESPONSE_HEAD   ? response_head(c)
                                         : pumping(c);
    while (rc > 0);
    return rc;
}

static void conn_free(conn *c)
{
    end_exchange(c);
    sluice_reader_close(c->crd);
    sluice_io_close(c->cio);
    unwatch_and_close(&c->cpoll, &c->cfd);
    if (c->timer) {
        uv_timer_stop(c->timer);
        uv_close((uv_handle_t *)c->timer, free_handle);
    }
    free(c);
}

static void run(conn *c)
{
    if (step(c) < 0)
        conn_free(c);
    else
        arm(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status, (void)events; /* an error or hang-up: the step reports it */
    run(h->data);
}

static void on_timer(uv_timer_t *t)
{
    run(t->data);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    (void)status, (void)events;
    int one = 1, fd = accept(*(int *)h->data, NULL, NULL);
    if (fd < 0)
        return; /* a real server stops polling the listener on EMFILE */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->cfd = fd;
    c->ufd = -1;
    c->timer = malloc(sizeof *c->timer);
    if (!c->timer || uv_timer_init(loop, c->timer) < 0) {
        free(c->timer);
        c->timer = NULL;
        conn_free(c);
        return;
    }
    c->timer->data = c;
    if (sluice_io_fd_new(pool, fd, 0, &c->cio) < 0 ||
        sluice_reader_new(pool, c->cio, NULL, &c->crd) < 0 || !(c->cpoll = watch(c, fd)))
        conn_free(c);
    else
        run(c);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

static int listen_on(const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo("127.0.0.1", port, &hints, &res) != 0)
        return -1;
    int one = 1, lfd = socket(res->ai_family, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, res->ai_addr, res->ai_addrlen) < 0 || listen(lfd, 128) < 0) {
        perror("uv-relay: listen");
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
    fflush(stdout);
    return lfd;
}

int main(int argc, char **argv)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    char *colon = argc == 3 ? strrchr(argv[2], ':') : NULL;
    if (!colon) {
        fprintf(stderr, "usage: uv-relay LISTEN_PORT UPSTREAM_HOST:PORT\n");
        return 2;
    }
    *colon = 0;
    if (getaddrinfo(argv[2], colon + 1, &hints, &upstream) != 0 || sluice_pool_new(NULL, &pool) < 0)
        return 1;
    loop = uv_default_loop();
    uv_signal_t sigterm, sigint;
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    int lfd = listen_on(argv[1]); /* says "listening on" when all is set */
    if (lfd < 0)
        return 1;
    uv_poll_t listener;
    listener.data = &lfd;
    uv_poll_init_socket(loop, &listener, lfd);
    uv_poll_start(&listener, UV_READABLE, on_accept);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0; /* SIGTERM or SIGINT: connections in flight are dropped */
}
