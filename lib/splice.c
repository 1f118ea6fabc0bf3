/*
 * splice.c — a body passed through without entering user space.
 *
 * A transfer is a short sequence of stages, each either the copy path or
 * the splice loop:
 *
 *   prefix  copy:   the head and the body bytes the reader already holds
 *                   (a Content-Length stream over exactly those bytes, a
 *                   pump, a raw writer: one writev, no copy);
 *   splice          src fd -> pipe -> dst fd for the rest;
 *   drain   copy:   only if dst refused splice with bytes in the pipe: a
 *                   reader over the pipe gives them back;
 *   copy    copy:   the rest, when splicing is off or refused.
 *
 * Reusing the stream, pump and writer for the copy stages keeps one
 * implementation of partial writes, idle timeouts and truncation; the splice
 * loop itself is the relay loop every splice proxy has: fill the pipe as far
 * as the body and the pipe allow, empty it into dst, wait on whichever side
 * said EAGAIN. Waiting on dst whenever the pipe holds bytes also covers a
 * pipe that is full by slots while not full by bytes (a TCP splice may use a
 * slot per small fragment), so no EAGAIN is ever mistaken for the source's.
 */
#define _GNU_SOURCE /* splice, pipe2, F_SETPIPE_SZ */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

enum phase { P_START, P_PREFIX, P_SPLICE, P_DRAIN, P_COPY, P_DONE, P_ERROR };

typedef struct stage {
    sluice_io *pipe_io;       /* P_DRAIN: the pipe's read end as an io */
    sluice_reader *pipe_rd;
    sluice_stream *body;
    sluice_sink *w;
    sluice_pump pump;
    uint64_t n;               /* body bytes this stage moves */
} stage;

typedef struct splicer splicer;

struct splicer {
    sluice__engine base;      /* first: the pump drives it through this */
    sluice_pool *pool;
    sluice_reader *r;
    sluice_io *dst;
    sluice_bytes head;
    enum phase phase;
    uint64_t length;
    uint64_t left;            /* body bytes not yet taken from the source */
    uint64_t moved, spliced;
    stage st;
    int src_fd, dst_fd;       /* -1: not a plain fd, no splicing */
    int pipe[2];
    size_t in_pipe, pipe_cap, pipe_size;
    bool lent_pipe;           /* the pipe is a chunked splice's: not ours to close */
    bool sigpipe_known;       /* the caller checked that SIGPIPE is ignored */
    bool spliced_in;          /* some byte entered the pipe (EINVAL then is real) */
    bool waits_dst;           /* the last step ended waiting for dst to take bytes */
    size_t max_inflight, step_bytes;
    uint64_t splice_min;      /* less than this to splice: the copy path */
    size_t step_moved;        /* bytes moved by the current step */
    sluice__idle idle;
    sluice_side failed;
    int err;
};

static int stage_start(splicer *s, sluice_reader *r, uint64_t n);
static void stage_end(splicer *s);
static sluice_pump_status splice_loop(splicer *s, sluice_interest *want);
static sluice_pump_status fail(splicer *s, sluice_side side, int code);
static int open_pipe(splicer *s);
static bool sigpipe_ignored(void);

static const sluice__engine_vt splice_vt;

int sluice__splice_new(sluice_pool *pool, sluice_reader *src, sluice_io *dst, uint64_t length,
                       sluice_bytes *head, const sluice_splice_config *cfg, sluice__engine **out)
{
    *out = NULL;
    sluice_splice_config c = {0};
    if (cfg)
        c = *cfg;
    int rc = SLUICE_EINVAL;
    splicer *s = NULL;
    if (c.flags & ~SLUICE_SPLICE_COPY)
        goto fail;
    rc = SLUICE_ENOMEM;
    if (!(s = sluice_pool_object_alloc(pool, sizeof *s)))
        goto fail;
    memset(s, 0, sizeof *s);
    s->pool = pool;
    s->r = src;
    s->dst = dst;
    s->length = s->left = length;
    s->pipe[0] = s->pipe[1] = -1;
    s->pipe_size = c.pipe_size ? c.pipe_size : SLUICE_SPLICE_DEFAULT_PIPE;
    s->max_inflight = c.max_inflight;
    s->step_bytes = c.step_bytes ? c.step_bytes : SLUICE_PUMP_DEFAULT_STEP;
    s->splice_min = c.splice_min ? c.splice_min : SLUICE_SPLICE_DEFAULT_MIN;
    sluice__idle_init(&s->idle, c.idle_timeout_ms);
    s->src_fd = s->dst_fd = -1;
    if (!(c.flags & SLUICE_SPLICE_COPY)) {
        s->src_fd = sluice__io_fd(sluice__reader_io(src));
        s->dst_fd = sluice__io_fd(dst);
        if (s->src_fd < 0 || s->dst_fd < 0)
            s->src_fd = s->dst_fd = -1;
    }
    if (head) {
        s->head = *head;
        *head = (sluice_bytes){0};
    }
    s->base.vt = &splice_vt;
    *out = &s->base;
    return 0;
fail:
    if (head)
        sluice_bytes_release(head);
    return rc;
}

static sluice_pump_status splice_step(sluice__engine *e, sluice_interest *want)
{
    splicer *s = (splicer *)e;
    sluice_interest dummy;
    if (!want)
        want = &dummy;
    *want = (sluice_interest){-1, 0, -1};
    s->step_moved = 0;
    for (;;) {
        switch (s->phase) {
        case P_START: {
            uint64_t held = sluice_reader_available(s->r);
            /* the SIGPIPE check (a syscall) only for a body large enough */
            if (s->src_fd < 0 || held >= s->left || s->left - held < s->splice_min ||
                !(s->sigpipe_known || sigpipe_ignored()) || (s->pipe[0] < 0 && open_pipe(s) < 0)) {
                /* copy path: everything through the reader */
                if (stage_start(s, s->r, s->left) < 0)
                    return fail(s, SLUICE_SIDE_SOURCE, SLUICE_ENOMEM);
                s->phase = P_COPY;
            } else if (held || s->head.len) {
                if (stage_start(s, s->r, held) < 0)
                    return fail(s, SLUICE_SIDE_SOURCE, SLUICE_ENOMEM);
                s->phase = P_PREFIX;
            } else {
                sluice_bytes_release(&s->head);
                s->phase = P_SPLICE;
            }
            continue;
        }
        case P_PREFIX:
        case P_DRAIN:
        case P_COPY: {
            sluice_pump_status ps = sluice_pump_step(&s->st.pump, want);
            if (ps == SLUICE_PUMP_PENDING)
                return ps;
            if (ps == SLUICE_PUMP_ERROR) {
                /* after a source error the pump aborted the writer: dst is
                 * shut down */
                sluice_side side;
                int code = sluice_pump_error(&s->st.pump, &side);
                return fail(s, side, code);
            }
            s->moved += s->st.n;
            if (s->phase != P_DRAIN)
                s->left -= s->st.n;
            else
                s->in_pipe = 0;
            enum phase was = s->phase;
            stage_end(s);
            if (was == P_COPY || s->left == 0) {
                s->phase = P_DONE;
            } else if (was == P_PREFIX) {
                s->phase = P_SPLICE;
            } else { /* P_DRAIN: dst does not take splice; copy the rest */
                if (stage_start(s, s->r, s->left) < 0)
                    return fail(s, SLUICE_SIDE_SOURCE, SLUICE_ENOMEM);
                s->phase = P_COPY;
            }
            continue;
        }
        case P_SPLICE: {
            sluice_pump_status ps = splice_loop(s, want);
            if (ps != SLUICE_PUMP_DONE)
                return ps;
            if (s->phase == P_SPLICE) /* else a copy stage took over */
                s->phase = P_DONE;
            continue;
        }
        case P_DONE:
            return SLUICE_PUMP_DONE;
        case P_ERROR:
            return SLUICE_PUMP_ERROR;
        }
    }
}

static int splice_error(const sluice__engine *e, sluice_side *side)
{
    const splicer *s = (const splicer *)e;
    if (side)
        *side = s->failed;
    return s->err;
}

static uint64_t splice_moved(const sluice__engine *e)
{
    const splicer *s = (const splicer *)e;
    uint64_t n = s->moved;
    if (s->phase == P_PREFIX || s->phase == P_DRAIN || s->phase == P_COPY)
        n += sluice_pump_moved(&s->st.pump);
    return n;
}

static uint64_t splice_spliced(const sluice__engine *e)
{
    const splicer *s = (const splicer *)e;
    return s->spliced;
}

static void splice_free(sluice__engine *e)
{
    splicer *s = (splicer *)e;
    if (s->phase != P_DONE && s->phase != P_ERROR)
        sluice_io_shutdown(s->dst); /* an unfinished body must not look complete */
    stage_end(s);
    sluice_bytes_release(&s->head);
    if (s->pipe[0] >= 0 && !s->lent_pipe) {
        close(s->pipe[0]);
        close(s->pipe[1]);
    }
    sluice_pool_object_free(s->pool, s, sizeof *s);
}

static const sluice__engine_vt splice_vt = {splice_step, splice_error, splice_moved,
                                            splice_spliced, splice_free};

/* ---- the splice loop ------------------------------------------------------ */

/*
 * DONE when the last byte left the pipe; also DONE (with s->phase changed)
 * when dst refused splice and the drain stage takes over.
 */
static sluice_pump_status splice_loop(splicer *s, sluice_interest *want)
{
    if (s->waits_dst && sluice__idle_write_stalled(&s->idle, s->dst)) {
        *want = (sluice_interest){-1, 0, -1};
        return fail(s, SLUICE_SIDE_SINK, SLUICE_ETIMEDOUT);
    }
    s->waits_dst = false;
    for (;;) {
        bool progress = false, out_again = false;
        if (s->left && s->in_pipe < s->pipe_cap) {
            size_t n = s->pipe_cap - s->in_pipe;
            if (s->left < n)
                n = (size_t)s->left;
            ssize_t got = splice(s->src_fd, NULL, s->pipe[1], NULL, n,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (got > 0) {
                s->left -= (uint64_t)got;
                s->in_pipe += (size_t)got;
                s->spliced_in = true;
                sluice__reader_bypassed(s->r, (uint64_t)got);
                progress = true;
            } else if (got == 0) {
                return fail(s, SLUICE_SIDE_SOURCE, SLUICE_ETRUNCATED);
            } else if (errno == EINTR) {
                continue;
            } else if ((errno == EINVAL || errno == ENOSYS) && !s->spliced_in) {
                /* the source does not splice: the copy path from here */
                if (stage_start(s, s->r, s->left) < 0)
                    return fail(s, SLUICE_SIDE_SOURCE, SLUICE_ENOMEM);
                s->phase = P_COPY;
                return SLUICE_PUMP_DONE;
            } else if (errno != EAGAIN) {
                return fail(s, SLUICE_SIDE_SOURCE, -errno);
            }
        }
        if (s->in_pipe) {
            ssize_t put = splice(s->pipe[0], NULL, s->dst_fd, NULL, s->in_pipe,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (put > 0) {
                s->in_pipe -= (size_t)put;
                s->moved += (uint64_t)put;
                s->spliced += (uint64_t)put;
                s->step_moved += (size_t)put;
                progress = true;
            } else if (put < 0 && errno == EINTR) {
                continue;
            } else if (put < 0 && (errno == EINVAL || errno == ENOSYS) && !s->spliced) {
                /* dst does not take splice: read the pipe back */
                if (stage_start(s, NULL, s->in_pipe) < 0)
                    return fail(s, SLUICE_SIDE_SOURCE, SLUICE_ENOMEM);
                s->phase = P_DRAIN;
                return SLUICE_PUMP_DONE;
            } else if (put < 0 && errno == EAGAIN) {
                out_again = true;
            } else {
                return fail(s, SLUICE_SIDE_SINK, put < 0 ? -errno : SLUICE_EPEERCLOSED);
            }
        }
        if (!s->left && !s->in_pipe)
            return SLUICE_PUMP_DONE;
        if (progress) {
            sluice__idle_progress(&s->idle);
            if (s->step_moved < s->step_bytes)
                continue;
            return SLUICE_PUMP_PENDING; /* budget spent: "call again soon" */
        }
        /* Both sides said EAGAIN (or the pipe is full) */
        s->waits_dst = s->in_pipe && out_again;
        if (!sluice__splice_wait(s->r, s->dst, s->waits_dst, &s->idle, want))
            return fail(s, s->waits_dst ? SLUICE_SIDE_SINK : SLUICE_SIDE_SOURCE,
                        SLUICE_ETIMEDOUT);
        return SLUICE_PUMP_PENDING;
    }
}

/* ---- stages ---------------------------------------------------------------- */

/*
 * A copy stage over n bytes of r (NULL: of the pipe), into a raw writer that
 * carries the head if it was not written yet. Returns 0 or SLUICE_ENOMEM.
 */
static int stage_start(splicer *s, sluice_reader *r, uint64_t n)
{
    stage *st = &s->st;
    memset(st, 0, sizeof *st);
    st->n = n;
    if (!r) {
        if (sluice_io_fd_new(s->pool, s->pipe[0], 0, &st->pipe_io) < 0 ||
            sluice_reader_new(s->pool, st->pipe_io, NULL, &st->pipe_rd) < 0)
            goto fail;
        r = st->pipe_rd;
    }
    sluice_body_config bc = {.idle_timeout_ms = s->idle.ms};
    sluice_writer_config wc = {.idle_timeout_ms = s->idle.ms};
    if (sluice_body_new(s->pool, r, SLUICE_FRAMING_LENGTH(n), &bc, &st->body) < 0 ||
        sluice_writer_new(s->pool, s->dst, SLUICE_FRAMING_CLOSE, &s->head, &wc, &st->w) < 0)
        goto fail;
    sluice_pump_config pc = {s->max_inflight, s->step_bytes};
    sluice_pump_init(&st->pump, st->body, st->w, &pc);
    return 0;
fail:
    sluice_bytes_release(&s->head);
    stage_end(s);
    return SLUICE_ENOMEM;
}

static void stage_end(splicer *s)
{
    stage *st = &s->st;
    sluice_pump_close(&st->pump);
    sluice_sink_close(st->w); /* aborts (shuts dst down) unless finished */
    sluice_stream_close(st->body);
    sluice_reader_close(st->pipe_rd);
    sluice_io_close(st->pipe_io);
    memset(st, 0, sizeof *st);
}

/* ---- helpers ------------------------------------------------------------- */

/* Records the error. Anything but a destination error leaves dst shut
 * down (closing an unfinished writer does it too), so the body looks cut. */
static sluice_pump_status fail(splicer *s, sluice_side side, int code)
{
    if (side != SLUICE_SIDE_SINK)
        sluice_io_shutdown(s->dst);
    stage_end(s);
    s->phase = P_ERROR;
    s->failed = side;
    s->err = code ? code : SLUICE_EINVAL;
    return SLUICE_PUMP_ERROR;
}

/* Nothing moved: names the side to wait on, dst while the pipe holds bytes
 * it refused (also a pipe full by slots), the source otherwise, with the
 * idle deadline. False, and no interest, once the idle time ran out. */
bool sluice__splice_wait(sluice_reader *src, sluice_io *dst, bool on_dst, sluice__idle *idle,
                         sluice_interest *want)
{
    if (on_dst)
        sluice__io_ready(dst, SLUICE_WANT_WRITE, want);
    else
        sluice__io_ready(sluice__reader_io(src), SLUICE_WANT_READ, want);
    if (!sluice__idle_pending(idle)) {
        *want = (sluice_interest){-1, 0, -1};
        return false;
    }
    want->deadline_ms = sluice__idle_deadline(idle);
    return true;
}

/* The pipe, sized once. -1 when none can be had: the copy path then. */
int sluice__pipe_open(int fds[2], size_t size, size_t *cap)
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        fds[0] = fds[1] = -1;
        return -1;
    }
    int want = size > (size_t)1 << 30 ? 1 << 30 : (int)size;
    fcntl(fds[1], F_SETPIPE_SZ, want); /* refused: keep the default size */
    int got = fcntl(fds[1], F_GETPIPE_SZ);
    *cap = got > 0 ? (size_t)got : 65536;
    return 0;
}

static int open_pipe(splicer *s)
{
    return sluice__pipe_open(s->pipe, s->pipe_size, &s->pipe_cap);
}

void sluice__splice_lend_pipe(sluice__engine *e, const int fds[2], size_t cap)
{
    splicer *s = (splicer *)e;
    s->pipe[0] = fds[0];
    s->pipe[1] = fds[1];
    s->pipe_cap = cap;
    s->lent_pipe = true;
}

/* A chunked splice checks SIGPIPE once per body, not once per chunk. */
void sluice__splice_sigpipe_known(sluice__engine *e)
{
    ((splicer *)e)->sigpipe_known = true;
}

bool sluice__sigpipe_ignored(void)
{
    return sigpipe_ignored();
}

/*
 * splice(2) into a socket whose peer is gone raises SIGPIPE: there is no
 * MSG_NOSIGNAL for it. The copy path's sendmsg never does, so splicing is
 * only chosen when the process ignores SIGPIPE (servers do).
 */
static bool sigpipe_ignored(void)
{
    struct sigaction sa;
    return sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}
