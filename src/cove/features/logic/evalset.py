"""A small evaluation set of word problems with known answers, generated from templates.

Written for this project (no outside data set). Each template draws its numbers from a seeded
:class:`random.Random`, so ``problems(n, seed)`` is the same list every time. Answers are
computed with exact fractions; ``expression`` states the same computation in sympy syntax (a
test re-computes it). Kinds: unit price, distance from speed, unit conversion, percentage
discount, linear equation, fill time from a rate, hours and minutes, equal sharing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Problem:
    """One problem: ``kind`` (template name), ``question`` text, exact ``answer`` (normalised
    like :func:`cove.features.logic.tools.normalise`, e.g. ``"7/2"``) and the sympy
    ``expression`` whose value is the answer (``solve(...)`` for equations)."""

    kind: str
    question: str
    answer: str
    expression: str


Template = Callable[[random.Random], Problem]
ITEMS = ["pens", "notebooks", "apples", "tickets", "mugs", "books"]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo"]


def _price(r: random.Random) -> Problem:
    p, n, item = r.randint(2, 15), r.randint(3, 20), r.choice(ITEMS)
    return Problem("unit price", f"A shop sells {item} at {p} dollars each. How many dollars "
                   f"do {n} {item} cost?", str(p * n), f"{p}*{n}")


def _distance(r: random.Random) -> Problem:
    v, t = r.choice(range(40, 121, 5)), r.randint(2, 6)
    return Problem("distance", f"A train travels at {v} km per hour for {t} hours. How many "
                   "kilometres does it travel?", str(v * t), f"{v}*{t}")


def _convert(r: random.Random) -> Problem:
    a = Fraction(r.randint(3, 95), 10)
    text = f"{float(a):g}"
    return Problem("unit conversion", f"A rope is {text} metres long. How many centimetres "
                   "long is it?", str(a * 100), f"{text}*100")


def _discount(r: random.Random) -> Problem:
    p, d = r.choice(range(20, 201, 20)), r.choice([10, 20, 25, 50])
    ans = Fraction(p) * (100 - d) / 100
    return Problem("percentage", f"A jacket costs {p} dollars. It is on sale for {d} percent "
                   "off. What is the sale price in dollars?", str(ans), f"{p}*(100-{d})/100")


def _equation(r: random.Random) -> Problem:
    a, x, b = r.randint(2, 9), r.randint(1, 12), r.randint(1, 30)
    c = a * x + b
    return Problem("linear equation", f"If {a}x + {b} = {c}, what is x?", str(x),
                   f"solve({a}*x + {b} - {c}, x)")


def _fill(r: random.Random) -> Problem:
    rate, m = r.randint(3, 25), r.randint(4, 30)
    return Problem("rate", f"A pump fills a tank at {rate} litres per minute. How many minutes "
                   f"does it take to fill a {rate * m}-litre tank?", str(m), f"{rate * m}/{rate}")


def _minutes(r: random.Random) -> Problem:
    h, m = r.randint(1, 4), r.randint(1, 59)
    return Problem("time", f"A film lasts {h} hours and {m} minutes. How many minutes long is "
                   "it?", str(60 * h + m), f"60*{h}+{m}")


def _share(r: random.Random) -> Problem:
    n, each = r.randint(2, 8), r.randint(5, 60)
    return Problem("sharing", f"{r.choice(NAMES)} and {n - 1} friends share {n * each} dollars "
                   "equally. How many dollars does each person get?", str(each),
                   f"{n * each}/{n}")


TEMPLATES: list[Template] = [_price, _distance, _convert, _discount, _equation, _fill,
                             _minutes, _share]


def problems(n: int = 40, seed: int = 0) -> list[Problem]:
    """``n`` distinct problems, cycling through the templates in order, numbers drawn from
    ``seed`` (a repeated question is drawn again)."""
    r = random.Random(seed)
    out: list[Problem] = []
    seen: set[str] = set()
    while len(out) < n:
        p = TEMPLATES[len(out) % len(TEMPLATES)](r)
        if p.question not in seen:
            seen.add(p.question)
            out.append(p)
    return out
