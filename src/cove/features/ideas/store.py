"""The table of saved idea boards (signed-in users only; a guest's brainstorm is never
written). Created by the Alembic migration ``0009_ideas_arena``; ``user_id`` cascades, so
deleting an account deletes its boards."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cove.store.tables import Base, utcnow


class Board(Base):
    """One brainstorm's result: the ``goal``; ``constraints``, ``criteria``, ``ideas`` (ranked
    idea objects), ``groups`` and ``followups`` (follow-up results, oldest first) as JSON
    text; the ``model`` that wrote it."""

    __tablename__ = "idea_boards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    goal: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(200))
    constraints: Mapped[str] = mapped_column(Text, default="[]")
    criteria: Mapped[str] = mapped_column(Text, default="[]")
    ideas: Mapped[str] = mapped_column(Text, default="[]")
    groups: Mapped[str] = mapped_column(Text, default="[]")
    followups: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
