"""Answers with sources: retrieved passages go into the prompt as numbered sources, and the
reply carries the source list — what was retrieved, never parsed from the model's text.

Used by the ``cove.search`` extension of chat requests (``/v1/chat/completions``, Ollama's
``/api/chat``, and the web app's ``/web/conversations/{id}/messages`` and ``/web/guest/chat``,
which the Search switch fills in) and by ``cove run --search`` (:func:`retrieve`).

Request (``cove.search``): ``{"collections": [id or name, ...] | true, "web": true,
"packs": ..., "limit": 5}`` — at least one source; ``collections: true`` means all of yours.
Result: ``{"query", "sources": [{"index", "kind", "title", "url", "snippet", "text", "score",
...the kind's fields}], "warnings": [...]}`` (see :mod:`.sources` for the fields; a web search
that failed is a warning and the answer goes on without it). Once the answer is complete,
:func:`check_citations` adds ``cited`` (the listed sources the answer's ``[n]`` markers name)
and ``invalid_citations`` (numbers with no such source: the model made them up). The answer's
text is left as the model wrote it; clients flag the invalid markers (the web app strikes them
through).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

from fastapi import Request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from cove.api.errors import loc_to_param
from cove.chat import ChatMessage, ChatRequest
from cove.errors import InvalidRequest
from cove.features.search import service
from cove.features.search.sources import Context, gather, label

INSTRUCTIONS = ("Answer the user's question using the numbered sources below. Cite the sources "
                "you use as [1], [2]. If the sources do not contain the answer, say so.")
# #name in a message: a collection of the user's (spaces in its name written as - or _)
_TAG = re.compile(r"(?<![\w#&])#(\w[\w.-]*)")
# [3], [1, 2], [1][2] (each bracket is read on its own); at most 3 digits per number
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


class SearchField(BaseModel):
    """The value of ``cove.search``."""

    model_config = ConfigDict(extra="forbid")

    collections: list[int | str] | StrictBool | None = None
    web: StrictBool = False
    packs: Any = None
    limit: int = Field(5, ge=1, le=20)

    @field_validator("collections")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        if isinstance(v, list) and not 1 <= len(v) <= 100:
            raise ValueError("collections lists 1 to 100 collections (or is true: all)")
        return v

    @model_validator(mode="after")
    def _some_source(self) -> SearchField:
        if not (self.collections or self.web or self.packs):
            raise ValueError("name at least one source: collections, web or packs")
        return self

    def wants(self) -> dict[str, Any]:
        return {"collections": self.collections or None, "web": self.web or None,
                "packs": self.packs or None}


def sources_prompt(passages: list[dict[str, Any]]) -> str:
    """The system text listing ``passages`` as numbered sources."""
    lines = [INSTRUCTIONS, ""]
    for i, p in enumerate(passages, start=1):
        lines.append(f"[{i}] ({label(p)})\n{p['text']}\n")
    return "\n".join(lines)


def with_sources(req: ChatRequest, passages: list[dict[str, Any]]) -> ChatRequest:
    """``req`` with the sources as (or added to the front of) its system message."""
    if not passages:
        return req
    prompt = sources_prompt(passages)
    messages = list(req.messages)
    if messages and messages[0].role == "system":
        messages[0] = dataclasses.replace(messages[0],
                                          content=messages[0].content + "\n\n" + prompt)
    else:
        messages.insert(0, ChatMessage("system", prompt))
    return dataclasses.replace(req, messages=messages)


def source_list(passages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reply's sources: each passage numbered from 1, as it went into the prompt."""
    return [{"index": i, **p} for i, p in enumerate(passages, start=1)]


async def retrieve(ctx: Context, wants: dict[str, Any], query: str, limit: int,
                   req: ChatRequest) -> tuple[ChatRequest, dict[str, Any]]:
    """Search for ``query`` and put what was found into ``req``: ``(request to run, result)``
    (result: ``{"query", "sources", "warnings"}``).

    Raises:
        InvalidRequest: an empty query, or a source that is off or unknown.
        Unauthorized: collections for a guest.
        NotFound: a collection that is not the caller's.
    """
    if not query.strip():
        raise InvalidRequest("searching needs a user message to search for", param="messages")
    found = await gather(ctx, wants, query, limit)
    return (with_sources(req, found.passages),
            {"query": query, "sources": source_list(found.passages), "warnings": found.warnings})


def tag_key(name: str) -> str:
    """How ``#name`` spells a collection name: lower case, spaces and ``_`` as ``-``."""
    return "-".join(name.lower().replace("_", " ").split())


def tagged(ctx: Context, text: str) -> tuple[list[int], str]:
    """The caller's collections named ``#name`` in ``text`` and the text without those tags
    (blocking; ``#words`` that name no collection stay). Guests have no collections."""
    if ctx.user_id is None or "#" not in text:
        return [], text
    with ctx.db.session() as s:
        known = {tag_key(c.name): c.id for c in service.list_collections(s, ctx.user_id)}
    found: list[int] = []

    def take(m: re.Match[str]) -> str:
        cid = known.get(tag_key(m.group(1).rstrip(".-")))
        if cid is None:
            return m.group(0)
        found.append(cid)
        return ""

    cleaned = " ".join(_TAG.sub(take, text).split())
    return list(dict.fromkeys(found)), cleaned


def context_of(request: Request) -> Context:
    state = request.app.state
    return Context(state.db, state.settings, getattr(request.state, "user_id", None))


async def search_extension(request: Request, value: Any,
                           req: ChatRequest) -> tuple[ChatRequest, dict[str, Any]]:
    """The ``cove.search`` extension (see the module docstring).

    Raises:
        InvalidRequest: a malformed value, or no user message to search for.
        Unauthorized: collections asked by a caller that is not a signed-in user (or API key
            owner).
        NotFound: a collection that is not the caller's.
    """
    try:
        field = SearchField.model_validate(value)
    except ValidationError as e:
        err = e.errors()[0]
        where = loc_to_param(tuple(err["loc"]))
        raise InvalidRequest(f"cove.search: {err['msg']}",
                             param="cove.search" + (f".{where}" if where else "")) from e
    query = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
    ctx = context_of(request)
    wants = field.wants()
    if field.collections is not None and field.collections is not False:
        ids, query = await asyncio.to_thread(tagged, ctx, query)
        if ids:  # #name narrows the search to the collections named
            wants["collections"] = ids
    try:
        return await retrieve(ctx, wants, query, field.limit, req)
    except InvalidRequest as e:
        if e.param in ("web", "packs", "collections"):
            e.param = f"cove.search.{e.param}"
        raise


def citations(answer: str, count: int) -> tuple[list[int], list[int]]:
    """The ``[n]`` markers of ``answer`` checked against ``count`` sources: ``(cited,
    invalid)``, each sorted and without repeats (``[1, 3]`` counts as 1 and 3)."""
    marks = sorted({int(n) for m in _MARKER.findall(answer) for n in m.split(",")})
    return [n for n in marks if 1 <= n <= count], [n for n in marks if not 1 <= n <= count]


def check_citations(result: dict[str, Any], answer: str) -> dict[str, Any]:
    """``result`` with the ``[n]`` markers of ``answer`` checked against its sources."""
    cited, invalid = citations(answer, len(result["sources"]))
    return {**result, "cited": cited, "invalid_citations": invalid}
