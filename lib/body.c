/*
 * body.c — Content-Length, chunked and read-until-close bodies over a reader.
 *
 * Payload is never touched: a body stream takes views of the reader's
 * blocks (sluice_reader_take), so the only copy of a body byte is the
 * kernel's. Only framing is scanned: the chunked decoder runs a small state
 * machine over the size line, extensions and CRLFs in place (at most a
 * couple of dozen bytes per chunk unless extensions are sent), and trailer
 * lines are located with memchr and copied once into a buffer the stream
 * owns, so the fields the host reads after EOF stay valid.
 *
 * The state machine consumes every byte it has judged, so its result never
 * depends on how the bytes were split across reads: each error is raised at
 * the first byte that proves it, with that byte's offset.
 */
#include "internal.h"

#include <stdbool.h>
#include <string.h>

enum kind { K_LENGTH, K_CHUNKED, K_CLOSE };

enum state {
    S_SIZE0,        /* first hex digit of a chunk size */
    S_SIZE,         /* more digits, or what ends the size */
    S_SIZE_BWS,     /* whitespace after the size: only ";" may follow */
    S_EXT_NAME0,    /* after ";": BWS, then an ext-name */
    S_EXT_NAME,
    S_EXT_NAME_BWS, /* whitespace after a name: "=" or ";" must follow */
    S_EXT_VAL0,     /* after "=": BWS, then a token or quoted-string */
    S_EXT_TOKEN,
    S_EXT_QS,
    S_EXT_QS_ESC,
    S_EXT_QS_END,
    S_EXT_VAL_BWS,  /* whitespace after a value: ";" must follow */
    S_LINE_LF,      /* CR seen, LF must follow */
    S_DATA,
    S_DATA_CR,
    S_DATA_LF,
    S_TRAILER0,     /* start of a trailer line, or the final CRLF */
    S_TRAILER,      /* inside a trailer field line */
    S_END_LF,
    S_DONE
};

typedef struct body {
    sluice_stream base;
    sluice_reader *r;
    enum kind kind;
    enum state state;
    uint64_t remaining;      /* Content-Length left, or chunk data left */
    uint64_t size;           /* chunk size being parsed */
    unsigned digits;
    size_t ext_len;          /* extension bytes on this chunk line */
    uint64_t payload;        /* payload bytes yielded */
    uint64_t max_body;
    uint64_t start;          /* reader's consumed count when the body began */
    sluice__idle idle;
    /* trailers */
    char *tbuf;
    size_t tlen, tmax;
    size_t tline;            /* tbuf index where the current line begins */
    uint64_t tbase;          /* body offset of tbuf[0] */
    sluice_trailer *fields;
    size_t nfields, fields_cap;
    int err;                 /* scan's verdict */
} body;

static const unsigned char hexval1[256];
static const unsigned char tchar[256];

static sluice_poll need_bytes(body *b);
static size_t scan(body *b, const unsigned char *p, size_t n, uint64_t *err_at);
static int trailer_line(body *b, size_t from, size_t *bad);
static uint64_t offset(const body *b, size_t i);
static int body_new(sluice_pool *pool, sluice_reader *r, enum kind kind,
                    const sluice_body_config *cfg, sluice_stream **out);

#define IS_WS(c) ((c) == ' ' || (c) == '\t')
#define NO_ERROR UINT64_MAX

/* ---- Content-Length ------------------------------------------------------ */

static sluice_poll length_poll(sluice_stream *s, sluice_bytes *out)
{
    body *b = (body *)s;
    if (b->max_body && b->remaining > b->max_body && b->payload == 0)
        return sluice_stream_fail(s, SLUICE_ETOOBIG, "Content-Length over the body limit", 0);
    for (;;) {
        if (b->remaining == 0)
            return SLUICE_EOF;
        size_t want = b->remaining < SIZE_MAX ? (size_t)b->remaining : SIZE_MAX;
        size_t n = sluice_reader_take(b->r, want, out);
        if (n) {
            b->remaining -= n;
            b->payload += n;
            return SLUICE_READY;
        }
        sluice_poll f = need_bytes(b);
        if (f != SLUICE_READY)
            return f;
    }
}

/* ---- read until close ---------------------------------------------------- */

static sluice_poll close_poll(sluice_stream *s, sluice_bytes *out)
{
    body *b = (body *)s;
    for (;;) {
        size_t want = SIZE_MAX;
        if (b->max_body) {
            uint64_t left = b->max_body - b->payload;
            if (left == 0 && sluice_reader_available(b->r))
                return sluice_stream_fail(s, SLUICE_ETOOBIG, NULL, b->max_body);
            if (left < want)
                want = (size_t)left;
        }
        size_t n = sluice_reader_take(b->r, want, out);
        if (n) {
            b->payload += n;
            return SLUICE_READY;
        }
        sluice_poll f = need_bytes(b);
        if (f != SLUICE_READY)
            return f;
    }
}

/* ---- chunked ------------------------------------------------------------- */

static sluice_poll chunked_poll(sluice_stream *s, sluice_bytes *out)
{
    body *b = (body *)s;
    for (;;) {
        if (b->state == S_DATA) {
            size_t want = b->remaining < SIZE_MAX ? (size_t)b->remaining : SIZE_MAX;
            size_t n = sluice_reader_take(b->r, want, out);
            if (n) {
                b->remaining -= n;
                b->payload += n;
                if (b->remaining == 0)
                    b->state = S_DATA_CR;
                return SLUICE_READY;
            }
        } else if (b->state == S_DONE) {
            return SLUICE_EOF;
        } else {
            const unsigned char *p;
            size_t n = sluice_reader_front(b->r, &p);
            if (n) {
                uint64_t err_at;
                size_t used = scan(b, p, n, &err_at);
                sluice_reader_skip(b->r, used);
                if (err_at != NO_ERROR)
                    return sluice_stream_fail(s, b->err, NULL, err_at);
                continue;
            }
        }
        sluice_poll f = need_bytes(b);
        if (f != SLUICE_READY)
            return f;
    }
}

/*
 * Runs the framing state machine over p[0, n) until the data of a chunk
 * starts, the body ends, the bytes run out, or an error. Returns how many
 * bytes were judged. *err_at is NO_ERROR, or the body offset of the byte
 * that proved the error (code in b->err).
 */
static size_t scan(body *b, const unsigned char *p, size_t n, uint64_t *err_at)
{
    size_t i = 0;
    int rc = 0;
    while (i < n) {
        unsigned char c = p[i];
        enum state st = b->state;
        if (st >= S_SIZE_BWS && st <= S_EXT_VAL_BWS && c != '\r' &&
            ++b->ext_len > SLUICE_CHUNK_EXT_MAX) {
            rc = SLUICE_ECHUNK_EXT_TOO_LONG;
            break;
        }
        if (c == '\n' && st != S_LINE_LF && st != S_DATA_CR && st != S_DATA_LF &&
            st != S_EXT_QS && st != S_EXT_QS_ESC && st < S_TRAILER0) {
            rc = SLUICE_EBARE_LF;
            break;
        }
        switch (st) {
        case S_SIZE0:
            if (!hexval1[c]) {
                rc = SLUICE_EBAD_CHUNK_SIZE;
                goto out;
            }
            b->size = hexval1[c] - 1u;
            b->digits = 1;
            b->ext_len = 0;
            b->state = S_SIZE;
            break;
        case S_SIZE:
            if (hexval1[c]) {
                uint64_t d = hexval1[c] - 1u;
                if (++b->digits > SLUICE_CHUNK_SIZE_DIGITS ||
                    b->size > ((uint64_t)INT64_MAX - d) / 16) {
                    rc = SLUICE_ECHUNK_SIZE_OVERFLOW;
                    goto out;
                }
                b->size = b->size * 16 + d;
            } else if (c == '\r') {
                b->state = S_LINE_LF;
            } else if (c == ';' || IS_WS(c)) {
                b->ext_len = 1;
                b->state = c == ';' ? S_EXT_NAME0 : S_SIZE_BWS;
            } else {
                rc = SLUICE_EBAD_CHUNK_SIZE;
                goto out;
            }
            break;
        case S_SIZE_BWS:
        case S_EXT_VAL_BWS:
            if (c == ';')
                b->state = S_EXT_NAME0;
            else if (!IS_WS(c))
                goto bad_ext;
            break;
        case S_EXT_NAME0:
            if (tchar[c])
                b->state = S_EXT_NAME;
            else if (!IS_WS(c))
                goto bad_ext;
            break;
        case S_EXT_NAME:
        case S_EXT_NAME_BWS:
            if (c == '=')
                b->state = S_EXT_VAL0;
            else if (c == ';')
                b->state = S_EXT_NAME0;
            else if (IS_WS(c))
                b->state = S_EXT_NAME_BWS;
            else if (st == S_EXT_NAME && tchar[c])
                ;
            else if (st == S_EXT_NAME && c == '\r')
                b->state = S_LINE_LF;
            else
                goto bad_ext;
            break;
        case S_EXT_VAL0:
            if (tchar[c])
                b->state = S_EXT_TOKEN;
            else if (c == '"')
                b->state = S_EXT_QS;
            else if (!IS_WS(c))
                goto bad_ext;
            break;
        case S_EXT_TOKEN:
        case S_EXT_QS_END:
            if (st == S_EXT_TOKEN && tchar[c])
                ;
            else if (c == ';')
                b->state = S_EXT_NAME0;
            else if (IS_WS(c))
                b->state = S_EXT_VAL_BWS;
            else if (c == '\r')
                b->state = S_LINE_LF;
            else
                goto bad_ext;
            break;
        case S_EXT_QS:
            /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
            if (c == '"')
                b->state = S_EXT_QS_END;
            else if (c == '\\')
                b->state = S_EXT_QS_ESC;
            else if (c < 0x20 ? c != '\t' : c == 0x7f)
                goto bad_ext;
            break;
        case S_EXT_QS_ESC:
            if (c < 0x20 ? c != '\t' : c == 0x7f)
                goto bad_ext;
            b->state = S_EXT_QS;
            break;
        case S_LINE_LF:
            if (c != '\n') {
                rc = SLUICE_EBARE_CR;
                goto out;
            }
            i++;
            if (b->size == 0) {
                b->state = S_TRAILER0;
                b->tbase = offset(b, i);
                continue;
            }
            if (b->max_body && b->size > b->max_body - b->payload) {
                rc = SLUICE_ETOOBIG;
                goto out;
            }
            b->remaining = b->size;
            b->state = S_DATA;
            goto out;
        case S_DATA_CR:
        case S_DATA_LF:
            if (c != (st == S_DATA_CR ? '\r' : '\n')) {
                rc = SLUICE_EBAD_CHUNK_END;
                goto out;
            }
            b->state = st == S_DATA_CR ? S_DATA_LF : S_SIZE0;
            break;
        case S_TRAILER0:
            if (c == '\r') {
                b->state = S_END_LF;
                break;
            }
            if (c == '\n') {
                rc = SLUICE_EBARE_LF;
                goto out;
            }
            if (IS_WS(c)) {
                rc = SLUICE_EBAD_TRAILER; /* obs-fold or leading whitespace */
                goto out;
            }
            b->state = S_TRAILER;
            continue; /* the byte starts the field line */
        case S_TRAILER: {
            const unsigned char *lf = memchr(p + i, '\n', n - i);
            size_t k = lf ? (size_t)(lf - (p + i)) + 1 : n - i;
            if (k > b->tmax - b->tlen) {
                i += b->tmax - b->tlen;
                rc = SLUICE_ETRAILER_TOO_LARGE;
                goto out;
            }
            if (!b->tbuf && !(b->tbuf = sluice__alloc(b->base.pool, b->tmax))) {
                rc = SLUICE_ENOMEM;
                goto out;
            }
            memcpy(b->tbuf + b->tlen, p + i, k);
            b->tlen += k;
            i += k;
            if (lf) {
                size_t bad;
                rc = trailer_line(b, b->tline, &bad);
                if (rc < 0) {
                    b->err = rc;
                    *err_at = b->tbase + bad; /* the byte may be from an earlier read */
                    return i;
                }
                b->tline = b->tlen;
                b->state = S_TRAILER0;
            }
            continue;
        }
        case S_END_LF:
            if (c != '\n') {
                rc = SLUICE_EBARE_CR;
                goto out;
            }
            i++;
            b->state = S_DONE;
            goto out;
        case S_DATA:
        case S_DONE:
            goto out;
        }
        i++;
        continue;
    bad_ext:
        rc = SLUICE_EBAD_CHUNK_EXT;
        break;
    }
out:
    b->err = rc;
    *err_at = rc < 0 ? offset(b, i) : NO_ERROR;
    return i;
}

/*
 * Checks the field line tbuf[from, tlen) (ending in LF) like a header field
 * and records it. On error *bad is the tbuf index of the offending byte.
 */
static int trailer_line(body *b, size_t from, size_t *bad)
{
    const unsigned char *l = (const unsigned char *)b->tbuf + from;
    size_t len = b->tlen - from - 1; /* without the LF */
    if (len == 0 || l[len - 1] != '\r') {
        *bad = b->tlen - 1;
        return SLUICE_EBARE_LF;
    }
    len--;
    const unsigned char *cr = memchr(l, '\r', len);
    if (cr) {
        *bad = from + (size_t)(cr - l);
        return SLUICE_EBARE_CR;
    }
    size_t i = 0;
    while (i < len && tchar[l[i]])
        i++;
    if (i == 0 || i == len || l[i] != ':') {
        *bad = from + i;
        return SLUICE_EBAD_TRAILER; /* empty name, no colon, space before colon */
    }
    size_t name_len = i++;
    while (i < len && IS_WS(l[i]))
        i++;
    size_t v = i, end = len;
    for (; i < len; i++) {
        if (l[i] < 0x20 ? l[i] != '\t' : l[i] == 0x7f) {
            *bad = from + i;
            return SLUICE_EBAD_TRAILER;
        }
    }
    while (end > v && IS_WS(l[end - 1]))
        end--;
    int rc = sluice__grow(b->base.pool, (void **)&b->fields, &b->fields_cap, b->nfields + 1,
                          sizeof *b->fields);
    if (rc < 0) {
        *bad = from;
        return rc;
    }
    b->fields[b->nfields++] = (sluice_trailer){(const char *)l, name_len, (const char *)l + v,
                                               end - v};
    return 0;
}

int sluice_body_trailers(const sluice_stream *s, const sluice_trailer **fields, size_t *n)
{
    *fields = NULL;
    *n = 0;
    if (s->vt->poll_next != chunked_poll || ((const body *)s)->state != S_DONE)
        return SLUICE_EINVAL;
    *fields = ((const body *)s)->fields;
    *n = ((const body *)s)->nfields;
    return 0;
}

/* ---- shared -------------------------------------------------------------- */

/* Fills the reader when the body needs bytes. READY: try again; PENDING
 * (timeout checked); otherwise the stream's final result. */
static sluice_poll need_bytes(body *b)
{
    sluice_poll f = sluice_reader_fill(b->r);
    switch (f) {
    case SLUICE_READY:
        sluice__idle_progress(&b->idle);
        return SLUICE_READY;
    case SLUICE_PENDING:
        if (!sluice__idle_pending(&b->idle))
            return sluice_stream_fail(&b->base, SLUICE_ETIMEDOUT, NULL, offset(b, 0));
        return SLUICE_PENDING;
    case SLUICE_EOF:
        if (b->kind == K_CLOSE)
            return SLUICE_EOF;
        return sluice_stream_fail(&b->base, SLUICE_ETRUNCATED, NULL, offset(b, 0));
    case SLUICE_ERROR:
        break;
    }
    return sluice_stream_fail(&b->base, sluice_reader_error(b->r), NULL, offset(b, 0));
}

static uint64_t offset(const body *b, size_t i)
{
    return sluice_reader_consumed(b->r) - b->start + i;
}

static void body_ready(sluice_stream *s, sluice_interest *want)
{
    body *b = (body *)s;
    sluice_reader_ready(b->r, want);
    int64_t d = sluice__idle_deadline(&b->idle);
    if (d >= 0 && (want->deadline_ms < 0 || d < want->deadline_ms))
        want->deadline_ms = d; /* the reader's may be sooner */
}

static void body_close(sluice_stream *s)
{
    body *b = (body *)s;
    sluice__free(s->pool, b->tbuf, b->tmax);
    sluice__free(s->pool, b->fields, b->fields_cap * sizeof *b->fields);
    sluice_pool_object_free(s->pool, b, sizeof *b);
}

static const sluice_stream_vtable length_vt = {"body-length", length_poll, body_ready,
                                               body_close};
static const sluice_stream_vtable chunked_vt = {"body-chunked", chunked_poll, body_ready,
                                                body_close};
static const sluice_stream_vtable close_vt = {"body-close", close_poll, body_ready, body_close};

static int body_new(sluice_pool *pool, sluice_reader *r, enum kind kind,
                    const sluice_body_config *cfg, sluice_stream **out)
{
    static const sluice_stream_vtable *const vts[] = {&length_vt, &chunked_vt, &close_vt};
    *out = NULL;
    body *b = sluice_pool_object_alloc(pool, sizeof *b);
    if (!b)
        return SLUICE_ENOMEM;
    memset(b, 0, sizeof *b);
    b->base.vt = vts[kind];
    b->base.pool = pool;
    b->r = r;
    b->kind = kind;
    b->state = S_SIZE0;
    b->start = sluice_reader_consumed(r);
    sluice__idle_init(&b->idle, cfg ? cfg->idle_timeout_ms : 0);
    b->tmax = SLUICE_TRAILER_DEFAULT_MAX;
    if (cfg) {
        b->max_body = cfg->max_body;
        if (cfg->max_trailer_bytes)
            b->tmax = cfg->max_trailer_bytes;
    }
    *out = &b->base;
    return 0;
}

int sluice_body_length_new(sluice_pool *pool, sluice_reader *r, uint64_t length,
                           const sluice_body_config *cfg, sluice_stream **out)
{
    int rc = body_new(pool, r, K_LENGTH, cfg, out);
    if (rc == 0)
        ((body *)*out)->remaining = length;
    return rc;
}

int sluice_body_chunked_new(sluice_pool *pool, sluice_reader *r, const sluice_body_config *cfg,
                            sluice_stream **out)
{
    return body_new(pool, r, K_CHUNKED, cfg, out);
}

int sluice_body_close_new(sluice_pool *pool, sluice_reader *r, const sluice_body_config *cfg,
                          sluice_stream **out)
{
    return body_new(pool, r, K_CLOSE, cfg, out);
}

/* ---- tables -------------------------------------------------------------- */

/* A hex digit's value plus one; 0 for every other byte. */
static const unsigned char hexval1[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
    ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
 *       / "`" / "|" / "~" / DIGIT / ALPHA  (RFC 9110 5.6.2) */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};
