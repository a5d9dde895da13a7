"""Reasoning distillation (DeepSeek-R1, section 2.4): a teacher model served by Cove writes
reasoning traces for the user's prompts; the traces whose answer a rule rejects are dropped
and the rest become an SFT dataset.

The teacher runs through Cove's one chat pipeline in this process (llama.cpp, batched
``batch`` prompts at a time through the scheduler's slots); no torch is needed. A trace is
the teacher's ``reasoning_content`` (empty for a model that does not reason) and its answer;
the SFT example is ``<think>\\n{reasoning}\\n</think>\\n\\n{answer}`` as the assistant turn
(R1's distilled models write that format).

Rules: ``match`` (default) — the reference answer of the prompt, compared exactly, numerically
or by sympy (:func:`cove.features.train.rewards.same_answer`; code prompts with ``tests`` run
in the sandbox); ``regex:PATTERN`` — the answer must contain a match; ``none`` — keep all.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.chat import ChatMessage, ChatRequest
from cove.engine.types import SamplingParams
from cove.errors import InvalidRequest
from cove.features.train import data as D
from cove.features.train import rewards as R
from cove.pipeline import ChatPipeline


@dataclass
class DistillResult:
    """``kept`` examples written to ``out`` of ``total`` prompts; ``dropped`` with why."""

    out: Path
    total: int
    kept: int
    dropped: list[tuple[int, str]]


def parse_rule(rule: str) -> Callable[[str, D.Example], str | None]:
    """The rule ``rule`` as ``check(answer, example) -> None (kept) | why dropped``.

    Raises:
        InvalidRequest: unknown rule or a bad regular expression.
    """
    if rule == "none":
        return lambda answer, e: None if answer.strip() else "empty answer"
    if rule.startswith("regex:"):
        try:
            pattern = re.compile(rule[6:])
        except re.error as err:
            raise InvalidRequest(f"bad --rule regex: {err}", param="rule") from None
        return lambda answer, e: None if pattern.search(answer) else "no match of the regex"
    if rule == "match":
        def check(answer: str, e: D.Example) -> str | None:
            if e.answer is None and not e.tests:
                return "the prompt has no reference answer"
            ok = R.accuracy_reward(e.prompt, answer, e.answer, e.tests) > 0
            return None if ok else "answer differs from the reference"
        return check
    raise InvalidRequest(f"unknown rule {rule!r}: match, regex:PATTERN or none", param="rule")


def trace_text(reasoning: str, answer: str) -> str:
    """The assistant turn of a distilled example."""
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{answer.strip()}"


async def distill(pipeline: ChatPipeline, teacher: str, prompts: Path, out: Path, *,
                  rule: str = "match", batch: int = 4, max_tokens: int = 512,
                  temperature: float = 0.6, seed: int = 0, system: str | None = None,
                  progress: Callable[[int, int, int], None] | None = None) -> DistillResult:
    """Write the filtered SFT dataset ``out`` (JSONL, ``messages``) from ``prompts``.

    Args:
        teacher: an installed model's name.
        batch: prompts generated together.
        progress: ``progress(done, total, kept)`` after each batch.

    Raises:
        ModelNotFound: the teacher is not installed (before anything is generated).
        DatasetError: the prompts file is invalid.
        InvalidRequest: a bad rule, or no trace passed it (nothing is written).
    """
    check = parse_rule(rule)
    examples = D.load(prompts, need_answer=False)
    pipeline.resolve(teacher)  # ModelNotFound before any work
    if batch < 1:
        raise InvalidRequest("batch must be >= 1", param="batch")
    rows: list[dict[str, Any]] = []
    dropped: list[tuple[int, str]] = []
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)

    async def one(e: D.Example, i: int) -> tuple[D.Example, str, str, str]:
        msgs = [ChatMessage(m["role"], m["content"]) for m in e.messages]
        if system and msgs[0].role != "system":
            msgs.insert(0, ChatMessage("system", system))
        p = SamplingParams(max_tokens=params.max_tokens, temperature=params.temperature,
                           seed=seed + i)
        stream = await pipeline.start_chat(ChatRequest(msgs, p, teacher))
        r = await stream.collect()
        return e, r.reasoning, r.content, r.finish_reason

    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        results = await asyncio.gather(*(one(e, start + j) for j, e in enumerate(chunk)))
        for e, reasoning, answer, finish in results:
            why = "cut off at max_tokens" if finish == "length" else check(answer, e)
            if why:
                dropped.append((e.line, why))
                continue
            rows.append({"messages": [*e.messages, {"role": "assistant",
                                                     "content": trace_text(reasoning, answer)}]})
        if progress:
            progress(min(start + batch, len(examples)), len(examples), len(rows))
    if not rows:
        raise InvalidRequest(f"no trace of {teacher!r} passed the rule {rule!r} "
                             f"({len(dropped)} dropped); nothing written", param="rule")
    out.parent.mkdir(parents=True, exist_ok=True)
    D.write(out, rows)
    return DistillResult(out, len(examples), len(rows), dropped)
