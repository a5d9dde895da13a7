"""Model arena (issue 13): one prompt answered by two to four models or presets side by side,
streamed at the same time (batched where they share weights); blind mode hides the names
until the vote (A, B, ..., tie, both bad); votes feed a per-instance Bradley–Terry
leaderboard with bootstrap intervals.

Rooms: :mod:`.service` (contestants, streaming, no HTTP), :mod:`.rating` (the leaderboard
maths), :mod:`.store` and :mod:`.battles` (battles and votes), :mod:`.routes`
(``/v1/arena``), :mod:`.cli` (``cove arena``), ``static/`` (the Arena page).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the feature to ``app``: ``/v1/arena`` routes, the ``/arena`` page and its part of
    the data export (``arena``: the user's battles and votes)."""
    from cove.features.arena.battles import export
    from cove.features.arena.routes import page_router, router
    from cove.web.account import register_export

    app.include_router(router)
    app.include_router(page_router)
    register_export(app, "arena", export)
