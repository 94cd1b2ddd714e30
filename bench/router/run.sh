#!/usr/bin/env bash
# bench/router/run.sh - builds router_bench against the library sources with
# -O2, runs it on the three route sets and saves the output, with the exact
# commands, in bench/results/router-YYYYMMDD-HHMM.txt.
#   bash bench/router/run.sh                 # ~1M lookups x 5 runs per cell
#   ROUTER_LOOKUPS=200000 ROUTER_RUNS=3 bash bench/router/run.sh   # quicker
# A measuring program, not a test: it fails only when the build fails or a
# route file does not register.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CC=${CC:-gcc}
LOOKUPS=${ROUTER_LOOKUPS:-1000000}
RUNS=${ROUTER_RUNS:-5}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
BIN=$TMP/router_bench
BUILD=("$CC" -std=gnu17 -D_GNU_SOURCE -Iinclude -Ibuild -Isrc -O2 -o "$BIN"
       bench/router/router_bench.c src/http/router.c src/core/alloc.c)
RUN=("$BIN" -n "$LOOKUPS" -r "$RUNS"
     static=bench/router/routes-static.txt
     github=bench/router/routes-github.txt
     generated=bench/router/routes-generated.txt)
"${BUILD[@]}"
mkdir -p bench/results
OUT=bench/results/router-$(date +%Y%m%d-%H%M).txt
[ -e "$OUT" ] && OUT=bench/results/router-$(date +%Y%m%d-%H%M)-$$.txt
{
    echo "# hotpath router lookup benchmark, $(date -R)"
    echo
    echo "command: bash bench/router/run.sh (ROUTER_LOOKUPS=$LOOKUPS ROUTER_RUNS=$RUNS)"
    echo "build:   ${BUILD[*]}"
    echo "run:     ${RUN[*]}"
    echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), nproc $(nproc)"
    echo "kernel: $(uname -srm); compiler: $("$CC" --version | head -1)"
    echo
    "${RUN[@]}"
} | tee "$OUT"
echo
echo "saved: $OUT"
