#!/usr/bin/env bash
# bench/json/run.sh - builds json_bench with cc -O2 against Debian's jansson,
# json-c and cJSON (flags from pkg-config), runs it pinned to one CPU, counts
# each library's allocations per operation under valgrind, and saves the
# output, with the exact commands, in bench/results/json-YYYYMMDD-HHMM.txt.
#   bash bench/json/run.sh                          # 5 runs of ~0.5 s per cell, ~1.5 minutes
#   JSON_RUNS=3 JSON_MS=100 bash bench/json/run.sh  # quicker
# Installs nothing: needs libjansson-dev, libjson-c-dev and libcjson-dev
# (`bash scripts/deps.sh` installs them), pkg-config and taskset; valgrind
# for the allocation counts of all three (without it, only jansson's and
# cJSON's, through their allocator hooks). A measuring program, not a test:
# it fails only when the build fails or a library's output does not survive
# the correctness check that json_bench does before timing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CC=${CC:-cc}
RUNS=${JSON_RUNS:-5}
MS=${JSON_MS:-500}
CPU=${JSON_CPU:-1}
VG_N=${JSON_VALGRIND_N:-1000}
MODS=(jansson json-c libcjson)
for m in "${MODS[@]}"; do
    pkg-config --exists "$m" || { echo "needs the $m development package (bash scripts/deps.sh)" >&2; exit 2; }
done
command -v taskset >/dev/null || { echo "needs taskset (util-linux)" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
BIN=$TMP/json_bench
read -r -a CFLAGS <<<"$(pkg-config --cflags "${MODS[@]}")"
read -r -a LIBS <<<"$(pkg-config --libs "${MODS[@]}")"
BUILD=("$CC" -std=gnu17 -O2 -Wall -Wextra "${CFLAGS[@]}" -o "$BIN"
       bench/json/json_bench.c bench/json/lib_jansson.c bench/json/lib_jsonc.c
       bench/json/lib_cjson.c "${LIBS[@]}" -lm)
"${BUILD[@]}"
RUN=(taskset -c "$CPU" "$BIN" -r "$RUNS" -t "$MS")

# The shared object each module links, its Debian package, its code size and
# how many functions it exports.
libinfo() {
    local m=$1 name so real pkg
    name=$(pkg-config --libs-only-l "$m" | sed 's/^-l//; s/ *$//')
    so=$(pkg-config --variable=libdir "$m")/lib$name.so
    real=$(readlink -f "$so")
    pkg=$(dpkg -S "$real" 2>/dev/null | cut -d: -f1 | head -1)
    printf '%-9s %-8s %-28s %-20s %9s %8s\n' "$m" "$(pkg-config --modversion "$m")" \
        "${pkg:-?} $(dpkg-query -W -f='${Version}' "${pkg:-none}" 2>/dev/null)" "$(basename "$real")" \
        "$(size -A "$real" | awk '$1 == ".text" {print $2}')" \
        "$(nm -D --defined-only "$real" | awk '$2 == "T"' | wc -l)"
}

# Allocations per operation of each cell, counted by valgrind's allocator:
# (cell run VG_N times) - (nothing run), divided by VG_N. The same set-up
# (each library's decoded message) happens in both runs.
heap() {
    taskset -c "$CPU" valgrind "$BIN" -A "$1" 2>&1 |
        awk '/total heap usage/ {gsub(",", ""); print $5, $7, $9}'
}
valgrind_counts() {
    local base cell a f b
    read -r -a base <<<"$(heap jansson:decode:0)"
    echo "allocations per operation under valgrind, all three libraries with their default allocator"
    echo "(cJSON then grows its print buffer with realloc, which counts as one allocation)"
    echo "command per cell: taskset -c $CPU valgrind $BIN -A LIB:OP:$VG_N, less LIB:OP:0"
    echo
    printf '%-8s %-13s %9s %9s\n' lib op allocs bytes
    for op in decode encode encodebuf build; do
        for lib in jansson json-c cJSON; do
            read -r a f b <<<"$(heap "$lib:$op:$VG_N")"
            awk -v l="$lib" -v o="$op" -v a="$a" -v f="$f" -v b="$b" -v a0="${base[0]}" \
                -v f0="${base[1]}" -v b0="${base[2]}" -v n="$VG_N" 'BEGIN {
                    sub("encodebuf", "encode buf", o); sub("^build$", "build+encode", o)
                    printf "%-8s %-13s %9.1f %9.0f%s\n", l, o, (a - a0) / n, (b - b0) / n,
                        (a - a0 == f - f0) ? "" : "  (allocs != frees)" }'
        done
    done
}

mkdir -p bench/results
OUT=bench/results/json-$(date +%Y%m%d-%H%M).txt
[ -e "$OUT" ] && OUT=bench/results/json-$(date +%Y%m%d-%H%M)-$$.txt
{
    echo "# hotpath JSON library benchmark (AMQP message bodies), $(date -R)"
    echo
    echo "command: bash bench/json/run.sh (JSON_RUNS=$RUNS JSON_MS=$MS JSON_CPU=$CPU JSON_VALGRIND_N=$VG_N)"
    echo "build:   ${BUILD[*]}"
    echo "run:     ${RUN[*]}"
    echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "kernel: $(uname -srm); glibc $(ldd --version | head -1 | awk '{print $NF}'); compiler: $("$CC" --version | head -1)"
    echo
    echo "libraries: .text bytes and exported functions of the shared object"
    echo
    printf '%-9s %-8s %-28s %-20s %9s %8s\n' module version "Debian package" "shared object" text functions
    for m in "${MODS[@]}"; do libinfo "$m"; done
    echo
    "${RUN[@]}"
    echo
    if command -v valgrind >/dev/null; then
        valgrind_counts
    else
        echo "valgrind not installed: no allocation counts for json-c"
    fi
} | tee "$OUT"
echo
echo "saved: $OUT"
