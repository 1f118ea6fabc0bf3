/*
 * sluice/reply.h — the early response: answer before the request body has
 * ended (413, 417, a 4xx of the host's own, an upstream's early answer),
 * then close without destroying the answer.
 *
 * Closing a socket while the peer's data is still unread makes the kernel
 * send a reset, and a reset can discard the response before the client has
 * read it: a client that writes its whole body before reading (most HTTP
 * libraries do) then sees ECONNRESET instead of the 413. The reply pump does
 * what nginx calls a lingering close:
 *
 *   1. writes the response (a complete, already-built response: head and
 *      body, e.g. from the head builder), then shuts the write side down, so
 *      the client reads the answer and then end-of-stream;
 *   2. reads and drops what the client still sends (first whatever the
 *      connection's reader holds) until the client closes, drain_bytes were
 *      dropped, or drain_ms passed;
 *   3. DONE: the host closes the connection; by then the client has read its
 *      answer or had drain_ms to do so.
 *
 *   sluice_pump p;
 *   sluice_pump_reply_init(&p, pool, io, reader, &response, NULL);
 *   while (sluice_pump_step(&p, &want) == SLUICE_PUMP_PENDING)
 *       wait for want (the host's loop)
 *   sluice_pump_close(&p); close the connection
 *
 * It is a sluice_pump: stepped, queried and closed like one. A step moves at
 * most SLUICE_PUMP_DEFAULT_STEP bytes. ERROR only when writing the response
 * failed (sluice_pump_error: the sink side, -EPIPE / -ECONNRESET / -errno,
 * SLUICE_ETIMEDOUT when the client took nothing for drain_ms); a read error
 * while draining just ends the drain. sluice_pump_moved() counts response
 * bytes written.
 *
 * The pump borrows io and the reader (the host closes them after
 * sluice_pump_close; the reader's buffered bytes are consumed) and is used
 * by one thread at a time. Drained bytes are read into a buffer on the
 * stack: draining takes no pool memory.
 */
#ifndef SLUICE_REPLY_H
#define SLUICE_REPLY_H

#include "pump.h"
#include "reader.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_REPLY_DEFAULT_DRAIN_BYTES (64u * 1024u * 1024u)
#define SLUICE_REPLY_DEFAULT_DRAIN_MS 2000u

typedef struct sluice_reply_config {
    uint64_t drain_bytes; /* client bytes dropped at most; 0: 64 MiB           */
    uint32_t drain_ms;    /* how long to drain, and to wait for the client to
                             take the response; 0: 2000 ms                     */
} sluice_reply_config;

/*
 * Makes p a reply pump that writes `response` to io, shuts io's write side
 * and drains the client through r (may be NULL: read io directly). The
 * reference in *response moves to the pump (*response is zeroed), also when
 * this fails. cfg may be NULL. Errors (p is then a zeroed pump):
 * SLUICE_ENOMEM.
 */
SLUICE_API int sluice_pump_reply_init(sluice_pump *p, sluice_pool *pool, sluice_io *io,
                                      sluice_reader *r, sluice_bytes *response,
                                      const sluice_reply_config *cfg);

#ifdef __cplusplus
}
#endif

#endif
