/* test_stream.c — memory stream, tap, vector sink, stream/sink contracts. */
#include "harness.h"

static sluice_stream *mem3(unsigned flags)
{
    sluice_bytes c[4];
    sluice_bytes_copy_from(T_POOL, "one", 3, &c[0]);
    c[1] = sluice_bytes_static("", 0); /* empty chunks are skipped */
    sluice_bytes_copy_from(T_POOL, "two", 3, &c[2]);
    c[3] = sluice_bytes_static("three", 5);
    sluice_stream *s = NULL;
    EXPECT_EQ(sluice_memstream_new(T_POOL, c, 4, flags, &s), 0);
    for (int i = 0; i < 4; i++)
        EXPECT(c[i].owner == NULL && c[i].len == 0); /* references moved */
    return s;
}

TEST(memstream_yields_in_order_then_eof)
{
    sluice_stream *s = mem3(0);
    sluice_bytes b;
    const char *want[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_READY);
        EXPECT_MEM(b.data, b.len, want[i], strlen(want[i]));
        sluice_bytes_release(&b);
    }
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_EOF);
    EXPECT(b.len == 0 && b.owner == NULL);
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_EOF); /* repeats */
    EXPECT_EQ(sluice_stream_error(s, NULL), 0);
    EXPECT_STR(t_stream_why(s), "");
    EXPECT_EQ(sluice__memstream_yielded(s), 3);
    sluice_stream_close(s);
}

TEST(memstream_pending_between_chunks)
{
    sluice_stream *s = mem3(SLUICE_MEMSTREAM_PENDING);
    sluice_bytes b;
    const char *seq = "RPRPRE";
    for (const char *c = seq; *c; c++) {
        sluice_poll r = sluice_stream_poll_next(s, &b);
        EXPECT_EQ(r, *c == 'R' ? SLUICE_READY : *c == 'P' ? SLUICE_PENDING : SLUICE_EOF);
        if (r == SLUICE_PENDING) {
            sluice_interest w;
            sluice_stream_ready(s, &w);
            EXPECT_EQ(w.fd, -1);
            EXPECT_EQ(w.deadline_ms, -1);
        }
        sluice_bytes_release(&b);
    }
    sluice_stream_close(s);
}

TEST(memstream_truncated_is_sticky_error)
{
    sluice_stream *s = mem3(SLUICE_MEMSTREAM_TRUNCATED);
    sluice_bytes b;
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_READY);
        sluice_bytes_release(&b);
    }
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_ERROR);
    EXPECT_ERR(sluice_stream_error(s, NULL), SLUICE_ETRUNCATED);
    EXPECT_EQ(t_stream_where(s), 11);
    EXPECT_STR(t_stream_why(s), sluice_strerror(SLUICE_ETRUNCATED));
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_ERROR);
    EXPECT_ERR(sluice_stream_error(s, NULL), SLUICE_ETRUNCATED);
    sluice_stream_close(s);
}

TEST(close_unread_memstream_releases)
{
    sluice_stream *s = mem3(0);
    sluice_bytes b;
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_READY);
    sluice_stream_close(s); /* two chunks unread */
    sluice_bytes_release(&b);
    sluice_stream_close(NULL);
}

typedef struct seen {
    char buf[64];
    size_t n;
    int calls;
} seen;

static void on_chunk(void *ud, const sluice_bytes *c)
{
    seen *x = ud;
    memcpy(x->buf + x->n, c->data, c->len);
    x->n += c->len;
    x->calls++;
}

TEST(tap_sees_every_byte_once)
{
    seen x = {0};
    sluice_stream *t;
    REQUIRE(sluice_tap_new(T_POOL, mem3(SLUICE_MEMSTREAM_PENDING), on_chunk, &x, &t) == 0);
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice_pump p;
    sluice_pump_init(&p, t, v, NULL);
    EXPECT_EQ(sluice_pump_run(&p, 1000), 0);
    EXPECT_MEM(x.buf, x.n, "onetwothree", 11);
    EXPECT_EQ(x.calls, 3);
    char out[32];
    EXPECT_EQ(sluice__vecsink_copy(v, out, sizeof out), 11);
    EXPECT_MEM(out, 11, "onetwothree", 11);
    /* the sink holds the very views the tap saw: no copy */
    const sluice_bytes *ch;
    size_t n;
    EXPECT_EQ(sluice_vecsink_chunks(v, &ch, &n), 0);
    EXPECT_EQ(n, 3);
    EXPECT_EQ(sluice_sink_status(v), SLUICE_SINK_FINISHED);
    EXPECT_EQ(sluice_sink_written(v), 11);
    sluice_stream_close(t);
    sluice_sink_close(v);
}

TEST(tap_passes_errors_through)
{
    seen x = {0};
    sluice_stream *t;
    REQUIRE(sluice_tap_new(T_POOL, mem3(SLUICE_MEMSTREAM_TRUNCATED), on_chunk, &x, &t) == 0);
    sluice_bytes b;
    int ready = 0;
    sluice_poll r;
    while ((r = sluice_stream_poll_next(t, &b)) == SLUICE_READY) {
        ready++;
        sluice_bytes_release(&b);
    }
    EXPECT_EQ(r, SLUICE_ERROR);
    EXPECT_EQ(ready, 3);
    EXPECT_ERR(sluice_stream_error(t, NULL), SLUICE_ETRUNCATED);
    EXPECT_EQ(t_stream_where(t), 11);
    EXPECT_ERR(sluice__memstream_yielded(t), SLUICE_EINVAL); /* not a memory stream */
    sluice_stream_close(t);
}

TEST(vecsink_contract)
{
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice_bytes b = sluice_bytes_static("abc", 3);
    EXPECT_EQ(sluice__vecsink_set_blocked(v, 1), 0);
    EXPECT_EQ(sluice_sink_poll_write(v, &b), SLUICE_PENDING);
    EXPECT_EQ(b.len, 3); /* still ours */
    EXPECT_EQ(sluice_sink_flush(v), SLUICE_PENDING);
    EXPECT_EQ(sluice__vecsink_set_blocked(v, 0), 0);
    EXPECT_EQ(sluice_sink_poll_write(v, &b), SLUICE_READY);
    EXPECT(b.data == NULL && b.len == 0); /* moved */
    EXPECT_EQ(sluice_sink_finish(v), SLUICE_READY);
    EXPECT_EQ(sluice_sink_status(v), SLUICE_SINK_FINISHED);
    b = sluice_bytes_static("x", 1);
    EXPECT_EQ(sluice_sink_poll_write(v, &b), SLUICE_ERROR);
    EXPECT_ERR(sluice_sink_error(v, NULL), SLUICE_ECLOSED);
    sluice_sink_close(v);

    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice_sink_abort(v);
    sluice_sink_abort(v); /* idempotent */
    EXPECT_EQ(sluice_sink_status(v), SLUICE_SINK_ABORTED);
    EXPECT_EQ(sluice_sink_finish(v), SLUICE_ERROR);
    EXPECT_ERR(sluice_sink_error(v, NULL), SLUICE_EABORTED);
    sluice_sink_close(v);
}
