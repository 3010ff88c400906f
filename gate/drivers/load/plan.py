"""What to run: the load plan handed to the Locust processes.

A `LoadPlan` is plain data (a frozen dataclass) so it can be built directly, from a contract, or
read back from the JSON file a Locust process is started with. Nothing here imports Locust.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # typing only: plans are also built without a contract
    from gate.contract import Contract

TRACKS: tuple[str, str] = ("stable", "canary")
"""Every plan drives both tracks, with the same scenario, at the same time."""

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


class PlanError(ValueError):
    """A load plan that cannot run; the message says which field and what to do."""


@dataclass(frozen=True)
class LoadTask:
    """One request of the scenario: a weighted choice among the plan's tasks."""

    name: str
    path: str = "/"
    method: str = "GET"
    weight: float = 1.0
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    body: str | None = None

    def check(self, where: str) -> None:
        """Raise `PlanError` when this task cannot be sent."""
        if self.method.upper() not in METHODS:
            raise PlanError(f"{where}.method: {self.method!r} is not one of {sorted(METHODS)}")
        if not self.path.startswith("/"):
            raise PlanError(
                f"{where}.path: {self.path[:80]!r} must start with '/' (it follows the track URL)"
            )
        if _UNSAFE.search(self.path):
            raise PlanError(f"{where}.path: no spaces or control characters (percent-encode them)")
        for name, value in self.headers.items():
            if not _TOKEN.fullmatch(name):
                raise PlanError(f"{where}.headers: {name[:60]!r} is not a valid HTTP header name")
            if _UNSAFE_VALUE.search(value):
                # A CR or LF would let a header value smuggle a second header or request.
                raise PlanError(f"{where}.headers.{name}: no control characters in a header value")
        if not self.weight > 0:
            raise PlanError(f"{where}.weight: must be positive, got {self.weight}")
        if self.json is not None and self.body is not None:
            raise PlanError(f"{where}: give either json or body, not both")


@dataclass(frozen=True)
class LoadPlan:
    """Synthetic load against both tracks.

    `workers` is the number of Locust worker processes: 1 runs a single local runner, N > 1 runs
    Locust's master/worker mode with N workers, "auto" one worker per local core.
    `saturation_cpu` is the share of one core above which a generator process measures itself
    rather than the service.
    """

    stable_url: str
    canary_url: str
    tasks: tuple[LoadTask, ...] = ()
    users: int = 10
    spawn_rate: float = 10.0
    duration: float = 60.0
    workers: int | Literal["auto"] = 1
    locustfile: str | None = None
    header: str = "X-Traffic-Source"
    header_value: str = "synthetic"
    think_time: tuple[float, float] = (0.0, 0.0)
    saturation_cpu: float = 0.8
    report_interval: float = 1.0
    network_timeout: float = 10.0
    max_samples: int = 200_000
    """Raw latency samples kept per track (a uniform reservoir); the HDR histogram keeps them all."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise `PlanError` on a plan that cannot run."""
        for track, url in (("stable", self.stable_url), ("canary", self.canary_url)):
            if not url.startswith(("http://", "https://")):
                raise PlanError(f"{track} URL {url!r}: must be an absolute http(s) URL")
        if not self.tasks and not self.locustfile:
            raise PlanError("load.tasks: the plan has no tasks and no locustfile; add at least one task")
        for i, task in enumerate(self.tasks):
            task.check(f"load.tasks[{i}]")
        if self.users < 1:
            raise PlanError(f"load.users: must be at least 1, got {self.users}")
        if not self.spawn_rate > 0:
            raise PlanError(f"load.spawnRate: must be positive, got {self.spawn_rate}")
        if not self.duration > 0:
            raise PlanError(f"load.duration: must be positive, got {self.duration}")
        if self.workers != "auto" and (not isinstance(self.workers, int) or self.workers < 1):
            raise PlanError(f"load.workers: must be a positive integer or 'auto', got {self.workers!r}")
        if not 0 < self.saturation_cpu <= 1:
            raise PlanError(f"saturation_cpu: a share of one core in (0, 1], got {self.saturation_cpu}")
        if not _TOKEN.fullmatch(self.header):
            raise PlanError(f"traffic.header: {self.header[:60]!r} is not a valid HTTP header name")
        if _UNSAFE_VALUE.search(self.header_value):
            raise PlanError("header_value: no control characters in a header value")
        lo, hi = self.think_time
        if lo < 0 or hi < lo:
            raise PlanError(f"think_time: need 0 <= min <= max, got {self.think_time}")

    @property
    def worker_count(self) -> int:
        """Worker processes this plan runs on this machine ("auto": one per core)."""
        if self.workers == "auto":
            return usable_cores()
        return self.workers

    @property
    def urls(self) -> dict[str, str]:
        return {"stable": self.stable_url.rstrip("/"), "canary": self.canary_url.rstrip("/")}

    def with_duration(self, duration: float | None) -> LoadPlan:
        return self if duration is None else replace(self, duration=duration)

    # -- the file a Locust process reads -----------------------------------------------------------
    def to_json(self) -> str:
        data = asdict(self)
        data["tasks"] = [asdict(t) for t in self.tasks]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> LoadPlan:
        data = json.loads(text)
        data["tasks"] = tuple(LoadTask(**t) for t in data.get("tasks", ()))
        data["think_time"] = tuple(data.get("think_time", (0.0, 0.0)))
        return cls(**data)

    def write(self, path: Path) -> Path:
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, path: Path) -> LoadPlan:
        return cls.from_json(path.read_text())

    # -- from a contract ---------------------------------------------------------------------------
    @classmethod
    def from_contract(
        cls,
        contract: Contract,
        *,
        stable_url: str | None = None,
        canary_url: str | None = None,
        duration: float | None = None,
        workers: int | Literal["auto"] | None = None,
    ) -> LoadPlan:
        """The contract's `spec.load` aimed at the given URLs (default: the contract's target URLs).

        Tasks of weight 0 are left out; a locustfile is resolved against the contract's folder."""
        spec = contract.spec
        load = spec.load
        if load is None:
            raise PlanError("spec.load: the contract declares no load; add a `load:` section with tasks")
        stable = stable_url or spec.target.stable.url
        canary = canary_url or spec.target.canary.url
        if not stable or not canary:
            raise PlanError(
                "spec.target: synthetic load needs a URL for both stable and canary "
                "(set target.stable.url and target.canary.url, or pass --stable-url and --canary-url)"
            )
        tasks = tuple(
            LoadTask(
                name=t.name,
                path=t.path,
                method=str(t.method).upper(),
                weight=float(t.weight),
                headers=dict(t.headers),
                json=t.json_body,
                body=t.body,
            )
            for t in load.tasks
            if t.weight > 0
        )
        locustfile = str(contract.resolve(load.locustfile).resolve()) if load.locustfile else None
        return cls(
            stable_url=stable,
            canary_url=canary,
            tasks=tasks,
            users=load.users,
            spawn_rate=float(load.spawn_rate),
            duration=float(duration if duration is not None else load.duration),
            workers=workers if workers is not None else load.workers,
            locustfile=locustfile,
            header=spec.traffic.header,
        )
