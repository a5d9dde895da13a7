"""``/v1/arena``: battles, votes and the leaderboard over HTTP; ``/arena``: the page.

- ``POST /v1/arena/battles`` ``{"prompt", "models": [2-4 names], "blind": true,
  "max_tokens": 256, "temperature", "seed", "stream": true}``: streamed, server-sent events
  ``start`` ``{"battle_id", "blind", "contestants": [{"slot", "model"}]}`` (``model`` None
  when blind), then ``delta`` ``{"slot", "kind", "text"}`` and ``answer`` ``{"slot",
  "finish_reason", "usage"}`` as the answers come (side by side), then ``done``
  ``{"battle_id"}``. With ``stream: false``, the battle object with ``answers`` ``[{"slot",
  "model", "content", "finish_reason", "usage"}]``.
- ``GET /v1/arena/battles/{id}``; ``POST /v1/arena/battles/{id}/vote`` ``{"winner": "A" |
  "B" | "C" | "D" | "tie" | "bad"}``: the battle with every name shown.
- ``GET /v1/arena/leaderboard``: :func:`.battles.leaderboard`.

Guests may battle and vote (:func:`cove.auth.deps.api_or_guest`); a battle is its owner's
(another's is 404). Errors take OpenAI's shape.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cove.api.event_stream import HEADERS, sse, while_connected
from cove.api.openai.schemas import Int
from cove.api.streams import client_of, until_admitted
from cove.auth.deps import api_or_guest, api_user_id, get_db
from cove.errors import InvalidRequest
from cove.features.arena import battles
from cove.features.arena.service import Contestant, plan, run_battle, start
from cove.pipeline import ChatPipeline, ChatStream
from cove.web.pages import page

router = APIRouter(prefix="/v1/arena", dependencies=[Depends(api_or_guest)])
page_router = APIRouter()
STATIC = Path(__file__).parent / "static"
MAX_PROMPT_CHARS = 20_000


class BattleBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str
    models: list[str] = Field(max_length=16)
    blind: StrictBool = True
    max_tokens: Int = Field(256, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0, le=2)
    seed: Int | None = None
    stream: StrictBool = True


class VoteBody(BaseModel):
    winner: str = Field(max_length=8)


def _pipeline(request: Request) -> ChatPipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


def _store(request: Request, fn: Any, *args: Any) -> Any:
    with get_db(request).session() as s:
        return fn(s, *args)


class _Answers:
    """The texts of a battle's answers as they stream, by slot."""

    def __init__(self, contestants: list[Contestant]) -> None:
        self.text = {c.slot: [] for c in contestants}  # type: dict[str, list[str]]
        self.ends: dict[str, dict[str, Any]] = {}

    def take(self, e: dict[str, Any]) -> None:
        if e["type"] == "delta" and e["kind"] == "content":
            self.text[e["slot"]].append(e["text"])
        elif e["type"] == "answer":
            self.ends[e["slot"]] = e

    def texts(self) -> list[str]:
        return ["".join(parts) for parts in self.text.values()]


@router.post("/battles")
async def new_battle(body: BattleBody, request: Request) -> Any:
    """Start a battle (module docstring); client mistakes and a full queue are HTTP errors
    before any event."""
    prompt = body.prompt.strip()
    if not prompt:
        raise InvalidRequest("the prompt is empty", param="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequest(f"the prompt may be at most {MAX_PROMPT_CHARS} characters",
                             param="prompt")
    pipeline = _pipeline(request)
    contestants = plan(pipeline, body.models, blind=body.blind, max_tokens=body.max_tokens,
                       temperature=body.temperature, seed=body.seed)
    user_id = api_user_id(request)
    names = [c.name for c in contestants]
    battle_id = await asyncio.to_thread(
        lambda: _store(request, battles.create, user_id, names, body.blind, prompt).id)
    streams: list[ChatStream] = []
    try:
        streams = await start(pipeline, contestants, prompt, client_of(request))
        await until_admitted(request, *streams)
    except BaseException:
        await asyncio.to_thread(_store, request, battles.finish, battle_id, None)
        raise
    shown = [{"slot": c.slot, "model": None if body.blind else c.name} for c in contestants]
    answers = _Answers(contestants)

    async def events() -> Any:
        finished = False
        try:
            yield {"type": "start", "battle_id": battle_id, "blind": body.blind,
                   "contestants": shown}
            async for e in run_battle(contestants, streams):
                answers.take(e)
                yield e
            finished = True
            await asyncio.to_thread(_store, request, battles.finish, battle_id,
                                    answers.texts())
            yield {"type": "done", "battle_id": battle_id}
        finally:
            if not finished:
                await asyncio.to_thread(_store, request, battles.finish, battle_id, None)

    if body.stream:
        return StreamingResponse(sse(events()), media_type="text/event-stream",
                                 headers=HEADERS)

    async def whole() -> None:
        async for _ in events():
            pass

    await while_connected(request, whole())
    out = {"id": battle_id, "object": "arena.battle", "blind": body.blind, "status": "done",
           "winner": None, "contestants": shown, "answers": []}
    for c, text in zip(contestants, answers.texts(), strict=True):
        end = answers.ends.get(c.slot, {})
        out["answers"].append({"slot": c.slot, "model": None if body.blind else c.name,
                               "content": text, "finish_reason": end.get("finish_reason"),
                               "usage": end.get("usage")})
    return out


@router.get("/battles/{battle_id}")
def get_battle(battle_id: str, request: Request) -> dict[str, Any]:
    return battles.as_dict(_store(request, battles.get, api_user_id(request), battle_id))


@router.post("/battles/{battle_id}/vote")
def vote(battle_id: str, body: VoteBody, request: Request) -> dict[str, Any]:
    """Vote; the answer names every contestant."""
    with get_db(request).session() as s:
        return battles.as_dict(battles.vote(s, api_user_id(request), battle_id, body.winner))


@router.get("/leaderboard")
def leaderboard(request: Request) -> dict[str, Any]:
    return _store(request, battles.leaderboard)  # type: ignore[no-any-return]


@page_router.get("/arena", include_in_schema=False)
def arena_page() -> Response:
    """The Arena page of the web app."""
    return page(STATIC / "arena.html")


@page_router.get("/arena/arena.js", include_in_schema=False)
def arena_script() -> Response:
    return FileResponse(STATIC / "arena.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})
