"""Tables of the meme feature: a signed-in user's own templates and the gallery of memes they
made. Every row carries ``user_id`` (``ON DELETE CASCADE``), so deleting an account removes
both; guests have no rows at all. Created by the Alembic migration ``0007_memes``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cove.store.tables import Base, utcnow


class MemeTemplate(Base):
    """A user's own template: ``image`` (PNG bytes, normalised), its ``width`` × ``height``,
    ``boxes`` (JSON list of text boxes, see :mod:`cove.features.memes.templates`)."""

    __tablename__ = "meme_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    boxes: Mapped[str] = mapped_column(Text)
    image: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Meme(Base):
    """A meme kept in its maker's gallery: the ``template`` id it was made from (built-in key
    or ``user-<n>``; None for an uploaded image), ``texts`` (JSON object box -> text), the
    rendered ``image`` bytes in ``format`` (png, jpeg, webp)."""

    __tablename__ = "memes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    template: Mapped[str | None] = mapped_column(String(40), default=None)
    texts: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(8))
    image: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


TABLES = (MemeTemplate, Meme)
