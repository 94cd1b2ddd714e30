#!/bin/sh
# Fails when src/config includes a header of a layer above it: config
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
