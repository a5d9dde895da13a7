"""Continuous batching scheduler over the scripted engine: batching, chunked prefill, admission,
cancellation, failure isolation."""

from __future__ import annotations

import asyncio

import pytest

from cove.engine.fake import ScriptedEngine
from cove.engine.scheduler import Scheduler
from cove.engine.types import Finished, SamplingParams
from cove.errors import CoveError, Overloaded
from tests.jobs import collect


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_requests_share_decode_steps() -> None:
    eng = ScriptedEngine(n_slots=4, delay=0.002)
    for i in range(4):
        eng.enqueue([f"{i}a", f"{i}b", f"{i}c"])
    sched = Scheduler(eng)

    async def go() -> list[tuple[str, Finished]]:
        jobs = [sched.submit([1, 2, 3, i], SamplingParams()) for i in range(4)]
        return await asyncio.gather(*(collect(j) for j in jobs))

    try:
        results = run(go())
    finally:
        sched.close()
    assert sorted(t for t, _ in results) == ["0a0b0c", "1a1b1c", "2a2b2c", "3a3b3c"]
    assert all(d.reason == "stop" and d.usage.completion_tokens == 3 for _, d in results)
    assert max(len(step) for step in eng.decodes) == 4  # all four in one llama_decode


def test_long_prompt_is_prefilled_in_chunks_while_others_decode() -> None:
    eng = ScriptedEngine(n_slots=2, delay=0.001, n_batch=64)
    eng.enqueue(["x"] * 30)
    eng.enqueue(["y"])
    sched = Scheduler(eng, prefill_chunk=16)

    async def go() -> None:
        first = sched.submit([1, 2], SamplingParams())
        await asyncio.sleep(0.02)  # first is decoding now
        second = sched.submit(list(range(100)), SamplingParams())
        await asyncio.gather(collect(first), collect(second))

    try:
        run(go())
    finally:
        sched.close()
    mixed = [s for s in eng.decodes if len(s) == 2]
    assert mixed, "the long prompt was fed alongside decoding"
    for step in mixed:
        assert sum(n for _, n, _ in step) <= 1 + 16


def test_queue_full_is_overloaded() -> None:
    eng = ScriptedEngine(n_slots=1, delay=0.01)
    eng.enqueue(["a"] * 50)
    sched = Scheduler(eng, max_queue=1)

    async def go() -> None:
        running = sched.submit([1], SamplingParams())
        await asyncio.sleep(0.05)
        waiting = sched.submit([2], SamplingParams())
        with pytest.raises(Overloaded) as ei:
            sched.submit([3], SamplingParams())
        assert ei.value.status == 503 and ei.value.headers["Retry-After"]
        running.cancel()
        waiting.cancel()
        await collect(running)
        await collect(waiting)

    try:
        run(go())
        assert sched.pending == 0
    finally:
        sched.close()


def test_cancel_frees_slot_at_once_for_running_and_queued() -> None:
    eng = ScriptedEngine(n_slots=1, delay=0.01)
    eng.enqueue(["a"] * 1000)
    eng.enqueue(["q"])
    eng.enqueue(["ok"])
    sched = Scheduler(eng)

    async def go() -> str:
        running = sched.submit([1], SamplingParams())
        queued = sched.submit([2], SamplingParams())
        await asyncio.sleep(0.05)
        queued.cancel()
        running.cancel()
        _, done = await collect(running)
        assert done.reason == "cancelled"
        _, done = await collect(queued)
        assert done.reason == "cancelled" and done.usage.completion_tokens == 0
        text, _ = await collect(sched.submit([3], SamplingParams()))
        return text

    try:
        assert run(go()) == "q"  # the queued job never started, so its script is next
        assert sched.pending == 0
    finally:
        sched.close()


def test_one_failing_sequence_does_not_hurt_the_others() -> None:
    eng = ScriptedEngine(n_slots=2)
    eng.enqueue(["good", " one"])
    eng.enqueue(["bad", RuntimeError("boom")])
    sched = Scheduler(eng)

    async def go() -> None:
        good = sched.submit([1], SamplingParams())
        bad = sched.submit([2], SamplingParams())
        text, done = await collect(good)
        assert (text, done.reason) == ("good one", "stop")
        with pytest.raises(CoveError):
            await collect(bad)

    try:
        run(go())
    finally:
        sched.close()


def test_max_tokens_and_stop_per_request() -> None:
    eng = ScriptedEngine(n_slots=2)
    eng.enqueue(["a", "b", "c", "d"])
    eng.enqueue(["a", "b", "c", "d"])
    sched = Scheduler(eng)

    async def go() -> list[tuple[str, Finished]]:
        j1 = sched.submit([1], SamplingParams(max_tokens=2))
        j2 = sched.submit([2], SamplingParams(stop=("c",)))
        return await asyncio.gather(collect(j1), collect(j2))

    try:
        (t1, d1), (t2, d2) = run(go())
    finally:
        sched.close()
    assert (t1, d1.reason, d1.usage.completion_tokens) == ("ab", "length", 2)
    assert (t2, d2.reason) == ("ab", "stop")


def test_a_burst_never_queues_more_than_max_queue() -> None:
    """Requests submitted together while the worker is inside a decode step are admitted only
    at the next step: until then they count as waiting, so a burst cannot overrun the queue."""
    eng = ScriptedEngine(n_slots=2, delay=0.05)
    eng.enqueue(["a"] * 100)
    sched = Scheduler(eng, max_queue=1)

    async def go() -> int:
        running = sched.submit([1], SamplingParams())
        while not eng.decodes:
            await asyncio.sleep(0.01)
        jobs = [running]
        try:
            for i in range(6):
                jobs.append(sched.submit([2 + i], SamplingParams()))
        except Overloaded:
            pass
        accepted = len(jobs) - 1
        for job in jobs:
            job.cancel()
            await collect(job)
        return accepted

    try:
        accepted = run(go())
        assert sched.pending == 0
    finally:
        sched.close()
    assert accepted == 2  # one more slot, one queue place


def test_max_queue_0_refuses_a_burst_beyond_the_slots() -> None:
    eng = ScriptedEngine(n_slots=2, delay=0.01)
    sched = Scheduler(eng, max_queue=0)

    async def go() -> None:
        first = sched.submit([1], SamplingParams())
        second = sched.submit([2], SamplingParams())
        with pytest.raises(Overloaded):
            sched.submit([3], SamplingParams())
        await asyncio.gather(collect(first), collect(second))

    try:
        run(go())
        assert sched.pending == 0
    finally:
        sched.close()


class _FailsOnce(ScriptedEngine):
    """Raises an unexpected (non-Cove) error from one engine call, once."""

    def __init__(self, method: str, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.failing = method

    def _maybe_fail(self, method: str) -> None:
        if self.failing == method:
            self.failing = ""
            raise RuntimeError(f"{method} broke")

    def start(self, slot: int, prompt: list[int], params: SamplingParams) -> int:
        self._maybe_fail("start")
        return super().start(slot, prompt, params)

    def copy(self, src: int, dst: int, n: int | None = None) -> None:
        self._maybe_fail("copy")
        super().copy(src, dst, n)

    def move(self, src: int, dst: int) -> None:
        self._maybe_fail("move")
        super().move(src, dst)


@pytest.mark.parametrize("method", ["start", "copy", "move"])
def test_an_unexpected_engine_error_while_admitting_fails_jobs_not_the_worker(
        method: str) -> None:
    """An exception from start, copy or move (admission and compaction, outside the decode
    step) used to kill the worker thread: every job then waited forever."""
    eng = _FailsOnce(method, n_slots=3, delay=0.002)
    sched = Scheduler(eng)
    shared = list(range(100, 140))

    async def outcome(job_prompt: list[int], n: int) -> str:
        eng.enqueue(["x"] * n)
        try:
            text, _ = await asyncio.wait_for(collect(sched.submit(job_prompt, SamplingParams())),
                                             5)
        except CoveError as e:
            return f"error {e.status}"
        return text

    async def go() -> list[str]:
        # three together: the shared prefix is copied; the middle one ends first, so the
        # last one is moved into its slot
        first = asyncio.create_task(outcome([*shared, 1], 20))
        await asyncio.sleep(0.01)
        rest = [asyncio.create_task(outcome([*shared, 2], 2)),
                asyncio.create_task(outcome([*shared, 3], 20))]
        results = await asyncio.gather(first, *rest)
        results.append(await outcome([9, 9, 9], 3))  # the scheduler still serves
        return results

    try:
        results = run(go())
        assert sched.pending == 0
    finally:
        sched.close()
    assert any(r.startswith("error 5") for r in results[:3])
    assert results[3].startswith("xxx")  # (a failed start leaves its script for the next)

