"""FROZEN COPY of gate/drivers/store.py as it was on main at 48395a3 (schema_version 1, before migrations).

The migration tests create stores with it, exactly as gate 0.1 wrote them, and open them with today's
store. Do not edit it: it is the old schema's definition.

The original docstring follows.

The run store: every run, transition, effect, look (decision, verdicts, evidence summary),
diagnostic and notification, in one SQLite file through SQLAlchemy 2.

Durability is the point: the engine writes a transition (the state it leads to and the effects
it intends) BEFORE any effect happens, and marks each effect done (with what it produced) in the
same database transaction as that result's records. SQLite runs in WAL mode with
``synchronous=FULL``, so a commit is on disk when it returns; a gate killed at any moment finds
every committed record when it starts again.

It stores JSON documents the engine hands it and knows nothing of the engine's types (the
drivers layer sits below the engine). The dashboard reads it through ``list_runs`` and
``run_detail``; it asks a running engine to abort or resume through ``request``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from gate import redact

SCHEMA_VERSION = 1
MAX_DIAGNOSTIC_BYTES = 16 * 1024 * 1024  # a stored blob never exceeds this, whatever the caller sends


class StoreError(Exception):
    """The run store cannot do what was asked (unknown run, a sequence out of order)."""


class _Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class _Run(_Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contract_name: Mapped[str] = mapped_column(String(253))
    service: Mapped[str] = mapped_column(String(253), default="")
    contract_text: Mapped[str] = mapped_column(Text, default="")
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), index=True)
    phase: Mapped[str] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class _Transition(_Base):
    __tablename__ = "transitions"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float)
    input_kind: Mapped[str] = mapped_column(String(32))
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    inbox_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recorded_at: Mapped[float] = mapped_column(Float)


class _Effect(_Base):
    __tablename__ = "effects"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    effect: Mapped[dict[str, Any]] = mapped_column(JSON)
    done: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class _Inbox(_Base):
    """Inputs waiting for the machine: results of effects, and requests from people."""

    __tablename__ = "inbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(64), default="")
    consumed_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class _Look(_Base):
    __tablename__ = "looks"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    look: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float)
    since: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(16))  # promote | hold | rollback | error
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # a summary, never raw samples


class _Verdict(_Base):
    __tablename__ = "verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    look: Mapped[int] = mapped_column(Integer)
    objective: Mapped[str] = mapped_column(String(253))
    sli: Mapped[str] = mapped_column(String(253))
    source: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    numbers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class _Diagnostic(_Base):
    __tablename__ = "diagnostics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    name: Mapped[str] = mapped_column(String(253))
    url: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(253), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    at: Mapped[float] = mapped_column(Float)


class _Notification(_Base):
    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("run_id", "key", "channel"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    key: Mapped[str] = mapped_column(String(253))
    channel: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[float] = mapped_column(Float)


class _Meta(_Base):
    __tablename__ = "gate_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# ----------------------------------------------------------------------------------- read models


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list."""

    id: str
    contract_name: str
    service: str
    status: str
    phase: str
    step: int
    steps: int
    weight: int
    reason: str
    created_at: float
    updated_at: float
    finished_at: float | None


@dataclass(frozen=True)
class EffectRecord:
    """An effect the engine intended at a transition, and whether it was carried out."""

    seq: int
    idx: int
    kind: str
    effect: dict[str, Any]
    done: bool
    ok: bool | None
    error: str
    attempts: int
    done_at: float | None


@dataclass(frozen=True)
class TransitionRecord:
    """One transition: the input, the state it led to, the effects it intended."""

    seq: int
    at: float
    input_kind: str
    input: dict[str, Any]
    state: dict[str, Any]
    effects: list[EffectRecord]


@dataclass(frozen=True)
class VerdictRecord:
    """One verdict (objective × source) of a look."""

    look: int
    objective: str
    sli: str
    source: str
    status: str
    reason: str
    numbers: dict[str, Any]


@dataclass(frozen=True)
class LookRecord:
    """One look: the decision, its verdicts and a summary of the evidence."""

    look: int
    seq: int
    step: int
    at: float
    since: float
    action: str
    reason: str
    evidence: dict[str, Any]
    verdicts: list[VerdictRecord] = field(default_factory=list)


@dataclass(frozen=True)
class DiagnosticRecord:
    """A captured diagnostic (without its data; ``diagnostic_data`` reads that)."""

    id: int
    name: str
    url: str
    content_type: str
    size: int
    truncated: bool
    error: str
    at: float


@dataclass(frozen=True)
class NotificationRecord:
    """A notification sent (or that failed to send) on a channel."""

    key: str
    channel: str
    event: str
    ok: bool
    error: str
    payload: dict[str, Any]
    at: float


@dataclass(frozen=True)
class RunDetail:
    """Everything about a run, for the dashboard and ``gate run``."""

    summary: RunSummary
    plan: dict[str, Any]
    meta: dict[str, Any]
    state: dict[str, Any]
    contract_text: str
    timeline: list[TransitionRecord]
    looks: list[LookRecord]
    diagnostics: list[DiagnosticRecord]
    notifications: list[NotificationRecord]


@dataclass(frozen=True)
class PendingEffect:
    """An effect recorded as intended and not yet done: to be (re)applied."""

    seq: int
    idx: int
    effect: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class LookWrite:
    """What a finished look adds to the store, written with its effect's completion."""

    look: int
    step: int
    at: float
    since: float
    action: str
    reason: str
    evidence: dict[str, Any]
    verdicts: Sequence[dict[str, Any]]  # objective, sli, source, status, reason, numbers


# ---------------------------------------------------------------------------------------- store


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while the engine writes; FULL fsyncs on every commit.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class RunStore:
    """Runs and their records in one SQLite file (created with its tables when missing)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._engine: Engine = create_engine(f"sqlite:///{self.path}", future=True)
        event.listen(self._engine, "connect", _set_pragmas)
        self._create_schema()

    def _create_schema(self) -> None:
        # Two processes opening a new file at once (a runner and the dashboard) both see the tables
        # missing; the loser's CREATE fails. The tables exist then: look again.
        for attempt in range(5):
            try:
                _Base.metadata.create_all(self._engine)
                with self._session() as s:
                    if s.get(_Meta, "schema_version") is None:
                        s.add(_Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            except (OperationalError, IntegrityError) as exc:
                if attempt == 4 or not ("already exists" in str(exc) or "UNIQUE" in str(exc)):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            event.listen(s, "before_flush", _redact_rows)
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
    ) -> str:
        """Record a new run (before anything happens) and return its id."""
        rid = run_id or time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]
        with self._session() as s:
            s.add(
                _Run(
                    id=rid,
                    contract_name=contract_name,
                    service=service,
                    contract_text=contract_text,
                    plan=plan,
                    meta=meta or {},
                    state=state,
                    status=str(state.get("status", "running")),
                    phase=str(state.get("phase", "pending")),
                    step=int(state.get("step", 0)),
                    weight=int(state.get("weight", 0)),
                    reason=str(state.get("reason", "")),
                    last_seq=0,
                    created_at=at,
                    updated_at=at,
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
    ) -> None:
        """Write-ahead: the transition, its new state and its intended effects, in one commit.

        ``seq`` must follow the run's last one: a second writer (or a replay) is refused rather
        than allowed to fork the run's history.
        """
        with self._session() as s:
            run = s.get(_Run, run_id)
            if run is None:
                raise StoreError(f"no run {run_id!r}")
            if seq != run.last_seq + 1:
                raise StoreError(f"run {run_id}: transition {seq} does not follow {run.last_seq}")
            s.add(
                _Transition(
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
                s.add(_Effect(run_id=run_id, seq=seq, idx=idx, kind=str(eff.get("kind", "")), effect=eff))
            if inbox_id is not None:
                s.execute(update(_Inbox).where(_Inbox.id == inbox_id).values(consumed_seq=seq))
            run.last_seq = seq
            run.state = state
            run.status = str(state.get("status", run.status))
            run.phase = str(state.get("phase", run.phase))
            run.step = int(state.get("step", run.step))
            run.weight = int(state.get("weight", run.weight))
            run.reason = str(state.get("reason", run.reason))[:2000]
            run.updated_at = at
            if state.get("phase") == "finished" and run.finished_at is None:
                run.finished_at = at

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
        look: LookWrite | None = None,
    ) -> None:
        """Mark an effect carried out; its result input (if any) and look records go in the same commit."""
        with self._session() as s:
            eff = s.get(_Effect, (run_id, seq, idx))
            if eff is None:
                raise StoreError(f"run {run_id}: no effect {seq}.{idx}")
            if eff.done:
                return  # already recorded: a replay after a crash must not duplicate results
            eff.done, eff.ok, eff.error, eff.done_at = True, ok, error[:4000], at
            eff.attempts += 1
            if result is not None:
                s.add(_Inbox(run_id=run_id, input=result, origin=f"effect {seq}.{idx}", created_at=at))
            if look is not None:
                s.merge(
                    _Look(
                        run_id=run_id,
                        look=look.look,
                        seq=seq,
                        step=look.step,
                        at=look.at,
                        since=look.since,
                        action=look.action,
                        reason=look.reason[:4000],
                        evidence=look.evidence,
                    )
                )
                for v in look.verdicts:
                    s.add(
                        _Verdict(
                            run_id=run_id,
                            look=look.look,
                            objective=str(v.get("objective", "")),
                            sli=str(v.get("sli", "")),
                            source=str(v.get("source", "")),
                            status=str(v.get("status", "")),
                            reason=str(v.get("reason", ""))[:4000],
                            numbers=dict(v.get("numbers", {})),
                        )
                    )

    def request(self, run_id: str, input: dict[str, Any], *, origin: str = "person") -> int:
        """Queue an input for a run's engine (e.g. ``{"kind": "abort", "by": ..., "reason": ...}``)."""
        with self._session() as s:
            if s.get(_Run, run_id) is None:
                raise StoreError(f"no run {run_id!r}")
            row = _Inbox(run_id=run_id, input=input, origin=origin, created_at=time.time())
            s.add(row)
            s.flush()
            return int(row.id)

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
        """Keep a captured diagnostic with the run (bounded in size)."""
        blob = data[:MAX_DIAGNOSTIC_BYTES]
        with self._session() as s:
            row = _Diagnostic(
                run_id=run_id,
                name=name,
                url=url,
                content_type=content_type,
                size=len(blob),
                truncated=truncated or len(data) > len(blob),
                error=error[:4000],
                data=blob,
                at=at,
            )
            s.add(row)
            s.flush()
            return int(row.id)

    def notification_sent(self, run_id: str, key: str, channel: str) -> bool:
        """Whether a notification with this key already went out on this channel."""
        with self._session() as s:
            row = s.scalar(
                select(_Notification).where(
                    _Notification.run_id == run_id, _Notification.key == key, _Notification.channel == channel
                )
            )
            return row is not None and row.ok

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
        with self._session() as s:
            row = s.scalar(
                select(_Notification).where(
                    _Notification.run_id == run_id, _Notification.key == key, _Notification.channel == channel
                )
            )
            if row is None:
                row = _Notification(run_id=run_id, key=key, channel=channel, event=event, ok=ok, at=at)
                s.add(row)
            row.ok, row.error, row.payload, row.at = ok, error[:4000], payload or {}, at

    # ------------------------------------------------------------------------------- reading

    def get_state(self, run_id: str) -> dict[str, Any]:
        """The state checkpointed last."""
        with self._session() as s:
            run = s.get(_Run, run_id)
            if run is None:
                raise StoreError(f"no run {run_id!r}")
            return dict(run.state)

    def get_plan(self, run_id: str) -> dict[str, Any]:
        """The plan the run carries out."""
        with self._session() as s:
            run = s.get(_Run, run_id)
            if run is None:
                raise StoreError(f"no run {run_id!r}")
            return dict(run.plan)

    def last_seq(self, run_id: str) -> int:
        """The sequence number of the run's last transition (0 before the first)."""
        with self._session() as s:
            run = s.get(_Run, run_id)
            if run is None:
                raise StoreError(f"no run {run_id!r}")
            return run.last_seq

    def pending_effects(self, run_id: str) -> list[PendingEffect]:
        """Effects intended and not done, in order: what a resumed engine applies first."""
        with self._session() as s:
            rows = s.scalars(
                select(_Effect)
                .where(_Effect.run_id == run_id, _Effect.done.is_(False))
                .order_by(_Effect.seq, _Effect.idx)
            ).all()
            return [
                PendingEffect(seq=r.seq, idx=r.idx, effect=dict(r.effect), attempts=r.attempts) for r in rows
            ]

    def next_input(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The oldest input not yet consumed by a transition."""
        with self._session() as s:
            row = s.scalar(
                select(_Inbox)
                .where(_Inbox.run_id == run_id, _Inbox.consumed_seq.is_(None))
                .order_by(_Inbox.id)
                .limit(1)
            )
            return None if row is None else (int(row.id), dict(row.input))

    def list_runs(self, *, limit: int = 100, status: str | None = None) -> list[RunSummary]:
        """Runs, newest first."""
        with self._session() as s:
            q = select(_Run).order_by(_Run.created_at.desc(), _Run.id.desc()).limit(max(1, min(limit, 1000)))
            if status is not None:
                q = q.where(_Run.status == status)
            return [_summary(r) for r in s.scalars(q).all()]

    def run_detail(self, run_id: str) -> RunDetail | None:
        """A run with its timeline, looks and verdicts, diagnostics and notifications."""
        with self._session() as s:
            run = s.get(_Run, run_id)
            if run is None:
                return None
            effects: dict[int, list[EffectRecord]] = {}
            for e in s.scalars(
                select(_Effect).where(_Effect.run_id == run_id).order_by(_Effect.seq, _Effect.idx)
            ).all():
                effects.setdefault(e.seq, []).append(
                    EffectRecord(
                        e.seq, e.idx, e.kind, dict(e.effect), e.done, e.ok, e.error, e.attempts, e.done_at
                    )
                )
            timeline = [
                TransitionRecord(
                    t.seq, t.at, t.input_kind, dict(t.input), dict(t.state), effects.get(t.seq, [])
                )
                for t in s.scalars(
                    select(_Transition).where(_Transition.run_id == run_id).order_by(_Transition.seq)
                ).all()
            ]
            verdicts: dict[int, list[VerdictRecord]] = {}
            for v in s.scalars(select(_Verdict).where(_Verdict.run_id == run_id).order_by(_Verdict.id)).all():
                verdicts.setdefault(v.look, []).append(
                    VerdictRecord(v.look, v.objective, v.sli, v.source, v.status, v.reason, dict(v.numbers))
                )
            looks = [
                LookRecord(
                    lk.look,
                    lk.seq,
                    lk.step,
                    lk.at,
                    lk.since,
                    lk.action,
                    lk.reason,
                    dict(lk.evidence),
                    verdicts.get(lk.look, []),
                )
                for lk in s.scalars(select(_Look).where(_Look.run_id == run_id).order_by(_Look.look)).all()
            ]
            diags = [
                DiagnosticRecord(d.id, d.name, d.url, d.content_type, d.size, d.truncated, d.error, d.at)
                for d in s.scalars(
                    select(_Diagnostic).where(_Diagnostic.run_id == run_id).order_by(_Diagnostic.id)
                ).all()
            ]
            notes = [
                NotificationRecord(n.key, n.channel, n.event, n.ok, n.error, dict(n.payload), n.at)
                for n in s.scalars(
                    select(_Notification).where(_Notification.run_id == run_id).order_by(_Notification.id)
                ).all()
            ]
            return RunDetail(
                summary=_summary(run),
                plan=dict(run.plan),
                meta=dict(run.meta),
                state=dict(run.state),
                contract_text=run.contract_text,
                timeline=timeline,
                looks=looks,
                diagnostics=diags,
                notifications=notes,
            )

    def diagnostic_data(self, run_id: str, diagnostic_id: int) -> bytes | None:
        """The bytes of one captured diagnostic."""
        with self._session() as s:
            row = s.get(_Diagnostic, diagnostic_id)
            if row is None or row.run_id != run_id:
                return None
            return bytes(row.data)

    def count(self, table: str, run_id: str) -> int:
        """How many rows a run has in one of the record tables (for tests and summaries)."""
        models: dict[str, Any] = {
            "transitions": _Transition,
            "effects": _Effect,
            "looks": _Look,
            "verdicts": _Verdict,
            "diagnostics": _Diagnostic,
            "notifications": _Notification,
            "inbox": _Inbox,
        }
        model = models[table]
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(model).where(model.run_id == run_id)) or 0)


def _summary(run: _Run) -> RunSummary:
    steps = run.plan.get("steps", []) if isinstance(run.plan, dict) else []
    return RunSummary(
        id=run.id,
        contract_name=run.contract_name,
        service=run.service,
        status=run.status,
        phase=run.phase,
        step=run.step,
        steps=len(steps),
        weight=run.weight,
        reason=run.reason,
        created_at=run.created_at,
        updated_at=run.updated_at,
        finished_at=run.finished_at,
    )


def _redacted(value: Any) -> Any:
    """`value` with URL credentials (`user:password@`) masked in every string, however deep."""
    if isinstance(value, str):
        return redact.redact_text(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _redact_rows(session: Session, _context: Any, _instances: Any) -> None:
    """Before anything is written: no record keeps a password given in a URL (contract text, reasons,
    errors, evidence notes, inputs) — whatever layer the text came from."""
    for row in list(session.new) + list(session.dirty):
        for column in row.__table__.columns:
            value = getattr(row, column.key, None)
            if isinstance(value, str | dict | list):
                clean = _redacted(value)
                if clean != value:
                    setattr(row, column.key, clean)
