"""images sent with user messages of stored conversations

Revision ID: 0006_message_images
Revises: 0005_shared_limits
Create Date: 2026-12-02 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_message_images"
down_revision = "0005_shared_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("message_images", schema=None) as batch_op:
        batch_op.create_index("ix_message_images_message_id", ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message_images", schema=None) as batch_op:
        batch_op.drop_index("ix_message_images_message_id")
    op.drop_table("message_images")
