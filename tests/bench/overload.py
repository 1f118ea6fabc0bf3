#!/usr/bin/env python3
"""overload.py - many concurrent chunked uploads through sluice-proxy, with
and without a memory cap, same run.

N (default 512) chunked uploads of SIZE (default 2 MiB, 64 KiB chunks) start
at once from one Python client (non-blocking sockets under selectors, not N
curl processes) -> build/bin/sluice-proxy -> build/bin/sluice-sink, which
answers each request with its byte count and SHA-256. Every round runs the
uploads twice, through a proxy started with `--max-memory 0` (uncapped) and
through one started with `--max-memory CAP` (default 4 MiB), the order
alternating from round to round. Per run:

  * the proxy's peak RSS: VmHWM of a proxy started for that run (reset
    through /proc/PID/clear_refs before the first upload);
  * aggregate MiB/s: all body bytes over the wall time from the first
    connect to the last answer;
  * the proxy's CPU seconds per GiB of body (on-CPU time from schedstat);
  * completion spread: max / median of the per-upload times (connect to
    answer);
  * every upload checked: status 200, the sink's byte count and SHA-256
    equal to what was sent (uploads differ from each other: each sends one
    of several slices of a random buffer).

Ratios (capped / uncapped) are taken inside a round, then the median; the
targets are printed as PASS / MISS lines:
  capped peak RSS <= 12 MiB, capped MiB/s >= 0.9x uncapped,
  capped CPU s/GiB <= 1.1x uncapped, capped spread <= 2.0.

    python3 tests/bench/overload.py [--build build] [--quick] [--n 512]
        [--size 2M] [--cap 4194304] [--rounds 3] [--out DIR]

The open-file soft limit is raised to the hard limit (the client and the
proxy, which inherits it, each need N + a few descriptors; the sink 1 per
connection). Servers are children of this script, stopped by PID at the end.
Results: a table on stdout, "bench: overload_..." lines, OUT/overload.json.
Python 3 standard library only.
"""
import argparse
import hashlib
import json
import os
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import e2e  # noqa: E402  (/proc probes, Server)

MiB, GiB = 1 << 20, 1 << 30
CHUNK = 64 << 10
VARIANTS = 8        # distinct bodies, upload i sends variant i % VARIANTS
SEND_PIECE = 256 << 10

TARGET_RSS_MIB = 12.0
TARGET_RATE = 0.9
TARGET_CPU = 1.1
TARGET_SPREAD = 2.0


def log(msg):
    print("overload: " + msg, flush=True)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < need:
        raise SystemExit("overload: open-file limit %d < %d needed (raise ulimit -Hn)" % (soft, need))
    return soft


def make_bodies(size):
    """VARIANTS chunked encodings of different slices of one random buffer:
    (encoded body bytes, SHA-256 hex of the decoded body)."""
    base = os.urandom(size + VARIANTS * 4096)
    out = []
    for v in range(VARIANTS):
        data = memoryview(base)[v * 4096: v * 4096 + size]
        parts = []
        for off in range(0, size, CHUNK):
            piece = data[off: off + CHUNK]
            parts += [b"%x\r\n" % len(piece), piece, b"\r\n"]
        parts.append(b"0\r\n\r\n")
        out.append((b"".join(parts), hashlib.sha256(data).hexdigest()))
    return out


class Upload:
    def __init__(self, index, port, body, sha, size):
        self.index, self.port, self.sha, self.size = index, port, sha, size
        head = ("POST /overload/%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                "Content-Type: application/octet-stream\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % (index, port)).encode()
        self.out = memoryview(head + body)
        self.pos = 0
        self.resp = bytearray()
        self.sock = None
        self.t0 = self.t1 = None
        self.done = False
        self.error = None

    def response_complete(self):
        end = self.resp.find(b"\r\n\r\n")
        if end < 0:
            return False
        for line in bytes(self.resp[:end]).split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                return len(self.resp) >= end + 4 + int(v.strip())
        return False  # no length: until the close

    def check(self):
        r = {"index": self.index, "ok": False}
        if self.t1 is not None:
            r["seconds"] = self.t1 - self.t0
        if self.error:
            r["error"] = self.error
            return r
        raw = bytes(self.resp)
        head, _, body = raw.partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            r["error"] = "no status line: %r" % raw[:120]
            return r
        r["http"] = status
        try:
            j = json.loads(body.decode())
        except ValueError:
            r["error"] = "http %d, body %r" % (status, body[:120])
            return r
        r["sink_bytes"] = j.get("bytes")
        r["ok"] = status == 200 and j.get("bytes") == self.size and j.get("sha256") == self.sha
        if not r["ok"]:
            r["error"] = "http %d, sink %s bytes sha %s, sent %d bytes sha %s" % (
                status, j.get("bytes"), str(j.get("sha256"))[:16], self.size, self.sha[:16])
        return r


def run_uploads(port, n, bodies, size, timeout):
    """All n uploads at once from one selector loop; returns (results,
    wall seconds from the first connect to the last answer)."""
    sel = selectors.DefaultSelector()
    ups = []
    t_start = time.monotonic()
    for i in range(n):
        body, sha = bodies[i % len(bodies)]
        u = Upload(i, port, body, sha, size)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        u.t0 = time.monotonic()
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        u.sock = s
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, u)
        ups.append(u)
    left = n
    deadline = t_start + timeout
    while left:
        now = time.monotonic()
        if now > deadline:
            for u in ups:
                if not u.done:
                    u.error = "timed out after %.0f s (%d of %d bytes sent)" % (timeout, u.pos, len(u.out))
            break
        for key, ev in sel.select(timeout=min(1.0, deadline - now)):
            u = key.data
            s = u.sock
            fin = False
            if ev & selectors.EVENT_WRITE and u.pos < len(u.out):
                try:
                    u.pos += s.send(u.out[u.pos: u.pos + SEND_PIECE])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:  # reset: an early answer may be waiting
                    u.pos = len(u.out)
                    u.send_error = str(e)
                if u.pos >= len(u.out):
                    sel.modify(s, selectors.EVENT_READ, u)
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError as e:
                    data = b""
                    if not u.resp:
                        u.error = "recv: %s" % e
                if data:
                    u.resp += data
                    fin = u.response_complete()
                elif data is not None:
                    fin = True
                    if not u.resp and not u.error:
                        u.error = "closed without an answer (%d of %d bytes sent)" % (u.pos, len(u.out))
            if fin:
                u.t1 = time.monotonic()
                u.done = True
                sel.unregister(s)
                s.close()
                left -= 1
    wall = time.monotonic() - t_start
    for u in ups:
        if not u.done:
            try:
                sel.unregister(u.sock)
            except (KeyError, ValueError):
                pass
            u.sock.close()
    sel.close()
    return [u.check() for u in ups], wall


def one_run(args, sink_port, cap, bodies, rundir, label):
    proxy = e2e.Server(label, [args.sluice_proxy, "--listen", "127.0.0.1:0",
                               "--upstream", "127.0.0.1:%d" % sink_port,
                               "--max-memory", str(cap)] + args.sluice_args.split(), rundir)
    proxy.start()
    try:
        pid = proxy.proc.pid
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        c0 = e2e.cpu_snapshot([pid])
        results, wall = run_uploads(proxy.port, args.n, bodies, args.size, args.timeout)
        c1 = e2e.cpu_snapshot([pid])
        hwm = e2e.status_kib(pid, "VmHWM")
        alive = proxy.alive()
        tail = proxy.log_tail()
    finally:
        proxy.stop()
    ok = [r for r in results if r["ok"]]
    bad = [r for r in results if not r["ok"]]
    secs = sorted(r["seconds"] for r in results if "seconds" in r)
    body_bytes = args.n * args.size
    m = {"cap": cap, "ok": not bad and alive, "n_ok": len(ok), "n": args.n,
         "wall_s": wall, "mib_s": body_bytes / MiB / wall,
         "cpu_s": e2e.cpu_seconds(c0, c1), "hwm_mib": hwm / 1024.0,
         "median_s": statistics.median(secs) if secs else None,
         "max_s": secs[-1] if secs else None}
    m["cpu_s_per_gib"] = m["cpu_s"] / (body_bytes / GiB)
    m["spread"] = m["max_s"] / m["median_s"] if secs and m["median_s"] > 0 else None
    if bad:
        m["errors"] = [r.get("error", "?") for r in bad[:5]]
    if not alive:
        m["errors"] = m.get("errors", []) + ["proxy exited: %s" % tail]
    return m


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--quick", action="store_true", help="2 rounds instead of 3")
    ap.add_argument("--n", type=int, default=512, help="concurrent uploads (default 512)")
    ap.add_argument("--size", default="2M", help="bytes per upload (default 2M)")
    ap.add_argument("--cap", type=int, default=4 << 20, help="--max-memory of the capped run")
    ap.add_argument("--rounds", type=int, default=None, help="default 3 (--quick: 2)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    ap.add_argument("--sluice-args", default="", help="extra sluice-proxy arguments (note the '=')")
    ap.add_argument("--out", default=None, help="directory for overload.json (default BUILD/bench)")
    args = ap.parse_args()
    args.size = e2e.parse_size(args.size)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.sluice_proxy = os.path.join(args.build, "bin", "sluice-proxy")
    sink_bin = os.path.join(args.build, "bin", "sluice-sink")
    for b in (args.sluice_proxy, sink_bin):
        if not os.access(b, os.X_OK):
            log("%s not built: skipped" % b)
            return 0
    out = args.out or os.path.join(args.build, "bench")
    os.makedirs(out, exist_ok=True)
    limit = raise_nofile(2 * args.n + 64)
    log("%d concurrent chunked uploads of %.1f MiB (%d KiB chunks), uncapped vs --max-memory %d, "
        "%d rounds; open-file limit %d" % (args.n, args.size / MiB, CHUNK >> 10, args.cap, args.rounds, limit))
    bodies = make_bodies(args.size)
    rundir = tempfile.mkdtemp(prefix="sluice-overload-")
    sink = e2e.Server("sink", [sink_bin, "--listen", "127.0.0.1:0", "--timeout-ms", "120000"], rundir)
    runs = []
    try:
        sink.start()
        for r in range(args.rounds):
            order = [0, args.cap] if r % 2 == 0 else [args.cap, 0]
            pair = {}
            for cap in order:
                label = "uncapped" if cap == 0 else "capped"
                m = one_run(args, sink.port, cap, bodies, rundir, "proxy-%s-%d" % (label, r))
                m["round"], m["label"] = r, label
                pair[label] = m
                runs.append(m)
                log("round %d %-8s %s %3d/%d ok  %7.1f MiB/s  CPU %.3f s/GiB  peak RSS %5.1f MiB  "
                    "median %s s  max %s s  spread %s%s" % (
                        r, label, "ok  " if m["ok"] else "FAIL", m["n_ok"], m["n"], m["mib_s"],
                        m["cpu_s_per_gib"], m["hwm_mib"], fmt(m["median_s"], ".2f"),
                        fmt(m["max_s"], ".2f"), fmt(m["spread"], ".2f"),
                        "" if m["ok"] else "  " + "; ".join(m.get("errors", []))))
            if not sink.alive():
                log("sink exited: %s" % sink.log_tail())
                break
    finally:
        sink.stop()

    def med(label, key):
        v = [m[key] for m in runs if m["label"] == label and m[key] is not None]
        return statistics.median(v) if v else None

    def ratio(key):
        v = []
        for r in range(args.rounds):
            a = [m for m in runs if m["round"] == r and m["label"] == "capped"]
            b = [m for m in runs if m["round"] == r and m["label"] == "uncapped"]
            if a and b and a[0][key] and b[0][key]:
                v.append(a[0][key] / b[0][key])
        return statistics.median(v) if v else None

    print()
    print("%-9s %6s %10s %12s %13s %10s %8s %8s" % ("run", "ok", "MiB/s", "CPU s/GiB", "peak RSS MiB",
                                                    "median s", "max s", "spread"))
    for label in ("uncapped", "capped"):
        ok = sum(m["n_ok"] for m in runs if m["label"] == label)
        tot = sum(m["n"] for m in runs if m["label"] == label)
        print("%-9s %6s %10s %12s %13s %10s %8s %8s" % (
            label, "%d/%d" % (ok, tot), fmt(med(label, "mib_s"), ".1f"), fmt(med(label, "cpu_s_per_gib"), ".3f"),
            fmt(max(m["hwm_mib"] for m in runs if m["label"] == label), ".1f"),
            fmt(med(label, "median_s"), ".2f"), fmt(med(label, "max_s"), ".2f"), fmt(med(label, "spread"), ".2f")))
    print("(medians over %d rounds; peak RSS: the highest of the rounds; ratios taken inside a round)" % args.rounds)
    print()
    all_ok = all(m["ok"] for m in runs)
    cap_rss = max(m["hwm_mib"] for m in runs if m["label"] == "capped")
    rate, cpu, spread = ratio("mib_s"), ratio("cpu_s_per_gib"), med("capped", "spread")
    lines = [
        ("every upload 200 and byte-exact (count and SHA-256)", all_ok, "%d/%d" % (
            sum(m["n_ok"] for m in runs), sum(m["n"] for m in runs))),
        ("capped peak RSS <= %g MiB" % TARGET_RSS_MIB, cap_rss <= TARGET_RSS_MIB, "%.1f MiB" % cap_rss),
        ("capped MiB/s >= %gx uncapped" % TARGET_RATE, rate is not None and rate >= TARGET_RATE,
         "%sx" % fmt(rate, ".2f")),
        ("capped CPU s/GiB <= %gx uncapped" % TARGET_CPU, cpu is not None and cpu <= TARGET_CPU,
         "%sx" % fmt(cpu, ".2f")),
        ("capped spread (max/median) <= %g" % TARGET_SPREAD, spread is not None and spread <= TARGET_SPREAD,
         fmt(spread, ".2f")),
    ]
    for what, good, val in lines:
        print("%s  %s: %s" % ("PASS" if good else "MISS", what, val))
    for label in ("uncapped", "capped"):
        print("bench: overload_%s_mib_s %s" % (label, fmt(med(label, "mib_s"), ".1f")))
        print("bench: overload_%s_cpu_s_per_gib %s s" % (label, fmt(med(label, "cpu_s_per_gib"), ".3f")))
        print("bench: overload_%s_peak_rss %.1f MiB" % (label, max(m["hwm_mib"] for m in runs
                                                                  if m["label"] == label)))
        print("bench: overload_%s_spread %s" % (label, fmt(med(label, "spread"), ".2f")))
    with open(os.path.join(out, "overload.json"), "w") as f:
        json.dump({"n": args.n, "size": args.size, "cap": args.cap, "rounds": args.rounds, "runs": runs,
                   "ratios": {"mib_s": rate, "cpu_s_per_gib": cpu}}, f, indent=1)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
