"""Start / load / reload / stop, over and over.

A CI run once saw a hotpath server stop accepting (connection refused) and
then ignore SIGTERM. Whatever the cause, the symptom is cheap to look for:
each cycle here starts the real binary from a configuration file, puts it
under load (hpbench with pipelining on a static file and /plaintext, plus a
few raw keep-alive sockets), reloads it with SIGHUP and reopens its access
log with SIGUSR1, checks that it still accepts and that the reload took,
and stops it with SIGTERM, requiring exit status 0 within a generous time.
The variants cover the listener set-ups (one SO_REUSEPORT socket per
worker, or one socket shared through dup'ed descriptors), a stop while the
load runs with a SIGHUP right behind it (reload while draining), a second
SIGTERM (the exit-at-once path) and a client that holds a half-sent request
so that only the drain timeout ends the drain.

Everything is bounded: a few short cycles per variant, every wait scaled
for the sanitizer build, the whole file well under a minute.
"""

import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

from conftest import _binary, tree
from helpers import can_connect, free_port, request, scaled, wait_until

HPBENCH = os.environ.get("HPBENCH_BIN") or \
    str(pathlib.Path(_binary()).resolve().parent / "hpbench")

CYCLES = 3          # per variant
DRAIN = 1.0         # seconds: timeouts.drain of every server here

CONFIG = """listen: "127.0.0.1:{port}"
workers: {workers}
root: www
timeouts: {{drain: {drain}s}}
tcp: {{reuseport: {reuseport}}}
access_log: {{enabled: true, path: access.log}}
locations:
  - path: /static/
    root: assets
"""

FILES = {
    "www/index.html": b"<p>stress</p>\n",
    "assets/static/small.txt": b"small file\n",
    "assets/static/big.bin": bytes((i * 13 + 5) & 0xFF for i in range(96 * 1024)),
}


def thread_stacks(pid):
    """Every thread's stack of a stuck process, when gdb is there to ask:
    what a hang needs explained."""
    try:
        out = subprocess.run(["gdb", "-batch", "-nx", "-p", str(pid), "-ex",
                              "thread apply all bt"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=scaled(20))
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(no stacks: %r)" % e
    return out.stdout.decode("utf-8", "replace")[-6000:]


class Cycle:
    """One hotpath process for one cycle, stderr in a file."""

    def __init__(self, hotpath_bin, base, workers, reuseport):
        self.base = base
        self.port = free_port()
        self.conf = base / "hotpath.yaml"
        self.conf.write_text(CONFIG.format(port=self.port, workers=workers, drain=DRAIN,
                                           reuseport="true" if reuseport else "false"))
        self.err_path = base / "stderr.txt"
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([hotpath_bin, "--config", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=self.err, cwd=str(base),
                                     start_new_session=True)

    def stderr(self):
        return self.err_path.read_text("utf-8", "replace")

    def why(self, what):
        return "%s (pid %d, port %d); stderr:\n%s" % (what, self.proc.pid, self.port,
                                                       self.stderr()[-3000:])

    def wait_accepting(self):
        wait_until(lambda: can_connect(self.port) or self.proc.poll() is not None,
                   scaled(10), what="server accepting")
        assert self.proc.poll() is None, self.why("exited during start-up")

    def assert_serves(self, path="/plaintext"):
        try:
            r = request(self.port, "GET", path, timeout=scaled(5))
        except OSError as e:
            raise AssertionError(self.why("GET %s failed: %r" % (path, e)))
        assert r.status == 200, self.why("GET %s: %d" % (path, r.status))

    def reload(self):
        before = self.stderr().count("SIGHUP: configuration reloaded")
        self.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.stderr().count("SIGHUP: configuration reloaded") > before
                   or self.proc.poll() is not None, scaled(5), what="reload logged")
        assert self.proc.poll() is None, self.why("exited on SIGHUP")

    def wait_exit_zero(self):
        limit = DRAIN + scaled(5)
        try:
            rc = self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            stacks = thread_stacks(self.proc.pid)
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(self.why("no exit within %.1f s of SIGTERM" % limit) +
                                 "\nthreads:\n" + stacks)
        assert rc == 0, self.why("exit status %s after SIGTERM" % rc)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.err.close()


def start_load(port):
    """hpbench for a moment, pipelined, on a file and a built-in: its exit
    status is not the point here (the server may go away under it)."""
    procs = []
    for path, pipeline in (("/static/big.bin", 4), ("/plaintext", 16)):
        procs.append(subprocess.Popen(
            [HPBENCH, "-c", "4", "-d", "0.8", "--pipeline", str(pipeline),
             "--max-errors", "100", "http://127.0.0.1:%d%s" % (port, path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
    return procs


def stop_load(procs):
    for p in procs:
        try:
            p.wait(timeout=scaled(15))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            raise AssertionError("hpbench did not finish")


def raw_clients(port, n=4):
    """Keep-alive sockets with a request answered on each, left open."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
        s.sendall(b"GET /static/small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"small file\n" not in data:
            chunk = s.recv(4096)
            assert chunk, "server closed a fresh keep-alive connection"
            data += chunk
        socks.append(s)
    return socks


VARIANTS = {
    # name: (workers, reuseport, stop while loaded, after SIGTERM, stalled client)
    "reuseport": (2, True, False, None, False),
    "shared-listener": (2, False, False, None, False),
    "stop-under-load": (2, True, True, None, False),
    "stop-under-load-shared": (2, False, True, None, False),
    "second-sigterm": (2, True, True, "sigterm", False),
    "signals-while-exiting": (2, True, True, "hup-usr1", False),
    "stalled-client": (1, False, False, None, True),
}


def signal_until_exit(proc):
    """SIGHUP and SIGUSR1 every few milliseconds until the process is gone:
    some land while it drains, some after its last worker stopped."""
    deadline = time.monotonic() + DRAIN + scaled(5)
    while proc.poll() is None and time.monotonic() < deadline:
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                return
        time.sleep(0.002)


@pytest.mark.time_limit(60)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_start_load_reload_stop(hotpath_bin, tmp_path, variant):
    workers, reuseport, under_load, after, stalled = VARIANTS[variant]
    for i in range(CYCLES):
        base = tmp_path / ("c%d" % i)
        tree(base, FILES)
        c = Cycle(hotpath_bin, base, workers, reuseport)
        load, socks = [], []
        try:
            c.wait_accepting()
            c.assert_serves()
            socks = raw_clients(c.port)
            load = start_load(c.port)
            time.sleep(0.2)
            c.reload()
            c.proc.send_signal(signal.SIGUSR1)
            c.assert_serves("/static/small.txt")
            if stalled:
                # Half a request: the drain can only end by its timeout.
                socks[0].sendall(b"GET /plaintext HTTP/1.1\r\nHo")
            if not under_load:
                stop_load(load)
                c.assert_serves()
            c.proc.send_signal(signal.SIGTERM)
            # A reload asked for while draining must not get in the way.
            c.proc.send_signal(signal.SIGHUP)
            if after == "sigterm":
                time.sleep(0.05)
                c.proc.send_signal(signal.SIGTERM)
            elif after == "hup-usr1":
                signal_until_exit(c.proc)
            c.wait_exit_zero()
            stop_load(load)
            assert "stopped:" in c.stderr() or after == "sigterm", \
                c.why("no final totals line")
        finally:
            for s in socks:
                s.close()
            for p in load:
                if p.poll() is None:
                    p.kill()
                    p.wait(5)
            c.close()
