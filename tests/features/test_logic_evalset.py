"""The logic-mode evaluation set: deterministic, and every answer re-computed with sympy."""

from __future__ import annotations

import sympy

from cove.features.logic.evalset import TEMPLATES, problems
from cove.features.logic.tools import calculate, extract_answer, normalise


def test_deterministic_and_varied() -> None:
    assert problems(40, seed=3) == problems(40, seed=3)
    assert problems(40, seed=3) != problems(40, seed=4)
    ps = problems(48)
    assert len({p.question for p in ps}) == 48
    assert {p.kind for p in ps} == {t(__import__("random").Random(0)).kind for t in TEMPLATES}


def test_answers_agree_with_sympy() -> None:
    for p in problems(60, seed=1):
        value = calculate(p.expression).strip("[]")
        assert normalise(str(sympy.Rational(value))) == p.answer, p
        assert p.answer == normalise(p.answer)  # already normalised
        # the answer is what a correct reply would be extracted as
        assert extract_answer(f"... so it is this.\nAnswer: {float(sympy.Rational(p.answer)):g}"
                              ) == p.answer

