"""``/web`` routes for conversations: list/search, create, read, rename, delete, delete all,
send (streamed and saved), and guest chat (streamed, never saved).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictBool

from cove.api import extensions
from cove.api.openapi import EventStream
from cove.api.streams import client_of, until_admitted
from cove.auth.deps import DbDep, SettingsDep, UserDep, check_origin, get_db
from cove.chats import repo
from cove.chats.turns import TurnRequest, start_turn
from cove.engine.types import SamplingParams
from cove.errors import Forbidden
from cove.images import from_url
from cove.pipeline import ChatMessage, ChatPipeline, ChatRequest
from cove.web import sse

router = APIRouter(prefix="/web")


class Sampling(BaseModel):
    model: str | None = Field(None, max_length=200)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    seed: int | None = None

    def params(self) -> SamplingParams:
        base = SamplingParams()
        return SamplingParams(max_tokens=self.max_tokens, seed=self.seed,
                              temperature=base.temperature if self.temperature is None
                              else self.temperature)


class NewConversation(BaseModel):
    title: str | None = Field(None, max_length=1000)
    model: str | None = Field(None, max_length=200)


class Rename(BaseModel):
    title: str = Field(max_length=1000)


MAX_IMAGES = 8  # images in one message


class Send(Sampling):
    content: str | None = None
    edit_from: int | None = None
    regenerate: StrictBool = False
    images: list[str] = Field(default_factory=list, max_length=MAX_IMAGES)  # data: URLs
    cove: dict[str, Any] | None = Field(
        None, description="Cove's chat extensions, as on /v1/chat/completions: "
        "{\"search\": {...}} answers with sources (cove.api.extensions)")


class GuestMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    images: list[str] = Field(default_factory=list, max_length=MAX_IMAGES)  # data: URLs


def _images(urls: list[str], param: str) -> list[bytes]:
    """The bytes of ``data:`` image URLs (see :func:`cove.images.from_url`)."""
    return [from_url(u, f"{param}[{k}]") for k, u in enumerate(urls)]


class GuestChat(Sampling):
    messages: list[GuestMessage] = Field(min_length=1, max_length=500)
    cove: dict[str, Any] | None = None


def _pipeline(request: Request) -> ChatPipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


@router.get("/models")
def models(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Installed models and the default one (for the model picker)."""
    pipeline = _pipeline(request)
    entries = pipeline.registry.list()
    return {"default": settings.default_model,
            "data": [{"name": e.name, "description": e.description} for e in entries]
            + [{"name": n, "description": "remote"} for n in pipeline.remote.names()]}


@router.get("/conversations")
def list_conversations(user: UserDep, s: DbDep, q: str | None = None) -> dict[str, Any]:
    return {"data": [repo.conversation_dict(c) for c in repo.list_conversations(s, user.id, q)]}


@router.post("/conversations")
def create_conversation(body: NewConversation, user: UserDep, s: DbDep) -> dict[str, Any]:
    return repo.conversation_dict(repo.create_conversation(s, user.id, body.title, body.model))


@router.delete("/conversations")
def delete_all(request: Request, user: UserDep, s: DbDep) -> dict[str, Any]:
    n = repo.delete_all_conversations(s, user.id)
    s.commit()
    get_db(request).reclaim_space()
    return {"ok": True, "deleted": n}


@router.get("/conversations/{conversation_id}")
def get_conversation(conversation_id: str, user: UserDep, s: DbDep) -> dict[str, Any]:
    c = repo.get_conversation(s, user.id, conversation_id)
    return {**repo.conversation_dict(c),
            "messages": [repo.message_dict(m) for m in repo.messages(s, c)]}


@router.get("/conversations/{conversation_id}/messages")
def get_messages(conversation_id: str, user: UserDep, s: DbDep) -> dict[str, Any]:
    c = repo.get_conversation(s, user.id, conversation_id)
    return {"data": [repo.message_dict(m) for m in repo.messages(s, c)]}


@router.patch("/conversations/{conversation_id}")
def rename(conversation_id: str, body: Rename, user: UserDep, s: DbDep) -> dict[str, Any]:
    return repo.conversation_dict(repo.rename_conversation(s, user.id, conversation_id,
                                                           body.title))


@router.delete("/conversations/{conversation_id}")
def delete(conversation_id: str, request: Request, user: UserDep, s: DbDep) -> dict[str, Any]:
    repo.delete_conversation(s, user.id, conversation_id)
    s.commit()
    get_db(request).reclaim_space()
    return {"ok": True}


@router.post("/conversations/{conversation_id}/messages", response_class=EventStream)
async def send(conversation_id: str, body: Send, request: Request, user: UserDep,
               settings: SettingsDep) -> StreamingResponse:
    """Store the user message, then stream the answer as SSE (see :mod:`cove.web.sse`) while
    saving it. Client mistakes are JSON errors before any stream byte."""
    req = TurnRequest(body.content, body.model, body.edit_from, body.regenerate, body.params(),
                      _images(body.images, "images"))
    request.state.user_id = user.id  # whom the extensions (search) act for

    async def augment(chat: ChatRequest) -> tuple[ChatRequest, dict[str, Any] | None]:
        chat, results = await extensions.apply(request, body.cove, chat)
        return chat, results or None

    turn = await start_turn(get_db(request), _pipeline(request), user.id, conversation_id, req,
                            log_content=settings.log_content, augment=augment,
                            finish_extensions=lambda r, text: extensions.finish(request, r, text))
    try:  # a refusal before the answer has a slot is an HTTP 503 with Retry-After, not a 200
        await until_admitted(request, turn.stream)
    except BaseException:
        turn.refuse()
        raise
    start = {"conversation": turn.conversation, "user_message": turn.user_message,
             "assistant_message_id": turn.assistant_id, "model": turn.stream.model,
             **({"cove": turn.extensions} if turn.extensions else {})}

    async def body_iter() -> Any:
        try:
            async for chunk in sse.encode(start, turn.events(), lambda text: (
                    {"cove": turn.extensions} if turn.extensions else {})):
                yield chunk
        finally:
            turn.close()

    return StreamingResponse(body_iter(), media_type="text/event-stream", headers=sse.HEADERS)


@router.post("/guest/chat", response_class=EventStream)
async def guest_chat(body: GuestChat, request: Request, settings: SettingsDep) -> StreamingResponse:
    """Chat without an account: the browser sends the whole conversation each time; nothing is
    written to the database or the log."""
    check_origin(request)
    if not settings.guest_enabled:
        raise Forbidden("guest chat is turned off on this server; sign in")
    messages = [ChatMessage(m.role, m.content, images=_images(m.images, f"messages[{i}].images"))
                for i, m in enumerate(body.messages)]
    req, results = await extensions.apply(request, body.cove, ChatRequest(
        messages, body.params(), body.model, client=client_of(request)))
    stream = await _pipeline(request).start_chat(req)
    await until_admitted(request, stream)
    start = {"model": stream.model, **({"cove": results} if results else {})}

    async def body_iter() -> Any:
        try:
            async for chunk in sse.encode(start, stream, lambda text: (
                    {"cove": extensions.finish(request, results, text)} if results else {})):
                yield chunk
        finally:
            stream.cancel()

    return StreamingResponse(body_iter(), media_type="text/event-stream", headers=sse.HEADERS)
