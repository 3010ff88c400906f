"""Running real rollouts in the demo topology from tests: the contract, a runner in a thread, a timeline.

Everything is real (Prometheus, nginx, the demo services, Locust, Chaos Toolkit); only the contract's
steps are shortened so a whole rollout takes seconds, not minutes.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from gate.contract import Contract, load_contract
from gate.demo.contract import contract_source, demo_contract_data
from gate.demo.rollout import Watchers, build_runner, open_store
from gate.demo.topology import Topology
from gate.engine.machine import Abort
from gate.engine.runner import LookOutcome, LookRequest, Runner


@dataclass
class Timeline:
    """What the runner did, as the test saw it: (monotonic time, weight, status) per transition."""

    points: list[tuple[float, int, str]] = field(default_factory=list)
    looks: list[tuple[float, LookRequest, LookOutcome]] = field(default_factory=list)

    def max_weight(self, since: float = 0.0, until: float = float("inf")) -> int:
        return max((w for t, w, _ in self.points if since <= t <= until), default=0)

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> set[str]:
        return {s for t, _, s in self.points if since <= t <= until}


def contract_for(
    topology: Topology, edit: Callable[[dict[str, Any]], None] | None = None, *, quick: bool = True
) -> tuple[Contract, str]:
    """The demo contract pointed at ``topology``, edited by ``edit(spec)``, written and loaded."""
    data = demo_contract_data(
        contract_source(),
        stable_url=topology.stable_url,
        canary_url=topology.canary_url,
        router_port=topology.ports["router"],
        prometheus_url=topology.prometheus_url,
        quick=quick,
    )
    if edit is not None:
        edit(data["spec"])
    buf = io.StringIO()
    YAML().dump(data, buf)
    path = topology.workdir / f"contract-{time.monotonic_ns()}.yaml"
    path.write_text(buf.getvalue())
    return load_contract(path), buf.getvalue()


@dataclass
class Rollout:
    """A runner running in a thread; ``wait`` joins it and stops the drivers."""

    runner: Runner
    thread: threading.Thread
    close: Callable[[], None]
    timeline: Timeline
    error: list[BaseException]

    def wait(self, timeout: float) -> Runner:
        self.thread.join(timeout)
        if self.thread.is_alive():
            # Never leave a runner looking on in the background: abort it (it rolls back) first.
            state = self.runner.state
            self.runner.request(Abort(at=time.time(), by="e2e test", reason="timed out"))
            self.thread.join(30)
            self.close()
            raise TimeoutError(f"the rollout did not finish within {timeout:g}s: {state}")
        self.close()
        if self.error:
            raise self.error[0]
        return self.runner

    def wait_until(self, predicate: Callable[[Runner], bool], timeout: float) -> float:
        """Poll the runner's state until ``predicate`` holds; the monotonic time it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.runner):
                return time.monotonic()
            if not self.thread.is_alive():
                break
            time.sleep(0.05)
        raise TimeoutError(f"condition not reached within {timeout:g}s: {self.runner.state}")


def start_rollout(topology: Topology, contract: Contract, text: str, store_path: Path) -> Rollout:
    """Start a recorded rollout of ``contract`` in a thread."""
    timeline = Timeline()

    def on_transition(_seq: int, _event: Any, state: Any, _effects: list[Any]) -> None:
        timeline.points.append((time.monotonic(), int(state.weight), str(state.status)))

    def on_look(request: LookRequest, outcome: LookOutcome) -> None:
        timeline.looks.append((time.monotonic(), request, outcome))

    store = open_store(store_path)
    runner, close = build_runner(
        topology, contract, text, store, watchers=Watchers(on_transition=on_transition, on_look=on_look)
    )
    errors: list[BaseException] = []

    def body() -> None:
        try:
            runner.run()
        except BaseException as exc:  # reported by wait()
            errors.append(exc)

    thread = threading.Thread(target=body, name="e2e-rollout", daemon=True)

    def closing() -> None:
        close()
        store.close()

    thread.start()
    return Rollout(runner, thread, closing, timeline, errors)


def explain(rollout: Rollout, last: int = 4) -> str:
    """The last looks in words, for an assertion message."""
    lines = [f"state: {rollout.runner.state}"]
    for _, request, outcome in rollout.timeline.looks[-last:]:
        lines.append(
            f"look {request.look} step {request.step} {request.sources} -> {outcome.action}: {outcome.reason}"
        )
        lines += [
            f"    {v.get('objective')} @{v.get('source')}: {v.get('status')}: {str(v.get('reason'))[:300]}"
            for v in outcome.verdicts
        ]
    return "\n".join(lines)
