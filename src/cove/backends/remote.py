"""A remote model as the pipeline's :class:`~cove.chat.ChatStream`: one upstream streamed
request (``POST {url}/chat/completions`` or ``/completions`` with ``stream: true``), read as
OpenAI's server-sent events and turned into the pipeline's items, so every API family
(OpenAI, Ollama, Anthropic, the web app) serves a remote answer as it serves a local one.

Before the first upstream event reaches the client, a failed attempt (connection refused, a
timeout, a 5xx status, an answer that is not OpenAI's stream) is retried on the next backend of
the router's plan; after it, a failure ends the stream with one error
(:class:`~cove.errors.BackendError`). :meth:`RemoteStream.cancel` (the client left) cancels
the pump task, which closes the upstream response, so the backend stops generating.

Raw ``<think>`` text in the upstream's ``content`` is split by Cove's own
:class:`~cove.reasoning.ThinkParser`; a ``reasoning_content`` (or ``reasoning``) delta is taken
as reasoning as it is. Tool-call deltas are joined by index into one
:class:`~cove.tools.ToolCalls` item.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from cove.backends.router import Attempt, Router
from cove.chat import ChatDelta, ChatDone, ChatStream
from cove.engine.types import Usage
from cove.errors import BackendError, BackendTimeout, BackendUnavailable, CoveError, InvalidRequest
from cove.reasoning import ThinkParser
from cove.tools import ToolCall, ToolCalls, ToolSpec

_END = object()
RETRY_STATUS = {500, 502, 503, 504}


class Upstream4xx(CoveError):
    """The backend refused the request as a client error: its status and message are passed
    on (a prompt too long for its model, a bad parameter)."""

    type = "invalid_request_error"
    code = "upstream_rejected"
    expose = True


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err or data.get("detail") or data)[:500]


def _has_text(chunk: dict[str, Any]) -> bool:
    """Whether a chunk carries answer text (a streamed piece, about one token)."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if choice.get("text") or delta.get("content") or delta.get("reasoning_content"):
            return True
    return False


class _Failed(Exception):
    """An attempt failed; ``retry`` says whether another backend may take the request."""

    def __init__(self, error: CoveError, retry: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry = retry


class RemoteStream(ChatStream):
    """An upstream generation for ``model`` (the public name), tried over ``plan``."""

    def __init__(self, router: Router, model: str, plan: list[Attempt], path: str,
                 body: dict[str, Any], *, chat: bool, tools: ToolSpec | None) -> None:
        self.model = model
        self.tools = tools
        self.prompt_tokens = 0
        self._router = router
        self._plan = plan
        self._path = path
        self._body = body
        self._chat = chat
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._first: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancelled = False

    # -- the ChatStream interface -----------------------------------------------------------

    def cancel(self) -> None:
        self._cancelled = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    async def admitted(self) -> None:
        """Wait for the first upstream event (every retry happens before it).

        Raises:
            BackendUnavailable, BackendError, BackendTimeout, Upstream4xx: no backend gave
                a first event.
        """
        if self._cancelled:
            return
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._first = loop.create_future()
            self._task = loop.create_task(self._pump())
        assert self._first is not None
        try:
            await asyncio.shield(self._first)
        except BaseException:
            self.cancel()
            raise

    def __aiter__(self) -> AsyncIterator[ChatDelta | ChatDone]:
        return self._text_events()

    def items(self) -> AsyncIterator[ChatDelta | ChatDone | ToolCalls]:  # type: ignore[override]
        return self._items()

    async def _text_events(self) -> AsyncIterator[ChatDelta | ChatDone]:
        async for item in self._items():
            if not isinstance(item, ToolCalls):
                yield item

    # -- reading ----------------------------------------------------------------------------

    async def _items(self) -> AsyncIterator[ChatDelta | ChatDone | ToolCalls]:
        """The upstream's chunks as pipeline items; ends with one :class:`ChatDone`."""
        try:
            await self.admitted()
            parser = ThinkParser() if self._chat else None
            calls: dict[int, dict[str, str]] = {}
            finish = "stop"
            usage: Usage | None = None
            produced = 0
            while True:
                chunk = await self._queue.get()
                if chunk is _END:
                    break
                if isinstance(chunk, BaseException):
                    raise chunk
                if chunk.get("usage"):
                    u = chunk["usage"]
                    usage = Usage(int(u.get("prompt_tokens") or 0),
                                  int(u.get("completion_tokens") or 0),
                                  int((u.get("prompt_tokens_details") or {})
                                      .get("cached_tokens") or 0))
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {} if self._chat else {
                        "content": choice.get("text")}
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if reasoning:
                        produced += 1
                        yield ChatDelta("reasoning", str(reasoning))
                    text = delta.get("content")
                    if text:
                        produced += 1
                        if parser is None:
                            yield ChatDelta("content", str(text))
                        else:
                            for kind, part in parser.feed(str(text)):
                                yield ChatDelta(kind, part)
                    for tc in delta.get("tool_calls") or []:
                        slot = calls.setdefault(int(tc.get("index") or 0),
                                                {"id": "", "name": "", "arguments": ""})
                        fn = tc.get("function") or {}
                        slot["id"] = tc.get("id") or slot["id"]
                        slot["name"] += fn.get("name") or ""
                        slot["arguments"] += fn.get("arguments") or ""
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
            if parser is not None:
                for kind, part in parser.flush():
                    yield ChatDelta(kind, part)
            if calls:
                yield ToolCalls([ToolCall(c["name"], c["arguments"] or "{}",
                                          **({"id": c["id"]} if c["id"] else {}))
                                 for _, c in sorted(calls.items())])
                finish = "tool_calls"
            elif finish not in ("stop", "length"):
                finish = "stop"
            self.prompt_tokens = usage.prompt_tokens if usage else 0
            yield ChatDone(finish, usage or Usage(0, produced))
        finally:
            self.cancel()

    # -- the pump ---------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Try the plan's backends in turn until one gives a first event, then forward its
        chunks to the queue (an error mid-stream is queued as the exception)."""
        assert self._first is not None
        last: CoveError = BackendUnavailable(f"no backend could serve {self.model}")
        for n, attempt in enumerate(self._plan):
            s = attempt.stats
            cap = s.backend.max_concurrency
            if s.open_until is not None or (cap and s.in_flight >= cap):
                continue
            began = self._router.started(s)
            first_at: float | None = None
            counts = [0, 0]
            pieces = 0
            try:
                async for chunk in self._attempt(attempt):
                    if first_at is None:
                        first_at = self._router.clock()
                        self._first.set_result(None)
                    if chunk.get("usage"):
                        counts = [int(chunk["usage"].get("prompt_tokens") or 0),
                                  int(chunk["usage"].get("completion_tokens") or 0)]
                    elif _has_text(chunk):
                        pieces += 1  # counted as tokens when the upstream sends no usage
                    self._queue.put_nowait(chunk)
            except asyncio.CancelledError:  # the client left: the upstream is closed
                self._router.finished(s, began, ok=True, first_byte=first_at)
                if not self._first.done():
                    self._first.cancel()
                raise
            except _Failed as f:
                more = f.retry and first_at is None and n + 1 < len(self._plan)
                # a 4xx is the request's fault: the backend is healthy
                self._router.finished(s, began, ok=isinstance(f.error, Upstream4xx),
                                      error=f.error.message, first_byte=first_at, retried=more)
                last = f.error
                if first_at is not None:
                    self._queue.put_nowait(f.error)
                    self._queue.put_nowait(_END)
                    return
                if f.retry:
                    continue
                break
            else:
                self._router.finished(s, began, ok=True, prompt_tokens=counts[0],
                                      completion_tokens=counts[1] or pieces,
                                      first_byte=first_at)
                if first_at is None:
                    last = BackendError(f"backend {s.backend.name} ended its stream without "
                                        "sending anything")
                    continue
                self._queue.put_nowait(_END)
                return
        if not self._first.done():
            self._first.set_exception(last)
        self._queue.put_nowait(last)
        self._queue.put_nowait(_END)

    async def _attempt(self, attempt: Attempt) -> AsyncIterator[dict[str, Any]]:
        """The chunks of one upstream try.

        Raises:
            _Failed: connection refused or timed out, a 5xx, a 4xx (not retried), garbage,
                an error event or a stream that broke.
        """
        b = attempt.stats.backend
        cfg = self._router.config
        body = {**self._body, "model": attempt.upstream}
        name = b.name
        try:
            async with self._router.client().stream(
                    "POST", f"{b.url}{self._path}", json=body, headers=self._router.headers(b),
                    timeout=httpx.Timeout(cfg.first_byte_timeout,
                                          connect=cfg.connect_timeout)) as r:
                if r.status_code != 200:
                    text = _error_message(await r.aread())
                    if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                        err: CoveError = Upstream4xx(f"backend {name}: {text}")
                        err.status = r.status_code
                        raise _Failed(err, retry=False)
                    why = f"backend {name} answered HTTP {r.status_code}: {text}"
                    kind = {503: BackendUnavailable, 429: BackendUnavailable,
                            504: BackendTimeout}.get(r.status_code, BackendError)
                    raise _Failed(kind(why), retry=r.status_code in RETRY_STATUS or
                                  r.status_code == 429)
                if "text/event-stream" not in r.headers.get("content-type", ""):
                    raise _Failed(BackendError(f"backend {name} did not answer with an event "
                                               "stream"), retry=True)
                ended = False
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # comments, event names, keep-alives
                    data = line[5:].strip()
                    if data == "[DONE]":
                        ended = True
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        raise _Failed(BackendError(f"backend {name} sent an event that is not "
                                                   "JSON"), retry=True) from None
                    if not isinstance(chunk, dict):
                        raise _Failed(BackendError(f"backend {name} sent an event that is not "
                                                   "a JSON object"), retry=True)
                    if "error" in chunk:
                        raise _Failed(BackendError(f"backend {name} failed: "
                                                   f"{_error_message(data.encode())}"),
                                      retry=True)
                    yield chunk
                if not ended:
                    raise _Failed(BackendError(f"backend {name} broke off its stream"),
                                  retry=True)
        except httpx.TimeoutException:
            raise _Failed(BackendTimeout(f"backend {name} did not answer in time"),
                          retry=True) from None
        except (httpx.HTTPError, OSError) as e:
            raise _Failed(BackendError(f"backend {name} is unreachable or broke the "
                                       f"connection ({type(e).__name__})"), retry=True) from None


def refuse_unsupported(images: bool, logprobs: bool, budget: bool) -> None:
    """Refuse what is not forwarded to remote models (rather than ignore it).

    Raises:
        InvalidRequest: naming the field.
    """
    if images:
        raise InvalidRequest("images are not forwarded to remote models yet",
                             param="messages")
    if logprobs:
        raise InvalidRequest("logprobs are not forwarded to remote models", param="logprobs")
    if budget:
        raise InvalidRequest("a reasoning budget cannot be enforced on a remote model",
                             param="reasoning_budget")
