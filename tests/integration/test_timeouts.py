"""Timeouts: slow headers (slowloris), stalled bodies, idle connections and
clients that stop reading."""

import socket
import time

import pytest

from helpers import PLAINTEXT_BODY, wait_until

# Upper bound on when a timeout of 0.5 s or 1 s must have fired. Lower
# bounds prove a timeout is not early; the upper one only has to tell the
# configured value from the 10 s defaults a server ignoring it would use
# (or from never), so it leaves a loaded machine seconds to spare.
LATE = 8.0


def read_408(conn, started, lo, hi):
    resp = conn.read_response(timeout=hi + 1)
    elapsed = time.monotonic() - started
    assert resp.status == 408, resp
    assert "close" in resp.connection_tokens(), resp
    conn.wait_closed()
    assert lo <= elapsed <= hi, "408 after %.2f s, expected %.1f..%.1f" % (
        elapsed, lo, hi)


def test_slowloris_header_timeout(start_server):
    """Headers trickled one byte every 0.2 s never finish: 408 after about
    --header-timeout (the timeout covers the whole header section, it is not
    reset by each byte), then close."""
    srv = start_server("--header-timeout", "1")
    with srv.conn() as c:
        started = time.monotonic()
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
        deadline = started + LATE
        while time.monotonic() < deadline and not c.buf:
            try:
                c.send(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
            c.sock.settimeout(0.2)
            try:
                data = c.sock.recv(4096)
            except socket.timeout:
                continue
            if not data:
                break       # closed: read_408 reports the missing response
            c.buf += data
        read_408(c, started, 0.9, LATE)


def test_header_timeout_partial_request_line(start_server):
    srv = start_server("--header-timeout", "0.5")
    with srv.conn() as c:
        started = time.monotonic()
        c.send(b"GET /plain")
        read_408(c, started, 0.4, LATE)


def test_header_timeout_does_not_cut_normal_requests(start_server):
    """A connection making quick requests is never hit by the header
    timeout even though it lives longer than it."""
    srv = start_server("--header-timeout", "0.5", "--keepalive-timeout", "5")
    with srv.conn() as c:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            resp = c.request("GET", "/plaintext")
            assert resp.status == 200 and resp.body == PLAINTEXT_BODY
            time.sleep(0.1)


def test_body_stall_timeout(start_server):
    srv = start_server("--body-timeout", "1")
    with srv.conn() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcde")
        started = time.monotonic()
        read_408(c, started, 0.9, LATE)


def test_body_timeout_is_a_stall_timeout(start_server):
    """A body that keeps arriving (every 0.3 s) is not cut after 1 s."""
    srv = start_server("--body-timeout", "1")
    with srv.conn() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        for b in b"abcdefgh":
            time.sleep(0.3)
            c.send(bytes([b]))
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"abcdefgh"


def test_idle_connection_without_request_closed(start_server):
    """A client that connects and never sends anything is dropped. The
    bound (4.5 s) is short of the 5 s keep-alive default."""
    srv = start_server("--header-timeout", "1", "--keepalive-timeout", "1")
    with srv.conn() as c:
        started = time.monotonic()
        data = c.wait_closed(4.5)
        elapsed = time.monotonic() - started
    assert data in (b"",) or data.startswith(b"HTTP/1.1 408"), data
    assert elapsed >= 0.8


@pytest.mark.time_limit(40)
def test_write_timeout_closes_non_reading_client(start_server):
    """A client that asks for a file bigger than all socket buffers and never
    reads is closed after about --write-timeout; the server stays healthy."""
    srv = start_server("--write-timeout", "1", "--keepalive-timeout", "30")
    (srv.root / "huge.bin").write_bytes(b"h" * (32 << 20))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window, set before connect so it is advertised.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", srv.port))
    try:
        s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        # Do not read. Watch the server's open-connection gauge from another
        # connection until it gives up on us.
        with srv.conn() as mc:
            # First the server must have taken the connection (another
            # worker may accept it a moment after this one answers), or
            # "at most one open" would hold before it even started.
            wait_until(lambda: srv.metrics(mc)["hotpath_bytes_sent_total"] > (1 << 20),
                       LATE, interval=0.05, what="the file to start going out")
            wait_until(lambda: srv.metrics(mc)["hotpath_connections_open"] <= 1,
                       LATE, interval=0.1,
                       what="the non-reading client to be closed")
            assert mc.request("GET", "/plaintext").body == PLAINTEXT_BODY
        # What we do get is a truncated response. Its end (FIN) can take
        # long to arrive: with a 4 KiB window the receiver sends no window
        # updates and the closed socket's sender backs off its zero-window
        # probes (seconds). So read what comes within a bound and check
        # that it is not the whole file.
        s.settimeout(2)
        got = 0
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    break
                got += len(d)
        except (ConnectionResetError, socket.timeout):
            pass
        assert got < (32 << 20)
    finally:
        s.close()


def test_header_timeout_survives_a_blocked_write(start_server):
    """A partial request queued behind a response the client is slow to
    read still gets its header timeout: the write timer holds the
    connection's one timer while output is blocked, and the header timer
    must come back (with the time left) once the output drains."""
    srv = start_server("--header-timeout", "1", "--write-timeout", "5")
    (srv.root / "huge.bin").write_bytes(b"h" * (16 << 20))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window, set before connect so it is advertised: the
    # 16 MiB response cannot all fit in the socket buffers, so the
    # server's output blocks.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(LATE)
    s.connect(("127.0.0.1", srv.port))
    try:
        started = time.monotonic()
        s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /plaintext HTTP/1.1\r\nHo")
        time.sleep(1.5)  # past the header timeout, output still blocked
        got = b""
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            got += data
        elapsed = time.monotonic() - started
    finally:
        s.close()
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    body, tail = rest[:16 << 20], rest[16 << 20:]
    assert body == b"h" * (16 << 20)
    # The header timer came back after the drain and ran out at once (its
    # second had passed): 408, then the connection closed.
    assert tail.startswith(b"HTTP/1.1 408"), tail[:80]
    # Short of the 10 s default header timeout a lost timer would leave.
    assert elapsed < LATE
