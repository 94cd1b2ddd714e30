"""Static files through the per-worker open-file cache and on-the-fly
compression, against the real binary: repeated requests make no open or
stat (strace), a changed file is seen within about a second, the counters
in /metrics, and gzip/brotli of compressible files under a location with
`compression: true` (kept only when worth it, never twice, per-coding
ETags, configurable level and minimum size)."""

import gzip
import os
import re
import subprocess
import time


from conftest import tree
from helpers import Conn, ServerClosed, metrics, request, scaled, wait_until

TEXT = b"".join(b"line %05d: the quick brown fox jumps over the lazy dog\n" % i
                for i in range(400))


def traced(pid):
    """True once every thread of pid has a tracer (strace -f attaches to
    them one by one)."""
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, task)) as f:
            if "\nTracerPid:\t0\n" in f.read():
                return False
    return True


def file_syscalls(pid, port, path, n):
    """Makes n requests for `path` on one connection while strace watches the
    server; returns ({syscall: count} of the opens and stats among them, and
    of writev (one per response: shows the counting worked), the seconds the
    requests took)."""
    out = "/tmp/hotpath-strace-%d.txt" % pid
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-c", "-o", out, "-p", str(pid),
                               "-e", "trace=open,openat,openat2,stat,fstat,newfstatat,statx,lstat,writev"],
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: traced(pid), scaled(10), interval=0.01,
                   what="strace attached to every thread")
        t0 = time.monotonic()
        with Conn(port) as c:
            for _ in range(n):
                assert c.request("GET", path).status == 200
        took = time.monotonic() - t0
    finally:
        tracer.terminate()
        tracer.wait(timeout=10)
    counts = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
            if m and m.group(2) != "total":
                counts[m.group(2)] = int(m.group(1))
    os.unlink(out)
    return counts, took


def test_repeated_requests_do_no_open_or_stat(serve, tmp_path):
    tree(tmp_path, {"www/page.html": b"<p>cached</p>\n"})
    s = serve("root: www\n")
    assert request(s.port, "GET", "/page.html").status == 200  # opens it once
    before = metrics(s.port)
    counts, took = file_syscalls(s.proc.pid, s.port, "/page.html", 50)
    assert counts.pop("writev", 0) >= 50, counts
    # Within the revalidation second there is nothing to ask the kernel;
    # past it, one fstatat per file name of the entry (the file, .gz, .br),
    # so three per second the requests took (however slow the machine made
    # them) and three for the second they started in. One open or stat
    # per request would be 50 or more.
    allowed = 3 * (int(took) + 2)
    assert sum(counts.values()) <= min(allowed, 49), (counts, took)
    after = metrics(s.port)
    assert after["hotpath_open_file_cache_hits_total"] - \
        before["hotpath_open_file_cache_hits_total"] >= 50
    assert after["hotpath_open_file_cache_misses_total"] == \
        before["hotpath_open_file_cache_misses_total"]
    assert after["hotpath_open_file_cache_entries"] == 1


def test_replaced_file_is_seen_within_a_second(serve, tmp_path):
    tree(tmp_path, {"www/f.txt": b"version one\n"})
    s = serve("root: www\n")
    www = tmp_path / "www"
    with Conn(s.port) as c:
        r1 = c.request("GET", "/f.txt")
        assert r1.body == b"version one\n"
        # Deployed the safe way (write, then rename over): the cached
        # descriptor still reads the old file whole until revalidation
        # notices the new one, then the new content with a new ETag.
        (www / "f.tmp").write_bytes(b"version two, longer\n")
        os.rename(www / "f.tmp", www / "f.txt")

        def fresh():
            r = c.request("GET", "/f.txt")
            assert r.body in (b"version one\n", b"version two, longer\n"), r
            return r if r.body == b"version two, longer\n" else None
        # Revalidation is every second; five of them is a bound a loaded
        # machine cannot miss and a cache that never revalidated would.
        r2 = wait_until(fresh, scaled(5), what="the new content")
        assert r2.header("etag") != r1.header("etag")
        os.unlink(www / "f.txt")
        wait_until(lambda: c.request("GET", "/f.txt").status == 404, scaled(5),
                   what="404 once deleted")


def test_file_shrunk_in_place_closes_instead_of_hanging(serve, tmp_path):
    """Truncating a file that is cached open (as with nginx's
    open_file_cache, in-place rewrites are unsafe within the revalidation
    second): the response cannot be completed, so the connection closes;
    the server carries on and serves the new size after revalidation."""
    tree(tmp_path, {"www/f.txt": b"x" * 100000})
    s = serve("root: www\n")
    assert len(request(s.port, "GET", "/f.txt").body) == 100000
    with open(tmp_path / "www" / "f.txt", "r+b") as f:
        f.truncate(10)
    with Conn(s.port) as c:
        c.send(b"GET /f.txt HTTP/1.1\r\nHost: a\r\n\r\n")
        got = c.wait_closed(timeout=scaled(5))
        assert b"Content-Length: 100000" in got and len(got) < 100000

    def whole():
        try:
            return request(s.port, "GET", "/f.txt").body == b"x" * 10
        except ServerClosed:  # still the cached size: cut short again
            return False
    wait_until(whole, scaled(5), what="the truncated file served whole")


COMPRESSING = """root: www
locations:
  - path: /text/
    compression: true
"""


def gunzip(body):
    return gzip.decompress(body)


def test_static_gzip_on_the_fly(serve, tmp_path):
    tree(tmp_path, {"www/text/a.txt": TEXT, "www/plain/a.txt": TEXT,
                    "www/text/small.txt": b"tiny\n",
                    "www/text/noise.bin": os.urandom(8192),
                    "www/text/img.png": b"\x89PNG" + b"\0" * 4000})
    s = serve(COMPRESSING)
    ae = {"Accept-Encoding": "gzip"}
    with Conn(s.port) as c:
        r = c.request("GET", "/text/a.txt", headers=ae)
        assert r.status == 200 and r.header("content-encoding") == "gzip", r
        assert r.header("vary") == "Accept-Encoding"
        assert gunzip(r.body) == TEXT and len(r.body) < len(TEXT) // 3
        gz_len = len(r.body)
        assert r.header("accept-ranges") is None
        etag_gz = r.header("etag")
        plain = c.request("GET", "/text/a.txt")
        assert plain.body == TEXT and plain.header("content-encoding") is None
        assert plain.header("etag") != etag_gz  # each coding its own validator
        # Conditional requests with the compressed ETag work.
        r = c.request("GET", "/text/a.txt", headers={**ae, "If-None-Match": etag_gz})
        assert r.status == 304 and r.header("etag") == etag_gz
        # HEAD: the compressed length, no body.
        h = c.request("HEAD", "/text/a.txt", headers=ae)
        assert h.header("content-encoding") == "gzip"
        assert int(h.header("content-length")) == gz_len and h.body == b""
        # A Range on a compressed response is ignored: the whole body.
        r = c.request("GET", "/text/a.txt", headers={**ae, "Range": "bytes=0-9"})
        assert r.status == 200 and gunzip(r.body) == TEXT
        # Outside the location, below the minimum size, incompressible
        # bytes and non-text types go as they are.
        for path in ("/plain/a.txt", "/text/small.txt", "/text/noise.bin", "/text/img.png"):
            r = c.request("GET", path, headers=ae)
            assert r.status == 200 and r.header("content-encoding") is None, path
        # identity;q=0 with nothing else acceptable is 406.
        r = c.request("GET", "/text/a.txt", headers={"Accept-Encoding": "identity;q=0"})
        assert r.status == 406


def test_static_brotli_preferred(serve, tmp_path):
    tree(tmp_path, {"www/text/a.txt": TEXT})
    s = serve(COMPRESSING)
    r = request(s.port, "GET", "/text/a.txt", headers={"Accept-Encoding": "gzip, br"})
    assert r.header("content-encoding") == "br"
    proc = subprocess.run(["python3", "-c",
                           "import sys, brotli; sys.stdout.buffer.write("
                           "brotli.decompress(sys.stdin.buffer.read()))"],
                          input=r.body, capture_output=True)
    if proc.returncode == 0:  # python3-brotli is optional
        assert proc.stdout == TEXT
    r = request(s.port, "GET", "/text/a.txt", headers={"Accept-Encoding": "br;q=0.5, gzip"})
    assert r.header("content-encoding") == "gzip" and gunzip(r.body) == TEXT


def test_precompressed_sibling_wins_and_is_not_compressed_twice(serve, tmp_path):
    tree(tmp_path, {"www/text/a.txt": TEXT,
                    "www/text/a.txt.gz": gzip.compress(TEXT, 9)})
    s = serve(COMPRESSING)
    r = request(s.port, "GET", "/text/a.txt", headers={"Accept-Encoding": "gzip"})
    assert r.header("content-encoding") == "gzip"
    assert r.body == (tmp_path / "www/text/a.txt.gz").read_bytes()
    assert r.header("accept-ranges") == "bytes"  # a file on disk: ranges work


def test_compression_level_and_switch(serve, tmp_path):
    tree(tmp_path, {"www/text/a.txt": TEXT})
    sizes = {}
    for level in (1, 9):
        s = serve(COMPRESSING + "compression: {level: %d}\n" % level)
        r = request(s.port, "GET", "/text/a.txt", headers={"Accept-Encoding": "gzip"})
        assert gunzip(r.body) == TEXT
        sizes[level] = len(r.body)
        s.stop()
    assert sizes[9] < sizes[1]
    s = serve(COMPRESSING + "compression: {enabled: false}\n")
    r = request(s.port, "GET", "/text/a.txt", headers={"Accept-Encoding": "gzip"})
    assert r.header("content-encoding") is None and r.body == TEXT
    s.stop()
    s = serve(COMPRESSING + "compression: {min_size: 100k}\n")
    r = request(s.port, "GET", "/text/a.txt", headers={"Accept-Encoding": "gzip"})
    assert r.header("content-encoding") is None
