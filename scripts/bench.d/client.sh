#!/usr/bin/env bash
# scripts/bench client: the wasm client (tests/bench/client_bench.mjs) — local cache hit
# latency of executeCommand beside a worker round trip for the same command, and the size of
# codecanvas.wasm + codecanvas.js beside the old page bundle (npm e2b + @heyputer/puter.js
# with esbuild --minify), both built in this run.
set -euo pipefail
emcmake cmake -S . -B build/wasm -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/wasm -j"$(nproc)" >/dev/null
export CC_WEB_DIR=$CC_SOURCE_DIR/build/web
exec node tests/bench/client_bench.mjs "$@"
