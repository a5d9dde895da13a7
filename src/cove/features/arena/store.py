"""The arena's table: battles and their votes. Created by the Alembic migration
``0009_ideas_arena``.

A signed-in user's battle keeps its prompt and answers (their data: exported, deleted with the
account through ``user_id``'s cascade). A guest's battle (``user_id`` NULL) keeps only what the
leaderboard needs: the contestants' names, blind or not, and the vote — never the prompt or the
answers; unvoted guest battles are deleted after a day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cove.store.tables import Base, utcnow


class Battle(Base):
    """One battle: ``id`` (``bt_`` + 24 random hex digits, unguessable), ``models`` (JSON list,
    slot A first), ``blind``, ``status`` (``answering``, ``done``, ``failed``), ``winner``
    (``A``..``D``, ``tie``, ``bad`` or None until voted), ``prompt`` and ``answers`` (JSON list
    of texts by slot; both None for guests)."""

    __tablename__ = "arena_battles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None, index=True)
    models: Mapped[str] = mapped_column(Text)
    blind: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(16), default="answering")
    winner: Mapped[str | None] = mapped_column(String(8), default=None)
    prompt: Mapped[str | None] = mapped_column(Text, default=None)
    answers: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    voted_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_arena_battles_winner", "winner"),)
