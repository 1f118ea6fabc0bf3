/*
 * upstream.h — a pool of idle upstream connections (part of the examples,
 * not of the library), one per worker process.
 *
 * A connection enters the pool only when the exchange on it ended cleanly
 * by its own framing (the caller decides, with sluice_body_reusable and the
 * heads' keep-alive rules); the pool keeps the descriptor, its sluice_io
 * (so a reused connection costs no new one: no fstat or fcntl) and the time
 * it went idle. Reuse is last-in first-out: the connection idle the shortest
 * time is the least likely to be closed by the upstream's own keep-alive
 * timeout. When full, the connection idle the longest is closed to make
 * room. Connections idle for longer than idle_ms are closed as soon as the
 * pool is next used, never handed out.
 *
 * Not thread-safe: one loop uses a pool.
 */
#ifndef SLUICE_EXAMPLES_UPSTREAM_H
#define SLUICE_EXAMPLES_UPSTREAM_H

#include <sluice.h>

#include <stddef.h>
#include <stdint.h>

typedef struct upstream_idle {
    int fd;
    sluice_io *io; /* over fd, not owning it */
    int64_t since; /* sluice_now_ms() when it went idle */
} upstream_idle;

typedef struct upstream_pool {
    upstream_idle *idle; /* oldest first */
    size_t len, cap;     /* cap 0: reuse is off */
    uint32_t idle_ms;
    /* told of each idle fd the pool is about to close (the event loop may
     * still have it registered: srv_unpark); NULL: nobody to tell */
    void (*closing)(void *ud, int fd);
    void *closing_ud;
} upstream_pool;

/* An empty pool keeping up to cap connections for up to idle_ms each.
 * Returns 0, or -1 when out of memory. */
int upstream_pool_init(upstream_pool *p, size_t cap, uint32_t idle_ms,
                       void (*closing)(void *ud, int fd), void *closing_ud);

/*
 * An idle connection that still looks open, handed over to the caller with
 * its io in *io, or -1 when there is none. Each candidate is checked with a non-blocking
 * MSG_PEEK: end-of-stream or any unexpected byte means the upstream closed
 * it or is out of step with it, so it is closed and the next one tried.
 * What a check cannot see (a close already under way) the caller handles
 * by retrying, where the request allows it.
 */
int upstream_pool_get(upstream_pool *p, int64_t now, sluice_io **io);

/* Takes fd and its io into the pool (closing the oldest when full, and
 * these when reuse is off). */
void upstream_pool_put(upstream_pool *p, int fd, sluice_io *io, int64_t now);

/* Closes every idle connection and frees the pool. */
void upstream_pool_free(upstream_pool *p);

#endif
