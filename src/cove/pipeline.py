"""The one chat pipeline: validate -> render -> tokenize -> admit -> generate -> split reasoning.

Every front end (OpenAI API, CLI, later the Ollama API and the web app) converts its request into
a :class:`ChatRequest`, calls :meth:`ChatPipeline.start_chat` (which raises every client mistake
*before* anything is streamed) and then iterates the returned :class:`ChatStream`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from cove.config import Settings
from cove.engine.scheduler import Job, Scheduler
from cove.engine.template import render_chat
from cove.engine.types import (
    Engine,
    Finished,
    ForcedContinuation,
    SamplingParams,
    TextDelta,
    Usage,
)
from cove.errors import ContextLengthExceeded, InvalidRequest
from cove.models.manager import Embedder, EmbedLoader, Lease, Loader, ModelManager
from cove.models.options import SAMPLING_TO_OPTION, to_sampling
from cove.models.registry import ModelEntry, ModelRegistry
from cove.reasoning import Kind, ThinkParser, strip_reasoning
from cove.tools import ToolCall, ToolCalls, ToolSpec, tool_events
from cove.tools.messages import template_message, with_tool_prompt

ROLES = {"system", "developer", "user", "assistant", "tool"}

__all__ = ["ChatPipeline", "ChatRequest", "ChatStream", "EmbedLoader", "Loader", "load_llama"]


@dataclass
class ChatMessage:
    """One message: ``role`` (system, developer, user, assistant, tool), ``content`` text, and
    how many images it carried (images need a vision model)."""

    role: str
    content: str
    images: int = 0
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI shape: {id, type, function}
    tool_call_id: str | None = None


@dataclass
class ChatRequest:
    """A chat turn to generate. ``model`` None means the default model.

    ``explicit`` names the :class:`SamplingParams` fields the client set; the others take the
    model's preset defaults (None: every field is explicit). ``tools`` (validated, see
    :mod:`cove.tools`) lets the model answer with tool calls. ``num_ctx`` asks for a context
    window (an idle model is reloaded with it). ``keep_alive`` is seconds to keep the model
    loaded after this request (None: the default; < 0 forever; 0 unload at once).
    ``think`` False asks the template not to reason (``enable_thinking=False``); True on a
    model that cannot reason is an error. ``reasoning_budget`` caps reasoning in tokens: at the
    cap the reasoning is closed (``</think>`` is injected) and the model goes on to answer
    (a no-op for models that do not reason).
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


@dataclass(frozen=True)
class ChatDelta:
    """A streamed piece: ``kind`` is ``"reasoning"`` or ``"content"``, never both."""

    kind: Kind
    text: str


@dataclass(frozen=True)
class ChatDone:
    """End of a stream. ``finish_reason`` is OpenAI's: ``stop``, ``length`` or
    ``tool_calls``."""

    finish_reason: str
    usage: Usage
    reasoning_budget_exhausted: bool = False


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
                    yield ChatDone(reason, event.usage, event.forced)
        finally:
            self.cancel()

    async def collect(self) -> ChatResult:
        """Run to the end and return the whole answer."""
        parts: dict[str, list[str]] = {"reasoning": [], "content": []}
        done: ChatDone | None = None
        calls: list[ToolCall] = []
        async for item in self.items():
            if isinstance(item, ChatDelta):
                parts[item.kind].append(item.text)
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


def close_reasoning(engine: Engine, budget: int, in_reasoning: bool) -> ForcedContinuation:
    """The forced continuation that ends reasoning after ``budget`` tokens: the tokens of
    ``"\n</think>\n\n"``, unless ``</think>`` came already (and, when the prompt does not
    open the reasoning itself, only once the model wrote ``<think>``)."""
    tokens = engine.tokenize("\n</think>\n\n", add_bos=False, special=True)
    return ForcedContinuation(budget, tuple(tokens), "</think>",
                              None if in_reasoning else "<think>")


@dataclass
class Runtime:
    """A loaded chat model as the pipeline sees it."""

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
        kv_unified=settings.kv_unified,
    )


def load_llama_embedder(entry: ModelEntry, settings: Settings) -> Embedder:
    """Default embedding loader: the llama.cpp model in embedding mode."""
    from cove.engine.llama import LlamaEmbedder

    return LlamaEmbedder(entry.path, entry.name, n_ctx=min(settings.n_ctx, 8192),
                         n_threads=settings.n_threads)


class ChatPipeline:
    """Owns loaded models (through a :class:`ModelManager`) and turns requests into admitted
    generations.

    Args:
        settings: Cove settings (default model, queue size, keep-alive, memory budget, ...).
        registry: installed models.
        loader: builds an :class:`Engine` for a model entry (a parameter so tests can inject a
            scripted engine).
        embed_loader: builds an :class:`Embedder` for ``/api/embed`` (None: no embeddings).
    """

    def __init__(
        self, settings: Settings, registry: ModelRegistry, loader: Loader = load_llama,
        embed_loader: EmbedLoader | None = load_llama_embedder,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.models = ModelManager(settings, loader, embed_loader)

    def resolve(self, model: str | None) -> ModelEntry:
        """The installed model ``model`` names (the default model if None or empty).

        Raises:
            ModelNotFound: unknown or invalid model name.
        """
        return self.registry.resolve(model or self.settings.default_model)

    async def acquire(self, model: str | None, *, num_ctx: int | None = None) -> Lease:
        """Load (if needed) and hold the chat model ``model``; release the lease when done.

        Raises:
            ModelNotFound, InsufficientMemory, Overloaded, EngineFailure.
        """
        entry = self.resolve(model)
        return await self.models.acquire(entry, num_ctx=num_ctx or entry.options.get("num_ctx"))

    async def runtime(self, model: str | None) -> Runtime:
        """Load the model ``model`` and return it (for its info; it is not held).

        Raises:
            ModelNotFound: unknown or invalid model name.
        """
        lease = await self.acquire(model)
        lease.release()
        m = lease.loaded
        assert m.scheduler is not None
        return Runtime(m.entry, m.engine, m.scheduler)

    def status(self) -> dict[str, Any]:
        """Loaded models and their queue depth: ``{"loaded": [{"name", "n_ctx", "pending"}]}``."""
        return {
            "loaded": [
                {"name": m.entry.name, "n_ctx": m.engine.info.n_ctx,
                 "pending": m.scheduler.pending}
                for m in self.models.loaded() if m.scheduler is not None
            ]
        }

    def close(self) -> None:
        """Stop workers and free every loaded model."""
        self.models.close()

    async def start_chat(self, request: ChatRequest) -> ChatStream:
        """Validate, render with the model's chat template, tokenize and queue the request.

        Preset defaults of the model apply: its system prompt when the conversation has none,
        its options for every sampling field the request did not set.

        Raises:
            InvalidRequest: bad messages (empty, unknown role, text that is not valid Unicode,
                image for a text-only model), or ``think`` for a model that cannot reason.
            ContextLengthExceeded: the prompt does not fit the context window.
            ModelNotFound: unknown model. Overloaded: the queue is full.
        """
        entry = self.resolve(request.model)
        messages_in = list(request.messages)
        if entry.system and not any(m.role in ("system", "developer") for m in messages_in):
            messages_in.insert(0, ChatMessage("system", entry.system))
        lease = await self.acquire(request.model, num_ctx=request.num_ctx)
        try:
            rt = lease.loaded
            info = rt.engine.info
            thinks = bool(info.chat_template and "<think>" in info.chat_template)
            if request.think and not thinks:
                raise InvalidRequest(f"{entry.name} does not support thinking", param="think")
            native_tools = bool(request.tools and info.chat_template
                                and "tools" in info.chat_template)
            if request.tools and not native_tools:
                messages_in = with_tool_prompt(messages_in, request.tools)
            messages = self._template_messages(messages_in, info.vision, thinks)
            if len(messages) >= info.n_ctx:  # every message costs at least one token
                raise ContextLengthExceeded(len(messages), info.n_ctx, at_least=True)
            extra: dict[str, Any] = {"enable_thinking": False} if request.think is False else {}
            if request.tools and native_tools:
                extra["tools"] = request.tools.tools

            def render() -> tuple[str, list[int]]:
                text = render_chat(info.chat_template, messages, bos_token=info.bos_token,
                                   eos_token=info.eos_token, **extra)
                add_bos = info.add_bos and not (
                    info.bos_token and text.startswith(info.bos_token))
                return text, self._tokenize(rt.engine, text, add_bos, "messages")

            prompt_text, prompt = await asyncio.to_thread(render)
            parser = force = None
            if thinks:
                in_reasoning = prompt_text.rstrip().endswith("<think>")
                parser = ThinkParser(start_in_reasoning=in_reasoning)
                if request.reasoning_budget is not None and request.think is not False:
                    force = close_reasoning(rt.engine, request.reasoning_budget, in_reasoning)
            params = self._with_defaults(entry, request.params, request.explicit)
            if request.tools is not None:
                params = replace(params, grammar=request.tools.grammar())
            job = self._admit(rt.engine, rt.scheduler, prompt, params, "messages", force)
        except BaseException:
            lease.release(request.keep_alive)
            raise
        return ChatStream(info.name, job, parser, lease, request.keep_alive, request.tools)

    async def start_completion(
        self, model: str | None, prompt_text: str, params: SamplingParams, *,
        explicit: frozenset[str] | None = None, num_ctx: int | None = None,
        keep_alive: float | None = None,
    ) -> ChatStream:
        """Queue a raw text completion (no chat template, no reasoning split).

        Raises:
            InvalidRequest, ContextLengthExceeded, ModelNotFound, Overloaded: as
            :meth:`start_chat` (naming ``prompt``).
        """
        entry = self.resolve(model)
        lease = await self.acquire(model, num_ctx=num_ctx)
        try:
            rt = lease.loaded
            _check_text(prompt_text, "prompt")
            prompt = await asyncio.to_thread(
                self._tokenize, rt.engine, prompt_text, rt.engine.info.add_bos, "prompt")
            params = self._with_defaults(entry, params, explicit)
            job = self._admit(rt.engine, rt.scheduler, prompt, params, "prompt")
        except BaseException:
            lease.release(keep_alive)
            raise
        return ChatStream(rt.engine.info.name, job, None, lease, keep_alive)

    async def embed(self, model: str | None, texts: list[str], *, truncate: bool = True,
                    keep_alive: float | None = None) -> tuple[str, list[list[float]], int]:
        """Embed ``texts`` with ``model``: ``(model name, unit vectors, input token count)``.

        Raises:
            ModelNotFound. InvalidRequest: an input too long with ``truncate`` False, or no
            embedding support.
        """
        entry = self.resolve(model)
        lease = await self.models.acquire(entry, kind="embed")
        try:
            m = lease.loaded

            def run() -> tuple[list[list[float]], int]:
                with m.lock:
                    return m.engine.embed(texts, truncate)  # type: ignore[no-any-return]

            vectors, count = await asyncio.to_thread(run) if texts else ([], 0)
        finally:
            lease.release(keep_alive)
        return entry.name, vectors, count

    @staticmethod
    def _with_defaults(entry: ModelEntry, params: SamplingParams,
                       explicit: frozenset[str] | None) -> SamplingParams:
        if not entry.options or explicit is None:
            return params
        chosen = {SAMPLING_TO_OPTION[f] for f in explicit if f in SAMPLING_TO_OPTION}
        defaults = {k: v for k, v in entry.options.items() if k not in chosen}
        return to_sampling(defaults, base=params)

    @staticmethod
    def _tokenize(engine: Engine, text: str, add_bos: bool, param: str) -> list[int]:
        """Tokenize, refusing at once a text too long to fit even at the longest token per
        position (tokenizing megabytes only to refuse them would stall the server)."""
        info = engine.info
        size = len(text.encode("utf-8"))
        if size > info.n_ctx * max(1, info.max_token_bytes):
            at_least = -(-size // max(1, info.max_token_bytes))
            raise ContextLengthExceeded(at_least, info.n_ctx, param=param, at_least=True)
        return engine.tokenize(text, add_bos=add_bos, special=True)

    @staticmethod
    def _admit(engine: Engine, scheduler: Scheduler | None, prompt: list[int],
               params: SamplingParams, param: str,
               force: ForcedContinuation | None = None) -> Job:
        n_ctx = engine.info.n_ctx
        if not prompt:
            raise InvalidRequest("the prompt is empty", param=param)
        if len(prompt) >= n_ctx:
            raise ContextLengthExceeded(len(prompt), n_ctx, param=param)
        assert scheduler is not None
        return scheduler.submit(prompt, params, force)

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
            out.append(template_message(role, content, m.tool_calls, m.tool_call_id))
        return out
