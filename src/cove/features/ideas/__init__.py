"""Brainstorm mode (issue 13): many candidate ideas generated at once through the scheduler
(different seeds, temperatures and prompting lenses, each answer constrained to a JSON
schema), deduplicated and grouped into themes with the core text embedder, scored by the model
against the user's criteria and ranked; follow-ups (expand, combine, pre-mortem, more like
one); boards of signed-in users saved.

Rooms: :mod:`.prompts` (lenses, schemas, reading answers), :mod:`.cluster` (duplicates,
themes), :mod:`.service` (the brainstorm, no HTTP), :mod:`.followups`, :mod:`.store` and
:mod:`.boards` (saved boards), :mod:`.routes` (``/v1/ideas``), :mod:`.cli` (``cove ideas``),
``static/`` (the Ideas page).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

MAX_IDEAS = 48  # most ideas one brainstorm may ask for
MAX_GOAL_CHARS = 2000
MAX_ITEMS = 10  # most constraints, and most criteria
MAX_ITEM_CHARS = 300  # longest constraint or criterion
DEFAULT_CRITERIA = ("impact", "feasibility", "novelty")


def install(app: FastAPI) -> None:
    """Add the feature to ``app``: ``/v1/ideas`` routes, the ``/ideas`` page and its part of
    the data export (``ideas``: the user's boards)."""
    from cove.features.ideas.boards import export
    from cove.features.ideas.routes import page_router, router
    from cove.web.account import register_export

    app.include_router(router)
    app.include_router(page_router)
    register_export(app, "ideas", export)
