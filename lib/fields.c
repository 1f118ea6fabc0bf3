/*
 * fields.c — field lines (see fields.h). Scanning follows picohttpparser:
 * names through the class table, values eight bytes at a time (a word test
 * for any byte below 0x20 or equal to 0x7f), then the table near the end.
 */
#include "fields.h"

#include "chars.h"

const unsigned char *sluice__scan_value(const unsigned char *p, const unsigned char *e)
{
    while (e - p >= 8) {
        uint64_t x = sluice__load8(p);
        if (sluice__has_less(x, 0x20) | sluice__has_byte(x, 0x7f))
            break;
        p += 8;
    }
    while (p < e && sluice__is(*p, SLUICE__C_VALUE))
        p++;
    return p;
}

static int fault(sluice__fields *f, const unsigned char *at, sluice__fault why)
{
    f->fault = why;
    f->at = at;
    return -1;
}

/* p (< end) is CR or LF where a line may end: 1 for CRLF, 0 when the byte
 * after a CR is not there yet; a bare LF or CR is a fault (`cr` for CR). */
static int line_end(sluice__fields *f, const unsigned char *p, const unsigned char *end,
                    sluice__fault cr)
{
    if (*p == '\n')
        return fault(f, p, SLUICE__F_BARE_LF);
    if (p + 1 == end)
        return 0;
    return p[1] == '\n' ? 1 : fault(f, p, cr);
}

/* A line whose name run name..p is not followed by ':' (p < end). */
static int bad_name(sluice__fields *f, const unsigned char *name, const unsigned char *p,
                    const unsigned char *end)
{
    if (p == name)
        return fault(f, p, SLUICE__F_NAME);
    const unsigned char *q = p;
    while (q < end && sluice__is(*q, SLUICE__C_WS))
        q++;
    if (q == end)
        return 0;
    if (q > p && *q == ':')
        return fault(f, p, SLUICE__F_WS_COLON);
    if (*q == '\r' || *q == '\n') {
        int r = line_end(f, q, end, SLUICE__F_BARE_CR);
        return r <= 0 ? r : fault(f, p, SLUICE__F_NO_COLON);
    }
    return fault(f, p, SLUICE__F_NAME);
}

/* One `name ":" OWS value OWS CRLF` line at *pp (which is not CR, LF or
 * whitespace). 1 with *pp past it, 0 for more bytes, -1. */
static int field_line(sluice__fields *f, const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp, *name = p;
    while (p < end && sluice__is(*p, SLUICE__C_TOKEN))
        p++;
    if (p == end)
        return 0;
    if (*p != ':' || p == name)
        return bad_name(f, name, p, end);
    size_t name_len = (size_t)(p - name);
    p++;
    while (p < end && sluice__is(*p, SLUICE__C_WS))
        p++;
    const unsigned char *v = p;
    p = sluice__scan_value(p, end);
    if (p == end)
        return 0;
    if (*p != '\r')
        return fault(f, p, *p == '\n' ? SLUICE__F_BARE_LF : SLUICE__F_VALUE);
    int r = line_end(f, p, end, SLUICE__F_VALUE_CR);
    if (r <= 0)
        return r;
    const unsigned char *ve = p;
    while (ve > v && sluice__is(ve[-1], SLUICE__C_WS))
        ve--;
    if (f->out)
        f->out[f->n] = (sluice_http_header){(const char *)name, name_len, (const char *)v,
                                            (size_t)(ve - v)};
    f->n++;
    *pp = p + 2;
    return 1;
}

int sluice__fields_parse(const unsigned char *p, const unsigned char *end, sluice__fields *f,
                         const unsigned char **next)
{
    f->n = 0;
    f->fault = SLUICE__F_NONE;
    f->at = NULL;
    for (;;) {
        *next = p; /* on 0: the line not yet complete starts here */
        if (p == end)
            return 0;
        int r;
        switch (*p) {
        case '\r':
            r = line_end(f, p, end, SLUICE__F_BARE_CR);
            if (r == 1)
                *next = p + 2;
            return r;
        case '\n':
            return fault(f, p, SLUICE__F_BARE_LF);
        case ' ':
        case '\t':
            return fault(f, p, SLUICE__F_FOLD);
        default:
            break;
        }
        if (f->n == f->max)
            return fault(f, p, SLUICE__F_TOO_MANY);
        if ((r = field_line(f, &p, end)) <= 0)
            return r;
    }
}
