"""writers: which process is streaming an answer or generating a response

Revision ID: 0011_writers
Revises: 0010_search_headings
Create Date: 2026-12-02 05:00:00

``messages.writer`` and ``responses.writer``: the PostgreSQL backend pid of the live connection
of the Cove process writing the row while it is ``streaming`` / ``in_progress`` (NULL on SQLite,
where one process owns the file). A process that dies takes its connections with it, so a row
whose writer is no longer in ``pg_stat_activity`` was cut off (cove.store.db.Database.sweep).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_writers"
down_revision = "0010_search_headings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("messages", "responses"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("writer", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in ("messages", "responses"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("writer")
