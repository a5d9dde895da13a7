"""The leaderboard maths: pairwise results of a vote, Bradley–Terry fit, bootstrap intervals."""

from __future__ import annotations

import math

from cove.features.arena.rating import comparisons, fit, leaderboard


def test_comparisons_of_a_vote() -> None:
    assert comparisons(["a", "b", "c"], "B") == [("b", "a", 1.0), ("b", "c", 1.0)]
    assert comparisons(["a", "b", "c"], "tie") == [("a", "b", 0.5), ("a", "c", 0.5),
                                                  ("b", "c", 0.5)]
    assert comparisons(["a", "b"], "bad") == [("a", "b", 0.5)]


def test_fit_matches_the_bradley_terry_likelihood() -> None:
    # a beats b 3 times of 4: with the prior (one tie each against the anchor, strength 1)
    # the MM fixed point satisfies wins_i = sum_j n_ij p_i / (p_i + p_j) for every model
    pairs = [("a", "b", 1.0)] * 3 + [("b", "a", 1.0)]
    r = fit(pairs)
    p = {m: 10 ** ((v - 1000) / 400) for m, v in r.items()}
    for m, o, wins in (("a", "b", 3.5), ("b", "a", 1.5)):
        expected = 4 * p[m] / (p[m] + p[o]) + p[m] / (p[m] + 1)
        assert math.isclose(expected, wins, rel_tol=1e-6)
    assert r["a"] > 1000 > r["b"]


def test_symmetry_and_unbeaten_models_stay_finite() -> None:
    r = fit([("a", "b", 1.0)] * 5)
    assert math.isfinite(r["a"]) and math.isfinite(r["b"])
    assert math.isclose(r["a"] - 1000, 1000 - r["b"], rel_tol=1e-3)


def test_leaderboard_counts_order_and_intervals() -> None:
    votes = [(["a", "b"], "A")] * 6 + [(["b", "a"], "A")] * 2 + [(["a", "c"], "tie")] \
        + [(["c", "b"], "bad")]
    rows = leaderboard(votes, rounds=100)
    assert [r.model for r in rows] == ["a", "c", "b"]
    a = rows[0]
    assert (a.battles, a.wins, a.losses, a.ties) == (9, 6, 2, 1)
    for r in rows:
        assert r.ci_low <= r.rating <= r.ci_high
    assert rows[0].ci_high - rows[0].ci_low > 0
    assert [x.as_dict() for x in leaderboard(votes, rounds=100)] == [x.as_dict() for x in rows]
    assert leaderboard([]) == []
