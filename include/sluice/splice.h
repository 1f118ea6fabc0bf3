/*
 * sluice/splice.h — the splice pump: passthrough of a body that nothing
 * needs to see, from a connection's reader to a destination io, with
 * splice(2) when it can and the copy path when it cannot. It is a
 * sluice_pump: stepped, queried and closed like one.
 *
 * Content-Length: exactly `length` bytes:
 *
 *   [head]  the destination's head (optional), written first;
 *   then    the body bytes the reader already buffered, written from its
 *           views (zero-copy from the blocks they sit in);
 *   then    the rest straight from the source's fd: socket -> pipe -> dst
 *           with splice(2), so those bytes never enter user space and hold
 *           no pool block.
 *
 * The copy path (socket reader -> Content-Length body stream -> pump ->
 * writer) is used instead when either io is not the stock fd transport
 * (TLS, in-memory), when SLUICE_SPLICE_COPY asks for it, when the process
 * does not ignore SIGPIPE (a splice into a socket whose peer is gone raises
 * it, and has no MSG_NOSIGNAL), when no pipe can be made (EMFILE...), or
 * when the kernel refuses splice on these fds (EINVAL, ENOSYS: bytes already
 * in the pipe are then read back and written, nothing is lost or repeated).
 * The result is the same byte for byte.
 *
 * Chunked (forwarded chunked, as HAProxy does since 2.9): chunk-size lines,
 * CRLFs and trailers are read in user space by the same strict decoder as
 * sluice_body_new's; the data of a chunk of which at least `splice_min`
 * bytes are not already buffered moves socket -> pipe -> dst, and only its
 * framing ("SIZE CRLF" before, CRLF after; the CRLF goes out with the next
 * size line when one follows) and the few bytes of it read with the size
 * line are written from user space, in one write. Smaller chunks, and bytes
 * already read, go through a chunked writer in batches. After a spliced
 * chunk, the following large chunks whose size lines are written exactly
 * as sluice's chunked writer writes them (lowercase hex, no leading zero,
 * no extension; curl's are) are forwarded verbatim: the size line is read
 * with MSG_PEEK and checked by the decoder, then the CRLF before it, the
 * line and the data are spliced together, and the pipe is emptied in large
 * writes, so no framing write remains per chunk.
 * The output is chunked with the same payload (chunk sizes may differ where
 * small chunks are batched; extensions and trailers are not forwarded), then
 * the terminator. A malformed or truncated body fails on the source side
 * with the decoder's error, and dst is shut down without a terminator.
 *
 * The reader stays consistent: only the body's bytes are taken from it or
 * spliced from its fd, so whatever follows (the next pipelined request)
 * stays in the reader or the socket, and sluice_reader_consumed() advances
 * by exactly the body's size on the wire.
 *
 * sluice_pump_step: DONE, PENDING with one interest (the
 * source's readable fd while it is the one blocking, the destination's
 * writable fd otherwise; a deadline with an idle timeout), or ERROR with the
 * side that failed. A source that ends before `length` bytes gives ERROR
 * SLUICE_ETRUNCATED on the source side, and the destination's write side is
 * shut down without anything more, so the receiver sees a short body, never a
 * complete one. PENDING is returned only after an fd said EAGAIN.
 *
 * The pump borrows the reader and the destination io (the host closes them
 * after sluice_pump_close), owns its pipe, and is used by one thread at a
 * time, the one that uses the reader.
 */
#ifndef SLUICE_SPLICE_H
#define SLUICE_SPLICE_H

#include "body.h"
#include "pump.h"
#include "reader.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Never splice: always the copy path (tests, or a host that wants the bytes
 * to cross user space). */
#define SLUICE_SPLICE_COPY 1u

/* Pipe capacity asked for when none is configured: on loopback a 1 MiB
 * pipe costs about 8% less CPU per GiB than 256 KiB (fewer, larger splices;
 * docs/performance.md). The pipe's pages are kernel memory, not RSS, and
 * Linux charges pipe capacity per user (fs.pipe-user-pages-soft, 64 MiB by
 * default; beyond it, without CAP_SYS_RESOURCE, the size request is refused
 * and the pipe stays small): a host running hundreds of transfers at once
 * as an ordinary user should ask for less. */
#define SLUICE_SPLICE_DEFAULT_PIPE (1024u * 1024u)

/* Bodies (the rest of a Content-Length body after what the reader holds)
 * and chunks smaller than this are copied, larger ones spliced: a splice
 * costs a pipe and more system calls than a copy of a few KiB saves. */
#define SLUICE_SPLICE_DEFAULT_MIN (16u * 1024u)

typedef struct sluice_splice_config {
    size_t pipe_size;         /* F_SETPIPE_SZ request; 0: the default above.
                                 If the kernel refuses, the pipe keeps the
                                 size it has.                                */
    size_t max_inflight;      /* copy path: the pump's bound; 0: its default */
    size_t step_bytes;        /* bytes moved before a step yields (as a pump's);
                                 0: SLUICE_PUMP_DEFAULT_STEP                 */
    uint32_t idle_timeout_ms; /* no byte moved for this long: SLUICE_ETIMEDOUT
                                 (dst not writable at the deadline counts as
                                 no byte moved, as for writers); 0: none     */
    unsigned flags;           /* SLUICE_SPLICE_COPY                          */
    uint64_t splice_min;      /* the least a splice moves (a Content-Length
                                 body's unread rest, a chunk's data); less
                                 is copied; 0: the default above             */
    sluice_body_config body;  /* chunked: the decoder's limits (max_body,
                                 max_trailer_bytes); its idle timeout is the
                                 one above                                   */
} sluice_splice_config;

/*
 * Makes p a splice pump moving the body `framing` describes (LENGTH or
 * CHUNKED) from src (borrowed; its io must stay open) to dst (borrowed).
 * head may be NULL; otherwise its reference moves to the pump (*head is
 * zeroed), also when this fails. cfg may be NULL. Nothing is read or written
 * until the first step. Errors (p is then a zeroed pump): SLUICE_ENOMEM,
 * SLUICE_EINVAL (unknown flags, another framing).
 * After ERROR, sluice_pump_error() gives the side: the source
 * (SLUICE_ETRUNCATED, -errno, SLUICE_ETIMEDOUT; dst's write side has been
 * shut down) or the destination (-EPIPE, -errno, SLUICE_ETIMEDOUT).
 */
SLUICE_API int sluice_pump_splice_init(sluice_pump *p, sluice_pool *pool, sluice_reader *src,
                                       sluice_io *dst, const sluice_http_framing *framing,
                                       sluice_bytes *head, const sluice_splice_config *cfg);

/* Of the bytes moved, those that went through the pipe without entering
 * user space (0 on the copy path and for other pumps). */
SLUICE_API uint64_t sluice_pump_spliced(const sluice_pump *p);

#ifdef __cplusplus
}
#endif

#endif
