#!/usr/bin/env python3
"""s3.py - uploads through sluice-proxy --s3 into moto: the proxy's CPU
seconds per GiB and peak RSS (moto's own speed is not measured: it is a
Python server and the bottleneck; only the proxy's on-CPU time counts).

One Content-Length upload and one chunked upload (curl -T with
Transfer-Encoding: chunked; a multipart upload of --part-size parts) of
--size bytes each, --reps times, in alternating order. Every upload's JSON
answer is checked: status 200, size, and the SHA-256 against the file's.
CPU is on-CPU time (schedstat) of the proxy over the upload; peak RSS is
VmHWM of a proxy started for that upload alone (reset through
/proc/PID/clear_refs before it). Prints a table and
"bench: s3_<mode>_cpu_s_per_gib <v> s" lines; results in OUT/s3.json.

    python3 tests/bench/s3.py [--build build] [--size 256M] [--reps 3]

Needs python3 with moto[server] and boto3 (skipped with a message without
them). Servers are children of this script, stopped by PID at the end.
"""
import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import e2e  # noqa: E402  (/proc probes, random file, free_port)

MiB, GiB = 1 << 20, 1 << 30
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BUCKET = "sluice-bench"


def start_moto(port):
    p = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=e2e.die_with_parent)
    import boto3
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=AKID,
                      aws_secret_access_key=SECRET, region_name="us-east-1")
    for _ in range(150):
        try:
            s3.create_bucket(Bucket=BUCKET)
            return p, s3
        except Exception:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("moto did not start")


def start_proxy(build, moto_port, part_size):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET)
    p = subprocess.Popen([os.path.join(build, "bin", "sluice-proxy"), "--listen", "127.0.0.1:0",
                          "--s3", f"http://127.0.0.1:{moto_port}/{BUCKET}/bench",
                          "--s3-part-size", str(part_size), "--timeout-ms", "120000"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                         preexec_fn=e2e.die_with_parent)
    line = p.stdout.readline().decode()
    if not line.startswith("listening on "):
        p.kill()
        raise RuntimeError(f"sluice-proxy did not start: {line!r}")
    return p, int(line.rsplit(":", 1)[1])


def upload(proxy, port, path, mode, sha):
    """One upload; returns (CPU s, peak RSS KiB, seconds)."""
    with open(f"/proc/{proxy.pid}/clear_refs", "w") as f:
        f.write("5")
    hdr = ["-H", "Transfer-Encoding: chunked"] if mode == "chunked" else []
    cmd = ["curl", "-sS", "--max-time", "600", "-T", path, "-H", "Content-Type: application/x-bench",
           *hdr, "-w", "\n%{http_code}", f"http://127.0.0.1:{port}/{mode}.bin"]
    before = e2e.cpu_snapshot([proxy.pid])
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, timeout=700).stdout.decode()
    secs = time.monotonic() - t0
    cpu = e2e.cpu_seconds(before, e2e.cpu_snapshot([proxy.pid]))
    rss = e2e.status_kib(proxy.pid, "VmHWM")
    body, _, code = out.rpartition("\n")
    res = json.loads(body) if code == "200" else {}
    if res.get("sha256") != sha or res.get("size") != os.path.getsize(path):
        raise RuntimeError(f"{mode} upload failed: {code} {body[:300]}")
    return cpu, rss, secs


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--size", default="256M")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--part-size", default="8M")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError as e:
        print(f"s3: SKIPPED: moto or boto3 missing ({e}): pip install 'moto[server]' boto3")
        return 0
    size, part = e2e.parse_size(a.size), e2e.parse_size(a.part_size)
    out = a.out or os.path.join(a.build, "bench")
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="sluice-s3-bench-")
    path = os.path.join(tmp, "body")
    e2e.make_random_file(path, size)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    sha = h.hexdigest()
    moto, s3 = start_moto(e2e.free_port())
    proxy = None
    rows = {"cl": [], "chunked": []}
    try:
        for rep in range(a.reps):
            for mode in (("cl", "chunked") if rep % 2 == 0 else ("chunked", "cl")):
                # a fresh proxy per upload: its peak RSS is this upload's
                proxy, port = start_proxy(a.build, moto.args[-1], part)
                cpu, rss, secs = upload(proxy, port, path, mode, sha)
                proxy.terminate()
                proxy.wait(10)
                proxy = None
                rows[mode].append((cpu, rss, secs))
                s3.delete_object(Bucket=BUCKET, Key=f"bench/{mode}.bin")  # moto holds it in memory
                print(f"s3: {mode:8} rep {rep + 1}: {cpu / (size / GiB):.3f} CPU s/GiB, "
                      f"peak RSS {rss / 1024:.1f} MiB, {size / MiB / secs:.0f} MiB/s (moto-bound)",
                      flush=True)
    finally:
        for p in (proxy, moto):
            if p:
                p.terminate()
                p.wait(10)
        os.unlink(path)
        os.rmdir(tmp)
    res = {}
    print(f"\n| upload through --s3 ({size // MiB} MiB, {a.reps} reps, median) "
          f"| proxy CPU s/GiB | peak RSS MiB |\n|---|---|---|")
    for mode, label in (("cl", "Content-Length (PutObject, signed aws-chunked)"),
                        ("chunked", f"chunked (multipart, {part // MiB} MiB parts)")):
        cpu = statistics.median(r[0] for r in rows[mode]) / (size / GiB)
        rss = statistics.median(r[1] for r in rows[mode]) / 1024
        res[mode] = {"cpu_s_per_gib": cpu, "peak_rss_mib": rss, "runs": rows[mode]}
        print(f"| {label} | {cpu:.3f} | {rss:.1f} |")
    for mode in ("cl", "chunked"):
        print(f"bench: s3_{mode}_cpu_s_per_gib {res[mode]['cpu_s_per_gib']:.3f} s")
        print(f"bench: s3_{mode}_peak_rss_mib {res[mode]['peak_rss_mib']:.1f} MiB")
    with open(os.path.join(out, "s3.json"), "w") as f:
        json.dump({"size": size, "part_size": part, "results": res}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
