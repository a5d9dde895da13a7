"""Split R1-style model output into reasoning and answer, for streams cut anywhere.

DeepSeek-R1 and its distills write ``<think>`` reasoning ``</think>`` and then the answer; many
distill chat templates already put the opening ``<think>`` at the end of the prompt, so the model's
output starts inside the reasoning with no opening tag. DeepSeek's API returns the two parts as
``reasoning_content`` and ``content``; this module produces exactly those two streams.

Rules (the same whether the text arrives whole or in pieces split at any character):

- ``start_in_reasoning=True`` (the template opened the block, or the model always reasons):
  output is reasoning until ``</think>``; a leading ``<think>`` is accepted and dropped.
- ``start_in_reasoning=False``: output is the answer unless it *begins* (after whitespace) with
  ``<think>``, in which case it is reasoning until ``</think>``.
- Tags are never emitted. Whitespace at the start and end of the reasoning, and at the start of
  the answer, is dropped. Text that could still be the start of a tag is held back.
- If the stream ends inside the reasoning (e.g. ``max_tokens``), what was reasoned is kept as
  reasoning.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["reasoning", "content"]

OPEN = "<think>"
CLOSE = "</think>"

_START, _REASON, _CONTENT = "start", "reason", "content"


def _partial_tag_len(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


class ThinkParser:
    """Incremental splitter. ``feed(text)`` returns a list of ``(kind, text)`` deltas, each
    non-empty and of one kind; ``flush()`` returns what was held back at the end."""

    def __init__(self, start_in_reasoning: bool = False) -> None:
        self._state = _START
        self._start_in_reasoning = start_in_reasoning
        self._buf = ""  # undecided text
        self._reason_started = False  # emitted any reasoning yet (for leading-space stripping)
        self._content_started = False

    def feed(self, text: str) -> list[tuple[Kind, str]]:
        self._buf += text
        out: list[tuple[Kind, str]] = []
        while True:
            before = (self._state, len(self._buf))
            if self._state == _START:
                self._step_start(out, final=False)
            elif self._state == _REASON:
                self._step_reason(out, final=False)
            else:
                self._emit_content(out, self._buf)
                self._buf = ""
            if (self._state, len(self._buf)) == before:
                break
        return _merge(out)

    def flush(self) -> list[tuple[Kind, str]]:
        out: list[tuple[Kind, str]] = []
        if self._state == _START:
            self._step_start(out, final=True)
        if self._state == _REASON:
            self._step_reason(out, final=True)
        elif self._state == _CONTENT:
            self._emit_content(out, self._buf)
        self._buf = ""
        return _merge(out)

    # -- states ------------------------------------------------------------------------------

    def _step_start(self, out: list[tuple[Kind, str]], final: bool) -> None:
        stripped = self._buf.lstrip()
        if stripped.startswith(OPEN):
            self._buf = stripped[len(OPEN) :]
            self._state = _REASON
        elif OPEN.startswith(stripped) and not final:
            return  # maybe the start of the tag, or only whitespace so far: wait
        elif self._start_in_reasoning:
            self._state = _REASON
        else:
            self._state = _CONTENT

    def _step_reason(self, out: list[tuple[Kind, str]], final: bool) -> None:
        buf = self._buf
        end = buf.find(CLOSE)
        if end != -1:
            self._emit_reasoning(out, buf[:end].rstrip())
            self._buf = buf[end + len(CLOSE) :]
            self._state = _CONTENT
            return
        if final:
            self._emit_reasoning(out, buf.rstrip())
            self._buf = ""
            return
        hold = _partial_tag_len(buf, CLOSE)
        safe = buf[: len(buf) - hold]
        # Trailing whitespace may be the end of the reasoning: hold it until more text comes.
        body = safe.rstrip()
        self._emit_reasoning(out, body)
        self._buf = buf[len(body) :]

    def _emit_reasoning(self, out: list[tuple[Kind, str]], text: str) -> None:
        if not self._reason_started:
            text = text.lstrip()
        if text:
            self._reason_started = True
            out.append(("reasoning", text))

    def _emit_content(self, out: list[tuple[Kind, str]], text: str) -> None:
        if not self._content_started:
            text = text.lstrip()
        if text:
            self._content_started = True
            out.append(("content", text))


def _merge(parts: list[tuple[Kind, str]]) -> list[tuple[Kind, str]]:
    merged: list[tuple[Kind, str]] = []
    for kind, text in parts:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


def split_reasoning(text: str, start_in_reasoning: bool = False) -> tuple[str, str]:
    """Whole-text form: return ``(reasoning, content)``."""
    p = ThinkParser(start_in_reasoning)
    parts = p.feed(text) + p.flush()
    reasoning = "".join(t for k, t in parts if k == "reasoning")
    content = "".join(t for k, t in parts if k == "content")
    return reasoning, content


_THINK_BLOCK = re.compile(r"^\s*(?:<think>)?.*?</think>\s*", re.DOTALL)


def strip_reasoning(content: str) -> str:
    """Remove a leading reasoning block from an earlier assistant turn's text, so reasoning is
    not sent back into the next prompt (DeepSeek's multi-turn rule)."""
    if "</think>" not in content:
        return content
    return _THINK_BLOCK.sub("", content, count=1)
