"""The one chat pipeline: validate -> render -> tokenize -> admit -> generate -> split reasoning.

Every front end (OpenAI API, CLI, later the Ollama API and the web app) converts its request into
a :class:`ChatRequest`, calls :meth:`ChatPipeline.start_chat` (which raises every client mistake
*before* anything is streamed) and then iterates the returned :class:`ChatStream`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from cove.config import Settings
from cove.engine.scheduler import Job, Scheduler
from cove.engine.template import render_chat
from cove.engine.types import Engine, Finished, SamplingParams, TextDelta, Usage
from cove.errors import ContextLengthExceeded, InvalidRequest
from cove.models.registry import ModelEntry, ModelRegistry
from cove.reasoning import Kind, ThinkParser, strip_reasoning

ROLES = {"system", "developer", "user", "assistant", "tool"}

Loader = Callable[[ModelEntry, Settings], Engine]


@dataclass
class ChatMessage:
    """One message: ``role`` (system, developer, user, assistant, tool), ``content`` text, and
    how many images it carried (images need a vision model)."""

    role: str
    content: str
    images: int = 0


@dataclass
class ChatRequest:
    """A chat turn to generate. ``model`` None means the default model."""

    messages: list[ChatMessage]
    params: SamplingParams = field(default_factory=SamplingParams)
    model: str | None = None


@dataclass(frozen=True)
class ChatDelta:
    """A streamed piece: ``kind`` is ``"reasoning"`` or ``"content"``, never both."""

    kind: Kind
    text: str


@dataclass(frozen=True)
class ChatDone:
    """End of a stream. ``finish_reason`` is OpenAI's: ``stop`` or ``length``."""

    finish_reason: str
    usage: Usage


@dataclass
class ChatResult:
    """A whole answer (non-streaming)."""

    model: str
    content: str
    reasoning: str
    finish_reason: str
    usage: Usage


class ChatStream:
    """An admitted generation. Iterate it for :class:`ChatDelta` then one :class:`ChatDone`;
    :meth:`cancel` stops it and frees the engine."""

    def __init__(self, model: str, job: Job, parser: ThinkParser | None) -> None:
        self.model = model
        self.prompt_tokens = len(job.prompt)
        self._job = job
        self._parser = parser

    def cancel(self) -> None:
        self._job.cancel()

    async def __aiter__(self) -> AsyncIterator[ChatDelta | ChatDone]:
        parser = self._parser
        try:
            async for event in self._job.events():
                if isinstance(event, TextDelta):
                    if parser is None:
                        yield ChatDelta("content", event.text)
                    else:
                        for kind, text in parser.feed(event.text):
                            yield ChatDelta(kind, text)
                elif isinstance(event, Finished):
                    if parser is not None:
                        for kind, text in parser.flush():
                            yield ChatDelta(kind, text)
                    reason = "length" if event.reason == "length" else "stop"
                    yield ChatDone(reason, event.usage)
        finally:
            self._job.cancel()

    async def collect(self) -> ChatResult:
        """Run to the end and return the whole answer."""
        parts: dict[str, list[str]] = {"reasoning": [], "content": []}
        done: ChatDone | None = None
        async for item in self:
            if isinstance(item, ChatDelta):
                parts[item.kind].append(item.text)
            else:
                done = item
        assert done is not None
        return ChatResult(
            self.model,
            "".join(parts["content"]),
            "".join(parts["reasoning"]),
            done.finish_reason,
            done.usage,
        )


def _check_text(text: str, param: str) -> None:
    """Refuse text that cannot be encoded as UTF-8 (lone surrogates such as ``"\\ud800"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidRequest(
            f"text is not valid Unicode (character {e.object[e.start]!r} at offset {e.start})",
            param=param,
        ) from e


@dataclass
class _Loaded:
    entry: ModelEntry
    engine: Engine
    scheduler: Scheduler


def load_llama(entry: ModelEntry, settings: Settings) -> Engine:
    """Default loader: the llama.cpp engine with the settings' context, threads and batch."""
    from cove.engine.llama import LlamaEngine

    return LlamaEngine(
        entry.path,
        entry.name,
        n_ctx=settings.n_ctx,
        n_slots=settings.n_parallel,
        n_threads=settings.n_threads,
        n_batch=settings.n_batch,
    )


class ChatPipeline:
    """Owns loaded models and turns requests into admitted generations.

    Args:
        settings: Cove settings (default model, queue size, ...).
        registry: installed models.
        loader: builds an :class:`Engine` for a model entry (a parameter so tests can inject a
            scripted engine).
    """

    def __init__(
        self, settings: Settings, registry: ModelRegistry, loader: Loader = load_llama
    ) -> None:
        self.settings = settings
        self.registry = registry
        self._loader = loader
        self._loaded: dict[str, _Loaded] = {}
        self._lock = asyncio.Lock()

    async def runtime(self, model: str | None) -> _Loaded:
        """Load (once) and return the model named ``model`` (default model if None).

        Raises:
            ModelNotFound: unknown or invalid model name.
        """
        entry = self.registry.resolve(model or self.settings.default_model)
        async with self._lock:
            loaded = self._loaded.get(entry.name)
            if loaded is None:
                engine = await asyncio.to_thread(self._loader, entry, self.settings)
                loaded = _Loaded(entry, engine, Scheduler(engine, self.settings.max_queue))
                self._loaded[entry.name] = loaded
            return loaded

    def status(self) -> dict[str, Any]:
        """Loaded models and their queue depth: ``{"loaded": [{"name", "n_ctx", "pending"}]}``."""
        return {
            "loaded": [
                {"name": name, "n_ctx": rt.engine.info.n_ctx, "pending": rt.scheduler.pending}
                for name, rt in self._loaded.items()
            ]
        }

    def close(self) -> None:
        """Stop workers and free every loaded model."""
        for loaded in self._loaded.values():
            loaded.scheduler.close()
            loaded.engine.close()
        self._loaded.clear()

    async def start_chat(self, request: ChatRequest) -> ChatStream:
        """Validate, render with the model's chat template, tokenize and queue the request.

        Raises:
            InvalidRequest: bad messages (empty, unknown role, text that is not valid Unicode,
                image for a text-only model).
            ContextLengthExceeded: the prompt does not fit the context window.
            ModelNotFound: unknown model. Overloaded: the queue is full.
        """
        rt = await self.runtime(request.model)
        info = rt.engine.info
        thinking = bool(info.chat_template and "<think>" in info.chat_template)
        messages = self._template_messages(request.messages, info.vision, thinking)
        if len(messages) >= info.n_ctx:  # every message costs at least one token
            raise ContextLengthExceeded(len(messages), info.n_ctx, at_least=True)

        def render() -> tuple[str, list[int]]:
            text = render_chat(
                info.chat_template, messages, bos_token=info.bos_token, eos_token=info.eos_token
            )
            add_bos = info.add_bos and not (info.bos_token and text.startswith(info.bos_token))
            return text, self._tokenize(rt, text, add_bos, "messages")

        prompt_text, prompt = await asyncio.to_thread(render)
        parser = None
        if thinking:
            parser = ThinkParser(start_in_reasoning=prompt_text.rstrip().endswith("<think>"))
        return ChatStream(info.name, self._admit(rt, prompt, request.params, "messages"), parser)

    async def start_completion(
        self, model: str | None, prompt_text: str, params: SamplingParams
    ) -> ChatStream:
        """Queue a raw text completion (no chat template, no reasoning split).

        Raises:
            InvalidRequest, ContextLengthExceeded, ModelNotFound, Overloaded: as
            :meth:`start_chat` (naming ``prompt``).
        """
        rt = await self.runtime(model)
        _check_text(prompt_text, "prompt")
        add_bos = rt.engine.info.add_bos
        prompt = await asyncio.to_thread(self._tokenize, rt, prompt_text, add_bos, "prompt")
        return ChatStream(rt.engine.info.name, self._admit(rt, prompt, params, "prompt"), None)

    @staticmethod
    def _tokenize(rt: _Loaded, text: str, add_bos: bool, param: str) -> list[int]:
        """Tokenize, refusing at once a text too long to fit even at the longest token per
        position (tokenizing megabytes only to refuse them would stall the server)."""
        info = rt.engine.info
        size = len(text.encode("utf-8"))
        if size > info.n_ctx * max(1, info.max_token_bytes):
            at_least = -(-size // max(1, info.max_token_bytes))
            raise ContextLengthExceeded(at_least, info.n_ctx, param=param, at_least=True)
        return rt.engine.tokenize(text, add_bos=add_bos, special=True)

    def _admit(self, rt: _Loaded, prompt: list[int], params: SamplingParams, param: str) -> Job:
        n_ctx = rt.engine.info.n_ctx
        if not prompt:
            raise InvalidRequest("the prompt is empty", param=param)
        if len(prompt) >= n_ctx:
            raise ContextLengthExceeded(len(prompt), n_ctx, param=param)
        return rt.scheduler.submit(prompt, params)

    @staticmethod
    def _template_messages(
        messages: list[ChatMessage], vision: bool, thinking: bool
    ) -> list[dict[str, Any]]:
        if not messages:
            raise InvalidRequest("messages must contain at least one message", param="messages")
        out: list[dict[str, Any]] = []
        for i, m in enumerate(messages):
            if m.role not in ROLES:
                raise InvalidRequest(
                    f"unknown role {m.role!r}; expected one of: {', '.join(sorted(ROLES))}",
                    param=f"messages[{i}].role",
                )
            if m.images and not vision:
                raise InvalidRequest(
                    "this model cannot read images (it is text-only); send text parts only",
                    param=f"messages[{i}].content",
                )
            _check_text(m.content, f"messages[{i}].content")
            role = "system" if m.role == "developer" else m.role
            content = m.content
            if role == "assistant" and thinking:
                content = strip_reasoning(content)
            out.append({"role": role, "content": content})
        return out
