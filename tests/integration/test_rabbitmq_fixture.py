"""The RabbitMQ fixture (rabbitmq.py) with real clients: Debian's pika and
amqp-tools' command-line programs against the session's private node."""

import datetime
import decimal
import os
import pathlib
import subprocess

import pika
import pika.exceptions
import pytest

from helpers import scaled, wait_until
from rabbitmq import Broker, amqp_handshake

# These tests run RabbitMQ, pika and amqp-tools, no code of hotpath's: the
# sanitizer run (`make ci-san`, HOTPATH_BIN under build/san/) would only
# spend another minute or two on them.
pytestmark = pytest.mark.skipif("/san/" in os.environ.get("HOTPATH_BIN", ""),
                                reason="no hotpath code here for the sanitizers")

# Ports a system RabbitMQ would take: epmd, AMQP, management, distribution,
# the CLI's distribution range. The fixture must stay off all of them.
FIXED_PORTS = {4369, 5672, 15672, 25672, *range(35672, 35683)}

# AMQP's CONNECTION_FORCED: the broker closed the connection on an
# operator's request.
CONNECTION_FORCED = 320

N_MESSAGES = 100


def connect(broker):
    params = pika.URLParameters(broker.url)
    params.socket_timeout = scaled(10)
    params.blocked_connection_timeout = scaled(10)
    return pika.BlockingConnection(params)


def node_pids(node):
    """Pids of the processes started for `node`: its VM, its epmd and any
    rabbitmqctl, all run with RABBITMQ_NODENAME=<node> in their environment."""
    mark = b"RABBITMQ_NODENAME=" + node.encode()
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mark in env:
            pids.append(int(d.name))
    return pids


def listening(pid):
    """{(address, port)} of the TCP sockets process `pid` listens on."""
    inodes = set()
    for fd in pathlib.Path("/proc/%d/fd" % pid).iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table in ("tcp", "tcp6"):
        lines = pathlib.Path("/proc/%d/net/%s" % (pid, table)).read_text().splitlines()
        for line in lines[1:]:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            if state != "0A" or inode not in inodes:     # 0A: LISTEN
                continue
            addr, port = local.split(":")
            if table == "tcp":
                host = ".".join(str(b) for b in reversed(bytes.fromhex(addr)))
            else:
                host = "::1" if addr == "0" * 24 + "01000000" else addr
            out.add((host, int(port, 16)))
    return out


def test_node_answers_amqp(rabbitmq):
    print("\nrabbitmq: node %s started in %.1f s, AMQP on %s:%d"
          % (rabbitmq.node, rabbitmq.start_seconds, rabbitmq.host, rabbitmq.port))
    assert rabbitmq.alive()
    assert amqp_handshake(rabbitmq.host, rabbitmq.port)
    assert rabbitmq.url == "amqp://guest:guest@127.0.0.1:%d/%%2F" % rabbitmq.port
    assert rabbitmq.log_path.is_file()


def test_frozen_node_answers_nothing_until_thawed(rabbitmq):
    """frozen(): no thread of the node runs inside the block (a handshake
    gets no answer), and the node answers again after it."""
    with rabbitmq.frozen():
        assert rabbitmq._group_stopped()
        assert not amqp_handshake(rabbitmq.host, rabbitmq.port, timeout=0.5)
    assert not rabbitmq._group_stopped()
    wait_until(lambda: amqp_handshake(rabbitmq.host, rabbitmq.port), scaled(10),
               what="the node answering again")


def test_private_ports(rabbitmq):
    """Only the ports picked at start, only on loopback: the node and its
    epmd never collide with a system RabbitMQ or another test run."""
    node = listening(rabbitmq.proc.pid)
    epmd = listening(rabbitmq.epmd.pid)
    assert {p for _, p in node} == {rabbitmq.port, rabbitmq.dist_port}, node
    assert {p for _, p in epmd} == {rabbitmq.epmd_port}, epmd
    for host, port in node | epmd:
        assert host in ("127.0.0.1", "::1"), (host, port)
        assert port not in FIXED_PORTS


def headers_sent(i):
    """A headers table with every field type pika can encode."""
    return {
        "str": "message %d" % i,
        "utf8": "caf\u00e9 \u2615",
        "int": i,
        "negative": -i - 1,
        "long": 2**40 + i,
        "bool": i % 2 == 0,
        "bytes": bytes([i, 0, 255]),
        "decimal": decimal.Decimal("12.%02d" % i),
        "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "nested": {"depth": 2, "name": "inner"},
        "list": [1, "two", True],
        "void": None,
    }


def properties(i):
    return pika.BasicProperties(
        content_type="application/x-hp-test",
        content_encoding="identity",
        headers=headers_sent(i),
        delivery_mode=2,
        priority=i % 10,
        correlation_id="corr-%d" % i,
        reply_to="replies",
        message_id="msg-%d" % i,
        timestamp=1700000000 + i,
        type="test.message",
        user_id="guest",
        app_id="hotpath-tests")


def body(i):
    return b"body %d " % i + bytes(range(256)) * (i % 4)


def test_pika_round_trip(rabbitmq, queue_prefix):
    """100 persistent messages with full properties, published with
    confirms, counted by rabbitmqctl, got back one by one and compared."""
    q = queue_prefix + "round-trip"
    conn = connect(rabbitmq)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        for i in range(N_MESSAGES):
            # With confirms on, a nack or an unroutable mandatory message
            # raises here.
            ch.basic_publish("", q, body(i), properties(i), mandatory=True)

        rows = [r for r in rabbitmq.list_queues() if r["name"] == q]
        assert rows == [{"name": q, "messages": N_MESSAGES, "consumers": 0,
                         "durable": True}]
        assert q in rabbitmq.ctl("list_queues")

        for i in range(N_MESSAGES):
            method, props, data = ch.basic_get(q)
            assert method is not None, "message %d missing" % i
            assert method.message_count == N_MESSAGES - i - 1
            assert not method.redelivered
            assert data == body(i)
            want = properties(i)
            for field in ("content_type", "content_encoding", "delivery_mode",
                          "priority", "correlation_id", "reply_to", "message_id",
                          "timestamp", "type", "user_id", "app_id"):
                assert getattr(props, field) == getattr(want, field), field
            assert props.headers == headers_sent(i)
            ch.basic_ack(method.delivery_tag)
        assert ch.basic_get(q) == (None, None, None)
        ch.queue_delete(q)
    finally:
        if conn.is_open:
            conn.close()


def wait_closed_by_broker(conn):
    """Drive pika until the broker's connection.close arrives; return the
    exception pika raises for it."""
    deadline = scaled(10)
    try:
        wait_until(lambda: conn.process_data_events(time_limit=0.1) and False,
                   deadline, what="connection.close from the broker")
    except pika.exceptions.ConnectionClosed as e:
        return e
    pytest.fail("pika's connection still open %.0f s after it was closed" % deadline)


def test_close_all_connections(rabbitmq):
    conn = connect(rabbitmq)
    conn.channel()
    rabbitmq.ctl("close_all_connections", "test")
    e = wait_closed_by_broker(conn)
    assert isinstance(e, pika.exceptions.ConnectionClosedByBroker)
    assert e.reply_code == CONNECTION_FORCED
    assert "test" in e.reply_text
    assert not conn.is_open


def test_close_one_connection(rabbitmq):
    """list_connections finds pika's connection by its client port, and
    close_connection closes that one and not the other."""
    victim, bystander = connect(rabbitmq), connect(rabbitmq)
    try:
        port = victim._impl._transport._sock.getsockname()[1]
        rows = [r for r in rabbitmq.list_connections() if r["peer_port"] == port]
        assert len(rows) == 1, rabbitmq.list_connections()
        assert rows[0]["user"] == "guest" and rows[0]["state"] == "running"
        rabbitmq.close_connection(rows[0], "only this one")
        e = wait_closed_by_broker(victim)
        assert e.reply_code == CONNECTION_FORCED and "only this one" in e.reply_text
        bystander.channel().queue_declare("", exclusive=True)
        assert bystander.is_open
    finally:
        for c in (victim, bystander):
            if c.is_open:
                c.close()


def amqp_cli(rabbitmq, prog, *args):
    r = subprocess.run([prog, "--url", rabbitmq.url, *args], capture_output=True,
                       timeout=scaled(20))
    assert r.returncode == 0, (prog, args, r.stdout, r.stderr)
    return r.stdout


def test_amqp_tools_round_trip(rabbitmq, queue_prefix):
    """amqp-tools to amqp-tools, amqp-tools to pika and pika to amqp-tools."""
    q = queue_prefix + "cli"
    amqp_cli(rabbitmq, "amqp-declare-queue", "-q", q)
    try:
        amqp_cli(rabbitmq, "amqp-publish", "-r", q, "-b", "from the cli")
        assert amqp_cli(rabbitmq, "amqp-get", "-q", q) == b"from the cli"

        amqp_cli(rabbitmq, "amqp-publish", "-r", q, "-p", "-C", "text/plain",
                 "-H", "x-origin: amqp-publish", "-b", "to pika")
        conn = connect(rabbitmq)
        try:
            ch = conn.channel()
            method, props, data = ch.basic_get(q, auto_ack=True)
            assert data == b"to pika"
            assert props.content_type == "text/plain"
            assert props.delivery_mode == 2
            assert props.headers == {"x-origin": "amqp-publish"}

            ch.basic_publish("", q, b"from pika")
        finally:
            conn.close()
        assert amqp_cli(rabbitmq, "amqp-get", "-q", q) == b"from pika"
    finally:
        amqp_cli(rabbitmq, "amqp-delete-queue", "-q", q)


@pytest.mark.time_limit(150)
def test_restart_keeps_data(rabbitmq, queue_prefix):
    """A persistent message on a durable queue outlives stop_app/start_app
    and a restart of the whole process; the node keeps its ports."""
    q = queue_prefix + "durable"
    ports = (rabbitmq.port, rabbitmq.dist_port, rabbitmq.epmd_port)
    conn = connect(rabbitmq)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, durable=True)
    ch.basic_publish("", q, b"survivor", pika.BasicProperties(delivery_mode=2))

    rabbitmq.restart()
    e = wait_closed_by_broker(conn)
    assert e.reply_code == CONNECTION_FORCED

    old_pid = rabbitmq.proc.pid
    rabbitmq.restart(full=True)
    print("\nrabbitmq: full restart took %.1f s" % rabbitmq.start_seconds)
    assert rabbitmq.proc.pid != old_pid and old_pid not in node_pids(rabbitmq.node)
    assert (rabbitmq.port, rabbitmq.dist_port, rabbitmq.epmd_port) == ports

    conn = connect(rabbitmq)
    try:
        ch = conn.channel()
        method, props, data = ch.basic_get(q, auto_ack=True)
        assert data == b"survivor" and props.delivery_mode == 2
        ch.queue_delete(q)
    finally:
        conn.close()


@pytest.mark.time_limit(120)
def test_second_broker_leaves_nothing(rabbitmq):
    """A broker of its own starts beside the session's, and stopping it
    removes its node, its epmd and its directory without disturbing the
    session's node."""
    with Broker() as other:
        print("\nrabbitmq: a second node started in %.1f s" % other.start_seconds)
        assert other.port != rabbitmq.port and other.epmd_port != rabbitmq.epmd_port
        assert other.list_queues() == []
        node, epmd, tmp = other.proc, other.epmd, other.dir
        assert node_pids(other.node)
    assert node.poll() is not None and epmd.poll() is not None
    assert not tmp.exists()
    assert node_pids(other.node) == []
    # The session's node, and its epmd, are untouched.
    assert amqp_handshake(rabbitmq.host, rabbitmq.port)
    assert isinstance(rabbitmq.list_queues(), list)
    conn = connect(rabbitmq)
    conn.close()
