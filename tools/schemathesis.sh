#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a local recstore server's /openapi.json:
# every operation with generated valid and invalid inputs, checking for
# 5xx answers, responses that do not match the documented schemas, status
# codes and content types not documented, and more (`--checks all`).
#
#   tools/schemathesis.sh [--max-examples N] [any other schemathesis run flags]
#
# Uses target/release/recstore (build it first: cargo build --release
# --workspace) or $RECSTORE_BIN; installs schemathesis into .venv-schemathesis
# on first use. The server runs on a fresh temp data dir holding a small
# catalog named "demo", so operations on {catalog} = demo reach real data;
# schemathesis also tries arbitrary names. Results: RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RECSTORE_BIN:-target/release/recstore}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release --workspace" >&2; exit 2; }
VENV=.venv-schemathesis
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'schemathesis>=4,<5'
fi
DATA=$(mktemp -d)
LOG=$DATA.log
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA/data" --backup-dir "$DATA/backups" >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA" "$LOG"' EXIT
for _ in $(seq 100); do
  ADDR=$(sed -n 's/.*recstore listening on \([0-9.:]*\).*/\1/p' "$LOG" | head -1)
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "${ADDR:-}" ] || { cat "$LOG" >&2; exit 1; }
URL=http://$ADDR
curl -sf -X PUT "$URL/v1/catalogs/demo" -H 'content-type: application/json' \
  -d '{"dimension": 4, "metric": "cosine"}' >/dev/null
curl -sf -X POST "$URL/v1/catalogs/demo/items" -H 'content-type: application/json' -d '{"items": [
  {"id": "a", "vector": [1, 0, 0, 0], "price": 10, "category": "x"},
  {"id": "b", "vector": [0, 1, 0, 0], "price": 20, "category": "x"},
  {"id": "c", "vector": [0, 0, 1, 0], "price": 30, "category": "y"}]}' >/dev/null
curl -sf -X POST "$URL/v1/catalogs/demo/events" -H 'content-type: application/json' -d '{"events": [
  {"user_id": "u1", "item_id": "a", "type": "purchase", "order_id": "o1"},
  {"user_id": "u1", "item_id": "b", "type": "purchase", "order_id": "o1"}]}' >/dev/null
"$VENV/bin/schemathesis" run "$URL/openapi.json" --url "$URL" --checks all \
  --max-examples "${MAX_EXAMPLES:-100}" --seed 1 "$@"
grep -E 'panicked|ERROR' "$LOG" | head -20 || true
