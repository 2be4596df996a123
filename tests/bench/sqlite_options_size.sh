#!/usr/bin/env bash
# tests/bench/sqlite_options_size.sh: what each SQLite option of wasm/sqlite-options.txt
# saves in codecanvas.wasm (raw and gzip -9).  For each option (or, with --groups, each group
# of options) SQLite is compiled with the full list minus that option, and linked with the
# client's objects from build/wasm (run `scripts/test` or `scripts/bench client` first); the
# saving is that size minus the size with every option.  SQLITE_OS_OTHER stays in every
# variant (the client's OS layer needs it).
#
# Only a few options change the GENERATED part of sqlite3.c: configure copies the
# SQLITE_OMIT_*/SQLITE_ENABLE_* of CFLAGS into the flags of the parser generator (lemon, on
# src/parse.y) and of tool/mkkeywordhash.c, so an option that either of those two tests must
# get a freshly generated amalgamation (configure + make sqlite3.c, ~30 s).  Every other
# option is only an #ifdef inside sqlite3.c: the amalgamation generated once with the full
# list is byte-identical without it, so it is just recompiled without that -D (~5 s).  The
# set needing regeneration is read from parse.y and mkkeywordhash.c, not hard-coded.
# Variants run JOBS at a time (default 2).  A per-option run takes ~10-15 min on 2 cores.
#   usage: tests/bench/sqlite_options_size.sh [--groups]   (from the repository root)
set -euo pipefail
mode=options
[ "${1:-}" = --groups ] && mode=groups
jobs=${JOBS:-2}
root=$PWD
[ -f "$root/build/wasm/wasm/CMakeFiles/codecanvas.dir/link.txt" ] ||
  { echo "no build/wasm: run scripts/test (or emcmake cmake ... -B build/wasm and build it) first" >&2; exit 1; }
tmp=$(mktemp -d /tmp/cc-sqlite-size.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
apt-get source --download-only -qq sqlite3=3.40.1-2+deb12u2 >/dev/null 2>&1
dpkg-source -q -x sqlite3_3.40.1-2+deb12u2.dsc src >/dev/null 2>&1
emcc_=/usr/bin/emcc
opts=$(sed 's/#.*//' "$root/wasm/sqlite-options.txt" | tr -s ' \n' '\n' | grep -- '^-D')
# Options that lemon or mkkeywordhash read: these need the amalgamation regenerated.
generated=$(grep -ohE 'SQLITE_(OMIT|ENABLE)_[A-Z0-9_]+' src/src/parse.y src/tool/mkkeywordhash.c | sort -u)
link=$(sed -e "s|@CMakeFiles/codecanvas.dir/objects1|$root/build/wasm/wasm/CMakeFiles/codecanvas.dir/exports.c.o|" \
  -e "s|@CMakeFiles/codecanvas.dir/linkLibs.rsp|$root/build/wasm/shared/libcc_shared.a $tmp/cjson.o|" \
  -e "s|-o [^ ]*codecanvas.js|-o out/codecanvas.js|" "$root/build/wasm/wasm/CMakeFiles/codecanvas.dir/link.txt")
$emcc_ -Oz -I"$root/build/third_party/include/cjson" -c "$root/build/third_party/src/cJSON.c" -o cjson.o

# gen DIR OPTIONS...: generates DIR/sqlite3.c with the OMIT/ENABLE options among OPTIONS.
gen() {
  local dir=$1; shift
  local feat; feat=$(printf '%s\n' "$@" | grep -E -- '-DSQLITE_(OMIT|ENABLE)_' | tr '\n' ' ' || true)
  mkdir -p "$dir"
  (cd "$dir" && CC=gcc BCC=gcc CFLAGS="$feat" "$tmp/src/configure" --quiet >/dev/null 2>&1 &&
    make -s sqlite3.c >/dev/null 2>&1)
}
# size DIR AMALGAMATION OPTIONS...: prints "raw gz" of the wasm linked with AMALGAMATION
# compiled with OPTIONS (working files in DIR), or "link-failed".
size() {
  local dir=$1 src=$2; shift 2
  mkdir -p "$dir/out"
  (cd "$dir" && $emcc_ -Oz "$@" -Wno-undefined-internal -Wno-literal-conversion -c "$src" -o sq.o 2>/dev/null &&
    eval "$link sq.o" >/dev/null 2>&1) || { echo link-failed; return; }
  echo "$(stat -c%s "$dir/out/codecanvas.wasm") $(gzip -9c "$dir/out/codecanvas.wasm" | wc -c)"
}
# variant N NAME PATTERN: writes "NAME<TAB>regen|reuse<TAB>raw gz" to res/N, for the full
# list minus the options matching the extended regex PATTERN.
variant() {
  local n=$1 name=$2 pat=$3 without how=reuse src=$tmp/full/sqlite3.c o
  without=$(printf '%s\n' $opts | grep -vE -- "$pat" || true)
  for o in $(printf '%s\n' $opts | grep -E -- "$pat" | sed 's/^-D//; s/=.*//'); do
    if printf '%s\n' $generated | grep -qx -- "$o"; then how=regen; fi
  done
  if [ $how = regen ]; then
    gen "v$n/gen" $without || { printf '%s\tregen\tgen-failed\n' "$name" >"res/$n"; return; }
    src=$tmp/v$n/gen/sqlite3.c
  fi
  printf '%s\t%s\t%s\n' "$name" $how "$(size "v$n" "$src" $without)" >"res/$n"
  rm -rf "v$n"
}

mkdir res
start=$(date +%s)
gen full $opts
all=$(size full-size "$tmp/full/sqlite3.c" $opts)
echo "all options: wasm raw gz = $all   ($(date -u +%F), sqlite 3.40.1, $(emcc --version | head -1))"
names=() pats=()
if [ $mode = options ]; then
  for o in $opts; do
    case $o in -DSQLITE_OS_OTHER*) continue;; esac
    names+=("${o#-D}"); pats+=("^${o}\$")
  done
else
  names=("grammar OMITs" "SQLITE_OMIT_JSON" "SQLITE_OMIT_FLOATING_POINT" "other function/API OMITs"
         "pragma OMITs" "query-planner OMITs" "every OMIT")
  pats=('OMIT_(TRIGGER|VIEW|VIRTUALTABLE|WINDOWFUNC|ALTERTABLE|ANALYZE|REINDEX|CTE|FOREIGN_KEY|CHECK|AUTOINCREMENT|COMPOUND_SELECT|GENERATED_COLUMNS|EXPLAIN|TEMPDB|CAST|BLOB_LITERAL|HEX_INTEGER)$'
        'OMIT_JSON$' 'OMIT_FLOATING_POINT$'
        'OMIT_(DATETIME_FUNCS|LOCALTIME|WAL|PROGRESS_CALLBACK|AUTHORIZATION|UTF16|COMPLETE|DECLTYPE|GET_TABLE|TCL_VARIABLE|TRACE|INCRBLOB|AUTOVACUUM|POPEN|COMPILEOPTION_DIAGS|AUTORESET)$'
        'PRAGMA' 'OMIT_(AUTOMATIC_INDEX|XFER_OPT|LIKE_OPTIMIZATION|OR_OPTIMIZATION|BETWEEN_OPTIMIZATION|TRUNCATE_OPTIMIZATION|LOOKASIDE|QUICKBALANCE)$'
        'OMIT_')
fi
# Regenerating variants first, so the long ones do not end up alone at the tail.
order=()
for i in "${!names[@]}"; do
  printf '%s\n' $generated | grep -qx -- "${names[$i]}" && order=("$i" "${order[@]}") || order+=("$i")
done
for i in "${order[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  variant "$i" "${names[$i]}" "${pats[$i]}" &
done
wait
printf '%-42s %-6s %9s %9s %9s %9s\n' option build raw gz saves_raw saves_gz
for i in "${!names[@]}"; do
  IFS=$'\t' read -r name how s <"res/$i"
  case $s in *failed) printf '%-42s %-6s %s\n' "$name" "$how" "$s"; continue;; esac
  printf '%-42s %-6s %9d %9d %9d %9d\n' "$name" "$how" ${s% *} ${s#* } \
    $(( ${s% *} - ${all% *} )) $(( ${s#* } - ${all#* } ))
done
echo "($(( $(date +%s) - start )) s, $jobs jobs; build: regen = amalgamation regenerated without the option, reuse = full-list amalgamation recompiled)"
