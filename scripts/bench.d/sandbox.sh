#!/usr/bin/env bash
# scripts/bench sandbox: the sandbox runtime (native/sandbox/) — create→first result, exec
# latency, kill — beside a bare bwrap /bin/true measured in the same run
# (tests/bench/bench_sandbox.c).  Needs root for cgroups.
set -euo pipefail
exec "$CC_BIN_DIR/bench_sandbox"
