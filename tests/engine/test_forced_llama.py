"""The reasoning-budget path on the real engine: a forced continuation is decoded like prompt
tokens and generation goes on after it."""

from __future__ import annotations

import asyncio

import pytest

from cove.engine.llama import LlamaEngine
from cove.engine.scheduler import Scheduler
from cove.engine.types import Finished, SamplingParams
from cove.pipeline import close_reasoning
from tests.engine.test_llama_batching import prompt
from tests.jobs import collect

pytestmark = pytest.mark.real_model


def test_budget_closes_reasoning_and_generation_continues(engine: LlamaEngine) -> None:
    sched = Scheduler(engine)
    force = close_reasoning(engine, 8, in_reasoning=True)

    async def run() -> tuple[str, Finished]:
        return await collect(sched.submit(prompt(engine, "Tell me a long story about a dog."),
                                          SamplingParams(temperature=0, max_tokens=40), force))

    try:
        text, done = asyncio.run(run())
    finally:
        sched.close()
    assert done.forced
    before, _, after = text.partition("\n</think>\n\n")
    assert _ and before and after.strip()  # closed after the budget, then answered
    assert 8 + 4 <= done.usage.completion_tokens <= 40
