/*
 * sluice/splice.h — passthrough of a body that nothing needs to see: exactly
 * `length` bytes from a connection's reader to a destination io, with
 * splice(2) when it can and the copy path when it cannot.
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
 * The reader stays consistent: only the body's bytes are taken from it or
 * spliced from its fd, so whatever follows (the next pipelined request)
 * stays in the reader or the socket, and sluice_reader_consumed() advances
 * by exactly `length`.
 *
 * Stepping mirrors sluice_pump_step: DONE, PENDING with one interest (the
 * source's readable fd while it is the one blocking, the destination's
 * writable fd otherwise; a deadline with an idle timeout), or ERROR with the
 * side that failed. A source that ends before `length` bytes gives ERROR
 * SLUICE_ETRUNCATED on the source side, and the destination's write side is
 * shut down without anything more, so the receiver sees a short body, never a
 * complete one. PENDING is returned only after an fd said EAGAIN.
 *
 * The object borrows the reader and the destination io (the host closes them
 * after sluice_splice_free), owns its pipe, and is used by one thread at a
 * time, the one that uses the reader.
 */
#ifndef SLUICE_SPLICE_H
#define SLUICE_SPLICE_H

#include "pump.h"
#include "reader.h"

typedef struct sluice_splice sluice_splice;

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

typedef struct sluice_splice_config {
    size_t pipe_size;         /* F_SETPIPE_SZ request; 0: the default above.
                                 If the kernel refuses, the pipe keeps the
                                 size it has.                                */
    size_t max_inflight;      /* copy path: the pump's bound; 0: its default */
    uint32_t idle_timeout_ms; /* no byte moved for this long: SLUICE_ETIMEDOUT;
                                 0: none                                     */
    unsigned flags;           /* SLUICE_SPLICE_COPY                          */
} sluice_splice_config;

/*
 * Prepares moving `length` body bytes from src (borrowed; its io must stay
 * open) to dst (borrowed). head may be NULL; otherwise its reference moves to
 * the object (*head is zeroed), also when this fails. cfg may be NULL.
 * Nothing is read or written until the first step. The caller owns *out
 * (sluice_splice_free). Errors: SLUICE_ENOMEM, SLUICE_EINVAL (unknown flags).
 */
SLUICE_API int sluice_splice_new(sluice_pool *pool, sluice_reader *src, sluice_io *dst,
                                 uint64_t length, sluice_bytes *head,
                                 const sluice_splice_config *cfg, sluice_splice **out);

/*
 * Moves as much as it can without blocking.
 *   DONE     all `length` bytes (and the head) were written to dst. Repeats.
 *   PENDING  *want says what to wait for.
 *   ERROR    sluice_splice_failed_side() / sluice_splice_error() say what
 *            failed: the source (SLUICE_ETRUNCATED, -errno, SLUICE_ETIMEDOUT;
 *            dst's write side has been shut down) or the destination
 *            (-EPIPE, -errno, SLUICE_ETIMEDOUT). Sticky.
 * want may be NULL.
 */
SLUICE_API sluice_pump_status sluice_splice_step(sluice_splice *s, sluice_interest *want);

SLUICE_API sluice_side sluice_splice_failed_side(const sluice_splice *s);
SLUICE_API int sluice_splice_error(const sluice_splice *s);

/* Body bytes handed to dst so far (written, or queued in the copy path's
 * writer); `length` once DONE. The head is not counted. */
SLUICE_API uint64_t sluice_splice_moved(const sluice_splice *s);

/* Of those, the bytes that went through the pipe without entering user
 * space (0 on the copy path). */
SLUICE_API uint64_t sluice_splice_spliced(const sluice_splice *s);

/*
 * Releases the pipe and everything the object holds and frees it. Freed
 * before DONE or ERROR, it shuts dst's write side down, as closing an
 * unfinished writer does: a body cut short must not look complete.
 * The reader and dst are not closed. NULL is a no-op.
 */
SLUICE_API void sluice_splice_free(sluice_splice *s);

#endif
