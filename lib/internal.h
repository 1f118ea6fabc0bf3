/*
 * internal.h — declarations shared between library files (sluice__ prefix),
 * never installed.
 */
#ifndef SLUICE_INTERNAL_H
#define SLUICE_INTERNAL_H

#include "sluice.h"
#include "testing.h"

#include <stdbool.h>

/*
 * A place in the pool's queue for memory (lib/bytes.c), embedded in the
 * consumer that waits (the socket reader). All-zero: not queued. The fields
 * are the pool's, guarded by its lock; token is what the wake hook is given.
 */
typedef struct sluice__waiter {
    struct sluice__waiter *next, *prev;
    void *token;
    sluice_block *granted; /* a block handed to this waiter, not yet taken */
    uint64_t seq;
    int holder, queued;
} sluice__waiter;

/*
 * Takes a pool block under the budget. holder: the taker already holds pool
 * blocks and may need one more to make any progress, so it may also use the
 * reserve above max_blocks; otherwise only max_blocks count. w NULL: take
 * one if the budget allows, else SLUICE_EPOOLFULL. w non-NULL: a block
 * granted to w is returned first; refused, w joins the FIFO queue (or keeps
 * its place) and the pool grants it the first block released that it may
 * have, calling the wake hook with w->token. A waiter that stops waiting
 * must call sluice__waiter_cancel. Errors: SLUICE_EPOOLFULL, SLUICE_ENOMEM.
 */
int sluice__block_take(sluice_pool *pool, sluice__waiter *w, int holder, sluice_block **out);

/* Leaves the queue; a block granted and not taken goes to the next waiter
 * (or back to the pool). Safe on a waiter that never waited. */
void sluice__waiter_cancel(sluice_pool *pool, sluice__waiter *w);

/* True while a block granted to w waits to be taken. */
int sluice__waiter_granted(sluice_pool *pool, const sluice__waiter *w);

/* True when the pool has a wake hook (waiters then wait for it, not for a
 * retry deadline). */
int sluice__pool_has_wake(const sluice_pool *pool);

/* A block of exactly cap bytes from the allocator, outside the pool's
 * blocks: counted in blocks_live / bytes_live, never refused at max_blocks.
 * For small memory bounded per message (a head built or copied). The
 * caller owns one reference. Errors: SLUICE_ENOMEM. */
int sluice__block_heap(sluice_pool *pool, size_t cap, sluice_block **out);

/* Adds one reference to b. Returns b. */
sluice_block *sluice__block_ref(sluice_block *b);

/* The pool's block payload size in bytes. */
size_t sluice__pool_block_size(const sluice_pool *pool);

/* Allocation through the pool's allocator hook, not counted as objects
 * (for arrays owned by objects). sluice__free keeps errno and ignores NULL. */
void *sluice__alloc(sluice_pool *p, size_t n);
void sluice__free(sluice_pool *p, void *ptr, size_t n);

/* Grows *arr (element size `elem`) to hold at least `need` elements,
 * doubling. Returns 0 or SLUICE_ENOMEM (then *arr is unchanged). */
int sluice__grow(sluice_pool *p, void **arr, size_t *cap, size_t need, size_t elem);

/* uri-host [ ":" port ] (RFC 3986 section 3.2.2): no userinfo, path, list
 * or empty host. need_port: authority-form, where the port is mandatory. */
int sluice__hostport_valid(const unsigned char *p, size_t n, int need_port);

/* The fd under io when io is the stock fd transport (its bytes are the bytes
 * on the wire, so splice(2) may move them), else -1. */
int sluice__io_fd(const sluice_io *io);

/* The io a reader reads from, and a way to count bytes that were moved
 * straight from that io past the reader (splice), so that
 * sluice_reader_consumed() stays the offset in the connection's stream. */
sluice_io *sluice__reader_io(const sluice_reader *r);

/*
 * The chunked decoder (a stream from sluice_body_new with CHUNKED framing)
 * for the splice pump: like sluice_stream_poll_next, but where the data of a
 * chunk of at least splice_min bytes starts and none of it is buffered, it
 * returns SLUICE__SPLICE with *chunk_left the chunk's data bytes; the caller
 * moves n of them past the reader (sluice__reader_bypassed) and reports them
 * with sluice__chunked_bypassed, then polls on.
 */
#define SLUICE__SPLICE ((sluice_poll)4)
sluice_poll sluice__chunked_next(sluice_stream *s, sluice_bytes *out, uint64_t splice_min,
                                 uint64_t *chunk_left);
void sluice__chunked_bypassed(sluice_stream *s, uint64_t n);
/*
 * For a chunked decoder with nothing buffered that just ended a chunk's
 * data (its CRLF next) or its CRLF (a size line next): p[0, n) are the next
 * bytes in the socket (MSG_PEEK). When they are that CRLF and/or a size line
 * exactly as the chunked writer writes it ("\r\n", lowercase hex with no
 * leading zero, "\r\n") of a chunk of at least splice_min bytes within the
 * body limit, or the CRLF and nothing after it yet, the decoder takes them
 * as read: returns their length (*size: the chunk's data bytes, 0 for the
 * CRLF alone), which the caller splices as they are. Otherwise 0 and
 * nothing changes.
 */
size_t sluice__chunked_verbatim(sluice_stream *s, const unsigned char *p, size_t n,
                                uint64_t splice_min, uint64_t *size);
int sluice__reader_eof(const sluice_reader *r);
/* Caps what one fill reads (0: no cap), for a splicer that wants the bytes
 * after the framing it parses left in the socket. */
void sluice__reader_read_max(sluice_reader *r, size_t max);
void sluice__reader_bypassed(sluice_reader *r, uint64_t n);

/*
 * The clock of the head being read from a reader under a time limit
 * (lib/head.c). It lives in the reader because sluice_http_read_request is
 * otherwise stateless across calls and the reader is the per-connection
 * object it is given; head.c alone sets it, the reader only reports
 * `deadline` in sluice_reader_ready. All -1: no head being timed.
 */
typedef struct sluice__head_clock {
    int64_t first_byte; /* when a call first found a byte of this head */
    int64_t idle_since; /* when a call first found nothing to read */
    int64_t deadline;   /* the one that applies now, for the interest */
    int64_t (*now)(void *ud); /* the clock; NULL: sluice_now_ms (tests
                                 set their own, sluice__reader_set_clock) */
    void *now_ud;
} sluice__head_clock;

sluice__head_clock *sluice__reader_head_clock(sluice_reader *r);

/* With nothing unread, lets go of the blocks the reader keeps for appends
 * (views handed out keep theirs): a body that ended gives its memory back to
 * the budget while the connection waits for something else (a response,
 * the next request). */
void sluice__reader_trim(sluice_reader *r);

/*
 * A multipart part from its header block blk[0, n) (field lines through the
 * blank line): one allocation (*mem, *size bytes, from the pool's object
 * allocator) of `head` caller bytes, zeroed but for the sluice_part at
 * info_off, which is filled, then the fields, a copy of the block and the
 * decoded name and filename. Errors: SLUICE_EBAD_PART_HEADER,
 * SLUICE_EBAD_EXT_VALUE (*bad: offset in blk, *why: static detail),
 * SLUICE_ENOMEM.
 */
int sluice__part_new(sluice_pool *pool, size_t head, size_t info_off, const unsigned char *blk,
                     size_t n, void **mem, size_t *size, size_t *bad, const char **why);

/*
 * The lines of a header block still being gathered, blk[*from, n) (*from at
 * a line start), checked as they arrive, so a bad line fails at the byte
 * that proves it and not when a blank line (which may never come) ends the
 * block. *from moves past the last complete line. 0, or
 * SLUICE_EBAD_PART_HEADER (*bad: offset in blk, *why: static detail), as
 * sluice__part_new would say of the whole block.
 */
int sluice__part_check(const unsigned char *blk, size_t n, size_t *from, size_t *bad,
                       const char **why);

/*
 * A pump that is not stream -> sink: the splice pump (splice.c) and the
 * reply pump (reply.c). The object embeds sluice__engine first; sluice_pump
 * dispatches its step, error, counters and close through the vtable.
 */
typedef struct sluice__engine sluice__engine;
typedef struct sluice__engine_vt {
    sluice_pump_status (*step)(sluice__engine *e, sluice_interest *want);
    int (*error)(const sluice__engine *e, sluice_side *side);
    uint64_t (*moved)(const sluice__engine *e);
    uint64_t (*spliced)(const sluice__engine *e); /* NULL: 0 */
    void (*free)(sluice__engine *e);
} sluice__engine_vt;
struct sluice__engine {
    const sluice__engine_vt *vt;
};

int sluice__splice_new(sluice_pool *pool, sluice_reader *src, sluice_io *dst, uint64_t length,
                       sluice_bytes *head, const sluice_splice_config *cfg,
                       sluice__engine **out);
/* A non-blocking pipe of about `size` bytes (*cap: what the kernel gave);
 * -1 when none can be had. */
int sluice__pipe_open(int fds[2], size_t size, size_t *cap);
/* Makes a splice engine use fds (empty, still the lender's to close). */
void sluice__splice_lend_pipe(sluice__engine *e, const int fds[2], size_t cap);
/* A splice loop in which neither side moved: *want names dst (writable)
 * when on_dst, else the source's fd (readable), with the idle deadline.
 * False, *want cleared, once the idle time ran out (SLUICE_ETIMEDOUT). */
struct sluice__idle;
bool sluice__splice_wait(sluice_reader *src, sluice_io *dst, bool on_dst,
                         struct sluice__idle *idle, sluice_interest *want);
/* The caller saw sluice__sigpipe_ignored() true: e skips its own check. */
void sluice__splice_sigpipe_known(sluice__engine *e);
bool sluice__sigpipe_ignored(void);
/* The splice pump of a chunked body (splice_chunked.c). */
int sluice__splice_chunked_new(sluice_pool *pool, sluice_reader *src, sluice_io *dst,
                               sluice_bytes *head, const sluice_splice_config *cfg,
                               sluice__engine **out);
int sluice__reply_new(sluice_pool *pool, sluice_io *io, sluice_reader *r, sluice_bytes *response,
                      const sluice_reply_config *cfg, sluice__engine **out);

/* Fills *want with what to wait for before retrying an operation of `events`
 * that returned -EAGAIN (deadline_ms is always -1 here). */
void sluice__io_ready(sluice_io *io, int events, sluice_interest *want);

/* References a block holds now (1: only the caller's, so it may write
 * anywhere in it). */
size_t sluice__block_refs(const sluice_block *b);

#define SLUICE__UNUSED(x) ((void)(x))

/* Records a failure unless one is already recorded (errors stick). why
 * must be static or NULL (then the code's message). */
static inline void sluice__error_set(sluice_error_info *e, int code, const char *why,
                                     uint64_t offset)
{
    if (e->code)
        return;
    e->code = code ? code : SLUICE_EINVAL;
    e->message = why ? why : sluice_strerror(e->code);
    e->offset = offset;
}

/* Incremental HMAC-SHA256 (the one-shot sluice_hmac_sha256 is public). */
/* Starts a MAC under key[0, key_len) (any length; keys longer than 64 bytes
 * are hashed first, as RFC 2104 says). key may be NULL when key_len is 0.
 * Unlike sluice_sha256_ctx, an all-zero context is not usable: init first. */
void sluice__hmac_sha256_key(sluice_hmac_sha256_ctx *c, const void *key,
                                        size_t key_len);

/* MACs len more bytes. data may be NULL when len is 0. */
void sluice__hmac_sha256_update(sluice_hmac_sha256_ctx *c, const void *data, size_t len);

/* Writes the 32-byte MAC to out and wipes c (all-zero; init again to reuse). */
void sluice__hmac_sha256_final(sluice_hmac_sha256_ctx *c,
                                         unsigned char out[SLUICE_SHA256_SIZE]);

/* sluice__hmac_sha256_key() with the SHA-256 state copied from fresh (a
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

/* ---- S3 sink helpers (s3_xml.c) ------------------------------------------ */

/* The text of the first <tag>...</tag> in xml[0, n), entities decoded, into
 * out[0, cap) with a NUL (truncated to fit). Returns its length, or -1 when
 * there is no such element. */
int sluice__xml_text(const char *xml, size_t n, const char *tag, char *out, size_t cap);

/* The CompleteMultipartUpload body is written in pieces: piece i < nparts is
 * part i + 1 (the opening tag before piece 0), piece nparts the closing tag.
 * Returns the piece's length. */
#define SLUICE__S3_PIECE_SIZE 1200
size_t sluice__s3_complete_piece(size_t i, size_t nparts, const char *etag, const char *sum,
                                 char out[SLUICE__S3_PIECE_SIZE]);

/* True once the deadline passed with no progress since it was armed. */
static inline bool sluice__idle_expired(const sluice__idle *t)
{
    return t->ms && t->deadline >= 0 && !t->progressed && sluice_now_ms() >= t->deadline;
}

/*
 * For writers, before they retry a write that pended: true when the idle
 * time ran out and the io still does not report itself writable (poll with
 * no wait; an io without an fd always counts as writable). A TCP socket
 * reports writable only once a good part of its send buffer is free, so a
 * peer that takes a few bytes now and then is stalled: without this check
 * the write made at the deadline would put those few bytes in, count as
 * progress and re-arm the timer, and the stall would last a multiple of the
 * timeout.
 */
bool sluice__idle_write_stalled(const sluice__idle *t, sluice_io *io);

/*
 * Writes what is left of *b to io under the idle timeout t, advancing *b
 * (its reference stays the caller's) and adding to *written: 0 once all of
 * it went out, 1 when the io said EAGAIN (*want: its write interest and t's
 * deadline), else an error (SLUICE_ETIMEDOUT when t ran out, also after
 * the stall check above; -errno). For the pumps that write small bytes of
 * their own straight to an io (the reply pump's answer, a spliced chunk's
 * CRLF).
 */
int sluice__io_write_bytes(sluice_io *io, sluice_bytes *b, sluice__idle *t,
                           sluice_interest *want, uint64_t *written);

#endif
