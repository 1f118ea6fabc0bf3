#!/usr/bin/env python3
"""instructions.py - user-space instructions sluice-proxy spends per small request.

Timing small requests on a shared 2-core VM moves by 10-20% between runs;
an instruction count does not. This runs BUILD/bin/sluice-proxy under
valgrind's callgrind, counting only inside the proxy's drive() (the work a
request makes, not start-up), in front of BUILD/bin/sluice-sink, and sends
it --warm then --requests keep-alive GETs (or 1 KiB POSTs) on one
connection. It prints instructions per request (the warm-up's subtracted).
System calls are the kernel's and not counted: see docs/performance.md for
those.

    python3 tests/bench/instructions.py [--build build] [--requests 3000] [--post]

Exits 0 with a message when valgrind is missing.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from e2e import free_port, wait_port  # noqa: E402


def exchange(sock, buf, req):
    """Sends req, reads one whole response; returns the bytes left over."""
    sock.sendall(req)
    while True:
        k = buf.find(b"\r\n\r\n")
        if k >= 0:
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", buf[:k + 2])
            if not m or not buf.startswith(b"HTTP/1.1 200"):
                raise RuntimeError("unexpected answer: %r" % buf[:200])
            end = k + 4 + int(m.group(1))
            if len(buf) >= end:
                return buf[end:]
        more = sock.recv(65536)
        if not more:
            raise RuntimeError("connection closed mid-answer")
        buf += more


def count(args, n, tmp):
    """Instructions inside drive() over n requests (plus the warm-up)."""
    out = os.path.join(tmp, "cg.%d" % n)
    sport, pport = free_port(), free_port()
    sink = subprocess.Popen([os.path.join(args.build, "bin", "sluice-sink"), "--listen",
                             "127.0.0.1:%d" % sport], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    proxy = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                              "--collect-atstart=no", "--toggle-collect=drive",
                              os.path.join(args.build, "bin", "sluice-proxy"), "--listen",
                              "127.0.0.1:%d" % pport, "--upstream", "127.0.0.1:%d" % sport],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(sport, sink, 10)
        wait_port(pport, proxy, 60)
        body = b"x" * 1024
        req = (b"POST /r HTTP/1.1\r\nHost: bench\r\nContent-Length: 1024\r\n\r\n" + body if args.post
               else b"GET /r HTTP/1.1\r\nHost: bench\r\nUser-Agent: instructions.py\r\nAccept: */*\r\n\r\n")
        with socket.create_connection(("127.0.0.1", pport), timeout=30) as s:
            buf = b""
            for _ in range(n):
                buf = exchange(s, buf, req)
    finally:
        proxy.terminate()
        proxy.wait(timeout=60)
        sink.terminate()
        sink.wait(timeout=10)
    with open(out) as f:
        m = re.search(r"^summary: (\d+)", f.read(), re.M)
    if not m:
        raise RuntimeError("no callgrind summary in " + out)
    return int(m.group(1))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--warm", type=int, default=200)
    ap.add_argument("--post", action="store_true", help="1 KiB POSTs instead of GETs")
    args = ap.parse_args(argv)
    if not shutil.which("valgrind"):
        print("instructions: valgrind missing (apt-get install valgrind): skipped")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        warm = count(args, args.warm, tmp)
        full = count(args, args.warm + args.requests, tmp)
    per = (full - warm) / args.requests
    kind = "1 KiB POST" if args.post else "GET"
    print("bench: proxy_instructions_per_%s %.0f (callgrind, inside drive(), %d keep-alive requests)"
          % ("post" if args.post else "get", per, args.requests))
    print("%s through sluice-proxy to sluice-sink: %.0f user-space instructions per request" % (kind, per))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
