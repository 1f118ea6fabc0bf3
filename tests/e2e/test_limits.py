"""Connection scale: the descriptor limit and idle keep-alive memory.

Contract (docs/proxy.md, "Many connections"): at the descriptor limit the
proxy stops accepting (one log line) instead of spinning on EMFILE, keeps
serving the connections it has, and accepts again when one closes, so the
clients waiting in the listen backlog are answered. An idle keep-alive
connection holds no pool block and a few hundred bytes of state, and the
memory of a burst of connections goes back to the system after they close.
"""

import os
import resource
import socket
import time

import lib
from lib import case, check, eq, KiB, MiB

REQ = b"GET /limits HTTP/1.1\r\nHost: sluice.test\r\n\r\n"
REQ_CLOSE = b"GET /limits HTTP/1.1\r\nHost: sluice.test\r\nConnection: close\r\n\r\n"


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def under_nofile(n, argv):
    return ["bash", "-c", 'ulimit -n %d && exec "$@"' % n, "sh"] + [str(a) for a in argv]


def proxy_nofile(n, upstream, *args):
    return lib.Server(under_nofile(n, [lib.PROXY_BIN, "--listen", lib.HOST + ":0", "--upstream",
                                       upstream.addr, "--max-body-bytes", lib.BIG_BODY_LIMIT] + list(args)),
                      "proxy")


def raise_own_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= n


def answer(sock, timeout=10.0):
    rd = lib.Reader(sock)
    return lib.read_response(rd, "GET", time.monotonic() + timeout)


@case("limits: ulimit -n 64 and 100 clients: no EMFILE spin, one log line, backlog served later", timeout=60)
def fd_limit(env):
    sink = env.sink()
    with proxy_nofile(64, sink) as p:
        socks = []
        try:
            for _ in range(100):
                s = socket.create_connection((p.host, p.port), timeout=10)
                socks.append(s)
            time.sleep(0.5)  # the proxy has accepted what it can
            t0 = cpu_s(p.pid)
            time.sleep(1.0)
            used = cpu_s(p.pid) - t0
            check(used < 0.2, "proxy used %.2f s CPU in 1 s while at the descriptor limit" % used)
            check(p.alive(), "proxy died at the descriptor limit")
            lines = [ln for ln in p.log_lines() if "descriptor limit" in ln or "file descriptors" in ln]
            eq(len(lines), 1, "log lines about the descriptor limit (%r)" % lines)
            # the first ones were accepted; close 30 of them, then every
            # other client asks in turn and closes: all must be answered
            for s in socks[:30]:
                s.close()
            for i, s in enumerate(socks[30:], 30):
                s.sendall(REQ_CLOSE)
                r = answer(s)
                eq(r.status, 200, "client #%d (of 100) status" % i)
                s.close()
            socks = []
            lib.serves(p, "after the descriptor limit")
        finally:
            for s in socks:
                s.close()


@case("limits: 2,000 idle keep-alive connections cost little and their memory goes back", timeout=90)
def idle_memory(env):
    n = 2000
    if not raise_own_nofile(n + 200):
        return  # the runner cannot hold that many sockets here
    sink = env.sink()
    # the proxy keeps 1/8 of its descriptors for upstream sockets
    with proxy_nofile(n * 5 // 4 + 200, sink) as p:
        lib.serves(p, "(warm-up)")
        time.sleep(0.2)
        start = rss_kib(p.pid)
        socks = []
        try:
            for i in range(n):
                s = socket.create_connection((p.host, p.port), timeout=10)
                socks.append(s)
                s.sendall(REQ)
                eq(answer(s).status, 200, "idle connection #%d status" % i)
            held = rss_kib(p.pid)
            # the last one is still usable: these are live keep-alive connections
            socks[-1].sendall(REQ)
            eq(answer(socks[-1]).status, 200, "a kept-alive connection, again")
        finally:
            for s in socks:
                s.close()
        per = (held - start) * KiB / n
        time.sleep(2.5)  # the trim comes a second after the burst
        after = rss_kib(p.pid)
        if not lib.SAN:
            check(per < 3 * KiB, "%.0f bytes of RSS per idle keep-alive connection (start %d KiB, "
                  "with %d idle %d KiB)" % (per, start, n, held))
            check(after - start <= 2 * KiB,
                  "RSS %d KiB 2.5 s after %d connections closed, %d KiB at the start" % (after, n, start))
        lib.serves(p, "after the idle connections closed")
