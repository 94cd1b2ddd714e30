"""Workers, many connections, fd exhaustion and the zero-allocation steady
state."""

import os
import resource
import socket
import threading
import time

import pytest

from helpers import (HEALTH_BODY, JSON_BODY, PLAINTEXT_BODY, Conn,
                     build_request, cpu_ticks, scaled, wait_until)

from conftest import INDEX_HTML


def worker_lines(m):
    return {k: v for k, v in m.items()
            if k.startswith("hotpath_worker_connections_accepted_total{")}


def test_two_workers_both_accept(start_server):
    srv = start_server(workers=2)
    for _ in range(64):
        with srv.conn() as c:
            resp = c.request("GET", "/plaintext")
            assert resp.status == 200 and resp.body == PLAINTEXT_BODY
    m = srv.metrics()
    per_worker = worker_lines(m)
    assert sorted(per_worker) == [
        'hotpath_worker_connections_accepted_total{worker="0"}',
        'hotpath_worker_connections_accepted_total{worker="1"}'], per_worker
    for k, v in per_worker.items():
        assert v > 0, "%s is %s: that worker never accepted" % (k, v)
    assert sum(per_worker.values()) == m["hotpath_connections_accepted_total"]


@pytest.mark.time_limit(60)
def test_concurrent_keepalive_clients(start_server):
    """32 clients at once, 200 keep-alive requests each, all answered
    correctly; the counters add up."""
    srv = start_server(workers=2)
    errors = []

    def client(k):
        try:
            with Conn(srv.port, timeout=scaled(10)) as c:
                for i in range(200):
                    path, body = (("/json", JSON_BODY) if (i + k) % 2
                                  else ("/plaintext", PLAINTEXT_BODY))
                    resp = c.request("GET", path)
                    assert resp.status == 200 and resp.body == body
        except BaseException as e:      # reported by the main thread
            errors.append(e)

    with srv.conn() as mc:
        before = srv.metrics(mc)
        threads = [threading.Thread(target=client, args=(k,), daemon=True)
                   for k in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(30))
        assert not any(t.is_alive() for t in threads), "clients hung"
        assert not errors, errors[:3]
        after = srv.metrics(mc)
    assert after["hotpath_requests_total"] - before["hotpath_requests_total"] \
        == 32 * 200 + 1
    assert after["hotpath_connections_accepted_total"] - \
        before["hotpath_connections_accepted_total"] == 32


class raised_nofile:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit for
    the duration (the server started inside inherits it)."""

    def __init__(self, need):
        self.need = need

    def __enter__(self):
        self.old = resource.getrlimit(resource.RLIMIT_NOFILE)
        hard = self.old[1]
        if hard != resource.RLIM_INFINITY and hard < self.need:
            pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, self.need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return self

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_NOFILE, self.old)


@pytest.mark.time_limit(90)
def test_5000_idle_connections_do_not_slow_requests(start_server):
    n = 5000
    with raised_nofile(n + 500):
        srv = start_server("--keepalive-timeout", "30", "--header-timeout", "30")
        socks = []
        try:
            for _ in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.settimeout(scaled(5))
                s.connect(("127.0.0.1", srv.port))
            with srv.conn() as mc:
                wait_until(lambda: srv.metrics(mc)["hotpath_connections_open"] >= n + 1,
                           scaled(15), what="%d connections open" % n)
            with srv.conn() as c:
                took = []
                for i in range(100):
                    t0 = time.monotonic()
                    resp = c.request("GET", "/plaintext" if i % 2 else "/json")
                    took.append(time.monotonic() - t0)
                    assert resp.status == 200
                    assert resp.body == (PLAINTEXT_BODY if i % 2 else JSON_BODY)
                # Work per request that grew with the idle connections would
                # slow most requests, so the 90th percentile shows it; one
                # request that a loaded machine preempts does not fail the
                # test. A stall of seconds is a bug whatever the load.
                took.sort()
                assert took[89] < scaled(0.5), "90th percentile %.3f s" % took[89]
                assert took[-1] < scaled(5), "slowest request took %.3f s" % took[-1]
            # The idle connections are still there.
            for s in socks[::500]:
                s.settimeout(0.001)
                with pytest.raises(socket.timeout):
                    s.recv(1, socket.MSG_PEEK)
        finally:
            for s in socks:
                s.close()
        with srv.conn() as mc:
            wait_until(lambda: srv.metrics(mc)["hotpath_connections_open"] <= 1,
                       scaled(10), what="idle connections closed on the server")


def _set_low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


@pytest.mark.time_limit(60)
def test_fd_exhaustion_no_busy_loop_and_recovery(start_server):
    srv = start_server("--keepalive-timeout", "30", "--header-timeout", "30",
                       preexec_fn=_set_low_nofile)
    clients = []
    try:
        for _ in range(150):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            clients.append(s)
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", srv.port))
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            except OSError:
                pass        # refused, reset or stuck in the backlog: fine
        assert srv.alive(), srv.stderr_tail()
        hz = os.sysconf("SC_CLK_TCK")
        before = cpu_ticks(srv.pid)
        t0 = time.monotonic()
        time.sleep(2)       # the measurement window itself
        used = (cpu_ticks(srv.pid) - before) / hz
        elapsed = time.monotonic() - t0
        assert used / elapsed < 0.10, \
            "server burns %.0f%% CPU while out of fds" % (100 * used / elapsed)
        assert srv.alive(), srv.stderr_tail()
    finally:
        for s in clients:
            s.close()

    def serves():
        try:
            with Conn(srv.port, timeout=1) as c:
                return c.request("GET", "/plaintext").body == PLAINTEXT_BODY
        except OSError:
            return False
    wait_until(serves, scaled(5), interval=0.1,
               what="a request to succeed after the clients closed")


def read_n(conn, n, expect):
    for i in range(n):
        resp = conn.read_response()
        assert resp.status == 200, (i, resp)
        if expect is not None:
            assert resp.body == expect, (i, resp)


@pytest.mark.time_limit(90)
def test_zero_heap_allocations_per_request(start_server):
    srv = start_server(workers=1)
    batch = build_request("GET", "/plaintext") * 100
    with srv.conn(timeout=scaled(10)) as c:
        for _ in range(10):                     # 1,000 warm-up requests
            c.send(batch)
            read_n(c, 100, PLAINTEXT_BODY)
        for _ in range(3):
            srv.metrics(c)
        before = srv.metrics(c)
        for _ in range(100):                    # 10,000 measured requests
            c.send(batch)
            read_n(c, 100, PLAINTEXT_BODY)
        after = srv.metrics(c)
    allocs = after["hotpath_heap_allocations_total"] - \
        before["hotpath_heap_allocations_total"]
    assert allocs == 0, "%d heap allocations for 10,000 requests" % allocs
    assert after["hotpath_requests_total"] - before["hotpath_requests_total"] \
        == 10001
    assert after["hotpath_pool_chunks_in_use"] <= before["hotpath_pool_chunks_in_use"]


@pytest.mark.time_limit(90)
def test_zero_heap_allocations_mixed_requests(start_server):
    """The same for a mix: JSON, health, HEAD, a small echo, a static file
    and a 404."""
    srv = start_server(workers=1)
    mix = [
        (build_request("GET", "/json"), False, JSON_BODY),
        (build_request("GET", "/health"), False, HEALTH_BODY),
        (build_request("HEAD", "/plaintext"), True, b""),
        (build_request("POST", "/echo", body=b"e" * 100), False, b"e" * 100),
        (build_request("GET", "/index.html"), False, INDEX_HTML),
        (build_request("GET", "/missing"), False, None),
    ]
    batch = b"".join(r for r, _, _ in mix) * 20

    def one_batch(c):
        c.send(batch)
        for _ in range(20):
            for _, head, body in mix:
                resp = c.read_response(head=head)
                if body is not None:
                    assert resp.status == 200 and resp.body == body, resp
                else:
                    assert resp.status == 404

    with srv.conn(timeout=scaled(10)) as c:
        for _ in range(10):
            one_batch(c)
        for _ in range(3):
            srv.metrics(c)
        before = srv.metrics(c)
        for _ in range(20):
            one_batch(c)
        after = srv.metrics(c)
    allocs = after["hotpath_heap_allocations_total"] - \
        before["hotpath_heap_allocations_total"]
    assert allocs == 0, "%d heap allocations for 2,400 mixed requests" % allocs
