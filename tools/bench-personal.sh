#!/usr/bin/env bash
# Personal picks at scale (#17): 100,000 items (tools/datagen, 128-d,
# clustered, cosine), 1,000,000 events by 50,000 users (Zipf-skewed items,
# 60 % views, 20 % clicks, 10 % add_to_cart, 10 % purchases, a user's items
# mostly from 3 favourite categories; tools/bench-personal-events.py, seed 7),
# loaded offline with `recstore load`, then a server: it trains the
# collaborative model in the background (GET /model reports it), and wrk
# asks POST /recommend/user for random users, one client, for 20 s, then
# 4 clients for 20 s; then one heavy user (600 events, a third of them
# purchases, over the same Zipf-skewed items) asked alone by one client.
# Prints wrk's latency distribution and the model.
#
#   tools/bench-personal.sh WORK_DIR [RECSTORE_BIN_DIR]
#
# Needs python3, curl and wrk (apt-get install wrk). WORK_DIR keeps the
# data between runs (delete it to regenerate).
set -euo pipefail
work=$1
bin=${2:-target/release}
port=7792
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
if [ ! -f "$work/items/base.fvecs" ]; then
  "$bin/recstore-datagen" --out "$work/items" --n 100000 --dim 128 --queries 10 \
    --clusters 1000 --categories 50 --metric cosine
fi
if [ ! -f "$work/events.csv" ]; then
  python3 "$here/bench-personal-events.py" "$work/items/meta.csv" "$work/events.csv" 50000 1000000
fi
if [ ! -d "$work/db" ]; then
  /usr/bin/time -v "$bin/recstore" load --data-dir "$work/db" --catalog shop --create \
    --dimension 128 --metric cosine "$work/items/base.fvecs" --meta "$work/items/meta.csv" \
    2>&1 | grep -E "Elapsed|Maximum resident" || true
  /usr/bin/time -v "$bin/recstore" load --data-dir "$work/db" --catalog shop \
    --events "$work/events.csv" 2>&1 | grep -E "Elapsed|Maximum resident" || true
fi
"$bin/recstore" serve --data-dir "$work/db" --listen 127.0.0.1:$port >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
until curl -sf -o /dev/null http://127.0.0.1:$port/readyz; do sleep 0.2; done
t0=$(date +%s)
until curl -s http://127.0.0.1:$port/v1/catalogs/shop/model | grep -q '"model"'; do sleep 1; done
echo "model ready $(( $(date +%s) - t0 )) s after the index:"
curl -s http://127.0.0.1:$port/v1/catalogs/shop/model; echo
echo "server RSS: $(awk '/VmRSS/ {print $2}' /proc/$pid/status) kB"
cat > "$work/user.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
math.randomseed(7)
request = function()
  local u = math.random(0, 49999)
  return wrk.format(nil, "/v1/catalogs/shop/recommend/user",
    nil, '{"user_id": "u' .. u .. '", "k": 10, "with_attributes": false}')
end
LUA
curl -s -X POST http://127.0.0.1:$port/v1/catalogs/shop/recommend/user \
  -H 'content-type: application/json' -d '{"user_id": "u17", "k": 3}'; echo
for c in 1 4; do
  echo "== $c client(s)"
  wrk -t1 -c$c -d20s --latency -s "$work/user.lua" http://127.0.0.1:$port
done
# One heavy user: 600 events (every third a purchase), posted through the
# API, then asked alone (its exclusions and collaborative row are the cost).
python3 - "$work/items/meta.csv" > "$work/heavy.json" <<'PY'
import csv, json, random, sys
random.seed(11)
ids = [row[0] for row in csv.reader(open(sys.argv[1])) if row and row[0] != "id"]
events = []
for e in range(600):
    item = ids[int(random.random() * random.random() * len(ids))]
    kind = "purchase" if e % 3 == 0 else "view"
    ev = {"user_id": "heavy", "item_id": item, "type": kind,
          "timestamp": "2026-11-%02dT%02d:%02d:00Z" % (1 + e // 60, (e // 3) % 24, e % 60)}
    if kind == "purchase":
        ev["order_id"] = "h%d" % (e // 30)
    events.append(ev)
print(json.dumps({"events": events}))
PY
curl -s -o /dev/null -w 'heavy user events: HTTP %{http_code}\n' -X POST \
  http://127.0.0.1:$port/v1/catalogs/shop/events -H 'content-type: application/json' \
  --data-binary @"$work/heavy.json"
cat > "$work/heavy.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"user_id": "heavy", "k": 10, "with_attributes": false}'
LUA
echo "== the heavy user, 1 client"
wrk -t1 -c1 -d20s --latency -s "$work/heavy.lua" http://127.0.0.1:$port/v1/catalogs/shop/recommend/user
