"""``/v1/messages`` routes (Anthropic's Messages API): parse, convert, run the pipeline,
convert back. No logic of their own; errors render in Anthropic's shape
(:mod:`cove.api.errors`, by path)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from cove.api.anthropic import convert, sse
from cove.api.anthropic.schemas import CountTokensRequest, MessagesRequest
from cove.api.headers import tool_headers
from cove.api.openai.routes import SSE_HEADERS, PipelineDep
from cove.api.streams import client_of, collect_unless_disconnected, until_admitted

router = APIRouter(prefix="/v1/messages")


@router.post("", response_model=None)
async def messages(body: MessagesRequest, request: Request, pipeline: PipelineDep) -> Any:
    req, where = convert.to_chat_request(body)
    with convert.request_paths(where):
        stream = await pipeline.start_chat(dataclasses.replace(req, client=client_of(request)))
    if body.stream:
        await until_admitted(request, stream)
        return StreamingResponse(sse.sse_stream(stream), media_type="text/event-stream",
                                 headers={**SSE_HEADERS, **tool_headers(stream)})
    result = await collect_unless_disconnected(request, stream)
    return JSONResponse(convert.from_chat_result(result) if result else {},
                        headers=tool_headers(stream))


@router.post("/count_tokens")
async def count_tokens(body: CountTokensRequest, pipeline: PipelineDep) -> dict[str, int]:
    req, where = convert.to_chat_request(body)
    with convert.request_paths(where):
        return {"input_tokens": await pipeline.count_tokens(req)}
