#!/usr/bin/env bash
# bench/http.sh -- side-by-side HTTP/1.1 benchmark of hotpath, nginx and h2o.
#
# Every server runs with one worker, pinned to CPU 0; the load generator (wrk,
# or the Python helpers in bench/lib) runs on CPU 1. For each server:
#   - wrk -t1 -c$BENCH_CONNECTIONS, $BENCH_RUNS runs: requests/s, and server
#     CPU seconds (utime+stime of the server's process tree, /proc/PID/stat,
#     before and after the run) per request, split into user and kernel time;
#   - the same with pipelining depth 16 (bench/lib/pipeline.lua);
#   - syscalls per request (strace -c -f attached during a short wrk run);
#   - RSS bytes per idle keep-alive connection (bench/lib/idleconns.py);
#   - instructions per request under callgrind (two runs with N1 and N2
#     requests from bench/lib/kaclient.py; (Ir2-Ir1)/(N2-N1) so start-up
#     cancels), for the servers in $BENCH_CALLGRIND.
# Prints the tables (bench/lib/report.py) and saves everything printed,
# including every command run and the machine description, to
# bench/results/http-YYYYMMDD-HHMM.txt. Builds nothing: run `make` first
# (`make bench` does deps, build, then this script). See bench/README.md.
#
# Environment: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (100),
# BENCH_RUNS (3), BENCH_SERVERS ("hotpath nginx h2o"), BENCH_QUICK=1 (3 s,
# 1 run, 1,000 idle connections), BENCH_IDLE_CONNS (10000),
# BENCH_PIPELINE_DEPTH (16), BENCH_STRACE_DURATION (3),
# BENCH_CALLGRIND (servers to run under callgrind, default: all of
# BENCH_SERVERS; "" = none),
# BENCH_CG_N1/BENCH_CG_N2 (2000/12000), HOTPATH_BIN (build/hotpath),
# BENCH_KEEP_TMP=1 (keep the temp dir with configs and raw outputs).

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB=$ROOT/bench/lib
cd "$ROOT" || exit 2

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    d_dur=3 d_runs=1 d_idle=1000 d_n1=500 d_n2=2500 d_strace=2
else
    d_dur=10 d_runs=3 d_idle=10000 d_n1=2000 d_n2=12000 d_strace=3
fi
DURATION=${BENCH_DURATION:-$d_dur}
CONNS=${BENCH_CONNECTIONS:-100}
RUNS=${BENCH_RUNS:-$d_runs}
SERVERS=${BENCH_SERVERS:-hotpath nginx h2o}
IDLE=${BENCH_IDLE_CONNS:-$d_idle}
DEPTH=${BENCH_PIPELINE_DEPTH:-16}
STRACE_SECS=${BENCH_STRACE_DURATION:-$d_strace}
CALLGRIND=${BENCH_CALLGRIND-$SERVERS}
CG_N1=${BENCH_CG_N1:-$d_n1}
CG_N2=${BENCH_CG_N2:-$d_n2}
HOTPATH_BIN=${HOTPATH_BIN:-$ROOT/build/hotpath}
SRV_CPU=0
CLI_CPU=1
WARMUP=2
PATH_URL=/plaintext

die() { echo "bench/http.sh: $*" >&2; exit 2; }

# ---- prerequisites ------------------------------------------------------
for n in "$DURATION" "$CONNS" "$RUNS" "$IDLE" "$DEPTH" "$STRACE_SECS" "$CG_N1" "$CG_N2"; do
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || die "BENCH_* values must be positive integers (got '$n')"
done
[ "$CG_N2" -gt "$CG_N1" ] || die "BENCH_CG_N2 must be larger than BENCH_CG_N1"
for s in $SERVERS; do
    case $s in hotpath|nginx|h2o) ;; *) die "unknown server '$s' in BENCH_SERVERS (hotpath nginx h2o)";; esac
done
need=(wrk taskset strace python3 curl ss awk sed)
[ -n "$CALLGRIND" ] && need+=(valgrind)
for s in $SERVERS; do [ "$s" = hotpath ] || need+=("$s"); done
for t in "${need[@]}"; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found; install the benchmark tools with 'make deps'"
done
if [[ " $SERVERS " == *" hotpath "* ]] && [ ! -x "$HOTPATH_BIN" ]; then
    die "$HOTPATH_BIN not found; build it first with 'make' (or run 'make bench')"
fi
[ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs (server on CPU $SRV_CPU, client on CPU $CLI_CPU)"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge $((IDLE + 200)) ] || die "fd limit $(ulimit -n) too low for $IDLE idle connections; raise it with ulimit -n"

# ---- bookkeeping, logging and cleanup -----------------------------------
TMP=$(mktemp -d /tmp/hotpath-bench.XXXXXX) || die "mktemp failed"
DATA=$TMP/data
STAMP=$(date +%Y%m%d-%H%M)
mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/http-$STAMP.txt
[ -e "$OUT" ] && OUT=$ROOT/bench/results/http-$STAMP-$$.txt
PARTIAL=$OUT.partial
BG_PIDS=()          # every background process we started, for cleanup
SPID=""             # root pid of the running server
SPORT=""
FAILED=()
T_START=$(date +%s)

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${BG_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        for c in $(pgrep -P "$p"); do kill -TERM "$c" 2>/dev/null; done
        kill -TERM "$p" 2>/dev/null
    done
    sleep 0.2
    for p in "${BG_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        sleep 1
        for c in $(pgrep -P "$p"); do kill -KILL "$c" 2>/dev/null; done
        kill -KILL "$p" 2>/dev/null
    done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then
        echo "raw files kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    if [ -e "$PARTIAL" ]; then
        # Keep the log of an incomplete run, but out of bench/results.
        mv "$PARTIAL" "/tmp/hotpath-bench-$STAMP-incomplete.txt"
        echo "incomplete run; its log is in /tmp/hotpath-bench-$STAMP-incomplete.txt" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# Everything printed from here on also goes to the results file.
exec > >(tee -a "$PARTIAL") 2>&1

forget() {          # forget(pid): drop pid from BG_PIDS once it is reaped
    local keep=() p
    for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BG_PIDS=("${keep[@]}")
}

show() {            # show(cmd...): print a command exactly as it is run
    printf '$'
    printf ' %q' "$@"
    printf '\n'
}

indent() { sed 's/^/    /'; }

tree_pids() {       # tree_pids(pid): pid and its descendants
    local p=$1 c
    echo "$p"
    for c in $(pgrep -P "$p"); do tree_pids "$c"; done
}

cpu_ticks() {       # cpu_ticks(pid): "utime stime" summed over the tree, in ticks
    local p u=0 s=0 f
    for p in $(tree_pids "$1"); do
        # Fields after the ")" closing comm: state is 1st, utime 12th, stime 13th.
        f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        set -- $f
        u=$((u + ${12})); s=$((s + ${13}))
    done
    echo "$u $s"
}

# cpu_busy(): "busy irq total" ticks of the server CPU, then of the client CPU
# (busy = all but idle and iowait; irq = hard + soft interrupt time, which on
# loopback is mostly the TCP work of the benchmark itself).
cpu_busy() {
    awk -v a="cpu$SRV_CPU" -v b="cpu$CLI_CPU" '$1 == a || $1 == b {
            t = 0; for (i = 2; i <= 9; i++) t += $i
            r[$1] = (t - $5 - $6) " " ($7 + $8) " " t }
        END { print r[a], r[b] }' /proc/stat
}

wait_listen() {     # wait_listen(port, pid, seconds): until the port listens
    local port=$1 pid=$2 tries=$(( $3 * 20 ))
    while [ "$tries" -gt 0 ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] && return 0
        sleep 0.05
        tries=$((tries - 1))
    done
    return 1
}

# start_server(name, [valgrind-prefix...]): render the config, start the
# server pinned to CPU 0 with a fresh port; sets SPID and SPORT.
start_server() {
    local name=$1; shift
    local dir=$TMP/$name cmd=() master=on
    mkdir -p "$dir"
    SPORT=$(python3 "$LIB/benchhttp.py" freeport) || return 1
    [ $# -gt 0 ] && master=off     # under valgrind: nginx in one process
    case $name in
    hotpath)
        cmd=("$HOTPATH_BIN" --listen "127.0.0.1:$SPORT" --workers 1 --root www
             --quiet --keepalive-timeout 60)
        ;;
    nginx)
        sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$SPORT|g" -e "s|@MASTER@|$master|g" \
            "$LIB/nginx.conf.in" > "$dir/nginx.conf"
        cmd=(nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log")
        ;;
    h2o)
        printf 'Hello, World!' > "$dir/plaintext.txt"
        sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$SPORT|g" "$LIB/h2o.conf.in" > "$dir/h2o.conf"
        cmd=(h2o -c "$dir/h2o.conf")
        ;;
    esac
    cmd=(taskset -c "$SRV_CPU" "$@" "${cmd[@]}")
    show "${cmd[@]}"
    "${cmd[@]}" >> "$dir/stderr.log" 2>&1 < /dev/null &
    SPID=$!
    BG_PIDS+=("$SPID")
    if ! wait_listen "$SPORT" "$SPID" $([ $# -gt 0 ] && echo 120 || echo 15); then
        echo "error: $name did not start listening on port $SPORT; its stderr:"
        indent < "$dir/stderr.log"
        stop_server
        return 1
    fi
    return 0
}

stop_server() {     # SIGTERM the server tree, wait (up to 60 s), then SIGKILL
    [ -n "$SPID" ] || return 0
    local kids i
    kids=$(tree_pids "$SPID" | tail -n +2)
    kill -TERM "$SPID" 2>/dev/null
    for i in $(seq 600); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SPID" 2>/dev/null; then
        echo "warning: server pid $SPID ignored SIGTERM for 60 s; killing it"
        kill -KILL "$SPID" 2>/dev/null
    fi
    wait "$SPID" 2>/dev/null
    for i in $kids; do kill -KILL "$i" 2>/dev/null; done
    forget "$SPID"
    SPID=""
}

# check_response(name): the server must answer 200, text/plain, Hello, World!
check_response() {
    local f=$TMP/$1/check.txt
    show curl -sS -i "http://127.0.0.1:$SPORT$PATH_URL"
    curl -sS -i "http://127.0.0.1:$SPORT$PATH_URL" > "$f" 2>&1
    tr -d '\r' < "$f" | indent
    echo
    echo "    (response: $(wc -c < "$f") bytes on the wire)"
    head -1 "$f" | grep -q ' 200' &&
        grep -qi '^content-type: text/plain' "$f" &&
        [ "$(tail -c 13 "$f")" = "Hello, World!" ]
}

# wrk_measure(server, kind, seconds, wrk args...): one measured wrk run.
wrk_measure() {
    local server=$1 kind=$2 secs=$3; shift 3
    local f=$TMP/$server/wrk-$kind-$RANDOM.txt b a t0 t1 cmd
    cmd=(taskset -c "$CLI_CPU" wrk -t1 "-c$CONNS" "-d${secs}s" "$@")
    show "${cmd[@]}"
    local mb ma
    b=$(cpu_ticks "$SPID")
    mb=$(cpu_busy)
    t0=$(date +%s.%N)
    times > "$f.times0"     # builtin, no fork: children's CPU so far
    "${cmd[@]}" > "$f" 2>&1
    times > "$f.times1"     # ... now including wrk's
    t1=$(date +%s.%N)
    ma=$(cpu_busy)
    a=$(cpu_ticks "$SPID")
    indent < "$f"
    local req rsecs rps non2xx sockerr
    req=$(awk '/ requests in / {print $1}' "$f")
    rsecs=$(awk '/ requests in / {v=$4; sub(/,$/, "", v); u=substr(v, length(v)); v=substr(v, 1, length(v)-1);
                 if (u == "m") v *= 60; else if (u == "h") v *= 3600; print v}' "$f")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$f")
    sockerr=$(awk -F'[ ,]+' '/Socket errors:/ {print $4+$6+$8+$10}' "$f")
    if [ -z "$req" ] || [ -z "$rps" ]; then
        echo "error: could not parse the wrk output"
        return 1
    fi
    set -- $b; local bu=$1 bs=$2
    set -- $a; local au=$1 as=$2
    set -- $mb $ma
    local b0=$((${7} - $1)) i0=$((${8} - $2)) t0c=$((${9} - $3))
    local b1=$((${10} - $4)) i1=$((${11} - $5)) t1c=$((${12} - $6))
    local srv=$((au - bu + as - bs)) wrkcpu
    wrkcpu=$(cat "$f.times0" "$f.times1" | awk '
        function secs(v,  m) { m = v; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", v); sub(/s$/, "", v); return m * 60 + v }
        FNR % 2 == 0 { c[NR / 2] = secs($1) + secs($2) }
        END { printf "%.2f", c[2] - c[1] }')
    [ "$t0c" -gt 0 ] || t0c=1
    [ "$t1c" -gt 0 ] || t1c=1
    # Softirq work (loopback TCP) mostly runs inside the server's own syscalls
    # and so is in its utime+stime as well as in /proc/stat's softirq column:
    # everything else busy on the server CPU is other processes.
    local oth=$((b0 - srv)); [ "$oth" -ge 0 ] || oth=0     # tick rounding
    echo "    server CPU: user $((au - bu)) + sys $((as - bs)) ticks (CLK_TCK $CLK) over $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s wall;" \
         "CPU$SRV_CPU: busy $((100 * b0 / t0c))% (irq+softirq $((100 * i0 / t0c))%), other processes $((100 * oth / t0c))%;" \
         "CPU$CLI_CPU: busy $((100 * b1 / t1c))% (irq+softirq $((100 * i1 / t1c))%), wrk ${wrkcpu} s CPU"
    [ "${non2xx:-0}" != 0 ] || [ "${sockerr:-0}" != 0 ] &&
        echo "    WARNING: $server $kind run had errors (non-2xx $non2xx, socket $sockerr)"
    echo "$server $kind requests=$req secs=$rsecs rps=$rps ut=$((au - bu)) st=$((as - bs)) non2xx=${non2xx:-0} sockerr=${sockerr:-0} c0busy=$b0 c0irq=$i0 c0total=$t0c c1busy=$b1 c1irq=$i1 c1total=$t1c wrkcpu=$wrkcpu wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" >> "$DATA"
}

strace_measure() {  # syscalls per request: strace -c -f during a short wrk run
    local server=$1 f=$TMP/$1/strace.txt p args=() st
    for p in $(tree_pids "$SPID"); do args+=(-p "$p"); done
    local cmd=(strace -c -f -o "$f" "${args[@]}")
    show "${cmd[@]}"
    "${cmd[@]}" 2> "$TMP/$server/strace.err" &
    st=$!
    BG_PIDS+=("$st")
    for p in $(seq 100); do
        grep -q attached "$TMP/$server/strace.err" 2>/dev/null && break
        sleep 0.05
    done
    sleep 0.5
    local wf=$TMP/$server/wrk-strace.txt
    local cmd2=(taskset -c "$CLI_CPU" wrk -t1 "-c$CONNS" "-d${STRACE_SECS}s" "http://127.0.0.1:$SPORT$PATH_URL")
    show "${cmd2[@]}"
    "${cmd2[@]}" > "$wf" 2>&1
    indent < "$wf"
    sleep 0.2
    kill -INT "$st" 2>/dev/null
    wait "$st" 2>/dev/null
    forget "$st"
    echo "    strace -c summary (top 12 by calls):"
    awk 'NR > 2 && !/^-/ && !/total$/' "$f" | sort -k4,4nr | head -12 | indent
    grep 'total$' "$f" | indent
    local calls req
    calls=$(awk '/total$/ {print $4}' "$f")
    req=$(awk '/ requests in / {print $1}' "$wf")
    if [ -n "$calls" ] && [ -n "$req" ]; then
        echo "$server strace calls=$calls requests=$req" >> "$DATA"
    else
        echo "error: could not parse strace/wrk output"
    fi
}

idle_measure() {    # RSS per idle keep-alive connection
    local server=$1 f=$TMP/$1/idle.txt
    local cmd=(taskset -c "$CLI_CPU" python3 "$LIB/idleconns.py" --port "$SPORT" --pid "$SPID"
               --count "$IDLE" --path "$PATH_URL")
    show "${cmd[@]}"
    "${cmd[@]}" > "$f" 2>&1
    local rc=$?
    indent < "$f"
    [ $rc = 0 ] || echo "    WARNING: not every idle connection was opened and kept (exit $rc)"
    echo "$server idle $(grep '=' "$f" | tr '\n' ' ')" >> "$DATA"
}

# cg_measure(server, depth, n): instructions executed by the server for n
# requests at pipelining depth `depth`, start-up and shutdown included.
cg_measure() {
    local server=$1 depth=$2 n=$3 out=$TMP/$1/callgrind.d$2.n$3.out
    start_server "$server" valgrind --tool=callgrind "--callgrind-out-file=$out" || return 1
    local cmd=(taskset -c "$CLI_CPU" python3 "$LIB/kaclient.py" --port "$SPORT" --requests "$n" --depth "$depth" --path "$PATH_URL")
    show "${cmd[@]}"
    local got
    got=$("${cmd[@]}" 2>&1)
    echo "    $got responses"
    stop_server
    local ir
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out" 2>/dev/null)
    if [ "$got" != "$n" ] || [ -z "$ir" ]; then
        echo "error: callgrind run failed (responses '$got', Ir '$ir')"
        return 1
    fi
    echo "    Ir = $ir"
    echo "$server cg depth=$depth n=$n ir=$ir" >> "$DATA"
}

# ---- header: command line and machine -----------------------------------
CLK=$(getconf CLK_TCK)
echo "meta clk_tck=$CLK runs=$RUNS" > "$DATA"
echo "# hotpath side-by-side HTTP benchmark, $(date -R)"
echo
echo "command: $(printf '%q ' "$0" "$@")"
echo "settings: BENCH_DURATION=$DURATION BENCH_CONNECTIONS=$CONNS BENCH_RUNS=$RUNS BENCH_SERVERS='$SERVERS'" \
     "BENCH_QUICK=$QUICK BENCH_IDLE_CONNS=$IDLE BENCH_PIPELINE_DEPTH=$DEPTH BENCH_STRACE_DURATION=$STRACE_SECS" \
     "BENCH_CALLGRIND='$CALLGRIND' BENCH_CG_N1=$CG_N1 BENCH_CG_N2=$CG_N2"
echo "server CPU: $SRV_CPU (taskset), client CPU: $CLI_CPU (taskset); fd limit $(ulimit -n)"
echo
echo "## machine"
echo "nproc: $(nproc)"
echo "kernel: $(uname -srmv)"
echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "os: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}")"
echo "memory: $(awk '/^MemTotal/ {print $2, $3}' /proc/meminfo)"
[[ " $SERVERS " == *" hotpath "* ]] && echo "hotpath: $("$HOTPATH_BIN" --version 2>&1 | head -1) ($HOTPATH_BIN)"
command -v nginx >/dev/null && echo "nginx: $(nginx -v 2>&1 | head -1)"
command -v h2o >/dev/null && echo "h2o: $(h2o --version 2>&1 | head -1)"
echo "wrk: $(wrk -v 2>&1 | head -1)"
echo "strace: $(strace -V 2>&1 | head -1)"
command -v valgrind >/dev/null && echo "valgrind: $(valgrind --version 2>&1)"
echo "python3: $(python3 --version 2>&1)"
set -- $(cpu_busy); sleep 1; set -- "$@" $(cpu_busy)
echo "load before start: loadavg $(cut -d' ' -f1-3 /proc/loadavg);" \
     "over 1 s CPU$SRV_CPU $((100 * (${7} - $1) / (${9} - $3 > 0 ? ${9} - $3 : 1)))% busy," \
     "CPU$CLI_CPU $((100 * (${10} - $4) / (${12} - $6 > 0 ? ${12} - $6 : 1)))% busy (should be ~0% on a quiet machine)"
echo

# ---- the measurements ---------------------------------------------------
# All servers run side by side (an idle server costs nothing) and the runs are
# interleaved -- run 1 of every server, then run 2, ... -- so that a change
# in background load during the benchmark hits every server alike.
declare -A PIDS PORTS
LIVE=()
use() { SPID=${PIDS[$1]}; SPORT=${PORTS[$1]}; url="http://127.0.0.1:$SPORT$PATH_URL"; }

echo "## starting the servers"
echo
for server in $SERVERS; do
    if ! start_server "$server"; then
        FAILED+=("$server"); echo; continue
    fi
    echo "$server pids: $(tree_pids "$SPID" | tr '\n' ' ')"
    if ! check_response "$server"; then
        echo "error: $server did not answer 200 text/plain 'Hello, World!'; skipping it"
        stop_server; FAILED+=("$server"); echo; continue
    fi
    PIDS[$server]=$SPID PORTS[$server]=$SPORT
    LIVE+=("$server")
    SPID=""
    echo
done

for server in "${LIVE[@]}"; do
    use "$server"
    echo "### $server warm-up ($WARMUP s, not measured)"
    show taskset -c "$CLI_CPU" wrk -t1 "-c$CONNS" "-d${WARMUP}s" "$url"
    taskset -c "$CLI_CPU" wrk -t1 "-c$CONNS" "-d${WARMUP}s" "$url" > /dev/null 2>&1
done
echo
echo "## requests/s and server CPU per request"
for run in $(seq "$RUNS"); do
    for server in "${LIVE[@]}"; do
        use "$server"
        echo "### $server plain run $run/$RUNS"
        wrk_measure "$server" plain "$DURATION" "$url"
    done
done
echo
echo "## pipelined, depth $DEPTH"
for run in $(seq "$RUNS"); do
    for server in "${LIVE[@]}"; do
        use "$server"
        echo "### $server pipelined (depth $DEPTH) run $run/$RUNS"
        wrk_measure "$server" pipe "$DURATION" -s "$LIB/pipeline.lua" "$url" -- "$DEPTH"
    done
done
echo
echo "## syscalls per request"
for server in "${LIVE[@]}"; do
    use "$server"
    echo "### $server syscalls per request"
    strace_measure "$server"
done
echo
echo "## RSS per idle keep-alive connection ($IDLE connections)"
for server in "${LIVE[@]}"; do
    use "$server"
    echo "### $server idle connections"
    idle_measure "$server"
done
for server in "${LIVE[@]}"; do
    use "$server"
    stop_server
done
echo

for server in $CALLGRIND; do
    [[ " $SERVERS " == *" $server "* ]] || continue
    [[ " ${FAILED[*]:-} " == *" $server "* ]] && continue
    echo "## $server under callgrind (instructions per request = (Ir2-Ir1)/(N2-N1))"
    for depth in 1 "$DEPTH"; do
        for n in "$CG_N1" "$CG_N2"; do
            echo "### $server callgrind depth $depth, $n requests"
            cg_measure "$server" "$depth" "$n" || { stop_server; break; }
        done
    done
    echo
done

echo "## results"
echo
echo "raw measurements:"
indent < "$DATA"
echo
python3 "$LIB/report.py" "$DATA"
echo
T_END=$(date +%s)
echo "total benchmark time: $((T_END - T_START)) s"
[ ${#FAILED[@]} -gt 0 ] && echo "FAILED servers: ${FAILED[*]}"
echo "saved to ${OUT#"$ROOT"/}"
mv "$PARTIAL" "$OUT"
[ ${#FAILED[@]} -eq 0 ]
