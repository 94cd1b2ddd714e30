#!/usr/bin/env python3
"""The tables of bench/amqp.sh, from the raw outputs it left in TMP.

Usage: amqp_report.py TMP HZ RUNS "TOOLS" CASE...

For each case, tool and run r, TMP holds CASE.TOOL.r.json (hpbench's
--json report, or the peer's one JSON line), CASE.TOOL.r.broker (the
broker's CPU ticks over the run), and, for the syscall runs sc1 and sc4,
CASE.TOOL.scN.sc (perf stat -x, or strace -c output). Every figure
printed is the median over the runs of that figure.
"""

import json
import re
import statistics
import sys

PEERS = ("rmq_perf", "pika_perf")
# hpbench as it comes, and with the client's read coalescing (--read-coalesce 1);
# base and base_rc: the same from another build (HPBENCH_BASE_BIN), a change's before.
OURS = ("hpbench", "hpbench_rc", "base", "base_rc")
AFTER_BEFORE = (("hpbench", "base"), ("hpbench_rc", "base_rc"))


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    # A peer prints one JSON line; hpbench writes one object.
    for line in [text] + text.splitlines()[::-1]:
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def figures(j):
    """Normalises a report of any tool: counts, rates, CPU."""
    if j is None or not j.get("published"):
        return None
    d = j["duration_s"] or 1
    if j.get("tool") == "hpbench":
        cpu = j["client_cpu"]
        user, sys_ = cpu["user_s"], cpu["sys_s"]
    else:
        user, sys_ = j["cpu_user_s"], j["cpu_sys_s"]
    pub = j["published"]
    f = {"pub": pub, "pub_s": pub / d, "cons_s": j["consumed"] / d,
         "cpu": (user + sys_) * 1e6 / pub, "user": user * 1e6 / pub, "sys": sys_ * 1e6 / pub}
    for k, name in (("confirm_latency", "conf"), ("consumer_latency", "e2e")):
        v = j.get(k)
        if v and v["count"]:
            f[name + "50"], f[name + "99"] = v["p50"], v["p99"]
    return f


def broker_busy(path, hz):
    try:
        m = re.search(r"CPU: (-?\d+) ticks of 1/\d+ s in ([\d.]+) s", open(path).read())
        return int(m.group(1)) / hz / float(m.group(2))
    except (OSError, AttributeError):
        return None


def syscalls(path):
    try:
        text = open(path).read()
    except OSError:
        return None
    m = re.search(r"^(\d+),[^,]*,raw_syscalls:sys_enter", text, re.M)
    if m:
        return int(m.group(1))
    m = re.search(r"^100\.00\s+\S+\s+\S+\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else None


def med(rows, key):
    v = [r[key] for r in rows if r and r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def ratio(a, b):
    return "-" if a is None or not b else "%.2f" % (a / b)


def table(head, rows):
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(head)) + " |")
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in rows:
        print("| " + " | ".join(str(v).ljust(w[i]) for i, v in enumerate(r)) + " |")


def main():
    tmp, hz, runs, tools, cases = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                   sys.argv[4].split(), sys.argv[5:])
    res = {}
    for c in cases:
        for t in tools:
            rows = []
            for r in range(1, runs + 1):
                f = figures(load("%s/%s.%s.%d.json" % (tmp, c, t, r)))
                if f:
                    f["broker"] = broker_busy("%s/%s.%s.%d.broker" % (tmp, c, t, r), hz)
                rows.append(f)
            if not any(rows):
                continue
            m = {k: med(rows, k) for k in ("pub_s", "cons_s", "cpu", "user", "sys", "broker",
                                          "conf50", "conf99", "e2e50", "e2e99")}
            m["runs"] = sum(1 for x in rows if x)
            # Syscalls per message: the difference of the two runs, so that
            # start-up and shutdown cancel.
            s1, s4 = (syscalls("%s/%s.%s.sc%d.sc" % (tmp, c, t, n)) for n in (1, 4))
            f1, f4 = (figures(load("%s/%s.%s.sc%d.json" % (tmp, c, t, n))) for n in (1, 4))
            m["sc"] = None
            if None not in (s1, s4, f1, f4) and f4["pub"] > f1["pub"]:
                m["sc"] = (s4 - s1) / (f4["pub"] - f1["pub"])
            res[c, t] = m

    print("# Per case: medians over the runs. CPU us/msg: the client's user+sys over the")
    print("# measured part / messages published (in the consume cases each message is also")
    print("# consumed, by the same process). broker: the Erlang VM's CPU / wall time of the run")
    print("# (100% = all of CPU 0). When the broker is near 100% it is the limit, and msg/s")
    print("# says how fast the broker handles each client's traffic; then CPU us/msg and")
    print("# syscalls/msg are the figures that compare the clients.")
    print()
    summary = []
    for c in cases:
        tl = [t for t in tools if (c, t) in res]
        if not tl:
            print("## %s: no report" % c)
            continue
        print("## %s" % c)
        rows = []
        for t in tl:
            m = res[c, t]
            rows.append((t, fmt(m["pub_s"]), fmt(m["cons_s"]),
                         "%s (%s+%s)" % (fmt(m["cpu"], "%.2f"), fmt(m["user"], "%.2f"),
                                         fmt(m["sys"], "%.2f")),
                         fmt(m["sc"], "%.3f"), fmt(m["broker"] and m["broker"] * 100, "%.0f%%"),
                         "%s/%s" % (fmt(m["conf50"]), fmt(m["conf99"])),
                         "%s/%s" % (fmt(m["e2e50"]), fmt(m["e2e99"])), m["runs"]))
        table(("tool", "published/s", "consumed/s", "CPU us/msg (user+sys)", "syscalls/msg",
               "broker", "confirm p50/p99 us", "e2e p50/p99 us", "runs"), rows)
        for o in OURS:
            h = res.get((c, o))
            for p in PEERS:
                if h and (c, p) in res:
                    q = res[c, p]
                    print("%s/%s: msg/s x%s, CPU/msg x%s, syscalls/msg x%s" % (
                        o, p, ratio(h["pub_s"], q["pub_s"]), ratio(h["cpu"], q["cpu"]),
                        ratio(h["sc"], q["sc"])))
                    summary.append((c, o, p, ratio(h["pub_s"], q["pub_s"]),
                                    ratio(h["cpu"], q["cpu"]), ratio(h["sc"], q["sc"])))
        for a, b in AFTER_BEFORE:
            if (c, a) in res and (c, b) in res:
                h, q = res[c, a], res[c, b]
                print("%s/%s (this build / base): msg/s x%s, CPU/msg x%s, syscalls/msg x%s" % (
                    a, b, ratio(h["pub_s"], q["pub_s"]), ratio(h["cpu"], q["cpu"]),
                    ratio(h["sc"], q["sc"])))
        print()

    if summary:
        print("## hotpath / peer, same run (msg/s: higher is better; CPU and syscalls per")
        print("## message: lower is better)")
        table(("case", "hotpath", "peer", "msg/s ratio", "CPU/msg ratio", "syscalls/msg ratio"),
              summary)
        print()

    for o in OURS:
        if any((c, o) in res for c in cases):
            targets(res, o)


def targets(res, o):
    def h(c, k):
        m = res.get((c, o))
        return m and m[k]

    def verdict(ok):
        return "-" if ok is None else "MET" if ok else "NOT MET"

    print()
    print("## %s against issue 11's targets" % o)
    rows = []
    pub = h("publish", "cpu")
    rows.append(("client CPU per message published <= 1.5 us (publish)", fmt(pub, "%.2f us"),
                 verdict(None if pub is None else pub <= 1.5)))
    for c in ("consume", "consume_ma"):
        tot = h(c, "cpu")
        if tot is None or pub is None:
            continue
        rows.append(("client CPU per message consumed <= 2 us (%s - publish)" % c,
                     "%.2f us (%.2f - %.2f)" % (tot - pub, tot, pub), verdict(tot - pub <= 2)))
    for c in ("publish", "batch100", "consume_ma"):
        sc = h(c, "sc")
        if sc is not None:
            rows.append(("syscalls per message when batching <= 0.1 (%s)" % c, "%.3f" % sc,
                         verdict(sc <= 0.1)))
    conf, plain = h("confirm1000", "pub_s"), h("publish", "pub_s")
    if conf and plain:
        rows.append(("confirm1000 rate >= 90% of publish rate", "%.0f%% (%.0f / %.0f msg/s)"
                     % (conf / plain * 100, conf, plain), verdict(conf >= 0.9 * plain)))
    table(("target", "measured", "verdict"), rows)

if __name__ == "__main__":
    main()
