/*
 * bench_head.c — request head parsing speed on a typical browser-like
 * request with 8 header fields (about 500 bytes), plus a response head.
 * Prints heads/s and ns per head; a memchr pass over the same bytes is the
 * baseline, since any parser has to look at every byte at least once.
 */
#include "bench.h"

static const char request[] =
    "GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg?size=large HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://www.example.com/gallery/index.html\r\n"
    "Cookie: session=4b1d2c3e5f60718293a4b5c6d7e8f901; theme=dark; consent=yes\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

static const char response[] =
    "HTTP/1.1 200 OK\r\n"
    "Date: Mon, 27 Jul 2009 12:28:53 GMT\r\n"
    "Server: Apache/2.2.14 (Win32)\r\n"
    "Last-Modified: Wed, 22 Jul 2009 19:15:56 GMT\r\n"
    "Content-Length: 88\r\n"
    "Content-Type: text/html\r\n"
    "Cache-Control: max-age=3600\r\n"
    "Vary: Accept-Encoding\r\n"
    "Connection: close\r\n"
    "\r\n";

int main(void)
{
    size_t iters = (size_t)(2000000 * bench_scale());
    size_t n = sizeof request - 1, rn = sizeof response - 1;
    sluice_http_header h[16];
    sluice_http_request req;
    sluice_http_response res;
    char *buf = malloc(n), *rbuf = malloc(rn);
    memcpy(buf, request, n);
    memcpy(rbuf, response, rn);
    if (sluice_http_parse_request(buf, n, NULL, &req, h, 16) != (int)n || req.num_headers != 8 ||
        sluice_http_parse_response(rbuf, rn, NULL, &res, h, 16) != (int)rn) {
        fprintf(stderr, "bench_head: sample heads do not parse\n");
        return 1;
    }

    double best = 1e9, rbest = 1e9, mbest = 1e9;
    for (int round = 0; round < 3; round++) {
        double t0 = bench_now();
        for (size_t i = 0; i < iters; i++) {
            int r = sluice_http_parse_request(buf, n, NULL, &req, h, 16);
            bench_sink_ptr(&r);
            bench_sink_ptr(buf);
        }
        double t = (bench_now() - t0) / (double)iters;
        best = t < best ? t : best;

        t0 = bench_now();
        for (size_t i = 0; i < iters; i++) {
            int r = sluice_http_parse_response(rbuf, rn, NULL, &res, h, 16);
            bench_sink_ptr(&r);
            bench_sink_ptr(rbuf);
        }
        t = (bench_now() - t0) / (double)iters;
        rbest = t < rbest ? t : rbest;

        /* baseline: find every LF with memchr */
        t0 = bench_now();
        for (size_t i = 0; i < iters; i++) {
            const char *p = buf, *e = buf + n;
            size_t lines = 0;
            while ((p = memchr(p, '\n', (size_t)(e - p)))) {
                p++;
                lines++;
            }
            bench_sink_ptr(&lines);
            bench_sink_ptr(buf);
        }
        t = (bench_now() - t0) / (double)iters;
        mbest = t < mbest ? t : mbest;
    }
    bench_line("head_parse", 1.0 / best, "heads/s");
    bench_line("head_parse_ns", best * 1e9, "ns");
    bench_line("head_parse_gbps", (double)n / best / 1e9, "GB/s");
    bench_line("head_parse_response_ns", rbest * 1e9, "ns");
    bench_line("head_memchr_lines_ns", mbest * 1e9, "ns");
    free(buf);
    free(rbuf);
    return 0;
}
