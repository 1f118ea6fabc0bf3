/*
 * http_build.c — writes a request or response head into memory of its own
 * (at most one pool block's size).
 * Every name, value and target is checked against the same byte classes the
 * parser uses, so a host cannot be tricked into sending a head our own
 * parser (or the peer's) would read differently.
 */
#include "internal.h"

#include "chars.h"

#include <string.h>


static int setfail(sluice_http_head_builder *b, int code)
{
    sluice_block_release(b->_block);
    b->_block = NULL;
    b->_len = 0;
    b->_err = code;
    return code;
}

/* First size of a head's memory: most heads a proxy forwards fit, and with
 * the block's 64-byte header it is 1 KiB, within glibc's per-thread cache
 * (chunks up to 1032 bytes), which a head allocated per message hits. */
#define FIRST_CAP 960u

/*
 * Room for n more bytes at the end of the head: where they go (the caller
 * copies them and adds n to _len), or NULL with b failed. The head's memory
 * is its own, not a pool block: it starts at FIRST_CAP and doubles, up to
 * the pool's block size (the limit on a head), so a head costs about its
 * size and is never refused by the budget bodies spend (heads are one per
 * message, and bounded).
 */
static unsigned char *room(sluice_http_head_builder *b, size_t n)
{
    size_t cap = b->_block ? sluice_block_capacity(b->_block) : 0;
    if (b->_block && n <= cap - b->_len) /* the common case: it fits */
        return sluice_block_data(b->_block) + b->_len;
    size_t limit = sluice__pool_block_size(b->_pool);
    if (n > limit - b->_len) {
        setfail(b, SLUICE_ETOOBIG);
        return NULL;
    }
    size_t want = cap ? cap : FIRST_CAP;
    while (want < b->_len + n)
        want *= 2;
    if (want > limit)
        want = limit;
    sluice_block *nb;
    int r = sluice__block_heap(b->_pool, want, &nb);
    if (r < 0) {
        setfail(b, r);
        return NULL;
    }
    if (b->_len)
        memcpy(sluice_block_data(nb), sluice_block_data(b->_block), b->_len);
    sluice_block_release(b->_block);
    b->_block = nb;
    return sluice_block_data(nb) + b->_len;
}

/* Appends data[0, n) to the head. */
static int put(sluice_http_head_builder *b, const void *data, size_t n)
{
    unsigned char *at = room(b, n);
    if (!at)
        return b->_err;
    memcpy(at, data, n);
    b->_len += n;
    return 0;
}

static int all_in(const char *p, size_t n, unsigned cls)
{
    for (size_t i = 0; i < n; i++)
        if (!(sluice__is((unsigned char)p[i], cls)))
            return 0;
    return 1;
}

/* Fails the builder unless it may take a line now (start: the start line). */
static int ready(sluice_http_head_builder *b, int start, int valid)
{
    if (b->_err)
        return b->_err;
    if (!b->_pool || start == b->_started || !valid)
        return setfail(b, SLUICE_EINVAL);
    return 0;
}

void sluice_http_head_init(sluice_http_head_builder *b, sluice_pool *pool)
{
    *b = (sluice_http_head_builder){pool, NULL, 0, 0, 0};
}

static int request_line(sluice_http_head_builder *b, const char *method, size_t method_len,
                        const char *pre, size_t pre_len, const char *target,
                        size_t target_len)
{
    int r = ready(b, 1, method_len > 0 && all_in(method, method_len, SLUICE__C_TOKEN) &&
                            pre_len + target_len > 0 && all_in(target, target_len, SLUICE__C_TARGET));
    if (r < 0)
        return r;
    if ((r = put(b, method, method_len)) < 0 || (r = put(b, SLUICE_LIT(" "))) < 0 ||
        (r = put(b, pre, pre_len)) < 0 || (r = put(b, target, target_len)) < 0 ||
        (r = put(b, SLUICE_LIT(" HTTP/1.1\r\n"))) < 0)
        return r;
    b->_started = 1;
    return 0;
}

int sluice_http_head_request_line(sluice_http_head_builder *b, const char *method,
                                  size_t method_len, const char *target, size_t target_len)
{
    return request_line(b, method, method_len, "", 0, target, target_len);
}

int sluice_http_head_forward_request_line(sluice_http_head_builder *b,
                                          const sluice_http_request *req)
{
    if (req->form == SLUICE_HTTP_TARGET_ORIGIN || req->form == SLUICE_HTTP_TARGET_ABSOLUTE) {
        int bare_query = req->path_len > 0 && req->path[0] == '?';
        return request_line(b, req->method, req->method_len, "/", bare_query ? 1 : 0,
                            req->path, req->path_len);
    }
    return request_line(b, req->method, req->method_len, "", 0, req->target, req->target_len);
}

int sluice_http_head_status_line(sluice_http_head_builder *b, int status, const char *reason,
                                 size_t reason_len)
{
    if (!reason) {
        reason = sluice_http_reason_phrase(status);
        reason_len = strlen(reason);
    }
    int r = ready(b, 1, status >= 100 && status <= 599 && all_in(reason, reason_len, SLUICE__C_VALUE));
    if (r < 0)
        return r;
    char line[13] = "HTTP/1.1 ";
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    line[12] = ' ';
    if ((r = put(b, line, sizeof line)) < 0 || (r = put(b, reason, reason_len)) < 0 ||
        (r = put(b, SLUICE_LIT("\r\n"))) < 0)
        return r;
    b->_started = 1;
    return 0;
}

int sluice_http_head_add_header(sluice_http_head_builder *b, const char *name, size_t name_len,
                                const char *value, size_t value_len)
{
    int r = ready(b, 0, name_len > 0 && all_in(name, name_len, SLUICE__C_TOKEN) &&
                            all_in(value, value_len, SLUICE__C_VALUE));
    if (r < 0)
        return r;
    /* one room for the whole line; room() refuses more than a block, and
     * a sum that would wrap is more than that */
    if (name_len > SIZE_MAX / 4 || value_len > SIZE_MAX / 4)
        return setfail(b, SLUICE_ETOOBIG);
    size_t n = name_len + 2 + value_len + 2;
    unsigned char *at = room(b, n);
    if (!at)
        return b->_err;
    memcpy(at, name, name_len);
    at += name_len;
    *at++ = ':';
    *at++ = ' ';
    memcpy(at, value, value_len);
    at[value_len] = '\r';
    at[value_len + 1] = '\n';
    b->_len += n;
    return 0;
}

int sluice_http_head_add_content_length(sluice_http_head_builder *b, uint64_t n)
{
    char digits[20];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    return sluice_http_head_add_header(b, SLUICE_LIT("Content-Length"), digits + i, sizeof digits - i);
}

int sluice_http_head_finish(sluice_http_head_builder *b, sluice_bytes *out)
{
    *out = (sluice_bytes){0};
    int r = ready(b, 0, 1);
    if (r == 0 && (r = put(b, SLUICE_LIT("\r\n"))) == 0) {
        r = sluice_block_view(b->_block, 0, b->_len, out);
        sluice_block_release(b->_block);
    } else {
        sluice_block_release(b->_block);
    }
    b->_block = NULL;
    b->_len = 0;
    b->_err = r < 0 ? r : SLUICE_ECLOSED;
    return r;
}

void sluice_http_head_discard(sluice_http_head_builder *b)
{
    sluice_block_release(b->_block);
    b->_block = NULL;
    b->_len = 0;
    if (!b->_err)
        b->_err = SLUICE_ECLOSED;
}
