#!/usr/bin/env bash
# scripts/bench store: the store (shared/cc_store_sqlite.c) per worker-visible call — exec
# record lifecycle, cache hit, token lookup, history page — beside raw SQLite with statements
# prepared once and no JSON, measured in the same run (tests/bench/bench_store.c).
set -euo pipefail
exec "$CC_BIN_DIR/bench_store"
