"""``/v1/ideas``: brainstorms, follow-ups and saved boards over HTTP; ``/ideas``: the page.

- ``POST /v1/ideas`` ``{"goal", "constraints", "criteria", "n", "model", "seed",
  "max_tokens", "score_samples", "stream"}``: with ``stream`` (the default) server-sent events
  ``start``, ``candidate``, ``score``, ``group``, ``done`` (:mod:`.service`); else the ``done``
  object (``ideas``: ranked ``{"id", "rank", "title", "pitch", "why", "group", "group_id",
  "score", "scores", "lens"}``). A signed-in caller's result is saved as a board
  (``board_id`` in ``done``); a guest's is not.
- ``POST /v1/ideas/followups`` ``{"action": "expand"|"combine"|"premortem"|"more", "goal",
  "constraints", "ideas", "board_id"}``: :func:`.followups.follow_up` (kept on the board when
  one of the caller's is named).
- ``GET /v1/ideas/boards``, ``GET``/``DELETE /v1/ideas/boards/{id}``,
  ``GET /v1/ideas/boards/{id}/markdown`` (a download): the caller's boards (an account needed;
  another user's board is 404).

Guests may brainstorm (:func:`cove.auth.deps.api_or_guest`). Errors take OpenAI's shape.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cove.api.event_stream import HEADERS, sse, while_connected
from cove.api.openai.schemas import Int
from cove.api.streams import client_of
from cove.auth.deps import api_or_guest, api_user_id, get_db
from cove.errors import Unauthorized
from cove.features.ideas import boards
from cove.features.ideas.followups import follow_up
from cove.features.ideas.service import Brainstorm, brainstorm, check, collect
from cove.pipeline import ChatPipeline
from cove.web.pages import page

router = APIRouter(prefix="/v1/ideas", dependencies=[Depends(api_or_guest)])
page_router = APIRouter()
STATIC = Path(__file__).parent / "static"


class IdeasBody(BaseModel):
    """Body of ``POST /v1/ideas``; limits are checked by :func:`.service.check` (so the
    message names them)."""

    model_config = ConfigDict(extra="ignore")

    goal: str
    constraints: list[str] | str = Field(default_factory=list)
    criteria: list[str] | str = Field(default_factory=list)
    n: Int = 12
    model: str | None = Field(None, max_length=200)
    seed: Int | None = None
    max_tokens: Int = 360
    score_samples: Int = 2
    stream: StrictBool = True


class FollowupBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action: str
    goal: str = Field(max_length=2000)
    constraints: list[str] = Field(default_factory=list, max_length=10)
    ideas: list[dict[str, Any]] = Field(max_length=2)
    model: str | None = Field(None, max_length=200)
    seed: Int | None = None
    max_tokens: Int = Field(400, ge=32, le=4096)
    board_id: Int | None = None


def _pipeline(request: Request) -> ChatPipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


def _lines(value: list[str] | str) -> list[str]:
    return value.splitlines() if isinstance(value, str) else value


def _owner(request: Request) -> int:
    user_id = api_user_id(request)
    if user_id is None:
        raise Unauthorized("boards are kept for signed-in users only: sign in or use an "
                           "API key")
    return user_id


def _save(request: Request, user_id: int, result: dict[str, Any]) -> int:
    with get_db(request).session() as s:
        return boards.save(s, user_id, result).id


async def _with_board(request: Request, events: Any) -> Any:
    """The brainstorm's events, its ``done`` saved as a board for a signed-in caller."""
    user_id = api_user_id(request)
    async for e in events:
        if e["type"] == "done" and user_id is not None:
            e = {**e, "board_id": await asyncio.to_thread(_save, request, user_id, e)}
        yield e


@router.post("")
async def ideas(body: IdeasBody, request: Request) -> Any:
    """Brainstorm (module docstring). Client mistakes (limits, an unknown model) are JSON
    errors before any event."""
    req = check(Brainstorm(body.goal, _lines(body.constraints), _lines(body.criteria), body.n,
                           body.model, body.seed, body.max_tokens, body.score_samples,
                           client_of(request)))
    events = _with_board(request, brainstorm(_pipeline(request), req))
    first = await events.__anext__()  # the model resolved: errors so far are HTTP errors

    async def stream() -> Any:
        yield first
        async for e in events:
            yield e

    if body.stream:
        return StreamingResponse(sse(stream()), media_type="text/event-stream",
                                 headers=HEADERS)
    try:
        result = await while_connected(request, collect(stream()))
    finally:
        await events.aclose()
    return {"object": "ideas.result", **(result or {})}


@router.post("/followups")
async def followups(body: FollowupBody, request: Request) -> Any:
    """One follow-up; kept on ``board_id`` when that is one of the caller's boards."""
    if body.board_id is not None:  # 401/404 before generating
        user_id = _owner(request)
        with get_db(request).session() as s:
            boards.get(s, user_id, body.board_id)
    out = await while_connected(request, follow_up(
        _pipeline(request), body.action, body.goal, body.ideas, constraints=body.constraints,
        model=body.model, seed=body.seed, max_tokens=body.max_tokens,
        client=client_of(request)))
    if out is None:
        return {}
    if body.board_id is not None:
        entry = {**out, "titles": [str(i.get("title", "")) for i in body.ideas]}
        with get_db(request).session() as s:
            boards.add_followup(s, _owner(request), body.board_id, entry)
    return {"object": "ideas.followup", **out}


@router.get("/boards")
def list_boards(request: Request) -> dict[str, Any]:
    user_id = _owner(request)
    with get_db(request).session() as s:
        return {"boards": [boards.as_dict(b, full=False) for b in boards.listing(s, user_id)]}


@router.get("/boards/{board_id}")
def get_board(board_id: int, request: Request) -> dict[str, Any]:
    user_id = _owner(request)
    with get_db(request).session() as s:
        return boards.as_dict(boards.get(s, user_id, board_id))


@router.delete("/boards/{board_id}")
def delete_board(board_id: int, request: Request) -> dict[str, Any]:
    user_id = _owner(request)
    with get_db(request).session() as s:
        boards.delete(s, user_id, board_id)
    return {"ok": True, "deleted": board_id}


@router.get("/boards/{board_id}/markdown")
def board_markdown(board_id: int, request: Request) -> Response:
    """The board as a Markdown file (``Content-Disposition: attachment``)."""
    user_id = _owner(request)
    with get_db(request).session() as s:
        text = boards.markdown(boards.get(s, user_id, board_id))
    return Response(text, media_type="text/markdown; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="ideas-{board_id}.md"',
        "Cache-Control": "no-store"})


@page_router.get("/ideas", include_in_schema=False)
def ideas_page() -> Response:
    """The Ideas page of the web app."""
    return page(STATIC / "ideas.html")


@page_router.get("/ideas/ideas.js", include_in_schema=False)
def ideas_script() -> Response:
    from fastapi.responses import FileResponse

    return FileResponse(STATIC / "ideas.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})
