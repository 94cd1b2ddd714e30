#!/usr/bin/env bash
# bench/lib/callgrind-per-request.sh BIN [DEPTH] -- instructions per request
# of a hotpath binary serving /plaintext on one keep-alive connection, under
# callgrind: two runs with N1 and N2 requests (bench/lib/kaclient.py), so
# start-up cancels out: (Ir(N2) - Ir(N1)) / (N2 - N1). DEPTH 16 pipelines.
# Used to compare a change's before and after builds (repeatable to a few
# instructions, unlike timings). Environment: CG_N1 (2000), CG_N2 (12000).
set -eu
BIN=$1 DEPTH=${2:-1} N1=${CG_N1:-2000} N2=${CG_N2:-12000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/www"
ir() {
    local n=$1 port=$((20000 + RANDOM % 20000))
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$n" "$BIN" --listen 127.0.0.1:$port \
        --workers 1 --root "$TMP/www" --quiet >/dev/null 2>&1 &
    local vp=$!
    for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$port/health" && break; sleep 0.2; done
    python3 "$ROOT/bench/lib/kaclient.py" --port $port --requests "$n" --depth "$DEPTH" >/dev/null
    kill -TERM $vp
    wait $vp 2>/dev/null || true
    awk '/^summary/ {print $2}' "$TMP/cg.$n"
}
a=$(ir "$N1")
b=$(ir "$N2")
echo "$BIN depth=$DEPTH instructions/request=$(( (b - a) / (N2 - N1) ))"
