"""The one composition: a run's parts — store, router, drivers, runner — from a contract and settings.

Every face builds runs here and nowhere else: ``gate run``, ``gate demo``, the operator, the
dashboard. A face parses its input, calls ``start_run`` or ``resume_run``, drives
``parts.runner.advance(now)`` (or ``parts.runner.run()``), renders, and calls ``parts.close()``.

- ``open_store(url)`` — the run store a URL names (``sqlite:///path``, ``postgresql://…``).
- ``start_run(contract, contract_text, *, settings, store, face, …) -> RunParts`` — records a new run
  (its plan, its contract text, how to rebuild its drivers) and returns its parts; nothing happens
  until the runner is advanced.
- ``resume_run(run_id, *, settings, store, …) -> (RunParts, warnings)`` — the parts of a recorded
  run, rebuilt from the contract text and the plan RECORDED with it (the file on disk may have
  changed since: a warning says so, and the run keeps what it recorded).

This layer sits between the faces and the engine: it may import drivers, the engine and the judge;
no face is imported here.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.compose.drivers import Drivers, EvidenceFactory, LoadAtScale, drivers_for
from gate.contract import Contract, ContractError, SliLibrary, parse_contract
from gate.drivers import kube
from gate.drivers.diagnostics import Target
from gate.drivers.preflight import Problem, preflight
from gate.drivers.prometheus import PrometheusClient
from gate.drivers.routers import Router, RouterError, router_for
from gate.drivers.store import LeaseKeeper, RunStore, StoreError
from gate.engine.clock import Clock, SystemClock
from gate.engine.plan import plan_from_contract
from gate.engine.ports import LookOutcome, LookRequest
from gate.engine.runner import Observer, Runner
from gate.errors import PermanentError
from gate.settings import Settings

__all__ = [
    "Drivers",
    "EvidenceFactory",
    "LoadAtScale",
    "RunParts",
    "build_router",
    "contract_digest",
    "drivers_for",
    "open_store",
    "preflight_run",
    "resume_run",
    "start_run",
]

log = logging.getLogger(__name__)

OnLook = Callable[[LookRequest, LookOutcome], None]
LEASE_TTL = 30.0  # seconds a driving process's lease lasts unless renewed (renewed every 10 s)


def open_store(url: str) -> RunStore:
    """The run store ``url`` names, created (and migrated) when needed.

    ``sqlite:///relative/path``, ``sqlite:////absolute/path`` (a bare path is a SQLite file too) or
    ``postgresql://user@host:port/db``. Raises the store's errors (``StoreError``, a ``GateError``:
    ``StoreURLInvalid`` for a URL gate cannot open, ``StoreUnavailable`` when it cannot be reached)."""
    return RunStore(url)


def build_router(
    contract: Contract, settings: Settings, *, kube_client: kube.KubeClient | None = None
) -> Router:
    """The contract's router, with the cluster credentials the settings name; gate's own nginx is
    started (with the weights it had: 0 on a first run). Raises the router's error (or
    ``kube.KubePermanentError``) when it cannot be built — a face reports it and exits 2."""
    options = _kube_options(settings)
    try:
        router = router_for(
            contract,
            kube_client=kube_client,
            kube=options,
            prefix=settings.nginx_prefix.resolve(),
            listen_port=settings.listen_port,
        )
        start = getattr(router, "start", None)
        if callable(start):
            start()
    except (RouterError, kube.KubeError) as exc:
        if isinstance(exc, PermanentError):
            raise
        raise PermanentError(
            f"router: {exc}",
            hint="pass --kubeconfig/--context (or GATE_KUBECONFIG), or fix spec.router in the contract",
        ) from exc
    return router


def preflight_run(contract: Contract, settings: Settings) -> list[Problem]:
    """What stands in the way of rolling ``contract`` out (``gate.drivers.preflight``), with the
    cluster and Prometheus the settings name; changes nothing."""
    url = settings.prometheus_url or contract.spec.prometheus.url
    client = PrometheusClient(url, timeout=5.0, retries=1) if url else None
    try:
        return preflight(contract, kube=_kube_options(settings), prometheus=client)
    finally:
        if client is not None:
            client.close()


def _kube_options(settings: Settings) -> kube.KubeOptions:
    return kube.KubeOptions(
        kubeconfig=None if settings.kubeconfig is None else str(settings.kubeconfig),
        context=settings.kube_context,
        namespace=settings.namespace,  # fills in what the contract leaves open; a contradiction is refused
        qps=settings.kube_qps,
        burst=settings.kube_burst,
    )


@dataclass
class RunParts:
    """Everything one run needs, built by ``start_run`` / ``resume_run``.

    ``close()`` stops what the drivers may still run (load, chaos: faults undone) and closes their
    clients; the store is closed only when the composition opened it (a URL was passed)."""

    runner: Runner
    store: RunStore
    router: Router
    drivers: Drivers
    notes: list[str] = field(default_factory=list)  # faults undone at start, channels without secrets
    owns_store: bool = False
    lease: LeaseKeeper | None = None  # this process drives the run (writes fenced by the lease)

    @property
    def run_id(self) -> str:
        """The run's id in the store."""
        return self.runner.run_id

    def close(self) -> None:
        """Stop load, undo faults, close clients, release the lease (and close the store when it was
        opened here)."""
        try:
            self.drivers.close()
        finally:
            if self.lease is not None:
                self.lease.stop()
            if self.owns_store:
                self.store.close()


def start_run(
    contract: Contract,
    contract_text: str,
    *,
    settings: Settings,
    store: RunStore | str,
    face: str,
    router: Router | None = None,
    run_id: str | None = None,
    meta: dict[str, Any] | None = None,
    observer: Observer | None = None,
    on_look: OnLook | None = None,
    diagnostics: list[Target] | None = None,
    clock: Clock | None = None,
    contract_dir: Path | None = None,
    stable_url: str | None = None,
    canary_url: str | None = None,
    on_retry: Callable[[str, int, str, float], None] | None = None,
    holder: str | None = None,
    evidence: EvidenceFactory | None = None,
    kube_client: kube.KubeClient | None = None,
) -> RunParts:
    """Record a new run of ``contract`` and build its parts (the router from the contract unless given).

    ``stable_url`` / ``canary_url`` override the contract's target URLs for gate's load (the demo's
    topology); they and the diagnostics are recorded, so that a resume rebuilds the same drivers.
    ``holder`` (e.g. ``gate-run/HOST/PID``, an operator pod's name): lease the run to this process and
    renew the lease in the background, so no other process drives it at the same time; the runner's
    writes are fenced by it (``LeaseLost`` if it is taken over). ``evidence``: the run's analyst and
    Prometheus client come from this factory (the operator's shared, bounded clients).
    ``kube_client`` with ``settings.load_image``: load at scale (a contract asking for more Locust
    workers than ``settings.load_local_workers`` runs them as Jobs, see ``LoadAtScale``)."""
    opened, the_store = _store(store)
    # The id is known before the drivers: load Jobs are labelled with it.
    run_id = run_id or time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]
    try:
        the_router = router if router is not None else build_router(contract, settings)
        drivers = _drivers(
            contract,
            settings,
            diagnostics=diagnostics,
            stable_url=stable_url,
            canary_url=canary_url,
            evidence=evidence,
            kube_client=kube_client,
            run_id=run_id,
        )
    except BaseException:
        if opened:
            the_store.close()
        raise
    recorded = {
        "face": face,
        "contract_sha256": contract_digest(contract_text),
        "router": the_router.describe(),
        "contract_dir": str(contract_dir.resolve()) if contract_dir is not None else "",
        "stable_url": stable_url or "",
        "canary_url": canary_url or "",
        "diagnostics": [{"name": t.name, "path": t.path, "timeout": t.timeout} for t in diagnostics or []],
        **(meta or {}),
    }
    try:
        runner = Runner.create(
            the_store,
            plan_from_contract(contract, diagnostics=bool(diagnostics)),
            contract_name=contract.metadata.name,
            service=contract.spec.service,
            contract_text=contract_text,
            meta=recorded,
            run_id=run_id,
            clock=clock or SystemClock(),
            router=the_router,
            observer=observer,
            on_look=on_look,
            on_retry=on_retry,
            **drivers.runner_kwargs(),
        )
        keeper = _lease(the_store, runner.run_id, holder)
        if holder is not None:
            runner.store = the_store.fenced(holder)  # every write checked against the lease
    except BaseException:
        drivers.close()
        if opened:
            the_store.close()
        raise
    return RunParts(runner, the_store, the_router, drivers, _notes(drivers), owns_store=opened, lease=keeper)


def resume_run(
    run_id: str,
    *,
    settings: Settings,
    store: RunStore | str,
    contract_text: str | None = None,
    router: Router | None = None,
    observer: Observer | None = None,
    on_look: OnLook | None = None,
    clock: Clock | None = None,
    on_retry: Callable[[str, int, str, float], None] | None = None,
    holder: str | None = None,
    evidence: EvidenceFactory | None = None,
    kube_client: kube.KubeClient | None = None,
) -> tuple[RunParts, list[str]]:
    """The parts of recorded run ``run_id``, from the contract text and plan recorded with it.

    ``contract_text`` is today's file, if the face has one: when it differs from the recorded text,
    a warning says so (the run keeps its recorded plan and contract). Raises ``StoreError`` for an
    unknown run, ``PermanentError`` when the recorded contract no longer validates, ``LeaseHeld``
    when ``holder`` is given and another process drives the run (see ``start_run``)."""
    opened, the_store = _store(store)
    keeper: LeaseKeeper | None = None
    try:
        detail = the_store.run_detail(run_id)
        if detail is None:
            raise StoreError(f"no run {run_id!r} in the store")
        # Before anything is built: a run another process drives is not touched (its faults, its nginx).
        keeper = _lease(the_store, run_id, holder)
        meta = detail.meta
        warnings: list[str] = []
        recorded_text = detail.contract_text
        if contract_text is not None and contract_digest(contract_text) != meta.get(
            "contract_sha256", contract_digest(recorded_text)
        ):
            warnings.append(
                "the contract file differs from the one this run began with; "
                "the run keeps its recorded contract and plan"
            )
        contract_dir = Path(meta["contract_dir"]) if meta.get("contract_dir") else None
        try:
            contract = parse_contract(
                recorded_text, filename=f"<run {run_id}>", library=SliLibrary.default(), base_dir=contract_dir
            )
        except ContractError as exc:
            first = "; ".join(str(p) for p in exc.problems[:3])
            raise PermanentError(
                f"run {run_id}: its recorded contract no longer validates: {first}",
                hint="finish it with the gate version that started it, or abort it",
            ) from exc
        targets = [
            Target(str(t.get("name", "")), str(t.get("path", "")), float(t.get("timeout", 10.0)))
            for t in meta.get("diagnostics", [])
            if isinstance(t, dict)
        ]
        the_router = router if router is not None else build_router(contract, settings)
        drivers = _drivers(
            contract,
            settings,
            diagnostics=targets,
            stable_url=str(meta.get("stable_url") or "") or None,
            canary_url=str(meta.get("canary_url") or "") or None,
            evidence=evidence,
            kube_client=kube_client,
            run_id=run_id,
        )
    except BaseException:
        if keeper is not None:
            keeper.stop()
        if opened:
            the_store.close()
        raise
    try:
        runner = Runner(
            the_store,
            run_id,
            clock=clock or SystemClock(),
            router=the_router,
            observer=observer,
            on_look=on_look,
            on_retry=on_retry,
            **drivers.runner_kwargs(),
        )
        if holder is not None:
            runner.store = the_store.fenced(holder)
    except BaseException:
        drivers.close()
        if keeper is not None:
            keeper.stop()
        if opened:
            the_store.close()
        raise
    parts = RunParts(runner, the_store, the_router, drivers, _notes(drivers), owns_store=opened, lease=keeper)
    return parts, warnings


def contract_digest(text: str) -> str:
    """The SHA-256 of a contract's text, recorded with a run to notice a changed file on resume."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------ helpers


def _lease(store: RunStore, run_id: str, holder: str | None) -> LeaseKeeper | None:
    """Lease the run to ``holder``, renewed in the background (``LeaseHeld``: another process drives it)."""
    if holder is None:
        return None
    keeper = LeaseKeeper(store, run_id, holder, ttl=LEASE_TTL)
    keeper.start()
    return keeper


def _store(store: RunStore | str) -> tuple[bool, RunStore]:
    if isinstance(store, str):
        return True, open_store(store)
    return False, store


def _drivers(
    contract: Contract,
    settings: Settings,
    *,
    diagnostics: list[Target] | None,
    stable_url: str | None,
    canary_url: str | None,
    evidence: EvidenceFactory | None = None,
    kube_client: kube.KubeClient | None = None,
    run_id: str = "",
) -> Drivers:
    # Relative files (OpenAPI, chaos experiments) were resolved when the contract was validated.
    library = SliLibrary.default(extra=contract.spec.slis)
    at_scale = (
        LoadAtScale(
            kube_client,
            settings.load_image,
            local_workers=settings.load_local_workers,
            cpu=settings.load_worker_cpu,
            memory=settings.load_worker_memory,
        )
        if kube_client is not None and settings.load_image
        else None
    )
    return drivers_for(
        contract,
        library,
        workdir=settings.workdir,
        prometheus_url=settings.prometheus_url,
        fault_context={"fault_proxy": settings.fault_proxy} if settings.fault_proxy else None,
        diagnostics=diagnostics or None,
        stable_url=stable_url,
        canary_url=canary_url,
        evidence=evidence,
        load_at_scale=at_scale,
        run_id=run_id,
    )


def _notes(drivers: Drivers) -> list[str]:
    return [f"undone from an earlier run: {line}" for line in drivers.recovered] + list(drivers.problems)
