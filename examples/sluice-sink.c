/*
 * sluice-sink — an upstream that counts, hashes or stores what it receives.
 *
 *   sluice-sink --listen HOST:PORT [--store DIR] [--workers N]
 *
 * Each request body (Content-Length or chunked, parsed as strictly as the
 * proxy does) is pulled through a tap that counts and hashes it, into a sink
 * that drops it or, with --store, writes it to a temporary dot-file that is
 * renamed into place only when the body completed. The reply is JSON:
 *   {"method":..,"target":..,"bytes":N,"sha256":"..","framing":"length"|"chunked"}
 * with 200, or 201 when stored.
 */
#include "common/http_util.h"
#include "common/net.h"
#include "common/server.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADERS 256 /* fields per head; more is 431, like an over-long head */
#define DEFAULT_TIMEOUT_MS 30000
#define STATE_STEPS 1000 /* state changes per drive(): a bound, never reached in practice */
#define SINK_FDS_PER_REQUEST 1 /* --store: the temporary file */

typedef struct sink_srv {
    srv srv;
    sluice_pool *pool;
    const char *store;          /* NULL: count and drop */
    uint32_t timeout_ms;
    unsigned tmp_seq;           /* names temporary files */
} sink_srv;

enum state { S_HEAD, S_BODY, S_REPLY, S_CLOSING };

/* What a request needs, allocated at its first byte and freed at its end:
 * between requests a connection is the small struct below and a reader
 * holding no block. */
typedef struct request_mem {
    sluice_bytes head;          /* keeps req's spans valid */
    sluice_http_request req;
    sluice_http_header hdrs[MAX_HEADERS];
    sluice_http_framing framing;
    sluice_pump pump;
    sluice_sha256_ctx sha;
    char tmp_path[4096], final_path[4096]; /* --store */
} request_mem;

typedef struct conn {
    http_conn hc;               /* first: socket, io, reader */
    sink_srv *ss;
    enum state state;
    request_mem *m;             /* NULL between requests */
    int keep_alive;
    int64_t idle_since;

    sluice_stream *body;        /* tapped body stream */
    sluice_sink *out;           /* discard sink or file writer */
    sluice_sink *interim;       /* 100 Continue */
    uint64_t bytes;

    int fd_file;                /* --store: the temporary file */
    sluice_io *fio;

    sluice_sink *reply;         /* a reply that keeps the connection */
    int close_after;
    sluice_pump closing;        /* one that ends it: a reply pump (lingering close) */
} conn;

static void conn_reset(conn *c);

/* ---- a sink that drops and counts ---------------------------------------- */

static sluice_poll drop_write(sluice_sink *k, sluice_bytes *chunk)
{
    (void)k;
    sluice_bytes_release(chunk);
    return SLUICE_READY;
}

static sluice_poll drop_flush(sluice_sink *k)
{
    (void)k;
    return SLUICE_READY;
}

static void drop_abort(sluice_sink *k)
{
    (void)k;
}

static void drop_close(sluice_sink *k)
{
    sluice_pool_object_free(k->pool, k, sizeof *k);
}

static const sluice_sink_vtable drop_vt = {"drop", drop_write, drop_flush, drop_flush,
                                           drop_abort, NULL, NULL, drop_close};

static int drop_sink_new(sluice_pool *pool, sluice_sink **out)
{
    sluice_sink *k = sluice_pool_object_alloc(pool, sizeof *k);
    *out = k;
    if (!k)
        return SLUICE_ENOMEM;
    memset(k, 0, sizeof *k);
    k->vt = &drop_vt;
    k->pool = pool;
    return 0;
}

static void tap_body(void *ud, const sluice_bytes *chunk)
{
    conn *c = ud;
    c->bytes += chunk->len;
    sluice_sha256_update(&c->m->sha, chunk->data, chunk->len);
}

/* ---- --store paths -------------------------------------------------------- */

/*
 * DIR/<path>: the target's path without its leading '/' and its query,
 * percent-decoded. Refused (-1): a `..` segment, NUL, an escape that decodes
 * to '/', an empty name or a trailing '/', a malformed escape.
 */
static int store_path(const char *dir, const char *target, size_t len, char *out, size_t cap)
{
    if (len == 0 || target[0] != '/')
        return -1;
    char rel[4096];
    size_t plen = 1;
    while (plen < len && target[plen] != '?')
        plen++;
    int dn = http_pct_decode(target + 1, plen - 1, rel, sizeof rel, 1);
    if (dn < 0)
        return -1;
    size_t n = (size_t)dn;
    if (n == 0 || rel[n - 1] == '/')
        return -1;
    /* every segment: non-empty, not "." or ".." */
    for (char *seg = rel;;) {
        char *slash = strchr(seg, '/');
        size_t sl = slash ? (size_t)(slash - seg) : strlen(seg);
        if (sl == 0 || (sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
            return -1;
        if (!slash)
            break;
        seg = slash + 1;
    }
    int w = snprintf(out, cap, "%s/%s", dir, rel);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

static int mkdirs_for(char *path)
{
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = 0;
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

/* Checks the target and opens the temporary dot-file for it in DIR. */
static int open_store(conn *c)
{
    if (store_path(c->ss->store, c->m->req.target, c->m->req.target_len, c->m->final_path,
                   sizeof c->m->final_path) < 0)
        return 400;
    if (mkdirs_for(c->m->final_path) < 0)
        return 500;
    /* the dot-file sits in DIR itself (same file system as every path under
     * it, so the final rename is atomic); pid and a sequence number make its
     * name unique, O_EXCL makes sure */
    char *slash = strrchr(c->m->final_path, '/');
    for (int tries = 0;; tries++) {
        int w = snprintf(c->m->tmp_path, sizeof c->m->tmp_path, "%s/.%.200s.%ld.%u", c->ss->store,
                         slash + 1, (long)getpid(), c->ss->tmp_seq++);
        if (w < 0 || (size_t)w >= sizeof c->m->tmp_path)
            return 400;
        c->fd_file = open(c->m->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (c->fd_file >= 0)
            break;
        if (errno != EEXIST || tries == 100)
            return 500;
    }
    if (sluice_io_fd_new(c->ss->pool, c->fd_file, 0, &c->fio) < 0 ||
        sluice_writer_new(c->ss->pool, c->fio, SLUICE_FRAMING_CLOSE, NULL, NULL, &c->out) < 0)
        return 500;
    return 0;
}

static void discard_store(conn *c)
{
    sluice_sink_close(c->out);
    c->out = NULL;
    sluice_io_close(c->fio);
    c->fio = NULL;
    if (c->fd_file >= 0) {
        close(c->fd_file);
        unlink(c->m->tmp_path); /* an incomplete body leaves nothing behind */
        c->fd_file = -1;
    }
}

/* ---- replies -------------------------------------------------------------- */

/* A reply that ends the connection: head and body in one piece, written by
 * a reply pump, which then drains the client (the library's lingering
 * close), so an unread request body never resets the answer away. */
static int closing_reply(conn *c, sluice_bytes *h, const char *body, size_t len)
{
    size_t n = h->len + len;
    char *all = malloc(n);
    sluice_bytes whole = {0};
    int rc = all ? 0 : -1;
    if (all) {
        memcpy(all, h->data, h->len);
        memcpy(all + h->len, body, len);
        rc = sluice_bytes_copy_from(c->ss->pool, all, n, &whole);
        free(all);
    }
    sluice_bytes_release(h);
    if (rc < 0 ||
        sluice_pump_reply_init(&c->closing, c->ss->pool, c->hc.io, c->hc.rd, &whole, NULL) < 0)
        return -1;
    c->state = S_CLOSING;
    return 0;
}

static int start_reply(conn *c, int status, const char *body, size_t len, int keep)
{
    sluice_bytes h, b;
    c->close_after = !keep;
    if (http_simple_head(c->ss->pool, status, "application/json", len, keep, &h) < 0)
        return -1;
    if (!keep)
        return closing_reply(c, &h, body, len);
    if (sluice_writer_new(c->ss->pool, c->hc.io, SLUICE_FRAMING_CLOSE, &h, NULL, &c->reply) < 0)
        return -1;
    if (len && sluice_bytes_copy_from(c->ss->pool, body, len, &b) == 0 &&
        sluice_sink_poll_write(c->reply, &b) != SLUICE_READY)
        sluice_bytes_release(&b);
    c->state = S_REPLY;
    return 0;
}

static int error_reply(conn *c, int status)
{
    char msg[96];
    int n = snprintf(msg, sizeof msg, "{\"error\":%d,\"reason\":\"%s\"}\n", status,
                     sluice_http_reason_phrase(status));
    return start_reply(c, status, msg, (size_t)n, 0);
}

static int done_reply(conn *c, int stored)
{
    unsigned char d[SLUICE_SHA256_SIZE];
    char hex[SLUICE_SHA256_HEX_SIZE];
    sluice_sha256_final(&c->m->sha, d);
    sluice_sha256_hex(d, hex);
    char msg[1024], *p = msg, *end = msg + sizeof msg - 160;
    p += snprintf(p, (size_t)(end - p), "{\"method\":");
    http_json_str(&p, end, c->m->req.method, c->m->req.method_len, 0);
    p += snprintf(p, (size_t)(end - p), ",\"target\":");
    http_json_str(&p, end, c->m->req.target, c->m->req.target_len, 0);
    p += snprintf(p, 160, ",\"bytes\":%llu,\"sha256\":\"%s\",\"framing\":\"%s\"}\n",
                  (unsigned long long)c->bytes, hex,
                  c->m->framing.body == SLUICE_HTTP_BODY_CHUNKED ? "chunked" : "length");
    return start_reply(c, stored ? 201 : 200, msg, (size_t)(p - msg), c->keep_alive);
}

/* ---- the state machine ---------------------------------------------------- */

static int step_head(conn *c)
{
    if (!c->m) { /* between requests: wait for a first byte, holding nothing */
        int rc = http_conn_await(&c->hc, c->idle_since + c->ss->timeout_ms);
        if (rc != 0)
            return rc;
        if (!(c->m = calloc(1, sizeof *c->m)))
            return -1;
        sluice_sha256_init(&c->m->sha);
    }
    int err = 0;
    /* 16384 bytes of request line and header lines, as the proxy counts them,
     * plus the final empty line; the whole head within --timeout-ms of its
     * first byte (the library's deadline, reported in the reader's interest) */
    sluice_http_limits lim = {.max_head_bytes = SLUICE_HTTP_DEFAULT_MAX_HEAD_BYTES + 2,
                              .max_headers = MAX_HEADERS,
                              .head_timeout_ms = c->ss->timeout_ms};
    sluice_poll r = sluice_http_read_request(c->hc.rd, &lim, &c->m->req, c->m->hdrs, MAX_HEADERS,
                                             &c->m->head, &err);
    if (r == SLUICE_PENDING) {
        sluice_interest w;
        sluice_reader_ready(c->hc.rd, &w);
        srv_watch(&c->hc.base, &w);
        return 1;
    }
    if (r == SLUICE_EOF || (r == SLUICE_ERROR && err == SLUICE_EHEAD_TIMEOUT))
        return -1; /* closed, or a head that took too long: cut, no answer */
    if (r == SLUICE_ERROR) {
        int st = sluice_http_error_status(err);
        return st ? error_reply(c, st) : -1;
    }
    c->keep_alive = sluice_http_request_keep_alive(&c->m->req);
    if (sluice_http_request_host(&c->m->req, NULL, NULL) < 0 ||
        sluice_http_request_framing(&c->m->req, &c->m->framing) < 0)
        return error_reply(c, 400);
    sluice_http_expect ex = sluice_http_request_expect(&c->m->req);
    if (ex == SLUICE_HTTP_EXPECT_OTHER)
        return error_reply(c, 417);

    sluice_stream *raw = NULL;
    sluice_body_config bc = {.idle_timeout_ms = c->ss->timeout_ms};
    int rc = 0;
    if (c->m->framing.body == SLUICE_HTTP_BODY_LENGTH)
        rc = sluice_body_new(c->ss->pool, c->hc.rd, SLUICE_FRAMING_LENGTH(c->m->framing.length), &bc, &raw);
    else if (c->m->framing.body == SLUICE_HTTP_BODY_CHUNKED)
        rc = sluice_body_new(c->ss->pool, c->hc.rd, SLUICE_FRAMING_CHUNKED, &bc, &raw);
    else
        rc = sluice_memstream_new(c->ss->pool, NULL, 0, 0, &raw);
    if (rc < 0 || sluice_tap_new(c->ss->pool, raw, tap_body, c, &c->body) < 0)
        return -1;
    if (c->ss->store) {
        int st = open_store(c);
        if (st) {
            discard_store(c);
            return error_reply(c, st);
        }
    } else if (drop_sink_new(c->ss->pool, &c->out) < 0) {
        return -1;
    }
    if (ex == SLUICE_HTTP_EXPECT_CONTINUE && c->m->framing.body != SLUICE_HTTP_BODY_NONE) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        sluice_bytes h = sluice_bytes_static(cont, sizeof cont - 1);
        if (sluice_writer_new(c->ss->pool, c->hc.io, SLUICE_FRAMING_CLOSE, &h, NULL, &c->interim) < 0)
            return -1;
    }
    sluice_pump_init(&c->m->pump, c->body, c->out, NULL);
    c->state = S_BODY;
    return 0;
}

static int step_body(conn *c)
{
    sluice_interest w;
    if (c->interim) {
        sluice_poll r = sluice_sink_finish(c->interim);
        if (r == SLUICE_ERROR)
            return -1;
        if (r == SLUICE_PENDING) {
            sluice_sink_ready(c->interim, &w);
            srv_watch(&c->hc.base, &w);
            return 1;
        }
        sluice_sink_close(c->interim);
        c->interim = NULL;
    }
    sluice_pump_status st = sluice_pump_step(&c->m->pump, &w);
    if (st == SLUICE_PUMP_PENDING) {
        srv_watch(&c->hc.base, &w);
        return 1;
    }
    if (st == SLUICE_PUMP_ERROR) {
        sluice_side side;
        int code = sluice_pump_error(&c->m->pump, &side);
        int status = side == SLUICE_SIDE_SINK ? 500 : sluice_http_error_status(code);
        discard_store(c);
        return status ? error_reply(c, status) : -1;
    }
    int stored = 0;
    if (c->fd_file >= 0) {
        sluice_sink_close(c->out);
        c->out = NULL;
        sluice_io_close(c->fio);
        c->fio = NULL;
        close(c->fd_file);
        c->fd_file = -1;
        if (rename(c->m->tmp_path, c->m->final_path) < 0) {
            unlink(c->m->tmp_path);
            return error_reply(c, 500);
        }
        stored = 1;
    }
    return done_reply(c, stored);
}

static int step_reply(conn *c)
{
    int rc = http_reply_step(&c->hc.base, c->reply);
    if (rc != 0)
        return rc;
    conn_reset(c); /* kept alive: the next request */
    return 0;
}

/* The reply pump of a reply that ends the connection: -1 once done. */
static int step_closing(conn *c)
{
    sluice_interest w;
    if (sluice_pump_step(&c->closing, &w) != SLUICE_PUMP_PENDING)
        return -1;
    srv_watch(&c->hc.base, &w);
    return 1;
}

static int drive(srv_conn *sc)
{
    conn *c = (conn *)sc;
    for (int step = 0; step < STATE_STEPS; step++) {
        int rc;
        switch (c->state) {
        case S_HEAD:
            rc = step_head(c);
            break;
        case S_BODY:
            rc = step_body(c);
            break;
        case S_REPLY:
            rc = step_reply(c);
            break;
        default:
            rc = step_closing(c);
            break;
        }
        if (rc != 0)
            return rc < 0 ? -1 : 0;
        c->hc.base.nwant = 0;
        c->hc.base.deadline = -1;
    }
    c->hc.base.immediate = 1;
    return 0;
}

static void conn_reset(conn *c)
{
    if (c->m)
        sluice_pump_close(&c->m->pump);
    discard_store(c);
    sluice_sink_close(c->out);
    sluice_sink_close(c->interim);
    sluice_sink_close(c->reply);
    sluice_stream_close(c->body);
    if (c->m)
        sluice_bytes_release(&c->m->head);
    free(c->m);
    c->m = NULL;
    c->out = c->interim = c->reply = NULL;
    c->body = NULL;
    c->state = S_HEAD;
    c->idle_since = sluice_now_ms();
    c->bytes = 0;
    c->fd_file = -1;
}

static srv_conn *sk_accept(srv *s, int fd)
{
    sink_srv *ss = (sink_srv *)s;
    conn *c = http_conn_new(s, ss->pool, fd, sizeof *c);
    if (!c)
        return NULL;
    c->ss = ss;
    c->fd_file = -1;
    conn_reset(c);
    return &c->hc.base;
}

static void sk_destroy(srv_conn *sc)
{
    conn *c = (conn *)sc;
    sluice_pump_close(&c->closing);
    conn_reset(c);
    http_conn_free(&c->hc);
}

static int sk_idle(srv_conn *sc)
{
    conn *c = (conn *)sc;
    return c->state == S_HEAD && http_conn_quiet(&c->hc);
}

static const srv_ops sk_ops = {sk_accept, drive, sk_destroy, sk_idle};

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice-sink --listen HOST:PORT [--store DIR] [--workers N]\n"
               "                   [--timeout-ms N]\n"
               "\n"
               "Reads each request body and answers 200 with JSON\n"
               "{\"method\",\"target\",\"bytes\",\"sha256\",\"framing\"}.\n"
               "  --store DIR   write each body to DIR/<target path> (201), via a\n"
               "                temporary dot-file renamed only when the body completed\n"
               "  --workers N   processes sharing the port (default 1)\n"
               "  --timeout-ms N  head deadline and idle gap limit (default 30000)\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"store", required_argument, 0, 's'},
        {"workers", required_argument, 0, 'w'},
        {"timeout-ms", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static sink_srv ss;
    net_addr addr;
    int have_listen = 0, workers = 1, o;
    long long v;
    ss.timeout_ms = DEFAULT_TIMEOUT_MS;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            if (!(have_listen = net_parse_addr(optarg, &addr) == 0))
                goto bad;
            break;
        case 's':
            ss.store = optarg;
            break;
        case 'w':
            if ((v = net_parse_size(optarg)) <= 0 || v > SRV_MAX_WORKERS)
                goto bad;
            workers = (int)v;
            break;
        case 't':
            if ((v = net_parse_size(optarg)) <= 0 || v > 86400000)
                goto bad;
            ss.timeout_ms = (uint32_t)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            goto bad;
        }
    }
    if (!have_listen || optind != argc)
        goto bad;
    if (ss.store) {
        struct stat st;
        if (stat(ss.store, &st) < 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "sluice-sink: --store %s: not a directory\n", ss.store);
            return 2;
        }
    }
    if (sluice_pool_new(NULL, &ss.pool) < 0)
        return 1;
    ss.srv.pool = ss.pool;
    ss.srv.name = "sluice-sink";
    ss.srv.fd_headroom = SINK_FDS_PER_REQUEST;
    int rc = srv_main(&ss.srv, &sk_ops, &addr, workers);
    sluice_pool_close(ss.pool);
    return rc;
bad:
    usage(stderr);
    return 2;
}
