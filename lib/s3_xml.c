/*
 * s3_xml.c — the little XML the S3 sink reads and writes: one element's
 * text out of a response (<UploadId>, <ETag>, <Code>, <Message>), and the
 * CompleteMultipartUpload body. S3's responses are flat and small (the sink
 * keeps the first 8 KiB of a response body), so a search for "<Tag>" and
 * "</Tag>" with the five predefined entities and numeric references
 * decoded is all the parsing needed; nothing here allocates.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* Decodes one entity at p[0, n) (p[0] is '&') into out; returns the bytes
 * consumed, 0 if it is not one (the '&' is then kept as is). */
static size_t entity(const char *p, size_t n, char *out, size_t *olen)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"&quot;", '"'}, {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}};
    for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
        size_t l = strlen(ents[i].name);
        if (n >= l && memcmp(p, ents[i].name, l) == 0) {
            out[0] = ents[i].c;
            *olen = 1;
            return l;
        }
    }
    if (n < 4 || p[1] != '#')
        return 0;
    size_t i = 2;
    unsigned long v = 0;
    int hex = p[2] == 'x';
    for (i += (size_t)hex; i < n && i < 12 && p[i] != ';'; i++) {
        int d = p[i] >= '0' && p[i] <= '9' ? p[i] - '0'
                : hex && (p[i] | 32) >= 'a' && (p[i] | 32) <= 'f' ? (p[i] | 32) - 'a' + 10
                                                                   : -1;
        if (d < 0)
            return 0;
        v = v * (hex ? 16 : 10) + (unsigned long)d;
    }
    if (i >= n || p[i] != ';' || v == 0 || v > 0x10FFFF)
        return 0;
    /* UTF-8 */
    if (v < 0x80) {
        out[0] = (char)v;
        *olen = 1;
    } else if (v < 0x800) {
        out[0] = (char)(0xC0 | (v >> 6));
        out[1] = (char)(0x80 | (v & 63));
        *olen = 2;
    } else if (v < 0x10000) {
        out[0] = (char)(0xE0 | (v >> 12));
        out[1] = (char)(0x80 | ((v >> 6) & 63));
        out[2] = (char)(0x80 | (v & 63));
        *olen = 3;
    } else {
        out[0] = (char)(0xF0 | (v >> 18));
        out[1] = (char)(0x80 | ((v >> 12) & 63));
        out[2] = (char)(0x80 | ((v >> 6) & 63));
        out[3] = (char)(0x80 | (v & 63));
        *olen = 4;
    }
    return i + 1;
}

static const char *find(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m == 0 || n < m)
        return NULL;
    for (const char *p = hay; (p = memchr(p, needle[0], n - (size_t)(p - hay) - m + 1));
         p++) {
        if (memcmp(p, needle, m) == 0)
            return p;
        if ((size_t)(p - hay) + m >= n)
            break;
    }
    return NULL;
}

int sluice__xml_text(const char *xml, size_t n, const char *tag, char *out, size_t cap)
{
    char open[72], close[72];
    int lo = snprintf(open, sizeof open, "<%s>", tag);
    int lc = snprintf(close, sizeof close, "</%s>", tag);
    if (lo < 0 || (size_t)lo >= sizeof open || lc < 0 || (size_t)lc >= sizeof close || !cap)
        return -1;
    const char *a = find(xml, n, open, (size_t)lo);
    if (!a)
        return -1;
    a += lo;
    const char *b = find(a, n - (size_t)(a - xml), close, (size_t)lc);
    if (!b)
        return -1;
    size_t len = 0;
    for (const char *p = a; p < b;) {
        char tmp[4] = {*p};
        size_t tl = 1, used = *p == '&' ? entity(p, (size_t)(b - p), tmp, &tl) : 0;
        if (!used)
            used = 1;
        if (len + tl >= cap)
            break; /* truncated, at a character boundary */
        memcpy(out + len, tmp, tl);
        len += tl;
        p += used;
    }
    out[len] = 0;
    return (int)len;
}

/* Writes s escaped for XML text into out (cap >= 6 * strlen + 1). */
static size_t escape(const char *s, char *out)
{
    size_t n = 0;
    for (; *s; s++) {
        const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
        if (e) {
            memcpy(out + n, e, strlen(e));
            n += strlen(e);
        } else {
            out[n++] = *s;
        }
    }
    return n;
}

#define COMPLETE_OPEN "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
#define COMPLETE_CLOSE "</CompleteMultipartUpload>"

size_t sluice__s3_complete_piece(size_t i, size_t nparts, const char *etag, const char *sum,
                                 char out[SLUICE__S3_PIECE_SIZE])
{
    size_t n = 0;
    if (i == 0) {
        memcpy(out, COMPLETE_OPEN, sizeof COMPLETE_OPEN - 1);
        n = sizeof COMPLETE_OPEN - 1;
    }
    if (i < nparts) {
        char et[6 * SLUICE_S3_ETAG_SIZE];
        size_t el = escape(etag, et);
        n += (size_t)snprintf(out + n, SLUICE__S3_PIECE_SIZE - n,
                              "<Part><PartNumber>%zu</PartNumber><ETag>\"%.*s\"</ETag>"
                              "<ChecksumSHA256>%s</ChecksumSHA256></Part>",
                              i + 1, (int)el, et, sum);
    } else {
        memcpy(out + n, COMPLETE_CLOSE, sizeof COMPLETE_CLOSE - 1);
        n += sizeof COMPLETE_CLOSE - 1;
    }
    return n;
}
