/*
 * sluice/io.h — the transport: the only place sluice touches a file
 * descriptor.
 *
 * A sluice_io is a small vtable (readv, writev, shutdown, close) plus the fd
 * a host loop waits on. The stock one works on a non-blocking fd; a host that
 * speaks TLS (or wants to test without the kernel) supplies its own vtable
 * and every reader, body stream and writer works over it unchanged.
 *
 * Results follow the library rule: >= 0 is a byte count, < 0 a code.
 * -EAGAIN is the one code callers treat as "not now" (they turn it into
 * PENDING with an interest); every other negative result is an error.
 * EINTR never escapes: the stock io retries it.
 *
 * Ownership: whoever created an io closes it with sluice_io_close(); readers
 * and writers only borrow it. Thread-safety: an io is used by one thread at
 * a time.
 */
#ifndef SLUICE_IO_H
#define SLUICE_IO_H

#include "stream.h"

#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_io sluice_io;

typedef struct sluice_io_vtable {
    const char *name;
    /* > 0 bytes read, 0 peer closed, -EAGAIN nothing now, else -errno. */
    ssize_t (*readv)(sluice_io *io, const struct iovec *iov, int iovcnt);
    /* >= 0 bytes written (may be short), -EAGAIN, -EPIPE (peer gone), -errno. */
    ssize_t (*writev)(sluice_io *io, const struct iovec *iov, int iovcnt);
    /* Stops writing so the peer reads end-of-stream: 0 or a negative code. */
    int (*shutdown)(sluice_io *io);
    /* Optional: what to wait on before retrying after -EAGAIN on an operation
     * of `events` (SLUICE_WANT_READ / SLUICE_WANT_WRITE). NULL: {fd, events}.
     * A TLS io may answer WRITE for a read that needs a handshake write. */
    void (*ready)(sluice_io *io, int events, sluice_interest *want);
    /* Releases everything and frees io. */
    void (*close)(sluice_io *io);
} sluice_io_vtable;

struct sluice_io {
    const sluice_io_vtable *vt;
    sluice_pool *pool;   /* what io was allocated from */
    int fd;              /* what a host loop waits on; -1 if none */
};

/* Close the fd when the io is closed (default: the fd stays the caller's). */
#define SLUICE_IO_CLOSE_FD 1u

/*
 * An io over fd. Sets O_NONBLOCK on it. Writes to a socket use sendmsg with
 * MSG_NOSIGNAL, so a vanished peer gives -EPIPE instead of SIGPIPE; other
 * fds (pipes, files) use writev, where SIGPIPE is the host's business.
 * shutdown is shutdown(SHUT_WR) on sockets; on other fds it closes the fd if
 * SLUICE_IO_CLOSE_FD was given, else it returns -ENOTSOCK.
 * On success the caller owns *out (sluice_io_close). Errors: SLUICE_EINVAL
 * (fd < 0 or unknown flags), -errno from fcntl, SLUICE_ENOMEM; on error the
 * fd is left as it was and is never closed.
 */
SLUICE_API int sluice_io_fd_new(sluice_pool *pool, int fd, unsigned flags, sluice_io **out);


/* io->vt->readv: > 0 bytes read into iov, 0 at the peer's end, -EAGAIN,
 * else -errno (see the vtable). For readers, and for an io layered on
 * another (TLS over the fd io). One thread at a time per io. */
SLUICE_API ssize_t sluice_io_readv(sluice_io *io, const struct iovec *iov, int iovcnt);

/* io->vt->writev: bytes written (may be short), -EAGAIN, -EPIPE when the
 * peer is gone, else -errno. The iov stays the caller's. One thread at a
 * time per io. */
SLUICE_API ssize_t sluice_io_writev(sluice_io *io, const struct iovec *iov, int iovcnt);

/* io->vt->shutdown: ends the write side so the peer reads its end (TLS:
 * close_notify). 0 or a negative code; not retried by sluice. */
SLUICE_API int sluice_io_shutdown(sluice_io *io);

/* Closes io (and its fd if it owns it). NULL is a no-op. */
SLUICE_API void sluice_io_close(sluice_io *io);

#ifdef __cplusplus
}
#endif

#endif
