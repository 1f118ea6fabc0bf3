#!/usr/bin/env python3
"""Throughput and peak RSS of the example hosts for one 64 MiB upload.

    python3 tests/hosts/measure.py [SIZE_MIB] [RUNS]     (after `make`)

For each host: curl uploads a file of SIZE_MIB (default 64) RUNS times
(default 3) on loopback; prints the median MiB/s (wall time of curl, so the
client's own work is in it) and the host's VmHWM (peak RSS) after all runs.
relay and uv-relay forward into sluice-sink; tls-digest consumes the body
itself (curl -k, TLS 1.3). Hosts that were not built are left out.
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import lib  # noqa: E402


def upload(url, path, runs, tls):
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.run(["curl", "-sS", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}",
                            "-T", path] + (["-k"] if tls else []) + [url], capture_output=True)
        times.append(time.monotonic() - t0)
        if p.stdout != b"200":
            raise SystemExit("%s: %r %r" % (url, p.stdout, p.stderr))
    return statistics.median(times)


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    path, _ = lib.gen_file(mib * lib.MiB, seed=64, name="measure.bin")
    cert, key = os.path.join(lib.TMP, "c.pem"), os.path.join(lib.TMP, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert], capture_output=True)
    sink = lib.start_sink()
    hosts = [("relay (poll)", ["relay", "0", sink.addr], False),
             ("uv-relay (libuv)", ["uv-relay", "0", sink.addr], False),
             ("tls-digest (OpenSSL)", ["tls-digest", "0", cert, key], True),
             ("tls-digest --flaky", ["tls-digest", "0", cert, key, "--flaky"], True)]
    print("%-22s %10s %14s" % ("host", "MiB/s", "peak RSS KiB"))
    for name, argv, tls in hosts:
        binary = os.path.join(lib.BIN_DIR, argv[0])
        if not os.access(binary, os.X_OK):
            continue
        s = lib.Server([binary] + argv[1:], argv[0])
        url = "%s://127.0.0.1:%d/m" % ("https" if tls else "http", s.port)
        t = upload(url, path, runs, tls)
        print("%-22s %10.0f %14d" % (name, mib / t, lib.vmhwm_kib(s.pid)))
        sys.stdout.flush()
        s.stop(graceful=False)
    sink.stop(graceful=False)
    os.unlink(path)


if __name__ == "__main__":
    main()
