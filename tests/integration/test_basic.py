"""Built-in endpoints, static files, methods and metrics, with curl and with
raw sockets, against one shared default server."""

import os
import re

import pytest

from conftest import DOC_FILES, INDEX_HTML, SUB_INDEX_HTML
from helpers import (HEALTH_BODY, JSON_BODY, MAX_BODY, PLAINTEXT_BODY,
                     curl, parse_curl_headers, parse_metrics, wait_until)

BUILTIN = [
    ("/plaintext", "text/plain", PLAINTEXT_BODY),
    ("/json", "application/json", JSON_BODY),
    ("/health", "application/json", HEALTH_BODY),
]


def media_type(value):
    return (value or "").split(";")[0].strip().lower()


def assert_common_headers(resp):
    assert resp.header("Server") == "hotpath", resp
    assert resp.header("Date"), resp
    assert re.match(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$",
                    resp.header("Date")), resp.header("Date")
    assert resp.header("Content-Length") is not None, resp
    assert resp.header("Transfer-Encoding") is None, resp


# -- curl ------------------------------------------------------------------

@pytest.mark.parametrize("path,ctype,body", BUILTIN)
def test_curl_get_builtin(server, path, ctype, body):
    r = curl("-i", server.url(path))
    assert r.returncode == 0, r.stderr
    head, _, got = r.stdout.partition(b"\r\n\r\n")
    resp = parse_curl_headers(head.decode("latin-1") + "\r\n\r\n")
    assert resp.status == 200
    assert media_type(resp.header("Content-Type")) == ctype
    assert got == body
    assert int(resp.header("Content-Length")) == len(body)


def test_curl_get_index(server):
    r = curl("-f", server.url("/"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == INDEX_HTML


def test_curl_get_static_file(server):
    r = curl("-f", server.url("/big.bin"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == DOC_FILES["big.bin"]


def test_curl_head(server):
    r = curl("-I", server.url("/plaintext"))
    assert r.returncode == 0, r.stderr
    resp = parse_curl_headers(r.stdout.decode("latin-1"))
    assert resp.status == 200
    assert resp.header("Content-Length") == str(len(PLAINTEXT_BODY))
    assert media_type(resp.header("Content-Type")) == "text/plain"


def test_curl_404(server):
    r = curl("-o", "/dev/null", "-w", "%{http_code}", server.url("/no/such/file"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"404"


def test_curl_echo_1mib_at_limit(server, tmp_path):
    data = os.urandom(MAX_BODY)
    f = tmp_path / "body.bin"
    f.write_bytes(data)
    r = curl("-f", "--data-binary", "@%s" % f, "-H",
             "Content-Type: application/octet-stream", server.url("/echo"))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == len(data)
    assert r.stdout == data


# -- raw requests ----------------------------------------------------------

@pytest.mark.parametrize("path,ctype,body", BUILTIN)
def test_get_builtin(conn, path, ctype, body):
    resp = conn.request("GET", path)
    assert resp.status == 200
    assert media_type(resp.header("Content-Type")) == ctype
    assert resp.body == body
    assert_common_headers(resp)


@pytest.mark.parametrize("path", ["/plaintext", "/json", "/health", "/",
                                  "/index.html", "/style.css", "/big.bin",
                                  "/empty.txt"])
def test_head_matches_get(conn, path):
    get = conn.request("GET", path)
    head = conn.request("HEAD", path)
    assert get.status == head.status == 200
    for name in ("Content-Length", "Content-Type", "Server"):
        assert head.header(name) == get.header(name), name
    assert int(head.header("Content-Length")) == len(get.body)
    # No body after the HEAD response: the next response parses cleanly.
    nxt = conn.request("GET", "/plaintext")
    assert nxt.status == 200 and nxt.body == PLAINTEXT_BODY
    assert not conn.buf


def test_head_404_has_no_body(conn):
    resp = conn.request("HEAD", "/missing.html")
    assert resp.status == 404
    assert resp.header("Content-Length") is not None
    nxt = conn.request("GET", "/health")
    assert nxt.status == 200 and nxt.body == HEALTH_BODY


def test_404_is_plain_text(conn):
    resp = conn.request("GET", "/missing.html")
    assert resp.status == 404
    assert_common_headers(resp)
    assert media_type(resp.header("Content-Type")) == "text/plain"
    assert resp.body.startswith(b"404")


@pytest.mark.parametrize("method,path,expected", [
    ("GET", "/missing.html", b"404 Not Found\n"),
    ("POST", "/plaintext", b"405 Method Not Allowed\n"),
    ("GET", "/%zz", b"400 Bad Request\n"),
])
def test_error_body_is_status_line_text(server, method, path, expected):
    """Error bodies are short text such as `400 Bad Request\\n`."""
    with server.conn() as c:
        resp = c.request(method, path, body=b"x" if method == "POST" else b"")
    assert resp.body == expected


def test_target_not_origin_form_is_400(server):
    with server.conn() as c:
        c.send(b"GET plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 400


def test_echo_content_length(conn):
    body = b"some bytes \x00\xff\r\n and more"
    resp = conn.request("POST", "/echo", body=body)
    assert resp.status == 200
    assert resp.body == body
    assert media_type(resp.header("Content-Type")) == "application/octet-stream"
    assert_common_headers(resp)


def test_echo_empty_body(conn):
    resp = conn.request("POST", "/echo", headers=[("Content-Length", "0")])
    assert resp.status == 200
    assert resp.body == b""
    assert resp.header("Content-Length") == "0"


def test_echo_1mib_raw(conn):
    body = os.urandom(MAX_BODY)
    resp = conn.request("POST", "/echo", body=body)
    assert resp.status == 200
    assert resp.body == body


def test_http10_without_host(server):
    with server.conn() as c:
        c.send(b"GET /plaintext HTTP/1.0\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == PLAINTEXT_BODY
        c.wait_closed()


def test_http11_minor_version_above_1(conn):
    """HTTP/1.2 is a 1.x version: served, as 1.1 (RFC 9110 2.5)."""
    resp = conn.request("GET", "/plaintext", version="HTTP/1.2")
    assert resp.status == 200
    assert resp.version == "HTTP/1.1"


def test_query_string_ignored_for_routing(conn):
    resp = conn.request("GET", "/plaintext?x=1&y=2")
    assert resp.status == 200 and resp.body == PLAINTEXT_BODY


def test_absolute_form_target(conn):
    resp = conn.request("GET", "http://localhost/plaintext")
    assert resp.status == 200 and resp.body == PLAINTEXT_BODY


# -- static files ----------------------------------------------------------

@pytest.mark.parametrize("path,types", [
    ("/index.html", {"text/html"}),
    ("/style.css", {"text/css"}),
    ("/app.js", {"application/javascript", "text/javascript"}),
    ("/data.json", {"application/json"}),
    ("/notes.txt", {"text/plain"}),
    ("/logo.png", {"image/png"}),
])
def test_static_content_type(conn, path, types):
    resp = conn.request("GET", path)
    assert resp.status == 200
    assert media_type(resp.header("Content-Type")) in types
    assert resp.body == DOC_FILES[path[1:]]
    assert_common_headers(resp)


def test_static_root_serves_index(conn):
    resp = conn.request("GET", "/")
    assert resp.status == 200
    assert resp.body == INDEX_HTML
    assert media_type(resp.header("Content-Type")) == "text/html"


def test_static_subdir_index(conn):
    resp = conn.request("GET", "/sub/")
    assert resp.status == 200
    assert resp.body == SUB_INDEX_HTML


def test_static_directory_without_slash_redirects(conn):
    resp = conn.request("GET", "/sub")
    assert resp.status == 301
    loc = resp.header("Location")
    assert loc is not None
    assert loc == "/sub/" or loc.endswith("://localhost/sub/"), loc
    assert_common_headers(resp)


def test_static_directory_without_index_not_listed(conn):
    resp = conn.request("GET", "/nosindex/")
    assert resp.status in (403, 404)
    assert b"readme.txt" not in resp.body


def test_static_empty_file(conn):
    resp = conn.request("GET", "/empty.txt")
    assert resp.status == 200
    assert resp.header("Content-Length") == "0"
    assert resp.body == b""


def test_static_percent_decoded_path(conn):
    resp = conn.request("GET", "/index%2Ehtml")
    assert resp.status == 200
    assert resp.body == INDEX_HTML


def test_static_big_file(conn):
    resp = conn.request("GET", "/big.bin")
    assert resp.status == 200
    assert resp.body == DOC_FILES["big.bin"]


@pytest.mark.parametrize("target", [
    "/../etc/passwd",
    "/../../../../../../etc/passwd",
    "/sub/../../etc/passwd",
    "/../secret.txt",
    "/sub/../../secret.txt",
    "/%2e%2e/etc/passwd",
    "/%2e%2e/secret.txt",
    "/%2E%2E/%2E%2E/etc/passwd",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..\\secret.txt",
    "/./../secret.txt",
    "//etc/passwd",
    "/sub/..%2f..%2fsecret.txt",
])
def test_static_traversal_refused(server, target):
    with server.conn() as c:
        c.send(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                % target).encode())
        resp = c.read_response()
    assert resp.status in (400, 404), resp
    assert b"root:" not in resp.body
    assert b"top secret" not in resp.body


@pytest.mark.parametrize("target", ["/link-out.txt", "/etc-link/passwd",
                                    "/etc-link/hostname"])
def test_static_symlink_out_of_root_refused(conn, target):
    resp = conn.request("GET", target)
    assert resp.status in (403, 404), resp
    assert b"top secret" not in resp.body and b"root:" not in resp.body


def test_static_redirect_keeps_query(conn):
    resp = conn.request("GET", "/sub?x=1")
    assert resp.status == 301
    assert resp.header("Location") in ("/sub/?x=1",), resp


def test_static_head_redirect(conn):
    resp = conn.request("HEAD", "/sub")
    assert resp.status == 301
    assert resp.header("Location") == "/sub/"
    nxt = conn.request("GET", "/plaintext")
    assert nxt.body == PLAINTEXT_BODY


def test_static_file_with_trailing_slash_is_404(conn):
    assert conn.request("GET", "/notes.txt/").status == 404


@pytest.mark.parametrize("target", ["/%zz", "/%2", "/abc%", "/%g0.html"])
def test_static_bad_percent_encoding(conn, target):
    resp = conn.request("GET", target)
    assert resp.status == 400


def test_static_nul_via_percent_encoding_refused(conn):
    resp = conn.request("GET", "/index.html%00.txt")
    assert resp.status in (400, 404)


# -- methods ---------------------------------------------------------------

def allow_set(resp):
    value = resp.header("Allow")
    assert value is not None, resp
    return {m.strip() for m in value.split(",") if m.strip()}


@pytest.mark.parametrize("method,path,must_allow", [
    ("POST", "/plaintext", {"GET", "HEAD"}),
    ("PUT", "/json", {"GET", "HEAD"}),
    ("DELETE", "/health", {"GET", "HEAD"}),
    ("GET", "/echo", {"POST"}),
    ("PUT", "/echo", {"POST"}),
    ("POST", "/index.html", {"GET", "HEAD"}),
    ("POST", "/", {"GET", "HEAD"}),
    ("DELETE", "/style.css", {"GET", "HEAD"}),
])
def test_405_with_allow(conn, method, path, must_allow):
    resp = conn.request(method, path, body=b"x" if method in ("POST", "PUT") else b"")
    assert resp.status == 405, resp
    allowed = allow_set(resp)
    assert must_allow <= allowed, allowed
    assert method not in allowed
    assert_common_headers(resp)


def test_405_on_static_allows_exactly_get_head(conn):
    resp = conn.request("POST", "/index.html", body=b"x")
    assert resp.status == 405
    assert allow_set(resp) == {"GET", "HEAD"}
    # The server may close instead of reading the body, but then it says so;
    # otherwise the body was consumed and the connection stays in sync.
    if "close" in resp.connection_tokens():
        conn.wait_closed()
    else:
        nxt = conn.request("GET", "/plaintext")
        assert nxt.status == 200 and nxt.body == PLAINTEXT_BODY


def test_head_on_echo_is_405(conn):
    resp = conn.request("HEAD", "/echo")
    assert resp.status == 405
    assert "POST" in allow_set(resp)


# -- metrics ---------------------------------------------------------------

def test_metrics_format(conn):
    resp = conn.request("GET", "/metrics")
    assert resp.status == 200
    assert resp.header("Content-Type").replace(" ", "") == "text/plain;version=0.0.4;charset=utf-8"
    m = parse_metrics(resp.body.decode())
    for name in ["hotpath_requests_total", "hotpath_connections_open",
                 "hotpath_connections_accepted_total",
                 "hotpath_heap_allocations_total",
                 "hotpath_pool_chunks_in_use"]:
        assert name in m, (name, resp.body)
    for cls in ("1xx", "2xx", "3xx", "4xx", "5xx"):
        assert 'hotpath_responses_total{class="%s"}' % cls in m, cls
    workers = [k for k in m if k.startswith("hotpath_worker_connections_accepted_total{")]
    assert len(workers) == 2, workers
    assert any(k.startswith("hotpath_rejected_total{") for k in m)


def test_metrics_count_requests_exactly(server, conn):
    before = server.metrics(conn)
    n_ok, n_missing = 7, 3
    for _ in range(n_ok):
        assert conn.request("GET", "/plaintext").status == 200
    for _ in range(n_missing):
        assert conn.request("GET", "/nope").status == 404
    after = server.metrics(conn)
    # Each /metrics read is counted the same way, so exactly one of the two
    # falls between the two snapshots.
    assert after["hotpath_requests_total"] - before["hotpath_requests_total"] \
        == n_ok + n_missing + 1
    d2 = after['hotpath_responses_total{class="2xx"}'] - \
        before['hotpath_responses_total{class="2xx"}']
    d4 = after['hotpath_responses_total{class="4xx"}'] - \
        before['hotpath_responses_total{class="4xx"}']
    assert d2 == n_ok + 1
    assert d4 == n_missing


def test_metrics_connections_open_counts_this_connection(server, conn):
    m = server.metrics(conn)
    assert m["hotpath_connections_open"] >= 1
    with server.conn() as other:
        other.request("GET", "/health")
        m2 = server.metrics(conn)
        assert m2["hotpath_connections_open"] >= 2
    # Closed ones are counted too: accepted - closed == open.
    def other_closed():
        m = server.metrics(conn)
        closed = m["hotpath_connections_closed_total"]
        return m if closed >= m2["hotpath_connections_closed_total"] + 1 else None
    m3 = wait_until(other_closed, 5, what="the other connection counted as closed")
    assert m3["hotpath_connections_accepted_total"] - m3["hotpath_connections_closed_total"] \
        == m3["hotpath_connections_open"]


def test_serves_repo_www(start_server, www_dir):
    """The repository's own www/ (what `make run` serves) works as a root."""
    index = www_dir / "index.html"
    if not index.is_file():
        pytest.skip("www/index.html does not exist yet")
    srv = start_server(root=www_dir)
    resp = srv.request("GET", "/")
    assert resp.status == 200
    assert resp.body == index.read_bytes()


def test_metrics_parse_with_prometheus_client(server):
    """/metrics is valid Prometheus text 0.0.4 for the reference parser
    (Debian's python3-prometheus-client): every family typed, once."""
    import pathlib
    import subprocess
    text = server.conn().request("GET", "/metrics").body
    check = pathlib.Path(__file__).with_name("prom_check.py")
    r = subprocess.run(["/usr/bin/python3", str(check), "--require", "hotpath_requests_total",
                        "--require", "hotpath_rejected_total"], input=text,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()


def test_route_metrics_count_and_latency(start_server):
    """Each route counts its responses by method and status class, and its
    latency histogram counts them too (Prometheus buckets, cumulative)."""
    srv = start_server(workers=1)
    with srv.conn() as c:
        for _ in range(5):
            assert c.request("GET", "/plaintext").status == 200
        assert c.request("HEAD", "/json").status == 200
        assert c.request("POST", "/echo", body=b"abc").status == 200
        m = parse_metrics(c.request("GET", "/metrics").body.decode())
    assert m['hotpath_route_responses_total{route="/plaintext",method="GET",class="2xx"}'] == 5
    assert m['hotpath_route_responses_total{route="/json",method="HEAD",class="2xx"}'] == 1
    assert m['hotpath_route_responses_total{route="/echo",method="POST",class="2xx"}'] == 1
    count = m['hotpath_route_request_duration_seconds_count{route="/plaintext"}']
    assert count == 5
    inf = m['hotpath_route_request_duration_seconds_bucket{route="/plaintext",le="+Inf"}']
    assert inf == 5
    buckets = sorted((float(k.split('le="')[1].rstrip('"}')), v) for k, v in m.items()
                     if k.startswith('hotpath_route_request_duration_seconds_bucket{route="/plaintext"'))
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    # Served in-process in well under a second each.
    assert m['hotpath_route_request_duration_seconds_bucket{route="/plaintext",le="1"}'] == 5


def test_handler_bodies_compressed_on_the_fly(start_server):
    """Compressible handler bodies of 1 KiB or more are gzip- or
    brotli-encoded as the client prefers (q-values honoured), with Vary;
    small bodies and clients that do not ask are served as they are."""
    import gzip
    import subprocess
    srv = start_server(workers=1)
    with srv.conn() as c:
        plain = c.request("GET", "/metrics")
        assert plain.header("Content-Encoding") is None
        assert plain.header("Vary") == "Accept-Encoding"
        z = c.request("GET", "/metrics", headers=[("Accept-Encoding", "gzip")])
        assert z.header("Content-Encoding") == "gzip"
        text = gzip.decompress(z.body).decode()
        assert text.startswith("# HELP hotpath_requests_total")
        assert len(z.body) < len(text) * 0.9
        b = c.request("GET", "/metrics", headers=[("Accept-Encoding", "gzip;q=0.5, br")])
        assert b.header("Content-Encoding") == "br"
        n = c.request("GET", "/metrics", headers=[("Accept-Encoding", "gzip;q=0, br;q=0")])
        assert n.header("Content-Encoding") is None
        small = c.request("GET", "/plaintext", headers=[("Accept-Encoding", "gzip")])
        assert small.header("Content-Encoding") is None and small.body == b"Hello, World!"
    # curl decodes brotli itself when built with it (Debian's is).
    out = subprocess.run(["curl", "-s", "--compressed", "-H", "Accept-Encoding: br",
                          srv.url("/metrics")], capture_output=True, timeout=10)
    assert out.stdout.startswith(b"# HELP hotpath_requests_total")
