/*
 * test_multipart.c — boundary parsing, the splitter against generated bodies
 * whose truth is known (every split point, 1-byte feeds, random feeds,
 * PENDING between chunks), RFC 7578 examples, boundary look-alikes, a table
 * of malformed bodies with exact errors and offsets, limits, zero copy, part lifetime, skipping,
 * find, concatenation, readiness, threads and allocation failures.
 */
#include "harness.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- input: a body as views of pool blocks, split as asked ---------------- */

typedef struct input {
    sluice_block *blocks[64]; /* our own references, kept until input_free */
    size_t nblocks;
    size_t used[64];
} input;

enum split { WHOLE, BYTES, AT, RANDOM };

/* Builds a memory stream over body[0..len): copied once into pool blocks,
 * then cut into chunks (never across a block). AT: two chunks cut at `arg`;
 * RANDOM: lengths 1..arg (seeded by *rng). */
static sluice_stream *input_new(input *in, const void *body, size_t len, enum split how,
                                size_t arg, unsigned long long *rng, unsigned flags)
{
    memset(in, 0, sizeof *in);
    sluice_pool_counters st;
    sluice_pool_stats(T_POOL, &st);
    size_t bs = st.block_size;
    for (size_t off = 0; off < len; off += bs) {
        sluice_block *b;
        if (in->nblocks == 64 || sluice_block_get(T_POOL, &b) < 0)
            return NULL;
        size_t n = len - off < bs ? len - off : bs;
        memcpy(sluice_block_data(b), (const unsigned char *)body + off, n);
        in->used[in->nblocks] = n;
        in->blocks[in->nblocks++] = b;
    }
    size_t cap = len + 2, n = 0;
    sluice_bytes *c = calloc(cap, sizeof *c);
    for (size_t pos = 0; pos < len;) {
        size_t bi = pos / bs, boff = pos % bs, want;
        switch (how) {
        case WHOLE: want = len; break;
        case BYTES: want = 1; break;
        case AT: want = pos < arg ? arg - pos : len - pos; break;
        default: want = 1 + (size_t)(t_rand(rng) % arg); break;
        }
        if (want > in->used[bi] - boff)
            want = in->used[bi] - boff;
        sluice_block_view(in->blocks[bi], boff, want, &c[n++]);
        pos += want;
    }
    sluice_stream *s = NULL;
    EXPECT_EQ(sluice_memstream_new(T_POOL, c, n, flags, &s), 0);
    free(c);
    return s;
}

static void input_free(input *in)
{
    for (size_t i = 0; i < in->nblocks; i++)
        sluice_block_release(in->blocks[i]);
}

/* True when b lies inside one of the input's blocks (a view, not a copy). */
static int input_owns(const input *in, const sluice_bytes *b)
{
    for (size_t i = 0; i < in->nblocks; i++) {
        const unsigned char *d = sluice_block_data(in->blocks[i]);
        if (b->owner == in->blocks[i] && b->data >= d && b->data + b->len <= d + in->used[i])
            return 1;
    }
    return 0;
}

/* ---- what a parse produced ------------------------------------------------ */

typedef struct gpart {
    char *name, *filename, *ctype; /* NULL when absent */
    size_t nheaders;
    unsigned char *data;
    size_t len;
} gpart;

typedef struct got {
    gpart *parts;
    size_t n;
    int err;          /* 0: EOF */
    uint64_t err_off;
    int copied;       /* data chunks that were not views of the input */
} got;

static char *dupn(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void got_free(got *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->parts[i].name);
        free(g->parts[i].filename);
        free(g->parts[i].ctype);
        free(g->parts[i].data);
    }
    free(g->parts);
    memset(g, 0, sizeof *g);
}

/* Reads one part stream to its end into gp; returns 0 or its error. */
static int read_part(sluice_stream *p, gpart *gp, const input *in, got *g)
{
    size_t cap = 0;
    for (long spins = 0;; spins++) {
        sluice_bytes b;
        sluice_poll r = sluice_stream_poll_next(p, &b);
        if (r == SLUICE_READY) {
            if (in && !input_owns(in, &b))
                g->copied++;
            if (gp->len + b.len > cap) {
                cap = (gp->len + b.len) * 2;
                gp->data = realloc(gp->data, cap);
            }
            memcpy(gp->data + gp->len, b.data, b.len);
            gp->len += b.len;
            sluice_bytes_release(&b);
        } else if (r == SLUICE_EOF) {
            return 0;
        } else if (r == SLUICE_ERROR) {
            return sluice_stream_error(p, NULL);
        } else if (spins > 100000000) {
            return -1;
        }
    }
}

/* Splits body through s with the given boundary and limits, into g. */
static void parse(sluice_stream *s, const char *boundary, const sluice_multipart_limits *lim,
                  const input *in, got *g)
{
    memset(g, 0, sizeof *g);
    sluice_multipart *m;
    int rc = sluice_multipart_new(T_POOL, s, boundary, strlen(boundary), lim, &m);
    if (rc < 0) {
        g->err = rc;
        return;
    }
    size_t cap = 0;
    for (long spins = 0;; spins++) {
        sluice_stream *p;
        sluice_poll r = sluice_multipart_next(m, &p);
        if (r == SLUICE_PENDING) {
            if (spins > 100000000) {
                g->err = -1;
                break;
            }
            continue;
        }
        if (r != SLUICE_READY) {
            g->err = sluice_multipart_error(m, NULL);
            g->err_off = t_multipart_where(m);
            EXPECT(r == (g->err ? SLUICE_ERROR : SLUICE_EOF));
            break;
        }
        if (g->n == cap) {
            cap = cap ? cap * 2 : 8;
            g->parts = realloc(g->parts, cap * sizeof *g->parts);
        }
        gpart *gp = &g->parts[g->n++];
        memset(gp, 0, sizeof *gp);
        const sluice_part *info = sluice_multipart_info(p);
        EXPECT_EQ(info->index, g->n - 1);
        gp->name = dupn(info->name, info->name_len);
        gp->filename = dupn(info->filename, info->filename_len);
        gp->ctype = dupn(info->content_type, info->content_type_len);
        gp->nheaders = info->nheaders;
        int perr = read_part(p, gp, in, g);
        sluice_stream_close(p);
        if (perr) { /* the splitter failed with the same error */
            EXPECT_ERR(sluice_multipart_next(m, &p), SLUICE_ERROR);
            EXPECT_ERR(sluice_multipart_error(m, NULL), perr);
        }
    }
    sluice_multipart_close(m);
}

static void parse_mem(const void *body, size_t len, const char *boundary,
                      const sluice_multipart_limits *lim, enum split how, size_t arg,
                      unsigned long long *rng, unsigned flags, got *g)
{
    input in;
    sluice_stream *s = input_new(&in, body, len, how, arg, rng, flags);
    parse(s, boundary, lim, &in, g);
    input_free(&in);
}

/* ---- truth: generated bodies ---------------------------------------------- */

typedef struct tpart {
    char name[32], filename[32], ctype[32]; /* "" with has_* 0: absent */
    int has_name, has_filename, has_ctype;
    unsigned char *data;
    size_t len;
} tpart;

typedef struct tbody {
    char boundary[SLUICE_MULTIPART_BOUNDARY_MAX + 1];
    tpart *parts;
    size_t nparts;
    unsigned char *buf;
    size_t len, cap;
} tbody;

static void put(tbody *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 + 64;
        t->buf = realloc(t->buf, t->cap);
    }
    if (n)
        memcpy(t->buf + t->len, p, n);
    t->len += n;
}

static void puts_(tbody *t, const char *s)
{
    put(t, s, strlen(s));
}

static const char bchars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "'()+_,-./:=? ----";

static void gen_boundary(char *b, unsigned long long *rng)
{
    size_t n = t_rand(rng) % 3 ? 1 + t_rand(rng) % 16 : 1 + t_rand(rng) % 70;
    for (size_t i = 0; i < n; i++)
        b[i] = bchars[t_rand(rng) % (sizeof bchars - 1)];
    if (b[n - 1] == ' ')
        b[n - 1] = 'z';
    b[n] = '\0';
}

/* Whether the byte after CRLF "--" boundary makes it a delimiter. */
static int opens_delim(unsigned char c)
{
    return c == '-' || c == ' ' || c == '\t' || c == '\r';
}

/* Nasty data: CR, LF, "--", prefixes of the delimiter, the boundary text not
 * preceded by CRLF--, and look-alikes: CRLF "--" boundary (or "--" boundary,
 * which opens the data) followed by a byte that makes it data. Then every
 * real delimiter is broken: one followed by '-', SP, HTAB or CR, or ending
 * the data (the real delimiter's CR follows), also at the start, which the
 * blank line's CRLF would complete. */
static unsigned char *gen_data(size_t len, const char *bnd, unsigned long long *rng)
{
    static const char notdelim[] = "xZ0\n\001;=\377";
    unsigned char *d = malloc(len + 1);
    size_t blen = strlen(bnd), n = 0;
    char tok[160];
    while (n < len) {
        size_t tl = 0, k = t_rand(rng) % (blen + 1);
        char nd = notdelim[t_rand(rng) % (sizeof notdelim - 1)];
        switch (t_rand(rng) % 15) {
        case 0: tok[tl++] = (char)t_rand(rng); break;
        case 1: tok[tl++] = '\r'; break;
        case 2: tok[tl++] = '\n'; break;
        case 3: tl = (size_t)sprintf(tok, "--"); break;
        case 4: tl = (size_t)sprintf(tok, "\r\n"); break;
        case 5: tl = (size_t)sprintf(tok, "\r\n--"); break;
        case 6: tl = (size_t)sprintf(tok, "\r\n--%.*s", (int)(k < blen ? k : blen - 1), bnd); break;
        case 7: tl = (size_t)sprintf(tok, "%.*s", (int)k, bnd); break;
        case 8: tl = (size_t)sprintf(tok, "--%s", bnd); break;
        case 9: tl = (size_t)sprintf(tok, "\n--%s", bnd); break;
        case 10: tl = (size_t)sprintf(tok, "\r--%s\r\n", bnd); break;
        case 11: tl = (size_t)sprintf(tok, "x\r\n-%s", bnd); break;
        case 12: tl = (size_t)sprintf(tok, "--%s%c", bnd, nd); break;
        default: tl = (size_t)sprintf(tok, "\r\n--%s%c", bnd, nd); break;
        }
        for (size_t i = 0; i < tl && n < len; i++)
            d[n++] = (unsigned char)tok[i];
    }
    for (size_t i = 0; i + 4 + blen <= len; i++)
        if (d[i] == '\r' && !memcmp(d + i, "\r\n--", 4) && !memcmp(d + i + 4, bnd, blen) &&
            (i + 4 + blen == len || opens_delim(d[i + 4 + blen])))
            d[i] = 'X';
    if (len >= 2 + blen && !memcmp(d, "--", 2) && !memcmp(d + 2, bnd, blen) &&
        (len == 2 + blen || opens_delim(d[2 + blen])))
        d[0] = 'X';
    return d;
}

static void gen_padding(tbody *t, unsigned long long *rng)
{
    size_t n = t_rand(rng) % 4 ? 0 : t_rand(rng) % 4;
    for (size_t i = 0; i < n; i++)
        puts_(t, t_rand(rng) % 2 ? " " : "\t");
}

/* A random body: nparts parts of up to maxlen data bytes each (or exactly
 * `huge` bytes for one part when huge > 0). */
static void gen_body(tbody *t, size_t nparts, size_t maxlen, size_t huge, unsigned long long *rng)
{
    memset(t, 0, sizeof *t);
    gen_boundary(t->boundary, rng);
    const char *b = t->boundary;
    t->nparts = nparts;
    t->parts = calloc(nparts ? nparts : 1, sizeof *t->parts);
    if (t_rand(rng) % 3 == 0) { /* preamble */
        size_t pl = t_rand(rng) % 40;
        unsigned char *pre = gen_data(pl, b, rng);
        put(t, pre, pl);
        free(pre);
        puts_(t, "\r\n");
    }
    puts_(t, "--");
    puts_(t, b);
    for (size_t i = 0; i < nparts; i++) {
        tpart *p = &t->parts[i];
        gen_padding(t, rng);
        puts_(t, "\r\n");
        unsigned shape = (unsigned)(t_rand(rng) % 8);
        if (shape != 0) {
            p->has_name = 1;
            sprintf(p->name, "f%zu", i);
            puts_(t, t_rand(rng) % 2 ? "Content-Disposition:" : "content-DISPOSITION: ");
            puts_(t, " form-data; name=\"");
            puts_(t, p->name);
            puts_(t, "\"");
            if (shape >= 5) {
                p->has_filename = 1;
                if (shape != 7) /* 7: filename="" */
                    sprintf(p->filename, "a b%zu.bin", i);
                puts_(t, ";filename=\"");
                puts_(t, p->filename);
                puts_(t, "\"");
            }
            puts_(t, "\r\n");
        }
        if (shape == 2 || shape == 6) {
            p->has_ctype = 1;
            strcpy(p->ctype, "application/x-y");
            puts_(t, "Content-Type:\tapplication/x-y \r\n");
        }
        if (shape == 3)
            puts_(t, "X-Other: 1\r\n");
        puts_(t, "\r\n");
        p->len = huge ? huge : (t_rand(rng) % 4 == 0 ? 0 : t_rand(rng) % (maxlen + 1));
        p->data = gen_data(p->len, b, rng);
        put(t, p->data, p->len);
        puts_(t, "\r\n--");
        puts_(t, b);
    }
    puts_(t, "--");
    if (t_rand(rng) % 2) { /* epilogue: anything, even delimiters */
        gen_padding(t, rng);
        puts_(t, "\r\n");
        if (t_rand(rng) % 2)
            puts_(t, "epilogue\r\n--");
        if (t_rand(rng) % 2)
            puts_(t, b);
    }
}

static void tbody_free(tbody *t)
{
    for (size_t i = 0; i < t->nparts; i++)
        free(t->parts[i].data);
    free(t->parts);
    free(t->buf);
}

static int str_eq(const char *got_s, int has, const char *want)
{
    return has ? got_s && !strcmp(got_s, want) : got_s == NULL;
}

/* Compares a parse with the truth; returns 1 when equal (and reports). */
static int check_truth(const tbody *t, const got *g, const char *how, size_t arg)
{
    int ok = g->err == 0 && g->n == t->nparts && g->copied == 0;
    for (size_t i = 0; ok && i < t->nparts; i++) {
        const tpart *p = &t->parts[i];
        const gpart *q = &g->parts[i];
        ok = str_eq(q->name, p->has_name, p->name) &&
             str_eq(q->filename, p->has_filename, p->filename) &&
             str_eq(q->ctype, p->has_ctype, p->ctype) && q->len == p->len &&
             (!p->len || !memcmp(q->data, p->data, p->len));
    }
    if (!ok)
        harness_fail(__FILE__, __LINE__,
                     "%s %zu: boundary \"%s\", %zu parts: got %zu parts, err %s at %llu, "
                     "%d copied", how, arg, t->boundary, t->nparts, g->n,
                     sluice_err_name(g->err), (unsigned long long)g->err_off, g->copied);
    return ok;
}

/* ---- boundary from Content-Type ------------------------------------------ */

TEST(multipart_boundary_from_content_type)
{
    static const struct {
        const char *ct;
        int rc;
        const char *b;
    } cases[] = {
        {"multipart/form-data; boundary=abc", 3, "abc"},
        {"Multipart/Form-Data;BOUNDARY=\"a b:c\"", 5, "a b:c"},
        {"  multipart/form-data ; charset=utf-8 ;\tBoundary = x", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data;charset=\"q;\\\"\";boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
         37, "----WebKitFormBoundary7MA4YWxkTrZu0gW"},
        {"multipart/form-data; boundary=\"a\\'b\";", 3, "a'b"},
        {"multipart/form-data; boundary=\"(),./:=?+_-'\"", 12, "(),./:=?+_-'"},
        {"multipart/form-data; boundary=0123456789012345678901234567890123456789"
         "012345678901234567890123456789",
         70, "0123456789012345678901234567890123456789012345678901234567890123456789"},
        {"multipart/form-data; boundary=0123456789012345678901234567890123456789"
         "0123456789012345678901234567890", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data;", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; boundary=", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; boundary=\"\"", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; boundary=\"ab \"", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; boundary=\"a\"b", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; boundary=a!b", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; boundary=\"a;b\"", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; boundary=\"ab", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; boundary=a; boundary=a", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; boundary=a b", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data; =a", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/form-data boundary=a", SLUICE_EBAD_BOUNDARY, ""},
        {"multipart/mixed; boundary=abc", SLUICE_ENOT_MULTIPART, ""},
        {"application/x-www-form-urlencoded", SLUICE_ENOT_MULTIPART, ""},
        {"multipart/form-datax; boundary=a", SLUICE_ENOT_MULTIPART, ""},
        {"multipart/", SLUICE_ENOT_MULTIPART, ""},
        {"multipart", SLUICE_ENOT_MULTIPART, ""},
        {"", SLUICE_ENOT_MULTIPART, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[SLUICE_MULTIPART_BOUNDARY_MAX + 1];
        memset(out, 'Z', sizeof out);
        int rc = sluice_multipart_boundary(cases[i].ct, strlen(cases[i].ct), out);
        if (rc != cases[i].rc || strcmp(out, cases[i].b) != 0)
            harness_fail(__FILE__, __LINE__, "case %zu \"%s\": %s \"%s\"", i, cases[i].ct,
                         sluice_err_name(rc), out);
    }
    /* the length bounds the value: no NUL needed */
    char out[SLUICE_MULTIPART_BOUNDARY_MAX + 1];
    EXPECT_EQ(sluice_multipart_boundary("multipart/form-data; boundary=abcdef", 33, out), 3);
    EXPECT_STR(out, "abc");
}

TEST(multipart_new_rejects_bad_boundary)
{
    const char *bad[] = {
        "", "a b ", "a\r", "a\"",
        ("0123456789012345678901234567890123456789" "0123456789012345678901234567890"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sluice_stream *s;
        EXPECT_EQ(sluice_memstream_new(T_POOL, NULL, 0, 0, &s), 0);
        sluice_multipart *m = (sluice_multipart *)&m;
        EXPECT_ERR(sluice_multipart_new(T_POOL, s, bad[i], strlen(bad[i]), NULL, &m),
                   SLUICE_EBAD_BOUNDARY);
        EXPECT(m == NULL); /* and the body was closed: the leak check says so */
    }
}

/* ---- generated bodies, every way of feeding them --------------------------- */

TEST(multipart_random_bodies_every_split)
{
    unsigned long long rng = 0x5eed0001;
    for (int round = 0; round < 150; round++) {
        tbody t;
        gen_body(&t, t_rand(&rng) % 5, 40, 0, &rng);
        got g;
        parse_mem(t.buf, t.len, t.boundary, NULL, WHOLE, 0, NULL, 0, &g);
        int ok = check_truth(&t, &g, "whole", (size_t)round);
        got_free(&g);
        parse_mem(t.buf, t.len, t.boundary, NULL, BYTES, 0, NULL, SLUICE_MEMSTREAM_PENDING, &g);
        ok &= check_truth(&t, &g, "bytes+pending", (size_t)round);
        got_free(&g);
        for (size_t k = 1; ok && k < t.len; k++) {
            parse_mem(t.buf, t.len, t.boundary, NULL, AT, k, NULL,
                      k % 2 ? SLUICE_MEMSTREAM_PENDING : 0, &g);
            ok &= check_truth(&t, &g, "split at", k);
            got_free(&g);
        }
        for (int r = 0; ok && r < 4; r++) {
            parse_mem(t.buf, t.len, t.boundary, NULL, RANDOM, 1 + (size_t)r * 9, &rng,
                      r % 2 ? SLUICE_MEMSTREAM_PENDING : 0, &g);
            ok &= check_truth(&t, &g, "random max", 1 + (size_t)r * 9);
            got_free(&g);
        }
        tbody_free(&t);
        if (!ok)
            break;
    }
}

TEST(multipart_many_tiny_parts)
{
    unsigned long long rng = 0x5eed0002;
    for (int round = 0; round < 3; round++) {
        tbody t;
        gen_body(&t, 600, 3, 0, &rng);
        sluice_multipart_limits lim = {.max_parts = 600};
        got g;
        parse_mem(t.buf, t.len, t.boundary, &lim, BYTES, 0, NULL, 0, &g);
        int ok = check_truth(&t, &g, "bytes", 0);
        got_free(&g);
        parse_mem(t.buf, t.len, t.boundary, &lim, RANDOM, 100, &rng, SLUICE_MEMSTREAM_PENDING,
                  &g);
        ok &= check_truth(&t, &g, "random", 100);
        got_free(&g);
        lim.max_parts = 599;
        parse_mem(t.buf, t.len, t.boundary, &lim, WHOLE, 0, NULL, 0, &g);
        EXPECT_ERR(g.err, SLUICE_ETOO_MANY_PARTS);
        EXPECT_EQ(g.n, 599);
        got_free(&g);
        tbody_free(&t);
        if (!ok)
            break;
    }
}

TEST(multipart_one_huge_part)
{
    unsigned long long rng = 0x5eed0003;
    tbody t;
    gen_body(&t, 1, 0, 1u << 20, &rng);
    got g;
    parse_mem(t.buf, t.len, t.boundary, NULL, RANDOM, 70000, &rng, 0, &g);
    check_truth(&t, &g, "random", 70000);
    got_free(&g);
    parse_mem(t.buf, t.len, t.boundary, NULL, RANDOM, 300, &rng, SLUICE_MEMSTREAM_PENDING, &g);
    check_truth(&t, &g, "random", 300);
    got_free(&g);
    tbody_free(&t);
    gen_body(&t, 1, 0, 100000, &rng);
    parse_mem(t.buf, t.len, t.boundary, NULL, BYTES, 0, NULL, 0, &g);
    check_truth(&t, &g, "bytes", 0);
    got_free(&g);
    tbody_free(&t);
}

/* The data search strides over long chunks by byte pairs hashed into
 * buckets ((a << 2) ^ b): (a, b) and (a ^ 1 << j, b ^ 4 << j) share one.
 * Data full of such near-misses of the delimiter (one pair swapped for a
 * colliding one, at any place, the last included), look-alikes, prefixes
 * and repeats must come out whole, however it is chunked. */
TEST(multipart_search_near_misses_in_long_chunks)
{
    static const char *const bnd[] = {
        "b", "-", "be", "ca", "bebebe", "becabeca", "----",
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 70 a's: the longest boundary */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        "----WebKitFormBoundary7MA4YWxkTrZu0gW",
        "x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0",
    };
    unsigned long long rng = 0x5eed0004;
    for (size_t bi = 0; bi < sizeof bnd / sizeof bnd[0]; bi++) {
        const char *b = bnd[bi];
        size_t blen = strlen(b), dlen = 4 + blen, len = 1000 + (size_t)(t_rand(&rng) % 3000);
        unsigned char delim[4 + SLUICE_MULTIPART_BOUNDARY_MAX];
        memcpy(delim, "\r\n--", 4);
        memcpy(delim + 4, b, blen);
        unsigned char *d = malloc(len);
        for (size_t n = 0; n < len;) {
            unsigned char tok[4 + SLUICE_MULTIPART_BOUNDARY_MAX + 1];
            size_t tl = dlen;
            memcpy(tok, delim, dlen);
            switch (t_rand(&rng) % 6) {
            case 0: /* a near-miss: one pair swapped for one in the same bucket */
            case 1: {
                size_t i = 1 + (size_t)(t_rand(&rng) % (dlen - 1));
                unsigned j = (unsigned)(t_rand(&rng) % 6);
                if (t_rand(&rng) % 2)
                    i = dlen - 1;
                tok[i - 1] ^= (unsigned char)(1u << j);
                tok[i] ^= (unsigned char)(4u << j);
                break;
            }
            case 2: tok[tl++] = "xZ\n;"[t_rand(&rng) % 4]; break; /* a look-alike */
            case 3: tl = (size_t)(t_rand(&rng) % dlen); break;      /* a prefix */
            case 4: tl = 1 + (size_t)(t_rand(&rng) % dlen); memcpy(tok, delim + dlen - tl, tl);
                break;                                              /* a suffix */
            default: tl = 1; tok[0] = (unsigned char)t_rand(&rng); break;
            }
            for (size_t k = 0; k < tl && n < len; k++)
                d[n++] = tok[k];
        }
        for (size_t i = 0; i + dlen <= len; i++) /* break the real delimiters */
            if (!memcmp(d + i, delim, dlen) && (i + dlen == len || opens_delim(d[i + dlen])))
                d[i] = 'X';
        size_t blen_all = 2 + blen + 4 + len + dlen + 2;
        unsigned char *body = malloc(blen_all), *w = body;
        memcpy(w, "--", 2), w += 2;
        memcpy(w, b, blen), w += blen;
        memcpy(w, "\r\n\r\n", 4), w += 4;
        memcpy(w, d, len), w += len;
        memcpy(w, delim, dlen), w += dlen;
        memcpy(w, "--", 2);
        for (int r = 0; r < 4; r++) {
            got g;
            size_t arg = r == 0 ? 0 : r == 1 ? 7 : r == 2 ? 300 : 5000;
            parse_mem(body, blen_all, b, NULL, r ? RANDOM : WHOLE, arg, &rng, 0, &g);
            if (g.err || g.n != 1 || g.copied || g.parts[0].len != len ||
                memcmp(g.parts[0].data, d, len))
                harness_fail(__FILE__, __LINE__, "boundary \"%s\" chunks <= %zu: %zu parts, %s, "
                             "%zu of %zu bytes", b, arg, g.n, sluice_err_name(g.err),
                             g.n ? g.parts[0].len : 0, len);
            got_free(&g);
        }
        free(body);
        free(d);
    }
}

/* ---- RFC 7578 and friends ----------------------------------------------- */

TEST(multipart_rfc7578_example)
{
    /* RFC 7578 section 4.5 (lower-case field names are allowed) */
    const char body[] = "--AaB03x\r\n"
                        "content-disposition: form-data; name=\"field1\"\r\n"
                        "content-type: text/plain;charset=UTF-8\r\n"
                        "content-transfer-encoding: quoted-printable\r\n"
                        "\r\n"
                        "Joe owes =E2=82=AC100.\r\n"
                        "--AaB03x--\r\n";
    for (size_t k = 1; k < sizeof body - 1; k++) {
        input in;
        sluice_stream *s = input_new(&in, body, sizeof body - 1, AT, k, NULL, 0);
        sluice_multipart *m;
        REQUIRE(sluice_multipart_new(T_POOL, s, "AaB03x", 6, NULL, &m) == 0);
        sluice_stream *p;
        EXPECT_EQ(sluice_multipart_next(m, &p), SLUICE_READY);
        const sluice_part *info = sluice_multipart_info(p);
        REQUIRE(info != NULL);
        EXPECT_STR(info->name, "field1");
        EXPECT(info->filename == NULL);
        EXPECT_STR(info->content_type, "text/plain;charset=UTF-8");
        EXPECT_EQ(info->nheaders, 3);
        EXPECT_STR(info->headers[2].name, "content-transfer-encoding");
        EXPECT_MEM(info->headers[2].value, info->headers[2].value_len, "quoted-printable", 16);
        const sluice_http_header *h = sluice_http_header_find(info->headers, info->nheaders, "Content-Transfer-Encoding");
        EXPECT(h == &info->headers[2]);
        EXPECT(sluice_http_header_find(info->headers, info->nheaders, "content") == NULL);
        gpart gp = {0};
        got g = {0};
        EXPECT_EQ(read_part(p, &gp, &in, &g), 0);
        EXPECT_MEM(gp.data, gp.len, "Joe owes =E2=82=AC100.", 22);
        EXPECT_EQ(g.copied, 0);
        free(gp.data);
        sluice_stream_close(p);
        EXPECT_EQ(sluice_multipart_next(m, &p), SLUICE_EOF);
        EXPECT(p == NULL);
        EXPECT_EQ(sluice_multipart_next(m, &p), SLUICE_EOF);
        sluice_multipart_close(m);
        input_free(&in);
        if (harness_failed_now())
            break;
    }
}

TEST(multipart_browser_upload)
{
    /* What a browser sends for a text field and a file, with a preamble. */
    const char body[] =
        "This is the preamble. --WebKit is not a delimiter here\r\n"
        "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
        "Content-Disposition: form-data; name=\"title\"\r\n"
        "\r\n"
        "holiday\r\n"
        "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
        "Content-Disposition: form-data; name=\"photo\"; filename=\"caf\xc3\xa9.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n"
        "\r\n"
        "\xff\xd8\xff\xe0\r\n--\r\n------WebKitFormBoundary\xff\xd9\r\n"
        "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n";
    got g;
    parse_mem(body, sizeof body - 1, "----WebKitFormBoundary7MA4YWxkTrZu0gW", NULL, BYTES, 0,
              NULL, 0, &g);
    EXPECT_EQ(g.err, 0);
    REQUIRE(g.n == 2);
    EXPECT_STR(g.parts[0].name, "title");
    EXPECT_MEM(g.parts[0].data, g.parts[0].len, "holiday", 7);
    EXPECT_STR(g.parts[1].name, "photo");
    EXPECT_STR(g.parts[1].filename, "caf\xc3\xa9.jpg");
    EXPECT_STR(g.parts[1].ctype, "image/jpeg");
    const char img[] = "\xff\xd8\xff\xe0\r\n--\r\n------WebKitFormBoundary\xff\xd9";
    EXPECT_MEM(g.parts[1].data, g.parts[1].len, img, sizeof img - 1);
    got_free(&g);
}

/* One part whose header block is `headers` (CRLF-terminated lines); checks
 * name and filename, or the error. */
static void check_disposition(const char *headers, int err, const char *name,
                              const char *filename, int line)
{
    char body[512];
    int n = snprintf(body, sizeof body, "--b\r\n%s\r\nDATA\r\n--b--", headers);
    /* whole, then split at every byte: the answer must not change */
    for (int k = 0; k < n; k++) {
        got g;
        parse_mem(body, (size_t)n, "b", NULL, k ? AT : WHOLE, (size_t)k, NULL, 0, &g);
        if (g.err != err || (!err && (g.n != 1 || !str_eq(g.parts[0].name, name != NULL, name) ||
                                      !str_eq(g.parts[0].filename, filename != NULL, filename) ||
                                      g.parts[0].len != 4)))
            harness_fail(__FILE__, line, "headers \"%s\" split %d: %s, name %s, filename %s",
                         headers, k, sluice_err_name(g.err), g.n ? g.parts[0].name : "-",
                         g.n ? g.parts[0].filename : "-");
        got_free(&g);
    }
}

TEST(multipart_content_disposition)
{
#define CD(h, e, nm, fn) check_disposition(h, e, nm, fn, __LINE__)
    CD("Content-Disposition: form-data; name=a\r\n", 0, "a", NULL);
    CD("Content-Disposition: FORM-DATA;NAME=\"a b\";Filename=\"x.txt\"\r\n", 0, "a b", "x.txt");
    CD("Content-Disposition: form-data; name = \"a\" ; filename=\"\"\r\n", 0, "a", "");
    CD("Content-Disposition: form-data; name=\"q\\\"uo\\\\te\"\r\n", 0, "q\"uo\\te", NULL);
    CD("Content-Disposition: form-data; name=\"x\"; filename*=UTF-8''%e2%82%ac%20rates.txt\r\n",
       0, "x", "\xe2\x82\xac rates.txt");
    CD("Content-Disposition: form-data; name=x; filename=\"plain\"; "
       "filename*=utf-8'en'%C3%A9t%C3%A9\r\n", 0, "x", "\xc3\xa9t\xc3\xa9");
    CD("Content-Disposition: form-data; filename*=ISO-8859-1''caf%E9\r\n", 0, NULL,
       "caf\xc3\xa9");
    CD("Content-Disposition: form-data; filename*=UTF-8''\r\n", 0, NULL, "");
    CD("Content-Disposition: form-data; name=a;\r\n", 0, "a", NULL);
    /* backslashes are data, as browsers send them (paths from old Windows
     * browsers); only \\ and \" with a closing quote still to come are
     * escapes */
    CD("Content-Disposition: form-data; name=\"f\"; filename=\"C:\\files\\1k_b.dat\"\r\n", 0,
       "f", "C:\\files\\1k_b.dat");
    CD("Content-Disposition: form-data; name=\"f\"; filename=\"dir\\\"\r\n", 0, "f", "dir\\");
    CD("Content-Disposition: form-data; name=\"a\\\\b\"\r\n", 0, "a\\b", NULL);
    CD("Content-Disposition: form-data; name=\"a\\\"b\"\r\n", 0, "a\"b", NULL);
    CD("Content-Disposition: form-data; name=\"\\n\\t\"\r\n", 0, "\\n\\t", NULL);
    CD("Content-Disposition: form-data; filename=\"x\\\"; name=\"y\"\r\n",
       SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data; name=\"caf\xc3\xa9\"; other=\"z\"\r\n", 0, "caf\xc3\xa9",
       NULL);
    CD("Content-Disposition: attachment; name=a; filename=f\r\n", 0, NULL, "f");
    CD("Content-Type: text/plain\r\n", 0, NULL, NULL);
    CD("", 0, NULL, NULL);
    CD("Content-Disposition: form-data\r\n", 0, NULL, NULL);
    /* malformed */
    CD("Content-Disposition: form-data; name\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data; name=\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data; name=\"a\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data name=a\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: ; name=a\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data; name=a; NAME=b\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data; name=a b\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data;; name=a\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data; name=a;;\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data; name=a\r\ncontent-disposition: form-data\r\n",
       SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Type: a\r\nContent-Type: b\r\n", SLUICE_EBAD_PART_HEADER, NULL, NULL);
    CD("Content-Disposition: form-data; filename*=UTF-8''%E2%82\r\n", SLUICE_EBAD_EXT_VALUE,
       NULL, NULL);
    CD("Content-Disposition: form-data; filename*=UTF-8''%C0%AF\r\n", SLUICE_EBAD_EXT_VALUE,
       NULL, NULL);
    CD("Content-Disposition: form-data; filename*=UTF-8''%ED%A0%80\r\n", SLUICE_EBAD_EXT_VALUE,
       NULL, NULL);
    CD("Content-Disposition: form-data; filename*=UTF-8''a%00\r\n", SLUICE_EBAD_EXT_VALUE, NULL,
       NULL);
    CD("Content-Disposition: form-data; filename*=UTF-8''a%4\r\n", SLUICE_EBAD_EXT_VALUE, NULL,
       NULL);
    CD("Content-Disposition: form-data; filename*=UTF-8''a%g0\r\n", SLUICE_EBAD_EXT_VALUE, NULL,
       NULL);
    CD("Content-Disposition: form-data; filename*=UTF-8''a'b\r\n", SLUICE_EBAD_EXT_VALUE, NULL,
       NULL);
    CD("Content-Disposition: form-data; filename*=KOI8-R''a\r\n", SLUICE_EBAD_EXT_VALUE, NULL,
       NULL);
    CD("Content-Disposition: form-data; filename*=UTF-8'a\r\n", SLUICE_EBAD_EXT_VALUE, NULL,
       NULL);
    CD("Content-Disposition: form-data; filename*=\"UTF-8''a\"\r\n", SLUICE_EBAD_EXT_VALUE,
       NULL, NULL);
    CD("Content-Disposition: form-data; filename*=UTF-8'e_n'a\r\n", SLUICE_EBAD_EXT_VALUE,
       NULL, NULL);
#undef CD
}

/* ---- malformed bodies: exact error and offset at every split --------------- */

static const struct bad_case {
    const char *body;
    int len; /* -1: strlen */
    int err;
    uint64_t off;
    sluice_multipart_limits lim;
    unsigned flags;
} bad_cases[] = {
    {"", -1, SLUICE_ENO_CLOSE_DELIMITER, 0, {0}, 0},
    {"preamble only\r\n-b\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 19, {0}, 0},
    {"x--b\r\n\r\ndata\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 14, {0}, 0},
    {"--b\r\n\r\nabc", -1, SLUICE_ENO_CLOSE_DELIMITER, 10, {0}, 0},
    {"--b\r\n\r\nabc\r\n--", -1, SLUICE_ENO_CLOSE_DELIMITER, 14, {0}, 0},
    {"--b\r\n\r\nabc\r\n--b", -1, SLUICE_ENO_CLOSE_DELIMITER, 15, {0}, 0},
    {"--b\r\n\r\nabc\r\n--b-", -1, SLUICE_ENO_CLOSE_DELIMITER, 16, {0}, 0},
    {"--b\r\n\r\nabc\r\n--b\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 17, {0}, 0},
    {"--b\r\nA: x", -1, SLUICE_ENO_CLOSE_DELIMITER, 9, {0}, 0},
    {"--b\r\n\r\nabc\n--b--\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 18, {0}, 0},
    {"--b\r\n\r\nabc\r--b--\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 18, {0}, 0},
    {"--b\r\n\r\nab--b--", -1, SLUICE_ENO_CLOSE_DELIMITER, 14, {0}, 0},
    {"--b--", -1, SLUICE_ETRUNCATED, 5, {0}, SLUICE_MEMSTREAM_TRUNCATED},
    {"--b\r\n\r\nx\r\n--b--\r\nepilogue", -1, SLUICE_ETRUNCATED, 25, {0},
     SLUICE_MEMSTREAM_TRUNCATED},
    /* a boundary followed by anything but '-', SP, HTAB or CR is data */
    {"--bX\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 6, {0}, 0},
    {"--bb\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 6, {0}, 0},
    {"--b\n\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 6, {0}, 0},
    {"--b\r\n\r\nabc\r\n--bc\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 18, {0}, 0},
    {"--b\r\n\r\n--bc\r\n", -1, SLUICE_ENO_CLOSE_DELIMITER, 13, {0}, 0},
    {"--b\r\n\r\nabc\r\n--b\n--b--", -1, SLUICE_ENO_CLOSE_DELIMITER, 21, {0}, 0},
    /* ...and with one of those it is a delimiter, checked strictly */
    {"--b-\r\n", -1, SLUICE_EBAD_DELIMITER, 4, {0}, 0},
    {"--b x\r\n", -1, SLUICE_EBAD_DELIMITER, 4, {0}, 0},
    {"--b \tx\r\n", -1, SLUICE_EBAD_DELIMITER, 5, {0}, 0},
    {"--b \t--", -1, SLUICE_EBAD_DELIMITER, 5, {0}, 0},
    {"--b\rX", -1, SLUICE_EBAD_DELIMITER, 4, {0}, 0},
    {"--b\r\n\r\nabc\r\n--b-x", -1, SLUICE_EBAD_DELIMITER, 16, {0}, 0},
    {"--b\r\n\r\nabc\r\n--b x\r\n", -1, SLUICE_EBAD_DELIMITER, 16, {0}, 0},
    {"--b\r\n\r\nabc\r\n--b\t\n", -1, SLUICE_EBAD_DELIMITER, 16, {0}, 0},
    {"--b\r\n\r\n--b-x", -1, SLUICE_EBAD_DELIMITER, 11, {0}, 0},
    {"--b\r\n\r\n--b x", -1, SLUICE_EBAD_DELIMITER, 11, {0}, 0},
    {"junk\r\n--bpre\r\n--b-x\r\n", -1, SLUICE_EBAD_DELIMITER, 18, {0}, 0},
    {"junk\r\n--b x\r\n--b\r\n", -1, SLUICE_EBAD_DELIMITER, 10, {0}, 0},
    {"pre\r\n--b\r\n\r\nabc\r\n--b\r\r\n", -1, SLUICE_EBAD_DELIMITER, 21, {0}, 0},
    {"--b\r\nContent-Disposition form-data\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 24, {0}, 0},
    {"--b\r\nA: x\nB: y\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 9, {0}, 0},
    {"--b\r\nA: x\r\n y\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 11, {0}, 0},
    {"--b\r\nA: x\001y\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 9, {0}, 0},
    {"--b\r\nA: x\0y\r\n\r\n", 16, SLUICE_EBAD_PART_HEADER, 9, {0}, 0},
    {"--b\r\nA: x\177\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 9, {0}, 0},
    {"--b\r\nA : x\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 6, {0}, 0},
    {"--b\r\n: x\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 5, {0}, 0},
    {"--b\r\nA(: x\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 6, {0}, 0},
    {"--b\r\nA: x\ry\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 9, {0}, 0},
    {"--b\r\nA: x\r\n\r\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER, 11, {0}, 0},
    {"--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\n", -1, SLUICE_EBAD_PART_HEADER,
     44, {0}, 0},
    {"--b\r\nContent-Disposition: form-data; filename*=UTF-8''%FF\r\n\r\n", -1,
     SLUICE_EBAD_EXT_VALUE, 47, {0}, 0},
    /* limits */
    {"--b\r\nAbcdef: 123456\r\n\r\nx\r\n--b--", -1, SLUICE_EPART_HEADER_TOO_LARGE, 21,
     {.max_header_bytes = 16}, 0},
    {"--b\r\nAbcdef: 12345\r\n\r\nx\r\n--b--", -1, 0, 0, {.max_header_bytes = 17}, 0},
    {"--b\r\nAbcdef: 12345\r\n\r\nx\r\n--b--", -1, SLUICE_EPART_HEADER_TOO_LARGE, 20,
     {.max_header_bytes = 15}, 0},
    {"--b\r\n\r\n\r\n--b--", -1, SLUICE_EPART_HEADER_TOO_LARGE, 6, {.max_header_bytes = 1}, 0},
    {"--b\r\nA: 1\r\n\r\nAAAA\r\n--b--", -1, SLUICE_EPART_TOO_LARGE, 16,
     {.max_part_bytes = 3}, 0},
    {"--b\r\nA: 1\r\n\r\nAAA\r\n--b--", -1, 0, 0, {.max_part_bytes = 3}, 0},
    {"--b\r\n\r\nAA\r\n-\r\n--b--", -1, SLUICE_EPART_TOO_LARGE, 10, {.max_part_bytes = 3}, 0},
    {"--b\r\n\r\nAA\r\n--b\r\n\r\nBBB\r\n--b--", -1, 0, 0, {.max_part_bytes = 3}, 0},
    {"--b\r\n\r\nAA\r\n--b\r\n\r\nBBB\r\n--b--", -1, SLUICE_EPART_TOO_LARGE, 20,
     {.max_part_bytes = 2}, 0},
    {"--b\r\n\r\nA\r\n--b\r\n\r\nB\r\n--b--", -1, 0, 0, {.max_parts = 2}, 0},
    {"--b\r\n\r\nA\r\n--b\r\n\r\nB\r\n--b\r\n\r\nC\r\n--b--", -1, SLUICE_ETOO_MANY_PARTS, 25,
     {.max_parts = 2}, 0},
    {"--b\r\n\r\nA\r\n--b--", -1, 0, 0, {.max_body_bytes = 15}, 0},
    {"--b\r\n\r\nA\r\n--b--\r\n", -1, SLUICE_EBODY_TOO_LARGE, 15, {.max_body_bytes = 15}, 0},
    {"--b\r\n\r\nAAAAAAAA\r\n--b--", -1, SLUICE_EBODY_TOO_LARGE, 10, {.max_body_bytes = 10},
     0},
    {"--b\r\nA : x\r\n\r\nAAAAAA\r\n--b--", -1, SLUICE_EBAD_PART_HEADER, 6,
     {.max_body_bytes = 14}, 0},
    /* A bad line fails where it is proven, not when a blank line ends the
     * block: without one the block would swallow the close delimiter. */
    {"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\rQThis is a test.\r\n--b--", -1,
     SLUICE_EBAD_PART_HEADER, 47, {0}, 0},
    {"--b\r\nA: 1\r\n\rQyyyyyyyyyyyyyyyyyyyy\r\n--b--", -1, SLUICE_EBAD_PART_HEADER, 11,
     {.max_header_bytes = 8}, 0},
    {"--b\r\nA: 1\r\nB: 2\r\n\rQyyyyyyyyyyyyyyyy\r\n--b--", -1,
     SLUICE_EPART_HEADER_TOO_LARGE, 13, {.max_header_bytes = 8}, 0},
    {"--b\r\nA: 1\nB: 2\r\n\r\n\r\n--b--", -1, SLUICE_EBAD_PART_HEADER, 9,
     {.max_header_bytes = 8}, 0},
    /* the fault is proven at byte 7, before the limit cuts the block */
    {"--b\r\nA : x\r\n\r\nAAAAAA\r\n--b--", -1, SLUICE_EBAD_PART_HEADER, 6,
     {.max_body_bytes = 13}, 0},
    {"--b\r\nA : x\r\n\r\nAAAAAA\r\n--b--", -1, SLUICE_EBODY_TOO_LARGE, 7,
     {.max_body_bytes = 7}, 0},
};

TEST(multipart_malformed_table)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t len = c->len < 0 ? strlen(c->body) : (size_t)c->len;
        for (size_t k = 0; k <= len + 1; k++) {
            got g;
            enum split how = k == 0 ? WHOLE : k <= len ? AT : BYTES;
            unsigned flags = c->flags | (k % 2 ? SLUICE_MEMSTREAM_PENDING : 0);
            parse_mem(c->body, len, "b", &c->lim, how, k, NULL, flags, &g);
            if (g.err != c->err || g.err_off != c->off || g.copied)
                harness_fail(__FILE__, __LINE__, "case %zu (split %zu): %s at %llu, want %s at %llu",
                             i, k, sluice_err_name(g.err), (unsigned long long)g.err_off,
                             sluice_err_name(c->err), (unsigned long long)c->off);
            got_free(&g);
        }
    }
}

TEST(multipart_part_limit_delivers_exactly_the_limit)
{
    /* Whatever the chunking, a part over its limit yields its first
     * max_part_bytes bytes, then fails. */
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"--b\r\n\r\n0123456789\r\n--b--", "0123"},
        {"--b\r\n\r\n01\r\n--x\r\n--b--", "01\r\n"},
        {"--b\r\n\r\n\r\n--\r\n--x\r\n--b--", "\r\n--"},
    };
    sluice_multipart_limits lim = {.max_part_bytes = 4};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].body);
        for (size_t k = 0; k <= len; k++) {
            got g;
            parse_mem(cases[i].body, len, "b", &lim, k ? AT : BYTES, k, NULL, 0, &g);
            if (g.err != SLUICE_EPART_TOO_LARGE || g.err_off != 11 || g.n != 1 ||
                g.parts[0].len != 4 || memcmp(g.parts[0].data, cases[i].want, 4) != 0)
                harness_fail(__FILE__, __LINE__, "case %zu split %zu: %s at %llu, %zu bytes", i,
                             k, sluice_err_name(g.err), (unsigned long long)g.err_off,
                             g.n ? g.parts[0].len : 0);
            got_free(&g);
        }
    }
}

TEST(multipart_error_messages)
{
    const char body[] = "--b\r\nA: x\nB: y\r\n\r\n";
    sluice_stream *s;
    input in;
    s = input_new(&in, body, sizeof body - 1, WHOLE, 0, NULL, 0);
    sluice_multipart *m;
    REQUIRE(sluice_multipart_new(T_POOL, s, "b", 1, NULL, &m) == 0);
    EXPECT_STR(t_multipart_why(m), "");
    sluice_stream *p;
    EXPECT_EQ(sluice_multipart_next(m, &p), SLUICE_ERROR);
    EXPECT_ERR(sluice_multipart_error(m, NULL), SLUICE_EBAD_PART_HEADER);
    EXPECT_STR(t_multipart_why(m), "bare LF in part header");
    EXPECT_EQ(t_multipart_where(m), 9);
    EXPECT_EQ(sluice_multipart_next(m, &p), SLUICE_ERROR); /* sticky */
    sluice_multipart_close(m);
    input_free(&in);
}

/* ---- edge shapes that are valid ------------------------------------------- */

TEST(multipart_valid_edge_shapes)
{
    static const struct {
        const char *body;
        size_t nparts;
        const char *data[3];
    } cases[] = {
        {"--b--", 0, {0}},
        {"--b--\r\n", 0, {0}},
        {"\r\n--b--", 0, {0}},
        {"--b--garbage, even \r\n--b\r\n", 0, {0}},
        {"--b\r\n\r\n\r\n--b--", 1, {""}},
        {"--b\r\n\r\n--b--", 1, {""}},              /* no blank line: empty part */
        {"--b\r\nA: 1\r\n\r\n--b--", 1, {""}},
        {"--b \t \r\n\r\nx\r\n--b\t\r\n\r\ny\r\n--b--", 2, {"x", "y"}},
        {"--b\r\n\r\nx\r\n-b\r\n--b--", 1, {"x\r\n-b"}},
        {"--b\r\n\r\n\n--b\r--b\r\n-- b\r\n--b--", 1, {"\n--b\r--b\r\n-- b"}},
        {"--b\r\n\r\n\r\r\n--b--", 1, {"\r"}},
        {"junk--b\r\n\n--b \r\n--b\r\n\r\nz\r\n--b--", 1, {"z"}},
        {"junk\r\n--bpre\r\n\r\n--b\r\n\r\nz\r\n--b--", 1, {"z"}}, /* look-alike in the preamble */
        {"--bX\r\n--b\n\r\n--b\r\n\r\nz\r\n--b--", 1, {"z"}},     /* ...and opening the body */
        {"--b\r\n\r\nabc\r\n--bc\r\n--b--", 1, {"abc\r\n--bc"}},
        {"--b\r\n\r\n--bc\r\n--b--", 1, {"--bc"}},
        {"x--b\r\n\r\ndata\r\n--b--", 0, {0}}, /* all preamble */
        {"--b\r\n\r\n\r\n--b\r\n\r\n\r\n\r\n--b\r\n\r\n--b--", 3, {"", "\r\n", ""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].body);
        for (size_t k = 0; k <= len; k++) {
            got g;
            parse_mem(cases[i].body, len, "b", NULL, k ? AT : WHOLE, k, NULL, 0, &g);
            int ok = g.err == 0 && g.n == cases[i].nparts;
            for (size_t j = 0; ok && j < g.n; j++)
                ok = g.parts[j].len == strlen(cases[i].data[j]) &&
                     (!g.parts[j].len ||
                      !memcmp(g.parts[j].data, cases[i].data[j], g.parts[j].len));
            if (!ok)
                harness_fail(__FILE__, __LINE__, "case %zu split %zu: %s, %zu parts", i, k,
                             sluice_err_name(g.err), g.n);
            got_free(&g);
        }
    }
}

/* ---- boundary look-alikes ------------------------------------------------- */

static const char *const test_boundaries[] = {
    "b", "AaB03x", "----WebKitFormBoundary7MA4YWxkTrZu0gW",
    "0123456789012345678901234567890123456789012345678901234567890123456789",
};

/* Appends fmt with each '@' replaced by the boundary; a '^' emits nothing
 * and records the body offset it stands at in *mark. */
static void put_b(tbody *t, const char *fmt, const char *bnd, uint64_t *mark)
{
    for (const char *c = fmt; *c; c++) {
        if (*c == '@')
            puts_(t, bnd);
        else if (*c == '^')
            *mark = t->len;
        else
            put(t, c, 1);
    }
}

/* Splits the body whole, in 1-byte feeds and as two chunks cut at every
 * point (PENDING between chunks every other time), and checks each run
 * yields exactly the parts' data in want[] (views of the input), then EOF
 * (err 0) or err at off. */
static void expect_every_split(const tbody *t, const char *bnd, const tbody *want, size_t nwant,
                               int err, uint64_t off, int line)
{
    for (size_t k = 0; k <= t->len + 1; k++) {
        enum split how = k == 0 ? WHOLE : k <= t->len ? AT : BYTES;
        got g;
        parse_mem(t->buf, t->len, bnd, NULL, how, k, NULL, k % 2 ? SLUICE_MEMSTREAM_PENDING : 0,
                  &g);
        int ok = g.err == err && g.err_off == off && g.n == nwant && !g.copied;
        for (size_t j = 0; ok && j < nwant; j++)
            ok = g.parts[j].len == want[j].len &&
                 (!want[j].len || !memcmp(g.parts[j].data, want[j].buf, want[j].len));
        if (!ok) {
            harness_fail(__FILE__, line, "boundary \"%s\" split %zu: %zu parts, %s at %llu%s",
                         bnd, k, g.n, sluice_err_name(g.err), (unsigned long long)g.err_off,
                         g.copied ? ", copied" : "");
            got_free(&g);
            return;
        }
        got_free(&g);
    }
}

TEST(multipart_boundary_lookalikes_are_data)
{
    /* Part data ('@': the boundary); each body is one part with it. */
    static const char *const datas[] = {
        "--@x",               /* opens the data: the blank line's CRLF does not help */
        "--@x\r\nmore",
        "--@\n",
        "a\r\n--@x\r\nb",
        "\r\n--@x\r\n",
        "a\r\n--@\nb",
        "\r\n--@\n",
        "\r\n--@0\r\n--@Z\r\n--@\001",
        "\r\n--@x\r\n--@\n\r\n--@;",
        "\r\n--@x................................................................"
        "........................................................................"
        "..........................\r\n--@x", /* the next match past the window */
    };
    for (size_t b = 0; b < sizeof test_boundaries / sizeof test_boundaries[0]; b++) {
        const char *bnd = test_boundaries[b];
        for (size_t i = 0; i < sizeof datas / sizeof datas[0]; i++) {
            tbody t = {0}, d = {0};
            uint64_t mark = 0;
            put_b(&d, datas[i], bnd, &mark);
            put_b(&t, "--@\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n", bnd, &mark);
            put(&t, d.buf, d.len);
            put_b(&t, "\r\n--@--\r\n", bnd, &mark);
            expect_every_split(&t, bnd, &d, 1, 0, 0, __LINE__);
            free(t.buf);
            free(d.buf);
        }
        /* a look-alike ends a part early only when it is a delimiter */
        tbody t = {0}, d[2];
        memset(d, 0, sizeof d);
        uint64_t mark = 0;
        put_b(&d[0], "\r\n--@0\r\n--@Z", bnd, &mark);
        put_b(&d[1], "--@\001", bnd, &mark);
        put_b(&t, "--@\r\n\r\n", bnd, &mark);
        put(&t, d[0].buf, d[0].len);
        put_b(&t, "\r\n--@\r\n\r\n", bnd, &mark);
        put(&t, d[1].buf, d[1].len);
        put_b(&t, "\r\n--@--", bnd, &mark);
        expect_every_split(&t, bnd, d, 2, 0, 0, __LINE__);
        free(t.buf);
        free(d[0].buf);
        free(d[1].buf);
        /* in the preamble and at the very start of the body */
        static const char *const pre[] = {"--@x\r\n--@\r\n\r\nD\r\n--@--",
                                          "--@\n\r\n--@\r\n\r\nD\r\n--@--",
                                          "pre\r\n--@x\r\n--@\r\n\r\nD\r\n--@--"};
        for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
            tbody u = {0}, w = {0};
            put_b(&u, pre[i], bnd, &mark);
            puts_(&w, "D");
            expect_every_split(&u, bnd, &w, 1, 0, 0, __LINE__);
            free(u.buf);
            free(w.buf);
        }
    }
}

TEST(multipart_boundary_then_dash_or_space_is_a_delimiter)
{
    /* '-', SP, HTAB or CR after the boundary make it a delimiter; what
     * follows is then checked strictly. '^' marks the offending byte. */
    static const struct {
        const char *body, *data; /* data: of the one part before it, or NULL: none */
    } cases[] = {
        {"--@\r\n\r\na\r\n--@-^x\r\n--@--", "a"},
        {"--@\r\n\r\na\r\n--@ ^x\r\n--@--", "a"},
        {"--@\r\n\r\na\r\n--@\t^\n--@--", "a"},
        {"--@\r\n\r\na\r\n--@\r^x\n--@--", "a"},
        {"--@\r\n\r\n--@-^x\r\n--@--", ""},
        {"--@\r\n\r\n--@ ^x\r\n--@--", ""},
        {"--@-^x\r\n--@--", NULL},
        {"--@ ^x\r\n", NULL},
        {"pre\r\n--@x\r\n--@-^\r\n", NULL},
    };
    for (size_t b = 0; b < sizeof test_boundaries / sizeof test_boundaries[0]; b++) {
        const char *bnd = test_boundaries[b];
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            tbody t = {0}, d = {0};
            uint64_t mark = 0;
            put_b(&t, cases[i].body, bnd, &mark);
            if (cases[i].data)
                puts_(&d, cases[i].data);
            expect_every_split(&t, bnd, &d, cases[i].data != NULL, SLUICE_EBAD_DELIMITER, mark,
                               __LINE__);
            free(t.buf);
            free(d.buf);
        }
    }
}

TEST(multipart_lookalikes_in_a_file_part)
{
    static const char *const bs[] = {
        "----WebKitFormBoundary7MA4YWxkTrZu0gW",
        "0123456789012345678901234567890123456789012345678901234567890123456789",
    };
    for (size_t b = 0; b < 2; b++) {
        const char *B = bs[b];
        int bl = (int)strlen(B);
        char tmp[256];
        tbody want[3];
        memset(want, 0, sizeof want);
        puts_(&want[0], "\r\n--"); /* x */
        put(&want[0], B, 10);
        for (int r = 0; r < 3; r++) { /* the file's content */
            snprintf(tmp, sizeof tmp, "--%sx\r\n--%.*s\r\n\r--%s-\r\n\r\n--%.5s", B, bl - 1, B,
                     B, B);
            puts_(&want[1], tmp);
        }
        puts_(&want[2], "--"); /* y */
        puts_(&want[2], B);
        for (int with_y = 0; with_y < 2; with_y++) {
            tbody t = {0};
            snprintf(tmp, sizeof tmp, "--%s\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n",
                     B);
            puts_(&t, tmp);
            put(&t, want[0].buf, want[0].len);
            snprintf(tmp, sizeof tmp,
                     "\r\n--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                     "filename=\"c.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                     B);
            puts_(&t, tmp);
            put(&t, want[1].buf, want[1].len);
            if (with_y) {
                snprintf(tmp, sizeof tmp,
                         "\r\n--%s\r\nContent-Disposition: form-data; name=\"y\"\r\n\r\n", B);
                puts_(&t, tmp);
                put(&t, want[2].buf, want[2].len);
            }
            snprintf(tmp, sizeof tmp, "\r\n--%s--\r\n", B);
            puts_(&t, tmp);
            if (!with_y) {
                expect_every_split(&t, B, want, 2, 0, 0, __LINE__);
            } else {
                /* y's data "--B" right after its blank line, with the close
                 * delimiter's CR next, is itself a delimiter (the blank
                 * line's CRLF doubles as its CRLF, as in Go's
                 * mime/multipart): y is empty, and "--B--" then opens a
                 * header block whose first line, ended by the body's last
                 * CRLF, has no colon. */
                want[2].len = 0;
                expect_every_split(&t, B, want, 3, SLUICE_EBAD_PART_HEADER, t.len - 2, __LINE__);
                want[2].len = (size_t)bl + 2;
            }
            got g;
            parse_mem(t.buf, t.len, B, NULL, WHOLE, 0, NULL, 0, &g);
            REQUIRE(g.n == 2u + (size_t)with_y);
            EXPECT_STR(g.parts[0].name, "x");
            EXPECT_STR(g.parts[1].name, "file");
            EXPECT_STR(g.parts[1].filename, "c.bin");
            EXPECT_MEM(g.parts[1].data, g.parts[1].len, want[1].buf, want[1].len);
            got_free(&g);
            free(t.buf);
        }
        for (int i = 0; i < 3; i++)
            free(want[i].buf);
    }
}

/* ---- zero copy --------------------------------------------------------------- */

TEST(multipart_zero_copy_views_into_input)
{
    /* A delimiter straddling chunks at every position: data chunks are still
     * views of the input blocks, in order, without a copy. */
    const char body[] = "--bound\r\n\r\n0123456789\r\n--boun\r\n--bound--";
    for (size_t k = 1; k < sizeof body - 1; k++) {
        input in;
        sluice_stream *s = input_new(&in, body, sizeof body - 1, AT, k, NULL, 0);
        sluice_pool_counters st0, st1;
        sluice_pool_stats(T_POOL, &st0);
        sluice_multipart *m;
        REQUIRE(sluice_multipart_new(T_POOL, s, "bound", 5, NULL, &m) == 0);
        sluice_stream *p;
        REQUIRE(sluice_multipart_next(m, &p) == SLUICE_READY);
        const unsigned char *base = sluice_block_data(in.blocks[0]);
        size_t at = 11; /* where the data starts in the body */
        sluice_bytes b;
        sluice_poll r;
        while ((r = sluice_stream_poll_next(p, &b)) == SLUICE_READY) {
            EXPECT(b.owner == in.blocks[0]);
            EXPECT(b.data == base + at); /* the very bytes, in order */
            at += b.len;
            sluice_bytes_release(&b);
        }
        EXPECT_EQ(r, SLUICE_EOF);
        EXPECT_EQ(at, 11 + 18);
        sluice_stream_close(p);
        EXPECT_EQ(sluice_multipart_next(m, &p), SLUICE_EOF);
        sluice_pool_stats(T_POOL, &st1);
        EXPECT_EQ(st1.blocks_allocated, st0.blocks_allocated); /* no block for payload */
        sluice_multipart_close(m);
        input_free(&in);
    }
}

/* ---- lifetime, skipping, find, concatenation --------------------------------- */

static const char three[] = "--b\r\n"
                            "Content-Disposition: form-data; name=\"a\"\r\n\r\n"
                            "AAAA\r\n--b\r\n"
                            "Content-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n"
                            "FFFFFF\r\n--b\r\n"
                            "Content-Disposition: form-data; name=\"c\"\r\n\r\n"
                            "CC\r\n--b--\r\n";

static sluice_multipart *three_parts(input *in, enum split how, size_t arg)
{
    unsigned long long rng = arg;
    sluice_stream *s = input_new(in, three, sizeof three - 1, how, arg, &rng, 0);
    sluice_multipart *m = NULL;
    EXPECT_EQ(sluice_multipart_new(T_POOL, s, "b", 1, NULL, &m), 0);
    return m;
}

TEST(multipart_next_skips_unread_part)
{
    input in;
    sluice_multipart *m = three_parts(&in, BYTES, 0);
    sluice_stream *a, *f, *c;
    REQUIRE(sluice_multipart_next(m, &a) == SLUICE_READY);
    sluice_bytes b;
    EXPECT_EQ(sluice_stream_poll_next(a, &b), SLUICE_READY); /* one byte of AAAA */
    sluice_bytes_release(&b);
    REQUIRE(sluice_multipart_next(m, &f) == SLUICE_READY);
    EXPECT_STR(sluice_multipart_info(f)->name, "f");
    EXPECT_EQ(sluice_stream_poll_next(a, &b), SLUICE_ERROR); /* a was skipped */
    EXPECT_ERR(sluice_stream_error(a, NULL), SLUICE_ECLOSED);
    EXPECT_EQ(sluice_stream_poll_next(a, &b), SLUICE_ERROR);
    EXPECT_STR(sluice_multipart_info(a)->name, "a"); /* headers outlive the skip */
    got g = {0};
    gpart gp = {0};
    EXPECT_EQ(read_part(f, &gp, &in, &g), 0); /* fully read, EOF seen */
    EXPECT_MEM(gp.data, gp.len, "FFFFFF", 6);
    free(gp.data);
    REQUIRE(sluice_multipart_next(m, &c) == SLUICE_READY);
    EXPECT_EQ(sluice_stream_poll_next(f, &b), SLUICE_EOF); /* still EOF */
    sluice_stream_close(a);
    sluice_stream_close(f);
    /* read all of c's data but not its EOF, then move on: c ends cleanly */
    for (int i = 0; i < 2; i++) {
        EXPECT_EQ(sluice_stream_poll_next(c, &b), SLUICE_READY);
        sluice_bytes_release(&b);
    }
    sluice_stream *x;
    EXPECT_EQ(sluice_multipart_next(m, &x), SLUICE_EOF);
    EXPECT_EQ(sluice_stream_poll_next(c, &b), SLUICE_EOF);
    sluice_stream_close(c);
    sluice_multipart_close(m);
    input_free(&in);
}

TEST(multipart_part_outlives_splitter_and_pumps)
{
    input in;
    sluice_multipart *m = three_parts(&in, RANDOM, 7);
    sluice_stream *f;
    EXPECT_EQ(sluice_multipart_find(m, "f", 1, &f), SLUICE_READY);
    sluice_multipart_close(m); /* the part keeps the splitter and body alive */
    sluice_sink *k;
    REQUIRE(sluice_vecsink_new(T_POOL, &k) == 0);
    sluice_pump pump;
    sluice_pump_init(&pump, f, k, NULL);
    EXPECT_EQ(sluice_pump_run(&pump, 1000), 0);
    char buf[16];
    EXPECT_EQ(sluice__vecsink_copy(k, buf, sizeof buf), 6);
    EXPECT_MEM(buf, 6, "FFFFFF", 6);
    const sluice_bytes *chunks;
    size_t n;
    sluice_vecsink_chunks(k, &chunks, &n);
    for (size_t i = 0; i < n; i++)
        EXPECT(input_owns(&in, &chunks[i]));
    sluice_sink_close(k);
    sluice_stream_close(f); /* last reference: splitter and body go now */
    input_free(&in);
}

TEST(multipart_find_by_name_and_file)
{
    input in;
    sluice_multipart *m = three_parts(&in, WHOLE, 0);
    sluice_stream *p;
    EXPECT_EQ(sluice_multipart_find(m, NULL, 0, &p), SLUICE_READY); /* filename="" */
    EXPECT_STR(sluice_multipart_info(p)->name, "f");
    EXPECT_STR(sluice_multipart_info(p)->filename, "");
    sluice_stream_close(p);
    EXPECT_EQ(sluice_multipart_find(m, "a", 1, &p), SLUICE_EOF); /* already past a */
    EXPECT(p == NULL);
    sluice_multipart_close(m);
    input_free(&in);

    m = three_parts(&in, BYTES, 0);
    EXPECT_EQ(sluice_multipart_find(m, "cx", 1, &p), SLUICE_READY);
    EXPECT_EQ(sluice_multipart_info(p)->index, 2);
    sluice_stream_close(p);
    sluice_multipart_close(m);
    input_free(&in);

    const char nofile[] = "--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--";
    sluice_stream *s = input_new(&in, nofile, sizeof nofile - 1, BYTES, 0, NULL,
                                 SLUICE_MEMSTREAM_PENDING);
    REQUIRE(sluice_multipart_new(T_POOL, s, "b", 1, NULL, &m) == 0);
    sluice_poll r;
    int pendings = 0;
    while ((r = sluice_multipart_find(m, NULL, 0, &p)) == SLUICE_PENDING)
        pendings++;
    EXPECT_EQ(r, SLUICE_EOF);
    EXPECT(pendings > 10);
    sluice_multipart_close(m);
    input_free(&in);
}

TEST(multipart_concat_streams_all_data)
{
    for (int how = 0; how < 2; how++) {
        input in;
        sluice_multipart *m = three_parts(&in, how ? BYTES : WHOLE, 0);
        sluice_stream *c;
        REQUIRE(sluice_multipart_concat_new(m, &c) == 0);
        sluice_multipart_close(m);
        gpart gp = {0};
        got g = {0};
        EXPECT_EQ(read_part(c, &gp, &in, &g), 0);
        EXPECT_MEM(gp.data, gp.len, "AAAAFFFFFFCC", 12);
        EXPECT_EQ(g.copied, 0);
        free(gp.data);
        sluice_stream_close(c);
        input_free(&in);
    }
    /* an error inside a part ends the concatenation with that error */
    const char bad[] = "--b\r\n\r\nAAAA\r\n--b\r\n\r\nBB\r\n-";
    input in;
    sluice_stream *s = input_new(&in, bad, sizeof bad - 1, WHOLE, 0, NULL, 0);
    sluice_multipart *m;
    REQUIRE(sluice_multipart_new(T_POOL, s, "b", 1, NULL, &m) == 0);
    sluice_stream *c;
    REQUIRE(sluice_multipart_concat_new(m, &c) == 0);
    gpart gp = {0};
    got g = {0};
    EXPECT_ERR(read_part(c, &gp, &in, &g), SLUICE_ENO_CLOSE_DELIMITER);
    EXPECT_MEM(gp.data, gp.len, "AAAABB", 6); /* CRLF- may still start a delimiter */
    EXPECT_EQ(t_stream_where(c), sizeof bad - 1);
    free(gp.data);
    sluice_stream_close(c);
    sluice_multipart_close(m);
    input_free(&in);
}

TEST(multipart_part_get_on_other_streams)
{
    sluice_stream *s;
    EXPECT_EQ(sluice_memstream_new(T_POOL, NULL, 0, 0, &s), 0);
    EXPECT(sluice_multipart_info(s) == NULL);
    EXPECT(sluice_multipart_info(NULL) == NULL);
    sluice_stream_close(s);
}

/* ---- readiness delegates to the body --------------------------------------- */

typedef struct fdstream {
    sluice_stream base;
    sluice_stream *inner;
} fdstream;

static sluice_poll fd_poll(sluice_stream *s, sluice_bytes *out)
{
    sluice_poll r = sluice_stream_poll_next(((fdstream *)s)->inner, out);
    if (r == SLUICE_ERROR)
        sluice_stream_fail(s, sluice_stream_error(((fdstream *)s)->inner, NULL), NULL, 0);
    return r;
}

static void fd_ready(sluice_stream *s, sluice_interest *want)
{
    (void)s;
    want->fd = 42;
    want->events = SLUICE_WANT_READ;
    want->deadline_ms = 1234;
}

static void fd_close(sluice_stream *s)
{
    sluice_stream_close(((fdstream *)s)->inner);
    sluice_pool_object_free(s->pool, s, sizeof(fdstream));
}

static const sluice_stream_vtable fd_vt = {"fd", fd_poll, fd_ready, fd_close};

TEST(multipart_ready_delegates_to_body)
{
    input in;
    sluice_stream *inner = input_new(&in, three, sizeof three - 1, BYTES, 0, NULL,
                                     SLUICE_MEMSTREAM_PENDING);
    fdstream *fs = sluice_pool_object_alloc(T_POOL, sizeof *fs);
    memset(fs, 0, sizeof *fs);
    fs->base.vt = &fd_vt;
    fs->base.pool = T_POOL;
    fs->inner = inner;
    sluice_multipart *m;
    REQUIRE(sluice_multipart_new(T_POOL, &fs->base, "b", 1, NULL, &m) == 0);
    sluice_stream *p;
    sluice_interest w;
    EXPECT_EQ(sluice_multipart_next(m, &p), SLUICE_PENDING); /* after the first byte */
    sluice_multipart_ready(m, &w);
    EXPECT_EQ(w.fd, 42);
    EXPECT_EQ(w.events, SLUICE_WANT_READ);
    EXPECT_EQ(w.deadline_ms, 1234);
    sluice_poll r;
    while ((r = sluice_multipart_next(m, &p)) == SLUICE_PENDING)
        ;
    REQUIRE(r == SLUICE_READY);
    sluice_bytes b;
    while ((r = sluice_stream_poll_next(p, &b)) == SLUICE_READY)
        sluice_bytes_release(&b);
    EXPECT_EQ(r, SLUICE_PENDING);
    memset(&w, 0, sizeof w);
    sluice_stream_ready(p, &w);
    EXPECT_EQ(w.fd, 42);
    EXPECT_EQ(w.deadline_ms, 1234);
    sluice_stream *c;
    REQUIRE(sluice_multipart_concat_new(m, &c) == 0);
    memset(&w, 0, sizeof w);
    sluice_stream_ready(c, &w);
    EXPECT_EQ(w.fd, 42);
    sluice_stream_close(c);
    sluice_stream_close(p);
    sluice_multipart_close(m);
    input_free(&in);
}

/* ---- a part consumed on another thread ------------------------------------ */

typedef struct worker {
    sluice_stream *part;
    sluice_sink *sink;
    int rc;
} worker;

static void *pump_on_thread(void *arg)
{
    worker *w = arg;
    sluice_pump pump;
    sluice_pump_init(&pump, w->part, w->sink, NULL);
    w->rc = sluice_pump_run(&pump, 5000);
    sluice_stream_close(w->part); /* drops the splitter reference here */
    return NULL;
}

TEST(multipart_part_pumped_on_another_thread)
{
    input in;
    sluice_multipart *m = three_parts(&in, RANDOM, 5);
    worker w = {0};
    REQUIRE(sluice_multipart_find(m, "f", 1, &w.part) == SLUICE_READY);
    REQUIRE(sluice_vecsink_new(T_POOL, &w.sink) == 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, pump_on_thread, &w) == 0);
    pthread_join(t, NULL); /* one thread at a time: the splitter waits */
    EXPECT_EQ(w.rc, 0);
    char buf[8];
    EXPECT_EQ(sluice__vecsink_copy(w.sink, buf, sizeof buf), 6);
    EXPECT_MEM(buf, 6, "FFFFFF", 6);
    sluice_stream *c;
    EXPECT_EQ(sluice_multipart_next(m, &c), SLUICE_READY);
    EXPECT_STR(sluice_multipart_info(c)->name, "c");
    sluice_stream_close(c);
    sluice_sink_close(w.sink);
    sluice_multipart_close(m);
    input_free(&in);
}

/* ---- allocation failures ----------------------------------------------------- */

TEST(multipart_allocation_failure_every_call)
{
    int completed = 0;
    for (long k = 1; k < 200 && !completed; k++) {
        t_failalloc fa = {.fail_at = k};
        sluice_allocator hook = t_failalloc_hook(&fa);
        sluice_pool_config cfg = {.allocator = &hook};
        sluice_pool *pool;
        if (sluice_pool_new(&cfg, &pool) < 0)
            continue; /* the pool itself failed */
        input in;
        sluice_stream *s = input_new(&in, three, sizeof three - 1, RANDOM, 9, &(unsigned long long){k}, 0);
        sluice_multipart *m;
        int rc = sluice_multipart_new(pool, s, "b", 1, NULL, &m);
        if (rc == 0) {
            sluice_stream *c = NULL;
            rc = sluice_multipart_concat_new(m, &c);
            sluice_multipart_close(m);
            if (rc == 0) {
                gpart gp = {0};
                got g = {0};
                rc = read_part(c, &gp, NULL, &g);
                if (rc == 0)
                    EXPECT_MEM(gp.data, gp.len, "AAAAFFFFFFCC", 12);
                free(gp.data);
                sluice_stream_close(c);
            }
        }
        if (rc == 0)
            completed = 1;
        else
            EXPECT_ERR(rc, SLUICE_ENOMEM);
        EXPECT_EQ(rc != 0, fa.failed);
        input_free(&in);
        sluice_pool_close(pool);
        EXPECT_EQ(fa.live, 0);
    }
    EXPECT(completed);
}
