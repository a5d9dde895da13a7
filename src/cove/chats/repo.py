"""Conversation functions over a SQLAlchemy session. Every query is scoped by ``user_id``: a
conversation of someone else is reported exactly like one that does not exist (:class:`NotFound`).

The caller commits. Times in results are ISO-8601 UTC strings.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cove import __version__
from cove.errors import InvalidRequest, NotFound
from cove.images import Picture
from cove.store import responses as stored_responses
from cove.store.tables import ApiKey, Conversation, Message, MessageImage, User, utcnow

MAX_TITLE = 200


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="seconds") + "Z"


def conversation_dict(c: Conversation) -> dict[str, Any]:
    """``{"id", "title", "model", "created_at", "updated_at"}``."""
    return {"id": c.id, "title": c.title, "model": c.model,
            "created_at": _iso(c.created_at), "updated_at": _iso(c.updated_at)}


def message_dict(m: Message) -> dict[str, Any]:
    """A message as the web API and the export show it (``cove``: what the chat extensions
    gave the answer, e.g. ``{"search": {"sources": [...], ...}}``, or None); its ``images``
    (user messages) as ``{"media_type", "width", "height", "url"}`` with a ``data:`` URL."""
    return {
        "id": m.id, "role": m.role, "content": m.content, "reasoning": m.reasoning,
        "model": m.model, "status": m.status, "finish_reason": m.finish_reason,
        "prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens,
        "cove": json.loads(m.extensions) if m.extensions else None,
        "created_at": _iso(m.created_at), "updated_at": _iso(m.updated_at),
        "images": [{"media_type": i.media_type, "width": i.width, "height": i.height,
                    "url": picture(i).data_url()} for i in m.images],
    }


def picture(image: MessageImage) -> Picture:
    """A stored image as :class:`~cove.images.Picture`."""
    return Picture(image.data, image.media_type, image.width, image.height)


def clean_title(title: str) -> str:
    """A title trimmed to one line of at most 200 characters.

    Raises:
        InvalidRequest: the title is empty.
    """
    t = " ".join(title.split())[:MAX_TITLE]
    if not t:
        raise InvalidRequest("the title cannot be empty", param="title")
    return t


def auto_title(text: str, limit: int) -> str:
    """A conversation title from its first message: one line of at most ``limit`` characters,
    cut at a word boundary with an ellipsis ("…") when longer; "New chat" for blank text. A
    single word longer than ``limit`` is cut inside it."""
    words = " ".join(text.split())
    if not words:
        return "New chat"
    if len(words) <= limit:
        return clean_title(words)
    head = words[:limit - 1]
    if words[limit - 1] != " " and " " in head:
        head = head[:head.rindex(" ")]
    return clean_title(head.rstrip(" ,;:.-") + "…")


def list_conversations(s: Session, user_id: int, query: str | None = None) -> list[Conversation]:
    """``user_id``'s conversations, most recently updated first; ``query`` filters titles
    (case-insensitive substring)."""
    stmt = select(Conversation).where(Conversation.user_id == user_id)
    if query:
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Conversation.title.ilike(f"%{escaped}%", escape="\\"))
    return list(s.scalars(stmt.order_by(Conversation.updated_at.desc(), Conversation.id)))


def create_conversation(
    s: Session, user_id: int, title: str | None = None, model: str | None = None
) -> Conversation:
    """A new empty conversation of ``user_id``."""
    c = Conversation(id=secrets.token_urlsafe(12), user_id=user_id,
                     title=clean_title(title) if title else "New chat", model=model)
    s.add(c)
    s.flush()
    return c


def get_conversation(s: Session, user_id: int, conversation_id: str) -> Conversation:
    """``user_id``'s conversation ``conversation_id``.

    Raises:
        NotFound: no such conversation of this user.
    """
    c = s.get(Conversation, conversation_id)
    if c is None or c.user_id != user_id:
        raise NotFound("no such conversation")
    return c


def rename_conversation(s: Session, user_id: int, conversation_id: str, title: str) -> Conversation:
    """Set a conversation's title. Raises NotFound, InvalidRequest."""
    c = get_conversation(s, user_id, conversation_id)
    c.title = clean_title(title)
    return c


def delete_conversation(s: Session, user_id: int, conversation_id: str) -> None:
    """Hard-delete one conversation and its messages. Raises NotFound."""
    c = get_conversation(s, user_id, conversation_id)
    s.execute(delete(Conversation).where(Conversation.id == c.id))


def delete_all_conversations(s: Session, user_id: int) -> int:
    """Hard-delete every conversation of ``user_id``; returns how many there were."""
    result = s.execute(delete(Conversation).where(Conversation.user_id == user_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


def messages(s: Session, conversation: Conversation) -> list[Message]:
    """The conversation's messages in order."""
    return list(s.scalars(select(Message).where(Message.conversation_id == conversation.id)
                          .order_by(Message.id)))


def truncate_from(s: Session, conversation: Conversation, message_id: int) -> None:
    """Delete message ``message_id`` and every later one of the conversation (edit-and-resend,
    regenerate).

    Raises:
        NotFound: the message is not in this conversation.
    """
    m = s.get(Message, message_id)
    if m is None or m.conversation_id != conversation.id:
        raise NotFound("no such message in this conversation", param="edit_from")
    s.execute(delete(Message).where(Message.conversation_id == conversation.id,
                                    Message.id >= message_id))


def add_message(s: Session, conversation: Conversation, role: str, content: str,
                images: list[Picture] | None = None, **fields: Any) -> Message:
    """Append a message (with its normalised ``images``) and touch the conversation's
    ``updated_at``. A ``streaming`` one records the session's ``writer`` (the process's id on
    PostgreSQL, :meth:`cove.store.db.Database.sweep`)."""
    if fields.get("status") == "streaming":
        fields.setdefault("writer", s.info.get("writer"))
    m = Message(conversation_id=conversation.id, role=role, content=content, **fields)
    m.images = [MessageImage(position=k, media_type=p.media_type, width=p.width,
                             height=p.height, digest=p.digest, data=p.data)
                for k, p in enumerate(images or [])]
    s.add(m)
    conversation.updated_at = utcnow()
    s.flush()
    return m


def export_user(s: Session, user: User) -> dict[str, Any]:
    """Everything Cove stores about ``user``, as one JSON-ready object: the account (without the
    password hash), API keys (name, prefix, dates; never the key), every conversation with
    its messages, and every stored Responses API response with its input items."""
    convs = list(s.scalars(select(Conversation).where(Conversation.user_id == user.id)
                           .order_by(Conversation.created_at, Conversation.id)))
    keys = s.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
    return {
        "format": "cove-export", "version": 1, "cove_version": __version__,
        "exported_at": _iso(utcnow()),
        "account": {"id": user.id, "email": user.email, "role": user.role,
                    "created_at": _iso(user.created_at)},
        "api_keys": [{"id": k.id, "name": k.name, "prefix": k.prefix,
                      "created_at": _iso(k.created_at), "last_used_at": _iso(k.last_used_at)}
                     for k in keys],
        "conversations": [
            {**conversation_dict(c), "messages": [message_dict(m) for m in messages(s, c)]}
            for c in convs
        ],
        "responses": stored_responses.export(s, user.id),
    }


def purge_older_than(s: Session, days: int) -> int:
    """Delete every conversation (of any user) not updated for ``days`` days; returns how many.
    ``days`` 0 deletes nothing."""
    if days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    result = s.execute(delete(Conversation).where(Conversation.updated_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
