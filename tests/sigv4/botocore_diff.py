#!/usr/bin/env python3
"""Differential test of sluice's SigV4 signer against botocore's.

Generates random S3 requests (keys with spaces, unicode, '+', '~', '%' and
empty or dot segments; query strings with empty values and repeated names;
session token on and off; headers with odd whitespace, mixed case, repeats
and fields that must not be signed; all payload modes), signs each with the
C driver (build/tests/sigv4-driver, tests/sigv4/driver.c) and with
botocore's S3SigV4Auth at the same fixed time, and compares:

  - the Authorization value (botocore separates its three parts with ", ",
    AWS's S3 examples and sluice with ","; that separator is normalised,
    nothing else);
  - the canonical request and the request target;
  - for streaming payloads, the whole aws-chunked body the driver frames
    (random body, random chunk size) against one built here from the AWS
    spec with hmac/hashlib, chaining from botocore's seed signature, and its
    length against sluice_sigv4_encoded_length(); in the unsigned-trailer
    mode also against botocore's own AwsChunkedWrapper.

Prints one line per failure and ends with "N passed, N failed" (one case per
request). Usage: botocore_diff.py [--driver PATH] [-n N] [--seed S]
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import io
import os
import random
import subprocess
import sys

try:
    import botocore.auth
    import botocore.httpchecksum
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.utils import percent_encode
except ImportError as e:
    print(f"FAIL sigv4: botocore is not importable ({e}).")
    print("  Install it with `pip install boto3` (or `apt-get install python3-botocore`).")
    print("0 passed, 1 failed")
    sys.exit(1)

EMPTY = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
S_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
S_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
S_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING = (S_UNSIGNED_TRAILER, S_SIGNED, S_SIGNED_TRAILER)

# ---- random requests ---------------------------------------------------------

KEY_PIECES = (
    list("abcxyzABCXYZ0189") + [" ", "  ", "+", "~", "%", "%20", "/", "//", "-", "_", ".",
    "..", "!", "*", "'", "(", ")", "=", "&", "?", "#", ":", "@", ",", ";", "$", "[", "]",
    "é", "ключ", "日本", "😀", "\u00a0", "\t", "file.txt", "photos/", "a+b=c"]
)
QUERY_NAMES = ["prefix", "max-keys", "delimiter", "uploads", "uploadId", "partNumber",
               "list-type", "continuation-token", "versionId", "acl", "a", "A", "a b",
               "x+y", "~t", "%", "ü", "0", "=", ""]
QUERY_VALUES = ["", "1", "10", "2", "J", "a/b", "a b", "a+b", "~", "%2F", "é/日本", "=", "&",
                "x" * 40, "/"]
HEADER_NAMES = ["Content-Type", "content-type", "Content-Length", "Range", "Cache-Control",
                "If-Match", "If-None-Match", "x-amz-meta-a", "X-Amz-Meta-A", "X-AMZ-META-B",
                "x-amz-meta-tag", "x-amz-storage-class", "x-amz-acl", "Content-MD5",
                "Content-Encoding", "x-amz-decoded-content-length", "x-amz-trailer",
                "x-amz-checksum-sha256",
                # never signed: both signers must skip them
                "User-Agent", "Expect", "Transfer-Encoding", "Connection", "X-Amzn-Trace-Id"]
# whitespace is SP and HTAB only: botocore's str.split() also collapses
# Unicode spaces (NBSP...), which sluice keeps as bytes (docs/s3.md)
VALUE_WORDS = ["text/plain", "bytes=0-9", "max-age=60", '"etag"', "*", "REDUCED_REDUNDANCY",
               "é", "日本語", "a,b", "k=v;q=1", "0", "100-continue", "x" * 30, "€"]


def rand_ws(r):
    return "".join(r.choice(" \t") for _ in range(r.choice([0, 0, 1, 2, 3])))


def rand_value(r):
    words = [r.choice(VALUE_WORDS) for _ in range(r.choice([0, 1, 1, 2, 3]))]
    out = rand_ws(r)
    for i, w in enumerate(words):
        if i:
            out += r.choice([" ", "  ", "\t", " \t "])
        out += w
    return out + rand_ws(r)


def rand_key(r):
    n = r.choice([0, 1, 2, 3, 5, 8, 12, 20])
    return "".join(r.choice(KEY_PIECES) for _ in range(n))


def rand_secret(r):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=-_"
    return "".join(r.choice(alphabet) for _ in range(r.choice([1, 20, 40, 59, 60, 61, 64, 100])))


def rand_case(r, i, streaming_share):
    payload_kind = r.random()
    if payload_kind < streaming_share:
        payload = STREAMING[i % 3]
    else:
        payload = r.choice([EMPTY, UNSIGNED, hashlib.sha256(str(i).encode()).hexdigest()])
    host = r.choice(["s3.amazonaws.com", "examplebucket.s3.amazonaws.com",
                     "s3.eu-west-3.amazonaws.com", "127.0.0.1:9000", "minio.local"])
    bucket = r.choice([None, "examplebucket", "my.bucket-1", "b"])
    headers = [(r.choice(["Host", "host", "HOST"]), r.choice(["", " ", "\t"]) + host +
                r.choice(["", "  "]))]
    for _ in range(r.choice([0, 1, 2, 3, 5, 8])):
        headers.append((r.choice(HEADER_NAMES), rand_value(r)))
    r.shuffle(headers)
    query = [(r.choice(QUERY_NAMES), r.choice(QUERY_VALUES))
             for _ in range(r.choice([0, 0, 1, 2, 3, 6]))]
    if query and r.random() < 0.3:
        query.append(query[0])  # the same pair twice
    when = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=r.randrange(0, 4102444800))
    token = None
    if r.random() < 0.5:
        token = "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789/+=")
                        for _ in range(r.choice([1, 16, 300])))
        if r.random() < 0.2:
            token = " " + token[:5] + "  " + token[5:] + " "
    case = {
        "method": r.choice(["GET", "PUT", "POST", "DELETE", "HEAD"]),
        "bucket": bucket,
        "key": rand_key(r),
        "payload": payload,
        "region": r.choice(["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1",
                            "auto", "garage", "x"]),
        "date": when.strftime("%Y%m%dT%H%M%SZ"),
        "when": when,
        "akid": "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                        for _ in range(r.choice([16, 20, 32]))),
        "secret": rand_secret(r),
        "token": token,
        "query": query,
        "headers": headers,
        "chunk_size": 0,
        "body": b"",
    }
    if payload in STREAMING:
        case["chunk_size"] = r.choice([1, 7, 100, 8192, 65536, r.randrange(1, 20000)])
        size = r.choice([0, 1, 100, case["chunk_size"], case["chunk_size"] + 1,
                         r.randrange(0, 200000)])
        if case["chunk_size"] < 100:
            size = min(size, 5000)  # many tiny chunks: keep the run short
        case["body"] = r.randbytes(size)
    return case


# ---- the driver's side -----------------------------------------------------------

def enc_field(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        v = v.encode("utf-8")
    return "x" + v.hex()


def driver_line(c):
    f = [c["method"], c["bucket"], c["key"], c["payload"], c["region"], c["date"], c["akid"],
         c["secret"], c["token"]]
    out = [enc_field(x) for x in f]
    out.append(str(len(c["query"])))
    for n, v in c["query"]:
        out += [enc_field(n), enc_field(v)]
    out.append(str(len(c["headers"])))
    for n, v in c["headers"]:
        out += [enc_field(n), enc_field(v)]
    out.append(str(c["chunk_size"]))
    out.append(enc_field(c["body"]))
    return " ".join(out) + "\n"


# ---- botocore's side --------------------------------------------------------------

def path_of(c):
    """The URL path botocore's S3 serializer would build: bucket with
    percent_encode(), key with percent_encode(safe='/~')."""
    key = percent_encode(c["key"], safe="/~")
    if c["bucket"]:
        return "/" + percent_encode(c["bucket"]) + ("/" + key if c["key"] else "")
    return "/" + key


class FixedPayloadAuth(botocore.auth.S3SigV4Auth):
    """S3SigV4Auth with the x-amz-content-sha256 value chosen by the test."""

    def __init__(self, credentials, region, payload):
        super().__init__(credentials, "s3", region)
        self._payload = payload

    def payload(self, request):
        return self._payload

    def canonical_request(self, request):
        self.last_canonical_request = super().canonical_request(request)
        return self.last_canonical_request


def botocore_sign(c):
    botocore.auth.get_current_datetime = lambda *a, **k: c["when"]
    creds = Credentials(c["akid"], c["secret"], c["token"])
    req = AWSRequest(method=c["method"], url="https://" + "h.invalid" + path_of(c),
                     params=list(c["query"]))
    for n, v in c["headers"]:
        req.headers[n] = v  # HTTPHeaders appends: repeated names stay
    auth = FixedPayloadAuth(creds, c["region"], c["payload"])
    auth.add_auth(req)
    value = req.headers["Authorization"]
    value = value.replace(", SignedHeaders=", ",SignedHeaders=").replace(", Signature=",
                                                                        ",Signature=")
    qs = auth.canonical_query_string(req)
    target = path_of(c) + ("?" + qs if c["query"] else "")
    return value, auth.last_canonical_request, target


# ---- aws-chunked, from the spec ------------------------------------------------------

def spec_body(c, seed):
    """The aws-chunked body per the S3 docs (sigv4-streaming, -trailers)."""
    date8 = c["date"][:8]
    k = hmac.new(("AWS4" + c["secret"]).encode(), date8.encode(), hashlib.sha256).digest()
    for part in (c["region"], "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    scope = f"{date8}/{c['region']}/s3/aws4_request"

    def sign(kind, prev, *rest):
        sts = "\n".join([kind, c["date"], scope, prev, *rest])
        return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()

    body, cs, mode = c["body"], c["chunk_size"], c["payload"]
    chunks = [body[i:i + cs] for i in range(0, len(body), cs)] + [b""]
    out, prev = [], seed
    for ch in chunks:
        if mode == S_UNSIGNED_TRAILER:
            out.append(b"%x\r\n" % len(ch))
        else:
            prev = sign("AWS4-HMAC-SHA256-PAYLOAD", prev, EMPTY, hashlib.sha256(ch).hexdigest())
            out.append(b"%x;chunk-signature=%s\r\n" % (len(ch), prev.encode()))
        if ch:
            out += [ch, b"\r\n"]
    if mode == S_SIGNED:
        out.append(b"\r\n")
    else:
        field = "x-amz-checksum-sha256:" + base64.b64encode(hashlib.sha256(body).digest()).decode()
        out.append(field.encode() + b"\r\n")
        if mode == S_SIGNED_TRAILER:
            tsig = sign("AWS4-HMAC-SHA256-TRAILER", prev,
                        hashlib.sha256((field + "\n").encode()).hexdigest())
            out.append(b"x-amz-trailer-signature:" + tsig.encode() + b"\r\n")
        out.append(b"\r\n")
    return b"".join(out)


def botocore_unsigned_trailer_body(c):
    w = botocore.httpchecksum.AwsChunkedWrapper(
        io.BytesIO(c["body"]), checksum_cls=botocore.httpchecksum.Sha256Checksum,
        checksum_name="x-amz-checksum-sha256", chunk_size=c["chunk_size"])
    return w.read()


# ---- compare --------------------------------------------------------------------------

def show(c):
    return (f"method={c['method']} bucket={c['bucket']!r} key={c['key']!r} "
            f"payload={c['payload'][:20]} query={c['query']!r} headers={c['headers']!r} "
            f"token={'yes' if c['token'] else 'no'} secret_len={len(c['secret'])} "
            f"chunk={c['chunk_size']} body={len(c['body'])}")


def check(c, line):
    """Returns a list of problems (empty when the case passes)."""
    if line.startswith("error "):
        return [f"driver: {line}"]
    parts = line.split("\t")
    if len(parts) != 5:
        return [f"driver output malformed: {line[:200]!r}"]
    auth, target, cr_hex, body_hex, elen = parts
    cr = bytes.fromhex(cr_hex).decode("utf-8", "replace")
    want_auth, want_cr, want_target = botocore_sign(c)
    problems = []
    if auth != want_auth:
        problems.append(f"Authorization\n    sluice:   {auth}\n    botocore: {want_auth}")
    if cr != want_cr:
        problems.append(f"canonical request\n--- sluice\n{cr}\n--- botocore\n{want_cr}\n---")
    if target != want_target:
        problems.append(f"target\n    sluice:   {target}\n    botocore: {want_target}")
    if c["payload"] in STREAMING:
        got = bytes.fromhex(body_hex)
        seed = want_auth.rsplit("Signature=", 1)[1]
        want = spec_body(c, seed)
        if got != want:
            i = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                     min(len(got), len(want)))
            problems.append(f"aws-chunked body differs at byte {i} of {len(want)} "
                            f"(sluice {got[max(0, i - 40):i + 40]!r}, "
                            f"spec {want[max(0, i - 40):i + 40]!r})")
        if int(elen) != len(want):
            problems.append(f"encoded length {elen}, body is {len(want)}")
        if c["payload"] == S_UNSIGNED_TRAILER and got != botocore_unsigned_trailer_body(c):
            problems.append("aws-chunked body differs from botocore's AwsChunkedWrapper")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--driver", default=os.path.join(os.environ.get("BUILD", "build"),
                                                     "tests", "sigv4-driver"))
    ap.add_argument("-n", type=int, default=600, help="random requests (default 600)")
    ap.add_argument("--seed", type=int, default=20130524)
    ap.add_argument("--streaming-share", type=float, default=0.3,
                    help="share of requests with a streaming payload")
    args = ap.parse_args()
    if not os.access(args.driver, os.X_OK):
        print(f"FAIL sigv4: no driver at {args.driver} (build it: make {args.driver})")
        print("0 passed, 1 failed")
        return 1

    r = random.Random(args.seed)
    cases = [rand_case(r, i, args.streaming_share) for i in range(args.n)]
    proc = subprocess.run([args.driver], input="".join(driver_line(c) for c in cases).encode(),
                          capture_output=True)
    lines = proc.stdout.decode().splitlines()
    if proc.returncode != 0 or len(lines) != len(cases):
        print(f"FAIL sigv4: driver exited {proc.returncode} after {len(lines)} of {len(cases)} "
              f"lines: {proc.stderr.decode()[:500]}")
        print(f"0 passed, {len(cases)} failed")
        return 1

    passed = failed = 0
    tally = {}
    for i, (c, line) in enumerate(zip(cases, lines)):
        problems = check(c, line)
        mode = c["payload"] if c["payload"] in STREAMING or c["payload"] == UNSIGNED else "hex"
        tally[mode] = tally.get(mode, 0) + 1
        if problems:
            failed += 1
            if failed <= 10:
                print(f"FAIL case {i} (seed {args.seed}): {show(c)}")
                for p in problems:
                    print("  " + p)
        else:
            passed += 1
    print(f"sigv4 vs botocore {botocore.__version__}: {len(cases)} random requests, seed "
          f"{args.seed}; payloads: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
