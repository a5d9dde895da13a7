"""``/v1`` routes: parse, convert, run the pipeline, convert back. No logic of their own."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from cove.api.openai import convert
from cove.api.openai.schemas import ChatCompletionRequest, CompletionRequest
from cove.api.streams import client_of, collect_unless_disconnected, until_admitted
from cove.pipeline import ChatPipeline

router = APIRouter(prefix="/v1")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def get_pipeline(request: Request) -> ChatPipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


PipelineDep = Annotated[ChatPipeline, Depends(get_pipeline)]


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, pipeline: PipelineDep
) -> Any:
    req = dataclasses.replace(convert.to_chat_request(body), client=client_of(request))
    stream = await pipeline.start_chat(req)
    if body.stream:
        await until_admitted(request, stream)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            convert.sse_stream(stream, chat=True, include_usage=include_usage),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    result = await collect_unless_disconnected(request, stream)
    return JSONResponse(convert.from_chat_result(result) if result else {})


@router.post("/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request, pipeline: PipelineDep) -> Any:
    prompt = convert.completion_prompt(body)
    stream = await pipeline.start_completion(body.model, prompt, convert.to_sampling(body),
                                             explicit=convert.explicit_fields(body),
                                             client=client_of(request))
    if body.stream:
        await until_admitted(request, stream)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            convert.sse_stream(
                stream,
                chat=False,
                include_usage=include_usage,
                echo_prompt=prompt if body.echo else "",
            ),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    result = await collect_unless_disconnected(request, stream)
    return JSONResponse(convert.from_completion_result(result, prompt, body.echo) if result else {})


@router.get("/models")
async def list_models(pipeline: PipelineDep) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": e.name,
                "object": "model",
                "created": int(e.path.stat().st_mtime) if e.path.exists() else int(time.time()),
                "owned_by": "cove",
            }
            for e in pipeline.registry.list()
        ],
    }


@router.get("/models/{model:path}")
async def get_model(model: str, pipeline: PipelineDep) -> dict[str, Any]:
    entry = pipeline.registry.resolve(model)
    return {
        "id": entry.name,
        "object": "model",
        "created": int(entry.path.stat().st_mtime),
        "owned_by": "cove",
    }
