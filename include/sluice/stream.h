/*
 * sluice/stream.h — the pull stream, the readiness type, and the stock
 * streams: memory stream and tap.
 *
 * A stream produces chunks only when polled:
 *
 *   sluice_stream_poll_next(s, &out)
 *     SLUICE_READY    out holds one chunk; one reference moves to the caller.
 *     SLUICE_PENDING  nothing now; sluice_stream_ready() says what to wait for.
 *     SLUICE_EOF      the body ended completely and correctly (verified by its
 *                     framing). Repeats on every later poll.
 *     SLUICE_ERROR    it did not; sluice_stream_error() says why. Sticky: later
 *                     polls return ERROR with the same code.
 *
 * PENDING is returned only after the underlying fd said EAGAIN (or a stream
 * it waits on did), so a host on an edge-triggered loop may wait safely.
 * A READY chunk is never empty.
 *
 * Lifetime: streams are heap objects made by a constructor from a pool;
 * sluice_stream_close() releases everything the stream owns (including any
 * stream it wraps) and frees it. A stream is used by one thread at a time.
 *
 * Writing a stream: embed `sluice_stream` as the first member of your struct,
 * point `vt` at your vtable, and set errors with sluice_stream_fail().
 */
#ifndef SLUICE_STREAM_H
#define SLUICE_STREAM_H

#include "bytes.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sluice_poll {
    SLUICE_READY = 0,
    SLUICE_PENDING = 1,
    SLUICE_EOF = 2,
    SLUICE_ERROR = 3
} sluice_poll;

/* Interest events (bit flags). */
#define SLUICE_WANT_READ 1
#define SLUICE_WANT_WRITE 2
/* Wait until the pool's wake hook names this object's token (a reader
 * queued for memory under the budget: see sluice_pool_config). Comes with
 * fd -1 and no deadline of its own. */
#define SLUICE_WANT_WAKE 4

/*
 * What a host loop must wait for before polling again:
 *   fd >= 0:  wait until fd is ready for `events`;
 *   deadline_ms >= 0: stop waiting at that CLOCK_MONOTONIC time (ms), then
 *             poll again (the object reports SLUICE_ETIMEDOUT if it gave up);
 *   events & SLUICE_WANT_WAKE: wait until the pool's wake hook is called
 *             with this object's token (memory was handed to it);
 *   fd < 0, deadline_ms < 0 and no SLUICE_WANT_WAKE: nothing to wait for;
 *             poll again soon (a stream that yields to be fair, e.g. the
 *             memory stream's test mode).
 */
typedef struct sluice_interest {
    int fd;
    int events;
    int64_t deadline_ms;
} sluice_interest;

/* CLOCK_MONOTONIC now, in milliseconds, the clock deadlines are taken on. */
SLUICE_API int64_t sluice_now_ms(void);

typedef struct sluice_stream sluice_stream;

typedef struct sluice_stream_vtable {
    const char *name;
    sluice_poll (*poll_next)(sluice_stream *s, sluice_bytes *out);
    void (*ready)(sluice_stream *s, sluice_interest *want);
    void (*close)(sluice_stream *s); /* releases resources and frees s */
} sluice_stream_vtable;

struct sluice_stream {
    const sluice_stream_vtable *vt;
    sluice_pool *pool;         /* what s was allocated from                  */
    sluice_error_info _error;  /* the sticky error (code 0: none)            */
    int _eof;                  /* EOF was reported: it repeats               */
};

/* ---- using a stream ------------------------------------------------------ */

/* See the top of this file. On READY *out holds one reference for the
 * caller; on any other result *out is zeroed. */
SLUICE_API sluice_poll sluice_stream_poll_next(sluice_stream *s, sluice_bytes *out);

/* Fills *want (see sluice_interest). Meaningful after PENDING. */
SLUICE_API void sluice_stream_ready(sluice_stream *s, sluice_interest *want);

/* Releases everything s owns and frees it. NULL is a no-op. */
SLUICE_API void sluice_stream_close(sluice_stream *s);

/* 0 or the stream's sticky error code. With info != NULL also the message
 * (the stream's detail, else sluice_strerror(); "" without an error) and the
 * offset in the stream's input where the error was found. */
static inline int sluice_stream_error(const sluice_stream *s, sluice_error_info *info);

/* ---- implementing a stream ----------------------------------------------- */

/* Records the first error (later calls keep the first) and returns
 * SLUICE_ERROR, so `return sluice_stream_fail(...)` reads naturally.
 * `why` must be a static string or NULL. */
SLUICE_API sluice_poll sluice_stream_fail(sluice_stream *s, int code, const char *why,
                                          uint64_t offset);

/* ---- memory stream ------------------------------------------------------- */

/* Return PENDING (with an empty interest) before every chunk but the first. */
#define SLUICE_MEMSTREAM_PENDING 1u
/* End with ERROR SLUICE_ETRUNCATED instead of EOF, like a peer that vanished. */
#define SLUICE_MEMSTREAM_TRUNCATED 2u

/*
 * A stream over n chunks, yielded in order. Takes ownership of the n
 * references in chunks[] (the array itself is copied and stays the caller's;
 * empty chunks are released and skipped). On error every reference in chunks[]
 * is still released, so the caller never has to clean up. On success the
 * caller owns *out (sluice_stream_close); on error *out is NULL.
 * Errors: SLUICE_ENOMEM.
 */
SLUICE_API int sluice_memstream_new(sluice_pool *pool, sluice_bytes *chunks, size_t n,
                                    unsigned flags, sluice_stream **out);

/* ---- tap ----------------------------------------------------------------- */

/* Called with each chunk before it is passed on; the view is only borrowed
 * for the duration of the call (sluice_bytes_ref it to keep it). */
typedef void (*sluice_tap_fn)(void *ud, const sluice_bytes *chunk);

/*
 * A stream that passes inner's chunks through unchanged (same views, no copy)
 * and shows each to fn(ud, chunk) exactly once. Takes ownership of inner,
 * also on error (inner is then closed). Errors, EOF and readiness are inner's.
 * On success the caller owns *out (closing it closes inner); on error *out is
 * NULL. fn is called on the thread that polls the tap.
 * Errors: SLUICE_ENOMEM.
 */
SLUICE_API int sluice_tap_new(sluice_pool *pool, sluice_stream *inner, sluice_tap_fn fn,
                              void *ud, sluice_stream **out);

/* ---- inline definitions --------------------------------------------------- */

static inline int sluice_stream_error(const sluice_stream *s, sluice_error_info *info)
{
    return sluice__error_copy(&s->_error, info);
}

#ifdef __cplusplus
}
#endif

#endif
