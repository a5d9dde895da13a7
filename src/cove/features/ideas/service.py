"""The brainstorm: generate, deduplicate, group, score, rank — as a stream of events.

:func:`brainstorm` yields plain dicts (the ``/v1/ideas`` events; see :mod:`.routes`):

1. ``{"type": "start", "goal", "n", "criteria", "model", "requests"}``
2. ``{"type": "candidate", "idea": {"id", "title", "pitch", "why", "lens", "temperature",
   "seed", "duplicate_of"}}`` for every idea the model wrote, as its request finishes
   (``duplicate_of``: the id of the kept idea it repeats, or None when kept)
3. ``{"type": "score", "id", "score", "scores": {criterion: mean}, "samples"}`` for each kept
   idea once its scorings finish (they start as soon as the idea is kept, so they may come
   between candidates)
4. ``{"type": "group", "group": {"id", "name", "ideas": [ids]}}`` once every candidate is in
5. ``{"type": "done", "ideas": [ranked], "groups", "criteria", "candidates", "duplicates",
   "usage": {"prompt_tokens", "completion_tokens", "requests", "scoring_completion_tokens"},
   "seconds", "model"}`` (``completion_tokens`` counts generation and scoring)

Generation: ``ceil(1.25 n / 3)`` requests of three ideas each (one prompt read per three
ideas), request ``i`` with lens ``i`` (cycled), temperature ``TEMPERATURES[i % 3]`` and seed
``seed + i``, at most ``COVE_N_PARALLEL`` at a time so the scheduler decodes them side by side;
they stop once ``n`` distinct ideas are in, and up to three top-up rounds (each of
``max(2, ceil(2 * missing / 3))`` requests, told the titles found) run when duplicates or
answers cut short left fewer. A model that keeps repeating itself can still leave fewer than
``n`` (the bundled 135M model gave 10 of 12 once, with two top-up rounds of one request).
Scoring: each kept idea is rated 1-10 on every criterion by
``score_samples`` requests (seeds differ), constrained to a rubric schema, and its score is the
mean over criteria of the per-criterion means; ideas are ranked by score (unscored last), ties
by arrival.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cove.engine.types import SamplingParams
from cove.errors import InvalidRequest
from cove.features.ideas import (
    DEFAULT_CRITERIA,
    MAX_GOAL_CHARS,
    MAX_IDEAS,
    MAX_ITEM_CHARS,
    MAX_ITEMS,
)
from cove.features.ideas.cluster import Deduper, agglomerate, theme_name
from cove.features.ideas.prompts import (
    LENSES,
    PER_REQUEST,
    SYSTEM,
    TEMPERATURES,
    generation_prompt,
    idea_schema,
    read_ideas,
    read_scores,
    rubric_schema,
    scoring_prompt,
)
from cove.pipeline import ChatMessage, ChatPipeline, ChatRequest
from cove.structured import schema_grammar

EXPLICIT = frozenset({"max_tokens", "temperature", "seed"})
TOP_UPS = 3
SCORE_TOKENS = 40  # a rubric of a few criteria is ~8 tokens each


@dataclass
class Brainstorm:
    """A brainstorm request (see :func:`check`): ``goal``, ``constraints``, ``criteria``
    (default :data:`DEFAULT_CRITERIA`), ``n`` ideas, ``model`` (None: default), ``seed``
    (None: random), ``max_tokens`` per generation request, ``score_samples`` scorings per
    idea (0: no scoring), ``client`` (the scheduler's fair-share key)."""

    goal: str
    constraints: list[str] = field(default_factory=list)
    criteria: list[str] = field(default_factory=list)
    n: int = 12
    model: str | None = None
    seed: int | None = None
    max_tokens: int = 360
    score_samples: int = 2
    client: str | None = None


def _check_list(items: list[str], param: str) -> list[str]:
    out = [i.strip() for i in items if i.strip()]
    if len(out) > MAX_ITEMS:
        raise InvalidRequest(f"at most {MAX_ITEMS} {param}", param=param)
    for i, item in enumerate(out):
        if len(item) > MAX_ITEM_CHARS:
            raise InvalidRequest(f"each of {param} may be at most {MAX_ITEM_CHARS} characters",
                                 param=f"{param}[{i}]")
    return out


def check(req: Brainstorm) -> Brainstorm:
    """``req`` with blank items dropped and default criteria filled in.

    Raises:
        InvalidRequest: an empty goal or one over :data:`MAX_GOAL_CHARS`; ``n`` outside
            1..:data:`MAX_IDEAS`; more than :data:`MAX_ITEMS` constraints or criteria or one
            over :data:`MAX_ITEM_CHARS`; ``max_tokens`` outside 32..4096; ``score_samples``
            outside 0..5 (``param`` names the field).
    """
    goal = req.goal.strip()
    if not goal:
        raise InvalidRequest("the goal is empty", param="goal")
    if len(goal) > MAX_GOAL_CHARS:
        raise InvalidRequest(f"the goal may be at most {MAX_GOAL_CHARS} characters "
                             f"(got {len(goal)})", param="goal")
    if not 1 <= req.n <= MAX_IDEAS:
        raise InvalidRequest(f"n must be between 1 and {MAX_IDEAS}", param="n")
    if not 32 <= req.max_tokens <= 4096:
        raise InvalidRequest("max_tokens must be between 32 and 4096", param="max_tokens")
    if not 0 <= req.score_samples <= 5:
        raise InvalidRequest("score_samples must be between 0 and 5", param="score_samples")
    criteria = _check_list(req.criteria, "criteria") or list(DEFAULT_CRITERIA)
    return Brainstorm(goal, _check_list(req.constraints, "constraints"), criteria, req.n,
                      req.model, req.seed, req.max_tokens, req.score_samples, req.client)


async def _embed(texts: list[str]) -> Any:
    from cove.embeddings import embed

    return await asyncio.to_thread(embed, texts)


def idea_text(idea: dict[str, Any]) -> str:
    """The text an idea is compared and grouped by: ``"title. pitch"``."""
    return f"{idea['title']}. {idea['pitch']}"


class _Run:
    """The state of one brainstorm while it runs."""

    def __init__(self, pipeline: ChatPipeline, req: Brainstorm) -> None:
        self.pipeline, self.req = pipeline, req
        self.base = random.randrange(2**31) if req.seed is None else req.seed
        self.limit = asyncio.Semaphore(pipeline.settings.n_parallel)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.candidates: list[dict[str, Any]] = []
        self.kept: list[dict[str, Any]] = []
        self.vectors: list[Any] = []
        self.dedup = Deduper()
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0,
                      "scoring_completion_tokens": 0}
        self.scoring: list[asyncio.Task[None]] = []
        self.grammar = schema_grammar(idea_schema(), "schema")
        self.rubric = schema_grammar(rubric_schema(len(req.criteria)), "schema")
        self.requests = 0

    async def ask(self, user: str, params: SamplingParams, scoring: bool = False) -> str:
        """One schema-constrained request; its text (usage counted)."""
        req = ChatRequest([ChatMessage("system", SYSTEM), ChatMessage("user", user)], params,
                          self.req.model, EXPLICIT, client=self.req.client)
        async with self.limit:
            stream = await self.pipeline.start_chat(req)
            result = await stream.collect()
        self.usage["prompt_tokens"] += result.usage.prompt_tokens
        self.usage["completion_tokens"] += result.usage.completion_tokens
        self.usage["requests"] += 1
        if scoring:
            self.usage["scoring_completion_tokens"] += result.usage.completion_tokens
        return result.content

    async def generate(self, i: int, avoid: list[str]) -> tuple[int, list[dict[str, Any]]]:
        lens = LENSES[i % len(LENSES)]
        temperature = TEMPERATURES[i % len(TEMPERATURES)]
        params = SamplingParams(max_tokens=self.req.max_tokens, temperature=temperature,
                                seed=self.base + i, grammar=self.grammar)
        text = await self.ask(generation_prompt(self.req.goal, self.req.constraints, lens,
                                                avoid), params)
        return i, [{**idea, "lens": lens.name, "temperature": temperature,
                    "seed": self.base + i} for idea in read_ideas(text)]

    async def take(self, ideas: list[dict[str, Any]]) -> None:
        """Deduplicate one request's ideas; emit them; start scoring the kept ones."""
        if not ideas:
            return
        vectors = await _embed([idea_text(x) for x in ideas])
        for idea, vector in zip(ideas, vectors, strict=True):
            if len(self.kept) >= self.req.n:
                return
            idea = {"id": f"i{len(self.candidates) + 1}", **idea}
            dup = self.dedup.add(idea_text(idea), vector)
            idea["duplicate_of"] = None if dup is None else self.candidates[dup]["id"]
            self.candidates.append(idea)
            if dup is None:
                idea["score"], idea["scores"] = None, {}  # until scored
                self.kept.append(idea)
                self.vectors.append(vector)
                if self.req.score_samples:
                    self.scoring.append(asyncio.ensure_future(self.score(idea)))
            await self.events.put({"type": "candidate", "idea": dict(idea)})  # a snapshot

    async def score(self, idea: dict[str, Any]) -> None:
        criteria = self.req.criteria
        prompt = scoring_prompt(self.req.goal, self.req.constraints, criteria, idea)
        seed0 = self.base + 100_000 + 10 * int(idea["id"][1:])
        texts = await asyncio.gather(*(
            self.ask(prompt, SamplingParams(max_tokens=SCORE_TOKENS + 8 * len(criteria),
                                            temperature=0.7, seed=seed0 + j,
                                            grammar=self.rubric), scoring=True)
            for j in range(self.req.score_samples)))
        samples = [s for s in (read_scores(t, len(criteria)) for t in texts) if s is not None]
        if samples:
            means = [sum(col) / len(samples) for col in zip(*samples, strict=True)]
            idea["scores"] = {c: round(m, 2) for c, m in zip(criteria, means, strict=True)}
            idea["score"] = round(sum(means) / len(means), 2)
        else:
            idea["scores"], idea["score"] = {}, None
        await self.events.put({"type": "score", "id": idea["id"], "score": idea["score"],
                               "scores": idea["scores"], "samples": len(samples)})

    async def wave(self, count: int, avoid: list[str]) -> None:
        first = self.requests
        self.requests += count
        tasks = [asyncio.ensure_future(self.generate(first + k, avoid)) for k in range(count)]
        try:
            for task in tasks:  # taken in request order, so a seed gives the same board
                _, ideas = await task
                await self.take(ideas)
                if len(self.kept) >= self.req.n:
                    break
        finally:
            for t in tasks:
                t.cancel()

    async def run(self) -> None:
        n = self.req.n
        await self.wave(math.ceil(1.25 * n / PER_REQUEST), [])
        for _ in range(TOP_UPS):
            missing = n - len(self.kept)
            if missing <= 0:
                break
            await self.wave(max(2, math.ceil(2 * missing / PER_REQUEST)),
                            [x["title"] for x in self.kept])
        if self.scoring:
            await asyncio.gather(*self.scoring)

    def groups(self) -> list[dict[str, Any]]:
        import numpy as np

        if not self.kept:
            return []
        max_groups = max(1, round(math.sqrt(len(self.kept))))
        labels = agglomerate(np.stack(self.vectors), max_groups=max_groups)
        members: dict[int, list[dict[str, Any]]] = {}
        for idea, label in zip(self.kept, labels, strict=True):
            members.setdefault(label, []).append(idea)
        texts = [[idea_text(x) for x in ms] for _, ms in sorted(members.items())]
        out = []
        for g, (_, ms) in enumerate(sorted(members.items())):
            gid = f"g{g + 1}"
            name = theme_name(texts[g], texts[:g] + texts[g + 1:])
            for x in ms:
                x["group_id"], x["group"] = gid, name
            out.append({"id": gid, "name": name, "ideas": [x["id"] for x in ms]})
        return out


def rank(ideas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``ideas`` best first: by ``score`` (None last), ties in their given order; each gets
    its 1-based ``rank``."""
    order = sorted(enumerate(ideas), key=lambda p: (p[1].get("score") is None,
                                                     -(p[1].get("score") or 0.0), p[0]))
    return [{**idea, "rank": r} for r, (_, idea) in enumerate(order, 1)]


async def brainstorm(pipeline: ChatPipeline, req: Brainstorm) -> AsyncIterator[dict[str, Any]]:
    """Run a brainstorm, yielding its events (module docstring). Closing the iterator early
    (the client went away) cancels every request still running.

    Raises:
        InvalidRequest: bad options (:func:`check`), before any event.
        ModelNotFound, Overloaded, ContextLengthExceeded, ...: from the pipeline (the first
            event is only sent once the model resolved).
    """
    req = check(req)
    name = pipeline.resolve(req.model).name
    start = time.monotonic()
    run = _Run(pipeline, req)
    yield {"type": "start", "goal": req.goal, "n": req.n, "criteria": req.criteria,
           "constraints": req.constraints, "model": name}
    task = asyncio.ensure_future(run.run())
    try:
        while True:
            getter = asyncio.ensure_future(run.events.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
                continue
            getter.cancel()
            task.result()  # raises what the run raised
            while not run.events.empty():
                yield run.events.get_nowait()
            break
        groups = run.groups()
        for g in groups:
            yield {"type": "group", "group": g}
        yield {"type": "done", "model": name, "goal": req.goal, "constraints": req.constraints,
               "criteria": req.criteria, "ideas": rank(run.kept), "groups": groups,
               "candidates": len(run.candidates),
               "duplicates": len(run.candidates) - len(run.kept), "usage": run.usage,
               "seconds": round(time.monotonic() - start, 3)}
    finally:
        task.cancel()
        for t in run.scoring:
            t.cancel()


async def collect(events: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """The ``done`` event of a brainstorm (the whole result)."""
    last: dict[str, Any] = {}
    async for e in events:
        last = e
    return last
