/*
 * test_http.c — head parser, framing, Host, helpers and head builders.
 *
 * Every parser case is run on every prefix of its input (0..n bytes, so
 * 1-byte growth and every split point), each copied to end right before a
 * PROT_NONE page so that reading one byte too far faults. Valid heads must
 * return 0 for every proper prefix and their exact length from then on;
 * malformed ones must return 0 until the error is provable (`upto`, when
 * given: the shortest prefix that must already fail) and the same code from
 * then on.
 */
#include "harness.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define S(lit) lit, sizeof(lit) - 1

/* ---- guard page ------------------------------------------------------------ */

typedef struct guard {
    unsigned char *map;
    size_t size; /* usable bytes before the PROT_NONE page */
} guard;

static int guard_new(guard *g, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    g->size = (size + page - 1) / page * page;
    g->map = mmap(NULL, g->size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                  -1, 0);
    if (g->map == MAP_FAILED)
        return -1;
    return mprotect(g->map + g->size, page, PROT_NONE);
}

static void guard_free(guard *g)
{
    munmap(g->map, g->size + (size_t)sysconf(_SC_PAGESIZE));
}

/* Copies n bytes so that they end at the guard page. */
static unsigned char *guard_put(guard *g, const void *data, size_t n)
{
    unsigned char *p = g->map + g->size - n;
    memcpy(p, data, n);
    return p;
}

/* ---- canonical forms ------------------------------------------------------- */

static void cat(char *out, size_t cap, const char *p, size_t n)
{
    size_t l = strlen(out);
    if (l + n >= cap)
        n = cap - l - 1;
    memcpy(out + l, p, n);
    out[l + n] = '\0';
}

static void cats(char *out, size_t cap, const char *s)
{
    cat(out, cap, s, strlen(s));
}

static const char form_char[] = "oau*";

/* "METHOD|target|form|authority|path|minor" */
static void canon_request(const sluice_http_request *r, char *out, size_t cap)
{
    char tail[16];
    out[0] = '\0';
    cat(out, cap, r->method, r->method_len);
    cats(out, cap, "|");
    cat(out, cap, r->target, r->target_len);
    snprintf(tail, sizeof tail, "|%c|", form_char[r->form]);
    cats(out, cap, tail);
    if (r->authority)
        cat(out, cap, r->authority, r->authority_len);
    cats(out, cap, "|");
    if (r->path)
        cat(out, cap, r->path, r->path_len);
    snprintf(tail, sizeof tail, "|%d", r->minor_version);
    cats(out, cap, tail);
}

/* "minor|status|reason" */
static void canon_response(const sluice_http_response *r, char *out, size_t cap)
{
    snprintf(out, cap, "%d|%d|", r->minor_version, r->status);
    cat(out, cap, r->reason, r->reason_len);
}

/* "name:value\n" per field */
static void canon_fields(const sluice_http_header *h, size_t n, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        cat(out, cap, h[i].name, h[i].name_len);
        cats(out, cap, ":");
        cat(out, cap, h[i].value, h[i].value_len);
        cats(out, cap, "\n");
    }
}

/* ---- the table runner ------------------------------------------------------- */

typedef struct hcase {
    const char *in;
    size_t len;
    int want;           /* 0: valid; else the error code */
    const char *start;  /* valid: canonical start line */
    const char *fields; /* valid: canonical fields */
    size_t extra;       /* valid: bytes after the head */
    const char *upto;   /* error: shortest prefix that must already fail */
    size_t upto_len;
} hcase;

#define MAXH 32

/* Parses p[0, n); on success fills the canonical strings. */
static int parse_any(int response, const unsigned char *p, size_t n,
                     const sluice_http_limits *lim, char *start, char *fields, size_t cap,
                     size_t *err_off)
{
    sluice_http_header h[MAXH];
    int r;
    if (response) {
        sluice_http_response res;
        r = sluice_http_parse_response(p, n, lim, &res, h, MAXH);
        if (r > 0) {
            canon_response(&res, start, cap);
            canon_fields(res.headers, res.num_headers, fields, cap);
        }
        *err_off = res.error_offset;
    } else {
        sluice_http_request req;
        r = sluice_http_parse_request(p, n, lim, &req, h, MAXH);
        if (r > 0) {
            canon_request(&req, start, cap);
            canon_fields(req.headers, req.num_headers, fields, cap);
        }
        *err_off = req.error_offset;
    }
    return r;
}

static void run_case(int response, const hcase *k, int idx, guard *g)
{
    char start[512], fields[1024];
    size_t upto = k->upto ? k->upto_len : k->len;
    size_t hlen = k->len - k->extra;
    if (k->upto && (upto > k->len || memcmp(k->upto, k->in, upto) != 0)) {
        harness_fail(__FILE__, __LINE__, "case %d: upto is not a prefix", idx);
        return;
    }
    for (size_t n = 0; n <= k->len; n++) {
        const unsigned char *p = guard_put(g, k->in, n);
        size_t off = 0;
        int r = parse_any(response, p, n, NULL, start, fields, sizeof start, &off);
        int want = 0;
        if (k->want == 0)
            want = n < hlen ? 0 : (int)hlen;
        else if (n >= upto)
            want = k->want;
        else if (r == k->want)
            want = r; /* may fail before the promised prefix, never differently */
        if (r != want) {
            harness_fail(__FILE__, __LINE__, "%s case %d (%.40s) prefix %zu/%zu: %s(%d), want %s(%d)",
                         response ? "response" : "request", idx, k->in, n, k->len,
                         sluice_err_name(r), r, sluice_err_name(want), want);
            return;
        }
        if (r < 0 && off >= n) {
            harness_fail(__FILE__, __LINE__, "case %d: error offset %zu outside %zu bytes", idx,
                         off, n);
            return;
        }
        if (r > 0 && (n == hlen || n == k->len)) {
            if (strcmp(start, k->start) != 0 || strcmp(fields, k->fields) != 0) {
                harness_fail(__FILE__, __LINE__, "case %d: got [%s] [%s], want [%s] [%s]", idx,
                             start, fields, k->start, k->fields);
                return;
            }
        }
    }
}

static void run_table(int response, const hcase *t, size_t n)
{
    guard g;
    REQUIRE(guard_new(&g, 65536) == 0);
    for (size_t i = 0; i < n; i++)
        run_case(response, &t[i], (int)i, &g);
    guard_free(&g);
}

/* ---- requests ------------------------------------------------------------------ */

static const hcase requests[] = {
    /* valid */
    {S("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0, "GET|/|o||/|1", "Host:example.com\n", 0, NULL, 0},
    {S("GET /index.html HTTP/1.0\r\n\r\n"), 0, "GET|/index.html|o||/index.html|0", "", 0, NULL, 0},
    {S("get / HTTP/1.1\r\n\r\n"), 0, "get|/|o||/|1", "", 0, NULL, 0},
    {S("M-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n"), 0, "M-SEARCH|*|*|||1", "Host:x\n", 0, NULL, 0},
    {S("!#$%&'*+-.^_`|~09azAZ / HTTP/1.1\r\n\r\n"), 0, "!#$%&'*+-.^_`|~09azAZ|/|o||/|1", "", 0, NULL, 0},
    {S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "OPTIONS|*|*|||1", "Host:a\n", 0, NULL, 0},
    {S("GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), 0,
     "GET|http://example.com:8080/a/b?x=1|a|example.com:8080|/a/b?x=1|1", "Host:example.com:8080\n", 0, NULL, 0},
    {S("GET http://example.com HTTP/1.1\r\n\r\n"), 0, "GET|http://example.com|a|example.com|/|1", "", 0, NULL, 0},
    {S("GET http://h?q=1 HTTP/1.1\r\n\r\n"), 0, "GET|http://h?q=1|a|h|?q=1|1", "", 0, NULL, 0},
    {S("GET HTTPS://[2001:db8::1]:443/ HTTP/1.1\r\n\r\n"), 0, "GET|HTTPS://[2001:db8::1]:443/|a|[2001:db8::1]:443|/|1", "", 0, NULL, 0},
    {S("GET svn+ssh.x://h/p HTTP/1.1\r\n\r\n"), 0, "GET|svn+ssh.x://h/p|a|h|/p|1", "", 0, NULL, 0},
    {S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 0,
     "CONNECT|example.com:443|u|example.com:443||1", "Host:example.com:443\n", 0, NULL, 0},
    {S("CONNECT [::1]:443 HTTP/1.1\r\n\r\n"), 0, "CONNECT|[::1]:443|u|[::1]:443||1", "", 0, NULL, 0},
    {S("CONNECT 10.0.0.1:8443 HTTP/1.0\r\n\r\n"), 0, "CONNECT|10.0.0.1:8443|u|10.0.0.1:8443||0", "", 0, NULL, 0},
    {S("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 0, "GET|/|o||/|1", "", 0, NULL, 0},
    {S("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 0, "GET|/|o||/|1", "", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nX:  a b \t\r\n\r\n"), 0, "GET|/|o||/|1", "X:a b\n", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nX:\r\nY: \t \r\nZ:z\r\n\r\n"), 0, "GET|/|o||/|1", "X:\nY:\nZ:z\n", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nX: caf\xc3\xa9 \x80\xff\r\n\r\n"), 0, "GET|/|o||/|1", "X:caf\xc3\xa9 \x80\xff\n", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nX: a\tb\tc\r\n\r\n"), 0, "GET|/|o||/|1", "X:a\tb\tc\n", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\tGecko/20100101 Firefox/120.0\r\n\r\n"), 0,
     "GET|/|o||/|1", "User-Agent:Mozilla/5.0 (X11; Linux x86_64)\tGecko/20100101 Firefox/120.0\n", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nX: a:b: c\r\nTime: 12:00\r\n\r\n"), 0, "GET|/|o||/|1", "X:a:b: c\nTime:12:00\n", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"), 0, "GET|/|o||/|1", "!#$%&'*+-.^_`|~09azAZ:v\n", 0, NULL, 0},
    {S("GET /a%20b?x=1&y=%2F;z=[]@!$'()*+,~ HTTP/1.1\r\n\r\n"), 0,
     "GET|/a%20b?x=1&y=%2F;z=[]@!$'()*+,~|o||/a%20b?x=1&y=%2F;z=[]@!$'()*+,~|1", "", 0, NULL, 0},
    {S("GET /!\"$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~ HTTP/1.1\r\n\r\n"), 0,
     "GET|/!\"$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~|o||"
     "/!\"$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~|1", "", 0, NULL, 0},
    {S("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), 0, "POST|/up|o||/up|1",
     "Host:a\nContent-Length:5\n", 5, NULL, 0},
    {S("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"), 0, "GET|/1|o||/1|1", "", 19, NULL, 0},
    {S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\nI: 9\r\nJ: 10\r\n\r\n"), 0,
     "GET|/|o||/|1", "A:1\nB:2\nC:3\nD:4\nE:5\nF:6\nG:7\nH:8\nI:9\nJ:10\n", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 0, "GET|/|o||/|1", "Host:a\nHost:b\n", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nX: \"quoted, list\", b\r\n\r\n"), 0, "GET|/|o||/|1", "X:\"quoted, list\", b\n", 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nX: 0123456789abcdef0123456789abcdef\t0123456789abcdef\r\n\r\n"), 0, "GET|/|o||/|1",
     "X:0123456789abcdef0123456789abcdef\t0123456789abcdef\n", 0, NULL, 0},
    {S("PRI / HTTP/1.1\r\n\r\n"), 0, "PRI|/|o||/|1", "", 0, NULL, 0},

    /* request line whitespace */
    {S("GET  / HTTP/1.1\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET  ")},
    {S("GET /  HTTP/1.1\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET /  ")},
    {S("GET\t/ HTTP/1.1\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET\t")},
    {S("GET /\tHTTP/1.1\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET /\t")},
    {S("GET / HTTP/1.1 \r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET / HTTP/1.1 ")},
    {S("GET / HTTP/1.1\t\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET / HTTP/1.1\t")},
    {S(" GET / HTTP/1.1\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S(" ")},
    {S("GET /a\tb HTTP/1.1\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET /a\t")},
    {S("GET / \r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET / \r\n")},
    {S("GET /\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET /\r\n")},
    {S("GET\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET\r\n")},
    {S("GET / HTTP/1.1 extra\r\n\r\n"), SLUICE_EBAD_REQUEST_LINE, NULL, NULL, 0, S("GET / HTTP/1.1 ")},
    /* method */
    {S("G@T / HTTP/1.1\r\n\r\n"), SLUICE_EBAD_METHOD, NULL, NULL, 0, S("G@")},
    {S("GE\x00T / HTTP/1.1\r\n\r\n"), SLUICE_EBAD_METHOD, NULL, NULL, 0, S("GE\x00")},
    {S("G\xc3\x89T / HTTP/1.1\r\n\r\n"), SLUICE_EBAD_METHOD, NULL, NULL, 0, S("G\xc3")},
    {S("(GET) / HTTP/1.1\r\n\r\n"), SLUICE_EBAD_METHOD, NULL, NULL, 0, S("(")},
    /* empty lines, bare LF, bare CR */
    {S("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"), SLUICE_ETOO_MANY_EMPTY_LINES, NULL, NULL, 0,
     S("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r")},
    {S("\nGET / HTTP/1.1\r\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("\n")},
    {S("\r\n\nGET / HTTP/1.1\r\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("\r\n\n")},
    {S("\rGET / HTTP/1.1\r\n\r\n"), SLUICE_EBARE_CR, NULL, NULL, 0, S("\rG")},
    {S("GET / HTTP/1.1\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("GET / HTTP/1.1\n")},
    {S("GET / HTTP/1.1\nHost: a\n\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("GET / HTTP/1.1\n")},
    {S("GET / HTTP/1.1\r\nHost: a\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("GET / HTTP/1.1\r\nHost: a\n")},
    {S("GET / HTTP/1.1\r\nHost: a\r\n\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("GET / HTTP/1.1\r\nHost: a\r\n\n")},
    {S("GET / HTTP/1.1\r\nX: a\nb: c\r\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX: a\n")},
    {S("GET / HTTP/1.1\r\nX\n: a\r\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX\n")},
    {S("GET /\n HTTP/1.1\r\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("GET /\n")},
    {S("GET / HTTP/1.1\rHost: a\r\n\r\n"), SLUICE_EBARE_CR, NULL, NULL, 0, S("GET / HTTP/1.1\rH")},
    {S("GET / HTTP/1.1\r\nHost: a\r\n\rX"), SLUICE_EBARE_CR, NULL, NULL, 0, S("GET / HTTP/1.1\r\nHost: a\r\n\rX")},
    {S("GET /a\rb HTTP/1.1\r\n\r\n"), SLUICE_EBARE_CR, NULL, NULL, 0, S("GET /a\rb")},
    {S("GET / HTTP/1.1\r\nX\r: a\r\n\r\n"), SLUICE_EBARE_CR, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX\r:")},
    /* versions */
    {S("GET / HTTP/1.2\r\n\r\n"), SLUICE_EVERSION, NULL, NULL, 0, S("GET / HTTP/1.2\r\n")},
    {S("GET / HTTP/2.0\r\n\r\n"), SLUICE_EVERSION, NULL, NULL, 0, S("GET / HTTP/2.0\r\n")},
    {S("GET / HTTP/0.9\r\n\r\n"), SLUICE_EVERSION, NULL, NULL, 0, S("GET / HTTP/0.9\r\n")},
    {S("GET / HTTP/9.9\r\n\r\n"), SLUICE_EVERSION, NULL, NULL, 0, S("GET / HTTP/9.9\r\n")},
    {S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), SLUICE_EVERSION, NULL, NULL, 0, S("PRI * HTTP/2.0\r\n")},
    {S("GET / http/1.1\r\n\r\n"), SLUICE_EBAD_VERSION, NULL, NULL, 0, S("GET / h")},
    {S("GET / HTTP/1.01\r\n\r\n"), SLUICE_EBAD_VERSION, NULL, NULL, 0, S("GET / HTTP/1.01")},
    {S("GET / HTTP/1\r\n\r\n"), SLUICE_EBAD_VERSION, NULL, NULL, 0, S("GET / HTTP/1\r\n")},
    {S("GET / HTTP/1.1x\r\n\r\n"), SLUICE_EBAD_VERSION, NULL, NULL, 0, S("GET / HTTP/1.1x")},
    {S("GET / HTTP/11\r\n\r\n"), SLUICE_EBAD_VERSION, NULL, NULL, 0, S("GET / HTTP/11")},
    {S("GET / HTTP/1.a\r\n\r\n"), SLUICE_EBAD_VERSION, NULL, NULL, 0, S("GET / HTTP/1.a")},
    {S("GET / HTTPS/1.1\r\n\r\n"), SLUICE_EBAD_VERSION, NULL, NULL, 0, S("GET / HTTPS")},
    {S("GET / HTTP/ 1.1\r\n\r\n"), SLUICE_EBAD_VERSION, NULL, NULL, 0, S("GET / HTTP/ ")},
    {S("GET /a b HTTP/1.1\r\n\r\n"), SLUICE_EBAD_VERSION, NULL, NULL, 0, S("GET /a b")},
    /* target */
    {S("GET /a#b HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET /a#")},
    {S("GET /a\\b HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET /a\\")},
    {S("GET /a\x7f HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET /a\x7f")},
    {S("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET /caf\xc3")},
    {S("GET /a\x00 HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET /a\x00")},
    {S("GET /a\x0b HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET /a\x0b")},
    {S("GET /0123456789abcdef0123456789\x01 HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0,
     S("GET /0123456789abcdef0123456789\x01")},
    {S("GET a/b HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET a/b ")},
    {S("GET *x HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET *x ")},
    {S("GET http:///x HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET http:///x ")},
    {S("GET http://user@h/ HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET http://user@h/ ")},
    {S("GET http://h:8x/ HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET http://h:8x/ ")},
    {S("GET 1http://h/ HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("GET 1http://h/ ")},
    {S("CONNECT example.com HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("CONNECT example.com ")},
    {S("CONNECT example.com: HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("CONNECT example.com: ")},
    {S("CONNECT u@example.com:443 HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("CONNECT u@example.com:443 ")},
    {S("CONNECT [::1:443 HTTP/1.1\r\n\r\n"), SLUICE_EBAD_TARGET, NULL, NULL, 0, S("CONNECT [::1:443 ")},
    /* header names */
    {S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), SLUICE_EWS_BEFORE_COLON, NULL, NULL, 0, S("GET / HTTP/1.1\r\nHost :")},
    {S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), SLUICE_EWS_BEFORE_COLON, NULL, NULL, 0, S("GET / HTTP/1.1\r\nHost\t:")},
    {S("GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"), SLUICE_EWS_BEFORE_COLON, NULL, NULL, 0, NULL, 0},
    {S("GET / HTTP/1.1\r\nHost\r\n\r\n"), SLUICE_ENO_COLON, NULL, NULL, 0, S("GET / HTTP/1.1\r\nHost\r\n")},
    {S("GET / HTTP/1.1\r\nHost  \r\n\r\n"), SLUICE_ENO_COLON, NULL, NULL, 0, S("GET / HTTP/1.1\r\nHost  \r\n")},
    {S("GET / HTTP/1.1\r\nHo st: a\r\n\r\n"), SLUICE_EBAD_HEADER_NAME, NULL, NULL, 0, S("GET / HTTP/1.1\r\nHo s")},
    {S("GET / HTTP/1.1\r\n: a\r\n\r\n"), SLUICE_EBAD_HEADER_NAME, NULL, NULL, 0, S("GET / HTTP/1.1\r\n:")},
    {S("GET / HTTP/1.1\r\nH@st: a\r\n\r\n"), SLUICE_EBAD_HEADER_NAME, NULL, NULL, 0, S("GET / HTTP/1.1\r\nH@")},
    {S("GET / HTTP/1.1\r\nX\x00Y: a\r\n\r\n"), SLUICE_EBAD_HEADER_NAME, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX\x00")},
    {S("GET / HTTP/1.1\r\n\xc3\x89: a\r\n\r\n"), SLUICE_EBAD_HEADER_NAME, NULL, NULL, 0, S("GET / HTTP/1.1\r\n\xc3")},
    {S("GET / HTTP/1.1\r\n\"X\": a\r\n\r\n"), SLUICE_EBAD_HEADER_NAME, NULL, NULL, 0, S("GET / HTTP/1.1\r\n\"")},
    {S("GET / HTTP/1.1\r\nX(y): a\r\n\r\n"), SLUICE_EBAD_HEADER_NAME, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX(")},
    /* obs-fold */
    {S("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), SLUICE_EOBS_FOLD, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX: a\r\n ")},
    {S("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"), SLUICE_EOBS_FOLD, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX: a\r\n\t")},
    {S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), SLUICE_EOBS_FOLD, NULL, NULL, 0, S("GET / HTTP/1.1\r\n ")},
    {S("GET / HTTP/1.1\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n"), SLUICE_EOBS_FOLD, NULL, NULL, 0, NULL, 0},
    /* header values */
    {S("GET / HTTP/1.1\r\nX: a\x00" "b\r\n\r\n"), SLUICE_EBAD_HEADER_VALUE, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX: a\x00")},
    {S("GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n"), SLUICE_EBAD_HEADER_VALUE, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX: a\x01")},
    {S("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), SLUICE_EBAD_HEADER_VALUE, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX: a\x7f")},
    {S("GET / HTTP/1.1\r\nX: a\x1b[0m\r\n\r\n"), SLUICE_EBAD_HEADER_VALUE, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX: a\x1b")},
    {S("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), SLUICE_EBAD_HEADER_VALUE, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX: a\rb")},
    {S("GET / HTTP/1.1\r\nX: a\r\r\n\r\n"), SLUICE_EBAD_HEADER_VALUE, NULL, NULL, 0, S("GET / HTTP/1.1\r\nX: a\r\r")},
    {S("GET / HTTP/1.1\r\nX: 0123456789abcdef0123456789abcdef\x00\r\n\r\n"), SLUICE_EBAD_HEADER_VALUE, NULL, NULL, 0,
     S("GET / HTTP/1.1\r\nX: 0123456789abcdef0123456789abcdef\x00")},
    {S("GET / HTTP/1.1\r\nContent-Length: 0\x00\r\n\r\n"), SLUICE_EBAD_HEADER_VALUE, NULL, NULL, 0, NULL, 0},
};

TEST(http_request_table)
{
    run_table(0, requests, sizeof requests / sizeof requests[0]);
}

/* ---- responses ----------------------------------------------------------------- */

static const hcase responses[] = {
    {S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), 0, "1|200|OK", "Content-Length:5\n", 5, NULL, 0},
    {S("HTTP/1.0 404 Not Found\r\n\r\n"), 0, "0|404|Not Found", "", 0, NULL, 0},
    {S("HTTP/1.1 200 \r\n\r\n"), 0, "1|200|", "", 0, NULL, 0},
    {S("HTTP/1.1 204\r\nX: y\r\n\r\n"), 0, "1|204|", "X:y\n", 0, NULL, 0},
    {S("HTTP/1.1 599 x\r\n\r\n"), 0, "1|599|x", "", 0, NULL, 0},
    {S("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), 0, "1|100|Continue", "", 19, NULL, 0},
    {S("HTTP/1.2 200 OK\r\n\r\n"), 0, "2|200|OK", "", 0, NULL, 0},
    {S("HTTP/1.1 200 Very\tOK  \xe2\x9c\x93\r\n\r\n"), 0, "1|200|Very\tOK  \xe2\x9c\x93", "", 0, NULL, 0},
    {S("HTTP/1.1 200 OK\r\nSet-Cookie: a=b; Path=/\r\nSet-Cookie: c=d\r\n\r\n"), 0, "1|200|OK",
     "Set-Cookie:a=b; Path=/\nSet-Cookie:c=d\n", 0, NULL, 0},
    {S("HTTP/1.1 20 OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1 20 ")},
    {S("HTTP/1.1 2000 OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1 2000")},
    {S("HTTP/1.1 099 Low\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1 099")},
    {S("HTTP/1.1 600 High\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1 600")},
    {S("HTTP/1.1 2x0 OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1 2x")},
    {S("HTTP/1.1  200 OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1  ")},
    {S("HTTP/1.1\t200 OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1\t")},
    {S("HTTP/1.1 200\tOK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1 200\t")},
    {S("HTTP/1.1 200OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1 200O")},
    {S("HTTP/1.1 200 O\x01K\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1 200 O\x01")},
    {S("http/1.1 200 OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("h")},
    {S("HTTP/1.10 200 OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.10")},
    {S("HTTP/1 200 OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1 ")},
    {S("HTTP/1.1\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("HTTP/1.1\r\n")},
    /* RFC 9112 section 2.2's robustness rule, as other clients apply it after
     * a 100 (Continue): one empty line before a status line is skipped, a
     * second is not */
    {S("\r\nHTTP/1.1 200 OK\r\n\r\n"), 0, "1|200|OK", "", 0, NULL, 0},
    {S("\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), SLUICE_EBAD_STATUS_LINE, NULL, NULL, 0, S("\r\n\r")},
    {S("\nHTTP/1.1 200 OK\r\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("\n")},
    {S("\r\r\nHTTP/1.1 200 OK\r\n\r\n"), SLUICE_EBARE_CR, NULL, NULL, 0, S("\r\r")},
    {S("HTTP/2.0 200 OK\r\n\r\n"), SLUICE_EVERSION, NULL, NULL, 0, S("HTTP/2.0 200 OK\r\n")},
    {S("HTTP/1.1 200 OK\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("HTTP/1.1 200 OK\n")},
    {S("HTTP/1.1 200\n\r\n"), SLUICE_EBARE_LF, NULL, NULL, 0, S("HTTP/1.1 200\n")},
    {S("HTTP/1.1 200 OK\rX\r\n\r\n"), SLUICE_EBARE_CR, NULL, NULL, 0, S("HTTP/1.1 200 OK\rX")},
    {S("HTTP/1.1 200 OK\r\nX : y\r\n\r\n"), SLUICE_EWS_BEFORE_COLON, NULL, NULL, 0, S("HTTP/1.1 200 OK\r\nX :")},
    {S("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n"), SLUICE_EOBS_FOLD, NULL, NULL, 0, S("HTTP/1.1 200 OK\r\nX: y\r\n ")},
    {S("HTTP/1.1 200 OK\r\nX: y\x00\r\n\r\n"), SLUICE_EBAD_HEADER_VALUE, NULL, NULL, 0, S("HTTP/1.1 200 OK\r\nX: y\x00")},
    {S("HTTP/1.1 200 OK\r\nX\r\n\r\n"), SLUICE_ENO_COLON, NULL, NULL, 0, S("HTTP/1.1 200 OK\r\nX\r\n")},
};

TEST(http_response_table)
{
    run_table(1, responses, sizeof responses / sizeof responses[0]);
}

/* ---- limits ---------------------------------------------------------------------- */

/* Parses every prefix of in[0, n) (at the guard page) with `lim`; returns the
 * shortest prefix length giving a non-zero result, and that result. */
static size_t first_result(int response, const char *in, size_t n, const sluice_http_limits *lim,
                           int *result, guard *g)
{
    char a[256], b[256];
    for (size_t k = 0; k <= n; k++) {
        const unsigned char *p = guard_put(g, in, k);
        size_t off;
        int r = parse_any(response, p, k, lim, a, b, sizeof a, &off);
        if (r != 0) {
            *result = r;
            return k;
        }
    }
    *result = 0;
    return n + 1;
}

TEST(http_head_byte_limit)
{
    guard g;
    REQUIRE(guard_new(&g, 65536) == 0);
    static const char head[] = "GET /abc HTTP/1.1\r\nHost: example.com\r\nX: 1\r\n\r\n";
    size_t n = sizeof head - 1;
    int r;
    sluice_http_limits lim = {.max_head_bytes = n};
    EXPECT_EQ(first_result(0, head, n, &lim, &r, &g), n); /* exactly at the limit */
    EXPECT_EQ(r, (int)n);
    lim.max_head_bytes = n - 1;
    EXPECT_EQ(first_result(0, head, n, &lim, &r, &g), n); /* len > limit: too large */
    EXPECT_ERR(r, SLUICE_EHEAD_TOO_LARGE);
    /* leading empty lines do not count against the limit */
    static const char lead[] = "\r\n\r\nGET /abc HTTP/1.1\r\nHost: example.com\r\nX: 1\r\n\r\n";
    lim.max_head_bytes = n;
    EXPECT_EQ(first_result(0, lead, n + 4, &lim, &r, &g), n + 4);
    EXPECT_EQ(r, (int)n + 4);
    /* a tiny limit inside the request line */
    lim.max_head_bytes = 5;
    EXPECT_EQ(first_result(0, head, n, &lim, &r, &g), 6);
    EXPECT_ERR(r, SLUICE_EHEAD_TOO_LARGE);
    /* an error past the limit is never reported: the limit comes first */
    static const char late[] = "GET / HTTP/1.1\r\nX: \x01\r\n\r\n";
    lim.max_head_bytes = 19;
    EXPECT_EQ(first_result(0, late, sizeof late - 1, &lim, &r, &g), 20);
    EXPECT_ERR(r, SLUICE_EHEAD_TOO_LARGE);
    lim.max_head_bytes = 20;
    EXPECT_EQ(first_result(0, late, sizeof late - 1, &lim, &r, &g), 20);
    EXPECT_ERR(r, SLUICE_EBAD_HEADER_VALUE);
    /* responses */
    static const char res[] = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
    lim.max_head_bytes = sizeof res - 1;
    EXPECT_EQ(first_result(1, res, sizeof res - 1, &lim, &r, &g), sizeof res - 1);
    EXPECT_EQ(r, (int)sizeof res - 1);
    lim.max_head_bytes = sizeof res - 2;
    EXPECT_EQ(first_result(1, res, sizeof res - 1, &lim, &r, &g), sizeof res - 1);
    EXPECT_ERR(r, SLUICE_EHEAD_TOO_LARGE);
    guard_free(&g);
}

TEST(http_head_default_limit_huge_lines)
{
    guard g;
    REQUIRE(guard_new(&g, 65536) == 0);
    size_t big = 40000;
    char *in = malloc(big);
    REQUIRE(in != NULL);
    sluice_http_request req;
    sluice_http_header h[4];
    /* a single huge request line: rejected at 16385 bytes, not later */
    memcpy(in, "GET /", 5);
    memset(in + 5, 'a', big - 5);
    const unsigned char *p = guard_put(&g, in, 16384);
    EXPECT_EQ(sluice_http_parse_request(p, 16384, NULL, &req, h, 4), 0);
    p = guard_put(&g, in, 16385);
    EXPECT_ERR(sluice_http_parse_request(p, 16385, NULL, &req, h, 4), SLUICE_EHEAD_TOO_LARGE);
    EXPECT_EQ(req.error_offset, 16384);
    p = guard_put(&g, in, big);
    EXPECT_ERR(sluice_http_parse_request(p, big, NULL, &req, h, 4), SLUICE_EHEAD_TOO_LARGE);
    /* a huge header value */
    static const char line[] = "GET / HTTP/1.1\r\nX: ";
    memcpy(in, line, sizeof line - 1);
    memset(in + sizeof line - 1, 'v', big - (sizeof line - 1));
    p = guard_put(&g, in, big);
    EXPECT_ERR(sluice_http_parse_request(p, big, NULL, &req, h, 4), SLUICE_EHEAD_TOO_LARGE);
    /* a head of exactly 16384 bytes is fine */
    size_t vlen = 16384 - (sizeof line - 1) - 4;
    memcpy(in + sizeof line - 1 + vlen, "\r\n\r\n", 4);
    p = guard_put(&g, in, 16384);
    EXPECT_EQ(sluice_http_parse_request(p, 16384, NULL, &req, h, 4), 16384);
    EXPECT_EQ(req.headers[0].value_len, vlen);
    /* and one byte more is not */
    memmove(in + sizeof line, in + sizeof line - 1, vlen + 4);
    p = guard_put(&g, in, 16385);
    EXPECT_ERR(sluice_http_parse_request(p, 16385, NULL, &req, h, 4), SLUICE_EHEAD_TOO_LARGE);
    free(in);
    guard_free(&g);
}

/* "GET / HTTP/1.1\r\n" + n fields "Xk: v\r\n" + "\r\n" */
static size_t many_fields(char *out, size_t n)
{
    size_t l = (size_t)sprintf(out, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < n; i++)
        l += (size_t)sprintf(out + l, "X%zu: v\r\n", i);
    l += (size_t)sprintf(out + l, "\r\n");
    return l;
}

TEST(http_header_count_limit)
{
    static char in[8192];
    sluice_http_header h[128];
    sluice_http_request req;
    size_t n = many_fields(in, 100);
    EXPECT_EQ(sluice_http_parse_request(in, n, NULL, &req, h, 128), (int)n);
    EXPECT_EQ(req.num_headers, 100);
    EXPECT_MEM(req.headers[99].name, req.headers[99].name_len, "X99", 3);
    n = many_fields(in, 101);
    EXPECT_ERR(sluice_http_parse_request(in, n, NULL, &req, h, 128), SLUICE_ETOO_MANY_HEADERS);
    /* detected when the 101st field starts, before the head is complete */
    size_t at = req.error_offset;
    EXPECT_MEM(in + at, 5, "X100:", 5);
    EXPECT_ERR(sluice_http_parse_request(in, at + 1, NULL, &req, h, 128), SLUICE_ETOO_MANY_HEADERS);
    EXPECT_EQ(sluice_http_parse_request(in, at, NULL, &req, h, 128), 0);
    /* the caller's array is a limit too */
    n = many_fields(in, 4);
    EXPECT_ERR(sluice_http_parse_request(in, n, NULL, &req, h, 3), SLUICE_ETOO_MANY_HEADERS);
    EXPECT_EQ(sluice_http_parse_request(in, n, NULL, &req, h, 4), (int)n);
    sluice_http_limits lim = {.max_headers = 2};
    EXPECT_ERR(sluice_http_parse_request(in, n, &lim, &req, h, 128), SLUICE_ETOO_MANY_HEADERS);
    n = many_fields(in, 0);
    EXPECT_EQ(sluice_http_parse_request(in, n, &lim, &req, h, 0), (int)n);
    EXPECT_EQ(req.num_headers, 0);
    sluice_http_response res;
    static const char r3[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    EXPECT_ERR(sluice_http_parse_response(r3, sizeof r3 - 1, &lim, &res, h, 128),
               SLUICE_ETOO_MANY_HEADERS);
}

TEST(http_parse_error_offsets_and_restart)
{
    sluice_http_request req;
    sluice_http_header h[8];
    static const char bad[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Y : z\r\n\r\n";
    EXPECT_ERR(sluice_http_parse_request(bad, sizeof bad - 1, NULL, &req, h, 8),
               SLUICE_EWS_BEFORE_COLON);
    EXPECT_EQ(req.error_offset, 28);
    static const char ver[] = "GET / HTTP/3.0\r\n\r\n";
    EXPECT_ERR(sluice_http_parse_request(ver, sizeof ver - 1, NULL, &req, h, 8), SLUICE_EVERSION);
    EXPECT_EQ(req.error_offset, 6);
    /* the same structs, reused across calls with more bytes each time */
    static const char ok[] = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    int r = 0;
    size_t n = 0;
    while (r == 0 && n < sizeof ok - 1)
        r = sluice_http_parse_request(ok, n += 7, NULL, &req, h, 8);
    EXPECT_EQ(r, (int)sizeof ok - 4);
    EXPECT_EQ(req.head_len, sizeof ok - 4);
    EXPECT_EQ(req.num_headers, 2);
    EXPECT(req.headers == h);
    EXPECT_EQ(sluice_http_parse_request(NULL, 0, NULL, &req, h, 8), 0);
    sluice_http_response res;
    EXPECT_EQ(sluice_http_parse_response(NULL, 0, NULL, &res, h, 8), 0);
}

/* Random heads built from valid pieces: every random split must agree with
 * the whole parse. */
TEST(http_random_valid_heads)
{
    guard g;
    REQUIRE(guard_new(&g, 65536) == 0);
    unsigned long long seed = 0x5eed1234;
    static const char *const names[] = {"Host", "Accept", "X-Forwarded-For", "Cookie", "a",
                                        "Content-Type", "X_y.z~1"};
    static const char *const values[] = {"", "x", "text/html, */*;q=0.8", "  padded  ",
                                         "a\tb", "\xc3\xa9t\xc3\xa9", "0123456789abcdefghijklmnop"};
    char in[2048], canon[2048], start[512], fields[2048];
    for (int iter = 0; iter < 300; iter++) {
        size_t l = (size_t)sprintf(in, "%s /p%d?q=%d HTTP/1.%d\r\n",
                                   t_rand(&seed) % 2 ? "GET" : "PUT", iter, iter,
                                   (int)(t_rand(&seed) % 2));
        size_t nf = t_rand(&seed) % 12;
        canon[0] = '\0';
        for (size_t i = 0; i < nf; i++) {
            const char *nm = names[t_rand(&seed) % 7], *v = values[t_rand(&seed) % 7];
            l += (size_t)sprintf(in + l, "%s:%s%s\r\n", nm, t_rand(&seed) % 2 ? " " : "", v);
            size_t vs = 0, ve = strlen(v);
            while (vs < ve && (v[vs] == ' ' || v[vs] == '\t'))
                vs++;
            while (ve > vs && (v[ve - 1] == ' ' || v[ve - 1] == '\t'))
                ve--;
            cats(canon, sizeof canon, nm);
            cats(canon, sizeof canon, ":");
            cat(canon, sizeof canon, v + vs, ve - vs);
            cats(canon, sizeof canon, "\n");
        }
        l += (size_t)sprintf(in + l, "\r\n");
        for (int s = 0; s < 8; s++) {
            size_t k = t_rand(&seed) % (l + 1), off;
            const unsigned char *p = guard_put(&g, in, k);
            int r = parse_any(0, p, k, NULL, start, fields, sizeof fields, &off);
            EXPECT_EQ(r, k == l ? (int)l : 0);
        }
        const unsigned char *p = guard_put(&g, in, l);
        size_t off;
        EXPECT_EQ(parse_any(0, p, l, NULL, start, fields, sizeof fields, &off), (int)l);
        EXPECT_STR(fields, canon);
    }
    guard_free(&g);
}

/* ---- framing ------------------------------------------------------------------- */

typedef struct fcase {
    int minor;
    const char *fields;
    int want;
    sluice_http_body body;
    uint64_t length;
} fcase;

static const fcase req_framing[] = {
    {1, "", 0, SLUICE_HTTP_BODY_NONE, 0},
    {0, "", 0, SLUICE_HTTP_BODY_NONE, 0},
    {1, "Content-Length: 5\r\n", 0, SLUICE_HTTP_BODY_LENGTH, 5},
    {1, "Content-Length: 0\r\n", 0, SLUICE_HTTP_BODY_LENGTH, 0},
    {1, "content-LENGTH: 00042\r\n", 0, SLUICE_HTTP_BODY_LENGTH, 42},
    {0, "Content-Length: 7\r\n", 0, SLUICE_HTTP_BODY_LENGTH, 7},
    {1, "Content-Length: 9223372036854775807\r\n", 0, SLUICE_HTTP_BODY_LENGTH, UINT64_C(9223372036854775807)},
    {1, "Transfer-Encoding: chunked\r\n", 0, SLUICE_HTTP_BODY_CHUNKED, 0},
    {1, "transfer-encoding: CHUNKED\r\n", 0, SLUICE_HTTP_BODY_CHUNKED, 0},
    {1, "Transfer-Encoding:   Chunked \t\r\n", 0, SLUICE_HTTP_BODY_CHUNKED, 0},
    {1, "Content-Length: 5\r\nContent-Length: 5\r\n", SLUICE_EDUP_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 5\r\nContent-Length: 6\r\n", SLUICE_EDUP_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 5, 5\r\n", SLUICE_EDUP_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 5,5\r\n", SLUICE_EDUP_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 5,\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: ,5\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 5, x\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: +5\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: -1\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 5 5\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 1 000\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length:\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 0x10\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 5a\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 1e3\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 9223372036854775808\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 18446744073709551616\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: 99999999999999999999999999\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Content-Length: \xd9\xa5\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
    {1, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", SLUICE_ECL_AND_TE, 0, 0},
    {1, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", SLUICE_ECL_AND_TE, 0, 0},
    {1, "Content-Length: x\r\nTransfer-Encoding: gzip\r\n", SLUICE_ECL_AND_TE, 0, 0},
    {1, "Transfer-Encoding: chunked, identity\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: identity\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: gzip\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: gzip, chunked\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: , chunked\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: chunked,\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: chunked, chunked\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding:\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: xchunked\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: chunk\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: \"chunked\"\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {1, "Transfer-Encoding: chunked;q=1\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {0, "Transfer-Encoding: chunked\r\n", SLUICE_ETE_HTTP10, 0, 0},
    {0, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", SLUICE_ETE_HTTP10, 0, 0},
};

static int parse_framing_head(int response, int minor, const char *first, const char *fields,
                              char *buf, size_t cap, sluice_http_header *h, size_t hcap,
                              sluice_http_request *req, sluice_http_response *res)
{
    int n = response ? snprintf(buf, cap, "HTTP/1.%d %s\r\n%s\r\n", minor, first, fields)
                     : snprintf(buf, cap, "%s HTTP/1.%d\r\nHost: a\r\n%s\r\n", first, minor, fields);
    return response ? sluice_http_parse_response(buf, (size_t)n, NULL, res, h, hcap)
                    : sluice_http_parse_request(buf, (size_t)n, NULL, req, h, hcap);
}

TEST(http_request_framing_table)
{
    char buf[512];
    sluice_http_header h[8];
    sluice_http_request req;
    for (size_t i = 0; i < sizeof req_framing / sizeof req_framing[0]; i++) {
        const fcase *f = &req_framing[i];
        int n = parse_framing_head(0, f->minor, "POST /", f->fields, buf, sizeof buf, h, 8, &req,
                                   NULL);
        if (n <= 0) {
            harness_fail(__FILE__, __LINE__, "framing case %zu: parse %s", i, sluice_err_name(n));
            continue;
        }
        sluice_http_framing fr = {SLUICE_HTTP_BODY_CLOSE, 99};
        int r = sluice_http_request_framing(&req, &fr);
        if (r != f->want || fr.body != f->body || fr.length != f->length)
            harness_fail(__FILE__, __LINE__, "framing case %zu (%s): %s body %d len %llu", i,
                         f->fields, sluice_err_name(r), (int)fr.body,
                         (unsigned long long)fr.length);
    }
}

typedef struct rfcase {
    const char *method;
    int minor;
    const char *status;
    const char *fields;
    int want;
    sluice_http_body body;
    uint64_t length;
} rfcase;

static const rfcase res_framing[] = {
    {"GET", 1, "200 OK", "Content-Length: 5\r\n", 0, SLUICE_HTTP_BODY_LENGTH, 5},
    {"GET", 1, "200 OK", "Transfer-Encoding: chunked\r\n", 0, SLUICE_HTTP_BODY_CHUNKED, 0},
    {"GET", 1, "200 OK", "", 0, SLUICE_HTTP_BODY_CLOSE, 0},
    {"GET", 0, "200 OK", "", 0, SLUICE_HTTP_BODY_CLOSE, 0},
    {"GET", 1, "404 Not Found", "Content-Length: 0\r\n", 0, SLUICE_HTTP_BODY_LENGTH, 0},
    {"HEAD", 1, "200 OK", "Content-Length: 5\r\n", 0, SLUICE_HTTP_BODY_NONE, 0},
    {"HEAD", 1, "200 OK", "Transfer-Encoding: chunked\r\n", 0, SLUICE_HTTP_BODY_NONE, 0},
    {"head", 1, "200 OK", "Content-Length: 5\r\n", 0, SLUICE_HTTP_BODY_LENGTH, 5},
    {"GET", 1, "204 No Content", "Content-Length: 5\r\n", 0, SLUICE_HTTP_BODY_NONE, 0},
    {"GET", 1, "304 Not Modified", "Content-Length: 5\r\n", 0, SLUICE_HTTP_BODY_NONE, 0},
    {"GET", 1, "100 Continue", "", 0, SLUICE_HTTP_BODY_NONE, 0},
    {"GET", 1, "101 Switching Protocols", "", 0, SLUICE_HTTP_BODY_NONE, 0},
    {"GET", 1, "103 Early Hints", "", 0, SLUICE_HTTP_BODY_NONE, 0},
    {"CONNECT", 1, "200 OK", "", 0, SLUICE_HTTP_BODY_NONE, 0},
    {"CONNECT", 1, "407 Proxy Authentication Required", "Content-Length: 3\r\n", 0, SLUICE_HTTP_BODY_LENGTH, 3},
    {"GET", 1, "200 OK", "Transfer-Encoding: gzip\r\n", 0, SLUICE_HTTP_BODY_CLOSE, 0},
    {"GET", 1, "200 OK", "Transfer-Encoding: gzip, chunked\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {"GET", 1, "200 OK", "Transfer-Encoding: chunked, gzip\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {"GET", 1, "200 OK", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", SLUICE_EBAD_TRANSFER_ENCODING, 0, 0},
    {"GET", 1, "200 OK", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", SLUICE_ECL_AND_TE, 0, 0},
    {"GET", 0, "200 OK", "Transfer-Encoding: chunked\r\n", SLUICE_ETE_HTTP10, 0, 0},
    {"GET", 1, "200 OK", "Content-Length: 5\r\nContent-Length: 5\r\n", SLUICE_EDUP_CONTENT_LENGTH, 0, 0},
    {"GET", 1, "200 OK", "Content-Length: -5\r\n", SLUICE_EBAD_CONTENT_LENGTH, 0, 0},
};

TEST(http_response_framing_table)
{
    char buf[512];
    sluice_http_header h[8];
    sluice_http_response res;
    for (size_t i = 0; i < sizeof res_framing / sizeof res_framing[0]; i++) {
        const rfcase *f = &res_framing[i];
        int n = parse_framing_head(1, f->minor, f->status, f->fields, buf, sizeof buf, h, 8,
                                   NULL, &res);
        if (n <= 0) {
            harness_fail(__FILE__, __LINE__, "case %zu: parse %s", i, sluice_err_name(n));
            continue;
        }
        sluice_http_framing fr = {SLUICE_HTTP_BODY_CHUNKED, 99};
        int r = sluice_http_response_framing(&res, f->method, strlen(f->method), &fr);
        if (r != f->want || fr.body != f->body || fr.length != f->length)
            harness_fail(__FILE__, __LINE__, "response framing case %zu (%s %s): %s body %d len %llu",
                         i, f->method, f->status, sluice_err_name(r), (int)fr.body,
                         (unsigned long long)fr.length);
    }
}

/* ---- Host ------------------------------------------------------------------------ */

typedef struct hostcase {
    int minor;
    const char *fields;
    int want;
    const char *host;
} hostcase;

static const hostcase hosts[] = {
    {1, "Host: example.com\r\n", 1, "example.com"},
    {1, "host: Example.COM:8080\r\n", 1, "Example.COM:8080"},
    {1, "Host: 127.0.0.1\r\n", 1, "127.0.0.1"},
    {1, "Host: [::1]:80\r\n", 1, "[::1]:80"},
    {1, "Host: [2001:db8::a]\r\n", 1, "[2001:db8::a]"},
    {1, "Host: [v1.fe80::a+en1]\r\n", 1, "[v1.fe80::a+en1]"},
    {1, "Host: xn--bcher-kva.example\r\n", 1, "xn--bcher-kva.example"},
    {1, "Host: a%2Db.example\r\n", 1, "a%2Db.example"},
    {1, "Host: under_score.example:\r\n", 1, "under_score.example:"},
    {1, "Host:  padded.example  \r\n", 1, "padded.example"},
    {0, "Host: example.com\r\n", 1, "example.com"},
    {1, "", SLUICE_ENO_HOST, NULL},
    {0, "", 0, NULL},
    {1, "Host: a\r\nHost: a\r\n", SLUICE_EDUP_HOST, NULL},
    {1, "Host: a\r\nhost: b\r\n", SLUICE_EDUP_HOST, NULL},
    {0, "Host: a\r\nHost:\r\n", SLUICE_EDUP_HOST, NULL},
    {1, "Host:\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: a, b\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: a,b\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: user@example.com\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: user:pw@example.com\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: example.com/path\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: example.com:80x\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: example.com:http\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: example.com:80:81\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: :80\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: [::1\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: []\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: [::1]x\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: [::g]\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: a b\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: a%2\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: a%zz\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: exa\"mple\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: example.com?q\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: example.com#f\r\n", SLUICE_EBAD_HOST, NULL},
    {1, "Host: caf\xc3\xa9.example\r\n", SLUICE_EBAD_HOST, NULL},
    {0, "Host: a/b\r\n", SLUICE_EBAD_HOST, NULL},
};

TEST(http_host_table)
{
    char buf[512];
    sluice_http_header h[8];
    sluice_http_request req;
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        const hostcase *c = &hosts[i];
        int n = snprintf(buf, sizeof buf, "GET / HTTP/1.%d\r\n%s\r\n", c->minor, c->fields);
        REQUIRE(sluice_http_parse_request(buf, (size_t)n, NULL, &req, h, 8) == n);
        const char *host = "junk";
        size_t len = 99;
        int r = sluice_http_request_host(&req, &host, &len);
        int ok = r == c->want;
        if (c->host)
            ok = ok && host && len == strlen(c->host) && memcmp(host, c->host, len) == 0;
        else
            ok = ok && host == NULL && len == 0;
        if (!ok)
            harness_fail(__FILE__, __LINE__, "host case %zu (%s): %s", i, c->fields,
                         sluice_err_name(r));
    }
    EXPECT_EQ(sluice_http_request_host(&req, NULL, NULL), SLUICE_EBAD_HOST);
}

/* ---- helpers ------------------------------------------------------------------- */

static int parse_req(const char *s, sluice_http_request *req, sluice_http_header *h, size_t cap)
{
    return sluice_http_parse_request(s, strlen(s), NULL, req, h, cap);
}

/* How many fields are named `name`, through the public iterator. */
static size_t header_count(const sluice_http_header *h, size_t n, const char *name)
{
    size_t k = 0;
    for (const sluice_http_header *x = NULL; (x = sluice_http_header_next(h, n, name, x));)
        k++;
    return k;
}

TEST(http_header_lookup)
{
    sluice_http_request req;
    sluice_http_header h[8];
    REQUIRE(parse_req("GET / HTTP/1.1\r\nHost: a\r\nVia: 1\r\nX: y\r\nvIA: 2\r\nVia:3\r\n\r\n", &req,
                      h, 8) > 0);
    const sluice_http_header *f = sluice_http_header_find(req.headers, req.num_headers, "via");
    REQUIRE(f != NULL);
    EXPECT_MEM(f->value, f->value_len, "1", 1);
    EXPECT_EQ(header_count(req.headers, req.num_headers, "VIA"), 3);
    EXPECT_EQ(header_count(req.headers, req.num_headers, "Vi"), 0);
    EXPECT_EQ(header_count(req.headers, req.num_headers, "Viaa"), 0);
    EXPECT(sluice_http_header_find(req.headers, req.num_headers, "missing") == NULL);
    char seen[8] = "";
    for (const sluice_http_header *x = NULL;
         (x = sluice_http_header_next(req.headers, req.num_headers, "Via", x));)
        cat(seen, sizeof seen, x->value, x->value_len);
    EXPECT_STR(seen, "123");
    EXPECT(sluice_http_header_find(req.headers, 0, "host") == NULL);
}

TEST(http_token_lists)
{
    static const struct {
        const char *list, *token;
        int want;
    } t[] = {
        {"close", "close", 1},
        {"Close", "close", 1},
        {"keep-alive, Upgrade", "upgrade", 1},
        {" ,, x ,\t y\t,", "y", 1},
        {"closed", "close", 0},
        {"clos", "close", 0},
        {"", "close", 0},
        {",", "close", 0},
        {"a b, close", "close", 1},
        {"a b, c", "b", 0},
        {"\"close\"", "close", 0},
        {"x, keep-alive", "keep-alive", 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (sluice_http_list_has(t[i].list, strlen(t[i].list), t[i].token) != t[i].want)
            harness_fail(__FILE__, __LINE__, "list case %zu: [%s] has %s", i, t[i].list,
                         t[i].token);
}

TEST(http_keep_alive_and_hop_by_hop)
{
    static const struct {
        const char *head;
        int keep;
    } t[] = {
        {"GET / HTTP/1.1\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", 0},
    };
    sluice_http_request req;
    sluice_http_header h[16];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        REQUIRE(parse_req(t[i].head, &req, h, 16) > 0);
        if (sluice_http_request_keep_alive(&req) != t[i].keep)
            harness_fail(__FILE__, __LINE__, "keep-alive case %zu", i);
    }
    sluice_http_response res;
    static const char r10[] = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n";
    REQUIRE(sluice_http_parse_response(r10, sizeof r10 - 1, NULL, &res, h, 8) > 0);
    EXPECT_EQ(sluice_http_response_keep_alive(&res), 1);
    static const char r11[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    REQUIRE(sluice_http_parse_response(r11, sizeof r11 - 1, NULL, &res, h, 8) > 0);
    EXPECT_EQ(sluice_http_response_keep_alive(&res), 0);

    REQUIRE(parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo, close\r\nX-Foo: 1\r\n"
                      "Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Bar: 2\r\n"
                      "Proxy-Connection: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                      &req, h, 16) > 0);
    static const int hop[] = {0, 1, 1, 1, 1, 1, 0, 1, 1};
    for (size_t i = 0; i < req.num_headers; i++)
        if (sluice_http_header_is_hop_by_hop(req.headers, req.num_headers, &req.headers[i]) !=
            hop[i])
            harness_fail(__FILE__, __LINE__, "hop-by-hop field %zu", i);

    /* Connection cannot remove Host or Content-Length (RFC 9110 section
     * 7.6.1: a sender must not list them; a forwarder keeps or regenerates
     * them), in any case and list position */
    REQUIRE(parse_req("POST / HTTP/1.1\r\nHost: a\r\nConnection: host, CONTENT-LENGTH ,x-a\r\n"
                      "Content-Length: 1\r\nX-A: 1\r\nx-b: 2\r\n\r\n",
                      &req, h, 16) > 0);
    static const int kept[] = {0, 1, 0, 1, 0};
    for (size_t i = 0; i < req.num_headers; i++)
        if (sluice_http_header_is_hop_by_hop(req.headers, req.num_headers, &req.headers[i]) !=
            kept[i])
            harness_fail(__FILE__, __LINE__, "Connection-listed field %zu", i);
}

TEST(http_connect_has_no_body)
{
    /* RFC 9110 section 9.3.6: bytes after a CONNECT head are tunnel data */
    static const struct {
        const char *fields;
        int want;
        sluice_http_body body;
    } cases[] = {
        {"", 0, SLUICE_HTTP_BODY_NONE},
        {"Content-Length: 0\r\n", 0, SLUICE_HTTP_BODY_LENGTH},
        {"Content-Length: 10\r\n", SLUICE_ECONNECT_BODY, SLUICE_HTTP_BODY_NONE},
        {"Transfer-Encoding: chunked\r\n", SLUICE_ECONNECT_BODY, SLUICE_HTTP_BODY_NONE},
        {"Transfer-Encoding: gzip\r\n", SLUICE_EBAD_TRANSFER_ENCODING, SLUICE_HTTP_BODY_NONE},
    };
    char buf[256];
    sluice_http_header h[8];
    sluice_http_request req;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = snprintf(buf, sizeof buf, "CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n%s\r\n",
                         cases[i].fields);
        REQUIRE(sluice_http_parse_request(buf, (size_t)n, NULL, &req, h, 8) == n);
        sluice_http_framing fr = {SLUICE_HTTP_BODY_CLOSE, 99};
        EXPECT_EQ(sluice_http_request_framing(&req, &fr), cases[i].want);
        EXPECT_EQ(fr.body, cases[i].body);
        EXPECT_EQ(fr.length, 0);
        if (cases[i].want)
            EXPECT_EQ(sluice_http_error_status(cases[i].want), 400);
    }
}

TEST(http_expect)
{
    static const struct {
        const char *head;
        sluice_http_expect want;
    } t[] = {
        {"PUT / HTTP/1.1\r\n\r\n", SLUICE_HTTP_EXPECT_NONE},
        {"PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", SLUICE_HTTP_EXPECT_CONTINUE},
        {"PUT / HTTP/1.1\r\nexpect: 100-Continue \r\n\r\n", SLUICE_HTTP_EXPECT_CONTINUE},
        {"PUT / HTTP/1.1\r\nExpect: 100-continue, x\r\n\r\n", SLUICE_HTTP_EXPECT_OTHER},
        {"PUT / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", SLUICE_HTTP_EXPECT_OTHER},
        {"PUT / HTTP/1.1\r\nExpect:\r\n\r\n", SLUICE_HTTP_EXPECT_OTHER},
        {"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nExpect: x\r\n\r\n", SLUICE_HTTP_EXPECT_OTHER},
        {"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", SLUICE_HTTP_EXPECT_NONE},
        {"PUT / HTTP/1.0\r\nExpect: other\r\n\r\n", SLUICE_HTTP_EXPECT_OTHER},
    };
    sluice_http_request req;
    sluice_http_header h[8];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        REQUIRE(parse_req(t[i].head, &req, h, 8) > 0);
        if (sluice_http_request_expect(&req) != t[i].want)
            harness_fail(__FILE__, __LINE__, "expect case %zu", i);
    }
}

TEST(http_target_vs_method)
{
    static const struct {
        const char *line;
        int want;
    } t[] = {
        {"OPTIONS * HTTP/1.1\r\n\r\n", 0},
        {"OPTIONS / HTTP/1.1\r\n\r\n", 0},
        {"GET * HTTP/1.1\r\n\r\n", SLUICE_EBAD_TARGET},
        {"options * HTTP/1.1\r\n\r\n", SLUICE_EBAD_TARGET},
        {"CONNECT h:443 HTTP/1.1\r\n\r\n", 0},
        {"GET h:443 HTTP/1.1\r\n\r\n", SLUICE_EBAD_TARGET},
        {"CONNECT / HTTP/1.1\r\n\r\n", SLUICE_EBAD_TARGET},
        {"CONNECT http://h:443/ HTTP/1.1\r\n\r\n", SLUICE_EBAD_TARGET},
        {"CONNECT * HTTP/1.1\r\n\r\n", SLUICE_EBAD_TARGET},
        {"GET http://h/ HTTP/1.1\r\n\r\n", 0},
        {"POST /x HTTP/1.1\r\n\r\n", 0},
    };
    sluice_http_request req;
    sluice_http_header h[2];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        REQUIRE(parse_req(t[i].line, &req, h, 2) > 0);
        if (sluice_http_request_check_target(&req) != t[i].want)
            harness_fail(__FILE__, __LINE__, "target case %zu: %s", i, t[i].line);
    }
}

TEST(http_reasons_and_statuses)
{
    EXPECT_STR(sluice_http_reason_phrase(200), "OK");
    EXPECT_STR(sluice_http_reason_phrase(404), "Not Found");
    EXPECT_STR(sluice_http_reason_phrase(431), "Request Header Fields Too Large");
    EXPECT_STR(sluice_http_reason_phrase(505), "HTTP Version Not Supported");
    EXPECT_STR(sluice_http_reason_phrase(299), "");
    EXPECT_STR(sluice_http_reason_phrase(-1), "");
    EXPECT_EQ(sluice_http_error_status(SLUICE_EHEAD_TOO_LARGE), 431);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ETOO_MANY_HEADERS), 431);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EVERSION), 505);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBAD_VERSION), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBARE_LF), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ETOO_MANY_EMPTY_LINES), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ECL_AND_TE), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBAD_HOST), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBAD_CHUNK_SIZE), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ENOMEM), 500); /* an answer is still possible */
    EXPECT_EQ(sluice_http_error_status(-104), 0);
    EXPECT_EQ(sluice_http_error_status(0), 0);
}

/* ---- builder ----------------------------------------------------------------------- */

static void expect_head(sluice_bytes *b, const char *want)
{
    EXPECT_MEM(b->data, b->len, want, strlen(want));
    sluice_bytes_release(b);
}

TEST(http_builder_exact_bytes)
{
    sluice_http_head_builder b;
    sluice_bytes out;
    sluice_http_head_init(&b, T_POOL);
    EXPECT_EQ(sluice_http_head_request_line(&b, "POST", 4, "/up?x=1", 7), 0);
    EXPECT_EQ(sluice_http_head_add_header(&b, "Host", 4, "example.com", 11), 0);
    EXPECT_EQ(sluice_http_head_add_content_length(&b, 1234567890123ull), 0);
    EXPECT_EQ(sluice_http_head_add_header(&b, "X-Empty", 7, "", 0), 0);
    EXPECT_EQ(sluice_http_head_add_header(&b, "X-Tab", 5, "a\tb \xc3\xa9", 6), 0);
    EXPECT_EQ(sluice_http_head_finish(&b, &out), 0);
    expect_head(&out, "POST /up?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1234567890123\r\n"
                      "X-Empty: \r\nX-Tab: a\tb \xc3\xa9\r\n\r\n");
    EXPECT_EQ(sluice_http_head_finish(&b, &out), SLUICE_ECLOSED); /* spent */
    sluice_http_head_discard(&b);

    sluice_http_head_init(&b, T_POOL);
    EXPECT_EQ(sluice_http_head_status_line(&b, 404, NULL, 0), 0);
    EXPECT_EQ(sluice_http_head_add_content_length(&b, 0), 0);
    EXPECT_EQ(sluice_http_head_finish(&b, &out), 0);
    expect_head(&out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");

    sluice_http_head_init(&b, T_POOL);
    EXPECT_EQ(sluice_http_head_status_line(&b, 200, "Fine", 4), 0);
    EXPECT_EQ(sluice_http_head_finish(&b, &out), 0);
    expect_head(&out, "HTTP/1.1 200 Fine\r\n\r\n");

    sluice_http_head_init(&b, T_POOL);
    EXPECT_EQ(sluice_http_head_status_line(&b, 299, NULL, 0), 0);
    EXPECT_EQ(sluice_http_head_finish(&b, &out), 0);
    expect_head(&out, "HTTP/1.1 299 \r\n\r\n");

    sluice_http_head_init(&b, T_POOL);
    EXPECT_EQ(sluice_http_head_status_line(&b, 100, NULL, 0), 0);
    EXPECT_EQ(sluice_http_head_finish(&b, &out), 0);
    expect_head(&out, "HTTP/1.1 100 Continue\r\n\r\n");

    /* discard before finish releases the block */
    sluice_http_head_init(&b, T_POOL);
    EXPECT_EQ(sluice_http_head_status_line(&b, 200, NULL, 0), 0);
    sluice_http_head_discard(&b);
    sluice_http_head_discard(&b);
}

TEST(http_builder_forward_line)
{
    static const struct {
        const char *in, *line;
    } t[] = {
        {"GET /a?b HTTP/1.0\r\n\r\n", "GET /a?b HTTP/1.1\r\n"},
        {"GET http://h:8/p/q?r HTTP/1.1\r\n\r\n", "GET /p/q?r HTTP/1.1\r\n"},
        {"GET http://h HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\n"},
        {"GET http://h?q=1 HTTP/1.1\r\n\r\n", "GET /?q=1 HTTP/1.1\r\n"},
        {"CONNECT h:443 HTTP/1.1\r\n\r\n", "CONNECT h:443 HTTP/1.1\r\n"},
        {"OPTIONS * HTTP/1.1\r\n\r\n", "OPTIONS * HTTP/1.1\r\n"},
    };
    sluice_http_request req;
    sluice_http_header h[2];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        REQUIRE(parse_req(t[i].in, &req, h, 2) > 0);
        sluice_http_head_builder b;
        sluice_bytes out;
        sluice_http_head_init(&b, T_POOL);
        EXPECT_EQ(sluice_http_head_forward_request_line(&b, &req), 0);
        EXPECT_EQ(sluice_http_head_finish(&b, &out), 0);
        char want[128];
        snprintf(want, sizeof want, "%s\r\n", t[i].line);
        expect_head(&out, want);
    }
}

TEST(http_builder_rejects_injection)
{
    static const struct {
        const char *name, *value;
        size_t vlen;
    } bad[] = {
        {"X", "a\r\nEvil: 1", 10},
        {"X", "a\nb", 3},
        {"X", "a\rb", 3},
        {"X", "a\0b", 3},
        {"X", "a\x01", 2},
        {"X", "a\x7f", 2},
        {"X: y\r\nZ", "v", 1},
        {"X\n", "v", 1},
        {"", "v", 1},
        {"X Y", "v", 1},
        {"X:", "v", 1},
    };
    sluice_http_head_builder b;
    sluice_bytes out;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sluice_http_head_init(&b, T_POOL);
        EXPECT_EQ(sluice_http_head_status_line(&b, 200, NULL, 0), 0);
        int r = sluice_http_head_add_header(&b, bad[i].name, strlen(bad[i].name), bad[i].value,
                                            bad[i].vlen);
        if (r != SLUICE_EINVAL)
            harness_fail(__FILE__, __LINE__, "injection case %zu: %s", i, sluice_err_name(r));
        /* sticky, and nothing is held */
        EXPECT_ERR(sluice_http_head_add_header(&b, "Ok", 2, "ok", 2), SLUICE_EINVAL);
        EXPECT_ERR(sluice_http_head_finish(&b, &out), SLUICE_EINVAL);
        EXPECT(out.owner == NULL && out.len == 0);
    }
    static const struct {
        const char *m, *t;
    } lines[] = {{"GET", "/a b"}, {"GET", "/a\r\n"}, {"G T", "/"}, {"", "/"}, {"GET", ""},
                 {"GET\r\n", "/"}, {"GET", "/\x80"}};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        sluice_http_head_init(&b, T_POOL);
        EXPECT_ERR(sluice_http_head_request_line(&b, lines[i].m, strlen(lines[i].m), lines[i].t,
                                                 strlen(lines[i].t)),
                   SLUICE_EINVAL);
        sluice_http_head_discard(&b);
    }
    sluice_http_head_init(&b, T_POOL);
    EXPECT_ERR(sluice_http_head_status_line(&b, 200, "OK\r\nX: y", 9), SLUICE_EINVAL);
    sluice_http_head_discard(&b);
    sluice_http_head_init(&b, T_POOL);
    EXPECT_ERR(sluice_http_head_status_line(&b, 99, NULL, 0), SLUICE_EINVAL);
    sluice_http_head_discard(&b);
    sluice_http_head_init(&b, T_POOL);
    EXPECT_ERR(sluice_http_head_status_line(&b, 1000, NULL, 0), SLUICE_EINVAL);
    sluice_http_head_discard(&b);
    sluice_http_head_init(&b, T_POOL);
    EXPECT_ERR(sluice_http_head_status_line(&b, 600, NULL, 0), SLUICE_EINVAL);
    sluice_http_head_discard(&b);
    sluice_http_head_init(&b, T_POOL);
    EXPECT_EQ(sluice_http_head_status_line(&b, 599, NULL, 0), 0);
    sluice_http_head_discard(&b);
}

TEST(http_builder_order_and_limits)
{
    sluice_http_head_builder b;
    sluice_bytes out;
    /* a header before the start line, two start lines, finish with nothing */
    sluice_http_head_init(&b, T_POOL);
    EXPECT_ERR(sluice_http_head_add_header(&b, "X", 1, "y", 1), SLUICE_EINVAL);
    sluice_http_head_discard(&b);
    sluice_http_head_init(&b, T_POOL);
    EXPECT_EQ(sluice_http_head_status_line(&b, 200, NULL, 0), 0);
    EXPECT_ERR(sluice_http_head_request_line(&b, "GET", 3, "/", 1), SLUICE_EINVAL);
    sluice_http_head_discard(&b);
    sluice_http_head_init(&b, T_POOL);
    EXPECT_ERR(sluice_http_head_finish(&b, &out), SLUICE_EINVAL);
    sluice_http_head_discard(&b);
    sluice_http_head_builder zero = {0};
    EXPECT_ERR(sluice_http_head_status_line(&zero, 200, NULL, 0), SLUICE_EINVAL);
    sluice_http_head_discard(&zero);

    /* a head that does not fit one block */
    sluice_pool *small;
    sluice_pool_config cfg = {.block_size = 64};
    REQUIRE(sluice_pool_new(&cfg, &small) == 0);
    sluice_http_head_init(&b, small);
    EXPECT_EQ(sluice_http_head_status_line(&b, 200, NULL, 0), 0); /* 17 bytes */
    EXPECT_EQ(sluice_http_head_add_header(&b, "X", 1, "0123456789012345678901234567890123456789", 40), 0); /* 62 */
    EXPECT_ERR(sluice_http_head_add_header(&b, "Y", 1, "", 0), SLUICE_ETOOBIG);
    EXPECT_ERR(sluice_http_head_finish(&b, &out), SLUICE_ETOOBIG);
    /* exactly full */
    sluice_http_head_init(&b, small);
    EXPECT_EQ(sluice_http_head_status_line(&b, 200, NULL, 0), 0);
    EXPECT_EQ(sluice_http_head_add_header(&b, "X", 1, "0123456789012345678901234567890123456789", 40), 0);
    EXPECT_EQ(sluice_http_head_finish(&b, &out), 0);
    EXPECT_EQ(out.len, 64);
    sluice_bytes_release(&out);
    /* the last two bytes of the block are the final CRLF: one more is too many */
    sluice_http_head_init(&b, small);
    EXPECT_EQ(sluice_http_head_status_line(&b, 200, NULL, 0), 0);
    EXPECT_EQ(sluice_http_head_add_header(&b, "X", 1, "01234567890123456789012345678901234567890", 41), 0);
    EXPECT_ERR(sluice_http_head_finish(&b, &out), SLUICE_ETOOBIG);
    sluice_pool_counters st;
    sluice_pool_stats(small, &st);
    EXPECT_EQ(st.blocks_live, 0);
    sluice_pool_close(small);

    /* a pool whose budget bodies have spent still builds heads: a head is
     * small memory of its own per message, not a pool block, and refusing
     * it would turn backpressure into errors */
    sluice_pool_config one = {.max_blocks = 1};
    REQUIRE(sluice_pool_new(&one, &small) == 0);
    sluice_block *hold;
    REQUIRE(sluice_block_get(small, &hold) == 0);
    sluice_http_head_init(&b, small);
    EXPECT_EQ(sluice_http_head_status_line(&b, 200, NULL, 0), 0);
    EXPECT_EQ(sluice_http_head_finish(&b, &out), 0);
    EXPECT_MEM(out.data, out.len, "HTTP/1.1 200 OK\r\n\r\n", 19);
    sluice_pool_stats(small, &st);
    EXPECT_EQ(st.blocks_live, 2); /* counted, but not a pool block */
    EXPECT_EQ(st.blocks_max, 1);
    sluice_bytes_release(&out);
    sluice_block_release(hold);
    sluice_pool_close(small);
}

TEST(http_builder_alloc_failure)
{
    for (long k = 1; k < 6; k++) {
        t_failalloc fa = {.fail_at = k};
        sluice_allocator al = t_failalloc_hook(&fa);
        sluice_pool_config cfg = {.allocator = &al};
        sluice_pool *p;
        if (sluice_pool_new(&cfg, &p) < 0) {
            EXPECT_EQ(fa.live, 0);
            continue;
        }
        sluice_http_head_builder b;
        sluice_bytes out;
        sluice_http_head_init(&b, p);
        int r1 = sluice_http_head_status_line(&b, 200, NULL, 0);
        int r2 = sluice_http_head_finish(&b, &out);
        EXPECT(r1 == 0 || r1 == SLUICE_ENOMEM);
        EXPECT_EQ(r2, r1);
        if (r2 == 0)
            expect_head(&out, "HTTP/1.1 200 OK\r\n\r\n");
        sluice_pool_close(p);
        EXPECT_EQ(fa.live, 0);
    }
}

/* What the builder writes, the parser reads back field for field. */
TEST(http_builder_round_trip)
{
    sluice_http_request req, back;
    sluice_http_header h[16], hb[16];
    REQUIRE(parse_req("GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n"
                      "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nAccept:  */*  \r\n"
                      "X-Tab: a\tb\r\n\r\n",
                      &req, h, 16) > 0);
    sluice_http_head_builder b;
    sluice_bytes out;
    sluice_http_head_init(&b, T_POOL);
    EXPECT_EQ(sluice_http_head_forward_request_line(&b, &req), 0);
    for (size_t i = 0; i < req.num_headers; i++)
        if (!sluice_http_header_is_hop_by_hop(req.headers, req.num_headers, &req.headers[i]))
            EXPECT_EQ(sluice_http_head_add_header(&b, req.headers[i].name, req.headers[i].name_len,
                                                  req.headers[i].value, req.headers[i].value_len),
                      0);
    REQUIRE(sluice_http_head_finish(&b, &out) == 0);
    EXPECT_EQ(sluice_http_parse_request(out.data, out.len, NULL, &back, hb, 16), (int)out.len);
    char a[512], c[512];
    canon_request(&back, a, sizeof a);
    EXPECT_STR(a, "GET|/a?b=c|o||/a?b=c|1");
    canon_fields(back.headers, back.num_headers, c, sizeof c);
    EXPECT_STR(c, "Host:example.com\nAccept:*/*\nX-Tab:a\tb\n");
    sluice_bytes_release(&out);
}

TEST(http_request_error_status)
{
    /* head errors as sluice_http_error_status */
    EXPECT_EQ(sluice_http_error_status(SLUICE_EHEAD_TOO_LARGE), 431);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EVERSION), 505);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBARE_LF), 400);
    /* bodies */
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBAD_CHUNK_SIZE), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ECHUNK_EXT_TOO_LONG), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ETRAILER_TOO_LARGE), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ETOOBIG), 413);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ETIMEDOUT), 408);
    /* multipart */
    EXPECT_EQ(sluice_http_error_status(SLUICE_ENOT_MULTIPART), 415);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBODY_TOO_LARGE), 413);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBAD_BOUNDARY), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBAD_DELIMITER), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EBAD_EXT_VALUE), 400);
    /* nobody to answer, or the server's own failure */
    EXPECT_EQ(sluice_http_error_status(SLUICE_ETRUNCATED), 0);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ENOMEM), 500);
    EXPECT_EQ(sluice_http_error_status(-104), 0);
    EXPECT_EQ(sluice_http_error_status(0), 0);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EPART_TOO_LARGE), 413);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ETOO_MANY_PARTS), 413);
    EXPECT_EQ(sluice_http_error_status(SLUICE_EPOOLFULL), 503);
    /* every code has a status a server can send, or 0 (502: the S3 store failed) */
#define X(name, value, status, msg)                                                      \
    EXPECT(status == 0 || status == 400 || status == 408 || status == 413 ||              \
           status == 415 || status == 431 || status == 500 || status == 502 ||           \
           status == 503 || status == 505);                                               \
    EXPECT_EQ(sluice_http_error_status(value), status);
    SLUICE_ERROR_MAP(X)
#undef X
    /* the body arrived whole without its close delimiter: the client waits */
    EXPECT_EQ(sluice_http_error_status(SLUICE_ENO_CLOSE_DELIMITER), 400);
    EXPECT_EQ(sluice_http_error_status(SLUICE_ECONNECT_BODY), 400);
}
