"""Embedding requests with the models a user chats with: bounded, batched, cancellable (the
core behind ``/api/embed``, ``/api/embeddings`` and ``/v1/embeddings``; the small text embedder
that features use to rank text is :mod:`cove.embeddings`).

A request is checked against the limits (``embed_max_inputs`` inputs, ``embed_max_tokens``
tokens in all), tokenized, packed into batches of at most ``n_batch`` tokens (an input longer
than that is a batch of its own) and at most the embedder's ``n_seq_max`` inputs, and embedded
one batch per step on a worker thread. Between steps the request asks ``cancelled()`` (the
client went away) and stops; the model's other requests take turns step by step (an asyncio
lock per loaded embedder, first come first served), so one long request neither holds the
others back until it ends nor ties up the event loop's worker threads while it waits.
Vectors are cut to ``dimensions`` and scaled to unit length (as Matryoshka models are used).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np

from cove.config import Settings
from cove.errors import EngineFailure, InvalidRequest, Overloaded
from cove.models.manager import Embedder, Loaded, ModelManager
from cove.models.registry import ModelEntry

T = TypeVar("T")
Cancelled = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class EmbedRequest:
    """What to embed. ``inputs``: texts, or token-id lists of the model's own vocabulary (as
    llama.cpp's server takes them). ``truncate``: cut a text longer than the context (else a
    400); token-id inputs are never cut. ``dimensions``: keep the first N components; with
    ``strict_dimensions`` more than the model has is a 400 (OpenAI), else the whole vector is
    returned (Ollama). ``num_ctx``: the context (longest input) to load the model with."""

    model: str | None
    inputs: Sequence[str] | Sequence[Sequence[int]]
    truncate: bool = True
    dimensions: int | None = None
    strict_dimensions: bool = False
    num_ctx: int | None = None
    keep_alive: float | None = None


@dataclass(frozen=True)
class EmbedResult:
    """``vectors``: float32, shape ``(len(inputs), dimensions)``, each of unit length;
    ``prompt_tokens``: tokens embedded (after truncation); ``load_seconds``: time spent
    loading (or waiting for) the model."""

    model: str
    vectors: np.ndarray
    prompt_tokens: int
    load_seconds: float


def plan_batches(lengths: Sequence[int], max_tokens: int, max_inputs: int) -> list[list[int]]:
    """Pack inputs, in order, into batches of at most ``max_tokens`` tokens and ``max_inputs``
    inputs; an input longer than ``max_tokens`` goes alone. Returns lists of input indices."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        if current and (used + n > max_tokens or len(current) >= max_inputs):
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        batches.append(current)
    return batches


def unit_rows(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """``vectors`` (2-D) cut to their first ``dimensions`` columns and scaled to unit length.

    Raises:
        EngineFailure: a vector holds NaN or infinity.
    """
    out = np.array(vectors[:, :dimensions] if dimensions else vectors, dtype=np.float32)
    if not np.isfinite(out).all():
        raise EngineFailure("the model produced an embedding with NaN or infinite values")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.maximum(norms, 1e-12)
    return out


class _Turns:
    """Whose step it is on one loaded embedder: an asyncio lock (FIFO) and how many requests
    are using the model (for the queue limit)."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.requests = 0


class EmbedService:
    """Runs embedding requests on models loaded (kind ``embed``) by ``models``.

    Args:
        settings: ``embed_max_inputs``, ``embed_max_tokens``, ``n_batch`` (tokens per step),
            ``max_queue`` (requests that may wait for a model beyond the one running).
        models: the model manager (loads and holds the embedders).
    """

    def __init__(self, settings: Settings, models: ModelManager) -> None:
        self.settings = settings
        self.models = models
        self._turns: weakref.WeakKeyDictionary[Loaded, _Turns] = weakref.WeakKeyDictionary()

    async def embed(self, entry: ModelEntry, request: EmbedRequest,
                    cancelled: Cancelled | None = None) -> EmbedResult | None:
        """Embed ``request.inputs`` with ``entry``; None when ``cancelled()`` said the client
        went away (the remaining batches are not run). No inputs: only load the model.

        Raises:
            InvalidRequest: too many inputs or tokens, an empty input, an input longer than
                the context (``truncate`` False, or token ids), a token id outside the
                vocabulary, ``dimensions`` too large (strict), or no embedding support.
            Overloaded: ``max_queue`` requests already wait for this model.
            ModelNotFound, InsufficientMemory, EngineFailure: as loading a model.
        """
        limit = self.settings.embed_max_inputs
        if len(request.inputs) > limit:
            raise InvalidRequest(
                f"too many inputs: {len(request.inputs)}; at most {limit} per request "
                "(COVE_EMBED_MAX_INPUTS)", param="input", code="too_many_inputs")
        start = time.perf_counter()
        num_ctx = request.num_ctx or entry.options.get("num_ctx")
        lease = await self.models.acquire(entry, kind="embed", num_ctx=num_ctx)
        loaded_at = time.perf_counter()
        try:
            m = lease.loaded
            embedder: Embedder = m.engine
            if not request.inputs:
                return EmbedResult(entry.name, np.zeros((0, embedder.n_embd), np.float32), 0,
                                   loaded_at - start)
            dims = self._dimensions(request, embedder.n_embd)
            turns = self._turns.setdefault(m, _Turns())
            if turns.requests > self.settings.max_queue:
                raise Overloaded(f"{self.settings.max_queue} embedding requests are already "
                                 f"waiting for {entry.name}; try again later", 1)
            turns.requests += 1
            try:
                return await self._run(m, turns, request, dims, cancelled, entry.name,
                                       loaded_at - start)
            finally:
                turns.requests -= 1
        finally:
            lease.release(request.keep_alive)

    async def _run(self, m: Loaded, turns: _Turns, request: EmbedRequest, dims: int | None,
                   cancelled: Cancelled | None, name: str,
                   load_seconds: float) -> EmbedResult | None:
        embedder: Embedder = m.engine

        async def step(work: Callable[[], T]) -> T | None:
            """Run ``work`` on a worker thread in this request's turn; None if the client
            went away before it."""
            if cancelled is not None and await cancelled():
                return None
            async with turns.lock:
                if cancelled is not None and await cancelled():
                    return None

                def locked() -> T:
                    with m.lock:  # the manager closes a model only under this lock
                        return work()

                return await asyncio.to_thread(locked)

        tokens = await step(lambda: self._tokens(embedder, request))
        if tokens is None:
            return None
        batch_tokens = max(1, min(self.settings.n_batch, embedder.n_ctx))
        plan = plan_batches([len(t) for t in tokens], batch_tokens, embedder.n_seq_max)
        rows: list[np.ndarray] = []
        for batch in plan:
            out = await step(partial(_embed_batch, embedder, [tokens[i] for i in batch]))
            if out is None:
                return None
            rows.append(out)
        vectors = unit_rows(np.concatenate(rows), dims)
        return EmbedResult(name, vectors, sum(map(len, tokens)), load_seconds)

    def _tokens(self, embedder: Embedder, request: EmbedRequest) -> list[list[int]]:
        """Token ids of every input, checked against the context and the token limit
        (tokenizing stops as soon as the limit is passed)."""
        limit = self.settings.embed_max_tokens
        n_ctx = embedder.n_ctx
        out: list[list[int]] = []
        total = 0
        for i, item in enumerate(request.inputs):
            param = f"input[{i}]" if len(request.inputs) > 1 else "input"
            if isinstance(item, str):
                tokens = embedder.tokenize(item) if item else []
                if len(tokens) > n_ctx:
                    if not request.truncate:
                        raise _too_long(param, len(tokens), n_ctx)
                    tokens = tokens[:n_ctx]
            else:
                tokens = _checked_ids(item, embedder.n_vocab, param)
                if len(tokens) > n_ctx:
                    raise _too_long(param, len(tokens), n_ctx)
            if not tokens:
                raise InvalidRequest(f"{param} is empty: nothing to embed", param=param)
            total += len(tokens)
            if total > limit:
                raise InvalidRequest(
                    f"the inputs have more than {limit} tokens, the most one request may embed "
                    f"(COVE_EMBED_MAX_TOKENS); send fewer or shorter inputs",
                    param="input", code="too_many_tokens")
            out.append(tokens)
        return out

    @staticmethod
    def _dimensions(request: EmbedRequest, n_embd: int) -> int | None:
        """The columns to keep (None: all)."""
        dims = request.dimensions
        if dims is not None and dims > n_embd and request.strict_dimensions:
            raise InvalidRequest(f"dimensions is {dims}, but this model's embeddings have "
                                 f"{n_embd}", param="dimensions")
        return dims if dims is not None and dims < n_embd else None


def _embed_batch(embedder: Embedder, inputs: list[list[int]]) -> np.ndarray:
    out = np.asarray(embedder.embed_batch(inputs), dtype=np.float32)
    return out.reshape(len(inputs), -1)


def _too_long(param: str, n: int, n_ctx: int) -> InvalidRequest:
    return InvalidRequest(
        f"{param} has {n} tokens, more than the model's context of {n_ctx} tokens; shorten it "
        "(or let it be truncated)", param=param, code="context_length_exceeded")


def _checked_ids(ids: Sequence[Any], n_vocab: int, param: str) -> list[int]:
    out = [int(t) for t in ids]
    bad = next((t for t in out if not 0 <= t < n_vocab), None)
    if bad is not None:
        raise InvalidRequest(f"{param} holds token id {bad}, outside this model's vocabulary "
                             f"of {n_vocab} tokens", param=param)
    return out
