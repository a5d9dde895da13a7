"""Consistent hashing with bounded loads, for conversation affinity.

Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads" (SODA 2018; the
scheme behind Google Cloud Pub/Sub's and HAProxy's ``hash-balance-factor``): every member has
points on a hash ring (more points for a higher weight); a key goes to the first member
clockwise from its hash whose load is below ``ceil(c * (total load + 1) * weight / total
weight)``. With ``c`` = 1.25 no member carries more than 25% above its share, and a key moves
only when its member is full or gone, so a conversation keeps hitting the replica that holds its
prefix in cache.

Pure functions of their inputs (no I/O), so the router and ``bench/route_sim.py`` share them.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Sequence

POINTS = 64  # ring points per member of weight 1


def hash64(text: str) -> int:
    """A stable 64-bit hash of ``text`` (BLAKE2b; Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class Ring:
    """A hash ring over ``members`` (names) with ``weights`` (default 1 each)."""

    def __init__(self, members: Sequence[str], weights: Sequence[float] | None = None) -> None:
        self.members = list(members)
        self.weights = list(weights) if weights is not None else [1.0] * len(self.members)
        points: list[tuple[int, int]] = []
        for i, (name, w) in enumerate(zip(self.members, self.weights, strict=True)):
            for k in range(max(1, round(POINTS * w))):
                points.append((hash64(f"{name}#{k}"), i))
        points.sort()
        self._hashes = [h for h, _ in points]
        self._owners = [i for _, i in points]

    def walk(self, key: str) -> list[int]:
        """Member indices in ring order from ``key``'s point, each once."""
        if not self._hashes:
            return []
        start = bisect.bisect(self._hashes, hash64(key)) % len(self._hashes)
        seen: list[int] = []
        for j in range(len(self._hashes)):
            owner = self._owners[(start + j) % len(self._hashes)]
            if owner not in seen:
                seen.append(owner)
                if len(seen) == len(self.members):
                    break
        return seen

    def choose(self, key: str, load: Callable[[int], int], usable: Callable[[int], bool],
               c: float = 1.25) -> int | None:
        """The member for ``key``: the first in ring order that is ``usable`` and whose
        ``load`` (requests in flight) is below its bound; None when none is usable.
        ``c`` >= 1 is the balance factor."""
        order = [i for i in self.walk(key) if usable(i)]
        if not order:
            return None
        total = sum(load(i) for i in order) + 1
        weight = sum(self.weights[i] for i in order)
        for i in order:
            bound = math.ceil(c * total * self.weights[i] / weight)
            if load(i) < bound:
                return i
        return order[0]  # unreachable for c >= 1: some member is below its share
