"""--timeout-ms.

Contract: "the whole request head must arrive within --timeout-ms (default
30000) of its first byte (a deadline, so a client dribbling bytes is cut
too), and any gap longer than --timeout-ms without progress, while reading a
body or waiting for the upstream, closes the connection (a 408 may be sent
first if no response started). The proxy keeps serving other connections
through all of these."
"""

import select
import socket
import time

import lib
from lib import Conn, case, check, req, body_bytes

T = 300                       # --timeout-ms for these cases
SLACK = 1.5 if lib.SAN else 1.0


def closed_at(c, t0, limit):
    """Waits for the connection to close; returns (seconds since t0, bytes seen)."""
    got = bytearray()
    end = time.monotonic() + limit
    while time.monotonic() < end:
        c.sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            d = c.sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            return time.monotonic() - t0, bytes(got)
        if not d:
            return time.monotonic() - t0, bytes(got)
        got += d
    return None, bytes(got)


def only_status(got, allowed, what):
    """Bytes sent before a timeout close: nothing, or one response with an allowed status."""
    if not got:
        return
    st = got[9:12]
    check(got.startswith(b"HTTP/1.1 ") and st.isdigit() and int(st) in allowed,
          "%s: answered %r before closing, want nothing or %s" % (what, got[:40], allowed))


@case("timeout: dribbling head cut at the deadline, others served meanwhile")
def head_deadline(env):
    p = env.proxy("--timeout-ms", T)
    data = req("GET", "/" + "d" * 150, [("X-Slow", "y" * 100)])
    with Conn(p.port) as c:
        t0 = time.monotonic()
        got = bytearray()
        closed = None
        for i, b in enumerate(data):
            try:
                c.sock.send(bytes([b]))
            except OSError:
                closed = time.monotonic() - t0
                break
            if i == 2:
                lib.serves(p, "while a client dribbles")
            r, _, _ = select.select([c.sock], [], [], 0.04)
            if r:
                try:
                    d = c.sock.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    closed = time.monotonic() - t0
                    break
                got += d
            if time.monotonic() - t0 > T / 1000 + SLACK + 1:
                break
        check(closed is not None, "head dribbled for %.1fs was not cut" % (time.monotonic() - t0))
        check(T / 1000 * 0.8 <= closed <= T / 1000 + SLACK,
              "cut after %.2fs, want about %.2fs" % (closed, T / 1000))
        only_status(bytes(got), (408,), "dribbling head")
    lib.serves(p)


@case("timeout: a complete head just under the deadline is served")
def head_in_time(env):
    p = env.proxy("--timeout-ms", T)
    data = req("POST", "/in-time", body=b"abc")
    with Conn(p.port) as c:
        c.send(data[:5])
        time.sleep(T / 1000 / 3)
        c.send(data[5:])
        lib.sink_saw(c.response(), b"abc")


@case("timeout: idle body gap closes the connection, upstream body aborted")
def body_gap(env):
    with lib.Upstream() as up, lib.start_proxy(up, "--timeout-ms", T) as p:
        with Conn(p.port) as c:
            c.send(req("POST", "/gap", [("Content-Length", "1000")]) + b"x" * 10)
            t0 = time.monotonic()
            dt, got = closed_at(c, t0, T / 1000 + SLACK + 2)
            check(dt is not None, "idle body not cut")
            check(dt <= T / 1000 + SLACK, "cut after %.2fs, want about %.2fs" % (dt, T / 1000))
            only_status(got, (408,), "idle body")
        rec = up.wait_conn(1) if up.conns else None
        if rec:
            check(up.wait_closed(rec, 3), "upstream connection left open")
            check(all(not m.complete for m in rec.requests), "upstream body complete")
        lib.serves_py(p, up)


@case("timeout: idle chunked body gap closes the connection")
def chunked_gap(env):
    p = env.proxy("--timeout-ms", T)
    with Conn(p.port) as c:
        c.send(req("POST", "/gap", [("Transfer-Encoding", "chunked")]) + b"5\r\nhel")
        dt, got = closed_at(c, time.monotonic(), T / 1000 + SLACK + 2)
        check(dt is not None and dt <= T / 1000 + SLACK, "idle chunked body cut after %r s" % dt)
        only_status(got, (408,), "idle chunked body")


@case("timeout: a body with gaps shorter than --timeout-ms is not cut")
def body_steady(env):
    p = env.proxy("--timeout-ms", T)
    body = body_bytes(2000, seed=120)
    for te in (False, True):
        data = (req("POST", "/steady", [("Transfer-Encoding", "chunked")], body=lib.chunked(body, [200] * 10))
                if te else req("POST", "/steady", body=body))
        with Conn(p.port) as c:
            n = len(data) // 8 + 1
            c.send_pieces(data, [n] * 8, delay=T / 1000 / 2)     # total > 4 x the timeout
            lib.sink_saw(c.response(), body, what="te=%s" % te)


@case("timeout: upstream that never answers -> client connection closed")
def upstream_silent(env):
    def silent(up, rec, rd):
        lib.read_request(rd, time.monotonic() + 10)
        rd.to_eof(time.monotonic() + 10)
    with lib.Upstream(behaviour=lib.first_conn(silent)) as up, lib.start_proxy(up, "--timeout-ms", T) as p:
        with Conn(p.port) as c:
            c.send(req("POST", "/silent", body=b"hello"))
            dt, got = closed_at(c, time.monotonic(), T / 1000 + SLACK + 2)
            check(dt is not None and dt <= T / 1000 + SLACK, "waiting for the upstream cut after %r s" % dt)
            # 408 per the contract; 504 is the gateway's own word for the same thing
            only_status(got, (408, 504), "silent upstream")
        lib.serves_py(p, up)


@case("timeout: upstream response stalled mid-body -> client connection closed")
def upstream_stalls(env):
    def stall(up, rec, rd):
        lib.read_request(rd, time.monotonic() + 10)
        rec.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"s" * 10)
        rd.to_eof(time.monotonic() + 10)
    with lib.Upstream(behaviour=lib.first_conn(stall)) as up, lib.start_proxy(up, "--timeout-ms", T) as p:
        with Conn(p.port) as c:
            c.send(req("GET", "/stall"))
            dt, got = closed_at(c, time.monotonic(), T / 1000 + SLACK + 2)
            check(dt is not None and dt <= T / 1000 + SLACK, "stalled response cut after %r s" % dt)
            check(got.startswith(b"HTTP/1.1 200"), "response head not relayed: %r" % got[:30])
        lib.serves_py(p, up)
