/*
 * internal.h — declarations shared between library files (sluice__ prefix),
 * never installed.
 */
#ifndef SLUICE_INTERNAL_H
#define SLUICE_INTERNAL_H

#include "sluice.h"

#include <stdbool.h>

/* Allocation through the pool's allocator hook, not counted as objects
 * (for arrays owned by objects). sluice__free keeps errno and ignores NULL. */
void *sluice__alloc(sluice_pool *p, size_t n);
void sluice__free(sluice_pool *p, void *ptr, size_t n);

/* Grows *arr (element size `elem`) to hold at least `need` elements,
 * doubling. Returns 0 or SLUICE_ENOMEM (then *arr is unchanged). */
int sluice__grow(sluice_pool *p, void **arr, size_t *cap, size_t need, size_t elem);

/* The fd under io when io is the stock fd transport (its bytes are the bytes
 * on the wire, so splice(2) may move them), else -1. */
int sluice__io_fd(const sluice_io *io);

/* The io a reader reads from, and a way to count bytes that were moved
 * straight from that io past the reader (splice), so that
 * sluice_reader_consumed() stays the offset in the connection's stream. */
sluice_io *sluice__reader_io(const sluice_reader *r);
void sluice__reader_bypassed(sluice_reader *r, uint64_t n);

/* References a block holds now (1: only the caller's, so it may write
 * anywhere in it). */
size_t sluice__block_refs(const sluice_block *b);

#define SLUICE__UNUSED(x) ((void)(x))

/* sluice_hmac_sha256_init() with the SHA-256 state copied from fresh (a
 * context just initialised and not updated), so a caller that keys several
 * MACs pays sluice_sha256_init()'s CPU probe once (lib/sha256.c). */
void sluice__hmac_sha256_init(sluice_hmac_sha256_ctx *c, const sluice_sha256_ctx *fresh,
                              const void *key, size_t key_len);

/* Zeroes key material in a way the compiler may not drop as a dead store
 * (a plain memset before a buffer goes out of scope can be elided). */
static inline void sluice__wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

/*
 * The idle timeout shared by body streams, writers and splice: "no progress
 * for `ms`". The deadline is armed when an operation pends after progress
 * (or for the first time) and expires when an operation pends again past it
 * with no progress in between, so a steady trickle never times out.
 */
typedef struct sluice__idle {
    uint32_t ms;        /* 0: no timeout */
    bool progressed;    /* progress since the deadline was armed */
    int64_t deadline;   /* -1: not armed */
} sluice__idle;

static inline void sluice__idle_init(sluice__idle *t, uint32_t ms)
{
    t->ms = ms;
    t->progressed = false;
    t->deadline = -1;
}

static inline void sluice__idle_progress(sluice__idle *t)
{
    t->progressed = true;
}

/* Call when an operation pends. Returns false once the idle time ran out. */
static inline bool sluice__idle_pending(sluice__idle *t)
{
    if (!t->ms)
        return true;
    int64_t now = sluice_now_ms();
    if (t->progressed || t->deadline < 0) {
        t->deadline = now + t->ms;
        t->progressed = false;
        return true;
    }
    return now < t->deadline;
}

/* The deadline to report in an interest, -1 for none. */
static inline int64_t sluice__idle_deadline(const sluice__idle *t)
{
    return t->ms ? t->deadline : -1;
}

#endif
