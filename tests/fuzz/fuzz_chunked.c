/*
 * fuzz_chunked.c — the chunked decoder against a plain reference decoder.
 *
 * Input: byte 0 chooses the reader's block size and blocks per readv,
 * byte 1 whether reads alternate with EAGAIN, bytes 2..9 are a cycle of read
 * sizes; the rest is the body as the peer sends it. The decoder runs through
 * the real reader over a scripted transport; its payload must equal the
 * reference's, and both must agree on success (and on the bytes left for
 * the next reader), or both fail.
 */
#include "sluice.h"
#include "testing.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct script_io {
    sluice_io base;
    const uint8_t *data;
    size_t len, pos;
    uint8_t sizes[8];
    unsigned step;
    int again, flip;
} script_io;

static ssize_t s_readv(sluice_io *io, const struct iovec *iov, int n)
{
    script_io *s = (script_io *)io;
    if (s->pos == s->len)
        return 0;
    if (s->again && (s->flip ^= 1))
        return -EAGAIN;
    size_t want = 1 + s->sizes[s->step++ % 8] * 3u, got = 0;
    if (want > s->len - s->pos)
        want = s->len - s->pos;
    for (int i = 0; i < n && got < want; i++) {
        size_t k = iov[i].iov_len < want - got ? iov[i].iov_len : want - got;
        memcpy(iov[i].iov_base, s->data + s->pos + got, k);
        got += k;
    }
    s->pos += got;
    return (ssize_t)got;
}

static ssize_t s_writev(sluice_io *io, const struct iovec *iov, int n)
{
    (void)io, (void)iov, (void)n;
    return -EPIPE;
}

static int s_shutdown(sluice_io *io)
{
    (void)io;
    return 0;
}

static void s_close(sluice_io *io)
{
    (void)io;
}

static const sluice_io_vtable script_vt = {"script", s_readv, s_writev, s_shutdown, NULL,
                                           s_close};

/* ---- reference decoder: obvious code, one byte at a time ------------------ */

static int tch(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hexd(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int ctl(int c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Returns bytes consumed (>= 0) with the payload in out, or -1 on any error
 * (including truncation). */
static long ref_decode(const uint8_t *p, size_t n, uint8_t *out, size_t *out_len)
{
    size_t i = 0;
    *out_len = 0;
#define NEED(k) if (i + (k) > n) return -1
    for (;;) {
        uint64_t size = 0;
        int digits = 0;
        while (i < n && hexd(p[i]) >= 0) {
            if (++digits > 16 || size > ((uint64_t)INT64_MAX - (uint64_t)hexd(p[i])) / 16)
                return -1;
            size = size * 16 + (uint64_t)hexd(p[i++]);
        }
        if (!digits)
            return -1;
        size_t ext = 0;
        /* chunk-ext */
        for (;;) {
            size_t j = i;
            while (j < n && (p[j] == ' ' || p[j] == '\t'))
                j++;
            if (j < n && p[j] == ';') {
                j++;
                while (j < n && (p[j] == ' ' || p[j] == '\t'))
                    j++;
                size_t k = j;
                while (j < n && tch(p[j]))
                    j++;
                if (j == k)
                    return -1;
                size_t after = j;
                while (j < n && (p[j] == ' ' || p[j] == '\t'))
                    j++;
                if (j < n && p[j] == '=') {
                    j++;
                    while (j < n && (p[j] == ' ' || p[j] == '\t'))
                        j++;
                    if (j < n && p[j] == '"') {
                        j++;
                        while (j < n && p[j] != '"') {
                            if (p[j] == '\\')
                                j++;
                            if (j >= n || ctl(p[j]))
                                return -1;
                            j++;
                        }
                        if (j >= n)
                            return -1;
                        j++;
                    } else {
                        k = j;
                        while (j < n && tch(p[j]))
                            j++;
                        if (j == k)
                            return -1;
                    }
                } else {
                    j = after;
                }
                ext += j - i;
                i = j;
                continue;
            }
            break;
        }
        if (ext > 4096)
            return -1;
        NEED(2);
        if (p[i] != '\r' || p[i + 1] != '\n')
            return -1;
        i += 2;
        if (size == 0)
            break;
        NEED(size + 2);
        memcpy(out + *out_len, p + i, size);
        *out_len += size;
        i += size;
        if (p[i] != '\r' || p[i + 1] != '\n')
            return -1;
        i += 2;
    }
    /* trailer section */
    size_t tbytes = 0;
    for (;;) {
        NEED(2);
        if (p[i] == '\r' && p[i + 1] == '\n')
            return (long)(i + 2);
        size_t s = i;
        while (i < n && p[i] != '\n')
            i++;
        if (i == n)
            return -1;
        i++;
        size_t len = i - s;
        tbytes += len;
        if (tbytes > 8192 || len < 2 || p[i - 2] != '\r')
            return -1;
        size_t e = i - 2, k = s;
        while (k < e && tch(p[k]))
            k++;
        if (k == s || k == e || p[k] != ':')
            return -1;
        for (k++; k < e; k++)
            if (ctl(p[k]) || p[k] == '\r')
                return -1;
    }
#undef NEED
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 10)
        return 0;
    static const size_t blocks[] = {64, 100, 512, 4096};
    sluice_pool_config pc = {.block_size = blocks[data[0] & 3]};
    sluice_pool *pool;
    if (sluice_pool_new(&pc, &pool) < 0)
        abort();
    script_io io = {.base = {&script_vt, pool, -1}, .data = data + 10, .len = size - 10,
                    .again = data[1] & 1};
    memcpy(io.sizes, data + 2, 8);
    sluice_reader_config rc = {.max_iov = 1 + ((data[0] >> 2) & 3)};
    sluice_reader *r;
    sluice_stream *s;
    if (sluice_reader_new(pool, &io.base, &rc, &r) < 0 ||
        sluice_body_new(pool, r, SLUICE_FRAMING_CHUNKED, NULL, &s) < 0)
        abort();
    uint8_t *got = malloc(size + 1), *want = malloc(size + 1);
    size_t got_len = 0, want_len;
    sluice_poll p;
    sluice_bytes b;
    while ((p = sluice_stream_poll_next(s, &b)) == SLUICE_READY || p == SLUICE_PENDING) {
        if (p == SLUICE_PENDING)
            continue;
        memcpy(got + got_len, b.data, b.len);
        got_len += b.len;
        sluice_bytes_release(&b);
    }
    long used = ref_decode(data + 10, size - 10, want, &want_len);
    if ((p == SLUICE_EOF) != (used >= 0))
        abort(); /* disagreement on validity */
    if (p == SLUICE_EOF) {
        if (got_len != want_len || memcmp(got, want, got_len))
            abort();
        /* the rest is for the next reader, byte for byte */
        if (sluice_reader_consumed(r) != (uint64_t)used)
            abort();
    } else {
        /* whatever was yielded before the error is a prefix of the input's
         * payload as far as it was valid: never more bytes than were sent */
        if (got_len > size)
            abort();
    }
    free(got);
    free(want);
    sluice_stream_close(s);
    sluice_reader_close(r);
    sluice_pool_counters st;
    sluice_pool_stats(pool, &st);
    if (st.blocks_live || st.objects_live)
        abort();
    sluice_pool_close(pool);
    return 0;
}
