"""Recursive character splitting with overlap, keeping each chunk's character range.

The method of LangChain's ``RecursiveCharacterTextSplitter``: a text longer than ``size`` is cut
at its coarsest boundaries first (blank lines = paragraphs), and only a piece still too long is
cut at the next finer one (line breaks, then sentence ends, then spaces, then anywhere). The
pieces are then packed greedily into chunks of at most ``size`` characters, each new chunk
starting with the last ``overlap`` characters' worth of whole pieces of the one before. Ranges
are half-open ``[start, end)`` offsets into the text given, stripped of surrounding white space.
"""

from __future__ import annotations

import re

SIZE = 1000
OVERLAP = 150
# coarsest first: paragraphs, lines, sentence ends, words
BOUNDARIES = (re.compile(r"\n\s*\n"), re.compile(r"\n"), re.compile(r"(?<=[.!?;:])\s+"),
              re.compile(r"\s+"))


def _pieces(text: str, start: int, end: int, level: int, size: int) -> list[tuple[int, int]]:
    """Spans of at most ``size`` characters covering ``text[start:end]``, cut at the coarsest
    boundary that makes them fit (each boundary stays at the end of the piece before it)."""
    if end - start <= size:
        return [(start, end)]
    if level == len(BOUNDARIES):
        return [(i, min(i + size, end)) for i in range(start, end, size)]
    out: list[tuple[int, int]] = []
    at = start
    for m in BOUNDARIES[level].finditer(text, start, end):
        if m.end() > at:
            out.extend(_pieces(text, at, m.end(), level + 1, size))
            at = m.end()
    if at < end:
        out.extend(_pieces(text, at, end, level + 1, size))
    return out


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split(text: str, size: int = SIZE, overlap: int = OVERLAP) -> list[tuple[int, int]]:
    """Chunk ranges ``[(start, end), ...]`` of ``text``: each at most ``size`` characters,
    consecutive chunks sharing up to ``overlap`` characters; blank text gives ``[]``.

    Raises:
        ValueError: ``overlap`` not smaller than ``size``.
    """
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and smaller than size")
    pieces = _pieces(text, 0, len(text), 0, size)
    chunks: list[tuple[int, int]] = []
    i = 0
    while i < len(pieces):
        j = i
        while j + 1 < len(pieces) and pieces[j + 1][1] - pieces[i][0] <= size:
            j += 1
        span = _strip(text, pieces[i][0], pieces[j][1])
        if span[1] > span[0]:
            chunks.append(span)
        if j + 1 >= len(pieces):
            break
        # the next chunk begins at the earliest piece within `overlap` of this chunk's end
        nxt = j + 1
        while nxt - 1 > i and pieces[j][1] - pieces[nxt - 1][0] <= overlap:
            nxt -= 1
        i = nxt
    return chunks
