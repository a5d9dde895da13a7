"""Cove's one Settings class (pydantic-settings, ``COVE_`` environment prefix).

Nothing is built at import time: call :func:`load_settings` (or construct :class:`Settings`) where
the settings are needed and pass the object down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "cove"


class Settings(BaseSettings):
    """Every setting Cove reads; each field is an environment variable ``COVE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="COVE_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory (models, database). Default: $XDG_DATA_HOME/cove or "
        "~/.local/share/cove.",
    )
    host: str = Field("127.0.0.1", description="Address `cove serve` binds to.")
    port: int = Field(11435, ge=0, le=65535, description="Port `cove serve` listens on.")
    default_model: str = Field(
        "smollm2:135m", description="Model used when a request or command names none."
    )
    n_ctx: int = Field(
        4096,
        ge=64,
        description="Context window in tokens (capped at the model's trained context length).",
    )
    n_threads: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        description="CPU threads used for decoding and prompt processing.",
    )
    n_batch: int = Field(512, ge=1, description="Prompt-processing batch size in tokens.")
    max_queue: int = Field(
        16,
        ge=0,
        description="Requests that may wait for the engine; more get HTTP 503 with Retry-After.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest accepted HTTP request body, in bytes."
    )
    log_level: str = Field("info", description="Log level for the server (debug, info, warning).")
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
        description="Delete conversations not updated for this many days (checked hourly). "
        "0 keeps them forever.",
    )
    log_content: bool = Field(
        False,
        description="Write prompt and answer text to the server log (debug aid; off by default).",
    )
    session_days: int = Field(
        30, ge=1, description="How long a web sign-in lasts, in days."
    )

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
