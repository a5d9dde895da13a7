"""A fake Hugging Face hub on loopback, serving the routes ``huggingface_hub`` and Cove's pull
use: ``/api/models/<repo>[/revision/<rev>]`` (file listing with LFS sha256 and sizes) and
``/<repo>/resolve/<rev>/<file>`` (which redirects to a CDN-like path, like the real hub, that
honours ``Range``). Knobs simulate trouble: ``cut_after`` drops the connection after N bytes
(once), ``corrupt`` serves other bytes than the listing's checksum."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.conftest import free_port

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self) -> None:
        self.files: dict[str, dict[str, bytes]] = {}
        self.cut_after: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        self.app = self._build()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                     log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def add(self, repo: str, name: str, data: bytes) -> str:
        """Serve ``data`` as ``repo``/``name``; returns its sha256 hex."""
        self.files.setdefault(repo, {})[name] = data
        return hashlib.sha256(data).hexdigest()

    def start(self) -> FakeHub:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def _build(self) -> FastAPI:
        app = FastAPI()

        def listing(repo: str) -> Any:
            files = self.files.get(repo)
            if files is None:
                return JSONResponse({"error": "Repository not found"}, status_code=404,
                                    headers={"X-Error-Code": "RepoNotFound"})
            return {
                "id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                "siblings": [
                    {"rfilename": n, "size": len(d), "blobId": hashlib.sha1(d).hexdigest(),
                     "lfs": {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d),
                             "pointerSize": 134}}
                    for n, d in files.items()
                ],
            }

        @app.get("/api/models/{owner}/{name}")
        async def info(owner: str, name: str) -> Any:
            return listing(f"{owner}/{name}")

        @app.get("/api/models/{owner}/{name}/revision/{rev}")
        async def info_rev(owner: str, name: str, rev: str) -> Any:
            return listing(f"{owner}/{name}")

        @app.get("/{owner}/{name}/resolve/{rev}/{filename:path}")
        async def resolve(owner: str, name: str, rev: str, filename: str,
                          request: Request) -> Response:
            repo = f"{owner}/{name}"
            self.requests.append((request.url.path, request.headers.get("range")))
            if filename not in self.files.get(repo, {}):
                return JSONResponse({"error": "Entry not found"}, status_code=404)
            return Response(status_code=302, headers={
                "Location": f"/cdn/{owner}/{name}/{filename}", "X-Repo-Commit": COMMIT})

        @app.get("/cdn/{owner}/{name}/{filename:path}")
        async def cdn(owner: str, name: str, filename: str, request: Request) -> Response:
            key = f"{owner}/{name}/{filename}"
            data = self.files[f"{owner}/{name}"][filename]
            if key in self.corrupt:
                data = bytes(b ^ 0xFF for b in data[:8]) + data[8:]
            rng = request.headers.get("range")
            self.requests.append((request.url.path, rng))
            start = 0
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
            body = data[start:]
            headers = {"ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                       "Content-Length": str(len(body)), "Accept-Ranges": "bytes"}
            status = 200
            if start:
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            cut = self.cut_after.pop(key, None)

            def chunks() -> Iterator[bytes]:
                step = 1024
                for i in range(0, len(body), step):
                    if cut is not None and i >= cut:
                        raise ConnectionAbortedError("simulated network failure")
                    yield body[i:i + step]

            return StreamingResponse(chunks(), status_code=status, headers=headers,
                                     media_type="application/octet-stream")

        return app
