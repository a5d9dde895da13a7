"""Knowledge packs: ZIM archives an admin registers (shared by every user, guests included),
read in place, searched with their own index, their passages ranked like documents'.

Search (:func:`search_packs`) takes the best ``articles`` articles of each pack from its
full-text index (or its title index when it has none; :func:`cove.features.search.zim.find`),
splits each into its sections (at HTML headings, as documents are), keeps the sections sharing
the most words with the query, cuts those into chunks (:mod:`.chunking`), and ranks the chunks
with the scorer of documents: reciprocal rank fusion of a keyword rank (BM25 over the candidate
chunks, :func:`.index.text_ranks`) and a vector rank (the core embedder, cosine). Passages have
the shape of :mod:`.sources` (``kind`` ``"pack"``, ``title``, ``url``, ``text``, ``snippet``,
``score``) plus the citation: ``pack``, ``pack_title``, ``date``, ``path``, ``heading``.
:func:`kind_search` and :func:`kind_available` are the ``packs`` kind of :mod:`.sources`.

Everything here but those two is blocking (file reads, CPU): call it from a worker thread.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.errors import Conflict, InvalidRequest, NotFound
from cove.features.search import chunking, index, zim
from cove.features.search.extract import decode_text, html_sections
from cove.features.search.store import Pack
from cove.features.search.web import snippet_of

if TYPE_CHECKING:
    from cove.features.search.sources import Context

MAX_ARTICLE_CHARS = 300_000  # of an article's text read for search
SECTIONS_PER_ARTICLE = 6
_NAME = re.compile(r"[^a-z0-9._-]+")
_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
_vectors_lock = threading.Lock()
VECTOR_CACHE = 20_000  # chunk vectors kept in memory (about 20 MB)


def slug(text: str) -> str:
    """A pack name for URLs: lower-case letters, digits, ``.``, ``_``, ``-`` (at most 100)."""
    return _NAME.sub("-", text.lower()).strip("-._")[:100] or "pack"


def pack_dict(p: Pack) -> dict[str, Any]:
    """A pack as the API lists it (``available``: its file is still where it was added)."""
    return {"name": p.name, "title": p.title, "language": p.language, "date": p.date,
            "description": p.description, "creator": p.creator, "publisher": p.publisher,
            "articles": p.articles, "media": p.media, "fulltext": p.fulltext,
            "bytes": p.bytes, "url": f"/knowledge/{p.name}/",
            "available": Path(p.path).is_file(),
            "created_at": p.created_at.isoformat() + "Z"}


def add_pack(s: Session, path: str | Path, name: str | None = None,
             added_by: int | None = None, verify: bool = True) -> Pack:
    """Register the ZIM archive at ``path`` (read in place; its absolute path is stored).
    ``verify`` checks the whole file's checksum first (reads it all once).

    Raises:
        ZimUnavailable: libzim is not installed.
        BadPack: missing, not a ZIM, truncated or corrupt.
        Conflict: the archive (same UUID or file), or the name, is already registered.
        InvalidRequest: a name that slugs to nothing usable.
    """
    p = Path(path).expanduser().resolve()
    info = zim.info(p, check=verify)
    same = s.scalar(select(Pack).where((Pack.uuid == info.uuid) | (Pack.path == str(p))))
    if same is not None:
        raise Conflict(f"this archive is already registered as pack {same.name!r}",
                       param="file", code="duplicate_pack")
    wanted = slug(name) if name else slug(info.name or info.title or p.stem)
    if name and wanted != name:
        raise InvalidRequest(f"a pack name is lower-case letters, digits, '.', '_' and '-' "
                             f"(for example {wanted!r})", param="name")
    taken = {n for (n,) in s.execute(select(Pack.name))}
    if name and wanted in taken:
        raise Conflict(f"a pack named {wanted!r} already exists", param="name")
    base, n = wanted, 2
    while wanted in taken:
        wanted, n = f"{base[:95]}-{n}", n + 1
    pack = Pack(name=wanted, uuid=info.uuid, path=str(p), title=info.title,
                language=info.language, date=info.date, description=info.description,
                creator=info.creator, publisher=info.publisher, articles=info.articles,
                media=info.media, fulltext=info.fulltext, bytes=info.bytes, added_by=added_by)
    s.add(pack)
    s.flush()
    return pack


def list_packs(s: Session) -> list[Pack]:
    return list(s.scalars(select(Pack).order_by(Pack.name)))


def get_pack(s: Session, name: str) -> Pack:
    """The pack ``name``. Raises NotFound."""
    p = s.scalar(select(Pack).where(Pack.name == name))
    if p is None:
        raise NotFound(f"no knowledge pack {name!r}", param="pack")
    return p


def remove_pack(s: Session, name: str) -> Pack:
    """Unregister the pack ``name`` (the file itself is left alone). Raises NotFound."""
    p = get_pack(s, name)
    s.delete(p)
    zim.forget(p.path)
    return p


def _cached_vectors(texts: list[str]) -> np.ndarray:
    """Embeddings of ``texts``, from a bounded in-memory cache where possible (articles come
    back for related questions; re-embedding them would dominate the search time)."""
    with _vectors_lock:
        have = {t: _vectors[t] for t in texts if t in _vectors}
    missing = list(dict.fromkeys(t for t in texts if t not in have))
    if missing:
        fresh = index.embed(missing)
        with _vectors_lock:
            for t, v in zip(missing, fresh, strict=True):
                _vectors[t] = have[t] = v
            while len(_vectors) > VECTOR_CACHE:
                _vectors.popitem(last=False)
    return np.stack([have[t] for t in texts]) if texts else np.zeros((0, 1), np.float32)


def article_sections(pack: Pack, path: str) -> tuple[str, list[tuple[str, str]]] | None:
    """``(title, [(heading path, text)])`` of the article ``path`` (redirects followed), or
    None when it is missing or not HTML/text."""
    c = zim.read(pack.path, path)
    if c is None or not c.mimetype.startswith(("text/html", "text/plain")):
        return None
    text = decode_text(c.data[: MAX_ARTICLE_CHARS * 4], c.path)[:MAX_ARTICLE_CHARS]
    if c.mimetype.startswith("text/html"):
        sections = [(" > ".join(x.heading), x.text) for x in html_sections(text)]
    else:
        sections = [("", text)]
    return c.title or c.path, [(h, t) for h, t in sections if t.strip()]


def _best_sections(sections: list[tuple[str, str]], query: str) -> list[tuple[str, str]]:
    """The article's lead section and the sections sharing most words with ``query``."""
    if len(sections) <= SECTIONS_PER_ARTICLE:
        return sections
    terms = set(index.words(query))
    score = [len(terms & {w.lower() for w in re.findall(r"\w+", h + " " + t)})
             for h, t in sections]
    keep = sorted(range(1, len(sections)), key=lambda i: -score[i])[:SECTIONS_PER_ARTICLE - 1]
    return [sections[i] for i in sorted({0, *keep})]


def candidates(pack: Pack, query: str, articles: int) -> list[dict[str, Any]]:
    """Chunks of the best sections of the pack's best ``articles`` articles for ``query``."""
    out: list[dict[str, Any]] = []
    for path in zim.find(pack.path, query, articles):
        found = article_sections(pack, path)
        if found is None:
            continue
        title, sections = found
        for heading, text in _best_sections(sections, query):
            for start, end in chunking.split(text):
                out.append({"kind": "pack", "title": title, "pack": pack.name,
                            "pack_title": pack.title, "date": pack.date, "path": path,
                            "heading": heading, "text": text[start:end],
                            "url": f"/knowledge/{pack.name}/{quote(path)}"})
    return out


def search_packs(s: Session, query: str, packs: list[str] | None = None, limit: int = 5,
                 articles: int = 8, depth: int = 50) -> list[dict[str, Any]]:
    """The best ``limit`` passages for ``query`` in the named packs (None: all), best first,
    in the shape of :mod:`.sources`: ``[{"kind": "pack", "title" (the article's), "url"
    (``/knowledge/<pack>/<path>``), "text", "snippet", "score", "pack", "pack_title", "date",
    "path", "heading"}]``. A pack whose file has gone missing or broken is skipped (the others
    still answer).

    Raises:
        InvalidRequest: an empty query.
        NotFound: a pack name not registered.
        ZimUnavailable: libzim is not installed (and there are packs to search).
    """
    if not query.strip():
        raise InvalidRequest("the search query is empty", param="query")
    chosen = list_packs(s) if packs is None else [get_pack(s, n) for n in dict.fromkeys(packs)]
    pool: list[dict[str, Any]] = []
    for pack in chosen:
        try:
            pool.extend(candidates(pack, query, articles))
        except zim.BadPack:
            continue
    if not pool:
        return []
    texts = [c["text"] for c in pool]
    vector = index.embed([query])[0]
    passages = [index.passage_text(c["heading"], c["text"]) for c in pool]
    fused = index.fuse(index.text_ranks(texts, query, depth),
                       index.cosine_ranks(_cached_vectors(passages), vector, depth))[:limit]
    return [{**pool[i], "snippet": snippet_of(pool[i]["text"], query), "score": round(score, 6)}
            for i, score in fused]


def pack_names(value: Any) -> list[str] | None:
    """The packs a request names: ``true`` (every pack: None) or a list of 1 to 100 names.

    Raises:
        InvalidRequest: anything else.
    """
    if value is True:
        return None
    if isinstance(value, list) and 1 <= len(value) <= 100 and all(
            isinstance(n, str) for n in value):
        return list(value)
    raise InvalidRequest("packs is true (every pack) or a list of 1 to 100 pack names",
                         param="cove.search.packs")


async def kind_search(ctx: Context, value: Any, query: str,
                      limit: int) -> list[dict[str, Any]]:
    """The ``packs`` kind of :mod:`.sources` (guests may use it)."""
    names = pack_names(value)

    def run() -> list[dict[str, Any]]:
        with ctx.db.session() as s:
            return search_packs(s, query, names, limit=limit)

    return await asyncio.to_thread(run)


async def kind_available(ctx: Context) -> list[dict[str, Any]] | None:
    """The packs on offer (``[{"name", "title", "language", "date", "articles"}]``), or None
    when there are none."""
    def names() -> list[dict[str, Any]]:
        with ctx.db.session() as s:
            return [{k: d[k] for k in ("name", "title", "language", "date", "articles")}
                    for d in map(pack_dict, list_packs(s))]

    found = await asyncio.to_thread(names)
    return found or None
