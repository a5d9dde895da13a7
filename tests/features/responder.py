"""A scripted engine that answers by prompt: ``respond(prompt_text) -> answer_text`` is asked
for each generation (through the engine's oracle), so concurrent requests get answers that
depend on what they asked, not on the order they started in."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cove.engine.fake import ScriptedEngine

MARK = "<|im_start|>assistant\n"  # where a ChatML prompt ends (the fake engine's template)


def answer_by_prompt(engine: ScriptedEngine, respond: Callable[[str], str],
                     mark: str = MARK) -> None:
    """Make ``engine`` answer every chat with ``respond(its rendered prompt)``; ``mark`` is
    the text that ends the template's prompt."""
    answers: dict[str, bytes] = {}

    def oracle(tokens: list[int]) -> int:
        text = bytes(tokens).decode("utf-8", "replace")
        cut = text.rfind(mark) + len(mark)
        prompt, written = text[:cut], bytes(tokens)[len(text[:cut].encode()):]
        if prompt not in answers:
            answers[prompt] = respond(prompt).encode()
        full = answers[prompt]
        return full[len(written)] if len(written) < len(full) else 0

    engine.oracle = oracle


def read_sse(text: str) -> list[dict[str, Any]]:
    """The events of a named-event SSE body (``event:`` then ``data:`` per block); each
    event's ``type`` must match its name."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = block.split("\n", 1)
        assert name.startswith("event: ") and data.startswith("data: "), block
        obj = json.loads(data[len("data: "):])
        assert obj["type"] == name[len("event: "):]
        out.append(obj)
    return out
