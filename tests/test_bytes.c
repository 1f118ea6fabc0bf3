/* test_bytes.c — blocks, views, pool counters, allocator failures. */
#include "harness.h"

#include <stdlib.h>

static size_t live_blocks(sluice_pool *p)
{
    sluice_pool_counters st;
    sluice_pool_stats(p, &st);
    return st.blocks_live;
}

TEST(version)
{
    EXPECT_STR(sluice_version(), "0.2.0");
    EXPECT_EQ(SLUICE_VERSION_MAJOR, 0);
    EXPECT_EQ(SLUICE_VERSION_MINOR, 2);
    EXPECT_EQ(SLUICE_VERSION_PATCH, 0);
}

TEST(error_strings)
{
    EXPECT_STR(sluice_err_name(SLUICE_ETRUNCATED), "SLUICE_ETRUNCATED");
    EXPECT_STR(sluice_strerror(SLUICE_ENOMEM), "out of memory");
    EXPECT_STR(sluice_err_name(-104), "ECONNRESET");
    EXPECT_STR(sluice_strerror(-104), "Connection reset by peer");
    EXPECT_STR(sluice_strerror(-5555), "unknown error");
    EXPECT_STR(sluice_strerror(0), "success");
}

TEST(block_views_share_memory)
{
    sluice_block *b;
    REQUIRE(sluice_block_get(T_POOL, &b) == 0);
    EXPECT_EQ(sluice_block_capacity(b), 64 * 1024);
    memcpy(sluice_block_data(b), "hello world", 11);
    sluice_bytes v, w;
    EXPECT_EQ(sluice_block_view(b, 0, 11, &v), 0);
    EXPECT_EQ(sluice_block_view(b, 6, 5, &w), 0);
    sluice_bytes bad;
    EXPECT_ERR(sluice_block_view(b, 65536, 1, &bad), SLUICE_ERANGE);
    EXPECT(bad.owner == NULL && bad.len == 0);
    sluice_block_release(b);
    EXPECT_EQ(live_blocks(T_POOL), 1); /* views keep it */
    EXPECT_MEM(w.data, w.len, "world", 5);
    EXPECT(w.data == v.data + 6);
    sluice_bytes_release(&v);
    EXPECT(v.owner == NULL && v.data == NULL && v.len == 0);
    sluice_bytes_release(&v); /* zeroed: no-op */
    sluice_bytes_release(&w);
    EXPECT_EQ(live_blocks(T_POOL), 0);
}

TEST(slice_edges)
{
    sluice_bytes b, s;
    REQUIRE(sluice_bytes_copy_from(T_POOL, "0123456789", 10, &b) == 0);
    EXPECT_EQ(sluice_bytes_slice(&b, 0, 0, &s), 0);
    EXPECT_EQ(s.len, 0);
    sluice_bytes_release(&s);
    EXPECT_EQ(sluice_bytes_slice(&b, 0, 10, &s), 0);
    EXPECT_MEM(s.data, s.len, "0123456789", 10);
    sluice_bytes_release(&s);
    EXPECT_EQ(sluice_bytes_slice(&b, 10, 0, &s), 0);
    EXPECT_EQ(s.len, 0);
    sluice_bytes_release(&s);
    EXPECT_ERR(sluice_bytes_slice(&b, 11, 0, &s), SLUICE_ERANGE);
    EXPECT_ERR(sluice_bytes_slice(&b, 5, 6, &s), SLUICE_ERANGE);
    EXPECT_ERR(sluice_bytes_slice(&b, (size_t)-1, 2, &s), SLUICE_ERANGE); /* no wrap */
    EXPECT(s.owner == NULL);
    EXPECT_EQ(sluice_bytes_slice(&b, 3, 4, &s), 0);
    EXPECT_MEM(s.data, s.len, "3456", 4);
    sluice_bytes_release(&b);
    EXPECT_EQ(live_blocks(T_POOL), 1);
    sluice_bytes_release(&s);
    EXPECT_EQ(live_blocks(T_POOL), 0);
}

TEST(split_with_slice_advance_truncate)
{
    /* splitting a view is a slice plus advance or truncate: no copy */
    sluice_bytes b, h, t;
    REQUIRE(sluice_bytes_copy_from(T_POOL, "headtail", 8, &b) == 0);
    EXPECT_EQ(sluice_bytes_slice(&b, 0, 4, &h), 0);
    sluice_bytes_advance(&b, 4);
    EXPECT_MEM(h.data, h.len, "head", 4);
    EXPECT(h.owner == b.owner);
    sluice_bytes_release(&h);
    EXPECT_MEM(b.data, b.len, "tail", 4);
    EXPECT_ERR(sluice_bytes_slice(&b, 0, 5, &t), SLUICE_ERANGE);
    EXPECT_MEM(b.data, b.len, "tail", 4); /* unchanged on error */
    EXPECT_EQ(sluice_bytes_slice(&b, 1, 3, &t), 0);
    sluice_bytes_truncate(&b, 1);
    EXPECT_MEM(b.data, b.len, "t", 1);
    EXPECT_MEM(t.data, t.len, "ail", 3);
    sluice_bytes z;
    EXPECT_EQ(sluice_bytes_slice(&b, 1, 0, &z), 0); /* at the end: empty */
    EXPECT_EQ(z.len, 0);
    sluice_bytes_release(&z);
    sluice_bytes_advance(&t, 5); /* clamped */
    EXPECT_EQ(t.len, 0);
    sluice_bytes_release(&t);
    sluice_bytes_release(&b);
    EXPECT_EQ(live_blocks(T_POOL), 0);
}

TEST(advance_truncate_static)
{
    sluice_bytes s = sluice_bytes_static("abcdef", 6);
    EXPECT(s.owner == NULL);
    sluice_bytes_advance(&s, 2);
    EXPECT_MEM(s.data, s.len, "cdef", 4);
    sluice_bytes_truncate(&s, 2);
    EXPECT_MEM(s.data, s.len, "cd", 2);
    sluice_bytes_advance(&s, 99);
    EXPECT_EQ(s.len, 0);
    sluice_bytes r = sluice_bytes_ref(sluice_bytes_static("x", 1));
    sluice_bytes_release(&r); /* static: nothing counted */
    EXPECT_EQ(live_blocks(T_POOL), 0);
}

TEST(copy_from_larger_than_block)
{
    sluice_pool_config cfg = {.block_size = 128};
    sluice_pool *p;
    REQUIRE(sluice_pool_new(&cfg, &p) == 0);
    char big[1000];
    for (int i = 0; i < 1000; i++)
        big[i] = (char)i;
    sluice_bytes b;
    REQUIRE(sluice_bytes_copy_from(p, big, sizeof big, &b) == 0);
    EXPECT_MEM(b.data, b.len, big, sizeof big);
    sluice_pool_counters st;
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.blocks_live, 1);
    EXPECT_EQ(st.bytes_live, 1000);
    sluice_bytes_release(&b);
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.blocks_live, 0);
    EXPECT_EQ(st.bytes_live, 0);
    sluice_pool_close(p);
    EXPECT_ERR(sluice_pool_new(&(sluice_pool_config){.block_size = 8}, &p), SLUICE_EINVAL);
    EXPECT(p == NULL);
}

static int freed_calls;
static void count_free(void *ud, void *data, size_t len)
{
    freed_calls++;
    EXPECT(ud == (void *)&freed_calls);
    EXPECT_EQ(len, 5);
    free(data);
}

TEST(wrap_foreign_memory)
{
    char *m = malloc(5);
    memcpy(m, "abcde", 5);
    sluice_bytes b, s;
    freed_calls = 0;
    REQUIRE(sluice_bytes_wrap(T_POOL, m, 5, count_free, &freed_calls, &b) == 0);
    EXPECT_EQ(sluice_bytes_slice(&b, 1, 3, &s), 0);
    sluice_bytes_release(&b);
    EXPECT_EQ(freed_calls, 0);
    EXPECT_MEM(s.data, s.len, "bcd", 3);
    sluice_bytes_release(&s);
    EXPECT_EQ(freed_calls, 1);
}

TEST(pool_free_list_and_cap)
{
    sluice_pool_config cfg = {.block_size = 256, .max_blocks = 2, .max_spare = 1};
    sluice_pool *p;
    REQUIRE(sluice_pool_new(&cfg, &p) == 0);
    sluice_block *a, *b, *c;
    EXPECT_EQ(sluice_block_get(p, &a), 0);
    EXPECT_EQ(sluice_block_get(p, &b), 0);
    EXPECT_ERR(sluice_block_get(p, &c), SLUICE_EPOOLFULL);
    EXPECT(c == NULL);
    sluice_pool_counters st;
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.blocks_live, 2);
    EXPECT_EQ(st.bytes_live, 512);
    sluice_block_release(a);
    sluice_block_release(b);
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.blocks_live, 0);
#if !defined(__SANITIZE_ADDRESS__)
    EXPECT_EQ(st.blocks_free, 1); /* spare capped at 1 */
    EXPECT_EQ(st.blocks_allocated, 2);
    EXPECT_EQ(sluice_block_get(p, &c), 0); /* reused, not allocated */
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.blocks_allocated, 2);
    sluice_block_release(c);
#endif
    sluice_pool_close(p);
}

TEST(pool_outlives_handle_until_last_block)
{
    t_failalloc fa = {0};
    sluice_allocator al = t_failalloc_hook(&fa);
    sluice_pool_config cfg = {.allocator = &al};
    sluice_pool *p;
    REQUIRE(sluice_pool_new(&cfg, &p) == 0);
    sluice_bytes b;
    REQUIRE(sluice_bytes_copy_from(p, "x", 1, &b) == 0);
    sluice_pool_close(p); /* host lets go first */
    EXPECT(fa.live > 0);
    EXPECT_EQ(b.data[0], 'x');
    sluice_bytes_release(&b);
    EXPECT_EQ(fa.live, 0); /* pool went with its last block */
}

/* Every allocation along the path fails once; each failure must come back as
 * SLUICE_ENOMEM with nothing leaked. */
TEST(alloc_failure_every_step)
{
    int steps = 0;
    for (long k = 1;; k++) {
        t_failalloc fa = {.fail_at = k};
        sluice_allocator al = t_failalloc_hook(&fa);
        sluice_pool_config cfg = {.allocator = &al, .block_size = 64};
        sluice_pool *p = NULL;
        int rc = sluice_pool_new(&cfg, &p);
        if (rc == 0) {
            sluice_bytes a = {0}, b = {0}, c = {0};
            sluice_stream *s = NULL;
            sluice_sink *v = NULL;
            char big[100] = {0};
            int r1 = sluice_bytes_copy_from(p, "abc", 3, &a);
            int r2 = sluice_bytes_copy_from(p, big, sizeof big, &b);
            int r3 = sluice_bytes_wrap(p, big, 4, NULL, NULL, &c);
            EXPECT(r1 == 0 || r1 == SLUICE_ENOMEM);
            EXPECT(r2 == 0 || r2 == SLUICE_ENOMEM);
            EXPECT(r3 == 0 || r3 == SLUICE_ENOMEM);
            sluice_bytes chunks[3] = {a, b, c};
            int r4 = sluice_memstream_new(p, chunks, 3, 0, &s);
            EXPECT(r4 == 0 || r4 == SLUICE_ENOMEM);
            EXPECT(r4 == 0 || s == NULL);
            int r5 = sluice_vecsink_new(p, &v);
            EXPECT(r5 == 0 || r5 == SLUICE_ENOMEM);
            if (s && v) {
                sluice_pump pump;
                sluice_pump_init(&pump, s, v, NULL);
                int rr = sluice_pump_run(&pump, 1000);
                EXPECT(rr == 0 || rr == SLUICE_ENOMEM);
                if (rr == SLUICE_ENOMEM)
                    EXPECT_EQ(t_pump_side(&pump), SLUICE_SIDE_SINK);
            }
            sluice_stream_close(s);
            sluice_sink_close(v);
            sluice_pool_close(p);
        } else {
            EXPECT_ERR(rc, SLUICE_ENOMEM);
            EXPECT(p == NULL);
        }
        EXPECT_EQ(fa.live, 0);
        steps++;
        if (!fa.failed)
            break; /* the whole path ran without reaching allocation k */
    }
    EXPECT(steps >= 6);
}

TEST(small_copies_are_not_refused_at_the_cap)
{
    /* every pool block is out (bodies hold the whole budget): a 200-byte
     * reply still gets memory, a block-sized copy does not */
    sluice_pool_config cfg = {.block_size = 8192, .max_blocks = 1};
    sluice_pool *p;
    REQUIRE(sluice_pool_new(&cfg, &p) == 0);
    sluice_block *a;
    EXPECT_EQ(sluice_block_get(p, &a), 0);
    static const char reply[] = "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n";
    sluice_bytes r, big;
    EXPECT_EQ(sluice_bytes_copy_from(p, reply, sizeof reply - 1, &r), 0);
    EXPECT_MEM(r.data, r.len, reply, sizeof reply - 1);
    static char blockful[8192];
    EXPECT_ERR(sluice_bytes_copy_from(p, blockful, sizeof blockful, &big), SLUICE_EPOOLFULL);
    EXPECT(big.owner == NULL);
    sluice_pool_counters st;
    sluice_pool_stats(p, &st);
    EXPECT_EQ(st.blocks_live, 2);
    EXPECT_EQ(st.bytes_live, 8192 + sizeof reply - 1); /* exact size, not a block */
    sluice_bytes_release(&r);
    sluice_block_release(a);
    sluice_pool_close(p);
}
