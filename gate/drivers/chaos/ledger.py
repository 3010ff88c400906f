"""The fault ledger: every fault is written down, durably, before it is injected, with what undoes it.

An append-only JSON-lines file, one event a line, each write flushed and fsynced under an exclusive
lock (several processes write it: the chaos worker records, gate recovers):

    {"op": "intent",  "id": ..., "key": ..., "kind": ..., "undo": {"module", "func", "arguments"}, ...}
    {"op": "injected", "id": ...}                 the action that injected it returned
    {"op": "cleared", "key": ...}                 undone (by a rollback or by recovery): every open entry
                                                  with that key is closed, since an undo clears the whole key
    {"op": "undo-failed", "id": ..., "error": ...} recovery tried and failed; the entry stays open

An entry is open from its intent until a ``cleared`` for its key. ``recover()`` calls the recorded undo
of every open entry: a gate that was killed in the middle of a chaos step leaves its faults here, and
the next start removes them. Undo functions must be idempotent (clearing what is not there succeeds).

The ledger is local state, but it is still read defensively: size-bounded, lines that do not parse are
skipped, and an undo may only name a function from the small allow-list below.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import importlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LEDGER_ENV = "GATE_FAULT_LEDGER"
RUN_ENV = "GATE_CHAOS_RUN"
EXPERIMENT_ENV = "GATE_CHAOS_EXPERIMENT"

MAX_LEDGER_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024
KEEP_CLOSED = 200  # closed entries kept by compaction, for the record

# What an undo may call. Kinds that need the Kubernetes client (istio, scale) are undone in the chaos worker
# process, never in gate's own process (see ChaosDriver.recover).
UNDO_ALLOWED: dict[str, frozenset[str]] = {
    "gate.drivers.chaos.actions": frozenset({"clear_http_fault", "clear_demo_switch"}),
    "gate.drivers.chaos.istio": frozenset({"clear_istio_fault"}),
    "gate.drivers.chaos.scale": frozenset({"restore_deployment_scale"}),
}
IN_PROCESS_MODULES = frozenset({"gate.drivers.chaos.actions"})

# Who is clearing: an undo called by `recover` closes its entry through the same `mark_cleared` as a
# rollback does, and the record must say it was recovery.
_CLEARED_BY: contextvars.ContextVar[str] = contextvars.ContextVar("gate_fault_cleared_by", default="rollback")


class LedgerError(RuntimeError):
    """The ledger cannot be written or names an undo gate refuses to call."""


@dataclass(frozen=True)
class Undo:
    """A call that removes a fault: ``module.func(**arguments)``."""

    module: str
    func: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"module": self.module, "func": self.func, "arguments": self.arguments}

    @property
    def in_process(self) -> bool:
        """True when gate may call it in its own process (plain HTTP, no Kubernetes client)."""
        return self.module in IN_PROCESS_MODULES

    def check(self) -> None:
        allowed = UNDO_ALLOWED.get(self.module)
        if allowed is None or self.func not in allowed:
            raise LedgerError(
                f"undo {self.module}.{self.func} is not one gate knows; allowed: "
                + ", ".join(f"{m}.{f}" for m, fs in sorted(UNDO_ALLOWED.items()) for f in sorted(fs))
            )

    def call(self) -> Any:
        """Call the undo in this process (after checking it against the allow-list)."""
        self.check()
        module = importlib.import_module(self.module)
        return getattr(module, self.func)(**self.arguments)


@dataclass
class FaultEntry:
    """One fault as the ledger knows it."""

    id: str
    key: str
    kind: str
    undo: Undo
    detail: dict[str, Any]
    run: str
    experiment: str
    recorded_at: float
    injected_at: float | None = None
    cleared_at: float | None = None
    cleared_by: str | None = None
    last_error: str | None = None
    pid: int | None = None

    @property
    def open(self) -> bool:
        return self.cleared_at is None

    def describe(self) -> str:
        where = f" (run {self.run}, experiment {self.experiment})" if self.run or self.experiment else ""
        return f"{self.key}{where}"


@dataclass(frozen=True)
class RecoveryResult:
    """What ``recover`` did: undone entries, and the ones that could not be undone (still open)."""

    undone: list[FaultEntry]
    failed: list[FaultEntry]
    skipped: list[FaultEntry]

    def lines(self) -> list[str]:
        out = [f"undone: {e.describe()}" for e in self.undone]
        out += [f"NOT undone: {e.describe()}: {e.last_error}" for e in self.failed]
        return out


class FaultLedger:
    """The durable record of injected faults (see the module docstring for the format)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @classmethod
    def from_env(cls) -> FaultLedger:
        """The ledger named by ``GATE_FAULT_LEDGER`` (set by the chaos driver for its worker)."""
        value = os.environ.get(LEDGER_ENV)
        if not value:
            raise LedgerError(
                f"{LEDGER_ENV} is not set: gate's fault actions refuse to inject a fault they cannot record; "
                "run the experiment through gate, or set it to a ledger file path"
            )
        return cls(Path(value))

    # -- writing -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, exclusive: bool = True) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _append(self, event: Mapping[str, Any]) -> None:
        line = (json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n").encode()
        if len(line) > MAX_LINE_BYTES:
            raise LedgerError(f"ledger event too large ({len(line)} bytes)")
        with self._locked():
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)

    def record(
        self,
        kind: str,
        key: str,
        undo: Undo,
        detail: Mapping[str, Any] | None = None,
        *,
        run: str | None = None,
        experiment: str | None = None,
    ) -> str:
        """Write the intent to inject a fault, before injecting it. Returns the entry id."""
        undo.check()
        entry_id = uuid.uuid4().hex
        self._append(
            {
                "op": "intent",
                "id": entry_id,
                "key": key,
                "kind": kind,
                "undo": undo.as_dict(),
                "detail": dict(detail or {}),
                "run": run if run is not None else os.environ.get(RUN_ENV, ""),
                "experiment": experiment if experiment is not None else os.environ.get(EXPERIMENT_ENV, ""),
                "pid": os.getpid(),
                "at": time.time(),
            }
        )
        return entry_id

    def mark_injected(self, entry_id: str) -> None:
        self._append({"op": "injected", "id": entry_id, "at": time.time()})

    def mark_cleared(self, key: str, by: str | None = None) -> None:
        """The fault under ``key`` is gone: close every open entry for it (``by``: rollback or recovery)."""
        self._append({"op": "cleared", "key": key, "by": by or _CLEARED_BY.get(), "at": time.time()})

    def mark_failed(self, entry_id: str, error: str) -> None:
        self._append({"op": "undo-failed", "id": entry_id, "error": error[:2000], "at": time.time()})

    # -- reading -----------------------------------------------------------------------------------

    def entries(self) -> list[FaultEntry]:
        """Every entry, oldest first, folded from the events."""
        with self._locked(exclusive=False):
            return self._fold()

    def _fold(self) -> list[FaultEntry]:
        if not self.path.exists():
            return []
        size = self.path.stat().st_size
        if size > MAX_LEDGER_BYTES:
            raise LedgerError(
                f"{self.path} is {size} bytes, over the {MAX_LEDGER_BYTES}-byte bound; "
                "inspect it, undo what it lists by hand, then move it away"
            )
        entries: dict[str, FaultEntry] = {}
        open_by_key: dict[str, list[str]] = {}
        with self.path.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if len(raw) > MAX_LINE_BYTES:
                    log.warning("%s:%d: line longer than %d bytes skipped", self.path, lineno, MAX_LINE_BYTES)
                    continue
                try:
                    event = json.loads(raw)
                except ValueError:
                    # A torn last line from a crash mid-write: the fsync before injecting covers the intent.
                    log.warning("%s:%d: unreadable line skipped", self.path, lineno)
                    continue
                if not isinstance(event, dict):
                    continue
                _apply(event, entries, open_by_key)
        return list(entries.values())

    def open_entries(self) -> list[FaultEntry]:
        """Faults recorded and not known to be undone."""
        return [e for e in self.entries() if e.open]

    # -- recovery ----------------------------------------------------------------------------------

    def recover(
        self,
        *,
        in_process_only: bool = False,
        run: str | None = None,
        undo: Callable[[FaultEntry], Any] | None = None,
    ) -> RecoveryResult:
        """Undo every open fault (newest first; only ``run``'s when given), recording each outcome.

        ``in_process_only`` leaves alone the kinds whose undo needs the Kubernetes client; the chaos
        driver hands those to its worker process. A failed undo keeps the entry open for the next try.
        """
        call = undo or (lambda entry: entry.undo.call())
        undone: list[FaultEntry] = []
        failed: list[FaultEntry] = []
        skipped: list[FaultEntry] = []
        seen_keys: set[str] = set()
        for entry in reversed(self.open_entries()):
            if run is not None and entry.run != run:
                continue
            if entry.key in seen_keys:
                undone.append(entry)  # the same key's undo already ran: it clears the whole key
                continue
            if in_process_only and not entry.undo.in_process:
                skipped.append(entry)
                continue
            token = _CLEARED_BY.set("recovery")
            try:
                call(entry)
            except Exception as exc:
                entry.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                log.error("could not undo %s: %s", entry.describe(), entry.last_error)
                self.mark_failed(entry.id, entry.last_error)
                failed.append(entry)
                continue
            finally:
                _CLEARED_BY.reset(token)
            self.mark_cleared(entry.key, by="recovery")
            seen_keys.add(entry.key)
            undone.append(entry)
            log.warning("undid a fault left behind: %s", entry.describe())
        self.compact()
        return RecoveryResult(undone=undone, failed=failed, skipped=skipped)

    def compact(self, keep_closed: int = KEEP_CLOSED) -> None:
        """Rewrite the file with the open entries and the most recent closed ones (atomic replace)."""
        with self._locked():
            entries = self._fold()
            closed = [e for e in entries if not e.open]
            if len(closed) <= keep_closed:
                return
            kept = [e for e in entries if e.open] + closed[-keep_closed:]
            kept.sort(key=lambda e: e.recorded_at)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("w") as fh:
                for e in kept:
                    for event in _events_of(e):
                        fh.write(json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.path)
            _fsync_dir(self.path.parent)


def _apply(event: dict[str, Any], entries: dict[str, FaultEntry], open_by_key: dict[str, list[str]]) -> None:
    op = event.get("op")
    at = event.get("at")
    at_f = float(at) if isinstance(at, int | float) else 0.0
    if op == "intent":
        undo_raw = event.get("undo")
        if not isinstance(undo_raw, dict):
            return
        args = undo_raw.get("arguments")
        entry = FaultEntry(
            id=str(event.get("id", "")),
            key=str(event.get("key", "")),
            kind=str(event.get("kind", "")),
            undo=Undo(
                module=str(undo_raw.get("module", "")),
                func=str(undo_raw.get("func", "")),
                arguments=dict(args) if isinstance(args, dict) else {},
            ),
            detail=dict(event["detail"]) if isinstance(event.get("detail"), dict) else {},
            run=str(event.get("run", "")),
            experiment=str(event.get("experiment", "")),
            recorded_at=at_f,
            pid=event["pid"] if isinstance(event.get("pid"), int) else None,
        )
        if not entry.id or not entry.key:
            return
        entries[entry.id] = entry
        open_by_key.setdefault(entry.key, []).append(entry.id)
    elif op == "injected":
        found = entries.get(str(event.get("id", "")))
        if found is not None:
            found.injected_at = at_f
    elif op == "cleared":
        key = str(event.get("key", ""))
        for entry_id in open_by_key.pop(key, []):
            entries[entry_id].cleared_at = at_f
            entries[entry_id].cleared_by = str(event.get("by", ""))
    elif op == "cleared-entry":
        found = entries.get(str(event.get("id", "")))
        if found is not None and found.open:
            found.cleared_at = at_f
            found.cleared_by = str(event.get("by", ""))
            ids = open_by_key.get(found.key, [])
            if found.id in ids:
                ids.remove(found.id)
    elif op == "undo-failed":
        found = entries.get(str(event.get("id", "")))
        if found is not None:
            found.last_error = str(event.get("error", ""))[:2000]


def _events_of(e: FaultEntry) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {
            "op": "intent",
            "id": e.id,
            "key": e.key,
            "kind": e.kind,
            "undo": e.undo.as_dict(),
            "detail": e.detail,
            "run": e.run,
            "experiment": e.experiment,
            "pid": e.pid,
            "at": e.recorded_at,
        }
    ]
    if e.injected_at is not None:
        events.append({"op": "injected", "id": e.id, "at": e.injected_at})
    if e.last_error is not None:
        events.append({"op": "undo-failed", "id": e.id, "error": e.last_error, "at": e.recorded_at})
    if e.cleared_at is not None:
        # A per-entry close: compaction must not close a newer open entry that shares the key.
        events.append({"op": "cleared-entry", "id": e.id, "by": e.cleared_by or "", "at": e.cleared_at})
    return events


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
