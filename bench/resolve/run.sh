#!/usr/bin/env bash
# bench/resolve/run.sh - builds resolve_bench against build/libhotpath.a
# and c-ares, runs it pinned to CPU 1 on names that resolve without a
# network, and saves the output, with the exact commands, in
# bench/results/resolve-YYYYMMDD-HHMM.txt.
#   bash bench/resolve/run.sh                      # 2,000 per cell, ~10 s
#   RESOLVE_N=500 bash bench/resolve/run.sh        # quicker
# The run happens inside a new user and network namespace (unshare -rn)
# when the kernel allows it: only a loopback interface exists there, so
# the lookup of the nonexistent name that /etc/nsswitch.conf sends on to
# DNS cannot leave the machine. Without unshare that name is left out.
# Needs libc-ares-dev (apt-get install libc-ares-dev) and `make` first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CC=${CC:-gcc}
N=${RESOLVE_N:-2000}
CONC=${RESOLVE_CONC:-50}
THREADS=${RESOLVE_THREADS:-2}
CPU=${RESOLVE_CPU:-1}
[ -e build/libhotpath.a ] || { echo "run make first" >&2; exit 2; }
[ -e /usr/include/ares.h ] || { echo "needs libc-ares-dev" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
BIN=$TMP/resolve_bench
BUILD=("$CC" -std=gnu17 -D_GNU_SOURCE -Iinclude -Ibuild -O2 -o "$BIN"
       bench/resolve/resolve_bench.c build/libhotpath.a -lcares -lpthread -lm -lyaml -lz
       -lbrotlienc -lbrotlidec)
"${BUILD[@]}"
NAMES=(localhost 127.0.0.1 ::1)
WRAP=(taskset -c "$CPU")
if unshare -rn true 2>/dev/null; then
    WRAP=(unshare -rn taskset -c "$CPU")
    NAMES+=(no-such-host.invalid)
fi
RUN=("${WRAP[@]}" "$BIN" -n "$N" -c "$CONC" -t "$THREADS" "${NAMES[@]}")
mkdir -p bench/results
OUT=bench/results/resolve-$(date +%Y%m%d-%H%M).txt
[ -e "$OUT" ] && OUT=bench/results/resolve-$(date +%Y%m%d-%H%M)-$$.txt
{
    echo "# hotpath name resolution benchmark, $(date -R)"
    echo
    echo "command: bash bench/resolve/run.sh (RESOLVE_N=$N RESOLVE_CONC=$CONC RESOLVE_THREADS=$THREADS RESOLVE_CPU=$CPU)"
    echo "build:   ${BUILD[*]}"
    echo "run:     ${RUN[*]}"
    echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "kernel: $(uname -srm); glibc $(ldd --version | head -1 | awk '{print $NF}'); c-ares $(dpkg-query -W -f='${Version}' libc-ares2 2>/dev/null)"
    echo "hosts: $(grep '^hosts:' /etc/nsswitch.conf | tr -s ' ')"
    echo "/etc/hosts: $(grep -v '^#' /etc/hosts | grep . | tr '\n' ';')"
    echo
    "${RUN[@]}"
} | tee "$OUT"
echo
echo "saved: $OUT"
