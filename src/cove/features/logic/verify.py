"""Check the arithmetic a model wrote: re-compute every ``<expression> = <number>`` in its work
with sympy (:func:`cove.features.logic.tools.calculate`) and report the claims that are wrong.

Small models often set a problem up right and then multiply wrongly; logic mode uses these
checks to replace a final answer that is a wrongly computed value by the right value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from cove.errors import InvalidRequest
from cove.features.logic.tools import calculate, normalise

# an arithmetic expression (numbers joined by operators, with parentheses) = a number
CLAIM = re.compile(
    r"(?<![\w.])(\(*\s*\$?-?\d[\d,]*(?:\.\d+)?\s*\)*(?:\s*[-+*/×x÷^]\s*\(*\s*\$?-?\d[\d,]*"
    r"(?:\.\d+)?\s*\)*)+)\s*=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)(?![\d.]*\d)")


@dataclass(frozen=True)
class Check:
    """One arithmetic claim: ``expression`` as written, the ``claimed`` and the ``actual``
    value (normalised fractions, see :func:`normalise`), and whether they agree."""

    expression: str
    claimed: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.claimed == self.actual


def check_arithmetic(text: str, limit: int = 50) -> list[Check]:
    """The arithmetic claims in ``text`` (at most ``limit``), each re-computed exactly.
    Claims whose expression cannot be evaluated (or whose value is not rational) are skipped."""
    out = []
    for m in CLAIM.finditer(text):
        expr = m.group(1).strip().replace(",", "").replace("$", "")
        expr = re.sub(r"[×x]", "*", expr).replace("÷", "/")
        claimed = normalise(m.group(2))
        try:
            actual = normalise(calculate(expr))
        except InvalidRequest:
            continue
        if claimed is None or actual is None:
            continue
        out.append(Check(m.group(1).strip(), claimed, actual))
        if len(out) >= limit:
            break
    return out


def corrected(answer: str | None, checks: list[Check]) -> str | None:
    """``answer`` replaced by the right value when it is the (last) wrongly computed result
    of a check; else ``answer`` unchanged."""
    if answer is None:
        return None
    for c in reversed(checks):
        if not c.ok and Fraction(c.claimed) == Fraction(answer):
            return c.actual
    return answer
