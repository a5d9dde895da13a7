"""The API's interactive documentation, offline: ``/docs`` (Swagger UI), ``/redoc`` (ReDoc) and
the schema they read, ``/openapi.json``.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google); these
load them from Cove (``static/vendor/swagger-ui``, ``static/vendor/redoc``, vendored with their
licences), under a Content-Security-Policy that lets the pages reach nothing but Cove. All three
routes are behind :func:`cove.auth.deps.api_access`, like ``/v1``: open on loopback while no
account exists, otherwise they need an API key or a signed-in web session.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from cove.auth.deps import api_access
from cove.web.pages import STATIC

# Swagger UI and ReDoc set inline styles and draw icons as data: images; ReDoc runs its search
# in a worker made from a blob: URL. Scripts come only from Cove.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

router = APIRouter(dependencies=[Depends(api_access)], include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / "docs" / name, media_type="text/html",
                        headers={"Content-Security-Policy": DOCS_CSP,
                                 "Cache-Control": "no-cache"})


@router.get("/docs")
async def swagger_ui() -> FileResponse:
    """Swagger UI over ``/openapi.json``."""
    return _page("swagger.html")


@router.get("/redoc")
async def redoc() -> FileResponse:
    """ReDoc over ``/openapi.json``."""
    return _page("redoc.html")


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    """The app's OpenAPI schema."""
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


def mount(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and ``/openapi.json`` (build the app with ``docs_url``,
    ``redoc_url`` and ``openapi_url`` set to None, so that FastAPI's own are not there)."""
    app.include_router(router)
