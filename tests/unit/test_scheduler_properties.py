"""Stateful property test of the scheduler (hypothesis): random arrivals, prompt lengths, shared
prefixes and follow-up turns, cancellations, slot counts, batch sizes, prompt-cache budgets and
queue deadlines, driven step by step on one thread over the scripted engine with an oracle (its
next token is a function of every KV cell the slot holds, so wrong cells give wrong text).

Checked after every program: each job ended exactly once; a job that ran to its end produced
exactly what it produces alone; a cancelled one a prefix of that; refusals are only 503s with
Retry-After; no slot is still running; the slot order is a permutation of the slots; the prompt
cache's byte count matches its entries and stays within budget, and every entry restores to
its own tokens.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cove.engine.fake import ScriptedEngine
from cove.engine.scheduler import Job, Scheduler
from cove.engine.types import Finished, SamplingParams, TextDelta
from cove.errors import CoveError, Overloaded
from tests import jobs


def oracle(cells: list[int]) -> int:
    return jobs.oracle(cells, 13)


def alone(prompt: list[int], max_tokens: int) -> str:
    return jobs.alone(prompt, max_tokens, 13)


@dataclass
class Seen:
    """What one job's consumer saw."""

    job: Job
    prompt: list[int]
    max_tokens: int
    text: str = ""
    ends: list[object] = field(default_factory=list)  # Finished events and errors
    after_end: int = 0  # events seen after the end (must stay 0)
    cancelled: bool = False


async def consume(seen: Seen) -> None:
    try:
        async for ev in seen.job.events():
            if seen.ends:
                seen.after_end += 1
            if isinstance(ev, TextDelta):
                seen.text += ev.text
            else:
                assert isinstance(ev, Finished)
                seen.ends.append(ev)
    except CoveError as e:
        seen.ends.append(e)


tokens = st.lists(st.integers(1, 120), min_size=1, max_size=30)
follow = st.tuples(st.just("follow"), st.integers(0, 50), tokens, st.integers(1, 12),
                   st.integers(0, 2))  # a conversation's next turn: prompt + answer + more
op = st.one_of(
    st.tuples(st.just("new"), st.integers(0, 2), tokens, st.integers(1, 12), st.integers(0, 2)),
    follow, follow,
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("steps"), st.integers(1, 6)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_slots=st.integers(1, 4),
    n_batch=st.sampled_from([8, 16, 64, 512]),
    chunk=st.sampled_from([1, 4, 16, 128]),
    cache=st.sampled_from([0, 120, 250, 500, 1000, 1 << 20]),
    max_queue=st.integers(0, 6),
    timeout=st.sampled_from([0, 3, 20]),
    shared_kv=st.booleans(),
    bases=st.lists(st.lists(st.integers(1, 120), min_size=0, max_size=40), min_size=3,
                   max_size=3),
    program=st.lists(op, min_size=1, max_size=40),
)
def test_every_job_ends_once_with_its_solo_output(
    n_slots: int, n_batch: int, chunk: int, cache: int, max_queue: int, timeout: int,
    shared_kv: bool, bases: list[list[int]], program: list[tuple],  # type: ignore[type-arg]
) -> None:
    eng = ScriptedEngine(n_slots=n_slots, n_batch=n_batch, n_ctx=4096, oracle=oracle)
    eng.shared_kv = shared_kv
    now = [0.0]
    sched = Scheduler(eng, max_queue=max_queue, prefill_chunk=chunk, prompt_cache_bytes=cache,
                      queue_timeout=timeout, clock=lambda: now[0], thread=False)
    seen: list[Seen] = []
    refused_at_submit = 0

    async def step(n: int) -> None:
        for _ in range(n):
            sched.run_step()
            now[0] += 1
            for _ in range(3):
                await asyncio.sleep(0)

    async def run() -> None:
        nonlocal refused_at_submit
        tasks = []
        for o in program:
            if o[0] in ("new", "follow"):
                _, which, tail, max_tokens, client = o
                if o[0] == "follow" and seen:
                    prev = seen[which % len(seen)]
                    prompt = prev.prompt + list(prev.text.encode()) + tail
                else:
                    prompt = bases[which % 3] + tail
                try:
                    job = sched.submit(prompt, SamplingParams(max_tokens=max_tokens),
                                       client=f"c{client}")
                except Overloaded as e:
                    assert e.headers["Retry-After"]
                    refused_at_submit += 1
                    continue
                s = Seen(job, prompt, max_tokens)
                seen.append(s)
                tasks.append(asyncio.ensure_future(consume(s)))
            elif o[0] == "cancel" and seen:
                s = seen[o[1] % len(seen)]
                s.cancelled = True
                s.job.cancel()
            else:
                await step(o[1] if o[0] == "steps" else 1)
        for _ in range(5000):
            if all(s.ends for s in seen):
                break
            await step(1)
        await asyncio.gather(*tasks)

    try:
        asyncio.run(run())
    finally:
        sched.close()

    for s in seen:
        assert len(s.ends) == 1 and s.after_end == 0, (s.ends, s.after_end)
        end = s.ends[0]
        expected = alone(s.prompt, s.max_tokens)
        if isinstance(end, CoveError):
            assert isinstance(end, Overloaded) and end.headers["Retry-After"], end
            assert s.text == ""
        elif s.cancelled:
            assert expected.startswith(s.text)
        else:
            assert isinstance(end, Finished) and end.reason in ("stop", "length")
            assert s.text == expected, (s.prompt, s.text, expected)
            assert end.usage.completion_tokens == len(expected)
    assert not sched._active and not sched._waiting
    assert sorted(sched._place.lru) == list(range(n_slots))
    assert not eng._running  # every slot released
    entries = sched.cache._entries
    assert sched.cache.used == sum(len(e.state) for e in entries) <= max(cache, 0)
    for e in entries:
        assert json.loads(e.state) == e.tokens
