"""Rejections: nothing forwarded; the proxy answers and closes.

Contract: "malformed request line or header, bare LF anywhere in the head,
NUL, a header line without a colon -> 400; both Content-Length and
Transfer-Encoding, more than one Content-Length (even identical), a
Content-Length that is not plain digits, a Transfer-Encoding other than
exactly `chunked` (case-insensitive) -> 400; obs-fold, whitespace before the
colon -> 400; a head (request line plus header lines with their CRLFs) over
--max-header-bytes (default 16384), even in a single line -> 431; a
Content-Length over --max-body-bytes -> 413 before any body is read" and
"`Expect: 100-continue` answered with 100 (or with the final error status,
e.g. 413, instead)". Chunked bodies over the limit are in test_chunked.py.
"""

import time

import lib
from lib import Conn, case, check, eq, req

H = b"Host: sluice.test\r\n"
CHUNKED5 = b"5\r\nhello\r\n0\r\n\r\n"

BAD_400 = [
    # malformed request line
    ("request line without version", b"GET /\r\n" + H + b"\r\n"),
    ("request line: method only", b"GET\r\n" + H + b"\r\n"),
    ("request line: no method", b"/ HTTP/1.1\r\n" + H + b"\r\n"),
    ("request line: four fields", b"GET / HTTP/1.1 extra\r\n" + H + b"\r\n"),
    ("request line: leading space", b" GET / HTTP/1.1\r\n" + H + b"\r\n"),
    ("request line: method not a token", b"GE(T / HTTP/1.1\r\n" + H + b"\r\n"),
    ("request line: empty target", b"GET  HTTP/1.1\r\n" + H + b"\r\n"),
    # bare LF
    ("bare LF ending the request line", b"GET / HTTP/1.1\n" + H + b"\r\n"),
    ("bare LF ending a header line", b"GET / HTTP/1.1\r\nHost: sluice.test\nX-A: b\r\n\r\n"),
    ("bare LF as the empty line", b"GET / HTTP/1.1\r\n" + H + b"\n"),
    ("bare LF inside a value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\nb\r\n\r\n"),
    ("LF LF head", b"GET / HTTP/1.1\nHost: sluice.test\n\n"),
    # NUL
    ("NUL in a header value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n"),
    ("NUL in a header name", b"GET / HTTP/1.1\r\n" + H + b"X-\x00A: b\r\n\r\n"),
    ("NUL in the method", b"G\x00T / HTTP/1.1\r\n" + H + b"\r\n"),
    # malformed header lines
    ("header line without colon", b"GET / HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n"),
    ("header with empty name", b"GET / HTTP/1.1\r\n" + H + b": value\r\n\r\n"),
    ("space inside a header name", b"GET / HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n"),
    ("header name not a token", b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n"),
    ("whitespace before the colon (SP)", b"GET / HTTP/1.1\r\nHost : sluice.test\r\n\r\n"),
    ("whitespace before the colon (TAB)", b"GET / HTTP/1.1\r\n" + H + b"X-A\t: b\r\n\r\n"),
    ("obs-fold (SP)", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n"),
    ("obs-fold (TAB)", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n\tc\r\n\r\n"),
    ("obs-fold on the first header", b"GET / HTTP/1.1\r\n x: y\r\n" + H + b"\r\n"),
    # framing
    ("Content-Length and Transfer-Encoding",
     b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED5),
    ("Transfer-Encoding and Content-Length",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 15\r\n\r\n" + CHUNKED5),
    ("two identical Content-Length",
     b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("two different Content-Length",
     b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("Content-Length list '5, 5'", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello"),
    ("Content-Length '+5'", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello"),
    ("Content-Length '-1'", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n"),
    ("Content-Length '0x5'", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello"),
    ("Content-Length '5a'", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5a\r\n\r\nhello"),
    ("Content-Length '5.0'", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5.0\r\n\r\nhello"),
    ("Content-Length '5 5'", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5 5\r\n\r\nhello"),
    ("Content-Length empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n"),
    ("Transfer-Encoding gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n" + CHUNKED5),
    ("Transfer-Encoding identity",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n" + CHUNKED5),
    ("Transfer-Encoding 'gzip, chunked'",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + CHUNKED5),
    ("Transfer-Encoding 'chunked, chunked'",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n" + CHUNKED5),
    ("two Transfer-Encoding: chunked fields",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
     + CHUNKED5),
    ("Transfer-Encoding 'chunked;q=1'",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked;q=1\r\n\r\n" + CHUNKED5),
    ("Transfer-Encoding 'xchunked'",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n" + CHUNKED5),
]


def _rig(env, *args):
    if not hasattr(env, "rej_up"):
        env.rej_up = env.upstream()
    return env.rej_up, env.proxy(*args, upstream=env.rej_up)


def rejected(env, data, status, what, proxy_args=()):
    up, p = _rig(env, *proxy_args)
    before = lib.upstream_bytes(up)
    lib.expect_reject(p.port, data, status, what)
    time.sleep(0.05)
    eq(lib.upstream_bytes(up), before, what + ": bytes forwarded upstream")


def _register(name, data):
    @case("reject 400: " + name)
    def _c(env):
        rejected(env, data, 400, name)


for _n, _d in BAD_400:
    _register(_n, _d)


@case("reject: the same requests sent in 1-byte writes -> 400")
def bytewise_400(env):
    up, p = _rig(env)
    before = lib.upstream_bytes(up)
    for name, data in BAD_400:
        with Conn(p.port, timeout=5) as c:
            try:
                c.send_bytewise(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                r = c.response()
            except lib.Closed:
                raise lib.Fail("%s: closed without a response" % name)
            eq(r.status, 400, name + " status")
            check(c.closed(3), name + ": not closed")
    eq(lib.upstream_bytes(up), before, "bytes forwarded")


@case("accept: Transfer-Encoding chunked in any letter case")
def te_case(env):
    p = env.proxy()
    for te in ("Chunked", "CHUNKED", "cHuNkEd"):
        data = req("POST", "/te-case", [("Transfer-Encoding", te)], body=lib.chunked(b"hello", [2]))
        r, c = lib.exchange(p.port, data)
        c.close()
        lib.sink_saw(r, b"hello", framing="chunked", what="Transfer-Encoding: " + te)


@case("accept: Content-Length with leading zeros and surrounding OWS")
def cl_forms(env):
    p = env.proxy()
    for v in ("005", " 5", "5 ", "\t5\t"):
        data = (b"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length:" + v.encode() + b"\r\n\r\nhello")
        r, c = lib.exchange(p.port, data)
        c.close()
        lib.sink_saw(r, b"hello", framing="length", what="Content-Length:%r" % v)


# -- header size limit --------------------------------------------------------

def head_of(size, target="/lim"):
    """A GET whose head (request line + header lines with CRLFs, without the
    final empty line) is exactly `size` bytes."""
    line = "GET %s HTTP/1.1\r\nHost: sluice.test\r\n" % target
    base = len(line) + len("X-Pad: \r\n")
    check(size >= base, "head_of: %d too small" % size)
    return (line + "X-Pad: " + "p" * (size - base) + "\r\n\r\n").encode()


@case("limit: --max-header-bytes 1024: head of 1024 bytes served, 1025 -> 431")
def header_limit(env):
    up, p = _rig(env, "--max-header-bytes", 1024)
    r, c = lib.exchange(p.port, head_of(1024))
    c.close()
    eq(r.status, 200, "status for exactly 1024")
    rejected(env, head_of(1025), 431, "1025-byte head", ("--max-header-bytes", 1024))


@case("limit: --max-header-bytes 1024: one long request line -> 431")
def header_limit_line(env):
    data = b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    rejected(env, data, 431, "2 KB request line", ("--max-header-bytes", 1024))
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"v" * 5000 + b"\r\n\r\n"
    rejected(env, data, 431, "5 KB header line", ("--max-header-bytes", 1024))


@case("limit: --max-header-bytes 1024: many small headers -> 431")
def header_limit_many(env):
    data = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n"
    rejected(env, data, 431, "200 headers", ("--max-header-bytes", 1024))


@case("limit: 256 request fields and 100 response fields forwarded, 257 -> 431")
def header_field_count(env):
    # The proxy keeps room for 32 fields per head and grows it for a head
    # with more: both directions (a response may have the library's default
    # 100 fields), on one keep-alive connection.
    fields = [("X-F%d" % i, "v%d" % i) for i in range(255)]  # + Host: 256
    resp = (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-R%d: r%d\r\n" % (i, i) for i in range(99))
            + b"Content-Length: 2\r\n\r\nok")
    with lib.Upstream(respond=lambda m: resp) as up, \
            lib.start_proxy(up, "--max-header-bytes", 65536) as p:
        with Conn(p.port) as c:
            for k in range(2):
                c.send(req("GET", "/many%d" % k, fields))
                r = c.response()
                eq(r.status, 200, "status with 256 request fields")
                eq(r.body, b"ok", "body")
                m = up.wait_request()
                for i in (0, 31, 32, 254):
                    eq(m.hdrs("x-f%d" % i), ["v%d" % i], "request field %d upstream" % i)
                eq(r.hdrs("x-r98"), ["r98"], "response field 98")
                eq(r.hdrs("x-r31"), ["r31"], "response field 31")
    data = req("GET", "/too-many", fields + [("X-Last", "1")])
    rejected(env, data, 431, "257 fields", ("--max-header-bytes", 65536))


@case("limit: default max header bytes 16384: 16384 served, 16385 -> 431")
def header_limit_default(env):
    up, p = _rig(env)
    r, c = lib.exchange(p.port, head_of(16384))
    c.close()
    eq(r.status, 200, "status for exactly 16384")
    rejected(env, head_of(16385), 431, "16385-byte head")


@case("limit: huge head never ending -> 431 (not a hang)")
def header_flood(env):
    up, p = _rig(env, "--max-header-bytes", 1024)
    with Conn(p.port, timeout=5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ")
        try:
            for _ in range(64):
                c.send(b"a" * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.response()
            eq(r.status, 431, "status")
        except lib.Closed:
            pass            # closed after the 431 was lost to a reset: still not a hang
        check(c.closed(3), "not closed")


# -- body size limit ------------------------------------------------------------

@case("limit: Content-Length over --max-body-bytes -> 413 before any body is read")
def body_limit_cl(env):
    up, p = _rig(env, "--max-body-bytes", 1000)
    before = lib.upstream_bytes(up)
    # the head alone must be answered: no body is sent at all
    lib.expect_reject(p.port, req("POST", "/big", [("Content-Length", "1001")]), 413, "CL 1001")
    lib.expect_reject(p.port, req("POST", "/big", [("Content-Length", "99999999999")]), 413, "CL 1e11")
    eq(lib.upstream_bytes(up), before, "bytes forwarded")
    r, c = lib.exchange(p.port, req("POST", "/fits", body=b"x" * 1000))
    c.close()
    eq(r.status, 200, "status for exactly --max-body-bytes")


@case("limit: Content-Length too large for any integer -> 400 or 413")
def body_limit_overflow(env):
    up, p = _rig(env)
    lib.expect_reject(p.port, req("POST", "/ovf", [("Content-Length", "9" * 40)]), (400, 413), "CL 40 nines")
    lib.expect_reject(p.port, req("POST", "/ovf", [("Content-Length", "18446744073709551616")]),
                      (400, 413), "CL 2^64")


@case("limit: Expect: 100-continue with Content-Length over the limit -> 413, no 100")
def body_limit_expect(env):
    up, p = _rig(env, "--max-body-bytes", 1000)
    before = lib.upstream_bytes(up)
    r = lib.expect_reject(p.port, req("POST", "/big", [("Content-Length", "5000"),
                                                      ("Expect", "100-continue")]), 413, "Expect + CL 5000")
    eq(r.interim, [], "1xx before the 413")
    eq(lib.upstream_bytes(up), before, "bytes forwarded")
