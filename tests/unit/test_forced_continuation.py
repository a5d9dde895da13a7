"""The scheduler's forced continuation (used for the reasoning budget), over the scripted
engine: exact triggering, feeding like prompt tokens, and counting."""

from __future__ import annotations

import asyncio

from cove.engine.fake import ScriptedEngine
from cove.engine.scheduler import Scheduler
from cove.engine.types import ForcedContinuation, SamplingParams
from tests.unit.test_scheduler import collect

CLOSE = tuple(b"</t>")


def go(script: list[str | bytes | Exception], force: ForcedContinuation,
       max_tokens: int | None = None) -> tuple[ScriptedEngine, str, bool, int]:
    eng = ScriptedEngine(n_slots=1)
    eng.enqueue(script)  # type: ignore[arg-type]
    sched = Scheduler(eng)

    async def run() -> tuple[str, bool, int]:
        job = sched.submit([1, 2, 3], SamplingParams(max_tokens=max_tokens), force)
        text, done = await collect(job)
        return text, done.forced, done.usage.completion_tokens

    try:
        text, forced, n = asyncio.run(run())
    finally:
        sched.close()
    return eng, text, forced, n


def test_injected_after_n_tokens_and_fed_at_once() -> None:
    eng, text, forced, n = go(["a", "b", "c", "X", "Y"], ForcedContinuation(2, CLOSE, "</t>"))
    assert text == "ab</t>cXY"
    assert forced and n == 2 + 4 + 3
    # prompt (3), then a, then b + the 4 injected tokens in one feed, sampling only after it
    assert [step[0][1:] for step in eng.decodes][:3] == [(3, True), (1, True), (5, True)]


def test_not_injected_when_end_text_came() -> None:
    _, text, forced, _ = go(["a", "</t>", "c", "d"], ForcedContinuation(3, CLOSE, "</t>"))
    assert text == "a</t>cd" and not forced


def test_when_text_gates_the_injection() -> None:
    _, text, forced, _ = go(["x", "y", "z"], ForcedContinuation(1, CLOSE, "</t>", when="<t>"))
    assert text == "xyz" and not forced
    _, text, forced, _ = go(["<t>", "y", "z"], ForcedContinuation(1, CLOSE, "</t>", when="<t>"))
    assert text == "<t></t>yz" and forced


def test_injection_respects_max_tokens() -> None:
    _, text, forced, n = go(["a", "b", "c"], ForcedContinuation(1, CLOSE, "</t>"), max_tokens=3)
    assert text == "a</" and n == 3 and forced
