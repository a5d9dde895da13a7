"""The chat pipeline's request and result types, and the stream of an admitted generation.

Front ends build a :class:`ChatRequest` of :class:`ChatMessage` items, and read
:class:`ChatDelta` / :class:`ChatDone` items (or a whole :class:`ChatResult`) from a
:class:`ChatStream` returned by :meth:`cove.pipeline.ChatPipeline.start_chat`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cove.engine.scheduler import Job
from cove.engine.types import (
    Finished,
    SamplingParams,
    TextDelta,
    TokenLogprob,
    Usage,
)
from cove.errors import InvalidRequest
from cove.models.manager import Lease
from cove.reasoning import Kind, ThinkParser
from cove.tools import ToolCall, ToolCalls, ToolSpec, tool_events

ROLES = {"system", "developer", "user", "assistant", "tool"}


@dataclass
class ChatMessage:
    """One message: ``role`` (system, developer, user, assistant, tool), ``content`` text, and
    the images it carries, as the client sent them (bytes, checked and normalised by the
    pipeline with :func:`cove.images.normalise`; they need a vision model and come before the
    text in the prompt)."""

    role: str
    content: str
    images: list[bytes] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI shape: {id, type, function}
    tool_call_id: str | None = None
    name: str | None = None  # OpenAI's participant name, given to the template


@dataclass
class ChatRequest:
    """A chat turn to generate. ``model`` None means the default model.

    ``explicit`` names the :class:`SamplingParams` fields the client set; the others take the
    model's preset defaults (None: every field is explicit). ``tools`` (validated, see
    :mod:`cove.tools`) lets the model answer with tool calls. ``num_ctx`` asks for a context
    window (an idle model is reloaded with it). ``client`` names who asks (``user:<id>``,
    ``addr:<ip>``; None: anonymous), for the scheduler's fair shares. ``keep_alive`` is
    seconds to keep the model loaded after this request (None: the default; < 0 forever; 0
    unload at once).
    ``think`` False asks the template not to reason (``enable_thinking=False``); True on a
    model that cannot reason is an error. ``reasoning_budget`` caps reasoning in tokens: at the
    cap the reasoning is closed (``</think>`` is injected) and the model goes on to answer
    (a no-op for models that do not reason). ``prefill`` is text the answer starts with
    (Anthropic's final assistant turn): it ends the prompt, and the answer continues it.
    ``response_format`` is the structured-output request in OpenAI's shape (``{"type":
    "json_object"}`` or ``{"type": "json_schema", "json_schema": {...}}``), kept beside its
    grammar in ``params`` for remote models; ``affinity`` (OpenAI's ``prompt_cache_key``) is
    the key a remote model's requests are routed by (None: the conversation's opening).
    ``images_param`` is the request field that errors about all its images together name
    (too many, too many pixels): ``messages``, or ``input`` for OpenAI's Responses API.
    """

    messages: list[ChatMessage]
    params: SamplingParams = field(default_factory=SamplingParams)
    model: str | None = None
    explicit: frozenset[str] | None = None
    num_ctx: int | None = None
    keep_alive: float | None = None
    think: bool | None = None
    tools: ToolSpec | None = None
    reasoning_budget: int | None = None
    client: str | None = None
    prefill: str = ""
    response_format: dict[str, Any] | None = None
    affinity: str | None = None
    images_param: str = "messages"


@dataclass(frozen=True)
class ChatDelta:
    """A streamed piece: ``kind`` is ``"reasoning"`` or ``"content"``, never both.
    ``logprobs`` (when the request asked for them) are those of the tokens completed since
    the previous piece; the last piece may carry logprobs and no text."""

    kind: Kind
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class ChatDone:
    """End of a stream. ``finish_reason`` is OpenAI's: ``stop``, ``length`` or
    ``tool_calls``; ``stop_sequence`` is the request's stop string that ended the answer (None
    when the model ended it, or for another reason)."""

    finish_reason: str
    usage: Usage
    reasoning_budget_exhausted: bool = False
    stop_sequence: str | None = None


@dataclass
class ChatResult:
    """A whole answer (non-streaming)."""

    model: str
    content: str
    reasoning: str
    finish_reason: str
    usage: Usage
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning_budget_exhausted: bool = False
    stop_sequence: str | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)


class ChatStream:
    """An admitted generation. Iterate it for :class:`ChatDelta` then one :class:`ChatDone`;
    :meth:`cancel` stops it and frees the engine."""

    def __init__(self, model: str, job: Job, parser: ThinkParser | None,
                 lease: Lease | None = None, keep_alive: float | None = None,
                 tools: ToolSpec | None = None) -> None:
        self.model = model
        self.tools = tools
        self.prompt_tokens = len(job.prompt)
        self._job = job
        self._parser = parser
        self._lease = lease
        self._keep_alive = keep_alive

    def cancel(self) -> None:
        """Stop the generation (idempotent) and release the model."""
        self._job.cancel()
        if self._lease is not None:
            self._lease.release(self._keep_alive)

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called (a cancelled generation still ends with a
        :class:`ChatDone`)."""
        return self._job.cancelled.is_set()

    async def admitted(self) -> None:
        """Wait until the generation has a slot (streaming routes wait for this before they
        send a status line, so a refusal is still an HTTP error). Returns too when it was
        cancelled meanwhile.

        Raises:
            CoveError: it was refused before getting a slot (Overloaded at the queue deadline
                or to make room for another client's share); the stream is then released.
        """
        try:
            await self._job.admitted()
        except BaseException:
            self.cancel()
            raise

    def __aiter__(self) -> AsyncIterator[ChatDelta | ChatDone]:
        """:class:`ChatDelta` pieces then one :class:`ChatDone` (tool calls come as text: use
        :meth:`items` for a request with tools)."""
        return self._events()

    def items(self) -> AsyncIterator[ChatDelta | ChatDone | ToolCalls]:
        """Like iterating, but a tool call made by the model comes as one :class:`ToolCalls`
        item (and ``finish_reason`` ``tool_calls``) instead of text."""
        if self.tools is None:
            return self._events()
        return tool_events(self._events(), self.tools)

    async def _events(self) -> AsyncIterator[ChatDelta | ChatDone]:
        parser = self._parser
        carry: tuple[TokenLogprob, ...] = ()  # logprobs of text the parser holds back
        try:
            async for event in self._job.events():
                if isinstance(event, TextDelta):
                    if parser is None:
                        yield ChatDelta("content", event.text, event.logprobs)
                        continue
                    carry += event.logprobs
                    for kind, text in parser.feed(event.text):
                        yield ChatDelta(kind, text, carry)
                        carry = ()
                elif isinstance(event, Finished):
                    if parser is not None:
                        for kind, text in parser.flush():
                            yield ChatDelta(kind, text, carry)
                            carry = ()
                    if carry:
                        yield ChatDelta("content", "", carry)
                    reason = "length" if event.reason == "length" else "stop"
                    yield ChatDone(reason, event.usage, event.forced, event.stop_sequence)
        finally:
            self.cancel()

    async def collect(self) -> ChatResult:
        """Run to the end and return the whole answer."""
        parts: dict[str, list[str]] = {"reasoning": [], "content": []}
        done: ChatDone | None = None
        calls: list[ToolCall] = []
        logprobs: list[TokenLogprob] = []
        async for item in self.items():
            if isinstance(item, ChatDelta):
                parts[item.kind].append(item.text)
                logprobs.extend(item.logprobs)
            elif isinstance(item, ToolCalls):
                calls = item.calls
            else:
                done = item
        assert done is not None
        return ChatResult(
            self.model,
            "".join(parts["content"]),
            "".join(parts["reasoning"]),
            done.finish_reason,
            done.usage,
            calls,
            done.reasoning_budget_exhausted,
            done.stop_sequence,
            logprobs,
        )


def check_text(text: str, param: str) -> None:
    """Refuse text that cannot be encoded as UTF-8 (lone surrogates such as ``"\\ud800"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidRequest(
            f"text is not valid Unicode (character {e.object[e.start]!r} at offset {e.start})",
            param=param,
        ) from e


