"""The YAML configuration file through the real binary: --check-config,
--config with flags overriding it, one-line errors with file:line:column
and a suggestion, and --check-config refusing exactly what start-up
refuses, with the same line."""

import pathlib
import subprocess

import pytest

from helpers import free_port, wait_until, can_connect, request

REPO = pathlib.Path(__file__).resolve().parents[2]


def run(hotpath_bin, *args, timeout=10):
    return subprocess.run([str(hotpath_bin), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_shipped_config_is_valid(hotpath_bin):
    r = run(hotpath_bin, "--check-config", REPO / "config" / "hotpath.yaml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("configuration is valid")
    assert r.stderr == ""


def test_check_config_reports_typo_with_position_and_suggestion(hotpath_bin, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("workers: 1\ntimeouts:\n  keepalve: 5s\n")
    r = run(hotpath_bin, "--check-config", f)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0] == ("hotpath: %s:3:3: timeouts.keepalve: unknown key, "
                        "did you mean 'keepalive'?" % f)


def test_check_config_wrong_type_and_range(hotpath_bin, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("workers: lots\n")
    r = run(hotpath_bin, "--check-config", f)
    assert r.returncode == 1 and "bad.yaml:1:10: workers" in r.stderr, r.stderr
    f.write_text("limits: {max_headers: 100000}\n")
    r = run(hotpath_bin, "--check-config", f)
    assert r.returncode == 1 and "limits.max_headers" in r.stderr, r.stderr


def test_missing_config_file(hotpath_bin, tmp_path):
    r = run(hotpath_bin, "--config", tmp_path / "nope.yaml")
    assert r.returncode == 1
    assert r.stderr.strip() == "hotpath: %s: No such file or directory" % (tmp_path / "nope.yaml")


def _serve(hotpath_bin, *args):
    return subprocess.Popen([str(hotpath_bin), *map(str, args)], stderr=subprocess.PIPE,
                            text=True)


def test_config_applied_and_flags_override(hotpath_bin, tmp_path):
    port, port2 = free_port(), free_port()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "index.html").write_text("from config root\n")
    f = tmp_path / "c.yaml"
    f.write_text(
        'listen: "127.0.0.1:%d"\n'
        "workers: 1\n"
        "root: %s\n"
        "metrics: {path: /stats}\n"
        "endpoints: {echo: false}\n"
        "access_log: {enabled: true, path: %s}\n" % (port, tmp_path / "root",
                                                     tmp_path / "access.log"))
    p = _serve(hotpath_bin, "--config", f, "--listen", "127.0.0.1:%d" % port2)
    try:
        wait_until(lambda: can_connect(port2), 10, what="server on the flag's port")
        assert not can_connect(port)  # the flag won over the file
        assert request(port2, "GET", "/").body == b"from config root\n"
        assert "hotpath_requests_total" in request(port2, "GET", "/stats").body.decode()
        assert request(port2, "GET", "/metrics").status == 404
        assert request(port2, "POST", "/echo", body=b"x").status == 405
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert "not applied" not in err
    # The file's access log was applied: one line per request above.
    lines = (tmp_path / "access.log").read_text().splitlines()
    assert len(lines) == 4 and '"GET /stats HTTP/1.1" 200' in lines[1], lines


def _pos(text, needle):
    """LINE:COL (from 1) of the first `needle` in `text`."""
    i = text.index(needle)
    return "%d:%d" % (text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i))


# What start-up refuses beyond the schema, each at the place it was written.
# (file text after the listen line, the value the error points at, message)
STARTUP_CHECKS = [
    ("root: nope\n", "nope", "root: cannot open 'nope': No such file or directory"),
    ("root: www\nlocations:\n  - path: /x/\n    root: nope\n", "nope",
     "locations[0].root: cannot open 'nope': No such file or directory"),
    ("root: www\naccess_log: {enabled: true, path: nodir/a.log}\n", "nodir",
     "access_log.path: cannot open 'nodir/a.log': No such file or directory"),
    ("root: a-file\n", "a-file", "root: cannot open 'a-file': Not a directory"),
]


@pytest.mark.parametrize("text,at,message", STARTUP_CHECKS)
def test_check_config_refuses_what_startup_refuses(hotpath_bin, tmp_path, text, at, message):
    (tmp_path / "www").mkdir()
    (tmp_path / "a-file").write_text("x")
    f = tmp_path / "c.yaml"
    text = 'listen: "127.0.0.1:%d"\nworkers: 1\n' % free_port() + text
    f.write_text(text)
    want = "hotpath: %s:%s: %s" % (f, _pos(text, at), message)
    check = subprocess.run([str(hotpath_bin), "--check-config", str(f)], cwd=str(tmp_path),
                           capture_output=True, text=True, timeout=10)
    assert check.returncode == 1 and check.stdout == "", check
    assert check.stderr.splitlines() == [want]
    start = subprocess.run([str(hotpath_bin), "--config", str(f)], cwd=str(tmp_path),
                           capture_output=True, text=True, timeout=10)
    assert start.returncode == 1
    assert start.stderr.splitlines() == [want]


def test_check_config_more_listen_addresses_and_metrics_path(hotpath_bin, tmp_path):
    (tmp_path / "www").mkdir()
    f = tmp_path / "c.yaml"
    for text, key, at in [("listen: ['127.0.0.1:1', '127.0.0.1:2']\n", "listen", "["),
                          ("listen: ['127.0.0.1:1', '127.0.0.1:x']\n", "listen[1]", "'127.0.0.1:x"),
                          ("listen: 10.0.0.256:80\n", "listen", "10."),
                          ("metrics: {path: /health}\n", "metrics.path", "/health")]:
        f.write_text(text)
        lines = []
        for mode in ("--check-config", "--config"):
            r = subprocess.run([str(hotpath_bin), mode, str(f)], cwd=str(tmp_path),
                               capture_output=True, text=True, timeout=10)
            assert r.returncode == 1, r
            lines.append(r.stderr.splitlines())
        assert lines[0] == lines[1] and len(lines[0]) == 1, lines
        assert lines[0][0].startswith("hotpath: %s:%s: %s: " % (f, _pos(text, at), key)), lines


def test_check_config_default_root_and_flags(hotpath_bin, tmp_path):
    """A default that fails is named with the file but no line; a flag
    given with --check-config is checked as start-up would use it."""
    f = tmp_path / "c.yaml"
    f.write_text("workers: 1\n")
    r = run(hotpath_bin, "--check-config", f, "--root", tmp_path / "none")
    assert r.returncode == 1
    assert r.stderr.strip() == ("hotpath: --root: cannot open '%s': No such file or directory"
                                % (tmp_path / "none"))
    r = subprocess.run([str(hotpath_bin), "--check-config", str(f)], cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert r.stderr.strip() == ("hotpath: %s: root: cannot open 'www': No such file or directory"
                                % f)
    f.write_text("root: nope\n")
    r = run(hotpath_bin, "--check-config", f, "--root", tmp_path)
    assert r.returncode == 0 and r.stdout.strip().endswith("configuration is valid"), r
