/*
 * test_sniff.c — the image sniffer on hand-built images, fed whole, split at
 * every point (and every pair of points for short inputs), one byte at a time
 * and in random chunks: always the same answer, decided at the same byte.
 * Every piece is fed from its own exact-size allocation, so a read past a
 * chunk's end shows up under ASan and valgrind.
 */
#include "harness.h"
#include "sluice/sniff.h"

#include <stdlib.h>

typedef struct result {
    sluice_sniff_state state; /* after feeding everything, before end */
    sluice_image_type type;
    uint32_t w, h;
    size_t decided_at;        /* bytes fed when the state left UNDECIDED; 0: never */
} result;

static void feed_piece(sluice_sniff *s, const unsigned char *d, size_t n, size_t *fed,
                       result *r)
{
    unsigned char *copy = malloc(n ? n : 1);
    memcpy(copy, d, n);
    sluice_sniff_state before = s->state;
    sluice_sniff_state st = sluice_sniff_feed(s, copy, n);
    free(copy);
    *fed += n;
    EXPECT_EQ(st, s->state);
    if (before == SLUICE_SNIFF_UNDECIDED && st != SLUICE_SNIFF_UNDECIDED)
        r->decided_at = *fed; /* exact only when pieces are 1 byte */
    if (before != SLUICE_SNIFF_UNDECIDED)
        EXPECT_EQ(st, before); /* decided stays decided */
}

/* Feeds d in pieces ending at cuts[0] < cuts[1] < ... < n. */
static result run(const unsigned char *d, size_t n, const size_t *cuts, size_t ncuts)
{
    sluice_sniff s = {0};
    result r = {0};
    size_t off = 0, fed = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        feed_piece(&s, d + off, end - off, &fed, &r);
        off = end;
    }
    r.state = s.state;
    r.type = s.type;
    r.w = s.width;
    r.h = s.height;
    return r;
}

static result run_bytewise(const unsigned char *d, size_t n)
{
    sluice_sniff s;
    sluice_sniff_init(&s);
    result r = {0};
    size_t fed = 0;
    for (size_t i = 0; i < n; i++)
        feed_piece(&s, d + i, 1, &fed, &r);
    r.state = s.state;
    r.type = s.type;
    r.w = s.width;
    r.h = s.height;
    return r;
}

#define EXPECT_SAME(got, want)                                                \
    do {                                                                     \
        EXPECT_EQ((got).state, (want).state);                                \
        EXPECT_EQ((got).type, (want).type);                                  \
        EXPECT_EQ((got).w, (want).w);                                        \
        EXPECT_EQ((got).h, (want).h);                                        \
    } while (0)

/*
 * Checks d against the expected answer: byte by byte (which also pins the
 * byte that decides), whole, split at every point (every pair for short
 * inputs, random cuts for long ones), and every truncation before the
 * deciding byte (UNDECIDED, then NONE at the end).
 */
static void check(const char *name, const unsigned char *d, size_t n, sluice_sniff_state state,
                  sluice_image_type type, uint32_t w, uint32_t h, size_t decided_at)
{
    int before = harness_failed_now();
    result want = {state, type, w, h, decided_at};
    if (state != SLUICE_SNIFF_FOUND)
        want.type = SLUICE_IMAGE_UNKNOWN, want.w = want.h = 0;

    result r = run_bytewise(d, n);
    EXPECT_SAME(r, want);
    EXPECT_EQ(r.decided_at, decided_at);

    r = run(d, n, NULL, 0);
    EXPECT_SAME(r, want);
    if (n <= 4096) {
        for (size_t i = 0; i <= n; i++) {
            size_t cut[2] = {i, 0};
            r = run(d, n, cut, 1);
            EXPECT_SAME(r, want);
            if (n <= 160)
                for (size_t j = i; j <= n; j++) {
                    cut[1] = j;
                    r = run(d, n, cut, 2);
                    EXPECT_SAME(r, want);
                }
        }
    }
    unsigned long long seed = 0x5eed + n;
    for (int iter = 0; iter < 20; iter++) {
        size_t cuts[64], nc = 0, at = 0;
        while (nc < 64) {
            at += 1 + (size_t)(t_rand(&seed) % (n / 16 + 3));
            if (at >= n)
                break;
            cuts[nc++] = at;
        }
        r = run(d, n, cuts, nc);
        EXPECT_SAME(r, want);
    }

    /* truncated before the deciding byte: undecided, then NONE at the end */
    size_t stop = decided_at ? decided_at - 1 : n;
    for (size_t k = 0; k <= stop; k += (stop > 4096 ? 997 : 1)) {
        sluice_sniff s = {0};
        EXPECT_EQ(sluice_sniff_feed(&s, d, k), SLUICE_SNIFF_UNDECIDED);
        EXPECT_EQ(sluice_sniff_end(&s), SLUICE_SNIFF_NONE);
        EXPECT_EQ(s.type, SLUICE_IMAGE_UNKNOWN);
    }
    /* ending after the answer changes nothing */
    sluice_sniff s = {0};
    sluice_sniff_feed(&s, d, n);
    EXPECT_EQ(sluice_sniff_end(&s), state == SLUICE_SNIFF_FOUND ? state : SLUICE_SNIFF_NONE);
    if (harness_failed_now() != before)
        fprintf(stderr, "  ... in case %s\n", name);
}

#define CHECK(name, arr, state, type, w, h, at)                               \
    check(name, arr, sizeof(arr), state, type, w, h, at)
#define FOUND SLUICE_SNIFF_FOUND
#define NONE SLUICE_SNIFF_NONE
#define UNDECIDED SLUICE_SNIFF_UNDECIDED

/* ---- PNG, GIF --------------------------------------------------------------- */

static const unsigned char png_640x480[] = {
    0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',          /* signature */
    0, 0, 0, 13, 'I', 'H', 'D', 'R',                     /* IHDR, 13 bytes */
    0, 0, 0x02, 0x80, 0, 0, 0x01, 0xe0,                  /* 640 x 480 */
    8, 6, 0, 0, 0, 0x35, 0xd1, 0xdc, 0xe4,               /* RGBA8, CRC */
    0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82,
};

TEST(sniff_png)
{
    CHECK("png", png_640x480, FOUND, SLUICE_IMAGE_PNG, 640, 480, 24);
    unsigned char big[24];
    memcpy(big, png_640x480, 24);
    big[16] = 0x80; /* width >= 2^31: not a PNG */
    CHECK("png width 2^31", big, NONE, 0, 0, 0, 24);
    memcpy(big, png_640x480, 24);
    memset(big + 20, 0, 4); /* height 0 */
    CHECK("png height 0", big, NONE, 0, 0, 0, 24);
    memcpy(big, png_640x480, 24);
    big[12] = 'I', big[13] = 'D', big[14] = 'A', big[15] = 'T'; /* IDAT first */
    CHECK("png without IHDR", big, NONE, 0, 0, 0, 14);
    memcpy(big, png_640x480, 24);
    big[11] = 12; /* IHDR length must be 13 */
    CHECK("png IHDR length 12", big, NONE, 0, 0, 0, 12);
}

static const unsigned char gif89_3x2[] = {
    'G', 'I', 'F', '8', '9', 'a', 3, 0, 2, 0, 0xf0, 0, 0, /* screen 3 x 2 */
    0, 0, 0, 0xff, 0xff, 0xff, 0x2c, 0, 0, 0, 0, 3, 0, 2, 0, 0, 0x02, 0x02, 0x44, 0x01, 0, 0x3b,
};
static const unsigned char gif87_320x200[] = {'G', 'I', 'F', '8', '7', 'a', 0x40, 0x01, 0xc8, 0x00};

TEST(sniff_gif)
{
    CHECK("gif89a", gif89_3x2, FOUND, SLUICE_IMAGE_GIF, 3, 2, 10);
    CHECK("gif87a", gif87_320x200, FOUND, SLUICE_IMAGE_GIF, 320, 200, 10);
    static const unsigned char gif88[] = {'G', 'I', 'F', '8', '8', 'a', 3, 0, 2, 0};
    CHECK("gif88a", gif88, NONE, 0, 0, 0, 10);
    static const unsigned char zero[] = {'G', 'I', 'F', '8', '9', 'a', 0, 0, 2, 0};
    CHECK("gif width 0", zero, NONE, 0, 0, 0, 10);
    static const unsigned char get[] = "GET / HTTP/1.1\r\n";
    CHECK("GET is not GIF", get, NONE, 0, 0, 0, 2);
}

/* ---- WebP ------------------------------------------------------------------- */

static const unsigned char webp_vp8_640x480[] = {
    'R', 'I', 'F', 'F', 30, 0, 0, 0, 'W', 'E', 'B', 'P',
    'V', 'P', '8', ' ', 18, 0, 0, 0,
    0x50, 0x02, 0x00,                   /* key frame, profile 0, shown, part 18 */
    0x9d, 0x01, 0x2a,                   /* start code */
    0x80, 0x02, 0xe0, 0x01,             /* 640, 480 (scale bits 0) */
    0, 0, 0, 0, 0, 0, 0, 0,
};

static const unsigned char webp_vp8l_400x300[] = {
    'R', 'I', 'F', 'F', 26, 0, 0, 0, 'W', 'E', 'B', 'P',
    'V', 'P', '8', 'L', 6, 0, 0, 0,
    0x2f, 0x8f, 0xc1, 0x4a, 0x10,       /* 399 | 299 << 14 | alpha << 28 */
    0, 0,
};

static const unsigned char webp_vp8x_2000x1000[] = {
    'R', 'I', 'F', 'F', 40, 0, 0, 0, 'W', 'E', 'B', 'P',
    'V', 'P', '8', 'X', 10, 0, 0, 0,
    0x10, 0, 0, 0,                      /* flags: alpha */
    0xcf, 0x07, 0x00, 0xe7, 0x03, 0x00, /* 1999, 999 (24-bit, minus one) */
    'A', 'L', 'P', 'H', 2, 0, 0, 0, 0, 0,
};

TEST(sniff_webp)
{
    CHECK("vp8", webp_vp8_640x480, FOUND, SLUICE_IMAGE_WEBP, 640, 480, 30);
    CHECK("vp8l", webp_vp8l_400x300, FOUND, SLUICE_IMAGE_WEBP, 400, 300, 25);
    CHECK("vp8x", webp_vp8x_2000x1000, FOUND, SLUICE_IMAGE_WEBP, 2000, 1000, 30);

    unsigned char b[sizeof webp_vp8_640x480];
    memcpy(b, webp_vp8_640x480, sizeof b);
    b[26] = 0x80, b[27] = 0xc2; /* scale bits set: size is still 640 */
    CHECK("vp8 scaled", b, FOUND, SLUICE_IMAGE_WEBP, 640, 480, 30);
    b[20] = 0x51; /* inter frame */
    CHECK("vp8 inter frame", b, NONE, 0, 0, 0, 30);
    memcpy(b, webp_vp8_640x480, sizeof b);
    b[20] = 0x40; /* not shown */
    CHECK("vp8 hidden", b, NONE, 0, 0, 0, 30);
    memcpy(b, webp_vp8_640x480, sizeof b);
    b[24] = 0x02; /* bad start code */
    CHECK("vp8 start code", b, NONE, 0, 0, 0, 25);

    unsigned char l[sizeof webp_vp8l_400x300];
    memcpy(l, webp_vp8l_400x300, sizeof l);
    l[24] |= 0x20; /* version 1 */
    CHECK("vp8l version", l, NONE, 0, 0, 0, 25);
    memcpy(l, webp_vp8l_400x300, sizeof l);
    l[20] = 0x2e;
    CHECK("vp8l signature", l, NONE, 0, 0, 0, 21);
    memcpy(l, webp_vp8l_400x300, sizeof l);
    memset(l + 21, 0xff, 3), l[24] = 0x0f; /* 16384 x 16384, the largest */
    CHECK("vp8l max", l, FOUND, SLUICE_IMAGE_WEBP, 16384, 16384, 25);

    unsigned char x[sizeof webp_vp8x_2000x1000];
    memcpy(x, webp_vp8x_2000x1000, sizeof x);
    memset(x + 24, 0xff, 3), memset(x + 27, 0, 3); /* 2^24 x 1 */
    CHECK("vp8x 24-bit", x, FOUND, SLUICE_IMAGE_WEBP, 16777216, 1, 30);
    x[16] = 9; /* VP8X chunk is exactly 10 bytes */
    CHECK("vp8x size", x, NONE, 0, 0, 0, 20);

    static const unsigned char wave[] = {'R', 'I', 'F', 'F', 4, 0, 0, 0, 'W', 'A', 'V', 'E'};
    CHECK("riff wave", wave, NONE, 0, 0, 0, 10);
    static const unsigned char alph[] = {'R', 'I', 'F', 'F', 4, 0, 0, 0, 'W', 'E', 'B', 'P',
                                         'V', 'P', '8', 'Y', 10, 0, 0, 0};
    CHECK("unknown first chunk", alph, NONE, 0, 0, 0, 20);
    static const unsigned char riff_short[] = {'R', 'I', 'F', 'F', 4, 0, 0, 0, 'W', 'E', 'B'};
    CHECK("riff truncated", riff_short, UNDECIDED, 0, 0, 0, 0);
}

/* ---- JPEG ------------------------------------------------------------------- */

static const unsigned char jpeg_160x120[] = {
    0xff, 0xd8,                                               /* SOI */
    0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, /* APP0 */
    0xff, 0xdb, 0x00, 0x07, 0x00, 1, 2, 3, 4,                 /* DQT (cut short) */
    0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x78, 0x00, 0xa0,     /* SOF0: 120 high, 160 wide */
    0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
    0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x12, 0x34, /* SOS, data */
    0xff, 0xd9,
};

/* An EXIF APP1 carrying a whole 160x120 thumbnail JPEG with its own SOF0,
 * before the main image's SOF2 (progressive, 4000 x 3000). */
static const unsigned char jpeg_exif_thumb[] = {
    0xff, 0xd8,
    0xff, 0xe1, 0x00, 0x2d,                                   /* APP1, 45 */
    'E', 'x', 'i', 'f', 0, 0,
    'M', 'M', 0, 0x2a, 0, 0, 0, 8,                            /* TIFF header */
    0, 0, 0, 0, 0, 0,                                         /* empty IFD */
    0xff, 0xd8,                                               /* thumbnail */
    0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x78, 0x00, 0xa0,
    0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
    0xff, 0xd9,
    0xff, 0xfe, 0x00, 0x05, 'h', 'i', '!',                    /* COM */
    0xff, 0xc2, 0x00, 0x11, 0x08, 0x0b, 0xb8, 0x0f, 0xa0,     /* SOF2: 3000 x 4000 */
    0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
    0xff, 0xd9,
};

/* Fill bytes, standalone markers, an empty segment, and DHT/JPG/DAC segments
 * whose payloads look like frame headers; the real one is SOF1, 3 x 2. */
static const unsigned char jpeg_odd_markers[] = {
    0xff, 0xd8,
    0xff, 0xff, 0xff, 0xe0, 0x00, 0x02,                       /* fill, empty APP0 */
    0xff, 0xd0,                                               /* RST0 */
    0xff, 0x01,                                               /* TEM */
    0xff, 0xff, 0xfe, 0x00, 0x04, 0xab, 0xcd,                 /* fill, COM */
    0xff, 0xc4, 0x00, 0x09, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x01, 0x00, /* DHT */
    0xff, 0xc8, 0x00, 0x04, 0xff, 0xc1,                       /* JPG */
    0xff, 0xcc, 0x00, 0x04, 0xff, 0xc2,                       /* DAC */
    0xff, 0xff, 0xff, 0xff,
    0xff, 0xc1, 0x00, 0x0b, 0x08, 0x00, 0x02, 0x00, 0x03, 0x01, 0x01, 0x11, 0x00,
    0xff, 0xd9,
};

TEST(sniff_jpeg)
{
    CHECK("jpeg", jpeg_160x120, FOUND, SLUICE_IMAGE_JPEG, 160, 120, 38);
    CHECK("jpeg exif thumbnail", jpeg_exif_thumb, FOUND, SLUICE_IMAGE_JPEG, 4000, 3000, 65);
    CHECK("jpeg odd markers", jpeg_odd_markers, FOUND, SLUICE_IMAGE_JPEG, 3, 2, 55);
}

TEST(sniff_jpeg_which_markers_are_frames)
{
    /* SOI, marker m with an 11-byte SOF-shaped payload (5 high, 7 wide), EOI */
    for (unsigned m = 0xc0; m <= 0xdf; m++) {
        if (m == 0xd8 || m == 0xd9 || m == 0xda || (m >= 0xd0 && m <= 0xd7))
            continue;
        unsigned char b[] = {0xff, 0xd8, 0xff, (unsigned char)m, 0x00, 0x0b, 0x08, 0x00, 0x05,
                             0x00, 0x07, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9};
        int frame = (m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) || m == 0xde;
        char name[32];
        snprintf(name, sizeof name, "marker %02x", m);
        if (frame)
            CHECK(name, b, FOUND, SLUICE_IMAGE_JPEG, 7, 5, 11);
        else /* skipped by its length; then EOI without a frame */
            CHECK(name, b, NONE, 0, 0, 0, 17);
    }
}

TEST(sniff_jpeg_without_a_frame_is_none)
{
    static const unsigned char eoi[] = {0xff, 0xd8, 0xff, 0xd9};
    CHECK("eoi", eoi, NONE, 0, 0, 0, 4);
    static const unsigned char sos[] = {0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 1, 0, 0, 0x3f, 0};
    CHECK("sos first", sos, NONE, 0, 0, 0, 4);
    static const unsigned char soi2[] = {0xff, 0xd8, 0xff, 0xd8};
    CHECK("second soi", soi2, NONE, 0, 0, 0, 4);
    static const unsigned char stuffed[] = {0xff, 0xd8, 0xff, 0x00};
    CHECK("ff00 outside scan", stuffed, NONE, 0, 0, 0, 4);
    static const unsigned char junk[] = {0xff, 0xd8, 0xff, 0xfe, 0x00, 0x03, 0x41, 0x42, 0xff};
    CHECK("junk between segments", junk, NONE, 0, 0, 0, 8);
    static const unsigned char len1[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x01, 0xff};
    CHECK("segment length 1", len1, NONE, 0, 0, 0, 6);
    static const unsigned char short_sof[] = {0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0a, 0x08,
                                              0x00, 0x05, 0x00, 0x07, 0x00};
    CHECK("sof length 10", short_sof, NONE, 0, 0, 0, 11);
    static const unsigned char zero_h[] = {0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08,
                                           0x00, 0x00, 0x00, 0x07, 0x01};
    CHECK("sof height 0 (DNL)", zero_h, NONE, 0, 0, 0, 11);
    static const unsigned char not_soi[] = {0xff, 0xd9, 0xff};
    CHECK("ff d9 start", not_soi, NONE, 0, 0, 0, 2);
    static const unsigned char fill_only[] = {0xff, 0xd8, 0xff, 0xff, 0xff, 0xff};
    CHECK("fill then truncated", fill_only, UNDECIDED, 0, 0, 0, 0);
    static const unsigned char mid_segment[] = {0xff, 0xd8, 0xff, 0xe1, 0x10, 0x00, 0, 0, 0};
    CHECK("inside a segment", mid_segment, UNDECIDED, 0, 0, 0, 0);
}

/* ---- the 256 KiB limit -------------------------------------------------------- */

/* SOI, then APP1 segments of the given lengths, then SOF0 (5 x 7) and EOI. */
static unsigned char *jpeg_with_segments(const size_t *lens, size_t n, size_t *out_len)
{
    size_t total = 2 + 13 + 2;
    for (size_t i = 0; i < n; i++)
        total += 2 + lens[i];
    unsigned char *b = malloc(total), *p = b;
    *p++ = 0xff, *p++ = 0xd8;
    for (size_t i = 0; i < n; i++) {
        *p++ = 0xff, *p++ = 0xe1, *p++ = (unsigned char)(lens[i] >> 8),
        *p++ = (unsigned char)lens[i];
        memset(p, 0xc0, lens[i] - 2); /* looks like SOF markers if scanned */
        p += lens[i] - 2;
    }
    static const unsigned char sof[] = {0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x07,
                                        0x00, 0x05, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9};
    memcpy(p, sof, sizeof sof);
    *out_len = total;
    return b;
}

TEST(sniff_limit_256k)
{
    const size_t L = SLUICE_SNIFF_LIMIT;
    size_t n;
    /* 2 + 3 * 65537 = 196613 bytes, then a segment placing the SOF record's
     * last byte (9 bytes from FF C0) exactly at the limit */
    size_t lens[4] = {65535, 65535, 65535, L - 196613 - 9 - 2};
    unsigned char *b = jpeg_with_segments(lens, 4, &n);
    check("sof ends at the limit", b, n, FOUND, SLUICE_IMAGE_JPEG, 5, 7, L);
    free(b);

    lens[3]++; /* one byte later: the frame header is cut by the limit */
    b = jpeg_with_segments(lens, 4, &n);
    check("sof crosses the limit", b, n, NONE, 0, 0, 0, L);
    free(b);

    lens[3] = 65535; /* the next marker is past the limit: known at its length */
    b = jpeg_with_segments(lens, 4, &n);
    check("segment crosses the limit", b, n, NONE, 0, 0, 0, 196613 + 4);
    free(b);

    /* nothing but fill bytes: NONE exactly at the limit */
    n = L + 100;
    b = malloc(n);
    memset(b, 0xff, n);
    b[1] = 0xd8;
    check("fill to the limit", b, n, NONE, 0, 0, 0, L);
    free(b);
}

/* ---- not images, formatting, tap ------------------------------------------------ */

TEST(sniff_not_images)
{
    static const unsigned char html[] = "<!doctype html><title>x</title>";
    CHECK("html", html, NONE, 0, 0, 0, 1);
    static const unsigned char json[] = "{\"a\":1}";
    CHECK("json", json, NONE, 0, 0, 0, 1);
    static const unsigned char zeros[64] = {0};
    CHECK("zeros", zeros, NONE, 0, 0, 0, 1);
    static const unsigned char png_sig_only[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    CHECK("png signature only", png_sig_only, UNDECIDED, 0, 0, 0, 0);
    static const unsigned char png_typo[] = {0x89, 'P', 'N', 'X', '\r', '\n'};
    CHECK("png typo", png_typo, NONE, 0, 0, 0, 4);

    sluice_sniff s = {0};
    EXPECT_EQ(sluice_sniff_feed(&s, NULL, 0), SLUICE_SNIFF_UNDECIDED);
    EXPECT_EQ(sluice_sniff_end(&s), SLUICE_SNIFF_NONE); /* empty body */
    EXPECT_EQ(sluice_sniff_feed(&s, png_640x480, sizeof png_640x480), SLUICE_SNIFF_NONE);
}

TEST(sniff_format)
{
    sluice_sniff s;
    sluice_sniff_init(&s);
    char buf[SLUICE_SNIFF_FORMAT_SIZE];
    memset(buf, 'X', sizeof buf);
    EXPECT_ERR(sluice_sniff_format(&s, buf, sizeof buf), SLUICE_EINVAL);
    EXPECT_STR(buf, "");
    sluice_sniff_feed(&s, png_640x480, sizeof png_640x480);
    EXPECT_EQ(sluice_sniff_format(&s, buf, sizeof buf), 11);
    EXPECT_STR(buf, "png 640x480");
    EXPECT_EQ(sluice_sniff_format(&s, buf, 12), 11); /* exactly fits */
    EXPECT_ERR(sluice_sniff_format(&s, buf, 11), SLUICE_ERANGE);
    EXPECT_STR(buf, "");
    EXPECT_ERR(sluice_sniff_format(&s, NULL, 0), SLUICE_ERANGE);

    s.type = SLUICE_IMAGE_JPEG, s.width = s.height = UINT32_MAX; /* the longest */
    EXPECT_EQ(sluice_sniff_format(&s, buf, sizeof buf), 26);
    EXPECT_STR(buf, "jpeg 4294967295x4294967295");

    const struct {
        const unsigned char *d;
        size_t n;
        const char *want;
    } v[] = {
        {gif89_3x2, sizeof gif89_3x2, "gif 3x2"},
        {jpeg_exif_thumb, sizeof jpeg_exif_thumb, "jpeg 4000x3000"},
        {webp_vp8l_400x300, sizeof webp_vp8l_400x300, "webp 400x300"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        sluice_sniff_init(&s);
        EXPECT_EQ(sluice_sniff_feed(&s, v[i].d, v[i].n), SLUICE_SNIFF_FOUND);
        EXPECT_EQ(sluice_sniff_format(&s, buf, sizeof buf), (long long)strlen(v[i].want));
        EXPECT_STR(buf, v[i].want);
    }
    EXPECT_STR(sluice_sniff_type_name(SLUICE_IMAGE_UNKNOWN), "");
    EXPECT_STR(sluice_sniff_type_name(SLUICE_IMAGE_WEBP), "webp");
}

TEST(sniff_tap_sees_a_stream_in_passing)
{
    /* the EXIF JPEG in three chunks, cut inside the APP1 length and the SOF */
    const size_t cuts[] = {5, 44, sizeof jpeg_exif_thumb};
    sluice_bytes chunks[3];
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        REQUIRE(sluice_bytes_copy_from(T_POOL, jpeg_exif_thumb + off, cuts[i] - off,
                                       &chunks[i]) == 0);
        off = cuts[i];
    }
    sluice_stream *mem, *tapped;
    sluice_sink *out;
    sluice_sniff s;
    sluice_sniff_init(&s);
    REQUIRE(sluice_memstream_new(T_POOL, chunks, 3, 0, &mem) == 0);
    REQUIRE(sluice_tap_new(T_POOL, mem, sluice_sniff_tap, &s, &tapped) == 0);
    REQUIRE(sluice_vecsink_new(T_POOL, &out) == 0);
    sluice_pump p;
    sluice_pump_init(&p, tapped, out, NULL);
    EXPECT_ERR(sluice_pump_run(&p, 5000), 0);
    EXPECT_EQ(sluice_sniff_end(&s), SLUICE_SNIFF_FOUND);
    char buf[SLUICE_SNIFF_FORMAT_SIZE];
    EXPECT_EQ(sluice_sniff_format(&s, buf, sizeof buf), 14);
    EXPECT_STR(buf, "jpeg 4000x3000");
    unsigned char all[sizeof jpeg_exif_thumb]; /* passed through unchanged */
    EXPECT_EQ(sluice__vecsink_copy(out, all, sizeof all), sizeof all);
    EXPECT_MEM(all, sizeof all, jpeg_exif_thumb, sizeof jpeg_exif_thumb);
    sluice_stream_close(tapped);
    sluice_sink_close(out);
}
