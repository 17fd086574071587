#!/usr/bin/env bash
# Server throughput with and without a monitor polling it at 4 Hz, same run. Each round
# measures three windows in turn, so drift in the machine hits all of them:
#   without   nothing polls
#   polling   the monitor's requests only (GET /api/v1/metrics at 4 Hz, /api/v1/graph every
#             30 polls, as monitor-ui/poller.cc does): the cost the server pays
#   monitor   the real orderflow-monitor under Xvfb on the same machine: adds its software
#             (llvmpipe) rendering, which competes for the same cores; frame times printed
# Medians are printed.
#
#   bash bench/monitor_overhead.sh            (ROUNDS=3 SECS=15 PORT=18300 BUILD=build)
#
# The server runs graphs/orders.yaml on RocksDB with a demo load far above what it can
# commit, so its commit rate is its maximum; the figure is committed commands per second.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-15}
PORT=${PORT:-18300}
data=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

"$BUILD/server/orderflow" serve graphs/orders.yaml --listen "127.0.0.1:$PORT" --data-dir "$data" \
  --demo-rate 100000 --log-level warn &
server_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
sleep 5  # warm up: caches, memtables, the saga's steady state

committed() {
  curl -sf "http://127.0.0.1:$PORT/metrics" |
    awk '/^orderflow_node_messages_out_total\{node="commit"/ {print $2}'
}
rate_over() {  # committed commands per second over SECS seconds
  local c0 c1
  c0=$(committed); sleep "$SECS"; c1=$(committed)
  echo $(( (c1 - c0) / SECS ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

poll_loop() {  # what the monitor's poller sends, without rendering
  local n=0
  while :; do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/v1/metrics" || true
    if (( n % 30 == 0 )); then curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/v1/graph" || true; fi
    n=$((n + 1))
    sleep 0.25
  done
}

without=(); polling=(); with=(); frames=()
for r in $(seq "$ROUNDS"); do
  without+=("$(rate_over)")
  poll_loop &
  poller=$!
  polling+=("$(rate_over)")
  kill "$poller"; wait "$poller" 2>/dev/null || true
  stats=$(mktemp)
  xvfb-run -a -s "-screen 0 1280x800x24" "$BUILD/orderflow-monitor" "http://127.0.0.1:$PORT" \
    --interval 250 --warmup $((SECS + 2)) --frames 1 --frame-stats >"$stats" 2>/dev/null &
  mon=$!
  sleep 2
  with+=("$(rate_over)")
  wait "$mon" || true
  frames+=("$(cat "$stats")")
  rm -f "$stats"
  echo "round $r: without ${without[-1]}/s, polling ${polling[-1]}/s, monitor ${with[-1]}/s; ${frames[-1]}"
done
w0=$(printf '%s\n' "${without[@]}" | median)
wp=$(printf '%s\n' "${polling[@]}" | median)
w1=$(printf '%s\n' "${with[@]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
echo "median committed commands/s: without $w0; polling at 4 Hz $wp (ratio $(ratio "$wp" "$w0")); monitor rendering on the same cores $w1 (ratio $(ratio "$w1" "$w0"))"
