/*
 * head.c — heads off a socket reader.
 *
 * Each call peeks at the unread bytes as one contiguous view and runs the
 * parser over it from the start. Re-parsing is bounded by the head limit
 * (16 KiB by default) and happens only when new bytes arrived, so it costs
 * less than keeping parser state across reads, and the parser stays a pure
 * function that is easy to test at every split point.
 *
 * Time limits are checked only where a call would return PENDING, after it
 * read what there was: a head that is complete is never refused for time,
 * and a host that wakes at the deadline gets either the head or the error
 * from that one call.
 */
#include "internal.h"

/* Room for the empty lines a request may start with, on top of the limit. */
#define LEADING_SLACK (2 * SLUICE_HTTP_MAX_EMPTY_LINES)

typedef int (*parse_fn)(const void *buf, size_t len, const sluice_http_limits *lim, void *msg,
                        sluice_http_header *hdrs, size_t cap);

static int parse_req(const void *buf, size_t len, const sluice_http_limits *lim, void *msg,
                     sluice_http_header *hdrs, size_t cap)
{
    return sluice_http_parse_request(buf, len, lim, msg, hdrs, cap);
}

static int parse_res(const void *buf, size_t len, const sluice_http_limits *lim, void *msg,
                     sluice_http_header *hdrs, size_t cap)
{
    return sluice_http_parse_response(buf, len, lim, msg, hdrs, cap);
}

static sluice_poll read_head(sluice_reader *r, const sluice_http_limits *lim, parse_fn parse,
                             void *msg, sluice_http_header *hdrs, size_t cap,
                             sluice_bytes *head, int *err)
{
    size_t max = (lim && lim->max_head_bytes ? lim->max_head_bytes
                                             : SLUICE_HTTP_DEFAULT_MAX_HEAD_BYTES) +
                 LEADING_SLACK + 1;
    *head = (sluice_bytes){0};
    *err = 0;
    for (;;) {
        size_t avail = sluice_reader_available(r);
        if (avail > 0) {
            sluice_bytes v;
            int rc = sluice_reader_peek(r, max, &v);
            if (rc < 0) {
                *err = rc;
                return SLUICE_ERROR;
            }
            int n = parse(v.data, v.len, lim, msg, hdrs, cap);
            if (n > 0) {
                sluice_bytes_truncate(&v, (size_t)n);
                *head = v;
                sluice_reader_skip(r, (size_t)n);
                return SLUICE_READY;
            }
            sluice_bytes_release(&v);
            if (n < 0) {
                *err = n;
                return SLUICE_ERROR;
            }
        }
        sluice_poll p = sluice_reader_fill(r);
        switch (p) {
        case SLUICE_READY:
            if (sluice_reader_available(r) == avail) {
                /* the reader is full and still no complete head */
                *err = SLUICE_EHEAD_TOO_LARGE;
                return SLUICE_ERROR;
            }
            continue;
        case SLUICE_PENDING:
            return SLUICE_PENDING;
        case SLUICE_EOF:
            if (sluice_reader_available(r) == 0)
                return SLUICE_EOF;
            *err = SLUICE_ETRUNCATED;
            return SLUICE_ERROR;
        case SLUICE_ERROR:
            *err = sluice_reader_error(r);
            return SLUICE_ERROR;
        }
    }
}

static void clock_clear(sluice__head_clock *c)
{
    c->first_byte = c->idle_since = c->deadline = -1;
}

/*
 * A read that found no complete head: starts the head's clock at its first
 * byte (or the idle clock while there is none), sets the deadline the
 * reader's interest reports, and turns PENDING into the timeout once that
 * deadline passed.
 */
static sluice_poll head_pending(sluice_reader *r, const sluice_http_limits *lim, int *err)
{
    sluice__head_clock *c = sluice__reader_head_clock(r);
    uint32_t head_ms = lim ? lim->head_timeout_ms : 0;
    uint32_t idle_ms = lim ? lim->idle_timeout_ms : 0;
    c->deadline = -1;
    if (!head_ms && !idle_ms)
        return SLUICE_PENDING;
    int64_t now = c->now ? c->now(c->now_ud) : sluice_now_ms();
    int code;
    if (sluice_reader_available(r) > 0 || c->first_byte >= 0) {
        if (c->first_byte < 0)
            c->first_byte = now;
        c->idle_since = -1;
        if (!head_ms)
            return SLUICE_PENDING;
        c->deadline = c->first_byte + head_ms;
        code = SLUICE_EHEAD_TIMEOUT;
    } else {
        if (!idle_ms)
            return SLUICE_PENDING;
        if (c->idle_since < 0)
            c->idle_since = now;
        c->deadline = c->idle_since + idle_ms;
        code = SLUICE_EIDLE_TIMEOUT;
    }
    if (now < c->deadline)
        return SLUICE_PENDING;
    clock_clear(c);
    *err = code;
    return SLUICE_ERROR;
}

/* read_head, with the clock: kept until the head's outcome is known. */
static sluice_poll read_timed(sluice_reader *r, const sluice_http_limits *lim, parse_fn parse,
                              void *msg, sluice_http_header *hdrs, size_t cap,
                              sluice_bytes *head, int *err)
{
    sluice_poll p = read_head(r, lim, parse, msg, hdrs, cap, head, err);
    if (p == SLUICE_PENDING)
        return head_pending(r, lim, err);
    clock_clear(sluice__reader_head_clock(r));
    return p;
}

sluice_poll sluice_http_read_request(sluice_reader *r, const sluice_http_limits *lim,
                                     sluice_http_request *req, sluice_http_header *hdrs,
                                     size_t hdrs_cap, sluice_bytes *head, int *err)
{
    return read_timed(r, lim, parse_req, req, hdrs, hdrs_cap, head, err);
}

sluice_poll sluice_http_read_response(sluice_reader *r, const sluice_http_limits *lim,
                                      sluice_http_response *res, sluice_http_header *hdrs,
                                      size_t hdrs_cap, sluice_bytes *head, int *err)
{
    return read_timed(r, lim, parse_res, res, hdrs, hdrs_cap, head, err);
}
