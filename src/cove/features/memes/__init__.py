"""Memes (issue 12): reading meme text (OCR), explaining a meme, and making one from a template.

Rooms: :mod:`.images` (safe image loading), :mod:`.ocr` (meme text on the shared engines of
:mod:`cove.ocr`: RapidOCR with second looks, or tesseract on a white-text mask), :mod:`.words`
(re-splitting run-together words), :mod:`.layout` (text regions), :mod:`.phash` (template
recognition), :mod:`.templates` (memegen-shaped templates), :mod:`.builtin` (templates drawn in
code), :mod:`.render` (captions onto images), :mod:`.captions` (caption ideas from the chat
model), :mod:`.understand` (explanations), :mod:`.store` (tables), :mod:`.service` (the logic,
no HTTP), :mod:`.routes` (``/v1/memes``), :mod:`.web` (the Meme studio page), :mod:`.cli`
(``cove meme``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the feature to ``app``: ``/v1/memes`` routes, the Meme studio page at ``/memes``
    and its part of the data export (``memes``: templates and gallery)."""
    from cove.features.memes import web
    from cove.features.memes.routes import router
    from cove.features.memes.service import export
    from cove.web.account import register_export

    app.include_router(router)
    web.mount(app)
    register_export(app, "memes", export)
