"""Lessons from the peers' issue trackers (issue 11): each test here makes
hotpath's AMQP client live through a failure another client is known for,
against the real RabbitMQ node (the `rabbitmq` fixture), through
examples/amqp_tool.c built against the installed library, with
python3-pika as the second client.

- rabbitmq-c services heartbeats only inside calls (#466, #626): an idle
  consumer and an idle publisher must keep heartbeating, and a frozen
  broker must be noticed within about two intervals.
- pika lost connections when callbacks ran long (#93, #1104).
- amqplib buffered without limit behind `drain` (#398, #669).
- the .NET client lost consumers during recovery (#1993, #1047, #1076).
- and the issue's own: a full broker restart loses no confirmed message.

Every test asserts what would break if hotpath had the peer's bug. The
timings use short heartbeats (1-2 s); upper bounds are scaled() for the
sanitizer build, lower bounds are not. The whole file takes about a minute,
most of it spent waiting for heartbeats and for the broker's restart.
"""

import os
import signal
import time

import pika
import pytest

from helpers import scaled, wait_until
from test_amqp import run, tool, tools  # noqa: F401  (the fixtures)
from test_amqp_route import channel  # noqa: F401  (the fixture: a pika channel)
from test_examples import installed  # noqa: F401  (the fixture `tool` needs)


def connections_of(broker, *procs):
    """Each Tool's connections at the broker (amqp_tool names them after
    its pid), from one rabbitmqctl call: a list of rows (pid, timeout: the
    negotiated heartbeat) per Tool."""
    rows = broker.list_connections("pid", "timeout", "client_properties")
    return [[c for c in rows if "amqp_tool[%d]" % p.pid in c["client_properties"]]
            for p in procs]


def messages_in(url, q):
    """How many messages queue q holds (a passive declare: cheaper than
    rabbitmqctl, which starts an Erlang VM for each call)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(q, passive=True).method.message_count
    finally:
        conn.close()


def lost(tool_):
    """What amqp_tool says when its connection went (recovering or not)."""
    return "connection lost" in tool_.err() or "connection closed" in tool_.err()


# ---- rabbitmq-c #466, #626: heartbeats only inside calls ---------------------

def test_idle_clients_keep_heartbeating_and_a_frozen_broker_is_noticed(
        tools, rabbitmq, channel, queue_prefix):
    """rabbitmq-c (#466, #626) services heartbeats only while the
    application is inside one of its calls: a consumer waiting for
    messages that do not come, or a publisher between two messages, sends
    none, and RabbitMQ closes it after two to three intervals; nor does it
    notice a broker that stopped answering. Here, with 1 s heartbeats, an
    idle consumer and a publisher that waits 4 s between its two messages
    keep their connections (no reconnection: recovery is off), the second
    message is delivered to the same consumer, and then a frozen broker
    (SIGSTOP) is declared gone after about two intervals."""
    q = queue_prefix + "idle"
    channel.queue_declare(q, auto_delete=True)
    consumer = tools(rabbitmq.url, "consume", q, "-n", 3, "--heartbeat", 1, "--no-recover")
    publisher = tools(rabbitmq.url, "publish", "", q, "-n", 2, "--rate", 0.25, "--confirm",
                      "--heartbeat", 1, "--no-recover", "--seq", "tick")
    # Both connections are up with a heartbeat of 1 s (the broker's
    # `timeout`), so the broker would have closed a silent one by now.
    def both():
        conns = connections_of(rabbitmq, consumer, publisher)
        return conns if all(len(c) == 1 for c in conns) else None
    conns = wait_until(both, scaled(20), interval=0.2, what="both connections")
    assert [c[0]["timeout"] for c in conns] == [1, 1], conns
    assert publisher.wait(scaled(20)) == 0, publisher.err()
    assert publisher.lines()[-1]["acked"] == 2
    # The second message came 4 s (four intervals) after the first, to a
    # consumer that had nothing to do in between.
    wait_until(lambda: len(consumer.lines()) == 2, scaled(10), what="two deliveries")
    assert [m["body"] for m in consumer.lines()] == ["tick-0", "tick-1"]
    assert not lost(consumer) and not lost(publisher), (consumer.err(), publisher.err())
    assert connections_of(rabbitmq, consumer) == [conns[0]]

    # The broker freezes: its heartbeats stop, and the consumer must say so
    # itself (the socket stays open: only heartbeats can tell).
    node = rabbitmq.proc.pid
    os.kill(node, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        rc = consumer.wait(scaled(10))
        took = time.monotonic() - t0
    finally:
        os.kill(node, signal.SIGCONT)
    assert rc == 1 and "connection closed: Connection timed out" in consumer.err(), \
        consumer.err()
    # The broker's last heartbeat came at most one interval before the
    # freeze, and the client gives it two, checked every half interval.
    assert 0.9 <= took <= scaled(2.5 + 1.0), took


# ---- pika #93, #1104: long callbacks -----------------------------------------

def test_slow_callbacks_back_to_back_keep_the_connection(tools, rabbitmq, channel,
                                                          queue_prefix):
    """pika (#93: five deliveries whose callbacks sleep 1 s each, with
    heartbeats; #1104: processing longer than the interval before the
    ack) stopped heartbeating while callbacks ran, and the broker closed
    the connection. Here ten messages wait in the queue with prefetch 10,
    so they come in one read, and each callback works 700 ms (--work,
    blocking the loop) under 2 s heartbeats: 7 s of callbacks in a row,
    each shorter than an interval, more than the 4-6 s RabbitMQ waits for
    a silent client. The client has the loop back between callbacks and
    must use it: the connection must survive (no reconnection, so no
    message delivered twice), every message acknowledged once, and one
    published afterwards delivered on the same connection."""
    q = queue_prefix + "slow"
    channel.queue_declare(q)  # not auto-delete: it is counted after the consumer goes
    for i in range(10):
        channel.basic_publish("", q, b"m-%d" % i)
    consumer = tools(rabbitmq.url, "consume", q, "-n", 11, "--prefetch", 10, "--work", 700,
                     "--heartbeat", 2)
    wait_until(lambda: len(consumer.lines()) >= 10 or not consumer.alive(), scaled(30),
               what="ten slow deliveries")
    time.sleep(0.5)  # the acks of the last ones go out
    channel.basic_publish("", q, b"after")
    assert consumer.wait(scaled(20)) == 0, consumer.err()
    bodies = [m["body"] for m in consumer.lines()]
    assert not lost(consumer), (consumer.err(), bodies)
    assert bodies == ["m-%d" % i for i in range(10)] + ["after"]
    assert messages_in(rabbitmq.url, q) == 0  # every ack arrived: nothing back in the queue
    channel.queue_delete(q)


# ---- amqplib #398, #669: unbounded buffering behind drain --------------------

@pytest.mark.time_limit(60)
@pytest.mark.parametrize("stall", ["memory-alarm", "frozen-broker"])
def test_publishing_into_a_stalled_broker_stays_bounded(tools, rabbitmq, channel,
                                                        queue_prefix, stall):
    """amqplib (#398, #669) accepts every publish while the broker does
    not read (a memory alarm's connection.blocked, or a broker that is
    simply stuck) and keeps the messages in memory behind its `drain`
    event, so a publisher that does not wait grows until it dies. Here a
    publisher tries 25,600 messages of 4 KiB (100 MiB) at full speed into
    a broker that stops reading: its writes must stall at the bound
    (publishing answers -EAGAIN and waits) with its resident memory a few
    MiB above what it was, and once the broker reads again every message
    arrives, each once."""
    q = queue_prefix + "stall"
    n, size = 25600, 4096
    channel.queue_declare(q, auto_delete=False)
    body = "x" * size
    try:
        if stall == "memory-alarm":
            rabbitmq.ctl("set_vm_memory_high_watermark", "0.0000001")
        pub = tools(rabbitmq.url, "publish", "", q, "-n", n, body)
        # It has connected and started writing (messages, or the few the
        # broker reads before blocking it): its memory now is the base.
        wait_until(lambda: pub.written() > 16384 or not pub.alive(), scaled(20),
                   interval=0.002, what="the publisher to start")
        base = pub.status("VmRSS")
        node = rabbitmq.proc.pid
        if stall == "frozen-broker":
            os.kill(node, signal.SIGSTOP)
        try:
            # Writing stops: nothing more for a while, the process alive.
            def stalled():
                before = pub.written()
                time.sleep(0.5)
                return pub.written() == before
            wait_until(stalled, scaled(20), interval=0, what="the publisher to stall")
            assert pub.alive(), pub.err()
            written = pub.written()
            grown = pub.status("VmHWM") - base
            assert written < n * size // 4, written
            # amqplib would hold what it could not write: ~90 MiB here.
            assert grown < 16 * 1024, (grown, base)
        finally:
            if stall == "frozen-broker":
                os.kill(node, signal.SIGCONT)
    finally:
        if stall == "memory-alarm":
            rabbitmq.ctl("set_vm_memory_high_watermark", "0.4")
    assert pub.wait(scaled(60)) == 0, pub.err()
    assert pub.lines() == [{"published": n}]
    # (Without confirms, the last ones may still be on their way to the
    # queue when the publisher's connection has closed.)
    wait_until(lambda: messages_in(rabbitmq.url, q) >= n, scaled(10), interval=0.1,
               what="all %d messages in the queue" % n)
    assert messages_in(rabbitmq.url, q) == n
    channel.queue_delete(q)


# ---- .NET #1993, #1047, #1076: consumers lost in recovery --------------------

@pytest.mark.time_limit(60)
def test_every_consumer_comes_back_after_each_connection_kill(tools, rabbitmq, channel,
                                                              queue_prefix):
    """The .NET client's recovery lost consumers: a consumer whose
    basic.consume-ok came late was dropped while recovery reported success
    and its deliveries were silently discarded (#1993), consumers were not
    recovered when the connection failed again (#1047), or recovery left
    them behind (#1076). Here one connection has three channels, each
    with a consumer (prefetch 1, acknowledging): two on server-named
    exclusive queues, one on a named auto-delete queue, all bound to a
    topic exchange. The broker kills the connection twice; after
    each recovery every queue is back with exactly one consumer, and a
    message for each key reaches it (with prefetch 1, a delivery dropped
    without an ack would stop that consumer for good)."""
    ex = queue_prefix + "ex"
    named = queue_prefix + "named"
    channel.exchange_declare(ex, "topic", auto_delete=False)
    channel.confirm_delivery()
    keys = ["k.one", "k.two", "k.three"]
    rounds = 3  # before the first kill, then after each of two
    sub = tools(rabbitmq.url, "subscribe", ex, keys[0], keys[1], "%s=%s" % (keys[2], named),
                "-n", rounds * len(keys), "--prefetch", 1, "--recover-max", 500)
    try:
        wait_until(lambda: sub.lines() or not sub.alive(), scaled(20), what="consuming")
        queues = sub.lines()[0]["consuming"]
        assert queues[2] == named and all(q.startswith("amq.gen-") for q in queues[:2]), queues
        conns = connections_of(rabbitmq, sub)[0]
        assert len(conns) == 1, conns
        old = None
        conn = conns[0]["pid"]
        for r in range(rounds):
            if r:
                rabbitmq.close_connection(conn, "kill %d" % r)
                wait_until(lambda: sub.err().count("recovered") == r or not sub.alive(),
                           scaled(20), what="recovery %d" % r)
            # The broker's view: the server-named queues are new ones,
            # owned by (exclusive to) the new connection, and every queue
            # has one consumer.
            rows = rabbitmq.list_queues("name", "consumers", "owner_pid")
            ours = [q for q in rows if q["name"].startswith("amq.gen-") and
                    q["owner_pid"] not in ("", old)]
            assert len(ours) == 2 and all(q["consumers"] == 1 for q in ours), rows
            assert len({q["owner_pid"] for q in ours}) == 1, ours
            assert r or ours[0]["owner_pid"] == conn, (ours, conn)
            assert not r or {q["name"] for q in ours}.isdisjoint(queues), (ours, queues)
            assert [q["consumers"] for q in rows if q["name"] == named] == [1], rows
            old, conn = conn, ours[0]["owner_pid"]
            # mandatory: pika's confirm raises if a binding is missing.
            for k in keys:
                channel.basic_publish(ex, k, ("%s-%d" % (k, r)).encode(), mandatory=True)
            want = (r + 1) * len(keys)
            wait_until(lambda: len(sub.lines()) - 1 >= want or not sub.alive(), scaled(20),
                       what="round %d's deliveries" % r)
            got = sorted(m["body"] for m in sub.lines()[1 + r * len(keys):])
            assert got == sorted("%s-%d" % (k, r) for k in keys), (got, sub.err())
        assert sub.wait(scaled(20)) == 0, sub.err()
        assert sub.err().count("recovering") == rounds - 1, sub.err()
    finally:
        sub.stop()
        channel.exchange_delete(ex)


# ---- a full broker restart ---------------------------------------------------

@pytest.mark.time_limit(150)
def test_full_broker_restart_loses_no_confirmed_message(tool, tools, rabbitmq,  # noqa: F811
                                                        queue_prefix):
    """Issue 11: recovery after the broker restarts. Two publishers send
    persistent messages with confirms to durable queues, and a consumer
    waits on a third, while the whole node is stopped and started again.
    Every confirmed message is in its queue afterwards; the unconfirmed
    ones are published again (--republish: all confirmed in the end,
    duplicates allowed, none missing) or failed and named (default: each
    message either confirmed or failed, once, none duplicated); and the
    consumer comes back and goes on with what is published afterwards."""
    qr, qf, qc = (queue_prefix + s for s in ("republish", "fail", "consume"))
    url = rabbitmq.url
    for q in (qr, qf, qc):
        run(tool, url, "declare", q, "--durable")
    # 250 a second for 12 s: the restart (its rabbitmqctl alone takes a
    # few seconds to stop the node) stops them mid-stream, and they finish
    # after it.
    n = 3000
    common = ["--confirm", "--persistent", "--seq", "--rate", 250, "--recover-max", 500]
    consumer = tools(url, "consume", qc, "-n", 2, "--recover-max", 500)
    run(tool, url, "publish", "", qc, "--confirm", "--persistent", "before")
    wait_until(lambda: consumer.lines(), scaled(20), what="the consumer's first message")
    pubs = {q: tools(url, "publish", "", q, "-n", n, *common, *extra, "m")
            for q, extra in ((qr, ["--republish"]), (qf, []))}
    wait_until(lambda: all(p.written() > 64 * 1024 for p in pubs.values()), scaled(20),
               interval=0.01, what="the publishers to be under way")
    try:
        rabbitmq.restart(full=True)
        run(tool, url, "publish", "", qc, "--confirm", "--persistent", "after")
        for p in pubs.values():
            p.wait(scaled(60))
            # The restart stopped it mid-stream: it recovered, then finished.
            assert "recovered" in p.err(), (p.err(), p.lines()[-1])
        assert consumer.wait(scaled(30)) == 0, consumer.err()
        assert [m["body"] for m in consumer.lines()] == ["before", "after"]
        assert "recovered" in consumer.err()

        # --republish: every one confirmed; in the queue at least once.
        p = pubs[qr]
        summary = p.lines()[-1]
        assert p.proc.returncode == 0 and summary["acked"] == n, (summary, p.err())
        held = messages_in(url, qr)
        out = run(tool, url, "consume", qr, "-n", held, "--no-ack", "--prefetch",
                  1000, "--summary", timeout=scaled(60))[1]
        assert out == [{"received": held, "distinct": n}], (out, summary)

        # Default: each confirmed or failed, exactly once; every confirmed
        # one in the queue, and none twice (nothing was sent again).
        p = pubs[qf]
        lines = p.lines()
        summary = lines[-1]
        failed = {l["failed_body"] for l in lines[:-1]}
        assert summary["published"] == n and summary["nacked"] == 0, summary
        assert summary["acked"] + summary["failed"] == n, summary
        assert len(failed) == summary["failed"] == len(lines) - 1, (summary, lines[:-1])
        held = messages_in(url, qf)
        out = run(tool, url, "consume", qf, "-n", held, "--no-ack", "--prefetch",
                  1000, timeout=scaled(60))[1]
        bodies = [m["body"] for m in out]
        assert len(set(bodies)) == len(bodies) == held
        confirmed = {"m-%d" % i for i in range(n)} - failed
        assert confirmed <= set(bodies), sorted(confirmed - set(bodies))[:10]
    finally:
        for q in (qr, qf, qc):
            run(tool, url, "delete", q, check=False)

