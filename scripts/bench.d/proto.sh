#!/usr/bin/env bash
# scripts/bench proto: the protocol v1 codec (shared/cc_proto.c) on typical messages, each
# beside plain cJSON on the same bytes measured in the same run (tests/bench/bench_proto.c).
set -euo pipefail
exec "$CC_BIN_DIR/bench_proto"
