/*
 * http_util.h — HTTP pieces shared by the example programs (header-only):
 * the head of a short reply, writing a reply out, and the lingering close
 * after an error reply.
 */
#ifndef SLUICE_EXAMPLES_HTTP_UTIL_H
#define SLUICE_EXAMPLES_HTTP_UTIL_H

#include "server.h"

#include <sys/socket.h>

/* The client side of a connection: its socket, the io over it and the
 * reader that keeps what the client sent ahead (pipelined requests). */
typedef struct http_client {
    int fd;
    sluice_io *io;
    sluice_reader *rd;
} http_client;

/* Wraps an accepted fd. On failure the fd is closed and -1 returned. */
static inline int http_client_open(http_client *hc, sluice_pool *pool, int fd)
{
    hc->fd = fd;
    hc->io = NULL;
    hc->rd = NULL;
    if (sluice_io_fd_new(pool, fd, 0, &hc->io) < 0 ||
        sluice_reader_new(pool, hc->io, NULL, &hc->rd) < 0) {
        sluice_io_close(hc->io);
        close(fd);
        return -1;
    }
    return 0;
}

static inline void http_client_close(http_client *hc)
{
    sluice_reader_close(hc->rd);
    sluice_io_close(hc->io);
    close(hc->fd);
}

/* The head of a reply with a body of `len` bytes of `type`; with keep == 0 it
 * says Connection: close. *out holds one reference. */
static inline int http_simple_head(sluice_pool *pool, int status, const char *type, size_t len,
                                   int keep, sluice_bytes *out)
{
    sluice_http_head_builder b;
    sluice_http_head_init(&b, pool);
    sluice_http_head_status_line(&b, status, NULL, 0);
    sluice_http_head_add_header(&b, "Content-Type", 12, type, strlen(type));
    sluice_http_head_add_content_length(&b, (uint64_t)len);
    if (!keep)
        sluice_http_head_add_header(&b, "Connection", 10, "close", 5);
    return sluice_http_head_finish(&b, out);
}

/*
 * Writes out a reply sink. Returns 1 while the socket is full (the interest
 * is registered), 0 once the reply went out, -1 if the client is gone.
 */
static inline int http_reply_step(srv_conn *c, sluice_sink *reply)
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

/* After a reply that closes the connection: stop sending and linger for a
 * moment (see http_linger). Returns the linger deadline. */
static inline int64_t http_begin_linger(int fd)
{
    shutdown(fd, SHUT_WR);
    return sluice_now_ms() + 2000;
}

/*
 * Lingering close: after an error reply the write side is shut and whatever
 * the client still sends is read and dropped until it closes or the deadline
 * passes; closing at once would make the kernel answer its data with a reset
 * that can destroy the reply before the client reads it. Returns -1 when the
 * connection may be closed, 1 while waiting.
 */
static inline int http_linger(srv_conn *c, int fd, int64_t deadline)
{
    char buf[16384];
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        if (n < 0)
            break;
    }
    if (sluice_now_ms() >= deadline)
        return -1;
    sluice_interest w = {fd, SLUICE_WANT_READ, deadline};
    srv_watch(c, &w);
    return 1;
}

#endif
