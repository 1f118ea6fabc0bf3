/*
 * test_threads.c — docs/embedding.md "Threads", run for real (and under
 * ThreadSanitizer by `make tsan`).
 *
 * Connection A uploads a multipart body over a socket. The loop thread reads
 * the head and walks the parts; each part is handed to a worker thread that
 * pulls it to EOF, waiting on the part's own interest (the client socket)
 * with poll(2), and closes it there. While a worker has a part the loop
 * touches neither the splitter nor A's reader: it goes on with connection B,
 * another upload from the same (shared) pool, stepped from the same poll.
 * Before the last part is handed over the loop closes its splitter handle,
 * so the worker's close of that part is the last reference and closes the
 * body stream on the worker. Blocks are filled on one thread and released
 * on the other throughout. Every body must arrive byte-exact.
 */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define NPARTS 3

typedef struct client {
    int fd;
    const unsigned char *bytes;
    size_t len;
} client;

typedef struct worker {
    sluice_stream *part;
    int notify;                  /* written once when the part is done */
    size_t len;
    unsigned char digest[32];
    int rc;                      /* 0: EOF; else the part's error */
} worker;

/* The peer: writes the request in uneven pieces with blocking writes. */
static void *client_main(void *arg)
{
    client *c = arg;
    size_t off = 0, piece = 1000;
    while (off < c->len) {
        size_t n = c->len - off < piece ? c->len - off : piece;
        ssize_t w = write(c->fd, c->bytes + off, n);
        if (w <= 0)
            break;
        off += (size_t)w;
        piece = piece * 7 % 100003 + 1;
    }
    return NULL;
}

/* Waits for what s asks for (poll on its fd, or until its deadline). */
static void wait_interest(const sluice_interest *w)
{
    struct pollfd p = {w->fd, (short)((w->events & SLUICE_WANT_READ ? POLLIN : 0) |
                                      (w->events & SLUICE_WANT_WRITE ? POLLOUT : 0)), 0};
    int timeout = w->deadline_ms < 0 ? (w->fd < 0 ? 0 : 5000)
                                     : (int)(w->deadline_ms - sluice_now_ms());
    poll(&p, w->fd >= 0 ? 1 : 0, timeout < 0 ? 0 : timeout);
}

/* The worker: pulls its part to the end on this thread, then closes it. */
static void *worker_main(void *arg)
{
    worker *wk = arg;
    sluice_sha256_ctx sha;
    sluice_sha256_init(&sha);
    sluice_bytes b;
    sluice_poll r;
    while ((r = sluice_stream_poll_next(wk->part, &b)) != SLUICE_EOF && r != SLUICE_ERROR) {
        if (r == SLUICE_READY) {
            sluice_sha256_update(&sha, b.data, b.len);
            wk->len += b.len;
            sluice_bytes_release(&b); /* the block may go back to the pool here */
        } else {
            sluice_interest w;
            sluice_stream_ready(wk->part, &w);
            wait_interest(&w);
        }
    }
    wk->rc = r == SLUICE_EOF ? 0 : sluice_stream_error(wk->part, NULL);
    sluice_sha256_final(&sha, wk->digest);
    sluice_stream_close(wk->part); /* the last one also closes the body stream */
    wk->part = NULL;
    if (write(wk->notify, "x", 1) != 1)
        wk->rc = -1;
    return NULL;
}

/* A connection on the loop thread: its socket, io, reader, parsed head. */
typedef struct conn {
    int sv[2];
    pthread_t peer;
    client cl;
    sluice_io *io;
    sluice_reader *rd;
    sluice_bytes head;
    sluice_http_request req;
    sluice_http_header hdrs[8];
    sluice_stream *body;
} conn;

static int conn_open(conn *c, const unsigned char *bytes, size_t len)
{
    memset(c, 0, sizeof *c);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, c->sv) < 0)
        return -1;
    c->cl = (client){c->sv[1], bytes, len};
    if (pthread_create(&c->peer, NULL, client_main, &c->cl) != 0 ||
        sluice_io_fd_new(T_POOL, c->sv[0], 0, &c->io) < 0 ||
        sluice_reader_new(T_POOL, c->io, NULL, &c->rd) < 0)
        return -1;
    int err = 0;
    sluice_poll r;
    while ((r = sluice_http_read_request(c->rd, NULL, &c->req, c->hdrs, 8, &c->head, &err)) ==
           SLUICE_PENDING) {
        sluice_interest w;
        sluice_reader_ready(c->rd, &w);
        wait_interest(&w);
    }
    sluice_http_framing f;
    if (r != SLUICE_READY || sluice_http_request_framing(&c->req, &f) < 0)
        return -1;
    return sluice_body_new(T_POOL, c->rd, &f, NULL, &c->body);
}

static void conn_close(conn *c)
{
    sluice_stream_close(c->body);
    sluice_bytes_release(&c->head);
    sluice_reader_close(c->rd);
    sluice_io_close(c->io);
    pthread_join(c->peer, NULL);
    close(c->sv[0]);
    close(c->sv[1]);
}

/* Connection B, stepped by the loop while a worker holds A's part: pulls
 * until PENDING; 1 at the end of its body. */
typedef struct side_job {
    conn *c;
    sluice_sha256_ctx sha;
    size_t len;
    int done, rc;
} side_job;

static void side_step(side_job *j)
{
    sluice_bytes b;
    sluice_poll r;
    while (!j->done && (r = sluice_stream_poll_next(j->c->body, &b)) != SLUICE_PENDING) {
        if (r == SLUICE_READY) {
            sluice_sha256_update(&j->sha, b.data, b.len);
            j->len += b.len;
            sluice_bytes_release(&b);
        } else {
            j->done = 1;
            j->rc = r == SLUICE_EOF ? 0 : sluice_stream_error(j->c->body, NULL);
        }
    }
}

/* Runs a worker on part and steps B until the worker says it is done. */
static void hand_over(sluice_stream *part, side_job *side, worker *wk, int notify[2])
{
    pthread_t t;
    *wk = (worker){.part = part, .notify = notify[1]};
    if (pthread_create(&t, NULL, worker_main, wk) != 0) {
        harness_fail(__FILE__, __LINE__, "pthread_create");
        return;
    }
    for (;;) {
        sluice_interest w = {-1, 0, -1};
        side_step(side);
        if (!side->done)
            sluice_stream_ready(side->c->body, &w);
        struct pollfd p[2] = {{notify[0], POLLIN, 0}, {w.fd, POLLIN, 0}};
        poll(p, w.fd >= 0 ? 2 : 1, 5000);
        char x;
        if ((p[0].revents & POLLIN) && read(notify[0], &x, 1) == 1)
            break;
    }
    pthread_join(t, NULL);
}

static unsigned char *random_bytes(size_t n, unsigned long long seed)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)t_rand(&seed);
    return p;
}

/* The multipart request of NPARTS parts (sizes[i] random bytes each). */
static unsigned char *multipart_request(const size_t *sizes, unsigned char **data, size_t *len)
{
    size_t cap = 4096, body = 0;
    for (int i = 0; i < NPARTS; i++)
        cap += sizes[i] + 200;
    unsigned char *req = malloc(cap), *p = req + 1024;
    for (int i = 0; i < NPARTS; i++) {
        p += sprintf((char *)p, "--xyz\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\n", i);
        memcpy(p, data[i], sizes[i]);
        p += sizes[i];
        p += sprintf((char *)p, "\r\n");
    }
    p += sprintf((char *)p, "--xyz--\r\n");
    body = (size_t)(p - (req + 1024));
    char head[256];
    int hl = snprintf(head, sizeof head, "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n"
                      "Content-Type: multipart/form-data; boundary=xyz\r\n\r\n", body);
    memmove(req + hl, req + 1024, body);
    memcpy(req, head, (size_t)hl);
    *len = (size_t)hl + body;
    return req;
}

TEST(threads_parts_pulled_on_a_worker_while_the_loop_goes_on)
{
    size_t sizes[NPARTS] = {300000, 1, 2u << 20};
    unsigned char *data[NPARTS];
    for (int i = 0; i < NPARTS; i++)
        data[i] = random_bytes(sizes[i], 100 + (unsigned long long)i);
    size_t alen, blen = 3u << 20;
    unsigned char *areq = multipart_request(sizes, data, &alen);
    unsigned char *bbody = random_bytes(blen, 7);
    unsigned char *breq = malloc(blen + 128);
    int bh = sprintf((char *)breq, "PUT /b HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", blen);
    memcpy(breq + bh, bbody, blen);

    conn a, b;
    int notify[2];
    REQUIRE(pipe(notify) == 0);
    REQUIRE(conn_open(&a, areq, alen) == 0);
    REQUIRE(conn_open(&b, breq, (size_t)bh + blen) == 0);
    side_job side = {.c = &b};
    sluice_sha256_init(&side.sha);

    sluice_multipart *m;
    REQUIRE(sluice_multipart_new(T_POOL, a.body, "xyz", 3, NULL, &m) == 0);
    a.body = NULL; /* the splitter owns it now */
    for (int i = 0; i < NPARTS; i++) {
        sluice_stream *part;
        sluice_poll r;
        while ((r = sluice_multipart_next(m, &part)) == SLUICE_PENDING) {
            sluice_interest w;
            sluice_multipart_ready(m, &w);
            wait_interest(&w);
        }
        REQUIRE(r == SLUICE_READY);
        if (i == NPARTS - 1) {
            sluice_multipart_close(m); /* the worker's close will be the last */
            m = NULL;
        }
        worker wk;
        hand_over(part, &side, &wk, notify);
        unsigned char want[32];
        sluice_sha256(data[i], sizes[i], want);
        EXPECT_ERR(wk.rc, 0);
        EXPECT_EQ(wk.len, sizes[i]);
        EXPECT_MEM(wk.digest, 32, want, 32);
    }
    while (!side.done) {
        sluice_interest w;
        side_step(&side);
        sluice_stream_ready(b.body, &w);
        if (!side.done)
            wait_interest(&w);
    }
    unsigned char got[32], want[32];
    sluice_sha256_final(&side.sha, got);
    sluice_sha256(bbody, blen, want);
    EXPECT_ERR(side.rc, 0);
    EXPECT_EQ(side.len, blen);
    EXPECT_MEM(got, 32, want, 32);

    conn_close(&a);
    conn_close(&b);
    close(notify[0]);
    close(notify[1]);
    for (int i = 0; i < NPARTS; i++)
        free(data[i]);
    free(areq), free(breq), free(bbody);
}
