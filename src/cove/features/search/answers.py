"""Answers with sources: the ``cove.search`` extension of chat requests.

Request: ``"cove": {"search": {"collections": [id or name, ...], "limit": 5}}``. The passages
best matching the last user message are put into the prompt as numbered sources (a system
message ahead of the conversation, merged with the request's own system message), and the
response carries ``"cove": {"search": {"query", "sources": [{"index", "document",
"document_id", "collection_id", "page", "heading", "snippet", "chunk_id", "score"}]}}`` — the
list is what was retrieved, never parsed from the model's text. A non-streamed reply also says
which ``[n]`` markers the model wrote: ``cited`` (numbers of listed sources) and
``invalid_citations`` (numbers with no such source).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cove.chat import ChatMessage, ChatRequest
from cove.errors import InvalidRequest, NotFound, Unauthorized
from cove.features.search import service
from cove.store.db import Database

INSTRUCTIONS = ("Answer the user's question using the numbered sources below. Cite the sources "
                "you use as [1], [2]. If the sources do not contain the answer, say so.")


class SearchField(BaseModel):
    """The value of ``cove.search``."""

    model_config = ConfigDict(extra="forbid")

    collections: list[int | str] = Field(min_length=1, max_length=100)
    limit: int = Field(5, ge=1, le=20)


def sources_prompt(hits: list[dict[str, Any]]) -> str:
    """The system text listing ``hits`` as numbered sources."""
    lines = [INSTRUCTIONS, ""]
    for i, h in enumerate(hits, start=1):
        where = h["document"] + (f", page {h['page']}" if h["page"] else "") + (
            f", {h['heading']}" if h["heading"] else "")
        lines.append(f"[{i}] ({where})\n{h['text']}\n")
    return "\n".join(lines)


def retrieve(db: Database, user_id: int, field: SearchField, query: str) -> list[dict[str, Any]]:
    """The passages for ``query`` in the named collections (blocking)."""
    with db.session() as s:
        ids = []
        for ref in field.collections:
            if isinstance(ref, int):
                ids.append(ref)
                continue
            c = service.find_collection(s, user_id, ref)
            if c is None:
                raise NotFound(f"collection {ref!r} not found", param="cove.search.collections")
            ids.append(c.id)
        return service.search(s, user_id, ids, query, limit=field.limit)


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
    user_id = getattr(request.state, "user_id", None)
    if user_id is None:
        raise Unauthorized("searching collections needs an account's API key or session")
    query = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
    if not query.strip():
        raise InvalidRequest("cove.search needs a user message to search for", param="messages")
    hits = await asyncio.to_thread(retrieve, request.app.state.db, user_id, field, query)
    sources = [{"index": i, "document": h["document"], "document_id": h["document_id"],
                "collection_id": h["collection_id"], "page": h["page"],
                "heading": h["heading"], "snippet": h["snippet"], "chunk_id": h["chunk_id"],
                "score": h["score"]} for i, h in enumerate(hits, start=1)]
    return with_sources(req, hits), {"query": query, "sources": sources}


def check_citations(result: dict[str, Any], answer: str) -> dict[str, Any]:
    """``result`` with the ``[n]`` markers of ``answer`` checked against its sources."""
    marks = sorted({int(n) for n in re.findall(r"\[(\d{1,3})\]", answer)})
    known = {s["index"] for s in result["sources"]}
    return {**result, "cited": [n for n in marks if n in known],
            "invalid_citations": [n for n in marks if n not in known]}
