"""Upstream connection reuse (docs/proxy.md, "Upstream connections").

Contract: an upstream connection goes back to the worker's pool only when
its response ended by its own framing, both heads were HTTP/1.1 without
`Connection: close`, the request went whole and nothing is left over; a
pooled connection that turns out closed before any byte of the response is
replayed once on a new connection when the request has no body or none of
it was taken yet, else 502; responses never mix between clients;
--upstream-keepalive N (0: off) and --upstream-idle-ms MS.
"""

import hashlib
import random
import select
import socket
import threading
import time

import lib
from lib import Conn, case, check, eq, req, chunked, KiB


def id_response(m):
    """Echoes the request's X-Id and a digest of its body, so a response that
    reaches the wrong client is seen."""
    rid = (m.hdr("x-id") or "-").encode()
    body = rid + b":" + hashlib.sha256(m.body).hexdigest().encode()
    if m.method == "HEAD":
        return b"HTTP/1.1 200 OK\r\nX-Id: %s\r\nContent-Length: %d\r\n\r\n" % (rid, len(body))
    return b"HTTP/1.1 200 OK\r\nX-Id: %s\r\nContent-Length: %d\r\n\r\n%s" % (rid, len(body), body)


def expected_body(rid, body):
    return rid.encode() + b":" + hashlib.sha256(body).hexdigest().encode()


def get(c, rid, target="/r"):
    c.send(req("GET", target, ["X-Id: %s" % rid]))
    return c.response()


def proxy(up, *args):
    return lib.start_proxy(up, *args)


# -- reuse happens, and only where it may ---------------------------------------------

@case("reuse: keep-alive requests of one and of many clients share one upstream connection")
def shared_connection(env):
    with lib.Upstream(respond=id_response) as up, proxy(up) as p:
        with Conn(p.port) as c:
            for i in range(10):
                r = get(c, "a%d" % i)
                eq((r.status, r.body), (200, expected_body("a%d" % i, b"")), "request %d" % i)
        for i in range(10):
            with Conn(p.port) as c:
                body = lib.body_bytes(100 + i, seed=i)
                c.send(req("POST", "/p", ["X-Id: b%d" % i], body))
                r = c.response()
                eq((r.status, r.body), (200, expected_body("b%d" % i, body)), "client %d" % i)
        eq(len(up.conns), 1, "upstream connections for 20 requests")
        eq(up.total_requests(), 20, "requests upstream")


@case("reuse: --upstream-keepalive 0 opens one upstream connection per request")
def keepalive_off(env):
    with lib.Upstream(respond=id_response) as up, proxy(up, "--upstream-keepalive", "0") as p:
        with Conn(p.port) as c:
            for i in range(5):
                eq(get(c, "k%d" % i).status, 200, "request %d" % i)
        lib.wait_for(lambda: all(x.eof for x in up.conns), 3)
        eq(len(up.conns), 5, "upstream connections")
        check(all(x.eof for x in up.conns), "every upstream connection closed by the proxy")


def respond_with(answers):
    """An upstream answering the n-th request of each connection with
    answers[n % len(answers)](request); None closes without answering."""
    def b(up, rec, rd):
        n = 0
        while True:
            try:
                m = lib.read_request(rd, time.monotonic() + 30)
            except Exception:
                return
            rec.requests.append(m)
            a = answers[min(n, len(answers) - 1)](m)
            n += 1
            if a is None:
                return
            rec.sock.sendall(a)
    return b


@case("reuse: a connection is not pooled after Connection: close, HTTP/1.0 or a read-until-close body")
def not_pooled(env):
    heads = [
        ("Connection: close", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
        ("HTTP/1.0", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("HTTP/1.0 keep-alive", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
        ("read until close", b"HTTP/1.1 200 OK\r\n\r\nok"),
        ("left-over byte", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokX"),
    ]
    for what, first in heads:
        # the upstream keeps the connection open after `first`: the proxy must close it
        def b(up, rec, rd, first=first, what=what):
            if len(up.conns) > 1:
                return lib.Upstream.serve(up, rec, rd)
            m = lib.read_request(rd, time.monotonic() + 10)
            rec.requests.append(m)
            rec.sock.sendall(first)
            if what == "read until close":
                rec.sock.shutdown(socket.SHUT_WR)
            lib.Upstream.serve(up, rec, rd)
        with lib.Upstream(behaviour=b, respond=id_response) as up, proxy(up) as p:
            with Conn(p.port) as c:
                c.send(req("GET", "/1"))
                r = c.response()
                eq((r.status, r.body), (200, b"ok"), "%s: first response" % what)
                if r.hdr("connection") == "close":
                    c.close()
                    c = Conn(p.port)
                r2 = get(c, "second")
                eq((r2.status, r2.body), (200, expected_body("second", b"")), "%s: second" % what)
                c.close()
            eq(len(up.conns), 2, "%s: upstream connections" % what)
            eq(len(up.conns[0].requests), 1, "%s: requests on the first connection" % what)
            check(up.wait_closed(up.conns[0], 3), "%s: first upstream connection not closed" % what)


@case("reuse: 1xx, HEAD, 204 and 304 responses leave the connection reusable")
def bodiless(env):
    answers = [
        lambda m: b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                  b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none",
        lambda m: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",          # HEAD
        lambda m: b"HTTP/1.1 204 No Content\r\n\r\n",
        lambda m: b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"e\"\r\n\r\n",
        lambda m: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\nT: 1\r\n\r\n",
        id_response,
    ]
    with lib.Upstream(behaviour=respond_with(answers)) as up, proxy(up) as p:
        with Conn(p.port) as c:
            c.send(req("GET", "/1"))
            r = c.response()
            eq((r.status, r.body, [i.status for i in r.interim]), (200, b"one", [103]), "after 103")
            c.send(req("HEAD", "/2"))
            r = c.response("HEAD")
            eq((r.status, r.hdr("content-length")), (200, "100"), "HEAD")
            c.send(req("GET", "/3"))
            eq(c.response().status, 204, "204")
            c.send(req("GET", "/4"))
            r = c.response()
            eq((r.status, r.hdr("etag")), (304, '"e"'), "304")
            c.send(req("GET", "/5"))
            eq(c.response().body, b"two", "chunked with trailers")
            eq(get(c, "last").body, expected_body("last", b""), "last response")
        eq(len(up.conns), 1, "upstream connections for 6 exchanges")
        eq(len(up.conns[0].requests), 6, "requests on it")


# -- stale connections and replays ----------------------------------------------------

@case("reuse: a pooled connection the upstream closed while idle is not used")
def stale_idle(env):
    def b(up, rec, rd):
        m = lib.read_request(rd, time.monotonic() + 10)
        rec.requests.append(m)
        rec.sock.sendall(id_response(m))
        time.sleep(0.1)  # then an idle timeout of its own
    with lib.Upstream(behaviour=b) as up, proxy(up) as p:
        with Conn(p.port) as c:
            for i in range(4):
                body = b"x" * (i * 1000)
                c.send(req("POST" if body else "GET", "/s", ["X-Id: s%d" % i], body))
                r = c.response()
                eq((r.status, r.body), (200, expected_body("s%d" % i, body)), "request %d" % i)
                time.sleep(0.3)
        eq(len(up.conns), 4, "upstream connections")


def close_on_second(up, rec, rd):
    """Serves the first request of a connection; reads the second and closes
    without a byte of answer (its keep-alive timeout struck just then)."""
    n = 0
    while True:
        try:
            m = lib.read_request(rd, time.monotonic() + 10)
        except Exception:
            return
        rec.requests.append(m)
        n += 1
        if n == 2:
            return
        rec.sock.sendall(id_response(m))


@case("reuse: a request without a body is replayed once on a new connection")
def replay_get(env):
    with lib.Upstream(behaviour=close_on_second) as up, proxy(up) as p:
        with Conn(p.port) as c:
            eq(get(c, "r1").body, expected_body("r1", b""), "first")
            r = get(c, "r2")
            eq((r.status, r.body), (200, expected_body("r2", b"")), "replayed request")
            eq(len(up.conns), 2, "upstream connections")
            eq(up.conns[1].requests[0].raw_head, up.conns[0].requests[1].raw_head,
               "the replay sends the same head")
            # the new connection is pooled in turn: its second request fails
            # too, is replayed on a third
            r = get(c, "r3")
            eq((r.status, r.body), (200, expected_body("r3", b"")), "third request")
            eq(len(up.conns), 3, "upstream connections after the third")


@case("reuse: a replay happens once; a second failure is 502")
def replay_once(env):
    def b(up, rec, rd):
        if len(up.conns) == 1:
            return close_on_second(up, rec, rd)
        m = lib.read_request(rd, time.monotonic() + 10)
        rec.requests.append(m)   # the replay's connection fails too
    with lib.Upstream(behaviour=b) as up, proxy(up) as p:
        with Conn(p.port) as c:
            eq(get(c, "o1").status, 200, "first")
            eq(get(c, "o2").status, 502, "second, failing on both connections")
        eq(len(up.conns), 2, "upstream connections")


@case("reuse: a request whose body was sent is not replayed (502)")
def no_replay_body(env):
    for args in ((), ("--no-splice",)):
        with lib.Upstream(behaviour=close_on_second) as up, proxy(up, *args) as p:
            with Conn(p.port) as c:
                eq(get(c, "n1").status, 200, "first %s" % (args,))
                c.send(req("POST", "/n", ["X-Id: n2"], b"y" * 5000))
                eq(c.response().status, 502, "POST on a failing pooled connection %s" % (args,))
            eq(len(up.conns), 1, "upstream connections %s" % (args,))


@case("reuse: an empty body counts as none: a POST with Content-Length: 0 is replayed")
def replay_empty_body(env):
    with lib.Upstream(behaviour=close_on_second) as up, proxy(up) as p:
        with Conn(p.port) as c:
            eq(get(c, "e1").status, 200, "first")
            c.send(req("POST", "/e", ["X-Id: e2", "Content-Length: 0"]))
            r = c.response()
            eq((r.status, r.body), (200, expected_body("e2", b"")), "replayed POST")
        eq(len(up.conns), 2, "upstream connections")


@case("reuse: idle connections are closed after --upstream-idle-ms")
def idle_expiry(env):
    with lib.Upstream(respond=id_response) as up, proxy(up, "--upstream-idle-ms", "200") as p:
        with Conn(p.port) as c:
            eq(get(c, "i1").status, 200, "first")
            eq(get(c, "i2").status, 200, "second, at once")
            time.sleep(0.5)
            eq(get(c, "i3").status, 200, "third, after the idle limit")
        eq(len(up.conns), 2, "upstream connections")
        eq(len(up.conns[0].requests), 2, "requests on the first")
        check(up.wait_closed(up.conns[0], 3), "the expired connection is closed")


# -- many clients, a hostile upstream ---------------------------------------------------

def flaky(seed, after_n):
    """Serves keep-alive requests with id_response; closes after after_n
    requests, and between requests at random moments (0-40 ms idle)."""
    rnd = random.Random(seed)
    lock = threading.Lock()

    def b(up, rec, rd):
        served = 0
        while served < after_n:
            if not rd.buf:
                # a keep-alive timeout: between requests, never before the
                # first (a new connection gets its request however slow the
                # proxy is, e.g. under the sanitizers)
                with lock:
                    wait = rnd.random() * 0.04 if served and rnd.random() < 0.3 else 5.0
                r, _, _ = select.select([rec.sock], [], [], wait)
                if not r:
                    return      # an idle close
            try:
                m = lib.read_request(rd, time.monotonic() + 10)
            except Exception:
                return
            rec.requests.append(m)
            rec.sock.sendall(id_response(m))
            served += 1
    return b


def client(port, cid, n, seed, out):
    rnd = random.Random(seed)
    c = Conn(port)
    try:
        for i in range(n):
            rid = "c%d-%d" % (cid, i)
            kind = rnd.choice(["GET", "GET", "HEAD", "POST", "CHUNKED"])
            body = b""
            if kind == "GET" or kind == "HEAD":
                c.send(req(kind, "/x", ["X-Id: " + rid]))
            else:
                body = lib.body_bytes(rnd.choice([0, 10, 1500, 40 * KiB]), seed=i + 1000 * cid)
                if kind == "POST":
                    c.send(req("POST", "/x", ["X-Id: " + rid], body))
                else:
                    c.send(req("POST", "/x", ["X-Id: " + rid, "Transfer-Encoding: chunked"],
                               chunked(body, [700, 3000])))
            r = c.response("HEAD" if kind == "HEAD" else "GET")
            want = expected_body(rid, body)
            if r.status == 502 and (body or kind == "CHUNKED"):
                out["502"] += 1     # a body already sent when the connection failed
                c.close()
                c = Conn(port)
                continue
            eq(r.status, 200, "%s %s" % (kind, rid))
            eq(r.hdr("x-id"), rid, "X-Id of %s" % rid)
            if kind != "HEAD":
                eq(r.body, want, "body of %s" % rid)
            out["ok"] += 1
    finally:
        c.close()


@case("reuse: 16 keep-alive clients, pools of 1, 2 and 64, an upstream closing at random", timeout=120)
def many_clients(env):
    for size in (1, 2, 64):
        with lib.Upstream(behaviour=flaky(size, after_n=7)) as up, \
                proxy(up, "--upstream-keepalive", str(size)) as p:
            out = {"ok": 0, "502": 0}
            errors = []

            def run(cid):
                try:
                    client(p.port, cid, 40, seed=cid * 7 + size, out=out)
                except Exception as e:     # noqa: BLE001 (reported below)
                    errors.append("client %d: %s" % (cid, e))
            ts = [threading.Thread(target=run, args=(i,)) for i in range(16)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(100)
            check(not errors, "pool %d: %s" % (size, "; ".join(errors[:3])))
            eq(out["ok"] + out["502"], 16 * 40, "pool %d: responses" % size)
            # a 502 needs the upstream to close in the instant a body was
            # sent: with 64 pooled connections, 6-16 of the ~250 body requests
            # on a quiet machine (the same before and after 2026-12-06's
            # changes), 18 once under CI load; 5% of the 640 is the bound
            check(out["502"] <= 32, "pool %d: %d requests with a body lost to races" % (size, out["502"]))
            reqs = up.total_requests()
            check(len(up.conns) < reqs, "pool %d: %d connections for %d requests: no reuse"
                  % (size, len(up.conns), reqs))
