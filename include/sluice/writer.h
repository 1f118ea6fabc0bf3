/*
 * sluice/writer.h — sinks that write a body to a sluice_io: chunked, with a
 * declared length, or raw.
 *
 * Accepted chunks are queued, not copied: the chunked writer queues the size
 * line, the chunk's own view and a CRLF as three iovecs, and writes many
 * chunks with one writev when flushed, when the queue is full (max_chunks
 * chunks or max_bytes payload bytes), or when finishing. An optional head
 * (the request or response head, already built) goes out in the same writev
 * as the first chunk, and finish() puts the terminator in the same writev as
 * the last data when it can, so a small message is one system call.
 *
 * Partial writes resume where they stopped. PENDING is returned only after
 * the io said -EAGAIN; sluice_sink_ready() then gives the write interest and,
 * with an idle timeout, the deadline (SLUICE_ETIMEDOUT once it passes with
 * no byte written; a write retried after the deadline first polls the fd,
 * and a socket that still does not report itself writable has timed out,
 * so a peer taking a few bytes per TCP window update cannot stretch the
 * timeout to a multiple of itself). Abort (and close before finish) drops what is queued and
 * shuts the io's write side without the terminator, so the receiver sees an
 * incomplete body.
 *
 * Writers borrow their io (the host closes it after the sink) and are used by
 * one thread at a time. Queued views keep their blocks alive until written
 * or dropped. The queue's own arrays (the writer's allocations besides the
 * object) start with room for 4 chunks and double up to max_chunks as a
 * body needs it, so a head and a small body cost a few hundred bytes; a
 * growth that finds no memory writes the queue out earlier, never fails.
 */
#ifndef SLUICE_WRITER_H
#define SLUICE_WRITER_H

#include "http.h"
#include "io.h"
#include "sink.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_writer_config {
    unsigned max_chunks;      /* chunks queued before a write is forced;
                                 0: 64, at most 256                          */
    size_t max_bytes;         /* payload bytes queued before a write is forced;
                                 0: 256 KiB                                  */
    uint32_t idle_timeout_ms; /* 0: none                                     */
} sluice_writer_config;

/*
 * A writer to io (borrowed) for a body framed as `framing` says:
 *   SLUICE_HTTP_BODY_CHUNKED  chunked coding; finish() writes "0\r\n", the
 *                             trailers if any (sluice_writer_trailers), "\r\n";
 *   SLUICE_HTTP_BODY_LENGTH   exactly framing->length bytes: a write that would
 *                             go past it fails at once with SLUICE_ETOOBIG
 *                             (nothing of it is queued); finish() fails with
 *                             SLUICE_ETRUNCATED if fewer were written;
 *   SLUICE_HTTP_BODY_NONE     no body: as LENGTH with length 0 (a head alone);
 *   SLUICE_HTTP_BODY_CLOSE    no framing: bytes go out as given (a body
 *                             delimited by closing the connection, or any
 *                             preformatted bytes); finish() only flushes.
 * head may be NULL; otherwise its reference moves to the writer (*head is
 * zeroed), also when this fails. cfg may be NULL. The caller owns *out
 * (sluice_sink_close); on error *out is NULL.
 * Errors: SLUICE_ENOMEM, SLUICE_EINVAL (max_chunks > 256, unknown framing).
 */
SLUICE_API int sluice_writer_new(sluice_pool *pool, sluice_io *io,
                                 const sluice_http_framing *framing, sluice_bytes *head,
                                 const sluice_writer_config *cfg, sluice_sink **out);

/*
 * Trailer fields for a chunked writer's finish: preformatted "Name: value\r\n"
 * lines (the caller vouches for their syntax). Ownership of *fields moves to
 * the writer (*fields is zeroed), also on error.
 * Errors: SLUICE_EINVAL (not a chunked writer, or non-empty fields not ending
 * in CRLF), SLUICE_ECLOSED (finish already started, or aborted).
 */
SLUICE_API int sluice_writer_trailers(sluice_sink *k, sluice_bytes *fields);

#ifdef __cplusplus
}
#endif

#endif
