"""The real binary driven by python3-requests, the way a Python client
would use it: one requests.Session per test, so its urllib3 pool keeps the
connection alive across requests, redirects are followed by the library,
gzip is decoded by it, and chunked uploads come from a generator body.

Covers the built-in endpoints, static files (index redirect, validators,
ranges, precompressed siblings), on-the-fly compression of a handler body,
/metrics parsed with prometheus_client, and connection reuse seen from the
server's own counters. Needs Debian's python3-requests (scripts/deps.sh
installs it).
"""

import email.utils
import gzip
import os
import re

import prometheus_client.parser as prom_parser
import pytest
import requests

from conftest import ServerFactory
from helpers import HEALTH_BODY, JSON_BODY, PLAINTEXT_BODY

HELLO_TXT = b"hello from a static text file\n"
DOCS_INDEX = b"<!doctype html>\n<title>docs</title>\n<p>docs index</p>\n"
# Random bytes: a range or a multipart part taken from the wrong offset
# cannot match by accident.
DATA_BIN = os.urandom(4096)
PC_TEXT = b"a precompressed text file, repeated to be worth compressing.\n" * 64
# level 1 and mtime 0: not what an on-the-fly gzip at another level would
# produce, so the bytes on the wire show that the sibling itself was sent.
PC_GZ = gzip.compress(PC_TEXT, compresslevel=1, mtime=0)


@pytest.fixture(scope="module")
def srv(hotpath_bin, doc_template, tmp_path_factory):
    """One server for the module, on a root made for these tests."""
    base = tmp_path_factory.mktemp("requests")
    root = base / "root"
    (root / "docs").mkdir(parents=True)
    (root / "hello.txt").write_bytes(HELLO_TXT)
    (root / "docs" / "index.html").write_bytes(DOCS_INDEX)
    (root / "data.bin").write_bytes(DATA_BIN)
    # The sibling is written after the file, so it is not older (stale).
    (root / "pc.txt").write_bytes(PC_TEXT)
    (root / "pc.txt.gz").write_bytes(PC_GZ)
    factory = ServerFactory(hotpath_bin, doc_template, base)
    try:
        yield factory(root=root)
    finally:
        errors = factory.stop_all()
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def s():
    """A requests.Session: keep-alive through its connection pool."""
    with requests.Session() as session:
        yield session


def media_type(resp):
    return resp.headers.get("Content-Type", "").split(";")[0].strip().lower()


def metric_samples(text):
    """Prometheus text -> {(sample name, sorted label items): value}, parsed
    by the reference parser."""
    out = {}
    for fam in prom_parser.text_string_to_metric_families(text):
        for smp in fam.samples:
            out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


def metrics(session, srv):
    r = session.get(srv.url("/metrics"))
    assert r.status_code == 200, r.text
    return metric_samples(r.text)


# -- built-in endpoints ------------------------------------------------------

def test_plaintext_body_and_headers(s, srv):
    r = s.get(srv.url("/plaintext"))
    assert r.status_code == 200
    assert r.content == PLAINTEXT_BODY
    assert r.text == "Hello, World!"
    assert media_type(r) == "text/plain"
    assert r.headers["Content-Length"] == str(len(PLAINTEXT_BODY))
    assert r.headers["Server"] == "hotpath"
    assert "Transfer-Encoding" not in r.headers
    assert email.utils.parsedate_to_datetime(r.headers["Date"]).tzinfo is not None
    # Small body: not compressed although requests offers gzip.
    assert "gzip" in r.request.headers["Accept-Encoding"]
    assert "Content-Encoding" not in r.headers


def test_json_parses(s, srv):
    r = s.get(srv.url("/json"))
    assert r.status_code == 200
    assert media_type(r) == "application/json"
    assert r.json() == {"message": "Hello, World!"}
    assert r.content == JSON_BODY


def test_health(s, srv):
    r = s.get(srv.url("/health"))
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.content == HEALTH_BODY


def test_echo_bytes(s, srv):
    data = os.urandom(200_000)
    r = s.post(srv.url("/echo"), data=data)
    assert r.request.headers["Content-Length"] == str(len(data))
    assert r.status_code == 200
    assert r.content == data
    assert media_type(r) == "application/octet-stream"
    assert r.headers["Content-Length"] == str(len(data))


def test_echo_generator_body_is_chunked(s, srv):
    pieces = [os.urandom(n) for n in (1, 10, 4096, 70_000, 3)]

    def gen():
        yield from pieces

    r = s.post(srv.url("/echo"), data=gen())
    # requests sends a generator with chunked transfer coding.
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in r.request.headers
    assert r.status_code == 200
    assert r.content == b"".join(pieces)
    # The connection is still in sync afterwards.
    assert s.get(srv.url("/plaintext")).content == PLAINTEXT_BODY


def allow_set(resp):
    return {m.strip() for m in resp.headers["Allow"].split(",") if m.strip()}


def test_wrong_method_405_with_allow(s, srv):
    r = s.post(srv.url("/plaintext"), data=b"x")
    assert r.status_code == 405
    assert {"GET", "HEAD"} <= allow_set(r) and "POST" not in allow_set(r)
    r = s.get(srv.url("/echo"))
    assert r.status_code == 405
    assert "POST" in allow_set(r) and "GET" not in allow_set(r)
    r = s.delete(srv.url("/hello.txt"))
    assert r.status_code == 405
    assert allow_set(r) == {"GET", "HEAD"}
    # The session goes on working after the errors.
    assert s.get(srv.url("/health")).json() == {"status": "ok"}


def test_404(s, srv):
    r = s.get(srv.url("/no/such/file.txt"))
    assert r.status_code == 404
    with pytest.raises(requests.HTTPError):
        r.raise_for_status()


# -- static files ------------------------------------------------------------

def test_static_text_file(s, srv):
    r = s.get(srv.url("/hello.txt"))
    assert r.status_code == 200
    assert r.content == HELLO_TXT
    assert media_type(r) == "text/plain"
    assert r.headers["Content-Length"] == str(len(HELLO_TXT))
    h = s.head(srv.url("/hello.txt"))
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == str(len(HELLO_TXT))


def test_directory_redirect_followed(s, srv):
    r = s.get(srv.url("/docs"), allow_redirects=False)
    assert r.status_code == 301
    assert r.headers["Location"] in ("/docs/", srv.url("/docs/"))
    r = s.get(srv.url("/docs"))
    assert [h.status_code for h in r.history] == [301]
    assert r.url == srv.url("/docs/")
    assert r.status_code == 200
    assert r.content == DOCS_INDEX
    assert media_type(r) == "text/html"


def test_etag_if_none_match_304(s, srv):
    r = s.get(srv.url("/hello.txt"))
    etag = r.headers["ETag"]
    assert re.fullmatch(r'(W/)?"[^"]+"', etag), etag
    r2 = s.get(srv.url("/hello.txt"), headers={"If-None-Match": etag})
    assert r2.status_code == 304
    assert r2.content == b""
    assert r2.headers["ETag"] == etag
    r3 = s.get(srv.url("/hello.txt"), headers={"If-None-Match": '"not-the-etag"'})
    assert r3.status_code == 200 and r3.content == HELLO_TXT


def test_single_range_206(s, srv):
    r = s.get(srv.url("/data.bin"), headers={"Range": "bytes=0-9"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == "bytes 0-9/%d" % len(DATA_BIN)
    assert r.headers["Content-Length"] == "10"
    assert r.content == DATA_BIN[:10]
    r = s.get(srv.url("/data.bin"), headers={"Range": "bytes=-7"})
    assert r.status_code == 206 and r.content == DATA_BIN[-7:]


def test_multi_range_multipart(s, srv):
    r = s.get(srv.url("/data.bin"), headers={"Range": "bytes=0-9,1000-1099"})
    assert r.status_code == 206
    m = re.fullmatch(r"multipart/byteranges;\s*boundary=(\S+)", r.headers["Content-Type"])
    assert m, r.headers["Content-Type"]
    boundary = m.group(1).strip('"').encode()
    assert int(r.headers["Content-Length"]) == len(r.content)
    parts = r.content.split(b"--" + boundary)
    assert parts[0] in (b"", b"\r\n")
    assert parts[-1].strip() == b"--"
    got = []
    for part in parts[1:-1]:
        head, sep, body = part.partition(b"\r\n\r\n")
        assert sep, part[:200]
        cr = re.search(rb"Content-Range: bytes (\d+)-(\d+)/(\d+)", head, re.I)
        assert cr, head
        first, last, size = map(int, cr.groups())
        assert size == len(DATA_BIN)
        assert body.endswith(b"\r\n")
        assert body[:-2] == DATA_BIN[first:last + 1]
        got.append((first, last))
    assert got == [(0, 9), (1000, 1099)]


def test_unsatisfiable_range_416(s, srv):
    n = len(DATA_BIN)
    r = s.get(srv.url("/data.bin"), headers={"Range": "bytes=%d-" % n})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */%d" % n
    assert r.content != DATA_BIN


def test_precompressed_gzip_sibling(s, srv):
    r = s.get(srv.url("/pc.txt"), headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert "accept-encoding" in r.headers["Vary"].lower()
    assert media_type(r) == "text/plain"
    # requests decoded it transparently to the original bytes...
    assert r.content == PC_TEXT
    # ...of the sibling itself: its exact bytes are on the wire.
    assert r.headers["Content-Length"] == str(len(PC_GZ))
    raw = s.get(srv.url("/pc.txt"), headers={"Accept-Encoding": "gzip"}, stream=True)
    try:
        assert raw.raw.read(decode_content=False) == PC_GZ
    finally:
        raw.close()


def test_precompressed_not_served_for_identity(s, srv):
    r = s.get(srv.url("/pc.txt"), headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    assert "Content-Encoding" not in r.headers
    assert r.headers["Content-Length"] == str(len(PC_TEXT))
    assert r.content == PC_TEXT
    assert "accept-encoding" in r.headers["Vary"].lower()
    # Each representation has its own validator.
    gz = s.get(srv.url("/pc.txt"), headers={"Accept-Encoding": "gzip"})
    assert gz.headers["ETag"] != r.headers["ETag"]


# -- compression of a handler body -------------------------------------------

def test_metrics_body_compressed_on_the_fly(s, srv):
    """/metrics is >= 1 KiB of text: gzip-encoded when requests offers gzip
    (its default Accept-Encoding), decoded by requests; plain for identity.
    (POST /echo answers application/octet-stream, which is not compressed,
    so it is not a candidate.)"""
    r = s.get(srv.url("/metrics"), stream=True)
    try:
        assert r.headers["Content-Encoding"] == "gzip"
        wire = r.raw.read(decode_content=False)
    finally:
        r.close()
    assert wire[:2] == b"\x1f\x8b"
    text = gzip.decompress(wire)
    assert text.startswith(b"# HELP hotpath_requests_total")
    assert len(wire) < len(text)
    r = s.get(srv.url("/metrics"))
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.text.startswith("# HELP hotpath_requests_total")
    r = s.get(srv.url("/metrics"), headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in r.headers
    assert r.headers["Content-Length"] == str(len(r.content))
    assert r.text.startswith("# HELP hotpath_requests_total")
    assert "accept-encoding" in r.headers["Vary"].lower()


# -- metrics and keep-alive ----------------------------------------------------

def test_metrics_counters_increase_by_requests_made(s, srv):
    before = metrics(s, srv)
    n_ok, n_missing = 9, 4
    for _ in range(n_ok):
        assert s.get(srv.url("/plaintext")).status_code == 200
    for _ in range(n_missing):
        assert s.get(srv.url("/missing")).status_code == 404
    after = metrics(s, srv)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        assert key in after, (key, sorted(after)[:20])
        return after[key] - before.get(key, 0.0)

    # The /metrics read that took `after` is counted, the one that took
    # `before` is not (it is counted after its own body was made).
    assert delta("hotpath_requests_total") == n_ok + n_missing + 1
    assert delta("hotpath_responses_total", **{"class": "2xx"}) == n_ok + 1
    assert delta("hotpath_responses_total", **{"class": "4xx"}) == n_missing
    assert delta("hotpath_route_responses_total", route="/plaintext", method="GET",
                 **{"class": "2xx"}) == n_ok
    assert delta("hotpath_route_request_duration_seconds_count", route="/plaintext") == n_ok


def test_session_reuses_one_connection(srv):
    # A one-off request (its own connection) for the starting figure.
    before = metric_samples(requests.get(srv.url("/metrics")).text)
    n = 25
    with requests.Session() as session:
        for i in range(n):
            path = ("/plaintext", "/json", "/hello.txt", "/health", "/docs/")[i % 5]
            r = session.get(srv.url(path))
            assert r.status_code == 200, (path, r.status_code)
            assert r.headers.get("Connection", "").lower() != "close"
        after = metrics(session, srv)
        pool = session.get_adapter(srv.url("/")).poolmanager.connection_from_url(srv.url("/"))
        assert pool.num_connections == 1
    key = ("hotpath_connections_accepted_total", ())
    assert after[key] - before[key] == 1
    # Every request of the session (and the two /metrics reads) counted.
    assert after[("hotpath_requests_total", ())] - before[("hotpath_requests_total", ())] == n + 1
