/* test_s3.c — the S3 upload sink against a scripted in-memory store: exact
 * PutObject bytes, responses at every split with EAGAIN in between,
 * multipart (parts, Complete XML, reconnects), abort and cleanup, S3 error
 * bodies, allocation failures; and the XML reader. */
#include "harness.h"

#include "../lib/s3_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <strings.h>

/* ---- a scripted store -------------------------------------------------------- */

/* An io that collects what the sink writes, notices each complete request
 * (head + Content-Length bytes) and answers it with the next scripted
 * response, handed out `split` bytes per read (0: all), with -EAGAIN before
 * every read when `again`. After an answer with `close_after`, reads say
 * EOF and the sink must reconnect. */
typedef struct store {
    sluice_io base;
    char *sent;
    size_t sent_len, sent_cap, parsed;  /* parsed: end of the last request */
    const char *const *script;
    size_t nscript, next;               /* responses given so far          */
    const char *resp;
    size_t resp_len, resp_off;
    size_t split;
    int again, flip, close_after, closed, shut;
    size_t wmax;                        /* bytes taken per writev (0: all)  */
    int wagain, wflip;                  /* -EAGAIN before every writev      */
    size_t slow_from;                   /* wmax, wagain from this request on */
    int mute;                           /* never answer                     */
    int silent_close;                   /* close after answering, unannounced */
    int early, rejecting;               /* answer at the head, refuse the body */
    int last_eagain;                    /* the last readv/writev said -EAGAIN */
    size_t requests;
    size_t req_off[16], req_len[16];    /* where each request is in sent   */
    char closing[1024];                 /* a response with Connection: close */
} store;

static void store_parse(store *s)
{
    for (;;) {
        if (s->resp && s->resp_off < s->resp_len)
            return; /* one request at a time */
        const char *p = s->sent + s->parsed;
        size_t n = s->sent_len - s->parsed;
        const char *end = NULL;
        for (size_t i = 0; i + 4 <= n; i++)
            if (!memcmp(p + i, "\r\n\r\n", 4)) {
                end = p + i + 4;
                break;
            }
        if (!end)
            return;
        size_t cl = 0;
        for (const char *q = p; q + 18 <= end; q++) /* never past the head */
            if (!strncasecmp(q, "\r\nContent-Length: ", 18)) {
                cl = strtoul(q + 18, NULL, 10);
                break;
            }
        size_t total = (size_t)(end - p) + cl;
        if (n < total && s->early && !s->rejecting) {
            /* answer at the head, and take no more of the body */
            s->rejecting = 1;
            s->silent_close = 1;
            s->resp = s->script[s->next++];
            s->resp_len = strlen(s->resp);
            s->resp_off = 0;
            return;
        }
        if (n < total)
            return;
        if (s->requests < 16) {
            s->req_off[s->requests] = s->parsed;
            s->req_len[s->requests] = total;
        }
        s->requests++;
        s->parsed += total;
        if (s->mute)
            continue;
        s->resp = s->next < s->nscript ? s->script[s->next++] : "HTTP/1.1 500 X\r\n\r\n";
        s->resp_len = strlen(s->resp);
        if (s->close_after) { /* announce it, as a store does */
            const char *eol = strstr(s->resp, "\r\n") + 2;
            size_t at = (size_t)(eol - s->resp);
            snprintf(s->closing, sizeof s->closing, "%.*sConnection: close\r\n%s", (int)at,
                     s->resp, eol);
            s->resp = s->closing;
            s->resp_len = strlen(s->closing);
        }
        s->resp_off = 0;
    }
}

static ssize_t store_writev_(sluice_io *io, const struct iovec *iov, int n);
static ssize_t store_readv_(sluice_io *io, const struct iovec *iov, int n);

static ssize_t store_writev(sluice_io *io, const struct iovec *iov, int n)
{
    ssize_t r = store_writev_(io, iov, n);
    ((store *)io)->last_eagain = r == -EAGAIN;
    return r;
}

static ssize_t store_readv(sluice_io *io, const struct iovec *iov, int n)
{
    ssize_t r = store_readv_(io, iov, n);
    ((store *)io)->last_eagain = r == -EAGAIN;
    return r;
}

static ssize_t store_writev_(sluice_io *io, const struct iovec *iov, int n)
{
    store *s = (store *)io;
    if (s->shut || s->closed || s->rejecting)
        return -EPIPE;
    int slow = s->requests >= s->slow_from;
    if (slow && s->wagain && (s->wflip ^= 1))
        return -EAGAIN;
    size_t got = 0;
    size_t wmax = slow ? s->wmax : 0;
    for (int i = 0; i < n && (!wmax || got < wmax); i++) {
        size_t len = iov[i].iov_len;
        if (wmax && len > wmax - got)
            len = wmax - got;
        if (s->sent_len + len > s->sent_cap) {
            s->sent_cap = (s->sent_len + len) * 2;
            s->sent = realloc(s->sent, s->sent_cap);
        }
        memcpy(s->sent + s->sent_len, iov[i].iov_base, len);
        s->sent_len += len;
        got += len;
    }
    store_parse(s);
    return (ssize_t)got;
}

static ssize_t store_readv_(sluice_io *io, const struct iovec *iov, int n)
{
    store *s = (store *)io;
    if (s->again && (s->flip ^= 1))
        return -EAGAIN;
    if (!s->resp || s->resp_off == s->resp_len) {
        if (s->closed)
            return 0;
        return -EAGAIN;
    }
    size_t want = s->resp_len - s->resp_off, got = 0;
    if (s->split && want > s->split)
        want = s->split;
    for (int i = 0; i < n && got < want; i++) {
        size_t k = iov[i].iov_len < want - got ? iov[i].iov_len : want - got;
        memcpy(iov[i].iov_base, s->resp + s->resp_off + got, k);
        got += k;
    }
    s->resp_off += got;
    if (s->resp_off == s->resp_len && (s->close_after || s->silent_close))
        s->closed = 1;
    store_parse(s);
    return (ssize_t)got;
}

static int store_shutdown(sluice_io *io)
{
    ((store *)io)->shut = 1;
    return 0;
}

static void store_close_io(sluice_io *io)
{
    (void)io; /* the test frees stores */
}

static const sluice_io_vtable store_vt = {"store", store_readv, store_writev, store_shutdown,
                                          NULL, store_close_io};

static void store_init(store *s, sluice_pool *p, const char *const *script, size_t n)
{
    memset(s, 0, sizeof *s);
    s->base.vt = &store_vt;
    s->base.pool = p;
    s->base.fd = -1;
    s->script = script;
    s->nscript = n;
}

static void store_free(store *s)
{
    free(s->sent);
}

/* The connect callback: the next store of an array (conns[0] is the first
 * connection, so used starts at 1), going on with the same script. */
typedef struct dialer {
    store *conns;
    size_t n, used;
} dialer;

static int dial(void *ud, sluice_io **io)
{
    dialer *d = ud;
    if (d->used >= d->n)
        return -ECONNREFUSED;
    store *prev = &d->conns[d->used - 1], *s = &d->conns[d->used++];
    s->next = prev->next; /* the script goes on where it stopped */
    s->split = prev->split;
    s->again = prev->again;
    s->close_after = prev->close_after;
    s->silent_close = prev->silent_close;
    *io = &s->base;
    return 0;
}

static const char *req(const store *s, size_t i, size_t *len)
{
    *len = s->req_len[i];
    return s->sent + s->req_off[i];
}

static int has(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return 1;
    return 0;
}

static const sluice_s3_config base_cfg = {
    .host = "127.0.0.1:9000", .bucket = "bucket", .key = "dir/a b+c.txt", .key_len = 13,
    .credentials = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL},
};

/* Pumps chunks (references move) into k; steps the pump and the store. */
static int pump_all(sluice_pool *p, sluice_sink *k, sluice_bytes *chunks, size_t n,
                    unsigned flags)
{
    sluice_stream *src;
    int rc = sluice_memstream_new(p, chunks, n, flags, &src);
    if (rc < 0)
        return rc;
    sluice_pump pump;
    sluice_pump_init(&pump, src, k, 0);
    sluice_pump_status st;
    int guard = 0;
    while ((st = sluice_pump_step(&pump, NULL)) == SLUICE_PUMP_PENDING && ++guard < 1000000) {
    }
    rc = st == SLUICE_PUMP_DONE ? 0 : st == SLUICE_PUMP_ERROR ? sluice_pump_error(&pump, NULL)
                                                                : SLUICE_ETIMEDOUT;
    sluice_pump_close(&pump);
    sluice_stream_close(src);
    return rc;
}

static sluice_poll cleanup_all(sluice_sink *k)
{
    sluice_poll r;
    int guard = 0;
    while ((r = sluice_s3_sink_cleanup(k, NULL)) == SLUICE_PENDING && ++guard < 100000) {
    }
    return r;
}

/* Checked with botocore's S3SigV4Auth (tests/s3/moto_suite.py does the same
 * for every request sent to moto). */
#define T_PUT_SIGNATURE "7ea1373b74477561d421c79c92d3013f53c2f780c32623d323fee2cfececaac3"
#define T_TIME 1369353600 /* 2013-05-24 00:00:00 UTC, AWS's example date */

static const char put_ok[] = "HTTP/1.1 200 OK\r\nETag: \"5d41402abc4b2a76b9719d911017c592\"\r\n"
                             "x-amz-checksum-sha256: LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=\r\n"
                             "Content-Length: 0\r\n\r\n";

/* ---- PutObject ------------------------------------------------------------------ */

TEST(s3_put_exact_bytes)
{
    const char *script[] = {put_ok};
    store st;
    store_init(&st, T_POOL, script, 1);
    sluice_s3_config c = base_cfg;
    c.length = 5;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice__s3_sink_testing(k, T_TIME, 0);
    sluice_bytes b = sluice_bytes_static("hello", 5);
    EXPECT_EQ(pump_all(T_POOL, k, &b, 1, 0), 0);
    static const char want[] =
        "PUT /bucket/dir/a%20b%2Bc.txt HTTP/1.1\r\n"
        "Host: 127.0.0.1:9000\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Content-Encoding: aws-chunked\r\n"
        "Content-Length: 83\r\n"
        "x-amz-decoded-content-length: 5\r\n"
        "x-amz-trailer: x-amz-checksum-sha256\r\n"
        "x-amz-date: 20130524T000000Z\r\n"
        "x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
        "aws4_request,SignedHeaders=content-encoding;content-length;content-type;host;"
        "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-trailer,"
        "Signature=" T_PUT_SIGNATURE "\r\n"
        "\r\n"
        "5\r\nhello\r\n0\r\nx-amz-checksum-sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=\r\n\r\n";
    EXPECT_MEM(st.sent, st.sent_len, want, sizeof want - 1);
    sluice_s3_result r;
    EXPECT_EQ(sluice_s3_sink_result(k, &r), 0);
    EXPECT_EQ(r.done, 1);
    EXPECT_EQ(r.size, 5);
    EXPECT_STR(r.etag, "5d41402abc4b2a76b9719d911017c592");
    EXPECT_STR(r.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    EXPECT_STR(r.checksum, "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=");
    EXPECT_EQ(r.parts, 0);
    EXPECT_EQ(sluice_sink_status(k), SLUICE_SINK_FINISHED);
    EXPECT_EQ(sluice_s3_sink_cleanup(k, NULL), SLUICE_READY);
    sluice_sink_close(k);
    store_free(&st);
}

/* The response in pieces of every size, with EAGAIN between reads; a body
 * of several chunks whose views are split across the 64 KiB chunk lines. */
TEST(s3_put_every_split)
{
    static unsigned char data[150000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7);
    size_t rlen = strlen(put_ok);
    for (size_t split = 1; split <= rlen; split += split < 20 ? 1 : 7) {
        const char *script[] = {put_ok};
        store st;
        store_init(&st, T_POOL, script, 1);
        st.split = split;
        st.again = 1;
        sluice_s3_config c = base_cfg;
        c.length = sizeof data;
        sluice_sink *k;
        REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
        sluice_bytes parts[3] = {sluice_bytes_static(data, 70000),
                                 sluice_bytes_static(data + 70000, 1),
                                 sluice_bytes_static(data + 70001, sizeof data - 70001)};
        EXPECT_EQ(pump_all(T_POOL, k, parts, 3, SLUICE_MEMSTREAM_PENDING), 0);
        sluice_s3_result r;
        sluice_s3_sink_result(k, &r);
        EXPECT_EQ(r.done, 1);
        EXPECT_STR(r.etag, "5d41402abc4b2a76b9719d911017c592");
        /* framing: 10000 line, 64 KiB, CRLF, again, then 49f0 (150000 - 131072) */
        const char *body = NULL;
        for (size_t i = 0; i + 4 <= st.sent_len; i++)
            if (!memcmp(st.sent + i, "\r\n\r\n", 4)) {
                body = st.sent + i + 4;
                break;
            }
        REQUIRE(body);
        EXPECT_MEM(body, 7, "10000\r\n", 7);
        EXPECT_MEM(body + 7, 65536, data, 65536);
        EXPECT_MEM(body + 7 + 65536, 9, "\r\n10000\r\n", 9);
        EXPECT_MEM(body + 65552, 65536, data + 65536, 65536);
        EXPECT_MEM(body + 131088, 8, "\r\n49f0\r\n", 8);
        EXPECT_EQ(st.sent_len - (size_t)(body - st.sent),
                  131096 + 18928 + 2 + 3 + 22 + 44 + 2 + 2);
        sluice_sink_close(k);
        store_free(&st);
    }
}

/* A store that takes a few KiB per write, with EAGAIN in between: the
 * pump's flushes must write the writer's queue out (no spinning), and
 * the bytes are the same. */
TEST(s3_put_slow_store)
{
    static unsigned char data[1 << 20];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 13 + 1);
    const char *script[] = {put_ok};
    store st;
    store_init(&st, T_POOL, script, 1);
    st.wmax = 3000;
    st.wagain = 1;
    sluice_s3_config c = base_cfg;
    c.length = sizeof data;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice_bytes parts[16];
    for (size_t i = 0; i < 16; i++)
        parts[i] = sluice_bytes_static(data + i * 65536, 65536);
    EXPECT_EQ(pump_all(T_POOL, k, parts, 16, 0), 0);
    sluice_s3_result r;
    sluice_s3_sink_result(k, &r);
    EXPECT_EQ(r.done, 1);
    const char *body = strstr(st.sent, "\r\n\r\n") + 4;
    for (size_t i = 0; i < 16; i++) {
        EXPECT_MEM(body, 7, "10000\r\n", 7);
        EXPECT_MEM(body + 7, 65536, data + i * 65536, 65536);
        body += 65545;
    }
    EXPECT_MEM(body, 5, "0\r\nx-", 5);
    sluice_sink_close(k);
    store_free(&st);
}

/* A store that takes the request and never answers: SLUICE_ETIMEDOUT
 * after the idle timeout, waited for with the deadline in the interest. */
TEST(s3_idle_timeout)
{
    store st;
    store_init(&st, T_POOL, NULL, 0);
    st.mute = 1;
    sluice_s3_config c = base_cfg;
    c.length = 3;
    c.idle_timeout_ms = 30;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice_bytes b = sluice_bytes_static("abc", 3);
    sluice_stream *src;
    REQUIRE(sluice_memstream_new(T_POOL, &b, 1, 0, &src) == 0);
    sluice_pump pump;
    sluice_pump_init(&pump, src, k, 0);
    int64_t t0 = sluice_now_ms();
    EXPECT_ERR(sluice_pump_run(&pump, 5000), SLUICE_ETIMEDOUT);
    EXPECT_ERR(sluice_sink_error(k, NULL), SLUICE_ETIMEDOUT);
    EXPECT(sluice_now_ms() - t0 >= 30);
    EXPECT(sluice_now_ms() - t0 < 4000);
    EXPECT_EQ(st.requests, 1);
    sluice_pump_close(&pump);
    sluice_stream_close(src);
    sluice_sink_close(k);
    store_free(&st);
}

/* The store answers at the head (no such bucket) and refuses the body: the
 * sink reports the store's answer, not the EPIPE. Without an answer, EPIPE. */
TEST(s3_early_answer)
{
    const char *script[] = {"HTTP/1.1 404 Not Found\r\nContent-Length: 75\r\n\r\n"
                            "<Error><Code>NoSuchBucket</Code><Message>no bucket</Message></Error>"
                            "       "};
    for (int answer = 0; answer < 2; answer++) {
        store st;
        store_init(&st, T_POOL, script, answer ? 1 : 0);
        st.early = answer;
        if (!answer)
            st.rejecting = 1;
        sluice_s3_config c = base_cfg;
        c.length = 300000;
        sluice_sink *k;
        REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
        static unsigned char data[300000];
        sluice_bytes b = sluice_bytes_static(data, sizeof data);
        int rc = pump_all(T_POOL, k, &b, 1, 0);
        sluice_s3_result r;
        sluice_s3_sink_result(k, &r);
        if (answer) {
            EXPECT_ERR(rc, SLUICE_ES3_ERROR);
            EXPECT_STR(r.error_code, "NoSuchBucket");
            EXPECT_EQ(r.status, 404);
        } else {
            EXPECT_ERR(rc, -EPIPE);
        }
        EXPECT_EQ(cleanup_all(k), SLUICE_READY);
        sluice_sink_close(k);
        store_free(&st);
    }
}

TEST(s3_put_length_mismatch)
{
    store st;
    store_init(&st, T_POOL, NULL, 0);
    sluice_s3_config c = base_cfg;
    c.length = 10;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice_bytes b = sluice_bytes_static("short", 5);
    EXPECT_ERR(pump_all(T_POOL, k, &b, 1, 0), SLUICE_ETRUNCATED);
    EXPECT_EQ(cleanup_all(k), SLUICE_READY); /* cut: nothing stored */
    EXPECT_EQ(st.shut, 1);
    sluice_sink_close(k);
    store_free(&st);

    store_init(&st, T_POOL, NULL, 0);
    c.length = 3;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    b = sluice_bytes_static("toolong", 7);
    EXPECT_ERR(pump_all(T_POOL, k, &b, 1, 0), SLUICE_ETOOBIG);
    sluice_sink_close(k);
    store_free(&st);
}

/* The source fails mid-way: the pump aborts the sink, which cuts the
 * PutObject short of its Content-Length. */
TEST(s3_put_source_fails)
{
    store st;
    store_init(&st, T_POOL, NULL, 0);
    sluice_s3_config c = base_cfg;
    c.length = 100;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice_bytes b = sluice_bytes_static("0123456789", 10);
    EXPECT_ERR(pump_all(T_POOL, k, &b, 1, SLUICE_MEMSTREAM_TRUNCATED), SLUICE_ETRUNCATED);
    EXPECT_EQ(sluice_sink_status(k), SLUICE_SINK_ABORTED);
    EXPECT_EQ(st.shut, 1);
    EXPECT_EQ(st.requests, 0); /* never complete */
    sluice_s3_result r;
    sluice_s3_sink_result(k, &r);
    EXPECT_EQ(r.cleanup, SLUICE_S3_CLEAN);
    EXPECT_EQ(cleanup_all(k), SLUICE_READY);
    sluice_sink_close(k);
    store_free(&st);
}

TEST(s3_error_response)
{
    const char *script[] = {
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 120\r\n\r\n"
        "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>No &amp; no "
        "&lt;way&gt; &#233;</Message></Error>          "};
    store st;
    store_init(&st, T_POOL, script, 1);
    st.split = 3;
    sluice_s3_config c = base_cfg;
    c.length = 2;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice_bytes b = sluice_bytes_static("hi", 2);
    EXPECT_ERR(pump_all(T_POOL, k, &b, 1, 0), SLUICE_ES3_ERROR);
    sluice_s3_result r;
    sluice_s3_sink_result(k, &r);
    EXPECT_EQ(r.done, 0);
    EXPECT_EQ(r.status, 403);
    EXPECT_STR(r.error_code, "AccessDenied");
    EXPECT_STR(r.error_message, "No & no <way> \xc3\xa9");
    EXPECT_EQ(sluice_http_error_status(SLUICE_ES3_ERROR), 502);
    EXPECT_EQ(cleanup_all(k), SLUICE_READY);
    sluice_sink_close(k);
    store_free(&st);
}

/* ---- multipart ------------------------------------------------------------------ */

static const char create_ok[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 130\r\n\r\n"
    "<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key>"
    "<UploadId>up&amp;1</UploadId></InitiateMultipartUploadResult>   ";
static const char part1[] = "HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: 0\r\n\r\n";
static const char part2[] = "HTTP/1.1 200 OK\r\nETag: \"e2\"\r\nContent-Length: 0\r\n\r\n";
static const char part3[] = "HTTP/1.1 200 OK\r\nETag: \"e3\"\r\nContent-Length: 0\r\n\r\n";
static const char complete_ok[] =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    "1f\r\n<CompleteMultipartUploadResult>\r\n"
    "44\r\n<ETag>&quot;abc-3&quot;</ETag><ChecksumSHA256>c2=-3</ChecksumSHA256>\r\n"
    "20\r\n</CompleteMultipartUploadResult>\r\n0\r\n\r\n";
static const char abort_ok[] = "HTTP/1.1 204 No Content\r\n\r\n";

static void multipart_run(size_t split, int again, int close_after)
{
    static unsigned char data[250];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)('a' + i % 26);
    const char *script[] = {create_ok, part1, part2, part3, complete_ok};
    store conns[6];
    for (int i = 0; i < 6; i++)
        store_init(&conns[i], T_POOL, script, 5);
    conns[0].split = split;
    conns[0].again = again;
    conns[0].close_after = close_after;
    dialer d = {conns, 6, 1};
    sluice_s3_config c = base_cfg;
    c.length = SLUICE_S3_UNKNOWN_LENGTH;
    c.connect = dial;
    c.connect_ud = &d;
    conns[0].base.pool = T_POOL;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &conns[0].base, &c, &k) == 0);
    sluice__s3_sink_testing(k, T_TIME, 100);
    sluice_bytes parts[3] = {sluice_bytes_static(data, 130), sluice_bytes_static(data + 130, 70),
                             sluice_bytes_static(data + 200, 50)};
    EXPECT_EQ(pump_all(T_POOL, k, parts, 3, SLUICE_MEMSTREAM_PENDING), 0);
    sluice_s3_result r;
    sluice_s3_sink_result(k, &r);
    EXPECT_EQ(r.done, 1);
    EXPECT_EQ(r.parts, 3);
    EXPECT_STR(r.etag, "abc-3");
    EXPECT_STR(r.checksum, "c2=-3");
    EXPECT_STR(r.upload_id, "up&1");
    EXPECT_EQ(r.size, 250);
    EXPECT_EQ(d.used, close_after ? 5u : 1u);
    /* all requests, across connections */
    size_t total = 0;
    const char *rq[5];
    size_t rl[5];
    for (size_t i = 0; i < 6 && total < 5; i++)
        for (size_t j = 0; j < conns[i].requests && total < 5; j++, total++)
            rq[total] = req(&conns[i], j, &rl[total]);
    REQUIRE(total == 5);
    EXPECT(has(rq[0], rl[0], "POST /bucket/dir/a%20b%2Bc.txt?uploads= HTTP/1.1\r\n"));
    EXPECT(has(rq[0], rl[0], "x-amz-checksum-algorithm: SHA256\r\n"));
    EXPECT(has(rq[1], rl[1], "PUT /bucket/dir/a%20b%2Bc.txt?partNumber=1&uploadId=up%261 "));
    EXPECT(has(rq[1], rl[1], "Content-Length: 100\r\n"));
    EXPECT(has(rq[3], rl[3], "?partNumber=3&uploadId=up%261 "));
    EXPECT(has(rq[3], rl[3], "Content-Length: 50\r\n"));
    EXPECT_MEM(rq[3] + rl[3] - 50, 50, data + 200, 50);
    EXPECT_MEM(rq[2] + rl[2] - 100, 100, data + 100, 100);
    unsigned char dg[32];
    char b64[45], hex[65], line[128];
    sluice_sha256(data + 100, 100, dg);
    sluice_sigv4_base64(dg, 32, b64, sizeof b64);
    sluice_sha256_hex(dg, hex);
    snprintf(line, sizeof line, "x-amz-checksum-sha256: %s\r\n", b64);
    EXPECT(has(rq[2], rl[2], line));
    snprintf(line, sizeof line, "x-amz-content-sha256: %s\r\n", hex);
    EXPECT(has(rq[2], rl[2], line));
    EXPECT(has(rq[4], rl[4], "POST /bucket/dir/a%20b%2Bc.txt?uploadId=up%261 "));
    EXPECT(has(rq[4], rl[4], "<Part><PartNumber>2</PartNumber><ETag>\"e2\"</ETag><ChecksumSHA256>"));
    snprintf(line, sizeof line, "<ChecksumSHA256>%s</ChecksumSHA256></Part><Part><PartNumber>3",
             b64);
    EXPECT(has(rq[4], rl[4], line));
    EXPECT(has(rq[4], rl[4], "</Part></CompleteMultipartUpload>"));
    sluice_sink_close(k);
    for (int i = 0; i < 6; i++)
        store_free(&conns[i]);
}

TEST(s3_multipart)
{
    multipart_run(0, 0, 0);
}

TEST(s3_multipart_splits_and_reconnects)
{
    for (size_t split = 1; split < 40; split += 3) {
        multipart_run(split, 1, 0);
        multipart_run(split, split & 1, 1);
    }
}

/* A store that closes an idle connection without saying so: the sink sees
 * it before the next request and reconnects. */
TEST(s3_multipart_silent_close)
{
    const char *script[] = {create_ok, part1, part2, complete_ok};
    store conns[5];
    for (int i = 0; i < 5; i++)
        store_init(&conns[i], T_POOL, script, 4);
    conns[0].silent_close = 1;
    dialer d = {conns, 5, 1};
    sluice_s3_config c = base_cfg;
    c.length = SLUICE_S3_UNKNOWN_LENGTH;
    c.connect = dial;
    c.connect_ud = &d;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &conns[0].base, &c, &k) == 0);
    sluice__s3_sink_testing(k, T_TIME, 10);
    sluice_bytes b = sluice_bytes_static("0123456789abcdefghij", 20);
    EXPECT_EQ(pump_all(T_POOL, k, &b, 1, 0), 0);
    EXPECT_EQ(d.used, 4u);
    sluice_s3_result r;
    sluice_s3_sink_result(k, &r);
    EXPECT_EQ(r.done, 1);
    EXPECT_EQ(r.parts, 2);
    sluice_sink_close(k);
    for (int i = 0; i < 5; i++)
        store_free(&conns[i]);
}

TEST(s3_multipart_no_reconnect)
{
    const char *script[] = {create_ok};
    store st;
    store_init(&st, T_POOL, script, 1);
    st.close_after = 1;
    sluice_s3_config c = base_cfg;
    c.length = SLUICE_S3_UNKNOWN_LENGTH;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice__s3_sink_testing(k, T_TIME, 10);
    sluice_bytes b = sluice_bytes_static("0123456789abc", 13);
    EXPECT_ERR(pump_all(T_POOL, k, &b, 1, 0), SLUICE_EPEERCLOSED);
    sluice_s3_result r;
    sluice_s3_sink_result(k, &r);
    EXPECT_STR(r.upload_id, "up&1");
    EXPECT_EQ(cleanup_all(k), SLUICE_ERROR); /* cannot reach the store again */
    sluice_s3_sink_result(k, &r);
    EXPECT_EQ(r.cleanup, SLUICE_S3_CLEANUP_FAILED);
    sluice_sink_close(k);
    store_free(&st);
}

/* A small stream of unknown length goes as one PutObject. */
TEST(s3_unknown_small_is_put)
{
    const char *script[] = {put_ok};
    store st;
    store_init(&st, T_POOL, script, 1);
    sluice_s3_config c = base_cfg;
    c.length = SLUICE_S3_UNKNOWN_LENGTH;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice_bytes b[2] = {sluice_bytes_static("hel", 3), sluice_bytes_static("lo", 2)};
    EXPECT_EQ(pump_all(T_POOL, k, b, 2, 0), 0);
    EXPECT_EQ(st.requests, 1);
    EXPECT(has(st.sent, st.sent_len, "x-amz-decoded-content-length: 5\r\n"));
    EXPECT(has(st.sent, st.sent_len, "\r\n\r\n5\r\nhello\r\n0\r\nx-amz-checksum-sha256:"));
    sluice_s3_result r;
    sluice_s3_sink_result(k, &r);
    EXPECT_EQ(r.done, 1);
    EXPECT_STR(r.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    sluice_sink_close(k);
    store_free(&st);
}

/* Tiny chunks (a chunked body of 1-byte chunks) are held as a few
 * compacted views, not one view (and one block) per chunk. */
TEST(s3_small_views_compacted)
{
    const char *script[] = {put_ok};
    store st;
    store_init(&st, T_POOL, script, 1);
    sluice_s3_config c = base_cfg;
    c.length = SLUICE_S3_UNKNOWN_LENGTH;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    static char text[100000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 23);
    for (size_t i = 0; i < sizeof text; i++) {
        sluice_bytes b;
        REQUIRE(sluice_bytes_copy_from(T_POOL, text + i, 1, &b) == 0);
        REQUIRE(sluice_sink_poll_write(k, &b) == SLUICE_READY);
    }
    sluice_pool_counters pc;
    sluice_pool_stats(T_POOL, &pc);
    EXPECT(((s3_sink *)k)->fn <= 2);
    EXPECT(pc.blocks_live <= 3);
    EXPECT_EQ(sluice_sink_finish(k), SLUICE_READY);
    const char *body = strstr(st.sent, "\r\n\r\n") + 4;
    EXPECT_MEM(body, 7, "10000\r\n", 7);
    EXPECT_MEM(body + 7, 65536, text, 65536);
    EXPECT_MEM(body + 65545, 6, "86a0\r\n", 6);
    EXPECT_MEM(body + 65551, 100000 - 65536, text + 65536, 100000 - 65536);
    sluice_sink_close(k);
    store_free(&st);
}

/* The source fails after the upload was created: cleanup aborts it. */
TEST(s3_multipart_abort)
{
    for (int close_after = 0; close_after < 2; close_after++) {
        const char *script[] = {create_ok, part1, abort_ok};
        store conns[4];
        for (int i = 0; i < 4; i++)
            store_init(&conns[i], T_POOL, script, 3);
        conns[0].close_after = close_after;
        dialer d = {conns, 4, 1};
        sluice_s3_config c = base_cfg;
        c.length = SLUICE_S3_UNKNOWN_LENGTH;
        c.connect = dial;
        c.connect_ud = &d;
        sluice_sink *k;
        REQUIRE(sluice_s3_sink_new(T_POOL, &conns[0].base, &c, &k) == 0);
        sluice__s3_sink_testing(k, T_TIME, 10);
        sluice_bytes b = sluice_bytes_static("0123456789abcdef", 16);
        EXPECT_ERR(pump_all(T_POOL, k, &b, 1, SLUICE_MEMSTREAM_TRUNCATED), SLUICE_ETRUNCATED);
        sluice_s3_result r;
        sluice_s3_sink_result(k, &r);
        EXPECT_EQ(r.cleanup, SLUICE_S3_CLEANUP_NEEDED);
        EXPECT_EQ(cleanup_all(k), SLUICE_READY);
        sluice_s3_sink_result(k, &r);
        EXPECT_EQ(r.cleanup, SLUICE_S3_CLEAN);
        EXPECT_EQ(r.status, 204);
        EXPECT_EQ(r.done, 0);
        store *last = &conns[d.used - 1];
        size_t len;
        const char *a = req(last, last->requests - 1, &len);
        EXPECT(has(a, len, "DELETE /bucket/dir/a%20b%2Bc.txt?uploadId=up%261 HTTP/1.1\r\n"));
        EXPECT_EQ(sluice_s3_sink_cleanup(k, NULL), SLUICE_READY); /* repeats */
        sluice_sink_close(k);
        for (int i = 0; i < 4; i++)
            store_free(&conns[i]);
    }
}

/* The source fails while an UploadPart is being written to a slow store:
 * with a connect callback the part is cut and the upload aborted on a new
 * connection; without, the part is written out and the abort follows on
 * the same connection. */
TEST(s3_multipart_abort_mid_part)
{
    for (int with_connect = 0; with_connect < 2; with_connect++) {
        const char *s_cut[] = {create_ok, abort_ok}; /* the part is never answered */
        const char *s_out[] = {create_ok, part1, abort_ok};
        store conns[3];
        for (int i = 0; i < 3; i++)
            store_init(&conns[i], T_POOL, with_connect ? s_cut : s_out, with_connect ? 2 : 3);
        conns[0].wmax = 5;
        conns[0].wagain = 1;
        conns[0].slow_from = 1; /* Create goes at once, the part slowly */
        dialer d = {conns, 3, 1};
        sluice_s3_config c = base_cfg;
        c.length = SLUICE_S3_UNKNOWN_LENGTH;
        if (with_connect) {
            c.connect = dial;
            c.connect_ud = &d;
        }
        sluice_sink *k;
        REQUIRE(sluice_s3_sink_new(T_POOL, &conns[0].base, &c, &k) == 0);
        sluice__s3_sink_testing(k, T_TIME, 1000);
        static unsigned char data[1500];
        sluice_bytes b = sluice_bytes_static(data, sizeof data);
        EXPECT_ERR(pump_all(T_POOL, k, &b, 1, SLUICE_MEMSTREAM_TRUNCATED), SLUICE_ETRUNCATED);
        EXPECT_EQ(cleanup_all(k), SLUICE_READY);
        sluice_s3_result r;
        sluice_s3_sink_result(k, &r);
        EXPECT_EQ(r.cleanup, SLUICE_S3_CLEAN);
        EXPECT_EQ(r.status, 204);
        EXPECT_EQ(d.used, with_connect ? 2u : 1u);
        EXPECT_EQ(conns[0].shut, with_connect);
        store *last = &conns[d.used - 1];
        size_t len;
        const char *a = req(last, last->requests - 1, &len);
        EXPECT(has(a, len, "DELETE /bucket/dir/a%20b%2Bc.txt?uploadId=up%261 HTTP/1.1\r\n"));
        EXPECT_EQ(conns[0].requests, with_connect ? 1u : 3u);
        sluice_sink_close(k);
        for (int i = 0; i < 3; i++)
            store_free(&conns[i]);
    }
}

/* The source fails while CreateMultipartUpload is still being written: the
 * cleanup waits for its answer, then aborts the upload it names. */
TEST(s3_multipart_abort_during_create)
{
    const char *script[] = {create_ok, abort_ok};
    store st;
    store_init(&st, T_POOL, script, 2);
    st.wmax = 50;
    st.wagain = 1;
    sluice_s3_config c = base_cfg;
    c.length = SLUICE_S3_UNKNOWN_LENGTH;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice__s3_sink_testing(k, T_TIME, 1000);
    static unsigned char data[1000];
    sluice_bytes b = sluice_bytes_static(data, sizeof data);
    EXPECT_ERR(pump_all(T_POOL, k, &b, 1, SLUICE_MEMSTREAM_TRUNCATED), SLUICE_ETRUNCATED);
    sluice_s3_result r;
    sluice_s3_sink_result(k, &r);
    EXPECT_EQ(r.cleanup, SLUICE_S3_CLEANUP_NEEDED);
    EXPECT_STR(r.upload_id, "");
    EXPECT_EQ(cleanup_all(k), SLUICE_READY);
    sluice_s3_sink_result(k, &r);
    EXPECT_STR(r.upload_id, "up&1");
    EXPECT_EQ(r.cleanup, SLUICE_S3_CLEAN);
    EXPECT_EQ(st.requests, 2);
    size_t len;
    const char *a = req(&st, 1, &len);
    EXPECT(has(a, len, "DELETE /bucket/dir/a%20b%2Bc.txt?uploadId=up%261 HTTP/1.1\r\n"));
    sluice_sink_close(k);
    store_free(&st);
}

/* A 200 to Complete that carries an <Error>. */
TEST(s3_complete_error_in_200)
{
    const char *script[] = {
        create_ok, part1,
        "HTTP/1.1 200 OK\r\nContent-Length: 79\r\n\r\n"
        "<Error><Code>InternalError</Code><Message>try again</Message></Error>          ",
        abort_ok};
    store st;
    store_init(&st, T_POOL, script, 4);
    sluice_s3_config c = base_cfg;
    c.length = SLUICE_S3_UNKNOWN_LENGTH;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice__s3_sink_testing(k, T_TIME, 10);
    sluice_bytes b = sluice_bytes_static("0123456789", 10);
    EXPECT_ERR(pump_all(T_POOL, k, &b, 1, 0), SLUICE_ES3_ERROR);
    sluice_s3_result r;
    sluice_s3_sink_result(k, &r);
    EXPECT_STR(r.error_code, "InternalError");
    EXPECT_STR(r.error_message, "try again");
    EXPECT_EQ(cleanup_all(k), SLUICE_READY);
    EXPECT_EQ(st.requests, 4);
    sluice_sink_close(k);
    store_free(&st);
}

TEST(s3_config_checks)
{
    store st;
    store_init(&st, T_POOL, NULL, 0);
    sluice_sink *k;
    sluice_s3_config c = base_cfg;
    c.part_size = 1 << 20;
    EXPECT_ERR(sluice_s3_sink_new(T_POOL, &st.base, &c, &k), SLUICE_EINVAL);
    EXPECT(k == NULL);
    c = base_cfg;
    c.payload = SLUICE_SIGV4_UNSIGNED_PAYLOAD;
    EXPECT_ERR(sluice_s3_sink_new(T_POOL, &st.base, &c, &k), SLUICE_EINVAL);
    c = base_cfg;
    c.bucket = "";
    EXPECT_ERR(sluice_s3_sink_new(T_POOL, &st.base, &c, &k), SLUICE_EINVAL);
    c = base_cfg;
    c.length = -2;
    EXPECT_ERR(sluice_s3_sink_new(T_POOL, &st.base, &c, &k), SLUICE_EINVAL);
    sluice_sink *v;
    REQUIRE(sluice_vecsink_new(T_POOL, &v) == 0);
    sluice_s3_result r;
    EXPECT_ERR(sluice_s3_sink_result(v, &r), SLUICE_EINVAL);
    EXPECT_EQ(sluice_s3_sink_cleanup(v, NULL), SLUICE_ERROR);
    sluice_sink_close(v);
    store_free(&st);
}

/* Every allocation failing in turn, for a PutObject and a multipart upload
 * with an abort: clean errors, nothing leaked. */
TEST(s3_alloc_failures)
{
    for (int multi = 0; multi < 2; multi++) {
        int done = 0;
        for (long f = 1; f < 400 && !done; f++) {
            t_failalloc fa = {.fail_at = f};
            sluice_allocator a = t_failalloc_hook(&fa);
            sluice_pool_config pc = {.allocator = &a};
            sluice_pool *p;
            if (sluice_pool_new(&pc, &p) < 0)
                continue;
            const char *s1[] = {put_ok};
            const char *s2[] = {create_ok, part1, part2, complete_ok};
            store st;
            store_init(&st, p, multi ? s2 : s1, multi ? 4 : 1);
            sluice_s3_config c = base_cfg;
            c.length = multi ? SLUICE_S3_UNKNOWN_LENGTH : 15;
            sluice_sink *k = NULL;
            int rc = sluice_s3_sink_new(p, &st.base, &c, &k);
            if (rc == 0) {
                sluice__s3_sink_testing(k, T_TIME, 10);
                sluice_bytes b = sluice_bytes_static("0123456789abcde", 15);
                rc = pump_all(p, k, &b, 1, 0);
                if (rc < 0)
                    cleanup_all(k);
                sluice_s3_result r;
                sluice_s3_sink_result(k, &r);
                done = rc == 0 && r.done;
            }
            if (rc < 0 && rc != SLUICE_ENOMEM)
                EXPECT_ERR(rc, SLUICE_ENOMEM);
            sluice_sink_close(k);
            sluice_pool_close(p);
            store_free(&st);
            EXPECT_EQ(fa.live, 0);
        }
        EXPECT(done);
    }
}

/* Answers with random bytes changed (status lines, lengths, XML): the sink
 * ends, done or failed, and cleans up, never crashing or leaking (run under
 * the sanitizers by make SAN=1). */
TEST(s3_mangled_responses)
{
    unsigned long long seed = 42;
    for (int iter = 0; iter < 300; iter++) {
        static char bufs[4][1024];
        const char *orig[4] = {create_ok, part1, part2, complete_ok};
        const char *script[5];
        for (int i = 0; i < 4; i++) {
            size_t n = strlen(orig[i]);
            memcpy(bufs[i], orig[i], n + 1);
            for (int m = (int)(t_rand(&seed) % 4); m > 0; m--)
                bufs[i][t_rand(&seed) % n] = (char)(t_rand(&seed) % 128 + 1);
            script[i] = bufs[i];
        }
        script[4] = abort_ok;
        store st;
        store_init(&st, T_POOL, script, 5);
        st.split = (size_t)(t_rand(&seed) % 8);
        sluice_s3_config c = base_cfg;
        c.length = SLUICE_S3_UNKNOWN_LENGTH;
        c.idle_timeout_ms = 1;
        sluice_sink *k;
        REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
        sluice__s3_sink_testing(k, T_TIME, 10);
        sluice_bytes b = sluice_bytes_static("0123456789abcdefghij", 20);
        if (pump_all(T_POOL, k, &b, 1, 0) < 0)
            cleanup_all(k);
        sluice_s3_result r;
        sluice_s3_sink_result(k, &r);
        EXPECT(r.done || sluice_sink_error(k, NULL) != 0);
        sluice_sink_close(k);
        store_free(&st);
    }
}

/* Driven by hand, write by write: whenever the sink says PENDING, the last
 * thing the io said was -EAGAIN (so an edge-triggered host may wait), and
 * the interest names what the sink waits for. */
TEST(s3_pending_only_after_eagain)
{
    const char *script[] = {create_ok, part1, part2, part3, complete_ok};
    store st;
    store_init(&st, T_POOL, script, 5);
    st.again = 1;
    st.wagain = 1;
    st.wmax = 7;
    st.split = 5;
    sluice_s3_config c = base_cfg;
    c.length = SLUICE_S3_UNKNOWN_LENGTH;
    sluice_sink *k;
    REQUIRE(sluice_s3_sink_new(T_POOL, &st.base, &c, &k) == 0);
    sluice__s3_sink_testing(k, T_TIME, 100);
    static unsigned char data[250];
    int pendings = 0;
    for (size_t off = 0; off < sizeof data; off += 25) {
        sluice_bytes b = sluice_bytes_static(data + off, 25);
        sluice_poll r;
        while ((r = sluice_sink_poll_write(k, &b)) == SLUICE_PENDING) {
            EXPECT(st.last_eagain);
            sluice_interest w;
            sluice_sink_ready(k, &w);
            EXPECT(w.events == SLUICE_WANT_READ || w.events == SLUICE_WANT_WRITE);
            pendings++;
        }
        REQUIRE(r == SLUICE_READY);
    }
    sluice_poll r;
    while ((r = sluice_sink_finish(k)) == SLUICE_PENDING) {
        EXPECT(st.last_eagain);
        pendings++;
    }
    EXPECT_EQ(r, SLUICE_READY);
    EXPECT(pendings > 10);
    sluice_s3_result res;
    sluice_s3_sink_result(k, &res);
    EXPECT_EQ(res.parts, 3);
    sluice_sink_close(k);
    store_free(&st);
}

/* ---- XML ------------------------------------------------------------------------ */

TEST(s3_xml_text)
{
    char out[16];
    const char x[] = "<a><Code>A&lt;B&#x41;&#66;&bogus;</Code><Message></Message><Long>"
                     "0123456789abcdefghij</Long><Open>x";
    EXPECT_EQ(sluice__xml_text(x, sizeof x - 1, "Code", out, sizeof out), 12);
    EXPECT_STR(out, "A<BAB&bogus;");
    EXPECT_EQ(sluice__xml_text(x, sizeof x - 1, "Message", out, sizeof out), 0);
    EXPECT_EQ(sluice__xml_text(x, sizeof x - 1, "Long", out, sizeof out), 15);
    EXPECT_STR(out, "0123456789abcde");
    EXPECT_EQ(sluice__xml_text(x, sizeof x - 1, "Open", out, sizeof out), -1);
    EXPECT_EQ(sluice__xml_text(x, sizeof x - 1, "None", out, sizeof out), -1);
    EXPECT_EQ(sluice__xml_text("", 0, "Code", out, sizeof out), -1);
}
