/*
 * tls_io.h — a sluice_io over an OpenSSL SSL* on a non-blocking socket:
 * every sluice reader, body stream and writer works over TLS unchanged.
 * docs/embedding.md, "Writing a transport (TLS)", is the contract this
 * implements; examples/tls-digest.c is a server built on it.
 *
 *   readv     SSL_read into the iovecs; -EAGAIN only when OpenSSL holds no
 *             decrypted byte (SSL_read said WANT_READ / WANT_WRITE); 0 only
 *             after the peer's close_notify; a bare TCP FIN (no
 *             close_notify) is -ECONNRESET, so a cut body never looks
 *             complete, whatever its framing.
 *   writev    SSL_write with SSL_MODE_ENABLE_PARTIAL_WRITE and
 *             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: a short count is fine,
 *             and after -EAGAIN the retry is made with the same number of
 *             bytes (sluice retries with the same bytes at the same
 *             position, which is what SSL_write requires). Small leading
 *             iovecs are gathered into one record of up to 16 KiB.
 *   ready     what the operation that said -EAGAIN waits for: a read
 *             that needs a handshake write waits for WRITE, and back.
 *   shutdown  sends close_notify (once, not retried), then shuts the
 *             socket's write side.
 *   close     SSL_free; closes the fd with SLUICE_IO_CLOSE_FD.
 *
 * Not thread-safe: one thread uses an io at a time (sluice's rule).
 */
#ifndef SLUICE_EXAMPLE_TLS_IO_H
#define SLUICE_EXAMPLE_TLS_IO_H

#include <sluice.h>

#include <openssl/ssl.h>

/* With TLS_IO_FLAKY a filter BIO between OpenSSL and the socket refuses
 * every other read and write with a retry, so OpenSSL itself reports
 * WANT_READ / WANT_WRITE far more often than a loopback socket would, and
 * checks (bad write retry) that every SSL_write retry is made right. */
#define TLS_IO_FLAKY 0x100u

/*
 * An io over ssl, which must be set up for its role (SSL_set_accept_state
 * or SSL_set_connect_state; the handshake runs inside the first reads and
 * writes) and attached to the non-blocking socket fd (SSL_set_fd) unless
 * TLS_IO_FLAKY is given (then the io attaches it). Takes ownership of ssl,
 * also on error (it is freed). flags: SLUICE_IO_CLOSE_FD, TLS_IO_FLAKY.
 * The caller owns *out (sluice_io_close). Errors: SLUICE_ENOMEM, -errno.
 */
int tls_io_new(sluice_pool *pool, SSL *ssl, int fd, unsigned flags, sluice_io **out);

/* Retries the flaky filter has injected so far (0 without TLS_IO_FLAKY). */
unsigned long tls_io_injected(const sluice_io *io);

#endif
