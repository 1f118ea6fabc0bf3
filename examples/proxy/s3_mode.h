/*
 * s3_mode.h — sluice-proxy's S3 mode (--s3 http://HOST:PORT/BUCKET[/PREFIX]):
 * request bodies stored as objects through the library's S3 upload sink,
 * objects read back with signed GetObject / HeadObject requests that go
 * through the proxy's ordinary upstream path. Part of the proxy, not of the
 * library; it uses the public API only.
 *
 *   start-up   s3_mode_parse_url (--s3), s3_mode_setup (region, credentials
 *              from the environment, part size, the store's pool)
 *   PUT/POST   s3_mode_key, s3_upload_new, s3_upload_step until settled,
 *              s3_upload_answer (the JSON), s3_upload_free
 *   GET/HEAD   s3_mode_key, s3_mode_object_head (the signed head to send)
 */
#ifndef SLUICE_EXAMPLES_S3_MODE_H
#define SLUICE_EXAMPLES_S3_MODE_H

#include "../common/net.h"
#include "../common/server.h"

#include <sluice.h>

#define S3_MODE_MAX_KEY 1024 /* S3's limit on a key's bytes (prefix included) */
#define S3_MODE_MAX_BUCKET 63

typedef struct s3_mode {
    int on;                               /* --s3 given */
    net_addr store;                       /* where the store listens */
    char host[sizeof ((net_addr *)0)->text]; /* its Host header */
    char bucket[S3_MODE_MAX_BUCKET + 1];
    char prefix[S3_MODE_MAX_KEY + 1];     /* decoded, no trailing '/' */
    size_t prefix_len;
    const char *region_opt;               /* --s3-region, else NULL */
    char region[SLUICE_SIGV4_MAX_REGION + 1];
    sluice_sigv4_credentials cred;        /* strings from the environment */
    size_t part_size;                     /* --s3-part-size; 0: the sink's */
    sluice_pool *pool;                    /* the sink's own blocks (answers) */
    int part_slots;                       /* uploads of unknown length that
                                             may hold a part now (per worker) */
} s3_mode;

/* Parses --s3's URL into m. 0, or -1 with a message on stderr. */
int s3_mode_parse_url(s3_mode *m, const char *url);

/*
 * After the options: region (--s3-region, $AWS_REGION, us-east-1),
 * credentials ($AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, optional
 * $AWS_SESSION_TOKEN), the part size against the memory budget, and the
 * store's pool. 0, or -1 with a message on stderr (the proxy exits 2).
 */
int s3_mode_setup(s3_mode *m, size_t max_memory);

/* Frees what s3_mode_setup made. */
void s3_mode_close(s3_mode *m);

/*
 * The object key for a request target: PREFIX/K, K being the target's path
 * without its leading '/', percent-decoded (the query is not part of it).
 * Writes it into key (S3_MODE_MAX_KEY + 1 bytes, NUL-terminated). Returns
 * its length, or -1 when the target names no valid key (not origin-form, a
 * bad %-escape, %00, empty, not UTF-8, longer than S3_MODE_MAX_KEY): 400.
 */
int s3_mode_key(const s3_mode *m, const char *target, size_t len, char *key);

/*
 * The signed head of a GetObject / HeadObject for key (rq's method; its
 * Range and conditional fields passed on, the rest dropped). With
 * content_length >= 0 a Content-Length field is added (a GET that came with
 * "Content-Length: 0"). *out holds one reference. 0 or a negative code.
 */
int s3_mode_object_head(const s3_mode *m, sluice_pool *pool, const sluice_http_request *rq,
                        const char *key, size_t key_len, int64_t content_length,
                        sluice_bytes *out);

/* ---- one upload ----------------------------------------------------------- */

typedef struct s3_upload s3_upload;

typedef struct s3_upload_config {
    const char *key;          /* from s3_mode_key */
    size_t key_len;
    int64_t length;           /* body length, or SLUICE_S3_UNKNOWN_LENGTH */
    const char *content_type; /* the object's; NULL: application/octet-stream */
    size_t content_type_len;
    uint32_t timeout_ms;      /* the store's idle timeout */
    srv_conn *conn;           /* whose watches the store's fds are */
} s3_upload_config;

/*
 * An upload of src (borrowed; the caller closes it after the upload) as an
 * object. The sink's own blocks come from m->pool, the body's with src.
 * 0; 1 when the length is unknown and as many such uploads as the memory
 * budget holds parts are running (call again later: nothing was started);
 * or a negative code.
 */
int s3_upload_new(s3_mode *m, const s3_upload_config *uc, sluice_stream *src, s3_upload **out);

/*
 * Moves the body into the store, and after a failure drives the cleanup
 * (nothing left behind). Returns 1 while waiting (*w filled), 0 once settled:
 * then s3_upload_answer says what to reply.
 */
int s3_upload_step(s3_upload *u, sluice_interest *w);

/*
 * What to answer once settled: *status 200 (stored) or 502 (the store
 * failed) with a JSON body in *json (one reference); or, when the client's
 * body failed (truncated, over a limit, client gone), *json empty and
 * *status what sluice_http_error_status says (0: nobody to answer).
 * sniff: what the proxy's tap saw of the body. 0 or SLUICE_ENOMEM.
 */
int s3_upload_answer(s3_upload *u, const sluice_sniff *sniff, int *status, sluice_bytes *json);

/* Closes the sink and the store connections. NULL is a no-op. */
void s3_upload_free(s3_upload *u);

#endif
