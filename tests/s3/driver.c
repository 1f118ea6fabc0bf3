/*
 * tests/s3/driver.c — uploads a file (or stdin) to an S3 store through the
 * S3 sink over a plain TCP fd io, for tests/s3/moto_suite.py.
 *
 *   s3-driver HOST PORT BUCKET KEY [options] < data
 *     --length N        object size (default: unknown, multipart)
 *     --source N        the input's declared length (a body stream of N
 *                       bytes: fewer on stdin make it truncated)
 *     --part-size N     multipart part size (>= 5 MiB)
 *     --signed          payload mode STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER
 *     --abort-at N      abort the sink once the pump moved N bytes, as a pump
 *                       does when its source fails
 *     --no-reconnect    no connect callback (moto closes after each answer)
 *     --tiny-parts N    parts of N bytes, under S3's minimum (a test hook):
 *                       the store refuses to complete the upload
 *
 * Prints one JSON line with the result and exits 0 if the upload completed,
 * 1 if it failed (after cleanup), 2 on usage errors.
 */
#include <sluice.h>

#include "../../lib/testing.h" /* --tiny-parts */

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int wait_for(const sluice_interest *w)
{
    struct pollfd p = {w->fd, 0, 0};
    if (w->events & SLUICE_WANT_READ)
        p.events |= POLLIN;
    if (w->events & SLUICE_WANT_WRITE)
        p.events |= POLLOUT;
    int ms = -1;
    if (w->deadline_ms >= 0) {
        int64_t d = w->deadline_ms - sluice_now_ms();
        ms = d < 0 ? 0 : (int)d;
    }
    if (w->fd < 0 && w->deadline_ms < 0)
        return 0;
    return poll(&p, w->fd >= 0 ? 1 : 0, ms) < 0 && errno != EINTR ? -1 : 0;
}

static struct sockaddr_in store;
static sluice_pool *pool;

static int dial(void *ud, sluice_io **io)
{
    (void)ud;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&store, sizeof store) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    int rc = sluice_io_fd_new(pool, fd, SLUICE_IO_CLOSE_FD, io);
    if (rc < 0)
        close(fd);
    return rc;
}

/* A stream that passes its inner stream's chunks on until `left` bytes
 * went by, then fails as a client that vanished: the pump then aborts the
 * sink, as it does in a server. */
typedef struct cut_stream {
    sluice_stream base;
    sluice_stream *inner;
    uint64_t left;
} cut_stream;

static sluice_poll cut_poll(sluice_stream *s, sluice_bytes *out)
{
    cut_stream *c = (cut_stream *)s;
    if (!c->left)
        return sluice_stream_fail(s, -ECONNRESET, "client gone (--abort-at)", 0);
    sluice_poll r = sluice_stream_poll_next(c->inner, out);
    if (r == SLUICE_READY) {
        if (out->len > c->left)
            sluice_bytes_truncate(out, (size_t)c->left);
        c->left -= out->len;
    } else if (r == SLUICE_ERROR) {
        return sluice_stream_fail(s, sluice_stream_error(c->inner, NULL), "input failed", 0);
    }
    return r;
}

static void cut_ready(sluice_stream *s, sluice_interest *want)
{
    sluice_stream_ready(((cut_stream *)s)->inner, want);
}

static void cut_close(sluice_stream *s)
{
    sluice_stream_close(((cut_stream *)s)->inner);
    sluice_pool_object_free(s->pool, s, sizeof(cut_stream));
}

static const sluice_stream_vtable cut_vt = {"cut", cut_poll, cut_ready, cut_close};

static void json_str(const char *name, const char *v)
{
    printf("\"%s\":\"", name);
    for (; *v; v++)
        if (*v == '"' || *v == '\\')
            printf("\\%c", *v);
        else if ((unsigned char)*v < 0x20)
            printf("\\u%04x", *v);
        else
            putchar(*v);
    printf("\",");
}

typedef struct options {
    int64_t length, source, abort_at;
    size_t part, tiny;
    int signed_mode, no_reconnect;
} options;

static int parse(int argc, char **argv, options *o)
{
    *o = (options){SLUICE_S3_UNKNOWN_LENGTH, -1, -1, 0, 0, 0, 0};
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--length") && i + 1 < argc)
            o->length = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--source") && i + 1 < argc)
            o->source = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--part-size") && i + 1 < argc)
            o->part = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--abort-at") && i + 1 < argc)
            o->abort_at = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--tiny-parts") && i + 1 < argc)
            o->tiny = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--no-reconnect"))
            o->no_reconnect = 1;
        else if (!strcmp(argv[i], "--signed"))
            o->signed_mode = 1;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

/* The input: stdin until EOF, or a body of --source bytes (fewer on stdin:
 * truncated), cut after --abort-at bytes. */
static sluice_stream *input(sluice_reader *r, const options *o)
{
    sluice_stream *body;
    int rc = o->source >= 0
                 ? sluice_body_new(pool, r, SLUICE_FRAMING_LENGTH((uint64_t)o->source), NULL, &body)
                 : sluice_body_new(pool, r, SLUICE_FRAMING_CLOSE, NULL, &body);
    if (rc < 0 || o->abort_at < 0)
        return rc < 0 ? NULL : body;
    cut_stream *cut = sluice_pool_object_alloc(pool, sizeof *cut);
    if (!cut) {
        sluice_stream_close(body);
        return NULL;
    }
    *cut = (cut_stream){.base = {.vt = &cut_vt, .pool = pool}, .inner = body,
                        .left = (uint64_t)o->abort_at};
    return &cut->base;
}

static void report(sluice_sink *sink, int err, sluice_poll cl)
{
    sluice_s3_result res;
    sluice_s3_sink_result(sink, &res);
    sluice_error_info info;
    sluice_sink_error(sink, &info);
    printf("{\"done\":%s,\"size\":%llu,\"parts\":%u,\"status\":%d,\"cleanup\":%d,"
           "\"cleanup_rc\":%d,",
           res.done ? "true" : "false", (unsigned long long)res.size, res.parts, res.status,
           (int)res.cleanup, (int)cl);
    json_str("sha256", res.sha256);
    json_str("etag", res.etag);
    json_str("checksum", res.checksum);
    json_str("upload_id", res.upload_id);
    json_str("code", res.error_code);
    json_str("message", res.error_message);
    json_str("sink_error", info.code ? sluice_err_name(info.code) : "");
    printf("\"error\":\"%s\"}\n", err ? sluice_err_name(err) : "");
}

int main(int argc, char **argv)
{
    options o;
    if (argc < 5 || parse(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: %s HOST PORT BUCKET KEY [options]\n", argv[0]);
        return 2;
    }
    char hostport[300];
    snprintf(hostport, sizeof hostport, "%s:%s", argv[1], argv[2]);
    store = (struct sockaddr_in){.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &store.sin_addr);
    sluice_io *in, *out;
    sluice_reader *r;
    sluice_stream *body;
    sluice_sink *sink;
    if (sluice_pool_new(NULL, &pool) < 0 || sluice_io_fd_new(pool, 0, 0, &in) < 0 ||
        dial(NULL, &out) < 0 || sluice_reader_new(pool, in, NULL, &r) < 0 ||
        !(body = input(r, &o)))
        return 2;
    sluice_s3_config c = {
        .host = hostport, .bucket = argv[3], .key = argv[4], .key_len = strlen(argv[4]),
        .region = "us-east-1",
        .credentials = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                        getenv("S3_SESSION_TOKEN")},
        .length = o.length, .part_size = o.part,
        .payload = o.signed_mode ? SLUICE_SIGV4_STREAMING_SIGNED_TRAILER : NULL,
        .idle_timeout_ms = 20000,
        .connect = o.no_reconnect ? NULL : dial,
    };
    int rc = sluice_s3_sink_new(pool, out, &c, &sink);
    if (rc < 0) {
        fprintf(stderr, "s3 sink: %s\n", sluice_strerror(rc));
        return 2;
    }
    if (o.tiny)
        sluice__s3_sink_testing(sink, 0, o.tiny);
    sluice_pump pump;
    sluice_pump_init(&pump, body, sink, 0);
    sluice_pump_status st;
    sluice_interest want;
    while ((st = sluice_pump_step(&pump, &want)) == SLUICE_PUMP_PENDING)
        wait_for(&want);
    int err = st == SLUICE_PUMP_DONE ? 0 : sluice_pump_error(&pump, NULL);
    sluice_poll cl = SLUICE_READY;
    if (st != SLUICE_PUMP_DONE) /* leave nothing behind */
        while ((cl = sluice_s3_sink_cleanup(sink, &want)) == SLUICE_PENDING)
            wait_for(&want);
    report(sink, err, cl);
    sluice_s3_result res;
    sluice_s3_sink_result(sink, &res);
    sluice_pump_close(&pump);
    sluice_stream_close(body);
    sluice_sink_close(sink);
    sluice_reader_close(r);
    sluice_io_close(in);
    sluice_io_close(out);
    sluice_pool_close(pool);
    return res.done ? 0 : 1;
}
