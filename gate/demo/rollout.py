"""A real rollout in the demo topology: the engine's runner with the real drivers, recorded in the run store.

Nothing here decides anything: the runner (``gate.engine.runner``) carries the contract's steps out,
the analyst measures Prometheus and the Locust samples and the judge decides. The parts come from the
one composition (``gate.compose.start_run``, as `gate run` builds them), pointed at the demo's
topology — its nginx router, its Prometheus, its fault proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate import compose
from gate.contract import Contract
from gate.demo.topology import Topology
from gate.drivers.store import RunStore
from gate.engine.clock import SystemClock
from gate.engine.machine import Effect, Input, State
from gate.engine.runner import LookOutcome, LookRequest, Runner
from gate.settings import Settings


@dataclass
class Outcome:
    """How the run ended, in the words the demo prints."""

    run_id: str
    status: str  # promoted | rolled_back | held | failed | running
    reason: str
    cause: str | None
    weight: int
    looks: int
    verdicts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Watchers:
    """Callbacks for a live view; every one is optional."""

    on_transition: Callable[[int, Input, State, list[Effect]], None] | None = None
    on_look: Callable[[LookRequest, LookOutcome], None] | None = None


def build_runner(
    topology: Topology,
    contract: Contract,
    contract_text: str,
    store: RunStore,
    *,
    watchers: Watchers | None = None,
    clock: SystemClock | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[Runner, Callable[[], None]]:
    """A new run of ``contract`` against ``topology``, recorded in ``store``; and a closer that stops
    what the drivers still run (load, chaos: faults undone) — call it whatever happened."""
    if topology.router is None or topology.prometheus is None:
        raise RuntimeError("the topology is not running; start it first")
    watchers = watchers or Watchers()
    # The one composition (as `gate run` uses it), pointed at this topology's parts.
    settings = Settings(
        workdir=topology.workdir / "gate",
        prometheus_url=topology.prometheus_url,
        fault_proxy=topology.fault_admin_url,
    )
    parts = compose.start_run(
        contract,
        contract_text,
        settings=settings,
        store=store,
        face="demo",
        router=topology.router,
        meta=meta,
        observer=watchers.on_transition,
        on_look=watchers.on_look,
        clock=clock or SystemClock(),
        stable_url=topology.stable_url,
        canary_url=topology.canary_url,
    )
    return parts.runner, parts.close


def outcome(runner: Runner, looks: list[LookOutcome]) -> Outcome:
    """The run's end as the demo reports it (the last look's verdicts explain a rollback)."""
    state = runner.state
    return Outcome(
        run_id=runner.run_id,
        status=state.status if state.terminal else "running",
        reason=state.reason,
        cause=state.cause,
        weight=state.weight,
        looks=state.looks,
        verdicts=list(looks[-1].verdicts) if looks else [],
    )


def default_store_path() -> Path:
    """Where runs are recorded unless told otherwise: ``.gate/runs.sqlite``, the store `gate run` uses."""
    return Path(".gate") / "runs.sqlite"


def open_store(path: Path | str) -> RunStore:
    """Open (creating it and its folder when missing) the run store the dashboard reads: a SQLite
    file, or any store URL (``sqlite:///…``, ``postgresql://…``)."""
    if isinstance(path, str) and "://" in path:
        return compose.open_store(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return compose.open_store(str(path))
