"""Compose a rollout of a contract from the real drivers (for ``gate run`` and the operator).

The router comes from the caller (``gate.drivers.routers.router_for`` builds it); the rest follows
from the contract: Prometheus for the looks, Locust for load steps, Chaos Toolkit for chaos steps
(with the fault ledger beside the run store, so faults a killed gate left are undone on the next
start), notifications from ``spec.policy.notify`` and diagnostics when asked for.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gate.compose.adapters import ChaosRunner, LoadRunner
from gate.compose.analysis import ContractAnalyst
from gate.contract import Contract, SliLibrary
from gate.drivers.chaos import ChaosDriver, ChaosWindow, FaultLedger, specs_from_contract
from gate.drivers.diagnostics import DiagnosticsCapture, Target
from gate.drivers.kube import KubeClient
from gate.drivers.load.cluster import ClusterOptions
from gate.drivers.load.plan import usable_cores
from gate.drivers.notify import Notifier, channels_from_contract
from gate.drivers.prometheus import PrometheusClient
from gate.drivers.prometheus.auth import SecretReader, client_for
from gate.judge import Evidence

log = logging.getLogger(__name__)


class EvidenceFactory(Protocol):
    """Builds a run's analyst (its Prometheus evidence) instead of the composition's own.

    Called with what the composition would give ``ContractAnalyst`` — the contract, its SLI library,
    the Prometheus URL to ask (None: the contract names none), the load's and chaos' evidence hooks —
    and returns the analyst plus the client it owns (closed with the run; None when the factory's
    caller owns it, e.g. one client shared by many runs)."""

    def __call__(
        self,
        contract: Contract,
        library: SliLibrary,
        url: str | None,
        *,
        extra_evidence: Callable[[float, float], Evidence | None] | None,
        chaos_window: Callable[[str], ChaosWindow | None] | None,
    ) -> tuple[ContractAnalyst, PrometheusClient | None]: ...


@dataclass(frozen=True)
class LoadAtScale:
    """Load at scale is possible: a contract asking for more Locust workers than ``local_workers``
    runs them as Jobs, created by ``client`` in the contract's namespace from ``image``."""

    client: KubeClient
    image: str
    local_workers: int | None = None  # None: this machine's (pod's) usable CPUs
    cpu: str = "1"
    memory: str = "512Mi"

    def chooses(self, contract: Contract) -> bool:
        """Whether the contract's load runs as Jobs (it asks for more workers than gate runs itself)."""
        load = contract.spec.load
        workers = load.workers if load is not None else 1
        local = self.local_workers if self.local_workers is not None else usable_cores()
        return isinstance(workers, int) and workers > local

    def options(self, contract: Contract) -> ClusterOptions:
        from gate.drivers.routers.factory import namespace_for

        namespace = namespace_for(contract, None, self.client.namespace)
        return ClusterOptions(
            client=self.client, namespace=namespace, image=self.image, cpu=self.cpu, memory=self.memory
        )


@dataclass
class Drivers:
    """Everything a ``Runner`` needs besides the store, the clock and the router."""

    analyst: ContractAnalyst
    load: LoadRunner | None
    chaos: ChaosRunner | None
    notifier: Notifier | None
    diagnostics: DiagnosticsCapture | None
    recovered: list[str] = field(default_factory=list)  # faults undone at start (left by a killed gate)
    problems: list[str] = field(default_factory=list)  # e.g. a notification channel without its secret
    _client: PrometheusClient | None = None

    def runner_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Runner`` / ``Runner.create``."""
        return {
            "analyst": self.analyst,
            "load": self.load,
            "chaos": self.chaos,
            "notifier": self.notifier,
            "diagnostics": self.diagnostics,
        }

    def close(self) -> None:
        """Stop what may still run (a run cut short): load, chaos (faults undone), the HTTP client."""
        if self.load is not None:
            with contextlib.suppress(Exception):
                self.load.stop()
        if self.chaos is not None:
            try:
                self.chaos.stop_all()
            except Exception as exc:  # said loudly: a fault may be left; the ledger keeps it for next time
                log.error("faults may remain (the ledger keeps them for the next start): %s", exc)
        if self._client is not None:
            self._client.close()


def drivers_for(
    contract: Contract,
    library: SliLibrary,
    *,
    workdir: Path,
    prometheus_url: str | None = None,
    fault_context: dict[str, Any] | None = None,
    diagnostics: list[Target] | None = None,
    stable_url: str | None = None,
    canary_url: str | None = None,
    secrets: SecretReader | None = None,
    evidence: EvidenceFactory | None = None,
    load_at_scale: LoadAtScale | None = None,
    run_id: str = "",
) -> Drivers:
    """The drivers for a rollout of ``contract``; ``workdir`` keeps the fault ledger and driver files.

    ``load_at_scale`` (the operator): the load runs as Kubernetes Jobs labelled with ``run_id`` when
    the contract asks for more workers than gate runs itself; what an earlier process left of the
    run's Jobs is deleted here (the load of a step does not survive its gate, as local load does not).

    ``secrets`` reads a Kubernetes Secret key (name, key) -> value for `spec.prometheus.auth`; only the
    operator has one to give, elsewhere a Secret reference is refused. ``evidence`` builds the analyst
    (and its Prometheus client) instead (see ``EvidenceFactory``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = prometheus_url or contract.spec.prometheus.url
    # The contract's auth, headers and TLS apply to --prometheus too; credentials are read here, once.
    client = (
        None
        if evidence is not None
        else client_for(
            contract.spec.prometheus,
            url=url,
            base_dir=contract.base_dir,
            secrets=secrets,
            timeout=5.0,
            retries=1,
        )
        if url
        else None
    )
    load = None
    recovered: list[str] = []
    problems: list[str] = []
    if contract.spec.load is not None:
        cluster = (
            load_at_scale.options(contract)
            if load_at_scale is not None and load_at_scale.chooses(contract)
            else None
        )
        load = LoadRunner(
            contract,
            library,
            stable_url=stable_url,
            canary_url=canary_url,
            workdir=workdir / "load",
            cluster=cluster,
            run_id=run_id,
        )
    chaos = None
    if contract.spec.chaos:
        driver = ChaosDriver(FaultLedger(workdir / "faults.ledger"), workdir=workdir / "chaos")
        recovered += driver.recover()  # before anything else: what a killed gate left is undone first
        chaos = ChaosRunner(driver, specs_from_contract(contract), context=fault_context)
    if load is not None:  # after the faults: load an earlier process left only adds traffic
        try:
            recovered += [f"load Job object deleted: {what}" for what in load.recover()]
        except Exception as exc:  # the next start deletes them too; their deadline stops them anyway
            problems.append(f"could not delete the load Jobs an earlier process left: {exc}")
    channels, channel_problems = channels_from_contract(
        list(contract.spec.policy.notify), source=contract.metadata.name
    )
    problems += channel_problems
    notifier = (
        Notifier(channels, defaults={"service": contract.spec.service or contract.metadata.name})
        if channels
        else None
    )
    capture = None
    canary = canary_url or contract.spec.target.canary.url
    if diagnostics and canary:
        capture = DiagnosticsCapture(canary, diagnostics)
    elif diagnostics:
        problems.append("diagnostics asked for, but the canary has no URL (spec.target.canary.url)")
    extra = load.evidence if load is not None else None
    window = chaos.window if chaos is not None else None
    if evidence is not None:
        analyst, client = evidence(contract, library, url, extra_evidence=extra, chaos_window=window)
    else:
        analyst = ContractAnalyst(contract, library, client, extra_evidence=extra, chaos_window=window)
    return Drivers(
        analyst=analyst,
        load=load,
        chaos=chaos,
        notifier=notifier,
        diagnostics=capture,
        recovered=recovered,
        problems=problems,
        _client=client,
    )
