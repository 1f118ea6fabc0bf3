"""Graceful exit: "SIGINT/SIGTERM: close the listening socket at once, close
idle keep-alive connections, let in-flight requests finish (at most 10 s),
exit 0."
"""

import signal
import socket
import time

import lib
from lib import Conn, case, check, eq, req, body_bytes, KiB


def refused(port):
    try:
        socket.create_connection((lib.HOST, port), timeout=1).close()
        return False
    except OSError:
        return True


def graceful(env, sig):
    s = env.sink()
    p = lib.start_proxy(s)
    try:
        idle = Conn(p.port)
        idle.send(req("POST", "/idle", body=b"1"))
        eq(idle.response().status, 200, "first request on the idle connection")
        body = body_bytes(300 * KiB, seed=140)
        busy = Conn(p.port)
        data = req("POST", "/in-flight", body=body)
        busy.send(data[:100 * KiB])
        time.sleep(0.2)
        p.signal(sig)
        t0 = time.monotonic()
        check(lib.wait_for(lambda: refused(p.port), 1.0), "listening socket still accepting after the signal")
        check(time.monotonic() - t0 < 1.0, "listening socket closed late")
        check(idle.closed(2), "idle keep-alive connection not closed")
        check(p.alive(), "exited with a request in flight")
        busy.send(data[100 * KiB:])
        lib.sink_saw(busy.response(), body, target="/in-flight", what="in-flight request")
        rc = p.wait(5)
        eq(rc, 0, "exit status")
        check(p.sanitizer_report() is None, str(p.sanitizer_report()))
    finally:
        p.kill()


@case("signal: SIGTERM closes the listener, idle connections, finishes in-flight, exits 0")
def sigterm(env):
    graceful(env, signal.SIGTERM)


@case("signal: SIGINT behaves the same")
def sigint(env):
    graceful(env, signal.SIGINT)


@case("signal: idle proxy exits 0 at once on SIGTERM")
def sigterm_idle(env):
    p = lib.start_proxy(env.sink())
    try:
        lib.serves(p, "before the signal")
        p.signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = p.wait(3)
        eq(rc, 0, "exit status")
        check(time.monotonic() - t0 < 1.5, "took %.1fs to exit" % (time.monotonic() - t0))
    finally:
        p.kill()


@case("signal: a stuck in-flight request delays the exit by at most 10 s", timeout=30)
def sigterm_stuck(env):
    p = lib.start_proxy(env.sink())
    try:
        stuck = Conn(p.port, timeout=20)
        stuck.send(req("POST", "/stuck", [("Content-Length", "1000")]) + b"x")
        time.sleep(0.2)
        p.signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = p.wait(13)
        dt = time.monotonic() - t0
        check(rc is not None, "still running 13 s after SIGTERM")
        eq(rc, 0, "exit status")
        check(dt <= 11.5, "exit took %.1fs" % dt)
        check(stuck.closed(1), "stuck connection left open")
    finally:
        p.kill()
