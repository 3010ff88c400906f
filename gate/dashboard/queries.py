"""Fast read-only queries over the run store's tables, for runs with thousands of looks
(``RunStore.run_detail`` reads every record of a run; a page needs far less).

A run page needs: the run's row; the last transitions; the effects that open and close load and
chaos windows; the latest looks in full; for the charts the looks thinned to at most ``points``
evenly spaced ones (a chart a few hundred pixels wide cannot show 10,000 points); and counts
(decisions per step, the last look of each step) computed by the database. The result is a
``RunDetail`` of those records, so ``gate.dashboard.views`` renders it like any other.

Read-only, on its own connection (SQLAlchemy Core, reflected tables: the schema is the store's).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import MetaData, Table, create_engine, false, func, or_, select
from sqlalchemy.engine import Engine

from gate.drivers.store import (
    DiagnosticRecord,
    EffectRecord,
    LookRecord,
    NotificationRecord,
    RunDetail,
    RunSummary,
    TransitionRecord,
    VerdictRecord,
)

WINDOW_EFFECTS = ("start_load", "stop_load", "start_chaos", "stop_chaos", "rollback")
RECENT_LOOKS = 30
RECENT_TRANSITIONS = 60
TABLES = ("runs", "transitions", "effects", "looks", "verdicts", "diagnostics", "notifications")


@dataclass
class RunData:
    """A run as the page needs it: records thinned for display, and the exact counts."""

    detail: RunDetail
    looks_total: int
    step_decisions: dict[int, dict[str, int]] = field(default_factory=dict)
    verdict_counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)


class Queries:
    """Read-only queries on one store database (created lazily, tables reflected once)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._t: dict[str, Table] = {}
        self._lock = threading.Lock()

    def _tables(self) -> tuple[Engine, dict[str, Table]]:
        with self._lock:
            if self._engine is None:
                engine = create_engine(self.url, future=True)
                md = MetaData()
                md.reflect(engine, only=list(TABLES))
                self._t = {name: md.tables[name] for name in TABLES}
                self._engine = engine
            return self._engine, self._t

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def looks(self, run_id: str, *, after: int, limit: int) -> list[LookRecord]:
        """Looks after ``after`` (oldest first), each with its verdicts."""
        engine, t = self._tables()
        lk, vd = t["looks"], t["verdicts"]
        with engine.connect() as c:
            rows = (
                c.execute(
                    select(lk)
                    .where(lk.c.run_id == run_id, lk.c.look > after)
                    .order_by(lk.c.look)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            numbers = [int(x["look"]) for x in rows]
            verdicts: dict[int, list[VerdictRecord]] = {}
            if numbers:
                found = (
                    c.execute(select(vd).where(vd.c.run_id == run_id, vd.c.look.in_(numbers)))
                    .mappings()
                    .all()
                )
                for v in sorted(found, key=lambda r: r["id"]):
                    verdicts.setdefault(v["look"], []).append(
                        VerdictRecord(
                            v["look"],
                            v["objective"],
                            v["sli"],
                            v["source"],
                            v["status"],
                            v["reason"] or "",
                            dict(v["numbers"] or {}),
                        )
                    )
        return [
            LookRecord(
                int(x["look"]),
                int(x["seq"]),
                int(x["step"]),
                float(x["at"]),
                float(x["since"]),
                x["action"],
                x["reason"] or "",
                dict(x["evidence"] or {}),
                verdicts.get(int(x["look"]), []),
            )
            for x in rows
        ]

    # ------------------------------------------------------------------------------------- run

    def run(self, run_id: str, *, points: int = 200) -> RunData | None:
        engine, t = self._tables()
        r, tr, ef, lk, vd = t["runs"], t["transitions"], t["effects"], t["looks"], t["verdicts"]
        with engine.connect() as c:
            row = c.execute(select(r).where(r.c.id == run_id)).mappings().first()
            if row is None:
                return None
            plan = dict(row["plan"] or {})
            summary = RunSummary(
                row["id"],
                row["contract_name"],
                row["service"],
                row["status"],
                row["phase"],
                row["step"],
                len(plan.get("steps", []) or []),
                row["weight"],
                row["reason"],
                row["created_at"],
                row["updated_at"],
                row["finished_at"],
                namespace=str(row.get("namespace") or ""),
                face=str(row.get("face") or ""),
            )
            # Transitions: the recent ones with all their effects, and every one with a window effect.
            last_seq = int(row["last_seq"] or 0)
            recent_from = max(1, last_seq - RECENT_TRANSITIONS + 1)
            window_seqs = {
                s
                for (s,) in c.execute(
                    select(ef.c.seq).where(ef.c.run_id == run_id, ef.c.kind.in_(WINDOW_EFFECTS))
                ).all()
            }
            eff_rows = c.execute(
                select(ef)
                .where(
                    ef.c.run_id == run_id,
                    or_(ef.c.seq >= recent_from, ef.c.kind.in_(WINDOW_EFFECTS)),
                )
                .order_by(ef.c.seq, ef.c.idx)
            ).mappings()
            effects: dict[int, list[EffectRecord]] = {}
            for e in eff_rows:
                effects.setdefault(e["seq"], []).append(
                    EffectRecord(
                        e["seq"],
                        e["idx"],
                        e["kind"],
                        dict(e["effect"] or {}),
                        bool(e["done"]),
                        e["ok"],
                        e["error"] or "",
                        e["attempts"] or 0,
                        e["done_at"],
                    )
                )
            tr_rows = c.execute(
                select(tr.c.seq, tr.c.at, tr.c.input_kind, tr.c.input, tr.c.state)
                .where(
                    tr.c.run_id == run_id,
                    or_(
                        tr.c.seq >= recent_from, tr.c.seq.in_(sorted(window_seqs)) if window_seqs else false()
                    ),
                )
                .order_by(tr.c.seq)
            ).all()
            timeline = [
                TransitionRecord(s, at, kind, dict(inp or {}), dict(state or {}), effects.get(s, []))
                for s, at, kind, inp, state in tr_rows
            ]
            # The last look of every step: there each objective judged in the step was judged last.
            step_decisions: dict[int, dict[str, int]] = {}
            latest_looks: set[int] = set()
            for step, action, n, newest in c.execute(
                select(lk.c.step, lk.c.action, func.count(), func.max(lk.c.look))
                .where(lk.c.run_id == run_id)
                .group_by(lk.c.step, lk.c.action)
            ).all():
                step_decisions.setdefault(int(step), {})[str(action)] = int(n)
                latest_looks.add(int(newest))
            # Looks: how many, the latest in full, and evenly spaced ones for the charts.
            total, first_look, last_look = c.execute(
                select(func.count(), func.min(lk.c.look), func.max(lk.c.look)).where(lk.c.run_id == run_id)
            ).one()
            total = int(total or 0)
            full: set[int] = set()
            if total:
                stride = max(1, -(-total // points))
                recent_looks = int(last_look) - RECENT_LOOKS + 1
                full = {x for x in latest_looks if x >= int(first_look)} | set(
                    range(max(int(first_look), recent_looks), int(last_look) + 1)
                )
                look_cond = or_(
                    lk.c.look.in_(sorted(full)),
                    (lk.c.look - int(first_look)) % stride == 0,
                )
            else:
                look_cond = false()
            look_rows = (
                c.execute(select(lk).where(lk.c.run_id == run_id, look_cond).order_by(lk.c.look))
                .mappings()
                .all()
            )
            chosen = [int(x["look"]) for x in look_rows]
            verdicts: dict[int, list[VerdictRecord]] = {}
            if chosen:
                # Reasons and numbers (JSON to parse) only where they are shown: the latest looks.
                full_rows = {
                    v["id"]: v
                    for v in c.execute(
                        select(vd).where(vd.c.run_id == run_id, vd.c.look.in_(sorted(full)))
                    ).mappings()
                }
                keys = c.execute(
                    select(vd.c.id, vd.c.look, vd.c.objective, vd.c.sli, vd.c.source, vd.c.status).where(
                        vd.c.run_id == run_id, vd.c.look.in_(chosen)
                    )
                ).all()
                for vid, look, objective, sli, source, status in sorted(keys):
                    f = full_rows.get(vid)
                    verdicts.setdefault(look, []).append(
                        VerdictRecord(
                            look,
                            objective,
                            sli,
                            source,
                            status,
                            (f["reason"] or "") if f is not None else "",
                            dict(f["numbers"] or {}) if f is not None else {},
                        )
                    )
            looks = [
                LookRecord(
                    int(x["look"]),
                    int(x["seq"]),
                    int(x["step"]),
                    float(x["at"]),
                    float(x["since"]),
                    x["action"],
                    x["reason"] or "",
                    dict(x["evidence"] or {}),
                    verdicts.get(int(x["look"]), []),
                )
                for x in look_rows
            ]
            dg = t["diagnostics"]
            diags = [
                DiagnosticRecord(*d)
                for d in c.execute(
                    select(
                        dg.c.id,
                        dg.c.name,
                        dg.c.url,
                        dg.c.content_type,
                        dg.c.size,
                        dg.c.truncated,
                        dg.c.error,
                        dg.c.at,
                    )
                    .where(dg.c.run_id == run_id)
                    .order_by(dg.c.id)
                ).all()
            ]
            nt = t["notifications"]
            notes = [
                NotificationRecord(k, ch, ev, bool(ok), err or "", dict(p or {}), at)
                for k, ch, ev, ok, err, p, at in c.execute(
                    select(nt.c.key, nt.c.channel, nt.c.event, nt.c.ok, nt.c.error, nt.c.payload, nt.c.at)
                    .where(nt.c.run_id == run_id)
                    .order_by(nt.c.id)
                ).all()
            ]
        detail = RunDetail(
            summary=summary,
            plan=plan,
            meta=dict(row["meta"] or {}),
            state=dict(row["state"] or {}),
            contract_text=row["contract_text"] or "",
            timeline=timeline,
            looks=looks,
            diagnostics=diags,
            notifications=notes,
        )
        return RunData(detail, total, step_decisions)
