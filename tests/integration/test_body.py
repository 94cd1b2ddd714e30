"""Request bodies: chunked uploads (curl and raw, with extensions and
trailers) and Expect: 100-continue."""

import os
import socket

import pytest

from helpers import (MAX_BODY, PLAINTEXT_BODY, PROMPT, build_request, chunked,
                     curl, scaled)


def test_curl_chunked_upload(server, tmp_path):
    data = os.urandom(300 * 1024)
    f = tmp_path / "up.bin"
    f.write_bytes(data)
    r = curl("-f", "-H", "Transfer-Encoding: chunked", "--data-binary",
             "@%s" % f, server.url("/echo"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_raw_chunked_with_extensions_and_trailers(conn):
    head = (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    body = (b"5;foo=bar\r\nhello\r\n"
            b"6;a;b=\"c d\"\r\n world\r\n"
            b"A\r\n0123456789\r\n"
            b"0;last=1\r\n"
            b"X-Trailer: yes\r\nAnother-Trailer: 1\r\n\r\n")
    conn.send(head + body)
    resp = conn.read_response()
    assert resp.status == 200
    assert resp.body == b"hello world0123456789"
    assert resp.header("Content-Length") == str(len(resp.body))
    # Trailers were consumed: the connection is in sync for the next request.
    nxt = conn.request("GET", "/plaintext")
    assert nxt.status == 200 and nxt.body == PLAINTEXT_BODY


def test_raw_chunked_uppercase_hex_and_sent_slowly(conn):
    data = bytes(range(256)) * 20
    req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"%X\r\n" % len(data) + data + b"\r\n0\r\n\r\n")
    conn.send_slowly(req, 97)
    resp = conn.read_response()
    assert resp.status == 200
    assert resp.body == data


def test_raw_chunked_many_small_chunks(conn):
    data = os.urandom(20000)
    conn.send(build_request("POST", "/echo",
                            headers=[("Transfer-Encoding", "chunked")],
                            body=chunked(data, 7)))
    resp = conn.read_response()
    assert resp.status == 200
    assert resp.body == data


def test_raw_chunked_empty_body(conn):
    conn.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    resp = conn.read_response()
    assert resp.status == 200
    assert resp.body == b""


def test_chunked_over_max_body_is_413(server):
    """A chunked body cannot be judged from the headers: 413 as soon as the
    decoded size passes the limit, then close."""
    with server.conn(timeout=scaled(10)) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"x" * 65536
        chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
        try:
            for _ in range(MAX_BODY // len(piece) + 1):
                c.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = c.read_response()
        assert resp.status == 413
        assert "close" in resp.connection_tokens()
        c.wait_closed()


def test_curl_expect_100_continue(server, tmp_path):
    data = os.urandom(512 * 1024)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    r = curl("-v", "-f", "-H", "Expect: 100-continue", "--expect100-timeout",
             "10", "--data-binary", "@%s" % f, server.url("/echo"))
    assert r.returncode == 0, r.stderr
    assert "< HTTP/1.1 100 Continue" in r.stderr, r.stderr
    assert r.stdout == data


def test_raw_100_continue_before_body(server):
    body = os.urandom(10000)
    with server.conn() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        interim = c.read_response(allow_interim=True, timeout=PROMPT)
        assert interim.status == 100
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(body)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == body


def test_raw_100_continue_chunked(server):
    with server.conn() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        interim = c.read_response(allow_interim=True, timeout=PROMPT)
        assert interim.status == 100
        c.send(b"3\r\nabc\r\n0\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"abc"


def test_expect_100_with_too_large_body_gets_413_not_100(server):
    with server.conn() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        resp = c.read_response(allow_interim=True, timeout=PROMPT)
        assert resp.status == 413
        c.wait_closed()


def test_no_100_continue_for_http10(server):
    """HTTP/1.0 clients do not understand 1xx (RFC 9110 10.1.1)."""
    with server.conn() as c:
        c.send(b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\n"
               b"Content-Length: 3\r\n\r\n")
        c.sock.settimeout(0.3)
        try:
            early = c.sock.recv(100)
        except socket.timeout:
            early = b""
        assert not early.startswith(b"HTTP/1.1 100"), early
        c.buf += early
        c.send(b"abc")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"abc"


@pytest.mark.parametrize("size", [0, 1, 1000, MAX_BODY])
def test_echo_sizes_content_length(conn, size):
    body = os.urandom(size)
    resp = conn.request("POST", "/echo", body=body,
                        headers=[("Content-Length", str(size))])
    assert resp.status == 200
    assert resp.body == body
