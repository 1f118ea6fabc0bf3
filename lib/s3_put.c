/*
 * s3_put.c — the PutObject body as aws-chunked: 64 KiB chunks (the size
 * Content-Length was computed with, whatever sizes the pump's views have),
 * each line carved from the scratch block, the payload's own views between
 * them, then the zero chunk and the x-amz-checksum-sha256 trailer. In the
 * unsigned mode a chunk's line does not depend on its data, so bytes go out
 * as they come; in the signed mode a chunk is held (as views) until it is
 * complete and hashed, since its signature goes before it.
 */
#include "s3_internal.h"

#include <string.h>

/* Queues the line before a chunk of n bytes whose digest is d. */
static int put_line(s3_sink *s, uint64_t n, const unsigned char *d)
{
    char line[SLUICE_SIGV4_CHUNK_LINE_SIZE];
    int len = sluice_sigv4_chunk(&s->signer, n, d, line);
    return len < 0 ? len : sluice__s3_push_copy(s, line, (size_t)len);
}

/* Signed mode: the held chunk is complete: line, its views, CRLF. */
int sluice__s3_put_signed_chunk(s3_sink *s)
{
    unsigned char d[SLUICE_SHA256_SIZE];
    sluice_sha256_final(&s->fctx, d);
    s->fctx = s->fresh;
    int rc = put_line(s, s->fbytes, d);
    for (size_t i = 0; i < s->fn; i++)
        if (rc == 0)
            rc = sluice__s3_push(s, &s->fill[i]);
        else
            sluice_bytes_release(&s->fill[i]);
    s->fn = 0;
    s->fbytes = 0;
    if (rc == 0) {
        sluice_bytes crlf = sluice_bytes_static("\r\n", 2);
        rc = sluice__s3_push(s, &crlf);
    }
    return rc;
}

/* Frames v (reference moves) as aws-chunked payload of the PutObject. */
int sluice__s3_put_frame(s3_sink *s, sluice_bytes *v)
{
    int rc = 0;
    while (v->len && rc == 0) {
        if (s->chunk_left == 0) {
            s->chunk_left = s->put_left < SLUICE_S3_CHUNK_SIZE ? s->put_left
                                                               : SLUICE_S3_CHUNK_SIZE;
            if (!s->signed_mode && (rc = put_line(s, s->chunk_left, NULL)) < 0)
                break;
        }
        size_t take = v->len < s->chunk_left ? v->len : (size_t)s->chunk_left;
        sluice_bytes piece;
        if (take == v->len) {
            piece = *v;
            *v = (sluice_bytes){0};
        } else {
            if ((rc = sluice_bytes_slice(v, 0, take, &piece)) < 0)
                break;
            sluice_bytes_advance(v, take);
        }
        s->chunk_left -= take;
        s->put_left -= take;
        if (s->signed_mode) {
            rc = sluice__s3_fill_add(s, &piece);
            if (rc == 0 && s->chunk_left == 0)
                rc = sluice__s3_put_signed_chunk(s);
        } else {
            rc = sluice__s3_push(s, &piece);
            if (rc == 0 && s->chunk_left == 0) {
                sluice_bytes crlf = sluice_bytes_static("\r\n", 2);
                rc = sluice__s3_push(s, &crlf);
            }
        }
    }
    sluice_bytes_release(v);
    return rc;
}

/* The end of the PutObject body: the zero chunk and the checksum trailer. */
int sluice__s3_put_end(s3_sink *s)
{
    unsigned char d[SLUICE_SHA256_SIZE];
    sluice_sha256_ctx c = s->whole;
    sluice_sha256_final(&c, d);
    char b64[SLUICE_SIGV4_BASE64_SIZE(SLUICE_SHA256_SIZE)], tail[256];
    char line[SLUICE_SIGV4_CHUNK_LINE_SIZE];
    size_t tl;
    int rc = sluice_sigv4_base64(d, sizeof d, b64, sizeof b64);
    int n = rc < 0 ? rc : sluice_sigv4_chunk(&s->signer, 0, NULL, line);
    if (n < 0)
        return n;
    if ((rc = sluice__s3_push_copy(s, line, (size_t)n)) < 0 ||
        (rc = sluice_sigv4_trailer(&s->signer, "x-amz-checksum-sha256", b64, tail, sizeof tail,
                                   &tl)) < 0 ||
        (rc = sluice__s3_push_copy(s, tail, tl)) < 0)
        return rc;
    s->body_queued = true;
    return 0;
}

/* Starts the PutObject of s->length bytes. */
int sluice__s3_put_begin(s3_sink *s)
{
    s->put_left = (uint64_t)s->length;
    s->chunk_left = 0;
    s->fctx = s->fresh;
    return sluice__s3_request(s, RQ_PUT);
}

