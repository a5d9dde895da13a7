"""Remote models for the one chat pipeline: turn a :class:`~cove.chat.ChatRequest` (or a raw
completion) into an upstream OpenAI request and start a :class:`RemoteStream` on the router's
plan for it.

What is forwarded (OpenAI's chat fields, which vLLM, SGLang, llama-server and Cove all take):
``messages`` (role, content, ``tool_calls``, ``tool_call_id``, ``name``), the sampling fields
the client set (``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``,
``presence_penalty``, ``frequency_penalty``, ``logit_bias``, and the extensions ``top_k``,
``min_p``, ``repeat_penalty``/``repetition_penalty``), ``tools``/``tool_choice``/
``parallel_tool_calls``, ``response_format`` (structured output), ``think: false`` as
``chat_template_kwargs.enable_thinking``, and Anthropic's prefill as a final assistant message
with ``continue_final_message``. ``stream_options.include_usage`` is always asked for, so
usage is counted. Images, logprobs and reasoning budgets are refused (400).

**Affinity key.** :attr:`ChatRequest.affinity` when set (OpenAI's ``prompt_cache_key``; the
web app's conversation id), else the conversation's opening — its system messages and first
user message, which every later turn of the conversation repeats, so all its turns hash to the
same backend, the one whose prefix cache holds it.

**Reloading.** A running server follows ``backends.json``: on use (a request naming a model,
the model lists, the figures), at most once every :data:`RELOAD_EVERY` seconds, the file is
``stat``-ed, and when its modification time, size or inode changed it is read again and the
router updated (:meth:`~cove.backends.router.Router.update`: backends that remain keep their
figures and breaker state, removed ones drain). A file that is no longer valid JSON of the
documented shape is not used: the backends loaded before stay, and one warning says why (the
file's path and the parse error; no request content). So is a file that exists but cannot be
read (a symlink loop, no permission, a directory) or is over
:data:`~cove.backends.registry.MAX_FILE_BYTES` (it is parsed on a request's path); only a
missing file means no backends. A backend that would offer a local model's name (as
``cove backend add`` refuses) is left out, with a warning: local models stay local.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cove.backends.registry import FILE_NAME, BackendRegistry, file_signature
from cove.backends.remote import RemoteStream, refuse_unsupported
from cove.backends.router import Router, RouterConfig
from cove.chat import ChatRequest, ChatStream
from cove.config import Settings
from cove.engine.types import SamplingParams
from cove.errors import InvalidRequest

log = logging.getLogger("cove.backends")
RELOAD_EVERY = 1.0  # seconds between two looks at backends.json

_SAMPLING = {  # SamplingParams field -> upstream field(s)
    "max_tokens": ("max_tokens",), "temperature": ("temperature",), "top_p": ("top_p",),
    "seed": ("seed",), "presence_penalty": ("presence_penalty",),
    "frequency_penalty": ("frequency_penalty",), "top_k": ("top_k",), "min_p": ("min_p",),
    "repeat_penalty": ("repeat_penalty", "repetition_penalty"),
}
OPENING_CHARS = 4096  # how much of the conversation's opening the affinity key hashes


def sampling_fields(params: SamplingParams, explicit: frozenset[str] | None) -> dict[str, Any]:
    """The upstream fields of the sampling parameters the client set (all when ``explicit``
    is None); unset ones stay the backend's defaults."""
    out: dict[str, Any] = {}
    for name, keys in _SAMPLING.items():
        if explicit is not None and name not in explicit:
            continue
        value = getattr(params, name)
        if value is None:
            continue
        for k in keys:
            out[k] = value
    if params.stop:
        out["stop"] = list(params.stop)
    if params.logit_bias:
        out["logit_bias"] = {str(t): b for t, b in params.logit_bias}
    return out


def affinity_key(request: ChatRequest) -> str:
    """The key a conversation is routed by (see the module doc)."""
    if request.affinity:
        return "key:" + request.affinity
    opening: list[str] = []
    for m in request.messages:
        opening.append(f"{m.role}\x1f{m.content}")
        if m.role == "user":
            break
    return "open:" + "\x1e".join(opening)[:OPENING_CHARS]


def chat_body(request: ChatRequest) -> dict[str, Any]:
    """The upstream ``/chat/completions`` body (without ``model``) for ``request``.

    Raises:
        InvalidRequest: images, logprobs or a reasoning budget (not forwarded).
    """
    refuse_unsupported(any(m.images for m in request.messages),
                       request.params.logprobs is not None,
                       request.reasoning_budget is not None)
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        msg: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            msg["tool_calls"] = m.tool_calls
        if m.tool_call_id:
            msg["tool_call_id"] = m.tool_call_id
        if m.name:
            msg["name"] = m.name
        messages.append(msg)
    body: dict[str, Any] = {"messages": messages, "stream": True,
                            "stream_options": {"include_usage": True},
                            **sampling_fields(request.params, request.explicit)}
    if request.prefill:
        messages.append({"role": "assistant", "content": request.prefill})
        body.update(continue_final_message=True, add_generation_prompt=False)
    spec = request.tools
    if spec is not None:
        body["tools"] = spec.tools
        body["tool_choice"] = ({"type": "function", "function": {"name": spec.name}}
                               if spec.name else spec.choice)
        body["parallel_tool_calls"] = spec.parallel
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.think is False:
        body["chat_template_kwargs"] = {"enable_thinking": False}
    return body


class RemoteModels:
    """The remote half of the pipeline: the backend registry and its router.

    Args:
        settings: ``home`` (where ``backends.json`` lives) and the ``backend_*`` settings.
        registry: the backends (default: read from ``settings.home``); its file is followed
            (see the module doc).
        on_change: called with the registry at start and after each reload (the pipeline
            gives the egress guard the backends' hosts).
        is_local: whether a name resolves to a local model (its name or an alias), asked at
            start and on each reload; a backend offering such a name is left out (with a
            warning), so prompts meant for a local model stay on this machine.
        clock: seconds, monotonic (a parameter for tests).

    Raises:
        InvalidRequest: (at start) the file is not valid.
    """

    def __init__(self, settings: Settings, registry: BackendRegistry | None = None,
                 on_change: Callable[[BackendRegistry], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 is_local: Callable[[str], bool] | None = None) -> None:
        self._home = settings.home if registry is None else registry.path.parent
        self._seen = file_signature(self._home / FILE_NAME)  # before reading: no change lost
        self._is_local = is_local
        self.registry = self._keep_local_local(registry or BackendRegistry.load(self._home))
        self._on_change = on_change
        self._clock = clock
        self._checked = clock()
        self._lock = threading.Lock()
        if on_change is not None:
            on_change(self.registry)
        self.router = Router(self.registry, RouterConfig(
            breaker_failures=settings.backend_breaker_failures,
            breaker_cooldown=settings.backend_breaker_cooldown,
            balance=settings.backend_balance,
            connect_timeout=settings.backend_connect_timeout,
            first_byte_timeout=settings.backend_first_byte_timeout))

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read ``backends.json`` if it changed since it was last read (looked at once a
        :data:`RELOAD_EVERY` at most, unless ``force``); True when the backends were
        replaced. An invalid file keeps the backends in use (a warning is logged)."""
        now = self._clock()
        if not force and now - self._checked < RELOAD_EVERY:
            return False
        with self._lock:
            self._checked = now
            path = self._home / FILE_NAME
            seen = file_signature(path)
            if seen == self._seen:
                return False
            self._seen = seen
            try:
                registry = self._keep_local_local(BackendRegistry.load(self._home))
            except InvalidRequest as e:
                log.warning("backends.json changed but cannot be used, so the %d backends "
                            "loaded before are kept: %s", len(self.registry.backends), e.message)
                return False
            before = {b.name for b in self.registry.backends}
            after = {b.name for b in registry.backends}
            self.registry = registry
            self.router.update(registry)
            if self._on_change is not None:
                self._on_change(registry)
        log.info("backends.json re-read: %d backends (added: %s; removed: %s)", len(after),
                 ", ".join(sorted(after - before)) or "none",
                 ", ".join(sorted(before - after)) or "none")
        return True

    def _keep_local_local(self, registry: BackendRegistry) -> BackendRegistry:
        """``registry`` without the backends that offer a local model's name (each left out
        is named in a warning)."""
        if self._is_local is None:
            return registry
        kept = []
        for b in registry.backends:
            taken = sorted(p for p in b.offered() if self._is_local(p))
            if taken:
                log.warning("backend %s in backends.json is not used: %s %s a local model's "
                            "name (offer it under a prefix, e.g. \"prefix\": \"gpu/\")",
                            b.name, ", ".join(taken), "is" if len(taken) == 1 else "are")
            else:
                kept.append(b)
        return registry if len(kept) == len(registry.backends) else \
            BackendRegistry(registry.path, kept)

    def serves(self, model: str | None) -> bool:
        """Whether ``model`` names a remote model (``backends.json`` is followed)."""
        self.refresh()
        return self.router.serves(model)

    def names(self) -> list[str]:
        """The remote models' public names, sorted."""
        self.refresh()
        return sorted(self.router.pools)

    def start_chat(self, request: ChatRequest, n: int = 1) -> list[ChatStream]:
        """``n`` upstream streams for ``request`` (answer ``i`` seeded ``seed + i``); each
        starts when it is first awaited.

        Raises:
            InvalidRequest: what is not forwarded. BackendUnavailable: no backend usable.
        """
        assert request.model is not None
        body = chat_body(request)
        key = affinity_key(request)
        return [self._stream(request.model, "/chat/completions",
                             self._seeded(body, request.params, i), key, chat=True,
                             request=request) for i in range(n)]

    def start_completion(self, model: str, prompt: str, params: SamplingParams,
                         explicit: frozenset[str] | None, n: int = 1,
                         suffix: str | None = None) -> list[ChatStream]:
        """``n`` upstream ``/completions`` streams of ``prompt`` (raw text, no template).

        Raises:
            InvalidRequest: logprobs. BackendUnavailable.
        """
        refuse_unsupported(False, params.logprobs is not None, False)
        body: dict[str, Any] = {"prompt": prompt, "stream": True,
                                "stream_options": {"include_usage": True},
                                **sampling_fields(params, explicit)}
        if suffix:
            body["suffix"] = suffix
        key = "open:" + prompt[:OPENING_CHARS]
        return [self._stream(model, "/completions", self._seeded(body, params, i), key,
                             chat=False) for i in range(n)]

    def _stream(self, model: str, path: str, body: dict[str, Any], key: str, *, chat: bool,
                request: ChatRequest | None = None) -> ChatStream:
        plan = self.router.plan(model, key)
        return RemoteStream(self.router, model, plan, path, body, chat=chat,
                            tools=request.tools if request else None)

    @staticmethod
    def _seeded(body: dict[str, Any], params: SamplingParams, i: int) -> dict[str, Any]:
        if i == 0 or params.seed is None:
            return body
        return {**body, "seed": params.seed + i}

    def summaries(self) -> list[dict[str, Any]]:
        """Per-backend state and figures (see :class:`~cove.backends.router.BackendStats`)."""
        self.refresh()
        return self.router.summaries()

    async def aclose(self) -> None:
        await self.router.aclose()

