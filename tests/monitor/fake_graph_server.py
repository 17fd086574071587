#!/usr/bin/env python3
"""A stand-in for `orderflow serve` that serves a synthetic N-node graph on /api/v1/graph and
/api/v1/metrics (same JSON shapes as graph/topology.cc and graph/metrics.cc), for measuring
orderflow-monitor's frame time on large graphs:

  python3 fake_graph_server.py --port 18200 --nodes 50 &
  xvfb-run -a -s "-screen 0 1280x800x24" build/orderflow-monitor http://127.0.0.1:18200 \
      --frames 600 --frame-stats

With --graph FILE --metrics FILE it serves those documents verbatim instead (read at each
request), so a test controls every figure; --port-file FILE receives the port it listens on
(--port 0 picks a free one).
"""
import argparse
import json
import os
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_graph(n, width):
    nodes, edges = [], []
    layers = [list(range(i, min(i + width, n))) for i in range(0, n, width)]
    for li, layer in enumerate(layers):
        for i in layer:
            nodes.append({"id": f"n{i:02d}", "kind": "source" if li == 0 else f"stage{li}", "service": "",
                          "input": "none" if li == 0 else "command", "output": "command",
                          "source": li == 0, "params": {}})
    for li in range(1, len(layers)):
        for k, i in enumerate(layers[li]):
            prev = layers[li - 1]
            edges.append({"from": f"n{prev[k % len(prev)]:02d}", "to": f"n{i:02d}", "type": "command",
                          "storeMediated": li == len(layers) // 2})
            if k + 1 < len(prev):
                edges.append({"from": f"n{prev[k + 1]:02d}", "to": f"n{i:02d}", "type": "command",
                              "storeMediated": False})
    edges.append({"from": nodes[-1]["id"], "to": nodes[width]["id"], "type": "command", "storeMediated": False})
    return {"name": f"synthetic-{n}", "nodes": nodes, "edges": edges}


def make_metrics(graph, start):
    out = []
    for node in graph["nodes"]:
        r = random.uniform(100, 5000)
        out.append({"id": node["id"], "kind": node["kind"], "in": int(r * 10), "out": int(r * 10), "errors": 0,
                    "busySeconds": 1.0, "queueDepth": random.choice([0, 0, 0, 50, 500, 2000]),
                    "rateIn": r, "rateOut": r, "busyShare": random.random(),
                    "latencyUs": {"count": 100, "mean": 50, "p50": 40, "p95": 90, "p99": 120, "p999": 300,
                                  "max": 400},
                    "lastError": "", "gauges": {"lag_events": 3, "lag_seconds": 0.01}})
    return {"uptimeSeconds": time.time() - start, "nodes": out}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=18200)
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--width", type=int, default=5, help="nodes per column")
    ap.add_argument("--graph", help="serve this file as /api/v1/graph")
    ap.add_argument("--metrics", help="serve this file as /api/v1/metrics")
    ap.add_argument("--port-file", help="write the listening port here once bound")
    args = ap.parse_args()
    graph = make_graph(args.nodes, args.width)
    start = time.time()

    def canned(path):
        with open(path, "rb") as f:
            return f.read()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/api/v1/graph":
                body = canned(args.graph) if args.graph else json.dumps(graph).encode()
            elif self.path == "/api/v1/metrics":
                body = canned(args.metrics) if args.metrics else json.dumps(make_metrics(graph, start)).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
