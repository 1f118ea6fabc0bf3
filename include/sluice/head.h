/*
 * sluice/head.h — reading a request or response head off a socket reader.
 *
 * The bridge between the reader (bytes arriving in pool blocks) and the
 * parser (a pure function over one contiguous buffer). The head's bytes are
 * handed to the caller as one sluice_bytes that keeps the parsed spans valid:
 * a view of the reader's block when the head lies in one block, one copy
 * (bounded by the head limit) when it spans blocks. The reader is advanced
 * past the head exactly, so the body and any pipelined request stay in it.
 *
 * Not thread-safe: use with the reader's thread.
 */
#ifndef SLUICE_HEAD_H
#define SLUICE_HEAD_H

#include "http.h"
#include "reader.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Reads a request head from r.
 *   SLUICE_READY    *req and hdrs[] are filled; *head holds the one reference
 *                   that keeps their spans valid (release it when done with
 *                   the request); r is past the head.
 *   SLUICE_PENDING  more bytes are needed: wait for sluice_reader_ready(r).
 *   SLUICE_EOF      the peer closed before sending any byte of a head (an
 *                   idle keep-alive connection ending normally).
 *   SLUICE_ERROR    *err says why: a parse error from
 *                   sluice_http_parse_request (e.g. SLUICE_EHEAD_TOO_LARGE),
 *                   SLUICE_ETRUNCATED when the peer closed mid-head, or the
 *                   reader's error (-errno, SLUICE_ENOMEM).
 * lim may be NULL for defaults. On anything but READY *head is zeroed.
 * The reader's buffer bound must exceed the head limit (the defaults do).
 */
SLUICE_API sluice_poll sluice_http_read_request(sluice_reader *r, const sluice_http_limits *lim,
                                                sluice_http_request *req,
                                                sluice_http_header *hdrs, size_t hdrs_cap,
                                                sluice_bytes *head, int *err);

/* The same for a response head (sluice_http_parse_response). */
SLUICE_API sluice_poll sluice_http_read_response(sluice_reader *r,
                                                 const sluice_http_limits *lim,
                                                 sluice_http_response *res,
                                                 sluice_http_header *hdrs, size_t hdrs_cap,
                                                 sluice_bytes *head, int *err);

#ifdef __cplusplus
}
#endif

#endif
