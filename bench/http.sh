#!/usr/bin/env bash
# shellcheck disable=SC2034  # PROG, PATH_URL, ...: used by bench/lib/common.sh
# bench/http.sh -- side-by-side HTTP/1.1 benchmark of hotpath, nginx and h2o.
#
# Usage: bash bench/http.sh [SECTION...]   SECTION: plaintext, static or all
# (the default): `bash bench/http.sh static` runs only the static-file
# section, `bash bench/http.sh` everything.
#
# Every server runs with one worker, pinned to CPU 0; the load generator (wrk,
# or the Python helpers in bench/lib) runs on CPU 1. Section "plaintext",
# GET /plaintext (a built-in endpoint; nginx `return 200`), for each server:
#   - wrk -t1 -c$BENCH_CONNECTIONS, $BENCH_RUNS runs: requests/s, and server
#     CPU seconds (utime+stime of the server's process tree, /proc/PID/stat,
#     before and after the run) per request, split into user and kernel time;
#   - the same with pipelining depth 16 (bench/lib/pipeline.lua);
#   - latency at a constant rate (hpbench -R, $BENCH_RATE_PCT % of nginx's
#     median plain req/s): corrected and uncorrected percentiles, for
#     hotpath and nginx;
#   - syscalls per request (strace -c -f attached during a short wrk run);
#   - RSS bytes per idle keep-alive connection (bench/lib/idleconns.py);
#   - instructions per request under callgrind (two runs with N1 and N2
#     requests from bench/lib/kaclient.py; (Ir2-Ir1)/(N2-N1) so start-up
#     cancels), for the servers in $BENCH_CALLGRIND.
# Section "static": files of random bytes (1 KiB, 64 KiB, 1 MiB by default;
# .bin, served as application/octet-stream, so nothing is compressed) in a
# temp document root, served by hotpath (--root), nginx (sendfile,
# tcp_nopush, open_file_cache: bench/lib/nginx.conf.in) and h2o (file.dir);
# per size, wrk -t1 -c$BENCH_CONNECTIONS (keep-alive), $BENCH_RUNS runs:
# requests/s, MB/s of file data, server CPU per request and per MB (user
# and kernel), and hotpath/nginx ratios.
# Prints the tables (bench/lib/report.py) and saves everything printed,
# including every command run and the machine description, to
# bench/results/http-YYYYMMDD-HHMM.txt. Builds nothing: run `make` first
# (`make bench` does deps, build, then this script). See bench/README.md.
# The generic helpers (server start/stop, /proc readings, logging, cleanup)
# are in bench/lib/common.sh, shared with bench/hpbench-vs-wrk.sh.
#
# Environment: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (100),
# BENCH_RUNS (3), BENCH_SERVERS ("hotpath nginx h2o"), BENCH_QUICK=1 (3 s,
# 1 run, 1 s warm-ups, 1,000 idle connections), BENCH_IDLE_CONNS (10000),
# BENCH_PIPELINE_DEPTH (16), BENCH_STRACE_DURATION (3),
# BENCH_CALLGRIND (servers to run under callgrind, default: all of
# BENCH_SERVERS; "" = none),
# BENCH_CG_N1/BENCH_CG_N2 (2000/12000), HOTPATH_BIN (build/hotpath),
# BENCH_RATE (auto: $BENCH_RATE_PCT % of nginx's rate; 0: skip the
# constant-rate row; N: N requests/s), BENCH_RATE_PCT (50),
# HPBENCH_BIN (build/hpbench), BENCH_KEEP_TMP=1 (keep the temp dir with configs and raw outputs),
# BENCH_STATIC_SIZES (file sizes in bytes for the static section, default
# "1024 65536 1048576").

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB=$ROOT/bench/lib
cd "$ROOT" || exit 2

DO_PLAIN=0 DO_STATIC=0
[ $# -gt 0 ] || DO_PLAIN=1 DO_STATIC=1
for a in "$@"; do
    case $a in
    all) DO_PLAIN=1 DO_STATIC=1 ;;
    plaintext) DO_PLAIN=1 ;;
    static) DO_STATIC=1 ;;
    -h|--help) sed -n '3,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bench/http.sh: unknown section '$a' (plaintext, static, all)" >&2; exit 2 ;;
    esac
done
SECTIONS=$([ $DO_PLAIN = 1 ] && printf 'plaintext ')$([ $DO_STATIC = 1 ] && printf static)
SECTIONS=${SECTIONS% }

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    d_dur=3 d_runs=1 d_idle=1000 d_n1=500 d_n2=2500 d_strace=2 d_warm=1
else
    d_dur=10 d_runs=3 d_idle=10000 d_n1=2000 d_n2=12000 d_strace=3 d_warm=2
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
HPBENCH_BIN=${HPBENCH_BIN:-$ROOT/build/hpbench}
RATE=${BENCH_RATE:-auto}
RATE_PCT=${BENCH_RATE_PCT:-50}
STATIC_SIZES=${BENCH_STATIC_SIZES:-1024 65536 1048576}
SRV_CPU=0
CLI_CPU=1
WARMUP=$d_warm
PATH_URL=/plaintext

PROG=bench/http.sh
# shellcheck source=lib/common.sh
. "$LIB/common.sh"

# ---- prerequisites ------------------------------------------------------
positive_ints "$DURATION" "$CONNS" "$RUNS" "$IDLE" "$DEPTH" "$STRACE_SECS" "$CG_N1" "$CG_N2" "$RATE_PCT"
# shellcheck disable=SC2086  # a list of sizes
[ $DO_STATIC = 0 ] || positive_ints $STATIC_SIZES
# Without the plaintext section: no constant-rate row, strace or callgrind.
[ $DO_PLAIN = 1 ] || { RATE=0; CALLGRIND=""; }
[ "$CG_N2" -gt "$CG_N1" ] || die "BENCH_CG_N2 must be larger than BENCH_CG_N1"
for s in $SERVERS; do
    case $s in hotpath|nginx|h2o) ;; *) die "unknown server '$s' in BENCH_SERVERS (hotpath nginx h2o)";; esac
done
case $RATE in
    0|auto) ;;
    *) [[ $RATE =~ ^[0-9]+$ ]] || die "BENCH_RATE must be auto, 0 or a rate in requests/s (got '$RATE')" ;;
esac
# The constant-rate row: hotpath and nginx (the ones selected), at
# $RATE_PCT % of nginx's median plain req/s ("auto") or at a fixed rate.
RATE_SERVERS=""
if [ "$RATE" != 0 ]; then
    for s in hotpath nginx; do [[ " $SERVERS " == *" $s "* ]] && RATE_SERVERS+=" $s"; done
    RATE_SERVERS=${RATE_SERVERS# }
    [ "$RATE" = auto ] && [[ " $SERVERS " != *" nginx "* ]] && RATE_SERVERS=""
fi
need=(wrk taskset python3 curl ss awk sed)
[ $DO_PLAIN = 1 ] && need+=(strace)
[ $DO_STATIC = 1 ] && need+=(head cmp)
[ -n "$CALLGRIND" ] && need+=(valgrind)
for s in $SERVERS; do [ "$s" = hotpath ] || need+=("$s"); done
need_tools "${need[@]}"
if [ -n "$RATE_SERVERS" ] && [ ! -x "$HPBENCH_BIN" ]; then
    die "$HPBENCH_BIN not found (constant-rate row); build it with 'make', or skip the row with BENCH_RATE=0"
fi
if [[ " $SERVERS " == *" hotpath "* ]] && [ ! -x "$HOTPATH_BIN" ]; then
    die "$HOTPATH_BIN not found; build it first with 'make' (or run 'make bench')"
fi
[ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs (server on CPU $SRV_CPU, client on CPU $CLI_CPU)"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ $DO_PLAIN = 0 ] || [ "$(ulimit -n)" -ge $((IDLE + 200)) ] || die "fd limit $(ulimit -n) too low for $IDLE idle connections; raise it with ulimit -n"

# ---- bookkeeping, logging and cleanup (bench/lib/common.sh) -------------
bench_begin http

# wrk_measure(server, kind, seconds, wrk args...): one measured wrk run.
# WRK_TAGS, if set, is appended to its raw-data line (key=value ...).
wrk_measure() {
    local server=$1 kind=$2 secs=$3; shift 3
    local f=$TMP/$server/wrk-$kind-$RANDOM.txt b a cmd mb ma
    cmd=(taskset -c "$CLI_CPU" wrk -t1 "-c$CONNS" "-d${secs}s" "$@")
    show "${cmd[@]}"
    b=$(cpu_ticks "$SPID")
    mb=$(cpu_busy)
    timed_run "$f" "${cmd[@]}"      # RUN_CPU: wrk's own CPU time
    ma=$(cpu_busy)
    a=$(cpu_ticks "$SPID")
    indent < "$f"
    if ! wrk_parse "$f"; then
        echo "error: could not parse the wrk output"
        return 1
    fi
    local wrkcpu
    wrkcpu=$(echo "$RUN_CPU" | awk '{printf "%.2f", $1 + $2}')
    run_usage "$b" "$a" "$mb" "$ma" "wrk ${wrkcpu} s CPU"
    [ "$WRK_NON2XX" != 0 ] || [ "$WRK_SOCKERR" != 0 ] &&
        echo "    WARNING: $server $kind run had errors (non-2xx $WRK_NON2XX, socket $WRK_SOCKERR)"
    echo "$server $kind requests=$WRK_REQ secs=$WRK_SECS rps=$WRK_RPS $USAGE non2xx=$WRK_NON2XX sockerr=$WRK_SOCKERR wrkcpu=$wrkcpu wall=$RUN_WALL${WRK_TAGS:+ $WRK_TAGS}" >> "$DATA"
}

# rate_measure(server, rate): one constant-rate hpbench run; corrected and
# uncorrected latency percentiles from its JSON report.
rate_measure() {
    local server=$1 rate=$2 j=$TMP/$1/rate-$RANDOM.json
    local f=${j%.json}.txt b a mb ma cmd fig
    cmd=(taskset -c "$CLI_CPU" "$HPBENCH_BIN" -R "$rate" -c "$CONNS" -d "$DURATION" --json "$j" "$url")
    show "${cmd[@]}"
    b=$(cpu_ticks "$SPID")
    mb=$(cpu_busy)
    timed_run "$f" "${cmd[@]}"
    ma=$(cpu_busy)
    a=$(cpu_ticks "$SPID")
    indent < "$f"
    if ! fig=$(python3 "$LIB/hpjson.py" "$j" requests secs=duration_s rps=requests_per_s \
                   errors=errors_total p50=latency.p50 p99=latency.p99 p999=latency.p99_9 \
                   up50=latency_uncorrected.p50 up99=latency_uncorrected.p99 \
                   up999=latency_uncorrected.p99_9 max=latency.max); then
        echo "error: hpbench wrote no JSON report (exit $RUN_RC)"
        return 1
    fi
    run_usage "$b" "$a" "$mb" "$ma" "hpbench $(echo "$RUN_CPU" | awk '{printf "%.2f", $1 + $2}') s CPU"
    echo "$server rate target=$rate $fig $USAGE clientcpu=$(echo "$RUN_CPU" | awk '{print $1 + $2}') wall=$RUN_WALL" >> "$DATA"
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
echo "meta clk_tck=$CLK runs=$RUNS conns=$CONNS" > "$DATA"
echo "# hotpath side-by-side HTTP benchmark, $(date -R)"
echo
echo "command: $(printf '%q ' "$0" "$@")"
echo "sections: $SECTIONS"
echo "settings: BENCH_DURATION=$DURATION BENCH_CONNECTIONS=$CONNS BENCH_RUNS=$RUNS BENCH_SERVERS='$SERVERS'" \
     "BENCH_QUICK=$QUICK BENCH_IDLE_CONNS=$IDLE BENCH_PIPELINE_DEPTH=$DEPTH BENCH_STRACE_DURATION=$STRACE_SECS" \
     "BENCH_CALLGRIND='$CALLGRIND' BENCH_CG_N1=$CG_N1 BENCH_CG_N2=$CG_N2 BENCH_RATE=$RATE BENCH_RATE_PCT=$RATE_PCT" \
     "BENCH_STATIC_SIZES='$STATIC_SIZES'"
echo "server CPU: $SRV_CPU (taskset), client CPU: $CLI_CPU (taskset); fd limit $(ulimit -n)"
echo
tools=(nginx h2o wrk python3)
[ $DO_PLAIN = 1 ] && tools+=(strace valgrind)
[[ " $SERVERS " == *" hotpath "* ]] && tools=(hotpath "${tools[@]}")
[ -n "$RATE_SERVERS" ] && tools+=(hpbench)
print_machine "${tools[@]}"
echo

# ---- the measurements ---------------------------------------------------
# Section "plaintext": GET /plaintext, plain, pipelined, constant rate,
# syscalls, idle connections, then callgrind.
# All servers run side by side (an idle server costs nothing) and the runs are
# interleaved -- run 1 of every server, then run 2, ... -- so that a change
# in background load during the benchmark hits every server alike.
plaintext_section() {
    echo "## starting the servers"
    echo
    start_all $SERVERS

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
    if [ -n "$RATE_SERVERS" ]; then
        rate=$RATE
        if [ "$RATE" = auto ]; then
            # RATE_PCT % of the median plain req/s nginx achieved in this run
            rate=$(awk -v pct="$RATE_PCT" '$1 == "nginx" && $2 == "plain" {
                       for (i = 3; i <= NF; i++) if ($i ~ /^rps=/) v[n++] = substr($i, 5) + 0 }
                   END { if (n == 0) exit
                         for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
                         m = n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
                         printf "%d", m * pct / 100 }' "$DATA")
        fi
        if [ -z "$rate" ] || [ "$rate" -le 0 ]; then
            echo "## constant rate: skipped (no nginx plain req/s measured)"
        else
            echo "## constant rate: $rate req/s ($([ "$RATE" = auto ] && echo "$RATE_PCT % of nginx's median plain req/s" || echo "BENCH_RATE")), hpbench -R, $CONNS connections"
            echo "meta rate=$rate rate_src=$([ "$RATE" = auto ] && echo "${RATE_PCT}%nginx" || echo fixed)" >> "$DATA"
            for run in $(seq "$RUNS"); do
                for server in $RATE_SERVERS; do
                    [[ " ${LIVE[*]} " == *" $server "* ]] || continue
                    use "$server"
                    echo "### $server constant rate $rate req/s run $run/$RUNS"
                    rate_measure "$server" "$rate"
                done
            done
        fi
        echo
    fi
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
    stop_all
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
}

# ---- static files --------------------------------------------------------
# static_check(server): every file, fetched with curl from the running
# server, must come back 200, byte for byte, as application/octet-stream and
# without Content-Encoding; the 1 KiB response head is shown.
static_check() {
    local server=$1 size f h b ok=0
    for size in $STATIC_SIZES; do
        f=$STATIC_ROOT/static/file-$size.bin h=$TMP/$server/static-$size.head b=$TMP/$server/static-$size.body
        curl -sS -D "$h" -o "$b" "http://127.0.0.1:$SPORT/static/file-$size.bin" 2>&1 | indent
        if [ "$size" = "${STATIC_SIZES%% *}" ]; then
            show curl -sS -D - -o /dev/null "http://127.0.0.1:$SPORT/static/file-$size.bin"
            tr -d '\r' < "$h" | indent
        fi
        if ! head -1 "$h" | grep -q ' 200' || ! cmp -s "$f" "$b" ||
                ! grep -qi '^content-type: application/octet-stream' "$h" ||
                grep -qi '^content-encoding:' "$h"; then
            echo "error: $server: GET /static/file-$size.bin is not 200, application/octet-stream," \
                 "unencoded and byte-identical to the file"
            tr -d '\r' < "$h" | indent
            ok=1
        fi
    done
    return $ok
}

# Section "static": files of $STATIC_SIZES random bytes, the servers
# restarted on a temp document root, wrk per size.
static_section() {
    local size f server run live=()
    STATIC_ROOT=$TMP/docroot
    mkdir -p "$STATIC_ROOT/static"
    echo "## static files"
    echo
    echo "document root $STATIC_ROOT: files of random bytes (incompressible; .bin is served as"
    echo "application/octet-stream, which no server compresses, and wrk sends no Accept-Encoding):"
    for size in $STATIC_SIZES; do
        f=$STATIC_ROOT/static/file-$size.bin
        echo "\$ head -c $size /dev/urandom > $f"
        head -c "$size" /dev/urandom > "$f"
    done
    # shellcheck disable=SC2012  # for people: sizes and names
    ls -l "$STATIC_ROOT/static" | indent
    echo
    echo "server settings for the static files:"
    echo "  hotpath: --root $STATIC_ROOT, its defaults (URL /static/file-SIZE.bin)"
    echo "  nginx (bench/lib/nginx.conf.in; access_log off for the whole server):"
    sed -n '/location \/static\//,/^        }/p' "$LIB/nginx.conf.in" | sed "s|@DOCROOT@|$STATIC_ROOT|" | indent
    echo "  h2o (bench/lib/h2o.conf.in): file.dir $STATIC_ROOT/static on /static, its defaults"
    echo "    (ETag on, per-event-loop open-file cache; h2o 2.2 preads, it has no sendfile)"
    echo
    echo "## starting the servers (static document root)"
    echo
    DOCROOT=$STATIC_ROOT
    LIVE=()
    start_all $SERVERS
    DOCROOT=""
    for server in "${LIVE[@]}"; do
        use "$server"
        echo "### $server: checking the static files"
        if static_check "$server"; then
            live+=("$server")
        else
            stop_server; FAILED+=("$server")
        fi
        echo
    done
    LIVE=("${live[@]}")
    for size in $STATIC_SIZES; do
        echo "## static file of $size bytes: requests/s, MB/s and server CPU per MB"
        for server in "${LIVE[@]}"; do
            use "$server"
            url="http://127.0.0.1:$SPORT/static/file-$size.bin"
            echo "### $server warm-up ($WARMUP s, not measured)"
            show taskset -c "$CLI_CPU" wrk -t1 "-c$CONNS" "-d${WARMUP}s" "$url"
            taskset -c "$CLI_CPU" wrk -t1 "-c$CONNS" "-d${WARMUP}s" "$url" > /dev/null 2>&1
        done
        for run in $(seq "$RUNS"); do
            for server in "${LIVE[@]}"; do
                use "$server"
                url="http://127.0.0.1:$SPORT/static/file-$size.bin"
                echo "### $server static $size bytes run $run/$RUNS"
                WRK_TAGS="size=$size" wrk_measure "$server" static "$DURATION" "$url"
            done
        done
        echo
    done
    stop_all
}

[ $DO_PLAIN = 1 ] && plaintext_section
[ $DO_STATIC = 1 ] && static_section

echo "## results"
echo
echo "raw measurements:"
indent < "$DATA"
echo
python3 "$LIB/report.py" "$DATA"
echo
bench_finish
[ ${#FAILED[@]} -eq 0 ]
