#!/usr/bin/env bash
# orderflow-monitor frame time for a synthetic 50-node graph under Xvfb (issue 3: p99 < 16 ms).
#
#   bash bench/monitor_frames.sh      (NODES=50 FRAMES=600 RUNS=3 SIZE=1280x800 BUILD=build PORT=18400)
#
# tests/monitor/fake_graph_server.py serves a 50-node graph (5 sources, 90 edges, a dashed
# store-mediated column, a back edge) with fresh random figures on every poll. The monitor polls
# it at 4 Hz, with node n07 selected (details panel and its sparklines drawn), and renders FRAMES frames as fast as it can (batch mode: swap interval 0, i.e. vsync
# off) in an Xvfb screen of SIZE with Mesa's llvmpipe, RUNS times at each of two views:
#   fit    the whole graph fitted into the canvas (25 % zoom: figures in the table, not the boxes)
#   100%   zoom 1, most of the graph off the canvas (culling), node figures and edge labels drawn
# Each run prints the monitor's --frame-stats line (after 10 warm-up frames):
#   frame_ms   wall time of a frame: ImGui + GL render to glFinish + buffer swap
#   render_ms  without the swap;  ui_ms  ImGui's CPU work only
#   cpu_ms_per_frame  the process's CPU time (all threads, llvmpipe's included) per frame
# then the medians over runs. The machine's load average is printed too: on a shared machine the
# wall-clock p99 includes waiting for a core.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NODES=${NODES:-50}
FRAMES=${FRAMES:-600}
RUNS=${RUNS:-3}
SIZE=${SIZE:-1280x800}
PORT=${PORT:-18400}

python3 tests/monitor/fake_graph_server.py --port "$PORT" --nodes "$NODES" &
fake=$!
trap 'kill "$fake" 2>/dev/null; wait "$fake" 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/api/v1/graph" >/dev/null && break; sleep 0.1; done

field() { grep -o "$1 [0-9.]*" | awk '{print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for view in fit 100%; do
  zoom_arg=()
  [ "$view" = "100%" ] && zoom_arg=(--zoom 1)
  p50s=(); p99s=(); cpus=()
  for r in $(seq "$RUNS"); do
    line=$(xvfb-run -a -s "-screen 0 ${SIZE}x24" "$BUILD/orderflow-monitor" "http://127.0.0.1:$PORT" \
      --interval 250 --size "$SIZE" "${zoom_arg[@]}" --select n07 --frames "$FRAMES" --frame-stats | grep '^frames')
    echo "$view run $r: $line"
    p50s+=("$(echo "$line" | grep -o 'frame_ms p50 [0-9.]*' | awk '{print $3}')")
    p99s+=("$(echo "$line" | grep -o 'frame_ms p50 [0-9.]* p99 [0-9.]*' | awk '{print $5}')")
    cpus+=("$(echo "$line" | field cpu_ms_per_frame)")
  done
  echo "$view: median over $RUNS runs of $FRAMES frames at $SIZE, $NODES nodes: frame_ms p50 $(printf '%s\n' "${p50s[@]}" | median)" \
       "p99 $(printf '%s\n' "${p99s[@]}" | median), cpu_ms_per_frame $(printf '%s\n' "${cpus[@]}" | median)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
