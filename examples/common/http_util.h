/*
 * http_util.h — HTTP pieces shared by the example programs: the client side
 * of a connection (accept and teardown), the head of a short reply, writing
 * a reply out. (A reply that ends the connection goes through the library's
 * reply pump, include/sluice/reply.h: the lingering close.)
 */
#ifndef SLUICE_EXAMPLES_HTTP_UTIL_H
#define SLUICE_EXAMPLES_HTTP_UTIL_H

#include "server.h"

#include <stddef.h>
#include <stdint.h>


/*
 * The client side of a connection, first in every program's connection:
 * the loop's part, the socket, the io over it and the reader that keeps
 * what the client sent ahead (pipelined requests). Between requests this is
 * all a connection needs; the reader then holds no block.
 */
typedef struct http_conn {
    srv_conn base;
    int fd;
    sluice_io *io;
    sluice_reader *rd;
} http_conn;

/*
 * For srv_ops.accept: allocates a zeroed connection of `size` bytes (a
 * struct that starts with an http_conn) over the accepted fd, with its io and
 * reader from pool. On failure the fd is closed and NULL returned.
 */
void *http_conn_new(srv *s, sluice_pool *pool, int fd, size_t size);

/* For srv_ops.destroy, after the program closed what it added: frees the
 * reader and the io, closes the fd and frees c. */
void http_conn_free(http_conn *c);

/* 1 when nothing of a next request has arrived (for srv_ops.idle). */
int http_conn_quiet(const http_conn *c);

/*
 * Between requests: waits for the first byte of the next one, so the
 * program allocates a request's state only once there is a request. After
 * a first request it reads only on a turn the socket fired as readable;
 * otherwise it waits for that (sluice_reader_idle), the reader holding no
 * block meanwhile.
 * Returns 0 when bytes are there, 1 while waiting (the read interest and
 * idle_end are registered), -1 when the connection should close: the peer
 * closed or failed, or idle_end (the keep-alive timeout) passed.
 */
int http_conn_await(http_conn *c, int64_t idle_end);

/*
 * Percent-decodes s[0, n) into out (cap bytes, NUL-terminated: a target's
 * path as a file name or an object key). Returns the length, or -1: a
 * malformed escape, a NUL (literal or %00: these become C strings), no
 * room, or, with no_slash, an escape that decodes to '/'.
 */
int http_pct_decode(const char *s, size_t n, char *out, size_t cap, int no_slash);

/*
 * Appends s[0, n) as a JSON string, quotes included, at *p, never past end
 * (the string is cut short there; 7 bytes are kept free for one escape).
 * '"' and '\\' are escaped, control bytes and DEL become \u00XX, and so
 * do bytes >= 0x80 unless utf8 says s is well-formed UTF-8 to keep as is.
 */
void http_json_str(char **p, char *end, const char *s, size_t n, int utf8);

/* The head of a reply with a body of `len` bytes of `type`; with keep == 0 it
 * says Connection: close. *out holds one reference. */
int http_simple_head(sluice_pool *pool, int status, const char *type, size_t len, int keep,
                     sluice_bytes *out);

/* Writes out a reply sink. Returns 1 while the socket is full (the interest
 * is registered), 0 once the reply went out, -1 if the client is gone. */
int http_reply_step(srv_conn *c, sluice_sink *reply);


#endif
