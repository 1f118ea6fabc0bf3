/*
 * stream.c — the stream contract (sticky errors, zeroed outputs), and the
 * two stock streams: the memory stream and the tap.
 *
 * The public wrappers enforce the contract once, so implementations stay
 * small: after ERROR or EOF an implementation is never polled again.
 */
#include "internal.h"

#include <string.h>
#include <time.h>

int64_t sluice_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- contract ------------------------------------------------------------ */

sluice_poll sluice_stream_poll_next(sluice_stream *s, sluice_bytes *out)
{
    *out = (sluice_bytes){0};
    if (s->_error.code)
        return SLUICE_ERROR;
    if (s->_eof)
        return SLUICE_EOF;
    sluice_poll r;
    for (;;) {
        r = s->vt->poll_next(s, out);
        if (r != SLUICE_READY || out->len)
            break;
        sluice_bytes_release(out); /* READY chunks are never empty: skip */
    }
    if (r == SLUICE_EOF)
        s->_eof = 1;
    else if (r == SLUICE_ERROR) /* in case an implementation forgot to say why */
        sluice__error_set(&s->_error, SLUICE_EINVAL, NULL, 0);
    return r;
}

void sluice_stream_ready(sluice_stream *s, sluice_interest *want)
{
    want->fd = -1;
    want->events = 0;
    want->deadline_ms = -1;
    if (!s->_error.code && !s->_eof && s->vt->ready)
        s->vt->ready(s, want);
}

void sluice_stream_close(sluice_stream *s)
{
    if (s)
        s->vt->close(s);
}

sluice_poll sluice_stream_fail(sluice_stream *s, int code, const char *why, uint64_t offset)
{
    sluice__error_set(&s->_error, code, why, offset);
    return SLUICE_ERROR;
}

/* ---- memory stream ------------------------------------------------------- */

typedef struct memstream {
    sluice_stream base;
    sluice_bytes *chunks;
    size_t n, next;
    unsigned flags;
    int yielded_pending;  /* PENDING already returned before chunk `next` */
    uint64_t offset;
} memstream;

static sluice_poll mem_poll(sluice_stream *s, sluice_bytes *out)
{
    memstream *m = (memstream *)s;
    if (m->next == m->n) {
        if (m->flags & SLUICE_MEMSTREAM_TRUNCATED)
            return sluice_stream_fail(s, SLUICE_ETRUNCATED, NULL, m->offset);
        return SLUICE_EOF;
    }
    if ((m->flags & SLUICE_MEMSTREAM_PENDING) && m->next > 0 && !m->yielded_pending) {
        m->yielded_pending = 1;
        return SLUICE_PENDING;
    }
    m->yielded_pending = 0;
    *out = m->chunks[m->next];
    m->chunks[m->next++] = (sluice_bytes){0};
    m->offset += out->len;
    return SLUICE_READY;
}

static void mem_close(sluice_stream *s)
{
    memstream *m = (memstream *)s;
    for (size_t i = m->next; i < m->n; i++)
        sluice_bytes_release(&m->chunks[i]);
    sluice__free(s->pool, m->chunks, m->n * sizeof *m->chunks);
    sluice_pool_object_free(s->pool, m, sizeof *m);
}

static const sluice_stream_vtable mem_vt = {"memory", mem_poll, NULL, mem_close};

int sluice_memstream_new(sluice_pool *pool, sluice_bytes *chunks, size_t n, unsigned flags,
                         sluice_stream **out)
{
    *out = NULL;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += chunks[i].len > 0;
    memstream *m = sluice_pool_object_alloc(pool, sizeof *m);
    sluice_bytes *arr = kept ? sluice__alloc(pool, kept * sizeof *arr) : NULL;
    if (!m || (kept && !arr)) {
        sluice__free(pool, arr, kept * sizeof *arr);
        sluice_pool_object_free(pool, m, sizeof *m);
        for (size_t i = 0; i < n; i++)
            sluice_bytes_release(&chunks[i]);
        return SLUICE_ENOMEM;
    }
    memset(m, 0, sizeof *m);
    m->base.vt = &mem_vt;
    m->base.pool = pool;
    m->chunks = arr;
    m->flags = flags;
    for (size_t i = 0; i < n; i++) {
        if (chunks[i].len)
            arr[m->n++] = chunks[i];
        else
            sluice_bytes_release(&chunks[i]);
        chunks[i] = (sluice_bytes){0};
    }
    *out = &m->base;
    return 0;
}

ssize_t sluice__memstream_yielded(const sluice_stream *s)
{
    if (s->vt != &mem_vt)
        return SLUICE_EINVAL;
    return (long)((const memstream *)s)->next;
}

/* ---- tap ----------------------------------------------------------------- */

typedef struct tap {
    sluice_stream base;
    sluice_stream *inner;
    sluice_tap_fn fn;
    void *ud;
} tap;

static sluice_poll tap_poll(sluice_stream *s, sluice_bytes *out)
{
    tap *t = (tap *)s;
    sluice_poll r = sluice_stream_poll_next(t->inner, out);
    if (r == SLUICE_READY)
        t->fn(t->ud, out);
    else if (r == SLUICE_ERROR)
        s->_error = t->inner->_error;
    return r;
}

static void tap_ready(sluice_stream *s, sluice_interest *want)
{
    sluice_stream_ready(((tap *)s)->inner, want);
}

static void tap_close(sluice_stream *s)
{
    sluice_stream_close(((tap *)s)->inner);
    sluice_pool_object_free(s->pool, s, sizeof(tap));
}

static const sluice_stream_vtable tap_vt = {"tap", tap_poll, tap_ready, tap_close};

int sluice_tap_new(sluice_pool *pool, sluice_stream *inner, sluice_tap_fn fn, void *ud,
                   sluice_stream **out)
{
    *out = NULL;
    tap *t = sluice_pool_object_alloc(pool, sizeof *t);
    if (!t) {
        sluice_stream_close(inner);
        return SLUICE_ENOMEM;
    }
    memset(t, 0, sizeof *t);
    t->base.vt = &tap_vt;
    t->base.pool = pool;
    t->inner = inner;
    t->fn = fn;
    t->ud = ud;
    *out = &t->base;
    return 0;
}
