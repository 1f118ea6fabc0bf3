/*
 * http.c — HTTP/1.1 heads: parser, framing rules, helpers and head builders.
 *
 * The parser is a pure function over one contiguous buffer, restarted from
 * the first byte whenever more bytes arrive. That keeps it free of state that
 * could go stale when the host moves the bytes to a bigger block, and it costs
 * little: heads are capped (16 KiB by default) and most arrive in one read.
 * Scanning follows picohttpparser: tight loops with a 256-byte class table,
 * and for the long runs (request targets, field values) a word-at-a-time
 * check of 8 bytes for any byte that would stop the run, falling back to the
 * table only near the end of the run.
 *
 * Strictness is the point: a proxy and the server behind it must agree on
 * where every message ends, so each ambiguity the RFCs allow a recipient to
 * "handle" (bare LF, obs-fold, whitespace before a colon, repeated
 * Content-Length, codings other than exactly chunked) is rejected with its
 * own code. Errors are reported as soon as the bytes present prove them, and
 * only from the first max_head_bytes bytes, so a longer buffer never turns a
 * reported error into a different one.
 */
#include "internal.h"
#include "sluice/http.h"

#include <limits.h>
#include <string.h>

/* ---- byte classes -------------------------------------------------------- */

enum {
    C_TOKEN = 0x01,  /* tchar (RFC 9110 section 5.6.2)                         */
    C_VALUE = 0x02,  /* field-vchar, SP, HTAB, obs-text                        */
    C_TARGET = 0x04, /* visible ASCII but '#' and '\\'                         */
    C_HOST = 0x08,   /* reg-name: unreserved and sub-delims but ','            */
    C_DIGIT = 0x10,
    C_HEX = 0x20,
    C_SCHEME = 0x40, /* ALPHA DIGIT "+" "-" "."                                */
    C_WS = 0x80      /* SP HTAB                                                */
};

static const unsigned char ct[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x82, 0x0f, 0x06, 0x03, 0x0f, 0x07, 0x0f, 0x0f, 0x0e, 0x0e, 0x0f, 0x4f, 0x06, 0x4f, 0x4f, 0x06,
    0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x06, 0x0e, 0x06, 0x0e, 0x06, 0x06,
    0x06, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f,
    0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x06, 0x02, 0x06, 0x07, 0x0f,
    0x07, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x6f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f,
    0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x4f, 0x06, 0x07, 0x06, 0x0f, 0x00,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
};

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Non-zero if some byte of x is below n (n <= 128); exact as a yes/no. */
static inline uint64_t has_less(uint64_t x, unsigned n)
{
    return (x - ONES * n) & ~x & HIGHS;
}

static inline uint64_t has_byte(uint64_t x, unsigned char b)
{
    return has_less(x ^ (ONES * b), 1);
}

static inline uint64_t load8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

/* The end of a run of target bytes starting at p. */
static const unsigned char *scan_target(const unsigned char *p, const unsigned char *e)
{
    while (e - p >= 8) {
        uint64_t x = load8(p);
        if (has_less(x, 0x21) | (x & HIGHS) | has_byte(x, 0x7f) | has_byte(x, '#') |
            has_byte(x, '\\'))
            break;
        p += 8;
    }
    while (p < e && (ct[*p] & C_TARGET))
        p++;
    return p;
}

/* The end of a run of field-value bytes starting at p. */
static const unsigned char *scan_value(const unsigned char *p, const unsigned char *e)
{
    while (e - p >= 8) {
        uint64_t x = load8(p);
        if (has_less(x, 0x20) | has_byte(x, 0x7f))
            break;
        p += 8;
    }
    while (p < e && (ct[*p] & C_VALUE))
        p++;
    return p;
}

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c + 32 : c);
}

/* a[0, n) equals the NUL-terminated s, ignoring ASCII case. */
static int eq_ci(const char *a, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || lower((unsigned char)a[i]) != lower((unsigned char)s[i]))
            return 0;
    return s[n] == '\0';
}

static int eq(const char *a, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(a, s, n) == 0;
}

/* ---- parser -------------------------------------------------------------- */

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
 * SLUICE_EBARE_LF; CR followed by anything else is `bare_cr`. */
static int crlf(cur *c, const unsigned char *p, int bare_cr)
{
    if (*p == '\n')
        return fail(c, p, SLUICE_EBARE_LF);
    if (p + 1 == c->end)
        return 0;
    if (p[1] != '\n')
        return fail(c, p, bare_cr);
    return 1;
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
        int r = crlf(c, p, SLUICE_EBARE_CR);
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
        int ok = (i == 5 || i == 7) ? (ct[v[i]] & C_DIGIT) : v[i] == (unsigned char)pat[i];
        if (!ok)
            return i == 0 ? stray(c, v, first, first, bad) : stray(c, v + i, bad, bad, bad);
    }
    return 1;
}

/* A header line that is not `token ":"`; name..p is the token part, p < end
 * the first byte after it. */
static int bad_name(cur *c, const unsigned char *name, const unsigned char *p)
{
    int r;
    if (p == name)
        return fail(c, p, SLUICE_EBAD_HEADER_NAME);
    switch (*p) {
    case ' ':
    case '\t': {
        const unsigned char *q = p;
        while (q < c->end && (ct[*q] & C_WS))
            q++;
        if (q == c->end)
            return 0;
        if (*q == ':')
            return fail(c, p, SLUICE_EWS_BEFORE_COLON);
        if (*q == '\r' || *q == '\n') {
            r = crlf(c, q, SLUICE_EBARE_CR);
            return r <= 0 ? r : fail(c, p, SLUICE_ENO_COLON);
        }
        return fail(c, p, SLUICE_EBAD_HEADER_NAME);
    }
    case '\r':
    case '\n':
        r = crlf(c, p, SLUICE_EBARE_CR);
        return r <= 0 ? r : fail(c, p, SLUICE_ENO_COLON);
    default:
        return fail(c, p, SLUICE_EBAD_HEADER_NAME);
    }
}

/* Header field lines from *pp through the empty line that ends the head. */
static int fields(cur *c, const unsigned char **pp, sluice_http_header *h, size_t maxh,
                  size_t *nh)
{
    const unsigned char *p = *pp, *e = c->end;
    size_t n = 0;
    int r;
    for (;;) {
        if (p == e)
            return 0;
        switch (*p) {
        case '\r':
            r = crlf(c, p, SLUICE_EBARE_CR);
            if (r <= 0)
                return r;
            *pp = p + 2;
            *nh = n;
            return 1;
        case '\n':
            return fail(c, p, SLUICE_EBARE_LF);
        case ' ':
        case '\t':
            return fail(c, p, SLUICE_EOBS_FOLD);
        default:
            break;
        }
        if (n == maxh)
            return fail(c, p, SLUICE_ETOO_MANY_HEADERS);
        const unsigned char *name = p;
        while (p < e && (ct[*p] & C_TOKEN))
            p++;
        if (p == e)
            return 0;
        if (*p != ':' || p == name)
            return bad_name(c, name, p);
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < e && (ct[*p] & C_WS))
            p++;
        const unsigned char *v = p;
        p = scan_value(p, e);
        if (p == e)
            return 0;
        if (*p != '\r')
            return fail(c, p, *p == '\n' ? SLUICE_EBARE_LF : SLUICE_EBAD_HEADER_VALUE);
        /* A CR inside a value is a forbidden value byte, not a line end. */
        r = crlf(c, p, SLUICE_EBAD_HEADER_VALUE);
        if (r <= 0)
            return r;
        const unsigned char *ve = p;
        while (ve > v && (ct[ve[-1]] & C_WS))
            ve--;
        h[n].name = (const char *)name;
        h[n].name_len = name_len;
        h[n].value = (const char *)v;
        h[n].value_len = (size_t)(ve - v);
        n++;
        p += 2;
    }
}

/* uri-host [ ":" port ] (RFC 3986 section 3.2.2): no userinfo, path, list
 * or empty host. need_port: authority-form, where the port is mandatory. */
static int valid_hostport(const unsigned char *p, size_t n, int need_port)
{
    const unsigned char *e = p + n, *q = p, *s;
    if (n == 0)
        return 0;
    if (*q == '[') {
        /* IPv6address or IPvFuture, checked by byte class only */
        s = ++q;
        int future = q < e && (*q == 'v' || *q == 'V');
        while (q < e && *q != ']') {
            if (!(ct[*q] & C_HEX) && *q != ':' && *q != '.' &&
                !(future && (ct[*q] & C_HOST)))
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
                if (e - q < 3 || !(ct[q[1]] & C_HEX) || !(ct[q[2]] & C_HEX))
                    return 0;
                q += 3;
                continue;
            }
            if (!(ct[*q] & C_HOST))
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
    while (q < e && (ct[*q] & C_DIGIT))
        q++;
    return q == e && (q > s || !need_port);
}

/* Sets the target form and its spans (RFC 9112 section 3.2). */
static int classify_target(sluice_http_request *r, const unsigned char *t, size_t n)
{
    static const char slash[] = "/";
    const unsigned char *e = t + n, *q;
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
    q = t;
    if ((unsigned)(lower(*q) - 'a') < 26u) {
        while (q < e && (ct[*q] & C_SCHEME))
            q++;
        if (e - q >= 3 && q[0] == ':' && q[1] == '/' && q[2] == '/') {
            const unsigned char *a = q + 3, *ae = a;
            while (ae < e && *ae != '/' && *ae != '?')
                ae++;
            if (!valid_hostport(a, (size_t)(ae - a), 0))
                return SLUICE_EBAD_TARGET;
            r->form = SLUICE_HTTP_TARGET_ABSOLUTE;
            r->scheme = (const char *)t;
            r->scheme_len = (size_t)(q - t);
            r->authority = (const char *)a;
            r->authority_len = (size_t)(ae - a);
            if (ae == e) {
                r->path = slash;
                r->path_len = 1;
            } else {
                r->path = (const char *)ae;
                r->path_len = (size_t)(e - ae);
            }
            return 0;
        }
    }
    if (!valid_hostport(t, n, 1))
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

/* Scans at most maxb bytes from `start`; running out of them with more
 * bytes in the buffer means the head is too large. */
static void clamp(cur *c, const unsigned char *start, const unsigned char *e, size_t maxb)
{
    c->end = (size_t)(e - start) > maxb ? start + maxb : e;
    c->err = NULL;
}

/* What a step's 0 means at the top level. */
static int need(cur *c, const unsigned char *e)
{
    return c->end < e ? fail(c, c->end, SLUICE_EHEAD_TOO_LARGE) : 0;
}

int sluice_http_parse_request(const void *buf, size_t len, const sluice_http_limits *lim,
                              sluice_http_request *req, sluice_http_header *hdrs,
                              size_t hdrs_cap)
{
    if (len == 0)
        return 0;
    const unsigned char *b = buf, *e = b + len, *p = b;
    size_t maxb, maxh;
    int r;
    cur c = {e, NULL};
    limits(lim, hdrs_cap, &maxb, &maxh);

    /* RFC 9112 section 2.2: ignore a few empty lines before the request. */
    for (int n = 0; p < e && (*p == '\r' || *p == '\n'); n++) {
        if (*p == '\n') {
            r = fail(&c, p, SLUICE_EBARE_LF);
            goto out;
        }
        if (n == SLUICE_HTTP_MAX_EMPTY_LINES) {
            r = fail(&c, p, SLUICE_ETOO_MANY_EMPTY_LINES);
            goto out;
        }
        if ((r = crlf(&c, p, SLUICE_EBARE_CR)) <= 0)
            goto out;
        p += 2;
    }
    clamp(&c, p, e, maxb);

    /* method SP */
    const unsigned char *m = p;
    while (p < c.end && (ct[*p] & C_TOKEN))
        p++;
    if (p == c.end) {
        r = 0;
        goto out;
    }
    if (*p != ' ' || p == m) {
        r = stray(&c, p, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_METHOD);
        goto out;
    }
    req->method = (const char *)m;
    req->method_len = (size_t)(p - m);
    p++;

    /* request-target SP */
    const unsigned char *t = p;
    p = scan_target(p, c.end);
    if (p == c.end) {
        r = 0;
        goto out;
    }
    if (*p != ' ' || p == t) {
        r = stray(&c, p, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_TARGET);
        goto out;
    }
    req->target = (const char *)t;
    req->target_len = (size_t)(p - t);
    if ((r = classify_target(req, t, req->target_len)) < 0) {
        fail(&c, t, r);
        goto out;
    }
    p++;

    /* HTTP-version CRLF */
    const unsigned char *v = p;
    if ((r = version(&c, v, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_VERSION)) <= 0)
        goto out;
    p = v + 8;
    if (p == c.end) {
        r = 0;
        goto out;
    }
    if (*p != '\r') {
        r = stray(&c, p, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_REQUEST_LINE, SLUICE_EBAD_VERSION);
        goto out;
    }
    if ((r = crlf(&c, p, SLUICE_EBARE_CR)) <= 0)
        goto out;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) {
        r = fail(&c, v, SLUICE_EVERSION);
        goto out;
    }
    req->minor_version = v[7] - '0';
    p += 2;

    if ((r = fields(&c, &p, hdrs, maxh, &req->num_headers)) <= 0)
        goto out;
    req->headers = hdrs;
    req->head_len = (size_t)(p - b);
    req->error_offset = 0;
    return (int)req->head_len;
out:
    if (r == 0)
        r = need(&c, e);
    if (r < 0)
        req->error_offset = (size_t)(c.err - b);
    return r;
}

int sluice_http_parse_response(const void *buf, size_t len, const sluice_http_limits *lim,
                               sluice_http_response *res, sluice_http_header *hdrs,
                               size_t hdrs_cap)
{
    if (len == 0)
        return 0;
    const unsigned char *b = buf, *e = b + len, *p = b;
    size_t maxb, maxh;
    int r;
    cur c;
    limits(lim, hdrs_cap, &maxb, &maxh);
    clamp(&c, b, e, maxb);

    /* HTTP-version SP */
    const unsigned char *v = p;
    if ((r = version(&c, v, SLUICE_EBAD_STATUS_LINE, SLUICE_EBAD_STATUS_LINE)) <= 0)
        goto out;
    p = v + 8;
    if (p == c.end) {
        r = 0;
        goto out;
    }
    if (*p != ' ') {
        r = stray(&c, p, SLUICE_EBAD_STATUS_LINE, SLUICE_EBAD_STATUS_LINE, SLUICE_EBAD_STATUS_LINE);
        goto out;
    }
    p++;

    /* status-code: 3DIGIT, 100..599 (RFC 9110 section 15) */
    int status = 0;
    for (int i = 0; i < 3; i++, p++) {
        if (p == c.end) {
            r = 0;
            goto out;
        }
        if (!(ct[*p] & C_DIGIT)) {
            r = stray(&c, p, SLUICE_EBAD_STATUS_LINE, SLUICE_EBAD_STATUS_LINE,
                      SLUICE_EBAD_STATUS_LINE);
            goto out;
        }
        status = status * 10 + (*p - '0');
    }
    if (status < 100 || status > 599) {
        r = fail(&c, p - 3, SLUICE_EBAD_STATUS_LINE);
        goto out;
    }

    /* [ SP reason-phrase ] CRLF: the SP is missing in the wild when the
     * reason is empty. */
    if (p == c.end) {
        r = 0;
        goto out;
    }
    const unsigned char *reason = p;
    if (*p == ' ') {
        reason = ++p;
        p = scan_value(p, c.end);
        if (p == c.end) {
            r = 0;
            goto out;
        }
    }
    if (*p != '\r') {
        r = fail(&c, p, *p == '\n' ? SLUICE_EBARE_LF : SLUICE_EBAD_STATUS_LINE);
        goto out;
    }
    if ((r = crlf(&c, p, SLUICE_EBARE_CR)) <= 0)
        goto out;
    if (v[5] != '1') {
        r = fail(&c, v, SLUICE_EVERSION);
        goto out;
    }
    res->minor_version = v[7] - '0';
    res->status = status;
    res->reason = (const char *)reason;
    res->reason_len = (size_t)(p - reason);
    p += 2;

    if ((r = fields(&c, &p, hdrs, maxh, &res->num_headers)) <= 0)
        goto out;
    res->headers = hdrs;
    res->head_len = (size_t)(p - b);
    res->error_offset = 0;
    return (int)res->head_len;
out:
    if (r == 0)
        r = need(&c, e);
    if (r < 0)
        res->error_offset = (size_t)(c.err - b);
    return r;
}

int sluice_http_request_check_target(const sluice_http_request *req)
{
    int connect = eq(req->method, req->method_len, "CONNECT");
    switch (req->form) {
    case SLUICE_HTTP_TARGET_ASTERISK:
        return eq(req->method, req->method_len, "OPTIONS") ? 0 : SLUICE_EBAD_TARGET;
    case SLUICE_HTTP_TARGET_AUTHORITY:
        return connect ? 0 : SLUICE_EBAD_TARGET;
    default:
        return connect ? SLUICE_EBAD_TARGET : 0;
    }
}

/* ---- helpers ------------------------------------------------------------- */

const sluice_http_header *sluice_http_header_next(const sluice_http_header *hdrs, size_t n,
                                                  const char *name,
                                                  const sluice_http_header *prev)
{
    size_t i = prev ? (size_t)(prev - hdrs) + 1 : 0;
    for (; i < n; i++)
        if (eq_ci(hdrs[i].name, hdrs[i].name_len, name))
            return &hdrs[i];
    return NULL;
}

const sluice_http_header *sluice_http_header_find(const sluice_http_header *hdrs, size_t n,
                                                  const char *name)
{
    return sluice_http_header_next(hdrs, n, name, NULL);
}

size_t sluice_http_header_count(const sluice_http_header *hdrs, size_t n, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)eq_ci(hdrs[i].name, hdrs[i].name_len, name);
    return k;
}

int sluice_http_list_has(const char *list, size_t len, const char *token)
{
    const char *p = list, *e = list + len;
    while (p < e) {
        const char *s = p;
        while (p < e && *p != ',')
            p++;
        const char *q = p;
        while (s < q && (ct[(unsigned char)*s] & C_WS))
            s++;
        while (q > s && (ct[(unsigned char)q[-1]] & C_WS))
            q--;
        if (eq_ci(s, (size_t)(q - s), token))
            return 1;
        if (p < e)
            p++;
    }
    return 0;
}

int sluice_http_header_has_token(const sluice_http_header *hdrs, size_t n, const char *name,
                                 const char *token)
{
    for (const sluice_http_header *h = NULL; (h = sluice_http_header_next(hdrs, n, name, h));)
        if (sluice_http_list_has(h->value, h->value_len, token))
            return 1;
    return 0;
}

int sluice_http_header_is_hop_by_hop(const sluice_http_header *hdrs, size_t n,
                                     const sluice_http_header *h)
{
    static const char *const fixed[] = {"connection", "proxy-connection", "keep-alive",
                                        "te", "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (eq_ci(h->name, h->name_len, fixed[i]))
            return 1;
    for (const sluice_http_header *c = NULL;
         (c = sluice_http_header_next(hdrs, n, "connection", c));) {
        const char *p = c->value, *e = p + c->value_len;
        while (p < e) {
            const char *s = p;
            while (p < e && *p != ',')
                p++;
            const char *q = p;
            while (s < q && (ct[(unsigned char)*s] & C_WS))
                s++;
            while (q > s && (ct[(unsigned char)q[-1]] & C_WS))
                q--;
            if ((size_t)(q - s) == h->name_len) {
                size_t k = 0;
                while (k < h->name_len && lower((unsigned char)s[k]) ==
                                              lower((unsigned char)h->name[k]))
                    k++;
                if (k == h->name_len)
                    return 1;
            }
            if (p < e)
                p++;
        }
    }
    return 0;
}

static int keep_alive(const sluice_http_header *h, size_t n, int minor)
{
    if (sluice_http_header_has_token(h, n, "connection", "close"))
        return 0;
    return minor >= 1 || sluice_http_header_has_token(h, n, "connection", "keep-alive");
}

int sluice_http_request_keep_alive(const sluice_http_request *req)
{
    return keep_alive(req->headers, req->num_headers, req->minor_version);
}

int sluice_http_response_keep_alive(const sluice_http_response *res)
{
    return keep_alive(res->headers, res->num_headers, res->minor_version);
}

sluice_http_expect sluice_http_request_expect(const sluice_http_request *req)
{
    int cont = 0;
    for (const sluice_http_header *h = NULL;
         (h = sluice_http_header_next(req->headers, req->num_headers, "expect", h));) {
        if (!eq_ci(h->value, h->value_len, "100-continue"))
            return SLUICE_HTTP_EXPECT_OTHER;
        cont = 1;
    }
    /* RFC 9110 section 10.1.1: ignore 100-continue from an HTTP/1.0 client. */
    return cont && req->minor_version >= 1 ? SLUICE_HTTP_EXPECT_CONTINUE : SLUICE_HTTP_EXPECT_NONE;
}

/* ---- framing ------------------------------------------------------------- */

/* 1*DIGIT up to 2^63-1. A list of such numbers is a repeated field. */
static int content_length(const char *v, size_t n, uint64_t *out)
{
    const unsigned char *p = (const unsigned char *)v, *e = p + n;
    uint64_t x = 0;
    if (n == 0)
        return SLUICE_EBAD_CONTENT_LENGTH;
    if (memchr(v, ',', n)) {
        for (;;) {
            while (p < e && (ct[*p] & C_WS))
                p++;
            const unsigned char *s = p;
            while (p < e && (ct[*p] & C_DIGIT))
                p++;
            if (p == s)
                return SLUICE_EBAD_CONTENT_LENGTH;
            while (p < e && (ct[*p] & C_WS))
                p++;
            if (p == e)
                return SLUICE_EDUP_CONTENT_LENGTH;
            if (*p++ != ',')
                return SLUICE_EBAD_CONTENT_LENGTH;
        }
    }
    for (; p < e; p++) {
        if (!(ct[*p] & C_DIGIT))
            return SLUICE_EBAD_CONTENT_LENGTH;
        unsigned d = *p - '0';
        if (x > (UINT64_C(0x7fffffffffffffff) - d) / 10)
            return SLUICE_EBAD_CONTENT_LENGTH;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

static int framing(const sluice_http_header *h, size_t n, int minor, int response,
                   sluice_http_framing *out)
{
    const sluice_http_header *cl = NULL, *te = NULL;
    size_t ncl = 0, nte = 0;
    for (size_t i = 0; i < n; i++) {
        if (eq_ci(h[i].name, h[i].name_len, "content-length")) {
            cl = cl ? cl : &h[i];
            ncl++;
        } else if (eq_ci(h[i].name, h[i].name_len, "transfer-encoding")) {
            te = te ? te : &h[i];
            nte++;
        }
    }
    if (nte) {
        if (minor == 0)
            return SLUICE_ETE_HTTP10;
        if (ncl)
            return SLUICE_ECL_AND_TE;
        if (nte > 1)
            return SLUICE_EBAD_TRANSFER_ENCODING;
        if (eq_ci(te->value, te->value_len, "chunked")) {
            out->body = SLUICE_HTTP_BODY_CHUNKED;
            return 0;
        }
        /* RFC 9112 section 6.3 item 4: a response whose codings do not end
         * in chunked runs until close; a request cannot be delimited. */
        if (!response || sluice_http_list_has(te->value, te->value_len, "chunked"))
            return SLUICE_EBAD_TRANSFER_ENCODING;
        out->body = SLUICE_HTTP_BODY_CLOSE;
        return 0;
    }
    if (ncl) {
        if (ncl > 1)
            return SLUICE_EDUP_CONTENT_LENGTH;
        int r = content_length(cl->value, cl->value_len, &out->length);
        if (r < 0)
            return r;
        out->body = SLUICE_HTTP_BODY_LENGTH;
        return 0;
    }
    out->body = response ? SLUICE_HTTP_BODY_CLOSE : SLUICE_HTTP_BODY_NONE;
    return 0;
}

int sluice_http_request_framing(const sluice_http_request *req, sluice_http_framing *out)
{
    *out = (sluice_http_framing){SLUICE_HTTP_BODY_NONE, 0};
    int r = framing(req->headers, req->num_headers, req->minor_version, 0, out);
    if (r < 0)
        *out = (sluice_http_framing){SLUICE_HTTP_BODY_NONE, 0};
    return r;
}

int sluice_http_response_framing(const sluice_http_response *res, const char *method,
                                 size_t method_len, sluice_http_framing *out)
{
    *out = (sluice_http_framing){SLUICE_HTTP_BODY_NONE, 0};
    int s = res->status;
    if (eq(method, method_len, "HEAD") || s / 100 == 1 || s == 204 || s == 304 ||
        (s / 100 == 2 && eq(method, method_len, "CONNECT")))
        return 0;
    int r = framing(res->headers, res->num_headers, res->minor_version, 1, out);
    if (r < 0)
        *out = (sluice_http_framing){SLUICE_HTTP_BODY_NONE, 0};
    return r;
}

int sluice_http_request_host(const sluice_http_request *req, const char **host,
                             size_t *host_len)
{
    const sluice_http_header *h = NULL;
    int r = 1;
    switch (sluice_http_header_count(req->headers, req->num_headers, "host")) {
    case 0:
        r = req->minor_version >= 1 ? SLUICE_ENO_HOST : 0;
        break;
    case 1:
        h = sluice_http_header_find(req->headers, req->num_headers, "host");
        if (!valid_hostport((const unsigned char *)h->value, h->value_len, 0)) {
            h = NULL;
            r = SLUICE_EBAD_HOST;
        }
        break;
    default:
        r = SLUICE_EDUP_HOST;
        break;
    }
    if (host)
        *host = h ? h->value : NULL;
    if (host_len)
        *host_len = h ? h->value_len : 0;
    return r;
}

const char *sluice_http_reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 511: return "Network Authentication Required";
    default: return "";
    }
}

int sluice_http_error_status(int code)
{
    switch (code) {
    case SLUICE_EHEAD_TOO_LARGE:
    case SLUICE_ETOO_MANY_HEADERS:
        return 431;
    case SLUICE_EVERSION:
        return 505;
    default:
        break;
    }
    if (code <= SLUICE_EHEAD_TOO_LARGE && code > SLUICE_EBAD_CHUNK_SIZE)
        return 400;
    return 0;
}

int sluice_http_request_error_status(int code)
{
    int st = sluice_http_error_status(code);
    if (st)
        return st;
    switch (code) {
    case SLUICE_ETOOBIG:
    case SLUICE_EBODY_TOO_LARGE:
        return 413;
    case SLUICE_ETIMEDOUT:
        return 408;
    case SLUICE_ENOT_MULTIPART:
        return 415;
    default:
        break;
    }
    /* the chunked-coding (-1180..) and multipart (-1200..) groups: the
     * client sent a malformed body */
    if (code <= SLUICE_EBAD_CHUNK_SIZE && code > -1300)
        return 400;
    return 0;
}

/* ---- head builder -------------------------------------------------------- */

static int setfail(sluice_http_head_builder *b, int code)
{
    sluice_block_release(b->_block);
    b->_block = NULL;
    b->_len = 0;
    b->_err = code;
    return code;
}

static int put(sluice_http_head_builder *b, const void *data, size_t n)
{
    if (!b->_block) {
        /* a head is small and one per message: not refused by the body budget */
        int r = sluice_block_get_reserve(b->_pool, &b->_block);
        if (r < 0) {
            b->_block = NULL;
            return setfail(b, r);
        }
        b->_len = 0;
    }
    if (n > sluice_block_capacity(b->_block) - b->_len)
        return setfail(b, SLUICE_ETOOBIG);
    memcpy(sluice_block_data(b->_block) + b->_len, data, n);
    b->_len += n;
    return 0;
}

static int all_in(const char *p, size_t n, unsigned cls)
{
    for (size_t i = 0; i < n; i++)
        if (!(ct[(unsigned char)p[i]] & cls))
            return 0;
    return 1;
}

/* Fails the builder unless it may take a line now (start: the start line). */
static int ready(sluice_http_head_builder *b, int start, int valid)
{
    if (b->_err)
        return b->_err;
    if (!b->_pool || start == b->_started || !valid)
        return setfail(b, SLUICE_EINVAL);
    return 0;
}

void sluice_http_head_init(sluice_http_head_builder *b, sluice_pool *pool)
{
    *b = (sluice_http_head_builder){pool, NULL, 0, 0, 0};
}

static int request_line(sluice_http_head_builder *b, const char *method, size_t method_len,
                        const char *pre, size_t pre_len, const char *target, size_t target_len)
{
    int r = ready(b, 1, method_len > 0 && all_in(method, method_len, C_TOKEN) &&
                            pre_len + target_len > 0 && all_in(target, target_len, C_TARGET));
    if (r < 0)
        return r;
    if ((r = put(b, method, method_len)) < 0 || (r = put(b, " ", 1)) < 0 ||
        (r = put(b, pre, pre_len)) < 0 || (r = put(b, target, target_len)) < 0 ||
        (r = put(b, " HTTP/1.1\r\n", 11)) < 0)
        return r;
    b->_started = 1;
    return 0;
}

int sluice_http_head_request_line(sluice_http_head_builder *b, const char *method,
                                  size_t method_len, const char *target, size_t target_len)
{
    return request_line(b, method, method_len, "", 0, target, target_len);
}

int sluice_http_head_forward_request_line(sluice_http_head_builder *b,
                                          const sluice_http_request *req)
{
    if (req->form == SLUICE_HTTP_TARGET_ORIGIN || req->form == SLUICE_HTTP_TARGET_ABSOLUTE) {
        int bare_query = req->path_len > 0 && req->path[0] == '?';
        return request_line(b, req->method, req->method_len, "/", bare_query ? 1 : 0,
                            req->path, req->path_len);
    }
    return request_line(b, req->method, req->method_len, "", 0, req->target, req->target_len);
}

int sluice_http_head_status_line(sluice_http_head_builder *b, int status, const char *reason,
                                 size_t reason_len)
{
    if (!reason) {
        reason = sluice_http_reason_phrase(status);
        reason_len = strlen(reason);
    }
    int r = ready(b, 1, status >= 100 && status <= 599 && all_in(reason, reason_len, C_VALUE));
    if (r < 0)
        return r;
    char line[13] = "HTTP/1.1 ";
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    line[12] = ' ';
    if ((r = put(b, line, sizeof line)) < 0 || (r = put(b, reason, reason_len)) < 0 ||
        (r = put(b, "\r\n", 2)) < 0)
        return r;
    b->_started = 1;
    return 0;
}

int sluice_http_head_add_header(sluice_http_head_builder *b, const char *name, size_t name_len,
                                const char *value, size_t value_len)
{
    int r = ready(b, 0, name_len > 0 && all_in(name, name_len, C_TOKEN) &&
                            all_in(value, value_len, C_VALUE));
    if (r < 0)
        return r;
    if ((r = put(b, name, name_len)) < 0 || (r = put(b, ": ", 2)) < 0 ||
        (r = put(b, value, value_len)) < 0 || (r = put(b, "\r\n", 2)) < 0)
        return r;
    return 0;
}

int sluice_http_head_add_content_length(sluice_http_head_builder *b, uint64_t n)
{
    char digits[20];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    return sluice_http_head_add_header(b, "Content-Length", 14, digits + i, sizeof digits - i);
}

int sluice_http_head_finish(sluice_http_head_builder *b, sluice_bytes *out)
{
    *out = (sluice_bytes){0};
    int r = ready(b, 0, 1);
    if (r == 0 && (r = put(b, "\r\n", 2)) == 0) {
        r = sluice_block_view(b->_block, 0, b->_len, out);
        sluice_block_release(b->_block);
    } else {
        sluice_block_release(b->_block);
    }
    b->_block = NULL;
    b->_len = 0;
    b->_err = r < 0 ? r : SLUICE_ECLOSED;
    return r;
}

void sluice_http_head_discard(sluice_http_head_builder *b)
{
    sluice_block_release(b->_block);
    b->_block = NULL;
    b->_len = 0;
    if (!b->_err)
        b->_err = SLUICE_ECLOSED;
}
