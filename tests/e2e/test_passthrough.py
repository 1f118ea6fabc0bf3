"""sluice-proxy default (passthrough) mode.

Contract: "each request goes to the upstream with the same method, target and
end-to-end headers; hop-by-hop ones are dropped in both directions (...);
Expect is answered by the proxy itself and not forwarded; Host kept. The body
is streamed: a Content-Length body keeps its Content-Length; a chunked body is
forwarded chunked (decoded and re-encoded; extensions and trailers dropped).
The upstream's response (status, end-to-end headers, body) is streamed back."
Plus keep-alive, pipelining, 100-continue, Sluice-Body-Bytes and --digest.
"""

import time

import lib
from lib import Conn, case, check, eq, req, chunked, sha256, body_bytes, MiB, KiB

# -- bodies reach the sink byte-exact --------------------------------------

@case("passthrough: Content-Length upload via curl -T, 0 B, 1 B, 1 MiB+1")
def cl_curl(env):
    p = env.proxy()
    for size in (0, 1, MiB + 1):
        path, digest = lib.gen_file(size, seed=size)
        r = lib.curl(["-T", path, "-X", "POST", p.url("/up/cl-%d?q=1" % size)])
        eq(r.status, 200, "status for %d bytes (%s)" % (size, r.err))
        j = r.json()
        eq(j.get("bytes"), size, "sink bytes")
        eq(j.get("sha256"), digest, "sink sha256")
        eq(j.get("framing"), "length", "sink framing")
        eq(j.get("method"), "POST", "sink method")
        eq(j.get("target"), "/up/cl-%d?q=1" % size, "sink target")
        eq(r.hdr("Sluice-Body-Bytes"), str(size), "Sluice-Body-Bytes")


@case("passthrough: chunked upload via curl is forwarded chunked")
def chunked_curl(env):
    p = env.proxy()
    path, digest = lib.gen_file(3 * MiB + 17, seed=3)
    r = lib.curl(["-T", path, "-X", "PUT", "-H", "Transfer-Encoding: chunked", p.url("/up/chunked")])
    eq(r.status, 200, "status (%s)" % r.err)
    j = r.json()
    eq(j.get("sha256"), digest, "sink sha256")
    eq(j.get("framing"), "chunked", "sink framing")
    eq(j.get("method"), "PUT", "sink method")
    eq(r.hdr("Sluice-Body-Bytes"), str(3 * MiB + 17), "Sluice-Body-Bytes")


@case("passthrough: method and target unchanged (unknown method, escapes)")
def method_target(env):
    p = env.proxy()
    body = b"abc"
    r = lib.upload(p.port, "/a/b%2Fc?x=1&y=%41%zz", body, method="FROB")
    lib.sink_saw(r, body, "length", "FROB", "/a/b%2Fc?x=1&y=%41%zz")


@case("passthrough: 1-byte writes, Content-Length body")
def bytewise_cl(env):
    p = env.proxy()
    body = body_bytes(300, seed=5)
    lib.sink_saw(lib.upload(p.port, "/bw/cl", body, split="bytewise"), body, "length")


@case("passthrough: 1-byte writes, chunked body with extensions and trailer")
def bytewise_chunked(env):
    p = env.proxy()
    body = body_bytes(200, seed=6)
    data = req("POST", "/bw/te", [("Transfer-Encoding", "chunked")],
               body=chunked(body, [1, 16, 50, 133], ext=b";a=b;q=\"x y\"", trailers=b"X-T: 1\r\n"))
    with Conn(p.port) as c:
        c.send_bytewise(data)
        lib.sink_saw(c.response(), body, "chunked")


@case("passthrough: chunked request split at every byte position")
def every_split(env):
    p = env.proxy()
    body = b"0123456789abcdefghij"
    data = req("POST", "/split", [("Transfer-Encoding", "chunked")],
               body=chunked(body, [3, 17], ext=b";n=v", trailers=b"T: x\r\n"))
    for k in range(1, len(data)):
        with Conn(p.port) as c:
            c.send(data[:k])
            time.sleep(0.002)
            c.send(data[k:])
            r = c.response()
        check(r.status == 200 and r.json().get("sha256") == sha256(body),
              "split at %d: status %d, %r" % (k, r.status, lib.short(r.body)))


@case("passthrough: random splits (5 fixed seeds), 64 KiB chunked and CL")
def random_splits(env):
    p = env.proxy()
    for seed in range(1, 6):
        body = body_bytes(64 * KiB + seed, seed=seed)
        sizes = [seed * 997 + 1] * 100
        lib.sink_saw(lib.upload(p.port, "/rs/te", body, te=True, sizes=sizes, split=seed), body,
                     "chunked", what="seed %d chunked" % seed)
        lib.sink_saw(lib.upload(p.port, "/rs/cl", body, split=seed + 100), body, "length",
                     what="seed %d length" % seed)


# -- added response headers -------------------------------------------------

@case("passthrough: Sluice-Body-Bytes, no Sluice-Body-SHA256 without --digest")
def body_bytes_header(env):
    p = env.proxy()
    body = body_bytes(12345)
    for te in (False, True):
        r = lib.upload(p.port, "/bb", body, te=te, sizes=[1000] * 20)
        lib.sink_saw(r, body)
        eq(r.hdr("Sluice-Body-Bytes"), "12345", "Sluice-Body-Bytes (te=%s)" % te)
        eq(r.hdr("Sluice-Body-SHA256"), None, "Sluice-Body-SHA256 without --digest")
        eq(r.hdr("Sluice-Image"), None, "Sluice-Image in passthrough mode")
    with Conn(p.port) as c:
        c.send(req("GET", "/nobody"))
        r = c.response()
    eq(r.status, 200, "GET status")
    eq(r.hdr("Sluice-Body-Bytes"), "0", "Sluice-Body-Bytes for a request without body")


@case("passthrough: --digest adds Sluice-Body-SHA256 (CL, chunked, empty)")
def digest_header(env):
    p = env.proxy("--digest")
    body = body_bytes(100000, seed=11)
    for te in (False, True):
        r = lib.upload(p.port, "/dg", body, te=te, sizes=[4096] * 30)
        lib.sink_saw(r, body)
        eq(r.hdr("Sluice-Body-SHA256"), sha256(body), "Sluice-Body-SHA256 (te=%s)" % te)
        eq(len(r.hdrs("Sluice-Body-SHA256")), 1, "one Sluice-Body-SHA256 field")
    r = lib.upload(p.port, "/dg0", b"")
    eq(r.hdr("Sluice-Body-SHA256"), sha256(b""), "Sluice-Body-SHA256 of an empty body")


# -- connection handling -----------------------------------------------------

@case("passthrough: keep-alive, 3 requests on one connection")
def keep_alive(env):
    p = env.proxy()
    with Conn(p.port) as c:
        for i in range(3):
            body = body_bytes(5000 * (i + 1), seed=i)
            c.send(req("POST", "/ka/%d" % i, body=body))
            lib.sink_saw(c.response(), body, target="/ka/%d" % i, what="request %d" % i)


def _pipeline():
    b1, b2 = body_bytes(700, seed=21), body_bytes(900, seed=22)
    data = (req("POST", "/pl/1", body=b1)
            + req("PUT", "/pl/2", [("Transfer-Encoding", "chunked")], body=chunked(b2, [100] * 9))
            + req("GET", "/pl/3"))
    return data, [(b1, "/pl/1", "POST"), (b2, "/pl/2", "PUT"), (b"", "/pl/3", "GET")]


@case("passthrough: pipelining, 3 requests in one write, answered in order")
def pipelining(env):
    p = env.proxy()
    data, want = _pipeline()
    with Conn(p.port) as c:
        c.send(data)
        for i, (b, t, m) in enumerate(want):
            lib.sink_saw(c.response(), b, method=m, target=t, what="pipelined #%d" % (i + 1))


@case("passthrough: pipelining with 1-byte writes")
def pipelining_bytewise(env):
    p = env.proxy()
    data, want = _pipeline()
    with Conn(p.port) as c:
        c.send_bytewise(data)
        for i, (b, t, m) in enumerate(want):
            lib.sink_saw(c.response(), b, method=m, target=t, what="pipelined #%d" % (i + 1))


@case("passthrough: Expect: 100-continue answered with 100 before the body")
def expect_continue(env):
    p = env.proxy()
    body = body_bytes(50000, seed=8)
    with Conn(p.port) as c:
        c.send(req("POST", "/exp", [("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
        head = c.rd.until(b"\r\n\r\n", time.monotonic() + 5)
        check(head.startswith(b"HTTP/1.1 100 "), "first answer %r" % head[:40])
        c.send(body)
        r = c.response()
        lib.sink_saw(r, body)
        eq(r.interim, [], "more 1xx after the body")


@case("passthrough: curl upload > 1 MiB (curl sends Expect) byte-exact")
def expect_curl(env):
    p = env.proxy()
    path, digest = lib.gen_file(2 * MiB + 5, seed=12)
    r = lib.curl(["-T", path, "-X", "POST", "-H", "Expect: 100-continue", p.url("/exp/curl")])
    eq(r.status, 200, "status (%s)" % r.err)
    eq(r.json().get("sha256"), digest, "sink sha256")


# -- exact forwarded head (recording upstream) --------------------------------

@case("passthrough: request hop-by-hop headers dropped, end-to-end kept, Host kept")
def hop_request(env):
    with lib.Upstream() as up, lib.start_proxy(up) as p:
        data = req("POST", "/hop?x=%20", [
            ("Host", "origin.test:8080"),
            ("Connection", "keep-alive, X-Hop-A, x-hop-b"),
            ("X-Hop-A", "1"), ("X-Hop-B", "2"),
            ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-T"),
            ("Upgrade", "websocket"), ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("Proxy-Connection", "keep-alive"),
            ("X-End", "1"), ("Accept", "*/*"), ("X-End", "2"), ("Content-Type", "text/plain"),
            ("X-Empty", ""),
        ], body=b"hello")
        r, c = lib.exchange(p.port, data)
        c.close()
        eq(r.status, 200, "status")
        m = up.wait_request()
        eq(m.start, "POST /hop?x=%20 HTTP/1.1", "forwarded request line")
        eq(m.hdrs("host"), ["origin.test:8080"], "Host")
        eq(m.hdrs("x-end"), ["1", "2"], "X-End values in order")
        eq(m.hdrs("accept"), ["*/*"], "Accept")
        eq(m.hdrs("content-type"), ["text/plain"], "Content-Type")
        eq(m.hdrs("x-empty"), [""], "empty end-to-end field")
        eq(m.hdrs("content-length"), ["5"], "Content-Length")
        eq(m.hdrs("transfer-encoding"), [], "Transfer-Encoding")
        eq(m.body, b"hello", "body")
        for n in ("x-hop-a", "x-hop-b", "keep-alive", "te", "trailer", "upgrade",
                  "proxy-authorization", "proxy-connection"):
            check(n not in m.names(), "hop-by-hop %s forwarded: %r" % (n, m.headers))
        for v in m.hdrs("connection"):
            for tok in v.split(","):
                check(tok.strip().lower() in ("close", "keep-alive"),
                      "client's Connection tokens forwarded: %r" % v)


@case("passthrough: Expect is not forwarded")
def expect_not_forwarded(env):
    with lib.Upstream() as up, lib.start_proxy(up) as p:
        with Conn(p.port) as c:
            c.send(req("POST", "/e", [("Expect", "100-continue"), ("Content-Length", "3")]))
            head = c.rd.until(b"\r\n\r\n", time.monotonic() + 5)
            check(head.startswith(b"HTTP/1.1 100 "), "first answer %r" % head[:40])
            c.send(b"abc")
            eq(c.response().status, 200, "status")
        m = up.wait_request()
        eq(m.hdrs("expect"), [], "Expect forwarded")
        eq(m.body, b"abc", "body")


@case("passthrough: Content-Length body keeps Content-Length upstream")
def cl_kept(env):
    with lib.Upstream() as up, lib.start_proxy(up) as p:
        body = body_bytes(200000, seed=31)
        r = lib.upload(p.port, "/cl", body, split=4)
        eq(r.status, 200, "status")
        m = up.wait_request()
        eq(m.hdrs("content-length"), [str(len(body))], "Content-Length upstream")
        eq(m.hdrs("transfer-encoding"), [], "Transfer-Encoding upstream")
        check(m.body == body, "body differs upstream")


@case("passthrough: chunked body re-chunked, extensions and trailers dropped")
def chunked_rechunked(env):
    with lib.Upstream() as up, lib.start_proxy(up) as p:
        body = body_bytes(30000, seed=32)
        data = req("POST", "/te", [("Transfer-Encoding", "chunked"), ("Trailer", "X-Sum")],
                   body=chunked(body, [10, 1000, 5000], ext=b";name=\"v\"",
                                trailers=b"X-Sum: 1\r\nX-Other: 2\r\n"))
        r, c = lib.exchange(p.port, data)
        c.close()
        eq(r.status, 200, "status")
        m = up.wait_request()
        eq(m.hdrs("transfer-encoding"), ["chunked"], "Transfer-Encoding upstream")
        eq(m.hdrs("content-length"), [], "Content-Length upstream")
        check(m.complete, "upstream body not complete")
        check(m.body == body, "decoded body differs upstream")
        for ln in m.chunk_lines:
            check(";" not in ln, "chunk extension forwarded: %r" % ln)
        eq(m.trailers, [], "trailers forwarded")
        check(m.raw_body.endswith(b"\r\n0\r\n\r\n"), "terminator %r" % m.raw_body[-12:])


# -- response relayed ---------------------------------------------------------

def _fixed(resp):
    return lambda m: resp


@case("passthrough: response status, end-to-end headers kept, hop-by-hop dropped")
def hop_response(env):
    resp = (b"HTTP/1.1 201 Created\r\n"
            b"Connection: X-Up-Hop\r\nX-Up-Hop: a\r\nKeep-Alive: timeout=5\r\n"
            b"Upgrade: h2c\r\nProxy-Authenticate: Basic\r\nProxy-Foo: 1\r\nTrailer: X-Tr\r\n"
            b"X-End-Resp: yes\r\nX-End-Resp: twice\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;e=1\r\n world\r\n0\r\nX-Tr: 1\r\n\r\n")
    with lib.Upstream(respond=_fixed(resp)) as up, lib.start_proxy(up) as p:
        with Conn(p.port) as c:
            c.send(req("POST", "/r", body=b"xy"))
            r = c.response()
            eq(r.status, 201, "status")
            eq(r.body, b"hello world", "body")
            check(r.complete, "response body incomplete")
            eq(r.hdrs("x-end-resp"), ["yes", "twice"], "end-to-end response fields")
            for n in ("x-up-hop", "keep-alive", "upgrade", "proxy-authenticate", "proxy-foo", "trailer"):
                check(n not in r.names(), "hop-by-hop %s relayed: %r" % (n, r.headers))
            for v in r.hdrs("connection"):
                check(v.strip().lower() in ("close", "keep-alive"), "upstream Connection relayed: %r" % v)
            eq(r.hdr("Sluice-Body-Bytes"), "2", "Sluice-Body-Bytes")
            # the connection still works
            c.send(req("GET", "/again"))
            eq(c.response().status, 201, "second request on the same connection")


@case("passthrough: upstream error status relayed with Sluice-Body-Bytes")
def relayed_404(env):
    resp = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nX-Why: gone\r\n\r\nnope"
    with lib.Upstream(respond=_fixed(resp)) as up, lib.start_proxy(up) as p:
        r = lib.upload(p.port, "/missing", b"12345")
        eq(r.status, 404, "status")
        eq(r.body, b"nope", "body")
        eq(r.hdr("X-Why"), "gone", "X-Why")
        eq(r.hdr("Sluice-Body-Bytes"), "5", "Sluice-Body-Bytes on a relayed 404")


@case("passthrough: large response bodies streamed back (length, chunked, close)")
def response_bodies(env):
    big = body_bytes(2 * MiB + 3, seed=41)
    ch = b"".join(b"%x\r\n" % len(big[i:i + 70000]) + big[i:i + 70000] + b"\r\n"
                  for i in range(0, len(big), 70000)) + b"0\r\n\r\n"
    forms = {
        "length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big,
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + ch,
    }
    for name, resp in forms.items():
        with lib.Upstream(respond=_fixed(resp)) as up, lib.start_proxy(up) as p:
            r = lib.upload(p.port, "/big", b"q")
            eq(r.status, 200, name + " status")
            check(r.complete, name + ": response incomplete")
            check(r.body == big, "%s: body differs (%d bytes)" % (name, len(r.body)))

    def close_delimited(up, rec, rd):
        lib.read_request(rd, time.monotonic() + 10)
        rec.sock.sendall(b"HTTP/1.1 200 OK\r\nX-Form: close\r\n\r\n" + big)
    with lib.Upstream(behaviour=close_delimited) as up, lib.start_proxy(up) as p:
        r = lib.upload(p.port, "/big", b"q")
        eq(r.status, 200, "close-delimited status")
        check(r.complete, "close-delimited: response incomplete")
        check(r.body == big, "close-delimited: body differs (%d bytes)" % len(r.body))


@case("passthrough: HTTP/1.0 client gets a chunked response decoded, then close")
def http10_chunked_response(env):
    resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    with lib.Upstream(respond=_fixed(resp)) as up, lib.start_proxy(up) as p:
        with Conn(p.port) as c:
            c.send(b"GET /old HTTP/1.0\r\n\r\n")
            c.closed(5)
            raw = bytes(c.rd.buf)
            head, _, body = raw.partition(b"\r\n\r\n")
            check(head.startswith(b"HTTP/1.1 200"), "status line: %r" % head[:40])
            check(b"chunked" not in head.lower(), "chunked coding sent to HTTP/1.0: %r" % head)
            eq(body, b"hello world", "decoded body, delimited by close")
