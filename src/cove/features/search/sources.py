"""The kinds of source an answer can draw on, and one search across them.

A passage (what a kind's search returns, best first) is a dict with at least ``kind``,
``title``, ``url`` (None for the user's documents), ``text`` (what goes into the prompt),
``snippet`` (the part that matched best, a substring of ``text`` with whitespace collapsed) and
``score``; each kind adds its own fields:

- ``"document"`` (your collections, :mod:`.service`): ``document``, ``document_id``,
  ``collection_id``, ``chunk_id``, ``page``, ``heading``, ``start``, ``end``;
- ``"web"`` (SearXNG, :mod:`.web`): ``engine``, ``fetched``;
- ``"pack"`` (knowledge packs): whatever the packs module sets (pack, article path, date).

:data:`KINDS` maps the request key (``collections``, ``web``, ``packs``) to a :class:`Kind`.
Results of several kinds are merged by reciprocal rank fusion of their ranks (k = 60, as the
hybrid index does), so each kind's best passages come first whatever its score scale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cove.config import Settings
from cove.errors import CoveError, InvalidRequest, NotFound, Unauthorized
from cove.features.search import packs, service, web
from cove.store.db import Database

RRF_K = 60


@dataclass
class Context:
    """Who searches: the database, the settings, the account (None for a guest)."""

    db: Database
    settings: Settings
    user_id: int | None


@dataclass
class Kind:
    """One kind of source. ``search(ctx, value, query, limit)`` gives passages, best first
    (``value``: what the request says under this kind's key). ``available(ctx)`` says what the
    caller may choose from (for the web app's Search switch), or None when the kind is off.
    ``guests``: whether callers without an account may use it. ``soft``: its failures
    (:class:`~cove.errors.WebSearchFailed` and the like) become warnings and the answer goes
    on without it; otherwise they are the request's error."""

    search: Callable[[Context, Any, str, int], Awaitable[list[dict[str, Any]]]]
    available: Callable[[Context], Awaitable[Any]]
    guests: bool = False
    soft: bool = False


@dataclass
class Found:
    """A search across kinds: the merged ``passages`` and ``warnings`` (failed soft kinds)."""

    passages: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- your collections --------------------------------------------------------------------------


def collection_ids(ctx: Context, refs: Any) -> list[int]:
    """Ids of the caller's collections named in ``refs`` (ids or names; None or ``True``: all
    of them). Raises NotFound for a name that is not one of theirs."""
    assert ctx.user_id is not None
    with ctx.db.session() as s:
        if refs is None or refs is True:
            return [c.id for c in service.list_collections(s, ctx.user_id)]
        ids = []
        for ref in refs:
            if isinstance(ref, int):
                ids.append(ref)
                continue
            c = service.find_collection(s, ctx.user_id, str(ref))
            if c is None:
                raise NotFound(f"collection {ref!r} not found", param="cove.search.collections")
            ids.append(c.id)
        return ids


def _search_collections(ctx: Context, refs: Any, query: str, limit: int) -> list[dict[str, Any]]:
    ids = collection_ids(ctx, refs)
    if not ids:
        return []
    assert ctx.user_id is not None
    with ctx.db.session() as s:
        hits = service.search(s, ctx.user_id, ids, query, limit=limit)
    return [{"kind": "document", "title": h["document"], "url": None, "text": h["text"],
             "snippet": web.snippet_of(h["text"], query), "score": h["score"],
             "document": h["document"], "document_id": h["document_id"],
             "collection_id": h["collection_id"], "chunk_id": h["chunk_id"], "page": h["page"],
             "heading": h["heading"], "start": h["start"], "end": h["end"]} for h in hits]


async def _collections(ctx: Context, refs: Any, query: str, limit: int) -> list[dict[str, Any]]:
    return await asyncio.to_thread(_search_collections, ctx, refs, query, limit)


async def _collections_available(ctx: Context) -> Any:
    if ctx.user_id is None:
        return None

    def names() -> list[dict[str, Any]]:
        assert ctx.user_id is not None
        with ctx.db.session() as s:
            return [{"id": c.id, "name": c.name}
                    for c in service.list_collections(s, ctx.user_id)]

    return await asyncio.to_thread(names)


# -- the web (SearXNG) -------------------------------------------------------------------------


async def _web(ctx: Context, value: Any, query: str, limit: int) -> list[dict[str, Any]]:
    return await web.search(ctx.settings, query, limit) if value else []


async def _web_available(ctx: Context) -> Any:
    return True if web.enabled(ctx.settings) else None


KINDS: dict[str, Kind] = {
    "collections": Kind(_collections, _collections_available),
    "web": Kind(_web, _web_available, guests=True, soft=True),
    # knowledge packs (:mod:`.packs`): value true (every pack) or a list of pack names
    "packs": Kind(packs.kind_search, packs.kind_available, guests=True),
}


async def available(ctx: Context) -> dict[str, Any]:
    """What the caller may search: ``{"collections": [{"id", "name"}] | None, "web": True |
    None, ...}`` (None: not offered to this caller)."""
    out = {}
    for name, kind in KINDS.items():
        out[name] = None if ctx.user_id is None and not kind.guests else await kind.available(ctx)
    return out


def merge(rankings: list[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """The best ``limit`` passages of several rankings by reciprocal rank fusion (stable:
    equal fused scores keep the order of ``rankings``)."""
    scored = [(1.0 / (RRF_K + rank), order, p) for order, ranking in enumerate(rankings)
              for rank, p in enumerate(ranking, start=1)]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [p for _, _, p in scored[:limit]]


async def gather(ctx: Context, wants: dict[str, Any], query: str, limit: int,
                 strict: bool = False) -> Found:
    """Search every kind named in ``wants`` (its key with a value that is not None/False) for
    ``query``, side by side; merge their passages. ``strict``: a soft kind's failure is an
    error too (the search API, where the caller asked for exactly that).

    Raises:
        InvalidRequest: an unknown kind, or one that is off on this server.
        Unauthorized: a kind that needs an account, for a guest.
        NotFound: a collection that is not the caller's.
        CoveError: a kind's own failure (soft kinds' failures are warnings instead).
    """
    chosen = {k: v for k, v in wants.items() if v is not None and v is not False}
    for name in chosen:
        kind = KINDS.get(name)
        if kind is None:
            raise InvalidRequest(f"{name} cannot be searched on this server", param=name)
        if ctx.user_id is None and not kind.guests:
            raise Unauthorized(f"searching {name} needs an account's API key or session")
    if "web" in chosen and not web.enabled(ctx.settings):
        raise InvalidRequest("web search is off on this server (COVE_SEARXNG_URL is not set)",
                             param="web")
    names = list(chosen)
    outcomes = await asyncio.gather(*(KINDS[n].search(ctx, chosen[n], query, limit)
                                      for n in names), return_exceptions=True)
    found = Found()
    rankings = []
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if KINDS[name].soft and not strict and isinstance(outcome, CoveError):
                found.warnings.append(f"{name} search failed: {outcome.message}")
                continue
            raise outcome
        rankings.append(outcome)
    found.passages = merge(rankings, limit)
    return found


def label(p: dict[str, Any]) -> str:
    """Where a passage is from, for the prompt: ``file.pdf, page 2, Heading`` or ``Title,
    example.org``."""
    if p["kind"] == "document":
        return p["document"] + (f", page {p['page']}" if p.get("page") else "") + (
            f", {p['heading']}" if p.get("heading") else "")
    parts = [p["title"]]
    if p.get("date"):
        parts.append(str(p["date"]))
    if p["kind"] == "web" and p.get("url"):
        parts.append(web.host_of(p["url"]))
    return ", ".join(parts)
