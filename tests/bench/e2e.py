#!/usr/bin/env python3
"""e2e.py - end-to-end upload benchmark: curl -> proxy -> sink, on loopback.

Measures what it costs to stream a request body through sluice-proxy, beside
no proxy at all (direct), bare TCP relays (read/write through 1 MiB and 64 KiB
buffers, splice) and nginx (request buffering off; default and 1 MiB buffers).
For every upload: MiB/s (body bytes over curl's total time), the proxy's peak
RSS (VmHWM after resetting it through /proc/PID/clear_refs, so exact, not
sampled), its CPU seconds per GiB (on-CPU time from schedstat) and a check
that the sink received exactly the bytes sent. Rounds go through all
configurations in a rotating order so machine noise hits them alike; ratios
(to direct, to nginx-1m) are taken inside one round, then the median.

Phases: single uploads (--sizes), concurrent uploads (--conc), a slow
upstream reading 2 MiB/s (--slow-seconds), and the streaming-vs-buffering
replica on word-list text (--words-mb). Results: a table on stdout,
OUT/results.json, OUT/report.svg, OUT/report.md. Every server is a child of
this script, stopped by its PID at the end (also on error or Ctrl-C, and by
the kernel if this script dies); every client call has a time limit and the
whole run a deadline (--max-minutes). Python 3 standard library only.
"""
import argparse
import ctypes
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import report  # noqa: E402  (tables, targets, SVG)

MiB, GiB = 1 << 20, 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")
SLOW_RATE = 2 * MiB

# name: (kind, body modes, description). Order = order in the tables.
CONFIGS = {
    "direct": (None, ("cl", "chunked", "multipart"), "no proxy: curl talks to the sink"),
    "relay-copy-1m": ("relay", ("cl", "chunked", "multipart"),
                      "bare TCP relay, read()/write() through a 1 MiB buffer"),
    "relay-copy-64k": ("relay", ("cl",), "bare TCP relay, read()/write() through a 64 KiB buffer"),
    "relay-splice": ("relay", ("cl",), "bare TCP relay, splice(2) through a 1 MiB pipe"),
    "nginx": ("nginx", ("cl",), "nginx, proxy_request_buffering off, default body buffer"),
    "nginx-1m": ("nginx", ("cl", "chunked", "multipart"),
                 "nginx, proxy_request_buffering off, client_body_buffer_size 1m"),
    "sluice-stream": ("sluice", ("cl", "chunked"), "sluice-proxy passthrough"),
    "sluice-extract": ("sluice", ("multipart",), "sluice-proxy --extract file (file part as chunked PUT)"),
    "sluice-buffer": ("sluice", ("cl",), "sluice-proxy --mode buffer (whole body in memory first)"),
}
CONC_CONFIGS = ("direct", "relay-copy-1m", "relay-splice", "nginx", "nginx-1m", "sluice-stream")
SLOW_CONFIGS = (("relay-copy-1m", "cl"), ("nginx-1m", "cl"), ("sluice-stream", "cl"),
                ("sluice-extract", "multipart"))
WORDS_CONFIGS = ("direct", "nginx-1m", "sluice-extract", "sluice-buffer")
SLUICE_ARGS = {"sluice-stream": [], "sluice-extract": ["--extract", "file"],
               "sluice-buffer": ["--mode", "buffer"]}
# Slow upstream: peak RSS may grow by at most this much over the RSS before
# the upload (a streaming window is a few blocks; the backlog is 16 MiB).
FLAT_MIB = 2.0


def log(msg):
    print("e2e: " + msg, flush=True)


# ---------------------------------------------------------------- /proc ---

def read_text(path):
    with open(path) as f:
        return f.read()


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = read_text("/proc/%s/stat" % d)
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError):
                pass
    return out


def status_kib(pid, key):
    for line in read_text("/proc/%d/status" % pid).splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_snapshot(pids):
    """{pid: (ns on CPU of the live threads, utime+stime ticks of all)}."""
    snap = {}
    for pid in pids:
        ns = 0
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                ns += int(read_text("/proc/%d/task/%s/schedstat" % (pid, tid)).split()[0])
            except OSError:
                pass
        stat = read_text("/proc/%d/stat" % pid)
        f = stat[stat.rindex(")") + 2:].split()
        snap[pid] = (ns, int(f[11]) + int(f[12]))
    return snap


def cpu_seconds(before, after):
    """schedstat is exact but forgets threads that exited meanwhile; the
    tick counters keep them at 10 ms resolution. Take the ticks only when
    they show clearly more, i.e. when threads came and went."""
    total = 0.0
    for pid, (ns0, t0) in before.items():
        ns1, t1 = after.get(pid, (ns0, t0))
        exact, coarse = (ns1 - ns0) / 1e9, (t1 - t0) / CLK_TCK
        total += coarse if coarse > exact + 2.0 / CLK_TCK else exact
    return total


# -------------------------------------------------------------- servers ---

def die_with_parent():
    """Runs in the child before exec: SIGTERM it when this script dies."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, limit=5.0):
    """Returns once 127.0.0.1:port accepts; raises if proc exits first or
    limit seconds pass."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (proc.args[0], proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d not listening after %.0fs" % (port, limit))


class Server:
    """A program started by this script. port None: it prints
    "listening on HOST:PORT"; otherwise it listens on the given port."""

    def __init__(self, name, cmd, logdir, port=None, measure_children_only=False):
        self.name, self.cmd, self.port = name, cmd, port
        self.logpath = os.path.join(logdir, name + ".log")
        self.children_only = measure_children_only  # nginx: the worker, not the master
        self.proc = None

    def start(self, timeout=15):
        with open(self.logpath, "w") as logf:
            self.proc = subprocess.Popen(self.cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        wait_line = self.port is None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("exited with %s: %s" % (self.proc.returncode, self.log_tail()))
            if wait_line:
                for line in open(self.logpath, errors="replace"):
                    if line.startswith("listening on "):
                        self.port = int(line.split()[2].rsplit(":", 1)[1])
                        wait_line = False
            if not wait_line and self.connects() and (not self.children_only or children(self.proc.pid)):
                return
            time.sleep(0.05)
        raise RuntimeError("not ready after %d s: %s" % (timeout, self.log_tail()))

    def connects(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        if not self.alive():
            return []
        kids = children(self.proc.pid)
        return kids if self.children_only else [self.proc.pid] + kids

    def log_tail(self, n=400):
        try:
            return read_text(self.logpath)[-n:].strip().replace("\n", " | ")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


class Servers:
    """The sink(s) and every proxy configuration, started and stopped here."""

    def __init__(self, args, rundir):
        self.args, self.rundir = args, rundir
        self.running = {}   # name -> Server
        self.status = {}    # name -> "ok" / why it does not run

    def start(self, name, cmd, **kw):
        srv = Server(name, cmd, self.rundir, **kw)
        try:
            srv.start()
        except (RuntimeError, OSError) as e:
            srv.stop()
            self.status[name] = "failed to start: %s (log: %s)" % (e, srv.logpath)
            log("FAILED TO START %s: %s" % (name, e))
            return None
        self.running[name] = srv
        self.status[name] = "ok"
        return srv

    def start_proxy(self, config, upstream_port, name=None):
        """Starts CONFIGS[config] forwarding to 127.0.0.1:upstream_port."""
        name = name or config
        kind = CONFIGS[config][0]
        up = "127.0.0.1:%d" % upstream_port
        a = self.args
        if kind == "relay":
            mode = "splice" if config == "relay-splice" else "copy"
            size = 64 << 10 if config == "relay-copy-64k" else MiB
            return self.start(name, [a.relay, "-u", up, "-m", mode, "-b", str(size)])
        if kind == "nginx":
            if not a.nginx:
                self.status[name] = "not installed"
                return None
            d = os.path.join(self.rundir, name)
            os.makedirs(d, exist_ok=True)
            port = free_port()
            conf = os.path.join(d, "nginx.conf")
            text = read_text(os.path.join(HERE, "nginx.conf.in"))
            for k, v in {"DIR": d, "PORT": str(port), "UPSTREAM": up,
                         "USER": "user root root;" if os.geteuid() == 0 else "",
                         "BODY_BUFFER": "client_body_buffer_size 1m;" if config == "nginx-1m" else ""}.items():
                text = text.replace("@%s@" % k, v)
            with open(conf, "w") as f:
                f.write(text)
            return self.start(name, [a.nginx, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
                              port=port, measure_children_only=True)
        if kind == "sluice":
            if not a.sluice_proxy:
                self.status[name] = "not built"
                return None
            return self.start(name, [a.sluice_proxy, "--listen", "127.0.0.1:0", "--upstream", up]
                              + SLUICE_ARGS[config] + a.sluice_args.split())
        raise ValueError(config)

    def start_proxies(self, configs):
        """(Re)starts every proxy configuration in front of the sink, so each
        phase measures fresh processes: what an allocator kept from an
        earlier phase must not count as this phase's peak."""
        for c in configs:
            if c != "direct":
                self.stop(c)
                self.start_proxy(c, self.running["sink"].port)
            else:
                self.status[c] = "ok"

    def stop(self, name):
        srv = self.running.pop(name, None)
        if srv:
            srv.stop()

    def stop_all(self):
        for name in list(self.running)[::-1]:
            self.stop(name)


# -------------------------------------------------------------- clients ---

def curl_cmd(port, mode, path, out, timeout):
    cmd = ["curl", "-sS", "--noproxy", "*", "-H", "Expect:", "--max-time", str(timeout),
           "-o", out, "-w", "%{http_code} %{size_upload} %{time_total}"]
    if mode == "cl":
        cmd += ["-X", "POST", "-T", path]
    elif mode == "chunked":
        cmd += ["-X", "POST", "-H", "Transfer-Encoding: chunked", "-T", path]
    elif mode == "multipart":
        cmd += ["-F", "file=@%s;type=application/octet-stream" % path]
    return cmd + ["http://127.0.0.1:%d/upload" % port]


class Upload:
    """One curl upload of `path` in body `mode`; `extract`: the sink must
    count only the file (the proxy forwards the file part alone)."""

    def __init__(self, port, mode, path, tmpdir, index, timeout, extract=False):
        self.mode, self.size, self.extract = mode, os.path.getsize(path), extract
        self.resp = os.path.join(tmpdir, "resp%d" % index)
        self.wout = os.path.join(tmpdir, "w%d" % index)
        self.cmd = curl_cmd(port, mode, path, self.resp, timeout)

    def start(self):
        for p in (self.resp, self.wout):
            if os.path.exists(p):
                os.unlink(p)
        with open(self.wout, "w") as w:
            self.proc = subprocess.Popen(self.cmd, stdout=w, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    def result(self):
        r = {"ok": False, "mode": self.mode, "file_bytes": self.size}
        try:
            out = read_text(self.wout).strip()
        except OSError:
            out = ""
        # curl's messages (stderr) come first, then the -w line.
        words, said = out.split(), out.rsplit("\n", 1)[0] if "\n" in out else ""
        try:
            code, up, ttot = words[-3:]
            r.update(http=int(code), body_bytes=int(float(up)) if self.mode == "multipart" else self.size,
                     seconds=float(ttot))
        except ValueError:
            r["error"] = "curl: %s" % (out[-200:] or "no output")
            return r
        try:
            count, framing = read_text(self.resp).split()[:2]
            r.update(sink_bytes=int(count), framing=framing)
        except (OSError, ValueError):
            r["error"] = "http %d, no sink answer%s" % (r["http"], " (%s)" % said[-200:] if said else "")
            return r
        want = self.size if self.extract else r["body_bytes"]
        r["ok"] = r["http"] == 200 and r["sink_bytes"] == want
        if not r["ok"]:
            r["error"] = "http %d, sink counted %d bytes, expected %d" % (r["http"], r["sink_bytes"], want)
        return r


def run_uploads(uploads, timeout, sample_pids=()):
    """Starts all uploads at once and waits for them. curl stops itself
    after `timeout`; a timer kills any still running 10 s later. Returns
    (results, wall seconds until the last one ended, samples of the summed
    VmRSS KiB of sample_pids taken every 0.2 s while the first runs).
    Waiting blocks in waitpid rather than polling, so the harness takes no
    CPU from the two cores the measured processes share."""
    t0 = time.monotonic()
    for u in uploads:
        u.start()
    timer = threading.Timer(timeout + 10, lambda: [u.proc.kill() for u in uploads if u.proc.poll() is None])
    timer.start()
    samples = []
    try:
        while sample_pids and uploads[0].proc.poll() is None:
            try:
                samples.append(sum(status_kib(p, "VmRSS") for p in sample_pids))
            except OSError:
                break
            time.sleep(0.2)
        for u in uploads:
            u.proc.wait()
    finally:
        timer.cancel()
        timer.join()  # no thread may be running at the next fork
    return [u.result() for u in uploads], time.monotonic() - t0, samples


def measure(srv, uploads, timeout, sample=False):
    """Runs the uploads and adds the proxy's peak RSS and CPU time."""
    pids = srv.pids() if srv else []
    try:
        for p in pids:
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        c0 = cpu_snapshot(pids)
        rss0 = sum(status_kib(p, "VmRSS") for p in pids)
    except OSError as e:
        return {"ok": False, "error": "proxy gone before the run: %s" % e, "results": []}
    results, wall, samples = run_uploads(uploads, timeout, pids if sample else ())
    m = {"results": results, "wall": wall, "ok": all(r["ok"] for r in results),
         "bytes": sum(r.get("body_bytes", 0) for r in results)}
    if srv and not srv.alive():
        m.update(ok=False, error="%s exited: %s" % (srv.name, srv.log_tail()))
    elif pids:
        try:
            m["cpu_s"] = cpu_seconds(c0, cpu_snapshot(pids))
            m["hwm_kib"] = sum(status_kib(p, "VmHWM") for p in pids)
            m["rss_before_kib"] = rss0
        except OSError as e:
            m.update(ok=False, error="proxy gone during the run: %s" % e)
    if samples:
        m["rss_samples_kib"] = samples
    errs = [r["error"] for r in results if not r["ok"] and "error" in r]
    if errs and "error" not in m:
        m["error"] = "; ".join(errs[:3]) + (" (+%d more)" % (len(errs) - 3) if len(errs) > 3 else "")
    return m


# ---------------------------------------------------------------- files ---

def parse_size(s):
    s = s.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": MiB, "G": GiB}
    return int(float(s[:-1]) * mult[s[-1]]) if s[-1] in mult else int(s)


def make_random_file(path, size):
    """16 MiB of random bytes, repeated: incompressible enough for a proxy
    that never looks at them, and written at disk-cache speed."""
    block = os.urandom(min(size, 16 * MiB))
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def make_words_file(path, size):
    """Word-list text: /usr/share/dict/words, or 100k sorted pseudo-words
    when it is missing, repeated up to `size` bytes."""
    try:
        words = read_text("/usr/share/dict/words").encode()
    except (OSError, UnicodeDecodeError):
        rng = random.Random(1)
        syll = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "st", "er", "an"]
        vocab = {"".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(120000)}
        words = ("\n".join(sorted(vocab)[:100000]) + "\n").encode()
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(words))
            f.write(words[:n])
            left -= n


# ------------------------------------------------------------ self test ---

def check_sink(port):
    """The byte counts are the correctness check of the whole benchmark, so
    check the sink first: pipelined Content-Length, chunked (extensions,
    trailer) and empty requests, sent in random pieces (fixed seed)."""
    reqs = [(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", b"11 length"),
            (b"PUT /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5;ext=1\r\nabcde\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\nX-T: 1\r\n\r\n", b"31 chunked"),
            (b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n", b"0 none")]
    data = b"".join(r for r, _ in reqs)
    rng = random.Random(7)
    for attempt in range(3):
        try:
            got = exchange(port, data, len(reqs), 1 if attempt == 0 else None, rng)
        except OSError as e:
            raise RuntimeError("sink self-check: %s" % e)
        bodies = [part.split(b"\r\n\r\n", 1)[1].strip() for part in got.split(b"HTTP/1.1 ")[1:]]
        if bodies != [want for _, want in reqs]:
            raise RuntimeError("sink self-check failed: got %r" % got)


def exchange(port, data, nresp, piece, rng):
    """Sends data in pieces of `piece` bytes (None: random 1..40) and reads
    until nresp responses arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        i = 0
        while i < len(data):
            n = piece or rng.randint(1, 40)
            s.sendall(data[i:i + n])
            i += n
            time.sleep(0.0005)  # let each piece reach the sink on its own
        got = b""
        while got.count(b"HTTP/1.1 ") < nresp or not got.endswith(b"\n"):
            d = s.recv(65536)
            if not d:
                break
            got += d
        return got


# ----------------------------------------------------------------- runs ---

class Bench:
    def __init__(self, args, servers, tmpdir):
        self.args, self.servers, self.tmpdir = args, servers, tmpdir
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.runs = []       # one record per measured run
        self.skipped = 0

    def port_of(self, name):
        return self.servers.running[name].port

    def usable(self, names):
        return [n for n in names if n in self.args.configs and (n == "direct" or n in self.servers.running)]

    def run(self, phase, config, mode, path, n=1, srv_name=None, sample=False, timeout=None, **tags):
        if time.monotonic() > self.deadline:
            self.skipped += 1
            return None
        sink = self.servers.running["sink"]
        if not sink.alive():
            raise RuntimeError("the sink exited: %s" % sink.log_tail())
        timeout = timeout or self.args.timeout
        srv = self.servers.running.get(srv_name or config) if config != "direct" else None
        port = srv.port if srv else self.port_of("sink")
        ups = [Upload(port, mode, path, self.tmpdir, i, timeout, extract=config == "sluice-extract")
               for i in range(n)]
        m = measure(srv, ups, timeout, sample)
        res = m.pop("results")
        rec = dict(phase=phase, config=config, mode=mode, n=n, file_bytes=os.path.getsize(path), **tags)
        rec.update(m)
        rec["seconds"] = (res[0].get("seconds") if n == 1 and res else None) or m.get("wall")
        if rec.get("bytes") and rec["seconds"]:
            rec["mib_s"] = rec["bytes"] / MiB / rec["seconds"]
        if rec.get("bytes") and "cpu_s" in rec:
            rec["cpu_s_per_gib"] = rec["cpu_s"] / (rec["bytes"] / GiB)
        self.runs.append(rec)
        hwm = "%.1f MiB" % (rec["hwm_kib"] / 1024) if "hwm_kib" in rec else "-"
        cpu = "%.3f s/GiB" % rec["cpu_s_per_gib"] if "cpu_s_per_gib" in rec else "-"
        log("%-7s %-15s %-9s %5s%s %s %8.1f MiB/s  cpu %-12s rss %-9s %s" % (
            phase, config, mode, report.size_label(rec["file_bytes"]), " x%d" % n if n > 1 else "",
            "ok " if rec["ok"] else "BAD", rec.get("mib_s", 0), cpu, hwm, rec.get("error", "")))
        return rec

    @staticmethod
    def rotate(items, r, reps):
        k = (r * len(items) // max(reps, 1)) % max(len(items), 1)
        return items[k:] + items[:k]

    def fresh(self, path):
        """New proxy processes for the next phase, each warmed up by one
        untimed upload of `path`."""
        self.servers.start_proxies(self.args.configs)
        for name in self.usable(CONFIGS):
            mode = CONFIGS[name][1][0]
            srv = self.servers.running.get(name)
            u = Upload(srv.port if srv else self.port_of("sink"), mode, path, self.tmpdir, 0, 30,
                       extract=name == "sluice-extract")
            r = run_uploads([u], 30)[0][0]
            if not r["ok"]:
                log("warm-up through %s failed: %s" % (name, r.get("error")))

    def single(self, files):
        rows = [(c, m) for c in self.usable(CONFIGS) for m in CONFIGS[c][1]]
        for size in self.args.sizes:
            reps = self.args.reps if size < 256 * MiB else self.args.big_reps
            for r in range(reps):
                for config, mode in self.rotate(rows, r, reps):
                    self.run("single", config, mode, files[size], round=r)

    def concurrency(self, path):
        names = self.usable(CONC_CONFIGS)
        for n in self.args.conc:
            for r in range(self.args.conc_reps):
                for config in self.rotate(names, r, self.args.conc_reps):
                    self.run("conc", config, "cl", path, n=n, round=r)

    def slow(self, path, warm):
        """Each proxy in front of a sink reading SLOW_RATE while the client
        sends as fast as it can: a streaming proxy holds the client back and
        its RSS stays where it was; one that buffers grows by the backlog.
        Each proxy gets a fresh process, warmed up by one small upload, so
        the growth measured is the upload's alone."""
        slow = self.servers.start("sink-slow", [self.args.sink, "-r", str(SLOW_RATE)])
        if not slow:
            return
        for config, mode in SLOW_CONFIGS:
            if config not in self.usable(CONFIGS):
                continue
            name = config + "-slow"
            srv = self.servers.start_proxy(config, slow.port, name)
            if not srv:
                continue
            run_uploads([Upload(srv.port, mode, warm, self.tmpdir, 0, 30, config == "sluice-extract")], 30)
            self.run("slow", config, mode, path, srv_name=name, sample=True,
                     timeout=int(os.path.getsize(path) / SLOW_RATE * 3) + 20)
            self.servers.stop(name)
        self.servers.stop("sink-slow")

    def words(self, path):
        for r in range(self.args.reps):
            for config in self.rotate(self.usable(WORDS_CONFIGS), r, self.args.reps):
                self.run("words", config, "multipart", path, round=r)


# ----------------------------------------------------------------- main ---

def versions(args):
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    cpu = next((line.split(":", 1)[1].strip() for line in read_text("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.machine())
    return {"time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "kernel": platform.release(), "cpu": cpu,
            "ncpu": os.cpu_count(), "curl": first_line(["curl", "--version"]),
            "nginx": first_line([args.nginx, "-v"]) if args.nginx else None,
            "sluice": first_line(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
            "python": platform.python_version()}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"),
                    help="build directory: BUILD/bin/sluice-proxy, BUILD/bench/{sink,relay} (default $BUILD or build)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run, well under a minute: 64M bodies, concurrency 16 only, 3 s slow upstream")
    ap.add_argument("--sizes", help="single-upload body sizes (default 64M,1G; --quick 64M)")
    ap.add_argument("--reps", type=int, default=3, help="rounds for bodies under 256 MiB and word lists (3)")
    ap.add_argument("--big-reps", type=int, default=None, help="rounds for bodies of 256 MiB and more (3)")
    ap.add_argument("--conc", help="concurrent uploads per case, e.g. 16,256 ('' or 0 = skip; default 16,256; --quick 16)")
    ap.add_argument("--conc-size", default="16M", help="body size of each concurrent upload (16M)")
    ap.add_argument("--conc-reps", type=int, default=1, help="rounds of each concurrency case (1)")
    ap.add_argument("--slow-seconds", type=float, default=None,
                    help="length of the slow-upstream upload at 2 MiB/s (default 8; --quick 3; 0 = skip)")
    ap.add_argument("--words-mb", type=float, default=50, help="size of the word-list upload in MB (50; 0 = skip)")
    ap.add_argument("--only", help="comma-separated configurations to run (default all): " + ",".join(CONFIGS))
    ap.add_argument("--timeout", type=int, default=90, help="per-client time limit, seconds (90)")
    ap.add_argument("--max-minutes", type=float, default=None, help="deadline for the run (default 12; --quick 2)")
    ap.add_argument("--sluice-bin", help="directory of the sluice-proxy to measure (default BUILD/bin)")
    ap.add_argument("--sluice-args", default="", help="extra arguments for every sluice-proxy, e.g. '--digest'")
    ap.add_argument("--nginx", default=None, help="nginx binary (default: found on PATH or /usr/sbin)")
    ap.add_argument("--micro", help="file with the micro-benchmark output ('bench: NAME VALUE UNIT' lines)")
    ap.add_argument("--out", help="output directory (default BUILD/bench)")
    ap.add_argument("--filedir", help="keep the test bodies in this directory and reuse them")
    a = ap.parse_args(argv)
    q = a.quick
    a.sizes = [parse_size(s) for s in (a.sizes or ("64M" if q else "64M,1G")).split(",") if s]
    a.big_reps = a.big_reps or 3
    conc = a.conc if a.conc is not None else ("16" if q else "16,256")
    a.conc = [int(x) for x in conc.split(",") if x.strip() and int(x) > 0]
    a.conc_size = parse_size(a.conc_size)
    a.slow_seconds = a.slow_seconds if a.slow_seconds is not None else (3 if q else 8)
    a.max_minutes = a.max_minutes or (2 if q else 12)
    a.out = a.out or os.path.join(a.build, "bench")
    only = set(a.only.split(",")) if a.only else set(CONFIGS)
    unknown = only - set(CONFIGS)
    if unknown:
        ap.error("unknown configuration(s) %s; known: %s" % (",".join(sorted(unknown)), ",".join(CONFIGS)))
    a.configs = [c for c in CONFIGS if c in only]
    a.sink = os.path.join(a.build, "bench", "sink")
    a.relay = os.path.join(a.build, "bench", "relay")
    sp = os.path.join(a.sluice_bin or os.path.join(a.build, "bin"), "sluice-proxy")
    a.sluice_proxy = os.path.abspath(sp) if os.access(sp, os.X_OK) else None
    a.nginx = a.nginx or shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    return a


def main(argv):
    args = parse_args(argv)
    t_start = time.monotonic()
    for prog in (args.sink, args.relay):
        if not os.access(prog, os.X_OK):
            sys.exit("e2e: %s missing (tests/bench/e2e.sh builds it)" % prog)
    if not shutil.which("curl"):
        sys.exit("e2e: curl not found")
    os.makedirs(args.out, exist_ok=True)
    tmpdir = tempfile.mkdtemp(prefix="sluice-bench-")
    filedir = args.filedir or tmpdir
    os.makedirs(filedir, exist_ok=True)
    rundir = os.path.join(tmpdir, "run")
    os.makedirs(rundir)
    servers = Servers(args, rundir)
    # A shell starts background jobs with SIGINT ignored; Ctrl-C must still
    # stop the run and its servers.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = None
    rc = 0
    try:
        files = {}
        for size in sorted(set(args.sizes + ([args.conc_size] if args.conc else []))):
            files[size] = os.path.join(filedir, "body-%s.bin" % report.size_label(size).replace(" ", ""))
            if not (os.path.exists(files[size]) and os.path.getsize(files[size]) == size):
                make_random_file(files[size], size)
        words = None
        if args.words_mb > 0:
            words = os.path.join(filedir, "words-%gMB.txt" % args.words_mb)
            if not (os.path.exists(words) and os.path.getsize(words) == int(args.words_mb * 1e6)):
                make_words_file(words, int(args.words_mb * 1e6))

        if not servers.start("sink", [args.sink]):
            raise RuntimeError("the sink does not start")
        check_sink(servers.running["sink"].port)
        bench = Bench(args, servers, tmpdir)
        warm = files[min(files)]
        bench.fresh(warm)
        log("running: %s" % ", ".join("%s (%s)" % (n, servers.status[n]) for n in args.configs))
        bench.single(files)
        if args.conc:
            bench.fresh(warm)
            bench.concurrency(files[args.conc_size])
        if args.slow_seconds > 0:
            slow_path, slow_warm = os.path.join(filedir, "body-slow.bin"), os.path.join(filedir, "body-warm.bin")
            make_random_file(slow_path, int(args.slow_seconds * SLOW_RATE))
            make_random_file(slow_warm, 256 << 10)
            bench.slow(slow_path, slow_warm)
        if words:
            bench.fresh(warm)
            bench.words(words)
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except RuntimeError as e:
        log("FATAL: %s" % e)
        rc = 2
    finally:
        servers.stop_all()
        if not args.filedir or args.filedir == tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        else:
            shutil.rmtree(rundir, ignore_errors=True)
    if bench is None:
        return rc or 2

    micro = report.parse_micro(args.micro) if args.micro else []
    results = report.build(args, bench.runs, servers.status, CONFIGS,
                           {"conc": CONC_CONFIGS, "words": WORDS_CONFIGS, "flat_mib": FLAT_MIB},
                           micro, versions(args))
    results["skipped_by_deadline"] = bench.skipped
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    lines = report.text(results)
    print("\n".join(lines), flush=True)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "report.svg"), "w") as f:
        f.write(report.svg(results))
    if bench.skipped:
        log("deadline reached: %d runs skipped (raise --max-minutes)" % bench.skipped)
    log("wrote %s/results.json, report.svg, report.md in %.0f s" % (args.out, time.monotonic() - t_start))
    if results["failures"] and rc == 0:
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
