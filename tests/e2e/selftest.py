#!/usr/bin/env python3
"""Checks the e2e framework itself, without sluice binaries.

The raw client and response reader against canned server bytes, the
recording upstream against the raw client (every split), the body builders
(chunked, multipart, images: decoded back here, and by file(1) when present),
gen_file's digest and the /proc probes. Same output format as run.py.

    python3 tests/e2e/selftest.py
"""

import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import check, eq  # noqa: E402

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def canned(resp_bytes, close=True, delay=0.0):
    """A one-shot server that reads a request head, sends resp_bytes (in
    pieces if delay) and closes."""
    ls = socket.socket()
    ls.bind((lib.HOST, 0))
    ls.listen(1)

    def run():
        s, _ = ls.accept()
        rd = lib.Reader(s)
        try:
            rd.until(b"\r\n\r\n", time.monotonic() + 5)
            if delay:
                for i in range(0, len(resp_bytes), 7):
                    s.sendall(resp_bytes[i:i + 7])
                    time.sleep(delay)
            else:
                s.sendall(resp_bytes)
            if not close:
                time.sleep(1)
        finally:
            s.close()
            ls.close()
    threading.Thread(target=run, daemon=True).start()
    return ls.getsockname()[1]


@case
def response_reader_framings():
    body = lib.body_bytes(5000, seed=1)
    ch = lib.chunked(body, [1, 2, 3, 1000], ext=b";a=b", trailers=b"X-T: 1\r\n")
    cases = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + body, "GET", body, "length", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + ch, "GET", body, "chunked", True),
        (b"HTTP/1.1 200 OK\r\n\r\n" + body, "GET", body, "close", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD", b"", "none", True),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", "GET", b"", "none", True),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Hints\r\nLink: x\r\n\r\n"
         b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc", "GET", b"abc", "length", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "GET", b"abc", "length", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nab", "GET", b"hello", "chunked",
         False),
    ]
    for i, (resp, method, want, framing, complete) in enumerate(cases):
        for delay in (0, 0.001):
            port = canned(resp, delay=delay)
            with lib.Conn(port) as c:
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                r = c.response(method)
            eq(r.body, want, "case %d body" % i)
            eq(r.framing, framing, "case %d framing" % i)
            eq(r.complete, complete, "case %d complete" % i)
    port = canned(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    with lib.Conn(port) as c:
        c.send(b"GET / HTTP/1.1\r\n\r\n")
        r = c.response()
    eq([m.status for m in r.interim], [100], "interim statuses")


@case
def response_reader_rejects_garbage():
    for resp in (b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 2000 OK\r\n\r\n",
                 b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"):
        port = canned(resp)
        with lib.Conn(port) as c:
            c.send(b"GET / HTTP/1.1\r\n\r\n")
            try:
                c.response()
            except lib.Fail:
                continue
        raise lib.Fail("accepted %r" % resp)


@case
def closed_and_idle():
    port = canned(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n")
    r = lib.expect_reject(port, b"GET / HTTP/1.1\r\n\r\n", 400, "canned 400")
    eq(r.status, 400, "status")
    port = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", close=False)
    with lib.Conn(port) as c:
        c.send(b"GET / HTTP/1.1\r\n\r\n")
        c.response()
        check(c.idle(0.3), "idle() on an open connection")
        check(c.closed(2), "closed() after the server closed")
    port = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", close=False)
    try:
        lib.expect_reject(port, b"GET / HTTP/1.1\r\n\r\n", 400, "canned 200")
    except lib.Fail:
        pass
    else:
        raise lib.Fail("expect_reject accepted a 200")


@case
def upstream_records_every_split():
    body = lib.body_bytes(300, seed=2)
    reqs = [
        lib.req("POST", "/a", [("X-A", "1")], body=body),
        lib.req("PUT", "/b", [("Transfer-Encoding", "chunked")], body=lib.chunked(body, [7, 100], ext=b";x",
                                                                                  trailers=b"T: 1\r\n")),
    ]
    with lib.Upstream() as up:
        n = 0
        for data in reqs:
            for how in ("one", "bytewise", 1, 2):
                with lib.Conn(up.port) as c:
                    if how == "one":
                        c.send(data)
                    elif how == "bytewise":
                        c.send_bytewise(data)
                    else:
                        c.send_random(data, how, max_piece=5)
                    r = c.response()
                    eq((r.status, r.body), (200, b"ok"), "upstream answer")
                n += 1
                m = up.wait_request(n)
                check(m.complete and m.body == body, "upstream body (%s)" % how)
        eq(up.total_requests(), 8, "requests recorded")
        m = up.wait_request(5)
        eq(m.chunk_lines, ["7;x", "64;x", "c1;x", "0"], "chunk lines recorded")
        eq(m.trailers, [("T", "1")], "trailers recorded")
        eq(lib.upstream_bytes(up), sum(len(d) for d in reqs) * 4, "raw bytes recorded")


@case
def upstream_sees_truncation():
    with lib.Upstream() as up:
        data = lib.req("PUT", "/t", [("Transfer-Encoding", "chunked")], body=lib.chunked(b"x" * 100, [10] * 10))
        c = lib.Conn(up.port)
        c.send(data[:-5])
        c.abort()
        rec = up.wait_conn(1)
        check(up.wait_closed(rec, 3), "close not seen")
        eq(len(rec.requests), 1, "requests")
        check(not rec.requests[0].complete, "truncated chunked body looks complete")


@case
def multipart_builder():
    body = lib.multipart([lib.part("a", b"1"), lib.part("file", b"\r\n--x", filename="f", ctype="a/b")], "bnd",
                         preamble=b"pre\r\n", epilogue=b"epi")
    eq(body, b"pre\r\n\r\n--bnd\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1"
             b"\r\n--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: a/b"
             b"\r\n\r\n\r\n--x\r\n--bnd--\r\nepi", "multipart bytes")
    from email.parser import BytesParser
    msg = BytesParser().parsebytes(b"Content-Type: multipart/form-data; boundary=bnd\r\n\r\n" + body)
    parts = msg.get_payload()
    eq(len(parts), 2, "parts parsed back")
    eq(parts[1].get_payload(decode=True), b"\r\n--x", "part content parsed back")


def jpeg_sofs(b):
    """(marker, w, h) of each SOF found walking top-level segments."""
    check(b[:2] == b"\xff\xd8", "SOI")
    i, out = 2, []
    while i < len(b):
        check(b[i] == 0xFF, "marker at %d" % i)
        m = b[i + 1]
        if m == 0xD9:
            break
        ln = struct.unpack(">H", b[i + 2:i + 4])[0]
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            out.append((m, w, h))
        if m == 0xDA:
            break
        i += 2 + ln
    return out


@case
def images_decode_back():
    p = lib.png(3, 2)
    check(p.startswith(b"\x89PNG\r\n\x1a\n"), "PNG signature")
    i = 8
    while i < len(p):
        n = struct.unpack(">I", p[i:i + 4])[0]
        t, d, crc = p[i + 4:i + 8], p[i + 8:i + 8 + n], struct.unpack(">I", p[i + 8 + n:i + 12 + n])[0]
        eq(crc, zlib.crc32(t + d) & 0xffffffff, "PNG %r CRC" % t)
        if t == b"IHDR":
            eq(struct.unpack(">II", d[:8]), (3, 2), "IHDR size")
        if t == b"IDAT":
            eq(len(zlib.decompress(d)), 2 * (1 + 9), "IDAT scanlines")
        i += 12 + n
    j = lib.jpeg(4000, 3000, thumb=(160, 120))
    eq(jpeg_sofs(j), [(0xC0, 4000, 3000)], "top-level SOFs")
    a1 = j.index(b"\xff\xe1")
    app1 = j[a1:a1 + 2 + struct.unpack(">H", j[a1 + 2:a1 + 4])[0]]
    check(b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 120, 160) in app1, "thumbnail SOF0 inside APP1")
    check(j.index(b"\xff\xc0") < j.rindex(b"\xff\xc0"), "thumbnail SOF0 comes first in the bytes")
    eq(jpeg_sofs(lib.jpeg(1, 2, sof=0xC2, app_pad=200000)), [(0xC2, 1, 2)], "SOF2 after padding")
    check(jpeg_sofs(lib.jpeg(1, 2, app_pad=200000)) and lib.jpeg(1, 2, app_pad=200000).index(b"\xff\xc0") > 200000,
          "padding puts SOF beyond 200000")
    g = lib.gif(320, 200)
    eq(struct.unpack("<HH", g[6:10]), (320, 200), "GIF screen")
    for w, (blob, off) in {"vp8x": (lib.webp_vp8x(5000, 300), 12), "vp8l": (lib.webp_vp8l(640, 400), 12),
                           "vp8": (lib.webp_vp8(800, 600), 12)}.items():
        eq(struct.unpack("<I", blob[4:8])[0], len(blob) - 8, w + " RIFF size")
        eq(blob[8:12], b"WEBP", w + " form type")
    x = lib.webp_vp8x(5000, 300)
    eq((int.from_bytes(x[24:27], "little") + 1, int.from_bytes(x[27:30], "little") + 1), (5000, 300), "VP8X canvas")
    v = lib.webp_vp8l(640, 400)
    bits = struct.unpack("<I", v[21:25])[0]
    eq(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1), (640, 400), "VP8L size")
    v = lib.webp_vp8(800, 600)
    eq(v[23:26], b"\x9d\x01\x2a", "VP8 start code")
    eq(struct.unpack("<HH", v[26:30]), (800, 600), "VP8 size")


@case
def images_by_file_command():
    if not os.access("/usr/bin/file", os.X_OK):
        return
    want = [
        (lib.png(3, 2), r"PNG image data, 3 x 2"),
        (lib.gif(320, 200), r"GIF image data, version 89a, 320 x 200"),
        (lib.jpeg(640, 480), r"JPEG image data.*640x480"),
        (lib.webp_vp8(800, 600), r"Web/P image.*800x600"),
        (lib.jpeg(4000, 3000, thumb=(160, 120)), r"Exif.*baseline.*4000x3000"),
        (lib.jpeg(10, 20, sof=0xC2), r"progressive.*10x20"),
        (lib.webp_vp8l(640, 400), r"Web/P image"),        # file 5.44 prints no VP8L/VP8X size
        (lib.webp_vp8x(5000, 300), r"Web/P image"),
    ]
    for blob, pat in want:
        out = subprocess.run(["file", "-b", "-"], input=blob, capture_output=True, timeout=5).stdout.decode()
        check(re.search(pat, out), "file(1) says %r, want /%s/" % (out.strip(), pat))


@case
def gen_file_digest():
    path, digest = lib.gen_file(3 * lib.MiB + 5, seed=3)
    with open(path, "rb") as f:
        data = f.read()
    eq(len(data), 3 * lib.MiB + 5, "size")
    eq(hashlib.sha256(data).hexdigest(), digest, "digest")
    check(data[:lib.MiB] != data[lib.MiB:2 * lib.MiB], "blocks differ")
    os.unlink(path)


@case
def proc_probes():
    pid = os.getpid()
    lib.reset_hwm(pid)
    before = lib.vmhwm_kib(pid)
    junk = bytearray(64 * lib.MiB)
    junk[::4096] = b"x" * len(junk[::4096])
    after = lib.vmhwm_kib(pid)
    del junk
    check(after >= before + 60 * 1024, "VmHWM %d -> %d KiB after touching 64 MiB" % (before, after))
    lib.reset_hwm(pid)
    check(lib.vmhwm_kib(pid) < after, "clear_refs did not reset VmHWM")
    n = lib.fd_count(pid)
    s = socket.socket()
    eq(lib.fd_count(pid), n + 1, "fd count after a socket")
    s.close()


def main():
    passed = failed = 0
    for fn in CASES:
        try:
            fn()
            passed += 1
            print("ok   selftest: %s" % fn.__name__)
        except Exception as e:
            failed += 1
            print("FAIL selftest: %s: %s: %s" % (fn.__name__, type(e).__name__, e))
    lib.cleanup_all()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
