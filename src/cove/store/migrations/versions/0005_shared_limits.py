"""sign-in and API-key limits shared by every process of one database

Revision ID: 0005_shared_limits
Revises: 0004_message_sources
Create Date: 2026-12-02 01:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_shared_limits"
down_revision = "0004_message_sources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_throttle",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_table("auth_throttle")
