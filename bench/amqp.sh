#!/usr/bin/env bash
# bench/amqp.sh -- hpbench's AMQP mode against Debian's RabbitMQ, pinned.
#
# Usage: bash bench/amqp.sh [CASE...]   CASE: publish, confirm100,
# confirm1000, consume, consume4 (default: all, in that order).
#
# A private RabbitMQ node (bench/lib/amqp_broker.py: tests/integration/
# rabbitmq.py's Broker, its own ports and data) runs pinned to CPU 0, and
# hpbench to CPU 1, one thread. Each case is one hpbench run of
# $BENCH_DURATION s after a $BENCH_WARMUP s warm-up, messages of
# $BENCH_AMQP_SIZE bytes:
#   publish      basic publish: 1 producer, no confirms, no consumer
#   confirm100   1 producer, --confirm 100, no consumer
#   confirm1000  1 producer, --confirm 1000, no consumer
#   consume      basic consume: 1 producer, 1 consumer (publish + consume)
#   consume4     four consumers: 1 producer, 4 consumers on one queue
# and, per case: messages/s published and consumed, confirm and end-to-end
# latency (p50, p99), hpbench's CPU per message published (user + sys, from
# its getrusage over the measured part), the broker's CPU per message
# (utime + stime of the Erlang VM, /proc/PID/stat, before and after), and
# hpbench's syscalls per message (strace -c -f on a second, shorter run of
# $BENCH_STRACE_DURATION s; strace slows it down, so only the counts mean
# anything). Prints the table and saves everything printed, the commands
# included, to bench/results/hpbench-amqp-YYYYMMDD-HHMM.txt. Builds
# nothing: run `make` first.
#
# Environment: BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_AMQP_SIZE
# (1024), BENCH_STRACE_DURATION (3; 0: no strace), HPBENCH_BIN
# (build/hpbench), BENCH_KEEP_TMP=1 (keep the JSON and strace outputs).

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

ALL="publish confirm100 confirm1000 consume consume4"
CASES=""
for a in "$@"; do
    case $a in
    -h|--help) sed -n '3,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    publish|confirm100|confirm1000|consume|consume4) CASES="$CASES $a" ;;
    *) echo "bench/amqp.sh: unknown case '$a' ($ALL)" >&2; exit 2 ;;
    esac
done
CASES=${CASES:-$ALL}

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
SIZE=${BENCH_AMQP_SIZE:-1024}
STRACE_DURATION=${BENCH_STRACE_DURATION:-3}
HPBENCH=${HPBENCH_BIN:-$ROOT/build/hpbench}

for tool in taskset python3; do
    command -v $tool >/dev/null || { echo "bench/amqp.sh: $tool not found" >&2; exit 2; }
done
[ "$STRACE_DURATION" = 0 ] || command -v strace >/dev/null ||
    { echo "bench/amqp.sh: strace not found (BENCH_STRACE_DURATION=0 skips it)" >&2; exit 2; }
[ -x "$HPBENCH" ] || { echo "bench/amqp.sh: $HPBENCH not found: run make" >&2; exit 2; }
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] ||
    { echo "bench/amqp.sh: rabbitmq-server not installed (make deps)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "bench/amqp.sh: needs 2 CPUs" >&2; exit 2; }

mkdir -p bench/results
OUT=bench/results/hpbench-amqp-$(date +%Y%m%d-%H%M).txt
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

echo "# bench/amqp.sh $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# $(uname -srm); $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# $("$HPBENCH" --version); rabbitmq-server $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null)"
echo "# git $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "(dirty)")"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# broker: taskset -c 0 python3 bench/lib/amqp_broker.py; hpbench: taskset -c 1"
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

args_of() {
    case $1 in
    publish) echo "--producers 1 --consumers 0" ;;
    confirm100) echo "--producers 1 --consumers 0 --confirm 100" ;;
    confirm1000) echo "--producers 1 --consumers 0 --confirm 1000" ;;
    consume) echo "--producers 1 --consumers 1" ;;
    consume4) echo "--producers 1 --consumers 4" ;;
    esac
}

HZ=$(getconf CLK_TCK)
for c in $CASES; do
    args="$(args_of "$c") --size $SIZE"
    echo "## $c"
    cmd="taskset -c 1 $HPBENCH $URL -d $DURATION --warmup $WARMUP $args --json $TMP/$c.json"
    echo "\$ $cmd"
    sleep 1
    b0=$(beam_ticks)
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    $cmd
    echo "exit status $?"
    b1=$(beam_ticks)
    t1=$(date +%s.%N)
    # The broker's CPU over the whole run (set-up, warm-up, drain, close).
    echo "broker CPU: $(( b1 - b0 )) ticks of 1/$HZ s in $(python3 -c "print('%.2f' % ($t1 - $t0))") s" |
        tee "$TMP/$c.broker"
    if [ "$STRACE_DURATION" != 0 ]; then
        scmd="strace -c -f -o $TMP/$c.strace taskset -c 1 $HPBENCH $URL -d $STRACE_DURATION $args --json $TMP/$c-strace.json"
        echo "\$ $scmd"
        sleep 1
        # shellcheck disable=SC2086
        $scmd > "$TMP/$c-strace.out" 2>&1
        echo "exit status $?"
        cat "$TMP/$c.strace"
    fi
    echo
done

# shellcheck disable=SC2086  # one argument per case
python3 - "$TMP" "$HZ" $CASES <<'EOF'
import json, re, sys
tmp, hz, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = []
for c in cases:
    try:
        j = json.load(open("%s/%s.json" % (tmp, c)))
    except (OSError, ValueError):
        rows.append((c, "no report"))
        continue
    d = j["duration_s"] or 1
    pub = j["published"]
    broker = open("%s/%s.broker" % (tmp, c)).read()
    m = re.search(r"CPU: (-?\d+) ticks of 1/\d+ s in ([\d.]+) s", broker)
    busy = int(m.group(1)) / hz / float(m.group(2))
    sc = "-"
    try:
        st = open("%s/%s.strace" % (tmp, c)).read()
        calls = int(re.search(r"^100\.00\s+\S+\s+\S+\s+(\d+)", st, re.M).group(1))
        sj = json.load(open("%s/%s-strace.json" % (tmp, c)))
        msgs = sj["published"]
        sc = "%.3f" % (calls / msgs) if msgs else "-"
    except (OSError, ValueError, AttributeError):
        pass
    def lat(k):
        v = j.get(k)
        return "%.0f/%.0f" % (v["p50"], v["p99"]) if v and v["count"] else "-"
    cpu = j["client_cpu"]
    rows.append((c, "%.0f" % (pub / d), "%.0f" % (j["consumed"] / d), lat("confirm_latency"),
                 lat("consumer_latency"),
                 "%.2f (%.2f+%.2f)" % (cpu["total_s"] * 1e6 / pub, cpu["user_s"] * 1e6 / pub,
                                       cpu["sys_s"] * 1e6 / pub) if pub else "-",
                 "%.0f%%" % (busy * 100),
                 sc))
head = ("case", "published/s", "consumed/s", "confirm p50/p99 us", "e2e p50/p99 us",
        "hpbench CPU us/msg (user+sys)", "broker CPU*", "syscalls/msg")
w = [max(len(str(r[i])) if len(r) > i else 0 for r in rows + [head]) for i in range(len(head))]
print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(head)) + " |")
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print("| " + " | ".join(str(v).ljust(w[i]) for i, v in enumerate(r)) + " |")
print()
print("hpbench CPU: its user+sys time over the measured part / messages published.")
print("* broker CPU: the Erlang VM's user+sys over the whole run (set-up, warm-up, drain")
print("  and close included) / its wall time: 100% is all of CPU 0.")
print("syscalls/msg: all of hpbench's syscalls in the strace run / messages published in it.")
EOF
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# saved to $OUT"
