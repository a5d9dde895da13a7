"""ZIM archives (openZIM's format: Kiwix's Wikipedia, Stack Exchange, Gutenberg packs) read in
place through python-libzim, the only module that imports it.

libzim is GPL-3.0, so it is the optional extra ``cove[zim]`` and never part of the default
install; every entry point here raises :class:`ZimUnavailable` (naming
``pip install 'cove[zim]'``) when it is missing, and :class:`BadPack` when a file is missing,
is not a ZIM archive, or is truncated or corrupt (libzim checks the header, the MIME list, the
cluster pointers and — with :func:`open_archive`'s ``check`` — the MD5 checksum of the whole file).

Full-text search uses the archive's own Xapian index. User text never reaches Xapian's query
syntax: :func:`xapian_words` keeps only its word tokens, lower-cased and joined by spaces (so
no operator, prefix, phrase or wildcard of the user's survives). Archives without a full-text
index fall back to title suggestions (libzim's title index).
Format: https://wiki.openzim.org/wiki/ZIM_file_format; metadata keys:
https://wiki.openzim.org/wiki/Metadata.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.errors import CoveError, InvalidRequest

INSTALL_HINT = "pip install 'cove[zim]'"
ZIM_MAGIC = (72173914).to_bytes(4, "little")  # the first 4 bytes of every ZIM file
_WORD = re.compile(r"\w+", re.UNICODE)


class ZimUnavailable(CoveError):
    """libzim is not installed (HTTP 503; its message says how to install it)."""

    status = 503
    type = "server_error"
    code = "zim_unavailable"
    expose = True


class BadPack(InvalidRequest):
    """A file that cannot be a knowledge pack: missing, not a ZIM, truncated or corrupt."""

    code = "bad_pack"


def _libzim() -> Any:
    try:
        import libzim.reader
        import libzim.search
        import libzim.suggestion
    except ImportError as e:
        raise ZimUnavailable("knowledge packs need libzim (GPL-3.0, an optional extra): "
                             f"{INSTALL_HINT}") from e
    return libzim


def available() -> bool:
    """Whether libzim can be imported."""
    try:
        _libzim()
    except ZimUnavailable:
        return False
    return True


@dataclass(frozen=True)
class Info:
    """A pack's metadata: ``uuid`` (hex), ``name`` (the ``Name`` metadata or ""), ``title``,
    ``language`` (ISO 639-3, possibly comma-separated), ``date`` (``YYYY-MM-DD``),
    ``description``, ``creator``, ``publisher``, ``articles`` (front articles), ``media``,
    ``fulltext`` / ``titles`` (whether it has those indexes), ``bytes`` (file size)."""

    uuid: str
    name: str
    title: str
    language: str
    date: str
    description: str
    creator: str
    publisher: str
    articles: int
    media: int
    fulltext: bool
    titles: bool
    bytes: int


_cache: dict[str, Any] = {}
_lock = threading.Lock()


def open_archive(path: str | Path, check: bool = False) -> Any:
    """The ``libzim.reader.Archive`` of ``path`` (kept open and shared; reading is thread-safe).

    Raises:
        ZimUnavailable: libzim is not installed.
        BadPack: the file is missing, not a ZIM, or (libzim's checks; all of them with
            ``check``) truncated or corrupt.
    """
    lz = _libzim()
    p = Path(path)
    key = str(p.resolve())
    with _lock:
        if key in _cache and not check:
            return _cache[key]
    if not p.is_file():
        raise BadPack(f"no such file: {path}", param="file")
    with p.open("rb") as f:
        if f.read(4) != ZIM_MAGIC:
            raise BadPack(f"{p.name} is not a ZIM archive (wrong magic number)", param="file")
    try:
        archive = lz.reader.Archive(p)
        if check and not archive.check():
            raise BadPack(f"{p.name} is damaged: its checksum does not match (truncated or "
                          "corrupt download?)", param="file")
        archive.main_entry if archive.has_main_entry else None  # noqa: B018 (reads a cluster)
    except BadPack:
        raise
    except Exception as e:  # libzim raises RuntimeError (and others) for broken files
        raise BadPack(f"{p.name} is not a readable ZIM archive (truncated or corrupt?): {e}",
                      param="file") from e
    with _lock:
        _cache[key] = archive
    return archive


def forget(path: str | Path) -> None:
    """Close (drop) the cached archive of ``path``."""
    with _lock:
        _cache.pop(str(Path(path).resolve()), None)


def _meta(archive: Any, key: str) -> str:
    try:
        return bytes(archive.get_metadata(key)).decode("utf-8", "replace").strip()
    except Exception:  # libzim raises RuntimeError for a missing key
        return ""


def info(path: str | Path, check: bool = True) -> Info:
    """The metadata of the pack at ``path``, after (``check``) verifying the whole file's
    checksum (blocking: reads it all once). Raises ZimUnavailable or BadPack like
    :func:`open_archive`."""
    a = open_archive(path, check=check)
    try:
        return Info(uuid=str(a.uuid).replace("-", ""), name=_meta(a, "Name"),
                    title=_meta(a, "Title") or Path(path).stem, language=_meta(a, "Language"),
                    date=_meta(a, "Date"), description=_meta(a, "Description"),
                    creator=_meta(a, "Creator"), publisher=_meta(a, "Publisher"),
                    articles=int(a.article_count), media=int(a.media_count),
                    fulltext=bool(a.has_fulltext_index), titles=bool(a.has_title_index),
                    bytes=Path(path).stat().st_size)
    except Exception as e:
        raise BadPack(f"cannot read the metadata of {Path(path).name}: {e}", param="file") from e


def xapian_words(query: str, limit: int = 12) -> list[str]:
    """The distinct word tokens of ``query`` (at most ``limit``), lower-cased: the only part of
    user text that reaches Xapian (no operator, prefix, phrase or wildcard survives)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:limit]


def _rrf(rankings: list[list[str]], k: int = 60) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, path in enumerate(ranking, start=1):
            scores[path] = scores.get(path, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda p: -scores[p])


def find(path: str | Path, query: str, limit: int = 10) -> list[str]:
    """Paths of the pack's articles best matching ``query``, best first (blocking).

    With a full-text index: libzim's query parser joins words with AND and knows no OR, which
    finds nothing for most questions, so the articles matching all the words are fused (by
    reciprocal rank, the all-words list counted twice) with those matching each word alone
    (words in more than half of the articles, nearly stop words, are left out). Without one,
    or when that finds nothing: title suggestions (libzim's title index), for the whole query
    and for each word.
    """
    lz = _libzim()
    a = open_archive(path)
    words = xapian_words(query)
    if not words:
        return []
    if a.has_fulltext_index:
        searcher = lz.search.Searcher(a)

        def run(text: str) -> tuple[int, list[str]]:
            search = searcher.search(lz.search.Query().set_query(text))
            return search.getEstimatedMatches(), [str(p) for p in search.getResults(0, limit)]

        _, both = run(" ".join(words))
        lists = [both, both]
        if len(words) > 1:
            common = max(10, a.article_count // 2)
            for w in words:
                n, found = run(w)
                if n <= common:
                    lists.append(found)
        fused = _rrf(lists)
        if fused:
            return fused[:limit]
    if not a.has_title_index:
        return []
    out: dict[str, None] = {}
    suggester = lz.suggestion.SuggestionSearcher(a)
    for text in [" ".join(words), *words]:
        for p in suggester.suggest(text).getResults(0, limit):
            out.setdefault(str(p), None)
        if len(out) >= limit:
            break
    return list(out)[:limit]


@dataclass(frozen=True)
class Content:
    """An entry's bytes: ``path`` (after redirects), ``title``, ``mimetype``, ``data``."""

    path: str
    title: str
    mimetype: str
    data: bytes


def read(path: str | Path, entry_path: str, max_redirects: int = 8) -> Content | None:
    """The entry ``entry_path`` of the pack (redirects followed), or None when it has none.
    Blocking; raises ZimUnavailable or BadPack like :func:`open_archive`."""
    a = open_archive(path)
    if not a.has_entry_by_path(entry_path):
        return None
    entry = a.get_entry_by_path(entry_path)
    for _ in range(max_redirects):
        if not entry.is_redirect:
            break
        entry = entry.get_redirect_entry()
    if entry.is_redirect:
        return None
    item = entry.get_item()
    return Content(str(entry.path), str(entry.title), str(item.mimetype), bytes(item.content))


def main_path(path: str | Path) -> str | None:
    """The path of the pack's main page (redirects followed), or None."""
    a = open_archive(path)
    if not a.has_main_entry:
        return None
    entry = a.main_entry
    return str(entry.get_item().path if entry.is_redirect else entry.path)
