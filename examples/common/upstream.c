/*
 * upstream.c — a pool of idle upstream connections (upstream.h says why it
 * works the way it does).
 */
#include "upstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int upstream_pool_init(upstream_pool *p, size_t cap, uint32_t idle_ms,
                       void (*closing)(void *ud, int fd), void *closing_ud)
{
    memset(p, 0, sizeof *p);
    p->idle_ms = idle_ms;
    p->closing = closing;
    p->closing_ud = closing_ud;
    if (cap == 0)
        return 0;
    p->idle = calloc(cap, sizeof *p->idle);
    if (!p->idle)
        return -1;
    p->cap = cap;
    return 0;
}

static void close_idle(upstream_pool *p, const upstream_idle *e)
{
    if (p->closing)
        p->closing(p->closing_ud, e->fd);
    sluice_io_close(e->io);
    close(e->fd);
}

/* Closes the n oldest entries. */
static void drop_oldest(upstream_pool *p, size_t n)
{
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        close_idle(p, &p->idle[i]);
    p->len -= n;
    memmove(p->idle, p->idle + n, p->len * sizeof *p->idle);
}

/* Closes the entries idle for too long (they are the oldest ones). */
static void expire(upstream_pool *p, int64_t now)
{
    size_t n = 0;
    while (n < p->len && now - p->idle[n].since >= (int64_t)p->idle_ms)
        n++;
    drop_oldest(p, n);
}

/* 1 if nothing has arrived on fd, neither a byte nor end-of-stream. */
static int looks_open(int fd)
{
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

int upstream_pool_get(upstream_pool *p, int64_t now, sluice_io **io)
{
    expire(p, now);
    while (p->len > 0) {
        upstream_idle *e = &p->idle[--p->len];
        if (looks_open(e->fd)) {
            *io = e->io;
            return e->fd;
        }
        close_idle(p, e);
    }
    *io = NULL;
    return -1;
}

void upstream_pool_put(upstream_pool *p, int fd, sluice_io *io, int64_t now)
{
    if (p->cap == 0) {
        close_idle(p, &(upstream_idle){fd, io, now});
        return;
    }
    expire(p, now);
    if (p->len == p->cap)
        drop_oldest(p, 1);
    p->idle[p->len++] = (upstream_idle){fd, io, now};
}

void upstream_pool_free(upstream_pool *p)
{
    drop_oldest(p, p->len);
    free(p->idle);
    memset(p, 0, sizeof *p);
}
