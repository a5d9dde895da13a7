"""Web search through the operator's SearXNG instance (``COVE_SEARXNG_URL``; off when unset).

:func:`search` asks SearXNG's JSON API (``GET <base>/search?format=json&q=...``, documented at
https://docs.searxng.org/dev/search_api.html; the instance must list ``json`` in
``search.formats``) and turns its ``results`` (``url``, ``title``, ``content``) into passages
of the common shape (:mod:`cove.features.search.sources`): ``kind`` ``"web"``, ``title``,
``url``, ``text``, ``snippet``, ``score``, ``engine``, ``fetched``. With
``COVE_SEARCH_FETCH_PAGES`` the top result pages are fetched too and each passage becomes the
page's best-matching piece of text (extracted as HTML documents are,
:func:`cove.features.search.extract.html_sections`).

Egress: the process-wide guard (:mod:`cove.privacy`) refuses everything non-local; a search
lets out exactly SearXNG's host for its own duration, and each page's host only for that
page's fetch. Pages are fetched only from public addresses (a result pointing at this machine
or the private network is skipped: no request forgery through search results; the name is
resolved once for that check and again by the HTTP client, so a name whose answer changes in
between — DNS rebinding — is the one gap left) and redirects are not followed. Everything
is bounded: the whole search by ``COVE_SEARCH_WEB_TIMEOUT`` seconds, SearXNG's answer by
:data:`MAX_RESULTS_BYTES`, a page by :data:`MAX_PAGE_BYTES`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import re
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx

from cove.config import Settings
from cove.errors import InvalidRequest, WebSearchFailed
from cove.features.search import chunking
from cove.features.search.extract import html_sections
from cove.privacy import egress_allowed

MAX_RESULTS_BYTES = 2 * 1024 * 1024
MAX_PAGE_BYTES = 2 * 1024 * 1024
MAX_PAGES = 3  # result pages fetched per search
USER_AGENT = "Cove web search"
_WORD = re.compile(r"\w+", re.UNICODE)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every search (building one costs about 0.3 s of CPU): the system's
    defaults with certifi's roots, as httpx builds it."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False,
                             verify=_tls(), headers={"User-Agent": USER_AGENT})


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def enabled(settings: Settings) -> bool:
    return settings.searxng_url is not None


def snippet_of(text: str, query: str, width: int = 300) -> str:
    """The ``width``-character window of ``text`` (whitespace collapsed) holding the most words
    of ``query``, cut at word boundaries; the whole text when it is shorter."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    terms = {w.lower() for w in _WORD.findall(query) if len(w) > 2}
    best, best_key = 0, (-1, 0)
    for m in re.finditer(r"(?:^|(?<=[.!?] ))\S", flat):  # sentence starts
        window = flat[m.start():m.start() + width].lower()
        found = [window.find(t) for t in terms if t in window]
        key = (len(found), -min(found, default=width))  # most words, then the earliest
        if key > best_key:
            best, best_key = m.start(), key
    out = flat[best:best + width]
    if best + width < len(flat):
        out = out.rsplit(" ", 1)[0] + " …"
    return out


async def _read_capped(response: httpx.Response, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise WebSearchFailed(f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_results(data: bytes) -> list[dict[str, str]]:
    """SearXNG's JSON answer as ``[{"url", "title", "content", "engine"}]`` (http and https
    results with a host only, each URL once, in SearXNG's order; a URL that does not parse
    is left out).

    Raises:
        WebSearchFailed: not JSON, or not an object with a ``results`` list.
    """
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise WebSearchFailed("SearXNG answered something that is not JSON (is json in "
                              "search.formats of its settings.yml?)") from None
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise WebSearchFailed("SearXNG's answer has no results list")
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for r in body["results"]:
        if not isinstance(r, dict) or not isinstance(r.get("url"), str):
            continue
        url = r["url"].strip()
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:  # e.g. "http://[oops" (an unclosed IPv6 literal)
            continue
        if parts.scheme not in ("http", "https") or not host or url in seen:
            continue
        seen.add(url)
        title, content, engine = (r[k].strip() if isinstance(r.get(k), str) else ""
                                  for k in ("title", "content", "engine"))
        out.append({"url": url, "title": title[:300] or url, "content": content[:2000],
                    "engine": engine[:50]})
    return out


async def ask_searxng(base: str, query: str, timeout: float) -> list[dict[str, str]]:
    """SearXNG's results for ``query`` (see :func:`parse_results`).

    Raises:
        WebSearchFailed: unreachable, an HTTP error status, too large, or garbage.
    """
    host = host_of(base)
    with egress_allowed(host):
        try:
            async with _client(timeout) as client:
                async with client.stream("GET", base + "/search",
                                         params={"q": query, "format": "json"}) as r:
                    if r.status_code == 403:
                        raise WebSearchFailed("SearXNG refused the JSON format (HTTP 403): "
                                              "add json to search.formats in its settings.yml")
                    if r.status_code != 200:
                        raise WebSearchFailed(f"SearXNG answered HTTP {r.status_code}")
                    data = await _read_capped(r, MAX_RESULTS_BYTES, "SearXNG's answer")
        except httpx.HTTPError as e:
            raise WebSearchFailed(f"SearXNG at {host} could not be reached "
                                  f"({type(e).__name__})") from None
    return parse_results(data)


def public_address(ip: str) -> bool:
    """Whether a page at ``ip`` may be fetched: only globally routable addresses."""
    return ipaddress.ip_address(ip.split("%", 1)[0]).is_global


def _resolves_public(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(public_address(str(i[4][0])) for i in infos)


def page_text(html: bytes) -> str:
    """The visible text of an HTML page (decoded as UTF-8, bad bytes replaced)."""
    sections = html_sections(html.decode("utf-8", errors="replace"))
    return "\n\n".join(s.text for s in sections if s.text.strip())


def best_piece(text: str, query: str) -> str:
    """The chunk of ``text`` (split as documents are) sharing the most words with ``query``."""
    terms = {w.lower() for w in _WORD.findall(query) if len(w) > 2}
    pieces = [text[a:b] for a, b in chunking.split(text)] or [text]
    return max(pieces, key=lambda p: sum(1 for t in terms if t in p.lower()))


async def fetch_page(url: str, timeout: float) -> str | None:
    """The visible text of the page at ``url``, or None when it is not a public address, not
    HTML, too large, a redirect, an error, or unreachable (pages are a bonus: SearXNG's snippet
    stands in)."""
    parts = urlsplit(url)
    host = host_of(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with egress_allowed(host):
        if not await asyncio.to_thread(_resolves_public, host, port):
            return None
        try:
            async with _client(timeout) as client:
                async with client.stream("GET", url) as r:
                    ctype = r.headers.get("content-type", "").lower()
                    if r.status_code != 200 or "html" not in ctype:
                        return None
                    data = await _read_capped(r, MAX_PAGE_BYTES, "the page")
        except (httpx.HTTPError, WebSearchFailed):
            return None
    return await asyncio.to_thread(page_text, data)


async def search(settings: Settings, query: str, limit: int = 5) -> list[dict[str, Any]]:
    """The web passages for ``query``, best first (at most ``limit``).

    Raises:
        InvalidRequest: web search is not configured.
        WebSearchFailed: SearXNG hung (past ``COVE_SEARCH_WEB_TIMEOUT``), failed or answered
            garbage.
    """
    base = settings.searxng_url
    if base is None:
        raise InvalidRequest("web search is off on this server (COVE_SEARXNG_URL is not set)",
                             param="web")
    budget = settings.search_web_timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    try:
        results = (await asyncio.wait_for(ask_searxng(base, query, budget), budget))[:limit]
    except TimeoutError:
        raise WebSearchFailed(f"SearXNG did not answer within {budget:g} s") from None
    texts: list[str | None] = [None] * len(results)
    if settings.search_fetch_pages and results:
        left = deadline - loop.time()
        tasks = [asyncio.ensure_future(fetch_page(r["url"], max(left, 0.1)))
                 for r in results[:MAX_PAGES]]
        done, pending = await asyncio.wait(tasks, timeout=max(left, 0.1))
        for t in pending:
            t.cancel()
        for i, t in enumerate(tasks):
            if t in done and not t.cancelled() and t.exception() is None:
                texts[i] = t.result()
    out = []
    for rank, (r, page) in enumerate(zip(results, texts, strict=True), start=1):
        body = best_piece(page, query) if page and page.strip() else r["content"]
        text = (r["title"] + "\n" + body).strip()
        out.append({"kind": "web", "title": r["title"], "url": r["url"], "text": text,
                    "snippet": snippet_of(body or r["title"], query), "score": 1.0 / rank,
                    "engine": r["engine"], "fetched": bool(page and page.strip())})
    return out
