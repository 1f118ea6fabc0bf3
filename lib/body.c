/*
 * body.c — Content-Length, chunked and read-until-close bodies over a reader.
 *
 * Payload is never touched: a body stream takes views of the reader's
 * blocks (sluice_reader_take), so the only copy of a body byte is the
 * kernel's. Only framing is scanned: the chunked decoder runs a small state
 * machine over the size line, extensions and CRLFs in place (at most a
 * couple of dozen bytes per chunk unless extensions are sent), and the
 * trailer section is copied once into a buffer the stream owns and checked
 * by the field parser heads use, so the fields the host reads after EOF stay
 * valid and obey the same grammar.
 *
 * The state machine consumes every byte it has judged, so its result never
 * depends on how the bytes were split across reads: each error is raised at
 * the first byte that proves it, with that byte's offset.
 */
#include "internal.h"

#include "chars.h"
#include "fields.h"

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
    S_TRAILERS,     /* the trailer section, through its final CRLF */
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
    /* the trailer section, copied so its fields outlive the reader's blocks */
    unsigned char *tbuf;     /* tmax + 2 bytes: the final CRLF is not counted */
    size_t tlen, tmax;
    size_t tline;            /* tbuf index where the unfinished line begins */
    uint64_t tbase;          /* body offset of tbuf[0] */
    sluice_http_header *fields;
    size_t nfields;
    int err;                 /* scan's verdict */
} body;

static sluice_poll need_bytes(body *b);
static size_t scan(body *b, const unsigned char *p, size_t n, uint64_t *err_at);
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
        if (b->remaining == 0) {
            sluice__reader_trim(b->r);
            return SLUICE_EOF;
        }
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

/* The chunked decoder; with splice_min it stops (SLUICE__SPLICE) where the
 * data of a chunk starts of which at least splice_min bytes are not
 * buffered yet, so the splice pump can move them past user space (what the
 * reader holds of the chunk, the few bytes read with its size line, goes
 * first, written with the size line). */
static sluice_poll chunked_next(sluice_stream *s, sluice_bytes *out, uint64_t splice_min)
{
    body *b = (body *)s;
    for (;;) {
        if (b->state == S_DATA && b->remaining >= splice_min) {
            uint64_t held = sluice_reader_available(b->r);
            if (held < b->remaining && b->remaining - held >= splice_min)
                return SLUICE__SPLICE;
        }
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
            sluice__reader_trim(b->r);
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

static sluice_poll chunked_poll(sluice_stream *s, sluice_bytes *out)
{
    return chunked_next(s, out, UINT64_MAX);
}

sluice_poll sluice__chunked_next(sluice_stream *s, sluice_bytes *out, uint64_t splice_min,
                                 uint64_t *chunk_left)
{
    *out = (sluice_bytes){0};
    *chunk_left = 0;
    if (s->_error.code)
        return SLUICE_ERROR;
    if (s->_eof)
        return SLUICE_EOF;
    sluice_poll r = chunked_next(s, out, splice_min ? splice_min : 1);
    if (r == SLUICE_EOF)
        s->_eof = 1;
    else if ((int)r == SLUICE__SPLICE)
        *chunk_left = ((body *)s)->remaining;
    return r;
}

void sluice__chunked_bypassed(sluice_stream *s, uint64_t n)
{
    body *b = (body *)s;
    b->remaining -= n;
    b->payload += n;
    if (b->remaining == 0)
        b->state = S_DATA_CR;
}

/* A size line exactly as the chunked writer writes it (lowercase hex, no
 * leading zero, no extension) at p[0, n): its length with the CRLF, the size
 * in *v; 0 if it is not one or is cut short. */
static size_t plain_size_line(const unsigned char *p, size_t n, uint64_t *v)
{
    size_t i = 0;
    *v = 0;
    if (n < 3 || p[0] == '0')
        return 0;
    for (; i < n && i < SLUICE_CHUNK_SIZE_DIGITS; i++) {
        unsigned char c = p[i];
        if (c >= '0' && c <= '9')
            *v = *v * 16 + (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            *v = *v * 16 + (unsigned)(c - 'a' + 10);
        else
            break;
    }
    return i > 0 && i + 2 <= n && p[i] == '\r' && p[i + 1] == '\n' ? i + 2 : 0;
}

size_t sluice__chunked_verbatim(sluice_stream *s, const unsigned char *p, size_t n,
                                uint64_t splice_min, uint64_t *size)
{
    body *b = (body *)s;
    size_t crlf = 0, line;
    uint64_t v;
    *size = 0;
    if (s->_error.code || s->_eof)
        return 0;
    if (b->state == S_DATA_CR) {
        if (n < 2 || p[0] != '\r' || p[1] != '\n')
            return 0;
        crlf = 2;
        if (n == 2) { /* the CRLF alone so far: take it, the line comes later */
            b->state = S_SIZE0;
            return 2;
        }
    } else if (b->state != S_SIZE0) {
        return 0;
    }
    if (!(line = plain_size_line(p + crlf, n - crlf, &v)) || v < splice_min ||
        v > (uint64_t)INT64_MAX || (b->max_body && v > b->max_body - b->payload))
        return 0;
    b->size = b->remaining = v;
    b->state = S_DATA;
    *size = v;
    return crlf + line;
}

/* ---- chunk-size lines ---------------------------------------------------- */

#define IS_TCHAR(c) sluice__is((c), SLUICE__C_TOKEN)

/* One byte of a chunk extension (RFC 9112 section 7.1.1):
 * *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] ). */
static int ext_byte(body *b, enum state st, unsigned char c)
{
    enum state next = st;
    switch (st) {
    case S_SIZE_BWS:
    case S_EXT_VAL_BWS:
        next = c == ';' ? S_EXT_NAME0 : IS_WS(c) ? st : S_DONE;
        break;
    case S_EXT_NAME0:
        next = IS_TCHAR(c) ? S_EXT_NAME : IS_WS(c) ? st : S_DONE;
        break;
    case S_EXT_NAME:
    case S_EXT_NAME_BWS:
        next = c == '=' ? S_EXT_VAL0 : c == ';' ? S_EXT_NAME0 : IS_WS(c) ? S_EXT_NAME_BWS
               : st == S_EXT_NAME && IS_TCHAR(c) ? st
               : st == S_EXT_NAME && c == '\r'   ? S_LINE_LF : S_DONE;
        break;
    case S_EXT_VAL0:
        next = IS_TCHAR(c) ? S_EXT_TOKEN : c == '"' ? S_EXT_QS : IS_WS(c) ? st : S_DONE;
        break;
    case S_EXT_TOKEN:
    case S_EXT_QS_END:
        next = st == S_EXT_TOKEN && IS_TCHAR(c) ? st : c == ';' ? S_EXT_NAME0
               : IS_WS(c) ? S_EXT_VAL_BWS : c == '\r' ? S_LINE_LF : S_DONE;
        break;
    case S_EXT_QS: /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
        next = c == '"' ? S_EXT_QS_END : c == '\\' ? S_EXT_QS_ESC
               : (c < 0x20 ? c != '\t' : c == 0x7f) ? S_DONE : st;
        break;
    case S_EXT_QS_ESC:
        next = (c < 0x20 ? c != '\t' : c == 0x7f) ? S_DONE : S_EXT_QS;
        break;
    default:
        break;
    }
    if (next == S_DONE) /* not a state an extension can reach: the error mark */
        return SLUICE_EBAD_CHUNK_EXT;
    b->state = next;
    return 0;
}

/* The LF that ends a chunk-size line (p[*i]): data follows, or trailers. */
static int size_line_end(body *b, unsigned char c, size_t *i)
{
    if (c != '\n')
        return SLUICE_EBARE_CR;
    (*i)++;
    if (b->size == 0) {
        b->state = S_TRAILERS;
        b->tbase = offset(b, *i);
        return 0;
    }
    if (b->max_body && b->size > b->max_body - b->payload)
        return SLUICE_ETOOBIG;
    b->remaining = b->size;
    b->state = S_DATA;
    return 0;
}

/* One byte of a chunk-size line: 1*HEXDIG [ extensions ] CRLF. */
static int size_line(body *b, unsigned char c, size_t *i)
{
    enum state st = b->state;
    int d = sluice__hexval(c);
    if (st >= S_SIZE_BWS && st <= S_EXT_VAL_BWS && c != '\r' &&
        ++b->ext_len > SLUICE_CHUNK_EXT_MAX)
        return SLUICE_ECHUNK_EXT_TOO_LONG;
    if (c == '\n' && st != S_LINE_LF && st != S_EXT_QS && st != S_EXT_QS_ESC)
        return SLUICE_EBARE_LF;
    if (st == S_LINE_LF)
        return size_line_end(b, c, i);
    if (st == S_SIZE0 || (st == S_SIZE && d >= 0)) {
        if (d < 0)
            return SLUICE_EBAD_CHUNK_SIZE;
        if (st == S_SIZE0) {
            b->size = 0;
            b->digits = 0;
            b->ext_len = 0;
        }
        if (++b->digits > SLUICE_CHUNK_SIZE_DIGITS ||
            b->size > ((uint64_t)INT64_MAX - (unsigned)d) / 16)
            return SLUICE_ECHUNK_SIZE_OVERFLOW;
        b->size = b->size * 16 + (unsigned)d;
        b->state = S_SIZE;
    } else if (st == S_SIZE) {
        if (c != '\r' && c != ';' && !IS_WS(c))
            return SLUICE_EBAD_CHUNK_SIZE;
        b->ext_len = c == '\r' ? 0 : 1;
        b->state = c == '\r' ? S_LINE_LF : c == ';' ? S_EXT_NAME0 : S_SIZE_BWS;
    } else {
        int rc = ext_byte(b, st, c);
        if (rc < 0)
            return rc;
    }
    (*i)++;
    return 0;
}

/* The CRLF after a chunk's data. */
static int data_end(body *b, unsigned char c, size_t *i)
{
    if (c != (b->state == S_DATA_CR ? '\r' : '\n'))
        return SLUICE_EBAD_CHUNK_END;
    b->state = b->state == S_DATA_CR ? S_DATA_LF : S_SIZE0;
    (*i)++;
    return 0;
}

/* ---- trailer section ------------------------------------------------------ */

/* Field-parser faults as trailer errors. */
static int trailer_code(sluice__fault f)
{
    switch (f) {
    case SLUICE__F_BARE_LF:
        return SLUICE_EBARE_LF;
    case SLUICE__F_BARE_CR:
    case SLUICE__F_VALUE_CR:
        return SLUICE_EBARE_CR;
    default:
        return SLUICE_EBAD_TRAILER;
    }
}

/* Records the fields of the complete section tbuf[0, tlen). */
static int trailer_fields(body *b)
{
    const unsigned char *next;
    sluice__fields f = {NULL, SIZE_MAX, 0, SLUICE__F_NONE, NULL};
    sluice__fields_parse(b->tbuf, b->tbuf + b->tlen, &f, &next);
    if (f.n == 0)
        return 0;
    b->fields = sluice__alloc(b->base.pool, f.n * sizeof *b->fields);
    if (!b->fields)
        return SLUICE_ENOMEM;
    f.out = b->fields;
    sluice__fields_parse(b->tbuf, b->tbuf + b->tlen, &f, &next);
    b->nfields = f.n;
    return 0;
}

/*
 * Copies trailer bytes from p[*i, n) into tbuf, a line at a time (never past
 * the section's end), and checks each with the field parser. A malformed
 * line fails at its first bad byte; one that would pass max_trailer_bytes
 * fails at the first byte over (the final CRLF is not counted).
 */
static int trailers(body *b, const unsigned char *p, size_t n, size_t *i, uint64_t *err_at)
{
    if (!b->tbuf && !(b->tbuf = sluice__alloc(b->base.pool, b->tmax + 2)))
        return SLUICE_ENOMEM;
    const unsigned char *lf = memchr(p + *i, '\n', n - *i);
    size_t k = lf ? (size_t)(lf - (p + *i)) + 1 : n - *i;
    size_t room = b->tmax - b->tlen;
    if ((b->tlen > b->tline ? b->tbuf[b->tline] : p[*i]) == '\r')
        room += 2; /* the line may be the final CRLF */
    size_t take = k < room ? k : room;
    memcpy(b->tbuf + b->tlen, p + *i, take);
    b->tlen += take;
    *i += take;
    const unsigned char *next;
    sluice__fields f = {NULL, SIZE_MAX, 0, SLUICE__F_NONE, NULL};
    int r = sluice__fields_parse(b->tbuf + b->tline, b->tbuf + b->tlen, &f, &next);
    if (r < 0) {
        /* A CR where the final CRLF goes is reported at the byte after it,
         * as in chunk-size lines. */
        if (f.fault == SLUICE__F_BARE_CR && f.at == b->tbuf + b->tline)
            f.at++;
        *err_at = b->tbase + (uint64_t)(f.at - b->tbuf); /* maybe from an earlier read */
        return trailer_code(f.fault);
    }
    if (r == 1) {
        b->state = S_DONE;
        return trailer_fields(b);
    }
    if (take < k)
        return SLUICE_ETRAILER_TOO_LARGE;
    b->tline = (size_t)(next - b->tbuf); /* complete lines are not read again */
    return 0;
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
    *err_at = NO_ERROR;
    while (rc == 0 && i < n && b->state != S_DATA && b->state != S_DONE) {
        if (b->state == S_TRAILERS)
            rc = trailers(b, p, n, &i, err_at);
        else if (b->state == S_DATA_CR || b->state == S_DATA_LF)
            rc = data_end(b, p[i], &i);
        else
            rc = size_line(b, p[i], &i);
    }
    b->err = rc;
    if (rc < 0 && *err_at == NO_ERROR)
        *err_at = offset(b, i);
    return i;
}

int sluice_body_trailers(const sluice_stream *s, const sluice_http_header **fields, size_t *n)
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
        if (b->kind == K_CLOSE) {
            sluice__reader_trim(b->r);
            return SLUICE_EOF;
        }
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
    sluice__free(s->pool, b->tbuf, b->tmax + 2);
    sluice__free(s->pool, b->fields, b->nfields * sizeof *b->fields);
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

int sluice_body_reusable(const sluice_stream *s)
{
    const body *b = (const body *)s;
    if (s->vt != &length_vt && s->vt != &chunked_vt)
        return 0; /* not a body stream, or one that ends at the peer's close */
    return s->_eof && !s->_error.code && !sluice__reader_eof(b->r) &&
           !sluice_reader_error(b->r) && sluice_reader_available(b->r) == 0;
}

int sluice_body_new(sluice_pool *pool, sluice_reader *r, const sluice_http_framing *framing,
                    const sluice_body_config *cfg, sluice_stream **out)
{
    static const enum kind kinds[] = {
        [SLUICE_HTTP_BODY_NONE] = K_LENGTH, /* of length 0: EOF at once */
        [SLUICE_HTTP_BODY_LENGTH] = K_LENGTH,
        [SLUICE_HTTP_BODY_CHUNKED] = K_CHUNKED,
        [SLUICE_HTTP_BODY_CLOSE] = K_CLOSE,
    };
    if ((unsigned)framing->body > SLUICE_HTTP_BODY_CLOSE) {
        *out = NULL;
        return SLUICE_EINVAL;
    }
    int rc = body_new(pool, r, kinds[framing->body], cfg, out);
    if (rc == 0 && framing->body == SLUICE_HTTP_BODY_LENGTH)
        ((body *)*out)->remaining = framing->length;
    return rc;
}
