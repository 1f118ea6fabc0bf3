/*
 * io.c — the stock transports: a non-blocking fd, and an in-memory one.
 *
 * The fd io decides once, at creation, whether the fd is a socket: sockets
 * are written with sendmsg(MSG_NOSIGNAL) so a closed peer is an -EPIPE the
 * writer can report, not a SIGPIPE that kills the host; anything else falls
 * back to writev. EINTR is retried here so no caller ever sees it.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* BSDs: the host sets SO_NOSIGPIPE or ignores SIGPIPE */
#endif

/* ---- wrappers ------------------------------------------------------------ */

ssize_t sluice_io_readv(sluice_io *io, const struct iovec *iov, int iovcnt)
{
    return io->vt->readv(io, iov, iovcnt);
}

ssize_t sluice_io_writev(sluice_io *io, const struct iovec *iov, int iovcnt)
{
    return io->vt->writev(io, iov, iovcnt);
}

int sluice_io_shutdown(sluice_io *io)
{
    return io->vt->shutdown(io);
}

void sluice__io_ready(sluice_io *io, int events, sluice_interest *want)
{
    want->fd = io->fd;
    want->events = events;
    want->deadline_ms = -1;
    if (io->vt->ready)
        io->vt->ready(io, events, want);
}

bool sluice__idle_write_stalled(const sluice__idle *t, sluice_io *io)
{
    if (!sluice__idle_expired(t))
        return false;
    sluice_interest w;
    sluice__io_ready(io, SLUICE_WANT_WRITE, &w);
    if (w.fd < 0)
        return false;
    struct pollfd pfd = {w.fd, 0, 0};
    if (w.events & SLUICE_WANT_READ)
        pfd.events |= POLLIN;
    if (w.events & SLUICE_WANT_WRITE)
        pfd.events |= POLLOUT;
    return poll(&pfd, 1, 0) == 0;
}

int sluice__io_write_bytes(sluice_io *io, sluice_bytes *b, sluice__idle *t,
                           sluice_interest *want, uint64_t *written)
{
    if (sluice__idle_write_stalled(t, io))
        return SLUICE_ETIMEDOUT;
    while (b->len) {
        struct iovec iov = {(void *)b->data, b->len};
        ssize_t n = sluice_io_writev(io, &iov, 1);
        if (n == -EAGAIN) {
            if (!sluice__idle_pending(t))
                return SLUICE_ETIMEDOUT;
            sluice__io_ready(io, SLUICE_WANT_WRITE, want);
            want->deadline_ms = sluice__idle_deadline(t);
            return 1;
        }
        if (n < 0)
            return (int)n;
        sluice_bytes_advance(b, (size_t)n);
        *written += (uint64_t)n;
        sluice__idle_progress(t);
    }
    return 0;
}

void sluice_io_close(sluice_io *io)
{
    if (io)
        io->vt->close(io);
}

/* ---- fd io --------------------------------------------------------------- */

typedef struct fd_io {
    sluice_io base;
    unsigned flags;
    int is_socket;
} fd_io;

static ssize_t fd_readv(sluice_io *io, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t n = readv(io->fd, iov, iovcnt);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static ssize_t fd_writev(sluice_io *io, const struct iovec *iov, int iovcnt)
{
    fd_io *f = (fd_io *)io;
    for (;;) {
        ssize_t n;
        if (f->is_socket) {
            struct msghdr msg = {0};
            msg.msg_iov = (struct iovec *)iov;
            msg.msg_iovlen = (size_t)iovcnt;
            n = sendmsg(io->fd, &msg, MSG_NOSIGNAL);
        } else {
            n = writev(io->fd, iov, iovcnt);
        }
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static int fd_shutdown(sluice_io *io)
{
    fd_io *f = (fd_io *)io;
    if (io->fd < 0)
        return 0;
    if (f->is_socket)
        return shutdown(io->fd, SHUT_WR) == 0 || errno == ENOTCONN ? 0 : -errno;
    if (!(f->flags & SLUICE_IO_CLOSE_FD))
        return -ENOTSOCK;
    int rc = close(io->fd) == 0 ? 0 : -errno;
    io->fd = -1;
    return rc;
}

static void fd_close(sluice_io *io)
{
    fd_io *f = (fd_io *)io;
    if ((f->flags & SLUICE_IO_CLOSE_FD) && io->fd >= 0) {
        int saved = errno;
        close(io->fd);
        errno = saved;
    }
    sluice_pool_object_free(io->pool, f, sizeof *f);
}

static const sluice_io_vtable fd_vt = {"fd", fd_readv, fd_writev, fd_shutdown, NULL, fd_close};

int sluice__io_fd(const sluice_io *io)
{
    return io->vt == &fd_vt ? io->fd : -1;
}

int sluice_io_fd_new(sluice_pool *pool, int fd, unsigned flags, sluice_io **out)
{
    *out = NULL;
    if (fd < 0 || (flags & ~SLUICE_IO_CLOSE_FD))
        return SLUICE_EINVAL;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fd_io *f = sluice_pool_object_alloc(pool, sizeof *f);
    if (!f)
        return SLUICE_ENOMEM;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int rc = -errno;
        sluice_pool_object_free(pool, f, sizeof *f);
        return rc;
    }
    memset(f, 0, sizeof *f);
    f->base.vt = &fd_vt;
    f->base.pool = pool;
    f->base.fd = fd;
    f->flags = flags;
    f->is_socket = S_ISSOCK(st.st_mode);
    *out = &f->base;
    return 0;
}

/* ---- in-memory io -------------------------------------------------------- */

typedef struct mem_io {
    sluice_io base;
    const unsigned char *data;
    size_t len, pos, max_read;
    unsigned flags;
    int again_given;       /* -EAGAIN already returned before the next read */
    long long written;
} mem_io;

static ssize_t mem_readv(sluice_io *io, const struct iovec *iov, int iovcnt)
{
    mem_io *m = (mem_io *)io;
    if (m->pos == m->len)
        return 0;
    if ((m->flags & SLUICE__IO_MEM_EAGAIN) && !m->again_given) {
        m->again_given = 1;
        return -EAGAIN;
    }
    m->again_given = 0;
    size_t want = m->len - m->pos;
    if (m->max_read && want > m->max_read)
        want = m->max_read;
    size_t got = 0;
    for (int i = 0; i < iovcnt && got < want; i++) {
        size_t n = iov[i].iov_len < want - got ? iov[i].iov_len : want - got;
        memcpy(iov[i].iov_base, m->data + m->pos + got, n);
        got += n;
    }
    m->pos += got;
    return (ssize_t)got;
}

static ssize_t mem_writev(sluice_io *io, const struct iovec *iov, int iovcnt)
{
    mem_io *m = (mem_io *)io;
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    m->written += (long long)n;
    return (ssize_t)n;
}

static int mem_shutdown(sluice_io *io)
{
    SLUICE__UNUSED(io);
    return 0;
}

static void mem_close(sluice_io *io)
{
    sluice_pool_object_free(io->pool, io, sizeof(mem_io));
}

static const sluice_io_vtable mem_vt = {"memory", mem_readv, mem_writev, mem_shutdown, NULL,
                                        mem_close};

int sluice__io_mem_new(sluice_pool *pool, const void *data, size_t len, size_t max_read,
                      unsigned flags, sluice_io **out)
{
    *out = NULL;
    mem_io *m = sluice_pool_object_alloc(pool, sizeof *m);
    if (!m)
        return SLUICE_ENOMEM;
    memset(m, 0, sizeof *m);
    m->base.vt = &mem_vt;
    m->base.pool = pool;
    m->base.fd = -1;
    m->data = data;
    m->len = len;
    m->max_read = max_read;
    m->flags = flags;
    *out = &m->base;
    return 0;
}

ssize_t sluice__io_mem_written(const sluice_io *io)
{
    if (io->vt != &mem_vt)
        return SLUICE_EINVAL;
    return ((const mem_io *)io)->written;
}
