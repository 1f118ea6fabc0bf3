/*
 * reply.c — the reply pump: a response written, the write side shut, the
 * client drained for a while, so that closing never resets the answer away
 * (see reply.h). Three phases, each a short loop over the io; the drain
 * reads into a stack buffer because the bytes are dropped.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

enum phase { R_WRITE, R_DRAIN, R_DONE, R_ERROR };

#define DRAIN_BUF 16384

typedef struct reply {
    sluice__engine base;     /* first: the pump drives it through this */
    sluice_pool *pool;
    sluice_io *io;
    sluice_reader *r;
    sluice_bytes response;   /* what is left to write */
    enum phase phase;
    uint64_t written, drained, drain_max;
    uint32_t drain_ms;
    int64_t drain_end;       /* the drain's deadline */
    sluice__idle idle;       /* writing: the client takes nothing */
    int err;
} reply;

static sluice_pump_status fail(reply *rp, int code)
{
    sluice_bytes_release(&rp->response);
    rp->phase = R_ERROR;
    rp->err = code;
    return SLUICE_PUMP_ERROR;
}

/* Everything written: shut the write side (the client reads the answer,
 * then end-of-stream) and start draining, first what the reader holds. */
static void start_drain(reply *rp)
{
    sluice_bytes_release(&rp->response);
    sluice_io_shutdown(rp->io); /* not a socket: nothing to shut, drain anyway */
    if (rp->r) {
        size_t held = sluice_reader_available(rp->r);
        sluice_reader_skip(rp->r, held);
        rp->drained += held;
    }
    rp->drain_end = sluice_now_ms() + rp->drain_ms;
    rp->phase = rp->drained >= rp->drain_max ? R_DONE : R_DRAIN;
}

static sluice_pump_status write_some(reply *rp, sluice_interest *want)
{
    int rc = sluice__io_write_bytes(rp->io, &rp->response, &rp->idle, want, &rp->written);
    if (rc < 0)
        return fail(rp, rc);
    if (rc > 0)
        return SLUICE_PUMP_PENDING;
    start_drain(rp);
    return SLUICE_PUMP_DONE; /* of this phase */
}

/* Reads and drops until the client closes, drain_max or drain_end; a step
 * reads at most SLUICE_PUMP_DEFAULT_STEP bytes. */
static sluice_pump_status drain(reply *rp, sluice_interest *want)
{
    unsigned char buf[DRAIN_BUF];
    for (size_t step = 0; step < SLUICE_PUMP_DEFAULT_STEP;) {
        struct iovec iov = {buf, sizeof buf};
        ssize_t n = sluice_io_readv(rp->io, &iov, 1);
        if (n == -EAGAIN && sluice_now_ms() < rp->drain_end) {
            sluice__io_ready(rp->io, SLUICE_WANT_READ, want);
            want->deadline_ms = rp->drain_end;
            return SLUICE_PUMP_PENDING;
        }
        /* the client closed (or reset: nothing is left to lose), or time ran out */
        if (n <= 0)
            break;
        rp->drained += (uint64_t)n;
        step += (size_t)n;
        if (rp->drained >= rp->drain_max)
            break;
        if (step >= SLUICE_PUMP_DEFAULT_STEP)
            return SLUICE_PUMP_PENDING; /* the step's budget: "call again soon" */
    }
    rp->phase = R_DONE;
    return SLUICE_PUMP_DONE;
}

static sluice_pump_status reply_step(sluice__engine *e, sluice_interest *want)
{
    reply *rp = (reply *)e;
    if (rp->phase == R_WRITE) {
        sluice_pump_status st = write_some(rp, want);
        if (st != SLUICE_PUMP_DONE)
            return st;
    }
    if (rp->phase == R_DRAIN)
        return drain(rp, want);
    return rp->phase == R_DONE ? SLUICE_PUMP_DONE : SLUICE_PUMP_ERROR;
}

static int reply_error(const sluice__engine *e, sluice_side *side)
{
    const reply *rp = (const reply *)e;
    if (side)
        *side = rp->err ? SLUICE_SIDE_SINK : SLUICE_SIDE_NONE;
    return rp->err;
}

static uint64_t reply_moved(const sluice__engine *e)
{
    return ((const reply *)e)->written;
}

static void reply_free(sluice__engine *e)
{
    reply *rp = (reply *)e;
    sluice_bytes_release(&rp->response);
    sluice_pool_object_free(rp->pool, rp, sizeof *rp);
}

static const sluice__engine_vt reply_vt = {reply_step, reply_error, reply_moved, NULL,
                                           reply_free};

int sluice__reply_new(sluice_pool *pool, sluice_io *io, sluice_reader *r, sluice_bytes *response,
                      const sluice_reply_config *cfg, sluice__engine **out)
{
    *out = NULL;
    reply *rp = sluice_pool_object_alloc(pool, sizeof *rp);
    if (!rp) {
        sluice_bytes_release(response);
        return SLUICE_ENOMEM;
    }
    memset(rp, 0, sizeof *rp);
    rp->base.vt = &reply_vt;
    rp->pool = pool;
    rp->io = io;
    rp->r = r;
    rp->response = *response;
    *response = (sluice_bytes){0};
    rp->drain_max = cfg && cfg->drain_bytes ? cfg->drain_bytes : SLUICE_REPLY_DEFAULT_DRAIN_BYTES;
    rp->drain_ms = cfg && cfg->drain_ms ? cfg->drain_ms : SLUICE_REPLY_DEFAULT_DRAIN_MS;
    sluice__idle_init(&rp->idle, rp->drain_ms);
    *out = &rp->base;
    return 0;
}
