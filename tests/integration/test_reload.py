"""The configuration keys that shape serving, through the real binary:
locations (per-prefix roots and Cache-Control), keep-alive and TCP options,
the access log with SIGUSR1 rotation, and SIGHUP reloading (applied
without dropping connections; restart-only keys reported; a bad file
keeps the running configuration)."""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import tree
from helpers import Conn, can_connect, free_port, metrics, request, scaled, wait_until


# ---- locations --------------------------------------------------------------

LOCATIONS = """root: www
locations:
  - path: /static/
    root: assets
    cache_control: "public, max-age=3600"
  - path: /static/private/
    root: assets
    cache_control: "no-store"
  - path: /docs/
    cache_control: "max-age=5"
"""


def test_location_root_and_cache_control(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"top\n", "www/static/s.css": b"from www\n",
                    "www/docs/d.txt": b"docs\n",
                    "assets/static/s.css": b"from assets\n",
                    "assets/static/private/p.txt": b"private\n"})
    s = serve(LOCATIONS)
    # nginx `root` semantics: the whole URL path beneath the location's root.
    r = request(s.port, "GET", "/static/s.css")
    assert r.status == 200 and r.body == b"from assets\n"
    assert r.header("cache-control") == "public, max-age=3600"
    # The longest prefix wins.
    r = request(s.port, "GET", "/static/private/p.txt")
    assert r.body == b"private\n" and r.header("cache-control") == "no-store"
    # A location without a root uses the top-level one.
    r = request(s.port, "GET", "/docs/d.txt")
    assert r.body == b"docs\n" and r.header("cache-control") == "max-age=5"
    # Paths no location claims: the top-level root, no Cache-Control.
    r = request(s.port, "GET", "/a.txt")
    assert r.body == b"top\n" and r.header("cache-control") is None
    # Percent-encoding does not steer a request around its location.
    r = request(s.port, "GET", "/st%61tic/s.css")
    assert r.body == b"from assets\n"
    # 304 carries Cache-Control too; so do ranges.
    etag = request(s.port, "GET", "/static/s.css").header("etag")
    r = request(s.port, "GET", "/static/s.css", headers={"If-None-Match": etag})
    assert r.status == 304 and r.header("cache-control") == "public, max-age=3600"
    r = request(s.port, "GET", "/static/s.css", headers={"Range": "bytes=0-3"})
    assert r.status == 206 and r.body == b"from"
    assert r.header("cache-control") == "public, max-age=3600"
    # Missing below a location is a 404, not a fall-back to the top root.
    tree(tmp_path, {"www/static/only-in-www.txt": b"x"})
    assert request(s.port, "GET", "/static/only-in-www.txt").status == 404


def test_location_root_missing_is_a_startup_error(hotpath_bin, tmp_path):
    (tmp_path / "www").mkdir()
    f = tmp_path / "c.yaml"
    f.write_text('listen: "127.0.0.1:%d"\nroot: www\nlocations:\n  - path: /x/\n    root: nope\n'
                 % free_port())
    r = subprocess.run([str(hotpath_bin), "--config", str(f)], cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert r.stderr.strip() == ("hotpath: %s:5:11: locations[0].root: cannot open 'nope': "
                                "No such file or directory" % f)


# ---- keep-alive and TCP options ----------------------------------------------

def test_keepalive_disabled_closes_after_each_response(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"a"})
    s = serve("root: www\nkeepalive: {enabled: false}\n")
    with Conn(s.port) as c:
        r = c.request("GET", "/a.txt")
        assert r.status == 200 and "close" in r.connection_tokens()
        assert c.wait_closed() == b""


def test_keepalive_max_requests(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"a"})
    s = serve("root: www\nkeepalive: {max_requests: 3}\n")
    with Conn(s.port) as c:
        for i in range(2):
            r = c.request("GET", "/a.txt")
            assert r.status == 200 and "close" not in r.connection_tokens(), i
        r = c.request("GET", "/a.txt")
        assert r.status == 200 and "close" in r.connection_tokens()
        assert c.wait_closed() == b""
    # The count is per connection: a new one gets three again.
    with Conn(s.port) as c:
        assert "close" not in c.request("GET", "/a.txt").connection_tokens()


def listening_sockets(port):
    out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True,
                         text=True, timeout=10).stdout
    return len([l for l in out.splitlines() if l.strip()])


@pytest.mark.parametrize("reuseport,expect", [("true", 2), ("false", 1)])
def test_reuseport(serve, tmp_path, reuseport, expect):
    (tmp_path / "www").mkdir()
    s = serve("root: www\ntcp: {reuseport: %s}\n" % reuseport, "--workers", "2")
    assert listening_sockets(s.port) == expect
    # Both workers still serve (many connections land on both or on one
    # shared socket; every request is answered either way).
    for _ in range(20):
        assert request(s.port, "GET", "/health").status == 200


# ---- access log ------------------------------------------------------------

LOG_LINE = re.compile(r'^(\S+) - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
                      r'"([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$')


def read_log(path, n, timeout=5.0):
    """Waits until the log holds n lines. The workers flush every second; the
    bound is five of those periods, so that a loaded machine cannot miss it
    and a log that waited for exit or a full buffer still would."""
    def lines():
        if not path.exists():
            return None
        got = path.read_text().splitlines()
        return got if len(got) >= n else None
    return wait_until(lines, scaled(timeout), what="%d access-log lines" % n)


def test_access_log_combined_format(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"hello\n"})
    log = tmp_path / "access.log"
    s = serve("root: www\naccess_log: {enabled: true, path: %s}\n" % log)
    with Conn(s.port) as c:
        c.request("GET", "/a.txt?x=1", headers={"Referer": "http://r/", "User-Agent": 'ua "q"'})
        c.request("HEAD", "/a.txt")
        c.request("GET", "/missing")
        c.request("POST", "/echo", body=b"12345")
    lines = read_log(log, 4)  # flushed while the server runs
    parsed = [LOG_LINE.match(l) for l in lines]
    assert all(parsed), lines
    assert [p.group(3) for p in parsed] == ["GET /a.txt?x=1 HTTP/1.1", "HEAD /a.txt HTTP/1.1",
                                            "GET /missing HTTP/1.1", "POST /echo HTTP/1.1"]
    assert [p.group(4) for p in parsed] == ["200", "200", "404", "200"]
    assert [p.group(5) for p in parsed] == ["6", "0", str(len(b"404 Not Found\n")), "5"]
    assert parsed[0].group(1) == "127.0.0.1"
    assert parsed[0].group(6) == "http://r/"
    assert parsed[0].group(7) == 'ua \\x22q\\x22'  # escaped: no forged fields
    assert parsed[1].group(6) == "-"
    # A framing error is logged too, with the status it got.
    with Conn(s.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")
        assert c.read_response().status == 400
    assert LOG_LINE.match(read_log(log, 5)[4]).group(4) == "400"


def test_access_log_off_writes_nothing(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"a"})
    s = serve("root: www\naccess_log: {enabled: false, path: access.log}\n")
    assert request(s.port, "GET", "/a.txt").status == 200
    time.sleep(1.2)
    assert not (tmp_path / "access.log").exists()


def test_sigusr1_reopens_the_log(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"a"})
    log = tmp_path / "access.log"
    s = serve("root: www\naccess_log: {enabled: true, path: access.log}\n")
    with Conn(s.port) as c:
        c.request("GET", "/a.txt?before")
        read_log(log, 1)
        os.rename(log, tmp_path / "access.log.1")
        s.signal(signal.SIGUSR1)
        wait_until(log.exists, scaled(5), what="a new access.log")
        c.request("GET", "/a.txt?after")  # same connection, same worker
    assert "after" in read_log(log, 1)[0]
    rotated = (tmp_path / "access.log.1").read_text()
    assert "before" in rotated and "after" not in rotated


# ---- SIGHUP ----------------------------------------------------------------

def test_sighup_applies_changes_without_dropping_connections(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"old root\n", "www2/a.txt": b"new root\n"})
    s = serve("root: www\nlocations: [{path: /, cache_control: \"max-age=1\"}]\n")
    with Conn(s.port) as c:
        r = c.request("GET", "/a.txt")
        assert r.body == b"old root\n" and r.header("cache-control") == "max-age=1"
        s.write("root: www2\nlocations: [{path: /, cache_control: \"max-age=2\"}]\n"
                "limits: {max_body: 10}\naccess_log: {enabled: true, path: new.log}\n")
        s.signal(signal.SIGHUP, expect="configuration reloaded")
        # The open connection carries on, under the new configuration.
        r = c.request("GET", "/a.txt")
        assert r.status == 200 and r.body == b"new root\n"
        assert r.header("cache-control") == "max-age=2"
        assert c.request("POST", "/echo", body=b"x" * 10).status == 200
        assert c.request("POST", "/echo", body=b"x" * 11).status == 413
    assert request(s.port, "GET", "/a.txt").body == b"new root\n"
    assert "GET /a.txt" in read_log(tmp_path / "new.log", 1)[0]


def test_sighup_changes_compression_and_cache(serve, tmp_path):
    text = b"compress me, compress me, compress me\n" * 100
    tree(tmp_path, {"www/t/a.txt": text})
    s = serve("root: www\nlocations: [{path: /t/, compression: true}]\n")
    ae = {"Accept-Encoding": "gzip"}
    with Conn(s.port) as c:
        r = c.request("GET", "/t/a.txt", headers=ae)
        assert r.header("content-encoding") == "gzip"
        s.write("root: www\nlocations: [{path: /t/, compression: true}]\n"
                "compression: {enabled: false}\ncache: {enabled: true, max_entries: 5}\n")
        s.signal(signal.SIGHUP, expect="configuration reloaded")
        r = c.request("GET", "/t/a.txt", headers=ae)
        assert r.header("content-encoding") is None and r.body == text
        m = metrics(s.port)
        assert m["hotpath_cache_entries"] == 0 and "hotpath_cache_hits_total" in m
        s.write("root: www\nlocations: [{path: /t/, compression: false}]\n")
        s.signal(signal.SIGHUP, expect="configuration reloaded")
        assert c.request("GET", "/t/a.txt", headers=ae).header("content-encoding") is None


def test_sighup_restart_keys_are_reported_not_applied(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"a"})
    s = serve("root: www\n")
    port = s.port
    other = free_port()
    s.conf.write_text('listen: "127.0.0.1:%d"\nworkers: 2\nroot: www\n'
                      'locations: [{path: /, cache_control: "x"}]\n'
                      'endpoints: {echo: false}\n' % other)
    out = s.signal(signal.SIGHUP, expect="restart to apply (running values kept)")
    assert "listen" in out and "workers" in out
    assert "endpoints or metrics changed" in out
    assert request(port, "POST", "/echo", body=b"still here").body == b"still here"
    assert not can_connect(other)
    r = request(port, "GET", "/a.txt")
    assert r.status == 200 and r.header("cache-control") == "x"  # the rest applied


def test_sighup_bad_file_keeps_running_config(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"a"})
    s = serve("root: www\nlocations: [{path: /, cache_control: \"kept\"}]\n")
    s.conf.write_text(s.conf.read_text() + "timeouts: {header: 10x}\n")
    out = s.signal(signal.SIGHUP, expect="keeping the running configuration")
    assert "timeouts.header" in out and "hotpath.yaml:5:" in out, out
    # A root that cannot be opened is refused the same way.
    s.write("root: nowhere\n")
    out = s.signal(signal.SIGHUP, expect="keeping the running configuration")
    assert "hotpath.yaml:3:7: root: cannot open 'nowhere'" in out, out
    r = request(s.port, "GET", "/a.txt")
    assert r.status == 200 and r.header("cache-control") == "kept"


def test_repeated_reloads_release_old_configurations(serve, tmp_path):
    tree(tmp_path, {"www/a.txt": b"a"})
    s = serve("root: www\naccess_log: {enabled: true, path: a.log}\n")
    fds = lambda: len(os.listdir("/proc/%d/fd" % s.proc.pid))
    assert request(s.port, "GET", "/a.txt").status == 200  # a.txt in the open-file cache
    base = fds()
    for i in range(20):
        s.signal(signal.SIGHUP, expect="configuration reloaded")
        assert request(s.port, "GET", "/a.txt").status == 200
    # Old generations (their root and log descriptors) are freed once the
    # worker moved on: the count settles back where it was.
    wait_until(lambda: fds() <= base, scaled(5), what="descriptors back to %d" % base)
    assert metrics(s.port)["hotpath_requests_total"] >= 20
