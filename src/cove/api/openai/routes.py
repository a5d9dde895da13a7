"""``/v1`` routes: parse, convert, run the pipeline, convert back. No logic of their own."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from cove.api import extensions
from cove.api.headers import tool_headers
from cove.api.openai import convert
from cove.api.openai.schemas import ChatCompletionRequest, CompletionRequest
from cove.api.openai.stream import sse_stream
from cove.api.openapi import SSE_OR_JSON
from cove.api.streams import client_of, collect_choices, until_admitted
from cove.models import capabilities
from cove.models.registry import ModelEntry
from cove.pipeline import ChatPipeline, ChatStream

router = APIRouter(prefix="/v1")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def get_pipeline(request: Request) -> ChatPipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


PipelineDep = Annotated[ChatPipeline, Depends(get_pipeline)]


async def _sse(request: Request, streams: list[ChatStream],
               body: ChatCompletionRequest | CompletionRequest, cove: dict[str, Any],
               **kw: Any) -> StreamingResponse:
    await until_admitted(request, *streams)
    opts = body.stream_options
    events = sse_stream(streams, include_usage=bool(opts and opts.include_usage),
                        obfuscate=bool(opts and opts.include_obfuscation), **kw)
    return StreamingResponse(extensions.with_results(events, cove, request),
                             media_type="text/event-stream",
                             headers={**SSE_HEADERS, **tool_headers(streams[0])})


@router.post("/chat/completions", response_model=None, responses=SSE_OR_JSON)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, pipeline: PipelineDep
) -> Any:
    req = dataclasses.replace(convert.to_chat_request(body), client=client_of(request))
    req, cove = await extensions.apply(request, body.cove, req)
    streams = await pipeline.start_chat_choices(req, body.n)
    if body.stream:
        return await _sse(request, streams, body, cove, chat=True,
                          logprobs=req.params.logprobs is not None)
    results = await collect_choices(request, streams)
    if not results:
        return JSONResponse({})
    if cove:  # the extensions judge the first answer
        cove = extensions.finish(request, cove, results[0].content)
    return JSONResponse({**convert.from_chat_results(results, req.params.logprobs),
                         **({"cove": cove} if cove else {})}, headers=tool_headers(streams[0]))


@router.post("/completions", response_model=None, responses=SSE_OR_JSON)
async def completions(body: CompletionRequest, request: Request, pipeline: PipelineDep) -> Any:
    prompt = convert.completion_prompt(body)
    params = convert.to_sampling(body)
    n = body.best_of or body.n
    if n > body.n and params.logprobs is None:  # best_of ranks by the tokens' logprobs
        params = dataclasses.replace(params, logprobs=0)
    streams = await pipeline.start_completion_choices(
        body.model, prompt, params, explicit=convert.explicit_fields(body),
        suffix=body.suffix or None, n=n, n_param="best_of" if body.best_of else "n",
        client=client_of(request))
    if body.stream:
        return await _sse(request, streams, body, {}, chat=False,
                          echo_prompt=prompt if body.echo else "",
                          logprobs=body.logprobs is not None)
    results = await collect_choices(request, streams)
    if not results:
        return JSONResponse({})
    usage = convert.total_usage([r.usage for r in results])
    if n > body.n:
        results = convert.best_of(results, body.n)
    return JSONResponse(convert.from_completion_results(results, prompt, body.echo,
                                                        body.logprobs, usage))


def _model_card(request: Request, name: str, path: Any, owner: str = "cove",
                caps: list[str] | None = None) -> dict[str, Any]:
    """One model as OpenAI's ``model`` object, with Ollama's ``capabilities`` list when known
    (so a client sees ``vision``); for Anthropic's SDK (it sends ``anthropic-version``)
    also Anthropic's ``ModelInfo`` fields ``type``, ``display_name`` and ``created_at`` (RFC 3339),
    so ``anthropic.Anthropic(...).models.list()`` gets real values, not ``None``."""
    created = int(path.stat().st_mtime) if path is not None and path.exists() \
        else int(time.time())
    card: dict[str, Any] = {"id": name, "object": "model", "created": created, "owned_by": owner}
    if caps is not None:
        card["capabilities"] = caps
    if "anthropic-version" in request.headers:
        card.update(type="model", display_name=name, created_at=time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)))
    return card


def _entry_card(request: Request, entry: ModelEntry) -> dict[str, Any]:
    """:func:`_model_card` of an installed model, with its capabilities (reads its metadata)."""
    return _model_card(request, entry.name, entry.path,
                       caps=capabilities.of(entry.meta(), entry.projector is not None))


@router.get("/models")
async def list_models(request: Request, pipeline: PipelineDep) -> dict[str, Any]:
    """OpenAI's list (``object``, ``data``); with ``anthropic-version`` also Anthropic's page
    fields ``has_more`` (always false: one page), ``first_id`` and ``last_id``."""
    entries = pipeline.registry.list()
    data = await asyncio.to_thread(lambda: [_entry_card(request, e) for e in entries])
    data += [_model_card(request, name, None, "remote") for name in pipeline.remote.names()]
    page: dict[str, Any] = {"object": "list", "data": data}
    if "anthropic-version" in request.headers:
        page.update(has_more=False, first_id=data[0]["id"] if data else None,
                    last_id=data[-1]["id"] if data else None)
    return page


@router.get("/models/{model:path}")
async def get_model(model: str, request: Request, pipeline: PipelineDep) -> dict[str, Any]:
    if pipeline.remote.serves(model):
        return _model_card(request, model, None, "remote")
    entry = pipeline.registry.resolve(model)
    return await asyncio.to_thread(_entry_card, request, entry)
