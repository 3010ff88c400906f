"""Alembic's environment for the run store: migrations run on the connection the store hands over.

The store calls ``alembic.command.upgrade`` with ``config.attributes["connection"]`` set; nothing here
opens a connection or reads an ini file.
"""

from __future__ import annotations

from alembic import context

from gate.drivers.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite changes tables by copying them; batch mode does that
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
