"""DeepSeek-R1's rule-based rewards (R1 paper, section 2.2.2), each a number in ``[0, 1]``.

- ``format``: the reasoning inside ``<think>…</think>``, then an answer. R1 scores it 0 or 1;
  here the whole format is 1 and each part of it a quarter (an opening tag at the start, a
  closing tag after it), so that a small model that never writes the whole format by chance
  still gets a signal to climb (a group whose rewards are all equal teaches GRPO nothing).
- ``accuracy``: the final answer (after ``</think>``; a ``\\boxed{}``, an ``Answer:`` line, or
  the last number) against the reference: exact (case and spacing aside), numeric (exact
  fractions, as logic mode compares them: ``"0.5"`` = ``"1/2"``), or sympy-equal
  (``"2*(x+1)"`` = ``"2x+2"``, through logic mode's restricted sympy parser). A code answer
  (a reference with ``tests``) is the last fenced code block, run with the tests appended in
  logic mode's sandbox: 1 when it exits cleanly.
- A reward file: ``--reward-file FILE.py`` defining ``reward(prompt, completion, answer)``
  returning a number; its name is the file's stem. An exception in it stops the run with the
  file, line and error (:class:`RewardFailed`).
"""

from __future__ import annotations

import importlib.util
import math
import re
import traceback
from collections.abc import Callable
from pathlib import Path

import sympy

from cove.errors import InvalidRequest
from cove.features.logic.sandbox import run_python
from cove.features.logic.tools import calculate, normalise

Reward = Callable[[str, str, str | None, str | None], float]  # prompt, completion, answer, tests

FORMAT = re.compile(r"^\s*<think>(.+?)</think>\s*(\S.*)$", re.DOTALL)
BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
ANSWER_LINE = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*(.+)", re.IGNORECASE)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
CODE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


class RewardFailed(InvalidRequest):
    """A reward function raised or returned something that is not a finite number."""


def is_formatted(completion: str) -> bool:
    """Whether ``completion`` is ``<think>reasoning</think>`` followed by an answer."""
    return FORMAT.match(completion) is not None


def format_reward(prompt: str, completion: str, answer: str | None, tests: str | None) -> float:
    """1 for the whole format; else 0.25 for a leading ``<think>`` and 0.25 for a
    ``</think>`` after it."""
    if is_formatted(completion):
        return 1.0
    head = completion.lstrip()
    score = 0.25 if head.startswith("<think>") else 0.0
    if "</think>" in head[head.find("<think>") + 1 if "<think>" in head else 0:]:
        score += 0.25
    return score


def final_answer(completion: str) -> str:
    """The answer part of a completion: after ``</think>`` (if any), then the last
    ``\\boxed{…}``, else the last ``Answer: …`` line, else the whole rest, stripped."""
    rest = completion.rsplit("</think>", 1)[-1]
    boxed = BOXED.findall(rest)
    if boxed:
        return boxed[-1].strip()
    lines = ANSWER_LINE.findall(rest)
    if lines:
        return lines[-1].strip().rstrip(".")
    return rest.strip()


def same_answer(given: str, reference: str) -> bool:
    """Exact (case, spacing and a final period aside), numeric (exact fractions: the last
    number of ``given``), or sympy-equal."""
    def norm(s: str) -> str:
        return " ".join(s.strip().rstrip(".").lower().split())

    if norm(given) == norm(reference):
        return True
    ref_num = normalise(reference.strip())
    if ref_num is not None:
        nums = NUMBER.findall(given)
        return bool(nums) and normalise(nums[-1]) == ref_num
    try:
        a, b = calculate(given), calculate(reference)
        return bool(sympy.simplify(sympy.sympify(f"({a}) - ({b})")) == 0)
    except (InvalidRequest, sympy.SympifyError, TypeError, ValueError):
        return False


def accuracy_reward(prompt: str, completion: str, answer: str | None,
                    tests: str | None) -> float:
    """1 when the final answer matches ``answer`` (see :func:`same_answer`), or, with
    ``tests``, when the last code block passes them in the sandbox; 0 otherwise (also when
    the example has no reference)."""
    if tests:
        blocks = CODE.findall(completion.rsplit("</think>", 1)[-1]) or CODE.findall(completion)
        if not blocks:
            return 0.0
        return 1.0 if run_python(blocks[-1] + "\n\n" + tests, timeout=5.0).ok else 0.0
    if answer is None:
        return 0.0
    return 1.0 if same_answer(final_answer(completion), answer) else 0.0


BUILTIN: dict[str, Reward] = {"format": format_reward, "accuracy": accuracy_reward}


def load_reward_file(path: Path) -> tuple[str, Reward]:
    """``(name, reward)`` from a Python file defining ``reward(prompt, completion, answer)``.

    Raises:
        RewardFailed: the file cannot be imported or defines no callable ``reward``.
    """
    spec = importlib.util.spec_from_file_location(f"cove_reward_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise RewardFailed(f"reward file {path}: not a Python file", param="reward_file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - any error in the user's file
        raise RewardFailed(f"reward file {path} failed to load: {_where(e)}",
                           param="reward_file") from e
    fn = getattr(module, "reward", None)
    if not callable(fn):
        raise RewardFailed(f"reward file {path} defines no function reward(prompt, "
                           "completion, answer)", param="reward_file")

    def wrapped(prompt: str, completion: str, answer: str | None, tests: str | None) -> float:
        return fn(prompt, completion, answer)

    return path.stem, wrapped


def score(name: str, fn: Reward, prompt: str, completion: str, answer: str | None,
          tests: str | None) -> float:
    """``fn``'s reward as a float.

    Raises:
        RewardFailed: it raised, or returned something that is not a finite number.
    """
    try:
        value = fn(prompt, completion, answer, tests)
        out = float(value)
    except Exception as e:  # noqa: BLE001 - any error in a reward function
        raise RewardFailed(f"reward {name!r} failed: {_where(e)}", param="reward") from e
    if not math.isfinite(out):
        raise RewardFailed(f"reward {name!r} returned {value!r}, not a finite number",
                           param="reward")
    return out


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    at = f" (line {frames[-1].lineno} of {Path(frames[-1].filename).name})" if frames else ""
    return f"{type(e).__name__}: {e}{at}"


def parse_weights(items: tuple[str, ...] | list[str], extra: list[str] | None = None
                  ) -> dict[str, float]:
    """``["format=1", "accuracy=0.5"]`` -> ``{"format": 1.0, "accuracy": 0.5}`` (a bare name
    weighs 1). Names are the built-in rewards and ``extra`` (reward files).

    Raises:
        InvalidRequest: unknown name or a weight that is not a number.
    """
    known = set(BUILTIN) | set(extra or [])
    out: dict[str, float] = {}
    for item in items:
        name, _, w = item.partition("=")
        name = name.strip()
        if name not in known:
            raise InvalidRequest(f"unknown reward {name!r}; choose from "
                                 f"{', '.join(sorted(known))}", param="reward")
        try:
            out[name] = float(w) if w else 1.0
        except ValueError:
            raise InvalidRequest(f"reward weight {w!r} is not a number", param="reward") from None
    return out
