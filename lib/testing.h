/*
 * testing.h — hooks for the project's own tests, fuzzers and benchmarks.
 * Compiled into the library (so the static archive links them) but hidden
 * from the shared one and never installed: not part of the API.
 */
#ifndef SLUICE_TESTING_H
#define SLUICE_TESTING_H

#include "sluice.h"

/* How many chunks a memory stream has yielded so far (how far a consumer
 * pulled). SLUICE_EINVAL if s is not a memory stream. */
ssize_t sluice__memstream_yielded(const sluice_stream *s);

/* While blocked, a vector sink's poll_write, flush and finish return PENDING
 * (interest: none, poll again), as a peer that stopped reading would. */
int sluice__vecsink_set_blocked(sluice_sink *k, int blocked);

/*
 * An in-memory io: reads return `data` (borrowed: it must outlive io) at
 * most max_read bytes per call (0: no cap), then 0 (end of stream). With
 * SLUICE__IO_MEM_EAGAIN every read that would return data first returns
 * -EAGAIN once, as a socket whose bytes arrive one packet at a time. Writes
 * are accepted whole and only counted. fd is -1. Errors: SLUICE_ENOMEM.
 */
#define SLUICE__IO_MEM_EAGAIN 1u
int sluice__io_mem_new(sluice_pool *pool, const void *data, size_t len, size_t max_read,
                       unsigned flags, sluice_io **out);

/* Makes the head deadlines of sluice_http_read_request / _response on r
 * read time from now(ud) instead of CLOCK_MONOTONIC (NULL: the clock again),
 * so tests can set exact times. */
void sluice__reader_set_clock(sluice_reader *r, int64_t (*now)(void *ud), void *ud);

/* Bytes written to an in-memory io so far; SLUICE_EINVAL for other ios. */
ssize_t sluice__io_mem_written(const sluice_io *io);

/* Copies up to cap bytes of the concatenated chunks into buf; returns the
 * total number of bytes kept (which may exceed cap), or SLUICE_EINVAL. */
ssize_t sluice__vecsink_copy(const sluice_sink *k, void *buf, size_t cap);

/* Debugging and test aids of the SigV4 signer (lib/sigv4.c). */
/*
 * Formats t (seconds since the epoch, UTC) as an amz date "YYYYMMDDTHHMMSSZ".
 * SLUICE_EINVAL when the year is outside 0..9999.
 */
int sluice__sigv4_amz_date(time_t t, char out[SLUICE_SIGV4_AMZ_DATE_SIZE]);

/*
 * Writes the canonical request (the text whose SHA-256 is signed) and a NUL,
 * as sluice_sigv4_target() writes the target. Not needed to sign; it is what
 * to compare with the CanonicalRequest in an S3 SignatureDoesNotMatch error.
 * SLUICE_EINVAL as for sluice_sigv4_sign().
 */
int sluice__sigv4_canonical_request(const sluice_sigv4_request *req,
                                              const sluice_sigv4_credentials *cred, char *out,
                                              size_t cap, size_t *len);


/* S3 sink (lib/s3.c): sign every request at time t instead of the clock
 * (0: the clock again), and use part_size even below S3's 5 MiB minimum.
 * Call before the first write. SLUICE_EINVAL if k is not an S3 sink. */
int sluice__s3_sink_testing(sluice_sink *k, time_t t, size_t part_size);

/* One field of an object's error record, for assertions. */
static inline const char *t_stream_why(const sluice_stream *s)
{
    sluice_error_info e;
    sluice_stream_error(s, &e);
    return e.message;
}

static inline uint64_t t_stream_where(const sluice_stream *s)
{
    sluice_error_info e;
    sluice_stream_error(s, &e);
    return e.offset;
}

static inline const char *t_multipart_why(const sluice_multipart *m)
{
    sluice_error_info e;
    sluice_multipart_error(m, &e);
    return e.message;
}

static inline uint64_t t_multipart_where(const sluice_multipart *m)
{
    sluice_error_info e;
    sluice_multipart_error(m, &e);
    return e.offset;
}

static inline sluice_side t_pump_side(const sluice_pump *p)
{
    sluice_side side;
    sluice_pump_error(p, &side);
    return side;
}

#endif
