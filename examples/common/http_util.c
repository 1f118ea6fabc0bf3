/*
 * http_util.c — HTTP pieces shared by the example programs (http_util.h).
 */
#include "http_util.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void *http_conn_new(srv *s, sluice_pool *pool, int fd, size_t size)
{
    http_conn *c = calloc(1, size);
    if (!c) {
        close(fd);
        return NULL;
    }
    srv_conn_init(s, &c->base);
    c->fd = fd;
    if (sluice_io_fd_new(pool, fd, 0, &c->io) < 0 ||
        sluice_reader_new(pool, c->io, &(sluice_reader_config){.wake_token = &c->base},
                          &c->rd) < 0) {
        sluice_io_close(c->io);
        close(fd);
        free(c);
        return NULL;
    }
    return c;
}

void http_conn_free(http_conn *c)
{
    sluice_reader_close(c->rd);
    sluice_io_close(c->io);
    close(c->fd);
    free(c);
}

int http_conn_quiet(const http_conn *c)
{
    return sluice_reader_available(c->rd) == 0;
}

int http_conn_await(http_conn *c, int64_t idle_end)
{
    sluice_poll r = SLUICE_READY;
    if (http_conn_quiet(c)) {
        /* Right after an answer, or woken for something else: the client
         * has sent nothing we know of, and a read would only find EAGAIN
         * (a system call per request). This loop is level-triggered, so
         * watching the socket finds bytes that came meanwhile at once. A
         * connection just accepted reads at once: its request is often
         * there already. */
        if (sluice_reader_consumed(c->rd) > 0 && !srv_fired_read(&c->base, c->fd)) {
            sluice_reader_idle(c->rd);
            r = SLUICE_PENDING;
        } else {
            r = sluice_reader_fill(c->rd);
        }
    }
    if (r == SLUICE_READY)
        return 0;
    if (r != SLUICE_PENDING || sluice_now_ms() >= idle_end)
        return -1;
    sluice_interest w;
    sluice_reader_ready(c->rd, &w);
    srv_watch(&c->base, &w);
    srv_deadline(&c->base, idle_end);
    return 1;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int http_pct_decode(const char *s, size_t n, char *out, size_t cap, int no_slash)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (no_slash && hi * 16 + lo == '/'))
                return -1;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= cap)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return (int)o;
}

void http_json_str(char **p, char *end, const char *s, size_t n, int utf8)
{
    char *o = *p;
    if (o < end)
        *o++ = '"';
    for (size_t i = 0; i < n && o + 7 < end; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f || (ch > 0x7f && !utf8)) {
            o += snprintf(o, (size_t)(end - o), "\\u%04x", ch);
        } else {
            *o++ = (char)ch;
        }
    }
    if (o < end)
        *o++ = '"';
    *p = o;
}

int http_simple_head(sluice_pool *pool, int status, const char *type, size_t len, int keep,
                     sluice_bytes *out)
{
    sluice_http_head_builder b;
    sluice_http_head_init(&b, pool);
    sluice_http_head_status_line(&b, status, NULL, 0);
    sluice_http_head_add_header(&b, SLUICE_LIT("Content-Type"), type, strlen(type));
    sluice_http_head_add_content_length(&b, (uint64_t)len);
    if (!keep)
        sluice_http_head_add_header(&b, SLUICE_LIT("Connection"), SLUICE_LIT("close"));
    return sluice_http_head_finish(&b, out);
}

int http_reply_step(srv_conn *c, sluice_sink *reply)
{
    sluice_poll r = sluice_sink_finish(reply);
    if (r == SLUICE_PENDING) {
        sluice_interest w;
        sluice_sink_ready(reply, &w);
        srv_watch(c, &w);
        return 1;
    }
    return r == SLUICE_READY ? 0 : -1;
}

