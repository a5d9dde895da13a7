"""messages keep what Cove's chat extensions gave an answer (its sources)

Revision ID: 0004_message_sources
Revises: 0003_search
Create Date: 2026-12-02 01:00:00

``messages.extensions``: NULL, or the JSON object of the chat extensions' results for the
answer, as the APIs' ``cove`` field carries them: ``{"search": {"query", "sources",
"warnings", "cited", "invalid_citations"}}`` (cove.features.search.answers).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_message_sources"
down_revision = "0003_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("extensions", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("extensions")
