/*
 * tls_io.c — sluice_io over OpenSSL (see tls_io.h for the contract).
 *
 * The io keeps, per direction, what the last -EAGAIN waits for (OpenSSL may
 * need the socket writable to finish a read and the other way round), and
 * for writes the length of the SSL_write that must be repeated. Writes are
 * made straight from sluice's blocks when the first iovec is a record's
 * worth (16 KiB) or more; smaller leading iovecs (a chunk-size line, a head)
 * are gathered into one record so a chunked body does not cost a record of
 * 6 bytes per chunk. TLS encrypts into its own buffer anyway, so the gather
 * is the only extra copy and touches at most 16 KiB per writev.
 */
#include "tls_io.h"

#include <openssl/err.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RECORD 16384

typedef struct tls_io {
    sluice_io io;
    SSL *ssl;
    unsigned flags;
    int read_wants, write_wants; /* SLUICE_WANT_* the last -EAGAIN waits for */
    size_t retry_len;            /* an SSL_write to repeat with this length  */
    int broken;                  /* fatal error: no close_notify to send     */
    unsigned long calls[2], injected; /* the flaky filter's counters          */
    unsigned char stage[RECORD];
} tls_io;

/* Maps a failed SSL_read / SSL_write (n <= 0) onto the io's results. */
static ssize_t fail(tls_io *t, int n, int *wants)
{
    int e = SSL_get_error(t->ssl, n);
    unsigned long err = ERR_peek_error();
    ERR_clear_error();
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *wants = SLUICE_WANT_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *wants = SLUICE_WANT_WRITE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: /* the peer's close_notify */
        return 0;
    case SSL_ERROR_SYSCALL:
        t->broken = 1;
        return errno ? -errno : -ECONNRESET; /* an EOF without close_notify */
    default:
        t->broken = 1;
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
        if (ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return -ECONNRESET; /* a bare FIN: a truncation, never an end */
#endif
        return -EPROTO;
    }
}

static ssize_t tls_readv(sluice_io *io, const struct iovec *iov, int iovcnt)
{
    tls_io *t = (tls_io *)io;
    ssize_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        for (size_t off = 0; off < iov[i].iov_len;) {
            size_t len = iov[i].iov_len - off;
            ERR_clear_error();
            errno = 0;
            int n = SSL_read(t->ssl, (char *)iov[i].iov_base + off, len > INT_MAX ? INT_MAX : (int)len);
            if (n <= 0) {
                /* bytes first; an error or the end recurs on the next call.
                 * SSL_read says WANT_* only when it has no decrypted byte
                 * left (SSL_pending is 0), so -EAGAIN never strands data
                 * inside OpenSSL that no fd event would announce. */
                ssize_t rc = fail(t, n, &t->read_wants);
                return total ? total : rc;
            }
            off += (size_t)n;
            total += n;
        }
    }
    return total;
}

/* The bytes to hand SSL_write: straight from iov[0] when it holds them,
 * else gathered into the stage. */
static const void *gather(tls_io *t, const struct iovec *iov, int iovcnt, size_t want)
{
    if (iov[0].iov_len >= want)
        return iov[0].iov_base;
    size_t got = 0;
    for (int i = 0; i < iovcnt && got < want; i++) {
        size_t k = iov[i].iov_len < want - got ? iov[i].iov_len : want - got;
        memcpy(t->stage + got, iov[i].iov_base, k);
        got += k;
    }
    return t->stage;
}

static ssize_t tls_writev(sluice_io *io, const struct iovec *iov, int iovcnt)
{
    tls_io *t = (tls_io *)io;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (!total)
        return 0;
    size_t want = t->retry_len;
    if (want > total)
        return -EPROTO; /* not the retry OpenSSL asked for */
    if (!want)
        want = iov[0].iov_len >= RECORD || iovcnt == 1 ? iov[0].iov_len
             : total < RECORD                          ? total
                                                       : RECORD;
    if (want > INT_MAX)
        want = INT_MAX;
    const void *buf = gather(t, iov, iovcnt, want);
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(t->ssl, buf, (int)want);
    if (n > 0) {
        t->retry_len = 0;
        return n;
    }
    ssize_t rc = fail(t, n, &t->write_wants);
    if (rc == -EAGAIN)
        t->retry_len = want; /* the same bytes again, as SSL_write requires */
    return rc == 0 ? -EPIPE : rc;
}

static int tls_shutdown(sluice_io *io)
{
    tls_io *t = (tls_io *)io;
    if (!t->broken && SSL_is_init_finished(t->ssl)) {
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* close_notify; not retried (see the docs) */
        ERR_clear_error();
    }
    return shutdown(io->fd, SHUT_WR) < 0 ? -errno : 0;
}

static void tls_ready(sluice_io *io, int events, sluice_interest *want)
{
    tls_io *t = (tls_io *)io;
    int w = events & SLUICE_WANT_WRITE ? t->write_wants : t->read_wants;
    *want = (sluice_interest){io->fd, w ? w : events, -1};
}

static void tls_close(sluice_io *io)
{
    tls_io *t = (tls_io *)io;
    SSL_free(t->ssl);
    if (t->flags & SLUICE_IO_CLOSE_FD)
        close(io->fd);
    sluice_pool_object_free(io->pool, t, sizeof *t);
}

static const sluice_io_vtable tls_vt = {"tls", tls_readv, tls_writev, tls_shutdown,
                                        tls_ready, tls_close};

/* ---- the flaky filter: every other read and write refused with a retry -- */

static int flaky_io(BIO *b, char *rd, const char *wr, int n)
{
    tls_io *t = BIO_get_data(b);
    int dir = wr != NULL;
    BIO_clear_retry_flags(b);
    if (t->calls[dir]++ % 2 == 0) {
        t->injected++;
        if (dir)
            BIO_set_retry_write(b);
        else
            BIO_set_retry_read(b);
        return -1;
    }
    int r = dir ? BIO_write(BIO_next(b), wr, n) : BIO_read(BIO_next(b), rd, n);
    BIO_copy_next_retry(b);
    return r;
}

static int flaky_read(BIO *b, char *buf, int n)
{
    return flaky_io(b, buf, NULL, n);
}

static int flaky_write(BIO *b, const char *buf, int n)
{
    return flaky_io(b, NULL, buf, n);
}

static long flaky_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    return BIO_next(b) ? BIO_ctrl(BIO_next(b), cmd, num, ptr) : 0;
}

static int flaky_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *flaky_method(void)
{
    static BIO_METHOD *m; /* made once; examples are single-threaded */
    if (!m && (m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "flaky"))) {
        BIO_meth_set_read(m, flaky_read);
        BIO_meth_set_write(m, flaky_write);
        BIO_meth_set_ctrl(m, flaky_ctrl);
        BIO_meth_set_create(m, flaky_create);
    }
    return m;
}

static int attach_flaky(tls_io *t, int fd)
{
    BIO *sock = BIO_new_socket(fd, BIO_NOCLOSE);
    BIO *f = flaky_method() ? BIO_new(flaky_method()) : NULL;
    if (!sock || !f) {
        BIO_free(sock);
        BIO_free(f);
        return SLUICE_ENOMEM;
    }
    BIO_set_data(f, t);
    BIO_push(f, sock);
    SSL_set_bio(t->ssl, f, f); /* the SSL owns both now */
    return 0;
}

/* ---- public ------------------------------------------------------------ */

int tls_io_new(sluice_pool *pool, SSL *ssl, int fd, unsigned flags, sluice_io **out)
{
    *out = NULL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        SSL_free(ssl);
        return -errno;
    }
    tls_io *t = sluice_pool_object_alloc(pool, sizeof *t);
    if (!t) {
        SSL_free(ssl);
        return SLUICE_ENOMEM;
    }
    memset(t, 0, sizeof *t);
    t->io = (sluice_io){&tls_vt, pool, fd};
    t->ssl = ssl;
    t->flags = flags;
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    int rc = flags & TLS_IO_FLAKY ? attach_flaky(t, fd) : 0;
    if (rc < 0) {
        t->flags &= ~SLUICE_IO_CLOSE_FD; /* on error the fd stays the caller's */
        tls_close(&t->io);
        return rc;
    }
    *out = &t->io;
    return 0;
}

unsigned long tls_io_injected(const sluice_io *io)
{
    return io->vt == &tls_vt ? ((const tls_io *)io)->injected : 0;
}
