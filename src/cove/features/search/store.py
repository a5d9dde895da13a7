"""Tables of the search feature: collections, documents and their chunks.

Every row carries ``user_id`` (``ON DELETE CASCADE``), so deleting an account removes its
collections, documents, chunks and vectors in the same statement; the keyword index follows the
chunks (SQLite: triggers on ``search_chunks`` keep the FTS5 external-content table in step;
PostgreSQL: the ``tsv`` column lives on the chunk row itself), and covers each chunk's
``heading`` and ``text``. The schema is created by the Alembic migration ``0003_search``; the
keyword index took in the heading in ``0010_search_headings``.
"""

from __future__ import annotations

import builtins
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cove.store.tables import Base, utcnow


class Collection(Base):
    """A named collection of one user's documents (names unique per user)."""

    __tablename__ = "search_collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_search_collections_name"),)


class StoredFile(Base):
    """A file uploaded through OpenAI's Files API (``/v1/files``), kept as sent until deleted:
    its bytes are what ``/v1/files/{id}/content`` returns and what a vector store reads."""

    __tablename__ = "search_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    data: Mapped[builtins.bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Document(Base):
    """A document added to a collection. ``kind``: ``text``, ``markdown``, ``html``, ``pdf`` or
    ``docx``; ``pages``: page count (PDF) or None; ``notes``: JSON list of warnings, such as the
    pages of a PDF that have no text layer; ``file_id``: the uploaded file it was read from
    (OpenAI's vector store files), deleted with it."""

    __tablename__ = "search_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("search_collections.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    pages: Mapped[int | None] = mapped_column(default=None)
    chars: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[str] = mapped_column(Text, default="[]")
    file_id: Mapped[int | None] = mapped_column(
        ForeignKey("search_files.id", ondelete="CASCADE"), default=None, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Chunk(Base):
    """A passage of a document: ``text`` at characters ``start``..``end`` of the document's
    extracted text, on ``page`` (1-based, PDF only) under ``heading`` (the heading path joined
    with `` > ``). ``vector`` is ``dim`` float32 values (little-endian) from ``embedder``."""

    __tablename__ = "search_chunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("search_collections.id", ondelete="CASCADE")
    )
    document_id: Mapped[int] = mapped_column(
        ForeignKey("search_documents.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(default=None)
    heading: Mapped[str] = mapped_column(Text, default="")
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    embedder: Mapped[str] = mapped_column(String(100))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_search_chunks_collection", "collection_id"),)


class Pack(Base):
    """A knowledge pack: a ZIM archive registered by an admin, read in place at ``path`` and
    shared by every user of the instance. ``name`` is its URL slug (``/knowledge/<name>/...``);
    ``uuid`` is the archive's own id (one registration per archive); the rest is the archive's
    metadata when it was added (``date``: ``YYYY-MM-DD``, ``articles``: front articles).
    Created by the Alembic migration ``0008_packs``."""

    __tablename__ = "search_packs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    uuid: Mapped[str] = mapped_column(String(32), unique=True)
    path: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(64), default="")
    date: Mapped[str] = mapped_column(String(32), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    creator: Mapped[str] = mapped_column(Text, default="")
    publisher: Mapped[str] = mapped_column(Text, default="")
    articles: Mapped[int] = mapped_column(Integer, default=0)
    media: Mapped[int] = mapped_column(Integer, default=0)
    fulltext: Mapped[bool] = mapped_column(default=False)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    added_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


TABLES = (Collection, StoredFile, Document, Chunk, Pack)
