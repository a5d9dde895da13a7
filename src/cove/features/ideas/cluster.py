"""Deduplication and theme grouping of ideas over the core text embedder.

Pure functions over unit-length vectors (``(n, d)`` float32 arrays from
:func:`cove.embeddings.embed`) and texts; nothing here loads a model.

- **Duplicates** (:class:`Deduper`): an idea is a duplicate of an earlier one when its text is
  near-identical (character similarity of the normalised texts, :func:`text_ratio`, at least
  :data:`TEXT_DUPLICATE`) or its embedding is close (cosine at least :data:`COSINE_DUPLICATE`).
  Greedy in arrival order: the first of a set of near-repeats is kept.
- **Themes** (:func:`agglomerate`): average-linkage agglomerative clustering (UPGMA; Sokal &
  Michener 1958) on cosine distance, merging the closest pair of groups while their mean
  pairwise distance is below a threshold (and beyond it while there are too many groups).
  Written here (a few lines over numpy) rather than adding SciPy for it.
- **Names** (:func:`theme_name`): the group's most distinctive words (term frequency in the
  group times inverse group frequency, as tf-idf), stop words left out.

How the thresholds were chosen: ``bench/ideas.py --calibrate`` embeds a labelled set of idea
pairs (paraphrases of one idea, and different ideas for the same goal) and reports the cosine
distribution of each; the numbers and the reasoning are in docs/ideas.md.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# see docs/ideas.md ("Thresholds") for how these were measured
COSINE_DUPLICATE = 0.70
TEXT_DUPLICATE = 0.85
THEME_DISTANCE = 0.75  # mean cosine distance under which two groups are one theme

STOP = frozenset("""
a an and are as at be been being but by can could do does for from has have how i if in into
is it its it's make more most much my new of on one or our out over so some such than that the
their them then there these they this to too up use using very was we what when which while who
why will with without you your idea ideas way ways get let lets just like also each every via
""".split())
WORD = re.compile(r"[a-z][a-z'-]{2,}")


def normalise(text: str) -> str:
    """Lower-case letters and digits separated by single spaces (punctuation dropped)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def text_ratio(a: str, b: str) -> float:
    """Character similarity 0..1 of the normalised texts (difflib's ratio, 2·matches/total)."""
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 1.0 if na == nb else 0.0
    return SequenceMatcher(None, na, nb, autojunk=False).ratio()


@dataclass
class Deduper:
    """Greedy duplicate filter: :meth:`add` each idea's text and vector in arrival order.

    ``kept`` holds the indices (in :meth:`add` order) of the ideas kept."""

    cosine: float = COSINE_DUPLICATE
    text: float = TEXT_DUPLICATE
    kept: list[int] = field(default_factory=list)
    _texts: list[str] = field(default_factory=list)
    _vectors: list[np.ndarray] = field(default_factory=list)

    def add(self, text: str, vector: np.ndarray) -> int | None:
        """Record one idea; returns the index of the kept idea it duplicates, or None when
        it is new (and now kept)."""
        index = len(self._texts)
        self._texts.append(text)
        self._vectors.append(vector)
        for k in self.kept:
            if float(vector @ self._vectors[k]) >= self.cosine or \
                    text_ratio(text, self._texts[k]) >= self.text:
                return k
        self.kept.append(index)
        return None


def agglomerate(vectors: np.ndarray, threshold: float = THEME_DISTANCE,
                max_groups: int | None = None) -> list[int]:
    """Group ``vectors`` (``(n, d)``, unit length) by average-linkage clustering on cosine
    distance (1 - cosine): repeatedly merge the two groups with the smallest mean pairwise
    distance, while it is below ``threshold`` — or, past it, while there are more than
    ``max_groups`` groups. Returns a group number per vector, numbered 0.. by first member.
    O(n³), fine for the few dozen ideas of a brainstorm.
    """
    import numpy as np

    n = len(vectors)
    if n == 0:
        return []
    dist = 1.0 - np.clip(vectors @ vectors.T, -1.0, 1.0)
    groups: list[list[int]] = [[i] for i in range(n)]
    while len(groups) > 1:
        best, pair = float("inf"), (0, 1)
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                d = float(dist[np.ix_(groups[a], groups[b])].mean())
                if d < best:
                    best, pair = d, (a, b)
        if best >= threshold and (max_groups is None or len(groups) <= max_groups):
            break
        a, b = pair
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]
    groups.sort(key=min)
    labels = [0] * n
    for g, members in enumerate(groups):
        for i in members:
            labels[i] = g
    return labels


def words(text: str) -> list[str]:
    """Content words of ``text``: lower-case, three letters or more, stop words dropped."""
    return [w.strip("'-") for w in WORD.findall(text.lower()) if w.strip("'-") not in STOP]


def theme_name(group: list[str], others: list[list[str]], k: int = 2) -> str:
    """A name for a group of texts: its ``k`` most distinctive words (count in the group ×
    log(1 + groups / groups containing the word)), capitalised and joined by `` & ``;
    ``"Other"`` when the texts have no content words."""
    import math

    counts = Counter(w for text in group for w in words(text))
    if not counts:
        return "Other"
    vocab = [set(w for t in g for w in words(t)) for g in others]
    n = len(others) + 1

    def weight(item: tuple[str, int]) -> tuple[float, str]:
        w, c = item
        df = 1 + sum(1 for v in vocab if w in v)
        return (-c * math.log(1 + n / df), w)

    top = [w for w, _ in sorted(counts.items(), key=weight)[:k]]
    return " & ".join(w.capitalize() for w in top)
