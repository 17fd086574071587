#!/usr/bin/env bash
# Server throughput with and without orderflow-monitor polling it at 4 Hz, same run (issue 3:
# with >= 0.97 of without).
#
#   bash bench/monitor_overhead.sh
#       (STORE=memory|rocksdb ROUNDS=40 SECS=2 WARMUP=8 CONNECTIONS=16 INTERVAL=250 PORT=18300
#        BUILD=build)
#
# Starts `orderflow serve` on bench/monitor_overhead.yaml (graphs/orders.yaml on in-memory
# stores; STORE=rocksdb: graphs/orders.yaml on a fresh RocksDB directory) and runs
# build/bench/monitor_overhead_bench against it: a closed-loop load of CONNECTIONS keep-alive
# connections posting commands with ?wait=committed (AddStock over 256 SKUs, 10 % new orders),
# alternating windows of SECS seconds without and with the monitor's own Poller (GET
# /api/v1/metrics every 250 ms, /api/v1/graph every 30 polls; a new Poller, so a new
# connection and a graph request, per window), order flipped every round. Short windows and
# many rounds: other work on a shared machine comes and goes over seconds, and hits both sides
# alike only if they alternate faster than that. It
# prints each window and the medians; the figure is committed commands per second as the
# load generator sees them, and, less sensitive to other load on a shared machine, the server's
# CPU time per committed command (/proc/PID/stat).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
STORE=${STORE:-memory}
ROUNDS=${ROUNDS:-40}
SECS=${SECS:-2}
WARMUP=${WARMUP:-8}
CONNECTIONS=${CONNECTIONS:-16}
PORT=${PORT:-18300}
INTERVAL=${INTERVAL:-250}  # the monitor's poll period in ms (4 Hz); smaller amplifies its cost

case "$STORE" in
  memory) graph=bench/monitor_overhead.yaml ;;
  rocksdb) graph=graphs/orders.yaml ;;
  *) echo "STORE must be memory or rocksdb, got '$STORE'" >&2; exit 2 ;;
esac
data=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

"$BUILD/server/orderflow" serve "$graph" --listen "127.0.0.1:$PORT" --data-dir "$data" --log-level warn &
server_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "server did not become ready" >&2; exit 1; }

echo "server: $graph ($STORE stores), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench/monitor_overhead_bench" --url "http://127.0.0.1:$PORT" --connections "$CONNECTIONS" \
  --rounds "$ROUNDS" --secs "$SECS" --warmup "$WARMUP" --interval "$INTERVAL" --server-pid "$server_pid"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
