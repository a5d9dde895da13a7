"""Exact tools for logic mode: arithmetic and algebra with sympy, answer extraction and voting.

``calculate`` parses with sympy's parser restricted to a whitelist of names (no attribute
access, no ``eval`` of arbitrary Python) and returns exact results (fractions stay fractions).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    rationalize,
    standard_transformations,
)

from cove.errors import InvalidRequest

SAFE = {name: getattr(sympy, name) for name in (
    "sqrt", "Rational", "pi", "E", "I", "sin", "cos", "tan", "log", "exp", "factorial",
    "binomial", "gcd", "lcm", "floor", "ceiling", "Abs", "Symbol", "Eq", "solve",
    "simplify", "expand", "factor", "diff", "integrate", "oo", "Integer", "Min", "Max")}
# rationalize: decimals become exact fractions ("0.1*3" -> 3/10), never binary floats
TRANSFORMS = (*standard_transformations, rationalize, implicit_multiplication_application,
              convert_xor)
MAX_EXPRESSION = 500


def calculate(expression: str) -> str:
    """Evaluate ``expression`` exactly: ``"2/3 + 1/6"`` -> ``"5/6"``, ``"0.1*3"`` ->
    ``"3/10"``, ``"solve(x^2-4, x)"`` -> ``"[-2, 2]"``, ``"x + x"`` -> ``"2*x"``. Decimal
    approximations are added for irrational numbers (``"sqrt(2) ~ 1.41421356237310"``).

    Raises:
        InvalidRequest: too long, dunder or attribute access, or not parseable.
    """
    if len(expression) > MAX_EXPRESSION or "__" in expression or "." in re.sub(
            r"\d\.\d", "", expression):
        raise InvalidRequest("not an arithmetic or algebra expression", param="expression")
    try:
        value = parse_expr(expression, local_dict=dict(SAFE), global_dict={"__builtins__": {}},
                           transformations=TRANSFORMS, evaluate=True)
    except Exception as e:  # noqa: BLE001 - the parser raises many kinds
        raise InvalidRequest(f"cannot evaluate {expression!r}: {e}", param="expression") from e
    text = str(value)
    if isinstance(value, sympy.Expr) and value.is_number and not value.is_Rational:
        text += f" ~ {sympy.N(value, 15)}"
    return text


ANSWER = re.compile(r"(?:answer|result)\s*(?:is|:|=)?\s*\$?\s*(-?[\d,]*\.?\d+(?:/\d+)?)",
                    re.IGNORECASE)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def extract_answer(text: str) -> str | None:
    """The final numeric answer of a reply, normalised (``"1,000.50"`` -> ``"2001/2"``,
    ``"4.0"`` -> ``"4"``): the number after "answer is"/"result:" if any, else the last
    number; None when there is none."""
    found = ANSWER.findall(text) or NUMBER.findall(text)
    if not found:
        return None
    return normalise(found[-1])


def normalise(number: str) -> str | None:
    """An exact canonical form of a number text (a fraction in lowest terms), or None."""
    try:
        return str(Fraction(number.replace(",", "").rstrip(".")))
    except (ValueError, ZeroDivisionError):
        return None


@dataclass(frozen=True)
class Vote:
    """Self-consistency outcome: the ``answer`` most samples agree on (None if none had one),
    ``agreement`` as the share of all samples (0..1), and every sample's extracted answer."""

    answer: str | None
    agreement: float
    answers: list[str | None]


def majority(answers: list[str | None]) -> Vote:
    """Majority vote over extracted answers (ties: the answer seen first)."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return Vote(None, 0.0, answers)
    best = max(counts, key=lambda a: (counts[a], -answers.index(a)))
    return Vote(best, counts[best] / len(answers), answers)
