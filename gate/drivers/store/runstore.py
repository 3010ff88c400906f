"""The run store: every run, transition, effect, look (decision, verdicts, evidence summary),
diagnostic, notification, lease and audit entry, in SQLite (embedded, the default) or PostgreSQL
(shared by operator replicas and the dashboard), through SQLAlchemy 2.

Durability is the point: the engine writes a transition (the state it leads to and the effects
it intends) BEFORE any effect happens, and marks each effect done (with what it produced) in the
same database transaction as that result's records. SQLite runs in WAL mode with
``synchronous=FULL``, so a commit is on disk when it returns; a gate killed at any moment finds
every committed record when it starts again.

One process drives a run at a time: it holds the run's lease (``acquire_lease``), and its
checkpoints and effect completions name it (``holder=``, or a ``fenced`` view of the store), so a
process whose lease was taken over cannot write another transition (``LeaseLost``).

It stores JSON documents the engine hands it and knows nothing of the engine's types (the
drivers layer sits below the engine).
"""

from __future__ import annotations

import copy
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Text, case, cast, delete, event, false, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gate import redact
from gate.drivers.store import models as m
from gate.drivers.store.errors import LeaseHeld, LeaseLost, RunFinished, StoreError
from gate.drivers.store.records import (
    AuditRecord,
    DiagnosticRecord,
    EffectRecord,
    Lease,
    LookLike,
    LookRecord,
    NotificationRecord,
    PendingEffect,
    RunDetail,
    RunSummary,
    TransitionRecord,
    VerdictRecord,
)
from gate.drivers.store.schema import WRITE, ensure_schema, make_engine, translate
from gate.drivers.store.url import StoreURL, parse_store_url

SCHEMA_VERSION = m.SCHEMA_VERSION
MAX_DIAGNOSTIC_BYTES = 16 * 1024 * 1024  # a stored blob never exceeds this, whatever the caller sends
MAX_PAGE = 1000  # rows of the runs list per query
MAX_LOOKS_PAGE = 10_000
ORDERS = ("newest", "oldest", "updated")


def new_holder() -> str:
    """A lease holder id for this process: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:100]}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class RunStore:
    """Runs and their records in a store named by a URL or a path (created with its schema when missing).

    ``RunStore("runs.sqlite")``, ``RunStore("sqlite:///runs.sqlite")``,
    ``RunStore("postgresql://gate:…@db:5432/gate")``. Opening upgrades the schema to this gate's newest
    migration; a store newer than this gate raises ``StoreTooNew``, a damaged one ``StoreCorrupt``, an
    unreachable one ``StoreUnavailable``.
    """

    def __init__(self, url_or_path: str | Path) -> None:
        self.url: StoreURL = parse_store_url(url_or_path)
        self.path: Path | None = self.url.path  # the SQLite file; None for PostgreSQL
        self._holder: str | None = None
        self._lease_ttl: float | None = None
        self._engine: Engine = make_engine(self.url)
        # Every statement's text parameters, ORM or not: no record keeps a password given in a URL.
        event.listen(self._engine, "before_cursor_execute", _redact_parameters, retval=True)
        self._writer: Engine = self._engine.execution_options(**{WRITE: True})
        try:
            ensure_schema(self._engine, self.url)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.backend

    @property
    def display(self) -> str:
        """The store's URL fit to print (no userinfo, no secret)."""
        return self.url.display

    def __repr__(self) -> str:
        held = f", holder={self._holder!r}" if self._holder else ""
        return f"RunStore({self.url.display!r}{held})"

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fenced(self, holder: str, *, ttl: float | None = None) -> RunStore:
        """This store, writing every checkpoint and effect completion as ``holder`` (fenced by its lease).

        The view shares the connections; hand it to the runner that drives the run this process leased.
        With ``ttl``, a run created through the view is leased to ``holder`` in the same commit (for
        ``ttl`` seconds of the wall clock), so nobody can resume it before its creator renews the lease.
        """
        view = copy.copy(self)
        view._holder = holder
        view._lease_ttl = ttl
        return view

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        with (
            translate(self.url),
            Session(self._writer if write else self._engine, expire_on_commit=False) as s,
            s.begin(),
        ):
            yield s

    # ------------------------------------------------------------------------------- writing

    def create_run(
        self,
        *,
        contract_name: str,
        plan: dict[str, Any],
        state: dict[str, Any],
        at: float,
        service: str = "",
        contract_text: str = "",
        meta: dict[str, Any] | None = None,
        run_id: str | None = None,
        namespace: str | None = None,
        face: str | None = None,
    ) -> str:
        """Record a new run (before anything happens) and return its id.

        ``namespace`` and ``face`` (cli, operator, demo …) default to ``meta``'s keys of those names.
        """
        meta = meta or {}
        rid = run_id or time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]
        steps = plan.get("steps", []) if isinstance(plan, dict) else []
        with self._session(write=True) as s:
            s.add(
                m.Run(
                    id=rid,
                    contract_name=contract_name,
                    service=service,
                    namespace=str(namespace if namespace is not None else meta.get("namespace", ""))[:253],
                    face=str(face if face is not None else meta.get("face", ""))[:32],
                    contract_text=contract_text,
                    plan=plan,
                    steps=len(steps) if isinstance(steps, list) else 0,
                    meta=meta,
                    state=state,
                    status=str(state.get("status", "running")),
                    phase=str(state.get("phase", "pending")),
                    step=int(state.get("step", 0)),
                    weight=int(state.get("weight", 0)),
                    reason=str(state.get("reason", ""))[:2000],
                    last_seq=0,
                    created_at=at,
                    updated_at=at,
                )
            )
            if self._holder is not None and self._lease_ttl is not None:
                now = time.time()
                s.flush()
                s.add(
                    m.Lease(
                        run_id=rid,
                        holder=self._holder,
                        acquired_at=now,
                        heartbeat_at=now,
                        expires_at=now + self._lease_ttl,
                    )
                )
        return rid

    def checkpoint(
        self,
        run_id: str,
        *,
        seq: int,
        at: float,
        input: dict[str, Any],
        state: dict[str, Any],
        effects: Sequence[dict[str, Any]],
        inbox_id: int | None = None,
        holder: str | None = None,
    ) -> None:
        """Write-ahead: the transition, its new state and its intended effects, in one commit.

        ``seq`` must follow the run's last one: a second writer (or a replay) is refused rather
        than allowed to fork the run's history. With a ``holder`` (or through ``fenced``), the write
        is refused with ``LeaseLost`` unless that holder holds the run's lease.
        """
        holder = holder if holder is not None else self._holder
        with self._session(write=True) as s:
            self._fence(s, run_id, holder)
            values: dict[str, Any] = {"last_seq": seq, "state": state, "updated_at": at}
            for key in ("status", "phase"):
                if key in state:
                    values[key] = str(state[key])
            for key in ("step", "weight"):
                if key in state:
                    values[key] = int(state[key])
            if "reason" in state:
                values["reason"] = str(state["reason"])[:2000]
            if state.get("phase") == "finished":
                values["finished_at"] = case((m.Run.finished_at.is_(None), at), else_=m.Run.finished_at)
            # The condition is the guard: two writers of one run cannot both move it from seq-1.
            done = s.execute(
                update(m.Run)
                .where(m.Run.id == run_id, m.Run.last_seq == seq - 1)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                last = s.scalar(select(m.Run.last_seq).where(m.Run.id == run_id))
                if last is None:
                    raise StoreError(f"no run {run_id!r} in {self.url.display}")
                raise StoreError(f"run {run_id}: transition {seq} does not follow {last}")
            s.add(
                m.Transition(
                    run_id=run_id,
                    seq=seq,
                    at=at,
                    input_kind=str(input.get("kind", "")),
                    input=input,
                    state=state,
                    inbox_id=inbox_id,
                    recorded_at=time.time(),
                )
            )
            for idx, eff in enumerate(effects):
                s.add(m.Effect(run_id=run_id, seq=seq, idx=idx, kind=str(eff.get("kind", "")), effect=eff))
            if inbox_id is not None:
                s.execute(
                    update(m.Inbox)
                    .where(m.Inbox.id == inbox_id, m.Inbox.run_id == run_id)
                    .values(consumed_seq=seq)
                )

    def effect_done(
        self,
        run_id: str,
        seq: int,
        idx: int,
        *,
        at: float,
        ok: bool = True,
        error: str = "",
        result: dict[str, Any] | None = None,
        look: LookLike | None = None,
        holder: str | None = None,
    ) -> None:
        """Mark an effect carried out; its result input (if any) and look records go in the same commit.

        A replay of an effect already marked done changes nothing. With a ``holder`` (or through
        ``fenced``), refused with ``LeaseLost`` unless that holder holds the run's lease.
        """
        holder = holder if holder is not None else self._holder
        with self._session(write=True) as s:
            self._fence(s, run_id, holder)
            marked = s.execute(
                update(m.Effect)
                .where(m.Effect.run_id == run_id, m.Effect.seq == seq, m.Effect.idx == idx, ~m.Effect.done)
                .values(done=True, ok=ok, error=error[:4000], done_at=at, attempts=m.Effect.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if marked.rowcount != 1:  # type: ignore[attr-defined]
                if s.get(m.Effect, (run_id, seq, idx)) is None:
                    raise StoreError(f"run {run_id}: no effect {seq}.{idx}")
                return  # already recorded: a replay after a crash must not duplicate results
            if result is not None:
                s.add(m.Inbox(run_id=run_id, input=result, origin=f"effect {seq}.{idx}", created_at=at))
            if look is not None:
                s.merge(
                    m.Look(
                        run_id=run_id,
                        look=int(look.look),
                        seq=seq,
                        step=int(look.step),
                        at=float(look.at),
                        since=float(look.since),
                        action=str(look.action)[:16],
                        reason=str(look.reason)[:4000],
                        evidence=dict(look.evidence),
                    )
                )
                for v in look.verdicts:
                    s.add(
                        m.Verdict(
                            run_id=run_id,
                            look=int(look.look),
                            objective=str(_field(v, "objective", ""))[:253],
                            sli=str(_field(v, "sli", ""))[:253],
                            source=str(_field(v, "source", ""))[:32],
                            status=str(_field(v, "status", ""))[:16],
                            reason=str(_field(v, "reason", ""))[:4000],
                            numbers=dict(_field(v, "numbers", None) or {}),
                        )
                    )

    def request(self, run_id: str, input: dict[str, Any], *, origin: str = "person") -> int:
        """Queue an input for a run's engine (e.g. ``{"kind": "abort", "by": ..., "reason": ...}``).

        Raises ``RunFinished`` when the run has already finished: nobody would act on it.
        """
        with self._session(write=True) as s:
            row = s.execute(
                select(m.Run.status, m.Run.phase, m.Run.finished_at).where(m.Run.id == run_id)
            ).first()
            if row is None:
                raise StoreError(f"no run {run_id!r} in {self.url.display}")
            if row.phase == "finished" or row.finished_at is not None:
                raise RunFinished(run_id, row.status)
            item = m.Inbox(run_id=run_id, input=input, origin=origin[:64], created_at=time.time())
            s.add(item)
            s.flush()
            return int(item.id)

    def record_diagnostic(
        self,
        run_id: str,
        *,
        name: str,
        url: str,
        at: float,
        data: bytes = b"",
        content_type: str = "",
        truncated: bool = False,
        error: str = "",
    ) -> int:
        """Keep a captured diagnostic with the run (bounded in size; the bytes in a table of their own)."""
        blob = data[:MAX_DIAGNOSTIC_BYTES]
        with self._session(write=True) as s:
            row = m.Diagnostic(
                run_id=run_id,
                name=name[:253],
                url=url,
                content_type=content_type[:253],
                size=len(blob),
                truncated=truncated or len(data) > len(blob),
                error=error[:4000],
                at=at,
            )
            s.add(row)
            s.flush()
            s.add(m.DiagnosticBlob(diagnostic_id=row.id, data=blob))
            return int(row.id)

    def notification_sent(self, run_id: str, key: str, channel: str) -> bool:
        """Whether a notification with this key already went out on this channel."""
        with self._session() as s:
            ok = s.scalar(
                select(m.Notification.ok).where(
                    m.Notification.run_id == run_id,
                    m.Notification.key == key,
                    m.Notification.channel == channel,
                )
            )
            return bool(ok)

    def record_notification(
        self,
        run_id: str,
        *,
        key: str,
        channel: str,
        event: str,
        ok: bool,
        at: float,
        payload: dict[str, Any] | None = None,
        error: str = "",
    ) -> None:
        """Record a notification attempt (a later success replaces an earlier failure)."""
        with self._session(write=True) as s:
            row = s.scalar(
                select(m.Notification).where(
                    m.Notification.run_id == run_id,
                    m.Notification.key == key,
                    m.Notification.channel == channel,
                )
            )
            if row is None:
                row = m.Notification(run_id=run_id, key=key, channel=channel, event=event, ok=ok, at=at)
                s.add(row)
            row.ok, row.error, row.payload, row.at = ok, error[:4000], payload or {}, at

    def record_audit(
        self,
        run_id: str,
        *,
        actor: str,
        action: str,
        reason: str = "",
        at: float | None = None,
        origin: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Write who did what to a run and why (approve, abort, retry, a lease takeover …)."""
        with self._session(write=True) as s:
            if s.scalar(select(m.Run.id).where(m.Run.id == run_id)) is None:
                raise StoreError(f"no run {run_id!r} in {self.url.display}")
            row = _audit_row(
                run_id=run_id,
                actor=actor,
                action=action,
                reason=reason,
                at=time.time() if at is None else at,
                origin=origin,
                details=details,
            )
            s.add(row)
            s.flush()
            return int(row.id)

    # -------------------------------------------------------------------------------- leases

    def acquire_lease(
        self, run_id: str, holder: str, *, ttl: float, now: float, replace: str | None = None
    ) -> Lease:
        """Lease the run to ``holder`` until ``now + ttl``; the holder renews it by calling this again.

        Taken over from another holder only when its lease has expired — or when that holder is
        ``replace``, a holder the caller knows to be gone (``holder_is_gone``) — and recorded in the
        audit log; otherwise raises ``LeaseHeld`` naming the holder and since when. Race-free: the
        database decides, through a conditional UPDATE (or the primary key of a first INSERT).
        """
        if ttl <= 0:
            raise StoreError(f"a lease needs a positive time to live, not {ttl}")
        with self._session(write=True) as s:
            if s.scalar(select(m.Run.id).where(m.Run.id == run_id)) is None:
                raise StoreError(f"no run {run_id!r} in {self.url.display}")
            before = s.scalar(select(m.Lease.holder).where(m.Lease.run_id == run_id))
            gone = m.Lease.holder == replace if replace is not None else false()
            took = s.execute(
                update(m.Lease)
                .where(
                    m.Lease.run_id == run_id, (m.Lease.holder == holder) | (m.Lease.expires_at <= now) | gone
                )
                .values(
                    holder=holder,
                    acquired_at=case((m.Lease.holder == holder, m.Lease.acquired_at), else_=now),
                    heartbeat_at=now,
                    expires_at=now + ttl,
                )
                .execution_options(synchronize_session=False)
            )
            if took.rowcount == 1:  # type: ignore[attr-defined]
                if before is not None and before != holder:
                    s.add(
                        _audit_row(
                            run_id=run_id,
                            actor=holder,
                            action="takeover",
                            reason=f"the process {before} is gone"
                            if before == replace
                            else f"the lease of {before} had expired",
                            at=now,
                            origin="lease",
                            details={"previous": before},
                        )
                    )
                return self._lease_in(s, run_id)
            try:
                with s.begin_nested():
                    s.add(
                        m.Lease(
                            run_id=run_id,
                            holder=holder,
                            acquired_at=now,
                            heartbeat_at=now,
                            expires_at=now + ttl,
                        )
                    )
            except IntegrityError:
                current = self._lease_in(s, run_id)
                raise LeaseHeld(run_id, current.holder, current.acquired_at, current.expires_at) from None
            return self._lease_in(s, run_id)

    def renew_lease(self, run_id: str, holder: str, *, ttl: float, now: float) -> Lease:
        """Extend ``holder``'s lease to ``now + ttl`` (a heartbeat); ``LeaseLost`` if it holds it no more."""
        with self._session(write=True) as s:
            done = s.execute(
                update(m.Lease)
                .where(m.Lease.run_id == run_id, m.Lease.holder == holder)
                .values(heartbeat_at=now, expires_at=now + ttl)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                current = s.scalar(select(m.Lease.holder).where(m.Lease.run_id == run_id))
                raise LeaseLost(run_id, holder, current)
            return self._lease_in(s, run_id)

    def release_lease(self, run_id: str, holder: str) -> bool:
        """Give the run up (when its driver stops); False when ``holder`` did not hold it."""
        with self._session(write=True) as s:
            gone = s.execute(delete(m.Lease).where(m.Lease.run_id == run_id, m.Lease.holder == holder))
            return bool(gone.rowcount == 1)  # type: ignore[attr-defined]

    def lease(self, run_id: str) -> Lease | None:
        """The run's lease as it stands (maybe expired), or None when nobody holds it."""
        with self._session() as s:
            row = s.get(m.Lease, run_id)
            return None if row is None else _lease(row)

    def _lease_in(self, s: Session, run_id: str) -> Lease:
        row = s.execute(select(m.Lease).where(m.Lease.run_id == run_id)).scalar_one()
        s.refresh(row)
        return _lease(row)

    def _fence(self, s: Session, run_id: str, holder: str | None) -> None:
        if holder is None:
            return
        # FOR SHARE (PostgreSQL): a takeover waits for this write to commit, so it reads what we wrote.
        current = s.scalar(select(m.Lease.holder).where(m.Lease.run_id == run_id).with_for_update(read=True))
        if current != holder:
            raise LeaseLost(run_id, holder, current)

    # ------------------------------------------------------------------------------- reading

    def get_state(self, run_id: str) -> dict[str, Any]:
        """The state checkpointed last."""
        with self._session() as s:
            state = s.scalar(select(m.Run.state).where(m.Run.id == run_id))
            if state is None:
                raise StoreError(f"no run {run_id!r} in {self.url.display}")
            return dict(state)

    def get_plan(self, run_id: str) -> dict[str, Any]:
        """The plan the run carries out."""
        with self._session() as s:
            plan = s.scalar(select(m.Run.plan).where(m.Run.id == run_id))
            if plan is None:
                raise StoreError(f"no run {run_id!r} in {self.url.display}")
            return dict(plan)

    def last_seq(self, run_id: str) -> int:
        """The sequence number of the run's last transition (0 before the first)."""
        with self._session() as s:
            last = s.scalar(select(m.Run.last_seq).where(m.Run.id == run_id))
            if last is None:
                raise StoreError(f"no run {run_id!r} in {self.url.display}")
            return int(last)

    def pending_effects(self, run_id: str) -> list[PendingEffect]:
        """Effects intended and not done, in order: what a resumed engine applies first."""
        with self._session() as s:
            rows = s.scalars(
                select(m.Effect)
                .where(m.Effect.run_id == run_id, ~m.Effect.done)
                .order_by(m.Effect.seq, m.Effect.idx)
            ).all()
            return [
                PendingEffect(seq=r.seq, idx=r.idx, effect=dict(r.effect), attempts=r.attempts) for r in rows
            ]

    def next_input(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The oldest input not yet consumed by a transition."""
        with self._session() as s:
            row = s.execute(
                select(m.Inbox.id, m.Inbox.input)
                .where(m.Inbox.run_id == run_id, m.Inbox.consumed_seq.is_(None))
                .order_by(m.Inbox.id)
                .limit(1)
            ).first()
            return None if row is None else (int(row.id), dict(row.input))

    def list_runs(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        status: str | None = None,
        contract: str | None = None,
        namespace: str | None = None,
        face: str | None = None,
        order: str = "newest",
    ) -> list[RunSummary]:
        """A page of runs (newest first unless ``order`` says ``oldest`` or ``updated``), filtered."""
        if order not in ORDERS:
            raise StoreError(f"unknown order {order[:40]!r}; one of {', '.join(ORDERS)}")
        by = {
            "newest": (m.Run.created_at.desc(), m.Run.id.desc()),
            "oldest": (m.Run.created_at.asc(), m.Run.id.asc()),
            "updated": (m.Run.updated_at.desc(), m.Run.id.desc()),
        }[order]
        q = (
            _filtered(select(*_SUMMARY_COLUMNS), status, contract, namespace, face)
            .order_by(*by)
            .limit(max(1, min(limit, MAX_PAGE)))
            .offset(max(0, offset))
        )
        with self._session() as s:
            return [_summary(r) for r in s.execute(q).all()]

    def count_runs(
        self,
        *,
        status: str | None = None,
        contract: str | None = None,
        namespace: str | None = None,
        face: str | None = None,
    ) -> int:
        """How many runs ``list_runs`` pages through with the same filters."""
        q = _filtered(select(func.count()).select_from(m.Run), status, contract, namespace, face)
        with self._session() as s:
            return int(s.scalar(q) or 0)

    def run_summary(self, run_id: str) -> RunSummary | None:
        """One run's row of the runs list (cheap: for polling a live run)."""
        with self._session() as s:
            row = s.execute(select(*_SUMMARY_COLUMNS).where(m.Run.id == run_id)).first()
            return None if row is None else _summary(row)

    def looks(
        self,
        run_id: str,
        *,
        after_look: int | None = None,
        limit: int | None = None,
        with_verdicts: bool = True,
    ) -> list[LookRecord]:
        """The run's looks with their verdicts, in order; only those after ``after_look`` (live updates).

        ``with_verdicts=False`` leaves the verdicts out (empty lists): a timeline of 10^4 looks reads in
        a fraction of the time.
        """
        with self._session() as s:
            return _looks(s, run_id, after_look, limit, with_verdicts=with_verdicts)

    def transitions(
        self, run_id: str, *, after_seq: int | None = None, limit: int | None = None
    ) -> list[TransitionRecord]:
        """The run's transitions with their effects, in order; only those after ``after_seq``."""
        with self._session() as s:
            return _transitions(s, run_id, after_seq, limit)

    def audit(self, run_id: str) -> list[AuditRecord]:
        """The run's audit log, oldest first."""
        with self._session() as s:
            rows = s.scalars(select(m.Audit).where(m.Audit.run_id == run_id).order_by(m.Audit.id)).all()
            return [
                AuditRecord(a.id, a.run_id, a.actor, a.action, a.reason, a.origin, dict(a.details), a.at)
                for a in rows
            ]

    def run_detail(self, run_id: str) -> RunDetail | None:
        """A run with its timeline, looks, verdicts, diagnostics (not their bytes) and notifications."""
        with self._session() as s:
            run = s.get(m.Run, run_id)
            if run is None:
                return None
            diags = [
                DiagnosticRecord(*row)
                for row in s.execute(
                    select(
                        m.Diagnostic.id,
                        m.Diagnostic.name,
                        m.Diagnostic.url,
                        m.Diagnostic.content_type,
                        m.Diagnostic.size,
                        m.Diagnostic.truncated,
                        m.Diagnostic.error,
                        m.Diagnostic.at,
                    )
                    .where(m.Diagnostic.run_id == run_id)
                    .order_by(m.Diagnostic.id)
                ).all()
            ]
            notes = [
                NotificationRecord(n.key, n.channel, n.event, n.ok, n.error, dict(n.payload), n.at)
                for n in s.scalars(
                    select(m.Notification).where(m.Notification.run_id == run_id).order_by(m.Notification.id)
                ).all()
            ]
            return RunDetail(
                summary=_summary(run),
                plan=dict(run.plan),
                meta=dict(run.meta),
                state=dict(run.state),
                contract_text=run.contract_text,
                timeline=_transitions(s, run_id, None, None),
                looks=_looks(s, run_id, None, None),
                diagnostics=diags,
                notifications=notes,
            )

    def diagnostic_data(self, run_id: str, diagnostic_id: int) -> bytes | None:
        """The bytes of one captured diagnostic."""
        with self._session() as s:
            data = s.scalar(
                select(m.DiagnosticBlob.data)
                .join(m.Diagnostic, m.Diagnostic.id == m.DiagnosticBlob.diagnostic_id)
                .where(m.Diagnostic.id == diagnostic_id, m.Diagnostic.run_id == run_id)
            )
            return None if data is None else bytes(data)

    def count(self, table: str, run_id: str) -> int:
        """How many rows a run has in one of the record tables (for tests and summaries)."""
        models: dict[str, Any] = {
            "transitions": m.Transition,
            "effects": m.Effect,
            "looks": m.Look,
            "verdicts": m.Verdict,
            "diagnostics": m.Diagnostic,
            "notifications": m.Notification,
            "inbox": m.Inbox,
            "audit": m.Audit,
        }
        model = models[table]
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(model).where(model.run_id == run_id)) or 0)


# ----------------------------------------------------------------------------------- helpers

_SUMMARY_COLUMNS = (
    m.Run.id,
    m.Run.contract_name,
    m.Run.service,
    m.Run.status,
    m.Run.phase,
    m.Run.step,
    m.Run.steps,
    m.Run.weight,
    m.Run.reason,
    m.Run.created_at,
    m.Run.updated_at,
    m.Run.finished_at,
    m.Run.namespace,
    m.Run.face,
)


def _filtered(
    q: Any, status: str | None, contract: str | None, namespace: str | None, face: str | None
) -> Any:
    if status is not None:
        q = q.where(m.Run.status == status)
    if contract is not None:
        q = q.where(m.Run.contract_name == contract)
    if namespace is not None:
        q = q.where(m.Run.namespace == namespace)
    if face is not None:
        q = q.where(m.Run.face == face)
    return q


def _summary(r: Any) -> RunSummary:  # a Run or a row of _SUMMARY_COLUMNS
    return RunSummary(
        id=r.id,
        contract_name=r.contract_name,
        service=r.service,
        status=r.status,
        phase=r.phase,
        step=r.step,
        steps=r.steps,
        weight=r.weight,
        reason=r.reason,
        created_at=r.created_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
        namespace=r.namespace,
        face=r.face,
    )


def _looks(
    s: Session, run_id: str, after: int | None, limit: int | None, *, with_verdicts: bool = True
) -> list[LookRecord]:
    # Rows of columns, not ORM objects, and the JSON of all rows decoded in one call: a run page reads
    # 10^4 looks and 4·10^4 verdicts at once.
    L, V = m.Look, m.Verdict
    q = select(L.look, L.seq, L.step, L.at, L.since, L.action, L.reason, _json_text(L.evidence))
    q = q.where(L.run_id == run_id)
    if after is not None:
        q = q.where(L.look > after)
    q = q.order_by(L.look)
    if limit is not None:
        q = q.limit(max(1, min(limit, MAX_LOOKS_PAGE)))
    rows = s.connection().execute(q).all()
    if not rows:
        return []
    vq = select(V.look, V.objective, V.sli, V.source, V.status, V.reason, _json_text(V.numbers)).where(
        V.run_id == run_id, V.look >= rows[0][0], V.look <= rows[-1][0]
    )
    vrows = s.connection().execute(vq.order_by(V.look, V.id)).all() if with_verdicts else []
    numbers = _decode_all([v[6] for v in vrows])
    verdicts: dict[int, list[VerdictRecord]] = {}
    for v, nums in zip(vrows, numbers, strict=True):
        verdicts.setdefault(v[0], []).append(VerdictRecord(v[0], v[1], v[2], v[3], v[4], v[5], nums))
    evidence = _decode_all([lk[7] for lk in rows])
    return [
        LookRecord(lk[0], lk[1], lk[2], lk[3], lk[4], lk[5], lk[6], ev, verdicts.get(lk[0], []))
        for lk, ev in zip(rows, evidence, strict=True)
    ]


def _json_text(column: Any) -> Any:
    """A JSON column read as its text (decoded by ``_decode_all``, not once per row by the driver)."""
    return cast(column, Text)


def _decode_all(texts: Sequence[str | None]) -> list[Any]:
    if not texts:
        return []
    values = json.loads("[" + ",".join(t if t is not None else "null" for t in texts) + "]")
    if len(values) != len(texts):  # a damaged value that is not one JSON document
        raise json.JSONDecodeError("a record does not hold exactly one JSON document", "", 0)
    return list(values)


def _transitions(s: Session, run_id: str, after: int | None, limit: int | None) -> list[TransitionRecord]:
    T, E = m.Transition, m.Effect
    q = select(T.seq, T.at, T.input_kind, T.input, T.state).where(T.run_id == run_id)
    if after is not None:
        q = q.where(T.seq > after)
    q = q.order_by(T.seq)
    if limit is not None:
        q = q.limit(max(1, min(limit, MAX_LOOKS_PAGE)))
    rows = s.connection().execute(q).all()
    if not rows:
        return []
    effects: dict[int, list[EffectRecord]] = {}
    eq = select(E.seq, E.idx, E.kind, E.effect, E.done, E.ok, E.error, E.attempts, E.done_at).where(
        E.run_id == run_id, E.seq >= rows[0].seq, E.seq <= rows[-1].seq
    )
    for e in s.connection().execute(eq.order_by(E.seq, E.idx)).all():
        effects.setdefault(e.seq, []).append(EffectRecord(*e))
    return [
        TransitionRecord(t.seq, t.at, t.input_kind, t.input, t.state, effects.get(t.seq, [])) for t in rows
    ]


def _lease(row: m.Lease) -> Lease:
    return Lease(row.run_id, row.holder, row.acquired_at, row.heartbeat_at, row.expires_at)


def _audit_row(
    *,
    run_id: str,
    actor: str,
    action: str,
    reason: str,
    at: float,
    origin: str,
    details: Mapping[str, Any] | None,
) -> m.Audit:
    return m.Audit(
        run_id=run_id,
        actor=actor[:253],
        action=action[:64],
        reason=reason[:4000],
        origin=origin[:253],
        details=dict(details or {}),
        at=at,
    )


def _field(item: Any, name: str, default: Any) -> Any:
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact.redact_text(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redacted(v) for v in value)
    return value


def _redact_parameters(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _executemany: bool
) -> tuple[str, Any]:
    """URL credentials (`user:password@`) masked in every string parameter (JSON columns arrive
    serialised), whatever layer the text came from: contract text, reasons, errors, inputs."""
    return statement, _redacted(parameters)
