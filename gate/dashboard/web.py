"""The dashboard's ASGI plumbing: security headers, a request body bound, access logs and metrics.

Pure ASGI middleware (no buffering of responses, so the live event stream passes through).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("gate.dashboard.access")

MAX_BODY = 64 * 1024  # forms and action requests are small; anything bigger is refused with 413

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class Metrics:
    """The dashboard's own metrics, in a registry of its own (several apps in one process stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gate_dashboard_requests",
            "HTTP requests served, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gate_dashboard_request_seconds",
            "Time to serve a request (to the start of the response), by route template.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.actions = Counter(
            "gate_dashboard_actions",
            "Reviewer actions, by action and outcome (accepted, refused, invalid).",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.streams = Gauge(
            "gate_dashboard_live_streams", "Live event streams open.", registry=self.registry
        )


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class Plumbing:
    """Security headers on every response, a bound on request bodies, one access-log line and
    metrics per request. Headers (tokens, cookies) are never logged; the path is cut to 200 chars."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "timed": False}
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _plain(send, 413, "request body too large (at most 64 KiB)")
            self._done(scope, 413, started)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                headers = [h for h in message.get("headers", []) if h[0].lower() not in _OURS]
                message = {**message, "headers": headers + SECURITY_HEADERS}
                self.metrics.latency.labels(_route_of(scope)).observe(time.perf_counter() - started)
                status["timed"] = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except _TooLarge:
            await _plain(send, 413, "request body too large (at most 64 KiB)")
            status["code"] = 413
        finally:
            self._done(scope, int(status["code"]), started)

    def _done(self, scope: Scope, code: int, started: float) -> None:
        route = _route_of(scope)
        method = str(scope.get("method", ""))
        self.metrics.requests.labels(route, method, str(code)).inc()
        user = scope.get("state", {}).get("user", "") if isinstance(scope.get("state"), dict) else ""
        access_log.info(
            json.dumps(
                {
                    "ts": round(time.time(), 3),
                    "method": method,
                    "path": str(scope.get("path", ""))[:200],
                    "route": route,
                    "status": code,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "client": (scope.get("client") or ("", 0))[0],
                    "user": str(user)[:100],
                },
                separators=(",", ":"),
            )
        )


_OURS = {h[0] for h in SECURITY_HEADERS}


class _TooLarge(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _plain(send: Send, code: int, text: str) -> None:
    body = json.dumps({"detail": text}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": code, "headers": headers + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})
