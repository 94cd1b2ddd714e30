"""The publish queue (hp_amqp_config_t.publish_queue_bytes) against a real
RabbitMQ node that stops taking messages (blocked by a memory alarm).
examples/amqp_tool publishes far more than its queue's
bound (--queue-bytes); while the broker does not take them, the tool's
memory stays where it was when the queue filled, the publishes past the
bound are refused (-EAGAIN, which the tool reports and then waits on
hp_amqp_on_writable), and once the broker runs again every message the
tool had accepted is confirmed and arrives exactly once, in order.
"""

import contextlib
import json
import subprocess
import threading
import time

from helpers import scaled, wait_until
from test_amqp import pika_channel, qname, tool  # noqa: F401  (fixtures)
from test_examples import installed  # noqa: F401  (the fixture)

N = 20000        # messages of about 410 bytes: 8 MB in all
BOUND = 128 * 1024
BODY = "x" * 400  # --seq sends "<body>-<n>"


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def memory_alarm_on(broker):
    return "memory" in broker.ctl("eval", "rabbit_alarm:get_alarms().")


@contextlib.contextmanager
def blocked(broker):
    """A memory alarm: the broker blocks publishing connections."""
    broker.ctl("set_vm_memory_high_watermark", "0.0000001")
    try:
        wait_until(lambda: memory_alarm_on(broker), scaled(20), what="the memory alarm")
        yield
    finally:
        broker.ctl("set_vm_memory_high_watermark", "0.4")


def read_all(broker, queue, n):
    """The bodies of the queue's messages, in the order they come."""
    conn, ch = pika_channel(broker)
    bodies = []
    try:
        ch.basic_qos(prefetch_count=1000)
        deadline = time.monotonic() + scaled(60)
        for method, _, body in ch.consume(queue, auto_ack=True, inactivity_timeout=scaled(5)):
            if method is None or time.monotonic() > deadline:
                break
            bodies.append(body.decode())
            if len(bodies) == n:
                # One more look: nothing may follow the last.
                extra = ch.basic_get(queue, auto_ack=True)
                assert extra == (None, None, None), extra
                break
        ch.cancel()
    finally:
        conn.close()
    return bodies


def publish_through_a_stall(tool, broker, queue, stall):  # noqa: F811
    conn, ch = pika_channel(broker)
    try:
        ch.queue_declare(queue)
    finally:
        conn.close()
    lines = []
    args = [str(tool), broker.url, "publish", "", queue, "-n", str(N), "--confirm", "--seq",
            "--queue-bytes", str(BOUND), BODY]
    with stall:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        try:
            wait_until(lambda: any(b"queue is full" in l for l in lines) or proc.poll() is not None,
                       scaled(30), what="the publish queue to fill")
            assert proc.poll() is None, ("it finished without stalling", lines)
            held = rss_kb(proc.pid)
            time.sleep(scaled(1))
            later = rss_kb(proc.pid)
            assert proc.poll() is None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    try:
        out, _ = proc.communicate(timeout=scaled(120))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(scaled(5))
    assert proc.returncode == 0, (out, lines)
    report = json.loads(out.decode().splitlines()[-1])
    # The tool's memory did not grow while the broker did not read, and is
    # far below what the messages take (8 MB): they were refused, not held.
    assert later - held < 1024, (held, later)
    assert later < 64 * 1024 or later - held < 256, later
    assert report["published"] == N and report["acked"] == N, report
    assert report["failed"] == 0 and report["nacked"] == 0, report
    assert report["refused"] >= 1, report
    assert 0 < report["queued_max"] <= BOUND, report
    bodies = read_all(broker, queue, N)
    want = ["%s-%d" % (BODY, i) for i in range(N)]
    assert len(bodies) == N, len(bodies)
    first_bad = next((i for i in range(N) if bodies[i] != want[i]), None)
    assert first_bad is None, (first_bad, bodies[first_bad][-12:])
    return held, later


def test_blocked_broker_queue_bound(tool, rabbitmq, qname):  # noqa: F811
    """A memory alarm before the tool connects: its publishes wait in the
    queue (none goes out while blocked), up to the bound, then -EAGAIN."""
    publish_through_a_stall(tool, rabbitmq, qname, blocked(rabbitmq))

