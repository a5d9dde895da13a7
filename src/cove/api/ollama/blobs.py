"""``/api/blobs/sha256:<hex>`` (Ollama's blob routes): ``HEAD`` says whether a blob is stored
(200 or 404), ``POST`` uploads one (201; 200 when it was already there; 400 for a bad digest
or a body whose SHA-256 is not the one named).

The body is streamed to a temporary file in the store in 1 MiB pieces, never held whole in
memory: :class:`~cove.api.limits.BodyLimit` lets exactly this route through without its size
limit, but still ends an upload that stalls (no bytes for ``COVE_REQUEST_BODY_TIMEOUT``
seconds) with a 408.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from cove.api.openai.routes import PipelineDep
from cove.errors import NotFound
from cove.models.manage import store_of
from cove.models.store import CHUNK, norm_digest

router = APIRouter()


@router.head("/blobs/{digest}")
async def blob_exists(digest: str, pipeline: PipelineDep) -> Response:
    """200 if the blob is stored, 404 if not; 400 for a malformed digest."""
    if not store_of(pipeline.registry).has_blob(digest):
        raise NotFound(f"blob {norm_digest(digest)} not found")
    return Response(status_code=200)


@router.post("/blobs/{digest}")
async def upload_blob(digest: str, request: Request, pipeline: PipelineDep) -> Response:
    """Store the raw body as the blob ``digest``: 201, or 200 when it is already stored.

    Errors: 400 bad digest or digest mismatch (nothing is kept), 408 stalled body.
    """
    store = store_of(pipeline.registry)
    digest = norm_digest(digest)
    if store.has_blob(digest):
        return Response(status_code=200)
    upload = await asyncio.to_thread(store.upload, digest)
    try:
        pending = bytearray()
        async for piece in request.stream():
            pending += piece
            if len(pending) >= CHUNK:
                await asyncio.to_thread(upload.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(upload.write, bytes(pending))
        await asyncio.to_thread(upload.finish)
    except BaseException:
        upload.abort()  # client gone, stalled, or mismatched: keep nothing
        raise
    return Response(status_code=201)
