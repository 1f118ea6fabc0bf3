#!/usr/bin/env python3
"""latency.py - small requests through sluice-proxy while a big upload runs.

Issue 13.3's proxy figure: while one chunked upload of SIZE (default 1 GiB)
streams through build/bin/sluice-proxy into build/bin/sluice-sink, small
keep-alive GETs on the same worker (--workers 1) must not wait behind it:
p99 <= 10 ms and max <= 25 ms. This script starts the sink and the proxy on
free loopback ports, measures the GETs once with the proxy idle (the
baseline), then again while curl uploads the body (`curl -T` of a sparse
file with `Transfer-Encoding: chunked`, so no CPU goes into making bytes),
and prints p50 / p99 / max for both, the upload's MiB/s and PASS or MISS
against the targets. Exit status: 0 when the figures were taken (PASS or
MISS), 1 when the run itself failed; --strict makes MISS exit 1 too.

    flock /tmp/sluice-bench.lock python3 tests/bench/latency.py [--size-mib N]
        [--interval-ms N] [--rounds N]

Every server is a child of this script and is stopped by its PID at the
end; every socket call has a time limit. Python 3 standard library only.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.join(ROOT, "build", "bin")
P99_MS, MAX_MS = 10.0, 25.0
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from e2e import free_port, wait_port  # noqa: E402
GET = b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n"


class Client:
    """One keep-alive connection; get() returns one request's latency in ms."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self):
        t0 = time.perf_counter()
        self.sock.sendall(GET)
        while b"\r\n\r\n" not in self.buf:
            self.recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError("answer: %r" % head[:60])
        n = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                n = int(value)
        while len(self.buf) < n:
            self.recv()
        self.buf = self.buf[n:]
        return (time.perf_counter() - t0) * 1000.0

    def recv(self):
        d = self.sock.recv(65536)
        if not d:
            raise RuntimeError("proxy closed the connection")
        self.buf += d

    def close(self):
        self.sock.close()


def pct(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100.0 * (len(s) - 1))))]


def summary(xs):
    return "n=%d p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (
        len(xs), statistics.median(xs), pct(xs, 99), max(xs))


def sample(client, interval, until):
    """GETs every `interval` seconds while until() is false."""
    out = []
    while not until():
        out.append(client.get())
        time.sleep(interval)
    return out


def upload(port, path, size):
    """Starts curl on a chunked upload of the file at path."""
    return subprocess.Popen(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_upload} %{time_total}",
         "-T", path, "-H", "Transfer-Encoding: chunked", "-H", "Expect:",
         "--max-time", "600", "http://127.0.0.1:%d/upload" % port],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_round(pport, path, size, interval):
    c = Client(pport)
    for _ in range(20):  # warm up: the upstream connection, caches
        c.get()
    idle = []
    for _ in range(300):
        idle.append(c.get())
        time.sleep(interval)
    cu = upload(pport, path, size)
    time.sleep(0.2)  # the upload is under way (its head parsed, body flowing)
    busy = sample(c, interval, lambda: cu.poll() is not None)
    out, err = cu.communicate(timeout=60)
    c.close()
    f = out.split()
    if cu.returncode != 0 or len(f) != 3 or f[0] != "200" or int(float(f[1])) < size:
        raise RuntimeError("upload failed: rc %s, %r %r" % (cu.returncode, out, err.strip()))
    return idle, busy, size / (1 << 20) / float(f[2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--interval-ms", type=float, default=5.0,
                    help="pause between two small GETs (default 5)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--strict", action="store_true", help="exit 1 on MISS")
    a = ap.parse_args()
    size = a.size_mib << 20
    procs = []
    tmp = tempfile.mkdtemp(prefix="sluice-latency-")
    path = os.path.join(tmp, "body")
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: reading it costs no disk and little CPU
    try:
        sport, pport = free_port(), free_port()
        sink = subprocess.Popen([os.path.join(BIN, "sluice-sink"), "--listen",
                                 "127.0.0.1:%d" % sport], stderr=subprocess.DEVNULL)
        procs.append(sink)
        proxy = subprocess.Popen([os.path.join(BIN, "sluice-proxy"), "--listen",
                                  "127.0.0.1:%d" % pport, "--upstream", "127.0.0.1:%d" % sport,
                                  "--workers", "1"], stderr=subprocess.DEVNULL)
        procs.append(proxy)
        wait_port(sport, sink)
        wait_port(pport, proxy)
        idle, busy, rates = [], [], []
        for r in range(a.rounds):
            i, b, mibs = one_round(pport, path, size, a.interval_ms / 1000.0)
            print("round %d: upload %d MiB at %.0f MiB/s; idle: %s; during the upload: %s"
                  % (r + 1, a.size_mib, mibs, summary(i), summary(b)), flush=True)
            idle += i
            busy += b
            rates.append(mibs)
        p99, mx = pct(busy, 99), max(busy)
        ok = p99 <= P99_MS and mx <= MAX_MS
        print("idle:             %s" % summary(idle))
        print("during upload:    %s (upload median %.0f MiB/s)"
              % (summary(busy), statistics.median(rates)))
        print("target p99 <= %.0f ms: %s (%.2f); max <= %.0f ms: %s (%.2f)"
              % (P99_MS, "PASS" if p99 <= P99_MS else "MISS", p99,
                 MAX_MS, "PASS" if mx <= MAX_MS else "MISS", mx))
        print("PASS" if ok else "MISS")
        return 1 if a.strict and not ok else 0
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print("latency: %s" % e, file=sys.stderr)
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        os.unlink(path)
        os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
