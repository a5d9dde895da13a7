"""Training datasets: JSONL files, one example per line, validated before anything starts.

Each line is a JSON object with either

- ``messages``: a chat, ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``, with
  at least one user and ending with an assistant message (the text trained on); or
- ``prompt`` (str) plus ``answer`` or ``solution`` (str or number): a question and its
  reference answer. For SFT the answer is the text trained on; for GRPO it is what the accuracy
  reward checks against. ``tests`` (str, Python asserts) may come with a code ``prompt``.

Blank lines are skipped. Errors name the line (1-based) and why (:class:`DatasetError`).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cove.errors import InvalidRequest

ROLES = ("system", "user", "assistant")
MAX_ERRORS = 20  # bad lines reported at once


class DatasetError(InvalidRequest):
    """The dataset cannot be used: ``problems`` lists ``(line, why)`` (line 0: the file)."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        shown = "; ".join(f"line {n}: {why}" if n else why for n, why in problems[:MAX_ERRORS])
        more = f" (and {len(problems) - MAX_ERRORS} more)" if len(problems) > MAX_ERRORS else ""
        super().__init__(f"dataset {path}: {shown}{more}", param="data")


@dataclass(frozen=True)
class Example:
    """One validated line: ``messages`` (the chat up to the answer, without it), ``answer``
    (the reference/assistant text, or None for a chat without a final assistant turn, which
    only GRPO accepts), ``tests`` for code answers, ``line`` in the file."""

    messages: tuple[dict[str, str], ...]
    answer: str | None
    line: int
    tests: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def prompt(self) -> str:
        """The last user message."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


def _example(obj: Any, n: int, need_answer: bool) -> Example:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    tests = obj.get("tests")
    if tests is not None and not isinstance(tests, str):
        raise ValueError("'tests' must be a string of Python code")
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise ValueError("'messages' must be a non-empty list")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise ValueError(f"messages[{i}].role must be one of {', '.join(ROLES)}")
            if not isinstance(m.get("content"), str):
                raise ValueError(f"messages[{i}].content must be a string")
        clean = [{"role": m["role"], "content": m["content"]} for m in msgs]
        if not any(m["role"] == "user" for m in clean):
            raise ValueError("'messages' has no user message")
        answer = None
        if clean[-1]["role"] == "assistant":
            answer = clean.pop()["content"]
            if not answer.strip():
                raise ValueError("the final assistant message is empty")
        elif need_answer:
            raise ValueError("'messages' must end with an assistant message (the text trained "
                             "on)")
        if clean[-1]["role"] != "user":
            raise ValueError("'messages' must have a user message before the answer")
        return Example(tuple(clean), answer, n, tests)
    if "prompt" in obj:
        prompt = obj["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("'prompt' must be a non-empty string")
        raw = obj.get("answer", obj.get("solution"))
        if isinstance(raw, bool) or not isinstance(raw, str | int | float | type(None)):
            raise ValueError("'answer'/'solution' must be a string or a number")
        if raw is None and need_answer:
            raise ValueError("needs 'answer' or 'solution' beside 'prompt'")
        answer = None if raw is None else str(raw)
        if answer is not None and not answer.strip():
            raise ValueError("'answer'/'solution' is empty")
        system = obj.get("system")
        msgs_: list[dict[str, str]] = []
        if isinstance(system, str) and system:
            msgs_.append({"role": "system", "content": system})
        msgs_.append({"role": "user", "content": prompt})
        return Example(tuple(msgs_), answer, n, tests)
    raise ValueError("needs 'messages', or 'prompt' with 'answer' or 'solution'")


def load(path: Path, *, need_answer: bool = True) -> list[Example]:
    """Read and validate the JSONL file ``path``.

    Args:
        need_answer: every example must carry the text to train on / check against.

    Raises:
        DatasetError: unreadable file, bad lines (each with its number and why), or no
            examples at all.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetError(path, [(0, f"cannot read it: {e.strerror or e}")]) from e
    problems: list[tuple[int, str]] = []
    out: list[Example] = []
    for n, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            problems.append((n, "not UTF-8"))
            continue
        except json.JSONDecodeError as e:
            problems.append((n, f"not JSON ({e.msg} at column {e.colno})"))
            continue
        try:
            out.append(_example(obj, n, need_answer))
        except ValueError as e:
            problems.append((n, str(e)))
    if problems:
        raise DatasetError(path, problems)
    if not out:
        raise DatasetError(path, [(0, "no examples (the file is empty)")])
    return out


def digest(path: Path) -> str:
    """``sha256:<hex>`` of the dataset file (recorded with the trained model)."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def split(examples: list[Example], held_out: int, seed: int = 0) -> tuple[list[Example],
                                                                          list[Example]]:
    """``(train, held_out)``: ``held_out`` examples drawn with ``seed`` (never all of them:
    at least one stays for training)."""
    k = max(0, min(held_out, len(examples) - 1))
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:k])
    return ([e for i, e in enumerate(examples) if i not in chosen],
            [e for i, e in enumerate(examples) if i in chosen])


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as JSONL atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
    tmp.replace(path)
