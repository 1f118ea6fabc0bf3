/*
 * sluice/reader.h — the socket reader: bytes from a sluice_io into pool
 * blocks, handed out as views.
 *
 * One reader per connection. It keeps the bytes nobody has consumed yet, so
 * the head parser, the body stream and the next pipelined request read one
 * after another from the same reader without losing or copying a byte.
 *
 * Memory is bounded: the reader never holds more than max_buffered unread
 * bytes (fill stops reading at the bound, so the kernel's receive window
 * fills and the peer is paused), and each readv offers at most max_iov blocks
 * (so a connection with 64 KiB blocks can take 256 KiB per system call while
 * a small read still lands in the tail of the block it shares with the
 * previous one).
 *
 * The reader borrows its io (the host closes it after the reader) and is used
 * by one thread at a time. Views it hands out hold their own references and
 * may outlive the reader.
 */
#ifndef SLUICE_READER_H
#define SLUICE_READER_H

#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_reader sluice_reader;

typedef struct sluice_reader_config {
    size_t max_buffered; /* cap on unread bytes held; 0: max_iov blocks      */
    unsigned max_iov;    /* pool blocks offered per readv; 0: 4, at most 64  */
    void *wake_token;    /* what the pool's wake hook is given when this
                            reader is handed a block; NULL: the reader       */
} sluice_reader_config;

/*
 * Creates a reader over io (borrowed). cfg may be NULL for defaults. The
 * caller owns *out and frees it with sluice_reader_close().
 * Errors: SLUICE_ENOMEM, SLUICE_EINVAL (max_iov > 64).
 */
SLUICE_API int sluice_reader_new(sluice_pool *pool, sluice_io *io,
                                 const sluice_reader_config *cfg, sluice_reader **out);

/* Releases the reader's blocks (views already handed out stay valid), leaves
 * the pool's queue if it waits there, and frees it. The io is not touched.
 * NULL is a no-op. */
SLUICE_API void sluice_reader_close(sluice_reader *r);

/* Without a wake hook on the pool: how long a reader queued for memory lets
 * the host wait before it looks again (its interest's deadline), in ms. */
#define SLUICE_READER_POOL_RETRY_MS 5

/*
 * Reads once from the io.
 *   READY    new bytes are buffered — or nothing was read because max_buffered
 *            unread bytes are already held (consume some first).
 *   PENDING  the io said -EAGAIN (sluice_reader_ready gives its read
 *            interest, so an edge-triggered host may wait; a reader with
 *            nothing unread and no view out gives its block back to the pool
 *            then), or the pool is at its cap (max_blocks) and the reader has
 *            no room left in the blocks it holds: it is queued for a block
 *            (FIFO; see the memory budget in bytes.h). The interest is then
 *            {fd -1, SLUICE_WANT_WAKE, no deadline} when the pool has a wake
 *            hook (fill again once the hook named wake_token: the block is
 *            kept for this reader alone), else {fd -1, 0, a deadline
 *            SLUICE_READER_POOL_RETRY_MS ahead}. A reader that holds a block
 *            queues as a holder, which may use the pool's reserve, after
 *            moving its unread bytes to the front of its only block if
 *            nothing else shares it; so no connection waits forever on
 *            blocks that only waiting connections hold. A fill that goes on
 *            without the block it waited for leaves the queue (a block
 *            already handed to it goes to the next waiter), and so does
 *            sluice_reader_close.
 *   EOF      the peer closed; remembered, later fills return EOF at once.
 *            Bytes already buffered stay readable.
 *   ERROR    the io failed or no memory: sluice_reader_error(); sticky.
 */
SLUICE_API sluice_poll sluice_reader_fill(sluice_reader *r);

/* What to wait for after fill (or sluice_http_read_request / _response)
 * returned PENDING. While a head is being read under a time limit
 * (sluice/head.h), deadline_ms is the head's deadline (or the reader's own
 * retry deadline when that is sooner), whatever else the interest says, a
 * SLUICE_WANT_WAKE included: wake for it and read the head again. */
SLUICE_API void sluice_reader_ready(const sluice_reader *r, sluice_interest *want);

/*
 * Puts the reader in the state a fill that met -EAGAIN leaves it in, without
 * the read: its block goes back to the pool when nothing unread is held and
 * no view of it is out, and sluice_reader_ready names the io's read
 * interest. For a host that knows a read would find nothing now (the peer
 * waits for an answer that was just sent) and whose loop reports an fd that
 * is readable when it starts waiting (level-triggered poll/epoll): bytes
 * that came meanwhile are then seen at once. An edge-triggered host must not
 * use it: the edge for bytes already in the socket may have passed. Does
 * nothing while bytes are unread (they are the next input) or after EOF or
 * an error; a fill queued for memory leaves the queue. Cannot fail;
 * nothing changes owner (the block goes back to the reader's pool). Same
 * thread rule as every reader call: one thread at a time per reader.
 */
SLUICE_API void sluice_reader_idle(sluice_reader *r);

/* Unread bytes buffered. */
SLUICE_API size_t sluice_reader_available(const sluice_reader *r);

/*
 * The first min(max, available) unread bytes as ONE contiguous view, without
 * consuming them. Zero-copy when they lie in one block; otherwise they are
 * copied once into memory of exactly that size, outside the pool's blocks
 * (max bounds the copy: a head's limit), so the budget never refuses it.
 * The caller owns the view's reference. Errors: SLUICE_ENOMEM (*out zeroed).
 */
SLUICE_API int sluice_reader_peek(sluice_reader *r, size_t max, sluice_bytes *out);

/*
 * Consumes up to max unread bytes from the first block and returns them as a
 * zero-copy view (empty when nothing is buffered or max is 0). The caller
 * owns the reference. Returns the view's length; cannot fail.
 */
SLUICE_API size_t sluice_reader_take(sluice_reader *r, size_t max, sluice_bytes *out);

/*
 * Borrows the unread bytes of the first block: *data points at them, the
 * result is how many. Valid until the next fill, take, skip or free. For
 * parsers that scan in place and then skip or take what they used.
 */
SLUICE_API size_t sluice_reader_front(const sluice_reader *r, const unsigned char **data);

/* Consumes n unread bytes (clamped to what is available). */
SLUICE_API void sluice_reader_skip(sluice_reader *r, size_t n);

/* 0 or the sticky error code of the last failed fill (-errno or SLUICE_E*). */
SLUICE_API int sluice_reader_error(const sluice_reader *r);

/* Bytes consumed (taken or skipped) since the reader was created. */
SLUICE_API uint64_t sluice_reader_consumed(const sluice_reader *r);

#ifdef __cplusplus
}
#endif

#endif
