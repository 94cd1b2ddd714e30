#!/usr/bin/python3
"""Checks Prometheus text exposition (format 0.0.4) read on stdin.

Parses it with the reference parser, prometheus_client.parser.
text_string_to_metric_families, and prints one line per family:

    <name> <type> <number of samples>

(the parser reports a counter "x_total" as family "x", as OpenMetrics does).
On top of what that lenient parser accepts, it checks what hotpath's
/metrics promises: every family has a TYPE, no family appears twice, the
text ends with a newline, counters are not negative, and each histogram
series (one label set without "le") has ascending "le" bounds, cumulative
bucket counts, a +Inf bucket equal to its _count, and a _sum.

Exit status: 0 when all is well, 1 on a parse error or a failed check (the
reasons go to stderr), 2 when prometheus_client is missing. Options:
--require NAME (repeatable) fails unless family NAME is present (the name as
exposed, "_total" included or not); --quiet prints nothing on success.

Run it with the interpreter that has python3-prometheus-client (Debian's
/usr/bin/python3, as the Makefile's PYTHON), e.g.
    curl -s localhost:8080/metrics | /usr/bin/python3 tests/integration/prom_check.py
"""

import argparse
import math
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - depends on the machine
    print("prom_check: python3-prometheus-client is not installed", file=sys.stderr)
    sys.exit(2)


def check_histogram(fam, errors):
    """Appends to errors what is wrong with the series of histogram fam."""
    series = {}
    for s in fam.samples:
        labels = dict(s.labels)
        le = labels.pop("le", None)
        key = tuple(sorted(labels.items()))
        ser = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if s.name == fam.name + "_bucket":
            if le is None:
                errors.append(f"{fam.name}{dict(key)}: _bucket without le")
                continue
            ser["buckets"].append((float(le), s.value))
        elif s.name == fam.name + "_sum":
            ser["sum"] = s.value
        elif s.name == fam.name + "_count":
            ser["count"] = s.value
    for key, ser in series.items():
        where = f"{fam.name}{dict(key)}"
        b = ser["buckets"]
        if not b or b[-1][0] != math.inf:
            errors.append(f"{where}: no +Inf bucket last")
            continue
        for (le0, c0), (le1, c1) in zip(b, b[1:]):
            if not le1 > le0:
                errors.append(f"{where}: le {le1} after {le0}")
            if c1 < c0:
                errors.append(f"{where}: bucket le={le1} count {c1} < {c0}")
        if ser["count"] is None or ser["sum"] is None:
            errors.append(f"{where}: missing _sum or _count")
        elif ser["count"] != b[-1][1]:
            errors.append(f"{where}: _count {ser['count']} != +Inf bucket {b[-1][1]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--require", action="append", default=[], metavar="NAME")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    text = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError, IndexError, ...
        print(f"prom_check: parse error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1

    errors = []
    if text and not text.endswith("\n"):
        errors.append("text does not end with a newline")
    seen = set()
    for fam in families:
        if fam.name in seen:
            errors.append(f"{fam.name}: family appears more than once")
        seen.add(fam.name)
        if fam.type in ("untyped", "unknown"):
            errors.append(f"{fam.name}: no TYPE line (or a sample outside its family)")
        elif fam.type == "counter":
            for s in fam.samples:
                if s.value < 0:
                    errors.append(f"{s.name}: negative counter {s.value}")
        elif fam.type == "histogram":
            check_histogram(fam, errors)
    for name in args.require:
        short = name[:-6] if name.endswith("_total") else name
        if name not in seen and short not in seen:
            errors.append(f"{name}: required family missing")

    if not args.quiet:
        for fam in families:
            print(f"{fam.name} {fam.type} {len(fam.samples)}")
    for e in errors:
        print(f"prom_check: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
