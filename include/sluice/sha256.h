/*
 * sluice/sha256.h — SHA-256 (FIPS 180-4) over a plain struct the host embeds,
 * and a tap callback that digests a stream as it passes.
 *
 *   sluice_sha256_ctx c;
 *   sluice_sha256_init(&c);
 *   sluice_sha256_update(&c, data, len);    any number of times, any sizes
 *   sluice_sha256_final(&c, digest);        32 bytes; c is then fresh again
 *
 * An all-zero struct is a fresh context too, so `sluice_sha256_ctx c = {0};`
 * works without init. On x86-64 CPUs with the SHA extensions the block
 * function uses them (chosen once per context, at its first use); elsewhere
 * a portable C version runs. Both give the same digests. sluice_sha256()
 * does init, update and final in one call. The choice asks cpuid, which
 * costs microseconds in a virtual machine (~5 us measured, about what
 * hashing 8 KiB costs): code that starts a digest per chunk inits one
 * context and copies it (plain struct assignment) for each.
 *
 * HMAC-SHA256 (RFC 2104): sluice_hmac_sha256(), one-shot. (The library's
 * SigV4 signer keys a sluice_hmac_sha256_ctx once and copies it to MAC each
 * chunk without hashing the key again; that context is opaque here.)
 *
 * Nothing here allocates or fails. Thread-safety: a context is used by one
 * thread at a time; different contexts are independent.
 */
#ifndef SLUICE_SHA256_H
#define SLUICE_SHA256_H

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_SHA256_SIZE 32 /* digest bytes */
#define SLUICE_SHA256_HEX_SIZE 65 /* 64 lowercase hex digits and a NUL */

typedef struct sluice_sha256_ctx {
    uint32_t _h[8];               /* chaining state */
    uint64_t _len;                /* bytes hashed so far */
    unsigned char _buf[64];       /* partial block: _len % 64 bytes */
    int _started;                 /* 0: fresh (all-zero) context */
    int _accel;                   /* 0: not decided yet (at the first block),
                                     1: the CPU's SHA instructions, 2: C */
} sluice_sha256_ctx;

/* Starts (or restarts) a digest. */
SLUICE_API void sluice_sha256_init(sluice_sha256_ctx *c);

/* Hashes len more bytes. data may be NULL when len is 0. */
SLUICE_API void sluice_sha256_update(sluice_sha256_ctx *c, const void *data, size_t len);

/* Writes the digest of everything hashed since init to out and resets c to
 * a fresh (all-zero) context. */
SLUICE_API void sluice_sha256_final(sluice_sha256_ctx *c, unsigned char out[SLUICE_SHA256_SIZE]);

/* One-shot: out = SHA-256(data[0, len)). */
SLUICE_API void sluice_sha256(const void *data, size_t len, unsigned char out[SLUICE_SHA256_SIZE]);

/* Writes the digest as 64 lowercase hex digits and a NUL into hex. */
SLUICE_API void sluice_sha256_hex(const unsigned char digest[SLUICE_SHA256_SIZE],
                                  char hex[SLUICE_SHA256_HEX_SIZE]);

/*
 * A sluice_tap_fn: hashes each chunk that passes through a tap. ud is the
 * sluice_sha256_ctx, which the host owns and finalises after the
 * stream's EOF:
 *
 *   sluice_tap_new(pool, body, sluice_sha256_tap, &ctx, &tapped);
 */
SLUICE_API void sluice_sha256_tap(void *ud, const sluice_bytes *chunk);

/* ---- HMAC-SHA256 -------------------------------------------------------------- */

/* Both halves of HMAC, each already past its 64-byte key block: key
 * material, held inside sluice_sigv4_signer (private fields). */
typedef struct sluice_hmac_sha256_ctx {
    sluice_sha256_ctx _inner;     /* H((K ^ ipad) || message ...) */
    sluice_sha256_ctx _outer;     /* H((K ^ opad) || inner digest) */
} sluice_hmac_sha256_ctx;

/* One-shot: out = HMAC-SHA256(key, data). out may overlap key or data (both
 * are consumed before out is written), so k = HMAC(k, msg) works in place. */
SLUICE_API void sluice_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                                   unsigned char out[SLUICE_SHA256_SIZE]);

#ifdef __cplusplus
}
#endif

#endif
