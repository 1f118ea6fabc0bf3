/*
 * multipart.c — multipart/form-data splitter whose parts are streams.
 *
 * The delimiter is CRLF "--" boundary followed by '-', SP, HTAB or CR; with
 * any other byte after it the match is a look-alike and belongs to the data
 * (as in Go's mime/multipart, except that Go also takes LF). Boundary
 * characters never include CR, so a CR occurs in CRLF "--" boundary only at
 * its first byte: it cannot overlap itself, and the byte that rejects a
 * look-alike is not a CR either. That gives the two facts the data path rests
 * on:
 *
 *   - inside one chunk, a skip-table search finds the next match (after a
 *     look-alike, scanning goes on from its end: the CRs of a short window
 *     first, then the search again), and only the last CR among the chunk's
 *     final dlen bytes can start a delimiter that the next chunk decides;
 *   - bytes held back because they might start a delimiter are always exactly
 *     delim[0..hlen), hlen <= dlen. So whether the next chunk completes them
 *     is one memcmp and one byte, and if it does not, all of them are data
 *     (no partial restart is possible). The held views (at most dlen bytes,
 *     from at most dlen chunks) are then yielded as they are: payload is
 *     never copied.
 *
 * Everything else (the few bytes after a boundary, the part header block) is
 * off the data path: header blocks are copied once into the part object,
 * which owns them together with the decoded name and filename (part.c);
 * the boundary parameter of the Content-Type is boundary.c's.
 *
 * Parts hold a reference on the splitter; an index tells a part whether the
 * splitter still reads its data, so closing a part touches only the atomic
 * reference count.
 */
#define _GNU_SOURCE /* memmem, for the header block's blank line */
#include "internal.h"

#include "chars.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define DELIM_MAX (4 + SLUICE_MULTIPART_BOUNDARY_MAX) /* CRLF "--" boundary */

/* The delimiter search is Horspool's on byte pairs: the pair ending at the
 * last byte of the window picks the shift. A pair absent from the delimiter
 * (on random data, nearly all of them with 1024 buckets) moves the window by
 * dlen - 1 at a constant stride, so the loads do not wait on each other;
 * single bytes would hit the delimiter's ~30 distinct bytes every few
 * steps. */
#define PAIR_BUCKETS 1024u
#define PAIR_HASH(p) ((((unsigned)(p)[-1] << 2) ^ (p)[0]) & (PAIR_BUCKETS - 1))

enum state {
    ST_PREAMBLE,    /* before the first delimiter: dropped                     */
    ST_DATA,        /* a part's data                                           */
    ST_AFTER_DELIM, /* after "--boundary": "--", or whitespace then CRLF      */
    ST_HEADERS,     /* a part's header block                                   */
    ST_EPILOGUE,    /* after the close delimiter: dropped until the body's EOF */
    ST_DONE,
    ST_FAILED
};

enum after { AD_START, AD_DASH, AD_WS, AD_CR };

struct sluice_multipart {
    sluice_pool *pool;
    sluice_stream *body;
    atomic_size_t refs;
    sluice_multipart_limits lim;
    enum state state;
    enum after after;
    unsigned char delim[DELIM_MAX];
    size_t dlen;
    /* Per pair bucket: 0 when no pair of the delimiter falls in it, 1 when
     * its last pair does, else 1 + the shift that brings the rightmost such
     * pair (before the last) under the window's end. */
    unsigned char pair_skip[PAIR_BUCKETS];
    size_t cand_skip;       /* shift past a candidate that did not match     */

    sluice_bytes cur;       /* unread rest of the current input chunk        */
    uint64_t pos;           /* body offset of cur.data                       */
    bool at_delim;          /* cur is known to start with the delimiter      */
    bool body_over;         /* body limit reached: the next pull fails       */

    /* Held back: the last hlen bytes seen equal delim[0..hlen), hlen <= dlen
     * (all of it: the byte after it decides). Their views are kept (in
     * order) only while a part is being read; once they prove to be data
     * (held_data), they are yielded from held_next on. */
    sluice_bytes held[DELIM_MAX];
    size_t nheld, held_next, hlen;
    size_t hvirt;           /* leading held bytes that are a virtual CRLF     */
    bool held_data;

    size_t nparts;          /* parts handed out; the current is nparts-1     */
    size_t done_parts;      /* parts whose closing delimiter was seen        */
    bool last_clean;        /* ...and the last of them lost no data to a skip */
    bool abandoned;         /* next() moved on from the current part         */
    bool skipped;           /* data of the current part was dropped          */
    bool part_over;         /* the part limit is reached: fail next          */
    uint64_t part_bytes;    /* data bytes of the current part so far         */
    uint64_t part_start;    /* body offset of the current part's data        */

    unsigned char *hbuf;    /* header block being gathered, after a virtual
                               CRLF (the one ending the boundary line)       */
    size_t hcap, hused;
    size_t hcheck;          /* of hbuf + 2: where the first line not yet
                               proven good starts                            */
    uint64_t hstart;        /* body offset of the header block               */

    sluice_error_info error; /* sticky; parts report it too */
};

typedef struct part_stream {
    sluice_stream base;
    sluice_multipart *m;
    sluice_part info;
    size_t size;            /* of this allocation, with what follows it      */
} part_stream;

typedef struct concat_stream {
    sluice_stream base;
    sluice_multipart *m;
    sluice_stream *part;
} concat_stream;

static const sluice_stream_vtable part_vt;
static const sluice_stream_vtable concat_vt;

static sluice_poll mp_fail(sluice_multipart *m, int code, const char *why, uint64_t off);
static void mp_release(sluice_multipart *m);
static sluice_poll mp_scan(sluice_multipart *m, bool deliver, sluice_bytes *out);
static sluice_poll mp_after_delim(sluice_multipart *m);
static sluice_poll mp_headers(sluice_multipart *m, sluice_stream **part);
static sluice_poll mp_epilogue(sluice_multipart *m);

/* ---- splitter ------------------------------------------------------------ */

/* The pair table for m->delim (see PAIR_BUCKETS). Pair i is delim[i-1..i];
 * later pairs overwrite earlier ones, so a bucket keeps the smallest shift
 * of all its pairs: never more than is safe. */
static void build_skip(sluice_multipart *m)
{
    const size_t last = m->dlen - 1;
    const unsigned hlast = PAIR_HASH(m->delim + last);
    memset(m->pair_skip, 0, sizeof m->pair_skip);
    m->cand_skip = last;
    for (size_t i = 1; i < last; i++) {
        unsigned h = PAIR_HASH(m->delim + i);
        m->pair_skip[h] = (unsigned char)(1 + last - i);
        if (h == hlast)
            m->cand_skip = last - i;
    }
    m->pair_skip[hlast] = 1;
}

int sluice_multipart_new(sluice_pool *pool, sluice_stream *body, const char *boundary,
                         size_t boundary_len, const sluice_multipart_limits *limits,
                         sluice_multipart **out)
{
    *out = NULL;
    bool ok = boundary_len >= 1 && boundary_len <= SLUICE_MULTIPART_BOUNDARY_MAX &&
              boundary[boundary_len - 1] != ' ';
    for (size_t i = 0; ok && i < boundary_len; i++)
        ok = sluice__is((unsigned char)boundary[i], SLUICE__C_BCHAR);
    if (!ok) {
        sluice_stream_close(body);
        return SLUICE_EBAD_BOUNDARY;
    }
    sluice_multipart *m = sluice_pool_object_alloc(pool, sizeof *m);
    if (!m) {
        sluice_stream_close(body);
        return SLUICE_ENOMEM;
    }
    memset(m, 0, sizeof *m);
    m->pool = pool;
    m->body = body;
    atomic_init(&m->refs, 1);
    if (limits)
        m->lim = *limits;
    if (!m->lim.max_header_bytes)
        m->lim.max_header_bytes = SLUICE_MULTIPART_DEFAULT_HEADER_BYTES;
    if (!m->lim.max_parts)
        m->lim.max_parts = SLUICE_MULTIPART_DEFAULT_PARTS;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, boundary, boundary_len);
    m->dlen = 4 + boundary_len;
    build_skip(m);
    m->state = ST_PREAMBLE;
    m->hlen = m->hvirt = 2; /* the body's start counts as a CRLF: a first
                               delimiter may open the body without one */
    *out = m;
    return 0;
}

sluice_poll sluice_multipart_next(sluice_multipart *m, sluice_stream **part)
{
    *part = NULL;
    for (;;) {
        sluice_poll r;
        switch (m->state) {
        case ST_DATA:
            m->abandoned = true;
            /* fall through */
        case ST_PREAMBLE:
            r = mp_scan(m, false, NULL);
            if (r != SLUICE_EOF)
                return r;
            break;
        case ST_AFTER_DELIM:
            r = mp_after_delim(m);
            if (r != SLUICE_READY)
                return r;
            break;
        case ST_HEADERS:
            return mp_headers(m, part);
        case ST_EPILOGUE:
            return mp_epilogue(m);
        case ST_DONE:
            return SLUICE_EOF;
        case ST_FAILED:
        default:
            return SLUICE_ERROR;
        }
    }
}

sluice_poll sluice_multipart_find(sluice_multipart *m, const char *name, size_t name_len,
                                  sluice_stream **part)
{
    for (;;) {
        sluice_poll r = sluice_multipart_next(m, part);
        if (r != SLUICE_READY)
            return r;
        const sluice_part *p = sluice_multipart_info(*part);
        if (name ? p->name && p->name_len == name_len && !memcmp(p->name, name, name_len)
                 : p->filename != NULL)
            return SLUICE_READY;
        sluice_stream_close(*part);
        *part = NULL;
    }
}

void sluice_multipart_ready(sluice_multipart *m, sluice_interest *want)
{
    sluice_stream_ready(m->body, want);
}

int sluice_multipart_error(const sluice_multipart *m, sluice_error_info *info)
{
    return sluice__error_copy(&m->error, info);
}

void sluice_multipart_close(sluice_multipart *m)
{
    if (m)
        mp_release(m);
}

static void mp_release(sluice_multipart *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    sluice_bytes_release(&m->cur);
    for (size_t i = 0; i < m->nheld; i++)
        sluice_bytes_release(&m->held[i]);
    sluice_stream_close(m->body);
    sluice__free(m->pool, m->hbuf, m->hcap);
    sluice_pool_object_free(m->pool, m, sizeof *m);
}

static sluice_multipart *mp_ref(sluice_multipart *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

static sluice_poll mp_fail(sluice_multipart *m, int code, const char *why, uint64_t off)
{
    sluice__error_set(&m->error, code, why, off);
    m->state = ST_FAILED;
    return SLUICE_ERROR;
}

/* ---- input --------------------------------------------------------------- */

/* Drops n bytes from the front of cur (they were used or are not needed). */
static void consume(sluice_multipart *m, size_t n)
{
    sluice_bytes_advance(&m->cur, n);
    m->pos += n;
    if (!m->cur.len)
        sluice_bytes_release(&m->cur);
}

/* Refills the empty cur from the body. READY: cur is not empty. EOF only in
 * the epilogue; anywhere else the body ended too early. */
static sluice_poll pull(sluice_multipart *m)
{
    if (m->body_over)
        return mp_fail(m, SLUICE_EBODY_TOO_LARGE, NULL, m->lim.max_body_bytes);
    sluice_bytes b;
    sluice_poll r = sluice_stream_poll_next(m->body, &b);
    if (r == SLUICE_PENDING)
        return r;
    if (r == SLUICE_EOF) {
        if (m->state == ST_EPILOGUE) {
            m->state = ST_DONE;
            return SLUICE_EOF;
        }
        /* The body arrived whole, by its own framing: the client is still
         * there and waits for an answer (400), unlike a peer that vanished
         * (the body's own SLUICE_ETRUNCATED, below). */
        return mp_fail(m, SLUICE_ENO_CLOSE_DELIMITER,
                       m->state == ST_PREAMBLE ? "body ended before the first boundary"
                                               : "body ended before the close delimiter",
                       m->pos);
    }
    if (r != SLUICE_READY)
        return mp_fail(m, m->body->_error.code, m->body->_error.message, m->pos);
    uint64_t max = m->lim.max_body_bytes;
    if (max && b.len > max - m->pos) {
        /* Keep the bytes within the limit, so errors before it are still
         * found at their byte, whatever the chunking. */
        sluice_bytes_truncate(&b, (size_t)(max - m->pos));
        m->body_over = true;
        if (!b.len) {
            sluice_bytes_release(&b);
            return mp_fail(m, SLUICE_EBODY_TOO_LARGE, NULL, max);
        }
    }
    m->cur = b;
    return SLUICE_READY;
}

/* ---- data path ------------------------------------------------------------ */

/* n more bytes proved to be data (of the current part; in the preamble they
 * do not count). Returns how many of them the part limit lets through; when
 * that is fewer, part_over is set and the scan fails once they are out, so
 * exactly max_part_bytes are delivered whatever the chunking. */
static size_t allow_data(sluice_multipart *m, size_t n, bool deliver)
{
    if (m->state != ST_DATA)
        return n;
    uint64_t max = m->lim.max_part_bytes;
    if (max && n > max - m->part_bytes) {
        n = (size_t)(max - m->part_bytes);
        m->part_over = true;
    }
    m->part_bytes += n;
    if (!deliver && n)
        m->skipped = true;
    return n;
}

/* Keeps only the first n of the held bytes' views. */
static void held_truncate(sluice_multipart *m, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < m->nheld; i++) {
        if (n == 0) {
            sluice_bytes_release(&m->held[i]);
            continue;
        }
        sluice_bytes_truncate(&m->held[i], n);
        n -= m->held[i].len;
        kept = i + 1;
    }
    m->nheld = kept;
}

/* Whether the byte after CRLF "--" boundary makes the match a delimiter. */
static bool opens_delim_tail(unsigned char c)
{
    return c == '-' || c == ' ' || c == '\t' || c == '\r';
}

/* The length of the longest suffix of cur that is a proper prefix of the
 * delimiter. Only the last CR can start one (see the top of the file). */
static size_t tail_prefix(const sluice_multipart *m)
{
    size_t w = m->cur.len < m->dlen - 1 ? m->cur.len : m->dlen - 1;
    const unsigned char *end = m->cur.data + m->cur.len;
    for (size_t k = 1; k <= w; k++) {
        if (end[-(ptrdiff_t)k] == '\r')
            return memcmp(end - k, m->delim, k) == 0 ? k : 0;
    }
    return 0;
}

/* The first delimiter in [s, end), or NULL, by the pair table. The window
 * ends at s[i]; when the pair ending there is absent from the delimiter, no
 * match can end before s[i + dlen - 1] (it would contain the pair). */
static const unsigned char *search(const sluice_multipart *m, const unsigned char *s,
                                   const unsigned char *end)
{
    const size_t dlen = m->dlen, step = dlen - 1, n = (size_t)(end - s);
    const unsigned char *skip = m->pair_skip;
    /* Indices, not pointers: a stride may land past the end. */
    for (size_t i = step; i < n;) {
        unsigned t = skip[PAIR_HASH(s + i)];
        if (!t) {
            /* Four windows per branch while they fit: the probes are
             * independent loads, and data rarely holds a delimiter pair. */
            while (n - i > 4 * step &&
                   !(skip[PAIR_HASH(s + i + step)] | skip[PAIR_HASH(s + i + 2 * step)] |
                     skip[PAIR_HASH(s + i + 3 * step)] | skip[PAIR_HASH(s + i + 4 * step)]))
                i += 4 * step;
            do
                i += step;
            while (i < n && !skip[PAIR_HASH(s + i)]);
        } else if (t > 1) {
            i += t - 1;
        } else if (!memcmp(s + i - step, m->delim, dlen)) {
            return s + i - step;
        } else {
            i += m->cand_skip;
        }
    }
    return NULL;
}

/* The first CRLF "--" boundary in [from, end), or NULL. The CRs before
 * `near` are tried one by one first: right after a look-alike the next one
 * is often close, and in a flood of them memchr finds it sooner than the
 * search's strides would. The window is bounded, so this adds O(dlen) per
 * look-alike. */
static const unsigned char *find_match(const sluice_multipart *m, const unsigned char *from,
                                       const unsigned char *near, const unsigned char *end)
{
    while (from < near) {
        const unsigned char *cr = memchr(from, '\r', (size_t)(near - from));
        if (!cr)
            break;
        if ((size_t)(end - cr) < m->dlen)
            return NULL; /* no room for a match here or later */
        if (!memcmp(cr, m->delim, m->dlen))
            return cr;
        from = cr + 1;
    }
    if (from < near)
        from = near;
    return search(m, from, end);
}

/* Where the data in cur ends: at a delimiter (*found) or at a tail the next
 * chunk decides (a prefix of the delimiter, or all of it with no byte after
 * it yet); cur.len when neither. Look-alikes are data: scanning goes on
 * after them (their rejecting byte is no CR, so nothing starts before). */
static size_t data_end(const sluice_multipart *m, bool *found)
{
    const unsigned char *s = m->cur.data, *end = s + m->cur.len, *from = s, *near = s;
    *found = false;
    for (;;) {
        const unsigned char *f = find_match(m, from, near, end);
        if (!f)
            return m->cur.len - tail_prefix(m);
        if (f + m->dlen == end)
            return (size_t)(f - s);
        if (opens_delim_tail(f[m->dlen])) {
            *found = true;
            return (size_t)(f - s);
        }
        from = f + m->dlen + 1;
        near = (size_t)(end - from) > 2 * m->dlen ? from + 2 * m->dlen : end;
    }
}

/* Moves cur (all of it a continuation of the held prefix) into held. */
static void hold_cur(sluice_multipart *m, bool deliver)
{
    m->hlen += m->cur.len;
    m->pos += m->cur.len;
    if (deliver)
        m->held[m->nheld++] = m->cur;
    else
        sluice_bytes_release(&m->cur);
    m->cur = (sluice_bytes){0};
}

/* The delimiter has just been consumed. */
static sluice_poll found_delim(sluice_multipart *m)
{
    for (size_t i = 0; i < m->nheld; i++)
        sluice_bytes_release(&m->held[i]);
    m->nheld = m->held_next = m->hlen = m->hvirt = 0;
    m->held_data = false;
    if (m->state == ST_DATA) {
        m->done_parts++;
        m->last_clean = !m->skipped;
    }
    m->state = ST_AFTER_DELIM;
    m->after = AD_START;
    return SLUICE_EOF;
}

/*
 * Reads the preamble or the current part's data up to and including the next
 * delimiter. deliver: data chunks are returned (READY, one reference to the
 * caller in *out); otherwise they are dropped. EOF: the delimiter was
 * consumed. PENDING: the body is pending. ERROR: m failed.
 */
static sluice_poll mp_scan(sluice_multipart *m, bool deliver, sluice_bytes *out)
{
    for (;;) {
        if (m->held_data) {
            if (m->held_next < m->nheld) {
                sluice_bytes b = m->held[m->held_next];
                m->held[m->held_next++] = (sluice_bytes){0};
                if (deliver) {
                    *out = b;
                    return SLUICE_READY;
                }
                m->skipped = true; /* proved data earlier, dropped now */
                sluice_bytes_release(&b);
                continue;
            }
            m->nheld = m->held_next = m->hlen = 0;
            m->held_data = false;
        }
        if (m->part_over)
            return mp_fail(m, SLUICE_EPART_TOO_LARGE, NULL,
                           m->part_start + m->lim.max_part_bytes);
        if (!m->cur.len) {
            sluice_poll r = pull(m);
            if (r != SLUICE_READY)
                return r;
        }
        if (m->hlen) {
            size_t need = m->dlen - m->hlen;
            size_t k = m->cur.len < need ? m->cur.len : need;
            if (memcmp(m->cur.data, m->delim + m->hlen, k) == 0) {
                if (m->cur.len <= need) { /* the deciding byte is still to come */
                    hold_cur(m, deliver);
                    continue;
                }
                if (opens_delim_tail(m->cur.data[need])) {
                    consume(m, need);
                    return found_delim(m);
                }
            }
            /* No delimiter (a mismatch or a look-alike): every held byte is
             * data (a virtual CRLF is not); cur is scanned from its start. */
            size_t n = m->hlen - m->hvirt, ok = allow_data(m, n, deliver);
            if (ok < n)
                held_truncate(m, ok);
            m->hvirt = 0;
            m->held_data = true;
            m->held_next = 0;
            continue;
        }
        size_t p = 0;
        bool found = m->at_delim;
        if (!found)
            p = data_end(m, &found);
        if (found && p == 0) {
            m->at_delim = false;
            consume(m, m->dlen);
            return found_delim(m);
        }
        if (p == 0) { /* all of cur may start a delimiter: wait for more */
            hold_cur(m, deliver);
            continue;
        }
        size_t ok = allow_data(m, p, deliver);
        m->at_delim = found && ok == p; /* cur starts with it once p bytes are gone */
        if (!ok)
            continue; /* the part limit fails it */
        p = ok;
        if (deliver) {
            if (p == m->cur.len) { /* hand over cur itself: no reference traffic */
                *out = m->cur;
                m->cur = (sluice_bytes){0};
            } else {
                sluice_bytes_slice(&m->cur, 0, p, out); /* p < cur.len: cannot fail */
                sluice_bytes_advance(&m->cur, p);
            }
            m->pos += p;
            return SLUICE_READY;
        }
        consume(m, p);
    }
}

/* ---- boundary line, header block, epilogue ------------------------------- */

/* After "--boundary" (the scan saw '-', SP, HTAB or CR next): "--" (close),
 * or [SP/HTAB]* CRLF (a part follows). READY: state moved on. */
static sluice_poll mp_after_delim(sluice_multipart *m)
{
    for (;;) {
        if (!m->cur.len) {
            sluice_poll r = pull(m);
            if (r != SLUICE_READY)
                return r;
        }
        size_t i = 0, n = m->cur.len;
        const unsigned char *s = m->cur.data;
        for (; i < n; i++) {
            unsigned char c = s[i];
            switch (m->after) {
            case AD_START:
                if (c == '-') {
                    m->after = AD_DASH;
                    continue;
                }
                /* fall through */
            case AD_WS:
                if (c == ' ' || c == '\t') {
                    m->after = AD_WS;
                    continue;
                }
                if (c == '\r') {
                    m->after = AD_CR;
                    continue;
                }
                return mp_fail(m, SLUICE_EBAD_DELIMITER,
                               "boundary not followed by whitespace and CRLF, or by --",
                               m->pos + i);
            case AD_DASH:
                if (c != '-')
                    return mp_fail(m, SLUICE_EBAD_DELIMITER, "boundary followed by a lone -",
                                   m->pos + i);
                consume(m, i + 1);
                m->state = ST_EPILOGUE;
                return SLUICE_READY;
            case AD_CR:
                if (c != '\n')
                    return mp_fail(m, SLUICE_EBAD_DELIMITER, "CR without LF after a boundary",
                                   m->pos + i);
                consume(m, i + 1);
                if (m->nparts >= m->lim.max_parts)
                    return mp_fail(m, SLUICE_ETOO_MANY_PARTS, NULL, m->pos);
                m->state = ST_HEADERS;
                m->hstart = m->pos;
                m->hused = m->hcheck = 0;
                return SLUICE_READY;
            }
        }
        consume(m, n);
    }
}

static int hbuf_append(sluice_multipart *m, const unsigned char *p, size_t n)
{
    if (m->hused + n > m->hcap) {
        size_t cap = m->hcap;
        if (sluice__grow(m->pool, (void **)&m->hbuf, &cap, m->hused + n, 1) < 0)
            return SLUICE_ENOMEM;
        m->hcap = cap;
    }
    memcpy(m->hbuf + m->hused, p, n);
    m->hused += n;
    return 0;
}

static sluice_poll make_part(sluice_multipart *m, sluice_stream **out);

/* Gathers the header block up to its blank line, then makes the part. */
static sluice_poll mp_headers(sluice_multipart *m, sluice_stream **part)
{
    static const unsigned char crlf2[4] = {'\r', '\n', '\r', '\n'};
    const size_t max = m->lim.max_header_bytes;
    if (!m->hused && hbuf_append(m, crlf2, 2) < 0) /* the boundary line's CRLF */
        return mp_fail(m, SLUICE_ENOMEM, NULL, m->pos);
    for (;;) {
        if (!m->cur.len) {
            sluice_poll r = pull(m);
            if (r != SLUICE_READY)
                return r;
        }
        /* The blank line may straddle chunks: j of its bytes already here. */
        size_t end = 0;
        for (size_t j = 3; j >= 1 && !end; j--) {
            if (m->hused >= j && m->cur.len >= 4 - j &&
                !memcmp(m->hbuf + m->hused - j, crlf2, j) &&
                !memcmp(m->cur.data, crlf2 + j, 4 - j))
                end = 4 - j;
        }
        if (!end) {
            const unsigned char *f = memmem(m->cur.data, m->cur.len, crlf2, 4);
            end = f ? (size_t)(f - m->cur.data) + 4 : 0;
        }
        size_t take = end ? end : m->cur.len, room = max + 2 - m->hused;
        bool over = take > room; /* the block (or its blank line) passes the limit */
        if (over)
            take = room;
        if (hbuf_append(m, m->cur.data, take) < 0)
            return mp_fail(m, SLUICE_ENOMEM, NULL, m->pos);
        consume(m, take);
        if (!end || over) {
            /* the lines so far, before waiting or before the limit fails
             * the block: the first byte that proves a fault decides */
            size_t bad;
            const char *why;
            if (sluice__part_check(m->hbuf + 2, m->hused - 2, &m->hcheck, &bad, &why) < 0)
                return mp_fail(m, SLUICE_EBAD_PART_HEADER, why, m->hstart + bad);
            if (over)
                return mp_fail(m, SLUICE_EPART_HEADER_TOO_LARGE, NULL, m->hstart + max);
            continue;
        }
        sluice_poll r = make_part(m, part);
        m->hused = 0;
        return r;
    }
}

static sluice_poll mp_epilogue(sluice_multipart *m)
{
    for (;;) {
        if (m->cur.len)
            consume(m, m->cur.len);
        sluice_poll r = pull(m);
        if (r != SLUICE_READY)
            return r;
    }
}

/* Turns the gathered header block (after the virtual CRLF) into a part. */
static sluice_poll make_part(sluice_multipart *m, sluice_stream **out)
{
    const unsigned char *blk = m->hbuf + 2;
    size_t n = m->hused > 2 ? m->hused - 2 : 0, bad = 0; /* >= 2: the blank line */
    const char *why = NULL;
    void *mem;
    size_t size;
    int rc = sluice__part_new(m->pool, sizeof(part_stream), offsetof(part_stream, info), blk, n,
                              &mem, &size, &bad, &why);
    if (rc < 0)
        return mp_fail(m, rc, why, rc == SLUICE_ENOMEM ? m->pos : m->hstart + bad);
    part_stream *ps = mem;
    ps->size = size;
    ps->info.index = m->nparts;
    ps->base.vt = &part_vt;
    ps->base.pool = m->pool;
    ps->m = mp_ref(m);
    m->nparts++;
    m->state = ST_DATA;
    m->skipped = m->abandoned = m->part_over = false;
    m->part_bytes = 0;
    m->part_start = m->pos;
    /* The blank line's CRLF may double as the delimiter's: data that opens
     * with a delimiter "--boundary" (then '-', SP, HTAB or CR) is an empty
     * part (RFC 2046 body-part without CRLF *OCTET), as in Go's
     * mime/multipart; "--boundaryx" is data. */
    m->hlen = m->hvirt = 2;
    *out = &ps->base;
    return SLUICE_READY;
}

/* ---- part and concatenation streams -------------------------------------- */

static sluice_poll fail_from(sluice_stream *s, const sluice_multipart *m)
{
    return sluice_stream_fail(s, m->error.code, m->error.message, m->error.offset);
}

static sluice_poll part_poll(sluice_stream *s, sluice_bytes *out)
{
    part_stream *ps = (part_stream *)s;
    sluice_multipart *m = ps->m;
    size_t i = ps->info.index;
    if (i < m->done_parts) {
        if (i + 1 == m->done_parts && m->last_clean)
            return SLUICE_EOF;
        return sluice_stream_fail(s, SLUICE_ECLOSED, "the splitter skipped past this part",
                                  m->pos);
    }
    if (m->state == ST_FAILED)
        return fail_from(s, m);
    if (m->abandoned || m->state != ST_DATA || i + 1 != m->nparts)
        return sluice_stream_fail(s, SLUICE_ECLOSED, "the splitter skipped past this part",
                                  m->pos);
    sluice_poll r = mp_scan(m, true, out);
    if (r == SLUICE_ERROR)
        return fail_from(s, m);
    return r; /* READY, PENDING, or EOF: this part's delimiter was consumed */
}

static void part_ready(sluice_stream *s, sluice_interest *want)
{
    sluice_stream_ready(((part_stream *)s)->m->body, want);
}

static void part_close(sluice_stream *s)
{
    part_stream *ps = (part_stream *)s;
    sluice_multipart *m = ps->m;
    sluice_pool_object_free(s->pool, ps, ps->size);
    mp_release(m);
}

static const sluice_stream_vtable part_vt = {"multipart part", part_poll, part_ready,
                                             part_close};

const sluice_part *sluice_multipart_info(const sluice_stream *s)
{
    return s && s->vt == &part_vt ? &((const part_stream *)s)->info : NULL;
}

static sluice_poll concat_poll(sluice_stream *s, sluice_bytes *out)
{
    concat_stream *c = (concat_stream *)s;
    for (;;) {
        if (!c->part) {
            sluice_poll r = sluice_multipart_next(c->m, &c->part);
            if (r == SLUICE_ERROR)
                return fail_from(s, c->m);
            if (r != SLUICE_READY)
                return r;
        }
        sluice_poll r = sluice_stream_poll_next(c->part, out);
        if (r == SLUICE_ERROR)
            return sluice_stream_fail(s, c->part->_error.code, c->part->_error.message,
                                      c->part->_error.offset);
        if (r != SLUICE_EOF)
            return r;
        sluice_stream_close(c->part);
        c->part = NULL;
    }
}

static void concat_ready(sluice_stream *s, sluice_interest *want)
{
    sluice_stream_ready(((concat_stream *)s)->m->body, want);
}

static void concat_close(sluice_stream *s)
{
    concat_stream *c = (concat_stream *)s;
    sluice_stream_close(c->part);
    mp_release(c->m);
    sluice_pool_object_free(s->pool, c, sizeof *c);
}

static const sluice_stream_vtable concat_vt = {"multipart concat", concat_poll, concat_ready,
                                               concat_close};

int sluice_multipart_concat_new(sluice_multipart *m, sluice_stream **out)
{
    *out = NULL;
    concat_stream *c = sluice_pool_object_alloc(m->pool, sizeof *c);
    if (!c)
        return SLUICE_ENOMEM;
    memset(c, 0, sizeof *c);
    c->base.vt = &concat_vt;
    c->base.pool = m->pool;
    c->m = mp_ref(m);
    *out = &c->base;
    return 0;
}
