"""``/v1/memes`` routes: explain, templates (list, upload, delete), captions, render, gallery.

Errors take OpenAI's shape like the rest of ``/v1``. Access is ``/v1``'s (an API key or a web
session once accounts exist), and a guest of the web app (``COVE_GUEST``) may explain, caption
and render too; keeping templates and memes needs an account. Another user's template or meme
answers 404.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.datastructures import UploadFile

from cove.api.openai.schemas import Int
from cove.api.streams import client_of, collect_unless_disconnected, until_admitted
from cove.auth.deps import api_access, api_key, api_user_id, get_db, get_settings
from cove.errors import InvalidRequest, PayloadTooLarge, Unauthorized
from cove.features.memes import captions, service
from cove.features.memes.images import MEDIA_TYPES, decode_data_url, encode
from cove.features.memes.render import side_by_side
from cove.features.memes.understand import describe, read_meme, start_explanation
from cove.pipeline import ChatPipeline
from cove.web import sse

router = APIRouter(prefix="/v1/memes")


def meme_user(request: Request) -> int | None:
    """The account a request acts for (None: a guest, or an open server with no account).

    Raises:
        Unauthorized: credentials needed and none valid (guests not allowed, or a bad key).
    """
    try:
        api_access(request)
    except Unauthorized:
        if api_key(request) is not None or not get_settings(request).guest_enabled:
            raise
        return None
    return api_user_id(request)


UserId = Annotated[int | None, Depends(meme_user)]


def _pipeline(request: Request) -> ChatPipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


def _invalid(e: ValidationError) -> InvalidRequest:
    err = e.errors()[0]
    return InvalidRequest(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}",
                          param=".".join(str(p) for p in err["loc"]))


class Source(BaseModel):
    """Where the picture comes from: a ``template`` id, or an ``image`` (``data:`` URL) with
    optional ``boxes`` (default: top and bottom captions)."""

    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(None, max_length=40)
    image: str | None = Field(None, max_length=12_000_000)
    boxes: list[dict[str, Any]] | None = None


class RenderBody(Source):
    text: dict[str, str] | list[str] = Field(default_factory=dict)
    format: str = "png"
    save: StrictBool = False


class CaptionsBody(Source):
    idea: str = Field(max_length=2000)
    n: Int = Field(3, ge=1, le=captions.MAX_VARIANTS)
    model: str | None = None
    temperature: float = Field(0.9, ge=0, le=2)
    seed: Int | None = None
    render: StrictBool = True


class ExplainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(None, max_length=12_000_000)
    model: str | None = None
    vision_model: str | None = None
    stream: bool = False
    max_tokens: Int = Field(400, ge=1, le=4096)
    temperature: float = Field(0.3, ge=0, le=2)
    seed: Int | None = None
    ocr_engine: str | None = None


def _base(request: Request, uid: int | None, body: Source) -> service.Base:
    settings = get_settings(request)
    if (body.template is None) == (body.image is None):
        raise InvalidRequest("send either template (an id) or image (a data: URL)",
                             param="template")
    if body.image is not None:
        data = decode_data_url(body.image, "image")
        if len(data) > settings.max_upload_bytes:
            raise PayloadTooLarge(f"the image is over {settings.max_upload_bytes} bytes")
        return service.image_base(data, body.boxes, settings.meme_max_pixels)
    with get_db(request).session() as s:
        return service.get_base(s, uid, body.template or "")


@router.get("/templates")
def list_templates(request: Request, uid: UserId) -> dict[str, Any]:
    """``{"object": "list", "data": [template, ...]}`` (built-ins, then the user's own); each
    template has ``image_url``."""
    with get_db(request).session() as s:
        items = service.list_templates(s, uid)
    return {"object": "list", "data": [
        {**t.to_dict(), "object": "meme.template", "image_url": f"/v1/memes/templates/{t.id}/image"}
        for t in items]}


@router.post("/templates", status_code=201)
async def upload_template(request: Request, uid: UserId) -> dict[str, Any]:
    """Multipart ``file`` (the image), ``name``, optional ``boxes`` (JSON list of text boxes):
    201 with the new private template."""
    user_id = service.need_user(uid, "keep your own templates")
    settings = get_settings(request)
    form = await request.form(max_files=1, max_fields=10)
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise InvalidRequest("send the image as the multipart field 'file'", param="file")
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLarge(f"the image is over {settings.max_upload_bytes} bytes")
    raw = form.get("boxes")
    try:
        boxes = json.loads(raw) if isinstance(raw, str) and raw.strip() else None
    except ValueError as e:
        raise InvalidRequest("boxes must be a JSON list of text boxes", param="boxes") from e
    name = form.get("name")
    name = name if isinstance(name, str) and name.strip() else (file.filename or "My template")

    def add() -> dict[str, Any]:
        with get_db(request).session() as s:
            t = service.add_template(s, user_id, name, data, boxes, settings.meme_max_pixels)
        return {**t.to_dict(), "object": "meme.template",
                "image_url": f"/v1/memes/templates/{t.id}/image"}

    return await asyncio.to_thread(add)


@router.get("/templates/{template_id}")
def get_template(template_id: str, request: Request, uid: UserId) -> dict[str, Any]:
    with get_db(request).session() as s:
        t = service.get_base(s, uid, template_id).template
    return {**t.to_dict(), "object": "meme.template", "yaml": t.to_yaml(),
            "image_url": f"/v1/memes/templates/{t.id}/image"}


@router.get("/templates/{template_id}/image")
def template_image(template_id: str, request: Request, uid: UserId) -> Response:
    """The blank template as PNG."""
    with get_db(request).session() as s:
        base = service.get_base(s, uid, template_id)
    return Response(encode(base.image, "png"), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=300"})


@router.delete("/templates/{template_id}")
def delete_template(template_id: str, request: Request, uid: UserId) -> dict[str, Any]:
    with get_db(request).session() as s:
        service.delete_template(s, uid, template_id)
    return {"id": template_id, "object": "meme.template", "deleted": True}


@router.post("/captions")
async def caption_ideas(body: CaptionsBody, request: Request, uid: UserId) -> dict[str, Any]:
    """``n`` caption variants by the chat model (one JSON field per box), each rendered:
    ``{"object": "meme.captions", "model", "template", "variants": [{"index", "text",
    "image" (data: URL, or null with "error" when the text does not fit)}], "sheet"}``."""
    base = await asyncio.to_thread(_base, request, uid, body)
    task = asyncio.ensure_future(captions.suggest(
        _pipeline(request), base.template, body.idea, n=body.n, model=body.model,
        temperature=body.temperature, seed=body.seed, client=client_of(request)))
    while not task.done():
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if not done and await request.is_disconnected():
            task.cancel()
            return {}
    model, variants = task.result()

    def draw() -> tuple[list[dict[str, Any]], str | None]:
        out, images = [], []
        for i, text in enumerate(variants):
            item: dict[str, Any] = {"index": i, "text": text, "image": None, "error": None}
            if body.render:
                try:
                    from cove.features.memes.render import render

                    im = render(base.image, base.template.boxes, text)
                    images.append(im)
                    item["image"] = service.data_url(encode(im, "png"))
                except InvalidRequest as e:
                    item["error"] = e.message
            out.append(item)
        sheet = service.data_url(encode(side_by_side(images), "png")) if len(images) > 1 \
            else None
        return out, sheet

    items, sheet = await asyncio.to_thread(draw)
    return {"object": "meme.captions", "model": model, "template": base.template.to_dict(),
            "variants": items, "sheet": sheet}


@router.post("")
async def render_meme(body: RenderBody, request: Request, uid: UserId) -> Response:
    """The meme as an image (``format`` png, jpeg or webp); with ``save`` it is also kept in
    the signed-in user's gallery (``X-Meme-Id`` names it)."""
    def run() -> Response:
        base = _base(request, uid, body)
        text = service.check_texts(body.text, base.template.boxes)
        data = service.render_bytes(base, text, body.format)
        headers = {"Cache-Control": "no-store"}
        if body.save:
            user_id = service.need_user(uid, "keep memes in a gallery")
            with get_db(request).session() as s:
                headers["X-Meme-Id"] = str(service.save_meme(
                    s, user_id, body.template, text, body.format, data).id)
        return Response(data, media_type=MEDIA_TYPES[body.format.lower()], headers=headers)

    return await asyncio.to_thread(run)


@router.get("")
def gallery(request: Request, uid: UserId) -> dict[str, Any]:
    """The signed-in user's memes, newest first: ``{"object": "list", "data": [meme, ...]}``."""
    user_id = service.need_user(uid, "keep memes in a gallery")
    with get_db(request).session() as s:
        return {"object": "list",
                "data": [service.meme_dict(m) for m in service.list_memes(s, user_id)]}


@router.get("/{meme_id}/image")
def meme_image(meme_id: int, request: Request, uid: UserId) -> Response:
    user_id = service.need_user(uid, "keep memes in a gallery")
    with get_db(request).session() as s:
        m = service.get_meme(s, user_id, meme_id)
        return Response(m.image, media_type=MEDIA_TYPES[m.format],
                        headers={"Cache-Control": "private, no-store"})


@router.delete("/{meme_id}")
def delete_meme(meme_id: int, request: Request, uid: UserId) -> dict[str, Any]:
    user_id = service.need_user(uid, "keep memes in a gallery")
    with get_db(request).session() as s:
        service.delete_meme(s, user_id, meme_id)
    return {"id": meme_id, "object": "meme", "deleted": True}


async def _explain_input(request: Request) -> tuple[bytes, ExplainOptions]:
    limit = get_settings(request).max_upload_bytes
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=20)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidRequest("send the image as the multipart field 'file'", param="file")
        data = await file.read(limit + 1)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            opts = ExplainOptions.model_validate(fields)
        except ValidationError as e:
            raise _invalid(e) from e
    else:
        try:
            opts = ExplainOptions.model_validate(await request.json())
        except ValueError as e:
            if isinstance(e, ValidationError):
                raise _invalid(e) from e
            raise InvalidRequest("send multipart/form-data with a 'file', or JSON with an "
                                 "'image' data: URL", param="image") from e
        if opts.image is None:
            raise InvalidRequest("image is required (a data: URL)", param="image")
        data = decode_data_url(opts.image, "image")
    if len(data) > limit:
        raise PayloadTooLarge(f"the image is over the limit of {limit} bytes")
    return data, opts


@router.post("/explain")
async def explain(request: Request, uid: UserId) -> Any:
    """Explain a meme (multipart ``file``, or JSON ``{"image": "data:..."}``; options
    ``model``, ``vision_model``, ``stream``, ``max_tokens``, ``temperature``, ``seed``,
    ``ocr_engine``). JSON: ``{"object": "meme.explanation", "model", "text", "regions",
    "template", "ocr_engine", "vision", "explanation", "finish_reason", "usage"}``; with
    ``stream``: server-sent events ``start`` (everything but the explanation), ``delta``,
    ``done`` or ``error``."""
    from cove.features.memes.images import load_image

    data, opts = await _explain_input(request)
    settings = get_settings(request)
    engine = opts.ocr_engine or settings.ocr_engine

    def analyse() -> Any:
        im = load_image(data, param="file", max_pixels=settings.meme_max_pixels)
        with get_db(request).session() as s:
            found = service.candidates(s, uid)
        return im, read_meme(im, found, engine, service.descriptions())

    im, reading = await asyncio.to_thread(analyse)
    pipeline = _pipeline(request)
    vision = await describe(pipeline, im, opts.vision_model)
    stream = await start_explanation(pipeline, reading, vision, model=opts.model,
                                     max_tokens=opts.max_tokens, temperature=opts.temperature,
                                     seed=opts.seed, client=client_of(request))
    found = reading.to_dict()
    head = {"model": stream.model, "text": found["text"], "regions": found["regions"],
            "template": found["template"], "ocr_engine": found["engine"],
            "vision": vision.to_dict()}
    if not opts.stream:
        result = await collect_unless_disconnected(request, stream)
        if result is None:
            return Response(status_code=499)
        return {"object": "meme.explanation", **head, "explanation": result.content,
                "finish_reason": result.finish_reason,
                "usage": {"prompt_tokens": result.usage.prompt_tokens,
                          "completion_tokens": result.usage.completion_tokens}}
    await until_admitted(request, stream)

    async def events() -> Any:
        try:
            async for chunk in sse.encode(head, stream):
                yield chunk
        finally:
            stream.cancel()

    return StreamingResponse(events(), media_type="text/event-stream", headers=sse.HEADERS)
