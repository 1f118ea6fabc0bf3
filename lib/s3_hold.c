/*
 * s3_hold.c — the views the S3 sink holds: the queue of what waits for the
 * writer (payload views, and framing copied into a scratch pool block a few
 * bytes at a time), and the part (or signed chunk) being filled, where views
 * under S3_SMALL_VIEW bytes are copied into a block of the sink's own, so a
 * body of tiny chunks does not hold one view and one block per chunk.
 */
#include "s3_internal.h"

#include <string.h>

int sluice__s3_push(s3_sink *s, sluice_bytes *v)
{
    if (!v->len) {
        sluice_bytes_release(v);
        return 0;
    }
    if (s->qhead == s->qn)
        s->qhead = s->qn = 0;
    int rc = sluice__grow(s->base.pool, (void **)&s->q, &s->qcap, s->qn + 1, sizeof *s->q);
    if (rc < 0) {
        sluice_bytes_release(v);
        return rc;
    }
    s->qbytes += v->len;
    s->q[s->qn++] = *v;
    *v = (sluice_bytes){0};
    return 0;
}

/* A copy of data[0, n) as a view of the scratch block (a new one when the
 * current one is full). */
int sluice__s3_scratch(s3_sink *s, const void *data, size_t n, sluice_bytes *out)
{
    if (!s->scratch || s->scratch_off + n > sluice_block_capacity(s->scratch)) {
        sluice_block_release(s->scratch);
        s->scratch = NULL;
        /* one scratch block per sink at a time (framing lines, tiny views
         * compacted): under the budget when it has room, else outside it,
         * bounded per upload, like a head */
        int rc = sluice__block_take(s->base.pool, NULL, 1, &s->scratch);
        if (rc == SLUICE_EPOOLFULL)
            rc = sluice__block_heap(s->base.pool, sluice__pool_block_size(s->base.pool),
                                    &s->scratch);
        if (rc < 0)
            return rc;
        s->scratch_off = 0;
        if (n > sluice_block_capacity(s->scratch))
            return SLUICE_ERANGE;
    }
    memcpy(sluice_block_data(s->scratch) + s->scratch_off, data, n);
    int rc = sluice_block_view(s->scratch, s->scratch_off, n, out);
    s->scratch_off += n;
    return rc;
}

int sluice__s3_push_copy(s3_sink *s, const void *data, size_t n)
{
    sluice_bytes v;
    int rc = sluice__s3_scratch(s, data, n, &v);
    return rc < 0 ? rc : sluice__s3_push(s, &v);
}

/* Copies a small view into the sink's own block, as a new view there or
 * appended to the last held view when that one ends where the block's free
 * space starts. Returns 1 when v was merged into the last view (v is then
 * released), 0 when v is to be added (possibly replaced by its copy). Under
 * the pool's cap v stays as it is. */
static int compact(s3_sink *s, sluice_bytes *v)
{
    if (v->len >= S3_SMALL_VIEW)
        return 0;
    if (!s->cblock || s->coff + v->len > sluice_block_capacity(s->cblock)) {
        sluice_block *b;
        if (sluice_block_get(s->base.pool, &b) < 0)
            return 0;
        sluice_block_release(s->cblock);
        s->cblock = b;
        s->coff = 0;
    }
    unsigned char *at = sluice_block_data(s->cblock) + s->coff;
    sluice_bytes *last = s->fn ? &s->fill[s->fn - 1] : NULL;
    memcpy(at, v->data, v->len);
    if (last && last->owner == s->cblock && last->data + last->len == at) {
        last->len += v->len;
        s->coff += v->len;
        sluice_bytes_release(v);
        return 1;
    }
    sluice_bytes copy;
    if (sluice_block_view(s->cblock, s->coff, v->len, &copy) < 0)
        return 0;
    s->coff += v->len;
    sluice_bytes_release(v);
    *v = copy;
    return 0;
}

/* Adds v (the caller's reference moves) to the fill list, hashing it into
 * the part's digest. Small views are compacted (see compact()), so a part
 * of tiny chunks holds a few views and blocks, not one per chunk. */
int sluice__s3_fill_add(s3_sink *s, sluice_bytes *v)
{
    int rc = sluice__grow(s->base.pool, (void **)&s->fill, &s->fcap, s->fn + 1, sizeof *s->fill);
    if (rc < 0) {
        sluice_bytes_release(v);
        return rc;
    }
    size_t len = v->len;
    sluice_sha256_update(&s->fctx, v->data, len);
    s->fbytes += len;
    if (compact(s, v))
        return 0;
    s->fill[s->fn++] = *v;
    *v = (sluice_bytes){0};
    return 0;
}
