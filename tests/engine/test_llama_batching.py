"""The real engine: batched greedy output equals solo output; prefix reuse; cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from cove.engine.llama import LlamaEngine
from cove.engine.scheduler import Scheduler
from cove.engine.template import render_chat
from cove.engine.types import Finished, SamplingParams, TextDelta
from cove.models.registry import bundled_model_path
from tests.jobs import record_moves

pytestmark = pytest.mark.real_model

QUESTIONS = [
    "What is the capital of France?", "Name a red fruit.", "Count from one to five.",
    "Say hello in Spanish.", "What colour is the sky?", "Give me a word that rhymes with cat.",
    "What is 3 plus 4?", "Name a large animal.",
]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    eng = LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=1024, n_slots=8, n_threads=2)
    yield eng
    eng.close()


def prompt(eng: LlamaEngine, q: str) -> list[int]:
    text = render_chat(eng.info.chat_template, [{"role": "user", "content": q}])
    return eng.tokenize(text, add_bos=eng.info.add_bos, special=True)


async def answer(sched: Scheduler, tokens: list[int], params: SamplingParams) -> tuple[str, int]:
    text, n = "", 0
    async for ev in sched.submit(tokens, params).events():
        if isinstance(ev, TextDelta):
            text += ev.text
        elif isinstance(ev, Finished):
            n = ev.usage.completion_tokens
    return text, n


def solo_and_batched(engine: LlamaEngine, prompts: list[list[int]], params: SamplingParams,
                     ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Each prompt's answer run alone, one after another, then all at once (no cached cells
    at the start of either run)."""
    sched = Scheduler(engine)

    async def alone() -> list[tuple[str, int]]:
        return [await answer(sched, p, params) for p in prompts]

    async def together() -> list[tuple[str, int]]:
        return list(await asyncio.gather(*(answer(sched, p, params) for p in prompts)))

    try:
        for i in range(engine.n_slots):
            engine.forget(i)
        solo = asyncio.run(alone())
        for i in range(engine.n_slots):
            engine.forget(i)
        batched = asyncio.run(together())
    finally:
        sched.close()
    return solo, batched


def test_batch_of_8_equals_each_alone(engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    moves = record_moves(engine, monkeypatch)
    solo, batched = solo_and_batched(engine, [prompt(engine, q) for q in QUESTIONS],
                                     SamplingParams(temperature=0, max_tokens=24))
    assert all(t for t, _ in solo)
    assert batched == solo
    # answers end at different lengths, so running requests were moved to close gaps
    # (their KV cells copied to another stream) and still answered exactly as alone
    assert moves


def test_follow_up_turn_reuses_the_prefix(engine: LlamaEngine) -> None:
    sched = Scheduler(engine)
    history = [{"role": "user", "content": "Tell me about rivers."}]
    params = SamplingParams(temperature=0, max_tokens=16)

    async def turn() -> tuple[int, int]:
        text = render_chat(engine.info.chat_template, history)
        tokens = engine.tokenize(text, add_bos=engine.info.add_bos, special=True)
        job = sched.submit(tokens, params)
        reply, cached = "", -1
        async for ev in job.events():
            if isinstance(ev, TextDelta):
                reply += ev.text
            elif isinstance(ev, Finished):
                cached = ev.usage.cached_tokens
        history.append({"role": "assistant", "content": reply})
        history.append({"role": "user", "content": "Tell me more."})
        return len(tokens), cached

    try:
        for i in range(engine.n_slots):
            engine.forget(i)
        n1, cached1 = asyncio.run(turn())
        n2, cached2 = asyncio.run(turn())
        n3, cached3 = asyncio.run(turn())
    finally:
        sched.close()
    assert cached1 == 0
    # each follow-up reuses at least the previous prompt (the template's text of the previous
    # answer may tokenize differently at its end, so allow a few tokens)
    assert cached2 >= n1 - 2 and cached2 < n2
    assert cached3 >= n2 - 2 and cached3 < n3


def test_new_conversation_copies_a_shared_system_prompt(engine: LlamaEngine) -> None:
    system = {"role": "system", "content": "You are a helpful assistant. " * 20}
    params = SamplingParams(temperature=0, max_tokens=4)
    sched = Scheduler(engine)

    async def ask(q: str) -> int:
        text = render_chat(engine.info.chat_template, [system, {"role": "user", "content": q}])
        tokens = engine.tokenize(text, add_bos=engine.info.add_bos, special=True)
        async for ev in sched.submit(tokens, params).events():
            if isinstance(ev, Finished):
                return ev.usage.cached_tokens
        return -1

    try:
        for i in range(engine.n_slots):
            engine.forget(i)
        assert asyncio.run(ask("What is rain?")) == 0
        cached = asyncio.run(ask("Why do birds sing?"))
    finally:
        sched.close()
    assert cached > 100  # the long shared system prompt was not computed again


def test_conversation_restored_from_the_host_cache_answers_as_if_never_evicted() -> None:
    eng = LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=1024, n_slots=2, n_threads=2)
    params = SamplingParams(temperature=0, max_tokens=16)
    story = [{"role": "system", "content": "You tell long stories about a fox. " * 10},
             {"role": "user", "content": "Begin the story."}]

    def tokens(chat: list[dict[str, str]]) -> list[int]:
        return eng.tokenize(render_chat(eng.info.chat_template, chat), add_bos=eng.info.add_bos,
                            special=True)

    async def ask(sched: Scheduler, chat: list[dict[str, str]]) -> tuple[str, int]:
        text, cached = "", -1
        async for ev in sched.submit(tokens(chat), params).events():
            if isinstance(ev, TextDelta):
                text += ev.text
            elif isinstance(ev, Finished):
                cached = ev.usage.cached_tokens
        return text, cached

    async def conversation(sched: Scheduler, others: bool) -> tuple[str, int]:
        first, _ = await ask(sched, story)
        if others:  # two other users take both slots: the story's cells must leave them
            await asyncio.gather(*(ask(sched, [{"role": "user", "content": f"{q} " * 40}])
                                   for q in ("Rain falls.", "Birds sing.")))
        follow = [*story, {"role": "assistant", "content": first},
                  {"role": "user", "content": "Go on."}]
        return await ask(sched, follow)

    n_story = len(tokens(story))
    try:
        cached_sched = Scheduler(eng, prompt_cache_bytes=64 << 20)
        try:
            resumed, cached = asyncio.run(conversation(cached_sched, others=True))
            saved = len(cached_sched.cache) + 1  # the story was restored (taken out) once
        finally:
            cached_sched.close()
        for i in range(eng.n_slots):
            eng.forget(i)
        fresh_sched = Scheduler(eng, prompt_cache_bytes=0)
        try:
            reference, _ = asyncio.run(conversation(fresh_sched, others=False))
        finally:
            fresh_sched.close()
    finally:
        eng.close()
    assert saved >= 1
    assert cached > n_story  # the history came back from host memory
    assert resumed == reference  # and the answer is the one it would have been anyway
