/*
 * sluice/multipart.h — a streaming multipart/form-data splitter
 * (RFC 2046 section 5.1, RFC 7578) whose parts are streams.
 *
 *   char b[SLUICE_MULTIPART_BOUNDARY_MAX + 1];
 *   ssize_t n = sluice_multipart_boundary(ct, ct_len, b);   415 / 400 on error
 *   sluice_multipart_new(pool, body, b, n, NULL, &m);        takes the body
 *   while (sluice_multipart_next(m, &part) == SLUICE_READY)  one part at a time
 *       sluice_multipart_info(part)->name ... pump `part` anywhere, close it
 *   sluice_multipart_close(m);
 *
 * A part's data is a sluice_stream of views into the body's own blocks: no
 * payload byte is copied, also when a delimiter straddles two input chunks
 * (the undecided tail view is held back until the next chunk decides).
 * EOF on a part means its closing delimiter was seen; EOF from
 * sluice_multipart_next() means the close delimiter `--boundary--` was seen
 * and the body stream itself ended cleanly. A body that stops before that is
 * an ERROR (SLUICE_ETRUNCATED), never a short success.
 *
 * Lifetime: a part stream holds a reference to its splitter, so it stays
 * valid after sluice_multipart_close() and after the function that got it
 * returns; the body stream is closed when the splitter and every part are
 * closed. Parts are read in order: sluice_multipart_next() skips what is
 * left of the current part, after which that part's stream reports
 * SLUICE_ECLOSED (or EOF if nothing of it was skipped).
 *
 * Thread-safety: a splitter and its parts form one unit that one thread at a
 * time may use (e.g. hand a part to a worker thread and let it pump the part
 * to EOF; do not call the splitter meanwhile). sluice_stream_close() on a part
 * and sluice_multipart_close() only drop an atomic reference and may be called
 * on any thread, except that the call releasing the last reference closes the
 * body stream.
 */
#ifndef SLUICE_MULTIPART_H
#define SLUICE_MULTIPART_H

#include "http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RFC 2046: a boundary is 1 to 70 characters. */
#define SLUICE_MULTIPART_BOUNDARY_MAX 70

#define SLUICE_MULTIPART_DEFAULT_HEADER_BYTES (8u * 1024u)
#define SLUICE_MULTIPART_DEFAULT_PARTS 1000u

/*
 * Extracts the boundary from a Content-Type field value such as
 * `multipart/form-data; boundary="abc"` (OWS around, parameter names
 * case-insensitive, quoted or token value, other parameters skipped).
 * Writes it NUL-terminated into out and returns its length (1..70).
 * Errors: SLUICE_ENOT_MULTIPART when the media type is not
 * multipart/form-data (a host answers 415); SLUICE_EBAD_BOUNDARY when the
 * boundary is missing, repeated, empty, longer than 70, has a character
 * outside the RFC 2046 alphabet or ends in a space, or the parameters are
 * malformed (400). On error out is left as an empty string.
 * Thread-safe (no state).
 */
SLUICE_API ssize_t sluice_multipart_boundary(const char *content_type, size_t len,
                                             char out[SLUICE_MULTIPART_BOUNDARY_MAX + 1]);

/* Limits; all-zero gives the defaults. Each has its own error code. */
typedef struct sluice_multipart_limits {
    size_t max_header_bytes;  /* one part's header block, blank line included;
                                 0: 8 KiB (SLUICE_EPART_HEADER_TOO_LARGE) */
    size_t max_parts;         /* 0: 1000 (SLUICE_ETOO_MANY_PARTS)            */
    uint64_t max_part_bytes;  /* data of one part; 0: no limit
                                 (SLUICE_EPART_TOO_LARGE)                    */
    uint64_t max_body_bytes;  /* whole body, preamble and epilogue included;
                                 0: no limit (SLUICE_EBODY_TOO_LARGE)        */
} sluice_multipart_limits;

typedef struct sluice_multipart sluice_multipart;

/*
 * A splitter over `body` for the given boundary (without the leading "--").
 * Takes ownership of body, also on error (it is then closed). limits may be
 * NULL for the defaults. On success *out is the caller's; release it with
 * sluice_multipart_close().
 * Errors: SLUICE_EBAD_BOUNDARY (length 0 or > 70, or a byte outside the
 * RFC 2046 alphabet), SLUICE_ENOMEM.
 */
SLUICE_API int sluice_multipart_new(sluice_pool *pool, sluice_stream *body,
                                    const char *boundary, size_t boundary_len,
                                    const sluice_multipart_limits *limits,
                                    sluice_multipart **out);

/*
 * Advances to the next part, skipping (reading and dropping) whatever of the
 * current part was not read.
 *   SLUICE_READY    *part is the next part's data stream; the caller owns it
 *                   and closes it with sluice_stream_close(). Its headers:
 *                   sluice_multipart_info().
 *   SLUICE_PENDING  the body stream is pending; sluice_multipart_ready() says
 *                   what to wait for; call again with no change made.
 *   SLUICE_EOF      no more parts: the close delimiter was seen and the body
 *                   ended cleanly. Repeats.
 *   SLUICE_ERROR    sluice_multipart_error() says why. Sticky.
 * On anything but READY *part is NULL.
 */
SLUICE_API sluice_poll sluice_multipart_next(sluice_multipart *m, sluice_stream **part);

/*
 * Like sluice_multipart_next() until a part matches, closing the others:
 * with name != NULL the first part whose form-data name is exactly those
 * name_len bytes; with name == NULL the first part with a filename
 * (`filename` or `filename*` present, even empty). EOF: the body ended with
 * no match. PENDING: call again with the same arguments.
 */
SLUICE_API sluice_poll sluice_multipart_find(sluice_multipart *m, const char *name,
                                             size_t name_len, sluice_stream **part);

/*
 * A stream of the data of every remaining part, in order, as one body (the
 * concatenation); it ends with EOF exactly when sluice_multipart_next() would.
 * Holds a reference to m (the caller may close its own handle); while it is in
 * use, do not call sluice_multipart_next() on m. The caller owns *out.
 * Errors: SLUICE_ENOMEM.
 */
SLUICE_API int sluice_multipart_concat_new(sluice_multipart *m, sluice_stream **out);

/* What the host loop must wait for after PENDING: the body stream's interest. */
SLUICE_API void sluice_multipart_ready(sluice_multipart *m, sluice_interest *want);

/* 0 or the splitter's sticky error code; with info != NULL also its message
 * (a static string, "" without an error) and the byte offset in the body
 * where it was found. */
SLUICE_API int sluice_multipart_error(const sluice_multipart *m, sluice_error_info *info);

/* Drops the caller's handle. Parts still open keep the splitter (and the
 * body) alive until they are closed. NULL is a no-op. */
SLUICE_API void sluice_multipart_close(sluice_multipart *m);

/* ---- a part's headers ---------------------------------------------------- */

/*
 * What the header block of a part says. Strings are NUL-terminated, hold no
 * NUL, and are NULL when absent. Everything is owned by the part stream and
 * valid until it is closed.
 */
typedef struct sluice_part {
    size_t index;              /* 0 for the first part                         */
    const char *name;          /* Content-Disposition: form-data; name=...
                                  (quoted-pairs undone); NULL without a
                                  form-data disposition or name parameter     */
    size_t name_len;
    const char *filename;      /* filename* decoded to UTF-8 if present, else
                                  filename; NULL if neither (may be "")       */
    size_t filename_len;
    const char *content_type;  /* the part's Content-Type value; NULL if none */
    size_t content_type_len;
    const sluice_http_header *headers; /* every field, in order, names and
                                  values NUL-terminated (value_len excludes
                                  the NUL); find with sluice_http_header_find */
    size_t nheaders;
} sluice_part;

/* The headers of a part stream returned by this module; NULL for any other
 * stream. Borrowed: valid until the part stream is closed. */
SLUICE_API const sluice_part *sluice_multipart_info(const sluice_stream *part);

#ifdef __cplusplus
}
#endif

#endif
