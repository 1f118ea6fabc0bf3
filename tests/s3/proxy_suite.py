#!/usr/bin/env python3
"""sluice-proxy in S3 mode (--s3) against moto, end to end.

moto's server runs on a free port behind the recording TCP proxy of
moto_suite.py; sluice-proxy --s3 points at the recorder, clients talk to
sluice-proxy with raw sockets (tests/e2e/lib.py) and results are read back
with boto3:

  - objects byte-exact for Content-Length, chunked (one PutObject below the
    part size, a multipart upload above it) and --extract uploads; the JSON
    answer (bucket, key, size, ETag, SHA-256, content type, image); keys
    percent-decoded under the prefix; bad keys 400, other methods 405;
  - GET, HEAD and Range read back through the proxy; keep-alive;
  - a client gone mid-body, a truncated or malformed body, a body over
    --max-body-bytes: no object and nothing in list_multipart_uploads (and
    one AbortMultipartUpload when a multipart upload had begun);
  - wrong credentials (a second moto with authentication on), a missing
    bucket, a store answering 500 (a stub), an unreachable store: 502 with
    {"error", "message"};
  - uploads of unknown length beyond what --max-memory holds in parts take
    turns; one that finds no turn within --timeout-ms is 503;
  - start-up errors (missing credentials, bad URL): exit status 2;
  - peak RSS of a 40 MiB Content-Length upload <= 4 MiB, and of a 40 MiB
    chunked one inside --max-memory (not under the sanitizers);
  - every request the proxy sent, from the recording: Authorization
    recomputed with botocore, the aws-chunked body of each PutObject rebuilt
    from the AWS spec (chunk signatures, checksum trailer and its
    signature), UploadPart checksums and payload hashes, the Complete XML
    (moto_suite.check_*).

Ends with "N passed, N failed". Run by tests/suites/s3proxy.sh, which skips
when moto or boto3 is missing.
"""
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import moto_suite as ms  # noqa: E402  (exits "FAIL" without boto3/moto)
import lib  # noqa: E402
from lib import check, eq  # noqa: E402

MiB = 1 << 20
BUCKET = "sluice-test"
PREFIX = "up"
PART = 5 * MiB
TOKEN = "FQoGZXIvYXdzEXAMPLETOKEN/+="

CASES = []


def case(name, timeout=60):
    def deco(fn):
        CASES.append((name, fn, timeout))
        return fn
    return deco


class World:
    def __init__(self):
        self.moto_port = ms.free_port()
        self.moto = self._moto(self.moto_port, {})
        self.s3 = ms.moto_client(self.moto_port, BUCKET)
        self.rec = ms.Recorder(self.moto_port)
        os.environ["AWS_ACCESS_KEY_ID"] = ms.AKID
        os.environ["AWS_SECRET_ACCESS_KEY"] = ms.SECRET
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_REGION", None)
        self.proxies = {}
        self.extra = []

    @staticmethod
    def _moto(port, env):
        return subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, **env))

    def proxy(self, *args, store=None):
        """A proxy in S3 mode (one per option set, kept for the run)."""
        key = (args, store)
        p = self.proxies.get(key)
        if p is None or not p.alive():
            url = store or f"http://127.0.0.1:{self.rec.port}/{BUCKET}/{PREFIX}"
            argv = [lib.PROXY_BIN, "--listen", "127.0.0.1:0", "--s3", url,
                    "--s3-part-size", str(PART)] + [str(a) for a in args]
            p = lib.Server(argv, "proxy")
            self.proxies[key] = p
        return p

    def sent(self):
        """The requests the proxy sent since the last call, all checked."""
        reqs = [r for c in self.rec.take() for r in ms.split_requests(c)]
        why = ms.check_all(reqs, os.environ.get("AWS_SESSION_TOKEN"))
        check(why is None, f"request check: {why}")
        return reqs

    def stored(self, key):
        try:
            return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None

    def nothing_left(self, key):
        check(self.stored(key) is None, f"object {key!r} was stored")
        ups = self.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")
        check(not ups, f"multipart uploads left: {ups}")

    def close(self):
        probs = []
        for p in self.proxies.values():
            why = p.stop()
            if why:
                probs.append(why)
        for m in [self.moto] + self.extra:
            m.terminate()
            m.wait()
        return probs


def key_of(target):
    return PREFIX + "/" + urllib.parse.unquote(target.lstrip("/").split("?")[0])


def put(port, target, body, headers=(), method="PUT"):
    r, c = lib.exchange(port, lib.req(method, target, list(headers), body), method, timeout=60)
    c.close()
    return r


def check_stored(w, r, target, data, ctype="application/octet-stream", image=None):
    """The 200 JSON answer and the object moto holds."""
    eq(r.status, 200, f"status (body {lib.short(r.body)})")
    eq(r.hdr("Content-Type"), "application/json", "answer's Content-Type")
    j = r.json()
    key = key_of(target)
    head = w.s3.head_object(Bucket=BUCKET, Key=key)
    want = {"bucket": BUCKET, "key": key, "size": len(data),
            "etag": head["ETag"].strip('"'), "sha256": hashlib.sha256(data).hexdigest(),
            "content_type": ctype, "image": image}
    eq(j, want, "JSON answer")
    eq(head["ContentType"], ctype, "object's Content-Type")
    check(w.stored(key) == data, "stored object differs from what was sent")


def check_one_put(reqs, data):
    puts = [r for r in reqs if r.get("method") == "PUT"]
    eq(len(reqs), 1, "requests sent for one PutObject")
    eq(puts[0]["h"]["x-amz-content-sha256"], "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
       "payload mode")
    why = ms.check_put(puts[0], data)
    check(why is None, f"PutObject: {why}")


# ---- uploads ---------------------------------------------------------------------


@case("PUT with Content-Length (0, 1, 100000, 9 MiB): byte-exact, JSON, signed chunks")
def put_lengths(w):
    p = w.proxy()
    for n in (0, 1, 100000, 9 * MiB):
        data = lib.body_bytes(n, seed=n)
        target = f"/cl/{n}.bin"
        r = put(p.port, target, data, [("Content-Type", "application/x-test")])
        check_stored(w, r, target, data, "application/x-test")
        check_one_put(w.sent(), data)


@case("POST stores like PUT; no Content-Type: application/octet-stream")
def post_stores(w):
    p = w.proxy()
    data = lib.body_bytes(70000, seed=3)
    r = put(p.port, "/post.bin", data, method="POST")
    check_stored(w, r, "/post.bin", data)
    check_one_put(w.sent(), data)


@case("PUT chunked below the part size: one PutObject, byte-exact")
def put_chunked_small(w):
    p = w.proxy()
    data = lib.body_bytes(300000, seed=4)
    body = lib.chunked(data, [1000, 65536, 7, 100000])
    r = put(p.port, "/chunked/small.bin", body,
            [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")])
    check_stored(w, r, "/chunked/small.bin", data, "text/plain")
    check_one_put(w.sent(), data)


@case("PUT chunked 12 MB, 5 MiB parts: multipart upload, byte-exact, parts checked")
def put_chunked_multipart(w):
    p = w.proxy()
    data = lib.body_bytes(12000000, seed=5)
    body = lib.chunked(data, [65536] * 200 + [12345] * 50)
    r = put(p.port, "/chunked/big.bin", body,
            [("Transfer-Encoding", "chunked"), ("Content-Type", "video/mp4")])
    check_stored(w, r, "/chunked/big.bin", data, "video/mp4")
    reqs = w.sent()
    why = ms.check_multipart(reqs, data, PART)
    check(why is None, f"multipart: {why}")
    check(r.json()["etag"].endswith("-3"), "multipart ETag")
    w.nothing_left("no/such/key")


@case("--extract file: the field stored with the part's Content-Type, image sniffed")
def extract_png(w):
    p = w.proxy("--extract", "file")
    img = lib.png(640, 480, tail=lib.body_bytes(50000, seed=6))
    body = lib.multipart([lib.part("note", b"hello"),
                          lib.part("file", img, filename="a.png", ctype="image/png"),
                          lib.part("after", b"x" * 1000)])
    r = put(p.port, "/img/a.png", body, [("Content-Type", lib.form_ctype())], method="POST")
    check_stored(w, r, "/img/a.png", img, "image/png",
                 {"format": "png", "width": 640, "height": 480})
    check_one_put(w.sent(), img)


@case("--extract file, 11 MiB field, chunked form: multipart upload")
def extract_multipart(w):
    p = w.proxy("--extract", "file")
    data = lib.body_bytes(11 * MiB, seed=7)
    form = lib.multipart([lib.part("file", data, filename="big.bin")])
    r = put(p.port, "/extract/big.bin", lib.chunked(form, [50000] * 300),
            [("Content-Type", lib.form_ctype()), ("Transfer-Encoding", "chunked")])
    check_stored(w, r, "/extract/big.bin", data)
    why = ms.check_multipart(w.sent(), data, PART)
    check(why is None, f"multipart: {why}")


@case("keys percent-decoded under the prefix (/dir/h%C3%A9llo%20w%2Bx.bin)")
def decoded_keys(w):
    p = w.proxy()
    for target in ("/dir/h%C3%A9llo%20w%2Bx.bin", "/a%2Fb/~t%25.txt?ignored=1",
                   "/%E6%97%A5%E6%9C%AC/%F0%9F%98%80", "/sp%20ace/"):
        data = lib.body_bytes(1234, seed=len(target))
        r = put(p.port, target, data)
        check_stored(w, r, target, data)
        check_one_put(w.sent(), data)
    eq(key_of("/dir/h%C3%A9llo%20w%2Bx.bin"), "up/dir/héllo w+x.bin", "decoded key")


@case("bad keys are 400 (bad %-escape, %00, empty, not UTF-8); DELETE is 405")
def bad_keys(w):
    p = w.proxy()
    for target in ("/%zz", "/a%2", "/a%00b", "/", "/%C3", "/%C0%80", "*"):
        lib.expect_reject(p.port, lib.req("PUT", target, body=b"abc"), 400, target)
    lib.expect_reject(p.port, lib.req("DELETE", "/x.bin"), 405, "DELETE")
    lib.expect_reject(p.port, lib.req("GET", "/x.bin", body=b"abc"), 400, "GET with a body")
    reqs = w.sent()
    eq(len(reqs), 0, "requests sent to the store")


@case("Expect: 100-continue: 100, then the body stored")
def expect_continue(w):
    p = w.proxy()
    data = lib.body_bytes(200000, seed=8)
    with lib.Conn(p.port) as c:
        c.send(lib.req("PUT", "/continue.bin", [("Expect", "100-continue"),
                                                ("Content-Length", str(len(data)))]))
        head = c.rd.until(b"\r\n\r\n", time.monotonic() + 5)
        check(head.startswith(b"HTTP/1.1 100 "), "first answer %r" % head[:40])
        c.send(data)
        r = c.response("PUT")
    check_stored(w, r, "/continue.bin", data)
    w.sent()


@case("session token: sent as x-amz-security-token and signed")
def session_token(w):
    os.environ["AWS_SESSION_TOKEN"] = TOKEN
    try:
        p = w.proxy("--timeout-ms", 29000)  # an option set of its own: a new process
        data = lib.body_bytes(5000, seed=9)
        r = put(p.port, "/token.bin", data)
        check_stored(w, r, "/token.bin", data)
        reqs = w.sent()
        eq(reqs[0]["h"].get("x-amz-security-token"), TOKEN, "x-amz-security-token")
    finally:
        os.environ.pop("AWS_SESSION_TOKEN", None)


# ---- reading back ----------------------------------------------------------------


@case("GET, HEAD and Range read the object back (signed GetObject / HeadObject)")
def get_head_range(w):
    p = w.proxy()
    data = lib.body_bytes(200000, seed=10)
    target = "/read/h%C3%A9llo%20w%2Bx.bin"
    check_stored(w, put(p.port, target, data, [("Content-Type", "image/x-y")]), target, data,
                 "image/x-y")
    w.sent()
    r, c = lib.exchange(p.port, lib.req("GET", target))
    c.close()
    eq(r.status, 200, "GET status")
    check(r.body == data, "GET body differs")
    r, c = lib.exchange(p.port, lib.req("HEAD", target), "HEAD")
    c.close()
    eq(r.status, 200, "HEAD status")
    eq(r.hdr("Content-Length"), str(len(data)), "HEAD Content-Length")
    eq(r.hdr("Content-Type"), "image/x-y", "HEAD Content-Type")
    eq(r.body, b"", "HEAD body")
    r, c = lib.exchange(p.port, lib.req("GET", target, [("Range", "bytes=1000-1999")]))
    c.close()
    eq(r.status, 206, "Range status")
    check(r.body == data[1000:2000], "Range body differs")
    reqs = w.sent()
    eq([x["method"] for x in reqs], ["GET", "HEAD", "GET"], "requests sent")
    eq(reqs[2]["h"].get("range"), "bytes=1000-1999", "Range passed on")
    check("range" in reqs[2]["h"]["authorization"].lower(), "Range signed")
    eq(reqs[0]["target"], f"/{BUCKET}/up/read/h%C3%A9llo%20w%2Bx.bin", "GetObject target")


@case("GET of a missing key: the store's 404 relayed")
def get_missing(w):
    p = w.proxy()
    r, c = lib.exchange(p.port, lib.req("GET", "/no/such.bin"))
    c.close()
    eq(r.status, 404, "status")
    check(b"NoSuchKey" in r.body, "body %r" % lib.short(r.body))
    w.sent()


@case("keep-alive: two PUTs and a GET on one connection")
def keep_alive(w):
    p = w.proxy()
    a, b = lib.body_bytes(1000, seed=11), lib.body_bytes(2000, seed=12)
    with lib.Conn(p.port) as c:
        c.send(lib.req("PUT", "/ka/a", body=a))
        ra = c.response("PUT")
        c.send(lib.req("PUT", "/ka/b", body=b))
        rb = c.response("PUT")
        c.send(lib.req("GET", "/ka/a"))
        rg = c.response("GET")
    check_stored(w, ra, "/ka/a", a)
    check_stored(w, rb, "/ka/b", b)
    check(rg.status == 200 and rg.body == a, "GET on the same connection")
    check(ra.hdr("Connection") is None, "Connection header on a keep-alive answer")
    w.sent()


# ---- failures leave nothing ------------------------------------------------------


@case("client gone mid-body (Content-Length): nothing stored")
def client_gone_cl(w):
    p = w.proxy()
    data = lib.body_bytes(3 * MiB, seed=13)
    with lib.Conn(p.port) as c:
        c.send(lib.req("PUT", "/gone/cl.bin", [("Content-Length", str(8 * MiB))]) + data)
        time.sleep(0.5)
        c.abort()
    time.sleep(0.5)
    w.nothing_left("up/gone/cl.bin")
    reqs = w.sent()
    check(all(not r["complete"] for r in reqs if r.get("method") == "PUT"),
          "a PutObject reached its Content-Length")


@case("client gone mid-part (chunked, multipart begun): upload aborted, nothing left")
def client_gone_multipart(w):
    p = w.proxy()
    data = lib.body_bytes(7 * MiB, seed=14)
    with lib.Conn(p.port) as c:
        c.send(lib.req("PUT", "/gone/multi.bin", [("Transfer-Encoding", "chunked")]) +
               lib.chunked(data, [65536] * 200)[:-5])
        time.sleep(1.0)
        c.abort()
    lib.wait_for(lambda: not w.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), 5)
    w.nothing_left("up/gone/multi.bin")
    reqs = w.sent()
    eq(len([r for r in reqs if r.get("method") == "DELETE"]), 1, "AbortMultipartUpload sent")


@case("truncated body (client half-closes before the end): nothing stored")
def truncated(w):
    p = w.proxy()
    data = lib.body_bytes(6 * MiB, seed=15)
    for target, head, body in (
            ("/cut/cl.bin", [("Content-Length", str(7 * MiB))], data),
            ("/cut/chunked.bin", [("Transfer-Encoding", "chunked")],
             lib.chunked(data, [65536] * 200)[:-5])):
        with lib.Conn(p.port) as c:
            c.send(lib.req("PUT", target, head) + body)
            c.sock.shutdown(socket.SHUT_WR)
            check(c.closed(10), f"{target}: connection not closed")
        lib.wait_for(lambda: not w.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), 5)
        w.nothing_left(key_of(target))
    w.sent()


@case("malformed chunk mid-body: 400, nothing stored")
def malformed(w):
    p = w.proxy()
    data = lib.body_bytes(6 * MiB, seed=16)
    body = lib.chunked(data, [65536] * 200)[:-5] + b"zz\r\n"
    r = lib.expect_reject(p.port, lib.req("PUT", "/bad/chunk.bin",
                                          [("Transfer-Encoding", "chunked")], body), 400,
                          "malformed chunk", timeout=20)
    lib.wait_for(lambda: not w.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), 5)
    w.nothing_left("up/bad/chunk.bin")
    w.sent()
    del r


@case("over --max-body-bytes: 413 (chunked: the multipart upload begun is aborted)")
def over_limit(w):
    p = w.proxy("--max-body-bytes", 6 * MiB)
    data = lib.body_bytes(8 * MiB, seed=17)
    lib.expect_reject(p.port, lib.req("PUT", "/big/cl.bin", body=data), 413, "Content-Length",
                      timeout=20)
    lib.expect_reject(p.port, lib.req("PUT", "/big/chunked.bin", [("Transfer-Encoding", "chunked")],
                                      lib.chunked(data, [65536] * 200)), 413, "chunked",
                      timeout=20)
    lib.wait_for(lambda: not w.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), 5)
    w.nothing_left("up/big/cl.bin")
    w.nothing_left("up/big/chunked.bin")
    reqs = w.sent()
    eq([r["method"] for r in reqs if r.get("method") in ("PUT", "DELETE")], ["PUT", "DELETE"],
       "part and abort sent for the chunked body")


# ---- the store refuses -----------------------------------------------------------


def expect_502(port, target, body, code, headers=()):
    r = lib.expect_reject(port, lib.req("PUT", target, list(headers), body), 502, code,
                          timeout=20)
    eq(r.hdr("Content-Type"), "application/json", "502's Content-Type")
    j = r.json()
    eq(sorted(j), ["error", "message"], "502 JSON fields")
    eq(j["error"], code, "error")
    check(j["message"], "empty message")
    return j


@case("wrong credentials: 502 InvalidAccessKeyId (moto with authentication on)")
def wrong_credentials(w):
    port = ms.free_port()
    m = w._moto(port, {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    w.extra.append(m)
    lib.wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 15)
    os.environ["AWS_ACCESS_KEY_ID"] = "AKIAWRONGWRONGWRONG1"
    try:
        p = w.proxy(store=f"http://127.0.0.1:{port}/{BUCKET}")
    finally:
        os.environ["AWS_ACCESS_KEY_ID"] = ms.AKID
    expect_502(p.port, "/k1", lib.body_bytes(100000), "InvalidAccessKeyId")
    expect_502(p.port, "/k2", lib.chunked(lib.body_bytes(100000)), "InvalidAccessKeyId",
               [("Transfer-Encoding", "chunked")])


@case("no such bucket: 502 NoSuchBucket; multipart refused at Create")
def no_bucket(w):
    p = w.proxy(store=f"http://127.0.0.1:{w.rec.port}/no-such-bucket")
    expect_502(p.port, "/k", lib.body_bytes(1000), "NoSuchBucket")
    expect_502(p.port, "/k", lib.chunked(lib.body_bytes(6 * MiB), [65536] * 100), "NoSuchBucket",
               [("Transfer-Encoding", "chunked")])
    w.sent()


@case("no prefix: PUT /K stores K")
def no_prefix(w):
    p = w.proxy(store=f"http://127.0.0.1:{w.rec.port}/{BUCKET}/")
    data = lib.body_bytes(3000, seed=20)
    r = put(p.port, "/top%20level.bin", data)
    eq(r.status, 200, "status")
    eq(r.json()["key"], "top level.bin", "key")
    check(w.stored("top level.bin") == data, "stored object differs")
    w.sent()


class FailingStore:
    """A store that answers every request with 500 InternalError (and
    closes), as S3 does when it fails."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.methods = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>"
                b"<Message>We encountered an internal error &amp; could not \"store\" it."
                b"</Message></Error>")
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                try:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        d = c.recv(65536)
                        if not d:
                            break
                        head += d
                    self.methods.append(head.split(b" ", 1)[0].decode())
                    c.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml"
                              b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
                              + body)
                    c.shutdown(socket.SHUT_WR)
                    while c.recv(65536):
                        pass
                except OSError:
                    pass


@case("the store answers 500: 502 with its Code and Message, JSON-escaped")
def store_5xx(w):
    st = FailingStore()
    p = w.proxy(store=f"http://127.0.0.1:{st.port}/{BUCKET}")
    for head, body in (([], lib.body_bytes(200000)),
                       ([("Transfer-Encoding", "chunked")],
                        lib.chunked(lib.body_bytes(6 * MiB), [65536] * 100))):
        j = expect_502(p.port, "/k", body, "InternalError", head)
        eq(j["message"], 'We encountered an internal error & could not "store" it.', "message")
    eq(st.methods, ["PUT", "POST"], "requests: PutObject, CreateMultipartUpload")
    st.srv.close()


@case("store unreachable: 502 StoreUnreachable")
def unreachable(w):
    p = w.proxy(store=f"http://127.0.0.1:{ms.free_port()}/{BUCKET}")
    expect_502(p.port, "/k", lib.body_bytes(1000), "StoreUnreachable")


# ---- start-up --------------------------------------------------------------------


@case("start-up: missing credentials or a bad --s3 URL exit 2 with a message")
def startup(w):
    url = f"http://127.0.0.1:{w.rec.port}/{BUCKET}"
    for drop, args, want in (
            ("AWS_ACCESS_KEY_ID", ["--s3", url], "AWS_ACCESS_KEY_ID"),
            ("AWS_SECRET_ACCESS_KEY", ["--s3", url], "AWS_SECRET_ACCESS_KEY"),
            (None, ["--s3", "ftp://x/b"], "--s3"),
            (None, ["--s3", url + "x/", "--s3-part-size", "1000"], "--s3-part-size"),
            (None, ["--s3", url, "--max-memory", str(4 * MiB)], "--max-memory"),
            (None, ["--s3", url, "--upstream", "127.0.0.1:1"], "usage")):
        env = dict(os.environ)
        if drop:
            env.pop(drop)
        r = subprocess.run([lib.PROXY_BIN, "--listen", "127.0.0.1:0"] + args, env=env,
                           capture_output=True, timeout=10)
        eq(r.returncode, 2, f"exit status without {drop or args}")
        check(want in r.stderr.decode(), f"stderr {r.stderr[:300]!r} does not name {want}")


# ---- memory ----------------------------------------------------------------------


def upload_rss(w, p, target, head, body):
    lib.reset_hwm(p.pid)
    with lib.Conn(p.port, timeout=120) as c:
        c.send(lib.req("PUT", target, head))
        for i in range(0, len(body), 1 << 20):
            c.send(body[i:i + (1 << 20)])
        r = c.response("PUT", 120)
    eq(r.status, 200, f"status {lib.short(r.body)}")
    return lib.vmhwm_kib(p.pid)


@case("memory: 40 MiB Content-Length upload, peak RSS <= 4 MiB", timeout=180)
def memory_known(w):
    if lib.SAN:
        print("     (skipped under the sanitizers: their memory is not the proxy's)")
        return
    p = w.proxy("--timeout-ms", 60000)
    data = lib.body_bytes(40 * MiB, seed=18)
    hwm = upload_rss(w, p, "/mem/cl.bin", [("Content-Length", str(len(data)))], data)
    check(w.stored("up/mem/cl.bin") == data, "stored object differs")
    w.sent()
    check(hwm <= 4096, f"VmHWM {hwm} KiB > 4 MiB")
    print(f"     (peak RSS {hwm} KiB)")


@case("memory: 40 MiB chunked upload, 5 MiB parts, --max-memory 8 MiB: RSS inside it",
      timeout=180)
def memory_unknown(w):
    if lib.SAN:
        print("     (skipped under the sanitizers: their memory is not the proxy's)")
        return
    p = w.proxy("--max-memory", 8 * MiB, "--timeout-ms", 60000)
    data = lib.body_bytes(40 * MiB, seed=19)
    hwm = upload_rss(w, p, "/mem/chunked.bin", [("Transfer-Encoding", "chunked")],
                     lib.chunked(data, [65536] * 700))
    check(w.stored("up/mem/chunked.bin") == data, "stored object differs")
    w.sent()
    # the budget, plus the program itself (about 1.5 MiB) and malloc slack
    check(hwm <= 8 * 1024 + 3 * 1024, f"VmHWM {hwm} KiB past 8 MiB + 3 MiB")
    print(f"     (peak RSS {hwm} KiB)")


@case("4 concurrent chunked uploads, budget for 2 parts: they take turns, all stored",
      timeout=120)
def concurrent_parts(w):
    p = w.proxy("--max-memory", 12 * MiB)
    datas = [lib.body_bytes(12000000, seed=30 + i) for i in range(4)]
    res = [None] * 4

    def one(i):
        try:
            res[i] = put(p.port, f"/conc/{i}.bin", lib.chunked(datas[i], [65536] * 200),
                         [("Transfer-Encoding", "chunked")])
        except Exception as e:
            res[i] = e
    lib.reset_hwm(p.pid)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(100)
    hwm = lib.vmhwm_kib(p.pid)
    for i in range(4):
        check(not isinstance(res[i], Exception) and res[i] is not None, f"upload {i}: {res[i]}")
        check_stored(w, res[i], f"/conc/{i}.bin", datas[i])
    w.sent()
    if not lib.SAN:
        check(hwm <= 12 * 1024 + 3 * 1024, f"VmHWM {hwm} KiB past 12 MiB + 3 MiB")


@case("no turn for an upload of unknown length within --timeout-ms: 503, nothing stored")
def no_turn(w):
    # room for one part: the first chunked upload holds the only turn
    p = w.proxy("--max-memory", PART + 4 * 65536, "--timeout-ms", 1500)
    with lib.Conn(p.port) as first:
        first.send(lib.req("PUT", "/turn/first.bin", [("Transfer-Encoding", "chunked")]))
        first.send(b"10000\r\n" + bytes(65536) + b"\r\n")
        done = threading.Event()
        sent = [65536]

        def trickle():  # the first upload stays alive, well inside its idle timeout
            while not done.wait(0.2):
                first.send(b"1\r\nx\r\n")
                sent[0] += 1
        t = threading.Thread(target=trickle)
        t.start()
        try:
            time.sleep(0.2)
            t0 = time.monotonic()
            lib.expect_reject(p.port, lib.req("PUT", "/turn/second.bin",
                                              [("Transfer-Encoding", "chunked")],
                                              lib.chunked(b"abc")), 503, "second upload")
            waited = time.monotonic() - t0
        finally:
            done.set()
            t.join()
        first.send(b"0\r\n\r\n")
        rf = first.response("PUT")
    check(1.3 < waited < 5, f"503 after {waited:.1f}s, not about --timeout-ms")
    eq(rf.status, 200, "the first upload")
    eq(rf.json()["size"], sent[0], "first upload's size")
    w.nothing_left("up/turn/second.bin")
    w.sent()


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        w = World()
    except Exception as e:
        print(f"FAIL s3proxy: could not start moto ({e})")
        print("0 passed, 1 failed")
        return 1

    def alarm(*a):
        raise TimeoutError("case timed out")
    signal.signal(signal.SIGALRM, alarm)
    passed = failed = 0
    try:
        for name, fn, tmo in CASES:
            if only not in name:
                continue
            signal.alarm(tmo)
            try:
                fn(w)
                err = None
            except Exception as e:
                err = f"{type(e).__name__}: {e}"
                if os.environ.get("S3_SUITE_VERBOSE"):
                    traceback.print_exc()
            finally:
                signal.alarm(0)
            dead = [f"proxy {k} died" for k, p in w.proxies.items() if not p.alive()]
            if dead:
                err = (err or "") + "; ".join(dead)
            if err:
                failed += 1
                print(f"FAIL {name}: {' '.join(err.split())[:1000]}", flush=True)
                w.rec.take()
            else:
                passed += 1
                print(f"ok   {name}", flush=True)
    finally:
        for prob in w.close():
            failed += 1
            print(f"FAIL teardown: {prob}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
