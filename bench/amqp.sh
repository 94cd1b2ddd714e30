#!/usr/bin/env bash
# bench/amqp.sh -- hpbench's AMQP client side by side with its peers,
# librabbitmq (bench/amqp/rmq_perf.c) and pika (bench/amqp/pika_perf.py),
# against one private RabbitMQ node, pinned, in one run.
#
# Usage: bash bench/amqp.sh [CASE...]   CASE: publish, confirm100,
# confirm1000, batch100, consume, consume_ma, consume4 (default: all, in
# that order).
#
# A private RabbitMQ node (bench/lib/amqp_broker.py: tests/integration/
# rabbitmq.py's Broker, its own ports and data) runs pinned to CPU 0, and
# every client to CPU 1, one thread each. Each case is run by each tool
# ($BENCH_TOOLS: hpbench hpbench_rc rmq_perf pika_perf; hpbench_rc is
# hpbench with --read-coalesce 1, the client's read coalescing) $BENCH_RUNS times,
# interleaved (run 1 of every tool, then run 2 ...), $BENCH_DURATION s
# after a $BENCH_WARMUP s warm-up, messages of $BENCH_AMQP_SIZE bytes:
#   publish      1 producer, no confirms, no consumer
#   confirm100   1 producer, --confirm 100, no consumer
#   confirm1000  1 producer, --confirm 1000, no consumer
#   batch100     confirm1000 with --batch 100 (hpbench only)
#   consume      1 producer, 1 consumer (prefetch 0, an ack per message)
#   consume_ma   consume with --prefetch 1000 --multi-ack 100
#   consume4     1 producer, 4 consumers on one queue (hpbench only)
# Per case and tool (medians over the runs): messages/s published and
# consumed, the client's CPU per message (user + sys, its getrusage over
# the measured part), syscalls per message (perf stat -e
# raw_syscalls:sys_enter, or strace -c -f where perf cannot, on two
# further runs of $BENCH_SYSCALL_S and 4 x $BENCH_SYSCALL_S s without
# warm-up: (calls2 - calls1) / (msgs2 - msgs1), so start-up cancels),
# the broker's CPU, hpbench's confirm and end-to-end latency, and the
# ratios hotpath / peer; then hpbench against issue 11's targets. Saves
# everything printed, the commands included, to
# bench/results/amqp-peers-YYYYMMDD-HHMM.txt. Builds rmq_perf (cc ...
# -lrabbitmq, into build/bench/) and nothing else: run `make` first.
#
# Environment: BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_RUNS (3),
# BENCH_AMQP_SIZE (1024), BENCH_SYSCALL_S (1; 0: no syscall runs),
# BENCH_TOOLS ("hpbench hpbench_rc rmq_perf pika_perf"), HPBENCH_BIN
# (build/hpbench), BENCH_KEEP_TMP=1 (keep the JSON and counter outputs).
# A before/after of a change in one run: HPBENCH_BASE_BIN=<the hpbench
# built before it> and the tools `base` and `base_rc` in BENCH_TOOLS (run
# like hpbench and hpbench_rc; the report adds their ratios).

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

ALL="publish confirm100 confirm1000 batch100 consume consume_ma consume4"
CASES=""
for a in "$@"; do
    case $a in
    -h|--help) sed -n '3,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    publish|confirm100|confirm1000|batch100|consume|consume_ma|consume4) CASES="$CASES $a" ;;
    *) echo "bench/amqp.sh: unknown case '$a' ($ALL)" >&2; exit 2 ;;
    esac
done
CASES=${CASES:-$ALL}

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
RUNS=${BENCH_RUNS:-3}
SIZE=${BENCH_AMQP_SIZE:-1024}
SC_S=${BENCH_SYSCALL_S:-1}
TOOLS=${BENCH_TOOLS:-hpbench hpbench_rc rmq_perf pika_perf}
HPBENCH=${HPBENCH_BIN:-$ROOT/build/hpbench}
HPBENCH_BASE=${HPBENCH_BASE_BIN:-}
RMQ_PERF=$ROOT/build/bench/rmq_perf
PY=/usr/bin/python3   # Debian's, with python3-pika

for tool in taskset python3; do
    command -v $tool >/dev/null || { echo "bench/amqp.sh: $tool not found" >&2; exit 2; }
done
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] ||
    { echo "bench/amqp.sh: rabbitmq-server not installed (make deps)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "bench/amqp.sh: needs 2 CPUs" >&2; exit 2; }

# Each tool that cannot run is left out with one line saying why.
tools=""
for t in $TOOLS; do
    case $t in
    hpbench|hpbench_rc)
        [ -x "$HPBENCH" ] || { echo "bench/amqp.sh: $HPBENCH not found: run make" >&2; exit 2; } ;;
    base|base_rc)
        [ -x "$HPBENCH_BASE" ] ||
            { echo "bench/amqp.sh: tool $t: set HPBENCH_BASE_BIN to an hpbench to compare with" >&2; exit 2; } ;;
    rmq_perf)
        if [ ! -e /usr/include/amqp.h ]; then
            echo "bench/amqp.sh: rmq_perf left out: apt-get install librabbitmq-dev (or make deps-bench)"
            continue
        fi
        mkdir -p build/bench
        RMQ_CC=(cc -std=gnu17 -O2 -g -Wall -Wextra -o "$RMQ_PERF" bench/amqp/rmq_perf.c -lrabbitmq)
        "${RMQ_CC[@]}" || { echo "bench/amqp.sh: rmq_perf does not build" >&2; exit 2; } ;;
    pika_perf)
        if ! $PY -c 'import pika' 2>/dev/null; then
            echo "bench/amqp.sh: pika_perf left out: apt-get install python3-pika (make deps)"
            continue
        fi ;;
    *) echo "bench/amqp.sh: unknown tool '$t'" >&2; exit 2 ;;
    esac
    tools="$tools $t"
done

# Syscalls: perf's tracepoint counter when this kernel lets us, else strace.
SC_TOOL=none
if [ "$SC_S" != 0 ]; then
    if perf stat -e raw_syscalls:sys_enter -x, -o /dev/null true 2>/dev/null; then
        SC_TOOL=perf
    elif command -v strace >/dev/null; then
        SC_TOOL=strace
    else
        echo "bench/amqp.sh: neither perf nor strace: no syscall counts"
    fi
fi

mkdir -p bench/results
OUT=bench/results/amqp-peers-$(date +%Y%m%d-%H%M).txt
TMP=$(mktemp -d /tmp/hpbench-amqp.XXXXXX)
exec > >(tee "$OUT") 2>&1

BROKER_IN=""
cleanup() {
    # Closing the helper's stdin stops the node.
    if [ -n "$BROKER_IN" ]; then
        eval "exec $BROKER_IN>&-"
        # shellcheck disable=SC2153  # BROKER_PID: set by coproc
        wait "$BROKER_PID" 2>/dev/null
    fi
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then echo "raw outputs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

echo "# bench/amqp.sh $* ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "# BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_RUNS=$RUNS BENCH_AMQP_SIZE=$SIZE BENCH_SYSCALL_S=$SC_S BENCH_TOOLS=\"$TOOLS\""
echo "# $(uname -srm); $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
[ -n "$HPBENCH_BASE" ] && echo "# base (tools base, base_rc): $HPBENCH_BASE: $("$HPBENCH_BASE" --version)"
echo "# $("$HPBENCH" --version); rabbitmq-server $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null);" \
     "librabbitmq $(dpkg-query -W -f '${Version}' librabbitmq4 2>/dev/null); python3-pika $(dpkg-query -W -f '${Version}' python3-pika 2>/dev/null)"
echo "# git $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "(dirty)")"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# broker: taskset -c 0 python3 bench/lib/amqp_broker.py; clients: taskset -c 1, one thread each"
[ -n "${RMQ_CC+x}" ] && echo "\$ ${RMQ_CC[*]}"
echo "# tools:$tools; syscalls counted with: $SC_TOOL"
echo

# The broker, pinned to CPU 0 (epmd and the Erlang VM inherit it).
coproc BROKER { taskset -c 0 python3 bench/lib/amqp_broker.py; }
BROKER_IN=${BROKER[1]}
read -r URL BEAM <&"${BROKER[0]}" || { echo "bench/amqp.sh: the broker did not start" >&2; exit 2; }
echo "# broker up: $URL (beam.smp pid $BEAM)"

beam_ticks() {
    # utime + stime of the Erlang VM (fields 14 and 15; the command name,
    # field 2, has no space here).
    awk '{print $14 + $15}' "/proc/$BEAM/stat"
}

# The options every tool shares (hpbench adds --producers 1).
args_of() {
    case $1 in
    publish) echo "--consumers 0" ;;
    confirm100) echo "--consumers 0 --confirm 100" ;;
    confirm1000) echo "--consumers 0 --confirm 1000" ;;
    batch100) echo "--consumers 0 --confirm 1000 --batch 100" ;;
    consume) echo "--consumers 1" ;;
    consume_ma) echo "--consumers 1 --prefetch 1000 --multi-ack 100" ;;
    consume4) echo "--consumers 4" ;;
    esac
}

# Whether tool $1 is an hpbench (this build's or the base's).
is_ours() {
    case $1 in hpbench|hpbench_rc|base|base_rc) true ;; *) false ;; esac
}

# The command of tool $1 for case $2, $3 s after a $4 s warm-up, its JSON
# report to $5.
cmd_of() {
    local a bin=$HPBENCH
    a="$(args_of "$2") --size $SIZE"
    case $1 in base*) bin=$HPBENCH_BASE ;; esac
    case $1 in
    hpbench|base) echo "$bin $URL -d $3 --warmup $4 --producers 1 $a --json $5" ;;
    hpbench_rc|base_rc) echo "$bin $URL -d $3 --warmup $4 --producers 1 $a --read-coalesce 1 --json $5" ;;
    rmq_perf) echo "$RMQ_PERF -d $3 --warmup $4 $a $URL" ;;
    pika_perf) echo "$PY bench/amqp/pika_perf.py -d $3 --warmup $4 $a $URL" ;;
    esac
}

# Peers run only what they implement.
runs_case() {
    case $2 in
    batch100|consume4) is_ours "$1" ;;
    *) true ;;
    esac
}

# One run of tool $1, case $2, as $3 (file stem), $4 s after a $5 s
# warm-up, under the counter $6 (none, perf, strace).
run_one() {
    local t=$1 c=$2 stem=$3 cmd wrap=""
    cmd=$(cmd_of "$t" "$c" "$4" "$5" "$stem.json")
    case $6 in
    perf) wrap="perf stat -e raw_syscalls:sys_enter -x, -o $stem.sc --" ;;
    strace) wrap="strace -c -f -o $stem.sc" ;;
    esac
    echo "\$ taskset -c 1 $wrap $cmd"
    sleep 1
    local b0 b1 t0 t1 rc
    b0=$(beam_ticks)
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    if is_ours "$t"; then
        taskset -c 1 $wrap $cmd > "$stem.out" 2>&1
        rc=$?
        grep -E '^(Published|Confirmed|Consumed)/sec|^Client CPU|latency +p50|messages published|consumed,' "$stem.out"
    else
        taskset -c 1 $wrap $cmd > "$stem.json" 2> "$stem.out"
        rc=$?
        cat "$stem.json" "$stem.out"
    fi
    b1=$(beam_ticks)
    t1=$(date +%s.%N)
    echo "exit status $rc; broker CPU: $(( b1 - b0 )) ticks of 1/$HZ s in $(python3 -c "print('%.2f' % ($t1 - $t0))") s" |
        tee "$stem.broker"
    [ "$6" = none ] || grep -E 'sys_enter|total' "$stem.sc"
}

HZ=$(getconf CLK_TCK)
for c in $CASES; do
    echo "## $c"
    for r in $(seq 1 "$RUNS"); do
        for t in $tools; do
            runs_case "$t" "$c" || continue
            run_one "$t" "$c" "$TMP/$c.$t.$r" "$DURATION" "$WARMUP" none
        done
    done
    if [ "$SC_TOOL" != none ]; then
        echo "# syscall runs: ${SC_S} s and $((4 * SC_S)) s, no warm-up, under $SC_TOOL"
        for t in $tools; do
            runs_case "$t" "$c" || continue
            run_one "$t" "$c" "$TMP/$c.$t.sc1" "$SC_S" 0 "$SC_TOOL"
            run_one "$t" "$c" "$TMP/$c.$t.sc4" "$((4 * SC_S))" 0 "$SC_TOOL"
        done
    fi
    echo
done

# shellcheck disable=SC2086  # one argument per case
python3 bench/lib/amqp_report.py "$TMP" "$HZ" "$RUNS" "$tools" $CASES
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# saved to $OUT"
