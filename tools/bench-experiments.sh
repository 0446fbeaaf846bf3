#!/usr/bin/env bash
# Impressions, attribution and analytics at scale (#18).
#
# 20,000 items (tools/datagen, 128-d, clustered, cosine), loaded offline
# with `recstore load`, then:
#  1. throughput of `POST /recommend/similar` (random items, k 10, wrk with
#     8 connections, 20 s) with impression logging (this build) against a
#     build without it (BASE_BIN_DIR: the commit before #18) and this
#     build dropping every impression (`--impression-queue 0`), alternated
#     on fresh servers for ROUNDS rounds so drift on the shared machine
#     hits all three;
#  2. the same with an experiment running on `similar` (random user ids,
#     so every answer is assigned, exposed and recorded), long enough to
#     leave IMPRESSIONS impressions (default 1,000,000) in the store;
#  3. `POST /events` in batches of 500 (tools/bench-experiments-events.py:
#     clicks, add-to-carts and purchases citing real recommendation ids,
#     views, and purchases without one spread over the past year) until
#     EVENTS events (default 1,000,000) are in;
#  4. latency of the experiment's results and of analytics (the default
#     week by hour, and a year by day), one client, 10 s each;
#  5. the server's RSS after each phase (impressions live in RocksDB).
#
#   [ROUNDS=3] [THROUGHPUT_ONLY=1] tools/bench-experiments.sh WORK_DIR BIN_DIR BASE_BIN_DIR [IMPRESSIONS] [EVENTS]
#
# Needs python3, curl and wrk (apt-get install wrk). WORK_DIR keeps the
# generated items between runs; the databases are made afresh.
set -euo pipefail
work=$1
bin=$2
base=$3
impressions=${4:-1000000}
events=${5:-1000000}
rounds=${ROUNDS:-3}
port=7793
url=http://127.0.0.1:$port
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
if [ ! -f "$work/items/base.fvecs" ]; then
  "$bin/recstore-datagen" --out "$work/items" --n 20000 --dim 128 --queries 10 \
    --clusters 200 --categories 20 --metric cosine
fi
rm -rf "$work/db-head" "$work/db-base"
for side in head base; do
  b=$bin
  [ "$side" = base ] && b=$base
  "$b/recstore" load --data-dir "$work/db-$side" --catalog shop --create \
    --dimension 128 --metric cosine "$work/items/base.fvecs" --meta "$work/items/meta.csv" \
    >/dev/null 2>&1
done

pid=
start() { # BIN_DIR DB [FLAGS...]
  local b=$1 db=$2
  shift 2
  "$b/recstore" serve --data-dir "$db" --listen 127.0.0.1:$port "$@" >"$work/server.log" 2>&1 &
  pid=$!
  until curl -sf -o /dev/null $url/readyz; do sleep 0.2; done
}
stop() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
trap 'stop' EXIT
rss() { echo "server RSS: $(awk '/VmRSS/ {print $2}' /proc/$pid/status) kB"; }
reqs() { awk '/Requests\/sec/ {print $2}'; }

cat > "$work/similar.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
math.randomseed(os.time())
request = function()
  local i = math.random(0, 19999)
  local u = math.random(0, 99999)
  return wrk.format(nil, "/v1/catalogs/shop/recommend/similar", nil,
    '{"item_id": "s' .. i .. '", "user_id": "u' .. u .. '", "k": 10, "with_attributes": false}')
end
LUA
first_id=$(head -2 "$work/items/meta.csv" | tail -1 | cut -d, -f1)
if [ "$first_id" != s0 ]; then
  echo "expected datagen ids s0..s19999, got $first_id" >&2
  exit 1
fi

echo "== 1. recommend/similar, 8 connections, 20 s, $rounds rounds: with impression logging (head),"
echo "   this build with every impression dropped (--impression-queue 0: the record is made and dropped)"
echo "   and a build without impressions (base)"
for round in $(seq "$rounds"); do
  for side in head dropped base; do
    b=$bin db=$work/db-head flags=()
    [ "$side" = base ] && b=$base db=$work/db-base
    [ "$side" = dropped ] && flags=(--impression-queue 0)
    start "$b" "$db" "${flags[@]}"
    wrk -t2 -c8 -d5s -s "$work/similar.lua" $url >/dev/null
    echo "round $round $side: $(wrk -t2 -c8 -d20s -s "$work/similar.lua" $url | reqs) req/s"
    stop
  done
done
[ "${THROUGHPUT_ONLY:-}" = 1 ] && exit 0

echo "== 2. with an experiment on similar, until $impressions impressions"
rm -rf "$work/db-head-exp"
cp -r "$work/db-head" "$work/db-head-exp"
start "$bin" "$work/db-head-exp"
curl -sf -o /dev/null -X PUT $url/v1/catalogs/shop/experiments/bench -H 'content-type: application/json' -d '{
  "surface": "similar", "unit": "user", "control": "control", "primary_metric": "ctr",
  "arms": [{"name": "control", "weight": 1, "strategy": {"kind": "default"}},
           {"name": "tuned", "weight": 1, "strategy": {"kind": "default", "settings": {"upsell_affinity": 0.5}}}]}'
rss
logged() { curl -s $url/metrics | awk '/^recstore_impressions\{state="written"\}/ {print $2}'; }
echo "20 s: $(wrk -t2 -c8 -d20s -s "$work/similar.lua" $url | reqs) req/s"
while [ "$(logged | cut -d. -f1)" -lt "$impressions" ]; do
  wrk -t2 -c8 -d30s -s "$work/similar.lua" $url >/dev/null
  echo "  impressions written: $(logged)"
done
curl -s $url/metrics | grep -E '^recstore_impressions'
rss

echo "== 3. POST /events, batches of 500, until $events events"
python3 "$here/bench-experiments-events.py" $url "$work/events.txt" 200
cat > "$work/events.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local bodies = {}
for line in io.lines("$work/events.txt") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "/v1/catalogs/shop/events", nil, bodies[i])
end
LUA
secs=$(( events / 500 / 100 + 1 ))
out=$(wrk -t2 -c4 -d${secs}s --latency -s "$work/events.lua" $url)
echo "$out" | grep -E "Latency|50%|99%|Requests/sec|requests in|Non-2xx"
echo "events/s: $(echo "$out" | reqs | awk '{printf "%.0f", $1 * 500}')"
sent=$(echo "$out" | awk '/requests in/ {print $1}')
while [ $(( sent * 500 )) -lt "$events" ]; do
  more=$(wrk -t2 -c4 -d10s -s "$work/events.lua" $url | awk '/requests in/ {print $1}')
  sent=$(( sent + more ))
done
echo "events sent: $(( sent * 500 ))"
curl -s $url/metrics | grep -E '^recstore_(recommendation_events|unattributed|purchase_revenue)' | head -20
rss

echo "== 4. results and analytics, 1 client, 10 s each"
for path in "/v1/catalogs/shop/experiments/bench/results" \
  "/v1/catalogs/shop/analytics" \
  "/v1/catalogs/shop/analytics?bucket=day&from=$(date -u -d '365 days ago' +%Y-%m-%dT%H:%M:%SZ)"; do
  echo "GET $path: $(curl -s -o /dev/null -w '%{size_download} bytes, HTTP %{http_code}' "$url$path")"
  wrk -t1 -c1 -d10s --latency "$url$path" | grep -E "50%|90%|99%|Requests/sec"
done
rss
du -sh "$work/db-head-exp"
