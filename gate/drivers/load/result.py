"""What a load run measured, built up from the Locust processes' batches as they arrive.

`Aggregator` folds batches (see `gate.drivers.load.protocol`) into per-track totals: every
latency in a merged HDR histogram (three significant digits, microseconds), a uniform reservoir of
raw samples, failures by kind, and each load-generator process's CPU. From it come live
`LoadProgress` events and the final `LoadResult`.

Saturation: a load generator that needs more than `plan.saturation_cpu` of a core over any
`SATURATION_WINDOW` seconds measures its own queueing, not the service; the result is flagged
`saturated` and its evidence carries the flag, which the judge turns into Inconclusive. "Needs" is
the time its event loop ran on a CPU plus the time it waited for one (Linux schedstat; CPU time
alone elsewhere): on a crowded machine a generator that gets a third of a core while wanting all of
it delays its own requests just as much as one that uses a whole core.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from gate.drivers.load.plan import TRACKS, LoadPlan
from gate.drivers.load.protocol import new_histogram, parse_line

if TYPE_CHECKING:
    from gate.contract.sli import SliLibrary
    from gate.drivers.load.evidence import HasSli
    from gate.judge.evidence import Evidence

SATURATION_WINDOW = 3.0
RPS_WINDOW = 3.0


@dataclass(frozen=True)
class TrackProgress:
    """One track, live: requests and errors so far, recent requests/second, p95 so far (seconds)."""

    requests: int
    errors: int
    rps: float
    p95: float | None


@dataclass(frozen=True)
class LoadProgress:
    """A structured progress event for the engine, the operator, the dashboard and the CLI."""

    elapsed: float
    duration: float
    users: int
    tracks: dict[str, TrackProgress]
    cpu: float
    """The busiest load-generator process's recent share of one core."""
    saturated: bool
    demand: float = 0.0
    """The busiest load-generator process's recent need for a core (on a CPU or waiting for one)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "elapsed": round(self.elapsed, 3),
            "duration": self.duration,
            "users": self.users,
            "cpu": round(self.cpu, 3),
            "demand": round(self.demand, 3),
            "saturated": self.saturated,
            "tracks": {
                t: {"requests": p.requests, "errors": p.errors, "rps": round(p.rps, 1), "p95": p.p95}
                for t, p in self.tracks.items()
            },
        }


@dataclass
class TrackResult:
    """Everything measured on one track."""

    track: str
    requests: int
    errors: int
    failures: dict[str, int]
    samples: list[float]
    """Latencies in seconds: every request, or a uniform sample of `max_samples` of them."""
    histogram: HdrHistogram = field(repr=False, compare=False)
    """Every latency, in microseconds (HDR, three significant digits)."""
    duration: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 < q < 1) of every latency, in seconds; None without samples."""
        if self.histogram.get_total_count() == 0:
            return None
        return float(self.histogram.get_value_at_percentile(q * 100.0)) / 1e6

    def hdr(self) -> str:
        """The histogram in HdrHistogram's portable compressed base64 form (mergeable elsewhere)."""
        return str(self.histogram.encode().decode("ascii"))

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_ratio": self.error_ratio,
            "failures": dict(self.failures),
            "rps": round(self.rps, 2),
            "p50": self.quantile(0.50),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
            "samples_kept": len(self.samples),
        }


@dataclass(frozen=True)
class NodeCpu:
    """One load-generator process: its mean and peak sustained share of one core, and its CPU seconds."""

    mean: float
    peak: float
    seconds: float = 0.0
    """CPU seconds the process used from its start (imports included) to its final batch."""
    demand: float = 0.0
    """Peak sustained share of a core it needed: on a CPU or waiting for one (>= peak)."""


@dataclass
class LoadResult:
    """A finished (or stopped) load run."""

    plan: LoadPlan
    started_at: float
    ended_at: float
    tracks: dict[str, TrackResult]
    nodes: dict[str, NodeCpu]
    saturated: bool
    saturation_reason: str
    complete: bool
    """False when the run ended early (stopped, a process died): less evidence than planned."""
    problems: list[str] = field(default_factory=list)
    running: bool = False
    """True for a snapshot of a run still going (`LoadDriver.partial`): the evidence so far."""

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def generator_cpu(self) -> float:
        """The busiest load-generator process's peak sustained share of one core."""
        return max((n.peak for n in self.nodes.values()), default=0.0)

    @property
    def generator_demand(self) -> float:
        """The busiest load-generator process's peak sustained need for a core (running or waiting)."""
        return max((n.demand for n in self.nodes.values()), default=0.0)

    def evidence(self, objectives: Iterable[HasSli], library: SliLibrary) -> Evidence:
        """Judge evidence (source synthetic, both tracks) for the objectives the load can measure."""
        from gate.drivers.load.evidence import load_evidence

        return load_evidence(self, objectives, library)

    def summary(self) -> dict[str, Any]:
        return {
            "duration": round(self.duration, 3),
            "complete": self.complete,
            "saturated": self.saturated,
            "saturation_reason": self.saturation_reason,
            "generator_cpu": round(self.generator_cpu, 3),
            "generator_demand": round(self.generator_demand, 3),
            "nodes": {
                k: {
                    "mean": round(v.mean, 3),
                    "peak": round(v.peak, 3),
                    "demand": round(v.demand, 3),
                    "cpu_seconds": round(v.seconds, 3),
                }
                for k, v in self.nodes.items()
            },
            "tracks": {t: r.summary() for t, r in self.tracks.items()},
            "problems": list(self.problems),
        }


class _TrackAgg:
    def __init__(self, cap: int, seed: int) -> None:
        self.hist = new_histogram()
        self.cap = cap
        self.reservoir: list[float] = []
        self.seen = 0
        self.rng = random.Random(seed)
        self.requests = 0
        self.errors = 0
        self.failures: dict[str, int] = {}
        self.history: list[tuple[float, int]] = []  # (received at, cumulative requests)

    def add(self, part: dict[str, Any], now: float) -> None:
        self.requests += int(part.get("n", 0))
        self.errors += int(part.get("errors", 0))
        for kind, n in dict(part.get("failures") or {}).items():
            key = str(kind)[:120]
            self.failures[key] = self.failures.get(key, 0) + int(n)
        encoded = part.get("hdr") or ""
        if encoded:
            self.hist.decode_and_add(encoded.encode("ascii") if isinstance(encoded, str) else encoded)
        for us in part.get("us") or ():
            self._keep(float(us) / 1e6)
        self.history.append((now, self.requests))

    def _keep(self, value: float) -> None:
        # Algorithm R: after n values, each is in the reservoir with probability cap / n.
        self.seen += 1
        if len(self.reservoir) < self.cap:
            self.reservoir.append(value)
        else:
            j = self.rng.randrange(self.seen)
            if j < self.cap:
                self.reservoir[j] = value

    def rps(self, now: float) -> float:
        if len(self.history) < 2:
            return 0.0
        t1, n1 = self.history[-1]
        t0, n0 = self.history[0]
        for t, n in reversed(self.history):
            if t1 - t >= RPS_WINDOW:
                t0, n0 = t, n
                break
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class Aggregator:
    """Folds the Locust processes' records into progress and a result (thread-safe by its caller)."""

    def __init__(self, plan: LoadPlan, seed: int = 0) -> None:
        self.plan = plan
        self.tracks = {t: _TrackAgg(plan.max_samples, seed + i) for i, t in enumerate(TRACKS)}
        self.cpu: dict[str, _Share] = {}  # node -> its CPU seconds on its clock
        self.busy: dict[str, _Share] = {}  # node -> its CPU + runqueue-wait seconds on its clock
        self.users: dict[str, int] = {}
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.users_stopped_at: float | None = None
        self.done = False
        self.problems: list[str] = []
        self._started_mono: float | None = None

    def add(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "started":
            self.started_at = float(record.get("t", time.time()))
            self._started_mono = time.monotonic()
        elif kind == "batch":
            self._add_batch(record)
        elif kind == "done":
            self.ended_at = float(record.get("t", time.time()))
            self.done = True
        elif kind == "error":
            self.problems.append(str(record.get("message", "unknown error"))[:500])

    def _add_batch(self, record: dict[str, Any]) -> None:
        now = time.monotonic()
        node = str(record.get("node", "?"))[:200]
        tracks = record.get("tracks") or {}
        if record.get("final") and tracks:
            # When this node's users stopped: the end of the load, before any shutdown bookkeeping.
            self.users_stopped_at = max(self.users_stopped_at or 0.0, float(record.get("t", time.time())))
        for track, agg in self.tracks.items():
            part = tracks.get(track)
            if isinstance(part, dict):
                agg.add(part, now)
        clock, cpu, busy = float(record["clock"]), float(record["cpu"]), record.get("busy")
        self.cpu.setdefault(node, _Share()).add(clock, cpu)
        # Without schedstat, CPU time is all we know of the need.
        self.busy.setdefault(node, _Share()).add(clock, float(busy) if busy is not None else cpu)
        self.users[node] = int(record.get("users", 0))

    # -- CPU and saturation ------------------------------------------------------------------------
    def node_cpu(self) -> dict[str, NodeCpu]:
        out = {}
        for node, cpu in self.cpu.items():
            if len(cpu.points) >= 2:
                peak = cpu.peak()
                out[node] = NodeCpu(
                    mean=cpu.mean(),
                    peak=peak,
                    seconds=cpu.points[-1][1],
                    demand=max(self.busy[node].peak(), peak),
                )
        return out

    def recent_cpu(self, *, demand: bool = False) -> float:
        """The busiest process's share of a core (or need for one) over the last second or more."""
        return max((share.recent() for share in (self.busy if demand else self.cpu).values()), default=0.0)

    def saturation(self) -> tuple[bool, str]:
        limit = self.plan.saturation_cpu
        busiest = max(self.node_cpu().items(), key=lambda kv: kv[1].demand, default=None)
        if busiest is None:
            return False, ""
        node, cpu = busiest
        if cpu.demand >= limit:
            waited = (
                f", {cpu.demand - cpu.peak:.0%} waiting for a CPU another process held"
                if cpu.demand - cpu.peak >= 0.05
                else ""
            )
            return True, (
                f"load generator {node} needed {cpu.demand:.0%} of a core (limit {limit:.0%}; "
                f"{cpu.peak:.0%} on a CPU{waited}): it measured its own queueing, not the service; "
                "add workers, lower users or give the generator its own core"
            )
        return False, ""

    # -- views -------------------------------------------------------------------------------------
    def progress(self) -> LoadProgress:
        now = time.monotonic()
        elapsed = now - self._started_mono if self._started_mono is not None else 0.0
        tracks = {
            t: TrackProgress(
                requests=a.requests,
                errors=a.errors,
                rps=a.rps(now),
                p95=(float(a.hist.get_value_at_percentile(95.0)) / 1e6) if a.hist.get_total_count() else None,
            )
            for t, a in self.tracks.items()
        }
        return LoadProgress(
            elapsed=elapsed,
            duration=self.plan.duration,
            users=sum(self.users.values()),
            tracks=tracks,
            cpu=self.recent_cpu(),
            demand=self.recent_cpu(demand=True),
            saturated=self.saturation()[0],
        )

    def result(self, *, running: bool = False) -> LoadResult:
        """The run's result; with `running`, a snapshot of the evidence so far."""
        started = self.started_at if self.started_at is not None else time.time()
        ended = self.users_stopped_at or self.ended_at or time.time()
        duration = max(ended - started, 1e-9)
        saturated, reason = self.saturation()
        return LoadResult(
            plan=self.plan,
            started_at=started,
            ended_at=ended,
            tracks={
                t: TrackResult(
                    track=t,
                    requests=a.requests,
                    errors=a.errors,
                    failures=dict(a.failures),
                    samples=list(a.reservoir),
                    histogram=a.hist,
                    duration=duration,
                )
                for t, a in self.tracks.items()
            },
            nodes=self.node_cpu(),
            saturated=saturated,
            saturation_reason=reason,
            complete=self.done and not self.problems,
            problems=list(self.problems),
            running=running and not self.done,
        )


class _Share:
    """One node's cumulative seconds of a resource against its own clock: the mean share of a core,
    the recent share, and the peak share over any `SATURATION_WINDOW` seconds — O(1) per point, so
    progress stays cheap however long the run."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []
        self._start = 0  # index of the latest point at least one window before the newest
        self._peak = 0.0

    def add(self, clock: float, total: float) -> None:
        if self.points and clock <= self.points[-1][0]:
            return  # a repeated or reordered record says nothing new
        self.points.append((clock, total))
        last = len(self.points) - 1
        while self._start + 1 < last and clock - self.points[self._start + 1][0] >= SATURATION_WINDOW:
            self._start += 1
        c0, u0 = self.points[self._start]
        if clock - c0 >= SATURATION_WINDOW:
            self._peak = max(self._peak, (total - u0) / (clock - c0))

    def mean(self) -> float:
        (c0, u0), (c1, u1) = self.points[0], self.points[-1]
        return (u1 - u0) / (c1 - c0) if c1 > c0 else 0.0

    def peak(self) -> float:
        """Peak over any window; over the whole run when it is shorter than a window."""
        return max(self._peak, self.mean())

    def recent(self, over: float = 1.0) -> float:
        if len(self.points) < 2:
            return 0.0
        c1, u1 = self.points[-1]
        c0, u0 = self.points[0]
        for i in range(len(self.points) - 2, -1, -1):  # newest first: stops after about `over` seconds
            if c1 - self.points[i][0] >= over:
                c0, u0 = self.points[i]
                break
        return (u1 - u0) / (c1 - c0) if c1 > c0 else 0.0


def decode_hdr(encoded: str) -> HdrHistogram:
    """A histogram from `TrackResult.hdr()` (for readers of saved results)."""
    hist = new_histogram()
    hist.decode_and_add(encoded.encode("ascii"))
    return hist


def aggregate(
    plan: LoadPlan,
    lines: Iterable[str | bytes],
    on_progress: Callable[[LoadProgress], None] | None = None,
) -> LoadResult:
    """The result of a run from its master's (or local runner's) output lines, from any source:
    a pipe, a saved file, or a Kubernetes pod's log stream when the workers run as pods."""
    agg = Aggregator(plan)
    for line in lines:
        record = parse_line(line)
        if record is None:
            continue
        agg.add(record)
        if on_progress is not None and record.get("type") == "batch":
            on_progress(agg.progress())
    if agg.started_at is None and not agg.problems:
        agg.problems.append("the output holds no load run (no `started` record)")
    return agg.result()
