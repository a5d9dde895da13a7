"""The one chat pipeline: validate -> render -> tokenize -> admit -> generate -> split reasoning.

Every front end (OpenAI API, Ollama API, web app, CLI) converts its request into
a :class:`ChatRequest`, calls :meth:`ChatPipeline.start_chat` (which raises every client mistake
*before* anything is streamed) and then iterates the returned :class:`ChatStream`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from typing import Any

from cove import privacy
from cove.backends.service import RemoteModels
from cove.chat import (
    ROLES,
    ChatDelta,
    ChatDone,
    ChatMessage,
    ChatRequest,
    ChatResult,
    ChatStream,
    check_text,
)
from cove.config import Settings
from cove.embed_service import Cancelled, EmbedRequest, EmbedResult, EmbedService
from cove.engine.scheduler import Job, Scheduler
from cove.engine.template import render_chat
from cove.engine.types import (
    Engine,
    ForcedContinuation,
    SamplingParams,
)
from cove.errors import ContextLengthExceeded, CoveError, InvalidRequest
from cove.images import check_count, normalise_all
from cove.models import capabilities
from cove.models.manager import (
    Embedder,
    EmbedLoader,
    Lease,
    Loader,
    ModelManager,
    context_window,
)
from cove.models.options import SAMPLING_TO_OPTION, to_sampling
from cove.models.registry import ModelEntry, ModelRegistry
from cove.reasoning import ThinkParser, strip_reasoning
from cove.tools.messages import template_message, with_tool_prompt
from cove.tools.select import select_tools
from cove.tools.spec import ToolSpec
from cove.tools.stream import CallScanner

__all__ = [
    "ROLES", "ChatDelta", "ChatDone", "ChatMessage", "ChatPipeline", "ChatRequest", "ChatResult",
    "ChatStream", "EmbedLoader", "Loader", "load_llama",
]


IMAGE_MARKER = "\ue000cove:image\ue000"  # where an image goes in the rendered prompt


def with_markers(m: ChatMessage) -> ChatMessage:
    """``m`` with one :data:`IMAGE_MARKER` line per image before its text (as Ollama puts
    images first); the rendered prompt is cut at the markers and each image's tokens go
    there."""
    if not m.images:
        return m
    return replace(m, content="".join(f"{IMAGE_MARKER}\n" for _ in m.images) + m.content)


def close_reasoning(engine: Engine, budget: int, in_reasoning: bool) -> ForcedContinuation:
    """The forced continuation that ends reasoning after ``budget`` tokens: the tokens of
    ``"\n</think>\n\n"``, unless ``</think>`` came already (and, when the prompt does not
    open the reasoning itself, only once the model wrote ``<think>``)."""
    tokens = engine.tokenize("\n</think>\n\n", add_bos=False, special=True)
    return ForcedContinuation(budget, tuple(tokens), "</think>",
                              None if in_reasoning else "<think>")


def _resolves(registry: ModelRegistry, name: str) -> bool:
    """Whether ``name`` names an installed model (its name or an alias)."""
    try:
        registry.resolve(name)
    except CoveError:
        return False
    return True


@dataclass
class Runtime:
    """A loaded chat model as the pipeline sees it."""

    entry: ModelEntry
    engine: Engine
    scheduler: Scheduler


def load_llama(entry: ModelEntry, settings: Settings) -> Engine:
    """Default loader: the llama.cpp engine with the settings' context, threads and batch, and
    the entry's vision projector when it has one."""
    from cove.engine.llama import LlamaEngine

    return LlamaEngine(
        entry.path,
        entry.name,
        n_ctx=context_window(entry, settings),
        n_slots=settings.n_parallel,
        n_threads=settings.n_threads,
        n_batch=settings.n_batch,
        kv_unified=settings.kv_unified,
        projector=entry.projector,
        lora=entry.adapter,
    )


def load_llama_embedder(entry: ModelEntry, settings: Settings) -> Embedder:
    """Default embedding loader: the llama.cpp model in embedding mode, its longest input
    ``n_ctx`` tokens (at most 8192: one batch is sized for it)."""
    from cove.engine.llama_embed import LlamaEmbedder

    n_ctx = min(context_window(entry, settings, "embed"), 8192)
    return LlamaEmbedder(entry.path, entry.name, n_ctx=n_ctx, n_threads=settings.n_threads)


class ChatPipeline:
    """Owns loaded models (through a :class:`ModelManager`) and turns requests into admitted
    generations.

    Args:
        settings: Cove settings (default model, queue size, keep-alive, memory budget, ...).
        registry: installed models.
        loader: builds an :class:`Engine` for a model entry (a parameter so tests can inject a
            scripted engine).
        embed_loader: builds an :class:`Embedder` for ``/api/embed`` (None: no embeddings).

    Remote models (the backends of ``$COVE_HOME/backends.json``, :mod:`cove.backends`) are
    driven through the same :meth:`start_chat` / :meth:`start_completion`: their streams are
    :class:`~cove.backends.remote.RemoteStream` items of the same kinds, and the egress guard
    allows exactly their hosts.
    """

    def __init__(
        self, settings: Settings, registry: ModelRegistry, loader: Loader = load_llama,
        embed_loader: EmbedLoader | None = load_llama_embedder,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.models = ModelManager(settings, loader, embed_loader)
        self.embeddings = EmbedService(settings, self.models)
        self.remote = RemoteModels(
            settings, on_change=lambda backends: privacy.allow_backends(backends.hosts()),
            is_local=lambda name: _resolves(registry, name))

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

    def vision_models(self) -> list[str]:
        """Installed models that read images (they have a vision projector), default model
        first when it is one: for a feature that wants an image described, as
        ``start_chat(ChatRequest([ChatMessage("user", "Describe it.", images=[data])],
        params, model))``, ``data`` the image's bytes (checked and normalised here)."""
        names = [e.name for e in self.registry.list() if e.projector is not None]
        try:
            default = self.resolve(None).name
        except CoveError:
            return names
        return sorted(names, key=lambda n: n != default)

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

    def model_names(self) -> list[str]:
        """Every model a request may name: the installed ones, then the remote ones."""
        return [e.name for e in self.registry.list()] + self.remote.names()

    async def start_chat(self, request: ChatRequest) -> ChatStream:
        """Validate, render with the model's chat template, tokenize and queue the request.

        Preset defaults of the model apply: its system prompt when the conversation has none,
        its options for every sampling field the request did not set. Of a request with more
        than ``max_prompt_tools`` tools only the most relevant are used (the stream's
        ``tools.offered`` then says how many there were).

        Raises:
            InvalidRequest: bad messages (empty, unknown role, text that is not valid Unicode,
                image for a text-only model), or ``think`` for a model that cannot reason.
            ContextLengthExceeded: the prompt does not fit the context window.
            ModelNotFound: unknown model. Overloaded: the queue is full.
        """
        return (await self.start_chat_choices(request, 1))[0]

    async def start_chat_choices(self, request: ChatRequest, n: int,
                                 n_param: str = "n") -> list[ChatStream]:
        """Like :meth:`start_chat`, for ``n`` answers to the one prompt (OpenAI's ``n``),
        decoded side by side: the first computes the prompt's KV cells and the others copy
        them (see the scheduler). With a ``seed``, answer ``i`` uses ``seed + i``.

        Raises:
            InvalidRequest: as :meth:`start_chat`, or ``n`` above the model's slots (naming
                ``n_param``). Overloaded: the queue cannot take all ``n`` (none is queued).
        """
        self._check_image_count(request)
        if self.remote.serves(request.model):
            if n > self.settings.n_parallel:
                raise InvalidRequest(f"{n_param} may be at most {self.settings.n_parallel} "
                                     "(COVE_N_PARALLEL)", param=n_param)
            return self.remote.start_chat(request, n)
        entry = self.resolve(request.model)
        capabilities.require_completion(entry.name, await asyncio.to_thread(entry.meta))
        leases = [await self.acquire(request.model, num_ctx=request.num_ctx)]
        try:
            rt = leases[0].loaded
            info = rt.engine.info
            request = await self._choose_tools(request)
            prompt_text, prompt, thinks = await self._render(entry, rt.engine, request)
            force = None
            in_reasoning = prompt_text.rstrip().endswith("<think>")
            if thinks and request.reasoning_budget is not None and request.think is not False:
                force = close_reasoning(rt.engine, request.reasoning_budget, in_reasoning)
            params = self._with_defaults(entry, request.params, request.explicit)
            if request.tools is not None:
                params = replace(params, grammar=request.tools.grammar())
            jobs = await self._admit(rt.engine, rt.scheduler, prompt, params, "messages", force,
                                     n=n, n_param=n_param, leases=leases, ref=request.model,
                                     num_ctx=request.num_ctx, client=request.client,
                                     tools=request.tools)
        except BaseException:
            for lease in leases:
                lease.release(request.keep_alive)
            raise
        return [ChatStream(info.name, job, ThinkParser(start_in_reasoning=in_reasoning)
                           if thinks else None, lease, request.keep_alive, request.tools)
                for job, lease in zip(jobs, leases, strict=True)]

    async def count_tokens(self, request: ChatRequest) -> int:
        """How many prompt tokens ``request`` renders to (system, tools and messages, with the
        model's chat template), without generating. A prompt longer than the context window is
        counted, not refused.

        Raises:
            InvalidRequest: bad messages, as :meth:`start_chat`. ModelNotFound.
        """
        self._check_image_count(request)
        if self.remote.serves(request.model):
            raise InvalidRequest(f"{request.model} is a remote model: its tokens cannot be "
                                 "counted here", param="model")
        entry = self.resolve(request.model)
        lease = await self.acquire(request.model, num_ctx=request.num_ctx)
        try:
            request = await self._choose_tools(request)
            _, prompt, _ = await self._render(entry, lease.loaded.engine, request, bounded=False)
        finally:
            lease.release(request.keep_alive)
        return len(prompt)

    async def _choose_tools(self, request: ChatRequest) -> ChatRequest:
        """``request`` with at most ``max_prompt_tools`` of its tools, the most relevant to the
        conversation (:func:`cove.tools.select.select_tools`; the embedder loads on first use,
        so this runs off the event loop)."""
        if request.tools is None:
            return request
        tools = await asyncio.to_thread(select_tools, request.tools, request.messages,
                                        self.settings.max_prompt_tools)
        return replace(request, tools=tools)

    async def _render(self, entry: ModelEntry, engine: Engine, request: ChatRequest, *,
                      bounded: bool = True) -> tuple[str, list[int], bool]:
        """``(prompt text, prompt tokens, whether the model reasons)`` of a chat request: the
        preset's system prompt when the conversation has none, tools (in the template, or
        described in the system message), the chat template, then ``prefill``. ``bounded``
        refuses at once a prompt that cannot fit the context window.

        Raises:
            InvalidRequest: bad messages (``param`` names the request's own message index),
                ``think`` for a model that cannot reason.
            ContextLengthExceeded: (``bounded``) the prompt cannot fit.
        """
        info = engine.info
        thinks = capabilities.thinks(info.chat_template)
        if request.think and not thinks:
            raise InvalidRequest(f"{entry.name} does not support thinking", param="think")
        self._check_messages(request.messages, info.vision, entry.name)
        check_text(request.prefill, "prefill")
        if request.tools:
            check_text(json.dumps(request.tools.tools, ensure_ascii=False), "tools")
        messages_in = [with_markers(m) for m in request.messages]
        if entry.system and not any(m.role in ("system", "developer") for m in messages_in):
            messages_in.insert(0, ChatMessage("system", entry.system))
        native_tools = bool(request.tools and capabilities.renders_tools(info.chat_template))
        if request.tools and not native_tools:
            messages_in = with_tool_prompt(messages_in, request.tools)
        messages = self._template_messages(messages_in, thinks)
        if bounded and len(messages) >= info.n_ctx:  # every message costs at least one token
            raise ContextLengthExceeded(len(messages), info.n_ctx, at_least=True)
        extra: dict[str, Any] = {"enable_thinking": False} if request.think is False else {}
        if request.tools and native_tools:
            extra["tools"] = request.tools.tools

        settings = self.settings

        def render() -> tuple[str, list[int]]:
            text = render_chat(info.chat_template, messages, bos_token=info.bos_token,
                               eos_token=info.eos_token, **extra) + request.prefill
            add_bos = info.add_bos and not (info.bos_token and text.startswith(info.bos_token))
            if not any(m.images for m in request.messages):
                return text, self._tokenize(engine, text, add_bos, "messages", bounded)
            pictures = normalise_all(
                [(raw, f"messages[{i}].images") for i, m in enumerate(request.messages)
                 for raw in m.images],
                max_images=settings.max_images,
                max_total_pixels=settings.image_max_total_pixels,
                max_pixels=settings.image_max_pixels, max_side=settings.image_max_side,
                param=request.images_param)
            pieces = text.split(IMAGE_MARKER)
            if len(pieces) != len(pictures) + 1:
                raise InvalidRequest("the chat template dropped or repeated an image",
                                     param="messages")
            tokens = self._tokenize(engine, pieces[0], add_bos, "messages", bounded)
            for picture, piece in zip(pictures, pieces[1:], strict=True):
                tokens += engine.image_tokens(picture.data, picture.rgb(), picture.width,
                                              picture.height)
                tokens += self._tokenize(engine, piece, False, "messages", bounded)
            return text, tokens

        text, prompt = await asyncio.to_thread(render)
        return text, prompt, thinks

    async def start_completion(
        self, model: str | None, prompt_text: str, params: SamplingParams, *,
        explicit: frozenset[str] | None = None, num_ctx: int | None = None,
        keep_alive: float | None = None, suffix: str | None = None, client: str | None = None,
    ) -> ChatStream:
        """Queue a raw text completion (no chat template, no reasoning split); ``client`` as
        :attr:`ChatRequest.client`. With a ``suffix``, fill in the middle between
        ``prompt_text`` and it (see :meth:`start_completion_choices`).

        Raises:
            InvalidRequest, ContextLengthExceeded, ModelNotFound, Overloaded: as
            :meth:`start_chat` (naming ``prompt``); ``suffix`` for a model without
            fill-in-the-middle tokens.
        """
        return (await self.start_completion_choices(
            model, prompt_text, params, explicit=explicit, num_ctx=num_ctx,
            keep_alive=keep_alive, suffix=suffix, client=client))[0]

    async def start_completion_choices(
        self, model: str | None, prompt_text: str, params: SamplingParams, *,
        explicit: frozenset[str] | None = None, num_ctx: int | None = None,
        keep_alive: float | None = None, suffix: str | None = None, n: int = 1,
        n_param: str = "n", client: str | None = None,
    ) -> list[ChatStream]:
        """Like :meth:`start_completion`, for ``n`` completions of the one prompt (as
        :meth:`start_chat_choices`).

        With a ``suffix`` the prompt is llama-server's ``/infill`` layout: ``[BOS] FIM_PRE
        prefix FIM_SUF suffix FIM_MID`` (prefix and suffix tokenized without parsing special
        tokens), so the model writes the middle.

        Raises:
            As :meth:`start_completion`, and :meth:`start_chat_choices` for ``n``.
        """
        if self.remote.serves(model):
            assert model is not None
            if n > self.settings.n_parallel:
                raise InvalidRequest(f"{n_param} may be at most {self.settings.n_parallel} "
                                     "(COVE_N_PARALLEL)", param=n_param)
            check_text(prompt_text, "prompt")
            return self.remote.start_completion(model, prompt_text, params, explicit, n, suffix)
        entry = self.resolve(model)
        capabilities.require_completion(entry.name, await asyncio.to_thread(entry.meta))
        leases = [await self.acquire(model, num_ctx=num_ctx)]
        try:
            rt = leases[0].loaded
            info = rt.engine.info
            check_text(prompt_text, "prompt")
            if suffix is not None:
                if info.fim is None:
                    raise InvalidRequest(
                        f"{entry.name} cannot fill in the middle: its vocabulary has no "
                        "fill-in-the-middle tokens (GGUF tokenizer.ggml.fim_pre_token_id, ...); "
                        "use a code model that has them, or leave out suffix", param="suffix")
                check_text(suffix, "suffix")
                prompt = await asyncio.to_thread(self._fim_prompt, rt.engine, prompt_text,
                                                 suffix)
            else:
                prompt = await asyncio.to_thread(
                    self._tokenize, rt.engine, prompt_text, info.add_bos, "prompt")
            params = self._with_defaults(entry, params, explicit)
            jobs = await self._admit(rt.engine, rt.scheduler, prompt, params, "prompt", n=n,
                                     n_param=n_param, leases=leases, ref=model,
                                     num_ctx=num_ctx, client=client)
        except BaseException:
            for lease in leases:
                lease.release(keep_alive)
            raise
        return [ChatStream(info.name, job, None, lease, keep_alive)
                for job, lease in zip(jobs, leases, strict=True)]

    async def embed(self, request: EmbedRequest,
                    cancelled: Cancelled | None = None) -> EmbedResult | None:
        """Embed ``request`` (see :meth:`cove.embed_service.EmbedService.embed`); None when
        ``cancelled()`` reported the client gone.

        Raises:
            ModelNotFound, InvalidRequest, Overloaded, InsufficientMemory, EngineFailure.
        """
        return await self.embeddings.embed(self.resolve(request.model), request, cancelled)

    @staticmethod
    def _with_defaults(entry: ModelEntry, params: SamplingParams,
                       explicit: frozenset[str] | None) -> SamplingParams:
        if not entry.options or explicit is None:
            return params
        chosen = {SAMPLING_TO_OPTION[f] for f in explicit if f in SAMPLING_TO_OPTION}
        defaults = {k: v for k, v in entry.options.items() if k not in chosen}
        return to_sampling(defaults, base=params)

    @staticmethod
    def _tokenize(engine: Engine, text: str, add_bos: bool, param: str,
                  bounded: bool = True, special: bool = True) -> list[int]:
        """Tokenize, refusing at once (``bounded``) a text too long to fit even at the longest
        token per position (tokenizing megabytes only to refuse them would stall the server);
        ``special`` parses special-token texts such as ``<|im_start|>``."""
        info = engine.info
        size = len(text.encode("utf-8"))
        if bounded and size > info.n_ctx * max(1, info.max_token_bytes):
            at_least = -(-size // max(1, info.max_token_bytes))
            raise ContextLengthExceeded(at_least, info.n_ctx, param=param, at_least=True)
        return engine.tokenize(text, add_bos=add_bos, special=special)

    @classmethod
    def _fim_prompt(cls, engine: Engine, prefix: str, suffix: str) -> list[int]:
        """``[BOS] FIM_PRE prefix FIM_SUF suffix FIM_MID`` (llama-server's ``format_infill``,
        without its repository context), the texts' special-token look-alikes kept as
        text."""
        info = engine.info
        assert info.fim is not None
        pre, suf, mid = info.fim
        bos = engine.tokenize("", add_bos=True, special=False) if info.add_bos else []
        return [*bos, pre, *cls._tokenize(engine, prefix, False, "prompt", special=False),
                suf, *cls._tokenize(engine, suffix, False, "suffix", special=False), mid]

    async def _admit(self, engine: Engine, scheduler: Scheduler | None, prompt: list[int],
                     params: SamplingParams, param: str,
                     force: ForcedContinuation | None = None, *, n: int = 1,
                     n_param: str = "n", leases: list[Lease], ref: str | None,
                     num_ctx: int | None, client: str | None = None,
                     tools: ToolSpec | None = None) -> list[Job]:
        """Queue ``n`` jobs for ``prompt`` (answer ``i`` seeded ``seed + i``) for ``client``,
        all or none; ``leases`` (holding one) gets one lease per job. With ``tools``, each job
        watches its own text for a tool call repeated verbatim, which ends the generation.

        Raises:
            InvalidRequest: empty prompt, ``n`` above the slots, a ``logit_bias`` token
                outside the vocabulary. ContextLengthExceeded. Overloaded.
        """
        n_ctx = engine.info.n_ctx
        if not prompt:
            raise InvalidRequest("the prompt is empty", param=param)
        if len(prompt) >= n_ctx:
            raise ContextLengthExceeded(len(prompt), n_ctx, param=param)
        if n > engine.n_slots:
            raise InvalidRequest(
                f"{n_param} may be at most {engine.n_slots}: the answers are decoded side by "
                f"side, one per slot (COVE_N_PARALLEL={engine.n_slots})", param=n_param)
        n_vocab = engine.info.n_vocab
        for token, _ in params.logit_bias:
            if n_vocab and token >= n_vocab:
                raise InvalidRequest(f"logit_bias names token {token}, outside the "
                                     f"vocabulary (0-{n_vocab - 1})", param="logit_bias")
        assert scheduler is not None
        while len(leases) < n:
            leases.append(await self.acquire(ref, num_ctx=num_ctx))
        jobs: list[Job] = []
        try:
            for i in range(n):
                seeded = params if i == 0 or params.seed is None else replace(
                    params, seed=params.seed + i)
                if tools is not None:  # the scanner is stateful: one per answer
                    seeded = replace(seeded, watch=CallScanner(tools).repeats)
                jobs.append(scheduler.submit(prompt, seeded, force, client))
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
        return jobs

    def _check_image_count(self, request: ChatRequest) -> None:
        """Refuse, before a model is loaded or an image decoded, a request with more than
        ``max_images`` images over its conversation (the pixel budget is checked from the
        headers when the prompt is rendered, :func:`cove.images.normalise_all`)."""
        check_count(sum(len(m.images) for m in request.messages), self.settings.max_images,
                    request.images_param)

    @staticmethod
    def _check_messages(messages: list[ChatMessage], vision: bool, model: str) -> None:
        """Refuse bad messages, naming them by their index in the request."""
        if not messages:
            raise InvalidRequest("messages must contain at least one message", param="messages")
        for i, m in enumerate(messages):
            if m.role not in ROLES:
                raise InvalidRequest(
                    f"unknown role {m.role!r}; expected one of: {', '.join(sorted(ROLES))}",
                    param=f"messages[{i}].role",
                )
            if m.images and not vision:
                raise InvalidRequest(
                    f"{model} cannot read images: it is a text-only model (no vision "
                    "projector); send text only, or use a vision model such as smolvlm:256m",
                    param=f"messages[{i}].content",
                )
            check_text(m.content, f"messages[{i}].content")
            if IMAGE_MARKER in m.content:
                raise InvalidRequest("the text holds Cove's reserved image marker",
                                     param=f"messages[{i}].content")

    @staticmethod
    def _template_messages(messages: list[ChatMessage], thinking: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in messages:
            role = "system" if m.role == "developer" else m.role
            content = m.content
            if role == "assistant" and thinking:
                content = strip_reasoning(content)
            message = template_message(role, content, m.tool_calls, m.tool_call_id)
            if m.name:
                message["name"] = m.name
            out.append(message)
        return out
