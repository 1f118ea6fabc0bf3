#!/usr/bin/env python3
"""The hosts on other libraries, black-box: examples/uv-relay.c (libuv) and
examples/tls-digest.c (OpenSSL, over examples/tls/tls_io.c).

    python3 tests/hosts/run.py uv|tls [-k SUBSTRING]
    env: BUILD (build dir, default build), SAN=1 (smaller bodies)

Prints `ok   <name>` or `FAIL <name>: <why>` per case and ends with one line
`N passed, N failed`; a host that was not built (its library is missing)
prints `skipped: ... not installed` and `0 passed, 0 failed`.

uv     uploads through uv-relay into sluice-sink (which reports bytes,
       SHA-256 and framing): Content-Length and chunked on one keep-alive
       connection, curl with Expect: 100-continue, a GET, 16 concurrent
       uploads, a client cut mid-body (a recording upstream sees no end of
       body), and the relay's descriptors back to where they were.
tls    curl -k uploads to tls-digest (Content-Length, chunked) answered with
       the body's SHA-256; bodies cut with and without close_notify (and a
       chunked one cut with it) logged as errors, never as a short 200; two
       requests on one TLS connection; close_notify after a Connection:
       close answer; the same uploads with --flaky
       (OpenSSL sees a retry on every other socket read and write).
"""

import os
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import lib  # noqa: E402
from lib import Conn, Fail, MiB, chunked, eq, check, req, sha256, wait_for  # noqa: E402

BIG = 1 * MiB if lib.SAN else 4 * MiB
UV_BIN = os.path.join(lib.BIN_DIR, "uv-relay")
TLS_BIN = os.path.join(lib.BIN_DIR, "tls-digest")
CASES = []


def case(group, name):
    def deco(fn):
        CASES.append((group, name, fn))
        return fn
    return deco


# ---- uv-relay --------------------------------------------------------------

class UvEnv:
    def __init__(self):
        self.sink = lib.start_sink()
        self.relay = lib.Server([UV_BIN, "0", self.sink.addr], "uv-relay")
        self.fds = lib.fd_count(self.relay.pid)

    def stop(self):
        problems = [self.relay.stop(), self.sink.stop()]
        return [p for p in problems if p]


@case("uv", "uv-relay: Content-Length and chunked uploads on one connection, byte-exact")
def uv_uploads(env):
    body = os.urandom(3 * MiB + 17)
    with Conn(env.relay.port, timeout=30) as c:
        c.send(req("PUT", "/uv/cl", [("Content-Length", str(len(body)))]) + body)
        j = c.response(timeout=30).json()
        eq((j["bytes"], j["sha256"], j["framing"]), (len(body), sha256(body), "length"), "sink saw")
        c.send(req("POST", "/uv/te", [("Transfer-Encoding", "chunked")],
                   body=chunked(body, [1, 65536, 100000, 7 * 65536 + 3])))
        j = c.response(timeout=30).json()
        eq((j["method"], j["target"]), ("POST", "/uv/te"), "method and target")
        eq((j["bytes"], j["sha256"], j["framing"]), (len(body), sha256(body), "chunked"), "sink saw")


@case("uv", "uv-relay: curl upload with Expect: 100-continue, and a GET")
def uv_curl(env):
    path, digest = lib.gen_file(2 * MiB, seed=171, name="uv.bin")
    try:
        res = lib.curl(["-T", path, env.relay.url("/uv/curl")])
    finally:
        os.unlink(path)
    eq(res.status, 200, "upload status")
    eq(res.json()["sha256"], digest, "sink sha256")
    res = lib.curl([env.relay.url("/uv/get?x=1")])
    eq((res.status, res.json()["method"], res.json()["bytes"]), (200, "GET", 0), "GET")


@case("uv", "uv-relay: 16 concurrent uploads, each byte-exact")
def uv_concurrent(env):
    bodies = [os.urandom(MiB // 2 + i * 4099) for i in range(16)]
    errors = []

    def one(i):
        try:
            with Conn(env.relay.port, timeout=30) as c:
                c.send_pieces(req("PUT", "/uv/%d" % i, [("Content-Length", str(len(bodies[i])))])
                              + bodies[i], [1000, 70000] * 8)
                j = c.response(timeout=30).json()
                if (j["bytes"], j["sha256"]) != (len(bodies[i]), sha256(bodies[i])):
                    errors.append("upload %d: sink saw %r" % (i, j))
        except Exception as e:  # noqa: BLE001
            errors.append("upload %d: %s" % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, "; ".join(errors[:3]))


@case("uv", "uv-relay: a client cut mid-body (Content-Length, chunked): the upstream sees no end")
def uv_cut(env):
    for te in (False, True):
        with lib.Upstream() as up:
            relay = lib.Server([UV_BIN, "0", up.addr], "uv-relay-cut")
            try:
                body = os.urandom(MiB)
                data = (req("POST", "/cut", [("Transfer-Encoding", "chunked")],
                            body=chunked(body, [64 * 1024] * 16)) if te
                        else req("POST", "/cut", body=body))
                c = Conn(relay.port)
                c.send(data[:len(data) - 200 * 1024])
                time.sleep(0.3)
                c.abort()
                rec = up.wait_conn(1)
                check(up.wait_closed(rec, 5), "upstream connection left open (chunked=%s)" % te)
                check(all(not m.complete for m in rec.requests),
                      "upstream saw a complete body (chunked=%s)" % te)
                check(relay.alive(), "uv-relay died")
            finally:
                problem = relay.stop()
            check(not problem, problem)


@case("uv", "uv-relay: descriptors back to the start (uv_poll_stop before close)")
def uv_fds(env):
    ok = wait_for(lambda: lib.fd_count(env.relay.pid) == env.fds, timeout=3)
    check(ok, "uv-relay holds %d fds, %d at the start" % (lib.fd_count(env.relay.pid), env.fds))


# ---- tls-digest ------------------------------------------------------------

class TlsEnv:
    def __init__(self):
        self.cert = os.path.join(lib.TMP, "cert.pem")
        self.key = os.path.join(lib.TMP, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", self.key, "-out", self.cert],
                       check=True, capture_output=True)
        self.plain = lib.Server([TLS_BIN, "0", self.cert, self.key], "tls-digest")
        self.flaky = lib.Server([TLS_BIN, "0", self.cert, self.key, "--flaky"], "tls-digest-flaky")

    def stop(self):
        problems = []
        for s in (self.plain, self.flaky):
            if not s.alive():
                problems.append("%s died: %s" % (s.name, s.stderr()[-300:]))
            s.stop(graceful=False)
            rep = s.sanitizer_report()
            if rep:
                problems.append("%s: sanitizer: %s" % (s.name, rep))
        return problems


def tls_conn(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = Conn(port, timeout=20)
    # a bare EOF raises SSLEOFError; only close_notify reads as b""
    c.sock = ctx.wrap_socket(c.sock, suppress_ragged_eofs=False)
    c.rd = lib.Reader(c.sock)
    return c


def log_for(server, target):
    """The server's log line for target (waits for it)."""
    def find():
        return [ln for ln in server.log_lines() if " %s " % target in ln]
    lines = wait_for(find, timeout=5)
    check(lines, "no log line for %s in %r" % (target, server.log_lines()[-5:]))
    return lines[-1]


def curl_uploads(server, tag):
    path, digest = lib.gen_file(BIG + 5, seed=172, name="tls-%s.bin" % tag)
    try:
        for how, args in (("cl", ["-T", path]),
                          ("te", ["-H", "Transfer-Encoding: chunked", "-T", "-"])):
            target = "/%s/%s" % (tag, how)
            extra = {"stdin": path} if how == "te" else {}
            res = curl_tls(args, server.port, target, **extra)
            eq(res.status, 200, "%s status" % how)
            eq(res.body.decode().strip(), digest, "%s: sha256 answered" % how)
            line = log_for(server, target)
            check(" 200 %d " % (BIG + 5) in line, "%s: log %r" % (how, line))
    finally:
        os.unlink(path)
    return line


def curl_tls(args, port, target, stdin=None):
    url = "https://127.0.0.1:%d%s" % (port, target)
    if stdin is None:
        return lib.curl(["-k"] + args + [url])
    # curl reads stdin for "-T -"; lib.curl does not pass one, so run it here
    with open(stdin, "rb") as f:
        p = subprocess.run(["curl", "-sS", "-k", "--http1.1", "--max-time", "60"] + args + [url],
                           stdin=f, capture_output=True, timeout=65)
    return lib.CurlResult(p.returncode, 200 if p.returncode == 0 else 0, [], p.stdout,
                          p.stderr.decode("latin-1"))


@case("tls", "tls-digest: curl -k uploads (Content-Length, chunked) answered with their SHA-256")
def tls_curl(env):
    curl_uploads(env.plain, "plain")


@case("tls", "tls-digest: WANT_READ / WANT_WRITE on every other socket call (--flaky), byte-exact")
def tls_flaky(env):
    line = curl_uploads(env.flaky, "flaky")
    retries = int(line.rsplit("retries=", 1)[1])
    check(retries > 100, "only %d retries injected: %r" % (retries, line))


def cut(env, target, head_fields, sent, close_notify):
    c = tls_conn(env.plain.port)
    c.send(req("PUT", target, head_fields) + sent)
    time.sleep(0.2)
    if close_notify:
        c.sock.settimeout(2)
        try:
            c.sock.unwrap()  # sends close_notify
        except (OSError, ssl.SSLError):
            pass  # the server's answer arrives where the close_notify was awaited
    c.close()  # without unwrap: a bare FIN after the last record
    line = log_for(env.plain, target)
    check(" error " in line and " 200 " not in line, "logged %r" % line)
    return line


@case("tls", "tls-digest: half a Content-Length body, then close_notify: an error, not a short 200")
def tls_cut_notify(env):
    line = cut(env, "/cut/notify", [("Content-Length", str(MiB))], os.urandom(MiB // 2), True)
    check("SLUICE_ETRUNCATED" in line, "logged %r" % line)


@case("tls", "tls-digest: half a Content-Length body, then a bare FIN: an error, not a short 200")
def tls_cut_fin(env):
    cut(env, "/cut/fin", [("Content-Length", str(MiB))], os.urandom(MiB // 2), False)


@case("tls", "tls-digest: a chunked body without its last chunk, then close_notify: an error")
def tls_cut_chunked(env):
    body = chunked(os.urandom(200000), [65536])
    cut(env, "/cut/te", [("Transfer-Encoding", "chunked")], body[:-5], True)


@case("tls", "tls-digest: two requests on one TLS connection, the second after the first answer")
def tls_keep_alive(env):
    c = tls_conn(env.plain.port)
    try:
        for i, n in enumerate((100000, 7)):
            body = os.urandom(n)
            c.send(req("PUT", "/ka/%d" % i, [("Content-Length", str(n))]) + body)
            res = c.response(timeout=20)
            eq(res.status, 200, "status %d" % i)
            eq(res.body.decode().strip(), sha256(body), "sha256 %d" % i)
    finally:
        c.close()


@case("tls", "tls-digest: Connection: close is answered, then close_notify (a clean TLS end)")
def tls_close_notify(env):
    c = tls_conn(env.plain.port)
    try:
        c.send(req("PUT", "/bye", [("Content-Length", "5"), ("Connection", "close")]) + b"hello")
        res = c.response(timeout=20)
        eq(res.status, 200, "status")
        eq(res.body.decode().strip(), sha256(b"hello"), "sha256")
        c.sock.settimeout(5)
        eq(c.sock.recv(100), b"", "after the answer (close_notify)")
    finally:
        c.close()


# ---- runner ----------------------------------------------------------------

def main():
    group = sys.argv[1] if len(sys.argv) > 1 else ""
    want = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else ""
    binary, what, make_env = {"uv": (UV_BIN, "libuv", UvEnv), "tls": (TLS_BIN, "OpenSSL", TlsEnv)}[group]
    if not os.access(binary, os.X_OK):
        print("skipped: %s not installed (%s was not built)" % (what, os.path.basename(binary)))
        print("0 passed, 0 failed")
        return 0
    env = make_env()
    passed = failed = 0
    for g, name, fn in CASES:
        if g != group or want not in name:
            continue
        try:
            fn(env)
            print("ok   " + name)
            passed += 1
        except (Fail, lib.Closed, OSError, ssl.SSLError, ValueError, KeyError) as e:
            print("FAIL %s: %s" % (name, e))
            failed += 1
        sys.stdout.flush()
    for p in env.stop():
        print("FAIL %s" % p)
        failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
