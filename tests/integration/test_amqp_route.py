"""The hotpath binary's AMQP publishing route against a real RabbitMQ node
(the `rabbitmq` fixture): POST <publish_route>/{exchange}/{routing key}
publishes the body with a confirm and answers 202 once the broker acked
it, or why not; a request that cannot be published yet (a channel or
connection coming back) waits and tries again within its timeout; the
circuit breaker answers 503 at once while open; /metrics shows the
workers' AMQP counters; --check-config places the amqp section's
mistakes.

Queues and exchanges are named from the test's `queue_prefix`, so the
tests share the session's one node. Each server connects with its own
connections, named "hotpath[<pid>] worker <n>" at the broker ("... worker
<n> connection <i>" with amqp.connections above 1).
"""

import json
import pathlib
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pika
import pytest

from helpers import Conn, chunked, parse_metrics, scaled, wait_until

WORKERS = 2
ROUTE = "/publish"
DEFAULT_TYPE = "application/x-hotpath-test"
PROM_CHECK = pathlib.Path(__file__).with_name("prom_check.py")


def config_text(url, **amqp):
    keys = {"url": url, "publish_route": ROUTE, "content_type": DEFAULT_TYPE,
            "timeout": "5s", "confirm_window": 100}
    keys.update(amqp)
    return "amqp:\n" + "".join("  %s: %s\n" % (k, v) for k, v in keys.items())


def start(start_server, tmp_path, rabbitmq, workers=WORKERS, **amqp):
    """A server whose configuration file points at the session's node;
    returns once every worker's connections are ready to publish."""
    conf = tmp_path / ("amqp-%d.yaml" % len(list(tmp_path.glob("amqp-*.yaml"))))
    conf.write_text(config_text(rabbitmq.url, **amqp))
    srv = start_server("--config", conf, workers=workers)
    want = workers * int(amqp.get("connections", 1))
    wait_until(lambda: ready_connections(srv) == want, scaled(20),
               what="every worker's AMQP connections ready")
    return srv


def metrics(srv):
    with srv.conn() as c:
        resp = c.request("GET", "/metrics")
    assert resp.status == 200, resp
    return parse_metrics(resp.body.decode())


def ready_connections(srv):
    return metrics(srv).get('hotpath_amqp_connections{state="ready"}', 0)


def path(exchange, key):
    return "%s/%s/%s" % (ROUTE, urllib.parse.quote(exchange, safe=""),
                         urllib.parse.quote(key, safe=""))


def publish(conn, exchange, key, body=b"x", headers=None):
    resp = conn.request("POST", path(exchange, key), body=body, headers=headers or {})
    doc = json.loads(resp.body) if resp.body else None
    return resp, doc


@pytest.fixture
def channel(rabbitmq):
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    try:
        yield conn.channel()
    finally:
        conn.close()


def server_connections(rabbitmq, srv):
    """The server's connections at the broker, by the name each announces."""
    mark = "hotpath[%d] worker " % srv.pid
    return [c for c in rabbitmq.list_connections("pid", "client_properties")
            if mark in c["client_properties"]]


def get_all(channel, queue, n, timeout=10):
    """The next n messages of `queue` (basic.get, acked), waiting for them."""
    out = []
    deadline = time.monotonic() + scaled(timeout)
    while len(out) < n:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            assert time.monotonic() < deadline, "only %d of %d messages" % (len(out), n)
            time.sleep(0.02)
            continue
        out.append((props, body))
    return out


def test_publish_is_confirmed_and_arrives(start_server, tmp_path, rabbitmq, channel,
                                          queue_prefix):
    srv = start(start_server, tmp_path, rabbitmq)
    q = queue_prefix + "jobs"
    channel.queue_declare(q)
    with srv.conn() as c:
        resp, doc = publish(c, "-", q, b"hello, broker",
                            {"Content-Type": "text/plain; charset=utf-8"})
        assert resp.status == 202, resp
        assert resp.header("Content-Type") == "application/json"
        assert doc["seq"] >= 1 and doc["message_id"]
        # No Content-Type: the configured default. "amq.default" is "".
        resp2, doc2 = publish(c, "amq.default", q, b"\x00\x01binary")
        assert resp2.status == 202, resp2
        assert doc2["message_id"] != doc["message_id"]
        # Larger than the output chunk and the broker's frame: several
        # body frames, chunked on the way in.
        big = bytes((i * 31 + 7) & 0xFF for i in range(300_000))
        resp3 = c.request("POST", path("-", q), body=chunked(big),
                          headers={"Transfer-Encoding": "chunked"})
        assert resp3.status == 202, resp3
        assert publish(c, "-", q, b"")[0].status == 202  # no body at all
    (p1, b1), (p2, b2), (_, b3), (_, b4) = get_all(channel, q, 4)
    assert b3 == big and b4 == b""
    assert b1 == b"hello, broker"
    assert p1.content_type == "text/plain; charset=utf-8"
    assert p1.delivery_mode == 2
    assert p1.message_id == doc["message_id"]
    assert b2 == b"\x00\x01binary" and p2.content_type == DEFAULT_TYPE


def test_names_are_percent_decoded(start_server, tmp_path, rabbitmq, channel, queue_prefix):
    """Exchange and key are decoded: a topic exchange with a key holding
    '/', '.' and a space, bound by pattern."""
    srv = start(start_server, tmp_path, rabbitmq, workers=1)
    ex, q = queue_prefix + "topic/x", queue_prefix + "t"
    channel.exchange_declare(ex, "topic", auto_delete=True)
    channel.queue_declare(q)
    channel.queue_bind(q, ex, "a.*.c")
    with srv.conn() as c:
        resp, _ = publish(c, ex, "a.b/ z.c", b"routed")
        assert resp.status == 202, resp
        # (A malformed escape is the HTTP parser's 400; an encoded NUL ours.)
        bad = c.request("POST", ROUTE + "/-/a%00b", body=b"x")
        assert bad.status == 400 and json.loads(bad.body)["error"].startswith("malformed")
        long = c.request("POST", ROUTE + "/-/" + "k" * 256, body=b"x")
        assert long.status == 400
        assert c.request("GET", path("-", q)).status == 405
    assert get_all(channel, q, 1)[0][1] == b"routed"
    channel.exchange_delete(ex)


def test_missing_exchange_is_404_and_the_channel_comes_back(start_server, tmp_path, rabbitmq,
                                                           channel, queue_prefix):
    srv = start(start_server, tmp_path, rabbitmq, workers=1)
    q = queue_prefix + "after"
    channel.queue_declare(q)
    with srv.conn() as c:
        resp, doc = publish(c, queue_prefix + "no-such-exchange", "k")
        assert resp.status == 404, resp
        assert doc["exchange"] == queue_prefix + "no-such-exchange"
        assert doc["routing_key"] == "k"
        assert "NOT_FOUND" in doc["reason"]
        # The broker closed the channel; the server opens another at once,
        # and the next request waits for it rather than failing.
        resp, doc = publish(c, "-", q, b"after the 404")
        assert resp.status == 202, (resp, doc)
        assert c.request("GET", "/health").status == 200
    assert get_all(channel, q, 1)[0][1] == b"after the 404"
    m = metrics(srv)
    assert m['hotpath_amqp_publish_requests_total{outcome="no_exchange"}'] == 1


def test_unroutable_is_502(start_server, tmp_path, rabbitmq, queue_prefix):
    srv = start(start_server, tmp_path, rabbitmq, workers=1)
    with srv.conn() as c:
        resp, doc = publish(c, "-", queue_prefix + "nobody-listens", b"lost")
        assert resp.status == 502, resp
        assert doc["error"].startswith("unroutable")
        assert doc["exchange"] == "" and doc["routing_key"] == queue_prefix + "nobody-listens"
        resp, doc = publish(c, "amq.direct", queue_prefix + "unbound")
        assert resp.status == 502 and doc["exchange"] == "amq.direct"
    m = metrics(srv)
    assert m['hotpath_amqp_publish_requests_total{outcome="unroutable"}'] == 2
    assert m["hotpath_amqp_returned_total"] >= 2


def test_nacked_is_502(start_server, tmp_path, rabbitmq, channel, queue_prefix):
    """A full queue that rejects publishes makes the broker nack."""
    srv = start(start_server, tmp_path, rabbitmq, workers=1)
    q = queue_prefix + "full"
    channel.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    with srv.conn() as c:
        assert publish(c, "-", q, b"first")[0].status == 202
        resp, doc = publish(c, "-", q, b"second")
        assert resp.status == 502, resp
        assert doc["error"].startswith("nacked")
    assert metrics(srv)['hotpath_amqp_publish_requests_total{outcome="nacked"}'] == 1


def test_outage_is_waited_out(start_server, tmp_path, rabbitmq, channel, queue_prefix):
    """Closing the server's connections at the broker: requests that come
    meanwhile wait for the recovery and are published then (202); only one
    in flight when the connection went gets 503 unconfirmed (it may have
    reached the broker: it is not sent again). None is answered
    "unavailable": a recovery is shorter than the timeout."""
    srv = start(start_server, tmp_path, rabbitmq, timeout="20s")
    q = queue_prefix + "outage"
    channel.queue_declare(q)
    before = metrics(srv)["hotpath_amqp_recoveries_total"]
    conns = server_connections(rabbitmq, srv)
    assert len(conns) == WORKERS, conns
    seen, stop = [], threading.Event()

    def hammer():
        with srv.conn() as c:
            while not stop.is_set():
                r, doc = publish(c, "-", q, b"during")
                seen.append((r.status, r.header("Retry-After"), doc))
                time.sleep(0.003)

    t = threading.Thread(target=hammer)
    t.start()
    try:
        for conn in conns:
            rabbitmq.close_connection(conn, "hotpath test: outage")
        wait_until(lambda: metrics(srv)["hotpath_amqp_recoveries_total"] >= before + WORKERS,
                   scaled(20), what="both connections recovered")
        n = len(seen)
        wait_until(lambda: len(seen) > n + 5, scaled(20), what="requests after the recovery")
    finally:
        stop.set()
        t.join()
    assert {s for s, _, _ in seen} <= {202, 503}, seen
    for status, retry, doc in seen:
        if status == 503:
            assert retry == "1", (status, retry, doc)
            assert doc["error"].startswith("unconfirmed"), doc
    assert seen[-1][0] == 202
    wait_until(lambda: ready_connections(srv) == WORKERS, scaled(20), what="both reconnected")
    m = metrics(srv)
    assert m['hotpath_amqp_publish_requests_total{outcome="unavailable"}'] == 0
    with srv.conn() as c:
        assert publish(c, "-", q, b"after")[0].status == 202
    assert srv.alive()


def test_concurrent_requests_are_all_confirmed(start_server, tmp_path, rabbitmq, channel,
                                               queue_prefix):
    srv = start(start_server, tmp_path, rabbitmq)
    q = queue_prefix + "many"
    channel.queue_declare(q)
    n = 50
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        with srv.conn(timeout=scaled(10)) as c:
            barrier.wait()
            r, doc = publish(c, "-", q, b"message %d" % i)
            results[i] = r.status

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [202] * n, results
    bodies = sorted(b for _, b in get_all(channel, q, n))
    assert bodies == sorted(b"message %d" % i for i in range(n))
    assert channel.basic_get(q)[0] is None


def test_read_coalescing_confirms_every_request(start_server, tmp_path, rabbitmq, channel,
                                                queue_prefix):
    """amqp.read_coalesce: 2ms: 8 clients keep 800 requests going, so
    confirms stream in and the connections read them on the period's
    ticks; every request still gets its 202, the last ones too (their
    confirms arrive below the low-water mark, after the stream stopped),
    each well within amqp.timeout."""
    srv = start(start_server, tmp_path, rabbitmq, read_coalesce="2ms")
    q = queue_prefix + "coalesced"
    channel.queue_declare(q)

    def client(i):
        statuses = []
        with srv.conn(timeout=scaled(10)) as c:
            for k in range(100):
                r, _ = publish(c, "-", q, b"m %d %d" % (i, k))
                statuses.append(r.status)
        return statuses

    results = concurrently(8, client)
    assert all(s == [202] * 100 for s in results), results
    bodies = sorted(b for _, b in get_all(channel, q, 800))
    assert bodies == sorted(b"m %d %d" % (i, k) for i in range(8) for k in range(100))


def concurrently(n, fn):
    """fn(i) for i in 0..n-1, each on a thread of its own, started
    together; returns their results in order."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        results[i] = fn(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_connections_and_channels_per_worker(start_server, tmp_path, rabbitmq, channel,
                                             queue_prefix):
    """amqp.connections: 2, amqp.channels: 2: each worker holds two
    connections, named by worker and index, each with two channels in
    confirm mode; requests are spread over them, and every one arrives."""
    srv = start(start_server, tmp_path, rabbitmq, connections=2, channels=2)
    assert ready_connections(srv) == WORKERS * 2
    conns = server_connections(rabbitmq, srv)
    names = sorted(c["client_properties"] for c in conns)
    assert len(names) == WORKERS * 2, names
    for w in range(WORKERS):
        for i in range(2):
            mark = "hotpath[%d] worker %d connection %d" % (srv.pid, w, i)
            assert sum(mark in n for n in names) == 1, (mark, names)
    pids = {c["pid"] for c in conns}
    chans = [c for c in rabbitmq.list_channels() if c["connection"] in pids]
    assert len(chans) == WORKERS * 2 * 2 and all(c["confirm"] for c in chans), chans
    q = queue_prefix + "spread"
    channel.queue_declare(q)
    n = 50
    body = b"%03d" + b"." * 4000

    def one(i):
        with srv.conn(timeout=scaled(10)) as c:
            return publish(c, "-", q, body % i)[0].status
    assert concurrently(n, one) == [202] * n
    got = sorted(b for _, b in get_all(channel, q, n))
    assert got == sorted(body % i for i in range(n))
    assert channel.basic_get(q)[0] is None
    # Each worker spread what it got over both its connections: the one
    # that published least still carried a few of the 4 KB messages (a
    # connection that published none has read only its handshake).
    octets = [c["recv_oct"] for c in rabbitmq.list_connections("pid", "recv_oct")
              if c["pid"] in pids]
    assert len(octets) == WORKERS * 2 and min(octets) > 8000, octets


def test_a_killed_connection_loses_nothing(start_server, tmp_path, rabbitmq, channel,
                                           queue_prefix):
    """One of a worker's two connections closed by the broker while
    requests flow: each request gets 202, or 503 "unconfirmed" if it was
    in flight on that connection; every 202 arrives, and the other
    connection carries on meanwhile."""
    srv = start(start_server, tmp_path, rabbitmq, workers=1, connections=2, timeout="20s")
    q = queue_prefix + "kill1"
    channel.queue_declare(q)
    conns = server_connections(rabbitmq, srv)
    assert len(conns) == 2, conns
    victim = [c for c in conns if "connection 1" in c["client_properties"]][0]
    seen, stop = [], threading.Event()
    lock = threading.Lock()

    def hammer(k):
        with srv.conn(timeout=scaled(30)) as c:
            i = 0
            while not stop.is_set():
                mark = b"%d-%d" % (k, i)
                r, doc = publish(c, "-", q, mark)
                with lock:
                    seen.append((r.status, doc, mark))
                i += 1

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(seen) > 20, scaled(20), what="requests before the kill")
        rabbitmq.close_connection(victim, "hotpath test: one connection")
        n = len(seen)
        # While it recovers (100 ms at least), the other one publishes.
        wait_until(lambda: len(seen) > n + 20, scaled(20), what="requests after the kill")
        wait_until(lambda: metrics(srv)["hotpath_amqp_recoveries_total"] >= 1, scaled(20),
                   what="the connection recovered")
        wait_until(lambda: ready_connections(srv) == 2, scaled(20), what="both ready again")
        n = len(seen)
        wait_until(lambda: len(seen) > n + 20, scaled(20), what="requests after the recovery")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert {s for s, _, _ in seen} <= {202, 503}, [x for x in seen if x[0] not in (202, 503)]
    unconfirmed = [doc for s, doc, _ in seen if s == 503]
    for doc in unconfirmed:
        assert doc["error"].startswith("unconfirmed"), doc
    # At most what four clients can have in flight at once.
    assert len(unconfirmed) <= 4, unconfirmed
    assert seen[-1][0] == 202
    # Every 202 arrived (the broker had queued it before its ack); an
    # unconfirmed one may have too.
    accepted = {mark for s, _, mark in seen if s == 202}
    got = set()
    while True:
        method, _, body = channel.basic_get(q, auto_ack=True)
        if method is None:
            break
        got.add(body)
    assert accepted <= got, accepted - got
    m = metrics(srv)
    assert m['hotpath_amqp_publish_requests_total{outcome="unavailable"}'] == 0
    assert srv.alive()


def test_publish_queue_takes_a_burst_beyond_the_window(start_server, tmp_path, rabbitmq,
                                                       channel, queue_prefix):
    """A confirm window of 2 and amqp.publish_queue: 50 requests at once
    wait in the channel's queue, not 503; all 202, all arrive."""
    srv = start(start_server, tmp_path, rabbitmq, workers=1, confirm_window=2,
                publish_queue="64k")
    q = queue_prefix + "burst"
    channel.queue_declare(q)
    n = 50

    def one(i):
        with srv.conn(timeout=scaled(10)) as c:
            r, doc = publish(c, "-", q, b"burst %d" % i)
            return r.status, doc
    results = concurrently(n, one)
    assert [s for s, _ in results] == [202] * n, results
    got = sorted(b for _, b in get_all(channel, q, n))
    assert got == sorted(b"burst %d" % i for i in range(n))


def test_metrics_move_and_parse(start_server, tmp_path, rabbitmq, channel, queue_prefix):
    srv = start(start_server, tmp_path, rabbitmq)
    q = queue_prefix + "counted"
    channel.queue_declare(q)
    with srv.conn() as c:
        for i in range(10):
            assert publish(c, "-", q, b"%d" % i)[0].status == 202

    def counted():
        m = metrics(srv)
        return m if m["hotpath_amqp_published_total"] >= 10 and \
            m["hotpath_amqp_confirmed_total"] >= 10 else None
    m = wait_until(counted, scaled(5), what="the counters to move")
    assert m['hotpath_amqp_publish_requests_total{outcome="accepted"}'] == 10
    assert m["hotpath_amqp_confirm_duration_seconds_count"] == 10
    assert m['hotpath_amqp_confirm_duration_seconds_bucket{le="+Inf"}'] == 10
    assert m['hotpath_amqp_confirm_duration_seconds_bucket{le="10"}'] == 10
    assert m["hotpath_amqp_bytes_sent_total"] > 10 * 20
    assert m["hotpath_amqp_bytes_received_total"] > 0
    assert m['hotpath_amqp_connections{state="ready"}'] == WORKERS
    assert m['hotpath_amqp_connections{state="closed"}'] == 0
    for name in ("nacked", "returned", "delivered", "redelivered", "acked", "recoveries"):
        assert m["hotpath_amqp_%s_total" % name] == 0, name
    key = 'hotpath_route_responses_total{route="%s/{exchange}/{routing_key:*}",' \
          'method="POST",class="2xx"}' % ROUTE
    assert m[key] == 10
    with srv.conn() as c:
        text = c.request("GET", "/metrics").body
    r = subprocess.run(["/usr/bin/python3", str(PROM_CHECK),
                        "--require", "hotpath_amqp_published_total",
                        "--require", "hotpath_amqp_confirm_duration_seconds",
                        "--require", "hotpath_amqp_connections"],
                       input=text, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()


def test_timeout_is_504_and_a_client_that_goes_is_forgotten(start_server, tmp_path, rabbitmq,
                                                            channel, queue_prefix):
    """With the broker frozen (SIGSTOP), no confirm comes: 504 after the
    configured timeout; a client that hangs up meanwhile harms nothing."""
    srv = start(start_server, tmp_path, rabbitmq, workers=1, timeout="300ms")
    q = queue_prefix + "slow"
    channel.queue_declare(q)
    with rabbitmq.frozen():
        with srv.conn() as c:
            t0 = time.monotonic()
            resp, doc = publish(c, "-", q, b"frozen")
            took = time.monotonic() - t0
            assert resp.status == 504, resp
            assert doc["error"].startswith("timeout")
            assert 0.25 <= took < scaled(3), took
        gone = Conn(srv.port)
        gone.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ngone"
                  % path("-", q).encode())
        time.sleep(0.05)
        gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        gone.close()
        wait_until(lambda: metrics(srv)['hotpath_amqp_publish_requests_total{outcome="aborted"}']
                   == 1, scaled(5), what="the aborted request counted")
    # Both messages reach the queue once the broker runs again, and the
    # server goes on.
    assert sorted(b for _, b in get_all(channel, q, 2)) == [b"frozen", b"gone"]
    with srv.conn() as c:
        assert publish(c, "-", q, b"after")[0].status == 202
        assert c.request("GET", "/health").status == 200
    m = metrics(srv)
    assert m['hotpath_amqp_publish_requests_total{outcome="timeout"}'] == 1
    assert m["hotpath_amqp_confirm_duration_seconds_count"] == 3


def test_blocked_broker_is_503(start_server, tmp_path, rabbitmq, queue_prefix, channel):
    """A memory alarm makes the broker block publishers: it stops reading
    from a connection that publishes and says so (connection.blocked).
    The request that ran into it waits (202 if the alarm lifts in time,
    else 504); those after it get 503 with Retry-After until it lifts."""
    srv = start(start_server, tmp_path, rabbitmq, workers=1, timeout="3s")
    q = queue_prefix + "blocked"
    channel.queue_declare(q)
    with srv.conn() as c:
        assert publish(c, "-", q, b"before")[0].status == 202
    first = []
    t = threading.Thread(target=lambda: first.append(
        publish(srv.conn(timeout=scaled(10)), "-", q, b"stuck")[0].status))
    rabbitmq.ctl("set_vm_memory_high_watermark", "0.0000001")
    try:
        t.start()
        wait_until(lambda: metrics(srv).get('hotpath_amqp_connections{state="blocked"}') == 1,
                   scaled(10), what="the connection blocked")
        with srv.conn() as c:
            resp, doc = publish(c, "-", q, b"refused")
            assert resp.status == 503 and resp.header("Retry-After") == "1", resp
            assert "blocked" in doc["error"]
    finally:
        rabbitmq.ctl("set_vm_memory_high_watermark", "0.4")
        t.join()
    assert first and first[0] in (202, 504), first
    wait_until(lambda: ready_connections(srv) == 1, scaled(10), what="unblocked")
    with srv.conn() as c:
        assert publish(c, "-", q, b"after")[0].status == 202


def breaker_states(srv):
    m = metrics(srv)
    return {s: m['hotpath_amqp_breaker_state{state="%s"}' % s]
            for s in ("closed", "open", "half_open")}, m


def test_breaker_opens_after_timeouts_and_a_probe_closes_it(start_server, tmp_path, rabbitmq,
                                                            channel, queue_prefix):
    """breaker_failures 3: with the broker frozen, three requests time out
    (504); the fourth is refused at once with 503 "circuit open" and a
    Retry-After of the open time left, without waiting for a timeout.
    Once the broker runs again and breaker_open has passed, one request
    goes through as a probe, is confirmed, and the circuit closes."""
    srv = start(start_server, tmp_path, rabbitmq, workers=1, timeout="400ms",
                breaker_failures=3, breaker_window="60s", breaker_open="3s")
    q = queue_prefix + "breaker"
    channel.queue_declare(q)
    states, m = breaker_states(srv)
    assert states == {"closed": 1, "open": 0, "half_open": 0}, states
    assert m["hotpath_amqp_breaker_opened_total"] == 0
    with rabbitmq.frozen():
        with srv.conn(timeout=scaled(10)) as c:
            for i in range(3):
                resp, doc = publish(c, "-", q, b"timed out %d" % i)
                assert resp.status == 504, (i, resp)
            resp, doc = publish(c, "-", q, b"refused")
            assert resp.status == 503, resp
            assert doc["error"].startswith("circuit open"), doc
            assert 1 <= int(resp.header("Retry-After")) <= 3, resp
        states, m = breaker_states(srv)
        assert states == {"closed": 0, "open": 1, "half_open": 0}, states
        assert m["hotpath_amqp_breaker_opened_total"] == 1
        # Refused at once: counted as circuit_open, not as a fourth timeout.
        assert m['hotpath_amqp_publish_requests_total{outcome="timeout"}'] == 3
        assert m['hotpath_amqp_publish_requests_total{outcome="circuit_open"}'] == 1
    # The broker runs again: its late acks change nothing; after the open
    # time the next request is the probe, and its confirm closes it.
    statuses = []

    def accepted():
        with srv.conn(timeout=scaled(10)) as c:
            r, doc = publish(c, "-", q, b"probe")
        statuses.append((r.status, doc))
        assert r.status in (202, 503), (r, doc)
        return r.status == 202
    wait_until(accepted, scaled(20), interval=0.2, what="a probe confirmed")
    assert all(d["error"].startswith("circuit open") for s, d in statuses if s == 503), statuses
    states, m = breaker_states(srv)
    assert states == {"closed": 1, "open": 0, "half_open": 0}, states
    assert m["hotpath_amqp_breaker_opened_total"] == 1
    with srv.conn() as c:
        assert publish(c, "-", q, b"after")[0].status == 202
    # Nothing lost: the timed-out ones reached the queue too.
    bodies = sorted(b for _, b in get_all(channel, q, 5))
    assert bodies == sorted([b"timed out 0", b"timed out 1", b"timed out 2", b"probe",
                             b"after"]), bodies


def test_stamp_adds_timestamp_in_ms(start_server, tmp_path, rabbitmq, channel, queue_prefix):
    """amqp.stamp: each message carries timestamp_in_ms (wall-clock ms,
    the header RabbitMQ's message-timestamp plugin sets) and the timestamp
    property (s), so a consumer elsewhere can measure publish-to-deliver
    latency; without it, neither."""
    q = queue_prefix + "stamped"
    channel.queue_declare(q)
    srv = start(start_server, tmp_path, rabbitmq, workers=1, stamp="true")
    before = int(time.time() * 1000)
    with srv.conn() as c:
        assert publish(c, "-", q, b"stamped")[0].status == 202
    after = int(time.time() * 1000)
    (props, body), = get_all(channel, q, 1)
    assert body == b"stamped"
    assert before <= props.headers["timestamp_in_ms"] <= after, (before, props.headers, after)
    assert before // 1000 <= props.timestamp <= after // 1000 + 1
    srv2 = start(start_server, tmp_path, rabbitmq, workers=1)
    with srv2.conn() as c:
        assert publish(c, "-", q, b"plain")[0].status == 202
    (props, body), = get_all(channel, q, 1)
    assert body == b"plain" and not props.headers and props.timestamp is None
    # The server consumes nothing: no publish-to-deliver samples to show.
    assert not any(k.startswith("hotpath_amqp_publish_to_deliver") for k in metrics(srv))


def test_sigterm_while_a_request_waits(start_server, tmp_path, rabbitmq, channel,
                                       queue_prefix):
    """A graceful stop with a request waiting for its confirm: the request
    is answered (503: its connection to the broker closed under it) and
    the server exits 0."""
    srv = start(start_server, tmp_path, rabbitmq, workers=1, timeout="30s")
    q = queue_prefix + "stop"
    channel.queue_declare(q)
    with rabbitmq.frozen():
        with srv.conn(timeout=scaled(10)) as c:
            c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nstop"
                   % path("-", q).encode())
            time.sleep(0.1)
            srv.signal(signal.SIGTERM)
            resp = c.read_response()
            assert resp.status == 503, resp
            assert json.loads(resp.body)["error"].startswith("unconfirmed")
        assert srv.wait_exit(scaled(10)) == 0, srv.stderr_tail()
    get_all(channel, q, 1)  # it was sent: the broker has it once it runs again


def test_reload_names_the_amqp_keys(serve, rabbitmq):
    """SIGHUP with changed amqp keys: applied at the next start, and said."""
    s = serve("root: .\n" + config_text(rabbitmq.url))

    def ready():
        with Conn(s.port) as c:
            m = parse_metrics(c.request("GET", "/metrics").body.decode())
        return m.get('hotpath_amqp_connections{state="ready"}') == 1
    wait_until(ready, scaled(20), what="connected")
    s.write("root: .\n" + config_text(rabbitmq.url, timeout="7s", confirm_window=5))
    out = s.signal(signal.SIGHUP, expect="SIGHUP")
    assert "amqp.confirm_window, amqp.timeout changed: restart to apply" in out, out
    s.write("root: .\n" + config_text(rabbitmq.url, connections=2, channels=3,
                                        publish_queue="1m"))
    out = s.signal(signal.SIGHUP, expect="SIGHUP")
    assert ("amqp.connections, amqp.channels, amqp.publish_queue changed: restart to apply"
            in out), out
    s.write("root: .\n" + config_text(rabbitmq.url, confirm_window=0))
    out = s.signal(signal.SIGHUP, expect="keeping the running configuration")
    assert "amqp.confirm_window: expected a whole number from 1 to 65535" in out, out


def run_check(hotpath_bin, tmp_path, text):
    f = tmp_path / "check.yaml"
    f.write_text(text)
    return subprocess.run([str(hotpath_bin), "--check-config", str(f)], capture_output=True,
                          text=True, timeout=30, cwd=str(tmp_path))


@pytest.mark.parametrize("text, where, what", [
    ("amqp:\n  url: http://localhost/\n", "3:8", "amqp.url: "),
    ("amqp:\n  url: amqp://guest:guest@127.0.0.1:99999/\n", "3:8", "amqp.url: "),
    ("amqp:\n  url: amqp://x/\n  confirm_window: 0\n", "4:19",
     "amqp.confirm_window: expected a whole number from 1 to 65535, got '0'"),
    ("amqp:\n  url: amqp://x/\n  confirm_window: 65536\n", "4:19",
     "amqp.confirm_window: expected a whole number from 1 to 65535, got '65536'"),
    ("amqp:\n  url: amqp://x/\n  heartbeat: 1.5s\n", "4:14",
     "amqp.heartbeat: expected a duration in whole seconds"),
    ("amqp:\n  url: amqp://x/\n  timeout: soon\n", "4:12", "amqp.timeout: expected a duration"),
    ("amqp:\n  url: amqp://x/\n  read_coalesce: 2s\n", "4:18",
     "amqp.read_coalesce: expected a duration"),
    ("amqp:\n  url: amqp://x/\n  publish_route: publish\n", "4:18",
     "amqp.publish_route: expected a URL path starting with '/'"),
    ("amqp:\n  url: amqp://x/\n  publish_route: /p/{x}\n", "4:18",
     "amqp.publish_route: expected a URL path starting with '/' without '{'"),
    ("amqp:\n  publish_route: /publish\n", "3:18",
     "amqp.publish_route: a route, but no AMQP connection"),
    ("amqp:\n  url: amqp://x/\n  hearbeat: 10s\n", "4:3",
     "amqp.hearbeat: unknown key, did you mean 'heartbeat'?"),
    ("amqp:\n  url: amqp://x/\n  breaker_failures: -1\n", "4:21",
     "amqp.breaker_failures: expected a whole number from 0 to 1000000, got '-1'"),
    ("amqp:\n  url: amqp://x/\n  breaker_window: 0s\n", "4:19",
     "amqp.breaker_window: expected a duration"),
    ("amqp:\n  url: amqp://x/\n  breaker_open: soon\n", "4:17",
     "amqp.breaker_open: expected a duration"),
    ("amqp:\n  url: amqp://x/\n  breaker_failures: 5\n  breaker_open: 10s\n"
     "  breaker_open_max: 5s\n", "6:21",
     "amqp.breaker_open_max: expected at least amqp.breaker_open"),
    ("amqp:\n  url: amqp://x/\n  stamp: maybe\n", "4:10", "amqp.stamp: expected true or false"),
    ("amqp:\n  url: amqp://x/\n  connections: 0\n", "4:16",
     "amqp.connections: expected a whole number from 1 to 64, got '0'"),
    ("amqp:\n  url: amqp://x/\n  connections: 65\n", "4:16",
     "amqp.connections: expected a whole number from 1 to 64, got '65'"),
    ("amqp:\n  url: amqp://x/\n  channels: two\n", "4:13",
     "amqp.channels: expected a whole number from 1 to 64, got 'two'"),
    ("amqp:\n  url: amqp://x/\n  confirm_window: 65535\n  channels: 8\n", "5:13",
     "amqp.channels: amqp.connections x amqp.channels x amqp.confirm_window is 524280, more "
     "than the 262144"),
    ("amqp:\n  url: amqp://x/\n  connections: 64\n  confirm_window: 5000\n", "4:16",
     "amqp.connections: amqp.connections x amqp.channels x amqp.confirm_window is 320000"),
    ("amqp:\n  url: amqp://x/\n  publish_queue: lots\n", "4:18",
     "amqp.publish_queue: expected a size in bytes"),
    ("amqp:\n  url: amqp://x/\n  publish_queue: 2g\n", "4:18",
     "amqp.publish_queue: expected a size in bytes"),
])
def test_check_config_places_amqp_mistakes(hotpath_bin, tmp_path, text, where, what):
    r = run_check(hotpath_bin, tmp_path, "root: .\n" + text)
    assert r.returncode == 1, (r.stdout, r.stderr)
    line = r.stderr.strip()
    assert line.startswith("hotpath: %s:%s: %s" % (tmp_path / "check.yaml", where, what)), line
    assert "\n" not in line


def test_check_config_accepts_a_good_amqp_section(hotpath_bin, tmp_path):
    r = run_check(hotpath_bin, tmp_path, "root: .\n" + config_text(
        "amqp://guest:guest@127.0.0.1:5672/%2F", heartbeat="30s", breaker_failures=5,
        breaker_window="10s", breaker_open="2s", breaker_open_max="2s", stamp="true",
        connections=4, channels=8, publish_queue="16m", read_coalesce="1ms"))
    assert r.returncode == 0, r.stderr
    assert "configuration is valid" in r.stdout
