/*
 * test_torture.c — allocation failures on the whole path, not one module:
 * a request read off an io by the reader, its head parsed, its chunked body
 * decoded, split as multipart, each part shown to a SHA-256 tap and pumped
 * into a chunked writer (with a head of its own) over another io.
 *
 * The allocator fails its k-th call, for k = 1, 2, ... until one run gets
 * through without a failure. Every run must end cleanly: a call returns
 * SLUICE_ENOMEM, or a stream, the splitter or the pump reports it; after the
 * run the pool's counters and the allocator's live count are back to zero.
 * A run that completes must give byte-exact digests, also when it got past
 * a failed allocation (a reader that gets one block of the several it asks
 * for reads into that one). Reads come in small
 * pieces with an -EAGAIN before each (SLUICE__IO_MEM_EAGAIN), so the PENDING
 * paths and the blocks held across them are part of every run.
 */
#include "harness.h"

#include <stdlib.h>

#define T_PARTS 2

typedef struct torture {
    char *req;                     /* the request bytes, head and body   */
    size_t req_len;
    unsigned char *data[T_PARTS];  /* each part's payload                */
    size_t len[T_PARTS];
} torture;

static void append(torture *t, const void *p, size_t n)
{
    memcpy(t->req + t->req_len, p, n);
    t->req_len += n;
}

static void append_chunked(torture *t, const char *p, size_t n, unsigned long long *seed)
{
    while (n) {
        size_t c = 1 + (size_t)(t_rand(seed) % 9000);
        if (c > n)
            c = n;
        char line[32];
        int l = snprintf(line, sizeof line, "%zx\r\n", c);
        append(t, line, (size_t)l);
        append(t, p, c);
        append(t, "\r\n", 2);
        p += c, n -= c;
    }
}

/* Builds the request: a chunked multipart body of a small field and a
 * 200 KB file, split into chunks of random sizes. */
static void torture_build(torture *t)
{
    unsigned long long seed = 0x5eed;
    t->len[0] = 13;
    t->len[1] = 200000;
    size_t mp_cap = t->len[0] + t->len[1] + 512, mp_len = 0;
    char *mp = malloc(mp_cap);
    for (int i = 0; i < T_PARTS; i++) {
        t->data[i] = malloc(t->len[i]);
        for (size_t j = 0; j < t->len[i]; j++)
            t->data[i][j] = (unsigned char)t_rand(&seed);
        mp_len += (size_t)snprintf(mp + mp_len, mp_cap - mp_len,
                                   "--BOUNDARY\r\nContent-Disposition: form-data; name=\"p%d\"%s\r\n\r\n",
                                   i, i ? "; filename=\"f.bin\"" : "");
        memcpy(mp + mp_len, t->data[i], t->len[i]);
        mp_len += t->len[i];
        mp_len += (size_t)snprintf(mp + mp_len, mp_cap - mp_len, "\r\n");
    }
    mp_len += (size_t)snprintf(mp + mp_len, mp_cap - mp_len, "--BOUNDARY--\r\n");
    t->req = malloc(mp_len * 2 + 4096);
    t->req_len = 0;
    static const char head[] = "POST /upload HTTP/1.1\r\nHost: t\r\n"
                               "Content-Type: multipart/form-data; boundary=BOUNDARY\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    append(t, head, sizeof head - 1);
    append_chunked(t, mp, mp_len, &seed);
    append(t, "0\r\n\r\n", 5);
    free(mp);
}

static void torture_free(torture *t)
{
    free(t->req);
    for (int i = 0; i < T_PARTS; i++)
        free(t->data[i]);
}

/* One part: tap -> chunked writer (with a head) -> pump, stepped to the end.
 * Returns 0 with the digest, or the error that stopped it. */
static int pump_part(sluice_pool *pool, sluice_stream *part, unsigned char digest[32],
                     uint64_t *moved)
{
    sluice_sha256_ctx sha;
    sluice_sha256_init(&sha);
    sluice_stream *tapped = NULL;
    sluice_sink *w = NULL;
    sluice_io *out = NULL;
    sluice_http_head_builder b;
    sluice_bytes head = {0};
    int rc = sluice_tap_new(pool, part, sluice_sha256_tap, &sha, &tapped); /* owns part, also on error */
    if (rc == 0)
        rc = sluice__io_mem_new(pool, "", 0, 0, 0, &out);
    if (rc == 0) {
        sluice_http_head_init(&b, pool);
        sluice_http_head_request_line(&b, "PUT", 3, "/part", 5);
        sluice_http_head_add_header(&b, "Transfer-Encoding", 17, "chunked", 7);
        rc = sluice_http_head_finish(&b, &head);
    }
    if (rc == 0)
        rc = sluice_writer_new(pool, out, SLUICE_FRAMING_CHUNKED, &head, NULL, &w);
    if (rc == 0) {
        sluice_pump p;
        sluice_pump_init(&p, tapped, w, &(sluice_pump_config){.step_bytes = 5000});
        sluice_pump_status st;
        while ((st = sluice_pump_step(&p, NULL)) == SLUICE_PUMP_PENDING)
            ;
        rc = st == SLUICE_PUMP_DONE ? 0 : sluice_pump_error(&p, NULL);
        *moved = sluice_pump_moved(&p);
        sluice_pump_close(&p);
    }
    sluice_bytes_release(&head);
    sluice_sink_close(w);
    sluice_stream_close(tapped);
    sluice_io_close(out);
    if (rc == 0)
        sluice_sha256_final(&sha, digest);
    return rc;
}

/* Head -> body -> splitter -> every part pumped. 0 when everything ended
 * well and byte-exact (a mismatch fails the test), else the error. */
static int run_request(sluice_pool *pool, sluice_reader *r, const torture *t)
{
    sluice_http_request req;
    sluice_http_header hdrs[16];
    sluice_http_framing f;
    sluice_bytes head;
    sluice_poll st;
    int err = 0;
    while ((st = sluice_http_read_request(r, NULL, &req, hdrs, 16, &head, &err)) == SLUICE_PENDING)
        ;
    if (st != SLUICE_READY)
        return err;
    EXPECT_EQ(sluice_http_request_framing(&req, &f), 0);
    const sluice_http_header *ct = sluice_http_header_next(hdrs, req.num_headers,
                                                           "Content-Type", NULL);
    char bnd[SLUICE_MULTIPART_BOUNDARY_MAX + 1];
    ssize_t bl = ct ? sluice_multipart_boundary(ct->value, ct->value_len, bnd) : -1;
    sluice_bytes_release(&head);
    if (bl < 0) {
        harness_fail(__FILE__, __LINE__, "no boundary");
        return -1;
    }
    sluice_stream *body;
    sluice_multipart *m = NULL;
    int rc = sluice_body_new(pool, r, &f, NULL, &body);
    if (rc == 0)
        rc = sluice_multipart_new(pool, body, bnd, (size_t)bl, NULL, &m); /* owns body */
    for (int i = 0; rc == 0; i++) {
        sluice_stream *part;
        while ((st = sluice_multipart_next(m, &part)) == SLUICE_PENDING)
            ;
        if (st == SLUICE_EOF) {
            EXPECT_EQ(i, T_PARTS);
            break;
        }
        if (st != SLUICE_READY) {
            rc = sluice_multipart_error(m, NULL);
            break;
        }
        unsigned char got[32], want[32];
        uint64_t moved = 0;
        rc = pump_part(pool, part, got, &moved); /* closes part */
        if (rc == 0 && i < T_PARTS) {
            sluice_sha256(t->data[i], t->len[i], want);
            EXPECT_MEM(got, 32, want, 32);
            EXPECT_EQ(moved, t->len[i]);
        }
    }
    if (m)
        sluice_multipart_close(m);
    return rc;
}

/* Fails allocation k = 1, 2, ... until a run gets through without a
 * failure; the reader offers max_iov blocks per read. */
static void torture_loop(unsigned max_iov)
{
    torture t;
    torture_build(&t);
    int completed = 0, recovered = 0;
    long k;
    for (k = 1; k < 5000 && !completed; k++) {
        t_failalloc fa = {.fail_at = k};
        sluice_allocator a = t_failalloc_hook(&fa);
        sluice_pool_config pc = {.block_size = 4096, .max_spare = 1, .allocator = &a};
        sluice_pool *pool;
        if (sluice_pool_new(&pc, &pool) < 0) {
            EXPECT_EQ(fa.live, 0);
            continue;
        }
        sluice_io *io = NULL;
        sluice_reader *r = NULL;
        int rc = sluice__io_mem_new(pool, t.req, t.req_len, 3000, SLUICE__IO_MEM_EAGAIN, &io);
        if (rc == 0)
            rc = sluice_reader_new(pool, io, &(sluice_reader_config){.max_iov = max_iov}, &r);
        if (rc == 0)
            rc = run_request(pool, r, &t);
        if (rc == 0) /* a reader that could not get a 2nd block reads into 1 */
            completed = !fa.failed, recovered += fa.failed;
        else
            EXPECT_ERR(rc, SLUICE_ENOMEM);
        EXPECT(rc == 0 || fa.failed); /* no error without a cause */
        sluice_reader_close(r);
        sluice_io_close(io);
        sluice_pool_counters st;
        sluice_pool_stats(pool, &st);
        EXPECT_EQ(st.blocks_live, 0);
        EXPECT_EQ(st.objects_live, 0);
        sluice_pool_close(pool);
        EXPECT_EQ(fa.live, 0);
        EXPECT_EQ(fa.bytes_live, 0);
        if (harness_failed_now()) {
            fprintf(stderr, "torture: first failure at k=%ld\n", k);
            break;
        }
    }
    EXPECT(completed);
    printf("torture (max_iov %u): %ld runs (%d got through a failed allocation), the last "
           "without one\n", max_iov, k - 1, recovered);
    if (max_iov == 1)
        EXPECT_EQ(recovered, 0); /* one block per read: every failure is an error */
    torture_free(&t);
}

TEST(torture_whole_path_every_allocation_fails_once)
{
    torture_loop(0); /* the reader's default: 4 blocks per read */
}

TEST(torture_whole_path_one_block_per_read)
{
    torture_loop(1);
}
