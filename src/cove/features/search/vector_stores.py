"""OpenAI's Files and Vector Stores endpoints over collections, so that the official client's
``files`` and ``vector_stores`` calls work unchanged (shapes from OpenAI's API reference).

A vector store is a collection (``vs_<id>``); a file (``file-<id>``) is kept as uploaded until
deleted, and adding it to a vector store reads it into a document of that collection (at once:
its status is ``completed``, or ``failed`` with ``last_error``). Every object is its owner's:
another account's id is 404. These routes need an account (an API key or a web session).
"""

from __future__ import annotations

import calendar
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.auth.deps import get_db, get_settings
from cove.errors import Conflict, CoveError, NotFound, PayloadTooLarge, Unauthorized
from cove.features.search import service
from cove.features.search.store import Chunk, Collection, Document, StoredFile

router = APIRouter(prefix="/v1")


def unix(t: datetime) -> int:
    return calendar.timegm(t.timetuple())


def owner(request: Request) -> int:
    user_id = getattr(request.state, "user_id", None)
    if user_id is None:
        raise Unauthorized("files and vector stores belong to an account: send its API key")
    return int(user_id)


def number(ref: str, prefix: str, what: str) -> int:
    if ref.startswith(prefix) and ref[len(prefix):].isdigit():
        return int(ref[len(prefix):])
    raise NotFound(f"no {what} {ref!r}", param=f"{what}_id")


def get_file(s: Session, user_id: int, ref: str) -> StoredFile:
    f = s.get(StoredFile, number(ref, "file-", "file"))
    if f is None or f.user_id != user_id:
        raise NotFound(f"no file {ref!r}", param="file_id")
    return f


def get_store(s: Session, user_id: int, ref: str) -> Collection:
    cid = number(ref, "vs_", "vector_store")
    try:
        return service.get_collection(s, user_id, cid)
    except NotFound:
        raise NotFound(f"no vector store {ref!r}", param="vector_store_id") from None


def file_obj(f: StoredFile) -> dict[str, Any]:
    return {"id": f"file-{f.id}", "object": "file", "bytes": f.bytes,
            "created_at": unix(f.created_at), "filename": f.filename, "purpose": f.purpose,
            "status": "processed", "status_details": None}


def store_obj(s: Session, c: Collection) -> dict[str, Any]:
    n = int(s.scalar(select(func.count()).where(Document.collection_id == c.id)) or 0)
    used = int(s.scalar(select(func.coalesce(func.sum(func.length(Chunk.text)), 0))
                        .where(Chunk.collection_id == c.id)) or 0)
    return {"id": f"vs_{c.id}", "object": "vector_store", "created_at": unix(c.created_at),
            "name": c.name, "usage_bytes": used, "status": "completed",
            "file_counts": {"in_progress": 0, "completed": n, "failed": 0, "cancelled": 0,
                            "total": n},
            "last_active_at": unix(c.created_at), "metadata": {}, "expires_after": None,
            "expires_at": None}


def store_file_obj(c: Collection, f: StoredFile, error: CoveError | None = None,
                   created: datetime | None = None) -> dict[str, Any]:
    last_error = None if error is None else {
        "code": "unsupported_file" if error.code == "unsupported_file" else "invalid_file",
        "message": error.message}
    return {"id": f"file-{f.id}", "object": "vector_store.file",
            "created_at": unix(created or f.created_at), "vector_store_id": f"vs_{c.id}",
            "status": "failed" if error else "completed", "last_error": last_error,
            "usage_bytes": f.bytes, "attributes": {}, "chunking_strategy": {
                "type": "static", "static": {"max_chunk_size_tokens": 250,
                                             "chunk_overlap_tokens": 40}}}


def page(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": False}


@router.post("/files")
def upload_file(request: Request, file: Annotated[UploadFile, File()],
                purpose: Annotated[str, Form(max_length=32)] = "assistants") -> dict[str, Any]:
    user_id = owner(request)
    limit = get_settings(request).max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the file is over {limit} bytes (COVE_MAX_UPLOAD_BYTES)")
    name = service.clean_filename(file.filename or "file")
    with get_db(request).session() as s:
        f = StoredFile(user_id=user_id, filename=name, purpose=purpose, bytes=len(data),
                       data=data)
        s.add(f)
        s.flush()
        return file_obj(f)


@router.get("/files")
def list_files(request: Request) -> dict[str, Any]:
    with get_db(request).session() as s:
        rows = s.scalars(select(StoredFile).where(StoredFile.user_id == owner(request))
                         .order_by(StoredFile.id.desc()))
        return page([file_obj(f) for f in rows])


@router.get("/files/{file_id}")
def retrieve_file(file_id: str, request: Request) -> dict[str, Any]:
    with get_db(request).session() as s:
        return file_obj(get_file(s, owner(request), file_id))


@router.get("/files/{file_id}/content")
def file_content(file_id: str, request: Request) -> Response:
    with get_db(request).session() as s:
        return Response(get_file(s, owner(request), file_id).data,
                        media_type="application/octet-stream")


@router.delete("/files/{file_id}")
def delete_file(file_id: str, request: Request) -> dict[str, Any]:
    """Delete a file and the documents read from it in every vector store."""
    with get_db(request).session() as s:
        s.delete(get_file(s, owner(request), file_id))
    return {"id": file_id, "object": "file", "deleted": True}


class NewStore(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, max_length=100)
    file_ids: list[str] = Field(default_factory=list, max_length=500)


class AddFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file_id: str


class StoreSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str | list[str] = Field(max_length=service.MAX_QUERY_CHARS)
    max_num_results: int = Field(10, ge=1, le=50)

    @field_validator("query")
    @classmethod
    def _bounded(cls, v: str | list[str]) -> str | list[str]:
        """The queries together are one search (joined by spaces): as long as a query of the
        other search routes at most."""
        if len(" ".join([v] if isinstance(v, str) else v)) > service.MAX_QUERY_CHARS:
            raise ValueError(f"the query is over {service.MAX_QUERY_CHARS} characters")
        return v


def duplicate(c: Collection, f: StoredFile, e: service.DuplicateDocument) -> Conflict:
    """The 409 for a file whose name and bytes are already in vector store ``c``: it names
    what holds them (another ``file-<id>``, or a document added from the web app)."""
    held = (f"file-{e.file_id}" if e.file_id is not None
            else f"document {e.document_id} ({e.filename!r})")
    return Conflict(f"file-{f.id} ({f.filename!r}) has the same name and bytes as {held}, "
                    f"already in vector store vs_{c.id}; it was not added again",
                    param="file_id", code="duplicate_file")


def attach(request: Request, user_id: int, c: Collection, file_ref: str) -> dict[str, Any]:
    """Read a file into the collection: the ``vector_store.file`` object (``failed`` with
    ``last_error`` for a file Cove cannot read; nothing of it is kept then). The same file
    again: its object as it is (as OpenAI answers). Another file of the same name and bytes
    as one in the store: Conflict (409 ``duplicate_file``), nothing stored twice."""
    db = get_db(request)
    with db.session() as s:
        f = get_file(s, user_id, file_ref)
        known = s.scalar(select(Document).where(Document.collection_id == c.id,
                                                Document.file_id == f.id))
        if known is not None:
            return store_file_obj(c, f, created=known.created_at)
        try:  # before the embedding, which a duplicate would waste
            service.check_new(s, user_id, c.id, f.filename, f.data)
        except service.DuplicateDocument as e:
            raise duplicate(c, f, e) from None
    try:
        settings = get_settings(request)
        prepared = service.prepare(f.filename, f.data, settings.max_upload_bytes,
                                   settings.ocr_engine)
    except CoveError as e:
        return store_file_obj(c, f, e)
    with db.session() as s:
        try:
            d = service.add_document(s, user_id, c.id, prepared)
        except service.DuplicateDocument as e:  # added meanwhile
            raise duplicate(c, f, e) from None
        d.file_id = f.id
        return store_file_obj(c, f, created=d.created_at)


@router.post("/vector_stores")
def create_store(body: NewStore, request: Request) -> dict[str, Any]:
    user_id = owner(request)
    with get_db(request).session() as s:
        base = service.check_name(body.name) if body.name else "vector store"
        name, n = base, 1
        while service.find_collection(s, user_id, name) is not None:
            n += 1
            name = f"{base} ({n})"
        c = service.create_collection(s, user_id, name)
    for ref in body.file_ids:
        try:
            attach(request, user_id, c, ref)
        except Conflict:
            pass  # the same name and bytes as a file listed before it: held once
    with get_db(request).session() as s:
        return store_obj(s, service.get_collection(s, user_id, c.id))


@router.get("/vector_stores")
def list_stores(request: Request) -> dict[str, Any]:
    with get_db(request).session() as s:
        return page([store_obj(s, c) for c in service.list_collections(s, owner(request))])


@router.get("/vector_stores/{store_id}")
def retrieve_store(store_id: str, request: Request) -> dict[str, Any]:
    with get_db(request).session() as s:
        return store_obj(s, get_store(s, owner(request), store_id))


@router.delete("/vector_stores/{store_id}")
def delete_store(store_id: str, request: Request) -> dict[str, Any]:
    user_id = owner(request)
    with get_db(request).session() as s:
        service.delete_collection(s, user_id, get_store(s, user_id, store_id).id)
    return {"id": store_id, "object": "vector_store.deleted", "deleted": True}


@router.post("/vector_stores/{store_id}/files")
def add_store_file(store_id: str, body: AddFile, request: Request) -> dict[str, Any]:
    user_id = owner(request)
    with get_db(request).session() as s:
        c = get_store(s, user_id, store_id)
    return attach(request, user_id, c, body.file_id)


@router.get("/vector_stores/{store_id}/files")
def list_store_files(store_id: str, request: Request) -> dict[str, Any]:
    user_id = owner(request)
    with get_db(request).session() as s:
        c = get_store(s, user_id, store_id)
        rows = s.execute(select(Document, StoredFile).join(
            StoredFile, StoredFile.id == Document.file_id).where(Document.collection_id == c.id)
            .order_by(Document.id.desc())).all()
        return page([store_file_obj(c, f, created=d.created_at) for d, f in rows])


@router.delete("/vector_stores/{store_id}/files/{file_id}")
def remove_store_file(store_id: str, file_id: str, request: Request) -> dict[str, Any]:
    """Take a file out of a vector store (the file itself stays)."""
    user_id = owner(request)
    with get_db(request).session() as s:
        c = get_store(s, user_id, store_id)
        f = get_file(s, user_id, file_id)
        d = s.scalar(select(Document).where(Document.collection_id == c.id,
                                            Document.file_id == f.id))
        if d is None:
            raise NotFound(f"file {file_id!r} is not in vector store {store_id!r}",
                           param="file_id")
        service.delete_document(s, user_id, d.id)
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


@router.post("/vector_stores/{store_id}/search")
def search_store(store_id: str, body: StoreSearch, request: Request) -> dict[str, Any]:
    """``vector_store.search_results.page``: passages best first, ``score`` the fused score."""
    user_id = owner(request)
    queries = [body.query] if isinstance(body.query, str) else body.query
    with get_db(request).session() as s:
        c = get_store(s, user_id, store_id)
        hits = service.search(s, user_id, [c.id], " ".join(queries),
                              limit=body.max_num_results)
        files = dict(s.execute(select(Document.id, Document.file_id).where(
            Document.id.in_({h["document_id"] for h in hits}))).all()) if hits else {}
    return {"object": "vector_store.search_results.page", "search_query": queries,
            "data": [{"file_id": f"file-{files.get(h['document_id'])}",
                      "filename": h["document"], "score": h["score"],
                      "attributes": {"page": h["page"], "heading": h["heading"]},
                      "content": [{"type": "text", "text": h["text"]}]} for h in hits],
            "has_more": False, "next_page": None}
