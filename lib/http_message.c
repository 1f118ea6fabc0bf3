/*
 * http_message.c — what a parsed head means: target form against method,
 * framing (RFC 9112 section 6.3), Host, connection options and Expect.
 * Everything here reads the spans the parser produced; nothing allocates.
 */
#include "internal.h"

#include "chars.h"

#include <string.h>

static int eq(const char *a, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(a, s, n) == 0;
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

/* ---- fields and lists ---------------------------------------------------- */

/* h is named s[0, n), ignoring case; lengths first (a head's names are
 * checked against many). */
static bool named(const sluice_http_header *h, const char *s, size_t n)
{
    return h->name_len == n && sluice__mem_eq_ci(h->name, s, n);
}

const sluice_http_header *sluice_http_header_next(const sluice_http_header *hdrs, size_t n,
                                                  const char *name,
                                                  const sluice_http_header *prev)
{
    size_t i = prev ? (size_t)(prev - hdrs) + 1 : 0, len = strlen(name);
    for (; i < n; i++)
        if (named(&hdrs[i], name, len))
            return &hdrs[i];
    return NULL;
}

static size_t count(const sluice_http_header *hdrs, size_t n, const char *name)
{
    size_t k = 0, len = strlen(name);
    for (size_t i = 0; i < n; i++)
        k += (size_t)named(&hdrs[i], name, len);
    return k;
}

/* Calls fn(ud, element) for each element of a comma-separated list, with
 * SP / HTAB trimmed; stops at the first non-zero result and returns it. */
static int list_each(const char *list, size_t len, int (*fn)(void *ud, const char *s, size_t n),
                     void *ud)
{
    const char *p = list, *e = list + len;
    while (p < e) {
        const char *s = p;
        while (p < e && *p != ',')
            p++;
        const char *q = p;
        while (s < q && sluice__is((unsigned char)*s, SLUICE__C_WS))
            s++;
        while (q > s && sluice__is((unsigned char)q[-1], SLUICE__C_WS))
            q--;
        int r = fn(ud, s, (size_t)(q - s));
        if (r)
            return r;
        if (p < e)
            p++;
    }
    return 0;
}

static int is_token(void *ud, const char *s, size_t n)
{
    return sluice__eq_ci(s, n, ud);
}

int sluice_http_list_has(const char *list, size_t len, const char *token)
{
    return list_each(list, len, is_token, (void *)token);
}

/* 1 if any field named `name` lists `token` (Connection may repeat). */
static int has_token(const sluice_http_header *hdrs, size_t n, const char *name,
                     const char *token)
{
    for (const sluice_http_header *h = NULL; (h = sluice_http_header_next(hdrs, n, name, h));)
        if (sluice_http_list_has(h->value, h->value_len, token))
            return 1;
    return 0;
}

static int names_field(void *ud, const char *s, size_t n)
{
    const sluice_http_header *h = ud;
    return n == h->name_len && sluice__mem_eq_ci(s, h->name, n);
}

int sluice_http_header_is_hop_by_hop(const sluice_http_header *hdrs, size_t n,
                                     const sluice_http_header *h)
{
#define NAME(s) {s, sizeof s - 1}
    static const struct {
        const char *s;
        size_t n;
    } fixed[] = {NAME("connection"), NAME("proxy-connection"), NAME("keep-alive"),
                 NAME("te"), NAME("transfer-encoding"), NAME("upgrade")},
      /* Fields a forwarder must keep or regenerates itself: a Connection
       * option naming them is ignored (RFC 9110 section 7.6.1 forbids a
       * sender to list them; removing Host would change the request). */
      kept[] = {NAME("host"), NAME("content-length")};
#undef NAME
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (named(h, fixed[i].s, fixed[i].n))
            return 1;
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (named(h, kept[i].s, kept[i].n))
            return 0;
    /* a forwarder asks this of every field: one pass over the Connection
     * fields, not a sluice_http_header_next walk per field */
    for (size_t i = 0; i < n; i++)
        if (named(&hdrs[i], SLUICE_LIT("connection")) &&
            list_each(hdrs[i].value, hdrs[i].value_len, names_field, (void *)h))
            return 1;
    return 0;
}

static int keep_alive(const sluice_http_header *h, size_t n, int minor)
{
    if (has_token(h, n, "connection", "close"))
        return 0;
    return minor >= 1 || has_token(h, n, "connection", "keep-alive");
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
        if (!sluice__eq_ci(h->value, h->value_len, "100-continue"))
            return SLUICE_HTTP_EXPECT_OTHER;
        cont = 1;
    }
    /* RFC 9110 section 10.1.1: ignore 100-continue from an HTTP/1.0 client. */
    return cont && req->minor_version >= 1 ? SLUICE_HTTP_EXPECT_CONTINUE : SLUICE_HTTP_EXPECT_NONE;
}

/* ---- framing ------------------------------------------------------------- */

/* 1*DIGIT up to 2^63-1. A list of numbers is a repeated field. */
static int content_length(const char *v, size_t n, uint64_t *out)
{
    const unsigned char *p = (const unsigned char *)v, *e = p + n;
    uint64_t x = 0;
    if (n == 0)
        return SLUICE_EBAD_CONTENT_LENGTH;
    if (memchr(v, ',', n)) {
        for (;;) {
            while (p < e && sluice__is(*p, SLUICE__C_WS))
                p++;
            const unsigned char *s = p;
            while (p < e && sluice__is(*p, SLUICE__C_DIGIT))
                p++;
            if (p == s)
                return SLUICE_EBAD_CONTENT_LENGTH;
            while (p < e && sluice__is(*p, SLUICE__C_WS))
                p++;
            if (p == e)
                return SLUICE_EDUP_CONTENT_LENGTH;
            if (*p++ != ',')
                return SLUICE_EBAD_CONTENT_LENGTH;
        }
    }
    for (; p < e; p++) {
        if (!sluice__is(*p, SLUICE__C_DIGIT))
            return SLUICE_EBAD_CONTENT_LENGTH;
        unsigned d = *p - '0';
        if (x > (UINT64_C(0x7fffffffffffffff) - d) / 10)
            return SLUICE_EBAD_CONTENT_LENGTH;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* Transfer-Encoding te (one field; Content-Length absent). */
static int coded(const sluice_http_header *te, int response, sluice_http_framing *out)
{
    if (sluice__eq_ci(te->value, te->value_len, "chunked")) {
        out->body = SLUICE_HTTP_BODY_CHUNKED;
        return 0;
    }
    /* RFC 9112 section 6.3 item 4: a response whose codings do not end in
     * chunked runs until close; a request cannot be delimited. */
    if (!response || sluice_http_list_has(te->value, te->value_len, "chunked"))
        return SLUICE_EBAD_TRANSFER_ENCODING;
    out->body = SLUICE_HTTP_BODY_CLOSE;
    return 0;
}

static int framing(const sluice_http_header *h, size_t n, int minor, int response,
                   sluice_http_framing *out)
{
    const sluice_http_header *cl = sluice_http_header_find(h, n, "content-length");
    const sluice_http_header *te = sluice_http_header_find(h, n, "transfer-encoding");
    if (te) {
        if (minor == 0)
            return SLUICE_ETE_HTTP10;
        if (cl)
            return SLUICE_ECL_AND_TE;
        if (count(h, n, "transfer-encoding") > 1)
            return SLUICE_EBAD_TRANSFER_ENCODING;
        return coded(te, response, out);
    }
    if (cl) {
        if (count(h, n, "content-length") > 1)
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
    /* RFC 9110 section 9.3.6: CONNECT has no content; bytes after its head
     * are tunnel data, so a body would be read differently by each peer. */
    if (r == 0 && eq(req->method, req->method_len, "CONNECT") &&
        (out->body == SLUICE_HTTP_BODY_CHUNKED || out->length > 0))
        r = SLUICE_ECONNECT_BODY;
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
    switch (count(req->headers, req->num_headers, "host")) {
    case 0:
        r = req->minor_version >= 1 ? SLUICE_ENO_HOST : 0;
        break;
    case 1:
        h = sluice_http_header_find(req->headers, req->num_headers, "host");
        if (!sluice__hostport_valid((const unsigned char *)h->value, h->value_len, 0)) {
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
