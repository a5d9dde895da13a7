"""``POST /api/embed`` and the older ``POST /api/embeddings``, as Ollama's: convert the body to
an :class:`~cove.embed_service.EmbedRequest`, run it, convert the result back.

As Ollama: an empty ``input`` only loads the model (``embeddings: []``); ``truncate`` (default
true) cuts an input longer than the context, ``truncate: false`` makes it a 400;
``dimensions`` keeps the first N components (scaled back to unit length; more than the model
has returns the whole vector); ``options.num_ctx`` sets the context the model is loaded with;
``keep_alive`` as for chat. Durations are nanoseconds.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cove.api.ollama.convert import keep_alive, require_model
from cove.api.ollama.schemas import EmbedBody, EmbeddingsBody
from cove.api.openai.routes import PipelineDep
from cove.embed_service import EmbedRequest
from cove.models.options import validate_options

router = APIRouter(prefix="/api")


def to_embed_request(body: EmbedBody | EmbeddingsBody) -> EmbedRequest:
    """The core request for either body.

    Raises:
        InvalidRequest: no model, bad ``options`` or ``keep_alive``.
    """
    if isinstance(body, EmbedBody):
        raw = body.input
        inputs = ([raw] if raw else []) if isinstance(raw, str) else list(raw)
        truncate, dimensions = body.truncate is not False, body.dimensions
    else:
        inputs, truncate, dimensions = ([body.prompt] if body.prompt else []), True, None
    return EmbedRequest(model=require_model(body.ref), inputs=inputs, truncate=truncate,
                        dimensions=dimensions,
                        num_ctx=validate_options(body.options).get("num_ctx"),
                        keep_alive=keep_alive(body.keep_alive))


@router.post("/embed", response_model=None)
async def embed(body: EmbedBody, request: Request, pipeline: PipelineDep) -> Response:
    start = time.perf_counter_ns()
    result = await pipeline.embed(to_embed_request(body), cancelled=request.is_disconnected)
    if result is None:  # the client went away; nobody reads this
        return Response(status_code=499)
    reply: dict[str, Any] = {
        "model": result.model, "embeddings": result.vectors.tolist(),
        "total_duration": time.perf_counter_ns() - start,
        "load_duration": int(result.load_seconds * 1e9),
        "prompt_eval_count": result.prompt_tokens,
    }
    return JSONResponse(reply)


@router.post("/embeddings", response_model=None)
async def embeddings(body: EmbeddingsBody, request: Request, pipeline: PipelineDep) -> Response:
    result = await pipeline.embed(to_embed_request(body), cancelled=request.is_disconnected)
    if result is None:
        return Response(status_code=499)
    return JSONResponse({"embedding": result.vectors[0].tolist() if len(result.vectors) else []})
