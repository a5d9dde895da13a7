"""The unified KV layout: a running slot lends its prefix cells to a new request for free."""

from __future__ import annotations

import asyncio

import pytest

from cove.engine.llama import LlamaEngine
from cove.engine.scheduler import Scheduler
from cove.engine.template import render_chat
from cove.engine.types import Finished, SamplingParams
from cove.models.registry import bundled_model_path

pytestmark = pytest.mark.real_model


def test_shared_system_prompt_is_reused_across_running_slots() -> None:
    eng = LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=1024, n_slots=4,
                      n_threads=2, kv_unified=True)
    sched = Scheduler(eng)
    system = {"role": "system", "content": "You are a careful assistant. " * 15}

    def tokens(q: str) -> list[int]:
        text = render_chat(eng.info.chat_template, [system, {"role": "user", "content": q}])
        return eng.tokenize(text, add_bos=eng.info.add_bos, special=True)

    async def go() -> list[tuple[int, int]]:
        async def one(q: str, delay: float) -> tuple[int, int]:
            await asyncio.sleep(delay)
            job = sched.submit(tokens(q), SamplingParams(temperature=0, max_tokens=24))
            async for ev in job.events():
                if isinstance(ev, Finished):
                    return ev.usage.cached_tokens, ev.usage.completion_tokens
            return -1, -1

        # the second request arrives while the first is still decoding
        return list(await asyncio.gather(one("What is rain?", 0), one("Why is grass green?", 0.3)))

    try:
        (cached1, n1), (cached2, n2) = asyncio.run(go())
        a, b = tokens("What is rain?"), tokens("Why is grass green?")
    finally:
        sched.close()
        eng.close()
    common = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert cached1 == 0 and n1 > 0 and n2 > 0
    assert common > 80
    assert cached2 == common  # the system prompt came from the running slot's cells
