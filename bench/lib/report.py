#!/usr/bin/env python3
"""Turn the raw measurements of bench/http.sh into the results tables.

Input: a file of lines `<server> <kind> key=value ...` written by
bench/http.sh (kinds: meta, plain, pipe, rate, strace, idle, cg, static;
static lines carry size=<file bytes>). Per-run figures
are derived first (CPU seconds = (utime+stime ticks) / CLK_TCK, etc.), then
the median of each figure over the runs is reported. Prints the main table,
a detail table, and the evaluation of the hotpath targets, for the
/plaintext measurements; then the static-file table and its targets. Each
part only when the run measured it.
"""
import statistics
import sys
from collections import defaultdict

TARGET_CPU_RATIO = 0.6          # hotpath CPU/request <= 0.6 x nginx
TARGET_PIPE_RATE = 1.5e6        # pipelined requests per server CPU-second
TARGET_PIPE_RATIO = 10.0        # ... and >= 10 x nginx
TARGET_IDLE_BYTES = 256         # RSS bytes per idle keep-alive connection
TARGET_STATIC_CPU_RATIO = 0.9   # static files: hotpath CPU/MB <= 0.9 x nginx


def load(path):
    rows = defaultdict(lambda: defaultdict(list))
    order = []
    meta = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            server, kind = parts[0], parts[1]
            if server == "meta":
                # `meta key=value ...`: no kind field
                meta.update(p.split("=", 1) for p in parts[1:])
                continue
            kv = dict(p.split("=", 1) for p in parts[2:])
            if server not in order:
                order.append(server)
            rows[server][kind].append(kv)
    return order, rows, meta


def wrk_runs(runs, clk):
    """Per-run derived figures of wrk runs (plain or pipe)."""
    out = []
    for r in runs:
        req = int(r["requests"])
        ut, st = int(r["ut"]), int(r["st"])
        cpu = (ut + st) / clk
        secs = float(r["secs"])
        if req <= 0 or cpu <= 0:
            continue
        out.append({
            "rps": float(r["rps"]),
            "cpu_us": cpu * 1e6 / req,
            "user_us": ut / clk * 1e6 / req,
            "sys_us": st / clk * 1e6 / req,
            "per_cpu_s": req / cpu,
            "util": cpu / secs * 100.0,
            "errors": int(r.get("non2xx", 0)) + int(r.get("sockerr", 0)),
            # CPU 0 busy time not spent in the server: other load (noise)
            # (softirq work mostly runs inside the server's syscalls and is
            # already part of its utime+stime, so it is not subtracted)
            "other0": pct(int(r.get("c0busy", 0)) - ut - st, r.get("c0total")),
            # the client's (wrk's) own CPU time over wall time
            "busy1": float(r["wrkcpu"]) * 100.0 / float(r["wall"]) if "wrkcpu" in r else None,
        })
    return out


def rate_runs(runs, clk):
    """Per-run figures of constant-rate hpbench runs (latencies in us)."""
    out = []
    for r in runs:
        def num(k):
            v = r.get(k, "-")
            return None if v == "-" else float(v)
        secs = num("secs") or 0
        cpu = (int(r["ut"]) + int(r["st"])) / clk
        req = num("requests") or 0
        out.append({
            "target": float(r["target"]), "rps": num("rps"),
            "p50": num("p50"), "p99": num("p99"), "p999": num("p999"),
            "up50": num("up50"), "up99": num("up99"), "max": num("max"),
            "errors": int(num("errors") or 0),
            "util": cpu / secs * 100.0 if secs > 0 else None,
            "cpu_us": cpu * 1e6 / req if req > 0 else None,
            "other0": pct(int(r.get("c0busy", 0)) - int(r["ut"]) - int(r["st"]), r.get("c0total")),
        })
    return out


def ms(v):
    return "-" if v is None else "%.3f" % (v / 1000.0)


def pct(part, total):
    total = int(total or 0)
    return None if total <= 0 else max(0.0, part * 100.0 / total)


def bound(util, busy1):
    """Which side limited the run: the server's CPU, the client's CPU, or
    neither (then other load or latency did, and req/s is not meaningful)."""
    if util is None:
        return "-"
    if util >= 90:
        return "server"
    if busy1 is not None and busy1 >= 90:
        return "client"
    return "neither"


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec="{:,.0f}"):
    return "-" if v is None else spec.format(v)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def table(header, body):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = []
    for i, row in enumerate([header] + body):
        cells = [str(c).ljust(w) if j == 0 else str(c).rjust(w)
                 for j, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plaintext_report(order, rows, meta, clk):
    """The /plaintext tables (plain, pipelined, constant rate, syscalls,
    idle connections, callgrind) and their targets."""
    fig = {}
    for s in order:
        d = rows[s]
        plain = wrk_runs(d.get("plain", []), clk)
        pipe = wrk_runs(d.get("pipe", []), clk)
        f = {k: med(plain, k) for k in ("rps", "cpu_us", "user_us", "sys_us", "per_cpu_s", "util", "other0", "busy1")}
        f.update({"p_" + k: med(pipe, k) for k in ("rps", "cpu_us", "user_us", "sys_us", "per_cpu_s", "util", "other0", "busy1")})
        f["rps_runs"] = [r["rps"] for r in plain]
        f["p_rps_runs"] = [r["rps"] for r in pipe]
        f["errors"] = sum(r["errors"] for r in plain + pipe)
        f["idle"] = None
        f["idle_note"] = ""
        for r in d.get("idle", []):
            if "bytes_per_conn" in r:
                f["idle"] = float(r["bytes_per_conn"])
            if r.get("opened") != r.get("count") or r.get("closed_by_server", "0") != "0":
                f["idle_note"] = "(%s of %s opened, %s closed by server)" % (
                    r.get("opened"), r.get("count"), r.get("closed_by_server"))
        f["sys_req"] = None
        for r in d.get("strace", []):
            if int(r.get("requests", 0)) > 0:
                f["sys_req"] = int(r["calls"]) / int(r["requests"])
        for depth, key in (("1", "ir"), (None, "p_ir")):
            cg = [r for r in d.get("cg", []) if (r["depth"] == "1") == (depth == "1")]
            f[key] = None
            f[key + "_depth"] = cg[0]["depth"] if cg else None
            if len(cg) >= 2:
                a, b = sorted(cg, key=lambda r: int(r["n"]))[:2]
                dn = int(b["n"]) - int(a["n"])
                if dn > 0:
                    f[key] = (int(b["ir"]) - int(a["ir"])) / dn
        fig[s] = f

    ng = fig.get("nginx")
    rate = {s: rate_runs(rows[s].get("rate", []), clk) for s in order}
    rate = {s: {k: med(v, k) for k in v[0]} | {"n": len(v), "errs": sum(r["errors"] for r in v)}
            for s, v in rate.items() if v}
    print("Main table (medians over %s run(s); CPU = server process tree utime+stime from /proc)" % meta.get("runs", "?"))
    print()
    header = ["server", "req/s", "CPU us/req", "user us/req", "sys us/req", "req/CPU-s",
              "pipe req/s", "pipe req/CPU-s", "idle B/conn", "syscalls/req",
              "CPU/req vs nginx", "pipe req/CPU-s vs nginx"]
    body = []
    for s in order:
        f = fig[s]
        body.append([s, fmt(f["rps"]), fmt(f["cpu_us"], "{:.2f}"), fmt(f["user_us"], "{:.2f}"),
                     fmt(f["sys_us"], "{:.2f}"), fmt(f["per_cpu_s"]), fmt(f["p_rps"]),
                     fmt(f["p_per_cpu_s"]), fmt(f["idle"]), fmt(f["sys_req"], "{:.2f}"),
                     fmt(ratio(f["cpu_us"], ng and ng["cpu_us"]), "{:.2f}x"),
                     fmt(ratio(f["p_per_cpu_s"], ng and ng["p_per_cpu_s"]), "{:.2f}x")])
    print(table(header, body))
    print()
    if rate:
        print("Constant rate (hpbench -R %s req/s%s, %s run(s), medians; latencies in ms; corrected ="
              % (fmt(float(meta.get("rate", 0))),
                 ", %s of nginx's median plain req/s" % meta["rate_src"].replace("nginx", "")
                 if meta.get("rate_src", "").endswith("nginx") else "",
                 max(v["n"] for v in rate.values())))
        print("from the intended send time, uncorrected = from the actual send time)")
        print()
        header = ["server", "achieved req/s", "p50", "p99", "p99.9", "uncorr. p50", "uncorr. p99",
                  "max", "srv CPU%", "CPU us/req", "srv CPU other%", "errors"]
        body = [[s, fmt(f["rps"]), ms(f["p50"]), ms(f["p99"]), ms(f["p999"]), ms(f["up50"]),
                 ms(f["up99"]), ms(f["max"]), fmt(f["util"], "{:.0f}%"), fmt(f["cpu_us"], "{:.2f}"),
                 fmt(f["other0"], "{:.0f}%"), f["errs"]] for s, f in rate.items()]
        print(table(header, body))
        short = [s for s, f in rate.items() if f["rps"] is not None and f["rps"] < 0.98 * f["target"]]
        if short:
            print("WARNING: the rate was not sustained for %s (achieved < 98%% of the target):"
                  " the corrected latencies grow with the run's length." % ", ".join(short))
        print()
    print("Detail")
    print()
    header = ["server", "srv CPU% plain/pipe", "client CPU% plain/pipe", "srv CPU other% plain/pipe",
              "limited by plain/pipe",
              "pipe CPU us/req", "pipe user/sys us",
              "Ir/req", "Ir/req pipe", "req/s per run", "pipe req/s per run", "errors"]
    body = []
    for s in order:
        f = fig[s]
        body.append([s, fmt(f["util"], "{:.0f}%") + "/" + fmt(f["p_util"], "{:.0f}%"),
                     fmt(f["busy1"], "{:.0f}%") + "/" + fmt(f["p_busy1"], "{:.0f}%"),
                     fmt(f["other0"], "{:.0f}%") + "/" + fmt(f["p_other0"], "{:.0f}%"),
                     bound(f["util"], f["busy1"]) + "/" + bound(f["p_util"], f["p_busy1"]),
                     fmt(f["p_cpu_us"], "{:.3f}"),
                     "-" if f["p_user_us"] is None else "%.3f/%.3f" % (f["p_user_us"], f["p_sys_us"]),
                     fmt(f["ir"]), fmt(f["p_ir"]),
                     " ".join(fmt(v) for v in f["rps_runs"]) or "-",
                     " ".join(fmt(v) for v in f["p_rps_runs"]) or "-",
                     f["errors"]])
    print(table(header, body))
    print()
    print("srv CPU%: server CPU time / wall time; client CPU%: wrk's own CPU time / wall time;")
    print("srv CPU other%: busy time of the server CPU not spent in the server (/proc/stat): other processes,")
    print("  i.e. noise from anything else running;")
    print("limited by: server if srv CPU% >= 90, client if client CPU% >= 90, else neither.")
    print("CPU-per-request figures stay fair when the client saturates first; req/s do not.")
    noisy = [(s, max(v for v in (fig[s]["other0"], fig[s]["p_other0"]) if v is not None))
             for s in order if fig[s]["other0"] is not None or fig[s]["p_other0"] is not None]
    noisy = [(s, v) for s, v in noisy if v > 10]
    if noisy:
        print("WARNING: other processes used up to %s of the server CPU during the runs; req/s are"
              % ", ".join("%.0f%% (%s)" % (v, s) for s, v in noisy))
        print("         unreliable, CPU per request less affected. Rerun on a quiet machine.")
    for s in order:
        if fig[s]["idle_note"]:
            print("note: %s idle connections %s" % (s, fig[s]["idle_note"]))
    print()
    print("Targets (hotpath)")
    print()
    hp = fig.get("hotpath")
    checks = []
    if hp is None:
        print("  PENDING: hotpath was not measured in this run")
        return 0
    r = ratio(hp["cpu_us"], ng and ng["cpu_us"])
    checks.append(("non-pipelined server CPU per request <= %.1fx nginx" % TARGET_CPU_RATIO,
                   None if r is None else r <= TARGET_CPU_RATIO,
                   "hotpath %s us/req, nginx %s us/req: %s" % (
                       fmt(hp["cpu_us"], "{:.2f}"), fmt(ng and ng["cpu_us"], "{:.2f}"),
                       fmt(r, "{:.2f}x"))))
    v = hp["p_per_cpu_s"]
    checks.append(("pipelined >= %s req per server CPU-second" % fmt(TARGET_PIPE_RATE),
                   None if v is None else v >= TARGET_PIPE_RATE,
                   "hotpath %s req/CPU-s" % fmt(v)))
    r = ratio(v, ng and ng["p_per_cpu_s"])
    checks.append(("pipelined req per CPU-second >= %.0fx nginx" % TARGET_PIPE_RATIO,
                   None if r is None else r >= TARGET_PIPE_RATIO,
                   "hotpath %s, nginx %s: %s" % (fmt(v), fmt(ng and ng["p_per_cpu_s"]),
                                                 fmt(r, "{:.2f}x"))))
    v = hp["idle"]
    checks.append(("idle keep-alive connection <= %d bytes RSS" % TARGET_IDLE_BYTES,
                   None if v is None else v <= TARGET_IDLE_BYTES,
                   "hotpath %s bytes/conn %s" % (fmt(v), hp["idle_note"])))
    for name, ok, detail in checks:
        verdict = "NOT MEASURED" if ok is None else ("MET" if ok else "NOT MET")
        print("  %-13s %s -- %s" % (verdict, name, detail))
    return 0


def size_label(n):
    for unit, mult in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult and n % mult == 0:
            return "%d %s" % (n // mult, unit)
    return "%d B" % n


def static_runs(runs, clk):
    """Per-run figures of the static-file wrk runs. MB = 10^6 bytes of
    response body (file bytes: requests x file size; headers not counted)."""
    out = []
    for r in runs:
        got = wrk_runs([r], clk)        # empty for a run without requests or CPU
        if not got:
            continue
        f = got[0]
        out.append(f)
        req, size, secs = int(r["requests"]), int(r["size"]), float(r["secs"])
        mb = req * size / 1e6
        f["mbps"] = mb / secs
        f["cpu_ms_mb"] = (int(r["ut"]) + int(r["st"])) / clk * 1e3 / mb
        f["user_ms_mb"] = int(r["ut"]) / clk * 1e3 / mb
        f["sys_ms_mb"] = int(r["st"]) / clk * 1e3 / mb
        # all busy time of the server's CPU, the server's own included:
        # loopback TCP work done in softirq context outside the server's
        # syscalls (ksoftirqd, ACK-clocked transmits) is not in its
        # utime+stime but is still spent on its CPU
        f["cpu0_ms_mb"] = int(r["c0busy"]) / clk * 1e3 / mb if "c0busy" in r else None
        # irq+softirq share of the client's CPU: where the loopback work
        # lands when it is not done on the server's CPU
        f["irq1"] = pct(int(r.get("c1irq", 0)), r.get("c1total"))
    return out


def static_report(order, rows, meta, clk):
    """The static-file table (one row per file size and server) and the
    static-file targets."""
    keys = ("rps", "mbps", "cpu_us", "cpu_ms_mb", "user_ms_mb", "sys_ms_mb", "cpu0_ms_mb", "util",
            "busy1", "other0", "irq1")
    fig = {}            # (size, server) -> medians
    sizes = []
    for s in order:
        by_size = defaultdict(list)
        for r in rows[s].get("static", []):
            by_size[int(r["size"])].append(r)
        for size, runs in by_size.items():
            if size not in sizes:
                sizes.append(size)
            per = static_runs(runs, clk)
            f = {k: med(per, k) for k in keys}
            f["rps_runs"] = [r["rps"] for r in per]
            f["errors"] = sum(r["errors"] for r in per)
            fig[(size, s)] = f
    sizes.sort()
    print("Static files (wrk -t1 -c%s, keep-alive; medians over %s run(s); MB = 10^6 bytes of file"
          % (meta.get("conns", "?"), meta.get("runs", "?")))
    print("data; CPU = server process tree utime+stime from /proc)")
    print()
    header = ["size", "server", "req/s", "MB/s", "CPU us/req", "CPU ms/MB", "user ms/MB",
              "sys ms/MB", "CPU0 ms/MB", "srv CPU%", "CPU0 other%", "client CPU%", "CPU1 irq%", "limited by",
              "req/s vs nginx",
              "CPU/MB vs nginx", "req/s per run", "errors"]
    body = []
    for size in sizes:
        ng = fig.get((size, "nginx"))
        for s in order:
            f = fig.get((size, s))
            if f is None:
                continue
            body.append([size_label(size), s, fmt(f["rps"]), fmt(f["mbps"], "{:,.1f}"),
                         fmt(f["cpu_us"], "{:.2f}"), fmt(f["cpu_ms_mb"], "{:.3f}"),
                         fmt(f["user_ms_mb"], "{:.3f}"), fmt(f["sys_ms_mb"], "{:.3f}"),
                         fmt(f["cpu0_ms_mb"], "{:.3f}"), fmt(f["util"], "{:.0f}%"),
                         fmt(f["other0"], "{:.0f}%"), fmt(f["busy1"], "{:.0f}%"),
                         fmt(f["irq1"], "{:.0f}%"),
                         bound(f["util"], f["busy1"]),
                         fmt(ratio(f["rps"], ng and ng["rps"]), "{:.2f}x"),
                         fmt(ratio(f["cpu_ms_mb"], ng and ng["cpu_ms_mb"]), "{:.2f}x"),
                         " ".join(fmt(v) for v in f["rps_runs"]) or "-", f["errors"]])
    print(table(header, body))
    print()
    print("MB/s: file bytes per second (requests x file size / run seconds); CPU ms/MB: server CPU")
    print("milliseconds per 10^6 file bytes sent, split into user and kernel (sys) time; vs nginx:")
    print("the server's figure / nginx's (req/s: higher is better, CPU/MB: lower is better).")
    print("CPU0 ms/MB: all busy time of the server's CPU (/proc/stat) per MB, the server's own included:")
    print("  it also counts loopback TCP work done in softirq context outside the server's syscalls,")
    print("  which is not in the server's utime+stime (then CPU0 other% is high with nothing else")
    print("  running), and any other process on CPU 0. CPU0 other% = that extra share of CPU 0's time.")
    print("CPU1 irq%: irq+softirq share of the client's CPU (/proc/stat): loopback TCP work done there;")
    print("  much higher for one server than for the others means part of that server's sending")
    print("  (ACK-clocked transmits) ran on the client's CPU, which lowers its CPU/MB and its req/s.")
    print("limited by: server if srv CPU% >= 90, client if client CPU% >= 90, else neither;")
    print("when the client saturates first, req/s and MB/s measure wrk, and CPU/MB is the fair figure.")
    noisy = [(k, f["other0"]) for k, f in fig.items() if f["other0"] is not None and f["other0"] > 10]
    if noisy:
        print("NOTE: CPU 0 was busy outside the server for up to %.0f%% of the time in some runs"
              % max(v for _, v in noisy))
        print("      (%s): other processes (see the load line at the top; then rerun on a quiet"
              % ", ".join("%s %s" % (size_label(k[0]), k[1]) for k, _ in noisy))
        print("      machine) or softirq work not charged to the server (compare CPU0 ms/MB).")
    print()
    print("Targets (hotpath, static files)")
    print()
    if not any(s == "hotpath" for _, s in fig):
        print("  PENDING: hotpath was not measured in this run")
        return 0
    checks = []
    for size in sizes:
        hp, ng = fig.get((size, "hotpath")), fig.get((size, "nginx"))
        r = ratio(hp and hp["cpu_ms_mb"], ng and ng["cpu_ms_mb"])
        checks.append(("%s: server CPU per MB <= %.1fx nginx" % (size_label(size), TARGET_STATIC_CPU_RATIO),
                       None if r is None else r <= TARGET_STATIC_CPU_RATIO,
                       "hotpath %s ms/MB, nginx %s ms/MB: %s (all of CPU 0: %s vs %s ms/MB, %s)" % (
                           fmt(hp and hp["cpu_ms_mb"], "{:.3f}"), fmt(ng and ng["cpu_ms_mb"], "{:.3f}"),
                           fmt(r, "{:.2f}x"), fmt(hp and hp["cpu0_ms_mb"], "{:.3f}"),
                           fmt(ng and ng["cpu0_ms_mb"], "{:.3f}"),
                           fmt(ratio(hp and hp["cpu0_ms_mb"], ng and ng["cpu0_ms_mb"]), "{:.2f}x"))))
    hp, ng = fig.get((1024, "hotpath")), fig.get((1024, "nginx"))
    r = ratio(hp and hp["rps"], ng and ng["rps"])
    note = ""
    if hp and ng and "client" in (bound(hp["util"], hp["busy1"]), bound(ng["util"], ng["busy1"])):
        note = " (a run was client-bound: the req/s compare wrk more than the servers)"
    checks.append(("1 KiB: req/s >= nginx's", None if r is None else r >= 1.0,
                   "hotpath %s req/s, nginx %s req/s: %s%s" % (
                       fmt(hp and hp["rps"]), fmt(ng and ng["rps"]), fmt(r, "{:.2f}x"), note)))
    for name, ok, detail in checks:
        verdict = "NOT MEASURED" if ok is None else ("MET" if ok else "NOT MET")
        print("  %-13s %s -- %s" % (verdict, name, detail))
    return 0


def main():
    order, rows, meta = load(sys.argv[1])
    clk = float(meta.get("clk_tck", 100))
    plain_kinds = ("plain", "pipe", "rate", "strace", "idle", "cg")
    done = False
    if any(rows[s].get(k) for s in order for k in plain_kinds):
        plaintext_report([s for s in order if any(rows[s].get(k) for k in plain_kinds)],
                         rows, meta, clk)
        done = True
    if any(rows[s].get("static") for s in order):
        if done:
            print()
        static_report([s for s in order if rows[s].get("static")], rows, meta, clk)
        done = True
    if not done:
        print("no measurements")
    return 0


if __name__ == "__main__":
    sys.exit(main())
