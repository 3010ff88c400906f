"""A tiny HTTP service for the load tests: `python -m tests.drivers.load.server --port N --track T`.

It answers every request with 200 (or `--status`), after `--delay` seconds, and counts what it saw:
`GET /__seen` returns {"track", "requests", "sources": {header value: n}, "paths": {...}, "methods": {...}}.
Run in its own process so the service and the load generator never share a CPU scheduler quirk.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--track", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--status", type=int, default=200)
    args = parser.parse_args()
    lock = threading.Lock()
    sources: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    bodies: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *a: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/__seen":
                with lock:
                    data = {
                        "track": args.track,
                        "requests": sum(sources.values()),
                        "sources": dict(sources),
                        "paths": dict(paths),
                        "methods": dict(methods),
                        "bodies": dict(bodies),
                    }
                self._send(200, json.dumps(data).encode())
                return
            with lock:
                sources[self.headers.get("X-Traffic-Source", "")] += 1
                paths[self.path] += 1
                methods[self.command] += 1
                if body:
                    bodies[body.decode(errors="replace")[:200]] += 1
            if args.delay:
                time.sleep(args.delay)
            self._send(args.status, args.track.encode())

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a load generator closing its connections mid-run is normal here

    server = Server(("127.0.0.1", args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
