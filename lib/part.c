/*
 * part.c — a multipart part's header block: the fields (the same parser as
 * HTTP heads, see fields.c), Content-Disposition's name and filename
 * (quoted-string, RFC 8187 filename*), all laid out in the one allocation
 * that also holds the part stream.
 *
 * Quoted strings follow what browsers send rather than RFC 9110's
 * quoted-pair: the HTML form encoding escapes '"', CR and LF as %22, %0D,
 * %0A and never escapes a backslash, and old Windows browsers send whole
 * paths (filename="C:\files\a.txt"). So a backslash is data, except that
 * "\\" is one backslash and "\"" is a quote when another quote still
 * follows to close the string (filename="dir\" is "dir\").
 */
#include "internal.h"

#include "chars.h"
#include "fields.h"

#include <stdbool.h>
#include <string.h>

static bool utf8_valid(const unsigned char *s, size_t n);

static const char *const fault_why[] = {
    [SLUICE__F_NAME] = "part header name is empty or not a token",
    [SLUICE__F_WS_COLON] = "whitespace before colon in part header",
    [SLUICE__F_NO_COLON] = "part header line without a colon",
    [SLUICE__F_FOLD] = "part header line starts with whitespace (obsolete folding)",
    [SLUICE__F_VALUE] = "control byte in part header value",
    [SLUICE__F_VALUE_CR] = "CR without LF in part header",
    [SLUICE__F_BARE_LF] = "bare LF in part header",
    [SLUICE__F_BARE_CR] = "CR without LF in part header",
};

/* A quoted-string at s[*i] (the opening quote), undone into dst (NULL: just
 * skip) by the rule at the top of this file. Returns the decoded length, or
 * -1 if no quote closes it. */
static long take_quoted(const unsigned char *s, size_t *i, size_t n, char *dst)
{
    size_t len = 0;
    for ((*i)++; *i < n; (*i)++) {
        unsigned char c = s[*i];
        if (c == '"')
            break;
        if (c == '\\' && *i + 1 < n &&
            (s[*i + 1] == '\\' ||
             (s[*i + 1] == '"' && memchr(s + *i + 2, '"', n - *i - 2))))
            c = s[++*i];
        if (dst)
            dst[len] = (char)c;
        len++;
    }
    if (*i == n)
        return -1;
    (*i)++;
    return (long)len;
}

/*
 * RFC 8187 ext-value: charset "'" [language] "'" value-chars. Decodes to
 * UTF-8 in dst (room for n bytes always suffices). Returns the length or -1.
 */
static long decode_ext_value(const unsigned char *s, size_t n, char *dst)
{
    size_t i = 0;
    while (i < n && s[i] != '\'')
        i++;
    if (i == n)
        return -1;
    bool latin1;
    if (sluice__eq_ci((const char *)s, i, "utf-8"))
        latin1 = false;
    else if (sluice__eq_ci((const char *)s, i, "iso-8859-1"))
        latin1 = true;
    else
        return -1;
    for (i++; i < n && s[i] != '\''; i++) {
        unsigned char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return -1;
    }
    if (i == n)
        return -1;
    size_t len = 0;
    for (i++; i < n; i++) {
        unsigned char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? sluice__hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? sluice__hexval(s[i + 2]) : -1;
            if (lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
            if (!c)
                return -1;
        } else if (!sluice__is(c, SLUICE__C_ATTR)) {
            return -1;
        }
        if (latin1 && c >= 0x80) {
            dst[len++] = (char)(0xc0 | c >> 6);
            dst[len++] = (char)(0x80 | (c & 0x3f));
        } else {
            dst[len++] = (char)c;
        }
    }
    if (!latin1 && !utf8_valid((const unsigned char *)dst, len))
        return -1;
    return (long)len;
}

enum param { P_OTHER, P_NAME, P_FILENAME, P_FILENAME_EXT, P_COUNT };

/* The decoded parameters of one Content-Disposition value. */
typedef struct disposition {
    char *dst[P_COUNT];   /* where each decoded value goes (P_OTHER: none) */
    long len[P_COUNT];
    bool seen[P_COUNT];
    const char *why;
    size_t bad;
} disposition;

static enum param param_kind(const unsigned char *key, size_t n)
{
    return sluice__eq_ci((const char *)key, n, "name")        ? P_NAME
           : sluice__eq_ci((const char *)key, n, "filename")  ? P_FILENAME
           : sluice__eq_ci((const char *)key, n, "filename*") ? P_FILENAME_EXT
                                                               : P_OTHER;
}

static int syntax(disposition *d, size_t at, const char *why)
{
    d->bad = at;
    d->why = why;
    return SLUICE_EBAD_PART_HEADER;
}

/* One `token "=" ( token / quoted-string )` at s[*i]. */
static int param(disposition *d, const unsigned char *s, size_t *i, size_t n)
{
    size_t k0 = *i, kl = sluice__take_token(s, i, n);
    *i = sluice__skip_ws(s, *i, n);
    if (!kl || *i == n || s[*i] != '=')
        return syntax(d, *i, "Content-Disposition: parameter is not token=value");
    *i = sluice__skip_ws(s, *i + 1, n);
    enum param k = param_kind(s + k0, kl);
    if (k != P_OTHER && d->seen[k])
        return syntax(d, k0, "Content-Disposition: repeated parameter");
    d->seen[k] = true;
    size_t v0 = *i;
    if (*i < n && s[*i] == '"') {
        if (k == P_FILENAME_EXT) {
            syntax(d, *i, "filename* value is quoted");
            return SLUICE_EBAD_EXT_VALUE;
        }
        d->len[k] = take_quoted(s, i, n, d->dst[k]);
        return d->len[k] < 0 ? syntax(d, *i, "Content-Disposition: unterminated quoted string")
                             : 0;
    }
    size_t vl = sluice__take_token(s, i, n);
    if (!vl)
        return syntax(d, *i, "Content-Disposition: parameter value is empty or not a token");
    if (k == P_FILENAME_EXT) {
        d->len[k] = decode_ext_value(s + v0, vl, d->dst[k]);
        if (d->len[k] < 0) {
            syntax(d, v0, "filename* is not charset'lang'pct-encoded UTF-8 or ISO-8859-1");
            return SLUICE_EBAD_EXT_VALUE;
        }
    } else if (k != P_OTHER) {
        memcpy(d->dst[k], s + v0, vl);
        d->len[k] = (long)vl;
    }
    return 0;
}

/* NUL-terminates the decoded parameter k and points *out at it. */
static void set(disposition *d, enum param k, const char **out, size_t *out_len)
{
    d->dst[k][d->len[k]] = '\0';
    *out = d->dst[k];
    *out_len = (size_t)d->len[k];
}

/*
 * Content-Disposition: type *( OWS ";" OWS param ). Fills p->name (form-data
 * only) and p->filename (filename* wins) into dst (3 * (n + 1) bytes).
 * Returns 0, or an error code with d->bad and d->why set.
 */
static int parse_disposition(sluice_part *p, const unsigned char *s, size_t n, char *dst,
                             disposition *d)
{
    size_t i = 0, tl = sluice__take_token(s, &i, n);
    if (!tl)
        return syntax(d, i, "Content-Disposition type is not a token");
    for (int k = P_NAME; k < P_COUNT; k++)
        d->dst[k] = dst + (size_t)(k - P_NAME) * (n + 1);
    int rc = 0;
    while (rc == 0 && (i = sluice__skip_ws(s, i, n)) < n) {
        if (s[i] != ';')
            return syntax(d, i, "Content-Disposition: expected ';'");
        i = sluice__skip_ws(s, i + 1, n);
        if (i < n)
            rc = param(d, s, &i, n);
    }
    if (rc)
        return rc;
    if (sluice__eq_ci((const char *)s, tl, "form-data") && d->seen[P_NAME])
        set(d, P_NAME, &p->name, &p->name_len);
    if (d->seen[P_FILENAME_EXT])
        set(d, P_FILENAME_EXT, &p->filename, &p->filename_len);
    else if (d->seen[P_FILENAME])
        set(d, P_FILENAME, &p->filename, &p->filename_len);
    return 0;
}

/* Bytes of the Content-Disposition lines in the validated block b[0, n):
 * their decoded parameters are never longer. */
static size_t disposition_bytes(const unsigned char *b, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i + 2 < n;) {
        const unsigned char *colon = memchr(b + i, ':', n - i);
        const unsigned char *cr = memchr(b + i, '\r', n - i);
        if (colon && colon < cr &&
            sluice__eq_ci((const char *)b + i, (size_t)(colon - (b + i)), "content-disposition"))
            total += (size_t)(cr - (b + i));
        i = (size_t)(cr - b) + 2;
    }
    return total;
}

/* Content-Disposition and Content-Type may each appear once. */
static int singletons(sluice_part *p, const sluice_http_header **cd, size_t *bad_field)
{
    const sluice_http_header *ct = NULL;
    *cd = NULL;
    for (size_t i = 0; i < p->nheaders; i++) {
        const sluice_http_header *h = &p->headers[i];
        const sluice_http_header **slot =
            sluice__eq_ci(h->name, h->name_len, "content-disposition") ? cd
            : sluice__eq_ci(h->name, h->name_len, "content-type")      ? &ct
                                                                      : NULL;
        if (slot && *slot) {
            *bad_field = i;
            return SLUICE_EBAD_PART_HEADER;
        }
        if (slot)
            *slot = h;
    }
    if (ct) {
        p->content_type = ct->value;
        p->content_type_len = ct->value_len;
    }
    return 0;
}

/* Fills p from the fields in `copy` (names and values NUL-terminated). */
static int describe(sluice_part *p, const unsigned char *copy, char *dec, size_t *bad,
                    const char **why)
{
    const sluice_http_header *cd;
    size_t field = 0;
    if (singletons(p, &cd, &field) < 0) {
        *why = "repeated Content-Disposition or Content-Type in a part";
        *bad = (size_t)((const unsigned char *)p->headers[field].name - copy);
        return SLUICE_EBAD_PART_HEADER;
    }
    if (!cd)
        return 0;
    disposition d = {0};
    int rc = parse_disposition(p, (const unsigned char *)cd->value, cd->value_len, dec, &d);
    if (rc < 0) {
        *why = d.why;
        *bad = (size_t)((const unsigned char *)cd->value - copy) + d.bad;
    }
    return rc;
}

/* The field parser over blk[from, n) (from at a line start), a fault as
 * SLUICE_EBAD_PART_HEADER with *bad (offset in blk) and *why. */
static int fields(const unsigned char *blk, size_t from, size_t n, sluice__fields *f,
                  const unsigned char **next, size_t *bad, const char **why)
{
    int r = sluice__fields_parse(blk + from, blk + n, f, next);
    if (r < 0) {
        *why = fault_why[f->fault];
        *bad = (size_t)(f->at - blk);
        return SLUICE_EBAD_PART_HEADER;
    }
    return r;
}

int sluice__part_check(const unsigned char *blk, size_t n, size_t *from, size_t *bad,
                       const char **why)
{
    const unsigned char *next;
    sluice__fields f = {NULL, SIZE_MAX, 0, SLUICE__F_NONE, NULL};
    int r = fields(blk, *from, n, &f, &next, bad, why);
    if (r < 0)
        return r;
    *from = (size_t)(next - blk);
    return 0;
}

int sluice__part_new(sluice_pool *pool, size_t head, size_t info_off, const unsigned char *blk,
                     size_t n, void **mem, size_t *size, size_t *bad, const char **why)
{
    const unsigned char *next;
    sluice__fields f = {NULL, SIZE_MAX, 0, SLUICE__F_NONE, NULL};
    *mem = NULL;
    int r = fields(blk, 0, n, &f, &next, bad, why);
    if (r < 0)
        return r;
    /* One allocation: the caller's head, the fields, the block, then room
     * for the decoded name, filename and filename*. */
    size_t hdr_off = (head + 15) & ~(size_t)15;
    size_t blk_off = hdr_off + f.n * sizeof(sluice_http_header);
    size_t dec_off = blk_off + n;
    *size = dec_off + 3 * (disposition_bytes(blk, n) + 1);
    unsigned char *m = sluice_pool_object_alloc(pool, *size);
    if (!m)
        return SLUICE_ENOMEM;
    memset(m, 0, head);
    sluice_part *p = (sluice_part *)(m + info_off);
    unsigned char *copy = m + blk_off;
    memcpy(copy, blk, n);
    f.out = (sluice_http_header *)(m + hdr_off);
    sluice__fields_parse(copy, copy + n, &f, &next);
    for (size_t i = 0; i < f.n; i++) { /* names end at ':', values at SP, HTAB or CR */
        ((char *)f.out[i].name)[f.out[i].name_len] = '\0';
        ((char *)f.out[i].value)[f.out[i].value_len] = '\0';
    }
    p->headers = f.out;
    p->nheaders = f.n;
    int rc = describe(p, copy, (char *)m + dec_off, bad, why);
    if (rc < 0) {
        sluice_pool_object_free(pool, m, *size);
        return rc;
    }
    *mem = m;
    return 0;
}

/* Well-formed UTF-8 (RFC 3629): no overlongs, surrogates or > U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            return false;
        }
        if (n - i <= k || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xbf)
                return false;
        i += k + 1;
    }
    return true;
}
