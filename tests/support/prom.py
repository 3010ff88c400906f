"""A real Prometheus for tests: deterministic data written as OpenMetrics, backfilled with promtool,
served on a free loopback port, stopped by its own pid.

    from tests.support.prom import OpenMetrics, backfilled_prometheus

    om = OpenMetrics()
    om.counter("http_requests", {"track": "stable"}, [(T0 + i, 10 * i) for i in range(300)])
    @pytest.fixture(scope="module")
    def prom(tmp_path_factory):
        with backfilled_prometheus(om.text(), tmp_path_factory.mktemp("prom")) as server:
            yield server          # server.url; query it at fixed times (time=T0 + ...)

`live_prometheus(workdir, jobs)` starts one that scrapes real processes instead. As a pytest fixture:

    from tests.support.prom import prometheus_factory  # noqa: F401  (makes the fixture available)

    def test_x(prometheus_factory):
        server = prometheus_factory(jobs=[ScrapeJob("app", ["127.0.0.1:8000"])], scrape_interval=0.5)
        server = prometheus_factory(openmetrics=om.text())   # or backfilled; all stopped at teardown
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from gate.drivers.promserver import (
    PrometheusServer,
    PromServerError,
    ScrapeJob,
    backfill_openmetrics,
    scrape_config,
)
from tests.support.ports import free_port

# A fixed instant far from "now": tests query at T0 + offset, so they never depend on the clock.
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class OpenMetrics:
    """Builds timestamped OpenMetrics text, one metric family at a time (promtool wants families whole)."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, list[str]]] = {}

    def _family(self, name: str, kind: str) -> list[str]:
        if name not in self._families:
            self._families[name] = (kind, [])
        known, lines = self._families[name]
        if known != kind:
            raise ValueError(f"{name} is a {known}, not a {kind}")
        return lines

    def counter(self, name: str, labels: Mapping[str, str], points: Iterable[tuple[float, float]]) -> None:
        """`name_total{labels}` at each (unix seconds, value); values must not decrease (or they reset)."""
        lines = self._family(name, "counter")
        lines += [f"{name}_total{_labels(labels)} {_num(v)} {_num(t)}" for t, v in points]

    def gauge(self, name: str, labels: Mapping[str, str], points: Iterable[tuple[float, float]]) -> None:
        """`name{labels}` at each (unix seconds, value)."""
        lines = self._family(name, "gauge")
        lines += [f"{name}{_labels(labels)} {_num(v)} {_num(t)}" for t, v in points]

    def histogram(
        self,
        name: str,
        labels: Mapping[str, str],
        bounds: Sequence[float],
        points: Sequence[tuple[float, Sequence[float], float]],
    ) -> None:
        """Classic histogram: `bounds` are the finite `le` edges; each point is
        (unix seconds, cumulative counts per bound plus +Inf last, sum of observations)."""
        lines = self._family(name, "histogram")
        edges = [*bounds, math.inf]
        for i, edge in enumerate(edges):
            lab = _labels({**labels, "le": _num(edge) if math.isfinite(edge) else "+Inf"})
            lines += [f"{name}_bucket{lab} {_num(counts[i])} {_num(t)}" for t, counts, _ in points]
        lines += [f"{name}_count{_labels(labels)} {_num(counts[-1])} {_num(t)}" for t, counts, _ in points]
        lines += [f"{name}_sum{_labels(labels)} {_num(total)} {_num(t)}" for t, _, total in points]

    def text(self) -> str:
        """The OpenMetrics document, `# EOF` included."""
        out: list[str] = []
        for name, (kind, lines) in self._families.items():
            out.append(f"# TYPE {name} {kind}")
            out += lines
        out.append("# EOF")
        return "\n".join(out) + "\n"


def latency_points(
    bounds: Sequence[float],
    per_second: Sequence[float],
    start: float,
    seconds: int,
    step: int = 1,
) -> list[tuple[float, list[float], float]]:
    """Histogram points for a steady stream: each second, one request at each latency in `per_second`."""
    edges = [*bounds, math.inf]
    per_step = [sum(1 for x in per_second if x <= e) for e in edges]
    total = sum(per_second)
    return [(start + s, [c * (s + 1) for c in per_step], total * (s + 1)) for s in range(0, seconds, step)]


@contextmanager
def backfilled_prometheus(
    text: str, workdir: Path, *, jobs: Sequence[ScrapeJob] = (), scrape_interval: float = 1.0
) -> Iterator[PrometheusServer]:
    """Backfill `text` into a fresh data directory under `workdir` and serve it on a free port."""
    data = workdir / "data"
    backfill_openmetrics(text, data)
    with _serve(data, scrape_config(jobs, scrape_interval=scrape_interval)) as server:
        yield server


@contextmanager
def live_prometheus(
    workdir: Path, jobs: Sequence[ScrapeJob] = (), *, scrape_interval: float = 1.0
) -> Iterator[PrometheusServer]:
    """An empty Prometheus scraping `jobs` (real processes on loopback) every `scrape_interval` s."""
    with _serve(workdir / "data", scrape_config(jobs, scrape_interval=scrape_interval)) as server:
        yield server


@contextmanager
def _serve(data: Path, config: str) -> Iterator[PrometheusServer]:
    # free_port() can race with another process taking the port; a second port almost always works.
    last: PromServerError | None = None
    for _ in range(3):
        server = PrometheusServer(data, free_port(), config=config)
        try:
            server.start()
        except PromServerError as exc:
            server.stop()
            last = exc
            if "address already in use" not in str(exc):
                raise
            continue
        try:
            yield server
        finally:
            server.stop()
        return
    assert last is not None
    raise last


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """Start real Prometheus servers for one test; every one is stopped (by pid) at teardown."""
    with ExitStack() as stack:
        count = 0

        def start(
            *, jobs: Sequence[ScrapeJob] = (), openmetrics: str | None = None, scrape_interval: float = 1.0
        ) -> PrometheusServer:
            nonlocal count
            count += 1
            workdir = tmp_path / f"prometheus-{count}"
            workdir.mkdir()
            if openmetrics is not None:
                cm = backfilled_prometheus(openmetrics, workdir, jobs=jobs, scrape_interval=scrape_interval)
            else:
                cm = live_prometheus(workdir, jobs, scrape_interval=scrape_interval)
            return stack.enter_context(cm)

        yield start
