/*
 * writer.c — chunked, length and raw sinks over a sluice_io.
 *
 * Everything waiting to go out is one ring of entries {prefix, view,
 * suffix}: a payload chunk (prefix = its size line and suffix = CRLF when
 * chunked), the head (a view alone), or the terminator ("0\r\n", trailers,
 * "\r\n"). A flush turns the ring into one iovec array and writes it with a
 * single writev; a short write only advances `done` in the first entries, so
 * resuming needs no bookkeeping beyond that. The ring holds up to
 * max_chunks payload entries plus the head and the terminator, so the
 * iovec array (three per entry, at most 774) stays under IOV_MAX. Both start
 * with room for FIRST_CHUNKS payload entries and double as a body queues
 * more: a writer that carries a head and a small body (most of them) costs
 * a few hundred bytes, not the 7 KiB of a full queue, and a growth that
 * finds no memory only means an earlier write.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define DEFAULT_CHUNKS 64u
#define MAX_CHUNKS 256u
#define FIRST_CHUNKS 4u
#define DEFAULT_BYTES (256u * 1024u)

enum mode { M_CHUNKED, M_LENGTH, M_RAW };

typedef struct entry {
    sluice_bytes data;
    size_t done;            /* bytes of pre + data + post already written */
    unsigned char pre_len, post_len;
    bool payload;
    char pre[21];           /* up to 16 hex digits + CRLF, or "0\r\n" */
} entry;

typedef struct writer {
    sluice_sink base;
    sluice_io *io;
    enum mode mode;
    entry *ring;
    struct iovec *iov;
    size_t cap, head, n;     /* ring capacity, first index, count */
    unsigned max_chunks;
    size_t max_bytes;
    size_t queued;           /* payload bytes in the ring */
    size_t npayload;         /* payload entries in the ring */
    uint64_t length;         /* M_LENGTH: declared */
    sluice_bytes trailers;
    bool terminator_queued;
    bool want_write;         /* last write ended on -EAGAIN */
    sluice__idle idle;
} writer;

static entry *at(const writer *w, size_t i);
static entry *push(writer *w);
static int grow(writer *w);
static sluice_poll write_out(writer *w, bool all);
static void drop_all(writer *w);

/* ---- sink ---------------------------------------------------------------- */

static sluice_poll w_write(sluice_sink *k, sluice_bytes *chunk)
{
    writer *w = (writer *)k;
    if (w->mode == M_LENGTH && chunk->len > w->length - k->_written)
        return sluice_sink_fail(k, SLUICE_ETOOBIG, "write past the declared length");
    /* Full: write until there is room or the io says -EAGAIN. A write that
     * made progress but left the queue full is no reason to wait: PENDING
     * must come with a write interest, or the host waits for nothing. */
    while (w->npayload >= w->max_chunks || w->queued >= w->max_bytes ||
           (w->npayload >= w->cap - 2 && grow(w) < 0)) {
        sluice_poll r = write_out(w, false);
        if (r != SLUICE_READY)
            return r;
    }
    entry *e = push(w);
    e->data = *chunk;
    e->payload = true;
    if (w->mode == M_CHUNKED) {
        /* size line: hex digits, most significant first */
        size_t len = chunk->len, nd = 0;
        char tmp[16];
        do {
            tmp[nd++] = "0123456789abcdef"[len & 15];
            len >>= 4;
        } while (len);
        for (size_t i = 0; i < nd; i++)
            e->pre[i] = tmp[nd - 1 - i];
        e->pre[nd] = '\r';
        e->pre[nd + 1] = '\n';
        e->pre_len = (unsigned char)(nd + 2);
        e->post_len = 2;
    }
    w->queued += chunk->len;
    w->npayload++;
    *chunk = (sluice_bytes){0};
    return SLUICE_READY;
}

static sluice_poll w_flush(sluice_sink *k)
{
    return write_out((writer *)k, true);
}

static sluice_poll w_finish(sluice_sink *k)
{
    writer *w = (writer *)k;
    if (w->mode == M_LENGTH && k->_written < w->length)
        return sluice_sink_fail(k, SLUICE_ETRUNCATED, "finished before the declared length");
    if (w->mode == M_CHUNKED && !w->terminator_queued) {
        entry *e = push(w);
        memcpy(e->pre, "0\r\n", 3);
        e->pre_len = 3;
        e->data = w->trailers;
        e->post_len = 2;
        w->trailers = (sluice_bytes){0};
        w->terminator_queued = true;
    }
    return write_out(w, true);
}

static void w_abort(sluice_sink *k)
{
    writer *w = (writer *)k;
    drop_all(w);
    sluice_io_shutdown(w->io); /* the peer sees the body end early */
}

static void w_ready(sluice_sink *k, sluice_interest *want)
{
    writer *w = (writer *)k;
    if (w->want_write)
        sluice__io_ready(w->io, SLUICE_WANT_WRITE, want);
    want->deadline_ms = sluice__idle_deadline(&w->idle);
}

static size_t w_buffered(const sluice_sink *k)
{
    return ((const writer *)k)->queued;
}

static void w_close(sluice_sink *k)
{
    writer *w = (writer *)k;
    drop_all(w);
    sluice_pool *p = k->pool;
    sluice__free(p, w->ring, w->cap * sizeof *w->ring);
    sluice__free(p, w->iov, 3 * w->cap * sizeof *w->iov);
    sluice_pool_object_free(p, w, sizeof *w);
}

static const sluice_sink_vtable writer_vt = {
    "writer", w_write, w_flush, w_finish, w_abort, w_ready, w_buffered, w_close,
};

/*
 * Writes queued entries until the ring is empty (or, with !all, until one
 * write made progress). READY / PENDING (after -EAGAIN) / ERROR.
 */
static sluice_poll write_out(writer *w, bool all)
{
    if (w->want_write && sluice__idle_write_stalled(&w->idle, w->io))
        return sluice_sink_fail(&w->base, SLUICE_ETIMEDOUT, NULL);
    w->want_write = false;
    while (w->n) {
        int niov = 0;
        for (size_t i = 0; i < w->n; i++) {
            entry *e = at(w, i);
            size_t skip = e->done;
            const void *part[3] = {e->pre, e->data.data, "\r\n"};
            size_t plen[3] = {e->pre_len, e->data.len, e->post_len};
            for (int j = 0; j < 3; j++) {
                if (skip >= plen[j]) {
                    skip -= plen[j];
                    continue;
                }
                w->iov[niov].iov_base = (char *)part[j] + skip;
                w->iov[niov++].iov_len = plen[j] - skip;
                skip = 0;
            }
        }
        ssize_t got = sluice_io_writev(w->io, w->iov, niov);
        if (got == -EAGAIN) {
            w->want_write = true;
            if (!sluice__idle_pending(&w->idle))
                return sluice_sink_fail(&w->base, SLUICE_ETIMEDOUT, NULL);
            return SLUICE_PENDING;
        }
        if (got < 0)
            return sluice_sink_fail(&w->base, (int)got, NULL);
        sluice__idle_progress(&w->idle);
        size_t left = (size_t)got;
        while (left) {
            entry *e = at(w, 0);
            size_t rest = e->pre_len + e->data.len + e->post_len - e->done;
            if (left < rest) {
                e->done += left;
                break;
            }
            left -= rest;
            if (e->payload) {
                w->queued -= e->data.len;
                w->npayload--;
            }
            sluice_bytes_release(&e->data);
            w->head = w->head + 1 == w->cap ? 0 : w->head + 1;
            w->n--;
        }
        if (!all)
            break;
    }
    return SLUICE_READY;
}

/* ---- constructors -------------------------------------------------------- */

static int writer_new(sluice_pool *pool, sluice_io *io, enum mode mode, sluice_bytes *head,
                      const sluice_writer_config *cfg, sluice_sink **out)
{
    *out = NULL;
    sluice_writer_config c = {0};
    if (cfg)
        c = *cfg;
    int rc = SLUICE_EINVAL;
    if (c.max_chunks > MAX_CHUNKS)
        goto fail;
    rc = SLUICE_ENOMEM;
    writer *w = sluice_pool_object_alloc(pool, sizeof *w);
    if (!w)
        goto fail;
    memset(w, 0, sizeof *w);
    w->max_chunks = c.max_chunks ? c.max_chunks : DEFAULT_CHUNKS;
    w->cap = (w->max_chunks < FIRST_CHUNKS ? w->max_chunks : FIRST_CHUNKS) + 2;
    w->ring = sluice__alloc(pool, w->cap * sizeof *w->ring);
    w->iov = sluice__alloc(pool, 3 * w->cap * sizeof *w->iov);
    if (!w->ring || !w->iov) {
        sluice__free(pool, w->ring, w->cap * sizeof *w->ring);
        sluice__free(pool, w->iov, 3 * w->cap * sizeof *w->iov);
        sluice_pool_object_free(pool, w, sizeof *w);
        goto fail;
    }
    w->base.vt = &writer_vt;
    w->base.pool = pool;
    w->io = io;
    w->mode = mode;
    w->max_bytes = c.max_bytes ? c.max_bytes : DEFAULT_BYTES;
    sluice__idle_init(&w->idle, c.idle_timeout_ms);
    if (head && head->len)
        push(w)->data = *head;
    else if (head)
        sluice_bytes_release(head);
    if (head)
        *head = (sluice_bytes){0};
    *out = &w->base;
    return 0;
fail:
    if (head)
        sluice_bytes_release(head);
    return rc;
}

int sluice_writer_new(sluice_pool *pool, sluice_io *io, const sluice_http_framing *framing,
                      sluice_bytes *head, const sluice_writer_config *cfg, sluice_sink **out)
{
    static const enum mode modes[] = {
        [SLUICE_HTTP_BODY_NONE] = M_LENGTH, /* of length 0: a head alone */
        [SLUICE_HTTP_BODY_LENGTH] = M_LENGTH,
        [SLUICE_HTTP_BODY_CHUNKED] = M_CHUNKED,
        [SLUICE_HTTP_BODY_CLOSE] = M_RAW,
    };
    if ((unsigned)framing->body > SLUICE_HTTP_BODY_CLOSE) {
        *out = NULL;
        if (head)
            sluice_bytes_release(head);
        return SLUICE_EINVAL;
    }
    int rc = writer_new(pool, io, modes[framing->body], head, cfg, out);
    if (rc == 0 && framing->body == SLUICE_HTTP_BODY_LENGTH)
        ((writer *)*out)->length = framing->length;
    return rc;
}

int sluice_writer_trailers(sluice_sink *k, sluice_bytes *fields)
{
    int rc = 0;
    writer *w = (writer *)k;
    if (k->vt != &writer_vt || w->mode != M_CHUNKED ||
        (fields->len && (fields->len < 2 || memcmp(fields->data + fields->len - 2, "\r\n", 2))))
        rc = SLUICE_EINVAL;
    else if (k->_state != SLUICE_SINK_OPEN)
        rc = SLUICE_ECLOSED;
    if (rc < 0) {
        sluice_bytes_release(fields);
        return rc;
    }
    sluice_bytes_release(&w->trailers);
    w->trailers = *fields;
    *fields = (sluice_bytes){0};
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static entry *at(const writer *w, size_t i)
{
    size_t k = w->head + i;
    return &w->ring[k >= w->cap ? k - w->cap : k];
}

/* Room for twice the payload entries (at most max_chunks), the queue kept in
 * order. 0, or SLUICE_ENOMEM with the writer as it was. */
static int grow(writer *w)
{
    size_t pc = w->cap - 2, npc = pc * 2 < w->max_chunks ? pc * 2 : w->max_chunks;
    assert(npc > pc); /* the caller grows only below max_chunks */
    sluice_pool *p = w->base.pool;
    size_t cap = npc + 2;
    entry *ring = sluice__alloc(p, cap * sizeof *ring);
    struct iovec *iov = sluice__alloc(p, 3 * cap * sizeof *iov);
    if (!ring || !iov) {
        sluice__free(p, ring, cap * sizeof *ring);
        sluice__free(p, iov, 3 * cap * sizeof *iov);
        return SLUICE_ENOMEM;
    }
    for (size_t i = 0; i < w->n; i++)
        ring[i] = *at(w, i); /* iovecs are built at each write: nothing points here */
    sluice__free(p, w->ring, w->cap * sizeof *w->ring);
    sluice__free(p, w->iov, 3 * w->cap * sizeof *w->iov);
    w->ring = ring;
    w->iov = iov;
    w->cap = cap;
    w->head = 0;
    return 0;
}

/* A zeroed entry at the back. The caller guarantees room (see w_write). */
static entry *push(writer *w)
{
    entry *e = at(w, w->n++);
    memset(e, 0, sizeof *e);
    return e;
}

static void drop_all(writer *w)
{
    while (w->n) {
        sluice_bytes_release(&at(w, 0)->data);
        w->head = w->head + 1 == w->cap ? 0 : w->head + 1;
        w->n--;
    }
    w->queued = 0;
    w->npayload = 0;
    sluice_bytes_release(&w->trailers);
}
