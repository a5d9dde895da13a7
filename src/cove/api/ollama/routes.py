"""``/api`` routes (Ollama's API): parse, convert, run the pipeline or a model operation,
convert back. No logic of their own; errors render as ``{"error": "..."}``."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from cove import __version__
from cove.api import extensions
from cove.api.errors import as_cove_error, ndjson_error_line
from cove.api.headers import tool_headers
from cove.api.ollama import convert
from cove.api.ollama.blobs import router as blobs_router
from cove.api.ollama.schemas import (
    ChatBody,
    CopyBody,
    CreateBody,
    DeleteBody,
    GenerateBody,
    PullBody,
    ShowBody,
)
from cove.api.openai.routes import PipelineDep
from cove.api.openapi import NDJSON_OR_JSON
from cove.api.streams import client_of, until_admitted
from cove.errors import InvalidRequest
from cove.models import manage, uploads
from cove.models.names import parse_new_ref, parse_ref
from cove.models.pull import Progress, pull
from cove.pipeline import ChatPipeline, ChatRequest, ChatStream

router = APIRouter(prefix="/api")
router.include_router(blobs_router)

NDJSON = "application/x-ndjson"
OLLAMA_VERSION = "0.9.0"  # the Ollama API level these routes follow


async def _disconnect_watch(request: Request, stream: ChatStream) -> None:
    while True:
        await asyncio.sleep(0.25)
        if await request.is_disconnected():
            stream.cancel()
            return


async def _reply(request: Request, pipeline: ChatPipeline, req: ChatRequest, *, chat: bool,
                 stream_out: bool, raw_prompt: str | None = None,
                 suffix: str | None = None, cove: dict[str, Any] | None = None) -> Response:
    timer = convert.Timer()
    if raw_prompt is not None:
        stream = await pipeline.start_completion(
            req.model, raw_prompt, req.params, explicit=req.explicit, num_ctx=req.num_ctx,
            keep_alive=req.keep_alive, suffix=suffix, client=client_of(request))
    else:
        stream = await pipeline.start_chat(dataclasses.replace(req, client=client_of(request)))
    if stream_out:
        await until_admitted(request, stream)
        timer.mark_admitted()
        return StreamingResponse(extensions.with_results_ndjson(
            convert.ndjson_stream(stream, chat=chat, think=req.think, timer=timer),
            cove or {}, request), media_type=NDJSON, headers=tool_headers(stream))
    timer.mark_admitted()
    watch = asyncio.ensure_future(_disconnect_watch(request, stream))
    try:
        out = await convert.collect(stream, chat=chat, think=req.think, timer=timer)
        if cove:
            out["cove"] = extensions.finish(request, cove, out["message"]["content"])
        return JSONResponse(out, headers=tool_headers(stream))
    finally:
        watch.cancel()


async def _load_only(pipeline: ChatPipeline, model: str, keep_alive: float | None,
                     chat: bool) -> JSONResponse:
    if pipeline.remote.serves(model):  # loading is the backend's business
        return JSONResponse(convert.load_reply(chat, model, unloaded=keep_alive == 0))
    entry = pipeline.resolve(model)
    if keep_alive == 0:
        pipeline.models.unload(entry.name)
        return JSONResponse(convert.load_reply(chat, entry.name, unloaded=True))
    lease = await pipeline.acquire(model)
    lease.release(keep_alive)
    return JSONResponse(convert.load_reply(chat, entry.name, unloaded=False))


@router.post("/chat", response_model=None, responses=NDJSON_OR_JSON)
async def chat(body: ChatBody, request: Request, pipeline: PipelineDep) -> Response:
    req = convert.to_chat_request(body)
    if not body.messages:
        return await _load_only(pipeline, req.model or "", req.keep_alive, chat=True)
    req, cove = await extensions.apply(request, body.cove, req)
    return await _reply(request, pipeline, req, chat=True, stream_out=body.stream, cove=cove)


@router.post("/generate", response_model=None, responses=NDJSON_OR_JSON)
async def generate(body: GenerateBody, request: Request, pipeline: PipelineDep) -> Response:
    req = convert.to_generate_request(body)
    if not body.prompt and not body.images and not body.suffix:
        return await _load_only(pipeline, req.model or "", req.keep_alive, chat=False)
    untemplated = body.raw or bool(body.suffix)
    return await _reply(request, pipeline, req, chat=False, stream_out=body.stream,
                        raw_prompt=body.prompt or "" if untemplated else None,
                        suffix=body.suffix or None)


@router.get("/tags")
async def tags(pipeline: PipelineDep) -> dict[str, Any]:
    entries = pipeline.registry.list()
    local = await asyncio.to_thread(lambda: [convert.tag(e) for e in entries])
    return {"models": local + [convert.remote_tag(n) for n in pipeline.remote.names()]}


@router.post("/show")
async def show(body: ShowBody, pipeline: PipelineDep) -> dict[str, Any]:
    if pipeline.remote.serves(body.ref):
        return convert.remote_show(str(body.ref))
    entry = pipeline.resolve(convert.require_model(body.ref))
    return await asyncio.to_thread(convert.show, entry)


@router.get("/ps")
async def ps(pipeline: PipelineDep) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for m in pipeline.models.loaded():
        expires = m.expires_wall()
        if m.forever:
            expires_at = convert.FOREVER
        else:
            expires_at = convert.now_iso(expires if expires is not None
                                         else time.time() + pipeline.settings.keep_alive)
        same = next((o for o in out if o["name"] == m.entry.name), None)
        if same is not None:
            # one entry per model, as Ollama clients expect: a model loaded for chat and for
            # embeddings is listed once, its kinds joined ("chat,embedding"), sizes added
            same["kind"] = ",".join(sorted({*same["kind"].split(","), m.kind}))
            same["size"] += m.size
            same["busy"] = same["busy"] or m.busy
            same["expires_at"] = max(same["expires_at"], expires_at)
            if m.kind == "chat":
                same["context_length"] = m.n_ctx
            continue
        out.append({
            "name": m.entry.name, "model": m.entry.name, "size": m.size,
            "digest": m.entry.sha256().removeprefix("sha256:"),
            "details": convert.details(m.entry), "expires_at": expires_at, "size_vram": 0,
            "context_length": m.n_ctx, "kind": m.kind, "busy": m.busy,
        })
    return {"models": out}


@router.delete("/delete")
async def delete(body: DeleteBody, pipeline: PipelineDep) -> Response:
    entry = pipeline.resolve(convert.require_model(body.ref))
    if pipeline.registry.builtin(entry.name) is None:
        pipeline.models.unload(entry.name)
    manage.remove_model(pipeline.registry, entry.name)
    return Response(status_code=200)


@router.post("/copy")
async def copy(body: CopyBody, pipeline: PipelineDep) -> Response:
    await asyncio.to_thread(manage.copy_model, pipeline.registry, body.source, body.destination)
    return Response(status_code=200)


async def _run_with_progress(request: Request, work: Callable[..., Any],
                             stream_out: bool) -> Response:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    cancel = threading.Event()

    def report(p: Progress) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, p.to_dict())

    async def run() -> None:
        try:
            await asyncio.to_thread(work, report, cancel)
        except Exception as e:  # noqa: BLE001 - a bug must still end the stream with an error
            await queue.put({"_err": as_cove_error(e)})  # a 5xx is logged when rendered
        finally:
            await queue.put(None)

    task = asyncio.ensure_future(run())
    if not stream_out:
        await task
        last: dict[str, Any] = {"status": "success"}
        while not queue.empty():
            item = queue.get_nowait()
            if item is not None and "_err" in item:
                raise item["_err"]
            last = item or last
        return JSONResponse(last)

    async def lines() -> AsyncIterator[str]:
        import json

        try:
            while (item := await queue.get()) is not None:
                if "_err" in item:
                    yield ndjson_error_line(item["_err"])
                    continue
                yield json.dumps(item) + "\n"
        finally:
            cancel.set()  # client gone: stop the download (the partial is kept)

    return StreamingResponse(lines(), media_type=NDJSON)


@router.post("/pull", response_model=None, responses=NDJSON_OR_JSON)
async def pull_model(body: PullBody, request: Request, pipeline: PipelineDep) -> Response:
    ref = convert.require_model(body.ref)
    parse_ref(ref)  # a bad name is a 4xx before any stream starts

    def work(report: Callable[[Progress], None], cancel: threading.Event) -> None:
        pull(pipeline.registry, ref, report, cancel=cancel)

    return await _run_with_progress(request, work, body.stream)


_CREATE_REFUSED = {
    "adapters": "LoRA adapters are not supported",
    "quantize": "quantizing is not supported; upload a GGUF of the quantization you want",
    "template": "a TEMPLATE is not supported: Cove renders the Jinja chat template inside the "
                "GGUF (tokenizer.chat_template)",
    "messages": "MESSAGE (example conversation) is not supported",
}


@router.post("/create", response_model=None, responses=NDJSON_OR_JSON)
async def create(body: CreateBody, request: Request, pipeline: PipelineDep) -> Response:
    """A model from uploaded GGUF ``files`` or a preset ``from`` an installed model, with
    ``system``, ``parameters`` (and, from files, ``license``). Everything is checked before
    the progress stream starts, so a bad request is a plain 400."""
    name = convert.require_model(body.ref)
    for field, why in _CREATE_REFUSED.items():
        if getattr(body, field):
            raise InvalidRequest(why, param=field)
    if body.files and body.from_:
        raise InvalidRequest("send 'files' (uploaded GGUF blobs) or 'from' (an installed "
                             "model), not both", param="from")
    if body.files is None and body.from_ is None:
        raise InvalidRequest("'from' (the base model) or 'files' is required" if not
                             body.modelfile else "Modelfiles are not supported; send 'from' or "
                             "'files', 'system' and 'parameters'", param="from")
    parse_new_ref(name)  # a bad name or base is a 4xx before any stream starts
    if body.files is not None:
        license = (body.license if body.license is None or isinstance(body.license, str)
                   else "\n\n".join(body.license))
        system, options = manage.preset_defaults(body.system, body.parameters)
        files = await asyncio.to_thread(uploads.check_files, pipeline.registry, body.files)

        def from_files(report: Callable[[Progress], None], cancel: threading.Event) -> None:
            report(Progress("parsing GGUF"))
            for layer in (files.model, files.projector):
                if layer is not None:
                    report(Progress(f"using existing layer {layer.digest}"))
            uploads.create_from_files(pipeline.registry, name, files, system=system,
                                      options=options, license=license)
            report(Progress("writing manifest"))
            report(Progress("success"))

        return await _run_with_progress(request, from_files, body.stream)
    if body.license is not None:
        raise InvalidRequest("'license' is kept only for a model created from 'files'; a "
                             "preset shows its base model's license", param="license")
    spec = manage.preset_from_dict({"from": body.from_, "system": body.system,
                                    "parameters": body.parameters})
    pipeline.resolve(spec.base)

    def preset(report: Callable[[Progress], None], cancel: threading.Event) -> None:
        report(Progress("using existing layer"))
        manage.create_preset(pipeline.registry, name, spec)
        report(Progress("writing manifest"))
        report(Progress("success"))

    return await _run_with_progress(request, preset, body.stream)


@router.get("/version")
async def version() -> dict[str, str]:
    return {"version": OLLAMA_VERSION, "cove_version": __version__}
