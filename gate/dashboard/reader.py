"""What the dashboard reads from the run store, and the audit log it writes.

The store grows paged, filtered queries and an audit log of its own (``list_runs(limit, offset,
status, contract, namespace, face, order)``, ``count_runs``, ``record_audit``/``audit``); this module
uses them when the store has them and otherwise answers through today's public ``RunStore``
methods (and a small ``dashboard_audit`` table beside the store's own for the audit). Nothing here
writes a run's records: actions go through ``RunStore.request``, the engine's inbox.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from gate.dashboard.queries import Queries, RunData
from gate.drivers.store import LookRecord, RunDetail, RunStore, RunSummary

MAX_SCAN = 1000  # today's list_runs returns at most this many; filters beyond it need the new store


@dataclass(frozen=True)
class RunsPage:
    """One page of runs and how many match in all."""

    runs: list[RunSummary]
    total: int
    total_exact: bool


@dataclass(frozen=True)
class AuditEntry:
    """One reviewer action (or refused attempt): who, when, which run, what, why."""

    run_id: str
    actor: str
    action: str
    reason: str
    at: float
    origin: str
    details: dict[str, Any]


class _AuditBase(DeclarativeBase):
    pass


class _Audit(_AuditBase):
    __tablename__ = "dashboard_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(253))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[float] = mapped_column(Float)
    origin: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def _accepts(method: Any, name: str) -> bool:
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class StoreReader:
    """The dashboard's view of one run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._paged = _accepts(store.list_runs, "offset")
        self._store_audit = hasattr(store, "record_audit") and hasattr(store, "audit")
        self._audit_engine: Engine | None = None
        url = _sqlite_url(store)
        # Fast queries on SQLite stores; other stores answer through their own methods.
        self.queries: Queries | None = Queries(url) if url else None
        if not self._store_audit:
            path = getattr(store, "path", None)
            if isinstance(path, Path):
                self._audit_engine = create_engine(f"sqlite:///{path}", future=True)
                _AuditBase.metadata.create_all(self._audit_engine)

    def close(self) -> None:
        if self.queries is not None:
            self.queries.close()
        if self._audit_engine is not None:
            self._audit_engine.dispose()

    # ------------------------------------------------------------------------------------ runs

    def runs(
        self,
        *,
        limit: int,
        offset: int = 0,
        status: str | None = None,
        contract: str | None = None,
        namespace: str | None = None,
    ) -> RunsPage:
        """A page of runs, newest first, filtered."""
        if self._paged:
            kwargs: dict[str, Any] = {"limit": limit, "offset": offset, "status": status}
            if contract:
                kwargs["contract"] = contract
            if namespace:
                kwargs["namespace"] = namespace
            runs = list(self.store.list_runs(**kwargs))
            count = getattr(self.store, "count_runs", None)
            if callable(count):
                total = int(count(status=status, contract=contract or None, namespace=namespace or None))
                return RunsPage(runs, total, True)
            return RunsPage(runs, offset + len(runs), False)
        if self.queries is not None:
            found, total = self.queries.runs(
                limit=limit, offset=offset, status=status, contract=contract, namespace=namespace
            )
            return RunsPage(found, total, True)
        rows = self.store.list_runs(limit=MAX_SCAN, status=status)
        if contract:
            rows = [r for r in rows if r.contract_name == contract]
        if namespace:
            rows = [r for r in rows if self.namespace_of(r.id) == namespace]
        return RunsPage(rows[offset : offset + limit], len(rows), len(rows) < MAX_SCAN)

    def detail(self, run_id: str) -> RunDetail | None:
        return self.store.run_detail(run_id)

    def looks(self, run_id: str, *, after: int, limit: int) -> list[LookRecord]:
        """Looks after ``after``, oldest first, with their verdicts."""
        if self.queries is not None:
            return self.queries.looks(run_id, after=after, limit=limit)
        detail = self.store.run_detail(run_id)
        return [] if detail is None else [lk for lk in detail.looks if lk.look > after][:limit]

    def run_data(self, run_id: str) -> RunData | None:
        """A run for its page: thinned looks and exact counts (the whole run on other stores)."""
        if self.queries is not None:
            return self.queries.run(run_id)
        detail = self.store.run_detail(run_id)
        return None if detail is None else RunData(detail, len(detail.looks))

    def namespace_of(self, run_id: str) -> str:
        detail = self.store.run_detail(run_id)
        return "" if detail is None else namespace_of(detail)

    def diagnostic(self, run_id: str, diagnostic_id: int) -> bytes | None:
        return self.store.diagnostic_data(run_id, diagnostic_id)

    # ----------------------------------------------------------------------------------- audit

    def record_audit(
        self,
        run_id: str,
        *,
        actor: str,
        action: str,
        reason: str,
        origin: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        at = time.time()
        if self._store_audit:
            self.store.record_audit(  # type: ignore[attr-defined]
                run_id, actor=actor, action=action, reason=reason, at=at, origin=origin, details=details or {}
            )
            return
        if self._audit_engine is None:
            raise RuntimeError("this store keeps no audit log")
        with Session(self._audit_engine) as s, s.begin():
            s.add(
                _Audit(
                    run_id=run_id,
                    actor=actor[:253],
                    action=action[:32],
                    reason=reason[:2000],
                    at=at,
                    origin=origin[:64],
                    details=details or {},
                )
            )

    def audit(self, run_id: str) -> list[AuditEntry]:
        if self._store_audit:
            rows = self.store.audit(run_id)  # type: ignore[attr-defined]
            return [
                AuditEntry(
                    run_id=str(_get(r, "run_id", run_id)),
                    actor=str(_get(r, "actor", "")),
                    action=str(_get(r, "action", "")),
                    reason=str(_get(r, "reason", "")),
                    at=float(_get(r, "at", 0.0)),
                    origin=str(_get(r, "origin", "")),
                    details=dict(_get(r, "details", {}) or {}),
                )
                for r in rows
            ]
        if self._audit_engine is None:
            return []
        with Session(self._audit_engine) as s:
            found = s.scalars(select(_Audit).where(_Audit.run_id == run_id).order_by(_Audit.id)).all()
            return [
                AuditEntry(a.run_id, a.actor, a.action, a.reason, a.at, a.origin, dict(a.details or {}))
                for a in found
            ]


def _sqlite_url(store: RunStore) -> str:
    url = getattr(store, "url", None)
    if isinstance(url, str) and url.startswith("sqlite:///"):
        return url
    path = getattr(store, "path", None)
    if isinstance(path, Path):
        return f"sqlite:///{path}"
    return ""


def _get(row: Any, name: str, default: Any) -> Any:
    if isinstance(row, dict):
        return row.get(name, default)
    return getattr(row, name, default)


def namespace_of(detail: RunDetail) -> str:
    """The run's namespace: recorded by the operator, else the contract's ``metadata.namespace``."""
    ns = detail.meta.get("namespace")
    if isinstance(ns, str) and ns:
        return ns
    plan_ns = detail.plan.get("namespace") if isinstance(detail.plan, dict) else None
    if isinstance(plan_ns, str) and plan_ns:
        return plan_ns
    for line in detail.contract_text.splitlines()[:40]:
        stripped = line.strip()
        if stripped.startswith("namespace:") and line.startswith("  ") and not line.startswith("    "):
            value = stripped.split(":", 1)[1].strip().strip("'\"")
            return value[:63]
    return ""


def dumps(value: Any) -> str:
    """Compact JSON for the pages' embedded data (escaped for a <script> element by the template)."""
    return json.dumps(value, separators=(",", ":"), default=str)
