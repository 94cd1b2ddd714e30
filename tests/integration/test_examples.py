"""The embedding examples (examples/*.c), built the way a user builds them.

The library is installed with `make install` into a scratch DESTDIR (from the
build directory HOTPATH_BIN lives in, with the sanitizers when that is
build/san), each example is compiled with the flags `pkg-config hotpath`
gives for that tree, linked statically against libhotpath.a, started on a
free loopback port and driven with curl and raw sockets. Every example must
exit with status 0 on SIGTERM (and, under the sanitizers, report nothing).
"""

import json
import os
import pathlib
import signal
import socket
import subprocess

import pytest

from helpers import Conn, can_connect, curl, free_port, parse_curl_headers, scaled, wait_until

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ("hello", "rest")
WARN = ["-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes",
        "-Wmissing-prototypes", "-Wundef", "-Werror"]
SAN = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
       "-fno-sanitize-recover=all"]
JSON_HEADERS = {"Content-Type": "application/json"}


def _build_dir(hotpath_bin):
    """BUILD for make: the directory of HOTPATH_BIN, relative to the
    repository when it is inside it (build, build/san), else absolute."""
    d = os.path.dirname(os.path.abspath(hotpath_bin))
    rel = os.path.relpath(d, REPO)
    return d if rel.startswith("..") else rel


def _sanitized(build):
    return os.path.basename(os.path.normpath(build)) == "san"


def _run(args, what, env=None, timeout=600):
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env, timeout=timeout)
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        pytest.fail("%s failed (status %d): %s\n%s" % (
            what, proc.returncode, " ".join(map(str, args)), out[-4000:]))
    return out


@pytest.fixture(scope="module")
def installed(hotpath_bin, tmp_path_factory):
    """make install into a scratch DESTDIR; returns (destdir, sanitized)."""
    build = _build_dir(hotpath_bin)
    san = _sanitized(build)
    dest = tmp_path_factory.mktemp("destdir")
    args = ["make", "-s", "-C", str(REPO), "install", "DESTDIR=%s" % dest,
            "PREFIX=/usr", "BUILD=%s" % build]
    if san:
        args.append("SANITIZE=address,undefined")
    _run(args, "make install")
    return dest, san


def _pkg_config(dest, *what):
    """pkg-config for the tree under dest: the .pc says prefix=/usr (where
    it will live), the sysroot maps its -I and -L paths under dest."""
    env = dict(os.environ,
               PKG_CONFIG_PATH=str(dest / "usr/lib/pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=str(dest))
    return _run(["pkg-config", *what, "hotpath"], "pkg-config", env=env).split()


def _compile(dest, san, name, exe, static=True):
    """cc examples/<name>.c with the installed tree's pkg-config flags."""
    cflags = _pkg_config(dest, "--cflags")
    libs = _pkg_config(dest, "--libs", "--static")
    if static:
        # Prefer the archive over libhotpath.so next to it: no
        # LD_LIBRARY_PATH needed to run the result.
        i = libs.index("-lhotpath")
        libs[i:i + 1] = ["-Wl,-Bstatic", "-lhotpath", "-Wl,-Bdynamic"]
    cc = os.environ.get("CC", "cc")
    _run([cc, "-std=gnu17", "-O2", "-g", *WARN, *(SAN if san else []),
          *cflags, "-o", str(exe), str(REPO / "examples" / (name + ".c")),
          *libs], "compiling examples/%s.c" % name, timeout=120)
    return exe


@pytest.fixture(scope="module")
def binaries(installed, tmp_path_factory):
    """Both examples compiled against the installed tree: {name: path}."""
    dest, san = installed
    # The flags must point into the installed tree, not at the sources.
    cflags = _pkg_config(dest, "--cflags")
    libs = _pkg_config(dest, "--libs", "--static")
    incdirs = [f[2:] for f in cflags if f.startswith("-I")]
    assert any(os.path.isfile(os.path.join(d, "hotpath/app.h")) for d in incdirs), cflags
    libdirs = [f[2:] for f in libs if f.startswith("-L")]
    assert any(os.path.isfile(os.path.join(d, "libhotpath.a")) for d in libdirs), libs
    assert "-lhotpath" in libs and "-lpthread" in libs, libs
    out = tmp_path_factory.mktemp("examples")
    return {name: _compile(dest, san, name, out / name) for name in EXAMPLES}


class Example:
    """One running example process."""

    def __init__(self, exe, tmp_path, env=None):
        self.port = free_port()
        self.name = exe.name
        self.log = tmp_path / ("%s-%d.log" % (self.name, self.port))
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen([str(exe), "127.0.0.1:%d" % self.port],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._out, env=env,
                                     start_new_session=True)

    def output(self):
        return self.log.read_text("utf-8", "replace")

    def wait_ready(self):
        def ready():
            if self.proc.poll() is not None:
                pytest.fail("%s exited with %s at start-up:\n%s"
                            % (self.name, self.proc.returncode, self.output()))
            return can_connect(self.port, timeout=0.5)
        wait_until(ready, scaled(10), what="%s to listen" % self.name)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def conn(self):
        return Conn(self.port, timeout=scaled(5))

    def stop(self, sig=signal.SIGTERM):
        """Signal, then return an error message unless it exits 0 quietly."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout=scaled(8))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                return "%s did not exit after %s:\n%s" % (self.name, sig.name, self.output())
        finally:
            self._out.close()
        text = self.output()
        if rc != 0:
            return "%s exited with %d after %s:\n%s" % (self.name, rc, sig.name, text)
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if bad in text:
                return "%s: sanitizer report:\n%s" % (self.name, text)
        return None


@pytest.fixture
def run_example(binaries, tmp_path):
    """Factory: run_example("rest") -> a ready Example; each must exit 0 on
    SIGTERM at teardown (tests that stop one themselves are skipped)."""
    started = []

    def start(name):
        ex = Example(binaries[name], tmp_path)
        started.append(ex)
        ex.wait_ready()
        return ex

    yield start
    errors = []
    for ex in started:
        if not ex._out.closed:
            err = ex.stop()
            if err:
                errors.append(err)
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


def test_linked_statically(binaries):
    """pkg-config's -lhotpath was resolved to the archive: no libhotpath.so
    needed at run time."""
    for exe in binaries.values():
        dyn = subprocess.run(["readelf", "-d", str(exe)], stdout=subprocess.PIPE,
                             check=True).stdout.decode()
        assert "libhotpath" not in dyn, dyn


def test_shared_library(installed, tmp_path):
    """The plain `pkg-config --libs` build links libhotpath.so and runs with
    the installed library directory on LD_LIBRARY_PATH."""
    dest, san = installed
    exe = _compile(dest, san, "hello", tmp_path / "hello-shared", static=False)
    dyn = subprocess.run(["readelf", "-d", str(exe)], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    assert "libhotpath.so" in dyn, dyn
    env = dict(os.environ, LD_LIBRARY_PATH=str(dest / "usr/lib"))
    ex = Example(exe, tmp_path, env=env)
    try:
        ex.wait_ready()
        r = curl("-f", ex.url("/hello/shared"))
        assert r.stdout == b"Hello, shared!\n", (r.stdout, r.stderr)
    finally:
        err = ex.stop()
    assert err is None, err


# ---- hello ----------------------------------------------------------------

def test_hello_routes(run_example):
    ex = run_example("hello")
    r = curl("-i", ex.url("/"))
    assert r.returncode == 0, r.stderr
    body = r.stdout.partition(b"\r\n\r\n")[2]
    resp = parse_curl_headers(r.stdout.decode("latin-1"))
    assert resp.status == 200 and body == b"Hello from libhotpath!\n", r.stdout
    assert resp.header("Content-Type", "").startswith("text/plain")
    r = curl("-f", ex.url("/hello/world"))
    assert r.returncode == 0 and r.stdout == b"Hello, world!\n", (r.stdout, r.stderr)
    r = curl("-f", ex.url("/hello/a-b-42"))
    assert r.stdout == b"Hello, a-b-42!\n", (r.stdout, r.stderr)

    with ex.conn() as c:
        # Not a slug (uppercase, empty, a second segment), unknown paths.
        for path in ("/hello/World", "/hello/", "/hello/a/b", "/hello", "/nope"):
            assert c.request("GET", path).status == 404, path
        resp = c.request("POST", "/", body=b"x")
        assert resp.status == 405, resp
        allow = [m.strip() for m in resp.header("Allow", "").split(",")]
        assert allow == ["GET", "HEAD"], resp
        # HEAD is answered by the GET handler, without the body; the next
        # response on the same connection parses, so no body bytes came.
        resp = c.request("HEAD", "/")
        assert resp.status == 200 and resp.header("Content-Length") == "23", resp
        resp = c.request("GET", "/hello/x")
        assert resp.status == 200 and resp.body == b"Hello, x!\n", resp


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_hello_stops_on_signal(run_example, sig):
    ex = run_example("hello")
    with ex.conn() as c:
        assert c.request("GET", "/").status == 200
    err = ex.stop(sig)
    assert err is None, err


def test_hello_cannot_listen(binaries):
    """Port taken (without SO_REUSEPORT): one line on stderr, status 1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        proc = subprocess.run([str(binaries["hello"]), "127.0.0.1:%d" % port],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=scaled(10))
    assert proc.returncode == 1, proc
    assert "hello: " in proc.stderr.decode(), proc.stderr


# ---- rest -------------------------------------------------------------------

def call(c, method, path, body=None):
    """A request on Conn c; returns (response, decoded JSON body or None)."""
    kw = {}
    if body is not None:
        if not isinstance(body, bytes):  # raw UTF-8, not \u escapes
            body = json.dumps(body, ensure_ascii=False).encode()
        kw = {"body": body,
              "headers": JSON_HEADERS}
    resp = c.request(method, path, **kw)
    data = None
    if resp.body:
        assert resp.header("Content-Type", "").startswith("application/json"), resp
        data = json.loads(resp.body)
    return resp, data


def assert_error(resp, data, status):
    assert resp.status == status, resp
    assert isinstance(data, dict) and isinstance(data.get("error"), str), resp


def test_rest_crud_cycle(run_example):
    ex = run_example("rest")
    # Create with curl, as the README shows.
    r = curl("-i", "-X", "POST", "-H", "Content-Type: application/json",
             "-d", '{"text": "first"}', ex.url("/notes"))
    assert r.returncode == 0, r.stderr
    resp = parse_curl_headers(r.stdout.decode("latin-1"))
    assert resp.status == 201 and resp.header("Location") == "/notes/1", r.stdout
    assert json.loads(r.stdout.partition(b"\r\n\r\n")[2]) == {"id": 1, "text": "first"}

    with ex.conn() as c:
        tricky = 'quote " backslash \\ slash / nl \n tab \t ctl \x01 é € \U0001F600'
        resp, data = call(c, "POST", "/notes", {"text": tricky})
        assert resp.status == 201 and data == {"id": 2, "text": tricky}, resp
        assert resp.header("Location") == "/notes/2"
        # Escapes call() does not produce: \/, \u00e9 and a surrogate pair.
        resp, data = call(c, "POST", "/notes",
                          b' { "other" : "x", "text":"a\\/b \\u00e9\\ud83d\\ude00" } ')
        assert resp.status == 201 and data == {"id": 3, "text": "a/b \u00e9\U0001F600"}

        resp, data = call(c, "GET", "/notes/2")
        assert resp.status == 200 and data == {"id": 2, "text": tricky}
        resp, data = call(c, "GET", "/notes")
        assert resp.status == 200 and [n["id"] for n in data] == [1, 2, 3]

        resp, data = call(c, "PUT", "/notes/1", {"text": "changed"})
        assert resp.status == 200 and data == {"id": 1, "text": "changed"}
        assert call(c, "GET", "/notes/1")[1] == {"id": 1, "text": "changed"}

        resp, data = call(c, "DELETE", "/notes/1")
        assert resp.status == 204 and resp.body == b"", resp
        assert_error(*call(c, "GET", "/notes/1"), 404)
        assert_error(*call(c, "DELETE", "/notes/1"), 404)
        assert_error(*call(c, "PUT", "/notes/1", {"text": "x"}), 404)

        # Ids are never reused, and the list keeps creation order.
        resp, data = call(c, "POST", "/notes", {"text": ""})
        assert resp.status == 201 and data == {"id": 4, "text": ""}
        resp, data = call(c, "GET", "/notes")
        assert [n["id"] for n in data] == [2, 3, 4]
    r = curl("-f", ex.url("/notes/4"))
    assert r.returncode == 0 and json.loads(r.stdout) == {"id": 4, "text": ""}


def test_rest_response_cache(run_example):
    """GET /notes/{id} is cached (the example opts in): repeated reads are
    hits, a change through PUT or DELETE is seen at once."""
    ex = run_example("rest")

    def cache():
        text = curl("-f", ex.url("/metrics")).stdout.decode()
        m = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")
        return {k: float(m["hotpath_cache_%s" % k]) for k in
                ("hits_total", "misses_total", "entries")}

    with ex.conn() as c:
        assert call(c, "POST", "/notes", {"text": "v1"})[0].status == 201
        before = cache()
        for _ in range(5):
            resp, data = call(c, "GET", "/notes/1")
            assert resp.status == 200 and data == {"id": 1, "text": "v1"}
        after = cache()
        assert after["misses_total"] - before["misses_total"] == 1
        assert after["hits_total"] - before["hits_total"] == 4
        assert after["entries"] == 1
        # HEAD is a key of its own; a query string too.
        assert c.request("HEAD", "/notes/1").status == 200
        assert call(c, "GET", "/notes/1?x=1")[1] == {"id": 1, "text": "v1"}
        assert cache()["entries"] == 3
        # A change invalidates what is cached for the path.
        assert call(c, "PUT", "/notes/1", {"text": "v2"})[0].status == 200
        assert call(c, "GET", "/notes/1")[1] == {"id": 1, "text": "v2"}
        assert c.request("HEAD", "/notes/1").status == 200
        assert call(c, "DELETE", "/notes/1")[0].status == 204
        assert_error(*call(c, "GET", "/notes/1"), 404)
        # Errors are not cached: a new note 1 does not exist (ids are not
        # reused), and the 404 above is not replayed for another id.
        assert call(c, "POST", "/notes", {"text": "v3"})[1] == {"id": 2, "text": "v3"}
        assert call(c, "GET", "/notes/2")[1] == {"id": 2, "text": "v3"}


BAD_BODIES = [b"", b"{", b"not json", b"[]", b'["text"]', b"{}", b'{"text": 5}',
              b'{"text": null}', b'{"txt": "a"}', b'{"text": "a"} x',
              b'{"text": "a",}', b'{"text" "a"}', b'{"text": "a"',
              b'{"text": "abc}', b'{"text": "\\x"}', b'{"text": "\\u12"}',
              b'{"text": "\\ud800"}', b'{"text": "\\udc00"}',
              b'{"text": "a\nb"}', b'{"text": "a", "n": 1}', b'{text: "a"}']


def test_rest_bad_json(run_example):
    ex = run_example("rest")
    with ex.conn() as c:
        for body in BAD_BODIES:
            resp, data = call(c, "POST", "/notes", body)
            assert resp.status == 400, (body, resp)
            assert isinstance(data.get("error"), str), (body, resp)
        assert call(c, "GET", "/notes")[1] == []
        # A rejected update leaves the note as it was.
        assert call(c, "POST", "/notes", {"text": "keep"})[0].status == 201
        for body in BAD_BODIES[:5]:
            assert_error(*call(c, "PUT", "/notes/1", body), 400)
        assert call(c, "GET", "/notes/1")[1] == {"id": 1, "text": "keep"}
        # Text longer than the example stores: 413, also counted after
        # escapes are decoded ("\n" is one byte).
        assert call(c, "POST", "/notes", {"text": "x" * 1024})[0].status == 201
        assert_error(*call(c, "POST", "/notes", {"text": "x" * 1025}), 413)
        assert_error(*call(c, "PUT", "/notes/1", {"text": "\n" * 1025}), 413)
        assert call(c, "GET", "/notes/1")[1] == {"id": 1, "text": "keep"}


def test_rest_limit(run_example):
    ex = run_example("rest")
    with ex.conn() as c:
        for i in range(5):
            assert call(c, "POST", "/notes", {"text": "n%d" % i})[0].status == 201
        for query, ids in (("limit=2", [1, 2]), ("limit=0", []),
                           ("limit=100", [1, 2, 3, 4, 5]), ("limit=%33", [1, 2, 3]),
                           ("other=1&limit=1", [1]), ("", [1, 2, 3, 4, 5])):
            resp, data = call(c, "GET", "/notes?" + query)
            assert resp.status == 200 and [n["id"] for n in data] == ids, (query, data)
        for query in ("limit=abc", "limit=-1", "limit=", "limit=1x", "limit=+1",
                      "limit=" + "9" * 40):
            assert_error(*call(c, "GET", "/notes?" + query), 400)
    # A malformed pct-encoding makes the target itself invalid: the server
    # answers 400 and closes before the handler runs.
    with ex.conn() as c:
        resp = c.request("GET", "/notes?limit=%zz")
        assert resp.status == 400 and "close" in resp.connection_tokens(), resp
    r = curl("-f", ex.url("/notes?limit=1"))
    assert r.returncode == 0 and json.loads(r.stdout) == [{"id": 1, "text": "n0"}]


def test_rest_typed_parameter(run_example):
    ex = run_example("rest")
    with ex.conn() as c:
        assert call(c, "POST", "/notes", {"text": "a"})[0].status == 201
        # Not an int64 the router accepts: no route, so no handler ran.
        for path in ("/notes/abc", "/notes/99999999999999999999",
                     "/notes/9223372036854775808", "/notes/01", "/notes/-0",
                     "/notes/+1", "/notes/1/x", "/notes/"):
            resp = c.request("GET", path)
            assert resp.status == 404, (path, resp)
        # Valid ints reach the handler, which answers with a JSON 404.
        for path in ("/notes/0", "/notes/-1", "/notes/9223372036854775807",
                     "/notes/-9223372036854775808"):
            assert_error(*call(c, "GET", path), 404)
        resp = c.request("PATCH", "/notes/1", body=b"{}")
        assert resp.status == 405, resp
        allow = [m.strip() for m in resp.header("Allow", "").split(",")]
        assert allow == ["GET", "HEAD", "PUT", "DELETE"], resp
        resp = c.request("DELETE", "/notes")
        assert resp.status == 405, resp
        assert "POST" in resp.header("Allow", "")


def test_rest_head(run_example):
    ex = run_example("rest")
    with ex.conn() as c:
        assert call(c, "POST", "/notes", {"text": "head"})[0].status == 201
        get, _ = call(c, "GET", "/notes")
        head = c.request("HEAD", "/notes")
        assert head.status == 200, head
        assert head.header("Content-Length") == get.header("Content-Length"), head
        assert head.header("Content-Type", "").startswith("application/json")
        # The next response parses: HEAD sent no body bytes.
        resp, data = call(c, "GET", "/notes/1")
        assert resp.status == 200 and data == {"id": 1, "text": "head"}
        c.assert_quiet(0.1)
    r = curl("-I", ex.url("/notes/1"))
    assert r.returncode == 0 and parse_curl_headers(r.stdout.decode()).status == 200


def test_rest_store_full(run_example):
    ex = run_example("rest")
    with ex.conn() as c:
        body = json.dumps({"text": "x"}).encode()
        for i in range(256):
            resp = c.request("POST", "/notes", body=body, headers=JSON_HEADERS)
            assert resp.status == 201, (i, resp)
        assert_error(*call(c, "POST", "/notes", {"text": "one too many"}), 507)
        assert call(c, "DELETE", "/notes/7")[0].status == 204
        resp, data = call(c, "POST", "/notes", {"text": "room again"})
        assert resp.status == 201 and data["id"] == 257
        resp, data = call(c, "GET", "/notes?limit=300")
        assert len(data) == 256 and data[-1]["id"] == 257
