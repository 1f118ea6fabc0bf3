"""Strict chunked request bodies.

Contract: "Chunked framing is strict: hex digits only, CRLF line ends only
(bare LF is an error), no overflow. A malformed chunk mid-body -> 400 if no
response started, then close; the upstream body is aborted." "a chunked body
growing past [--max-body-bytes] -> 413 if no response started, else close; the
upstream body is aborted either way." Part 2: "Chunked framing follows the
RFC 9112 grammar exactly: whitespace only around `;` and `=` inside
extensions; extension names tokens, values tokens or quoted strings; at most
4 KiB of extensions on one chunk line; trailers bounded by --max-header-bytes;
anything else -> 400 (as for malformed chunks)."
"""

import time

import lib
from lib import Conn, case, check, eq, body_bytes, KiB

HEAD = b"POST /ch HTTP/1.1\r\nHost: sluice.test\r\nTransfer-Encoding: chunked\r\n\r\n"

BAD = [
    ("size not hex", b"g\r\nhello\r\n0\r\n\r\n"),
    ("size with 0x prefix", b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("empty size line", b"\r\nhello\r\n0\r\n\r\n"),
    ("negative size", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("space before size", b" 5\r\nhello\r\n0\r\n\r\n"),
    ("space after size without extension", b"5 \r\nhello\r\n0\r\n\r\n"),
    ("tab after size without extension", b"5\t\r\nhello\r\n0\r\n\r\n"),
    ("size with '+'", b"+5\r\nhello\r\n0\r\n\r\n"),
    ("bare LF after size", b"5\nhello\r\n0\r\n\r\n"),
    ("bare CR after size", b"5\rhello\r\n0\r\n\r\n"),
    ("bare LF after data", b"5\r\nhello\n0\r\n\r\n"),
    ("data longer than size", b"5\r\nhello!\r\n0\r\n\r\n"),
    ("data not followed by CRLF", b"5\r\nhelloXY0\r\n\r\n"),
    ("bare LF after last chunk", b"5\r\nhello\r\n0\n\r\n"),
    ("bare LF as final line", b"5\r\nhello\r\n0\r\n\n"),
    ("size 2^64 (overflow)", b"10000000000000000\r\nhello\r\n0\r\n\r\n"),
    ("size of 20 f (overflow)", b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ("extension with empty name", b"5;\r\nhello\r\n0\r\n\r\n"),
    ("extension '=v' without name", b"5;=v\r\nhello\r\n0\r\n\r\n"),
    ("extension with empty value", b"5;a=\r\nhello\r\n0\r\n\r\n"),
    ("extension name not a token", b"5;@=1\r\nhello\r\n0\r\n\r\n"),
    ("space inside extension name", b"5;a b\r\nhello\r\n0\r\n\r\n"),
    ("space inside extension value", b"5;a=b c\r\nhello\r\n0\r\n\r\n"),
    ("unterminated quoted extension value", b"5;a=\"x\r\nhello\r\n0\r\n\r\n"),
    ("junk after quoted value", b"5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"),
    ("comma instead of semicolon", b"5,a\r\nhello\r\n0\r\n\r\n"),
    ("NUL in extension", b"5;a=\x00\r\nhello\r\n0\r\n\r\n"),
    ("trailing space after extension", b"5;a=b \r\nhello\r\n0\r\n\r\n"),
    ("extension over 4 KiB", b"5;a=" + b"v" * 5000 + b"\r\nhello\r\n0\r\n\r\n"),
    ("many extensions over 4 KiB", b"5" + b";ab=cd" * 1000 + b"\r\nhello\r\n0\r\n\r\n"),
    ("trailer without colon", b"5\r\nhello\r\n0\r\nNoColon\r\n\r\n"),
    ("trailer obs-fold", b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
    ("trailer whitespace before colon", b"5\r\nhello\r\n0\r\nX-T : a\r\n\r\n"),
    ("trailer bare LF", b"5\r\nhello\r\n0\r\nX-T: a\n\r\n"),
    ("trailer with NUL", b"5\r\nhello\r\n0\r\nX-T: a\x00\r\n\r\n"),
]

GOOD = [
    ("upper-case hex and leading zeros", b"000A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    ("BWS before ';'", b"5 ;a=b\r\nhello\r\n0\r\n\r\n", b"hello"),
    ("BWS around ';' and '='", b"5\t; a = b ;c\r\nhello\r\n0\r\n\r\n", b"hello"),
    ("quoted extension value with escape", b"5;a=\"q s\\\"x;=\"\r\nhello\r\n0\r\n\r\n", b"hello"),
    ("name-only extensions", b"5;a;b;c=d\r\nhello\r\n0;last=1\r\n\r\n", b"hello"),
    ("3 KiB of extensions", b"5;a=" + b"v" * 3000 + b"\r\nhello\r\n0\r\n\r\n", b"hello"),
    ("trailer fields", b"5\r\nhello\r\n0\r\nX-A: 1\r\nX-B:\r\n\r\n", b"hello"),
    ("zero-length body", b"0\r\n\r\n", b""),
]


def _rig(env, *args):
    if not hasattr(env, "ch_up"):
        env.ch_up = env.upstream()
    return env.ch_up, env.proxy(*args, upstream=env.ch_up)


def aborted_upstream(up, first_conn, what):
    """No upstream connection opened since first_conn saw a complete body,
    and each one that carried bytes was closed."""
    time.sleep(0.1)
    for rec in list(up.conns)[first_conn:]:
        check(all(not m.complete for m in rec.requests), what + ": upstream saw a complete body")
        if rec.raw:
            check(up.wait_closed(rec, 3), what + ": upstream connection left open after the abort")


def _bad(name, body):
    @case("chunked 400: " + name)
    def _c(env):
        up, p = _rig(env, "--max-header-bytes", 1024)
        n = len(up.conns)
        status = (400, 413) if "overflow" in name else 400
        lib.expect_reject(p.port, HEAD + body, status, name)
        aborted_upstream(up, n, name)


for _n, _b in BAD:
    _bad(_n, _b)


@case("chunked 400: trailers over --max-header-bytes")
def trailer_limit(env):
    up, p = _rig(env, "--max-header-bytes", 1024)
    n = len(up.conns)
    body = b"5\r\nhello\r\n0\r\n" + b"".join(b"X-T%d: %s\r\n" % (i, b"t" * 90) for i in range(30)) + b"\r\n"
    # "anything else -> 400"; 431 is accepted as the limit's own status
    lib.expect_reject(p.port, HEAD + body, (400, 431), "3 KB of trailers")
    aborted_upstream(up, n, "trailers")


@case("chunked: the malformed cases in 1-byte writes -> 400")
def bad_bytewise(env):
    up, p = _rig(env, "--max-header-bytes", 1024)
    done = len(up.complete_requests())
    for name, body in BAD:
        if len(body) > 200:
            continue
        with Conn(p.port, timeout=5) as c:
            try:
                c.send_bytewise(HEAD + body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                r = c.response()
            except lib.Closed:
                raise lib.Fail(name + ": closed without a response")
            check(r.status in ((400, 413) if "overflow" in name else (400,)), "%s: status %d" % (name, r.status))
            check(c.closed(3), name + ": not closed")
    eq(len(up.complete_requests()) - done, 0, "complete bodies upstream")


def _good(name, body, data):
    @case("chunked ok: " + name)
    def _c(env):
        p = env.proxy("--max-header-bytes", 1024)
        for split in (None, "bytewise"):
            with Conn(p.port) as c:
                if split:
                    c.send_bytewise(HEAD + body)
                else:
                    c.send(HEAD + body)
                r = c.response("POST")
            lib.sink_saw(r, data, framing="chunked", what="%s (%s)" % (name, split or "one write"))


for _n, _b, _d in GOOD:
    _good(_n, _b, _d)


@case("chunked: malformed chunk mid-body -> 400, upstream aborted, close")
def bad_mid_body(env):
    with lib.Upstream() as up, lib.start_proxy(up) as p:
        first = body_bytes(64 * KiB, seed=90)
        with Conn(p.port) as c:
            c.send(HEAD + b"%x\r\n" % len(first) + first + b"\r\n")
            rec = up.wait_conn(1, 5)
            lib.wait_for(lambda: len(rec.raw) > 32 * KiB, 3)
            check(len(rec.raw) > 32 * KiB, "first chunk not streamed upstream (%d bytes)" % len(rec.raw))
            c.send(b"zz\r\nbad\r\n0\r\n\r\n")
            r = c.response("POST")
            eq(r.status, 400, "status")
            check(c.closed(3), "client connection not closed")
        check(up.wait_closed(rec, 3), "upstream connection left open")
        check(all(not m.complete for m in rec.requests), "upstream body complete")
        check(not bytes(rec.raw).endswith(b"0\r\n\r\n"), "zero chunk sent upstream")


@case("chunked: malformed chunk after the response started -> close, upstream aborted")
def bad_after_response(env):
    with lib.Upstream(behaviour=lib.answer_early) as up, lib.start_proxy(up) as p:
        with Conn(p.port) as c:
            c.send(HEAD + b"5\r\nhello\r\n")
            r = c.response("POST")
            eq(r.status, 200, "early status")
            eq(r.body, b"early", "early body")
            try:
                c.send(b"5\nworld\r\n0\r\n\r\n")
            except OSError:
                pass
            check(c.closed(3), "client connection not closed after the bad chunk")
        rec = up.wait_conn(1)
        check(up.wait_closed(rec, 3), "upstream connection left open")
        check(all(not m.complete for m in rec.requests), "upstream body complete")


@case("chunked: body growing past --max-body-bytes -> 413, upstream aborted")
def body_limit(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--max-body-bytes", 1000) as p:
        body = lib.chunked(body_bytes(1200, seed=91), [600, 600])
        lib.expect_reject(p.port, HEAD + body, 413, "1200 bytes chunked")
        aborted_upstream(up, 0, "chunked over the limit")
        r, c = lib.exchange(p.port, HEAD + lib.chunked(b"y" * 1000, [500, 500]))
        c.close()
        eq(r.status, 200, "exactly --max-body-bytes chunked")
        check(lib.wait_for(lambda: [m for m in up.complete_requests() if m.body == b"y" * 1000], 3),
              "fitting body not forwarded complete")


@case("chunked: past --max-body-bytes after the response started -> close")
def body_limit_after_response(env):
    with lib.Upstream(behaviour=lib.answer_early) as up, lib.start_proxy(up, "--max-body-bytes", 1000) as p:
        with Conn(p.port) as c:
            c.send(HEAD + b"200\r\n" + b"a" * 0x200 + b"\r\n")
            r = c.response("POST")
            eq(r.status, 200, "early status")
            try:
                c.send(b"200\r\n" + b"b" * 0x200 + b"\r\n0\r\n\r\n")
            except OSError:
                pass
            check(c.closed(3), "client connection not closed")
        rec = up.wait_conn(1)
        check(up.wait_closed(rec, 3), "upstream connection left open")
        check(all(not m.complete for m in rec.requests), "upstream body complete")
