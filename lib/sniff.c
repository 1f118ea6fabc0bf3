/*
 * sniff.c — image type and size from the first bytes of a body.
 *
 * Every format is read as a short sequence of fixed-size records (a header,
 * a marker, a segment length, a frame header) and gaps to pass over (JPEG
 * segments). So the whole machine is: collect `need` bytes of the current
 * record into _buf (at most 24, the PNG header), then decide the next record
 * or gap; or drop `_skip` bytes without looking. Chunk boundaries only ever
 * pause a collection or a gap, which is why the answer cannot depend on
 * them. Fixed bytes of a record are checked as they arrive, so a body that
 * is not an image is told apart at its first wrong byte.
 *
 * The gaps dominate a JPEG (EXIF and ICC segments of tens of KiB before the
 * SOF): they cost one subtraction per chunk, not a scan.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum phase {
    PH_START = 0, /* first byte: which format */
    PH_PNG,       /* signature, IHDR length and type, width, height */
    PH_GIF,       /* GIF87a / GIF89a, logical screen width, height */
    PH_RIFF,      /* RIFF size WEBP, then the first chunk's fourcc and size */
    PH_VP8,       /* frame tag, start code, 14-bit width and height */
    PH_VP8L,      /* signature, packed width-1 and height-1 */
    PH_VP8X,      /* flags, reserved, 24-bit canvas width-1 and height-1 */
    PH_SOI,       /* FF D8, then the FF of the first marker */
    PH_JPEG_FF,   /* the FF that starts the next marker */
    PH_JPEG_MARKER, /* marker code, or FF fill bytes before it */
    PH_JPEG_LEN,  /* segment length (includes its own two bytes) */
    PH_JPEG_SOF,  /* length, precision, height, width */
    PH_SKIP       /* pass over _skip bytes, then PH_JPEG_FF */
};

/* Bytes each record needs, and its fixed bytes ('?' matches any byte; no
 * fixed byte below is '?'). */
static const struct {
    uint8_t need;
    uint8_t fixed_len;
    const char *fixed;
} records[] = {
    [PH_START] = {1, 0, ""},
    [PH_PNG] = {24, 16, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"},
    [PH_GIF] = {10, 6, "GIF8?a"},
    [PH_RIFF] = {20, 15, "RIFF????WEBPVP8"},
    [PH_VP8] = {10, 6, "???\x9d\x01\x2a"},
    [PH_VP8L] = {5, 1, "\x2f"},
    [PH_VP8X] = {10, 0, ""},
    [PH_SOI] = {3, 3, "\xff\xd8\xff"},
    [PH_JPEG_FF] = {1, 1, "\xff"},
    [PH_JPEG_MARKER] = {1, 0, ""},
    [PH_JPEG_LEN] = {2, 0, ""},
    [PH_JPEG_SOF] = {7, 0, ""},
};

static void step(sluice_sniff *s);

void sluice_sniff_init(sluice_sniff *s)
{
    memset(s, 0, sizeof *s);
}

sluice_sniff_state sluice_sniff_feed(sluice_sniff *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len && s->state == SLUICE_SNIFF_UNDECIDED) {
        size_t n = SLUICE_SNIFF_LIMIT - s->_pos; /* > 0 while undecided */
        if (n > len)
            n = len;
        if (s->_phase == PH_SKIP) {
            if (n > s->_skip)
                n = s->_skip;
            s->_skip -= (uint32_t)n;
            s->_pos += (uint32_t)n;
            if (!s->_skip)
                s->_phase = PH_JPEG_FF;
        } else {
            size_t from = s->_have, need = records[s->_phase].need;
            if (n > need - from)
                n = need - from;
            memcpy(s->_buf + from, p, n);
            s->_have = (uint8_t)(from + n);
            s->_pos += (uint32_t)n;
            const char *fixed = records[s->_phase].fixed;
            size_t fixed_end = records[s->_phase].fixed_len;
            for (size_t i = from; i < s->_have && i < fixed_end; i++)
                if (fixed[i] != '?' && s->_buf[i] != (unsigned char)fixed[i])
                    s->state = SLUICE_SNIFF_NONE;
            if (s->state == SLUICE_SNIFF_UNDECIDED && s->_have == need) {
                s->_have = 0;
                step(s);
            }
        }
        p += n;
        len -= n;
        if (s->state == SLUICE_SNIFF_UNDECIDED && s->_pos == SLUICE_SNIFF_LIMIT)
            s->state = SLUICE_SNIFF_NONE; /* silent if undecided by then */
    }
    return s->state;
}

sluice_sniff_state sluice_sniff_end(sluice_sniff *s)
{
    if (s->state == SLUICE_SNIFF_UNDECIDED)
        s->state = SLUICE_SNIFF_NONE;
    return s->state;
}

const char *sluice_sniff_type_name(sluice_image_type t)
{
    switch (t) {
    case SLUICE_IMAGE_PNG:
        return "png";
    case SLUICE_IMAGE_JPEG:
        return "jpeg";
    case SLUICE_IMAGE_GIF:
        return "gif";
    case SLUICE_IMAGE_WEBP:
        return "webp";
    default:
        return "";
    }
}

ssize_t sluice_sniff_format(const sluice_sniff *s, char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0';
    if (s->state != SLUICE_SNIFF_FOUND)
        return SLUICE_EINVAL;
    int n = snprintf(buf, cap, "%s %" PRIu32 "x%" PRIu32, sluice_sniff_type_name(s->type),
                     s->width, s->height);
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = '\0';
        return SLUICE_ERANGE;
    }
    return n;
}

void sluice_sniff_tap(void *ud, const sluice_bytes *chunk)
{
    sluice_sniff_feed(ud, chunk->data, chunk->len);
}

/* ---- records ----------------------------------------------------------------- */

static uint32_t be16(const unsigned char *b)
{
    return (uint32_t)b[0] << 8 | b[1];
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint32_t le16(const unsigned char *b)
{
    return (uint32_t)b[1] << 8 | b[0];
}

static uint32_t le24(const unsigned char *b)
{
    return (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[3] << 24 | le24(b);
}

static void found(sluice_sniff *s, sluice_image_type t, uint32_t w, uint32_t h)
{
    if (w == 0 || h == 0) {
        s->state = SLUICE_SNIFF_NONE;
        return;
    }
    s->state = SLUICE_SNIFF_FOUND;
    s->type = t;
    s->width = w;
    s->height = h;
}

static void none(sluice_sniff *s)
{
    s->state = SLUICE_SNIFF_NONE;
}

static void next(sluice_sniff *s, enum phase ph)
{
    s->_phase = (uint8_t)ph;
}

/* Frame headers whose size is the image's: SOF0-3, 5-7, 9-11, 13-15 (C4 is
 * DHT, C8 JPG, CC DAC), and DHP, which sizes a hierarchical image whose
 * later frames are its smaller stages. */
static int is_frame_header(unsigned m)
{
    return (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) || m == 0xde;
}

static void jpeg_marker(sluice_sniff *s, unsigned m)
{
    if (m == 0xff) /* fill byte: the marker code is still to come */
        return;
    if (is_frame_header(m))
        next(s, PH_JPEG_SOF);
    else if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) /* TEM, RSTn: no length */
        next(s, PH_JPEG_FF);
    else if (m == 0x00 || m == 0xd8 || m == 0xd9 || m == 0xda)
        none(s); /* stray 00, second SOI, EOI or scan data before any frame */
    else
        next(s, PH_JPEG_LEN); /* APPn, DQT, DHT, COM, DRI, ...: skip by length */
}

/* The first byte names the format; it is also the first of its header. */
static void start(sluice_sniff *s, unsigned char c)
{
    s->_have = 1;
    switch (c) {
    case 0x89:
        next(s, PH_PNG);
        break;
    case 'G':
        next(s, PH_GIF);
        break;
    case 'R':
        next(s, PH_RIFF);
        break;
    case 0xff:
        next(s, PH_SOI);
        break;
    default:
        none(s);
    }
}

/* WebP: the RIFF header picks the first chunk, whose header has the size. */
static void webp(sluice_sniff *s, enum phase ph, const unsigned char *b)
{
    uint32_t v;
    switch (ph) {
    case PH_RIFF:
        v = le32(b + 16); /* the chunk's size */
        if (b[15] == ' ' && v >= 10)
            next(s, PH_VP8);
        else if (b[15] == 'L' && v >= 5)
            next(s, PH_VP8L);
        else if (b[15] == 'X' && v == 10)
            next(s, PH_VP8X);
        else
            none(s);
        break;
    case PH_VP8:
        /* frame tag: bit 0 clear on a key frame, bits 1-3 the profile
         * (0..3), bit 4 set when shown; only key frames carry the size */
        v = b[0];
        if ((v & 1) || ((v >> 1) & 7) > 3 || !(v & 0x10))
            none(s);
        else
            found(s, SLUICE_IMAGE_WEBP, le16(b + 6) & 0x3fff, le16(b + 8) & 0x3fff);
        break;
    case PH_VP8L:
        v = le32(b + 1); /* 14 bits w-1, 14 bits h-1, alpha, 3-bit version */
        if (v >> 29)
            none(s);
        else
            found(s, SLUICE_IMAGE_WEBP, (v & 0x3fff) + 1, ((v >> 14) & 0x3fff) + 1);
        break;
    default: /* PH_VP8X */
        found(s, SLUICE_IMAGE_WEBP, le24(b + 4) + 1, le24(b + 7) + 1);
        break;
    }
}

/* JPEG: markers and segments up to the first frame header. */
static void jpeg(sluice_sniff *s, enum phase ph, const unsigned char *b)
{
    uint32_t len;
    switch (ph) {
    case PH_SOI:
    case PH_JPEG_FF:
        next(s, PH_JPEG_MARKER);
        break;
    case PH_JPEG_MARKER:
        jpeg_marker(s, b[0]);
        break;
    case PH_JPEG_LEN:
        len = be16(b);
        if (len < 2)
            none(s);
        else if (len == 2)
            next(s, PH_JPEG_FF);
        else if (s->_pos + (len - 2) >= SLUICE_SNIFF_LIMIT)
            none(s); /* the next marker lies past the limit: say so now */
        else {
            s->_skip = len - 2;
            next(s, PH_SKIP);
        }
        break;
    default: /* PH_JPEG_SOF: 8 bytes of header and 3 per component, >= 1 */
        if (be16(b) < 11)
            none(s);
        else
            found(s, SLUICE_IMAGE_JPEG, be16(b + 5), be16(b + 3));
        break;
    }
}

/* A record is complete in _buf: decide. */
static void step(sluice_sniff *s)
{
    const unsigned char *b = s->_buf;
    enum phase ph = (enum phase)s->_phase;
    if (ph == PH_START) {
        start(s, b[0]);
    } else if (ph == PH_PNG) {
        uint32_t w = be32(b + 16), h = be32(b + 20);
        if (w > 0x7fffffff || h > 0x7fffffff)
            none(s);
        else
            found(s, SLUICE_IMAGE_PNG, w, h);
    } else if (ph == PH_GIF) {
        if (b[4] != '7' && b[4] != '9')
            none(s);
        else
            found(s, SLUICE_IMAGE_GIF, le16(b + 6), le16(b + 8));
    } else if (ph >= PH_RIFF && ph <= PH_VP8X) {
        webp(s, ph, b);
    } else if (ph >= PH_SOI && ph <= PH_JPEG_SOF) {
        jpeg(s, ph, b);
    } /* PH_SKIP is not a record: sluice_sniff_feed passes over it */
}
