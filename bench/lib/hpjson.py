#!/usr/bin/env python3
"""Pick figures out of an hpbench --json report for the bench scripts.

Usage: hpjson.py FILE NAME=KEY.PATH ...  prints `NAME=value ...` on one
line, where KEY.PATH walks nested objects (`latency.p99_9`,
`client_cpu.total_s`); a missing key or null prints `-`. Exit status 1
when FILE is not a readable JSON object, so a failed run is noticed.
"""
import json
import sys


def main():
    try:
        with open(sys.argv[1]) as f:
            doc = json.load(f)
    except (OSError, ValueError, IndexError) as e:
        print("hpjson: %s" % e, file=sys.stderr)
        return 1
    if not isinstance(doc, dict):
        return 1
    out = []
    for arg in sys.argv[2:]:
        name, _, path = arg.partition("=")
        v = doc
        for k in (path or name).split("."):
            v = v.get(k) if isinstance(v, dict) else None
        out.append("%s=%s" % (name, "-" if v is None else v))
    print(" ".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
