"""Meme templates in the shape jacebrowning/memegen uses: an image plus named text boxes, each
with an anchor and a scale (fractions of the image's width and height), a style, a colour and a
font, readable from and written to YAML.

memegen's ``config.yml`` keys per text box are kept: ``style`` (``upper``, ``lower``, ``none``),
``color``, ``font``, ``anchor_x``, ``anchor_y``, ``scale_x``, ``scale_y``, ``align``; Cove adds a
``name`` per box (the caption field it fills) and ``stroke`` (the outline colour).

The built-in set is drawn in code (:mod:`.builtin`): no copyrighted stills are shipped.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from cove.errors import InvalidRequest

STYLES = ("upper", "lower", "none")
FONTS = ("anton", "dejavu")
ALIGNS = ("center", "left", "right")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_BOXES = 8


@dataclass(frozen=True)
class TextBox:
    """A text box: ``name`` (the caption field), its top-left corner at (``anchor_x``,
    ``anchor_y``) and size (``scale_x``, ``scale_y``), all fractions 0..1 of the image's width
    and height; ``style`` the letter case, ``color`` and ``stroke`` CSS-like colours, ``font``
    (``anton``, or ``dejavu`` for scripts Anton lacks), ``align`` within the box."""

    name: str
    anchor_x: float = 0.0
    anchor_y: float = 0.0
    scale_x: float = 1.0
    scale_y: float = 0.2
    style: str = "upper"
    color: str = "white"
    stroke: str = "black"
    font: str = "anton"
    align: str = "center"

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The box in pixels of a ``width`` × ``height`` image: (left, top, right, bottom)."""
        x0, y0 = round(self.anchor_x * width), round(self.anchor_y * height)
        return x0, y0, round((self.anchor_x + self.scale_x) * width), \
            round((self.anchor_y + self.scale_y) * height)


@dataclass
class Template:
    """A template: ``id`` (a built-in's key, or ``user-<n>`` for a user's own), display
    ``name``, ``boxes`` and where it comes from (``source``: ``builtin`` or ``user``);
    ``example`` is sample text per box. The image lives apart (built-ins are drawn,
    users' are stored)."""

    id: str
    name: str
    boxes: list[TextBox]
    source: str = "builtin"
    example: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"id", "name", "source", "description", "boxes": [...], "example"}``."""
        return {"id": self.id, "name": self.name, "source": self.source,
                "description": self.description,
                "boxes": [asdict(b) for b in self.boxes], "example": self.example}

    def to_yaml(self) -> str:
        """memegen-style YAML: ``name``, ``text`` (the boxes), ``example``."""
        return yaml.safe_dump({"name": self.name, "text": [asdict(b) for b in self.boxes],
                               "example": [self.example.get(b.name, "") for b in self.boxes]},
                              sort_keys=False, allow_unicode=True)


def _fraction(value: Any, key: str, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidRequest(f"{key} must be a number from 0 to 1", param=param)
    return float(value)


def _is_color(value: str) -> bool:
    """Whether Pillow can draw in ``value`` (:func:`PIL.ImageColor.getrgb`: CSS-like names,
    ``#rgb``, ``#rrggbb``, ``rgb()``, ``hsl()``, ...)."""
    from PIL import ImageColor

    if len(value) > 64:
        return False
    try:
        ImageColor.getrgb(value)
    except ValueError:
        return False
    return True


def parse_boxes(raw: Any, param: str = "boxes") -> list[TextBox]:
    """Validate a list of box dicts (the ``text`` list of a memegen config, each with a
    ``name``) into :class:`TextBox` items.

    Raises:
        InvalidRequest (``param``): not a list of 1..8 objects, a missing or repeated name,
            unknown keys or values (a ``color`` or ``stroke`` Pillow cannot draw in, a value
            that is not a string), a box outside the image or with no area.
    """
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_BOXES:
        raise InvalidRequest(f"boxes must be a list of 1 to {MAX_BOXES} text boxes", param=param)
    out: list[TextBox] = []
    for i, item in enumerate(raw):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest("each box must be an object", param=where)
        extra = set(item) - set(TextBox.__dataclass_fields__)
        if extra:
            raise InvalidRequest(f"unknown box keys: {', '.join(sorted(extra))}", param=where)
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidRequest("a box name is 1-32 of a-z, 0-9 and _, starting with a letter",
                                 param=f"{where}.name")
        if any(b.name == name for b in out):
            raise InvalidRequest(f"box name {name!r} is repeated", param=f"{where}.name")
        fields: dict[str, Any] = {k: _fraction(item[k], k, f"{where}.{k}")
                                  for k in ("anchor_x", "anchor_y", "scale_x", "scale_y")
                                  if k in item}
        for k in ("style", "color", "stroke", "font", "align"):
            if k in item:
                if not isinstance(item[k], str):
                    raise InvalidRequest(f"{k} must be a string", param=f"{where}.{k}")
                fields[k] = item[k]
        box = TextBox(name, **fields)
        for key in ("color", "stroke"):
            if not _is_color(getattr(box, key)):
                raise InvalidRequest(f"{key} must be a colour Pillow knows (a name such as "
                                     "white, #rrggbb, rgb(...) or hsl(...))",
                                     param=f"{where}.{key}")
        for key, allowed in (("style", STYLES), ("font", FONTS), ("align", ALIGNS)):
            if getattr(box, key) not in allowed:
                raise InvalidRequest(f"{key} must be one of {', '.join(allowed)}",
                                     param=f"{where}.{key}")
        if box.scale_x < 0.02 or box.scale_y < 0.02 or box.anchor_x + box.scale_x > 1.0001 \
                or box.anchor_y + box.scale_y > 1.0001:
            raise InvalidRequest("a box must lie inside the image and have an area",
                                 param=where)
        out.append(box)
    return out


def default_boxes() -> list[TextBox]:
    """The classic layout for an image with no boxes given: ``top`` and ``bottom`` captions,
    each the full width and a fifth of the height."""
    return [TextBox("top", 0.02, 0.02, 0.96, 0.2), TextBox("bottom", 0.02, 0.78, 0.96, 0.2)]


def from_yaml(text: str, id: str, source: str = "user") -> Template:
    """A template from memegen-style YAML (``name``, ``text``: boxes, optional ``example``).

    Raises:
        InvalidRequest: not YAML of that shape (see :func:`parse_boxes`).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidRequest(f"the template is not valid YAML ({e})", param="config") from e
    if not isinstance(data, dict):
        raise InvalidRequest("the template YAML must be a mapping", param="config")
    boxes = parse_boxes(data.get("text"), "config.text")
    example = data.get("example") or []
    return Template(id, str(data.get("name") or id)[:100], boxes, source,
                    {b.name: str(e) for b, e in zip(boxes, example, strict=False)})
