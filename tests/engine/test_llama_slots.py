"""The slot policy on the real engine under adversarial timing: a request moved to another
slot keeps its sampler state (grammar, forced continuation, seeded randomness) and answers as
it would alone; cancelling the request others wait for, or a waiting one, loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from cove.engine.llama import LlamaEngine, json_grammar
from cove.engine.scheduler import Job, Scheduler
from cove.engine.template import render_chat
from cove.engine.types import Finished, ForcedContinuation, SamplingParams
from cove.models.registry import bundled_model_path
from cove.pipeline import close_reasoning
from tests.engine.test_llama_batching import prompt
from tests.jobs import collect, record_moves

pytestmark = pytest.mark.real_model

Request = tuple[list[int], SamplingParams, ForcedContinuation | None]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    eng = LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=512, n_slots=4, n_threads=2)
    yield eng
    eng.close()


def fresh(engine: LlamaEngine) -> Scheduler:
    """A scheduler over empty slots (its slots are then taken in order 0, 1, 2...)."""
    for i in range(engine.n_slots):
        engine.forget(i)
    return Scheduler(engine)


def alone(engine: LlamaEngine, requests: list[Request]) -> list[tuple[str, str]]:
    sched = fresh(engine)

    async def go() -> list[tuple[str, str]]:
        out = []
        for p, params, force in requests:
            text, done = await collect(sched.submit(p, params, force))
            out.append((text, done.reason))
        return out

    try:
        return asyncio.run(go())
    finally:
        sched.close()


GREEDY = SamplingParams(temperature=0, max_tokens=20)
MOVED = {
    "grammar": (SamplingParams(temperature=0, max_tokens=20, grammar=json_grammar(None)), None),
    "forced": (GREEDY, "force"),
    "seeded": (SamplingParams(temperature=0.9, seed=7, max_tokens=20), None),
}


@pytest.mark.parametrize("kind", MOVED)
def test_a_moved_request_answers_as_alone(engine: LlamaEngine, kind: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    params, force_kind = MOVED[kind]
    force = close_reasoning(engine, 4, in_reasoning=True) if force_kind else None
    requests: list[Request] = [
        (prompt(engine, "Tell me about the sea."), GREEDY, None),  # slot 0, runs long
        (prompt(engine, "Say yes."), SamplingParams(temperature=0, max_tokens=2), None),  # 1
        (prompt(engine, "Say no."), SamplingParams(temperature=0, max_tokens=4), None),  # 2
        (prompt(engine, "Describe a cat in JSON."), params, force),  # slot 3, moved to 1
    ]
    solo = alone(engine, requests)
    moves = record_moves(engine, monkeypatch)
    sched = fresh(engine)

    async def together() -> list[tuple[str, str]]:
        jobs = [sched.submit(p, pa, f) for p, pa, f in requests]
        return [(t, d.reason) for t, d in await asyncio.gather(*(collect(j) for j in jobs))]

    try:
        batched = asyncio.run(together())
        assert sched.pending == 0
    finally:
        sched.close()
    assert (3, 1) in moves
    assert batched == solo
    if force is not None:
        assert "</think>" in solo[3][0]


def test_cancelling_the_request_others_wait_for_loses_nothing(
        engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three chats with one long system prompt arrive together: the first computes it while
    the others wait to copy it. The first is cancelled during its prefill and the third while
    it waits; the second still answers as alone, and so does the next request."""
    system = {"role": "system", "content": "You are a careful assistant who answers briefly. " * 10}

    def chat(q: str) -> list[int]:
        text = render_chat(engine.info.chat_template, [system, {"role": "user", "content": q}])
        return engine.tokenize(text, add_bos=engine.info.add_bos, special=True)

    params = SamplingParams(temperature=0, max_tokens=8)
    prompts = [chat("What is rain?"), chat("What is snow?"), chat("What is hail?")]
    solo = alone(engine, [(p, params, None) for p in prompts])
    jobs: list[Job] = []
    decode = engine.decode

    def decode_then_cancel(feeds: list[tuple[int, list[int], bool]]) -> None:
        decode(feeds)
        if any(len(tokens) >= len(prompts[0]) - 1 for _, tokens, _ in feeds):
            # the first prompt's prefill: the others wait for it
            jobs[0].cancel()
            jobs[2].cancel()

    monkeypatch.setattr(engine, "decode", decode_then_cancel)
    sched = fresh(engine)

    async def go() -> tuple[list[tuple[str, Finished]], tuple[str, Finished]]:
        jobs.extend(sched.submit(p, params) for p in prompts)
        results = await asyncio.gather(*(collect(j) for j in jobs))
        return results, await collect(sched.submit(prompts[2], params))

    try:
        results, again = asyncio.run(go())
        assert sched.pending == 0
    finally:
        sched.close()
    assert [d.reason for _, d in results] == ["cancelled", "length", "cancelled"]
    assert results[2][1].usage.completion_tokens == 0  # never started
    assert (results[1][0], results[1][1].reason) == solo[1]
    assert results[1][1].usage.cached_tokens > 100  # copied the cancelled one's prefill
    assert (again[0], again[1].reason) == solo[2]
    assert again[1].usage.cached_tokens > 100


def test_a_follow_up_finds_its_conversation_after_a_move(
        engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat moved to another slot while answering continues from that slot's cells."""
    moves = record_moves(engine, monkeypatch)
    params = SamplingParams(temperature=0, max_tokens=12)
    history = [{"role": "user", "content": "Describe a cat."}]

    def chat(turns: list[dict[str, str]]) -> list[int]:
        text = render_chat(engine.info.chat_template, turns)
        return engine.tokenize(text, add_bos=engine.info.add_bos, special=True)

    others = [(prompt(engine, "Tell me about the sea."), SamplingParams(temperature=0,
                                                                       max_tokens=24)),
              (prompt(engine, "Say yes."), SamplingParams(temperature=0, max_tokens=2)),
              (prompt(engine, "Say no."), SamplingParams(temperature=0, max_tokens=2))]
    sched = fresh(engine)

    async def go() -> tuple[int, Finished]:
        jobs = [sched.submit(p, pa) for p, pa in others]
        first = chat(history)
        mine = sched.submit(first, params)  # slot 3, moved into slot 1 when "yes" ends
        answer, _ = await collect(mine)
        await asyncio.gather(*(collect(j) for j in jobs))
        turns = [*history, {"role": "assistant", "content": answer},
                 {"role": "user", "content": "And a dog?"}]
        return len(first), (await collect(sched.submit(chat(turns), params)))[1]

    try:
        n_first, done = asyncio.run(go())
        assert sched.pending == 0
    finally:
        sched.close()
    assert (3, 1) in moves
    assert done.usage.cached_tokens >= n_first + 8  # the question and (most of) the answer


def test_more_slots_than_a_batch_holds_is_refused_not_a_crash() -> None:
    """llama.cpp asserts (aborting the process) when a context has more sequences than a batch
    has rows; the engine refuses such a configuration with an error instead."""
    from cove.errors import EngineFailure

    with pytest.raises(EngineFailure, match="9 slots"):
        LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=256, n_slots=9, n_batch=8)
    eng = LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=256, n_slots=8, n_batch=8,
                      n_threads=2)
    try:
        sched = Scheduler(eng)

        async def go() -> list[tuple[str, Finished]]:
            jobs = [sched.submit(prompt(eng, f"Count to {i + 2}."),
                                 SamplingParams(temperature=0, max_tokens=3)) for i in range(8)]
            return list(await asyncio.gather(*(collect(j) for j in jobs)))

        try:
            results = asyncio.run(go())
        finally:
            sched.close()
        assert all(d.usage.completion_tokens == 3 for _, d in results)
    finally:
        eng.close()
