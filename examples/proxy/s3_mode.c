/*
 * s3_mode.c — sluice-proxy's S3 mode (s3_mode.h says what it does).
 *
 * An upload is a pump from the proxy's body stream (already tapped: the
 * proxy sniffs images there) into the library's S3 sink. The sink talks to
 * the store over connections made here: each is an fd io wrapped so that
 * closing it also forgets its fd in the event loop (the sink closes and
 * reopens connections by itself, moto closes after every answer, and a
 * reused fd number must not look registered when it is not).
 */
#include "s3_mode.h"

#include "../common/http_util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- configuration -------------------------------------------------------- */

/* Well-formed UTF-8 (S3 keys are; JSON and XML carry them as text). */
static int utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return 0;
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        /* overlong forms, surrogates and values past U+10FFFF */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        i += len;
    }
    return 1;
}

int s3_mode_parse_url(s3_mode *m, const char *url)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0) {
        fprintf(stderr, "sluice-proxy: --s3 wants http://HOST:PORT/BUCKET[/PREFIX]\n");
        return -1;
    }
    const char *h = url + sizeof scheme - 1;
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    char hostport[sizeof m->host];
    if (hl == 0 || hl + 4 >= sizeof hostport)
        goto bad;
    memcpy(hostport, h, hl);
    hostport[hl] = 0;
    memcpy(m->host, hostport, hl + 1);
    /* no port: HTTP's (the Host header stays as given) */
    if (hostport[hl - 1] == ']' || !strchr(hostport + (hostport[0] == '[' ? 1 : 0), ':'))
        memcpy(hostport + hl, ":80", 4);
    if (net_parse_addr(hostport, &m->store) < 0 || !slash)
        goto bad;
    const char *b = slash + 1, *end = strchr(b, '/');
    size_t bl = end ? (size_t)(end - b) : strlen(b);
    if (bl < 3 || bl > S3_MODE_MAX_BUCKET)
        goto bad;
    for (size_t i = 0; i < bl; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' ||
              b[i] == '.'))
            goto bad; /* S3's bucket naming rules: also keeps the path unambiguous */
    memcpy(m->bucket, b, bl);
    m->bucket[bl] = 0;
    if (end) {
        size_t pl = strlen(end + 1);
        while (pl && end[pl] == '/') /* "pre/" and "pre" name the same prefix */
            pl--;
        int n = http_pct_decode(end + 1, pl, m->prefix, sizeof m->prefix, 0);
        if (n < 0 || !utf8_ok((const unsigned char *)m->prefix, (size_t)n))
            goto bad;
        m->prefix_len = (size_t)n;
    }
    m->on = 1;
    return 0;
bad:
    fprintf(stderr, "sluice-proxy: --s3 %s: not http://HOST[:PORT]/BUCKET[/PREFIX] "
                    "(bucket: 3-63 of a-z 0-9 . -)\n", url);
    return -1;
}

/* An environment variable that must be set and not empty. */
static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "sluice-proxy: --s3 needs %s in the environment\n", name);
        return NULL;
    }
    return v;
}

int s3_mode_setup(s3_mode *m, size_t max_memory)
{
    const char *region = m->region_opt;
    if (!region || !*region)
        region = getenv("AWS_REGION");
    if (!region || !*region)
        region = "us-east-1";
    if (strlen(region) > SLUICE_SIGV4_MAX_REGION) {
        fprintf(stderr, "sluice-proxy: region %s is too long\n", region);
        return -1;
    }
    strcpy(m->region, region);
    m->cred.access_key_id = need_env("AWS_ACCESS_KEY_ID");
    m->cred.secret_access_key = need_env("AWS_SECRET_ACCESS_KEY");
    m->cred.session_token = getenv("AWS_SESSION_TOKEN");
    if (!m->cred.access_key_id || !m->cred.secret_access_key)
        return -1;
    if (m->part_size && m->part_size < SLUICE_S3_MIN_PART_SIZE) {
        fprintf(stderr, "sluice-proxy: --s3-part-size is at least %u (S3's minimum)\n",
                SLUICE_S3_MIN_PART_SIZE);
        return -1;
    }
    /* An upload of unknown length holds one part of the client's blocks: a
     * budget smaller than a part (and a reader's few blocks) could never
     * fill it, and the upload would wait for memory forever. */
    size_t part = m->part_size ? m->part_size : SLUICE_S3_DEFAULT_PART_SIZE;
    size_t per = part + 4 * SLUICE_DEFAULT_BLOCK_SIZE;
    if (max_memory && max_memory < per) {
        fprintf(stderr, "sluice-proxy: --max-memory %zu cannot hold one S3 part of %zu bytes "
                        "(and 4 blocks): raise it or lower --s3-part-size\n", max_memory, part);
        return -1;
    }
    /* Uploads of unknown length hold their part until it is full: if more
     * ran than the budget holds parts, all of them could wait for memory
     * that only they hold. So only that many run; the others wait their
     * turn before reading their bodies. */
    m->part_slots = max_memory ? (int)(max_memory / per) : INT_MAX;
    /* The sink's own blocks (the store's answers, the copies of small views
     * of a part being held) come from a pool of their own: the sink's
     * reader gives the pool's wake hook no token of the event loop's, so
     * it must not queue in the proxy's pool. No cap either: an answer that
     * waited for memory held by the next part's copies would wait for
     * ever. What it holds is bounded anyway, by the parts the budget lets
     * run (part_slots) and an answer's few blocks per upload. */
    if (sluice_pool_new(NULL, &m->pool) < 0) {
        fprintf(stderr, "sluice-proxy: out of memory\n");
        return -1;
    }
    return 0;
}

void s3_mode_close(s3_mode *m)
{
    sluice_pool_close(m->pool);
    m->pool = NULL;
}

int s3_mode_key(const s3_mode *m, const char *target, size_t len, char *key)
{
    if (len == 0 || target[0] != '/')
        return -1; /* absolute-form or '*': no object named */
    const char *q = memchr(target, '?', len);
    size_t pl = (q ? (size_t)(q - target) : len) - 1;
    size_t off = 0;
    if (m->prefix_len) {
        memcpy(key, m->prefix, m->prefix_len);
        key[m->prefix_len] = '/';
        off = m->prefix_len + 1;
    }
    int n = http_pct_decode(target + 1, pl, key + off, S3_MODE_MAX_KEY + 1 - off, 0);
    if (n <= 0 || !utf8_ok((const unsigned char *)key + off, (size_t)n))
        return -1;
    return (int)off + n;
}

/* ---- signing -------------------------------------------------------------- */

static void amz_date(char *out)
{
    time_t t = time(NULL);
    struct tm tm;
    strftime(out, SLUICE_SIGV4_AMZ_DATE_SIZE, "%Y%m%dT%H%M%SZ", gmtime_r(&t, &tm));
}

static int is_passed_on(const sluice_http_header *h)
{
    static const char *const names[] = {"range", "if-match", "if-none-match",
                                        "if-modified-since", "if-unmodified-since"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (h->name_len == strlen(names[i]) && strncasecmp(h->name, names[i], h->name_len) == 0)
            return 1;
    return 0;
}

int s3_mode_object_head(const s3_mode *m, sluice_pool *pool, const sluice_http_request *rq,
                        const char *key, size_t key_len, int64_t content_length,
                        sluice_bytes *out)
{
    sluice_http_header sign[8];
    size_t n = 0;
    sign[n++] = (sluice_http_header){"Host", 4, m->host, strlen(m->host)};
    for (size_t i = 0; i < rq->num_headers && n < sizeof sign / sizeof sign[0]; i++)
        if (is_passed_on(&rq->headers[i]))
            sign[n++] = rq->headers[i];
    char method[8], date[SLUICE_SIGV4_AMZ_DATE_SIZE], auth[SLUICE_SIGV4_AUTH_SIZE];
    char target[3 * (S3_MODE_MAX_KEY + S3_MODE_MAX_BUCKET) + 8];
    if (rq->method_len >= sizeof method)
        return SLUICE_EINVAL;
    memcpy(method, rq->method, rq->method_len);
    method[rq->method_len] = 0;
    amz_date(date);
    sluice_sigv4_request sr = {.method = method, .bucket = m->bucket, .key = key,
                               .key_len = key_len, .headers = sign, .num_headers = n,
                               .payload = SLUICE_SIGV4_EMPTY_SHA256, .region = m->region,
                               .amz_date = date};
    sluice_sigv4_signer s;
    size_t tl, al;
    int rc = sluice_sigv4_target(&sr, target, sizeof target, &tl);
    if (rc < 0 || (rc = sluice_sigv4_sign(&s, &sr, &m->cred, auth, sizeof auth, &al)) < 0)
        return rc;
    sluice_http_head_builder b;
    sluice_http_head_init(&b, pool);
    sluice_http_head_request_line(&b, method, rq->method_len, target, tl);
    for (size_t i = 0; i < n; i++)
        sluice_http_head_add_header(&b, sign[i].name, sign[i].name_len, sign[i].value,
                                    sign[i].value_len);
    sluice_http_head_add_header(&b, SLUICE_LIT("x-amz-date"), date, strlen(date));
    sluice_http_head_add_header(&b, SLUICE_LIT("x-amz-content-sha256"),
                                SLUICE_LIT(SLUICE_SIGV4_EMPTY_SHA256));
    if (m->cred.session_token && *m->cred.session_token)
        sluice_http_head_add_header(&b, SLUICE_LIT("x-amz-security-token"),
                                    m->cred.session_token, strlen(m->cred.session_token));
    sluice_http_head_add_header(&b, SLUICE_LIT("Authorization"), auth, al);
    if (content_length >= 0)
        sluice_http_head_add_content_length(&b, (uint64_t)content_length);
    explicit_bzero(&s, sizeof s); /* the derived signing key */
    return sluice_http_head_finish(&b, out);
}

/* ---- store connections ---------------------------------------------------- */

/* An fd io whose close also forgets the fd in the event loop. */
typedef struct watched_io {
    sluice_io base;
    sluice_io *inner;
    srv_conn *conn;
} watched_io;

static ssize_t wio_readv(sluice_io *io, const struct iovec *iov, int n)
{
    return sluice_io_readv(((watched_io *)io)->inner, iov, n);
}

static ssize_t wio_writev(sluice_io *io, const struct iovec *iov, int n)
{
    return sluice_io_writev(((watched_io *)io)->inner, iov, n);
}

static int wio_shutdown(sluice_io *io)
{
    return sluice_io_shutdown(((watched_io *)io)->inner);
}

static void wio_close(sluice_io *io)
{
    watched_io *w = (watched_io *)io;
    srv_forget(w->conn, io->fd);
    sluice_io_close(w->inner); /* closes the fd */
    free(w);
}

static const sluice_io_vtable wio_vt = {"s3-store", wio_readv, wio_writev, wio_shutdown, NULL,
                                        wio_close};

struct s3_upload {
    s3_mode *m;
    int slot;             /* holds one of m->part_slots */
    srv_conn *conn;
    sluice_io *io;        /* the first connection (the sink owns the others) */
    sluice_sink *sink;
    sluice_pump pump;
    int settled;          /* 0 pumping, 1 cleaning up, 2 settled */
    int code;             /* the pump's error, 0 when stored */
    sluice_side side;     /* who failed */
    char key[S3_MODE_MAX_KEY + 1];
    size_t key_len;
    char ctype[256];      /* the object's Content-Type, for the answer */
};

/* A connection to the store, its connect maybe still in progress (the
 * sink's writes then say -EAGAIN and it waits for writability). */
static int dial(void *ud, sluice_io **out)
{
    s3_upload *u = ud;
    int fd = net_connect(&u->m->store);
    if (fd < 0)
        return -errno;
    watched_io *w = calloc(1, sizeof *w);
    int rc = w ? sluice_io_fd_new(u->m->pool, fd, SLUICE_IO_CLOSE_FD, &w->inner) : SLUICE_ENOMEM;
    if (rc < 0) {
        free(w);
        close(fd);
        return rc;
    }
    w->base = (sluice_io){&wio_vt, u->m->pool, fd};
    w->conn = u->conn;
    *out = &w->base;
    return 0;
}

/* ---- one upload ----------------------------------------------------------- */

int s3_upload_new(s3_mode *m, const s3_upload_config *uc, sluice_stream *src, s3_upload **out)
{
    if (uc->key_len > S3_MODE_MAX_KEY)
        return SLUICE_EINVAL;
    int unknown = uc->length == SLUICE_S3_UNKNOWN_LENGTH;
    if (unknown && m->part_slots <= 0)
        return 1;
    s3_upload *u = calloc(1, sizeof *u);
    if (!u)
        return SLUICE_ENOMEM;
    u->m = m;
    u->slot = unknown;
    m->part_slots -= unknown;
    u->conn = uc->conn;
    size_t cl = uc->content_type ? uc->content_type_len : 0;
    if (cl >= sizeof u->ctype)
        cl = 0; /* an absurd type: the default */
    memcpy(u->ctype, cl ? uc->content_type : "application/octet-stream", cl ? cl : 24);
    u->ctype[cl ? cl : 24] = 0;
    memcpy(u->key, uc->key, uc->key_len);
    u->key_len = uc->key_len;
    sluice_s3_config c = {
        .host = m->host, .bucket = m->bucket, .key = uc->key, .key_len = uc->key_len,
        .region = m->region, .credentials = m->cred, .length = uc->length,
        .part_size = m->part_size,
        /* plain HTTP: every chunk signed, so nobody on the path can change
         * data and checksum together (docs/s3.md, "Which mode") */
        .payload = SLUICE_SIGV4_STREAMING_SIGNED_TRAILER,
        .content_type = u->ctype, .idle_timeout_ms = uc->timeout_ms,
        .connect = dial, .connect_ud = u,
    };
    int rc = dial(u, &u->io);
    if (rc < 0 || (rc = sluice_s3_sink_new(m->pool, u->io, &c, &u->sink)) < 0) {
        s3_upload_free(u);
        return rc;
    }
    sluice_pump_init(&u->pump, src, u->sink, NULL);
    *out = u;
    return 0;
}

int s3_upload_step(s3_upload *u, sluice_interest *w)
{
    if (u->settled == 0) {
        sluice_pump_status st = sluice_pump_step(&u->pump, w);
        if (st == SLUICE_PUMP_PENDING)
            return 1;
        if (st == SLUICE_PUMP_DONE) {
            u->settled = 2;
            return 0;
        }
        u->code = sluice_pump_error(&u->pump, &u->side);
        u->settled = 1;
    }
    if (u->settled == 1) {
        /* a failed upload leaves nothing: the PutObject is cut, a multipart
         * upload aborted (its own round trip) */
        if (sluice_s3_sink_cleanup(u->sink, w) == SLUICE_PENDING)
            return 1;
        u->settled = 2;
    }
    return 0;
}

void s3_upload_free(s3_upload *u)
{
    if (!u)
        return;
    sluice_pump_close(&u->pump);
    sluice_sink_close(u->sink);
    sluice_io_close(u->io);
    u->m->part_slots += u->slot;
    free(u);
}

/* ---- the answer ----------------------------------------------------------- */

/* JSON text into a buffer s3_upload_answer sized for the longest strings
 * escaped (6 bytes per byte): UTF-8 as is (keys were checked, the store's
 * messages are XML text). */
static void json_str(char **p, const char *s, size_t n)
{
    http_json_str(p, *p + 6 * n + 2 + 7, s, n, 1);
}

static void json_cstr(char **p, const char *s)
{
    json_str(p, s, strlen(s));
}

/* Code and message of a failure that is not an S3 error answer. */
static const char *reason(int code)
{
    switch (code) {
    case SLUICE_ES3_BAD_RESPONSE:
        return "BadResponse";
    case SLUICE_ETIMEDOUT:
        return "Timeout";
    case SLUICE_ENOMEM:
        return "OutOfMemory";
    default:
        return "StoreUnreachable"; /* refused, reset, closed early */
    }
}

static int json_error(char *o, const sluice_s3_result *r, int code)
{
    char *p = o;
    char st[32];
    const char *ec = r->error_code[0] ? r->error_code : NULL;
    if (code == SLUICE_ES3_ERROR && !ec) {
        snprintf(st, sizeof st, "HTTP %d", r->status);
        ec = st;
    }
    p += sprintf(p, "{\"error\":");
    json_cstr(&p, ec ? ec : reason(code));
    p += sprintf(p, ",\"message\":");
    json_cstr(&p, code == SLUICE_ES3_ERROR && r->error_message[0] ? r->error_message
                                                                   : sluice_strerror(code));
    p += sprintf(p, "}\n");
    return (int)(p - o);
}

static int json_stored(char *o, const s3_upload *u, const sluice_s3_result *r,
                       const sluice_sniff *sniff)
{
    char *p = o;
    p += sprintf(p, "{\"bucket\":");
    json_cstr(&p, u->m->bucket);
    p += sprintf(p, ",\"key\":");
    json_str(&p, u->key, u->key_len);
    p += sprintf(p, ",\"size\":%llu,\"etag\":", (unsigned long long)r->size);
    json_cstr(&p, r->etag);
    p += sprintf(p, ",\"sha256\":\"%s\",\"content_type\":", r->sha256);
    json_cstr(&p, u->ctype);
    if (sniff->state == SLUICE_SNIFF_FOUND)
        p += sprintf(p, ",\"image\":{\"format\":\"%s\",\"width\":%u,\"height\":%u}}\n",
                     sluice_sniff_type_name(sniff->type), (unsigned)sniff->width,
                     (unsigned)sniff->height);
    else
        p += sprintf(p, ",\"image\":null}\n");
    return (int)(p - o);
}

int s3_upload_answer(s3_upload *u, const sluice_sniff *sniff, int *status, sluice_bytes *json)
{
    *json = (sluice_bytes){0};
    if (u->code && u->side == SLUICE_SIDE_SOURCE) {
        *status = sluice_http_error_status(u->code);
        return 0;
    }
    sluice_s3_result r;
    sluice_s3_sink_result(u->sink, &r);
    /* every string escaped at most 6 bytes per byte, plus the fixed text */
    size_t cap = 6 * (S3_MODE_MAX_KEY + sizeof r.etag + sizeof r.error_code +
                      sizeof r.error_message + sizeof u->ctype + S3_MODE_MAX_BUCKET) + 512;
    char *buf = malloc(cap);
    if (!buf)
        return SLUICE_ENOMEM;
    int n;
    if (u->code == 0 && r.done) {
        *status = 200;
        n = json_stored(buf, u, &r, sniff);
    } else {
        *status = 502;
        n = json_error(buf, &r, u->code ? u->code : SLUICE_ES3_BAD_RESPONSE);
    }
    int rc = sluice_bytes_copy_from(u->m->pool, buf, (size_t)n, json);
    free(buf);
    return rc;
}
