#!/usr/bin/env bash
# shellcheck disable=SC2034  # PROG, PATH_URL, ...: used by bench/lib/common.sh
# bench/hpbench-vs-wrk.sh -- client cost of hpbench against wrk.
#
# hpbench claims to spend less client CPU per request than wrk, so that on a
# small machine the server, not the load generator, saturates. This script
# drives the same servers (hotpath, then nginx; one worker each, pinned to
# CPU 0, started as bench/http.sh does) with both clients (pinned to CPU 1),
# same connections, same duration, one client thread:
#   - closed loop, one request in flight per connection:
#       wrk -t1 -cN -dT URL        hpbench -t 1 -c N -d T URL
#   - pipelined, depth 16:
#       wrk ... -s bench/lib/pipeline.lua URL -- 16
#       hpbench ... --pipeline 16 URL
# $BENCH_RUNS runs of each (interleaved: run k of every server and client
# before run k+1, the client order alternating), medians reported. Per run:
# requests/s and requests completed (the client's own report: wrk's summary,
# hpbench --json), the client's CPU seconds (rusage of the client process,
# read with bash's `times` around the foreground run), the server's CPU
# seconds (utime+stime of its process tree, /proc/PID/stat before/after).
# Then, per server, client and mode, a short separate run under
# `strace -c -f` (and, when perf works, one under `perf stat -e
# raw_syscalls:sys_enter`, which barely slows the client) gives the client's
# syscalls per request. bench/lib/report_clients.py prints the tables, the
# hpbench/wrk ratios and the targets (MET / NOT MET). Everything printed,
# with every command, is saved to bench/results/hpbench-vs-wrk-STAMP.txt.
# Builds nothing: run `make` first. See bench/README.md.
#
# Environment: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (100),
# BENCH_RUNS (3), BENCH_SERVERS ("hotpath nginx"; h2o also works),
# BENCH_QUICK=1 (3 s runs, 1 run, 2 s syscall runs), BENCH_PIPELINE_DEPTH
# (16), BENCH_STRACE_DURATION (3), BENCH_PERF (1: also count syscalls with
# perf stat when perf works; 0: do not), BENCH_PERF_RECORD (1: profile
# hpbench with `perf record -e cpu-clock -g` in each mode against each
# server and print where its time goes, when perf works; 0: do not),
# HOTPATH_BIN (build/hotpath),
# HPBENCH_BIN (build/hpbench), BENCH_KEEP_TMP=1 (keep raw outputs).

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB=$ROOT/bench/lib
cd "$ROOT" || exit 2

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    d_dur=3 d_runs=1 d_strace=2
else
    d_dur=10 d_runs=3 d_strace=3
fi
DURATION=${BENCH_DURATION:-$d_dur}
CONNS=${BENCH_CONNECTIONS:-100}
RUNS=${BENCH_RUNS:-$d_runs}
SERVERS=${BENCH_SERVERS:-hotpath nginx}
DEPTH=${BENCH_PIPELINE_DEPTH:-16}
STRACE_SECS=${BENCH_STRACE_DURATION:-$d_strace}
PERF=${BENCH_PERF:-1}
PERF_RECORD=${BENCH_PERF_RECORD:-1}
HOTPATH_BIN=${HOTPATH_BIN:-$ROOT/build/hotpath}
HPBENCH_BIN=${HPBENCH_BIN:-$ROOT/build/hpbench}
SRV_CPU=0
CLI_CPU=1
WARMUP=2
PATH_URL=/plaintext
CLIENTS=(wrk hpbench)

PROG=bench/hpbench-vs-wrk.sh
# shellcheck source=lib/common.sh
. "$LIB/common.sh"

# ---- prerequisites ------------------------------------------------------
positive_ints "$DURATION" "$CONNS" "$RUNS" "$DEPTH" "$STRACE_SECS"
for s in $SERVERS; do
    case $s in hotpath|nginx|h2o) ;; *) die "unknown server '$s' in BENCH_SERVERS (hotpath nginx h2o)";; esac
done
need=(wrk taskset strace python3 curl ss awk sed)
for s in $SERVERS; do [ "$s" = hotpath ] || need+=("$s"); done
need_tools "${need[@]}"
[ -x "$HPBENCH_BIN" ] || die "$HPBENCH_BIN not found; build it first with 'make'"
if [[ " $SERVERS " == *" hotpath "* ]] && [ ! -x "$HOTPATH_BIN" ]; then
    die "$HOTPATH_BIN not found; build it first with 'make'"
fi
[ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs (server on CPU $SRV_CPU, client on CPU $CLI_CPU)"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge $((CONNS + 100)) ] || die "fd limit $(ulimit -n) too low for $CONNS connections"
# perf counting needs the raw_syscalls tracepoint (root, or a low
# perf_event_paranoid); without it the strace figure stands alone.
if [ "$PERF" = 1 ] && ! { command -v perf >/dev/null 2>&1 &&
        perf stat -e raw_syscalls:sys_enter -x, -o /dev/null -- true >/dev/null 2>&1; }; then
    PERF=0
    PERF_NOTE="perf stat cannot count raw_syscalls:sys_enter here; strace figures only"
fi
if [ "$PERF_RECORD" = 1 ] && ! { command -v perf >/dev/null 2>&1 &&
        perf record -q -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; }; then
    PERF_RECORD=0
    PERF_NOTE="${PERF_NOTE:+$PERF_NOTE; }perf record does not work here: no hpbench profile"
fi

bench_begin hpbench-vs-wrk

# client_cmd(client, mode, seconds, json): the client command line, pinned
# to the client CPU, in CMD.
client_cmd() {
    local client=$1 mode=$2 secs=$3 json=$4
    case $client in
    wrk)
        CMD=(wrk -t1 "-c$CONNS" "-d${secs}s")
        if [ "$mode" = pipe ]; then
            CMD+=(-s "$LIB/pipeline.lua" "$url" -- "$DEPTH")
        else
            CMD+=("$url")
        fi
        ;;
    hpbench)
        CMD=("$HPBENCH_BIN" -t 1 -c "$CONNS" -d "$secs")
        [ "$mode" = pipe ] && CMD+=(--pipeline "$DEPTH")
        CMD+=(--json "$json" "$url")
        ;;
    esac
}

# client_result(client, output, json): the client's own figures as
# key=value fields in RES (requests, secs, rps, errors; hpbench: its own
# CPU figure for the measured part as selfcpu); returns 1 if unparsable.
client_result() {
    case $1 in
    wrk)
        wrk_parse "$2" || return 1
        RES="requests=$WRK_REQ secs=$WRK_SECS rps=$WRK_RPS errors=$((WRK_NON2XX + WRK_SOCKERR))"
        ;;
    hpbench)
        RES=$(python3 "$LIB/hpjson.py" "$3" requests secs=duration_s rps=requests_per_s \
                  errors=errors_total selfcpu=client_cpu.total_s) || return 1
        ;;
    esac
}

# client_measure(server, client, mode): one measured run.
client_measure() {
    local server=$1 client=$2 mode=$3 f=$TMP/$1/$2-$3-$RANDOM
    local b a mb ma
    client_cmd "$client" "$mode" "$DURATION" "$f.json"
    CMD=(taskset -c "$CLI_CPU" "${CMD[@]}")
    show "${CMD[@]}"
    b=$(cpu_ticks "$SPID")
    mb=$(cpu_busy)
    timed_run "$f.txt" "${CMD[@]}"      # RUN_CPU: the client's own CPU time
    ma=$(cpu_busy)
    a=$(cpu_ticks "$SPID")
    indent < "$f.txt"
    if ! client_result "$client" "$f.txt" "$f.json"; then
        echo "error: could not read $client's results (exit $RUN_RC)"
        return 1
    fi
    set -- $RUN_CPU
    run_usage "$b" "$a" "$mb" "$ma" "$client CPU user $1 + sys $2 s"
    echo "$server $client $mode $RES cu=$1 cs=$2 $USAGE wall=$RUN_WALL" >> "$DATA"
}

# syscall_measure(server, client, mode, tool): a short separate run under
# strace -c -f (tool strace) or perf stat (tool perf); calls per request.
syscall_measure() {
    local server=$1 client=$2 mode=$3 tool=$4 f=$TMP/$1/$2-$3-$4
    local calls
    client_cmd "$client" "$mode" "$STRACE_SECS" "$f.json"
    case $tool in
    strace) CMD=(taskset -c "$CLI_CPU" strace -c -f -o "$f.count" "${CMD[@]}") ;;
    perf) CMD=(taskset -c "$CLI_CPU" perf stat -e raw_syscalls:sys_enter -x "," -o "$f.count" -- "${CMD[@]}") ;;
    esac
    show "${CMD[@]}"
    "${CMD[@]}" > "$f.txt" 2>&1
    indent < "$f.txt"
    if ! client_result "$client" "$f.txt" "$f.json"; then
        echo "error: could not read $client's results"
        return 1
    fi
    if [ "$tool" = strace ]; then
        echo "    strace -c summary (top 8 by calls):"
        awk 'NR > 2 && !/^-/ && !/total$/' "$f.count" | sort -k4,4nr | head -8 | indent
        grep 'total$' "$f.count" | indent
        calls=$(awk '/total$/ {print $4}' "$f.count")
    else
        calls=$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$f.count")
        echo "    perf stat: $calls raw_syscalls:sys_enter"
    fi
    local req=${RES#requests=}; req=${req%% *}
    if [ -z "$calls" ] || [ -z "$req" ] || [ "$req" = 0 ]; then
        echo "error: could not count $client's syscalls"
        return 1
    fi
    echo "    $(awk -v c="$calls" -v r="$req" 'BEGIN {printf "%.3f", c / r}') syscalls per request ($calls / $req)"
    echo "$server $client $mode-$tool calls=$calls requests=$req" >> "$DATA"
}

# perf_profile(server, mode): where hpbench spends its CPU.
perf_profile() {
    local mode=$2 f=$TMP/$1/perf-$2
    client_cmd hpbench "$mode" "$STRACE_SECS" "$f.json"
    CMD=(taskset -c "$CLI_CPU" perf record -q -e cpu-clock -g -o "$f.data" -- "${CMD[@]}")
    show "${CMD[@]}"
    "${CMD[@]}" > "$f.txt" 2>&1
    indent < "$f.txt"
    echo "    share by binary (self time, all threads):"
    perf report -i "$f.data" --no-children --sort dso --fields overhead,dso --stdio -g none 2>/dev/null |
        awk '/^ *[0-9.]+%/' | head -8 | indent
    echo "    top symbols (self time, all threads):"
    perf report -i "$f.data" --no-children --fields overhead,dso,sym --stdio -g none 2>/dev/null |
        awk '/^ *[0-9.]+%/' | head -25 | cut -c1-120 | indent
}

# ---- header: command line and machine -----------------------------------
echo "meta clk_tck=$CLK runs=$RUNS depth=$DEPTH conns=$CONNS duration=$DURATION" > "$DATA"
echo "# hpbench vs wrk: client CPU per request, $(date -R)"
echo
echo "command: $(printf '%q ' "$0" "$@")"
echo "settings: BENCH_DURATION=$DURATION BENCH_CONNECTIONS=$CONNS BENCH_RUNS=$RUNS BENCH_SERVERS='$SERVERS'" \
     "BENCH_QUICK=$QUICK BENCH_PIPELINE_DEPTH=$DEPTH BENCH_STRACE_DURATION=$STRACE_SECS BENCH_PERF=$PERF" \
     "BENCH_PERF_RECORD=$PERF_RECORD"
echo "server CPU: $SRV_CPU (taskset), client CPU: $CLI_CPU (taskset); fd limit $(ulimit -n)"
[ -n "${PERF_NOTE:-}" ] && echo "note: $PERF_NOTE"
echo
tools=(nginx h2o wrk hpbench strace perf python3)
[[ " $SERVERS " == *" hotpath "* ]] && tools=(hotpath "${tools[@]}")
print_machine "${tools[@]}"
echo

# ---- the measurements ---------------------------------------------------
echo "## starting the servers"
echo
start_all $SERVERS
[ ${#LIVE[@]} -gt 0 ] || die "no server started"

for server in "${LIVE[@]}"; do
    use "$server"
    echo "### $server warm-up ($WARMUP s, not measured)"
    show taskset -c "$CLI_CPU" wrk -t1 "-c$CONNS" "-d${WARMUP}s" "$url"
    taskset -c "$CLI_CPU" wrk -t1 "-c$CONNS" "-d${WARMUP}s" "$url" > /dev/null 2>&1
done
echo

for mode in plain pipe; do
    [ "$mode" = plain ] && echo "## closed loop, one request in flight per connection" ||
        echo "## pipelined, depth $DEPTH"
    for run in $(seq "$RUNS"); do
        # alternate which client goes first, so a drift in background load
        # does not always favour the same one
        order=("${CLIENTS[@]}")
        [ $((run % 2)) = 0 ] && order=("${CLIENTS[1]}" "${CLIENTS[0]}")
        for server in "${LIVE[@]}"; do
            use "$server"
            for client in "${order[@]}"; do
                echo "### $server $client $mode run $run/$RUNS"
                client_measure "$server" "$client" "$mode"
            done
        done
    done
    echo
done

echo "## client syscalls per request (separate ${STRACE_SECS} s runs)"
tools=(strace)
[ "$PERF" = 1 ] && tools+=(perf)
for mode in plain pipe; do
    for server in "${LIVE[@]}"; do
        use "$server"
        for client in "${CLIENTS[@]}"; do
            for tool in "${tools[@]}"; do
                echo "### $server $client $mode under $tool"
                syscall_measure "$server" "$client" "$mode" "$tool"
            done
        done
    done
done
echo

if [ "$PERF_RECORD" = 1 ]; then
    echo "## where hpbench spends its CPU (perf record -e cpu-clock -g, ${STRACE_SECS} s runs)"
    for server in "${LIVE[@]}"; do
        use "$server"
        for mode in plain pipe; do
            echo "### hpbench $mode against $server"
            perf_profile "$server" "$mode"
        done
    done
    echo
fi
stop_all

echo "## results"
echo
echo "raw measurements:"
indent < "$DATA"
echo
python3 "$LIB/report_clients.py" "$DATA"
echo
bench_finish
[ ${#FAILED[@]} -eq 0 ]
