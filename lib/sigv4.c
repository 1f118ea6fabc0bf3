/*
 * sigv4.c — AWS Signature Version 4 for S3, without allocating.
 *
 * The canonical request is never built in memory: it is written through a
 * small sink (struct out) that feeds SHA-256 when signing and a caller's
 * buffer when the text is asked for, so both come from one code path and
 * cannot disagree. Headers and query parameters are ordered by sorting
 * byte indices on the stack (at most SLUICE_SIGV4_MAX_FIELDS each, insertion
 * sort: a few thousand comparisons at worst, microseconds); query
 * parameters sort by their encoded form, so the comparison encodes lazily,
 * byte by byte, instead of encoding into scratch space.
 *
 * For streaming uploads the signer keeps an HMAC context already keyed with
 * the signing key: a chunk signature is a copy of it plus about 300 bytes
 * of string to sign, six SHA-256 compressions (0.45 us with SHA-NI,
 * tests/bench/bench_sigv4.c), next to the 1024 compressions of hashing the
 * 64 KiB chunk itself (40 us): 7 ms per GiB against 0.67 s.
 */
#include "internal.h"

#include <limits.h>
#include <string.h>

enum { MODE_PLAIN, MODE_UNSIGNED_TRAILER, MODE_SIGNED, MODE_SIGNED_TRAILER };
enum { ENDED_NO, ENDED_CHUNKS, ENDED_TRAILER };

#define ALGORITHM "AWS4-HMAC-SHA256"
#define SCOPE_TAIL "/s3/aws4_request"
#define CHUNK_SIG ";chunk-signature="
#define TRAILER_SIG "x-amz-trailer-signature:"

static const char hexdig[] = "0123456789ABCDEF";
static const char hexlow[] = "0123456789abcdef";

/* Fields the signer adds itself, refused from the caller. */
static const char *const own_fields[] = {
    "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token",
};
/* Fields that are not signed: hop-by-hop ones and those intermediaries
 * rewrite (the list AWS's SDKs skip, botocore's SIGNED_HEADERS_BLACKLIST). */
static const char *const unsigned_fields[] = {
    "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
};

/* ---- output: a SHA-256, a bounded buffer, or both --------------------------- */

typedef struct out {
    sluice_sha256_ctx *sha; /* NULL: not hashed */
    char *buf;              /* NULL: not kept */
    size_t cap, len;        /* len counts every byte, also those past cap */
} out;

static void put(out *o, const void *p, size_t n)
{
    if (n == 0)
        return; /* p may be NULL then (an empty key), which memcpy must not see */
    if (o->sha)
        sluice_sha256_update(o->sha, p, n);
    if (o->buf && o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, p, n < room ? n : room);
    }
    o->len += n;
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* NUL-terminates the buffer: 0, or SLUICE_ERANGE when len + 1 > cap. */
static int finish(out *o, size_t *len)
{
    if (len)
        *len = o->len;
    if (!o->buf || o->len >= o->cap)
        return SLUICE_ERANGE;
    o->buf[o->len] = '\0';
    return 0;
}

/* ---- S3 URI encoding ----------------------------------------------------------- */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Writes s[0, n) encoded: unreserved runs in one piece, the rest as %XX. */
static void put_encoded(out *o, const char *s, size_t n, int keep_slash)
{
    if (n == 0)
        return; /* s may be NULL */
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/'))
            continue;
        put(o, s + run, i - run);
        char esc[3] = {'%', hexdig[c >> 4], hexdig[c & 15]};
        put(o, esc, 3);
        run = i + 1;
    }
    put(o, s + run, n - run);
}

/* The encoded form of a string (slash encoded), one byte at a time. */
typedef struct enc_iter {
    const unsigned char *p, *end;
    char esc[2];
    int pending; /* escape digits still to yield */
} enc_iter;

static int enc_next(enc_iter *it)
{
    if (it->pending)
        return it->esc[2 - it->pending--];
    if (it->p == it->end)
        return -1; /* the end sorts before every byte: a prefix comes first */
    unsigned char c = *it->p++;
    if (unreserved(c))
        return c;
    it->esc[0] = hexdig[c >> 4];
    it->esc[1] = hexdig[c & 15];
    it->pending = 2;
    return '%';
}

static void enc_init(enc_iter *it, const char *s, size_t n)
{
    it->p = it->end = (const unsigned char *)s;
    if (n) /* s may be NULL when n is 0: no arithmetic on it then */
        it->end += n;
    it->pending = 0;
}

static int cmp_encoded(const char *a, size_t an, const char *b, size_t bn)
{
    enc_iter x, y;
    enc_init(&x, a, an);
    enc_init(&y, b, bn);
    for (;;) {
        int cx = enc_next(&x), cy = enc_next(&y);
        if (cx != cy)
            return cx < cy ? -1 : 1;
        if (cx < 0)
            return 0;
    }
}

/* ---- small predicates ---------------------------------------------------------- */

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static int cmp_lower(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = lower((unsigned char)a[i]), y = lower((unsigned char)b[i]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return an == bn ? 0 : an < bn ? -1 : 1;
}

static int name_in(const char *name, size_t n, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (cmp_lower(name, n, list[i], strlen(list[i])) == 0)
            return 1;
    return 0;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* A field value: no control bytes but HTAB (obs-text, >= 0x80, is fine). */
static int is_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static int is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int is_amz_date(const char *d)
{
    return d && strlen(d) == 16 && is_digits(d, 8) && d[8] == 'T' && is_digits(d + 9, 6) &&
           d[15] == 'Z';
}

static int is_region(const char *r)
{
    size_t n = r ? strlen(r) : 0;
    if (n == 0 || n > SLUICE_SIGV4_MAX_REGION)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int is_access_key(const char *k)
{
    if (!k || !*k)
        return 0;
    for (; *k; k++) {
        unsigned char c = (unsigned char)*k;
        if (c <= ' ' || c == 0x7f || c == ',' || c == '/')
            return 0;
    }
    return 1;
}

/* The payload mode, or -1 when p is neither a mode nor a lowercase hex
 * SHA-256. */
static int payload_mode(const char *p)
{
    if (!p)
        return -1;
    if (strcmp(p, SLUICE_SIGV4_UNSIGNED_PAYLOAD) == 0)
        return MODE_PLAIN;
    if (strcmp(p, SLUICE_SIGV4_STREAMING_UNSIGNED_TRAILER) == 0)
        return MODE_UNSIGNED_TRAILER;
    if (strcmp(p, SLUICE_SIGV4_STREAMING_SIGNED) == 0)
        return MODE_SIGNED;
    if (strcmp(p, SLUICE_SIGV4_STREAMING_SIGNED_TRAILER) == 0)
        return MODE_SIGNED_TRAILER;
    if (strlen(p) != 64)
        return -1;
    for (int i = 0; i < 64; i++) /* strlen is 64: no NUL among them */
        if (!strchr(hexlow, p[i]))
            return -1;
    return MODE_PLAIN;
}

/* ---- the request, validated and ordered ------------------------------------------ */

typedef struct prepared {
    sluice_http_header f[SLUICE_SIGV4_MAX_FIELDS + 3]; /* caller's signed + own */
    unsigned char hidx[SLUICE_SIGV4_MAX_FIELDS + 3];   /* f in canonical order */
    size_t nf;
    unsigned char qidx[SLUICE_SIGV4_MAX_FIELDS];       /* query in canonical order */
    int mode;
} prepared;

static int query_before(const sluice_http_header *a, const sluice_http_header *b)
{
    int c = cmp_encoded(a->name, a->name_len, b->name, b->name_len);
    if (c == 0)
        c = cmp_encoded(a->value, a->value_len, b->value, b->value_len);
    return c < 0;
}

/* Path and query: all sluice_sigv4_target() needs. */
static int prepare_target(const sluice_sigv4_request *req, prepared *p)
{
    if (!req || (req->key_len && !req->key) || (req->num_query && !req->query) ||
        req->num_query > SLUICE_SIGV4_MAX_FIELDS)
        return SLUICE_EINVAL;
    for (size_t i = 0; i < req->num_query; i++) {
        const sluice_http_header *q = &req->query[i];
        if ((q->name_len && !q->name) || (q->value_len && !q->value))
            return SLUICE_EINVAL;
        size_t j = i; /* insertion sort, stable */
        while (j > 0 && query_before(q, &req->query[p->qidx[j - 1]])) {
            p->qidx[j] = p->qidx[j - 1];
            j--;
        }
        p->qidx[j] = (unsigned char)i;
    }
    return 0;
}

static void add_field(prepared *p, const char *name, const char *value)
{
    p->f[p->nf++] = (sluice_http_header){name, strlen(name), value, strlen(value)};
}

/* Everything sign() needs: also validates the fields it does not order. */
static int prepare(const sluice_sigv4_request *req, const sluice_sigv4_credentials *cred,
                   prepared *p)
{
    int rc = prepare_target(req, p);
    if (rc < 0)
        return rc;
    if (!cred || !is_access_key(cred->access_key_id) || !cred->secret_access_key ||
        !*cred->secret_access_key || !req->method ||
        !is_token(req->method, strlen(req->method)) || !is_amz_date(req->amz_date) ||
        !is_region(req->region) || (req->num_headers && !req->headers) ||
        req->num_headers > SLUICE_SIGV4_MAX_FIELDS)
        return SLUICE_EINVAL;
    p->mode = payload_mode(req->payload);
    if (p->mode < 0)
        return SLUICE_EINVAL;
    const char *token = cred->session_token;
    if (token && !is_value(token, strlen(token)))
        return SLUICE_EINVAL;

    int host = 0;
    p->nf = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const sluice_http_header *h = &req->headers[i];
        if (!h->name || !is_token(h->name, h->name_len) || (h->value_len && !h->value) ||
            !is_value(h->value, h->value_len) ||
            name_in(h->name, h->name_len, own_fields,
                    sizeof own_fields / sizeof own_fields[0]))
            return SLUICE_EINVAL;
        if (name_in(h->name, h->name_len, unsigned_fields,
                    sizeof unsigned_fields / sizeof unsigned_fields[0]))
            continue;
        host |= cmp_lower(h->name, h->name_len, "host", 4) == 0;
        p->f[p->nf++] = *h;
    }
    if (!host)
        return SLUICE_EINVAL;
    add_field(p, "x-amz-content-sha256", req->payload);
    add_field(p, "x-amz-date", req->amz_date);
    if (token && *token)
        add_field(p, "x-amz-security-token", token);

    for (size_t i = 0; i < p->nf; i++) { /* stable: same-name fields keep their order */
        size_t j = i;
        while (j > 0 && cmp_lower(p->f[i].name, p->f[i].name_len, p->f[p->hidx[j - 1]].name,
                                  p->f[p->hidx[j - 1]].name_len) < 0) {
            p->hidx[j] = p->hidx[j - 1];
            j--;
        }
        p->hidx[j] = (unsigned char)i;
    }
    return 0;
}

/* ---- canonical pieces ---------------------------------------------------------------- */

static void put_path(out *o, const sluice_sigv4_request *req)
{
    put(o, "/", 1);
    if (req->bucket && *req->bucket) {
        put_encoded(o, req->bucket, strlen(req->bucket), 0);
        if (req->key_len)
            put(o, "/", 1);
    }
    put_encoded(o, req->key, req->key_len, 1);
}

static void put_query(out *o, const sluice_sigv4_request *req, const prepared *p)
{
    for (size_t i = 0; i < req->num_query; i++) {
        const sluice_http_header *q = &req->query[p->qidx[i]];
        if (i)
            put(o, "&", 1);
        put_encoded(o, q->name, q->name_len, 0);
        put(o, "=", 1);
        put_encoded(o, q->value, q->value_len, 0);
    }
}

static void put_lower(out *o, const char *s, size_t n)
{
    char tmp[64];
    while (n) {
        size_t k = n < sizeof tmp ? n : sizeof tmp;
        for (size_t i = 0; i < k; i++)
            tmp[i] = (char)lower((unsigned char)s[i]);
        put(o, tmp, k);
        s += k;
        n -= k;
    }
}

/* Trimmed, with every inner run of SP / HTAB written as one SP. */
static void put_trimmed(out *o, const char *s, size_t n)
{
    size_t i = 0;
    int first = 1;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t start = i;
        while (i < n && s[i] != ' ' && s[i] != '\t')
            i++;
        if (i == start)
            break;
        if (!first)
            put(o, " ", 1);
        put(o, s + start, i - start);
        first = 0;
    }
}

static const sluice_http_header *field(const prepared *p, size_t i)
{
    return &p->f[p->hidx[i]];
}

static int same_name(const prepared *p, size_t i)
{
    return i > 0 && cmp_lower(field(p, i)->name, field(p, i)->name_len, field(p, i - 1)->name,
                              field(p, i - 1)->name_len) == 0;
}

static void put_signed_headers(out *o, const prepared *p)
{
    for (size_t i = 0; i < p->nf; i++) {
        if (same_name(p, i))
            continue;
        if (i)
            put(o, ";", 1);
        put_lower(o, field(p, i)->name, field(p, i)->name_len);
    }
}

static void put_canonical(out *o, const sluice_sigv4_request *req, const prepared *p)
{
    puts_(o, req->method);
    put(o, "\n", 1);
    put_path(o, req);
    put(o, "\n", 1);
    put_query(o, req, p);
    put(o, "\n", 1);
    for (size_t i = 0; i < p->nf; i++) {
        const sluice_http_header *h = field(p, i);
        if (same_name(p, i)) {
            put(o, ",", 1);
        } else {
            if (i)
                put(o, "\n", 1);
            put_lower(o, h->name, h->name_len);
            put(o, ":", 1);
        }
        put_trimmed(o, h->value, h->value_len);
    }
    put(o, "\n\n", 2);
    put_signed_headers(o, p);
    put(o, "\n", 1);
    puts_(o, req->payload);
}

static void to_hex(const unsigned char *d, size_t n, char *hex)
{
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = hexlow[d[i] >> 4];
        hex[2 * i + 1] = hexlow[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

static void mac_str(sluice_hmac_sha256_ctx *c, const char *s)
{
    sluice__hmac_sha256_update(c, s, strlen(s));
}

/* k = HMAC(k, s): one step of the signing-key derivation. */
static void derive(const sluice_sha256_ctx *fresh, unsigned char k[32], const char *s, size_t n)
{
    sluice_hmac_sha256_ctx c;
    sluice__hmac_sha256_init(&c, fresh, k, 32);
    sluice__hmac_sha256_update(&c, s, n);
    sluice__hmac_sha256_final(&c, k);
}

/* ---- public -------------------------------------------------------------------------- */

int sluice__sigv4_amz_date(time_t t, char out_[SLUICE_SIGV4_AMZ_DATE_SIZE])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        return SLUICE_EINVAL;
    int v[6] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
    static const unsigned char width[6] = {4, 2, 2, 2, 2, 2};
    char *d = out_;
    for (int i = 0; i < 6; i++) {
        if (i == 3)
            *d++ = 'T';
        for (int k = width[i] - 1; k >= 0; k--, v[i] /= 10)
            d[k] = (char)('0' + v[i] % 10);
        d += width[i];
    }
    *d++ = 'Z';
    *d = '\0';
    return 0;
}

int sluice_sigv4_target(const sluice_sigv4_request *req, char *buf, size_t cap, size_t *len)
{
    prepared p;
    int rc = prepare_target(req, &p);
    if (rc < 0)
        return rc;
    out o = {NULL, buf, cap, 0};
    put_path(&o, req);
    if (req->num_query) {
        put(&o, "?", 1);
        put_query(&o, req, &p);
    }
    return finish(&o, len);
}

int sluice__sigv4_canonical_request(const sluice_sigv4_request *req,
                                   const sluice_sigv4_credentials *cred, char *buf, size_t cap,
                                   size_t *len)
{
    prepared p;
    int rc = prepare(req, cred, &p);
    if (rc < 0)
        return rc;
    out o = {NULL, buf, cap, 0};
    put_canonical(&o, req, &p);
    return finish(&o, len);
}

int sluice_sigv4_sign(sluice_sigv4_signer *s, const sluice_sigv4_request *req,
                      const sluice_sigv4_credentials *cred, char *auth, size_t cap, size_t *len)
{
    prepared p;
    int rc = s ? prepare(req, cred, &p) : SLUICE_EINVAL;
    if (rc < 0)
        return rc;

    /* one fresh context, copied for every hash and MAC below: a single CPU
     * probe per signature (see sluice__hmac_sha256_init) */
    sluice_sha256_ctx fresh, sha;
    unsigned char digest[SLUICE_SHA256_SIZE];
    char cr_hex[65];
    sluice_sha256_init(&fresh);
    sha = fresh;
    out h = {&sha, NULL, 0, 0};
    put_canonical(&h, req, &p);
    sluice_sha256_final(&sha, digest);
    to_hex(digest, sizeof digest, cr_hex);

    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"),
     * "aws4_request"). A secret too long for one key block with its prefix
     * is hashed first, which is what HMAC does with a long key anyway. */
    unsigned char k[64 + 4];
    size_t klen = 4 + strlen(cred->secret_access_key);
    sluice_hmac_sha256_ctx keyed, c;
    if (klen <= 64) {
        memcpy(k, "AWS4", 4);
        memcpy(k + 4, cred->secret_access_key, klen - 4);
    } else {
        sha = fresh;
        sluice_sha256_update(&sha, "AWS4", 4);
        sluice_sha256_update(&sha, cred->secret_access_key, klen - 4);
        sluice_sha256_final(&sha, k);
        klen = 32;
    }
    sluice__hmac_sha256_init(&c, &fresh, k, klen);
    sluice__hmac_sha256_update(&c, req->amz_date, 8);
    sluice__hmac_sha256_final(&c, k);
    derive(&fresh, k, req->region, strlen(req->region));
    derive(&fresh, k, "s3", 2);
    derive(&fresh, k, "aws4_request", 12);
    sluice__hmac_sha256_init(&keyed, &fresh, k, 32);
    sluice__wipe(k, sizeof k);

    char scope[sizeof s->_scope];
    size_t rlen = strlen(req->region);
    memcpy(scope, req->amz_date, 8);
    scope[8] = '/';
    memcpy(scope + 9, req->region, rlen);
    memcpy(scope + 9 + rlen, SCOPE_TAIL, sizeof SCOPE_TAIL); /* with its NUL */

    c = keyed;
    mac_str(&c, ALGORITHM "\n");
    mac_str(&c, req->amz_date);
    mac_str(&c, "\n");
    mac_str(&c, scope);
    mac_str(&c, "\n");
    mac_str(&c, cr_hex);
    sluice__hmac_sha256_final(&c, digest);
    char sig[SLUICE_SIGV4_SIGNATURE_SIZE];
    to_hex(digest, sizeof digest, sig);

    out a = {NULL, auth, cap, 0};
    puts_(&a, ALGORITHM " Credential=");
    puts_(&a, cred->access_key_id);
    put(&a, "/", 1);
    puts_(&a, scope);
    puts_(&a, ",SignedHeaders=");
    put_signed_headers(&a, &p);
    puts_(&a, ",Signature=");
    puts_(&a, sig);
    rc = finish(&a, len);
    if (rc == 0) {
        memcpy(s->signature, sig, sizeof sig);
        s->_key = keyed;
        memcpy(s->_amz_date, req->amz_date, SLUICE_SIGV4_AMZ_DATE_SIZE);
        memcpy(s->_scope, scope, sizeof scope);
        s->_mode = p.mode;
        s->_ended = ENDED_NO;
    }
    sluice__wipe(&keyed, sizeof keyed);
    return rc;
}

/* HMAC of "<kind>\n<date>\n<scope>\n<previous signature>\n<rest>" under the
 * signer's key: the chunk and trailer strings to sign share this head. */
static void chain_sign(const sluice_sigv4_signer *s, const char *kind, const char *rest1,
                       const char *rest2, char sig[SLUICE_SIGV4_SIGNATURE_SIZE])
{
    sluice_hmac_sha256_ctx c = s->_key;
    unsigned char d[SLUICE_SHA256_SIZE];
    mac_str(&c, kind);
    mac_str(&c, "\n");
    mac_str(&c, s->_amz_date);
    mac_str(&c, "\n");
    mac_str(&c, s->_scope);
    mac_str(&c, "\n");
    mac_str(&c, s->signature);
    mac_str(&c, "\n");
    mac_str(&c, rest1);
    if (rest2) {
        mac_str(&c, "\n");
        mac_str(&c, rest2);
    }
    sluice__hmac_sha256_final(&c, d);
    to_hex(d, sizeof d, sig);
}

/* Lowercase hex digits of n, no leading zeros ("0" for 0); returns the count. */
static size_t hex_size(uint64_t n, char *d)
{
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hexlow[n & 15];
        n >>= 4;
    } while (n);
    for (size_t i = 0; i < k; i++)
        d[i] = tmp[k - 1 - i];
    return k;
}

int sluice_sigv4_chunk(sluice_sigv4_signer *s, uint64_t size,
                       const unsigned char sha256[SLUICE_SHA256_SIZE],
                       char line[SLUICE_SIGV4_CHUNK_LINE_SIZE])
{
    if (!s || !line || s->_mode < MODE_UNSIGNED_TRAILER || s->_mode > MODE_SIGNED_TRAILER)
        return SLUICE_EINVAL;
    if (s->_ended != ENDED_NO)
        return SLUICE_ECLOSED;
    size_t n = hex_size(size, line);
    if (s->_mode != MODE_UNSIGNED_TRAILER) {
        char data_hex[65];
        if (size) {
            if (!sha256)
                return SLUICE_EINVAL;
            to_hex(sha256, SLUICE_SHA256_SIZE, data_hex);
        } else {
            memcpy(data_hex, SLUICE_SIGV4_EMPTY_SHA256, sizeof data_hex);
        }
        chain_sign(s, ALGORITHM "-PAYLOAD", SLUICE_SIGV4_EMPTY_SHA256, data_hex, s->signature);
        memcpy(line + n, CHUNK_SIG, sizeof CHUNK_SIG - 1);
        n += sizeof CHUNK_SIG - 1;
        memcpy(line + n, s->signature, 64);
        n += 64;
    }
    memcpy(line + n, "\r\n", 2);
    n += 2;
    if (size == 0) {
        s->_ended = ENDED_CHUNKS;
        if (s->_mode == MODE_SIGNED) { /* no trailer: the empty trailer section */
            memcpy(line + n, "\r\n", 2);
            n += 2;
        }
    }
    line[n] = '\0';
    return (int)n;
}

int sluice_sigv4_trailer(sluice_sigv4_signer *s, const char *name, const char *value, char *buf,
                         size_t cap, size_t *len)
{
    if (!s || (s->_mode != MODE_UNSIGNED_TRAILER && s->_mode != MODE_SIGNED_TRAILER) || !name ||
        !value || !is_token(name, strlen(name)) || !is_value(value, strlen(value)))
        return SLUICE_EINVAL;
    for (const char *c = name; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            return SLUICE_EINVAL;
    if (s->_ended == ENDED_TRAILER)
        return SLUICE_ECLOSED;
    if (s->_ended != ENDED_CHUNKS)
        return SLUICE_EINVAL;

    char sig[SLUICE_SIGV4_SIGNATURE_SIZE];
    if (s->_mode == MODE_SIGNED_TRAILER) {
        /* the trailer's canonical form: "name:value\n" */
        sluice_sha256_ctx sha;
        unsigned char d[SLUICE_SHA256_SIZE];
        char hex[65];
        sluice_sha256_init(&sha);
        sluice_sha256_update(&sha, name, strlen(name));
        sluice_sha256_update(&sha, ":", 1);
        sluice_sha256_update(&sha, value, strlen(value));
        sluice_sha256_update(&sha, "\n", 1);
        sluice_sha256_final(&sha, d);
        to_hex(d, sizeof d, hex);
        chain_sign(s, ALGORITHM "-TRAILER", hex, NULL, sig);
    }
    out o = {NULL, buf, cap, 0};
    puts_(&o, name);
    put(&o, ":", 1);
    puts_(&o, value);
    put(&o, "\r\n", 2);
    if (s->_mode == MODE_SIGNED_TRAILER) {
        puts_(&o, TRAILER_SIG);
        put(&o, sig, 64);
        put(&o, "\r\n", 2);
    }
    put(&o, "\r\n", 2);
    int rc = finish(&o, len);
    if (rc == 0) {
        if (s->_mode == MODE_SIGNED_TRAILER)
            memcpy(s->signature, sig, sizeof sig);
        s->_ended = ENDED_TRAILER;
    }
    return rc;
}

/* a += b, a += x * y, checked against 64-bit overflow */
static int add_u64(uint64_t *a, uint64_t b)
{
    if (*a > UINT64_MAX - b)
        return -1;
    *a += b;
    return 0;
}

static int add_mul_u64(uint64_t *a, uint64_t x, uint64_t y)
{
    if (x && y > UINT64_MAX / x)
        return -1;
    return add_u64(a, x * y);
}

int sluice_sigv4_encoded_length(const char *payload, uint64_t decoded_len, size_t chunk_size,
                                const char *trailer_name, size_t trailer_value_len,
                                uint64_t *out_len)
{
    int mode = payload_mode(payload);
    if (mode < 0 || !out_len)
        return SLUICE_EINVAL;
    if (mode == MODE_PLAIN) {
        *out_len = decoded_len;
        return 0;
    }
    int trailer = mode != MODE_SIGNED;
    if (chunk_size == 0 || (trailer && !trailer_name))
        return SLUICE_EINVAL;
    char digits[16];
    uint64_t sig = mode == MODE_UNSIGNED_TRAILER ? 0 : sizeof CHUNK_SIG - 1 + 64;
    uint64_t cs = chunk_size, full = decoded_len / cs, rest = decoded_len % cs;
    uint64_t n = 0;
    /* each chunk: size line, data, CRLF; then the zero-size chunk's line */
    int bad = add_mul_u64(&n, full, hex_size(cs, digits) + sig + 4) ||
              add_u64(&n, decoded_len) ||
              (rest && add_u64(&n, hex_size(rest, digits) + sig + 4)) ||
              add_u64(&n, 1 + sig + 2);
    if (trailer) {
        uint64_t t = strlen(trailer_name) + 1;
        bad = bad || add_u64(&n, t) || add_u64(&n, trailer_value_len) || add_u64(&n, 2);
        if (mode == MODE_SIGNED_TRAILER)
            bad = bad || add_u64(&n, sizeof TRAILER_SIG - 1 + 64 + 2);
    }
    bad = bad || add_u64(&n, 2); /* the CRLF that ends the (maybe empty) trailer section */
    if (bad)
        return SLUICE_ERANGE;
    *out_len = n;
    return 0;
}

int sluice_sigv4_base64(const void *in, size_t len, char *buf, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if ((len && !in) || !buf)
        return SLUICE_EINVAL;
    /* the first test keeps the size macro from wrapping and the length an int */
    if (len / 3 >= (size_t)INT_MAX / 4 - 1 || cap < SLUICE_SIGV4_BASE64_SIZE(len))
        return SLUICE_ERANGE;
    const unsigned char *p = in;
    char *d = buf;
    for (; len >= 3; len -= 3, p += 3) {
        *d++ = b64[p[0] >> 2];
        *d++ = b64[(p[0] & 3) << 4 | p[1] >> 4];
        *d++ = b64[(p[1] & 15) << 2 | p[2] >> 6];
        *d++ = b64[p[2] & 63];
    }
    if (len) {
        *d++ = b64[p[0] >> 2];
        *d++ = b64[(p[0] & 3) << 4 | (len > 1 ? p[1] >> 4 : 0)];
        *d++ = len > 1 ? b64[(p[1] & 15) << 2] : '=';
        *d++ = '=';
    }
    *d = '\0';
    return (int)(d - buf);
}
