"""The operator's one adapter to the engine: start a run, resume a run, ``advance`` it, read its view.

Everything the operator needs of the engine goes through here, so the switch to the engine's
composition (``gate.compose``: ``start_run`` / ``resume_run`` / ``Runner.advance``) is this one file.
Until then it composes the run from ``gate.engine.compose.drivers_for`` and the runner as they are,
and ``advance`` does one round of the runner's own loop without sleeping.

Every method blocks (the store, the router's API calls, Prometheus); the operator calls them from
worker threads. One ``GateRun`` is advanced by one thread at a time (``GateRun.lock``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.contract import Contract, SliLibrary, parse_contract
from gate.drivers import kube
from gate.drivers.routers import router_for
from gate.drivers.store import RunStore
from gate.engine.analysis import ContractAnalyst
from gate.engine.clock import SystemClock
from gate.engine.compose import Drivers, drivers_for
from gate.engine.machine import Abort, Resume, Start, Tick
from gate.engine.plan import plan_from_contract
from gate.engine.runner import LookOutcome, LookRequest, Runner
from gate.judge import Evidence
from gate.operator.limits import SharedPrometheus, TokenBucket
from gate.operator.status import DecisionView, RunView

log = logging.getLogger(__name__)


class RateLimitedKube(kube.KubeClient):
    """The kube driver's client with every API call paying a token first (shared by every gate)."""

    def __init__(self, inner: kube.KubeClient, bucket: TokenBucket, on_call: Callable[[str], None]) -> None:
        super().__init__(inner._api_client, timeout=inner.timeout, retry=inner.retry)
        self.bucket = bucket
        self._on_call = on_call

    def _call(self, verb: str, ref: kube.ObjectRef, fn: Callable[[], object]) -> kube.JSON:
        self.bucket.acquire()
        self._on_call(verb)
        return super()._call(verb, ref, fn)


class SharedEvidenceAnalyst(ContractAnalyst):
    """A gate's analyst whose Prometheus evidence is shared with gates measuring the same thing.

    Two gates with the same Prometheus, traffic matchers, objectives and SLI templates, looking at the
    same window, make the same queries and get the same evidence: it is measured once (the judge
    still judges each gate on its own policy). Gates with load or chaos (evidence of their own) are
    measured alone."""

    def __init__(self, *args: Any, cache: EvidenceCache, measures: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache = cache
        self._measures = measures

    def evidence(self, request: LookRequest) -> Evidence:
        key = (self._measures, request.since, request.at, request.sources, request.chaos)
        return self._cache.get(key, lambda: super(SharedEvidenceAnalyst, self).evidence(request))


class EvidenceCache:
    """Evidence by what was measured, kept a few seconds (gates of one batch look within moments)."""

    def __init__(self, keep_for: float = 5.0) -> None:
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
    prometheus_concurrency: int = 8
    on_query: Callable[[], None] | None = None
    on_ask: Callable[[], None] | None = None
    evidence: EvidenceCache = field(default_factory=EvidenceCache)
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
    """One run of one gate: its runner and drivers."""

    def __init__(
        self, runner: Runner, drivers: Drivers, contract: Contract, meta: dict[str, Any] | None = None
    ) -> None:
        self.meta = dict(meta or {})
        self.runner = runner
        self.drivers = drivers
        self.contract = contract
        self.lock = threading.Lock()
        self._recovered = False
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
        r = self.runner
        with self.lock:
            if not self._recovered:
                r.recover()  # effects a killed replica recorded and did not finish, first
                self._recovered = True
            if r.state.phase == "pending":
                r.feed(Start(at=now))
            while not r.state.terminal and r._consume_one():
                pass
            if r.state.terminal:
                return None
            interval = r.plan.policy.interval
            if r._next_tick is None:
                r._next_tick = now + interval
            if now >= r._next_tick:
                r._next_tick = max(r._next_tick + interval, now)
                r.feed(Tick(at=now))
                while not r.state.terminal and r._consume_one():
                    pass
            return None if r.state.terminal else r._next_tick

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
        """Stop what the drivers may still run (load, chaos: faults undone)."""
        self.drivers.close()


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


def _compose(parts: EngineParts, contract: Contract, run_key: str) -> tuple[Drivers, Any]:
    library = library_for(contract)
    drivers = drivers_for(contract, library, workdir=parts.workdir / run_key)
    url = contract.spec.prometheus.url
    if url:
        # One client per Prometheus server for all gates: bounded, coalescing (gate.operator.limits).
        if drivers._client is not None:
            drivers._client.close()
        drivers._client = None
        drivers.analyst.client = parts.prometheus(url)
        if drivers.load is None and drivers.chaos is None:
            drivers.analyst = SharedEvidenceAnalyst(
                contract,
                library,
                parts.prometheus(url),
                cache=parts.evidence,
                measures=_measures(contract),
            )
    router = router_for(contract, kube_client=parts.kube)
    return drivers, router


def start_run(
    parts: EngineParts,
    contract: Contract,
    contract_text: str,
    *,
    run_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> GateRun:
    """Record a new run of ``contract`` in the store and return it (nothing moves until ``advance``)."""
    drivers, router = _compose(parts, contract, run_id or contract.metadata.name)
    holder: dict[str, GateRun] = {}

    def on_look(request: LookRequest, outcome: LookOutcome) -> None:
        holder["run"].on_look(request, outcome)

    try:
        runner = Runner.create(
            parts.store,
            plan_from_contract(contract),
            contract_name=contract.metadata.name,
            service=contract.spec.service,
            contract_text=contract_text,
            meta={"face": "operator", "contract_sha256": digest(contract_text), **(meta or {})},
            run_id=run_id,
            clock=SystemClock(),
            router=router,
            on_look=on_look,
            **drivers.runner_kwargs(),
        )
    except BaseException:
        drivers.close()
        raise
    run = holder["run"] = GateRun(runner, drivers, contract, meta)
    return run


def resume_run(parts: EngineParts, run_id: str) -> GateRun | None:
    """The run ``run_id`` as the store has it, with its recorded contract (None: no such run)."""
    detail = parts.store.run_detail(run_id)
    if detail is None:
        return None
    contract = parse_contract(detail.contract_text, filename=f"run {run_id}", library=base_library())
    drivers, router = _compose(parts, contract, run_id)
    holder: dict[str, GateRun] = {}

    def on_look(request: LookRequest, outcome: LookOutcome) -> None:
        holder["run"].on_look(request, outcome)

    try:
        runner = Runner(
            parts.store,
            run_id,
            clock=SystemClock(),
            router=router,
            on_look=on_look,
            **drivers.runner_kwargs(),
        )
    except BaseException:
        drivers.close()
        raise
    run = holder["run"] = GateRun(runner, drivers, contract, detail.meta)
    if detail.looks:
        last = detail.looks[-1]
        run._decisions.append(
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
    return run


def open_parts(
    *,
    store_path: Path,
    workdir: Path,
    kube_client: kube.KubeClient,
    bucket: TokenBucket,
    on_api_call: Callable[[str], None],
    prometheus_concurrency: int,
    on_query: Callable[[], None] | None = None,
    on_ask: Callable[[], None] | None = None,
) -> EngineParts:
    """The shared parts of the operator's runs."""
    return EngineParts(
        store=RunStore(store_path),
        kube=RateLimitedKube(kube_client, bucket, on_api_call),
        workdir=workdir,
        prometheus_concurrency=prometheus_concurrency,
        on_query=on_query,
        on_ask=on_ask,
    )
