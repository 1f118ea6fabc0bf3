/*
 * bytes.c — blocks, views and the pool.
 *
 * A block is one allocation: a 64-byte-aligned header followed by its
 * payload (pool and copy blocks), or a header pointing at foreign memory.
 * Views ({owner, data, len}) are plain values; only the block is counted.
 *
 * The pool keeps a LIFO free list of fixed-size blocks so a steady stream
 * costs no malloc per chunk: the block just released is the next one handed
 * out, still warm in cache. The list is capped (max_spare) so a burst does
 * not pin memory forever, and outstanding blocks can be capped (max_blocks):
 * a full pool is backpressure (SLUICE_EPOOLFULL), never a silent malloc.
 *
 * Counters and the free list sit behind one spinlock: the critical sections
 * are a handful of instructions, taken once per block (64 KiB of payload),
 * and views may be released on any thread.
 *
 * The budget is a queue, not a retry loop. A consumer that meets the cap and
 * cannot go on without a block (sluice__block_take with a waiter) joins one
 * of two FIFO queues: takers that hold nothing may have a block while fewer
 * than max_blocks are out; takers that already hold blocks (they may need one
 * more to make any progress: a head or a delimiter across a block boundary)
 * also from a small reserve above it, so at most max_blocks + reserve pool
 * blocks are ever out. The release of a pool block's last reference hands
 * the block itself to the first waiter that may have it (the earlier of the
 * two queue heads while under max_blocks, else the first holder) and calls
 * the pool's wake hook with that waiter's token, under the lock: one wake per
 * granted block, none without one, and none after the waiter left the queue.
 * Because a block goes to a queued waiter whenever one may have it, a waiter
 * is queued only while the count is at its limit, so a direct take that
 * passes the count check never overtakes a waiter.
 *
 * Under AddressSanitizer the free list is disabled so a use after the last
 * release faults instead of reading a recycled block.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_MAGIC 0x5b10c4edu
#define HEADER_SIZE ((sizeof(struct sluice_block) + 63u) & ~(size_t)63u)
#define DEFAULT_SPARE 16u

#if defined(__SANITIZE_ADDRESS__)
#define NO_SPARE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_SPARE 1
#endif
#endif

enum block_kind { KIND_POOL, KIND_HEAP, KIND_FOREIGN };

struct sluice_block {
    atomic_size_t refs;
    uint32_t magic;
    uint32_t kind;
    sluice_pool *pool;
    unsigned char *data;
    size_t cap;
    void (*free_cb)(void *ud, void *data, size_t len);
    void *ud;
    sluice_block *next_free;
};

typedef struct wqueue {
    sluice__waiter *head, *tail;
} wqueue;

#define DEFAULT_RESERVE 2u

struct sluice_pool {
    sluice_allocator a;
    size_t block_size, max_blocks, max_spare, reserve;
    void (*wake)(void *ud, void *token);
    void *wake_ud;
    wqueue q[2];              /* [0]: takers holding nothing, [1]: holders */
    uint64_t seq;             /* order of arrival across both queues */
    size_t waiters, waiters_max;
    uint64_t wakes;
    atomic_flag lock;
    sluice_block *free_list;
    size_t nfree;
    size_t pool_blocks_out;   /* pool blocks with references (for max_blocks) */
    size_t blocks_live, bytes_live, objects_live;
    uint64_t blocks_allocated;
    size_t blocks_max;
    uint64_t pool_full;
    bool host_freed;
};

static void lock(sluice_pool *p);
static void unlock(sluice_pool *p);
static void *sys_alloc(void *ud, size_t n);
static void sys_free(void *ud, void *ptr, size_t n);
static bool claim_destroy_locked(sluice_pool *p);
static void pool_destroy(sluice_pool *p);

/* ---- allocation through the hook ---------------------------------------- */

void *sluice__alloc(sluice_pool *p, size_t n)
{
    return p->a.alloc(p->a.ud, n);
}

void sluice__free(sluice_pool *p, void *ptr, size_t n)
{
    if (ptr == NULL)
        return;
    int saved = errno;
    p->a.free(p->a.ud, ptr, n);
    errno = saved;
}

/* ---- pool ---------------------------------------------------------------- */

int sluice_pool_new(const sluice_pool_config *cfg, sluice_pool **out)
{
    sluice_pool_config c = {0};
    if (cfg)
        c = *cfg;
    *out = NULL;
    if (c.block_size == 0)
        c.block_size = SLUICE_DEFAULT_BLOCK_SIZE;
    if (c.block_size < 64)
        return SLUICE_EINVAL;
    sluice_allocator a = {sys_alloc, sys_free, NULL};
    if (c.allocator) {
        if (!c.allocator->alloc || !c.allocator->free)
            return SLUICE_EINVAL;
        a = *c.allocator;
    }
    sluice_pool *p = a.alloc(a.ud, sizeof *p);
    if (!p)
        return SLUICE_ENOMEM;
    memset(p, 0, sizeof *p);
    p->a = a;
    p->block_size = c.block_size;
    p->max_blocks = c.max_blocks;
    p->max_spare = c.max_spare ? c.max_spare : DEFAULT_SPARE;
    p->reserve = c.reserve ? c.reserve : DEFAULT_RESERVE;
    p->wake = c.wake;
    p->wake_ud = c.wake_ud;
#ifdef NO_SPARE
    p->max_spare = 0;
#endif
    atomic_flag_clear(&p->lock);
    *out = p;
    return 0;
}

void sluice_pool_close(sluice_pool *p)
{
    if (!p)
        return;
    lock(p);
    assert(!p->host_freed);
    p->host_freed = true;
    sluice_block *list = p->free_list;
    p->free_list = NULL;
    p->nfree = 0;
    unlock(p);
    while (list) {
        sluice_block *next = list->next_free;
        sluice__free(p, list, HEADER_SIZE + p->block_size);
        list = next;
    }
    lock(p);
    bool destroy = claim_destroy_locked(p);
    unlock(p);
    if (destroy)
        pool_destroy(p);
}

void sluice_pool_stats(sluice_pool *p, sluice_pool_counters *st)
{
    lock(p);
    st->blocks_live = p->blocks_live;
    st->blocks_free = p->nfree;
    st->bytes_live = p->bytes_live;
    st->objects_live = p->objects_live;
    st->block_size = p->block_size;
    st->blocks_allocated = p->blocks_allocated;
    st->blocks_max = p->blocks_max;
    st->pool_full = p->pool_full;
    st->waiters = p->waiters;
    st->waiters_max = p->waiters_max;
    st->wakes = p->wakes;
    unlock(p);
}

size_t sluice__pool_block_size(const sluice_pool *p)
{
    return p->block_size;
}

int sluice__pool_has_wake(const sluice_pool *p)
{
    return p->wake != NULL;
}

void *sluice_pool_object_alloc(sluice_pool *p, size_t size)
{
    void *o = sluice__alloc(p, size);
    if (o) {
        lock(p);
        p->objects_live++;
        unlock(p);
    }
    return o;
}

void sluice_pool_object_free(sluice_pool *p, void *obj, size_t size)
{
    if (!obj)
        return;
    sluice__free(p, obj, size);
    lock(p);
    assert(p->objects_live > 0);
    p->objects_live--;
    bool destroy = claim_destroy_locked(p);
    unlock(p);
    if (destroy)
        pool_destroy(p);
}

/* ---- blocks -------------------------------------------------------------- */

static void block_init(sluice_block *b, sluice_pool *p, enum block_kind kind,
                       unsigned char *data, size_t cap)
{
    atomic_init(&b->refs, 1);
    b->magic = BLOCK_MAGIC;
    b->kind = kind;
    b->pool = p;
    b->data = data;
    b->cap = cap;
    b->free_cb = NULL;
    b->ud = NULL;
    b->next_free = NULL;
}

/* Under the lock: may a taker of class `holder` have one more block now? */
static bool allowed_locked(const sluice_pool *p, int holder)
{
    if (!p->max_blocks)
        return true;
    size_t limit = p->max_blocks + (holder ? p->reserve : 0);
    return p->pool_blocks_out < limit;
}

static void enqueue_locked(sluice_pool *p, sluice__waiter *w, int holder);
static void dequeue_locked(sluice_pool *p, sluice__waiter *w);
static sluice__waiter *grantee_locked(sluice_pool *p);

/*
 * A pool block for a taker of class `holder` (see the top of the file). With
 * a waiter w: a block granted to w is returned first; else, refused at the
 * count, w joins (or stays in) its queue and SLUICE_EPOOLFULL comes back.
 */
static int block_get(sluice_pool *p, int holder, sluice__waiter *w, sluice_block **out)
{
    *out = NULL;
    lock(p);
    if (w && w->granted) {
        *out = w->granted;
        w->granted = NULL;
        unlock(p);
        return 0;
    }
    if (w && w->queued && (w->holder != holder || allowed_locked(p, holder)))
        dequeue_locked(p, w); /* its class changed, or a count left behind */
    if (!allowed_locked(p, holder)) {
        if (!w || !w->queued) {
            p->pool_full++;
            if (w)
                enqueue_locked(p, w, holder);
        }
        unlock(p);
        return SLUICE_EPOOLFULL;
    }
    sluice_block *b = p->free_list;
    if (b) {
        p->free_list = b->next_free;
        p->nfree--;
    }
    /* Count before allocating so concurrent takers respect max_blocks. */
    if (++p->pool_blocks_out > p->blocks_max)
        p->blocks_max = p->pool_blocks_out;
    p->blocks_live++;
    p->bytes_live += p->block_size;
    if (!b)
        p->blocks_allocated++;
    unlock(p);
    if (!b) {
        b = sluice__alloc(p, HEADER_SIZE + p->block_size);
        if (!b) {
            /* A waiter that queued meanwhile (another thread) stays queued
             * until the next release or its next take. */
            lock(p);
            p->pool_blocks_out--;
            p->blocks_live--;
            p->bytes_live -= p->block_size;
            p->blocks_allocated--;
            unlock(p);
            return SLUICE_ENOMEM;
        }
    }
    block_init(b, p, KIND_POOL, (unsigned char *)b + HEADER_SIZE, p->block_size);
    *out = b;
    return 0;
}

int sluice_block_get(sluice_pool *p, sluice_block **out)
{
    return block_get(p, 0, NULL, out);
}

int sluice__block_take(sluice_pool *p, sluice__waiter *w, int holder, sluice_block **out)
{
    return block_get(p, holder, w, out);
}

void sluice__waiter_cancel(sluice_pool *p, sluice__waiter *w)
{
    lock(p);
    if (w->queued)
        dequeue_locked(p, w);
    sluice_block *g = w->granted;
    w->granted = NULL;
    unlock(p);
    sluice_block_release(g); /* passes it on to the next waiter */
}

int sluice__waiter_granted(sluice_pool *p, const sluice__waiter *w)
{
    lock(p);
    int g = w->granted != NULL;
    unlock(p);
    return g;
}

int sluice__block_heap(sluice_pool *p, size_t cap, sluice_block **out)
{
    *out = NULL;
    if (cap > SIZE_MAX - HEADER_SIZE)
        return SLUICE_ENOMEM;
    sluice_block *b = sluice__alloc(p, HEADER_SIZE + cap);
    if (!b)
        return SLUICE_ENOMEM;
    block_init(b, p, KIND_HEAP, (unsigned char *)b + HEADER_SIZE, cap);
    lock(p);
    p->blocks_live++;
    p->bytes_live += cap;
    p->blocks_allocated++;
    unlock(p);
    *out = b;
    return 0;
}

size_t sluice__block_refs(const sluice_block *b)
{
    return atomic_load_explicit(&b->refs, memory_order_acquire);
}

unsigned char *sluice_block_data(sluice_block *b)
{
    return b->data;
}

size_t sluice_block_capacity(const sluice_block *b)
{
    return b->cap;
}

sluice_block *sluice__block_ref(sluice_block *b)
{
    assert(b->magic == BLOCK_MAGIC);
    size_t old = atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    assert(old > 0);
    (void)old;
    return b;
}

void sluice_block_release(sluice_block *b)
{
    if (!b)
        return;
    assert(b->magic == BLOCK_MAGIC);
    size_t old = atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel);
    assert(old > 0);
    if (old != 1)
        return;
    sluice_pool *p = b->pool;
    if (b->kind == KIND_FOREIGN && b->free_cb)
        b->free_cb(b->ud, b->data, b->cap);
    size_t total = b->kind == KIND_FOREIGN ? sizeof *b : HEADER_SIZE + b->cap;
    size_t cap = b->cap;
    bool pooled = b->kind == KIND_POOL;
    lock(p);
    sluice__waiter *w = pooled ? grantee_locked(p) : NULL;
    if (w) { /* still counted: it passes straight to the waiter */
        dequeue_locked(p, w);
        atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
        w->granted = b;
        p->wakes++;
        if (p->wake)
            p->wake(p->wake_ud, w->token);
        unlock(p);
        return;
    }
    if (pooled && !p->host_freed && p->nfree < p->max_spare) {
        b->next_free = p->free_list;
        p->free_list = b;
        p->nfree++;
        p->pool_blocks_out--;
        p->blocks_live--;
        p->bytes_live -= cap;
        unlock(p);
        return;
    }
    unlock(p);
    /* Free before uncounting: while this block counts as live, no other
     * thread can destroy the pool under us. */
    b->magic = 0;
    sluice__free(p, b, total);
    lock(p);
    if (pooled)
        p->pool_blocks_out--;
    p->blocks_live--;
    p->bytes_live -= cap;
    bool destroy = claim_destroy_locked(p);
    unlock(p);
    if (destroy)
        pool_destroy(p);
}

int sluice_block_view(sluice_block *b, size_t off, size_t len, sluice_bytes *out)
{
    *out = (sluice_bytes){0};
    if (off > b->cap || len > b->cap - off)
        return SLUICE_ERANGE;
    out->owner = sluice__block_ref(b);
    out->data = b->data + off;
    out->len = len;
    return 0;
}

/* ---- bytes --------------------------------------------------------------- */

int sluice_bytes_copy_from(sluice_pool *p, const void *data, size_t len, sluice_bytes *out)
{
    *out = (sluice_bytes){0};
    sluice_block *b;
    int rc = len > SLUICE_BYTES_SMALL_COPY && len <= p->block_size ? sluice_block_get(p, &b)
                                                                     : sluice__block_heap(p, len, &b);
    if (rc < 0)
        return rc;
    if (len)
        memcpy(b->data, data, len);
    *out = (sluice_bytes){b, b->data, len};
    return 0;
}

int sluice_bytes_wrap(sluice_pool *p, void *data, size_t len,
                      void (*free_cb)(void *ud, void *data, size_t len), void *ud,
                      sluice_bytes *out)
{
    *out = (sluice_bytes){0};
    sluice_block *b = sluice__alloc(p, sizeof *b);
    if (!b)
        return SLUICE_ENOMEM;
    block_init(b, p, KIND_FOREIGN, data, len);
    b->free_cb = free_cb;
    b->ud = ud;
    lock(p);
    p->blocks_live++;
    p->bytes_live += len;
    unlock(p);
    *out = (sluice_bytes){b, data, len};
    return 0;
}

sluice_bytes sluice_bytes_ref(sluice_bytes b)
{
    if (b.owner)
        sluice__block_ref(b.owner);
    return b;
}

void sluice_bytes_release(sluice_bytes *b)
{
    sluice_block_release(b->owner);
    *b = (sluice_bytes){0};
}

int sluice_bytes_slice(const sluice_bytes *b, size_t off, size_t len, sluice_bytes *out)
{
    if (off > b->len || len > b->len - off) {
        *out = (sluice_bytes){0};
        return SLUICE_ERANGE;
    }
    *out = sluice_bytes_ref((sluice_bytes){b->owner, b->data + off, len});
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static void lock(sluice_pool *p)
{
    while (atomic_flag_test_and_set_explicit(&p->lock, memory_order_acquire))
        ;
}

static void unlock(sluice_pool *p)
{
    atomic_flag_clear_explicit(&p->lock, memory_order_release);
}

static void *sys_alloc(void *ud, size_t n)
{
    (void)ud;
    return malloc(n);
}

static void sys_free(void *ud, void *ptr, size_t n)
{
    (void)ud;
    (void)n;
    free(ptr);
}

static void enqueue_locked(sluice_pool *p, sluice__waiter *w, int holder)
{
    wqueue *q = &p->q[holder ? 1 : 0];
    w->holder = holder ? 1 : 0;
    w->queued = 1;
    w->seq = p->seq++;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    if (++p->waiters > p->waiters_max)
        p->waiters_max = p->waiters;
}

static void dequeue_locked(sluice_pool *p, sluice__waiter *w)
{
    wqueue *q = &p->q[w->holder];
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->queued = 0;
    p->waiters--;
}

/* Who gets a pool block whose last reference is going (still counted):
 * the earliest waiter allowed one more once it is uncounted, or NULL. */
static sluice__waiter *grantee_locked(sluice_pool *p)
{
    sluice__waiter *a = p->q[0].head, *h = p->q[1].head;
    if (!a && !h)
        return NULL;
    p->pool_blocks_out--;
    if (a && !allowed_locked(p, 0))
        a = NULL;
    if (h && !allowed_locked(p, 1))
        h = NULL;
    p->pool_blocks_out++;
    if (a && h)
        return a->seq < h->seq ? a : h;
    return a ? a : h;
}

/* True (once) when the host has let go and nothing the pool made is alive.
 * Call with the lock held; the caller then calls pool_destroy(). */
static bool claim_destroy_locked(sluice_pool *p)
{
    if (!p->host_freed || p->blocks_live || p->objects_live || p->nfree)
        return false;
    p->host_freed = false; /* claimed: no second caller sees it as unused */
    return true;
}

static void pool_destroy(sluice_pool *p)
{
    sluice_allocator a = p->a;
    int saved = errno;
    a.free(a.ud, p, sizeof *p);
    errno = saved;
}
