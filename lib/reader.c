/*
 * reader.c — socket bytes into pool blocks, out as views.
 *
 * The unread bytes live in a ring of segments {block, start, end}. Every
 * segment but the first starts at offset 0 and every segment but the last is
 * full (readv fills its iovecs in order), so the ring never holds more than
 * max_buffered / block_size + 2 segments plus the fresh blocks of one readv;
 * it is sized once at creation and never grows.
 *
 * A read first offers the free tail of the last block, then fresh blocks up
 * to max_iov iovecs: small reads pack into one block instead of pinning a
 * 64 KiB block per packet until the writer releases it, and a fast peer can
 * still deliver several blocks per system call. Fresh blocks the read did
 * not reach go straight back to the pool, and so does the one block of a
 * reader whose peer has nothing more for now, once nothing else holds it.
 *
 * Under the pool's budget a reader that cannot read into what it holds
 * queues for a block (lib/bytes.c): as a holder (it may use the reserve)
 * when it holds a block, which may be the one thing between its consumer
 * and progress, else behind everybody. Extra iovecs of one readv are only
 * taken while the pool is under its cap, never queued for.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

#define DEFAULT_IOV 4u
#define MAX_IOV 64u

typedef struct seg {
    sluice_block *b;
    size_t start, end;
} seg;

struct sluice_reader {
    sluice_pool *pool;
    sluice_io *io;
    seg *ring;
    size_t cap, head, n;     /* ring capacity, first index, count */
    size_t avail;            /* unread bytes */
    size_t max_buffered;
    unsigned max_iov;
    int eof, err;
    int want_read;           /* last fill ended on -EAGAIN */
    size_t read_max;         /* 0, or the most one readv may take (a splicer
                                reading only framing: the rest stays in the
                                socket for splice(2)) */
    int pool_wait;           /* last fill is queued for a block */
    int queued;              /* w may be queued or hold a grant */
    int64_t pool_retry;      /* waiting without a wake hook: retry then */
    uint64_t consumed;
    sluice__head_clock clock; /* a head read under a time limit (head.c) */
    sluice__waiter w;
};

static seg *at(const sluice_reader *r, size_t i);
static void pop_front(sluice_reader *r);
static void pop_back(sluice_reader *r);
static int compact(sluice_reader *r);
static int take_waiting(sluice_reader *r, int holder, sluice_block **b);
static void let_go(sluice_reader *r);
static sluice_poll wait_memory(sluice_reader *r);
static sluice_poll fill(sluice_reader *r);

int sluice_reader_new(sluice_pool *pool, sluice_io *io, const sluice_reader_config *cfg,
                      sluice_reader **out)
{
    *out = NULL;
    sluice_reader_config c = {0};
    if (cfg)
        c = *cfg;
    if (c.max_iov > MAX_IOV)
        return SLUICE_EINVAL;
    if (c.max_iov == 0)
        c.max_iov = DEFAULT_IOV;
    size_t bs = sluice__pool_block_size(pool);
    if (c.max_buffered == 0)
        c.max_buffered = c.max_iov * bs;
    sluice_reader *r = sluice_pool_object_alloc(pool, sizeof *r);
    if (!r)
        return SLUICE_ENOMEM;
    memset(r, 0, sizeof *r);
    r->cap = c.max_buffered / bs + c.max_iov + 3;
    r->ring = sluice__alloc(pool, r->cap * sizeof *r->ring);
    if (!r->ring) {
        sluice_pool_object_free(pool, r, sizeof *r);
        return SLUICE_ENOMEM;
    }
    r->pool = pool;
    r->io = io;
    r->max_buffered = c.max_buffered;
    r->max_iov = c.max_iov;
    r->pool_retry = -1;
    r->clock.first_byte = r->clock.idle_since = r->clock.deadline = -1;
    r->w.token = c.wake_token ? c.wake_token : (void *)r;
    *out = r;
    return 0;
}

void sluice_reader_close(sluice_reader *r)
{
    if (!r)
        return;
    if (r->queued) /* first, so our own blocks are not granted to us */
        sluice__waiter_cancel(r->pool, &r->w);
    while (r->n)
        pop_front(r);
    sluice__free(r->pool, r->ring, r->cap * sizeof *r->ring);
    sluice_pool_object_free(r->pool, r, sizeof *r);
}

sluice_poll sluice_reader_fill(sluice_reader *r)
{
    if (r->err)
        return SLUICE_ERROR;
    if (r->eof)
        return SLUICE_EOF;
    r->want_read = 0;
    r->pool_wait = 0;
    r->pool_retry = -1;
    sluice_poll res = fill(r);
    if (!r->pool_wait && r->queued) {
        /* went on without the queue: let the next waiter have our turn */
        sluice__waiter_cancel(r->pool, &r->w);
        r->queued = 0;
    }
    return res;
}

/* Step helpers return GO_ON to let fill() continue, else its result. */
#define GO_ON ((sluice_poll)-1)

/* The reader's only block, all consumed: reuse it whole when nothing else
 * holds it; when it is full with its views still downstream (where they may
 * wait for more bytes: a delimiter across blocks), get the next block, from
 * the reserve if need be, or wait in the queue for one. */
static sluice_poll renew_home(sluice_reader *r)
{
    seg *h = at(r, 0);
    if (sluice__block_refs(h->b) == 1) {
        h->start = h->end = 0; /* and let go of downstream: reuse it whole */
        return GO_ON;
    }
    if (h->end < sluice_block_capacity(h->b))
        return GO_ON;
    sluice_block *b;
    int rc = take_waiting(r, 1, &b);
    if (rc == SLUICE_EPOOLFULL)
        return wait_memory(r);
    if (rc < 0) {
        r->err = rc;
        return SLUICE_ERROR;
    }
    pop_front(r);
    *at(r, r->n++) = (seg){b, 0, 0};
    return GO_ON;
}

/* Offers b's space from `from` on, at most what `room` leaves. */
static void add_iov(struct iovec *iov, int *niov, sluice_block *b, size_t from, size_t room,
                    size_t *offered)
{
    size_t space = sluice_block_capacity(b) - from;
    size_t left = room - *offered;
    iov[*niov].iov_base = sluice_block_data(b) + from;
    iov[(*niov)++].iov_len = space < left ? space : left;
    *offered += space;
}

/* A fresh block for the next iovec. The first one may come from room made
 * in our own block (compaction: then *made is set), the reserve or the
 * queue; extras only while the pool is under its cap. */
static int next_block(sluice_reader *r, int niov, sluice_block **b, int *made)
{
    if (niov) /* an extra: only under the cap */
        return sluice__block_take(r->pool, NULL, 0, b);
    if (!r->n) /* holding nothing: behind everybody */
        return take_waiting(r, 0, b);
    int rc = sluice__block_take(r->pool, NULL, 0, b);
    if (rc == SLUICE_EPOOLFULL && compact(r)) {
        *made = 1;
        return 0;
    }
    return rc == SLUICE_EPOOLFULL ? take_waiting(r, 1, b) : rc;
}

/* Fills iov with the free tail of the last block and fresh blocks, up to
 * max_iov iovecs and `room` bytes. GO_ON with at least one iovec, else the
 * result (waiting for memory, or an error). */
static sluice_poll offer(sluice_reader *r, struct iovec *iov, int *niov, size_t room)
{
    size_t offered = 0;
    if (r->n) {
        seg *t = at(r, r->n - 1);
        if (t->end < sluice_block_capacity(t->b))
            add_iov(iov, niov, t->b, t->end, room, &offered);
    }
    while ((unsigned)*niov < r->max_iov && offered < room) {
        sluice_block *b;
        int made = 0;
        int rc = next_block(r, *niov, &b, &made);
        if (made) { /* compacted: read into our own block's new tail */
            seg *t = at(r, r->n - 1);
            add_iov(iov, niov, t->b, t->end, room, &offered);
            break;
        }
        if (rc < 0 && *niov)
            break; /* read into what we have */
        if (rc == SLUICE_EPOOLFULL)
            return wait_memory(r); /* backpressure: views must come back */
        if (rc < 0) {
            r->err = rc;
            return SLUICE_ERROR;
        }
        *at(r, r->n++) = (seg){b, 0, 0};
        add_iov(iov, niov, b, 0, room, &offered);
    }
    return GO_ON;
}

/* Spreads the `got` bytes a readv put from segment first_fresh - 1 on, lets
 * untouched fresh blocks go, and turns the readv's result into fill's. */
static sluice_poll settle(sluice_reader *r, ssize_t got, size_t first_fresh)
{
    size_t left = got > 0 ? (size_t)got : 0;
    r->avail += left;
    for (size_t i = first_fresh ? first_fresh - 1 : 0; i < r->n && left; i++) {
        seg *s = at(r, i);
        size_t space = sluice_block_capacity(s->b) - s->end;
        size_t k = left < space ? left : space;
        s->end += k;
        left -= k;
    }
    while (r->n > first_fresh && at(r, r->n - 1)->end == 0)
        pop_back(r);
    if (got > 0)
        return SLUICE_READY;
    if (got == 0) {
        r->eof = 1;
        return SLUICE_EOF;
    }
    if (got != -EAGAIN) {
        r->err = (int)got;
        return SLUICE_ERROR;
    }
    let_go(r);
    r->want_read = 1;
    return SLUICE_PENDING;
}

/* Nothing unread and no view out: the block goes back to the pool (to
 * whoever waits for one) while the peer is quiet. */
static void let_go(sluice_reader *r)
{
    if (!r->avail && r->n == 1 && sluice__block_refs(at(r, 0)->b) == 1) {
        if (r->queued) { /* leave first, or the block comes back to us */
            sluice__waiter_cancel(r->pool, &r->w);
            r->queued = 0;
        }
        pop_front(r);
    }
}

void sluice_reader_idle(sluice_reader *r)
{
    if (r->err || r->eof || r->avail)
        return;
    if (r->queued) { /* no fill is waiting for memory any more */
        sluice__waiter_cancel(r->pool, &r->w);
        r->queued = 0;
    }
    r->pool_wait = 0;
    r->pool_retry = -1;
    let_go(r);
    r->want_read = 1;
}

static sluice_poll fill(sluice_reader *r)
{
    if (r->avail >= r->max_buffered)
        return SLUICE_READY;
    sluice_poll st = r->n == 1 && !r->avail ? renew_home(r) : GO_ON;
    if (st != GO_ON)
        return st;
    struct iovec iov[MAX_IOV];
    int niov = 0;
    size_t first_fresh = r->n;
    size_t room = r->max_buffered - r->avail;
    if (r->read_max && room > r->read_max)
        room = r->read_max;
    if ((st = offer(r, iov, &niov, room)) != GO_ON)
        return st;
    return settle(r, sluice_io_readv(r->io, iov, niov), first_fresh);
}

void sluice_reader_ready(const sluice_reader *r, sluice_interest *want)
{
    if (r->want_read)
        sluice__io_ready(r->io, SLUICE_WANT_READ, want);
    else if (r->pool_wait && sluice__pool_has_wake(r->pool))
        *want = (sluice_interest){-1, SLUICE_WANT_WAKE, -1};
    else
        *want = (sluice_interest){-1, 0, r->pool_retry};
    /* a head's deadline holds whatever the reader waits for: the host must
     * wake for it even while the reader waits for memory */
    int64_t d = r->clock.deadline;
    if (d >= 0 && (want->deadline_ms < 0 || d < want->deadline_ms))
        want->deadline_ms = d;
}

size_t sluice_reader_available(const sluice_reader *r)
{
    return r->avail;
}

int sluice_reader_peek(sluice_reader *r, size_t max, sluice_bytes *out)
{
    *out = (sluice_bytes){0};
    size_t want = max < r->avail ? max : r->avail;
    if (want == 0)
        return 0;
    seg *s = at(r, 0);
    if (s->end - s->start >= want)
        return sluice_block_view(s->b, s->start, want, out);
    /* Spans blocks (a head, bounded by its limit): one copy into memory of
     * exactly its size, outside the pool's blocks, so that parsing a head
     * never waits for the budget bodies hold. */
    sluice_block *b;
    int rc = sluice__block_heap(r->pool, want, &b);
    if (rc < 0)
        return rc;
    unsigned char *dst = sluice_block_data(b);
    size_t got = 0;
    for (size_t i = 0; got < want; i++) {
        s = at(r, i);
        size_t k = s->end - s->start < want - got ? s->end - s->start : want - got;
        memcpy(dst + got, sluice_block_data(s->b) + s->start, k);
        got += k;
    }
    *out = (sluice_bytes){b, dst, want};
    return 0;
}

size_t sluice_reader_take(sluice_reader *r, size_t max, sluice_bytes *out)
{
    *out = (sluice_bytes){0};
    if (!r->n || max == 0)
        return 0;
    seg *s = at(r, 0);
    size_t k = s->end - s->start < max ? s->end - s->start : max;
    if (k == 0)
        return 0;
    *out = (sluice_bytes){sluice__block_ref(s->b), sluice_block_data(s->b) + s->start, k};
    sluice_reader_skip(r, k);
    return k;
}

size_t sluice_reader_front(const sluice_reader *r, const unsigned char **data)
{
    if (!r->n) {
        *data = NULL;
        return 0;
    }
    const seg *s = at(r, 0);
    *data = sluice_block_data(s->b) + s->start;
    return s->end - s->start;
}

void sluice_reader_skip(sluice_reader *r, size_t n)
{
    if (n > r->avail)
        n = r->avail;
    r->avail -= n;
    r->consumed += n;
    while (r->n) {
        seg *s = at(r, 0);
        size_t k = s->end - s->start < n ? s->end - s->start : n;
        s->start += k;
        n -= k;
        if (s->start < s->end)
            break;
        /* Keep the emptied last block: the next read appends there, or
         * reuses it whole once its views are released (fill). */
        if (r->n == 1)
            break;
        pop_front(r);
    }
}

int sluice_reader_error(const sluice_reader *r)
{
    return r->err;
}

int sluice__reader_eof(const sluice_reader *r)
{
    return r->eof;
}

uint64_t sluice_reader_consumed(const sluice_reader *r)
{
    return r->consumed;
}

sluice_io *sluice__reader_io(const sluice_reader *r)
{
    return r->io;
}

sluice__head_clock *sluice__reader_head_clock(sluice_reader *r)
{
    return &r->clock;
}

void sluice__reader_set_clock(sluice_reader *r, int64_t (*now)(void *ud), void *ud)
{
    r->clock.now = now;
    r->clock.now_ud = ud;
}

void sluice__reader_read_max(sluice_reader *r, size_t max)
{
    r->read_max = max;
}

void sluice__reader_bypassed(sluice_reader *r, uint64_t n)
{
    r->consumed += n;
    sluice__reader_trim(r);
}

void sluice__reader_trim(sluice_reader *r)
{
    while (!r->avail && r->n) /* an emptied block kept for appends: not needed */
        pop_front(r);
}

/* ---- helpers ------------------------------------------------------------- */

static seg *at(const sluice_reader *r, size_t i)
{
    size_t k = r->head + i;
    return &r->ring[k >= r->cap ? k - r->cap : k];
}

static void pop_front(sluice_reader *r)
{
    sluice_block_release(at(r, 0)->b);
    r->head = r->head + 1 == r->cap ? 0 : r->head + 1;
    r->n--;
}

static void pop_back(sluice_reader *r)
{
    sluice_block_release(at(r, r->n - 1)->b);
    r->n--;
}

/*
 * At the pool's cap with one full block whose front was consumed and that
 * nothing else references (a head being parsed after an earlier request):
 * move its unread bytes to the front so the next read fits without a
 * second block. Returns 1 if room was made.
 */
static int compact(sluice_reader *r)
{
    seg *s = at(r, 0);
    if (r->n != 1 || s->start == 0 || sluice__block_refs(s->b) != 1)
        return 0;
    unsigned char *d = sluice_block_data(s->b);
    memmove(d, d + s->start, s->end - s->start);
    s->end -= s->start;
    s->start = 0;
    return 1;
}

static int take_waiting(sluice_reader *r, int holder, sluice_block **b)
{
    int rc = sluice__block_take(r->pool, &r->w, holder, b);
    if (rc == SLUICE_EPOOLFULL)
        r->queued = 1;
    return rc;
}

static sluice_poll wait_memory(sluice_reader *r)
{
    r->pool_wait = 1;
    if (!sluice__pool_has_wake(r->pool))
        r->pool_retry = sluice_now_ms() + SLUICE_READER_POOL_RETRY_MS;
    return SLUICE_PENDING;
}
