"""Build the FastAPI application. Nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from cove import __version__
from cove.api.errors import install_error_handlers
from cove.api.limits import BodyLimit
from cove.api.openai.routes import router as openai_router
from cove.config import Settings
from cove.models.registry import ModelRegistry
from cove.pipeline import ChatPipeline, Loader, load_llama
from cove.privacy import install_egress_guard


def create_app(
    settings: Settings,
    *,
    registry: ModelRegistry | None = None,
    loader: Loader = load_llama,
) -> FastAPI:
    """The Cove server app.

    Args:
        settings: Cove settings.
        registry: installed models (default: discovered from the settings).
        loader: how to load a model (tests pass a scripted-engine loader).
    """
    install_egress_guard()
    pipeline = ChatPipeline(settings, registry or ModelRegistry(), loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pipeline.close()

    app = FastAPI(title="Cove", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.pipeline = pipeline
    install_error_handlers(app)
    app.include_router(openai_router)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, **pipeline.status()}

    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.request_body_timeout
    )
    return app
