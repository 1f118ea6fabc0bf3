/*
 * sluice/bytes.h — reference-counted blocks, the pool they come from, and
 * sluice_bytes, the view type every stream hands out.
 *
 *   sluice_pool   the context: allocator hook, block size, caps, counters.
 *                 Every other sluice object is created from a pool.
 *   sluice_block  a reference-counted buffer: a pool block (fixed size),
 *                 a one-off heap block, or foreign memory with a free callback.
 *   sluice_bytes  {owner, data, len}: a view into a block (or into static
 *                 memory when owner is NULL). A plain value: copying the
 *                 struct does NOT add a reference.
 *
 * Ownership rule: a sluice_bytes you own holds exactly one reference on its
 * block; release it once with sluice_bytes_release(). Functions say in their
 * comment when they transfer a reference to the caller.
 *
 * Thread-safety: block reference counts are atomic and the pool's free list
 * is locked, so views may be ref'd and released on any thread. Everything
 * else about one object is single-threaded unless said otherwise.
 */
#ifndef SLUICE_BYTES_H
#define SLUICE_BYTES_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_pool sluice_pool;
typedef struct sluice_block sluice_block;

typedef struct sluice_bytes {
    sluice_block *owner;          /* NULL: static memory, nothing to release */
    const unsigned char *data;
    size_t len;
} sluice_bytes;

/* ---- pool ---------------------------------------------------------------- */

#define SLUICE_DEFAULT_BLOCK_SIZE (64u * 1024u)

/*
 * The memory budget. max_blocks caps the pool blocks outstanding across
 * every object made from the pool: share one pool between all connections of
 * a process and (max_blocks + reserve) * block_size bounds the memory their
 * bodies hold at once, whatever the number of connections. At the cap,
 * readers read into what they already hold, and in-flight windows shrink (a
 * pump stops pulling, the kernel's receive window closes, the peers are
 * paused) instead of RSS growing with the number of connections.
 *
 * A reader that needs a block and meets the cap waits in a FIFO queue (it
 * reports PENDING). Readers that hold nothing may have a block while fewer
 * than max_blocks are out; readers that already hold blocks (they may need
 * one more to make any progress: a head or a multipart delimiter across two
 * blocks, a full block whose views wait downstream) may also use `reserve`
 * blocks above the cap, first come first served among them. When a pool
 * block's last reference is released, the pool hands that block to the
 * first waiter that may have it, reserved for it alone, and calls
 * wake(wake_ud, token) with the waiter's token (sluice_reader_config's
 * wake_token): exactly one call per block handed over, none otherwise.
 *
 * The hook runs on the thread that released the block (any thread: views may
 * be released anywhere), inside sluice_bytes_release() / sluice_block_release()
 * or a stream, sink or pump call that released a view, with the pool's lock
 * held: it must not call into sluice on this pool, and should only note the
 * token (a flag, a list of connections to step) or, across threads, write to
 * an eventfd or pipe the token's loop watches. After the waiter leaves the
 * queue (its reader closed or went on without the block) the hook is never
 * called with its token again. A reader whose pool has a hook reports the
 * interest {fd -1, SLUICE_WANT_WAKE, no deadline}: step it again once the
 * hook named its token. Without a hook the queue and the grants are the
 * same, and the reader reports a deadline SLUICE_READER_POOL_RETRY_MS ahead
 * instead (the host polls it again then, and it takes its grant if one came).
 *
 * Heads are not pool blocks: a head built (sluice_http_head_*) or copied
 * because it spans two blocks gets memory of its own size, bounded by the
 * head limits, as small copies do (sluice_bytes_copy_from).
 */
typedef struct sluice_pool_config {
    size_t block_size;   /* bytes of payload per pool block; 0: 64 KiB       */
    size_t max_blocks;   /* cap on pool blocks outstanding; 0: no cap (see
                            the memory budget above)                         */
    size_t max_spare;    /* cap on free blocks kept for reuse; 0: 16         */
    const sluice_allocator *allocator; /* NULL: malloc/free. Copied.         */
    size_t reserve;      /* blocks above max_blocks for takers that already
                            hold blocks; 0: 2 (at least 1 is needed for the
                            no-deadlock guarantee, so 0 cannot be asked for) */
    void (*wake)(void *ud, void *token); /* NULL: waiters retry on a deadline */
    void *wake_ud;       /* first argument of wake                           */
} sluice_pool_config;

typedef struct sluice_pool_counters {
    size_t blocks_live;   /* blocks of any kind with references held         */
    size_t blocks_free;   /* pool blocks on the free list                    */
    size_t bytes_live;    /* payload bytes of live blocks (capacity, not use) */
    size_t objects_live;  /* other objects (streams, sinks...) not yet closed */
    size_t block_size;
    uint64_t blocks_allocated; /* calls to the allocator for blocks, ever    */
    size_t blocks_max;    /* most pool blocks outstanding at once, ever      */
    uint64_t pool_full;   /* takes refused at the cap, ever (a waiter that
                             stays queued counts once)                       */
    size_t waiters;       /* takers queued for a block now                   */
    size_t waiters_max;   /* most takers queued at once, ever                */
    uint64_t wakes;       /* blocks handed to a waiter, ever (each with one
                             call of the wake hook, when there is one)       */
} sluice_pool_counters;

/*
 * Creates a pool. cfg may be NULL for defaults. On success *out is owned by
 * the caller, who frees it with sluice_pool_close().
 * Errors: SLUICE_ENOMEM, SLUICE_EINVAL (block_size too small: < 64 bytes).
 * Thread-safe: pool functions may be called from several threads.
 */
SLUICE_API int sluice_pool_new(const sluice_pool_config *cfg, sluice_pool **out);

/*
 * Drops the host's handle. Spare blocks are freed now; the pool itself is
 * freed when its last live block and object are gone, so closing objects and
 * freeing the pool may happen in either order. NULL is a no-op.
 */
SLUICE_API void sluice_pool_close(sluice_pool *pool);

/* Fills *st with a consistent snapshot of the counters. */
SLUICE_API void sluice_pool_stats(sluice_pool *pool, sluice_pool_counters *st);

/*
 * Allocates `size` bytes with the pool's allocator, for objects built on top
 * of sluice (the library's own streams use these too). Counted in
 * objects_live until sluice_pool_object_free(); the caller owns the memory.
 * Returns NULL on failure (nothing counted). Thread-safe if the allocator is.
 */
SLUICE_API void *sluice_pool_object_alloc(sluice_pool *pool, size_t size);

/* Frees what sluice_pool_object_alloc(pool, size) returned, with the same
 * size. NULL is a no-op; errno is kept. Thread-safe if the allocator is. */
SLUICE_API void sluice_pool_object_free(sluice_pool *pool, void *obj, size_t size);

/* ---- blocks -------------------------------------------------------------- */

/*
 * Takes a writable block of sluice__pool_block_size() bytes with one
 * reference, owned by the caller. Errors: SLUICE_EPOOLFULL (max_blocks
 * outstanding, or blocks coming back are promised to queued readers:
 * backpressure, try again when blocks are released; this call never queues
 * and never uses the reserve), SLUICE_ENOMEM.
 */
SLUICE_API int sluice_block_get(sluice_pool *pool, sluice_block **out);

/* The writable payload of a block (borrowed: valid while a reference is
 * held). Writing into a block that views are already handed out for is the
 * caller's business (the socket reader only appends past what it has handed
 * out); the block is used by one writer thread at a time. Cannot fail. */
SLUICE_API unsigned char *sluice_block_data(sluice_block *b);

/* Bytes of payload the block holds room for. Cannot fail; any thread. */
SLUICE_API size_t sluice_block_capacity(const sluice_block *b);

/* Drops one reference; the last one returns the block to its pool (or frees
 * it / calls the foreign free callback). NULL is a no-op. */
SLUICE_API void sluice_block_release(sluice_block *b);

/*
 * A view of [off, off+len) of block b, holding a new reference that the
 * caller owns. Returns SLUICE_ERANGE (and leaves *out zeroed) if the range
 * does not fit the block.
 */
SLUICE_API int sluice_block_view(sluice_block *b, size_t off, size_t len, sluice_bytes *out);

/* ---- bytes --------------------------------------------------------------- */

/* A view of static (never freed) memory: owner NULL, nothing to release. */
static inline sluice_bytes sluice_bytes_static(const void *data, size_t len);

/* Copies of at most this many bytes go into a block of their own size. */
#define SLUICE_BYTES_SMALL_COPY 4096u

/*
 * Copies len bytes into a new block: up to SLUICE_BYTES_SMALL_COPY bytes (a
 * reply, a head, other control bytes) a block of exactly len bytes that the
 * pool counts but never refuses at max_blocks, so a host can still answer
 * 413 or 502 while bodies hold the whole budget; larger copies a pool block
 * if they fit one (refused at the cap: SLUICE_EPOOLFULL), else a one-off
 * block of exactly len bytes. The caller owns one reference.
 * Errors: SLUICE_ENOMEM, SLUICE_EPOOLFULL; *out zeroed.
 */
SLUICE_API int sluice_bytes_copy_from(sluice_pool *pool, const void *data, size_t len,
                                      sluice_bytes *out);

/*
 * Wraps foreign memory (a host buffer, an mmap'd file) in a block. When the
 * last reference goes, free_cb(ud, data, len) is called (on whichever thread
 * released it). free_cb may be NULL. The caller owns one reference.
 * Errors: SLUICE_ENOMEM; then free_cb is NOT called: the memory stays yours.
 */
SLUICE_API int sluice_bytes_wrap(sluice_pool *pool, void *data, size_t len,
                                 void (*free_cb)(void *ud, void *data, size_t len),
                                 void *ud, sluice_bytes *out);

/* Adds one reference to b's block and returns b (the new reference goes with
 * the returned copy). */
SLUICE_API sluice_bytes sluice_bytes_ref(sluice_bytes b);

/* Drops the reference *b holds and zeroes *b. Zeroed views are a no-op, so
 * releasing twice through the same variable is safe. */
SLUICE_API void sluice_bytes_release(sluice_bytes *b);

/*
 * *out = b[off, off+len), with a new reference the caller owns. Never copies.
 * Errors: SLUICE_ERANGE if off+len > b->len (*out zeroed, nothing changed).
 */
SLUICE_API int sluice_bytes_slice(const sluice_bytes *b, size_t off, size_t len,
                                  sluice_bytes *out);

/* Drops the first n bytes of the view (no reference change). n is clamped
 * to len. */
static inline void sluice_bytes_advance(sluice_bytes *b, size_t n);

/* Keeps only the first n bytes of the view (no reference change). n is
 * clamped to len. */
static inline void sluice_bytes_truncate(sluice_bytes *b, size_t n);

/* ---- inline definitions --------------------------------------------------- */

static inline sluice_bytes sluice_bytes_static(const void *data, size_t len)
{
    sluice_bytes b = {NULL, (const unsigned char *)data, len};
    return b;
}

static inline void sluice_bytes_advance(sluice_bytes *b, size_t n)
{
    if (n > b->len)
        n = b->len;
    b->data += n;
    b->len -= n;
}

static inline void sluice_bytes_truncate(sluice_bytes *b, size_t n)
{
    if (n < b->len)
        b->len = n;
}

#ifdef __cplusplus
}
#endif

#endif
