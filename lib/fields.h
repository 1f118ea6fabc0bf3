/*
 * fields.h — the one field-line parser (RFC 9110 section 5, RFC 9112
 * section 5): request and response heads, chunked trailer sections and
 * multipart part headers are the same grammar, so they share this parser and
 * differ only in how each maps a fault to its own error code.
 */
#ifndef SLUICE_FIELDS_H
#define SLUICE_FIELDS_H

#include "sluice/http.h"

/* Why a field block is malformed, independent of who reports it. */
typedef enum sluice__fault {
    SLUICE__F_NONE = 0,
    SLUICE__F_NAME,      /* empty name, or a byte that is not tchar         */
    SLUICE__F_WS_COLON,  /* whitespace between the name and the colon       */
    SLUICE__F_NO_COLON,  /* the line ends without a colon                   */
    SLUICE__F_FOLD,      /* a line starts with SP / HTAB (obs-fold)         */
    SLUICE__F_VALUE,     /* a control byte (not HTAB) in a value            */
    SLUICE__F_VALUE_CR,  /* a CR not followed by LF inside a value          */
    SLUICE__F_BARE_LF,   /* LF without CR                                   */
    SLUICE__F_BARE_CR,   /* CR not followed by LF where a line ends         */
    SLUICE__F_TOO_MANY   /* more fields than the caller's limit             */
} sluice__fault;

typedef struct sluice__fields {
    sluice_http_header *out; /* NULL: only count and validate               */
    size_t max;              /* fields allowed (SLUICE__F_TOO_MANY past it) */
    size_t n;                /* fields parsed                               */
    sluice__fault fault;     /* after -1: why                               */
    const unsigned char *at; /* after -1: the offending byte                */
} sluice__fields;

/*
 * Parses field lines from p through the empty line that ends them, reading
 * no byte at or past end. Values are trimmed of SP / HTAB on both sides.
 *   1   complete: *next is past the empty line's CRLF; f->n fields.
 *   0   every byte so far is valid, more are needed; *next is where the
 *       line not yet complete starts, so a caller that keeps the bytes
 *       may resume there (f->n counts the lines before it).
 *   -1  malformed: f->fault and f->at say why and where; decided by the
 *       first byte that proves it, so the answer never depends on how the
 *       bytes were split across calls.
 */
int sluice__fields_parse(const unsigned char *p, const unsigned char *end, sluice__fields *f,
                         const unsigned char **next);

/* The end of the run of field-value bytes (VCHAR, SP, HTAB, obs-text)
 * starting at p, reading nothing at or past e. */
const unsigned char *sluice__scan_value(const unsigned char *p, const unsigned char *e);

#endif
