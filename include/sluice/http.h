/*
 * sluice/http.h — HTTP/1.1 heads: a strict request / status-line and header
 * parser, message framing (RFC 9112 section 6.3), Host and connection
 * helpers, and builders that write a head into one pool block.
 *
 * Parsing is a pure function over one contiguous buffer. It copies nothing:
 * method, target, header names and values are spans into the caller's
 * buffer, valid for as long as that buffer is (a host that reads from a
 * socket keeps a sluice_bytes reference on the head bytes while it uses the
 * parsed head). When a parse returns 0 (incomplete), call it again with the
 * same bytes plus whatever arrived since; it starts over, which costs at most
 * max_head_bytes of scanning, and reports errors as soon as the bytes already
 * there prove the head bad.
 *
 * The rules are strict by default, which is what a proxy needs against
 * request smuggling: every ambiguity (bare LF, obs-fold, space before a colon,
 * doubled Content-Length, Transfer-Encoding other than exactly "chunked", ...)
 * is an error with its own code. docs/http.md lists them with the RFC
 * section behind each and the status a server should answer
 * (sluice_http_error_status()).
 *
 * Thread-safety: every function here is reentrant; the parser and the helpers
 * keep no state outside their arguments. A builder is used by one thread at
 * a time.
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include "bytes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A header field line: spans into the parsed buffer, not NUL-terminated. The
 * value has no leading or trailing SP / HTAB; it may be empty. */
typedef struct sluice_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sluice_http_header;

#define SLUICE_HTTP_DEFAULT_MAX_HEAD_BYTES 16384u
#define SLUICE_HTTP_DEFAULT_MAX_HEADERS 100u
/* Empty lines (CRLF) skipped before a request line (RFC 9112 section 2.2). */
#define SLUICE_HTTP_MAX_EMPTY_LINES 8

/* Parser limits. A zero field (or a NULL pointer) means the default. */
typedef struct sluice_http_limits {
    /* Bytes from the first byte of the start line through the final CRLF
     * CRLF (empty lines skipped before a request line do not count). */
    size_t max_head_bytes;  /* 0: 16384 */
    size_t max_headers;     /* 0: 100; also capped by the caller's array */
    /* Time limits, used only by sluice_http_read_request / _response
     * (sluice/head.h; the parse functions here ignore them). 0: none.
     * head_timeout_ms: the whole head must arrive within this long of its
     * first byte (a deadline, not an idle gap: a peer dribbling one byte at
     * a time is cut too), else SLUICE_EHEAD_TIMEOUT (408).
     * idle_timeout_ms: waiting for the first byte of a head (an idle
     * keep-alive connection, an upstream that has not begun to answer) ends
     * after this long, SLUICE_EIDLE_TIMEOUT (0: nothing to answer). */
    uint32_t head_timeout_ms;
    uint32_t idle_timeout_ms;
} sluice_http_limits;

typedef enum sluice_http_target_form {
    SLUICE_HTTP_TARGET_ORIGIN = 0, /* "/path?query"                       */
    SLUICE_HTTP_TARGET_ABSOLUTE,   /* "scheme://authority/path?query"     */
    SLUICE_HTTP_TARGET_AUTHORITY,  /* "host:port" (CONNECT)               */
    SLUICE_HTTP_TARGET_ASTERISK    /* "*" (OPTIONS)                       */
} sluice_http_target_form;

typedef struct sluice_http_request {
    const char *method;     /* token, case-sensitive                        */
    size_t method_len;
    const char *target;     /* the request-target exactly as received       */
    size_t target_len;
    sluice_http_target_form form;
    /* absolute-form: the scheme ("http"); otherwise NULL, 0 */
    const char *scheme;
    size_t scheme_len;
    /* absolute-form and authority-form: "host[:port]"; otherwise NULL, 0 */
    const char *authority;
    size_t authority_len;
    /* The path-and-query to send to an origin server: origin-form: the whole
     * target; absolute-form: what follows the authority, or the static string
     * "/" when that is empty (RFC 9112 section 3.2.1). When an absolute-form
     * target has a query but no path ("http://h?q"), path is "?q" and a "/"
     * must go before it (sluice_http_head_forward_request_line does that).
     * Authority and asterisk forms: NULL, 0. */
    const char *path;
    size_t path_len;
    int minor_version;      /* 0 or 1: HTTP/1.0 or HTTP/1.1                 */
    sluice_http_header *headers; /* the caller's array                     */
    size_t num_headers;
    size_t head_len;        /* bytes consumed, as returned                  */
    size_t error_offset;    /* after an error: offset of the offending byte */
} sluice_http_request;

typedef struct sluice_http_response {
    int minor_version;      /* HTTP/1.x: x (any digit)                      */
    int status;             /* 100..599                                     */
    const char *reason;     /* may be empty                                 */
    size_t reason_len;
    sluice_http_header *headers;
    size_t num_headers;
    size_t head_len;
    size_t error_offset;
} sluice_http_response;

/*
 * Parses a request head at the start of buf[0, len).
 *   > 0  complete: that many bytes make up the head, including up to 8
 *        leading empty lines and the final CRLF CRLF; *req is filled and its
 *        spans point into buf; hdrs[0, req->num_headers) hold the fields.
 *   0    incomplete: nothing wrong so far; call again with more bytes.
 *   < 0  a SLUICE_E* code from the "HTTP head" group (req->error_offset
 *        says where); the other fields of *req are unspecified.
 * The field count is limited by min(lim->max_headers, hdrs_cap). lim may be
 * NULL for defaults. Reads no byte at or past buf + len.
 */
SLUICE_API ssize_t sluice_http_parse_request(const void *buf, size_t len,
                                             const sluice_http_limits *lim,
                                             sluice_http_request *req,
                                             sluice_http_header *hdrs, size_t hdrs_cap);

/* The same for a response head: `HTTP/1.x SP 3DIGIT SP reason CRLF`, then
 * fields. One empty line (CRLF) before the status line is skipped and
 * counted in the head's length, as RFC 9112 section 2.2's robustness rule
 * lets a recipient do (some servers send one after a 100 Continue); a
 * second is SLUICE_EBAD_STATUS_LINE. */
SLUICE_API ssize_t sluice_http_parse_response(const void *buf, size_t len,
                                              const sluice_http_limits *lim,
                                              sluice_http_response *res,
                                              sluice_http_header *hdrs, size_t hdrs_cap);

/*
 * The request's target form against its method (RFC 9112 section 3.2):
 * asterisk-form only with OPTIONS, authority-form only with CONNECT, and
 * CONNECT only with authority-form. Returns 0 or SLUICE_EBAD_TARGET.
 */
SLUICE_API int sluice_http_request_check_target(const sluice_http_request *req);

/* ---- framing -------------------------------------------------------------- */

typedef enum sluice_http_body {
    SLUICE_HTTP_BODY_NONE = 0, /* no body follows the head                    */
    SLUICE_HTTP_BODY_LENGTH,   /* exactly `length` bytes (may be 0)           */
    SLUICE_HTTP_BODY_CHUNKED,  /* chunked coding                              */
    SLUICE_HTTP_BODY_CLOSE     /* response only: until the server closes      */
} sluice_http_body;

typedef struct sluice_http_framing {
    sluice_http_body body;
    uint64_t length;           /* LENGTH only; else 0                         */
} sluice_http_framing;

/* Framings to pass by pointer when the host decides one itself, e.g.
 * sluice_writer_new(pool, io, SLUICE_FRAMING_CHUNKED, &head, NULL, &w)
 * (C compound literals: C++ hosts declare a sluice_http_framing instead). */
#define SLUICE_FRAMING_NONE (&(const sluice_http_framing){SLUICE_HTTP_BODY_NONE, 0})
#define SLUICE_FRAMING_LENGTH(n) (&(const sluice_http_framing){SLUICE_HTTP_BODY_LENGTH, (n)})
#define SLUICE_FRAMING_CHUNKED (&(const sluice_http_framing){SLUICE_HTTP_BODY_CHUNKED, 0})
#define SLUICE_FRAMING_CLOSE (&(const sluice_http_framing){SLUICE_HTTP_BODY_CLOSE, 0})

/*
 * How the request body is delimited (RFC 9112 section 6.3). Content-Length
 * must be one field of plain digits, at most 2^63-1; Transfer-Encoding one
 * field that is exactly "chunked" (any case); not both; no
 * Transfer-Encoding in HTTP/1.0. Neither: NONE. Errors: SLUICE_ETE_HTTP10,
 * SLUICE_ECL_AND_TE, SLUICE_EBAD_TRANSFER_ENCODING,
 * SLUICE_EDUP_CONTENT_LENGTH, SLUICE_EBAD_CONTENT_LENGTH (checked in that
 * order); *out is zeroed on error.
 */
SLUICE_API int sluice_http_request_framing(const sluice_http_request *req,
                                           sluice_http_framing *out);

/*
 * How the response body is delimited, given the request method it answers:
 * HEAD, 1xx, 204, 304, and 2xx to CONNECT (the connection becomes a tunnel):
 * NONE. Else Transfer-Encoding exactly "chunked": CHUNKED; Transfer-Encoding
 * without chunked: CLOSE; Content-Length: LENGTH; neither: CLOSE. The same
 * errors as for requests, plus SLUICE_EBAD_TRANSFER_ENCODING when chunked
 * comes with other codings (this library would pass them on undecoded).
 */
SLUICE_API int sluice_http_response_framing(const sluice_http_response *res,
                                            const char *method, size_t method_len,
                                            sluice_http_framing *out);

/*
 * Validates Host (RFC 9110 section 7.2, RFC 9112 section 3.2): exactly one
 * field, value uri-host [ ":" port ] with no userinfo, path or list.
 * Returns 1 and sets *host, *host_len (either may be NULL) to the value;
 * 0 for an HTTP/1.0 request without Host (*host NULL, *host_len 0); or
 * SLUICE_ENO_HOST, SLUICE_EDUP_HOST, SLUICE_EBAD_HOST.
 */
SLUICE_API int sluice_http_request_host(const sluice_http_request *req,
                                        const char **host, size_t *host_len);

/* ---- helpers -------------------------------------------------------------- */

/* First field named `name` (NUL-terminated, compared case-insensitively), or
 * NULL. */
static inline const sluice_http_header *sluice_http_header_find(const sluice_http_header *hdrs,
                                                               size_t n, const char *name);

/* The next field named `name` after `prev` (NULL: from the start), or NULL:
 *   for (h = NULL; (h = sluice_http_header_next(hs, n, "Via", h));) ... */
SLUICE_API const sluice_http_header *sluice_http_header_next(const sluice_http_header *hdrs,
                                                             size_t n, const char *name,
                                                             const sluice_http_header *prev);

/* 1 if the comma-separated list list[0, len) has an element equal to `token`
 * (NUL-terminated) ignoring case and surrounding SP / HTAB, else 0. */
SLUICE_API int sluice_http_list_has(const char *list, size_t len, const char *token);

/* 1 if field h must not be forwarded by a proxy: Connection, Proxy-Connection,
 * Keep-Alive, TE, Transfer-Encoding, Upgrade, or a name listed in one of the
 * message's Connection fields (RFC 9110 section 7.6.1). */
SLUICE_API int sluice_http_header_is_hop_by_hop(const sluice_http_header *hdrs, size_t n,
                                                const sluice_http_header *h);

/* 1 if the client wants the connection kept open after this exchange:
 * HTTP/1.1 unless Connection lists "close"; HTTP/1.0 only if it lists
 * "keep-alive" and not "close". */
SLUICE_API int sluice_http_request_keep_alive(const sluice_http_request *req);

/* The same rule for a response. Framing CLOSE also ends the connection. */
SLUICE_API int sluice_http_response_keep_alive(const sluice_http_response *res);

typedef enum sluice_http_expect {
    SLUICE_HTTP_EXPECT_NONE = 0,  /* no Expect (or 100-continue in HTTP/1.0)  */
    SLUICE_HTTP_EXPECT_CONTINUE,  /* "100-continue", any case: send 100 first */
    SLUICE_HTTP_EXPECT_OTHER      /* anything else: answer 417                */
} sluice_http_expect;

/* Classifies the request's Expect fields (RFC 9110 section 10.1.1). */
SLUICE_API sluice_http_expect sluice_http_request_expect(const sluice_http_request *req);

/* The standard reason phrase for a status ("Not Found"); "" if unknown.
 * Static string. */
SLUICE_API const char *sluice_http_reason_phrase(int status);

/*
 * The status a server should answer when anything about reading a request
 * failed with `code` (the status column of SLUICE_ERROR_MAP): 400 for a
 * malformed head, body, chunked framing, trailer or multipart body; 431 for
 * a head over its limits; 413 for a body or multipart part over its limit
 * (SLUICE_ETOOBIG, SLUICE_EBODY_TOO_LARGE, SLUICE_EPART_TOO_LARGE...); 408
 * for a stall or a head past its deadline (SLUICE_ETIMEDOUT,
 * SLUICE_EHEAD_TIMEOUT); 415 for a body that is not multipart/form-data; 505
 * for an HTTP version other than 1.x; 500 / 503 for the server's own
 * failures (SLUICE_ENOMEM, SLUICE_EPOOLFULL...). 0 when nobody is left to
 * answer (the peer vanished: SLUICE_ETRUNCATED, -errno), when there is no
 * request to answer (SLUICE_EIDLE_TIMEOUT: close quietly) and for 0.
 * Thread-safe, no state.
 */
SLUICE_API int sluice_http_error_status(int code);

/* ---- head builder --------------------------------------------------------- */

/*
 * Writes a head into memory of its own size (at most the pool's block size;
 * not a pool block, so the memory budget never refuses or delays it):
 *
 *   sluice_http_head_builder b;
 *   sluice_http_head_init(&b, pool);
 *   sluice_http_head_status_line(&b, 200, NULL, 0);
 *   sluice_http_head_add_header(&b, "Content-Type", 12, "text/plain", 10);
 *   int rc = sluice_http_head_finish(&b, &head);   // head: one reference
 *
 * The start line must come first, once. Names must be tokens; methods
 * tokens; targets visible ASCII; values and reasons no CR, LF, NUL or other
 * control byte but HTAB, so a host cannot be tricked into header injection.
 * Errors stick: after the first failure every call returns the same code and
 * the block is already released; finish() returns it too. Codes:
 * SLUICE_EINVAL (bad argument or order), SLUICE_ETOOBIG (longer than the
 * pool's block size), SLUICE_ENOMEM. Every init must be followed by
 * finish() or discard(). A builder is used by one thread at a time.
 */
typedef struct sluice_http_head_builder {
    sluice_pool *_pool;
    sluice_block *_block;
    size_t _len;
    int _err;
    int _started;
} sluice_http_head_builder;

/* Starts a head in b (nothing is allocated until the first line). Cannot
 * fail; b is the caller's, used by one thread at a time. */
SLUICE_API void sluice_http_head_init(sluice_http_head_builder *b, sluice_pool *pool);

/* `METHOD SP target SP HTTP/1.1 CRLF`. */
SLUICE_API int sluice_http_head_request_line(sluice_http_head_builder *b,
                                             const char *method, size_t method_len,
                                             const char *target, size_t target_len);

/* The request line a proxy sends upstream for a parsed request: the method,
 * the origin-form path ("/" inserted before a bare query) for origin and
 * absolute forms, the target as received for the others, and HTTP/1.1. */
SLUICE_API int sluice_http_head_forward_request_line(sluice_http_head_builder *b,
                                                     const sluice_http_request *req);

/* `HTTP/1.1 SP status SP reason CRLF`; status 100..599 (RFC 9110 section
 * 15); reason NULL: the standard phrase (empty for unknown codes). */
SLUICE_API int sluice_http_head_status_line(sluice_http_head_builder *b, int status,
                                            const char *reason, size_t reason_len);

/* `name: value CRLF`. */
SLUICE_API int sluice_http_head_add_header(sluice_http_head_builder *b,
                                           const char *name, size_t name_len,
                                           const char *value, size_t value_len);

/* `Content-Length: n CRLF`. */
SLUICE_API int sluice_http_head_add_content_length(sluice_http_head_builder *b, uint64_t n);

/* Appends the final CRLF and hands the head over: *out holds one reference
 * the caller releases. On error *out is zeroed and nothing is held. The
 * builder is spent either way (init it again to reuse). */
SLUICE_API int sluice_http_head_finish(sluice_http_head_builder *b, sluice_bytes *out);

/* Drops whatever the builder holds. Safe after finish() and on a zeroed
 * builder. */
SLUICE_API void sluice_http_head_discard(sluice_http_head_builder *b);

/* ---- inline definitions --------------------------------------------------- */

static inline const sluice_http_header *sluice_http_header_find(const sluice_http_header *hdrs,
                                                               size_t n, const char *name)
{
    return sluice_http_header_next(hdrs, n, name, NULL);
}

#ifdef __cplusplus
}
#endif

#endif
