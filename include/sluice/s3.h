/*
 * sluice/s3.h — the S3 upload sink: one stream written as one object to
 * S3-compatible storage (path-style "http://HOST/BUCKET/KEY"), over a
 * sluice_io the host connected (plain fd, or the host's TLS io).
 *
 *   sluice_s3_config c = {.host = "127.0.0.1:9000", .bucket = "b", .key = k,
 *                         .key_len = klen, .region = "us-east-1",
 *                         .credentials = {akid, secret, NULL},
 *                         .length = size};    or SLUICE_S3_UNKNOWN_LENGTH
 *   sluice_s3_sink_new(pool, io, &c, &sink);
 *   sluice_pump_init(&pump, body, sink, 0);   step it like any other sink
 *   on DONE:  sluice_s3_sink_result(sink, &res)   ETag, size, SHA-256
 *   on ERROR: while (sluice_s3_sink_cleanup(sink, &want) == SLUICE_PENDING)
 *                 wait for want;              nothing is left in the store
 *   sluice_sink_close(sink); then the host closes io.
 *
 * Known length: one PutObject, streamed as it arrives (nothing held in the
 * default mode; the signed mode holds one chunk), body
 * framed as aws-chunked in 64 KiB chunks with a trailing
 * x-amz-checksum-sha256 that the store checks (payload mode
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER; docs/s3.md). The SHA-256 is computed
 * as the bytes pass: the one in the result is the one the store verified.
 *
 * Unknown length: the stream is held in parts of part_size bytes (the views
 * the sink is given; only views under 4 KiB are copied, into blocks of the
 * sink's own) and sent as a multipart upload:
 * CreateMultipartUpload (x-amz-checksum-algorithm: SHA256) when the first
 * part is full, one UploadPart per part (x-amz-checksum-sha256 of the part,
 * payload signed with its SHA-256), CompleteMultipartUpload at finish. A
 * stream that ends before its first part is full goes as one PutObject.
 * While a part is being written, poll_write returns PENDING (at most one
 * part is held, plus the unwritten rest of the one going out).
 *
 * Failure leaves nothing behind:
 *   - a PutObject that did not complete is cut (the io's write side is shut
 *     before the declared Content-Length), so the store keeps nothing; this
 *     needs no round trip: abort and close do it at once;
 *   - a multipart upload needs AbortMultipartUpload, a round trip of its own.
 *     sluice_sink_abort() (the pump calls it when the source fails) and a
 *     sink error only mark the sink; the host then steps
 *     sluice_s3_sink_cleanup() until it is not PENDING, waiting on the
 *     interest it gives, as it waits for a pump. A request already on the
 *     wire is completed first (a Create's answer brings the upload id; an
 *     UploadPart being written is cut if there is a connect callback, else
 *     written out: its bytes are held anyway), then the DELETE goes. A
 *     Complete already sent that succeeds stores the object (the result
 *     says done). Closing the sink before cleanup ends leaves the upload in
 *     the store (a bucket lifecycle rule, AbortIncompleteMultipartUpload,
 *     is the backstop); the result's upload_id names it.
 *
 * Connections: one request at a time on one connection. The sink borrows
 * io (the host closes it after the sink). A multipart upload is several
 * requests: if the store closes the connection between them (Connection:
 * close, as moto's server does after every response; or after an error),
 * or a PutObject had to be cut, the sink asks cfg->connect for a new one,
 * which it then owns and closes. The callback may return an io whose
 * non-blocking connect is still in progress (its writes say -EAGAIN until it
 * is up). Before each request on a connection that carried one already, a
 * read that does not block checks that the store has not closed it while it
 * was idle (S3 does after a few seconds). Without a callback the next
 * request fails with SLUICE_EPEERCLOSED. Requests are not retried.
 *
 * Errors: an S3 error response fails the sink with SLUICE_ES3_ERROR and the
 * result carries the HTTP status and the XML body's <Code> and <Message>
 * (also when the store answered early and refused the rest of a body);
 * a response that is not what S3 answers is SLUICE_ES3_BAD_RESPONSE; io
 * errors are -errno; a stream longer or shorter than the declared length is
 * SLUICE_ETOOBIG / SLUICE_ETRUNCATED (the PutObject is cut).
 *
 * Readiness: PENDING only after the io said -EAGAIN (or the reader met the
 * pool's cap); sluice_sink_ready() then gives the store's fd with READ or
 * WRITE, and the idle deadline. A sink is used by one thread at a time.
 */
#ifndef SLUICE_S3_H
#define SLUICE_S3_H

#include "io.h"
#include "sigv4.h"
#include "sink.h"

#define SLUICE_S3_UNKNOWN_LENGTH (-1)
#define SLUICE_S3_DEFAULT_PART_SIZE (8u << 20) /* 8 MiB                     */
#define SLUICE_S3_MIN_PART_SIZE (5u << 20)     /* S3's minimum but the last  */
#define SLUICE_S3_MAX_PARTS 10000u             /* S3's maximum part number   */
#define SLUICE_S3_CHUNK_SIZE 65536u            /* aws-chunked chunk size     */

typedef struct sluice_s3_config {
    const char *host;      /* the Host header, "host[:port]"                 */
    const char *bucket;    /* path-style: the target is /BUCKET/KEY          */
    const char *key;       /* object key, raw bytes (UTF-8); encoded here    */
    size_t key_len;
    const char *region;    /* NULL: "us-east-1"                              */
    sluice_sigv4_credentials credentials; /* all strings copied              */
    int64_t length;        /* object size, or SLUICE_S3_UNKNOWN_LENGTH       */
    size_t part_size;      /* multipart part size; 0: 8 MiB; >= 5 MiB        */
    const char *payload;   /* PutObject payload mode: NULL or
                              SLUICE_SIGV4_STREAMING_UNSIGNED_TRAILER (TLS),
                              SLUICE_SIGV4_STREAMING_SIGNED_TRAILER (plain
                              HTTP: every chunk signed; a 64 KiB chunk is
                              held and hashed before it goes out)            */
    const char *content_type; /* NULL: application/octet-stream              */
    uint32_t idle_timeout_ms; /* no progress for this long: SLUICE_ETIMEDOUT;
                              0: none                                        */
    /* A new connection to the same store: 0 and *io (the sink owns it and
     * closes it with sluice_io_close), or a negative code. NULL: none. */
    int (*connect)(void *ud, sluice_io **io);
    void *connect_ud;
} sluice_s3_config;

/* Sizes of the result's strings (with their NUL). */
#define SLUICE_S3_ETAG_SIZE 128
#define SLUICE_S3_UPLOAD_ID_SIZE 512
#define SLUICE_S3_CODE_SIZE 64
#define SLUICE_S3_MESSAGE_SIZE 256

typedef enum sluice_s3_cleanup {
    SLUICE_S3_CLEAN = 0,     /* nothing left in the store (or nothing begun) */
    SLUICE_S3_CLEANUP_NEEDED, /* a multipart upload must be aborted:
                                step sluice_s3_sink_cleanup()               */
    SLUICE_S3_CLEANUP_FAILED  /* the abort could not be done: upload_id is
                                left in the store                           */
} sluice_s3_cleanup;

typedef struct sluice_s3_result {
    int done;              /* 1: the object is stored                        */
    uint64_t size;         /* bytes accepted (the object's size when done)   */
    char sha256[SLUICE_SHA256_HEX_SIZE]; /* hex SHA-256 of the whole object,
                              when done                                      */
    char etag[SLUICE_S3_ETAG_SIZE]; /* without quotes; multipart: "<hex>-N"  */
    char checksum[SLUICE_S3_ETAG_SIZE]; /* x-amz-checksum-sha256 the store
                              reported, base64 ("...-N": of the parts' digests
                              for multipart); "" if it reported none          */
    unsigned parts;        /* parts uploaded; 0: PutObject                   */
    char upload_id[SLUICE_S3_UPLOAD_ID_SIZE]; /* multipart upload, "" if none */
    sluice_s3_cleanup cleanup;
    int status;            /* HTTP status of the last response; 0: none      */
    char error_code[SLUICE_S3_CODE_SIZE];       /* <Code> of an S3 error     */
    char error_message[SLUICE_S3_MESSAGE_SIZE]; /* <Message>, truncated      */
} sluice_s3_result;

/*
 * An S3 upload sink writing to io (borrowed; already connected to the
 * store). cfg is copied (strings included; the secret is wiped at close).
 * Nothing is sent before the first write (or finish). The caller owns *out
 * (sluice_sink_close); on error *out is NULL.
 * Errors: SLUICE_EINVAL (NULL or empty host, bucket, key or credentials;
 * part_size below SLUICE_S3_MIN_PART_SIZE; a payload mode other than the
 * two above; length < -1), SLUICE_ENOMEM.
 */
SLUICE_API int sluice_s3_sink_new(sluice_pool *pool, sluice_io *io, const sluice_s3_config *cfg,
                                  sluice_sink **out);

/* Copies what the sink knows into *out: after a finished sink the object's
 * ETag, size and SHA-256; after an error the S3 status, code and message;
 * the upload id and the cleanup state. SLUICE_EINVAL if k is not an S3 sink. */
SLUICE_API int sluice_s3_sink_result(const sluice_sink *k, sluice_s3_result *out);

/*
 * Makes sure a failed or abandoned upload leaves nothing in the store.
 * Aborts the sink first if it is neither finished nor aborted, then drives
 * the AbortMultipartUpload round trip without blocking:
 *   SLUICE_READY    nothing is left behind (also: a finished sink, whose
 *                   object stays, and a PutObject, cut at abort);
 *   SLUICE_PENDING  wait for *want and call again;
 *   SLUICE_ERROR    the abort failed (connection lost, store error): the
 *                   result's cleanup is SLUICE_S3_CLEANUP_FAILED and
 *                   upload_id names what is left.
 * Repeats its last answer once settled. SLUICE_EINVAL (as ERROR) if k is not
 * an S3 sink.
 */
SLUICE_API sluice_poll sluice_s3_sink_cleanup(sluice_sink *k, sluice_interest *want);

#endif
