"""Collections, documents and search for one user (no HTTP). Functions take an open
:class:`~sqlalchemy.orm.Session` (the caller commits) and the owner's ``user_id``; another user's
collection or document is reported as not found, never as forbidden.

Ingest (:func:`prepare` then :func:`add_document`) is all or nothing per document: extraction,
splitting and embedding happen first, outside the database, and the document row with all its
chunks is then written in the caller's one transaction. Both are blocking (CPU work): call them
from a worker thread, never on the event loop.

A collection holds a file once: adding a file of the same name and bytes (SHA-256) again
raises :class:`DuplicateDocument` (409), naming the document already there, and stores nothing
(every surface shares this: the web upload, the vector-store routes, ``cove knowledge add``).
Check with :func:`check_new` before :func:`prepare` to spare the embedding;
:func:`add_document` checks again in its transaction.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from cove import embeddings
from cove.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from cove.features.search import chunking, index
from cove.features.search.extract import Extracted, extract
from cove.features.search.store import Chunk, Collection, Document, StoredFile

MAX_NAME = 100
SNIPPET = 300


class DuplicateDocument(Conflict):
    """The collection already holds a document of this name with these bytes (HTTP 409, code
    ``duplicate_document``, param ``file``). ``document_id``, ``filename``, ``file_id``: that
    document's (``file_id``: the ``/v1/files`` file it was read from, or None)."""

    code = "duplicate_document"

    def __init__(self, existing: Document, collection: Collection) -> None:
        # plain values: the session that found them is rolled back as this propagates
        self.document_id, self.filename, self.file_id = (
            existing.id, existing.filename, existing.file_id)
        super().__init__(f"{existing.filename!r} is already in collection {collection.name!r} "
                         f"(document {existing.id}, the same bytes); it was not added again",
                         param="file")


@dataclass
class Prepared:
    """A document ready to store: its extraction, chunk rows (without ids) and vectors."""

    filename: str
    data_bytes: int
    sha256: str
    extracted: Extracted
    chars: int
    chunks: list[dict[str, Any]]
    vectors: np.ndarray


def check_name(name: str) -> str:
    """A collection name, trimmed. Raises InvalidRequest when empty or over 100 characters."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise InvalidRequest("a collection name is 1 to 100 printable characters",
                             param="name")
    return name


def collection_dict(s: Session, c: Collection) -> dict[str, Any]:
    docs = s.scalar(select(func.count()).where(Document.collection_id == c.id)) or 0
    return {"id": c.id, "name": c.name, "documents": int(docs),
            "created_at": c.created_at.isoformat() + "Z"}


def document_dict(d: Document) -> dict[str, Any]:
    return {"id": d.id, "collection_id": d.collection_id, "filename": d.filename,
            "kind": d.kind, "bytes": d.bytes, "sha256": d.sha256, "pages": d.pages,
            "chars": d.chars, "notes": json.loads(d.notes),
            "created_at": d.created_at.isoformat() + "Z"}


def create_collection(s: Session, user_id: int, name: str) -> Collection:
    """A new collection. Raises Conflict when the user already has one of that name."""
    name = check_name(name)
    if find_collection(s, user_id, name) is not None:
        raise Conflict(f"you already have a collection named {name!r}", param="name")
    c = Collection(user_id=user_id, name=name)
    s.add(c)
    s.flush()
    return c


def find_collection(s: Session, user_id: int, name: str) -> Collection | None:
    return s.scalar(select(Collection).where(Collection.user_id == user_id,
                                             Collection.name == name.strip()))


def get_collection(s: Session, user_id: int, collection_id: int) -> Collection:
    """The user's collection ``collection_id``. Raises NotFound (also for another user's)."""
    c = s.get(Collection, collection_id)
    if c is None or c.user_id != user_id:
        raise NotFound(f"collection {collection_id} not found", param="collection_id")
    return c


def list_collections(s: Session, user_id: int) -> list[Collection]:
    return list(s.scalars(select(Collection).where(Collection.user_id == user_id)
                          .order_by(Collection.name)))


def delete_collection(s: Session, user_id: int, collection_id: int) -> None:
    """Delete a collection with its documents, chunks, vectors and index entries."""
    c = get_collection(s, user_id, collection_id)
    s.execute(delete(Chunk).where(Chunk.collection_id == c.id))
    s.execute(delete(Document).where(Document.collection_id == c.id))
    s.delete(c)


def get_document(s: Session, user_id: int, document_id: int) -> Document:
    """The user's document ``document_id``. Raises NotFound (also for another user's)."""
    d = s.get(Document, document_id)
    if d is None or d.user_id != user_id:
        raise NotFound(f"document {document_id} not found", param="document_id")
    return d


def list_documents(s: Session, user_id: int, collection_id: int) -> list[Document]:
    c = get_collection(s, user_id, collection_id)
    return list(s.scalars(select(Document).where(Document.collection_id == c.id)
                          .order_by(Document.id)))


def delete_document(s: Session, user_id: int, document_id: int) -> None:
    """Delete a document with its chunks, vectors and index entries."""
    d = get_document(s, user_id, document_id)
    s.execute(delete(Chunk).where(Chunk.document_id == d.id))
    s.delete(d)


MAX_QUERY_CHARS = 4000  # the longest search query of every search route
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_filename(filename: str) -> str:
    """The name a file is stored under: its last path part (``/`` or ``\\``), control
    characters (NUL, line breaks, ...) dropped, trimmed, at most 255 characters, ``document``
    when nothing is left."""
    name = _CONTROL.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()[:255]
    return name or "document"


def find_duplicate(s: Session, collection_id: int, filename: str,
                   sha256: str) -> Document | None:
    """The collection's document named ``filename`` (as :func:`clean_filename` makes it) with
    content hash ``sha256`` (hex), if any."""
    return s.scalar(select(Document).where(
        Document.collection_id == collection_id, Document.filename == clean_filename(filename),
        Document.sha256 == sha256).order_by(Document.id).limit(1))


def check_new(s: Session, user_id: int, collection_id: int, filename: str,
              data: bytes) -> None:
    """Raise :class:`DuplicateDocument` when the user's collection already holds ``data``
    under ``filename`` (NotFound for a collection that is not the user's)."""
    c = get_collection(s, user_id, collection_id)
    found = find_duplicate(s, c.id, filename, hashlib.sha256(data).hexdigest())
    if found is not None:
        raise DuplicateDocument(found, c)


def prepare(filename: str, data: bytes, max_bytes: int, ocr_engine: str = "auto") -> Prepared:
    """Extract, split and embed a file (blocking, and for a scanned PDF read by OCR with
    ``ocr_engine`` CPU-heavy for up to minutes: see :mod:`.scans`; no database).

    Raises:
        PayloadTooLarge: ``data`` over ``max_bytes``.
        InvalidRequest: an unsupported, lying, corrupt or empty file.
    """
    name = clean_filename(filename)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{name!r} is {len(data)} bytes; the limit is {max_bytes} "
                              "(COVE_MAX_UPLOAD_BYTES)")
    extracted = extract(data, name, ocr_engine)
    chunks: list[dict[str, Any]] = []
    offset = 0
    for section in extracted.sections:
        offset = offset if section.offset is None else section.offset
        for start, end in chunking.split(section.text):
            chunks.append({"text": section.text[start:end], "page": section.page,
                           "heading": " > ".join(section.heading),
                           "start": offset + start, "end": offset + end})
        offset += len(section.text) + (2 if section.offset is None else 0)  # see Section
    if not chunks:
        why = "; ".join(extracted.notes) or "it holds no text"
        raise InvalidRequest(f"{name!r} has no text to search ({why})", param="file",
                             code="empty_file")
    vectors = index.embed([index.passage_text(c["heading"], c["text"]) for c in chunks])
    return Prepared(name, len(data), hashlib.sha256(data).hexdigest(), extracted,
                    sum(len(x.text) for x in extracted.sections), chunks, vectors)


def add_document(s: Session, user_id: int, collection_id: int, p: Prepared) -> Document:
    """Store a prepared document and its chunks in the user's collection (in ``s``'s
    transaction: nothing is kept if it fails).

    Raises:
        NotFound: a collection that is not the user's.
        DuplicateDocument: the collection already holds this file (name and bytes).
    """
    c = get_collection(s, user_id, collection_id)
    found = find_duplicate(s, c.id, p.filename, p.sha256)
    if found is not None:
        raise DuplicateDocument(found, c)
    d = Document(user_id=user_id, collection_id=c.id, filename=p.filename,
                 kind=p.extracted.kind, bytes=p.data_bytes, sha256=p.sha256,
                 pages=p.extracted.pages, chars=p.chars, notes=json.dumps(p.extracted.notes))
    s.add(d)
    s.flush()
    # one executemany, not an ORM object per chunk (half the time of an ingest's writes)
    s.execute(insert(Chunk), [
        {"user_id": user_id, "collection_id": c.id, "document_id": d.id, "ordinal": i,
         "embedder": index.EMBEDDER, "dim": embeddings.DIMENSIONS, "vector": v.tobytes(), **row}
        for i, (row, v) in enumerate(zip(p.chunks, p.vectors, strict=True))])
    return d


def snippet(text: str, limit: int = SNIPPET) -> str:
    """``text`` cut to about ``limit`` characters at a word boundary."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def search(s: Session, user_id: int, collection_ids: list[int], query: str,
           limit: int = 5, depth: int = 50) -> list[dict[str, Any]]:
    """The best ``limit`` passages for ``query`` in the user's collections: ``[{"chunk_id",
    "document_id", "document", "collection_id", "page", "heading", "start", "end", "text",
    "snippet", "score"}]``, best first (``score``: reciprocal rank fusion of the top ``depth``
    keyword and vector ranks). Stale vectors are re-embedded first.

    Raises:
        NotFound: a collection that is not the user's.
    """
    ids = [get_collection(s, user_id, cid).id for cid in dict.fromkeys(collection_ids)]
    if not query.strip():
        raise InvalidRequest("the search query is empty", param="query")
    index.reembed_stale(s, ids)
    fused = index.fuse(index.keyword_ranks(s, ids, query, depth),
                       index.vector_ranks(s, ids, query, depth))[:limit]
    if not fused:
        return []
    rows = {c.id: (c, d) for c, d in s.execute(
        select(Chunk, Document).join(Document, Document.id == Chunk.document_id)
        .where(Chunk.id.in_([cid for cid, _ in fused])))}
    return [{"chunk_id": c.id, "document_id": d.id, "document": d.filename,
             "collection_id": c.collection_id, "page": c.page, "heading": c.heading,
             "start": c.start, "end": c.end, "text": c.text, "snippet": snippet(c.text),
             "score": round(score, 6)}
            for cid, score in fused if cid in rows for c, d in [rows[cid]]]


def export(s: Session, user_id: int) -> dict[str, Any]:
    """Everything of the user's collections for the data export: ``{"collections": [{...,
    "documents": [{..., "chunks": [{"text", "page", "heading", "start", "end"}]}]}],
    "files": [{"id", "filename", "purpose", "bytes", "created_at", "content_base64"}]}`` (files
    uploaded through ``/v1/files``)."""
    out = []
    for c in list_collections(s, user_id):
        docs = []
        for d in list_documents(s, user_id, c.id):
            chunks = s.scalars(select(Chunk).where(Chunk.document_id == d.id)
                               .order_by(Chunk.ordinal))
            docs.append({**document_dict(d), "chunks": [
                {"text": k.text, "page": k.page, "heading": k.heading, "start": k.start,
                 "end": k.end} for k in chunks]})
        out.append({"id": c.id, "name": c.name, "created_at": c.created_at.isoformat() + "Z",
                    "documents": docs})
    files = [{"id": f"file-{f.id}", "filename": f.filename, "purpose": f.purpose,
              "bytes": f.bytes, "created_at": f.created_at.isoformat() + "Z",
              "content_base64": base64.b64encode(f.data).decode()}
             for f in s.scalars(select(StoredFile).where(StoredFile.user_id == user_id)
                                .order_by(StoredFile.id))]
    return {"collections": out, "files": files}
