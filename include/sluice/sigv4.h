/*
 * sluice/sigv4.h — AWS Signature Version 4 for S3 requests (Authorization
 * header), including the aws-chunked framing of streaming uploads.
 *
 * Signing a request:
 *
 *   sluice_sigv4_request rq = {
 *       .method = "PUT", .bucket = "examplebucket", .key = k, .key_len = klen,
 *       .headers = hdrs, .num_headers = n,     Host and the others to sign
 *       .payload = SLUICE_SIGV4_UNSIGNED_PAYLOAD,
 *       .region = "us-east-1", .amz_date = date,   strftime "%Y%m%dT%H%M%SZ", UTC
 *   };
 *   sluice_sigv4_signer s;
 *   char auth[SLUICE_SIGV4_AUTH_SIZE], target[1024];
 *   sluice_sigv4_target(&rq, target, sizeof target, &len);     request line
 *   sluice_sigv4_sign(&s, &rq, &creds, auth, sizeof auth, &len);
 *
 * then send the request with the target as the request line's target, every
 * header in rq.headers, and these four, which the signer signs itself (they
 * must not be in rq.headers):
 *
 *   Authorization: <auth>
 *   x-amz-date: <rq.amz_date>
 *   x-amz-content-sha256: <rq.payload>
 *   x-amz-security-token: <creds.session_token>     only with a token
 *
 * Addressing is path-style ("/BUCKET/KEY", bucket given) or virtual-hosted
 * ("/KEY", bucket NULL and the bucket in Host). The key and the query are
 * given raw and encoded here the S3 way: RFC 3986 unreserved bytes
 * (A-Z a-z 0-9 - . _ ~) stay, every other byte is %XX with uppercase hex;
 * '/' stays in the path and is encoded in the query. S3 does not normalise
 * paths, so neither does this ("a//b/../c" is signed as given).
 *
 * Payload modes (rq.payload, also the x-amz-content-sha256 value):
 *   a 64-digit lowercase hex SHA-256   the whole body, hashed before sending
 *   SLUICE_SIGV4_UNSIGNED_PAYLOAD      body sent as is, not covered
 *   SLUICE_SIGV4_STREAMING_UNSIGNED_TRAILER   aws-chunked, plain size lines,
 *                                      a trailing checksum field
 *   SLUICE_SIGV4_STREAMING_SIGNED      aws-chunked, every chunk signed
 *   SLUICE_SIGV4_STREAMING_SIGNED_TRAILER     the same plus a signed trailer
 * docs/s3.md says which one a streaming upload should use and why. The
 * streaming modes also need Content-Encoding: aws-chunked,
 * x-amz-decoded-content-length (the object's size) and Content-Length
 * (sluice_sigv4_encoded_length()); the trailer modes x-amz-trailer naming
 * the trailing field, e.g. x-amz-checksum-sha256.
 *
 * aws-chunked framing, for a writer that sends the data from its own
 * buffers (nothing here copies or sees the data, only its SHA-256):
 *
 *   for each chunk:   line = sluice_sigv4_chunk(&s, size, sha256(data))
 *                     send line, data, "\r\n"
 *   at the end:       line = sluice_sigv4_chunk(&s, 0, NULL)    send line
 *   trailer modes:    sluice_sigv4_trailer(&s, "x-amz-checksum-sha256",
 *                                          base64(sha256(body)), ...)  send it
 *
 * Errors: every function returns 0 (or a length) on success, SLUICE_EINVAL
 * for a malformed argument (which one is documented at each function) and
 * SLUICE_ERANGE when an output buffer is too small; on error nothing useful
 * is in the output and a signer is unchanged.
 *
 * Nothing here allocates. Requests and credentials are only read, during
 * the call. Thread-safety: every function is reentrant; a signer is used by
 * one thread at a time.
 */
#ifndef SLUICE_SIGV4_H
#define SLUICE_SIGV4_H

#include "http.h"
#include "sha256.h"

#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Payload modes: the value of x-amz-content-sha256 for bodies not hashed
 * up front. */
#define SLUICE_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SLUICE_SIGV4_STREAMING_UNSIGNED_TRAILER "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
#define SLUICE_SIGV4_STREAMING_SIGNED "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
#define SLUICE_SIGV4_STREAMING_SIGNED_TRAILER "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
/* The SHA-256 of an empty body: the payload of GET, HEAD and DELETE. */
#define SLUICE_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define SLUICE_SIGV4_AMZ_DATE_SIZE 17    /* "YYYYMMDDTHHMMSSZ" and a NUL */
#define SLUICE_SIGV4_SIGNATURE_SIZE 65   /* 64 lowercase hex digits and a NUL */
#define SLUICE_SIGV4_MAX_REGION 63       /* bytes in a region name */
/* Headers, and query parameters, a request may have (each): they are
 * sorted by index on the stack, not allocated. */
#define SLUICE_SIGV4_MAX_FIELDS 64
/* Enough for an Authorization value with a 20-character access key, a
 * usual region and a dozen signed headers; SLUICE_ERANGE says when not,
 * with the size needed. */
#define SLUICE_SIGV4_AUTH_SIZE 512
/* A chunk line: 16 hex digits, ";chunk-signature=", 64 hex digits, CRLF,
 * and for the last chunk of a body without trailer one more CRLF; a NUL. */
#define SLUICE_SIGV4_CHUNK_LINE_SIZE 104
/* Base64 of n bytes with padding, and a NUL. */
#define SLUICE_SIGV4_BASE64_SIZE(n) (((n) + 2) / 3 * 4 + 1)

/* Who signs. All strings NUL-terminated, read only during a call. */
typedef struct sluice_sigv4_credentials {
    const char *access_key_id;      /* "AKIAIOSFODNN7EXAMPLE"                 */
    const char *secret_access_key;  /* never copied; only a derived key is kept */
    const char *session_token;      /* NULL or "": none; else sent and signed
                                       as x-amz-security-token                 */
} sluice_sigv4_credentials;

/* What is signed. Strings without a length are NUL-terminated. */
typedef struct sluice_sigv4_request {
    const char *method;             /* "GET", "PUT", ... (a token, as sent)   */
    const char *bucket;             /* path-style: "/bucket/key"; NULL or "":
                                       virtual-hosted, "/key"                  */
    const char *key;                /* object key, raw (UTF-8 as stored); may */
    size_t key_len;                 /* be empty for bucket-level requests     */
    const sluice_http_header *query; /* raw names and values; an empty value  */
    size_t num_query;               /* signs as "name=" (S3 subresources)     */
    const sluice_http_header *headers; /* to sign; Host is required. Names in
                                       any case; values are trimmed and inner
                                       runs of SP / HTAB become one SP. Fields
                                       of the same name are joined with ','
                                       in order. Hop-by-hop fields and those
                                       proxies rewrite (Connection, Expect,
                                       Keep-Alive, Proxy-*, TE, Trailer,
                                       Transfer-Encoding, Upgrade, User-Agent,
                                       X-Amzn-Trace-Id) are skipped, as AWS's
                                       SDKs do. Authorization and the x-amz-
                                       fields the signer adds are refused.    */
    size_t num_headers;
    const char *payload;            /* a mode above or 64 lowercase hex      */
    const char *region;             /* "us-east-1"                            */
    const char *amz_date;           /* "20130524T000000Z", UTC                */
} sluice_sigv4_request;

/*
 * The state a streaming upload needs after sign(): the derived signing key
 * (valid for one day, region and service; not the secret), the scope, the
 * mode and the signature the next chunk chains from. A plain struct the
 * caller owns; it holds key material, so wipe it when done if that matters.
 */
typedef struct sluice_sigv4_signer {
    char signature[SLUICE_SIGV4_SIGNATURE_SIZE]; /* the request's signature
                                       after sign() (the seed), then the last
                                       chunk's                                */
    sluice_hmac_sha256_ctx _key;    /* HMAC keyed with the signing key        */
    char _amz_date[SLUICE_SIGV4_AMZ_DATE_SIZE];
    char _scope[SLUICE_SIGV4_MAX_REGION + 32]; /* date/region/s3/aws4_request */
    int _mode;                      /* payload mode, see sigv4.c              */
    int _ended;                     /* the zero-size chunk was framed         */
} sluice_sigv4_signer;

/*
 * Writes the request target, "/bucket/key?query" encoded exactly as signed
 * (parameters in canonical order), and a NUL into out[0, cap). *len is set
 * to the target's length without the NUL, also on SLUICE_ERANGE (the
 * buffer must then be at least *len + 1); out may be NULL when cap is 0,
 * to learn the length. SLUICE_EINVAL: req, key (with
 * key_len > 0) or a query array is NULL, or more than
 * SLUICE_SIGV4_MAX_FIELDS parameters.
 */
SLUICE_API int sluice_sigv4_target(const sluice_sigv4_request *req, char *out, size_t cap,
                                   size_t *len);

/*
 * Signs req: writes the Authorization header value ("AWS4-HMAC-SHA256
 * Credential=...,SignedHeaders=...,Signature=...") and a NUL into
 * auth[0, cap), *len as for sluice_sigv4_target(), and fills *s for the
 * chunk and trailer functions (s->signature is the request's signature).
 * SLUICE_EINVAL: a NULL or empty required field; method or a header name not
 * a token; a header value with a control byte other than HTAB; no Host;
 * Authorization, x-amz-date, x-amz-content-sha256 or x-amz-security-token
 * among the headers; payload neither a mode nor 64 lowercase hex digits;
 * amz_date not "YYYYMMDDTHHMMSSZ"; region longer than
 * SLUICE_SIGV4_MAX_REGION or with bytes other than letters, digits, '-' and
 * '_'; access key with a control byte, space, ',' or '/'; more than
 * SLUICE_SIGV4_MAX_FIELDS headers or parameters. *s is left unchanged on
 * error.
 */
SLUICE_API int sluice_sigv4_sign(sluice_sigv4_signer *s, const sluice_sigv4_request *req,
                                 const sluice_sigv4_credentials *cred, char *auth, size_t cap,
                                 size_t *len);

/*
 * Frames the next aws-chunked chunk of size bytes whose SHA-256 is sha256
 * (ignored, and may be NULL, for size 0 and in the unsigned mode): writes into line what goes before the chunk's data and returns
 * its length:
 *
 *   signed modes      "<hex size>;chunk-signature=<64 hex>\r\n"
 *   unsigned trailer  "<hex size>\r\n"
 *
 * The caller sends the line, the data and "\r\n". Size 0 ends the body:
 * the signed mode without trailer appends the closing "\r\n" (the body is
 * then complete); the trailer modes go on with sluice_sigv4_trailer(). In
 * the signed modes the chunk's signature chains from s->signature, which it
 * then replaces, so chunks must be framed in the order they are sent.
 * S3 wants every chunk but the last of at least 8 KiB in signed modes.
 * SLUICE_EINVAL: s was not signed for a streaming mode, or sha256 is NULL
 * for a signed non-empty chunk. SLUICE_ECLOSED: the zero-size chunk was
 * already framed.
 */
SLUICE_API int sluice_sigv4_chunk(sluice_sigv4_signer *s, uint64_t size,
                                  const unsigned char sha256[SLUICE_SHA256_SIZE],
                                  char line[SLUICE_SIGV4_CHUNK_LINE_SIZE]);

/*
 * Writes the trailer section that ends a trailer-mode body, after the
 * zero-size chunk's line, and a NUL into out[0, cap):
 *
 *   "<name>:<value>\r\n"
 *   "x-amz-trailer-signature:<64 hex>\r\n"        signed trailer mode only
 *   "\r\n"
 *
 * The trailer signature chains from the last chunk's signature (it covers
 * "<name>:<value>\n"). name is what x-amz-trailer announced, e.g.
 * "x-amz-checksum-sha256", whose value is the base64 of the body's SHA-256
 * (sluice_sigv4_base64()). *len as for sluice_sigv4_target().
 * SLUICE_EINVAL: s is not in a trailer mode, the zero-size chunk has not
 * been framed, name is not a lowercase token, or value has a control byte.
 */
SLUICE_API int sluice_sigv4_trailer(sluice_sigv4_signer *s, const char *name, const char *value,
                                    char *out, size_t cap, size_t *len);

/*
 * The number of body bytes sent for an object of decoded_len bytes in the
 * given payload mode (the Content-Length header): decoded_len itself
 * outside the streaming modes; in them, with every chunk chunk_size bytes
 * but the last, the framing added by sluice_sigv4_chunk() and, in trailer
 * modes, sluice_sigv4_trailer() for a field named trailer_name with a value
 * of trailer_value_len bytes (44 for a base64 SHA-256). The payload mode is
 * the one the request will be signed with, so this can be known, and
 * signed, before signing. SLUICE_EINVAL: payload is not a mode or hex
 * digest, chunk_size is 0 in a streaming mode, or trailer_name is NULL in a
 * trailer mode; SLUICE_ERANGE: the length overflows 64 bits.
 */
SLUICE_API int sluice_sigv4_encoded_length(const char *payload, uint64_t decoded_len,
                                           size_t chunk_size, const char *trailer_name,
                                           size_t trailer_value_len, uint64_t *out);

/*
 * Standard base64 (RFC 4648 section 4, with '=' padding) of in[0, len) and a
 * NUL into out[0, cap); returns the length without the NUL. S3 checksum
 * fields (x-amz-checksum-sha256) are the base64 of the raw digest.
 * SLUICE_ERANGE: cap < SLUICE_SIGV4_BASE64_SIZE(len).
 */
SLUICE_API int sluice_sigv4_base64(const void *in, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
