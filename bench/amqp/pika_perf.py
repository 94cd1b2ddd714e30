#!/usr/bin/python3
"""pika_perf.py - a small PerfTest-like AMQP 0-9-1 client on Debian's
python3-pika (1.2), the Python peer bench/amqp.sh runs beside hpbench and
rmq_perf, with the same options and the same one-line JSON summary.

One thread, pika's own event loop (SelectConnection on one shared
IOLoop): one producer channel on its own connection and, with
--consumers 1, one consumer on a second connection, both on one private
queue (pika-perf-PID-RAND, deleted at the end, x-expires as a safety net).
The producer publishes bursts of BURST mandatory messages through the
default exchange, at most --confirm W unconfirmed in confirm mode, and
while pika's output buffer holds less than OUT_LIMIT bytes (pika buffers
without bound otherwise). The consumer acknowledges every --multi-ack K
deliveries (multiple) under --prefetch N.

Each body starts with its sequence number and send time (monotonic ns,
little endian); a message counts when it was published in the measured
part, and its confirm and delivery count whenever they come (during the
drain too), as in hpbench. CPU is getrusage over the measured part.

Usage: pika_perf.py [-d S] [--warmup S] [--size B] [--confirm W]
                    [--consumers 0|1] [--prefetch N] [--multi-ack K] URL
"""

import argparse
import json
import os
import resource
import struct
import sys
import time

import pika
from pika.adapters.select_connection import IOLoop

BURST = 64
OUT_LIMIT = 1 << 20
HEADER = struct.Struct("<QQ")


class Perf:
    def __init__(self, a):
        self.a = a
        self.params = pika.URLParameters(a.url)
        self.params.heartbeat = 0
        self.loop = IOLoop()
        self.queue = "pika-perf-%d-%08x" % (os.getpid(), time.monotonic_ns() & 0xffffffff)
        self.filler = b"x" * (a.size - HEADER.size)
        self.seq = 0
        self.first, self.last = 1, 0    # the measured part's sequence numbers
        self.pending = set()            # unsettled sequence numbers
        self.lowest = 1                 # none below it is unsettled
        self.published = self.confirmed = self.nacked = self.returned = 0
        self.consumed = self.redelivered = self.unacked = self.last_tag = 0
        self.queued = None
        self.prod = self.cons = self.pch = self.cch = None
        self.ru0 = self.ru1 = None
        self.t1 = 0
        self.drain_timer = None
        self.error = None

    # ---- set-up ----

    def run(self):
        self.prod = pika.SelectConnection(self.params, on_open_callback=self.prod_open,
                                          on_open_error_callback=self.fail,
                                          custom_ioloop=self.loop)
        self.loop.start()
        if self.error:
            sys.exit("pika_perf: %s" % self.error)

    def fail(self, _conn, err):
        self.error = str(err)
        self.loop.stop()

    def prod_open(self, conn):
        conn.channel(on_open_callback=self.prod_channel)

    def prod_channel(self, ch):
        self.pch = ch
        ch.add_on_return_callback(self.on_return)
        expires = int((self.a.warmup + self.a.duration) * 1000) + 300000
        ch.queue_declare(self.queue, arguments={"x-expires": expires},
                         callback=self.declared)

    def declared(self, _frame):
        if self.a.confirm:
            self.pch.confirm_delivery(self.on_confirm, callback=lambda _f: self.consumer())
        else:
            self.consumer()

    def consumer(self):
        if not self.a.consumers:
            self.start()
            return
        self.cons = pika.SelectConnection(self.params, on_open_callback=self.cons_open,
                                          on_open_error_callback=self.fail,
                                          custom_ioloop=self.loop)

    def cons_open(self, conn):
        conn.channel(on_open_callback=self.cons_channel)

    def cons_channel(self, ch):
        self.cch = ch
        if self.a.prefetch:
            ch.basic_qos(prefetch_count=self.a.prefetch, callback=lambda _f: self.consume())
        else:
            self.consume()

    def consume(self):
        self.cch.basic_consume(self.queue, self.on_message, callback=lambda _f: self.start())

    # ---- the run ----

    def start(self):
        now = time.monotonic_ns()
        self.from_ns = now + int(self.a.warmup * 1e9)
        self.stop_ns = self.from_ns + int(self.a.duration * 1e9)
        self.loop.call_later(self.a.warmup, self.measure)
        self.loop.call_later(self.a.warmup + self.a.duration, self.stop)
        self.pump()

    def measure(self):
        self.ru0 = resource.getrusage(resource.RUSAGE_SELF)

    def pump(self):
        """A burst of publishes, then the next turn of the loop."""
        now = time.monotonic_ns()
        if now >= self.stop_ns:
            return
        room = BURST
        if self.a.confirm:
            room = min(room, self.a.confirm - len(self.pending))
            if room == 0:
                return  # on_confirm calls pump again
        if self.prod._get_write_buffer_size() >= OUT_LIMIT:
            self.loop.call_later(0.001, self.pump)
            return
        counting = now >= self.from_ns
        for _ in range(room):
            self.seq += 1
            self.pch.basic_publish("", self.queue, HEADER.pack(self.seq, now) + self.filler,
                                   mandatory=True)
            if self.a.confirm:
                self.pending.add(self.seq)
            if counting:
                if not self.published:
                    self.first = self.seq
                self.last = self.seq
                self.published += 1
        self.loop.call_later(0, self.pump)

    def on_confirm(self, frame):
        m = frame.method
        ack = isinstance(m, pika.spec.Basic.Ack)
        if m.multiple:
            tags = [t for t in range(self.lowest, m.delivery_tag + 1) if t in self.pending]
        else:
            tags = [m.delivery_tag] if m.delivery_tag in self.pending else []
        for t in tags:
            self.pending.discard(t)
            if self.first <= t <= self.last:
                if ack:
                    self.confirmed += 1
                else:
                    self.nacked += 1
        while self.lowest <= self.seq and self.lowest not in self.pending:
            self.lowest += 1
        if len(self.pending) < self.a.confirm and len(self.pending) + len(tags) >= self.a.confirm:
            self.pump()  # the window was full
        self.check_drained()

    def sent_of(self, body):
        return HEADER.unpack_from(body)[1] if len(body) >= HEADER.size else 0

    def on_return(self, _ch, _method, _props, body):
        if self.from_ns <= self.sent_of(body) < self.stop_ns:
            self.returned += 1
        self.check_drained()

    def on_message(self, ch, method, _props, body):
        if self.from_ns <= self.sent_of(body) < self.stop_ns:
            if method.redelivered:
                self.redelivered += 1
            else:
                self.consumed += 1
        self.last_tag = method.delivery_tag
        self.unacked += 1
        if self.unacked >= self.a.multi_ack:
            ch.basic_ack(self.last_tag, multiple=self.unacked > 1)
            self.unacked = 0
        self.check_drained()

    def stop(self):
        self.ru1 = resource.getrusage(resource.RUSAGE_SELF)
        if self.ru0 is None:
            self.ru0 = self.ru1
        self.t1 = time.monotonic_ns()
        self.drain_timer = self.loop.call_later(self.a.timeout, self.finish)
        self.check_drained()

    def check_drained(self):
        if not self.t1 or self.drain_timer is None:
            return
        if self.a.confirm and self.pending:
            return
        if self.a.consumers and self.consumed + self.returned < self.published:
            return
        self.loop.remove_timeout(self.drain_timer)
        self.finish()

    def finish(self):
        self.drain_timer = None
        if self.cch is not None:
            if self.unacked:
                self.cch.basic_ack(self.last_tag, multiple=True)
            self.cons.close()
        self.pch.queue_delete(self.queue, callback=self.deleted)

    def deleted(self, frame):
        self.queued = frame.method.message_count
        self.prod.add_on_close_callback(lambda *_: self.loop.stop())
        self.prod.close()

    def report(self):
        u = self.ru1.ru_utime - self.ru0.ru_utime
        s = self.ru1.ru_stime - self.ru0.ru_stime
        return {"tool": "pika_perf", "library": "pika %s" % pika.__version__,
                "size": self.a.size, "confirm": self.a.confirm, "consumers": self.a.consumers,
                "prefetch": self.a.prefetch, "multi_ack": self.a.multi_ack,
                "duration_s": round((self.t1 - self.from_ns) / 1e9, 3),
                "published": self.published, "confirmed": self.confirmed,
                "nacked": self.nacked, "unconfirmed": len(self.pending),
                "returned": self.returned, "consumed": self.consumed,
                "redelivered": self.redelivered, "queued": self.queued,
                "cpu_user_s": round(u, 3), "cpu_sys_s": round(s, 3)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-d", dest="duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=0)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--confirm", type=int, default=0)
    p.add_argument("--consumers", type=int, default=0, choices=(0, 1))
    p.add_argument("--prefetch", type=int, default=0)
    p.add_argument("--multi-ack", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5)
    p.add_argument("url")
    a = p.parse_args()
    if a.size < HEADER.size:
        p.error("--size: at least %d" % HEADER.size)
    perf = Perf(a)
    perf.run()
    print(json.dumps(perf.report()))
    return 0 if perf.published else 1


if __name__ == "__main__":
    sys.exit(main())
