"""The arena's leaderboard: Bradley–Terry strengths with bootstrap confidence intervals, on the
Elo scale (as LMSYS Chatbot Arena reports them: Chiang et al. 2024,
https://arxiv.org/abs/2403.04132).

- **Comparisons**: a vote on a battle of k contestants becomes k-1 pairwise results for the
  winner (it beat each other contestant), or ties between every pair for ``tie`` and ``bad``
  ("both bad" says nothing about which is better, so it counts as a tie, as in Chatbot Arena).
- **Fit**: Bradley–Terry, P(i beats j) = p_i / (p_i + p_j), by Hunter's MM iteration (Hunter
  2004, "MM algorithms for generalized Bradley-Terry models", Ann. Statist. 32(1)); a tie counts
  half a win for each side. Every model also plays one virtual tie against an anchor of fixed
  strength 1 (a weak prior), so an unbeaten or winless model still gets a finite rating and
  ratings are pinned to the anchor: rating = 1000 + 400·log10(p).
- **Intervals**: 95% percentile bootstrap (Efron) over votes: ``rounds`` resamples of the
  votes with replacement (seeded, so the same votes always give the same table), refitted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

Pair = tuple[str, str, float]  # (a, b, score of a: 1 win, 0.5 tie, 0 loss)
BASE, SCALE = 1000.0, 400.0
ANCHOR = "\x00anchor"


def comparisons(models: list[str], winner: str) -> list[Pair]:
    """The pairwise results of one vote: ``winner`` is a slot letter (``A`` = ``models[0]``,
    ...), ``tie`` or ``bad``."""
    if winner in ("tie", "bad"):
        return [(models[i], models[j], 0.5)
                for i in range(len(models)) for j in range(i + 1, len(models))]
    w = models[ord(winner) - ord("A")]
    return [(w, m, 1.0) for k, m in enumerate(models) if k != ord(winner) - ord("A")]


def fit(pairs: list[Pair], iterations: int = 200, tol: float = 1e-9) -> dict[str, float]:
    """Bradley–Terry ratings (Elo scale) of every model in ``pairs`` (module docstring)."""
    names = sorted({a for a, _, _ in pairs} | {b for _, b, _ in pairs})
    wins: dict[str, float] = defaultdict(float)
    games: dict[tuple[str, str], float] = defaultdict(float)
    for a, b, s in [*pairs, *((m, ANCHOR, 0.5) for m in names)]:
        wins[a] += s
        wins[b] += 1.0 - s
        games[a, b] += 1.0
        games[b, a] += 1.0
    opponents: dict[str, list[str]] = defaultdict(list)
    for a, b in games:
        opponents[a].append(b)
    p = {m: 1.0 for m in [*names, ANCHOR]}
    for _ in range(iterations):
        delta = 0.0
        for m in names:
            denom = sum(games[m, o] / (p[m] + p[o]) for o in opponents[m])
            new = max(wins[m], 1e-9) / denom
            delta = max(delta, abs(math.log(new) - math.log(p[m])))
            p[m] = new
        if delta < tol:
            break
    return {m: BASE + SCALE * math.log10(p[m]) for m in names}


@dataclass
class Row:
    """One leaderboard line."""

    model: str
    rating: float
    ci_low: float
    ci_high: float
    battles: int
    wins: int
    losses: int
    ties: int

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "rating": round(self.rating, 1),
                "ci": [round(self.ci_low, 1), round(self.ci_high, 1)],
                "battles": self.battles, "wins": self.wins, "losses": self.losses,
                "ties": self.ties}


def leaderboard(votes: list[tuple[list[str], str]], rounds: int = 200,
                seed: int = 0) -> list[Row]:
    """Rows best first from ``votes`` (``(models by slot, winner)``): rating, 95% bootstrap
    interval, battles and wins/losses/ties (a battle's winner wins it; every other contestant
    loses it; ``tie``/``bad`` count as ties for all)."""
    import random

    pairs = [comparisons(m, w) for m, w in votes]
    ratings = fit([p for ps in pairs for p in ps])
    samples: dict[str, list[float]] = defaultdict(list)
    rng = random.Random(seed)
    for _ in range(rounds if votes else 0):
        pick = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        fitted = fit([p for ps in pick for p in ps], iterations=100, tol=1e-6)
        for m in ratings:
            samples[m].append(fitted.get(m, BASE))  # absent from a resample: the prior
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for models, winner in votes:
        for k, m in enumerate(models):
            c = counts[m]
            c[0] += 1
            if winner in ("tie", "bad"):
                c[3] += 1
            elif ord(winner) - ord("A") == k:
                c[1] += 1
            else:
                c[2] += 1
    rows = []
    for m, r in ratings.items():
        s = sorted(samples[m]) or [r]
        lo, hi = s[int(0.025 * (len(s) - 1))], s[int(math.ceil(0.975 * (len(s) - 1)))]
        rows.append(Row(m, r, min(lo, r), max(hi, r), *counts[m]))
    rows.sort(key=lambda row: (-row.rating, row.model))
    return rows
