"""Bounds the operator keeps for all its gates together.

- ``TokenBucket``: Kubernetes API calls at most ``qps`` per second on average, ``burst`` at once
  (client-go's flow control, in the same two numbers). Shared by every worker thread.
- ``SharedPrometheus``: one client per Prometheus server for all gates, at most ``concurrency``
  queries in flight, and identical queries sent once: asked at the same moment by several gates
  (single flight: the others wait for that answer) or a moment later (a query names its evaluation
  time, so its answer is kept a few seconds). Gates judging the same service over the same window
  share their SLI queries; the operator evaluates on a whole-second grid so gates started by the same
  revision change keep the same windows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from gate.drivers.prometheus import PrometheusClient
from gate.drivers.prometheus.client import Sample


class TokenBucket:
    """A thread-safe token bucket: ``acquire()`` blocks until a token is there."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("a token bucket needs qps > 0 and burst >= 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()
        self.taken = 0
        self.waited = 0.0

    def _reserve(self) -> float:
        """Take a token (possibly going into debt); the seconds to wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            self._tokens -= 1.0
            self.taken += 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def acquire(self) -> float:
        """Wait for a token; returns how long it waited."""
        wait = self._reserve()
        if wait > 0:
            with self._lock:
                self.waited += wait
            self._sleep(wait)
        return wait

    def delay(self) -> float:
        """Take a token without sleeping; the caller waits the returned seconds (asyncio callers)."""
        wait = self._reserve()
        if wait > 0:
            with self._lock:
                self.waited += wait
        return wait


class _Flight:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SharedPrometheus(PrometheusClient):
    """A ``PrometheusClient`` shared by every gate: bounded concurrency, identical queries coalesced.

    ``query_count`` counts the logical requests the gates asked for; ``sent`` the ones that went to
    Prometheus (``query_count - sent`` were answered by another gate's identical request)."""

    def __init__(
        self,
        url: str,
        *,
        concurrency: int = 8,
        timeout: float = 5.0,
        retries: int = 1,
        reuse_for: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(url, timeout=timeout, retries=retries)
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self._flights: dict[str, _Flight] = {}
        # A query names its evaluation time (`time`, `start`/`end`), so its answer is the same for
        # every gate asking it: kept `reuse_for` seconds for gates a moment late.
        self.reuse_for = reuse_for
        self._clock = clock
        self._answers: dict[str, tuple[float, Any]] = {}
        self._parsed: dict[str, tuple[float, list[Sample]]] = {}
        self._pruned_at = clock()
        self._flights_lock = threading.Lock()
        self.sent = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.on_query: Callable[[], None] | None = None  # a query sent to Prometheus
        self.on_ask: Callable[[], None] | None = None  # a query a gate asked (sent or shared)

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """An instant query; at a named time, the parsed answer is shared too (parsing is per answer)."""
        if at is None:
            return super().query(promql, at)
        key = f"{at!r} {promql}"
        with self._flights_lock:
            kept = self._parsed.get(key)
            if kept is not None and self._clock() - kept[0] <= self.reuse_for:
                with self._count_lock:
                    self.query_count += 1
                if self.on_ask is not None:
                    self.on_ask()
                return list(kept[1])
        samples = super().query(promql, at)
        with self._flights_lock:
            self._parsed[key] = (self._clock(), samples)
        return list(samples)

    def close(self) -> None:
        """Shared: closed by the operator at exit only (``shutdown``), not by a run."""

    def shutdown(self) -> None:
        """Close the connection pool (at the operator's exit)."""
        super().close()

    def _call(
        self,
        path: str,
        form: Mapping[str, str | list[str]],
        *,
        what: str,
        method: str = "POST",
        data_is_list: bool = False,
    ) -> Any:
        key = json.dumps([path, method, sorted(form.items())], default=str)
        if self.on_ask is not None:
            self.on_ask()
        timed = any(k in form for k in ("time", "end"))
        with self._flights_lock:
            now = self._clock()
            kept = self._answers.get(key) if timed else None
            if kept is not None and now - kept[0] <= self.reuse_for:
                with self._count_lock:
                    self.query_count += 1
                return kept[1]
            if now - self._pruned_at > self.reuse_for or len(self._answers) > 4096:
                self._answers = {k: v for k, v in self._answers.items() if now - v[0] <= self.reuse_for}
                self._parsed = {k: v for k, v in self._parsed.items() if now - v[0] <= self.reuse_for}
                self._pruned_at = now
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            with self._count_lock:
                self.query_count += 1
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.result
        try:
            with self._slots:
                with self._count_lock:
                    self.sent += 1
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                if self.on_query is not None:
                    self.on_query()
                try:
                    flight.result = super()._call(
                        path, form, what=what, method=method, data_is_list=data_is_list
                    )
                finally:
                    with self._count_lock:
                        self.in_flight -= 1
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._flights_lock:
                self._flights.pop(key, None)
                if timed and flight.error is None:
                    self._answers[key] = (self._clock(), flight.result)
            flight.done.set()
        return flight.result
