"""``POST /v1/embeddings``, as OpenAI's embeddings API: the request body, its conversion to an
:class:`~cove.embed_service.EmbedRequest` and back, and the route.

``input`` is a string, a list of strings, a list of token ids or a list of token-id lists (ids
of the model's own vocabulary, as llama.cpp's server and vLLM take them: a client that counts
with tiktoken, such as LangChain's ``OpenAIEmbeddings`` by default, sends ids of another
vocabulary, so set ``check_embedding_ctx_length=False`` there). As at OpenAI, an input longer
than the context is a 400, never cut. ``encoding_format: "base64"`` gives each vector as the
base64 of its little-endian float32 bytes (what the ``openai`` client asks for by default and
decodes itself); ``dimensions`` keeps the first N components, scaled back to unit length.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cove.api.openai.routes import PipelineDep
from cove.api.openai.schemas import Int
from cove.embed_service import EmbedRequest, EmbedResult
from cove.errors import InvalidRequest

router = APIRouter(prefix="/v1")


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings`` body (OpenAI's field names; ``user`` is accepted and unused)."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str] | list[Int] | list[list[Int]]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Int | None = Field(None, ge=1)
    user: str | None = None


def to_embed_request(body: EmbeddingRequest) -> EmbedRequest:
    """The core request for ``body``.

    Raises:
        InvalidRequest: an empty ``input`` (OpenAI refuses it too).
    """
    inputs: list[Any]
    if isinstance(body.input, str):
        inputs = [body.input]
    elif body.input and isinstance(body.input[0], int):
        inputs = [body.input]  # one input given as token ids
    else:
        inputs = list(body.input)
    if not inputs or inputs == [""]:
        raise InvalidRequest("input must not be empty: send a string, a list of strings, a "
                             "list of token ids or a list of token-id lists", param="input")
    return EmbedRequest(model=body.model, inputs=inputs, truncate=False,
                        dimensions=body.dimensions, strict_dimensions=True)


def encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """One vector as OpenAI sends it: a list of floats, or base64 of little-endian float32."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()  # type: ignore[no-any-return]


def from_embed_result(result: EmbedResult, encoding_format: str) -> dict[str, Any]:
    """OpenAI's ``{"object": "list", "data": [...], "model", "usage"}``."""
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v, encoding_format)}
                 for i, v in enumerate(result.vectors)],
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }


@router.post("/embeddings", response_model=None)
async def embeddings(body: EmbeddingRequest, request: Request, pipeline: PipelineDep) -> Response:
    result = await pipeline.embed(to_embed_request(body), cancelled=request.is_disconnected)
    if result is None:  # the client went away; nobody reads this
        return Response(status_code=499)
    return JSONResponse(from_embed_result(result, body.encoding_format))
