/*
 * sluice/sniff.h — tells, from the first bytes of a body, whether it is a
 * PNG, JPEG, GIF or WebP image and how large (width x height), as the bytes
 * go by.
 *
 *   sluice_sniff s;
 *   sluice_sniff_init(&s);                  (or = {0})
 *   for each chunk, in order:
 *       if (sluice_sniff_feed(&s, data, len) != SLUICE_SNIFF_UNDECIDED)
 *           break;                           (later feeds change nothing)
 *   at the end of the body: sluice_sniff_end(&s);
 *
 * The answer depends only on the bytes, never on how they were split into
 * chunks. It is given as soon as the bytes decide it: PNG after its IHDR
 * (24 bytes), GIF after its logical screen size (10 bytes), WebP after the
 * first chunk's header (at most 30 bytes), JPEG at its first frame header
 * (SOFn), found by skipping segments by their lengths, so a thumbnail inside
 * an EXIF APP1 segment is never taken for the image. A hierarchical JPEG
 * reports the size in its DHP segment.
 *
 * Only the first SLUICE_SNIFF_LIMIT bytes are looked at: if they do not
 * decide, the answer is NONE. Anything that is not one of the four formats,
 * or breaks their structure before the size, is NONE (zero sizes included).
 *
 * No allocation, O(1) state; at most 24 header bytes are copied (to survive
 * chunk splits). Nothing here fails. Thread-safety: one thread per struct.
 */
#ifndef SLUICE_SNIFF_H
#define SLUICE_SNIFF_H

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_SNIFF_LIMIT (256u * 1024u)

/* Longest sluice_sniff_format() output with its NUL: "jpeg 4294967295x4294967295". */
#define SLUICE_SNIFF_FORMAT_SIZE 32

typedef enum sluice_sniff_state {
    SLUICE_SNIFF_UNDECIDED = 0,
    SLUICE_SNIFF_FOUND = 1,   /* type, width and height are set */
    SLUICE_SNIFF_NONE = 2     /* not an image we know, or not within the limit */
} sluice_sniff_state;

typedef enum sluice_image_type {
    SLUICE_IMAGE_UNKNOWN = 0,
    SLUICE_IMAGE_PNG,
    SLUICE_IMAGE_JPEG,
    SLUICE_IMAGE_GIF,
    SLUICE_IMAGE_WEBP
} sluice_image_type;

typedef struct sluice_sniff {
    /* The answer: read these, do not write them. */
    sluice_sniff_state state;
    sluice_image_type type;   /* UNKNOWN unless FOUND */
    uint32_t width, height;   /* 0 unless FOUND */

    uint32_t _pos;            /* bytes looked at so far */
    uint32_t _skip;           /* bytes still to pass over unread */
    uint8_t _phase;
    uint8_t _have;            /* bytes collected in _buf */
    unsigned char _buf[24];
} sluice_sniff;

/* Resets s to "nothing seen yet" (the same as all-zero). */
SLUICE_API void sluice_sniff_init(sluice_sniff *s);

/*
 * Looks at the next len bytes of the body and returns s->state. Once FOUND
 * or NONE, further calls return it unchanged. data may be NULL if len is 0.
 */
SLUICE_API sluice_sniff_state sluice_sniff_feed(sluice_sniff *s, const void *data, size_t len);

/* The body ended: UNDECIDED becomes NONE. Returns s->state. */
SLUICE_API sluice_sniff_state sluice_sniff_end(sluice_sniff *s);

/* "png", "jpeg", "gif", "webp", or "" for UNKNOWN. Static string. */
SLUICE_API const char *sluice_sniff_type_name(sluice_image_type t);

/*
 * Writes "<png|jpeg|gif|webp> <W>x<H>" and a NUL into buf, for a response
 * header value (e.g. "png 640x480"). Returns the length without the NUL.
 * Errors: SLUICE_EINVAL if s is not FOUND, SLUICE_ERANGE if cap is too small
 * (SLUICE_SNIFF_FORMAT_SIZE always fits); then buf is "" when cap > 0.
 */
SLUICE_API ssize_t sluice_sniff_format(const sluice_sniff *s, char *buf, size_t cap);

/*
 * A sluice_tap_fn: feeds each chunk passing through a tap to the sluice_sniff
 * in ud (owned by the host, who calls sluice_sniff_end at the stream's EOF).
 * Costs nothing per chunk once decided.
 */
SLUICE_API void sluice_sniff_tap(void *ud, const sluice_bytes *chunk);

#ifdef __cplusplus
}
#endif

#endif
