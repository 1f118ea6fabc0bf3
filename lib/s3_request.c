/*
 * s3_request.c — the S3 sink's requests and responses: each request's
 * fields, signed with SigV4 and written as a head by the head builder into
 * a raw writer; each response read with sluice_http_read_response and a
 * body stream, and judged (ETag, UploadId, <Error> Code and Message).
 *
 *   PutObject                 PUT  /b/k                    aws-chunked, trailer
 *   CreateMultipartUpload     POST /b/k?uploads            x-amz-checksum-algorithm
 *   UploadPart                PUT  /b/k?partNumber&uploadId x-amz-checksum-sha256,
 *                                                          payload = part's SHA-256
 *   CompleteMultipartUpload   POST /b/k?uploadId           XML, payload signed
 *   AbortMultipartUpload      DELETE /b/k?uploadId
 */
#include "s3_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define TARGET_MAX 8192 /* a 1024-byte key and an upload id, all %XX */

typedef struct fields {
    sluice_http_header h[8];
    size_t n;
    sluice_http_header q[2];
    size_t nq;
    char cl[24], dl[24], sum[SLUICE_SIGV4_BASE64_SIZE(SLUICE_SHA256_SIZE)], pn[12];
    char payload[SLUICE_SHA256_HEX_SIZE];
} fields;

static void add(sluice_http_header *a, size_t *n, const char *name, const char *value)
{
    a[(*n)++] = (sluice_http_header){name, strlen(name), value, strlen(value)};
}

/* The Complete body's length and SHA-256 (hex into f->payload). */
static uint64_t complete_size(s3_sink *s, fields *f)
{
    char piece[SLUICE__S3_PIECE_SIZE];
    sluice_sha256_ctx c = s->fresh;
    uint64_t total = 0;
    for (size_t i = 0; i <= s->np; i++) {
        size_t n = i < s->np ? sluice__s3_complete_piece(i, s->np, s->parts[i].etag,
                                                          s->parts[i].sum, piece)
                             : sluice__s3_complete_piece(i, s->np, "", "", piece);
        sluice_sha256_update(&c, piece, n);
        total += n;
    }
    unsigned char d[SLUICE_SHA256_SIZE];
    sluice_sha256_final(&c, d);
    sluice_sha256_hex(d, f->payload);
    return total;
}

static int complete_body(s3_sink *s)
{
    char piece[SLUICE__S3_PIECE_SIZE];
    for (size_t i = 0; i <= s->np; i++) {
        size_t n = i < s->np ? sluice__s3_complete_piece(i, s->np, s->parts[i].etag,
                                                          s->parts[i].sum, piece)
                             : sluice__s3_complete_piece(i, s->np, "", "", piece);
        sluice_bytes v;
        int rc = sluice__s3_scratch(s, piece, n, &v);
        if (rc < 0 || (rc = sluice__s3_push(s, &v)) < 0)
            return rc;
    }
    return 0;
}

/* The part being filled becomes the request body; its digest goes in the
 * header and signs the payload. */
static int part_fields(s3_sink *s, fields *f)
{
    if (s->np >= SLUICE_S3_MAX_PARTS)
        return SLUICE_ETOOBIG;
    int rc = sluice__grow(s->base.pool, (void **)&s->parts, &s->pcap, s->np + 1,
                          sizeof *s->parts);
    if (rc < 0)
        return rc;
    unsigned char d[SLUICE_SHA256_SIZE];
    sluice_sha256_ctx c = s->fctx;
    sluice_sha256_final(&c, d);
    sluice_sha256_hex(d, f->payload);
    sluice_sigv4_base64(d, sizeof d, f->sum, sizeof f->sum);
    memcpy(s->parts[s->np].sum, f->sum, sizeof f->sum);
    s->parts[s->np].etag[0] = 0;
    snprintf(f->cl, sizeof f->cl, "%" PRIu64, s->fbytes);
    snprintf(f->pn, sizeof f->pn, "%zu", s->np + 1);
    add(f->h, &f->n, "Content-Length", f->cl);
    add(f->h, &f->n, "x-amz-checksum-sha256", f->sum);
    add(f->q, &f->nq, "partNumber", f->pn);
    add(f->q, &f->nq, "uploadId", s->upload_id);
    return 0;
}

/* Moves the filled part into the (empty) queue, and the carried rest of the
 * last chunk into a fresh part. */
static int part_move(s3_sink *s)
{
    sluice_bytes *q = s->q;
    size_t qcap = s->qcap;
    s->q = s->fill;
    s->qcap = s->fcap;
    s->qhead = 0;
    s->qn = s->fn;
    s->qbytes = (size_t)s->fbytes;
    s->fill = q;
    s->fcap = qcap;
    s->fn = 0;
    s->fbytes = 0;
    s->fctx = s->fresh;
    if (!s->carry.len)
        return 0;
    int rc = sluice__grow(s->base.pool, (void **)&s->fill, &s->fcap, 1, sizeof *s->fill);
    if (rc < 0)
        return rc;
    sluice_sha256_update(&s->fctx, s->carry.data, s->carry.len);
    s->fbytes = s->carry.len;
    s->fill[s->fn++] = s->carry;
    s->carry = (sluice_bytes){0};
    return 0;
}

static int request_fields(s3_sink *s, enum s3_req kind, fields *f, const char **method)
{
    memset(f, 0, sizeof *f);
    add(f->h, &f->n, "Host", s->host);
    int rc = 0;
    uint64_t len;
    switch (kind) {
    case RQ_PUT:
        *method = "PUT";
        rc = sluice_sigv4_encoded_length(s->payload, (uint64_t)s->length, SLUICE_S3_CHUNK_SIZE,
                                         "x-amz-checksum-sha256", 44, &len);
        snprintf(f->cl, sizeof f->cl, "%" PRIu64, len);
        snprintf(f->dl, sizeof f->dl, "%" PRId64, s->length);
        add(f->h, &f->n, "Content-Type", s->content_type);
        add(f->h, &f->n, "Content-Encoding", "aws-chunked");
        add(f->h, &f->n, "Content-Length", f->cl);
        add(f->h, &f->n, "x-amz-decoded-content-length", f->dl);
        add(f->h, &f->n, "x-amz-trailer", "x-amz-checksum-sha256");
        memcpy(f->payload, s->payload, strlen(s->payload) + 1);
        break;
    case RQ_CREATE:
        *method = "POST";
        add(f->h, &f->n, "Content-Type", s->content_type);
        add(f->h, &f->n, "Content-Length", "0");
        add(f->h, &f->n, "x-amz-checksum-algorithm", "SHA256");
        add(f->q, &f->nq, "uploads", "");
        memcpy(f->payload, SLUICE_SIGV4_EMPTY_SHA256, sizeof f->payload);
        break;
    case RQ_PART:
        *method = "PUT";
        rc = part_fields(s, f);
        break;
    case RQ_COMPLETE:
        *method = "POST";
        snprintf(f->cl, sizeof f->cl, "%" PRIu64, complete_size(s, f));
        add(f->h, &f->n, "Content-Length", f->cl);
        add(f->q, &f->nq, "uploadId", s->upload_id);
        break;
    default:
        *method = "DELETE";
        add(f->q, &f->nq, "uploadId", s->upload_id);
        memcpy(f->payload, SLUICE_SIGV4_EMPTY_SHA256, sizeof f->payload);
        break;
    }
    return rc;
}

/* Signs the request and writes its head. */
static int build_head(s3_sink *s, const char *method, const fields *f, sluice_bytes *head)
{
    char date[SLUICE_SIGV4_AMZ_DATE_SIZE], target[TARGET_MAX], auth[SLUICE_SIGV4_AUTH_SIZE];
    time_t t = s->fixed_time ? s->fixed_time : time(NULL);
    size_t tl, al;
    sluice_sigv4_request rq = {
        .method = method, .bucket = s->bucket, .key = s->key, .key_len = s->key_len,
        .query = f->q, .num_query = f->nq, .headers = f->h, .num_headers = f->n,
        .payload = f->payload, .region = s->region, .amz_date = date,
    };
    int rc = sluice__sigv4_amz_date(t, date);
    if (rc < 0 || (rc = sluice_sigv4_target(&rq, target, sizeof target, &tl)) < 0 ||
        (rc = sluice_sigv4_sign(&s->signer, &rq, &s->cred, auth, sizeof auth, &al)) < 0)
        return rc;
    sluice_http_head_builder b;
    sluice_http_head_init(&b, s->base.pool);
    sluice_http_head_request_line(&b, method, strlen(method), target, tl);
    for (size_t i = 0; i < f->n; i++)
        sluice_http_head_add_header(&b, f->h[i].name, f->h[i].name_len, f->h[i].value,
                                    f->h[i].value_len);
    sluice_http_head_add_header(&b, SLUICE_LIT("x-amz-date"), date, strlen(date));
    sluice_http_head_add_header(&b, SLUICE_LIT("x-amz-content-sha256"), f->payload,
                                strlen(f->payload));
    if (s->cred.session_token)
        sluice_http_head_add_header(&b, SLUICE_LIT("x-amz-security-token"),
                                    s->cred.session_token, strlen(s->cred.session_token));
    sluice_http_head_add_header(&b, SLUICE_LIT("Authorization"), auth, al);
    return sluice_http_head_finish(&b, head);
}

/* A fresh connection from the host's callback in place of a dead one. */
static int reconnect(s3_sink *s)
{
    if (!s->connect) {
        sluice__s3_conn_lost(s);
        sluice__s3_fail(s, SLUICE_EPEERCLOSED,
                        "the S3 store closed the connection and there is no connect callback");
        return SLUICE_EPEERCLOSED;
    }
    sluice_sink_close(s->w);
    s->w = NULL;
    sluice_stream_close(s->body);
    s->body = NULL;
    sluice_reader_close(s->rd);
    s->rd = NULL;
    if (s->own_io)
        sluice_io_close(s->io);
    s->own_io = false;
    s->io = NULL;
    sluice_io *io = NULL;
    int rc = s->connect(s->connect_ud, &io);
    if (rc < 0 || !io) {
        s->conn_dead = true;
        sluice__s3_conn_lost(s);
        sluice__s3_fail(s, rc < 0 ? rc : SLUICE_EINVAL, "connecting to the S3 store failed");
        return rc < 0 ? rc : SLUICE_EINVAL;
    }
    s->io = io;
    s->own_io = true;
    s->conn_dead = false;
    return 0;
}

/* Before a request on a connection that carried one already: a store may
 * have closed it while it was idle (S3 does after a few seconds), which a
 * read that does not block tells. Bytes nobody asked for are an error. */
static int probe(s3_sink *s)
{
    if (s->conn_dead || !s->rd)
        return 0;
    sluice_poll r = sluice_reader_fill(s->rd);
    if (r == SLUICE_EOF || r == SLUICE_ERROR)
        s->conn_dead = true;
    else if (sluice_reader_available(s->rd)) {
        sluice__s3_conn_lost(s);
        sluice__s3_fail(s, SLUICE_ES3_BAD_RESPONSE, "the S3 store sent bytes nobody asked for");
        return SLUICE_ES3_BAD_RESPONSE;
    }
    return 0;
}

int sluice__s3_request(s3_sink *s, enum s3_req kind)
{
    if (probe(s) < 0 || (s->conn_dead && reconnect(s) < 0))
        return s->base._error.code;
    fields f;
    const char *method;
    sluice_bytes head = {0};
    int rc = 0;
    if (!s->rd)
        rc = sluice_reader_new(s->base.pool, s->io, NULL, &s->rd);
    if (rc == 0)
        rc = request_fields(s, kind, &f, &method);
    if (rc == 0)
        rc = build_head(s, method, &f, &head);
    sluice_writer_config wc = {.idle_timeout_ms = s->idle_ms};
    if (rc == 0)
        rc = sluice_writer_new(s->base.pool, s->io, SLUICE_FRAMING_CLOSE, &head, &wc, &s->w);
    if (rc == 0 && kind == RQ_PART)
        rc = part_move(s);
    if (rc == 0 && kind == RQ_COMPLETE)
        rc = complete_body(s);
    if (rc < 0) {
        sluice__s3_fail(s, rc, "could not build an S3 request");
        if (s->aborting && s->upload_id[0])
            s->cleanup = SLUICE_S3_CLEANUP_FAILED;
        return rc;
    }
    s->req = kind;
    s->step = ST_SEND;
    s->body_queued = kind != RQ_PUT;
    s->status = 0;
    s->write_err = 0;
    s->resp_etag[0] = s->resp_sum[0] = 0;
    return 0;
}

/* ---- responses ------------------------------------------------------------- */

static void copy_value(char *out, size_t cap, const char *v, size_t n, bool unquote)
{
    if (unquote && n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = 0;
}

static void keep_headers(s3_sink *s, const sluice_http_response *res)
{
    const sluice_http_header *h = sluice_http_header_find(res->headers, res->num_headers, "ETag");
    if (h)
        copy_value(s->resp_etag, sizeof s->resp_etag, h->value, h->value_len, true);
    h = sluice_http_header_find(res->headers, res->num_headers, "x-amz-checksum-sha256");
    if (h)
        copy_value(s->resp_sum, sizeof s->resp_sum, h->value, h->value_len, false);
}

static sluice_poll head_pending(s3_sink *s)
{
    sluice_reader_ready(s->rd, &s->want);
    size_t seen = (size_t)sluice_reader_consumed(s->rd) + sluice_reader_available(s->rd);
    if (seen != s->seen)
        sluice__idle_progress(&s->idle);
    s->seen = seen;
    if (!sluice__idle_pending(&s->idle)) {
        sluice__s3_conn_lost(s);
        return sluice__s3_fail(s, SLUICE_ETIMEDOUT, "the S3 store did not answer in time");
    }
    int64_t d = s->idle.ms ? sluice__idle_deadline(&s->idle) : -1;
    if (d >= 0 && (s->want.deadline_ms < 0 || d < s->want.deadline_ms))
        s->want.deadline_ms = d; /* the reader's may be sooner: its pool retry */
    return SLUICE_PENDING;
}

sluice_poll sluice__s3_read_head(s3_sink *s)
{
    sluice_http_response res;
    sluice_http_header h[S3_MAX_HEADERS];
    sluice_bytes head;
    int err = 0;
    sluice_poll r = sluice_http_read_response(s->rd, NULL, &res, h, S3_MAX_HEADERS, &head, &err);
    if (s->write_err && r != SLUICE_READY) { /* no early answer: the write error */
        sluice__s3_conn_lost(s);
        return sluice__s3_fail(s, s->write_err, "writing to the S3 store failed");
    }
    if (r == SLUICE_PENDING)
        return head_pending(s);
    if (r != SLUICE_READY) {
        sluice__s3_conn_lost(s);
        if (r == SLUICE_EOF || err == SLUICE_ETRUNCATED)
            return sluice__s3_fail(s, SLUICE_EPEERCLOSED,
                                   "the S3 store closed the connection before answering");
        return sluice__s3_fail(s, err ? err : SLUICE_ES3_BAD_RESPONSE,
                               "the S3 store's response head is malformed");
    }
    sluice__idle_progress(&s->idle);
    if (res.status < 200) { /* 100 Continue and the like */
        sluice_bytes_release(&head);
        return SLUICE_READY;
    }
    s->status = res.status;
    s->keep_alive = sluice_http_response_keep_alive(&res);
    keep_headers(s, &res);
    static const char *const methods[] = {"", "PUT", "POST", "PUT", "POST", "DELETE"};
    const char *m = methods[s->req];
    sluice_http_framing fr;
    int rc = sluice_http_response_framing(&res, m, strlen(m), &fr);
    sluice_bytes_release(&head);
    if (rc < 0) {
        sluice__s3_conn_lost(s);
        return sluice__s3_fail(s, rc, "the S3 store's response framing is malformed");
    }
    if (fr.body == SLUICE_HTTP_BODY_CLOSE || s->write_err)
        s->keep_alive = false;
    sluice_body_config bc = {.idle_timeout_ms = s->idle_ms};
    if ((rc = sluice_body_new(s->base.pool, s->rd, &fr, &bc, &s->body)) < 0) {
        sluice__s3_conn_lost(s); /* the answer's body stays unread */
        return sluice__s3_fail(s, rc, NULL);
    }
    s->xml_len = 0;
    s->step = ST_BODY;
    return SLUICE_READY;
}

static sluice_poll s3_error(s3_sink *s)
{
    if (!s->base._error.code) {
        const char *x = s->xml ? s->xml : "";
        if (sluice__xml_text(x, s->xml_len, "Code", s->error_code, sizeof s->error_code) < 0)
            snprintf(s->error_code, sizeof s->error_code, "HTTP%d", s->status);
        if (sluice__xml_text(x, s->xml_len, "Message", s->error_message,
                             sizeof s->error_message) < 0)
            snprintf(s->error_message, sizeof s->error_message, "%s",
                     sluice_http_reason_phrase(s->status));
    }
    return sluice__s3_fail(s, SLUICE_ES3_ERROR, "the S3 store answered with an error");
}

static void completed(s3_sink *s, const char *etag, const char *sum)
{
    unsigned char d[SLUICE_SHA256_SIZE];
    sluice_sha256_ctx c = s->whole;
    sluice_sha256_final(&c, d);
    sluice_sha256_hex(d, s->sha256_hex);
    copy_value(s->etag, sizeof s->etag, etag, strlen(etag), true);
    copy_value(s->checksum, sizeof s->checksum, sum, strlen(sum), false);
    s->completed = true;
}

/* Judges the response to s->req, whose body (its start) is in s->xml. */
static sluice_poll on_response(s3_sink *s)
{
    enum s3_req req = s->req;
    const char *x = s->xml ? s->xml : "";
    char v[SLUICE_S3_UPLOAD_ID_SIZE];
    s->req = RQ_NONE;
    bool ok = s->status >= 200 && s->status < 300;
    if (ok && req == RQ_COMPLETE && sluice__xml_text(x, s->xml_len, "Code", v, sizeof v) >= 0)
        ok = false; /* an <Error> in a 200: Complete failed after it started */
    if (req == RQ_ABORT) {
        /* 404 NoSuchUpload: already gone */
        s->cleanup = ok || s->status == 404 ? SLUICE_S3_CLEAN : SLUICE_S3_CLEANUP_FAILED;
        if (!ok && s->status != 404)
            return s3_error(s);
        return SLUICE_READY;
    }
    if (!ok)
        return s3_error(s);
    if (s->write_err) /* a success to a body that did not go out whole */
        return sluice__s3_fail(s, s->write_err, "writing to the S3 store failed");
    if (s->aborting && req == RQ_PART)
        return SLUICE_READY; /* an answer to what was in flight: the abort follows */
    switch (req) {
    case RQ_PUT:
        completed(s, s->resp_etag, s->resp_sum);
        break;
    case RQ_CREATE:
        if (sluice__xml_text(x, s->xml_len, "UploadId", s->upload_id, sizeof s->upload_id) <= 0)
            return sluice__s3_fail(s, SLUICE_ES3_BAD_RESPONSE, "no UploadId in the answer");
        s->cleanup = SLUICE_S3_CLEANUP_NEEDED;
        break;
    case RQ_PART:
        if (!s->resp_etag[0])
            return sluice__s3_fail(s, SLUICE_ES3_BAD_RESPONSE, "no ETag for an uploaded part");
        memcpy(s->parts[s->np].etag, s->resp_etag, sizeof s->resp_etag);
        s->np++;
        break;
    default: { /* RQ_COMPLETE */
        char etag[SLUICE_S3_ETAG_SIZE], sum[SLUICE_S3_ETAG_SIZE];
        if (sluice__xml_text(x, s->xml_len, "ETag", etag, sizeof etag) <= 0)
            return sluice__s3_fail(s, SLUICE_ES3_BAD_RESPONSE, "no ETag in the answer");
        if (sluice__xml_text(x, s->xml_len, "ChecksumSHA256", sum, sizeof sum) < 0)
            memcpy(sum, s->resp_sum, sizeof sum);
        completed(s, etag, sum);
        s->cleanup = SLUICE_S3_CLEAN;
        break;
    }
    }
    return SLUICE_READY;
}

sluice_poll sluice__s3_read_body(s3_sink *s)
{
    for (;;) {
        sluice_bytes c;
        sluice_poll r = sluice_stream_poll_next(s->body, &c);
        if (r == SLUICE_READY) {
            if (!s->xml && !(s->xml = sluice__alloc(s->base.pool, S3_XML_MAX))) {
                sluice_bytes_release(&c);
                return sluice__s3_fail(s, SLUICE_ENOMEM, NULL);
            }
            size_t n = S3_XML_MAX - 1 - s->xml_len;
            n = c.len < n ? c.len : n;
            memcpy(s->xml + s->xml_len, c.data, n);
            s->xml_len += n;
            s->xml[s->xml_len] = 0;
            sluice_bytes_release(&c);
            continue;
        }
        if (r == SLUICE_PENDING) {
            sluice_stream_ready(s->body, &s->want);
            return r;
        }
        if (r == SLUICE_ERROR) {
            sluice__s3_conn_lost(s);
            return sluice__s3_fail(s, sluice_stream_error(s->body, NULL),
                                   "reading the S3 store's answer failed");
        }
        sluice_stream_close(s->body);
        s->body = NULL;
        s->step = ST_IDLE;
        if (!s->keep_alive)
            s->conn_dead = true;
        return on_response(s);
    }
}
