"""examples/relay.c, the first example: a poll(2) loop that streams uploads
to an upstream and the answer back.

Uploads through relay into sluice-sink, which reports the bytes and SHA-256
it received: a Content-Length body and a chunked body of a few MiB of random
bytes (the sink must see the same framing), both on one keep-alive
connection, and a GET.
"""

import os

import lib
from lib import Conn, case, eq, req, MiB

RELAY_BIN = os.path.join(lib.BIN_DIR, "relay")


def relay(env):
    if not hasattr(env, "relay") or not env.relay.alive():
        env.relay = env.own(lib.Server([RELAY_BIN, "0", env.sink().addr], "relay"))
    return env.relay


@case("relay: Content-Length and chunked uploads (random MiB) reach the sink byte-exact")
def relay_uploads(env):
    r = relay(env)
    body = os.urandom(3 * MiB + 17)
    with Conn(r.port, timeout=30) as c:
        c.send(req("PUT", "/relay/cl", [("Content-Length", str(len(body)))]) + body)
        res = c.response(timeout=30)
        eq(res.status, 200, "status (Content-Length)")
        j = res.json()
        eq((j["bytes"], j["sha256"], j["framing"]), (len(body), lib.sha256(body), "length"), "sink saw")

        # the same connection again: the relay keeps it alive
        c.send(req("POST", "/relay/te", [("Transfer-Encoding", "chunked")],
                   body=lib.chunked(body, [1, 65536, 100000, 7 * 65536 + 3])))
        res = c.response(timeout=30)
        eq(res.status, 200, "status (chunked)")
        j = res.json()
        eq((j["method"], j["target"]), ("POST", "/relay/te"), "method and target")
        eq((j["bytes"], j["sha256"], j["framing"]), (len(body), lib.sha256(body), "chunked"), "sink saw")


@case("relay: a GET and an Expect: 100-continue upload with curl")
def relay_get(env):
    r = relay(env)
    res = lib.curl([r.url("/relay/get?x=1")])
    eq(res.status, 200, "GET status")
    eq((res.json()["method"], res.json()["target"], res.json()["bytes"]), ("GET", "/relay/get?x=1", 0),
       "sink saw")
    path, digest = lib.gen_file(2 * MiB, seed=170, name="relay.bin")
    try:
        res = lib.curl(["-T", path, r.url("/relay/curl")])
    finally:
        os.unlink(path)
    eq(res.status, 200, "upload status")
    eq(res.json()["sha256"], digest, "sink sha256")
