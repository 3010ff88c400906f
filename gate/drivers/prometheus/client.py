"""The one place gate talks to Prometheus's HTTP API.

Instant and range queries, series and target lookups, over httpx. Every call is bounded: a total
wall-clock deadline per attempt (connect, send, wait and read together — a server that drips one byte
every few seconds is cut at the deadline, not kept alive by each byte), retries with exponential
backoff on 5xx, 429, timeouts and connection errors (never on other 4xx: a 400 is a bad query and
retrying it is useless), a cap on the size of an answer, and a check of its JSON shape. Two kinds of
failure with two consequences: `PermanentError` (fix the query or the server) and `TemporaryError`
(try again later), subclasses of gate's own. Errors quote Prometheus's own message, truncated, never
a whole answer, and never the credentials of a URL (`user:password@` is redacted).
"""

from __future__ import annotations

import json
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpcore
import httpx

from gate import errors, redact
from gate.contract import promql

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_SERIES = 20_000
DEFAULT_MAX_POINTS = 2_000_000
_QUOTE = 300  # how much of a server's words an error message repeats


class PrometheusError(errors.GateError):
    """Reading Prometheus failed."""


class PermanentError(PrometheusError, errors.PermanentError):
    """Retrying is useless: a bad query (HTTP 400/422), a refused request (4xx other than 429), a too
    large or malformed answer."""


class TemporaryError(PrometheusError, errors.TemporaryError):
    """Prometheus was unreachable, slow or overloaded (5xx, 429, a timeout, the attempt's deadline passed)
    after every retry; it may work later."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class DeadlineExceeded(TemporaryError):
    """One attempt took longer in all than its deadline (e.g. an answer dripping in byte by byte)."""


_deadline = threading.local()
"""The monotonic time the current thread's attempt must end by (None: no deadline)."""


def _remaining(timeout: float | None) -> float | None:
    """The smaller of an operation's own timeout and what is left of the attempt's deadline."""
    end: float | None = getattr(_deadline, "end", None)
    if end is None:
        return timeout
    # Never 0: a socket timeout of 0 means non-blocking, not "already late".
    left = max(0.001, end - time.monotonic())
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write waits no longer than the attempt has left."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _remaining(timeout), local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _remaining(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


_SSL_CONTEXTS: dict[bool, ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()


def _ssl_context(verify: Any) -> ssl.SSLContext:
    """The TLS context for ``verify``: the default (CA bundle) and the no-verify ones are built once
    per process and shared (building one reads the whole CA bundle: the operator creates a client per
    run, and loading the bundle was over half the CPU of starting a run); a given context is itself."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if not isinstance(verify, bool):
        return httpx.create_ssl_context(verify=verify)
    with _SSL_LOCK:
        context = _SSL_CONTEXTS.get(verify)
        if context is None:
            context = _SSL_CONTEXTS[verify] = httpx.create_ssl_context(verify=verify)
        return context


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport over sockets that honour the attempt's deadline."""

    def __init__(self, verify: Any = True) -> None:
        context = _ssl_context(verify)
        super().__init__(verify=context)
        # httpx builds its pool without a way to pass a network backend; build the same pool with one.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_DeadlineBackend(),
        )


def _quote(text: object) -> str:
    words = " ".join(str(text).split())
    return words if len(words) <= _QUOTE else words[: _QUOTE - 1] + "…"


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: labels, value, the sample's timestamp (unix seconds)."""

    labels: dict[str, str]
    value: float
    timestamp: float
    buckets: tuple[tuple[int, float, float, float], ...] | None = None
    """A native histogram's buckets (boundary rule, left, right, count), when the element is one;
    `value` is then its count."""


@dataclass(frozen=True)
class Series:
    """One element of a range matrix: labels and (unix seconds, value) points, oldest first."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class Target:
    """An active scrape target as /api/v1/targets reports it."""

    job: str
    instance: str
    health: str  # "up" | "down" | "unknown"
    labels: dict[str, str]
    last_error: str
    scrape_interval: float | None


def _labels(raw: object, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise PermanentError(f"Prometheus answered a malformed label set in {where}")
    return dict(raw)


def _value(raw: object, where: str) -> tuple[float, float]:
    if not (
        isinstance(raw, list)
        and len(raw) == 2
        and isinstance(raw[0], int | float)
        and isinstance(raw[1], str)
    ):
        raise PermanentError(f"Prometheus answered a malformed sample in {where}")
    try:
        return float(raw[0]), float(raw[1])  # float() reads "NaN", "+Inf", "-Inf" as Prometheus writes them
    except ValueError:
        raise PermanentError(f"Prometheus answered a non-numeric sample value in {where}") from None


MAX_NATIVE_ANSWER = 40_000
"""Buckets one native histogram in an answer may hold; a longer one is refused, never judged."""


def _native(raw: object, where: str) -> tuple[float, float, tuple[tuple[int, float, float, float], ...]]:
    """A native histogram sample as the HTTP API writes it: [ts, {count, sum, buckets: [[rule, l, r, n]]}]."""
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], int | float)):
        raise PermanentError(f"Prometheus answered a malformed native histogram in {where}")
    body = raw[1]
    if not isinstance(body, dict):
        raise PermanentError(f"Prometheus answered a malformed native histogram in {where}")
    buckets = body.get("buckets", [])
    if not isinstance(buckets, list):
        raise PermanentError(f"Prometheus answered malformed native histogram buckets in {where}")
    if len(buckets) > MAX_NATIVE_ANSWER:
        raise PermanentError(
            f"Prometheus answered a native histogram of {len(buckets)} buckets in {where}, more than "
            f"{MAX_NATIVE_ANSWER}: refused"
        )
    out = []
    try:
        count = float(body.get("count", "0"))
        for b in buckets:
            if not (isinstance(b, list) and len(b) == 4 and isinstance(b[0], int)):
                raise ValueError
            out.append((int(b[0]), float(b[1]), float(b[2]), float(b[3])))
    except (ValueError, TypeError):
        raise PermanentError(f"Prometheus answered a non-numeric native histogram in {where}") from None
    return float(raw[0]), count, tuple(out)


def _duration_seconds(text: object) -> float | None:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    if not isinstance(text, str):
        return None
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * units[unit]
            except ValueError:
                return None
    return None


class PrometheusClient:
    """A bounded, retrying client for one Prometheus server.

    `timeout` bounds each attempt in all (connect, send, wait for the answer and read it), so no
    server can hold an attempt longer, however slowly it answers. `url` may carry `user:password@`
    (sent as basic auth); it is redacted in every message and in `url`. `verify` is httpx's: True,
    False (skip verification) or an `ssl.SSLContext` / CA file path.

    `query_count` counts logical requests (a retried query counts once); `attempts` counts HTTP requests."""

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        retries: int = 3,
        *,
        verify: Any = True,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_series: int = DEFAULT_MAX_SERIES,
        max_points: int = DEFAULT_MAX_POINTS,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise PermanentError(
                f"Prometheus URL must start with http:// or https://, got {_quote(redact.redact_url(url))!r}"
            )
        base, auth = redact.split_userinfo(url.rstrip("/"))
        self.url = redact.redact_url(url.rstrip("/"))
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_bytes = max_bytes
        self.max_series = max_series
        self.max_points = max_points
        self.query_count = 0
        self.attempts = 0
        self._count_lock = threading.Lock()  # the operator may share one client between threads
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base,
            timeout=httpx.Timeout(timeout),
            headers=dict(headers or {}),
            auth=auth,
            transport=transport if transport is not None else _DeadlineTransport(verify=verify),
            follow_redirects=False,
        )

    # ---- life cycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- queries ----------------------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """Instant query evaluated at `at` (unix seconds; now when None). A scalar answer is one
        Sample with no labels."""
        form = {"query": promql, **({"time": _ts(at)} if at is not None else {})}
        data = self._call("/api/v1/query", form, what="query")
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            ts, value = _value(result, "a scalar answer")
            return [Sample({}, value, ts)]
        if kind != "vector" or not isinstance(result, list):
            raise PermanentError(
                f"expected an instant vector from the query, Prometheus answered {_quote(kind)}"
            )
        if len(result) > self.max_series:
            raise PermanentError(
                f"the query answered {len(result)} series, more than {self.max_series}; narrow it"
            )
        out: list[Sample] = []
        for item in result:
            if not isinstance(item, dict):
                raise PermanentError("Prometheus answered a malformed vector element")
            labels = _labels(item.get("metric"), "a vector element")
            if "histogram" in item and "value" not in item:
                ts, count, buckets = _native(item.get("histogram"), "a vector element")
                out.append(Sample(labels, count, ts, buckets))
                continue
            ts, value = _value(item.get("value"), "a vector element")
            out.append(Sample(labels, value, ts))
        return out

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """Range query from `start` to `end` every `step` seconds."""
        if step <= 0 or end < start:
            raise PermanentError(f"bad range: start={start} end={end} step={step}")
        if (end - start) / step > 11_000:  # Prometheus's own limit per series
            raise PermanentError(
                f"range {end - start:.0f}s at step {step}s has more than 11000 points; raise the step"
            )
        form = {"query": promql, "start": _ts(start), "end": _ts(end), "step": _ts(step)}
        data = self._call("/api/v1/query_range", form, what="range query")
        kind, result = data.get("resultType"), data.get("result")
        if kind != "matrix" or not isinstance(result, list):
            raise PermanentError(
                f"expected a range matrix from the query, Prometheus answered {_quote(kind)}"
            )
        if len(result) > self.max_series:
            raise PermanentError(
                f"the query answered {len(result)} series, more than {self.max_series}; narrow it"
            )
        out: list[Series] = []
        budget = self.max_points
        for item in result:
            values = item.get("values") if isinstance(item, dict) else None
            if not isinstance(values, list):
                raise PermanentError("Prometheus answered a malformed matrix element")
            budget -= len(values)
            if budget < 0:
                raise PermanentError(
                    f"the range query answered more than {self.max_points} points; raise the step"
                )
            points = [_value(v, "a matrix element") for v in values]
            out.append(Series(_labels(item.get("metric"), "a matrix element"), points))
        return out

    def series(self, matchers: Sequence[str], start: float, end: float) -> list[dict[str, str]]:
        """Label sets of the series matching any of `matchers` (series selectors) between start and end."""
        if not matchers:
            return []
        form: dict[str, str | list[str]] = {"match[]": list(matchers), "start": _ts(start), "end": _ts(end)}
        data = self._call("/api/v1/series", form, what="series lookup", data_is_list=True)
        if not isinstance(data, list):
            raise PermanentError("Prometheus answered a malformed series list")
        if len(data) > self.max_series:
            raise PermanentError(
                f"the lookup answered {len(data)} series, more than {self.max_series}; narrow it"
            )
        return [_labels(item, "a series list") for item in data]

    def targets(self) -> list[Target]:
        """Active scrape targets with their health."""
        data = self._call("/api/v1/targets", {"state": "active"}, what="targets lookup", method="GET")
        active = data.get("activeTargets")
        if not isinstance(active, list):
            raise PermanentError("Prometheus answered a malformed target list")
        out: list[Target] = []
        for item in active[: self.max_series]:
            if not isinstance(item, dict):
                raise PermanentError("Prometheus answered a malformed target")
            labels = _labels(item.get("labels", {}), "a target")
            out.append(
                Target(
                    job=labels.get("job", str(item.get("scrapePool", ""))),
                    instance=labels.get("instance", ""),
                    health=str(item.get("health", "unknown")),
                    labels=labels,
                    last_error=_quote(item.get("lastError", "")),
                    scrape_interval=_duration_seconds(item.get("scrapeInterval")),
                )
            )
        return out

    def up(self, jobs: Iterable[str], at: float | None = None) -> list[Sample]:
        """`up` of every target of `jobs` at `at` (1 up, 0 down); one query for all jobs."""
        names = sorted(set(jobs))
        if not names:
            return []
        return self.query(f"up{{job=~{promql.regex_literal(names)}}}", at=at)

    # ---- transport --------------------------------------------------------------------------------

    def _call(
        self,
        path: str,
        form: Mapping[str, str | list[str]],
        *,
        what: str,
        method: str = "POST",
        data_is_list: bool = False,
    ) -> Any:
        """One logical request: retried on temporary failures, the `data` of a success returned."""
        with self._count_lock:
            self.query_count += 1
        last: TemporaryError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                if last is not None and last.delay is not None:
                    delay = min(self.max_backoff, max(delay, last.delay))
                self._sleep(delay)
            try:
                return self._attempt(path, form, what=what, method=method, data_is_list=data_is_list)
            except TemporaryError as exc:
                last = exc
        assert last is not None
        raise type(last)(f"{last} (after {self.retries + 1} attempts)", delay=last.delay) from last

    def _attempt(
        self,
        path: str,
        form: Mapping[str, str | list[str]],
        *,
        what: str,
        method: str,
        data_is_list: bool,
    ) -> Any:
        with self._count_lock:
            self.attempts += 1
        where = f"Prometheus at {self.url}"
        end = time.monotonic() + self.timeout
        _deadline.end = end
        try:
            if method == "GET":
                request = self._http.build_request("GET", path, params=form)
            else:
                request = self._http.build_request("POST", path, data=form)
            response = self._http.send(request, stream=True)
            try:
                body = self._read_bounded(response, end)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            if time.monotonic() >= end - 0.01:
                raise DeadlineExceeded(
                    f"{what}: {where} did not finish its answer within {self.timeout:g}s in all"
                ) from exc
            raise TemporaryError(f"{what}: {where} did not answer within {self.timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise TemporaryError(f"{what}: cannot reach {where}: {_quote(type(exc).__name__)}") from exc
        finally:
            _deadline.end = None
        status = response.status_code
        if status >= 500 or status == 429:
            retry_after = _retry_after(response.headers.get("retry-after"))
            raise TemporaryError(
                f"{what}: {where} answered HTTP {status}{_error_words(body)}", delay=retry_after
            )
        if status in (400, 422):
            raise PermanentError(f"{what} rejected by {where} (HTTP {status}){_error_words(body)}")
        if status in (401, 403):
            raise PermanentError(
                f"{what}: {where} answered HTTP {status} (not authorised){_error_words(body)}",
                hint="check spec.prometheus.auth (bearer token or basic auth) and its file or variable",
            )
        if status != 200:
            raise PermanentError(f"{what}: {where} answered HTTP {status}{_error_words(body)}")
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise PermanentError(f"{what}: {where} answered something that is not JSON") from None
        if not isinstance(doc, dict) or doc.get("status") != "success" or "data" not in doc:
            raise PermanentError(f"{what}: {where} answered an unexpected document{_error_words(body)}")
        data = doc["data"]
        if not isinstance(data, list if data_is_list else dict):
            raise PermanentError(f"{what}: {where} answered a malformed `data` field")
        return data

    def _read_bounded(self, response: httpx.Response, end: float) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise PermanentError(
                f"Prometheus's answer is {int(declared)} bytes, more than the {self.max_bytes} allowed; "
                "narrow the query"
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            if time.monotonic() > end:  # every read is bounded by the deadline; say so plainly
                raise httpx.ReadTimeout("the attempt's deadline passed")
            size += len(chunk)
            if size > self.max_bytes:
                raise PermanentError(
                    f"Prometheus's answer exceeds the {self.max_bytes} bytes allowed; narrow the query"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _ts(value: float) -> str:
    if not math.isfinite(value):
        raise PermanentError(f"not a finite time: {value}")
    return f"{value:.3f}"


def _retry_after(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _error_words(body: bytes) -> str:
    """Prometheus's own error words, truncated, credentials redacted; never the whole answer."""
    try:
        doc = json.loads(body[:65536])
    except (ValueError, RecursionError):
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        kind = doc.get("errorType")
        words = redact.redact_text(doc["error"])
        return f": {_quote(kind) + ': ' if isinstance(kind, str) else ''}{_quote(words)}"
    return ""
