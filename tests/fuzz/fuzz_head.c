/*
 * fuzz_head.c — the head parser against arbitrary bytes.
 *
 * Input: byte 0 picks request (bit 0 clear) or response, and the limits
 * (bits 1-2); byte 1 picks a split point; the rest is the head. Checked:
 * a result never exceeds the input, every span lies inside the consumed
 * bytes, field values are trimmed and free of CR, LF and NUL, a prefix never
 * disagrees with the whole (0 before the end of a head, the same length or
 * the same error otherwise), the helpers accept whatever parsed, and a head
 * rebuilt by the builder parses back to the same fields.
 */
#include "sluice.h"
#include "testing.h"

#include <stdlib.h>
#include <string.h>

#define CAP 64

static void check(int cond)
{
    if (!cond)
        abort();
}

static void check_span(const unsigned char *buf, size_t n, const char *p, size_t len)
{
    const unsigned char *q = (const unsigned char *)p;
    check(q >= buf && len <= n && q - buf <= (ptrdiff_t)(n - len));
}

static void check_fields(const unsigned char *buf, size_t n, const sluice_http_header *h,
                         size_t nh, size_t cap)
{
    check(nh <= cap);
    for (size_t i = 0; i < nh; i++) {
        check(h[i].name_len > 0);
        check_span(buf, n, h[i].name, h[i].name_len);
        check_span(buf, n, h[i].value, h[i].value_len);
        for (size_t k = 0; k < h[i].value_len; k++) {
            unsigned char c = (unsigned char)h[i].value[k];
            check(c != '\r' && c != '\n' && c != 0);
        }
        if (h[i].value_len) {
            check(h[i].value[0] != ' ' && h[i].value[0] != '\t');
            check(h[i].value[h[i].value_len - 1] != ' ' && h[i].value[h[i].value_len - 1] != '\t');
        }
    }
}

static void same_fields(const sluice_http_header *a, size_t na, const sluice_http_header *b,
                        size_t nb)
{
    check(na == nb);
    for (size_t i = 0; i < na; i++) {
        check(a[i].name_len == b[i].name_len && !memcmp(a[i].name, b[i].name, a[i].name_len));
        check(a[i].value_len == b[i].value_len &&
              !memcmp(a[i].value, b[i].value, a[i].value_len));
    }
}

static int parse(int response, const unsigned char *p, size_t n, const sluice_http_limits *lim,
                 sluice_http_request *req, sluice_http_response *res, sluice_http_header *h)
{
    return response ? sluice_http_parse_response(p, n, lim, res, h, CAP)
                    : sluice_http_parse_request(p, n, lim, req, h, CAP);
}

static void round_trip_request(sluice_pool *pool, const sluice_http_request *req)
{
    sluice_http_head_builder b;
    sluice_bytes out;
    sluice_http_head_init(&b, pool);
    sluice_http_head_forward_request_line(&b, req);
    for (size_t i = 0; i < req->num_headers; i++)
        sluice_http_head_add_header(&b, req->headers[i].name, req->headers[i].name_len,
                                    req->headers[i].value, req->headers[i].value_len);
    int r = sluice_http_head_finish(&b, &out);
    check(r == 0); /* everything parsed is something the builder accepts */
    sluice_http_request back;
    sluice_http_header h[CAP];
    sluice_http_limits big = {.max_head_bytes = 1 << 20, .max_headers = CAP};
    check(sluice_http_parse_request(out.data, out.len, &big, &back, h, CAP) == (int)out.len);
    check(back.method_len == req->method_len && !memcmp(back.method, req->method, req->method_len));
    check(back.minor_version == 1);
    same_fields(req->headers, req->num_headers, back.headers, back.num_headers);
    sluice_bytes_release(&out);
}

static void round_trip_response(sluice_pool *pool, const sluice_http_response *res)
{
    sluice_http_head_builder b;
    sluice_bytes out;
    sluice_http_head_init(&b, pool);
    sluice_http_head_status_line(&b, res->status, res->reason, res->reason_len);
    for (size_t i = 0; i < res->num_headers; i++)
        sluice_http_head_add_header(&b, res->headers[i].name, res->headers[i].name_len,
                                    res->headers[i].value, res->headers[i].value_len);
    int r = sluice_http_head_finish(&b, &out);
    check(r == 0);
    sluice_http_response back;
    sluice_http_header h[CAP];
    sluice_http_limits big = {.max_head_bytes = 1 << 20, .max_headers = CAP};
    check(sluice_http_parse_response(out.data, out.len, &big, &back, h, CAP) == (int)out.len);
    check(back.status == res->status);
    check(back.reason_len == res->reason_len && !memcmp(back.reason, res->reason, res->reason_len));
    same_fields(res->headers, res->num_headers, back.headers, back.num_headers);
    sluice_bytes_release(&out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 2)
        return 0;
    int response = data[0] & 1;
    sluice_http_limits lims[4] = {
        {.max_head_bytes = 0, .max_headers = 0},
        {.max_head_bytes = 64, .max_headers = 0},
        {.max_head_bytes = 0, .max_headers = 3},
        {.max_head_bytes = 200, .max_headers = 8},
    };
    const sluice_http_limits *lim = &lims[(data[0] >> 1) & 3];
    size_t n = size - 2;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 2, n);
    size_t split = n ? data[1] * n / 255 : 0;

    sluice_http_request req;
    sluice_http_response res;
    sluice_http_header h[CAP], hp[CAP];
    int r = parse(response, buf, n, lim, &req, &res, h);
    check(r <= (int)n);

    /* a prefix agrees with the whole */
    sluice_http_request preq;
    sluice_http_response pres;
    int pr = parse(response, buf, split, lim, &preq, &pres, hp);
    if (r > 0)
        check(split < (size_t)r ? pr == 0 : pr == r);
    else if (r == 0)
        check(pr == 0);
    else
        check(pr == 0 || pr == r);
    /* and so does the head on its own */
    if (r > 0)
        check(parse(response, buf, (size_t)r, lim, &preq, &pres, hp) == r);

    if (r > 0) {
        sluice_pool *pool;
        if (sluice_pool_new(NULL, &pool) == 0) {
            sluice_http_framing fr;
            if (response) {
                check(res.head_len == (size_t)r);
                check(res.status >= 100 && res.status <= 599);
                check_span(buf, (size_t)r, res.reason, res.reason_len);
                check_fields(buf, (size_t)r, res.headers, res.num_headers, CAP);
                sluice_http_response_framing(&res, "GET", 3, &fr);
                sluice_http_response_framing(&res, "HEAD", 4, &fr);
                check(fr.body == SLUICE_HTTP_BODY_NONE);
                sluice_http_response_keep_alive(&res);
                round_trip_response(pool, &res);
            } else {
                check(req.head_len == (size_t)r);
                check(req.minor_version == 0 || req.minor_version == 1);
                check_span(buf, (size_t)r, req.method, req.method_len);
                check_span(buf, (size_t)r, req.target, req.target_len);
                if (req.authority)
                    check_span(buf, (size_t)r, req.authority, req.authority_len);
                if (req.path && !(req.path_len == 1 && req.path[0] == '/' &&
                                  req.form == SLUICE_HTTP_TARGET_ABSOLUTE))
                    check_span(buf, (size_t)r, req.path, req.path_len);
                check_fields(buf, (size_t)r, req.headers, req.num_headers, CAP);
                int f = sluice_http_request_framing(&req, &fr);
                check(f == 0 || sluice_http_error_status(f) == 400);
                if (f == 0 && fr.body == SLUICE_HTTP_BODY_LENGTH)
                    check(fr.length <= UINT64_C(0x7fffffffffffffff));
                const char *host;
                size_t hl;
                int hr = sluice_http_request_host(&req, &host, &hl);
                if (hr == 1)
                    check_span(buf, (size_t)r, host, hl);
                sluice_http_request_check_target(&req);
                sluice_http_request_keep_alive(&req);
                sluice_http_request_expect(&req);
                for (size_t i = 0; i < req.num_headers; i++)
                    sluice_http_header_is_hop_by_hop(req.headers, req.num_headers, &req.headers[i]);
                round_trip_request(pool, &req);
            }
            sluice_pool_counters st;
            sluice_pool_stats(pool, &st);
            check(st.blocks_live == 0);
            sluice_pool_close(pool);
        }
    } else if (r < 0) {
        size_t off = response ? res.error_offset : req.error_offset;
        check(off <= n);
        check(sluice_http_error_status(r) != 0);
    }
    free(buf);
    return 0;
}
