/*
 * pump.c — stream -> sink with a bound on unwritten bytes (and the entry
 * points of the splice and reply pumps, whose engines are splice.c and
 * reply.c).
 *
 * One chunk is held at a time; the sink may queue more (for batched writev)
 * but the pump stops pulling once the sink holds max_inflight bytes and
 * flushes instead. Only one interest is reported at a time: when the source
 * is dry the sink is flushed first, so the host waits on the sink's fd only
 * while the sink is the one blocking, and on the source's fd otherwise.
 * After such a flush the source is polled once more before the pump waits:
 * bytes that arrived meanwhile are taken without a wake-up, and a source
 * that was dry for want of memory (a reader at the pool's cap, no fd to
 * wait on) goes on with the blocks the flush released. A source queued for
 * memory (SLUICE_WANT_WAKE) is passed through like an fd: the host waits
 * for the pool's wake hook.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>

enum { PH_RUN = 0, PH_FINISH, PH_DONE, PH_ERROR };

static sluice_pump_status wait_on_sink(sluice_pump *p, sluice_interest *want);
static sluice_pump_status fail(sluice_pump *p, sluice_side side, int code);

void sluice_pump_init(sluice_pump *p, sluice_stream *src, sluice_sink *dst,
                      const sluice_pump_config *cfg)
{
    *p = (sluice_pump){0};
    p->_src = src;
    p->_dst = dst;
    p->_max_inflight = cfg && cfg->max_inflight ? cfg->max_inflight : SLUICE_PUMP_DEFAULT_INFLIGHT;
    p->_step_bytes = cfg && cfg->step_bytes ? cfg->step_bytes : SLUICE_PUMP_DEFAULT_STEP;
}

int sluice_pump_splice_init(sluice_pump *p, sluice_pool *pool, sluice_reader *src,
                            sluice_io *dst, const sluice_http_framing *framing,
                            sluice_bytes *head, const sluice_splice_config *cfg)
{
    *p = (sluice_pump){0};
    if (framing->body == SLUICE_HTTP_BODY_LENGTH)
        return sluice__splice_new(pool, src, dst, framing->length, head, cfg, &p->_engine);
    if (framing->body == SLUICE_HTTP_BODY_CHUNKED)
        return sluice__splice_chunked_new(pool, src, dst, head, cfg, &p->_engine);
    if (head)
        sluice_bytes_release(head);
    return SLUICE_EINVAL;
}

int sluice_pump_reply_init(sluice_pump *p, sluice_pool *pool, sluice_io *io, sluice_reader *r,
                           sluice_bytes *response, const sluice_reply_config *cfg)
{
    *p = (sluice_pump){0};
    return sluice__reply_new(pool, io, r, response, cfg, &p->_engine);
}

/* A splice or reply pump's step: the engine's, its error copied into the
 * pump. */
static sluice_pump_status engine_step(sluice_pump *p, sluice_interest *want)
{
    sluice_pump_status st = p->_engine->vt->step(p->_engine, want);
    if (st == SLUICE_PUMP_ERROR)
        p->_err = p->_engine->vt->error(p->_engine, &p->_failed);
    return st;
}

/* Step helpers return GO_ON to let the step continue, else its result. */
#define GO_ON ((sluice_pump_status)-1)

/* Writes out what the sink holds. GO_ON once it holds nothing. */
static sluice_pump_status flush(sluice_pump *p, sluice_interest *want)
{
    sluice_poll r = sluice_sink_flush(p->_dst);
    if (r == SLUICE_PENDING)
        return wait_on_sink(p, want);
    if (r == SLUICE_ERROR)
        return fail(p, SLUICE_SIDE_SINK, sluice_sink_error(p->_dst, NULL));
    return GO_ON;
}

/* Hands the held chunk to the sink. */
static sluice_pump_status put(sluice_pump *p, sluice_interest *want, size_t *moved)
{
    size_t len = p->_held.len;
    sluice_poll r = sluice_sink_poll_write(p->_dst, &p->_held);
    if (r == SLUICE_PENDING)
        return wait_on_sink(p, want);
    if (r == SLUICE_ERROR)
        return fail(p, SLUICE_SIDE_SINK, sluice_sink_error(p->_dst, NULL));
    p->_moved += len;
    *moved += len;
    return GO_ON;
}

static sluice_pump_status finish(sluice_pump *p, sluice_interest *want)
{
    sluice_poll r = sluice_sink_finish(p->_dst);
    if (r == SLUICE_READY) {
        p->_phase = PH_DONE;
        return SLUICE_PUMP_DONE;
    }
    if (r == SLUICE_PENDING)
        return wait_on_sink(p, want);
    return fail(p, SLUICE_SIDE_SINK, sluice_sink_error(p->_dst, NULL));
}

/* The source is dry (its interest is in *want): push out what the sink
 * holds before waiting. After a flush, bytes most likely arrived while it
 * ran (and a source at the pool's cap can go on: the flush released
 * blocks), so the step polls again, as a read/write relay does, rather than
 * pay a wake-up for them; except for a source that yielded (no fd, no
 * deadline: "poll me again soon"), whose yield ends the step. */
static sluice_pump_status dry(sluice_pump *p, sluice_interest *want)
{
    int yielded = want->fd < 0 && want->deadline_ms < 0 && !(want->events & SLUICE_WANT_WAKE);
    if (sluice_sink_buffered(p->_dst) == 0)
        return SLUICE_PUMP_PENDING;
    sluice_pump_status st = flush(p, want);
    if (st != GO_ON || !yielded)
        return st;
    *want = (sluice_interest){-1, 0, -1};
    return SLUICE_PUMP_PENDING;
}

sluice_pump_status sluice_pump_step(sluice_pump *p, sluice_interest *want)
{
    sluice_interest dummy;
    if (!want)
        want = &dummy;
    *want = (sluice_interest){-1, 0, -1};
    if (p->_engine)
        return engine_step(p, want);
    size_t moved = 0; /* by this step: at step_bytes it yields */
    sluice_pump_status st = GO_ON;
    while (st == GO_ON && p->_phase == PH_RUN) {
        /* what an earlier turn said (a source that was dry before a flush)
         * is stale once it goes on: each PENDING below names its own */
        *want = (sluice_interest){-1, 0, -1};
        if (p->_held.len) {
            st = put(p, want, &moved);
        } else if (moved >= p->_step_bytes) {
            st = flush(p, want);
            if (st == GO_ON) /* the budget is spent: let the host run others */
                st = SLUICE_PUMP_PENDING;
        } else if (sluice_sink_buffered(p->_dst) >= p->_max_inflight) {
            st = flush(p, want);
        } else {
            sluice_poll r = sluice_stream_poll_next(p->_src, &p->_held);
            if (r == SLUICE_EOF) {
                p->_phase = PH_FINISH;
            } else if (r == SLUICE_ERROR) {
                sluice_sink_abort(p->_dst);
                st = fail(p, SLUICE_SIDE_SOURCE, sluice_stream_error(p->_src, NULL));
            } else if (r == SLUICE_PENDING) {
                sluice_stream_ready(p->_src, want);
                st = dry(p, want);
            }
        }
    }
    if (st != GO_ON)
        return st;
    if (p->_phase == PH_FINISH)
        return finish(p, want);
    return p->_phase == PH_DONE ? SLUICE_PUMP_DONE : SLUICE_PUMP_ERROR;
}

int sluice_pump_run(sluice_pump *p, int timeout_ms)
{
    int64_t end = timeout_ms < 0 ? -1 : sluice_now_ms() + timeout_ms;
    for (;;) {
        sluice_interest want;
        sluice_pump_status st = sluice_pump_step(p, &want);
        if (st == SLUICE_PUMP_DONE)
            return 0;
        if (st == SLUICE_PUMP_ERROR)
            return sluice_pump_error(p, NULL);
        int64_t now = sluice_now_ms();
        if (end >= 0 && now >= end)
            return SLUICE_ETIMEDOUT;
        int64_t until = want.deadline_ms;
        if (end >= 0 && (until < 0 || end < until))
            until = end;
        if (want.fd < 0 && (want.events & SLUICE_WANT_WAKE)) {
            /* memory, promised by a hook this loop does not see: look again
             * as a host without a hook would */
            int64_t retry = now + SLUICE_READER_POOL_RETRY_MS;
            if (until < 0 || retry < until)
                until = retry;
        } else if (want.fd < 0 && want.deadline_ms < 0) {
            continue; /* nothing to wait for: step again */
        }
        int ms = until < 0 ? -1 : (int)(until > now ? until - now : 0);
        struct pollfd pfd = {want.fd, 0, 0};
        if (want.events & SLUICE_WANT_READ)
            pfd.events |= POLLIN;
        if (want.events & SLUICE_WANT_WRITE)
            pfd.events |= POLLOUT;
        if (poll(&pfd, want.fd >= 0 ? 1 : 0, ms) < 0 && errno != EINTR)
            return -errno;
    }
}

uint64_t sluice_pump_moved(const sluice_pump *p)
{
    return p->_engine ? p->_engine->vt->moved(p->_engine) : p->_moved;
}

uint64_t sluice_pump_spliced(const sluice_pump *p)
{
    return p->_engine && p->_engine->vt->spliced ? p->_engine->vt->spliced(p->_engine) : 0;
}

void sluice_pump_close(sluice_pump *p)
{
    sluice_bytes_release(&p->_held);
    if (p->_engine)
        p->_engine->vt->free(p->_engine);
    p->_engine = NULL;
}

static sluice_pump_status wait_on_sink(sluice_pump *p, sluice_interest *want)
{
    sluice_sink_ready(p->_dst, want);
    return SLUICE_PUMP_PENDING;
}

static sluice_pump_status fail(sluice_pump *p, sluice_side side, int code)
{
    sluice_bytes_release(&p->_held);
    p->_phase = PH_ERROR;
    p->_failed = side;
    p->_err = code ? code : SLUICE_EINVAL;
    return SLUICE_PUMP_ERROR;
}
