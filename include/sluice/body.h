/*
 * sluice/body.h — HTTP/1.1 message bodies as streams over a socket reader.
 *
 * The host parses the head, asks for its framing and creates the body
 * stream over the connection's reader; the framing picks the decoder:
 *
 *   sluice_http_framing f;
 *   if (sluice_http_request_framing(&req, &f) == 0)
 *       sluice_body_new(pool, r, &f, &cfg, &body);
 *
 *   SLUICE_HTTP_BODY_LENGTH   exactly f.length bytes (Content-Length)
 *   SLUICE_HTTP_BODY_CHUNKED  the chunked decoder
 *   SLUICE_HTTP_BODY_CLOSE    until the peer closes (responses)
 *   SLUICE_HTTP_BODY_NONE     no body: EOF at once
 *
 * Each yields the body's payload as zero-copy views into the reader's blocks
 * and ends with EOF only when the framing says the body is complete. A peer
 * that closes early gives ERROR SLUICE_ETRUNCATED, never EOF. The stream
 * borrows the reader and consumes exactly the body's bytes: whatever follows
 * (the next pipelined request) stays in the reader, byte for byte.
 *
 * The chunked decoder follows RFC 9112 section 7.1 strictly: chunk-size is
 * 1*HEXDIG (no "0x", sign or spaces; at most SLUICE_CHUNK_SIZE_DIGITS digits,
 * leading zeros included; a value above 2^63-1 overflows); extensions are
 * *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ), at most
 * SLUICE_CHUNK_EXT_MAX bytes per line, checked and skipped; lines end in CRLF
 * only; chunk data must be followed by CRLF; trailer fields are parsed like
 * header fields and kept for sluice_body_trailers(). Error codes:
 *   SLUICE_EBAD_CHUNK_SIZE        not a hex digit where the size is
 *   SLUICE_ECHUNK_SIZE_OVERFLOW   too many digits or value > 2^63-1
 *   SLUICE_EBAD_CHUNK_EXT         extension grammar, or whitespace not
 *                                 around ";" or "="
 *   SLUICE_ECHUNK_EXT_TOO_LONG    more than SLUICE_CHUNK_EXT_MAX bytes
 *   SLUICE_EBARE_LF / EBARE_CR    a line ending other than CRLF
 *   SLUICE_EBAD_CHUNK_END         chunk data not followed by CRLF
 *   SLUICE_EBAD_TRAILER           a malformed trailer field
 *   SLUICE_ETRAILER_TOO_LARGE     trailer fields over max_trailer_bytes
 *   SLUICE_ETOOBIG                payload over max_body (answer 413)
 *   SLUICE_ETRUNCATED             the peer closed before the end
 *   SLUICE_ETIMEDOUT              no progress for idle_timeout_ms
 *   -errno, SLUICE_ENOMEM         from the reader
 * sluice_stream_error(s, &info) gives (info.offset) the offset of the offending byte,
 * counted from the first byte of the body (framing included).
 *
 * Readiness: after PENDING, sluice_stream_ready() gives the reader's read
 * interest and, with an idle timeout, the deadline. Streams are used by one
 * thread at a time, the same one that uses the reader.
 */
#ifndef SLUICE_BODY_H
#define SLUICE_BODY_H

#include "http.h"
#include "reader.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_CHUNK_SIZE_DIGITS 16
#define SLUICE_CHUNK_EXT_MAX 4096
#define SLUICE_TRAILER_DEFAULT_MAX 8192

typedef struct sluice_body_config {
    uint64_t max_body;         /* payload byte limit; 0: none               */
    size_t max_trailer_bytes;  /* trailer field lines with CRLFs; 0: 8 KiB  */
    uint32_t idle_timeout_ms;  /* 0: none                                    */
} sluice_body_config;

/*
 * The body stream for `framing` over r (borrowed: it must outlive the
 * stream). cfg may be NULL. A Content-Length above cfg->max_body fails the
 * first poll with SLUICE_ETOOBIG before anything is read. The caller owns
 * *out (sluice_stream_close); on error *out is NULL.
 * Errors: SLUICE_ENOMEM, SLUICE_EINVAL (unknown framing).
 */
SLUICE_API int sluice_body_new(sluice_pool *pool, sluice_reader *r,
                               const sluice_http_framing *framing,
                               const sluice_body_config *cfg, sluice_stream **out);

/*
 * 1 if the connection the body came over may carry another exchange, as far
 * as the body can tell: the stream reached EOF by its own framing
 * (Content-Length reached, or the chunked terminator and trailers read; never
 * a body that ends at the peer's close, never after an error), and its reader
 * has seen no end-of-stream or error and holds no unread byte. A client that
 * keeps a pool of upstream connections returns one to the pool only when
 * this says 1 for the response body and both heads allow it (HTTP/1.1, no
 * Connection: close: sluice_http_request_keep_alive,
 * sluice_http_response_keep_alive) and the request body was sent whole;
 * docs/body.md shows it. (A server reading requests keeps unread bytes: they
 * are the next pipelined request.) 0 otherwise, also for other streams.
 * Thread-safe as a read of the stream and its reader.
 */
SLUICE_API int sluice_body_reusable(const sluice_stream *body);

/*
 * The trailer fields of a chunked body that reached EOF, in arrival order,
 * as spans into memory the stream owns (valid until it is closed); values
 * are trimmed like header values. *n is 0 when there
 * were none. Errors: SLUICE_EINVAL if s is not a chunked body at EOF.
 */
SLUICE_API int sluice_body_trailers(const sluice_stream *s, const sluice_http_header **fields,
                                    size_t *n);

#ifdef __cplusplus
}
#endif

#endif
