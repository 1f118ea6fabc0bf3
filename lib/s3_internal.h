/*
 * s3_internal.h — the S3 sink's state, shared by s3.c (the sink and the
 * engine that moves requests along), s3_hold.c (the views it holds),
 * s3_put.c (the PutObject body as aws-chunked), s3_request.c (building,
 * signing and sending requests, reading and judging responses) and
 * s3_xml.c.
 */
#ifndef SLUICE_S3_INTERNAL_H
#define SLUICE_S3_INTERNAL_H

#include "internal.h"

#define S3_QUEUE_MAX (256u * 1024u) /* PutObject bytes queued before PENDING */
#define S3_XML_MAX 8192u            /* response body bytes kept for the XML */
#define S3_MAX_HEADERS 64u          /* response header fields */
#define S3_SMALL_VIEW 4096u         /* held views below this are copied */

enum s3_req { RQ_NONE = 0, RQ_PUT, RQ_CREATE, RQ_PART, RQ_COMPLETE, RQ_ABORT };
enum s3_step { ST_IDLE = 0, ST_SEND, ST_HEAD, ST_BODY };

typedef struct s3_part {
    char etag[SLUICE_S3_ETAG_SIZE];
    char sum[SLUICE_SIGV4_BASE64_SIZE(SLUICE_SHA256_SIZE)];
} s3_part;

typedef struct s3_sink {
    sluice_sink base;
    sluice_io *io;
    bool own_io;              /* io came from connect: close it            */
    int (*connect)(void *ud, sluice_io **io);
    void *connect_ud;
    sluice_reader *rd;        /* the connection's reader, made on first use */
    sluice_sink *w;           /* the current request's raw writer           */
    sluice_stream *body;      /* the current response's body               */

    /* configuration (strings in one allocation) */
    char *strings;
    size_t strings_len;
    const char *host, *bucket, *key, *region, *content_type, *payload;
    size_t key_len;
    sluice_sigv4_credentials cred;
    int64_t length;           /* < 0: unknown (multipart)                   */
    uint64_t part_size;
    uint32_t idle_ms;
    bool signed_mode;
    time_t fixed_time;        /* tests: sign at this time                   */

    /* the request in flight */
    enum s3_req req;
    enum s3_step step;
    bool body_queued;         /* the whole body is in q (or written)       */
    int write_err;            /* the body could not be sent: its error, if
                                 no early answer explains it               */
    sluice_sigv4_signer signer;
    sluice_interest want;
    sluice__idle idle;        /* waiting for a response head               */
    size_t seen;              /* reader bytes when the wait last progressed */

    /* views waiting for the writer */
    sluice_bytes *q;
    size_t qhead, qn, qcap, qbytes;
    sluice_block *scratch;    /* chunk lines, trailers, XML                 */
    size_t scratch_off;

    /* PutObject */
    bool started;
    uint64_t put_left_total;  /* bytes still expected from the stream       */
    uint64_t put_left;        /* bytes still to frame                       */
    uint64_t chunk_left;      /* bytes left in the current chunk            */

    /* digests */
    sluice_sha256_ctx fresh;  /* initialised once: copies skip the CPU probe */
    sluice_sha256_ctx whole;  /* the object                                  */
    sluice_sha256_ctx fctx;   /* the part (or signed chunk) being filled    */

    /* multipart */
    sluice_bytes *fill;       /* the part being filled                      */
    size_t fn, fcap;
    uint64_t fbytes;
    sluice_bytes carry;       /* what did not fit in the full part          */
    sluice_block *cblock;     /* small held views are copied here          */
    size_t coff;
    s3_part *parts;
    size_t np, pcap;
    bool finishing, aborting, abort_sent, completed, conn_dead;
    sluice_s3_cleanup cleanup;

    /* the response */
    int status;
    bool keep_alive;
    char *xml;                /* first S3_XML_MAX bytes of the body          */
    size_t xml_len;
    char resp_etag[SLUICE_S3_ETAG_SIZE];
    char resp_sum[SLUICE_S3_ETAG_SIZE];

    /* results */
    uint64_t accepted;
    char sha256_hex[SLUICE_SHA256_HEX_SIZE];
    char etag[SLUICE_S3_ETAG_SIZE];
    char checksum[SLUICE_S3_ETAG_SIZE];
    char upload_id[SLUICE_S3_UPLOAD_ID_SIZE];
    char error_code[SLUICE_S3_CODE_SIZE];
    char error_message[SLUICE_S3_MESSAGE_SIZE];
} s3_sink;

/* s3.c: the sink and the engine */
sluice_poll sluice__s3_fail(s3_sink *s, int code, const char *why);
void sluice__s3_conn_lost(s3_sink *s);
sluice_poll sluice__s3_drive(s3_sink *s);

/* s3_hold.c: views held. Each takes v's reference (also on error). */
int sluice__s3_push(s3_sink *s, sluice_bytes *v);                /* to the queue */
int sluice__s3_scratch(s3_sink *s, const void *data, size_t n, sluice_bytes *out);
int sluice__s3_push_copy(s3_sink *s, const void *data, size_t n); /* a copy, queued */
int sluice__s3_fill_add(s3_sink *s, sluice_bytes *v);            /* to the part */

/* s3_put.c: the PutObject body. put_frame takes v's reference. */
int sluice__s3_put_begin(s3_sink *s);
int sluice__s3_put_frame(s3_sink *s, sluice_bytes *v);
int sluice__s3_put_signed_chunk(s3_sink *s);
int sluice__s3_put_end(s3_sink *s);
sluice_poll sluice__s3_drive(s3_sink *s);

/* s3_request.c */
/* Builds, signs and queues request `kind` (head into a new writer, body into
 * the queue), step ST_SEND. Errors (also recorded as the sink's): < 0. */
int sluice__s3_request(s3_sink *s, enum s3_req kind);
/* ST_HEAD / ST_BODY: READY when the step moved on. */
sluice_poll sluice__s3_read_head(s3_sink *s);
sluice_poll sluice__s3_read_body(s3_sink *s);

#endif
