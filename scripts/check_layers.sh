#!/bin/sh
# Fails when a layer includes a header of a layer above it. src/config:
# parses and validates, and the protocols, the engine and the app depend
# on it, never the other way round (DESIGN.md, "Layout"). Those layers'
# public headers are the http_*, app, ctx, router, middleware, accesslog,
# compress, worker, engine, conn and listener ones; their private headers
# live beside their sources, outside src/config.
# Usage: sh scripts/check_layers.sh (run by `make test`)
set -u
bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](hotpath/(http_[a-z_]*|app|ctx|router|middleware|accesslog|compress|worker|engine|conn|listener)\.h|\.\./)' \
      src/config/*.c src/config/*.h)
if [ -n "$bad" ]; then
    echo "check_layers: src/config includes a header from a layer above it:"
    echo "$bad"
    exit 1
fi

# The engine knows no protocol, and protocols do not know each other:
# core includes nothing of net, http or amqp; net nothing of http or amqp;
# amqp nothing of http (and no public header of theirs either).
check() {
    layer=$1 pattern=$2
    bad=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($pattern)" \
          src/$layer/*.c src/$layer/*.h 2>/dev/null)
    if [ -n "$bad" ]; then
        echo "check_layers: src/$layer includes a header from a layer above it:"
        echo "$bad"
        exit 1
    fi
}
check core 'net/|http/|amqp/|hotpath/(http_[a-z_]*|app|ctx|router|middleware|worker|engine|conn|amqp[a-z_]*)\.h'
check net 'http/|amqp/|hotpath/(http_[a-z_]*|app|ctx|router|middleware|amqp[a-z_]*)\.h'
check amqp 'http/|hotpath/(http_[a-z_]*|app|ctx|router|middleware)\.h'
