"""The single-page app at ``/`` and its files under ``/static`` (served from the package; every
script, style and font is vendored, nothing comes from a CDN).

The page gets a strict Content-Security-Policy: scripts only from this server, no inline
scripts, no plugins, no framing — a second line of defence behind the sanitising of every
message. (The other security headers are on every response: :mod:`cove.api.security`.)
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter()


OLLAMA_BANNER = "Ollama is running"


def wants_html(accept: str) -> bool:
    """Whether an ``Accept`` header asks for HTML (a browser navigating), as opposed to the
    ``*/*`` (or nothing) of API clients and scripts."""
    return any(part.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")
               for part in accept.split(","))


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    """The web app for a browser; for any other client the plain text ``Ollama is running``
    (status 200, ``text/plain``), as Ollama answers there, so clients that probe ``/`` to
    find an Ollama server find Cove."""
    headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "Vary": "Accept"}
    if not wants_html(request.headers.get("accept", "")):
        return PlainTextResponse(OLLAMA_BANNER, headers=headers)
    return FileResponse(STATIC / "index.html", headers=headers)


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The icon browsers ask for by default (an SVG; the page also links it)."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})


def page(file: Path) -> FileResponse:
    """An HTML page of the app (a feature's own page too) with the app's security policy."""
    return FileResponse(file, media_type="text/html",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


def mount(app: FastAPI) -> None:
    """Serve the app at ``/`` and its files at ``/static``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
