"""The demo service: a small instrumented "checkout" API that gate watches in the demo.

One program, two roles:

- ``--role app`` (default): the checkout service, run twice — ``--track stable`` and ``--track canary``.
  ``POST /orders`` asks a downstream risk service for a score through a circuit breaker with a timeout,
  ``GET /orders`` pages through orders (deep pages are slower), ``GET /catalog/{id}`` is a cache hit.
- ``--role risk-api``: the downstream dependency (``POST /score``), placed behind the chaos fault proxy.

Latency is simulated with ``asyncio.sleep`` (lognormal, 15–60 ms medians), so the demo costs little CPU.
It follows the conventions gate documents for the services it watches:

- ``http_request_duration_seconds`` histogram labelled ``service``, ``track``, ``traffic_source``
  (``X-Traffic-Source`` header: ``synthetic`` or ``shadow``; absent means ``production``), ``route``,
  ``method``; fine buckets (1 ms steps to 60 ms, then coarser) so a shift of a few per cent is visible;
- ``http_requests_total`` by the same labels plus ``code`` (the status code, e.g. ``503``);
- the ``process_*`` collector (resident memory, CPU, open files);
- ``demo_tasks``: asyncio tasks alive for a second or more, request cycles aside — the Python
  analogue of ``go_goroutines`` — and
  ``demo_background_tasks``: those that outlive their request (zero unless the service leaks).

Faults are switched over HTTP (``POST /__switch``, ``DELETE /__switch``) or set at start
(``--latency-factor 1.25`` is the regressed canary, ``--leak`` the leaking one). The switch endpoint
is meant for loopback: the service binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import signal
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gate.demo.http1 import Http1Client, Http1Error

TRAFFIC_HEADER = "X-Traffic-Source"
# Only these values become label values: a client cannot grow the metric's cardinality.
KNOWN_SOURCES = frozenset({"synthetic", "shadow"})

# 1 ms steps up to 60 ms, 2.5 ms up to 150 ms, 5 ms up to 300 ms, then coarser: a 10 % shift stays
# wider than a bucket from a 20 ms median to a 300 ms tail, so the judge can separate it from none.
BUCKETS: tuple[float, ...] = (
    *(round(0.001 * i, 4) for i in range(1, 61)),
    *(round(0.06 + 0.0025 * i, 4) for i in range(1, 37)),
    *(round(0.15 + 0.005 * i, 3) for i in range(1, 31)),
    0.35,
    0.4,
    0.5,
    0.6,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    5.0,
    10.0,
)

# Route medians (seconds) and lognormal shape; sigma 0.35 gives p95 ≈ 1.8 × median.
ROUTE_MEDIAN_S = {
    "POST /orders": 0.040,
    "GET /orders": 0.025,
    "GET /catalog/{id}": 0.015,
    "POST /score": 0.008,
}
SIGMA = 0.35
DEEP_PAGE_COST_S = 0.002  # per 1000 rows skipped: deep pages are slower, as in real databases
MAX_OFFSET = 100_000
MAX_LEAKED_TASKS = 20_000  # the leak is real but bounded: the demo never exhausts the machine
LEAK_BYTES = 16_384
MAX_BODY_BYTES = 65_536
LONG_LIVED = 1.0  # seconds a task must be alive to count in demo_tasks


class Switch(BaseModel):
    """Faults switched on at run time, on top of the version's own behaviour (bounded values)."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: Annotated[float, Field(ge=0, le=10_000)] = 0.0
    latency_factor: Annotated[float, Field(ge=1, le=20)] = 1.0
    error_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    leak: bool = False


class SwitchUpdate(BaseModel):
    """A partial update of the switch: fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: Annotated[float | None, Field(ge=0, le=10_000)] = None
    latency_factor: Annotated[float | None, Field(ge=1, le=20)] = None
    error_rate: Annotated[float | None, Field(ge=0, le=1)] = None
    leak: bool | None = None


class OrderIn(BaseModel):
    """An order as clients send it; unknown fields are ignored, sizes bounded."""

    model_config = ConfigDict(extra="ignore")
    sku: Annotated[str, Field(max_length=64)] = "A-1"
    qty: Annotated[int, Field(ge=1, le=1000)] = 1


@dataclass
class CircuitBreaker:
    """Consecutive-window breaker: opens when half of the last calls failed, probes after a cool-down.

    Failures are timeouts, connection errors and 5xx answers. While open, callers use their fallback
    at once instead of waiting for a dependency that is known to be sick — that is what keeps the
    checkout p99 bounded when the risk service gets slow.
    """

    window: int = 20
    min_calls: int = 8
    failure_ratio: float = 0.5
    open_for: float = 3.0
    _outcomes: deque[bool] = field(default_factory=deque)
    _opened_at: float | None = None
    _probing: bool = False

    def state(self, now: float | None = None) -> Literal["closed", "open", "half-open"]:
        """Current state; an open breaker becomes half-open once its cool-down has passed."""
        if self._opened_at is None:
            return "closed"
        now = time.monotonic() if now is None else now
        return "open" if now - self._opened_at < self.open_for else "half-open"

    def allow(self) -> bool:
        """May a call go out now? In half-open state exactly one probe goes out at a time."""
        st = self.state()
        if st == "closed":
            return True
        if st == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def record(self, ok: bool) -> None:
        """Record the outcome of a call that went out."""
        if self._opened_at is not None:
            # The probe's answer decides: close and forget, or open for another cool-down.
            self._probing = False
            if ok:
                self._opened_at = None
                self._outcomes.clear()
            else:
                self._opened_at = time.monotonic()
            return
        self._outcomes.append(ok)
        while len(self._outcomes) > self.window:
            self._outcomes.popleft()
        failures = sum(1 for o in self._outcomes if not o)
        if len(self._outcomes) >= self.min_calls and failures / len(self._outcomes) >= self.failure_ratio:
            self._opened_at = time.monotonic()
            self._outcomes.clear()


@dataclass
class Settings:
    """What one process of the demo service is: its role, track and version behaviour."""

    role: Literal["app", "risk-api"] = "app"
    track: str = "stable"
    service: str = "checkout"
    downstream: str | None = None
    downstream_timeout: float = 0.25
    latency_factor: float = 1.0
    leak: bool = False
    seed: int | None = None
    parent_pid: int | None = None


async def _exit_with_parent(parent_pid: int) -> None:
    """Stop this process when the one that started it is gone (killed without cleaning up)."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


class _Metrics:
    """The service's own registry, so two apps in one test process never clash."""

    def __init__(self, settings: Settings, tasks: Any) -> None:
        self.registry = CollectorRegistry()
        labels = ["service", "track", "traffic_source", "route", "method"]
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by track, traffic source and route.",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by status code.",
            [*labels, "code"],
            registry=self.registry,
        )
        # Resident memory, CPU and open files: the leak also shows in process_resident_memory_bytes.
        ProcessCollector(registry=self.registry)
        self.tasks = Gauge(
            "demo_tasks",
            "Asyncio tasks alive for a second or more, request cycles aside (the analogue of go_goroutines).",
            ["service", "track"],
            registry=self.registry,
        )
        self.tasks.labels(settings.service, settings.track).set_function(tasks)
        self.background = Gauge(
            "demo_background_tasks",
            "Tasks the service started that outlive the request that started them (zero unless leaking).",
            ["service", "track"],
            registry=self.registry,
        )
        self.leaked_bytes = Gauge(
            "demo_leaked_bytes",
            "Bytes held by leaked tasks.",
            ["service", "track"],
            registry=self.registry,
        )
        self.breaker = Gauge(
            "demo_circuit_breaker_open",
            "1 while the breaker to the downstream dependency is open or half-open.",
            ["service", "track", "dependency"],
            registry=self.registry,
        )
        self.downstream = Counter(
            "demo_downstream_calls",
            "Calls to the downstream dependency by outcome (ok, timeout, error, rejected by the breaker).",
            ["service", "track", "dependency", "outcome"],
            registry=self.registry,
        )


def _source(header: str | None) -> str:
    if header is None or header == "":
        return "production"
    value = header.strip().lower()
    return value if value in KNOWN_SOURCES else "other"


_UNOBSERVED = frozenset({"/metrics", "/__switch", "/healthz"})
_HEADER_KEY = TRAFFIC_HEADER.lower().encode()


def _serves_request(task: asyncio.Task[Any]) -> bool:
    """Whether the task is the server's cycle for one request (uvicorn runs each in its own task)."""
    return getattr(task.get_coro(), "__qualname__", "").endswith("run_asgi")


class _Observe:
    """Times and counts every request. Plain ASGI: a fraction of the cost of ``@app.middleware``,
    which matters when Locust, production users and the mirror all hit one process."""

    def __init__(
        self, app: ASGIApp, settings: Settings, metrics: _Metrics, slowness: Callable[[], float]
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.slowness = slowness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNOBSERVED:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        header: str | None = None
        length = 0
        for key, value in scope["headers"]:
            if key == _HEADER_KEY:
                header = value.decode("latin-1")
            elif key == b"content-length":
                length = int(value) if value.isdigit() else MAX_BODY_BYTES + 1
        if length > MAX_BODY_BYTES:
            too_big = JSONResponse({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
            await too_big(scope, receive, send)
            return
        status = [500]

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                # A slower version is slower at everything it does: stretch the whole handling time
                # (work, dependency call, overhead) by its factor, so +25 % is +25 % at every quantile.
                factor = self.slowness()
                if factor > 1.0:
                    await asyncio.sleep((factor - 1.0) * (time.perf_counter() - start))
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            # The router records the matched route in the scope: label by template, not by URL.
            route = getattr(scope.get("route"), "path", None) or "other"
            labels = (self.settings.service, self.settings.track, _source(header), route, scope["method"])
            self.metrics.duration.labels(*labels).observe(time.perf_counter() - start)
            self.metrics.requests.labels(*labels, str(status[0])).inc()


def create_app(settings: Settings) -> FastAPI:
    """Build the demo service for one role and track. Pure construction: nothing listens yet."""
    rng = random.Random(settings.seed)
    switch = Switch()
    leaked: set[asyncio.Task[None]] = set()
    leaked_bytes = [0]
    breaker = CircuitBreaker()

    first_seen: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = weakref.WeakKeyDictionary()

    def live_tasks() -> float:
        # Long-lived tasks besides those answering a request: flat under any load, growing only when
        # tasks outlive their request (a leak). A task counts once it has been seen for LONG_LIVED
        # seconds, so the odd short helper task caught by a scrape is no blip in the trend.
        # Read on the loop, when /metrics is served.
        try:
            tasks = [task for task in asyncio.all_tasks() if not _serves_request(task)]
        except RuntimeError:  # no running loop (never in practice): report the leak alone
            return float(len(leaked))
        now = time.monotonic()
        return float(sum(1 for task in tasks if now - first_seen.setdefault(task, now) >= LONG_LIVED))

    metrics = _Metrics(settings, live_tasks)
    metrics.leaked_bytes.labels(settings.service, settings.track).set_function(lambda: float(leaked_bytes[0]))
    metrics.background.labels(settings.service, settings.track).set_function(lambda: float(len(leaked)))
    breaker_gauge = metrics.breaker.labels(settings.service, settings.track, "risk-api")
    breaker_gauge.set_function(lambda: 0.0 if breaker.state() == "closed" else 1.0)
    client: Http1Client | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        watcher = None
        if settings.parent_pid is not None:
            watcher = asyncio.get_running_loop().create_task(_exit_with_parent(settings.parent_pid))
        for task in asyncio.all_tasks():
            first_seen[task] = -math.inf  # the server's own tasks live as long as the process
        yield
        if watcher is not None:
            watcher.cancel()
        if client is not None:
            await client.aclose()
        for task in list(leaked):
            task.cancel()

    app = FastAPI(
        title=f"demo {settings.service} ({settings.track})", docs_url=None, redoc_url=None, lifespan=lifespan
    )

    def _downstream_client() -> Http1Client:
        nonlocal client
        if client is None:
            assert settings.downstream is not None
            client = Http1Client(settings.downstream)
        return client

    def _leak_one() -> None:
        if len(leaked) >= MAX_LEAKED_TASKS:
            return
        payload = bytearray(LEAK_BYTES)

        async def forgotten() -> None:
            # A background task nobody awaits or cancels, holding a buffer: a classic async leak.
            await asyncio.sleep(3600)
            payload.clear()

        task = asyncio.get_running_loop().create_task(forgotten())
        leaked.add(task)
        leaked_bytes[0] += LEAK_BYTES
        task.add_done_callback(leaked.discard)

    async def work(route: str, extra: float = 0.0) -> None:
        """Simulated work: a lognormal service time plus the switch's added latency."""
        base = ROUTE_MEDIAN_S[route] * math.exp(rng.gauss(0.0, SIGMA)) + extra
        await asyncio.sleep(base + switch.latency_ms / 1000.0)
        if settings.leak or switch.leak:
            _leak_one()
        if switch.error_rate > 0 and rng.random() < switch.error_rate:
            raise HTTPException(status_code=500, detail="injected fault")

    app.add_middleware(
        _Observe,
        settings=settings,
        metrics=metrics,
        slowness=lambda: settings.latency_factor * switch.latency_factor,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Say what was wrong and where, without echoing the client's input back.
        problems = [
            {"loc": list(e.get("loc", ()))[:5], "msg": str(e.get("msg", ""))[:200]} for e in exc.errors()
        ]
        return JSONResponse({"detail": problems[:10]}, status_code=422)

    @app.get("/healthz")
    async def healthz() -> dict[str, str | int]:
        # The pid lets whoever started this process check that it is really the one answering.
        return {"status": "ok", "track": settings.track, "role": settings.role, "pid": os.getpid()}

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/__switch")
    async def get_switch() -> dict[str, Any]:
        return _switch_state()

    @app.post("/__switch")
    async def set_switch(update: SwitchUpdate) -> dict[str, Any]:
        nonlocal switch
        merged = switch.model_dump() | update.model_dump(exclude_none=True)
        switch = Switch.model_validate(merged)
        return _switch_state()

    @app.delete("/__switch")
    async def clear_switch() -> dict[str, Any]:
        nonlocal switch
        switch = Switch()
        for task in list(leaked):
            task.cancel()
        leaked.clear()
        leaked_bytes[0] = 0
        return _switch_state()

    def _switch_state() -> dict[str, Any]:
        return {
            "track": settings.track,
            "version": {"latency_factor": settings.latency_factor, "leak": settings.leak},
            "switch": switch.model_dump(),
            "leaked_tasks": len(leaked),
            "breaker": breaker.state(),
        }

    if settings.role == "risk-api":

        @app.post("/score")
        async def score() -> dict[str, Any]:
            await work("POST /score")
            return {"score": round(rng.random(), 3)}

        return app

    async def risk_score(order: OrderIn, source: str) -> tuple[float | None, str]:
        """Ask the dependency; on timeout, error or an open breaker, fall back to a neutral decision."""
        outcome_counter = metrics.downstream
        base = (settings.service, settings.track, "risk-api")
        if settings.downstream is None:
            return None, "no-dependency"
        if not breaker.allow():
            outcome_counter.labels(*base, "rejected").inc()
            return None, "breaker-open"
        http = _downstream_client()
        try:
            resp = await http.post_json(
                "/score",
                {"sku": order.sku, "qty": order.qty},
                {TRAFFIC_HEADER: source} if source != "production" else {},
                timeout=settings.downstream_timeout,
            )
        except TimeoutError:
            breaker.record(False)
            outcome_counter.labels(*base, "timeout").inc()
            return None, "timeout"
        except Http1Error:
            breaker.record(False)
            outcome_counter.labels(*base, "error").inc()
            return None, "error"
        if resp.status >= 500:
            breaker.record(False)
            outcome_counter.labels(*base, "error").inc()
            return None, "error"
        breaker.record(True)
        outcome_counter.labels(*base, "ok").inc()
        try:
            value = float(resp.json()["score"])
        except (ValueError, KeyError, TypeError):
            return None, "bad-answer"
        return value, "ok"

    @app.post("/orders")
    async def place_order(
        order: OrderIn,
        x_traffic_source: Annotated[str | None, Header(alias=TRAFFIC_HEADER)] = None,
    ) -> dict[str, Any]:
        await work("POST /orders")
        risk, how = await risk_score(order, _source(x_traffic_source))
        # Degraded but correct: without a score the order is accepted for manual review.
        return {"accepted": True, "sku": order.sku, "qty": order.qty, "risk": risk, "risk_source": how}

    @app.get("/orders")
    async def list_orders(offset: int = 0, limit: int = 20) -> dict[str, Any]:
        offset = max(0, min(offset, MAX_OFFSET))
        limit = max(1, min(limit, 100))
        await work("GET /orders", extra=DEEP_PAGE_COST_S * offset / 1000)
        return {"offset": offset, "orders": [{"id": offset + i} for i in range(min(limit, 5))]}

    @app.get("/catalog/{item_id}")
    async def catalog_item(item_id: int) -> dict[str, Any]:
        await work("GET /catalog/{id}")
        return {"id": item_id, "name": f"item-{item_id}", "price": round(5 + (item_id % 50) * 1.5, 2)}

    return app


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m gate.demo.service --track canary --port 8081 [...]``."""
    import uvicorn
    from prometheus_client import disable_created_metrics

    # `_created` series double what Prometheus stores and no SLI reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    parser = argparse.ArgumentParser(prog="python -m gate.demo.service", description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["app", "risk-api"], default="app")
    parser.add_argument(
        "--track",
        default=None,
        choices=["stable", "canary", "none"],
        help="default: stable, none for risk-api",
    )
    parser.add_argument("--service", default=None, help="service label (default: checkout or risk-api)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--downstream", default=None, help="base URL of the risk service (app role)")
    parser.add_argument("--downstream-timeout", type=float, default=0.25, help="seconds")
    parser.add_argument(
        "--latency-factor", type=float, default=1.0, help="this version's slowness (1.25 = +25%%)"
    )
    parser.add_argument("--leak", action="store_true", help="this version leaks a task per request")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--parent", type=int, default=None, help="exit when this process id is gone")
    args = parser.parse_args(argv)
    if not 1 <= args.latency_factor <= 20:
        parser.error("--latency-factor must be within 1 and 20")
    settings = Settings(
        role=args.role,
        track=args.track or ("stable" if args.role == "app" else "none"),
        service=args.service or ("checkout" if args.role == "app" else "risk-api"),
        downstream=args.downstream.rstrip("/") if args.downstream else None,
        downstream_timeout=args.downstream_timeout,
        latency_factor=args.latency_factor,
        leak=args.leak,
        seed=args.seed,
        parent_pid=args.parent,
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
