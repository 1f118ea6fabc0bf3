"""Shared machinery for the end-to-end suite.

Everything a case needs to drive sluice-proxy and sluice-sink from outside:
starting and stopping the programs, a raw-socket HTTP client that can send
any bytes with any split, a strict HTTP/1.1 response reader, curl, scripted
Python upstreams, body builders (chunked, multipart, images) and probes into
/proc (peak memory, open descriptors).

Standard library only. Every blocking call carries a timeout, and every
process started here is killed when the run ends, even on failure.
"""

import atexit
import ctypes
import hashlib
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib

BUILD = os.environ.get("BUILD", "build")
SAN = os.environ.get("SAN", "") == "1"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN_DIR = os.path.join(ROOT, BUILD, "bin") if not os.path.isabs(BUILD) else os.path.join(BUILD, "bin")
PROXY_BIN = os.path.join(BIN_DIR, "sluice-proxy")
SINK_BIN = os.path.join(BIN_DIR, "sluice-sink")

HOST = "127.0.0.1"
KiB = 1024
MiB = 1024 * 1024
GiB = 1024 * MiB
IO_TIMEOUT = 10.0          # default per socket operation / per client call
BIG_BODY_LIMIT = 8 * GiB   # --max-body-bytes for cases that do not test it

TMP = tempfile.mkdtemp(prefix="sluice-e2e-")


class Fail(Exception):
    """A case's expectation did not hold; the message says which."""


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r, want %r" % (what, short(got), short(want)))


def short(v, n=200):
    r = v
    if isinstance(v, (bytes, bytearray)) and len(v) > n:
        r = bytes(v[:n]) + b"...(%d bytes)" % len(v)
    elif isinstance(v, str) and len(v) > n:
        r = v[:n] + "...(%d chars)" % len(v)
    return r


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def wait_for(pred, timeout=3.0, step=0.02):
    """Polls pred() until it is truthy or timeout passes; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


# --------------------------------------------------------------------------
# Processes

_procs = []
_PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl     # looked up before any fork
except Exception:
    _prctl = None


def _die_with_parent():
    # The kernel kills the child if this runner dies, even by SIGKILL.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Server:
    """One sluice-proxy or sluice-sink process, started and ready.

    stdout is read up to the `listening on HOST:PORT` line; stderr goes to a
    file so the log lines can be read back at any time.
    """

    def __init__(self, argv, name):
        self.argv = argv
        self.name = name
        fd, self.err_path = tempfile.mkstemp(prefix=name + "-", suffix=".stderr", dir=TMP)
        self._err = os.fdopen(fd, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=self._err, preexec_fn=_die_with_parent)
        _procs.append(self)
        self.stopped = False
        self.stdout_tail = ""
        self.first_line = self._read_line(10.0)
        m = re.fullmatch(r"listening on ([0-9.]+):(\d+)\n", self.first_line)
        if not m:
            self.kill()
            raise Fail("%s: first stdout line %r is not 'listening on HOST:PORT' (stderr: %r)"
                       % (name, self.first_line, short(self.stderr(), 400)))
        self.host, self.port = m.group(1), int(m.group(2))

    def _read_line(self, timeout):
        out = b""
        end = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while not out.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                break
            c = os.read(fd, 1)
            if not c:
                break
            out += c
        return out.decode("latin-1")

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        # A case-local server: its exit status counts only if the case passed.
        problem = self.stop(graceful=(self.name == "proxy"))
        if problem and et is None:
            raise Fail(problem)
        return False

    @property
    def pid(self):
        return self.p.pid

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def url(self, target="/"):
        return "http://%s:%d%s" % (self.host, self.port, target)

    def alive(self):
        return self.p.poll() is None

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""

    def sanitizer_report(self):
        e = self.stderr()
        for key in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                    "SUMMARY: UndefinedBehaviorSanitizer"):
            i = e.find(key)
            if i >= 0:
                return e[i:i + 600]
        return None

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def rest_of_stdout(self):
        """Everything on stdout after the first line (complete once stopped)."""
        if self.stopped:
            return self.stdout_tail
        try:
            return self.p.stdout.read().decode("latin-1")
        except Exception:
            return ""

    def kill(self):
        if self.alive():
            self.p.kill()
            self.wait(5)
        self._close()

    def _close(self):
        if not self.stopped and self.p.poll() is not None:
            try:
                self.stdout_tail = self.p.stdout.read().decode("latin-1")
            except Exception:
                pass
        self.stopped = True
        for f in (self.p.stdout, self._err):
            try:
                f.close()
            except Exception:
                pass

    def stop(self, graceful=True, timeout=12.0):
        """SIGTERM, wait, then SIGKILL. Returns a problem string or None.

        With graceful=True a non-zero exit after SIGTERM is a problem (the
        contract asks exit 0); a sanitizer report always is.
        """
        if self.stopped:
            return None
        problem = None
        if not self.alive():
            problem = "%s had already exited with %s" % (self.name, self.p.returncode)
        else:
            self.p.send_signal(signal.SIGTERM)
            rc = self.wait(timeout)
            if rc is None:
                problem = "%s did not exit within %.0fs of SIGTERM" % (self.name, timeout)
                self.kill()
            elif graceful and rc != 0:
                problem = "%s exited %d after SIGTERM" % (self.name, rc)
        rep = self.sanitizer_report()
        if rep:
            problem = "%s: sanitizer: %s" % (self.name, rep)
        self._close()
        return problem

    def log_lines(self):
        return self.stderr().splitlines()


def start_sink(*args):
    return Server([SINK_BIN, "--listen", HOST + ":0"] + [str(a) for a in args], "sink")


def start_proxy(upstream, *args):
    """upstream: anything with .addr, or a 'HOST:PORT' string.

    The contract gives no default for --max-body-bytes, so unless a case sets
    it, a limit far above any body here is passed."""
    up = upstream if isinstance(upstream, str) else upstream.addr
    args = [str(a) for a in args]
    if "--max-body-bytes" not in args:
        args += ["--max-body-bytes", str(BIG_BODY_LIMIT)]
    return Server([PROXY_BIN, "--listen", HOST + ":0", "--upstream", up] + args, "proxy")


def cleanup_all():
    for s in list(_procs):
        try:
            s.kill()
        except Exception:
            pass
    shutil.rmtree(TMP, ignore_errors=True)


atexit.register(cleanup_all)


def free_port():
    """A port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# /proc probes

def _family(pid):
    """pid and all its descendants (for --workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def reset_hwm(pid):
    for p in _family(pid):
        with open("/proc/%d/clear_refs" % p, "w") as f:
            f.write("5")


def vmhwm_kib(pid):
    """Largest VmHWM (KiB) over the process and its children."""
    best = 0
    for p in _family(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        best = max(best, int(line.split()[1]))
        except OSError:
            pass
    return best


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# --------------------------------------------------------------------------
# HTTP message reading (shared by the client and the Python upstreams)

class Closed(Exception):
    """The peer closed (or reset) before the expected bytes arrived."""

    def __init__(self, msg, partial=b""):
        Exception.__init__(self, msg)
        self.partial = partial


class Reader:
    """Buffered reads from a socket with one deadline per call."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def _fill(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(256 * KiB)
        except ConnectionResetError:
            self.reset = True
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def until(self, delim, deadline, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise Fail("no %r within %d bytes" % (delim, limit))
            if not self._fill(deadline):
                raise Closed("closed before %r" % delim, bytes(self.buf))

    def exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed("closed after %d of %d bytes" % (len(self.buf), n), bytes(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def to_eof(self, deadline):
        while self._fill(deadline):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out


class Message:
    """A parsed HTTP head plus body.

    start: the first line without CRLF; headers: [(name, value)] as sent;
    body: the decoded body; complete: whether the framing said it ended;
    framing: 'length' | 'chunked' | 'close' | 'none'.
    """

    def __init__(self, start, headers, raw_head):
        self.start = start
        self.headers = headers
        self.raw_head = raw_head
        self.body = b""
        self.raw_body = b""
        self.complete = False
        self.framing = "none"
        self.chunk_lines = []      # chunk size lines as received (without CRLF)
        self.trailers = []
        self.interim = []          # 1xx responses seen before this one

    def hdrs(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def hdr(self, name):
        v = self.hdrs(name)
        return v[0] if v else None

    def names(self):
        return [k.lower() for k, _ in self.headers]

    # response helpers
    @property
    def status(self):
        parts = self.start.split(" ", 2)
        return int(parts[1])

    @property
    def version(self):
        return self.start.split(" ", 1)[0]

    # request helpers
    @property
    def method(self):
        return self.start.split(" ")[0]

    @property
    def target(self):
        return self.start.split(" ")[1]

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception:
            raise Fail("body is not JSON: %r" % short(self.body))

    def __repr__(self):
        return "<%s %r>" % (self.start, self.headers)


def parse_head(raw):
    text = raw.decode("latin-1")
    check(text.endswith("\r\n\r\n"), "head does not end with CRLF CRLF")
    lines = text[:-4].split("\r\n")
    for ln in lines:
        check("\n" not in ln and "\r" not in ln, "bare CR or LF in head line %r" % ln)
    headers = []
    for ln in lines[1:]:
        check(":" in ln, "header line without colon: %r" % ln)
        k, v = ln.split(":", 1)
        check(k and k == k.strip() and k[0] not in " \t", "bad header name %r" % k)
        headers.append((k, v.strip(" \t")))
    return Message(lines[0], headers, raw)


def read_chunked(rd, msg, deadline):
    """Decodes a chunked body into msg; stops at EOF leaving complete=False."""
    body = bytearray()
    raw = bytearray()
    msg.framing = "chunked"
    try:
        while True:
            line = rd.until(b"\r\n", deadline, limit=64 * KiB)
            raw += line
            sl = line[:-2].decode("latin-1")
            msg.chunk_lines.append(sl)
            size_s = sl.split(";", 1)[0].strip(" \t")
            check(re.fullmatch(r"[0-9a-fA-F]+", size_s) is not None, "bad chunk size line %r" % sl)
            size = int(size_s, 16)
            if size == 0:
                while True:
                    t = rd.until(b"\r\n", deadline, limit=64 * KiB)
                    raw += t
                    if t == b"\r\n":
                        break
                    k, _, v = t[:-2].decode("latin-1").partition(":")
                    msg.trailers.append((k, v.strip()))
                msg.complete = True
                break
            data = rd.exact(size, deadline)
            raw += data
            body += data
            crlf = rd.exact(2, deadline)
            raw += crlf
            check(crlf == b"\r\n", "chunk data not followed by CRLF")
    except Closed as e:
        raw += e.partial
    msg.body = bytes(body)
    msg.raw_body = bytes(raw)


def read_length(rd, msg, n, deadline):
    msg.framing = "length"
    try:
        msg.body = rd.exact(n, deadline)
        msg.complete = True
    except Closed as e:
        msg.body = e.partial
        rd.buf.clear()
    msg.raw_body = msg.body


def body_framing(msg):
    """('chunked', None) | ('length', n) | (None, None) from the headers."""
    te = msg.hdrs("transfer-encoding")
    if te:
        return "chunked", None
    cl = msg.hdrs("content-length")
    if cl:
        return "length", int(cl[0])
    return None, None


def read_response(rd, method="GET", deadline=None, keep_interim=True):
    """Reads one final response (1xx ones are collected in .interim).

    Raises Closed if the connection ends before a full head.
    """
    if deadline is None:
        deadline = time.monotonic() + IO_TIMEOUT
    interim = []
    while True:
        head = rd.until(b"\r\n\r\n", deadline)
        msg = parse_head(head)
        check(re.fullmatch(r"HTTP/1\.[01] \d{3}( .*)?", msg.start) is not None,
              "bad status line %r" % msg.start)
        if 100 <= msg.status < 200:
            msg.complete = True
            interim.append(msg)
            if msg.status == 101:
                return msg
            continue
        break
    msg.interim = interim
    st = msg.status
    if method == "HEAD" or st in (204, 304):
        msg.complete = True
        return msg
    kind, n = body_framing(msg)
    if kind == "chunked":
        check(msg.hdr("transfer-encoding").lower() == "chunked",
              "response Transfer-Encoding %r" % msg.hdr("transfer-encoding"))
        read_chunked(rd, msg, deadline)
    elif kind == "length":
        read_length(rd, msg, n, deadline)
    else:
        msg.framing = "close"
        msg.body = rd.to_eof(deadline)
        msg.raw_body = msg.body
        msg.complete = not rd.reset
    return msg


def read_request(rd, deadline):
    """Reads one request (as an upstream sees it). Raises Closed at EOF before a head."""
    head = rd.until(b"\r\n\r\n", deadline)
    msg = parse_head(head)
    kind, n = body_framing(msg)
    if kind == "chunked":
        read_chunked(rd, msg, deadline)
    elif kind == "length":
        read_length(rd, msg, n, deadline)
    else:
        msg.complete = True
    return msg


# --------------------------------------------------------------------------
# Raw client

class Conn:
    """A raw TCP client connection with a strict response reader."""

    def __init__(self, port, host=HOST, timeout=IO_TIMEOUT):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rd = Reader(self.sock)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with RST (SO_LINGER 0), the way a crashed client looks."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def send_pieces(self, data, sizes, delay=0.0):
        """Sends data in consecutive pieces of the given sizes (last piece: the rest)."""
        i = 0
        for s in sizes:
            if i >= len(data):
                break
            self.send(data[i:i + s])
            i += s
            if delay:
                time.sleep(delay)
        if i < len(data):
            self.send(data[i:])

    def send_bytewise(self, data, delay=0.0):
        """One byte per write (TCP_NODELAY, so mostly one byte per segment)."""
        self.send_pieces(data, [1] * len(data), delay)

    def send_random(self, data, seed, max_piece=64):
        rnd = random.Random(seed)
        sizes = []
        n = 0
        while n < len(data):
            s = rnd.randint(1, max_piece)
            sizes.append(s)
            n += s
        self.send_pieces(data, sizes)

    def response(self, method="GET", timeout=None):
        t = timeout or self.timeout
        try:
            return read_response(self.rd, method, time.monotonic() + t)
        except (socket.timeout, TimeoutError):
            raise Fail("no complete response within %.1fs (have %r)" % (t, short(bytes(self.rd.buf), 80)))

    def closed(self, timeout=3.0):
        """True if the peer closes (EOF or RST) within timeout, data ignored."""
        end = time.monotonic() + timeout
        try:
            while True:
                if not self.rd._fill(end):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            return True

    def closed_now(self, timeout=3.0):
        """Like closed(), but nothing more may arrive first."""
        n = len(self.rd.buf)
        c = self.closed(timeout)
        return c and len(self.rd.buf) == n

    def idle(self, seconds):
        """True if nothing arrives and the connection stays open for seconds."""
        end = time.monotonic() + seconds
        n = len(self.rd.buf)
        try:
            while self.rd._fill(end):
                pass
            return False       # closed
        except (socket.timeout, TimeoutError):
            return len(self.rd.buf) == n


def exchange(port, data, method="GET", timeout=IO_TIMEOUT):
    """Sends raw bytes, reads one response, returns (response, conn)."""
    c = Conn(port, timeout=timeout)
    try:
        c.send(data)
        return c.response(method), c
    except Exception:
        c.close()
        raise


def expect_reject(port, data, status, what, method="GET", timeout=5.0):
    """Sends data, expects the final status `status` (int or tuple), then a close."""
    want = status if isinstance(status, tuple) else (status,)
    c = Conn(port, timeout=timeout)
    try:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.response(method, timeout)
        except Closed as e:
            raise Fail("%s: closed without a response (got %r)" % (what, short(e.partial)))
        check(r.status in want, "%s: status %d, want %s" % (what, r.status, "/".join(map(str, want))))
        for h in ("Sluice-Body-Bytes", "Sluice-Body-SHA256", "Sluice-Image"):
            check(r.hdr(h) is None, "%s: %s on the proxy's own %d" % (what, h, r.status))
        check(c.closed(timeout), "%s: connection not closed after %d" % (what, r.status))
        return r
    finally:
        c.close()


def req(method, target, headers=(), body=b"", version="HTTP/1.1", host="sluice.test"):
    """Builds a request; Content-Length is added for a body unless a framing
    header is given. headers: [(name, value)] or raw strings 'Name: value'."""
    lines = ["%s %s %s" % (method, target, version)]
    names = []
    hs = []
    for h in headers:
        if isinstance(h, tuple):
            hs.append("%s: %s" % h)
            names.append(h[0].lower())
        else:
            hs.append(h)
            names.append(h.split(":", 1)[0].lower())
    if host is not None and "host" not in names:
        lines.append("Host: " + host)
    lines += hs
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(data, sizes=None, ext=b"", trailers=b""):
    """Encodes data as a chunked body (chunk sizes from sizes, else one chunk)."""
    out = bytearray()
    if sizes is None:
        sizes = [len(data)] if data else []
    i = 0
    for s in sizes:
        if i >= len(data):
            break
        piece = data[i:i + s]
        out += b"%x%s\r\n" % (len(piece), ext) + piece + b"\r\n"
        i += s
    if i < len(data):
        out += b"%x%s\r\n" % (len(data) - i, ext) + data[i:] + b"\r\n"
    out += b"0\r\n" + trailers + b"\r\n"
    return bytes(out)


def body_bytes(n, seed=1):
    return random.Random(seed).randbytes(n)


# --------------------------------------------------------------------------
# curl

class CurlResult:
    def __init__(self, rc, status, headers, body, err):
        self.rc, self.status, self.headers, self.body, self.err = rc, status, headers, body, err

    def hdr(self, name):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return None

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception:
            raise Fail("curl body is not JSON: %r (rc %d, %s)" % (short(self.body), self.rc, self.err))


def curl(args, timeout=60):
    """Runs curl; returns the final response's status, headers and body."""
    hfile = os.path.join(TMP, "curl-%d.h" % threading.get_ident())
    bfile = os.path.join(TMP, "curl-%d.b" % threading.get_ident())
    cmd = ["curl", "-sS", "--http1.1", "--max-time", str(timeout), "-D", hfile, "-o", bfile,
           "-w", "%{http_code}"] + list(args)
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        raise Fail("curl did not finish within %ds: %s" % (timeout, " ".join(args)))
    headers = []
    try:
        with open(hfile, "rb") as f:
            blocks = f.read().decode("latin-1").split("\r\n\r\n")
        blocks = [b for b in blocks if b.strip()]
        if blocks:
            for ln in blocks[-1].split("\r\n")[1:]:
                k, _, v = ln.partition(":")
                headers.append((k, v.strip()))
        with open(bfile, "rb") as f:
            body = f.read()
    except OSError:
        body = b""
    for f in (hfile, bfile):
        try:
            os.unlink(f)
        except OSError:
            pass
    status = int(p.stdout or b"0") if (p.stdout or b"0").isdigit() else 0
    return CurlResult(p.returncode, status, headers, body, p.stderr.decode("latin-1").strip())


def gen_file(size, seed=7, name=None):
    """Writes `size` pseudo-random bytes under TMP; returns (path, sha256 hex).

    Made of 1 MiB random blocks, each stamped with its index so that no two
    blocks are equal (a dropped or repeated block changes the digest).
    """
    path = os.path.join(TMP, name or "body-%d-%d.bin" % (size, seed))
    rnd = random.Random(seed)
    block = bytearray(rnd.randbytes(min(size, MiB) or 1))
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left, i = size, 0
        while left > 0:
            n = min(left, len(block))
            block[:8] = struct.pack("<Q", i)
            piece = bytes(block[:n]) if n < len(block) else bytes(block)
            f.write(piece)
            h.update(piece)
            left -= n
            i += 1
    return path, h.hexdigest()


# --------------------------------------------------------------------------
# Python upstreams

class UpConn:
    """What one upstream connection received."""

    def __init__(self, sock):
        self.sock = sock
        self.raw = bytearray()
        self.requests = []        # Message objects (possibly incomplete last one)
        self.eof = False          # the proxy closed its side
        self.done = threading.Event()


class _TapReader(Reader):
    """A Reader that also records every byte received."""

    def __init__(self, sock, rec, rate=None):
        Reader.__init__(self, sock)
        self.rec = rec
        self.rate = rate
        self.t0 = time.monotonic()
        self.total = 0

    def _fill(self, deadline):
        if self.rate:
            # Pace reads: never run ahead of rate bytes/second.
            due = self.t0 + self.total / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(min(due - now, max(0.0, deadline - now)))
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(16 * KiB if self.rate else 256 * KiB)
        except (ConnectionResetError, OSError):
            d = b""
        if not d:
            self.eof = True
            self.rec.eof = True
            return False
        self.total += len(d)
        self.rec.raw += d
        self.buf += d
        return True


def ok_response(req_msg, body=b"ok"):
    return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Upstream: py\r\n\r\n" % len(body)) + body


class Upstream:
    """A scripted Python upstream on 127.0.0.1, one thread per connection.

    behaviour(up, conn_record, reader) runs per connection; the default reads
    requests (keep-alive) and answers each with respond(request) -> bytes.
    Everything received is kept in .conns for the case to inspect.
    """

    def __init__(self, behaviour=None, respond=ok_response, rate=None, rcvbuf=None):
        self.behaviour = behaviour or Upstream.serve
        self.respond = respond
        self.rate = rate
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.ls.bind((HOST, 0))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        self.addr = "%s:%d" % (HOST, self.port)
        self.conns = []
        self.lock = threading.Lock()
        self.closing = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _accept(self):
        while not self.closing:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            rec = UpConn(s)
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._run, args=(rec,), daemon=True).start()

    def _run(self, rec):
        rd = _TapReader(rec.sock, rec, self.rate)
        try:
            self.behaviour(self, rec, rd)
        except Exception:
            pass
        finally:
            try:
                rec.sock.close()
            except OSError:
                pass
            rec.done.set()

    @staticmethod
    def serve(up, rec, rd):
        while True:
            try:
                m = read_request(rd, time.monotonic() + 60)
            except (Closed, socket.timeout, TimeoutError):
                return
            rec.requests.append(m)
            if not m.complete:
                return
            rec.sock.sendall(up.respond(m))

    def close(self):
        self.closing = True
        try:
            self.ls.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.sock.close()
            except OSError:
                pass

    # inspection helpers
    def wait_conn(self, n=1, timeout=5.0):
        """Waits until at least n connections were accepted; returns the n-th."""
        if not wait_for(lambda: len(self.conns) >= n, timeout):
            raise Fail("upstream: %d connection(s) after %.1fs, want %d" % (len(self.conns), timeout, n))
        return self.conns[n - 1]

    def wait_request(self, n=1, timeout=5.0):
        """The n-th request over all connections, once fully read or ended."""
        def get():
            reqs = [r for c in list(self.conns) for r in c.requests]
            return reqs[n - 1] if len(reqs) >= n else None
        r = wait_for(get, timeout)
        if r is None:
            raise Fail("upstream: no request #%d after %.1fs" % (n, timeout))
        return r

    def wait_closed(self, conn, timeout=5.0):
        """Waits until the proxy closed this upstream connection."""
        return wait_for(lambda: conn.eof or conn.done.is_set(), timeout)

    def total_requests(self):
        return sum(len(c.requests) for c in self.conns)

    def complete_requests(self):
        return [r for c in list(self.conns) for r in c.requests if r.complete]


# --------------------------------------------------------------------------
# multipart/form-data and images

def part(name=None, content=b"", filename=None, ctype=None, extra=(), disposition=None,
         filename_star=None):
    """One form part: (header bytes, content)."""
    if disposition is None:
        d = "form-data"
        if name is not None:
            d += '; name="%s"' % name
        if filename is not None:
            d += '; filename="%s"' % filename
        if filename_star is not None:
            d += "; filename*=%s" % filename_star
    else:
        d = disposition
    hs = ["Content-Disposition: " + d]
    if ctype:
        hs.append("Content-Type: " + ctype)
    hs += list(extra)
    return ("\r\n".join(hs)).encode("utf-8"), content


def multipart(parts, boundary="sluiceBoundary7MA4YWxk", preamble=b"", epilogue=b"", close=True):
    """A multipart body; close=False leaves out the closing delimiter."""
    b = boundary.encode()
    out = bytearray(preamble)
    for i, (h, c) in enumerate(parts):
        out += (b"--" if i == 0 and not preamble else b"\r\n--") + b + b"\r\n" + h + b"\r\n\r\n" + c
    if close:
        out += b"\r\n--" + b + b"--\r\n" + epilogue
    return bytes(out)


def form_ctype(boundary="sluiceBoundary7MA4YWxk"):
    return "multipart/form-data; boundary=" + boundary


def png(w, h, tail=b""):
    """A PNG: signature, IHDR, one IDAT (a real one for small images), IEND."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    if w * h <= 4096:
        raw = b"".join(b"\0" + bytes(3 * w) for _ in range(h))
    else:
        raw = b"\0" * 64
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b"") + tail)


def _seg(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _sof(marker, w, h):
    return _seg(marker, struct.pack(">BHHB", 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01")


_DQT = _seg(0xDB, b"\x00" + bytes(range(1, 65)))
_DHT = _seg(0xC4, b"\x00" + bytes([0, 1] + [0] * 14) + b"\x00")
_SOS = _seg(0xDA, b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00")


def jpeg(w, h, thumb=None, sof=0xC0, app_pad=0, tail=b""):
    """SOI, APP0 JFIF, optional APP1 EXIF with an embedded thumbnail JPEG
    (whose own SOF0 carries the thumbnail size), app_pad bytes of extra APPn
    segments, DQT, SOFn of the main image, DHT, SOS, data, EOI."""
    out = b"\xff\xd8" + _seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if thumb:
        tj = b"\xff\xd8" + _DQT + _sof(0xC0, thumb[0], thumb[1]) + _DHT + _SOS + b"\x00" * 32 + b"\xff\xd9"
        # TIFF little-endian: IFD0 with no entries -> IFD1 with the thumbnail pointers.
        ifd1_off = 8 + 2 + 4
        ifd1 = struct.pack("<H", 2)
        data_off = ifd1_off + 2 + 2 * 12 + 4
        ifd1 += struct.pack("<HHII", 0x0201, 4, 1, data_off)     # JPEGInterchangeFormat
        ifd1 += struct.pack("<HHII", 0x0202, 4, 1, len(tj))      # ...Length
        ifd1 += struct.pack("<I", 0)
        tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0) + struct.pack("<I", ifd1_off) + ifd1 + tj
        out += _seg(0xE1, b"Exif\x00\x00" + tiff)
    while app_pad > 0:
        n = min(app_pad, 65533)
        out += _seg(0xE2, b"\xAA" * n)
        app_pad -= n
    out += _DQT + _sof(sof, w, h) + _DHT + _SOS + b"\x12\x34" * 64 + b"\xff\xd9" + tail
    return out


def gif(w, h, frame=(1, 1), tail=b""):
    """GIF89a with logical screen w x h and one frame of a different size."""
    out = b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    out += b"\x2c" + struct.pack("<HHHHB", 0, 0, frame[0], frame[1], 0)
    out += b"\x02\x02\x44\x01\x00" + b"\x3b" + tail
    return out


def _riff(chunks):
    body = b"WEBP" + chunks
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _vp8l(w, h):
    bits = (w - 1) | ((h - 1) << 14)
    d = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8
    return b"VP8L" + struct.pack("<I", len(d)) + d


def _vp8(w, h):
    first_part = 16
    tag = 0 | (0 << 1) | (1 << 4) | (first_part << 5)          # key frame, shown
    d = struct.pack("<I", tag)[:3] + b"\x9d\x01\x2a" + struct.pack("<HH", w, h) + b"\x00" * 16
    return b"VP8 " + struct.pack("<I", len(d)) + d


def webp_vp8x(w, h, tail=b""):
    """VP8X with canvas w x h, followed by a VP8L image of another size."""
    d = bytes([0x10, 0, 0, 0]) + struct.pack("<I", w - 1)[:3] + struct.pack("<I", h - 1)[:3]
    return _riff(b"VP8X" + struct.pack("<I", len(d)) + d + _vp8l(7, 5)) + tail


def webp_vp8l(w, h, tail=b""):
    return _riff(_vp8l(w, h)) + tail


def webp_vp8(w, h, tail=b""):
    return _riff(_vp8(w, h)) + tail


# --------------------------------------------------------------------------
# Case registry

CASES = []


def case(name, timeout=30):
    """Registers a case: fn(env). Names are unique across the suite."""
    def deco(fn):
        CASES.append((fn.__module__, name, fn, timeout))
        return fn
    return deco


class Env:
    """Per-module shared servers, started on first use and stopped at the
    end of the module (a dead one is reported and replaced)."""

    def __init__(self):
        self._sink = None
        self._proxies = {}
        self._upstreams = []
        self._own = []
        self.problems = []

    def own(self, server):
        """Keeps a server until the module ends (reported like the shared ones)."""
        self._own.append(server)
        return server

    def upstream(self, **kw):
        """A recording Python upstream that lives until the module ends."""
        u = Upstream(**kw)
        self._upstreams.append(u)
        return u

    def sink(self):
        if self._sink is None or not self._sink.alive():
            self._sink = start_sink()
        return self._sink

    def proxy(self, *args, upstream=None):
        """A shared proxy in front of the shared sink (or `upstream`)."""
        up = upstream if upstream is not None else self.sink()
        key = (getattr(up, "addr", up),) + tuple(str(a) for a in args)
        p = self._proxies.get(key)
        if p is None or not p.alive():
            p = start_proxy(up, *args)
            self._proxies[key] = p
        return p

    def servers(self):
        return ([self._sink] if self._sink else []) + list(self._proxies.values()) + self._own

    def dead(self):
        """Servers that exited on their own since last asked, with why."""
        out = []
        for s in self.servers():
            if not s.stopped and not s.alive():
                rep = s.sanitizer_report()
                out.append("%s (pid %d) died: exit %s%s" % (s.name, s.pid, s.p.returncode,
                                                             ("; " + rep) if rep else ""))
                s._close()
        return out

    def close(self):
        probs = []
        for s in self.servers():
            pr = s.stop(graceful=(s.name == "proxy"))
            if pr:
                probs.append(pr)
        for u in self._upstreams:
            u.close()
        self._upstreams = []
        self._sink = None
        self._proxies = {}
        self._own = []
        return probs


def upstream_bytes(up):
    return sum(len(c.raw) for c in list(up.conns))


def serves(proxy, what="after the fault"):
    """The proxy still answers a normal upload byte-exact (sink upstream)."""
    body = body_bytes(3000, seed=99)
    try:
        r, c = exchange(proxy.port, req("POST", "/still/ok", body=body), timeout=5)
    except Exception as e:
        raise Fail("proxy does not serve a normal request %s: %s" % (what, e))
    c.close()
    check(r.status == 200, "normal request %s: status %d" % (what, r.status))
    j = r.json()
    check(j.get("sha256") == sha256(body) and j.get("bytes") == len(body),
          "normal request %s: sink saw %r" % (what, j))


def temp_dir(name):
    d = tempfile.mkdtemp(prefix=name + "-", dir=TMP)
    return d


def upload(port, target, body, te=False, sizes=None, headers=(), method="POST", split=None):
    """One request on a fresh connection; returns the response.

    te: send the body chunked (sizes: chunk sizes); split: None (one write),
    'bytewise' or an int seed for random splits."""
    if te:
        data = req(method, target, list(headers) + [("Transfer-Encoding", "chunked")],
                   body=chunked(body, sizes))
    else:
        data = req(method, target, headers, body=body)
        if not body:
            data = req(method, target, list(headers) + [("Content-Length", "0")])
    with Conn(port) as c:
        if split is None:
            c.send(data)
        elif split == "bytewise":
            c.send_bytewise(data)
        else:
            c.send_random(data, split)
        return c.response(method)


def sink_saw(r, body, framing=None, method=None, target=None, what="sink"):
    """Checks a relayed sluice-sink JSON answer against the body sent."""
    check(r.status in (200, 201), "%s: status %d (%r)" % (what, r.status, short(r.body)))
    j = r.json()
    eq(j.get("bytes"), len(body), what + " bytes")
    eq(j.get("sha256"), sha256(body), what + " sha256")
    if framing:
        eq(j.get("framing"), framing, what + " framing")
    if method:
        eq(j.get("method"), method, what + " method")
    if target:
        eq(j.get("target"), target, what + " target")
    return j


def no_terminator(m):
    """An upstream request whose body must not look complete."""
    if m is None:
        return True
    return not m.complete


def answer_early(up, rec, rd, response=b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly",
                 after=0, close=False):
    """Upstream behaviour: reads the head (and `after` body bytes), answers
    at once, then records the body until the proxy closes (or closes itself)."""
    head = rd.until(b"\r\n\r\n", time.monotonic() + 10)
    m = parse_head(head)
    rec.requests.append(m)
    if after:
        rd.exact(after, time.monotonic() + 10)
    rec.sock.sendall(response)
    if close:
        return
    if m.hdr("transfer-encoding"):
        read_chunked(rd, m, time.monotonic() + 20)
    elif m.hdr("content-length"):
        read_length(rd, m, int(m.hdr("content-length")) - after, time.monotonic() + 20)
    try:
        rd.to_eof(time.monotonic() + 20)
    except Exception:
        pass


def first_conn(fault):
    """Behaviour: the first connection gets `fault`, later ones are served."""
    def b(up, rec, rd):
        if up.conns and up.conns[0] is rec:
            return fault(up, rec, rd)
        return Upstream.serve(up, rec, rd)
    return b


def serves_py(proxy, up, what="after the fault"):
    """The proxy still relays a normal upload to a Python upstream."""
    body = body_bytes(2000, seed=98)
    n = len(up.complete_requests())
    try:
        r, c = exchange(proxy.port, req("POST", "/still/ok", body=body), timeout=5)
    except Exception as e:
        raise Fail("proxy does not serve a normal request %s: %s" % (what, e))
    c.close()
    check(r.status == 200, "normal request %s: status %d" % (what, r.status))
    got = wait_for(lambda: len(up.complete_requests()) > n, 3)
    check(got and up.complete_requests()[-1].body == body, "normal request %s: upstream body differs" % what)
