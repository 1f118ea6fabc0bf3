"""sluice-proxy --mode buffer.

Contract: "reads the whole body into memory before forwarding it, with
Content-Length (the baseline that benchmarks compare against); same results
otherwise." (Its memory growth is in test_memory.py.)
"""

import time

import lib
from lib import Conn, case, check, eq, req, body_bytes, part, multipart, form_ctype, MiB, KiB


@case("buffer: Content-Length upload forwarded with Content-Length")
def buffer_cl(env):
    p = env.proxy("--mode", "buffer", "--max-body-bytes", lib.BIG_BODY_LIMIT)
    path, digest = lib.gen_file(2 * MiB + 1, seed=80)
    r = lib.curl(["-T", path, "-X", "POST", p.url("/buf/cl")])
    eq(r.status, 200, "status (%s)" % r.err)
    j = r.json()
    eq(j.get("sha256"), digest, "sink sha256")
    eq(j.get("framing"), "length", "sink framing")
    eq(r.hdr("Sluice-Body-Bytes"), str(2 * MiB + 1), "Sluice-Body-Bytes")


@case("buffer: chunked upload forwarded with Content-Length")
def buffer_chunked(env):
    p = env.proxy("--mode", "buffer", "--max-body-bytes", lib.BIG_BODY_LIMIT)
    body = body_bytes(300 * KiB, seed=81)
    r = lib.upload(p.port, "/buf/te", body, te=True, sizes=[10000] * 40, split=3)
    lib.sink_saw(r, body, framing="length", method="POST", target="/buf/te")
    eq(r.hdr("Sluice-Body-Bytes"), str(len(body)), "Sluice-Body-Bytes")


@case("buffer: --digest and pipelined requests give the same results")
def buffer_digest(env):
    p = env.proxy("--mode", "buffer", "--digest", "--max-body-bytes", lib.BIG_BODY_LIMIT)
    b1, b2 = body_bytes(1000, seed=82), body_bytes(2000, seed=83)
    with Conn(p.port) as c:
        c.send(req("POST", "/buf/1", body=b1) + req("POST", "/buf/2", body=b2))
        for b, t in ((b1, "/buf/1"), (b2, "/buf/2")):
            r = c.response("POST")
            lib.sink_saw(r, b, framing="length", target=t)
            eq(r.hdr("Sluice-Body-SHA256"), lib.sha256(b), "Sluice-Body-SHA256")


@case("buffer: extract mode forwards the part as PUT with Content-Length")
def buffer_extract(env):
    p = env.proxy("--mode", "buffer", "--extract", "file", "--max-body-bytes", lib.BIG_BODY_LIMIT)
    content = lib.png(10, 10) + body_bytes(100 * KiB, seed=84)
    body = multipart([part("a", b"1"), part("file", content, ctype="image/png")])
    r, c = lib.exchange(p.port, req("POST", "/buf/ex", [("Content-Type", form_ctype())], body=body))
    c.close()
    lib.sink_saw(r, content, framing="length", method="PUT", target="/buf/ex")
    eq(r.hdr("Sluice-Image"), "png 10x10", "Sluice-Image")


@case("buffer: no body byte reaches the upstream before the whole body arrived")
def buffer_holds(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--mode", "buffer") as p:
        body = body_bytes(200 * KiB, seed=85)
        with Conn(p.port) as c:
            data = req("POST", "/buf/hold", body=body)
            c.send(data[:-100 * KiB])
            time.sleep(0.5)
            for rec in list(up.conns):
                raw = bytes(rec.raw)
                i = raw.find(b"\r\n\r\n")
                check(i < 0 or len(raw) == i + 4, "upstream got %d body bytes early" % (len(raw) - i - 4))
            c.send(data[-100 * KiB:])
            eq(c.response("POST").status, 200, "status")
        m = up.wait_request()
        eq(m.hdrs("content-length"), [str(len(body))], "Content-Length upstream")
        check(m.body == body, "body differs upstream")
