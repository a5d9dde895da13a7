"""Grouping OCR lines into the regions of a meme (a top caption, a bottom one, panels), with
positions, and matching them to a template's named boxes.

Lines join a region when they are stacked (the vertical gap under 0.7 of a line's height, the
heights alike) and overlap horizontally; a region is named by where its centre falls in a
3 × 3 grid of the image (``top``, ``bottom``, ``middle``, with ``-left`` / ``-right`` when off
centre).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cove.features.memes.ocr import Box, Line, OcrResult
from cove.features.memes.templates import TextBox


@dataclass
class Region:
    """A block of text: ``text`` (its lines joined by spaces), ``position`` (see the module),
    pixel ``box``, the same box as fractions of the image (``x``, ``y``, ``w``, ``h``),
    ``confidence`` (the lines' mean) and the template ``box_name`` it fills, if known."""

    text: str
    position: str
    box: Box
    fraction: tuple[float, float, float, float]
    confidence: float
    lines: list[Line]
    box_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"text", "position", "box": [l, t, r, b], "x", "y", "w", "h", "confidence",
        "box_name", "lines": [text, ...]}``."""
        x, y, w, h = self.fraction
        return {"text": self.text, "position": self.position, "box": list(self.box),
                "x": round(x, 4), "y": round(y, 4), "w": round(w, 4), "h": round(h, 4),
                "confidence": round(self.confidence, 3), "box_name": self.box_name,
                "lines": [line.text for line in self.lines]}


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _joins(last: Box, line: Box) -> bool:
    """Whether ``line`` continues the block whose last line is ``last``: just below it (a gap
    under 0.7 of a line), of a similar height and overlapping it horizontally."""
    height, before = max(1, line[3] - line[1]), max(1, last[3] - last[1])
    gap = line[1] - last[3]
    overlap = min(last[2], line[2]) - max(last[0], line[0])
    return -0.5 * height <= gap <= 0.7 * height and overlap > 0 and \
        1 / 1.6 <= height / before <= 1.6


def position(box: Box, width: int, height: int) -> str:
    """Where ``box``'s centre falls: ``top``/``middle``/``bottom`` by thirds of the height,
    with ``-left``/``-right`` when it falls in the left or right third of the width."""
    cx, cy = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    col = "-left" if cx < 1 / 3 else "-right" if cx > 2 / 3 else ""
    return row + col


def regions(result: OcrResult) -> list[Region]:
    """The regions of an OCR result, in reading order (top to bottom, then left to right)."""
    groups: list[tuple[Box, list[Line]]] = []
    for line in sorted(result.lines, key=lambda ln: (ln.box[1], ln.box[0])):
        for i, (box, members) in enumerate(groups):
            if _joins(members[-1].box, line.box):
                groups[i] = (_union(box, line.box), [*members, line])
                break
        else:
            groups.append((line.box, [line]))
    w, h = max(1, result.width), max(1, result.height)
    out = []
    for box, members in groups:
        members.sort(key=lambda ln: (ln.box[1], ln.box[0]))
        out.append(Region(" ".join(m.text for m in members), position(box, w, h), box,
                          (box[0] / w, box[1] / h, (box[2] - box[0]) / w, (box[3] - box[1]) / h),
                          sum(m.confidence for m in members) / len(members), members))
    out.sort(key=lambda r: (round(r.fraction[1] * 10), r.fraction[0]))
    return out


def assign(found: list[Region], boxes: list[TextBox], width: int,
           height: int) -> list[Region]:
    """The regions regrouped by the template box each overlaps most: one region per filled
    box (named after it, in the template's order), then the regions outside every box."""
    for region in found:
        best, area = None, 0
        for b in boxes:
            x0, y0, x1, y1 = b.pixels(width, height)
            ov = max(0, min(x1, region.box[2]) - max(x0, region.box[0])) * \
                max(0, min(y1, region.box[3]) - max(y0, region.box[1]))
            if ov > area:
                best, area = b.name, ov
        region.box_name = best
    out: list[Region] = []
    for b in boxes:
        mine = [r for r in found if r.box_name == b.name]
        if not mine:
            continue
        lines = [ln for r in mine for ln in r.lines]
        box = mine[0].box
        for r in mine[1:]:
            box = _union(box, r.box)
        out.append(Region(" ".join(r.text for r in mine), position(box, width, height), box,
                          (box[0] / width, box[1] / height, (box[2] - box[0]) / width,
                           (box[3] - box[1]) / height),
                          sum(ln.confidence for ln in lines) / len(lines), lines, b.name))
    return out + [r for r in found if r.box_name is None]
