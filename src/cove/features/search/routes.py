"""``/web/knowledge`` JSON routes: collections, documents (multipart upload), search; and
``/web/search``: what the caller may search (for the web app's Search switch) and one search
across your collections, the web and knowledge packs (guests: the web and packs).

Signed-in users only (a web session or an API key); every collection and document is its
owner's: another user's answers 404 on every route. The handlers are plain ``def`` so FastAPI
runs them in its worker threads: extraction and embedding never block the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool

from cove.auth.deps import CallerDep, DbDep, SettingsDep, UserDep, check_origin, get_db
from cove.errors import PayloadTooLarge, Unauthorized
from cove.features.search import service, sources

router = APIRouter(prefix="/web/knowledge")
search_router = APIRouter(prefix="/web/search")


class NewCollection(BaseModel):
    name: str = Field(max_length=1000)


class SearchBody(BaseModel):
    query: str = Field(min_length=1, max_length=service.MAX_QUERY_CHARS)
    collections: list[int] = Field(min_length=1, max_length=100)
    limit: int = Field(5, ge=1, le=50)


@router.get("/collections")
def list_collections(user: UserDep, s: DbDep) -> dict[str, Any]:
    return {"collections": [service.collection_dict(s, c)
                            for c in service.list_collections(s, user.id)]}


@router.post("/collections", status_code=201)
def create_collection(body: NewCollection, user: UserDep, s: DbDep) -> dict[str, Any]:
    return service.collection_dict(s, service.create_collection(s, user.id, body.name))


@router.get("/collections/{collection_id}")
def get_collection(collection_id: int, user: UserDep, s: DbDep) -> dict[str, Any]:
    c = service.get_collection(s, user.id, collection_id)
    return {**service.collection_dict(s, c), "items": [
        service.document_dict(d) for d in service.list_documents(s, user.id, c.id)]}


@router.delete("/collections/{collection_id}")
def delete_collection(collection_id: int, user: UserDep, s: DbDep) -> dict[str, Any]:
    service.delete_collection(s, user.id, collection_id)
    return {"ok": True, "deleted": collection_id}


@router.post("/collections/{collection_id}/documents", status_code=201)
def upload(collection_id: int, file: Annotated[UploadFile, File()], request: Request,
           user: UserDep, settings: SettingsDep) -> Any:
    """Add one file (multipart field ``file``): 201 with the document, or the error of the
    file (nothing of it is kept). The same file (name and bytes) added again to the
    collection: 409 ``duplicate_document``, its message naming the document already there
    (as Open WebUI refuses duplicate content in a knowledge base)."""
    db = get_db(request)
    with db.session() as s:  # 404 before reading a byte of another user's collection
        service.get_collection(s, user.id, collection_id)
    limit = settings.max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{file.filename!r} is over the limit of {limit} bytes "
                              "(COVE_MAX_UPLOAD_BYTES)")
    name = file.filename or "document"
    with db.session() as s:  # before the embedding, which a duplicate would waste
        service.check_new(s, user.id, collection_id, name, data)
    prepared = service.prepare(name, data, limit, settings.ocr_engine)
    with db.session() as s:
        d = service.add_document(s, user.id, collection_id, prepared)
        out = service.document_dict(d)
    return JSONResponse(
        {**out, "chunks": len(prepared.chunks)}, status_code=201)


@router.get("/documents/{document_id}")
def get_document(document_id: int, user: UserDep, s: DbDep) -> dict[str, Any]:
    return service.document_dict(service.get_document(s, user.id, document_id))


@router.delete("/documents/{document_id}")
def delete_document(document_id: int, user: UserDep, s: DbDep) -> dict[str, Any]:
    service.delete_document(s, user.id, document_id)
    return {"ok": True, "deleted": document_id}


@router.post("/search")
def search(body: SearchBody, user: UserDep, s: DbDep) -> dict[str, Any]:
    """``{"query", "results": [passage, ...]}`` (see :func:`service.search`)."""
    return {"query": body.query, "results": service.search(
        s, user.id, body.collections, body.query, limit=body.limit)}


class AnySearch(BaseModel):
    query: str = Field(min_length=1, max_length=service.MAX_QUERY_CHARS)
    collections: list[int] | StrictBool | None = None
    web: StrictBool = False
    packs: Any = None
    limit: int = Field(5, ge=1, le=20)


def _context(request: Request, who: CallerDep, settings: SettingsDep) -> sources.Context:
    if who.user is None and not settings.guest_enabled:
        raise Unauthorized("sign in first")
    return sources.Context(get_db(request), settings, who.user.id if who.user else None)


@search_router.get("/sources")
async def search_sources(request: Request, who: CallerDep,
                         settings: SettingsDep) -> dict[str, Any]:
    """``{"collections": [{"id", "name"}] | null, "web": true | null, "packs": ...}``: what
    the caller may choose for an answer with sources (null: not offered)."""
    return await sources.available(_context(request, who, settings))


@search_router.post("")
async def search_everything(body: AnySearch, request: Request, who: CallerDep,
                            settings: SettingsDep) -> dict[str, Any]:
    """``{"query", "results": [passage, ...]}`` (passages of every kind asked, merged; see
    :mod:`.sources`). A web search that fails is the error (502 ``web_search_failed``)."""
    check_origin(request)
    ctx = _context(request, who, settings)
    found = await sources.gather(ctx, {"collections": body.collections or None,
                                       "web": body.web or None, "packs": body.packs or None},
                                 body.query, body.limit, strict=True)
    return {"query": body.query, "results": found.passages}
