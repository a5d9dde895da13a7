"""Reading meme text, on the shared OCR engines of :mod:`cove.ocr` (RapidOCR when the
``cove[ocr]`` extra is installed, else Debian's ``tesseract``): tesseract on a white-text mask,
RapidOCR with a second look at unsure lines.

Why the mask: meme captions are white letters with a black outline over a busy picture;
tesseract's own binarisation keeps the outline and the picture, and reads little. Keeping only
near-white, unsaturated pixels (black on white, the way tesseract expects text) leaves just the
letters. Dark text on a light ground is read from the plain and the dark-text images too, and
the reading with the most confident characters wins.

Either way the lines' words are re-split (:mod:`.words`). Result: :class:`OcrResult` with
lines, their words and pixel boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from cove import ocr as engines
from cove.features.memes.words import resplit
from cove.ocr import Box, Line, Word, choose

__all__ = ["Box", "Line", "OcrResult", "choose", "read"]


@dataclass
class OcrResult:
    """What OCR read from a ``width`` × ``height`` image: ``lines`` in reading order and the
    ``engine`` that read them (``rapidocr`` or ``tesseract``)."""

    engine: str
    width: int
    height: int
    lines: list[Line]

    @property
    def text(self) -> str:
        """All lines joined by newlines."""
        return "\n".join(line.text for line in self.lines)


def word_gaps(mask: Image.Image, height: int) -> list[int]:
    """Where a line's crop of a text mask (black text on white) has a gap between words: the
    middle columns of the blank runs (a column is blank when under 1% of its pixels are text)
    that are at least 2.5 times the line's usual gap between letters (the median blank run,
    or the narrowest for a line of under five) and at least 0.15 of the line's ``height``.
    Leading and trailing blank columns are left out."""
    import numpy as np

    ink = (np.asarray(mask.convert("L")) < 128).mean(axis=0) >= 0.01
    cols = np.flatnonzero(ink)
    if cols.size == 0:
        return []
    runs: list[tuple[int, int]] = []
    start = None
    for x in range(int(cols[0]), int(cols[-1]) + 1):
        if not ink[x]:
            start = x if start is None else start
        elif start is not None:
            runs.append((start, x))
            start = None
    if not runs:
        return []
    widths = sorted(b - a for a, b in runs)
    usual = widths[len(widths) // 2] if len(widths) >= 5 else widths[0]
    limit = max(0.15 * height, 2.5 * usual)
    return [(a + b) // 2 for a, b in runs if b - a >= limit]


def _letters(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())


def refine(im: Image.Image, mask: Image.Image, line: Line) -> Line:
    """A second look at one line. An unsure line (confidence under 0.9) is recognised again
    from its own crop of the image and of the white-text mask, keeping the surest reading.
    Then, when the mask shows more gaps between words (:func:`word_gaps`) than the text has
    spaces, each piece between gaps is recognised alone, and their spacing is taken if they
    spell the same letters: words run together that no dictionary splits (``YUNO``)."""
    x0, y0, x1, y1 = line.box
    pad = max(2, (y1 - y0) // 10)
    area = (max(0, x0 - pad), max(0, y0 - pad), min(im.width, x1 + pad),
            min(im.height, y1 + pad))
    text, score = line.text, line.confidence
    if score < 0.9:
        for crop in (im.crop(area), mask.crop(area)):
            t, sc = engines.rapidocr_recognise(crop)
            if sc > score and _letters(t):
                text, score = " ".join(resplit(t).split()), sc
    cuts = word_gaps(mask.crop(area), y1 - y0)
    if len(cuts) > text.count(" "):
        edges = [0, *cuts, area[2] - area[0]]
        pieces = [engines.rapidocr_recognise(mask.crop((area[0] + a, area[1], area[0] + b,
                                                        area[3])))
                  for a, b in zip(edges, edges[1:], strict=False)]
        joined = " ".join(" ".join(resplit(t).split()) for t, _ in pieces if t.strip())
        if _letters(joined) == _letters(text) and all(sc >= 0.6 for t, sc in pieces if t):
            text = joined
    if text == line.text and score == line.confidence:
        return line
    return Line(text, line.box, score, engines.word_boxes(text, line.box))


def read_rapidocr(im: Image.Image) -> list[Line]:
    """Lines read by RapidOCR (:func:`cove.ocr.rapidocr_lines`), text re-split, each line
    given a second look (:func:`refine`), top to bottom."""
    lines = []
    for line in engines.rapidocr_lines(im):
        text = " ".join(resplit(line.text).split())
        if text:
            lines.append(Line(text, line.box, line.confidence, engines.word_boxes(text, line.box)))
    if lines:
        mask = white_text_mask(im)
        lines = [refine(im, mask, line) for line in lines]
    return sorted(lines, key=lambda line: (line.box[1], line.box[0]))


def white_text_mask(im: Image.Image, threshold: int = 200) -> Image.Image:
    """Black-on-white image of ``im``'s near-white, unsaturated pixels (outlined meme text):
    a pixel is text when its darkest channel is at least ``threshold`` (bright in every
    channel). When the picture itself is mostly bright, only the bright areas enclosed by
    darker pixels are kept (the letters inside their outlines; see :func:`enclosed`). A 3×3
    median filter then removes specks."""
    import numpy as np

    rgb = np.asarray(im.convert("RGB"))
    bright = rgb.min(axis=2) >= threshold
    if bright.mean() > 0.3:
        bright = enclosed(bright)
    mask = Image.fromarray(np.where(bright, 0, 255).astype(np.uint8))
    return _without_rules(mask.filter(ImageFilter.MedianFilter(3)))


def enclosed(bright: Any) -> Any:
    """The ``True`` cells of a boolean array that cannot be reached from its border through
    ``True`` cells (4-neighbour flood fill from the border, done by repeated dilation)."""
    import numpy as np

    reach = np.zeros_like(bright)
    reach[0, :], reach[-1, :], reach[:, 0], reach[:, -1] = (
        bright[0, :], bright[-1, :], bright[:, 0], bright[:, -1])
    while True:
        grown = reach.copy()
        grown[1:, :] |= reach[:-1, :]
        grown[:-1, :] |= reach[1:, :]
        grown[:, 1:] |= reach[:, :-1]
        grown[:, :-1] |= reach[:, 1:]
        grown &= bright
        if np.array_equal(grown, reach):
            return bright & ~reach
        reach = grown


def _without_rules(mask: Image.Image, share: float = 0.9) -> Image.Image:
    """``mask`` with every row and column that is at least ``share`` black painted white: the
    frames and gutters of panels, which make tesseract take the letters for a picture."""
    from PIL import ImageDraw

    out = mask.copy()
    draw = ImageDraw.Draw(out)
    rows = mask.resize((1, mask.height), Image.Resampling.BOX).tobytes()
    cols = mask.resize((mask.width, 1), Image.Resampling.BOX).tobytes()
    limit = 255 * (1 - share)
    for y, v in enumerate(rows):
        if v <= limit:
            draw.line([(0, y), (mask.width, y)], fill=255)
    for x, v in enumerate(cols):
        if v <= limit:
            draw.line([(x, 0), (x, mask.height)], fill=255)
    return out


def dark_text_mask(im: Image.Image, threshold: int = 70) -> Image.Image:
    """Black-on-white image of ``im``'s near-black pixels (dark text on a light ground)."""
    from PIL import ImageChops

    r, g, b = im.convert("RGB").split()
    brightest = ImageChops.lighter(ImageChops.lighter(r, g), b)
    return brightest.point(lambda v: 0 if v <= threshold else 255).filter(
        ImageFilter.MedianFilter(3))


def _tesseract_tsv(im: Image.Image, psm: int) -> list[Line]:
    """Tesseract's lines of ``im`` (:func:`cove.ocr.tesseract_words`), its guesses at shapes
    (words under 0.4) left out, a line cut at wide gaps (:func:`_split_at_gaps`)."""
    lines = []
    for words in engines.tesseract_words(im, psm):
        kept = [w for w in words if w[2] >= 0.4]  # tesseract's guesses at shapes score low
        for part in _split_at_gaps(kept):
            lines.append(_line(part))
    return sorted(lines, key=lambda line: (line.box[1], line.box[0]))


def _split_at_gaps(words: list[Word]) -> list[list[Word]]:
    """A tesseract line cut where two words are further apart than 1.2 line heights (text in
    two panels side by side is two lines)."""
    parts: list[list[Word]] = []
    for w in sorted(words, key=lambda w: w[1][0]):
        if parts:
            prev = parts[-1][-1][1]
            if w[1][0] - prev[2] <= 1.2 * max(1, prev[3] - prev[1]):
                parts[-1].append(w)
                continue
        parts.append([w])
    return parts


def _line(words: list[Word]) -> Line:
    box = (min(w[1][0] for w in words), min(w[1][1] for w in words),
           max(w[1][2] for w in words), max(w[1][3] for w in words))
    pieces = [(resplit(t), b) for t, b, _ in words]
    text = " ".join(" ".join(p for p, _ in pieces).split())
    return Line(text, box, sum(w[2] for w in words) / len(words), pieces)


def _score(lines: list[Line]) -> float:
    """Confident characters: a reading's sum of letters × confidence (lines under 0.5 out)."""
    return sum(sum(c.isalnum() for c in line.text) * line.confidence
               for line in lines if line.confidence >= 0.5)


def read_tesseract(im: Image.Image) -> list[Line]:
    """Lines read by tesseract (sparse-text mode) from the white-text mask, the dark-text mask
    and the plain grey image (in that order, stopping at a reading whose every line has
    confidence 0.85 or more), whichever reads the most confident characters; small images are
    first scaled up twice (tesseract reads letters best around 30 px tall)."""
    scale = 2 if max(im.size) < 1200 else 1
    big = im.resize((im.width * scale, im.height * scale), Image.Resampling.LANCZOS) \
        if scale > 1 else im
    def up(mask: Image.Image) -> Image.Image:
        return mask.resize(big.size, Image.Resampling.LANCZOS) if scale > 1 else mask

    candidates: list[list[Line]] = []
    for variant in (lambda: up(white_text_mask(im)), lambda: up(dark_text_mask(im)),
                    lambda: ImageOps.grayscale(big)):
        lines = _tesseract_tsv(variant(), 11)
        candidates.append(lines)
        if lines and all(ln.confidence >= 0.85 for ln in lines):
            break  # a confident reading: the other images would not beat it
    best = max(candidates, key=_score)
    for line in best:
        line.box = tuple(v // scale for v in line.box)  # type: ignore[assignment]
        line.words = [(w, tuple(v // scale for v in b)) for w, b in line.words]  # type: ignore[misc]
    return best


def plausible(line: Line) -> bool:
    """Whether a line is text rather than a shape read as a letter: some letter or digit, and
    a single character only when read with confidence 0.9 or more (all lines 0.6 or more)."""
    alnum = sum(c.isalnum() for c in line.text)
    return alnum > 0 and line.confidence >= 0.6 and (alnum > 1 or line.confidence >= 0.9)


def read(im: Image.Image, engine: str = "auto") -> OcrResult:
    """Read the text of ``im`` with ``engine`` (see :func:`choose`).

    Raises:
        InvalidRequest: an unknown engine. OcrUnavailable: none installed or tesseract failed.
    """
    name = choose(engine)
    lines = read_rapidocr(im) if name == "rapidocr" else read_tesseract(im)
    return OcrResult(name, im.width, im.height, [ln for ln in lines if plausible(ln)])
