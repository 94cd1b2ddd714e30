"""A second protocol beside HTTP: examples/upgrade.c in a real program.

The example serves HTTP on one port, where GET /lineecho upgrades the
connection (101 Switching Protocols) to "lineecho", a line protocol that
answers "N: line" for each line, and lineecho directly on a second port:
two listeners with two protocols on the same workers, and a connection
that changes protocol in place. It is built the way test_examples.py builds
the other examples (make install into a scratch DESTDIR, the installed
tree's pkg-config flags, linked statically) and must exit 0 (and, under the
sanitizers, quietly) on SIGTERM.
"""

import socket
import subprocess
import time

import pytest

from helpers import can_connect, free_port, metrics, scaled, wait_until
from test_examples import _compile, installed  # noqa: F401 (fixture)

UPGRADE_REQ = (b"GET /lineecho HTTP/1.1\r\nHost: x\r\n"
               b"Connection: keep-alive, Upgrade\r\nUpgrade: lineecho\r\n\r\n")


@pytest.fixture(scope="module")
def exe(installed, tmp_path_factory):  # noqa: F811 (the imported fixture)
    dest, san = installed
    out = tmp_path_factory.mktemp("upgrade-example")
    return _compile(dest, san, "upgrade", out / "upgrade")


class Upgrade:
    def __init__(self, exe, tmp_path):
        self.port, self.echo_port = free_port(), free_port()
        self.log = tmp_path / "upgrade.log"
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [str(exe), "127.0.0.1:%d" % self.port, "127.0.0.1:%d" % self.echo_port],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._out,
            start_new_session=True)

    def output(self):
        return self.log.read_text("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=scaled(8))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return "upgrade did not exit on SIGTERM:\n" + self.output()
        finally:
            self._out.close()
        text = self.output()
        if rc != 0:
            return "upgrade exited with %d:\n%s" % (rc, text)
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if bad in text:
                return "upgrade: sanitizer report:\n" + text
        return None


@pytest.fixture
def ex(exe, tmp_path):
    e = Upgrade(exe, tmp_path)
    try:
        def ready():
            if e.proc.poll() is not None:
                pytest.fail("upgrade exited at start-up:\n" + e.output())
            return can_connect(e.port) and can_connect(e.echo_port)
        wait_until(ready, scaled(10), what="both listeners")
        yield e
    finally:
        err = e.stop()
    if err:
        pytest.fail(err, pytrace=False)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until(s, want, limit=1 << 16):
    """Reads until `want` (bytes) has arrived; returns everything read."""
    got = b""
    while want not in got:
        d = s.recv(limit)
        if not d:
            raise AssertionError("connection closed; got %r" % got)
        got += d
    return got


def read_head(s):
    """One response head and what arrived behind it: (status, headers, rest)."""
    got = read_until(s, b"\r\n\r\n")
    head, _, rest = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    return status, fields, rest


def read_lines(s, rest, n):
    """`rest` and more until n newline-terminated lines; returns them."""
    while rest.count(b"\n") < n:
        d = s.recv(1 << 16)
        if not d:
            raise AssertionError("connection closed; got %r" % rest)
        rest += d
    return rest.decode().splitlines()


def test_upgrade_keeps_pipelined_bytes(ex):
    """Lines sent in the same packet as the upgrade request are the new
    protocol's first input, answered after the 101."""
    with connect(ex.port) as s:
        s.sendall(UPGRADE_REQ + b"hello\nworld\n")
        status, fields, rest = read_head(s)
        assert status == 101
        assert fields["connection"].lower() == "upgrade"
        assert fields["upgrade"] == "lineecho"
        assert "content-length" not in fields
        assert read_lines(s, rest, 2) == ["1: hello", "2: world"]
        # The connection stays lineecho.
        s.sendall(b"again\n")
        assert read_until(s, b"\n") == b"3: again\n"


def test_upgrade_after_pipelined_requests(ex):
    """Requests before the upgrade are answered in order first; the split
    of the packet does not matter."""
    data = (b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n" + UPGRADE_REQ + b"one\ntwo\n")
    for cut in (len(data), len(data) - 5, 40):
        with connect(ex.port) as s:
            s.sendall(data[:cut])
            time.sleep(0.02)
            s.sendall(data[cut:])
            status, fields, rest = read_head(s)
            assert status == 404
            body_len = int(fields["content-length"])
            while len(rest) < body_len:
                rest += s.recv(4096)
            rest = rest[body_len:]
            if b"\r\n\r\n" not in rest:
                rest += read_until(s, b"\r\n\r\n")
            head, _, rest = rest.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 ")
            assert read_lines(s, rest, 2) == ["1: one", "2: two"]


@pytest.mark.parametrize("req", [
    b"GET /lineecho HTTP/1.1\r\nHost: x\r\n\r\n",                                   # no Upgrade
    b"GET /lineecho HTTP/1.1\r\nHost: x\r\nUpgrade: lineecho\r\n\r\n",              # no Connection: upgrade
    b"GET /lineecho HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET /lineecho HTTP/1.0\r\nHost: x\r\nConnection: keep-alive, upgrade\r\nUpgrade: lineecho\r\n\r\n",
])
def test_bad_upgrade_is_a_clean_http_error(ex, req):
    """A request that cannot be upgraded gets 426 naming the protocol, and
    the connection goes on speaking HTTP."""
    with connect(ex.port) as s:
        s.sendall(req)
        status, fields, rest = read_head(s)
        assert status == 426
        assert fields["upgrade"] == "lineecho"
        body_len = int(fields["content-length"])
        while len(rest) < body_len:
            rest += s.recv(4096)
        if b"HTTP/1.0" in req:
            return  # 1.0 keep-alive is honoured, but nothing more to show
        s.sendall(b"GET /lineecho HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = read_head(s)
        assert status == 426


def test_head_cannot_upgrade(ex):
    with connect(ex.port) as s:
        s.sendall(b"HEAD /lineecho HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
                  b"Upgrade: lineecho\r\n\r\n")
        status, _, _ = read_head(s)
        assert status == 426


def test_second_listener_speaks_lineecho(ex):
    """The other port runs the other protocol from the first byte, with its
    own count per connection."""
    with connect(ex.echo_port) as a, connect(ex.echo_port) as b:
        a.sendall(b"x\ny\n")
        b.sendall(b"z\n")
        assert read_lines(a, b"", 2) == ["1: x", "2: y"]
        assert read_lines(b, b"", 1) == ["1: z"]
        # HTTP on the lineecho port is just lines.
        a.sendall(b"GET / HTTP/1.1\r\n")
        assert read_until(a, b"\n") == b"3: GET / HTTP/1.1\n"


def test_overlong_line_closes_with_error(ex):
    with connect(ex.echo_port) as s:
        s.sendall(b"a" * 5000)
        got = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
        assert got == b"error: line too long\n"


def test_upgrades_counted(ex):
    """hotpath_upgrades_total counts the connections handed over, not the
    refused attempts."""
    before = metrics(ex.port)["hotpath_upgrades_total"]
    for _ in range(3):
        with connect(ex.port) as s:
            s.sendall(UPGRADE_REQ + b"q\n")
            _, _, rest = read_head(s)
            assert read_lines(s, rest, 1) == ["1: q"]
    with connect(ex.port) as s:
        s.sendall(b"GET /lineecho HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_head(s)[0] == 426
    assert metrics(ex.port)["hotpath_upgrades_total"] == before + 3


@pytest.mark.parametrize("fields", [
    b"Connection: Upgrade\r\nUpgrade: LineEcho/2\r\n",             # case, a version
    b"Connection: keep-alive\r\nConnection: upgrade\r\nUpgrade: h2c, lineecho\r\n",
    b"Upgrade: lineecho\r\nconnection: TE ,  upgrade\r\n",
])
def test_upgrade_field_forms(ex, fields):
    """Tokens are matched case-insensitively, in any list element of any
    Connection or Upgrade line."""
    with connect(ex.port) as s:
        s.sendall(b"GET /lineecho HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\nz\n")
        status, _, rest = read_head(s)
        assert status == 101
        assert read_lines(s, rest, 1) == ["1: z"]


def test_closing_request_cannot_upgrade(ex):
    """Connection: close wins: the server answers 426 and closes."""
    with connect(ex.port) as s:
        s.sendall(b"GET /lineecho HTTP/1.1\r\nHost: x\r\nConnection: close, upgrade\r\n"
                  b"Upgrade: lineecho\r\n\r\n")
        status, fields, _ = read_head(s)
        assert status == 426
        assert fields["connection"] == "close"
