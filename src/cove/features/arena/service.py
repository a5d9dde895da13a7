"""Arena battles: one prompt answered by 2-4 models or presets at the same time.

Contestants whose weights are the same file (a model and its presets, or two presets of one
model) run on one loaded model, so the scheduler decodes them in one batch: each is sent to
that model with its own system prompt and sampling options (its preset's, the request's
``max_tokens``/``temperature``/``seed`` over them). In blind mode the slot letters are dealt
at random and the names hidden until the vote.

:func:`run_battle` yields events: ``delta`` ``{"slot", "kind", "text"}`` as answers stream,
``answer`` ``{"slot", "finish_reason", "usage"}`` as each ends.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from cove.chat import ChatDelta, ChatDone
from cove.engine.types import SamplingParams
from cove.errors import CoveError, InvalidRequest
from cove.models.options import to_sampling
from cove.models.registry import ModelEntry
from cove.pipeline import ChatMessage, ChatPipeline, ChatRequest, ChatStream

SLOTS = "ABCD"
MIN_MODELS, MAX_MODELS = 2, 4


@dataclass
class Contestant:
    """One side of a battle: its ``slot`` letter, the ``name`` it is rated under, the loaded
    model it ``runs`` on (shared by contestants with the same weights), its ``system`` prompt
    and ``params``."""

    slot: str
    name: str
    runs: str
    system: str | None
    params: SamplingParams


def _weights(entry: ModelEntry) -> str:
    return entry.digest or str(entry.path.resolve())


def plan(pipeline: ChatPipeline, models: list[str], *, blind: bool, max_tokens: int,
         temperature: float | None = None, seed: int | None = None) -> list[Contestant]:
    """The contestants of a battle over ``models`` (names as given; presets allowed).

    Raises:
        InvalidRequest: fewer than 2 or more than 4 models; in blind mode the same model
            twice (``param`` ``models``).
        ModelNotFound: an unknown model (``param`` ``models[i]``).
    """
    if not MIN_MODELS <= len(models) <= MAX_MODELS:
        raise InvalidRequest(f"a battle takes {MIN_MODELS} to {MAX_MODELS} models "
                             f"(got {len(models)})", param="models")
    entries = []
    for i, ref in enumerate(models):
        try:
            entries.append(pipeline.resolve(ref))
        except CoveError as e:
            e.param = f"models[{i}]"
            raise
    names = [e.name for e in entries]
    if blind and len(set(names)) < len(names):
        raise InvalidRequest("blind mode compares different models: the same model is named "
                             "twice (its answers could not be told apart by name anyway)",
                             param="models")
    if blind:
        random.SystemRandom().shuffle(entries)
    runs: dict[str, str] = {}
    asked: dict[str, Any] = {"num_predict": max_tokens, "temperature": temperature,
                             "seed": seed}
    asked = {k: v for k, v in asked.items() if v is not None}
    out = []
    for slot, entry in zip(SLOTS, entries, strict=False):
        runner = runs.setdefault(_weights(entry), entry.name)
        params = to_sampling({**entry.options, **asked})  # the request's over the preset's
        out.append(Contestant(slot, entry.name, runner, entry.system, params))
    return out


async def start(pipeline: ChatPipeline, contestants: list[Contestant], prompt: str,
                client: str | None = None) -> list[ChatStream]:
    """Queue every contestant's answer (all or none).

    Raises:
        InvalidRequest, ContextLengthExceeded, Overloaded, ...: from the pipeline (the others
            are cancelled).
    """
    async def one(c: Contestant) -> ChatStream:
        messages = [ChatMessage("user", prompt)]
        if c.system:
            messages.insert(0, ChatMessage("system", c.system))
        return await pipeline.start_chat(ChatRequest(messages, c.params, c.runs, None,
                                                     client=client))

    results = await asyncio.gather(*(one(c) for c in contestants), return_exceptions=True)
    streams = [r for r in results if isinstance(r, ChatStream)]
    for r in results:
        if isinstance(r, BaseException):
            for s in streams:
                s.cancel()
            raise r
    return streams


async def run_battle(contestants: list[Contestant],
                     streams: list[ChatStream]) -> AsyncIterator[dict[str, Any]]:
    """Interleave the answers' events as they come (module docstring); every stream is
    cancelled however the iteration ends."""
    queue: asyncio.Queue[tuple[str, ChatDelta | ChatDone | BaseException]] = asyncio.Queue()

    async def pump(slot: str, stream: ChatStream) -> None:
        try:
            async for item in stream:
                await queue.put((slot, item))
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            await queue.put((slot, e))

    tasks = [asyncio.ensure_future(pump(c.slot, s))
             for c, s in zip(contestants, streams, strict=True)]
    try:
        left = len(tasks)
        while left:
            slot, item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, ChatDelta):
                if item.text:
                    yield {"type": "delta", "slot": slot, "kind": item.kind, "text": item.text}
            else:
                left -= 1
                yield {"type": "answer", "slot": slot, "finish_reason": item.finish_reason,
                       "usage": {"prompt_tokens": item.usage.prompt_tokens,
                                 "completion_tokens": item.usage.completion_tokens}}
    finally:
        for t in tasks:
            t.cancel()
        for s in streams:
            s.cancel()
