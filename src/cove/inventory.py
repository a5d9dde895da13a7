"""The data inventory behind ``cove privacy``: where data lives, what is stored per user, the
egress policy in force and the addresses the server listens on. Reads the database only if it
already exists (never creates one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from cove import privacy
from cove.config import Settings
from cove.errors import CoveError

STORED_PER_USER = {
    "account": "e-mail, argon2id password hash, role (admin/user), disabled flag, creation time",
    "sessions": "SHA-256 of each sign-in cookie, its CSRF token, creation and expiry times",
    "api_keys": "name, first 12 characters, SHA-256 of the key, creation and last-use times",
    "conversations": "title, model, creation and update times",
    "messages": "role, text, reasoning text, model, status (complete/streaming/stopped/"
    "interrupted/error), finish reason, prompt and completion token counts, times; for an "
    "answer with sources, its search query, the sources (passage text, document or web page "
    "title and URL, snippet) and the citation check",
    "message_images": "images sent with the user's messages in the web app, as normalised "
    "(PNG or JPEG, at most COVE_IMAGE_MAX_SIDE pixels a side), with size and SHA-256; deleted "
    "with the message",
    "search_collections": "knowledge collection names and creation times",
    "search_documents": "file name, format, size, SHA-256, page and character counts, "
    "extraction notes, time added (the file itself is not kept)",
    "search_files": "files uploaded through /v1/files, as sent (name, purpose, size, bytes), "
    "until deleted",
    "search_chunks": "passages of the documents' text with page, heading path and character "
    "range, their keyword index entries and embedding vectors (embedder id and dimension)",
    "idea_boards": "saved brainstorms of signed-in users: goal, constraints, criteria, model, "
    "the ranked ideas (title, pitch, why, theme, scores) and follow-up results, times",
    "arena_battles": "arena battles: the contestants' names, blind or not, the vote and its "
    "time; for signed-in users also the prompt and the answers (a guest's battle keeps no "
    "text, and is deleted after a day if never voted on)",
    "meme_templates": "your own meme templates: name, the image (PNG), its size and text "
    "boxes, creation time",
    "memes": "memes kept in your gallery: the rendered image, its template and text, format, "
    "creation time",
    "responses": "OpenAI Responses API results made with store true (the default): the response "
    "object (output text, reasoning, tool calls, instructions, tools, metadata, user, usage) "
    "and every input item of its context, owned by the API key's account; made while the "
    "server had no account: owned by nobody ('local', readable only while it stays open). "
    "store false keeps nothing",
}
# tables of features, counted when their migration has run
FEATURE_TABLES = ("search_collections", "search_documents", "search_chunks", "search_files",
                  "meme_templates", "memes", "idea_boards", "arena_battles")
NOT_STORED = [
    "guest conversations (they live only in the browser tab)",
    "images sent to explain a meme, and memes made by guests or not saved to a gallery",
    "guest brainstorms (nothing of them is written), and a guest's arena prompts and answers "
    "(only the vote is kept)",
    "Responses API requests made with store false (nothing of them is written)",
    "prompt and answer text in logs (unless COVE_LOG_CONTENT is on)",
    "web search queries and results apart from the answers they were given to (SearXNG is "
    "the operator's: what it keeps is up to its settings)",
    "IP addresses, user agents or analytics of any kind; Cove has no telemetry, and FastAPI's "
    "OpenTelemetry tracing and export are switched off (whatever OTEL_* variables say)",
]


def _counts(settings: Settings) -> dict[str, int] | None:
    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return None
    from sqlalchemy import func, inspect, select, table

    from cove.store.db import open_database
    from cove.store.tables import ApiKey, Conversation, Message, MessageImage, StoredResponse, User

    try:
        db = open_database(settings)
    except Exception:  # noqa: BLE001 - unreachable server or missing driver: no counts
        return None
    try:
        present = set(inspect(db.engine).get_table_names())
        with db.session() as s:
            counts = {t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
                      for t in (User, ApiKey, Conversation, Message, MessageImage,
                                StoredResponse)}
            for name in FEATURE_TABLES:
                if name in present:
                    counts[name] = int(s.scalar(select(func.count()).select_from(
                        table(name))) or 0)
            return counts
    finally:
        db.close()


def _web_search(settings: Settings) -> dict[str, Any] | str:
    """The web search egress in force (``COVE_SEARXNG_URL``), or ``"off"``."""
    from urllib.parse import urlsplit

    if not settings.searxng_url:
        return "off"
    return {"searxng_url": settings.searxng_url,
            "allowed_host": urlsplit(settings.searxng_url).hostname,
            "when": "only while a search runs",
            "fetch_pages": settings.search_fetch_pages,
            "guests": settings.guest_enabled}


def inventory(settings: Settings) -> dict[str, Any]:
    """The inventory as a JSON-ready dict (keys: data, stored_per_user, not_stored, egress,
    listening, settings)."""
    from cove.store.db import redacted_url

    url = make_url(settings.db_url)
    sqlite_file = Path(url.database) if url.get_backend_name() == "sqlite" and url.database \
        else None
    files = []
    if sqlite_file is not None:
        for p in sorted(sqlite_file.parent.glob(sqlite_file.name + "*")):
            files.append({"path": str(p), "bytes": p.stat().st_size})
    from cove.backends.registry import BackendRegistry

    try:
        backends = BackendRegistry.load(settings.home).hosts()
    except CoveError as e:
        backends = {"(unreadable backends.json)": [e.message]}
    return {
        "data": {
            "home": str(settings.home),
            "database": redacted_url(settings.db_url),
            "database_files": files,
            "rows": _counts(settings),
            "models": "read from installed packages (the bundled model); nothing is downloaded",
        },
        "stored_per_user": STORED_PER_USER,
        "not_stored": NOT_STORED,
        "egress": {
            **privacy.policy(),
            "backend_hosts": {h: sorted(n) for h, n in sorted(backends.items())} or "none",
            "refused": "every other outbound connection and name lookup; each refusal is logged "
            "(destination only)",
            "exceptions": "model pulls, for the host the user asked to pull from; the "
            "registered remote backends (`cove backend list`), each host named above, which "
            "receive the prompts of requests for their models"
            + ("; web search, for the SearXNG host below while a search runs"
               + (" and each result page's host (public addresses only) while it is fetched"
                  if settings.search_fetch_pages else "")
               if settings.searxng_url else ""),
            "web_search": _web_search(settings),
        },
        "listening": {
            "address": f"{settings.host}:{settings.port}",
            "loopback_only": settings.on_loopback,
            "api_without_key": "while no account exists" if settings.on_loopback else "never",
            "guest_chat": settings.guest_enabled,
        },
        "settings": {
            "signup": settings.signup,
            "retention_days": settings.retention_days or "keep forever",
            "log_content": settings.log_content,
        },
    }
