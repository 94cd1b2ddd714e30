"""Connection and channel pools (include/hotpath/amqp_pool.h) against a
real RabbitMQ node (the `rabbitmq` fixture), through examples/amqp_pool.c
built against the installed library: one pool per worker, publishers and
consumers on connections of their own, named after side and worker.

The program prints one JSON line per worker every 250 ms (its counters
and its pool's state); the tests read them while it runs.
"""

import json
import subprocess
import threading
import time

import pika
import pytest

from helpers import scaled, wait_until
from test_amqp import tool  # noqa: F401  (the fixture)
from test_examples import _compile, installed  # noqa: F401  (the fixture)

# Each test runs a program for seconds against a node other builds share.
pytestmark = pytest.mark.time_limit(scaled(240))


@pytest.fixture(scope="module")
def pooltool(installed, tmp_path_factory):  # noqa: F811
    dest, san = installed
    out = tmp_path_factory.mktemp("amqp-pool")
    return _compile(dest, san, "amqp_pool", out / "amqp_pool")


@pytest.fixture
def qname(request, rabbitmq):
    name = "hp-pool-" + request.node.name.replace("[", "-").replace("]", "")
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    try:
        ch = conn.channel()
        ch.queue_delete(name)
        ch.queue_declare(name)
    finally:
        conn.close()
    return name


class Run:
    """amqp_pool running; its JSON lines collected by a thread."""

    def __init__(self, exe, url, queue, *args):
        self.proc = subprocess.Popen([str(exe), url, queue, *map(str, args)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def last(self, worker):
        for d in reversed(self.lines):
            if d["worker"] == worker:
                return d
        return None

    def value(self, worker, *path):
        d = self.last(worker)
        for k in path:
            if d is None:
                return None
            d = d[k]
        return d

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=scaled(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=scaled(5))
        return self.proc.returncode, self.proc.stderr.read()


@pytest.fixture
def running(pooltool, rabbitmq):
    runs = []

    def start(queue, *args):
        r = Run(pooltool, rabbitmq.url, queue, *args)
        runs.append(r)
        return r

    yield start
    for r in runs:
        r.stop()


def pool_connections(broker, prefix):
    """Our connections as {connection_name: pid}."""
    out = {}
    for c in broker.list_connections("pid", "client_properties"):
        text = c["client_properties"]
        i = text.find(prefix)
        if i >= 0:
            name = text[i:text.index('"', i)]
            out[name] = c["pid"]
    return out


def consumers_of(broker, queue):
    return {q["name"]: q["consumers"]
            for q in broker.list_queues("name", "consumers")}.get(queue)


def grows(run, worker, key, by, timeout, *path):
    """Waits until counter `key` of `worker` has grown by `by`."""
    start = run.value(worker, key) or 0
    wait_until(lambda: (run.value(worker, key) or 0) >= start + by, scaled(timeout),
               what="worker %d's %s to grow by %d" % (worker, key, by))


@pytest.mark.parametrize("shared", [False, True])
def test_a_pool_per_worker_with_its_connections(running, rabbitmq, qname, shared):
    """Two workers, a pool each: a publisher and a consumer connection per
    worker (one shared connection per worker with --shared), each named
    after its side and worker; both workers publish and consume."""
    prefix = "pt%d" % shared
    args = ["--workers", 2, "--consume", "--name", prefix] + (["--shared"] if shared else [])
    run = running(qname, *args)
    if shared:
        want = {"%s shared w0 #1" % prefix, "%s shared w1 #1" % prefix}
    else:
        want = {"%s %s w%d #1" % (prefix, side, w)
                for side in ("publish", "consume") for w in (0, 1)}
    wait_until(lambda: set(pool_connections(rabbitmq, prefix)) == want, scaled(30),
               what="the pools' connections")
    wait_until(lambda: consumers_of(rabbitmq, qname) == 2, scaled(20),
               what="a consumer per worker")
    for w in (0, 1):
        grows(run, w, "acked", 200, 30)
        grows(run, w, "consumed", 100, 30)
    time.sleep(1)
    assert set(pool_connections(rabbitmq, prefix)) == want  # no more than min
    rc, err = run.stop()
    assert rc == 0, err
    wait_until(lambda: not pool_connections(rabbitmq, prefix), scaled(20),
               what="the pools to close their connections")


@pytest.mark.parametrize("side", ["publish", "consume"])
def test_a_killed_connection_comes_back_and_work_goes_on(running, rabbitmq, qname, side):
    """The broker closes one pooled connection (320): it is recovered (a new
    connection under the same name), and the worker goes on publishing and
    consuming; the other worker's connections are untouched."""
    run = running(qname, "--workers", 2, "--consume", "--name", "pk")
    name = "pk %s w0 #1" % side
    wait_until(lambda: len(pool_connections(rabbitmq, "pk")) == 4, scaled(30),
               what="four connections")
    for w in (0, 1):
        grows(run, w, "consumed", 50, 30)
    before = pool_connections(rabbitmq, "pk")
    rabbitmq.close_connection(before[name], "pool test kill")
    wait_until(lambda: pool_connections(rabbitmq, "pk").get(name) not in (None, before[name]),
               scaled(30), what="the killed connection to come back")
    after = pool_connections(rabbitmq, "pk")
    # While it recovered, the waiting borrower may have grown the side to
    # its max_conns (2): never beyond; worker 1 saw nothing of it.
    assert len([n for n in after if n.startswith("pk %s w0 " % side)]) <= 2, after
    for other in before:
        if other != name and " w1 " in other:
            assert after[other] == before[other], (other, before, after)
    wait_until(lambda: consumers_of(rabbitmq, qname) == 2, scaled(20),
               what="both consumers back")
    grows(run, 0, "acked", 200, 30)
    grows(run, 0, "consumed", 200, 30)
    rc, err = run.stop()
    assert rc == 0, err


def _alarm(broker, on):
    broker.ctl("set_vm_memory_high_watermark", "0.0000001" if on else "0.4")


@pytest.mark.parametrize("shared", [False, True])
def test_blocked_publishing_does_not_stop_consuming(running, rabbitmq, qname, shared,
                                                    tool):  # noqa: F811
    """A memory alarm makes the broker block the connections that publish.
    With dedicated connections the consumer's is not one of them: it
    drains a backlog, acknowledging as it goes, while publishing is held.
    With --shared the consumer sits on the blocked connection, whose acks
    the broker no longer reads, and stops after a prefetch's worth: the
    reason the sides are apart."""
    # A backlog the consumer cannot drain before the measurement, however
    # fast the machine: each message takes it 5 ms (--work), so 10,000
    # last 50 s. (A backlog large enough for a fast consumer makes the
    # alarmed broker page it to disk, and deliver at its own slow pace.)
    r = subprocess.run([str(tool), rabbitmq.url, "publish", "", qname, "-n", "10000",
                        "--batch", "64", "--no-recover", "backlog"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=scaled(120))
    assert r.returncode == 0, r.stderr.decode()
    prefix = "pb%d" % shared
    args = ["--workers", 1, "--consume", "--prefetch", 1, "--work", 5, "--batch", 5,
            "--name", prefix]
    run = running(qname, *(args + (["--shared"] if shared else [])))
    grows(run, 0, "consumed", 20, 30)
    _alarm(rabbitmq, True)
    try:
        wait_until(lambda: run.value(0, "publish", "blocked") >= 1, scaled(30),
                   what="the publisher connection to be blocked")
        time.sleep(1)
        start = run.value(0, "consumed")
        acked = run.value(0, "acked")
        time.sleep(scaled(3))
        moved = run.value(0, "consumed") - start
        assert run.value(0, "acked") == acked, run.last(0)  # publishing is held
        if shared:
            assert moved <= 5, run.last(0)
        else:
            assert moved >= 100, run.last(0)
    finally:
        _alarm(rabbitmq, False)
    wait_until(lambda: run.value(0, "publish", "blocked") == 0, scaled(30),
               what="the alarm to clear")
    grows(run, 0, "acked", 100, 30)
    grows(run, 0, "consumed", 100, 30)
    rc, err = run.stop()
    assert rc == 0, err
