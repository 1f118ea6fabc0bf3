/*
 * sluice/common.h — version, export macro, error codes, allocator hook.
 *
 * Every sluice function that can fail returns 0 (or a count) on success and a
 * negative code on failure. Two disjoint ranges:
 *   -1 .. -999      a system call failed: the value is -errno, unchanged;
 *   -1000 and below sluice's own codes, listed once in SLUICE_ERROR_MAP.
 * sluice_strerror() and sluice_err_name() accept both.
 *
 * Thread-safety: everything in this header is safe to call from any thread.
 */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t: a byte count or a negative error code */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SLUICE_BUILDING) && (defined(__GNUC__) || defined(__clang__))
#define SLUICE_API __attribute__((visibility("default")))
#else
#define SLUICE_API
#endif

#define SLUICE_VERSION_MAJOR 0
#define SLUICE_VERSION_MINOR 2
#define SLUICE_VERSION_PATCH 0
#define SLUICE_VERSION_STRING "0.2.0"

/* A string literal and its length, for the (pointer, length) pairs the API
 * takes: sluice_http_head_add_header(&b, SLUICE_LIT("Server"), SLUICE_LIT("x")). */
#define SLUICE_LIT(s) ("" s ""), (sizeof(s) - 1)

/* The library's version, "MAJOR.MINOR.PATCH"; a static string. */
SLUICE_API const char *sluice_version(void);

/*
 * X(NAME, value, status, message). Values never change once released; new
 * codes are appended to their group. Grouped by the layer that raises them.
 *
 * status: what a server answers when reading a request failed with this
 * code (sluice_http_error_status): 400 for a malformed request, 413 / 431
 * for a limit, 408 for a stall, 415 / 505 for what it cannot take, 500 / 503
 * for its own failures, 502 when the upstream it writes to (an S3 store)
 * failed, 0 when nobody is left to answer (the peer vanished) or there is
 * no request to answer (an idle connection timed out between requests).
 */
#define SLUICE_ERROR_MAP(X)                                                     \
    /* core -1000.. */                                                        \
    X(ENOMEM,                -1000, 500, "out of memory")                      \
    X(EPOOLFULL,             -1001, 503, "block pool is at its cap on outstanding blocks") \
    X(ERANGE,                -1002, 500, "offset or length out of range")      \
    X(EINVAL,                -1003, 500, "invalid argument")                   \
    X(ETRUNCATED,            -1004,   0, "body ended before its framing said it was complete") \
    X(ECLOSED,               -1005, 500, "already finished, aborted or closed") \
    X(ETIMEDOUT,             -1006, 408, "deadline passed without progress")   \
    X(EABORTED,              -1007,   0, "sink was aborted")                   \
    X(ETOOBIG,               -1008, 413, "more data than the limit configured for it") \
    X(EPEERCLOSED,           -1009,   0, "peer closed the connection")         \
    /* HTTP head -1100.. */                                                   \
    X(EHEAD_TOO_LARGE,       -1100, 431, "request or response head exceeds the head byte limit") \
    X(ETOO_MANY_HEADERS,     -1101, 431, "more header fields than the configured limit") \
    X(EBAD_METHOD,           -1102, 400, "method is not a token")              \
    X(EBAD_REQUEST_LINE,     -1103, 400, "request line is not METHOD SP target SP version CRLF") \
    X(EBAD_TARGET,           -1104, 400, "request target has a forbidden byte") \
    X(EBAD_VERSION,          -1105, 400, "malformed HTTP version")             \
    X(EVERSION,              -1106, 505, "HTTP version not supported")         \
    X(EBAD_STATUS_LINE,      -1107, 400, "malformed status line")              \
    X(EBAD_HEADER_NAME,      -1108, 400, "header name is empty or not a token") \
    X(EWS_BEFORE_COLON,      -1109, 400, "whitespace between header name and colon") \
    X(ENO_COLON,             -1110, 400, "header line without a colon")        \
    X(EOBS_FOLD,             -1111, 400, "obsolete line folding in a header")  \
    X(EBAD_HEADER_VALUE,     -1112, 400, "header value has NUL, CR, LF or a control byte") \
    X(EBARE_LF,              -1113, 400, "bare LF where CRLF is required")     \
    X(EBARE_CR,              -1114, 400, "CR not followed by LF")              \
    X(ETOO_MANY_EMPTY_LINES, -1115, 400, "too many empty lines before the request line") \
    X(EHEAD_TIMEOUT,         -1116, 408, "head did not arrive whole within its deadline") \
    X(EIDLE_TIMEOUT,         -1117,   0, "no byte of a head arrived within the idle timeout") \
    /* HTTP framing -1150.. */                                                \
    X(EDUP_CONTENT_LENGTH,   -1150, 400, "more than one Content-Length")       \
    X(EBAD_CONTENT_LENGTH,   -1151, 400, "Content-Length is not plain digits or overflows") \
    X(ECL_AND_TE,            -1152, 400, "both Content-Length and Transfer-Encoding") \
    X(EBAD_TRANSFER_ENCODING, -1153, 400, "Transfer-Encoding other than exactly chunked") \
    X(ETE_HTTP10,            -1154, 400, "Transfer-Encoding in an HTTP/1.0 message") \
    X(ENO_HOST,              -1155, 400, "HTTP/1.1 request without Host")      \
    X(EDUP_HOST,             -1156, 400, "more than one Host")                 \
    X(EBAD_HOST,             -1157, 400, "Host is empty, a list, or has userinfo or a path") \
    X(ECONNECT_BODY,         -1158, 400, "CONNECT request with Content-Length or Transfer-Encoding") \
    /* chunked coding -1180.. */                                              \
    X(EBAD_CHUNK_SIZE,       -1180, 400, "chunk size is not hex digits")       \
    X(ECHUNK_SIZE_OVERFLOW,  -1181, 400, "chunk size overflows")               \
    X(EBAD_CHUNK_EXT,        -1182, 400, "malformed chunk extension")          \
    X(ECHUNK_EXT_TOO_LONG,   -1183, 400, "chunk extensions exceed their byte limit") \
    X(EBAD_CHUNK_END,        -1184, 400, "chunk data not followed by CRLF")    \
    X(EBAD_TRAILER,          -1185, 400, "malformed trailer field")            \
    X(ETRAILER_TOO_LARGE,    -1186, 400, "trailer section exceeds its byte limit") \
    /* multipart -1200.. */                                                   \
    X(ENOT_MULTIPART,        -1200, 415, "content type is not multipart/form-data") \
    X(EBAD_BOUNDARY,         -1201, 400, "boundary parameter missing or invalid") \
    X(EPART_HEADER_TOO_LARGE, -1202, 413, "part header block exceeds its byte limit") \
    X(EBAD_PART_HEADER,      -1203, 400, "malformed part header")              \
    X(ETOO_MANY_PARTS,       -1204, 413, "more parts than the configured limit") \
    X(EPART_TOO_LARGE,       -1205, 413, "part data exceeds its byte limit")   \
    X(EBODY_TOO_LARGE,       -1206, 413, "body exceeds the total byte limit")  \
    X(EBAD_DELIMITER,        -1207, 400, "junk after a boundary delimiter")    \
    X(ENO_PART,              -1208, 400, "no part matched")                    \
    X(EBAD_EXT_VALUE,        -1209, 400, "filename* is not an RFC 8187 UTF-8 or ISO-8859-1 value") \
    X(ENO_CLOSE_DELIMITER,   -1210, 400, "multipart body ended without its close delimiter") \
    /* S3 store -1250.. (the status a proxy answers for its upload) */       \
    X(ES3_ERROR,             -1250, 502, "the S3 store answered with an error") \
    X(ES3_BAD_RESPONSE,      -1251, 502, "the S3 store sent a response S3 does not send")

enum sluice_error {
#define SLUICE__ENUM(name, value, status, msg) SLUICE_##name = (value),
    SLUICE_ERROR_MAP(SLUICE__ENUM)
#undef SLUICE__ENUM
    SLUICE__ERROR_END = -9999
};

/*
 * A description of any code this library returns (sluice's or -errno).
 * Returns a static string; never NULL ("unknown error" for unknown codes).
 */
SLUICE_API const char *sluice_strerror(int code);

/* The symbolic name, e.g. "SLUICE_ETRUNCATED" or "ECONNRESET". Static string. */
SLUICE_API const char *sluice_err_name(int code);

/*
 * A sticky failure: the first error an object met, kept by streams, sinks
 * and the multipart splitter, and copied out by their *_error() functions.
 */
typedef struct sluice_error_info {
    int code;            /* 0: no error; else a SLUICE_E* code or -errno      */
    const char *message; /* static: the detail, else sluice_strerror(code);
                            "" without an error                               */
    uint64_t offset;     /* bytes into the object's input where it was found  */
} sluice_error_info;

/* Copies a record to *out (may be NULL) and returns its code; what the
 * inline *_error() accessors share. */
static inline int sluice__error_copy(const sluice_error_info *e, sluice_error_info *out)
{
    if (out) {
        *out = *e;
        if (!e->code)
            out->message = "";
    }
    return e->code;
}

/*
 * Allocator hook. Every allocation the library makes goes through one of
 * these, reached from the sluice_pool an object was created with. alloc may
 * return NULL (the library then returns SLUICE_ENOMEM and leaks nothing);
 * free is never called with NULL. `ud` is passed back unchanged. The library
 * keeps errno intact across free. Both functions must be thread-safe if the
 * pool is shared between threads.
 */
typedef struct sluice_allocator {
    void *(*alloc)(void *ud, size_t size);
    void (*free)(void *ud, void *ptr, size_t size);
    void *ud;
} sluice_allocator;

#ifdef __cplusplus
}
#endif

#endif
