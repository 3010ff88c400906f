"""The tables of the run store as they are at the newest migration (``migrations/versions``).

The schema is created and changed only by the migrations; these models are how the store reads and
writes it. A change here needs a new migration that makes the same change (``docs/store.md``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 2  # gate_meta.schema_version written by the newest migration


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_created", "created_at", "id"),
        Index("ix_runs_status_created", "status", "created_at", "id"),
        Index("ix_runs_contract_created", "contract_name", "created_at", "id"),
        Index("ix_runs_namespace_created", "namespace", "created_at", "id"),
        Index("ix_runs_face_created", "face", "created_at", "id"),
        Index("ix_runs_updated", "updated_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contract_name: Mapped[str] = mapped_column(String(253))
    service: Mapped[str] = mapped_column(String(253), default="")
    namespace: Mapped[str] = mapped_column(String(253), default="")
    face: Mapped[str] = mapped_column(String(32), default="")
    contract_text: Mapped[str] = mapped_column(Text, default="")
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    steps: Mapped[int] = mapped_column(Integer, default=0)
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


class Transition(Base):
    __tablename__ = "transitions"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float)
    input_kind: Mapped[str] = mapped_column(String(32))
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    inbox_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recorded_at: Mapped[float] = mapped_column(Float)


class Effect(Base):
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


class Inbox(Base):
    """Inputs waiting for the machine: results of effects, and requests from people."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_run_pending", "run_id", "consumed_seq", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(64), default="")
    consumed_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class Look(Base):
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


class Verdict(Base):
    __tablename__ = "verdicts"
    __table_args__ = (Index("ix_verdicts_run_look", "run_id", "look", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    look: Mapped[int] = mapped_column(Integer)
    objective: Mapped[str] = mapped_column(String(253))
    sli: Mapped[str] = mapped_column(String(253))
    source: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    numbers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Diagnostic(Base):
    """What was captured; the bytes are in ``DiagnosticBlob`` so that no list or detail query reads them."""

    __tablename__ = "diagnostics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    name: Mapped[str] = mapped_column(String(253))
    url: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(253), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[float] = mapped_column(Float)


class DiagnosticBlob(Base):
    __tablename__ = "diagnostic_blobs"
    diagnostic_id: Mapped[int] = mapped_column(
        ForeignKey("diagnostics.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Notification(Base):
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


class Lease(Base):
    """Which process drives a run (one row per leased run; no row: nobody does)."""

    __tablename__ = "leases"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(253))
    acquired_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class Audit(Base):
    """Who did what to a run, when and why (approve, abort, retry, takeover …)."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_run", "run_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    actor: Mapped[str] = mapped_column(String(253))
    action: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    origin: Mapped[str] = mapped_column(String(253), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[float] = mapped_column(Float)


class Meta(Base):
    __tablename__ = "gate_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
