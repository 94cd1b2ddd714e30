"""Static files and HTTP semantics beyond GET: validators (ETag,
Last-Modified), conditional requests (304, 412), ranges (206, 416,
multipart/byteranges, If-Range), checked byte for byte against the files
in the test root."""

import email.utils
import re

from conftest import DOC_FILES

BIG = DOC_FILES["big.bin"]


def get(server, path="/big.bin", method="GET", **headers):
    with server.conn() as c:
        return c.request(method, path, headers=list(headers.items()),
                         head=(method == "HEAD"))


def test_validators_on_every_file(server):
    r = get(server)
    assert r.status == 200 and r.body == BIG
    etag = r.header("ETag")
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', etag), etag
    lm = email.utils.parsedate_to_datetime(r.header("Last-Modified"))
    assert lm.tzinfo is not None
    assert r.header("Accept-Ranges") == "bytes"
    # The same file gives the same validator; another file another.
    assert get(server).header("ETag") == etag
    assert get(server, "/notes.txt").header("ETag") != etag


def test_if_none_match_gives_304_without_body(server):
    etag = get(server).header("ETag")
    for value in (etag, "W/" + etag, '"other", ' + etag, "*"):
        r = get(server, **{"If-None-Match": value})
        assert r.status == 304, value
        assert r.body == b""
        assert r.header("ETag") == etag
        assert r.header("Content-Length") is None
    assert get(server, **{"If-None-Match": '"other"'}).status == 200


def test_if_modified_since(server):
    lm = get(server).header("Last-Modified")
    assert get(server, **{"If-Modified-Since": lm}).status == 304
    assert get(server, **{"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}).status == 200
    # An invalid date is ignored.
    assert get(server, **{"If-Modified-Since": "yesterday"}).status == 200
    # If-None-Match wins over If-Modified-Since.
    r = get(server, **{"If-None-Match": '"other"', "If-Modified-Since": lm})
    assert r.status == 200


def test_if_match_and_if_unmodified_since_412(server):
    etag = get(server).header("ETag")
    assert get(server, **{"If-Match": '"other"'}).status == 412
    assert get(server, **{"If-Match": etag}).status == 200
    assert get(server, **{"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}).status == 412


def test_single_ranges(server):
    n = len(BIG)
    for spec, first, last in (("0-0", 0, 0), ("0-99", 0, 99), ("1000-", 1000, n - 1),
                              ("-500", n - 500, n - 1), ("%d-%d" % (n - 1, n + 50), n - 1, n - 1)):
        r = get(server, Range="bytes=" + spec)
        assert r.status == 206, spec
        assert r.header("Content-Range") == "bytes %d-%d/%d" % (first, last, n), spec
        assert r.body == BIG[first:last + 1], spec
        assert int(r.header("Content-Length")) == last - first + 1


def test_unsatisfiable_range_416(server):
    n = len(BIG)
    r = get(server, Range="bytes=%d-" % n)
    assert r.status == 416
    assert r.header("Content-Range") == "bytes */%d" % n
    assert get(server, "/empty.txt", Range="bytes=0-1").status == 416


def test_malformed_or_foreign_range_ignored(server):
    for value in ("bytes=abc", "pages=1-2", "bytes=5-1", "bytes=-"):
        r = get(server, Range=value)
        assert r.status == 200, value
        assert r.body == BIG


def test_multiple_ranges_multipart(server):
    n = len(BIG)
    r = get(server, Range="bytes=0-9, 100-199, -5")
    assert r.status == 206
    ctype = r.header("Content-Type")
    m = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", ctype)
    assert m, ctype
    boundary = m.group(1).encode()
    assert int(r.header("Content-Length")) == len(r.body)
    parts = r.body.split(b"--" + boundary)
    assert parts[-1].strip() == b"--"
    got = []
    for part in parts[1:-1]:
        head, _, body = part.partition(b"\r\n\r\n")
        cr = re.search(rb"Content-Range: bytes (\d+)-(\d+)/(\d+)", head)
        first, last, size = map(int, cr.groups())
        assert size == n
        assert body[:-2] == BIG[first:last + 1]  # each part ends with CRLF before the delimiter
        got.append((first, last))
    assert got == [(0, 9), (100, 199), (n - 5, n - 1)]


def test_if_range(server):
    etag = get(server).header("ETag")
    r = get(server, Range="bytes=0-3", **{"If-Range": etag})
    assert r.status == 206 and r.body == BIG[:4]
    r = get(server, Range="bytes=0-3", **{"If-Range": '"stale"'})
    assert r.status == 200 and r.body == BIG


def test_head_ignores_range(server):
    """RFC 9110 §14.2: range handling is defined for GET only; HEAD gets
    the full representation's headers."""
    r = get(server, method="HEAD", Range="bytes=0-99")
    assert r.status == 200
    assert r.header("Content-Length") == str(len(BIG))
    assert r.body == b""


def test_range_ignored_for_handlers(server):
    r = get(server, "/plaintext", Range="bytes=0-3")
    assert r.status == 200 and r.body == b"Hello, World!"


def test_precompressed_siblings(start_server):
    """file.br / file.gz next to a file are served when the client accepts
    them (q-values honoured), with Content-Encoding and Vary; a stale
    sibling (older than the file) is ignored."""
    import gzip
    import os
    import time
    srv = start_server()
    text = b"precompressed " * 200
    (srv.root / "pc.txt").write_bytes(text)
    (srv.root / "pc.txt.gz").write_bytes(gzip.compress(text))
    (srv.root / "pc.txt.br").write_bytes(b"BROTLI-STAND-IN")

    def fetch(ae=None):
        headers = [("Accept-Encoding", ae)] if ae is not None else []
        with srv.conn() as c:
            return c.request("GET", "/pc.txt", headers=headers)

    r = fetch("gzip, br")
    assert r.header("Content-Encoding") == "br" and r.body == b"BROTLI-STAND-IN"
    assert r.header("Content-Type").startswith("text/plain")
    assert r.header("Vary") == "Accept-Encoding"
    r = fetch("gzip;q=1, br;q=0.5")
    assert r.header("Content-Encoding") == "gzip" and gzip.decompress(r.body) == text
    r = fetch("br;q=0, gzip")
    assert r.header("Content-Encoding") == "gzip"
    r = fetch()
    assert r.header("Content-Encoding") is None and r.body == text
    assert r.header("Vary") == "Accept-Encoding"
    # Each representation has its own validator.
    assert fetch("gzip").header("ETag") != fetch().header("ETag")
    # A sibling older than the file is stale and ignored.
    past = time.time() - 3600
    os.utime(srv.root / "pc.txt.br", (past, past))
    # The open-file cache looks at files again at most once a second.
    time.sleep(1.1)
    r = fetch("br")
    assert r.header("Content-Encoding") is None and r.body == text
    # identity refused and nothing else available: 406
    with srv.conn() as c:
        assert c.request("GET", "/style.css",
                         headers=[("Accept-Encoding", "identity;q=0")]).status == 406


def test_mime_types_from_system_table(start_server):
    """Types come from /etc/mime.types when present (.epub and .csv are not
    in the built-in table), text types with a charset; the built-ins answer
    for the rest."""
    import os
    import pytest
    if not os.path.exists("/etc/mime.types"):
        pytest.skip("no /etc/mime.types on this machine")
    table = open("/etc/mime.types").read()
    if "application/epub+zip" not in table or "text/csv" not in table:
        pytest.skip("this /etc/mime.types lacks epub or csv")
    srv = start_server()
    (srv.root / "book.epub").write_bytes(b"PK")
    (srv.root / "t.csv").write_bytes(b"a,b\n")
    with srv.conn() as c:
        assert c.request("GET", "/book.epub").header("Content-Type") == "application/epub+zip"
        assert c.request("GET", "/t.csv").header("Content-Type") == "text/csv; charset=utf-8"
        assert c.request("GET", "/logo.png").header("Content-Type") == "image/png"
