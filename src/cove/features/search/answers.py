"""Answers with sources: the ``cove.search`` extension of chat requests.

Request: ``"cove": {"search": {"collections": [id or name, ...], "packs": true or [name, ...],
"limit": 5}}`` (at least one of ``collections`` and ``packs``; ``packs: true`` searches every
knowledge pack; packs need no account). The passages best matching the last user message are
put into the prompt as numbered sources (a system message ahead of the conversation, merged
with the request's own system message), and the response carries ``"cove": {"search":
{"query", "sources": [{"index", "document", "document_id", "collection_id", "page", "heading",
"snippet", "chunk_id", "score"}]}}`` (a pack's passage also has ``kind: "pack"``, ``pack``,
``pack_title``, ``date``, ``path`` and ``url``, the article served offline; its ``document``
is the article title) — the list is what was retrieved, never parsed from the model's text. A
non-streamed reply also says which ``[n]`` markers the model wrote: ``cited`` (numbers of
listed sources) and ``invalid_citations`` (numbers with no such source).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Annotated, Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cove.chat import ChatMessage, ChatRequest
from cove.errors import InvalidRequest, NotFound, Unauthorized
from cove.features.search import packs as pack_search
from cove.features.search import service
from cove.store.db import Database

PACK_KEYS = ("kind", "pack", "pack_title", "date", "path", "url")
INSTRUCTIONS = ("Answer the user's question using the numbered sources below. Cite the sources "
                "you use as [1], [2]. If the sources do not contain the answer, say so.")


class SearchField(BaseModel):
    """The value of ``cove.search``."""

    model_config = ConfigDict(extra="forbid")

    collections: list[int | str] = Field(default_factory=list, max_length=100)
    packs: bool | Annotated[list[str], Field(max_length=100)] = False
    limit: int = Field(5, ge=1, le=20)


def sources_prompt(hits: list[dict[str, Any]]) -> str:
    """The system text listing ``hits`` as numbered sources."""
    lines = [INSTRUCTIONS, ""]
    for i, h in enumerate(hits, start=1):
        where = h["document"] + (f", page {h['page']}" if h["page"] else "") + (
            f", {h['heading']}" if h["heading"] else "") + (
            f", {h['pack_title']} {h['date']}".rstrip() if h.get("kind") == "pack" else "")
        lines.append(f"[{i}] ({where})\n{h['text']}\n")
    return "\n".join(lines)


def retrieve(db: Database, user_id: int | None, field: SearchField,
             query: str) -> list[dict[str, Any]]:
    """The passages for ``query`` in the named collections and packs (blocking)."""
    with db.session() as s:
        ids = []
        for ref in field.collections:
            assert user_id is not None  # search_extension: collections need an account
            if isinstance(ref, int):
                ids.append(ref)
                continue
            c = service.find_collection(s, user_id, ref)
            if c is None:
                raise NotFound(f"collection {ref!r} not found", param="cove.search.collections")
            ids.append(c.id)
        hits = service.search(s, user_id or 0, ids, query, limit=field.limit) if ids else []
        if field.packs:
            names = None if field.packs is True else list(field.packs)
            hits += pack_search.search_packs(s, query, names, limit=field.limit)
        return sorted(hits, key=lambda h: -h["score"])[:field.limit]


def with_sources(req: ChatRequest, hits: list[dict[str, Any]]) -> ChatRequest:
    """``req`` with the sources as (or added to the front of) its system message."""
    if not hits:
        return req
    prompt = sources_prompt(hits)
    messages = list(req.messages)
    if messages and messages[0].role == "system":
        messages[0] = dataclasses.replace(messages[0],
                                          content=messages[0].content + "\n\n" + prompt)
    else:
        messages.insert(0, ChatMessage("system", prompt))
    return dataclasses.replace(req, messages=messages)


async def search_extension(request: Request, value: Any,
                           req: ChatRequest) -> tuple[ChatRequest, dict[str, Any]]:
    """The ``cove.search`` extension (see the module docstring).

    Raises:
        InvalidRequest: a malformed value, or no user message to search for.
        Unauthorized: the caller is not a signed-in user (or API key owner).
        NotFound: a collection that is not the caller's.
    """
    try:
        field = SearchField.model_validate(value)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidRequest(f"cove.search: {err['msg']}",
                             param="cove.search" + (f".{where}" if where else "")) from e
    if not field.collections and not field.packs:
        raise InvalidRequest("cove.search: name collections or packs to search",
                             param="cove.search.collections")
    user_id = getattr(request.state, "user_id", None)
    if user_id is None and field.collections:
        raise Unauthorized("searching collections needs an account's API key or session")
    query = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
    if not query.strip():
        raise InvalidRequest("cove.search needs a user message to search for", param="messages")
    hits = await asyncio.to_thread(retrieve, request.app.state.db, user_id, field, query)
    sources = [{"index": i, "document": h["document"], "document_id": h["document_id"],
                "collection_id": h["collection_id"], "page": h["page"],
                "heading": h["heading"], "snippet": h["snippet"], "chunk_id": h["chunk_id"],
                "score": h["score"], **{k: h[k] for k in PACK_KEYS if k in h}}
               for i, h in enumerate(hits, start=1)]
    return with_sources(req, hits), {"query": query, "sources": sources}


def check_citations(result: dict[str, Any], answer: str) -> dict[str, Any]:
    """``result`` with the ``[n]`` markers of ``answer`` checked against its sources."""
    marks = sorted({int(n) for n in re.findall(r"\[(\d{1,3})\]", answer)})
    known = {s["index"] for s in result["sources"]}
    return {**result, "cited": [n for n in marks if n in known],
            "invalid_citations": [n for n in marks if n not in known]}
