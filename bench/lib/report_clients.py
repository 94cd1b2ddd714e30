#!/usr/bin/env python3
"""Tables and targets of bench/hpbench-vs-wrk.sh (client cost per request).

Input: lines `<server> <client> <mode> key=value ...` written by the script
(mode plain or pipe for a measured run; plain-strace, pipe-perf, ... for the
syscall-counting runs) and `meta key=value ...`. Per-run figures are derived
first (client CPU seconds = rusage user+sys; server CPU = (utime+stime
ticks) / CLK_TCK), then the median of each figure over the runs is taken,
column by column. The shared helpers come from report.py.
"""
import sys
from collections import defaultdict

from report import fmt, med, pct, ratio, table

TARGET_CLIENT_RATIO = 1.5       # hpbench req per client CPU-s >= 1.5 x wrk's
TARGET_SYSCALLS = 2.2           # hpbench syscalls per request, not pipelined
MODES = ("plain", "pipe")
CLIENTS = ("wrk", "hpbench")


def load(path):
    runs = defaultdict(list)        # (server, client, mode) -> [kv]
    sysc = {}                       # (server, client, mode, tool) -> calls/req
    servers, meta = [], {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "meta":
                meta.update(p.split("=", 1) for p in parts[1:])
                continue
            if len(parts) < 3:
                continue
            server, client, mode = parts[:3]
            kv = dict(p.split("=", 1) for p in parts[3:])
            if server not in servers:
                servers.append(server)
            if "-" in mode:
                mode, tool = mode.split("-", 1)
                if int(kv.get("requests", 0)) > 0:
                    sysc[(server, client, mode, tool)] = int(kv["calls"]) / int(kv["requests"])
            else:
                runs[(server, client, mode)].append(kv)
    return servers, runs, sysc, meta


def derive(kv, clk):
    req = int(kv["requests"])
    ccpu = float(kv["cu"]) + float(kv["cs"])
    scpu = (int(kv["ut"]) + int(kv["st"])) / clk
    wall = float(kv["wall"])
    if req <= 0:
        return None
    selfcpu = kv.get("selfcpu")
    return {
        "rps": float(kv["rps"]),
        "ccpu": ccpu,
        "ccpu_user": float(kv["cu"]),
        "ccpu_sys": float(kv["cs"]),
        "per_ccpu": req / ccpu if ccpu > 0 else None,
        "c_us": ccpu * 1e6 / req,
        "s_us": scpu * 1e6 / req,
        "s_util": scpu / wall * 100.0 if wall > 0 else None,
        "c_util": ccpu / wall * 100.0 if wall > 0 else None,
        "other0": pct(int(kv.get("c0busy", 0)) - int(kv["ut"]) - int(kv["st"]), kv.get("c0total")),
        # CPU 1 busy beyond the client itself: other processes on its CPU
        "other1": pct(int(kv.get("c1busy", 0)) - round(ccpu * clk), kv.get("c1total")),
        "selfcpu": None if selfcpu in (None, "-") else float(selfcpu),
        "errors": int(kv.get("errors", 0)),
    }


def bound(s_util, c_util):
    if s_util is not None and s_util >= 90:
        return "server"
    if c_util is not None and c_util >= 90:
        return "client"
    return "neither"


def main():
    servers, runs, sysc, meta = load(sys.argv[1])
    clk = float(meta.get("clk_tck", 100))
    depth = meta.get("depth", "16")
    keys = ("rps", "ccpu", "ccpu_user", "ccpu_sys", "per_ccpu", "c_us", "s_us",
            "s_util", "c_util", "other0", "other1", "selfcpu")
    fig = {}
    for k, v in runs.items():
        d = [x for x in (derive(kv, clk) for kv in v) if x]
        if not d:
            continue
        f = {key: med(d, key) for key in keys}
        f["n"] = len(d)
        f["errors"] = sum(x["errors"] for x in d)
        f["rps_runs"] = [x["rps"] for x in d]
        fig[k] = f

    print("Per server, client and mode (medians over %s run(s) of %s s, %s connections, one client thread;"
          % (meta.get("runs", "?"), meta.get("duration", "?"), meta.get("conns", "?")))
    print("pipe = %s requests in flight per connection)" % depth)
    print()
    header = ["server", "client", "mode", "req/s", "client CPU s", "client user/sys s",
              "req/client CPU-s", "client us/req", "srv CPU us/req", "client sys/req strace",
              "client sys/req perf", "srv CPU%", "client CPU%", "limited by"]
    body = []
    for s in servers:
        for m in MODES:
            for c in CLIENTS:
                f = fig.get((s, c, m))
                if not f:
                    continue
                body.append([s, c, m, fmt(f["rps"]), fmt(f["ccpu"], "{:.2f}"),
                             "%.2f/%.2f" % (f["ccpu_user"], f["ccpu_sys"]),
                             fmt(f["per_ccpu"]), fmt(f["c_us"], "{:.2f}"), fmt(f["s_us"], "{:.2f}"),
                             fmt(sysc.get((s, c, m, "strace")), "{:.2f}"),
                             fmt(sysc.get((s, c, m, "perf")), "{:.2f}"),
                             fmt(f["s_util"], "{:.0f}%"), fmt(f["c_util"], "{:.0f}%"),
                             bound(f["s_util"], f["c_util"])])
    print(table(header, body))
    print()
    print("req/s, requests: the client's own report (wrk's summary, hpbench --json); client CPU: rusage")
    print("  (user+sys) of the client process over its whole run; srv CPU: utime+stime of the server tree")
    print("  (/proc) over the same interval; sys/req: syscalls of the client / its requests, from a separate")
    print("  short run under strace -c -f (slows the client a lot, which changes its batching) and under")
    print("  perf stat -e raw_syscalls:sys_enter (nearly unperturbed);")
    print("  limited by: server if srv CPU% >= 90, client if client CPU% >= 90, else neither.")
    print()

    print("hpbench / wrk")
    print()
    header = ["server", "mode", "req/s", "req/client CPU-s", "client us/req", "srv CPU us/req"]
    body = []
    for s in servers:
        for m in MODES:
            h, w = fig.get((s, "hpbench", m)), fig.get((s, "wrk", m))
            if not h or not w:
                continue
            body.append([s, m] + [fmt(ratio(h[k], w[k]), "{:.2f}x")
                                  for k in ("rps", "per_ccpu", "c_us", "s_us")])
    print(table(header, body))
    print()

    print("Detail")
    print()
    header = ["server", "client", "mode", "req/s per run", "hpbench's own CPU s",
              "CPU0 other%", "CPU1 other%", "errors"]
    body = []
    for s in servers:
        for m in MODES:
            for c in CLIENTS:
                f = fig.get((s, c, m))
                if not f:
                    continue
                body.append([s, c, m, " ".join(fmt(v) for v in f["rps_runs"]),
                             fmt(f["selfcpu"], "{:.2f}"), fmt(f["other0"], "{:.0f}%"),
                             fmt(f["other1"], "{:.0f}%"), f["errors"]])
    print(table(header, body))
    print()
    print("hpbench's own CPU: its client_cpu figure (measured part only, connection set-up excluded);")
    print("CPU0/CPU1 other%: busy time of the server / client CPU not spent in the server / client")
    print("  (/proc/stat): other processes. On loopback part of the peer's TCP work runs in softirq on")
    print("  either CPU, so a few % is normal; far more means the machine was busy.")
    noisy = sorted({s for (s, _, _), f in fig.items()
                    if (f["other0"] or 0) > 10 or (f["other1"] or 0) > 10})
    if noisy:
        worst = max(max(f["other0"] or 0, f["other1"] or 0) for f in fig.values())
        print("WARNING: other processes used up to %.0f%% of a benchmark CPU during the runs: req/s are"
              % worst)
        print("         unreliable, CPU per request less affected. Rerun on a quiet machine.")
    print()

    print("Targets (hpbench)")
    print()
    checks = []
    for s in servers:
        for m in MODES:
            h, w = fig.get((s, "hpbench", m)), fig.get((s, "wrk", m))
            r = ratio(h and h["per_ccpu"], w and w["per_ccpu"])
            checks.append(("%s %s: req per client CPU-s >= %.1fx wrk's"
                           % (s, "pipelined x%s" % depth if m == "pipe" else "non-pipelined",
                              TARGET_CLIENT_RATIO),
                           None if r is None else r >= TARGET_CLIENT_RATIO,
                           "hpbench %s, wrk %s: %s" % (fmt(h and h["per_ccpu"]), fmt(w and w["per_ccpu"]),
                                                       fmt(r, "{:.2f}x"))))
        v = sysc.get((s, "hpbench", "plain", "strace"))
        p = sysc.get((s, "hpbench", "plain", "perf"))
        checks.append(("%s non-pipelined: hpbench syscalls per request <= %.1f (strace)"
                       % (s, TARGET_SYSCALLS),
                       None if v is None else v <= TARGET_SYSCALLS,
                       "%s (perf stat: %s; wrk: %s strace, %s perf)" % (
                           fmt(v, "{:.2f}"), fmt(p, "{:.2f}"),
                           fmt(sysc.get((s, "wrk", "plain", "strace")), "{:.2f}"),
                           fmt(sysc.get((s, "wrk", "plain", "perf")), "{:.2f}"))))
    for name, ok, detail in checks:
        verdict = "NOT MEASURED" if ok is None else ("MET" if ok else "NOT MET")
        print("  %-13s %s -- %s" % (verdict, name, detail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
