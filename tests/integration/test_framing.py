"""Strict framing and limits over raw sockets.

Every rejected request must get its exact status, `Connection: close`, and
the connection must then be closed by the server (recv returns b'' within
2 s). Limits are checked at the boundary (accepted) and one past (rejected),
with the defaults and with limits set by flags.

Limit definitions these tests assume (the contract gives only "> N"):
  request line  = bytes of METHOD SP target SP version, without its CRLF
  header bytes  = bytes after the request line's CRLF up to and including
                  the CRLF of the empty line that ends the head
  header count  = number of field lines, Host included
  body          = decoded body bytes (Content-Length value)
"""

import pytest

import conftest
from helpers import (MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS,
                     MAX_REQUEST_LINE, PLAINTEXT_BODY, PROMPT)

H = b"Host: x\r\n"
POST = b"POST /echo HTTP/1.1\r\n" + H
GET = b"GET /plaintext HTTP/1.1\r\n" + H

# (id, raw request, expected status or set of acceptable statuses)
FRAMING = [
    # Content-Length / Transfer-Encoding conflicts (request smuggling)
    ("te_and_cl", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("cl_and_te", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("cl_duplicate_differing", POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("cl_list_differing", POST + b"Content-Length: 3, 4\r\n\r\nabcd", 400),
    ("cl_non_numeric", POST + b"Content-Length: abc\r\n\r\n", 400),
    ("cl_trailing_garbage", POST + b"Content-Length: 3x\r\n\r\nabc", 400),
    ("cl_plus_sign", POST + b"Content-Length: +3\r\n\r\nabc", 400),
    ("cl_minus_sign", POST + b"Content-Length: -3\r\n\r\nabc", 400),
    ("cl_empty", POST + b"Content-Length: \r\n\r\n", 400),
    ("cl_hex", POST + b"Content-Length: 0x3\r\n\r\nabc", 400),
    ("cl_inner_space", POST + b"Content-Length: 1 2\r\n\r\n", 400),
    ("cl_overflow", POST + b"Content-Length: 184467440737095516160\r\n\r\n", {400, 413}),
    # transfer codings other than one final chunked
    ("te_gzip", POST + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    ("te_identity", POST + b"Transfer-Encoding: identity\r\n\r\n", 501),
    ("te_gzip_chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te_chunked_not_final", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", {400, 501}),
    ("te_chunked_twice", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400, 501}),
    # field syntax
    ("obs_fold_space", GET + b"X-A: a\r\n b\r\n\r\n", 400),
    ("obs_fold_tab", GET + b"X-A: a\r\n\tb\r\n\r\n", 400),
    ("fold_before_first_field", b"GET /plaintext HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    ("space_before_colon", b"GET /plaintext HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("space_before_colon_other", GET + b"X-A : b\r\n\r\n", 400),
    ("tab_before_colon", GET + b"X-A\t: b\r\n\r\n", 400),
    ("bare_cr_in_value", GET + b"X-A: a\rb\r\n\r\n", 400),
    ("bare_cr_ends_request_line", b"GET /plaintext HTTP/1.1\rHost: x\r\n\r\n", 400),
    ("bare_cr_ends_field", GET + b"X-A: b\r\rX-B: c\r\n\r\n", 400),
    ("nul_in_field_name", GET + b"X-\x00A: b\r\n\r\n", 400),
    ("space_in_field_name", GET + b"X A: b\r\n\r\n", 400),
    ("paren_in_field_name", GET + b"X(A): b\r\n\r\n", 400),
    ("del_in_field_name", GET + b"X\x7fA: b\r\n\r\n", 400),
    ("high_byte_in_field_name", GET + b"X\xc3\xa9: b\r\n\r\n", 400),
    ("empty_field_name", GET + b": b\r\n\r\n", 400),
    ("field_without_colon", GET + b"NoColonHere\r\n\r\n", 400),
    # request line
    ("nul_in_request_line", b"GET /pl\x00aintext HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("ctl_in_target", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("del_in_target", b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("high_byte_in_target", b"GET /\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space_in_target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("double_space_after_method", b"GET  /plaintext HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("trailing_space_after_version", b"GET /plaintext HTTP/1.1 \r\n" + H + b"\r\n", 400),
    ("tab_separator", b"GET\t/plaintext HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("invalid_char_in_method", b"GE(T /plaintext HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("version_lowercase", b"GET /plaintext http/1.1\r\n" + H + b"\r\n", 400),
    ("version_garbage", b"GET /plaintext HTTX/1.1\r\n" + H + b"\r\n", 400),
    ("version_no_minor", b"GET /plaintext HTTP/11\r\n" + H + b"\r\n", 400),
    ("version_letters", b"GET /plaintext HTTP/1.x\r\n" + H + b"\r\n", 400),
    ("version_missing", b"GET /plaintext\r\n" + H + b"\r\n", {400, 505}),
    # version and method
    ("http_2_0", b"GET /plaintext HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http_3_0", b"GET /plaintext HTTP/3.0\r\n" + H + b"\r\n", 505),
    ("http_0_9", b"GET /plaintext HTTP/0.9\r\n" + H + b"\r\n", 505),
    ("unknown_method_foo", b"FOO /plaintext HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("unknown_method_brew", b"BREW /plaintext HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("method_lowercase", b"get /plaintext HTTP/1.1\r\n" + H + b"\r\n", 501),
    # chunked body syntax
    ("chunk_size_not_hex", POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk_size_negative", POST + b"Transfer-Encoding: chunked\r\n\r\n-1\r\na\r\n0\r\n\r\n", 400),
    ("chunk_size_0x_prefix", POST + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk_size_empty", POST + b"Transfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk_size_space_inside", POST + b"Transfer-Encoding: chunked\r\n\r\n1 1\r\n" + b"a" * 17 + b"\r\n0\r\n\r\n", 400),
    ("chunk_size_overflow", POST + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000000003\r\nabc\r\n0\r\n\r\n", {400, 413}),
    ("chunk_data_no_crlf", POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400),
    ("chunk_size_bare_lf_cr", POST + b"Transfer-Encoding: chunked\r\n\r\n3\rabc\r\n0\r\n\r\n", 400),
    # Host
    ("http11_without_host", b"GET /plaintext HTTP/1.1\r\n\r\n", 400),
    ("http11_two_hosts", b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
]


def assert_rejected(conn, expected):
    """Read the error response; check status, Connection: close, and that
    the server closes the connection at once (helpers.PROMPT)."""
    resp = conn.read_response(timeout=PROMPT)
    if isinstance(expected, set):
        assert resp.status in expected, resp
    else:
        assert resp.status == expected, resp
    assert "close" in resp.connection_tokens(), resp
    assert resp.header("Server") == "hotpath", resp
    assert resp.header("Content-Length") is not None, resp
    assert resp.body.startswith(str(resp.status).encode()), resp
    conn.wait_closed()
    return resp


@pytest.mark.parametrize("raw,expected", [(r, e) for _, r, e in FRAMING],
                         ids=[i for i, _, _ in FRAMING])
def test_strict_framing(server, raw, expected):
    with server.conn() as c:
        c.send(raw)
        assert_rejected(c, expected)


@pytest.mark.parametrize("raw,expected", [(r, e) for _, r, e in FRAMING[:12]],
                         ids=[i for i, _, _ in FRAMING[:12]])
def test_strict_framing_after_a_good_request(server, raw, expected):
    """The same rejections as the second request on a keep-alive
    connection: the first response is intact, the second is the error."""
    with server.conn() as c:
        c.send(GET + b"\r\n" + raw)
        first = c.read_response()
        assert first.status == 200 and first.body == PLAINTEXT_BODY
        assert_rejected(c, expected)


def test_leading_empty_line_before_request_is_ignored(conn):
    """RFC 9112 2.2: a server SHOULD ignore at least one CRLF before the
    request line (old clients send one after a POST body)."""
    conn.send(b"\r\n" + GET + b"\r\n")
    resp = conn.read_response()
    assert resp.status == 200 and resp.body == PLAINTEXT_BODY


def test_same_duplicate_content_length_accepted_or_rejected_cleanly(conn):
    """Identical duplicates MAY be accepted (RFC 9112 6.3); either way the
    response must frame correctly."""
    conn.send(POST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
    resp = conn.read_response()
    if resp.status == 200:
        assert resp.body == b"abc"
    else:
        assert resp.status == 400
        conn.wait_closed()


# -- limits ------------------------------------------------------------------

def request_line_of(n):
    """A GET /plaintext request line of exactly n bytes (without CRLF)."""
    fixed = len(b"GET /plaintext?p= HTTP/1.1")
    assert n >= fixed
    return b"GET /plaintext?p=" + b"a" * (n - fixed) + b" HTTP/1.1"


def header_section_of(n, end=True):
    """A header section (Host first, then padding, then the empty line)
    of exactly n bytes; without its final empty line if not `end`."""
    fixed = len(b"Host: x\r\nX-Pad: \r\n\r\n")
    assert n >= fixed
    sect = b"Host: x\r\nX-Pad: " + b"p" * (n - fixed) + b"\r\n\r\n"
    return sect if end else sect[:-2]


def headers_of_count(n):
    return H + b"".join(b"X-F%d: v\r\n" % i for i in range(n - 1))


CUSTOM = {"request_line": 200, "header_bytes": 600, "headers": 8, "body": 1000}
DEFAULT = {"request_line": MAX_REQUEST_LINE, "header_bytes": MAX_HEADER_BYTES,
           "headers": MAX_HEADERS, "body": MAX_BODY}


@pytest.fixture(scope="module")
def custom_server(hotpath_bin, doc_template, tmp_path_factory):
    factory = conftest.ServerFactory(hotpath_bin, doc_template,
                                     tmp_path_factory.mktemp("limits"))
    try:
        yield factory("--max-request-line", CUSTOM["request_line"],
                      "--max-header-bytes", CUSTOM["header_bytes"],
                      "--max-headers", CUSTOM["headers"],
                      "--max-body", CUSTOM["body"])
    finally:
        errors = factory.stop_all()
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture(params=["default", "custom"])
def limited(request):
    """(server, limits) for the default limits and for limits set by flags."""
    if request.param == "default":
        return request.getfixturevalue("server"), DEFAULT
    return request.getfixturevalue("custom_server"), CUSTOM


def test_request_line_at_limit_accepted(limited):
    srv, lim = limited
    with srv.conn() as c:
        c.send(request_line_of(lim["request_line"]) + b"\r\n" + H + b"\r\n")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == PLAINTEXT_BODY
        assert c.is_open()


def test_request_line_over_limit_414(limited):
    srv, lim = limited
    with srv.conn() as c:
        c.send(request_line_of(lim["request_line"] + 1) + b"\r\n" + H + b"\r\n")
        assert_rejected(c, 414)


def test_request_line_over_limit_414_without_line_end(limited):
    """414 must not wait for the end of an over-long request line."""
    srv, lim = limited
    with srv.conn() as c:
        c.send(request_line_of(lim["request_line"] + 100))
        assert_rejected(c, 414)


def test_header_bytes_at_limit_accepted(limited):
    srv, lim = limited
    with srv.conn() as c:
        c.send(b"GET /plaintext HTTP/1.1\r\n" +
               header_section_of(lim["header_bytes"]))
        resp = c.read_response()
        assert resp.status == 200 and resp.body == PLAINTEXT_BODY
        assert c.is_open()


def test_header_bytes_over_limit_431(limited):
    srv, lim = limited
    with srv.conn() as c:
        c.send(b"GET /plaintext HTTP/1.1\r\n" +
               header_section_of(lim["header_bytes"] + 1))
        assert_rejected(c, 431)


def test_header_bytes_over_limit_431_without_end(limited):
    """431 once the limit is passed, without waiting for the empty line."""
    srv, lim = limited
    with srv.conn() as c:
        c.send(b"GET /plaintext HTTP/1.1\r\n" +
               header_section_of(lim["header_bytes"] + 200, end=False))
        assert_rejected(c, 431)


def test_header_count_at_limit_accepted(limited):
    srv, lim = limited
    with srv.conn() as c:
        c.send(b"GET /plaintext HTTP/1.1\r\n" + headers_of_count(lim["headers"]) + b"\r\n")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == PLAINTEXT_BODY
        assert c.is_open()


def test_header_count_over_limit_431(limited):
    srv, lim = limited
    with srv.conn() as c:
        c.send(b"GET /plaintext HTTP/1.1\r\n" + headers_of_count(lim["headers"] + 1) + b"\r\n")
        assert_rejected(c, 431)


def test_body_at_limit_accepted(limited):
    srv, lim = limited
    body = bytes(i & 0xFF for i in range(lim["body"]))
    with srv.conn() as c:
        c.send(POST + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == body
        assert c.is_open()


def test_body_over_limit_413_before_body_sent(limited):
    """413 is decided from the headers: it arrives without any body sent."""
    srv, lim = limited
    with srv.conn() as c:
        c.send(POST + b"Content-Length: %d\r\n\r\n" % (lim["body"] + 1))
        assert_rejected(c, 413)


def test_chunked_body_at_limit_accepted(limited):
    srv, lim = limited
    body = bytes((i * 3) & 0xFF for i in range(lim["body"]))
    with srv.conn() as c:
        c.send(POST + b"Transfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == body


def test_chunked_body_over_limit_413(custom_server):
    lim = CUSTOM["body"]
    with custom_server.conn() as c:
        c.send(POST + b"Transfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n" % (lim // 2) + b"a" * (lim // 2) + b"\r\n" +
               b"%x\r\n" % (lim // 2 + 1) + b"b" * (lim // 2 + 1) + b"\r\n0\r\n\r\n")
        assert_rejected(c, 413)


def test_rejections_are_counted(server):
    with server.conn() as mc:
        before = server.metrics(mc)
        with server.conn() as c:
            c.send(b"FOO / HTTP/1.1\r\n" + H + b"\r\n")
            assert_rejected(c, 501)
        after = server.metrics(mc)
    rej = lambda m: sum(v for k, v in m.items() if k.startswith("hotpath_rejected_total"))
    assert rej(after) - rej(before) == 1
    d5 = after['hotpath_responses_total{class="5xx"}'] - \
        before['hotpath_responses_total{class="5xx"}']
    assert d5 == 1
