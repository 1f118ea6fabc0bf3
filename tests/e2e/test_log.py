"""The proxy's log: "One log line per request to stderr: `METHOD TARGET STATUS
BYTES DURATION_MS`, BYTES being the request body bytes received from the
client."
"""

import re
import time

import lib
from lib import Conn, case, check, eq, req, body_bytes

DUR = r"(\d+(?:\.\d+)?)"


def lines_for(p, method, target, n=1, timeout=3.0):
    """The log lines for METHOD TARGET, once n of them are there."""
    pat = re.compile(r"^%s %s (\d{3}) (\d+) %s$" % (re.escape(method), re.escape(target), DUR))

    def get():
        ls = [pat.match(ln) for ln in p.log_lines()]
        ls = [m for m in ls if m]
        return ls if len(ls) >= n else None
    got = lib.wait_for(get, timeout)
    if not got:
        near = [ln for ln in p.log_lines() if target in ln]
        raise lib.Fail("no log line '%s %s STATUS BYTES DURATION_MS' (lines with the target: %r)"
                       % (method, target, near[:3]))
    return got


@case("log: one line 'POST TARGET 200 BYTES MS' for a Content-Length upload")
def log_cl(env):
    p = env.proxy()
    body = body_bytes(1234, seed=130)
    lib.sink_saw(lib.upload(p.port, "/log/cl?x=1", body), body)
    ls = lines_for(p, "POST", "/log/cl?x=1")
    eq(len(ls), 1, "log lines")
    eq((ls[0].group(1), ls[0].group(2)), ("200", "1234"), "STATUS BYTES")


@case("log: request without body logs 0 bytes; custom method and status")
def log_get(env):
    p = env.proxy()
    with Conn(p.port) as c:
        c.send(req("GET", "/log/get"))
        eq(c.response().status, 200, "status")
    ls = lines_for(p, "GET", "/log/get")
    eq((ls[0].group(1), ls[0].group(2)), ("200", "0"), "STATUS BYTES")


@case("log: one line per request on a keep-alive connection")
def log_keepalive(env):
    p = env.proxy()
    with Conn(p.port) as c:
        for i in range(5):
            c.send(req("PUT", "/log/ka", body=b"z" * (i + 1)))
            eq(c.response().status, 200, "status")
    ls = lines_for(p, "PUT", "/log/ka", 5)
    time.sleep(0.2)
    ls = lines_for(p, "PUT", "/log/ka", 5)
    eq(len(ls), 5, "log lines")
    eq(sorted(int(m.group(2)) for m in ls), [1, 2, 3, 4, 5], "BYTES of the 5 requests")


@case("log: extract mode logs the whole request body received from the client")
def log_extract(env):
    p = env.proxy("--extract", "file")
    content = body_bytes(5000, seed=131)
    body = lib.multipart([lib.part("a", b"x" * 100), lib.part("file", content)])
    r, c = lib.exchange(p.port, req("POST", "/log/ex", [("Content-Type", lib.form_ctype())], body=body))
    c.close()
    eq(r.hdr("Sluice-Body-Bytes"), "5000", "Sluice-Body-Bytes")
    ls = lines_for(p, "POST", "/log/ex")
    eq((ls[0].group(1), ls[0].group(2)), (str(r.status), str(len(body))), "STATUS BYTES")


@case("log: the proxy's own 413 and 502 are logged")
def log_errors(env):
    p = env.proxy("--max-body-bytes", 100)
    lib.expect_reject(p.port, req("POST", "/log/413", [("Content-Length", "101")]), 413, "CL 101")
    ls = lines_for(p, "POST", "/log/413")
    eq((ls[0].group(1), ls[0].group(2)), ("413", "0"), "STATUS BYTES")
    with lib.start_proxy("%s:%d" % (lib.HOST, lib.free_port())) as q:
        r, c = lib.exchange(q.port, req("PUT", "/log/502", body=b"12345"))
        c.close()
        eq(r.status, 502, "status")
        ls = lines_for(q, "PUT", "/log/502")
        eq(ls[0].group(1), "502", "STATUS")


@case("log: DURATION_MS covers a body that takes 0.5 s to arrive")
def log_duration(env):
    p = env.proxy()
    body = body_bytes(1000, seed=132)
    with Conn(p.port) as c:
        c.send(req("POST", "/log/slow", [("Content-Length", "1000")]))
        c.send_pieces(body, [200] * 5, delay=0.12)
        eq(c.response().status, 200, "status")
    ls = lines_for(p, "POST", "/log/slow")
    check(float(ls[0].group(3)) >= 400, "DURATION_MS %s for a 0.5 s request" % ls[0].group(3))
