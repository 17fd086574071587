#!/usr/bin/env bash
# `make bench-cosmos`: `orderflow bench graphs/orders-cosmos.yaml` against the Cosmos DB
# stand-in (tests/cosmos/launcher.js): started here on a free loopback port with a random
# master key and COSMOS_LATENCY_MS (default 5) added to every answer, stopped when this
# script ends, whether the bench succeeded or not.
#
#   scripts/bench-cosmos.sh BUILD/server/orderflow [orderflow bench options...]
#
# COSMOS_RANGES (default 4): partition key ranges of every container (the stand-in's
# --ranges). Needs node and `npm ci` in tests/cosmos (`make deps` does both).
set -euo pipefail
orderflow=${1:?usage: scripts/bench-cosmos.sh ORDERFLOW [bench options...]}
shift
cd "$(dirname "$0")/.."

key=$(head -c 63 /dev/urandom | base64 -w0)  # 84 base64 characters, as the tests' keys
out=$(mktemp)
pid=
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

node tests/cosmos/launcher.js --host 127.0.0.1 --port 0 --key "$key" --ranges "${COSMOS_RANGES:-4}" \
  --latency-ms "${COSMOS_LATENCY_MS:-5}" >"$out" &
pid=$!
port=
for _ in $(seq 1 200); do  # its first line: {"port":N}
  port=$(sed -n 's/.*"port":\([0-9][0-9]*\).*/\1/p' "$out" | head -n 1)
  [ -n "$port" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "bench-cosmos: the stand-in did not start (is \`npm ci\` done in tests/cosmos? \`make deps\` does it)" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "bench-cosmos: the stand-in printed no port within 20 s" >&2
  exit 1
fi
echo "bench-cosmos: stand-in on http://127.0.0.1:$port, ${COSMOS_RANGES:-4} partition key ranges, ${COSMOS_LATENCY_MS:-5} ms added per request"
COSMOS_KEY="$key" "$orderflow" bench graphs/orders-cosmos.yaml --cosmos-endpoint "http://127.0.0.1:$port" "$@"
