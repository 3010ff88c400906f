"""Test doubles for the engine's tests — clearly not the real thing.

- ``RecordingRouter``: a test double for the ROUTER ONLY (used where the real nginx router is not
  the subject); it records every call and can be told to fail.
- ``ScriptedAnalyst``: answers looks from a script of decisions over time (a stand-in for
  Prometheus + judge where the subject is the engine's reaction to decisions, not the statistics).
- ``RecordingLoad`` / ``RecordingChaos``: record start/stop calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gate.engine.runner import LookOutcome, LookRequest


@dataclass
class RecordingRouter:
    """TEST DOUBLE for the router: remembers the weight and mirror, records calls, fails on demand."""

    weight: int = 0
    mirror: int = 0
    calls: list[tuple[str, int]] = field(default_factory=list)
    fail_next: int = 0  # the next N calls raise

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("router unavailable (scripted)")

    def set_weight(self, canary_percent: int) -> None:
        self.calls.append(("weight", canary_percent))
        self._maybe_fail()
        self.weight = canary_percent

    def set_mirror(self, percent: int) -> None:
        self.calls.append(("mirror", percent))
        self._maybe_fail()
        self.mirror = percent


Script = Callable[[LookRequest], tuple[Literal["promote", "hold", "rollback"], str]]


@dataclass
class ScriptedAnalyst:
    """TEST DOUBLE for measure + judge: decisions come from a script of the look's time and step."""

    script: Script
    looks: list[LookRequest] = field(default_factory=list)
    raise_when: Callable[[LookRequest], bool] = lambda _r: False

    def look(self, request: LookRequest) -> LookOutcome:
        self.looks.append(request)
        if self.raise_when(request):
            raise ConnectionError("prometheus unreachable (scripted)")
        action, reason = self.script(request)
        verdicts: list[dict[str, Any]] = [
            {
                "objective": "http-latency-p95",
                "sli": "http-latency",
                "source": "production",
                "status": {"promote": "pass", "hold": "inconclusive", "rollback": "fail"}[action],
                "reason": reason,
                "numbers": {"look": request.look},
            }
        ]
        return LookOutcome(action=action, reason=reason, verdicts=verdicts, evidence={"look": request.look})


@dataclass
class RecordingLoad:
    """TEST DOUBLE for the load driver: records starts and stops."""

    calls: list[tuple[str, int]] = field(default_factory=list)
    running: bool = False

    def start(self, step: int, duration: float) -> None:
        self.calls.append(("start", step))
        self.running = True

    def stop(self) -> None:
        self.calls.append(("stop", -1))
        self.running = False


@dataclass
class RecordingChaos:
    """TEST DOUBLE for the chaos driver: records starts and stops, can fail to stop."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    fail_stop: int = 0

    def start(self, experiment: str, duration: float) -> None:
        self.calls.append(("start", experiment))
        self.active.add(experiment)

    def stop(self, experiment: str) -> None:
        self.calls.append(("stop", experiment))
        if self.fail_stop > 0:
            self.fail_stop -= 1
            raise RuntimeError("fault proxy unavailable (scripted)")
        self.active.discard(experiment)

    def stop_all(self) -> None:
        self.calls.append(("stop_all", ""))
        if self.fail_stop > 0:
            self.fail_stop -= 1
            raise RuntimeError("fault proxy unavailable (scripted)")
        self.active.clear()
