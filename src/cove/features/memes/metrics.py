"""How well OCR read a text, for the tests and ``bench/ocr.py``: character error rate (edit
distance over the reference's length) and word recall, both on case-folded text with the
whitespace collapsed."""

from __future__ import annotations

import re
from collections import Counter


def normalise(text: str) -> str:
    """Upper case, whitespace collapsed to single spaces, ends trimmed."""
    return " ".join(text.upper().split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (0 is perfect; can pass
    1 when much extra text was read)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))


def words(text: str) -> list[str]:
    """The words of ``text`` (letters, digits and apostrophes), upper-cased."""
    return re.findall(r"[A-Z0-9']+", text.upper())


def word_recall(reference: str, hypothesis: str) -> float:
    """Share of the reference's words (counted with multiplicity) found in the hypothesis."""
    ref, hyp = Counter(words(reference)), Counter(words(hypothesis))
    total = sum(ref.values())
    return sum(min(n, hyp[w]) for w, n in ref.items()) / total if total else 1.0
