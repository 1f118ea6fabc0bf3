"""sluice-sink.

Contract: "Reads each request body (Content-Length or chunked, same strictness
as the proxy), replies 200 (201 when stored) with JSON:
{"method","target","bytes","sha256","framing":"length"|"chunked"}.
`--store DIR`: the body is written to a temporary dot-file in DIR and renamed
to DIR/<target path without its leading '/' and without the query,
subdirectories created> only when the body completed; an existing file is
replaced atomically; an aborted body's temporary file is removed, so nothing
appears. A target with a `..` segment, a NUL or a percent-escape that decodes
to '/' is refused with 400."
"""

import os
import time

import lib
from lib import Conn, case, check, eq, req, body_bytes, sha256, KiB, MiB

H = b"Host: sluice.test\r\n"


def files_under(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


def store(env):
    if not hasattr(env, "store_dir") or not env.store_sink.alive():
        env.store_dir = lib.temp_dir("store")
        env.store_sink = env.own(lib.start_sink("--store", env.store_dir))
    return env.store_sink, env.store_dir


@case("sink: Content-Length body -> 200 JSON with every field")
def sink_cl(env):
    s = env.sink()
    body = body_bytes(100 * KiB + 3, seed=160)
    r = lib.upload(s.port, "/s/cl?q=%41", body, method="PATCH")
    eq(r.status, 200, "status")
    j = r.json()
    want = {"method": "PATCH", "target": "/s/cl?q=%41", "bytes": len(body), "sha256": sha256(body),
            "framing": "length"}
    eq({k: j.get(k) for k in want}, want, "JSON")


@case("sink: chunked body -> framing 'chunked', 1-byte writes and random splits")
def sink_chunked(env):
    s = env.sink()
    body = body_bytes(3000, seed=161)
    for split in (None, "bytewise", 5, 6):
        r = lib.upload(s.port, "/s/te", body, te=True, sizes=[1, 100, 999], split=split)
        j = lib.sink_saw(r, body, framing="chunked", method="POST", target="/s/te", what="split %s" % split)
        eq(r.status, 200, "status")


@case("sink: request without body -> bytes 0, sha256 of nothing")
def sink_empty(env):
    s = env.sink()
    r, c = lib.exchange(s.port, req("GET", "/s/empty"))
    c.close()
    eq(r.status, 200, "status")
    j = r.json()
    eq((j.get("bytes"), j.get("sha256"), j.get("method")), (0, sha256(b""), "GET"), "JSON")


@case("sink: large body via curl -T byte-exact")
def sink_curl(env):
    s = env.sink()
    path, digest = lib.gen_file(5 * MiB + 1, seed=162)
    r = lib.curl(["-T", path, s.url("/s/curl")])
    eq(r.status, 200, "status (%s)" % r.err)
    eq((r.json().get("sha256"), r.json().get("method")), (digest, "PUT"), "sha256, method")


for _name, _data in [
    ("Content-Length and Transfer-Encoding",
     b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("two Content-Length", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("Content-Length not digits", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello"),
    ("Transfer-Encoding gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n"),
    ("chunk size not hex", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("bare LF after chunk size", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
    ("chunk size overflow", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n"),
    ("space after chunk size", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"),
    ("bare LF in the head", b"POST / HTTP/1.1\nHost: x\r\nContent-Length: 0\r\n\r\n"),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n"),
]:
    def _mk(name, data):
        @case("sink 400: " + name)
        def _c(env):
            s = env.sink()
            with Conn(s.port, timeout=5) as c:
                c.send(data)
                try:
                    r = c.response()
                except lib.Closed:
                    raise lib.Fail("closed without a response")
                eq(r.status, 400, "status")
    _mk(_name, _data)


# -- --store ------------------------------------------------------------------------------

@case("store: completed body renamed to DIR/<path>, query dropped, 201")
def store_basic(env):
    s, d = store(env)
    body = body_bytes(200 * KiB, seed=163)
    r = lib.upload(s.port, "/a/b/c.bin?x=1&y=2", body, method="PUT")
    eq(r.status, 201, "status")
    j = r.json()
    eq((j.get("bytes"), j.get("sha256"), j.get("target")), (len(body), sha256(body), "/a/b/c.bin?x=1&y=2"), "JSON")
    with open(os.path.join(d, "a", "b", "c.bin"), "rb") as f:
        check(f.read() == body, "stored bytes differ")
    check(not [f for f in files_under(d) if os.path.basename(f).startswith(".")], "dot-files left: %r" % files_under(d))


@case("store: chunked body stored byte-exact")
def store_chunked(env):
    s, d = store(env)
    body = body_bytes(50 * KiB, seed=164)
    r = lib.upload(s.port, "/te/file.bin", body, te=True, sizes=[3000] * 20, method="PUT", split=9)
    eq(r.status, 201, "status")
    with open(os.path.join(d, "te", "file.bin"), "rb") as f:
        check(f.read() == body, "stored bytes differ")


@case("store: nothing at the final path until the body completes; dot-file meanwhile")
def store_in_flight(env):
    s, d = store(env)
    body = body_bytes(300 * KiB, seed=165)
    data = req("PUT", "/fly/new.bin", body=body)
    with Conn(s.port) as c:
        c.send(data[:-100 * KiB])
        time.sleep(0.3)
        check(not os.path.exists(os.path.join(d, "fly", "new.bin")), "final file exists before the body ended")
        dots = [f for f in files_under(d) if os.path.basename(f).startswith(".")]
        check(dots, "no temporary dot-file while the body is in flight: %r" % files_under(d))
        c.send(data[-100 * KiB:])
        eq(c.response().status, 201, "status")
    with open(os.path.join(d, "fly", "new.bin"), "rb") as f:
        check(f.read() == body, "stored bytes differ")


@case("store: existing file replaced atomically (old content intact until the end)")
def store_replace(env):
    s, d = store(env)
    old = body_bytes(100 * KiB, seed=166)
    new = body_bytes(150 * KiB, seed=167)
    eq(lib.upload(s.port, "/rep/f.bin", old, method="PUT").status, 201, "first status")
    path = os.path.join(d, "rep", "f.bin")
    ino = os.stat(path).st_ino
    data = req("PUT", "/rep/f.bin", body=new)
    with Conn(s.port) as c:
        c.send(data[:-50 * KiB])
        time.sleep(0.3)
        with open(path, "rb") as f:
            check(f.read() == old, "old content changed while the new body is in flight")
        c.send(data[-50 * KiB:])
        eq(c.response().status, 201, "second status")
    with open(path, "rb") as f:
        check(f.read() == new, "new content not stored")
    check(os.stat(path).st_ino != ino, "file rewritten in place, not renamed over")


@case("store: aborted body leaves nothing (CL and chunked, RST and FIN)")
def store_abort(env):
    s, d = store(env)
    before = files_under(d)
    body = body_bytes(500 * KiB, seed=168)
    for i, (te, rst) in enumerate(((False, True), (False, False), (True, True), (True, False))):
        data = (req("PUT", "/ab/%d.bin" % i, [("Transfer-Encoding", "chunked")], body=lib.chunked(body, [KiB] * 500))
                if te else req("PUT", "/ab/%d.bin" % i, body=body))
        c = Conn(s.port)
        c.send(data[:-200 * KiB])
        time.sleep(0.2)
        c.abort() if rst else c.close()
    time.sleep(0.3)
    eq(files_under(d), before, "files after aborted uploads")
    eq(lib.upload(s.port, "/ab/ok.bin", b"fine", method="PUT").status, 201, "status after aborts")


@case("store: existing file kept when its replacement is aborted")
def store_abort_keeps_old(env):
    s, d = store(env)
    old = b"old content"
    eq(lib.upload(s.port, "/keep/f.txt", old, method="PUT").status, 201, "first status")
    c = Conn(s.port)
    c.send(req("PUT", "/keep/f.txt", [("Content-Length", "100000")]) + b"x" * 50000)
    time.sleep(0.2)
    c.abort()
    time.sleep(0.3)
    with open(os.path.join(d, "keep", "f.txt"), "rb") as f:
        eq(f.read(), old, "content after an aborted replacement")


for _name, _target in [
    ("'..' segment in the middle", "/a/../b"),
    ("leading '..' segment", "/../escape.txt"),
    ("trailing '..' segment", "/a/.."),
    ("only '..'", "/.."),
    ("percent-escaped NUL", "/a%00b"),
    ("%2F", "/a%2Fb"),
    ("%2f", "/a%2fb"),
    ("%2F..", "/x%2F..%2Fy"),
]:
    def _mks(name, target):
        @case("store 400: " + name)
        def _c(env):
            s, d = store(env)
            before = files_under(d)
            r, c = lib.exchange(s.port, req("PUT", target, body=b"nope"))
            c.close()
            eq(r.status, 400, "status for %s" % target)
            eq(files_under(d), before, "files after a refused target")
            check(not os.path.exists(os.path.join(os.path.dirname(d), "escape.txt")), "file written outside DIR")
    _mks(_name, _target)


@case("store: a raw NUL in the target -> 400")
def store_raw_nul(env):
    s, d = store(env)
    with Conn(s.port) as c:
        c.send(b"PUT /a\x00b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz")
        eq(c.response().status, 400, "status")


@case("store: '%2e%2e' never writes outside DIR")
def store_encoded_dots(env):
    s, d = store(env)
    parent = os.path.dirname(d)
    before_parent = sorted(os.listdir(parent))
    r, c = lib.exchange(s.port, req("PUT", "/%2e%2e/%2E%2E/out.txt", body=b"nope"))
    c.close()
    check(r.status in (400, 201), "status %d" % r.status)
    eq(sorted(os.listdir(parent)), before_parent, "entries next to DIR")


@case("store: '.' segments and names with dots that are not '..' are stored")
def store_dots_ok(env):
    s, d = store(env)
    r = lib.upload(s.port, "/dots/a..b/c..", b"ok", method="PUT")
    eq(r.status, 201, "status")
    check(os.path.isfile(os.path.join(d, "dots", "a..b", "c..")), "not stored: %r" % files_under(d))
