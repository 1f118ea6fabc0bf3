/* test_pump.c — backpressure bound, error propagation both ways, run(). */
#include "harness.h"

#include <stdlib.h>

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
    sluice_pump_init(&p, src, &k.base, 5000);
    EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_PENDING);
    /* 5 chunks fill the bound; nothing more is pulled while the sink is stuck */
    EXPECT_EQ(k.queued, 5000);
    EXPECT_EQ(sluice_memstream_yielded(src), 5);
    for (int i = 0; i < 10; i++)
        EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_PENDING);
    EXPECT_EQ(sluice_memstream_yielded(src), 5);
    k.open = 1;
    EXPECT_EQ(sluice_pump_run(&p, 1000), 0);
    EXPECT_EQ(k.delivered, 40000);
    EXPECT_EQ(k.finished, 1);
    EXPECT_EQ(sluice_pump_moved(&p), 40000);
    EXPECT_EQ(sluice_sink_get_state(&k.base), SLUICE_SINK_FINISHED);
    sluice_stream_close(src);
    sluice_sink_close(&k.base);
}

TEST(pump_blocked_sink_holds_one_chunk)
{
    sluice_stream *src = chunks_stream(10, 100, 0);
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice_vecsink_set_blocked(v, 1);
    sluice_pump p;
    sluice_pump_init(&p, src, v, 0);
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(sluice_pump_step(&p, NULL), SLUICE_PUMP_PENDING);
    EXPECT_EQ(sluice_memstream_yielded(src), 1);
    sluice_vecsink_set_blocked(v, 0);
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
    sluice_pump_init(&p, src, v, 0);
    EXPECT_ERR(sluice_pump_run(&p, 1000), SLUICE_ETRUNCATED);
    EXPECT_EQ(sluice_pump_failed_side(&p), SLUICE_SIDE_SOURCE);
    EXPECT_EQ(sluice_sink_get_state(v), SLUICE_SINK_ABORTED); /* never finished */
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
    sluice_pump_init(&p, src, v, 0);
    EXPECT_ERR(sluice_pump_run(&p, 1000), SLUICE_ECLOSED);
    EXPECT_EQ(sluice_pump_failed_side(&p), SLUICE_SIDE_SINK);
    EXPECT_EQ(sluice_stream_error(src), 0); /* the source is left alone */
    EXPECT_EQ(sluice_memstream_yielded(src), 1);
    sluice_stream_close(src);
    sluice_sink_close(v);
}

TEST(pump_run_times_out_and_resumes)
{
    sluice_stream *src = chunks_stream(2, 10, 0);
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice_vecsink_set_blocked(v, 1);
    sluice_pump p;
    sluice_pump_init(&p, src, v, 0);
    EXPECT_ERR(sluice_pump_run(&p, 20), SLUICE_ETIMEDOUT);
    sluice_vecsink_set_blocked(v, 0);
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
    sluice_pump_init(&p, src, v, 0);
    EXPECT_EQ(sluice_pump_run(&p, 1000), 0);
    EXPECT_EQ(sluice_sink_get_state(v), SLUICE_SINK_FINISHED);
    sluice_stream_close(src);
    sluice_sink_close(v);
}
