/*
 * fuzz_multipart.c — libFuzzer target for the multipart splitter.
 *
 * Input: byte 0 picks the boundary and the limits, byte 1 seeds the chunk
 * sizes, byte 2 picks options (PENDING between chunks, how parts are
 * consumed); the rest is the body. The body is split twice: once whole and
 * once in the chosen chunks. Both runs must agree on every part (headers and
 * data, byte for byte), on the final result and on the error offset; every
 * data chunk must be a view into the input; nothing may stay allocated.
 */
#include "sluice.h"
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const boundaries[] = {
    "b", "AaB03x", "----WebKitFormBoundary7MA4YWxkTrZu0gW",
    "0123456789012345678901234567890123456789012345678901234567890123456789",
};

typedef struct result {
    unsigned char *log; /* parts, headers and data, serialised */
    size_t len, cap;
    int err;
    uint64_t off;
} result;

static void put(result *r, const void *p, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2 + 256;
        r->log = realloc(r->log, r->cap);
        if (!r->log)
            abort();
    }
    if (n)
        memcpy(r->log + r->len, p, n);
    r->len += n;
}

static void put_str(result *r, const char *s, size_t n)
{
    unsigned char tag = s ? 1 : 0;
    put(r, &tag, 1);
    put(r, &n, sizeof n);
    if (s)
        put(r, s, n);
}

static void split(sluice_pool *pool, const sluice_bytes *body, const uint8_t *cuts,
                  size_t ncuts, unsigned flags, unsigned mode, const char *bnd,
                  const sluice_multipart_limits *lim, result *res)
{
    sluice_bytes *chunks = malloc((body->len + 1) * sizeof *chunks);
    size_t n = 0;
    for (size_t pos = 0, i = 0; pos < body->len; i++) {
        size_t want = ncuts ? 1 + (size_t)cuts[i % ncuts] % 40 : body->len;
        if (want > body->len - pos)
            want = body->len - pos;
        sluice_bytes_slice(body, pos, want, &chunks[n++]);
        pos += want;
    }
    sluice_stream *s;
    sluice_multipart *m;
    if (sluice_memstream_new(pool, chunks, n, flags, &s) < 0 ||
        sluice_multipart_new(pool, s, bnd, strlen(bnd), lim, &m) < 0)
        abort();
    free(chunks);
    sluice_stream *cat = NULL;
    if (mode == 2 && sluice_multipart_concat_new(m, &cat) < 0)
        abort();
    for (size_t spins = 0;; spins++) {
        if (spins > 100000000)
            abort(); /* no progress */
        sluice_stream *p = cat;
        sluice_poll r = SLUICE_READY;
        if (!cat) {
            r = mode == 3 ? sluice_multipart_find(m, "a", 1, &p) : sluice_multipart_next(m, &p);
            if (r == SLUICE_PENDING)
                continue;
            if (r != SLUICE_READY)
                break;
            const sluice_part *info = sluice_multipart_info(p);
            if (!info)
                abort();
            put_str(res, info->name, info->name_len);
            put_str(res, info->filename, info->filename_len);
            put_str(res, info->content_type, info->content_type_len);
            for (size_t i = 0; i < info->nheaders; i++) {
                put_str(res, info->headers[i].name, info->headers[i].name_len);
                put_str(res, info->headers[i].value, info->headers[i].value_len);
            }
            if (mode == 1 && info->index % 2) { /* skip every other part */
                sluice_stream_close(p);
                continue;
            }
        }
        sluice_bytes c;
        while ((r = sluice_stream_poll_next(p, &c)) != SLUICE_EOF && r != SLUICE_ERROR) {
            if (r == SLUICE_PENDING)
                continue;
            if (c.owner != body->owner || c.data < body->data ||
                c.data + c.len > body->data + body->len)
                abort(); /* a copy, or a view of something else */
            put(res, c.data, c.len);
            sluice_bytes_release(&c);
        }
        if (r == SLUICE_ERROR && cat) { /* the concatenation reports the error */
            res->err = sluice_stream_error(cat, NULL);
            res->off = t_stream_where(cat);
        }
        sluice_stream_close(p);
        if (cat)
            break;
        put(res, "|", 1);
    }
    if (!cat) {
        res->err = sluice_multipart_error(m, NULL);
        res->off = t_multipart_where(m);
    }
    if (res->err && res->err != sluice_multipart_error(m, NULL))
        abort();
    sluice_multipart_close(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned pick = data[0], seed = data[1], opt = data[2];
    data += 3;
    size -= 3;
    const char *bnd = boundaries[pick % 4];
    sluice_multipart_limits lim = {0};
    if (pick & 0x10)
        lim.max_header_bytes = 1 + (pick >> 5) * 8;
    if (pick & 0x20)
        lim.max_part_bytes = (pick >> 6) * 7;
    if (pick & 0x40)
        lim.max_parts = 1 + (pick >> 7);
    if (pick & 0x80)
        lim.max_body_bytes = 1 + (size * (seed & 7)) / 8;
    unsigned flags = opt & 1 ? SLUICE_MEMSTREAM_PENDING : 0;
    if (opt & 2)
        flags |= SLUICE_MEMSTREAM_TRUNCATED;
    unsigned mode = (opt >> 2) & 3;

    sluice_pool *pool;
    if (sluice_pool_new(NULL, &pool) < 0)
        abort();
    sluice_bytes body = {0};
    if (size && sluice_bytes_copy_from(pool, data, size, &body) < 0)
        abort();
    uint8_t cuts[16];
    for (size_t i = 0; i < sizeof cuts; i++) {
        seed = seed * 1103515245u + 12345u;
        cuts[i] = (uint8_t)(seed >> 16);
    }
    result a = {0}, b = {0};
    split(pool, &body, NULL, 0, flags & ~SLUICE_MEMSTREAM_PENDING, mode, bnd, &lim, &a);
    split(pool, &body, cuts, opt & 0x10 ? 1 : sizeof cuts, flags, mode, bnd, &lim, &b);
    if (a.err != b.err || a.off != b.off || a.len != b.len ||
        (a.len && memcmp(a.log, b.log, a.len))) {
        fprintf(stderr, "whole: %s at %llu, %zu log bytes; chunked: %s at %llu, %zu\n",
                sluice_err_name(a.err), (unsigned long long)a.off, a.len, sluice_err_name(b.err),
                (unsigned long long)b.off, b.len);
        abort(); /* the chunking changed the outcome */
    }
    free(a.log);
    free(b.log);
    sluice_bytes_release(&body);
    sluice_pool_counters st;
    sluice_pool_stats(pool, &st);
    if (st.blocks_live || st.objects_live)
        abort(); /* leak */
    sluice_pool_close(pool);
    return 0;
}
