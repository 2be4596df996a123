#!/usr/bin/env bash
# tests/bench/sqlite_options_size.sh: what each group of SQLite options in
# wasm/sqlite-options.txt saves in codecanvas.wasm (raw and gzip -9).  For each group, the
# amalgamation is regenerated from the Debian source WITHOUT that group, compiled, and linked
# with the client's objects from build/wasm (run `scripts/test` or `scripts/bench client`
# first); the saving is that size minus the size with every option.  Slow (1-2 min per group).
# SQLITE_OS_OTHER stays in every variant (the client's OS layer needs it).
#   usage: tests/bench/sqlite_options_size.sh   (from the repository root)
set -euo pipefail
root=$PWD
tmp=$(mktemp -d /tmp/cc-sqlite-size.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
apt-get source --download-only -qq sqlite3=3.40.1-2+deb12u2 >/dev/null 2>&1
dpkg-source -q -x sqlite3_3.40.1-2+deb12u2.dsc src >/dev/null 2>&1
emcc_=/usr/bin/emcc
opts=$(sed 's/#.*//' "$root/wasm/sqlite-options.txt" | tr -s ' \n' '\n' | grep -- '^-D')
link=$(sed -e "s|@CMakeFiles/codecanvas.dir/objects1|$root/build/wasm/wasm/CMakeFiles/codecanvas.dir/exports.c.o|" \
  -e "s|@CMakeFiles/codecanvas.dir/linkLibs.rsp|$root/build/wasm/shared/libcc_shared.a cjson.o|" \
  -e "s|-o [^ ]*codecanvas.js|-o out/codecanvas.js|" "$root/build/wasm/wasm/CMakeFiles/codecanvas.dir/link.txt")
$emcc_ -Oz -I"$root/build/third_party/include/cjson" -c "$root/build/third_party/src/cJSON.c" -o cjson.o
# size OPTIONS...: prints "raw gz" of the wasm linked with sqlite built with OPTIONS.
size() {
  rm -rf bld out && mkdir bld out
  local feat; feat=$(printf '%s\n' "$@" | grep -E -- '-DSQLITE_(OMIT|ENABLE)_' | tr '\n' ' ' || true)
  (cd bld && CC=gcc BCC=gcc CFLAGS="$feat" ../src/configure --quiet >/dev/null 2>&1 && make -s sqlite3.c >/dev/null 2>&1)
  $emcc_ -Oz "$@" -Wno-undefined-internal -c bld/sqlite3.c -o sq.o 2>/dev/null
  (eval "$link sq.o") >/dev/null 2>&1 || { echo "link-failed"; return; }
  echo "$(stat -c%s out/codecanvas.wasm) $(gzip -9c out/codecanvas.wasm | wc -c)"
}
all=$(size $opts); echo "all options: wasm raw gz = $all"
group() { # NAME PATTERN: size without the options matching PATTERN
  local without; without=$(printf '%s\n' $opts | grep -vE -- "$2")
  local s; s=$(size $without)
  if [ "$s" = link-failed ]; then echo "$1: does not link without it"; return; fi
  echo "$1: without it $s; saves raw $(( ${s% *} - ${all% *} )) gz $(( ${s#* } - ${all#* } ))"
}
group "grammar OMITs (trigger, view, vtab, window, alter, analyze, reindex, cte, fk, check, autoinc, compound, generated, explain, tempdb, cast, blob literal, hex)" \
  'OMIT_(TRIGGER|VIEW|VIRTUALTABLE|WINDOWFUNC|ALTERTABLE|ANALYZE|REINDEX|CTE|FOREIGN_KEY|CHECK|AUTOINCREMENT|COMPOUND_SELECT|GENERATED_COLUMNS|EXPLAIN|TEMPDB|CAST|BLOB_LITERAL|HEX_INTEGER)$'
group "SQLITE_OMIT_JSON" 'OMIT_JSON$'
group "SQLITE_OMIT_FLOATING_POINT" 'OMIT_FLOATING_POINT$'
group "other function/API OMITs" 'OMIT_(DATETIME_FUNCS|LOCALTIME|WAL|PROGRESS_CALLBACK|AUTHORIZATION|UTF16|COMPLETE|DECLTYPE|GET_TABLE|TCL_VARIABLE|TRACE|INCRBLOB|AUTOVACUUM|POPEN|COMPILEOPTION_DIAGS|AUTORESET)$'
group "pragma OMITs" 'PRAGMA'
group "query-planner OMITs" 'OMIT_(AUTOMATIC_INDEX|XFER_OPT|LIKE_OPTIMIZATION|OR_OPTIMIZATION|BETWEEN_OPTIMIZATION|TRUNCATE_OPTIMIZATION|LOOKASIDE|QUICKBALANCE)$'
group "every OMIT" 'OMIT_'
