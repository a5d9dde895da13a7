"""The kinds of request of the soak test (``bench/soak.py``); the checks they share are in
``bench/soak_checks.py``.

Each kind is a method of :class:`SoakClient` that sends one request and checks its answer
against the protocol: OpenAI's SSE chunks ending in one ``finish_reason`` and ``[DONE]``;
Ollama's NDJSON ending in one ``done: true`` line; the web app's ``start``/``delta``/``done``
events, then the stored answer equal to the streamed one; embeddings of one dimension and unit
length; bad requests answered 4xx in the API's error shape (OpenAI's ``{"error": {"message",
"type", "param", "code"}}`` under ``/v1`` and ``/web``, Ollama's ``{"error": "..."}`` under
``/api``). Anything else raises ``Failure``; a 503 with ``Retry-After`` raises ``Overloaded``
(the client then waits as told).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.load import TOPICS
from bench.reliability import MODEL, MalformedStream, web_events
from bench.soak_checks import (
    BAD_EMBEDDINGS_V1,
    BAD_REQUESTS,
    Disconnected,
    Failure,
    check_status,
    check_vectors,
    json_line,
    ollama_error_ok,
    openai_error_ok,
    snippet,
    stream_error,
    stream_lines,
)


@dataclass
class SoakClient:
    """One simulated user: ``api`` talks to ``/v1`` and ``/api`` (with an API key when the
    server has accounts), ``web`` (or None) is a signed-in web app session. Its own seeded
    ``rng`` picks prompts and lengths; it keeps one chat history per API to continue
    conversations (their follow-up turns hit the KV and prompt caches)."""

    api: httpx.AsyncClient
    web: httpx.AsyncClient | None
    rng: random.Random
    embeddings_v1: bool
    number: int = 0
    history: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    conversation: str | None = None
    conversation_turns: int = 0
    bad_index: int = -1

    def kinds(self) -> dict[str, tuple[int, Callable[[], Awaitable[None]]]]:
        """Kind name → (weight, request) for this client."""
        kinds: dict[str, tuple[int, Callable[[], Awaitable[None]]]] = {
            "openai chat stream": (4, self.openai_chat),
            "ollama chat stream": (3, self.ollama_chat),
            "openai completion": (2, self.openai_completion),
            "ollama generate": (1, self.ollama_generate),
            "ollama embed": (1, self.ollama_embed),
            "disconnect mid-stream": (2, self.disconnect),
            "bad request": (2, self.bad_request),
        }
        if self.embeddings_v1:
            kinds["openai embeddings"] = (1, self.openai_embeddings)
        if self.web is not None:
            kinds["web chat (stored)"] = (2, self.web_chat)
        return kinds

    def _prompt(self) -> str:
        self.number += 1
        topic = self.rng.choice(TOPICS)
        return f"Write story number {self.rng.randrange(10**6)} about {topic}, in a few lines."

    def _messages(self, api: str) -> list[dict[str, str]]:
        """A new conversation, or (half the time, up to 6 turns) the next turn of the last."""
        hist = self.history.get(api)
        if not hist or len(hist) >= 12 or self.rng.random() < 0.5:
            hist = []
        hist = [*hist, {"role": "user", "content": self._prompt()}]
        self.history[api] = hist
        return hist

    def _max_tokens(self) -> int:
        return self.rng.randint(8, 48)

    # -- OpenAI ------------------------------------------------------------------------------

    async def _openai_stream(self, r: httpx.Response, chat: bool, limit: int | None = None,
                             ) -> str:
        """Read an OpenAI stream; its text. With ``limit``, leave after that many events."""
        where = r.request.url.path
        obj_name = "chat.completion.chunk" if chat else "text_completion"
        text: list[str] = []
        finish = usage = None
        done = False
        async for line in stream_lines(r, limit):
            if done or not line.startswith("data: "):
                raise Failure("malformed stream", f"{where}: unexpected line {line[:120]!r}")
            if line == "data: [DONE]":
                done = True
                continue
            obj = json_line(line[6:], where)
            if isinstance(obj, dict) and "error" in obj:
                raise stream_error(where, obj["error"])
            choices = obj.get("choices") if isinstance(obj, dict) else None
            if obj.get("object") != obj_name or not isinstance(choices, list):
                raise Failure("malformed stream", f"{where}: {line[:120]!r}")
            if obj.get("usage"):
                usage = obj["usage"]
            for ch in choices:
                if finish is not None:
                    raise Failure("malformed stream", f"{where}: a chunk after finish_reason")
                piece = (ch.get("delta") or {}).get("content") if chat else ch.get("text")
                if not isinstance(piece, str | None):
                    raise Failure("malformed stream", f"{where}: {line[:120]!r}")
                text.append(piece or "")
                finish = ch.get("finish_reason") or None
        if not done or finish is None:
            raise Failure("stream without final event",
                          f"{where}: [DONE] {'seen' if done else 'missing'}, finish_reason "
                          f"{finish!r}")
        if finish not in ("stop", "length") or not isinstance(usage, dict):
            raise Failure("malformed stream", f"{where}: finish {finish!r}, usage {usage!r}")
        return "".join(text)

    async def openai_chat(self) -> None:
        messages = self._messages("openai")
        body = {"model": MODEL, "messages": messages, "max_tokens": self._max_tokens(),
                "stream": True, "stream_options": {"include_usage": True},
                "seed": self.rng.randrange(2**31)}
        async with self.api.stream("POST", "/v1/chat/completions", json=body) as r:
            await check_status(r)
            text = await self._openai_stream(r, chat=True)
        messages.append({"role": "assistant", "content": text})

    async def openai_completion(self) -> None:
        body: dict[str, Any] = {"model": MODEL, "prompt": f"Once upon a time, {self._prompt()}",
                                "max_tokens": self._max_tokens()}
        if self.rng.random() < 0.5:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
            async with self.api.stream("POST", "/v1/completions", json=body) as r:
                await check_status(r)
                await self._openai_stream(r, chat=False)
            return
        r = await self.api.post("/v1/completions", json=body)
        await check_status(r)
        obj = r.json()
        ch = (obj.get("choices") or [{}])[0]
        if (obj.get("object") != "text_completion" or not isinstance(ch.get("text"), str)
                or ch.get("finish_reason") not in ("stop", "length")
                or not isinstance((obj.get("usage") or {}).get("completion_tokens"), int)):
            raise Failure("wrong answer shape", f"/v1/completions: {r.text[:200]}")

    async def openai_embeddings(self) -> None:
        texts = [self._prompt() for _ in range(self.rng.randint(1, 4))]
        r = await self.api.post("/v1/embeddings", json={"model": MODEL, "input": texts})
        await check_status(r)
        data = r.json().get("data")
        vectors = [d.get("embedding") for d in data] if isinstance(data, list) else None
        check_vectors("/v1/embeddings", vectors, len(texts))

    # -- Ollama ------------------------------------------------------------------------------

    async def _ollama_stream(self, r: httpx.Response, chat: bool, limit: int | None = None,
                             ) -> str:
        where = r.request.url.path
        text: list[str] = []
        done = False
        async for line in stream_lines(r, limit):
            obj = json_line(line, where)
            if done or not isinstance(obj, dict):
                raise Failure("malformed stream", f"{where}: unexpected line {line[:120]!r}")
            if "error" in obj:
                raise stream_error(where, obj["error"])
            piece = (obj.get("message") or {}).get("content") if chat else obj.get("response")
            if obj.get("done") is True:
                done = True
                if obj.get("done_reason") not in ("stop", "length"):
                    raise Failure("malformed stream", f"{where}: final line {line[:200]!r}")
            elif obj.get("done") is not False or not isinstance(piece, str):
                raise Failure("malformed stream", f"{where}: {line[:120]!r}")
            text.append(piece or "")
        if not done:
            raise Failure("stream without final event", f"{where}: no done: true line")
        return "".join(text)

    async def ollama_chat(self) -> None:
        messages = self._messages("ollama")
        body = {"model": MODEL, "messages": messages, "stream": True,
                "options": {"num_predict": self._max_tokens(), "seed": self.rng.randrange(2**31)}}
        async with self.api.stream("POST", "/api/chat", json=body) as r:
            await check_status(r)
            text = await self._ollama_stream(r, chat=True)
        messages.append({"role": "assistant", "content": text})

    async def ollama_generate(self) -> None:
        body = {"model": MODEL, "prompt": self._prompt(), "stream": False,
                "options": {"num_predict": self._max_tokens()}}
        r = await self.api.post("/api/generate", json=body)
        await check_status(r)
        obj = r.json()
        if (not isinstance(obj.get("response"), str) or obj.get("done") is not True
                or obj.get("done_reason") not in ("stop", "length")):
            raise Failure("wrong answer shape", f"/api/generate: {r.text[:200]}")

    async def ollama_embed(self) -> None:
        texts = [self._prompt() for _ in range(self.rng.randint(1, 4))]
        r = await self.api.post("/api/embed", json={"model": MODEL, "input": texts})
        await check_status(r)
        check_vectors("/api/embed", r.json().get("embeddings"), len(texts))

    # -- faults ------------------------------------------------------------------------------

    async def disconnect(self) -> None:
        """Start a long streamed answer, read a few events, and go away."""
        limit = self.rng.randint(1, 6)
        msgs = [{"role": "user", "content": self._prompt()}]
        try:
            if self.rng.random() < 0.5:
                body = {"model": MODEL, "messages": msgs, "max_tokens": 200, "stream": True,
                        "stream_options": {"include_usage": True}}
                async with self.api.stream("POST", "/v1/chat/completions", json=body) as r:
                    await check_status(r)
                    await self._openai_stream(r, chat=True, limit=limit)
            else:
                body = {"model": MODEL, "messages": msgs, "options": {"num_predict": 200}}
                async with self.api.stream("POST", "/api/chat", json=body) as r:
                    await check_status(r)
                    await self._ollama_stream(r, chat=True, limit=limit)
        except Disconnected:
            return
        # the answer ended before ``limit`` events: a complete, checked answer is fine too

    async def bad_request(self) -> None:
        """The next of the bad requests (each client goes through all of them in turn)."""
        bads = BAD_REQUESTS + ([BAD_EMBEDDINGS_V1] if self.embeddings_v1 else [])
        if self.bad_index < 0:
            self.bad_index = self.rng.randrange(len(bads))
        self.bad_index += 1
        bad = bads[self.bad_index % len(bads)]
        r = await self.api.post(bad.path, content=bad.body,
                                headers={"Content-Type": "application/json"})
        where = f"{bad.name}: {r.status_code} {snippet(r)}"
        if r.status_code != bad.status:
            if r.status_code < 400 or r.status_code >= 500:
                await check_status(r, bad.status)
            raise Failure("unexpected status", where)
        try:
            body = r.json()
        except ValueError:
            raise Failure("wrong error shape", where) from None
        ok = openai_error_ok(body) if bad.api == "openai" else ollama_error_ok(body)
        if not ok or (bad.param and body["error"]["param"] != bad.param):
            raise Failure("wrong error shape", where)

    # -- web app -----------------------------------------------------------------------------

    async def web_chat(self) -> None:
        """A turn of a stored conversation (a new one every 4 turns); then the stored answer
        must be the streamed one, complete."""
        assert self.web is not None
        if self.conversation is None or self.conversation_turns >= 4:
            r = await self.web.post("/web/conversations", json={})
            await check_status(r)
            self.conversation, self.conversation_turns = r.json()["id"], 0
        path = f"/web/conversations/{self.conversation}/messages"
        body = {"content": self._prompt(), "max_tokens": self._max_tokens(),
                "seed": self.rng.randrange(2**31)}
        text: list[str] = []
        start: dict[str, Any] | None = None
        done = False
        async with self.web.stream("POST", path, json=body) as r:
            await check_status(r)
            try:
                async for ev in web_events(r):
                    if ev["type"] == "error":
                        raise stream_error(path, ev["error"])
                    if done or (start is None) != (ev["type"] == "start"):
                        raise Failure("malformed stream", f"{path}: event {ev['type']} "
                                      f"out of order")
                    if ev["type"] == "start":
                        start = ev
                    elif ev["type"] == "delta":
                        text.append(ev["text"] if ev["kind"] == "content" else "")
                    else:
                        done = True
            except MalformedStream as e:
                raise Failure("malformed stream", f"{path}: {e}") from None
        if not done or start is None:
            raise Failure("stream without final event", f"{path}: no done event")
        self.conversation_turns += 1
        r = await self.web.get(f"/web/conversations/{self.conversation}/messages")
        await check_status(r)
        last = r.json()["data"][-1]
        if (last["id"] != start["assistant_message_id"] or last["status"] != "complete"
                or last["content"] != "".join(text)):
            raise Failure("stored answer differs",
                          f"{path}: stored {last['status']} {last['content'][:60]!r}, streamed "
                          f"{''.join(text)[:60]!r}")
