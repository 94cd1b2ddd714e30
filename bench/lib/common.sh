# shellcheck shell=bash disable=SC2034,SC2046  # globals for the caller; word splitting wanted
# bench/lib/common.sh -- shell helpers shared by bench/http.sh and
# bench/hpbench-vs-wrk.sh. Sourced, not run.
#
# The caller sets, before sourcing: ROOT (repository root), LIB (bench/lib),
# PROG (script name for messages), SRV_CPU and CLI_CPU (server and client
# CPUs), PATH_URL (the path every server answers), HOTPATH_BIN.
# bench_begin() then creates the temp dir $TMP, the raw-data file $DATA and
# the results file (written as $OUT.partial, renamed by bench_finish), and
# installs the cleanup trap. Every background process goes into BG_PIDS so
# that the trap can stop it; SPID/SPORT are the running server's root pid
# and port. Invariant: a server is stopped (and forgotten) before SPID is
# reused, and nothing started here outlives the script.

die() { echo "$PROG: $*" >&2; exit 2; }

need_tools() {      # need_tools(tool...): stop with exit 2 if one is missing
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || die "'$t' not found; install the benchmark tools with 'make deps'"
    done
}

positive_ints() {   # positive_ints(value...): every value must be an integer > 0
    local n
    for n in "$@"; do
        [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || die "BENCH_* values must be positive integers (got '$n')"
    done
}

# bench_begin(prefix): temp dir, results file bench/results/PREFIX-STAMP.txt,
# cleanup trap, and from then on everything printed is also logged.
bench_begin() {
    TMP=$(mktemp -d "/tmp/hotpath-$1.XXXXXX") || die "mktemp failed"
    DATA=$TMP/data
    STAMP=$(date +%Y%m%d-%H%M)
    mkdir -p "$ROOT/bench/results"
    OUT=$ROOT/bench/results/$1-$STAMP.txt
    [ -e "$OUT" ] && OUT=$ROOT/bench/results/$1-$STAMP-$$.txt
    PARTIAL=$OUT.partial
    INCOMPLETE=/tmp/hotpath-$1-$STAMP-incomplete.txt
    BG_PIDS=()          # every background process we started, for cleanup
    SPID=""             # root pid of the running server
    SPORT=""
    FAILED=()
    T_START=$(date +%s)
    CLK=$(getconf CLK_TCK)
    trap cleanup EXIT
    trap 'echo "interrupted"; exit 130' INT TERM
    exec > >(tee -a "$PARTIAL") 2>&1
}

bench_finish() {    # total time, then the results file gets its final name
    echo "total benchmark time: $(($(date +%s) - T_START)) s"
    [ ${#FAILED[@]} -gt 0 ] && echo "FAILED servers: ${FAILED[*]}"
    echo "saved to ${OUT#"$ROOT"/}"
    mv "$PARTIAL" "$OUT"
}

cleanup() {
    local rc=$? p c
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
        mv "$PARTIAL" "$INCOMPLETE"
        echo "incomplete run; its log is in $INCOMPLETE" >&2
    fi
    exit "$rc"
}

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

# timed_run(outfile, cmd...): run cmd in the foreground with its output in
# outfile; sets RUN_RC, RUN_WALL (s) and RUN_CPU ("user sys" CPU seconds of
# cmd and its children, from the shell's children rusage: bash's `times`,
# a builtin, taken right before and after so that only cmd is counted).
timed_run() {
    local f=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    # Into files, not $(times): a command substitution is a fresh subshell
    # whose children's rusage is zero.
    times > "$f.times0"
    "$@" > "$f" 2>&1
    RUN_RC=$?
    times > "$f.times1"
    t1=$(date +%s.%N)
    RUN_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    RUN_CPU=$(cat "$f.times0" "$f.times1" | awk '
        function secs(v,  m) { m = v; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", v); sub(/s$/, "", v); return m * 60 + v }
        NR == 2 { u0 = secs($1); s0 = secs($2) }
        NR == 4 { printf "%.3f %.3f", secs($1) - u0, secs($2) - s0 }')
}

# run_usage(ticks_before, ticks_after, busy_before, busy_after, client_note):
# after a timed_run, prints the server's CPU use and both CPUs' load, and
# sets USAGE to the matching key=value fields for the raw data file (ut/st:
# server ticks; c0*/c1*: /proc/stat ticks of the server and client CPU).
run_usage() {
    set -- $1 $2 $3 $4 "$5"
    local ut=$(($3 - $1)) st=$(($4 - $2))
    local b0=$((${11} - $5)) i0=$((${12} - $6)) t0c=$((${13} - $7))
    local b1=$((${14} - $8)) i1=$((${15} - $9)) t1c=$((${16} - ${10}))
    [ "$t0c" -gt 0 ] || t0c=1
    [ "$t1c" -gt 0 ] || t1c=1
    # Softirq work (loopback TCP) mostly runs inside the server's own syscalls
    # and so is in its utime+stime as well as in /proc/stat's softirq column:
    # everything else busy on the server CPU is other processes.
    local oth=$((b0 - ut - st)); [ "$oth" -ge 0 ] || oth=0     # tick rounding
    echo "    server CPU: user $ut + sys $st ticks (CLK_TCK $CLK) over $RUN_WALL s wall;" \
         "CPU$SRV_CPU: busy $((100 * b0 / t0c))% (irq+softirq $((100 * i0 / t0c))%), other processes $((100 * oth / t0c))%;" \
         "CPU$CLI_CPU: busy $((100 * b1 / t1c))% (irq+softirq $((100 * i1 / t1c))%), ${17}"
    USAGE="ut=$ut st=$st c0busy=$b0 c0irq=$i0 c0total=$t0c c1busy=$b1 c1irq=$i1 c1total=$t1c"
}

# wrk_parse(file): sets WRK_REQ (requests), WRK_SECS (run seconds), WRK_RPS,
# WRK_NON2XX and WRK_SOCKERR from wrk's summary; returns 1 if it has none.
wrk_parse() {
    local f=$1
    WRK_REQ=$(awk '/ requests in / {print $1}' "$f")
    WRK_SECS=$(awk '/ requests in / {v=$4; sub(/,$/, "", v); u=substr(v, length(v)); v=substr(v, 1, length(v)-1);
                 if (u == "m") v *= 60; else if (u == "h") v *= 3600; print v}' "$f")
    WRK_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$f")
    WRK_NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$f")
    WRK_NON2XX=${WRK_NON2XX:-0}
    WRK_SOCKERR=$(awk -F'[ ,]+' '/Socket errors:/ {print $4+$6+$8+$10}' "$f")
    WRK_SOCKERR=${WRK_SOCKERR:-0}
    [ -n "$WRK_REQ" ] && [ -n "$WRK_RPS" ]
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
# server pinned to CPU $SRV_CPU with a fresh port; sets SPID and SPORT.
# DOCROOT, when set, is the static-file root: hotpath's --root (default www),
# and the directory whose static/ subdirectory nginx and h2o serve at
# /static/ (default: an empty one in the server's temp dir).
start_server() {
    local name=$1; shift
    local dir=$TMP/$name cmd=() master=on docroot=${DOCROOT:-$TMP/$name/docroot}
    mkdir -p "$dir"
    [ -n "${DOCROOT:-}" ] || mkdir -p "$docroot/static"
    SPORT=$(python3 "$LIB/benchhttp.py" freeport) || return 1
    [ $# -gt 0 ] && master=off     # under valgrind: nginx in one process
    case $name in
    hotpath)
        cmd=("$HOTPATH_BIN" --listen "127.0.0.1:$SPORT" --workers 1 --root "${DOCROOT:-www}"
             --quiet --keepalive-timeout 60)
        ;;
    nginx)
        sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$SPORT|g" -e "s|@MASTER@|$master|g" \
            -e "s|@DOCROOT@|$docroot|g" "$LIB/nginx.conf.in" > "$dir/nginx.conf"
        cmd=(nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log")
        ;;
    h2o)
        printf 'Hello, World!' > "$dir/plaintext.txt"
        sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$SPORT|g" -e "s|@DOCROOT@|$docroot|g" \
            "$LIB/h2o.conf.in" > "$dir/h2o.conf"
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

# start_all(servers...): start and check every server; the ones that answer
# go into LIVE with their pid and port in PIDS/PORTS (use() selects one),
# the others into FAILED.
declare -A PIDS PORTS
LIVE=()
start_all() {
    local server
    for server in "$@"; do
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
}
use() { SPID=${PIDS[$1]}; SPORT=${PORTS[$1]}; url="http://127.0.0.1:$SPORT$PATH_URL"; }

stop_all() {
    local server
    for server in "${LIVE[@]}"; do
        use "$server"
        stop_server
    done
}

# print_machine(tool...): the machine, the versions of the given tools and
# how busy both CPUs were over one second before the start.
print_machine() {
    local t
    echo "## machine"
    echo "nproc: $(nproc)"
    echo "kernel: $(uname -srmv)"
    echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "os: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}")"
    echo "memory: $(awk '/^MemTotal/ {print $2, $3}' /proc/meminfo)"
    for t in "$@"; do
        case $t in
        hotpath) echo "hotpath: $("$HOTPATH_BIN" --version 2>&1 | head -1) ($HOTPATH_BIN)" ;;
        hpbench) echo "hpbench: $("$HPBENCH_BIN" --version 2>&1 | head -1) ($HPBENCH_BIN)" ;;
        nginx) command -v nginx >/dev/null && echo "nginx: $(nginx -v 2>&1 | head -1)" ;;
        h2o) command -v h2o >/dev/null && echo "h2o: $(h2o --version 2>&1 | head -1)" ;;
        wrk) echo "wrk: $(wrk -v 2>&1 | head -1)" ;;
        strace) echo "strace: $(strace -V 2>&1 | head -1)" ;;
        valgrind) command -v valgrind >/dev/null && echo "valgrind: $(valgrind --version 2>&1)" ;;
        perf) command -v perf >/dev/null && echo "perf: $(perf --version 2>&1 | head -1)" ;;
        python3) echo "python3: $(python3 --version 2>&1)" ;;
        esac
    done
    set -- $(cpu_busy); sleep 1; set -- "$@" $(cpu_busy)
    echo "load before start: loadavg $(cut -d' ' -f1-3 /proc/loadavg);" \
         "over 1 s CPU$SRV_CPU $((100 * (${7} - $1) / (${9} - $3 > 0 ? ${9} - $3 : 1)))% busy," \
         "CPU$CLI_CPU $((100 * (${10} - $4) / (${12} - $6 > 0 ? ${12} - $6 : 1)))% busy (should be ~0% on a quiet machine)"
    echo "busiest other processes (ps %CPU, average over each one's lifetime):"
    ps -eo pid,pcpu,etime,args --sort=-pcpu | awk 'NR > 1 && $2 >= 1.0' | head -8 | cut -c1-150 | indent
}
