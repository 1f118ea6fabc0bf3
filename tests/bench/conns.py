#!/usr/bin/env python3
"""conns.py - connection scale of sluice-proxy: what idle keep-alive
connections cost, in CPU per request of the busy ones and in memory.

  CPU   BUSY (16) keep-alive connections send small GETs through the proxy
        to sluice-sink for SECONDS, once with no other connection open and
        once with IDLE (8,000) idle keep-alive connections sitting in the
        proxy between requests. Proxy CPU (utime+stime from /proc/PID/stat)
        over the run divided by the requests answered; target: the ratio
        idle/none within 1.2. ROUNDS (3) alternating rounds, the lowest of
        each (other work on the machine only ever adds).
  RSS   A fresh proxy: VmRSS at the start (after one warm-up request); with
        MEM_IDLE (10,000) idle keep-alive connections open, right after the
        last one was answered and after 2 s (target <= 64 MiB in total, the
        larger of the two); and two seconds after they all closed (target:
        within 2 MiB of the start).

Prints one line per figure and a PASS/MISS line per target. Started by
tests/bench/e2e.sh (`make bench`), or alone:
    python3 tests/bench/conns.py [--build build] [--idle 8000] [--mem-idle 10000]
Needs BUILD/bench/conns (e2e.sh compiles tests/bench/conns.c) and a hard
RLIMIT_NOFILE above MEM_IDLE + 100.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
CPU_RATIO_TARGET = 1.2
RSS_TARGET_MIB = 64.0
RSS_RETURN_MIB = 2.0


def log(msg):
    print("conns: " + msg, flush=True)


def cpu_s(pid):
    """(user, system) CPU seconds of pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # utime, stime


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1))


def nofile_cmd(n, argv):
    """argv under `ulimit -n n` (raising the soft limit up to the hard one)."""
    return ["bash", "-c", 'ulimit -n %d && exec "$@"' % n, "sh"] + argv


class Proc:
    def __init__(self, argv, stdin=False):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, text=True)

    def line(self):
        ln = self.p.stdout.readline()
        if not ln:
            raise RuntimeError("%s exited: %s" % (self.p.args, self.p.poll()))
        return ln.strip()

    def tell(self):
        self.p.stdin.write("\n")
        self.p.stdin.flush()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def server(argv, nofile):
    s = Proc(nofile_cmd(nofile, argv))
    m = re.fullmatch(r"listening on [0-9.]+:(\d+)", s.line())
    s.port = int(m.group(1))
    return s


def load(a, port, idle, busy, seconds, nofile):
    """Runs BUILD/bench/conns; returns it after the idle connections are open."""
    c = Proc(nofile_cmd(nofile, [a.conns, str(port), str(idle), str(busy), str(seconds)]), stdin=True)
    got = c.line()
    if got != "idle %d" % idle:
        raise RuntimeError("load: %r" % got)
    return c


def cpu_run(a, proxy, idle):
    c = load(a, proxy.port, idle, a.busy, a.seconds, idle + a.busy + 100)
    t0 = cpu_s(proxy.p.pid)
    c.tell()
    n = int(c.line().split()[1])
    t1 = cpu_s(proxy.p.pid)
    c.tell()
    c.line()
    c.tell()
    c.stop()
    user, system = t1[0] - t0[0], t1[1] - t0[1]
    us = (user + system) / max(n, 1) * 1e6
    log("cpu: %5d idle connections: %7d requests in %g s, proxy %.2f s CPU (user %.2f, system %.2f), "
        "%.1f us/request" % (idle, n, a.seconds, user + system, user, system, us))
    return us


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--idle", type=int, default=8000, help="idle connections in the CPU run (8000)")
    ap.add_argument("--busy", type=int, default=16, help="busy connections (16)")
    ap.add_argument("--seconds", type=float, default=4, help="length of each CPU run (4)")
    ap.add_argument("--rounds", type=int, default=3, help="CPU rounds (3)")
    ap.add_argument("--mem-idle", type=int, default=10000, help="idle connections in the RSS run (10000)")
    a = ap.parse_args(argv)
    a.conns = os.path.join(a.build, "bench", "conns")
    proxy_bin = os.path.join(a.build, "bin", "sluice-proxy")
    sink_bin = os.path.join(a.build, "bin", "sluice-sink")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # the proxy keeps 1/8 of its descriptors for upstream sockets
    need = max(a.idle, a.mem_idle) * 5 // 4 + a.busy + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        log("hard RLIMIT_NOFILE %d < %d: skipped" % (hard, need))
        return 0
    sink = server([sink_bin, "--listen", "127.0.0.1:0"], 1024)
    results = []
    procs = [sink]
    try:
        up = "127.0.0.1:%d" % sink.port
        proxy = server([proxy_bin, "--listen", "127.0.0.1:0", "--upstream", up], need)
        procs.append(proxy)
        none, idle = [], []
        for _ in range(a.rounds):
            none.append(cpu_run(a, proxy, 0))
            idle.append(cpu_run(a, proxy, a.idle))
        ratio = min(idle) / min(none)
        results.append(("cpu per request, %d idle vs none" % a.idle, "%.2fx" % ratio,
                        ratio <= CPU_RATIO_TARGET, "<= %.1fx" % CPU_RATIO_TARGET))
        proxy.stop()

        proxy = server([proxy_bin, "--listen", "127.0.0.1:0", "--upstream", up], need)
        procs.append(proxy)
        pid = proxy.p.pid
        c = load(a, proxy.port, 1, 0, 0, 200)  # warm-up: one request
        c.tell(), c.line(), c.tell(), c.line(), c.tell(), c.stop()
        start = rss_kib(pid)
        c = load(a, proxy.port, a.mem_idle, 0, 0, need)
        held_now = rss_kib(pid)
        time.sleep(2)
        held_later = rss_kib(pid)
        held = max(held_now, held_later)
        c.tell(), c.line(), c.tell(), c.line()
        time.sleep(2)
        after = rss_kib(pid)
        c.tell(), c.stop()
        log("rss: start %.1f MiB; %d idle connections: %.1f MiB (%.0f bytes each), 2 s later "
            "%.1f MiB (%.0f bytes each); 2 s after they closed %.1f MiB"
            % (start / 1024, a.mem_idle, held_now / 1024, (held_now - start) * 1024 / a.mem_idle,
               held_later / 1024, (held_later - start) * 1024 / a.mem_idle, after / 1024))
        results.append(("rss with %d idle connections" % a.mem_idle, "%.1f MiB" % (held / 1024),
                        held / 1024 <= RSS_TARGET_MIB, "<= %g MiB" % RSS_TARGET_MIB))
        results.append(("rss 2 s after they closed, over the start", "%+.1f MiB" % ((after - start) / 1024),
                        (after - start) / 1024 <= RSS_RETURN_MIB, "<= %g MiB" % RSS_RETURN_MIB))
    finally:
        for p in procs:
            p.stop()
    for what, val, ok, target in results:
        log("%s %s: %s (target %s)" % ("PASS" if ok else "MISS", what, val, target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
