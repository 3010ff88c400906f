"""The runner's load and chaos ports over the real drivers (Locust and Chaos Toolkit processes).

``LoadRunner`` starts a ``LoadDriver`` for a load step and keeps the synthetic evidence of the
last finished run, so a look can add the raw per-request samples to what Prometheus says.
``ChaosRunner`` starts experiments through ``ChaosDriver`` (every fault recorded in the ledger
before it is injected) and aborts them — rollbacks run at once — on stop; ``stop_all`` also undoes
whatever the ledger still lists, e.g. faults a killed gate left behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from gate.contract import Contract, SliLibrary
from gate.drivers.chaos import ChaosDriver, ChaosRun, ChaosWindow, ExperimentSpec, FaultContext
from gate.drivers.load import LoadDriver, LoadPlan, LoadResult
from gate.drivers.load.cluster import ClusterLoadDriver, ClusterOptions, delete_run_objects, run_key
from gate.drivers.load.evidence import load_evidence
from gate.judge import Evidence

log = logging.getLogger(__name__)


class _LoadRun(Protocol):
    """What ``LoadDriver`` (local processes) and ``ClusterLoadDriver`` (Jobs) both offer."""

    def stop(self) -> None: ...
    def result(self, timeout: float | None = None) -> LoadResult: ...
    def partial(self) -> LoadResult: ...
    def close(self) -> None: ...


class LoadRunner:
    """Gate's synthetic load: one Locust run per load step, in gate's own processes or, with
    ``cluster`` (load at scale), as Kubernetes Jobs labelled with ``run_id``."""

    def __init__(
        self,
        contract: Contract,
        library: SliLibrary,
        *,
        stable_url: str | None = None,
        canary_url: str | None = None,
        workdir: Path | None = None,
        cluster: ClusterOptions | None = None,
        run_id: str = "",
    ) -> None:
        self.contract = contract
        self.library = library
        self.stable_url = stable_url
        self.canary_url = canary_url
        self.workdir = workdir
        self.cluster = cluster
        self.run_id = run_id
        self._driver: _LoadRun | None = None
        self._last: LoadResult | None = None
        self._lock = threading.Lock()

    def start(self, step: int, duration: float) -> None:
        """Start the contract's load for ``duration`` seconds (stopping one still running)."""
        self.stop()
        plan = LoadPlan.from_contract(
            self.contract, stable_url=self.stable_url, canary_url=self.canary_url, duration=duration
        )
        driver: _LoadRun
        if self.cluster is not None:
            driver = ClusterLoadDriver(plan, self.cluster, run_id=self.run_id).start()
        else:
            workdir = None if self.workdir is None else self.workdir / f"load-step-{step}"
            driver = LoadDriver(plan, workdir=workdir).start()
        with self._lock:
            self._driver = driver

    def recover(self) -> list[str]:
        """Delete the Jobs, Services and ConfigMaps an earlier process left for this run (load at
        scale: found by the run's label); what was deleted. Local load dies with its gate: nothing."""
        if self.cluster is None:
            return []
        return delete_run_objects(self.cluster, run_key(self.run_id))

    def stop(self) -> None:
        """Stop the load (its final batch is kept as the last result)."""
        with self._lock:
            driver, self._driver = self._driver, None
        if driver is None:
            return
        try:
            driver.stop()
            self._last = driver.result(timeout=15.0)
        finally:
            driver.close()

    def evidence(self, start: float, end: float) -> Evidence | None:
        """Synthetic evidence of the load run going on now (its samples so far), or of the last
        finished one, when it ran inside [start, end]: raw per-request samples, never rounded."""
        with self._lock:
            driver = self._driver
        last = driver.partial() if driver is not None else self._last
        if last is None or last.started_at < start - 1.0 or last.ended_at > end + 1.0:
            return None
        return load_evidence(last, self.contract.spec.objectives, self.library)


class ChaosRunner:
    """Chaos experiments for ``gate run``: started by name, aborted on stop, faults always undone."""

    def __init__(
        self,
        driver: ChaosDriver,
        specs: Mapping[str, ExperimentSpec],
        context: Mapping[str, Any] | FaultContext | None = None,
    ) -> None:
        self.driver = driver
        self.specs = dict(specs)
        self.context = context
        self._runs: dict[str, ChaosRun] = {}
        self._windows: dict[str, ChaosWindow] = {}
        self._lock = threading.Lock()

    def window(self, experiment: str) -> ChaosWindow | None:
        """When ``experiment``'s fault was in place: live while it runs, kept after it stopped."""
        with self._lock:
            run = self._runs.get(experiment)
        if run is not None:
            window = run.window()
            with self._lock:
                self._windows[experiment] = window
            return window
        with self._lock:
            return self._windows.get(experiment)

    def start(self, experiment: str, duration: float) -> None:
        """Start ``experiment`` (a repeat after a crash first aborts the one still running)."""
        if experiment not in self.specs:
            raise KeyError(f"no chaos experiment {experiment!r} in the contract")
        self.stop(experiment)
        run = self.driver.start(experiment, self.specs[experiment], self.context, duration)
        with self._lock:
            self._runs[experiment] = run
            self._windows.pop(experiment, None)

    def stop(self, experiment: str) -> None:
        """Abort ``experiment``: its rollbacks run now; what it left open in the ledger is undone."""
        with self._lock:
            run = self._runs.pop(experiment, None)
        if run is not None:
            journal = run.abort()
            with self._lock:
                self._windows[experiment] = journal.window
        self._undo_leftovers()

    def stop_all(self) -> None:
        """Abort every experiment and undo every fault the ledger lists as open."""
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        errors: list[str] = []
        for run in runs:
            try:
                run.abort()
            except Exception as exc:  # keep undoing the others; the ledger catches what is left
                errors.append(f"{run.name}: {exc}")
        self._undo_leftovers()
        if errors:
            raise RuntimeError("; ".join(errors))

    def _undo_leftovers(self) -> None:
        lines = self.driver.recover()
        still = [line for line in lines if line.startswith("NOT undone")]
        for line in lines:
            log.info("chaos recovery: %s", line)
        if still:
            raise RuntimeError("; ".join(still))
