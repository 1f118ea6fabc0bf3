/* test_body.c — Content-Length, chunked and until-close bodies over real
 * socketpairs: one table of cases, each fed whole, at every split point,
 * one byte at a time and at random splits; pipelined bytes checked exactly. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { LEN, CHUNKED, CLOSE };

typedef struct bcase {
    const char *name;
    int kind;
    long long length;          /* LEN */
    const char *in;            /* bytes the peer sends, then it closes */
    size_t in_len;             /* 0: strlen(in) */
    const char *out;           /* payload expected (before the end/error) */
    int err;                   /* 0: EOF expected */
    long long err_off;         /* -1: not checked */
    const char *rest;          /* bytes left for the next reader (EOF cases) */
    uint64_t max_body;
    size_t max_trailer;
} bcase;

typedef struct result {
    unsigned char out[4096];
    size_t out_len;
    sluice_poll end;
    int err;
    uint64_t off;
    unsigned char rest[256];
    size_t rest_len;
    size_t ntrailers;
    char trailers[512];        /* "name=value;" ... */
} result;

static void pair(int sv[2])
{
    int rc = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (rc != 0)
        abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
}

static sluice_stream *make_body(sluice_reader *r, const bcase *c)
{
    sluice_body_config cfg = {.max_body = c->max_body, .max_trailer_bytes = c->max_trailer};
    sluice_stream *s = NULL;
    int rc = c->kind == LEN       ? sluice_body_new(T_POOL, r, SLUICE_FRAMING_LENGTH((uint64_t)c->length), &cfg, &s)
             : c->kind == CHUNKED ? sluice_body_new(T_POOL, r, SLUICE_FRAMING_CHUNKED, &cfg, &s)
                                  : sluice_body_new(T_POOL, r, SLUICE_FRAMING_CLOSE, &cfg, &s);
    EXPECT_EQ(rc, 0);
    return s;
}

/* Polls s until PENDING, EOF or ERROR, appending payload to res. */
static sluice_poll drain(sluice_stream *s, result *res)
{
    for (;;) {
        sluice_bytes b;
        sluice_poll p = sluice_stream_poll_next(s, &b);
        if (p != SLUICE_READY)
            return p;
        EXPECT(b.len > 0);
        if (res->out_len + b.len <= sizeof res->out)
            memcpy(res->out + res->out_len, b.data, b.len);
        res->out_len += b.len;
        sluice_bytes_release(&b);
    }
}

/* Feeds in[] in pieces ending at cuts[] (ascending, last == len), polling in
 * between, then closes the peer and runs the body to its end. */
static void run_body(const bcase *c, const size_t *cuts, size_t ncuts, result *res)
{
    memset(res, 0, sizeof *res);
    size_t len = c->in_len ? c->in_len : strlen(c->in);
    int sv[2];
    pair(sv);
    sluice_io *io;
    sluice_reader *r;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[1], SLUICE_IO_CLOSE_FD, &io) == 0);
    REQUIRE(sluice_reader_new(T_POOL, io, NULL, &r) == 0);
    sluice_stream *s = make_body(r, c);
    size_t sent = 0;
    sluice_poll p = SLUICE_PENDING;
    for (size_t i = 0; i < ncuts && p == SLUICE_PENDING; i++) {
        if (cuts[i] > sent) {
            EXPECT_EQ(write(sv[0], c->in + sent, cuts[i] - sent), (ssize_t)(cuts[i] - sent));
            sent = cuts[i];
        }
        p = drain(s, res);
        if (p == SLUICE_PENDING) {
            sluice_interest w;
            sluice_stream_ready(s, &w);
            EXPECT_EQ(w.fd, sv[1]);
            EXPECT_EQ(w.events, SLUICE_WANT_READ);
        }
    }
    if (sent < len) { /* the rest: body bytes, or what the next reader gets */
        EXPECT_EQ(write(sv[0], c->in + sent, len - sent), (ssize_t)(len - sent));
        sent = len;
    }
    shutdown(sv[0], SHUT_WR);
    if (p == SLUICE_PENDING)
        p = drain(s, res);
    res->end = p;
    res->err = sluice_stream_error(s, NULL);
    res->off = t_stream_where(s);
    if (p == SLUICE_EOF && c->kind == CHUNKED) {
        const sluice_http_header *t;
        EXPECT_EQ(sluice_body_trailers(s, &t, &res->ntrailers), 0);
        size_t o = 0;
        for (size_t i = 0; i < res->ntrailers; i++)
            o += (size_t)snprintf(res->trailers + o, sizeof res->trailers - o, "%.*s=%.*s;",
                                  (int)t[i].name_len, t[i].name, (int)t[i].value_len,
                                  t[i].value);
    }
    sluice_stream_close(s);
    if (p == SLUICE_EOF) {
        /* what the next reader on this connection gets */
        for (;;) {
            sluice_bytes b;
            while (sluice_reader_take(r, SIZE_MAX, &b)) {
                if (res->rest_len + b.len <= sizeof res->rest)
                    memcpy(res->rest + res->rest_len, b.data, b.len);
                res->rest_len += b.len;
                sluice_bytes_release(&b);
            }
            sluice_poll f = sluice_reader_fill(r);
            if (f == SLUICE_EOF || f == SLUICE_ERROR)
                break;
        }
    }
    sluice_reader_close(r);
    sluice_io_close(io);
    close(sv[0]);
}

static void check(const bcase *c, const result *res, const char *how, size_t at)
{
    int before = harness_failed_now();
    const char *want = c->out ? c->out : "";
    EXPECT_MEM(res->out, res->out_len, want, strlen(want));
    if (c->err) {
        EXPECT_EQ(res->end, SLUICE_ERROR);
        EXPECT_ERR(res->err, c->err);
        if (c->err_off >= 0)
            EXPECT_EQ(res->off, c->err_off);
    } else {
        EXPECT_EQ(res->end, SLUICE_EOF);
        EXPECT_ERR(res->err, 0);
        const char *rest = c->rest ? c->rest : "";
        EXPECT_MEM(res->rest, res->rest_len, rest, strlen(rest));
    }
    if (harness_failed_now() != before)
        fprintf(stderr, "    in case \"%s\" (%s %zu)\n", c->name, how, at);
}

/* in is a literal: its length is taken with sizeof, so NULs stay in */
#define E(name, in, out, err, off)                                             \
    {name, CHUNKED, 0, in, sizeof in - 1, out, SLUICE_##err, off, NULL, 0, 0}
#define OK(name, in, out, rest) {name, CHUNKED, 0, in, sizeof in - 1, out, 0, -1, rest, 0, 0}

static const bcase cases[] = {
    /* valid chunked */
    OK("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", ""),
    OK("two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", ""),
    OK("empty body", "0\r\n\r\n", "", ""),
    OK("upper hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", ""),
    OK("lower hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789", ""),
    OK("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", ""),
    OK("16 digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", "hello", ""),
    OK("ext", "5;a\r\nhello\r\n0;b=c\r\n\r\n", "hello", ""),
    OK("ext bws", "5 ; a = b ;c\r\nhello\r\n0\r\n\r\n", "hello", ""),
    OK("ext tab bws", "5\t;\ta\t=\tb\r\nhello\r\n0\r\n\r\n", "hello", ""),
    OK("ext quoted", "5;a=\"x y;\\\"z\"\r\nhello\r\n0\r\n\r\n", "hello", ""),
    OK("ext quoted then more", "5;a=\"q\" ;b\r\nhello\r\n0\r\n\r\n", "hello", ""),
    OK("ext obs-text", "5;a=\"\xe9\"\r\nhello\r\n0\r\n\r\n", "hello", ""),
    OK("data with CRLF inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", ""),
    OK("pipelined rest", "1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", "x", "GET / HTTP/1.1\r\n\r\n"),
    OK("trailers", "1\r\nx\r\n0\r\nA: 1\r\nB-b:  two words \t\r\n\r\nNEXT", "x", "NEXT"),
    OK("trailer empty value", "0\r\nX:\r\n\r\n", "", ""),
    /* chunk size */
    E("0x prefix", "0x10\r\n", "", EBAD_CHUNK_SIZE, 1),
    E("minus", "-1\r\n", "", EBAD_CHUNK_SIZE, 0),
    E("plus", "+1\r\n", "", EBAD_CHUNK_SIZE, 0),
    E("leading space", " 1\r\n", "", EBAD_CHUNK_SIZE, 0),
    E("leading tab", "\t1\r\n", "", EBAD_CHUNK_SIZE, 0),
    E("empty size", "\r\n", "", EBAD_CHUNK_SIZE, 0),
    E("junk after size", "5z\r\nhello", "", EBAD_CHUNK_SIZE, 1),
    E("non-hex g", "g\r\n", "", EBAD_CHUNK_SIZE, 0),
    E("NUL in size", "5\0\r\n", "", EBAD_CHUNK_SIZE, 1),
    E("NUL first", "\0", "", EBAD_CHUNK_SIZE, 0),
    E("17 digits", "00000000000000005\r\n", "", ECHUNK_SIZE_OVERFLOW, 16),
    E("huge", "ffffffffffffffff\r\n", "", ECHUNK_SIZE_OVERFLOW, 15),
    E("just over int64", "8000000000000000\r\n", "", ECHUNK_SIZE_OVERFLOW, 15),
    E("size in second chunk", "1\r\na\r\nzz\r\n", "a", EBAD_CHUNK_SIZE, 6),
    /* line endings */
    E("bare LF after size", "5\nhello", "", EBARE_LF, 1),
    E("CR without LF", "5\rhello", "", EBARE_CR, 2),
    E("CR CR LF", "5\r\r\n", "", EBARE_CR, 2),
    E("bare LF as size", "\n", "", EBARE_LF, 0),
    E("bare LF after ext", "5;a\nhello", "", EBARE_LF, 3),
    E("bare LF after ext value", "5;a=b\n", "", EBARE_LF, 5),
    E("bare LF final", "0\r\n\n", "", EBARE_LF, 3),
    E("CR without LF final", "0\r\n\rx", "", EBARE_CR, 4),
    /* data end */
    E("missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", "hello", EBAD_CHUNK_END, 8),
    E("LF only after data", "5\r\nhello\n0\r\n\r\n", "hello", EBAD_CHUNK_END, 8),
    E("CR only after data", "5\r\nhello\rX", "hello", EBAD_CHUNK_END, 9),
    E("data longer than size", "3\r\nhello\r\n", "hel", EBAD_CHUNK_END, 6),
    /* extensions */
    E("space before CRLF", "5 \r\nhello", "", EBAD_CHUNK_EXT, 2),
    E("space then junk", "5 x\r\n", "", EBAD_CHUNK_EXT, 2),
    E("empty ext name", "5;\r\n", "", EBAD_CHUNK_EXT, 2),
    E("empty ext name before ;", "5;;a\r\n", "", EBAD_CHUNK_EXT, 2),
    E("ext name not token", "5;a@b\r\n", "", EBAD_CHUNK_EXT, 3),
    E("space after ext name", "5;a \r\n", "", EBAD_CHUNK_EXT, 4),
    E("space inside ext name", "5;a b\r\n", "", EBAD_CHUNK_EXT, 4),
    E("empty ext value", "5;a=\r\n", "", EBAD_CHUNK_EXT, 4),
    E("ext value not token", "5;a=b@c\r\n", "", EBAD_CHUNK_EXT, 5),
    E("space after ext value", "5;a=b \r\n", "", EBAD_CHUNK_EXT, 6),
    E("space inside ext value", "5;a=b c\r\n", "", EBAD_CHUNK_EXT, 6),
    E("unterminated quote", "5;a=\"b\r\n", "", EBAD_CHUNK_EXT, 6),
    E("junk after quote", "5;a=\"b\"c\r\n", "", EBAD_CHUNK_EXT, 7),
    E("NUL in quote", "5;a=\"\0\"\r\n", "", EBAD_CHUNK_EXT, 5),
    E("NUL in ext name", "5;a\0\r\n", "", EBAD_CHUNK_EXT, 3),
    E("escaped CR in quote", "5;a=\"\\\r\"\r\n", "", EBAD_CHUNK_EXT, 6),
    E("double =", "5;a==b\r\n", "", EBAD_CHUNK_EXT, 4),
    E("comma list", "5;a,b\r\n", "", EBAD_CHUNK_EXT, 3),
    /* trailers */
    E("trailer no colon", "0\r\nAbc\r\n\r\n", "", EBAD_TRAILER, 6),
    E("trailer space before colon", "0\r\nA : b\r\n\r\n", "", EBAD_TRAILER, 4),
    E("trailer empty name", "0\r\n: b\r\n\r\n", "", EBAD_TRAILER, 3),
    E("trailer bad name", "0\r\nA(b: c\r\n\r\n", "", EBAD_TRAILER, 4),
    E("trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n", "", EBAD_TRAILER, 9),
    E("trailer leading space", "0\r\n A: b\r\n\r\n", "", EBAD_TRAILER, 3),
    E("trailer NUL in value", "0\r\nA: b\0c\r\n\r\n", "", EBAD_TRAILER, 7),
    E("trailer DEL in value", "0\r\nA: b\x7f\r\n\r\n", "", EBAD_TRAILER, 7),
    E("trailer bare LF", "0\r\nA: b\n\r\n", "", EBARE_LF, 7),
    E("trailer bare CR", "0\r\nA: b\rc\r\n\r\n", "", EBARE_CR, 7),
    E("trailer line end missing", "0\r\nA: b\r\nB: c", "", ETRUNCATED, 13),
    /* truncation: never EOF */
    E("truncated in size", "5", "", ETRUNCATED, 1),
    E("truncated in data", "5\r\nhel", "hel", ETRUNCATED, 6),
    E("truncated before data CRLF", "5\r\nhello", "hello", ETRUNCATED, 8),
    E("truncated after data CR", "5\r\nhello\r", "hello", ETRUNCATED, 9),
    E("truncated before last chunk", "5\r\nhello\r\n", "hello", ETRUNCATED, 10),
    E("truncated before final CRLF", "5\r\nhello\r\n0\r\n", "hello", ETRUNCATED, 13),
    E("truncated final CR", "0\r\n\r", "", ETRUNCATED, 4),
    E("truncated in ext", "5;a=\"b", "", ETRUNCATED, 6),
    E("nothing at all", "", "", ETRUNCATED, 0),
    E("largest size, no data", "7fffffffffffffff\r\n", "", ETRUNCATED, 18),
    /* Content-Length */
    {"length exact", LEN, 5, "hello", 0, "hello", 0, -1, "", 0, 0},
    {"length pipelined", LEN, 5, "helloGET /", 0, "hello", 0, -1, "GET /", 0, 0},
    {"length zero", LEN, 0, "GET /", 0, "", 0, -1, "GET /", 0, 0},
    {"length truncated", LEN, 10, "hello", 0, "hello", SLUICE_ETRUNCATED, 5, NULL, 0, 0},
    {"length nothing", LEN, 3, "", 0, "", SLUICE_ETRUNCATED, 0, NULL, 0, 0},
    {"length over max", LEN, 10, "0123456789", 0, "", SLUICE_ETOOBIG, 0, NULL, 9, 0},
    {"length at max", LEN, 10, "0123456789", 0, "0123456789", 0, -1, "", 10, 0},
    /* until close */
    {"close", CLOSE, 0, "all of it\r\n0\r\n", 0, "all of it\r\n0\r\n", 0, -1, "", 0, 0},
    {"close empty", CLOSE, 0, "", 0, "", 0, -1, "", 0, 0},
    {"close over max", CLOSE, 0, "0123456789", 0, "0123", SLUICE_ETOOBIG, 4, NULL, 4, 0},
    {"close at max", CLOSE, 0, "0123", 0, "0123", 0, -1, "", 4, 0},
    /* limits */
    {"max body", CHUNKED, 0, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 0, "hello",
     SLUICE_ETOOBIG, 13, NULL, 10, 0},
    {"max body exact", CHUNKED, 0, "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 0, "helloworld", 0,
     -1, "", 10, 0},
    {"trailer too large", CHUNKED, 0, "0\r\nAb: cdefgh\r\n\r\n", 0, "", SLUICE_ETRAILER_TOO_LARGE,
     13, NULL, 0, 10},
    {"trailer fits", CHUNKED, 0, "0\r\nAb: cdef\r\n\r\n", 0, "", 0, -1, "", 0, 10},
    {"two trailers too large", CHUNKED, 0, "0\r\nA: b\r\nC: d\r\n\r\n", 0, "",
     SLUICE_ETRAILER_TOO_LARGE, 13, NULL, 0, 10},
};

#define NCASES (sizeof cases / sizeof cases[0])

TEST(body_table_whole)
{
    result res;
    for (size_t i = 0; i < NCASES; i++) {
        size_t len = cases[i].in_len ? cases[i].in_len : strlen(cases[i].in);
        run_body(&cases[i], &len, 1, &res);
        check(&cases[i], &res, "whole", 0);
    }
}

TEST(body_table_every_split)
{
    static result res;
    for (size_t i = 0; i < NCASES; i++) {
        size_t len = cases[i].in_len ? cases[i].in_len : strlen(cases[i].in);
        for (size_t k = 0; k <= len; k++) {
            size_t cuts[2] = {k, len};
            run_body(&cases[i], cuts, 2, &res);
            check(&cases[i], &res, "split at", k);
        }
    }
}

TEST(body_table_byte_by_byte)
{
    static result res;
    size_t cuts[256];
    for (size_t i = 0; i < NCASES; i++) {
        size_t len = cases[i].in_len ? cases[i].in_len : strlen(cases[i].in);
        REQUIRE(len < 256);
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        run_body(&cases[i], cuts, len, &res);
        check(&cases[i], &res, "byte by byte", len);
    }
}

TEST(body_table_random_splits)
{
    static result res;
    size_t cuts[256];
    unsigned long long seed = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < NCASES; i++) {
            size_t len = cases[i].in_len ? cases[i].in_len : strlen(cases[i].in), n = 0, at = 0;
            while (at < len) {
                at += 1 + t_rand(&seed) % 7;
                cuts[n++] = at < len ? at : len;
            }
            run_body(&cases[i], cuts, n, &res);
            check(&cases[i], &res, "random round", (size_t)round);
        }
    }
}

TEST(body_trailer_fields)
{
    static result res;
    const bcase *c = NULL;
    for (size_t i = 0; i < NCASES; i++)
        if (!strcmp(cases[i].name, "trailers"))
            c = &cases[i];
    REQUIRE(c);
    size_t len = strlen(c->in);
    for (size_t k = 0; k <= len; k++) {
        size_t cuts[2] = {k, len};
        run_body(c, cuts, 2, &res);
        EXPECT_EQ(res.ntrailers, 2);
        EXPECT_STR(res.trailers, "A=1;B-b=two words;");
    }
}

TEST(body_trailers_only_for_chunked_at_eof)
{
    int sv[2];
    pair(sv);
    sluice_io *io;
    sluice_reader *r;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[1], SLUICE_IO_CLOSE_FD, &io) == 0);
    REQUIRE(sluice_reader_new(T_POOL, io, NULL, &r) == 0);
    sluice_stream *s, *l;
    REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_CHUNKED, NULL, &s) == 0);
    REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_LENGTH(0), NULL, &l) == 0);
    const sluice_http_header *t;
    size_t n = 7;
    EXPECT_ERR(sluice_body_trailers(s, &t, &n), SLUICE_EINVAL); /* not at EOF */
    EXPECT_EQ(n, 0);
    EXPECT_ERR(sluice_body_trailers(l, &t, &n), SLUICE_EINVAL);
    sluice_bytes b;
    EXPECT_EQ(sluice_stream_poll_next(l, &b), SLUICE_EOF);
    EXPECT_ERR(sluice_body_trailers(l, &t, &n), SLUICE_EINVAL);
    EXPECT_EQ(write(sv[0], "0\r\n\r\n", 5), 5);
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_EOF);
    EXPECT_EQ(sluice_body_trailers(s, &t, &n), 0);
    EXPECT_EQ(n, 0);
    sluice_stream_close(s);
    sluice_stream_close(l);
    sluice_reader_close(r);
    sluice_io_close(io);
    close(sv[0]);
}

TEST(body_ext_limit)
{
    /* 4096 extension bytes pass; one more fails with its own code */
    static char in[8192];
    for (int extra = 0; extra < 2; extra++) {
        size_t n = 0;
        in[n++] = '1';
        in[n++] = ';';
        size_t name = SLUICE_CHUNK_EXT_MAX - 1 + (size_t)extra;
        memset(in + n, 'a', name);
        n += name;
        memcpy(in + n, "\r\nx\r\n0\r\n\r\n", 10);
        n += 10;
        bcase c = {"ext limit", CHUNKED, 0, in, n, extra ? "" : "x",
                   extra ? SLUICE_ECHUNK_EXT_TOO_LONG : 0, 1 + SLUICE_CHUNK_EXT_MAX, "", 0, 0};
        static result res;
        size_t cuts[3] = {1000, 4000, n};
        run_body(&c, cuts, 3, &res);
        check(&c, &res, "ext limit", (size_t)extra);
    }
}

TEST(body_close_is_eof_and_truncation_is_not)
{
    /* the same bytes: until-close ends in EOF, Content-Length in ERROR */
    bcase a = {"close", CLOSE, 0, "abc", 0, "abc", 0, -1, "", 0, 0};
    bcase b = {"len", LEN, 4, "abc", 0, "abc", SLUICE_ETRUNCATED, 3, NULL, 0, 0};
    static result res;
    size_t len = 3;
    run_body(&a, &len, 1, &res);
    check(&a, &res, "", 0);
    run_body(&b, &len, 1, &res);
    check(&b, &res, "", 0);
}

TEST(body_large_chunks_are_views_of_reader_blocks)
{
    /* a 200 KB chunk arrives in several blocks and comes out as views with
     * no copy: every chunk handed out points into a pool block */
    enum { N = 200000 };
    static char in[N + 64];
    int h = snprintf(in, sizeof in, "%x\r\n", N);
    for (int i = 0; i < N; i++)
        in[h + i] = (char)('a' + i % 26);
    memcpy(in + h + N, "\r\n0\r\n\r\n", 7);
    size_t len = (size_t)h + N + 7;
    int sv[2];
    pair(sv);
    sluice_io *io;
    sluice_reader *r;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[1], SLUICE_IO_CLOSE_FD, &io) == 0);
    REQUIRE(sluice_reader_new(T_POOL, io, NULL, &r) == 0);
    sluice_stream *s;
    REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_CHUNKED, NULL, &s) == 0);
    size_t sent = 0, got = 0;
    sluice_poll p = SLUICE_PENDING;
    while (p != SLUICE_EOF && p != SLUICE_ERROR) {
        if (sent < len) {
            ssize_t w = write(sv[0], in + sent, len - sent);
            if (w > 0)
                sent += (size_t)w;
        }
        sluice_bytes b;
        while ((p = sluice_stream_poll_next(s, &b)) == SLUICE_READY) {
            EXPECT(b.owner != NULL);
            EXPECT(b.len <= 64 * 1024);
            EXPECT_MEM(b.data, b.len, in + h + got, b.len);
            got += b.len;
            sluice_bytes_release(&b);
        }
    }
    EXPECT_EQ(p, SLUICE_EOF);
    EXPECT_EQ(got, N);
    sluice_stream_close(s);
    sluice_reader_close(r);
    sluice_io_close(io);
    close(sv[0]);
}

TEST(body_idle_timeout)
{
    int sv[2];
    pair(sv);
    sluice_io *io;
    sluice_reader *r;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[1], SLUICE_IO_CLOSE_FD, &io) == 0);
    REQUIRE(sluice_reader_new(T_POOL, io, NULL, &r) == 0);
    sluice_body_config cfg = {.idle_timeout_ms = 30};
    sluice_stream *s;
    REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_LENGTH(10), &cfg, &s) == 0);
    sluice_bytes b;
    int64_t t0 = sluice_now_ms();
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_PENDING);
    sluice_interest w;
    sluice_stream_ready(s, &w);
    EXPECT_EQ(w.fd, sv[1]);
    EXPECT(w.deadline_ms >= t0 + 30 && w.deadline_ms <= sluice_now_ms() + 30);
    /* progress moves the deadline */
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    EXPECT_EQ(write(sv[0], "abc", 3), 3);
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_READY);
    sluice_bytes_release(&b);
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_PENDING);
    nanosleep(&ts, NULL);
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_PENDING); /* 20 < 30 ms */
    sluice_stream_ready(s, &w);
    while (sluice_now_ms() < w.deadline_ms)
        nanosleep(&ts, NULL);
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_ERROR);
    EXPECT_ERR(sluice_stream_error(s, NULL), SLUICE_ETIMEDOUT);
    EXPECT_EQ(t_stream_where(s), 3);
    sluice_stream_close(s);
    sluice_reader_close(r);
    sluice_io_close(io);
    close(sv[0]);
}

TEST(body_io_error_passes_through)
{
    /* reading a pipe's write end fails with EBADF: an ERROR, never EOF */
    int pp[2];
    REQUIRE(pipe(pp) == 0);
    sluice_io *io;
    sluice_reader *r;
    REQUIRE(sluice_io_fd_new(T_POOL, pp[1], SLUICE_IO_CLOSE_FD, &io) == 0);
    REQUIRE(sluice_reader_new(T_POOL, io, NULL, &r) == 0);
    sluice_stream *s;
    REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_CHUNKED, NULL, &s) == 0);
    sluice_bytes b;
    EXPECT_EQ(sluice_stream_poll_next(s, &b), SLUICE_ERROR);
    EXPECT_ERR(sluice_stream_error(s, NULL), -EBADF);
    EXPECT_ERR(sluice_reader_error(r), -EBADF);
    EXPECT_EQ(sluice_reader_fill(r), SLUICE_ERROR); /* sticky */
    sluice_stream_close(s);
    sluice_reader_close(r);
    sluice_io_close(io);
    close(pp[0]);
}

/* ---- encode -> decode round trips ---------------------------------------- */

TEST(body_chunked_round_trip_random)
{
    unsigned long long seed = 42;
    static unsigned char payload[300000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (unsigned char)t_rand(&seed);
    for (int round = 0; round < 12; round++) {
        int sv[2];
        pair(sv);
        fcntl(sv[1], F_SETFL, O_NONBLOCK);
        sluice_io *wio, *rio;
        REQUIRE(sluice_io_fd_new(T_POOL, sv[0], 0, &wio) == 0);
        REQUIRE(sluice_io_fd_new(T_POOL, sv[1], 0, &rio) == 0);
        sluice_writer_config wc = {.max_chunks = 1 + (unsigned)(t_rand(&seed) % 64)};
        sluice_sink *k;
        REQUIRE(sluice_writer_new(T_POOL, wio, SLUICE_FRAMING_CHUNKED, NULL, &wc, &k) == 0);
        sluice_reader_config rc = {.max_iov = 1 + (unsigned)(t_rand(&seed) % 4)};
        sluice_reader *r;
        REQUIRE(sluice_reader_new(T_POOL, rio, &rc, &r) == 0);
        sluice_stream *s;
        REQUIRE(sluice_body_new(T_POOL, r, SLUICE_FRAMING_CHUNKED, NULL, &s) == 0);
        size_t total = (size_t)(t_rand(&seed) % sizeof payload), sent = 0, got = 0;
        size_t maxchunk = 1 + (size_t)(t_rand(&seed) % (round < 6 ? 100 : 70000));
        sluice_bytes pending = {0};
        int finished = 0;
        sluice_poll p = SLUICE_PENDING;
        while (p == SLUICE_PENDING || p == SLUICE_READY) {
            /* producer: as much as the sink takes, then a flush */
            while (!finished) {
                if (!pending.len && sent < total) {
                    size_t n = 1 + (size_t)(t_rand(&seed) % maxchunk);
                    if (n > total - sent)
                        n = total - sent;
                    REQUIRE(sluice_bytes_copy_from(T_POOL, payload + sent, n, &pending) == 0);
                    sent += n;
                }
                sluice_poll w = pending.len ? sluice_sink_poll_write(k, &pending)
                                            : sluice_sink_finish(k);
                EXPECT(w != SLUICE_ERROR);
                finished = !pending.len && w == SLUICE_READY && sent == total &&
                           sluice_sink_status(k) == SLUICE_SINK_FINISHED;
                if (w != SLUICE_READY) {
                    break;
                } else if (t_rand(&seed) % 8 == 0) {
                    EXPECT(sluice_sink_flush(k) != SLUICE_ERROR);
                    break;
                }
            }
            /* consumer */
            sluice_bytes b;
            while ((p = sluice_stream_poll_next(s, &b)) == SLUICE_READY) {
                EXPECT_MEM(b.data, b.len, payload + got, b.len);
                got += b.len;
                sluice_bytes_release(&b);
            }
        }
        EXPECT_EQ(p, SLUICE_EOF);
        EXPECT_EQ(got, total);
        EXPECT_EQ(sluice_sink_status(k), SLUICE_SINK_FINISHED);
        EXPECT_EQ(sluice_reader_available(r), 0);
        sluice_bytes_release(&pending);
        sluice_stream_close(s);
        sluice_sink_close(k);
        sluice_reader_close(r);
        sluice_io_close(wio);
        sluice_io_close(rio);
        close(sv[0]);
        close(sv[1]);
    }
}

/* ---- allocation failures ------------------------------------------------- */

TEST(body_alloc_failures_return_cleanly)
{
    static const char in[] = "3\r\nabc\r\n0\r\nX: y\r\nZ: w\r\n\r\nrest";
    int completed = 0;
    for (long k = 1; k < 400 && !completed; k++) {
        t_failalloc fa = {.fail_at = k};
        sluice_allocator a = t_failalloc_hook(&fa);
        sluice_pool_config pc = {.allocator = &a};
        sluice_pool *pool;
        if (sluice_pool_new(&pc, &pool) < 0) {
            EXPECT_EQ(fa.live, 0);
            continue;
        }
        sluice_io *io = NULL;
        sluice_reader *r = NULL;
        sluice_stream *s = NULL;
        int rc = sluice__io_mem_new(pool, in, sizeof in - 1, 3, SLUICE__IO_MEM_EAGAIN, &io);
        if (rc == 0)
            rc = sluice_reader_new(pool, io, NULL, &r);
        if (rc == 0)
            rc = sluice_body_new(pool, r, SLUICE_FRAMING_CHUNKED, NULL, &s);
        if (rc < 0) {
            EXPECT_ERR(rc, SLUICE_ENOMEM);
        } else {
            size_t got = 0;
            sluice_poll p;
            sluice_bytes b;
            while ((p = sluice_stream_poll_next(s, &b)) == SLUICE_READY ||
                   p == SLUICE_PENDING) {
                got += b.len;
                sluice_bytes_release(&b);
            }
            if (p == SLUICE_EOF) {
                EXPECT_EQ(got, 3);
                completed = !fa.failed;
            } else {
                EXPECT_ERR(sluice_stream_error(s, NULL), SLUICE_ENOMEM);
            }
        }
        sluice_stream_close(s);
        sluice_reader_close(r);
        sluice_io_close(io);
        sluice_pool_close(pool);
        EXPECT_EQ(fa.live, 0);
        EXPECT_EQ(fa.bytes_live, 0);
    }
    EXPECT(completed);
}

/* Reads s to its end; returns the poll result that ended it. */
static sluice_poll drain_body(sluice_stream *s)
{
    sluice_bytes b;
    sluice_poll r;
    while ((r = sluice_stream_poll_next(s, &b)) == SLUICE_READY || r == SLUICE_PENDING)
        sluice_bytes_release(&b);
    return r;
}

TEST(body_reusable_only_when_framing_ended_it_cleanly)
{
    static const struct {
        const char *in;
        sluice_http_body kind;
        uint64_t len;
        int reusable;
    } rc[] = {
        {"hello", SLUICE_HTTP_BODY_LENGTH, 5, 1},
        {"hello+", SLUICE_HTTP_BODY_LENGTH, 5, 0},  /* a byte left over */
        {"hel", SLUICE_HTTP_BODY_LENGTH, 5, 0},     /* truncated */
        {"", SLUICE_HTTP_BODY_NONE, 0, 1},          /* HEAD, 204, 304 */
        {"5\r\nhello\r\n0\r\nA: b\r\n\r\n", SLUICE_HTTP_BODY_CHUNKED, 0, 1},
        {"5\r\nhello\r\n0\r\n\r\nX", SLUICE_HTTP_BODY_CHUNKED, 0, 0},
        {"5\r\nhello\r\nZ\r\n\r\n", SLUICE_HTTP_BODY_CHUNKED, 0, 0}, /* malformed */
        {"hello", SLUICE_HTTP_BODY_CLOSE, 0, 0},    /* ended by the close */
    };
    for (size_t i = 0; i < sizeof rc / sizeof rc[0]; i++) {
        sluice_io *io;
        sluice_reader *r;
        REQUIRE(sluice__io_mem_new(T_POOL, rc[i].in, strlen(rc[i].in), 0, 0, &io) == 0);
        REQUIRE(sluice_reader_new(T_POOL, io, NULL, &r) == 0);
        sluice_http_framing f = {rc[i].kind, rc[i].len};
        sluice_stream *s;
        REQUIRE(sluice_body_new(T_POOL, r, &f, NULL, &s) == 0);
        EXPECT_EQ(sluice_body_reusable(s), 0); /* not before its end */
        drain_body(s);
        if (sluice_body_reusable(s) != rc[i].reusable)
            harness_fail(__FILE__, __LINE__, "case %zu (%s): reusable %d", i, rc[i].in,
                         sluice_body_reusable(s));
        sluice_stream_close(s);
        sluice_reader_close(r);
        sluice_io_close(io);
    }
    sluice_stream *m;
    REQUIRE(sluice_memstream_new(T_POOL, NULL, 0, 0, &m) == 0);
    drain_body(m);
    EXPECT_EQ(sluice_body_reusable(m), 0); /* not a body stream */
    sluice_stream_close(m);
}
