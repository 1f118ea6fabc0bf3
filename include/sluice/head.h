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
 * Deadlines: with head_timeout_ms / idle_timeout_ms set in the limits, the
 * library keeps the head's clock itself, so a host needs no timer logic of
 * its own for heads: on PENDING, sluice_reader_ready(r) reports the deadline
 * in the interest's deadline_ms (with the fd to read), and the call made at
 * or after it returns SLUICE_ERROR with SLUICE_EHEAD_TIMEOUT or
 * SLUICE_EIDLE_TIMEOUT. The clock's state lives in the reader (the one
 * per-connection object these calls get): it starts on the first call that
 * finds a byte of the head (already buffered, e.g. a pipelined request, or
 * just read) and is cleared whenever a call returns anything but PENDING,
 * so each head gets its own clock. A complete head is never refused for
 * time: the deadline is checked only when a call would return PENDING.
 * Pass the same limits to every call for one head.
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
 *   SLUICE_PENDING  more bytes are needed: wait for sluice_reader_ready(r)
 *                   (its deadline_ms is the head's deadline when a time
 *                   limit is set, else what the reader itself reports).
 *   SLUICE_EOF      the peer closed before sending any byte of a head (an
 *                   idle keep-alive connection ending normally).
 *   SLUICE_ERROR    *err says why: a parse error from
 *                   sluice_http_parse_request (e.g. SLUICE_EHEAD_TOO_LARGE),
 *                   SLUICE_ETRUNCATED when the peer closed mid-head, the
 *                   reader's error (-errno, SLUICE_ENOMEM),
 *                   SLUICE_EHEAD_TIMEOUT when lim->head_timeout_ms passed
 *                   since the head's first byte and it is still incomplete
 *                   (answer 408 or just close), or SLUICE_EIDLE_TIMEOUT when
 *                   lim->idle_timeout_ms passed since the first call that
 *                   found nothing to read and still no byte came (close
 *                   without answering: there is no request).
 * lim may be NULL for defaults. On anything but READY *head is zeroed, and
 * r keeps the head's bytes: after SLUICE_ETOO_MANY_HEADERS because hdrs_cap
 * was below lim->max_headers, a host may call again with a larger array
 * (keep a small one for the common head, grow it for the rare one).
 * The reader's buffer bound must exceed the head limit (the defaults do).
 */
SLUICE_API sluice_poll sluice_http_read_request(sluice_reader *r, const sluice_http_limits *lim,
                                                sluice_http_request *req,
                                                sluice_http_header *hdrs, size_t hdrs_cap,
                                                sluice_bytes *head, int *err);

/* The same for a response head (sluice_http_parse_response), with the same
 * time limits: idle_timeout_ms bounds the wait for the first byte of the
 * answer from the first call on (call it right after the request went out),
 * head_timeout_ms the rest of the head. */
SLUICE_API sluice_poll sluice_http_read_response(sluice_reader *r,
                                                 const sluice_http_limits *lim,
                                                 sluice_http_response *res,
                                                 sluice_http_header *hdrs, size_t hdrs_cap,
                                                 sluice_bytes *head, int *err);

#ifdef __cplusplus
}
#endif

#endif
