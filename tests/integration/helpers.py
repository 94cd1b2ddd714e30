"""Raw HTTP/1.1 over sockets for the integration tests.

The suite talks to the real server with byte-exact requests (so it can send
malformed framing that no client library would produce) and parses responses
itself (so it can see exactly what came back and when the server closed).
Every socket operation has a timeout; nothing here can block forever.
"""

import os
import socket
import subprocess
import time

# Defaults from the server contract.
MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 16384
MAX_HEADERS = 100
MAX_BODY = 1048576

PLAINTEXT_BODY = b"Hello, World!"
JSON_BODY = b'{"message":"Hello, World!"}'
HEALTH_BODY = b'{"status":"ok"}'

# Sanitizer builds run about 3x slower: scale generous upper bounds (never
# lower bounds) on wall-clock checks. HOTPATH_TIME_SCALE overrides.
def _time_scale():
    env = os.environ.get("HOTPATH_TIME_SCALE")
    if env:
        return float(env)
    binary = os.environ.get("HOTPATH_BIN", "")
    return 3.0 if "/san/" in binary else 1.0


TIME_SCALE = _time_scale()


def scaled(seconds):
    """An upper bound in seconds, stretched for slow (sanitizer) builds."""
    return seconds * TIME_SCALE


# How long the server may take over something it does at once (answer an
# error, close after it, send 100 Continue) before a test calls it broken.
# Far more than a loaded machine needs, and still shorter than the
# shortest default timeout (keep-alive, 5 s) that a server that failed to
# act would wait for instead, so a bound this long still tells the two
# apart. Not scaled, for the same reason: acting at once costs little CPU.
PROMPT = 4.0


class ServerClosed(Exception):
    """The server closed the connection before a full response arrived."""


class Response:
    """One parsed HTTP response. Header names are kept as sent."""

    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value) in order
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        """First value of header `name` (case-insensitive), or default."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default

    def header_all(self, name):
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def header_names(self):
        return {k.lower() for k, _ in self.headers}

    def connection_tokens(self):
        toks = set()
        for v in self.header_all("Connection"):
            toks.update(t.strip().lower() for t in v.split(","))
        return toks

    def __repr__(self):
        return "<Response %d %r headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:200])


def build_request(method="GET", path="/", headers=None, body=b"",
                  version="HTTP/1.1", host="localhost"):
    """Bytes of a well-formed request. `headers` is a list of (name, value)
    or a dict; Host is added for HTTP/1.1 unless given (pass host=None to
    omit it); Content-Length is added when a body is given and neither
    Content-Length nor Transfer-Encoding is."""
    if headers is None:
        headers = []
    elif isinstance(headers, dict):
        headers = list(headers.items())
    names = {k.lower() for k, _ in headers}
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None and "host" not in names:
        lines.append("Host: %s" % host)
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if body and "content-length" not in names and \
            "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    if isinstance(body, str):
        body = body.encode()
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body, chunk_size=4096):
    """`body` in chunked transfer coding, last-chunk and empty trailer."""
    out = bytearray()
    for i in range(0, len(body), chunk_size):
        piece = body[i:i + chunk_size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


class Conn:
    """A client connection with a receive buffer, so pipelined responses
    can be read one by one."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, family=None):
        if family is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        try:
            self.sock.connect((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.buf = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def send_slowly(self, data, step=1):
        """Send `data` `step` bytes per send() call (TCP_NODELAY is on, so
        each call is normally its own segment)."""
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])

    def request(self, method="GET", path="/", head=None, **kw):
        """Send one request and read its response."""
        self.send(build_request(method, path, **kw))
        if head is None:
            head = method == "HEAD"
        return self.read_response(head=head)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed waiting for response bytes")
        self.sock.settimeout(min(remaining, self.timeout))
        data = self.sock.recv(262144)
        if not data:
            raise ServerClosed("connection closed; have %r" % bytes(self.buf[:500]))
        self.buf += data

    def read_head(self, timeout=None):
        """Read up to the end of one response head; return its bytes."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[:end + 4])
                del self.buf[:end + 4]
                return head
            if len(self.buf) > 1 << 20:
                raise AssertionError("response head too long")
            self._fill(deadline)

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response(self, head=False, timeout=None, allow_interim=False):
        """Read one full response. The body is framed by Content-Length
        (or chunked, or close); HEAD and 1xx/204/304 have none. Interim 1xx
        responses are returned only if allow_interim, else skipped."""
        timeout = timeout or self.timeout
        while True:
            raw = self.read_head(timeout)
            resp = parse_head(raw)
            if 100 <= resp.status < 200:
                if allow_interim:
                    return resp
                continue
            break
        if head or resp.status in (204, 304):
            return resp
        cl = resp.header("Content-Length")
        te = resp.header("Transfer-Encoding")
        if te is not None and "chunked" in te.lower():
            resp.body = self._read_chunked(timeout)
        elif cl is not None:
            resp.body = self.read_exact(int(cl), timeout)
        else:
            resp.body = self.read_until_close(timeout)
        return resp

    def _read_chunked(self, timeout):
        body = bytearray()
        while True:
            line = self._read_line(timeout)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self._read_line(timeout):
                    pass
                return bytes(body)
            body += self.read_exact(size, timeout)
            self.read_exact(2, timeout)

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill(deadline)

    def read_until_close(self, timeout=None):
        """Everything until the server closes (b'' from recv or a reset)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                self._fill(deadline)
            except ServerClosed:
                break
            except ConnectionResetError:
                break
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def wait_closed(self, timeout=PROMPT):
        """Wait until the server closes the connection; return the bytes
        received meanwhile. Raises AssertionError if still open."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    "server did not close the connection within %.1f s "
                    "(received %r)" % (timeout, bytes(self.buf[:200])))
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                out = bytes(self.buf)
                self.buf.clear()
                return out
            self.buf += data

    def assert_quiet(self, wait=0.2):
        """Assert that no (further) response bytes arrive within `wait`
        seconds and the connection stays open."""
        assert not self.buf, "unexpected bytes %r" % bytes(self.buf[:200])
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        finally:
            self.sock.settimeout(self.timeout)
        raise AssertionError("unexpected %s" % ("close" if not data else
                                                "bytes %r" % data[:200]))

    def is_open(self, wait=0.0):
        """True if the server has not closed the connection (and sent no
        bytes) within `wait` seconds."""
        self.sock.settimeout(wait if wait > 0 else 0.001)
        try:
            data = self.sock.recv(65536, socket.MSG_PEEK)
        except (socket.timeout, BlockingIOError):
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        return bool(data)


def parse_head(raw):
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise AssertionError("bad status line %r" % status_line)
    version = parts[0]
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise AssertionError("bad header line %r in %r" % (line, raw))
        headers.append((name, value.strip(" \t")))
    return Response(version, status, reason, headers, b"", raw)


def request(port, method="GET", path="/", timeout=5.0, **kw):
    """One request on a fresh connection (closed afterwards)."""
    with Conn(port, timeout=timeout) as c:
        return c.request(method, path, **kw)


def parse_metrics(text):
    """Prometheus text -> {'name{labels}': float}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key.strip()] = float(value)
    return out


def metrics(port, conn=None):
    """GET /metrics, parsed. Uses `conn` (keep-alive) if given."""
    if conn is not None:
        resp = conn.request("GET", "/metrics")
    else:
        resp = request(port, "GET", "/metrics")
    assert resp.status == 200, resp
    return parse_metrics(resp.body.decode())


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port, host="127.0.0.1", timeout=0.5):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((host, port))
            return True
        except (ConnectionRefusedError, socket.timeout, OSError):
            return False


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    """Poll `predicate` until it returns a true value; return that value.
    AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def curl(*args, timeout=20):
    """Run curl; return the CompletedProcess (stdout bytes, stderr text)."""
    proc = subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout + 5)
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def parse_curl_headers(text):
    """Parse `curl -i`/`-I` output: the last response head in it."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if
              b.startswith("HTTP/")]
    assert blocks, "no response head in %r" % text
    raw = blocks[-1].replace("\n", "\r\n") + "\r\n\r\n"
    return parse_head(raw.encode("latin-1"))


def cpu_ticks(pid):
    """utime + stime of a process (all threads), in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime is field 14, stime field 15.
    return int(fields[11]) + int(fields[12])
