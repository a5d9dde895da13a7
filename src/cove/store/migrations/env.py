"""Alembic environment: Cove passes the connection in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from cove.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via cove.store.db.migrate
    raise RuntimeError("run migrations through cove.store.db.migrate()")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite needs batch mode for ALTER TABLE
)
with context.begin_transaction():
    context.run_migrations()
