"""Engine types: the common-prefix measure the scheduler's slot choice rests on."""

from __future__ import annotations

import random

from cove.engine.types import common_prefix


def test_common_prefix_matches_a_token_by_token_count() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        a = [rng.randrange(3) for _ in range(rng.randrange(0, 1200))]
        b = a[: rng.randrange(0, len(a) + 1)] + [rng.randrange(3)
                                                 for _ in range(rng.randrange(0, 600))]
        expected = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                        min(len(a), len(b)))
        assert common_prefix(a, b) == common_prefix(b, a) == expected


def test_common_prefix_edges() -> None:
    long = list(range(1000))
    assert common_prefix([], long) == 0
    assert common_prefix(long, long) == 1000
    assert common_prefix(long, [*long[:512], -1]) == 512
    assert common_prefix(long, [*long[:255], -1]) == 255
