"""Fixtures that run the real hotpath binary.

`start_server(...)` starts the binary (HOTPATH_BIN, default build/hotpath) on
a free loopback port with --root pointing at a fresh temp copy of a small
document tree, waits until it listens, and on teardown sends SIGTERM and
requires a clean exit (status 0) within the drain timeout; otherwise the
server is killed with SIGKILL and the test fails with its stderr tail (that is
also where ASan/LeakSanitizer reports show up in the sanitizer run).
`server` is one such server shared by a whole test module, for the many
tests that only need defaults.

`rabbitmq` is a private RabbitMQ node (tests/integration/rabbitmq.py) shared
by the whole session and started only when a test first asks for it;
`queue_prefix` gives each test its own prefix for queue and exchange names.
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest

import helpers
from helpers import can_connect, free_port, scaled, wait_until
from rabbitmq import Broker, stop_all as stop_all_brokers

REPO = pathlib.Path(__file__).resolve().parents[2]

# Files of the document tree every server gets (a fresh copy per server).
INDEX_HTML = b"<!doctype html>\n<title>hotpath test</title>\n<p>index</p>\n"
SUB_INDEX_HTML = b"<!doctype html>\n<p>sub index</p>\n"
DOC_FILES = {
    "index.html": INDEX_HTML,
    "style.css": b"body { color: #333; }\n",
    "app.js": b"console.log('hotpath');\n",
    "data.json": b'{"answer": 42}\n',
    "notes.txt": b"plain notes\n",
    "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "empty.txt": b"",
    "sub/index.html": SUB_INDEX_HTML,
    "sub/page.html": b"<p>page</p>\n",
    "nosindex/readme.txt": b"no index here\n",
    "big.bin": bytes((i * 7 + 3) & 0xFF for i in range(256 * 1024)),
}
# A file next to (outside) the root, for traversal tests.
OUTSIDE_SECRET = b"top secret, outside the root\n"

DEFAULT_DRAIN = 3.0

# Every server ever started, so that nothing outlives the session.
_ALL_SERVERS = []


def _binary():
    return os.environ.get("HOTPATH_BIN", str(REPO / "build" / "hotpath"))


@pytest.fixture(scope="session")
def hotpath_bin():
    path = _binary()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("hotpath binary not found or not executable: %s "
                    "(set HOTPATH_BIN)" % path)
    return path


@pytest.fixture(scope="session")
def www_dir():
    """The repository's own www/ directory."""
    return REPO / "www"


@pytest.fixture(scope="session")
def doc_template(tmp_path_factory):
    base = tmp_path_factory.mktemp("doctemplate")
    root = base / "root"
    for rel, data in DOC_FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    # Symlinks that leave the root (relative, to the secret next to the
    # copied root, and absolute) must not be followed.
    os.symlink("../secret.txt", root / "link-out.txt")
    os.symlink("/etc", root / "etc-link")
    return root


class Server:
    """One running hotpath process."""

    def __init__(self, binary, port, root, args, workers, drain_timeout,
                 stderr_path, preexec_fn=None, listen_host="127.0.0.1"):
        self.binary = binary
        self.port = port
        self.root = root
        self.args = args
        self.workers = workers
        self.drain_timeout = drain_timeout
        self.stderr_path = stderr_path
        self.host = listen_host
        self._stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr,
                                     preexec_fn=preexec_fn,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.checked = False
        _ALL_SERVERS.append(self)

    # -- introspection --------------------------------------------------
    def stderr_text(self):
        try:
            return pathlib.Path(self.stderr_path).read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n=40):
        lines = self.stderr_text().splitlines()
        return "\n".join(lines[-n:])

    def url(self, path="/"):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d%s" % (host, self.port, path)

    def conn(self, timeout=5.0):
        return helpers.Conn(self.port, host=self.host, timeout=timeout)

    def request(self, method="GET", path="/", **kw):
        with self.conn() as c:
            return c.request(method, path, **kw)

    def metrics(self, conn=None):
        return helpers.metrics(self.port, conn)

    def alive(self):
        return self.proc.poll() is None

    # -- lifecycle -------------------------------------------------------
    def wait_ready(self, timeout=10.0):
        """Wait until the port accepts and the start-up line is printed
        (printed once every worker listens)."""
        deadline = time.monotonic() + timeout
        connected = False
        while True:
            if self.proc.poll() is not None:
                pytest.fail("hotpath exited with status %s during start-up:\n%s"
                            % (self.proc.returncode, self.stderr_tail()))
            if not connected:
                connected = helpers.can_connect(self.port, self.host, 0.5)
            if connected and ("--quiet" in self.args or
                              "listening on" in self.stderr_text()):
                return
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail("hotpath not ready within %.0f s (port accepts: %s)"
                            "; stderr:\n%s" % (timeout, connected,
                                               self.stderr_tail()))
            time.sleep(0.01)

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for exit; return the status, or None if still running."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self):
        """SIGTERM, then require exit status 0 within the drain timeout.
        Returns an error message or None."""
        if self.checked:
            self._stderr.close()
            return None
        self.checked = True
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                limit = self.drain_timeout + scaled(3)
                rc = self.wait_exit(limit)
                if rc is None:
                    self.kill()
                    return ("hotpath (pid %d) did not exit within %.1f s of "
                            "SIGTERM; killed. stderr tail:\n%s"
                            % (self.pid, limit, self.stderr_tail()))
            rc = self.proc.returncode
            if rc != 0:
                return ("hotpath (pid %d) exited with status %s after SIGTERM;"
                        " stderr tail:\n%s" % (self.pid, rc, self.stderr_tail()))
            return None
        finally:
            self._stderr.close()


class ServerFactory:
    def __init__(self, binary, template, tmpdir):
        self.binary = binary
        self.template = template
        self.tmpdir = pathlib.Path(tmpdir)
        self.servers = []

    def make_root(self):
        """A fresh copy of the document tree, with a secret file next to it."""
        n = len(self.servers)
        base = self.tmpdir / ("srv%d" % n)
        base.mkdir(parents=True, exist_ok=True)
        root = base / "root"
        shutil.copytree(self.template, root, symlinks=True)
        (base / "secret.txt").write_bytes(OUTSIDE_SECRET)
        return root

    def __call__(self, *extra, workers=2, root=None, listen_host="127.0.0.1",
                 port=None, drain_timeout=DEFAULT_DRAIN, preexec_fn=None,
                 wait=True, ready_timeout=10.0):
        if root is None:
            root = self.make_root()
        if port is None:
            port = helpers.free_port()
        host = "[%s]" % listen_host if ":" in listen_host else listen_host
        args = [self.binary, "--listen", "%s:%d" % (host, port),
                "--root", str(root), "--drain-timeout", str(drain_timeout)]
        if workers is not None:
            args += ["--workers", str(workers)]
        args += [str(a) for a in extra]
        stderr_path = self.tmpdir / ("server-%d-%d.stderr" % (len(self.servers), port))
        srv = Server(self.binary, port, root, args, workers, drain_timeout,
                     stderr_path, preexec_fn, listen_host)
        self.servers.append(srv)
        if wait:
            srv.wait_ready(ready_timeout)
        return srv

    def stop_all(self):
        """Stop every server this factory started; return the errors. If
        stopping is interrupted (time limit, ^C) the rest are killed."""
        errors = []
        try:
            for srv in self.servers:
                err = srv.stop()
                if err:
                    errors.append(err)
        finally:
            for srv in self.servers:
                srv.kill()
        return errors


@pytest.fixture
def start_server(hotpath_bin, doc_template, tmp_path):
    """Factory: start_server(*extra_flags, workers=2, ...) -> Server."""
    factory = ServerFactory(hotpath_bin, doc_template, tmp_path)
    try:
        yield factory
    finally:
        errors = factory.stop_all()
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture(scope="module")
def server(hotpath_bin, doc_template, tmp_path_factory):
    """A default server shared by the tests of one module."""
    factory = ServerFactory(hotpath_bin, doc_template,
                            tmp_path_factory.mktemp("shared"))
    try:
        yield factory()
    finally:
        errors = factory.stop_all()
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def conn(server):
    """A keep-alive connection to the shared server."""
    with server.conn() as c:
        yield c


class TestTimeout(Exception):
    """A test ran longer than its time budget."""


@pytest.fixture(autouse=True)
def _time_limit(request):
    """Bound every test in time (no pytest-timeout plugin here): SIGALRM
    interrupts whatever the test blocks in. @pytest.mark.time_limit(s)
    overrides the default budget."""
    marker = request.node.get_closest_marker("time_limit")
    seconds = scaled(marker.args[0] if marker else 30)

    def on_alarm(signum, frame):
        raise TestTimeout("test exceeded its %.0f s time limit" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "time_limit(seconds): per-test time budget")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Last resort, after all fixture teardown: kill any server left."""
    for srv in _ALL_SERVERS:
        try:
            srv.kill()
        except Exception:
            pass
    stop_all_brokers()


# ---- a RabbitMQ broker ---------------------------------------------------------
#
# One node for the whole session: it takes 5-10 s to start (more on a busy
# machine), so tests share it and keep apart by name, not by vhost: every
# queue and exchange a test declares starts with its `queue_prefix`. A test
# that restarts or stops a broker, or needs a pristine one, starts its own
# `rabbitmq.Broker()`.

# Start-up times of the session's brokers, for the summary line.
_BROKER_STARTS = []


@pytest.fixture(scope="session")
def rabbitmq():
    """The session's RabbitMQ node (a rabbitmq.Broker: .url, .port, .ctl(),
    .list_connections(), .restart(), ...), started at first use. If it
    cannot start, every test that asks for it errors with the node's log
    tail (pytest keeps the failure; the start is not retried per test)."""
    broker = Broker()
    _BROKER_STARTS.append(broker.start_seconds)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def queue_prefix(request):
    """A prefix unique to this test (and run) for the names of the queues
    and exchanges it declares on the shared broker: `hp.<test>.<random>.`"""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    return "hp.%s.%s." % (name, uuid.uuid4().hex[:8])


def pytest_terminal_summary(terminalreporter):
    for seconds in _BROKER_STARTS:
        terminalreporter.write_line("rabbitmq: the session's node started in %.1f s"
                                    % seconds)


# ---- servers from a configuration file ---------------------------------------
#
# `serve(text, *flags)` runs `hotpath --config FILE` in the test's tmp_path
# (its working directory, for relative roots and logs), FILE being `text`
# after a listen line for a free port and `workers: 1`; stderr goes to a
# file the test can read (reload and log messages). `tree(base, files)`
# writes a document tree.

class ConfigServer:
    """hotpath --config FILE, with its stderr collected in a file."""

    def __init__(self, hotpath_bin, tmp_path, text, *flags):
        self.tmp = tmp_path
        self.port = free_port()
        self.conf = tmp_path / "hotpath.yaml"
        self.write(text)
        self.err_path = tmp_path / "stderr.txt"
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([str(hotpath_bin), "--config", str(self.conf), *flags],
                                     stderr=self.err, cwd=str(tmp_path))
        wait_until(lambda: can_connect(self.port) or self.proc.poll() is not None,
                   scaled(10), what="server up")
        assert self.proc.poll() is None, self.stderr()

    def write(self, text):
        self.conf.write_text('listen: "127.0.0.1:%d"\nworkers: 1\n' % self.port + text)

    def stderr(self):
        self.err.flush()
        return self.err_path.read_text()

    def signal(self, sig, expect=None):
        before = len(self.stderr())
        self.proc.send_signal(sig)
        if expect:
            wait_until(lambda: expect in self.stderr()[before:], scaled(5),
                       what="%r on stderr" % expect)
        return self.stderr()[before:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=scaled(10))
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.err.close()
        assert self.proc.returncode == 0, self.stderr()


@pytest.fixture
def serve(hotpath_bin, tmp_path):
    servers = []

    def start(text, *flags):
        s = ConfigServer(hotpath_bin, tmp_path, text, *flags)
        servers.append(s)
        return s

    yield start
    for s in servers:
        if s.proc.poll() is None:
            s.stop()


def tree(base, files):
    """Writes {relative name: bytes} beneath base."""
    for name, data in files.items():
        p = base / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


