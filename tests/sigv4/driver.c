/*
 * driver.c — signs requests read from stdin with sluice's SigV4 module, for
 * tests/sigv4/botocore_diff.py. One request per line, fields separated by
 * single spaces; a string field is "x" followed by its bytes in hex (so the
 * empty string is "x"), or "-" for NULL:
 *
 *   method bucket key payload region amz_date access_key secret token
 *   nq {name value}*nq  nh {name value}*nh  chunk_size body
 *
 * chunk_size is decimal, 0 when the payload is not a streaming mode; body is
 * a string field framed as aws-chunked in that mode (trailer modes end with
 * x-amz-checksum-sha256, the base64 SHA-256 of the body). For each line it
 * writes one line, tab-separated:
 *
 *   authorization  target  canonical-request-hex  encoded-body-hex  length
 *
 * (the last two "-" outside the streaming modes), or "error NAME" when a
 * call fails.
 */
#include "sluice.h"
#include "../../lib/testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXF SLUICE_SIGV4_MAX_FIELDS

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf;

static void buf_put(buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            perror("realloc");
            exit(2);
        }
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void print_hex(const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        printf("%02x", s[i]);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes the next field in place (the decoded bytes are never longer than
 * the text); NUL-terminates it. Sets *out to NULL for "-". */
static int field(char **cur, char **out, size_t *len)
{
    char *t = strsep(cur, " \n");
    if (!t)
        return -1;
    if (strcmp(t, "-") == 0) {
        *out = NULL;
        *len = 0;
        return 0;
    }
    if (t[0] != 'x')
        return -1;
    size_t n = strlen(t + 1);
    if (n % 2)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(t[1 + 2 * i]), lo = hexval(t[2 + 2 * i]);
        if (hi < 0 || lo < 0)
            return -1;
        t[i] = (char)(hi << 4 | lo);
    }
    t[n / 2] = '\0';
    *out = t;
    *len = n / 2;
    return 0;
}

static int number(char **cur, size_t *n)
{
    char *t = strsep(cur, " \n"), *end;
    if (!t || !*t)
        return -1;
    *n = strtoul(t, &end, 10);
    return *end ? -1 : 0;
}

static int fields(char **cur, sluice_http_header *f, size_t *n)
{
    if (number(cur, n) < 0 || *n > MAXF)
        return -1;
    for (size_t i = 0; i < *n; i++) {
        char *name, *value;
        if (field(cur, &name, &f[i].name_len) < 0 || field(cur, &value, &f[i].value_len) < 0)
            return -1;
        f[i].name = name;
        f[i].value = value;
    }
    return 0;
}

/* Prints the error line for a failed call; returns rc. */
static int fail(const char *what, int rc)
{
    printf("error %s %s\n", what, sluice_err_name(rc));
    return rc;
}

/* Frames body as aws-chunked with the signer from sign(): 0, or the error
 * (its line printed). */
static int frame(sluice_sigv4_signer *s, const char *payload, const unsigned char *body,
                 size_t n, size_t chunk_size, buf *out)
{
    char line[SLUICE_SIGV4_CHUNK_LINE_SIZE];
    size_t off = 0;
    for (;;) {
        size_t take = n - off < chunk_size ? n - off : chunk_size;
        unsigned char d[SLUICE_SHA256_SIZE];
        sluice_sha256(body + off, take, d);
        int len = sluice_sigv4_chunk(s, take, d, line);
        if (len < 0)
            return fail("chunk", len);
        buf_put(out, line, (size_t)len);
        if (!take)
            break;
        buf_put(out, body + off, take);
        buf_put(out, "\r\n", 2);
        off += take;
    }
    if (strcmp(payload, SLUICE_SIGV4_STREAMING_SIGNED) != 0) {
        unsigned char d[SLUICE_SHA256_SIZE];
        char b64[SLUICE_SIGV4_BASE64_SIZE(SLUICE_SHA256_SIZE)], tr[256];
        size_t len;
        sluice_sha256(body, n, d);
        sluice_sigv4_base64(d, sizeof d, b64, sizeof b64);
        int rc = sluice_sigv4_trailer(s, "x-amz-checksum-sha256", b64, tr, sizeof tr, &len);
        if (rc < 0)
            return fail("trailer", rc);
        buf_put(out, tr, len);
    }
    return 0;
}

static int one(char *lineptr)
{
    char *cur = lineptr, *method, *bucket, *key, *payload, *region, *date, *akid, *secret, *token,
         *body;
    size_t klen, blen, n, chunk_size;
    sluice_http_header q[MAXF], h[MAXF];
    sluice_sigv4_request rq = {0};
    if (field(&cur, &method, &n) < 0 || field(&cur, &bucket, &n) < 0 ||
        field(&cur, &key, &klen) < 0 || field(&cur, &payload, &n) < 0 ||
        field(&cur, &region, &n) < 0 || field(&cur, &date, &n) < 0 ||
        field(&cur, &akid, &n) < 0 || field(&cur, &secret, &n) < 0 ||
        field(&cur, &token, &n) < 0 || fields(&cur, q, &rq.num_query) < 0 ||
        fields(&cur, h, &rq.num_headers) < 0 || number(&cur, &chunk_size) < 0 ||
        field(&cur, &body, &blen) < 0)
        return -1;
    rq.method = method;
    rq.bucket = bucket;
    rq.key = key;
    rq.key_len = klen;
    rq.query = q;
    rq.headers = h;
    rq.payload = payload;
    rq.region = region;
    rq.amz_date = date;
    sluice_sigv4_credentials cred = {akid, secret, token};

    char auth[2048], target[8192], cr[16384];
    size_t alen, tlen, clen;
    sluice_sigv4_signer s;
    int rc = sluice_sigv4_sign(&s, &rq, &cred, auth, sizeof auth, &alen);
    if (rc < 0 || (rc = sluice_sigv4_target(&rq, target, sizeof target, &tlen)) < 0 ||
        (rc = sluice__sigv4_canonical_request(&rq, &cred, cr, sizeof cr, &clen)) < 0) {
        fail("sign", rc);
        return 0;
    }
    buf enc = {0};
    uint64_t elen = 0;
    if (chunk_size) { /* before printing, so a failure is one "error" line */
        rc = frame(&s, payload, (const unsigned char *)(body ? body : ""), blen, chunk_size, &enc);
        if (rc == 0) {
            rc = sluice_sigv4_encoded_length(payload, blen, chunk_size, "x-amz-checksum-sha256",
                                             44, &elen);
            if (rc < 0)
                fail("encoded_length", rc);
        }
        if (rc < 0) {
            free(enc.p);
            return 0;
        }
    }
    printf("%s\t%s\t", auth, target);
    print_hex(cr, clen);
    if (chunk_size) {
        putchar('\t');
        print_hex(enc.p, enc.len);
        printf("\t%llu\n", (unsigned long long)elen);
    } else {
        printf("\t-\t-\n");
    }
    free(enc.p);
    return 0;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while (getline(&line, &cap, stdin) > 0) {
        lineno++;
        if (one(line) < 0) {
            fprintf(stderr, "sigv4-driver: malformed input line %ld\n", lineno);
            free(line);
            return 2;
        }
        fflush(stdout);
    }
    free(line);
    return 0;
}
