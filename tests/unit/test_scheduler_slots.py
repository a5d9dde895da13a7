"""The scheduler's slot policy over the scripted engine (which models KV cells per slot):
shared prefixes computed once, running slots kept contiguous, conversation caches parked."""

from __future__ import annotations

import asyncio

from cove.engine.fake import ScriptedEngine
from cove.engine.scheduler import Scheduler
from cove.engine.types import Finished, SamplingParams
from tests.jobs import collect

SYSTEM = list(range(100, 140))  # a 40-token "system prompt" every request shares


def contiguous(step: list[tuple[int, int, bool]]) -> bool:
    slots = sorted(slot for slot, _, _ in step)
    return slots == list(range(slots[0], slots[0] + len(slots)))


def test_requests_arriving_together_compute_a_shared_prefix_once() -> None:
    eng = ScriptedEngine(n_slots=4, delay=0.002)
    for _ in range(4):
        eng.enqueue(["a", "b", "c"])
    sched = Scheduler(eng)

    async def go() -> list[tuple[str, Finished]]:
        jobs = [sched.submit([*SYSTEM, 200 + i, 201 + i], SamplingParams()) for i in range(4)]
        return list(await asyncio.gather(*(collect(j) for j in jobs)))

    try:
        results = asyncio.run(go())
    finally:
        sched.close()
    assert [t for t, _ in results] == ["abc"] * 4
    cached = sorted(d.usage.cached_tokens for _, d in results)
    assert cached == [0, len(SYSTEM), len(SYSTEM), len(SYSTEM)]
    prefilled = sum(n for step in eng.decodes for _, n, _ in step if n > 1)
    assert prefilled == len(SYSTEM) + 2 + 3 * 2  # the shared part once, each own tail once
    assert all(contiguous(step) for step in eng.decodes)


def test_running_requests_move_to_close_a_gap() -> None:
    eng = ScriptedEngine(n_slots=4, delay=0.005)
    sched = Scheduler(eng)
    eng.enqueue(["a"] * 30)
    eng.enqueue(["b"] * 8)  # ends early, leaving a gap in the middle
    eng.enqueue(["c"] * 30)

    async def go() -> list[tuple[str, Finished]]:
        jobs = []
        for i in range(3):
            jobs.append(sched.submit([i + 1] * 10, SamplingParams()))
            await asyncio.sleep(0.012)  # started one after the other: slots 0, 1, 2
        return list(await asyncio.gather(*(collect(j) for j in jobs)))

    try:
        results = asyncio.run(go())
    finally:
        sched.close()
    assert [t for t, _ in results] == ["a" * 30, "b" * 8, "c" * 30]  # the moved one is intact
    assert (2, 1) in eng.copies  # slot 2's request moved into the gap at slot 1
    assert all(contiguous(step) for step in eng.decodes)
    assert max(len(step) for step in eng.decodes) == 3


def test_a_conversation_cache_is_parked_rather_than_overwritten() -> None:
    eng = ScriptedEngine(n_slots=4, delay=0.002)
    sched = Scheduler(eng)
    conversation = [7] * 50

    async def ask(prompt: list[int], pieces: list[str]) -> Finished:
        eng.enqueue(pieces)  # type: ignore[arg-type]
        return (await collect(sched.submit(prompt, SamplingParams())))[1]

    async def go() -> Finished:
        for p in ([1] * 50, [2] * 50, conversation):  # slots 0, 1, 2 hold three chats
            await ask(p, ["x"])
        long = asyncio.create_task(ask([3] * 50, ["y"] * 40))  # takes slot 3
        await asyncio.sleep(0.02)
        # another request: the only slot next to slot 3 is 2, whose chat is parked first
        await ask([4] * 50, ["z"])
        await long
        return await ask([*conversation, 8, 8], ["w"])  # the chat continues later

    try:
        follow_up = asyncio.run(go())
    finally:
        sched.close()
    assert follow_up.usage.cached_tokens == len(conversation)


def test_more_conversations_than_slots_resume_from_the_host_cache() -> None:
    eng = ScriptedEngine(n_slots=2, delay=0.001)
    sched = Scheduler(eng, prompt_cache_bytes=1 << 20)
    chats = {c: [c] * 30 for c in (1, 2, 3, 4)}  # four conversations, two slots

    async def turn(c: int) -> int:
        eng.enqueue(["a", "b"])
        _, done = await collect(sched.submit(chats[c], SamplingParams()))
        return done.usage.cached_tokens

    async def go() -> list[tuple[int, int]]:
        seen = []  # (tokens of the previous turn's prompt, cached tokens of this turn)
        for c in chats:
            await turn(c)
        for _ in range(2):
            for c in chats:
                before = len(chats[c])
                chats[c] = [*chats[c], 9, 9]  # the next turn continues the conversation
                seen.append((before, await turn(c)))
        return seen

    try:
        seen = asyncio.run(go())
    finally:
        sched.close()
    assert len(seen) == 8
    assert all(cached >= before for before, cached in seen)  # never the whole history again
    assert eng.saves and eng.restores
    assert len(sched.cache) <= 4


def test_without_a_host_cache_those_conversations_are_recomputed() -> None:
    # the same traffic with the cache off: what the test above guards against
    eng = ScriptedEngine(n_slots=2, delay=0.001)
    sched = Scheduler(eng, prompt_cache_bytes=0)
    prompts = {c: [c] * 30 for c in (1, 2, 3, 4)}

    async def go() -> list[int]:
        cached = []
        for c in prompts:
            eng.enqueue(["a"])
            await collect(sched.submit(prompts[c], SamplingParams()))
        for c in prompts:
            eng.enqueue(["a"])
            _, done = await collect(sched.submit([*prompts[c], 9], SamplingParams()))
            cached.append(done.usage.cached_tokens)
        return cached

    try:
        cached = asyncio.run(go())
    finally:
        sched.close()
    assert min(cached) == 0 and not eng.restores
