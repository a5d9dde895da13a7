"""Run one chat turn of a stored conversation, saving as it goes.

Order of events, so that nothing acknowledged is ever lost:

1. read the history and build the request (nothing written yet);
2. admit the generation with the pipeline (client mistakes such as an over-long prompt raise
   here, before anything is stored or streamed);
3. commit the user message and an empty assistant message with status ``streaming`` — only then
   is anything sent to the client;
4. while streaming, every piece of the answer is saved *before* it is passed on to be sent, so
   whatever a client has received is already committed, even if the process is then killed.
   Saves are batched, not one per token: they start at most every :data:`SAVE_INTERVAL`
   (50 ms) and one at a time (in a worker thread); the pieces that arrive meanwhile wait and the
   next save takes them all. So a piece reaches the client at most about 50 ms plus one save
   later than it would unsaved, generation is never slowed, and the cost is bounded (at most 20
   saves a second per answer, whatever the token rate). At the end the answer
   is saved with status ``complete`` and the token counts. If the client goes away (stop button)
   it is saved as ``stopped``; on a failure as ``error``; if the process dies, the next start
   marks it ``interrupted`` (:func:`cove.store.db.open_database`). Committed means in SQLite's
   WAL with ``synchronous=NORMAL``: it survives the process being killed; a power cut may lose
   the last commits (SQLite's documented trade-off for WAL mode), PostgreSQL keeps them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select, update

from cove.chats import repo
from cove.engine.types import SamplingParams
from cove.errors import EngineFailure, InvalidRequest
from cove.images import Picture, check_count, normalise
from cove.pipeline import ChatDelta, ChatDone, ChatMessage, ChatPipeline, ChatRequest, ChatStream
from cove.store.db import Database
from cove.store.tables import Conversation, Message, utcnow

log = logging.getLogger("cove.chats")

SAVE_INTERVAL = 0.05  # seconds: saves of a streaming answer start at most this often
TITLE_CHARS = 60
MAX_CONTENT = 200_000

# (the request to run) -> (the request with what it adds, e.g. sources; a JSON object kept with
# the answer as ``messages.extensions``, or None): the chat extensions (cove.api.extensions)
Augment = Callable[[ChatRequest], Awaitable[tuple[ChatRequest, dict[str, Any] | None]]]
# (that object, the complete answer's text) -> the object to keep with the complete answer
Finish = Callable[[dict[str, Any], str], dict[str, Any]]


@dataclass
class TurnRequest:
    """What the user asked for: a new user message ``content`` (None with ``regenerate``),
    optionally replacing message ``edit_from`` and everything after it."""

    content: str | None
    model: str | None = None
    edit_from: int | None = None
    regenerate: bool = False
    params: SamplingParams = SamplingParams()
    images: list[bytes] = field(default_factory=list)  # as sent; normalised before storing


@dataclass
class Turn:
    """An admitted, stored turn: iterate :meth:`events` to stream and save the answer."""

    db: Database
    stream: ChatStream
    conversation: dict[str, Any]
    user_message: dict[str, Any] | None
    assistant_id: int
    log_content: bool = False
    extensions: dict[str, Any] | None = None  # what augment gave the answer, if anything
    finish_extensions: Finish | None = None

    def __post_init__(self) -> None:
        self._parts: dict[str, list[str]] = {"content": [], "reasoning": []}  # received
        self._shown = {"content": 0, "reasoning": 0}  # how many of them were passed on
        self._finished = False

    def _pass_on(self, delta: ChatDelta) -> ChatDelta:
        self._shown[delta.kind] += 1
        return delta

    async def events(self) -> AsyncIterator[ChatDelta | ChatDone]:
        """The pipeline's events, each delta yielded only once a save covering it has been
        committed (batched: see the module docstring)."""
        parts = self._parts
        source = self.stream.__aiter__()
        fetch: asyncio.Future[ChatDelta | ChatDone] | None = None
        save: asyncio.Future[None] | None = None
        saving: list[ChatDelta] = []  # covered by the save that runs
        waiting: list[ChatDelta] = []  # arrived since it started
        done: ChatDone | None = None
        loop = asyncio.get_running_loop()
        last_save = -SAVE_INTERVAL
        try:
            fetch = asyncio.ensure_future(anext(source))
            while done is None or save is not None:
                delay = None
                if save is None and waiting and done is None:
                    delay = last_save + SAVE_INTERVAL - loop.time()
                    if delay <= 0:
                        saving, waiting, delay = waiting, [], None
                        values = self._values("streaming")
                        save = asyncio.ensure_future(asyncio.to_thread(self._write, values))
                        last_save = loop.time()
                await asyncio.wait([f for f in (fetch, save) if f is not None], timeout=delay,
                                   return_when=asyncio.FIRST_COMPLETED)
                if save is not None and save.done():
                    save.result()
                    save = None
                    for delta in saving:
                        yield self._pass_on(delta)
                    saving = []
                if fetch is not None and fetch.done():
                    try:
                        item = fetch.result()  # an engine error ends the loop here
                    except StopAsyncIteration:
                        raise EngineFailure("the answer ended without finishing") from None
                    fetch = None
                    if isinstance(item, ChatDelta):
                        parts[item.kind].append(item.text)
                        waiting.append(item)
                        fetch = asyncio.ensure_future(anext(source))
                    else:
                        done = item
            assert done is not None
            self._write(self._values("complete", done))
            for delta in waiting:  # a stop now still makes it "stopped" (close())
                yield self._pass_on(delta)
            self._finished = True
            if self.log_content:
                log.info("answer in %s: %r", self.conversation["id"], "".join(parts["content"]))
            yield done
        except Exception:
            if not self._finished:
                self._finished = True
                self._write(self._values("error"))
                for delta in saving + waiting:  # saved just now: the client may see them
                    yield self._pass_on(delta)
            raise
        finally:
            if fetch is not None:
                fetch.cancel()
            self.close()

    def refuse(self) -> None:
        """The generation was refused before it had a slot (the queue deadline, another
        client's fair share): the user message stays, the empty answer is saved as
        ``error``. Idempotent."""
        self.stream.cancel()
        if not self._finished:
            self._finished = True
            self._write(self._values("error"))

    def close(self) -> None:
        """Stop generating; an unfinished answer is saved as ``stopped``, with the text passed
        on to the client so far (not what arrived after it). Synchronous (safe in ``finally``
        blocks of cancelled tasks) and idempotent."""
        self.stream.cancel()
        if not self._finished:
            self._finished = True
            self._write(self._values("stopped", shown_only=True))

    def _values(self, status: str, done: ChatDone | None = None,
                shown_only: bool = False) -> dict[str, Any]:
        """The message's columns to save: its text (all that arrived, or with ``shown_only``
        what was passed on), ``status``, and with ``done`` the finish reason and counts."""
        def text(kind: str) -> str:
            pieces = self._parts[kind]
            return "".join(pieces[:self._shown[kind]] if shown_only else pieces)

        values: dict[str, Any] = {"content": text("content"), "reasoning": text("reasoning"),
                                  "status": status, "updated_at": utcnow()}
        if done is not None:
            if self.extensions is not None and self.finish_extensions is not None:
                self.extensions = self.finish_extensions(self.extensions, values["content"])
                values["extensions"] = json.dumps(self.extensions, ensure_ascii=False)
            values |= {"finish_reason": done.finish_reason,
                       "prompt_tokens": done.usage.prompt_tokens,
                       "completion_tokens": done.usage.completion_tokens}
        elif shown_only:  # may replace a complete save whose last pieces were never sent
            values |= {"finish_reason": None, "completion_tokens": None}
        return values

    def _write(self, values: dict[str, Any]) -> None:
        """Commit ``values`` (from :meth:`_values`) to the assistant message; a ``streaming``
        save never overwrites a final state (it may land after one, from its thread)."""
        stmt = update(Message).where(Message.id == self.assistant_id)
        if values["status"] == "streaming":
            stmt = stmt.where(Message.status == "streaming")
        with self.db.engine.begin() as conn:  # Core, no ORM session: a third of the CPU
            conn.execute(stmt.values(**values))


def _history(s: Any, conv: Conversation, req: TurnRequest, pictures: list[Picture],
             max_images: int) -> tuple[list[ChatMessage], int | None]:
    """The messages to send (the new one with ``pictures``) and the id from which stored
    messages are replaced (or None). Only the latest ``max_images`` images of the
    conversation are sent (:func:`_latest_images`), so a long chat with pictures never
    outgrows the per-request limit."""
    msgs = repo.messages(s, conv)
    cut: int | None = None
    if req.edit_from is not None:
        target = next((m for m in msgs if m.id == req.edit_from), None)
        if target is None or target.role != "user":
            raise InvalidRequest("edit_from must be a user message of this conversation",
                                 param="edit_from")
        cut = target.id
    elif req.regenerate:
        last_user = max((m.id for m in msgs if m.role == "user"), default=None)
        if last_user is None:
            raise InvalidRequest("there is nothing to regenerate", param="regenerate")
        cut = next((m.id for m in msgs if m.id > last_user), None)
    kept = [m for m in msgs if cut is None or m.id < cut]
    history = [ChatMessage(m.role, m.content, images=[i.data for i in m.images])
               for m in kept if m.role in ("system", "user")
               or (m.role == "assistant" and m.content)]
    if not req.regenerate:
        if not pictures and (not req.content or not req.content.strip()):
            raise InvalidRequest("the message is empty", param="content")
        if len(req.content or "") > MAX_CONTENT:
            raise InvalidRequest(f"the message is longer than {MAX_CONTENT} characters",
                                 param="content")
        history.append(ChatMessage("user", req.content or "",
                                   images=[p.data for p in pictures]))
    return _latest_images(history, max_images), cut


LEFT_OUT = "[{n} earlier image(s) of this chat left out: at most {limit} are sent a turn]"


def _latest_images(history: list[ChatMessage], limit: int) -> list[ChatMessage]:
    """``history`` with only its last ``limit`` images (newest messages first, a message's own
    order kept); a message whose images were dropped says so in a line of its text
    (:data:`LEFT_OUT`), so the model knows a picture was there."""
    out: list[ChatMessage] = []
    room = limit
    for m in reversed(history):
        if len(m.images) <= room:
            room -= len(m.images)
            out.append(m)
            continue
        keep = m.images[len(m.images) - room:] if room else []
        note = LEFT_OUT.format(n=len(m.images) - len(keep), limit=limit)
        out.append(replace(m, content=f"{note}\n{m.content}" if m.content else note,
                           images=keep))
        room -= len(keep)
    return out[::-1]


async def start_turn(
    db: Database, pipeline: ChatPipeline, user_id: int, conversation_id: str, req: TurnRequest,
    *, log_content: bool = False, augment: Augment | None = None,
    finish_extensions: Finish | None = None,
) -> Turn:
    """Admit a turn of ``user_id``'s conversation and store the user message. ``augment``
    revises the request before it runs (the history is the stored one); the object it returns
    is kept with the answer (``messages.extensions``), revised by ``finish_extensions`` once the
    answer is complete.

    Raises:
        NotFound: no such conversation of this user (or ``edit_from`` elsewhere).
        InvalidRequest, ContextLengthExceeded, ModelNotFound, Overloaded: nothing is stored.
    """
    settings = pipeline.settings
    check_count(len(req.images), settings.max_images, "images")  # before any is decoded
    # normalised once, stored as made: later turns send the same bytes (the same image tokens,
    # so the KV cells holding the image are reused)
    pictures = await asyncio.to_thread(lambda: [
        normalise(raw, max_pixels=settings.image_max_pixels, max_side=settings.image_max_side,
                  param=f"images[{k}]") for k, raw in enumerate(req.images)])

    def read() -> tuple[list[ChatMessage], int | None, str | None]:
        with db.session() as s:
            conv = repo.get_conversation(s, user_id, conversation_id)
            history, cut = _history(s, conv, req, pictures, settings.max_images)
            return history, cut, conv.model

    history, cut, conv_model = await asyncio.to_thread(read)
    chat = ChatRequest(history, req.params, req.model or conv_model, client=f"user:{user_id}",
                       affinity=f"conversation:{conversation_id}")
    extensions = None
    if augment is not None:
        chat, extensions = await augment(chat)
    stream = await pipeline.start_chat(chat)
    if log_content:
        log.info("prompt in %s: %r", conversation_id, history[-1].content)

    def write() -> tuple[dict[str, Any], dict[str, Any] | None, int]:
        with db.session() as s:
            conv = repo.get_conversation(s, user_id, conversation_id)
            if cut is not None:
                repo.truncate_from(s, conv, cut)
            user_msg = None
            if not req.regenerate:
                user_msg = repo.add_message(s, conv, "user", req.content or "",
                                            images=pictures)
                first = s.execute(select(Message.id).where(
                    Message.conversation_id == conv.id, Message.role == "user")).first()
                if conv.title == "New chat" and first and first[0] == user_msg.id:
                    conv.title = repo.auto_title(req.content or "Image", TITLE_CHARS)
            conv.model = stream.model
            answer = repo.add_message(
                s, conv, "assistant", "", model=stream.model, status="streaming",
                prompt_tokens=stream.prompt_tokens,
                extensions=None if extensions is None else json.dumps(extensions,
                                                                      ensure_ascii=False))
            return (repo.conversation_dict(conv),
                    repo.message_dict(user_msg) if user_msg else None, answer.id)

    try:
        conv, user_msg, assistant_id = await asyncio.to_thread(write)
    except BaseException:
        stream.cancel()
        raise
    return Turn(db, stream, conv, user_msg, assistant_id, log_content, extensions,
                finish_extensions)
