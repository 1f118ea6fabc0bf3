/*
 * sluice-proxy — streams request bodies (or one multipart field) from
 * clients into requests to an upstream, without holding them whole.
 *
 *   sluice-proxy --listen HOST:PORT --upstream HOST:PORT
 *                (or --s3 http://HOST:PORT/BUCKET[/PREFIX]: S3 mode)
 *                [--extract FIELD] [--mode stream|buffer] [--digest]
 *                [--max-header-bytes N] [--max-body-bytes N] [--timeout-ms N]
 *                [--workers N] [--underscores-in-headers]
 *                [--upstream-keepalive N] [--upstream-idle-ms MS]
 *
 * One epoll loop per process (examples/server.h); every client connection is
 * the state machine below, and owns everything it uses:
 *
 *   HEAD      read and check the request head (reader + parser)
 *   FIND      extract mode: split the multipart body until FIELD's part
 *   BUFFER    buffer mode: read the whole body into memory
 *   CONNECT   an idle upstream connection from the worker's pool, else a
 *             non-blocking connect (docs/proxy.md, "Upstream connections")
 *   EXCHANGE  two pumps: request body -> upstream writer, and, once the
 *             upstream's head arrived, response body -> client writer
 *   STORE     S3 mode, PUT/POST: the body pumped into the S3 upload sink
 *             (examples/proxy/s3_mode.c), then a JSON answer; GET/HEAD go
 *             through CONNECT and EXCHANGE with the store as upstream
 *   CLOSING   a reply pump: the proxy's own response (errors, 417, ...), or
 *             nothing after a relayed answer that came before the request
 *             body ended; then the write side is shut and what the client
 *             still sends is drained for a moment (bounded in time and
 *             bytes), so the answer is not lost to a TCP reset
 *
 * The body path in stream mode is: socket reader -> body stream (length or
 * chunked decoder) [-> multipart splitter -> the field's part] -> tap (byte
 * count, SHA-256, image sniff) -> pump -> chunked or length writer -> the
 * upstream socket. Every byte is read once into a pool block and written
 * once from it.
 */
#include "common/http_util.h"
#include "common/net.h"
#include "common/server.h"
#include "common/upstream.h"
#include "proxy/s3_mode.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_HEADERS 256 /* fields per head; more is 431, like an over-long head */
/* Fields a head may have before its array is grown to MAX_HEADERS: most heads
 * have a dozen, and a request's memory is what 10,000 connections multiply. */
#define FEW_HEADERS 32
#define DEFAULT_MAX_MEMORY (16u << 20) /* 256 concurrent uploads in ~32 MiB */
#define PROXY_SPARE_BLOCKS 128           /* free blocks the pool keeps for reuse */
#define PROXY_SPARE_REQUESTS 64          /* request states kept for reuse */
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_UPSTREAM_KEEPALIVE 64     /* idle upstream connections kept per worker */
#define DEFAULT_UPSTREAM_IDLE_MS 60000    /* ... for at most this long */
#define STATE_STEPS 1000 /* state changes per drive(): a bound, never reached in practice */
/* descriptors a request opens besides the client's: the upstream socket and
 * splice's pipe pair; accepting pauses while fewer than this are left */
#define PROXY_FDS_PER_REQUEST 3

/* ---- configuration ------------------------------------------------------- */

typedef struct config {
    net_addr listen, upstream;
    const char *extract;       /* NULL: passthrough; "*": first file part */
    int buffer_mode;
    int digest;
    size_t max_head;
    uint64_t max_body;         /* 0: no limit */
    uint32_t timeout_ms;
    int workers;
    int no_splice;             /* --no-splice: passthrough by copy too */
    size_t max_memory;         /* --max-memory: the pool's budget, bytes */
    int underscores;           /* --underscores-in-headers: forward fields
                                  with '_' in their names (dropped otherwise) */
    size_t keepalive;          /* --upstream-keepalive: idle connections kept */
    uint32_t upstream_idle_ms; /* --upstream-idle-ms */
    s3_mode s3;                /* --s3: bodies stored as objects */
} config;

struct request_mem;

typedef struct proxy {
    srv srv;
    config cfg;
    sluice_pool *pool;
    upstream_pool ups;         /* idle upstream connections of this worker */
    /* request states of finished requests, for the next ones: about 3 KiB
     * each, past malloc's per-thread cache, and one per request */
    struct request_mem *spare_m[PROXY_SPARE_REQUESTS];
    size_t nspare_m;
} proxy;

/* ---- a connection --------------------------------------------------------- */

/*
 * The bulky part of a request, allocated when its first byte arrives and
 * freed when it ends: an idle keep-alive connection is only the struct
 * below (about 400 bytes) and a reader that holds no block.
 */
typedef struct request_mem {
    sluice_bytes head;                     /* keeps req's spans valid */
    sluice_http_request req;
    sluice_http_framing framing;
    sluice_pump req_pump;                  /* request body -> upstream */
    sluice_bytes uhead;                    /* the head sent upstream, kept until
                                              the response head for a replay */
    sluice_bytes rhead;                    /* keeps res's spans valid */
    sluice_http_response res;
    sluice_pump res_pump;                  /* response body -> client */
    sluice_pump closing;                   /* S_CLOSING: answer, shut, drain */
    uint64_t closing_len;                  /* its answer's bytes (log once out) */
    char method[32], target[256];          /* for the log line */
    sluice_sha256_ctx sha;
    sluice_sniff sniff;
    enum { S3_NONE, S3_STORE, S3_READ } s3; /* S3 mode: PUT/POST, GET/HEAD */
    int s3_key_len;
    int64_t s3_wait_end;                   /* waiting for a part slot until */
    char s3_key[S3_MODE_MAX_KEY + 1];
    /* The request's fields, then the upstream response's (the request's
     * spans die with `head` once the upstream head is built: step_connect):
     * `few` until a head has more (more_fields), then MAX_HEADERS from
     * the heap, freed with the request. */
    sluice_http_header *hdrs;
    size_t hdrs_cap;
    /* Last and not zeroed: the parsers fill what they use. */
    sluice_http_header few[FEW_HEADERS];
} request_mem;

enum state { S_HEAD, S_FIND, S_BUFFER, S_CONNECT, S_EXCHANGE, S_STORE, S_CLOSING };

typedef struct conn {
    http_conn hc;               /* first: socket, io, reader */
    proxy *px;
    enum state state;

    /* the request */
    struct request_mem *m;               /* NULL between requests */
    int64_t t_start;                     /* idle since / the request's first byte */
    int keep_alive, expect_continue;

    /* the request body pipeline */
    sluice_stream *body;                 /* over crd; owned until handed on */
    sluice_multipart *mp;
    sluice_stream *src;                  /* what is pumped upstream */
    uint64_t received;                   /* body bytes from the client */
    char *part_type;                     /* extract: the part's Content-Type,
                                            copied (the part may go first) */
    size_t part_type_len;
    sluice_sink *buf;                    /* buffer mode: the whole body */

    /* upstream side */
    int ufd;
    sluice_io *uio;
    sluice_reader *urd;
    sluice_sink *usink;
    int spliced;                         /* req_pump is a splice pump (CL passthrough) */
    int res_spliced;                     /* res_pump is one */
    int reused;                          /* ufd came from the pool */
    int retried;                         /* the request was replayed once already */
    int up_keep;                         /* the final response's head allows reuse */
    int req_done, req_failed;
    int64_t up_deadline;                 /* idle gap while waiting on upstream */

    /* the response */
    sluice_stream *rbody;
    sluice_sink *csink;                  /* to the client */
    int res_started, res_done, close_after;
    int logged;                          /* the request's log line is out */
    int status;

    /* interim responses (100 Continue, 1xx) */
    sluice_sink *interim;

    s3_upload *store;                    /* S3 mode: the body's upload */
} conn;

static void conn_reset_request(conn *c);
static void release_upstream(conn *c, int keep);
static void drop_upstream(conn *c);
static int drive(srv_conn *sc);

/* ---- small helpers -------------------------------------------------------- */

/* v in decimal at out (room for 20 digits, no NUL); returns the length. */
static size_t decimal(char *out, uint64_t v)
{
    char d[20];
    size_t i = sizeof d;
    do
        d[--i] = (char)('0' + v % 10);
    while (v /= 10);
    memcpy(out, d + i, sizeof d - i);
    return sizeof d - i;
}

static inline int eq_ci(const char *a, size_t alen, const char *b)
{
    size_t bl = strlen(b);
    if (alen != bl)
        return 0;
    for (size_t i = 0; i < bl; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

/* A request's state, zeroed up to its field array: a finished one kept by
 * the worker, or a new one. NULL when out of memory. */
static request_mem *request_mem_take(proxy *px)
{
    request_mem *m = px->nspare_m ? px->spare_m[--px->nspare_m] : malloc(sizeof *m);
    if (!m)
        return NULL;
    memset(m, 0, offsetof(request_mem, few));
    m->hdrs = m->few;
    m->hdrs_cap = FEW_HEADERS;
    return m;
}

/* Back to the worker's spares (freed when they are full). NULL: nothing. */
static void request_mem_give(proxy *px, request_mem *m)
{
    if (!m)
        return;
    if (m->hdrs != m->few)
        free(m->hdrs);
    if (px->nspare_m < PROXY_SPARE_REQUESTS)
        px->spare_m[px->nspare_m++] = m;
    else
        free(m);
}

/* A head refused for having more fields than the small array holds: the
 * array becomes MAX_HEADERS long, and the head is read again (a reader keeps
 * the bytes of a head it refused). True when it should be. */
static int more_fields(request_mem *m, sluice_poll r, int err)
{
    if (r != SLUICE_ERROR || err != SLUICE_ETOO_MANY_HEADERS || m->hdrs_cap == MAX_HEADERS)
        return 0;
    sluice_http_header *h = malloc(MAX_HEADERS * sizeof *h);
    if (!h)
        return 0; /* answered as too many: 431 */
    m->hdrs = h;
    m->hdrs_cap = MAX_HEADERS;
    return 1;
}

static void copy_span(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* Taps: what the client sent is counted on the raw body; what goes upstream
 * is hashed (--digest) and sniffed (--extract). In passthrough both are the
 * same bytes, so one tap does both. */
static void tap_received(void *ud, const sluice_bytes *chunk)
{
    ((conn *)ud)->received += chunk->len;
}

static void tap_request(void *ud, const sluice_bytes *chunk)
{
    conn *c = ud;
    if (c->px->cfg.digest)
        sluice_sha256_update(&c->m->sha, chunk->data, chunk->len);
    if (c->px->cfg.extract || c->px->cfg.s3.on)
        sluice_sniff_feed(&c->m->sniff, chunk->data, chunk->len);
}

static void tap_passthrough(void *ud, const sluice_bytes *chunk)
{
    tap_received(ud, chunk);
    tap_request(ud, chunk);
}

/* The request body goes upstream through req_pump: a splice pump when it is
 * a Content-Length passthrough that nothing looks at (no tap counts it). */
static sluice_pump_status req_step(conn *c, sluice_interest *w)
{
    sluice_pump_status st = sluice_pump_step(&c->m->req_pump, w);
    if (c->spliced)
        c->received = sluice_pump_moved(&c->m->req_pump);
    return st;
}

static uint64_t req_moved(const conn *c)
{
    return c->m ? sluice_pump_moved(&c->m->req_pump) : 0;
}

static void log_request(conn *c)
{
    if (c->logged || !c->m || (!c->m->method[0] && !c->status))
        return;
    c->logged = 1;
    int64_t ms = sluice_now_ms() - c->t_start;
    /* "METHOD TARGET STATUS BYTES MS", put together by hand: one per
     * request, and vsnprintf cost more than the rest of the request's
     * user-space work together */
    char line[sizeof c->m->method + sizeof c->m->target + 3 * 20 + 4], *p = line;
    const char *method = c->m->method[0] ? c->m->method : "-";
    const char *target = c->m->target[0] ? c->m->target : "-";
    size_t n = strlen(method);
    memcpy(p, method, n), p += n, *p++ = ' ';
    n = strlen(target);
    memcpy(p, target, n), p += n, *p++ = ' ';
    p += decimal(p, (uint64_t)(c->status > 0 ? c->status : 0)), *p++ = ' ';
    p += decimal(p, c->received), *p++ = ' ';
    p += decimal(p, (uint64_t)(ms > 0 ? ms : 0));
    srv_log_line(&c->px->srv, line, (size_t)(p - line));
}

/* ---- replies from the proxy itself --------------------------------------- */

/*
 * Ends the exchange with a lingering close: writes `answer` (may be empty:
 * a relayed response already went out), shuts the write side and drains
 * what the client still sends (up to 64 MiB or 2 s, sluice_reply_config's
 * defaults), so that closing does not reset the answer away. The upstream
 * connection, if any, is closed at once. Takes the reference in *answer.
 * Returns 0, or -1 (close now).
 */
static int start_closing(conn *c, sluice_bytes *answer)
{
    drop_upstream(c);
    sluice_sink_close(c->csink);
    c->csink = NULL;
    c->close_after = 1;
    c->m->closing_len = answer->len;
    if (sluice_pump_reply_init(&c->m->closing, c->px->pool, c->hc.io, c->hc.rd, answer,
                               NULL) < 0)
        return -1;
    c->state = S_CLOSING;
    return 0;
}

/* The proxy's own response (`status`, a one-line text body,
 * Connection: close), then the lingering close. Returns 0, or -1 when even
 * that failed (close now). */
static int reply(conn *c, int status)
{
    sluice_bytes h, answer;
    char msg[64], buf[512];
    int n = snprintf(msg, sizeof msg, "%d %s\n", status, sluice_http_reason_phrase(status));
    c->status = status;
    if (http_simple_head(c->px->pool, status, "text/plain", (size_t)n, 0, &h) < 0)
        return -1;
    size_t hl = h.len;
    int fits = hl + (size_t)n <= sizeof buf;
    if (fits) {
        memcpy(buf, h.data, hl);
        memcpy(buf + hl, msg, (size_t)n);
    }
    sluice_bytes_release(&h);
    if (!fits || sluice_bytes_copy_from(c->px->pool, buf, hl + (size_t)n, &answer) < 0)
        return -1;
    return start_closing(c, &answer);
}

/* Error reply and close, unless the response to the client already started:
 * then only close. */
static int fail_request(conn *c, int status)
{
    if (c->res_started || status == 0) {
        if (!c->status)
            c->status = status ? status : 499;
        return -1;
    }
    return reply(c, status);
}

/* ---- the request head ----------------------------------------------------- */

static int is_proxy_header(const sluice_http_header *h)
{
    return h->name_len >= 6 && eq_ci(h->name, 6, "proxy-");
}

/* A name with '_' is valid HTTP, but CGI-style back-ends (CGI, WSGI, Rack,
 * PHP) map '-' to '_', so "Content_Length" would read there as the
 * Content-Length the proxy checked and "X_User" could shadow an "X-User" it
 * set: such fields are dropped unless --underscores-in-headers (nginx's
 * underscores_in_headers, Apache's default since 2.4). */
static int has_underscore(const sluice_http_header *h)
{
    return memchr(h->name, '_', h->name_len) != NULL;
}

/* S3 mode: what the request does (PUT/POST store the body, GET/HEAD read
 * the object back) and which object it names. Returns 0 to go on, or the
 * status to answer. */
static int s3_request(conn *c)
{
    const sluice_http_request *rq = &c->m->req;
    const sluice_http_framing *f = &c->m->framing;
    if ((rq->method_len == 3 && memcmp(rq->method, "PUT", 3) == 0) ||
        (rq->method_len == 4 && memcmp(rq->method, "POST", 4) == 0)) {
        c->m->s3 = S3_STORE;
    } else if ((rq->method_len == 3 && memcmp(rq->method, "GET", 3) == 0) ||
               (rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0)) {
        /* the request is signed for an empty payload: a body would not be */
        if (f->body == SLUICE_HTTP_BODY_CHUNKED ||
            (f->body == SLUICE_HTTP_BODY_LENGTH && f->length > 0))
            return 400;
        c->m->s3 = S3_READ;
    } else {
        return 405;
    }
    int n = s3_mode_key(&c->px->cfg.s3, rq->target, rq->target_len, c->m->s3_key);
    if (n < 0)
        return 400;
    c->m->s3_key_len = n;
    return 0;
}

/* Where a request goes once its body stream is ready. */
static enum state body_ready(const conn *c)
{
    return c->m->s3 == S3_STORE ? S_STORE : S_CONNECT;
}

/* Checks the request and decides what happens next. */
static int start_request(conn *c)
{
    proxy *px = c->px;
    sluice_http_request *rq = &c->m->req;
    copy_span(c->m->method, sizeof c->m->method, rq->method, rq->method_len);
    copy_span(c->m->target, sizeof c->m->target, rq->target, rq->target_len);
    c->keep_alive = sluice_http_request_keep_alive(rq);

    /* methods are case-sensitive: only these exact tokens are refused */
    if ((rq->method_len == 7 && memcmp(rq->method, "CONNECT", 7) == 0) ||
        (rq->method_len == 5 && memcmp(rq->method, "TRACE", 5) == 0))
        return reply(c, 405);
    int rc = sluice_http_request_check_target(rq);
    if (rc < 0)
        return reply(c, 400);
    rc = sluice_http_request_host(rq, NULL, NULL);
    if (rc < 0)
        return reply(c, 400);
    rc = sluice_http_request_framing(rq, &c->m->framing);
    if (rc < 0)
        return reply(c, 400);
    sluice_http_expect ex = sluice_http_request_expect(rq);
    if (ex == SLUICE_HTTP_EXPECT_OTHER)
        return reply(c, 417);
    if (c->m->framing.body == SLUICE_HTTP_BODY_LENGTH && px->cfg.max_body &&
        c->m->framing.length > px->cfg.max_body)
        return reply(c, 413);
    if (px->cfg.s3.on && (rc = s3_request(c)) != 0)
        return rc < 0 ? rc : reply(c, rc);

    if (px->cfg.extract && c->m->s3 != S3_READ) {
        const sluice_http_header *ct = sluice_http_header_find(rq->headers, rq->num_headers,
                                                               "Content-Type");
        char boundary[SLUICE_MULTIPART_BOUNDARY_MAX + 1];
        int bl = ct ? sluice_multipart_boundary(ct->value, ct->value_len, boundary)
                    : SLUICE_ENOT_MULTIPART;
        if (bl == SLUICE_ENOT_MULTIPART || c->m->framing.body == SLUICE_HTTP_BODY_NONE)
            return reply(c, 415);
        if (bl < 0)
            return reply(c, 400);
        /* fallthrough: the body stream is made below, the splitter after it */
        c->expect_continue = ex == SLUICE_HTTP_EXPECT_CONTINUE;
        int r = 0;
        sluice_body_config bc = {.max_body = px->cfg.max_body,
                                 .max_trailer_bytes = px->cfg.max_head,
                                 .idle_timeout_ms = px->cfg.timeout_ms};
        sluice_stream *raw;
        if (sluice_body_new(px->pool, c->hc.rd, &c->m->framing, &bc, &raw) < 0)
            return -1;
        if (sluice_tap_new(px->pool, raw, tap_received, c, &c->body) < 0)
            return -1;
        sluice_multipart_limits ml = {.max_body_bytes = 0};
        r = sluice_multipart_new(px->pool, c->body, boundary, (size_t)bl, &ml, &c->mp);
        c->body = NULL; /* owned by the splitter now, also on error */
        if (r < 0)
            return -1;
        c->state = S_FIND;
    } else {
        c->expect_continue = ex == SLUICE_HTTP_EXPECT_CONTINUE &&
                             c->m->framing.body != SLUICE_HTTP_BODY_NONE;
        if (c->m->framing.body != SLUICE_HTTP_BODY_NONE) {
            sluice_body_config bc = {.max_body = px->cfg.max_body,
                                     .max_trailer_bytes = px->cfg.max_head,
                                     .idle_timeout_ms = px->cfg.timeout_ms};
            sluice_stream *raw;
            if (sluice_body_new(px->pool, c->hc.rd, &c->m->framing, &bc, &raw) < 0 ||
                sluice_tap_new(px->pool, raw, tap_passthrough, c, &c->src) < 0)
                return -1;
        }
        c->state = px->cfg.buffer_mode && c->src ? S_BUFFER : body_ready(c);
    }
    if (c->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        sluice_bytes h = sluice_bytes_static(cont, sizeof cont - 1);
        if (sluice_writer_new(px->pool, c->hc.io, SLUICE_FRAMING_CLOSE, &h, NULL, &c->interim) < 0)
            return -1;
    }
    return 0;
}

/* ---- extract mode: the field's stream ------------------------------------- */

/*
 * The part's data, then the rest of the multipart body drained and checked:
 * EOF only once the closing delimiter of the whole body was seen, so the
 * upstream never receives a terminating zero chunk for a truncated upload.
 */
typedef struct field_stream {
    sluice_stream base;
    sluice_stream *part;
    sluice_multipart *mp;
} field_stream;

static sluice_poll field_poll(sluice_stream *s, sluice_bytes *out)
{
    field_stream *f = (field_stream *)s;
    if (f->part) {
        sluice_poll r = sluice_stream_poll_next(f->part, out);
        if (r != SLUICE_EOF) {
            if (r == SLUICE_ERROR)
                return sluice_stream_fail(s, sluice_stream_error(f->part, NULL), NULL, 0);
            return r;
        }
        sluice_stream_close(f->part);
        f->part = NULL;
    }
    for (;;) {
        sluice_stream *next;
        sluice_poll r = sluice_multipart_next(f->mp, &next);
        if (r == SLUICE_READY) {
            sluice_stream_close(next); /* other parts are read and dropped */
            continue;
        }
        if (r == SLUICE_ERROR)
            return sluice_stream_fail(s, sluice_multipart_error(f->mp, NULL), NULL, 0);
        return r;
    }
}

static void field_ready(sluice_stream *s, sluice_interest *want)
{
    field_stream *f = (field_stream *)s;
    if (f->part)
        sluice_stream_ready(f->part, want);
    else
        sluice_multipart_ready(f->mp, want);
}

static void field_close(sluice_stream *s)
{
    field_stream *f = (field_stream *)s;
    sluice_stream_close(f->part);
    sluice_multipart_close(f->mp);
    sluice_pool_object_free(s->pool, f, sizeof *f);
}

static const sluice_stream_vtable field_vt = {"field", field_poll, field_ready, field_close};

/* Looks for the field; on success the pipeline to pump is ready. */
static int step_find(conn *c)
{
    sluice_stream *part;
    const char *name = strcmp(c->px->cfg.extract, "*") == 0 ? NULL : c->px->cfg.extract;
    sluice_poll r = sluice_multipart_find(c->mp, name, name ? strlen(name) : 0, &part);
    if (r == SLUICE_PENDING) {
        sluice_interest w;
        sluice_multipart_ready(c->mp, &w);
        srv_watch(&c->hc.base, &w);
        return 1; /* waiting */
    }
    if (r == SLUICE_EOF)
        return fail_request(c, 400); /* no such part */
    if (r == SLUICE_ERROR)
        return fail_request(c, sluice_http_error_status(
                                   sluice_multipart_error(c->mp, NULL)));
    const sluice_part *p = sluice_multipart_info(part);
    if (p->content_type) {
        c->part_type = malloc(p->content_type_len + 1);
        if (!c->part_type) {
            sluice_stream_close(part);
            return -1;
        }
        memcpy(c->part_type, p->content_type, p->content_type_len + 1);
        c->part_type_len = p->content_type_len;
    }
    field_stream *f = sluice_pool_object_alloc(c->px->pool, sizeof *f);
    if (!f) {
        sluice_stream_close(part);
        return -1;
    }
    memset(f, 0, sizeof *f);
    f->base.vt = &field_vt;
    f->base.pool = c->px->pool;
    f->part = part;
    f->mp = c->mp;
    c->mp = NULL;
    if (sluice_tap_new(c->px->pool, &f->base, tap_request, c, &c->src) < 0)
        return -1;
    /* the part's length is unknown until its delimiter: chunked upstream
     * (buffer mode replaces this with the length it counted) */
    c->m->framing.body = SLUICE_HTTP_BODY_CHUNKED;
    c->m->framing.length = 0;
    c->state = c->px->cfg.buffer_mode ? S_BUFFER : body_ready(c);
    return 0;
}

/* ---- buffer mode ---------------------------------------------------------- */

static int step_buffer(conn *c)
{
    if (!c->buf) {
        if (sluice_vecsink_new(c->px->pool, &c->buf) < 0)
            return -1;
        sluice_pump_init(&c->m->req_pump, c->src, c->buf,
                         &(sluice_pump_config){.max_inflight = SIZE_MAX});
    }
    sluice_interest w;
    sluice_pump_status st = sluice_pump_step(&c->m->req_pump, &w);
    if (st == SLUICE_PUMP_PENDING) {
        srv_watch(&c->hc.base, &w);
        return 1;
    }
    if (st == SLUICE_PUMP_ERROR)
        return fail_request(c, sluice_http_error_status(
                                   sluice_pump_error(&c->m->req_pump, NULL)));
    /* The whole body is in memory: replace the source by a memory stream of
     * the very same views, framed by Content-Length. */
    const sluice_bytes *ch;
    size_t n;
    sluice_vecsink_chunks(c->buf, &ch, &n);
    sluice_bytes *refs = malloc((n ? n : 1) * sizeof *refs);
    if (!refs)
        return -1;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        refs[i] = sluice_bytes_ref(ch[i]);
        total += ch[i].len;
    }
    sluice_stream *mem;
    int rc = sluice_memstream_new(c->px->pool, refs, n, 0, &mem);
    free(refs);
    sluice_sink_close(c->buf);
    c->buf = NULL;
    if (rc < 0)
        return -1;
    sluice_stream_close(c->src);
    c->src = mem;
    c->m->framing.body = SLUICE_HTTP_BODY_LENGTH;
    c->m->framing.length = total;
    c->state = S_CONNECT;
    return 0;
}

/* ---- upstream ------------------------------------------------------------- */

static int add_hdr(sluice_http_head_builder *b, const char *n, const char *v, size_t vl)
{
    return sluice_http_head_add_header(b, n, strlen(n), v, vl);
}

/* The head sent upstream: same method and target (origin-form), end-to-end
 * headers, our own framing. Extract mode: PUT with the part's type. */
static int build_upstream_head(conn *c, sluice_bytes *out)
{
    proxy *px = c->px;
    sluice_http_request *rq = &c->m->req;
    if (c->m->s3 == S3_READ)
        return s3_mode_object_head(&px->cfg.s3, px->pool, rq, c->m->s3_key,
                                   (size_t)c->m->s3_key_len,
                                   c->m->framing.body == SLUICE_HTTP_BODY_LENGTH ? 0 : -1, out);
    sluice_http_head_builder b;
    sluice_http_head_init(&b, px->pool);
    int extract = px->cfg.extract != NULL;
    if (extract) {
        sluice_http_request put = *rq;
        put.method = "PUT";
        put.method_len = 3;
        sluice_http_head_forward_request_line(&b, &put);
    } else {
        sluice_http_head_forward_request_line(&b, rq);
    }
    const char *host;
    size_t host_len;
    int hv = sluice_http_request_host(rq, &host, &host_len);
    if (rq->form == SLUICE_HTTP_TARGET_ABSOLUTE)
        add_hdr(&b, "Host", rq->authority, rq->authority_len);
    else if (hv == 0)
        add_hdr(&b, "Host", px->cfg.upstream.text, strlen(px->cfg.upstream.text));
    for (size_t i = 0; i < rq->num_headers; i++) {
        const sluice_http_header *h = &rq->headers[i];
        if (sluice_http_header_is_hop_by_hop(rq->headers, rq->num_headers, h) ||
            is_proxy_header(h) || eq_ci(h->name, h->name_len, "Trailer") ||
            eq_ci(h->name, h->name_len, "Expect") ||
            eq_ci(h->name, h->name_len, "Content-Length") ||
            (!px->cfg.underscores && has_underscore(h)))
            continue;
        if (eq_ci(h->name, h->name_len, "Host")) {
            if (rq->form == SLUICE_HTTP_TARGET_ABSOLUTE)
                continue;
        } else if (extract && eq_ci(h->name, h->name_len, "Content-Type")) {
            continue;
        }
        sluice_http_head_add_header(&b, h->name, h->name_len, h->value, h->value_len);
    }
    if (extract) {
        if (c->part_type)
            add_hdr(&b, "Content-Type", c->part_type, c->part_type_len);
        else
            add_hdr(&b, "Content-Type", "application/octet-stream", 24);
    }
    if (c->m->framing.body == SLUICE_HTTP_BODY_CHUNKED)
        add_hdr(&b, "Transfer-Encoding", "chunked", 7);
    else if (c->m->framing.body == SLUICE_HTTP_BODY_LENGTH)
        sluice_http_head_add_content_length(&b, c->m->framing.length);
    return sluice_http_head_finish(&b, out);
}

/* No upstream: 502. Returns 2 (answered: the state changed) or -1. */
static int upstream_failed(conn *c)
{
    return fail_request(c, 502) < 0 ? -1 : 2;
}

/* An upstream connection: an idle one from the pool, else a new one (a
 * replay always takes a new one). Returns 0 when connected, 1 waiting, 2
 * when the request was answered with 502, -1 to close. */
static int upstream_connect(conn *c)
{
    proxy *px = c->px;
    if (c->ufd < 0) {
        c->up_deadline = sluice_now_ms() + px->cfg.timeout_ms;
        c->ufd = c->retried ? -1 : upstream_pool_get(&px->ups, sluice_now_ms(), &c->uio);
        c->reused = c->ufd >= 0;
        if (c->reused)
            return 0;
        c->ufd = net_connect(&px->cfg.upstream);
        if (c->ufd < 0)
            return upstream_failed(c);
        srv_unpark(&px->srv, c->ufd); /* a new fd: nothing parked under its number */
    } else if (c->reused) {
        return 0;
    }
    /* a refused connect is reported at once; wait for writability otherwise */
    struct pollfd pfd = {c->ufd, POLLOUT, 0};
    if (poll(&pfd, 1, 0) == 0) {
        if (sluice_now_ms() >= c->up_deadline)
            return upstream_failed(c);
        sluice_interest w = {c->ufd, SLUICE_WANT_WRITE, c->up_deadline};
        srv_watch(&c->hc.base, &w);
        return 1;
    }
    return net_connect_result(c->ufd) < 0 ? upstream_failed(c) : 0;
}

static int step_connect(conn *c)
{
    proxy *px = c->px;
    int rc = upstream_connect(c);
    if (rc != 0)
        return rc == 2 ? 0 : rc;
    sluice_bytes head;
    if ((!c->uio && sluice_io_fd_new(px->pool, c->ufd, 0, &c->uio) < 0) ||
        sluice_reader_new(px->pool, c->uio,
                          &(sluice_reader_config){.wake_token = &c->hc.base}, &c->urd) < 0)
        return fail_request(c, 502);
    /* the head is built once: a replay sends the same bytes (the request's
     * spans die with c->m->head, released below) */
    if (!c->m->uhead.data && build_upstream_head(c, &c->m->uhead) < 0)
        return fail_request(c, 502);
    head = sluice_bytes_ref(c->m->uhead);
    sluice_writer_config wc = {.idle_timeout_ms = px->cfg.timeout_ms};
    /* a body nothing looks at (no digest, no part to find) is spliced:
     * Content-Length whole, chunked chunk by chunk (its framing is still
     * read and checked in user space, with the same limits) */
    if (c->src && !px->cfg.extract && !px->cfg.buffer_mode && !px->cfg.digest &&
        !px->cfg.no_splice && (c->m->framing.body == SLUICE_HTTP_BODY_LENGTH ||
                               c->m->framing.body == SLUICE_HTTP_BODY_CHUNKED)) {
        sluice_splice_config sc = {.idle_timeout_ms = px->cfg.timeout_ms,
                                   .body = {.max_body = px->cfg.max_body,
                                            .max_trailer_bytes = px->cfg.max_head}};
        if (sluice_pump_splice_init(&c->m->req_pump, px->pool, c->hc.rd, c->uio,
                                    &c->m->framing, &head, &sc) < 0)
            return -1;
        c->spliced = 1;
        sluice_bytes_release(&c->m->head);
        c->state = S_EXCHANGE;
        c->up_deadline = sluice_now_ms() + px->cfg.timeout_ms;
        return 0;
    }
    /* no body: the head alone */
    if (sluice_writer_new(px->pool, c->uio, c->src ? &c->m->framing : SLUICE_FRAMING_NONE, &head,
                          &wc, &c->usink) < 0)
        return -1;
    /* the head went into the upstream head: let go of the block it pins
     * (c->m->method and c->m->req's integers are all that is used later) */
    sluice_bytes_release(&c->m->head);
    if (!c->src && sluice_memstream_new(px->pool, NULL, 0, 0, &c->src) < 0)
        return -1;
    sluice_pump_init(&c->m->req_pump, c->src, c->usink, NULL);
    c->state = S_EXCHANGE;
    c->up_deadline = sluice_now_ms() + px->cfg.timeout_ms;
    return 0;
}

/* ---- the response --------------------------------------------------------- */

/*
 * What the proxy does with the upstream's response head: 0 relay it, 1 drop
 * it (a 1xx for an HTTP/1.0 client, RFC 9110 section 15.2: read and
 * discarded, the final response follows), -1 answer 502 instead:
 *   - a 101: the proxy never forwards Upgrade, so the upstream cannot have
 *     been asked to switch protocols;
 *   - a transfer coding other than chunked: the proxy forwards no TE, so
 *     the upstream may not use one (RFC 9110 section 10.1.4), nothing here
 *     can decode it, and HTTP/1.0 clients could not even be told about it;
 *   - a head whose framing is faulty (sluice_http_response_framing).
 */
static int classify_response(conn *c, sluice_http_framing *f)
{
    const sluice_http_response *rs = &c->m->res;
    if (sluice_http_response_framing(rs, c->m->method, strlen(c->m->method), f) < 0)
        return -1;
    if (rs->status == 101)
        return -1;
    if (f->body == SLUICE_HTTP_BODY_CLOSE &&
        sluice_http_header_find(rs->headers, rs->num_headers, "Transfer-Encoding"))
        return -1;
    if (rs->status < 200 && c->m->req.minor_version == 0)
        return 1;
    return 0;
}

/* Our own headers on a final response: body bytes, digest, image, framing,
 * connection. */
static void add_final_headers(conn *c, sluice_http_head_builder *b, const sluice_http_framing *f,
                              int chunked)
{
    proxy *px = c->px;
    char num[20];
    size_t nl = decimal(num, req_moved(c));
    add_hdr(b, "Sluice-Body-Bytes", num, nl);
    if (px->cfg.digest && c->req_done && !c->req_failed) {
        unsigned char d[SLUICE_SHA256_SIZE];
        char hex[SLUICE_SHA256_SIZE * 2 + 1];
        sluice_sha256_ctx copy = c->m->sha;
        sluice_sha256_final(&copy, d);
        sluice_sha256_hex(d, hex);
        add_hdr(b, "Sluice-Body-SHA256", hex, SLUICE_SHA256_SIZE * 2);
    }
    if (px->cfg.extract && c->m->sniff.state == SLUICE_SNIFF_FOUND) {
        char img[64];
        int n = sluice_sniff_format(&c->m->sniff, img, sizeof img);
        if (n > 0)
            add_hdr(b, "Sluice-Image", img, (size_t)n);
    }
    if (f->body == SLUICE_HTTP_BODY_LENGTH)
        sluice_http_head_add_content_length(b, f->length);
    else if (chunked)
        add_hdr(b, "Transfer-Encoding", "chunked", 7);
    if (c->close_after)
        add_hdr(b, "Connection", "close", 5);
    else if (c->m->req.minor_version == 0)
        add_hdr(b, "Connection", "keep-alive", 10);
}

/* The head relayed to the client: the upstream's status and end-to-end
 * headers, our own framing, and for a final response our headers. */
static int build_response_head(conn *c, const sluice_http_framing *f, int chunked,
                               sluice_bytes *out)
{
    sluice_http_response *rs = &c->m->res;
    int interim = rs->status < 200;
    sluice_http_head_builder b;
    sluice_http_head_init(&b, c->px->pool);
    sluice_http_head_status_line(&b, rs->status, rs->reason, rs->reason_len);
    for (size_t i = 0; i < rs->num_headers; i++) {
        const sluice_http_header *h = &rs->headers[i];
        if (sluice_http_header_is_hop_by_hop(rs->headers, rs->num_headers, h) ||
            is_proxy_header(h) || eq_ci(h->name, h->name_len, "Trailer"))
            continue;
        /* our own framing replaces the upstream's; HEAD and 304 keep theirs */
        if (eq_ci(h->name, h->name_len, "Content-Length") &&
            (f->body != SLUICE_HTTP_BODY_NONE || interim || rs->status == 204))
            continue;
        sluice_http_head_add_header(&b, h->name, h->name_len, h->value, h->value_len);
    }
    if (!interim)
        add_final_headers(c, &b, f, chunked);
    return sluice_http_head_finish(&b, out);
}

/* Relays the upstream's head to the client with our headers added, and sets
 * up the response body pump. */
static int start_response(conn *c)
{
    proxy *px = c->px;
    sluice_http_response *rs = &c->m->res;
    sluice_http_framing f;
    int what = classify_response(c, &f);
    if (what < 0)
        return fail_request(c, 502);
    /* the upstream answered: the request is never replayed from here on */
    sluice_bytes_release(&c->m->uhead);
    if (what > 0) {
        sluice_bytes_release(&c->m->rhead);
        return 0;
    }
    int interim = rs->status < 200;
    /* its spans die with rhead: decide about reuse now (the body's end and
     * the request's decide the rest, in exchange_end) */
    if (!interim)
        c->up_keep = rs->minor_version == 1 && sluice_http_response_keep_alive(rs);
    int client10 = c->m->req.minor_version == 0;
    /* HTTP/1.1 clients get chunked coding for a chunked body and for one
     * delimited by the upstream closing; HTTP/1.0 clients know no chunked
     * coding: they get the decoded bytes and the connection's close */
    int open_ended = f.body == SLUICE_HTTP_BODY_CHUNKED || f.body == SLUICE_HTTP_BODY_CLOSE;
    int chunked = open_ended && !client10;
    if (!interim && ((open_ended && client10) || !c->keep_alive || !c->req_done))
        c->close_after = 1;

    sluice_bytes head;
    if (build_response_head(c, &f, chunked, &head) < 0)
        return -1;
    sluice_bytes_release(&c->m->rhead);

    if (interim) { /* relay 1xx as it is and wait for the final response */
        sluice_sink_close(c->interim);
        return sluice_writer_new(px->pool, c->hc.io, SLUICE_FRAMING_CLOSE, &head, NULL, &c->interim) < 0 ? -1 : 0;
    }

    c->res_started = 1;
    c->status = rs->status;
    /* A body framed the same way on both sides moves by splice (its framing
     * still read and checked here, for chunked): nothing looks at response
     * bytes. HTTP/1.0 clients of a chunked body get the decoded bytes. */
    if (!px->cfg.no_splice &&
        (f.body == SLUICE_HTTP_BODY_LENGTH || (f.body == SLUICE_HTTP_BODY_CHUNKED && chunked))) {
        sluice_splice_config sc = {.idle_timeout_ms = px->cfg.timeout_ms};
        c->res_spliced = 1;
        return sluice_pump_splice_init(&c->m->res_pump, px->pool, c->urd, c->hc.io, &f, &head,
                                       &sc) < 0 ? -1 : 0;
    }
    sluice_body_config bc = {.idle_timeout_ms = px->cfg.timeout_ms};
    sluice_writer_config wc = {.idle_timeout_ms = px->cfg.timeout_ms};
    if (sluice_body_new(px->pool, c->urd, &f, &bc, &c->rbody) < 0) {
        sluice_bytes_release(&head);
        return -1;
    }
    /* to the client: chunked as decided above, the length as the upstream
     * framed it, else raw bytes (a head alone, or the decoded bytes of an
     * open-ended body for an HTTP/1.0 client, which end at the close) */
    const sluice_http_framing *cf = chunked                             ? SLUICE_FRAMING_CHUNKED
                                    : f.body == SLUICE_HTTP_BODY_LENGTH ? &f
                                                                        : SLUICE_FRAMING_CLOSE;
    if (sluice_writer_new(px->pool, c->hc.io, cf, &head, &wc, &c->csink) < 0)
        return -1;
    sluice_pump_init(&c->m->res_pump, c->rbody, c->csink, NULL);
    return 0;
}

/*
 * Sends the pending interim response (100 Continue, or a 1xx relayed from
 * the upstream) as far as the socket takes it. Returns -1 if the client is
 * gone; while it is pending, the final response waits behind it.
 */
static int flush_interim(conn *c)
{
    if (!c->interim)
        return 0;
    sluice_poll r = sluice_sink_finish(c->interim);
    if (r == SLUICE_ERROR)
        return -1;
    if (r == SLUICE_PENDING) {
        sluice_interest w;
        sluice_sink_ready(c->interim, &w);
        srv_watch(&c->hc.base, &w);
    } else {
        sluice_sink_close(c->interim);
        c->interim = NULL;
    }
    return 0;
}

/* The request body towards the upstream. Returns 1 to go on, or what
 * step_exchange returns. */
static int exchange_request(conn *c, int64_t now)
{
    sluice_interest w;
    uint64_t before = req_moved(c);
    sluice_pump_status st = req_step(c, &w);
    if (req_moved(c) != before)
        c->up_deadline = now + c->px->cfg.timeout_ms;
    if (st == SLUICE_PUMP_DONE) {
        c->req_done = 1;
        c->up_deadline = now + c->px->cfg.timeout_ms;
        /* its answer cannot be there yet: wait for the upstream to speak
         * instead of a read that finds nothing (exchange_response_head) */
        sluice_reader_idle(c->urd);
    } else if (st == SLUICE_PUMP_PENDING) {
        srv_watch(&c->hc.base, &w);
    } else {
        c->req_failed = 1;
        sluice_side side;
        int code = sluice_pump_error(&c->m->req_pump, &side);
        if (side == SLUICE_SIDE_SOURCE) {
            /* the pump aborted the upstream body: it never looks complete */
            return fail_request(c, sluice_http_error_status(code));
        }
        /* the upstream stopped taking the body: relay its answer if it
         * sent one (below), else 502; the client's body stays unread. An
         * upstream that took nothing for --timeout-ms already had its
         * time: 408 now unless its answer is there. */
        c->close_after = 1;
        c->up_deadline = code == SLUICE_ETIMEDOUT ? now : now + c->px->cfg.timeout_ms;
    }
    return 1;
}

/*
 * Whether a request whose upstream connection failed may go again on a new
 * one (RFC 9110 section 9.2.2): only when the connection came from the
 * pool (the upstream may have closed it while it sat idle, a race no check
 * can close), only once, only when the upstream sent nothing at all, and
 * only when the request can be sent again whole: it has no body (or an
 * empty one), or not one byte of it was taken from the client yet (a
 * spliced body may sit in its pipe: never).
 */
static int may_replay(const conn *c, sluice_poll r, int err)
{
    /* uhead is let go of once any head (1xx too) arrived */
    if (!c->reused || c->retried || !c->m->uhead.data)
        return 0;
    int nothing = r == SLUICE_EOF ||
                  (r == SLUICE_ERROR && (err == -ECONNRESET || err == -EPIPE) &&
                   sluice_reader_available(c->urd) == 0);
    if (!nothing)
        return 0;
    const sluice_http_framing *f = &c->m->framing;
    int empty = f->body == SLUICE_HTTP_BODY_NONE ||
                (f->body == SLUICE_HTTP_BODY_LENGTH && f->length == 0);
    return empty || (!c->spliced && c->received == 0);
}

/* The request again, on a new upstream connection. */
static int replay(conn *c)
{
    drop_upstream(c);
    c->retried = 1;
    c->req_done = c->req_failed = c->close_after = 0;
    c->state = S_CONNECT;
    return 0;
}

/* Whether the upstream reader's last read met an empty socket (not a wait
 * for memory, which no event on the fd ends). */
static int upstream_read_waits(const conn *c)
{
    sluice_interest w;
    sluice_reader_ready(c->urd, &w);
    return w.fd == c->ufd && w.events == SLUICE_WANT_READ;
}

/* Waits for the upstream's response head (1xx ones are relayed or dropped
 * on the way). Returns 1 to go on, or what step_exchange returns. */
static int exchange_response_head(conn *c, int64_t now)
{
    sluice_interest w;
    int err = 0;
    int sent = c->req_done || c->req_failed; /* the upstream's time runs */
    if (sluice_reader_available(c->urd) == 0 && !srv_fired_read(&c->hc.base, c->ufd) &&
        upstream_read_waits(c) && (!sent || now < c->up_deadline)) {
        /* A read now would find nothing: a system call per request (the
         * reader was put idle when the request went out), or per step of a
         * body going up. Wait for the upstream to speak; the loop is
         * level-triggered, so the fd fires on the next turn if bytes are
         * there already. */
        srv_watch(&c->hc.base,
                  &(sluice_interest){c->ufd, SLUICE_WANT_READ, sent ? c->up_deadline : -1});
        return 1;
    }
    sluice_poll r;
    do
        r = sluice_http_read_response(c->urd, NULL, &c->m->res, c->m->hdrs, c->m->hdrs_cap,
                                      &c->m->rhead, &err);
    while (more_fields(c->m, r, err));
    if (r == SLUICE_READY) {
        c->up_deadline = now + c->px->cfg.timeout_ms;
        return start_response(c) < 0 ? -1 : 0;
    }
    if (r != SLUICE_PENDING) /* upstream closed or sent garbage */
        return may_replay(c, r, err) ? replay(c) : fail_request(c, 502);
    sluice_reader_ready(c->urd, &w);
    if (sent) {
        if (now >= c->up_deadline)
            return fail_request(c, 408); /* the contract answers every timeout with 408 */
        w.deadline_ms = c->up_deadline;
    }
    srv_watch(&c->hc.base, &w);
    return 1;
}

/*
 * Whether the upstream connection may carry another client's request: its
 * response ended by its own framing with nothing left over
 * (sluice_body_reusable), both heads allow it, and the request went
 * whole. In doubt, it is closed: a connection out of step with its
 * upstream would hand one client the answer meant for another.
 */
static int upstream_reusable(const conn *c)
{
    if (!c->up_keep || !c->req_done || c->req_failed)
        return 0;
    if (c->res_spliced) /* done: exactly the framed bytes moved */
        return sluice_reader_available(c->urd) == 0 && !sluice_reader_error(c->urd);
    return c->rbody && sluice_body_reusable(c->rbody);
}

/* The response went out. Returns what step_exchange returns. */
static int exchange_end(conn *c)
{
    log_request(c);
    release_upstream(c, upstream_reusable(c));
    if (c->req_done && !c->close_after) {
        conn_reset_request(c);
        return 0;
    }
    /* The client's body did not end (the upstream answered early, or
     * stopped taking it), or bytes of a next request are unread: closing
     * now would reset the answer away. */
    if (!c->req_done || sluice_reader_available(c->hc.rd) > 0) {
        sluice_bytes none = {0};
        return start_closing(c, &none) < 0 ? -1 : 0;
    }
    return -1;
}

/* Both directions of one exchange. Returns 1 waiting, 0 progress, -1 close. */
static int step_exchange(conn *c)
{
    int64_t now = sluice_now_ms();
    int rc;
    if (!c->req_done && !c->req_failed && (rc = exchange_request(c, now)) != 1)
        return rc;
    if (!c->res_started && !c->interim && (rc = exchange_response_head(c, now)) != 1)
        return rc;
    if (c->res_started && !c->res_done) {
        sluice_interest w;
        sluice_pump_status st = sluice_pump_step(&c->m->res_pump, &w);
        if (st == SLUICE_PUMP_PENDING)
            srv_watch(&c->hc.base, &w);
        else if (st == SLUICE_PUMP_ERROR)
            return -1; /* the client writer was aborted: the client sees it */
        else
            c->res_done = 1;
    }
    if (c->res_done)
        return exchange_end(c);
    return 1;
}

/* ---- S3 mode: the body stored as an object ---------------------------------- */

/* The head of the proxy's JSON answer. */
static int json_head(conn *c, int status, size_t len, sluice_bytes *out)
{
    sluice_http_head_builder b;
    sluice_http_head_init(&b, c->px->pool);
    sluice_http_head_status_line(&b, status, NULL, 0);
    add_hdr(&b, "Content-Type", "application/json", 16);
    sluice_http_head_add_content_length(&b, (uint64_t)len);
    if (c->close_after)
        add_hdr(&b, "Connection", "close", 5);
    else if (c->m->req.minor_version == 0)
        add_hdr(&b, "Connection", "keep-alive", 10);
    return sluice_http_head_finish(&b, out);
}

/* Sends the upload's JSON answer (takes *json): a 200 through the response
 * path (the connection stays open), anything else with a lingering close
 * (the client may still be sending). */
static int store_reply(conn *c, int status, sluice_bytes *json)
{
    sluice_bytes head, answer = {0};
    c->status = status;
    c->req_done = status == 200;
    c->close_after = status != 200 || !c->keep_alive;
    int rc = json_head(c, status, json->len, &head);
    if (rc == 0 && c->close_after) {
        char *buf = malloc(head.len + json->len);
        if (buf) {
            memcpy(buf, head.data, head.len);
            memcpy(buf + head.len, json->data, json->len);
            rc = sluice_bytes_copy_from(c->px->pool, buf, head.len + json->len, &answer);
        }
        free(buf);
        sluice_bytes_release(&head);
        sluice_bytes_release(json);
        return !buf || rc < 0 ? -1 : start_closing(c, &answer);
    }
    sluice_http_framing f = {.body = SLUICE_HTTP_BODY_LENGTH, .length = json->len};
    sluice_writer_config wc = {.idle_timeout_ms = c->px->cfg.timeout_ms};
    if (rc < 0 || sluice_writer_new(c->px->pool, c->hc.io, &f, &head, &wc, &c->csink) < 0 ||
        sluice_memstream_new(c->px->pool, json, 1, 0, &c->rbody) < 0) {
        sluice_bytes_release(json);
        return -1;
    }
    sluice_pump_init(&c->m->res_pump, c->rbody, c->csink, NULL);
    c->res_started = 1;
    c->state = S_EXCHANGE;
    return 0;
}

/* An upload of unknown length waits for its turn (its body unread: the
 * client's TCP window closes), checking again every few ms, for
 * --timeout-ms at most: then 503. */
static int store_wait(conn *c)
{
    int64_t now = sluice_now_ms();
    if (!c->m->s3_wait_end)
        c->m->s3_wait_end = now + c->px->cfg.timeout_ms;
    if (now >= c->m->s3_wait_end)
        return fail_request(c, 503);
    sluice_interest w = {-1, 0, now + 10};
    srv_watch(&c->hc.base, &w);
    return 1;
}

/* Pumps the body into the store (s3_mode.c), then answers. */
static int step_store(conn *c)
{
    proxy *px = c->px;
    const sluice_http_request *rq = &c->m->req;
    if (!c->store) {
        const sluice_http_header *ct =
            sluice_http_header_find(rq->headers, rq->num_headers, "Content-Type");
        s3_upload_config uc = {
            .key = c->m->s3_key, .key_len = (size_t)c->m->s3_key_len,
            .length = c->m->framing.body == SLUICE_HTTP_BODY_LENGTH ? (int64_t)c->m->framing.length
                      : c->m->framing.body == SLUICE_HTTP_BODY_NONE ? 0
                                                                    : SLUICE_S3_UNKNOWN_LENGTH,
            .content_type = px->cfg.extract ? c->part_type : ct ? ct->value : NULL,
            .content_type_len = px->cfg.extract ? c->part_type_len : ct ? ct->value_len : 0,
            .timeout_ms = px->cfg.timeout_ms, .conn = &c->hc.base};
        int rc = c->src ? 0 : sluice_memstream_new(px->pool, NULL, 0, 0, &c->src);
        if (rc < 0 || (rc = s3_upload_new(&px->cfg.s3, &uc, c->src, &c->store)) < 0)
            return fail_request(c, 502);
        if (rc == 1) /* as many uploads hold a part as memory allows */
            return store_wait(c);
    }
    sluice_interest w;
    if (s3_upload_step(c->store, &w) == 1) {
        srv_watch(&c->hc.base, &w);
        return 1;
    }
    int status;
    sluice_bytes json;
    sluice_sniff_end(&c->m->sniff);
    if (s3_upload_answer(c->store, &c->m->sniff, &status, &json) < 0)
        return fail_request(c, 500);
    if (!json.len)
        return fail_request(c, status); /* the client's body failed */
    return store_reply(c, status, &json);
}

/* ---- the state machine ---------------------------------------------------- */

static int step_head(conn *c)
{
    proxy *px = c->px;
    if (!c->m) { /* between requests: wait for a first byte, holding nothing */
        int rc = http_conn_await(&c->hc, c->t_start + px->cfg.timeout_ms);
        if (rc != 0)
            return rc;
        if (!(c->m = request_mem_take(px)))
            return -1;
        if (px->cfg.digest)
            sluice_sha256_init(&c->m->sha);
        if (px->cfg.extract || px->cfg.s3.on)
            sluice_sniff_init(&c->m->sniff);
        c->t_start = sluice_now_ms(); /* the request's time, for the log */
    }
    /* --max-header-bytes counts the request line and header lines with their
     * CRLFs; the parser's limit also covers the final empty line. The head's
     * deadline (--timeout-ms from its first byte) is the library's: the
     * reader's interest carries it and the call at it fails. */
    sluice_http_limits lim = {.max_head_bytes = px->cfg.max_head + 2,
                              .max_headers = MAX_HEADERS,
                              .head_timeout_ms = px->cfg.timeout_ms};
    int err = 0;
    sluice_poll r;
    do
        r = sluice_http_read_request(c->hc.rd, &lim, &c->m->req, c->m->hdrs, c->m->hdrs_cap,
                                     &c->m->head, &err);
    while (more_fields(c->m, r, err));
    if (r == SLUICE_PENDING) {
        sluice_interest w;
        sluice_reader_ready(c->hc.rd, &w);
        srv_watch(&c->hc.base, &w);
        return 1;
    }
    if (r == SLUICE_EOF)
        return -1;
    if (r == SLUICE_ERROR && err == SLUICE_EHEAD_TIMEOUT) {
        c->status = 408; /* logged; a client that dribbles is cut without an answer */
        return -1;
    }
    if (r == SLUICE_ERROR) {
        int st = sluice_http_error_status(err);
        return st ? reply(c, st) : -1;
    }
    return start_request(c);
}

/* The lingering close: the answer goes out (then the log line), the write
 * side is shut, the client drained; then the connection closes. */
static int step_closing(conn *c)
{
    sluice_interest w;
    sluice_pump_status st = sluice_pump_step(&c->m->closing, &w);
    if (sluice_pump_moved(&c->m->closing) >= c->m->closing_len || st != SLUICE_PUMP_PENDING)
        log_request(c);
    if (st != SLUICE_PUMP_PENDING)
        return -1;
    srv_watch(&c->hc.base, &w);
    return 1;
}

static int drive(srv_conn *sc)
{
    conn *c = (conn *)sc;
    for (int step = 0; step < STATE_STEPS; step++) {
        int rc;
        if (c->state > S_HEAD && c->state < S_CLOSING && flush_interim(c) < 0)
            return -1;
        switch (c->state) {
        case S_HEAD:
            rc = step_head(c);
            break;
        case S_FIND:
            rc = step_find(c);
            break;
        case S_BUFFER:
            rc = step_buffer(c);
            break;
        case S_CONNECT:
            rc = step_connect(c);
            break;
        case S_EXCHANGE:
            rc = step_exchange(c);
            break;
        case S_STORE:
            rc = step_store(c);
            break;
        case S_CLOSING:
            rc = step_closing(c);
            break;
        default:
            rc = -1;
        }
        if (rc != 0)
            return rc < 0 ? -1 : 0;
        c->hc.base.nwant = 0; /* progress: recompute what to wait for */
        c->hc.base.deadline = -1;
    }
    c->hc.base.immediate = 1;
    return 0;
}

/* ---- connection lifetime -------------------------------------------------- */

/* Closes everything of the upstream exchange; the connection itself goes
 * to the pool when keep, else it is closed. */
static void release_upstream(conn *c, int keep)
{
    if (c->m) {
        sluice_pump_close(&c->m->req_pump);
        sluice_pump_close(&c->m->res_pump);
        c->m->req_pump = c->m->res_pump = (sluice_pump){0};
    }
    c->spliced = 0;
    sluice_sink_close(c->usink);
    sluice_stream_close(c->rbody);
    sluice_reader_close(c->urd);
    if (c->ufd >= 0) {
        if (keep && c->uio) {
            srv_park(&c->hc.base, c->ufd); /* stays registered for the next user */
            upstream_pool_put(&c->px->ups, c->ufd, c->uio, sluice_now_ms());
        } else {
            srv_forget(&c->hc.base, c->ufd);
            sluice_io_close(c->uio);
            close(c->ufd);
        }
    } else {
        sluice_io_close(c->uio);
    }
    c->usink = NULL;
    c->rbody = NULL;
    c->urd = NULL;
    c->uio = NULL;
    c->ufd = -1;
    c->reused = c->up_keep = c->res_spliced = 0;
}

static void drop_upstream(conn *c)
{
    release_upstream(c, 0);
}

/* Back to reading the next request on the same connection. */
static void conn_reset_request(conn *c)
{
    s3_upload_free(c->store);
    c->store = NULL;
    drop_upstream(c);
    sluice_sink_close(c->csink);
    sluice_sink_close(c->interim);
    sluice_sink_close(c->buf);
    sluice_stream_close(c->src);
    sluice_stream_close(c->body);
    sluice_multipart_close(c->mp);
    if (c->m) {
        sluice_bytes_release(&c->m->head);
        sluice_bytes_release(&c->m->rhead);
        sluice_bytes_release(&c->m->uhead);
        sluice_pump_close(&c->m->closing);
    }
    c->csink = c->interim = c->buf = NULL;
    c->src = c->body = NULL;
    c->mp = NULL;
    c->state = S_HEAD;
    c->t_start = sluice_now_ms();
    c->received = 0;
    c->req_done = c->req_failed = 0;
    c->retried = 0;
    c->res_started = c->res_done = c->close_after = c->logged = 0;
    c->status = 0;
    request_mem_give(c->px, c->m);
    c->m = NULL;
    free(c->part_type);
    c->part_type = NULL;
}

static srv_conn *px_accept(srv *s, int fd)
{
    proxy *px = (proxy *)s;
    conn *c = http_conn_new(s, px->pool, fd, sizeof *c);
    if (!c)
        return NULL;
    c->px = px;
    c->ufd = -1;
    conn_reset_request(c);
    return &c->hc.base;
}

static void px_destroy(srv_conn *sc)
{
    conn *c = (conn *)sc;
    log_request(c); /* a request cut short still gets its line */
    conn_reset_request(c);
    http_conn_free(&c->hc);
}

static int px_idle(srv_conn *sc)
{
    conn *c = (conn *)sc;
    return c->state == S_HEAD && http_conn_quiet(&c->hc);
}

static const srv_ops px_ops = {px_accept, drive, px_destroy, px_idle};

/* ---- main ----------------------------------------------------------------- */

/* The upstream pool closes an idle connection: the loop forgets it. */
static void unpark(void *ud, int fd)
{
    srv_unpark(ud, fd);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sluice-proxy --listen HOST:PORT (--upstream HOST:PORT |\n"
            "                    --s3 http://HOST:PORT/BUCKET[/PREFIX] [--s3-region R]\n"
            "                    [--s3-part-size BYTES])\n"
            "                    [--extract FIELD] [--mode stream|buffer] [--digest]\n"
            "                    [--max-header-bytes N] [--max-body-bytes N]\n"
            "                    [--timeout-ms N] [--workers N] [--no-splice]\n"
            "                    [--max-memory BYTES] [--underscores-in-headers]\n"
            "                    [--upstream-keepalive N] [--upstream-idle-ms MS]\n"
            "\n"
            "Streams each request body to the upstream as it arrives.\n"
            "  --extract FIELD       send only the multipart part named FIELD ('*': the\n"
            "                        first file part) upstream, as a chunked PUT\n"
            "  --mode buffer         read whole bodies into memory first (baseline)\n"
            "  --digest              add Sluice-Body-SHA256 to relayed responses\n"
            "  --max-header-bytes N  request head limit (default 16384; 431 beyond)\n"
            "  --max-body-bytes N    request body limit (default none; 413 beyond)\n"
            "  --timeout-ms N        head deadline and idle gap limit (default 30000)\n"
            "  --workers N           processes sharing the port (default 1)\n"
            "  --no-splice           copy passthrough bodies through user space too (by\n"
            "                        default Content-Length bodies and the large chunks\n"
            "                        of chunked ones are spliced)\n"
            "  --max-memory BYTES    body memory shared by all connections of a worker\n"
            "                        (pool blocks in flight; default 16777216, 0: no\n"
            "                        cap; none in buffer mode). At the cap each\n"
            "                        connection's window shrinks instead of the\n"
            "                        process growing; readers wait for memory in\n"
            "                        turn (2 blocks of reserve for those that hold one)\n"
            "  --underscores-in-headers  forward request header fields whose names\n"
            "                        contain '_' (dropped by default: CGI-style\n"
            "                        back-ends read them as the names with '-')\n"
            "  --upstream-keepalive N  idle upstream connections kept for reuse, per\n"
            "                        worker (default 64; 0: a new connection per request)\n"
            "  --upstream-idle-ms MS  close idle upstream connections after MS\n"
            "                        (default 60000)\n"
            "\n"
            "S3 mode (--s3, instead of --upstream; path-style addressing, plain HTTP):\n"
            "  PUT or POST /K stores the body (--extract: that field, with the part's\n"
            "  Content-Type) as the object PREFIX/K (K percent-decoded) and answers 200\n"
            "  with JSON {bucket,key,size,etag,sha256,content_type,image}; the store\n"
            "  refusing is 502 {error,message}, and a failed upload leaves nothing.\n"
            "  GET and HEAD /K read the object back (Range passed on).\n"
            "  --s3-region R         signing region (default $AWS_REGION, else us-east-1)\n"
            "  --s3-part-size BYTES  multipart part size for bodies of unknown length\n"
            "                        (chunked, --extract); default 8 MiB, at least 5 MiB;\n"
            "                        one part is held, inside --max-memory\n"
            "  Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.\n");
}

/* Fills cfg from the command line: 0, 1 for --help, -1 on a bad argument. */
/* A numeric option in [lo, hi]: 0, or -1 when it is not one. */
static int number(const char *arg, long long lo, long long hi, long long *v)
{
    *v = net_parse_size(arg);
    return *v >= lo && *v <= hi ? 0 : -1;
}

/* One option that takes a number, into cfg. */
static int numeric_option(int o, const char *arg, config *cfg)
{
    long long v;
    switch (o) {
    case 'H':
        return number(arg, 1, LLONG_MAX, &v) < 0 ? -1 : (cfg->max_head = (size_t)v, 0);
    case 'B':
        return number(arg, 0, LLONG_MAX, &v) < 0 ? -1 : (cfg->max_body = (uint64_t)v, 0);
    case 't':
        return number(arg, 1, 86400000, &v) < 0 ? -1 : (cfg->timeout_ms = (uint32_t)v, 0);
    case 'w':
        return number(arg, 1, SRV_MAX_WORKERS, &v) < 0 ? -1 : (cfg->workers = (int)v, 0);
    case 'K':
        return number(arg, 0, 65536, &v) < 0 ? -1 : (cfg->keepalive = (size_t)v, 0);
    case 'I':
        return number(arg, 1, 86400000, &v) < 0 ? -1 : (cfg->upstream_idle_ms = (uint32_t)v, 0);
    default: /* 'M' */
        return number(arg, 0, LLONG_MAX, &v) < 0 ? -1 : (cfg->max_memory = (size_t)v, 0);
    }
}

/* --s3, --s3-region, --s3-part-size; -1 for anything else (getopt's '?'). */
static int s3_option(int o, const char *arg, config *cfg)
{
    long long v;
    switch (o) {
    case 's':
        return s3_mode_parse_url(&cfg->s3, arg);
    case 'r':
        cfg->s3.region_opt = arg;
        return 0;
    case 'P':
        if (number(arg, SLUICE_S3_MIN_PART_SIZE, 5LL << 30, &v) < 0) {
            fprintf(stderr, "sluice-proxy: --s3-part-size is %u to %lld bytes\n",
                    SLUICE_S3_MIN_PART_SIZE, 5LL << 30);
            return -1;
        }
        cfg->s3.part_size = (size_t)v;
        return 0;
    default:
        return -1;
    }
}

static int parse_args(int argc, char **argv, config *cfg)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"upstream", required_argument, 0, 'u'},
        {"extract", required_argument, 0, 'e'},
        {"mode", required_argument, 0, 'm'},
        {"digest", no_argument, 0, 'd'},
        {"max-header-bytes", required_argument, 0, 'H'},
        {"max-body-bytes", required_argument, 0, 'B'},
        {"timeout-ms", required_argument, 0, 't'},
        {"workers", required_argument, 0, 'w'},
        {"no-splice", no_argument, 0, 'S'},
        {"max-memory", required_argument, 0, 'M'},
        {"underscores-in-headers", no_argument, 0, 'U'},
        {"upstream-keepalive", required_argument, 0, 'K'},
        {"upstream-idle-ms", required_argument, 0, 'I'},
        {"s3", required_argument, 0, 's'},
        {"s3-region", required_argument, 0, 'r'},
        {"s3-part-size", required_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    cfg->max_head = SLUICE_HTTP_DEFAULT_MAX_HEAD_BYTES;
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    cfg->workers = 1;
    cfg->keepalive = DEFAULT_UPSTREAM_KEEPALIVE;
    cfg->upstream_idle_ms = DEFAULT_UPSTREAM_IDLE_MS;
    cfg->max_memory = (size_t)-1; /* not given */
    int have_listen = 0, have_up = 0, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            have_listen = net_parse_addr(optarg, &cfg->listen) == 0;
            if (!have_listen)
                return -1;
            break;
        case 'u':
            have_up = net_parse_addr(optarg, &cfg->upstream) == 0;
            if (!have_up)
                return -1;
            break;
        case 'e':
            cfg->extract = optarg;
            break;
        case 'm':
            if (strcmp(optarg, "buffer") == 0)
                cfg->buffer_mode = 1;
            else if (strcmp(optarg, "stream") != 0)
                return -1;
            break;
        case 'd':
            cfg->digest = 1;
            break;
        case 'H':
        case 'B':
        case 't':
        case 'w':
        case 'K':
        case 'I':
        case 'M':
            if (numeric_option(o, optarg, cfg) < 0)
                return -1;
            break;
        case 'S':
            cfg->no_splice = 1;
            break;
        case 'U':
            cfg->underscores = 1;
            break;
        case 'h':
            return 1;
        default: /* the S3 options, or an unknown one */
            if (s3_option(o, optarg, cfg) < 0)
                return -1;
        }
    }
    /* S3 mode: the store is the upstream; whole bodies are never buffered */
    if (!have_listen || have_up == cfg->s3.on || optind != argc ||
        (cfg->s3.on && cfg->buffer_mode))
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static proxy px;
    config *cfg = &px.cfg;
    int rc = parse_args(argc, argv, cfg);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    if (cfg->max_memory == (size_t)-1) /* buffer mode holds whole bodies */
        cfg->max_memory = cfg->buffer_mode ? 0 : DEFAULT_MAX_MEMORY;
    if (cfg->s3.on) { /* GET and HEAD go to the store as to an upstream */
        if (s3_mode_setup(&cfg->s3, cfg->max_memory) < 0)
            return 2;
        cfg->upstream = cfg->s3.store;
    }
    /* one budget per worker process; a reader at the cap waits for the pool
     * to name it (srv_wake), no timer. Busy keep-alive clients take about
     * two blocks per request: keep enough free ones that 64 of them do not
     * send blocks back to malloc on every other request (docs/proxy.md). */
    sluice_pool_config pc = {.max_blocks = cfg->max_memory / SLUICE_DEFAULT_BLOCK_SIZE,
                             .max_spare = PROXY_SPARE_BLOCKS, .wake = srv_wake, .wake_ud = &px.srv};
    if (cfg->max_memory && pc.max_blocks == 0)
        pc.max_blocks = 1;
    if (sluice_pool_new(&pc, &px.pool) < 0 ||
        upstream_pool_init(&px.ups, cfg->keepalive, cfg->upstream_idle_ms, unpark, &px.srv) < 0) {
        fprintf(stderr, "sluice-proxy: out of memory\n");
        return 1;
    }
    px.srv.pool = px.pool;
    px.srv.name = "sluice-proxy";
    px.srv.fd_headroom = PROXY_FDS_PER_REQUEST;
    rc = srv_main(&px.srv, &px_ops, &cfg->listen, cfg->workers);
    while (px.nspare_m)
        free(px.spare_m[--px.nspare_m]);
    upstream_pool_free(&px.ups);
    sluice_pool_close(px.pool);
    s3_mode_close(&cfg->s3);
    return rc;
}
