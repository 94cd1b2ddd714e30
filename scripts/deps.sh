#!/bin/sh
# Installs the Debian 12 packages that building, testing, fuzzing and
# benchmarking hotpath need. Quiet when everything is present; runs
# `apt-get update` only when something is missing. `deps.sh --bench` (make
# deps-bench) adds what only the comparison tools of bench/ link
# (librabbitmq-dev for bench/amqp/rmq_perf.c): make test never needs it.
set -eu

PKGS="gcc make libc6-dev clang libclang-rt-dev libcmocka-dev libyaml-dev zlib1g-dev libbrotli-dev pkg-config
      python3 python3-pytest python3-prometheus-client python3-requests curl procps util-linux iproute2
      nginx-light h2o wrk strace valgrind
      rabbitmq-server python3-pika amqp-tools amqp-specs libjansson-dev libjson-c-dev libcjson-dev
      libmsgpack-dev"
[ "${1:-}" = --bench ] && PKGS="$PKGS librabbitmq-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: need root (or sudo) to install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian starts nginx, h2o and rabbitmq-server (with epmd) as services on
# install; policy-rc.d keeps them from starting so they cannot hold ports the
# tests and benchmarks want. The AMQP tests start their own RabbitMQ node
# (tests/integration/rabbitmq.py), never the system one.
pol=/usr/sbin/policy-rc.d
if [ ! -e $pol ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee $pol >/dev/null
    $SUDO chmod +x $pol
    trap '$SUDO rm -f $pol' EXIT
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
