#!/usr/bin/env bash
# The HTTP benchmark of BENCHMARKS.md ("Over HTTP"), on an existing data
# dir loaded from a data set made by tools/datagen (or MNIST's files):
#
#   tools/bench-http.sh DATA_DIR CATALOG SET_DIR OUT_DIR [LOADGEN_ARGS...]
#
# SET_DIR holds query.fvecs, gt10.ivecs, base.fvecs and, optionally,
# meta.csv (ids, prices, categories); OUT_DIR receives one JSON report per
# run. Starts the server on a copy of DATA_DIR (the write mix changes
# data), then runs recstore-loadgen three times, each over every
# selectivity (unfiltered, 50, 10, 1, 0.1 %):
#   c1     one client at a time (the latency goals),
#   c8     eight concurrent clients (throughput, with its p99),
#   c1-w10 one client with 10 % of requests upserts (the write mix).
# Prints the server's RSS after start and at the end. Needs curl and a
# release build (`cargo build --release --workspace`).
set -euo pipefail
dir=$1
catalog=$2
set_dir=$3
out=$4
shift 4
bin=target/release/recstore
loadgen=target/release/recstore-loadgen
port=${PORT:-7801}
duration=${DURATION:-8}

mkdir -p "$out"
copy="$dir.bench-copy"
rm -rf "$copy"
cp -a "$dir" "$copy"
"$bin" serve --data-dir "$copy" --listen 127.0.0.1:$port >"$out/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$copy"' EXIT
until curl -sf -o /dev/null http://127.0.0.1:$port/readyz; do sleep 0.1; done
echo "server ready; rss $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 )) MiB"

meta=()
[ -f "$set_dir/meta.csv" ] && meta=(--meta "$set_dir/meta.csv")
run() {
  local name=$1
  shift
  echo "== $name"
  "$loadgen" --url http://127.0.0.1:$port --catalog "$catalog" \
    --queries "$set_dir/query.fvecs" --gt "$set_dir/gt10.ivecs" \
    --base "$set_dir/base.fvecs" "${meta[@]}" --duration "$duration" \
    --json "$out/$name.json" "$@"
}
run c1 --concurrency 1 "$@"
run c8 --concurrency 8 --client-threads 1 "$@"
run c1-w10 --concurrency 1 --write-share 0.1 "$@"
echo "server rss at the end $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 )) MiB"
