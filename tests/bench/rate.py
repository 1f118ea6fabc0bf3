#!/usr/bin/env python3
"""rate.py - small requests and downloads: sluice-proxy beside nginx.

Starts on loopback: an nginx upstream ("ok" to every small request; a file
made from /dev/urandom, sendfile on), nginx-keepalive (a proxy with an
upstream keepalive pool), nginx-1m (the same with 1 MiB proxy buffers) and
BUILD/bin/sluice-proxy --upstream <upstream> (default options: pooled
upstream connections); every nginx with one worker, access_log off. Then
ROUNDS rounds, the order rotating: `wrk -t2 -c64 --latency` with 1 KiB POSTs
and with GETs against direct (the upstream), nginx-keepalive and sluice; a
curl download through nginx-1m and sluice, with the proxy's CPU s/GiB
(utime+stime in /proc/PID/stat; for nginx its worker). Then each proxy's
peak RSS (VmHWM). Prints medians and a PASS/MISS line per target, also kept
in BUILD/bench/rate.txt. MISS lines are figures: the exit status is 1 only
when a request failed (non-2xx, socket errors, a short download) or a server
died, and 0 with a message when nginx, wrk or sluice-proxy is missing.
Servers are stopped by PID at the end, also on error or Ctrl-C; the temp dir
is removed. Run by tests/bench/e2e.sh (`make bench`), or alone:
    python3 tests/bench/rate.py [--build build] [--quick] [--rounds 3] [--secs 5]
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import e2e  # noqa: E402  (Server: start, readiness, PIDs, stop)

MiB, GiB = 1 << 20, 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")
RATE_TARGETS = ("direct", "nginx-keepalive", "sluice")
DOWNLOAD_TARGETS = ("nginx-1m", "sluice")
RSS_TARGET_MIB = 4.0

# nginx: %(user)s is a "user" line when run as root; temp paths stay in DIR
NGINX_HEAD = """worker_processes 1; daemon off; master_process on; %(user)s
pid %(dir)s/nginx.pid; error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path %(dir)s/cb; proxy_temp_path %(dir)s/pt; fastcgi_temp_path %(dir)s/ft;
  uwsgi_temp_path %(dir)s/ut; scgi_temp_path %(dir)s/st;
"""
UPSTREAM_CONF = """  sendfile on;
  server { listen 127.0.0.1:%(port)d; client_max_body_size 0; root %(www)s;
    location = /big.bin { }
    location / { return 200 "ok\\n"; } } }
"""
PROXY_CONF = """  upstream up { server 127.0.0.1:%(upstream)d; keepalive 128; }
  server { listen 127.0.0.1:%(port)d; client_max_body_size 0;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_request_buffering off; proxy_max_temp_file_size 0; %(buffers)s } } }
"""
BUFFERS_1M = "proxy_buffer_size 1m; proxy_buffers 2 1m; proxy_busy_buffers_size 1m;"
POST_LUA = 'wrk.method = "POST"\nwrk.body = string.rep("x", 1024)\n' \
           'wrk.headers["Content-Type"] = "application/octet-stream"\n'


def log(msg):
    print("rate: " + msg, flush=True)


def proc_cpu_s(pids):
    """utime + stime of pids, seconds (10 ms ticks)."""
    fields = [e2e.read_text("/proc/%d/stat" % pid).rsplit(")", 1)[1].split() for pid in pids]
    return sum(int(f[11]) + int(f[12]) for f in fields) / CLK_TCK


def start_nginx(servers, name, rundir, body, **kw):
    d = os.path.join(rundir, name)
    os.makedirs(d)
    port = e2e.free_port()
    conf = os.path.join(d, "nginx.conf")
    vals = dict(kw, dir=d, port=port, user="user root root;" if os.geteuid() == 0 else "")
    with open(conf, "w") as f:
        f.write(NGINX_HEAD % vals + body % vals)
    return servers.start(name, [servers.args.nginx, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
                         port=port, measure_children_only=True)


def children_cpu_s():
    """CPU seconds (user + system) of this script's waited-for children."""
    t = os.times()
    return t.children_user + t.children_system


def curl(url, timeout, data=None, keep=True):
    """(HTTP code, bytes received, seconds, body, curl's stderr) of one GET
    (a POST of `data`); keep=False: the body goes to /dev/null."""
    cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout), "-o", "-" if keep else "/dev/null",
           "-w", "\n%{http_code} %{size_download} %{time_total}", url]
    if data is not None:
        cmd[-1:-1] = ["-H", "Expect:", "--data-binary", "@-"]
    p = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout + 10)
    body, _, tail = p.stdout.rpartition(b"\n")
    code, size, secs = tail.decode().split() if len(tail.split()) == 3 else ("000", "0", "0")
    return int(code), int(size), float(secs), body, p.stderr.decode(errors="replace").strip()


def wrk(args, port, kind, lua):
    cmd = [args.wrk, "-t2", "-c%d" % args.conns, "-d%gs" % args.secs, "--latency"]
    cmd += ["-s", lua] if kind == "POST" else []
    p = subprocess.run(cmd + ["http://127.0.0.1:%d/" % port], capture_output=True, text=True,
                       timeout=args.secs + 60)
    out = p.stdout

    def lat_ms(q):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % q, out, re.M)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)] if m else None
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    res = {"rps": float(rps.group(1)) if rps else 0.0, "p50": lat_ms(50), "p99": lat_ms(99),
           "requests": int(n.group(1)) if n else 0, "non2xx": int(non2xx.group(1)) if non2xx else 0,
           "errors": errs.group(0) if errs else ""}
    if p.returncode != 0 or not rps or res["p99"] is None:
        res["errors"] = (res["errors"] + " wrk exit %d: %s" % (p.returncode, (p.stderr or out)[-300:])).strip()
    return res


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return "-" if v is None else spec % v


def run(args, servers, tmpdir):
    """Starts everything, runs the rounds; returns (report lines, failures)."""
    rundir, www = os.path.join(tmpdir, "run"), os.path.join(tmpdir, "www")
    os.makedirs(rundir), os.makedirs(www)
    os.chmod(tmpdir, 0o755)  # an unprivileged nginx worker reads the file
    size = args.download_mib * MiB
    log("making a %d MiB file from /dev/urandom" % args.download_mib)
    with open("/dev/urandom", "rb") as src, open(os.path.join(www, "big.bin"), "wb") as dst:
        left = size
        while left:
            left -= dst.write(src.read(min(left, 4 * MiB)))
    with open(os.path.join(tmpdir, "post.lua"), "w") as f:
        f.write(POST_LUA)
        lua = f.name
    up = start_nginx(servers, "upstream", rundir, UPSTREAM_CONF, www=www)
    if not up:
        raise RuntimeError("the upstream nginx does not start")
    start_nginx(servers, "nginx-keepalive", rundir, PROXY_CONF, upstream=up.port, buffers="")
    start_nginx(servers, "nginx-1m", rundir, PROXY_CONF, upstream=up.port, buffers=BUFFERS_1M)
    servers.start("sluice", [args.sluice_proxy, "--listen", "127.0.0.1:0", "--upstream",
                             "127.0.0.1:%d" % up.port] + args.sluice_args.split())
    srv = dict(servers.running, direct=up)
    failures = []
    for name in ("direct", "nginx-keepalive", "nginx-1m", "sluice"):  # every target answers right
        if name not in srv:
            failures.append("%s: not running (%s)" % (name, servers.status.get(name)))
            continue
        url = "http://127.0.0.1:%d/" % srv[name].port
        for data in (None, b"x" * 1024):
            code, _, _, body, err = curl(url, 10, data)
            if code != 200 or body.strip() != b"ok":
                failures.append("%s: self-check %s answered %d %r %s" % (name, "POST" if data else "GET",
                                                                         code, body[:80], err))
    if failures:
        return [], failures

    rate = {(t, k): [] for t in RATE_TARGETS for k in ("POST", "GET")}
    dl = {t: [] for t in DOWNLOAD_TARGETS}
    for r in range(args.rounds):
        for kind in ("POST", "GET"):
            for t in RATE_TARGETS[r % 3:] + RATE_TARGETS[:r % 3]:
                res = wrk(args, srv[t].port, kind, lua)
                rate[t, kind].append(res)
                log("round %d %-4s %-15s %8.0f req/s  p50 %s  p99 %s ms  non-2xx %d %s" % (
                    r + 1, kind, t, res["rps"], fmt(res["p50"], "%.2f"), fmt(res["p99"], "%.2f"),
                    res["non2xx"], res["errors"]))
                if res["non2xx"] or res["errors"]:
                    failures.append("round %d %s %s: %d of %d non-2xx; %s" % (
                        r + 1, kind, t, res["non2xx"], res["requests"], res["errors"] or "no socket errors"))
        for t in DOWNLOAD_TARGETS[r % 2:] + DOWNLOAD_TARGETS[:r % 2]:
            pids, c0, k0 = srv[t].pids(), proc_cpu_s(srv[t].pids()), children_cpu_s()
            code, got, secs, _, err = curl("http://127.0.0.1:%d/big.bin" % srv[t].port, args.timeout, keep=False)
            cpu, client = proc_cpu_s(pids) - c0, children_cpu_s() - k0
            res = {"ok": code == 200 and got == size, "mib_s": got / MiB / secs if secs else None,
                   "cpu": cpu / (got / GiB) if got else None,
                   "client": client / (got / GiB) if got else None}
            dl[t].append(res)
            log("round %d GET  %-15s %8s MiB/s  CPU %s s/GiB  curl %s s/GiB  %d, %d of %d bytes %s" % (
                r + 1, t, fmt(res["mib_s"], "%.0f"), fmt(res["cpu"], "%.3f"), fmt(res["client"], "%.3f"),
                code, got, size, err))
            if not res["ok"]:
                failures.append("round %d download %s: HTTP %d, %d of %d bytes %s" % (r + 1, t, code, got, size, err))
    for name, s in servers.running.items():
        if not s.alive():
            failures.append("%s exited during the run: %s" % (name, s.log_tail()))
    hwm = {t: sum(e2e.status_kib(p, "VmHWM") for p in srv[t].pids()) / 1024
           for t in ("nginx-keepalive", "nginx-1m", "sluice") if srv[t].alive()}

    return report(args, rate, dl, hwm), failures


def report(args, rate, dl, hwm):
    """The tables (medians over the runs without failures) and the targets."""
    good = {k: [x for x in v if not x["non2xx"] and not x["errors"]] for k, v in rate.items()}
    dl_good = {k: [x for x in v if x["ok"]] for k, v in dl.items()}
    lines = ["### Small requests: wrk -t2 -c%d -d%gs --latency, median of %d rounds" % (
        args.conns, args.secs, args.rounds), "",
        "| target          | request    |   req/s | p50 ms | p99 ms | non-2xx |  ok |",
        "|-----------------|------------|--------:|-------:|-------:|--------:|----:|"]
    for kind in ("POST", "GET"):
        for t in RATE_TARGETS:
            g = good[t, kind]
            lines.append("| %-15s | %-10s | %7s | %6s | %6s | %7d | %d/%d |" % (
                t, "1 KiB POST" if kind == "POST" else "GET", fmt(med(g, "rps"), "%.0f"),
                fmt(med(g, "p50"), "%.2f"), fmt(med(g, "p99"), "%.2f"),
                sum(x["non2xx"] for x in rate[t, kind]), len(g), len(rate[t, kind])))
    lines += ["", "### Download: %d MiB GET, curl -o /dev/null, median of %d rounds" % (
        args.download_mib, args.rounds), "",
        "| target          | MiB/s | CPU s/GiB | curl CPU s/GiB | peak RSS MiB |  ok |",
        "|-----------------|------:|----------:|---------------:|-------------:|----:|"]
    for t in DOWNLOAD_TARGETS:
        g = dl_good[t]
        lines.append("| %-15s | %5s | %9s | %14s | %12s | %d/%d |" % (
            t, fmt(med(g, "mib_s"), "%.0f"), fmt(med(g, "cpu"), "%.3f"), fmt(med(g, "client"), "%.3f"),
            fmt(hwm.get(t), "%.1f"), len(g), len(dl[t])))
    lines += ["", "curl CPU: the client's own s/GiB. A spliced body reaches it as the upstream's",
              "pages, which it reads cold, where a copying proxy hands it bytes it has just",
              "written: on one machine the splice moves that cost to the client (docs/performance.md)."]
    lines += ["", "Peak RSS (VmHWM) after all rounds: " + ", ".join("%s %.1f MiB" % kv for kv in hwm.items()),
              "", "### Targets (ratios of the medians above)", ""]

    def ratio(rows_a, rows_b, key):
        x, y = med(rows_a, key), med(rows_b, key)
        return x / y if x is not None and y else None
    s, n, n1 = "sluice", "nginx-keepalive", "nginx-1m"
    targets = [("sluice req/s vs nginx-keepalive, " + k, ratio(good[s, k], good[n, k], "rps"), ">=", 1.0, "x")
               for k in ("POST", "GET")]
    targets += [("sluice p99 vs nginx-keepalive, " + k, ratio(good[s, k], good[n, k], "p99"), "<=", 1.5, "x")
                for k in ("POST", "GET")]
    targets += [("download CPU s/GiB vs nginx-1m", ratio(dl_good[s], dl_good[n1], "cpu"), "<=", 1.0, "x"),
                ("download MiB/s vs nginx-1m", ratio(dl_good[s], dl_good[n1], "mib_s"), ">=", 0.95, "x"),
                ("sluice peak RSS, 64 clients and the download", hwm.get(s), "<=", RSS_TARGET_MIB, " MiB")]
    for what, v, op, bound, unit in targets:
        if v is None:
            lines.append("n/a   %-46s (no successful runs)" % what)
        else:
            ok = v <= bound if op == "<=" else v >= bound
            lines.append("%-5s %-46s %6.2f%s (%s %g%s)" % ("PASS" if ok else "MISS", what, v, unit, op, bound, unit))
    return lines


def version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return ((p.stdout + p.stderr).strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"),
                    help="build directory: BUILD/bin/sluice-proxy; results in BUILD/bench/rate.txt")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (3; --quick 1)")
    ap.add_argument("--secs", type=float, default=None, help="length of each wrk run, seconds (5; --quick 2)")
    ap.add_argument("--download-mib", type=int, default=None, help="size of the download, MiB (1024; --quick 256)")
    ap.add_argument("--quick", action="store_true", help="1 round, 2 s wrk runs, 256 MiB download")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections (64)")
    ap.add_argument("--timeout", type=int, default=90, help="time limit of each download, seconds (90)")
    ap.add_argument("--sluice-args", default="", help="extra arguments for sluice-proxy")
    a = ap.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.secs = a.secs or (2 if a.quick else 5)
    a.download_mib = a.download_mib or (256 if a.quick else 1024)
    a.out = os.path.join(a.build, "bench")
    a.sluice_proxy = os.path.abspath(os.path.join(a.build, "bin", "sluice-proxy"))
    a.nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    a.wrk = shutil.which("wrk")
    for what, ok in (("nginx", a.nginx), ("wrk", a.wrk), ("curl", shutil.which("curl")),
                     (a.sluice_proxy, os.access(a.sluice_proxy, os.X_OK))):
        if not ok:
            log("%s missing: small-request and download benchmark skipped" % what)
            return 0
    os.makedirs(a.out, exist_ok=True)
    head = ["## Small requests and downloads", "", "%s; load %.2f at the start; %s; %s; %s; sluice %s" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()[0], version(["uname", "-r"]),
        version([a.nginx, "-v"]), version([a.wrk, "-v"]).split(" [")[0],
        version(["git", "-C", HERE, "describe", "--always", "--dirty"])),
        "`%s`" % " ".join(["python3", "tests/bench/rate.py"] + argv), ""]
    tmpdir = tempfile.mkdtemp(prefix="sluice-rate-")
    servers = e2e.Servers(a, os.path.join(tmpdir, "run"))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lines, failures, rc = [], [], 0
    try:
        lines, failures = run(a, servers, tmpdir)
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        failures.append("FATAL: %s" % e)
    finally:
        servers.stop_all()
        shutil.rmtree(tmpdir, ignore_errors=True)
    if rc:
        return rc
    lines = head + lines + [""] + ["FAILED " + f for f in failures]
    print("\n".join(lines), flush=True)
    with open(os.path.join(a.out, "rate.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("wrote %s/rate.txt" % a.out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
