"""The Meme studio page at ``/memes`` and its script and style at ``/memes/static`` (served
from the package, under the web app's Content-Security-Policy; nothing from a CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from cove.web.pages import CSP

STATIC = Path(__file__).parent / "static"
# the app's policy, plus blob: images (a re-rendered meme is shown from a blob: URL)
STUDIO_CSP = CSP.replace("img-src 'self' data:", "img-src 'self' data: blob:")


def mount(app: FastAPI) -> None:
    """Serve the studio page and its files."""

    @app.get("/memes", include_in_schema=False)
    async def studio() -> FileResponse:
        return FileResponse(STATIC / "studio.html", headers={
            "Content-Security-Policy": STUDIO_CSP, "Cache-Control": "no-cache"})

    app.mount("/memes/static", StaticFiles(directory=STATIC), name="memes-static")
