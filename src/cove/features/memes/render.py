"""Drawing captions onto a template image with Pillow: the largest font size at which the text
fits its box in one to three lines, white letters with a black stroke (the classic meme look).

Fonts: the vendored Anton (OFL, ``fonts/``) for text it covers; DejaVu Sans Bold (Debian's
``fonts-dejavu-core``) for text with characters Anton lacks, or when a box asks for it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cove.errors import InvalidRequest
from cove.features.memes.templates import TextBox

FONT_DIR = Path(__file__).parent / "fonts"
ANTON = FONT_DIR / "Anton-Regular.ttf"
DEJAVU_PATHS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
                Path("/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"))
MAX_LINES = 3
MIN_SIZE = 10  # px: below this a caption is unreadable and is refused
MAX_TEXT = 300  # characters per box


@functools.cache
def _coverage(path: Path) -> frozenset[int]:
    """The code points ``path``'s font has glyphs for (its best cmap, via fontTools)."""
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True) as f:
        return frozenset(f.getBestCmap() or {})


def dejavu_path() -> Path | None:
    """Where DejaVu Sans Bold is installed, or None."""
    return next((p for p in DEJAVU_PATHS if p.exists()), None)


def font_for(text: str, want: str = "anton") -> Path:
    """The font file for ``text``: Anton when it covers every character (and ``want`` is
    ``anton``), else DejaVu Sans Bold; Anton when DejaVu is not installed."""
    dejavu = dejavu_path()
    if want == "dejavu" and dejavu is not None:
        return dejavu
    have = _coverage(ANTON)
    if dejavu is not None and any(not c.isspace() and ord(c) not in have for c in text):
        return dejavu
    return ANTON


@functools.lru_cache(maxsize=256)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def styled(text: str, style: str) -> str:
    """``text`` in the box's letter case (``upper``, ``lower``, ``none``), whitespace tidied."""
    text = " ".join(text.split())
    return text.upper() if style == "upper" else text.lower() if style == "lower" else text


def wrap(text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str] | None:
    """Greedy word wrap of ``text`` into lines no wider than ``width`` px; None when it needs
    more than ``max_lines`` lines or a single word is wider than the box."""
    lines: list[str] = []
    for word in text.split(" "):
        if font.getlength(word) > width:
            return None
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
            if len(lines) > max_lines:
                return None
    return lines


@dataclass(frozen=True)
class Fit:
    """How a caption is set: font ``path`` and ``size`` (px), ``lines``, ``stroke`` width (px),
    ``line_height`` (px)."""

    path: Path
    size: int
    lines: list[str]
    stroke: int
    line_height: int


def fit(text: str, box: TextBox, width: int, height: int, param: str = "text",
        font: Path | None = None) -> Fit:
    """The largest size (binary search over whole pixels) at which ``text`` fits ``box`` of a
    ``width`` × ``height`` image in at most three lines, stroke included; in ``font`` (a font
    file) when given, else per :func:`font_for`.

    Raises:
        InvalidRequest (``param``, code ``text_does_not_fit``): the text does not fit even at
            :data:`MIN_SIZE` px, or is longer than :data:`MAX_TEXT` characters.
    """
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"the text for box {box.name!r} is over {MAX_TEXT} characters",
                             param=param, code="text_does_not_fit")
    x0, y0, x1, y1 = box.pixels(width, height)
    bw, bh = x1 - x0, y1 - y0
    path = font or font_for(text, box.font)

    def attempt(size: int) -> Fit | None:
        font = _font(path, size)
        stroke = max(1, size // 14)
        lines = wrap(text, font, bw - 2 * stroke, MAX_LINES)
        if lines is None:
            return None
        ascent, descent = font.getmetrics()
        line_height = ascent + descent
        if line_height * len(lines) + 2 * stroke > bh:
            return None
        return Fit(path, size, lines, stroke, line_height)

    lo, hi, best = MIN_SIZE, max(MIN_SIZE, bh), None
    while lo <= hi:
        mid = (lo + hi) // 2
        got = attempt(mid)
        if got is None:
            hi = mid - 1
        else:
            best, lo = got, mid + 1
    if best is None:
        raise InvalidRequest(
            f"the text for box {box.name!r} does not fit even at {MIN_SIZE} px in "
            f"{MAX_LINES} lines; shorten it", param=param, code="text_does_not_fit")
    return best


def draw_text(im: Image.Image, box: TextBox, text: str, param: str = "text",
              font: Path | None = None) -> Fit | None:
    """Draw ``text`` (styled per the box) into ``box`` of ``im`` in place, centred vertically
    and aligned per the box; nothing for empty text. Returns the fit used.

    Raises:
        InvalidRequest: see :func:`fit`.
    """
    text = styled(text, box.style)
    if not text:
        return None
    f = fit(text, box, im.width, im.height, param, font)
    x0, y0, x1, y1 = box.pixels(im.width, im.height)
    face = _font(f.path, f.size)
    draw = ImageDraw.Draw(im)
    top = y0 + (y1 - y0 - f.line_height * len(f.lines)) // 2
    for i, line in enumerate(f.lines):
        w = face.getlength(line)
        x = x0 + f.stroke if box.align == "left" else x1 - f.stroke - w \
            if box.align == "right" else x0 + ((x1 - x0) - w) / 2
        draw.text((x, top + i * f.line_height), line, font=face, fill=box.color,
                  stroke_width=f.stroke, stroke_fill=box.stroke)
    return f


def render(base: Image.Image, boxes: list[TextBox], text: dict[str, str]) -> Image.Image:
    """A copy of ``base`` with ``text[name]`` drawn in each named box (missing names: empty).

    Raises:
        InvalidRequest: a name that is not one of the boxes (param ``text.<name>``), or text
            that does not fit (see :func:`fit`).
    """
    names = {b.name for b in boxes}
    for key in text:
        if key not in names:
            raise InvalidRequest(f"the template has no box {key!r}; its boxes are "
                                 f"{', '.join(sorted(names))}", param=f"text.{key}")
    im = base.convert("RGB").copy()
    for box in boxes:
        draw_text(im, box, text.get(box.name, ""), f"text.{box.name}")
    return im


def side_by_side(images: list[Image.Image], gap: int = 16) -> Image.Image:
    """``images`` in one row on a white strip, each scaled to the first one's height."""
    h = images[0].height
    scaled = [im if im.height == h else im.resize((max(1, im.width * h // im.height), h))
              for im in images]
    out = Image.new("RGB", (sum(i.width for i in scaled) + gap * (len(scaled) + 1), h + 2 * gap),
                    "white")
    x = gap
    for im in scaled:
        out.paste(im, (x, gap))
        x += im.width + gap
    return out
