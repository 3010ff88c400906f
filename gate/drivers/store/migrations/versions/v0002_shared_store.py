"""A store more than one process shares: leases, an audit log, blobs apart, columns and indexes for paging.

- ``leases``: which process drives a run (holder, acquired, heartbeat, expiry);
- ``audit``: who did what to a run;
- ``diagnostic_blobs``: the bytes of captured diagnostics, moved out of ``diagnostics`` so that no list
  or detail query reads them;
- ``runs.namespace``, ``runs.face``, ``runs.steps`` (filled from each run's meta and plan) and the
  indexes the runs list, the looks of a run and the inbox are read through.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("namespace", sa.String(253), nullable=False, server_default=""))
        batch.add_column(sa.Column("face", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("steps", sa.Integer(), nullable=False, server_default="0"))
    runs = sa.table(
        "runs",
        sa.column("id", sa.String),
        sa.column("meta", sa.JSON),
        sa.column("plan", sa.JSON),
        sa.column("namespace", sa.String),
        sa.column("face", sa.String),
        sa.column("steps", sa.Integer),
    )
    for rid, meta, plan in bind.execute(sa.select(runs.c.id, runs.c.meta, runs.c.plan)).all():
        bind.execute(
            runs.update()
            .where(runs.c.id == rid)
            .values(
                namespace=_text(meta, "namespace", 253),
                face=_text(meta, "face", 32),
                steps=len(plan.get("steps", [])) if isinstance(plan, dict) else 0,
            )
        )
    op.create_index("ix_runs_created", "runs", ["created_at", "id"])
    op.create_index("ix_runs_status_created", "runs", ["status", "created_at", "id"])
    op.create_index("ix_runs_contract_created", "runs", ["contract_name", "created_at", "id"])
    op.create_index("ix_runs_namespace_created", "runs", ["namespace", "created_at", "id"])
    op.create_index("ix_runs_face_created", "runs", ["face", "created_at", "id"])
    op.create_index("ix_runs_updated", "runs", ["updated_at", "id"])
    op.create_index("ix_inbox_run_pending", "inbox", ["run_id", "consumed_seq", "id"])
    op.create_index("ix_verdicts_run_look", "verdicts", ["run_id", "look", "id"])

    op.create_table(
        "diagnostic_blobs",
        sa.Column(
            "diagnostic_id",
            sa.Integer(),
            sa.ForeignKey("diagnostics.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.execute("INSERT INTO diagnostic_blobs (diagnostic_id, data) SELECT id, data FROM diagnostics")
    if bind.dialect.name == "sqlite":
        # Natively (SQLite >= 3.35): a batch copy of the table would DROP it, and with foreign keys on
        # that deletes the blobs just copied.
        op.execute("ALTER TABLE diagnostics DROP COLUMN data")
    else:
        op.drop_column("diagnostics", "data")

    op.create_table(
        "leases",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("holder", sa.String(253), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("actor", sa.String(253), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(253), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_audit_run", "audit", ["run_id", "id"])
    meta = sa.table("gate_meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.execute(meta.update().where(meta.c.key == "schema_version").values(value="2"))


def downgrade() -> None:
    raise NotImplementedError("the run store is not downgraded; restore a backup taken before the upgrade")


def _text(meta: Any, key: str, limit: int) -> str:
    value = meta.get(key, "") if isinstance(meta, dict) else ""
    return str(value)[:limit] if isinstance(value, str) else ""
