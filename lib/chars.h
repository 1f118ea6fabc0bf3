/*
 * chars.h — the byte classes and small text helpers every parser shares
 * (heads, chunked framing, multipart). One table, one hex decoder, one
 * case-insensitive compare, so the grammars cannot drift apart.
 */
#ifndef SLUICE_CHARS_H
#define SLUICE_CHARS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
    SLUICE__C_TOKEN = 0x001,  /* tchar (RFC 9110 section 5.6.2)                  */
    SLUICE__C_VALUE = 0x002,  /* field-vchar, SP, HTAB, obs-text                 */
    SLUICE__C_TARGET = 0x004, /* visible ASCII but '#' and '\\'                  */
    SLUICE__C_HOST = 0x008,   /* reg-name: unreserved and sub-delims but ','     */
    SLUICE__C_DIGIT = 0x010,
    SLUICE__C_HEX = 0x020,
    SLUICE__C_SCHEME = 0x040, /* ALPHA DIGIT "+" "-" "."                         */
    SLUICE__C_WS = 0x080,     /* SP HTAB                                         */
    SLUICE__C_BCHAR = 0x100,  /* RFC 2046 bchars: DIGIT ALPHA '()+_,-./:=? SP    */
    SLUICE__C_ATTR = 0x200    /* RFC 8187 attr-char                              */
};

extern const uint16_t sluice__ctype[256];

static inline bool sluice__is(unsigned char c, unsigned cls)
{
    return (sluice__ctype[c] & cls) != 0;
}

static inline unsigned char sluice__lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c + 32 : c);
}

/* The value of a hex digit, or -1. */
static inline int sluice__hexval(unsigned char c)
{
    if (!sluice__is(c, SLUICE__C_HEX))
        return -1;
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Word-at-a-time tests (eight bytes per step) for the scanners' long runs. */
#define SLUICE__ONES 0x0101010101010101ull
#define SLUICE__HIGHS 0x8080808080808080ull

static inline uint64_t sluice__load8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

/* Non-zero if some byte of x is below n (n <= 128); exact as a yes/no. */
static inline uint64_t sluice__has_less(uint64_t x, unsigned n)
{
    return (x - SLUICE__ONES * n) & ~x & SLUICE__HIGHS;
}

static inline uint64_t sluice__has_byte(uint64_t x, unsigned char b)
{
    return sluice__has_less(x ^ (SLUICE__ONES * b), 1);
}

/* a[0, n) equals b[0, n), ignoring ASCII case. */
static inline bool sluice__mem_eq_ci(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y && sluice__lower(x) != sluice__lower(y))
            return false;
    }
    return true;
}

/* a[0, n) equals the NUL-terminated s, ignoring ASCII case. Lengths first:
 * inline, so strlen of a literal folds to a constant and a field name of
 * another length costs one compare (a head's names are checked against
 * many). */
static inline bool sluice__eq_ci(const char *a, size_t n, const char *s)
{
    return n == strlen(s) && sluice__mem_eq_ci(a, s, n);
}

/* Past the SP / HTAB run at s[i, n). */
static inline size_t sluice__skip_ws(const unsigned char *s, size_t i, size_t n)
{
    while (i < n && sluice__is(s[i], SLUICE__C_WS))
        i++;
    return i;
}

/* The token at s[*i, n) (may be empty): its length; *i moves past it. */
static inline size_t sluice__take_token(const unsigned char *s, size_t *i, size_t n)
{
    size_t b = *i;
    while (*i < n && sluice__is(s[*i], SLUICE__C_TOKEN))
        (*i)++;
    return *i - b;
}

#endif
