/*
 * fuzz_sniff.c — the sniffer must give the same answer however the bytes
 * are split, and never read outside them.
 *
 * Input: byte 0 bounds the chunk sizes (1..64), byte 1 seeds the sequence
 * of sizes; the rest is the body. The body is fed whole, one byte at a
 * time and in the chosen chunks, each chunk from its own exact-size copy.
 */
#include "sluice.h"
#include "testing.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void feed_copy(sluice_sniff *s, const uint8_t *d, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (!c)
        abort();
    memcpy(c, d, n);
    sluice_sniff_feed(s, c, n);
    free(c);
}

static void same(const sluice_sniff *a, const sluice_sniff *b)
{
    if (a->state != b->state || a->type != b->type || a->width != b->width ||
        a->height != b->height)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t maxc = 1 + data[0] % 64;
    uint32_t x = 0x9e3779b9u ^ data[1];
    const uint8_t *body = data + 2;
    size_t n = size - 2;

    sluice_sniff whole, bytes, chunks;
    sluice_sniff_init(&whole);
    sluice_sniff_init(&bytes);
    sluice_sniff_init(&chunks);
    feed_copy(&whole, body, n);
    for (size_t i = 0; i < n; i++)
        feed_copy(&bytes, body + i, 1);
    for (size_t off = 0; off < n;) {
        x = x * 1664525u + 1013904223u;
        size_t len = 1 + (x >> 16) % maxc;
        if (len > n - off)
            len = n - off;
        feed_copy(&chunks, body + off, len);
        off += len;
    }
    same(&whole, &bytes);
    same(&whole, &chunks);

    if (whole.state == SLUICE_SNIFF_FOUND) {
        char buf[SLUICE_SNIFF_FORMAT_SIZE];
        if (whole.width == 0 || whole.height == 0 || whole.type == SLUICE_IMAGE_UNKNOWN ||
            sluice_sniff_format(&whole, buf, sizeof buf) <= 0)
            abort();
    } else if (whole.type != SLUICE_IMAGE_UNKNOWN || whole.width || whole.height) {
        abort();
    }
    sluice_sniff_end(&whole);
    sluice_sniff_end(&chunks);
    same(&whole, &chunks);
    if (whole.state == SLUICE_SNIFF_UNDECIDED)
        abort();
    return 0;
}
