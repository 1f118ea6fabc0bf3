"""sluice-proxy part 2: request line, Host, versions, targets, methods.

Contract (part 2): request line exactly `METHOD SP request-target SP
HTTP-version CRLF`; up to 8 empty lines skipped, a bare LF there 400; versions
1.1 / 1.0 served, well-formed others 505 then close, malformed 400; HTTP/1.0:
Transfer-Encoding 400, kept alive only with `Connection: keep-alive`; upstream
always HTTP/1.1; Host rules; target forms; CONNECT / TRACE 405; methods
case-sensitive, unknown forwarded; HEAD and 1xx/204/304 relayed without body;
Expect other than 100-continue 417; `Connection: close` honoured; TE `, chunked`
and `chunked,` 400.
"""

import time

import lib
from lib import Conn, case, check, eq, req


def _rig(env, *args):
    if not hasattr(env, "rl_up"):
        env.rl_up = env.upstream()
    return env.rl_up, env.proxy(*args, upstream=env.rl_up)


def forwarded(env, data, method="GET"):
    """Sends data, expects 200 from the recording upstream; returns what it got."""
    up, p = _rig(env)
    n = up.total_requests()
    r, c = lib.exchange(p.port, data, method)
    c.close()
    eq(r.status, 200, "status")
    return up.wait_request(n + 1)


def rejected(env, data, status, what):
    up, p = _rig(env)
    before = lib.upstream_bytes(up)
    lib.expect_reject(p.port, data, status, what)
    time.sleep(0.05)
    eq(lib.upstream_bytes(up), before, what + ": bytes forwarded upstream")


H = b"Host: sluice.test\r\n"

# -- request line whitespace ---------------------------------------------------

for _name, _data in [
    ("double space after method", b"GET  / HTTP/1.1\r\n" + H + b"\r\n"),
    ("double space before version", b"GET /  HTTP/1.1\r\n" + H + b"\r\n"),
    ("TAB after method", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n"),
    ("TAB before version", b"GET /\tHTTP/1.1\r\n" + H + b"\r\n"),
    ("trailing space", b"GET / HTTP/1.1 \r\n" + H + b"\r\n"),
    ("trailing TAB", b"GET / HTTP/1.1\t\r\n" + H + b"\r\n"),
    ("9 empty lines before the request line", b"\r\n" * 9 + b"GET / HTTP/1.1\r\n" + H + b"\r\n"),
    ("bare LF before the request line", b"\nGET / HTTP/1.1\r\n" + H + b"\r\n"),
    ("CRLF then bare LF before the request line", b"\r\n\nGET / HTTP/1.1\r\n" + H + b"\r\n"),
    ("space-only line before the request line", b" \r\nGET / HTTP/1.1\r\n" + H + b"\r\n"),
]:
    def _mk(name, data):
        @case("request line 400: " + name)
        def _c(env):
            rejected(env, data, 400, name)
    _mk(_name, _data)


@case("request line: up to 8 empty lines before it are skipped")
def empty_lines(env):
    for n in (1, 8):
        m = forwarded(env, b"\r\n" * n + b"GET /el HTTP/1.1\r\n" + H + b"\r\n")
        eq(m.start, "GET /el HTTP/1.1", "forwarded request line after %d empty lines" % n)


@case("request line: empty lines between pipelined requests skipped")
def empty_lines_pipelined(env):
    up, p = _rig(env)
    with Conn(p.port) as c:
        c.send(req("POST", "/a", body=b"x") + b"\r\n\r\n" + req("GET", "/b"))
        eq(c.response().status, 200, "first status")
        eq(c.response().status, 200, "second status")


# -- versions --------------------------------------------------------------------

@case("version: HTTP/1.1 and HTTP/1.0 served, upstream gets HTTP/1.1")
def versions_ok(env):
    for v in ("HTTP/1.1", "HTTP/1.0"):
        m = forwarded(env, ("GET /v HTTP/%s\r\nHost: sluice.test\r\n\r\n" % v[5:]).encode())
        eq(m.start, "GET /v HTTP/1.1", "forwarded request line for " + v)


for _v in ("HTTP/1.2", "HTTP/2.0", "HTTP/3.0", "HTTP/1.9", "HTTP/0.9"):
    def _mk505(v):
        @case("version 505: " + v)
        def _c(env):
            rejected(env, ("GET / %s\r\nHost: sluice.test\r\n\r\n" % v).encode(), 505, v)
    _mk505(_v)


@case("version 505: the HTTP/2 connection preface")
def h2_preface(env):
    rejected(env, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP/2 preface")


for _v in ("http/1.1", "HTTP/1.01", "HTTP/1", "HTTP/11", "HTTP/1.1x", "HTTP/a.b", "HTTPS/1.1",
           "HTTP/ 1.1", "HTTP/1.", "HTTP/10.1"):
    def _mk400(v):
        @case("version 400: " + v)
        def _c(env):
            rejected(env, ("GET / %s\r\nHost: sluice.test\r\n\r\n" % v).encode(), 400, v)
    _mk400(_v)


@case("HTTP/1.0 with Transfer-Encoding -> 400")
def h10_te(env):
    rejected(env, b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400,
             "HTTP/1.0 + chunked")


@case("HTTP/1.0: connection closed after the response without keep-alive")
def h10_close(env):
    up, p = _rig(env)
    with Conn(p.port) as c:
        c.send(b"POST /h10 HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
        r = c.response()
        eq(r.status, 200, "status")
        check(c.closed_now(3), "HTTP/1.0 connection kept open")


@case("HTTP/1.0: 'Connection: keep-alive' keeps the connection")
def h10_keepalive(env):
    up, p = _rig(env)
    with Conn(p.port) as c:
        for i in range(2):
            c.send(b"POST /h10ka HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi")
            r = c.response()
            eq(r.status, 200, "status of request %d" % (i + 1))
            check(r.framing in ("length", "chunked") or r.status == 204,
                  "keep-alive HTTP/1.0 response delimited by close")
        check(c.idle(0.3), "keep-alive HTTP/1.0 connection closed")


@case("HTTP/1.0 without Host: forwarded with Host set to the upstream's HOST:PORT")
def h10_no_host(env):
    up, p = _rig(env)
    m = forwarded(env, b"GET /nohost HTTP/1.0\r\n\r\n")
    eq(m.hdrs("host"), [up.addr], "Host")
    eq(m.start, "GET /nohost HTTP/1.1", "request line")


# -- Host ----------------------------------------------------------------------------

for _name, _data in [
    ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n"),
    ("two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
    ("Host list", b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"),
    ("empty Host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n"),
    ("empty Host with spaces", b"GET / HTTP/1.1\r\nHost:   \r\n\r\n"),
    ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n"),
    ("Host with a path", b"GET / HTTP/1.1\r\nHost: example.com/path\r\n\r\n"),
]:
    def _mkh(name, data):
        @case("host 400: " + name)
        def _c(env):
            rejected(env, data, 400, name)
    _mkh(_name, _data)


# -- targets --------------------------------------------------------------------------

@case("target: origin-form forwarded as is, percent-escapes untouched")
def origin_form(env):
    t = "/a%2Fb/%41%e2%82%ac/c?q=%00&r=a%2Bb+c;x=~!$'()*,@:"
    m = forwarded(env, ("GET %s HTTP/1.1\r\nHost: sluice.test\r\n\r\n" % t).encode())
    eq(m.target, t, "forwarded target")


@case("target: absolute-form forwarded in origin-form, Host from its authority")
def absolute_form(env):
    m = forwarded(env, b"GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other.test\r\n\r\n")
    eq(m.target, "/p/q?x=1", "forwarded target")
    eq(m.hdrs("host"), ["example.com:8080"], "Host")


@case("target: asterisk-form with OPTIONS forwarded")
def asterisk_options(env):
    m = forwarded(env, b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", "OPTIONS")
    eq(m.start, "OPTIONS * HTTP/1.1", "forwarded request line")


for _name, _data, _st in [
    ("asterisk-form with GET", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("asterisk-form with POST", b"POST * HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", 400),
    ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
    ("TRACE", b"TRACE / HTTP/1.1\r\n" + H + b"\r\n", 405),
    ("target with a byte over 0x7e", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target with DEL", b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target with a control byte", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target with NUL", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target with '#'", b"GET /a#frag HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target with a backslash", b"GET /a\\b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space inside the method", b"ge t / HTTP/1.1\r\n" + H + b"\r\n", 400),
]:
    def _mkt(name, data, st):
        @case("target/method %d: %s" % (st, name))
        def _c(env):
            rejected(env, data, st, name)
    _mkt(_name, _data, _st)


# -- methods ------------------------------------------------------------------------------

@case("method: case-sensitive, unknown methods forwarded as they are")
def methods(env):
    for meth in ("get", "Post", "PURGE", "X-CUSTOM_1", "connect", "trace", "M!#$%&'*+.^`|~"):
        m = forwarded(env, ("%s /m HTTP/1.1\r\nHost: sluice.test\r\n\r\n" % meth).encode(), meth)
        eq(m.start, "%s /m HTTP/1.1" % meth, "forwarded request line")


def _respond_with(resp):
    return lambda m: resp


@case("HEAD: response relayed without body, connection reusable")
def head_no_body(env):
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-H: 1\r\n\r\n"

    def respond(m):
        return resp if m.method == "HEAD" else b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nGET"
    with lib.Upstream(respond=respond) as up, lib.start_proxy(up) as p:
        with Conn(p.port) as c:
            c.send(req("HEAD", "/h"))
            r = c.response("HEAD")
            eq(r.status, 200, "HEAD status")
            eq(r.hdr("X-H"), "1", "X-H")
            check(c.idle(0.3), "bytes after a HEAD response")
            c.send(req("GET", "/g"))
            r = c.response()
            eq(r.body, b"GET", "GET after HEAD")


@case("204 and 304 relayed without body, connection reusable")
def no_body_statuses(env):
    for st in (b"204 No Content", b"304 Not Modified"):
        seq = iter([b"HTTP/1.1 " + st + b"\r\nX-S: 1\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"])
        with lib.Upstream(respond=lambda m: next(seq)) as up, lib.start_proxy(up) as p:
            with Conn(p.port) as c:
                c.send(req("GET", "/s"))
                r = c.response()
                eq(r.status, int(st[:3]), "status")
                check(c.idle(0.3), "bytes after a %s" % st.decode())
                c.send(req("GET", "/n"))
                eq(c.response().body, b"next", "response after a %s" % st.decode())


@case("1xx from upstream relayed without body, final response intact")
def interim_from_upstream(env):
    resp = (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
    with lib.Upstream(respond=lambda m: resp) as up, lib.start_proxy(up) as p:
        with Conn(p.port) as c:
            c.send(req("GET", "/i"))
            r = c.response()
            eq(r.status, 200, "final status")
            eq(r.body, b"final", "final body")
            for i in r.interim:
                eq(i.status, 103, "interim status")


# -- Expect and Connection -----------------------------------------------------------------

@case("Expect other than 100-continue -> 417")
def expect_417(env):
    for v in ("100-continue-x", "200-ok", "100-continue, foo", "foo"):
        up, p = _rig(env)
        before = lib.upstream_bytes(up)
        with Conn(p.port) as c:
            c.send(req("POST", "/x", [("Expect", v), ("Content-Length", "2")]))
            r = c.response()
            eq(r.status, 417, "status for Expect: %s" % v)
        eq(lib.upstream_bytes(up), before, "bytes forwarded for Expect: %s" % v)


@case("Expect: 100-CONTINUE is case-insensitive")
def expect_case(env):
    up, p = _rig(env)
    with Conn(p.port) as c:
        c.send(req("POST", "/x", [("Expect", "100-CONTINUE"), ("Content-Length", "2")]))
        head = c.rd.until(b"\r\n\r\n", time.monotonic() + 5)
        check(head.startswith(b"HTTP/1.1 100 "), "first answer %r" % head[:40])
        c.send(b"ok")
        eq(c.response().status, 200, "final status")


@case("Connection: close honoured: answered with Connection: close, then closed")
def connection_close(env):
    up, p = _rig(env)
    for v in ("close", "Close", "keep-alive, close"):
        with Conn(p.port) as c:
            c.send(req("POST", "/cc", [("Connection", v)], body=b"abc")
                   + req("GET", "/never"))
            r = c.response()
            eq(r.status, 200, "status")
            check(any("close" in x.lower() for x in r.hdrs("connection")),
                  "no Connection: close in %r" % r.headers)
            check(c.closed_now(3), "connection not closed after Connection: %s" % v)


@case("Transfer-Encoding ', chunked' and 'chunked,' -> 400")
def te_list_forms(env):
    for v in (", chunked", "chunked,", "chunked ,", ",chunked", "chunked, "):
        rejected(env, b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: " + v.encode()
                 + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, "Transfer-Encoding: %r" % v)
