"""SQLAlchemy tables of Cove's store.

Every row that belongs to a person carries ``user_id`` with ``ON DELETE CASCADE``, so deleting an
account removes everything of it in one statement. Times are UTC, timezone-naive ``datetime``.
Secrets (passwords, session tokens, API keys, invite codes) are stored only as hashes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Now in UTC, timezone-naive (what the tables store)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every Cove table."""


class User(Base):
    """An account. ``role`` is ``admin`` or ``user``; ``password_hash`` is argon2id."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="user")
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A signed-in browser: ``token_hash`` is SHA-256 of the cookie value; ``csrf`` is the token
    the browser must echo in ``X-CSRF-Token`` on state-changing requests."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class ApiKey(Base):
    """An API key for ``Authorization: Bearer``; ``key_hash`` is SHA-256 of the key, ``prefix``
    its first characters (shown in lists so the owner can tell keys apart)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class Invite(Base):
    """A single-use sign-up invite created by an admin (``code_hash`` = SHA-256 of the code)."""

    __tablename__ = "invites"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class Conversation(Base):
    """A conversation of one user; ``id`` is a random URL-safe string (never guessable)."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        order_by="Message.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)


class Message(Base):
    """One message. ``status``: ``complete``; ``streaming`` while generated (its content is saved
    as it grows); ``stopped`` (the user stopped it), ``interrupted`` (the server died mid-answer:
    marked at the next start) or ``error`` — the partial text is kept in every case."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    reasoning: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    finish_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    prompt_tokens: Mapped[int | None] = mapped_column(default=None)
    completion_tokens: Mapped[int | None] = mapped_column(default=None)
    # PostgreSQL: backend pid of the live connection of the process streaming it (see
    # cove.store.db.Database.sweep); NULL on SQLite
    writer: Mapped[int | None] = mapped_column(default=None)
    # JSON of the chat extensions' results for an answer ({"search": {"sources", ...}}: the
    # APIs' "cove" field, cove.api.extensions), or NULL
    extensions: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    images: Mapped[list[MessageImage]] = relationship(
        order_by="MessageImage.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class MessageImage(Base):
    """An image sent with a user message, as :func:`cove.images.normalise` made it (PNG or
    JPEG ``data``, at most ``COVE_IMAGE_MAX_SIDE`` pixels a side); ``position`` orders a
    message's images. Deleted with its message (and so with its conversation and account)."""

    __tablename__ = "message_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    media_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column()
    height: Mapped[int] = mapped_column()
    digest: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoredResponse(Base):
    """A response of the OpenAI Responses API kept for ``GET /v1/responses/{id}`` and
    ``previous_response_id`` (``store: true``, the default). ``user_id`` is the owner (the API
    key's or web session's account); NULL means "local": made while the server was open
    (loopback, no account), readable only while it still is. ``body`` is the response object
    as JSON; ``input_items`` the JSON list of every input item of its context (those of the
    responses it continues, their outputs, then its own), so a chain never needs its ancestors.
    ``status`` mirrors the body's (``in_progress`` while generating)."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    model: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="in_progress")
    previous_response_id: Mapped[str | None] = mapped_column(String(64), default=None)
    body: Mapped[str] = mapped_column(Text)
    input_items: Mapped[str] = mapped_column(Text)
    writer: Mapped[int | None] = mapped_column(default=None)  # as Message.writer
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_responses_user_created", "user_id", "created_at"),)


class AuthThrottle(Base):
    """Failed sign-ins or API keys of one key (``scope`` ``account``, ``address`` or ``key``),
    shared by every process of a PostgreSQL database; ``last_at`` is Unix seconds."""

    __tablename__ = "auth_throttle"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[float] = mapped_column(Float)


class ServerSecret(Base):
    """A random secret every process of one database shares (the device-cookie HMAC key)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
