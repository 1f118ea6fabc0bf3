"""Start-up contract of both programs: the `listening on HOST:PORT` line,
--help, and --workers N."""

import socket
import subprocess
import time

import lib
from lib import case, check, eq


@case("sink: 'listening on HOST:PORT' with the real port for port 0")
def sink_listening(env):
    with lib.start_sink() as s:
        check(s.host == lib.HOST, "host %r" % s.host)
        check(s.port != 0, "port 0 printed")
        socket.create_connection((s.host, s.port), timeout=3).close()


@case("proxy: 'listening on HOST:PORT' with the real port for port 0")
def proxy_listening(env):
    with lib.start_proxy(env.sink()) as p:
        check(p.host == lib.HOST and p.port != 0, "line %r" % p.first_line)
        socket.create_connection((p.host, p.port), timeout=3).close()


@case("proxy: exactly one line on stdout")
def proxy_one_line(env):
    p = lib.start_proxy(env.sink())
    try:
        r, c = lib.exchange(p.port, lib.req("POST", "/one-line", body=b"x" * 10))
        c.close()
        eq(r.status, 200, "status")
    finally:
        prob = p.stop()
    rest = p.rest_of_stdout()
    eq(rest, "", "stdout after the listening line")
    check(prob is None, str(prob))


@case("proxy: --help exits 0 and prints usage")
def proxy_help(env):
    r = subprocess.run([lib.PROXY_BIN, "--help"], capture_output=True, timeout=5)
    eq(r.returncode, 0, "exit code")
    out = (r.stdout + r.stderr).decode("latin-1")
    for opt in ("--listen", "--upstream"):
        check(opt in out, "--help does not mention %s" % opt)


@case("sink: --help exits 0 and prints usage")
def sink_help(env):
    r = subprocess.run([lib.SINK_BIN, "--help"], capture_output=True, timeout=5)
    eq(r.returncode, 0, "exit code")
    out = (r.stdout + r.stderr).decode("latin-1")
    check("--listen" in out and "--store" in out, "usage lacks --listen/--store: %r" % out[:300])


@case("proxy: --workers 2 serves on one port and exits 0 on SIGTERM")
def proxy_workers(env):
    with lib.start_proxy(env.sink(), "--workers", 2) as p:
        for i in range(20):
            body = lib.body_bytes(1000 + i, seed=i)
            r, c = lib.exchange(p.port, lib.req("POST", "/w/%d" % i, body=body))
            c.close()
            eq(r.status, 200, "status of request %d" % i)
            eq(r.json().get("sha256"), lib.sha256(body), "sink sha256 of request %d" % i)
        time.sleep(0.05)
