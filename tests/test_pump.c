/* test_pump.c — backpressure bound, error propagation both ways, run(). */
#include "harness.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* A stream of n chunks of `size` bytes, chunk i filled with byte i. */
static sluice_stream *chunks_stream(int n, size_t size, unsigned flags)
{
    sluice_bytes *c = calloc((size_t)n, sizeof *c);
    for (int i = 0; i < n; i++) {
        sluice_block *b;
        EXPECT_EQ(sluice_block_get(T_POOL, &b), 0);
        memset(sluice_block_data(b), i, size);
        EXPECT_EQ(sluice_block_view(b, 0, size, &c[i]), 0);
        sluice_block_release(b);
    }
    sluice_stream *s;
    EXPECT_EQ(sluice_memstream_new(T_POOL, c, (size_t)n, flags, &s), 0);
    free(c);
    return s;
}

/* A sink that queues what it accepts (up to `room` bytes) and writes it out
 * only while `open`: a socket whose peer reads when told. */
typedef struct slowsink {
    sluice_sink base;
    sluice_bytes q[64];
    int nq;
    size_t queued, room, delivered;
    int open, finished;
} slowsink;

static sluice_poll slow_write(sluice_sink *k, sluice_bytes *c)
{
    slowsink *s = (slowsink *)k;
    if (s->queued + c->len > s->room || s->nq == 64)
        return SLUICE_PENDING;
    s->q[s->nq++] = *c;
    s->queued += c->len;
    *c = (sluice_bytes){0};
    return SLUICE_READY;
}

static sluice_poll slow_flush(sluice_sink *k)
{
    slowsink *s = (slowsink *)k;
    if (!s->open)
        return s->queued ? SLUICE_PENDING : SLUICE_READY;
    for (int i = 0; i < s->nq; i++) {
        s->delivered += s->q[i].len;
        sluice_bytes_release(&s->q[i]);
    }
    s->nq = 0;
    s->queued = 0;
    return SLUICE_READY;
}

static sluice_poll slow_finish(sluice_sink *k)
{
    sluice_poll r = slow_flush(k);
    if (r == SLUICE_READY)
        ((slowsink *)k)->finished = 1;
    return r;
}

static void slow_abort(sluice_sink *k)
{
    (void)k;
}

static size_t slow_buffered(const sluice_sink *k)
{
    return ((const slowsink *)k)->queued;
}

static void slow_close(sluice_sink *k)
{
    slowsink *s = (slowsink *)k;
    for (int i = 0; i < s->nq; i++)
        sluice_bytes_release(&s->q[i]);
}

static const sluice_sink_vtable slow_vt = {"slow", slow_write, slow_flush, slow_finish,
                                           slow_abort, NULL, slow_buffered, slow_close};

TEST(pump_stops_pulling_at_bound)
{
    sluice_stream *src = chunks_stream(40, 1000, 0);
    slowsink k = {.base = {.vt = &slow_vt, .pool = T_POOL}, .room = 1u << 20};
    sluice_pump p;
    sluice_pump_init(&p, src, &k.base, &(sluice_pump_config){.max_inflight = 5000});
    EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_PENDING);
    /* 5 chunks fill the bound; nothing more is pulled while the sink is stuck */
    EXPECT_EQ(k.queued, 5000);
    EXPECT_EQ(sluice__memstream_yielded(src), 5);
    for (int i = 0; i < 10; i++)
        EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_PENDING);
    EXPECT_EQ(sluice__memstream_yielded(src), 5);
    k.open = 1;
    EXPECT_EQ(sluice_pump_run(&p, 1000), 0);
    EXPECT_EQ(k.delivered, 40000);
    EXPECT_EQ(k.finished, 1);
    EXPECT_EQ(sluice_pump_moved(&p), 40000);
    EXPECT_EQ(sluice_sink_status(&k.base), SLUICE_SINK_FINISHED);
    sluice_stream_close(src);
    sluice_sink_close(&k.base);
}

TEST(pump_blocked_sink_holds_one_chunk)
{
    sluice_stream *src = chunks_stream(10, 100, 0);
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice__vecsink_set_blocked(v, 1);
    sluice_pump p;
    sluice_pump_init(&p, src, v, NULL);
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_PENDING);
    EXPECT_EQ(sluice__memstream_yielded(src), 1);
    sluice__vecsink_set_blocked(v, 0);
    EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_DONE);
    EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_DONE);
    EXPECT_EQ(sluice_sink_written(v), 1000);
    sluice_stream_close(src);
    sluice_sink_close(v);
}

TEST(pump_source_error_aborts_sink)
{
    sluice_stream *src = chunks_stream(3, 10, SLUICE_MEMSTREAM_TRUNCATED);
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice_pump p;
    sluice_pump_init(&p, src, v, NULL);
    EXPECT_ERR(sluice_pump_run(&p, 1000), SLUICE_ETRUNCATED);
    EXPECT_EQ(t_pump_side(&p), SLUICE_SIDE_SOURCE);
    EXPECT_EQ(sluice_sink_status(v), SLUICE_SINK_ABORTED); /* never finished */
    EXPECT_EQ(sluice_sink_written(v), 30);
    EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_ERROR); /* sticky */
    sluice_stream_close(src);
    sluice_sink_close(v);
}

TEST(pump_sink_error_reported_as_sink)
{
    sluice_stream *src = chunks_stream(3, 10, 0);
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice_sink_abort(v); /* writes now fail with ECLOSED */
    sluice_pump p;
    sluice_pump_init(&p, src, v, NULL);
    EXPECT_ERR(sluice_pump_run(&p, 1000), SLUICE_ECLOSED);
    EXPECT_EQ(t_pump_side(&p), SLUICE_SIDE_SINK);
    EXPECT_EQ(sluice_stream_error(src, NULL), 0); /* the source is left alone */
    EXPECT_EQ(sluice__memstream_yielded(src), 1);
    sluice_stream_close(src);
    sluice_sink_close(v);
}

TEST(pump_run_times_out_and_resumes)
{
    sluice_stream *src = chunks_stream(2, 10, 0);
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice__vecsink_set_blocked(v, 1);
    sluice_pump p;
    sluice_pump_init(&p, src, v, NULL);
    EXPECT_ERR(sluice_pump_run(&p, 20), SLUICE_ETIMEDOUT);
    sluice__vecsink_set_blocked(v, 0);
    EXPECT_EQ(sluice_pump_run(&p, 1000), 0);
    EXPECT_EQ(sluice_sink_written(v), 20);
    sluice_stream_close(src);
    sluice_sink_close(v);
}

TEST(pump_empty_stream_finishes)
{
    sluice_stream *src;
    REQUIRE(sluice_memstream_new(T_POOL, NULL, 0, 0, &src) == 0);
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice_pump p;
    sluice_pump_init(&p, src, v, NULL);
    EXPECT_EQ(sluice_pump_run(&p, 1000), 0);
    EXPECT_EQ(sluice_sink_status(v), SLUICE_SINK_FINISHED);
    sluice_stream_close(src);
    sluice_sink_close(v);
}

/*
 * Many connections share one small budget (4 blocks of 1 KiB): every body
 * still arrives whole, the pool never holds more than the cap plus its
 * reserve (2 by default), whatever the number of readers, and no step ever asks the host to spin (PENDING with
 * neither an fd nor a deadline). The host is a plain poll() loop.
 */
TEST(pump_shared_budget_many_connections)
{
    enum { N = 6, LEN = 40000 };
    sluice_pool_config pc = {.block_size = 1024, .max_blocks = 4};
    sluice_pool *p;
    REQUIRE(sluice_pool_new(&pc, &p) == 0);
    struct {
        int src[2], dst[2];
        sluice_io *sio, *dio;
        sluice_reader *r;
        sluice_stream *body;
        sluice_sink *w;
        sluice_pump pump;
        size_t sent, got;
        int done;
        sluice_interest want;
    } c[N];
    static unsigned char in[LEN], out[N][LEN + 4096];
    unsigned long long seed = 42;
    for (size_t i = 0; i < LEN; i++)
        in[i] = (unsigned char)(t_rand(&seed) >> 56);
    for (int i = 0; i < N; i++) {
        memset(&c[i], 0, sizeof c[i]);
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c[i].src) == 0);
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c[i].dst) == 0);
        REQUIRE(sluice_io_fd_new(p, c[i].src[0], 0, &c[i].sio) == 0);
        REQUIRE(sluice_io_fd_new(p, c[i].dst[0], 0, &c[i].dio) == 0);
        REQUIRE(sluice_reader_new(p, c[i].sio, NULL, &c[i].r) == 0);
        REQUIRE(sluice_body_new(p, c[i].r, SLUICE_FRAMING_LENGTH(LEN), NULL, &c[i].body) == 0);
        REQUIRE(sluice_writer_new(p, c[i].dio, SLUICE_FRAMING_CHUNKED, NULL, NULL, &c[i].w) == 0);
        sluice_pump_init(&c[i].pump, c[i].body, c[i].w, NULL);
    }
    int left = N, spins = 0;
    size_t most = 0;
    for (int turn = 0; left && turn < 200000; turn++) {
        struct pollfd pfd[N];
        int64_t until = -1;
        for (int i = 0; i < N; i++) {
            pfd[i] = (struct pollfd){-1, 0, 0};
            if (c[i].done)
                continue;
            if (c[i].sent < LEN) {
                size_t k = 3000 + 700 * (size_t)i;
                if (k > LEN - c[i].sent)
                    k = LEN - c[i].sent;
                ssize_t n = send(c[i].src[1], in + c[i].sent, k, 0);
                if (n > 0)
                    c[i].sent += (size_t)n;
            }
            for (;;) { /* the receivers read slowly, some slower */
                ssize_t n = recv(c[i].dst[1], out[i] + c[i].got, 500 + 400 * (size_t)i, 0);
                if (n <= 0)
                    break;
                c[i].got += (size_t)n;
                if (i & 1)
                    break;
            }
            sluice_pump_status st = sluice_pump_step(&c[i].pump, &c[i].want);
            sluice_pool_counters ps;
            sluice_pool_stats(p, &ps);
            if (ps.blocks_live > most)
                most = ps.blocks_live;
            if (st == SLUICE_PUMP_DONE) {
                c[i].done = 1;
                left--;
                continue;
            }
            REQUIRE(st == SLUICE_PUMP_PENDING);
            sluice_interest *w = &c[i].want;
            if (w->fd < 0 && w->deadline_ms < 0)
                spins++;
            if (w->deadline_ms >= 0 && (until < 0 || w->deadline_ms < until))
                until = w->deadline_ms;
        }
        int ms = until < 0 ? 1 : (int)(until - sluice_now_ms());
        poll(pfd, 0, ms < 0 ? 0 : ms > 1 ? 1 : ms);
    }
    EXPECT_EQ(left, 0);
    EXPECT_EQ(spins, 0);
    EXPECT(most <= 4 + 2); /* the cap and the default reserve, whatever N */
    sluice_pool_counters ps;
    sluice_pool_stats(p, &ps);
    EXPECT(ps.pool_full > 0); /* the budget was really the limit */
    for (int i = 0; i < N; i++) {
        while (c[i].got < sizeof out[i]) {
            ssize_t n = recv(c[i].dst[1], out[i] + c[i].got, sizeof out[i] - c[i].got, 0);
            if (n <= 0)
                break;
            c[i].got += (size_t)n;
        }
        /* chunked framing around exactly the body's bytes */
        size_t pos = 0, body = 0;
        int ok = 1;
        while (ok && pos < c[i].got) {
            char *end;
            unsigned long sz = strtoul((char *)out[i] + pos, &end, 16);
            pos = (size_t)((unsigned char *)end - out[i]) + 2;
            if (sz == 0)
                break;
            ok = pos + sz <= c[i].got && memcmp(out[i] + pos, in + body, sz) == 0;
            body += sz;
            pos += sz + 2;
        }
        EXPECT(ok);
        EXPECT_EQ(body, LEN);
        sluice_sink_close(c[i].w);
        sluice_stream_close(c[i].body);
        sluice_reader_close(c[i].r);
        sluice_io_close(c[i].sio);
        sluice_io_close(c[i].dio);
        for (int k = 0; k < 2; k++) {
            close(c[i].src[k]);
            close(c[i].dst[k]);
        }
    }
    sluice_pool_close(p);
}

/* A memory stream that, when dry, names an fd to wait on, as a socket
 * body stream does. */
typedef struct fdwait {
    sluice_stream base;
    sluice_stream *inner;
    int fd;
} fdwait;

static sluice_poll fdwait_poll(sluice_stream *s, sluice_bytes *out)
{
    return sluice_stream_poll_next(((fdwait *)s)->inner, out);
}

static void fdwait_ready(sluice_stream *s, sluice_interest *want)
{
    *want = (sluice_interest){((fdwait *)s)->fd, SLUICE_WANT_READ, -1};
}

static void fdwait_close(sluice_stream *s)
{
    (void)s; /* embedded in the test: nothing to free */
}

static const sluice_stream_vtable fdwait_vt = {"fdwait", fdwait_poll, fdwait_ready,
                                               fdwait_close};

/* A close-framed writer into one end of a socketpair (the test reads the
 * other) fed by an fdwait over `chunks` chunks of `size` bytes that are
 * dry once before each. */
typedef struct rig {
    int sv[2];
    sluice_io *io;
    sluice_sink *w;
    sluice_stream *s;
    fdwait fw;
} rig;

static void rig_open(rig *g, size_t chunks, size_t size)
{
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, g->sv) == 0);
    REQUIRE(sluice_io_fd_new(T_POOL, g->sv[0], 0, &g->io) == 0);
    REQUIRE(sluice_writer_new(T_POOL, g->io, SLUICE_FRAMING_CLOSE, NULL, NULL, &g->w) == 0);
    g->s = chunks_stream(chunks, size, SLUICE_MEMSTREAM_PENDING);
    g->fw = (fdwait){{.vt = &fdwait_vt, .pool = T_POOL}, g->s, g->sv[1]};
}

static void rig_close(rig *g)
{
    sluice_sink_close(g->w);
    sluice_stream_close(g->s);
    sluice_io_close(g->io);
    close(g->sv[0]);
    close(g->sv[1]);
}

/* After flushing because the source was dry, the pump polls the source once
 * more before it waits: what arrived during the write is taken without a
 * wake-up (here a source that is dry once before every chunk). */
TEST(pump_polls_again_after_a_flush)
{
    rig g;
    rig_open(&g, 3, 100);
    sluice_pump p;
    sluice_pump_init(&p, &g.fw.base, g.w, NULL);
    sluice_interest want;
    EXPECT_EQ(sluice_pump_step(&p, &want), SLUICE_PUMP_DONE); /* one step, no wait */
    EXPECT_EQ(sluice__memstream_yielded(g.s), 3);
    char buf[400];
    EXPECT_EQ(recv(g.sv[1], buf, sizeof buf, 0), 300);
    rig_close(&g);
}

/* A step that flushed because the source was dry, took more and then spent
 * its budget says "call again soon": not the source's interest from before
 * the flush (stale: the source is not dry any more, and a host waiting on
 * its fd may wait for bytes that are already buffered). */
TEST(pump_budget_yield_after_a_dry_flush_names_no_fd)
{
    rig g;
    rig_open(&g, 40, 16384);
    sluice_pump p;
    sluice_pump_init(&p, &g.fw.base, g.w, &(sluice_pump_config){.step_bytes = 65536});
    sluice_interest want;
    sluice_pump_status st;
    int yields = 0, steps = 0;
    static char buf[1 << 20];
    size_t got = 0;
    while ((st = sluice_pump_step(&p, &want)) == SLUICE_PUMP_PENDING) {
        /* the source is dry before every chunk: a step that starts with it
         * waits on its fd (nothing to flush); one that moved its budget
         * names none */
        yields += want.fd == -1;
        EXPECT_EQ(want.deadline_ms, -1);
        ssize_t n;
        while ((n = recv(g.sv[1], buf + got, sizeof buf - got, MSG_DONTWAIT)) > 0)
            got += (size_t)n;
        REQUIRE(++steps < 1000);
    }
    EXPECT_EQ(st, SLUICE_PUMP_DONE);
    EXPECT(yields >= 40 * 16384 / (65536 + 16384)); /* each budget spent */
    ssize_t n;
    while ((n = recv(g.sv[1], buf + got, sizeof buf - got, MSG_DONTWAIT)) > 0)
        got += (size_t)n;
    EXPECT_EQ(got, 40 * 16384);
    rig_close(&g);
}

TEST(pump_step_moves_at_most_its_budget)
{
    /* a source that never runs dry: one step may not take it all */
    sluice_stream *s = chunks_stream(40, 16384, 0);
    sluice_sink *k;
    REQUIRE(sluice_vecsink_new(T_POOL, &k) == 0);
    sluice_pump p;
    sluice_pump_init(&p, s, k, &(sluice_pump_config){.step_bytes = 65536});
    sluice_interest w;
    int steps = 0;
    uint64_t before = 0;
    sluice_pump_status st;
    while ((st = sluice_pump_step(&p, &w)) == SLUICE_PUMP_PENDING) {
        /* "call again soon": no fd to wait on, no deadline */
        EXPECT_EQ(w.fd, -1);
        EXPECT_EQ(w.deadline_ms, -1);
        EXPECT(sluice_pump_moved(&p) - before <= 65536 + 16384);
        before = sluice_pump_moved(&p);
        REQUIRE(++steps < 100);
    }
    EXPECT_EQ(st, SLUICE_PUMP_DONE);
    EXPECT_EQ(sluice_pump_moved(&p), 40 * 16384);
    EXPECT(steps >= 40 * 16384 / (65536 + 16384)); /* it did yield */
    sluice_pump_close(&p);
    sluice_stream_close(s);
    sluice_sink_close(k);
}

TEST(pump_source_yield_ends_the_step)
{
    /* a source that yields before every chunk but the first: each step
     * ends at the yield, also when the sink had bytes to flush */
    sluice_stream *s = chunks_stream(8, 1000, SLUICE_MEMSTREAM_PENDING);
    sluice_sink *k;
    REQUIRE(sluice_vecsink_new(T_POOL, &k) == 0);
    sluice_pump p;
    sluice_pump_init(&p, s, k, NULL);
    sluice_interest w;
    int steps = 0;
    sluice_pump_status st;
    while ((st = sluice_pump_step(&p, &w)) == SLUICE_PUMP_PENDING) {
        EXPECT_EQ(w.fd, -1);
        EXPECT_EQ(w.deadline_ms, -1);
        EXPECT_EQ(sluice_pump_moved(&p), (uint64_t)(steps + 1) * 1000);
        REQUIRE(++steps < 100);
    }
    EXPECT_EQ(st, SLUICE_PUMP_DONE);
    EXPECT_EQ(steps, 7);
    sluice_pump_close(&p);
    sluice_stream_close(s);
    sluice_sink_close(k);
}

TEST(pump_two_transfers_share_a_loop_fairly)
{
    /* one fast transfer (a socket full of bytes) and one trickling one in the
     * same loop: every trickle byte is taken within two steps of the fast
     * one, which moves at most its budget (plus a read) per step */
    int fast[2], slow[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fast) == 0);
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, slow) == 0);
    sluice_io *fio, *sio;
    sluice_reader *fr, *sr;
    REQUIRE(sluice_io_fd_new(T_POOL, fast[0], 0, &fio) == 0);
    REQUIRE(sluice_io_fd_new(T_POOL, slow[0], 0, &sio) == 0);
    REQUIRE(sluice_reader_new(T_POOL, fio, NULL, &fr) == 0);
    REQUIRE(sluice_reader_new(T_POOL, sio, NULL, &sr) == 0);
    const size_t total = 8u << 20;
    sluice_stream *fb, *sb;
    REQUIRE(sluice_body_new(T_POOL, fr, SLUICE_FRAMING_LENGTH(total), NULL, &fb) == 0);
    REQUIRE(sluice_body_new(T_POOL, sr, SLUICE_FRAMING_LENGTH(10), NULL, &sb) == 0);
    sluice_sink *fk, *sk;
    REQUIRE(sluice_vecsink_new(T_POOL, &fk) == 0);
    REQUIRE(sluice_vecsink_new(T_POOL, &sk) == 0);
    sluice_pump fp, sp;
    sluice_pump_init(&fp, fb, fk, &(sluice_pump_config){.step_bytes = 256 * 1024});
    sluice_pump_init(&sp, sb, sk, NULL);
    static unsigned char buf[1 << 16];
    size_t sent = 0;
    int fast_steps_since_trickle = 0, worst = 0, trickled = 0;
    sluice_interest w;
    sluice_pump_status fst = SLUICE_PUMP_PENDING, sst = SLUICE_PUMP_PENDING;
    while (fst == SLUICE_PUMP_PENDING) {
        while (sent < total) { /* keep the fast socket full */
            ssize_t n = send(fast[1], buf, sizeof buf < total - sent ? sizeof buf : total - sent,
                             MSG_DONTWAIT);
            if (n <= 0)
                break;
            sent += (size_t)n;
        }
        if (trickled < 10 && fast_steps_since_trickle == 0) { /* one byte, then wait */
            REQUIRE(send(slow[1], "x", 1, 0) == 1);
            trickled++;
        }
        uint64_t before = sluice_pump_moved(&fp);
        fst = sluice_pump_step(&fp, &w);
        EXPECT(sluice_pump_moved(&fp) - before <= 256 * 1024 + 256 * 1024);
        uint64_t had = sluice_pump_moved(&sp);
        if (sst == SLUICE_PUMP_PENDING)
            sst = sluice_pump_step(&sp, NULL);
        if (sluice_pump_moved(&sp) > had || sst == SLUICE_PUMP_DONE) {
            if (fast_steps_since_trickle > worst)
                worst = fast_steps_since_trickle;
            fast_steps_since_trickle = 0;
        } else {
            fast_steps_since_trickle++;
        }
    }
    EXPECT_EQ(fst, SLUICE_PUMP_DONE);
    EXPECT_EQ(sst, SLUICE_PUMP_DONE);
    EXPECT_EQ(sluice_pump_moved(&fp), total);
    EXPECT_EQ(sluice_pump_moved(&sp), 10);
    EXPECT(worst <= 1);
    sluice_pump_close(&fp);
    sluice_pump_close(&sp);
    sluice_stream_close(fb);
    sluice_stream_close(sb);
    sluice_sink_close(fk);
    sluice_sink_close(sk);
    sluice_reader_close(fr);
    sluice_reader_close(sr);
    sluice_io_close(fio);
    sluice_io_close(sio);
    close(fast[0]), close(fast[1]), close(slow[0]), close(slow[1]);
}
