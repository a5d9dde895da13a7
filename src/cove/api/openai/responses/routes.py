"""``/v1/responses`` routes (OpenAI's Responses API): parse, convert, run the pipeline, convert
back, and keep the response when ``store`` is true. No logic of their own.

Stored responses belong to the caller (:func:`cove.auth.deps.api_user_id`); another user's
response answers 404 as if it did not exist.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from cove.api.headers import tool_headers
from cove.api.openai.responses import convert, events
from cove.api.openai.responses.schemas import ResponseCreateRequest
from cove.api.openai.routes import SSE_HEADERS, PipelineDep
from cove.api.streams import client_of, collect_unless_disconnected, until_admitted
from cove.auth.deps import ApiUserDep, DbDep, get_db
from cove.errors import InvalidRequest
from cove.store import responses as store
from cove.store.db import Database

router = APIRouter(prefix="/v1")


def _context(db: Database, owner: int | None, previous: str | None) -> list[dict[str, Any]]:
    if previous is None:
        return []
    with db.session() as s:
        return store.context(s, owner, previous)


def _create(db: Database, response: dict[str, Any], items: list[dict[str, Any]],
            owner: int | None) -> None:
    with db.session() as s:
        store.create(s, response, items, owner)


def _saver(db: Database) -> Any:
    def save(response: dict[str, Any]) -> None:
        with db.session() as s:
            store.save(s, response)
    return save


@router.post("/responses", response_model=None)
async def create_response(body: ResponseCreateRequest, request: Request, pipeline: PipelineDep,
                          owner: ApiUserDep) -> Any:
    """Generate a response (``stream``: server-sent events); stored unless ``store`` is
    false. Client mistakes are JSON errors before any stream byte."""
    db = get_db(request)
    items = convert.normalize_input(body.input)
    context = await asyncio.to_thread(_context, db, owner, body.previous_response_id)
    req = dataclasses.replace(convert.to_chat_request(body, context, items),
                              client=client_of(request))
    stream = await pipeline.start_chat(req)
    if body.stream:
        await until_admitted(request, stream)
    response = events.base_response(body, convert.new_item_id("resp"), stream.model)
    if body.store:
        try:
            await asyncio.to_thread(_create, db, response, context + items, owner)
        except BaseException:
            stream.cancel()
            raise
    summary = bool(body.reasoning and (body.reasoning.summary or body.reasoning.generate_summary))
    run = events.ResponseRun(response, stream, summary=summary,
                             on_end=_saver(db) if body.store else None)
    if body.stream:
        return StreamingResponse((events.sse(e) async for e in run.events()),
                                 media_type="text/event-stream",
                                 headers={**SSE_HEADERS, **tool_headers(stream)})
    result = await collect_unless_disconnected(request, run)
    return JSONResponse(result if result is not None else {}, headers=tool_headers(stream))


@router.get("/responses/{response_id}")
def get_response(response_id: str, s: DbDep, owner: ApiUserDep,
                 stream: bool = False) -> dict[str, Any]:
    """A stored response (``include`` is accepted; replaying it as a stream is not)."""
    if stream:
        raise InvalidRequest("replaying a stored response as a stream is not supported",
                             param="stream")
    return store.get(s, owner, response_id)


@router.delete("/responses/{response_id}")
def delete_response(response_id: str, request: Request, s: DbDep,
                    owner: ApiUserDep) -> dict[str, Any]:
    """Hard-delete a stored response (its input items too)."""
    store.remove(s, owner, response_id)
    s.commit()
    get_db(request).reclaim_space()
    return {"id": response_id, "object": "response", "deleted": True}


@router.get("/responses/{response_id}/input_items")
def list_input_items(response_id: str, s: DbDep, owner: ApiUserDep, after: str | None = None,
                     limit: str = "20", order: str = "desc") -> dict[str, Any]:
    """A page of a stored response's input items: ``limit`` 1-100, ``order`` ``asc`` or
    ``desc`` (newest first, the default), ``after`` an item id."""
    if not (limit.isascii() and limit.isdigit() and len(limit) <= 3 and 1 <= int(limit) <= 100):
        raise InvalidRequest("limit must be an integer from 1 to 100", param="limit")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be 'asc' or 'desc'", param="order")
    return store.input_items(s, owner, response_id, after=after, limit=int(limit), order=order)
