"""The meme feature's logic (no HTTP): templates (built-in and a user's own), rendering, the
gallery of a signed-in user's memes, and the feature's part of the data export.

Template ids: a built-in's key (``top-bottom``, ...) or ``user-<n>`` for a user's own; another
user's template is "not found" (404), exactly like one that does not exist.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.errors import InvalidRequest, NotFound, Unauthorized
from cove.features.memes.builtin import BUILTINS, builtin_image
from cove.features.memes.images import MEDIA_TYPES, encode, load_image
from cove.features.memes.render import render
from cove.features.memes.store import Meme, MemeTemplate
from cove.features.memes.templates import Template, TextBox, default_boxes, parse_boxes
from cove.features.memes.understand import Candidate

_USER_ID = re.compile(r"user-(\d{1,12})")
MAX_TEMPLATES = 200  # per user
MAX_SIDE = 2048  # px: a user's template is scaled down to fit this


@dataclass
class Base:
    """A template ready to draw on: the :class:`Template` and its image (a copy may be drawn)."""

    template: Template
    image: Image.Image


def need_user(user_id: int | None, what: str) -> int:
    """``user_id``, or Unauthorized for a guest: ``what`` needs an account."""
    if user_id is None:
        raise Unauthorized(f"sign in to {what} (a guest's memes are never kept)")
    return user_id


def _user_template(row: MemeTemplate) -> Template:
    return Template(f"user-{row.id}", row.name, parse_boxes(json.loads(row.boxes)), "user")


def _row(s: Session, user_id: int | None, template_id: str) -> MemeTemplate:
    m = _USER_ID.fullmatch(template_id)
    row = s.get(MemeTemplate, int(m.group(1))) if m and user_id is not None else None
    if row is None or row.user_id != user_id:
        raise NotFound(f"no template {template_id!r}", param="template")
    return row


def get_base(s: Session, user_id: int | None, template_id: str) -> Base:
    """The template ``template_id`` with its image.

    Raises:
        NotFound (param ``template``): unknown, or another user's.
    """
    if template_id in BUILTINS:
        return Base(BUILTINS[template_id][0], builtin_image(template_id))
    row = _row(s, user_id, template_id)
    return Base(_user_template(row), Image.open(io.BytesIO(row.image)).convert("RGB"))


def image_base(data: bytes, boxes: Any, max_pixels: int, param: str = "image") -> Base:
    """An uploaded image used once as a template (never stored), with ``boxes`` or the
    default top and bottom captions.

    Raises:
        InvalidRequest: a bad image (see :func:`load_image`) or bad boxes.
    """
    im = _fit(load_image(data, param=param, max_pixels=max_pixels))
    parsed = default_boxes() if boxes is None else parse_boxes(boxes)
    return Base(Template("image", "Your image", parsed, "upload"), im)


def _fit(im: Image.Image) -> Image.Image:
    if max(im.size) > MAX_SIDE:
        im = im.copy()
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return im


def list_templates(s: Session, user_id: int | None) -> list[Template]:
    """The built-ins, then the user's own (newest first)."""
    out = [t for t, _ in BUILTINS.values()]
    if user_id is not None:
        rows = s.scalars(select(MemeTemplate).where(MemeTemplate.user_id == user_id)
                         .order_by(MemeTemplate.id.desc()))
        out += [_user_template(r) for r in rows]
    return out


def add_template(s: Session, user_id: int, name: str, data: bytes, boxes: Any,
                 max_pixels: int) -> Template:
    """Keep an image as the user's private template (scaled to fit 2048 px, stored as PNG),
    with ``boxes`` or the default top and bottom captions.

    Raises:
        InvalidRequest: a bad image, bad boxes, an empty name, or 200 templates already.
    """
    name = " ".join(name.split())[:100]
    if not name:
        raise InvalidRequest("give the template a name", param="name")
    base = image_base(data, boxes, max_pixels, "file")
    count = len(s.scalars(select(MemeTemplate.id).where(MemeTemplate.user_id == user_id)).all())
    if count >= MAX_TEMPLATES:
        raise InvalidRequest(f"you have {MAX_TEMPLATES} templates already; delete some first",
                             param="file")
    row = MemeTemplate(user_id=user_id, name=name, width=base.image.width,
                       height=base.image.height,
                       boxes=json.dumps([b.__dict__ for b in base.template.boxes]),
                       image=encode(base.image, "png"))
    s.add(row)
    s.commit()
    return _user_template(row)


def delete_template(s: Session, user_id: int | None, template_id: str) -> None:
    """Delete the user's template ``template_id``.

    Raises:
        InvalidRequest: a built-in. NotFound: unknown or another user's.
    """
    if template_id in BUILTINS:
        raise InvalidRequest("built-in templates cannot be deleted", param="template")
    s.delete(_row(s, user_id, template_id))
    s.commit()


def builtin_candidates() -> list[Candidate]:
    """The built-in templates, for recognising a meme's template."""
    return [(k, t.name, builtin_image(k), t.boxes) for k, (t, _) in BUILTINS.items()]


def candidates(s: Session, user_id: int | None) -> list[Candidate]:
    """Every template the user can use, for recognising a meme's template."""
    out = builtin_candidates()
    if user_id is not None:
        for row in s.scalars(select(MemeTemplate).where(MemeTemplate.user_id == user_id)):
            t = _user_template(row)
            out.append((t.id, t.name, Image.open(io.BytesIO(row.image)), t.boxes))
    return out


def descriptions() -> dict[str, str]:
    """The built-ins' descriptions by id (for the explanation's prompt)."""
    return {k: t.description for k, (t, _) in BUILTINS.items()}


def check_texts(text: Any, boxes: list[TextBox]) -> dict[str, str]:
    """``text`` as ``{box: str}``: an object by box name, or a list in box order.

    Raises:
        InvalidRequest (param ``text``): another shape, or more items than boxes.
    """
    if isinstance(text, list):
        if len(text) > len(boxes) or not all(isinstance(t, str) for t in text):
            raise InvalidRequest(f"text must list at most {len(boxes)} strings", param="text")
        return {b.name: t for b, t in zip(boxes, text, strict=False)}
    if not isinstance(text, dict) or not all(isinstance(v, str) for v in text.values()):
        raise InvalidRequest("text must be an object of box name to text", param="text")
    return dict(text)


def render_bytes(base: Base, text: dict[str, str], fmt: str = "png") -> bytes:
    """The meme as ``fmt`` bytes.

    Raises:
        InvalidRequest: unknown box, text that does not fit, unknown format.
    """
    if fmt.lower() not in MEDIA_TYPES:
        raise InvalidRequest(f"unknown format {fmt!r}; expected png, jpeg or webp",
                             param="format")
    return encode(render(base.image, base.template.boxes, text), fmt)


def data_url(data: bytes, fmt: str = "png") -> str:
    """``data`` as a ``data:`` URL of its media type."""
    return f"data:{MEDIA_TYPES[fmt]};base64,{base64.b64encode(data).decode()}"


def save_meme(s: Session, user_id: int, template: str | None, text: dict[str, str], fmt: str,
              data: bytes) -> Meme:
    """Keep a rendered meme in the user's gallery."""
    row = Meme(user_id=user_id, template=template, texts=json.dumps(text, ensure_ascii=False),
               format=fmt.lower().replace("jpg", "jpeg"), image=data)
    s.add(row)
    s.commit()
    return row


def meme_dict(m: Meme) -> dict[str, Any]:
    """``{"id", "object": "meme", "template", "text", "format", "created_at", "image_url"}``."""
    return {"id": m.id, "object": "meme", "template": m.template, "text": json.loads(m.texts),
            "format": m.format, "created_at": m.created_at.isoformat() + "Z",
            "image_url": f"/v1/memes/{m.id}/image"}


def list_memes(s: Session, user_id: int) -> list[Meme]:
    """The user's gallery, newest first."""
    return list(s.scalars(select(Meme).where(Meme.user_id == user_id).order_by(Meme.id.desc())))


def get_meme(s: Session, user_id: int, meme_id: int) -> Meme:
    """One of the user's memes. Raises NotFound: unknown or another user's."""
    m = s.get(Meme, meme_id)
    if m is None or m.user_id != user_id:
        raise NotFound(f"no meme {meme_id}", param="id")
    return m


def delete_meme(s: Session, user_id: int, meme_id: int) -> None:
    """Delete one of the user's memes. Raises NotFound: unknown or another user's."""
    s.delete(get_meme(s, user_id, meme_id))
    s.commit()


def export(s: Session, user_id: int) -> dict[str, Any]:
    """The user's templates and memes for the data export, images as ``data:`` URLs."""
    templates = s.scalars(select(MemeTemplate).where(MemeTemplate.user_id == user_id))
    return {
        "templates": [{**_user_template(r).to_dict(),
                       "created_at": r.created_at.isoformat() + "Z",
                       "image": data_url(r.image)} for r in templates],
        "memes": [{**meme_dict(m), "image": data_url(m.image, m.format)}
                  for m in list_memes(s, user_id)],
    }

