"""Recognising a meme's template by perceptual hash.

The hash is the difference hash (dHash, Neal Krawetz, "Kind of Like That", The Hacker Factor
Blog, 2013): the image in grey scaled to 9 × 8 pixels, one bit per pair of horizontal
neighbours (is the left one brighter?), 64 bits; similar pictures differ in few bits (Hamming
distance). Captions would spoil the comparison, so before hashing both the meme and the
template get the same flat grey over the template's text boxes and over the text OCR found.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from cove.features.memes.templates import TextBox

SIDE = 128  # px: both images are compared at SIDE × SIDE
MAX_DISTANCE = 10  # bits of 64: at most this far apart is the same template
MAX_ASPECT_GAP = 0.12  # relative difference of width/height ratios still allowed


def dhash(im: Image.Image) -> int:
    """The 64-bit difference hash of ``im``."""
    small = im.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    px = small.tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (px[row * 9 + col] > px[row * 9 + col + 1])
    return bits


def distance(a: int, b: int) -> int:
    """Hamming distance of two hashes (bits that differ)."""
    return (a ^ b).bit_count()


def _masked(im: Image.Image, boxes: list[tuple[float, float, float, float]]) -> Image.Image:
    out = im.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(out)
    for x0, y0, x1, y1 in boxes:
        draw.rectangle((x0 * SIDE, y0 * SIDE, x1 * SIDE, y1 * SIDE), fill=128)
    return out


@dataclass(frozen=True)
class Match:
    """A recognised template: its ``id``, ``name`` and the hash ``distance`` (0..64)."""

    id: str
    name: str
    distance: int


def best_match(im: Image.Image, text_boxes: list[tuple[float, float, float, float]],
               candidates: list[tuple[str, str, Image.Image, list[TextBox]]]) -> Match | None:
    """The candidate template (``(id, name, image, boxes)``) that ``im`` was made from, or
    None when none is within :data:`MAX_DISTANCE` bits (or of a similar aspect ratio).
    ``text_boxes`` are OCR's text boxes as fractions (left, top, right, bottom)."""
    best: Match | None = None
    aspect = im.width / im.height
    for tid, name, base, boxes in candidates:
        other = base.width / base.height
        if abs(aspect - other) / other > MAX_ASPECT_GAP:
            continue
        mask = text_boxes + [(b.anchor_x, b.anchor_y, b.anchor_x + b.scale_x,
                              b.anchor_y + b.scale_y) for b in boxes]
        d = distance(dhash(_masked(im, mask)), dhash(_masked(base, mask)))
        if d <= MAX_DISTANCE and (best is None or d < best.distance):
            best = Match(tid, name, d)
    return best
