"""Several broker addresses and the connection.blocked timeout, against
real RabbitMQ nodes: the session's `rabbitmq` and a second, independent
node (`second`, started for this module). examples/amqp_tool.c takes the
comma form amqp://user:pass@host1:port1,host2:port2/vhost and says on
stderr which address it connected or recovered to.

The two nodes are not a cluster: what a client declared on one must be
declared again on the other after a fail-over, which is what the
client's recovery does.
"""

import fcntl
import json
import os
import socket
import subprocess
import time

import pytest

from helpers import scaled, wait_until
from rabbitmq import Broker
from test_amqp import (consumers_of, our_connections, qname, run, start, tools,  # noqa: F401
                       tool)
from test_amqp_route import ready_connections
from test_examples import installed  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def second():
    with Broker() as b:
        yield b


def refused_port():
    """A loopback port nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def both(first, then):
    """amqp://guest:guest@<first's host:port>,<then's>/%2F"""
    return "amqp://guest:guest@127.0.0.1:%d,127.0.0.1:%d/%%2F" % (first, then)


def stop(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_first_address_refuses_second_answers(tool, rabbitmq, qname):  # noqa: F811
    """A first address that refuses: the second is used at once (no
    backoff: the run takes well under the tool's first recovery delay
    would matter), and the tool says where it is."""
    url = both(refused_port(), rabbitmq.port)
    rc, out, err = run(tool, url, "declare", qname)
    assert out == [{"queue": qname, "messages": 0, "consumers": 0}]
    assert "connected to 127.0.0.1:%d" % rabbitmq.port in err, err
    assert qname in {q["name"] for q in rabbitmq.list_queues("name")}


def test_every_address_refuses(tool, qname):  # noqa: F811
    """Every address refuses: one error naming the last address tried."""
    last = refused_port()
    rc, out, err = run(tool, both(refused_port(), last), "declare", qname, check=False)
    assert rc == 1, err
    assert "Connection refused" in err and "127.0.0.1:%d, the last of 2 addresses" % last in err, err


@pytest.mark.time_limit(120)  # the second node starts first
def test_consumer_fails_over_to_the_next_node(tool, rabbitmq, second, qname):  # noqa: F811
    """A consumer on the first node whose connection the node closes
    comes back on the second (the next address, not the same node): the
    queue is declared there again, the consumer registered, and what is
    published there reaches it."""
    url = both(second.port, rabbitmq.port)
    proc = start(tool, url, "consume", qname, "-n", 3, "--declare", qname)
    try:
        wait_until(lambda: consumers_of(second, qname) == 1, scaled(30),
                   what="the consumer on the first node")
        assert consumers_of(rabbitmq, qname) == 0
        second.close_connection(our_connections(second)[0], "node going away")
        wait_until(lambda: consumers_of(rabbitmq, qname) == 1, scaled(30),
                   what="the consumer to come back on the second node")
        assert our_connections(second) == []
        rc, out, _ = run(tool, rabbitmq.url, "publish", "", qname, "-n", 3, "--confirm",
                         "on-b")
        assert out[0]["acked"] == 3, out
        out, err = proc.communicate(timeout=scaled(30))
    finally:
        stop(proc)
    assert proc.returncode == 0, (out, err)
    assert [json.loads(line)["body"] for line in out.splitlines()] == ["on-b"] * 3
    assert b"connected to 127.0.0.1:%d" % second.port in err, err
    assert b"recovered on 127.0.0.1:%d" % rabbitmq.port in err, err


@pytest.mark.time_limit(240)
def test_publisher_fails_over_and_every_publish_is_confirmed(tools, rabbitmq, second,  # noqa: F811
                                                            qname):
    """Confirmed publishing with --republish while the first node closes
    the connection: the run goes on on the second node (the queue declared
    there again before anything is published again), every message is
    confirmed exactly once (on one node or the other), and the second
    node's queue holds what was confirmed there. The publisher goes at
    20,000 a second until it has recovered once, then 1,000 more: the
    kill lands mid-run on any machine."""
    url = both(second.port, rabbitmq.port)
    pub = tools(url, "publish", "", qname, "-n", 2000000, "--confirm", "--seq", "--republish",
                "--rate", 20000, "--until-recovered", 1, "--declare", qname, "m")
    wait_until(lambda: our_connections(second) or not pub.alive(), scaled(30),
               what="the publisher on the first node")
    # Some thousands published there (~60 bytes each): the first ones
    # are confirmed there before the kill.
    wait_until(lambda: pub.written() > 256 * 1024 or not pub.alive(), scaled(30),
               what="messages published on the first node")
    ours = our_connections(second)
    assert ours and pub.alive(), pub.err()
    second.close_connection(ours[0], "node going away")
    pub.wait(scaled(180))
    err = pub.err()
    summary = pub.lines()[-1]
    n = summary["published"]
    assert pub.proc.returncode == 0, (summary, err)
    assert n >= 1000 and summary["acked"] == n, (summary, err)
    assert "recovered on 127.0.0.1:%d" % rabbitmq.port in err, err
    on_a = {q["name"]: q for q in second.list_queues("name", "messages")}[qname]["messages"]
    on_b = {q["name"]: q for q in rabbitmq.list_queues("name", "messages")}[qname]["messages"]
    # Republished messages may be on both: nothing confirmed is missing.
    assert on_a > 0 and on_b > 0 and on_a + on_b >= n, (on_a, on_b)


@pytest.mark.time_limit(120)
def test_blocked_timeout_closes_and_recovers(tool, rabbitmq, qname):  # noqa: F811
    """A memory alarm blocks the publisher: with --blocked-timeout the
    connection is closed with the reason instead of waiting, recovered
    (and blocked again) while the alarm lasts, and once it lifts every
    message is confirmed."""
    run(tool, rabbitmq.url, "declare", qname)
    rabbitmq.ctl("set_vm_memory_high_watermark", "0.0000001")
    proc = None
    try:
        wait_until(lambda: "memory" in rabbitmq.ctl("status"), scaled(10),
                   what="the node to answer")
        proc = subprocess.Popen(
            [str(tool), rabbitmq.url, "publish", "", qname, "-n", "5", "--confirm",
             "--republish", "--blocked-timeout", "500", "x"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err = b""
        deadline = time.monotonic() + scaled(60)
        fcntl.fcntl(proc.stderr, fcntl.F_SETFL,
                    fcntl.fcntl(proc.stderr, fcntl.F_GETFL) | os.O_NONBLOCK)
        while b"blocked by the broker for longer than 500 ms" not in err:
            assert proc.poll() is None, err
            assert time.monotonic() < deadline, err
            chunk = proc.stderr.read()
            err += chunk or b""
            time.sleep(0.1)
    finally:
        rabbitmq.ctl("set_vm_memory_high_watermark", "0.4")
    try:
        out, rest = proc.communicate(timeout=scaled(60))
    finally:
        stop(proc)
    err += rest
    assert proc.returncode == 0, (out, err)
    assert json.loads(out.splitlines()[-1])["acked"] == 5, (out, err)
    assert b"Connection timed out (blocked by the broker for longer than 500 ms): recovering" \
        in err, err
    assert b"recovered on" in err, err


def test_server_config_takes_several_hosts(start_server, tmp_path, rabbitmq, hotpath_bin):
    """The server's amqp.url takes the comma form: --check-config places
    a bad address, and a server whose first address refuses connects to
    the second and says so; amqp.blocked_timeout is a duration."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("amqp:\n  url: amqp://h1:5672,h2:0/\n")
    r = subprocess.run([str(hotpath_bin), "--check-config", str(bad)], capture_output=True,
                       text=True, timeout=scaled(30))
    assert r.returncode != 0 and "bad.yaml:2:8: amqp.url: a bad port" in r.stderr, r.stderr
    bad.write_text("amqp:\n  url: amqp://h1,h2/\n  blocked_timeout: soon\n")
    r = subprocess.run([str(hotpath_bin), "--check-config", str(bad)], capture_output=True,
                       text=True, timeout=scaled(30))
    assert r.returncode != 0 and "bad.yaml:3:20: amqp.blocked_timeout" in r.stderr, r.stderr
    conf = tmp_path / "two.yaml"
    conf.write_text("amqp:\n  url: %s\n  blocked_timeout: 30s\n"
                    % both(refused_port(), rabbitmq.port))
    r = subprocess.run([str(hotpath_bin), "--check-config", str(conf)], capture_output=True,
                       text=True, timeout=scaled(30))
    assert r.returncode == 0, r.stderr
    srv = start_server("--config", conf, workers=1)
    wait_until(lambda: ready_connections(srv) == 1, scaled(20),
               what="the worker's AMQP connection ready")
    assert "connected to 127.0.0.1:%d" % rabbitmq.port in srv.stderr_text(), srv.stderr_tail()
