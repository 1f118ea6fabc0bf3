"""sluice-proxy --extract FIELD.

Contract: "the request must be multipart/form-data (else 415, also for a
request without a body); a multipart Content-Type without a valid boundary is
400. The content of the first part whose form name is exactly FIELD
(byte-for-byte, case-sensitive; FIELD `*`: the first part whose
Content-Disposition has a filename or filename* parameter, even an empty one)
is streamed to the upstream as `PUT <same target>` with `Transfer-Encoding:
chunked`, the part's Content-Type (application/octet-stream when absent) and
the request's other end-to-end headers (minus Content-Type and
Content-Length). Other parts are read and dropped. The terminating zero chunk
is sent only after the closing delimiter of the whole multipart body has been
seen, so a truncated upload never looks complete. No such part: 400, nothing
complete reaches the upstream."
"""

import time

import lib
from lib import Conn, case, check, eq, req, chunked, sha256, body_bytes, part, multipart, form_ctype, MiB, KiB

BOUNDARY = "sluiceBoundary7MA4YWxk"
CT = ("Content-Type", form_ctype(BOUNDARY))


def form(parts, **kw):
    return multipart(parts, BOUNDARY, **kw)


def send_form(port, target, body, split=None, headers=(), te=False):
    hs = [CT] + list(headers)
    if te:
        data = req("POST", target, hs + [("Transfer-Encoding", "chunked")], body=chunked(body, [777] * 10000))
    else:
        data = req("POST", target, hs, body=body)
    with Conn(port) as c:
        if split == "bytewise":
            c.send_bytewise(data)
        elif split is not None:
            c.send_random(data, split)
        else:
            c.send(data)
        return c.response("POST")


def extracted(r, content, target, what="sink"):
    return lib.sink_saw(r, content, framing="chunked", method="PUT", target=target, what=what)


@case("extract: curl -F file=@... reaches the sink as PUT <target>, chunked")
def curl_form(env):
    p = env.proxy("--extract", "file")
    path, digest = lib.gen_file(MiB + 7, seed=51)
    r = lib.curl(["-F", "other=value", "-F", "file=@%s;type=application/x-test" % path,
                  "-F", "after=1", p.url("/ex/curl?id=7")])
    eq(r.status, 200, "status (%s)" % r.err)
    j = r.json()
    eq(j.get("method"), "PUT", "sink method")
    eq(j.get("target"), "/ex/curl?id=7", "sink target")
    eq(j.get("framing"), "chunked", "sink framing")
    eq(j.get("sha256"), digest, "sink sha256")
    eq(r.hdr("Sluice-Body-Bytes"), str(MiB + 7), "Sluice-Body-Bytes (part bytes)")


@case("extract: other parts (2 MiB before, 1 MiB after) read and dropped")
def other_parts_dropped(env):
    p = env.proxy("--extract", "file")
    content = body_bytes(300 * KiB, seed=52)
    body = form([part("before", body_bytes(2 * MiB, seed=53)),
                 part("file", content, filename="f.bin"),
                 part("after", body_bytes(MiB, seed=54), filename="g.bin")])
    extracted(send_form(p.port, "/ex/drop", body), content, "/ex/drop")


@case("extract: form name matched exactly and case-sensitively")
def exact_name(env):
    p = env.proxy("--extract", "file")
    content = b"the right one"
    body = form([part("File", b"wrong: case"), part("file2", b"wrong: longer"),
                 part("fil", b"wrong: shorter"), part("file ", b"wrong: trailing space"),
                 part("FILE", b"wrong: upper"),
                 part("file", content), part("file", b"wrong: second match")])
    extracted(send_form(p.port, "/ex/name", body), content, "/ex/name")


@case("extract: FIELD with non-ASCII bytes matched byte-for-byte")
def utf8_name(env):
    p = env.proxy("--extract", "f\u00e9ld")
    content = b"utf-8 name"
    body = form([part("fe\u0301ld", b"wrong: decomposed"), part("f\u00e9ld", content)])
    extracted(send_form(p.port, "/ex/utf8", body), content, "/ex/utf8")


@case("extract: FIELD '*' takes the first part with a filename, even empty")
def star_filename(env):
    p = env.proxy("--extract", "*")
    content = b"empty filename counts"
    body = form([part("*", b"wrong: named * but no filename"), part("a", b"wrong: no filename"),
                 part("b", content, filename=""), part("c", b"wrong: later", filename="c.txt")])
    extracted(send_form(p.port, "/ex/star", body), content, "/ex/star")


@case("extract: FIELD '*' takes a part with only filename*")
def star_filename_star(env):
    p = env.proxy("--extract", "*")
    content = b"filename* counts"
    body = form([part("a", b"wrong"), part("b", content, filename_star="UTF-8''%E2%82%AC.txt")])
    extracted(send_form(p.port, "/ex/star2", body), content, "/ex/star2")


@case("extract: forwarded head: PUT, chunked, part Content-Type, other headers")
def forwarded_head(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--extract", "file") as p:
        content = body_bytes(5000, seed=55)
        body = form([part("meta", b"{}", ctype="application/json"),
                     part("file", content, filename="x.png", ctype="image/png")])
        r = send_form(p.port, "/ex/head?x=%41", body,
                      headers=[("X-Custom", "keep me"), ("Authorization", "Bearer t"),
                               ("Host", "origin.test")])
        eq(r.status, 200, "status")
        m = up.wait_request()
        eq(m.start, "PUT /ex/head?x=%41 HTTP/1.1", "forwarded request line")
        eq(m.hdrs("transfer-encoding"), ["chunked"], "Transfer-Encoding")
        eq(m.hdrs("content-type"), ["image/png"], "Content-Type")
        eq(m.hdrs("content-length"), [], "Content-Length")
        eq(m.hdrs("x-custom"), ["keep me"], "X-Custom")
        eq(m.hdrs("authorization"), ["Bearer t"], "Authorization")
        eq(m.hdrs("host"), ["origin.test"], "Host")
        check(m.complete and m.body == content, "body differs upstream")


@case("extract: part without Content-Type is sent as application/octet-stream")
def default_ctype(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--extract", "file") as p:
        body = form([part("file", b"raw bytes")])
        eq(send_form(p.port, "/ex/ct", body).status, 200, "status")
        m = up.wait_request()
        eq(m.hdrs("content-type"), ["application/octet-stream"], "Content-Type")
        eq(m.body, b"raw bytes", "body")


@case("extract: non-multipart requests -> 415 (also without a body)")
def not_multipart(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--extract", "file") as p:
        cases = [
            req("POST", "/ex/415", [("Content-Type", "text/plain")], body=b"hello"),
            req("POST", "/ex/415", [("Content-Type", "application/json")], body=b"{}"),
            req("POST", "/ex/415", [("Content-Type", "multipart/mixed; boundary=abc")],
                body=b"--abc\r\n\r\nx\r\n--abc--\r\n"),
            req("POST", "/ex/415", body=b"no content type"),
            req("GET", "/ex/415"),
        ]
        for i, data in enumerate(cases):
            r, c = lib.exchange(p.port, data)
            c.close()
            eq(r.status, 415, "case %d status" % i)
            eq(r.hdr("Sluice-Body-Bytes"), None, "Sluice-Body-Bytes on the proxy's own 415")
        time.sleep(0.2)
        eq(up.total_requests(), 0, "requests forwarded")


@case("extract: media type matched case-insensitively")
def ctype_case(env):
    p = env.proxy("--extract", "file")
    body = form([part("file", b"x")])
    data = req("POST", "/ex/case", [("Content-Type", "Multipart/Form-Data; Boundary=" + BOUNDARY)], body=body)
    r, c = lib.exchange(p.port, data)
    c.close()
    extracted(r, b"x", "/ex/case")


@case("extract: multipart without a valid boundary -> 400")
def bad_boundary(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--extract", "file") as p:
        for ct in ("multipart/form-data", "multipart/form-data; boundary=",
                   'multipart/form-data; boundary=""', "multipart/form-data; boundary=" + "b" * 71,
                   "multipart/form-data; charset=utf-8"):
            body = multipart([part("file", b"x")], "b" * 71 if "b" * 71 in ct else "x")
            r, c = lib.exchange(p.port, req("POST", "/ex/400", [("Content-Type", ct)], body=body))
            c.close()
            eq(r.status, 400, "status for %r" % ct)
        time.sleep(0.2)
        eq(len(up.complete_requests()), 0, "complete requests upstream")


@case("extract: quoted boundary with spaces and 70-character boundary accepted")
def good_boundaries(env):
    p = env.proxy("--extract", "file")
    for bnd, ct in (("a b'()+_,-./:=?", "multipart/form-data; boundary=\"a b'()+_,-./:=?\""),
                    ("z" * 70, "multipart/form-data; boundary=" + "z" * 70)):
        body = multipart([part("file", b"content")], bnd)
        r, c = lib.exchange(p.port, req("POST", "/ex/b", [("Content-Type", ct)], body=body))
        c.close()
        extracted(r, b"content", "/ex/b", what="boundary %r" % bnd)


@case("extract: no such part -> 400, nothing complete upstream")
def no_such_part(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--extract", "file") as p:
        body = form([part("a", b"1"), part("files", b"2", filename="f"), part("FILE", b"3")])
        r = send_form(p.port, "/ex/none", body)
        eq(r.status, 400, "status")
        time.sleep(0.2)
        eq(len(up.complete_requests()), 0, "complete requests upstream")


@case("extract: preamble and epilogue ignored")
def preamble(env):
    p = env.proxy("--extract", "file")
    content = body_bytes(1000, seed=56)
    body = form([part("file", content)], preamble=b"This is the preamble.\r\n",
                epilogue=b"epilogue bytes\r\n")
    extracted(send_form(p.port, "/ex/pre", body), content, "/ex/pre")


@case("extract: 1-byte writes, boundary look-alikes inside the data")
def bytewise(env):
    p = env.proxy("--extract", "file")
    b = BOUNDARY.encode()
    content = (b"--" + b + b"x\r\n--" + b[:-1] + b"\r\n\r--" + b + b"-\r\n" + b"\r\n--" + b[:5]) * 3
    # y: the boundary text after "--" but not after CRLF. (Data that starts
    # with "--" + boundary + CRLF right after the blank line is a delimiter:
    # the blank line's CRLF is the delimiter's, RFC 2046 body-part grammar.)
    body = form([part("x", b"\r\n--" + b[:10]), part("file", content), part("y", b"z--" + b)])
    extracted(send_form(p.port, "/ex/bw", body, split="bytewise"), content, "/ex/bw")


@case("extract: random splits (4 seeds), 200 KiB parts")
def random_splits(env):
    p = env.proxy("--extract", "file")
    for seed in range(1, 5):
        content = body_bytes(200 * KiB, seed=seed) + b"\r\n--" + BOUNDARY.encode()[:-2]
        body = form([part("pre", body_bytes(100 * KiB, seed=seed + 10)), part("file", content),
                     part("post", body_bytes(50 * KiB, seed=seed + 20))])
        extracted(send_form(p.port, "/ex/rs", body, split=seed), content, "/ex/rs", what="seed %d" % seed)


@case("extract: multipart request body sent chunked")
def chunked_request(env):
    p = env.proxy("--extract", "file")
    content = body_bytes(100 * KiB, seed=57)
    body = form([part("file", content)])
    extracted(send_form(p.port, "/ex/te", body, te=True), content, "/ex/te")


@case("extract: Sluice-Body-Bytes is the part size; --digest hashes the part")
def digest(env):
    p = env.proxy("--extract", "file", "--digest")
    content = body_bytes(77777, seed=58)
    r = send_form(p.port, "/ex/dg", form([part("a", b"zz"), part("file", content)]))
    extracted(r, content, "/ex/dg")
    eq(r.hdr("Sluice-Body-Bytes"), "77777", "Sluice-Body-Bytes")
    eq(r.hdr("Sluice-Body-SHA256"), sha256(content), "Sluice-Body-SHA256")


@case("extract: keep-alive, two uploads on one connection")
def keep_alive(env):
    p = env.proxy("--extract", "file")
    with Conn(p.port) as c:
        for i in range(2):
            content = body_bytes(3000 + i, seed=60 + i)
            c.send(req("POST", "/ex/ka%d" % i, [CT], body=form([part("file", content)])))
            extracted(c.response("POST"), content, "/ex/ka%d" % i)


# -- truncation never looks complete ------------------------------------------

def _partial_upload(up, p, body_sent, total_len):
    """Sends a head announcing total_len and body_sent bytes, waits, closes."""
    c = Conn(p.port)
    c.send(req("POST", "/ex/trunc", [CT, ("Content-Length", str(total_len))]) + body_sent)
    rec = up.wait_conn(1, 5)
    time.sleep(0.3)
    c.abort()
    return rec


@case("extract: zero chunk only after the closing delimiter")
def terminator_after_close(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--extract", "file") as p:
        content = body_bytes(256 * KiB, seed=61)
        body = form([part("file", content), part("later", b"still coming")])
        tail = b"\r\n--" + BOUNDARY.encode() + b"--\r\n"
        check(body.endswith(tail), "builder")
        with Conn(p.port) as c:
            c.send(req("POST", "/ex/late", [CT, ("Content-Length", str(len(body)))]) + body[:-len(tail)])
            rec = up.wait_conn(1, 5)
            lib.wait_for(lambda: len(rec.raw) >= len(content) // 2, 3)
            check(len(rec.raw) >= len(content) // 2,
                  "part not streamed: upstream has %d of %d bytes" % (len(rec.raw), len(content)))
            time.sleep(0.5)
            check(b"\r\n0\r\n\r\n" not in bytes(rec.raw) and not rec.requests,
                  "upstream body complete before the closing delimiter")
            c.send(tail)
            r = c.response("POST")
        eq(r.status, 200, "status")
        m = up.wait_request()
        check(m.complete and m.body == content, "upstream body differs / incomplete")


@case("extract: client closes before the closing delimiter -> upstream never complete")
def truncated_before_close(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--extract", "file") as p:
        content = body_bytes(100 * KiB, seed=62)
        body = form([part("file", content)])
        rec = _partial_upload(up, p, body[:-10], len(body))
        check(up.wait_closed(rec, 5), "upstream connection left open")
        check(all(not m.complete for m in rec.requests), "upstream saw a complete body")
        check(not bytes(rec.raw).endswith(b"0\r\n\r\n"), "upstream saw a zero chunk")
        r = send_form(p.port, "/ex/after", form([part("file", b"next")]))
        eq(r.status, 200, "next upload status")


@case("extract: client closes mid-part -> upstream never complete")
def truncated_mid_part(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--extract", "file") as p:
        content = body_bytes(300 * KiB, seed=63)
        body = form([part("file", content)])
        rec = _partial_upload(up, p, body[:150 * KiB], len(body))
        check(up.wait_closed(rec, 5), "upstream connection left open")
        check(all(not m.complete for m in rec.requests), "upstream saw a complete body")
        # and the proxy goes on serving
        r = send_form(p.port, "/ex/after", form([part("file", b"next")]))
        eq(r.status, 200, "next upload status")
