/*
 * s3.c — the S3 upload sink: PutObject streamed as aws-chunked for a known
 * length, a multipart upload for an unknown one, and the abort that leaves
 * nothing behind.
 *
 * One request at a time on one connection. Every request is a head (built
 * with the head builder, signed with sigv4) and a body given to a raw
 * writer; everything waiting for the writer is one queue of views (`q`):
 * aws-chunked lines (carved from a scratch pool block, a few bytes each),
 * the payload's own views, and the Complete body. The response is read with
 * the connection's reader, its head parsed by sluice_http_read_response and
 * its body read through a body stream, of which the first 8 KiB are kept
 * for the XML.
 *
 * Memory: a PutObject holds what the pump gives it until the writer takes
 * it (the queue is bounded like a writer's), so nothing but the SigV4
 * signed mode's one 64 KiB chunk is held. A multipart upload holds one part
 * (the views it is given, `fill`) to hash it before its UploadPart head
 * can be signed; the part then moves to the queue and the next one fills
 * only once the previous one is written.
 */
#include "s3_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const sluice_sink_vtable s3_vt;

/* ---- small helpers ------------------------------------------------------- */

sluice_poll sluice__s3_fail(s3_sink *s, int code, const char *why)
{
    return sluice_sink_fail(&s->base, code, why);
}

/* The connection cannot carry another request (a new one may be made). */
void sluice__s3_conn_lost(s3_sink *s)
{
    s->conn_dead = true;
    s->step = ST_IDLE;
    if (!s->connect && s->upload_id[0] && s->cleanup == SLUICE_S3_CLEANUP_NEEDED)
        s->cleanup = SLUICE_S3_CLEANUP_FAILED;
}

static void drop_views(sluice_bytes *v, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        sluice_bytes_release(&v[i]);
}

static void drop_fill(s3_sink *s)
{
    sluice_bytes_release(&s->carry);
    drop_views(s->fill, 0, s->fn);
    s->fn = 0;
    s->fbytes = 0;
}

static void drop_queue(s3_sink *s)
{
    drop_views(s->q, s->qhead, s->qn);
    s->qhead = s->qn = 0;
    s->qbytes = 0;
}

/* ---- the engine ------------------------------------------------------------ */

/* Starts the next request an idle multipart upload needs, if any. Returns 1
 * if one was started, 0 if there is nothing to do, < 0 on failure. */
static int advance(s3_sink *s)
{
    if (s->aborting) {
        if (!s->upload_id[0] || s->abort_sent || (s->conn_dead && !s->connect))
            return 0;
        s->abort_sent = true;
        return sluice__s3_request(s, RQ_ABORT) < 0 ? -1 : 1;
    }
    if (s->length >= 0 || s->completed)
        return 0;
    if (s->fbytes >= s->part_size || (s->finishing && s->fbytes && s->upload_id[0]))
        return sluice__s3_request(s, s->upload_id[0] ? RQ_PART : RQ_CREATE) < 0 ? -1 : 1;
    if (!s->finishing)
        return 0;
    if (!s->upload_id[0]) {
        /* The whole stream fitted in the first part: one PutObject. */
        s->length = (int64_t)s->fbytes;
        int rc = sluice__s3_put_begin(s);
        sluice_bytes *v = s->fill;
        size_t n = s->fn;
        s->fill = NULL;
        s->fn = s->fcap = 0;
        s->fbytes = 0;
        size_t cap = n, i = 0;
        for (; i < n && rc == 0; i++)
            rc = sluice__s3_put_frame(s, &v[i]);
        drop_views(v, i, n);
        sluice__free(s->base.pool, v, cap * sizeof *v);
        if (rc == 0)
            rc = sluice__s3_put_end(s);
        return rc < 0 ? -1 : 1;
    }
    return sluice__s3_request(s, RQ_COMPLETE) < 0 ? -1 : 1;
}

/* A write to the store failed. The store may have answered before the
 * body was complete (no such bucket, access denied...) and closed: that
 * answer, if it is already here, says more than EPIPE, so the response is
 * read first (ST_HEAD); without one, the write error is reported. READY:
 * go on reading. */
static sluice_poll write_failed(s3_sink *s)
{
    int code = sluice_sink_error(s->w, NULL);
    if (s->aborting || s->write_err || !s->rd) {
        sluice__s3_conn_lost(s);
        return sluice__s3_fail(s, code, "writing to the S3 store failed");
    }
    s->write_err = code;
    drop_queue(s);
    sluice_sink_close(s->w);
    s->w = NULL;
    s->step = ST_HEAD;
    return SLUICE_READY;
}

/* Moves the queue into the writer. READY: all of it taken. */
static sluice_poll feed(s3_sink *s)
{
    while (s->qhead < s->qn) {
        size_t len = s->q[s->qhead].len;
        sluice_poll r = sluice_sink_poll_write(s->w, &s->q[s->qhead]);
        if (r == SLUICE_PENDING) {
            sluice_sink_ready(s->w, &s->want);
            return r;
        }
        if (r == SLUICE_ERROR)
            return write_failed(s);
        s->qbytes -= len;
        s->qhead++;
    }
    s->qhead = s->qn = 0;
    return SLUICE_READY;
}

/* Sends what the current request has queued and reads its response, then
 * starts whatever comes next. READY: nothing in flight (or a PutObject body
 * waiting for more payload). */
sluice_poll sluice__s3_drive(s3_sink *s)
{
    for (;;) {
        sluice_poll r;
        switch (s->step) {
        case ST_IDLE: {
            int started = advance(s);
            if (started < 0)
                return sluice__s3_fail(s, s->base._error.code ? s->base._error.code
                                                              : SLUICE_ENOMEM, NULL);
            if (!started)
                return SLUICE_READY;
            continue;
        }
        case ST_SEND:
            if ((r = feed(s)) != SLUICE_READY)
                return r;
            if (s->step != ST_SEND)
                continue; /* the write failed: read an early answer */
            if (!s->body_queued)
                return SLUICE_READY;
            r = sluice_sink_finish(s->w);
            if (r == SLUICE_PENDING) {
                sluice_sink_ready(s->w, &s->want);
                return r;
            }
            if (r == SLUICE_ERROR) {
                if ((r = write_failed(s)) != SLUICE_READY)
                    return r;
                continue;
            }
            sluice_sink_close(s->w);
            s->w = NULL;
            s->step = ST_HEAD;
            continue;
        case ST_HEAD:
            if ((r = sluice__s3_read_head(s)) != SLUICE_READY)
                return r;
            continue;
        case ST_BODY:
            if ((r = sluice__s3_read_body(s)) != SLUICE_READY)
                return r;
            continue;
        }
    }
}

/* ---- sink ------------------------------------------------------------------ */

/* Takes all of v (its reference moves) into the part being filled; what
 * does not fit in part_size is carried into the next part. */
static int fill_part(s3_sink *s, sluice_bytes *v)
{
    uint64_t room = s->part_size - s->fbytes;
    if (v->len > room) {
        int rc = sluice_bytes_slice(v, (size_t)room, v->len - (size_t)room, &s->carry);
        if (rc < 0)
            return rc;
        sluice_bytes_truncate(v, (size_t)room);
    }
    return sluice__s3_fill_add(s, v);
}

static sluice_poll s3_write_multi(s3_sink *s, sluice_bytes *chunk)
{
    sluice_poll r = sluice__s3_drive(s);
    if (r == SLUICE_ERROR)
        return r;
    if (s->fbytes >= s->part_size || s->carry.len || s->qbytes) {
        if (r == SLUICE_PENDING)
            return r; /* one part held, the previous one still going out */
        return sluice__s3_fail(s, SLUICE_EINVAL, "internal: multipart upload stalled");
    }
    size_t len = chunk->len;
    sluice_sha256_update(&s->whole, chunk->data, len);
    int rc = fill_part(s, chunk);
    if (rc < 0)
        return sluice__s3_fail(s, rc, NULL);
    s->accepted += len;
    if (s->fbytes >= s->part_size)
        sluice__s3_drive(s); /* start the part now; errors stick */
    return SLUICE_READY;
}

static sluice_poll s3_write(sluice_sink *k, sluice_bytes *chunk)
{
    s3_sink *s = (s3_sink *)k;
    if (s->length < 0)
        return s3_write_multi(s, chunk);
    if (chunk->len > s->put_left_total)
        return sluice__s3_fail(s, SLUICE_ETOOBIG, "more bytes than the declared object size");
    if (s->step == ST_IDLE && !s->started) {
        s->started = true;
        if (sluice__s3_put_begin(s) < 0)
            return sluice__s3_fail(s, s->base._error.code ? s->base._error.code : SLUICE_ENOMEM,
                                   NULL);
    }
    sluice_poll r = sluice__s3_drive(s);
    if (r == SLUICE_ERROR)
        return r;
    if (r == SLUICE_PENDING && s->qbytes >= S3_QUEUE_MAX)
        return r;
    s->put_left_total -= chunk->len;
    s->accepted += chunk->len;
    sluice_sha256_update(&s->whole, chunk->data, chunk->len);
    int rc = sluice__s3_put_frame(s, chunk);
    if (rc < 0)
        return sluice__s3_fail(s, rc, NULL);
    if (sluice__s3_drive(s) == SLUICE_ERROR)
        return SLUICE_ERROR; /* the chunk was taken; the error sticks */
    return SLUICE_READY;
}

/* Drives the request in flight and writes out what the writer holds (a
 * PutObject's body waits in it for more payload otherwise). */
static sluice_poll s3_flush(sluice_sink *k)
{
    s3_sink *s = (s3_sink *)k;
    sluice_poll r = sluice__s3_drive(s);
    if (r != SLUICE_READY || !s->w || s->step != ST_SEND)
        return r;
    r = sluice_sink_flush(s->w);
    if (r == SLUICE_PENDING)
        sluice_sink_ready(s->w, &s->want);
    if (r == SLUICE_ERROR && (r = write_failed(s)) == SLUICE_READY)
        r = sluice__s3_drive(s);
    return r;
}

static sluice_poll s3_finish(sluice_sink *k)
{
    s3_sink *s = (s3_sink *)k;
    if (!s->finishing) {
        s->finishing = true;
        if (s->length >= 0) {
            if (s->put_left_total)
                return sluice__s3_fail(s, SLUICE_ETRUNCATED,
                                       "finished before the declared object size");
            if (!s->started) {
                s->started = true;
                if (sluice__s3_put_begin(s) < 0)
                    return sluice__s3_fail(s, s->base._error.code ? s->base._error.code
                                                                  : SLUICE_ENOMEM, NULL);
            }
            if (s->signed_mode && s->fn && sluice__s3_put_signed_chunk(s) < 0)
                return sluice__s3_fail(s, SLUICE_ENOMEM, NULL);
            if (sluice__s3_put_end(s) < 0)
                return sluice__s3_fail(s, SLUICE_ENOMEM, NULL);
        }
    }
    sluice_poll r = sluice__s3_drive(s);
    if (r != SLUICE_READY)
        return r;
    if (!s->completed)
        return sluice__s3_fail(s, SLUICE_ES3_BAD_RESPONSE, "internal: upload did not complete");
    return SLUICE_READY;
}

static void s3_abort(sluice_sink *k)
{
    s3_sink *s = (s3_sink *)k;
    s->aborting = true;
    drop_fill(s);
    if (s->req == RQ_PUT && s->step != ST_IDLE) {
        /* Cut the PutObject short of its Content-Length: S3 keeps nothing. */
        drop_queue(s);
        if (s->w)
            sluice_sink_abort(s->w);
        else
            sluice_io_shutdown(s->io);
        s->conn_dead = true;
        s->step = ST_IDLE;
    }
    if (s->req == RQ_PART && s->step == ST_SEND && s->connect) {
        /* Cheaper than writing the rest of the part: cut it, and abort the
         * upload on a new connection. */
        drop_queue(s);
        sluice_sink_abort(s->w);
        sluice__s3_conn_lost(s);
        s->req = RQ_NONE;
    }
    if (s->req == RQ_CREATE && s->step != ST_IDLE)
        s->cleanup = SLUICE_S3_CLEANUP_NEEDED; /* its upload id is coming */
    if (s->upload_id[0] && !s->completed)
        s->cleanup = s->conn_dead && !s->connect ? SLUICE_S3_CLEANUP_FAILED
                                                 : SLUICE_S3_CLEANUP_NEEDED;
}

static void s3_ready(sluice_sink *k, sluice_interest *want)
{
    *want = ((s3_sink *)k)->want;
}

static size_t s3_buffered(const sluice_sink *k)
{
    const s3_sink *s = (const s3_sink *)k;
    return s->qbytes + (s->w ? sluice_sink_buffered(s->w) : 0);
}

static void s3_close(sluice_sink *k)
{
    s3_sink *s = (s3_sink *)k;
    sluice_pool *p = k->pool;
    sluice_sink_close(s->w);
    sluice_stream_close(s->body);
    sluice_reader_close(s->rd);
    if (s->own_io)
        sluice_io_close(s->io);
    drop_fill(s);
    drop_queue(s);
    sluice_block_release(s->scratch);
    sluice_block_release(s->cblock);
    sluice__free(p, s->fill, s->fcap * sizeof *s->fill);
    sluice__free(p, s->q, s->qcap * sizeof *s->q);
    sluice__free(p, s->parts, s->pcap * sizeof *s->parts);
    sluice__free(p, s->xml, S3_XML_MAX);
    sluice__wipe(s->strings, s->strings_len);
    sluice__free(p, s->strings, s->strings_len);
    sluice__wipe(s, sizeof *s);
    sluice_pool_object_free(p, s, sizeof *s);
}

static const sluice_sink_vtable s3_vt = {
    "s3", s3_write, s3_flush, s3_finish, s3_abort, s3_ready, s3_buffered, s3_close,
};

/* ---- public ---------------------------------------------------------------- */

static int copy_strings(s3_sink *s, const sluice_s3_config *c)
{
    const char *src[] = {c->host, c->bucket, c->region ? c->region : "us-east-1",
                         c->credentials.access_key_id, c->credentials.secret_access_key,
                         c->credentials.session_token ? c->credentials.session_token : "",
                         c->content_type ? c->content_type : "application/octet-stream"};
    const char **dst[] = {&s->host, &s->bucket, &s->region, &s->cred.access_key_id,
                          &s->cred.secret_access_key, &s->cred.session_token,
                          &s->content_type};
    size_t total = c->key_len + 1;
    for (size_t i = 0; i < 7; i++)
        total += strlen(src[i]) + 1;
    s->strings = sluice__alloc(s->base.pool, total);
    if (!s->strings)
        return SLUICE_ENOMEM;
    s->strings_len = total;
    char *p = s->strings;
    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(src[i]) + 1;
        memcpy(p, src[i], n);
        *dst[i] = p;
        p += n;
    }
    if (c->key_len)
        memcpy(p, c->key, c->key_len);
    p[c->key_len] = 0;
    s->key = p;
    s->key_len = c->key_len;
    if (!s->cred.session_token[0])
        s->cred.session_token = NULL;
    return 0;
}

static int check_config(const sluice_s3_config *c)
{
    if (!c || !c->host || !c->host[0] || !c->bucket || !c->bucket[0] || !c->key ||
        !c->key_len || !c->credentials.access_key_id || !c->credentials.access_key_id[0] ||
        !c->credentials.secret_access_key || c->length < SLUICE_S3_UNKNOWN_LENGTH ||
        (c->part_size && c->part_size < SLUICE_S3_MIN_PART_SIZE))
        return SLUICE_EINVAL;
    if (c->payload && strcmp(c->payload, SLUICE_SIGV4_STREAMING_UNSIGNED_TRAILER) != 0 &&
        strcmp(c->payload, SLUICE_SIGV4_STREAMING_SIGNED_TRAILER) != 0)
        return SLUICE_EINVAL;
    return 0;
}

int sluice_s3_sink_new(sluice_pool *pool, sluice_io *io, const sluice_s3_config *cfg,
                       sluice_sink **out)
{
    *out = NULL;
    int rc = check_config(cfg);
    if (rc < 0 || !io)
        return rc < 0 ? rc : SLUICE_EINVAL;
    s3_sink *s = sluice_pool_object_alloc(pool, sizeof *s);
    if (!s)
        return SLUICE_ENOMEM;
    memset(s, 0, sizeof *s);
    s->base.vt = &s3_vt;
    s->base.pool = pool;
    if ((rc = copy_strings(s, cfg)) < 0) {
        sluice_pool_object_free(pool, s, sizeof *s);
        return rc;
    }
    s->io = io;
    s->connect = cfg->connect;
    s->connect_ud = cfg->connect_ud;
    s->length = cfg->length;
    s->put_left_total = cfg->length > 0 ? (uint64_t)cfg->length : 0;
    s->part_size = cfg->part_size ? cfg->part_size : SLUICE_S3_DEFAULT_PART_SIZE;
    s->payload = cfg->payload ? cfg->payload : SLUICE_SIGV4_STREAMING_UNSIGNED_TRAILER;
    s->signed_mode = strcmp(s->payload, SLUICE_SIGV4_STREAMING_SIGNED_TRAILER) == 0;
    s->idle_ms = cfg->idle_timeout_ms;
    sluice__idle_init(&s->idle, cfg->idle_timeout_ms);
    sluice_sha256_init(&s->fresh);
    s->whole = s->fctx = s->fresh;
    s->want = (sluice_interest){-1, 0, -1};
    *out = &s->base;
    return 0;
}

int sluice_s3_sink_result(const sluice_sink *k, sluice_s3_result *out)
{
    if (!k || k->vt != &s3_vt)
        return SLUICE_EINVAL;
    const s3_sink *s = (const s3_sink *)k;
    memset(out, 0, sizeof *out);
    out->done = s->completed;
    out->size = s->accepted;
    memcpy(out->sha256, s->sha256_hex, sizeof out->sha256);
    memcpy(out->etag, s->etag, sizeof out->etag);
    memcpy(out->checksum, s->checksum, sizeof out->checksum);
    out->parts = (unsigned)s->np;
    memcpy(out->upload_id, s->upload_id, sizeof out->upload_id);
    out->cleanup = s->cleanup;
    out->status = s->status;
    memcpy(out->error_code, s->error_code, sizeof out->error_code);
    memcpy(out->error_message, s->error_message, sizeof out->error_message);
    return 0;
}

sluice_poll sluice_s3_sink_cleanup(sluice_sink *k, sluice_interest *want)
{
    if (want)
        *want = (sluice_interest){-1, 0, -1};
    if (!k || k->vt != &s3_vt)
        return SLUICE_ERROR;
    s3_sink *s = (s3_sink *)k;
    if (k->_state == SLUICE_SINK_FINISHED)
        return SLUICE_READY;
    sluice_sink_abort(k); /* no-op if already aborted */
    if (!s->aborting)
        s3_abort(k);
    for (;;) {
        if (s->cleanup == SLUICE_S3_CLEAN)
            return SLUICE_READY;
        if (s->cleanup == SLUICE_S3_CLEANUP_FAILED)
            return SLUICE_ERROR;
        sluice_poll r = sluice__s3_drive(s);
        if (r == SLUICE_PENDING) {
            if (want)
                *want = s->want;
            return r;
        }
        if (s->step != ST_IDLE) {
            /* Not reached (a failed step leaves the connection idle or
             * dead): make sure the loop moves on. */
            sluice__s3_conn_lost(s);
            continue;
        }
        if (!s->upload_id[0])
            s->cleanup = SLUICE_S3_CLEAN; /* no upload was created */
        else if (s->abort_sent || (s->conn_dead && !s->connect))
            s->cleanup = s->cleanup == SLUICE_S3_CLEAN ? s->cleanup : SLUICE_S3_CLEANUP_FAILED;
    }
}

int sluice__s3_sink_testing(sluice_sink *k, time_t t, size_t part_size)
{
    if (!k || k->vt != &s3_vt)
        return SLUICE_EINVAL;
    s3_sink *s = (s3_sink *)k;
    s->fixed_time = t;
    if (part_size)
        s->part_size = part_size;
    return 0;
}
