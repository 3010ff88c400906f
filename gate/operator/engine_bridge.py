"""The operator's one adapter to the engine: start a run, resume a run, ``advance`` it, read its view.

Everything the operator needs of the engine goes through here, so the switch to the engine's
composition changes is this one file.
It builds runs with ``gate.compose`` (the one composition every face uses), then gives them what
the operator shares between gates: the rate-limited Kubernetes client for the router, one bounded
Prometheus client per server, and the evidence of gates measuring the same thing.

Every method blocks (the store, the router's API calls, Prometheus); the operator calls them from
worker threads. One ``GateRun`` is advanced by one thread at a time (``GateRun.lock``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.compose import EvidenceFactory, RunParts, build_router
from gate.compose import resume_run as compose_resume
from gate.compose import start_run as compose_start
from gate.compose.analysis import MIN_WINDOW, ContractAnalyst
from gate.contract import Contract, SliLibrary
from gate.drivers import kube
from gate.drivers.chaos import ChaosWindow
from gate.drivers.prometheus import PrometheusClient
from gate.drivers.store import RunStore, StoreError
from gate.engine.machine import Abort, Resume
from gate.engine.ports import LookOutcome, LookRequest
from gate.judge import Evidence
from gate.operator.limits import SharedPrometheus, TokenBucket
from gate.operator.status import DecisionView, RunView
from gate.settings import Settings

log = logging.getLogger(__name__)


class RateLimitedKube(kube.KubeClient):
    """The kube driver's client with every API call paying a token of the operator's one bucket first
    (shared by every gate, and by the Events the operator posts), and counted."""

    def __init__(self, inner: kube.KubeClient, bucket: TokenBucket, on_call: Callable[[str], None]) -> None:
        super().__init__(inner._api_client, timeout=inner.timeout, namespace=inner.namespace)
        self.bucket = bucket
        self._on_call = on_call

    def _send(self, verb: str, ref: kube.ObjectRef, method: str, path: str, **kwargs: Any) -> kube.JSON:
        self.bucket.acquire()
        self._on_call(verb)
        return super()._send(verb, ref, method, path, **kwargs)


class SharedEvidenceAnalyst(ContractAnalyst):
    """A gate's analyst whose Prometheus evidence is shared with gates measuring the same thing.

    Two gates with the same Prometheus, traffic matchers, objectives and SLI templates, looking at the
    same window, make the same queries and get the same evidence: it is measured once (the judge
    still judges each gate on its own policy). Gates with load or chaos (evidence of their own) are
    measured alone."""

    def __init__(
        self, *args: Any, cache: EvidenceCache, measures: str, grid: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._cache = cache
        self._measures = measures
        self.grid = grid

    def evidence(self, request: LookRequest) -> Evidence:
        request = aligned(request, self.grid)
        key = (self._measures, request.since, request.at, request.sources, request.chaos)
        return self._cache.get(key, lambda: super(SharedEvidenceAnalyst, self).evidence(request))


def aligned(request: LookRequest, grid: float) -> LookRequest:
    """The look's window on the shared grid, so gates started moments apart ask the same queries.

    The start is rounded UP (the window never begins before the step's weight was applied: no evidence
    of another weight is mixed in), the end DOWN (never past the look). When the rounded window would be
    shorter than Prometheus's minimum, the look keeps its own window (measured for itself alone)."""
    if grid <= 0:
        return request
    since = math.ceil(request.since / grid) * grid
    at = math.floor(request.at / grid) * grid
    if at - since < MIN_WINDOW:
        return request
    return dataclasses.replace(request, since=float(since), at=float(at))


class EvidenceCache:
    """Evidence by what was measured (and its absolute window), kept ``keep_for`` seconds: the gates of
    one batch look at the same aligned window within a grid's length of each other."""

    def __init__(self, keep_for: float = 30.0) -> None:
        self.keep_for = keep_for
        self._items: dict[Any, tuple[float, Evidence]] = {}
        self._locks: dict[Any, threading.Lock] = {}
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Any, measure: Callable[[], Evidence]) -> Evidence:
        with self._lock:
            now = time.monotonic()
            kept = self._items.get(key)
            if kept is not None and now - kept[0] <= self.keep_for:
                self.hits += 1
                return kept[1]
            if len(self._items) > 1024:
                self._items = {k: v for k, v in self._items.items() if now - v[0] <= self.keep_for}
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # the first gate measures; the others of its batch wait for its evidence
            with self._lock:
                kept = self._items.get(key)
                if kept is not None and time.monotonic() - kept[0] <= self.keep_for:
                    self.hits += 1
                    return kept[1]
            evidence = measure()
            with self._lock:
                self._items[key] = (time.monotonic(), evidence)
                self._locks.pop(key, None)
            return evidence


@dataclass
class EngineParts:
    """What every run of the operator shares: the store, the Kubernetes client, Prometheus clients."""

    store: RunStore
    kube: RateLimitedKube
    workdir: Path
    settings: Settings = field(default_factory=Settings)
    prometheus_concurrency: int = 8
    on_query: Callable[[], None] | None = None
    on_ask: Callable[[], None] | None = None
    evidence: EvidenceCache = field(default_factory=EvidenceCache)
    align: float = 5.0
    """Seconds of the shared grid looks' windows are aligned to (at least the contract's scrape interval;
    0: each look its own window)."""
    _prometheus: dict[str, SharedPrometheus] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prometheus(self, url: str) -> SharedPrometheus:
        """The one client of this Prometheus server."""
        with self._lock:
            client = self._prometheus.get(url)
            if client is None:
                client = self._prometheus[url] = SharedPrometheus(
                    url, concurrency=self.prometheus_concurrency
                )
                client.on_query = self.on_query
                client.on_ask = self.on_ask
            return client

    def queries(self) -> tuple[int, int]:
        """(asked by gates, sent to Prometheus) so far."""
        with self._lock:
            clients = list(self._prometheus.values())
        return sum(c.query_count for c in clients), sum(c.sent for c in clients)

    def close(self) -> None:
        with self._lock:
            clients, self._prometheus = list(self._prometheus.values()), {}
        for client in clients:
            client.shutdown()
        self.store.close()


class GateRun:
    """One run of one gate: its parts (runner, drivers) and the decisions it took since last asked."""

    def __init__(self, parts: RunParts, contract: Contract, meta: dict[str, Any] | None = None) -> None:
        self.parts = parts
        self.runner = parts.runner
        self.contract = contract
        self.meta = dict(meta or {})
        self.lock = threading.Lock()
        self._decisions: list[DecisionView] = []
        self._decisions_lock = threading.Lock()

    @property
    def run_id(self) -> str:
        return self.runner.run_id

    def on_look(self, request: LookRequest, outcome: LookOutcome) -> None:
        """Keep each decision for the status and an Event (called by the runner)."""
        with self._decisions_lock:
            self._decisions.append(
                DecisionView(
                    action=outcome.action,
                    reason=outcome.reason,
                    basis=outcome.basis,
                    look=request.look,
                    step=request.step,
                    at=request.at,
                    verdicts=tuple(dict(v) for v in outcome.verdicts),
                )
            )

    def take_decisions(self) -> list[DecisionView]:
        """The decisions made since the last call."""
        with self._decisions_lock:
            out, self._decisions = self._decisions, []
        return out

    def advance(self, now: float) -> float | None:
        """Do what is due at ``now``; the absolute time something is next due (None: finished)."""
        with self.lock:
            return self.runner.advance(now)

    def request(self, approve: bool, by: str, reason: str, at: float) -> None:
        """A reviewer's approve (resume a held run) or abort (roll back), through the store's inbox."""
        event = Resume(at=at, by=by, reason=reason) if approve else Abort(at=at, by=by, reason=reason)
        self.runner.request(event)

    def view(self) -> RunView:
        s, plan = self.runner.state, self.runner.plan
        step = plan.steps[s.step] if s.step < len(plan.steps) else None
        label = step.label() if step is not None else "done"
        awaiting = (
            s.status == "running"
            and s.phase == "stepping"
            and step is not None
            and step.kind == "pause"
            and step.duration is None
        )
        return RunView(
            run_id=self.runner.run_id,
            status=s.status,
            phase=s.phase,
            step=s.step,
            steps=len(plan.steps),
            step_label=label,
            weight=s.weight,
            mirror=s.mirror,
            reason=s.reason,
            cause=s.cause,
            awaiting=awaiting,
        )

    @property
    def terminal(self) -> bool:
        return self.runner.state.terminal

    def close(self) -> None:
        """Stop what the drivers may still run (load, chaos: faults undone); the store stays open."""
        self.parts.close()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def base_library() -> SliLibrary:
    """gate's SLI templates, read once (every gate's contract is checked and measured with them)."""
    return SliLibrary.default()


def library_for(contract: Contract) -> SliLibrary:
    """The templates a contract's queries use: gate's, plus its own ``spec.slis``."""
    return SliLibrary.default(extra=contract.spec.slis) if contract.spec.slis else base_library()


def _measures(contract: Contract) -> str:
    """What a contract's Prometheus evidence depends on (not its router, target or steps)."""
    spec = contract.spec
    return json.dumps(
        [
            spec.prometheus.model_dump(mode="json"),
            spec.traffic.model_dump(mode="json"),
            [o.model_dump(mode="json") for o in spec.objectives],
            {k: v.model_dump(mode="json") for k, v in spec.slis.items()},
            spec.service,
        ],
        sort_keys=True,
        default=str,
    )


def _settings(parts: EngineParts, run_key: str) -> Settings:
    # Each run its own driver directory (fault ledger, Locust files): runs never undo each other's faults.
    return parts.settings.model_copy(update={"workdir": parts.workdir / run_key})


def _evidence(parts: EngineParts) -> EvidenceFactory:
    """The composition's evidence factory for an operator run: the one client per Prometheus server
    for all gates (bounded, coalescing: gate.operator.limits), owned by the operator (never closed by
    a run), and evidence shared with gates measuring the same thing when the run has none of its own
    (no load, no chaos)."""

    def build(
        contract: Contract,
        library: SliLibrary,
        url: str | None,
        *,
        extra_evidence: Callable[[float, float], Evidence | None] | None,
        chaos_window: Callable[[str], ChaosWindow | None] | None,
    ) -> tuple[ContractAnalyst, PrometheusClient | None]:
        shared = parts.prometheus(url) if url else None
        if shared is not None and extra_evidence is None and chaos_window is None:
            analyst: ContractAnalyst = SharedEvidenceAnalyst(
                contract,
                library,
                shared,
                cache=parts.evidence,
                measures=_measures(contract),
                grid=max(parts.align, contract.spec.prometheus.scrape_interval) if parts.align > 0 else 0.0,
            )
        else:
            analyst = ContractAnalyst(
                contract, library, shared, extra_evidence=extra_evidence, chaos_window=chaos_window
            )
        return analyst, None  # the shared client outlives the run

    return build


def start_run(
    parts: EngineParts,
    contract: Contract,
    contract_text: str,
    *,
    run_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> GateRun:
    """Record a new run of ``contract`` in the store and return it (nothing moves until ``advance``)."""
    holder: dict[str, GateRun] = {}

    def on_look(request: LookRequest, outcome: LookOutcome) -> None:
        holder["run"].on_look(request, outcome)

    run = compose_start(
        contract,
        contract_text,
        settings=_settings(parts, run_id or contract.metadata.name),
        store=parts.store,
        face="operator",
        router=build_router(contract, parts.settings, kube_client=parts.kube),
        run_id=run_id,
        meta=meta,
        on_look=on_look,
        evidence=_evidence(parts),
        kube_client=parts.kube,  # load at scale: Jobs through the operator's rate-limited client
    )
    gate_run = holder["run"] = GateRun(run, contract, {"face": "operator", **(meta or {})})
    return gate_run


def resume_run(parts: EngineParts, run_id: str) -> GateRun | None:
    """The run ``run_id`` as the store has it, with its recorded contract and plan (None: no such run)."""
    detail = parts.store.run_detail(run_id)
    if detail is None:
        return None
    holder: dict[str, GateRun] = {}

    def on_look(request: LookRequest, outcome: LookOutcome) -> None:
        holder["run"].on_look(request, outcome)

    # The router is built from the recorded contract by the composition, with our client.
    from gate.contract import parse_contract

    contract = parse_contract(detail.contract_text, filename=f"<run {run_id}>", library=base_library())
    try:
        run, warnings = compose_resume(
            run_id,
            settings=_settings(parts, run_id),
            store=parts.store,
            router=build_router(contract, parts.settings, kube_client=parts.kube),
            on_look=on_look,
            evidence=_evidence(parts),
            kube_client=parts.kube,
        )
    except StoreError:
        return None
    for warning in warnings:
        log.warning("run %s: %s", run_id, warning)
    gate_run = holder["run"] = GateRun(run, contract, detail.meta)
    if detail.looks:
        last = detail.looks[-1]
        gate_run._decisions.append(
            DecisionView(
                action=str(last.action),
                reason=str(last.reason),
                basis=str(last.evidence.get("basis", "")) if isinstance(last.evidence, dict) else "",
                look=int(last.look),
                step=int(last.step),
                at=float(last.at),
                verdicts=tuple(dataclasses.asdict(v) for v in last.verdicts),
            )
        )
    return gate_run


def open_parts(
    *,
    store: str,
    workdir: Path,
    kube_client: kube.KubeClient,
    bucket: TokenBucket,
    on_api_call: Callable[[str], None],
    prometheus_concurrency: int,
    on_query: Callable[[], None] | None = None,
    on_ask: Callable[[], None] | None = None,
) -> EngineParts:
    """The shared parts of the operator's runs (the store: a SQLite path or a ``postgresql://`` URL)."""
    return EngineParts(
        store=RunStore(store),
        kube=RateLimitedKube(kube_client, bucket, on_api_call),
        workdir=workdir,
        settings=Settings(
            store=store if "://" in store else f"sqlite:///{Path(store).resolve()}",
            workdir=workdir,
            prometheus_concurrency=min(prometheus_concurrency, 64),
        ),
        prometheus_concurrency=prometheus_concurrency,
        on_query=on_query,
        on_ask=on_ask,
    )
