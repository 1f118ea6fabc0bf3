"""Faults and robustness.

Contract: "upstream unreachable -> 502; upstream fails mid-body -> 502 if no
response started, else connection closed; client aborts mid-body -> the
upstream connection is closed WITHOUT the terminating zero chunk (or short of
Content-Length), so no truncated body ever looks complete upstream." "The
proxy keeps serving other connections through all of these." Response header
"Sluice-Body-Bytes: N (body bytes sent upstream, so far if the upstream
answered early)". Plus: 64 concurrent uploads byte-exact, no fd leak, and an
aborted upload never appears in a `sluice-sink --store` directory.
"""

import os
import threading
import time

import lib
from lib import Conn, case, check, eq, req, body_bytes, KiB, MiB


@case("fault: upstream unreachable -> 502, and again on the next request")
def unreachable(env):
    with lib.start_proxy("%s:%d" % (lib.HOST, lib.free_port())) as p:
        for data, m in ((req("GET", "/u"), "GET"), (req("POST", "/u", body=b"x" * 5000), "POST"),
                        (req("PUT", "/u", [("Transfer-Encoding", "chunked")], body=lib.chunked(b"abc")), "PUT")):
            with Conn(p.port) as c:
                c.send(data)
                r = c.response(m)
            eq(r.status, 502, m + " status")
            eq(r.hdr("Sluice-Body-Bytes"), None, "Sluice-Body-Bytes on the proxy's own 502")


def close_after(n):
    def fault(up, rec, rd):
        rd.until(b"\r\n\r\n", time.monotonic() + 10)
        got = len(rec.raw)  # the head's read may already hold n bytes
        while got < n and rd._fill(time.monotonic() + 10):
            got = len(rec.raw)
        rec.sock.close()
    return fault


@case("fault: upstream closes mid-body before answering -> 502")
def upstream_dies_mid_body(env):
    with lib.Upstream(behaviour=lib.first_conn(close_after(20 * KiB))) as up, lib.start_proxy(up) as p:
        body = body_bytes(MiB, seed=100)
        with Conn(p.port) as c:
            c.send(req("POST", "/die", [("Content-Length", str(len(body)))]) + body[:200 * KiB])
            try:
                r = c.response()
            except lib.Closed:
                raise lib.Fail("closed without a 502")
            eq(r.status, 502, "status")
        lib.serves_py(p, up)


@case("fault: upstream closes mid-body (chunked request) -> 502")
def upstream_dies_mid_chunked(env):
    with lib.Upstream(behaviour=lib.first_conn(close_after(20 * KiB))) as up, lib.start_proxy(up) as p:
        body = body_bytes(200 * KiB, seed=101)
        with Conn(p.port) as c:
            c.send(req("POST", "/die", [("Transfer-Encoding", "chunked")]) + b"%x\r\n" % (MiB) + body)
            r = c.response()
            eq(r.status, 502, "status")
        lib.serves_py(p, up)


@case("fault: upstream answers early -> relayed, Sluice-Body-Bytes so far")
def upstream_answers_early(env):
    def fault(up, rec, rd):
        lib.answer_early(up, rec, rd, after=10 * KiB, close=True,
                         response=b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Early: 1\r\n\r\nearly")
    with lib.Upstream(behaviour=lib.first_conn(fault)) as up, lib.start_proxy(up) as p:
        body = body_bytes(MiB, seed=102)
        sent = 100 * KiB
        with Conn(p.port) as c:
            c.send(req("POST", "/early", [("Content-Length", str(len(body)))]) + body[:sent])
            r = c.response()
            eq(r.status, 200, "status")
            eq(r.body, b"early", "body")
            eq(r.hdr("X-Early"), "1", "X-Early")
            n = r.hdr("Sluice-Body-Bytes")
            check(n is not None and n.isdigit(), "Sluice-Body-Bytes %r" % n)
            check(10 * KiB <= int(n) <= sent, "Sluice-Body-Bytes %s, want 10240..%d" % (n, sent))
            # the upstream is gone mid-body: the connection cannot go on
            check(c.closed(5), "client connection not closed")
        lib.serves_py(p, up)


@case("fault: upstream truncates its response -> client connection closed, body incomplete")
def upstream_truncates_response(env):
    def fault(up, rec, rd):
        lib.read_request(rd, time.monotonic() + 10)
        rec.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 1000)
        time.sleep(0.2)
        rec.sock.close()
    with lib.Upstream(behaviour=lib.first_conn(fault)) as up, lib.start_proxy(up) as p:
        with Conn(p.port) as c:
            c.send(req("POST", "/trunc", body=b"abc"))
            r = c.response()
            eq(r.status, 200, "status")
            check(not r.complete, "truncated upstream response looks complete to the client")
            check(c.closed(3), "client connection not closed")
        lib.serves_py(p, up)


@case("fault: upstream truncates a chunked response -> no terminator for the client")
def upstream_truncates_chunked(env):
    def fault(up, rec, rd):
        lib.read_request(rd, time.monotonic() + 10)
        rec.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nabc")
        time.sleep(0.2)
        rec.sock.close()
    with lib.Upstream(behaviour=lib.first_conn(fault)) as up, lib.start_proxy(up) as p:
        with Conn(p.port) as c:
            c.send(req("GET", "/trunc"))
            r = c.response()
            eq(r.status, 200, "status")
            check(not r.complete, "truncated chunked response looks complete to the client")
        lib.serves_py(p, up)


# -- client aborts -------------------------------------------------------------------

def client_abort(p, data, cut, rst=True):
    c = Conn(p.port)
    c.send(data[:cut])
    time.sleep(0.3)
    if rst:
        c.abort()
    else:
        c.close()


@case("fault: client aborts mid Content-Length body -> upstream short, closed")
def abort_cl(env):
    for rst in (True, False):
        with lib.Upstream() as up, lib.start_proxy(up) as p:
            body = body_bytes(MiB, seed=103)
            data = req("POST", "/abort", body=body)
            client_abort(p, data, len(data) - 300 * KiB, rst)
            rec = up.wait_conn(1)
            check(up.wait_closed(rec, 5), "upstream connection left open (rst=%s)" % rst)
            eq(len(rec.requests), 1, "upstream requests")
            m = rec.requests[0]
            check(not m.complete, "upstream body complete (rst=%s)" % rst)
            check(len(m.body) < len(body), "upstream got the whole length")
            lib.serves_py(p, up)


@case("fault: client aborts mid chunked body -> no zero chunk upstream")
def abort_chunked(env):
    for rst in (True, False):
        with lib.Upstream() as up, lib.start_proxy(up) as p:
            body = body_bytes(MiB, seed=104)
            data = req("POST", "/abort", [("Transfer-Encoding", "chunked")],
                       body=lib.chunked(body, [64 * KiB] * 16))
            client_abort(p, data, len(data) - 200 * KiB, rst)
            rec = up.wait_conn(1)
            check(up.wait_closed(rec, 5), "upstream connection left open (rst=%s)" % rst)
            check(all(not m.complete for m in rec.requests), "upstream saw the zero chunk (rst=%s)" % rst)
            lib.serves_py(p, up)


@case("fault: client aborts right after the last chunk's data -> no zero chunk")
def abort_before_terminator(env):
    with lib.Upstream() as up, lib.start_proxy(up) as p:
        body = body_bytes(10 * KiB, seed=105)
        data = req("POST", "/abort", [("Transfer-Encoding", "chunked")], body=lib.chunked(body))
        client_abort(p, data, len(data) - len(b"0\r\n\r\n"))
        rec = up.wait_conn(1)
        check(up.wait_closed(rec, 5), "upstream connection left open")
        check(all(not m.complete for m in rec.requests), "upstream saw the zero chunk")
        check(not bytes(rec.raw).endswith(b"0\r\n\r\n"), "zero chunk bytes upstream")


@case("fault: client aborts mid-head -> nothing forwarded, still serving")
def abort_head(env):
    with lib.Upstream() as up, lib.start_proxy(up) as p:
        for cut in (1, 10, 30):
            client_abort(p, req("POST", "/h", body=b"abc"), cut)
        time.sleep(0.1)
        eq(lib.upstream_bytes(up), 0, "bytes forwarded")
        lib.serves_py(p, up)


@case("fault: aborted upload never appears in the sink's --store directory")
def abort_store(env):
    d = lib.temp_dir("store")
    with lib.start_sink("--store", d) as s, lib.start_proxy(s) as p:
        body = body_bytes(MiB, seed=106)
        client_abort(p, req("PUT", "/dir/cl.bin", body=body), 600 * KiB)
        client_abort(p, req("PUT", "/dir/te.bin", [("Transfer-Encoding", "chunked")],
                            body=lib.chunked(body, [100 * KiB] * 10)), 600 * KiB)
        time.sleep(0.5)
        left = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]
        eq(left, [], "files in the store directory")
        r = lib.upload(p.port, "/dir/ok.bin", body[:1000], method="PUT")
        eq(r.status, 201, "status of a complete upload")
        check(os.path.isfile(os.path.join(d, "dir", "ok.bin")), "complete upload not stored")


@case("fault: aborted multipart upload (--extract) never appears in --store")
def abort_store_extract(env):
    d = lib.temp_dir("store")
    with lib.start_sink("--store", d) as s, lib.start_proxy(s, "--extract", "file") as p:
        content = body_bytes(512 * KiB, seed=107)
        body = lib.multipart([lib.part("file", content)])
        data = req("POST", "/x/img.bin", [("Content-Type", lib.form_ctype())], body=body)
        client_abort(p, data, len(data) - 20)        # all content, no closing delimiter
        client_abort(p, data, len(data) // 2)
        time.sleep(0.5)
        left = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]
        eq(left, [], "files in the store directory")
        r, c = lib.exchange(p.port, data)
        c.close()
        eq(r.status, 201, "status of a complete upload")
        with open(os.path.join(d, "x", "img.bin"), "rb") as f:
            check(f.read() == content, "stored content differs")


# -- load and leaks ---------------------------------------------------------------------

@case("robust: 64 concurrent uploads byte-exact", timeout=60)
def concurrent_64(env):
    p = env.proxy("--max-body-bytes", lib.BIG_BODY_LIMIT)
    size = 32 * KiB if lib.SAN else 512 * KiB
    errors = []

    def one(i):
        try:
            body = body_bytes(size + i, seed=1000 + i)
            r = lib.upload(p.port, "/c/%d" % i, body, te=(i % 2 == 1), sizes=[8000 + i] * 1000,
                           split=(i if i % 4 == 0 else None))
            lib.sink_saw(r, body, framing="chunked" if i % 2 else "length", target="/c/%d" % i)
        except Exception as e:
            errors.append("upload %d: %s" % (i, e))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(45)
    check(not any(t.is_alive() for t in ts), "uploads still running after 45 s")
    check(not errors, "; ".join(errors[:3]) + (" (+%d more)" % (len(errors) - 3) if len(errors) > 3 else ""))


@case("robust: no fd leak after a batch of client faults", timeout=60)
def fd_leak_client(env):
    with lib.start_sink() as s, lib.start_proxy(s, "--timeout-ms", 300) as p:
        lib.serves(p, "(warm-up)")
        time.sleep(0.2)
        base = lib.fd_count(p.pid)
        body = body_bytes(256 * KiB, seed=108)
        for i in range(8):
            client_abort(p, req("POST", "/f", body=body), 100 * KiB, rst=bool(i % 2))
            client_abort(p, req("POST", "/f", [("Transfer-Encoding", "chunked")],
                                body=lib.chunked(body, [50000] * 6)), 100 * KiB, rst=bool(i % 2))
            client_abort(p, req("POST", "/f", body=body), 20, rst=bool(i % 2))
            lib.expect_reject(p.port, b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400, "bad")
            lib.expect_reject(p.port, req("POST", "/f", [("Transfer-Encoding", "chunked")])
                              + b"zz\r\n", 400, "bad chunk")
        idle = [Conn(p.port) for _ in range(4)]       # cut by --timeout-ms
        for c in idle:
            c.send(b"GET / HT")
        time.sleep(1.0)
        for c in idle:
            c.close()
        lib.serves(p)
        got = lib.wait_for(lambda: lib.fd_count(p.pid) <= base, 3)
        check(got, "fd count %d after the faults, %d before" % (lib.fd_count(p.pid), base))


@case("robust: no fd leak after a batch of upstream faults", timeout=60)
def fd_leak_upstream(env):
    state = {"n": 2}          # the warm-up connection is served normally

    def behaviour(up, rec, rd):
        state["n"] += 1
        k = state["n"] % 3
        if k == 1:
            return close_after(5 * KiB)(up, rec, rd)
        if k == 2:
            return lib.answer_early(up, rec, rd, after=1 * KiB, close=True)
        return lib.Upstream.serve(up, rec, rd)
    with lib.Upstream(behaviour=behaviour) as up, lib.start_proxy(up) as p:
        lib.serves_py(p, up, "(warm-up)")
        time.sleep(0.2)
        base = lib.fd_count(p.pid)
        body = body_bytes(64 * KiB, seed=109)
        for i in range(15):
            try:
                with Conn(p.port, timeout=5) as c:
                    c.send(req("POST", "/f%d" % i, body=body))
                    c.response()
                    c.closed(2)
            except (lib.Closed, OSError):
                pass
        state["n"] = 2          # next connection is served normally
        lib.serves_py(p, up)
        got = lib.wait_for(lambda: lib.fd_count(p.pid) <= base, 3)
        check(got, "fd count %d after the faults, %d before" % (lib.fd_count(p.pid), base))


@case("budget: 64 uploads through a 128 KiB budget, all byte-exact, none starved", timeout=90)
def tiny_budget(env):
    # Two 64 KiB blocks (plus the reserve of two) for 64 concurrent chunked
    # and Content-Length uploads: readers queue for memory in turn and the
    # pool's wake hook names the next one, no timer. Every upload completes
    # byte-exact within the bound, and the proxy does not spin meanwhile.
    p = env.proxy("--max-body-bytes", lib.BIG_BODY_LIMIT, "--max-memory", 131072)
    size = 16 * KiB if lib.SAN else 256 * KiB
    errors, took = [], []

    def one(i):
        t0 = time.monotonic()
        try:
            body = body_bytes(size + i, seed=2000 + i)
            r = lib.upload(p.port, "/b/%d" % i, body, te=(i % 2 == 1), sizes=[16000 + i] * 100)
            lib.sink_saw(r, body, framing="chunked" if i % 2 else "length", target="/b/%d" % i)
        except Exception as e:
            errors.append("upload %d: %s" % (i, e))
        took.append(time.monotonic() - t0)
    with open("/proc/%d/stat" % p.pid) as f:
        f0 = f.read().rsplit(")", 1)[1].split()
    cpu0 = (int(f0[11]) + int(f0[12])) / os.sysconf("SC_CLK_TCK")
    t_start = time.monotonic()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(75)
    wall = time.monotonic() - t_start
    with open("/proc/%d/stat" % p.pid) as f:
        f1 = f.read().rsplit(")", 1)[1].split()
    cpu = (int(f1[11]) + int(f1[12])) / os.sysconf("SC_CLK_TCK") - cpu0
    check(not any(t.is_alive() for t in ts), "uploads still running after 75 s")
    check(not errors, "; ".join(errors[:3]) + (" (+%d more)" % (len(errors) - 3) if len(errors) > 3 else ""))
    check(max(took) < 60, "the slowest upload took %.1f s (bound 60 s)" % max(took))
    # 16 MiB in all: well under a CPU second unless waiting readers spin
    check(cpu < max(2.0, wall * 0.9), "proxy used %.2f s of CPU in %.2f s" % (cpu, wall))
