"""Cove's one Settings class (pydantic-settings, ``COVE_`` environment prefix).

Nothing is built at import time: call :func:`load_settings` (or construct :class:`Settings`) where
the settings are needed and pass the object down.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "cove"


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


FOREVER_SECONDS = 100 * 365 * 86400.0  # a keep-alive beyond a century means "forever" (-1)


def parse_duration(value: Any) -> float:
    """A keep-alive duration in seconds, as Ollama accepts it.

    Numbers are seconds; strings are Go durations (``"5m"``, ``"1h30m"``, ``"10s"``,
    ``"-1m"``) or plain numbers of seconds (``"300"``, ``"-1"``). Negative means forever, and so
    does anything longer than a century (returned as -1).

    Raises:
        ValueError: anything else (empty string, ``"soon"``, booleans, NaN).
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"invalid duration {value!r}")
        return _cap(float(value))
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}")
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    try:
        number = float(body)
    except ValueError:
        number = None
    if number is not None and body and number == number and abs(number) != float("inf"):
        return _cap(sign * number)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(body):
        if m.start() != pos:
            break
        total += float(m[1]) * _UNITS[m[2]]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"invalid duration {value!r}: use seconds or e.g. '5m', '1h', '-1'")
    return _cap(sign * total)


def _cap(seconds: float) -> float:
    return -1.0 if seconds > FOREVER_SECONDS else seconds


class Settings(BaseSettings):
    """Every setting Cove reads; each field is an environment variable ``COVE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="COVE_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory (model store, database); created when first needed. "
        "Default: $XDG_DATA_HOME/cove or ~/.local/share/cove.",
    )
    host: str = Field("127.0.0.1", description="Address `cove serve` binds to.")
    port: int = Field(11435, ge=0, le=65535, description="Port `cove serve` listens on.")
    default_model: str = Field(
        "smollm2:135m", description="Model used when a request or command names none."
    )
    n_ctx: int | Literal["auto"] = Field(
        "auto",
        description="Context window of each slot in tokens (capped at the model's trained "
        "context length). auto: the trained length, as long as the model (weights, a window "
        "per slot and the prompt cache) takes at most half the memory budget; never below "
        "4096 (or the trained length when shorter).",
    )
    n_threads: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        description="CPU threads used for decoding and prompt processing.",
    )
    n_batch: int = Field(
        512, ge=8, description="Most tokens in one batched decode step (prompt chunks + decodes)."
    )
    n_parallel: int = Field(
        4,
        ge=1,
        le=64,
        description="Sequences decoded together (slots); each has its own n_ctx context window.",
    )
    kv_unified: bool = Field(
        False,
        description="One KV-cache pool shared by all slots: prefixes shared for free and batches "
        "never split, but a sequence's numerics then depend on its neighbours. Default: a "
        "stream per slot (batch-invariant greedy output up to 256 cells of context), with "
        "running slots kept contiguous and shared prefixes copied between streams.",
    )
    prompt_cache_mb: int = Field(
        1024,
        ge=0,
        description="Host memory (MiB) for the KV cells of conversations that lost their slot "
        "(like llama-server's --cache-ram): a later turn restores them in milliseconds instead "
        "of recomputing the history. 0 = off (cells are only parked in idle slots).",
    )
    max_queue: int = Field(
        16,
        ge=0,
        description="Requests that may wait for a free slot; more get HTTP 503 with Retry-After.",
    )
    embed_max_inputs: int = Field(
        2048,
        ge=1,
        description="Most inputs one embeddings request (/api/embed, /v1/embeddings) may "
        "carry, as OpenAI's limit; more get HTTP 400.",
    )
    embed_max_tokens: int = Field(
        300_000,
        ge=1,
        description="Most tokens one embeddings request may embed in all inputs together, as "
        "OpenAI's limit; more get HTTP 400. Inputs are embedded n_batch tokens at a time and "
        "the work stops when the client disconnects.",
    )
    queue_timeout: float = Field(
        60,
        ge=0,
        description="Seconds a request may wait for a free generation slot; then HTTP 503 with "
        "Retry-After (a streamed answer waits for its slot before sending its status line). "
        "0 = wait as long as it takes.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest accepted HTTP request body, in bytes."
    )
    image_max_pixels: int = Field(
        40_000_000, ge=1,
        description="Largest image accepted (width x height, in pixels), read from its header "
        "before any pixel is decoded; a larger one is a 400.",
    )
    max_images: int = Field(
        16, ge=0,
        description="Most images one chat request may carry, counted over every message of "
        "its conversation (the web app sends a conversation's earlier images again); more is "
        "a 400 before any image is decoded. 0 refuses images.",
    )
    image_max_total_pixels: int = Field(
        100_000_000, ge=1,
        description="Most pixels (width x height, summed over a request's images, read from "
        "their headers) one chat request may carry; more is a 400 before any is decoded.",
    )
    image_max_side: int = Field(
        2048, ge=64,
        description="Images are scaled down to at most this many pixels on their longer side "
        "before a vision model sees them or they are stored.",
    )
    max_upload_bytes: int = Field(
        8 * 1024 * 1024, ge=1024,
        description="Largest document accepted into a knowledge collection, in bytes (the upload "
        "routes take bodies of this size plus the multipart envelope, whatever "
        "COVE_MAX_BODY_BYTES says).",
    )
    searxng_url: str | None = Field(
        None,
        description="Web search (off when unset): the base URL of a SearXNG instance the "
        "operator runs, e.g. http://127.0.0.1:8888 (its settings.yml must list json in "
        "search.formats). The egress guard then lets out connections to exactly this host, and "
        "only while a search runs. Guests may use web search too.",
    )
    search_fetch_pages: bool = Field(
        False,
        description="With web search on: also fetch the top result pages (public addresses "
        "only, each host let out by the egress guard only for its fetch) and answer from their "
        "text instead of SearXNG's snippets.",
    )
    search_web_timeout: float = Field(
        8.0, gt=0, le=120,
        description="Seconds a web search may take in all (SearXNG's answer and any page "
        "fetches); after that the answer goes on without web results, with a warning.",
    )
    meme_max_pixels: int = Field(
        40_000_000, ge=10_000,
        description="Largest image (width x height, in pixels) the meme feature reads; bigger "
        "ones are refused before their pixels are decoded (decompression bombs).",
    )
    ocr_engine: str = Field(
        "auto", pattern="^(auto|rapidocr|tesseract)$",
        description="OCR engine for meme text and for PDF pages without a text layer: auto "
        "(RapidOCR when cove[ocr] is installed, else tesseract), rapidocr or tesseract.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy database URL, e.g. postgresql+psycopg://user:pw@localhost/cove. "
        "Default: SQLite (WAL) at $COVE_HOME/cove.db.",
    )
    signup: Literal["open", "invite", "closed"] = Field(
        "open",
        description="Who may create an account: open (anyone), invite (with an admin's invite "
        "code) or closed (admins create accounts). The first account can always be created and "
        "becomes admin.",
    )
    guest: bool | None = Field(
        None,
        description="Allow chatting without an account (kept only in the browser tab, never "
        "stored). Default: on when bound to loopback, off otherwise.",
    )
    retention_days: int = Field(
        0,
        ge=0,
        description="Delete conversations not updated, and stored Responses API responses not "
        "created, for this many days (checked hourly). 0 keeps them forever.",
    )
    log_content: bool = Field(
        False,
        description="Write prompt and answer text to the server log (debug aid; off by default).",
    )
    session_days: int = Field(
        30, ge=1, description="How long a web sign-in lasts, in days."
    )
    signin_failures: int = Field(
        5, ge=1, description="Failed sign-ins per account (whether or not the e-mail has one) "
        "before each further attempt must wait (HTTP 429 with Retry-After). A browser that "
        "signed in to the account before is not held up by these."
    )
    signin_address_failures: int = Field(
        20, ge=1, description="Failed sign-ins per client address, and separately requests "
        "with an invalid API key per client address, before each further one must wait."
    )
    signin_backoff: float = Field(
        1.0, gt=0, description="Seconds the first attempt beyond the free failures waits; "
        "each further failure doubles it, up to signin_backoff_max."
    )
    signin_backoff_max: float = Field(
        300.0, gt=0, description="Longest wait, in seconds, after failed sign-ins or API keys: "
        "failures from elsewhere can delay an account's owner this long, never lock them out."
    )

    request_body_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a client may take to send a request body; slower ones get HTTP 408.",
    )
    request_header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client may take to send a request's line and headers, counted "
        "from connecting (or from the first byte of a next request on a kept-alive "
        "connection); then the connection is closed, with HTTP 408 if part of a request came.",
    )
    max_connections: int = Field(
        256,
        ge=0,
        description="Most HTTP connections `cove serve` keeps open; requests on connections "
        "beyond it get HTTP 503 with Retry-After and the connection is closed, while those "
        "already open go on being served. 0 = no limit.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="Server log level: critical, error, warning, info, debug, trace."
    )
    keep_alive: float = Field(
        300.0,
        description="How long a model stays loaded after its last request: seconds or a "
        "duration such as 5m or 1h; negative keeps it loaded forever, 0 unloads at once.",
    )
    max_loaded_models: int = Field(
        3, ge=1, description="Most models loaded at once; the least recently used idle one "
        "is unloaded to make room."
    )
    memory_budget: int = Field(
        0, ge=0, description="Bytes that loaded models may use (weights, a KV cache of n_ctx "
        "cells per slot, and the prompt cache of a chat model); 0 means three quarters of "
        "physical memory."
    )
    origins: str = Field(
        "", description="Extra browser origins allowed by CORS, comma-separated (e.g. "
        "https://app.example.com, or * for any); local origins are always allowed."
    )

    max_prompt_tools: int = Field(
        8, ge=0, description="Most tool definitions described to the model: of a request "
        "with more tools, only the most relevant to the conversation (by the text embedder) "
        "go into the prompt, and the response headers say which. 0 = always all."
    )

    backend_breaker_failures: int = Field(
        3, ge=1, description="Failures in a row (unreachable, timeout, 5xx, garbage, a broken "
        "stream) after which a remote backend's circuit breaker opens: no request goes there "
        "until a health probe succeeds."
    )
    backend_breaker_cooldown: float = Field(
        10.0, gt=0, description="Seconds an open circuit breaker waits before probing its "
        "backend (GET /v1/models) again."
    )
    backend_balance: float = Field(
        1.25, ge=1.0, description="Balance factor of conversation affinity (consistent hashing "
        "with bounded loads): no backend takes more than this times its share of the requests "
        "in flight; 1 is strict balance, higher keeps conversations on their backend longer."
    )
    backend_connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to connect to a remote backend; then the next one is "
        "tried."
    )
    backend_first_byte_timeout: float = Field(
        120.0, gt=0, description="Seconds a remote backend may take to send its first "
        "streamed event (and between events); then HTTP 504, or the next backend when "
        "nothing was sent yet."
    )
    @field_validator("n_ctx", mode="before")
    @classmethod
    def _window(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        if isinstance(v, bool):
            raise ValueError("expected a number of tokens or auto")
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ValueError("expected a number of tokens (at least 64) or auto") from None
        if n < 64:
            raise ValueError("a context window needs at least 64 tokens")
        return n

    @field_validator("n_parallel")
    @classmethod
    def _fits_a_batch(cls, v: int, info: ValidationInfo) -> int:
        # every running sequence feeds a token in the same batch; llama.cpp aborts the whole
        # process when a context has more sequences than a batch has rows
        n_batch = info.data.get("n_batch")
        if n_batch is not None and v > n_batch:
            raise ValueError(f"at most COVE_N_BATCH ({n_batch}) sequences can be decoded "
                             "together; lower COVE_N_PARALLEL or raise COVE_N_BATCH")
        return v

    @field_validator("searxng_url", mode="before")
    @classmethod
    def _searxng(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        from urllib.parse import urlsplit

        url = str(v).strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected the http(s) base URL of a SearXNG instance, e.g. "
                             "http://127.0.0.1:8888")
        return url

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @property
    def db_url(self) -> str:
        """The database URL in force (``database_url``, or SQLite under ``home``)."""
        return self.database_url or f"sqlite:///{self.home / 'cove.db'}"

    @property
    def on_loopback(self) -> bool:
        """Whether ``host`` is a loopback address or name (the server is not reachable from
        other machines)."""
        import ipaddress

        h = self.host.strip("[]").lower()
        if h == "localhost":
            return True
        try:
            return ipaddress.ip_address(h).is_loopback
        except ValueError:
            return False

    @property
    def guest_enabled(self) -> bool:
        """Guest use in force: the ``guest`` setting, or on when bound to loopback."""
        return self.on_loopback if self.guest is None else self.guest


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit keyword overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
