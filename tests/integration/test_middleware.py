"""The ready-made middleware (include/hotpath/middleware.h) in a real program.

examples/middleware.c is built the way test_examples.py builds the other
examples: `make install` into a scratch DESTDIR, compiled with the installed
tree's pkg-config flags and linked statically (its fixtures and helpers are
reused from that module). It runs one GET|OPTIONS route behind the request
ID and CORS middleware, allowing https://example.com, and is driven with
curl and raw sockets; it must exit 0 (and, under the sanitizers, quietly)
on SIGTERM.
"""

import re

import pytest

from helpers import curl, parse_curl_headers
from test_examples import Example, _compile, installed  # noqa: F401 (fixture)

ORIGIN = "https://example.com"
GENERATED_ID = re.compile(r"^[0-9a-f]{8}-w[0-9]+-[0-9a-f]{12,16}$")


@pytest.fixture(scope="module")
def exe(installed, tmp_path_factory):  # noqa: F811 (the imported fixture)
    dest, san = installed
    out = tmp_path_factory.mktemp("mw-example")
    return _compile(dest, san, "middleware", out / "middleware")


@pytest.fixture
def ex(exe, tmp_path):
    """A running example, stopped with SIGTERM at teardown; it must exit 0."""
    e = Example(exe, tmp_path)
    try:
        e.wait_ready()
        yield e
    finally:
        err = e.stop()
    if err:
        pytest.fail(err, pytrace=False)


def curl_i(*args):
    """curl -i: (parsed head, body bytes)."""
    r = curl("-i", *args)
    assert r.returncode == 0, r.stderr
    head = parse_curl_headers(r.stdout.decode("latin-1"))
    return head, r.stdout.partition(b"\r\n\r\n")[2]


def test_preflight_allowed(ex):
    head, body = curl_i("-X", "OPTIONS", "-H", "Origin: " + ORIGIN,
                        "-H", "Access-Control-Request-Method: GET",
                        "-H", "Access-Control-Request-Headers: content-type",
                        ex.url("/api/hello"))
    assert head.status == 204 and body == b"", (head, body)
    assert head.header("Access-Control-Allow-Origin") == ORIGIN, head
    assert head.header("Access-Control-Allow-Methods") == "GET, HEAD, OPTIONS", head
    assert head.header("Access-Control-Allow-Headers") == "Content-Type, X-Request-Id", head
    assert head.header("Access-Control-Max-Age") == "600", head
    assert head.header_all("Vary") == ["Origin"], head
    assert head.header("Access-Control-Allow-Credentials") is None, head
    # The request ID middleware runs first, so the early answer has one.
    assert GENERATED_ID.match(head.header("X-Request-Id", "")), head


def test_preflight_denied(ex):
    for origin in ("https://evil.example", "https://example.com.evil", "http://example.com"):
        head, body = curl_i("-X", "OPTIONS", "-H", "Origin: " + origin,
                            "-H", "Access-Control-Request-Method: GET",
                            ex.url("/api/hello"))
        assert head.status == 403, (origin, head)
        assert head.header("Access-Control-Allow-Origin") is None, head
        assert head.header("Access-Control-Allow-Methods") is None, head


def test_plain_options(ex):
    """OPTIONS without CORS headers reaches the route's handler."""
    head, body = curl_i("-X", "OPTIONS", ex.url("/api/hello"))
    assert head.status == 204 and body == b"", head
    allow = [m.strip() for m in head.header("Allow", "").split(",")]
    assert allow == ["GET", "HEAD", "OPTIONS"], head
    assert head.header("Access-Control-Allow-Origin") is None, head


def test_cross_origin_get(ex):
    head, body = curl_i("-H", "Origin: " + ORIGIN, ex.url("/api/hello"))
    assert head.status == 200, head
    assert head.header("Access-Control-Allow-Origin") == ORIGIN, head
    assert head.header("Access-Control-Expose-Headers") == "X-Request-Id", head
    assert head.header_all("Vary") == ["Origin"], head
    rid = head.header("X-Request-Id", "")
    assert GENERATED_ID.match(rid), head
    # The handler saw the same ID through hp_middleware_request_id_of.
    assert body == ("hello, request %s\n" % rid).encode(), body

    head, _ = curl_i("-H", "Origin: https://evil.example", ex.url("/api/hello"))
    assert head.status == 200, head
    assert head.header("Access-Control-Allow-Origin") is None, head
    head, _ = curl_i(ex.url("/api/hello"))
    assert head.status == 200 and head.header("Access-Control-Allow-Origin") is None, head
    assert head.header_all("Vary") == ["Origin"], head


def test_request_ids(ex):
    head, body = curl_i("-H", "X-Request-Id: client-42.a_b", ex.url("/api/hello"))
    assert head.header("X-Request-Id") == "client-42.a_b", head
    assert body == b"hello, request client-42.a_b\n", body
    for bad in ("x" * 65, "has space", "semi;colon", ""):
        head, body = curl_i("-H", "X-Request-Id: " + bad if bad else "X-Request-Id;",
                            ex.url("/api/hello"))
        rid = head.header("X-Request-Id", "")
        assert GENERATED_ID.match(rid), (bad, head)
    # Keep-alive requests on one connection each get a new ID.
    ids = set()
    with ex.conn() as c:
        for _ in range(50):
            resp = c.request("GET", "/api/hello")
            assert resp.status == 200, resp
            ids.add(resp.header("X-Request-Id"))
    assert len(ids) == 50 and all(GENERATED_ID.match(i) for i in ids), ids
    # One random prefix per process.
    assert len({i[:8] for i in ids}) == 1, ids


def test_unrouted_options(ex):
    """Paths without a route: the router's 404, no middleware."""
    head, _ = curl_i("-X", "OPTIONS", "-H", "Origin: " + ORIGIN,
                     "-H", "Access-Control-Request-Method: GET", ex.url("/other"))
    assert head.status == 404, head
    assert head.header("X-Request-Id") is None, head
    assert head.header("Access-Control-Allow-Origin") is None, head
