#!/usr/bin/env python3
"""Integration suite of the S3 upload sink against moto (a real S3 API).

Starts `python3 -m moto.server` on a free port and a recording TCP proxy in
front of it, uploads files through the C driver (tests/s3/driver.c:
build/tests/s3-driver) and checks with boto3:

  - objects byte-exact, ETag and size as the sink reports them, for known
    lengths (PutObject, aws-chunked with a trailing checksum, unsigned and
    signed-chunk modes) and unknown lengths (multipart above part_size, one
    PutObject below), keys with spaces, Unicode, '+', '=', '&', '%', '~';
  - the checksum moto reports (ChecksumSHA256, composite "-N" for
    multipart) against the SHA-256s of the data;
  - aborted uploads (input truncated, sink aborted mid-way, Complete
    refused with EntityTooSmall) leave no object and nothing in
    list_multipart_uploads; a wrong bucket is NoSuchBucket;
  - moto checks no signatures, so every request the sink sent is checked
    here from the proxy's recording: the Authorization value recomputed
    with botocore's S3SigV4Auth, the aws-chunked framing (chunk sizes, data,
    chunk signatures and the trailer) rebuilt from the AWS spec, UploadPart
    checksums and payload hashes, the CompleteMultipartUpload XML.

Ends with "N passed, N failed". Fails (never skips) without moto or boto3.
Usage: moto_suite.py --driver build/tests/s3-driver
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

try:
    import boto3
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials
    import moto  # noqa: F401
except ImportError as e:
    print(f"FAIL s3: moto or boto3 is not importable ({e}).")
    print("  Install them with: pip install 'moto[server]' boto3")
    print("0 passed, 1 failed")
    sys.exit(1)

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EMPTY = hashlib.sha256(b"").hexdigest()
MiB = 1 << 20
CHUNK = 65536

passed = failed = 0


def ok(name):
    global passed
    passed += 1
    print(f"ok   {name}")


def bad(name, why):
    global failed
    failed += 1
    print(f"FAIL {name}: {why}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def moto_client(port, bucket):
    """A boto3 client of the moto server on port, once it answers, with
    bucket created."""
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=AKID,
                      aws_secret_access_key=SECRET, region_name="us-east-1",
                      config=Config(retries={"max_attempts": 1}))
    for _ in range(100):
        try:
            s3.list_buckets()
            break
        except Exception:
            time.sleep(0.1)
    else:
        raise RuntimeError("moto did not start")
    s3.create_bucket(Bucket=bucket)
    return s3


# ---- recording proxy ---------------------------------------------------------------


class Recorder:
    """Relays TCP connections to moto and keeps what each client sent."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.conns = []
        self.active = 0
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.srv.accept()
            u = socket.create_connection(("127.0.0.1", self.upstream))
            rec = bytearray()
            with self.lock:
                self.conns.append(rec)
                self.active += 2
            threading.Thread(target=self.pipe, args=(c, u, rec), daemon=True).start()
            threading.Thread(target=self.pipe, args=(u, c, None), daemon=True).start()

    def pipe(self, a, b, rec):
        try:
            while True:
                d = a.recv(1 << 16)
                if not d:
                    break
                if rec is not None:
                    rec += d
                b.sendall(d)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self.lock:
            self.active -= 1

    def take(self):
        end = time.time() + 5
        while time.time() < end:
            with self.lock:
                if self.active == 0:
                    break
            time.sleep(0.02)
        with self.lock:
            conns, self.conns = self.conns, []
        return [bytes(c) for c in conns]


def split_requests(data):
    """HTTP/1.1 requests with Content-Length bodies, in order; a request cut
    short comes back with complete=False."""
    out = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            out.append({"complete": False, "raw": data})
            break
        lines = data[:end].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = [tuple(x.split(": ", 1)) for x in lines[1:]]
        h = {k.lower(): v for k, v in headers}
        n = int(h.get("content-length", "0"))
        body = data[end + 4:end + 4 + n]
        out.append({"method": method, "target": target, "headers": headers, "h": h,
                    "body": body, "complete": len(body) == n})
        data = data[end + 4 + n:]
    return out


# ---- checks of what was sent -------------------------------------------------------------


class FixedPayloadAuth(botocore.auth.S3SigV4Auth):
    def __init__(self, creds, region, payload):
        super().__init__(creds, "s3", region)
        self._payload = payload

    def payload(self, request):
        return self._payload


def check_signature(rq, token):
    h = rq["h"]
    when = datetime.datetime.strptime(h["x-amz-date"], "%Y%m%dT%H%M%SZ")
    botocore.auth.get_current_datetime = lambda *a, **k: when
    path, _, query = rq["target"].partition("?")
    req = AWSRequest(method=rq["method"], url="http://" + h["host"] + path,
                     params=urllib.parse.parse_qsl(query, keep_blank_values=True))
    skip = {"authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
    for n, v in rq["headers"]:
        if n.lower() not in skip:
            req.headers[n] = v
    auth = FixedPayloadAuth(Credentials(AKID, SECRET, token), "us-east-1",
                            h["x-amz-content-sha256"])
    auth.add_auth(req)
    want = req.headers["Authorization"].replace(", ", ",")
    if h.get("authorization") != want:
        return f"Authorization {h.get('authorization')!r} != botocore's {want!r}"
    if token and h.get("x-amz-security-token") != token:
        return "x-amz-security-token missing"
    return None


def signing_key(date8):
    k = hmac.new(("AWS4" + SECRET).encode(), date8.encode(), hashlib.sha256).digest()
    for part in ("us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def expected_chunked(data, mode, seed, date):
    """The aws-chunked body per the AWS spec, 64 KiB chunks."""
    k = signing_key(date[:8])
    scope = f"{date[:8]}/us-east-1/s3/aws4_request"

    def sign(kind, prev, *rest):
        sts = "\n".join([kind, date, scope, prev, *rest])
        return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()

    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] + [b""]
    out, prev = [], seed
    for ch in chunks:
        if mode == "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
            out.append(b"%x\r\n" % len(ch))
        else:
            prev = sign("AWS4-HMAC-SHA256-PAYLOAD", prev, EMPTY, hashlib.sha256(ch).hexdigest())
            out.append(b"%x;chunk-signature=%s\r\n" % (len(ch), prev.encode()))
        if ch:
            out += [ch, b"\r\n"]
    field = "x-amz-checksum-sha256:" + base64.b64encode(hashlib.sha256(data).digest()).decode()
    out.append(field.encode() + b"\r\n")
    if mode != "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
        tsig = sign("AWS4-HMAC-SHA256-TRAILER", prev,
                    hashlib.sha256((field + "\n").encode()).hexdigest())
        out.append(b"x-amz-trailer-signature:" + tsig.encode() + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def b64sha(b):
    return base64.b64encode(hashlib.sha256(b).digest()).decode()


def check_put(rq, data):
    h = rq["h"]
    mode = h["x-amz-content-sha256"]
    if h.get("content-encoding") != "aws-chunked" or \
            h.get("x-amz-trailer") != "x-amz-checksum-sha256":
        return "PutObject without aws-chunked / x-amz-trailer"
    if int(h["x-amz-decoded-content-length"]) != len(data):
        return "x-amz-decoded-content-length"
    if not rq["complete"]:
        return "body shorter than Content-Length"
    seed = h["authorization"].rsplit("Signature=", 1)[1]
    want = expected_chunked(data, mode, seed, h["x-amz-date"])
    if rq["body"] != want:
        return f"aws-chunked body differs from the spec's ({len(rq['body'])} vs {len(want)} bytes)"
    return None


def check_multipart(reqs, data, part_size):
    """Create, parts, Complete: checksums, payload hashes, XML."""
    create = [r for r in reqs if r["method"] == "POST" and re.search(r"\?uploads=?$", r["target"])]
    parts = [r for r in reqs if r["method"] == "PUT" and "partNumber=" in r["target"]]
    complete = [r for r in reqs if r["method"] == "POST" and "uploadId=" in r["target"]]
    if len(create) != 1 or create[0]["h"].get("x-amz-checksum-algorithm") != "SHA256":
        return "CreateMultipartUpload with x-amz-checksum-algorithm: SHA256"
    want_parts = [data[i:i + part_size] for i in range(0, len(data), part_size)]
    if len(parts) != len(want_parts):
        return f"{len(parts)} UploadPart requests, {len(want_parts)} expected"
    for i, (rq, want) in enumerate(zip(parts, want_parts)):
        if f"partNumber={i + 1}&" not in rq["target"] + "&":
            return f"part {i + 1}: target {rq['target']}"
        if rq["body"] != want:
            return f"part {i + 1}: body differs"
        if rq["h"].get("x-amz-checksum-sha256") != b64sha(want):
            return f"part {i + 1}: x-amz-checksum-sha256"
        if rq["h"].get("x-amz-content-sha256") != hashlib.sha256(want).hexdigest():
            return f"part {i + 1}: x-amz-content-sha256 is not the part's SHA-256"
    if len(complete) != 1:
        return "no CompleteMultipartUpload"
    xml = complete[0]["body"].decode()
    if complete[0]["h"].get("x-amz-content-sha256") != hashlib.sha256(complete[0]["body"]).hexdigest():
        return "Complete payload hash"
    nums = re.findall(r"<PartNumber>(\d+)</PartNumber>", xml)
    sums = re.findall(r"<ChecksumSHA256>([^<]*)</ChecksumSHA256>", xml)
    if nums != [str(i + 1) for i in range(len(want_parts))] or \
            sums != [b64sha(p) for p in want_parts] or xml.count("<ETag>") != len(want_parts):
        return f"Complete XML: {xml[:300]}"
    return None


def check_all(reqs, token):
    for rq in reqs:
        if not rq.get("method"):
            continue
        why = check_signature(rq, token)
        if why:
            return f"{rq['method']} {rq['target']}: {why}"
        if "form-urlencoded" in rq["h"].get("content-type", ""):
            return "sent application/x-www-form-urlencoded"
    return None


# ---- the suite -------------------------------------------------------------------


class Suite:
    def __init__(self, driver):
        self.driver = driver
        self.moto_port = free_port()
        self.moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-p",
                                      str(self.moto_port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.s3 = moto_client(self.moto_port, "sluice-test")
        self.rec = Recorder(self.moto_port)

    def close(self):
        self.moto.terminate()
        self.moto.wait()

    def upload(self, key, data, *args, bucket="sluice-test", token=None):
        self.rec.take()
        env = dict(os.environ)
        env.pop("S3_SESSION_TOKEN", None)
        if token:
            env["S3_SESSION_TOKEN"] = token
        p = subprocess.Popen([self.driver, "127.0.0.1", str(self.rec.port), bucket, key,
                              *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        try:
            out, err = p.communicate(data, timeout=60)
        except subprocess.TimeoutExpired:
            if os.environ.get("S3_SUITE_GDB"):
                subprocess.run(["gdb", "-p", str(p.pid), "-batch", "-ex", "thread apply all bt"])
            p.kill()
            out, err = p.communicate()
            err += b" (timed out)"
        try:
            res = json.loads(out.decode().strip().splitlines()[-1])
        except Exception:
            res = {"done": False, "error": f"no result (exit {p.returncode}): "
                                           f"{err.decode()[-300:]}"}
        reqs = [r for c in self.rec.take() for r in split_requests(c)]
        return p.returncode, res, reqs

    def stored(self, key):
        try:
            return self.s3.get_object(Bucket="sluice-test", Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None

    def no_uploads(self):
        return not self.s3.list_multipart_uploads(Bucket="sluice-test").get("Uploads")

    def known(self, name, key, data, *args, token=None):
        rc, res, reqs = self.upload(key, data, "--length", len(data), *args, token=token)
        why = None
        if rc != 0 or not res.get("done"):
            why = f"upload failed: {res}"
        elif self.stored(key) != data:
            why = "stored object differs"
        elif res["sha256"] != hashlib.sha256(data).hexdigest() or res["size"] != len(data):
            why = f"result sha256/size {res}"
        elif res["etag"] != self.s3.head_object(Bucket="sluice-test", Key=key)["ETag"].strip('"'):
            why = "ETag differs from head_object's"
        else:
            puts = [r for r in reqs if r.get("method") == "PUT"]
            why = (check_all(reqs, token) or
                   (len(puts) != 1 and f"{len(puts)} PUT requests") or check_put(puts[0], data))
            if not why:
                why = self.check_checksum(key, data, None)
        bad(name, why) if why else ok(name)

    def unknown(self, name, key, data, part_size=None, *args):
        extra = ("--part-size", part_size) if part_size else ()
        rc, res, reqs = self.upload(key, data, *extra, *args)
        ps = part_size or 8 * MiB
        why = None
        if rc != 0 or not res.get("done"):
            why = f"upload failed: {res}"
        elif self.stored(key) != data:
            why = "stored object differs"
        elif res["sha256"] != hashlib.sha256(data).hexdigest():
            why = "result sha256"
        else:
            why = check_all(reqs, None)
            if not why and len(data) < ps:
                puts = [r for r in reqs if r.get("method") == "PUT"]
                why = (len(reqs) != 1 and f"{len(reqs)} requests for a small object") or \
                      check_put(puts[0], data)
            elif not why:
                n = (len(data) + ps - 1) // ps
                etag = self.s3.head_object(Bucket="sluice-test", Key=key)["ETag"].strip('"')
                why = (check_multipart(reqs, data, ps) or
                       (res["parts"] != n and f"parts {res['parts']} != {n}") or
                       (not res["etag"].endswith(f"-{n}") and f"ETag {res['etag']}") or
                       (res["etag"] != etag and f"ETag {res['etag']} != {etag}") or
                       self.check_checksum(key, data, ps))
            if not why and not self.no_uploads():
                why = "a multipart upload is left"
        bad(name, why) if why else ok(name)

    def check_checksum(self, key, data, part_size):
        """The checksum moto reports: the object's SHA-256, or for multipart
        the SHA-256 of the parts' digests with "-N"."""
        h = self.s3.head_object(Bucket="sluice-test", Key=key, ChecksumMode="ENABLED")
        got = h.get("ChecksumSHA256")
        if part_size and len(data) >= part_size:
            parts = [data[i:i + part_size] for i in range(0, len(data), part_size)]
            comp = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
            want = base64.b64encode(comp).decode() + f"-{len(parts)}"
            if got is None or got.split("-")[0] != want.split("-")[0]:
                return f"ChecksumSHA256 {got} != {want}"
            return None
        elif got is not None and got != b64sha(data):
            return f"ChecksumSHA256 {got} != {b64sha(data)}"
        return None

    def aborted(self, name, key, data, *args, want_delete=False):
        rc, res, reqs = self.upload(key, data, *args)
        deletes = [r for r in reqs if r.get("method") == "DELETE"]
        why = None
        if rc == 0 or res.get("done"):
            why = f"upload completed: {res}"
        elif self.stored(key) is not None:
            why = "an object was stored"
        elif not self.no_uploads():
            why = "a multipart upload is left"
        elif res.get("cleanup") != 0 or res.get("cleanup_rc") != 0:
            why = f"cleanup did not end clean: {res}"
        elif want_delete and len(deletes) != 1:
            why = f"{len(deletes)} AbortMultipartUpload requests"
        else:
            why = check_all(reqs, None)
            # a cut PutObject never reached its Content-Length
            for r in reqs:
                if r.get("method") == "PUT" and "partNumber" not in r["target"] and r["complete"]:
                    why = why or "a PutObject was sent whole"
        bad(name, why) if why else ok(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", default="build/tests/s3-driver")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rnd = random.Random(args.seed)

    def blob(n):
        return rnd.randbytes(n)

    try:
        t = Suite(args.driver)
    except Exception as e:
        print(f"FAIL s3: could not start moto ({e}); pip install 'moto[server]' boto3")
        print("0 passed, 1 failed")
        return 1
    try:
        # known length: one PutObject, aws-chunked with the checksum trailer
        for n in (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 300000, 9 * MiB):
            t.known(f"known length {n}", f"known/{n}.bin", blob(n))
        for n in (0, 100000, 9 * MiB + 3):
            t.known(f"known length {n}, signed chunks", f"signed/{n}.bin", blob(n), "--signed")
        t.known("session token signed", "token.bin", blob(5000),
                token="FQoGZXIvYXdzEXAMPLETOKEN/+=")
        for key in ("dir/a b.txt", "ключ/日本 😀.bin", "a+b=c&d.txt", "~tilde%25 (1).txt"):
            t.known(f"key {key!r}", key, blob(1234))
        # unknown length: multipart above part_size, one PutObject below
        t.unknown("unknown length 0", "unknown/0", b"")
        t.unknown("unknown length 1000", "unknown/1000", blob(1000))
        t.unknown("unknown length < part_size", "unknown/small", blob(5 * MiB - 1), 5 * MiB)
        t.unknown("unknown length = part_size", "unknown/one", blob(5 * MiB), 5 * MiB)
        t.unknown("unknown length 12 MB, 5 MiB parts", "unknown/12m", blob(12000000), 5 * MiB)
        t.unknown("unknown length 17 MiB, default parts", "unknown/17m", blob(17 * MiB + 5))
        t.unknown("unknown length, key with spaces", "multi part/é ü+.bin", blob(11 * MiB),
                  5 * MiB)
        # failures leave nothing behind
        t.aborted("known length, input truncated", "cut/known", blob(300000),
                  "--length", 400000, "--source", 400000)
        t.aborted("known length, aborted mid-way", "cut/abort", blob(24 * MiB),
                  "--length", 24 * MiB, "--abort-at", MiB)
        t.aborted("unknown length, truncated before the first part", "cut/small", blob(100000),
                  "--source", 200000, "--part-size", 5 * MiB)
        t.aborted("multipart, input truncated", "cut/multi", blob(12 * MiB),
                  "--source", 20 * MiB, "--part-size", 5 * MiB, want_delete=True)
        t.aborted("multipart, aborted mid-part", "cut/multi2", blob(12 * MiB),
                  "--part-size", 5 * MiB, "--abort-at", 7 * MiB, want_delete=True)
        # the store refuses to complete (parts under its 5 MiB minimum): the
        # upload it began is aborted
        rc, res, reqs = t.upload("tiny/parts", blob(300000), "--tiny-parts", 100000)
        deletes = [r for r in reqs if r.get("method") == "DELETE"]
        if rc == 1 and res.get("code") == "EntityTooSmall" and res.get("parts") == 3 and \
                res.get("cleanup") == 0 and len(deletes) == 1 and t.no_uploads() and \
                t.stored("tiny/parts") is None and not check_all(reqs, None):
            ok("Complete refused (EntityTooSmall): the upload is aborted")
        else:
            bad("Complete refused", f"{res} deletes={len(deletes)} uploads_left={not t.no_uploads()}")
        # errors
        for args_, what in (((("--length", 10)), "PutObject"), ((), "multipart")):
            rc, res, _ = t.upload("k", blob(10), *args_, bucket="no-such-bucket")
            if rc == 1 and res.get("code") == "NoSuchBucket" and res.get("status") == 404 \
                    and res.get("error") == "SLUICE_ES3_ERROR" and res.get("message"):
                ok(f"wrong bucket ({what}): NoSuchBucket")
            else:
                bad(f"wrong bucket ({what})", res)
        rc, res, _ = t.upload("noreconnect", blob(11 * MiB), "--part-size", 5 * MiB,
                              "--no-reconnect")
        if rc == 1 and res.get("sink_error") == "SLUICE_EPEERCLOSED" and res.get("cleanup") == 2:
            ok("no connect callback: moto's Connection: close is SLUICE_EPEERCLOSED")
        else:
            bad("no connect callback", res)
        for u in t.s3.list_multipart_uploads(Bucket="sluice-test").get("Uploads", []):
            t.s3.abort_multipart_upload(Bucket="sluice-test", Key=u["Key"], UploadId=u["UploadId"])
    finally:
        t.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
