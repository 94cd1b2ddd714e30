"""Starts a private RabbitMQ node for bench/amqp.sh and keeps it until
stdin closes.

The node is tests/integration/rabbitmq.py's Broker (its own ports, epmd,
data and logs in a temp dir; nothing of the system's RabbitMQ is used).
Once it answers AMQP, one line goes to stdout: "URL PID", PID being the
Erlang VM's (beam.smp: its /proc/PID/stat holds the broker's CPU time).
When stdin reaches EOF (the script ends, or dies), the node is shut down
and its temp dir removed. Run it under `taskset -c 0` to pin the broker.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "integration"))

from rabbitmq import Broker  # noqa: E402


def main():
    broker = Broker()
    try:
        print("%s %d" % (broker.url, broker.proc.pid), flush=True)
        sys.stdin.read()
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
