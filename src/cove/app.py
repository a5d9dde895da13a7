"""Build the FastAPI application. Nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig

from cove import __version__
from cove.api.anthropic.routes import router as anthropic_router
from cove.api.errors import install_error_handlers
from cove.api.head import HeadAsGet
from cove.api.hosts import HostCheck
from cove.api.limits import BodyLimit
from cove.api.ollama.embed import router as ollama_embed_router
from cove.api.ollama.routes import router as ollama_router
from cove.api.openai.embeddings import router as openai_embeddings_router
from cove.api.openai.responses.routes import router as responses_router
from cove.api.openai.routes import router as openai_router
from cove.api.openapi import install_openapi
from cove.api.security import SecurityHeaders
from cove.auth.deps import api_access
from cove.auth.throttle import SignInGuard
from cove.backends.metrics import router as metrics_router
from cove.config import Settings
from cove.features import arena as arena_feature
from cove.features import ideas as ideas_feature
from cove.features import memes as memes_feature
from cove.features import search as search_feature
from cove.features.logic.routes import router as logic_router
from cove.models.registry import ModelRegistry
from cove.models.store import ModelStore
from cove.pipeline import ChatPipeline, EmbedLoader, Loader, load_llama, load_llama_embedder
from cove.privacy import install_egress_guard
from cove.store.db import SWEEP_SECONDS, Database, open_database
from cove.web import account, chats, docs, pages

log = logging.getLogger("cove.app")

RETENTION_CHECK_SECONDS = 3600


def apply_retention(db: Database, days: int) -> int:
    """Delete conversations not updated and stored API responses not created for ``days``
    days (0: none); returns how many rows of both."""
    from cove.chats.repo import purge_older_than
    from cove.store import responses

    with db.session() as s:
        n = purge_older_than(s, days)
        r = responses.purge_older_than(s, days)
    if n or r:
        db.reclaim_space()
        log.info("retention: deleted %d conversation(s) and %d stored response(s) older than "
                 "%d days", n, r, days)
    return n + r

# Local origins (Ollama's defaults): loopback hosts on any port, and desktop/editor app schemes.
LOCAL_ORIGINS = (
    r"https?://(localhost|127\.0\.0\.1|\[::1\]|0\.0\.0\.0)(:\d+)?",
    r"(app|tauri|file|vscode-webview|vscode-file)://.*",
)


def origin_regex(extra: str) -> str:
    """A regex matching the local origins plus ``extra`` (comma-separated origins; ``*`` in
    one is a wildcard)."""
    parts = list(LOCAL_ORIGINS)
    for origin in (o.strip() for o in extra.split(",")):
        if origin:
            parts.append(".*".join(re.escape(p) for p in origin.rstrip("/").split("*")))
    return "^(" + "|".join(parts) + ")$"


NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False,
                                 "operation_spans": False, "auto_configure": False}


def create_app(
    settings: Settings,
    *,
    registry: ModelRegistry | None = None,
    loader: Loader = load_llama,
    embed_loader: EmbedLoader | None = load_llama_embedder,
) -> FastAPI:
    """The Cove server app: the OpenAI API under ``/v1`` (Anthropic's Messages API at
    ``/v1/messages``), Ollama's under ``/api``, the web app
    at ``/`` (JSON under ``/web``). Opens (and migrates) the database right away.

    Args:
        settings: Cove settings.
        registry: installed models (default: the bundled model and the store in
            ``settings.home / "models"``).
        loader: how to load a model (tests pass a scripted-engine loader).
        embed_loader: how to load a model for embeddings.
    """
    install_egress_guard()
    db = open_database(settings)
    if registry is None:
        registry = ModelRegistry(ModelStore(settings.home / "models"))
    pipeline = ChatPipeline(settings, registry, loader, embed_loader)

    async def retention_loop() -> None:
        while True:
            await asyncio.to_thread(apply_retention, db, settings.retention_days)
            await asyncio.sleep(RETENTION_CHECK_SECONDS)

    async def sweep_loop() -> None:  # answers of other processes that died (PostgreSQL)
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await asyncio.to_thread(db.sweep)
            except Exception:  # noqa: BLE001 - the database away for a moment: next time
                log.warning("could not check for answers of stopped processes", exc_info=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.ensure_future(retention_loop())] if settings.retention_days else []
        if not db.is_sqlite:
            tasks.append(asyncio.ensure_future(sweep_loop()))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pipeline.close()
        await pipeline.remote.aclose()
        db.close()

    # FastAPI's OpenTelemetry hooks off whatever the environment says: no request data is ever
    # traced or exported (FASTAPI_OTEL_AUTO_CONFIGURE and OTEL_* variables are ignored)
    # /docs, /redoc and /openapi.json are Cove's own (cove.web.docs): offline, and behind the
    # API key once accounts exist
    app = FastAPI(title="Cove", version=__version__, lifespan=lifespan, telemetry=NO_TELEMETRY,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.db = db
    app.state.signin_guard = SignInGuard(settings, db=None if db.is_sqlite else db)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(openai_router, dependencies=[Depends(api_access)])
    app.include_router(responses_router, dependencies=[Depends(api_access)])
    app.include_router(anthropic_router, dependencies=[Depends(api_access)])
    app.include_router(ollama_router, dependencies=[Depends(api_access)])
    for embed_router in (openai_embeddings_router, ollama_embed_router):
        app.include_router(embed_router, dependencies=[Depends(api_access)])
    app.include_router(logic_router, dependencies=[Depends(api_access)])
    app.include_router(metrics_router, dependencies=[Depends(api_access)])
    app.include_router(account.router)
    app.include_router(chats.router)
    search_feature.install(app)
    ideas_feature.install(app)
    arena_feature.install(app)
    memes_feature.install(app)
    pages.mount(app)
    docs.mount(app)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, **pipeline.status()}

    app.add_middleware(HeadAsGet, router=app.router)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.request_body_timeout,
        upload_bytes=settings.max_upload_bytes,
        upload_routes=lambda: getattr(app.state, "upload_routes", []),
    )
    if settings.on_loopback:
        app.add_middleware(HostCheck, extra_origins=settings.origins)
    app.add_middleware(
        CORSMiddleware, allow_origin_regex=origin_regex(settings.origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS", "HEAD"], allow_headers=["*"],
    )
    # outermost, around Starlette's ServerErrorMiddleware too, so that 500s get the headers
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(build_stack())  # type: ignore[method-assign]
    return app
