"""Integration tests for hpbench, hotpath's HTTP load generator.

hpbench runs as a subprocess (HPBENCH_BIN, default: the `hpbench` next to
HOTPATH_BIN) against the real hotpath server and against small scripted
misbehaving servers (badservers.py). The tests check what hpbench counts
against what the server counted, the constant-rate schedule and the
coordinated-omission correction, the error kinds, the JSON fields listed in
docs/hpbench.md, the well-formedness of the HTML report, the HdrHistogram
text output, the command line's exit codes, the pass/fail verdict of
--max-errors and the two-signal stop.

Every run is short and bounded by a subprocess timeout (and by conftest's
per-test alarm); upper bounds on wall-clock times go through scaled() so
that the sanitizer build, ~3x slower, passes too.

Counting is exact: without --warmup every response counts from the first
connect, with it only those completing after the warm-up; bytes_read
follows the same window.
"""

import fcntl
import html.parser
import json
import math
import os
import pathlib
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

import badservers
import helpers
from conftest import REPO, _binary
from helpers import scaled

DOC = REPO / "docs" / "hpbench.md"


def _hpbench_binary():
    env = os.environ.get("HPBENCH_BIN")
    if env:
        return env
    return str(pathlib.Path(_binary()).resolve().parent / "hpbench")


HPBENCH = _hpbench_binary()


@pytest.fixture(scope="session", autouse=True)
def _hpbench_exists():
    if not (os.path.isfile(HPBENCH) and os.access(HPBENCH, os.X_OK)):
        pytest.fail("hpbench binary not found or not executable: %s "
                    "(set HPBENCH_BIN)" % HPBENCH)


class Run:
    """One finished hpbench process: rc, stdout, stderr, elapsed seconds,
    and the parsed JSON report / HTML text when asked for."""

    def __init__(self, proc, elapsed, json_path, html_path):
        self.rc = proc.returncode
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")
        self.elapsed = elapsed
        self.json_text = None
        self.json = None
        self.html = None
        if json_path is not None and os.path.exists(json_path):
            self.json_text = pathlib.Path(json_path).read_text("utf-8")
            self.json = json.loads(self.json_text)
        if html_path is not None and os.path.exists(html_path):
            self.html = pathlib.Path(html_path).read_text("utf-8")

    def __repr__(self):
        return "<hpbench rc=%s %.2fs stdout=%r stderr=%r>" % (
            self.rc, self.elapsed, self.stdout[-1500:], self.stderr[-1500:])


def hpbench(*args, tmp=None, json_out=False, html_out=False, budget=None):
    """Runs hpbench with `args`; json_out/html_out add --json/--html files
    under `tmp`. `budget` is the wall-clock limit before scaling (default:
    the -d value plus 10 s)."""
    args = [str(a) for a in args]
    json_path = html_path = None
    if json_out:
        json_path = str(tmp / ("run-%d.json" % time.monotonic_ns()))
        args += ["--json", json_path]
    if html_out:
        html_path = str(tmp / ("run-%d.html" % time.monotonic_ns()))
        args += ["--html", html_path]
    if budget is None:
        d = 10.0
        if "-d" in args:
            d = float(args[args.index("-d") + 1].rstrip("s"))
        budget = d + 10.0
    t0 = time.monotonic()
    proc = subprocess.run([HPBENCH, *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=scaled(budget))
    return Run(proc, time.monotonic() - t0, json_path, html_path)


def failure_line(r):
    """The one line on stderr, last, that says why the run failed."""
    lines = r.stderr.splitlines()
    assert lines, r
    assert lines[-1].startswith("hpbench: failed: "), r
    return lines[-1]


def requests_total(server):
    return server.metrics()["hotpath_requests_total"]


def assert_json_consistent(j):
    """Relations between JSON figures that hold for every run."""
    assert j["tool"] == "hpbench"
    errs = j["errors"]
    assert set(errs) == {"connect", "read", "write", "timeout", "status",
                         "parse"}, errs
    assert j["errors_total"] == sum(errs.values()), j
    assert set(j["status"]) == {"1xx", "2xx", "3xx", "4xx", "5xx"}
    # Every counted request had a complete response of some status class.
    assert j["requests"] == sum(j["status"].values()), j
    # Status errors are the non-2xx/3xx responses.
    assert errs["status"] == j["status"]["1xx"] + j["status"]["4xx"] + \
        j["status"]["5xx"], j
    assert j["latency"]["count"] == j["requests"], j
    if j["duration_s"] > 0:
        assert j["requests_per_s"] == pytest.approx(
            j["requests"] / j["duration_s"], rel=1e-9, abs=1e-6)
        assert j["bytes_per_s"] == pytest.approx(
            j["bytes_read"] / j["duration_s"], rel=1e-9, abs=1e-6)
    cpu = j["client_cpu"]
    assert cpu["total_s"] == pytest.approx(cpu["user_s"] + cpu["sys_s"],
                                           abs=1e-6)
    if j["requests"]:
        assert cpu["per_1000_requests_s"] == pytest.approx(
            cpu["total_s"] * 1000 / j["requests"], rel=1e-6, abs=1e-9)
    else:
        assert cpu["per_1000_requests_s"] is None
    for lat, pct in (("latency", "percentiles"),
                     ("latency_uncorrected", "percentiles_uncorrected")):
        if j[lat] is not None:
            assert_latency_sane(j[lat], j[pct])
    # The per-second samples: consecutive, ending at the duration.
    ts = [s["t"] for s in j["samples"]]
    assert ts == sorted(ts) and ts, ts
    assert ts[-1] == pytest.approx(j["duration_s"], abs=1e-6), ts
    assert sum(s["requests"] for s in j["samples"]) <= j["requests"]


def assert_latency_sane(lat, pcts):
    if lat["count"] == 0:
        assert all(v == 0 for k, v in lat.items()), lat
        assert pcts == [], pcts
        return
    slack = 1 + 1 / 1024  # percentiles are the top of their slot
    keys = ["p50", "p75", "p90", "p99", "p99_9", "p99_99", "p99_999"]
    assert lat["min"] > 0
    assert lat["min"] <= lat["p50"] * slack
    for a, b in zip(keys, keys[1:]):
        assert lat[a] <= lat[b], (a, b, lat)
    assert lat["p99_999"] <= lat["max"] * slack + 0.001, lat
    assert lat["min"] / slack <= lat["mean"] <= lat["max"] * slack, lat
    assert lat["stdev"] >= 0
    assert pcts[0][0] == 0 and pcts[-1] == [100, lat["max"]], pcts[:2]
    for (p1, v1), (p2, v2) in zip(pcts, pcts[1:]):
        assert p1 < p2 and v1 <= v2 * slack, (p1, v1, p2, v2)


# -- shared runs against one default server ------------------------------------

@pytest.fixture(scope="module")
def bench_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("hpbench")


@pytest.fixture(scope="module")
def closed_run(server, bench_tmp):
    """A 1 s closed-loop run with every output."""
    r = hpbench("-c", 4, "-d", 1, "--latency", server.url("/plaintext"),
                tmp=bench_tmp, json_out=True, html_out=True)
    assert r.rc == 0, r
    return r


@pytest.fixture(scope="module")
def rate_run(server, bench_tmp):
    """A 3 s run at a constant 2000 requests/s with every output."""
    r = hpbench("-R", 2000, "-c", 10, "-d", 3, "--latency",
                server.url("/plaintext"), tmp=bench_tmp, json_out=True,
                html_out=True)
    assert r.rc == 0, r
    return r


# -- counting -------------------------------------------------------------------

@pytest.mark.parametrize("pipeline", [1, 8])
def test_counts_match_server(start_server, tmp_path, pipeline):
    srv = start_server(workers=1)
    conns = 8
    before = requests_total(srv)
    args = ["-c", conns, "-d", 2]
    if pipeline > 1:
        args += ["--pipeline", pipeline]
    r = hpbench(*args, srv.url("/plaintext"), tmp=tmp_path, json_out=True)
    after = requests_total(srv)
    assert r.rc == 0, r
    j = r.json
    assert_json_consistent(j)
    assert j["pipeline"] == pipeline and j["connections"] == conns
    assert j["errors_total"] == 0, j["errors"]
    assert j["requests"] > 1000, j["requests"]
    assert j["status"]["2xx"] == j["requests"]
    # Each /metrics read counts itself: of the two, the second falls
    # between the snapshots. What remains is what hpbench sent; the
    # requests still in flight when the run stopped (at most one window
    # per connection) reached the server but never completed for hpbench.
    served = after - before - 1
    assert j["requests"] <= served, (served, j["requests"])
    assert served <= j["requests"] + conns * pipeline, \
        (served, j["requests"], conns * pipeline)


def test_bytes_read_match_responses(server, tmp_path):
    """bytes_read is exactly what the counted responses weigh, give or take
    the responses in flight at either end of the run."""
    size = len(server.conn().request("GET", "/plaintext").raw_head) + \
        len(helpers.PLAINTEXT_BODY)
    r = hpbench("-c", 4, "-d", 1, server.url("/plaintext"), tmp=tmp_path,
                json_out=True)
    assert r.rc == 0, r
    j = r.json
    assert j["errors_total"] == 0
    assert j["bytes_read"] >= (j["requests"] - 4) * size, \
        (j["bytes_read"], j["requests"], size)
    extra = j["bytes_read"] - j["requests"] * size
    assert extra <= 4 * size, (j["bytes_read"], j["requests"], size)


def test_warmup_discards_bytes(server, tmp_path):
    size = len(server.conn().request("GET", "/plaintext").raw_head) + \
        len(helpers.PLAINTEXT_BODY)
    r = hpbench("-c", 4, "-d", 1, "--warmup", 1, server.url("/plaintext"),
                tmp=tmp_path, json_out=True)
    assert r.rc == 0, r
    j = r.json
    assert j["warmup_s"] == 1
    assert j["errors_total"] == 0
    assert j["duration_s"] == pytest.approx(1.0, abs=1e-6)
    assert sum(s["requests"] for s in j["samples"]) <= j["requests"]
    assert abs(j["bytes_read"] - j["requests"] * size) <= 8 * size, \
        (j["bytes_read"], j["requests"], size)


# -- constant rate and coordinated omission ---------------------------------------

def test_constant_rate_holds(rate_run):
    j = rate_run.json
    assert_json_consistent(j)
    assert j["mode"] == "rate" and j["target_rate"] == 2000
    assert j["errors_total"] == 0, j["errors"]
    assert j["duration_s"] == pytest.approx(3.0, abs=1e-6)
    # The pacer never sends ahead of its schedule, whatever the load; behind
    # it, a loaded machine only loses the tail still in flight when the run
    # ends (lateness shows in the corrected latency, not in the count), so
    # the floor is loose: the schedule's own precision is test_rate.c's.
    assert 0.9 * 2000 <= j["requests_per_s"] <= 2000 * 1.001, \
        (j["requests_per_s"], j["samples"], rate_run.stdout)
    # Corrected latency starts at the intended send time, which is never
    # after the actual send: corrected >= uncorrected for every figure.
    c, u = j["latency"], j["latency_uncorrected"]
    assert c["count"] == u["count"] == j["requests"]
    for k in ("min", "p50", "p90", "p99", "max", "mean"):
        assert c[k] * (1 + 1 / 1024) >= u[k], (k, c, u)


@pytest.mark.time_limit(45)
def test_coordinated_omission_corrected(start_server, tmp_path):
    """A 1 s stall of the server shows in the corrected p99 (every request
    due during the stall waits for its end) but hardly in the uncorrected
    one (only the 10 requests in flight when it began wait)."""
    srv = start_server(workers=1)
    json_path = tmp_path / "co.json"
    proc = subprocess.Popen([HPBENCH, "-R", "1000", "-c", "10", "-d", "10",
                             "--json", str(json_path), srv.url("/plaintext")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(3.0)
        assert proc.poll() is None, proc.communicate()
        srv.signal(signal.SIGSTOP)
        try:
            time.sleep(1.0)
        finally:
            srv.signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=scaled(20))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, (out, err)
    j = json.loads(json_path.read_text())
    assert_json_consistent(j)
    assert j["errors_total"] == 0, j["errors"]
    c, u = j["latency"], j["latency_uncorrected"]
    # Requests due during the stall are sent late and are counted from
    # their due time: ~1000 of ~10000 above 0 s, 500 above 0.5 s, so the
    # top 1 % is around 0.9 s.
    assert c["p99"] >= 500000, (c, u)
    # Uncorrected: only the requests in flight at the stall (one per
    # connection, 0.1 %) took long once sent.
    assert u["p99"] < 250000, (c, u)
    assert u["p99"] * 3 <= c["p99"], (c, u)
    assert u["max"] >= 500000, u
    # The schedule catches up after the stall: never ahead of it, and
    # behind it only by what a loaded machine leaves in flight at the end
    # (the same loose floor as test_constant_rate_holds).
    assert 0.9 * 1000 <= j["requests_per_s"] <= 1000 * 1.001, j


# -- misbehaving servers -------------------------------------------------------------

def test_status_500_counted_as_status_errors(tmp_path):
    """Every response a 500: the report is complete, and the run fails."""
    with badservers.status_500_server(lifetime=scaled(30)) as bad:
        r = hpbench("-c", 2, "-d", 1, bad.url("/fail"), tmp=tmp_path,
                    json_out=True)
    assert r.rc == 1, r
    line = failure_line(r)
    assert "100.00% of requests failed" in line, line
    assert "status %d" % r.json["requests"] in line, line
    j = r.json
    assert_json_consistent(j)
    assert j["requests"] > 0
    assert j["errors"]["status"] == j["requests"] == j["status"]["5xx"], j
    assert j["errors_total"] == j["errors"]["status"], j["errors"]
    assert "Non-2xx/3xx responses: %d" % j["requests"] in r.stdout, r.stdout
    assert bad.requests >= j["requests"]


def test_close_mid_response_is_read_error(tmp_path):
    with badservers.truncating_server(lifetime=scaled(30)) as bad:
        r = hpbench("-c", 2, "-d", 1, bad.url("/cut"), tmp=tmp_path,
                    json_out=True, html_out=True)
    assert r.rc == 1, r
    assert "read" in failure_line(r)
    j = r.json
    assert_json_consistent(j)
    assert j["errors"]["read"] > 0, j["errors"]
    assert j["requests"] == 0, j
    assert j["errors"]["parse"] == 0 and j["errors"]["status"] == 0, j
    assert j["latency"]["count"] == 0 and j["percentiles"] == []
    assert j["client_cpu"]["per_1000_requests_s"] is None
    # hpbench reconnected after every close.
    assert bad.connections > 2
    # An empty run still makes a well-formed report.
    assert_html_wellformed(r.html)


def test_malformed_status_line_is_parse_error(tmp_path):
    with badservers.bad_status_line_server(lifetime=scaled(30)) as bad:
        r = hpbench("-c", 2, "-d", 1, bad.url("/x"), tmp=tmp_path,
                    json_out=True)
    assert r.rc == 1, r
    assert "parse" in failure_line(r)
    j = r.json
    assert_json_consistent(j)
    assert j["errors"]["parse"] > 0, j["errors"]
    assert j["requests"] == 0, j
    assert j["errors_total"] == j["errors"]["parse"], j["errors"]


# -- pass or fail: --max-errors and signals -------------------------------------------

def test_healthy_run_passes(closed_run):
    assert closed_run.rc == 0, closed_run
    assert closed_run.stderr == "", closed_run
    assert closed_run.json["errors_total"] == 0


def _every_other_500():
    """A responder answering 200 and 500 in turn: half the requests fail."""
    n = [0]

    def respond(req):
        n[0] += 1
        if n[0] % 2:
            return badservers.respond_500(req)
        return (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False)
    return respond


@pytest.mark.parametrize("max_errors, rc", [
    (None, 1), ("40", 1), ("60", 0), ("60%", 0), ("100", 0),
])
def test_max_errors_threshold(tmp_path, max_errors, rc):
    """Half the responses are 500s: the default 1 % and 40 % fail the run,
    60 % and 100 % let it pass; the report is the same either way."""
    args = ["-c", 1, "-d", 0.5]
    if max_errors is not None:
        args += ["--max-errors", max_errors]
    with badservers.BadServer(_every_other_500(), lifetime=scaled(30)) as bad:
        r = hpbench(*args, bad.url("/half"), tmp=tmp_path, json_out=True)
    j = r.json
    assert_json_consistent(j)
    assert j["requests"] > 10, j
    assert abs(j["status"]["5xx"] - j["status"]["2xx"]) <= 1, j["status"]
    assert r.rc == rc, r
    assert "Non-2xx/3xx responses" in r.stdout, r.stdout
    if rc:
        line = failure_line(r)
        assert "of requests failed" in line, line
        assert "more than --max-errors %s%%" % (max_errors or "1").rstrip("%") in line, line
    else:
        assert "failed" not in r.stderr, r


def test_500_passes_with_max_errors_100():
    with badservers.status_500_server(lifetime=scaled(30)) as bad:
        r = hpbench("-c", 2, "-d", 0.5, "--max-errors", 100, bad.url("/fail"))
    assert r.rc == 0, r
    assert r.stderr == "", r


@pytest.mark.time_limit(45)
@pytest.mark.parametrize("mode", [[], ["-R", "20000", "--pipeline", "64"]],
                         ids=["closed", "rate"])
def test_server_gone_mid_run_fails(start_server, mode):
    """The server goes away a third into the run: most of the run was
    served, but the end was not, and the exit status says so. In -R mode
    requests keep leaving on schedule, so writes hit reset connections:
    EPIPE errors, not a SIGPIPE that would kill hpbench without a report."""
    srv = start_server(workers=1)
    proc = subprocess.Popen([HPBENCH, "-c", "4", "-d", "3", *mode, srv.url("/plaintext")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit(scaled(10)) == 0, srv.stderr_tail()
        out, err = proc.communicate(timeout=scaled(20))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    err = err.decode()
    assert proc.returncode == 1, (out, err)
    last = err.splitlines()[-1]
    assert last.startswith("hpbench: failed: ") and "connect" in last, err
    # The report still came, with what was served before.
    assert re.search(r"^  [1-9]\d* requests in 3\.00s", out.decode(), re.M), out


def test_first_signal_ends_run_with_report(server, tmp_path):
    """SIGINT ends the measured part early: the report covers it and the
    run is judged like any other."""
    json_path = tmp_path / "early.json"
    proc = subprocess.Popen([HPBENCH, "-c", "2", "-d", "60", "--json", str(json_path),
                             server.url("/plaintext")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=scaled(10))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    err = err.decode()
    assert proc.returncode == 0, (out, err)
    assert re.match(r"hpbench: SIGINT: run stopped after \d+\.\d\d s of 60 s measured\n$",
                    err), err
    j = json.loads(json_path.read_text())
    assert_json_consistent(j)
    assert 0.5 < j["duration_s"] < 30, j["duration_s"]
    assert j["requests"] > 0 and j["errors_total"] == 0, j
    assert "%d requests in" % j["requests"] in out.decode()


F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, Python 3.10+


def test_second_signal_exits_at_once_unsuccessfully(server):
    """A second SIGTERM kills hpbench even while it is stuck writing its
    report (here: to a full pipe nobody reads), and never as a success."""
    proc = subprocess.Popen([HPBENCH, "-c", "2", "-d", "60", "--latency", "--html", "-",
                             server.url("/plaintext")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # One page of pipe: the HTML report (tens of KiB) cannot fit.
        fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, 4096)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        first = proc.stderr.readline().decode()
        assert first.startswith("hpbench: SIGTERM: run stopped after"), first
        time.sleep(0.3)
        assert proc.poll() is None, "hpbench was expected to block on its full stdout"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=scaled(5)) == -signal.SIGTERM
        rest = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
    assert rest.splitlines()[-1:] == \
        ["hpbench: second signal: exiting at once, without a report"], rest


# -- the JSON report against the documentation ------------------------------------

def _doc_key_tables():
    """The `| Key | Type | ...` tables of the JSON section, in order, as
    lists of (keys, type)."""
    text = DOC.read_text("utf-8")
    section = text.split("## The JSON report", 1)[1].split("\n## ", 1)[0]
    tables, cur = [], None
    for line in section.splitlines():
        if line.startswith("| Key | Type"):
            cur = []
            tables.append(cur)
        elif cur is not None and line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set(cells[0]) <= {"-", " "}:
                continue
            keys = re.findall(r"`([^`]+)`", cells[0])
            cur.append((keys, cells[1]))
        else:
            cur = None
    return tables


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and \
        math.isfinite(v)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "string or null": lambda v: v is None or isinstance(v, str),
    "integer": _is_int,
    "number": _is_num,
    "number or null": lambda v: v is None or _is_num(v),
    "object": lambda v: isinstance(v, dict),
    "object or null": lambda v: v is None or isinstance(v, dict),
    "array of string": lambda v: isinstance(v, list) and
    all(isinstance(x, str) for x in v),
    "array of object": lambda v: isinstance(v, list) and
    all(isinstance(x, dict) for x in v),
    "array of [number, number]": lambda v: isinstance(v, list) and
    all(isinstance(x, list) and len(x) == 2 and all(map(_is_num, x))
        for x in v),
    "array or null": lambda v: v is None or (
        isinstance(v, list) and all(isinstance(x, list) and len(x) == 2 and
                                    all(map(_is_num, x)) for x in v)),
}


def check_documented_fields(j):
    tables = _doc_key_tables()
    assert len(tables) == 4, "expected 4 key tables in %s" % DOC
    top, lat, cpu, sample = tables

    def check(obj, table, where):
        for keys, typ in table:
            assert typ in TYPE_CHECKS, "undocumented type %r in %s" % (typ, DOC)
            for k in keys:
                assert k in obj, "%s: missing key %r" % (where, k)
                assert TYPE_CHECKS[typ](obj[k]), \
                    "%s.%s = %r is not %s" % (where, k, obj[k], typ)

    check(j, top, "report")
    documented = {k for keys, _ in top for k in keys}
    assert set(j) == documented, set(j) ^ documented
    for k in j["errors"].values():
        assert _is_int(k)
    for k in j["status"].values():
        assert _is_int(k)
    check(j["latency"], lat, "latency")
    if j["latency_uncorrected"] is not None:
        check(j["latency_uncorrected"], lat, "latency_uncorrected")
    check(j["client_cpu"], cpu, "client_cpu")
    assert j["samples"], "no samples"
    for s in j["samples"]:
        check(s, sample, "samples[]")


def test_json_fields_closed(closed_run, server):
    j = closed_run.json
    check_documented_fields(j)
    assert_json_consistent(j)
    assert j["url"] == server.url("/plaintext")
    assert j["method"] == "GET" and j["headers"] == [] and j["body_file"] is None
    assert (j["connections"], j["threads"], j["pipeline"]) == (4, 1, 1)
    assert j["mode"] == "closed" and j["target_rate"] == 0
    assert j["warmup_s"] == 0 and j["timeout_s"] == 2
    assert j["latency_uncorrected"] is None
    assert j["percentiles_uncorrected"] is None
    assert j["errors_total"] == 0 and j["requests"] > 0


def test_json_fields_rate(rate_run):
    j = rate_run.json
    check_documented_fields(j)
    assert j["mode"] == "rate"
    assert isinstance(j["latency_uncorrected"], dict)
    assert isinstance(j["percentiles_uncorrected"], list)
    assert j["percentiles_uncorrected"]


def test_json_strings_escaped(server, tmp_path):
    """Headers and paths with quotes, backslashes and non-UTF-8 bytes still
    make valid JSON, with the strings as given."""
    hdr = 'X-Test: "quoted" \\ back\tslash \u00e9'
    url = server.url('/plaintext?q="a"\\b')
    # The server answers such a target 400 (RFC 9112 §3.2 has no '"' or
    # '\\' in a request-target): only the report's strings matter here.
    r = hpbench("-c", 1, "-d", 0.3, "--max-errors", 100, "-H", hdr, url, tmp=tmp_path,
                json_out=True, html_out=True)
    assert r.rc == 0, r
    assert r.json["headers"] == [hdr]
    assert r.json["url"] == url
    assert_html_wellformed(r.html)


# -- HTML ----------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
        "meta", "source", "track", "wbr"}


class _TagChecker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.errors = []
        self.tags = []
        self.doctype = None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append("end tag for void <%s> at %s" % (tag, self.getpos()))
        elif not self.stack or self.stack[-1][0] != tag:
            self.errors.append("</%s> at %s closes %s" % (
                tag, self.getpos(), self.stack[-1] if self.stack else "nothing"))
        else:
            self.stack.pop()


def assert_html_wellformed(text):
    assert text is not None, "no HTML written"
    p = _TagChecker()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors[:5]
    assert not p.stack, "unclosed: %r" % p.stack
    assert p.doctype and p.doctype.lower() == "doctype html", p.doctype
    names = [t for t, _ in p.tags]
    assert names[0] == "html" and "head" in names and "body" in names
    # Self-contained: no script, no external resource.
    for tag, attrs in p.tags:
        assert tag not in ("script", "link", "img", "iframe", "object"), tag
        assert "src" not in attrs and "href" not in attrs, (tag, attrs)
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
    svgs = re.findall(r"<svg\b.*?</svg>", text, re.S)
    assert len(svgs) == 2, len(svgs)
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg"), root.tag
    return svgs


def _polylines(svg):
    root = ET.fromstring(svg)
    return [e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "polyline"]


def test_html_closed(closed_run):
    svgs = assert_html_wellformed(closed_run.html)
    # Latency chart: one series; timeline: requests only (no errors).
    assert len(_polylines(svgs[0])) == 1
    assert len(_polylines(svgs[1])) == 1
    for pl in _polylines(svgs[0]) + _polylines(svgs[1]):
        pts = [tuple(map(float, p.split(","))) for p in pl.get("points").split()]
        assert pts and all(math.isfinite(x) and math.isfinite(y)
                           for x, y in pts)
    assert "closed loop" in closed_run.html


def test_html_rate(rate_run):
    svgs = assert_html_wellformed(rate_run.html)
    assert len(_polylines(svgs[0])) == 2  # corrected and uncorrected
    assert "constant rate, 2000 req/s" in rate_run.html


# -- text output: --latency -----------------------------------------------------------

HDR_HEADER = "Value   Percentile   TotalCount 1/(1-Percentile)"
ROW = re.compile(r"^\s+([0-9.]+)\s+([0-9.]+)\s+(\d+)\s+([0-9.]+|inf)$")


def parse_distributions(text):
    """The HdrHistogram listings in hpbench's stdout: a list of dicts with
    rows [(value_ms, fraction, count)], mean, max, total."""
    lines = text.splitlines()
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != HDR_HEADER:
            i += 1
            continue
        i += 1
        assert lines[i].strip() == "", lines[i]
        i += 1
        rows = []
        while i < len(lines) and not lines[i].startswith("#["):
            m = ROW.match(lines[i])
            assert m, "bad distribution row %r" % lines[i]
            rows.append((float(m.group(1)), float(m.group(2)), int(m.group(3))))
            i += 1
        foot = lines[i:i + 3]
        assert len(foot) == 3, foot
        m1 = re.match(r"#\[Mean\s+=\s+([0-9.]+), StdDeviation\s+=\s+([0-9.]+)\]$",
                      foot[0])
        m2 = re.match(r"#\[Max\s+=\s+([0-9.]+), Total count\s+=\s+(\d+)\]$",
                      foot[1])
        m3 = re.match(r"#\[Buckets\s+=\s+(\d+), SubBuckets\s+=\s+(\d+)\]$",
                      foot[2])
        assert m1 and m2 and m3, foot
        out.append({"rows": rows, "mean": float(m1.group(1)),
                    "max": float(m2.group(1)), "total": int(m2.group(2))})
        i += 3
    return out


def check_distribution(d, lat):
    rows = d["rows"]
    assert rows, d
    assert d["total"] == lat["count"]
    assert d["max"] == pytest.approx(lat["max"] / 1000, abs=0.0015)
    assert rows[0][1] == 0 and rows[-1][1] == 1.0 and rows[-1][2] == lat["count"]
    for a, b in zip(rows, rows[1:]):
        assert a[0] <= b[0] and a[1] < b[1] and a[2] <= b[2], (a, b)


def test_latency_distribution_closed(closed_run):
    out = closed_run.stdout
    assert "Latency distribution (HdrHistogram)" in out
    dists = parse_distributions(out)
    assert len(dists) == 1, out
    check_distribution(dists[0], closed_run.json["latency"])
    # The text summary: requests line and the error kinds.
    assert "%d requests in 1.00s" % closed_run.json["requests"] in out
    assert re.search(r"Errors: connect 0, read 0, write 0, timeout 0, "
                     r"status 0, parse 0", out), out
    assert re.search(r"^Requests/sec: +[0-9.]+$", out, re.M)


def test_latency_distribution_rate(rate_run):
    out = rate_run.stdout
    assert out.index("Corrected (from the intended send time):") < \
        out.index("Uncorrected (from the actual send time):")
    dists = parse_distributions(out)
    assert len(dists) == 2, out
    check_distribution(dists[0], rate_run.json["latency"])
    check_distribution(dists[1], rate_run.json["latency_uncorrected"])
    assert "Latency (corrected)" in out and "Latency (uncorrected)" in out


def test_no_distribution_without_flag(server, tmp_path):
    r = hpbench("-c", 1, "-d", 0.3, server.url("/plaintext"))
    assert r.rc == 0, r
    assert HDR_HEADER not in r.stdout and "#[Mean" not in r.stdout


# -- methods and bodies ----------------------------------------------------------------

def test_head_method(server, tmp_path):
    r = hpbench("-c", 4, "-d", 1, "-m", "HEAD", server.url("/plaintext"),
                tmp=tmp_path, json_out=True)
    assert r.rc == 0, r
    j = r.json
    assert_json_consistent(j)
    assert j["method"] == "HEAD"
    assert j["errors_total"] == 0, j["errors"]
    assert j["requests"] > 100 and j["status"]["2xx"] == j["requests"]
    # Heads only: the announced 13-byte body never comes.
    head = len(server.conn().request("HEAD", "/plaintext").raw_head)
    assert j["bytes_read"] >= (j["requests"] - 4) * head, (j, head)
    assert j["bytes_read"] / j["requests"] < head + 3, (j, head)


def test_post_body_to_echo(server, tmp_path):
    body = bytes((i * 31 + 7) & 0xFF for i in range(3000))
    f = tmp_path / "body.bin"
    f.write_bytes(body)
    r = hpbench("-c", 4, "-d", 1, "-m", "POST", "--body", f,
                "-H", "Content-Type: application/octet-stream",
                server.url("/echo"), tmp=tmp_path, json_out=True)
    assert r.rc == 0, r
    j = r.json
    assert_json_consistent(j)
    assert j["method"] == "POST" and j["body_file"] == str(f)
    assert j["headers"] == ["Content-Type: application/octet-stream"]
    assert j["errors_total"] == 0, j["errors"]
    assert j["requests"] > 100 and j["status"]["2xx"] == j["requests"]
    # The echo came back: every response carries the body.
    assert j["bytes_read"] >= (j["requests"] - 8) * len(body), j


# -- command line ---------------------------------------------------------------------

def assert_one_line_error(r, code=2):
    assert r.rc == code, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r
    assert lines[0].startswith("hpbench: "), r
    return lines[0]


BAD_ARGS = [
    ["--bogus"],
    ["-x"],
    ["-c", "0"],
    ["-c", "many"],
    ["-t", "0"],
    ["-d", "abc"],
    ["-d", "0"],
    ["-R", "0"],
    ["-R", "fast"],
    ["--pipeline", "0"],
    ["--timeout", "0"],
    ["--warmup", "-1"],
    ["-H", "no colon"],
    ["-m", "get"],
    ["--body", "/nonexistent/hpbench-body"],
    ["--max-errors", "101"],
    ["--max-errors", "-1"],
    ["--max-errors", "lots"],
]


@pytest.mark.parametrize("bad", BAD_ARGS, ids=lambda a: " ".join(a))
def test_bad_flag(server, bad):
    # A valid, reachable URL and a short duration: if the flag were wrongly
    # accepted the run would succeed (exit 0) instead of hiding behind a
    # connection error.
    r = hpbench("-d", "0.5", *bad, server.url("/plaintext"), budget=5)
    line = assert_one_line_error(r)
    assert "cannot connect" not in line
    assert r.stdout == "", r


@pytest.mark.parametrize("args", [
    [],                                              # no URL
    ["URL", "http://127.0.0.1:1/"],                  # two URLs
    ["URL", "-c"],                                   # flag without value
    ["ftp://127.0.0.1/"],
    ["http://127.0.0.1:99999/"],
    ["http://:80/"],
], ids=["no-url", "two-urls", "missing-value", "ftp", "bad-port", "no-host"])
def test_bad_command_line(server, args):
    args = [server.url("/plaintext") if a == "URL" else a for a in args]
    r = hpbench("-d", "0.5", *args, budget=5)
    assert_one_line_error(r)
    assert r.stdout == "", r


def test_unreachable_url(tmp_path):
    # A 60 s run that cannot connect gives up at once: well within the
    # generous 15 s, which a run that went on trying would exceed.
    port = helpers.free_port()
    r = hpbench("-d", 60, "http://127.0.0.1:%d/" % port, tmp=tmp_path,
                json_out=True, budget=20)
    line = assert_one_line_error(r)
    assert "cannot connect" in line, line
    assert r.elapsed < scaled(15), r.elapsed
    assert r.json is None  # no report for a run that never started


def test_https_refused(server):
    r = hpbench("-d", 0.5, "https://127.0.0.1:%d/" % server.port, budget=5)
    line = assert_one_line_error(r)
    assert "https" in line


def test_more_threads_than_connections_refused(server):
    r = hpbench("-t", 4, "-c", 2, "-d", 0.5, server.url("/plaintext"),
                budget=5)
    line = assert_one_line_error(r)
    assert "-t" in line


def _documented_flags():
    text = DOC.read_text("utf-8")
    section = text.split("## Options", 1)[1].split("\n## ", 1)[0]
    flags = re.findall(r"^\| `(-[^`]+)` \|", section, re.M)
    assert len(flags) >= 10, flags
    return flags


def test_help_mentions_every_flag():
    r = hpbench("--help", budget=5)
    assert r.rc == 0, r
    assert r.stderr == ""
    assert r.stdout.startswith("usage: hpbench")
    for flag in _documented_flags():
        assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), r.stdout), \
            "--help does not mention %s" % flag
    # -h is the same.
    r2 = hpbench("-h", budget=5)
    assert r2.rc == 0 and r2.stdout == r.stdout
