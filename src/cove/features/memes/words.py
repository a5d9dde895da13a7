"""Re-splitting words that OCR ran together ("WHENYOU" → "WHEN YOU").

Meme text is set tight in condensed capitals, so OCR engines often miss the gaps between
words. Each run of letters that is not itself a common English word is segmented with the
``wordsegment`` library (Apache-2.0; Peter Norvig's method from "Natural Language Corpus Data",
*Beautiful Data*, 2009: the most probable split under unigram and bigram counts of the Google
Web Trillion Word Corpus). The letters' case is kept.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

_TOKEN = re.compile(r"[A-Za-z]+")
_lock = threading.Lock()
COMMON = 2e-7  # a run at least this frequent as one word is never split
KNOWN = 2e-8  # each piece of three letters or more must be at least this frequent
# the only pieces of one or two letters a split may make (common English words)
SHORT = frozenset("a i am an as at be by do go he hi if in is it me my no of oh ok on or so to "
                  "up us we".split())


@functools.cache
def _segmenter() -> Any:
    """wordsegment's model, loaded once (about 1 s: 333,000 unigrams, 250,000 bigrams)."""
    import wordsegment

    with _lock:
        seg = wordsegment.Segmenter()
        seg.load()
    return seg


def split_run(run: str) -> str:
    """One run of letters, split into words when it is not a common word and the best
    segmentation is made of common words (pieces of one or two letters only from
    :data:`SHORT`).
    Returns ``run`` itself otherwise."""
    if len(run) < 4:
        return run
    seg = _segmenter()
    unigrams, lower = seg.unigrams, run.lower()
    if unigrams.get(lower, 0.0) / seg.total >= COMMON:
        return run
    pieces = list(seg.segment(lower))
    if len(pieces) < 2 or "".join(pieces) != lower:
        return run
    if any(p not in SHORT if len(p) <= 2 else unigrams.get(p, 0.0) / seg.total < KNOWN
           for p in pieces):
        return run
    out, at = [], 0
    for p in pieces:
        out.append(run[at:at + len(p)])
        at += len(p)
    return " ".join(out)


def resplit(text: str) -> str:
    """``text`` with every run of letters passed through :func:`split_run`; all other
    characters (digits, punctuation, spaces) kept as they are."""
    return _TOKEN.sub(lambda m: split_run(m.group(0)), text)
