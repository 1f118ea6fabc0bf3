/*
 * http_parse.c — request and status lines, then the field block
 * (fields.c): a pure function over one contiguous buffer.
 *
 * The parser restarts from the first byte whenever more bytes arrive. That
 * keeps it free of state that could go stale when the host moves the bytes
 * to a bigger block, and it costs little: heads are capped (16 KiB by
 * default) and most arrive in one read. Request targets are scanned eight
 * bytes at a time, as field values are.
 *
 * Strictness is the point: a proxy and the server behind it must agree on
 * where every message ends, so each ambiguity the RFCs allow a recipient to
 * "handle" (bare LF, obs-fold, whitespace before a colon) is rejected with
 * its own code. Errors are reported as soon as the bytes present prove them,
 * and only from the first max_head_bytes bytes, so a longer buffer never
 * turns a reported error into a different one.
 */
#include "internal.h"

#include "chars.h"
#include "fields.h"

#include <limits.h>
#include <string.h>

/* The end of a run of target bytes starting at p. */
static const unsigned char *scan_target(const unsigned char *p, const unsigned char *e)
{
    while (e - p >= 8) {
        uint64_t x = sluice__load8(p);
        if (sluice__has_less(x, 0x21) | (x & SLUICE__HIGHS) | sluice__has_byte(x, 0x7f) |
            sluice__has_byte(x, '#') | sluice__has_byte(x, '\\'))
            break;
        p += 8;
    }
    while (p < e && sluice__is(*p, SLUICE__C_TARGET))
        p++;
    return p;
}

/* Scan state: bytes are read only below `end` (the buffer's end or the head
 * byte limit, whichever comes first). Step functions return 1 when done, 0
 * when they need bytes past `end`, or an error with `err` set. */
typedef struct cur {
    const unsigned char *end;
    const unsigned char *err;
} cur;

static int fail(cur *c, const unsigned char *at, int code)
{
    c->err = at;
    return code;
}

/* p (< end) is CR or LF where a line may end: 1 for CRLF; a bare LF is
 * SLUICE_EBARE_LF; CR followed by anything else is SLUICE_EBARE_CR. */
static int crlf(cur *c, const unsigned char *p)
{
    if (*p == '\n')
        return fail(c, p, SLUICE_EBARE_LF);
    if (p + 1 == c->end)
        return 0;
    return p[1] == '\n' ? 1 : fail(c, p, SLUICE_EBARE_CR);
}

/* Classifies an unexpected byte in a start line: whitespace, an early line
 * end, or some other byte. */
static int stray(cur *c, const unsigned char *p, int ws, int eol, int other)
{
    switch (*p) {
    case ' ':
    case '\t':
        return fail(c, p, ws);
    case '\r':
    case '\n': {
        int r = crlf(c, p);
        return r <= 0 ? r : fail(c, p, eol);
    }
    default:
        return fail(c, p, other);
    }
}

/* `HTTP/<digit>.<digit>` at v. A mismatch on the first byte is a start-line
 * error (`first`), later ones a malformed version (`bad`). */
static int version(cur *c, const unsigned char *v, int first, int bad)
{
    static const char pat[] = "HTTP/0.0";
    for (int i = 0; i < 8; i++) {
        if (v + i == c->end)
            return 0;
        int ok = (i == 5 || i == 7) ? sluice__is(v[i], SLUICE__C_DIGIT)
                                    : v[i] == (unsigned char)pat[i];
        if (!ok)
            return i == 0 ? stray(c, v, first, first, bad) : stray(c, v + i, bad, bad, bad);
    }
    return 1;
}

/* The field block at *pp, its faults mapped to the head's codes. */
static int fields(cur *c, const unsigned char **pp, sluice_http_header *h, size_t maxh,
                  size_t *nh)
{
    static const int code[] = {
        [SLUICE__F_NAME] = SLUICE_EBAD_HEADER_NAME,
        [SLUICE__F_WS_COLON] = SLUICE_EWS_BEFORE_COLON,
        [SLUICE__F_NO_COLON] = SLUICE_ENO_COLON,
        [SLUICE__F_FOLD] = SLUICE_EOBS_FOLD,
        [SLUICE__F_VALUE] = SLUICE_EBAD_HEADER_VALUE,
        [SLUICE__F_VALUE_CR] = SLUICE_EBAD_HEADER_VALUE, /* a CR inside a value */
        [SLUICE__F_BARE_LF] = SLUICE_EBARE_LF,
        [SLUICE__F_BARE_CR] = SLUICE_EBARE_CR,
        [SLUICE__F_TOO_MANY] = SLUICE_ETOO_MANY_HEADERS,
    };
    sluice__fields f = {h, maxh, 0, SLUICE__F_NONE, NULL};
    int r = sluice__fields_parse(*pp, c->end, &f, pp);
    if (r < 0)
        return fail(c, f.at, code[f.fault]);
    *nh = f.n;
    return r;
}

int sluice__hostport_valid(const unsigned char *p, size_t n, int need_port)
{
    const unsigned char *e = p + n, *q = p, *s;
    if (n == 0)
        return 0;
    if (*q == '[') {
        /* IPv6address or IPvFuture, checked by byte class only */
        s = ++q;
        int future = q < e && (*q == 'v' || *q == 'V');
        while (q < e && *q != ']') {
            if (!sluice__is(*q, SLUICE__C_HEX) && *q != ':' && *q != '.' &&
                !(future && sluice__is(*q, SLUICE__C_HOST)))
                return 0;
            q++;
        }
        if (q == e || q == s)
            return 0;
        q++;
    } else {
        s = q;
        while (q < e && *q != ':') {
            if (*q == '%') {
                if (e - q < 3 || sluice__hexval(q[1]) < 0 || sluice__hexval(q[2]) < 0)
                    return 0;
                q += 3;
                continue;
            }
            if (!sluice__is(*q, SLUICE__C_HOST))
                return 0;
            q++;
        }
        if (q == s)
            return 0;
    }
    if (q == e)
        return !need_port;
    if (*q != ':')
        return 0;
    s = ++q;
    while (q < e && sluice__is(*q, SLUICE__C_DIGIT))
        q++;
    return q == e && (q > s || !need_port);
}

/* scheme "://" authority [ path-abempty ] [ "?" query ] at t[0, n), or 0
 * when t does not start with a scheme and "://". */
static int absolute_target(sluice_http_request *r, const unsigned char *t, size_t n)
{
    static const char slash[] = "/";
    const unsigned char *e = t + n, *q = t;
    if ((unsigned)(sluice__lower(*q) - 'a') >= 26u)
        return 0;
    while (q < e && sluice__is(*q, SLUICE__C_SCHEME))
        q++;
    if (e - q < 3 || q[0] != ':' || q[1] != '/' || q[2] != '/')
        return 0;
    const unsigned char *a = q + 3, *ae = a;
    while (ae < e && *ae != '/' && *ae != '?')
        ae++;
    if (!sluice__hostport_valid(a, (size_t)(ae - a), 0))
        return SLUICE_EBAD_TARGET;
    r->form = SLUICE_HTTP_TARGET_ABSOLUTE;
    r->scheme = (const char *)t;
    r->scheme_len = (size_t)(q - t);
    r->authority = (const char *)a;
    r->authority_len = (size_t)(ae - a);
    r->path = ae == e ? slash : (const char *)ae;
    r->path_len = ae == e ? 1 : (size_t)(e - ae);
    return 1;
}

/* Sets the target form and its spans (RFC 9112 section 3.2). */
static int classify_target(sluice_http_request *r, const unsigned char *t, size_t n)
{
    r->scheme = r->authority = r->path = NULL;
    r->scheme_len = r->authority_len = r->path_len = 0;
    if (t[0] == '/') {
        r->form = SLUICE_HTTP_TARGET_ORIGIN;
        r->path = (const char *)t;
        r->path_len = n;
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        r->form = SLUICE_HTTP_TARGET_ASTERISK;
        return 0;
    }
    int a = absolute_target(r, t, n);
    if (a != 0)
        return a < 0 ? a : 0;
    if (!sluice__hostport_valid(t, n, 1))
        return SLUICE_EBAD_TARGET;
    r->form = SLUICE_HTTP_TARGET_AUTHORITY;
    r->authority = (const char *)t;
    r->authority_len = n;
    return 0;
}

static void limits(const sluice_http_limits *lim, size_t hdrs_cap, size_t *maxb, size_t *maxh)
{
    *maxb = lim && lim->max_head_bytes ? lim->max_head_bytes : SLUICE_HTTP_DEFAULT_MAX_HEAD_BYTES;
    *maxh = lim && lim->max_headers ? lim->max_headers : SLUICE_HTTP_DEFAULT_MAX_HEADERS;
    if (*maxh > hdrs_cap)
        *maxh = hdrs_cap;
    /* the result is an int: head length plus up to 16 bytes of empty lines */
    if (*maxb > (size_t)INT_MAX - 2 * SLUICE_HTTP_MAX_EMPTY_LINES)
        *maxb = (size_t)INT_MAX - 2 * SLUICE_HTTP_MAX_EMPTY_LINES;
}

/* Scans at most maxb bytes from `start`. */
static void clamp(cur *c, const unsigned char *start, const unsigned char *e, size_t maxb)
{
    c->end = (size_t)(e - start) > maxb ? start + maxb : e;
    c->err = NULL;
}

/*
 * RFC 9112 section 2.2: a few empty lines before a start line are ignored.
 * Requests: up to SLUICE_HTTP_MAX_EMPTY_LINES (more is an error). Responses:
 * one, which some servers send after a 100 (Continue). Moves *pp past them.
 */
static int empty_lines(cur *c, const unsigned char **pp, int max, int too_many)
{
    const unsigned char *p = *pp;
    for (int n = 0; p < c->end && (*p == '\r' || *p == '\n'); n++) {
        if (*p == '\n')
            return fail(c, p, SLUICE_EBARE_LF);
        if (n == max)
            return fail(c, p, too_many);
        int r = crlf(c, p);
        if (r <= 0)
            return r;
        p += 2;
    }
    *pp = p;
    return 1;
}

/* `method SP request-target SP HTTP-version CRLF` at *pp. */
static int request_line(cur *c, const unsigned char **pp, sluice_http_request *req)
{
    const unsigned char *p = *pp, *m = p;
    while (p < c->end && sluice__is(*p, SLUICE__C_TOKEN))
        p++;
    if (p == c->end)
        return 0;
    if (*p != ' ' || p == m)
        return stray(c, p, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_METHOD);
    req->method = (const char *)m;
    req->method_len = (size_t)(p - m);
    const unsigned char *t = ++p;
    p = scan_target(p, c->end);
    if (p == c->end)
        return 0;
    if (*p != ' ' || p == t)
        return stray(c, p, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_TARGET);
    req->target = (const char *)t;
    req->target_len = (size_t)(p - t);
    int r = classify_target(req, t, req->target_len);
    if (r < 0)
        return fail(c, t, r);
    const unsigned char *v = ++p;
    if ((r = version(c, v, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_VERSION)) <= 0)
        return r;
    p = v + 8;
    if (p == c->end)
        return 0;
    if (*p != '\r')
        return stray(c, p, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_VERSION);
    if ((r = crlf(c, p)) <= 0)
        return r;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return fail(c, v, SLUICE_EVERSION);
    req->minor_version = v[7] - '0';
    *pp = p + 2;
    return 1;
}

/* `HTTP-version SP 3DIGIT [ SP reason-phrase ] CRLF` at *pp; the SP before
 * an empty reason is missing in the wild. */
static int status_line(cur *c, const unsigned char **pp, sluice_http_response *res)
{
    const unsigned char *v = *pp, *p = v + 8;
    int r = version(c, v, SLUICE_EBAD_STATUS_LINE, SLUICE_EBAD_STATUS_LINE);
    if (r <= 0)
        return r;
    if (p == c->end)
        return 0;
    if (*p != ' ')
        return stray(c, p, SLUICE_EBAD_STATUS_LINE, SLUICE_EBAD_STATUS_LINE, SLUICE_EBAD_STATUS_LINE);
    int status = 0;
    for (int i = 0; i < 3; i++) {
        if (++p == c->end)
            return 0;
        if (!sluice__is(*p, SLUICE__C_DIGIT))
            return stray(c, p, SLUICE_EBAD_STATUS_LINE, SLUICE_EBAD_STATUS_LINE,
                         SLUICE_EBAD_STATUS_LINE);
        status = status * 10 + (*p - '0');
    }
    if (status < 100 || status > 599) /* RFC 9110 section 15 */
        return fail(c, p - 2, SLUICE_EBAD_STATUS_LINE);
    if (++p == c->end)
        return 0;
    const unsigned char *reason = p;
    if (*p == ' ') {
        reason = ++p;
        if ((p = sluice__scan_value(p, c->end)) == c->end)
            return 0;
    }
    if (*p != '\r')
        return fail(c, p, *p == '\n' ? SLUICE_EBARE_LF : SLUICE_EBAD_STATUS_LINE);
    if ((r = crlf(c, p)) <= 0)
        return r;
    if (v[5] != '1')
        return fail(c, v, SLUICE_EVERSION);
    res->minor_version = v[7] - '0';
    res->status = status;
    res->reason = (const char *)reason;
    res->reason_len = (size_t)(p - reason);
    *pp = p + 2;
    return 1;
}

/* What a step's result means at the top level: 0 past a clamped end is a
 * head that is too large; an error sets *err_offset. */
static int result(cur *c, int r, const unsigned char *b, const unsigned char *e,
                  size_t *err_offset)
{
    if (r == 0 && c->end < e)
        r = fail(c, c->end, SLUICE_EHEAD_TOO_LARGE);
    *err_offset = r < 0 ? (size_t)(c->err - b) : 0;
    return r;
}

ssize_t sluice_http_parse_request(const void *buf, size_t len, const sluice_http_limits *lim,
                              sluice_http_request *req, sluice_http_header *hdrs,
                              size_t hdrs_cap)
{
    const unsigned char *b = buf, *e = b + len, *p = b;
    size_t maxb, maxh;
    cur c = {e, NULL};
    limits(lim, hdrs_cap, &maxb, &maxh);
    int r = empty_lines(&c, &p, SLUICE_HTTP_MAX_EMPTY_LINES, SLUICE_ETOO_MANY_EMPTY_LINES);
    if (r > 0) {
        clamp(&c, p, e, maxb);
        r = request_line(&c, &p, req);
    }
    if (r > 0)
        r = fields(&c, &p, hdrs, maxh, &req->num_headers);
    if (r <= 0)
        return result(&c, r, b, e, &req->error_offset);
    req->headers = hdrs;
    req->head_len = (size_t)(p - b);
    req->error_offset = 0;
    return (ssize_t)req->head_len;
}

ssize_t sluice_http_parse_response(const void *buf, size_t len, const sluice_http_limits *lim,
                               sluice_http_response *res, sluice_http_header *hdrs,
                               size_t hdrs_cap)
{
    const unsigned char *b = buf, *e = b + len, *p = b;
    size_t maxb, maxh;
    cur c = {e, NULL};
    limits(lim, hdrs_cap, &maxb, &maxh);
    int r = empty_lines(&c, &p, 1, SLUICE_EBAD_STATUS_LINE);
    if (r > 0) {
        clamp(&c, p, e, maxb);
        r = status_line(&c, &p, res);
    }
    if (r > 0)
        r = fields(&c, &p, hdrs, maxh, &res->num_headers);
    if (r <= 0)
        return result(&c, r, b, e, &res->error_offset);
    res->headers = hdrs;
    res->head_len = (size_t)(p - b);
    res->error_offset = 0;
    return (ssize_t)res->head_len;
}
