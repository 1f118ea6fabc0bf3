/*
 * tls-digest.c — an HTTPS server that reads each request body with sluice
 * over a TLS transport (examples/tls/tls_io.c) and answers with the body's
 * SHA-256 in hex. One poll(2) loop, like relay.c; the io is the only part
 * that knows about TLS.
 *
 *   tls-digest LISTEN_PORT CERT.pem KEY.pem [--flaky]
 *
 * --flaky puts a filter under OpenSSL that refuses every other socket read
 * and write with a retry (TLS_IO_FLAKY), so WANT_READ / WANT_WRITE come
 * all the time. One stderr line per request:
 *   METHOD TARGET 200 BYTES retries=N             the whole body arrived
 *   METHOD TARGET error CODE BYTES retries=N      it did not (answered 400)
 * Built only where OpenSSL is installed (pkg-config openssl).
 */
#include "tls/tls_io.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 256
#define MAX_HEADERS 64
#define STEP_BYTES (1u << 20)

enum phase { HEAD, CONTINUE, BODY, REPLY };

typedef struct conn {
    enum phase phase;
    int fd;
    sluice_io *io;
    sluice_reader *rd;
    sluice_bytes head;            /* keeps req's spans valid */
    sluice_http_request req;
    sluice_http_header hdrs[MAX_HEADERS];
    sluice_stream *body;
    sluice_sha256_ctx sha;
    uint64_t bytes;
    sluice_sink *out;             /* 100 Continue, then the answer */
    int keep_alive;
    sluice_interest want;
} conn;

static sluice_pool *pool;
static unsigned io_flags = SLUICE_IO_CLOSE_FD;

/* Queues a whole message (head and body) on a fresh writer. */
static int answer(conn *c, int status, const char *text)
{
    sluice_http_head_builder b;
    sluice_bytes head, body;
    size_t len = strlen(text);
    sluice_http_head_init(&b, pool);
    sluice_http_head_status_line(&b, status, NULL, 0);
    if (status >= 200) {
        sluice_http_head_add_content_length(&b, len);
        if (!c->keep_alive)
            sluice_http_head_add_header(&b, "Connection", 10, "close", 5);
    }
    if (sluice_http_head_finish(&b, &head) < 0)
        return -1;
    if (sluice_bytes_copy_from(pool, text, len, &body) < 0) {
        sluice_bytes_release(&head);
        return -1;
    }
    int rc = sluice_writer_new(pool, c->io, SLUICE_FRAMING_LENGTH(status >= 200 ? len : 0), &head,
                               NULL, &c->out);
    if (rc == 0 && len && sluice_sink_poll_write(c->out, &body) != SLUICE_READY)
        rc = -1; /* a fresh writer takes one chunk without writing */
    sluice_bytes_release(&body);
    return rc;
}

/* Steps the answer out: 1 when it went, 0 to wait, -1 on error. */
static int flush_out(conn *c)
{
    sluice_poll r = sluice_sink_finish(c->out);
    if (r == SLUICE_PENDING) {
        sluice_sink_ready(c->out, &c->want);
        return 0;
    }
    sluice_sink_close(c->out);
    c->out = NULL;
    return r == SLUICE_READY ? 1 : -1;
}

static int read_head(conn *c)
{
    sluice_http_framing f;
    int err;
    sluice_poll r = sluice_http_read_request(c->rd, NULL, &c->req, c->hdrs, MAX_HEADERS, &c->head, &err);
    if (r == SLUICE_PENDING) {
        sluice_reader_ready(c->rd, &c->want);
        return 0;
    }
    if (r == SLUICE_ERROR)
        fprintf(stderr, "- - error %s 0 retries=%lu\n", sluice_err_name(err), tls_io_injected(c->io));
    if (r != SLUICE_READY || sluice_http_request_framing(&c->req, &f) < 0 ||
        sluice_body_new(pool, c->rd, &f, NULL, &c->body) < 0)
        return -1;
    c->keep_alive = sluice_http_request_keep_alive(&c->req);
    sluice_sha256_init(&c->sha);
    c->bytes = 0;
    if (sluice_http_request_expect(&c->req) == SLUICE_HTTP_EXPECT_CONTINUE) {
        c->phase = CONTINUE;
        return answer(c, 100, "") < 0 ? -1 : 1;
    }
    c->phase = BODY;
    return 1;
}

static void log_line(conn *c, const char *what)
{
    fprintf(stderr, "%.*s %.*s %s %llu retries=%lu\n", (int)c->req.method_len, c->req.method,
            (int)c->req.target_len, c->req.target, what, (unsigned long long)c->bytes,
            tls_io_injected(c->io));
}

/* Pulls the body into the digest, at most STEP_BYTES per step. */
static int read_body(conn *c)
{
    sluice_bytes b;
    sluice_poll r;
    for (size_t n = 0; n < STEP_BYTES;) {
        r = sluice_stream_poll_next(c->body, &b);
        if (r == SLUICE_PENDING) {
            sluice_stream_ready(c->body, &c->want);
            return 0;
        }
        if (r != SLUICE_READY)
            break;
        sluice_sha256_update(&c->sha, b.data, b.len);
        c->bytes += b.len;
        n += b.len;
        sluice_bytes_release(&b);
    }
    if (r == SLUICE_READY) {
        c->want = (sluice_interest){-1, 0, -1}; /* "call again soon" */
        return 0;
    }
    char text[80];
    if (r == SLUICE_EOF) {
        unsigned char d[SLUICE_SHA256_SIZE];
        sluice_sha256_final(&c->sha, d);
        sluice_sha256_hex(d, text);
        log_line(c, "200");
        strcat(text, "\n");
    } else { /* a cut or malformed body: never answered as if complete */
        int err = sluice_stream_error(c->body, NULL);
        snprintf(text, sizeof text, "error %s", sluice_err_name(err));
        log_line(c, text);
        strcat(text, "\n");
        c->keep_alive = 0;
    }
    sluice_stream_close(c->body);
    c->body = NULL;
    c->phase = REPLY;
    return answer(c, r == SLUICE_EOF ? 200 : 400, text) < 0 ? -1 : 1;
}

/* Moves c forward until it must wait (0) or is finished (-1). */
static int step(conn *c)
{
    int rc;
    do {
        switch (c->phase) {
        case HEAD:
            rc = read_head(c);
            break;
        case CONTINUE:
            if ((rc = flush_out(c)) > 0)
                c->phase = BODY;
            break;
        case BODY:
            rc = read_body(c);
            break;
        default:
            if ((rc = flush_out(c)) > 0) {
                sluice_bytes_release(&c->head);
                c->phase = HEAD;
                if (!c->keep_alive) {
                    sluice_io_shutdown(c->io); /* close_notify, then FIN */
                    rc = -1;
                }
            }
        }
    } while (rc > 0);
    return rc;
}

static void conn_free(conn *c)
{
    sluice_stream_close(c->body);
    sluice_sink_close(c->out);
    sluice_bytes_release(&c->head);
    sluice_reader_close(c->rd);
    sluice_io_close(c->io); /* SSL_free and close(fd) */
    free(c);
}

static conn *conn_new(SSL_CTX *ctx, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = calloc(1, sizeof *c);
    SSL *ssl = c ? SSL_new(ctx) : NULL;
    if (!ssl || (!(io_flags & TLS_IO_FLAKY) && !SSL_set_fd(ssl, fd))) {
        SSL_free(ssl);
        free(c);
        close(fd);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    c->fd = fd;
    if (tls_io_new(pool, ssl, fd, io_flags, &c->io) < 0) {
        close(fd);
        free(c);
        return NULL;
    }
    if (sluice_reader_new(pool, c->io, NULL, &c->rd) < 0 || step(c) < 0) {
        conn_free(c);
        return NULL;
    }
    return c;
}

static int listen_on(const char *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, len) < 0 || listen(lfd, 128) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &len) < 0) {
        perror("tls-digest: listen");
        return -1;
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(sin.sin_port));
    fflush(stdout);
    return lfd;
}

static SSL_CTX *tls_context(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return NULL;
    }
    return ctx;
}

/* The poll(2) loop of relay.c: each connection waits for its interest. */
static void serve(int lfd, SSL_CTX *ctx)
{
    conn *conns[MAX_CONNS];
    struct pollfd pfd[MAX_CONNS + 1];
    int n = 0;
    for (;;) {
        int64_t now = sluice_now_ms(), next = -1;
        pfd[0] = (struct pollfd){lfd, n < MAX_CONNS ? POLLIN : 0, 0};
        for (int i = 0; i < n; i++) {
            sluice_interest *w = &conns[i]->want;
            pfd[i + 1] = (struct pollfd){w->fd, (short)((w->events & SLUICE_WANT_READ ? POLLIN : 0) |
                                                        (w->events & SLUICE_WANT_WRITE ? POLLOUT : 0)), 0};
            if (w->deadline_ms >= 0 && (next < 0 || w->deadline_ms < next))
                next = w->deadline_ms;
            if (w->fd < 0 && w->deadline_ms < 0)
                next = now;
        }
        poll(pfd, (nfds_t)n + 1, next < 0 ? -1 : next > now ? (int)(next - now) : 0);
        now = sluice_now_ms();
        for (int i = n - 1; i >= 0; i--) {
            sluice_interest *w = &conns[i]->want;
            int soon = w->fd < 0 && w->deadline_ms < 0;
            if (!soon && !pfd[i + 1].revents && (w->deadline_ms < 0 || w->deadline_ms > now))
                continue;
            if (step(conns[i]) < 0) {
                conn_free(conns[i]);
                conns[i] = conns[--n];
            }
        }
        int fd = pfd[0].revents & POLLIN ? accept(lfd, NULL, NULL) : -1;
        conn *c = fd >= 0 ? conn_new(ctx, fd) : NULL;
        if (c)
            conns[n++] = c;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4 || (argc == 5 && strcmp(argv[4], "--flaky") != 0) || argc > 5) {
        fprintf(stderr, "usage: tls-digest LISTEN_PORT CERT.pem KEY.pem [--flaky]\n");
        return 2;
    }
    if (argc == 5)
        io_flags |= TLS_IO_FLAKY;
    signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write(2): a gone peer is EPIPE */
    SSL_CTX *ctx = tls_context(argv[2], argv[3]);
    if (!ctx || sluice_pool_new(NULL, &pool) < 0)
        return 1;
    int lfd = listen_on(argv[1]);
    if (lfd < 0)
        return 1;
    serve(lfd, ctx);
    return 0;
}
