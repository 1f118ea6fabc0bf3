/*
 * sluice/sink.h — where chunks go: the sink interface and the vector sink.
 *
 *   sluice_sink_poll_write(k, &chunk)
 *     SLUICE_READY    the sink took the chunk: its reference moved to the
 *                     sink and *chunk is zeroed. The sink may hold it (queued
 *                     for a batched writev) until a flush.
 *     SLUICE_PENDING  not now: *chunk is unchanged and still the caller's;
 *                     sluice_sink_ready() says what to wait for.
 *     SLUICE_ERROR    sluice_sink_error() says why; *chunk is unchanged.
 *   sluice_sink_flush(k)    write out what was accepted: READY when nothing
 *                           is held any more, else PENDING / ERROR.
 *   sluice_sink_finish(k)   flush and write the framing's end (e.g. 0 CRLF CRLF):
 *                           READY when the whole body went out; PENDING: call
 *                           again when ready. A finished sink accepts nothing.
 *   sluice_sink_abort(k)    stop without the end, so the receiver can tell the
 *                           body is incomplete (connection-level sinks close
 *                           or shut down their fd). Idempotent, cannot fail.
 *   sluice_sink_close(k)    aborts unless finished, releases everything, frees.
 *
 * Errors are sticky like a stream's. A sink is used by one thread at a time.
 * Implementing a sink: embed `sluice_sink` first, set `vt`.
 */
#ifndef SLUICE_SINK_H
#define SLUICE_SINK_H

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_sink sluice_sink;

typedef struct sluice_sink_vtable {
    const char *name;
    sluice_poll (*poll_write)(sluice_sink *k, sluice_bytes *chunk);
    sluice_poll (*flush)(sluice_sink *k);
    sluice_poll (*finish)(sluice_sink *k);
    void (*abort)(sluice_sink *k);
    void (*ready)(sluice_sink *k, sluice_interest *want);
    size_t (*buffered)(const sluice_sink *k); /* accepted, not yet written */
    void (*close)(sluice_sink *k);            /* frees k; abort already done */
} sluice_sink_vtable;

typedef enum sluice_sink_state {
    SLUICE_SINK_OPEN = 0,
    SLUICE_SINK_FINISHING,  /* finish() started, not yet complete */
    SLUICE_SINK_FINISHED,
    SLUICE_SINK_ABORTED
} sluice_sink_state;

struct sluice_sink {
    const sluice_sink_vtable *vt;
    sluice_pool *pool;
    sluice_sink_state _state;
    sluice_error_info _error;  /* the sticky error (code 0: none)            */
    uint64_t _written;         /* payload bytes accepted so far              */
};

/* Offers *chunk (see the top of this file): READY takes its reference;
 * PENDING / ERROR leave it the caller's. A sink that is finishing, finished
 * or aborted fails with SLUICE_ECLOSED. */
SLUICE_API sluice_poll sluice_sink_poll_write(sluice_sink *k, sluice_bytes *chunk);

/* Writes out what was accepted: READY when nothing is held, else PENDING or
 * ERROR. On an aborted sink: SLUICE_EABORTED. */
SLUICE_API sluice_poll sluice_sink_flush(sluice_sink *k);

/* Flushes and writes the framing's end: READY when the whole body went out;
 * PENDING: call again when ready; ERROR (sticky). */
SLUICE_API sluice_poll sluice_sink_finish(sluice_sink *k);

/* Stops without the end, so the receiver sees an incomplete body; drops
 * what is held. Idempotent; cannot fail; a no-op once finished. */
SLUICE_API void sluice_sink_abort(sluice_sink *k);

/* What to wait for after PENDING (see sluice_interest). */
SLUICE_API void sluice_sink_ready(sluice_sink *k, sluice_interest *want);

/* Payload bytes accepted and not yet written. */
SLUICE_API size_t sluice_sink_buffered(const sluice_sink *k);

/* Aborts unless finished, releases everything, frees k. NULL is a no-op. */
SLUICE_API void sluice_sink_close(sluice_sink *k);

/* Where the sink is in its life (open, finishing, finished, aborted). */
static inline sluice_sink_state sluice_sink_status(const sluice_sink *k);
/* Payload bytes the sink has accepted (not counting framing). */
static inline uint64_t sluice_sink_written(const sluice_sink *k);
/* 0 or the sink's sticky error code; with info != NULL also its message
 * (offset: payload bytes accepted when it failed). */
static inline int sluice_sink_error(const sluice_sink *k, sluice_error_info *info);

/* For implementations: records the first error, returns SLUICE_ERROR. */
SLUICE_API sluice_poll sluice_sink_fail(sluice_sink *k, int code, const char *why);

/* ---- vector sink --------------------------------------------------------- */

/*
 * A sink that keeps every chunk it is given (the views themselves: no copy),
 * for tests and for hosts that want a body in memory. The caller owns *out
 * (sluice_sink_close releases every kept chunk). Errors: SLUICE_ENOMEM
 * (*out NULL).
 * Growing its list can fail with SLUICE_ENOMEM from poll_write (sticky).
 */
SLUICE_API int sluice_vecsink_new(sluice_pool *pool, sluice_sink **out);

/* The chunks kept so far, borrowed (valid until the next write or close). */
SLUICE_API int sluice_vecsink_chunks(const sluice_sink *k, const sluice_bytes **chunks,
                                     size_t *n);

/* ---- inline definitions --------------------------------------------------- */

static inline sluice_sink_state sluice_sink_status(const sluice_sink *k)
{
    return k->_state;
}

static inline uint64_t sluice_sink_written(const sluice_sink *k)
{
    return k->_written;
}

static inline int sluice_sink_error(const sluice_sink *k, sluice_error_info *info)
{
    return sluice__error_copy(&k->_error, info);
}

#ifdef __cplusplus
}
#endif

#endif
