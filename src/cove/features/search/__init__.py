"""Search over the user's own documents (issue 11): named collections of documents per user,
split into chunks, indexed by keyword (SQLite FTS5 / PostgreSQL full-text search) and by meaning
(the core text embedder), ranked by reciprocal rank fusion, and cited as sources in answers.

Rooms: :mod:`.store` (tables), :mod:`.extract` (file formats to sections), :mod:`.chunking`
(recursive splitting), :mod:`.index` (keyword and vector ranking), :mod:`.service` (the logic,
no HTTP), :mod:`.web` (SearXNG web search), :mod:`.sources` (the kinds of source and one search
across them), :mod:`.routes` (web JSON), :mod:`.answers` (sources for chat requests),
:mod:`.cli`; knowledge packs (ZIM archives shared by all users): :mod:`.zim` (the only libzim
user), :mod:`.packs` (register, search), :mod:`.sanitize`, :mod:`.pack_routes`,
:mod:`.pack_cli`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the feature to ``app``: its routes (signed-in users; knowledge packs also guests),
    OpenAI's Files and Vector Stores endpoints, the ``cove.search`` extension of chat requests
    and its part of the data export (``knowledge``)."""
    from fastapi import Depends

    from cove.api import extensions
    from cove.api.limits import register_upload_route
    from cove.auth.deps import api_access
    from cove.features.search.answers import check_citations, search_extension
    from cove.features.search.pack_routes import router as pack_router
    from cove.features.search.routes import router, search_router
    from cove.features.search.service import export
    from cove.features.search.vector_stores import router as openai_router
    from cove.web.account import register_export

    app.include_router(router)
    app.include_router(pack_router)
    register_upload_route(app, r"/web/knowledge/collections/\d+/documents")
    register_upload_route(app, r"/v1/files")
    app.include_router(search_router)
    app.include_router(openai_router, dependencies=[Depends(api_access)])
    extensions.register(app, "search", search_extension, finish=check_citations)
    register_export(app, "knowledge", export)
