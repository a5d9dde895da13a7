"""Scheduler faults found under load, each as its reproduction: the prompt cache's two HTTP 500s,
a short request stuck behind a long prefill, a queue without a deadline, one client starving
the others."""

from __future__ import annotations

import asyncio

import pytest

from cove.engine.fake import ScriptedEngine
from cove.engine.scheduler import Scheduler
from cove.engine.types import SamplingParams
from cove.errors import Overloaded
from tests.jobs import alone, collect, oracle

GREEDY = SamplingParams(temperature=0, max_tokens=8)


def prompt(seed: int, n: int) -> list[int]:
    return [1 + (seed * 31 + i * 7) % 120 for i in range(n)]


def test_one_slot_with_prompt_cache_serves_a_short_chat_after_a_long_one() -> None:
    """COVE_N_PARALLEL=1 with the prompt cache on: the short chat's admission saves the long
    one's cells, and measuring what no *other* slot holds took a max over no slots (500
    ``max() arg is an empty sequence``, then every other request failed)."""
    eng = ScriptedEngine(n_slots=1, oracle=oracle)
    sched = Scheduler(eng, prompt_cache_bytes=1 << 20)
    long, short = prompt(1, 200), prompt(2, 10)

    async def go() -> list[str]:
        return [(await collect(sched.submit(p, GREEDY)))[0] for p in (long, short, long, short)]

    try:
        texts = asyncio.run(go())
    finally:
        sched.close()
    assert texts == [alone(long, 8), alone(short, 8)] * 2
    assert eng.saves and eng.restores  # the long chat went to the cache and came back


def test_a_cache_entry_chosen_for_restore_is_not_evicted_by_saving_the_slot() -> None:
    """Two slots, room for about one entry: A, B, C, then A continued. A's entry is chosen for
    restore; saving B (the slot being overwritten) made room by evicting A's entry first
    (500 ``list.remove(x): x not in list``)."""
    eng = ScriptedEngine(n_slots=2, oracle=oracle)
    a, b, c = prompt(1, 40), prompt(2, 40), prompt(3, 40)
    entry_bytes = len(eng.save(0)) + 40 * 5  # the fake's state is the JSON of the tokens
    sched = Scheduler(eng, prompt_cache_bytes=int(entry_bytes * 1.5))

    async def go() -> list[str]:
        out = [(await collect(sched.submit(p, GREEDY)))[0] for p in (a, b, c)]
        follow = a + list(out[0].encode()) + list(b" and then")
        out.append((await collect(sched.submit(follow, GREEDY)))[0])
        assert out[3] == alone(follow, 8)
        return out

    try:
        texts = asyncio.run(go())
    finally:
        sched.close()
    assert texts[:3] == [alone(p, 8) for p in (a, b, c)]
    assert eng.restores
    assert sched.cache.used <= sched.cache.budget


async def _first_token_step(sched: Scheduler, eng: ScriptedEngine, job_prompt: list[int],
                            after_steps: int, long_prompt: list[int]) -> int:
    """Run ``long_prompt``'s prefill for ``after_steps`` steps, submit ``job_prompt``, and
    return how many steps later its first token came."""
    long = sched.submit(long_prompt, SamplingParams(max_tokens=4))
    for _ in range(after_steps):
        sched.run_step()
    short = sched.submit(job_prompt, SamplingParams(max_tokens=4))
    first: list[int] = []

    async def watch() -> None:
        async for _ in short.events():
            first.append(steps)
            return

    steps = 0
    task = asyncio.ensure_future(watch())
    while not first and steps < 1000:
        sched.run_step()
        steps += 1
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    task.cancel()
    long.cancel()
    return first[0]


def test_a_short_request_is_not_held_behind_a_long_prefill() -> None:
    """A 15,000-character prompt and then a short one: the short one's prompt goes first and
    the long prefill's share of each step is capped while it waits (it waited for the whole
    prefill: 12.8 s on SmolLM2-135M)."""
    eng = ScriptedEngine(n_slots=4, n_batch=512, n_ctx=8192)
    sched = Scheduler(eng, prefill_chunk=128, lone_prefill_chunk=256, thread=False)
    try:
        steps = asyncio.run(_first_token_step(sched, eng, prompt(2, 30), 2, prompt(1, 4000)))
    finally:
        sched.close()
    assert steps == 1  # prefilled and sampled in the very next step
    lone = [d for d in eng.decodes if len(d) == 1 and d[0][1] > 30]
    assert lone and all(n <= 256 for _, n, _ in (d[0] for d in lone))
    shared = [d for d in eng.decodes if len(d) == 2]
    assert shared and all(sum(n for _, n, _ in d) <= 128 + 1 for d in shared[1:])


def test_a_decoding_answer_keeps_streaming_during_a_long_prefill() -> None:
    """While a short answer decodes beside a long prefill, each step takes only as many
    prompt tokens as fit ``step_target`` at the measured cost of a token (with 128 a step, a
    16-token answer took 7.3 s beside a 2,400-token prefill: 0.42 s a token). The engine
    here costs 20 ms a step plus 3 ms a token, as SmolLM2-135M does on 2 cores."""
    now = [0.0]
    eng = ScriptedEngine(n_slots=4, n_batch=512, n_ctx=8192, oracle=lambda cells: 97)
    plain = eng.decode

    def costed(feeds: list[tuple[int, list[int], bool]]) -> None:
        now[0] += 0.02 + 0.003 * sum(len(t) for _, t, _ in feeds)
        plain(feeds)

    eng.decode = costed  # type: ignore[method-assign]
    sched = Scheduler(eng, prefill_chunk=128, lone_prefill_chunk=256, step_target=0.2,
                      clock=lambda: now[0], thread=False)

    async def go() -> tuple[list[float], float]:
        long = sched.submit(prompt(1, 3000), SamplingParams(max_tokens=4))
        for _ in range(3):
            sched.run_step()
        short = sched.submit(prompt(2, 20), SamplingParams(max_tokens=16))
        stamps: list[float] = []

        async def watch() -> None:
            async for event in short.events():
                if getattr(event, "text", ""):
                    stamps.append(now[0])

        task = asyncio.ensure_future(watch())
        for _ in range(200):
            if task.done():
                break
            sched.run_step()
            for _ in range(3):  # let the watcher take this step's events at this step's time
                await asyncio.sleep(0)
        await task
        start = now[0]
        while not long.cancelled.is_set() and sched.pending:
            sched.run_step()
            await asyncio.sleep(0)
        return stamps, now[0] - start

    try:
        stamps, _ = asyncio.run(go())
    finally:
        sched.close()
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(stamps) == 16
    assert max(gaps) <= 0.2 * 1.15
    shared = [d for d in eng.decodes if len(d) == 2]
    assert shared and all(sum(n for _, n, _ in d) <= 128 + 1 for d in shared)
    assert all(sum(n for _, n, _ in d) >= 16 for d in shared)  # the prefill still moves on


def test_a_queued_request_is_refused_at_the_queue_deadline() -> None:
    """Without a deadline a queued request waited forever (a retry storm got no byte in
    120 s); with one it gets 503 with Retry-After, and the stream admission wait says so."""
    now = [0.0]
    eng = ScriptedEngine(n_slots=1, oracle=lambda cells: 97)  # never ends by itself
    sched = Scheduler(eng, queue_timeout=30, clock=lambda: now[0], thread=False)

    async def go() -> None:
        running = sched.submit(prompt(1, 5), SamplingParams())
        waiting = sched.submit(prompt(2, 5), SamplingParams())
        admitted = asyncio.ensure_future(waiting.admitted())
        for _ in range(5):
            sched.run_step()
            now[0] += 5
            await asyncio.sleep(0)
        assert not admitted.done()
        now[0] += 10
        sched.run_step()
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as ei:
            await admitted
        assert ei.value.status == 503 and int(ei.value.headers["Retry-After"]) >= 1
        with pytest.raises(Overloaded):
            await collect(waiting)
        running.cancel()
        sched.run_step()
        await asyncio.sleep(0)
        assert (await collect(running))[1].reason == "cancelled"

    try:
        asyncio.run(go())
    finally:
        sched.close()


def test_one_client_flooding_does_not_starve_another() -> None:
    """A client that fills every slot and the queue: another client's request displaces the
    flooder's newest waiting one (503 for that one) and gets the next free slot."""
    eng = ScriptedEngine(n_slots=2, oracle=lambda cells: 0 if len(cells) > 12 else 97)
    sched = Scheduler(eng, max_queue=3, thread=False)

    async def go() -> None:
        flood = [sched.submit(prompt(i, 5 + 3 * i), SamplingParams(), client="addr:a")
                 for i in range(5)]  # the two that run end at different steps
        sched.run_step()  # two of them run, three wait: the queue is full
        with pytest.raises(Overloaded):
            sched.submit(prompt(9, 5), SamplingParams(), client="addr:a")
        other = sched.submit(prompt(7, 5), SamplingParams(), client="addr:b")
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await flood[4].admitted()  # the flooder's newest waiting job made room
        order: list[str] = []

        async def track(job, name):  # type: ignore[no-untyped-def]
            await job.admitted()
            order.append(name)

        tasks = [asyncio.ensure_future(track(j, f"a{i}")) for i, j in enumerate(flood[2:4], 2)]
        tasks.append(asyncio.ensure_future(track(other, "b")))
        for _ in range(200):
            sched.run_step()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if len(order) == 3:
                break
        assert order[0] == "b"  # the first slot that frees goes to the client running none
        for t in tasks:
            t.cancel()
        for j in flood[:4] + [other]:
            j.cancel()

    try:
        asyncio.run(go())
    finally:
        sched.close()
