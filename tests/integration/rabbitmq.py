"""A private RabbitMQ node for the AMQP integration tests and benchmarks.

`Broker()` starts Debian's RabbitMQ (package rabbitmq-server, installed by
scripts/deps.sh) as a node of its own and returns once the node answers an
AMQP handshake: a client sending the protocol header gets connection.start
back. Nothing of the system's RabbitMQ is used or touched:

- node name `hp-<pid>-<n>@localhost`, so several nodes (several test runs,
  or a test that wants a second broker) never meet;
- every port is a free loopback port picked at start: AMQP
  (RABBITMQ_NODE_PORT), Erlang distribution (RABBITMQ_DIST_PORT) and epmd.
  Each broker runs *its own* epmd (the Erlang port mapper that rabbitmqctl
  asks where the node listens) on its own port through ERL_EPMD_PORT, as a
  child of this process, so the shared epmd on 4369 is neither needed nor
  started and stopping one broker cannot break another or a later test.
  rabbitmqctl's own distribution listener takes an ephemeral port
  (RABBITMQ_CTL_DIST_PORT_MIN/MAX = 0) instead of 35672-35682. No fixed
  port (4369, 5672, 15672, 25672, 35672) is bound, and everything listens
  on 127.0.0.1 only;
- one temp dir holds the node's HOME (its Erlang cookie), data
  (RABBITMQ_MNESIA_BASE), logs (RABBITMQ_LOG_BASE), rabbitmq.conf, an empty
  rabbitmq-env.conf (so /etc/rabbitmq/rabbitmq-env.conf is not read), an
  Erlang inetrc that resolves localhost (the node's host name) without
  /etc/hosts, and an
  enabled-plugins file holding `[].` (no management plugin, no port 15672).

As root the node is started with /usr/lib/rabbitmq/bin/rabbitmq-server, not
Debian's /usr/sbin wrapper, which re-runs itself as user rabbitmq with that
user's HOME and cookie. That script runs the Erlang VM as a child of a shell
that only forwards signals, unless it runs under systemd: NOTIFY_SOCKET
(here a datagram socket in the temp dir) makes it exec the VM instead, so
the node is this process's own child. The node reports its start-up there
(STATUS=..., READY=1); readiness is still judged by the AMQP handshake,
and the last STATUS goes into the error when start-up fails. User
guest/guest may connect over loopback.

`stop()` shuts the node down (rabbitmqctl shutdown), falls back to SIGTERM
and then SIGKILL for the node's process group, reaps it, stops the epmd and
removes the temp dir (HOTPATH_KEEP_BROKER=1 keeps it, to read the logs).
Nothing may outlive the tests: every broker is also stopped by `stop_all()`
(the test session's last hook calls it) and at interpreter exit, and the
node and its epmd are started with PR_SET_PDEATHSIG so that even a pytest
killed with SIGKILL takes them along.

docs/testing.md says how tests get a broker (the `rabbitmq` fixture).
"""

import atexit
import contextlib
import ctypes
import itertools
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from helpers import free_port, scaled

RABBITMQ_BIN = pathlib.Path("/usr/lib/rabbitmq/bin")
SERVER = RABBITMQ_BIN / "rabbitmq-server"
CTL = RABBITMQ_BIN / "rabbitmqctl"

# The protocol header a 0-9-1 client opens with, and what the broker must
# answer it with: a method frame on channel 0 carrying connection.start
# (class 10, method 10) for version 0-9.
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1
FRAME_END = 0xCE

# Start-up takes 5-6 s on an idle 2-core machine and 10-12 s on a busy
# one (most of it loading every module of the release to find its boot
# steps); the bound leaves room for a slower one.
START_TIMEOUT = 60.0
# rabbitmqctl starts an Erlang VM of its own for every command: about a
# second of CPU before it even talks to the node.
CTL_TIMEOUT = 60.0
# A graceful shutdown of an idle node takes 1-2 s.
STOP_TIMEOUT = 30.0

_counter = itertools.count(1)
_ALL = []


class BrokerError(Exception):
    """The node failed to start, a rabbitmqctl command failed, or the node
    did not stop."""


class _PortTaken(BrokerError):
    """A port picked as free was taken before the node or epmd bound it."""

# How the node says that a port it wanted was taken: the AMQP listener's
# bind error, and the distribution port check before it starts the
# distribution.
PORT_TAKEN_MARKS = ("eaddrinuse", "dist_port_already_used")


def _die_with_parent():
    """preexec_fn: SIGKILL this child when the process that started it dies.
    It survives exec, so it reaches beam.smp through sh, erl and erlexec,
    which all exec the next (see NOTIFY_SOCKET in the module docstring)."""
    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def amqp_handshake(host, port, timeout=2.0):
    """True if (host, port) answers the 0-9-1 protocol header with
    connection.start; False if it refuses, closes or answers otherwise."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(PROTOCOL_HEADER)
            head = _recv_exact(s, 7)
            ftype, channel, size = struct.unpack(">BHI", head)
            if ftype != FRAME_METHOD or channel != 0 or size < 6 or size > 65536:
                return False
            payload = _recv_exact(s, size + 1)
            class_id, method_id, major, minor = struct.unpack_from(">HHBB", payload)
            return (payload[-1] == FRAME_END and (class_id, method_id) == (10, 10)
                    and (major, minor) == (0, 9))
    except (OSError, struct.error, EOFError):
        return False


def _recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def _tail(path, n=40):
    try:
        lines = pathlib.Path(path).read_text("utf-8", "replace").splitlines()
    except OSError:
        return "(%s: not written)" % path
    return "\n".join(lines[-n:])


class Broker:
    """One private RabbitMQ node. Started by the constructor (start=False
    to start it later with `start()`); `stop()` it, or use it as a context
    manager."""

    host = "127.0.0.1"

    def __init__(self, start=True, start_timeout=START_TIMEOUT):
        self.node = "hp-%d-%d@localhost" % (os.getpid(), next(_counter))
        self.start_timeout = start_timeout
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="hp-rabbitmq-"))
        self.proc = None            # the node: sh execs erl execs beam.smp
        self.epmd = None
        self.start_seconds = None   # how long the last start took
        self._out = None
        self._notify = None         # the sd_notify socket the node reports to
        self.status = ""            # its last STATUS= line
        self._stopped = False
        _ALL.append(self)
        for d in ("home", "mnesia", "log"):
            (self.dir / d).mkdir()
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        # The node is name@localhost: Erlang must resolve localhost even
        # where the host cannot (no /etc/hosts, as in a fresh chroot).
        (self.dir / "inetrc").write_text(
            '{host, {127,0,0,1}, ["localhost"]}.\n{lookup, [file, native]}.\n')
        # A small temp file system must not raise the disk alarm, which
        # blocks every publisher; the memory watermark stays the default.
        (self.dir / "rabbitmq.conf").write_text(
            "disk_free_limit.absolute = 1MB\n"
            "log.file.level = info\n"
            "log.console = false\n")
        self._pick_ports()
        if start:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise

    # -- addresses ---------------------------------------------------------
    @property
    def url(self):
        return "amqp://guest:guest@%s:%d/%%2F" % (self.host, self.port)

    @property
    def log_path(self):
        """The node's own log (RABBITMQ_LOG_BASE/<node>.log)."""
        return self.dir / "log" / ("%s.log" % self.node)

    def log_tail(self, n=40):
        """The last lines of the node's log and of its console output."""
        return ("--- %s\n%s\n--- %s\n%s" % (
            self.log_path, _tail(self.log_path, n),
            self.dir / "console.out", _tail(self.dir / "console.out", n)))

    def _pick_ports(self):
        # Each is free now; another process may take one before the node
        # binds it, so start() tries again with new ports when a bind fails.
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        while len({self.port, self.dist_port, self.epmd_port}) < 3:
            self.dist_port = free_port()
            self.epmd_port = free_port()

    def env(self):
        """The environment the node and rabbitmqctl run with."""
        d = self.dir
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(d / "home"),
            "LC_ALL": "C.UTF-8",        # the CLI (Elixir) wants UTF-8
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(d / "node.pid"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": self.host,
            "ERL_CRASH_DUMP": str(d / "erl_crash.dump"),
            "ERL_INETRC": str(d / "inetrc"),
            "NOTIFY_SOCKET": str(d / "notify.sock"),
            "RABBITMQ_CTL_DIST_PORT_MIN": "0",
            "RABBITMQ_CTL_DIST_PORT_MAX": "0",
            # The distribution listener on loopback only, like the rest.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_ERL_ARGS":
                "-kernel inet_dist_use_interface {127,0,0,1}",
        })
        return env

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        """Start the node (and its epmd) and wait for the AMQP handshake.
        A port taken between picking and binding gets fresh ports and one
        more try; any other failure raises BrokerError with the log tail."""
        for prog in (SERVER, CTL):
            if not os.access(prog, os.X_OK):
                raise BrokerError("%s not found: install rabbitmq-server "
                                  "(sh scripts/deps.sh)" % prog)
        for attempt in (1, 2, 3):
            try:
                self._start_once()
                return
            except _PortTaken:
                if attempt == 3:
                    raise
            self._kill_node()
            self._kill_epmd()
            self._close_out()
            # A clean slate: the killed node never served anyone.
            for d in ("mnesia", "log"):
                shutil.rmtree(self.dir / d)
                (self.dir / d).mkdir()
            (self.dir / "console.out").unlink(missing_ok=True)
            self._pick_ports()

    def _port_taken(self):
        text = "".join(_tail(p, 200) for p in (self.log_path, self.dir / "console.out"))
        return any(m in text for m in PORT_TAKEN_MARKS)

    def _start_once(self):
        self._stopped = False
        t0 = time.monotonic()
        self._start_epmd()
        self._open_notify()
        self._out = open(self.dir / "console.out", "ab")
        self.proc = subprocess.Popen(
            [str(SERVER)], env=self.env(), cwd=str(self.dir),
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._out,
            start_new_session=True, preexec_fn=_die_with_parent)
        self._wait_ready(t0)

    def _start_epmd(self):
        if self.epmd is not None and self.epmd.poll() is None:
            return
        out = open(self.dir / "epmd.out", "ab")
        try:
            self.epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port), "-address", self.host],
                env=self.env(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=out, start_new_session=True,
                preexec_fn=_die_with_parent)
        finally:
            out.close()
        deadline = time.monotonic() + scaled(10)
        while not self._epmd_answers():
            if self.epmd.poll() is not None:
                # epmd says why only to syslog, and exits with status 0
                # when its port is taken, the one failure seen in practice.
                raise _PortTaken("epmd on port %d exited with status %d (port "
                                 "taken?)" % (self.epmd_port, self.epmd.returncode))
            if time.monotonic() > deadline:
                raise BrokerError("epmd on port %d did not answer within %.0f s"
                                  % (self.epmd_port, scaled(10)))
            time.sleep(0.02)

    def _open_notify(self):
        if self._notify is not None:
            return
        path = self.dir / "notify.sock"
        path.unlink(missing_ok=True)
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(path))
        self._notify.setblocking(False)

    def _read_notify(self):
        """Take in what the node reported (sd_notify datagrams). Read at
        start and restart; the few it sends in between wait in the socket."""
        while self._notify is not None:
            try:
                msg = self._notify.recv(4096).decode("utf-8", "replace")
            except (BlockingIOError, OSError):
                return
            for line in msg.splitlines():
                if line.startswith("STATUS="):
                    self.status = line[7:]

    def _epmd_answers(self):
        """True once our epmd answers a NAMES_REQ (length 1, byte 'n') with
        its port: a bare connect and close would make it log a complaint."""
        try:
            with socket.create_connection((self.host, self.epmd_port), timeout=1) as s:
                s.settimeout(1)
                s.sendall(b"\x00\x01n")
                return struct.unpack(">I", _recv_exact(s, 4))[0] == self.epmd_port
        except (OSError, EOFError):
            return False

    def _wait_ready(self, t0):
        limit = scaled(self.start_timeout)
        deadline = t0 + limit
        next_log_check = 0
        while True:
            exited = self.proc.poll() is not None
            # A node whose AMQP port was taken logs it and takes 15-20 s
            # more to give up: read the log now and then to try again early.
            if exited or time.monotonic() > next_log_check:
                if self._port_taken():
                    raise _PortTaken("RabbitMQ node %s: a port was taken:\n%s"
                                     % (self.node, self.log_tail()))
                next_log_check = time.monotonic() + 0.5
            self._read_notify()
            if exited:
                raise BrokerError(
                    "RabbitMQ node %s exited with status %s during start-up "
                    "(last status %r):\n%s" % (self.node, self.proc.returncode,
                                               self.status, self.log_tail()))
            if amqp_handshake(self.host, self.port):
                self.start_seconds = time.monotonic() - t0
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    "RabbitMQ node %s did not answer AMQP on port %d within "
                    "%.0f s (last status %r):\n%s"
                    % (self.node, self.port, limit, self.status, self.log_tail()))
            time.sleep(0.1)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @contextlib.contextmanager
    def frozen(self):
        """Inside the block the node runs no code at all (SIGSTOP to its
        process group), as a broker whose machine hangs: connections stay
        open, nothing is read or answered. The block starts only once
        every thread of the group is stopped (a stop signal takes effect
        as each thread next runs), and the node runs again on leaving."""
        self._signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + scaled(10)
            while not self._group_stopped():
                if time.monotonic() > deadline:
                    raise BrokerError("node %s not stopped 10 s after SIGSTOP" % self.node)
                time.sleep(0.01)
            yield
        finally:
            self._signal(signal.SIGCONT)

    def _group_stopped(self):
        """Whether every thread of every process in the node's group is
        stopped ('T' in /proc/PID/task/TID/stat)."""
        pgid = self.proc.pid
        for proc in pathlib.Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.getpgid(int(proc.name)) != pgid:
                    continue
                for task in (proc / "task").iterdir():
                    stat = (task / "stat").read_text()
                    # pid (comm) state ...: comm may hold spaces and ')'
                    if stat[stat.rindex(")") + 2] not in "Tt":
                        return False
            except (OSError, ValueError):
                continue    # gone meanwhile
        return True

    def restart(self, full=False):
        """Restart, keeping every queue and message the node holds.
        full=False: stop_app and start_app inside the running Erlang VM
        (connections drop, the process stays). full=True: a graceful stop
        of the whole process, then a new one on the same ports and data
        (BrokerError instead if the old one had to be killed: its data may
        not have been written out)."""
        if full:
            error = self._shutdown()
            self._kill_node()
            self._close_out()
            if error:
                raise BrokerError(error)
            self._start_once()
            return
        self.ctl("stop_app")
        self.ctl("start_app")
        deadline = time.monotonic() + scaled(self.start_timeout)
        while not amqp_handshake(self.host, self.port):
            self._read_notify()     # the node reports again; keep its queue short
            if time.monotonic() > deadline:
                raise BrokerError("no AMQP on port %d after start_app:\n%s"
                                  % (self.port, self.log_tail()))
            time.sleep(0.1)

    def stop(self):
        """Shut the node down and remove its temp dir. Idempotent. Raises
        BrokerError only after cleaning up, if the node had to be killed."""
        if self._stopped:
            return
        self._stopped = True
        error = None
        try:
            error = self._shutdown()
        finally:
            self._kill_node()
            self._kill_epmd()
            self._close_out()
            if os.environ.get("HOTPATH_KEEP_BROKER") != "1":
                shutil.rmtree(self.dir, ignore_errors=True)
            if self in _ALL:
                _ALL.remove(self)
        if error:
            raise BrokerError(error)

    def _shutdown(self):
        """rabbitmqctl shutdown, then SIGTERM, then SIGKILL. Returns None
        when the node went on request, else what happened.

        The node is our child: until it is reaped it is a zombie that
        `rabbitmqctl shutdown` (which waits for the OS pid to go) would
        still see, so the node is reaped while the command runs."""
        if not self.alive():
            return None
        ctl = subprocess.Popen(self._ctl_args("shutdown"), env=self.env(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + scaled(STOP_TIMEOUT)
        try:
            while time.monotonic() < deadline:
                node_gone = self.proc.poll() is not None
                if node_gone and ctl.poll() is not None:
                    return None
                time.sleep(0.05)
        finally:
            if ctl.poll() is None:
                ctl.kill()
            out = ctl.communicate()[0]
        msg = ("RabbitMQ node %s did not stop within %.0f s of rabbitmqctl "
               "shutdown (%r)" % (self.node, scaled(STOP_TIMEOUT), out[-500:]))
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(10))
                return msg + "; it stopped on SIGTERM"
            except subprocess.TimeoutExpired:
                pass
        return msg + "; killed"

    def _signal(self, sig):
        # The node runs in a session of its own, so the whole group gets
        # the signal. (erl_child_setup makes a session of its own too, and
        # exits when the VM goes.)
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _kill_node(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGKILL)
        self.proc.wait()
        # Anything left in the group. Safe after the reap: Linux hands out
        # no pid that is still some group's id, so this group is the node's.
        self._signal(signal.SIGKILL)

    def _kill_epmd(self):
        if self.epmd is None:
            return
        if self.epmd.poll() is None:
            self.epmd.terminate()
            try:
                self.epmd.wait(timeout=scaled(5))
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait()
        self.epmd = None

    def _close_out(self):
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- rabbitmqctl ---------------------------------------------------------
    def _ctl_args(self, *args):
        return [str(CTL), "-n", self.node, *[str(a) for a in args]]

    def ctl(self, *args, timeout=CTL_TIMEOUT):
        """Run `rabbitmqctl -n <node> ARGS...` against this node; return its
        stdout. BrokerError if it fails or takes longer than `timeout`
        (scaled) seconds."""
        try:
            r = subprocess.run(self._ctl_args(*args), env=self.env(),
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=scaled(timeout))
        except subprocess.TimeoutExpired as e:
            raise BrokerError("rabbitmqctl %s: no answer within %.0f s (%r)\n%s"
                              % (" ".join(map(str, args)), scaled(timeout),
                                 e.stdout, self.log_tail())) from None
        if r.returncode != 0:
            raise BrokerError("rabbitmqctl %s: status %d\n%s%s"
                              % (" ".join(map(str, args)), r.returncode,
                                 r.stdout, r.stderr))
        return r.stdout

    def _ctl_table(self, command, fields):
        """`rabbitmqctl <command> <fields>` as a list of dicts. The plain
        tab-separated output, not --formatter json: the JSON form writes
        pids as the CLI's own #PID<...>, which close_connection refuses.
        Numbers and true/false become int and bool, except in names."""
        out = self.ctl(command, *fields, "--quiet", "--no-table-headers")
        rows = []
        for line in out.splitlines():
            if line:
                rows.append({f: _value(f, v) for f, v in zip(fields, line.split("\t"))})
        return rows

    def list_connections(self, *fields):
        """The node's client connections as dicts (default fields: pid,
        name, user, peer_port, state, channels)."""
        fields = fields or ("pid", "name", "user", "peer_port", "state", "channels")
        return self._ctl_table("list_connections", fields)

    def list_channels(self, *fields):
        """The node's channels as dicts (default fields: connection, the
        pid of its connection as list_connections gives it; number;
        confirm)."""
        fields = fields or ("connection", "number", "confirm")
        return self._ctl_table("list_channels", fields)

    def list_queues(self, *fields):
        """The queues of vhost / as dicts (default fields: name, messages,
        consumers, durable)."""
        fields = fields or ("name", "messages", "consumers", "durable")
        return self._ctl_table("list_queues", fields)

    def close_connection(self, conn, reason="closed by test"):
        """Force-close one connection: `conn` is a row of list_connections
        or its pid (rabbitmqctl names a connection by its Erlang pid). The
        client gets connection.close with reply code 320 and `reason`."""
        pid = conn["pid"] if isinstance(conn, dict) else conn
        self.ctl("close_connection", pid, reason)


def _value(field, text):
    if field in ("name", "pid", "connection", "user", "vhost"):
        return text
    if text in ("true", "false"):
        return text == "true"
    if text.lstrip("-").isdigit():
        return int(text)
    return text


def stop_all():
    """Stop every broker still running (teardown's last resort)."""
    for b in list(_ALL):
        try:
            b.stop()
        except Exception:
            pass


atexit.register(stop_all)
