"""What the dashboard reads from the run store, and the audit log it writes.

Runs lists and the audit log come from the store's own queries (paged, filtered, counted); a run's
page from ``gate.dashboard.queries`` (thinned looks, counts by the database). Nothing here writes a
run's records: actions go through ``RunStore.request``, the engine's inbox, and ``record_audit``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gate.dashboard.queries import Queries, RunData
from gate.drivers.store import LookRecord, RunDetail, RunStore, RunSummary


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


class StoreReader:
    """The dashboard's view of one run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.queries = Queries(store.url.sqlalchemy_url)

    def close(self) -> None:
        self.queries.close()

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
        """A page of runs, newest first, filtered, and how many match."""
        runs = self.store.list_runs(
            limit=limit, offset=offset, status=status, contract=contract, namespace=namespace
        )
        total = self.store.count_runs(status=status, contract=contract, namespace=namespace)
        return RunsPage(list(runs), int(total), True)

    def detail(self, run_id: str) -> RunDetail | None:
        return self.store.run_detail(run_id)

    def looks(self, run_id: str, *, after: int, limit: int) -> list[LookRecord]:
        """Looks after ``after``, oldest first, with their verdicts."""
        return self.store.looks(run_id, after_look=after, limit=limit)

    def run_data(self, run_id: str) -> RunData | None:
        """A run for its page: thinned looks and exact counts."""
        return self.queries.run(run_id)

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
        self.store.record_audit(
            run_id,
            actor=actor[:253],
            action=action[:32],
            reason=reason[:2000],
            at=time.time(),
            origin=origin[:64],
            details=details or {},
        )

    def audit(self, run_id: str) -> list[AuditEntry]:
        return [
            AuditEntry(a.run_id, a.actor, a.action, a.reason, a.at, a.origin, dict(a.details or {}))
            for a in self.store.audit(run_id)
        ]


def namespace_of(detail: RunDetail) -> str:
    """The run's namespace: recorded by the operator, else the contract's ``metadata.namespace``."""
    if detail.summary.namespace:
        return detail.summary.namespace
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
