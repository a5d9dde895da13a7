"""Fairness on the real engine: a short request sent while a long prompt is being prefilled is
answered before the long prompt's prefill ends (it used to wait for the whole prefill), and
exactly as it is alone (the long one's prefill is chunked by timing, and past 256 cells
llama.cpp's rounding depends on the chunks, so only its being answered is checked)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from cove.engine.llama import LlamaEngine
from cove.engine.scheduler import Scheduler
from cove.engine.types import Finished, SamplingParams, TextDelta
from cove.models.registry import bundled_model_path
from tests.engine.test_llama_batching import prompt
from tests.jobs import collect

pytestmark = pytest.mark.real_model

GREEDY = SamplingParams(temperature=0, max_tokens=6)


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    eng = LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=2048, n_slots=2, n_threads=2,
                      n_batch=512)
    yield eng
    eng.close()


def test_a_short_request_finishes_while_a_long_prompt_is_still_prefilled(
        engine: LlamaEngine) -> None:
    document = " ".join(f"Line {i}: the river {i % 7} meets stone {i % 11}." for i in range(110))
    long = prompt(engine, "Summarise this:\n" + document)
    short = prompt(engine, "Say hi.")
    assert len(long) > 1200  # several lone-prefill steps

    def fresh() -> Scheduler:
        for s in range(engine.n_slots):
            engine.forget(s)
        return Scheduler(engine)

    async def solo(p: list[int]) -> str:
        sched = fresh()
        try:
            return (await collect(sched.submit(p, GREEDY)))[0]
        finally:
            sched.close()

    expected_short = asyncio.run(solo(short))

    async def together() -> tuple[list[str], str, str]:
        sched = fresh()
        order: list[str] = []
        try:
            long_job = sched.submit(long, GREEDY)

            async def read_long() -> str:
                text = ""
                async for ev in long_job.events():
                    if isinstance(ev, TextDelta):
                        if not text:
                            order.append("long's first token")
                        text += ev.text
                return text

            long_task = asyncio.ensure_future(read_long())
            while not engine.cached(0):  # its prefill has begun
                await asyncio.sleep(0.01)
            text, done = await collect(sched.submit(short, GREEDY))
            assert isinstance(done, Finished)
            order.append("short finished")
            return order, text, await long_task
        finally:
            sched.close()

    order, short_text, long_text = asyncio.run(together())
    assert order == ["short finished", "long's first token"]
    assert short_text == expected_short and long_text
