"""One `gate check` per canary revision, shared by every call that asks about that revision.

Flagger calls its hooks every analysis interval and Argo Rollouts measures every `interval`, each with a
10 s timeout by default — far shorter than a check's load. So the first call about a revision (a key:
namespace, contract, revision) starts the check in a worker thread; every call waits a bounded time for
it and answers from what is known then. A finished check is kept (bounded, oldest forgotten first) so
later hooks about the same revision read the same verdict; a check that ended in an infrastructure
error is started again by the first call ``retry_after`` seconds later (errors are temporary). The
check itself is `gate.compose.check.run_check`: the contract's load, chaos and judge, exactly as
`gate check` runs them in CI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gate.compose.check import CheckOptions, CheckReport, run_check
from gate.contract import Contract, SliLibrary

log = logging.getLogger(__name__)

CheckRunner = Callable[[Contract, SliLibrary, CheckOptions], CheckReport]


@dataclass(frozen=True)
class CheckKey:
    """Which revision of which service: one check each."""

    namespace: str
    contract: str
    revision: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.contract}@{self.revision}"


@dataclass
class Check:
    """A check started for a key: running until `report` is set (or `failure` when gate itself broke)."""

    key: CheckKey
    started_at: float
    done: threading.Event = field(default_factory=threading.Event)
    report: CheckReport | None = None
    failure: str | None = None
    progress: list[str] = field(default_factory=list)
    ended_at: float | None = None
    on_inconclusive: str = "hold"
    """The contract's policy.onInconclusive: hold (wait for a person) or rollback."""

    @property
    def status(self) -> str:
        """running, pass, fail, inconclusive, invalid or error."""
        if not self.done.is_set():
            return "running"
        if self.report is None:
            return "error"
        return self.report.status

    @property
    def reason(self) -> str:
        if not self.done.is_set():
            last = self.progress[-1] if self.progress else "starting"
            return f"gate check of {self.key} running for {time.time() - self.started_at:.0f} s ({last})"
        if self.report is None:
            return f"gate check of {self.key} failed: {self.failure}"
        return self.report.reason


def _default_runner(contract: Contract, library: SliLibrary, options: CheckOptions) -> CheckReport:
    return run_check(contract, library, options)


class CheckBook:
    """The checks known to this process, at most `concurrency` running and `keep` remembered."""

    def __init__(
        self,
        *,
        concurrency: int = 2,
        keep: int = 256,
        runner: CheckRunner | None = None,
        workdir: Path | None = None,
        retry_after: float = 10.0,
    ) -> None:
        self.retry_after = retry_after
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="gate-check")
        self._keep = keep
        self._runner = runner or _default_runner
        self._workdir = workdir
        self._lock = threading.Lock()
        self._checks: OrderedDict[CheckKey, Check] = OrderedDict()

    def retry_due(self, check: Check) -> bool:
        """An infrastructure error is tried again, but not before `retry_after` seconds."""
        return check.status == "error" and time.time() - (check.ended_at or 0.0) >= self.retry_after

    def get(self, key: CheckKey) -> Check | None:
        with self._lock:
            return self._checks.get(key)

    def start(
        self, key: CheckKey, contract: Contract, library: SliLibrary, options: CheckOptions
    ) -> tuple[Check, bool]:
        """The check of `key`: the one known (running or finished), or a new one. True when new."""
        with self._lock:
            known = self._checks.get(key)
            if known is not None and not self.retry_due(known):
                self._checks.move_to_end(key)
                return known, False
            check = Check(
                key=key, started_at=time.time(), on_inconclusive=contract.spec.policy.on_inconclusive
            )
            self._checks[key] = check
            self._checks.move_to_end(key)
            self._forget_locked()
        if self._workdir is not None:
            safe = f"{key.namespace}-{key.contract}-{key.revision}"[:120]
            options = CheckOptions(**{**options.__dict__, "workdir": self._workdir / safe})
        self._pool.submit(self._run, check, contract, library, options)
        return check, True

    def _run(self, check: Check, contract: Contract, library: SliLibrary, options: CheckOptions) -> None:
        try:
            check.report = self._runner(contract, library, options)
        except Exception as exc:  # gate broke: never a pass, and the next call may try again
            log.exception("gate check of %s failed", check.key)
            check.failure = f"{type(exc).__name__}: {str(exc)[:500]}"
        finally:
            check.ended_at = time.time()
            check.done.set()

    def _forget_locked(self) -> None:
        finished = [k for k, c in self._checks.items() if c.done.is_set()]
        while len(self._checks) > self._keep and finished:
            self._checks.pop(finished.pop(0), None)

    def close(self) -> None:
        """Stop taking checks; running ones finish in their threads (their load stops on its own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
