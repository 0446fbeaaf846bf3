#!/usr/bin/env bash
# Measures a server start on an existing data dir: with the index snapshot,
# then, on a copy without snapshots, with a rebuild from RocksDB. Prints the
# time until /readyz answers 200, the resident memory, and the catalog's own
# open_seconds and index source.
#
#   tools/bench-restart.sh DATA_DIR CATALOG [RECSTORE_BINARY]
#
# Needs curl and bc. DATA_DIR is not changed (a start without changes
# writes no new snapshot); the copy is deleted afterwards.
set -euo pipefail
dir=$1
catalog=$2
bin=${3:-target/release/recstore}
port=7791

start() {
  local label=$1
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" serve --data-dir "$dir" --listen 127.0.0.1:$port >/tmp/bench-restart.log 2>&1 &
  local pid=$!
  until curl -sf -o /dev/null http://127.0.0.1:$port/readyz; do sleep 0.05; done
  t1=$(date +%s.%N)
  local info
  info=$(curl -s http://127.0.0.1:$port/v1/catalogs/"$catalog")
  local rss
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  kill -TERM $pid
  wait $pid || true
  printf '%s: ready after %.2f s; rss %d MiB; index %s\n' "$label" "$(echo "$t1 - $t0" | bc)" $((rss / 1024)) \
    "$(echo "$info" | sed -e 's/.*"index":\({[^}]*}\).*/\1/')"
}

start "with snapshot"
copy="$dir.rebuild-copy"
rm -rf "$copy"
cp -a "$dir" "$copy"
rm -rf "$copy/snapshots"
trap 'rm -rf "$copy"' EXIT
dir=$copy
start "rebuild      "
