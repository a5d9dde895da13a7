"""The built-in templates, drawn in code with Pillow (deterministic, no stills shipped):
a top/bottom caption, "this vs that" in two panels, a four-panel strip, labelled objects and
an "expanding" ladder of four steps."""

from __future__ import annotations

import functools
from collections.abc import Callable

from PIL import Image, ImageDraw

from cove.features.memes.templates import Template, TextBox


def _gradient(w: int, h: int, top: tuple[int, int, int],
              bottom: tuple[int, int, int]) -> Image.Image:
    im = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(im)
    for y in range(h):
        t = y / max(1, h - 1)
        d.line([(0, y), (w, y)], fill=tuple(round(a + (b - a) * t)
                                            for a, b in zip(top, bottom, strict=True)))
    return im


def _top_bottom() -> Image.Image:
    im = _gradient(800, 800, (40, 60, 120), (150, 70, 110))
    d = ImageDraw.Draw(im)
    d.ellipse((250, 250, 550, 550), fill=(250, 200, 90))
    d.rectangle((0, 520, 800, 800), fill=(40, 40, 60))
    return im


def _this_vs_that() -> Image.Image:
    im = Image.new("RGB", (1000, 600), (235, 235, 235))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, 497, 600), fill=(200, 70, 70))
    d.rectangle((503, 0, 1000, 600), fill=(60, 150, 90))
    d.line((170, 90, 330, 250), fill="white", width=28)
    d.line((330, 90, 170, 250), fill="white", width=28)
    d.line((660, 180, 730, 250), fill="white", width=28)
    d.line((730, 250, 860, 100), fill="white", width=28)
    return im


def _four_panel() -> Image.Image:
    im = Image.new("RGB", (800, 800), "white")
    d = ImageDraw.Draw(im)
    colours = [(90, 120, 200), (220, 150, 60), (90, 170, 120), (170, 90, 170)]
    for i, c in enumerate(colours):
        x, y = (i % 2) * 400, (i // 2) * 400
        d.rectangle((x + 6, y + 6, x + 394, y + 394), fill=c)
        d.ellipse((x + 150, y + 230, x + 250, y + 330), fill=(245, 245, 245))
    return im


def _labels() -> Image.Image:
    im = _gradient(1000, 600, (120, 170, 220), (70, 120, 80))
    d = ImageDraw.Draw(im)
    d.ellipse((90, 200, 290, 400), fill=(230, 90, 80))
    d.rectangle((400, 200, 600, 400), fill=(240, 200, 70))
    d.polygon([(810, 200), (710, 400), (910, 400)], fill=(90, 80, 200))
    return im


def _expanding() -> Image.Image:
    im = Image.new("RGB", (800, 900), (20, 20, 30))
    d = ImageDraw.Draw(im)
    for i in range(4):
        y = i * 225
        d.rectangle((0, y + 3, 800, y + 222), fill=(245, 245, 245) if i % 2 == 0
                    else (230, 230, 236))
        r = 30 + 18 * i
        glow = 120 + 45 * i
        d.ellipse((600 - r, y + 112 - r, 600 + r, y + 112 + r), fill=(glow, glow, 255))
    return im


def _box(name: str, x: float, y: float, w: float, h: float, **kw: str) -> TextBox:
    return TextBox(name, x, y, w, h, **kw)


BUILTINS: dict[str, tuple[Template, Callable[[], Image.Image]]] = {
    "top-bottom": (Template(
        "top-bottom", "Top and bottom caption",
        [_box("top", 0.02, 0.02, 0.96, 0.22), _box("bottom", 0.02, 0.76, 0.96, 0.22)],
        example={"top": "When the build passes", "bottom": "On the first try"},
        description="The classic: a line at the top sets it up, the bottom line lands it."),
        _top_bottom),
    "this-vs-that": (Template(
        "this-vs-that", "This vs that",
        [_box("this", 0.02, 0.5, 0.46, 0.46), _box("that", 0.52, 0.5, 0.46, 0.46)],
        example={"this": "Reading the manual", "that": "Guessing until it works"},
        description="Two panels: the rejected option on the left, the preferred on the right."),
        _this_vs_that),
    "four-panel": (Template(
        "four-panel", "Four panels",
        [_box(f"panel_{i + 1}", 0.02 + (i % 2) * 0.5, 0.02 + (i // 2) * 0.5, 0.46, 0.25)
         for i in range(4)],
        example={"panel_1": "Plan", "panel_2": "Start", "panel_3": "Bug",
                 "panel_4": "New plan"},
        description="A four-step story read left to right, top to bottom."),
        _four_panel),
    "labels": (Template(
        "labels", "Labelled objects",
        [_box("label_1", 0.03, 0.05, 0.3, 0.25), _box("label_2", 0.35, 0.05, 0.3, 0.25),
         _box("label_3", 0.67, 0.05, 0.3, 0.25), _box("caption", 0.05, 0.72, 0.9, 0.24)],
        example={"label_1": "Me", "label_2": "Sleep", "label_3": "One more episode",
                 "caption": "Every night"},
        description="Objects labelled with things that stand for them, and a caption."),
        _labels),
    "expanding": (Template(
        "expanding", "Expanding ladder",
        [_box(f"step_{i + 1}", 0.03, 0.02 + i * 0.25, 0.6, 0.21, color="black",
              stroke="white") for i in range(4)],
        example={"step_1": "Tabs", "step_2": "Spaces", "step_3": "A formatter",
                 "step_4": "Not caring"},
        description="Four ever 'brighter' ideas, each more absurdly enlightened."),
        _expanding),
}


@functools.cache
def builtin_image(key: str) -> Image.Image:
    """The drawn image of built-in template ``key`` (cached; callers copy before drawing).

    Raises:
        KeyError: no such built-in.
    """
    return BUILTINS[key][1]()
