"""The operator's own metrics and probes: ``/metrics`` (prometheus_client), ``/healthz``, ``/readyz``.

Served by a small threaded HTTP server on its own port, outside kopf's event loop, so a busy loop
still answers its probes (and ``/healthz`` says when the loop stopped beating).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class OperatorMetrics:
    """Every metric the operator exports, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.gates = Gauge("gate_operator_gates", "Gates by phase.", ["phase"], registry=r)
        self.decisions = Counter(
            "gate_operator_decisions_total", "Decisions taken, by action.", ["action"], registry=r
        )
        self.weight = Gauge(
            "gate_operator_canary_weight_percent", "Canary weight by gate.", ["namespace", "gate"], registry=r
        )
        self.evaluation = Histogram(
            "gate_operator_evaluation_seconds",
            "Time of one evaluation (advance) of one gate.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.evaluations = Counter("gate_operator_evaluations_total", "Evaluations of gates.", registry=r)
        self.queries = Counter(
            "gate_operator_prometheus_queries_total",
            "Prometheus queries sent (after coalescing).",
            registry=r,
        )
        self.asked = Counter(
            "gate_operator_prometheus_asked_total",
            "Prometheus queries the gates' looks asked for (sent or answered by another gate's).",
            registry=r,
        )
        self.api_calls = Counter(
            "gate_operator_kube_api_calls_total",
            "Kubernetes API calls made by gate, by verb.",
            ["verb"],
            registry=r,
        )
        self.throttled = Counter(
            "gate_operator_kube_api_throttled_seconds_total",
            "Seconds Kubernetes API calls waited for the token bucket.",
            registry=r,
        )
        self.errors = Counter(
            "gate_operator_errors_total", "Evaluations that raised (retried on the next one).", registry=r
        )


class ProbeServer:
    """``/metrics``, ``/healthz`` (the event loop beat recently), ``/readyz`` (kopf is ready)."""

    def __init__(
        self,
        metrics: OperatorMetrics,
        host: str,
        port: int,
        *,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        self.metrics = metrics
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, code, kind = generate_latest(outer.metrics.registry), 200, CONTENT_TYPE_LATEST
                elif path == "/healthz":
                    ok = healthy()
                    body, code, kind = (
                        (b"ok\n" if ok else b"event loop stalled\n"),
                        200 if ok else 503,
                        "text/plain",
                    )
                elif path == "/readyz":
                    ok = ready()
                    body, code, kind = (
                        (b"ready\n" if ok else b"not ready\n"),
                        200 if ok else 503,
                        "text/plain",
                    )
                else:
                    body, code, kind = b"not found\n", 404, "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="gate-probes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Heartbeat:
    """The event loop's last beat (monotonic), for ``/healthz``."""

    def __init__(self, stale_after: float = 30.0) -> None:
        self.stale_after = stale_after
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def healthy(self) -> bool:
        return time.monotonic() - self.last < self.stale_after
