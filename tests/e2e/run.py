#!/usr/bin/env python3
"""End-to-end acceptance suite for sluice-proxy and sluice-sink.

Black-box: the programs are started on 127.0.0.1 port 0 and driven with curl
and a raw-socket client; upstreams are a real sluice-sink (which reports the
body's bytes, SHA-256 and framing as JSON) or small scripted Python servers
(lib.Upstream) that record the exact bytes the proxy forwarded.

    python3 tests/e2e/run.py [-k SUBSTRING] [--list]
    env: BUILD (build dir, default build), SAN=1 (sanitizer build: smaller
    sizes, no 1 GiB / memory-ceiling cases)

Prints `ok   <name>` or `FAIL <name>: <why>` per case and ends with exactly one
line `N passed, N failed`; exits 1 on any failure.

Proxies are started with a large --max-body-bytes unless a case tests the
limit (the contract gives no default). Each module shares one sink and one
proxy per option set (lib.Env); a server that dies is reported against the
case that was running, and every proxy must exit 0 on the final SIGTERM.

Where each contract sentence is tested
--------------------------------------
test_startup.py      both programs: `listening on HOST:PORT` (exactly one
                     stdout line, port 0 -> real port), --help, --workers N.
test_passthrough.py  sluice-proxy default mode: same method, target and
                     end-to-end headers; hop-by-hop dropped both ways (Connection
                     and what it lists, Keep-Alive, TE, Trailer,
                     Transfer-Encoding, Upgrade, Proxy-*), Expect not forwarded,
                     Host kept; Content-Length bodies keep Content-Length,
                     chunked bodies re-chunked without extensions/trailers;
                     response status/headers/body streamed back; keep-alive,
                     pipelining, Expect: 100-continue; Sluice-Body-Bytes,
                     --digest Sluice-Body-SHA256; every split of the bytes.
test_extract.py      --extract FIELD: 415 for non-multipart (also no body),
                     400 for a bad boundary, exact/case-sensitive name match,
                     FIELD `*` (filename / filename*, even empty), PUT <same
                     target> chunked with the part's Content-Type (default
                     application/octet-stream) and the other end-to-end
                     headers, other parts dropped, zero chunk only after the
                     closing delimiter, no such part -> 400.
test_images.py       Sluice-Image for PNG, JPEG (EXIF thumbnail skipped, SOFn
                     of the main image), GIF (logical screen), WebP VP8X
                     (canvas) / VP8L / VP8; silent for non-images and when
                     undecided after 256 KiB; only in extract mode.
test_buffer.py       --mode buffer: Content-Length to the upstream, same results.
test_rejects.py      the rejection list (400 / 413 / 431, nothing forwarded,
                     close), --max-header-bytes and --max-body-bytes limits,
                     Expect: 100-continue answered with 413.
test_chunked.py      strict chunked framing (hex only, CRLF only, overflow,
                     RFC 9112 chunk-ext grammar, 4 KiB of extensions, bounded
                     trailers), malformed chunk mid-body -> 400 + upstream
                     aborted, chunked body past --max-body-bytes -> 413.
test_requestline.py  part 2: request-line whitespace, leading empty lines,
                     versions (505 / 400), HTTP/1.0 rules, Host rules, target
                     forms, CONNECT/TRACE 405, methods case-sensitive, HEAD /
                     1xx / 204 / 304 without body, Expect 417, Connection: close,
                     Transfer-Encoding `, chunked` / `chunked,`.
test_faults.py       upstream unreachable 502, upstream fails mid-body (502 or
                     close), upstream answers early (Sluice-Body-Bytes so far),
                     client aborts mid-body (no zero chunk / short of
                     Content-Length upstream, no stored file), still serving
                     after each fault, 64 concurrent uploads, no fd leak.
test_timeouts.py     --timeout-ms: head deadline (dribbling client cut), idle
                     body gap, waiting for the upstream, slow-but-steady body
                     not cut.
test_log.py          one stderr line per request `METHOD TARGET STATUS BYTES
                     DURATION_MS`.
test_signals.py      SIGTERM / SIGINT: listener closed at once, idle keep-alive
                     closed, in-flight request finishes, exit 0.
test_memory.py       1 GiB stream upload with VmHWM < 8 MiB, --mode buffer
                     grows past the body size, slow upstream (2 MiB/s) with a
                     fast client stays < 8 MiB.
test_sink.py         sluice-sink: JSON {method,target,bytes,sha256,framing},
                     200 / 201, same strictness, --store (rename on
                     completion, subdirectories, atomic replace, aborted body
                     leaves nothing, `..` / NUL / %2F refused with 400).
test_relay.py        examples/relay.c: Content-Length and chunked uploads into
                     the sink byte-exact, keep-alive, a GET, Expect.
test_limits.py       ulimit -n 64 with 100 clients: no EMFILE spin, one log
                     line, the backlog answered once connections close; 2,000
                     idle keep-alive connections: RSS per connection bounded,
                     RSS back near the start after they close.
test_defects.py      defects an adversarial run found: `Connection: host` keeps
                     Host; an early answer (upstream 413, the proxy's own)
                     reaches a client that writes 8 MiB before reading
                     (lingering close); unsolicited 101 -> 502; no 1xx for
                     HTTP/1.0 clients; --extract body without its close
                     delimiter -> 400, no zero chunk; an upstream that never
                     reads -> 408 about --timeout-ms after its last byte
                     (splice, copy, chunked); response Transfer-Encoding
                     other than chunked -> 502; fields with `_` dropped
                     unless --underscores-in-headers.
test_reuse.py        upstream connection reuse: one pooled connection for
                     many clients' requests; none after Connection: close,
                     HTTP/1.0, a read-until-close body or a left-over byte;
                     1xx / HEAD / 204 / 304 / trailers keep it reusable;
                     stale connections skipped; a bodiless request (or one
                     whose body was not taken yet) replayed once, a sent
                     body 502; --upstream-idle-ms; 16 clients through pools
                     of 1, 2, 64 to an upstream closing at random.
selftest.py          the framework itself against Python servers (not part of
                     the contract; run with `python3 tests/e2e/selftest.py`).
"""

import argparse
import importlib
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

MODULES = [
    "test_startup", "test_passthrough", "test_extract", "test_images", "test_buffer",
    "test_rejects", "test_chunked", "test_requestline", "test_faults", "test_timeouts",
    "test_log", "test_signals", "test_sink", "test_memory", "test_relay", "test_limits",
    "test_defects", "test_reuse",
]


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout()


def _terminate(signum, frame):
    lib.cleanup_all()
    os._exit(130)


def one_line(s):
    return " ".join(str(s).split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="run only cases whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", action="store_true", help="print tracebacks of failures")
    a = ap.parse_args()

    if not a.list and not (os.access(lib.PROXY_BIN, os.X_OK) and os.access(lib.SINK_BIN, os.X_OK)):
        print("e2e: binaries not built, skipped")
        print("0 passed, 0 failed")
        return 0

    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)

    for m in MODULES:
        importlib.import_module(m)
    passed = failed = 0
    t_start = time.monotonic()
    by_module = {}
    for mod, name, fn, tmo in lib.CASES:
        by_module.setdefault(mod, []).append((name, fn, tmo))

    for mod in MODULES:
        cases = [c for c in by_module.get(mod, []) if a.k in c[0]]
        if a.list:
            for name, _, _ in cases:
                print("%s  %s" % (mod, name))
            continue
        if not cases:
            continue
        env = lib.Env()
        for name, fn, tmo in cases:
            t0 = time.monotonic()
            err = None
            signal.alarm(tmo)
            try:
                fn(env)
            except CaseTimeout:
                err = "timed out after %ds" % tmo
            except lib.Fail as e:
                err = str(e)
                if a.v:
                    traceback.print_exc()
            except Exception as e:
                err = "%s: %s" % (type(e).__name__, e)
                if a.v:
                    traceback.print_exc()
            finally:
                signal.alarm(0)
            dead = env.dead()
            if dead and not err:
                err = "; ".join(dead)
            elif dead:
                err += " [" + "; ".join(dead) + "]"
            dt = time.monotonic() - t0
            if err:
                failed += 1
                print("FAIL %s: %s" % (name, one_line(err)[:1000]), flush=True)
            else:
                passed += 1
                print("ok   %s%s" % (name, "  (%.1fs)" % dt if dt >= 2 else ""), flush=True)
        signal.alarm(30)
        try:
            probs = env.close()
        except CaseTimeout:
            probs = ["stopping servers timed out"]
        finally:
            signal.alarm(0)
        for p in probs:
            failed += 1
            print("FAIL %s teardown: %s" % (mod, one_line(p)[:1000]), flush=True)
    if a.list:
        return 0
    lib.cleanup_all()
    print("e2e: %.1fs" % (time.monotonic() - t_start))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
