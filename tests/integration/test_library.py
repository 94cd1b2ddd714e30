"""libhotpath as a library with a contract: what it exports, its soname, its
installed headers and its pkg-config file.

- libhotpath.so exports only names that start with hp_ (it is built with
  -fvisibility=hidden; the public headers mark what is exported);
- it has a soname (libhotpath.so.MAJOR), and make install lays out the
  versioned file with its two links;
- every installed header compiles alone in strict C17
  (-std=c17 -pedantic -Wall -Wextra -Werror), without GNU extensions;
- hotpath.pc names its directories relative to ${prefix}, and an example
  built with it against a temporary prefix (not a DESTDIR) links the shared
  library and serves a request.
"""

import os
import pathlib
import re
import subprocess

import pytest

from helpers import can_connect, free_port, request, scaled, wait_until

REPO = pathlib.Path(__file__).resolve().parents[2]


def _run(args, env=None, cwd=None):
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=600)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, "%s failed:\n%s" % (" ".join(map(str, args)), out[-4000:])
    return out


@pytest.fixture(scope="module")
def build_dir(hotpath_bin):
    return pathlib.Path(hotpath_bin).resolve().parent


@pytest.fixture(scope="module")
def prefix(build_dir, tmp_path_factory):
    """make install PREFIX=<a temporary directory>, from the build tree the
    binary under test comes from."""
    pre = tmp_path_factory.mktemp("prefix")
    build = os.path.relpath(build_dir, REPO)
    san = os.path.basename(build) == "san"
    args = ["make", "-s", "-C", str(REPO), "install", "PREFIX=%s" % pre, "BUILD=%s" % build]
    if san:
        args.append("SANITIZE=address,undefined")
    _run(args)
    return pre


def test_exports_only_hp_names(build_dir):
    out = _run(["nm", "-D", "--defined-only", str(build_dir / "libhotpath.so")])
    names = [line.split()[-1] for line in out.splitlines() if len(line.split()) >= 3]
    assert len(names) > 100, names  # the API is there...
    # ASan adds an ODR indicator beside each exported variable
    # (__odr_asan.hp_sys_real): the sanitizer's, named after ours.
    stray = [n for n in names if not n.startswith(("hp_", "__odr_asan.hp_"))
             and n not in ("_init", "_fini")]
    assert stray == [], "exported names outside hp_: %s" % stray[:20]  # ...and nothing else


def test_soname_and_install_layout(build_dir, prefix):
    dyn = _run(["readelf", "-d", str(build_dir / "libhotpath.so")])
    m = re.search(r"\(SONAME\)\s+Library soname: \[(libhotpath\.so\.\d+)\]", dyn)
    assert m, dyn
    soname = m.group(1)
    lib = prefix / "lib"
    versioned = [p for p in lib.iterdir() if re.fullmatch(r"libhotpath\.so\.\d+\.\d+\.\d+", p.name)]
    assert len(versioned) == 1, list(lib.iterdir())
    assert not versioned[0].is_symlink()
    assert (lib / soname).is_symlink() and os.readlink(lib / soname) == versioned[0].name
    assert (lib / "libhotpath.so").is_symlink()
    assert os.readlink(lib / "libhotpath.so") == soname


def test_headers_compile_alone_in_strict_c17(prefix, tmp_path):
    headers = sorted((prefix / "include" / "hotpath").glob("*.h"))
    assert headers
    cc = os.environ.get("CC", "cc")
    failed = []
    for h in headers:
        src = tmp_path / ("only_%s.c" % h.stem)
        src.write_text('#include <hotpath/%s>\nint hp_test_dummy_%s;\n' % (h.name, h.stem))
        proc = subprocess.run([cc, "-std=c17", "-pedantic", "-Wall", "-Wextra", "-Werror",
                               "-I", str(prefix / "include"), "-c", str(src), "-o", os.devnull],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if proc.returncode != 0:
            failed.append("%s:\n%s" % (h.name, proc.stdout.decode()[-800:]))
    assert not failed, "\n".join(failed)


# The engine's types an embedder reaches only through functions (DESIGN.md:
# "opaque to embedders, as libuv's handles are"), by the header that names
# them; and the headers that must not be installed at all.
OPAQUE = [("conn.h", "hp_conn_t"), ("worker.h", "hp_worker_t"), ("loop.h", "hp_loop_t"),
          ("engine.h", "hp_engine_t"), ("app.h", "hp_app_t"), ("ctx.h", "hp_ctx_t"),
          ("router.h", "hp_router_t"), ("resolve.h", "hp_resolve_t")]
PRIVATE = ["pool.h", "mpsc.h", "fcache.h", "rcache.h", "static.h", "sys.h"]


def test_engine_types_are_opaque(prefix, tmp_path):
    cc = os.environ.get("CC", "cc")
    leaked = []
    for header, typ in OPAQUE:
        for expr, must_compile in (("%s *p = 0; (void)p;" % typ, True),
                                   ("(void)sizeof(%s);" % typ, False)):
            src = tmp_path / ("opaque_%s.c" % typ)
            src.write_text("#include <hotpath/%s>\nvoid f(void);\nvoid f(void) { %s }\n"
                           % (header, expr))
            proc = subprocess.run([cc, "-std=c17", "-Wall", "-Werror", "-I",
                                   str(prefix / "include"), "-c", str(src), "-o", os.devnull],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            if (proc.returncode == 0) != must_compile:
                leaked.append("%s %s: %s" % (typ, "unusable" if must_compile else "complete",
                                             proc.stdout.decode()[-300:]))
    assert not leaked, "\n".join(leaked)
    installed = {h.name for h in (prefix / "include" / "hotpath").glob("*.h")}
    assert not installed & set(PRIVATE), installed & set(PRIVATE)


def test_pkg_config_is_prefix_relative(prefix):
    pc = (prefix / "lib" / "pkgconfig" / "hotpath.pc").read_text()
    fields = dict(line.split("=", 1) for line in pc.splitlines() if "=" in line and ":" not in line)
    assert fields["prefix"] == str(prefix)
    assert fields["libdir"] == "${prefix}/lib"
    assert fields["includedir"] == "${prefix}/include"


def test_example_against_a_temporary_prefix(build_dir, prefix, tmp_path):
    """examples/hello.c built with the installed pkg-config file, linked
    against libhotpath.so (found through its soname at run time), serves."""
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    flags = _run(["pkg-config", "--cflags", "--libs", "hotpath"], env=env).split()
    assert "-I%s/include" % prefix in flags, flags
    exe = tmp_path / "hello"
    cc = os.environ.get("CC", "cc")
    # A sanitizer build's library needs the sanitizers' runtimes in the program.
    san = ["-fsanitize=address,undefined"] if build_dir.name == "san" else []
    _run([cc, "-std=c17", "-O2", "-Wall", "-Wextra", "-Werror", *san, "-o", str(exe),
          str(REPO / "examples" / "hello.c"), *flags])
    needed = _run(["readelf", "-d", str(exe)])
    assert re.search(r"NEEDED.*\[libhotpath\.so\.\d+\]", needed), needed
    port = free_port()
    proc = subprocess.Popen([str(exe), "127.0.0.1:%d" % port], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, LD_LIBRARY_PATH=str(prefix / "lib")))
    try:
        wait_until(lambda: proc.poll() is not None or can_connect(port), scaled(10),
                   what="hello to listen")
        assert proc.poll() is None, proc.stderr.read().decode()
        resp = request(port, "GET", "/hello/world")
        assert resp.status == 200 and resp.body == b"Hello, world!\n", resp
    finally:
        proc.terminate()
        assert proc.wait(timeout=scaled(10)) == 0
