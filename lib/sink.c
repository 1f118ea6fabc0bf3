/*
 * sink.c — the sink contract (states, sticky errors, byte count) and the
 * vector sink, which keeps the views it is given without copying them.
 */
#include "internal.h"

#include <string.h>

/* ---- contract ------------------------------------------------------------ */

sluice_poll sluice_sink_poll_write(sluice_sink *k, sluice_bytes *chunk)
{
    if (k->_error.code)
        return SLUICE_ERROR;
    if (k->_state != SLUICE_SINK_OPEN)
        return sluice_sink_fail(k, SLUICE_ECLOSED, "write after finish or abort");
    if (chunk->len == 0) {
        sluice_bytes_release(chunk);
        return SLUICE_READY;
    }
    size_t len = chunk->len;
    sluice_poll r = k->vt->poll_write(k, chunk);
    if (r == SLUICE_READY)
        k->_written += len;
    return r;
}

sluice_poll sluice_sink_flush(sluice_sink *k)
{
    if (k->_error.code)
        return SLUICE_ERROR;
    if (k->_state == SLUICE_SINK_ABORTED)
        return sluice_sink_fail(k, SLUICE_EABORTED, NULL);
    if (k->_state == SLUICE_SINK_FINISHED)
        return SLUICE_READY;
    return k->vt->flush(k);
}

sluice_poll sluice_sink_finish(sluice_sink *k)
{
    if (k->_error.code)
        return SLUICE_ERROR;
    if (k->_state == SLUICE_SINK_ABORTED)
        return sluice_sink_fail(k, SLUICE_EABORTED, NULL);
    if (k->_state == SLUICE_SINK_FINISHED)
        return SLUICE_READY;
    k->_state = SLUICE_SINK_FINISHING;
    sluice_poll r = k->vt->finish(k);
    if (r == SLUICE_READY)
        k->_state = SLUICE_SINK_FINISHED;
    return r;
}

void sluice_sink_abort(sluice_sink *k)
{
    if (k->_state == SLUICE_SINK_ABORTED || k->_state == SLUICE_SINK_FINISHED)
        return;
    k->_state = SLUICE_SINK_ABORTED;
    k->vt->abort(k);
}

void sluice_sink_ready(sluice_sink *k, sluice_interest *want)
{
    want->fd = -1;
    want->events = 0;
    want->deadline_ms = -1;
    if (!k->_error.code && k->vt->ready)
        k->vt->ready(k, want);
}

size_t sluice_sink_buffered(const sluice_sink *k)
{
    return k->vt->buffered ? k->vt->buffered(k) : 0;
}

void sluice_sink_close(sluice_sink *k)
{
    if (!k)
        return;
    sluice_sink_abort(k);
    k->vt->close(k);
}

sluice_poll sluice_sink_fail(sluice_sink *k, int code, const char *why)
{
    sluice__error_set(&k->_error, code, why, k->_written);
    return SLUICE_ERROR;
}

/* ---- vector sink --------------------------------------------------------- */

typedef struct vecsink {
    sluice_sink base;
    sluice_bytes *chunks;
    size_t n, cap;
    int blocked;
} vecsink;

static sluice_poll vec_write(sluice_sink *k, sluice_bytes *chunk)
{
    vecsink *v = (vecsink *)k;
    if (v->blocked)
        return SLUICE_PENDING;
    int rc = sluice__grow(k->pool, (void **)&v->chunks, &v->cap, v->n + 1, sizeof *v->chunks);
    if (rc < 0)
        return sluice_sink_fail(k, rc, NULL);
    v->chunks[v->n++] = *chunk;
    *chunk = (sluice_bytes){0};
    return SLUICE_READY;
}

static sluice_poll vec_flush(sluice_sink *k)
{
    return ((vecsink *)k)->blocked ? SLUICE_PENDING : SLUICE_READY;
}

static void vec_abort(sluice_sink *k)
{
    SLUICE__UNUSED(k); /* the chunks stay readable; the state says ABORTED */
}

static void vec_close(sluice_sink *k)
{
    vecsink *v = (vecsink *)k;
    for (size_t i = 0; i < v->n; i++)
        sluice_bytes_release(&v->chunks[i]);
    sluice__free(k->pool, v->chunks, v->cap * sizeof *v->chunks);
    sluice_pool_object_free(k->pool, v, sizeof *v);
}

static const sluice_sink_vtable vec_vt = {
    "vector", vec_write, vec_flush, vec_flush, vec_abort, NULL, NULL, vec_close,
};

int sluice_vecsink_new(sluice_pool *pool, sluice_sink **out)
{
    vecsink *v = sluice_pool_object_alloc(pool, sizeof *v);
    *out = NULL;
    if (!v)
        return SLUICE_ENOMEM;
    memset(v, 0, sizeof *v);
    v->base.vt = &vec_vt;
    v->base.pool = pool;
    *out = &v->base;
    return 0;
}

int sluice__vecsink_set_blocked(sluice_sink *k, int blocked)
{
    if (k->vt != &vec_vt)
        return SLUICE_EINVAL;
    ((vecsink *)k)->blocked = blocked != 0;
    return 0;
}

int sluice_vecsink_chunks(const sluice_sink *k, const sluice_bytes **chunks, size_t *n)
{
    if (k->vt != &vec_vt)
        return SLUICE_EINVAL;
    *chunks = ((const vecsink *)k)->chunks;
    *n = ((const vecsink *)k)->n;
    return 0;
}

ssize_t sluice__vecsink_copy(const sluice_sink *k, void *buf, size_t cap)
{
    if (k->vt != &vec_vt)
        return SLUICE_EINVAL;
    const vecsink *v = (const vecsink *)k;
    size_t total = 0;
    for (size_t i = 0; i < v->n; i++) {
        const sluice_bytes *c = &v->chunks[i];
        if (total < cap)
            memcpy((char *)buf + total, c->data, c->len < cap - total ? c->len : cap - total);
        total += c->len;
    }
    return (ssize_t)total;
}
