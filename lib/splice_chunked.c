/*
 * splice_chunked.c — a chunked body forwarded chunked, its large chunks'
 * data spliced (see splice.h).
 *
 * The strict chunked decoder (body.c) reads the framing in user space and
 * stops where the data of a large chunk starts, at least splice_min of it
 * still in the socket (sluice__chunked_next). That chunk's data then goes
 * through a Content-Length splice engine (splice.c) with the size line as
 * its head: the head and what the reader already holds of the chunk go out
 * in one write, the rest is spliced, and the copy-path fallbacks, idle
 * timeouts and truncation rules are the ones Content-Length passthrough
 * has. The CRLF after the data goes out with the next spliced chunk's size
 * line (one write, one packet), or on its own before anything else is
 * written or when the source runs dry. Everything else the decoder yields
 * (small chunks, bytes already read) goes through a chunked writer, which
 * batches them; it is flushed before a spliced chunk so the output stays in
 * order. One pipe serves every spliced chunk of the body.
 *
 * Verbatim runs. Once a chunk went through the splice, the next chunks'
 * framing often needs no rewriting: a client that sends large chunks with
 * size lines written as the chunked writer writes them (lowercase hex, no
 * extension) is forwarded as it came. A MSG_PEEK reads the CRLF and size
 * line (the decoder checks them: sluice__chunked_verbatim), one splice takes
 * them with the chunk's data into the pipe, and the pipe is emptied into dst
 * when half full or when the source runs dry, so dst sees segments as large
 * as a copy relay's instead of a small write and a splice per chunk. Any
 * other line (small chunk, extension, the last chunk, a line cut short by
 * the peek) ends the run at a chunk boundary with the pipe empty, and the
 * decoder goes on from the CRLF as after any spliced chunk.
 */
#define _GNU_SOURCE /* splice */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum phase { C_RUN, C_FINISH, C_DONE, C_ERROR };

typedef struct chunks {
    sluice__engine base;      /* first: the pump drives it through this */
    sluice_pool *pool;
    sluice_reader *r;
    sluice_io *dst;
    sluice_stream *body;      /* the chunked decoder over r */
    sluice_sink *w;           /* chunked writer to dst; carries the head */
    sluice__engine *inner;    /* the splice of one chunk's data */
    uint64_t inner_n;
    char line[24];            /* the spliced chunk's size line */
    sluice_bytes crlf;        /* what of the CRLF after it is still to write */
    bool crlf_owed;           /* that CRLF, not written yet: it goes out in
                               * front of the next size line, or on its own
                               * before anything else or when the source is dry */
    signed char sigpipe;      /* 0: not checked yet, 1: ignored, -1: not */
    sluice_bytes held;        /* decoded, not yet taken by w */
    sluice_splice_config cfg;
    int pipe[2];
    size_t pipe_cap;
    bool verbatim;            /* in a verbatim run */
    bool vexit;               /* the run ends once the pipe is empty */
    bool waits_dst;           /* the run's last step waited for dst */
    int src_fd, dst_fd;
    uint64_t vleft;           /* bytes of the current verbatim chunk (CRLF,
                                 size line, data) not yet in the pipe */
    size_t vline;             /* of them, CRLF and size line */
    size_t in_pipe;
    enum phase phase;
    uint64_t moved, spliced;  /* payload; a verbatim chunk's as it enters
                                 the pipe (the pipe goes out whole, or the
                                 body fails and dst is shut) */
    size_t step_moved;
    sluice__idle idle;        /* writing the CRLF */
    sluice_side failed;
    int err;
} chunks;

#define GO_ON ((sluice_pump_status)-1)

/* What one read takes while the chunks are large: a size line and a little
 * data; the rest of the chunk is spliced. */
#define FRAMING_READ 512

static sluice_pump_status fail(chunks *c, sluice_side side, int code)
{
    sluice_bytes_release(&c->held);
    if (side != SLUICE_SIDE_SINK)
        sluice_sink_abort(c->w); /* no terminator: the body looks cut */
    c->phase = C_ERROR;
    c->failed = side;
    c->err = code ? code : SLUICE_EINVAL;
    return SLUICE_PUMP_ERROR;
}

static sluice_pump_status sink_result(chunks *c, sluice_poll r, sluice_interest *want)
{
    if (r == SLUICE_READY)
        return GO_ON;
    if (r == SLUICE_PENDING) {
        sluice_sink_ready(c->w, want);
        return SLUICE_PUMP_PENDING;
    }
    return fail(c, SLUICE_SIDE_SINK, sluice_sink_error(c->w, NULL));
}

/* One chunk's data through the splice engine; then its CRLF. */
static sluice_pump_status step_inner(chunks *c, sluice_interest *want)
{
    uint64_t before = c->inner->vt->moved(c->inner);
    sluice_pump_status st = c->inner->vt->step(c->inner, want);
    c->step_moved += (size_t)(c->inner->vt->moved(c->inner) - before);
    if (st == SLUICE_PUMP_PENDING)
        return st;
    if (st == SLUICE_PUMP_ERROR) {
        sluice_side side;
        int code = c->inner->vt->error(c->inner, &side);
        return fail(c, side, code); /* the engine shut dst down already */
    }
    sluice__chunked_bypassed(c->body, c->inner_n);
    /* chunks this large: read the next size line alone, so the data after
     * it stays in the socket for the next splice */
    sluice__reader_read_max(c->r, FRAMING_READ);
    c->moved += c->inner_n;
    uint64_t spliced = c->inner->vt->spliced(c->inner);
    c->spliced += spliced;
    c->inner->vt->free(c->inner);
    c->inner = NULL;
    c->crlf_owed = true;
    /* both fds took splice and nothing is buffered: try a verbatim run */
    if (spliced && c->pipe[0] >= 0 && c->sigpipe > 0 && !sluice_reader_available(c->r) &&
        !sluice__reader_eof(c->r)) {
        c->src_fd = sluice__io_fd(sluice__reader_io(c->r));
        c->dst_fd = sluice__io_fd(c->dst);
        c->verbatim = c->src_fd >= 0 && c->dst_fd >= 0;
    }
    return GO_ON;
}

/* Between chunks of a verbatim run: peeks at the next CRLF and size line.
 * 1: bytes to splice (c->vleft set); 0: the run ends; -1: nothing to read
 * yet. */
static int verbatim_next(chunks *c)
{
    unsigned char p[2 + SLUICE_CHUNK_SIZE_DIGITS + 2];
    ssize_t n;
    do
        n = recv(c->src_fd, p, sizeof p, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -1;
    uint64_t size;
    size_t line = n > 0 ? sluice__chunked_verbatim(c->body, p, (size_t)n, c->cfg.splice_min,
                                                   &size)
                        : 0; /* EOF or an error: the decoder meets it */
    if (!line) {
        c->vexit = true;
        return 0;
    }
    c->vline = line;
    c->vleft = line + size;
    c->crlf_owed = size > 0; /* a chunk's data: its CRLF is owed; else it went */
    return 1;
}

/* Moves verbatim chunks src -> pipe -> dst until the run ends (GO_ON, the
 * pipe empty), a side has to be waited for, or the step's budget is spent. */
static sluice_pump_status step_verbatim(chunks *c, sluice_interest *want)
{
    if (c->waits_dst && sluice__idle_write_stalled(&c->idle, c->dst))
        return fail(c, SLUICE_SIDE_SINK, SLUICE_ETIMEDOUT);
    c->waits_dst = false;
    for (;;) {
        bool progress = false, in_blocked = true, out_again = false;
        if (!c->vexit && c->in_pipe < c->pipe_cap &&
            (c->vleft || verbatim_next(c) > 0)) {
            size_t n = c->pipe_cap - c->in_pipe;
            if (c->vleft < n)
                n = (size_t)c->vleft;
            ssize_t got = splice(c->src_fd, NULL, c->pipe[1], NULL, n,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (got > 0) {
                size_t line = (size_t)got < c->vline ? (size_t)got : c->vline;
                c->vline -= line;
                c->vleft -= (uint64_t)got;
                c->in_pipe += (size_t)got;
                sluice__reader_bypassed(c->r, (uint64_t)got);
                if ((size_t)got > line)
                    sluice__chunked_bypassed(c->body, (uint64_t)got - line);
                c->moved += (uint64_t)got - line;
                c->spliced += (uint64_t)got - line;
                progress = true;
                in_blocked = false;
            } else if (got == 0) {
                return fail(c, SLUICE_SIDE_SOURCE, SLUICE_ETRUNCATED);
            } else if (errno == EINTR) {
                continue;
            } else if (errno != EAGAIN) {
                return fail(c, SLUICE_SIDE_SOURCE, -errno);
            }
        }
        /* empty the pipe when half full, when the source is dry (or the
         * pipe full by slots: the same EAGAIN) and when the run ends */
        if (c->in_pipe && (in_blocked || c->vexit || c->in_pipe >= c->pipe_cap / 2)) {
            ssize_t put = splice(c->pipe[0], NULL, c->dst_fd, NULL, c->in_pipe,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (put > 0) {
                c->in_pipe -= (size_t)put;
                c->step_moved += (size_t)put;
                progress = true;
            } else if (put < 0 && errno == EINTR) {
                continue;
            } else if (put < 0 && errno == EAGAIN) {
                out_again = true;
            } else {
                return fail(c, SLUICE_SIDE_SINK, put < 0 ? -errno : SLUICE_EPEERCLOSED);
            }
        }
        if (c->vexit && !c->in_pipe && !c->vleft) {
            c->verbatim = c->vexit = false; /* the decoder is at the CRLF */
            return GO_ON;
        }
        if (progress) {
            sluice__idle_progress(&c->idle);
            if (c->step_moved < c->cfg.step_bytes)
                continue;
            return SLUICE_PUMP_PENDING; /* budget spent: "call again soon" */
        }
        c->waits_dst = c->in_pipe && out_again;
        if (!sluice__splice_wait(c->r, c->dst, c->waits_dst, &c->idle, want))
            return fail(c, c->waits_dst ? SLUICE_SIDE_SINK : SLUICE_SIDE_SOURCE,
                        SLUICE_ETIMEDOUT);
        return SLUICE_PUMP_PENDING;
    }
}

static sluice_pump_status write_crlf(chunks *c, sluice_interest *want)
{
    uint64_t framing = 0; /* not payload: not counted */
    int rc = sluice__io_write_bytes(c->dst, &c->crlf, &c->idle, want, &framing);
    if (rc < 0)
        return fail(c, SLUICE_SIDE_SINK, rc);
    return rc > 0 ? SLUICE_PUMP_PENDING : GO_ON;
}

/* The owed CRLF is written on its own (next in one()). */
static void owe_crlf(chunks *c)
{
    c->crlf = sluice_bytes_static("\r\n", 2);
    c->crlf_owed = false;
}

/* The decoder stopped where `left` bytes of chunk data start: flush what
 * the writer holds (the output stays in order), then splice them. */
static sluice_pump_status start_chunk(chunks *c, uint64_t left, sluice_interest *want)
{
    sluice_pump_status st = sink_result(c, sluice_sink_flush(c->w), want);
    if (st != GO_ON)
        return st;
    /* the previous spliced chunk's CRLF and this size line: one write */
    int n = snprintf(c->line, sizeof c->line, "%s%llx\r\n", c->crlf_owed ? "\r\n" : "",
                     (unsigned long long)left);
    c->crlf_owed = false;
    sluice_bytes head = sluice_bytes_static(c->line, (size_t)n);
    sluice_splice_config cfg = c->cfg;
    cfg.step_bytes = SIZE_MAX; /* this engine keeps the budget */
    if (sluice__splice_new(c->pool, c->r, c->dst, left, &head, &cfg, &c->inner) < 0)
        return fail(c, SLUICE_SIDE_SOURCE, SLUICE_ENOMEM);
    if (c->pipe[0] < 0 && !(c->cfg.flags & SLUICE_SPLICE_COPY))
        sluice__pipe_open(c->pipe, c->cfg.pipe_size ? c->cfg.pipe_size
                                                    : SLUICE_SPLICE_DEFAULT_PIPE,
                          &c->pipe_cap);
    if (c->pipe[0] >= 0)
        sluice__splice_lend_pipe(c->inner, c->pipe, c->pipe_cap);
    if (!c->sigpipe) /* a syscall: once per body, not once per chunk */
        c->sigpipe = sluice__sigpipe_ignored() ? 1 : -1;
    if (c->sigpipe > 0)
        sluice__splice_sigpipe_known(c->inner);
    c->inner_n = left;
    return GO_ON;
}

/* Pulls the decoder once and acts on what it says. */
static sluice_pump_status pull(chunks *c, sluice_interest *want)
{
    uint64_t left;
    sluice_poll r = sluice__chunked_next(c->body, &c->held, c->cfg.splice_min, &left);
    if (r == SLUICE_READY) {
        if (c->held.len < c->cfg.splice_min)
            sluice__reader_read_max(c->r, 0); /* small chunks: read in bulk */
        return GO_ON;
    }
    if ((int)r == SLUICE__SPLICE)
        return start_chunk(c, left, want);
    if (r == SLUICE_EOF) {
        c->phase = C_FINISH;
        return GO_ON;
    }
    if (r == SLUICE_ERROR)
        return fail(c, SLUICE_SIDE_SOURCE, sluice_stream_error(c->body, NULL));
    /* PENDING: the source is dry; write out what is owed first */
    if (c->crlf_owed) {
        owe_crlf(c);
        return GO_ON;
    }
    sluice_stream_ready(c->body, want);
    if (sluice_sink_buffered(c->w) == 0)
        return SLUICE_PUMP_PENDING;
    /* flushed (GO_ON): poll again, bytes may have come meanwhile */
    return sink_result(c, sluice_sink_flush(c->w), want);
}

/* The next thing to do; GO_ON to go on. */
static sluice_pump_status one(chunks *c, sluice_interest *want)
{
    size_t max = c->cfg.max_inflight, budget = c->cfg.step_bytes;
    if (c->inner)
        return step_inner(c, want);
    if (c->verbatim)
        return step_verbatim(c, want);
    if (c->crlf.len)
        return write_crlf(c, want);
    if (c->crlf_owed && (c->held.len || c->phase == C_FINISH)) {
        owe_crlf(c); /* it goes before these bytes */
        return GO_ON;
    }
    if (c->held.len) {
        size_t len = c->held.len;
        sluice_pump_status st = sink_result(c, sluice_sink_poll_write(c->w, &c->held), want);
        if (st == GO_ON) {
            c->moved += len;
            c->step_moved += len;
        }
        return st;
    }
    if (c->step_moved >= budget || sluice_sink_buffered(c->w) >= max) {
        sluice_pump_status st = sink_result(c, sluice_sink_flush(c->w), want);
        if (st == GO_ON && c->step_moved >= budget)
            return SLUICE_PUMP_PENDING; /* "call again soon" */
        return st;
    }
    if (c->phase == C_FINISH) {
        sluice_pump_status st = sink_result(c, sluice_sink_finish(c->w), want);
        if (st == GO_ON)
            c->phase = C_DONE;
        return st == GO_ON ? SLUICE_PUMP_DONE : st;
    }
    return pull(c, want);
}

static sluice_pump_status chunks_step(sluice__engine *e, sluice_interest *want)
{
    chunks *c = (chunks *)e;
    sluice_interest dummy;
    if (!want)
        want = &dummy;
    *want = (sluice_interest){-1, 0, -1};
    if (c->phase == C_DONE)
        return SLUICE_PUMP_DONE;
    if (c->phase == C_ERROR)
        return SLUICE_PUMP_ERROR;
    c->step_moved = 0;
    sluice_pump_status st;
    while ((st = one(c, want)) == GO_ON)
        *want = (sluice_interest){-1, 0, -1};
    return st;
}

static int chunks_error(const sluice__engine *e, sluice_side *side)
{
    const chunks *c = (const chunks *)e;
    if (side)
        *side = c->failed;
    return c->err;
}

static uint64_t chunks_moved(const sluice__engine *e)
{
    const chunks *c = (const chunks *)e;
    return c->moved + (c->inner ? c->inner->vt->moved(c->inner) : 0);
}

static uint64_t chunks_spliced(const sluice__engine *e)
{
    const chunks *c = (const chunks *)e;
    return c->spliced + (c->inner ? c->inner->vt->spliced(c->inner) : 0);
}

static void chunks_free(sluice__engine *e)
{
    chunks *c = (chunks *)e;
    sluice__reader_read_max(c->r, 0); /* the reader goes on without us */
    if (c->inner)
        c->inner->vt->free(c->inner); /* shuts dst down: unfinished */
    sluice_bytes_release(&c->held);
    sluice_sink_close(c->w); /* aborts unless finished */
    sluice_stream_close(c->body);
    if (c->pipe[0] >= 0) {
        close(c->pipe[0]);
        close(c->pipe[1]);
    }
    sluice_pool_object_free(c->pool, c, sizeof *c);
}

static const sluice__engine_vt chunks_vt = {chunks_step, chunks_error, chunks_moved,
                                            chunks_spliced, chunks_free};

int sluice__splice_chunked_new(sluice_pool *pool, sluice_reader *src, sluice_io *dst,
                               sluice_bytes *head, const sluice_splice_config *cfg,
                               sluice__engine **out)
{
    *out = NULL;
    sluice_splice_config c0 = {0};
    if (cfg)
        c0 = *cfg;
    if (c0.flags & ~SLUICE_SPLICE_COPY) {
        if (head)
            sluice_bytes_release(head);
        return SLUICE_EINVAL;
    }
    chunks *c = sluice_pool_object_alloc(pool, sizeof *c);
    if (!c) {
        if (head)
            sluice_bytes_release(head);
        return SLUICE_ENOMEM;
    }
    memset(c, 0, sizeof *c);
    c->base.vt = &chunks_vt;
    c->pool = pool;
    c->r = src;
    c->dst = dst;
    c->cfg = c0;
    c->cfg.splice_min = c0.splice_min ? c0.splice_min : SLUICE_SPLICE_DEFAULT_MIN;
    c->cfg.step_bytes = c0.step_bytes ? c0.step_bytes : SLUICE_PUMP_DEFAULT_STEP;
    c->cfg.max_inflight = c0.max_inflight ? c0.max_inflight : SLUICE_PUMP_DEFAULT_INFLIGHT;
    c->pipe[0] = c->pipe[1] = -1;
    sluice__idle_init(&c->idle, c0.idle_timeout_ms);
    sluice_body_config bc = c0.body;
    bc.idle_timeout_ms = c0.idle_timeout_ms;
    sluice_writer_config wc = {.idle_timeout_ms = c0.idle_timeout_ms};
    if (sluice_body_new(pool, src, SLUICE_FRAMING_CHUNKED, &bc, &c->body) < 0) {
        if (head)
            sluice_bytes_release(head);
        sluice_pool_object_free(pool, c, sizeof *c);
        return SLUICE_ENOMEM;
    }
    if (sluice_writer_new(pool, dst, SLUICE_FRAMING_CHUNKED, head, &wc, &c->w) < 0) {
        sluice_stream_close(c->body);
        sluice_pool_object_free(pool, c, sizeof *c);
        return SLUICE_ENOMEM;
    }
    *out = &c->base;
    return 0;
}
