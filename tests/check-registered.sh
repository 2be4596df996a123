#!/usr/bin/env bash
# tests/check-registered.sh: fails when a test file exists that tests/CMakeLists.txt never
# names, so a test silently dropped from the registration (e.g. by a bad merge) is caught
# by the suite itself instead of passing unnoticed.
set -euo pipefail
cd "$(dirname "$0")"
missing=0
for f in unit/test_*.c e2e/*.test.mjs browser/*.test.mjs; do
  [ -e "$f" ] || continue
  base=$(basename "$f"); name=${base%.test.mjs}; name=${name%.c}; name=${name#test_}
  if ! grep -Eq "(^|[^A-Za-z0-9_])${name}([^A-Za-z0-9_]|$)" CMakeLists.txt; then
    echo "not registered in tests/CMakeLists.txt: tests/$f"
    missing=$((missing + 1))
  fi
done
echo "$missing unregistered test file(s)"
[ "$missing" -eq 0 ]
