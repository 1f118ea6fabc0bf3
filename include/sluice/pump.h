/*
 * sluice/pump.h — moves a stream into a sink with backpressure.
 *
 * The pump borrows its stream and sink (the host keeps owning and closing
 * them) and holds at most one chunk of its own. It pulls from the stream
 * only while the sink holds fewer than `max_inflight` unwritten bytes, so the
 * memory a transfer uses is bounded by max_inflight plus one chunk, whatever
 * the body size: a slow sink stops the pulling, the socket's receive buffer
 * fills and the peer is paused by TCP.
 *
 * On a source error the sink is aborted, never finished; on a sink error the
 * stream is left alone (the host closes it). DONE means the stream reached
 * EOF and the sink finished.
 *
 * sluice_pump is a plain struct the host embeds; all-zero is "not started"
 * (use sluice_pump_init). Not thread-safe: one thread steps a pump.
 */
#ifndef SLUICE_PUMP_H
#define SLUICE_PUMP_H

#include "sink.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sluice_pump_status {
    SLUICE_PUMP_DONE = 0,
    SLUICE_PUMP_PENDING = 1,
    SLUICE_PUMP_ERROR = 2
} sluice_pump_status;

typedef enum sluice_side {
    SLUICE_SIDE_NONE = 0,
    SLUICE_SIDE_SOURCE = 1,
    SLUICE_SIDE_SINK = 2
} sluice_side;

#define SLUICE_PUMP_DEFAULT_INFLIGHT (256u * 1024u)
/* Bytes one step moves before it returns to the host loop: at 256 KiB a
 * step holds a loop for a fraction of a millisecond at loopback speed; small
 * requests beside a 1 GiB upload wait less than at 1 MiB (p99 8-9 ms
 * against 10-12 on 2 cores, tests/bench/latency.py) and the upload's CPU
 * per GiB does not change (docs/performance.md). */
#define SLUICE_PUMP_DEFAULT_STEP (256u * 1024u)

typedef struct sluice_pump_config {
    size_t max_inflight; /* unwritten bytes the sink may hold; 0: 256 KiB  */
    size_t step_bytes;   /* bytes moved before a step yields; 0: 256 KiB;
                            SIZE_MAX: never yield (tools, tests)            */
} sluice_pump_config;

struct sluice__engine;

typedef struct sluice_pump {
    sluice_stream *_src;
    sluice_sink *_dst;
    struct sluice__engine *_engine; /* a splice or reply pump, else NULL */
    size_t _max_inflight;
    size_t _step_bytes;
    sluice_bytes _held;     /* pulled, not yet accepted by the sink */
    int _phase;             /* internal */
    sluice_side _failed;
    int _err;
    uint64_t _moved;        /* payload bytes accepted by the sink */
} sluice_pump;

/* Prepares p to move src into dst. cfg may be NULL for the defaults.
 * Cannot fail. */
SLUICE_API void sluice_pump_init(sluice_pump *p, sluice_stream *src, sluice_sink *dst,
                                 const sluice_pump_config *cfg);

/*
 * Moves as much as it can without blocking, and no more than step_bytes, so
 * one busy transfer cannot hold a host loop while other connections wait.
 *   DONE     stream at EOF and sink finished. Repeats if called again.
 *   PENDING  *want says what to wait for (the stream's readable fd or the
 *            sink's writable fd, with a deadline if either has one; or, for
 *            a source queued for pool memory, SLUICE_WANT_WAKE: the pool's
 *            wake hook naming the source's reader's token). An
 *            interest with no fd and no deadline means "call again soon":
 *            the step spent its budget, or the source yielded (a stream
 *            that asks to be polled again rather than wait); a host runs
 *            its other work first, then steps again without waiting.
 *   ERROR    sluice_pump_error() gives the code and the side that failed.
 *            After a source error the sink has been aborted.
 * want may be NULL.
 */
SLUICE_API sluice_pump_status sluice_pump_step(sluice_pump *p, sluice_interest *want);

/*
 * Steps until DONE or ERROR, waiting with poll(2) in between (a source
 * queued for memory is looked at again every SLUICE_READER_POOL_RETRY_MS:
 * this loop sees no wake hook). timeout_ms < 0:
 * no overall limit. Returns 0 on DONE; the pump's error code on ERROR;
 * SLUICE_ETIMEDOUT if timeout_ms passed first (the pump can be stepped again).
 * Blocks the calling thread: for tools and tests, not for event loops.
 */
SLUICE_API int sluice_pump_run(sluice_pump *p, int timeout_ms);

/* 0 or the pump's error code (after ERROR); *side (may be NULL) says which
 * side failed. */
static inline int sluice_pump_error(const sluice_pump *p, sluice_side *side);

/* Payload bytes moved into the sink so far (a splice pump: handed to its
 * destination). */
SLUICE_API uint64_t sluice_pump_moved(const sluice_pump *p);

/*
 * Releases what the pump itself holds: the chunk it pulled and not yet
 * passed on, and a splice pump's pipe (an unfinished splice shuts the
 * destination's write side, so a cut body never looks complete). The stream
 * and sink are not touched. Safe on a zeroed or already closed pump; call it
 * when done with any pump, finished or not.
 */
SLUICE_API void sluice_pump_close(sluice_pump *p);

/* ---- inline definitions --------------------------------------------------- */

static inline int sluice_pump_error(const sluice_pump *p, sluice_side *side)
{
    if (side)
        *side = p->_failed;
    return p->_err;
}

#ifdef __cplusplus
}
#endif

#endif
