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

The admin API (the server's /api/v1/admin/..., same JSON shapes):
  --dead-letters FILE   GET /api/v1/admin/dead-letters serves this document (read once, then
                        kept in memory); POST /api/v1/admin/dead-letters/replay replays from it:
                        a replayable row leaves the list and is answered as replayed, others
                        are refused with their not_replayable_because; an unknown node or
                        offset is 404 {"error"}.
  --subscribers FILE    GET /api/v1/admin/subscribers serves this document verbatim.
  --parked FILE         GET /api/v1/admin/parked serves this document; POST
                        /api/v1/admin/parked/replay ({"command_id"} or {"all": true}) answers
                        each as replayed with outcome "committed" and drops it from the list.
  --replay-log FILE     each replay POST appends one JSON line: {"authorization", "body"}.
  --admin-status CODE   every admin GET answers CODE with {"error"} instead (e.g. 403, 500).
  --replay-status CODE  every replay POST answers CODE with {"error"} instead (e.g. 403, 409).
  --replay-delay S      wait S seconds before answering a replay POST.
Without --dead-letters the admin paths are 404, as on a server without the admin API.
"""
import argparse
import json
import os
import random
import threading
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
    ap.add_argument("--dead-letters", help="serve and replay from this dead-letter list")
    ap.add_argument("--subscribers", help="serve this file as /api/v1/admin/subscribers")
    ap.add_argument("--parked", help="serve and replay from this list of parked saga commands")
    ap.add_argument("--replay-log", help="append each replay POST here as a JSON line")
    ap.add_argument("--admin-status", type=int, help="answer admin GETs with this status")
    ap.add_argument("--replay-status", type=int, help="answer replay POSTs with this status")
    ap.add_argument("--replay-delay", type=float, default=0, help="seconds before a replay answer")
    args = ap.parse_args()
    lock = threading.Lock()
    dead_letters = None
    if args.dead_letters:
        with open(args.dead_letters, "rb") as f:
            dead_letters = json.load(f)

    parked = None
    if args.parked:
        with open(args.parked, "rb") as f:
            parked = json.load(f)

    def replay_parked(body):
        """The answer to a parked-command replay POST, moving replayed commands out of the list."""
        rows = parked["parked"]
        if body.get("all") is True:
            chosen = list(rows)
        elif isinstance(body.get("command_id"), str):
            chosen = [r for r in rows if r["command_id"] == body["command_id"]]
            if not chosen:
                return 404, {"error": {"code": "not_found", "message": f"no parked command {body['command_id']}"}}
        else:
            return 400, {"error": "give command_id, or all: true"}
        for r in chosen:
            rows.remove(r)
        return 200, {"replayed": [{"command_id": r["command_id"], "outcome": "committed"} for r in chosen],
                     "failed": []}

    def replay(body):
        """The answer (status, document) to a replay POST, moving replayed rows out of the list."""
        node = body.get("node")
        sources = [s for s in dead_letters["sources"] if s.get("node") == node]
        if not isinstance(node, str) or not sources:
            return 404, {"error": f"no kafka_source '{node}'"}
        src = sources[0]
        rows = src["dead_letters"]
        if body.get("all") is True:
            chosen = list(rows)
        elif isinstance(body.get("partition"), int) and isinstance(body.get("offset"), int):
            chosen = [r for r in rows if r["partition"] == body["partition"] and r["offset"] == body["offset"]]
            if not chosen:
                return 404, {"error": f"no dead letter at {body['partition']}:{body['offset']} in {src['topic']}"}
        else:
            return 400, {"error": "give partition and offset, or all: true"}
        replayed, refused = [], []
        for r in chosen:
            if r.get("replayable"):
                s = r.get("source") or {"topic": "orders.commands", "partition": 0, "offset": 0}
                replayed.append({"partition": r["partition"], "offset": r["offset"],
                                 "to": f"{s['topic']}/{s['partition']}/{1000 + r['offset']}"})
                rows.remove(r)
            else:
                refused.append({"partition": r["partition"], "offset": r["offset"],
                                "reason": r.get("not_replayable_because", "not replayable")})
        return 200, {"replayed": replayed, "refused": refused}
    graph = make_graph(args.nodes, args.width)
    start = time.time()

    def canned(path):
        with open(path, "rb") as f:
            return f.read()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status, body):
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            is_parked = self.path == "/api/v1/admin/parked/replay" and parked is not None
            if not is_parked and (self.path != "/api/v1/admin/dead-letters/replay" or dead_letters is None):
                self.answer(404, {"error": "not found"})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            with lock:
                if args.replay_log:
                    with open(args.replay_log, "a") as f:
                        f.write(json.dumps({"authorization": self.headers.get("Authorization"),
                                            "body": body}) + "\n")
                if args.replay_status:
                    # The server's own error shape (connectors/http_api.cc); the others use the
                    # contract's {"error": "..."}: the monitor reads both.
                    status, doc = args.replay_status, {"error": {"code": "test",
                                                                 "message": f"refused by the test ({args.replay_status})"}}
                elif not isinstance(body, dict):
                    status, doc = 400, {"error": "the body is not a JSON object"}
                elif is_parked:
                    status, doc = replay_parked(body)
                else:
                    status, doc = replay(body)
            if args.replay_delay:
                time.sleep(args.replay_delay)
            self.answer(status, doc)

        def do_GET(self):
            if self.path.startswith("/api/v1/admin/"):
                if args.admin_status:
                    self.answer(args.admin_status, {"error": f"status {args.admin_status} from the test"})
                elif self.path.split("?")[0] == "/api/v1/admin/dead-letters" and dead_letters is not None:
                    with lock:
                        self.answer(200, dead_letters)
                elif self.path == "/api/v1/admin/subscribers" and args.subscribers:
                    self.answer(200, canned(args.subscribers))
                elif self.path == "/api/v1/admin/parked" and parked is not None:
                    with lock:
                        self.answer(200, parked)
                else:
                    self.answer(404, {"error": "not found"})
                return
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
